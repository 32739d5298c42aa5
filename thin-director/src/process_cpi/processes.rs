//! Finding and stopping a process VM's processes: what powering a VM off does, for `delete_vm` and
//! `reboot_vm`.
//!
//! A VM's processes are not one tree. The supervisor makes a session of its own and the agent runs
//! in it, but the agent starts job processes in sessions of their own, as monit does, so they
//! outlive an agent restart; their parents exit and they are re-parented to init. So they are
//! found by what marks them as the VM's, in `/proc`:
//!
//! 1. the supervisor, whose pid is in `supervisor.pid` and whose command line names the VM
//!    directory, and every process in its session (the agent and whatever it runs to completion);
//! 2. every process whose executable, working directory or a command-line argument is under the
//!    VM directory (the agent's base dir: jobs and packages run from `<vm dir>/jobs` and
//!    `<vm dir>/packages`), matched as a whole path (`<vm dir>` or `<vm dir>/...`);
//! 3. every process a pidfile under `<vm dir>/sys/run` names (any depth, `*.pid`), if it started
//!    no later than the pidfile was last written: a pid a stale pidfile names may belong to
//!    someone else by now;
//! 4. the descendants of all of those.
//!
//! Only processes of the CPI's own user are candidates, and never the CPI itself or its
//! ancestors. A process found once stays tracked (by pid and start time) until it is gone, so an
//! orphan whose parent died is still killed. Zombies count as gone.
//!
//! Stopping happens in two phases, the supervisor and agent first (so no agent restarts a job
//! while its jobs are stopped), then the rest; each phase sends SIGTERM, waits up to the grace,
//! sends SIGKILL and waits up to [`KILL_WAIT`] more.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::process_cpi::store;

/// Where the host's process table is.
pub const PROC_ROOT: &str = "/proc";

/// How long processes get to go after SIGKILL before the stop fails.
pub const KILL_WAIT: Duration = Duration::from_secs(5);

/// How often the process table is read while waiting.
const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// How deep pidfiles are looked for under `sys/run`.
const PIDFILE_DEPTH: usize = 4;

/// The fields of `/proc/<pid>/stat` used here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    /// `R`, `S`, `Z`, ...
    pub state: char,
    /// The parent.
    pub ppid: i32,
    /// The session id.
    pub sid: i32,
    /// When it started, in clock ticks after boot.
    pub start_ticks: u64,
}

/// One process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Process {
    /// Its pid.
    pub pid: i32,
    /// Its stat fields.
    pub stat: Stat,
    /// Its owner.
    pub uid: u32,
    /// Its executable, when readable.
    pub exe: Option<PathBuf>,
    /// Its working directory, when readable.
    pub cwd: Option<PathBuf>,
    /// Its arguments.
    pub cmdline: Vec<String>,
}

/// The process table at one moment.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Processes by pid.
    pub processes: BTreeMap<i32, Process>,
    /// Boot time, seconds after the epoch (`btime` of `/proc/stat`).
    pub boot_time_secs: u64,
}

/// Who is asking, and how long the kernel's clock ticks are.
#[derive(Debug, Clone, Copy)]
pub struct Caller {
    /// The CPI's own pid: never stopped, nor are its ancestors.
    pub pid: i32,
    /// The CPI's user: only its processes are candidates.
    pub uid: u32,
    /// `sysconf(_SC_CLK_TCK)`.
    pub ticks_per_sec: u64,
}

impl Caller {
    /// This process.
    pub fn current() -> Caller {
        let ticks_per_sec = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
            .ok()
            .flatten()
            .and_then(|ticks| u64::try_from(ticks).ok())
            .filter(|ticks| *ticks > 0)
            // USER_HZ is 100 on every Linux architecture.
            .unwrap_or(100);
        Caller {
            pid: i32::try_from(std::process::id()).unwrap_or(i32::MAX),
            uid: nix::unistd::geteuid().as_raw(),
            ticks_per_sec,
        }
    }
}

