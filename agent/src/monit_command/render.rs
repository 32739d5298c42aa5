//! The text of `monit summary` and `monit status`, shaped like monit 5.2.5's (`src/http/cervlet.c`:
//! `print_status`, `status_service_txt`, `get_service_status_text`; `src/util.c`:
//! `Util_getUptime`; the names in `src/monitor.c` and the event table of `src/event.c`).
//!
//! Both begin with `The Monit daemon 5.2.5 uptime: <uptime>` and a blank line. `summary` has one
//! line per service, `<Type> '<name>'` left-aligned in 35 columns, a space, then the status text;
//! `status` has one block per service, each line two spaces, a 33-column label, a space and the
//! value, and ends with `data collected` followed by a blank line (monit prints `ctime`, whose
//! newline makes it). The system service, last, is `System 'system_<hostname>'`.
//!
//! Differences from monit: `data collected` is the time of the report, in UTC (monit prints the
//! local time of its last check).

use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use jobs::process::{Failure, Monitor, Pending, Report, ServiceReport};

/// The monit version the output claims, the one BOSH stemcells ship.
pub const MONIT_VERSION: &str = "5.2.5";

/// `monit summary`.
pub fn summary(report: &Report) -> String {
    let mut text = header(report);
    for service in &report.services {
        let _ = writeln!(
            text,
            "{:<35} {}",
            format!("Process '{}'", service.name),
            status_text(service)
        );
    }
    let _ = writeln!(
        text,
        "{:<35} running",
        format!("System '{}'", system_name(report))
    );
    text
}

/// `monit status`, of every service or only of `service`; `None` when no service has that name.
pub fn status(report: &Report, service: Option<&str>) -> Option<String> {
    let mut text = header(report);
    let collected = ctime(report.collected);
    let mut found = false;
    for entry in &report.services {
        if service.is_some_and(|name| name != entry.name) {
            continue;
        }
        found = true;
        let _ = writeln!(text, "Process '{}'", entry.name);
        line(&mut text, "status", &status_text(entry));
        line(&mut text, "monitoring status", monitor_text(entry.monitor));
        if let Some(process) = &entry.process {
            line(&mut text, "pid", &process.pid.to_string());
            line(&mut text, "parent pid", &process.ppid.to_string());
            line(&mut text, "uptime", &uptime(process.uptime_secs));
            line(&mut text, "children", &process.children.to_string());
            line(&mut text, "memory kilobytes", &process.mem_kb.to_string());
            line(
                &mut text,
                "memory kilobytes total",
                &process.mem_kb_total.to_string(),
            );
            line(
                &mut text,
                "memory percent",
                &format!("{:.1}%", process.mem_percent),
            );
            line(
                &mut text,
                "memory percent total",
                &format!("{:.1}%", process.mem_percent_total),
            );
            line(
                &mut text,
                "cpu percent",
                &format!("{:.1}%", process.cpu_percent),
            );
            line(
                &mut text,
                "cpu percent total",
                &format!("{:.1}%", process.cpu_percent_total),
            );
        }
        line(&mut text, "data collected", &collected);
        text.push('\n');
    }
    if service.is_some() && !found {
        return None;
    }
    if service.is_none() {
        let system = &report.system;
        let _ = writeln!(text, "System '{}'", system_name(report));
        line(&mut text, "status", "running");
        line(&mut text, "monitoring status", "monitored");
        line(
            &mut text,
            "load average",
            &format!(
                "[{:.2}] [{:.2}] [{:.2}]",
                system.load[0], system.load[1], system.load[2]
            ),
        );
        line(
            &mut text,
            "cpu",
            &format!(
                "{:.1}%us {:.1}%sy {:.1}%wa",
                system.cpu_user, system.cpu_system, system.cpu_wait
            ),
        );
        line(
            &mut text,
            "memory usage",
            &format!("{} kB [{:.1}%]", system.mem_kb, system.mem_percent),
        );
        line(
            &mut text,
            "swap usage",
            &format!("{} kB [{:.1}%]", system.swap_kb, system.swap_percent),
        );
        line(&mut text, "data collected", &collected);
        text.push('\n');
    }
    Some(text)
}

