//! `run_script`: one named script of every job, all at once (`pre-start`, `post-start`,
//! `post-deploy`, `pre-stop`, `post-stop` and custom names). Follows the Go agent's
//! `agent/action/run_script.go`, `agent/script/generic_script.go` and
//! `agent/script/concrete_job_script_provider.go`.
//!
//! For each job of the current spec, `jobs/<job>/bin/<script>` runs (a job without it is skipped)
//! with `PATH=/usr/sbin:/usr/bin:/sbin:/bin` plus the request's `env` on top of the agent's
//! environment (the request may override `PATH`, as in Go), at a lower CPU priority. Its output is
//! appended to `sys/log/<job>/<script>.stdout.log` and `.stderr.log` (files 0640, created with
//! their directories, 0750, before the script starts). Failures sum up as [`parallel`] says:
//! `1 of 2 pre-start scripts failed. Failed Jobs: a. Successful Jobs: b.`
//!
//! Go lowers the priority with `setpriority` right after the start, to the agent's nice value plus
//! 5, at most 19. We start the script through `nice -n 5`, which sets the same value before the
//! script's first instruction; argv stays a list, no shell.
//!
//! Where we differ from Go:
//! - The output reaches the log files when the script ends, not while it runs, because the runner
//!   returns it then; and a failed script's stderr arrives trimmed (`platform::cmd` trims it).
//! - A job or script name that is not one plain path component (`../bin/sh`) is refused before any
//!   script runs; Go joins it into a path.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write as _};
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

use platform::cmd::Cmd;

use crate::apply_spec::ApplySpec;
use crate::script::cancel::CancelToken;
use crate::script::parallel::{self, JobScript};
use crate::script::{JobScripts, runner, script_cmd};

/// The nice increment of job scripts (bosh-utils `lowerProcessPriority`: parent + 5).
pub const NICE_INCREMENT: &str = "5";

/// Mode of `sys/log/<job>` when it is created.
const LOG_DIR_MODE: u32 = 0o750;

/// Mode of a script's log files when they are created.
const LOG_FILE_MODE: u32 = 0o640;

