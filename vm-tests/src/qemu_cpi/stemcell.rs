//! The stemcell methods: `create_stemcell`, `delete_stemcell`
//! (`docs-bosh: content/cpi-api-v2-method/create-stemcell.md`, `delete-stemcell.md`).
//!
//! The director hands over the stemcell's extracted `image`: a gzip'd tar holding one qcow2 disk,
//! `root.img`. `create_stemcell` unpacks `root.img` into a dot-named directory under `stemcells/`,
//! checks it is qcow2, and renames the directory to the new cid, so a stemcell exists whole or not
//! at all. VMs' root disks are qcow2 overlays backed by it. `delete_stemcell` of a stemcell that
//! is not there is `Bosh::Clouds::StemcellNotFound`, which bosh-cli tolerates when it deletes
//! stemcells (`bosh-cli: stemcell/cloud_stemcell.go`).

use std::fs::File;
use std::io::Read as _;
use std::path::{Component, Path};

use serde_json::{Value, json};
use thin_director::process_cpi::Error as CpiError;
use thin_director::process_cpi::wire::Request;

use crate::qemu_cpi::QemuCpi;
use crate::qemu_cpi::error::{Error, Result};
use crate::qemu_cpi::store;

/// The first bytes of a qcow2 image.
pub const QCOW2_MAGIC: &[u8; 4] = b"QFI\xfb";

/// `create_stemcell(image_path, cloud_properties)`: the stemcell's cid.
pub fn create_stemcell(cpi: &QemuCpi, request: &Request) -> Result<Value> {
    let args = request.arguments();
    let image_path = Path::new(args.string(0, "image_path")?);
    args.object(1, "cloud_properties")?;
    if !image_path.is_file() {
        return Err(CpiError::InvalidArgument {
            method: request.method.clone(),
            name: "image_path",
            problem: format!("{} is not a file", image_path.display()),
        }
        .into());
    }
    let stemcell_cid = store::new_stemcell_cid();
    let stemcells_dir = cpi.store.stemcells_dir();
    store::create_dir_all(&stemcells_dir)?;
    let staging = tempfile::Builder::new()
        .prefix(&format!(".{stemcell_cid}."))
        .tempdir_in(&stemcells_dir)
        .map_err(Error::io("creating a directory in", &stemcells_dir))?;
    let image = staging.path().join(store::STEMCELL_IMAGE);
    unpack_root_image(image_path, &image)?;
    check_qcow2(image_path, &image)?;
    let target = cpi.store.stemcell_dir(&stemcell_cid);
    let staging = staging.keep();
    if let Err(err) = std::fs::rename(&staging, &target) {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(Error::io("creating", &target)(err));
    }
    tracing::info!(stemcell_cid, "stemcell created");
    Ok(json!(stemcell_cid))
}

/// `delete_stemcell(stemcell_cid)`.
pub fn delete_stemcell(cpi: &QemuCpi, request: &Request) -> Result<Value> {
    let stemcell_cid = request.arguments().string(0, "stemcell_cid")?;
    if !cpi.store.has_stemcell(stemcell_cid) {
        return Err(CpiError::StemcellNotFound(stemcell_cid.to_owned()).into());
    }
    let dir = cpi.store.stemcell_dir(stemcell_cid);
    // Renamed away first, so no create_vm sees a half-removed stemcell; a dot name is no cid.
    let doomed = cpi.store.stemcells_dir().join(format!(
        ".{stemcell_cid}.deleted-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::rename(&dir, &doomed).map_err(Error::io("removing", &dir))?;
    store::remove_dir_all(&doomed)?;
    tracing::info!(stemcell_cid, "stemcell deleted");
    Ok(Value::Null)
}

/// Writes the `root.img` of the gzip'd tar `image_path` to `target`.
pub fn unpack_root_image(image_path: &Path, target: &Path) -> Result<()> {
    let bad = |problem: String| Error::StemcellImage {
        path: image_path.to_owned(),
        problem,
    };
    let file = File::open(image_path).map_err(Error::io("opening", image_path))?;
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let entries = archive
        .entries()
        .map_err(|err| bad(format!("not a gzip'd tar: {err}")))?;
    for entry in entries {
        let mut entry = entry.map_err(|err| bad(format!("not a gzip'd tar: {err}")))?;
        let path = entry
            .path()
            .map_err(|err| bad(format!("an entry has a bad name: {err}")))?
            .into_owned();
        let names: Vec<_> = path
            .components()
            .filter(|component| !matches!(component, Component::CurDir))
            .collect();
        if names != [Component::Normal(store::STEMCELL_IMAGE.as_ref())]
            || !entry.header().entry_type().is_file()
        {
            continue;
        }
        let mut out = File::create(target).map_err(Error::io("creating", target))?;
        std::io::copy(&mut entry, &mut out)
            .map_err(|err| bad(format!("unpacking {}: {err}", store::STEMCELL_IMAGE)))?;
        out.sync_all().map_err(Error::io("writing", target))?;
        return Ok(());
    }
    Err(bad(format!("it holds no {}", store::STEMCELL_IMAGE)))
}

/// Checks the unpacked `image` starts with the qcow2 magic.
fn check_qcow2(image_path: &Path, image: &Path) -> Result<()> {
    let mut magic = [0u8; 4];
    let read = File::open(image)
        .and_then(|mut file| file.read_exact(&mut magic))
        .map_err(Error::io("reading", image));
    if read.is_err() || &magic != QCOW2_MAGIC {
        return Err(Error::StemcellImage {
            path: image_path.to_owned(),
            problem: format!("its {} is not a qcow2 image", store::STEMCELL_IMAGE),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tgz(path: &Path, files: &[(&str, &[u8])]) {
        let file = File::create(path).unwrap();
        let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(
            file,
            flate2::Compression::fast(),
        ));
        for (name, contents) in files {
            let mut header = tar::Header::new_gnu();
            header.set_size(contents.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            builder.append_data(&mut header, name, *contents).unwrap();
        }
        builder.into_inner().unwrap().finish().unwrap();
    }

    #[test]
    fn root_img_is_unpacked_wherever_it_sits_in_the_tar() {
        let dir = tempfile::tempdir().unwrap();
        let image = dir.path().join("image");
        tgz(
            &image,
            &[("./other", b"x"), ("./root.img", b"QFI\xfbrest-of-disk")],
        );
        let target = dir.path().join("root.img");
        unpack_root_image(&image, &target).unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"QFI\xfbrest-of-disk");
        check_qcow2(&image, &target).unwrap();
    }

    #[test]
    fn an_image_without_a_qcow2_root_img_is_refused_with_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let image = dir.path().join("image");
        tgz(&image, &[("disk.raw", b"x"), ("sub/root.img", b"QFI\xfb")]);
        let target = dir.path().join("root.img");
        let err = unpack_root_image(&image, &target).unwrap_err();
        assert_eq!(
            err.message(),
            format!("stemcell image {}: it holds no root.img", image.display())
        );
        tgz(&image, &[("root.img", b"raw disk")]);
        unpack_root_image(&image, &target).unwrap();
        assert_eq!(
            check_qcow2(&image, &target).unwrap_err().message(),
            format!(
                "stemcell image {}: its root.img is not a qcow2 image",
                image.display()
            )
        );
        std::fs::write(&image, "not gzip").unwrap();
        assert!(
            unpack_root_image(&image, &target)
                .unwrap_err()
                .message()
                .contains("not a gzip'd tar")
        );
    }
}
