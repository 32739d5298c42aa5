//! The `CDROM` source: settings in a file on a CD the CPI attached (`infrastructure/cdrom_settings_source.go`;
//! vSphere and vCloud CPIs write an `env` file to an ISO).
//!
//! The platform's [`Mounter`] settles udev, waits for the drive, mounts it read-only, and after reading
//! unmounts it, ejecting it only when it held the settings (a config drive may be the CD);
//! [`read_cdrom_settings`] reads the mounted directory.

use std::path::Path;
use std::sync::Arc;

use crate::model::Settings;
use crate::source::{BoxFuture, Error, Mounter, Source};

/// Reads settings from the CD-ROM.
#[derive(Debug, Clone)]
pub struct CdromSource {
    file_name: String,
    mounter: Arc<dyn Mounter>,
}

/// Reads the settings file `file_name` from a mounted CD at `dir`.
pub fn read_cdrom_settings(dir: &Path, file_name: &str) -> Result<Settings, Error> {
    let path = dir.join(file_name.trim_start_matches('/'));
    let bytes = std::fs::read(&path).map_err(|source| Error::Read {
        path: path.clone(),
        source,
    })?;
    Settings::parse(&bytes).map_err(|source| Error::Parse {
        what: path.display().to_string(),
        source,
    })
}

impl CdromSource {
    /// A source reading `file_name` (`FileName`, e.g. `env`) from the CD that `mounter` mounts.
    pub fn new(file_name: &str, mounter: Arc<dyn Mounter>) -> CdromSource {
        CdromSource {
            file_name: file_name.to_owned(),
            mounter,
        }
    }
}

impl Source for CdromSource {
    fn describe(&self) -> String {
        format!("CDROM {}", self.file_name)
    }

    fn settings(&self) -> BoxFuture<'_, Result<Settings, Error>> {
        let file_name = self.file_name.clone();
        let mounter = self.mounter.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || {
                let drive = mounter.mount_cdrom().map_err(|source| Error::Mount {
                    device: "CD-ROM".into(),
                    source,
                })?;
                let result = read_cdrom_settings(drive.dir(), &file_name);
                if let Err(err) = drive.release(result.is_ok()) {
                    tracing::warn!(error = %err, "unmounting or ejecting the CD-ROM failed");
                }
                result
            })
            .await
            .map_err(Error::Worker)?
        })
    }

    /// This source has no SSH key, as in Go.
    fn public_ssh_key(&self) -> BoxFuture<'_, Result<Option<String>, Error>> {
        Box::pin(async { Ok(None) })
    }
}
