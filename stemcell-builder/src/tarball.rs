//! The stemcell tarball in the BOSH layout: `bosh-stemcell-<version>-qemu-kvm-debian-bookworm.tgz`
//! holding `stemcell.MF`, `packages.txt`, `dev_tools_file_list.txt` and `image`, itself a gzip'd tar of one file `root.img`
//! (the qcow2 disk). Both are written under a temporary name and renamed into place.
//!
//! The qcow2 clusters are already deflated (`qemu-img convert -c`), so both archives are gzip
//! streams of stored blocks (level 0): deflating again gains under 1 % and costs a minute in a
//! debug build.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use flate2::Compression;
use flate2::write::GzEncoder;
use sha1::{Digest, Sha1};

use crate::customize::Customized;

/// The name of the disk inside `image`.
pub const ROOT_IMG: &str = "root.img";

/// Why writing a tarball failed.
#[derive(Debug, thiserror::Error)]
#[error("writing {}", .path.display())]
pub struct Error {
    /// The tarball being written.
    pub path: PathBuf,
    /// The cause.
    #[source]
    pub source: io::Error,
}

/// The stemcell tarball's file name for `version`.
pub fn tarball_name(version: &str) -> String {
    format!("bosh-stemcell-{version}-qemu-kvm-debian-bookworm.tgz")
}

/// Writes `image` (a gzip'd tar holding `qcow2` as [`ROOT_IMG`]) and returns its sha1, hex.
pub fn write_image(qcow2: &Path, image: &Path) -> Result<String, Error> {
    write_atomically(image, |file| {
        let mut builder = tar::Builder::new(GzEncoder::new(file, Compression::none()));
        // Plain entries only: a GNU sparse entry (the tar crate's default for files with holes)
        // is not a regular file to CPIs that unpack `root.img`.
        builder.sparse(false);
        builder.append_path_with_name(qcow2, ROOT_IMG)?;
        builder.into_inner()?.finish()?.flush()
    })?;
    sha1_file(image).map_err(|source| Error {
        path: image.to_owned(),
        source,
    })
}

/// The stemcell tarball's entries, in order.
pub const ENTRIES: [&str; 4] = [
    "stemcell.MF",
    "packages.txt",
    "dev_tools_file_list.txt",
    "image",
];

/// Writes the stemcell tarball at `tarball`: the [`ENTRIES`], `image` last.
pub fn write_stemcell(
    tarball: &Path,
    manifest_yaml: &str,
    customized: &Customized,
    image: &Path,
) -> Result<(), Error> {
    write_atomically(tarball, |file| {
        let mut builder = tar::Builder::new(GzEncoder::new(file, Compression::none()));
        builder.sparse(false);
        for (name, content) in ENTRIES.iter().zip([
            manifest_yaml.as_bytes(),
            customized.packages.as_bytes(),
            customized.dev_tools.as_bytes(),
        ]) {
            let mut header = tar::Header::new_gnu();
            header.set_size(content.len() as u64);
            header.set_mode(0o644);
            header.set_mtime(now_secs());
            header.set_cksum();
            builder.append_data(&mut header, name, content)?;
        }
        builder.append_path_with_name(image, ENTRIES[3])?;
        builder.into_inner()?.finish()?.flush()
    })
}

/// The sha1 of a file's content, hex.
pub fn sha1_file(path: &Path) -> io::Result<String> {
    let mut hasher = Sha1::new();
    io::copy(&mut fs::File::open(path)?, &mut hasher)?;
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

fn write_atomically(
    path: &Path,
    write: impl FnOnce(io::BufWriter<fs::File>) -> io::Result<()>,
) -> Result<(), Error> {
    let error = |source| Error {
        path: path.to_owned(),
        source,
    };
    let mut partial = path.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    let result = fs::File::create(&partial)
        .and_then(|file| write(io::BufWriter::new(file)))
        .and_then(|()| fs::rename(&partial, path));
    if result.is_err() {
        let _ = fs::remove_file(&partial);
    }
    result.map_err(error)
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use flate2::read::GzDecoder;

    use super::*;

    fn entries(path: &Path) -> Vec<(String, Vec<u8>)> {
        let mut archive = tar::Archive::new(GzDecoder::new(fs::File::open(path).unwrap()));
        archive
            .entries()
            .unwrap()
            .map(|entry| {
                let mut entry = entry.unwrap();
                let name = entry.path().unwrap().to_string_lossy().into_owned();
                let mut content = Vec::new();
                entry.read_to_end(&mut content).unwrap();
                (name, content)
            })
            .collect()
    }

    #[test]
    fn the_stemcell_holds_manifest_packages_and_an_image_of_root_img() {
        let dir = tempfile::tempdir().unwrap();
        let qcow2 = dir.path().join("disk.qcow2");
        fs::write(&qcow2, b"QFI\xfb qcow2 bytes").unwrap();
        let image = dir.path().join("image");
        let sha1 = write_image(&qcow2, &image).unwrap();
        assert_eq!(sha1, sha1_file(&image).unwrap());
        assert_eq!(sha1.len(), 40);
        assert_eq!(
            entries(&image),
            [("root.img".to_owned(), b"QFI\xfb qcow2 bytes".to_vec())]
        );

        let tarball = dir.path().join(tarball_name("1.0"));
        let customized = Customized {
            packages: "bash\t5.2\n".into(),
            dev_tools: "/usr/bin/gcc-12\n".into(),
        };
        write_stemcell(&tarball, "name: x\n", &customized, &image).unwrap();
        let got = entries(&tarball);
        let names: Vec<&str> = got.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ENTRIES);
        assert_eq!(got[0].1, b"name: x\n");
        assert_eq!(got[1].1, b"bash\t5.2\n");
        assert_eq!(got[2].1, b"/usr/bin/gcc-12\n");
        assert_eq!(got[3].1, fs::read(&image).unwrap());
        assert!(
            !dir.path()
                .join("bosh-stemcell-1.0-qemu-kvm-debian-bookworm.tgz.partial")
                .exists()
        );
    }

    #[test]
    fn the_name_carries_version_infrastructure_and_os() {
        assert_eq!(
            tarball_name("0.0.1"),
            "bosh-stemcell-0.0.1-qemu-kvm-debian-bookworm.tgz"
        );
    }

    #[test]
    fn a_missing_disk_leaves_no_image() {
        let dir = tempfile::tempdir().unwrap();
        let image = dir.path().join("image");
        let err = write_image(&dir.path().join("none.qcow2"), &image).unwrap_err();
        assert_eq!(err.to_string(), format!("writing {}", image.display()));
        assert!(!image.exists());
        assert!(!dir.path().join("image.partial").exists());
    }
}
