//! Installing and enabling rendered jobs, as `agent/applier/jobs/rendered_job_applier.go` does:
//! each job of the spec is its top directory in the rendered templates archive, unpacked into
//! `data/jobs/<job>/<hash>` with one leading component stripped (`tar -xf … --strip-components=1
//! <job>`; `./<job>/…` names work the same), then given `FixPermissions` modes
//! (`agent/applier/jobs/owner_fix.go`): directories 0750, everything under `bin/` 0750, other files
//! 0640, all given to `root:vcap` through the [`Owner`].
//!
//! Enabling a job (`Apply`) creates its directories `data/sys/log/<job>`, `data/sys/run/<job>` and
//! `data/<job>` (0770, `root:vcap`; left alone if they exist, as `models/job.go`
//! `CreateDirectories` does), points `jobs/<job>` at the install directory, and links every package
//! of the spec into the job as `jobs/<job>/packages/<pkg>` (physically
//! `data/jobs/<job>/<hash>/packages/<pkg>`, pointing at `data/packages/<pkg>/<hash>`), removing the
//! links of packages no longer wanted.
//!
//! Unlike Go, the modes are fixed in the staging directory before it is renamed into place, so an
//! installed job never has the archive's modes; symlinks are neither followed nor chmodded (Go's
//! `chmod` follows them, changing their targets).

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
use std::path::{Component, Path, PathBuf};

use settings::Dirs;

use crate::archive::{self, ExtractOptions};
use crate::install::bundle::{self, BundleCollection};
use crate::install::owner::Owner;
use crate::install::plan::JobPlan;

/// Mode of job directories and of executables under `bin/` (`FixPermissions`).
pub const JOB_DIR_MODE: u32 = 0o750;

/// Mode of the other files of a job (`FixPermissions`).
pub const JOB_FILE_MODE: u32 = 0o640;

/// Mode of `data/sys/log/<job>`, `data/sys/run/<job>` and `data/<job>` (`CreateDirectories`).
pub const JOB_DATA_DIR_MODE: u32 = 0o770;