/// A service's status text, as monit's `get_service_status_text`: `not monitored` or
/// `initializing` for a service not (yet) watched, else the first failure or `running`, then
/// ` - <action> pending` when an action waits.
pub fn status_text(service: &ServiceReport) -> String {
    let state = match (service.monitor, service.failure) {
        (Monitor::Not, _) => "not monitored",
        (Monitor::Init, _) => "initializing",
        (Monitor::Yes, Some(Failure::ExecutionFailed)) => "Execution failed",
        (Monitor::Yes, Some(Failure::DoesNotExist)) => "Does not exist",
        (Monitor::Yes, Some(Failure::ResourceLimit)) => "Resource limit matched",
        (Monitor::Yes, Some(Failure::Timeout)) => "Timeout",
        (Monitor::Yes, None) => "running",
    };
    match service.pending {
        None => state.to_owned(),
        Some(pending) => format!("{state} - {} pending", pending_name(pending)),
    }
}

/// `Util_getUptime` with a space as separator: days and hours only when there are some (hours
/// whenever there are days), always minutes, each followed by the separator.
pub fn uptime(secs: u64) -> String {
    let days = secs / 86_400;
    let hours = secs % 86_400 / 3_600;
    let minutes = secs % 3_600 / 60;
    let mut text = String::new();
    if days > 0 {
        let _ = write!(text, "{days}d ");
    }
    if hours > 0 || days > 0 {
        let _ = write!(text, "{hours}h ");
    }
    let _ = write!(text, "{minutes}m ");
    text
}

/// `time` as C's `ctime` prints it, without the newline, in UTC: `Thu Feb 29 12:34:56 2024`.
pub fn ctime(time: SystemTime) -> String {
    const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    // A clock before 1970 is wrong anyway; it reads as the epoch.
    let secs = time
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs());
    let date = time::OffsetDateTime::from_unix_timestamp(secs as i64)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{} {} {:>2} {:02}:{:02}:{:02} {}",
        DAYS[date.weekday().number_days_from_sunday() as usize],
        MONTHS[date.month() as usize - 1],
        date.day(),
        date.hour(),
        date.minute(),
        date.second(),
        date.year()
    )
}

fn header(report: &Report) -> String {
    format!(
        "The Monit daemon {MONIT_VERSION} uptime: {}\n\n",
        uptime(report.uptime.as_secs())
    )
}

fn line(text: &mut String, label: &str, value: &str) {
    let _ = writeln!(text, "  {label:<33} {value}");
}

fn system_name(report: &Report) -> String {
    let hostname = if report.hostname.is_empty() {
        "localhost"
    } else {
        report.hostname.as_str()
    };
    format!("system_{hostname}")
}

fn monitor_text(monitor: Monitor) -> &'static str {
    match monitor {
        Monitor::Not => "not monitored",
        Monitor::Yes => "monitored",
        Monitor::Init => "initializing",
    }
}

