//! The settings service: load settings at boot, fall back to the cache, keep the director's later
//! changes (`settings/service.go`).
//!
//! Loading asks the [`SourceChain`]; on success it lays `bosh/update_settings.json` over the settings
//! and rewrites the cache `bosh/settings.json` atomically (mode 0600: it holds the mbus private key and
//! blobstore credentials). When every source fails, the cache is used; when the cache is missing or
//! unusable too, the sources' error is returned (with what was wrong with the cache). In tmpfs mode
//! the cache lives on the settings tmpfs (`bosh/settings/settings.json`, mounted through the
//! platform's [`Mounter`](source::Mounter) before the first write; without a mounter nothing is
//! written and loading fails, so secrets never land on disk), which survives an agent restart but
//! not a reboot; the fallback looks there when there is no `bosh/settings.json`. A bad document
//! never replaces a good cache: only settings that parsed and carry an `agent_id` are written.
//!
//! Persistent disk hints (`bosh/persistent_disk_hints.json`, written by `add_persistent_disk`) are
//! merged with the settings' disks here, hints winning, as in Go.
//!
//! DHCP networks' addresses are filled in from the default route by the agent
//! (`resolved_networks`), which knows the platform.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::dirs::Dirs;
use crate::model::{self, DiskSettings, Settings, UpdateSettings};
use crate::source::{Attempt, SourceChain};
use crate::{atomic_file, gojson, source};

/// File mode of the settings cache, update settings and disk hints: they hold secrets.
pub const STATE_FILE_MODE: u32 = 0o600;

/// Loads and keeps the agent's settings.
#[derive(Debug)]
pub struct SettingsService {
    dirs: Dirs,
    chain: SourceChain,
    current: Mutex<Settings>,
    tmpfs: Option<Arc<dyn source::Mounter>>,
}

/// Where the loaded settings came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A source answered (its description); the cache was rewritten.
    Source(String),
    /// Every source failed and the cache at this path was used.
    Cache(PathBuf),
}

/// The outcome of a successful load.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// Where the settings came from.
    pub origin: Origin,
    /// Every source tried, in order.
    pub attempts: Vec<Attempt>,
}

