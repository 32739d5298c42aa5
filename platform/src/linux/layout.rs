//! The directory layout on the data disk and the hardening mounts (`SetupDataDir`, `setupRunDir`,
//! `SetupTmpDir`, `SetupLogDir`, `SetupOptDir`, `SetupSharedMemory`, `SetupHomeDir`,
//! `SetupBlobsDir`, `SetupCanRestartDir` in `platform/linux_platform.go`; §6.1 and §6.7 of the
//! reference).
//!
//! | Path | Mode, owner | |
//! |---|---|---|
//! | `data/sys`, `data/sys/log` | 0750 root:vcap | `<base>/sys` links to `data/sys` |
//! | `data/sys/run` | tmpfs (`run_dir.tmpfs_size`, 16m), 0750 root:vcap | |
//! | `data/jobs`, `data/sensitive_blobs` | 0750 / 0700 root:vcap, tmpfs with `job_dir.tmpfs` (100m) | |
//! | `data/dynamic_disks` | 0700 root:vcap | |
//! | `data/packages` | 0755 root:vcap | |
//! | `data/blobs` | 0700 root:vcap | |
//! | `data/tmp` | 0755 | |
//! | `data/root_tmp` on `/tmp` and `/var/tmp` | 1777 root:vcap, `nodev,nosuid,noexec` | unless `UseDefaultTmpDir` |
//! | `data/root_log` on `/var/log` | 0771 root:syslog, `nodev,nosuid,noexec` | `audit/` 0750, `sysstat/` 0755, `btmp` 0600 and `wtmp`, `lastlog` 0664 root:utmp, `chrony/` 0700 `_chrony`; `journal/` 2755 root:systemd-journal when the journal is persistent |
//! | `data/root_opt` on `/opt`, `data/root_var_opt` on `/var/opt` | 0755 root:root, `nodev` | |
//! | `/home` on itself | `nodev,nosuid` | |
//! | `/dev/shm`, `/run/shm` remounted | `noexec,nodev,nosuid` | when mounted |
//! | `bosh/canrestart` | tmpfs 16m, 0740 root:vcap | tmpfs mode only |
//!
//! Modes are set directly; owners through `chown` run by the runner (Go does the same). Mounts
//! go through [`Mounter`]: nothing is mounted twice, and a hardening remount runs only when the
//! mount lacks its options. Where Debian differs from the Ubuntu stemcells Go targets, we adapt
//! rather than fail: `root_log` stays `root:root` when there is no `syslog` group. `TMPDIR` is
//! not set in the agent's own environment (that is not thread-safe in a running program); the
//! agent's children get `data/tmp` from their callers.

use std::path::Path;

use settings::Dirs;
use settings::model::{JobDir, RunDir};

use crate::HostPaths;
use crate::bootstrap::{Error, Result};
use crate::cmd::{Cmd, CommandRunner};
use crate::linux::files;
use crate::linux::mounter::Mounter;

/// The owner of the agent's directories.
const ROOT_VCAP: &str = "root:vcap";

/// Options of the hardened bind mounts of `/tmp`, `/var/tmp` and `/var/log`.
const NO_DEV_SUID_EXEC: [&str; 3] = ["nodev", "nosuid", "noexec"];

/// What the layout steps work on.
#[derive(Debug, Clone, Copy)]
pub struct Layout<'a> {
    /// Runs `chown` and `mount`.
    pub runner: &'a dyn CommandRunner,
    /// The host.
    pub host: &'a HostPaths,
    /// The base dir.
    pub dirs: &'a Dirs,
}

