//! The VM's vitals, as `get_state` (full format) and heartbeats report them (`platform/vitals/service.go`,
//! `platform/vitals/vitals.go`, `platform/stats/percentage.go`, `sigar/sigar_stats_collector.go`).
//!
//! The wire format is the Go agent's: every figure is a string except `uptime.secs`; CPU percentages
//! have one decimal, the others none, load averages two. Go's `omitempty` tags are kept: an empty
//! `disk` object, empty strings and a zero uptime are left out. The `disk` keys come out sorted
//! (`ephemeral`, `persistent`, `system`), as Go encodes its map.
//!
//! Figures are computed by pure functions from a [`Sample`] ([`render`], [`format_percent`],
//! [`parse_proc_stat`]); [`VitalsCollector`] takes the sample from the host:
//!
//! * CPU: `/proc/stat`'s aggregate line, as a share of the ticks since the previous call (the first
//!   call counts since boot). Go samples every 10 s in the background and reports `0.0` until the
//!   first sample; we sample when asked, so no thread runs for it. `user` includes `nice`.
//! * Memory: used = total − available (sigar's `ActualUsed`), host-wide (cgroup limits ignored, as
//!   Go's `GetMemIgnoringCGroups`); swap: total − free. Load average and uptime: the kernel's.
//! * Disks: `/` (system), `<base>/data` (ephemeral) and `<base>/store` (persistent), each only if it
//!   is a mount point; used = blocks − free blocks (sigar counts reserved blocks as used), inodes
//!   alike. A failure on `/` is an error; on the others the entry is left out, as in Go.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use settings::Dirs;

use crate::HostPaths;
use crate::mount;

/// The vitals document.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Vitals {
    /// CPU time shares.
    pub cpu: CpuVitals,
    /// Disk usage of the mounted disks.
    #[serde(skip_serializing_if = "DiskVitals::is_empty")]
    pub disk: DiskVitals,
    /// Load averages over 1, 5 and 15 minutes.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub load: Vec<String>,
    /// Memory use.
    pub mem: MemoryVitals,
    /// Swap use.
    pub swap: MemoryVitals,
    /// Time since boot.
    pub uptime: UptimeVitals,
}

/// CPU time shares in percent with one decimal (`"1.2"`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CpuVitals {
    /// Kernel time.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub sys: String,
    /// User time, including niced processes.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub user: String,
    /// Time waiting for IO.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub wait: String,
}

/// Usage of the agent's disks; a disk is present only while its path is a mount point.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct DiskVitals {
    /// `<base>/data`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ephemeral: Option<DiskUsageVitals>,
    /// `<base>/store`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub persistent: Option<DiskUsageVitals>,
    /// `/`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system: Option<DiskUsageVitals>,
}

/// Usage of one disk in whole percent (`"42"`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct DiskUsageVitals {
    /// Inodes used.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub inode_percent: String,
    /// Blocks used.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub percent: String,
}

/// Memory or swap use.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct MemoryVitals {
    /// Used, in KiB.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub kb: String,
    /// Used, in whole percent of the total.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub percent: String,
}

/// Time since boot.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct UptimeVitals {
    /// Whole seconds.
    #[serde(skip_serializing_if = "is_zero")]
    pub secs: u64,
}

/// CPU time counters of `/proc/stat`, in clock ticks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuCounters {
    /// User time.
    pub user: u64,
    /// User time of niced processes.
    pub nice: u64,
    /// Kernel time.
    pub system: u64,
    /// Idle time.
    pub idle: u64,
    /// Time waiting for IO.
    pub iowait: u64,
    /// Interrupt time.
    pub irq: u64,
    /// Soft interrupt time.
    pub softirq: u64,
    /// Time stolen by the hypervisor.
    pub steal: u64,
}

/// Used and total amounts of memory or swap, in bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Used bytes.
    pub used: u64,
    /// Total bytes.
    pub total: u64,
}

/// A filesystem's block and inode counts, as `statvfs(3)` reports them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FsUsage {
    /// Blocks in total.
    pub blocks: u64,
    /// Free blocks, including those reserved for root.
    pub blocks_free: u64,
    /// Inodes in total.
    pub files: u64,
    /// Free inodes.
    pub files_free: u64,
}

