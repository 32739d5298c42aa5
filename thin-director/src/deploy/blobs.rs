//! Where the director's blobs go: its own blobstore ([`crate::blobstore`], files under the state
//! directory served over HTTPS) or an external DAV server named in the director config
//! ([`crate::dav_client`]). The deploy, compilation and `logs` code use [`Blobs`] alone and do not
//! know which it is; agents get the matching `blobstore` settings from [`Blobs::agent_settings`].
//!
//! Blob ids are UUIDs the director makes, for either place.

use std::path::{Path, PathBuf};

use crate::blobstore::{self, BlobStore};
use crate::dav_client::DavClient;
use crate::deploy::Result;
use crate::director_config::ExternalBlobstore;

/// The blobstore the director and its agents use.
#[derive(Debug)]
pub struct Blobs {
    place: Place,
    agent_settings: serde_json::Value,
}

#[derive(Debug)]
enum Place {
    /// The director's own store and the HTTPS server in front of it (stopped when dropped).
    Own {
        store: BlobStore,
        server: blobstore::Server,
    },
    /// An external DAV server.
    External {
        client: DavClient,
        /// Where downloads land while they are read.
        scratch: PathBuf,
    },
}

/// A blob fetched to a local file: the store's own file, or a downloaded copy removed on drop.
#[derive(Debug)]
pub struct BlobFile {
    path: PathBuf,
    _download: Option<tempfile::TempPath>,
}

impl BlobFile {
    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Blobs {
    /// The director's own `store` behind `server`, which agents reach as `user` with `password`,
    /// trusting `ca`.
    pub fn own(
        store: BlobStore,
        server: blobstore::Server,
        user: &str,
        password: &str,
        ca: &str,
    ) -> Blobs {
        server.users().add(user, password);
        let agent_settings = server.agent_settings(user, password, ca);
        Blobs {
            place: Place::Own { store, server },
            agent_settings,
        }
    }

    /// The external DAV server of `config`; downloads go to `scratch` (created if missing).
    pub fn external(config: &ExternalBlobstore, scratch: &Path) -> Result<Blobs> {
        std::fs::create_dir_all(scratch).map_err(|source| crate::deploy::Error::Io {
            path: scratch.to_owned(),
            source,
        })?;
        Ok(Blobs {
            place: Place::External {
                client: DavClient::new(config)?,
                scratch: scratch.to_owned(),
            },
            agent_settings: config.agent_settings(),
        })
    }

    /// The address of the director's own blobstore server; `None` for an external one.
    pub fn own_server(&self) -> Option<std::net::SocketAddr> {
        match &self.place {
            Place::Own { server, .. } => Some(server.addr()),
            Place::External { .. } => None,
        }
    }

    /// The `blobstore` agents are given in `env.bosh.blobstores`.
    pub fn agent_settings(&self) -> &serde_json::Value {
        &self.agent_settings
    }

    /// Stores a copy of `file` as a new blob; its id and SHA-1 (hex).
    pub async fn put_file(&self, file: &Path) -> Result<(String, String)> {
        match &self.place {
            Place::Own { store, .. } => Ok(store.put_file(file)?),
            Place::External { client, .. } => {
                let id = uuid::Uuid::new_v4().to_string();
                let sha1 = client.put_file(&id, file).await?;
                Ok((id, sha1))
            }
        }
    }

    /// Stores `bytes` as a new blob; its id and SHA-1 (hex).
    pub async fn put_bytes(&self, bytes: &[u8]) -> Result<(String, String)> {
        match &self.place {
            Place::Own { store, .. } => Ok(store.put_bytes(bytes)?),
            Place::External { client, .. } => {
                let id = uuid::Uuid::new_v4().to_string();
                let sha1 = client.put_bytes(&id, bytes).await?;
                Ok((id, sha1))
            }
        }
    }

    /// Whether blob `id` is there.
    pub async fn exists(&self, id: &str) -> Result<bool> {
        match &self.place {
            Place::Own { store, .. } => Ok(store.path(id)?.is_some()),
            Place::External { client, .. } => Ok(client.exists(id).await?),
        }
    }

    /// Blob `id` as a local file; `None` when it is not there.
    pub async fn fetch(&self, id: &str) -> Result<Option<BlobFile>> {
        match &self.place {
            Place::Own { store, .. } => Ok(store.path(id)?.map(|path| BlobFile {
                path,
                _download: None,
            })),
            Place::External { client, scratch } => {
                let download = tempfile::Builder::new()
                    .prefix("blob-")
                    .tempfile_in(scratch)
                    .map_err(|source| crate::deploy::Error::Io {
                        path: scratch.clone(),
                        source,
                    })?
                    .into_temp_path();
                if !client.get(id, &download).await? {
                    return Ok(None);
                }
                Ok(Some(BlobFile {
                    path: download.to_path_buf(),
                    _download: Some(download),
                }))
            }
        }
    }

    /// Removes blob `id`; whether it was there.
    pub async fn delete(&self, id: &str) -> Result<bool> {
        match &self.place {
            Place::Own { store, .. } => Ok(store.delete(id)?),
            Place::External { client, .. } => Ok(client.delete(id).await?),
        }
    }
}
