//! Placement: the AZ and the network addresses of each instance of a group.
//!
//! Follows the director's `deployment_plan/placement_planner/` and `ip_provider/` in a simpler,
//! deterministic form:
//! - **AZ.** An instance group without AZs places nothing in an AZ. With static IPs, instance `i`
//!   goes to the first of the group's AZs served by the subnet whose static range holds its static IP
//!   (as `StaticIpsAvailabilityZonePicker` ties AZs to static IPs). Otherwise instances go round the
//!   group's AZs in order: `azs[i % azs.len()]`.
//! - **Static addresses first.** Instance `i` gets the `i`-th static IP of each network that has them.
//! - **Then dynamic addresses of manual networks:** an instance keeps the address it had (`previous`)
//!   when that is still a dynamic address of a subnet serving its AZ and nobody else holds it;
//!   the others get the lowest free address of the first subnet serving their AZ that has one. A
//!   subnet hands out neither its network, broadcast or gateway address, nor reserved or static
//!   ones, nor anything in `in_use`.
//! - Dynamic (DHCP) networks get no address from the director.
//!
//! The same inputs always give the same placement, so a redeploy that passes the addresses it
//! recorded as `previous` keeps every instance's address.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use crate::manifest::cloud_config::{CloudConfig, Network, NetworkKind};
use crate::manifest::deployment::InstanceGroup;

/// Where one instance goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// The instance index in its group.
    pub index: usize,
    /// Its AZ, if the group has AZs.
    pub az: Option<String>,
    /// Its address on each of the group's networks, in the group's network order.
    pub networks: Vec<NetworkAddress>,
}

/// An instance's address on one network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkAddress {
    /// The network name.
    pub network: String,
    /// The address.
    pub address: Address,
}

/// How an instance gets its address on a network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Address {
    /// A static IP of the group, in subnet `subnet` of the network.
    Static {
        /// The address.
        ip: IpAddr,
        /// The index of its subnet in the network.
        subnet: usize,
    },
    /// An address the director picked from subnet `subnet`.
    Allocated {
        /// The address.
        ip: IpAddr,
        /// The index of its subnet in the network.
        subnet: usize,
    },
    /// A dynamic network: the IaaS assigns the address.
    Dynamic,
}

/// Why a group could not be placed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The group names a network the cloud config lacks.
    #[error("network {network:?} is not in the cloud config")]
    UnknownNetwork {
        /// The network.
        network: String,
    },
    /// A dynamic network has static IPs.
    #[error("network {network:?} is dynamic and cannot have static IPs")]
    StaticOnDynamic {
        /// The network.
        network: String,
    },
    /// The static IPs of a network do not number one per instance.
    #[error("network {network:?} has {found} static IPs for {instances} instances")]
    StaticCount {
        /// The network.
        network: String,
        /// How many static IPs it lists.
        found: usize,
        /// How many instances the group has.
        instances: usize,
    },
    /// A static IP is not in a static range of a subnet serving the instance's AZ.
    #[error("{ip} is not in a static range of a subnet of network {network:?}{}", in_az(.az))]
    StaticNotAvailable {
        /// The network.
        network: String,
        /// The address.
        ip: IpAddr,
        /// The instance's AZ, if any.
        az: Option<String>,
    },
    /// No subnet of a manual network serves an AZ of the group.
    #[error("network {network:?} has no subnet{}", in_az(.az))]
    NoSubnet {
        /// The network.
        network: String,
        /// The AZ, or `None` for a group without AZs.
        az: Option<String>,
    },
    /// Every address of the subnets serving the AZ is taken.
    #[error("network {network:?} has no free address{} for instance {index}", in_az(.az))]
    Exhausted {
        /// The network.
        network: String,
        /// The AZ, if any.
        az: Option<String>,
        /// The instance that found none.
        index: usize,
    },
}

impl Address {
    /// The address, unless the IaaS assigns it.
    pub fn ip(&self) -> Option<IpAddr> {
        match self {
            Address::Static { ip, .. } | Address::Allocated { ip, .. } => Some(*ip),
            Address::Dynamic => None,
        }
    }
}

