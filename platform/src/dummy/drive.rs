//! Config drives and CD-ROMs on the dummy platform: a "device" is a directory that already holds the
//! drive's files, and the CD-ROM is the directory `bosh/dummy-cdrom` under the base dir, so settings
//! sources can be exercised without root or a real drive. (The Go dummy platform answers both with
//! empty contents, so its CDROM and ConfigDrive sources always fail.)

use std::path::{Path, PathBuf};

use settings::Dirs;
use settings::source::{MountError, MountedDrive, Mounter};

/// Treats device paths as directories.
#[derive(Debug, Clone)]
pub struct DummyDriveMounter {
    cdrom_dir: PathBuf,
}

/// The dummy platform was given a device that is not a directory.
#[derive(Debug, thiserror::Error)]
#[error("the dummy platform reads drives from directories, and {} is not one", .0.display())]
pub struct NotADirectory(pub PathBuf);

/// The dummy CD-ROM's directory does not exist.
#[derive(Debug, thiserror::Error)]
#[error("the dummy platform's CD-ROM is the directory {}, which does not exist", .0.display())]
pub struct NoCdrom(pub PathBuf);

impl DummyDriveMounter {
    /// A mounter whose CD-ROM is `bosh/dummy-cdrom` under the base dir of `dirs`.
    pub fn new(dirs: &Dirs) -> DummyDriveMounter {
        DummyDriveMounter {
            cdrom_dir: dirs.bosh_dir().join("dummy-cdrom"),
        }
    }
}

impl Mounter for DummyDriveMounter {
    fn mount_read_only(&self, device: &Path) -> Result<Box<dyn MountedDrive>, MountError> {
        if !device.is_dir() {
            return Err(Box::new(NotADirectory(device.to_owned())));
        }
        Ok(Box::new(DirectoryDrive(device.to_owned())))
    }

    fn mount_cdrom(&self) -> Result<Box<dyn MountedDrive>, MountError> {
        if !self.cdrom_dir.is_dir() {
            return Err(Box::new(NoCdrom(self.cdrom_dir.clone())));
        }
        Ok(Box::new(DirectoryDrive(self.cdrom_dir.clone())))
    }

    /// A plain directory: the dummy platform mounts nothing.
    fn mount_settings_tmpfs(&self, dir: &Path) -> Result<(), MountError> {
        std::fs::create_dir_all(dir)?;
        std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
        Ok(())
    }
}

#[derive(Debug)]
struct DirectoryDrive(PathBuf);

impl MountedDrive for DirectoryDrive {
    fn dir(&self) -> &Path {
        &self.0
    }

    fn release(self: Box<Self>, _used: bool) -> Result<(), MountError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mounter(base: &Path) -> DummyDriveMounter {
        DummyDriveMounter::new(&Dirs::new(base))
    }

    #[test]
    fn a_directory_is_its_own_drive() {
        let dir = tempfile::tempdir().unwrap();
        let drive = mounter(dir.path()).mount_read_only(dir.path()).unwrap();
        assert_eq!(drive.dir(), dir.path());
        drive.release(true).unwrap();
    }

    #[test]
    fn a_device_that_is_not_a_directory_is_refused() {
        let err = mounter(Path::new("/var/vcap"))
            .mount_read_only(Path::new("/dev/disk/by-label/config-2"))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "the dummy platform reads drives from directories, and /dev/disk/by-label/config-2 is not one"
        );
    }

    #[test]
    fn the_cdrom_is_a_directory_under_the_base_dir() {
        let base = tempfile::tempdir().unwrap();
        let err = mounter(base.path()).mount_cdrom().unwrap_err();
        assert!(
            err.to_string()
                .ends_with("bosh/dummy-cdrom, which does not exist"),
            "{err}"
        );
        std::fs::create_dir_all(base.path().join("bosh/dummy-cdrom")).unwrap();
        let drive = mounter(base.path()).mount_cdrom().unwrap();
        assert_eq!(drive.dir(), base.path().join("bosh/dummy-cdrom"));
    }
}
