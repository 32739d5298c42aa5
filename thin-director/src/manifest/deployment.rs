//! The deployment manifest: releases, stemcells, update settings and instance groups (bosh.io
//! `manifest-v2`).
//!
//! Follows the director's `deployment_plan/planner_factory.rb` and `instance_group_spec_parser.rb`.
//! The subset we read:
//!
//! ```yaml
//! name: <deployment>
//! releases: [{name, version, url, sha1}]          # url: file:///path or a path; sha1: multi-digest
//! stemcells: [{alias, os, version}]
//! update: {canaries, max_in_flight, canary_watch_time, update_watch_time, serial}
//! instance_groups:
//! - name, instances, azs, vm_type, stemcell, lifecycle (service | errand),
//!   jobs: [{name, release, properties}],
//!   networks: [{name, static_ips, default}],
//!   persistent_disk (MiB) | persistent_disk_type, properties, update, env
//! properties: {}                                   # legacy global properties
//! tags: {}
//! ```
//!
//! Accepted and ignored, because operators commonly carry them and they change nothing the thin
//! director does: `director_uuid` (ignored by BOSH v2 too), `variables` (the thin director
//! generates no credentials; interpolate with `bosh int` first), `features`, a release's
//! `stemcell` (a compiled release tarball names its own stemcell), a job's `consumes` and
//! `provides` (links are not resolved), and in `update` `vm_strategy` and
//! `initial_deploy_az_update_strategy`. BOSH keys that would change the result if ignored
//! (`addons`, `vm_extensions`, `persistent_disks`, `migrated_from`, `vm_resources`, v1 keys) are
//! refused, as is every unknown key, each with its path.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path as FsPath, PathBuf};

use serde_json::{Map, Value as Json};
use serde_yaml_ng::Value;
use settings::digest::MultiDigest;

use crate::manifest::error::{Document, Error};
use crate::manifest::ip::IpRange;
use crate::manifest::reader::{Keys, Path, Reader};
use crate::manifest::update::{self, UpdateConfig};

/// The most static IPs one network of an instance group may list once ranges are expanded.
pub const MAX_STATIC_IPS: u128 = 65_536;

/// A parsed and checked deployment manifest.
#[derive(Debug, Clone, PartialEq)]
pub struct Deployment {
    /// The deployment name.
    pub name: String,
    /// The releases jobs come from.
    pub releases: Vec<Release>,
    /// The stemcells instance groups run on, by alias.
    pub stemcells: Vec<Stemcell>,
    /// The deployment's update settings (each group's own, merged, is in the group).
    pub update: UpdateConfig,
    /// The instance groups, in update order.
    pub instance_groups: Vec<InstanceGroup>,
    /// Legacy global properties, used for jobs without properties of their own.
    pub properties: Map<String, Json>,
    /// Tags for VM metadata.
    pub tags: BTreeMap<String, String>,
}

/// A release the deployment uses.
#[derive(Debug, Clone, PartialEq)]
pub struct Release {
    /// The release name.
    pub name: String,
    /// The version, as written (`latest` allowed).
    pub version: String,
    /// The release tarball named by `url`: `file://` stripped, possibly relative to the manifest.
    pub tarball: Option<PathBuf>,
    /// The expected digest of the tarball.
    pub sha1: Option<MultiDigest>,
}

/// A stemcell the deployment uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stemcell {
    /// The name instance groups use for it.
    pub alias: String,
    /// Its operating system, e.g. `ubuntu-jammy`.
    pub os: String,
    /// Its version, as written (`latest` allowed).
    pub version: String,
}

