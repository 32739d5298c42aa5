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
//! can connect while the disks and directories are set up in the second.

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use platform::bootstrap::{Input, Step};

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_phases_split_the_order_after_networking() {
        let first = Phase::UntilNetworking.steps();
        let rest = Phase::AfterNetworking.steps();
        assert_eq!(first.last(), Some(&Step::Networking));
        assert_eq!(first.first(), Some(&Step::RuntimeConfiguration));
        assert_eq!(rest.first(), Some(&Step::RawEphemeralDisks));
        assert_eq!([first, rest].concat(), Step::ORDER.to_vec());
    }
}
