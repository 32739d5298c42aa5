//! Stemcell tarballs (`bosh upload-stemcell`): `stemcell.MF` (`name`, `version`, `operating_system`,
//! `api_version`, `cloud_properties`) and the `image` the CPI's `create_stemcell` gets
//! (`reference/director-cpi.md` §1.5). The image is streamed to a file (it can be gigabytes) through
//! a temporary name; other entries are skipped, so no name in the tarball can write anywhere.

use std::io::Read as _;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

/// `stemcell.MF`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct StemcellManifest {
    /// The stemcell's name.
    pub name: String,
    /// Its version.
    #[serde(deserialize_with = "scalar")]
    pub version: String,
    /// Its operating system (what manifests name as `os`).
    pub operating_system: String,
    /// The stemcell API version (agent settings over metadata from 2; signed URLs from 3).
    #[serde(default)]
    pub api_version: Option<u32>,
    /// Handed to `create_stemcell`.
    #[serde(default)]
    pub cloud_properties: Value,
}

/// Why a stemcell tarball could not be read.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The tarball or the image file could not be read or written.
    #[error("{}", .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// `stemcell.MF` does not parse.
    #[error("stemcell.MF of {}: {message}", .path.display())]
    Manifest {
        /// The tarball.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// An entry the tarball must have is missing.
    #[error("{} has no {entry}", .path.display())]
    Missing {
        /// The tarball.
        path: PathBuf,
        /// `stemcell.MF` or `image`.
        entry: &'static str,
    },
}

fn scalar<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    match serde_yaml_ng::Value::deserialize(deserializer)? {
        serde_yaml_ng::Value::String(text) => Ok(text),
        serde_yaml_ng::Value::Number(number) => Ok(number.to_string()),
        other => Err(serde::de::Error::custom(format!(
            "expected a version, found {other:?}"
        ))),
    }
}

/// Reads `tarball` (gzip or plain tar): its manifest, and its image written to `image`.
pub fn read(tarball: &Path, image: &Path) -> Result<StemcellManifest, Error> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| Error::Io { path, source }
    };
    let file = std::fs::File::open(tarball).map_err(io(tarball))?;
    let mut magic = [0u8; 2];
    let gzip = {
        let mut peek = std::fs::File::open(tarball).map_err(io(tarball))?;
        peek.read_exact(&mut magic).is_ok() && magic == [0x1f, 0x8b]
    };
    let reader: Box<dyn std::io::Read> = if gzip {
        Box::new(flate2::read::GzDecoder::new(file))
    } else {
        Box::new(file)
    };
    let partial = image.with_extension("part");
    if let Some(dir) = image.parent() {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
    }
    let read = read_entries(tarball, reader, &partial);
    if read.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    let manifest = read?;
    std::fs::rename(&partial, image).map_err(io(image))?;
    Ok(manifest)
}

/// Reads the entries: the manifest parsed, the image written to `partial`.
fn read_entries(
    tarball: &Path,
    reader: Box<dyn std::io::Read>,
    partial: &Path,
) -> Result<StemcellManifest, Error> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| Error::Io { path, source }
    };
    let mut archive = tar::Archive::new(reader);
    let mut manifest = None;
    let mut has_image = false;
    for entry in archive.entries().map_err(io(tarball))? {
        let mut entry = entry.map_err(io(tarball))?;
        let name = entry.path().map_err(io(tarball))?.into_owned();
        let name = name.strip_prefix("./").unwrap_or(&name).to_owned();
        if name == Path::new("stemcell.MF") {
            let mut text = String::new();
            entry.read_to_string(&mut text).map_err(io(tarball))?;
            manifest = Some(
                serde_yaml_ng::from_str::<StemcellManifest>(&text).map_err(|err| {
                    Error::Manifest {
                        path: tarball.to_owned(),
                        message: err.to_string(),
                    }
                })?,
            );
        } else if name == Path::new("image") {
            let mut out = std::fs::File::create(partial).map_err(io(partial))?;
            std::io::copy(&mut entry, &mut out).map_err(io(partial))?;
            out.sync_all().map_err(io(partial))?;
            has_image = true;
        }
    }
    let manifest = manifest.ok_or_else(|| Error::Missing {
        path: tarball.to_owned(),
        entry: "stemcell.MF",
    })?;
    if !has_image {
        return Err(Error::Missing {
            path: tarball.to_owned(),
            entry: "image",
        });
    }
    Ok(manifest)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `.tgz` of `entries` (name, bytes).
    fn tgz(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(
            Vec::new(),
            flate2::Compression::fast(),
        ));
        for (name, bytes) in entries {
            let mut header = tar::Header::new_gnu();
            header.set_size(bytes.len() as u64);
            header.set_mode(0o644);
            builder.append_data(&mut header, name, *bytes).unwrap();
        }
        builder.into_inner().unwrap().finish().unwrap()
    }

    const MF: &str = "name: bosh-dummy-ubuntu-jammy\nversion: 1.5\noperating_system: ubuntu-jammy\napi_version: 3\ncloud_properties: {disk: 5120}\n";

    #[test]
    fn the_manifest_is_read_and_the_image_streamed_to_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let tarball = dir.path().join("stemcell.tgz");
        std::fs::write(
            &tarball,
            tgz(&[
                ("./stemcell.MF", MF.as_bytes()),
                ("./image", b"disk bytes"),
                ("./other/evil", b"x"),
            ]),
        )
        .unwrap();
        let image = dir.path().join("out/image");
        let manifest = read(&tarball, &image).unwrap();
        assert_eq!(manifest.operating_system, "ubuntu-jammy");
        assert_eq!(manifest.version, "1.5");
        assert_eq!(manifest.api_version, Some(3));
        assert_eq!(manifest.cloud_properties, serde_json::json!({"disk": 5120}));
        assert_eq!(std::fs::read(&image).unwrap(), b"disk bytes");
        assert!(!dir.path().join("other").exists() && !dir.path().join("out/other").exists());
    }

    #[test]
    fn a_tarball_without_image_or_manifest_is_refused_and_writes_no_image() {
        let dir = tempfile::tempdir().unwrap();
        let image = dir.path().join("image");
        let tarball = dir.path().join("no-image.tgz");
        std::fs::write(&tarball, tgz(&[("stemcell.MF", MF.as_bytes())])).unwrap();
        let err = read(&tarball, &image).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("{} has no image", tarball.display())
        );
        assert!(!image.exists());
        std::fs::write(&tarball, tgz(&[("image", b"x")])).unwrap();
        let err = read(&tarball, &image).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("{} has no stemcell.MF", tarball.display())
        );
        std::fs::write(&tarball, tgz(&[("stemcell.MF", b"name: [")])).unwrap();
        assert!(matches!(
            read(&tarball, &image),
            Err(Error::Manifest { .. })
        ));
    }
}
