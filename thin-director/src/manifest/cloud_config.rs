//! The cloud config: AZs, networks, VM types, disk types and compilation workers, the IaaS side of
//! a deployment (bosh.io `cloud-config`).
//!
//! Follows the director's `deployment_plan/cloud_manifest_parser.rb`, `manual_network_subnet.rb` and
//! `ip_util.rb`. The subset we read:
//!
//! ```yaml
//! azs: [{name, cloud_properties}]
//! networks:
//! - {name, type: manual, subnets: [{range, gateway, dns, reserved, static, az | azs, cloud_properties}]}
//! - {name, type: dynamic, dns, cloud_properties}
//! vm_types: [{name, cloud_properties}]
//! disk_types: [{name, disk_size, cloud_properties}]
//! compilation: {workers, az, vm_type, network, reuse_compilation_vms}
//! ```
//!
//! As in BOSH, a network without `type` is manual; [`subnet`](crate::manifest::subnet) says what
//! a subnet holds and hands out. `vm_extensions` is accepted and ignored (no instance group may name one); `vip` networks,
//! multiple CPIs and other keys are refused with the path of the key.

use std::net::IpAddr;

use serde_json::{Map, Value as Json};
use serde_yaml_ng::Value;

use crate::manifest::error::{Document, Error};
use crate::manifest::reader::{Keys, Path, Reader};
use crate::manifest::subnet::{Subnet, read_subnet};

/// A parsed and checked cloud config.
#[derive(Debug, Clone, PartialEq)]
pub struct CloudConfig {
    /// Availability zones.
    pub azs: Vec<Az>,
    /// Networks instance groups and compilation VMs attach to.
    pub networks: Vec<Network>,
    /// VM types (cloud properties for `create_vm`).
    pub vm_types: Vec<VmType>,
    /// Persistent disk types.
    pub disk_types: Vec<DiskType>,
    /// Where packages are compiled.
    pub compilation: Compilation,
}

/// An availability zone.
#[derive(Debug, Clone, PartialEq)]
pub struct Az {
    /// Its name.
    pub name: String,
    /// Merged into the cloud properties of VMs in it.
    pub cloud_properties: Map<String, Json>,
}

/// A network.
#[derive(Debug, Clone, PartialEq)]
pub struct Network {
    /// Its name.
    pub name: String,
    /// Manual (the director assigns addresses) or dynamic (the IaaS does).
    pub kind: NetworkKind,
}

/// What kind of network, with what belongs to that kind.
#[derive(Debug, Clone, PartialEq)]
pub enum NetworkKind {
    /// Addresses come from the subnets.
    Manual {
        /// The subnets, in the order given.
        subnets: Vec<Subnet>,
    },
    /// Addresses come from the IaaS (DHCP).
    Dynamic {
        /// DNS servers.
        dns: Vec<IpAddr>,
        /// Passed to `create_vm` with the network.
        cloud_properties: Map<String, Json>,
    },
}

/// A VM type.
#[derive(Debug, Clone, PartialEq)]
pub struct VmType {
    /// Its name.
    pub name: String,
    /// Passed to `create_vm`.
    pub cloud_properties: Map<String, Json>,
}

/// A persistent disk type.
#[derive(Debug, Clone, PartialEq)]
pub struct DiskType {
    /// Its name.
    pub name: String,
    /// Size in MiB, more than 0.
    pub disk_size_mb: u64,
    /// Passed to `create_disk`.
    pub cloud_properties: Map<String, Json>,
}

/// The compilation workers.
#[derive(Debug, Clone, PartialEq)]
pub struct Compilation {
    /// How many packages compile at once; at least 1.
    pub workers: u64,
    /// The AZ of compilation VMs.
    pub az: Option<String>,
    /// The VM type of compilation VMs.
    pub vm_type: String,
    /// The network of compilation VMs; they get dynamic addresses.
    pub network: String,
    /// Whether one VM compiles several packages.
    pub reuse_compilation_vms: bool,
}

