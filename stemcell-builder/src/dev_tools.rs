//! The lists the agent's `remove_dev_tools` and `remove_static_libraries` work from (the BOSH
//! stemcell builder's `dev_tools_config` and `static_libraries_config` stages):
//!
//! * `var/vcap/bosh/etc/dev_tools_file_list`: the regular files (no directories, no links) of the
//!   installed packages of [`DEV_TOOL_PACKAGES`] (compilers, binutils, make, C headers), from
//!   `dpkg-query -L`, sorted; the tarball carries the same list as `dev_tools_file_list.txt`;
//! * `var/vcap/bosh/etc/static_libraries_list`: every regular `*.a` file under `/usr/lib`
//!   (Debian 12 merges `/lib` into it), sorted.
//!
//! The commands are built by pure functions and the lists rendered from their output and the
//! image's tree, so both are unit-tested without a chroot.

use std::fs;
use std::io;
use std::path::Path;

use platform::cmd::{Cmd, CommandRunner};

use crate::customize::Error;
use crate::run;

/// The packages whose files `remove_dev_tools` removes, when installed.
pub const DEV_TOOL_PACKAGES: [&str; 22] = [
    "binutils",
    "binutils-common",
    "binutils-x86-64-linux-gnu",
    "build-essential",
    "cpp",
    "cpp-12",
    "dpkg-dev",
    "g++",
    "g++-12",
    "gcc",
    "gcc-12",
    "libc-dev-bin",
    "libc6-dev",
    "libcrypt-dev",
    "libgcc-12-dev",
    "libnsl-dev",
    "libstdc++-12-dev",
    "libtirpc-dev",
    "linux-libc-dev",
    "make",
    "patch",
    "rpcsvc-proto",
];

/// The image's development-tools list, in `bosh/etc/`.
pub const DEV_TOOLS_LIST: &str = "var/vcap/bosh/etc/dev_tools_file_list";

/// The image's static-libraries list, in `bosh/etc/`.
pub const STATIC_LIBRARIES_LIST: &str = "var/vcap/bosh/etc/static_libraries_list";

/// `dpkg-query` listing every package with its status, inside the image.
pub fn status_command(root: &Path) -> Cmd {
    Cmd::new("chroot")
        .arg(root)
        .args(["dpkg-query", "-W", "-f=${db:Status-Abbrev} ${Package}\n"])
}

/// The packages of [`DEV_TOOL_PACKAGES`] that `status` (the output of [`status_command`]) shows
/// installed (`ii`).
pub fn installed_dev_tools(status: &str) -> Vec<String> {
    status
        .lines()
        .filter_map(|line| line.strip_prefix("ii "))
        .map(|package| package.trim().split(':').next().unwrap_or_default())
        .filter(|package| DEV_TOOL_PACKAGES.contains(package))
        .map(str::to_owned)
        .collect()
}

/// `dpkg-query -L` of `packages`, inside the image.
pub fn files_command(root: &Path, packages: &[String]) -> Cmd {
    Cmd::new("chroot")
        .arg(root)
        .args(["dpkg-query", "-L"])
        .args(packages)
}

/// The regular files among the paths of `listing` (the output of [`files_command`]), looked up
/// under `root`, sorted and one per line.
pub fn dev_tools_list(root: &Path, listing: &str) -> String {
    let mut files: Vec<&str> = listing
        .lines()
        .map(str::trim)
        .filter(|path| path.starts_with('/') && path.len() > 1)
        .filter(|path| {
            fs::symlink_metadata(root.join(&path[1..])).is_ok_and(|meta| meta.file_type().is_file())
        })
        .collect();
    files.sort_unstable();
    files.dedup();
    files.iter().map(|path| format!("{path}\n")).collect()
}

/// Every regular `*.a` file under `<root>/usr/lib`, as image paths, sorted and one per line.
pub fn static_libraries_list(root: &Path) -> io::Result<String> {
    let mut found = Vec::new();
    let mut pending = vec![root.join("usr/lib")];
    while let Some(dir) = pending.pop() {
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(err) if err.kind() == io::ErrorKind::NotFound => continue,
            Err(err) => return Err(err),
        };
        for entry in entries {
            let entry = entry?;
            let kind = entry.file_type()?;
            let path = entry.path();
            if kind.is_dir() {
                pending.push(path);
            } else if kind.is_file() && path.extension().is_some_and(|ext| ext == "a") {
                let inside = path.strip_prefix(root).unwrap_or(&path);
                found.push(format!("/{}\n", inside.display()));
            }
        }
    }
    found.sort_unstable();
    Ok(found.concat())
}

