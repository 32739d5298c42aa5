//! The package compile stage (`reference/director-cpi.md` §2.7): every package the deployment's
//! jobs run with, compiled for the stemcell on compilation VMs in dependency order,
//! `compilation.workers` at a time, each on a single-use VM; the result cached in the state under
//! the package's fingerprint, the stemcell and its dependencies, so the next deploy (or another
//! deployment) skips it. Packages of compiled releases are only put in the blobstore.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Mutex;

use serde_json::{Map, Value, json};

use crate::agent_client::AgentClient;
use crate::deploy::director::Director;
use crate::deploy::spec::{self, PackageRef};
use crate::deploy::vm::{self, VmRequest};
use crate::deploy::{Error, Result, Target};
use crate::manifest::cloud_config::NetworkKind;
use crate::release::{Package, Release, StemcellRef};
use crate::state::CompiledPackage;

/// The compiled packages of the deployment: release name → package name → package.
pub type Compiled = BTreeMap<String, BTreeMap<String, PackageRef>>;

/// Compiles (or finds) every package the jobs of `target` run with.
pub async fn compile_packages(
    director: &Director,
    target: &Target,
    taken_ips: &BTreeSet<IpAddr>,
) -> Result<Compiled> {
    let stemcell = &target.stemcell;
    let mut compiled = Compiled::new();
    let taken = Mutex::new(taken_ips.clone());
    for (release_name, release) in &target.releases {
        let needed = needed_packages(target, release_name, release);
        let mut done: BTreeMap<String, PackageRef> = BTreeMap::new();
        if release.is_compiled() {
            for package in &needed {
                done.insert(
                    package.name.clone(),
                    cached_or_upload(director, release, package, stemcell).await?,
                );
            }
            compiled.insert(release_name.clone(), done);
            continue;
        }
        // Dependency order, `workers` at a time: a package starts once its dependencies are done.
        let workers = usize::try_from(target.cloud.compilation.workers)
            .unwrap_or(1)
            .max(1);
        let mut pending: Vec<&Package> = release
            .compile_order()
            .into_iter()
            .filter(|package| needed.iter().any(|n| n.name == package.name))
            .collect();
        while !pending.is_empty() {
            let ready: Vec<&Package> = pending
                .iter()
                .copied()
                .filter(|package| {
                    package
                        .dependencies
                        .iter()
                        .all(|dep| done.contains_key(dep))
                })
                .take(workers)
                .collect();
            if ready.is_empty() {
                return Err(Error::Plan(format!(
                    "release {release_name}: packages {} wait on each other",
                    pending
                        .iter()
                        .map(|p| p.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
            pending.retain(|package| !ready.iter().any(|r| r.name == package.name));
            let results = futures_util::future::join_all(
                ready
                    .iter()
                    .map(|package| compile_one(director, target, release, package, &done, &taken)),
            )
            .await;
            for (package, result) in ready.iter().zip(results) {
                done.insert(package.name.clone(), result?);
            }
        }
        compiled.insert(release_name.clone(), done);
    }
    Ok(compiled)
}

/// The packages of `release` that jobs of the deployment run with, dependencies included.
fn needed_packages<'r>(
    target: &Target,
    release_name: &str,
    release: &'r Release,
) -> Vec<&'r Package> {
    let mut names = BTreeSet::new();
    let mut packages = Vec::new();
    for group in &target.deployment.instance_groups {
        for job in group.jobs.iter().filter(|job| job.release == release_name) {
            for package in release.job_packages(&job.name).unwrap_or_default() {
                if names.insert(package.name.clone()) {
                    packages.push(package);
                }
            }
        }
    }
    packages
}

/// The compiled package from the cache when its blob is still there.
async fn cached(
    director: &Director,
    release: &Release,
    package: &Package,
    stemcell: &StemcellRef,
) -> Result<(String, Option<PackageRef>)> {
    let key = release
        .compiled_package_key(&package.name, stemcell)
        .map(|key| key.to_string())
        .unwrap_or_else(|| format!("{}/{}", package.name, package.fingerprint));
    let entry = director
        .state
        .lock()
        .await
        .get()
        .compiled_packages
        .get(&key)
        .cloned();
    let hit = match entry {
        Some(entry) if director.blobs.exists(&entry.blobstore_id).await? => Some(PackageRef {
            version: package.version.clone(),
            sha1: entry.sha1,
            blobstore_id: entry.blobstore_id,
        }),
        _ => None,
    };
    Ok((key, hit))
}

async fn remember(director: &Director, key: String, package: &PackageRef) -> Result<()> {
    let entry = CompiledPackage {
        blobstore_id: package.blobstore_id.clone(),
        sha1: package.sha1.clone(),
    };
    director
        .state
        .lock()
        .await
        .update(|state| state.compiled_packages.insert(key, entry))?;
    Ok(())
}

/// A compiled release's package: put in the blobstore once.
async fn cached_or_upload(
    director: &Director,
    release: &Release,
    package: &Package,
    stemcell: &StemcellRef,
) -> Result<PackageRef> {
    let (key, hit) = cached(director, release, package, stemcell).await?;
    if let Some(hit) = hit {
        return Ok(hit);
    }
    let (blobstore_id, sha1) = director.blobs.put_file(&package.blob).await?;
    let package_ref = PackageRef {
        version: package.version.clone(),
        sha1,
        blobstore_id,
    };
    remember(director, key, &package_ref).await?;
    Ok(package_ref)
}

/// Compiles one source package on a VM of its own (or takes it from the cache).
async fn compile_one(
    director: &Director,
    target: &Target,
    release: &Release,
    package: &Package,
    done: &BTreeMap<String, PackageRef>,
    taken: &Mutex<BTreeSet<IpAddr>>,
) -> Result<PackageRef> {
    let (key, hit) = cached(director, release, package, &target.stemcell).await?;
    if let Some(hit) = hit {
        return Ok(hit);
    }
    let name = format!("compilation-{}/{}", package.name, package.version);
    let step = director.report.step("Compiling packages", &name);
    let result = compile_on_vm(director, target, package, done, taken).await;
    let package_ref = step.finish(result)?;
    remember(director, key, &package_ref).await?;
    Ok(package_ref)
}

async fn compile_on_vm(
    director: &Director,
    target: &Target,
    package: &Package,
    done: &BTreeMap<String, PackageRef>,
    taken: &Mutex<BTreeSet<IpAddr>>,
) -> Result<PackageRef> {
    let compilation = &target.cloud.compilation;
    let (source_id, source_sha1) = director.blobs.put_file(&package.blob).await?;
    let (networks, ip) = compilation_network(target, taken)?;
    let vm_type = target
        .cloud
        .vm_type(&compilation.vm_type)
        .map(|vm_type| vm_type.cloud_properties.clone())
        .unwrap_or_default();
    let az = compilation
        .az
        .as_deref()
        .and_then(|az| target.cloud.az(az))
        .map(|az| &az.cloud_properties);
    let name = format!("compilation-{}", package.name);
    let request = VmRequest {
        name: &name,
        stemcell_cid: &target.stemcell_cid,
        stemcell_api_version: target.stemcell_api_version,
        cloud_properties: vm::cloud_properties(&vm_type, az),
        networks,
        disk_cids: vec![],
        group_env: Map::new(),
        metadata: json!({
            "director": "thin-director",
            "deployment": target.deployment.name,
            "compiling": package.name,
        }),
    };
    let outcome = async {
        let new_vm = vm::create(director, &request, async |_| Ok(())).await?;
        let deps: Map<String, Value> = package
            .dependencies
            .iter()
            .filter_map(|dep| done.get(dep).map(|compiled| (dep, compiled)))
            .map(|(dep, compiled)| {
                (
                    dep.clone(),
                    json!({
                        "name": dep,
                        "version": compiled.version,
                        "sha1": compiled.sha1,
                        "blobstore_id": compiled.blobstore_id,
                    }),
                )
            })
            .collect();
        let result = AgentClient::new(&director.bus, &new_vm.agent_id)
            .compile_package(
                &source_id,
                &source_sha1,
                &package.name,
                &package.version,
                &Value::Object(deps),
            )
            .await;
        // Single-use VMs go whatever happened.
        let deleted = vm::delete(director, &new_vm.cid).await;
        let compiled = result.map_err(|source| Error::Agent {
            instance: name.clone(),
            source,
        })?;
        deleted?;
        Ok::<_, Error>(compiled)
    }
    .await;
    if let Some(ip) = ip {
        taken.lock().unwrap_or_else(|e| e.into_inner()).remove(&ip);
    }
    let compiled = outcome?;
    Ok(PackageRef {
        version: package.version.clone(),
        sha1: compiled.sha1,
        blobstore_id: compiled.blobstore_id,
    })
}

/// The compilation VM's network settings, with an address taken from the compilation network's
/// first subnet when it is manual.
fn compilation_network(
    target: &Target,
    taken: &Mutex<BTreeSet<IpAddr>>,
) -> Result<(Value, Option<IpAddr>)> {
    let name = &target.cloud.compilation.network;
    let network = target.cloud.network(name).ok_or_else(|| {
        Error::Plan(format!(
            "compilation network {name} is not in the cloud config"
        ))
    })?;
    let defaults = ["dns", "gateway", "addressable"];
    match &network.kind {
        NetworkKind::Dynamic {
            dns,
            cloud_properties,
        } => Ok((
            json!({name: spec::dynamic_network(dns, cloud_properties, &defaults)}),
            None,
        )),
        NetworkKind::Manual { subnets } => {
            let mut taken = taken.lock().unwrap_or_else(|e| e.into_inner());
            let az = target.cloud.compilation.az.as_deref();
            let (subnet, ip) = subnets
                .iter()
                .filter(|subnet| subnet.serves(az) || az.is_none())
                .find_map(|subnet| subnet.first_free(&taken).map(|ip| (subnet, ip)))
                .ok_or_else(|| {
                    Error::Plan(format!("compilation network {name} has no free address"))
                })?;
            taken.insert(ip);
            Ok((
                json!({name: spec::manual_network(subnet, ip, &defaults)}),
                Some(ip),
            ))
        }
    }
}