/// Places every instance of `group`. `previous[i]` holds the addresses instance `i` had, by network
/// name; `in_use` holds addresses that others (other groups, compilation VMs) hold and that this
/// group must not take.
pub fn place(
    group: &InstanceGroup,
    cloud_config: &CloudConfig,
    previous: &[BTreeMap<String, IpAddr>],
    in_use: &BTreeSet<IpAddr>,
) -> Result<Vec<Placement>, Error> {
    let networks = group
        .networks
        .iter()
        .map(|group_network| {
            let network =
                cloud_config
                    .network(&group_network.name)
                    .ok_or_else(|| Error::UnknownNetwork {
                        network: group_network.name.clone(),
                    })?;
            let static_ips = group_network.static_ips();
            check_static_ips(group, network, &static_ips)?;
            Ok((network, static_ips))
        })
        .collect::<Result<Vec<_>, Error>>()?;
    let azs = instance_azs(group, &networks)?;
    for (network, _) in &networks {
        check_subnets_serve(group, network)?;
    }

    let mut taken = in_use.clone();
    let mut placements: Vec<Placement> = azs
        .iter()
        .enumerate()
        .map(|(index, az)| Placement {
            index,
            az: az.clone(),
            networks: networks
                .iter()
                .map(|(network, _)| NetworkAddress {
                    network: network.name.clone(),
                    address: Address::Dynamic,
                })
                .collect(),
        })
        .collect();
    // Slots (instance, network) of manual networks still waiting for an address.
    let mut waiting = Vec::new();

    for (network_index, (network, static_ips)) in networks.iter().enumerate() {
        if !matches!(network.kind, NetworkKind::Manual { .. }) {
            continue;
        }
        for placement in &mut placements {
            let az = placement.az.as_deref();
            let slot = &mut placement.networks[network_index].address;
            if let Some(&ip) = static_ips.get(placement.index) {
                let subnet = network
                    .subnets()
                    .iter()
                    .position(|subnet| subnet.is_static(ip) && subnet.serves(az))
                    .ok_or_else(|| Error::StaticNotAvailable {
                        network: network.name.clone(),
                        ip,
                        az: placement.az.clone(),
                    })?;
                *slot = Address::Static { ip, subnet };
                taken.insert(ip);
            } else {
                waiting.push((placement.index, network_index));
            }
        }
    }

    // Addresses instances had are kept before anyone gets a new one, so that a new instance never
    // takes the address of an old one that comes later.
    waiting.retain(|&(index, network_index)| {
        let network = networks[network_index].0;
        let az = placements[index].az.as_deref();
        let kept = previous
            .get(index)
            .and_then(|addresses| addresses.get(&network.name))
            .and_then(|&ip| {
                let subnet = network
                    .subnets()
                    .iter()
                    .position(|subnet| subnet.serves(az) && subnet.is_dynamic(ip))?;
                (!taken.contains(&ip)).then_some((ip, subnet))
            });
        match kept {
            Some((ip, subnet)) => {
                placements[index].networks[network_index].address =
                    Address::Allocated { ip, subnet };
                taken.insert(ip);
                false
            }
            None => true,
        }
    });

    for (index, network_index) in waiting {
        let network = networks[network_index].0;
        let az = placements[index].az.clone();
        let allocated = network
            .subnets()
            .iter()
            .enumerate()
            .filter(|(_, subnet)| subnet.serves(az.as_deref()))
            .find_map(|(subnet_index, subnet)| {
                subnet.first_free(&taken).map(|ip| (ip, subnet_index))
            });
        let Some((ip, subnet)) = allocated else {
            return Err(Error::Exhausted {
                network: network.name.clone(),
                az,
                index,
            });
        };
        placements[index].networks[network_index].address = Address::Allocated { ip, subnet };
        taken.insert(ip);
    }
    Ok(placements)
}

fn check_static_ips(
    group: &InstanceGroup,
    network: &Network,
    static_ips: &[IpAddr],
) -> Result<(), Error> {
    if static_ips.is_empty() {
        return Ok(());
    }
    if matches!(network.kind, NetworkKind::Dynamic { .. }) {
        return Err(Error::StaticOnDynamic {
            network: network.name.clone(),
        });
    }
    if static_ips.len() != group.instances {
        return Err(Error::StaticCount {
            network: network.name.clone(),
            found: static_ips.len(),
            instances: group.instances,
        });
    }
    Ok(())
}