/// Writes both lists into `root`; the development-tools list, for the tarball.
pub fn write_lists(runner: &dyn CommandRunner, root: &Path) -> Result<String, Error> {
    let status = run::run_stdout(runner, &status_command(root))?;
    let packages = installed_dev_tools(&status);
    let dev_tools = if packages.is_empty() {
        String::new()
    } else {
        dev_tools_list(
            root,
            &run::run_stdout(runner, &files_command(root, &packages))?,
        )
    };
    let write = |name: &str, text: &str| {
        let path = root.join(name);
        fs::write(&path, text).map_err(|source| Error::Write { path, source })
    };
    write(DEV_TOOLS_LIST, &dev_tools)?;
    let static_libraries = static_libraries_list(root).map_err(|source| Error::Write {
        path: root.join("usr/lib"),
        source,
    })?;
    write(STATIC_LIBRARIES_LIST, &static_libraries)?;
    tracing::info!(
        dev_tool_packages = packages.len(),
        dev_tool_files = dev_tools.lines().count(),
        static_libraries = static_libraries.lines().count(),
        "wrote the dev tools and static libraries lists"
    );
    Ok(dev_tools)
}

#[cfg(test)]
mod tests {
    use super::*;
    use platform::testing::{RecordingRunner, Reply};

    #[test]
    fn installed_dev_tool_packages_are_picked_from_the_status_listing() {
        let status = "ii  bash\nii  gcc-12\nrc  g++-12\nii  make\nii  libc6-dev:amd64\nii  libc6\n";
        assert_eq!(installed_dev_tools(status), ["gcc-12", "make", "libc6-dev"]);
    }

    #[test]
    fn the_lists_hold_regular_files_only_sorted() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        for dir in [
            "usr/bin",
            "usr/include",
            "usr/lib/x86_64-linux-gnu/sub",
            "var/vcap/bosh/etc",
        ] {
            fs::create_dir_all(r.join(dir)).unwrap();
        }
        for file in [
            "usr/bin/gcc-12",
            "usr/include/stdio.h",
            "usr/lib/x86_64-linux-gnu/libc.a",
            "usr/lib/x86_64-linux-gnu/sub/libm-2.36.a",
            "usr/lib/x86_64-linux-gnu/libc.so.6",
        ] {
            fs::write(r.join(file), "x").unwrap();
        }
        std::os::unix::fs::symlink("gcc-12", r.join("usr/bin/gcc")).unwrap();
        std::os::unix::fs::symlink("libc.a", r.join("usr/lib/x86_64-linux-gnu/liblink.a")).unwrap();

        let runner = RecordingRunner::new();
        let root_text = r.to_str().unwrap();
        runner.expect(
            &[
                "chroot",
                root_text,
                "dpkg-query",
                "-W",
                "-f=${db:Status-Abbrev} ${Package}\n",
            ],
            Reply::Ok("ii  gcc-12\nii  bash\nii  libc6-dev:amd64\n".into()),
        );
        runner.expect(
            &[
                "chroot",
                root_text,
                "dpkg-query",
                "-L",
                "gcc-12",
                "libc6-dev",
            ],
            Reply::Ok(
                "/.\n/usr\n/usr/bin\n/usr/bin/gcc-12\n/usr/bin/gcc\n/usr/include/stdio.h\n\
                 /usr/bin/gcc-12\n/usr/share/missing\n"
                    .into(),
            ),
        );
        let dev_tools = write_lists(&runner, r).unwrap();
        assert_eq!(dev_tools, "/usr/bin/gcc-12\n/usr/include/stdio.h\n");
        assert_eq!(
            fs::read_to_string(r.join(DEV_TOOLS_LIST)).unwrap(),
            dev_tools
        );
        assert_eq!(
            fs::read_to_string(r.join(STATIC_LIBRARIES_LIST)).unwrap(),
            "/usr/lib/x86_64-linux-gnu/libc.a\n/usr/lib/x86_64-linux-gnu/sub/libm-2.36.a\n"
        );
        assert!(runner.unused().is_empty());
    }
}
