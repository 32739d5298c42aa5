//! The debootstrap stage: a Debian root filesystem with the stemcell's packages, cached as a tar
//! archive under the cache dir keyed by everything that decides its content (suite, mirror,
//! variant, package list), so a rebuild with the same inputs unpacks the archive instead of
//! downloading and installing again (debootstrap takes 40–90 s here, the unpack seconds).
//!
//! The archive is written with the system `tar` (`--numeric-owner --xattrs`) because the root holds
//! device nodes, hard links and file capabilities; it is written under a temporary name and
//! renamed, so an interrupted build never leaves a half archive that looks like a hit.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use platform::cmd::{Cmd, CommandRunner};
use sha2::{Digest, Sha256};

use crate::run;

/// Packages installed on top of debootstrap's `minbase`: the kernel and boot, systemd with
/// networkd and resolved (resolved needs a D-Bus system bus), the disk and network tools the agent
/// runs, SSH, CA certificates, and a compiler toolchain for compilation VMs. The agent links only
/// libc, libm and libgcc_s (`ldd bosh-agent`), which `libc6` and `libgcc-s1` provide.
pub const PACKAGES: [&str; 24] = [
    "linux-image-cloud-amd64",
    "initramfs-tools",
    "systemd-sysv",
    "systemd-resolved",
    "dbus",
    "udev",
    "kmod",
    "iproute2",
    "e2fsprogs",
    "xfsprogs",
    "parted",
    "fdisk",
    "eject",
    "openssh-server",
    "ca-certificates",
    "build-essential",
    "libc6",
    "libgcc-s1",
    "procps",
    "less",
    // The Linux platform's firewall (`inet bosh_agent`), root-partition growth (`growpart`) and
    // the `bosh_sudoers` group's sudo.
    "nftables",
    "cloud-guest-utils",
    "sudo",
    // setfattr/getfattr: jobs keep extended attributes on persistent disks (migrate_disk copies them).
    "attr",
];

/// What the stage installs, and from where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    /// The Debian suite (`bookworm`).
    pub suite: String,
    /// The package archive.
    pub mirror: String,
    /// debootstrap's variant.
    pub variant: String,
    /// Packages added with `--include`.
    pub packages: Vec<String>,
}

/// Where the root came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Unpacked from the cached archive.
    CacheHit,
    /// Made by debootstrap (and cached).
    Built,
}

/// Why the stage failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file or directory could not be handled.
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

impl Default for Stage {
    /// Debian 12 minbase from `deb.debian.org` with [`PACKAGES`].
    fn default() -> Stage {
        Stage {
            suite: "bookworm".into(),
            mirror: "http://deb.debian.org/debian".into(),
            variant: "minbase".into(),
            packages: PACKAGES.iter().map(|p| (*p).to_owned()).collect(),
        }
    }
}

