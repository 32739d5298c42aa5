//! The host's mount table, read from `/proc/self/mountinfo` (`platform/disk/proc_mounts_searcher.go`,
//! `platform/disk/linux_mounter.go` `IsMountPoint`).
//!
//! Go reads `/proc/mounts` and splits it on whitespace, so a mount point with a space in its name
//! (the kernel writes it as `\040`) never matches. We read `mountinfo`, whose fields are fixed, and
//! decode the kernel's octal escapes. Like Go, a path is a mount point when it is exactly the mount
//! point of some entry; paths are compared as given, without resolving symlinks.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

use crate::HostPaths;

/// One line of `mountinfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    /// What is mounted: a device (`/dev/sdb1`), or a name such as `tmpfs` or `overlay`.
    pub source: String,
    /// Where it is mounted.
    pub mount_point: PathBuf,
    /// The filesystem type (`ext4`, `tmpfs`).
    pub fs_type: String,
    /// The per-mount options (`rw`, `nosuid`, `nodev`, `noexec`, `relatime`).
    pub options: Vec<String>,
}

/// A `mountinfo` line that does not have the kernel's shape.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {reason}")]
pub struct ParseError {
    /// The 1-based line number.
    pub line: usize,
    /// What is wrong with it.
    pub reason: &'static str,
}

/// Why the mount table could not be read.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be read.
    #[error("reading the mount table {}", .path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The file could not be parsed.
    #[error("parsing the mount table {}", .path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: ParseError,
    },
}

/// `pub type Result<T>` of this module.
pub type Result<T> = std::result::Result<T, Error>;

/// Parses the text of `/proc/self/mountinfo` (see `proc_pid_mountinfo(5)`).
pub fn parse_mountinfo(text: &str) -> std::result::Result<Vec<MountEntry>, ParseError> {
    let mut entries = Vec::new();
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let error = |reason| ParseError {
            line: index + 1,
            reason,
        };
        let fields: Vec<&str> = line.split(' ').collect();
        // Fields: id, parent id, major:minor, root, mount point, options, optional fields ending
        // with "-", then filesystem type, source and superblock options.
        let separator = fields
            .iter()
            .skip(6)
            .position(|field| *field == "-")
            .map(|position| position + 6)
            .ok_or_else(|| error("no '-' separator after the optional fields"))?;
        let (Some(fs_type), Some(source)) = (fields.get(separator + 1), fields.get(separator + 2))
        else {
            return Err(error(
                "no filesystem type and source after the '-' separator",
            ));
        };
        entries.push(MountEntry {
            source: String::from_utf8_lossy(&unescape(source)).into_owned(),
            mount_point: PathBuf::from(OsString::from_vec(unescape(fields[4]))),
            fs_type: String::from_utf8_lossy(&unescape(fs_type)).into_owned(),
            options: fields[5].split(',').map(str::to_owned).collect(),
        });
    }
    Ok(entries)
}

/// Reads the mount table of the host.
pub fn read_mounts(host: &HostPaths) -> Result<Vec<MountEntry>> {
    let path = host.proc("self/mountinfo");
    let text = std::fs::read_to_string(&path).map_err(|source| Error::Read {
        path: path.clone(),
        source,
    })?;
    parse_mountinfo(&text).map_err(|source| Error::Parse { path, source })
}

/// The last entry mounted on `path` (the one visible there), if any.
pub fn mounted_on<'a>(mounts: &'a [MountEntry], path: &Path) -> Option<&'a MountEntry> {
    mounts.iter().rev().find(|entry| entry.mount_point == path)
}

/// Whether `path` is the mount point of some entry in `mounts`.
pub fn is_mount_point_in(mounts: &[MountEntry], path: &Path) -> bool {
    mounts.iter().any(|entry| entry.mount_point == path)
}

/// Whether `path` is a mount point on the host.
pub fn is_mount_point(host: &HostPaths, path: &Path) -> Result<bool> {
    Ok(is_mount_point_in(&read_mounts(host)?, path))
}

