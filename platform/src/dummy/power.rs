//! Shutdown on the dummy platform: creates `bosh/dummy_shutdown` instead of powering off (the Go dummy
//! platform's `Shutdown` does nothing).

use crate::dummy::{DummyPlatform, SHUTDOWN_FILE, state};
use crate::power::Result;

impl DummyPlatform {
    pub(super) fn record_shutdown(&self) -> Result<()> {
        state::write_bytes(&self.state_file(SHUTDOWN_FILE), b"")?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use settings::Dirs;

    use super::*;
    use crate::Platform;

    #[test]
    fn shutdown_is_recorded() {
        let base = tempfile::tempdir().unwrap();
        let platform = DummyPlatform::new(&Dirs::new(base.path()));
        let marker = base.path().join("bosh/dummy_shutdown");
        assert!(!marker.exists());
        platform.shutdown().unwrap();
        assert!(marker.is_file());
    }
}