/// Why a job could not be installed or enabled.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A job name that cannot be one path component.
    #[error(transparent)]
    Name(#[from] platform::name::Error),
    /// The job's directory in the archive is missing, unsafe or could not be unpacked.
    #[error("installing job bundle")]
    Install(#[source] archive::Error),
    /// Setting the mode or owner of an installed file failed.
    #[error("fixing the permissions of {}", .path.display())]
    Permissions {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A job directory could not be created.
    #[error("creating job directory {}", .path.display())]
    Directory {
        /// The directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The job's `packages` is something other than a directory (the archive put it there).
    #[error("{} is not a directory", .path.display())]
    PackagesNotADirectory {
        /// `data/jobs/<job>/<hash>/packages`.
        path: PathBuf,
    },
    /// Staging, enabling or cleaning up a bundle failed.
    #[error(transparent)]
    Bundle(#[from] bundle::Error),
}

/// `pub type Result<T>` of this module.
pub type Result<T> = std::result::Result<T, Error>;

/// Extracts `job` from the rendered templates archive `archive` into `data/jobs/<job>/<hash>`
/// unless it is installed, fixing modes and owners; returns whether it installed it (blocking).
pub fn install(dirs: &Dirs, archive: &Path, job: &JobPlan, owner: &dyn Owner) -> Result<bool> {
    let bundle = BundleCollection::jobs(dirs).bundle(&job.name, &job.hash)?;
    if bundle.is_installed()? {
        return Ok(false);
    }
    let staging = bundle.stage(owner)?;
    let options = ExtractOptions {
        strip_components: 1,
        only_prefix: Some(job.name.clone()),
    };
    archive::extract(archive, staging.path(), &options).map_err(Error::Install)?;
    fix_permissions(staging.path(), owner)?;
    let installed = staging.commit(owner)?;
    tracing::debug!(job = %job.name, installed, "job installed");
    Ok(installed)
}

/// Gives every file under `root` (included) the `FixPermissions` mode and `root:vcap` (blocking):
/// directories 0750, non-directories under `<root>/bin/` 0750, other files 0640. Symlinks are
/// given to `owner` but neither followed nor chmodded.
pub fn fix_permissions(root: &Path, owner: &dyn Owner) -> Result<()> {
    let error = |path: &Path| {
        let path = path.to_owned();
        move |source| Error::Permissions { path, source }
    };
    let mut pending = vec![root.to_owned()];
    while let Some(path) = pending.pop() {
        let meta = fs::symlink_metadata(&path).map_err(error(&path))?;
        owner.set_root_vcap(&path).map_err(error(&path))?;
        if meta.file_type().is_symlink() {
            continue;
        }
        let mode = if meta.is_dir() || is_under_bin(root, &path) {
            JOB_DIR_MODE
        } else {
            JOB_FILE_MODE
        };
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).map_err(error(&path))?;
        if meta.is_dir() {
            for entry in fs::read_dir(&path).map_err(error(&path))? {
                pending.push(entry.map_err(error(&path))?.path());
            }
        }
    }
    Ok(())
}

/// Creates `data/sys/log/<job>`, `data/sys/run/<job>` and `data/<job>` with mode 0770 for `root:vcap`,
/// skipping those that exist (blocking).
pub fn create_job_dirs(dirs: &Dirs, job: &str, owner: &dyn Owner) -> Result<()> {
    for dir in job_dirs(dirs, job)? {
        match fs::symlink_metadata(&dir) {
            Ok(_) => continue,
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(source) => return Err(Error::Directory { path: dir, source }),
        }
        let created = fs::DirBuilder::new()
            .recursive(true)
            .mode(JOB_DATA_DIR_MODE)
            .create(&dir)
            // The umask may have taken group write away; Go chmods too.
            .and_then(|()| fs::set_permissions(&dir, fs::Permissions::from_mode(JOB_DATA_DIR_MODE)))
            .and_then(|()| owner.set_root_vcap(&dir));
        created.map_err(|source| Error::Directory { path: dir, source })?;
    }
    Ok(())
}

/// Enables the installed `job` (Go's `Apply` after `Prepare`, blocking): creates its directories,
/// points `jobs/<job>` at it, links each of `packages` (`(name, hash)`, installed) into its
/// `packages/` directory and removes the links of other packages.
pub fn enable(
    dirs: &Dirs,
    job: &JobPlan,
    packages: &[(String, String)],
    owner: &dyn Owner,
) -> Result<()> {
    let bundle = BundleCollection::jobs(dirs).bundle(&job.name, &job.hash)?;
    create_job_dirs(dirs, &job.name, owner)?;
    bundle.enable(owner)?;

    let job_packages = BundleCollection::job_packages(dirs, bundle.install_path());
    let packages_dir = job_packages.enable_root();
    if let Ok(meta) = fs::symlink_metadata(packages_dir) {
        if !meta.is_dir() {
            return Err(Error::PackagesNotADirectory {
                path: packages_dir.to_owned(),
            });
        }
    }
    for (name, hash) in packages {
        job_packages.bundle(name, hash)?.enable(owner)?;
    }
    job_packages.keep_only(packages, false)?;
    Ok(())
}

/// The directories of `job` outside its bundle, as Go's `JobLogDir`, `JobRunDir` and `JobDir` give
/// them; the job name is refused if it would leave its directory.
fn job_dirs(dirs: &Dirs, job: &str) -> Result<[PathBuf; 3]> {
    let join = |dir: &Path| platform::name::join(dir, "job name", job);
    Ok([
        join(&dirs.data_sys_log_dir())?,
        join(&dirs.data_sys_run_dir())?,
        join(&dirs.data_dir())?,
    ])
}

/// Whether `path` is below `<root>/bin/` (Go: `strings.HasPrefix(path, root + "/bin/")`).
fn is_under_bin(root: &Path, path: &Path) -> bool {
    let Ok(relative) = path.strip_prefix(root) else {
        return false;
    };
    let mut components = relative.components();
    components.next() == Some(Component::Normal("bin".as_ref())) && components.next().is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::install::owner::KeepOwners;

    fn mode(path: &Path) -> u32 {
        fs::symlink_metadata(path).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn bin_means_below_the_top_bin_directory() {
        let root = Path::new("/j");
        let cases = [
            ("/j/bin/ctl", true),
            ("/j/bin/sub/helper", true),
            ("/j/bin", false),
            ("/j/binary", false),
            ("/j/config/bin/x", false),
            ("/elsewhere/bin/x", false),
        ];
        for (path, expected) in cases {
            assert_eq!(is_under_bin(root, Path::new(path)), expected, "{path}");
        }
    }

    #[test]
    fn permissions_follow_fix_permissions_and_skip_symlinks() {
        let work = tempfile::tempdir().unwrap();
        let root = work.path().join("job");
        fs::create_dir_all(root.join("bin/sub")).unwrap();
        fs::create_dir_all(root.join("config")).unwrap();
        fs::write(root.join("bin/ctl"), "#!/bin/sh").unwrap();
        fs::write(root.join("bin/sub/helper"), "").unwrap();
        fs::write(root.join("config/app.yml"), "").unwrap();
        fs::write(root.join("monit"), "").unwrap();
        let outside = work.path().join("outside");
        fs::write(&outside, "").unwrap();
        fs::set_permissions(&outside, fs::Permissions::from_mode(0o604)).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("config/link")).unwrap();
        for path in ["bin/ctl", "config/app.yml"] {
            fs::set_permissions(root.join(path), fs::Permissions::from_mode(0o4777)).unwrap();
        }

        fix_permissions(&root, &KeepOwners).unwrap();

        let cases = [
            ("", 0o750),
            ("bin", 0o750),
            ("bin/sub", 0o750),
            ("bin/ctl", 0o750),
            ("bin/sub/helper", 0o750),
            ("config", 0o750),
            ("config/app.yml", 0o640),
            ("monit", 0o640),
        ];
        for (path, expected) in cases {
            assert_eq!(mode(&root.join(path)), expected, "{path}");
        }
        assert_eq!(mode(&outside), 0o604);
    }

    #[derive(Debug, Default)]
    struct RecordingOwner(std::sync::Mutex<Vec<PathBuf>>);

    impl Owner for RecordingOwner {
        fn set_root_vcap(&self, path: &Path) -> io::Result<()> {
            self.0.lock().unwrap().push(path.to_owned());
            Ok(())
        }
    }

    #[test]
    fn job_dirs_are_created_once_with_0770_and_given_to_the_owner() {
        let base = tempfile::tempdir().unwrap();
        let dirs = Dirs::new(base.path());
        let owner = RecordingOwner::default();
        create_job_dirs(&dirs, "web", &owner).unwrap();
        let expected = [
            base.path().join("data/sys/log/web"),
            base.path().join("data/sys/run/web"),
            base.path().join("data/web"),
        ];
        for dir in &expected {
            assert_eq!(mode(dir), 0o770, "{}", dir.display());
        }
        assert_eq!(*owner.0.lock().unwrap(), expected);

        // Existing directories keep their mode and owner.
        fs::set_permissions(&expected[2], fs::Permissions::from_mode(0o700)).unwrap();
        let again = RecordingOwner::default();
        create_job_dirs(&dirs, "web", &again).unwrap();
        assert_eq!(mode(&expected[2]), 0o700);
        assert!(again.0.lock().unwrap().is_empty());

        assert!(matches!(
            create_job_dirs(&dirs, "..", &again),
            Err(Error::Name(_))
        ));
    }
}
