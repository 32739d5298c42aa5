//! IPv6 in the kernel (`platform/net/kernel_ipv6.go`), for the bootstrap step `ipv6`: run when
//! `env.bosh.ipv6.enable` is set or a network has an IPv6 address ([`wanted`]).
//!
//! Go first flips `net.ipv6.conf.{all,default}.disable_ipv6=1` to `=0` in
//! `/etc/sysctl.d/60-bosh-sysctl.conf`; then, if the boot loader's `grub.cfg` holds
//! `ipv6.disable=1`, it removes it and reboots (`shutdown -r now`); otherwise it sets the sysctls.
//!
//! We do the same without the reboot where the kernel allows it: [`enable`] persists the sysctl
//! file's values as Go does (when the stemcell has that file), then runs Go's four commands
//! `sysctl net.ipv6.conf.all.accept_ra=1`, `… default.accept_ra=1`, `… all.disable_ipv6=0`,
//! `… default.disable_ipv6=0`, which take effect at once. Only a kernel booted with
//! `ipv6.disable=1` (in `/proc/cmdline`; it has no IPv6 stack at all, so no sysctl can help) needs a
//! reboot. We neither edit the boot loader nor reboot: a VM that reboots itself from its agent's
//! bootstrap is a reboot loop when the edit does not take (the EFI regression of
//! stemcell-builder#354), and a stemcell that disables IPv6 on its command line is a stemcell to
//! change. The step fails instead with an error saying so, which the agent logs on every start.

use std::net::IpAddr;

use settings::Settings;

use crate::HostPaths;
use crate::bootstrap::{Error, Result};
use crate::cmd::{Cmd, CommandRunner};
use crate::linux::files;

/// The stemcell's sysctl file Go edits.
pub const SYSCTL_FILE: &str = "sysctl.d/60-bosh-sysctl.conf";

/// The kernel option that removes the IPv6 stack.
pub const KERNEL_DISABLE_OPTION: &str = "ipv6.disable=1";

/// Go's sysctls, in its order.
pub const SYSCTLS: [&str; 4] = [
    "net.ipv6.conf.all.accept_ra=1",
    "net.ipv6.conf.default.accept_ra=1",
    "net.ipv6.conf.all.disable_ipv6=0",
    "net.ipv6.conf.default.disable_ipv6=0",
];

/// Whether the settings want IPv6: `env.bosh.ipv6.enable`, or a network with an IPv6 address.
pub fn wanted(settings: &Settings) -> bool {
    settings.env.bosh.ipv6.enable
        || settings
            .networks
            .0
            .values()
            .any(|network| matches!(network.ip.parse::<IpAddr>(), Ok(IpAddr::V6(_))))
}

/// Enables IPv6 now and for the next boots.
pub fn enable(runner: &dyn CommandRunner, host: &HostPaths) -> Result<()> {
    let cmdline_path = host.proc("cmdline");
    let cmdline = std::fs::read_to_string(&cmdline_path)
        .map_err(|source| Error::io("reading", &cmdline_path, source))?;
    if cmdline
        .split_whitespace()
        .any(|option| option == KERNEL_DISABLE_OPTION)
    {
        return Err(Error::Host(format!(
            "IPv6 is wanted (env.bosh.ipv6.enable or an IPv6 network) but the kernel was booted \
             with {KERNEL_DISABLE_OPTION}: remove it from the stemcell's kernel command line and \
             reboot the VM (the agent does not reboot on its own)"
        )));
    }
    persist(host)?;
    for sysctl in SYSCTLS {
        files::run(runner, Cmd::new("sysctl").arg(sysctl))?;
    }
    Ok(())
}

