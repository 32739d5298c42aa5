//! What a supervised process uses, read from `/proc` (through [`HostPaths`], so tests use a fake
//! tree) the way monit 5.2.5 measures it for its status (`src/process/sysdep_LINUX.c`,
//! `src/process.c`): uptime from the process's start time, and memory and CPU as *totals* over the
//! process and all its descendants, which is what the Go agent reports (`kilobytetotal`,
//! `percenttotal` in `jobsupervisor/monit/status.go`).
//!
//! * uptime: the host's uptime (`/proc/uptime`) minus the start time (`/proc/<pid>/stat` field 22);
//! * memory: resident kilobytes (`VmRSS` of `/proc/<pid>/status`, already in kB, so no page size is
//!   needed), and their share of `MemTotal` (`/proc/meminfo`) with one decimal;
//! * CPU: user plus system ticks (fields 14 and 15) over the wall time since the previous sample,
//!   shared by every CPU (monit divides by the number of CPUs), one decimal. The first sample counts
//!   since the process started.
//!
//! For monit's `System` service (`monit status`), the host's load averages, memory in use (total
//! minus free, buffers and page cache, as monit 5.2.5 counts it on Linux), swap and CPU shares.
//!
//! Parsing is pure; [`ProcSnapshot::read`] and [`HostSample::read`] do the IO, and a file that cannot be read counts as
//! zero, since processes come and go while the table is read.

use std::collections::{BTreeMap, BTreeSet};

use platform::HostPaths;

/// Clock ticks per second in `/proc/<pid>/stat`: Linux reports times in `USER_HZ`, which is 100 on
/// every architecture (the kernel's `CONFIG_HZ` is hidden from user space).
pub(crate) const CLOCK_TICKS_PER_SEC: u64 = 100;

/// The fields of `/proc/<pid>/stat` the supervisor uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stat {
    /// The parent's pid.
    pub(crate) ppid: u32,
    /// User plus system time, in clock ticks.
    pub(crate) cpu_ticks: u64,
    /// When the process started, in clock ticks after boot.
    pub(crate) start_ticks: u64,
}

/// A process tree's CPU time at one moment.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct CpuSample {
    /// CPU time of the tree, in clock ticks.
    pub(crate) ticks: u64,
    /// The host's uptime when it was taken, in seconds.
    pub(crate) at_secs: f64,
}

/// What a process and its descendants use.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Usage {
    /// The parent's pid.
    pub(crate) ppid: u32,
    /// How many descendants the process has (monit's `children`).
    pub(crate) children: usize,
    /// Seconds since the process started.
    pub(crate) uptime_secs: u64,
    /// Resident kilobytes of the tree.
    pub(crate) mem_kb: u64,
    /// The tree's share of the host's memory, in percent with one decimal.
    pub(crate) mem_percent: f64,
    /// Resident kilobytes of the process alone.
    pub(crate) own_mem_kb: u64,
    /// The process's own share of the host's memory, in percent with one decimal.
    pub(crate) own_mem_percent: f64,
    /// The tree's CPU time now.
    pub(crate) cpu: CpuSample,
    /// The process's own CPU time now.
    pub(crate) own_cpu: CpuSample,
    /// When the process started, in seconds of host uptime (the base of a first CPU sample).
    pub(crate) started_at_secs: f64,
}

/// The host's load, memory and CPU counters, for monit's `System` service.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct HostSample {
    /// `/proc/loadavg`: the 1, 5 and 15 minute load averages.
    pub(crate) load: [f64; 3],
    /// Memory in use, in kB, as monit counts it: total minus free, buffers and page cache.
    pub(crate) mem_used_kb: u64,
    /// `MemTotal`, in kB.
    pub(crate) mem_total_kb: u64,
    /// Swap in use, in kB.
    pub(crate) swap_used_kb: u64,
    /// `SwapTotal`, in kB.
    pub(crate) swap_total_kb: u64,
    /// The aggregate `cpu` line of `/proc/stat`.
    pub(crate) cpu: CpuTimes,
}

