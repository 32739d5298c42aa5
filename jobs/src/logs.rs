//! Log tarballs for `fetch_logs` and `bundle_logs` (`agent/logstarprovider/logs_tar_provider.go`).
//!
//! `log_types` is a comma list of `job` (`sys/log` under the base dir), `agent` (`bosh/log`) and
//! `system` (`/var/log`, under `var/log/` in the tarball); anything else is `Invalid log type`, as in
//! Go. Filters are glob patterns matched against each file's path relative to its directory, `**/*`
//! (every file) when none are given. Matching files are copied into a temporary tree, which is then
//! packed as a `.tgz`; symlinks are not followed.

use std::fs;
use std::path::{Path, PathBuf};

use settings::Dirs;

use crate::archive;

/// Why a log tarball could not be made.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A log type that is not `job`, `agent` or `system` (the Go agent's text).
    #[error("Invalid log type")]
    InvalidLogType(String),
    /// A filter that is not a glob pattern.
    #[error("invalid log filter {filter:?}")]
    Filter {
        /// The filter.
        filter: String,
        /// The cause.
        #[source]
        source: glob::PatternError,
    },
    /// Copying a log file failed.
    #[error("copying {}", .path.display())]
    Copy {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Packing the logs failed.
    #[error("making logs tarball")]
    Pack(#[source] archive::Error),
}

/// A result of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Packs the logs of `log_types` matching `filters` into `tarball`. `system_log_dir` is the host's
/// `/var/log` (none on platforms without one); `work_dir` holds the temporary copy.
pub fn pack(
    log_types: &str,
    filters: &[String],
    dirs: &Dirs,
    system_log_dir: Option<&Path>,
    work_dir: &Path,
    tarball: &Path,
) -> Result<()> {
    let patterns = patterns(filters)?;
    let mut sources: Vec<(PathBuf, &str)> = Vec::new();
    for log_type in log_types.split(',') {
        match log_type {
            "job" => sources.push((dirs.logs_dir(), "")),
            "agent" => sources.push((dirs.agent_logs_dir(), "")),
            "system" => {
                if let Some(dir) = system_log_dir {
                    sources.push((dir.to_owned(), "var/log"));
                }
            }
            other => return Err(Error::InvalidLogType(other.to_owned())),
        }
    }
    let copy = tempfile::Builder::new()
        .prefix("bosh-agent-logs-")
        .tempdir_in(work_dir)
        .map_err(|source| Error::Copy {
            path: work_dir.to_owned(),
            source,
        })?;
    for (dir, prefix) in sources {
        copy_matching(&dir, &dir, &copy.path().join(prefix), &patterns)?;
    }
    archive::create(copy.path(), tarball).map_err(Error::Pack)
}

fn patterns(filters: &[String]) -> Result<Vec<glob::Pattern>> {
    let defaults = ["**/*".to_owned()];
    let filters = if filters.is_empty() {
        &defaults[..]
    } else {
        filters
    };
    filters
        .iter()
        .map(|filter| {
            glob::Pattern::new(filter).map_err(|source| Error::Filter {
                filter: filter.clone(),
                source,
            })
        })
        .collect()
}

/// Copies the regular files under `dir` whose path relative to `root` matches a pattern.
fn copy_matching(root: &Path, dir: &Path, target: &Path, patterns: &[glob::Pattern]) -> Result<()> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        // A log directory that does not exist has no logs.
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(Error::Copy {
                path: dir.to_owned(),
                source,
            });
        }
    };
    let copy_error = |path: &Path| {
        let path = path.to_owned();
        move |source| Error::Copy { path, source }
    };
    for entry in entries {
        let entry = entry.map_err(copy_error(dir))?;
        let path = entry.path();
        let kind = entry.file_type().map_err(copy_error(&path))?;
        if kind.is_dir() {
            copy_matching(root, &path, target, patterns)?;
        } else if kind.is_file() {
            let relative = path.strip_prefix(root).unwrap_or(&path);
            let options = glob::MatchOptions {
                require_literal_separator: true,
                ..glob::MatchOptions::new()
            };
            if patterns
                .iter()
                .any(|pattern| pattern.matches_path_with(relative, options))
            {
                let destination = target.join(relative);
                if let Some(parent) = destination.parent() {
                    fs::create_dir_all(parent).map_err(copy_error(parent))?;
                }
                fs::copy(&path, &destination).map_err(copy_error(&path))?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(tarball: &Path) -> Vec<String> {
        let out = tempfile::tempdir().unwrap();
        archive::extract(
            tarball,
            &out.path().join("x"),
            &archive::ExtractOptions::default(),
        )
        .unwrap();
        let mut found = Vec::new();
        let mut stack = vec![out.path().join("x")];
        while let Some(dir) = stack.pop() {
            for entry in fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                } else {
                    found.push(
                        path.strip_prefix(out.path().join("x"))
                            .unwrap()
                            .display()
                            .to_string(),
                    );
                }
            }
        }
        found.sort();
        found
    }

    fn base_with_logs() -> (tempfile::TempDir, Dirs) {
        let base = tempfile::tempdir().unwrap();
        let dirs = Dirs::new(base.path());
        for (path, text) in [
            ("sys/log/web/web.stdout.log", "out"),
            ("sys/log/web/web.stderr.log", "err"),
            ("sys/log/worker/worker.log", "work"),
            ("bosh/log/current", "agent"),
        ] {
            let path = base.path().join(path);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, text).unwrap();
        }
        (base, dirs)
    }

    #[test]
    fn job_and_agent_logs_are_packed_with_every_file_by_default() {
        let (base, dirs) = base_with_logs();
        let tarball = base.path().join("logs.tgz");
        pack("job,agent", &[], &dirs, None, base.path(), &tarball).unwrap();
        assert_eq!(
            names(&tarball),
            vec![
                "current",
                "web/web.stderr.log",
                "web/web.stdout.log",
                "worker/worker.log"
            ]
        );
    }

    #[test]
    fn filters_select_files_and_system_logs_go_under_var_log() {
        let (base, dirs) = base_with_logs();
        let system = base.path().join("host-var-log");
        fs::create_dir_all(&system).unwrap();
        fs::write(system.join("syslog"), "sys").unwrap();
        let tarball = base.path().join("logs.tgz");
        pack(
            "job,system",
            &["web/*.stdout.log".to_owned(), "syslog".to_owned()],
            &dirs,
            Some(&system),
            base.path(),
            &tarball,
        )
        .unwrap();
        assert_eq!(
            names(&tarball),
            vec!["var/log/syslog", "web/web.stdout.log"]
        );
    }

    #[test]
    fn unknown_log_types_get_the_go_text() {
        let (base, dirs) = base_with_logs();
        let err = pack(
            "job,kernel",
            &[],
            &dirs,
            None,
            base.path(),
            &base.path().join("l.tgz"),
        )
        .unwrap_err();
        assert_eq!(err.to_string(), "Invalid log type");
        assert!(!base.path().join("l.tgz").exists());
    }
}
