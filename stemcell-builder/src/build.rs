//! One stemcell build: validates the options, then runs the stages (debootstrap or its cache,
//! customise, image, tarball) in a work directory under the output directory, timing each, and
//! removes the work directory at the end (unless something is still mounted below it: then it is
//! kept and named in the error, because removing it would follow a bind mount of `/dev`).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use platform::cmd::CommandRunner;

use crate::customize::{self, Inputs};
use crate::debootstrap::{self, Outcome, Stage};
use crate::image::{self, Layout};
use crate::manifest::{self, Manifest};
use crate::tarball;

/// The environment variable naming the cache dir.
pub const CACHE_DIR_ENV: &str = "STEMCELL_CACHE_DIR";
/// The cache dir when the environment names none.
pub const DEFAULT_CACHE_DIR: &str = "/var/cache/bosh-rs/stemcell";
/// The version when none is given.
pub const DEFAULT_VERSION: &str = "0.0.1";

/// What to build.
#[derive(Debug, Clone)]
pub struct Options {
    /// The `bosh-agent` binary installed in the image.
    pub agent: PathBuf,
    /// Where the tarball goes (created if missing).
    pub output: PathBuf,
    /// Where the debootstrap stage is cached.
    pub cache_dir: PathBuf,
    /// The stemcell version.
    pub version: String,
    /// The virtual disk's size.
    pub disk_size_mib: u64,
    /// The debootstrap stage.
    pub stage: Stage,
    /// syslinux's `mbr.bin`.
    pub mbr_bin: PathBuf,
    /// Where the work directory (root filesystem, raw disk) is made; `None`: the output dir. A
    /// tmpfs saves the seconds of writing and removing the root's files on a busy disk.
    pub work_parent: Option<PathBuf>,
}

/// What a build made, and how long each stage took.
#[derive(Debug, Clone)]
pub struct Report {
    /// The stemcell tarball.
    pub tarball: PathBuf,
    /// Whether the debootstrap stage came from the cache.
    pub debootstrap: Outcome,
    /// Time per stage.
    pub timings: Timings,
    /// The qcow2 disk's size in bytes.
    pub qcow2_bytes: u64,
    /// The tarball's size in bytes.
    pub tarball_bytes: u64,
}

/// Time spent in each stage.
#[derive(Debug, Clone, Copy, Default)]
pub struct Timings {
    /// debootstrap, or unpacking its cached archive.
    pub debootstrap: Duration,
    /// Customising the root.
    pub customize: Duration,
    /// Making the qcow2 disk.
    pub image: Duration,
    /// Writing `image` and the tarball.
    pub tarball: Duration,
    /// Removing the work directory.
    pub cleanup: Duration,
}