impl CloudConfig {
    /// Parses and checks a cloud config, reporting every problem found.
    pub fn parse(text: &str) -> Result<CloudConfig, Error> {
        let mut reader = Reader::new(Document::CloudConfig);
        let cloud_config = reader
            .parse(text)
            .and_then(|value| read_cloud_config(&mut reader, &value));
        if let Some(cloud_config) = &cloud_config {
            // References are checked once the structure is sound, so that indexes in paths are
            // those of the document and one mistake does not echo as several.
            if !reader.has_problems() {
                check_references(&mut reader, cloud_config);
            }
        }
        reader
            .finish(cloud_config)
            .map_err(|problems| Error { problems })
    }

    /// The network called `name`.
    pub fn network(&self, name: &str) -> Option<&Network> {
        self.networks.iter().find(|network| network.name == name)
    }

    /// The AZ called `name`.
    pub fn az(&self, name: &str) -> Option<&Az> {
        self.azs.iter().find(|az| az.name == name)
    }

    /// The VM type called `name`.
    pub fn vm_type(&self, name: &str) -> Option<&VmType> {
        self.vm_types.iter().find(|vm_type| vm_type.name == name)
    }

    /// The disk type called `name`.
    pub fn disk_type(&self, name: &str) -> Option<&DiskType> {
        self.disk_types
            .iter()
            .find(|disk_type| disk_type.name == name)
    }
}

impl Network {
    /// The subnets of a manual network; none for a dynamic one.
    pub fn subnets(&self) -> &[Subnet] {
        match &self.kind {
            NetworkKind::Manual { subnets } => subnets,
            NetworkKind::Dynamic { .. } => &[],
        }
    }
}

const TOP_KEYS: Keys = Keys {
    known: &["azs", "networks", "vm_types", "disk_types", "compilation"],
    ignored: &["vm_extensions"],
    unsupported: &[],
};
const NAMED_KEYS: Keys = Keys {
    known: &["name", "cloud_properties"],
    ignored: &[],
    unsupported: &["cpi"],
};
const MANUAL_KEYS: Keys = Keys {
    known: &["name", "type", "subnets"],
    ignored: &[],
    unsupported: &["managed"],
};
const DYNAMIC_KEYS: Keys = Keys {
    known: &["name", "type", "dns", "cloud_properties"],
    ignored: &[],
    unsupported: &["subnets"],
};
const DISK_TYPE_KEYS: Keys = Keys {
    known: &["name", "disk_size", "cloud_properties"],
    ignored: &[],
    unsupported: &[],
};
const COMPILATION_KEYS: Keys = Keys {
    known: &[
        "workers",
        "az",
        "vm_type",
        "network",
        "reuse_compilation_vms",
    ],
    ignored: &["orphan_workers"],
    unsupported: &["vm_resources", "env", "cloud_properties"],
};

fn read_cloud_config(reader: &mut Reader, value: &Value) -> Option<CloudConfig> {
    let fields = reader.fields(value, &Path::default(), &TOP_KEYS)?;
    let optional_list = |key: &str| fields.get(key).map(|v| (v, fields.path(key)));
    let before_azs = reader.problem_count();
    let azs = match optional_list("azs") {
        Some((value, path)) => reader.each(value, &path, read_az),
        None => Vec::new(),
    };
    // Subnets name AZs; when the AZs themselves are broken, that check would only echo them.
    let az_names: Option<Vec<String>> = (reader.problem_count() == before_azs)
        .then(|| azs.iter().map(|az| az.name.clone()).collect());
    let networks = fields.required(reader, "networks").map(|value| {
        reader.each(value, &fields.path("networks"), |reader, value, path| {
            read_network(reader, value, path, az_names.as_deref())
        })
    });
    let vm_types = fields
        .required(reader, "vm_types")
        .map(|value| reader.each(value, &fields.path("vm_types"), read_vm_type));
    let disk_types = match optional_list("disk_types") {
        Some((value, path)) => reader.each(value, &path, read_disk_type),
        None => Vec::new(),
    };
    let compilation = fields.required_with(reader, "compilation", read_compilation);
    Some(CloudConfig {
        azs,
        networks: networks?,
        vm_types: vm_types?,
        disk_types,
        compilation: compilation?,
    })
}

