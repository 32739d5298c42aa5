//! A test VM as the tests drive it, after the NixOS test driver's `Machine`
//! (`nixos/lib/test-driver/src/test_driver/machine/__init__.py`): commands through the root shell
//! ([`crate::harness::shell`]), waits on systemd units and on the serial console
//! ([`crate::harness::console`]), reboots, and on a failed test a dump of the console and the
//! agent's journal.
//!
//! The methods named like the NixOS driver's (`succeed`, `fail`, `wait_until_succeeds`,
//! `wait_for_unit`, `wait_for_console`) are assertions: they panic with a message naming the
//! command or unit, as a failed test should. Every one of them first checks the console scanner,
//! so a kernel panic or an emergency shell fails the test at once.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::harness::console::Console;
use crate::harness::shell::{self, Outcome, Shell};

/// Budget for a boot up to the root shell under TCG (a minimal systemd image reaches multi-user
/// in about 7–11 s on 2 vCPUs; several VMs and builds share the host).
pub const BOOT_TIMEOUT: Duration = Duration::from_secs(300);

/// Budget for one command.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);

/// How often the waits retry.
pub const RETRY: Duration = Duration::from_millis(500);

/// How long one connection attempt may take before the console and QEMU are checked again.
const CONNECT_SLICE: Duration = Duration::from_secs(5);

/// A VM under test.
#[derive(Debug)]
pub struct Machine {
    name: String,
    dir: PathBuf,
    shell: Option<Shell>,
    console: Console,
}

impl Machine {
    /// The VM whose QEMU CPI directory is `dir` (`console.log`, `shell.sock`, `qemu.pid`), named
    /// `name` in messages. The console is followed from its start; the shell is connected on first
    /// use.
    pub fn attach(name: &str, dir: &Path) -> Machine {
        Machine {
            name: name.to_owned(),
            dir: dir.to_owned(),
            shell: None,
            console: Console::follow(&dir.join("console.log")),
        }
    }

    /// The VM's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The VM's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The serial console.
    pub fn console(&mut self) -> &mut Console {
        &mut self.console
    }

    /// Connects the root shell (waiting for the guest to boot as far as `backdoor.service`).
    pub fn connect(&mut self, timeout: Duration) -> Result<()> {
        if self.shell.is_some() {
            return Ok(());
        }
        let deadline = Instant::now() + timeout;
        let socket = self.dir.join("shell.sock");
        loop {
            self.check_alive()?;
            let left = deadline.saturating_duration_since(Instant::now());
            match Shell::connect(&socket, left.min(CONNECT_SLICE)) {
                Ok(connected) => {
                    self.shell = Some(connected);
                    return Ok(());
                }
                Err(err) if Instant::now() >= deadline => {
                    return Err(err).with_context(|| {
                        format!("{}: no root shell within {timeout:?}", self.name)
                    });
                }
                Err(_) => std::thread::sleep(RETRY.min(left)),
            }
        }
    }

    /// Runs `command` and returns its status and output, connecting first if need be.
    pub fn execute(&mut self, command: &str, timeout: Duration) -> Result<Outcome> {
        self.connect(BOOT_TIMEOUT)?;
        self.console.check()?;
        let shell = self
            .shell
            .as_mut()
            .context("the shell is connected after connect")?;
        let result = shell.execute(command, timeout);
        if let Err(err) = &result
            && !shell::is_timeout(err)
        {
            // A broken connection (QEMU restarted): connect afresh next time.
            self.shell = None;
        }
        let outcome = result.with_context(|| format!("{}: running {command:?}", self.name))?;
        self.console.check()?;
        Ok(outcome)
    }

    /// Runs `command`, panicking unless it exits 0; its output.
    pub fn succeed(&mut self, command: &str) -> String {
        let outcome = {
            let result = self.execute(command, COMMAND_TIMEOUT);
            must(&self.name, result)
        };
        if outcome.status != 0 {
            panic!(
                "{}: {command:?} failed with status {}:\n{}",
                self.name, outcome.status, outcome.output
            );
        }
        outcome.output
    }

    /// Runs `command`, panicking if it exits 0; its output.
    pub fn fail(&mut self, command: &str) -> String {
        let outcome = {
            let result = self.execute(command, COMMAND_TIMEOUT);
            must(&self.name, result)
        };
        if outcome.status == 0 {
            panic!(
                "{}: {command:?} succeeded but should have failed:\n{}",
                self.name, outcome.output
            );
        }
        outcome.output
    }

