//! One subnet of a manual network: its range, gateway, DNS servers, reserved and static addresses,
//! and AZs; which addresses it may hand out.
//!
//! Follows the director's `deployment_plan/manual_network_subnet.rb`: the network address, the
//! broadcast address and the gateway are never handed out; `reserved` and `static` hold addresses,
//! `a - b` ranges or CIDR blocks (`ip_util.rb`); the gateway must be inside the range and be neither
//! its network nor its broadcast address; reserved and static addresses must be inside the range,
//! and static ones must not be reserved. Dynamic addresses come from the rest of the range.

use std::collections::BTreeSet;
use std::net::IpAddr;

use serde_json::{Map, Value as Json};
use serde_yaml_ng::Value;

use crate::manifest::ip::{self, Cidr, IpRange};
use crate::manifest::reader::{Fields, Keys, Path, Reader};

/// One subnet of a manual network.
#[derive(Debug, Clone, PartialEq)]
pub struct Subnet {
    /// The addresses of the subnet.
    pub range: Cidr,
    /// The gateway, inside the range.
    pub gateway: IpAddr,
    /// DNS servers.
    pub dns: Vec<IpAddr>,
    /// Addresses never handed out.
    pub reserved: Vec<IpRange>,
    /// Addresses instance groups may claim as `static_ips`; never handed out dynamically.
    pub static_ranges: Vec<IpRange>,
    /// The AZs the subnet serves; empty when the cloud config uses no AZs.
    pub azs: Vec<String>,
    /// Passed to `create_vm` with the network.
    pub cloud_properties: Map<String, Json>,
}

impl Subnet {
    /// Whether `ip` is never handed out: the network address, the broadcast address, the gateway
    /// or a reserved address.
    pub fn is_restricted(&self, ip: IpAddr) -> bool {
        self.restricted().any(|range| range.contains(ip))
    }

    /// Whether `ip` is in one of the static ranges.
    pub fn is_static(&self, ip: IpAddr) -> bool {
        self.static_ranges.iter().any(|range| range.contains(ip))
    }

    /// Whether `ip` may be handed out dynamically: in the range, neither restricted nor static.
    pub fn is_dynamic(&self, ip: IpAddr) -> bool {
        self.range.contains(ip) && !self.is_restricted(ip) && !self.is_static(ip)
    }

    /// Whether the subnet serves instances in `az` (`None`: an instance group without AZs, which
    /// only subnets without AZs serve).
    pub fn serves(&self, az: Option<&str>) -> bool {
        match az {
            Some(az) => self.azs.iter().any(|name| name == az),
            None => self.azs.is_empty(),
        }
    }

    /// The lowest address that may be handed out dynamically and is not in `taken`.
    pub fn first_free(&self, taken: &BTreeSet<IpAddr>) -> Option<IpAddr> {
        let excluded: Vec<IpRange> = self
            .restricted()
            .chain(self.static_ranges.iter().copied())
            .collect();
        let mut candidate = self.range.first();
        loop {
            if !self.range.contains(candidate) {
                return None;
            }
            if let Some(range) = excluded.iter().find(|range| range.contains(candidate)) {
                // Jump over a whole static or reserved range at once: IPv6 ranges are large.
                candidate = ip::next(range.last())?;
            } else if taken.contains(&candidate) {
                candidate = ip::next(candidate)?;
            } else {
                return Some(candidate);
            }
        }
    }

    fn restricted(&self) -> impl Iterator<Item = IpRange> + '_ {
        [self.range.first(), self.range.last(), self.gateway]
            .into_iter()
            .map(IpRange::single)
            .chain(self.reserved.iter().copied())
    }
}

const SUBNET_KEYS: Keys = Keys {
    known: &[
        "range",
        "gateway",
        "dns",
        "reserved",
        "static",
        "az",
        "azs",
        "cloud_properties",
    ],
    ignored: &["name"],
    unsupported: &["netmask_bits", "prefix"],
};
pub(crate) fn read_subnet(
    reader: &mut Reader,
    value: &Value,
    path: Path,
    az_names: Option<&[String]>,
) -> Option<Subnet> {
    let before = reader.problem_count();
    let fields = reader.fields(value, &path, &SUBNET_KEYS)?;
    let range = fields.required_with(reader, "range", |reader, value, path| {
        let text = reader.string(value, path)?;
        match Cidr::parse(&text) {
            Ok(range) if range.range().len() >= 2 => Some(range),
            Ok(_) => {
                reader.problem(path, format!("range {text} must hold at least 2 addresses"));
                None
            }
            Err(err) => {
                reader.problem(path, err.to_string());
                None
            }
        }
    });
    let gateway = fields.required_with(reader, "gateway", Reader::address);
    let dns = fields
        .optional_with(reader, "dns", Reader::addresses)
        .unwrap_or_default();
    let reserved = fields
        .optional_with(reader, "reserved", Reader::ranges)
        .unwrap_or_default();
    let static_ranges = fields
        .optional_with(reader, "static", Reader::ranges)
        .unwrap_or_default();
    let azs = read_subnet_azs(reader, &fields, az_names);
    let cloud_properties = fields.object_or_empty(reader, "cloud_properties");
    let subnet = Subnet {
        range: range?,
        gateway: gateway?,
        dns,
        reserved,
        static_ranges,
        azs: azs?,
        cloud_properties,
    };
    // Checked only when the subnet read cleanly, so that indexes in paths are the document's.
    if reader.problem_count() == before {
        check_subnet(reader, &fields, &subnet);
    }
    Some(subnet)
}