/// A pid named by a pidfile, and when the pidfile was last written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PidfileEntry {
    /// The pid.
    pub pid: i32,
    /// The pidfile's modification time.
    pub written: SystemTime,
}

/// What marks processes as a VM's (the module docs' rules).
#[derive(Debug, Clone)]
pub struct VmProcesses {
    /// The VM directory, as configured and canonicalised.
    vm_dirs: Vec<String>,
    caller: Caller,
}

impl VmProcesses {
    /// The rules for the VM in `vm_dir`.
    pub fn new(vm_dir: &Path, caller: Caller) -> VmProcesses {
        let mut vm_dirs = vec![vm_dir.to_string_lossy().into_owned()];
        if let Ok(canonical) = vm_dir.canonicalize() {
            let canonical = canonical.to_string_lossy().into_owned();
            if !vm_dirs.contains(&canonical) {
                vm_dirs.push(canonical);
            }
        }
        VmProcesses { vm_dirs, caller }
    }

    /// The supervisor (if `supervisor_pid` is alive and names the VM directory) and the
    /// processes of its session: rule 1.
    pub fn agent(&self, snapshot: &Snapshot, supervisor_pid: Option<i32>) -> Vec<i32> {
        let Some(supervisor) = supervisor_pid
            .and_then(|pid| snapshot.processes.get(&pid))
            .filter(|process| self.is_candidate(process, snapshot))
            .filter(|process| process.cmdline.iter().any(|arg| self.names_vm_dir(arg)))
        else {
            return Vec::new();
        };
        snapshot
            .processes
            .values()
            .filter(|process| process.pid == supervisor.pid || process.stat.sid == supervisor.pid)
            .filter(|process| self.is_candidate(process, snapshot))
            .map(|process| process.pid)
            .collect()
    }

    /// Every process of the VM: rules 2 to 4 (rule 1's processes match rule 2 too).
    pub fn all(&self, snapshot: &Snapshot, pidfiles: &[PidfileEntry]) -> Vec<i32> {
        let mut found: BTreeSet<i32> = snapshot
            .processes
            .values()
            .filter(|process| self.is_candidate(process, snapshot))
            .filter(|process| {
                self.runs_from_vm_dir(process) || self.named_by_pidfile(process, snapshot, pidfiles)
            })
            .map(|process| process.pid)
            .collect();
        // Rule 4: descendants, to a fixed point (pids wrap, so a child may have a lower pid).
        loop {
            let more: Vec<i32> = snapshot
                .processes
                .values()
                .filter(|process| !found.contains(&process.pid))
                .filter(|process| found.contains(&process.stat.ppid))
                .filter(|process| self.is_candidate(process, snapshot))
                .map(|process| process.pid)
                .collect();
            if more.is_empty() {
                return found.into_iter().collect();
            }
            found.extend(more);
        }
    }

    fn is_candidate(&self, process: &Process, snapshot: &Snapshot) -> bool {
        process.uid == self.caller.uid
            && process.pid > 1
            && is_alive(&process.stat)
            && !self.is_caller_or_ancestor(process.pid, snapshot)
    }

    fn is_caller_or_ancestor(&self, pid: i32, snapshot: &Snapshot) -> bool {
        let mut current = self.caller.pid;
        // Bounded: a corrupt table must not loop forever.
        for _ in 0..1024 {
            if current == pid {
                return true;
            }
            match snapshot.processes.get(&current) {
                Some(process) if process.stat.ppid > 0 && process.stat.ppid != current => {
                    current = process.stat.ppid;
                }
                _ => return false,
            }
        }
        false
    }

    fn runs_from_vm_dir(&self, process: &Process) -> bool {
        let under = |path: &Path| {
            self.vm_dirs
                .iter()
                .any(|dir| path.starts_with(Path::new(dir)))
        };
        process.exe.as_deref().is_some_and(under)
            || process.cwd.as_deref().is_some_and(under)
            || process.cmdline.iter().any(|arg| self.names_vm_dir(arg))
    }

