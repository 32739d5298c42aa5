//! Pidfiles, read the way monit 5.2.5 reads them (`src/util.c`, `Util_getPid`): `fscanf("%d")` on
//! the file, so leading blanks are skipped, the number ends at the first non-digit, and a pid of 0
//! or an unreadable file means there is no process.

use std::path::Path;

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
}