/// Every AZ of the group (or "no AZ") has a subnet on each manual network.
fn check_subnets_serve(group: &InstanceGroup, network: &Network) -> Result<(), Error> {
    if !matches!(network.kind, NetworkKind::Manual { .. }) {
        return Ok(());
    }
    let azs: Vec<Option<&str>> = if group.azs.is_empty() {
        vec![None]
    } else {
        group.azs.iter().map(|az| Some(az.as_str())).collect()
    };
    for az in azs {
        if !network.subnets().iter().any(|subnet| subnet.serves(az)) {
            return Err(Error::NoSubnet {
                network: network.name.clone(),
                az: az.map(str::to_owned),
            });
        }
    }
    Ok(())
}

/// The AZ of each instance: tied to its static IP when the group has static IPs, else round-robin.
fn instance_azs(
    group: &InstanceGroup,
    networks: &[(&Network, Vec<IpAddr>)],
) -> Result<Vec<Option<String>>, Error> {
    if group.azs.is_empty() {
        return Ok(vec![None; group.instances]);
    }
    let static_network = networks.iter().find(|(network, static_ips)| {
        matches!(network.kind, NetworkKind::Manual { .. }) && !static_ips.is_empty()
    });
    let Some((network, static_ips)) = static_network else {
        return Ok((0..group.instances)
            .map(|index| Some(group.azs[index % group.azs.len()].clone()))
            .collect());
    };
    static_ips
        .iter()
        .map(|&ip| {
            group
                .azs
                .iter()
                .find(|az| {
                    network
                        .subnets()
                        .iter()
                        .any(|subnet| subnet.is_static(ip) && subnet.serves(Some(az)))
                })
                .map(|az| Some(az.clone()))
                .ok_or_else(|| Error::StaticNotAvailable {
                    network: network.name.clone(),
                    ip,
                    az: None,
                })
        })
        .collect()
}

