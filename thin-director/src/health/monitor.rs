//! The health monitor's decisions, without IO: agent messages and the passing of time go in,
//! events to report and resurrections to start come out (`bosh-monitor`'s `agent_manager.rb`
//! `analyze_agents` and the resurrector plugin, `plugins/resurrector.rb`).
//!
//! At each analysis, instances silent for longer than the agent timeout are reported missing;
//! every missing instance is recorded as down for the meltdown rule; then each deployment that is
//! not in meltdown and has no resurrection under way gets one [`Batch`] of all its missing
//! instances. Batching matters: a resurrection converges the deployment, and a converge that
//! reached a second dead instance would fail on it (its post-deploy, for one), so the dead are
//! replaced together, as the HM's scan-and-fix names every timed-out instance of a deployment at
//! once. When a batch is finished its instances' clocks start again, so a failed resurrection is
//! tried again after another agent timeout.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use crate::health::Config;
use crate::health::event::Event;
use crate::health::meltdown::{State, Tracker};
use crate::health::message::{AgentMessage, Kind};
use crate::health::timeline::{Change, Expected, InstanceKey, Timeline};

/// A resurrection to carry out: missing instances of one deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// The deployment.
    pub deployment: String,
    /// Its missing instances, in order.
    pub instances: Vec<InstanceKey>,
}

/// The health monitor's memory.
#[derive(Debug, Clone)]
pub struct Monitor {
    config: Config,
    timeline: Timeline,
    tracker: Tracker,
    resurrecting: BTreeSet<String>,
    melting_down: BTreeSet<String>,
}

impl Monitor {
    /// A monitor that knows no instance yet.
    pub fn new(config: Config) -> Monitor {
        Monitor {
            config,
            timeline: Timeline::new(),
            tracker: Tracker::new(),
            resurrecting: BTreeSet::new(),
            melting_down: BTreeSet::new(),
        }
    }

    /// Makes the monitored instances those the state records at `now` (see
    /// [`Timeline::sync`]).
    pub fn sync(&mut self, expected: impl IntoIterator<Item = Expected>, now: Instant) {
        self.timeline.sync(expected, now);
        let timeline = &self.timeline;
        self.tracker
            .prune(now, self.config.meltdown.time_threshold, |key| {
                timeline.contains(key)
            });
    }

    /// Whether `agent_id` is the agent of a monitored instance.
    pub fn knows(&self, agent_id: &str) -> bool {
        self.timeline.instance(agent_id).is_some()
    }

    /// Takes in a message received at `now`.
    pub fn message(&mut self, message: &AgentMessage, now: Instant) -> Vec<Event> {
        let agent_id = &message.agent_id;
        match &message.kind {
            Kind::Heartbeat(heartbeat) => {
                let job_state = heartbeat.as_ref().map(|h| h.job_state.as_str());
                self.timeline
                    .heartbeat(agent_id, job_state, now)
                    .into_iter()
                    .map(event_of)
                    .collect()
            }
            Kind::Alert(alert) => vec![Event::Alert {
                agent_id: agent_id.clone(),
                instance: self.timeline.instance(agent_id).cloned(),
                alert: alert.clone(),
            }],
            Kind::Shutdown => self
                .timeline
                .shutdown(agent_id)
                .map(event_of)
                .into_iter()
                .collect(),
        }
    }