/// Why a build failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An option is unusable; nothing was built.
    #[error("{field}: {message}")]
    Invalid {
        /// The option.
        field: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// The work directory could not be made or removed.
    #[error("{action} the work directory {}", .path.display())]
    WorkDir {
        /// What was being done.
        action: &'static str,
        /// The directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// Something is still mounted under the work directory; it was kept.
    #[error("{} is still mounted under the work directory; the directory was kept", .mount.display())]
    StillMounted {
        /// The mount point.
        mount: PathBuf,
    },
    /// The debootstrap stage failed.
    #[error("debootstrap stage")]
    Debootstrap(#[source] debootstrap::Error),
    /// Customising the root failed.
    #[error("customising the root filesystem")]
    Customize(#[source] customize::Error),
    /// Making the disk image failed.
    #[error("making the disk image")]
    Image(#[source] image::Error),
    /// Writing the tarball failed.
    #[error("writing the stemcell tarball")]
    Tarball(#[source] tarball::Error),
}

impl Options {
    /// Options with the defaults: cache dir from [`CACHE_DIR_ENV`] or [`DEFAULT_CACHE_DIR`],
    /// version [`DEFAULT_VERSION`], a 3 GiB disk, Debian bookworm.
    pub fn new(agent: PathBuf, output: PathBuf) -> Options {
        Options {
            agent,
            output,
            cache_dir: default_cache_dir(),
            version: DEFAULT_VERSION.into(),
            disk_size_mib: image::DEFAULT_DISK_SIZE_MIB,
            stage: Stage::default(),
            mbr_bin: PathBuf::from(image::MBR_BIN),
            work_parent: None,
        }
    }

    /// Checks the options before anything is written.
    pub fn validate(&self) -> Result<(), Error> {
        let invalid = |field, message: String| Err(Error::Invalid { field, message });
        if !self.agent.is_file() {
            return invalid("agent", format!("{} is not a file", self.agent.display()));
        }
        if let Err(message) = manifest::validate_version(&self.version) {
            return invalid("version", message);
        }
        if self.output.exists() && !self.output.is_dir() {
            return invalid(
                "output",
                format!("{} is not a directory", self.output.display()),
            );
        }
        if self.disk_size_mib < 64 {
            return invalid(
                "disk_size_mib",
                format!("{} MiB is too small", self.disk_size_mib),
            );
        }
        Ok(())
    }
}

/// The cache dir: `$STEMCELL_CACHE_DIR`, else [`DEFAULT_CACHE_DIR`].
pub fn default_cache_dir() -> PathBuf {
    cache_dir_from(std::env::var_os(CACHE_DIR_ENV))
}

/// The cache dir given the value of [`CACHE_DIR_ENV`] (unset or empty: [`DEFAULT_CACHE_DIR`]).
pub fn cache_dir_from(env: Option<std::ffi::OsString>) -> PathBuf {
    env.filter(|dir| !dir.is_empty())
        .map_or_else(|| PathBuf::from(DEFAULT_CACHE_DIR), PathBuf::from)
}

/// Builds the stemcell described by `options`.
pub fn build(runner: &dyn CommandRunner, options: &Options) -> Result<Report, Error> {
    options.validate()?;
    fs::create_dir_all(&options.output).map_err(|source| Error::WorkDir {
        action: "creating the parent of",
        path: options.output.clone(),
        source,
    })?;
    let work_parent = options.work_parent.as_ref().unwrap_or(&options.output);
    let work = tempfile::Builder::new()
        .prefix(".stemcell-build-")
        .tempdir_in(work_parent)
        .map_err(|source| Error::WorkDir {
            action: "creating",
            path: work_parent.clone(),
            source,
        })?;
    let result = build_in(runner, options, work.path());
    let started = Instant::now();
    let mounted = mounts_under(work.path());
    if let Some(mount) = mounted.into_iter().next() {
        // Removing the directory would descend into the mount.
        let _kept = work.keep();
        return Err(Error::StillMounted { mount });
    }
    let path = work.path().to_owned();
    work.close().map_err(|source| Error::WorkDir {
        action: "removing",
        path,
        source,
    })?;
    let mut report = result?;
    report.timings.cleanup = started.elapsed();
    Ok(report)
}

fn build_in(runner: &dyn CommandRunner, options: &Options, work: &Path) -> Result<Report, Error> {
    let mut timings = Timings::default();
    let root = work.join("root");

    let started = Instant::now();
    let outcome = options
        .stage
        .prepare_root(runner, &options.cache_dir, &root)
        .map_err(Error::Debootstrap)?;
    timings.debootstrap = started.elapsed();
    tracing::info!(outcome = ?outcome, secs = timings.debootstrap.as_secs_f64(), "debootstrap stage done");

    let started = Instant::now();
    let inputs = Inputs {
        root_uuid: uuid::Uuid::new_v4().to_string(),
        kernel_release: customize::kernel_release(&root).map_err(Error::Customize)?,
        version: options.version.clone(),
    };
    let customized =
        customize::customize(runner, &root, &options.agent, &inputs).map_err(Error::Customize)?;
    timings.customize = started.elapsed();
    tracing::info!(
        secs = timings.customize.as_secs_f64(),
        "customise stage done"
    );

    let started = Instant::now();
    let qcow2 = work.join(tarball::ROOT_IMG);
    let layout = Layout {
        disk_size_mib: options.disk_size_mib,
        root_uuid: inputs.root_uuid.clone(),
        mbr_bin: options.mbr_bin.clone(),
    };
    image::build_image(runner, &root, work, &layout, &qcow2).map_err(Error::Image)?;
    timings.image = started.elapsed();
    tracing::info!(secs = timings.image.as_secs_f64(), "image stage done");

    let started = Instant::now();
    let image_path = work.join("image");
    let sha1 = tarball::write_image(&qcow2, &image_path).map_err(Error::Tarball)?;
    let manifest = Manifest::new(&options.version, options.disk_size_mib, &sha1);
    let tarball_path = options.output.join(tarball::tarball_name(&options.version));
    tarball::write_stemcell(&tarball_path, &manifest.to_yaml(), &customized, &image_path)
        .map_err(Error::Tarball)?;
    timings.tarball = started.elapsed();
    tracing::info!(secs = timings.tarball.as_secs_f64(), "tarball stage done");

    let size = |path: &Path| fs::metadata(path).map_or(0, |m| m.len());
    Ok(Report {
        qcow2_bytes: size(&qcow2),
        tarball_bytes: size(&tarball_path),
        tarball: tarball_path,
        debootstrap: outcome,
        timings,
    })
}

/// Mount points at or below `dir` (from `/proc/self/mountinfo`; none when it cannot be read).
fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let Ok(mountinfo) = fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    mount_points_under(&mountinfo, dir)
}

/// The mount points in `mountinfo` text at or below `dir`.
fn mount_points_under(mountinfo: &str, dir: &Path) -> Vec<PathBuf> {
    mountinfo
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        // mountinfo escapes spaces and other specials as octal (`\040`).
        .map(|point| PathBuf::from(point.replace("\\040", " ")))
        .filter(|point| point.starts_with(dir))
        .collect()
}

#[cfg(test)]
mod tests {
    use platform::testing::RecordingRunner;

    use super::*;

    #[test]
    fn bad_options_are_refused_before_anything_runs() {
        let dir = tempfile::tempdir().unwrap();
        let agent = dir.path().join("bosh-agent");
        fs::write(&agent, "agent").unwrap();
        let output = dir.path().join("out");
        let runner = RecordingRunner::new();

        let mut options = Options::new(dir.path().join("missing"), output.clone());
        let err = build(&runner, &options).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "agent: {} is not a file",
                dir.path().join("missing").display()
            )
        );

        options.agent = agent.clone();
        options.version = "1 2".into();
        let err = build(&runner, &options).unwrap_err();
        assert_eq!(
            err.to_string(),
            "version: version \"1 2\": character ' ' not allowed"
        );

        options.version = "1.0".into();
        options.output = agent.clone();
        let err = build(&runner, &options).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("output: {} is not a directory", agent.display())
        );

        assert!(runner.recorded().is_empty());
        assert!(!output.exists());
    }

    #[test]
    fn mount_points_below_the_work_dir_are_found() {
        let mountinfo = "22 1 252:0 / / rw - ext4 /dev/vda rw\n\
                         90 22 0:5 / /var/tmp/out/.stemcell-build-x/root/dev rw - devtmpfs udev rw\n\
                         91 22 0:6 / /var/tmp/out2 rw - tmpfs t rw\n";
        assert_eq!(
            mount_points_under(mountinfo, Path::new("/var/tmp/out/.stemcell-build-x")),
            [PathBuf::from("/var/tmp/out/.stemcell-build-x/root/dev")]
        );
        assert!(mount_points_under(mountinfo, Path::new("/var/tmp/out")).len() == 1);
    }

    #[test]
    fn the_cache_dir_comes_from_the_environment_or_var_cache() {
        assert_eq!(
            cache_dir_from(None),
            PathBuf::from("/var/cache/bosh-rs/stemcell")
        );
        assert_eq!(
            cache_dir_from(Some("".into())),
            PathBuf::from(DEFAULT_CACHE_DIR)
        );
        assert_eq!(cache_dir_from(Some("/c".into())), PathBuf::from("/c"));
    }
}
