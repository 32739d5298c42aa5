//! The `ConfigDrive` source: an OpenStack-style config drive, a small read-only disk labelled
//! `config-2` (`infrastructure/config_drive_settings_source.go`).
//!
//! For each device in `DiskPaths` the drive is mounted read-only through the platform's [`Mounter`],
//! read with [`ConfigDrive::from_dir`], and unmounted; the first device that reads wins. Settings are the
//! user data at `UserDataPath` (JSON; or registry pointers, see `registry.rs`). The SSH key comes from
//! the meta data at `MetaDataPath`: `public-keys."0"."openssh-key"` in the EC2 layout
//! (`ec2/latest/meta-data.json`), as in Go, or else the first of `public_keys` by key name in the
//! OpenStack layout (`openstack/latest/meta_data.json`), which the Go agent does not read.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::agent_config::ConfigDriveSourceOptions;
use crate::gojson;
use crate::model::Settings;
use crate::source::http_client::{HttpClient, redact_url_str};
use crate::source::{
    Attempt, BoxFuture, Error, Mounter, Retry, Source, UserData, error_chain, registry,
};

/// What a config drive holds.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigDrive {
    /// The user data.
    pub user_data: UserData,
    /// The first SSH public key of the meta data, if any.
    pub ssh_key: Option<String>,
    /// The instance id (`instance-id` in the EC2 layout, `uuid` in the OpenStack layout), if any.
    pub instance_id: Option<String>,
}

impl ConfigDrive {
    /// Reads a mounted config drive at `dir`. The user data must be there; the meta data is optional.
    pub fn from_dir(dir: &Path, options: &ConfigDriveSourceOptions) -> Result<ConfigDrive, Error> {
        let user_data_path = inside(dir, &options.user_data_path);
        let bytes = std::fs::read(&user_data_path).map_err(|source| Error::Read {
            path: user_data_path.clone(),
            source,
        })?;
        let user_data = UserData::parse(&bytes, &user_data_path.display().to_string())?;

        let (ssh_key, instance_id) = if options.meta_data_path.is_empty() {
            (None, None)
        } else {
            let meta_data_path = inside(dir, &options.meta_data_path);
            match std::fs::read(&meta_data_path) {
                Ok(bytes) => parse_meta_data(&bytes, &meta_data_path)?,
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => (None, None),
                Err(source) => {
                    return Err(Error::Read {
                        path: meta_data_path,
                        source,
                    });
                }
            }
        };
        Ok(ConfigDrive {
            user_data,
            ssh_key,
            instance_id,
        })
    }
}

/// Reads settings from a config drive.
#[derive(Debug, Clone)]
pub struct ConfigDriveSource {
    options: ConfigDriveSourceOptions,
    mounter: Arc<dyn Mounter>,
    retry: Retry,
}

impl ConfigDriveSource {
    /// A source for `options` that mounts with `mounter`; `retry` is for the registry, if the drive
    /// points at one.
    pub fn new(
        options: &ConfigDriveSourceOptions,
        mounter: Arc<dyn Mounter>,
        retry: Retry,
    ) -> ConfigDriveSource {
        ConfigDriveSource {
            options: options.clone(),
            mounter,
            retry,
        }
    }

    /// Mounts each device in turn until one reads.
    async fn read(&self) -> Result<ConfigDrive, Error> {
        let options = self.options.clone();
        let mounter = self.mounter.clone();
        tokio::task::spawn_blocking(move || {
            let mut attempts = Vec::new();
            for device in &options.disk_paths {
                match read_device(mounter.as_ref(), Path::new(device), &options) {
                    Ok(drive) => return Ok(drive),
                    Err(err) => {
                        tracing::warn!(device = %device, error = %error_chain(&err), "config drive device failed");
                        attempts.push(Attempt {
                            source: device.clone(),
                            error: Some(error_chain(&err)),
                        });
                    }
                }
            }
            Err(Error::NoDrive { attempts })
        })
        .await
        .map_err(Error::Worker)?
    }
}

impl Source for ConfigDriveSource {
    fn describe(&self) -> String {
        format!(
            "ConfigDrive {} ({})",
            self.options.disk_paths.join(", "),
            self.options.user_data_path
        )
    }

    fn settings(&self) -> BoxFuture<'_, Result<Settings, Error>> {
        Box::pin(async move {
            let drive = self.read().await?;
            let Some(endpoint) = drive.user_data.registry_endpoint() else {
                return Ok(drive.user_data.settings);
            };
            let id = if drive.user_data.server_name.is_empty() {
                drive.instance_id.clone().unwrap_or_default()
            } else {
                drive.user_data.server_name.clone()
            };
            if id.is_empty() {
                return Err(Error::NoRegistryId {
                    endpoint: redact_url_str(endpoint),
                });
            }
            registry::fetch_with(&HttpClient::new(self.retry), endpoint, &id).await
        })
    }

    fn public_ssh_key(&self) -> BoxFuture<'_, Result<Option<String>, Error>> {
        Box::pin(async move { Ok(self.read().await?.ssh_key) })
    }
}

fn read_device(
    mounter: &dyn Mounter,
    device: &Path,
    options: &ConfigDriveSourceOptions,
) -> Result<ConfigDrive, Error> {
    let mount_error = |source| Error::Mount {
        device: device.to_owned(),
        source,
    };
    let drive = mounter.mount_read_only(device).map_err(mount_error)?;
    let result = ConfigDrive::from_dir(drive.dir(), options);
    // Unmount even when reading failed; an unmount failure after a good read is only worth a warning.
    if let Err(err) = drive.release(result.is_ok()) {
        tracing::warn!(device = %device.display(), error = %err, "unmounting config drive failed");
    }
    result
}

/// Joins a path from `agent.json` to the mounted drive; a leading `/` stays inside the drive.
fn inside(dir: &Path, path: &str) -> PathBuf {
    dir.join(path.trim_start_matches('/'))
}

/// The first SSH key and the instance id from EC2-layout or OpenStack-layout meta data.
fn parse_meta_data(bytes: &[u8], path: &Path) -> Result<(Option<String>, Option<String>), Error> {
    let meta: serde_json::Value = serde_json::from_slice(bytes).map_err(|err| Error::Parse {
        what: path.display().to_string(),
        source: gojson::Error {
            path: String::new(),
            message: err.to_string(),
        },
    })?;
    let ec2_key = meta
        .pointer("/public-keys/0/openssh-key")
        .and_then(serde_json::Value::as_str);
    let openstack_key = meta
        .get("public_keys")
        .and_then(serde_json::Value::as_object)
        .and_then(|keys| keys.values().find_map(serde_json::Value::as_str));
    let key = ec2_key
        .or(openstack_key)
        .map(str::trim)
        .filter(|key| !key.is_empty())
        .map(str::to_owned);
    let instance_id = ["instance-id", "uuid"]
        .iter()
        .find_map(|name| meta.get(*name).and_then(serde_json::Value::as_str))
        .filter(|id| !id.is_empty())
        .map(str::to_owned);
    Ok((key, instance_id))
}