    /// Looks for missing instances at `now`: what to report and which resurrections to start
    /// (each deployment's is under way until [`Monitor::finished`]).
    pub fn analyze(&mut self, now: Instant) -> (Vec<Event>, Vec<Batch>) {
        let mut events = Vec::new();
        for change in self.timeline.find_missing(now, self.config.agent_timeout) {
            let event = event_of(change);
            let off = match (&event, self.config.resurrect) {
                (Event::Missing { instance, .. }, false) => Some(Event::ResurrectionOff {
                    instance: instance.clone(),
                }),
                _ => None,
            };
            events.push(event);
            events.extend(off);
        }
        if !self.config.resurrect {
            return (events, Vec::new());
        }
        let mut missing: BTreeMap<String, Vec<InstanceKey>> = BTreeMap::new();
        for key in self.timeline.missing() {
            self.tracker.record(key, now);
            missing
                .entry(key.deployment.clone())
                .or_default()
                .push(key.clone());
        }
        let rules = &self.config.meltdown;
        let mut batches = Vec::new();
        let deployments: BTreeSet<String> = self
            .timeline
            .deployments()
            .into_iter()
            .chain(self.melting_down.iter().cloned())
            .collect();
        for deployment in deployments {
            let down = self.tracker.down(&deployment, now, rules.time_threshold);
            let instances = self.timeline.instances_of(&deployment);
            let state = rules.state(down, instances);
            let was_melting_down = self.melting_down.contains(&deployment);
            if state == State::Meltdown && !was_melting_down {
                self.melting_down.insert(deployment.clone());
                events.push(Event::Meltdown {
                    deployment: deployment.clone(),
                    down,
                    instances,
                });
            } else if state != State::Meltdown && was_melting_down {
                self.melting_down.remove(&deployment);
                events.push(Event::MeltdownOver {
                    deployment: deployment.clone(),
                    down,
                    instances,
                });
            }
            if state == State::Meltdown || self.resurrecting.contains(&deployment) {
                continue;
            }
            if let Some(instances) = missing.remove(&deployment) {
                self.resurrecting.insert(deployment.clone());
                events.push(Event::Resurrecting {
                    deployment: deployment.clone(),
                    instances: instances.clone(),
                });
                batches.push(Batch {
                    deployment,
                    instances,
                });
            }
        }
        (events, batches)
    }

    /// `batch`'s resurrection ended at `now`, well or with an error (its text): its instances'
    /// clocks start again and its deployment may be resurrected again.
    pub fn finished(
        &mut self,
        batch: &Batch,
        outcome: Result<(), String>,
        now: Instant,
    ) -> Vec<Event> {
        self.resurrecting.remove(&batch.deployment);
        for key in &batch.instances {
            self.timeline.restart(key, now);
        }
        let (deployment, instances) = (batch.deployment.clone(), batch.instances.clone());
        vec![match outcome {
            Ok(()) => Event::Resurrected {
                deployment,
                instances,
            },
            Err(error) => Event::ResurrectionFailed {
                deployment,
                instances,
                error,
            },
        }]
    }
}

