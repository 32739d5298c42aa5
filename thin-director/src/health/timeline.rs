//! When each recorded instance's agent was last heard from, and which are missing: the health
//! monitor's agent bookkeeping (`bosh-monitor/lib/bosh/monitor/agent_manager.rb`, `agent.rb`:
//! `updated_at`, `timed_out?`, `on_shutdown`), without IO and with the time passed in.
//!
//! The timeline is keyed by instance, not by agent: an instance whose VM is replaced gets a new
//! agent, and its clock starts again; an instance the state records without a VM (a resurrection
//! that deleted the VM and then failed) is tracked too and goes missing when it stays without one
//! for the agent timeout, as the HM's `analyze_instances` reports "has no VM".
//!
//! Only heartbeats refresh an agent, as in the HM. An agent that sent `hm.agent.shutdown` is
//! never missing (its VM is going away on purpose) until a heartbeat shows it alive again.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// An instance of a deployment, as the state records it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct InstanceKey {
    /// The deployment.
    pub deployment: String,
    /// The instance group.
    pub group: String,
    /// The index in its group.
    pub index: u32,
    /// The instance's id.
    pub id: String,
}

impl InstanceKey {
    /// `<group>/<id> (<index>)`, as the bosh CLI names instances.
    pub fn name(&self) -> String {
        format!("{}/{} ({})", self.group, self.id, self.index)
    }
}

/// An instance the state records, with its VM's agent if it has a VM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    /// The instance.
    pub key: InstanceKey,
    /// Its VM's agent; `None` when it has no VM.
    pub agent_id: Option<String>,
}

/// What the timeline saw change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Not heard from (or without a VM) for longer than the agent timeout.
    Missing {
        /// The instance.
        key: InstanceKey,
        /// Its agent; `None` when it has no VM.
        agent_id: Option<String>,
        /// How long since it was last heard from (or since the clock started).
        silent_for: Duration,
    },
    /// A missing agent was heard from again.
    Back {
        /// The instance.
        key: InstanceKey,
        /// Its agent.
        agent_id: String,
        /// How long it had been silent.
        silent_for: Duration,
    },
    /// A heartbeat's `job_state` differs from the last one (or, the first heard, is not
    /// `running`).
    JobState {
        /// The instance.
        key: InstanceKey,
        /// The state before; `None` for the first heartbeat heard.
        from: Option<String>,
        /// The state now.
        to: String,
    },
    /// The agent said its VM is going away: it will not be missing.
    ShutDown {
        /// The instance.
        key: InstanceKey,
        /// Its agent.
        agent_id: String,
    },
}

/// The last-heard times of every recorded instance.
#[derive(Debug, Clone, Default)]
pub struct Timeline {
    entries: BTreeMap<InstanceKey, Entry>,
    agents: BTreeMap<String, InstanceKey>,
}

#[derive(Debug, Clone)]
struct Entry {
    agent_id: Option<String>,
    last_heard: Instant,
    is_missing: bool,
    has_shut_down: bool,
    job_state: Option<String>,
}

impl Entry {
    fn new(agent_id: Option<String>, now: Instant) -> Entry {
        Entry {
            agent_id,
            last_heard: now,
            is_missing: false,
            has_shut_down: false,
            job_state: None,
        }
    }
}

impl Timeline {
    /// An empty timeline.
    pub fn new() -> Timeline {
        Timeline::default()
    }

    /// Makes the tracked instances those of `expected`, at `now`: a new instance, or one whose
    /// agent changed (a new VM, or none), starts its clock at `now`; instances no longer recorded
    /// are forgotten.
    pub fn sync(&mut self, expected: impl IntoIterator<Item = Expected>, now: Instant) {
        let mut entries = BTreeMap::new();
        for Expected { key, agent_id } in expected {
            let entry = match self.entries.remove(&key) {
                Some(entry) if entry.agent_id == agent_id => entry,
                _ => Entry::new(agent_id, now),
            };
            entries.insert(key, entry);
        }
        self.agents = entries
            .iter()
            .filter_map(|(key, entry)| Some((entry.agent_id.clone()?, key.clone())))
            .collect();
        self.entries = entries;
    }

    /// The instance whose VM runs `agent_id`.
    pub fn instance(&self, agent_id: &str) -> Option<&InstanceKey> {
        self.agents.get(agent_id)
    }

