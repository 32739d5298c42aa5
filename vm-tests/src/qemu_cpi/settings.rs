//! The agent settings a QEMU VM boots with (on its config drive, `iso.rs`), its MAC address, and
//! the disk hints: the document a registry-less Go CPI puts in user data (`bosh-cpi-go:
//! apiv1/agent_env.go`), as plain JSON with the Go field names.
//!
//! `agent_id`; `vm` (`name` and `id`, both the VM cid); `mbus`, `ntp` and `blobstore` from the
//! CPI config's `agent` section (`blobstore` left out when `env.bosh.blobstores` is given);
//! `networks` as the director sent them, each with the VM's `mac`; `disks` with `system`
//! `/dev/vda`, `ephemeral` `{"id": <serial>, "path": "/dev/vdb"}` (left out when the VM has no
//! ephemeral disk), `raw_ephemeral` (only when the VM has raw ephemeral disks) `[{"id": <serial>,
//! "path": "/dev/vd<letter>"}, ...]` with the letters after the ephemeral disk's (NVMe ones get
//! `/dev/nvme<i>n1`, the guess of a cloud CPI, which the guest's enumeration may not match), and
//! `persistent` holding each attached disk's hint; `env` as `create_vm`'s `environment`.
//!
//! The guest reaches host services only through QEMU's `guestfwd`s, so every URL the agent dials
//! (`mbus`, `env.bosh.mbus.urls`, each blobstore's `options.endpoint`) whose `host:port` is a
//! forward's host side is rewritten to the forward's guest side ([`rewrite_url`]).
//!
//! The disk hint is `{"id": <serial>, "path": "/dev/vd<letter>"}`: the agent's virtio device path
//! resolution finds `/dev/disk/by-id/virtio-<id>` and falls back to the path.

use serde_json::{Map, Value, json};
use sha1::{Digest as _, Sha1};

use crate::qemu_cpi::config::{AgentConfig, Forward};

/// The root disk as the guest names it.
pub const SYSTEM_DISK: &str = "/dev/vda";

/// The ephemeral disk as the guest names it.
pub const EPHEMERAL_DISK: &str = "/dev/vdb";

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
    /// The ephemeral disk's serial; empty for none.
    pub ephemeral_serial: &'a str,
    /// The raw ephemeral disks' serials.
    pub raw_ephemeral_serials: &'a [String],
    /// Whether the raw ephemeral disks are NVMe controllers.
    pub raw_ephemeral_nvme: bool,
    /// The forwards whose host sides are rewritten.
    pub forwards: &'a [Forward],
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
            "ephemeral": {"id": vm.ephemeral_serial, "path": EPHEMERAL_DISK},
            "persistent": {},
        },
        "env": vm.env,
    });
    if let Some(blobstore) = &vm.agent.blobstore {
        if !has_env_blobstores(vm.env) {
            settings["blobstore"] = blobstore.clone();
        }
    }
    if vm.ephemeral_serial.is_empty() {
        if let Some(disks) = settings["disks"].as_object_mut() {
            disks.remove("ephemeral");
        }
    }
    if !vm.raw_ephemeral_serials.is_empty() {
        let first = if vm.ephemeral_serial.is_empty() {
            b'b'
        } else {
            b'c'
        };
        let raw: Vec<Value> = vm
            .raw_ephemeral_serials
            .iter()
            .zip(first..=b'z')
            .enumerate()
            .map(|(index, (serial, letter))| {
                let path = if vm.raw_ephemeral_nvme {
                    format!("/dev/nvme{index}n1")
                } else {
                    format!("/dev/vd{}", letter as char)
                };
                json!({"id": serial, "path": path})
            })
            .collect();
        settings["disks"]["raw_ephemeral"] = Value::Array(raw);
    }
    rewrite_urls(&mut settings, vm.forwards);
    settings
}

