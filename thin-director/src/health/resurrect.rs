//! A resurrection: the VMs of a deployment's missing instances deleted, their disks kept, and the
//! deployment converged from its recorded manifest, which gives those instances new VMs, their
//! disks and their jobs again. It is `deploy::recreate` for several instances at once (the same
//! steps: [`instance::delete_vm_keeping_disk`], then [`deploy::converge`]), and what the BOSH
//! director's scan-and-fix does for the instances the resurrector names
//! (`reference/director-cpi.md` §4.3).

use crate::deploy::director::Director;
use crate::deploy::{self, Summary, instance};
use crate::health::monitor::Batch;

/// Resurrects `batch`'s instances. Instances the state no longer records are skipped.
pub async fn resurrect(director: &Director, batch: &Batch) -> deploy::Result<Summary> {
    let deployment = &batch.deployment;
    let records = director
        .instances_of(deployment)
        .await
        .ok_or_else(|| deploy::Error::Plan(format!("deployment '{deployment}' does not exist")))?;
    let deletions = batch
        .instances
        .iter()
        .filter_map(|key| {
            records
                .iter()
                .find(|r| r.group == key.group && r.index == key.index && r.id == key.id)
                .cloned()
                .map(|record| (key.name(), record))
        })
        .map(|(name, mut record)| async move {
            let step = director.report.step("Deleting VM", &name);
            step.finish(instance::delete_vm_keeping_disk(director, deployment, &mut record).await)
        });
    futures_util::future::try_join_all(deletions).await?;
    deploy::converge(director, deployment).await
}
