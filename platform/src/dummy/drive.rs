//! Config drives and CD-ROMs on the dummy platform: a "device" is a directory that already holds the
//! drive's files, so settings sources can be exercised without root or a real drive.

use std::path::{Path, PathBuf};

use settings::source::{MountError, MountedDrive, Mounter};

/// Treats device paths as directories.
#[derive(Debug, Clone, Copy, Default)]
pub struct DummyDriveMounter;

/// The dummy platform was given a device that is not a directory.
#[derive(Debug, thiserror::Error)]
#[error("the dummy platform reads drives from directories, and {} is not one", .0.display())]
pub struct NotADirectory(pub PathBuf);

/// The dummy platform has no CD-ROM.
#[derive(Debug, thiserror::Error)]
#[error("the dummy platform has no CD-ROM")]
pub struct NoCdrom;

impl Mounter for DummyDriveMounter {
    fn mount_read_only(&self, device: &Path) -> Result<Box<dyn MountedDrive>, MountError> {
        if !device.is_dir() {
            return Err(Box::new(NotADirectory(device.to_owned())));
        }
        Ok(Box::new(DirectoryDrive(device.to_owned())))
    }

    fn mount_cdrom(&self) -> Result<Box<dyn MountedDrive>, MountError> {
        Err(Box::new(NoCdrom))
    }
}

#[derive(Debug)]
struct DirectoryDrive(PathBuf);

impl MountedDrive for DirectoryDrive {
    fn dir(&self) -> &Path {
        &self.0
    }

    fn release(self: Box<Self>) -> Result<(), MountError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_is_its_own_drive() {
        let dir = tempfile::tempdir().unwrap();
        let drive = DummyDriveMounter.mount_read_only(dir.path()).unwrap();
        assert_eq!(drive.dir(), dir.path());
        drive.release().unwrap();
    }

    #[test]
    fn a_device_that_is_not_a_directory_is_refused() {
        let err = DummyDriveMounter
            .mount_read_only(Path::new("/dev/disk/by-label/config-2"))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "the dummy platform reads drives from directories, and /dev/disk/by-label/config-2 is not one"
        );
    }
}
