//! The serial console of a test VM: follows `console.log` (QEMU's `-serial file:`), keeps its text,
//! waits for text to appear, and scans every line for signs that the guest is broken, as coreos
//! kola's console checks do (`mantle/platform/machine/*` `CheckConsole`): kernel panic, oops,
//! segfault, the OOM killer, systemd ordering cycles and the emergency shell fail a test even when
//! its assertions passed.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// How often a wait re-reads the log.
const POLL: Duration = Duration::from_millis(100);

/// Text on a console line that means the guest is broken, and what to call it.
pub const BAD_SIGNS: &[(&str, &str)] = &[
    ("Kernel panic", "kernel panic"),
    ("Oops:", "kernel oops"),
    ("kernel BUG at", "kernel BUG"),
    ("BUG: unable to handle", "kernel BUG"),
    (" segfault at ", "segfault"),
    ("invoked oom-killer", "OOM killer"),
    ("Out of memory: Kill", "OOM killer"),
    ("ordering cycle", "systemd ordering cycle"),
    ("emergency mode", "emergency shell"),
    ("Emergency shell", "emergency shell"),
    (
        "Dependency failed for Local File Systems",
        "emergency shell",
    ),
];

/// A sign of a broken guest found on the console.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} on the serial console: {line:?}")]
pub struct BadSign {
    /// What it is (`kernel panic`, `segfault`, ...).
    pub what: &'static str,
    /// The whole console line.
    pub line: String,
}

/// The first bad sign in `line`, if any.
pub fn scan_line(line: &str) -> Option<BadSign> {
    BAD_SIGNS
        .iter()
        .find(|(needle, _)| line.contains(needle))
        .map(|(_, what)| BadSign {
            what,
            line: line.trim_end().to_owned(),
        })
}

/// A followed console log.
#[derive(Debug)]
pub struct Console {
    path: PathBuf,
    /// How far the file has been read.
    offset: u64,
    /// Everything read, across QEMU restarts (which truncate the file).
    text: String,
    /// Where the next whole line to scan starts in `text`.
    scanned: usize,
    /// The bad signs found so far.
    bad_signs: Vec<BadSign>,
    /// Where each read started in `text` and when it was read (for timings).
    reads: Vec<(usize, Instant)>,
}

impl Console {
    /// Follows `path` from its beginning (the file may not exist yet).
    pub fn follow(path: &Path) -> Console {
        Console {
            path: path.to_owned(),
            offset: 0,
            text: String::new(),
            scanned: 0,
            bad_signs: Vec::new(),
            reads: Vec::new(),
        }
    }