/// Why settings could not be loaded or kept.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No source answered and there is no usable cache; the sources' error is the cause.
    #[error("no settings: {cache_problem}")]
    NoSettings {
        /// What is wrong with the cache.
        cache_problem: String,
        /// Why the sources failed.
        #[source]
        source: source::Error,
    },
    /// The settings tmpfs could not be mounted (or no mounter was given); nothing was written.
    #[error("Setting up settings tmpfs on {}", .dir.display())]
    Tmpfs {
        /// `bosh/settings/`.
        dir: PathBuf,
        /// The cause.
        #[source]
        source: source::MountError,
    },
    /// A state file could not be read.
    #[error("reading {}", .path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A state file is not valid.
    #[error("parsing {}", .path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// The cause, naming the field.
        #[source]
        source: gojson::Error,
    },
    /// A state file could not be written; the old one is intact.
    #[error("writing {}", .path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A persistent disk is unknown.
    #[error(transparent)]
    Disk(#[from] model::Error),
    /// A background task died.
    #[error("settings file IO: the worker task failed")]
    Worker(#[source] tokio::task::JoinError),
}

impl SettingsService {
    /// A service for the base dir `dirs` that loads from `chain`.
    pub fn new(dirs: Dirs, chain: SourceChain) -> SettingsService {
        SettingsService {
            dirs,
            chain,
            current: Mutex::new(Settings::default()),
            tmpfs: None,
        }
    }

    /// This service, mounting the settings tmpfs through `mounter` in tmpfs mode.
    pub fn with_tmpfs_mounter(mut self, mounter: Arc<dyn source::Mounter>) -> SettingsService {
        self.tmpfs = Some(mounter);
        self
    }

    /// The source chain, e.g. to fetch the IaaS SSH key.
    pub fn chain(&self) -> &SourceChain {
        &self.chain
    }

    /// Loads settings from the sources, or else from the cache; see the module docs.
    pub async fn load(&self) -> Result<Loaded, Error> {
        let (fetched, attempts) = self.chain.settings_with_attempts().await;
        let dirs = self.dirs.clone();
        let tmpfs_mounter = self.tmpfs.clone();
        let (settings, origin) = match fetched {
            Ok(settings) => {
                let origin = Origin::Source(
                    attempts
                        .last()
                        .map(|attempt| attempt.source.clone())
                        .unwrap_or_default(),
                );
                let settings = blocking(move || {
                    let mut settings = settings;
                    let tmpfs = settings.env.bosh.agent.settings.tmpfs;
                    if tmpfs {
                        let dir = dirs.bosh_settings_dir();
                        let mounter = tmpfs_mounter.ok_or_else(|| Error::Tmpfs {
                            dir: dir.clone(),
                            source: "this agent has no way to mount a tmpfs".into(),
                        })?;
                        mounter
                            .mount_settings_tmpfs(&dir)
                            .map_err(|source| Error::Tmpfs { dir, source })?;
                    }
                    settings.update_settings =
                        read_update_settings(&dirs.update_settings_file(tmpfs))?;
                    write_state_file(&dirs.settings_file(tmpfs), &settings)?;
                    Ok(settings)
                })
                .await?;
                (settings, origin)
            }
            Err(source_error) => {
                let cached = blocking(move || {
                    // Until settings are known, tmpfs mode is not: take the cache where a normal boot
                    // leaves it, else where a tmpfs-mode agent left it before restarting (the tmpfs
                    // outlives the agent, not the VM). Go only looks at the first.
                    let path = [false, true]
                        .map(|tmpfs| dirs.settings_file(tmpfs))
                        .into_iter()
                        .find(|path| path.exists())
                        .unwrap_or_else(|| dirs.settings_file(false));
                    let mut settings = read_cache(&path)?;
                    let tmpfs = settings.env.bosh.agent.settings.tmpfs;
                    settings.update_settings =
                        read_update_settings(&dirs.update_settings_file(tmpfs))?;
                    Ok((settings, path))
                })
                .await;
                match cached {
                    Ok((settings, path)) => {
                        tracing::warn!(cache = %path.display(), "no settings source answered, using the cached settings");
                        (settings, Origin::Cache(path))
                    }
                    Err(cache_error) => {
                        return Err(Error::NoSettings {
                            cache_problem: cache_problem(&cache_error),
                            source: source_error,
                        });
                    }
                }
            }
        };
        *self.current.lock().unwrap_or_else(|e| e.into_inner()) = settings;
        Ok(Loaded { origin, attempts })
    }

    /// The settings last loaded, with the update settings laid over them.
    pub fn settings(&self) -> Settings {
        self.current
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Stores update settings from the director (`update_settings` action) and uses them from now on.
    pub fn save_update_settings(&self, update_settings: UpdateSettings) -> Result<(), Error> {
        let tmpfs = self.settings().env.bosh.agent.settings.tmpfs;
        let path = self.dirs.update_settings_file(tmpfs);
        let json = serde_json::to_vec(&update_settings).unwrap_or_default();
        atomic_file::write(&path, &json, STATE_FILE_MODE)
            .map_err(|source| Error::Write { path, source })?;
        self.current
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .update_settings = update_settings;
        Ok(())
    }

    /// Every persistent disk: the settings' disks overridden by the stored hints.
    pub fn all_persistent_disk_settings(&self) -> Result<BTreeMap<String, DiskSettings>, Error> {
        let hints = self.persistent_disk_hints()?;
        Ok(self.settings().all_persistent_disk_settings(&hints))
    }

    /// One persistent disk, from the hints or the settings; the Go error text when unknown.
    pub fn persistent_disk_settings(&self, disk_cid: &str) -> Result<DiskSettings, Error> {
        let hints = self.persistent_disk_hints()?;
        Ok(self
            .settings()
            .persistent_disk_settings_with_hints(disk_cid, &hints)?)
    }

    /// Stores a hint for a persistent disk (`add_persistent_disk`).
    pub fn save_persistent_disk_settings(&self, disk: DiskSettings) -> Result<(), Error> {
        let mut hints = self.persistent_disk_hints()?;
        hints.insert(disk.id.clone(), disk);
        self.write_hints(&hints)
    }

    /// Forgets the hint for a persistent disk (`remove_persistent_disk`).
    pub fn remove_persistent_disk_settings(&self, disk_cid: &str) -> Result<(), Error> {
        let mut hints = self.persistent_disk_hints()?;
        hints.remove(disk_cid);
        self.write_hints(&hints)
    }

    /// Deletes the settings cache, so the next boot must reach a source.
    pub fn invalidate(&self) -> Result<(), Error> {
        let tmpfs = self.settings().env.bosh.agent.settings.tmpfs;
        let path = self.dirs.settings_file(tmpfs);
        match std::fs::remove_file(&path) {
            Err(err) if err.kind() != io::ErrorKind::NotFound => {
                Err(Error::Write { path, source: err })
            }
            _ => Ok(()),
        }
    }

    fn hints_file(&self) -> PathBuf {
        let tmpfs = self.settings().env.bosh.agent.settings.tmpfs;
        self.dirs.persistent_disk_hints_file(tmpfs)
    }

    fn persistent_disk_hints(&self) -> Result<BTreeMap<String, DiskSettings>, Error> {
        let path = self.hints_file();
        match std::fs::read(&path) {
            Ok(bytes) => gojson::from_slice(&bytes).map_err(|source| Error::Parse { path, source }),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(BTreeMap::new()),
            Err(source) => Err(Error::Read { path, source }),
        }
    }

    fn write_hints(&self, hints: &BTreeMap<String, DiskSettings>) -> Result<(), Error> {
        let path = self.hints_file();
        let json = serde_json::to_vec(hints).unwrap_or_default();
        atomic_file::write(&path, &json, STATE_FILE_MODE)
            .map_err(|source| Error::Write { path, source })
    }
}

/// Encodes `value` and replaces the state file at `path` with it, atomically, mode 0600.
fn write_state_file(path: &Path, value: &impl serde::Serialize) -> Result<(), Error> {
    let write_error = |source| Error::Write {
        path: path.to_owned(),
        source,
    };
    let json = serde_json::to_vec(value).map_err(|err| write_error(io::Error::other(err)))?;
    atomic_file::write(path, &json, STATE_FILE_MODE).map_err(write_error)
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, Error> + Send + 'static,
) -> Result<T, Error> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(Error::Worker)?
}

/// The cache, which must parse and carry an `agent_id`.
fn read_cache(path: &Path) -> Result<Settings, Error> {
    let bytes = std::fs::read(path).map_err(|source| Error::Read {
        path: path.to_owned(),
        source,
    })?;
    let settings = Settings::parse(&bytes).map_err(|source| Error::Parse {
        path: path.to_owned(),
        source,
    })?;
    if settings.agent_id.is_empty() {
        return Err(Error::Parse {
            path: path.to_owned(),
            source: gojson::Error {
                path: "agent_id".to_owned(),
                message: "missing or empty".to_owned(),
            },
        });
    }
    Ok(settings)
}

/// `update_settings.json`, or empty settings when there is none yet.
fn read_update_settings(path: &Path) -> Result<UpdateSettings, Error> {
    match std::fs::read(path) {
        Ok(bytes) => gojson::from_slice(&bytes).map_err(|source| Error::Parse {
            path: path.to_owned(),
            source,
        }),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(UpdateSettings::default()),
        Err(source) => Err(Error::Read {
            path: path.to_owned(),
            source,
        }),
    }
}

fn cache_problem(err: &Error) -> String {
    match err {
        Error::Read { path, source } if source.kind() == io::ErrorKind::NotFound => {
            format!(
                "no source answered and there is no cached settings file {}",
                path.display()
            )
        }
        other => format!(
            "no source answered and falling back to the cache failed ({})",
            source::error_chain(other)
        ),
    }
}
