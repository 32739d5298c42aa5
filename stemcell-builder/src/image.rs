//! The disk image: a raw file partitioned with `sfdisk` (MBR, one bootable Linux partition from
//! sector 2048 to the end), an ext4 root made straight from the root directory at the partition's
//! offset (`mkfs.ext4 -d`, so no partition device is needed: loop devices here do not scan
//! partitions), extlinux installed through a loop mount at that offset, syslinux's `mbr.bin` in the
//! first 440 bytes, then converted to a compressed qcow2 with `qemu-img`.
//!
//! The argv of every step is built by a pure function; [`build_image`] runs them in order and
//! unmounts the loop mount on every path.

use std::fs;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use platform::cmd::{Cmd, CommandRunner};

use crate::run;

/// Where the root partition starts: 1 MiB, sector 2048.
pub const PARTITION_OFFSET_BYTES: u64 = 1024 * 1024;
/// The default size of the virtual disk: the toolchain plus about 1 GiB free.
pub const DEFAULT_DISK_SIZE_MIB: u64 = 3072;
/// syslinux's MBR boot code (Debian package `syslinux-common`).
pub const MBR_BIN: &str = "/usr/lib/syslinux/mbr/mbr.bin";
/// The boot code's size: the first 440 bytes of the MBR, before the disk signature.
pub const MBR_CODE_BYTES: usize = 440;

/// What the image is made of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// The virtual disk's size.
    pub disk_size_mib: u64,
    /// The root filesystem's UUID (the one fstab and extlinux.conf name).
    pub root_uuid: String,
    /// syslinux's `mbr.bin`.
    pub mbr_bin: PathBuf,
}

/// Why making the image failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The layout cannot hold a root partition.
    #[error("disk size {disk_size_mib} MiB is too small (at least 64 MiB)")]
    TooSmall {
        /// The size asked for.
        disk_size_mib: u64,
    },
    /// A file could not be handled.
    #[error("{action} {}", .path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A command failed.
    #[error(transparent)]
    Command(#[from] run::Error),
}

/// The `sfdisk` script: a DOS label and one bootable Linux partition from sector 2048 to the end.
pub fn sfdisk_script() -> String {
    "label: dos\nstart=2048, type=83, bootable\n".to_owned()
}

/// `sfdisk` partitioning the raw image file (the script on stdin).
pub fn sfdisk_command(raw: &Path) -> Cmd {
    Cmd::new("sfdisk")
        .arg("--no-reread")
        .arg("--no-tell-kernel")
        .arg(raw)
        .stdin(sfdisk_script())
}

/// `mkfs.ext4` making the root filesystem from `root` inside the partition, sized to the end of
/// the disk (in KiB).
pub fn mkfs_command(raw: &Path, root: &Path, layout: &Layout) -> Cmd {
    let size_kib = layout.disk_size_mib * 1024 - PARTITION_OFFSET_BYTES / 1024;
    Cmd::new("mkfs.ext4")
        .args(["-q", "-F", "-L", "root", "-U", &layout.root_uuid])
        .arg("-d")
        .arg(root)
        .arg("-E")
        .arg(format!("offset={PARTITION_OFFSET_BYTES}"))
        .arg(raw)
        .arg(format!("{size_kib}k"))
}

/// The loop mount of the partition, only to run extlinux.
pub fn mount_command(raw: &Path, mount_point: &Path) -> Cmd {
    Cmd::new("mount")
        .arg("-o")
        .arg(format!("loop,offset={PARTITION_OFFSET_BYTES}"))
        .arg(raw)
        .arg(mount_point)
}

/// `extlinux --install` into `/boot/extlinux` of the mounted root (where extlinux.conf is).
pub fn extlinux_command(mount_point: &Path) -> Cmd {
    Cmd::new("extlinux")
        .arg("--install")
        .arg(mount_point.join("boot/extlinux"))
}

/// The conversion of the raw image to a compressed qcow2. Eight coroutines writing out of order
/// (`-m 8 -W`) let qemu-img compress clusters on all cores (measured here: 21 s instead of 29 s).
pub fn convert_command(raw: &Path, qcow2: &Path) -> Cmd {
    Cmd::new("qemu-img")
        .args(["convert", "-c", "-m", "8", "-W", "-f", "raw", "-O", "qcow2"])
        .arg(raw)
        .arg(qcow2)
}

