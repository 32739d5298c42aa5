//! ARP flushes on the dummy platform: every address is appended to `bosh/dummy_arp_flushes.json`
//! (the Go dummy platform's `DeleteARPEntryWithIP` does nothing).

use crate::dummy::{ARP_FLUSHES_FILE, DummyPlatform, state};
use crate::net::{self, Result};

impl DummyPlatform {
    pub(super) fn record_arp_flushes(&self, ips: &[String]) -> Result<()> {
        net::parse_ips(ips)?;
        let _state = self.lock_state();
        let file = self.state_file(ARP_FLUSHES_FILE);
        let mut flushed: Vec<String> = state::read_json(&file)?;
        flushed.extend(ips.iter().cloned());
        state::write_json(&file, &flushed)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use settings::Dirs;

    use super::*;
    use crate::Platform;

    #[test]
    fn flushes_are_recorded_in_order() {
        let base = tempfile::tempdir().unwrap();
        let platform = DummyPlatform::new(&Dirs::new(base.path()));
        platform
            .delete_arp_entries(&["10.0.0.1".into(), "10.0.0.2".into()])
            .unwrap();
        platform.delete_arp_entries(&["fd00::5".into()]).unwrap();
        let file = base.path().join("bosh/dummy_arp_flushes.json");
        assert_eq!(
            std::fs::read_to_string(&file).unwrap(),
            r#"["10.0.0.1","10.0.0.2","fd00::5"]"#
        );
        let err = platform
            .delete_arp_entries(&["10.0.0.3".into(), "not-an-ip".into()])
            .unwrap_err();
        assert_eq!(err.to_string(), "'not-an-ip' is not an ip address");
        assert_eq!(
            std::fs::read_to_string(&file).unwrap(),
            r#"["10.0.0.1","10.0.0.2","fd00::5"]"#
        );
    }
}
