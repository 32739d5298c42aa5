//! Health monitoring and resurrection, `thin-director serve`: the BOSH Health Monitor's agent
//! tracking and its resurrector plugin (`reference/director-cpi.md` §4; `bosh-monitor`'s
//! `agent_manager.rb`, `plugins/resurrector.rb`, `plugins/resurrector_helper.rb`), built into
//! the director.
//!
//! [`run`] listens to what agents publish ([`bus`]: a NATS connection of its own with the
//! director's certificate; [`message`] decodes heartbeats, alerts and shutdown notices), keeps
//! every instance the state records on a [`timeline`] of when its agent was last heard from,
//! reports alerts and changes through the director's `Reporter` ([`event`]), and has
//! [`resurrect`] replace the VMs of instances silent for longer than the agent timeout, unless
//! their deployment is in [`meltdown`]. [`monitor`] makes every decision without IO, so the
//! rules are unit-tested with explicit times.
//!
//! Deliberately different from the BOSH HM:
//! * the state is read directly and analysed every [`Config::analyze_interval`] (1 s) instead of
//!   polling the director and analysing every 60 s: a silent agent is found within the timeout
//!   plus a second, not plus up to a minute;
//! * every instance's clock starts when the monitor starts (agents reconnect to a freshly started
//!   NATS within ~10 s and heartbeat every 30 s, well inside the 60 s timeout);
//! * resurrection is on unless `--no-resurrect` (BOSH's `hm.resurrector_enabled` is off by
//!   default); the missing instances of a deployment are resurrected together, one resurrection
//!   at a time per deployment, and a failed one is tried again after another agent timeout;
//! * an instance the state records without a VM counts as missing too (the HM's "has no VM").
//!
//! One director at a time: the state file is locked ([`crate::state::Store`]) by whichever
//! `thin-director` command opened it, and `serve` holds it for as long as it runs, so `deploy`,
//! `recreate` or `delete-deployment` fail with "another thin-director is using ..." until `serve`
//! stops; a deploy never races a resurrection. Within `serve`, resurrections go through
//! `director.state` like any deploy step.

pub mod bus;
pub mod event;
pub mod meltdown;
pub mod message;
pub mod monitor;
pub mod resurrect;
pub mod timeline;

use std::future::Future;
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use futures_util::stream::FuturesUnordered;

use crate::deploy::director::Director;
use crate::deploy::{self, report};
use crate::health::event::Event;
use crate::health::monitor::{Batch, Monitor};
use crate::health::timeline::{Expected, InstanceKey};

/// The HM's `agent_timeout`: an agent not heard from for longer is missing.
pub const AGENT_TIMEOUT: Duration = Duration::from_secs(60);

/// How often the monitor looks for missing agents.
pub const ANALYZE_INTERVAL: Duration = Duration::from_secs(1);

/// How the health monitor runs.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Agents not heard from for longer than this are missing ([`AGENT_TIMEOUT`]).
    pub agent_timeout: Duration,
    /// How often missing agents are looked for ([`ANALYZE_INTERVAL`]).
    pub analyze_interval: Duration,
    /// Whether missing instances are resurrected; if not, they are only reported (and meltdowns,
    /// which only hold resurrection back, are not looked for).
    pub resurrect: bool,
    /// When a deployment is in meltdown.
    pub meltdown: meltdown::Rules,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            agent_timeout: AGENT_TIMEOUT,
            analyze_interval: ANALYZE_INTERVAL,
            resurrect: true,
            meltdown: meltdown::Rules::default(),
        }
    }
}

