//! `env.bosh.remove_dev_tools` and `env.bosh.remove_static_libraries` (steps 29 and 30 of §5.1;
//! `RemoveDevTools` and `RemoveStaticLibraries` in `platform/linux_platform.go`): the stemcell lists
//! the compilers, headers and static libraries it ships in `bosh/etc/dev_tools_file_list` and
//! `bosh/etc/static_libraries_list`, one absolute path per line, and the agent removes each with
//! `rm -rf` at every start when the env asks for it. A list that is not there removes nothing.
//!
//! Unlike Go, a missing development-tools list does not skip the static libraries, and a line that
//! is not an absolute path below `/` is refused (naming the list and the line) before anything is
//! removed: a bad list must not take the system with it.

use std::path::{Component, Path};

use crate::HostPaths;
use crate::bootstrap::{Error, Result};
use crate::cmd::{Cmd, CommandRunner};
use crate::linux::files;

/// The development tools' list, in `bosh/etc/`.
pub const DEV_TOOLS_LIST: &str = "dev_tools_file_list";

/// The static libraries' list, in `bosh/etc/`.
pub const STATIC_LIBRARIES_LIST: &str = "static_libraries_list";

/// Removes every path `list` names (`rm -rf`, under the host root); nothing when `list` is absent.
pub fn remove_listed(runner: &dyn CommandRunner, host: &HostPaths, list: &Path) -> Result<()> {
    let text = match std::fs::read_to_string(list) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            tracing::info!(list = %list.display(), "no list, nothing to remove");
            return Ok(());
        }
        Err(err) => return Err(Error::io("reading", list, err)),
    };
    let paths: Vec<&Path> = text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .map(Path::new)
        .collect();
    for path in &paths {
        let normal = path.is_absolute()
            && path.components().count() > 1
            && path
                .components()
                .all(|part| matches!(part, Component::RootDir | Component::Normal(_)));
        if !normal {
            return Err(Error::Settings(format!(
                "{}: '{}' is not an absolute path below /",
                list.display(),
                path.display()
            )));
        }
    }
    for path in &paths {
        files::run(runner, Cmd::new("rm").arg("-rf").arg(host.reroot(path)))?;
    }
    tracing::info!(list = %list.display(), count = paths.len(), "removed the listed files");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{RecordingRunner, Reply};

    #[test]
    fn each_listed_path_is_removed_under_the_host_root() {
        let dir = tempfile::tempdir().unwrap();
        let list = dir.path().join(DEV_TOOLS_LIST);
        std::fs::write(&list, "/usr/bin/gcc-12\n\n  /usr/include  \n").unwrap();
        let runner = RecordingRunner::new();
        runner.expect(
            &["rm", "-rf", "/r/usr/bin/gcc-12"],
            Reply::Ok(String::new()),
        );
        runner.expect(&["rm", "-rf", "/r/usr/include"], Reply::Ok(String::new()));
        remove_listed(&runner, &HostPaths::with_root("/r"), &list).unwrap();
        assert!(runner.unused().is_empty(), "{:?}", runner.unused());
    }

    #[test]
    fn no_list_removes_nothing_and_a_bad_line_removes_nothing_at_all() {
        let dir = tempfile::tempdir().unwrap();
        let runner = RecordingRunner::new();
        let host = HostPaths::with_root("/r");
        remove_listed(&runner, &host, &dir.path().join(STATIC_LIBRARIES_LIST)).unwrap();
        for bad in ["/", "usr/lib/libc.a", "/usr/../etc"] {
            let list = dir.path().join(STATIC_LIBRARIES_LIST);
            std::fs::write(&list, format!("/usr/lib/x86_64-linux-gnu/libc.a\n{bad}\n")).unwrap();
            let err = remove_listed(&runner, &host, &list).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!(
                    "{}: '{bad}' is not an absolute path below /",
                    list.display()
                ),
                "{bad}"
            );
        }
        assert!(runner.recorded().is_empty());
        // A failing rm is named.
        let list = dir.path().join(DEV_TOOLS_LIST);
        std::fs::write(&list, "/usr/bin/make\n").unwrap();
        runner.expect(
            &["rm", "-rf", "/r/usr/bin/make"],
            Reply::Fail(1, "rm: cannot remove: Read-only file system".into()),
        );
        let err = remove_listed(&runner, &host, &list).unwrap_err();
        assert_eq!(err.to_string(), "running rm -rf /r/usr/bin/make");
    }
}