    /// Whether `arg` is the VM directory or a path under it, alone or after `=`.
    fn names_vm_dir(&self, arg: &str) -> bool {
        self.vm_dirs.iter().any(|dir| {
            arg == dir || arg.contains(&format!("{dir}/")) || arg.ends_with(&format!("={dir}"))
        })
    }

    fn named_by_pidfile(
        &self,
        process: &Process,
        snapshot: &Snapshot,
        pidfiles: &[PidfileEntry],
    ) -> bool {
        let started_secs =
            snapshot.boot_time_secs + process.stat.start_ticks / self.caller.ticks_per_sec;
        pidfiles
            .iter()
            .filter(|entry| entry.pid == process.pid)
            .any(|entry| {
                let written_secs = entry
                    .written
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .map_or(0, |elapsed| elapsed.as_secs());
                // `btime` has whole seconds and start times clock ticks: allow for both roundings.
                started_secs <= written_secs + 2
            })
    }
}

impl Snapshot {
    /// Reads the process table under `proc_root`; processes that vanish while it is read are left
    /// out.
    pub fn read(proc_root: &Path) -> Snapshot {
        let boot_time_secs = std::fs::read_to_string(proc_root.join("stat"))
            .ok()
            .and_then(|text| parse_boot_time(&text))
            .unwrap_or(0);
        let mut processes = BTreeMap::new();
        let Ok(entries) = std::fs::read_dir(proc_root) else {
            return Snapshot {
                processes,
                boot_time_secs,
            };
        };
        for entry in entries.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|name| name.parse::<i32>().ok())
            else {
                continue;
            };
            if let Some(process) = read_process(&entry.path(), pid) {
                processes.insert(pid, process);
            }
        }
        Snapshot {
            processes,
            boot_time_secs,
        }
    }

    /// Whether `pid` is alive and is still the process that started at `start_ticks`.
    fn is_same_alive(&self, pid: i32, start_ticks: u64) -> bool {
        self.processes.get(&pid).is_some_and(|process| {
            process.stat.start_ticks == start_ticks && is_alive(&process.stat)
        })
    }
}

/// Parses `/proc/<pid>/stat`. The command name may hold spaces and parentheses, so the fields
/// are counted from the last `)`.
pub fn parse_stat(text: &str) -> Option<Stat> {
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state (field 3), ppid (4), pgrp (5), session (6), ... starttime (22).
    Some(Stat {
        state: fields.first()?.chars().next()?,
        ppid: fields.get(1)?.parse().ok()?,
        sid: fields.get(3)?.parse().ok()?,
        start_ticks: fields.get(19)?.parse().ok()?,
    })
}

/// `btime` of `/proc/stat`.
pub fn parse_boot_time(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|line| line.strip_prefix("btime "))
        .and_then(|value| value.trim().parse().ok())
}

/// The pid in a pidfile's text: its first word, if a positive number.
pub fn parse_pidfile(text: &str) -> Option<i32> {
    text.split_whitespace()
        .next()?
        .parse()
        .ok()
        .filter(|pid| *pid > 0)
}

/// The pidfiles under `<vm_dir>/sys/run`.
pub fn read_pidfiles(vm_dir: &Path) -> Vec<PidfileEntry> {
    let mut entries = Vec::new();
    let mut stack = vec![(vm_dir.join("sys").join("run"), 0)];
    while let Some((dir, depth)) = stack.pop() {
        let Ok(children) = std::fs::read_dir(&dir) else {
            continue;
        };
        for child in children.flatten() {
            let path = child.path();
            // Not followed: a link could lead anywhere.
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            if meta.is_dir() && depth < PIDFILE_DEPTH {
                stack.push((path, depth + 1));
            } else if meta.is_file() && path.extension().is_some_and(|e| e == "pid") {
                let pid = std::fs::read_to_string(&path)
                    .ok()
                    .and_then(|text| parse_pidfile(&text));
                if let (Some(pid), Ok(written)) = (pid, meta.modified()) {
                    entries.push(PidfileEntry { pid, written });
                }
            }
        }
    }
    entries
}