fn event_of(change: Change) -> Event {
    match change {
        Change::Missing {
            key,
            agent_id,
            silent_for,
        } => Event::Missing {
            instance: key,
            agent_id,
            silent_for,
        },
        Change::Back {
            key,
            agent_id,
            silent_for,
        } => Event::Back {
            instance: key,
            agent_id,
            silent_for,
        },
        Change::JobState { key, from, to } => Event::JobState {
            instance: key,
            from,
            to,
        },
        Change::ShutDown { key, agent_id } => Event::ShutDown {
            instance: key,
            agent_id,
        },
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use agent::protocol::{Alert, Heartbeat};
    use serde_json::Value;

    use super::*;

    const TIMEOUT: Duration = Duration::from_secs(60);

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    fn key(deployment: &str, index: u32) -> InstanceKey {
        InstanceKey {
            deployment: deployment.into(),
            group: "web".into(),
            index,
            id: format!("{deployment}-id-{index}"),
        }
    }

    fn agent(deployment: &str, index: u32) -> String {
        format!("{deployment}-agent-{index}")
    }

    /// `count` instances of `deployment`, each with a VM whose agent is named by [`agent`].
    fn instances(deployment: &str, count: u32) -> Vec<Expected> {
        (0..count)
            .map(|index| Expected {
                key: key(deployment, index),
                agent_id: Some(agent(deployment, index)),
            })
            .collect()
    }

    fn heartbeat(agent_id: &str) -> AgentMessage {
        AgentMessage {
            agent_id: agent_id.to_owned(),
            kind: Kind::Heartbeat(Some(Box::new(Heartbeat {
                deployment: "ignored".into(),
                job: Some("web".into()),
                index: Some(0),
                job_state: "running".into(),
                vitals: Value::Null,
                node_id: "ignored".into(),
                number_of_processes: Some(1),
            }))),
        }
    }

    fn monitor(resurrect: bool) -> Monitor {
        Monitor::new(Config {
            agent_timeout: TIMEOUT,
            resurrect,
            ..Config::default()
        })
    }

    fn missing(events: &[Event]) -> Vec<InstanceKey> {
        events
            .iter()
            .filter_map(|event| match event {
                Event::Missing { instance, .. } => Some(instance.clone()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn silent_instances_are_resurrected_in_one_batch_per_deployment_at_a_time() {
        let start = Instant::now();
        let mut monitor = monitor(true);
        let all: Vec<Expected> = instances("a", 3)
            .into_iter()
            .chain(instances("b", 1))
            .collect();
        monitor.sync(all.clone(), start);
        for t in [20, 50] {
            assert!(
                monitor
                    .message(&heartbeat(&agent("a", 2)), start + secs(t))
                    .is_empty()
            );
        }
        let (events, batches) = monitor.analyze(start + secs(60));
        assert_eq!((events, batches), (vec![], vec![]));

        let (events, batches) = monitor.analyze(start + secs(61));
        assert_eq!(missing(&events), [key("a", 0), key("a", 1), key("b", 0)]);
        let a = Batch {
            deployment: "a".into(),
            instances: vec![key("a", 0), key("a", 1)],
        };
        let b = Batch {
            deployment: "b".into(),
            instances: vec![key("b", 0)],
        };
        assert_eq!(batches, [a.clone(), b.clone()]);
        assert!(events.contains(&Event::Resurrecting {
            deployment: "a".into(),
            instances: a.instances.clone(),
        }));
        assert_eq!(monitor.resurrecting.len(), 2);

        // One resurrection at a time per deployment: a third instance going silent in `a` waits.
        let (events, batches) = monitor.analyze(start + secs(111));
        assert_eq!(missing(&events), [key("a", 2)]);
        assert_eq!(batches, []);

        // `a`'s resurrection gave its two instances new VMs; the third is resurrected next.
        let mut resurrected = all.clone();
        resurrected[0].agent_id = Some("new-0".into());
        resurrected[1].agent_id = Some("new-1".into());
        monitor.sync(resurrected, start + secs(120));
        assert_eq!(
            monitor.finished(&a, Ok(()), start + secs(120)),
            [Event::Resurrected {
                deployment: "a".into(),
                instances: a.instances.clone(),
            }]
        );
        assert!(monitor.knows("new-0") && !monitor.knows(&agent("a", 0)));
        let (_, batches) = monitor.analyze(start + secs(121));
        assert_eq!(
            batches,
            [Batch {
                deployment: "a".into(),
                instances: vec![key("a", 2)],
            }]
        );
        // `b`'s is still under way.
        assert!(monitor.resurrecting.contains("b"));
    }

    #[test]
    fn with_resurrection_off_missing_instances_are_only_reported() {
        let start = Instant::now();
        let mut monitor = monitor(false);
        monitor.sync(instances("a", 2), start);
        monitor.message(&heartbeat(&agent("a", 1)), start + secs(30));
        let (events, batches) = monitor.analyze(start + secs(61));
        assert_eq!(batches, []);
        assert_eq!(
            events,
            [
                Event::Missing {
                    instance: key("a", 0),
                    agent_id: Some(agent("a", 0)),
                    silent_for: secs(61),
                },
                Event::ResurrectionOff {
                    instance: key("a", 0),
                },
            ]
        );
        assert_eq!(monitor.analyze(start + secs(200)).1, []);
        assert!(monitor.resurrecting.is_empty());
    }

    #[test]
    fn a_meltdown_resurrects_nothing_until_it_clears() {
        let start = Instant::now();
        let mut monitor = monitor(true);
        monitor.sync(instances("a", 10), start);
        let alive = |monitor: &mut Monitor, indexes: std::ops::Range<u32>, at: Instant| {
            for index in indexes {
                monitor.message(&heartbeat(&agent("a", index)), at);
            }
        };
        alive(&mut monitor, 5..10, start + secs(30));
        // 5 of 10 down: at least 5 and at least 20 %.
        let (events, batches) = monitor.analyze(start + secs(61));
        assert_eq!(batches, []);
        assert!(
            events.contains(&Event::Meltdown {
                deployment: "a".into(),
                down: 5,
                instances: 10,
            }),
            "{events:?}"
        );
        // Three come back; the two still missing count as down at every analysis, the three
        // count until their last down record is older than the time threshold (600 s).
        let mut t = 61;
        while t < 660 {
            t += 30;
            alive(&mut monitor, 0..3, start + secs(t));
            alive(&mut monitor, 5..10, start + secs(t));
            let (events, batches) = monitor.analyze(start + secs(t));
            assert_eq!(batches, [], "at {t} s: {events:?}");
        }
        let (events, batches) = monitor.analyze(start + secs(662));
        assert_eq!(
            events,
            [
                Event::MeltdownOver {
                    deployment: "a".into(),
                    down: 2,
                    instances: 10,
                },
                Event::Resurrecting {
                    deployment: "a".into(),
                    instances: vec![key("a", 3), key("a", 4)],
                },
            ]
        );
        assert_eq!(batches.len(), 1);
    }

    #[test]
    fn an_agent_that_shut_down_is_not_resurrected() {
        let start = Instant::now();
        let mut monitor = monitor(true);
        monitor.sync(instances("a", 1), start);
        let shutdown = AgentMessage {
            agent_id: agent("a", 0),
            kind: Kind::Shutdown,
        };
        assert_eq!(
            monitor.message(&shutdown, start + secs(10)),
            [Event::ShutDown {
                instance: key("a", 0),
                agent_id: agent("a", 0),
            }]
        );
        assert_eq!(monitor.analyze(start + secs(1000)), (vec![], vec![]));
    }

    #[test]
    fn a_failed_resurrection_is_tried_again_after_another_timeout() {
        let start = Instant::now();
        let mut monitor = monitor(true);
        monitor.sync(instances("a", 1), start);
        let (_, batches) = monitor.analyze(start + secs(61));
        assert_eq!(batches.len(), 1);
        // The VM was deleted before the converge failed.
        monitor.sync(
            [Expected {
                key: key("a", 0),
                agent_id: None,
            }],
            start + secs(70),
        );
        let events = monitor.finished(&batches[0], Err("no capacity".into()), start + secs(80));
        assert_eq!(
            events,
            [Event::ResurrectionFailed {
                deployment: "a".into(),
                instances: vec![key("a", 0)],
                error: "no capacity".into(),
            }]
        );
        assert_eq!(monitor.analyze(start + secs(140)), (vec![], vec![]));
        let (events, batches) = monitor.analyze(start + secs(141));
        assert_eq!(
            events[0],
            Event::Missing {
                instance: key("a", 0),
                agent_id: None,
                silent_for: secs(61),
            }
        );
        assert_eq!(
            batches,
            [Batch {
                deployment: "a".into(),
                instances: vec![key("a", 0)],
            }]
        );
    }

    #[test]
    fn alerts_name_their_instance_and_unknown_agents_are_not_tracked() {
        let start = Instant::now();
        let mut monitor = monitor(true);
        monitor.sync(instances("a", 1), start);
        let alert = Alert {
            id: "m-1".into(),
            severity: 2,
            title: "hello (10.0.0.1) - pid failed - restart".into(),
            summary: "pid changed".into(),
            created_at: 1,
        };
        let events = monitor.message(
            &AgentMessage {
                agent_id: agent("a", 0),
                kind: Kind::Alert(alert.clone()),
            },
            start,
        );
        assert_eq!(
            events,
            [Event::Alert {
                agent_id: agent("a", 0),
                instance: Some(key("a", 0)),
                alert,
            }]
        );
        assert!(!monitor.knows("rogue"));
        assert!(monitor.message(&heartbeat("rogue"), start).is_empty());
        assert_eq!(monitor.timeline.instances_of("a"), 1);
    }
}