fn read_az(reader: &mut Reader, value: &Value, path: Path) -> Option<Az> {
    let fields = reader.fields(value, &path, &NAMED_KEYS)?;
    let name = fields.required_string(reader, "name");
    let cloud_properties = fields.object_or_empty(reader, "cloud_properties");
    Some(Az {
        name: name?,
        cloud_properties,
    })
}

fn read_vm_type(reader: &mut Reader, value: &Value, path: Path) -> Option<VmType> {
    let fields = reader.fields(value, &path, &NAMED_KEYS)?;
    let name = fields.required_string(reader, "name");
    let cloud_properties = fields.object_or_empty(reader, "cloud_properties");
    Some(VmType {
        name: name?,
        cloud_properties,
    })
}

fn read_disk_type(reader: &mut Reader, value: &Value, path: Path) -> Option<DiskType> {
    let fields = reader.fields(value, &path, &DISK_TYPE_KEYS)?;
    let name = fields.required_string(reader, "name");
    let disk_size_mb = fields.required_with(reader, "disk_size", |reader, value, path| {
        let size = reader.count(value, path)?;
        if size == 0 {
            reader.problem(path, "must be more than 0");
            return None;
        }
        Some(size)
    });
    let cloud_properties = fields.object_or_empty(reader, "cloud_properties");
    Some(DiskType {
        name: name?,
        disk_size_mb: disk_size_mb?,
        cloud_properties,
    })
}

fn read_compilation(reader: &mut Reader, value: &Value, path: &Path) -> Option<Compilation> {
    let fields = reader.fields(value, path, &COMPILATION_KEYS)?;
    let workers = fields.required_with(reader, "workers", |reader, value, path| {
        let workers = reader.count(value, path)?;
        if workers == 0 {
            reader.problem(path, "must be at least 1");
            return None;
        }
        Some(workers)
    });
    let az = fields.optional_string(reader, "az");
    let vm_type = fields.required_string(reader, "vm_type");
    let network = fields.required_string(reader, "network");
    let reuse_compilation_vms = fields
        .optional_with(reader, "reuse_compilation_vms", Reader::boolean)
        .unwrap_or(false);
    Some(Compilation {
        workers: workers?,
        az,
        vm_type: vm_type?,
        network: network?,
        reuse_compilation_vms,
    })
}

fn read_network(
    reader: &mut Reader,
    value: &Value,
    path: Path,
    az_names: Option<&[String]>,
) -> Option<Network> {
    let kind = match value.get("type").filter(|v| !v.is_null()) {
        None => "manual".to_owned(),
        Some(kind) => reader.string(kind, &path.key("type"))?,
    };
    match kind.as_str() {
        "manual" => {
            let fields = reader.fields(value, &path, &MANUAL_KEYS)?;
            let name = fields.required_string(reader, "name");
            let subnets = fields.required(reader, "subnets").map(|value| {
                reader.each(value, &fields.path("subnets"), |reader, value, path| {
                    read_subnet(reader, value, path, az_names)
                })
            });
            let subnets = subnets?;
            Some(Network {
                name: name?,
                kind: NetworkKind::Manual { subnets },
            })
        }
        "dynamic" => {
            let fields = reader.fields(value, &path, &DYNAMIC_KEYS)?;
            let name = fields.required_string(reader, "name");
            let dns = fields
                .optional_with(reader, "dns", Reader::addresses)
                .unwrap_or_default();
            let cloud_properties = fields.object_or_empty(reader, "cloud_properties");
            Some(Network {
                name: name?,
                kind: NetworkKind::Dynamic {
                    dns,
                    cloud_properties,
                },
            })
        }
        "vip" => {
            reader.problem(
                &path.key("type"),
                "network type \"vip\" is not supported by the thin director",
            );
            None
        }
        other => {
            reader.problem(
                &path.key("type"),
                format!("unknown network type {other:?} (expected manual or dynamic)"),
            );
            None
        }
    }
}

