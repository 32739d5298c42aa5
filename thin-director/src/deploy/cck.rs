//! `cck` (`bosh cck`, the director's `problem_scanner/vm_scan_stage.rb`): a scan of a deployment's
//! recorded instances for the problems the director can see, and with `--resolve` their repair.
//!
//! For each instance, in this order (the first problem found is the instance's):
//! - no VM recorded (a deploy stopped before making it): `missing_vm`;
//! - the CPI's `has_vm` says the VM is gone: `missing_vm`, "VM with cloud ID '<cid>' missing";
//! - the agent does not answer: `unresponsive_agent`. It first gets
//!   [`instance::RECONNECT_WAIT`] to reconnect to a freshly started director, then `get_state`
//!   gets [`STATE_TIMEOUT`] (10 s) and no retry, as the director's scan;
//! - the recorded persistent disk is not among the agent's `list_disk`: `mount_info_mismatch`.
//!
//! Every instance is scanned at once. Resolving recreates each affected instance as
//! `bosh cck`'s `recreate_vm` does: its VM is deleted (or forgotten, when the CPI says it is gone
//! already) keeping its disk, then the deployment converges once ([`deploy::converge`]), creating
//! the VMs, attaching the disks and applying the jobs again. An errand instance kept alive is
//! deleted instead: the next `run-errand` makes a new one.

use std::time::Duration;

use serde_json::{Value, json};

use agent::client;

use crate::agent_client::AgentClient;
use crate::cpi;
use crate::deploy::director::Director;
use crate::deploy::{self, Error, Result, instance, vm};
use crate::manifest::deployment::Lifecycle;
use crate::state;

/// `get_state`'s timeout in the scan (`vm_scan_stage.rb`), with no retry.
pub const STATE_TIMEOUT: Duration = Duration::from_secs(10);

/// A problem of one instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Its group.
    pub group: String,
    /// Its id.
    pub id: String,
    /// Its index.
    pub index: u32,
    /// What is wrong.
    pub kind: ProblemKind,
}

/// What is wrong with an instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProblemKind {
    /// The state has no VM for it.
    NoVm,
    /// The CPI says its VM does not exist.
    MissingVm {
        /// The VM.
        vm_cid: String,
    },
    /// Its agent does not answer.
    UnresponsiveAgent {
        /// The VM.
        vm_cid: String,
    },
    /// Its persistent disk is not mounted.
    MountInfoMismatch {
        /// The VM.
        vm_cid: String,
        /// The recorded disk.
        disk_cid: String,
        /// The disks the agent lists.
        mounted: Vec<String>,
    },
}

impl Problem {
    /// `<group>/<id> (<index>)`, as the bosh CLI names instances.
    pub fn instance(&self) -> String {
        format!("{}/{} ({})", self.group, self.id, self.index)
    }

    /// The problem's type, as the director names its problem handlers.
    pub fn type_name(&self) -> &'static str {
        match self.kind {
            ProblemKind::NoVm | ProblemKind::MissingVm { .. } => "missing_vm",
            ProblemKind::UnresponsiveAgent { .. } => "unresponsive_agent",
            ProblemKind::MountInfoMismatch { .. } => "mount_info_mismatch",
        }
    }

    /// What is wrong, in the director's words where it has some.
    pub fn description(&self) -> String {
        match &self.kind {
            ProblemKind::NoVm => "no VM is recorded for it".to_owned(),
            ProblemKind::MissingVm { vm_cid } => format!("VM with cloud ID '{vm_cid}' missing"),
            ProblemKind::UnresponsiveAgent { vm_cid } => {
                format!("VM with cloud ID '{vm_cid}' is not responding")
            }
            ProblemKind::MountInfoMismatch {
                vm_cid,
                disk_cid,
                mounted,
            } => {
                let mounted = if mounted.is_empty() {
                    "none".to_owned()
                } else {
                    mounted.join(", ")
                };
                format!(
                    "disk '{disk_cid}' should be mounted on VM '{vm_cid}', but its agent has {mounted}"
                )
            }
        }
    }

    /// The problem's line: `<instance>: <description>`.
    pub fn line(&self) -> String {
        format!("{}: {}", self.instance(), self.description())
    }

    /// The problem as one JSON object (`--json`).
    pub fn to_json(&self) -> Value {
        json!({
            "type": "problem",
            "problem": self.type_name(),
            "instance": self.instance(),
            "description": self.description(),
        })
    }
}