/// The aggregate CPU times of `/proc/stat`, in clock ticks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct CpuTimes {
    /// `user` plus `nice`.
    pub(crate) user: u64,
    /// `system` plus `irq` plus `softirq`.
    pub(crate) system: u64,
    /// `iowait`.
    pub(crate) wait: u64,
    /// Every column.
    pub(crate) total: u64,
}

/// The host's process table at one moment.
#[derive(Debug, Clone, Default)]
pub(crate) struct ProcSnapshot {
    uptime_secs: f64,
    mem_total_kb: u64,
    cpus: usize,
    stats: BTreeMap<u32, Stat>,
    children: BTreeMap<u32, Vec<u32>>,
}

/// Parses `/proc/<pid>/stat`. The command name (field 2) is in parentheses and may hold spaces and
/// parentheses itself, so the fields are counted from the last `)`.
pub(crate) fn parse_stat(text: &str) -> Option<Stat> {
    let (_, rest) = text.rsplit_once(')')?;
    // `rest` starts with field 3 (the state), so field n is at index n - 3.
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<u64>().ok());
    Some(Stat {
        ppid: u32::try_from(field(4)?).ok()?,
        cpu_ticks: field(14)?.saturating_add(field(15)?),
        start_ticks: field(22)?,
    })
}

/// `VmRSS` of `/proc/<pid>/status`, in kB; `None` for processes without memory (kernel threads,
/// zombies).
pub(crate) fn parse_vm_rss_kb(status: &str) -> Option<u64> {
    kb_field(status, "VmRSS:")
}

/// `MemTotal` of `/proc/meminfo`, in kB.
pub(crate) fn parse_mem_total_kb(meminfo: &str) -> Option<u64> {
    kb_field(meminfo, "MemTotal:")
}

/// The first figure of `/proc/uptime`: seconds since boot.
pub(crate) fn parse_uptime_secs(text: &str) -> Option<f64> {
    text.split_whitespace().next()?.parse().ok()
}

/// The aggregate `cpu` line of `/proc/stat`.
pub(crate) fn parse_cpu_times(stat: &str) -> CpuTimes {
    let Some(line) = stat
        .lines()
        .find(|line| line.split_whitespace().next() == Some("cpu"))
    else {
        return CpuTimes::default();
    };
    let columns: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|column| column.parse().unwrap_or(0))
        .collect();
    let column = |n: usize| columns.get(n).copied().unwrap_or(0);
    CpuTimes {
        user: column(0) + column(1),
        system: column(2) + column(5) + column(6),
        wait: column(4),
        total: columns.iter().sum(),
    }
}

/// The host's figures from `/proc/loadavg`, `/proc/meminfo` and `/proc/stat`.
pub(crate) fn parse_host_sample(loadavg: &str, meminfo: &str, stat: &str) -> HostSample {
    let mut load = [0.0; 3];
    for (slot, figure) in load.iter_mut().zip(loadavg.split_whitespace()) {
        *slot = figure.parse().unwrap_or(0.0);
    }
    let field = |key: &str| kb_field(meminfo, key).unwrap_or(0);
    let mem_total_kb = field("MemTotal:");
    let unused = field("MemFree:") + field("Buffers:") + field("Cached:");
    let swap_total_kb = field("SwapTotal:");
    HostSample {
        load,
        mem_used_kb: mem_total_kb.saturating_sub(unused),
        mem_total_kb,
        swap_used_kb: swap_total_kb.saturating_sub(field("SwapFree:")),
        swap_total_kb,
        cpu: parse_cpu_times(stat),
    }
}

/// The shares of user, system and wait time between two samples of `/proc/stat`, in percent with
/// one decimal.
pub(crate) fn cpu_shares(now: CpuTimes, before: CpuTimes) -> (f64, f64, f64) {
    let total = now.total.saturating_sub(before.total);
    if total == 0 {
        return (0.0, 0.0, 0.0);
    }
    let share =
        |now: u64, before: u64| round1(now.saturating_sub(before) as f64 / total as f64 * 100.0);
    (
        share(now.user, before.user),
        share(now.system, before.system),
        share(now.wait, before.wait),
    )
}