    /// Retries `command` until it exits 0, for at most `timeout`; its output.
    pub fn wait_until_succeeds(&mut self, command: &str, timeout: Duration) -> String {
        let result = self.poll(timeout, |machine| {
            let outcome = machine.execute(command, COMMAND_TIMEOUT)?;
            Ok((outcome.status == 0)
                .then_some(outcome.output.clone())
                .ok_or(outcome))
        });
        match result {
            Ok(output) => output,
            Err(Some(last)) => panic!(
                "{}: {command:?} did not succeed within {timeout:?}; last status {}:\n{}",
                self.name, last.status, last.output
            ),
            Err(None) => panic!(
                "{}: the shell did not finish {command:?} within {timeout:?}",
                self.name
            ),
        }
    }

    /// Retries `command` until it exits non-zero, for at most `timeout`; its output.
    pub fn wait_until_fails(&mut self, command: &str, timeout: Duration) -> String {
        let result = self.poll(timeout, |machine| {
            let outcome = machine.execute(command, COMMAND_TIMEOUT)?;
            Ok((outcome.status != 0)
                .then_some(outcome.output.clone())
                .ok_or(outcome))
        });
        match result {
            Ok(output) => output,
            Err(last) => panic!(
                "{}: {command:?} still succeeds after {timeout:?}: {last:?}",
                self.name
            ),
        }
    }

    /// Waits until systemd unit `unit` is active, for at most `timeout`; fails at once when it is
    /// `failed`, or inactive with no job queued that could start it.
    pub fn wait_for_unit(&mut self, unit: &str, timeout: Duration) {
        let result = self.try_wait_for_unit(unit, timeout);
        must(&self.name, result);
    }

    /// [`Machine::wait_for_unit`], returning the failure (with `systemctl status` for a unit that
    /// failed) instead of panicking.
    pub fn try_wait_for_unit(&mut self, unit: &str, timeout: Duration) -> Result<()> {
        let command = unit_state_command(unit);
        let deadline = Instant::now() + timeout;
        loop {
            let outcome = self.execute(&command, COMMAND_TIMEOUT)?;
            let state = UnitState::parse(&outcome.output);
            match state.verdict() {
                Verdict::Active => return Ok(()),
                Verdict::Failed => {
                    let status = self
                        .execute(
                            &format!("systemctl status --no-pager --full {unit}"),
                            COMMAND_TIMEOUT,
                        )
                        .map(|outcome| outcome.output)
                        .unwrap_or_else(|err| format!("(systemctl status: {err:#})"));
                    bail!("unit {unit} {}:\n{status}", state.describe());
                }
                Verdict::Pending => {}
            }
            if Instant::now() >= deadline {
                bail!(
                    "unit {unit} not active within {timeout:?}: {}",
                    state.describe()
                );
            }
            std::thread::sleep(RETRY);
        }
    }

    /// Waits until `needle` appears on the serial console, for at most `timeout`.
    pub fn wait_for_console(&mut self, needle: &str, timeout: Duration) {
        let result = self.console.wait_for(needle, timeout);
        must(&self.name, result);
    }

    /// The guest's boot id (it changes at every boot).
    pub fn boot_id(&mut self) -> String {
        self.succeed("cat /proc/sys/kernel/random/boot_id")
            .trim()
            .to_owned()
    }