/// Why the health monitor could not run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The TLS configuration could not be built.
    #[error("the health monitor's TLS configuration")]
    Tls(#[source] Box<deploy::Error>),
    /// NATS could not be reached.
    #[error("connecting the health monitor to NATS at {url}")]
    Connect {
        /// The URL.
        url: String,
        /// The cause.
        #[source]
        source: async_nats::ConnectError,
    },
    /// A subscription was refused.
    #[error("subscribing to {subject}")]
    Subscribe {
        /// The subject.
        subject: String,
        /// The cause.
        #[source]
        source: async_nats::SubscribeError,
    },
    /// The subscriptions could not be confirmed.
    #[error("subscribing to the agents' messages")]
    Flush(#[source] async_nats::client::FlushError),
    /// The connection ended.
    #[error("the health monitor's NATS connection closed")]
    Closed,
}

/// `pub type Result<T>` of this module.
pub type Result<T> = std::result::Result<T, Error>;

/// Monitors the director's agents until `shutdown` completes, resurrecting as `config` says.
/// Resurrections under way when it does are finished first: one stopped half-way would leave its
/// deployment to the next deploy to converge.
pub async fn run(
    director: &Director,
    config: &Config,
    shutdown: impl Future<Output = ()>,
) -> Result<()> {
    let mut bus = bus::Subscription::connect(director).await?;
    let mut monitor = Monitor::new(config.clone());
    if let Some(expected) = expected(director) {
        monitor.sync(expected, Instant::now());
    }
    report(
        director,
        [Event::Started {
            agent_timeout: config.agent_timeout,
            resurrect: config.resurrect,
        }],
    );
    let mut ticks = tokio::time::interval(config.analyze_interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut resurrections = FuturesUnordered::new();
    let mut unreadable: u64 = 0;
    tokio::pin!(shutdown);
    let outcome = loop {
        tokio::select! {
            () = &mut shutdown => break Ok(()),
            message = bus.next() => match message {
                None => break Err(Error::Closed),
                Some(Ok(message)) => {
                    let now = Instant::now();
                    if !monitor.knows(&message.agent_id) {
                        // A VM created since the last look at the state, or a rogue agent.
                        if let Some(expected) = expected(director) {
                            monitor.sync(expected, now);
                        }
                    }
                    report(director, monitor.message(&message, now));
                }
                Some(Err(err)) => {
                    // Agents can send anything: the first is logged, then every thousandth.
                    unreadable += 1;
                    if unreadable == 1 || unreadable % 1000 == 0 {
                        tracing::warn!(
                            error = %report::chain(&err),
                            count = unreadable,
                            "unreadable message for the health monitor"
                        );
                    }
                }
            },
            _ = ticks.tick() => {
                let now = Instant::now();
                // Only a fresh look at the state is analysed; a busy state waits for the next tick.
                let Some(expected) = expected(director) else {
                    continue;
                };
                monitor.sync(expected, now);
                let (events, batches) = monitor.analyze(now);
                report(director, events);
                for batch in batches {
                    resurrections.push(async move {
                        let outcome = resurrect::resurrect(director, &batch).await;
                        (batch, outcome)
                    });
                }
            },
            Some((batch, outcome)) = resurrections.next() => {
                finished(director, &mut monitor, &batch, outcome);
            },
        }
    };
    while let Some((batch, outcome)) = resurrections.next().await {
        finished(director, &mut monitor, &batch, outcome);
    }
    report(director, [Event::Stopped]);
    outcome
}

/// The instances the state records now; `None` when the state is locked.
///
/// The resurrections are polled by the same loop that calls this, so waiting for the lock here
/// could wait for a resurrection that cannot move until the loop does; taking it only when free
/// rules that out whatever the deploy code does with it.
fn expected(director: &Director) -> Option<Vec<Expected>> {
    let state = director.state.try_lock().ok()?;
    let expected = state
        .get()
        .deployments
        .iter()
        .flat_map(|(name, deployment)| {
            deployment.instances.iter().map(move |instance| Expected {
                key: InstanceKey {
                    deployment: name.clone(),
                    group: instance.group.clone(),
                    index: instance.index,
                    id: instance.id.clone(),
                },
                agent_id: instance.vm.as_ref().map(|vm| vm.agent_id.clone()),
            })
        })
        .collect();
    Some(expected)
}

fn finished(
    director: &Director,
    monitor: &mut Monitor,
    batch: &Batch,
    outcome: deploy::Result<deploy::Summary>,
) {
    let now = Instant::now();
    if let Some(expected) = expected(director) {
        monitor.sync(expected, now);
    }
    let outcome = outcome.map(drop).map_err(|err| report::chain(&err));
    report(director, monitor.finished(batch, outcome, now));
}

fn report(director: &Director, events: impl IntoIterator<Item = Event>) {
    for event in events {
        director
            .report
            .event(event::KIND, &event.text(), event.json());
    }
}