/// `az: z1` or `azs: [z1, z2]`, not both, naming AZs of the cloud config (`az_names`, when known).
fn read_subnet_azs(
    reader: &mut Reader,
    fields: &Fields<'_>,
    az_names: Option<&[String]>,
) -> Option<Vec<String>> {
    let az = fields.optional_string(reader, "az");
    let azs = fields.optional_with(reader, "azs", Reader::strings);
    let (azs, paths) = match (az, azs) {
        (Some(_), Some(_)) => {
            reader.problem(&fields.path("azs"), "give either az or azs, not both");
            return None;
        }
        (Some(az), None) => (vec![az], vec![fields.path("az")]),
        (None, azs) => {
            let azs = azs.unwrap_or_default();
            let paths = (0..azs.len())
                .map(|i| fields.path("azs").index(i))
                .collect();
            (azs, paths)
        }
    };
    let mut known = true;
    if let Some(az_names) = az_names {
        for (az, path) in azs.iter().zip(&paths) {
            if !az_names.contains(az) {
                reader.problem(path, format!("az {az:?} is not in azs"));
                known = false;
            }
        }
    }
    known.then_some(azs)
}

/// The gateway, reserved and static addresses against the range, as `ManualNetworkSubnet.parse`.
fn check_subnet(reader: &mut Reader, fields: &Fields<'_>, subnet: &Subnet) {
    let range = subnet.range;
    let gateway_path = fields.path("gateway");
    if !range.contains(subnet.gateway) {
        reader.problem(
            &gateway_path,
            format!("gateway {} is not inside range {range}", subnet.gateway),
        );
    } else if subnet.gateway == range.first() {
        reader.problem(&gateway_path, "the gateway cannot be the network address");
    } else if subnet.gateway == range.last() {
        reader.problem(&gateway_path, "the gateway cannot be the broadcast address");
    }
    for (index, reserved) in subnet.reserved.iter().enumerate() {
        if !range.contains(reserved.first()) || !range.contains(reserved.last()) {
            reader.problem(
                &fields.path("reserved").index(index),
                format!("{reserved} is not inside range {range}"),
            );
        }
    }
    for (index, static_range) in subnet.static_ranges.iter().enumerate() {
        let path = fields.path("static").index(index);
        if !range.contains(static_range.first()) || !range.contains(static_range.last()) {
            reader.problem(&path, format!("{static_range} is not inside range {range}"));
        } else if let Some(restricted) = subnet
            .restricted()
            .find(|restricted| restricted.overlaps(static_range))
        {
            reader.problem(
                &path,
                format!(
                    "{static_range} overlaps {restricted}, which is reserved, the gateway, \
                     the network or the broadcast address"
                ),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::manifest::cloud_config::CloudConfig;

    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn subnet(yaml: &str) -> Subnet {
        let cloud = CloudConfig::parse(&format!(
            "networks: [{{name: n, subnets: [{yaml}]}}]\nvm_types: [{{name: v}}]\n\
             compilation: {{workers: 1, vm_type: v, network: n}}\n"
        ))
        .unwrap();
        cloud.networks[0].subnets()[0].clone()
    }

    #[test]
    fn restricted_static_and_dynamic_addresses_are_told_apart() {
        let subnet = subnet(
            "{range: 10.0.0.0/24, gateway: 10.0.0.1, reserved: [10.0.0.2 - 10.0.0.9, 10.0.0.250], \
             static: 10.0.0.10 - 10.0.0.20}",
        );
        assert!(subnet.is_restricted(ip("10.0.0.0")));
        assert!(subnet.is_restricted(ip("10.0.0.1")));
        assert!(subnet.is_restricted(ip("10.0.0.5")));
        assert!(subnet.is_restricted(ip("10.0.0.255")));
        assert!(subnet.is_static(ip("10.0.0.15")));
        assert!(subnet.is_dynamic(ip("10.0.0.21")));
        assert!(!subnet.is_dynamic(ip("10.0.0.15")));
        assert!(!subnet.is_dynamic(ip("10.0.1.21")));
        assert!(subnet.serves(None));
        assert!(!subnet.serves(Some("z1")));
    }

    #[test]
    fn first_free_skips_restricted_static_and_taken_addresses() {
        let subnet = subnet(
            "{range: 10.0.0.0/24, gateway: 10.0.0.1, reserved: [10.0.0.2 - 10.0.0.9], \
             static: [10.0.0.10 - 10.0.0.20]}",
        );
        let mut taken = BTreeSet::new();
        assert_eq!(subnet.first_free(&taken), Some(ip("10.0.0.21")));
        taken.insert(ip("10.0.0.21"));
        taken.insert(ip("10.0.0.22"));
        assert_eq!(subnet.first_free(&taken), Some(ip("10.0.0.23")));
        taken.extend(subnet.range.range().iter());
        assert_eq!(subnet.first_free(&taken), None);
    }

    #[test]
    fn a_large_ipv6_static_range_is_jumped_over() {
        let subnet = subnet(
            "{range: 'fd00::/64', gateway: 'fd00::1', static: ['fd00::2 - fd00::ffff:ffff']}",
        );
        assert_eq!(subnet.first_free(&BTreeSet::new()), Some(ip("fd00::1:0:0")));
    }
}