/// An instance group.
#[derive(Debug, Clone, PartialEq)]
pub struct InstanceGroup {
    /// The group name.
    pub name: String,
    /// How many instances.
    pub instances: usize,
    /// The AZs instances are spread over; empty when the cloud config has none.
    pub azs: Vec<String>,
    /// The jobs every instance runs.
    pub jobs: Vec<Job>,
    /// The cloud config VM type.
    pub vm_type: String,
    /// The stemcell alias.
    pub stemcell: String,
    /// The networks, in the order given.
    pub networks: Vec<GroupNetwork>,
    /// The persistent disk, if any.
    pub persistent_disk: PersistentDisk,
    /// A long-running service or an errand.
    pub lifecycle: Lifecycle,
    /// Properties for jobs without properties of their own.
    pub properties: Map<String, Json>,
    /// The update settings: the group's `update` over the deployment's.
    pub update: UpdateConfig,
    /// The `env` hash for `create_vm`, kept as given.
    pub env: Map<String, Json>,
}

/// A job of an instance group.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    /// The job name in its release.
    pub name: String,
    /// The release name.
    pub release: String,
    /// The job's own properties; when given, group and global properties do not apply to it.
    pub properties: Option<Map<String, Json>>,
}

/// A network of an instance group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupNetwork {
    /// The cloud config network.
    pub name: String,
    /// The static IP entries as written (addresses, `a - b` ranges); see [`Self::static_ips`].
    pub static_ip_entries: Vec<IpRange>,
    /// What this network is the default for.
    pub default: Vec<DefaultFor>,
}

/// What a network can be the default for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum DefaultFor {
    /// DNS servers.
    Dns,
    /// The default route.
    Gateway,
    /// The address others use for the instance.
    Addressable,
}

/// The persistent disk of an instance group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PersistentDisk {
    /// No persistent disk (also `persistent_disk: 0`).
    None,
    /// A disk of that many MiB with no cloud properties.
    Size {
        /// Size in MiB.
        mb: u64,
    },
    /// A cloud config disk type.
    Type(String),
}

/// What an instance group is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifecycle {
    /// Long-running jobs kept running by the agent.
    Service,
    /// Jobs run to completion on demand.
    Errand,
}

impl Deployment {
    /// Parses and checks a manifest on its own (see [`crate::manifest::validate`] for the checks
    /// against a cloud config), reporting every problem found.
    pub fn parse(text: &str) -> Result<Deployment, Error> {
        let mut reader = Reader::new(Document::Manifest);
        let deployment = reader
            .parse(text)
            .and_then(|value| read_deployment(&mut reader, &value));
        if let Some(deployment) = &deployment {
            // Checked once the structure is sound, so that indexes in paths are the document's.
            if !reader.has_problems() {
                check_deployment(&mut reader, deployment);
            }
        }
        reader
            .finish(deployment)
            .map_err(|problems| Error { problems })
    }

    /// The instance group called `name`.
    pub fn instance_group(&self, name: &str) -> Option<&InstanceGroup> {
        self.instance_groups.iter().find(|group| group.name == name)
    }

    /// The release called `name`.
    pub fn release(&self, name: &str) -> Option<&Release> {
        self.releases.iter().find(|release| release.name == name)
    }

    /// The stemcell with `alias`.
    pub fn stemcell(&self, alias: &str) -> Option<&Stemcell> {
        self.stemcells
            .iter()
            .find(|stemcell| stemcell.alias == alias)
    }
}

impl Release {
    /// The tarball path, relative paths taken from `manifest_dir`.
    pub fn tarball_path(&self, manifest_dir: &FsPath) -> Option<PathBuf> {
        self.tarball.as_ref().map(|path| manifest_dir.join(path))
    }
}

impl InstanceGroup {
    /// The network that is the default for `what`: the only network, or the one that says so.
    pub fn default_network(&self, what: DefaultFor) -> Option<&GroupNetwork> {
        match self.networks.as_slice() {
            [only] => Some(only),
            networks => networks.iter().find(|n| n.default.contains(&what)),
        }
    }
}

impl GroupNetwork {
    /// Every static IP, ranges expanded, in the order given: instance `i` gets the `i`-th.
    pub fn static_ips(&self) -> Vec<IpAddr> {
        self.static_ip_entries
            .iter()
            .flat_map(IpRange::iter)
            .collect()
    }

