//! Alerts (`agent/alert/monit_adapter.go`): a supervisor's monit-style alert becomes a health-monitor
//! alert on `hm.agent.alert.<agent_id>`, titled `<service> (<ips>) - <event> - <action>`, with monit's
//! event mapped to a severity (1 alert, 2 critical, 3 error, 4 warning; events that report recovery or
//! no change are not sent at all).

use jobs::supervisor::MonitAlert;

use crate::protocol::Alert;

/// The severity of an unknown event.
const DEFAULT_SEVERITY: u8 = 2;

/// The health-monitor alert for `alert`, or `None` when its event is not worth sending. `ips` are the
/// VM's addresses; `now` is used when monit's date does not parse.
pub fn from_monit(alert: &MonitAlert, ips: &[&str], now: i64) -> Option<Alert> {
    let severity = severity(&alert.event)?;
    let mut ips: Vec<&str> = ips.to_vec();
    ips.sort_unstable();
    let service = if ips.is_empty() {
        alert.service.clone()
    } else {
        format!("{} ({})", alert.service, ips.join(", "))
    };
    let created_at =
        time::OffsetDateTime::parse(&alert.date, &time::format_description::well_known::Rfc2822)
            .map(|date| date.unix_timestamp())
            .unwrap_or(now);
    Some(Alert {
        id: alert.id.clone(),
        severity,
        title: format!("{service} - {} - {}", alert.event, alert.action),
        summary: alert.description.clone(),
        created_at,
    })
}

/// Monit's event to a severity; `None` for events the Go agent ignores.
fn severity(event: &str) -> Option<u8> {
    let event = event.to_lowercase();
    let severity = match event.as_str() {
        "connection failed" | "execution failed" | "monit instance failed" | "does not exist" => 1,
        "checksum failed" | "icmp failed" | "pid failed" | "ppid failed" | "timeout"
        | "uid failed" => 2,
        "connection changed"
        | "content failed"
        | "content doesn't match"
        | "data access error"
        | "filesystem flags failed"
        | "gid failed"
        | "heartbeat failed"
        | "invalid type"
        | "permission failed"
        | "resource limit matched"
        | "size failed"
        | "size changed"
        | "timestamp failed" => 3,
        "action done"
        | "content match"
        | "exists"
        | "timeout recovery"
        | "monit instance changed" => return None,
        other if other.ends_with(" succeeded") || other.ends_with(" not changed") => return None,
        other if other.ends_with(" changed") => 4,
        _ => DEFAULT_SEVERITY,
    };
    Some(severity)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn monit(event: &str, date: &str) -> MonitAlert {
        MonitAlert {
            id: "1304319946.0@localhost".into(),
            service: "nats".into(),
            event: event.into(),
            action: "restart".into(),
            date: date.into(),
            description: "process is not running".into(),
        }
    }

    #[test]
    fn a_monit_alert_becomes_a_health_monitor_alert() {
        let alert = from_monit(
            &monit("Does not exist", "Sun, 22 May 2011 20:07:41 +0500"),
            &["10.0.0.9", "10.0.0.10"],
            7,
        )
        .unwrap();
        assert_eq!(alert.severity, 1);
        assert_eq!(
            alert.title,
            "nats (10.0.0.10, 10.0.0.9) - Does not exist - restart"
        );
        assert_eq!(alert.summary, "process is not running");
        assert_eq!(alert.created_at, 1_306_076_861);
    }

    #[test]
    fn severities_follow_the_go_table() {
        for (event, expected) in [
            ("pid failed", Some(2)),
            ("size changed", Some(3)),
            ("connection changed", Some(3)),
            ("checksum changed", Some(4)),
            ("existence changed", Some(4)),
            ("failing", Some(2)),
            ("pid succeeded", None),
            ("uid not changed", None),
            ("timeout recovery", None),
            ("monit instance changed", None),
        ] {
            assert_eq!(severity(event), expected, "{event}");
        }
    }

    #[test]
    fn without_ips_or_a_date_the_title_is_bare_and_now_is_used() {
        let alert = from_monit(&monit("timeout", "not a date"), &[], 42).unwrap();
        assert_eq!(alert.title, "nats - timeout - restart");
        assert_eq!(alert.created_at, 42);
    }
}
