//! Fakes for tests of code that runs commands, exported behind the `testing` feature.
//!
//! [`RecordingRunner`] records every [`Cmd`] and answers from a script keyed by program and argv
//! ([`RecordingRunner::ANY`] stands for one argument that is not known in advance, such as a fresh
//! temporary directory; assert it exactly through [`RecordingRunner::recorded`]). A command it was not
//! given fails (bosh-utils' `FakeCmdRunner` answers those with empty output, which
//! lets a forgotten expectation pass silently).

use std::sync::Mutex;

use crate::cmd::{Cmd, CommandRunner, Error, Output};

/// A scripted, recording [`CommandRunner`].
#[derive(Debug, Default)]
pub struct RecordingRunner {
    script: Mutex<Vec<Expectation>>,
    recorded: Mutex<Vec<Cmd>>,
}

#[derive(Debug)]
struct Expectation {
    argv: Vec<String>,
    reply: Reply,
    used: bool,
}

/// How the fake answers a command.
#[derive(Debug, Clone)]
pub enum Reply {
    /// Success with this standard output.
    Ok(String),
    /// Failure with this exit status and standard error.
    Fail(i32, String),
}

impl RecordingRunner {
    /// In a scripted argv, matches any one argument.
    pub const ANY: &'static str = "<any>";

    /// A runner with an empty script.
    pub fn new() -> RecordingRunner {
        RecordingRunner::default()
    }

    /// Answers the next run of `argv` (program first) with `reply`. Each expectation answers once.
    pub fn expect(&self, argv: &[&str], reply: Reply) -> &Self {
        self.script
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Expectation {
                argv: argv.iter().map(|s| (*s).to_owned()).collect(),
                reply,
                used: false,
            });
        self
    }

    /// Every command run so far, as argv vectors (program first).
    pub fn recorded(&self) -> Vec<Vec<String>> {
        self.recorded
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(argv)
            .collect()
    }

    /// Expectations never used, as argv vectors.
    pub fn unused(&self) -> Vec<Vec<String>> {
        self.script
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|e| !e.used)
            .map(|e| e.argv.clone())
            .collect()
    }
}

fn argv(cmd: &Cmd) -> Vec<String> {
    std::iter::once(&cmd.program)
        .chain(cmd.args.iter())
        .map(|s| s.to_string_lossy().into_owned())
        .collect()
}

impl CommandRunner for RecordingRunner {
    fn run(&self, cmd: &Cmd) -> Result<Output, Error> {
        self.recorded
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(cmd.clone());
        let argv = argv(cmd);
        let mut script = self.script.lock().unwrap_or_else(|e| e.into_inner());
        let matches = |expected: &Vec<String>| {
            expected.len() == argv.len()
                && expected
                    .iter()
                    .zip(&argv)
                    .all(|(e, a)| e == RecordingRunner::ANY || e == a)
        };
        let Some(expectation) = script.iter_mut().find(|e| !e.used && matches(&e.argv)) else {
            return Err(Error::Unexpected(cmd.to_string()));
        };
        expectation.used = true;
        match &expectation.reply {
            Reply::Ok(stdout) => Ok(Output {
                stdout: stdout.clone().into_bytes(),
                stderr: Vec::new(),
            }),
            Reply::Fail(code, stderr) => Err(Error::Failed {
                program: cmd.program_name(),
                status: format!("exit status: {code}"),
                code: Some(*code),
                stdout: String::new(),
                stderr: stderr.clone(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unscripted_commands_fail() {
        let runner = RecordingRunner::new();
        runner.expect(&["mount", "/dev/sr0", "/mnt"], Reply::Ok(String::new()));
        let err = runner.run(&Cmd::new("umount").arg("/mnt")).unwrap_err();
        assert_eq!(err.to_string(), "unexpected command: umount /mnt");
        assert_eq!(runner.unused(), vec![vec!["mount", "/dev/sr0", "/mnt"]]);
    }

    #[test]
    fn each_expectation_answers_once_and_is_recorded() {
        let runner = RecordingRunner::new();
        runner.expect(&["udevadm", "settle"], Reply::Fail(1, "timeout".into()));
        assert!(runner.run(&Cmd::new("udevadm").arg("settle")).is_err());
        assert!(matches!(
            runner.run(&Cmd::new("udevadm").arg("settle")),
            Err(Error::Unexpected(_))
        ));
        assert_eq!(runner.recorded().len(), 2);
    }

    #[test]
    fn any_matches_one_argument() {
        let runner = RecordingRunner::new();
        runner.expect(&["umount", RecordingRunner::ANY], Reply::Ok(String::new()));
        assert!(
            runner
                .run(&Cmd::new("umount").args(["/tmp/a", "/tmp/b"]))
                .is_err()
        );
        runner.run(&Cmd::new("umount").arg("/tmp/x")).unwrap();
        assert_eq!(runner.recorded()[1], vec!["umount", "/tmp/x"]);
    }
}