impl Layout<'_> {
    fn mounter(&self) -> Mounter<'_> {
        Mounter {
            runner: self.runner,
            host: self.host,
        }
    }

    fn best_effort(&self, cmd: Cmd) {
        if let Err(err) = files::run(self.runner, cmd) {
            tracing::warn!(error = %err, "moving the journal");
        }
    }

    fn dir(&self, path: &Path, mode: u32, owner: Option<&str>) -> Result<()> {
        files::ensure_dir(path, mode)?;
        match owner {
            Some(owner) => files::chown(self.runner, owner, path),
            None => Ok(()),
        }
    }

    /// `/dev/shm` and `/run/shm` remounted `noexec,nodev,nosuid` where they are mounted.
    pub fn setup_shared_memory(&self) -> Result<()> {
        for dir in [self.host.dev("shm"), self.host.run("shm")] {
            self.mounter()
                .remount_with(&dir, &["noexec", "nodev", "nosuid"])?;
        }
        Ok(())
    }

    /// `data/root_log` on `/var/log`.
    pub fn setup_log_dir(&self) -> Result<()> {
        let root_log = self.dirs.data_dir().join("root_log");
        self.dir(&root_log, 0o771, None)?;
        self.dir(&root_log.join("audit"), 0o750, None)?;
        self.dir(&root_log.join("sysstat"), 0o755, None)?;
        if files::group_exists(self.host, "syslog") {
            files::chown(self.runner, "root:syslog", &root_log)?;
        }
        for (name, mode) in [("btmp", 0o600), ("wtmp", 0o664), ("lastlog", 0o664)] {
            let path = root_log.join(name);
            files::touch(&path)?;
            files::chown(self.runner, "root:utmp", &path)?;
            files::set_mode(&path, mode)?;
        }
        let var_log = self.host.var("log");
        // A persistent journal lives in /var/log/journal, which the bind mount hides: journald is
        // asked to write to /run meanwhile, and to move back to the new /var/log/journal after,
        // so `journalctl` keeps working (Go's stemcells restart their loggers in a script).
        let moves_journal =
            var_log.join("journal").is_dir() && !self.mounter().is_mount_point(&var_log)?;
        if moves_journal {
            let journal = root_log.join("journal");
            files::ensure_dir(&journal, 0o2755)?;
            if files::group_exists(self.host, "systemd-journal") {
                files::chown(self.runner, "root:systemd-journal", &journal)?;
            }
            self.best_effort(Cmd::new("journalctl").arg("--relinquish-var"));
        }
        self.mounter()
            .bind_mount(&root_log, &var_log, &NO_DEV_SUID_EXEC)?;
        if moves_journal {
            self.best_effort(Cmd::new("journalctl").arg("--flush"));
        }
        if files::user_exists(self.host, "_chrony") {
            self.dir(&root_log.join("chrony"), 0o700, Some("_chrony:_chrony"))?;
        }
        Ok(())
    }

    /// `data/root_var_opt` on `/var/opt` and `data/root_opt` on `/opt`, `nodev` only (binaries
    /// live there).
    pub fn setup_opt_dir(&self) -> Result<()> {
        for (source, target) in [
            ("root_var_opt", self.host.var("opt")),
            ("root_opt", self.host.top("opt")),
        ] {
            let source = self.dirs.data_dir().join(source);
            self.dir(&source, 0o755, Some("root:root"))?;
            files::ensure_dir(&target, 0o755)?;
            self.mounter().bind_mount(&source, &target, &["nodev"])?;
        }
        Ok(())
    }

    /// The data dir layout.
    pub fn setup_data_dir(&self, job_dir: &JobDir, run_dir: &RunDir) -> Result<()> {
        let data = self.dirs.data_dir();
        let sys = data.join("sys");
        files::ensure_dir(&self.dirs.data_sys_log_dir(), 0o750)?;
        files::set_mode(&sys, 0o750)?;
        files::chown(self.runner, ROOT_VCAP, &sys)?;
        files::chown(self.runner, ROOT_VCAP, &self.dirs.data_sys_log_dir())?;
        let jobs = self.dirs.data_jobs_dir();
        let sensitive = self.dirs.sensitive_blobs_dir();
        let dynamic_disks = self.dirs.data_dynamic_disks_dir();
        files::ensure_dir(&jobs, 0o750)?;
        files::ensure_dir(&dynamic_disks, 0o700)?;
        files::ensure_dir(&sensitive, 0o700)?;
        if job_dir.tmpfs {
            let size = non_empty_or(&job_dir.tmpfs_size, "100m");
            self.mounter().mount_tmpfs(&jobs, size, 0o750)?;
            self.mounter().mount_tmpfs(&sensitive, size, 0o700)?;
        }
        for dir in [&jobs, &sensitive, &dynamic_disks] {
            files::chown(self.runner, ROOT_VCAP, dir)?;
        }
        self.dir(&self.dirs.data_packages_dir(), 0o755, Some(ROOT_VCAP))?;
        let run = self.dirs.data_sys_run_dir();
        if !self.mounter().is_mount_point(&run)? {
            files::ensure_dir(&run, 0o750)?;
            self.mounter()
                .mount_tmpfs(&run, non_empty_or(&run_dir.tmpfs_size, "16m"), 0o750)?;
            files::chown(self.runner, ROOT_VCAP, &run)?;
        } else {
            // Mounted by an agent that left the tmpfs's root 1777.
            files::ensure_dir(&run, 0o750)?;
        }
        link(&sys, &self.dirs.base_dir().join("sys"))
    }

    /// `data/tmp`, then `data/root_tmp` bind-mounted on `/tmp` and `/var/tmp` unless
    /// `use_default_tmp_dir`.
    pub fn setup_tmp_dir(&self, use_default_tmp_dir: bool) -> Result<()> {
        files::ensure_dir(&self.dirs.tmp_dir(), 0o755)?;
        let tmp = self.host.top("tmp");
        let var_tmp = self.host.var("tmp");
        for dir in [&tmp, &var_tmp] {
            self.dir(dir, 0o1777, Some(ROOT_VCAP))?;
        }
        if use_default_tmp_dir {
            return Ok(());
        }
        let root_tmp = self.dirs.data_dir().join("root_tmp");
        self.dir(&root_tmp, 0o1777, Some(ROOT_VCAP))?;
        for dir in [&tmp, &var_tmp] {
            self.mounter()
                .bind_mount(&root_tmp, dir, &NO_DEV_SUID_EXEC)?;
        }
        Ok(())
    }

    /// `bosh/canrestart` on a 16m tmpfs (tmpfs mode: it vanishes with a reboot).
    pub fn setup_can_restart_dir(&self) -> Result<()> {
        let dir = self.dirs.can_restart_dir();
        files::ensure_dir(&dir, 0o740)?;
        self.mounter().mount_tmpfs(&dir, "16m", 0o740)?;
        files::chown(self.runner, ROOT_VCAP, &dir)
    }

    /// `/home` bind-mounted on itself and made `nodev,nosuid`.
    pub fn setup_home_dir(&self) -> Result<()> {
        let home = self.host.top("home");
        if self.mounter().is_mount_point(&home)? {
            return Ok(());
        }
        self.mounter()
            .bind_mount(&home, &home, &["nodev", "nosuid"])
    }

    /// `data/blobs`.
    pub fn setup_blobs_dir(&self) -> Result<()> {
        self.dir(&self.dirs.blobs_dir(), 0o700, Some(ROOT_VCAP))
    }
}