    /// After a reboot was asked for: waits until the shell answers from a boot whose id is not
    /// `previous_boot_id`, for at most `timeout`.
    pub fn wait_for_reboot(&mut self, previous_boot_id: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let answer = self
                .execute(
                    "cat /proc/sys/kernel/random/boot_id",
                    left.min(CONNECT_SLICE),
                )
                .map(|outcome| outcome.output.trim().to_owned());
            match answer {
                Ok(boot_id) if boot_id != previous_boot_id && !boot_id.is_empty() => return,
                Ok(_) => {}
                // The old connection ends with the old QEMU or hangs with the old guest.
                Err(_) => self.shell = None,
            }
            if Instant::now() >= deadline {
                panic!(
                    "{}: did not come back from a reboot within {timeout:?}",
                    self.name
                );
            }
            std::thread::sleep(RETRY);
        }
    }

    /// Fails with the first bad sign on the console, if any.
    pub fn check_console(&mut self) -> Result<()> {
        self.console.check()
    }

    /// The serial console and the agent's journal, for a failure report.
    pub fn diagnostics(&mut self) -> String {
        let _ = self.console.poll();
        let journal = if self.shell.is_some() || self.dir.join("shell.sock").exists() {
            let _ = self.connect(Duration::from_secs(10));
            match &mut self.shell {
                Some(shell) => shell
                    .execute(
                        "journalctl -u bosh-agent --no-pager -o short-monotonic",
                        Duration::from_secs(20),
                    )
                    .map(|outcome| outcome.output)
                    .unwrap_or_else(|err| format!("(the shell did not answer: {err:#})")),
                None => "(the shell did not answer)".to_owned(),
            }
        } else {
            "(the VM has no shell socket)".to_owned()
        };
        format!(
            "===== {name}: serial console ({path}) =====\n{console}\n\
             ===== {name}: journalctl -u bosh-agent =====\n{journal}\n===== end of {name} =====",
            name = self.name,
            path = self.console.path().display(),
            console = self.console.text(),
        )
    }

    /// Runs `attempt` every [`RETRY`] until it gives `Ok(Ok(value))` or `timeout` passes; a hard
    /// error panics, the last `Ok(Err(..))` is returned.
    fn poll<T, E>(
        &mut self,
        timeout: Duration,
        mut attempt: impl FnMut(&mut Machine) -> Result<std::result::Result<T, E>>,
    ) -> std::result::Result<T, Option<E>> {
        let deadline = Instant::now() + timeout;
        let mut last = None;
        loop {
            match attempt(self) {
                Ok(Ok(value)) => return Ok(value),
                Ok(Err(not_yet)) => last = Some(not_yet),
                Err(err) if shell::is_timeout(&err) => {}
                Err(err) => panic!("{}: {err:#}", self.name),
            }
            if Instant::now() >= deadline {
                return Err(last);
            }
            std::thread::sleep(RETRY);
        }
    }

    /// Fails when QEMU has exited (its pid file names a process that is gone).
    fn check_alive(&mut self) -> Result<()> {
        self.console.check()?;
        let Ok(pid) = std::fs::read_to_string(self.dir.join("qemu.pid")) else {
            return Ok(());
        };
        let pid = pid.trim();
        if !pid.is_empty() && !Path::new("/proc").join(pid).exists() {
            bail!("{}: QEMU (pid {pid}) is no longer running", self.name);
        }
        Ok(())
    }
}

impl Drop for Machine {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.diagnostics());
        } else if let Err(err) = self.console.check() {
            // A test whose assertions passed still fails on a broken guest.
            let diagnostics = self.diagnostics();
            panic!("{}: {err:#}\n{diagnostics}", self.name);
        }
    }
}

/// The value of `result`, or a panic naming the machine.
fn must<T>(name: &str, result: Result<T>) -> T {
    match result {
        Ok(value) => value,
        Err(err) => panic!("{name}: {err:#}"),
    }
}

/// The command that prints what [`UnitState::parse`] reads.
pub fn unit_state_command(unit: &str) -> String {
    format!(
        "systemctl show --property=LoadState,ActiveState,SubState {unit}; \
         echo Jobs=$(systemctl list-jobs --no-legend --no-pager | wc -l)"
    )
}

/// A unit's state from `systemctl show` and the number of queued jobs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnitState {
    /// `loaded`, `not-found`, ...
    pub load_state: String,
    /// `active`, `activating`, `failed`, `inactive`, ...
    pub active_state: String,
    /// `running`, `auto-restart`, `dead`, ...
    pub sub_state: String,
    /// Jobs queued in the system manager.
    pub jobs: u32,
}

/// What a wait does with a [`UnitState`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The unit is active.
    Active,
    /// It cannot become active any more.
    Failed,
    /// Keep waiting.
    Pending,
}

impl UnitState {
    /// Reads `Key=value` lines.
    pub fn parse(text: &str) -> UnitState {
        let mut state = UnitState::default();
        for line in text.lines() {
            let Some((key, value)) = line.trim().split_once('=') else {
                continue;
            };
            match key {
                "LoadState" => state.load_state = value.to_owned(),
                "ActiveState" => state.active_state = value.to_owned(),
                "SubState" => state.sub_state = value.to_owned(),
                "Jobs" => state.jobs = value.trim().parse().unwrap_or(0),
                _ => {}
            }
        }
        state
    }

