//! Deploying: a manifest and a cloud config turned into running instances, in the director's order
//! (`reference/director-cpi.md` §2.5–2.9; `update_deployment.rb`):
//!
//! 1. the manifest and cloud config are checked whole, releases read and verified, the stemcell
//!    uploaded once, instances placed (AZs and IPs, kept across deploys) and every instance's
//!    templates rendered — all before any VM is touched, so a bad manifest, a missing release or a
//!    template error changes nothing;
//! 2. instances the manifest no longer has are stopped and deleted with their disks;
//! 3. packages are compiled on compilation VMs ([`compile`]);
//! 4. missing VMs are created in parallel, at most `max_threads` at once ([`vm`], [`instance`]);
//! 5. instance groups are updated in manifest order (consecutive `serial: false` groups at the
//!    same time): AZ by AZ, canaries first (in the first AZ),
//!    then `max_in_flight` at a time; only instances whose apply spec or disk changed are touched;
//!    the first failure stops the deploy, naming the instance and its failing processes;
//! 6. `post-deploy` runs on every instance when anything changed.
//!
//! Every completed step is in the state ([`crate::state`]), so running the deploy again after a
//! failure or a crash converges from where it stopped.
//!
//! Errand groups (`lifecycle: errand`) are not deployed: [`errand`] places, creates, updates, runs
//! and deletes them on demand, reusing these steps; a deploy leaves alone the errand VMs
//! `run-errand --keep-alive` kept. Next to the deploy are the commands on a deployed deployment:
//! [`logs`], [`cck`] and [`inspect`].
//!
//! The stemcell is the one `upload-stemcell` gave the CPI ([`upload_stemcell`]); with the process
//! CPI and none uploaded, an empty image stands in (its VMs run on the host).

// A deploy's error is returned once, at the end of a failed step; boxing every cause to keep the
// `Result` small would buy nothing.
#![allow(clippy::result_large_err)]

pub mod blobs;
pub mod cck;
pub mod compile;
pub mod director;
pub mod errand;
pub mod inspect;
pub mod instance;
pub mod logs;
pub mod mbus;
pub mod report;
pub mod spec;
pub mod vm;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use futures_util::{StreamExt as _, TryStreamExt as _};
use serde_json::{Value, json};
use sha1::{Digest as _, Sha1};

use crate::deploy::director::Director;
use crate::deploy::instance::DiskWanted;
use crate::manifest::deployment::{InstanceGroup, Lifecycle, PersistentDisk};
use crate::manifest::placement::{self, Placement};
use crate::manifest::{CloudConfig, Deployment};
use crate::release::{Release, StemcellRef};
use crate::template::RenderedTemplates;
use crate::{agent_client, blobstore, cpi, manifest, nats, pki, release, state, template};

