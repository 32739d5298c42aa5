//! `env.bosh.remove_dev_tools` and `env.bosh.remove_static_libraries` (steps 29 and 30 of §5.1;
//! `RemoveDevTools` and `RemoveStaticLibraries` in `platform/linux_platform.go`): the stemcell lists
//! the compilers, headers and static libraries it ships in `bosh/etc/dev_tools_file_list` and
//! `bosh/etc/static_libraries_list`, one absolute path per line, and the agent removes each as
//! `rm -rf` would at every start when the env asks for it. A list that is not there removes
//! nothing.
//!
//! Unlike Go, which runs one `rm -rf` per line (thousands of processes for a compiler's files),
//! the paths are removed in-process; a missing development-tools list does not skip the static
//! libraries; and a line that is not an absolute path below `/` is refused (naming the list and
//! the line) before anything is removed: a bad list must not take the system with it.

use std::path::{Component, Path};

use crate::HostPaths;
use crate::bootstrap::{Error, Result};

/// The development tools' list, in `bosh/etc/`.
pub const DEV_TOOLS_LIST: &str = "dev_tools_file_list";

/// The static libraries' list, in `bosh/etc/`.
pub const STATIC_LIBRARIES_LIST: &str = "static_libraries_list";

/// Removes every path `list` names, under the host root, as `rm -rf` does (a directory with what
/// it holds, a link itself, a missing path silently); nothing when `list` is absent.
pub fn remove_listed(host: &HostPaths, list: &Path) -> Result<()> {
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
        let target = host.reroot(path);
        let removed = match std::fs::symlink_metadata(&target) {
            Ok(meta) if meta.is_dir() => std::fs::remove_dir_all(&target),
            Ok(_) => std::fs::remove_file(&target),
            Err(err) => Err(err),
        };
        match removed {
            Ok(()) => {}
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => return Err(Error::io("removing", &target, err)),
        }
    }
    tracing::info!(list = %list.display(), count = paths.len(), "removed the listed files");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_listed_path_is_removed_under_the_host_root_as_rm_rf_would() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        for dir in ["usr/bin", "usr/include/sys", "usr/lib", "etc"] {
            std::fs::create_dir_all(r.join(dir)).unwrap();
        }
        for file in [
            "usr/bin/gcc-12",
            "usr/include/sys/types.h",
            "usr/bin/bash",
            "etc/kept",
        ] {
            std::fs::write(r.join(file), "x").unwrap();
        }
        // A link is removed itself, not what it points at.
        std::os::unix::fs::symlink("/etc/kept", r.join("usr/bin/cc")).unwrap();
        let list = r.join(DEV_TOOLS_LIST);
        std::fs::write(
            &list,
            "/usr/bin/gcc-12\n\n  /usr/include  \n/usr/bin/cc\n/usr/lib/not-there.a\n",
        )
        .unwrap();
        remove_listed(&HostPaths::with_root(r), &list).unwrap();
        for gone in ["usr/bin/gcc-12", "usr/include", "usr/bin/cc"] {
            assert!(r.join(gone).symlink_metadata().is_err(), "{gone}");
        }
        for kept in ["usr/bin/bash", "etc/kept", "usr/lib"] {
            assert!(r.join(kept).exists(), "{kept}");
        }
        // Again: nothing left to remove is no error.
        remove_listed(&HostPaths::with_root(r), &list).unwrap();
    }

    #[test]
    fn no_list_removes_nothing_and_a_bad_line_removes_nothing_at_all() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        let host = HostPaths::with_root(r);
        remove_listed(&host, &r.join(STATIC_LIBRARIES_LIST)).unwrap();
        std::fs::create_dir_all(r.join("usr/lib")).unwrap();
        std::fs::write(r.join("usr/lib/libc.a"), "x").unwrap();
        for bad in ["/", "usr/lib/libc.a", "/usr/../etc"] {
            let list = r.join(STATIC_LIBRARIES_LIST);
            std::fs::write(&list, format!("/usr/lib/libc.a\n{bad}\n")).unwrap();
            let err = remove_listed(&host, &list).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!(
                    "{}: '{bad}' is not an absolute path below /",
                    list.display()
                ),
                "{bad}"
            );
            assert!(r.join("usr/lib/libc.a").exists(), "{bad}");
        }
    }
}
