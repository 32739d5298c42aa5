//! The boot-once guard of tmpfs mode (`agent/bootonce/start_manager.go`, §5.2 of the reference):
//! with `env.bosh.agent.settings.tmpfs` or `env.bosh.job_dir.tmpfs`, the VM's secrets live on
//! tmpfs and are gone after a reboot, so a rebooted VM must be recreated, not started. The agent
//! marks each start in `bosh/bootonce` (on disk) and `bosh/canrestart/bootonce` (on the
//! `canrestart` tmpfs the bootstrap mounts): an agent restart finds both, a reboot only the first,
//! and the agent then refuses to boot (`Refusing to boot`, Go's text) until the director replaces
//! the VM.

use std::path::Path;

use anyhow::Context as _;
use settings::Dirs;

/// The marker's file name in both places.
pub const BOOTONCE: &str = "bootonce";

/// Refuses a start after a reboot in tmpfs mode, else records this start.
pub fn check_and_register(dirs: &Dirs, tmpfs_enabled: bool) -> anyhow::Result<()> {
    if !tmpfs_enabled {
        return Ok(());
    }
    let on_disk = dirs.bosh_dir().join(BOOTONCE);
    let on_tmpfs = dirs.can_restart_dir().join(BOOTONCE);
    if on_disk.exists() && !on_tmpfs.exists() {
        anyhow::bail!(
            "Refusing to boot: {} exists but {} does not (the VM rebooted and its tmpfs secrets are gone; recreate it)",
            on_disk.display(),
            on_tmpfs.display()
        );
    }
    for marker in [&on_disk, &on_tmpfs] {
        touch(marker)?;
    }
    Ok(())
}

fn touch(path: &Path) -> anyhow::Result<()> {
    std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .with_context(|| format!("Registering start: writing {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_restart_is_allowed_and_a_reboot_refused_in_tmpfs_mode_only() {
        let base = tempfile::tempdir().unwrap();
        let dirs = Dirs::new(base.path());
        std::fs::create_dir_all(dirs.can_restart_dir()).unwrap();
        // Not tmpfs mode: nothing checked, nothing written.
        check_and_register(&dirs, false).unwrap();
        assert!(!dirs.bosh_dir().join(BOOTONCE).exists());
        // The first start, then an agent restart.
        check_and_register(&dirs, true).unwrap();
        check_and_register(&dirs, true).unwrap();
        assert!(dirs.can_restart_dir().join(BOOTONCE).exists());
        // A reboot empties the tmpfs.
        std::fs::remove_file(dirs.can_restart_dir().join(BOOTONCE)).unwrap();
        let err = check_and_register(&dirs, true).unwrap_err();
        assert!(err.to_string().starts_with("Refusing to boot"), "{err}");
        assert!(!dirs.can_restart_dir().join(BOOTONCE).exists());
        // Outside tmpfs mode the same VM starts.
        check_and_register(&dirs, false).unwrap();
    }
}
