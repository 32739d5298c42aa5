//! The agent settings a process VM boots with, and its `agent.json`: the documents a Go CPI writes
//! for its agents (`bosh-cpi-go: apiv1/agent_env.go`; the Warden and Docker CPIs write the same
//! JSON to a file inside the container), built here as plain JSON with the Go field names because
//! the director may not depend on the `settings` crate.
//!
//! `agent_id`; `vm` (`name` and `id`, both the VM cid); `mbus` from the CPI config; `ntp`;
//! `blobstore` from the CPI config unless `env.bosh.blobstores` is given (the agent prefers those
//! anyway, `reference/bosh-agent.md` §4.4); `networks` as the director sent them, except that a
//! dynamic network without an address gets the loopback one (every process VM lives on this
//! host's loopback); `disks` with `system` and `ephemeral` set to the names the dummy platform
//! uses (`/dev/sda`, `/dev/sdb`: nothing is partitioned or mounted) and `persistent` holding each
//! attached disk's hint; `env` as `create_vm`'s `environment` argument, which carries
//! `bosh.mbus.cert`.
//!
//! The disk hint is `{"path": "<base_dir>/disks/<cid>"}`: the object form
//! (`settings::model::DiskSpec`), because the string form doubles as a volume id in the Go agent,
//! and the path of the directory that is the disk, so the hint says where the disk is. The dummy
//! platform keys its mounts by cid and never opens the path (`platform/src/dummy/disk.rs`), and
//! `add_persistent_disk` accepts either form (`agent/src/action/add_persistent_disk.rs`).

use std::path::Path;

use serde_json::{Map, Value, json};

use crate::process_cpi::config::AgentConfig;

/// The root disk name written into the settings.
pub const SYSTEM_DISK: &str = "/dev/sda";

/// The ephemeral disk name written into the settings: the dummy platform's fixed one.
pub const EPHEMERAL_DISK: &str = "/dev/sdb";

/// The address a dynamic network gets.
pub const LOOPBACK_IP: &str = "127.0.0.1";

/// Its netmask.
pub const LOOPBACK_NETMASK: &str = "255.0.0.0";

/// What the settings of a new VM are made from.
#[derive(Debug, Clone, Copy)]
pub struct NewVm<'a> {
    /// The agent id.
    pub agent_id: &'a str,
    /// The VM cid.
    pub vm_cid: &'a str,
    /// The agent section of the CPI config.
    pub agent: &'a AgentConfig,
    /// The networks, as [`vm_networks`] returns them.
    pub networks: &'a Map<String, Value>,
    /// `create_vm`'s `environment`.
    pub env: &'a Map<String, Value>,
}

/// The settings document of a new VM.
pub fn agent_settings(vm: &NewVm<'_>) -> Value {
    let mut settings = json!({
        "agent_id": vm.agent_id,
        "vm": {"name": vm.vm_cid, "id": vm.vm_cid},
        "mbus": vm.agent.mbus,
        "ntp": vm.agent.ntp,
        "networks": vm.networks,
        "disks": {
            "system": SYSTEM_DISK,
            "ephemeral": EPHEMERAL_DISK,
            "persistent": {},
        },
        "env": vm.env,
    });
    if let Some(blobstore) = &vm.agent.blobstore {
        if !has_env_blobstores(vm.env) {
            settings["blobstore"] = blobstore.clone();
        }
    }
    settings
}

/// The `agent.json` of a VM: one `File` settings source reading `settings_path`.
pub fn agent_config(settings_path: &Path) -> Value {
    json!({
        "Infrastructure": {
            "Settings": {
                "Sources": [{"Type": "File", "SettingsPath": settings_path}],
            },
        },
    })
}

/// The networks as the VM gets them: each dynamic network without an `ip` gets the loopback
/// address and netmask.
pub fn vm_networks(networks: &Map<String, Value>) -> Map<String, Value> {
    let mut networks = networks.clone();
    for network in networks.values_mut() {
        let Value::Object(fields) = network else {
            continue;
        };
        let is_dynamic = fields.get("type").and_then(Value::as_str) == Some("dynamic");
        let has_ip = fields
            .get("ip")
            .and_then(Value::as_str)
            .is_some_and(|ip| !ip.is_empty());
        if is_dynamic && !has_ip {
            fields.insert("ip".to_owned(), json!(LOOPBACK_IP));
            fields.insert("netmask".to_owned(), json!(LOOPBACK_NETMASK));
        }
    }
    networks
}

/// The hint `attach_disk` returns for the disk whose directory is `disk_dir`.
pub fn disk_hint(disk_dir: &Path) -> Value {
    json!({"path": disk_dir})
}

/// Records `disk_cid` as attached with `hint` in `settings.disks.persistent`.
pub fn attach(settings: &mut Value, disk_cid: &str, hint: Value) {
    if !settings["disks"].is_object() {
        settings["disks"] = json!({});
    }
    if !settings["disks"]["persistent"].is_object() {
        settings["disks"]["persistent"] = json!({});
    }
    settings["disks"]["persistent"][disk_cid] = hint;
}

/// Removes `disk_cid` from `settings.disks.persistent`; whether it was there.
pub fn detach(settings: &mut Value, disk_cid: &str) -> bool {
    settings
        .get_mut("disks")
        .and_then(|disks| disks.get_mut("persistent"))
        .and_then(Value::as_object_mut)
        .is_some_and(|persistent| persistent.remove(disk_cid).is_some())
}

