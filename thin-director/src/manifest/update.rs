//! The `update` block: canaries, `max_in_flight`, watch times and `serial`, at the top of a manifest
//! and overridden per instance group.
//!
//! Follows the director's `deployment_plan/update_config.rb`, `numerical_value_calculator.rb` and
//! `starter.rb`:
//! - `canaries` and `max_in_flight` are an integer or a percentage string (`"25%"`). A percentage
//!   resolves to `floor(percent × instances / 100)`, capped at the instance count (Ruby's integer
//!   division); `max_in_flight` is then raised to at least 1. The director floors, it does not round
//!   up: 25% of 10 instances is 2, and its `numerical_value_calculator_spec.rb` expects 33% of 10 to
//!   be 3.
//! - watch times are milliseconds, an integer or a `"min-max"` range; min must not exceed max.
//! - the watch schedule sleeps `min`, then `floor((max − min) / step)` times `step`, where
//!   `step = clamp((max − min) / 9, 1 s, 15 s)`, checking `get_state` after each sleep.
//!
//! Where we are stricter: a `max_in_flight` of 0 (or `0%`) is refused instead of silently becoming 1.
//! `vm_strategy` and `initial_deploy_az_update_strategy` are accepted and ignored: the thin director
//! always deletes before it creates and updates AZs in order.

use std::time::Duration;

use serde_yaml_ng::Value;

use crate::manifest::reader::{Fields, Keys, Path, Reader};

/// How instances of one group are updated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateConfig {
    /// Instances updated first, before the others start.
    pub canaries: Count,
    /// Instances updated at once.
    pub max_in_flight: Count,
    /// How long to watch a canary come up.
    pub canary_watch_time: WatchTime,
    /// How long to watch any other instance come up.
    pub update_watch_time: WatchTime,
    /// Whether this group waits for the groups before it (the default) or runs beside them.
    pub serial: bool,
}

/// An instance count: absolute, or a percentage of the group's instances.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Count {
    /// That many instances.
    Absolute(u64),
    /// That percentage of the instances.
    Percent(u64),
}

/// A watch time in milliseconds: `min` before the first check, `max` at the latest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WatchTime {
    /// Milliseconds before the first `get_state`.
    pub min_ms: u64,
    /// Milliseconds after which the instance counts as failed.
    pub max_ms: u64,
}

impl UpdateConfig {
    /// The number of canaries for a group of `instances`.
    pub fn canaries(&self, instances: usize) -> usize {
        self.canaries.resolve(instances)
    }

    /// The number of instances updated at once for a group of `instances`: at least 1.
    pub fn max_in_flight(&self, instances: usize) -> usize {
        self.max_in_flight.resolve(instances).max(1)
    }
}

impl Count {
    /// The count for a group of `instances`, as `NumericalValueCalculator` computes it.
    pub fn resolve(&self, instances: usize) -> usize {
        match *self {
            Count::Absolute(count) => usize::try_from(count).unwrap_or(usize::MAX),
            Count::Percent(percent) => {
                let instances_u128 = instances as u128;
                let share = u128::from(percent) * instances_u128 / 100;
                usize::try_from(share.min(instances_u128)).unwrap_or(instances)
            }
        }
    }

    /// Parses `"25%"` or `"3"`.
    fn parse(text: &str) -> Option<Count> {
        let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        match text.strip_suffix('%') {
            Some(percent) if all_digits(percent) => percent.parse().ok().map(Count::Percent),
            Some(_) => None,
            None if all_digits(text) => text.parse().ok().map(Count::Absolute),
            None => None,
        }
    }

    fn is_zero(&self) -> bool {
        matches!(self, Count::Absolute(0) | Count::Percent(0))
    }
}

