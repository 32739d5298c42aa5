//! One script per job, all at once, with the failures summed up in one error: Go's
//! `agent/script/parallel_script.go`.
//!
//! A job whose script does not exist is skipped and not counted. Each failure is logged with its
//! cause; the error names only the jobs:
//! `2 of 3 drain scripts failed. Failed Jobs: a, b. Successful Jobs: c.` (the `Successful Jobs`
//! part only when some succeeded). The director shows that text, so it is Go's to the letter.
//!
//! Where we differ from Go: Go lists the jobs in the order their scripts finished, which varies from
//! run to run; we list them in the order of the spec's jobs, one of the orders Go can print.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use settings::source::error_chain;

/// One job's script, ready to run.
#[derive(Debug)]
pub struct JobScript<F> {
    /// The job (the "tag" Go reports).
    pub job: String,
    /// The script; when it does not exist the job is skipped.
    pub path: PathBuf,
    /// Runs it.
    pub run: F,
}

/// Some scripts failed (Go's text, see the module docs).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", summary_text(.script_name, .failed_jobs, .successful_jobs))]
pub struct Error {
    /// The script's name (`drain`, `pre-start`).
    pub script_name: String,
    /// The jobs whose script failed.
    pub failed_jobs: Vec<String>,
    /// The jobs whose script succeeded.
    pub successful_jobs: Vec<String>,
}

/// Runs every existing script of `scripts` on its own thread and waits for all of them; `Err` when
/// any failed.
pub fn run<F, E>(script_name: &str, scripts: Vec<JobScript<F>>) -> Result<(), Error>
where
    F: FnOnce() -> Result<(), E> + Send,
    E: std::error::Error + Send + 'static,
{
    let existing: Vec<JobScript<F>> = scripts
        .into_iter()
        .filter(|script| {
            let exists = script_exists(&script.path);
            if !exists {
                tracing::debug!(job = %script.job, script = script_name, "no such script in job");
            }
            exists
        })
        .collect();
    tracing::info!(
        count = existing.len(),
        script = script_name,
        "running scripts in parallel"
    );
    let outcomes: Vec<(String, PathBuf, Result<(), E>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = existing
            .into_iter()
            .map(|script| {
                let JobScript { job, path, run } = script;
                (job, path, scope.spawn(run))
            })
            .collect();
        handles
            .into_iter()
            .map(|(job, path, handle)| {
                // A panicking script closure is a bug of ours; `scope` would re-raise it anyway.
                let result = handle
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
                (job, path, result)
            })
            .collect()
    });
    let mut failed_jobs = Vec::new();
    let mut successful_jobs = Vec::new();
    for (job, path, result) in outcomes {
        match result {
            Ok(()) => {
                tracing::info!(job, script = %path.display(), "script succeeded");
                successful_jobs.push(job);
            }
            Err(err) => {
                tracing::error!(job, script = %path.display(), error = %error_chain(&err), "script failed");
                failed_jobs.push(job);
            }
        }
    }
    summarize(script_name, failed_jobs, successful_jobs)
}

/// `Err` naming the failed and successful jobs when any failed (Go's `summarizeErrs`).
pub fn summarize(
    script_name: &str,
    failed_jobs: Vec<String>,
    successful_jobs: Vec<String>,
) -> Result<(), Error> {
    if failed_jobs.is_empty() {
        return Ok(());
    }
    Err(Error {
        script_name: script_name.to_owned(),
        failed_jobs,
        successful_jobs,
    })
}

/// Whether a script is there, as bosh-utils' `FileExists`: only "not found" means absent; a script
/// that cannot be looked at counts as present and fails when run.
pub fn script_exists(path: &Path) -> bool {
    match fs::metadata(path) {
        Ok(_) => true,
        Err(err) => err.kind() != io::ErrorKind::NotFound,
    }
}

fn summary_text(script_name: &str, failed_jobs: &[String], successful_jobs: &[String]) -> String {
    let mut jobs = format!("Failed Jobs: {}", failed_jobs.join(", "));
    if !successful_jobs.is_empty() {
        jobs.push_str(". Successful Jobs: ");
        jobs.push_str(&successful_jobs.join(", "));
    }
    format!(
        "{} of {} {script_name} scripts failed. {jobs}.",
        failed_jobs.len(),
        failed_jobs.len() + successful_jobs.len()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(names: &[&str]) -> Vec<String> {
        names.iter().map(|name| (*name).to_owned()).collect()
    }

    #[test]
    fn the_summary_is_go_text() {
        let cases: &[(&[&str], &[&str], Option<&str>)] = &[
            (&[], &["a", "b"], None),
            (&[], &[], None),
            (
                &["a"],
                &[],
                Some("1 of 1 drain scripts failed. Failed Jobs: a."),
            ),
            (
                &["a", "b"],
                &["c"],
                Some("2 of 3 drain scripts failed. Failed Jobs: a, b. Successful Jobs: c."),
            ),
            (
                &["b"],
                &["a", "c"],
                Some("1 of 3 drain scripts failed. Failed Jobs: b. Successful Jobs: a, c."),
            ),
        ];
        for (failed, succeeded, expected) in cases {
            let text = summarize("drain", names(failed), names(succeeded))
                .err()
                .map(|err| err.to_string());
            assert_eq!(text.as_deref(), *expected, "{failed:?} {succeeded:?}");
        }
    }

    #[test]
    fn missing_scripts_are_skipped_and_the_rest_run_in_spec_order() {
        let dir = tempfile::tempdir().unwrap();
        let present = dir.path().join("present");
        fs::write(&present, "").unwrap();
        let script = |job: &str, path: &Path, fails: bool| JobScript {
            job: job.to_owned(),
            path: path.to_owned(),
            run: move || {
                if fails {
                    Err(io::Error::other("exit status 1"))
                } else {
                    Ok(())
                }
            },
        };
        let err = run(
            "pre-start",
            vec![
                script("z", &present, true),
                script("missing", &dir.path().join("missing"), true),
                script("a", &present, false),
                script("m", &present, true),
            ],
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "2 of 3 pre-start scripts failed. Failed Jobs: z, m. Successful Jobs: a."
        );
        assert_eq!(
            run(
                "pre-start",
                vec![script("missing", &dir.path().join("missing"), true)]
            ),
            Ok(())
        );
    }
}