    /// How many static IPs the entries hold.
    pub fn static_ip_count(&self) -> u128 {
        self.static_ip_entries.iter().map(IpRange::len).sum()
    }
}

const TOP_KEYS: Keys = Keys {
    known: &[
        "name",
        "releases",
        "stemcells",
        "update",
        "instance_groups",
        "properties",
        "tags",
    ],
    ignored: &["director_uuid", "variables", "features"],
    unsupported: &[
        "addons",
        "jobs",
        "resource_pools",
        "networks",
        "compilation",
        "disk_pools",
        "azs",
        "vm_types",
        "disk_types",
        "cloud_provider",
    ],
};
const RELEASE_KEYS: Keys = Keys {
    known: &["name", "version", "url", "sha1"],
    ignored: &["stemcell"],
    unsupported: &["exported_from"],
};
const STEMCELL_KEYS: Keys = Keys {
    known: &["alias", "os", "version"],
    ignored: &[],
    unsupported: &["name"],
};
const GROUP_KEYS: Keys = Keys {
    known: &[
        "name",
        "instances",
        "azs",
        "jobs",
        "vm_type",
        "stemcell",
        "networks",
        "persistent_disk",
        "persistent_disk_type",
        "lifecycle",
        "properties",
        "update",
        "env",
    ],
    ignored: &[],
    unsupported: &[
        "vm_extensions",
        "persistent_disks",
        "persistent_disk_pool",
        "migrated_from",
        "vm_resources",
        "templates",
        "resource_pool",
    ],
};
const JOB_KEYS: Keys = Keys {
    known: &["name", "release", "properties"],
    ignored: &["consumes", "provides"],
    unsupported: &["custom_provider_definitions"],
};
const NETWORK_KEYS: Keys = Keys {
    known: &["name", "static_ips", "default"],
    ignored: &[],
    unsupported: &[],
};

fn read_deployment(reader: &mut Reader, value: &Value) -> Option<Deployment> {
    let fields = reader.fields(value, &Path::default(), &TOP_KEYS)?;
    let name = fields.required_string(reader, "name");
    let releases = fields
        .required(reader, "releases")
        .map(|value| reader.each(value, &fields.path("releases"), read_release));
    let stemcells = fields
        .required(reader, "stemcells")
        .map(|value| reader.each(value, &fields.path("stemcells"), read_stemcell));
    let update = fields.required_with(reader, "update", |reader, value, path| {
        update::read(reader, value, path, None)
    });
    let instance_groups = fields.required(reader, "instance_groups").map(|value| {
        reader.each(
            value,
            &fields.path("instance_groups"),
            |reader, value, path| read_group(reader, value, path, update.as_ref()),
        )
    });
    let properties = fields.object_or_empty(reader, "properties");
    let tags = fields
        .optional_with(reader, "tags", read_tags)
        .unwrap_or_default();
    Some(Deployment {
        name: name?,
        releases: releases?,
        stemcells: stemcells?,
        update: update?,
        instance_groups: instance_groups?,
        properties,
        tags,
    })
}

fn read_release(reader: &mut Reader, value: &Value, path: Path) -> Option<Release> {
    let fields = reader.fields(value, &path, &RELEASE_KEYS)?;
    let name = fields.required_string(reader, "name");
    let version = fields.required_with(reader, "version", Reader::scalar);
    let tarball = fields.optional_with(reader, "url", |reader, value, path| {
        let url = reader.string(value, path)?;
        let local = url.strip_prefix("file://").unwrap_or(&url);
        if local.contains("://") || local.is_empty() {
            reader.problem(
                path,
                format!("{url:?} is not a local release tarball (give file:///path or a path)"),
            );
            return None;
        }
        Some(PathBuf::from(local))
    });
    let sha1 = fields.optional_with(reader, "sha1", |reader, value, path| {
        let text = reader.string(value, path)?;
        match MultiDigest::parse(&text) {
            Ok(digest) => Some(digest),
            Err(err) => {
                reader.problem(path, err.to_string());
                None
            }
        }
    });
    Some(Release {
        name: name?,
        version: version?,
        tarball,
        sha1,
    })
}

