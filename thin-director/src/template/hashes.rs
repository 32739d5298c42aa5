//! The apply spec's `configuration_hash` and `template_hashes`, computed over the rendered files as
//! the BOSH director computes them (cloudfoundry/bosh `core/templates/rendered_job_instance.rb` and
//! `rendered_job_template.rb`).

use std::collections::BTreeMap;

use sha1::{Digest as _, Sha1};

use crate::template::RenderedJob;

/// One SHA-1 over, for each job in order of name: its rendered `monit`, its name, then for each
/// file in order of source path its contents and its destination.
pub fn configuration_hash(jobs: &[RenderedJob]) -> String {
    let mut sorted: Vec<&RenderedJob> = jobs.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    let mut digest = Sha1::new();
    for job in sorted {
        digest.update(&job.monit);
        digest.update(job.name.as_bytes());
        for file in sorted_files(job) {
            digest.update(&file.contents);
            digest.update(file.destination.as_bytes());
        }
    }
    format!("{:x}", digest.finalize())
}

/// Job name → its template hash ([`RenderedJob::template_hash`](crate::template::RenderedJob::template_hash)).
pub fn template_hashes(jobs: &[RenderedJob]) -> BTreeMap<String, String> {
    jobs.iter()
        .map(|job| (job.name.clone(), template_hash(job)))
        .collect()
}

/// The SHA-1 of a job's rendered `monit` followed by the contents of its files in order of source
/// path.
pub(crate) fn template_hash(job: &RenderedJob) -> String {
    let mut digest = Sha1::new();
    digest.update(&job.monit);
    for file in sorted_files(job) {
        digest.update(&file.contents);
    }
    format!("{:x}", digest.finalize())
}

/// The SHA-1 of `bytes`, lower-case hex.
pub(crate) fn sha1_hex(bytes: &[u8]) -> String {
    format!("{:x}", Sha1::digest(bytes))
}

/// A job's files in order of source path (Ruby's `String#<=>`: bytewise).
fn sorted_files(job: &RenderedJob) -> Vec<&crate::template::RenderedFile> {
    let mut files: Vec<_> = job.files.iter().collect();
    files.sort_by(|a, b| a.source.cmp(&b.source));
    files
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::template::RenderedFile;

    fn file(source: &str, destination: &str, contents: &str) -> RenderedFile {
        RenderedFile {
            source: source.into(),
            destination: destination.into(),
            contents: contents.into(),
        }
    }

    fn jobs() -> Vec<RenderedJob> {
        vec![
            RenderedJob {
                name: "web".into(),
                monit: b"check process web".to_vec(),
                // Not in source order: the hashes sort.
                files: vec![
                    file("z.erb", "bin/ctl", "CTL"),
                    file("a.erb", "config/a.yml", "A"),
                ],
            },
            RenderedJob {
                name: "db".into(),
                monit: b"check process db".to_vec(),
                files: vec![file(".bosh/links.json", ".bosh/links.json", "[]\n")],
            },
        ]
    }

    #[test]
    fn template_hash_is_sha1_of_monit_then_contents_by_source() {
        let hashes = template_hashes(&jobs());
        assert_eq!(hashes["web"], sha1_hex(b"check process webACTL"));
        assert_eq!(hashes["db"], sha1_hex(b"check process db[]\n"));
        assert_eq!(hashes.len(), 2);
    }

    #[test]
    fn configuration_hash_covers_monit_name_contents_and_destinations_by_job_name() {
        let expected = sha1_hex(
            b"check process dbdb[]\n.bosh/links.json\
              check process webwebAconfig/a.ymlCTLbin/ctl",
        );
        assert_eq!(configuration_hash(&jobs()), expected);
        let mut reversed = jobs();
        reversed.reverse();
        assert_eq!(configuration_hash(&reversed), expected);
    }

    #[test]
    fn a_changed_destination_changes_only_the_configuration_hash() {
        let mut moved = jobs();
        moved[0].files[0].destination = "bin/other".into();
        assert_ne!(configuration_hash(&moved), configuration_hash(&jobs()));
        assert_eq!(template_hashes(&moved), template_hashes(&jobs()));
    }

    #[test]
    fn known_sha1() {
        // SHA-1 of the empty string and of "abc" (FIPS 180 test vectors).
        assert_eq!(sha1_hex(b""), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
        assert_eq!(sha1_hex(b"abc"), "a9993e364706816aba3e25717850c26c9cd0d89d");
    }
}
