//! Settings sources: where a VM finds its settings at boot (`infrastructure/*_settings_source.go`,
//! `infrastructure/multi_settings_source.go`).
//!
//! `agent.json` lists sources in order; [`SourceChain`] tries each and pins the first that answers,
//! separately for the settings and for the IaaS SSH key, as the Go agent does. Every attempt is kept
//! as an [`Attempt`], so `bosh-agent settings` can show an operator why a VM never reached the bus.
//!
//! Sources read through seams so that no test needs root: HTTP sources take their base URL and a
//! [`Retry`] policy; drive sources take a [`Mounter`] that the platform implements, and their readers
//! take the mounted directory (`ConfigDrive::from_dir`).
//!
//! How to add a source:
//! 1. add its options to [`crate::agent_config::SourceOptions`] under the `Type` it is written with;
//! 2. add a module here with a type implementing [`Source`], parsing in pure functions apart from IO;
//! 3. build it in [`SourceChain::from_options`] and test it in `tests/` (`http_sources.rs` or
//!    `drive_sources.rs`).

mod cdrom;
mod config_drive;
mod file;
mod http_client;
mod http_metadata;
mod instance_metadata;
mod registry;
mod user_data;

use std::fmt;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use cdrom::{CdromSource, read_cdrom_settings};
pub use config_drive::{ConfigDrive, ConfigDriveSource};
pub use file::FileSource;
pub use http_metadata::HttpMetadataSource;
pub use instance_metadata::InstanceMetadataSource;
pub use user_data::UserData;

use crate::agent_config::SourceOptions;
use crate::gojson;
use crate::model::Settings;

/// A boxed future, as the object-safe [`Source`] methods return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// An error from the OS layer behind a [`Mounter`].
pub type MountError = Box<dyn std::error::Error + Send + Sync>;

/// One place settings can come from.
pub trait Source: Send + Sync + fmt::Debug {
    /// What this source is, for operators: its type and where it looks (`HTTP http://169.254.169.254`).
    fn describe(&self) -> String;

    /// Fetches the settings.
    fn settings(&self) -> BoxFuture<'_, Result<Settings, Error>>;

    /// Fetches the IaaS SSH public key for vcap; `None` when the source has none.
    fn public_ssh_key(&self) -> BoxFuture<'_, Result<Option<String>, Error>>;
}

/// Mounting the drives that drive sources read. The platform implements it (a real read-only mount on
/// Linux, a plain directory on the dummy platform); the sources only see the mounted directory.
pub trait Mounter: Send + Sync + fmt::Debug {
    /// Mounts `device` read-only on a fresh temporary directory.
    fn mount_read_only(&self, device: &Path) -> Result<Box<dyn MountedDrive>, MountError>;

    /// Makes the CD-ROM drive ready (udev settle, wait until readable) and mounts it read-only.
    /// Releasing the drive unmounts it and ejects the disc.
    fn mount_cdrom(&self) -> Result<Box<dyn MountedDrive>, MountError>;

    /// Makes `dir` (mode 0700) and mounts a 16 MiB tmpfs on it unless one is there already: where
    /// the settings live in tmpfs mode (Go's `SetupBoshSettingsDisk`).
    fn mount_settings_tmpfs(&self, dir: &Path) -> Result<(), MountError>;
}

/// A drive mounted by a [`Mounter`].
pub trait MountedDrive: Send + fmt::Debug {
    /// Where its files are.
    fn dir(&self) -> &Path;

    /// Unmounts it, and ejects a CD-ROM when `used` (its settings were read). A CD that did not
    /// hold them stays in: it may be another source's drive, such as a config drive on `/dev/sr0`
    /// (Go ejects only after a good read too).
    fn release(self: Box<Self>, used: bool) -> Result<(), MountError>;
}

/// How often and how far apart HTTP sources retry (bosh-utils `RetryClient`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    /// Attempts in all, at least 1.
    pub attempts: u32,
    /// The pause between attempts.
    pub delay: Duration,
}

impl Default for Retry {
    /// The Go agent's metadata client: 10 attempts, 1 s apart.
    fn default() -> Self {
        Retry {
            attempts: 10,
            delay: Duration::from_secs(1),
        }
    }
}

/// What sources need from their surroundings.
#[derive(Debug, Clone)]
pub struct SourceContext {
    /// Mounts config drives and CD-ROMs.
    pub mounter: Arc<dyn Mounter>,
    /// The retry policy of HTTP sources.
    pub retry: Retry,
}

