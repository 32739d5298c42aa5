//! Small file and command helpers shared by the Linux bootstrap steps: directories with an exact
//! mode, files written only when their content changes (`ConvergeFileContents` in bosh-utils),
//! commands whose failure names the command line, `chown` through the runner (so tests need no
//! root and the recording fake sees every owner change), and lookups in `/etc/passwd` and
//! `/etc/group` under the host root.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use crate::HostPaths;
use crate::bootstrap::{Error, Result};
use crate::cmd::{Cmd, CommandRunner, Output};

/// Runs `cmd`; a failure names the command line.
pub fn run(runner: &dyn CommandRunner, cmd: Cmd) -> Result<Output> {
    runner
        .run(&cmd)
        .map_err(|source| Error::command(&cmd, source))
}

/// Runs `cmd` and returns its standard output as text.
pub fn run_stdout(runner: &dyn CommandRunner, cmd: Cmd) -> Result<String> {
    run(runner, cmd).map(|output| String::from_utf8_lossy(&output.stdout).into_owned())
}

/// `chown <owner> <path>`.
pub fn chown(runner: &dyn CommandRunner, owner: &str, path: &Path) -> Result<()> {
    run(runner, Cmd::new("chown").arg(owner).arg(path)).map(drop)
}

/// Creates `path` (and its parents) and gives it exactly `mode`.
pub fn ensure_dir(path: &Path, mode: u32) -> Result<()> {
    std::fs::create_dir_all(path)
        .map_err(|source| Error::io("creating directory", path, source))?;
    set_mode(path, mode)
}

/// Gives `path` exactly `mode`.
pub fn set_mode(path: &Path, mode: u32) -> Result<()> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|source| Error::io("changing the mode of", path, source))
}

/// Creates `path` empty if it does not exist (`touch`).
pub fn touch(path: &Path) -> Result<()> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map(drop)
        .map_err(|source| Error::io("creating", path, source))
}

/// Writes `contents` to `path` atomically with `mode`, unless the file already holds exactly
/// that; answers whether it wrote.
pub fn write_if_changed(path: &Path, contents: &[u8], mode: u32) -> Result<bool> {
    if std::fs::read(path).is_ok_and(|current| current == contents) {
        return Ok(false);
    }
    settings::atomic_file::write(path, contents, mode)
        .map_err(|source| Error::io("writing", path, source))?;
    Ok(true)
}

/// The home directory of `user` from `/etc/passwd`.
pub fn home_dir(host: &HostPaths, user: &str) -> Result<PathBuf> {
    let passwd = read_etc(host, "passwd")?;
    passwd
        .lines()
        .map(|line| line.split(':').collect::<Vec<_>>())
        .find(|fields| fields.len() >= 6 && fields[0] == user)
        .map(|fields| host.reroot(Path::new(fields[5])))
        .ok_or_else(|| Error::Host(format!("user {user} is not in /etc/passwd")))
}

/// Whether `/etc/passwd` has `user`.
pub fn user_exists(host: &HostPaths, user: &str) -> bool {
    has_entry(host, "passwd", user)
}

/// Whether `/etc/group` has `group`.
pub fn group_exists(host: &HostPaths, group: &str) -> bool {
    has_entry(host, "group", group)
}

fn has_entry(host: &HostPaths, file: &str, name: &str) -> bool {
    read_etc(host, file).is_ok_and(|text| {
        text.lines()
            .any(|line| line.split(':').next() == Some(name))
    })
}

fn read_etc(host: &HostPaths, file: &str) -> Result<String> {
    let path = host.etc(file);
    std::fs::read_to_string(&path).map_err(|source| Error::io("reading", path, source))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt as _;

    use super::*;

    #[test]
    fn files_are_written_only_when_they_change() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b.conf");
        assert!(write_if_changed(&path, b"one", 0o644).unwrap());
        assert!(!write_if_changed(&path, b"one", 0o644).unwrap());
        assert!(write_if_changed(&path, b"two", 0o600).unwrap());
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o7777, 0o600);
    }

    #[test]
    fn directories_get_their_exact_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x/y");
        ensure_dir(&path, 0o1777).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o7777, 0o1777);
        ensure_dir(&path, 0o750).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o7777, 0o750);
    }

    #[test]
    fn users_and_groups_are_read_under_the_root() {
        let root = tempfile::tempdir().unwrap();
        let host = HostPaths::with_root(root.path());
        assert!(home_dir(&host, "vcap").is_err());
        std::fs::create_dir_all(root.path().join("etc")).unwrap();
        std::fs::write(
            root.path().join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/bash\nvcap:x:1000:1000::/home/vcap:/bin/bash\n",
        )
        .unwrap();
        std::fs::write(root.path().join("etc/group"), "root:x:0:\nutmp:x:43:\n").unwrap();
        assert_eq!(
            home_dir(&host, "vcap").unwrap(),
            root.path().join("home/vcap")
        );
        assert_eq!(
            home_dir(&host, "nobody").unwrap_err().to_string(),
            "user nobody is not in /etc/passwd"
        );
        assert!(user_exists(&host, "vcap") && !user_exists(&host, "_chrony"));
        assert!(group_exists(&host, "utmp") && !group_exists(&host, "syslog"));
    }
}