impl Stage {
    /// The cache key: a digest of suite, mirror, variant and the sorted package list.
    pub fn cache_key(&self) -> String {
        let mut packages = self.packages.clone();
        packages.sort();
        packages.dedup();
        let mut hasher = Sha256::new();
        for part in [&self.suite, &self.mirror, &self.variant] {
            hasher.update(part.as_bytes());
            hasher.update(b"\n");
        }
        hasher.update(packages.join(",").as_bytes());
        let digest = hasher.finalize();
        digest[..8].iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The cached archive of this stage under `cache_dir`.
    pub fn cache_path(&self, cache_dir: &Path) -> PathBuf {
        cache_dir.join(format!(
            "debootstrap-{}-{}.tar",
            self.suite,
            self.cache_key()
        ))
    }

    /// The debootstrap command making the root at `target`.
    pub fn debootstrap_command(&self, target: &Path) -> Cmd {
        Cmd::new("debootstrap")
            .arg(format!("--variant={}", self.variant))
            .arg(format!("--include={}", self.packages.join(",")))
            .arg(&self.suite)
            .arg(target)
            .arg(&self.mirror)
    }

    /// Makes the root at `root` (which must not exist yet): unpacks the cached archive, or runs
    /// debootstrap and caches the result.
    pub fn prepare_root(
        &self,
        runner: &dyn CommandRunner,
        cache_dir: &Path,
        root: &Path,
    ) -> Result<Outcome, Error> {
        let archive = self.cache_path(cache_dir);
        if archive.is_file() {
            fs::create_dir_all(root).map_err(io("creating", root))?;
            run::run(runner, &unpack_command(&archive, root))?;
            return Ok(Outcome::CacheHit);
        }
        run::run(runner, &self.debootstrap_command(root))?;
        remove_downloaded_packages(root)?;
        fs::create_dir_all(cache_dir).map_err(io("creating", cache_dir))?;
        // One partial name per process: two builds missing the cache at once do not write the
        // same file; the later rename wins with an equally good archive.
        let partial = partial_path(&archive, std::process::id());
        run::run(runner, &pack_command(root, &partial))?;
        fs::rename(&partial, &archive).map_err(io("renaming", &partial))?;
        Ok(Outcome::Built)
    }
}

/// The name `archive` is written under before it is renamed into place.
pub fn partial_path(archive: &Path, pid: u32) -> PathBuf {
    let mut name = archive.as_os_str().to_owned();
    name.push(format!(".partial-{pid}"));
    PathBuf::from(name)
}

/// `tar` archiving `root` into `archive`, keeping owners, modes, device nodes and xattrs.
pub fn pack_command(root: &Path, archive: &Path) -> Cmd {
    Cmd::new("tar")
        .args([
            "--create",
            "--numeric-owner",
            "--xattrs",
            "--xattrs-include=*",
        ])
        .arg("--file")
        .arg(archive)
        .arg("--directory")
        .arg(root)
        .arg(".")
}

/// `tar` unpacking `archive` into `root` as it was packed.
pub fn unpack_command(archive: &Path, root: &Path) -> Cmd {
    Cmd::new("tar")
        .args([
            "--extract",
            "--numeric-owner",
            "--preserve-permissions",
            "--xattrs",
            "--xattrs-include=*",
        ])
        .arg("--file")
        .arg(archive)
        .arg("--directory")
        .arg(root)
}

/// Removes the `.deb` files debootstrap leaves in apt's cache: they only make the image bigger.
fn remove_downloaded_packages(root: &Path) -> Result<(), Error> {
    let dir = root.join("var/cache/apt/archives");
    let Ok(entries) = fs::read_dir(&dir) else {
        return Ok(());
    };
    for entry in entries.filter_map(|entry| entry.ok()) {
        let path = entry.path();
        if path.extension().is_some_and(|ext| ext == "deb") {
            fs::remove_file(&path).map_err(io("removing", &path))?;
        }
    }
    Ok(())
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

    #[test]
    fn the_key_changes_with_packages_suite_and_mirror_but_not_order() {
        let stage = Stage::default();
        let key = stage.cache_key();
        assert_eq!(key.len(), 16);
        let mut reordered = stage.clone();
        reordered.packages.reverse();
        assert_eq!(reordered.cache_key(), key);
        let mut more = stage.clone();
        more.packages.push("vim".into());
        assert_ne!(more.cache_key(), key);
        let mut suite = stage.clone();
        suite.suite = "trixie".into();
        assert_ne!(suite.cache_key(), key);
        let mut mirror = stage.clone();
        mirror.mirror = "http://example.invalid/debian".into();
        assert_ne!(mirror.cache_key(), key);
        assert_eq!(
            stage.cache_path(Path::new("/c")),
            PathBuf::from(format!("/c/debootstrap-bookworm-{key}.tar"))
        );
    }

    #[test]
    fn debootstrap_installs_minbase_with_the_packages() {
        let cmd = Stage::default().debootstrap_command(Path::new("/w/root"));
        assert_eq!(
            cmd.to_string(),
            format!(
                "debootstrap --variant=minbase --include={} bookworm /w/root http://deb.debian.org/debian",
                PACKAGES.join(",")
            )
        );
        for needed in [
            "linux-image-cloud-amd64",
            "systemd-resolved",
            "dbus",
            "build-essential",
        ] {
            assert!(PACKAGES.contains(&needed));
        }
    }

    #[test]
    fn a_miss_runs_debootstrap_and_caches_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("cache");
        let root = dir.path().join("root");
        let stage = Stage::default();
        let archive = stage.cache_path(&cache);
        let partial = partial_path(&archive, std::process::id());
        assert_eq!(
            partial_path(Path::new("/c/a.tar"), 7),
            Path::new("/c/a.tar.partial-7")
        );
        let runner = RecordingRunner::new();
        let debootstrap = stage.debootstrap_command(&root);
        let argv: Vec<String> = std::iter::once(&debootstrap.program)
            .chain(&debootstrap.args)
            .map(|s| s.to_string_lossy().into_owned())
            .collect();
        runner.expect(
            &argv.iter().map(String::as_str).collect::<Vec<_>>(),
            Reply::Ok(String::new()),
        );
        let partial_text = partial.to_str().unwrap().to_owned();
        let root_text = root.to_str().unwrap().to_owned();
        runner.expect(
            &[
                "tar",
                "--create",
                "--numeric-owner",
                "--xattrs",
                "--xattrs-include=*",
                "--file",
                &partial_text,
                "--directory",
                &root_text,
                ".",
            ],
            Reply::Ok(String::new()),
        );
        // The fake tar writes nothing: make the archive it would have written.
        fs::create_dir_all(&cache).unwrap();
        fs::write(&partial, "tar").unwrap();
        fs::create_dir_all(root.join("var/cache/apt/archives")).unwrap();
        fs::write(root.join("var/cache/apt/archives/bash.deb"), "deb").unwrap();

        let outcome = stage.prepare_root(&runner, &cache, &root).unwrap();
        assert_eq!(outcome, Outcome::Built);
        assert!(runner.unused().is_empty());
        assert!(archive.is_file());
        assert!(!partial.exists());
        assert!(!root.join("var/cache/apt/archives/bash.deb").exists());
    }

