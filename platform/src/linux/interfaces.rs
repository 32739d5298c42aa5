//! The VM's network interfaces by MAC address (`platform/net/mac_address_detector.go`): every
//! entry of `/sys/class/net` that has a `device` (a real NIC, not `lo` or a bridge) or an `ifalias`
//! starting with `bosh-interface` (a virtual interface that replaced a NIC), except Azure SR-IOV
//! VFs that udev tags `E:AZURE_UNMANAGED_SRIOV=1` in `/run/udev/data/n<ifindex>`.
//!
//! MAC addresses are kept lower case (the kernel writes them so); the settings' are compared
//! case-insensitively.

use std::collections::BTreeMap;

use crate::HostPaths;
use crate::bootstrap::{Error, Result};

/// The `ifalias` prefix of virtual interfaces the agent configures.
const IFALIAS_PREFIX: &str = "bosh-interface";

/// The udev property of SR-IOV VFs that must not be configured.
const AZURE_UNMANAGED_SRIOV: &str = "E:AZURE_UNMANAGED_SRIOV=1";

/// Interface names by lower-case MAC address.
pub type InterfacesByMac = BTreeMap<String, String>;

/// Reads the interfaces of the host.
pub fn detect(host: &HostPaths) -> Result<InterfacesByMac> {
    let class_net = host.sys("class/net");
    let entries =
        std::fs::read_dir(&class_net).map_err(|source| Error::io("listing", &class_net, source))?;
    let mut interfaces = InterfacesByMac::new();
    for entry in entries {
        let entry = entry.map_err(|source| Error::io("listing", &class_net, source))?;
        let dir = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        let is_device = dir.join("device").exists();
        let has_bosh_alias = std::fs::read_to_string(dir.join("ifalias"))
            .is_ok_and(|alias| alias.starts_with(IFALIAS_PREFIX));
        if !(is_device || has_bosh_alias) {
            continue;
        }
        if is_unmanaged_sriov(host, &dir) {
            tracing::debug!(interface = %name, "ignoring an unmanaged SR-IOV interface");
            continue;
        }
        let address_file = dir.join("address");
        let mac = std::fs::read_to_string(&address_file)
            .map_err(|source| Error::io("reading", &address_file, source))?;
        interfaces.insert(mac.trim().to_ascii_lowercase(), name);
    }
    Ok(interfaces)
}

fn is_unmanaged_sriov(host: &HostPaths, dir: &std::path::Path) -> bool {
    let Ok(ifindex) = std::fs::read_to_string(dir.join("ifindex")) else {
        return false;
    };
    std::fs::read_to_string(host.run(&format!("udev/data/n{}", ifindex.trim())))
        .is_ok_and(|data| data.lines().any(|line| line == AZURE_UNMANAGED_SRIOV))
}

#[cfg(test)]
pub(crate) mod tests {
    use std::path::Path;

    use super::*;

    /// Adds `/sys/class/net/<name>` with `mac`; `device` makes it a NIC.
    pub(crate) fn add_interface(root: &Path, name: &str, mac: &str, device: bool) {
        let dir = root.join("sys/class/net").join(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("address"), format!("{mac}\n")).unwrap();
        if device {
            std::fs::create_dir_all(dir.join("device")).unwrap();
        }
    }

    #[test]
    fn nics_and_bosh_aliased_interfaces_are_found_by_mac() {
        let root = tempfile::tempdir().unwrap();
        add_interface(root.path(), "lo", "00:00:00:00:00:00", false);
        add_interface(root.path(), "ens3", "52:54:00:AB:CD:EF", true);
        add_interface(root.path(), "veth0", "02:00:00:00:00:01", false);
        add_interface(root.path(), "br0", "02:00:00:00:00:02", false);
        std::fs::write(
            root.path().join("sys/class/net/br0/ifalias"),
            "bosh-interface-0\n",
        )
        .unwrap();
        add_interface(root.path(), "vf0", "02:00:00:00:00:03", true);
        std::fs::write(root.path().join("sys/class/net/vf0/ifindex"), "7\n").unwrap();
        std::fs::create_dir_all(root.path().join("run/udev/data")).unwrap();
        std::fs::write(
            root.path().join("run/udev/data/n7"),
            "I:1\nE:AZURE_UNMANAGED_SRIOV=1\n",
        )
        .unwrap();
        let found = detect(&HostPaths::with_root(root.path())).unwrap();
        assert_eq!(
            found.into_iter().collect::<Vec<_>>(),
            vec![
                ("02:00:00:00:00:02".to_owned(), "br0".to_owned()),
                ("52:54:00:ab:cd:ef".to_owned(), "ens3".to_owned()),
            ]
        );
    }
}