/// Names are unique, subnets of a network do not overlap, and compilation names what exists.
fn check_references(reader: &mut Reader, cloud_config: &CloudConfig) {
    let root = Path::default();
    reader.unique_names(
        &root.key("azs"),
        "az",
        cloud_config.azs.iter().map(|az| az.name.as_str()),
    );
    reader.unique_names(
        &root.key("networks"),
        "network",
        cloud_config.networks.iter().map(|n| n.name.as_str()),
    );
    reader.unique_names(
        &root.key("vm_types"),
        "vm_type",
        cloud_config.vm_types.iter().map(|v| v.name.as_str()),
    );
    reader.unique_names(
        &root.key("disk_types"),
        "disk_type",
        cloud_config.disk_types.iter().map(|d| d.name.as_str()),
    );
    for (network_index, network) in cloud_config.networks.iter().enumerate() {
        let subnets_path = root.key("networks").index(network_index).key("subnets");
        let subnets = network.subnets();
        for (index, subnet) in subnets.iter().enumerate() {
            let path = subnets_path.index(index);
            if let Some(earlier) = subnets[..index]
                .iter()
                .position(|other| other.range.range().overlaps(&subnet.range.range()))
            {
                reader.problem(
                    &path.key("range"),
                    format!(
                        "range {} overlaps the range of subnets[{earlier}]",
                        subnet.range
                    ),
                );
            }
        }
    }
    let compilation = &cloud_config.compilation;
    let path = root.key("compilation");
    if let Some(az) = &compilation.az {
        if cloud_config.az(az).is_none() {
            reader.problem(&path.key("az"), format!("az {az:?} is not in azs"));
        }
    } else if !cloud_config.azs.is_empty() {
        reader.problem(
            &path.key("az"),
            "missing required key (the cloud config has azs)",
        );
    }
    if cloud_config.vm_type(&compilation.vm_type).is_none() {
        reader.problem(
            &path.key("vm_type"),
            format!("vm_type {:?} is not in vm_types", compilation.vm_type),
        );
    }
    match cloud_config.network(&compilation.network) {
        None => reader.problem(
            &path.key("network"),
            format!("network {:?} is not in networks", compilation.network),
        ),
        Some(network) => {
            let az = compilation.az.as_deref();
            if matches!(network.kind, NetworkKind::Manual { .. })
                && !network.subnets().iter().any(|subnet| subnet.serves(az))
            {
                reader.problem(
                    &path.key("network"),
                    format!(
                        "network {:?} has no subnet for the compilation az",
                        compilation.network
                    ),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
azs:
- {name: z1, cloud_properties: {zone: a}}
- {name: z2}
networks:
- name: default
  subnets:
  - range: 10.0.0.0/24
    gateway: 10.0.0.1
    dns: [8.8.8.8]
    reserved: [10.0.0.2 - 10.0.0.9, 10.0.0.250]
    static: 10.0.0.10 - 10.0.0.20
    az: z1
  - range: 10.0.1.0/24
    gateway: 10.0.1.1
    azs: [z2]
- name: public
  type: dynamic
  dns: [1.1.1.1]
  cloud_properties: {tag: x}
vm_types:
- name: small
  cloud_properties: {cpu: 1}
disk_types:
- {name: ten, disk_size: 10240}
compilation:
  workers: 2
  az: z1
  vm_type: small
  network: default
  reuse_compilation_vms: true
vm_extensions:
- name: lb
"#;

    fn problems(text: &str) -> Vec<String> {
        CloudConfig::parse(text)
            .unwrap_err()
            .problems
            .iter()
            .map(|problem| format!("{}: {}", problem.path, problem.message))
            .collect()
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn a_good_cloud_config_parses() {
        let cloud = CloudConfig::parse(GOOD).unwrap();
        assert_eq!(cloud.azs.len(), 2);
        let subnet = &cloud.network("default").unwrap().subnets()[0];
        assert_eq!(subnet.azs, ["z1"]);
        assert_eq!(subnet.static_ranges.len(), 1);
        assert!(subnet.is_restricted(ip("10.0.0.5")));
        assert!(subnet.is_restricted(ip("10.0.0.255")));
        assert!(subnet.is_static(ip("10.0.0.15")));
        assert!(subnet.is_dynamic(ip("10.0.0.21")));
        assert!(!subnet.is_dynamic(ip("10.0.0.1")));
        assert_eq!(cloud.network("default").unwrap().subnets()[1].azs, ["z2"]);
        assert!(matches!(
            cloud.network("public").unwrap().kind,
            NetworkKind::Dynamic { .. }
        ));
        assert_eq!(cloud.disk_type("ten").unwrap().disk_size_mb, 10240);
        assert!(cloud.compilation.reuse_compilation_vms);
    }

    #[test]
    fn subnet_problems_name_their_paths() {
        let text = GOOD
            .replace("gateway: 10.0.0.1\n", "gateway: 10.0.5.1\n")
            .replace("10.0.0.250]", "10.0.0.250, 10.9.0.1, nope]")
            .replace(
                "static: 10.0.0.10 - 10.0.0.20",
                "static: [10.0.0.9 - 10.0.0.20]",
            )
            .replace("range: 10.0.1.0/24", "range: 10.0.1.0/33");
        assert_eq!(
            problems(&text),
            [
                "networks[0].subnets[0].reserved[3]: invalid IP address \"nope\"",
                "networks[0].subnets[1].range: invalid CIDR range \"10.0.1.0/33\"",
            ]
        );
        let text = GOOD
            .replace("gateway: 10.0.0.1\n", "gateway: 10.0.5.1\n")
            .replace("10.0.0.250]", "10.0.0.250, 10.9.0.1]")
            .replace(
                "static: 10.0.0.10 - 10.0.0.20",
                "static: [10.0.0.9 - 10.0.0.20]",
            );
        assert_eq!(
            problems(&text),
            [
                "networks[0].subnets[0].gateway: gateway 10.0.5.1 is not inside range 10.0.0.0/24",
                "networks[0].subnets[0].reserved[2]: 10.9.0.1 is not inside range 10.0.0.0/24",
                "networks[0].subnets[0].static[0]: 10.0.0.9 - 10.0.0.20 overlaps 10.0.0.2 - 10.0.0.9, \
                 which is reserved, the gateway, the network or the broadcast address",
            ]
        );
    }

    #[test]
    fn references_and_duplicates_are_checked() {
        let text = GOOD
            .replace("azs: [z2]", "azs: [z2, z3]")
            .replace("az: z1", "az: z0");
        assert_eq!(
            problems(&text),
            [
                "networks[0].subnets[0].az: az \"z0\" is not in azs",
                "networks[0].subnets[1].azs[1]: az \"z3\" is not in azs",
            ]
        );
        let text = GOOD
            .replace("- name: public", "- name: default")
            .replace(
                "range: 10.0.1.0/24\n    gateway: 10.0.1.1",
                "range: 10.0.0.128/25\n    gateway: 10.0.0.129",
            )
            .replace("vm_type: small\n  network", "vm_type: large\n  network");
        assert_eq!(
            problems(&text),
            [
                "networks[1].name: duplicate network name \"default\"",
                "networks[0].subnets[1].range: range 10.0.0.128/25 overlaps the range of subnets[0]",
                "compilation.vm_type: vm_type \"large\" is not in vm_types",
            ]
        );
    }

    #[test]
    fn unknown_and_unsupported_keys_and_types_are_refused() {
        let text = GOOD
            .replace("  type: dynamic\n", "  type: vip\n")
            .replace("workers: 2", "workers: 0\n  vm_resources: {}")
            .replace(
                "- {name: ten, disk_size: 10240}",
                "- {name: ten, disk_size: 0, size: 1}",
            );
        assert_eq!(
            problems(&text),
            [
                "networks[1].type: network type \"vip\" is not supported by the thin director",
                "disk_types[0].size: unknown key",
                "disk_types[0].disk_size: must be more than 0",
                "compilation.vm_resources: not supported by the thin director",
                "compilation.workers: must be at least 1",
            ]
        );
    }

    #[test]
    fn missing_sections_are_reported_together() {
        assert_eq!(
            problems("azs: []\n"),
            [
                "networks: missing required key",
                "vm_types: missing required key",
                "compilation: missing required key",
            ]
        );
    }
}