/// Makes `qcow2` from the customised `root`, using `work` for the raw image and the mount point.
pub fn build_image(
    runner: &dyn CommandRunner,
    root: &Path,
    work: &Path,
    layout: &Layout,
    qcow2: &Path,
) -> Result<(), Error> {
    if layout.disk_size_mib < 64 {
        return Err(Error::TooSmall {
            disk_size_mib: layout.disk_size_mib,
        });
    }
    let mbr = read_mbr_code(&layout.mbr_bin)?;
    let raw = work.join("disk.raw");
    let file = fs::File::create(&raw).map_err(io("creating", &raw))?;
    file.set_len(layout.disk_size_mib * 1024 * 1024)
        .map_err(io("sizing", &raw))?;
    drop(file);

    run::run(runner, &sfdisk_command(&raw))?;
    run::run(runner, &mkfs_command(&raw, root, layout))?;
    let mount_point = work.join("mnt");
    fs::create_dir_all(&mount_point).map_err(io("creating", &mount_point))?;
    run::run(runner, &mount_command(&raw, &mount_point))?;
    let installed = run::run(runner, &extlinux_command(&mount_point));
    let unmounted = run::run(runner, &Cmd::new("umount").arg(&mount_point));
    installed?;
    unmounted?;
    write_mbr_code(&raw, &mbr)?;
    run::run(runner, &convert_command(&raw, qcow2))?;
    fs::remove_file(&raw).map_err(io("removing", &raw))?;
    Ok(())
}

/// Reads the boot code (at most [`MBR_CODE_BYTES`]) from syslinux's `mbr.bin`.
pub fn read_mbr_code(path: &Path) -> Result<Vec<u8>, Error> {
    let bytes = fs::read(path).map_err(io("reading (install syslinux-common)", path))?;
    Ok(bytes[..bytes.len().min(MBR_CODE_BYTES)].to_vec())
}

/// Writes `code` at the start of `raw`, keeping the partition table after byte 440.
pub fn write_mbr_code(raw: &Path, code: &[u8]) -> Result<(), Error> {
    let code = &code[..code.len().min(MBR_CODE_BYTES)];
    let mut file = fs::OpenOptions::new()
        .write(true)
        .open(raw)
        .map_err(io("opening", raw))?;
    file.seek(SeekFrom::Start(0))
        .and_then(|_| file.write_all(code))
        .map_err(io("writing the boot code to", raw))
}