fn read_stemcell(reader: &mut Reader, value: &Value, path: Path) -> Option<Stemcell> {
    let fields = reader.fields(value, &path, &STEMCELL_KEYS)?;
    let alias = fields.required_string(reader, "alias");
    let os = fields.required_string(reader, "os");
    let version = fields.required_with(reader, "version", Reader::scalar);
    Some(Stemcell {
        alias: alias?,
        os: os?,
        version: version?,
    })
}

fn read_group(
    reader: &mut Reader,
    value: &Value,
    path: Path,
    deployment_update: Option<&UpdateConfig>,
) -> Option<InstanceGroup> {
    let fields = reader.fields(value, &path, &GROUP_KEYS)?;
    let name = fields.required_string(reader, "name");
    let instances = fields
        .required_with(reader, "instances", Reader::count)
        .map(|count| usize::try_from(count).unwrap_or(usize::MAX));
    let azs = fields
        .optional_with(reader, "azs", Reader::strings)
        .unwrap_or_default();
    let jobs = fields
        .required(reader, "jobs")
        .map(|value| reader.each(value, &fields.path("jobs"), read_job));
    let vm_type = fields.required_string(reader, "vm_type");
    let stemcell = fields.required_string(reader, "stemcell");
    let networks = fields
        .required(reader, "networks")
        .map(|value| reader.each(value, &fields.path("networks"), read_group_network));
    let disk_size = fields.optional_with(reader, "persistent_disk", Reader::count);
    let disk_type = fields.optional_string(reader, "persistent_disk_type");
    let persistent_disk = match (disk_size, disk_type) {
        (Some(_), Some(_)) => {
            reader.problem(
                &fields.path("persistent_disk_type"),
                "give either persistent_disk or persistent_disk_type, not both",
            );
            PersistentDisk::None
        }
        (Some(0), None) | (None, None) => PersistentDisk::None,
        (Some(mb), None) => PersistentDisk::Size { mb },
        (None, Some(disk_type)) => PersistentDisk::Type(disk_type),
    };
    let lifecycle = fields
        .optional_with(reader, "lifecycle", |reader, value, path| {
            match reader.string(value, path)?.as_str() {
                "service" => Some(Lifecycle::Service),
                "errand" => Some(Lifecycle::Errand),
                other => {
                    reader.problem(
                        path,
                        format!("unknown lifecycle {other:?} (expected service or errand)"),
                    );
                    None
                }
            }
        })
        .unwrap_or(Lifecycle::Service);
    let properties = fields.object_or_empty(reader, "properties");
    // When the deployment's own update block is broken, a group's block is still read (against a
    // stand-in) so that its problems are reported too; the parse fails either way.
    let stand_in = deployment_update.cloned().unwrap_or(update::STAND_IN);
    let update = match fields.get("update") {
        Some(value) => update::read(reader, value, &fields.path("update"), Some(&stand_in)),
        None => Some(stand_in),
    };
    let env = fields.object_or_empty(reader, "env");
    Some(InstanceGroup {
        name: name?,
        instances: instances?,
        azs,
        jobs: jobs?,
        vm_type: vm_type?,
        stemcell: stemcell?,
        networks: networks?,
        persistent_disk,
        lifecycle,
        properties,
        update: update?,
        env,
    })
}

fn read_job(reader: &mut Reader, value: &Value, path: Path) -> Option<Job> {
    let fields = reader.fields(value, &path, &JOB_KEYS)?;
    let name = fields.required_string(reader, "name");
    let release = fields.required_string(reader, "release");
    let properties = fields.optional_with(reader, "properties", Reader::object);
    Some(Job {
        name: name?,
        release: release?,
        properties,
    })
}

