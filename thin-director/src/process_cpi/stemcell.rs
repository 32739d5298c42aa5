//! The stemcell methods: `create_stemcell`, `delete_stemcell`.
//!
//! A process VM runs the configured `bosh-agent` on this host, so a stemcell's image is not
//! unpacked: the image must exist (the director hands over the extracted `image` file), and the
//! record `<base_dir>/stemcells/<cid>.json` keeps its path and cloud properties so `create_vm` can
//! refuse a stemcell it never saw. Deleting a stemcell that is gone already succeeds: there is
//! nothing left to clean up.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::process_cpi::ProcessCpi;
use crate::process_cpi::error::{Error, Result};
use crate::process_cpi::store::{self, is_cid};
use crate::process_cpi::wire::Request;

/// A stemcell's record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StemcellRecord {
    /// The image the director gave.
    pub image_path: String,
    /// The stemcell's cloud properties (from `stemcell.MF`).
    pub cloud_properties: Value,
    /// When it was created, seconds after the epoch.
    pub created_at: u64,
}

/// `create_stemcell(image_path, cloud_properties)`: the stemcell's cid.
pub fn create_stemcell(cpi: &ProcessCpi, request: &Request) -> Result<Value> {
    let args = request.arguments();
    let image_path = args.string(0, "image_path")?;
    let cloud_properties = args.object(1, "cloud_properties")?;
    if !std::path::Path::new(image_path).exists() {
        return Err(Error::InvalidArgument {
            method: request.method.clone(),
            name: "image_path",
            problem: format!("{image_path} does not exist"),
        });
    }
    let stemcell_cid = store::new_cid("stemcell");
    store::create_dir_all(&cpi.store.stemcells_dir())?;
    store::write_json(
        &cpi.store.stemcell_file(&stemcell_cid),
        &StemcellRecord {
            image_path: image_path.to_owned(),
            cloud_properties: Value::Object(cloud_properties),
            created_at: store::now_secs(),
        },
    )?;
    tracing::info!(stemcell_cid, "stemcell created");
    Ok(json!(stemcell_cid))
}

/// `delete_stemcell(stemcell_cid)`.
pub fn delete_stemcell(cpi: &ProcessCpi, request: &Request) -> Result<Value> {
    let stemcell_cid = request.arguments().string(0, "stemcell_cid")?;
    if is_cid(stemcell_cid) {
        store::remove_file(&cpi.store.stemcell_file(stemcell_cid))?;
    }
    Ok(Value::Null)
}
