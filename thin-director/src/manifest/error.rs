//! Problems found in a deployment manifest or a cloud config, each with the path of what is wrong.
//!
//! The BOSH director stops at the first problem (`ValidationHelper#safe_property` raises); we collect
//! every problem we can, so an operator fixes a manifest in one round, and show them one per line.

use std::fmt;

/// Which document a problem is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Document {
    /// The deployment manifest.
    Manifest,
    /// The cloud config.
    CloudConfig,
}

/// One problem: where it is and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The document the problem is in.
    pub document: Document,
    /// The path of the value, e.g. `instance_groups[1].jobs[0].release`; empty for the document itself.
    pub path: String,
    /// What is wrong, in lower case.
    pub message: String,
}

/// Everything wrong with a manifest or a cloud config; `Display` shows one problem per line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", lines(.problems))]
pub struct Error {
    /// The problems, in the order they were found.
    pub problems: Vec<Problem>,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.document == Document::CloudConfig {
            f.write_str("cloud config: ")?;
        }
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

fn lines(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(Problem::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problems_show_one_per_line_with_their_document() {
        let error = Error {
            problems: vec![
                Problem {
                    document: Document::Manifest,
                    path: "instance_groups[1].jobs[0].release".into(),
                    message: "release \"nope\" is not in releases".into(),
                },
                Problem {
                    document: Document::CloudConfig,
                    path: "networks[0].subnets[0].range".into(),
                    message: "invalid CIDR range \"x\"".into(),
                },
                Problem {
                    document: Document::Manifest,
                    path: String::new(),
                    message: "expected a map, found a string".into(),
                },
            ],
        };
        assert_eq!(
            error.to_string(),
            "instance_groups[1].jobs[0].release: release \"nope\" is not in releases\n\
             cloud config: networks[0].subnets[0].range: invalid CIDR range \"x\"\n\
             expected a map, found a string"
        );
    }
}