/// Why `run_script` failed, or why one job's script failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Some scripts failed (Go's text); the causes are logged.
    #[error(transparent)]
    Failed(#[from] parallel::Error),
    /// A job or script name cannot be a path component.
    #[error(transparent)]
    Name(#[from] platform::name::Error),
    /// One job's log directory could not be created.
    #[error("creating {}", .dir.display())]
    LogDir {
        /// The directory.
        dir: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// One job's log file could not be opened or written.
    #[error("writing {}", .path.display())]
    Log {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// One job's script could not be run.
    #[error("running {}", .path.display())]
    Run {
        /// The script.
        path: PathBuf,
        /// The cause.
        #[source]
        source: runner::Error,
    },
    /// One job's script exited unsuccessfully.
    #[error("{} exited with {exit_code}", .path.display())]
    Exit {
        /// The script.
        path: PathBuf,
        /// Its exit code.
        exit_code: i32,
    },
}

/// `pub type Result<T>` of this module.
pub type Result<T> = std::result::Result<T, Error>;

impl JobScripts {
    /// Runs `script_name` of every job of `spec` at once, with `env` added, and waits for all.
    ///
    /// Go's `run_script` action cannot be cancelled; the agent passes a token it never fires.
    pub fn run_script(
        &self,
        spec: &ApplySpec,
        script_name: &str,
        env: &BTreeMap<String, String>,
        cancel: &CancelToken,
    ) -> Result<()> {
        // Every name is checked before anything runs.
        let planned = spec
            .jobs()
            .iter()
            .map(|job| {
                let path = self.script_path(&job.name, script_name)?;
                let log_dir = platform::name::join(&self.dirs.logs_dir(), "job name", &job.name)?;
                Ok((job.name.clone(), path, log_dir))
            })
            .collect::<Result<Vec<_>>>()?;
        let scripts = planned
            .into_iter()
            .map(|(job, path, log_dir)| {
                let cmd = run_script_cmd(&path, env);
                let logs = LogFiles::new(&log_dir, script_name);
                JobScript {
                    job,
                    path: path.clone(),
                    run: move || self.run_one(&path, &cmd, &logs, cancel),
                }
            })
            .collect();
        parallel::run(script_name, scripts)?;
        Ok(())
    }

    fn run_one(&self, path: &Path, cmd: &Cmd, logs: &LogFiles, cancel: &CancelToken) -> Result<()> {
        // Go opens (and so creates) both log files before it starts the script.
        let (mut stdout_log, mut stderr_log) = logs.open()?;
        let output = self.runner.run(cmd, cancel).map_err(|source| Error::Run {
            path: path.to_owned(),
            source,
        })?;
        tracing::debug!(script = %path.display(), exit_code = output.exit_code, "ran job script");
        append(&mut stdout_log, &logs.stdout, &output.stdout)?;
        append(&mut stderr_log, &logs.stderr, &output.stderr)?;
        if output.is_success() {
            Ok(())
        } else {
            Err(Error::Exit {
                path: path.to_owned(),
                exit_code: output.exit_code,
            })
        }
    }
}

/// The command for a job script at `path`: `nice -n 5 <path>`, with the scripts' `PATH` and then
/// `env` (which wins, as Go sets it last).
pub fn run_script_cmd(path: &Path, env: &BTreeMap<String, String>) -> Cmd {
    let script = env
        .iter()
        .fold(script_cmd(path), |cmd, (key, value)| cmd.env(key, value));
    Cmd {
        program: "nice".into(),
        args: ["-n".into(), NICE_INCREMENT.into(), script.program]
            .into_iter()
            .chain(script.args)
            .collect(),
        ..script
    }
}

/// `sys/log/<job>/<script>.stdout.log` and `.stderr.log`.
#[derive(Debug)]
struct LogFiles {
    dir: PathBuf,
    stdout: PathBuf,
    stderr: PathBuf,
}

impl LogFiles {
    fn new(dir: &Path, script_name: &str) -> LogFiles {
        LogFiles {
            dir: dir.to_owned(),
            stdout: dir.join(format!("{script_name}.stdout.log")),
            stderr: dir.join(format!("{script_name}.stderr.log")),
        }
    }

    fn open(&self) -> Result<(File, File)> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(LOG_DIR_MODE)
            .create(&self.dir)
            .map_err(|source| Error::LogDir {
                dir: self.dir.clone(),
                source,
            })?;
        Ok((open_log(&self.stdout)?, open_log(&self.stderr)?))
    }
}

fn open_log(path: &Path) -> Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(LOG_FILE_MODE)
        .open(path)
        .map_err(|source| Error::Log {
            path: path.to_owned(),
            source,
        })
}

fn append(file: &mut File, path: &Path, bytes: &[u8]) -> Result<()> {
    file.write_all(bytes).map_err(|source| Error::Log {
        path: path.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use crate::script::SCRIPT_PATH;

    use super::*;

    #[test]
    fn the_command_is_nice_then_the_script_with_path_and_the_request_env() {
        let env = BTreeMap::from([
            ("PATH".to_owned(), "/custom/bin".to_owned()),
            ("DEPLOY".to_owned(), "two words".to_owned()),
        ]);
        let cmd = run_script_cmd(Path::new("/var/vcap/jobs/web/bin/pre-start"), &env);
        assert_eq!(
            cmd.to_string(),
            "nice -n 5 /var/vcap/jobs/web/bin/pre-start"
        );
        assert_eq!(
            cmd.env,
            vec![
                ("PATH".into(), SCRIPT_PATH.into()),
                ("DEPLOY".into(), "two words".into()),
                ("PATH".into(), "/custom/bin".into()),
            ]
        );
        let plain = run_script_cmd(Path::new("/jobs/web/bin/post-start"), &BTreeMap::new());
        assert_eq!(plain.env, vec![("PATH".into(), SCRIPT_PATH.into())]);
    }

    #[test]
    fn log_files_are_named_after_the_script() {
        let logs = LogFiles::new(Path::new("/var/vcap/sys/log/web"), "post-start");
        assert_eq!(
            logs.stdout,
            Path::new("/var/vcap/sys/log/web/post-start.stdout.log")
        );
        assert_eq!(
            logs.stderr,
            Path::new("/var/vcap/sys/log/web/post-start.stderr.log")
        );
    }
}