    #[test]
    fn a_hit_unpacks_the_archive_without_debootstrap() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("cache");
        let root = dir.path().join("root");
        let stage = Stage::default();
        let archive = stage.cache_path(&cache);
        fs::create_dir_all(&cache).unwrap();
        fs::write(&archive, "tar").unwrap();
        let runner = RecordingRunner::new();
        runner.expect(
            &[
                "tar",
                "--extract",
                "--numeric-owner",
                "--preserve-permissions",
                "--xattrs",
                "--xattrs-include=*",
                "--file",
                archive.to_str().unwrap(),
                "--directory",
                root.to_str().unwrap(),
            ],
            Reply::Ok(String::new()),
        );
        let outcome = stage.prepare_root(&runner, &cache, &root).unwrap();
        assert_eq!(outcome, Outcome::CacheHit);
        assert_eq!(runner.recorded().len(), 1);
        assert!(root.is_dir());
    }

    #[test]
    fn a_failed_debootstrap_caches_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("cache");
        let root = dir.path().join("root");
        let stage = Stage::default();
        let runner = RecordingRunner::new();
        let debootstrap = stage.debootstrap_command(&root);
        let argv: Vec<String> = std::iter::once(&debootstrap.program)
            .chain(&debootstrap.args)
            .map(|s| s.to_string_lossy().into_owned())
            .collect();
        runner.expect(
            &argv.iter().map(String::as_str).collect::<Vec<_>>(),
            Reply::Fail(1, "E: Couldn't download packages".into()),
        );
        let err = stage.prepare_root(&runner, &cache, &root).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("running `debootstrap --variant=minbase")
        );
        assert!(!stage.cache_path(&cache).exists());
    }
}
