//! Resource tests and restart limits of a monit file, evaluated once per poll cycle the way monit
//! 5.2.5 does it (`src/validate.c`: `check_process_resources`, `check_timeout`; `src/event.c`:
//! `Event_check_state` for rates and `handle_action`, which counts automatic starts).
//!
//! * `if <resource> <operator> <limit> [rate] then <action> [else if recovered then alert]`, for
//!   `cpu`, `totalcpu` (percent), `memory`, `totalmem` (an amount or a percent of the host's memory)
//!   and `children`: each poll cycle's result goes into a short history; the action fires once the
//!   failures in the last `cycles` reach `events` (one of one without a rate), and the test recovers
//!   once it passes again. CPU shares need two samples, so a CPU test is skipped on a process's first
//!   cycle (monit's "initializing"). The actions honoured are `alert`, `restart`, `stop`,
//!   `unmonitor` and `exec`.
//! * `if <n> restarts within <m> cycles then <action>`: monit counts the starts its own event
//!   handling made (restarts after a death or a resource test, not the operator's), and each poll
//!   cycle once counting began; the limit is reached when `starts >= n` while `cycles <= m`, and
//!   both counters reset once the longest window has passed. `timeout` means `unmonitor`. The
//!   actions honoured are `alert`, `stop`, `unmonitor` and `exec`.
//!
//! Anything else (connection tests, `start` actions, other recovery actions) is not honoured:
//! [`is_honoured`] says so, and the supervisor logs it once when the file is loaded.
//!
//! Alert texts are monit's, so that a health monitor sees the same descriptions.

use crate::monit::{self, Condition, Limit, Operator, Program, Rate, Resource, Service, Test};
use crate::process::event::{Action, Event};
use crate::process::procfs::{self, CpuSample, Usage};

/// The longest window a rate may span (the history is a 64-bit set).
const MAX_RATE_CYCLES: u32 = 64;

/// One poll cycle's failed (and recovered) tests of a service.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Outcome {
    /// The event to alert.
    pub(crate) event: Event,
    /// What the supervisor does about it.
    pub(crate) action: Action,
    /// Monit's description.
    pub(crate) description: String,
    /// The program of an `exec` action.
    pub(crate) program: Option<Program>,
}

/// The resource tests and restart limits of one service, with their state.
#[derive(Debug, Clone, Default)]
pub(crate) struct Checks {
    resources: Vec<ResourceCheck>,
    limits: Vec<RestartLimit>,
    /// Monit's `nstart`: automatic starts counted towards the restart limits.
    starts: u32,
    /// Monit's `ncycle`: poll cycles since counting began.
    cycles: u32,
    /// The restart limit fired in the current window (monit alerts on a change of state only).
    is_timed_out: bool,
    /// The process the histories and CPU sample are about.
    pid: Option<u32>,
    /// The CPU time of the process and of its tree at the previous poll cycle.
    sample: Option<(CpuSample, CpuSample)>,
}

#[derive(Debug, Clone)]
struct ResourceCheck {
    resource: Resource,
    operator: Operator,
    limit: Limit,
    rate: Rate,
    recovery_rate: Rate,
    action: Action,
    program: Option<Program>,
    /// One bit per poll cycle, the newest lowest; 1 is a failure.
    history: u64,
    /// How many cycles the history holds.
    observed: u32,
    is_failed: bool,
}

#[derive(Debug, Clone)]
struct RestartLimit {
    restarts: u32,
    cycles: u32,
    action: Action,
    program: Option<Program>,
}

/// A measured value, in the unit monit compares it in.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Value {
    /// A percentage (monit compares tenths of a percent).
    Percent(f64),
    /// Kilobytes.
    Kilobytes(u64),
    /// A count (of children).
    Count(u64),
}