impl WatchTime {
    /// Parses `"1000-30000"` (spaces allowed around the dash) or `"5000"`.
    pub fn parse(text: &str) -> Option<WatchTime> {
        let number = |s: &str| -> Option<u64> {
            let s = s.trim();
            (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                .then(|| s.parse().ok())
                .flatten()
        };
        let (min_ms, max_ms) = match text.split_once('-') {
            Some((min, max)) => (number(min)?, number(max)?),
            None => {
                let single = number(text)?;
                (single, single)
            }
        };
        Some(WatchTime { min_ms, max_ms })
    }

    /// The sleeps between `get_state` checks, as `Starter#watch_schedule` computes them.
    pub fn schedule(&self) -> Vec<Duration> {
        let delta = self.max_ms.saturating_sub(self.min_ms) as f64;
        let step = (delta / 9.0).clamp(1000.0, 15000.0);
        let steps = (delta / step).floor() as usize;
        let mut schedule = Vec::with_capacity(steps + 1);
        schedule.push(Duration::from_millis(self.min_ms));
        schedule.extend(std::iter::repeat_n(
            Duration::from_secs_f64(step / 1000.0),
            steps,
        ));
        schedule
    }
}

const UPDATE_KEYS: Keys = Keys {
    known: &[
        "canaries",
        "max_in_flight",
        "canary_watch_time",
        "update_watch_time",
        "serial",
    ],
    ignored: &["vm_strategy", "initial_deploy_az_update_strategy"],
    unsupported: &[],
};

/// What an instance group's `update` block is read against when the deployment's own is broken, so
/// that the group's problems are reported too. Never part of a parsed manifest.
pub(crate) const STAND_IN: UpdateConfig = UpdateConfig {
    canaries: Count::Absolute(1),
    max_in_flight: Count::Absolute(1),
    canary_watch_time: WatchTime {
        min_ms: 0,
        max_ms: 0,
    },
    update_watch_time: WatchTime {
        min_ms: 0,
        max_ms: 0,
    },
    serial: true,
};

/// Reads an `update` block. At the top of a manifest (`base` is `None`) the four counts and times
/// are required; in an instance group each key overrides the one of `base`.
pub(crate) fn read(
    reader: &mut Reader,
    value: &Value,
    path: &Path,
    base: Option<&UpdateConfig>,
) -> Option<UpdateConfig> {
    let fields = reader.fields(value, path, &UPDATE_KEYS)?;
    let required = base.is_none();
    let canaries = setting(reader, &fields, "canaries", required, |r, v, p| {
        count(r, v, p, false)
    });
    let max_in_flight = setting(reader, &fields, "max_in_flight", required, |r, v, p| {
        count(r, v, p, true)
    });
    let canary_watch_time = setting(reader, &fields, "canary_watch_time", required, watch_time);
    let update_watch_time = setting(reader, &fields, "update_watch_time", required, watch_time);
    let serial = fields.optional_with(reader, "serial", Reader::boolean);
    Some(UpdateConfig {
        canaries: canaries.or(base.map(|b| b.canaries))?,
        max_in_flight: max_in_flight.or(base.map(|b| b.max_in_flight))?,
        canary_watch_time: canary_watch_time.or(base.map(|b| b.canary_watch_time))?,
        update_watch_time: update_watch_time.or(base.map(|b| b.update_watch_time))?,
        serial: serial.or(base.map(|b| b.serial)).unwrap_or(true),
    })
}

/// The setting under `key`, read with `read`; a problem when it is `required` and absent.
fn setting<'a, T>(
    reader: &mut Reader,
    fields: &Fields<'a>,
    key: &str,
    required: bool,
    read: impl FnOnce(&mut Reader, &'a Value, &Path) -> Option<T>,
) -> Option<T> {
    if required {
        fields.required_with(reader, key, read)
    } else {
        fields.optional_with(reader, key, read)
    }
}

fn count(reader: &mut Reader, value: &Value, path: &Path, is_max_in_flight: bool) -> Option<Count> {
    let count = match value {
        Value::Number(_) => reader.count(value, path).map(Count::Absolute)?,
        Value::String(text) => match Count::parse(text.trim()) {
            Some(count) => count,
            None => {
                reader.problem(
                    path,
                    format!("expected an integer or a percentage like \"25%\", found {text:?}"),
                );
                return None;
            }
        },
        _ => {
            reader.problem(path, "expected an integer or a percentage like \"25%\"");
            return None;
        }
    };
    if is_max_in_flight && count.is_zero() {
        reader.problem(path, "must be at least 1");
        return None;
    }
    Some(count)
}

fn watch_time(reader: &mut Reader, value: &Value, path: &Path) -> Option<WatchTime> {
    let parsed = match value {
        Value::Number(_) => reader.count(value, path).map(|ms| WatchTime {
            min_ms: ms,
            max_ms: ms,
        }),
        Value::String(text) => {
            let parsed = WatchTime::parse(text);
            if parsed.is_none() {
                reader.problem(
                    path,
                    format!("expected milliseconds or a range like \"1000-30000\", found {text:?}"),
                );
            }
            parsed
        }
        _ => {
            reader.problem(path, "expected milliseconds or a range like \"1000-30000\"");
            None
        }
    }?;
    if parsed.min_ms > parsed.max_ms {
        reader.problem(path, "the minimum watch time must not exceed the maximum");
        return None;
    }
    Some(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::error::Document;

    fn secs(list: &[f64]) -> Vec<Duration> {
        list.iter().map(|s| Duration::from_secs_f64(*s)).collect()
    }

    #[test]
    fn watch_schedule_follows_the_director() {
        // 1000-30000: step = 29000/9 ≈ 3222 ms, 9 steps after the first second.
        let schedule = WatchTime::parse("1000-30000").unwrap().schedule();
        assert_eq!(schedule.len(), 10);
        assert_eq!(schedule[0], Duration::from_secs(1));
        assert_eq!(schedule[1], Duration::from_secs_f64(29.0 / 9.0));
        // A short range steps by the 1 s minimum.
        assert_eq!(
            WatchTime::parse("1000 - 4500").unwrap().schedule(),
            secs(&[1.0, 1.0, 1.0, 1.0])
        );
        // A long range steps by the 15 s maximum.
        let long = WatchTime::parse("0-300000").unwrap().schedule();
        assert_eq!(long.len(), 21);
        assert_eq!(long[20], Duration::from_secs(15));
        // A single value is one sleep.
        assert_eq!(WatchTime::parse("5000").unwrap().schedule(), secs(&[5.0]));
    }

    #[test]
    fn percentages_resolve_as_the_director_does() {
        let config = |canaries, max_in_flight| UpdateConfig {
            canaries,
            max_in_flight,
            canary_watch_time: WatchTime {
                min_ms: 0,
                max_ms: 0,
            },
            update_watch_time: WatchTime {
                min_ms: 0,
                max_ms: 0,
            },
            serial: true,
        };
        let update = config(Count::Percent(25), Count::Percent(25));
        // floor(25 × 10 / 100) = 2, not 3.
        assert_eq!(update.max_in_flight(10), 2);
        // The director's own spec: 33% of 10 is 3.
        assert_eq!(Count::Percent(33).resolve(10), 3);
        assert_eq!(update.canaries(10), 2);
        // Rounded down to 0, raised to 1 for max_in_flight only.
        assert_eq!(update.max_in_flight(3), 1);
        assert_eq!(update.canaries(3), 0);
        // Capped at the group size.
        let update = config(Count::Percent(150), Count::Absolute(7));
        assert_eq!(update.canaries(4), 4);
        assert_eq!(update.max_in_flight(4), 7);
        assert_eq!(
            config(Count::Absolute(1), Count::Percent(100)).max_in_flight(0),
            1
        );
    }

    fn read_yaml(text: &str, base: Option<&UpdateConfig>) -> Result<UpdateConfig, Vec<String>> {
        let mut reader = Reader::new(Document::Manifest);
        let value = reader.parse(text).unwrap();
        let update = read(&mut reader, &value, &Path::default().key("update"), base);
        reader
            .finish(update)
            .map_err(|problems| problems.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn top_level_update_needs_all_four_settings() {
        let update = read_yaml(
            "canaries: 1\nmax_in_flight: '25%'\ncanary_watch_time: 1000-30000\n\
             update_watch_time: 5000\nvm_strategy: delete-create\n",
            None,
        )
        .unwrap();
        assert_eq!(update.max_in_flight, Count::Percent(25));
        assert_eq!(
            update.update_watch_time,
            WatchTime {
                min_ms: 5000,
                max_ms: 5000
            }
        );
        assert!(update.serial);
        assert_eq!(
            read_yaml("canaries: 1\nserial: false\n", None).unwrap_err(),
            [
                "update.max_in_flight: missing required key",
                "update.canary_watch_time: missing required key",
                "update.update_watch_time: missing required key",
            ]
        );
    }

    #[test]
    fn group_update_overrides_only_what_it_names() {
        let base = read_yaml(
            "canaries: 1\nmax_in_flight: 2\ncanary_watch_time: 1000\nupdate_watch_time: 2000\n",
            None,
        )
        .unwrap();
        let group = read_yaml("max_in_flight: 50%\nserial: false\n", Some(&base)).unwrap();
        assert_eq!(group.canaries, Count::Absolute(1));
        assert_eq!(group.max_in_flight, Count::Percent(50));
        assert_eq!(group.update_watch_time, base.update_watch_time);
        assert!(!group.serial);
    }

    #[test]
    fn bad_counts_and_watch_times_are_refused() {
        let base = UpdateConfig {
            canaries: Count::Absolute(1),
            max_in_flight: Count::Absolute(1),
            canary_watch_time: WatchTime {
                min_ms: 0,
                max_ms: 0,
            },
            update_watch_time: WatchTime {
                min_ms: 0,
                max_ms: 0,
            },
            serial: true,
        };
        assert_eq!(
            read_yaml(
                "max_in_flight: 0\ncanaries: lots\ncanary_watch_time: 30000-1000\n\
                 update_watch_time: soon\n",
                Some(&base)
            )
            .unwrap_err(),
            [
                "update.canaries: expected an integer or a percentage like \"25%\", found \"lots\"",
                "update.max_in_flight: must be at least 1",
                "update.canary_watch_time: the minimum watch time must not exceed the maximum",
                "update.update_watch_time: expected milliseconds or a range like \"1000-30000\", found \"soon\"",
            ]
        );
        assert_eq!(
            read_yaml("max_in_flight: 0%\n", Some(&base)).unwrap_err(),
            ["update.max_in_flight: must be at least 1"]
        );
        assert_eq!(
            read_yaml("canaries: -1\n", Some(&base)).unwrap_err(),
            ["update.canaries: must not be negative, found -1"]
        );
    }
}
