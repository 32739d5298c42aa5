//! `monit`: the operator's command on a VM, as monit 5.2.5's command line (`src/monit.c`,
//! `do_action`) answered when monit supervised the jobs. The `bosh-agent` binary acts as it when
//! started through a link named `monit` (`/var/vcap/bosh/bin/monit -> bosh-agent`), and as
//! `bosh-agent monit <args>`.
//!
//! ```text
//! monit summary                 one line per service
//! monit status [name]           a block per service (or the one named)
//! monit start|stop|restart|monitor|unmonitor <name|all>
//! monit reload                  re-read the jobs' monit files, adopting running processes
//! ```
//!
//! The command talks to the running agent over its socket (`<base>/monit/agent.sock`, see
//! [`server`]); the base dir is `/var/vcap` unless the environment variable
//! [`BASE_DIR_ENV`] (`BOSH_AGENT_BASE_DIR`) names another. Only root and the agent's user may
//! connect. Exit status 0 on success; 1, with `monit: <why>` on standard error, when the agent
//! cannot be reached, the service is unknown or the action failed.
//!
//! Differences from monit 5.2.5: `stop` waits until the processes are gone (monit returns at once
//! and leaves the operator to poll `summary`); `status <name>` shows one service; options other
//! than `-h` and `-V` (`-c`, `-g`, ...) are refused, as the agent owns the configuration.

pub mod render;
pub mod server;
pub mod wire;

use std::io::{BufRead as _, BufReader, Read as _, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::monit_command::wire::{Action, Request, Response};

/// The environment variable that overrides the base dir the command looks in.
pub const BASE_DIR_ENV: &str = "BOSH_AGENT_BASE_DIR";

/// How long the command waits for the agent's answer: longer than the supervisor waits for a stop
/// (5 minutes).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(6 * 60);

/// How long sending the request may take.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// What the command line asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invocation {
    /// `-h`: print the usage.
    Help,
    /// `-V`: print the version.
    Version,
    /// Ask the agent.
    Ask(Request),
}

/// Reads monit's command line (`args` without the program name); the error is the text to print
/// after `monit: `.
pub fn parse_args(args: &[String]) -> Result<Invocation, String> {
    let mut words = Vec::new();
    for arg in args {
        match arg.as_str() {
            "-h" | "--help" => return Ok(Invocation::Help),
            "-V" | "--version" => return Ok(Invocation::Version),
            option if option.starts_with('-') && option.len() > 1 => {
                return Err(format!(
                    "invalid option -- {}  (-h will show valid options)",
                    option.trim_start_matches('-')
                ));
            }
            word => words.push(word),
        }
    }
    let Some(word) = words.first() else {
        return Err("an action is needed  (-h will show valid arguments)".to_owned());
    };
    let Some(action) = Action::parse(word) else {
        return Err(format!(
            "invalid argument -- {word}  (-h will show valid arguments)"
        ));
    };
    let service = words.get(1).map(|name| (*name).to_owned());
    if action.needs_service() && service.is_none() {
        return Err(format!(
            "please specify the configured service name or 'all' after {}",
            action.name()
        ));
    }
    let service = match action {
        Action::Summary | Action::Reload => None,
        _ => service,
    };
    Ok(Invocation::Ask(Request { action, service }))
}

/// The base dir to look in: [`BASE_DIR_ENV`], else `/var/vcap`.
pub fn base_dir_from_env() -> PathBuf {
    std::env::var_os(BASE_DIR_ENV)
        .filter(|dir| !dir.is_empty())
        .map_or_else(
            || PathBuf::from(settings::dirs::DEFAULT_BASE_DIR),
            PathBuf::from,
        )
}

/// Runs the command with `args` (without the program name) against the agent of `base_dir`,
/// printing to `stdout` and `stderr`; returns the exit status.
pub fn run(args: &[String], base_dir: &Path, stdout: &mut dyn Write, stderr: &mut dyn Write) -> u8 {
    let request = match parse_args(args) {
        Ok(Invocation::Help) => {
            let _ = stdout.write_all(usage().as_bytes());
            return 0;
        }
        Ok(Invocation::Version) => {
            let _ = writeln!(
                stdout,
                "This is Monit version {} (the BOSH agent's built-in supervisor, bosh-agent {})",
                render::MONIT_VERSION,
                env!("CARGO_PKG_VERSION")
            );
            return 0;
        }
        Ok(Invocation::Ask(request)) => request,
        Err(message) => {
            let _ = writeln!(stderr, "monit: {message}");
            return 1;
        }
    };
    let path = wire::socket_path(&settings::Dirs::new(base_dir));
    match ask(&path, &request) {
        Ok(Response {
            output,
            error: None,
        }) => {
            let _ = stdout.write_all(output.as_bytes());
            0
        }
        Ok(Response {
            error: Some(error), ..
        }) => {
            let _ = writeln!(stderr, "monit: {error}");
            1
        }
        Err(message) => {
            let _ = writeln!(stderr, "monit: {message}");
            1
        }
    }
}

