//! The names a job spec brings (the job's name, template sources and destinations) checked before
//! anything is read or rendered: each must stay inside its directory.

use std::collections::BTreeSet;

use crate::template::{Error, Job, JobSpec, LINKS_PATH, Result};

/// Checks the job name, every source and every destination of `spec`, and that no two files of
/// the job (its templates, `monit` and BOSH's links file) share a destination.
pub(crate) fn check_names(spec: &JobSpec) -> Result<()> {
    let job = &spec.name;
    if !is_plain_relative(job) || job.contains('/') {
        return Err(Error::JobName { job: job.clone() });
    }
    let mut destinations: BTreeSet<&str> = ["monit", LINKS_PATH].into();
    for (source, destination) in &spec.templates {
        if !is_plain_relative(source) {
            return Err(Error::SourcePath {
                job: job.clone(),
                template: source.clone(),
            });
        }
        if !is_plain_relative(destination) {
            return Err(Error::Destination {
                job: job.clone(),
                template: source.clone(),
                destination: destination.clone(),
            });
        }
        if !destinations.insert(destination) {
            return Err(Error::DuplicateDestination {
                job: job.clone(),
                destination: destination.clone(),
            });
        }
    }
    Ok(())
}

/// [`check_names`], and that every template's source was given.
pub(crate) fn check_job(job: &Job) -> Result<()> {
    check_names(&job.spec)?;
    for source in job.spec.templates.keys() {
        if !job.sources.contains_key(source) {
            return Err(Error::MissingSource {
                job: job.spec.name.clone(),
                template: source.clone(),
            });
        }
    }
    Ok(())
}

/// Whether `path` is a relative path of plain names: not empty, not absolute, no empty, `.` or
/// `..` component, no NUL byte. `a//b` and `a/` are refused too, so an archive entry is spelled
/// one way only.
pub(crate) fn is_plain_relative(path: &str) -> bool {
    !path.is_empty()
        && path
            .split('/')
            .all(|part| !part.is_empty() && part != "." && part != ".." && !part.contains('\0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(templates: &[(&str, &str)]) -> JobSpec {
        JobSpec {
            name: "web".into(),
            templates: templates
                .iter()
                .map(|(s, d)| (s.to_string(), d.to_string()))
                .collect(),
            ..JobSpec::default()
        }
    }

    #[test]
    fn plain_relative_paths() {
        for good in ["a", "bin/ctl", "config/x.yml", "a.b/..c", ".hidden", "a/.b"] {
            assert!(is_plain_relative(good), "{good}");
        }
        for bad in [
            "",
            "/etc/passwd",
            "..",
            "../x",
            "a/../../x",
            "a/..",
            ".",
            "./a",
            "a/./b",
            "a//b",
            "a/",
            "a\0b",
        ] {
            assert!(!is_plain_relative(bad), "{bad:?}");
        }
    }

    #[test]
    fn destinations_outside_the_job_dir_are_refused() {
        for destination in ["../../etc/cron.d/x", "/etc/passwd", "bin/../../x", ""] {
            let err = check_names(&spec(&[("a.erb", destination)])).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!(
                    "job 'web': template 'a.erb' has destination '{destination}' outside the job directory"
                )
            );
        }
        check_names(&spec(&[("a.erb", "bin/ctl"), ("b.erb", "config/b.yml")])).unwrap();
    }

    #[test]
    fn sources_outside_templates_are_refused() {
        let err = check_names(&spec(&[("../job.MF", "x")])).unwrap_err();
        assert!(matches!(err, Error::SourcePath { ref template, .. } if template == "../job.MF"));
    }

    #[test]
    fn job_names_must_be_one_component() {
        for name in ["", "..", "a/b", "/x"] {
            let bad = JobSpec {
                name: name.into(),
                ..JobSpec::default()
            };
            assert!(
                matches!(check_names(&bad), Err(Error::JobName { .. })),
                "{name}"
            );
        }
    }

    #[test]
    fn two_files_at_one_destination_are_refused() {
        for templates in [
            &[("a.erb", "x"), ("b.erb", "x")][..],
            &[("a.erb", "monit")][..],
            &[("a.erb", ".bosh/links.json")][..],
        ] {
            let err = check_names(&spec(templates)).unwrap_err();
            assert!(
                matches!(err, Error::DuplicateDestination { .. }),
                "{templates:?}"
            );
        }
    }

    #[test]
    fn every_template_needs_its_source() {
        let job = Job {
            spec: spec(&[("a.erb", "a")]),
            ..Job::default()
        };
        let err = check_job(&job).unwrap_err();
        assert_eq!(err.to_string(), "job 'web': template 'a.erb' has no source");
    }
}