/// The networks as the VM gets them: each with the VM's `mac`.
pub fn vm_networks(networks: &Map<String, Value>, mac: &str) -> Map<String, Value> {
    let mut networks = networks.clone();
    for network in networks.values_mut() {
        if let Value::Object(fields) = network {
            fields.insert("mac".to_owned(), json!(mac));
        }
    }
    networks
}

/// The VM's MAC: QEMU's locally administered prefix `52:54:00` and three bytes of the cid's SHA-1.
pub fn mac_address(vm_cid: &str) -> String {
    let digest = Sha1::digest(vm_cid.as_bytes());
    format!(
        "52:54:00:{:02x}:{:02x}:{:02x}",
        digest[0], digest[1], digest[2]
    )
}

/// The hint for a disk with `serial` that the guest names `/dev/vd<letter>`.
pub fn disk_hint(serial: &str, letter: char) -> Value {
    json!({"id": serial, "path": format!("/dev/vd{letter}")})
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

/// Removes `disk_cid` from `settings.disks.persistent`.
pub fn detach(settings: &mut Value, disk_cid: &str) {
    if let Some(persistent) = settings
        .get_mut("disks")
        .and_then(|disks| disks.get_mut("persistent"))
        .and_then(Value::as_object_mut)
    {
        persistent.remove(disk_cid);
    }
}

/// Rewrites, through `forwards`, every URL the agent dials: `mbus`, `env.bosh.mbus.urls`,
/// `blobstore.options.endpoint` and each `env.bosh.blobstores[].options.endpoint`.
pub fn rewrite_urls(settings: &mut Value, forwards: &[Forward]) {
    let rewrite = |value: &mut Value| {
        if let Some(url) = value.as_str() {
            *value = json!(rewrite_url(url, forwards));
        }
    };
    rewrite(&mut settings["mbus"]);
    if let Some(urls) = settings
        .pointer_mut("/env/bosh/mbus/urls")
        .and_then(Value::as_array_mut)
    {
        urls.iter_mut().for_each(rewrite);
    }
    if let Some(endpoint) = settings.pointer_mut("/blobstore/options/endpoint") {
        rewrite(endpoint);
    }
    if let Some(blobstores) = settings
        .pointer_mut("/env/bosh/blobstores")
        .and_then(Value::as_array_mut)
    {
        for blobstore in blobstores {
            if let Some(endpoint) = blobstore.pointer_mut("/options/endpoint") {
                rewrite(endpoint);
            }
        }
    }
}

/// `url` with its `host:port` replaced by the guest side of the forward whose host side it names
/// (`localhost` counts as `127.0.0.1`; a URL without a port names its scheme's: http 80, https
/// 443, nats 4222); any other URL as it is.
pub fn rewrite_url(url: &str, forwards: &[Forward]) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let (userinfo, host_port) = match authority.rfind('@') {
        Some(at) => authority.split_at(at + 1),
        None => ("", authority),
    };
    let (host, port) = match host_port.rsplit_once(':') {
        Some((host, port)) => (host, port.parse::<u16>().ok()),
        None => (host_port, default_port(scheme)),
    };
    let host = if host.eq_ignore_ascii_case("localhost") {
        "127.0.0.1"
    } else {
        host
    };
    let Some(port) = port else {
        return url.to_owned();
    };
    match forwards
        .iter()
        .find(|forward| forward.host.ip().to_string() == host && forward.host.port() == port)
    {
        Some(forward) => format!("{scheme}://{userinfo}{}{tail}", forward.guest),
        None => url.to_owned(),
    }
}