/// `N problems` (`1 problem`).
pub fn count_line(count: usize) -> String {
    if count == 1 {
        "1 problem".to_owned()
    } else {
        format!("{count} problems")
    }
}

/// Scans `deployment`, prints its problems and, with `resolve`, resolves them and scans again;
/// the problems that remain.
pub async fn cck(director: &Director, deployment: &str, resolve: bool) -> Result<Vec<Problem>> {
    let problems = scan(director, deployment).await?;
    print(director, &problems);
    if !resolve || problems.is_empty() {
        return Ok(problems);
    }
    self::resolve(director, deployment, &problems).await?;
    let remaining = scan(director, deployment).await?;
    print(director, &remaining);
    Ok(remaining)
}

/// Prints one line per problem, then their count.
pub fn print(director: &Director, problems: &[Problem]) {
    for problem in problems {
        director.report.item(&problem.line(), &problem.to_json());
    }
    director.report.item(
        &count_line(problems.len()),
        &json!({"type": "problems", "count": problems.len()}),
    );
}

/// Every instance's problem, in the state's order.
pub async fn scan(director: &Director, deployment: &str) -> Result<Vec<Problem>> {
    let records = director
        .instances_of(deployment)
        .await
        .ok_or_else(|| Error::Plan(format!("deployment '{deployment}' does not exist")))?;
    let errand_groups = errand_groups(director, deployment).await;
    let step = director.report.step("Scanning instances", deployment);
    let scans = records.iter().map(|record| {
        let is_errand = errand_groups.contains(&record.group);
        async move {
            let kind = scan_one(director, record, is_errand).await?;
            Ok::<_, Error>(kind.map(|kind| Problem {
                group: record.group.clone(),
                id: record.id.clone(),
                index: record.index,
                kind,
            }))
        }
    });
    let results: Result<Vec<Option<Problem>>> = futures_util::future::join_all(scans)
        .await
        .into_iter()
        .collect();
    Ok(step.finish(results)?.into_iter().flatten().collect())
}

/// Recreates every instance with a problem (see the module docs).
pub async fn resolve(director: &Director, deployment: &str, problems: &[Problem]) -> Result<()> {
    let errand_groups = errand_groups(director, deployment).await;
    let records = director.instances_of(deployment).await.unwrap_or_default();
    let mut converge = false;
    for problem in problems {
        let Some(mut record) = records
            .iter()
            .find(|r| r.group == problem.group && r.index == problem.index)
            .cloned()
        else {
            continue;
        };
        let step = director.report.step(
            "Resolving problems",
            &format!("{}: {}", problem.instance(), problem.type_name()),
        );
        let result = if errand_groups.contains(&record.group) {
            instance::delete(director, deployment, &record).await
        } else {
            converge = true;
            match &problem.kind {
                ProblemKind::NoVm => Ok(()),
                ProblemKind::MissingVm { .. } => forget_vm(director, deployment, &mut record).await,
                ProblemKind::UnresponsiveAgent { .. } | ProblemKind::MountInfoMismatch { .. } => {
                    instance::delete_vm_keeping_disk(director, deployment, &mut record).await
                }
            }
        };
        step.finish(result)?;
    }
    if converge {
        deploy::converge(director, deployment).await?;
    }
    Ok(())
}

/// The instance's problem, if it has one.
async fn scan_one(
    director: &Director,
    record: &state::Instance,
    is_errand: bool,
) -> Result<Option<ProblemKind>> {
    let Some(vm) = &record.vm else {
        // An errand instance has a VM only while it runs or is kept alive.
        return Ok((!is_errand).then_some(ProblemKind::NoVm));
    };
    if !director.cpi.has_vm(&vm.cid).await? {
        return Ok(Some(ProblemKind::MissingVm {
            vm_cid: vm.cid.clone(),
        }));
    }
    let agent = AgentClient::new(&director.bus, &vm.agent_id);
    let unresponsive = || {
        Some(ProblemKind::UnresponsiveAgent {
            vm_cid: vm.cid.clone(),
        })
    };
    if agent
        .wait_until_ready(instance::RECONNECT_WAIT)
        .await
        .is_err()
    {
        return Ok(unresponsive());
    }
    if client::call(
        &director.bus,
        &vm.agent_id,
        "get_state",
        vec![],
        STATE_TIMEOUT,
    )
    .await
    .is_err()
    {
        return Ok(unresponsive());
    }
    let Some(disk) = &record.disk else {
        return Ok(None);
    };
    let Ok(mounted) = agent.list_disk().await else {
        return Ok(unresponsive());
    };
    if mounted.contains(&disk.cid) {
        return Ok(None);
    }
    Ok(Some(ProblemKind::MountInfoMismatch {
        vm_cid: vm.cid.clone(),
        disk_cid: disk.cid.clone(),
        mounted,
    }))
}