/// Why a source gave no settings.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read.
    #[error("reading {}", .path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A document did not parse; `what` names it (a file, a URL).
    #[error("parsing {what}")]
    Parse {
        /// The document.
        what: String,
        /// The cause, naming the field.
        #[source]
        source: gojson::Error,
    },
    /// User data that is neither JSON nor base64url-encoded JSON.
    #[error("decoding user data from {what}: neither JSON nor base64url")]
    UserDataEncoding {
        /// Where it came from.
        what: String,
        /// The base64 error.
        #[source]
        source: base64::DecodeError,
    },
    /// A URL in the options is not valid.
    #[error("invalid URL {url:?}")]
    Url {
        /// The URL.
        url: String,
        /// The cause.
        #[source]
        source: url::ParseError,
    },
    /// A header in the source options cannot be sent over HTTP.
    #[error("invalid HTTP header {name:?} in the source options")]
    Header {
        /// The header's name.
        name: String,
    },
    /// An HTTP request failed after all retries.
    #[error("requesting {url} ({attempts} attempts)")]
    Request {
        /// The URL.
        url: String,
        /// How many attempts were made.
        attempts: u32,
        /// The last error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// An HTTP request was answered with a status that is not success.
    #[error("{url} answered HTTP {status} ({attempts} attempts)")]
    Status {
        /// The URL.
        url: String,
        /// The last status.
        status: u16,
        /// How many attempts were made.
        attempts: u32,
    },
    /// The document has no `agent_id`, so it is not settings.
    #[error("{what} does not provide settings: agent_id is empty")]
    NoAgentId {
        /// The document.
        what: String,
    },
    /// User data points at a registry but nothing identifies this VM to it.
    #[error(
        "user data names the registry {endpoint} but neither server.name nor an instance id identifies the VM"
    )]
    NoRegistryId {
        /// The registry endpoint.
        endpoint: String,
    },
    /// Mounting or unmounting a drive failed.
    #[error("mounting {}", .device.display())]
    Mount {
        /// The device.
        device: PathBuf,
        /// The cause, from the platform.
        #[source]
        source: MountError,
    },
    /// Every device of a config drive failed.
    #[error("no config drive device could be read: {}", format_attempts(.attempts))]
    NoDrive {
        /// Each device and why it failed.
        attempts: Vec<Attempt>,
    },
    /// A background task died.
    #[error("reading a drive: the worker task failed")]
    Worker(#[source] tokio::task::JoinError),
    /// `agent.json` lists a source type this agent does not implement.
    #[error("the {0} settings source is not supported by this agent")]
    Unsupported(&'static str),
    /// `agent.json` lists no source.
    #[error("agent.json lists no settings source (Infrastructure.Settings.Sources is empty)")]
    NoSources,
    /// Every source failed.
    #[error("no settings source answered: {}", format_attempts(.attempts))]
    AllFailed {
        /// Each source and why it failed.
        attempts: Vec<Attempt>,
    },
}

/// One try of one source (or one device of a config drive).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// What was tried ([`Source::describe`], or a device path).
    pub source: String,
    /// `None` when it answered; otherwise the whole error chain, `a: b: c`.
    pub error: Option<String>,
}

/// The ordered list of sources, with the first that answered pinned (`MultiSettingsSource`).
#[derive(Debug)]
pub struct SourceChain {
    sources: Vec<Box<dyn Source>>,
    pinned_settings: Mutex<Option<usize>>,
    pinned_ssh_key: Mutex<Option<usize>>,
}

impl SourceChain {
    /// A chain of `sources`, tried in order.
    pub fn new(sources: Vec<Box<dyn Source>>) -> SourceChain {
        SourceChain {
            sources,
            pinned_settings: Mutex::new(None),
            pinned_ssh_key: Mutex::new(None),
        }
    }