/// Whether the supervisor does what `test` says.
pub(crate) fn is_honoured(test: &Test) -> bool {
    match &test.condition {
        Condition::DoesNotExist => {
            matches!(test.action, monit::Action::Restart)
                && test.rate.is_none()
                && test.recovery.is_none()
        }
        Condition::Resource {
            resource, limit, ..
        } => {
            is_measurable(*resource, *limit)
                && action(&test.action).is_some_and(|a| a != Action::Start)
                && test.rate.is_none_or(fits)
                && test.recovery.as_ref().is_none_or(|recovery| {
                    matches!(recovery.action, monit::Action::Alert)
                        && recovery.rate.is_none_or(fits)
                })
        }
        Condition::Restarts { cycles, .. } => {
            *cycles <= MAX_RATE_CYCLES
                && action(&test.action)
                    .is_some_and(|a| !matches!(a, Action::Start | Action::Restart))
                && test.recovery.is_none()
        }
        Condition::Connection(_) => false,
    }
}

/// A short description of `test` for the report of what is not honoured: `resource test then
/// start`.
pub(crate) fn describe(test: &Test) -> String {
    let condition = match &test.condition {
        Condition::Connection(_) => "connection test",
        Condition::Resource { .. } => "resource test",
        Condition::DoesNotExist => "does not exist",
        Condition::Restarts { .. } => "restart limit",
    };
    let action = match &test.action {
        monit::Action::Alert => "alert",
        monit::Action::Restart => "restart",
        monit::Action::Start => "start",
        monit::Action::Stop => "stop",
        monit::Action::Unmonitor => "unmonitor",
        monit::Action::Exec(_) => "exec",
    };
    let mut text = format!("if {condition} then {action}");
    if test.rate.is_some() {
        text.push_str(" (with a rate)");
    }
    if test.recovery.is_some() {
        text.push_str(" (with a recovery)");
    }
    text
}

impl Checks {
    /// The honoured resource tests and restart limits of `service`.
    pub(crate) fn from_service(service: &Service) -> Checks {
        let mut checks = Checks::default();
        for test in service.tests.iter().filter(|test| is_honoured(test)) {
            let Some(action) = action(&test.action) else {
                continue;
            };
            let program = match &test.action {
                monit::Action::Exec(program) => Some(program.clone()),
                _ => None,
            };
            match &test.condition {
                Condition::Resource {
                    resource,
                    operator,
                    limit,
                } => checks.resources.push(ResourceCheck {
                    resource: *resource,
                    operator: *operator,
                    limit: *limit,
                    rate: test.rate.unwrap_or(Rate {
                        events: 1,
                        cycles: 1,
                    }),
                    recovery_rate: test
                        .recovery
                        .as_ref()
                        .and_then(|recovery| recovery.rate)
                        .unwrap_or(Rate {
                            events: 1,
                            cycles: 1,
                        }),
                    action,
                    program,
                    history: 0,
                    observed: 0,
                    is_failed: false,
                }),
                Condition::Restarts { restarts, cycles } => checks.limits.push(RestartLimit {
                    restarts: *restarts,
                    cycles: *cycles,
                    action,
                    program,
                }),
                Condition::DoesNotExist | Condition::Connection(_) => {}
            }
        }
        checks
    }

    /// Whether there are resource tests (which need the process's usage each poll cycle).
    pub(crate) fn has_resource_tests(&self) -> bool {
        !self.resources.is_empty()
    }

    /// Whether some resource test is failing now.
    pub(crate) fn is_resource_failed(&self) -> bool {
        self.resources.iter().any(|check| check.is_failed)
    }

    /// Counts an automatic start towards the restart limits.
    pub(crate) fn count_start(&mut self) {
        if !self.limits.is_empty() {
            self.starts = self.starts.saturating_add(1);
        }
    }

    /// Forgets the counted starts (the service is no longer watched).
    pub(crate) fn reset_limits(&mut self) {
        self.starts = 0;
        self.cycles = 0;
        self.is_timed_out = false;
    }