/// Forgets a VM the CPI says is gone, keeping its disk for the VM that replaces it. The disk is
/// detached and the VM deleted anyway, in case the CPI still links them; `VMNotFound` from either
/// means there is nothing to undo.
async fn forget_vm(
    director: &Director,
    deployment: &str,
    record: &mut state::Instance,
) -> Result<()> {
    let Some(vm) = record.vm.clone() else {
        return Ok(());
    };
    if let Some(disk) = &record.disk {
        match director.cpi.detach_disk(&vm.cid, &disk.cid).await {
            Err(err) if err.kind() == Some(cpi::ErrorKind::VmNotFound) => {}
            other => other?,
        }
    }
    vm::delete(director, &vm.cid).await?;
    record.vm = None;
    record.applied_spec_sha1 = None;
    let saved = record.clone();
    director
        .state
        .lock()
        .await
        .update(|doc| instance::put(doc, deployment, saved))?;
    Ok(())
}

/// The errand groups of the deployment's last manifest.
async fn errand_groups(director: &Director, deployment: &str) -> Vec<String> {
    let recorded = director
        .state
        .lock()
        .await
        .get()
        .deployments
        .get(deployment)
        .map(|d| (d.manifest.clone(), d.cloud_config.clone()));
    let Some((manifest, cloud_config)) = recorded else {
        return Vec::new();
    };
    // The manifest was checked when it was deployed; one that no longer reads has no errands.
    crate::manifest::load(&manifest, &cloud_config)
        .map(|(deployment, _)| {
            deployment
                .instance_groups
                .into_iter()
                .filter(|group| group.lifecycle == Lifecycle::Errand)
                .map(|group| group.name)
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(kind: ProblemKind) -> Problem {
        Problem {
            group: "hello".into(),
            id: "3f2a".into(),
            index: 1,
            kind,
        }
    }

    #[test]
    fn problems_print_as_one_line_each_with_the_directors_type() {
        let cases = [
            (
                problem(ProblemKind::NoVm),
                "missing_vm",
                "hello/3f2a (1): no VM is recorded for it",
            ),
            (
                problem(ProblemKind::MissingVm {
                    vm_cid: "vm-1".into(),
                }),
                "missing_vm",
                "hello/3f2a (1): VM with cloud ID 'vm-1' missing",
            ),
            (
                problem(ProblemKind::UnresponsiveAgent {
                    vm_cid: "vm-1".into(),
                }),
                "unresponsive_agent",
                "hello/3f2a (1): VM with cloud ID 'vm-1' is not responding",
            ),
            (
                problem(ProblemKind::MountInfoMismatch {
                    vm_cid: "vm-1".into(),
                    disk_cid: "disk-1".into(),
                    mounted: vec![],
                }),
                "mount_info_mismatch",
                "hello/3f2a (1): disk 'disk-1' should be mounted on VM 'vm-1', but its agent has none",
            ),
            (
                problem(ProblemKind::MountInfoMismatch {
                    vm_cid: "vm-1".into(),
                    disk_cid: "disk-1".into(),
                    mounted: vec!["disk-0".into(), "disk-2".into()],
                }),
                "mount_info_mismatch",
                "hello/3f2a (1): disk 'disk-1' should be mounted on VM 'vm-1', but its agent has disk-0, disk-2",
            ),
        ];
        for (problem, type_name, line) in cases {
            assert_eq!(problem.type_name(), type_name);
            assert_eq!(problem.line(), line);
            let event = problem.to_json();
            assert_eq!(event["type"], "problem");
            assert_eq!(event["problem"], type_name);
            assert_eq!(event["instance"], "hello/3f2a (1)");
            assert_eq!(
                format!(
                    "{}: {}",
                    event["instance"].as_str().unwrap(),
                    event["description"].as_str().unwrap()
                ),
                line
            );
        }
    }

    #[test]
    fn the_count_line_says_how_many() {
        assert_eq!(count_line(0), "0 problems");
        assert_eq!(count_line(1), "1 problem");
        assert_eq!(count_line(3), "3 problems");
    }
}
