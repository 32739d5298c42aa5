//! Trusted certificates on the dummy platform: the bundle is kept verbatim in
//! `bosh/dummy_trusted_certs.pem` (the Go dummy platform's cert manager, `NewDummyCertManager` in
//! `platform/cert/cert_manager.go`, does nothing).

use crate::cert::Result;
use crate::dummy::{DummyPlatform, TRUSTED_CERTS_FILE, state};

impl DummyPlatform {
    pub(super) fn write_trusted_certs(&self, pem_bundle: &str) -> Result<()> {
        state::write_bytes(&self.state_file(TRUSTED_CERTS_FILE), pem_bundle.as_bytes())?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use settings::Dirs;

    use super::*;
    use crate::Platform;

    #[test]
    fn the_last_bundle_is_kept() {
        let base = tempfile::tempdir().unwrap();
        let platform = DummyPlatform::new(&Dirs::new(base.path()));
        let bundle = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
        platform.update_trusted_certs("old").unwrap();
        platform.update_trusted_certs(bundle).unwrap();
        let file = base.path().join("bosh/dummy_trusted_certs.pem");
        assert_eq!(std::fs::read_to_string(&file).unwrap(), bundle);
        platform.update_trusted_certs("").unwrap();
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "");
    }
}
