//! The agent's bootstrap (`agent/bootstrap.go`, §5.1 of the reference): what the agent does to the VM
//! after loading its settings and before serving the bus.
//!
//! The platform does the work, one [`Step`] at a time in [`Step::ORDER`] (the reference's order;
//! see `platform::bootstrap`); this module fetches the IaaS SSH key from the settings sources,
//! runs each step on a blocking thread, and logs one line per step with its duration
//! (`bootstrap step done`, fields `step` and `elapsed_ms`), so the agent's own boot time can be
//! split by step. The first failing step aborts the start with an error naming it (the service
//! manager restarts the agent); every step is idempotent, so a restart picks up where it failed.
//!
//! The steps run in two phases ([`Phase`]): the first ends with networking, so the message bus
//! can connect while the disks and directories are set up in the second. The second ends with the
//! persistent disk (steps 22–24 of the reference: the last mounted disk checked against the known
//! disks and mounted again on `store/`, the disk associations checked), logged as step
//! `persistent_disk`, and the applied jobs' directories (step 25: `data/sys/log/<job>`,
//! `data/sys/run/<job>` and `data/<job>` made again when a new or wiped ephemeral disk lacks them),
//! logged as step `job_dirs`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use platform::bootstrap::{Input, Step};
use settings::model::{DiskAssociation, DiskSettings};

use crate::action::Context;

/// A part of [`Step::ORDER`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// From the start through networking: what the bus needs.
    UntilNetworking,
    /// Everything after networking.
    AfterNetworking,
}

impl Phase {
    /// The steps of this phase, in order.
    pub fn steps(self) -> &'static [Step] {
        let split = Step::ORDER
            .iter()
            .position(|step| *step == Step::Networking)
            .map_or(Step::ORDER.len(), |index| index + 1);
        match self {
            Phase::UntilNetworking => &Step::ORDER[..split],
            Phase::AfterNetworking => &Step::ORDER[split..],
        }
    }
}

/// Runs the steps of `phase`.
pub async fn run(context: Arc<Context>, phase: Phase) -> anyhow::Result<()> {
    let steps = phase.steps();
    let iaas_public_key = if steps.contains(&Step::SshKeys) {
        // Go fails the bootstrap when no source can be asked; the key is only an extra way in, so
        // we go on without it.
        match context.settings.chain().public_ssh_key().await {
            Ok(key) => key,
            Err(err) => {
                tracing::warn!(error = %settings::source::error_chain(&err), "fetching the IaaS SSH key");
                None
            }
        }
    } else {
        None
    };
    let started = Instant::now();
    tokio::task::spawn_blocking(move || {
        let settings = context.settings.settings();
        let input = Input {
            settings: &settings,
            iaas_public_key: iaas_public_key.as_deref(),
        };
        for step in steps {
            let step_started = Instant::now();
            context
                .platform
                .bootstrap(*step, &input)
                .with_context(|| format!("bootstrap step {}", step.name()))?;
            tracing::info!(
                step = step.name(),
                elapsed_ms = step_started.elapsed().as_millis() as u64,
                "bootstrap step done"
            );
        }
        if phase == Phase::AfterNetworking {
            let step_started = Instant::now();
            persistent_disk(&context).context("bootstrap step persistent_disk")?;
            tracing::info!(
                step = "persistent_disk",
                elapsed_ms = step_started.elapsed().as_millis() as u64,
                "bootstrap step done"
            );
            let step_started = Instant::now();
            let owner = context
                .platform
                .installed_file_owner()
                .context("bootstrap step job_dirs")?;
            let owner: &dyn jobs::install::owner::Owner = match &owner {
                Some(owner) => owner,
                None => &jobs::install::owner::KeepOwners,
            };
            job_dirs(&context.dirs, owner).context("bootstrap step job_dirs")?;
            tracing::info!(
                step = "job_dirs",
                elapsed_ms = step_started.elapsed().as_millis() as u64,
                "bootstrap step done"
            );
        }
        Ok::<(), anyhow::Error>(())
    })
    .await
    .context("bootstrap task")??;
    tracing::info!(
        phase = ?phase,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "bootstrap phase done"
    );
    Ok(())
}

/// Step 25 of the reference: the directories of every job of the applied spec (`bosh/spec.json`),
/// made as `apply` makes them; those that exist are left alone.
fn job_dirs(dirs: &settings::Dirs, owner: &dyn jobs::install::owner::Owner) -> anyhow::Result<()> {
    let spec = jobs::apply_spec::ApplySpec::read(&dirs.spec_file())?;
    for job in spec.jobs() {
        jobs::install::job::create_job_dirs(dirs, &job.name, owner)
            .with_context(|| format!("Cannot create directories for job {}", job.name))?;
    }
    Ok(())
}

/// Steps 22–24 of the reference, after the directories: the disk last mounted
/// (`bosh/managed_disk_settings.json`) must still be known when any persistent disk is (`Attached
/// disk disagrees with previous mount`); it is mounted again on `store/` if it looks partitioned;
/// every disk association must name a known disk, and more than one disk needs associations for
/// all (`Unexpected disk attached`).
fn persistent_disk(context: &Context) -> anyhow::Result<()> {
    let all = context
        .settings
        .all_persistent_disk_settings()
        .context("Reading persistent disk settings")?;
    let managed = context.dirs.managed_disk_settings_file();
    let last = match std::fs::read_to_string(&managed) {
        Ok(text) => text.trim().to_owned(),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(err) => {
            return Err(err).with_context(|| format!("Reading {}", managed.display()));
        }
    };
    let associations = context
        .settings
        .settings()
        .update_settings
        .disk_associations;
    let Some(disk) = disk_to_remount(&last, &all, &associations)? else {
        return Ok(());
    };
    let mountable = context
        .platform
        .is_persistent_disk_mountable(disk)
        .context("Checking if persistent disk is partitioned")?;
    if mountable {
        context
            .platform
            .mount_persistent_disk(disk, &context.dirs.store_dir())
            .context("Mounting persistent disk")?;
    } else {
        tracing::info!(disk = %last, "the last mounted disk is not partitioned, not mounted");
    }
    Ok(())
}

