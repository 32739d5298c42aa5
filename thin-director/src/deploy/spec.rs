//! The documents an instance is described by: its network settings (for `create_vm` and the apply
//! spec, `manual_network.rb`'s shape), what its templates see as `spec`, and its apply spec
//! (`instance_spec.rb`'s `as_apply_spec` keys, `reference/director-cpi.md` §2.4).

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde_json::{Map, Value, json};

use crate::manifest::cloud_config::NetworkKind;
use crate::manifest::deployment::{DefaultFor, InstanceGroup};
use crate::manifest::placement::{Address, Placement};
use crate::manifest::subnet::Subnet;
use crate::manifest::{CloudConfig, Deployment};
use crate::template::{InstanceSpec, NetworkSpec, RenderedTemplates, SpecJob};

/// The root DNS domain the director reports.
pub const DNS_DOMAIN: &str = "bosh";

/// An instance as the deploy sees it.
#[derive(Debug, Clone)]
pub struct Instance<'a> {
    /// Its group.
    pub group: &'a InstanceGroup,
    /// Where it goes.
    pub placement: &'a Placement,
    /// Its id.
    pub id: &'a str,
    /// Whether it is the group's bootstrap instance.
    pub bootstrap: bool,
    /// Its persistent disk in MiB (0: none).
    pub disk_mb: u64,
}

/// The network settings of an instance, by network name: `type`, `ip`, `netmask`, `gateway`, `dns`,
/// `default`, `cloud_properties` for manual networks; `type`, `dns`, `default`, `cloud_properties`
/// for dynamic ones.
pub fn network_settings(instance: &Instance<'_>, cloud: &CloudConfig) -> Value {
    let mut settings = Map::new();
    for (address, group_network) in instance
        .placement
        .networks
        .iter()
        .zip(&instance.group.networks)
    {
        let defaults: Vec<&str> = defaults_of(instance.group, &group_network.name);
        let Some(network) = cloud.network(&address.network) else {
            continue;
        };
        let value = match (&network.kind, address.address) {
            (
                NetworkKind::Manual { subnets },
                Address::Static { ip, subnet } | Address::Allocated { ip, subnet },
            ) => manual_network(&subnets[subnet], ip, &defaults),
            (
                NetworkKind::Dynamic {
                    dns,
                    cloud_properties,
                },
                _,
            ) => dynamic_network(dns, cloud_properties, &defaults),
            (NetworkKind::Manual { .. }, Address::Dynamic) => continue,
        };
        settings.insert(address.network.clone(), value);
    }
    Value::Object(settings)
}

/// The settings of a manual network: the address `ip` in `subnet`.
pub fn manual_network(subnet: &Subnet, ip: IpAddr, defaults: &[&str]) -> Value {
    json!({
        "type": "manual",
        "ip": ip.to_string(),
        "netmask": subnet.range.netmask().to_string(),
        "prefix": subnet.range.prefix().to_string(),
        "gateway": subnet.gateway.to_string(),
        "dns": subnet.dns.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "default": defaults,
        "cloud_properties": subnet.cloud_properties,
    })
}

/// The settings of a dynamic network (the IaaS assigns the address).
pub fn dynamic_network(
    dns: &[IpAddr],
    cloud_properties: &Map<String, Value>,
    defaults: &[&str],
) -> Value {
    json!({
        "type": "dynamic",
        "dns": dns.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "default": defaults,
        "cloud_properties": cloud_properties,
    })
}

/// What `network` is the default for in `group`: everything when it is the only network.
fn defaults_of<'a>(group: &InstanceGroup, network: &str) -> Vec<&'a str> {
    let all = [
        (DefaultFor::Dns, "dns"),
        (DefaultFor::Gateway, "gateway"),
        (DefaultFor::Addressable, "addressable"),
    ];
    all.into_iter()
        .filter(|(what, _)| {
            group
                .default_network(*what)
                .is_some_and(|default| default.name == network)
        })
        .map(|(_, name)| name)
        .collect()
}