    /// A heartbeat from `agent_id` at `now`, reporting `job_state` when it could be read. Nothing
    /// for an agent of no recorded instance.
    pub fn heartbeat(
        &mut self,
        agent_id: &str,
        job_state: Option<&str>,
        now: Instant,
    ) -> Vec<Change> {
        let Some(key) = self.agents.get(agent_id) else {
            return Vec::new();
        };
        let Some(entry) = self.entries.get_mut(key) else {
            return Vec::new();
        };
        let mut changes = Vec::new();
        if entry.is_missing {
            changes.push(Change::Back {
                key: key.clone(),
                agent_id: agent_id.to_owned(),
                silent_for: now.saturating_duration_since(entry.last_heard),
            });
        }
        entry.last_heard = now;
        entry.is_missing = false;
        entry.has_shut_down = false;
        if let Some(job_state) = job_state {
            let changed = match &entry.job_state {
                Some(before) => before != job_state,
                None => job_state != "running",
            };
            if changed {
                changes.push(Change::JobState {
                    key: key.clone(),
                    from: entry.job_state.clone(),
                    to: job_state.to_owned(),
                });
            }
            entry.job_state = Some(job_state.to_owned());
        }
        changes
    }

    /// `hm.agent.shutdown` from `agent_id`: its instance will not be missing. Reported once.
    pub fn shutdown(&mut self, agent_id: &str) -> Option<Change> {
        let key = self.agents.get(agent_id)?;
        let entry = self.entries.get_mut(key)?;
        if entry.has_shut_down {
            return None;
        }
        entry.has_shut_down = true;
        entry.is_missing = false;
        Some(Change::ShutDown {
            key: key.clone(),
            agent_id: agent_id.to_owned(),
        })
    }

    /// The instances silent for longer than `timeout` at `now` that were not missing yet, now
    /// marked missing.
    pub fn find_missing(&mut self, now: Instant, timeout: Duration) -> Vec<Change> {
        let mut changes = Vec::new();
        for (key, entry) in &mut self.entries {
            let silent_for = now.saturating_duration_since(entry.last_heard);
            if entry.is_missing || entry.has_shut_down || silent_for <= timeout {
                continue;
            }
            entry.is_missing = true;
            changes.push(Change::Missing {
                key: key.clone(),
                agent_id: entry.agent_id.clone(),
                silent_for,
            });
        }
        changes
    }

    /// Every instance missing now.
    pub fn missing(&self) -> Vec<&InstanceKey> {
        self.entries
            .iter()
            .filter(|(_, entry)| entry.is_missing)
            .map(|(key, _)| key)
            .collect()
    }

    /// Starts `key`'s clock again at `now` (after a resurrection): it is not missing until it has
    /// been silent for another agent timeout.
    pub fn restart(&mut self, key: &InstanceKey, now: Instant) {
        if let Some(entry) = self.entries.get_mut(key) {
            entry.last_heard = now;
            entry.is_missing = false;
        }
    }

    /// Whether `key` is a recorded instance.
    pub fn contains(&self, key: &InstanceKey) -> bool {
        self.entries.contains_key(key)
    }

    /// How many instances `deployment` records.
    pub fn instances_of(&self, deployment: &str) -> usize {
        self.entries
            .keys()
            .filter(|key| key.deployment == deployment)
            .count()
    }