fn pending_name(pending: Pending) -> &'static str {
    match pending {
        Pending::Start => "start",
        Pending::Stop => "stop",
        Pending::Restart => "restart",
        Pending::Monitor => "monitor",
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use jobs::process::{ProcessReport, SystemReport};

    use super::*;

    fn service(
        name: &str,
        monitor: Monitor,
        failure: Option<Failure>,
        pending: Option<Pending>,
    ) -> ServiceReport {
        ServiceReport {
            name: name.to_owned(),
            monitor,
            failure,
            pending,
            process: None,
        }
    }

    fn report(services: Vec<ServiceReport>) -> Report {
        Report {
            uptime: Duration::from_secs(2 * 3600 + 3 * 60 + 59),
            hostname: "vm-1".to_owned(),
            collected: UNIX_EPOCH + Duration::from_secs(1_709_210_096),
            services,
            system: SystemReport {
                load: [0.5, 0.25, 0.0],
                cpu_user: 1.2,
                cpu_system: 0.3,
                cpu_wait: 0.0,
                mem_kb: 123_456,
                mem_percent: 12.3,
                swap_kb: 0,
                swap_percent: 0.0,
            },
        }
    }

    #[test]
    fn summary_has_monit_header_columns_and_system_line() {
        let text = summary(&report(vec![
            service("nats", Monitor::Yes, None, None),
            service("director", Monitor::Not, None, None),
            service(
                "worker_with_a_long_name_of_35_chars",
                Monitor::Init,
                None,
                None,
            ),
        ]));
        assert_eq!(
            text,
            "The Monit daemon 5.2.5 uptime: 2h 3m \n\
             \n\
             Process 'nats'                      running\n\
             Process 'director'                  not monitored\n\
             Process 'worker_with_a_long_name_of_35_chars' initializing\n\
             System 'system_vm-1'                running\n"
        );
    }

    #[test]
    fn status_texts_follow_monit() {
        let cases = [
            (Monitor::Yes, None, None, "running"),
            (Monitor::Not, None, None, "not monitored"),
            (
                Monitor::Not,
                None,
                Some(Pending::Start),
                "not monitored - start pending",
            ),
            (
                Monitor::Not,
                None,
                Some(Pending::Stop),
                "not monitored - stop pending",
            ),
            (Monitor::Init, None, None, "initializing"),
            (
                Monitor::Yes,
                Some(Failure::DoesNotExist),
                None,
                "Does not exist",
            ),
            (
                Monitor::Yes,
                Some(Failure::ExecutionFailed),
                None,
                "Execution failed",
            ),
            (
                Monitor::Yes,
                Some(Failure::ResourceLimit),
                None,
                "Resource limit matched",
            ),
            (Monitor::Yes, Some(Failure::Timeout), None, "Timeout"),
            (
                Monitor::Yes,
                None,
                Some(Pending::Restart),
                "running - restart pending",
            ),
            (
                Monitor::Not,
                Some(Failure::DoesNotExist),
                None,
                "not monitored",
            ),
        ];
        for (monitor, failure, pending, expected) in cases {
            assert_eq!(
                status_text(&service("web", monitor, failure, pending)),
                expected
            );
        }
    }

    #[test]
    fn uptimes_and_dates_are_printed_as_monit_does() {
        let cases: &[(u64, &str)] = &[
            (0, "0m "),
            (59, "0m "),
            (3 * 60, "3m "),
            (3600, "1h 0m "),
            (86_400, "1d 0h 0m "),
            (2 * 86_400 + 5 * 3600 + 7 * 60, "2d 5h 7m "),
        ];
        for (secs, expected) in cases {
            assert_eq!(uptime(*secs), *expected, "{secs}");
        }
        assert_eq!(
            ctime(UNIX_EPOCH + Duration::from_secs(1_709_210_096)),
            "Thu Feb 29 12:34:56 2024"
        );
        assert_eq!(ctime(UNIX_EPOCH), "Thu Jan  1 00:00:00 1970");
    }

    #[test]
    fn status_has_a_block_per_service_and_the_system() {
        let mut running = service("web", Monitor::Yes, None, None);
        running.process = Some(ProcessReport {
            pid: 4242,
            ppid: 1,
            uptime_secs: 3 * 3600 + 60,
            children: 2,
            mem_kb: 1000,
            mem_kb_total: 3000,
            mem_percent: 0.1,
            mem_percent_total: 0.3,
            cpu_percent: 1.0,
            cpu_percent_total: 2.5,
        });
        let stopped = service("db", Monitor::Not, None, None);
        let report = report(vec![running, stopped]);
        let text = status(&report, None).unwrap();
        assert_eq!(
            text,
            "The Monit daemon 5.2.5 uptime: 2h 3m \n\
             \n\
             Process 'web'\n  \
               status                            running\n  \
               monitoring status                 monitored\n  \
               pid                               4242\n  \
               parent pid                        1\n  \
               uptime                            3h 1m \n  \
               children                          2\n  \
               memory kilobytes                  1000\n  \
               memory kilobytes total            3000\n  \
               memory percent                    0.1%\n  \
               memory percent total              0.3%\n  \
               cpu percent                       1.0%\n  \
               cpu percent total                 2.5%\n  \
               data collected                    Thu Feb 29 12:34:56 2024\n\
             \n\
             Process 'db'\n  \
               status                            not monitored\n  \
               monitoring status                 not monitored\n  \
               data collected                    Thu Feb 29 12:34:56 2024\n\
             \n\
             System 'system_vm-1'\n  \
               status                            running\n  \
               monitoring status                 monitored\n  \
               load average                      [0.50] [0.25] [0.00]\n  \
               cpu                               1.2%us 0.3%sy 0.0%wa\n  \
               memory usage                      123456 kB [12.3%]\n  \
               swap usage                        0 kB [0.0%]\n  \
               data collected                    Thu Feb 29 12:34:56 2024\n\
             \n"
        );
        let only_db = status(&report, Some("db")).unwrap();
        assert!(only_db.contains("Process 'db'\n"), "{only_db}");
        assert!(!only_db.contains("Process 'web'"), "{only_db}");
        assert!(!only_db.contains("System '"), "{only_db}");
        assert_eq!(status(&report, Some("ghost")), None);
    }
}