/// The instance's IP on its addressable (else gateway) network, as templates see `spec.ip`.
pub fn primary_ip(instance: &Instance<'_>, networks: &Value) -> Option<String> {
    let network = instance
        .group
        .default_network(DefaultFor::Addressable)
        .or_else(|| instance.group.default_network(DefaultFor::Gateway))?;
    networks[&network.name]["ip"].as_str().map(str::to_owned)
}

/// What templates see as `spec`.
pub fn template_spec(
    instance: &Instance<'_>,
    deployment: &Deployment,
    networks: &Value,
) -> InstanceSpec {
    let ip = primary_ip(instance, networks);
    let networks = networks
        .as_object()
        .map(|networks| {
            networks
                .iter()
                .map(|(name, settings)| {
                    let text = |key: &str| settings[key].as_str().map(str::to_owned);
                    let list = |key: &str| -> Vec<String> {
                        settings[key]
                            .as_array()
                            .map(|items| {
                                items
                                    .iter()
                                    .filter_map(|item| item.as_str().map(str::to_owned))
                                    .collect()
                            })
                            .unwrap_or_default()
                    };
                    (
                        name.clone(),
                        NetworkSpec {
                            ip: text("ip"),
                            netmask: text("netmask"),
                            gateway: text("gateway"),
                            dns: list("dns"),
                            default: list("default"),
                        },
                    )
                })
                .collect::<BTreeMap<_, _>>()
        })
        .unwrap_or_default();
    InstanceSpec {
        deployment: deployment.name.clone(),
        name: instance.group.name.clone(),
        id: instance.id.to_owned(),
        index: instance.placement.index as u64,
        az: instance.placement.az.clone(),
        address: ip.clone(),
        ip,
        bootstrap: instance.bootstrap,
        job: SpecJob {
            name: instance.group.name.clone(),
        },
        networks,
        dns_domain_name: Some(DNS_DOMAIN.to_owned()),
        persistent_disk: instance.disk_mb,
    }
}

/// A job of the apply spec: its name, version, SHA-1 and blob.
#[derive(Debug, Clone)]
pub struct JobRef {
    /// The job.
    pub name: String,
    /// Its version.
    pub version: String,
    /// The SHA-1 of its tarball.
    pub sha1: String,
    /// Its tarball in the blobstore.
    pub blobstore_id: String,
}

/// A compiled package of the apply spec.
#[derive(Debug, Clone)]
pub struct PackageRef {
    /// Its version (`<version>.<build>` in BOSH; the release version here).
    pub version: String,
    /// The SHA-1 of the compiled tarball.
    pub sha1: String,
    /// The compiled tarball in the blobstore.
    pub blobstore_id: String,
}

/// The full apply spec.
pub fn apply_spec(
    instance: &Instance<'_>,
    deployment: &Deployment,
    networks: &Value,
    jobs: &[JobRef],
    packages: &BTreeMap<String, PackageRef>,
    rendered: &RenderedTemplates,
    templates_blob: &str,
) -> Value {
    let templates: Vec<Value> = jobs
        .iter()
        .map(|job| {
            json!({
                "name": job.name,
                "version": job.version,
                "sha1": job.sha1,
                "blobstore_id": job.blobstore_id,
            })
        })
        .collect();
    let packages: Map<String, Value> = packages
        .iter()
        .map(|(name, package)| {
            (
                name.clone(),
                json!({
                    "name": name,
                    "version": package.version,
                    "sha1": package.sha1,
                    "blobstore_id": package.blobstore_id,
                }),
            )
        })
        .collect();
    json!({
        "deployment": deployment.name,
        "job": {
            "name": instance.group.name,
            "templates": templates,
            "template": jobs.first().map(|job| job.name.clone()),
            "version": jobs.first().map(|job| job.version.clone()),
        },
        "index": instance.placement.index,
        "name": instance.group.name,
        "id": instance.id,
        "az": instance.placement.az,
        "networks": networks,
        "packages": packages,
        "dns_domain_name": DNS_DOMAIN,
        "configuration_hash": rendered.configuration_hash,
        "persistent_disk": instance.disk_mb,
        "template_hashes": rendered.template_hashes,
        "rendered_templates_archive": {"blobstore_id": templates_blob, "sha1": rendered.archive_sha1},
    })
}