    /// The deployments with recorded instances.
    pub fn deployments(&self) -> BTreeSet<String> {
        self.entries
            .keys()
            .map(|key| key.deployment.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(index: u32) -> InstanceKey {
        InstanceKey {
            deployment: "hello".into(),
            group: "web".into(),
            index,
            id: format!("id-{index}"),
        }
    }

    fn expected(index: u32, agent_id: Option<&str>) -> Expected {
        Expected {
            key: key(index),
            agent_id: agent_id.map(str::to_owned),
        }
    }

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn an_agent_is_missing_once_silent_for_longer_than_the_timeout_from_the_start() {
        let start = Instant::now();
        let mut timeline = Timeline::new();
        timeline.sync([expected(0, Some("a0")), expected(1, Some("a1"))], start);
        assert_eq!(
            timeline.heartbeat("a1", Some("running"), start + secs(30)),
            []
        );
        // The clock started at `start`: exactly the timeout is not longer than it.
        assert_eq!(timeline.find_missing(start + secs(60), secs(60)), []);
        assert_eq!(
            timeline.find_missing(start + secs(61), secs(60)),
            [Change::Missing {
                key: key(0),
                agent_id: Some("a0".into()),
                silent_for: secs(61),
            }]
        );
        // Reported once.
        assert_eq!(timeline.find_missing(start + secs(75), secs(60)), []);
        assert_eq!(timeline.missing(), [&key(0)]);
        assert_eq!(
            timeline.find_missing(start + secs(91), secs(60)),
            [Change::Missing {
                key: key(1),
                agent_id: Some("a1".into()),
                silent_for: secs(61),
            }]
        );
    }

    #[test]
    fn a_missing_agent_heard_again_is_back() {
        let start = Instant::now();
        let mut timeline = Timeline::new();
        timeline.sync([expected(0, Some("a0"))], start);
        assert_eq!(timeline.find_missing(start + secs(61), secs(60)).len(), 1);
        assert_eq!(
            timeline.heartbeat("a0", Some("running"), start + secs(70)),
            [Change::Back {
                key: key(0),
                agent_id: "a0".into(),
                silent_for: secs(70),
            }]
        );
        assert!(timeline.missing().is_empty());
        assert_eq!(timeline.find_missing(start + secs(130), secs(60)), []);
    }

    #[test]
    fn job_state_changes_are_reported_and_a_first_running_is_not() {
        let start = Instant::now();
        let mut timeline = Timeline::new();
        timeline.sync([expected(0, Some("a0")), expected(1, Some("a1"))], start);
        assert_eq!(timeline.heartbeat("a0", Some("running"), start), []);
        assert_eq!(
            timeline.heartbeat("a1", Some("failing"), start),
            [Change::JobState {
                key: key(1),
                from: None,
                to: "failing".into(),
            }]
        );
        assert_eq!(
            timeline.heartbeat("a0", Some("failing"), start + secs(30)),
            [Change::JobState {
                key: key(0),
                from: Some("running".into()),
                to: "failing".into(),
            }]
        );
        // An unreadable heartbeat still shows the agent alive and changes no state.
        assert_eq!(timeline.heartbeat("a0", None, start + secs(60)), []);
        assert_eq!(timeline.find_missing(start + secs(100), secs(60)).len(), 1);
        // Agents of no recorded instance change nothing.
        assert_eq!(timeline.heartbeat("rogue", Some("failing"), start), []);
    }

    #[test]
    fn an_agent_that_shut_down_is_never_missing_until_it_heartbeats_again() {
        let start = Instant::now();
        let mut timeline = Timeline::new();
        timeline.sync([expected(0, Some("a0"))], start);
        assert_eq!(
            timeline.shutdown("a0"),
            Some(Change::ShutDown {
                key: key(0),
                agent_id: "a0".into(),
            })
        );
        assert_eq!(timeline.shutdown("a0"), None);
        assert_eq!(timeline.find_missing(start + secs(600), secs(60)), []);
        timeline.heartbeat("a0", Some("running"), start + secs(601));
        assert_eq!(timeline.find_missing(start + secs(662), secs(60)).len(), 1);
    }

    #[test]
    fn a_new_vm_restarts_the_clock_and_a_vm_less_instance_goes_missing_too() {
        let start = Instant::now();
        let mut timeline = Timeline::new();
        timeline.sync([expected(0, Some("a0"))], start);
        assert_eq!(timeline.find_missing(start + secs(61), secs(60)).len(), 1);
        // The VM was deleted: no agent, the clock starts again.
        timeline.sync([expected(0, None)], start + secs(70));
        assert!(timeline.missing().is_empty());
        assert_eq!(timeline.instance("a0"), None);
        assert_eq!(
            timeline.find_missing(start + secs(131), secs(60)),
            [Change::Missing {
                key: key(0),
                agent_id: None,
                silent_for: secs(61),
            }]
        );
        // A new VM: a new agent, a new clock.
        timeline.sync([expected(0, Some("b0"))], start + secs(140));
        assert_eq!(timeline.instance("b0"), Some(&key(0)));
        assert_eq!(timeline.find_missing(start + secs(200), secs(60)), []);
        // The same agent again keeps its clock.
        timeline.sync([expected(0, Some("b0"))], start + secs(190));
        assert_eq!(timeline.find_missing(start + secs(201), secs(60)).len(), 1);
    }

    #[test]
    fn restarting_an_instance_gives_it_another_timeout_and_forgotten_instances_go() {
        let start = Instant::now();
        let mut timeline = Timeline::new();
        timeline.sync([expected(0, Some("a0")), expected(1, Some("a1"))], start);
        assert_eq!(timeline.find_missing(start + secs(61), secs(60)).len(), 2);
        timeline.restart(&key(0), start + secs(80));
        assert_eq!(timeline.missing(), [&key(1)]);
        assert_eq!(timeline.find_missing(start + secs(140), secs(60)), []);
        assert_eq!(timeline.find_missing(start + secs(141), secs(60)).len(), 1);
        timeline.sync([expected(1, Some("a1"))], start + secs(150));
        assert!(!timeline.contains(&key(0)));
        assert_eq!(timeline.instance("a0"), None);
        assert_eq!(timeline.instances_of("hello"), 1);
        assert_eq!(timeline.deployments(), BTreeSet::from(["hello".to_owned()]));
    }
}
