//! The `File` source: settings in a JSON file (`infrastructure/file_settings_source.go`). The director's
//! dummy CPI and the Go agent's integration tests boot agents this way.

use std::path::PathBuf;

use crate::model::Settings;
use crate::source::{BoxFuture, Error, Source};

/// Reads settings from a file.
#[derive(Debug, Clone)]
pub struct FileSource {
    path: PathBuf,
}

impl FileSource {
    /// A source reading `path` (`SettingsPath`).
    pub fn new(path: impl Into<PathBuf>) -> FileSource {
        FileSource { path: path.into() }
    }

    async fn read(&self) -> Result<Vec<u8>, Error> {
        tokio::fs::read(&self.path)
            .await
            .map_err(|source| Error::Read {
                path: self.path.clone(),
                source,
            })
    }
}

impl Source for FileSource {
    fn describe(&self) -> String {
        format!("File {}", self.path.display())
    }

    fn settings(&self) -> BoxFuture<'_, Result<Settings, Error>> {
        Box::pin(async move {
            let bytes = self.read().await?;
            Settings::parse(&bytes).map_err(|source| Error::Parse {
                what: self.path.display().to_string(),
                source,
            })
        })
    }

    /// No key, but, as in Go, an error when the file is missing so that another source is pinned.
    fn public_ssh_key(&self) -> BoxFuture<'_, Result<Option<String>, Error>> {
        Box::pin(async move {
            tokio::fs::metadata(&self.path)
                .await
                .map_err(|source| Error::Read {
                    path: self.path.clone(),
                    source,
                })?;
            Ok(None)
        })
    }
}
