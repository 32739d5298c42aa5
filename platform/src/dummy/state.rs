//! Reading and writing the dummy platform's state files under `<base>/bosh/`
//! (`platform/dummy_platform.go` reads and writes them with `json.Marshal` and `WriteFile`).
//!
//! Files are decoded with Go's rules ([`settings::gojson`]): the Go dummy platform writes `null` for
//! an empty list and keys match case-insensitively, so a base dir left by the Go agent reads back. A
//! missing file is an empty state. Every write replaces the file atomically.

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;
use settings::{atomic_file, gojson};

/// Permission bits of state files, as Go's `WriteFile` leaves them.
const STATE_FILE_MODE: u32 = 0o644;

/// Why a state file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file exists but could not be read.
    #[error("reading dummy platform state {}", .path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The file is not the JSON expected.
    #[error("decoding dummy platform state {}", .path.display())]
    Decode {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: gojson::Error,
    },
    /// The state could not be encoded.
    #[error("encoding dummy platform state {}", .path.display())]
    Encode {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// The file could not be written.
    #[error("writing dummy platform state {}", .path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// `pub type Result<T>` of this module.
pub type Result<T> = std::result::Result<T, Error>;

/// The JSON state in `path`; the default value if the file does not exist or holds `null`.
pub(crate) fn read_json<T: DeserializeOwned + Default>(path: &Path) -> Result<T> {
    let Some(bytes) = read(path)? else {
        return Ok(T::default());
    };
    let decode_error = |source| Error::Decode {
        path: path.to_owned(),
        source,
    };
    let value: serde_json::Value = serde_json::from_slice(&bytes).map_err(|err| {
        decode_error(gojson::Error {
            path: String::new(),
            message: err.to_string(),
        })
    })?;
    if value.is_null() {
        return Ok(T::default());
    }
    gojson::from_value(value).map_err(decode_error)
}

/// Replaces `path` with `value` as JSON.
pub(crate) fn write_json<T: Serialize + ?Sized>(path: &Path, value: &T) -> Result<()> {
    let bytes = serde_json::to_vec(value).map_err(|source| Error::Encode {
        path: path.to_owned(),
        source,
    })?;
    write_bytes(path, &bytes)
}

/// Replaces `path` with `bytes`.
pub(crate) fn write_bytes(path: &Path, bytes: &[u8]) -> Result<()> {
    atomic_file::write(path, bytes, STATE_FILE_MODE).map_err(|source| Error::Write {
        path: path.to_owned(),
        source,
    })
}

fn read(path: &Path) -> Result<Option<Vec<u8>>> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(Error::Read {
            path: path.to_owned(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Default, PartialEq, serde::Deserialize, Serialize)]
    #[serde(default)]
    struct Record {
        #[serde(rename = "DiskCid")]
        disk_cid: String,
        #[serde(rename = "MountOptions")]
        mount_options: Vec<String>,
    }

    #[test]
    fn missing_and_null_files_are_empty_state() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bosh/mounts.json");
        assert_eq!(read_json::<Vec<Record>>(&path).unwrap(), vec![]);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, "null").unwrap();
        assert_eq!(read_json::<Vec<Record>>(&path).unwrap(), vec![]);
    }

    #[test]
    fn files_written_by_the_go_agent_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mounts.json");
        std::fs::write(
            &path,
            r#"[{"diskcid":"vol-1","MountOptions":null,"Other":1}]"#,
        )
        .unwrap();
        assert_eq!(
            read_json::<Vec<Record>>(&path).unwrap(),
            vec![Record {
                disk_cid: "vol-1".into(),
                mount_options: vec![]
            }]
        );
    }

    #[test]
    fn state_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bosh/formatted_disks.json");
        let records = vec![Record {
            disk_cid: "vol-1".into(),
            mount_options: vec!["noatime".into()],
        }];
        write_json(&path, &records).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            r#"[{"DiskCid":"vol-1","MountOptions":["noatime"]}]"#
        );
        assert_eq!(read_json::<Vec<Record>>(&path).unwrap(), records);
    }

    #[test]
    fn a_corrupt_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mounts.json");
        std::fs::write(&path, "[{").unwrap();
        let err = read_json::<Vec<Record>>(&path).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("decoding dummy platform state {}", path.display())
        );
        std::fs::write(&path, r#"{"DiskCid":"x"}"#).unwrap();
        assert!(matches!(
            read_json::<Vec<Record>>(&path),
            Err(Error::Decode { .. })
        ));
    }
}