/// ` in az "z1"`, or nothing.
fn in_az(az: &Option<String>) -> String {
    match az {
        Some(az) => format!(" in az {az:?}"),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::deployment::Deployment;

    const CLOUD: &str = r#"
azs: [{name: z1}, {name: z2}]
networks:
- name: default
  subnets:
  - {range: 10.0.0.0/28, gateway: 10.0.0.1, reserved: [10.0.0.2], static: [10.0.0.3 - 10.0.0.5], az: z1}
  - {range: 10.0.1.0/28, gateway: 10.0.1.1, static: [10.0.1.3 - 10.0.1.5], az: z2}
- {name: public, type: dynamic}
vm_types: [{name: small}]
compilation: {workers: 1, az: z1, vm_type: small, network: default}
"#;

    fn group(body: &str) -> InstanceGroup {
        let manifest = format!(
            "name: d\nreleases: [{{name: r, version: 1}}]\nstemcells: [{{alias: s, os: o, version: 1}}]\n\
             update: {{canaries: 1, max_in_flight: 1, canary_watch_time: 1, update_watch_time: 1}}\n\
             instance_groups:\n- {{name: g, vm_type: small, stemcell: s, jobs: [], {body}}}\n"
        );
        Deployment::parse(&manifest)
            .unwrap()
            .instance_groups
            .remove(0)
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn ips(placements: &[Placement], network: usize) -> Vec<Option<IpAddr>> {
        placements
            .iter()
            .map(|p| p.networks[network].address.ip())
            .collect()
    }

    #[test]
    fn instances_go_round_the_azs_and_get_the_lowest_free_addresses() {
        let cloud = CloudConfig::parse(CLOUD).unwrap();
        let group = group("instances: 3, azs: [z1, z2], networks: [{name: default}]");
        let placements = place(&group, &cloud, &[], &BTreeSet::new()).unwrap();
        let azs: Vec<_> = placements.iter().map(|p| p.az.as_deref()).collect();
        assert_eq!(azs, [Some("z1"), Some("z2"), Some("z1")]);
        // .0 network, .1 gateway, .2 reserved, .3-.5 static: z1 starts at .6; z2 reserves nothing.
        assert_eq!(
            ips(&placements, 0),
            [
                Some(ip("10.0.0.6")),
                Some(ip("10.0.1.2")),
                Some(ip("10.0.0.7"))
            ]
        );
        assert_eq!(
            placements[1].networks[0].address,
            Address::Allocated {
                ip: ip("10.0.1.2"),
                subnet: 1
            }
        );
    }

    #[test]
    fn static_ips_come_first_and_decide_the_az() {
        let cloud = CloudConfig::parse(CLOUD).unwrap();
        let group = group(
            "instances: 2, azs: [z1, z2], networks: [{name: default, static_ips: [10.0.1.4, 10.0.0.3], \
             default: [dns, gateway]}, {name: public}]",
        );
        let placements = place(&group, &cloud, &[], &BTreeSet::new()).unwrap();
        assert_eq!(placements[0].az.as_deref(), Some("z2"));
        assert_eq!(placements[1].az.as_deref(), Some("z1"));
        assert_eq!(
            placements[0].networks[0].address,
            Address::Static {
                ip: ip("10.0.1.4"),
                subnet: 1
            }
        );
        assert_eq!(placements[0].networks[1].address, Address::Dynamic);
    }

    #[test]
    fn a_redeploy_keeps_addresses_and_skips_those_in_use() {
        let cloud = CloudConfig::parse(CLOUD).unwrap();
        let group = group("instances: 3, azs: [z1], networks: [{name: default}]");
        let in_use = BTreeSet::from([ip("10.0.0.6")]);
        let first = place(&group, &cloud, &[], &in_use).unwrap();
        assert_eq!(
            ips(&first, 0),
            [
                Some(ip("10.0.0.7")),
                Some(ip("10.0.0.8")),
                Some(ip("10.0.0.9"))
            ]
        );
        // Same inputs, same answer.
        assert_eq!(place(&group, &cloud, &[], &in_use).unwrap(), first);
        // Instance 1 had .12 and instance 2 had .7 before: both are kept, and instance 0 gets the
        // lowest address left rather than .7.
        let previous = vec![
            BTreeMap::new(),
            BTreeMap::from([("default".to_owned(), ip("10.0.0.12"))]),
            BTreeMap::from([("default".to_owned(), ip("10.0.0.7"))]),
        ];
        let again = place(&group, &cloud, &previous, &in_use).unwrap();
        assert_eq!(
            ips(&again, 0),
            [
                Some(ip("10.0.0.8")),
                Some(ip("10.0.0.12")),
                Some(ip("10.0.0.7"))
            ]
        );
        // An address that became static, reserved or someone else's is not kept.
        let previous = vec![BTreeMap::from([("default".to_owned(), ip("10.0.0.6"))])];
        let moved = place(&group, &cloud, &previous, &in_use).unwrap();
        assert_eq!(moved[0].networks[0].address.ip(), Some(ip("10.0.0.7")));
    }

    #[test]
    fn running_out_of_addresses_names_the_network_az_and_instance() {
        let cloud = CloudConfig::parse(CLOUD).unwrap();
        // z1 has .6 to .14 free: nine addresses.
        let group = group("instances: 10, azs: [z1], networks: [{name: default}]");
        assert_eq!(
            place(&group, &cloud, &[], &BTreeSet::new()),
            Err(Error::Exhausted {
                network: "default".into(),
                az: Some("z1".into()),
                index: 9
            })
        );
        assert_eq!(
            Error::Exhausted {
                network: "default".into(),
                az: Some("z1".into()),
                index: 9
            }
            .to_string(),
            "network \"default\" has no free address in az \"z1\" for instance 9"
        );
    }

    #[test]
    fn groups_without_azs_need_subnets_without_azs() {
        let cloud = CloudConfig::parse(CLOUD).unwrap();
        let group = group("instances: 1, networks: [{name: default}]");
        assert_eq!(
            place(&group, &cloud, &[], &BTreeSet::new()),
            Err(Error::NoSubnet {
                network: "default".into(),
                az: None
            })
        );
        // A dynamic network alone needs no subnet.
        let group = self::group("instances: 2, networks: [{name: public}]");
        let placements = place(&group, &cloud, &[], &BTreeSet::new()).unwrap();
        assert_eq!(ips(&placements, 0), [None, None]);
    }
}