/// The number of `cpuN` lines in `/proc/stat` (at least 1).
pub(crate) fn count_cpus(stat: &str) -> usize {
    stat.lines()
        .filter(|line| {
            line.strip_prefix("cpu")
                .and_then(|rest| rest.split(char::is_whitespace).next())
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        })
        .count()
        .max(1)
}

/// The CPU share of a tree between two samples, in percent of all CPUs with one decimal; never
/// negative (descendants that exited take their ticks with them).
pub(crate) fn cpu_percent(now: CpuSample, before: CpuSample, cpus: usize) -> f64 {
    let elapsed = now.at_secs - before.at_secs;
    if elapsed <= 0.0 || now.ticks <= before.ticks {
        return 0.0;
    }
    let busy_secs = (now.ticks - before.ticks) as f64 / CLOCK_TICKS_PER_SEC as f64;
    round1(busy_secs / elapsed / cpus.max(1) as f64 * 100.0)
}

/// `part_kb` as a share of `total_kb`, in percent with one decimal.
pub(crate) fn mem_percent(part_kb: u64, total_kb: u64) -> f64 {
    if total_kb == 0 {
        return 0.0;
    }
    round1(part_kb as f64 / total_kb as f64 * 100.0)
}

impl HostSample {
    /// Reads the host's figures. Blocking.
    pub(crate) fn read(host: &HostPaths) -> HostSample {
        let read = |name: &str| std::fs::read_to_string(host.proc(name)).unwrap_or_default();
        parse_host_sample(&read("loadavg"), &read("meminfo"), &read("stat"))
    }
}

impl ProcSnapshot {
    /// Reads the host's process table. Blocking.
    pub(crate) fn read(host: &HostPaths) -> ProcSnapshot {
        let read = |name: &str| std::fs::read_to_string(host.proc(name)).unwrap_or_default();
        let mut snapshot = ProcSnapshot {
            uptime_secs: parse_uptime_secs(&read("uptime")).unwrap_or(0.0),
            mem_total_kb: parse_mem_total_kb(&read("meminfo")).unwrap_or(0),
            cpus: count_cpus(&read("stat")),
            ..ProcSnapshot::default()
        };
        let Ok(entries) = std::fs::read_dir(host.proc("")) else {
            return snapshot;
        };
        for entry in entries.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|name| name.parse::<u32>().ok())
            else {
                continue;
            };
            if let Some(stat) = parse_stat(&read(&format!("{pid}/stat"))) {
                snapshot.stats.insert(pid, stat);
                snapshot.children.entry(stat.ppid).or_default().push(pid);
            }
        }
        snapshot
    }

    /// The number of CPUs.
    pub(crate) fn cpus(&self) -> usize {
        self.cpus
    }

    /// What `pid` and its descendants use; `None` when `pid` is not in the table. Reads each
    /// process's `status` (blocking).
    pub(crate) fn usage(&self, host: &HostPaths, pid: u32) -> Option<Usage> {
        let stat = self.stats.get(&pid)?;
        let tree = self.tree(pid);
        let rss_kb = |pid: u32| {
            let status = std::fs::read_to_string(host.proc(&format!("{pid}/status"))).ok()?;
            parse_vm_rss_kb(&status)
        };
        let own_mem_kb = rss_kb(pid).unwrap_or(0);
        let mem_kb: u64 = own_mem_kb
            + tree
                .iter()
                .filter(|member| **member != pid)
                .filter_map(|member| rss_kb(*member))
                .sum::<u64>();
        let ticks: u64 = tree
            .iter()
            .filter_map(|pid| self.stats.get(pid))
            .map(|stat| stat.cpu_ticks)
            .sum();
        let started_at_secs = stat.start_ticks as f64 / CLOCK_TICKS_PER_SEC as f64;
        Some(Usage {
            ppid: stat.ppid,
            children: tree.len().saturating_sub(1),
            uptime_secs: (self.uptime_secs - started_at_secs).max(0.0) as u64,
            mem_kb,
            mem_percent: mem_percent(mem_kb, self.mem_total_kb),
            own_mem_kb,
            own_mem_percent: mem_percent(own_mem_kb, self.mem_total_kb),
            cpu: CpuSample {
                ticks,
                at_secs: self.uptime_secs,
            },
            own_cpu: CpuSample {
                ticks: stat.cpu_ticks,
                at_secs: self.uptime_secs,
            },
            started_at_secs,
        })
    }

    /// `pid` and all its descendants.
    fn tree(&self, pid: u32) -> BTreeSet<u32> {
        let mut tree = BTreeSet::new();
        let mut stack = vec![pid];
        while let Some(pid) = stack.pop() {
            // The set also guards against a parent loop in a malformed (fake) table.
            if tree.insert(pid) {
                stack.extend(self.children.get(&pid).into_iter().flatten().copied());
            }
        }
        tree
    }
}

