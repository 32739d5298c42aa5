//! systemd's service manager reached over D-Bus (`org.freedesktop.systemd1.Manager`), for the units
//! the agent restarts: systemd-networkd after it rewrote the network files and systemd-resolved
//! after it rewrote the DNS servers ([`super::networkd`]).
//!
//! The Go agent runs `systemctl` and the stemcell's `restart_networking`; we ask the manager
//! directly ([`DbusSystemd`]): `RestartUnit(<unit>, "replace")` on the system bus, then wait for the
//! job's `JobRemoved` signal and require its result to be `done`. A restart that fails names the
//! unit and systemd's result (`failed`, `timeout`, `dependency`, ...), not a command's output.
//!
//! Everything else reaches systemd through the [`Systemd`] trait, so the unit tests run without a
//! bus: [`RecordingSystemd`] (tests and the `testing` feature) records the restarts and fails on
//! demand.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dbus::blocking::Connection;
use dbus::message::MatchRule;

const DESTINATION: &str = "org.freedesktop.systemd1";
const OBJECT: &str = "/org/freedesktop/systemd1";
const MANAGER: &str = "org.freedesktop.systemd1.Manager";

/// Why a unit could not be restarted.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The system bus or the manager could not be reached, or refused the call.
    #[error("restarting {unit} over D-Bus: {source}")]
    Bus {
        /// The unit.
        unit: String,
        /// The cause.
        #[source]
        source: dbus::Error,
    },
    /// The restart job ended with another result than `done`.
    #[error("restarting {unit}: systemd's job ended with result '{result}'")]
    JobFailed {
        /// The unit.
        unit: String,
        /// systemd's job result.
        result: String,
    },
    /// The restart job did not end in time.
    #[error("restarting {unit}: systemd's job did not end within {}s", .timeout.as_secs())]
    Timeout {
        /// The unit.
        unit: String,
        /// How long it was waited for.
        timeout: Duration,
    },
    /// A fake was told to fail (tests only).
    #[error("restarting {unit}: {message}")]
    Fake {
        /// The unit.
        unit: String,
        /// The text it was told.
        message: String,
    },
}

/// The service manager, as far as the agent needs it.
pub trait Systemd: Send + Sync + fmt::Debug {
    /// Restarts `unit` (`systemd-networkd.service`) and waits until the restart has finished.
    fn restart_unit(&self, unit: &str) -> Result<(), Error>;
}

/// systemd on the system bus.
#[derive(Debug, Clone)]
pub struct DbusSystemd {
    /// How long a restart job may take.
    pub timeout: Duration,
}

impl Default for DbusSystemd {
    fn default() -> DbusSystemd {
        DbusSystemd {
            timeout: Duration::from_secs(90),
        }
    }
}

impl Systemd for DbusSystemd {
    fn restart_unit(&self, unit: &str) -> Result<(), Error> {
        let bus = |source| Error::Bus {
            unit: unit.to_owned(),
            source,
        };
        let connection = Connection::new_system().map_err(bus)?;
        let proxy = connection.with_proxy(DESTINATION, OBJECT, self.timeout);
        // The manager sends job signals only to subscribed clients; the match is in place before
        // the job exists, so its end cannot be missed.
        proxy
            .method_call::<(), _, _, _>(MANAGER, "Subscribe", ())
            .map_err(bus)?;
        let removed: Arc<Mutex<Vec<(dbus::Path<'static>, String)>>> = Arc::default();
        let seen = removed.clone();
        connection
            .add_match(
                MatchRule::new_signal(MANAGER, "JobRemoved"),
                move |(_id, job, _unit, result): (u32, dbus::Path<'static>, String, String),
                      _: &Connection,
                      _: &dbus::Message| {
                    seen.lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push((job, result));
                    true
                },
            )
            .map_err(bus)?;
        let (job,): (dbus::Path<'static>,) = proxy
            .method_call(MANAGER, "RestartUnit", (unit, "replace"))
            .map_err(bus)?;
        tracing::debug!(unit, job = %job, "restart job queued");
        let deadline = Instant::now() + self.timeout;
        loop {
            let ended = removed
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .find(|(path, _)| *path == job)
                .map(|(_, result)| result.clone());
            if let Some(result) = ended {
                return job_result(unit, &result);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Error::Timeout {
                    unit: unit.to_owned(),
                    timeout: self.timeout,
                });
            }
            connection
                .process(left.min(Duration::from_millis(500)))
                .map_err(bus)?;
        }
    }
}

/// A job `result` of `JobRemoved` as an outcome.
fn job_result(unit: &str, result: &str) -> Result<(), Error> {
    if result == "done" {
        Ok(())
    } else {
        Err(Error::JobFailed {
            unit: unit.to_owned(),
            result: result.to_owned(),
        })
    }
}

/// A fake service manager: records the units restarted, fails those it is told to.
#[cfg(any(test, feature = "testing"))]
#[derive(Debug, Default)]
pub struct RecordingSystemd {
    restarted: std::sync::Mutex<Vec<String>>,
    failing: std::sync::Mutex<Vec<(String, String)>>,
}

#[cfg(any(test, feature = "testing"))]
impl RecordingSystemd {
    /// A fake that restarts every unit.
    pub fn new() -> RecordingSystemd {
        RecordingSystemd::default()
    }

    /// Makes restarts of `unit` fail with `message`.
    pub fn fail(&self, unit: &str, message: &str) {
        self.failing
            .lock()
            .unwrap()
            .push((unit.to_owned(), message.to_owned()));
    }

    /// The units restarted (or attempted), in order.
    pub fn restarted(&self) -> Vec<String> {
        self.restarted.lock().unwrap().clone()
    }
}

#[cfg(any(test, feature = "testing"))]
impl Systemd for RecordingSystemd {
    fn restart_unit(&self, unit: &str) -> Result<(), Error> {
        self.restarted.lock().unwrap().push(unit.to_owned());
        let failing = self.failing.lock().unwrap();
        match failing.iter().find(|(name, _)| name == unit) {
            Some((_, message)) => Err(Error::Fake {
                unit: unit.to_owned(),
                message: message.clone(),
            }),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_done_job_is_a_restart() {
        assert!(job_result("systemd-networkd.service", "done").is_ok());
        assert_eq!(
            job_result("systemd-networkd.service", "failed")
                .unwrap_err()
                .to_string(),
            "restarting systemd-networkd.service: systemd's job ended with result 'failed'"
        );
    }

    #[test]
    fn the_fake_records_and_fails_on_demand() {
        let fake = RecordingSystemd::new();
        fake.fail("systemd-resolved.service", "boom");
        fake.restart_unit("systemd-networkd.service").unwrap();
        assert_eq!(
            fake.restart_unit("systemd-resolved.service")
                .unwrap_err()
                .to_string(),
            "restarting systemd-resolved.service: boom"
        );
        assert_eq!(
            fake.restarted(),
            vec!["systemd-networkd.service", "systemd-resolved.service"]
        );
    }
}
