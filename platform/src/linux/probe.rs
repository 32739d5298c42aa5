//! What a block device holds, read before anything is written to it: libblkid's low-level probe
//! (the `blkid` crate; what `blkid -p` does) with the superblocks and partitions chains, so both a
//! filesystem (`TYPE`) and a partition table (`PTTYPE`) are seen. Ambivalent results (two
//! signatures that contradict each other) are an error: such a device is left alone, as
//! Ignition's rule for reusing disks says.
//!
//! The disk steps take a [`Prober`]: [`Libblkid`] on a VM; the unit tests script what devices
//! hold through the command runner with `CliProber`, which asks `blkid -p -o export` instead.

use std::fmt;
use std::path::Path;

use crate::bootstrap::{Error, Result};

/// What libblkid found on a device.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Probe {
    /// The filesystem or other superblock (`TYPE`: `ext4`, `xfs`, `swap`...).
    pub fs_type: Option<String>,
    /// The partition table (`PTTYPE`: `dos`, `gpt`).
    pub table_type: Option<String>,
}

/// Reads what devices hold.
pub trait Prober: Send + Sync + fmt::Debug {
    /// What `device` holds; nothing found is an empty [`Probe`].
    fn probe(&self, device: &Path) -> Result<Probe>;
}

/// libblkid in-process.
#[derive(Debug, Clone, Copy, Default)]
pub struct Libblkid;

impl Prober for Libblkid {
    fn probe(&self, device: &Path) -> Result<Probe> {
        let failed = |what: &str, err: blkid::BlkIdError| {
            Error::Host(format!("probing {} ({what}): {err}", device.display()))
        };
        let prober = blkid::prober::Prober::new_from_filename(device)
            .map_err(|err| failed("opening", err))?;
        prober
            .enable_partitions(true)
            .map_err(|err| failed("enabling the partitions chain", err))?;
        match prober
            .do_safe_probe()
            .map_err(|err| failed("probing", err))?
        {
            blkid::prober::ProbeState::Success => {}
            blkid::prober::ProbeState::Ambivalent => {
                return Err(Error::Host(format!(
                    "{} holds ambivalent signatures (more than one filesystem or table); it is left as it is",
                    device.display()
                )));
            }
            _ => return Ok(Probe::default()),
        }
        let value = |name: &str| {
            prober
                .has_value(name)
                .ok()
                .filter(|has| *has)
                .and_then(|_| prober.lookup_value(name).ok())
        };
        Ok(Probe {
            fs_type: value("TYPE"),
            table_type: value("PTTYPE"),
        })
    }
}

/// The unit tests' prober: `blkid -p -o export <device>` through the command runner (a
/// reference to it, or an `Arc`), exit 2 with nothing on stderr meaning nothing found (as `blkid`
/// answers).
#[cfg(test)]
#[derive(Debug, Clone)]
pub struct CliProber<R>(pub R);

#[cfg(test)]
impl<R> Prober for CliProber<R>
where
    R: std::ops::Deref + Send + Sync + fmt::Debug,
    R::Target: crate::cmd::CommandRunner,
{
    fn probe(&self, device: &Path) -> Result<Probe> {
        let cmd = crate::cmd::Cmd::new("blkid")
            .args(["-p", "-o", "export"])
            .arg(device);
        match crate::cmd::CommandRunner::run(&*self.0, &cmd) {
            Ok(output) => {
                let mut probe = Probe::default();
                // `KEY=value` words, quoted or not.
                for word in String::from_utf8_lossy(&output.stdout).split_whitespace() {
                    match word.split_once('=') {
                        Some(("TYPE", value)) => {
                            probe.fs_type = Some(value.trim_matches('"').into())
                        }
                        Some(("PTTYPE", value)) => {
                            probe.table_type = Some(value.trim_matches('"').into());
                        }
                        _ => {}
                    }
                }
                Ok(probe)
            }
            Err(crate::cmd::Error::Failed {
                code: Some(2),
                stderr,
                ..
            }) if stderr.trim().is_empty() => Ok(Probe::default()),
            Err(source) => Err(Error::command(&cmd, source)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::cmd::{Cmd, CommandRunner as _, SystemRunner};

    #[test]
    fn libblkid_reads_filesystems_and_partition_tables_from_image_files() {
        let dir = tempfile::tempdir().unwrap();
        let blank = dir.path().join("blank.img");
        let file = std::fs::File::create(&blank).unwrap();
        file.set_len(8 << 20).unwrap();
        assert_eq!(Libblkid.probe(&blank).unwrap(), Probe::default());

        let ext4 = dir.path().join("ext4.img");
        std::fs::copy(&blank, &ext4).unwrap();
        SystemRunner
            .run(&Cmd::new("mkfs.ext4").args(["-q", "-F"]).arg(&ext4))
            .unwrap();
        assert_eq!(
            Libblkid.probe(&ext4).unwrap(),
            Probe {
                fs_type: Some("ext4".into()),
                table_type: None
            }
        );

        let table = dir.path().join("table.img");
        std::fs::copy(&blank, &table).unwrap();
        SystemRunner
            .run(
                &Cmd::new("sfdisk")
                    .arg("-q")
                    .arg(&table)
                    .stdin(&b"label: gpt\n,,L\n"[..]),
            )
            .unwrap();
        assert_eq!(
            Libblkid.probe(&table).unwrap(),
            Probe {
                fs_type: None,
                table_type: Some("gpt".into())
            }
        );

        let missing = Libblkid.probe(&dir.path().join("missing")).unwrap_err();
        assert!(missing.to_string().starts_with("probing "), "{missing}");
    }

    #[test]
    fn the_test_prober_reads_both_blkid_output_forms() {
        let runner = std::sync::Arc::new(crate::testing::RecordingRunner::new());
        runner.expect(
            &["blkid", "-p", "-o", "export", "/dev/vdb1"],
            crate::testing::Reply::Ok("/dev/vdb1: UUID=\"x\" TYPE=\"swap\"\n".into()),
        );
        runner.expect(
            &["blkid", "-p", "-o", "export", "/dev/vdc"],
            crate::testing::Reply::Ok("DEVNAME=/dev/vdc\nPTTYPE=dos\n".into()),
        );
        let prober = CliProber(runner.clone());
        assert_eq!(
            prober
                .probe(Path::new("/dev/vdb1"))
                .unwrap()
                .fs_type
                .as_deref(),
            Some("swap")
        );
        assert_eq!(
            prober
                .probe(Path::new("/dev/vdc"))
                .unwrap()
                .table_type
                .as_deref(),
            Some("dos")
        );
    }
}