/// The cids in `settings.disks.persistent`.
pub fn persistent_disks(settings: &Value) -> Vec<String> {
    settings["disks"]["persistent"]
        .as_object()
        .map(|persistent| persistent.keys().cloned().collect())
        .unwrap_or_default()
}

/// Whether `env.bosh.blobstores` names at least one blobstore.
fn has_env_blobstores(env: &Map<String, Value>) -> bool {
    env.get("bosh")
        .and_then(|bosh| bosh.get("blobstores"))
        .and_then(Value::as_array)
        .is_some_and(|blobstores| !blobstores.is_empty())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn agent() -> AgentConfig {
        AgentConfig {
            binary: "/bin/bosh-agent".into(),
            mbus: "nats://127.0.0.1:4222".into(),
            blobstore: Some(json!({"provider": "local", "options": {"blobstore_path": "/b"}})),
            ntp: vec!["ntp.example".into()],
            supervisor: "monit".into(),
            env: BTreeMap::new(),
        }
    }

    fn object(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(fields) => fields,
            _ => panic!("not an object"),
        }
    }

    #[test]
    fn a_new_vm_gets_the_go_cpi_settings_document() {
        let agent = agent();
        let networks = object(json!({"default": {"type": "manual", "ip": "10.0.0.5",
            "netmask": "255.255.255.0", "gateway": "10.0.0.1", "default": ["dns", "gateway"]}}));
        let env = object(
            json!({"bosh": {"mbus": {"cert": {"ca": "CA", "certificate": "CERT",
            "private_key": "KEY"}}, "group": "g"}}),
        );
        let settings = agent_settings(&NewVm {
            agent_id: "agent-1",
            vm_cid: "vm-1",
            agent: &agent,
            networks: &networks,
            env: &env,
        });
        assert_eq!(
            settings,
            json!({
                "agent_id": "agent-1",
                "vm": {"name": "vm-1", "id": "vm-1"},
                "mbus": "nats://127.0.0.1:4222",
                "ntp": ["ntp.example"],
                "blobstore": {"provider": "local", "options": {"blobstore_path": "/b"}},
                "networks": {"default": {"type": "manual", "ip": "10.0.0.5",
                    "netmask": "255.255.255.0", "gateway": "10.0.0.1", "default": ["dns", "gateway"]}},
                "disks": {"system": "/dev/sda", "ephemeral": "/dev/sdb", "persistent": {}},
                "env": {"bosh": {"mbus": {"cert": {"ca": "CA", "certificate": "CERT",
                    "private_key": "KEY"}}, "group": "g"}},
            })
        );
    }

    #[test]
    fn env_blobstores_leave_out_the_configured_blobstore() {
        let agent = agent();
        let networks = Map::new();
        let with = object(json!({"bosh": {"blobstores": [{"provider": "dav"}]}}));
        let settings = agent_settings(&NewVm {
            agent_id: "a",
            vm_cid: "vm",
            agent: &agent,
            networks: &networks,
            env: &with,
        });
        assert!(settings.get("blobstore").is_none());
        // An empty list names none: the configured blobstore is written.
        let empty = object(json!({"bosh": {"blobstores": []}}));
        let settings = agent_settings(&NewVm {
            env: &empty,
            agent_id: "a",
            vm_cid: "vm",
            agent: &agent,
            networks: &networks,
        });
        assert_eq!(settings["blobstore"]["provider"], "local");
    }

    #[test]
    fn dynamic_networks_get_the_loopback_address() {
        let networks = vm_networks(&object(json!({
            "dyn": {"type": "dynamic", "cloud_properties": {}},
            "dyn-with-ip": {"type": "dynamic", "ip": "10.1.1.1"},
            "manual": {"type": "manual", "ip": "10.0.0.5"},
            "vip": {"type": "vip"},
        })));
        assert_eq!(
            Value::Object(networks),
            json!({
                "dyn": {"type": "dynamic", "cloud_properties": {}, "ip": "127.0.0.1",
                    "netmask": "255.0.0.0"},
                "dyn-with-ip": {"type": "dynamic", "ip": "10.1.1.1"},
                "manual": {"type": "manual", "ip": "10.0.0.5"},
                "vip": {"type": "vip"},
            })
        );
    }

    #[test]
    fn the_agent_config_has_one_file_source() {
        assert_eq!(
            agent_config(Path::new("/cpi/vms/vm-1/agent-settings.json")),
            json!({"Infrastructure": {"Settings": {"Sources": [
                {"Type": "File", "SettingsPath": "/cpi/vms/vm-1/agent-settings.json"}]}}})
        );
    }

    #[test]
    fn attached_disks_are_listed_with_their_hints_until_detached() {
        let mut settings = json!({"agent_id": "a"});
        assert!(persistent_disks(&settings).is_empty());
        attach(
            &mut settings,
            "disk-1",
            disk_hint(Path::new("/cpi/disks/disk-1")),
        );
        attach(
            &mut settings,
            "disk-2",
            disk_hint(Path::new("/cpi/disks/disk-2")),
        );
        assert_eq!(
            settings["disks"]["persistent"]["disk-1"],
            json!({"path": "/cpi/disks/disk-1"})
        );
        assert_eq!(persistent_disks(&settings), ["disk-1", "disk-2"]);
        assert!(detach(&mut settings, "disk-1"));
        assert!(!detach(&mut settings, "disk-1"));
        assert_eq!(persistent_disks(&settings), ["disk-2"]);
    }
}