    /// Active, failed for good, or worth waiting for. A unit that does not exist (yet) is waited
    /// for: daemon-reload may still bring it.
    pub fn verdict(&self) -> Verdict {
        match self.active_state.as_str() {
            "active" | "reloading" => Verdict::Active,
            "failed" => Verdict::Failed,
            "inactive" if self.load_state == "loaded" && self.jobs == 0 => Verdict::Failed,
            _ => Verdict::Pending,
        }
    }

    /// `ActiveState/SubState (LoadState)`.
    pub fn describe(&self) -> String {
        format!(
            "is {}/{} ({}, {} jobs queued)",
            self.active_state, self.sub_state, self.load_state, self.jobs
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(text: &str) -> UnitState {
        UnitState::parse(text)
    }

    #[test]
    fn unit_states_decide_the_wait() {
        let cases = [
            (
                "LoadState=loaded\nActiveState=active\nSubState=running\nJobs=0\n",
                Verdict::Active,
            ),
            (
                "LoadState=loaded\nActiveState=active\nSubState=exited\nJobs=3\n",
                Verdict::Active,
            ),
            (
                "LoadState=loaded\nActiveState=activating\nSubState=start\nJobs=5\n",
                Verdict::Pending,
            ),
            (
                "LoadState=loaded\nActiveState=activating\nSubState=auto-restart\nJobs=0\n",
                Verdict::Pending,
            ),
            (
                "LoadState=loaded\nActiveState=failed\nSubState=failed\nJobs=4\n",
                Verdict::Failed,
            ),
            (
                "LoadState=loaded\nActiveState=inactive\nSubState=dead\nJobs=2\n",
                Verdict::Pending,
            ),
            (
                "LoadState=loaded\nActiveState=inactive\nSubState=dead\nJobs=0\n",
                Verdict::Failed,
            ),
            (
                "LoadState=not-found\nActiveState=inactive\nSubState=dead\nJobs=0\n",
                Verdict::Pending,
            ),
            ("", Verdict::Pending),
        ];
        for (text, verdict) in cases {
            assert_eq!(state(text).verdict(), verdict, "{text}");
        }
    }

    #[test]
    fn unit_state_reads_its_fields() {
        assert_eq!(
            state("LoadState=loaded\r\nActiveState=failed\nSubState=failed\nJobs= 7\nOther=x\n"),
            UnitState {
                load_state: "loaded".into(),
                active_state: "failed".into(),
                sub_state: "failed".into(),
                jobs: 7
            }
        );
    }

    #[test]
    fn unit_state_command_parses_on_this_host_shape() {
        assert_eq!(
            unit_state_command("bosh-agent.service"),
            "systemctl show --property=LoadState,ActiveState,SubState bosh-agent.service; \
             echo Jobs=$(systemctl list-jobs --no-legend --no-pager | wc -l)"
        );
    }

    #[test]
    fn a_machine_without_a_vm_fails_naming_it_and_dumps_what_it_has() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("console.log"), "Linux version 6.1\n").unwrap();
        // A pid that is not running: QEMU has exited.
        std::fs::write(dir.path().join("qemu.pid"), format!("{}\n", u32::MAX >> 1)).unwrap();
        let mut machine = Machine::attach("vm-a", dir.path());
        let err = machine.connect(Duration::from_secs(5)).unwrap_err();
        assert!(format!("{err:#}").contains("vm-a: QEMU (pid"), "{err:#}");
        let diagnostics = machine.diagnostics();
        assert!(diagnostics.contains("Linux version 6.1"), "{diagnostics}");
        assert!(
            diagnostics.contains("(the VM has no shell socket)"),
            "{diagnostics}"
        );
    }

    #[test]
    fn a_bad_sign_on_the_console_fails_a_command() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("console.log"),
            "[ 5.0] systemd[1]: Found ordering cycle on foo.service/start\n",
        )
        .unwrap();
        let mut machine = Machine::attach("vm-b", dir.path());
        let err = machine.execute("true", Duration::from_secs(1)).unwrap_err();
        assert_eq!(
            format!("{err:#}"),
            "systemd ordering cycle on the serial console: \"[ 5.0] systemd[1]: Found ordering cycle on foo.service/start\""
        );
        // Provoked on purpose: taken, so dropping the machine does not fail the test.
        assert_eq!(machine.console().take_bad_signs().len(), 1);
    }
}