/// Stops every process of the VM in `vm_dir` (the module docs' rules and phases); the pids still
/// alive after SIGKILL if any are.
pub fn stop_vm(
    proc_root: &Path,
    vm_dir: &Path,
    caller: Caller,
    grace: Duration,
) -> Result<(), Vec<i32>> {
    let rules = VmProcesses::new(vm_dir, caller);
    let supervisor_pid = std::fs::read_to_string(vm_dir.join(store::SUPERVISOR_PID_FILE))
        .ok()
        .and_then(|text| parse_pidfile(&text));
    let first = Snapshot::read(proc_root);
    // Decided once: the session id cannot be reused while any process of the session lives.
    let session = rules.agent(&first, supervisor_pid);
    let session_id = supervisor_pid.filter(|_| !session.is_empty());
    // The supervisor stops the agent within the same grace; a second more before SIGKILL.
    terminate(
        proc_root,
        grace + Duration::from_secs(1),
        |snapshot| match session_id {
            Some(sid) => snapshot
                .processes
                .values()
                .filter(|process| process.pid == sid || process.stat.sid == sid)
                .filter(|process| rules.is_candidate(process, snapshot))
                .map(|process| process.pid)
                .collect(),
            None => Vec::new(),
        },
    )?;
    terminate(proc_root, grace, |snapshot| {
        rules.all(snapshot, &read_pidfiles(vm_dir))
    })
}