/// Decodes the kernel's `\ooo` octal escapes (space, tab, newline, backslash) in a mountinfo field.
fn unescape(field: &str) -> Vec<u8> {
    let bytes = field.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let escape = bytes.get(index + 1..index + 4);
        match escape {
            Some(digits)
                if bytes[index] == b'\\' && digits.iter().all(|d| (b'0'..=b'7').contains(d)) =>
            {
                let value = digits
                    .iter()
                    .fold(0u32, |value, digit| value * 8 + u32::from(digit - b'0'));
                // Three octal digits above \377 are not an escape the kernel writes; keep them.
                match u8::try_from(value) {
                    Ok(byte) => {
                        decoded.push(byte);
                        index += 4;
                    }
                    Err(_) => {
                        decoded.push(bytes[index]);
                        index += 1;
                    }
                }
            }
            _ => {
                decoded.push(bytes[index]);
                index += 1;
            }
        }
    }
    decoded
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw,errors=remount-ro
25 22 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw
40 22 8:17 / /var/vcap/data rw,relatime shared:20 - ext4 /dev/sdb1 rw
41 40 0:40 / /var/vcap/data/sys/run rw,relatime - tmpfs tmpfs rw,size=16384k,mode=750
52 22 8:33 / /var/vcap/store rw,relatime shared:30 master:2 - ext4 /dev/sdc1 rw
60 22 0:50 /x /mnt/with\\040space rw - tmpfs my\\134device rw
";

    #[test]
    fn mountinfo_entries_are_parsed_with_escapes() {
        let entries = parse_mountinfo(MOUNTINFO).unwrap();
        let summary: Vec<(&str, &str, &str)> = entries
            .iter()
            .map(|e| {
                (
                    e.source.as_str(),
                    e.mount_point.to_str().unwrap(),
                    e.fs_type.as_str(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                ("/dev/sda1", "/", "ext4"),
                ("proc", "/proc", "proc"),
                ("/dev/sdb1", "/var/vcap/data", "ext4"),
                ("tmpfs", "/var/vcap/data/sys/run", "tmpfs"),
                ("/dev/sdc1", "/var/vcap/store", "ext4"),
                ("my\\device", "/mnt/with space", "tmpfs"),
            ]
        );
    }

    #[test]
    fn per_mount_options_are_kept_and_the_last_mount_wins() {
        let mut text = MOUNTINFO.to_owned();
        text.push_str("70 22 0:60 / /var/vcap/store rw,nosuid,nodev - tmpfs tmpfs rw\n");
        let entries = parse_mountinfo(&text).unwrap();
        assert_eq!(
            entries[1].options,
            vec!["rw", "nosuid", "nodev", "noexec", "relatime"]
        );
        let store = mounted_on(&entries, Path::new("/var/vcap/store")).unwrap();
        assert_eq!((store.source.as_str(), store.options.len()), ("tmpfs", 3));
        assert!(mounted_on(&entries, Path::new("/var/vcap")).is_none());
    }

    #[test]
    fn mount_points_match_exactly() {
        let entries = parse_mountinfo(MOUNTINFO).unwrap();
        let cases = [
            ("/", true),
            ("/var/vcap/data", true),
            ("/var/vcap/data/", true),
            ("/var/vcap/store", true),
            ("/var/vcap/store_migration_target", false),
            ("/var/vcap", false),
            ("/mnt/with space", true),
            ("/mnt/with\\040space", false),
        ];
        for (path, expected) in cases {
            assert_eq!(
                is_mount_point_in(&entries, Path::new(path)),
                expected,
                "{path}"
            );
        }
    }

    #[test]
    fn malformed_lines_are_errors_with_their_number() {
        let cases = [
            (
                "22 1 8:1 / / rw shared:1 ext4 /dev/sda1 rw\n",
                "line 1: no '-' separator after the optional fields",
            ),
            (
                "22 1 8:1 /\n",
                "line 1: no '-' separator after the optional fields",
            ),
            (
                "\n22 1 8:1 / / rw - ext4\n",
                "line 2: no filesystem type and source after the '-' separator",
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(
                parse_mountinfo(text).unwrap_err().to_string(),
                expected,
                "{text:?}"
            );
        }
    }

    #[test]
    fn escapes_are_decoded() {
        let cases: &[(&str, &[u8])] = &[
            ("plain", b"plain"),
            ("a\\040b", b"a b"),
            ("tab\\011nl\\012", b"tab\tnl\n"),
            ("back\\134slash", b"back\\slash"),
            ("short\\04", b"short\\04"),
            ("notoctal\\089", b"notoctal\\089"),
            ("toolarge\\777", b"toolarge\\777"),
            ("\\", b"\\"),
        ];
        for (field, expected) in cases {
            assert_eq!(unescape(field), *expected, "{field}");
        }
    }

    #[test]
    fn the_host_table_is_read_under_the_root() {
        let root = tempfile::tempdir().unwrap();
        let host = HostPaths::with_root(root.path());
        let err = is_mount_point(&host, Path::new("/")).unwrap_err();
        assert!(
            err.to_string().starts_with("reading the mount table ")
                && err.to_string().ends_with("proc/self/mountinfo"),
            "{err}"
        );
        std::fs::create_dir_all(root.path().join("proc/self")).unwrap();
        std::fs::write(root.path().join("proc/self/mountinfo"), MOUNTINFO).unwrap();
        assert!(is_mount_point(&host, Path::new("/var/vcap/store")).unwrap());
        assert!(!is_mount_point(&host, Path::new("/var/vcap/bosh")).unwrap());
    }
}
