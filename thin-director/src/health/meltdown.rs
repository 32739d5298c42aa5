//! The resurrector's meltdown rule (`bosh-monitor/lib/bosh/monitor/plugins/resurrector_helper.rb`:
//! `AlertTracker`, `DeploymentState`; `reference/director-cpi.md` §4.3): when many of a
//! deployment's instances went down recently, something bigger than one VM is wrong (the IaaS, the
//! network), and recreating VMs would only add load, so nothing is resurrected until it clears.
//!
//! An instance counts as down when it was found missing within `time_threshold` (600 s); the
//! monitor records every missing instance again at each analysis, as the HM's repeated timed-out
//! alerts refresh theirs. A deployment is in meltdown when `down >= minimum_down_jobs` (5) and
//! `down / instances >= percent_threshold` (0.2), the HM's comparisons exactly; with fewer down it
//! is "managed" (resurrect), with none "normal".

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::health::timeline::InstanceKey;

/// The thresholds (`hm.resurrector.*`).
#[derive(Debug, Clone, PartialEq)]
pub struct Rules {
    /// Below this many down instances there is no meltdown (`minimum_down_jobs`).
    pub minimum_down_jobs: usize,
    /// The fraction of a deployment's instances that must be down for a meltdown
    /// (`percent_threshold`, a fraction despite its name).
    pub percent_threshold: f64,
    /// How long an instance found down counts as down (`time_threshold`).
    pub time_threshold: Duration,
}

impl Default for Rules {
    /// The HM's defaults: 5, 0.2, 600 s.
    fn default() -> Rules {
        Rules {
            minimum_down_jobs: 5,
            percent_threshold: 0.2,
            time_threshold: Duration::from_secs(600),
        }
    }
}

/// A deployment's state for the resurrector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Nothing down.
    Normal,
    /// Some instances down: resurrect them.
    Managed,
    /// Too many down: resurrect nothing.
    Meltdown,
}

impl Rules {
    /// The state of a deployment with `down` of its `instances` down.
    pub fn state(&self, down: usize, instances: usize) -> State {
        if down == 0 {
            return State::Normal;
        }
        let fraction = down as f64 / instances.max(1) as f64;
        if down >= self.minimum_down_jobs && fraction >= self.percent_threshold {
            State::Meltdown
        } else {
            State::Managed
        }
    }
}

/// When each instance was last found down.
#[derive(Debug, Clone, Default)]
pub struct Tracker {
    down: BTreeMap<InstanceKey, Instant>,
}

impl Tracker {
    /// An empty tracker.
    pub fn new() -> Tracker {
        Tracker::default()
    }

    /// `key` is down at `at`.
    pub fn record(&mut self, key: &InstanceKey, at: Instant) {
        self.down.insert(key.clone(), at);
    }

    /// How many instances of `deployment` were down within `window` before `now`.
    pub fn down(&self, deployment: &str, now: Instant, window: Duration) -> usize {
        self.down
            .iter()
            .filter(|(key, at)| {
                key.deployment == deployment && now.saturating_duration_since(**at) <= window
            })
            .count()
    }

    /// Forgets instances `keep` refuses (deleted ones) and records older than `window`.
    pub fn prune(&mut self, now: Instant, window: Duration, keep: impl Fn(&InstanceKey) -> bool) {
        self.down
            .retain(|key, at| keep(key) && now.saturating_duration_since(*at) <= window);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(deployment: &str, index: u32) -> InstanceKey {
        InstanceKey {
            deployment: deployment.into(),
            group: "web".into(),
            index,
            id: format!("id-{index}"),
        }
    }

    #[test]
    fn meltdown_needs_both_the_minimum_count_and_the_fraction() {
        let rules = Rules::default();
        let cases = [
            (0, 10, State::Normal),
            (1, 3, State::Managed),
            // Everything down, but fewer than 5: the resurrector always fixes these.
            (4, 4, State::Managed),
            (5, 5, State::Meltdown),
            // 5 of 25 is exactly 20 %: the HM compares with `>=`.
            (5, 25, State::Meltdown),
            // 5 of 26 is under 20 %.
            (5, 26, State::Managed),
            (6, 30, State::Meltdown),
            (19, 100, State::Managed),
            (20, 100, State::Meltdown),
        ];
        for (down, instances, expected) in cases {
            assert_eq!(
                rules.state(down, instances),
                expected,
                "{down} of {instances}"
            );
        }
        let strict = Rules {
            minimum_down_jobs: 1,
            percent_threshold: 0.5,
            time_threshold: Duration::from_secs(10),
        };
        assert_eq!(strict.state(1, 3), State::Managed);
        assert_eq!(strict.state(2, 3), State::Meltdown);
    }

    #[test]
    fn instances_count_as_down_within_the_time_threshold_per_deployment() {
        let start = Instant::now();
        let window = Duration::from_secs(600);
        let mut tracker = Tracker::new();
        tracker.record(&key("a", 0), start);
        tracker.record(&key("a", 1), start + Duration::from_secs(100));
        tracker.record(&key("b", 0), start + Duration::from_secs(100));
        assert_eq!(
            tracker.down("a", start + Duration::from_secs(100), window),
            2
        );
        assert_eq!(
            tracker.down("a", start + Duration::from_secs(600), window),
            2
        );
        assert_eq!(
            tracker.down("a", start + Duration::from_secs(601), window),
            1
        );
        assert_eq!(
            tracker.down("a", start + Duration::from_secs(701), window),
            0
        );
        assert_eq!(
            tracker.down("b", start + Duration::from_secs(700), window),
            1
        );
        // Found down again: counted again.
        tracker.record(&key("a", 0), start + Duration::from_secs(700));
        assert_eq!(
            tracker.down("a", start + Duration::from_secs(701), window),
            1
        );

        tracker.prune(start + Duration::from_secs(701), window, |k| {
            k.deployment == "a"
        });
        assert_eq!(
            tracker.down("b", start + Duration::from_secs(701), window),
            0
        );
        assert_eq!(
            tracker.down("a", start + Duration::from_secs(701), window),
            1
        );
    }
}