/// Go's edit of the stemcell's sysctl file, so that the next boot keeps IPv6 (nothing when the
/// stemcell has no such file).
fn persist(host: &HostPaths) -> Result<()> {
    let path = host.etc(SYSCTL_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(source) => return Err(Error::io("reading", &path, source)),
    };
    let enabled = text
        .replace(
            "net.ipv6.conf.all.disable_ipv6=1",
            "net.ipv6.conf.all.disable_ipv6=0",
        )
        .replace(
            "net.ipv6.conf.default.disable_ipv6=1",
            "net.ipv6.conf.default.disable_ipv6=0",
        );
    files::write_if_changed(&path, enabled.as_bytes(), 0o644).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{RecordingRunner, Reply};

    fn host(cmdline: &str) -> (tempfile::TempDir, HostPaths) {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("proc")).unwrap();
        std::fs::write(root.path().join("proc/cmdline"), cmdline).unwrap();
        let host = HostPaths::with_root(root.path());
        (root, host)
    }

    #[test]
    fn the_sysctls_are_set_and_the_stemcells_file_flipped() {
        let (root, host) = host("BOOT_IMAGE=/vmlinuz root=UUID=1 console=ttyS0,115200\n");
        let file = root.path().join("etc").join(SYSCTL_FILE);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(
            &file,
            "net.ipv4.tcp_syncookies=1\nnet.ipv6.conf.all.disable_ipv6=1\nnet.ipv6.conf.default.disable_ipv6=1\n",
        )
        .unwrap();
        let runner = RecordingRunner::new();
        for sysctl in SYSCTLS {
            runner.expect(&["sysctl", sysctl], Reply::Ok(String::new()));
        }
        enable(&runner, &host).unwrap();
        assert_eq!(
            runner.recorded(),
            vec![
                vec!["sysctl", "net.ipv6.conf.all.accept_ra=1"],
                vec!["sysctl", "net.ipv6.conf.default.accept_ra=1"],
                vec!["sysctl", "net.ipv6.conf.all.disable_ipv6=0"],
                vec!["sysctl", "net.ipv6.conf.default.disable_ipv6=0"],
            ]
        );
        assert_eq!(
            std::fs::read_to_string(&file).unwrap(),
            "net.ipv4.tcp_syncookies=1\nnet.ipv6.conf.all.disable_ipv6=0\nnet.ipv6.conf.default.disable_ipv6=0\n"
        );
    }

    #[test]
    fn a_kernel_without_ipv6_is_an_error_asking_for_a_reboot_and_nothing_is_run() {
        let (root, host) = host("root=UUID=1 ipv6.disable=1 quiet\n");
        let runner = RecordingRunner::new();
        let err = enable(&runner, &host).unwrap_err();
        assert_eq!(
            err.to_string(),
            "IPv6 is wanted (env.bosh.ipv6.enable or an IPv6 network) but the kernel was booted \
             with ipv6.disable=1: remove it from the stemcell's kernel command line and reboot \
             the VM (the agent does not reboot on its own)"
        );
        assert!(runner.recorded().is_empty());
        assert!(!root.path().join("etc").exists());
    }

    #[test]
    fn a_failing_sysctl_is_named() {
        let (_root, host) = host("root=UUID=1\n");
        let runner = RecordingRunner::new();
        runner.expect(
            &["sysctl", "net.ipv6.conf.all.accept_ra=1"],
            Reply::Fail(255, "sysctl: cannot stat /proc/sys/net/ipv6".into()),
        );
        assert_eq!(
            enable(&runner, &host).unwrap_err().to_string(),
            "running sysctl net.ipv6.conf.all.accept_ra=1"
        );
    }

    #[test]
    fn ipv6_is_wanted_by_the_env_or_a_v6_network() {
        let mut settings = Settings::default();
        assert!(!wanted(&settings));
        settings.env.bosh.ipv6.enable = true;
        assert!(wanted(&settings));
        settings.env.bosh.ipv6.enable = false;
        settings.networks.0.insert(
            "v4".into(),
            settings::model::Network {
                ip: "10.0.0.5".into(),
                ..Default::default()
            },
        );
        assert!(!wanted(&settings));
        settings.networks.0.insert(
            "v6".into(),
            settings::model::Network {
                ip: "fd00::5".into(),
                ..Default::default()
            },
        );
        assert!(wanted(&settings));
    }
}