    /// One poll cycle of the restart limits (monit's `check_timeout`), for a watched service.
    pub(crate) fn tick_limits(&mut self) -> Option<Outcome> {
        if self.limits.is_empty() {
            return None;
        }
        if self.starts > 0 {
            self.cycles = self.cycles.saturating_add(1);
        }
        let mut outcome = None;
        let mut longest = 0;
        for limit in &self.limits {
            longest = longest.max(limit.cycles);
            if outcome.is_none() && self.starts >= limit.restarts && self.cycles <= limit.cycles {
                outcome = Some(Outcome {
                    event: Event::Timeout,
                    action: limit.action,
                    description: format!(
                        "service restarted {} times within {} cycles(s) - {}",
                        self.starts,
                        self.cycles,
                        limit.action.name()
                    ),
                    program: limit.program.clone(),
                });
            }
        }
        if self.cycles > longest {
            self.reset_limits();
            return outcome;
        }
        if outcome.is_some() && std::mem::replace(&mut self.is_timed_out, true) {
            // Already alerted in this window: monit posts on a change of state only.
            return None;
        }
        outcome
    }

    /// One poll cycle of the resource tests of `service`, whose process `pid` uses `usage` on a
    /// host with `cpus` CPUs.
    pub(crate) fn evaluate(
        &mut self,
        service: &str,
        pid: u32,
        usage: &Usage,
        cpus: usize,
    ) -> Vec<Outcome> {
        if self.resources.is_empty() {
            return Vec::new();
        }
        if self.pid != Some(pid) {
            // A new process: its history starts afresh, but a failed test stays failed until the new
            // process passes it (monit then posts the recovery).
            self.pid = Some(pid);
            self.sample = None;
            for check in &mut self.resources {
                check.history = 0;
                check.observed = 0;
            }
        }
        let previous = self.sample.replace((usage.own_cpu, usage.cpu));
        let mut outcomes = Vec::new();
        for check in &mut self.resources {
            let Some(value) = measure(check.resource, check.limit, usage, previous, cpus) else {
                continue;
            };
            let fails = compare(check.operator, value, check.limit);
            check.history = (check.history << 1) | u64::from(fails);
            check.observed = check.observed.saturating_add(1).min(MAX_RATE_CYCLES);
            if !check.is_failed && check.failures() >= check.rate.events {
                check.is_failed = true;
                outcomes.push(Outcome {
                    event: Event::ResourceLimitMatched,
                    action: check.action,
                    description: matched_text(check.resource, check.operator, value, check.limit),
                    program: check.program.clone(),
                });
            } else if check.is_failed && !fails && check.passes() >= check.recovery_rate.events {
                check.is_failed = false;
                outcomes.push(Outcome {
                    event: Event::ResourceLimitSucceeded,
                    action: Action::Alert,
                    description: succeeded_text(service, check.resource, value),
                    program: None,
                });
            }
        }
        outcomes
    }
}

impl ResourceCheck {
    /// Failed cycles among the last `rate.cycles`.
    fn failures(&self) -> u32 {
        (self.history & window(self.rate.cycles)).count_ones()
    }

    /// Passed cycles among the last `recovery_rate.cycles` that were observed.
    fn passes(&self) -> u32 {
        let cycles = self.recovery_rate.cycles.min(self.observed);
        cycles - (self.history & window(cycles)).count_ones()
    }
}

/// The bits of the last `cycles` cycles.
fn window(cycles: u32) -> u64 {
    if cycles >= 64 {
        u64::MAX
    } else {
        (1u64 << cycles) - 1
    }
}

fn fits(rate: Rate) -> bool {
    rate.events >= 1 && rate.events <= rate.cycles && rate.cycles <= MAX_RATE_CYCLES
}

fn is_measurable(resource: Resource, limit: Limit) -> bool {
    matches!(
        (resource, limit),
        (Resource::Cpu | Resource::TotalCpu, Limit::Percent(_))
            | (
                Resource::Memory | Resource::TotalMemory,
                Limit::Percent(_) | Limit::Bytes(_)
            )
            | (Resource::Children, Limit::Count(_))
    )
}

/// The supervisor's action for a monit action; `None` for none.
fn action(action: &monit::Action) -> Option<Action> {
    Some(match action {
        monit::Action::Alert => Action::Alert,
        monit::Action::Restart => Action::Restart,
        monit::Action::Start => Action::Start,
        monit::Action::Stop => Action::Stop,
        monit::Action::Unmonitor => Action::Unmonitor,
        monit::Action::Exec(_) => Action::Exec,
    })
}

