//! The one function every build step runs its commands through: it logs the argv and turns a
//! failure into an error naming the whole command line, with the command's stderr (from
//! `platform::cmd`, the workspace's only process spawner).

use platform::cmd::{Cmd, CommandRunner, Output};

/// A command of the build failed.
#[derive(Debug, thiserror::Error)]
#[error("running `{command}`")]
pub struct Error {
    /// The command line as logged.
    pub command: String,
    /// The runner's error: program, exit status and trimmed stderr (boxed: it carries both
    /// output streams).
    #[source]
    pub source: Box<platform::cmd::Error>,
}

/// Runs `cmd` to completion through `runner`, logging its argv first.
pub fn run(runner: &dyn CommandRunner, cmd: &Cmd) -> Result<Output, Error> {
    tracing::info!(command = %cmd, "running");
    runner.run(cmd).map_err(|source| Error {
        command: cmd.to_string(),
        source: Box::new(source),
    })
}

/// Runs `cmd` and returns its standard output as text.
pub fn run_stdout(runner: &dyn CommandRunner, cmd: &Cmd) -> Result<String, Error> {
    let output = run(runner, cmd)?;
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use platform::testing::{RecordingRunner, Reply};

    use super::*;

    #[test]
    fn a_failure_names_the_command_and_keeps_stderr() {
        let runner = RecordingRunner::new();
        runner.expect(
            &["sfdisk", "disk.raw"],
            Reply::Fail(1, "  no space left \n".into()),
        );
        let err = run(&runner, &Cmd::new("sfdisk").arg("disk.raw")).unwrap_err();
        assert_eq!(err.to_string(), "running `sfdisk disk.raw`");
        assert_eq!(
            err.source.to_string(),
            "sfdisk failed (exit status: 1): no space left"
        );
    }

    #[test]
    fn stdout_comes_back_as_text() {
        let runner = RecordingRunner::new();
        runner.expect(&["uname", "-r"], Reply::Ok("6.1.0\n".into()));
        let out = run_stdout(&runner, &Cmd::new("uname").arg("-r")).unwrap();
        assert_eq!(out, "6.1.0\n");
    }
}
