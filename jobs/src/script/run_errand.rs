//! `run_errand`: one job's `jobs/<job>/bin/run`, its output captured and returned. Follows the Go
//! agent's `agent/action/run_errand.go`.
//!
//! Without a name the errand is the spec's `job.template` (`At least one job template is required to
//! run an errand` when it is empty); with one, the name must be one of `job.templates`
//! (`Could not find errand <name>`). The script runs with `PATH=/usr/sbin:/usr/bin:/sbin:/bin` on top
//! of the agent's environment. Its whole stdout and stderr and its exit code are the result
//! (`{"stdout","stderr","exit_code"}`): a non-zero exit is a result, and only a script that cannot
//! start is an error (`Running errand script`). Go keeps the whole output too (bosh-utils buffers
//! it); an output too large for a NATS reply ends as `Response exceeded maximum allowed length`, in
//! Go and here.
//!
//! Cancelling terminates the script (see [`runner`]); as in Go, a script
//! ended that way is still a result, with its exit code (`143` after SIGTERM). A token that fired
//! before the start starts nothing and is an error.

use serde::{Deserialize, Serialize};

use crate::apply_spec::ApplySpec;
use crate::script::cancel::CancelToken;
use crate::script::{JobScripts, runner, script_cmd};

/// The script an errand job runs.
pub const ERRAND_SCRIPT: &str = "run";

/// What an errand printed and how it ended: the `run_errand` task's value.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrandResult {
    /// Its standard output.
    pub stdout: String,
    /// Its standard error.
    pub stderr: String,
    /// Its exit code (`128 + signal` when a signal ended it).
    pub exit_code: i32,
}

/// Why an errand could not be run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No name was given and the spec has no `job.template` (Go's text).
    #[error("At least one job template is required to run an errand")]
    NoJobTemplate,
    /// The name is not one of the spec's jobs (Go's text).
    #[error("Could not find errand {0}")]
    NotFound(String),
    /// The job name cannot be a path component.
    #[error(transparent)]
    Name(#[from] platform::name::Error),
    /// The script could not be run (Go's text).
    #[error("Running errand script")]
    Run(#[source] runner::Error),
}

/// `pub type Result<T>` of this module.
pub type Result<T> = std::result::Result<T, Error>;

impl JobScripts {
    /// Runs errand `errand_name` (or the spec's `job.template` without one) of `spec`, the current
    /// spec, and returns its output.
    pub fn run_errand(
        &self,
        spec: &ApplySpec,
        errand_name: Option<&str>,
        cancel: &CancelToken,
    ) -> Result<ErrandResult> {
        let job = errand_job(spec, errand_name)?;
        let path = self.script_path(job, ERRAND_SCRIPT)?;
        let output = self
            .runner
            .run(&script_cmd(&path), cancel)
            .map_err(Error::Run)?;
        tracing::info!(
            errand = job,
            exit_code = output.exit_code,
            was_cancelled = output.was_cancelled,
            "errand finished"
        );
        Ok(ErrandResult {
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            exit_code: output.exit_code,
        })
    }
}

/// The job whose `bin/run` the errand is.
pub fn errand_job<'a>(spec: &'a ApplySpec, errand_name: Option<&'a str>) -> Result<&'a str> {
    match errand_name {
        None if spec.job.template.is_empty() => Err(Error::NoJobTemplate),
        None => Ok(&spec.job.template),
        // Go looks in `job.templates` itself, not in the jobs of the rendered templates archive.
        Some(name) if spec.job.templates.iter().any(|job| job.name == name) => Ok(name),
        Some(name) => Err(Error::NotFound(name.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use crate::apply_spec::JobTemplateSpec;

    use super::*;

    #[test]
    fn the_errand_is_the_named_job_or_the_template() {
        let mut spec = ApplySpec::default();
        assert_eq!(
            errand_job(&spec, None).unwrap_err().to_string(),
            "At least one job template is required to run an errand"
        );
        spec.job.template = "smoke-tests".into();
        spec.job.templates = vec![JobTemplateSpec {
            name: "acceptance".into(),
            version: "1".into(),
        }];
        assert_eq!(errand_job(&spec, None).unwrap(), "smoke-tests");
        assert_eq!(errand_job(&spec, Some("acceptance")).unwrap(), "acceptance");
        assert_eq!(
            errand_job(&spec, Some("smoke-tests"))
                .unwrap_err()
                .to_string(),
            "Could not find errand smoke-tests"
        );
    }

    #[test]
    fn the_result_has_go_keys() {
        let result = ErrandResult {
            stdout: "out".into(),
            stderr: "err".into(),
            exit_code: 3,
        };
        assert_eq!(
            serde_json::to_string(&result).unwrap(),
            r#"{"stdout":"out","stderr":"err","exit_code":3}"#
        );
    }
}