fn non_empty_or<'a>(value: &'a str, default: &'a str) -> &'a str {
    if value.is_empty() { default } else { value }
}

/// Makes `link_path` a symlink to `target`, replacing whatever is there (the stemcell's empty
/// `<base>/sys` directory) unless it already points there.
fn link(target: &Path, link_path: &Path) -> Result<()> {
    if let Ok(current) = std::fs::read_link(link_path) {
        if current == target {
            return Ok(());
        }
    }
    match std::fs::symlink_metadata(link_path) {
        Ok(meta) if meta.is_dir() => std::fs::remove_dir_all(link_path),
        Ok(_) => std::fs::remove_file(link_path),
        Err(_) => Ok(()),
    }
    .map_err(|source| Error::io("removing", link_path, source))?;
    std::os::unix::fs::symlink(target, link_path)
        .map_err(|source| Error::io("linking", link_path, source))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt as _;

    use super::*;
    use crate::testing::{RecordingRunner, Reply};

    struct Vm {
        root: tempfile::TempDir,
        host: HostPaths,
        dirs: Dirs,
    }

    fn vm(mountinfo: &str) -> Vm {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("proc/self")).unwrap();
        std::fs::create_dir_all(root.path().join("etc")).unwrap();
        std::fs::write(root.path().join("proc/self/mountinfo"), mountinfo).unwrap();
        std::fs::write(
            root.path().join("etc/group"),
            "root:x:0:\nutmp:x:43:\nvcap:x:1000:\n",
        )
        .unwrap();
        std::fs::write(
            root.path().join("etc/passwd"),
            "root:x:0:0::/root:/bin/sh\n",
        )
        .unwrap();
        let host = HostPaths::with_root(root.path());
        let dirs = Dirs::new(root.path().join("var/vcap"));
        Vm { root, host, dirs }
    }

    impl Vm {
        fn path(&self, name: &str) -> String {
            self.root.path().join(name).to_string_lossy().into_owned()
        }

        fn mode(&self, name: &str) -> u32 {
            std::fs::metadata(self.root.path().join(name))
                .unwrap()
                .mode()
                & 0o7777
        }

        fn layout<'a>(&'a self, runner: &'a RecordingRunner) -> Layout<'a> {
            Layout {
                runner,
                host: &self.host,
                dirs: &self.dirs,
            }
        }
    }

    fn expect_all(runner: &RecordingRunner, commands: &[Vec<String>]) {
        for argv in commands {
            let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
            runner.expect(&argv, Reply::Ok(String::new()));
        }
    }

    fn argv(parts: &[&str]) -> Vec<String> {
        parts.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn the_data_dir_layout_has_its_modes_owners_and_run_tmpfs() {
        let vm = vm("22 1 252:1 / / rw - ext4 /dev/vda1 rw\n");
        std::fs::create_dir_all(vm.root.path().join("var/vcap/sys")).unwrap();
        let data = |name: &str| vm.path(&format!("var/vcap/data/{name}"));
        let commands = vec![
            argv(&["chown", "root:vcap", &data("sys")]),
            argv(&["chown", "root:vcap", &data("sys/log")]),
            argv(&["chown", "root:vcap", &data("jobs")]),
            argv(&["chown", "root:vcap", &data("sensitive_blobs")]),
            argv(&["chown", "root:vcap", &data("dynamic_disks")]),
            argv(&["chown", "root:vcap", &data("packages")]),
            argv(&[
                "mount",
                "-t",
                "tmpfs",
                "-o",
                "size=16m,mode=0750",
                "tmpfs",
                &data("sys/run"),
            ]),
            argv(&["chown", "root:vcap", &data("sys/run")]),
        ];
        let runner = RecordingRunner::new();
        expect_all(&runner, &commands);
        vm.layout(&runner)
            .setup_data_dir(&JobDir::default(), &RunDir::default())
            .unwrap();
        assert_eq!(runner.recorded(), commands);
        for (name, mode) in [
            ("var/vcap/data/sys", 0o750),
            ("var/vcap/data/sys/log", 0o750),
            ("var/vcap/data/sys/run", 0o750),
            ("var/vcap/data/jobs", 0o750),
            ("var/vcap/data/sensitive_blobs", 0o700),
            ("var/vcap/data/dynamic_disks", 0o700),
            ("var/vcap/data/packages", 0o755),
        ] {
            assert_eq!(vm.mode(name), mode, "{name}");
        }
        assert_eq!(
            std::fs::read_link(vm.root.path().join("var/vcap/sys")).unwrap(),
            vm.root.path().join("var/vcap/data/sys")
        );
    }

    #[test]
    fn job_dir_tmpfs_mounts_jobs_and_sensitive_blobs() {
        let vm = vm("22 1 252:1 / / rw - ext4 /dev/vda1 rw\n");
        let data = |name: &str| vm.path(&format!("var/vcap/data/{name}"));
        let runner = RecordingRunner::new();
        runner.expect(
            &[
                "mount",
                "-t",
                "tmpfs",
                "-o",
                "size=64m,mode=0750",
                "tmpfs",
                &data("jobs"),
            ],
            Reply::Ok(String::new()),
        );
        runner.expect(
            &[
                "mount",
                "-t",
                "tmpfs",
                "-o",
                "size=64m,mode=0700",
                "tmpfs",
                &data("sensitive_blobs"),
            ],
            Reply::Ok(String::new()),
        );
        runner.expect(
            &[
                "mount",
                "-t",
                "tmpfs",
                "-o",
                "size=32m,mode=0750",
                "tmpfs",
                &data("sys/run"),
            ],
            Reply::Ok(String::new()),
        );
        for _ in 0..7 {
            runner.expect(
                &["chown", "root:vcap", RecordingRunner::ANY],
                Reply::Ok(String::new()),
            );
        }
        let job_dir = JobDir {
            tmpfs: true,
            tmpfs_size: "64m".into(),
        };
        let run_dir = RunDir {
            tmpfs_size: "32m".into(),
        };
        vm.layout(&runner)
            .setup_data_dir(&job_dir, &run_dir)
            .unwrap();
        assert!(runner.unused().is_empty(), "{:?}", runner.unused());
    }

    #[test]
    fn tmp_and_log_are_bind_mounted_hardened() {
        let vm = vm("22 1 252:1 / / rw - ext4 /dev/vda1 rw\n");
        let root_tmp = vm.path("var/vcap/data/root_tmp");
        let root_log = vm.path("var/vcap/data/root_log");
        let (tmp, var_tmp, var_log) = (vm.path("tmp"), vm.path("var/tmp"), vm.path("var/log"));
        let tmp_commands = vec![
            argv(&["chown", "root:vcap", &tmp]),
            argv(&["chown", "root:vcap", &var_tmp]),
            argv(&["chown", "root:vcap", &root_tmp]),
            argv(&["mount", "-o", "bind", &root_tmp, &tmp]),
            argv(&["mount", "-o", "bind", &root_tmp, &var_tmp]),
        ];
        let runner = RecordingRunner::new();
        expect_all(&runner, &tmp_commands);
        vm.layout(&runner).setup_tmp_dir(false).unwrap();
        assert_eq!(runner.recorded(), tmp_commands);
        for name in ["tmp", "var/tmp", "var/vcap/data/root_tmp"] {
            assert_eq!(vm.mode(name), 0o1777, "{name}");
        }
        assert_eq!(vm.mode("var/vcap/data/tmp"), 0o755);

        let log_commands = vec![
            argv(&["chown", "root:utmp", &format!("{root_log}/btmp")]),
            argv(&["chown", "root:utmp", &format!("{root_log}/wtmp")]),
            argv(&["chown", "root:utmp", &format!("{root_log}/lastlog")]),
            argv(&["mount", "-o", "bind", &root_log, &var_log]),
        ];
        let runner = RecordingRunner::new();
        expect_all(&runner, &log_commands);
        vm.layout(&runner).setup_log_dir().unwrap();
        assert_eq!(runner.recorded(), log_commands);
        for (name, mode) in [
            ("var/vcap/data/root_log", 0o771),
            ("var/vcap/data/root_log/audit", 0o750),
            ("var/vcap/data/root_log/sysstat", 0o755),
            ("var/vcap/data/root_log/btmp", 0o600),
            ("var/vcap/data/root_log/wtmp", 0o664),
        ] {
            assert_eq!(vm.mode(name), mode, "{name}");
        }
    }

    #[test]
    fn a_persistent_journal_moves_to_the_new_var_log() {
        let vm = vm("22 1 252:1 / / rw - ext4 /dev/vda1 rw\n");
        std::fs::create_dir_all(vm.root.path().join("var/log/journal")).unwrap();
        let root_log = vm.path("var/vcap/data/root_log");
        let runner = RecordingRunner::new();
        for _ in 0..3 {
            runner.expect(
                &["chown", "root:utmp", RecordingRunner::ANY],
                Reply::Ok(String::new()),
            );
        }
        runner.expect(
            &["journalctl", "--relinquish-var"],
            Reply::Ok(String::new()),
        );
        runner.expect(
            &["mount", "-o", "bind", &root_log, &vm.path("var/log")],
            Reply::Ok(String::new()),
        );
        runner.expect(
            &["journalctl", "--flush"],
            Reply::Fail(1, "no journald".into()),
        );
        vm.layout(&runner).setup_log_dir().unwrap();
        let programs: Vec<String> = runner
            .recorded()
            .iter()
            .map(|argv| argv[..2].join(" "))
            .collect();
        assert_eq!(
            &programs[3..],
            [
                "journalctl --relinquish-var",
                "mount -o",
                "journalctl --flush"
            ]
        );
        assert_eq!(vm.mode("var/vcap/data/root_log/journal"), 0o2755);
    }

    #[test]
    fn mounted_and_hardened_dirs_are_skipped_on_restart() {
        let vm = vm("");
        let mountinfo = format!(
            "22 1 252:1 / / rw - ext4 /dev/vda1 rw\n\
             50 22 252:18 /root_tmp {tmp} rw,nosuid,nodev,noexec - ext4 /dev/vdb2 rw\n\
             51 22 252:18 /root_tmp {var_tmp} rw,nosuid,nodev,noexec - ext4 /dev/vdb2 rw\n\
             52 22 0:30 / {shm} rw,nosuid,nodev - tmpfs tmpfs rw\n\
             53 22 252:1 /home {home} rw,nosuid,nodev - ext4 /dev/vda1 rw\n",
            tmp = vm.path("tmp"),
            var_tmp = vm.path("var/tmp"),
            shm = vm.path("dev/shm"),
            home = vm.path("home"),
        );
        std::fs::write(vm.root.path().join("proc/self/mountinfo"), mountinfo).unwrap();
        let runner = RecordingRunner::new();
        for _ in 0..3 {
            runner.expect(
                &["chown", "root:vcap", RecordingRunner::ANY],
                Reply::Ok(String::new()),
            );
        }
        let shm = vm.path("dev/shm");
        runner.expect(
            &["mount", "-o", "remount,noexec,nodev,nosuid", &shm],
            Reply::Ok(String::new()),
        );
        let layout = vm.layout(&runner);
        layout.setup_tmp_dir(false).unwrap();
        layout.setup_home_dir().unwrap();
        layout.setup_shared_memory().unwrap();
        assert!(runner.unused().is_empty(), "{:?}", runner.unused());
        assert_eq!(
            runner.recorded().len(),
            4,
            "only chowns and the shm remount"
        );
    }

    #[test]
    fn opt_blobs_and_canrestart() {
        let vm = vm("22 1 252:1 / / rw - ext4 /dev/vda1 rw\n");
        let runner = RecordingRunner::new();
        let root_var_opt = vm.path("var/vcap/data/root_var_opt");
        let root_opt = vm.path("var/vcap/data/root_opt");
        let blobs = vm.path("var/vcap/data/blobs");
        let canrestart = vm.path("var/vcap/bosh/canrestart");
        let commands = vec![
            argv(&["chown", "root:root", &root_var_opt]),
            argv(&["mount", "-o", "bind", &root_var_opt, &vm.path("var/opt")]),
            argv(&["chown", "root:root", &root_opt]),
            argv(&["mount", "-o", "bind", &root_opt, &vm.path("opt")]),
            argv(&["chown", "root:vcap", &blobs]),
            argv(&[
                "mount",
                "-t",
                "tmpfs",
                "-o",
                "size=16m,mode=0740",
                "tmpfs",
                &canrestart,
            ]),
            argv(&["chown", "root:vcap", &canrestart]),
        ];
        expect_all(&runner, &commands);
        let layout = vm.layout(&runner);
        layout.setup_opt_dir().unwrap();
        layout.setup_blobs_dir().unwrap();
        layout.setup_can_restart_dir().unwrap();
        assert_eq!(runner.recorded(), commands);
        assert_eq!(vm.mode("var/vcap/data/blobs"), 0o700);
        assert_eq!(vm.mode("var/vcap/bosh/canrestart"), 0o740);
    }
}