/// Everything the vitals are computed from.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sample {
    /// CPU ticks spent in the period measured.
    pub cpu: CpuCounters,
    /// Load averages over 1, 5 and 15 minutes.
    pub load: [f64; 3],
    /// Memory use.
    pub memory: Usage,
    /// Swap use.
    pub swap: Usage,
    /// Whole seconds since boot.
    pub uptime_secs: u64,
    /// The system disk, if `/` is a mount point.
    pub system_disk: Option<FsUsage>,
    /// The ephemeral disk, if `<base>/data` is a mount point.
    pub ephemeral_disk: Option<FsUsage>,
    /// The persistent disk, if `<base>/store` is a mount point.
    pub persistent_disk: Option<FsUsage>,
}

/// `/proc/stat` without the shape this module reads.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseError(String);

/// Why vitals could not be collected.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `/proc/stat` could not be read.
    #[error("reading cpu counters from {}", .path.display())]
    ReadCpu {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// `/proc/stat` could not be parsed.
    #[error("parsing cpu counters in {}", .path.display())]
    ParseCpu {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: ParseError,
    },
    /// The mount table could not be read.
    #[error("finding the mounted disks")]
    Mounts(#[source] mount::Error),
    /// `statvfs` failed on the system disk.
    #[error("reading the usage of the system disk {}", .path.display())]
    SystemDisk {
        /// The path given to `statvfs`.
        path: PathBuf,
        /// The cause.
        #[source]
        source: nix::Error,
    },
}

/// `pub type Result<T>` of this module.
pub type Result<T> = std::result::Result<T, Error>;

/// The mount point of the system disk in the host's namespace (the host root).
const SYSTEM_MOUNT_POINT: &str = "/";

impl DiskVitals {
    /// Whether no disk is reported (Go then leaves `disk` out).
    pub fn is_empty(&self) -> bool {
        self.ephemeral.is_none() && self.persistent.is_none() && self.system.is_none()
    }
}

impl CpuCounters {
    /// Every tick counted (the guest fields of `/proc/stat` are already part of `user` and `nice`).
    pub fn total(&self) -> u64 {
        [
            self.user,
            self.nice,
            self.system,
            self.idle,
            self.iowait,
            self.irq,
            self.softirq,
            self.steal,
        ]
        .iter()
        .fold(0u64, |total, ticks| total.saturating_add(*ticks))
    }

    /// The ticks counted since `earlier`. A counter that went backwards (the kernel's `iowait` can)
    /// counts as zero.
    pub fn since(&self, earlier: &CpuCounters) -> CpuCounters {
        CpuCounters {
            user: self.user.saturating_sub(earlier.user),
            nice: self.nice.saturating_sub(earlier.nice),
            system: self.system.saturating_sub(earlier.system),
            idle: self.idle.saturating_sub(earlier.idle),
            iowait: self.iowait.saturating_sub(earlier.iowait),
            irq: self.irq.saturating_sub(earlier.irq),
            softirq: self.softirq.saturating_sub(earlier.softirq),
            steal: self.steal.saturating_sub(earlier.steal),
        }
    }
}

/// `part` as a percentage of `total` with `decimals` decimals; `0` when `total` is zero (Go's
/// `Percentage.FormatFractionOf100`). Rounding is to the nearest, ties to even, as Go's `%.Nf`.
pub fn format_percent(part: u64, total: u64, decimals: usize) -> String {
    let fraction = if total == 0 {
        0.0
    } else {
        part as f64 / total as f64 * 100.0
    };
    format!("{fraction:.decimals$}")
}

/// The aggregate CPU counters of the text of `/proc/stat` (see `proc_stat(5)`). Counters a kernel
/// does not report (older kernels stop before `steal`) are zero.
pub fn parse_proc_stat(text: &str) -> std::result::Result<CpuCounters, ParseError> {
    let line = text
        .lines()
        .find(|line| line.split_whitespace().next() == Some("cpu"))
        .ok_or_else(|| ParseError("no aggregate 'cpu' line".to_owned()))?;
    let mut values = [0u64; 8];
    let fields: Vec<&str> = line.split_whitespace().skip(1).collect();
    if fields.len() < 4 {
        return Err(ParseError(format!(
            "the 'cpu' line has {} counters, expected at least 4",
            fields.len()
        )));
    }
    for (index, (slot, field)) in values.iter_mut().zip(&fields).enumerate() {
        *slot = field.parse().map_err(|_| {
            ParseError(format!(
                "counter {} of the 'cpu' line is not a number: '{field}'",
                index + 1
            ))
        })?;
    }
    let [user, nice, system, idle, iowait, irq, softirq, steal] = values;
    Ok(CpuCounters {
        user,
        nice,
        system,
        idle,
        iowait,
        irq,
        softirq,
        steal,
    })
}

/// The vitals document of `sample`.
pub fn render(sample: &Sample) -> Vitals {
    let cpu = &sample.cpu;
    let total = cpu.total();
    Vitals {
        cpu: CpuVitals {
            sys: format_percent(cpu.system, total, 1),
            user: format_percent(cpu.user.saturating_add(cpu.nice), total, 1),
            wait: format_percent(cpu.iowait, total, 1),
        },
        disk: DiskVitals {
            ephemeral: sample.ephemeral_disk.as_ref().map(render_disk),
            persistent: sample.persistent_disk.as_ref().map(render_disk),
            system: sample.system_disk.as_ref().map(render_disk),
        },
        load: sample
            .load
            .iter()
            .map(|average| format!("{average:.2}"))
            .collect(),
        mem: render_memory(&sample.memory),
        swap: render_memory(&sample.swap),
        uptime: UptimeVitals {
            secs: sample.uptime_secs,
        },
    }
}

/// Collects vitals from the host; keeps the previous CPU counters between calls.
#[derive(Debug)]
pub struct VitalsCollector {
    host: HostPaths,
    dirs: Dirs,
    previous_cpu: Mutex<Option<CpuCounters>>,
}

impl VitalsCollector {
    /// A collector reading `/proc` under `host`, reporting the disks of the base dir of `dirs`.
    pub fn new(host: HostPaths, dirs: &Dirs) -> VitalsCollector {
        VitalsCollector {
            host,
            dirs: dirs.clone(),
            previous_cpu: Mutex::new(None),
        }
    }

    /// Samples the host and renders the vitals.
    pub fn collect(&self) -> Result<Vitals> {
        Ok(render(&self.sample()?))
    }

    /// Samples the host.
    pub fn sample(&self) -> Result<Sample> {
        let cpu = self.cpu_since_previous()?;
        let mounts = mount::read_mounts(&self.host).map_err(Error::Mounts)?;
        let system_disk = if mount::is_mount_point_in(&mounts, Path::new(SYSTEM_MOUNT_POINT)) {
            let path = self.host.root().to_owned();
            Some(fs_usage(&path).map_err(|source| Error::SystemDisk { path, source })?)
        } else {
            None
        };
        let optional_disk = |path: PathBuf| {
            if !mount::is_mount_point_in(&mounts, &path) {
                return None;
            }
            fs_usage(&path)
                .inspect_err(|err| {
                    // Go leaves the entry out on any error but the system disk's.
                    tracing::debug!(path = %path.display(), error = %err, "statvfs failed; disk left out of vitals");
                })
                .ok()
        };
        let ephemeral_disk = optional_disk(self.dirs.data_dir());
        let persistent_disk = optional_disk(self.dirs.store_dir());

        let mut system = sysinfo::System::new();
        system.refresh_memory();
        let load = sysinfo::System::load_average();
        Ok(Sample {
            cpu,
            load: [load.one, load.five, load.fifteen],
            memory: Usage {
                used: system
                    .total_memory()
                    .saturating_sub(system.available_memory()),
                total: system.total_memory(),
            },
            swap: Usage {
                used: system.used_swap(),
                total: system.total_swap(),
            },
            uptime_secs: sysinfo::System::uptime(),
            system_disk,
            ephemeral_disk,
            persistent_disk,
        })
    }

    /// The CPU ticks since the previous call, or since boot on the first.
    fn cpu_since_previous(&self) -> Result<CpuCounters> {
        let path = self.host.proc("stat");
        let text = std::fs::read_to_string(&path).map_err(|source| Error::ReadCpu {
            path: path.clone(),
            source,
        })?;
        let now = parse_proc_stat(&text).map_err(|source| Error::ParseCpu { path, source })?;
        // A poisoned lock only means another collection panicked; the counters are still valid.
        let mut previous = self.previous_cpu.lock().unwrap_or_else(|e| e.into_inner());
        let since = match previous.as_ref() {
            Some(earlier) => now.since(earlier),
            None => now,
        };
        *previous = Some(now);
        Ok(since)
    }
}

fn render_memory(usage: &Usage) -> MemoryVitals {
    MemoryVitals {
        kb: (usage.used / 1024).to_string(),
        percent: format_percent(usage.used, usage.total, 0),
    }
}

fn render_disk(usage: &FsUsage) -> DiskUsageVitals {
    DiskUsageVitals {
        inode_percent: format_percent(usage.files.saturating_sub(usage.files_free), usage.files, 0),
        percent: format_percent(
            usage.blocks.saturating_sub(usage.blocks_free),
            usage.blocks,
            0,
        ),
    }
}

fn fs_usage(path: &Path) -> nix::Result<FsUsage> {
    let stat = nix::sys::statvfs::statvfs(path)?;
    // The field types differ between platforms (u32 on some); widening never loses a value.
    #[allow(clippy::useless_conversion)]
    let usage = FsUsage {
        blocks: u64::from(stat.blocks()),
        blocks_free: u64::from(stat.blocks_free()),
        files: u64::from(stat.files()),
        files_free: u64::from(stat.files_free()),
    };
    Ok(usage)
}

fn is_zero(value: &u64) -> bool {
    *value == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages_follow_go_formatting() {
        let cases = [
            (50, 100, 2, "50.00"),
            (50, 100, 0, "50"),
            (50, 0, 2, "0.00"),
            (0, 0, 0, "0"),
            (1, 3, 1, "33.3"),
            (2, 3, 1, "66.7"),
            (2, 3, 0, "67"),
            (1, 200, 0, "0"),  // 0.5 rounds to even
            (3, 200, 0, "2"),  // 1.5 rounds to even
            (5, 200, 0, "2"),  // 2.5 rounds to even
            (1, 8, 1, "12.5"), // exact
            (1, 1, 1, "100.0"),
            (u64::MAX, u64::MAX, 0, "100"),
        ];
        for (part, total, decimals, expected) in cases {
            assert_eq!(
                format_percent(part, total, decimals),
                expected,
                "{part}/{total} with {decimals} decimals"
            );
        }
    }

    #[test]
    fn proc_stat_aggregate_line_is_parsed() {
        let modern = "cpu  10132153 290696 3084719 46828483 16683 0 25195 0 175628 0\n\
                      cpu0 1393280 32966 572056 13343292 6130 0 17875 0 23933 0\n\
                      intr 114930548 113199788 3 0 5 263 0 4 [... lots more numbers ...]\n\
                      ctxt 1990473\nbtime 1062191376\n";
        let old = "cpu 1 2 3 4\n";
        let cases: &[(&str, std::result::Result<CpuCounters, &str>)] = &[
            (
                modern,
                Ok(CpuCounters {
                    user: 10132153,
                    nice: 290696,
                    system: 3084719,
                    idle: 46828483,
                    iowait: 16683,
                    irq: 0,
                    softirq: 25195,
                    steal: 0,
                }),
            ),
            (
                old,
                Ok(CpuCounters {
                    user: 1,
                    nice: 2,
                    system: 3,
                    idle: 4,
                    ..CpuCounters::default()
                }),
            ),
            ("cpu0 1 2 3 4\nintr 1\n", Err("no aggregate 'cpu' line")),
            ("", Err("no aggregate 'cpu' line")),
            (
                "cpu 1 2 3\n",
                Err("the 'cpu' line has 3 counters, expected at least 4"),
            ),
            (
                "cpu 1 2 x 4\n",
                Err("counter 3 of the 'cpu' line is not a number: 'x'"),
            ),
            (
                "cpu 1 2 3 -4\n",
                Err("counter 4 of the 'cpu' line is not a number: '-4'"),
            ),
        ];
        for (text, expected) in cases {
            let parsed = parse_proc_stat(text).map_err(|err| err.to_string());
            assert_eq!(parsed, expected.map_err(str::to_owned), "{text:?}");
        }
    }

    #[test]
    fn cpu_deltas_never_go_negative() {
        let earlier = CpuCounters {
            user: 100,
            nice: 10,
            system: 50,
            idle: 1000,
            iowait: 40,
            irq: 1,
            softirq: 2,
            steal: 3,
        };
        let now = CpuCounters {
            user: 150,
            nice: 10,
            system: 70,
            idle: 1900,
            iowait: 30, // iowait may go backwards
            irq: 1,
            softirq: 2,
            steal: 13,
        };
        let delta = now.since(&earlier);
        assert_eq!(
            delta,
            CpuCounters {
                user: 50,
                nice: 0,
                system: 20,
                idle: 900,
                iowait: 0,
                irq: 0,
                softirq: 0,
                steal: 10,
            }
        );
        assert_eq!(delta.total(), 980);
    }

    fn sample() -> Sample {
        Sample {
            cpu: CpuCounters {
                user: 10,
                nice: 2,
                system: 4,
                idle: 980,
                iowait: 0,
                irq: 1,
                softirq: 1,
                steal: 2,
            },
            load: [0.09, 0.04, 0.005],
            memory: Usage {
                used: 149_499_904,
                total: 3_737_497_600,
            },
            swap: Usage::default(),
            uptime_secs: 123,
            system_disk: Some(FsUsage {
                blocks: 1000,
                blocks_free: 580,
                files: 1000,
                files_free: 910,
            }),
            ephemeral_disk: None,
            persistent_disk: None,
        }
    }

    #[test]
    fn vitals_render_to_the_go_wire_format() {
        let json = serde_json::to_string(&render(&sample())).unwrap();
        assert_eq!(
            json,
            r#"{"cpu":{"sys":"0.4","user":"1.2","wait":"0.0"},"disk":{"system":{"inode_percent":"9","percent":"42"}},"load":["0.09","0.04","0.01"],"mem":{"kb":"145996","percent":"4"},"swap":{"kb":"0","percent":"0"},"uptime":{"secs":123}}"#
        );
    }

    #[test]
    fn disk_entries_follow_the_mounted_disks() {
        let full = FsUsage {
            blocks: 10,
            blocks_free: 0,
            files: 0,
            files_free: 0,
        };
        // (system, ephemeral, persistent, the "disk" object)
        type Case = (
            Option<FsUsage>,
            Option<FsUsage>,
            Option<FsUsage>,
            &'static str,
        );
        let cases: &[Case] = &[
            (None, None, None, "null"),
            (
                Some(full),
                None,
                None,
                r#"{"system":{"inode_percent":"0","percent":"100"}}"#,
            ),
            (
                Some(full),
                Some(full),
                Some(full),
                r#"{"ephemeral":{"inode_percent":"0","percent":"100"},"persistent":{"inode_percent":"0","percent":"100"},"system":{"inode_percent":"0","percent":"100"}}"#,
            ),
            (
                None,
                None,
                Some(full),
                r#"{"persistent":{"inode_percent":"0","percent":"100"}}"#,
            ),
        ];
        for (system, ephemeral, persistent, expected) in cases {
            let vitals = render(&Sample {
                system_disk: *system,
                ephemeral_disk: *ephemeral,
                persistent_disk: *persistent,
                ..sample()
            });
            let json = serde_json::to_value(&vitals).unwrap();
            assert_eq!(
                json.get("disk").cloned().unwrap_or_default().to_string(),
                *expected
            );
        }
    }

    #[test]
    fn empty_fields_are_left_out_as_go_omitempty_does() {
        let json = serde_json::to_string(&Vitals::default()).unwrap();
        assert_eq!(json, r#"{"cpu":{},"mem":{},"swap":{},"uptime":{}}"#);
        let zero = render(&Sample::default());
        assert_eq!(
            serde_json::to_string(&zero).unwrap(),
            r#"{"cpu":{"sys":"0.0","user":"0.0","wait":"0.0"},"load":["0.00","0.00","0.00"],"mem":{"kb":"0","percent":"0"},"swap":{"kb":"0","percent":"0"},"uptime":{}}"#
        );
    }

    #[test]
    fn vitals_decode_what_they_encode() {
        let vitals = render(&sample());
        let json = serde_json::to_vec(&vitals).unwrap();
        assert_eq!(serde_json::from_slice::<Vitals>(&json).unwrap(), vitals);
    }

    struct FakeHost {
        root: tempfile::TempDir,
        base: PathBuf,
    }

    impl FakeHost {
        fn new() -> FakeHost {
            let root = tempfile::tempdir().unwrap();
            let base = root.path().join("var/vcap");
            std::fs::create_dir_all(root.path().join("proc/self")).unwrap();
            FakeHost { root, base }
        }

        fn write(&self, name: &str, text: &str) {
            std::fs::write(self.root.path().join(name), text).unwrap();
        }

        fn mount(&self, mount_points: &[&Path]) {
            let lines: String = mount_points
                .iter()
                .enumerate()
                .map(|(i, mount_point)| {
                    format!(
                        "{} 1 8:{i} / {} rw - ext4 /dev/sd{i} rw\n",
                        20 + i,
                        mount_point.display()
                    )
                })
                .collect();
            self.write("proc/self/mountinfo", &lines);
        }

        fn collector(&self) -> VitalsCollector {
            VitalsCollector::new(
                HostPaths::with_root(self.root.path()),
                &Dirs::new(&self.base),
            )
        }
    }

    #[test]
    fn cpu_is_measured_since_boot_then_since_the_previous_call() {
        let host = FakeHost::new();
        host.mount(&[]);
        host.write("proc/stat", "cpu  100 0 100 800 0 0 0 0 0 0\n");
        let collector = host.collector();
        let first = collector.collect().unwrap();
        assert_eq!(
            (
                first.cpu.user.as_str(),
                first.cpu.sys.as_str(),
                first.cpu.wait.as_str()
            ),
            ("10.0", "10.0", "0.0")
        );
        host.write("proc/stat", "cpu  130 20 110 1600 40 0 0 0 0 0\n");
        let second = collector.collect().unwrap();
        assert_eq!(
            (
                second.cpu.user.as_str(),
                second.cpu.sys.as_str(),
                second.cpu.wait.as_str()
            ),
            ("5.6", "1.1", "4.4")
        );
        assert_eq!(second.load.len(), 3);
    }

    #[test]
    fn only_mounted_disks_are_reported() {
        let host = FakeHost::new();
        host.write("proc/stat", "cpu  1 0 1 8 0 0 0 0 0 0\n");
        let dirs = Dirs::new(&host.base);
        std::fs::create_dir_all(dirs.data_dir()).unwrap();
        let collector = host.collector();

        host.mount(&[Path::new("/"), &dirs.data_dir()]);
        let disk = collector.collect().unwrap().disk;
        assert!(
            disk.system.is_some() && disk.ephemeral.is_some(),
            "{disk:?}"
        );
        assert!(disk.persistent.is_none(), "{disk:?}");

        // A mount point whose directory cannot be read is left out, as in Go.
        host.mount(&[&dirs.store_dir()]);
        assert!(collector.collect().unwrap().disk.is_empty());
    }

    #[test]
    fn a_missing_host_file_is_an_error_naming_it() {
        let host = FakeHost::new();
        let err = host.collector().collect().unwrap_err();
        assert!(
            err.to_string().starts_with("reading cpu counters from ")
                && err.to_string().ends_with("proc/stat"),
            "{err}"
        );
        host.write("proc/stat", "cpu  1 0 1 8 0 0 0 0 0 0\n");
        let err = host.collector().collect().unwrap_err();
        assert_eq!(err.to_string(), "finding the mounted disks");
        host.write("proc/stat", "intr 1\n");
        let err = host.collector().collect().unwrap_err();
        assert!(
            matches!(&err, Error::ParseCpu { source, .. } if source.to_string() == "no aggregate 'cpu' line"),
            "{err:?}"
        );
    }
}