/// SIGTERM to what `select` finds, SIGKILL after `grace`; `Err` with what is left after
/// [`KILL_WAIT`] more.
fn terminate(
    proc_root: &Path,
    grace: Duration,
    select: impl Fn(&Snapshot) -> Vec<i32>,
) -> Result<(), Vec<i32>> {
    let mut tracked: BTreeMap<i32, u64> = BTreeMap::new();
    let mut terminated: BTreeSet<(i32, u64)> = BTreeSet::new();
    let term_deadline = Instant::now() + grace;
    let mut kill_deadline = None;
    loop {
        let snapshot = Snapshot::read(proc_root);
        for pid in select(&snapshot) {
            if let Some(process) = snapshot.processes.get(&pid) {
                tracked.insert(pid, process.stat.start_ticks);
            }
        }
        tracked.retain(|pid, start| snapshot.is_same_alive(*pid, *start));
        if tracked.is_empty() {
            return Ok(());
        }
        let now = Instant::now();
        if now < term_deadline {
            for (pid, start) in &tracked {
                if terminated.insert((*pid, *start)) {
                    signal(*pid, Signal::SIGTERM);
                }
            }
        } else {
            let deadline = *kill_deadline.get_or_insert(now + KILL_WAIT);
            if now >= deadline {
                return Err(tracked.into_keys().collect());
            }
            for pid in tracked.keys() {
                signal(*pid, Signal::SIGKILL);
            }
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

fn signal(pid: i32, signal: Signal) {
    // Gone already, or not ours after all: the next read of the table tells.
    let _ = kill(Pid::from_raw(pid), signal);
}

fn is_alive(stat: &Stat) -> bool {
    !matches!(stat.state, 'Z' | 'X' | 'x')
}

fn read_process(dir: &Path, pid: i32) -> Option<Process> {
    let stat = parse_stat(&std::fs::read_to_string(dir.join("stat")).ok()?)?;
    let uid = std::fs::metadata(dir).ok()?.uid();
    let cmdline = std::fs::read(dir.join("cmdline"))
        .map(|bytes| {
            bytes
                .split(|b| *b == 0)
                .filter(|arg| !arg.is_empty())
                .map(|arg| String::from_utf8_lossy(arg).into_owned())
                .collect()
        })
        .unwrap_or_default();
    Some(Process {
        pid,
        stat,
        uid,
        exe: std::fs::read_link(dir.join("exe")).ok(),
        cwd: std::fs::read_link(dir.join("cwd")).ok(),
        cmdline,
    })
}

#[cfg(test)]
mod tests {
    use std::time::UNIX_EPOCH;

    use super::*;

    const BOOT: u64 = 1_700_000_000;

    /// A fake `/proc` under a temp dir.
    struct FakeProc {
        root: tempfile::TempDir,
        uid: u32,
    }

    impl FakeProc {
        fn new() -> FakeProc {
            let root = tempfile::tempdir().unwrap();
            std::fs::write(
                root.path().join("stat"),
                format!("cpu  1 2 3\nbtime {BOOT}\nprocesses 9\n"),
            )
            .unwrap();
            let uid = std::fs::metadata(root.path()).unwrap().uid();
            FakeProc { root, uid }
        }

        /// A process from one line: `pid ppid sid state started_secs exe cwd argv...`, where
        /// `started_secs` counts from boot.
        fn add(&self, line: &str) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let [pid, ppid, sid, state, started_secs, exe, cwd, argv @ ..] = fields.as_slice()
            else {
                panic!("bad process line {line:?}");
            };
            let dir = self.root.path().join(pid);
            std::fs::create_dir(&dir).unwrap();
            let ticks = started_secs.parse::<u64>().unwrap() * 100;
            // After the name, up to starttime: state ppid pgrp session tty_nr tpgid flags minflt
            // cminflt majflt cmajflt utime stime cutime cstime priority nice num_threads
            // itrealvalue starttime.
            std::fs::write(
                dir.join("stat"),
                format!(
                    "{pid} (a (b) c) {state} {ppid} {sid} {sid} 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 {ticks} 0 0"
                ),
            )
            .unwrap();
            std::fs::write(dir.join("cmdline"), argv.join("\0") + "\0").unwrap();
            std::os::unix::fs::symlink(exe, dir.join("exe")).unwrap();
            std::os::unix::fs::symlink(cwd, dir.join("cwd")).unwrap();
        }

        fn caller(&self, pid: i32) -> Caller {
            Caller {
                pid,
                uid: self.uid,
                ticks_per_sec: 100,
            }
        }

        fn snapshot(&self) -> Snapshot {
            Snapshot::read(self.root.path())
        }
    }

    fn written_at(secs_after_boot: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(BOOT + secs_after_boot)
    }

    #[test]
    fn stat_lines_parse_whatever_the_command_name() {
        let stat = parse_stat(
            "4242 (bosh (agent) x) S 1 4200 4242 0 -1 4194560 1 0 0 0 5 6 0 0 20 0 9 0 123456 1 2",
        )
        .unwrap();
        assert_eq!(
            stat,
            Stat {
                state: 'S',
                ppid: 1,
                sid: 4242,
                start_ticks: 123_456
            }
        );
        assert_eq!(parse_stat("1 (init"), None);
        assert_eq!(parse_stat("1 (init) S 0"), None);
        assert_eq!(parse_boot_time("cpu 1\nbtime 1700000000\n"), Some(BOOT));
        assert_eq!(parse_pidfile("123\n"), Some(123));
        assert_eq!(parse_pidfile(""), None);
        assert_eq!(parse_pidfile("-5"), None);
        assert_eq!(parse_pidfile("0"), None);
    }

    #[test]
    fn a_vms_processes_are_found_by_path_pidfile_and_parentage() {
        let proc = FakeProc::new();
        let vm = "/cpi/vms/vm-1";
        // The caller and its parent: never.
        proc.add("100 1 100 S 5 /bin/bash /cpi/vms/vm-1 bash");
        proc.add(
            "101 100 100 S 5 /cpi/process-cpi /cpi/vms/vm-1 process-cpi --config /cpi/cpi.json",
        );
        // The supervisor and the agent in its session.
        proc.add("200 1 200 S 10 /cpi/process-cpi / process-cpi supervise /cpi/vms/vm-1");
        proc.add("201 200 200 S 10 /bin/bosh-agent / bosh-agent -b /cpi/vms/vm-1 -C /cpi/vms/vm-1/agent.json");
        // A job: its executable is under the VM; its child runs from elsewhere.
        proc.add("300 1 300 S 20 /cpi/vms/vm-1/packages/web/bin/web / web");
        proc.add("301 300 300 S 20 /usr/bin/sleep / sleep 100");
        // A job working in the VM directory; one started with `--config=<vm dir>/...`.
        proc.add("400 1 400 S 20 /usr/bin/python3 /cpi/vms/vm-1/data python3");
        proc.add("401 1 401 S 20 /usr/bin/app / app --config=/cpi/vms/vm-1/jobs/app/config.yml");
        // Named by a fresh pidfile; named by a stale one (started after it was written).
        proc.add("500 1 500 S 30 /usr/bin/sleep / sleep");
        proc.add("501 1 501 S 90 /usr/bin/sleep / sleep");
        // Another VM whose cid extends this one's; a zombie of this VM; init.
        proc.add(
            "600 1 600 S 20 /cpi/vms/vm-10/packages/web/bin/web /cpi/vms/vm-10 web /cpi/vms/vm-10",
        );
        proc.add("700 1 700 Z 20 /cpi/vms/vm-1/packages/web/bin/web /");
        proc.add("1 0 1 S 0 /sbin/init / init /cpi/vms/vm-1");

        let rules = VmProcesses::new(Path::new(vm), proc.caller(101));
        let snapshot = proc.snapshot();
        assert_eq!(snapshot.boot_time_secs, BOOT);
        let pidfiles = [
            PidfileEntry {
                pid: 500,
                written: written_at(31),
            },
            PidfileEntry {
                pid: 501,
                written: written_at(60),
            },
        ];
        assert_eq!(
            rules.all(&snapshot, &pidfiles),
            [200, 201, 300, 301, 400, 401, 500]
        );
        assert_eq!(rules.agent(&snapshot, Some(200)), [200, 201]);
        // A supervisor pid now held by a process that is not this VM's names no session.
        assert!(rules.agent(&snapshot, Some(500)).is_empty());
        assert!(rules.agent(&snapshot, None).is_empty());
    }

    #[test]
    fn other_users_processes_are_not_candidates() {
        let proc = FakeProc::new();
        proc.add("300 1 300 S 20 /cpi/vms/vm-1/packages/web/bin/web / web");
        let mut caller = proc.caller(99);
        caller.uid = proc.uid.wrapping_add(1);
        let rules = VmProcesses::new(Path::new("/cpi/vms/vm-1"), caller);
        assert!(rules.all(&proc.snapshot(), &[]).is_empty());
    }

    #[test]
    fn pidfiles_are_found_at_any_depth_under_sys_run() {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join("sys").join("run");
        std::fs::create_dir_all(run.join("web").join("inner")).unwrap();
        std::fs::write(run.join("web").join("web.pid"), "123\n").unwrap();
        std::fs::write(run.join("web").join("inner").join("x.pid"), "456").unwrap();
        std::fs::write(run.join("web").join("notes.txt"), "789").unwrap();
        std::fs::write(run.join("bad.pid"), "not a pid").unwrap();
        let mut pids: Vec<i32> = read_pidfiles(dir.path()).iter().map(|e| e.pid).collect();
        pids.sort();
        assert_eq!(pids, [123, 456]);
        assert!(read_pidfiles(&dir.path().join("missing")).is_empty());
    }

    #[test]
    fn zombies_count_as_gone() {
        let proc = FakeProc::new();
        // Above any pid_max (2^22): were it signalled, no real process could get the signal.
        proc.add("5000700 1 5000700 Z 20 /cpi/vms/vm-1/packages/web/bin/web /");
        assert_eq!(
            stop_vm(
                proc.root.path(),
                Path::new("/cpi/vms/vm-1"),
                proc.caller(99),
                Duration::ZERO,
            ),
            Ok(())
        );
        proc.add("5000701 1 5000701 S 20 /cpi/vms/vm-1/packages/web/bin/web /");
        // A process that ignores SIGKILL (here: one that exists only on paper) fails the stop.
        assert_eq!(
            stop_vm(
                proc.root.path(),
                Path::new("/cpi/vms/vm-1"),
                proc.caller(99),
                Duration::ZERO,
            ),
            Err(vec![5_000_701])
        );
    }
}
