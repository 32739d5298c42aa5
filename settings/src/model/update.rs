//! Settings the director sends after boot with `update_settings` (`settings/update_settings.go`), kept in
//! `bosh/update_settings.json` and laid over the settings on every load.

use serde::{Deserialize, Serialize};

use crate::model::{Blobstore, Mbus};

/// The contents of `bosh/update_settings.json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct UpdateSettings {
    /// Blobstores; the first wins over `env.bosh.blobstores`.
    pub blobstores: Vec<Blobstore>,
    /// Which disk CID backs which named disk of the instance.
    pub disk_associations: Vec<DiskAssociation>,
    /// mbus URLs and certificates; win over `env.bosh.mbus`.
    pub mbus: Mbus,
    /// Extra CA certificates for the system trust store, PEM concatenated.
    pub trusted_certs: String,
}

/// One named disk of the instance.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct DiskAssociation {
    /// The disk's name in the manifest.
    pub name: String,
    /// Its disk CID.
    pub cid: String,
}

impl UpdateSettings {
    /// Lays `newer` over these settings as the Go agent does: trusted certs and disk associations are
    /// always replaced; mbus and blobstores only when the new ones are non-empty and different.
    /// Returns whether mbus or blobstores changed (the agent must then restart to use them).
    pub fn merge(&mut self, newer: UpdateSettings) -> bool {
        let mut changed = false;
        self.trusted_certs = newer.trusted_certs;
        self.disk_associations = newer.disk_associations;
        if newer.mbus != self.mbus && newer.mbus != Mbus::default() {
            self.mbus = newer.mbus;
            changed = true;
        }
        if newer.blobstores != self.blobstores && !newer.blobstores.is_empty() {
            self.blobstores = newer.blobstores;
            changed = true;
        }
        changed
    }
}
