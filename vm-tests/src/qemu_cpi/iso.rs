//! A VM's config drive: an ISO 9660 image with volume label `config-2`, which the stemcell's agent
//! reads through its ConfigDrive settings source (`/dev/disk/by-label/config-2`).
//!
//! It holds the agent settings as EC2-style user data and the same under OpenStack's names:
//!
//! ```text
//! ec2/latest/user-data              the agent settings JSON
//! ec2/latest/meta-data.json         {"instance-id": <vm_cid>, "public-keys": {"0": {"openssh-key": ""}}}
//! openstack/latest/user_data        the agent settings JSON
//! openstack/latest/meta_data.json   the same meta data
//! ```
//!
//! The tree is staged in a temporary directory inside the VM's directory and made into an image
//! by `genisoimage -quiet -V config-2 -J -R -o <tmp> <staging>` (or, where only xorriso is
//! installed, `xorriso -as mkisofs` with the same arguments), which is then renamed over
//! `config-drive.iso`: a running QEMU keeps reading the image it opened.

use std::path::Path;

use platform::cmd::{Cmd, CommandRunner};
use serde_json::{Value, json};

use crate::qemu_cpi::error::{Error, Result};
use crate::qemu_cpi::store;

/// The volume label the agent looks for.
pub const VOLUME_LABEL: &str = "config-2";

/// The files of the config drive, path and contents.
pub fn files(vm_cid: &str, settings: &Value) -> Vec<(&'static str, Vec<u8>)> {
    let user_data = settings.to_string().into_bytes();
    let meta_data = json!({
        "instance-id": vm_cid,
        "public-keys": {"0": {"openssh-key": ""}},
    })
    .to_string()
    .into_bytes();
    vec![
        ("ec2/latest/user-data", user_data.clone()),
        ("ec2/latest/meta-data.json", meta_data.clone()),
        ("openstack/latest/user_data", user_data),
        ("openstack/latest/meta_data.json", meta_data),
    ]
}

/// The command making the image `output` from the tree `staging` with `program` (`genisoimage`,
/// or `xorriso`, which takes mkisofs arguments after `-as mkisofs`).
pub fn make_image_cmd(program: &str, staging: &Path, output: &Path) -> Cmd {
    let cmd = Cmd::new(program);
    let cmd = if program == "xorriso" {
        cmd.args(["-as", "mkisofs"])
    } else {
        cmd
    };
    cmd.args(["-quiet", "-V", VOLUME_LABEL, "-J", "-R", "-o"])
        .arg(output)
        .arg(staging)
}

/// Writes `config-drive.iso` in `vm_dir` for the VM `vm_cid` with `settings`.
pub fn write_config_drive(
    runner: &dyn CommandRunner,
    vm_dir: &Path,
    vm_cid: &str,
    settings: &Value,
) -> Result<()> {
    let staging = tempfile::Builder::new()
        .prefix(".config-drive.")
        .tempdir_in(vm_dir)
        .map_err(Error::io("creating a staging directory in", vm_dir))?;
    for (name, contents) in files(vm_cid, settings) {
        let path = staging.path().join(name);
        if let Some(parent) = path.parent() {
            store::create_dir_all(parent)?;
        }
        std::fs::write(&path, contents).map_err(Error::io("writing", &path))?;
    }
    let output = vm_dir.join(format!(
        ".{}.{}.tmp",
        store::CONFIG_DRIVE,
        uuid::Uuid::new_v4().simple()
    ));
    let step = || format!("making the config drive of VM '{vm_cid}'");
    let made = match runner.run(&make_image_cmd("genisoimage", staging.path(), &output)) {
        Err(platform::cmd::Error::Spawn { source, .. })
            if source.kind() == std::io::ErrorKind::NotFound =>
        {
            runner.run(&make_image_cmd("xorriso", staging.path(), &output))
        }
        other => other,
    };
    if let Err(err) = made {
        let _ = std::fs::remove_file(&output);
        return Err(Error::command(step())(err));
    }
    let target = vm_dir.join(store::CONFIG_DRIVE);
    std::fs::rename(&output, &target).map_err(Error::io("writing", &target))
}

#[cfg(test)]
mod tests {
    use platform::testing::{RecordingRunner, Reply};

    use super::*;

    #[test]
    fn the_drive_holds_the_settings_under_ec2_and_openstack_names() {
        let settings = json!({"agent_id": "agent-1"});
        let files = files("vm-1", &settings);
        let names: Vec<_> = files.iter().map(|(name, _)| *name).collect();
        assert_eq!(
            names,
            [
                "ec2/latest/user-data",
                "ec2/latest/meta-data.json",
                "openstack/latest/user_data",
                "openstack/latest/meta_data.json"
            ]
        );
        assert_eq!(files[0].1, br#"{"agent_id":"agent-1"}"#);
        assert_eq!(files[0].1, files[2].1);
        let meta: Value = serde_json::from_slice(&files[1].1).unwrap();
        assert_eq!(
            meta,
            json!({"instance-id": "vm-1", "public-keys": {"0": {"openssh-key": ""}}})
        );
    }

    #[test]
    fn genisoimage_makes_the_image_with_the_label_and_it_replaces_the_old_one() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(store::CONFIG_DRIVE), "old").unwrap();
        let runner = RecordingRunner::new();
        let any = RecordingRunner::ANY;
        runner.expect(
            &[
                "genisoimage",
                "-quiet",
                "-V",
                "config-2",
                "-J",
                "-R",
                "-o",
                any,
                any,
            ],
            Reply::Ok(String::new()),
        );
        // The fake makes no file: the rename fails, naming the drive.
        let err = write_config_drive(&runner, dir.path(), "vm-1", &json!({})).unwrap_err();
        assert!(
            err.message().starts_with(&format!(
                "writing {}",
                dir.path().join(store::CONFIG_DRIVE).display()
            )),
            "{}",
            err.message()
        );
        let recorded = &runner.recorded()[0];
        let output = Path::new(&recorded[7]);
        assert_eq!(output.parent(), Some(dir.path()));
        assert!(
            output
                .file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(".config-drive.iso.")
        );
        assert!(Path::new(&recorded[8]).starts_with(dir.path()));
        // The staging tree is gone and the old drive untouched.
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        assert_eq!(names, [store::CONFIG_DRIVE]);
    }

    #[test]
    fn xorriso_takes_the_same_arguments_as_mkisofs() {
        let cmd = make_image_cmd("xorriso", Path::new("/s"), Path::new("/o.iso"));
        assert_eq!(
            cmd.to_string(),
            "xorriso -as mkisofs -quiet -V config-2 -J -R -o /o.iso /s"
        );
    }

    #[test]
    fn a_failed_genisoimage_is_a_cloud_error_with_its_stderr() {
        let dir = tempfile::tempdir().unwrap();
        let runner = RecordingRunner::new();
        let any = RecordingRunner::ANY;
        runner.expect(
            &[
                "genisoimage",
                "-quiet",
                "-V",
                "config-2",
                "-J",
                "-R",
                "-o",
                any,
                any,
            ],
            Reply::Fail(1, "genisoimage: No space left on device\n".into()),
        );
        let err = write_config_drive(&runner, dir.path(), "vm-1", &json!({})).unwrap_err();
        assert_eq!(
            err.message(),
            "making the config drive of VM 'vm-1': genisoimage failed (exit status: 1): genisoimage: No space left on device"
        );
    }
}