fn kb_field(text: &str, key: &str) -> Option<u64> {
    text.lines()
        .find_map(|line| line.strip_prefix(key))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn round1(value: f64) -> f64 {
    (value * 10.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stat line with the fields the supervisor reads set, the others 0.
    fn stat_line(pid: u32, comm: &str, ppid: u32, utime: u64, start: u64) -> String {
        let mut fields = vec!["0".to_owned(); 50];
        fields[0] = "S".to_owned(); // field 3
        fields[1] = ppid.to_string(); // field 4
        fields[11] = utime.to_string(); // field 14
        fields[12] = "5".to_owned(); // field 15 (stime)
        fields[19] = start.to_string(); // field 22
        format!("{pid} ({comm}) {}", fields.join(" "))
    }

    #[test]
    fn stat_fields_are_counted_after_the_command_name() {
        let stat = parse_stat(&stat_line(42, "a (weird) name", 7, 95, 1234)).unwrap();
        assert_eq!(
            stat,
            Stat {
                ppid: 7,
                cpu_ticks: 100,
                start_ticks: 1234
            }
        );
        assert_eq!(parse_stat("42 (short) S 1 2"), None);
        assert_eq!(parse_stat("no parenthesis"), None);
    }

    #[test]
    fn host_figures_are_parsed() {
        assert_eq!(parse_uptime_secs("12345.67 4567.89\n"), Some(12345.67));
        assert_eq!(
            parse_mem_total_kb("MemTotal:       16384000 kB\nMemFree: 1 kB\n"),
            Some(16_384_000)
        );
        assert_eq!(
            parse_vm_rss_kb("Name:\tsleep\nVmRSS:\t    2048 kB\n"),
            Some(2048)
        );
        assert_eq!(parse_vm_rss_kb("Name:\tkthreadd\n"), None);
        assert_eq!(
            count_cpus("cpu  1 2 3\ncpu0 1 2 3\ncpu1 1 2 3\nintr 5\ncpufreq x\n"),
            2
        );
        assert_eq!(count_cpus(""), 1);
    }

    #[test]
    fn shares_have_one_decimal_and_never_go_negative() {
        let cases: &[(u64, f64, u64, f64, usize, f64)] = &[
            // ticks before, at, ticks now, at, cpus, expected
            (0, 100.0, 100, 110.0, 1, 10.0),
            (0, 100.0, 100, 110.0, 4, 2.5),
            (50, 100.0, 50, 110.0, 1, 0.0),
            (80, 100.0, 50, 110.0, 1, 0.0),
            (0, 110.0, 50, 110.0, 1, 0.0),
            (0, 0.0, 1, 3.0, 1, 0.3),
        ];
        for &(before_ticks, before_at, now_ticks, now_at, cpus, expected) in cases {
            let before = CpuSample {
                ticks: before_ticks,
                at_secs: before_at,
            };
            let now = CpuSample {
                ticks: now_ticks,
                at_secs: now_at,
            };
            assert_eq!(cpu_percent(now, before, cpus), expected);
        }
        assert_eq!(mem_percent(2048, 16384), 12.5);
        assert_eq!(mem_percent(1, 3), 33.3);
        assert_eq!(mem_percent(1, 3000), 0.0);
        assert_eq!(mem_percent(1, 0), 0.0);
    }

    #[test]
    fn usage_totals_the_process_and_its_descendants() {
        let root = tempfile::tempdir().unwrap();
        let host = HostPaths::with_root(root.path());
        let write = |name: &str, text: &str| {
            let path = host.proc(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        };
        write("uptime", "1000.00 1.00\n");
        write("meminfo", "MemTotal: 10000 kB\n");
        write("stat", "cpu 1\ncpu0 1\ncpu1 1\n");
        // 10 is the job's process, 11 its child, 12 a grandchild; 20 is unrelated.
        for (pid, ppid, utime, rss) in [(10, 1, 95, 100), (11, 10, 45, 200), (12, 11, 0, 300)] {
            write(
                &format!("{pid}/stat"),
                &stat_line(pid, "job", ppid, utime, 90_000),
            );
            write(&format!("{pid}/status"), &format!("VmRSS:\t{rss} kB\n"));
        }
        write("20/stat", &stat_line(20, "other", 1, 1000, 0));
        write("20/status", "VmRSS:\t5000 kB\n");
        write("self/stat", "not a pid directory");

        let snapshot = ProcSnapshot::read(&host);
        assert_eq!(snapshot.cpus(), 2);
        let usage = snapshot.usage(&host, 10).unwrap();
        assert_eq!(usage.uptime_secs, 100);
        assert_eq!(usage.mem_kb, 600);
        assert_eq!(usage.mem_percent, 6.0);
        assert_eq!(usage.cpu.ticks, 100 + 50 + 5);
        assert_eq!(usage.started_at_secs, 900.0);
        assert_eq!(
            (
                usage.ppid,
                usage.children,
                usage.own_mem_kb,
                usage.own_cpu.ticks
            ),
            (1, 2, 100, 100)
        );
        assert_eq!(usage.own_mem_percent, 1.0);
        assert_eq!(
            snapshot.usage(&host, 12).unwrap().mem_kb,
            300,
            "a leaf counts alone"
        );
        assert_eq!(snapshot.usage(&host, 99), None);
    }

    #[test]
    fn host_figures_count_memory_as_monit_does() {
        let sample = parse_host_sample(
            "0.50 0.25 0.10 1/100 4242\n",
            "MemTotal: 1000 kB\nMemFree: 300 kB\nBuffers: 100 kB\nCached: 200 kB\n\
             SwapTotal: 500 kB\nSwapFree: 400 kB\n",
            "cpu  10 5 20 100 4 1 0 0 0 0\ncpu0 10 5 20 100 4 1 0 0 0 0\n",
        );
        assert_eq!(sample.load, [0.5, 0.25, 0.1]);
        assert_eq!((sample.mem_used_kb, sample.mem_total_kb), (400, 1000));
        assert_eq!((sample.swap_used_kb, sample.swap_total_kb), (100, 500));
        assert_eq!(
            sample.cpu,
            CpuTimes {
                user: 15,
                system: 21,
                wait: 4,
                total: 140
            }
        );
        let later = CpuTimes {
            user: 45,
            system: 31,
            wait: 14,
            total: 240,
        };
        assert_eq!(cpu_shares(later, sample.cpu), (30.0, 10.0, 10.0));
        assert_eq!(cpu_shares(sample.cpu, sample.cpu), (0.0, 0.0, 0.0));
        assert_eq!(parse_host_sample("", "", ""), HostSample::default());
    }

    #[test]
    fn a_missing_proc_reads_as_an_empty_table() {
        let root = tempfile::tempdir().unwrap();
        let host = HostPaths::with_root(root.path());
        let snapshot = ProcSnapshot::read(&host);
        assert_eq!(snapshot.cpus(), 1);
        assert_eq!(snapshot.usage(&host, 1), None);
    }
}