/// Why a deploy failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The manifest or cloud config is not good; every problem is listed.
    #[error("{0}")]
    Manifest(#[from] manifest::Error),
    /// A file could not be read or written.
    #[error("{}", .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A release named by the manifest has no tarball.
    #[error("release '{name}' has no tarball: give its `url` (a local path or file:// URL)")]
    MissingRelease {
        /// The release.
        name: String,
    },
    /// A release tarball is not good.
    #[error("release '{name}'")]
    Release {
        /// The release.
        name: String,
        /// The cause (boxed: it is large).
        #[source]
        source: Box<release::Error>,
    },
    /// A release tarball is not the release the manifest names.
    #[error("release tarball {} is {found}, but the manifest names {wanted}", .path.display())]
    ReleaseMismatch {
        /// The tarball.
        path: PathBuf,
        /// `<name>/<version>` in the tarball.
        found: String,
        /// `<name>/<version>` in the manifest.
        wanted: String,
    },
    /// Placing instances failed.
    #[error("placing instances")]
    Placement(#[from] placement::Error),
    /// Rendering an instance's templates failed.
    #[error("rendering templates of {instance}")]
    Template {
        /// `<group>/<index>`.
        instance: String,
        /// The cause.
        #[source]
        source: template::Error,
    },
    /// The plan cannot be carried out.
    #[error("{0}")]
    Plan(String),
    /// A CPI call failed.
    #[error(transparent)]
    Cpi(#[from] cpi::Error),
    /// An instance's logs could not be fetched.
    #[error("fetching the logs of {instance}")]
    Logs {
        /// `<group>/<id> (<index>)`.
        instance: String,
        /// The cause.
        #[source]
        source: logs::Error,
    },
    /// An agent failed or answered with an error.
    #[error("{instance}")]
    Agent {
        /// `<group>/<id>`.
        instance: String,
        /// The cause.
        #[source]
        source: agent_client::Error,
    },
    /// A new VM's agent never answered.
    #[error("{name}: VM {vm_cid} was deleted because its agent did not answer{}", if .log.is_empty() { String::new() } else { format!("; the end of its agent log:\n{}", .log) })]
    AgentUnresponsive {
        /// The instance or compilation VM.
        name: String,
        /// The VM.
        vm_cid: String,
        /// The cause.
        #[source]
        source: Box<agent_client::Error>,
        /// The end of the agent's log, when the director can read it.
        log: String,
    },
    /// A stemcell tarball is not good.
    #[error("reading the stemcell")]
    Stemcell(#[source] crate::stemcell::Error),
    /// The state could not be read or written.
    #[error(transparent)]
    State(#[from] state::store::Error),
    /// The NATS server failed.
    #[error(transparent)]
    Nats(#[from] nats::Error),
    /// The blobstore failed.
    #[error(transparent)]
    Blobstore(#[from] blobstore::Error),
    /// The external DAV blobstore failed.
    #[error("the external blobstore")]
    Dav(#[from] crate::dav_client::Error),
    /// A certificate could not be made.
    #[error(transparent)]
    Pki(#[from] pki::Error),
    /// A listener could not be bound.
    #[error("listening for {what}")]
    Listen {
        /// What.
        what: &'static str,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The director could not connect to NATS.
    #[error("connecting to NATS at {url}")]
    Bus {
        /// The URL.
        url: String,
        /// The cause.
        #[source]
        source: agent::client::Error,
    },
    /// The director config names other services than the agents of the state were given.
    #[error(
        "the agents of this state were given {given}, but this director would use {now}: give it the director config they were deployed with"
    )]
    ServicesChanged {
        /// What the agents were given.
        given: String,
        /// What this director would use.
        now: String,
    },
    /// The director's TLS configuration could not be built.
    #[error("the director's TLS configuration: {0}")]
    Tls(String),
}

/// `pub type Result<T>` of this module.
pub type Result<T> = std::result::Result<T, Error>;

/// What the deploy works from: the checked manifest and cloud config, the releases, the stemcell.
#[derive(Debug)]
pub struct Target {
    /// The manifest.
    pub deployment: Deployment,
    /// The cloud config.
    pub cloud: CloudConfig,
    /// The releases by name.
    pub releases: BTreeMap<String, Release>,
    /// The stemcell.
    pub stemcell: StemcellRef,
    /// Its cid.
    pub stemcell_cid: String,
    /// Its api version.
    pub stemcell_api_version: Option<u32>,
}

/// An instance as planned.
#[derive(Debug, Clone)]
pub struct Planned {
    /// Its group's position in the manifest.
    pub group_index: usize,
    /// Its group's name.
    pub group_name: String,
    /// Its placement.
    pub placement: Placement,
    /// Its id.
    pub id: String,
    /// Whether it is its group's bootstrap instance (index 0).
    pub bootstrap: bool,
    /// Its network settings.
    pub networks: Value,
    /// Its persistent disk.
    pub disk: Option<DiskWanted>,
}

impl Planned {
    /// Its index in its group.
    pub fn index(&self) -> u32 {
        u32::try_from(self.placement.index).unwrap_or(u32::MAX)
    }

    /// `<group>/<id> (<index>)`, as the bosh CLI names instances.
    pub fn name(&self) -> String {
        format!("{}/{} ({})", self.group_name, self.id, self.placement.index)
    }

    /// Its IPs by network.
    pub fn ips(&self) -> BTreeMap<String, String> {
        self.placement
            .networks
            .iter()
            .filter_map(|n| n.address.ip().map(|ip| (n.network.clone(), ip.to_string())))
            .collect()
    }

    /// Its group.
    pub fn group<'t>(&self, target: &'t Target) -> &'t InstanceGroup {
        &target.deployment.instance_groups[self.group_index]
    }
}

/// What a deploy did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// Instances created.
    pub created: usize,
    /// Instances updated.
    pub updated: usize,
    /// Instances deleted.
    pub deleted: usize,
    /// Packages compiled or found compiled.
    pub packages: usize,
}

/// Deploys `manifest` with `cloud_config` (both paths of YAML files).
pub async fn deploy(director: &Director, manifest: &Path, cloud_config: &Path) -> Result<Summary> {
    let read = |path: &Path| {
        std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.to_owned(),
            source,
        })
    };
    let manifest_dir =
        std::path::absolute(manifest.parent().unwrap_or(Path::new("."))).map_err(|source| {
            Error::Io {
                path: manifest.to_owned(),
                source,
            }
        })?;
    deploy_texts(
        director,
        &read(manifest)?,
        &read(cloud_config)?,
        &manifest_dir,
    )
    .await
}

/// Deploys again what the last deploy of `deployment` asked for (after `recreate` deleted a VM, or
/// when resurrecting one).
pub async fn converge(director: &Director, deployment: &str) -> Result<Summary> {
    let recorded = director
        .state
        .lock()
        .await
        .get()
        .deployments
        .get(deployment)
        .cloned()
        .ok_or_else(|| Error::Plan(format!("deployment '{deployment}' does not exist")))?;
    deploy_texts(
        director,
        &recorded.manifest,
        &recorded.cloud_config,
        &recorded.manifest_dir,
    )
    .await
}

/// The target of the last deploy of `deployment`, read again from the state: its manifest and
/// cloud config checked, its releases read, its stemcell's cid (for `run-errand`).
pub async fn recorded_target(director: &Director, deployment: &str) -> Result<Target> {
    let recorded = director
        .state
        .lock()
        .await
        .get()
        .deployments
        .get(deployment)
        .cloned()
        .ok_or_else(|| Error::Plan(format!("deployment '{deployment}' does not exist")))?;
    let (deployment, cloud) = manifest::load(&recorded.manifest, &recorded.cloud_config)?;
    let releases = load_releases(director, &deployment, &recorded.manifest_dir).await?;
    let (stemcell, stemcell_cid, stemcell_api_version) =
        stemcell_for(director, &deployment).await?;
    Ok(Target {
        deployment,
        cloud,
        releases,
        stemcell,
        stemcell_cid,
        stemcell_api_version,
    })
}

/// Deletes the VM of instance `instance` (`<group>/<index>` or `<group>/<id>`) of `deployment`,
/// keeping its disk, and converges: the instance gets a new VM, its disk and its jobs again
/// (`bosh recreate`).
pub async fn recreate(director: &Director, deployment: &str, instance: &str) -> Result<Summary> {
    let (group, which) = instance.split_once('/').ok_or_else(|| {
        Error::Plan(format!(
            "instance '{instance}' is not <group>/<index or id>"
        ))
    })?;
    let records = director
        .instances_of(deployment)
        .await
        .ok_or_else(|| Error::Plan(format!("deployment '{deployment}' does not exist")))?;
    let mut record = records
        .into_iter()
        .find(|r| r.group == group && (r.id == which || r.index.to_string() == which))
        .ok_or_else(|| {
            Error::Plan(format!(
                "deployment '{deployment}' has no instance {instance}"
            ))
        })?;
    let name = format!("{}/{} ({})", record.group, record.id, record.index);
    let step = director.report.step("Deleting VM", &name);
    step.finish(instance::delete_vm_keeping_disk(director, deployment, &mut record).await)?;
    converge(director, deployment).await
}

/// Deploys a manifest and cloud config given as text; relative release URLs are read from
/// `manifest_dir`.
pub async fn deploy_texts(
    director: &Director,
    manifest_text: &str,
    cloud_config_text: &str,
    manifest_dir: &Path,
) -> Result<Summary> {
    let started = Instant::now();
    let (deployment, cloud) = manifest::load(manifest_text, cloud_config_text)?;
    let releases = load_releases(director, &deployment, manifest_dir).await?;
    // What was asked is recorded before anything changes, so that a recreate or a resurrection
    // converges to it.
    let (name, manifest_text, cloud_text, dir) = (
        deployment.name.clone(),
        manifest_text.to_owned(),
        cloud_config_text.to_owned(),
        manifest_dir.to_owned(),
    );
    director.state.lock().await.update(|doc| {
        let recorded = doc.deployments.entry(name).or_default();
        recorded.manifest = manifest_text;
        recorded.cloud_config = cloud_text;
        recorded.manifest_dir = dir;
    })?;
    let (stemcell, stemcell_cid, stemcell_api_version) =
        stemcell_for(director, &deployment).await?;
    let target = Target {
        deployment,
        cloud,
        releases,
        stemcell,
        stemcell_cid,
        stemcell_api_version,
    };
    let planned = plan(director, &target).await?;
    let rendered = render_all(director, &target, &planned).await?;
    let mut summary = Summary {
        deleted: delete_obsolete(director, &target, &planned).await?,
        ..Summary::default()
    };
    let taken: BTreeSet<IpAddr> = planned
        .iter()
        .flat_map(|p| p.placement.networks.iter().filter_map(|n| n.address.ip()))
        .collect();
    let compiled = compile::compile_packages(director, &target, &taken).await?;
    summary.packages = compiled.values().map(BTreeMap::len).sum();
    summary.created = create_missing_vms(director, &target, &planned).await?;
    summary.updated = update_groups(director, &target, &planned, &rendered, &compiled).await?;
    if summary.created + summary.updated + summary.deleted > 0 {
        post_deploy(director, &target.deployment.name).await?;
    }
    director.report.line(&format!(
        "Deployed '{}': {} created, {} updated, {} deleted, {} packages ({})",
        target.deployment.name,
        summary.created,
        summary.updated,
        summary.deleted,
        summary.packages,
        report::hms(started.elapsed())
    ));
    Ok(summary)
}

/// Reads every release of the manifest, extracting each tarball once under the state dir.
async fn load_releases(
    director: &Director,
    deployment: &Deployment,
    manifest_dir: &Path,
) -> Result<BTreeMap<String, Release>> {
    let mut releases = BTreeMap::new();
    for wanted in &deployment.releases {
        let tarball = wanted
            .tarball_path(manifest_dir)
            .ok_or_else(|| Error::MissingRelease {
                name: wanted.name.clone(),
            })?;
        let step = director.report.step(
            "Reading releases",
            &format!("{}/{}", wanted.name, wanted.version),
        );
        let dir = director
            .config
            .state_dir
            .join("releases")
            .join(format!("{}-{}", wanted.name, wanted.version));
        let release_error = |source| Error::Release {
            name: wanted.name.clone(),
            source: Box::new(source),
        };
        let loaded = if dir.exists() {
            Release::from_dir(&dir).map_err(release_error)
        } else {
            std::fs::create_dir_all(dir.parent().unwrap_or(&dir)).map_err(|source| Error::Io {
                path: dir.clone(),
                source,
            })?;
            let (tarball, dir) = (tarball.clone(), dir.clone());
            tokio::task::spawn_blocking(move || Release::extract(&tarball, &dir))
                .await
                .map_err(|err| Error::Plan(err.to_string()))?
                .map_err(release_error)
        };
        let release = step.finish(loaded)?;
        if release.name() != wanted.name || release.version() != wanted.version {
            return Err(Error::ReleaseMismatch {
                path: tarball,
                found: format!("{}/{}", release.name(), release.version()),
                wanted: format!("{}/{}", wanted.name, wanted.version),
            });
        }
        releases.insert(wanted.name.clone(), release);
    }
    Ok(releases)
}

/// Uploads the stemcell the groups use, once per director.
async fn stemcell_for(
    director: &Director,
    deployment: &Deployment,
) -> Result<(StemcellRef, String, Option<u32>)> {
    let aliases: BTreeSet<&str> = deployment
        .instance_groups
        .iter()
        .map(|group| group.stemcell.as_str())
        .collect();
    if aliases.len() > 1 {
        return Err(Error::Plan(format!(
            "the thin director deploys one stemcell per deployment; the groups use {}",
            aliases.into_iter().collect::<Vec<_>>().join(", ")
        )));
    }
    let alias = aliases.into_iter().next().unwrap_or_default();
    let stemcell = deployment
        .stemcell(alias)
        .or_else(|| deployment.stemcells.first())
        .ok_or_else(|| Error::Plan("the manifest names no stemcell".to_owned()))?;
    let reference = StemcellRef {
        os: stemcell.os.clone(),
        version: stemcell.version.clone(),
    };
    let key = format!("{}/{}", reference.os, reference.version);
    if let Some(known) = director.state.lock().await.get().stemcells.get(&key) {
        return Ok((reference, known.cid.clone(), known.api_version));
    }
    // The process CPI's VMs run on the host: it needs no image, and gets an empty one. Any other
    // CPI needs the stemcell uploaded first.
    if !matches!(director.config.cpi, director::CpiChoice::Process { .. }) {
        return Err(Error::Plan(format!(
            "stemcell {key} is not uploaded: run `thin-director upload-stemcell <stemcell.tgz>`"
        )));
    }
    let image_dir = director
        .config
        .state_dir
        .join("stemcells")
        .join(format!("{}-{}", reference.os, reference.version));
    let image = image_dir.join("image");
    std::fs::create_dir_all(&image_dir)
        .and_then(|()| std::fs::write(&image, b""))
        .map_err(|source| Error::Io {
            path: image.clone(),
            source,
        })?;
    let cid = create_stemcell(director, &key, &image, &json!({}), Some(2)).await?;
    Ok((reference, cid, Some(2)))
}

/// Uploads the stemcell `tarball` (`bosh upload-stemcell`): its image to the CPI, once per
/// operating system and version. Returns `<os>/<version>`.
pub async fn upload_stemcell(director: &Director, tarball: &Path) -> Result<String> {
    let staging = director
        .config
        .state_dir
        .join("stemcells")
        .join(format!(".upload-{}", uuid::Uuid::new_v4()));
    let image = staging.join("image");
    let (tarball_owned, image_owned) = (tarball.to_owned(), image.clone());
    let read =
        tokio::task::spawn_blocking(move || crate::stemcell::read(&tarball_owned, &image_owned))
            .await
            .map_err(|err| Error::Plan(err.to_string()))?;
    let manifest = match read {
        Ok(manifest) => manifest,
        Err(err) => {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(Error::Stemcell(err));
        }
    };
    let key = format!("{}/{}", manifest.operating_system, manifest.version);
    if director
        .state
        .lock()
        .await
        .get()
        .stemcells
        .contains_key(&key)
    {
        let _ = std::fs::remove_dir_all(&staging);
        director
            .report
            .line(&format!("Stemcell {key} is uploaded already"));
        return Ok(key);
    }
    let dir = director.config.state_dir.join("stemcells").join(format!(
        "{}-{}",
        manifest.operating_system, manifest.version
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::rename(&staging, &dir).map_err(|source| Error::Io {
        path: dir.clone(),
        source,
    })?;
    create_stemcell(
        director,
        &key,
        &dir.join("image"),
        &manifest.cloud_properties,
        manifest.api_version,
    )
    .await?;
    Ok(key)
}

/// `create_stemcell` and its record in the state.
async fn create_stemcell(
    director: &Director,
    key: &str,
    image: &Path,
    cloud_properties: &Value,
    api_version: Option<u32>,
) -> Result<String> {
    let cloud_properties = if cloud_properties.is_null() {
        json!({})
    } else {
        cloud_properties.clone()
    };
    let step = director.report.step("Uploading stemcell", key);
    let cid = step.finish(director.cpi.create_stemcell(image, &cloud_properties).await)?;
    let record = state::Stemcell {
        cid: cid.clone(),
        api_version,
    };
    let key = key.to_owned();
    director
        .state
        .lock()
        .await
        .update(|doc| doc.stemcells.insert(key, record))?;
    Ok(cid)
}

/// Places every instance of every service group, keeping ids and addresses from the state.
async fn plan(director: &Director, target: &Target) -> Result<Vec<Planned>> {
    plan_groups(director, target, |group| {
        group.lifecycle == Lifecycle::Service
    })
    .await
}

/// Places the instances of errand group `name` on demand (`run-errand`); a deploy never does.
/// Every service group is placed with it, in manifest order as a deploy places them, so that the
/// errand's addresses are those a deploy leaves free. Returns the errand's instances and every
/// address placed (for compilation VMs to avoid).
pub async fn plan_errand(
    director: &Director,
    target: &Target,
    name: &str,
) -> Result<(Vec<Planned>, BTreeSet<IpAddr>)> {
    let is_errand =
        |group: &InstanceGroup| group.name == name && group.lifecycle == Lifecycle::Errand;
    if !target.deployment.instance_groups.iter().any(is_errand) {
        return Err(Error::Plan(format!(
            "deployment '{}' has no errand instance group '{name}'",
            target.deployment.name
        )));
    }
    let planned = plan_groups(director, target, |group| {
        group.lifecycle == Lifecycle::Service || is_errand(group)
    })
    .await?;
    let taken = planned
        .iter()
        .flat_map(|p| p.placement.networks.iter().filter_map(|n| n.address.ip()))
        .collect();
    let errand = planned
        .into_iter()
        .filter(|p| p.group_name == name)
        .collect();
    Ok((errand, taken))
}

/// Places every instance of the groups `wanted` picks, keeping ids and addresses from the state.
async fn plan_groups(
    director: &Director,
    target: &Target,
    wanted: impl Fn(&InstanceGroup) -> bool,
) -> Result<Vec<Planned>> {
    let recorded = director
        .instances_of(&target.deployment.name)
        .await
        .unwrap_or_default();
    let mut in_use: BTreeSet<IpAddr> = BTreeSet::new();
    let mut planned = Vec::new();
    for (group_index, group) in target.deployment.instance_groups.iter().enumerate() {
        if !wanted(group) {
            continue;
        }
        let previous: Vec<BTreeMap<String, IpAddr>> = (0..group.instances)
            .map(|index| {
                recorded
                    .iter()
                    .find(|i| i.group == group.name && i.index as usize == index)
                    .map(|i| {
                        i.ips
                            .iter()
                            .filter_map(|(n, ip)| ip.parse().ok().map(|ip| (n.clone(), ip)))
                            .collect()
                    })
                    .unwrap_or_default()
            })
            .collect();
        // Addresses other groups hold (recorded or planned) are not this group's to take.
        let others: BTreeSet<IpAddr> = recorded
            .iter()
            .filter(|i| i.group != group.name)
            .flat_map(|i| i.ips.values().filter_map(|ip| ip.parse().ok()))
            .chain(in_use.iter().copied())
            .collect();
        let placements = placement::place(group, &target.cloud, &previous, &others)?;
        let disk = match &group.persistent_disk {
            PersistentDisk::None => None,
            PersistentDisk::Size { mb } => Some(DiskWanted {
                size_mb: *mb,
                cloud_properties: json!({}),
            }),
            PersistentDisk::Type(name) => target.cloud.disk_type(name).map(|t| DiskWanted {
                size_mb: t.disk_size_mb,
                cloud_properties: Value::Object(t.cloud_properties.clone()),
            }),
        };
        for placement in placements {
            in_use.extend(placement.networks.iter().filter_map(|n| n.address.ip()));
            let id = recorded
                .iter()
                .find(|i| i.group == group.name && i.index as usize == placement.index)
                .map(|i| i.id.clone())
                .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
            let mut instance = Planned {
                group_index,
                group_name: group.name.clone(),
                bootstrap: placement.index == 0,
                placement,
                id,
                networks: Value::Null,
                disk: disk.clone(),
            };
            instance.networks =
                spec::network_settings(&spec_instance(&instance, group), &target.cloud);
            planned.push(instance);
        }
    }
    Ok(planned)
}

fn spec_instance<'a>(planned: &'a Planned, group: &'a InstanceGroup) -> spec::Instance<'a> {
    spec::Instance {
        group,
        placement: &planned.placement,
        id: &planned.id,
        bootstrap: planned.bootstrap,
        disk_mb: planned.disk.as_ref().map_or(0, |d| d.size_mb),
    }
}

/// How many instances are rendered at once (each is one `ruby` process per job).
fn render_parallelism() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

/// Renders every planned instance's templates (all before any VM is touched), a few instances at
/// once; the results are in `planned`'s order.
async fn render_all(
    director: &Director,
    target: &Target,
    planned: &[Planned],
) -> Result<Vec<RenderedTemplates>> {
    // Each job's sources are read once, whatever the number of instances.
    let mut jobs_cache: BTreeMap<(String, String), template::Job> = BTreeMap::new();
    let mut inputs = Vec::with_capacity(planned.len());
    for instance in planned {
        let group = instance.group(target);
        let name = format!("{}/{}", group.name, instance.placement.index);
        let mut jobs = Vec::new();
        for job in &group.jobs {
            let key = (job.release.clone(), job.name.clone());
            if !jobs_cache.contains_key(&key) {
                let release = &target.releases[&job.release];
                let release_job = release.job(&job.name).ok_or_else(|| {
                    Error::Plan(format!(
                        "instance_groups {}: job '{}' is not in release '{}'",
                        group.name, job.name, job.release
                    ))
                })?;
                let loaded = template::Job::from_dir(release_job.spec.clone(), &release_job.dir)
                    .map_err(|source| Error::Template {
                        instance: name.clone(),
                        source,
                    })?;
                jobs_cache.insert(key.clone(), loaded);
            }
            let properties = job
                .properties
                .clone()
                .map(Value::Object)
                .unwrap_or_else(|| {
                    if group.properties.is_empty() {
                        Value::Object(target.deployment.properties.clone())
                    } else {
                        Value::Object(group.properties.clone())
                    }
                });
            jobs.push((key, properties));
        }
        let spec = spec::template_spec(
            &spec_instance(instance, group),
            &target.deployment,
            &instance.networks,
        );
        inputs.push((name, jobs, spec));
    }
    let jobs_cache = &jobs_cache;
    futures_util::stream::iter(inputs)
        .map(|(name, jobs, spec)| async move {
            let pairs: Vec<(&template::Job, &Value)> = jobs
                .iter()
                .map(|(key, properties)| (&jobs_cache[key], properties))
                .collect();
            let step = director.report.step("Rendering templates", &name);
            let result = director
                .renderer
                .render_instance(&pairs, &spec)
                .await
                .map_err(|source| Error::Template {
                    instance: name.clone(),
                    source,
                });
            step.finish(result)
        })
        .buffered(render_parallelism())
        .try_collect()
        .await
}

/// Deletes the recorded instances the plan does not have.
async fn delete_obsolete(
    director: &Director,
    target: &Target,
    planned: &[Planned],
) -> Result<usize> {
    let recorded = director
        .instances_of(&target.deployment.name)
        .await
        .unwrap_or_default();
    // Errand instances a `run-errand --keep-alive` left running are the errand's to delete, as
    // long as the manifest still has their errand group.
    let errand_groups: BTreeSet<&str> = target
        .deployment
        .instance_groups
        .iter()
        .filter(|group| group.lifecycle == Lifecycle::Errand)
        .map(|group| group.name.as_str())
        .collect();
    let obsolete: Vec<&state::Instance> = recorded
        .iter()
        .filter(|i| {
            !errand_groups.contains(i.group.as_str())
                && !planned
                    .iter()
                    .any(|p| p.group_name == i.group && p.index() == i.index)
        })
        .collect();
    for instance in &obsolete {
        let step = director.report.step(
            "Deleting unneeded instances",
            &format!("{}/{} ({})", instance.group, instance.id, instance.index),
        );
        step.finish(instance::delete(director, &target.deployment.name, instance).await)?;
    }
    Ok(obsolete.len())
}

/// Creates the VMs of planned instances that have none, `max_threads` at once.
async fn create_missing_vms(
    director: &Director,
    target: &Target,
    planned: &[Planned],
) -> Result<usize> {
    let mut records = Vec::new();
    for instance in planned {
        records.push(instance::record(director, &target.deployment.name, instance).await?);
    }
    let missing: Vec<(&Planned, state::Instance)> = planned
        .iter()
        .zip(records)
        .filter(|(_, record)| record.vm.is_none())
        .collect();
    let count = missing.len();
    futures_util::stream::iter(missing.into_iter().map(Ok::<_, Error>))
        .try_for_each_concurrent(
            director.config.max_threads.max(1),
            |(planned, mut record)| async move {
                let step = director
                    .report
                    .step("Creating missing vms", &planned.name());
                step.finish(instance::ensure_vm(director, target, planned, &mut record).await)
                    .map(drop)
            },
        )
        .await?;
    Ok(count)
}

/// Updates every group in manifest order (see the module docs); the number of instances updated.
async fn update_groups(
    director: &Director,
    target: &Target,
    planned: &[Planned],
    rendered: &[RenderedTemplates],
    compiled: &compile::Compiled,
) -> Result<usize> {
    // Consecutive groups with `serial: false` are updated at the same time; any other group waits
    // for the groups before it (`multi_instance_group_updater.rb`).
    let serial: Vec<bool> = target
        .deployment
        .instance_groups
        .iter()
        .map(|group| group.update.serial)
        .collect();
    let mut updated = 0;
    for run in update_runs(&serial) {
        let counts = futures_util::future::try_join_all(run.map(|group_index| {
            update_group(director, target, planned, rendered, compiled, group_index)
        }))
        .await?;
        updated += counts.iter().sum::<usize>();
    }
    Ok(updated)
}

/// The groups (by their `serial` flags, in manifest order) as runs updated one after another: a
/// serial group alone, consecutive non-serial groups together.
fn update_runs(serial: &[bool]) -> Vec<std::ops::Range<usize>> {
    let mut runs = Vec::new();
    let mut start = 0;
    while start < serial.len() {
        let end = if serial[start] {
            start + 1
        } else {
            (start..serial.len())
                .find(|i| serial[*i])
                .unwrap_or(serial.len())
        };
        runs.push(start..end);
        start = end;
    }
    runs
}

/// Updates the instances of group `group_index` that changed (see the module docs).
async fn update_group(
    director: &Director,
    target: &Target,
    planned: &[Planned],
    rendered: &[RenderedTemplates],
    compiled: &compile::Compiled,
    group_index: usize,
) -> Result<usize> {
    let group = &target.deployment.instance_groups[group_index];
    let mut updated = 0;
    let members: Vec<(&Planned, &RenderedTemplates)> = planned
        .iter()
        .zip(rendered)
        .filter(|(p, _)| p.group_index == group_index)
        .collect();
    if members.is_empty() {
        return Ok(0);
    }
    let (jobs, packages) = group_blobs(director, target, group, compiled).await?;
    // The instances to update, with their apply specs, AZ by AZ in first-seen order.
    let mut work: Vec<(Option<String>, &Planned, Value, String, state::Instance)> = Vec::new();
    for (instance, templates) in &members {
        let record = instance::record(director, &target.deployment.name, instance).await?;
        let mut apply = spec::apply_spec(
            &spec_instance(instance, group),
            &target.deployment,
            &instance.networks,
            &jobs,
            &packages,
            templates,
            "",
        );
        let digest = hex(&Sha1::digest(apply.to_string().as_bytes()));
        if !instance::needs_update(&record, &digest, instance.disk.as_ref()) {
            continue;
        }
        let (blob, _) = director.blobs.put_bytes(&templates.archive).await?;
        apply["rendered_templates_archive"]["blobstore_id"] = Value::from(blob);
        work.push((
            instance.placement.az.clone(),
            instance,
            apply,
            digest,
            record,
        ));
    }
    if work.is_empty() {
        return Ok(0);
    }
    let mut azs: Vec<Option<String>> = Vec::new();
    for (az, ..) in &work {
        if !azs.contains(az) {
            azs.push(az.clone());
        }
    }
    let update = &group.update;
    let total = members.len();
    let canaries = update.canaries(total);
    let max_in_flight = update.max_in_flight(total).max(1);
    let canary_schedule = update.canary_watch_time.schedule();
    let update_schedule = update.update_watch_time.schedule();
    let mut first_az = true;
    let mut items = work;
    for az in azs {
        let (this_az, rest): (Vec<_>, Vec<_>) = items.into_iter().partition(|item| item.0 == az);
        items = rest;
        let mut batch = this_az;
        if first_az && canaries > 0 {
            let tail = batch.split_off(canaries.min(batch.len()));
            updated += run_batch(director, target, batch, canaries, &canary_schedule, true).await?;
            batch = tail;
        }
        first_az = false;
        updated += run_batch(
            director,
            target,
            batch,
            max_in_flight,
            &update_schedule,
            false,
        )
        .await?;
    }
    Ok(updated)
}

type WorkItem<'p> = (Option<String>, &'p Planned, Value, String, state::Instance);

/// Updates `batch`, `parallel` at once, stopping at the first failure.
async fn run_batch(
    director: &Director,
    target: &Target,
    batch: Vec<WorkItem<'_>>,
    parallel: usize,
    schedule: &[Duration],
    canary: bool,
) -> Result<usize> {
    let count = batch.len();
    futures_util::stream::iter(batch.into_iter().map(Ok::<_, Error>))
        .try_for_each_concurrent(
            parallel.max(1),
            |(_, planned, apply, digest, mut record)| async move {
                let label = if canary {
                    format!("{} (canary)", planned.name())
                } else {
                    planned.name()
                };
                let step = director
                    .report
                    .step(&format!("Updating instance {}", planned.group_name), &label);
                let name = format!("{}/{}", planned.group_name, planned.id);
                step.finish(
                    instance::update(
                        director,
                        &target.deployment.name,
                        &mut record,
                        &apply,
                        &digest,
                        planned.disk.as_ref(),
                        schedule,
                        &name,
                    )
                    .await,
                )
            },
        )
        .await?;
    Ok(count)
}

/// The jobs (their tarballs put in the blobstore once) and compiled packages a group runs with.
async fn group_blobs(
    director: &Director,
    target: &Target,
    group: &InstanceGroup,
    compiled: &compile::Compiled,
) -> Result<(Vec<spec::JobRef>, BTreeMap<String, spec::PackageRef>)> {
    let mut jobs = Vec::new();
    let mut packages = BTreeMap::new();
    for job in &group.jobs {
        let release = &target.releases[&job.release];
        let Some(release_job) = release.job(&job.name) else {
            continue;
        };
        let key = format!("{}/{}/{}", job.release, job.name, release_job.fingerprint);
        let known = director
            .state
            .lock()
            .await
            .get()
            .job_blobs
            .get(&key)
            .cloned();
        let blob = match known {
            Some(blob) if director.blobs.exists(&blob.blobstore_id).await? => blob,
            _ => {
                let (blobstore_id, sha1) = director.blobs.put_file(&release_job.blob).await?;
                let blob = state::CompiledPackage { blobstore_id, sha1 };
                let saved = blob.clone();
                director
                    .state
                    .lock()
                    .await
                    .update(|doc| doc.job_blobs.insert(key, saved))?;
                blob
            }
        };
        jobs.push(spec::JobRef {
            name: job.name.clone(),
            version: release_job.version.clone(),
            sha1: blob.sha1,
            blobstore_id: blob.blobstore_id,
        });
        for package in release.job_packages(&job.name).unwrap_or_default() {
            if let Some(compiled) = compiled
                .get(&job.release)
                .and_then(|c| c.get(&package.name))
            {
                packages.insert(package.name.clone(), compiled.clone());
            }
        }
    }
    Ok((jobs, packages))
}

/// `post-deploy` on every instance of the deployment, at once.
async fn post_deploy(director: &Director, deployment: &str) -> Result<()> {
    let instances = director.instances_of(deployment).await.unwrap_or_default();
    let runs = instances.iter().filter_map(|instance| {
        let vm = instance.vm.as_ref()?;
        let name = format!("{}/{}", instance.group, instance.id);
        Some(async move {
            agent_client::AgentClient::new(&director.bus, &vm.agent_id)
                .run_script("post-deploy", json!({}))
                .await
                .map_err(|source| Error::Agent {
                    instance: name,
                    source,
                })
        })
    });
    let step = director.report.step("Running post-deploy", deployment);
    let results = futures_util::future::join_all(runs).await;
    step.finish(results.into_iter().collect::<Result<Vec<()>>>())
        .map(drop)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consecutive_non_serial_groups_run_together_and_serial_ones_alone() {
        assert_eq!(update_runs(&[true, true]), [0..1, 1..2]);
        assert_eq!(
            update_runs(&[false, false, true, false]),
            [0..2, 2..3, 3..4]
        );
        assert_eq!(update_runs(&[true, false, false]), [0..1, 1..3]);
        assert_eq!(update_runs(&[]), Vec::<std::ops::Range<usize>>::new());
    }
}
