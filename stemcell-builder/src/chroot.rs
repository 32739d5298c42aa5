//! `/proc`, `/sys` and `/dev` mounted inside the image's root while commands run in a chroot
//! (`update-initramfs` needs them), and unmounted afterwards on every path: [`ChrootMounts`]
//! unmounts what it mounted when it is dropped, so an error or a panic between mount and unmount
//! leaves no mount behind (a leftover bind mount of `/dev` under a build directory would be
//! destroyed by the directory's removal).

use std::path::{Path, PathBuf};

use platform::cmd::{Cmd, CommandRunner};

use crate::run;

/// Why mounting or unmounting failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A mount failed (anything mounted before it was unmounted again).
    #[error("mounting {} inside the chroot", .target.display())]
    Mount {
        /// The mount point.
        target: PathBuf,
        /// The command's error.
        #[source]
        source: run::Error,
    },
    /// An unmount failed.
    #[error("unmounting {}", .target.display())]
    Unmount {
        /// The mount point.
        target: PathBuf,
        /// The command's error.
        #[source]
        source: run::Error,
    },
}

/// The mounts made for a chroot, unmounted by [`ChrootMounts::unmount`] or on drop.
#[derive(Debug)]
pub struct ChrootMounts<'a> {
    runner: &'a dyn CommandRunner,
    mounted: Vec<PathBuf>,
}

/// The mount commands, in order: `/proc`, `/sys`, then a bind of the host's `/dev`.
pub fn mount_commands(root: &Path) -> Vec<Cmd> {
    vec![
        Cmd::new("mount")
            .args(["-t", "proc", "proc"])
            .arg(root.join("proc")),
        Cmd::new("mount")
            .args(["-t", "sysfs", "sysfs"])
            .arg(root.join("sys")),
        Cmd::new("mount")
            .args(["--bind", "/dev"])
            .arg(root.join("dev")),
    ]
}

impl<'a> ChrootMounts<'a> {
    /// Mounts `/proc`, `/sys` and `/dev` under `root`.
    pub fn mount(runner: &'a dyn CommandRunner, root: &Path) -> Result<ChrootMounts<'a>, Error> {
        let mut mounts = ChrootMounts {
            runner,
            mounted: Vec::new(),
        };
        for (cmd, dir) in mount_commands(root).iter().zip(["proc", "sys", "dev"]) {
            let target = root.join(dir);
            if let Err(source) = run::run(runner, cmd) {
                // Dropping `mounts` unmounts the earlier ones.
                return Err(Error::Mount { target, source });
            }
            mounts.mounted.push(target);
        }
        Ok(mounts)
    }

    /// Unmounts everything in reverse order; every unmount is tried, the first failure returned.
    pub fn unmount(mut self) -> Result<(), Error> {
        self.unmount_all()
    }

    fn unmount_all(&mut self) -> Result<(), Error> {
        let mut first_error = None;
        while let Some(target) = self.mounted.pop() {
            let cmd = Cmd::new("umount").arg(&target);
            if let Err(source) = run::run(self.runner, &cmd) {
                first_error.get_or_insert(Error::Unmount { target, source });
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

impl Drop for ChrootMounts<'_> {
    fn drop(&mut self) {
        if let Err(err) = self.unmount_all() {
            tracing::warn!(error = %err, "unmounting chroot mounts");
        }
    }
}

#[cfg(test)]
mod tests {
    use platform::testing::{RecordingRunner, Reply};

    use super::*;

    #[test]
    fn mounts_proc_sys_dev_and_unmounts_in_reverse() {
        let runner = RecordingRunner::new();
        for argv in [
            ["mount", "-t", "proc", "proc", "/r/proc"].as_slice(),
            &["mount", "-t", "sysfs", "sysfs", "/r/sys"],
            &["mount", "--bind", "/dev", "/r/dev"],
            &["umount", "/r/dev"],
            &["umount", "/r/sys"],
            &["umount", "/r/proc"],
        ] {
            runner.expect(argv, Reply::Ok(String::new()));
        }
        let mounts = ChrootMounts::mount(&runner, Path::new("/r")).unwrap();
        mounts.unmount().unwrap();
        assert_eq!(
            runner.recorded(),
            [
                vec!["mount", "-t", "proc", "proc", "/r/proc"],
                vec!["mount", "-t", "sysfs", "sysfs", "/r/sys"],
                vec!["mount", "--bind", "/dev", "/r/dev"],
                vec!["umount", "/r/dev"],
                vec!["umount", "/r/sys"],
                vec!["umount", "/r/proc"],
            ]
        );
    }

    #[test]
    fn a_failed_mount_unmounts_the_earlier_ones() {
        let runner = RecordingRunner::new();
        runner.expect(
            &["mount", "-t", "proc", "proc", "/r/proc"],
            Reply::Ok(String::new()),
        );
        runner.expect(
            &["mount", "-t", "sysfs", "sysfs", "/r/sys"],
            Reply::Fail(32, "mount: permission denied".into()),
        );
        runner.expect(&["umount", "/r/proc"], Reply::Ok(String::new()));
        let err = ChrootMounts::mount(&runner, Path::new("/r")).unwrap_err();
        assert_eq!(err.to_string(), "mounting /r/sys inside the chroot");
        assert!(runner.unused().is_empty());
        assert_eq!(runner.recorded().last().unwrap(), &["umount", "/r/proc"]);
    }

    #[test]
    fn dropping_unmounts_and_a_failed_unmount_is_reported_after_trying_all() {
        let runner = RecordingRunner::new();
        for argv in [
            ["mount", "-t", "proc", "proc", "/r/proc"].as_slice(),
            &["mount", "-t", "sysfs", "sysfs", "/r/sys"],
            &["mount", "--bind", "/dev", "/r/dev"],
        ] {
            runner.expect(argv, Reply::Ok(String::new()));
        }
        runner.expect(&["umount", "/r/dev"], Reply::Fail(32, "busy".into()));
        runner.expect(&["umount", "/r/sys"], Reply::Ok(String::new()));
        runner.expect(&["umount", "/r/proc"], Reply::Ok(String::new()));
        let mounts = ChrootMounts::mount(&runner, Path::new("/r")).unwrap();
        let err = mounts.unmount().unwrap_err();
        assert_eq!(err.to_string(), "unmounting /r/dev");
        assert!(runner.unused().is_empty());

        let runner = RecordingRunner::new();
        for argv in [
            ["mount", "-t", "proc", "proc", "/r/proc"].as_slice(),
            &["mount", "-t", "sysfs", "sysfs", "/r/sys"],
            &["mount", "--bind", "/dev", "/r/dev"],
            &["umount", "/r/dev"],
            &["umount", "/r/sys"],
            &["umount", "/r/proc"],
        ] {
            runner.expect(argv, Reply::Ok(String::new()));
        }
        drop(ChrootMounts::mount(&runner, Path::new("/r")).unwrap());
        assert!(runner.unused().is_empty());
    }
}