    /// The log's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Everything read so far.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Reads what was appended since the last call and scans the new whole lines.
    pub fn poll(&mut self) -> Result<()> {
        let mut file = match std::fs::File::open(&self.path) {
            Ok(file) => file,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(err) => {
                return Err(err)
                    .with_context(|| format!("opening the console log {}", self.path.display()));
            }
        };
        let len = file
            .metadata()
            .with_context(|| format!("reading the console log {}", self.path.display()))?
            .len();
        if len < self.offset {
            // QEMU was started again and truncated the file: read the new boot from its start.
            self.offset = 0;
            if !self.text.ends_with('\n') && !self.text.is_empty() {
                self.text.push('\n');
            }
            self.text.push_str("--- console log restarted ---\n");
        }
        file.seek(SeekFrom::Start(self.offset))
            .with_context(|| format!("reading the console log {}", self.path.display()))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)
            .with_context(|| format!("reading the console log {}", self.path.display()))?;
        self.offset += bytes.len() as u64;
        if !bytes.is_empty() {
            self.reads.push((self.text.len(), Instant::now()));
        }
        self.text.push_str(&String::from_utf8_lossy(&bytes));
        self.scan();
        Ok(())
    }

    /// The bad signs seen so far.
    pub fn bad_signs(&self) -> &[BadSign] {
        &self.bad_signs
    }

    /// Takes the bad signs seen so far, for a test that provoked them on purpose.
    pub fn take_bad_signs(&mut self) -> Vec<BadSign> {
        std::mem::take(&mut self.bad_signs)
    }

    /// Polls and fails with the first bad sign seen, if any.
    pub fn check(&mut self) -> Result<()> {
        self.poll()?;
        match self.bad_signs.first() {
            Some(sign) => Err(sign.clone().into()),
            None => Ok(()),
        }
    }

    /// Waits until `needle` appears on the console after byte `from` of [`Console::text`], for at
    /// most `timeout`; returns where it starts. Fails early on a bad sign.
    pub fn wait_for_after(
        &mut self,
        needle: &str,
        from: usize,
        timeout: Duration,
    ) -> Result<usize> {
        let deadline = Instant::now() + timeout;
        loop {
            self.check()?;
            let from = from.min(self.text.len());
            if let Some(at) = self.text[from..].find(needle) {
                return Ok(from + at);
            }
            if Instant::now() >= deadline {
                bail!(
                    "{needle:?} did not appear on the serial console ({}) within {timeout:?}",
                    self.path.display()
                );
            }
            std::thread::sleep(POLL);
        }
    }

    /// Waits until `needle` appears anywhere on the console.
    pub fn wait_for(&mut self, needle: &str, timeout: Duration) -> Result<usize> {
        self.wait_for_after(needle, 0, timeout)
    }

    /// When the read that brought the first `needle` happened: a timing as fine as the polling.
    pub fn first_seen(&self, needle: &str) -> Option<Instant> {
        let at = self.text.find(needle)?;
        self.reads
            .iter()
            .rev()
            .find(|(start, _)| *start <= at)
            .map(|(_, when)| *when)
    }

    fn scan(&mut self) {
        while let Some(end) = self.text[self.scanned..].find('\n') {
            let line = &self.text[self.scanned..self.scanned + end];
            if let Some(sign) = scan_line(line) {
                self.bad_signs.push(sign);
            }
            self.scanned += end + 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use super::*;

    #[test]
    fn bad_signs_are_named_with_their_line() {
        let cases = [
            (
                "[    3.1] Kernel panic - not syncing: VFS: Unable to mount root fs",
                "kernel panic",
            ),
            ("[   12.0] Oops: 0000 [#1] PREEMPT SMP NOPTI", "kernel oops"),
            (
                "[   20.5] bosh-agent[412]: segfault at 0 ip 000055d5 sp 00007ffd error 4",
                "segfault",
            ),
            (
                "[   30.0] bosh-agent invoked oom-killer: gfp_mask=0x140cca",
                "OOM killer",
            ),
            (
                "[   30.1] Out of memory: Killed process 412 (bosh-agent)",
                "OOM killer",
            ),
            (
                "[    5.0] systemd[1]: a.service: Found ordering cycle on b.service/start",
                "systemd ordering cycle",
            ),
            (
                "You are in emergency mode. After logging in, type \"journalctl -xb\"",
                "emergency shell",
            ),
            (
                "Entering emergency mode. Exit the shell to continue.",
                "emergency shell",
            ),
            (
                "[FAILED] Dependency failed for Local File Systems.",
                "emergency shell",
            ),
        ];
        for (line, what) in cases {
            assert_eq!(
                scan_line(line),
                Some(BadSign {
                    what,
                    line: line.to_owned()
                }),
                "{line}"
            );
        }
    }

    #[test]
    fn ordinary_boot_lines_are_not_bad_signs() {
        for line in [
            "[    0.000000] Linux version 6.1.0-28-cloud-amd64",
            "[  OK  ] Reached target multi-user.target - Multi-User System.",
            "[  OK  ] Started bosh-agent.service - BOSH Agent.",
            "[    1.2] systemd[1]: Detected virtualization kvm.",
            "bosh-agent[300]: ERROR loading settings: settings field agent_id is missing",
        ] {
            assert_eq!(scan_line(line), None, "{line}");
        }
    }

    #[test]
    fn console_follows_appends_and_restarts_and_waits_for_text() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("console.log");
        let mut console = Console::follow(&path);
        // A log that does not exist yet is empty.
        console.poll().unwrap();
        assert_eq!(console.text(), "");
        let mut file = std::fs::File::create(&path).unwrap();
        file.write_all(b"Linux version 6.1\nsystemd st").unwrap();
        console.poll().unwrap();
        assert_eq!(console.text(), "Linux version 6.1\nsystemd st");
        file.write_all(b"arting\n").unwrap();
        let at = console
            .wait_for("systemd starting", Duration::from_secs(5))
            .unwrap();
        assert_eq!(at, 18);
        let err = console
            .wait_for_after("Linux version", 1, Duration::from_millis(200))
            .unwrap_err();
        assert!(format!("{err:#}").contains("\"Linux version\" did not appear"));
        // QEMU started again: the file is truncated and rewritten.
        drop(file);
        std::fs::write(&path, "Linux version 6.1 again\n").unwrap();
        console.poll().unwrap();
        assert_eq!(
            console.text(),
            "Linux version 6.1\nsystemd starting\n--- console log restarted ---\nLinux version 6.1 again\n"
        );
        console.check().unwrap();
        let first = console.first_seen("Linux version").unwrap();
        let again = console.first_seen("again").unwrap();
        assert!(first < again);
        assert_eq!(console.first_seen("absent"), None);
    }

    #[test]
    fn a_bad_sign_fails_check_and_waits() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("console.log");
        std::fs::write(
            &path,
            "booting\n[ 9.1] Kernel panic - not syncing: Attempted to kill init!\n",
        )
        .unwrap();
        let mut console = Console::follow(&path);
        let err = console
            .wait_for("never printed", Duration::from_secs(5))
            .unwrap_err();
        assert_eq!(
            format!("{err:#}"),
            "kernel panic on the serial console: \"[ 9.1] Kernel panic - not syncing: Attempted to kill init!\""
        );
        assert_eq!(console.bad_signs().len(), 1);
    }

    #[test]
    fn an_unfinished_line_is_scanned_once_complete() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("console.log");
        std::fs::write(&path, "a.service: Found ordering").unwrap();
        let mut console = Console::follow(&path);
        console.check().unwrap();
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        file.write_all(b" cycle on b.service/start\n").unwrap();
        let err = console.check().unwrap_err();
        assert!(
            format!("{err}").starts_with("systemd ordering cycle"),
            "{err}"
        );
    }
}