fn default_port(scheme: &str) -> Option<u16> {
    match scheme.to_ascii_lowercase().as_str() {
        "http" => Some(80),
        "https" => Some(443),
        "nats" | "tls" => Some(4222),
        _ => None,
    }
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
    use super::*;

    fn forwards() -> Vec<Forward> {
        vec![
            Forward {
                guest: "10.0.2.100:4222".parse().unwrap(),
                host: "127.0.0.1:41222".parse().unwrap(),
            },
            Forward {
                guest: "10.0.2.101:25250".parse().unwrap(),
                host: "127.0.0.1:35250".parse().unwrap(),
            },
        ]
    }

    fn object(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(fields) => fields,
            _ => panic!("not an object"),
        }
    }

    #[test]
    fn urls_naming_a_forward_go_to_its_guest_side() {
        let forwards = forwards();
        let cases = [
            ("nats://127.0.0.1:41222", "nats://10.0.2.100:4222"),
            (
                "nats://user:pa%40ss@127.0.0.1:41222",
                "nats://user:pa%40ss@10.0.2.100:4222",
            ),
            ("nats://localhost:41222", "nats://10.0.2.100:4222"),
            (
                "https://127.0.0.1:35250/blobs?x=1",
                "https://10.0.2.101:25250/blobs?x=1",
            ),
            ("https://127.0.0.1:35251", "https://127.0.0.1:35251"),
            ("https://127.0.0.1", "https://127.0.0.1"),
            ("nats://10.1.1.1:41222", "nats://10.1.1.1:41222"),
            ("not a url", "not a url"),
            ("", ""),
        ];
        for (url, expected) in cases {
            assert_eq!(rewrite_url(url, &forwards), expected, "{url}");
        }
        let default_port = [Forward {
            guest: "10.0.2.100:4222".parse().unwrap(),
            host: "127.0.0.1:4222".parse().unwrap(),
        }];
        assert_eq!(
            rewrite_url("nats://127.0.0.1", &default_port),
            "nats://10.0.2.100:4222"
        );
    }

    #[test]
    fn the_mac_is_locally_administered_and_derived_from_the_cid() {
        let mac = mac_address("vm-5f0e77a8-1b2c-4d3e-8f90-a1b2c3d4e5f6");
        assert!(mac.starts_with("52:54:00:"), "{mac}");
        assert_eq!(mac.len(), 17);
        assert_eq!(mac, mac_address("vm-5f0e77a8-1b2c-4d3e-8f90-a1b2c3d4e5f6"));
        assert_ne!(mac, mac_address("vm-other"));
    }

    #[test]
    fn a_new_vm_gets_the_go_cpi_settings_with_urls_rewritten() {
        let agent = AgentConfig {
            mbus: "nats://127.0.0.1:41222".into(),
            ntp: vec![],
            blobstore: None,
        };
        let networks = vm_networks(
            &object(json!({"default": {"type": "manual", "ip": "10.0.2.15",
                "netmask": "255.255.255.0", "gateway": "10.0.2.2", "default": ["dns", "gateway"]}})),
            "52:54:00:aa:bb:cc",
        );
        let env = object(json!({"bosh": {
            "mbus": {"cert": {"ca": "CA"}, "urls": ["nats://127.0.0.1:41222"]},
            "blobstores": [{"provider": "dav", "options": {"endpoint": "https://127.0.0.1:35250", "user": "agent"}}],
        }}));
        let forwards = forwards();
        let settings = agent_settings(&NewVm {
            agent_id: "agent-1",
            vm_cid: "vm-1",
            agent: &agent,
            networks: &networks,
            env: &env,
            ephemeral_serial: "eph-0123456789abcdef",
            raw_ephemeral_serials: &[],
            raw_ephemeral_nvme: false,
            forwards: &forwards,
        });
        assert_eq!(
            settings,
            json!({
                "agent_id": "agent-1",
                "vm": {"name": "vm-1", "id": "vm-1"},
                "mbus": "nats://10.0.2.100:4222",
                "ntp": [],
                "networks": {"default": {"type": "manual", "ip": "10.0.2.15",
                    "netmask": "255.255.255.0", "gateway": "10.0.2.2",
                    "default": ["dns", "gateway"], "mac": "52:54:00:aa:bb:cc"}},
                "disks": {
                    "system": "/dev/vda",
                    "ephemeral": {"id": "eph-0123456789abcdef", "path": "/dev/vdb"},
                    "persistent": {},
                },
                "env": {"bosh": {
                    "mbus": {"cert": {"ca": "CA"}, "urls": ["nats://10.0.2.100:4222"]},
                    "blobstores": [{"provider": "dav", "options": {"endpoint": "https://10.0.2.101:25250", "user": "agent"}}],
                }},
            })
        );
    }

    #[test]
    fn the_configured_blobstore_is_written_and_rewritten_unless_env_has_one() {
        let agent = AgentConfig {
            mbus: String::new(),
            ntp: vec![],
            blobstore: Some(
                json!({"provider": "dav", "options": {"endpoint": "https://127.0.0.1:35250"}}),
            ),
        };
        let forwards = forwards();
        let empty = Map::new();
        let vm = NewVm {
            agent_id: "a",
            vm_cid: "vm",
            agent: &agent,
            networks: &empty,
            env: &empty,
            ephemeral_serial: "eph",
            raw_ephemeral_serials: &[],
            raw_ephemeral_nvme: false,
            forwards: &forwards,
        };
        assert_eq!(
            agent_settings(&vm)["blobstore"]["options"]["endpoint"],
            "https://10.0.2.101:25250"
        );
        let env = object(json!({"bosh": {"blobstores": [{"provider": "local"}]}}));
        assert!(
            agent_settings(&NewVm { env: &env, ..vm })
                .get("blobstore")
                .is_none()
        );
    }

    #[test]
    fn no_ephemeral_disk_is_left_out_and_raw_ephemeral_disks_follow_it() {
        let agent = AgentConfig {
            mbus: String::new(),
            ntp: vec![],
            blobstore: None,
        };
        let empty = Map::new();
        let raw = vec![
            "raw0-0123456789abcde".to_owned(),
            "raw1-0123456789abcde".to_owned(),
        ];
        let vm = NewVm {
            agent_id: "a",
            vm_cid: "vm",
            agent: &agent,
            networks: &empty,
            env: &empty,
            ephemeral_serial: "",
            raw_ephemeral_serials: &raw,
            raw_ephemeral_nvme: false,
            forwards: &[],
        };
        assert_eq!(
            agent_settings(&vm)["disks"],
            json!({"system": "/dev/vda", "persistent": {}, "raw_ephemeral": [
                {"id": "raw0-0123456789abcde", "path": "/dev/vdb"},
                {"id": "raw1-0123456789abcde", "path": "/dev/vdc"},
            ]})
        );
        let with_ephemeral = agent_settings(&NewVm {
            ephemeral_serial: "eph-0123456789abcdef",
            raw_ephemeral_serials: &raw[..1],
            raw_ephemeral_nvme: false,
            ..vm
        });
        assert_eq!(
            with_ephemeral["disks"]["raw_ephemeral"],
            json!([{"id": "raw0-0123456789abcde", "path": "/dev/vdc"}])
        );
        assert_eq!(with_ephemeral["disks"]["ephemeral"]["path"], "/dev/vdb");
        // NVMe raw disks get the paths a cloud CPI guesses, in the order of the settings.
        let nvme = agent_settings(&NewVm {
            raw_ephemeral_nvme: true,
            ..vm
        });
        assert_eq!(
            nvme["disks"]["raw_ephemeral"],
            json!([
                {"id": "raw0-0123456789abcde", "path": "/dev/nvme0n1"},
                {"id": "raw1-0123456789abcde", "path": "/dev/nvme1n1"},
            ])
        );
    }

    #[test]
    fn attached_disks_are_listed_with_their_hints_until_detached() {
        let mut settings = json!({"agent_id": "a"});
        attach(&mut settings, "disk-1", disk_hint("disk-1", 'c'));
        assert_eq!(
            settings["disks"]["persistent"],
            json!({"disk-1": {"id": "disk-1", "path": "/dev/vdc"}})
        );
        detach(&mut settings, "disk-1");
        assert_eq!(settings["disks"]["persistent"], json!({}));
    }
}
