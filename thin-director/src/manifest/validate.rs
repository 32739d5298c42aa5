//! Checks a deployment manifest against a cloud config: every name the manifest uses exists, static
//! IPs sit in static ranges of subnets serving the group's AZs, and every instance gets an address.
//!
//! Follows the checks the director makes while it builds a deployment plan
//! (`instance_group_spec_parser.rb`, `instance_group_networks_parser.rb`,
//! `placement_planner/networks_to_static_ips.rb`, `ip_provider`), reported all at once.

use std::collections::BTreeSet;
use std::net::IpAddr;

use crate::manifest::cloud_config::{CloudConfig, NetworkKind};
use crate::manifest::deployment::{Deployment, InstanceGroup, PersistentDisk};
use crate::manifest::error::{Document, Error, Problem};
use crate::manifest::placement;

/// Checks `deployment` against `cloud_config`, both already parsed; every problem is reported on the
/// manifest path that names the missing or misplaced thing.
pub fn validate(deployment: &Deployment, cloud_config: &CloudConfig) -> Result<(), Error> {
    let mut problems = Vec::new();
    for (index, group) in deployment.instance_groups.iter().enumerate() {
        check_group(
            &mut problems,
            &format!("instance_groups[{index}]"),
            group,
            cloud_config,
        );
    }
    if problems.is_empty() {
        // Addresses are handed out group by group, in manifest order, as a first deploy would.
        let mut in_use: BTreeSet<IpAddr> = BTreeSet::new();
        for (index, group) in deployment.instance_groups.iter().enumerate() {
            match placement::place(group, cloud_config, &[], &in_use) {
                Ok(placements) => in_use.extend(
                    placements
                        .iter()
                        .flat_map(|p| p.networks.iter().filter_map(|n| n.address.ip())),
                ),
                Err(err) => problem(
                    &mut problems,
                    format!("instance_groups[{index}].networks"),
                    err.to_string(),
                ),
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Error { problems })
    }
}

fn check_group(
    problems: &mut Vec<Problem>,
    path: &str,
    group: &InstanceGroup,
    cloud_config: &CloudConfig,
) {
    for (index, az) in group.azs.iter().enumerate() {
        if cloud_config.az(az).is_none() {
            problem(
                problems,
                format!("{path}.azs[{index}]"),
                format!("az {az:?} is not in the cloud config"),
            );
        }
    }
    if cloud_config.vm_type(&group.vm_type).is_none() {
        problem(
            problems,
            format!("{path}.vm_type"),
            format!("vm_type {:?} is not in the cloud config", group.vm_type),
        );
    }
    if let PersistentDisk::Type(disk_type) = &group.persistent_disk {
        if cloud_config.disk_type(disk_type).is_none() {
            problem(
                problems,
                format!("{path}.persistent_disk_type"),
                format!("disk_type {disk_type:?} is not in the cloud config"),
            );
        }
    }
    let azs: Vec<Option<&str>> = if group.azs.is_empty() {
        vec![None]
    } else {
        group.azs.iter().map(|az| Some(az.as_str())).collect()
    };
    for (index, group_network) in group.networks.iter().enumerate() {
        let network_path = format!("{path}.networks[{index}]");
        let Some(network) = cloud_config.network(&group_network.name) else {
            problem(
                problems,
                format!("{network_path}.name"),
                format!(
                    "network {:?} is not in the cloud config",
                    group_network.name
                ),
            );
            continue;
        };
        if let NetworkKind::Dynamic { .. } = network.kind {
            if !group_network.static_ip_entries.is_empty() {
                problem(
                    problems,
                    format!("{network_path}.static_ips"),
                    format!(
                        "network {:?} is dynamic and cannot have static IPs",
                        network.name
                    ),
                );
            }
            continue;
        }
        for az in &azs {
            if !network.subnets().iter().any(|subnet| subnet.serves(*az)) {
                let message = match az {
                    Some(az) => format!("network {:?} has no subnet in az {az:?}", network.name),
                    None => format!(
                        "network {:?} has no subnet without azs, and the instance group names no azs",
                        network.name
                    ),
                };
                problem(problems, format!("{network_path}.name"), message);
            }
        }
        for (entry_index, entry) in group_network.static_ip_entries.iter().enumerate() {
            let outside: Vec<String> = entry
                .iter()
                .filter(|ip| {
                    !network.subnets().iter().any(|subnet| {
                        subnet.is_static(*ip) && azs.iter().any(|az| subnet.serves(*az))
                    })
                })
                .map(|ip| ip.to_string())
                .collect();
            if !outside.is_empty() {
                problem(
                    problems,
                    format!("{network_path}.static_ips[{entry_index}]"),
                    format!(
                        "{} not in a static range of a subnet of network {:?} serving the \
                         instance group's azs",
                        describe(&outside),
                        network.name
                    ),
                );
            }
        }
    }
}

/// `10.0.0.9 is` or `10.0.0.9, 10.0.0.10 are` (at most five named).
fn describe(ips: &[String]) -> String {
    match ips {
        [one] => format!("{one} is"),
        many if many.len() <= 5 => format!("{} are", many.join(", ")),
        many => format!("{} and {} more are", many[..5].join(", "), many.len() - 5),
    }
}

fn problem(problems: &mut Vec<Problem>, path: String, message: String) {
    problems.push(Problem {
        document: Document::Manifest,
        path,
        message,
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLOUD: &str = r#"
azs: [{name: z1}, {name: z2}]
networks:
- name: default
  subnets:
  - {range: 10.0.0.0/29, gateway: 10.0.0.1, static: [10.0.0.2 - 10.0.0.3], az: z1}
- {name: public, type: dynamic}
vm_types: [{name: small}]
disk_types: [{name: fast, disk_size: 1024}]
compilation: {workers: 1, az: z1, vm_type: small, network: default}
"#;

    fn check(groups: &str) -> Vec<String> {
        let manifest = format!(
            "name: d\nreleases: [{{name: r, version: 1}}]\nstemcells: [{{alias: s, os: o, version: 1}}]\n\
             update: {{canaries: 1, max_in_flight: 1, canary_watch_time: 1, update_watch_time: 1}}\n\
             instance_groups:\n{groups}"
        );
        let deployment = Deployment::parse(&manifest).unwrap();
        let cloud = CloudConfig::parse(CLOUD).unwrap();
        match validate(&deployment, &cloud) {
            Ok(()) => Vec::new(),
            Err(err) => err.problems.iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn a_group_that_fits_passes() {
        assert_eq!(
            check(
                "- {name: a, instances: 2, azs: [z1], vm_type: small, stemcell: s, jobs: [], \
                 persistent_disk_type: fast, networks: [{name: default, static_ips: [10.0.0.2 - 10.0.0.3]}]}\n"
            ),
            Vec::<String>::new()
        );
    }

    #[test]
    fn unknown_cloud_config_names_are_reported_on_manifest_paths() {
        assert_eq!(
            check(
                "- {name: a, instances: 1, azs: [z1, z9], vm_type: huge, stemcell: s, jobs: [], \
                 persistent_disk_type: slow, networks: [{name: nowhere}]}\n"
            ),
            [
                "instance_groups[0].azs[1]: az \"z9\" is not in the cloud config",
                "instance_groups[0].vm_type: vm_type \"huge\" is not in the cloud config",
                "instance_groups[0].persistent_disk_type: disk_type \"slow\" is not in the cloud config",
                "instance_groups[0].networks[0].name: network \"nowhere\" is not in the cloud config",
            ]
        );
    }

    #[test]
    fn static_ips_must_be_in_static_ranges_of_the_groups_azs() {
        assert_eq!(
            check(
                "- {name: a, instances: 2, azs: [z1, z2], vm_type: small, stemcell: s, jobs: [], \
                 networks: [{name: default, static_ips: [10.0.0.2, 10.0.0.6]}]}\n\
                 - {name: b, instances: 1, vm_type: small, stemcell: s, jobs: [], \
                 networks: [{name: public, static_ips: [10.0.0.3]}]}\n"
            ),
            [
                "instance_groups[0].networks[0].name: network \"default\" has no subnet in az \"z2\"",
                "instance_groups[0].networks[0].static_ips[1]: 10.0.0.6 is not in a static range of a \
                 subnet of network \"default\" serving the instance group's azs",
                "instance_groups[1].networks[0].static_ips: network \"public\" is dynamic and cannot \
                 have static IPs",
            ]
        );
    }

    #[test]
    fn address_exhaustion_is_found_before_deploying() {
        // 10.0.0.0/29 leaves .4, .5 and .6 for dynamic addresses.
        assert_eq!(
            check(
                "- {name: a, instances: 2, azs: [z1], vm_type: small, stemcell: s, jobs: [], \
                 networks: [{name: default}]}\n\
                 - {name: b, instances: 2, azs: [z1], vm_type: small, stemcell: s, jobs: [], \
                 networks: [{name: default}]}\n"
            ),
            [
                "instance_groups[1].networks: network \"default\" has no free address in az \"z1\" \
                 for instance 1"
            ]
        );
    }
}