    /// Builds the sources `agent.json` lists.
    pub fn from_options(
        options: &[SourceOptions],
        context: &SourceContext,
    ) -> Result<SourceChain, Error> {
        if options.is_empty() {
            return Err(Error::NoSources);
        }
        let sources = options
            .iter()
            .map(|options| -> Result<Box<dyn Source>, Error> {
                Ok(match options {
                    SourceOptions::File(o) => Box::new(FileSource::new(&o.settings_path)),
                    SourceOptions::Http(o) => {
                        Box::new(HttpMetadataSource::try_new(o, context.retry)?)
                    }
                    SourceOptions::InstanceMetadata(o) => {
                        Box::new(InstanceMetadataSource::try_new(o, context.retry)?)
                    }
                    SourceOptions::ConfigDrive(o) => Box::new(ConfigDriveSource::new(
                        o,
                        context.mounter.clone(),
                        context.retry,
                    )),
                    SourceOptions::Cdrom(o) => {
                        Box::new(CdromSource::new(&o.file_name, context.mounter.clone()))
                    }
                    SourceOptions::VsphereGuestInfo(_) => {
                        Box::new(UnsupportedSource("VsphereGuestInfo"))
                    }
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(SourceChain::new(sources))
    }

    /// The sources, in order.
    pub fn sources(&self) -> &[Box<dyn Source>] {
        &self.sources
    }

    /// Fetches settings from the pinned source, or else from each source in turn, pinning the first
    /// that answers. Settings without an `agent_id` count as no answer.
    pub async fn settings(&self) -> Result<Settings, Error> {
        self.settings_with_attempts().await.0
    }

    /// Like [`SourceChain::settings`], also returning every attempt made.
    pub async fn settings_with_attempts(&self) -> (Result<Settings, Error>, Vec<Attempt>) {
        let order = self.order(&self.pinned_settings);
        let mut attempts = Vec::new();
        for index in order {
            let source = &self.sources[index];
            let description = source.describe();
            let result = source.settings().await.and_then(|settings| {
                if settings.agent_id.is_empty() {
                    Err(Error::NoAgentId {
                        what: description.clone(),
                    })
                } else {
                    Ok(settings)
                }
            });
            match result {
                Ok(settings) => {
                    attempts.push(Attempt {
                        source: description,
                        error: None,
                    });
                    pin(&self.pinned_settings, index);
                    return (Ok(settings), attempts);
                }
                Err(err) => {
                    tracing::warn!(source = %description, error = %error_chain(&err), "settings source failed");
                    attempts.push(Attempt {
                        source: description,
                        error: Some(error_chain(&err)),
                    });
                }
            }
        }
        let err = Error::AllFailed {
            attempts: attempts.clone(),
        };
        (Err(err), attempts)
    }

    /// Fetches the IaaS SSH key, pinning the first source that has one. Go pins the first source that
    /// does not fail, so an HTTP source without `SSHKeysPath` hid the key a config drive behind it
    /// holds; here a source without a key lets the next one answer.
    pub async fn public_ssh_key(&self) -> Result<Option<String>, Error> {
        let order = self.order(&self.pinned_ssh_key);
        let mut attempts = Vec::new();
        let mut answered = false;
        for index in order {
            let source = &self.sources[index];
            match source.public_ssh_key().await {
                Ok(Some(key)) => {
                    pin(&self.pinned_ssh_key, index);
                    return Ok(Some(key));
                }
                Ok(None) => answered = true,
                Err(err) => attempts.push(Attempt {
                    source: source.describe(),
                    error: Some(error_chain(&err)),
                }),
            }
        }
        if answered {
            Ok(None)
        } else {
            Err(Error::AllFailed { attempts })
        }
    }
}

impl SourceChain {
    /// The pinned source alone, or every source in order.
    fn order(&self, pinned: &Mutex<Option<usize>>) -> Vec<usize> {
        match *pinned.lock().unwrap_or_else(|e| e.into_inner()) {
            Some(index) => vec![index],
            None => (0..self.sources.len()).collect(),
        }
    }
}

fn pin(slot: &Mutex<Option<usize>>, index: usize) {
    *slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(index);
}

/// Renders an error with all its causes, `a: b: c`.
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut cause = err.source();
    while let Some(next) = cause {
        text.push_str(": ");
        text.push_str(&next.to_string());
        cause = next.source();
    }
    text
}

fn format_attempts(attempts: &[Attempt]) -> String {
    attempts
        .iter()
        .map(|attempt| match &attempt.error {
            Some(error) => format!("[{}: {error}]", attempt.source),
            None => format!("[{}: answered]", attempt.source),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// A source type `agent.json` may list but this agent does not implement; it always fails, so the
/// sources after it are still tried.
#[derive(Debug)]
struct UnsupportedSource(&'static str);

impl Source for UnsupportedSource {
    fn describe(&self) -> String {
        self.0.to_owned()
    }

    fn settings(&self) -> BoxFuture<'_, Result<Settings, Error>> {
        Box::pin(async move { Err(Error::Unsupported(self.0)) })
    }

    fn public_ssh_key(&self) -> BoxFuture<'_, Result<Option<String>, Error>> {
        Box::pin(async move { Err(Error::Unsupported(self.0)) })
    }
}