/// Sends `request` to the agent at `path` and reads its answer.
fn ask(path: &Path, request: &Request) -> Result<Response, String> {
    let unreachable =
        |err: std::io::Error| format!("cannot connect to the agent at {}: {err}", path.display());
    let mut stream = UnixStream::connect(path).map_err(unreachable)?;
    stream
        .set_write_timeout(Some(SEND_TIMEOUT))
        .and_then(|()| stream.set_read_timeout(Some(ANSWER_TIMEOUT)))
        .map_err(unreachable)?;
    let mut line = serde_json::to_vec(request).map_err(|err| err.to_string())?;
    line.push(b'\n');
    stream.write_all(&line).map_err(unreachable)?;
    let mut answer = String::new();
    BufReader::new(stream.take(wire::MAX_LINE))
        .read_line(&mut answer)
        .map_err(|err| format!("reading the agent's answer: {err}"))?;
    if answer.is_empty() {
        return Err(format!(
            "the agent at {} closed the connection without an answer",
            path.display()
        ));
    }
    serde_json::from_str(&answer).map_err(|err| format!("the agent's answer: {err}"))
}

/// The usage, after monit's `-h`.
fn usage() -> String {
    format!(
        "Usage: monit [options] {{arguments}}\n\
         Options are as follows:\n \
         -h            Print this text\n \
         -V            Print version number and patchlevel\n\
         Optional action arguments for non-daemon mode are as follows:\n \
         start all           - Start all services\n \
         start name          - Only start the named service\n \
         stop all            - Stop all services\n \
         stop name           - Only stop the named service\n \
         restart all         - Stop and start all services\n \
         restart name        - Only restart the named service\n \
         monitor all         - Enable monitoring of all services\n \
         monitor name        - Only enable monitoring of the named service\n \
         unmonitor all       - Disable monitoring of all services\n \
         unmonitor name      - Only disable monitoring of the named service\n \
         reload              - Reinitialize monit\n \
         status [name]       - Print full status information for each service\n \
         summary             - Print short status information for each service\n\
         \n\
         The BOSH agent answers these; it looks for its base dir in ${BASE_DIR_ENV} (default {}).\n",
        settings::dirs::DEFAULT_BASE_DIR
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(words: &[&str]) -> Vec<String> {
        words.iter().map(|word| (*word).to_owned()).collect()
    }

    #[test]
    fn the_command_line_is_read_as_monit_reads_it() {
        let ask = |action, service: Option<&str>| {
            Ok(Invocation::Ask(Request {
                action,
                service: service.map(str::to_owned),
            }))
        };
        let cases: Vec<(&[&str], Result<Invocation, String>)> = vec![
            (&["summary"], ask(Action::Summary, None)),
            (&["status"], ask(Action::Status, None)),
            (&["status", "web"], ask(Action::Status, Some("web"))),
            (&["stop", "all"], ask(Action::Stop, Some("all"))),
            (
                &["restart", "web", "extra"],
                ask(Action::Restart, Some("web")),
            ),
            (&["reload"], ask(Action::Reload, None)),
            (&["-h"], Ok(Invocation::Help)),
            (&["-V"], Ok(Invocation::Version)),
            (
                &["start"],
                Err("please specify the configured service name or 'all' after start".to_owned()),
            ),
            (
                &["quit"],
                Err("invalid argument -- quit  (-h will show valid arguments)".to_owned()),
            ),
            (
                &["-g", "vcap", "stop"],
                Err("invalid option -- g  (-h will show valid options)".to_owned()),
            ),
            (
                &[],
                Err("an action is needed  (-h will show valid arguments)".to_owned()),
            ),
        ];
        for (words, expected) in cases {
            assert_eq!(parse_args(&args(words)), expected, "{words:?}");
        }
    }

    #[test]
    fn an_unreachable_agent_is_reported_with_its_socket() {
        let dir = tempfile::tempdir().unwrap();
        let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
        let code = run(&args(&["summary"]), dir.path(), &mut stdout, &mut stderr);
        assert_eq!(code, 1);
        assert!(stdout.is_empty());
        let stderr = String::from_utf8(stderr).unwrap();
        let expected = format!(
            "monit: cannot connect to the agent at {}: ",
            dir.path().join("monit/agent.sock").display()
        );
        assert!(stderr.starts_with(&expected), "{stderr}");

        let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
        assert_eq!(run(&args(&["-h"]), dir.path(), &mut stdout, &mut stderr), 0);
        assert!(
            String::from_utf8(stdout)
                .unwrap()
                .contains("BOSH_AGENT_BASE_DIR")
        );
    }
}
