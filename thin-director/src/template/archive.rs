//! The rendered templates archive: a gzipped tar with one top-level directory per job holding its
//! `monit` and its rendered files, as the director's `RenderedTemplatesInMemoryTarGzipper` writes
//! it (regular file entries only). Ours is deterministic, so the same rendered files always give
//! the same bytes and the same blob SHA-1: entries sorted by path, mtime 0, owner and group 0 with
//! no names, mode 0644, and 0755 for files under `bin/` (the agent fixes modes anyway).

use std::io::Write as _;

use flate2::Compression;
use flate2::write::GzEncoder;
use tar::{EntryType, Header};

use crate::template::RenderedJob;

/// The `.tgz` of `jobs`.
pub(crate) fn build(jobs: &[RenderedJob]) -> std::io::Result<Vec<u8>> {
    let mut entries: Vec<(String, &[u8])> = Vec::new();
    for job in jobs {
        entries.push((format!("{}/monit", job.name), &job.monit));
        for file in &job.files {
            entries.push((format!("{}/{}", job.name, file.destination), &file.contents));
        }
    }
    entries.sort_by(|a, b| a.0.cmp(&b.0));

    // GzBuilder leaves the header's mtime at 0 and names no file.
    let gzip = GzEncoder::new(Vec::new(), Compression::default());
    let mut tar = tar::Builder::new(gzip);
    for (path, contents) in entries {
        let mut header = Header::new_gnu();
        header.set_entry_type(EntryType::Regular);
        header.set_size(contents.len() as u64);
        header.set_mode(mode(&path));
        header.set_mtime(0);
        header.set_uid(0);
        header.set_gid(0);
        // Paths past 100 bytes get a GNU long-name entry, which the agents' tar readers know.
        tar.append_data(&mut header, &path, contents)?;
    }
    let mut gzip = tar.into_inner()?;
    gzip.flush()?;
    gzip.finish()
}

/// 0755 for `<job>/bin/...`, 0644 otherwise.
fn mode(path: &str) -> u32 {
    let in_bin = path
        .split_once('/')
        .is_some_and(|(_, rest)| rest.starts_with("bin/"));
    if in_bin { 0o755 } else { 0o644 }
}

#[cfg(test)]
mod tests {
    use std::io::Read as _;

    use super::*;
    use crate::template::RenderedFile;

    fn jobs() -> Vec<RenderedJob> {
        let file = |source: &str, destination: &str, contents: &str| RenderedFile {
            source: source.into(),
            destination: destination.into(),
            contents: contents.into(),
        };
        vec![
            RenderedJob {
                name: "web".into(),
                monit: b"check process web\n".to_vec(),
                files: vec![
                    file("config.yml.erb", "config/config.yml", "port: 1\n"),
                    file("ctl.erb", "bin/ctl", "#!/bin/sh\n"),
                    file(
                        "long.erb",
                        &format!("config/{}/file", "d".repeat(120)),
                        "long\n",
                    ),
                ],
            },
            RenderedJob {
                name: "db".into(),
                monit: Vec::new(),
                files: vec![file(".bosh/links.json", ".bosh/links.json", "[]\n")],
            },
        ]
    }

    /// (path, mode, mtime, uid, gid, type, contents) of every entry, in archive order.
    fn entries(archive: &[u8]) -> Vec<(String, u32, u64, u64, u64, EntryType, String)> {
        let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(archive));
        tar.entries()
            .unwrap()
            .map(|entry| {
                let mut entry = entry.unwrap();
                let header = entry.header().clone();
                let mut contents = String::new();
                entry.read_to_string(&mut contents).unwrap();
                (
                    entry.path().unwrap().display().to_string(),
                    header.mode().unwrap(),
                    header.mtime().unwrap(),
                    header.uid().unwrap(),
                    header.gid().unwrap(),
                    header.entry_type(),
                    contents,
                )
            })
            .collect()
    }

    #[test]
    fn one_directory_per_job_sorted_with_fixed_metadata() {
        let archive = build(&jobs()).unwrap();
        let long = format!("web/config/{}/file", "d".repeat(120));
        let expected: Vec<(&str, u32, &str)> = vec![
            ("db/.bosh/links.json", 0o644, "[]\n"),
            ("db/monit", 0o644, ""),
            ("web/bin/ctl", 0o755, "#!/bin/sh\n"),
            ("web/config/config.yml", 0o644, "port: 1\n"),
            (&long, 0o644, "long\n"),
            ("web/monit", 0o644, "check process web\n"),
        ];
        let actual = entries(&archive);
        assert_eq!(actual.len(), expected.len());
        for ((path, mode, mtime, uid, gid, kind, contents), (want_path, want_mode, want)) in
            actual.iter().zip(&expected)
        {
            assert_eq!(path, want_path);
            assert_eq!(*mode, *want_mode, "{path}");
            assert_eq!((*mtime, *uid, *gid), (0, 0, 0), "{path}");
            assert_eq!(*kind, EntryType::Regular, "{path}");
            assert_eq!(contents, want, "{path}");
        }
    }

    #[test]
    fn same_files_give_the_same_bytes_whatever_their_order() {
        let first = build(&jobs()).unwrap();
        let mut shuffled = jobs();
        shuffled.reverse();
        shuffled[1].files.reverse();
        assert_eq!(build(&shuffled).unwrap(), first);
        // And the gzip header carries no timestamp: bytes 4..8 are MTIME.
        assert_eq!(&first[4..8], &[0, 0, 0, 0]);
    }

    #[test]
    fn bin_mode_only_for_the_jobs_bin_dir() {
        assert_eq!(mode("web/bin/ctl"), 0o755);
        assert_eq!(mode("web/bin/sub/x"), 0o755);
        assert_eq!(mode("web/config/bin/x"), 0o644);
        assert_eq!(mode("web/binary"), 0o644);
        assert_eq!(mode("bin/monit"), 0o644);
    }
}