/// The partition table entries of `raw` as (bootable, first sector, sectors, type) (used by tests
/// to check the layout without a partition device).
pub fn read_partitions(raw: &Path) -> Result<Vec<(bool, u32, u32, u8)>, Error> {
    let mut mbr = [0u8; 512];
    fs::File::open(raw)
        .and_then(|mut file| file.read_exact(&mut mbr))
        .map_err(io("reading", raw))?;
    Ok((0..4)
        .map(|i| &mbr[446 + i * 16..446 + (i + 1) * 16])
        .filter(|entry| entry[4] != 0)
        .map(|entry| {
            let le = |at: usize| {
                u32::from_le_bytes([entry[at], entry[at + 1], entry[at + 2], entry[at + 3]])
            };
            (entry[0] == 0x80, le(8), le(12), entry[4])
        })
        .collect())
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> Error {
    let path = path.to_owned();
    move |source| Error::Io {
        action,
        path,
        source,
    }
}

#[cfg(test)]
mod tests {
    use platform::testing::{RecordingRunner, Reply};

    use super::*;

    fn layout(dir: &Path) -> Layout {
        let mbr_bin = dir.join("mbr.bin");
        fs::write(&mbr_bin, vec![0xEB; 512]).unwrap();
        Layout {
            disk_size_mib: 3072,
            root_uuid: "0b5f2a56-8a47-4c47-9d2c-7d3c8a0d1e11".into(),
            mbr_bin,
        }
    }

    #[test]
    fn the_steps_partition_format_install_and_convert() {
        let dir = tempfile::tempdir().unwrap();
        let work = dir.path();
        let layout = layout(work);
        let raw = work.join("disk.raw");
        let mnt = work.join("mnt");
        let s = |p: &Path| p.to_str().unwrap().to_owned();
        let (raw_s, mnt_s) = (s(&raw), s(&mnt));
        let ext_dir = s(&mnt.join("boot/extlinux"));
        let runner = RecordingRunner::new();
        let sfdisk = ["sfdisk", "--no-reread", "--no-tell-kernel", raw_s.as_str()];
        runner.expect(&sfdisk, Reply::Ok(String::new()));
        let mkfs = [
            "mkfs.ext4",
            "-q",
            "-F",
            "-L",
            "root",
            "-U",
            "0b5f2a56-8a47-4c47-9d2c-7d3c8a0d1e11",
            "-d",
            "/w/root",
            "-E",
            "offset=1048576",
            raw_s.as_str(),
            "3144704k",
        ];
        runner.expect(&mkfs, Reply::Ok(String::new()));
        let mount = [
            "mount",
            "-o",
            "loop,offset=1048576",
            raw_s.as_str(),
            mnt_s.as_str(),
        ];
        runner.expect(&mount, Reply::Ok(String::new()));
        runner.expect(
            &["extlinux", "--install", &ext_dir],
            Reply::Ok(String::new()),
        );
        runner.expect(&["umount", &mnt_s], Reply::Ok(String::new()));
        let convert = [
            "qemu-img",
            "convert",
            "-c",
            "-m",
            "8",
            "-W",
            "-f",
            "raw",
            "-O",
            "qcow2",
            &raw_s,
            "/out/root.img",
        ];
        runner.expect(&convert, Reply::Ok(String::new()));

        build_image(
            &runner,
            Path::new("/w/root"),
            work,
            &layout,
            Path::new("/out/root.img"),
        )
        .unwrap();
        assert!(runner.unused().is_empty(), "{:?}", runner.unused());
        assert_eq!(runner.recorded().len(), 6);
        assert!(!raw.exists(), "the raw image is removed after conversion");
        assert_eq!(
            sfdisk_command(&raw).stdin.unwrap(),
            sfdisk_script().as_bytes()
        );
    }

    #[test]
    fn a_failed_extlinux_still_unmounts() {
        let dir = tempfile::tempdir().unwrap();
        let work = dir.path();
        let layout = layout(work);
        let raw = work.join("disk.raw");
        let mnt = work.join("mnt");
        let runner = RecordingRunner::new();
        for cmd in [
            sfdisk_command(&raw),
            mkfs_command(&raw, Path::new("/w/root"), &layout),
            mount_command(&raw, &mnt),
        ] {
            let argv: Vec<String> = std::iter::once(&cmd.program)
                .chain(&cmd.args)
                .map(|s| s.to_string_lossy().into_owned())
                .collect();
            runner.expect(
                &argv.iter().map(String::as_str).collect::<Vec<_>>(),
                Reply::Ok(String::new()),
            );
        }
        let ext_dir = mnt.join("boot/extlinux");
        runner.expect(
            &["extlinux", "--install", ext_dir.to_str().unwrap()],
            Reply::Fail(1, "not a directory".into()),
        );
        runner.expect(&["umount", mnt.to_str().unwrap()], Reply::Ok(String::new()));
        let err = build_image(
            &runner,
            Path::new("/w/root"),
            work,
            &layout,
            Path::new("/out/root.img"),
        )
        .unwrap_err();
        assert!(err.to_string().starts_with("running `extlinux --install"));
        assert!(runner.unused().is_empty());
    }

    #[test]
    fn a_tiny_disk_is_refused_before_anything_runs() {
        let dir = tempfile::tempdir().unwrap();
        let mut layout = layout(dir.path());
        layout.disk_size_mib = 10;
        let runner = RecordingRunner::new();
        let err = build_image(
            &runner,
            dir.path(),
            dir.path(),
            &layout,
            &dir.path().join("q"),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "disk size 10 MiB is too small (at least 64 MiB)"
        );
        assert!(runner.recorded().is_empty());
        assert!(!dir.path().join("disk.raw").exists());
    }

    #[test]
    fn the_boot_code_keeps_the_partition_table() {
        let dir = tempfile::tempdir().unwrap();
        let raw = dir.path().join("disk.raw");
        let mut mbr = vec![0u8; 1024];
        // One bootable Linux partition at 2048, 4096 sectors long.
        mbr[446] = 0x80;
        mbr[446 + 4] = 0x83;
        mbr[446 + 8..446 + 12].copy_from_slice(&2048u32.to_le_bytes());
        mbr[446 + 12..446 + 16].copy_from_slice(&4096u32.to_le_bytes());
        mbr[510] = 0x55;
        mbr[511] = 0xAA;
        fs::write(&raw, &mbr).unwrap();
        write_mbr_code(&raw, &[0xFA; 512]).unwrap();
        let written = fs::read(&raw).unwrap();
        assert!(written[..440].iter().all(|b| *b == 0xFA));
        assert_eq!(&written[440..], &mbr[440..]);
        assert_eq!(read_partitions(&raw).unwrap(), [(true, 2048, 4096, 0x83)]);
    }
}
