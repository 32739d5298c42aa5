//! A fake [`Mounter`] for the drive sources: device paths map to fixture directories, and every
//! mount, refusal and release is logged so tests can check that each mounted drive was released.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use settings::source::{MountError, MountedDrive, Mounter};

/// What the fake mounter was asked to do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A device (or `cdrom`) was mounted.
    Mounted(String),
    /// A device was refused: the mounter does not know it.
    Refused(String),
    /// A mounted device was released.
    Released(String),
    /// The settings tmpfs was mounted on a directory.
    Tmpfs(PathBuf),
}

/// Mounts known devices by handing out their fixture directory.
#[derive(Debug, Default)]
pub struct FakeMounter {
    devices: BTreeMap<PathBuf, PathBuf>,
    cdrom: Option<PathBuf>,
    fail_release: bool,
    log: Arc<Mutex<Vec<Event>>>,
}

/// The name the CD-ROM has in the log.
pub const CDROM: &str = "cdrom";

impl FakeMounter {
    /// A mounter that knows no device and has no CD.
    pub fn new() -> FakeMounter {
        FakeMounter::default()
    }

    /// Makes `device` mount `dir`.
    pub fn with_device(mut self, device: &str, dir: impl Into<PathBuf>) -> FakeMounter {
        self.devices.insert(PathBuf::from(device), dir.into());
        self
    }

    /// Puts a CD whose files are in `dir` in the drive.
    pub fn with_cdrom(mut self, dir: impl Into<PathBuf>) -> FakeMounter {
        self.cdrom = Some(dir.into());
        self
    }

    /// Makes every release fail (after logging it).
    pub fn failing_release(mut self) -> FakeMounter {
        self.fail_release = true;
        self
    }

    /// What happened so far.
    pub fn events(&self) -> Vec<Event> {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Panics unless every mount was followed by its release.
    pub fn assert_all_released(&self) {
        let events = self.events();
        let mut open: Vec<&str> = Vec::new();
        for event in &events {
            match event {
                Event::Mounted(name) => open.push(name),
                Event::Released(name) => {
                    let at = open.iter().position(|o| o == name);
                    assert!(at.is_some(), "{name} released but not mounted: {events:?}");
                    open.remove(at.unwrap_or_default());
                }
                Event::Refused(_) | Event::Tmpfs(_) => {}
            }
        }
        assert!(open.is_empty(), "still mounted: {open:?} in {events:?}");
    }

    fn record(&self, event: Event) {
        self.log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(event);
    }

    fn mount(
        &self,
        name: String,
        dir: Option<&PathBuf>,
    ) -> Result<Box<dyn MountedDrive>, MountError> {
        let Some(dir) = dir else {
            self.record(Event::Refused(name.clone()));
            return Err(format!("no such device {name}").into());
        };
        self.record(Event::Mounted(name.clone()));
        Ok(Box::new(FakeDrive {
            name,
            dir: dir.clone(),
            fail_release: self.fail_release,
            log: self.log.clone(),
        }))
    }
}

impl Mounter for FakeMounter {
    fn mount_read_only(&self, device: &Path) -> Result<Box<dyn MountedDrive>, MountError> {
        self.mount(device.display().to_string(), self.devices.get(device))
    }

    fn mount_cdrom(&self) -> Result<Box<dyn MountedDrive>, MountError> {
        self.mount(CDROM.to_owned(), self.cdrom.as_ref())
    }

    fn mount_settings_tmpfs(&self, dir: &Path) -> Result<(), MountError> {
        std::fs::create_dir_all(dir)?;
        self.record(Event::Tmpfs(dir.to_owned()));
        Ok(())
    }
}

#[derive(Debug)]
struct FakeDrive {
    name: String,
    dir: PathBuf,
    fail_release: bool,
    log: Arc<Mutex<Vec<Event>>>,
}

impl MountedDrive for FakeDrive {
    fn dir(&self) -> &Path {
        &self.dir
    }

    fn release(self: Box<Self>, _used: bool) -> Result<(), MountError> {
        self.log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Event::Released(self.name.clone()));
        if self.fail_release {
            return Err(format!("umount {}: device is busy", self.name).into());
        }
        Ok(())
    }
}