/// What `usage` says about `resource`, in the unit of `limit`; `None` for a CPU share without a
/// previous sample.
fn measure(
    resource: Resource,
    limit: Limit,
    usage: &Usage,
    previous: Option<(CpuSample, CpuSample)>,
    cpus: usize,
) -> Option<Value> {
    let is_percent = matches!(limit, Limit::Percent(_));
    Some(match resource {
        Resource::Cpu => Value::Percent(procfs::cpu_percent(usage.own_cpu, previous?.0, cpus)),
        Resource::TotalCpu => Value::Percent(procfs::cpu_percent(usage.cpu, previous?.1, cpus)),
        Resource::Memory if is_percent => Value::Percent(usage.own_mem_percent),
        Resource::Memory => Value::Kilobytes(usage.own_mem_kb),
        Resource::TotalMemory if is_percent => Value::Percent(usage.mem_percent),
        Resource::TotalMemory => Value::Kilobytes(usage.mem_kb),
        Resource::Children => Value::Count(usage.children as u64),
    })
}

/// Whether `value` matches the limit (the test fails), as monit's `Util_evalQExpression` compares.
fn compare(operator: Operator, value: Value, limit: Limit) -> bool {
    let (value, limit) = match (value, limit) {
        (Value::Percent(value), Limit::Percent(limit)) => (tenths(value), tenths(limit)),
        (Value::Kilobytes(value), Limit::Bytes(limit)) => (value, limit / 1024),
        (Value::Count(value), Limit::Count(limit)) => (value, limit),
        _ => return false,
    };
    match operator {
        Operator::Greater => value > limit,
        Operator::GreaterOrEqual => value >= limit,
        Operator::Less => value < limit,
        Operator::LessOrEqual => value <= limit,
        Operator::Equal => value == limit,
        Operator::NotEqual => value != limit,
    }
}

/// A share in tenths of a percent, as monit keeps it.
fn tenths(percent: f64) -> u64 {
    (percent.max(0.0) * 10.0).round() as u64
}

/// Monit's `operatorshortnames` (5.2.5 knows only the first four).
fn operator_text(operator: Operator) -> &'static str {
    match operator {
        Operator::Greater => ">",
        Operator::Less => "<",
        Operator::Equal => "=",
        Operator::NotEqual => "!=",
        Operator::GreaterOrEqual => ">=",
        Operator::LessOrEqual => "<=",
    }
}

/// Monit's name of a measure in its reports.
fn measure_name(resource: Resource, value: Value) -> &'static str {
    match (resource, value) {
        (Resource::Cpu, _) => "cpu usage",
        (Resource::TotalCpu, _) => "total cpu usage",
        (Resource::Memory, Value::Percent(_)) => "mem usage",
        (Resource::Memory, _) => "mem amount",
        (Resource::TotalMemory, _) => "total mem amount",
        (Resource::Children, _) => "children",
    }
}

fn value_text(value: Value) -> String {
    match value {
        Value::Percent(percent) => format!("{percent:.1}%"),
        Value::Kilobytes(kb) => format!("{kb}kB"),
        Value::Count(count) => count.to_string(),
    }
}

fn limit_text(limit: Limit) -> String {
    match limit {
        Limit::Percent(percent) => format!("{percent:.1}%"),
        Limit::Bytes(bytes) => format!("{}kB", bytes / 1024),
        Limit::Count(count) => count.to_string(),
    }
}

/// `total mem amount of 2048kB matches resource limit [total mem amount>1024kB]`.
fn matched_text(resource: Resource, operator: Operator, value: Value, limit: Limit) -> String {
    let name = measure_name(resource, value);
    // Monit names the total CPU limit "cpu usage" in the bracket.
    let limit_name = if resource == Resource::TotalCpu {
        "cpu usage"
    } else {
        name
    };
    format!(
        "{name} of {} matches resource limit [{limit_name}{}{}]",
        value_text(value),
        operator_text(operator),
        limit_text(limit)
    )
}