fn read_group_network(reader: &mut Reader, value: &Value, path: Path) -> Option<GroupNetwork> {
    let fields = reader.fields(value, &path, &NETWORK_KEYS)?;
    let name = fields.required_string(reader, "name");
    let static_ip_entries = fields
        .optional_with(reader, "static_ips", |reader, value, path| {
            let entries = reader.ranges(value, path)?;
            let total: u128 = entries.iter().map(IpRange::len).sum();
            if total > MAX_STATIC_IPS {
                reader.problem(
                    path,
                    format!("{total} static IPs is more than the {MAX_STATIC_IPS} allowed"),
                );
                return None;
            }
            Some(entries)
        })
        .unwrap_or_default();
    let default = fields
        .optional_with(reader, "default", |reader, value, path| {
            let names = reader.strings(value, path)?;
            let mut default = Vec::new();
            for (index, name) in names.iter().enumerate() {
                match name.as_str() {
                    "dns" => default.push(DefaultFor::Dns),
                    "gateway" => default.push(DefaultFor::Gateway),
                    "addressable" => default.push(DefaultFor::Addressable),
                    other => reader.problem(
                        &path.index(index),
                        format!("unknown default {other:?} (expected dns, gateway or addressable)"),
                    ),
                }
            }
            Some(default)
        })
        .unwrap_or_default();
    Some(GroupNetwork {
        name: name?,
        static_ip_entries,
        default,
    })
}

fn read_tags(reader: &mut Reader, value: &Value, path: &Path) -> Option<BTreeMap<String, String>> {
    let object = reader.object(value, path)?;
    let mut tags = BTreeMap::new();
    for (key, value) in object {
        match value {
            Json::String(text) => {
                tags.insert(key, text);
            }
            Json::Number(_) | Json::Bool(_) => {
                tags.insert(key, value.to_string());
            }
            _ => reader.problem(&path.key(&key), "tag values must be strings"),
        }
    }
    Some(tags)
}

/// Unique names, known releases and stemcells, default networks and static IP counts.
fn check_deployment(reader: &mut Reader, deployment: &Deployment) {
    let root = Path::default();
    reader.unique_names(
        &root.key("releases"),
        "release",
        deployment.releases.iter().map(|r| r.name.as_str()),
    );
    let aliases: Vec<&str> = deployment
        .stemcells
        .iter()
        .map(|s| s.alias.as_str())
        .collect();
    for (index, alias) in aliases.iter().enumerate() {
        if aliases[..index].contains(alias) {
            reader.problem(
                &root.key("stemcells").index(index).key("alias"),
                format!("duplicate stemcell alias {alias:?}"),
            );
        }
    }
    reader.unique_names(
        &root.key("instance_groups"),
        "instance group",
        deployment.instance_groups.iter().map(|g| g.name.as_str()),
    );
    // Which group and network claimed each static IP first.
    let mut static_owners: BTreeMap<IpAddr, String> = BTreeMap::new();
    for (group_index, group) in deployment.instance_groups.iter().enumerate() {
        let path = root.key("instance_groups").index(group_index);
        reader.unique_names(
            &path.key("jobs"),
            "job",
            group.jobs.iter().map(|j| j.name.as_str()),
        );
        for (index, job) in group.jobs.iter().enumerate() {
            if deployment.release(&job.release).is_none() {
                reader.problem(
                    &path.key("jobs").index(index).key("release"),
                    format!("release {:?} is not in releases", job.release),
                );
            }
        }
        if deployment.stemcell(&group.stemcell).is_none() {
            reader.problem(
                &path.key("stemcell"),
                format!("stemcell {:?} is not in stemcells", group.stemcell),
            );
        }
        for (index, az) in group.azs.iter().enumerate() {
            if group.azs[..index].contains(az) {
                reader.problem(
                    &path.key("azs").index(index),
                    format!("duplicate az {az:?}"),
                );
            }
        }
        reader.unique_names(
            &path.key("networks"),
            "network",
            group.networks.iter().map(|n| n.name.as_str()),
        );
        check_defaults(reader, &path, group);
        for (index, network) in group.networks.iter().enumerate() {
            let network_path = path.key("networks").index(index).key("static_ips");
            let count = network.static_ip_count();
            if count > 0 && count != group.instances as u128 {
                reader.problem(
                    &network_path,
                    format!("{count} static IPs for {} instances", group.instances),
                );
            }
            for (entry_index, entry) in network.static_ip_entries.iter().enumerate() {
                for ip in entry.iter() {
                    let owner = format!("instance group {:?}", group.name);
                    match static_owners.get(&ip) {
                        Some(earlier) => reader.problem(
                            &network_path.index(entry_index),
                            format!("static IP {ip} is already used by {earlier}"),
                        ),
                        None => {
                            static_owners.insert(ip, owner);
                        }
                    }
                }
            }
        }
    }
}