/// The checks of [`persistent_disk`] and the disk to mount again: the last mounted disk `last`
/// among `all` the persistent disks.
///
/// Unlike Go, a last disk that is no longer known while no disk is known at all (detached, then the
/// VM rebooted) is only logged: Go fails the bootstrap there.
fn disk_to_remount<'a>(
    last: &str,
    all: &'a BTreeMap<String, DiskSettings>,
    associations: &[DiskAssociation],
) -> anyhow::Result<Option<&'a DiskSettings>> {
    let disk = match all.get(last) {
        _ if last.is_empty() => None,
        Some(disk) => Some(disk),
        None if all.is_empty() => {
            tracing::info!(disk = %last, "the last mounted disk is no longer attached");
            None
        }
        None => anyhow::bail!(
            "Attached disk disagrees with previous mount: disk {last} is not among the persistent disks ({})",
            all.keys().cloned().collect::<Vec<_>>().join(", ")
        ),
    };
    for association in associations {
        if !all.contains_key(&association.cid) {
            anyhow::bail!("Disk {} is not attached", association.cid);
        }
    }
    if all.len() > 1 && all.len() > associations.len() {
        anyhow::bail!("Unexpected disk attached");
    }
    Ok(disk)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_applied_jobs_get_their_directories_back() {
        let base = tempfile::tempdir().unwrap();
        let dirs = settings::Dirs::new(base.path());
        let owner = jobs::install::owner::KeepOwners;
        // No spec yet: nothing to make.
        job_dirs(&dirs, &owner).unwrap();
        assert!(!dirs.data_sys_run_dir().exists());
        std::fs::create_dir_all(dirs.spec_file().parent().unwrap()).unwrap();
        std::fs::write(
            dirs.spec_file(),
            r#"{"deployment":"d","job":{"name":"web","templates":[{"name":"nginx","version":"1","sha1":"x"},{"name":"route","version":"1","sha1":"y"}]},
                "rendered_templates_archive":{"blobstore_id":"b","sha1":"z"}}"#,
        )
        .unwrap();
        job_dirs(&dirs, &owner).unwrap();
        for job in ["nginx", "route"] {
            for dir in [
                dirs.data_sys_log_dir().join(job),
                dirs.data_sys_run_dir().join(job),
                dirs.data_dir().join(job),
            ] {
                let mode = std::os::unix::fs::PermissionsExt::mode(
                    &std::fs::metadata(&dir).unwrap().permissions(),
                );
                assert_eq!(mode & 0o7777, 0o770, "{}", dir.display());
            }
        }
        // A spec that is not JSON is an error naming the file.
        std::fs::write(dirs.spec_file(), "{").unwrap();
        let err = job_dirs(&dirs, &owner).unwrap_err();
        assert!(format!("{err:#}").contains("spec.json"), "{err:#}");
    }

    #[test]
    fn the_phases_split_the_order_after_networking() {
        let first = Phase::UntilNetworking.steps();
        let rest = Phase::AfterNetworking.steps();
        assert_eq!(first.last(), Some(&Step::Networking));
        assert_eq!(first.first(), Some(&Step::RuntimeConfiguration));
        assert_eq!(rest.first(), Some(&Step::RawEphemeralDisks));
        assert_eq!([first, rest].concat(), Step::ORDER.to_vec());
    }

    fn disks(cids: &[&str]) -> BTreeMap<String, DiskSettings> {
        cids.iter()
            .map(|cid| {
                let disk = DiskSettings {
                    id: (*cid).to_owned(),
                    ..DiskSettings::default()
                };
                ((*cid).to_owned(), disk)
            })
            .collect()
    }

    fn association(cid: &str) -> DiskAssociation {
        DiskAssociation {
            name: format!("name-{cid}"),
            cid: cid.to_owned(),
        }
    }

    #[test]
    fn the_last_disk_is_remounted_when_known_and_the_guards_follow_go() {
        let one = disks(&["disk-a"]);
        let found = disk_to_remount("disk-a", &one, &[]).unwrap();
        assert_eq!(found.map(|d| d.id.as_str()), Some("disk-a"));
        assert!(disk_to_remount("", &one, &[]).unwrap().is_none());
        // Detached while the VM was down: nothing known, nothing mounted, no failure.
        assert!(
            disk_to_remount("disk-a", &disks(&[]), &[])
                .unwrap()
                .is_none()
        );
        let err = disk_to_remount("disk-old", &one, &[]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Attached disk disagrees with previous mount: disk disk-old is not among the persistent disks (disk-a)"
        );
        let two = disks(&["disk-a", "disk-b"]);
        assert_eq!(
            disk_to_remount("disk-a", &two, &[])
                .unwrap_err()
                .to_string(),
            "Unexpected disk attached"
        );
        let both = [association("disk-a"), association("disk-b")];
        assert!(disk_to_remount("disk-a", &two, &both).unwrap().is_some());
        assert_eq!(
            disk_to_remount("disk-a", &one, &[association("disk-z")])
                .unwrap_err()
                .to_string(),
            "Disk disk-z is not attached"
        );
    }
}