/// `'web' total mem amount check succeeded [current total mem amount=100kB]`.
fn succeeded_text(service: &str, resource: Resource, value: Value) -> String {
    let name = measure_name(resource, value);
    let current = if resource == Resource::TotalCpu {
        "cpu usage"
    } else {
        name
    };
    format!(
        "'{service}' {name} check succeeded [current {current}={}]",
        value_text(value)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(text: &str) -> Service {
        let file = monit::parse(&format!(
            "check process web with pidfile /web.pid\n{text}\n"
        ))
        .unwrap();
        file.services.into_iter().next().unwrap()
    }

    fn usage(own_kb: u64, total_kb: u64, children: usize, ticks: (u64, u64), at: f64) -> Usage {
        Usage {
            ppid: 1,
            children,
            uptime_secs: 10,
            mem_kb: total_kb,
            mem_percent: procfs::mem_percent(total_kb, 100_000),
            own_mem_kb: own_kb,
            own_mem_percent: procfs::mem_percent(own_kb, 100_000),
            cpu: CpuSample {
                ticks: ticks.1,
                at_secs: at,
            },
            own_cpu: CpuSample {
                ticks: ticks.0,
                at_secs: at,
            },
            started_at_secs: 0.0,
        }
    }

    #[test]
    fn only_what_the_supervisor_does_is_honoured() {
        let cases: &[(&str, bool)] = &[
            ("if does not exist then restart", true),
            ("if does not exist then alert", false),
            ("if totalmem > 100 MB for 3 cycles then restart", true),
            ("if memory > 10% then alert", true),
            ("if cpu > 90% for 2 cycles then exec \"/bin/true\"", true),
            ("if totalcpu > 50% then stop", true),
            ("if children > 10 then unmonitor", true),
            ("if totalmem > 100 MB then start", false),
            (
                "if totalmem > 1 GB then alert else if recovered then alert",
                true,
            ),
            (
                "if totalmem > 1 GB then alert else if recovered then restart",
                false,
            ),
            ("if 3 restarts within 5 cycles then timeout", true),
            ("if 3 restarts within 5 cycles then alert", true),
            ("if 3 restarts within 5 cycles then restart", false),
            ("if 3 restarts within 100 cycles then timeout", false),
            ("if failed port 80 then restart", false),
        ];
        for (text, expected) in cases {
            let service = service(text);
            assert_eq!(service.tests.len(), 1, "{text}");
            assert_eq!(is_honoured(&service.tests[0]), *expected, "{text}");
        }
        // The parser does not produce a CPU test with an amount, but the model can hold one.
        let odd = Test {
            condition: Condition::Resource {
                resource: Resource::Cpu,
                operator: Operator::Greater,
                limit: Limit::Bytes(1 << 20),
            },
            rate: None,
            action: monit::Action::Alert,
            recovery: None,
            line: 1,
        };
        assert!(!is_honoured(&odd));
    }

    #[test]
    fn a_memory_test_fires_after_its_cycles_and_recovers_once() {
        let mut checks =
            Checks::from_service(&service("if totalmem > 1 MB for 2 cycles then restart"));
        assert!(checks.has_resource_tests());
        let high = usage(100, 2048, 1, (0, 0), 1.0);
        let low = usage(100, 512, 1, (0, 0), 2.0);
        assert_eq!(checks.evaluate("web", 7, &high, 1), Vec::new());
        assert_eq!(
            checks.evaluate("web", 7, &low, 1),
            Vec::new(),
            "not twice in a row"
        );
        assert_eq!(checks.evaluate("web", 7, &high, 1), Vec::new());
        let fired = checks.evaluate("web", 7, &high, 1);
        assert_eq!(
            fired,
            vec![Outcome {
                event: Event::ResourceLimitMatched,
                action: Action::Restart,
                description:
                    "total mem amount of 2048kB matches resource limit [total mem amount>1024kB]"
                        .into(),
                program: None,
            }]
        );
        assert!(checks.is_resource_failed());
        assert_eq!(checks.evaluate("web", 7, &high, 1), Vec::new(), "once");
        // A new process that passes recovers the test.
        let recovered = checks.evaluate("web", 8, &low, 1);
        assert_eq!(recovered.len(), 1);
        assert_eq!(recovered[0].event, Event::ResourceLimitSucceeded);
        assert_eq!(
            recovered[0].description,
            "'web' total mem amount check succeeded [current total mem amount=512kB]"
        );
        assert!(!checks.is_resource_failed());
    }

    #[test]
    fn cpu_tests_need_two_samples_and_use_monit_texts() {
        let mut checks = Checks::from_service(&service(
            "if cpu > 50% then alert\nif totalcpu > 70% then alert\nif children > 1 then alert\nif memory > 0.5% then alert",
        ));
        // Own: 60 ticks over 1 s of 1 CPU = 60 %; tree: 80 %.
        let first = usage(600, 900, 2, (100, 200), 10.0);
        let fired = checks.evaluate("web", 7, &first, 1);
        let texts: Vec<&str> = fired.iter().map(|o| o.description.as_str()).collect();
        assert_eq!(
            texts,
            [
                "children of 2 matches resource limit [children>1]",
                "mem usage of 0.6% matches resource limit [mem usage>0.5%]"
            ]
        );
        let second = usage(600, 900, 2, (160, 280), 11.0);
        let texts: Vec<String> = checks
            .evaluate("web", 7, &second, 1)
            .into_iter()
            .map(|o| o.description)
            .collect();
        assert_eq!(
            texts,
            [
                "cpu usage of 60.0% matches resource limit [cpu usage>50.0%]",
                "total cpu usage of 80.0% matches resource limit [cpu usage>70.0%]"
            ]
        );
    }

    #[test]
    fn a_restart_limit_fires_once_within_its_window_then_resets() {
        let mut checks =
            Checks::from_service(&service("if 2 restarts within 3 cycles then timeout"));
        assert_eq!(checks.tick_limits(), None, "nothing counted yet");
        checks.count_start();
        assert_eq!(checks.tick_limits(), None);
        checks.count_start();
        let fired = checks.tick_limits().unwrap();
        assert_eq!(
            (fired.event, fired.action, fired.description.as_str()),
            (
                Event::Timeout,
                Action::Unmonitor,
                "service restarted 2 times within 2 cycles(s) - unmonitor"
            )
        );
        assert_eq!(checks.tick_limits(), None, "one alert per window");
        // The fourth cycle is past the window: the counters start over.
        assert_eq!(checks.tick_limits(), None);
        checks.count_start();
        assert_eq!(checks.tick_limits(), None);
        checks.count_start();
        assert!(checks.tick_limits().is_some());
    }

    #[test]
    fn comparisons_use_monit_units() {
        let cases: &[(Operator, Value, Limit, bool)] = &[
            (
                Operator::Greater,
                Value::Kilobytes(1025),
                Limit::Bytes(1 << 20),
                true,
            ),
            (
                Operator::Greater,
                Value::Kilobytes(1024),
                Limit::Bytes(1 << 20),
                false,
            ),
            (
                Operator::GreaterOrEqual,
                Value::Kilobytes(1024),
                Limit::Bytes(1 << 20),
                true,
            ),
            (
                Operator::Less,
                Value::Percent(9.94),
                Limit::Percent(10.0),
                true,
            ),
            (
                Operator::Equal,
                Value::Percent(10.04),
                Limit::Percent(10.0),
                true,
            ),
            (Operator::NotEqual, Value::Count(3), Limit::Count(3), false),
            (
                Operator::LessOrEqual,
                Value::Count(3),
                Limit::Count(3),
                true,
            ),
            (
                Operator::Greater,
                Value::Count(3),
                Limit::Percent(1.0),
                false,
            ),
        ];
        for (operator, value, limit, expected) in cases {
            assert_eq!(
                compare(*operator, *value, *limit),
                *expected,
                "{value:?} {operator:?} {limit:?}"
            );
        }
    }
}