/// With more than one network, exactly one must be the default for DNS and one for the gateway
/// (`instance_group_networks_parser.rb`).
fn check_defaults(reader: &mut Reader, path: &Path, group: &InstanceGroup) {
    if group.networks.len() < 2 {
        return;
    }
    for (what, noun) in [(DefaultFor::Dns, "dns"), (DefaultFor::Gateway, "gateway")] {
        let claims: Vec<usize> = group
            .networks
            .iter()
            .enumerate()
            .filter(|(_, network)| network.default.contains(&what))
            .map(|(index, _)| index)
            .collect();
        match claims.as_slice() {
            [] => reader.problem(
                &path.key("networks"),
                format!("with more than one network, one must have {noun} in its default"),
            ),
            [_] => {}
            [_, rest @ ..] => {
                for index in rest {
                    reader.problem(
                        &path.key("networks").index(*index).key("default"),
                        format!("only one network can be the default for {noun}"),
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
name: demo
director_uuid: ignored
releases:
- {name: app, version: 1.2, url: "file:///tmp/app.tgz", sha1: "sha256:abcd"}
- {name: tools, version: latest, url: releases/tools.tgz}
stemcells:
- {alias: default, os: ubuntu-jammy, version: "1.18"}
update:
  canaries: 1
  max_in_flight: 25%
  canary_watch_time: 1000-30000
  update_watch_time: 1000-30000
instance_groups:
- name: web
  instances: 2
  azs: [z1]
  vm_type: small
  stemcell: default
  persistent_disk: 1024
  networks:
  - {name: default, static_ips: [10.0.0.10 - 10.0.0.11], default: [dns, gateway]}
  - name: public
  jobs:
  - {name: web, release: app, properties: {port: 80}, consumes: {db: {from: db}}}
  update: {max_in_flight: 1}
- name: migrate
  lifecycle: errand
  instances: 0
  vm_type: small
  stemcell: default
  networks: [{name: default}]
  jobs: [{name: migrate, release: tools}]
properties: {global: true}
variables: [{name: x, type: password}]
"#;

    fn problems(text: &str) -> Vec<String> {
        Deployment::parse(text)
            .unwrap_err()
            .problems
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn a_good_manifest_parses() {
        let deployment = Deployment::parse(GOOD).unwrap();
        assert_eq!(deployment.name, "demo");
        assert_eq!(deployment.releases[0].version, "1.2");
        assert_eq!(
            deployment.releases[0].tarball.as_deref(),
            Some(FsPath::new("/tmp/app.tgz"))
        );
        assert_eq!(
            deployment.releases[1].tarball_path(FsPath::new("/deploy")),
            Some(PathBuf::from("/deploy/releases/tools.tgz"))
        );
        let web = deployment.instance_group("web").unwrap();
        assert_eq!(web.persistent_disk, PersistentDisk::Size { mb: 1024 });
        assert_eq!(
            web.networks[0].static_ips(),
            [
                "10.0.0.10".parse::<IpAddr>().unwrap(),
                "10.0.0.11".parse().unwrap()
            ]
        );
        assert_eq!(
            web.default_network(DefaultFor::Gateway).unwrap().name,
            "default"
        );
        assert_eq!(web.update.max_in_flight(2), 1);
        assert_eq!(web.update.canaries(2), 1);
        assert_eq!(web.jobs[0].properties.as_ref().unwrap()["port"], 80);
        let migrate = deployment.instance_group("migrate").unwrap();
        assert_eq!(migrate.lifecycle, Lifecycle::Errand);
        assert_eq!(migrate.update.max_in_flight(4), 1);
        assert_eq!(deployment.properties["global"], true);
    }

    #[test]
    fn unknown_unsupported_and_badly_typed_keys_name_their_paths() {
        let text = GOOD
            .replace(
                "  persistent_disk: 1024\n",
                "  persistent_disk: big\n  vm_extensions: [lb]\n",
            )
            .replace("name: migrate\n", "name: migrate\n  colour: blue\n")
            + "addons: []\n";
        assert_eq!(
            problems(&text),
            [
                "addons: not supported by the thin director",
                "instance_groups[0].vm_extensions: not supported by the thin director",
                "instance_groups[0].persistent_disk: expected an integer, found a string",
                "instance_groups[1].colour: unknown key",
            ]
        );
    }

    #[test]
    fn references_inside_the_manifest_are_checked() {
        let text = GOOD
            .replace("release: tools}", "release: toolz}")
            .replace(
                "  stemcell: default\n  networks: [",
                "  stemcell: bionic\n  networks: [",
            )
            .replace("- {name: tools,", "- {name: app,");
        assert_eq!(
            problems(&text),
            [
                "releases[1].name: duplicate release name \"app\"",
                "instance_groups[1].jobs[0].release: release \"toolz\" is not in releases",
                "instance_groups[1].stemcell: stemcell \"bionic\" is not in stemcells",
            ]
        );
    }

    #[test]
    fn static_ip_counts_and_defaults_are_checked() {
        let text = GOOD
            .replace("instances: 2", "instances: 3")
            .replace("  - name: public\n", "  - {name: public, default: [dns]}\n");
        assert_eq!(
            problems(&text),
            [
                "instance_groups[0].networks[1].default: only one network can be the default for dns",
                "instance_groups[0].networks[0].static_ips: 2 static IPs for 3 instances",
            ]
        );
        let text = GOOD.replace(", default: [dns, gateway]}", "}");
        assert_eq!(
            problems(&text),
            [
                "instance_groups[0].networks: with more than one network, one must have dns in its default",
                "instance_groups[0].networks: with more than one network, one must have gateway in its default",
            ]
        );
    }

    #[test]
    fn negative_instances_and_both_disk_kinds_are_refused() {
        let text = GOOD.replace("instances: 0", "instances: -1").replace(
            "  persistent_disk: 1024\n",
            "  persistent_disk: 1024\n  persistent_disk_type: big\n",
        );
        assert_eq!(
            problems(&text),
            [
                "instance_groups[0].persistent_disk_type: give either persistent_disk or persistent_disk_type, not both",
                "instance_groups[1].instances: must not be negative, found -1",
            ]
        );
    }

    #[test]
    fn remote_urls_and_bad_digests_are_refused() {
        let text = GOOD
            .replace("\"file:///tmp/app.tgz\"", "https://example.org/app.tgz")
            .replace("sha256:abcd", "sha256:ab-cd");
        assert_eq!(
            problems(&text),
            [
                "releases[0].url: \"https://example.org/app.tgz\" is not a local release tarball (give file:///path or a path)",
                "releases[0].sha1: unable to parse digest string. Digest and algorithm key can only contain alpha-numeric characters",
            ]
        );
    }
}
