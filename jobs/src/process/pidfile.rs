//! Pidfiles, read the way monit 5.2.5 reads them (`src/util.c`, `Util_getPid`): `fscanf("%d")` on
//! the file, so leading blanks are skipped, the number ends at the first non-digit, and a pid of 0
//! or an unreadable file means there is no process.
//!
//! [`probe`] is monit's liveness test (`Util_isProcessRunning`): the pidfile names a pid and the
//! [`Spawner`] says it lives (not a zombie).

use std::path::Path;

use platform::cmd::Spawner;

/// What a check of a pidfile found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Probe {
    /// No pidfile, or no pid in it.
    Missing,
    /// The pidfile names a dead process.
    Dead,
    /// The pidfile names this live process.
    Alive(u32),
}

/// Reads the pidfile at `path` and asks `spawner` whether its pid lives. Blocking.
pub(crate) fn probe(path: &Path, spawner: &dyn Spawner) -> Probe {
    match read(path) {
        None => Probe::Missing,
        Some(pid) if spawner.is_alive(pid) => Probe::Alive(pid),
        Some(_) => Probe::Dead,
    }
}

/// The pid a pidfile's text names; `None` when it names none.
pub(crate) fn parse(text: &str) -> Option<u32> {
    let digits: String = text
        .trim_start()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok().filter(|pid| *pid > 0)
}

/// The pid in the pidfile at `path`; `None` when the file is missing, unreadable or names no pid.
/// Blocking.
pub(crate) fn read(path: &Path) -> Option<u32> {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|text| parse(&text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pidfiles_are_read_as_monit_scans_them() {
        let cases: &[(&str, Option<u32>)] = &[
            ("1234\n", Some(1234)),
            ("  42", Some(42)),
            ("\n7 trailing words\n", Some(7)),
            ("99abc", Some(99)),
            ("0\n", None),
            ("", None),
            ("pid", None),
            ("-5", None),
            ("99999999999", None),
        ];
        for (text, expected) in cases {
            assert_eq!(parse(text), *expected, "{text:?}");
        }
    }

    #[test]
    fn a_missing_pidfile_names_no_pid() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read(&dir.path().join("missing.pid")), None);
        std::fs::write(dir.path().join("web.pid"), "31337\n").unwrap();
        assert_eq!(read(&dir.path().join("web.pid")), Some(31337));
    }

    #[test]
    fn a_probe_asks_the_spawner_about_the_pid() {
        let dir = tempfile::tempdir().unwrap();
        let spawner = platform::testing::FakeSpawner::new();
        let path = dir.path().join("web.pid");
        assert_eq!(probe(&path, &spawner), Probe::Missing);
        let pid = spawner.start_process();
        std::fs::write(&path, pid.to_string()).unwrap();
        assert_eq!(probe(&path, &spawner), Probe::Alive(pid));
        spawner.mark_dead(pid);
        assert_eq!(probe(&path, &spawner), Probe::Dead);
    }
}
