//! Alerts in monit's event vocabulary, as monit 5.2.5 would have mailed them to the Go agent's SMTP
//! receiver (`src/event.c`, `src/validate.c`; the Go side is `jobsupervisor/monit_job_supervisor.go`
//! and `agent/alert/monit_adapter.go`, which lower-cases the event and maps it to a severity).
//!
//! Monit posts an event when a check's state *changes* (failed to succeeded or back), not on every
//! cycle, so a process that keeps failing to start raises one `execution failed`, not one per try.
//! The supervisor follows that rule; each death is a change, so each death alerts.
//!
//! | event | action | description (monit's text) | when |
//! |---|---|---|---|
//! | `does not exist` | `restart` (`alert` in passive mode) | `process is not running` | a watched process died |
//! | `exists` | `alert` | `process is running with pid <pid>` | it runs again after a failure (the agent ignores this event) |
//! | `execution failed` | `alert` | `failed to start` / `failed to stop` | a start or stop program failed or timed out |
//! | `pid changed` | `alert` | `process PID changed to <pid>` | the pidfile names another live process |
//! | `resource limit matched` | the test's | `total mem amount of 1024kB matches resource limit [total mem amount>512kB]` | a resource test failed for its cycles |
//! | `resource limit succeeded` | the test's recovery (`alert`) | `'web' total mem amount check succeeded [current total mem amount=100kB]` | it passes again (the agent ignores this event) |
//! | `timeout` | the limit's (`unmonitor` for `then timeout`) | `service restarted 3 times within 2 cycles(s) - unmonitor` | a restart limit was reached |

use std::time::{SystemTime, UNIX_EPOCH};

use crate::supervisor::MonitAlert;

/// A monit event the supervisor raises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Event {
    /// The process is gone (monit's `Event_Nonexist`, failed).
    DoesNotExist,
    /// The process runs again (`Event_Nonexist`, succeeded).
    Exists,
    /// A start or stop program failed (`Event_Exec`, failed).
    ExecutionFailed,
    /// The pidfile names another process (`Event_Pid`, changed).
    PidChanged,
    /// A resource test failed (`Event_Resource`, failed).
    ResourceLimitMatched,
    /// A failed resource test passes again (`Event_Resource`, succeeded).
    ResourceLimitSucceeded,
    /// A restart limit was reached (`Event_Timeout`, failed).
    Timeout,
}

/// What the supervisor did about an event, in monit's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    /// Only an alert.
    Alert,
    /// The process is restarted.
    Restart,
    /// The service is stopped.
    Stop,
    /// The service is no longer watched.
    Unmonitor,
    /// A program runs.
    Exec,
    /// The service is started.
    Start,
}

impl Event {
    /// The event's name as the Go agent sees it (lower case).
    pub(crate) fn name(self) -> &'static str {
        match self {
            Event::DoesNotExist => "does not exist",
            Event::Exists => "exists",
            Event::ExecutionFailed => "execution failed",
            Event::PidChanged => "pid changed",
            Event::ResourceLimitMatched => "resource limit matched",
            Event::ResourceLimitSucceeded => "resource limit succeeded",
            Event::Timeout => "timeout",
        }
    }

    /// The event's name as monit writes it in `MONIT_EVENT` and its mails (`src/event.c`).
    pub(crate) fn monit_name(self) -> &'static str {
        match self {
            Event::DoesNotExist => "Does not exist",
            Event::Exists => "Exists",
            Event::ExecutionFailed => "Execution failed",
            Event::PidChanged => "PID changed",
            Event::ResourceLimitMatched => "Resource limit matched",
            Event::ResourceLimitSucceeded => "Resource limit succeeded",
            Event::Timeout => "Timeout",
        }
    }
}

impl Action {
    /// The action's name in monit's mail (`Action: restart`).
    pub(crate) fn name(self) -> &'static str {
        match self {
            Action::Alert => "alert",
            Action::Restart => "restart",
            Action::Stop => "stop",
            Action::Unmonitor => "unmonitor",
            Action::Exec => "exec",
            Action::Start => "start",
        }
    }
}

/// An alert about `service`, dated `now`, with a fresh id.
pub(crate) fn alert(
    service: &str,
    event: Event,
    action: Action,
    description: String,
    now: SystemTime,
) -> MonitAlert {
    MonitAlert {
        id: uuid::Uuid::new_v4().to_string(),
        service: service.to_owned(),
        event: event.name().to_owned(),
        action: action.name().to_owned(),
        date: rfc1123z(now),
        description,
    }
}

/// `now` in RFC 1123 with a numeric zone, in UTC (`Sun, 22 May 2011 20:07:41 +0000`), the format
/// of monit's `Date:` line that the Go agent parses with `time.RFC1123Z`.
pub(crate) fn rfc1123z(now: SystemTime) -> String {
    const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    // A clock before 1970 is wrong anyway; it reads as the epoch.
    let secs = now
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = secs / 86_400;
    let (year, month, day) = civil_from_days(days);
    let of_day = secs % 86_400;
    format!(
        "{}, {day:02} {} {year} {:02}:{:02}:{:02} +0000",
        // 1 January 1970 was a Thursday.
        DAYS[((days + 4) % 7) as usize],
        MONTHS[(month - 1) as usize],
        of_day / 3600,
        of_day % 3600 / 60,
        of_day % 60,
    )
}

/// The proleptic Gregorian date `days` after 1970-01-01 (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn dates_are_rfc1123_with_a_numeric_zone() {
        let cases: &[(u64, &str)] = &[
            (0, "Thu, 01 Jan 1970 00:00:00 +0000"),
            (951_782_400, "Tue, 29 Feb 2000 00:00:00 +0000"),
            (1_709_210_096, "Thu, 29 Feb 2024 12:34:56 +0000"),
            (4_102_444_799, "Thu, 31 Dec 2099 23:59:59 +0000"),
        ];
        for (secs, expected) in cases {
            assert_eq!(
                rfc1123z(UNIX_EPOCH + Duration::from_secs(*secs)),
                *expected,
                "{secs}"
            );
        }
    }

    #[test]
    fn alerts_use_monit_event_and_action_names() {
        let now = UNIX_EPOCH + Duration::from_secs(1_709_210_096);
        let alert = alert(
            "web",
            Event::DoesNotExist,
            Action::Restart,
            "process is not running".to_owned(),
            now,
        );
        assert_eq!(alert.service, "web");
        assert_eq!(alert.event, "does not exist");
        assert_eq!(alert.action, "restart");
        assert_eq!(alert.date, "Thu, 29 Feb 2024 12:34:56 +0000");
        assert_eq!(alert.description, "process is not running");
        assert!(!alert.id.is_empty());
        assert_eq!(Event::ExecutionFailed.name(), "execution failed");
        assert_eq!(Event::PidChanged.name(), "pid changed");
        assert_eq!(Event::Exists.name(), "exists");
        assert_eq!(Action::Alert.name(), "alert");
        assert_eq!(Event::Timeout.name(), "timeout");
        assert_eq!(
            Event::ResourceLimitMatched.monit_name(),
            "Resource limit matched"
        );
        assert_eq!(Action::Unmonitor.name(), "unmonitor");
    }
}
