//! The stemcell's own files, written into the debootstrapped root filesystem: the agent and its
//! configuration (`/var/vcap/bosh`), its systemd unit, the boot loader configuration, fstab, the
//! image's hostname, hosts and resolv.conf, the initramfs configuration, an empty machine-id, and
//! a oneshot unit that makes the SSH host keys at first boot (Debian makes them when
//! openssh-server is installed; every VM must have its own, so the image ships none, as BOSH
//! stemcells regenerate them at first boot).
//!
//! Every file is rendered by a pure function ([`files`]) and written by [`write_files`]; the
//! commands that need the image's own tools (`groupadd`, `useradd`, `systemctl --root`,
//! `update-initramfs`, `dpkg-query`) are built by pure functions and run through [`crate::run`],
//! inside the chroot with `/proc`, `/sys` and `/dev` mounted only while needed ([`crate::chroot`]).
//! The layout follows the BOSH stemcell builder's `bosh_go_agent` and `base_*` stages.

use std::fs;
use std::io;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};

use platform::cmd::{Cmd, CommandRunner};
use serde_json::json;

use crate::chroot::{self, ChrootMounts};
use crate::run;

/// The image's hostname until the agent sets the agent id.
pub const HOSTNAME: &str = "bosh-stemcell";
/// The vcap user's uid (and its group's gid).
pub const VCAP_UID: u32 = 1000;
/// The groups made for BOSH, vcap's own group first.
pub const VCAP_GROUPS: [&str; 4] = ["vcap", "admin", "bosh_sudoers", "bosh_sshers"];
/// The agent's unit name.
pub const AGENT_UNIT: &str = "bosh-agent.service";
/// The unit that makes SSH host keys before sshd starts.
pub const SSH_KEYGEN_UNIT: &str = "ssh-keygen.service";
/// The units enabled in the image.
pub const ENABLED_UNITS: [&str; 4] = [
    "systemd-networkd.service",
    "systemd-resolved.service",
    SSH_KEYGEN_UNIT,
    AGENT_UNIT,
];
/// Modules the initramfs must hold to find a virtio root disk.
pub const INITRAMFS_MODULES: [&str; 4] = ["virtio_pci", "virtio_blk", "virtio_net", "ext4"];

/// One file written into the root filesystem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct File {
    /// Its path inside the root filesystem, relative (`etc/fstab`).
    pub path: PathBuf,
    /// Its content.
    pub content: Vec<u8>,
    /// Its permission bits.
    pub mode: u32,
}

/// What the rendered files depend on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inputs {
    /// The root filesystem's UUID (`mkfs.ext4 -U`).
    pub root_uuid: String,
    /// The kernel release installed in the image (`6.1.0-35-cloud-amd64`).
    pub kernel_release: String,
    /// The stemcell version (`/var/vcap/bosh/etc/stemcell_version`).
    pub version: String,
}

/// Why customising the root filesystem failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be written.
    #[error("writing {}", .path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The image holds no kernel, or more than one.
    #[error("finding the kernel in {}: {found}", .dir.display())]
    Kernel {
        /// `<root>/lib/modules`.
        dir: PathBuf,
        /// What was found.
        found: String,
    },
    /// A command failed.
    #[error(transparent)]
    Command(#[from] run::Error),
    /// Mounting or unmounting inside the chroot failed.
    #[error(transparent)]
    Chroot(#[from] chroot::Error),
}

/// The agent's `agent.json`: Linux options for a virtio QEMU machine and the settings sources in
/// the order they are tried (config drive, CD-ROM, then HTTP metadata).
pub fn agent_json() -> String {
    let config = json!({
        "Platform": {
            "Linux": {
                "DevicePathResolutionType": "virtio",
                "PartitionerType": "parted",
                "CreatePartitionIfNoEphemeralDisk": true,
                "ServiceManager": "systemd",
            }
        },
        "Infrastructure": {
            "Settings": {
                "Sources": [
                    {
                        "Type": "ConfigDrive",
                        "DiskPaths": ["/dev/disk/by-label/CONFIG-2", "/dev/disk/by-label/config-2"],
                        "MetaDataPath": "ec2/latest/meta-data.json",
                        "UserDataPath": "ec2/latest/user-data",
                    },
                    { "Type": "CDROM", "FileName": "env" },
                    {
                        "Type": "HTTP",
                        "URI": "http://169.254.169.254",
                        "UserDataPath": "/latest/user-data",
                        "InstanceIDPath": "/latest/meta-data/instance-id",
                        "SSHKeysPath": "/latest/meta-data/public-keys/0/openssh-key",
                        "TokenPath": "/latest/api/token",
                    },
                ]
            }
        }
    });
    // A `Value` with string keys always serialises.
    let mut text = serde_json::to_string_pretty(&config).unwrap_or_default();
    text.push('\n');
    text
}

/// The agent's unit: restarted one second after any exit, without systemd's start rate limit (an
/// agent without settings exits every few seconds until they arrive), its output on the serial
/// console too so that a VM test sees the agent's errors in the console log.
pub fn agent_unit() -> String {
    "[Unit]\n\
     Description=BOSH Agent\n\
     Wants=network.target\n\
     After=network.target local-fs.target systemd-udevd.service\n\
     StartLimitIntervalSec=0\n\
     \n\
     [Service]\n\
     Type=simple\n\
     ExecStart=/var/vcap/bosh/bin/bosh-agent -P ubuntu -C /var/vcap/bosh/agent.json\n\
     Restart=always\n\
     RestartSec=1\n\
     StandardOutput=journal+console\n\
     StandardError=journal+console\n\
     \n\
     [Install]\n\
     WantedBy=multi-user.target\n"
        .to_owned()
}

/// A oneshot unit making the VM's SSH host keys (Ed25519 and ECDSA) before sshd starts, when
/// they are missing. RSA is left out: `ssh-keygen -A` spends minutes on a 3072-bit RSA key under
/// TCG emulation, holding multi-user.target back; [`sshd_host_keys_conf`] names the two keys.
pub fn ssh_keygen_unit() -> String {
    "[Unit]\n\
     Description=Generate SSH host keys\n\
     Before=ssh.service\n\
     ConditionPathExists=!/etc/ssh/ssh_host_ed25519_key\n\
     \n\
     [Service]\n\
     Type=oneshot\n\
     ExecStart=/usr/bin/ssh-keygen -q -t ed25519 -N \"\" -f /etc/ssh/ssh_host_ed25519_key\n\
     ExecStart=/usr/bin/ssh-keygen -q -t ecdsa -N \"\" -f /etc/ssh/ssh_host_ecdsa_key\n\
     \n\
     [Install]\n\
     WantedBy=ssh.service\n"
        .to_owned()
}

/// An sshd drop-in naming the host keys the image makes, so sshd does not look for an RSA key.
pub fn sshd_host_keys_conf() -> String {
    "HostKey /etc/ssh/ssh_host_ed25519_key\nHostKey /etc/ssh/ssh_host_ecdsa_key\n".to_owned()
}

/// `/var/vcap/bosh/bin/restart_networking`: the agent runs it after writing networkd files.
pub fn restart_networking() -> String {
    "#!/bin/sh\nset -e\nexec systemctl restart systemd-networkd\n".to_owned()
}

/// The extlinux configuration: boot the image's kernel at once, root by UUID, console on serial 0.
/// systemd logs to the kernel log (`systemd.log_target=kmsg`) so that its messages, with kernel
/// timestamps, reach the serial console even after a getty owns it (systemd's own status lines
/// stop then): VM tests read "Reached target multi-user.target" and "Startup finished" there.
pub fn extlinux_conf(inputs: &Inputs) -> String {
    format!(
        "DEFAULT debian\n\
         PROMPT 0\n\
         TIMEOUT 0\n\
         \n\
         LABEL debian\n\
         \x20 LINUX /boot/vmlinuz-{kernel}\n\
         \x20 INITRD /boot/initrd.img-{kernel}\n\
         \x20 APPEND root=UUID={uuid} ro console=ttyS0,115200 systemd.log_target=kmsg\n",
        kernel = inputs.kernel_release,
        uuid = inputs.root_uuid,
    )
}

/// `/etc/fstab`: the root filesystem by UUID.
pub fn fstab(root_uuid: &str) -> String {
    format!("UUID={root_uuid} / ext4 defaults,errors=remount-ro 0 1\n")
}

/// `/etc/hosts` for [`HOSTNAME`].
pub fn hosts() -> String {
    format!(
        "127.0.0.1 localhost\n\
         127.0.1.1 {HOSTNAME}\n\
         ::1 localhost ip6-localhost ip6-loopback\n\
         ff02::1 ip6-allnodes\n\
         ff02::2 ip6-allrouters\n"
    )
}

/// The initramfs configuration: the root filesystem type, so the initramfs needs no probing, and
/// only the modules listed in `/etc/initramfs-tools/modules` (with their dependencies): a smaller
/// initramfs unpacks faster under TCG, and `MODULES=dep` would probe the build host, not the VM.
pub fn initramfs_conf() -> String {
    "FSTYPE=ext4\nMODULES=list\n".to_owned()
}

/// `/etc/initramfs-tools/modules` with [`INITRAMFS_MODULES`] added to `existing` (once each).
pub fn initramfs_modules(existing: &str) -> String {
    let mut text = existing.to_owned();
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    for module in INITRAMFS_MODULES {
        if !existing.lines().any(|line| line.trim() == module) {
            text.push_str(module);
            text.push('\n');
        }
    }
    text
}

/// Every file the stemcell adds to the debootstrapped root, given the current
/// `/etc/initramfs-tools/modules`.
pub fn files(inputs: &Inputs, initramfs_modules_now: &str) -> Vec<File> {
    let file = |path: &str, content: String, mode: u32| File {
        path: PathBuf::from(path),
        content: content.into_bytes(),
        mode,
    };
    vec![
        file("var/vcap/bosh/agent.json", agent_json(), 0o644),
        file(
            "var/vcap/bosh/bin/restart_networking",
            restart_networking(),
            0o755,
        ),
        file(
            "var/vcap/bosh/etc/stemcell_version",
            format!("{}\n", inputs.version),
            0o644,
        ),
        file(
            &format!("etc/systemd/system/{AGENT_UNIT}"),
            agent_unit(),
            0o644,
        ),
        file(
            &format!("etc/systemd/system/{SSH_KEYGEN_UNIT}"),
            ssh_keygen_unit(),
            0o644,
        ),
        file(
            "etc/ssh/sshd_config.d/bosh-host-keys.conf",
            sshd_host_keys_conf(),
            0o644,
        ),
        file("boot/extlinux/extlinux.conf", extlinux_conf(inputs), 0o644),
        file("etc/fstab", fstab(&inputs.root_uuid), 0o644),
        file("etc/hostname", format!("{HOSTNAME}\n"), 0o644),
        file("etc/hosts", hosts(), 0o644),
        // systemd makes a machine id at first boot when the file is empty.
        file("etc/machine-id", String::new(), 0o444),
        file(
            "etc/initramfs-tools/conf.d/bosh-root-fstype",
            initramfs_conf(),
            0o644,
        ),
        file(
            "etc/initramfs-tools/modules",
            initramfs_modules(initramfs_modules_now),
            0o644,
        ),
    ]
}

/// Symlinks replacing files of the debootstrapped root, as (link, target): resolv.conf from
/// systemd-resolved (debootstrap copies the build host's), D-Bus's machine id from the per-VM
/// `/etc/machine-id` (dbus wrote the build's id there), and `monit` and `bosh-enable-monit-access`
/// as the agent (`bosh-agent` answers to both names, as the Go agent does).
pub fn symlinks() -> Vec<(&'static str, &'static str)> {
    vec![
        ("etc/resolv.conf", "../run/systemd/resolve/stub-resolv.conf"),
        ("var/lib/dbus/machine-id", "/etc/machine-id"),
        ("var/vcap/bosh/bin/monit", "bosh-agent"),
        ("var/vcap/bosh/bin/bosh-enable-monit-access", "bosh-agent"),
    ]
}

/// Directories of the BOSH layout under `/var/vcap`.
pub fn vcap_dirs() -> Vec<&'static str> {
    vec![
        "var/vcap/bosh/bin",
        "var/vcap/bosh/etc",
        "var/vcap/bosh/log",
        "var/vcap/data",
        "var/vcap/store",
        "var/vcap/sys",
        "var/vcap/jobs",
        "var/vcap/packages",
        "var/vcap/monit",
    ]
}

/// The commands making vcap's groups and the vcap user (uid [`VCAP_UID`]) inside `root`.
pub fn vcap_user_commands(root: &Path) -> Vec<Cmd> {
    let chroot = || Cmd::new("chroot").arg(root);
    let mut commands: Vec<Cmd> = VCAP_GROUPS
        .iter()
        .map(|group| {
            let cmd = chroot().arg("groupadd");
            if *group == "vcap" {
                cmd.args(["--gid", &VCAP_UID.to_string(), group])
            } else {
                cmd.arg(group)
            }
        })
        .collect();
    commands.push(chroot().args([
        "useradd",
        "--uid",
        &VCAP_UID.to_string(),
        "--gid",
        "vcap",
        "--groups",
        &VCAP_GROUPS[1..].join(","),
        "--create-home",
        "--home-dir",
        "/home/vcap",
        "--shell",
        "/bin/bash",
        "vcap",
    ]));
    commands
}

/// `systemctl --root <root> enable` of [`ENABLED_UNITS`] (it reads their `[Install]` sections).
pub fn enable_units_command(root: &Path) -> Cmd {
    Cmd::new("systemctl")
        .arg(format!("--root={}", root.display()))
        .arg("enable")
        .args(ENABLED_UNITS)
}

/// `update-initramfs` for the image's kernel, inside the chroot.
pub fn update_initramfs_command(root: &Path, kernel_release: &str) -> Cmd {
    Cmd::new("chroot")
        .arg(root)
        .args(["update-initramfs", "-u", "-k", kernel_release])
}

/// `dpkg-query -W` inside the image: the stemcell's `packages.txt`.
pub fn packages_command(root: &Path) -> Cmd {
    Cmd::new("chroot").arg(root).args(["dpkg-query", "-W"])
}

/// The kernel release installed under `<root>/lib/modules` (exactly one).
pub fn kernel_release(root: &Path) -> Result<String, Error> {
    let dir = root.join("lib/modules");
    let read = fs::read_dir(&dir).map_err(|source| Error::Write {
        path: dir.clone(),
        source,
    })?;
    let mut releases: Vec<String> = read
        .filter_map(|entry| entry.ok())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
    releases.sort();
    match releases.as_slice() {
        [one] => Ok(one.clone()),
        _ => Err(Error::Kernel {
            dir,
            found: format!("{releases:?}"),
        }),
    }
}

/// Writes `files` under `root`, making parent directories; a symlink in the way (Debian's
/// `/etc/resolv.conf`) is replaced, not followed.
pub fn write_files(root: &Path, files: &[File]) -> Result<(), Error> {
    for file in files {
        let path = root.join(&file.path);
        let write = || -> io::Result<()> {
            if let Some(parent) = path.parent() {
                fs::create_dir_all(parent)?;
            }
            if path.is_symlink() {
                fs::remove_file(&path)?;
            }
            fs::write(&path, &file.content)?;
            fs::set_permissions(&path, fs::Permissions::from_mode(file.mode))
        };
        write().map_err(|source| Error::Write { path, source })?;
    }
    Ok(())
}

/// What the tarball carries besides the image, read from the customised root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Customized {
    /// `packages.txt` (`dpkg-query -W`).
    pub packages: String,
    /// `dev_tools_file_list.txt`.
    pub dev_tools: String,
}

/// Customises the debootstrapped `root`: the BOSH layout, the agent binary (copied from `agent`),
/// the files of [`files`], the [`symlinks`], the vcap user, enabled units, no SSH host keys, a
/// fresh initramfs, and the lists of [`dev_tools`](crate::dev_tools).
pub fn customize(
    runner: &dyn CommandRunner,
    root: &Path,
    agent: &Path,
    inputs: &Inputs,
) -> Result<Customized, Error> {
    let io_error = |path: &Path| {
        let path = path.to_owned();
        move |source| Error::Write { path, source }
    };
    for dir in vcap_dirs() {
        let dir = root.join(dir);
        fs::create_dir_all(&dir).map_err(io_error(&dir))?;
    }
    let agent_path = root.join("var/vcap/bosh/bin/bosh-agent");
    fs::copy(agent, &agent_path).map_err(io_error(&agent_path))?;
    fs::set_permissions(&agent_path, fs::Permissions::from_mode(0o755))
        .map_err(io_error(&agent_path))?;

    let modules_path = root.join("etc/initramfs-tools/modules");
    let modules_now = fs::read_to_string(&modules_path).unwrap_or_default();
    write_files(root, &files(inputs, &modules_now))?;

    // Host keys are made per VM at first boot by the ssh-keygen unit.
    remove_ssh_host_keys(root)?;
    for (link, target) in symlinks() {
        let link = root.join(link);
        if link.is_symlink() || link.exists() {
            fs::remove_file(&link).map_err(io_error(&link))?;
        }
        if let Some(parent) = link.parent() {
            fs::create_dir_all(parent).map_err(io_error(parent))?;
        }
        symlink(target, &link).map_err(io_error(&link))?;
    }

    for cmd in vcap_user_commands(root) {
        run::run(runner, &cmd)?;
    }
    run::run(runner, &enable_units_command(root))?;
    let packages = {
        let mounts = ChrootMounts::mount(runner, root)?;
        let result = run::run(
            runner,
            &update_initramfs_command(root, &inputs.kernel_release),
        )
        .and_then(|_| run::run_stdout(runner, &packages_command(root)));
        mounts.unmount()?;
        result?
    };
    let dev_tools = crate::dev_tools::write_lists(runner, root)?;
    Ok(Customized {
        packages,
        dev_tools,
    })
}

fn remove_ssh_host_keys(root: &Path) -> Result<(), Error> {
    let dir = root.join("etc/ssh");
    let Ok(entries) = fs::read_dir(&dir) else {
        return Ok(());
    };
    for entry in entries.filter_map(|entry| entry.ok()) {
        if entry.file_name().to_string_lossy().starts_with("ssh_host_") {
            let path = entry.path();
            fs::remove_file(&path).map_err(|source| Error::Write { path, source })?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use platform::testing::{RecordingRunner, Reply};

    use super::*;

    fn inputs() -> Inputs {
        Inputs {
            root_uuid: "0b5f2a56-8a47-4c47-9d2c-7d3c8a0d1e11".into(),
            kernel_release: "6.1.0-35-cloud-amd64".into(),
            version: "1.2".into(),
        }
    }

    #[test]
    fn agent_json_lists_config_drive_then_cdrom_then_http() {
        let config: serde_json::Value = serde_json::from_str(&agent_json()).unwrap();
        assert_eq!(
            config["Platform"]["Linux"],
            json!({
                "DevicePathResolutionType": "virtio",
                "PartitionerType": "parted",
                "CreatePartitionIfNoEphemeralDisk": true,
                "ServiceManager": "systemd",
            })
        );
        let sources = config["Infrastructure"]["Settings"]["Sources"]
            .as_array()
            .unwrap();
        let types: Vec<&str> = sources
            .iter()
            .map(|s| s["Type"].as_str().unwrap())
            .collect();
        assert_eq!(types, ["ConfigDrive", "CDROM", "HTTP"]);
        assert_eq!(
            sources[0]["DiskPaths"],
            json!(["/dev/disk/by-label/CONFIG-2", "/dev/disk/by-label/config-2"])
        );
        assert_eq!(sources[0]["MetaDataPath"], "ec2/latest/meta-data.json");
        assert_eq!(sources[0]["UserDataPath"], "ec2/latest/user-data");
        assert_eq!(sources[1]["FileName"], "env");
        assert_eq!(sources[2]["URI"], "http://169.254.169.254");
        assert_eq!(sources[2]["UserDataPath"], "/latest/user-data");
        assert_eq!(
            sources[2]["InstanceIDPath"],
            "/latest/meta-data/instance-id"
        );
        assert_eq!(
            sources[2]["SSHKeysPath"],
            "/latest/meta-data/public-keys/0/openssh-key"
        );
        assert_eq!(sources[2]["TokenPath"], "/latest/api/token");
    }

    #[test]
    fn agent_unit_restarts_and_logs_to_the_console() {
        let unit = agent_unit();
        for line in [
            "ExecStart=/var/vcap/bosh/bin/bosh-agent -P ubuntu -C /var/vcap/bosh/agent.json",
            "Restart=always",
            "RestartSec=1",
            "StartLimitIntervalSec=0",
            "StandardOutput=journal+console",
            "StandardError=journal+console",
            "WantedBy=multi-user.target",
        ] {
            assert!(unit.lines().any(|l| l == line), "{line} missing:\n{unit}");
        }
    }

    #[test]
    fn ssh_keygen_runs_before_sshd_only_when_keys_are_missing() {
        let unit = ssh_keygen_unit();
        assert!(unit.contains("\nBefore=ssh.service\n"));
        assert!(unit.contains("\nConditionPathExists=!/etc/ssh/ssh_host_ed25519_key\n"));
        assert!(unit.contains(
            "\nExecStart=/usr/bin/ssh-keygen -q -t ed25519 -N \"\" -f /etc/ssh/ssh_host_ed25519_key\n"
        ));
        assert!(unit.contains(
            "\nExecStart=/usr/bin/ssh-keygen -q -t ecdsa -N \"\" -f /etc/ssh/ssh_host_ecdsa_key\n"
        ));
        assert!(unit.contains("\nType=oneshot\n"));
        assert!(unit.contains("\nWantedBy=ssh.service\n"));
        assert_eq!(
            sshd_host_keys_conf(),
            "HostKey /etc/ssh/ssh_host_ed25519_key\nHostKey /etc/ssh/ssh_host_ecdsa_key\n"
        );
    }

    #[test]
    fn extlinux_boots_the_kernel_with_root_by_uuid_on_the_serial_console() {
        assert_eq!(
            extlinux_conf(&inputs()),
            "DEFAULT debian\nPROMPT 0\nTIMEOUT 0\n\nLABEL debian\n  \
             LINUX /boot/vmlinuz-6.1.0-35-cloud-amd64\n  \
             INITRD /boot/initrd.img-6.1.0-35-cloud-amd64\n  \
             APPEND root=UUID=0b5f2a56-8a47-4c47-9d2c-7d3c8a0d1e11 ro console=ttyS0,115200 \
             systemd.log_target=kmsg\n"
        );
    }

    #[test]
    fn fstab_mounts_root_by_uuid() {
        assert_eq!(
            fstab("abc"),
            "UUID=abc / ext4 defaults,errors=remount-ro 0 1\n"
        );
    }

    #[test]
    fn hosts_names_the_image_hostname() {
        assert!(hosts().contains("127.0.0.1 localhost\n127.0.1.1 bosh-stemcell\n"));
    }

    #[test]
    fn initramfs_modules_are_added_once() {
        let first = initramfs_modules("# comment\nvirtio_blk");
        assert_eq!(
            first,
            "# comment\nvirtio_blk\nvirtio_pci\nvirtio_net\next4\n"
        );
        assert_eq!(initramfs_modules(&first), first);
        assert_eq!(initramfs_conf(), "FSTYPE=ext4\nMODULES=list\n");
    }

    #[test]
    fn files_cover_the_stemcell_layout() {
        let files = files(&inputs(), "");
        let find = |path: &str| {
            files
                .iter()
                .find(|f| f.path == Path::new(path))
                .unwrap_or_else(|| panic!("{path} missing"))
        };
        assert_eq!(
            find("var/vcap/bosh/agent.json").content,
            agent_json().as_bytes()
        );
        assert_eq!(find("var/vcap/bosh/bin/restart_networking").mode, 0o755);
        assert_eq!(
            find("var/vcap/bosh/bin/restart_networking").content,
            b"#!/bin/sh\nset -e\nexec systemctl restart systemd-networkd\n"
        );
        assert_eq!(find("etc/machine-id").content, b"");
        assert_eq!(find("etc/hostname").content, b"bosh-stemcell\n");
        assert_eq!(
            find("etc/initramfs-tools/conf.d/bosh-root-fstype").content,
            b"FSTYPE=ext4\nMODULES=list\n"
        );
        assert_eq!(
            find("etc/systemd/system/bosh-agent.service").content,
            agent_unit().as_bytes()
        );
        assert_eq!(find("var/vcap/bosh/etc/stemcell_version").content, b"1.2\n");
    }

    #[test]
    fn vcap_user_gets_uid_1000_and_the_bosh_groups() {
        let argv: Vec<String> = vcap_user_commands(Path::new("/r"))
            .iter()
            .map(|c| c.to_string())
            .collect();
        assert_eq!(
            argv,
            [
                "chroot /r groupadd --gid 1000 vcap",
                "chroot /r groupadd admin",
                "chroot /r groupadd bosh_sudoers",
                "chroot /r groupadd bosh_sshers",
                "chroot /r useradd --uid 1000 --gid vcap --groups admin,bosh_sudoers,bosh_sshers \
                 --create-home --home-dir /home/vcap --shell /bin/bash vcap",
            ]
        );
    }

    #[test]
    fn customize_writes_the_layout_and_runs_the_image_commands_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        fs::create_dir_all(root.join("etc/ssh")).unwrap();
        fs::write(root.join("etc/ssh/ssh_host_ed25519_key"), "secret").unwrap();
        fs::write(root.join("etc/ssh/sshd_config"), "keep").unwrap();
        symlink("/etc/host-resolv.conf", root.join("etc/resolv.conf")).unwrap();
        fs::create_dir_all(root.join("var/lib/dbus")).unwrap();
        fs::write(root.join("var/lib/dbus/machine-id"), "build machine id\n").unwrap();
        let agent = dir.path().join("bosh-agent");
        fs::write(&agent, "agent binary").unwrap();
        let r = root.to_str().unwrap();

        let runner = RecordingRunner::new();
        for cmd in vcap_user_commands(&root) {
            let argv: Vec<String> = std::iter::once(&cmd.program)
                .chain(&cmd.args)
                .map(|s| s.to_string_lossy().into_owned())
                .collect();
            let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
            runner.expect(&argv, Reply::Ok(String::new()));
        }
        let enable = format!("--root={r}");
        runner.expect(
            &[
                "systemctl",
                &enable,
                "enable",
                "systemd-networkd.service",
                "systemd-resolved.service",
                "ssh-keygen.service",
                "bosh-agent.service",
            ],
            Reply::Ok(String::new()),
        );
        for m in chroot::mount_commands(&root) {
            let argv: Vec<String> = std::iter::once(&m.program)
                .chain(&m.args)
                .map(|s| s.to_string_lossy().into_owned())
                .collect();
            let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
            runner.expect(&argv, Reply::Ok(String::new()));
        }
        runner.expect(
            &[
                "chroot",
                r,
                "update-initramfs",
                "-u",
                "-k",
                "6.1.0-35-cloud-amd64",
            ],
            Reply::Ok(String::new()),
        );
        runner.expect(
            &["chroot", r, "dpkg-query", "-W"],
            Reply::Ok("bash\t5.2.15-2+b7\n".into()),
        );
        for dir in ["dev", "sys", "proc"] {
            runner.expect(&["umount", &format!("{r}/{dir}")], Reply::Ok(String::new()));
        }

        runner.expect(
            &[
                "chroot",
                r,
                "dpkg-query",
                "-W",
                "-f=${db:Status-Abbrev} ${Package}\n",
            ],
            Reply::Ok("ii  bash\n".into()),
        );
        let customized = customize(&runner, &root, &agent, &inputs()).unwrap();
        assert_eq!(customized.packages, "bash\t5.2.15-2+b7\n");
        assert_eq!(customized.dev_tools, "", "no dev tool package installed");
        assert!(runner.unused().is_empty(), "{:?}", runner.unused());
        let recorded = runner.recorded();
        let position = |program: &str, arg: &str| {
            recorded
                .iter()
                .position(|argv| argv[0] == program && argv.iter().any(|a| a == arg))
                .unwrap()
        };
        assert!(position("mount", "proc") < position("chroot", "update-initramfs"));
        assert!(position("chroot", "dpkg-query") < position("umount", &format!("{r}/proc")));

        assert_eq!(
            fs::read(root.join("var/vcap/bosh/bin/bosh-agent")).unwrap(),
            b"agent binary"
        );
        for name in ["monit", "bosh-enable-monit-access"] {
            assert_eq!(
                fs::read_link(root.join("var/vcap/bosh/bin").join(name)).unwrap(),
                Path::new("bosh-agent"),
                "{name}"
            );
        }
        assert_eq!(
            fs::read_link(root.join("etc/resolv.conf")).unwrap(),
            Path::new("../run/systemd/resolve/stub-resolv.conf")
        );
        assert_eq!(
            fs::read_link(root.join("var/lib/dbus/machine-id")).unwrap(),
            Path::new("/etc/machine-id")
        );
        assert!(!root.join("etc/ssh/ssh_host_ed25519_key").exists());
        assert!(root.join("etc/ssh/sshd_config").exists());
        for dir in vcap_dirs() {
            assert!(root.join(dir).is_dir(), "{dir}");
        }
    }

    #[test]
    fn a_failed_initramfs_update_still_unmounts() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        let agent = dir.path().join("bosh-agent");
        fs::create_dir_all(&root).unwrap();
        fs::write(&agent, "agent").unwrap();
        let r = root.to_str().unwrap();
        let runner = RecordingRunner::new();
        for cmd in vcap_user_commands(&root)
            .into_iter()
            .chain([enable_units_command(&root)])
            .chain(chroot::mount_commands(&root))
        {
            let argv: Vec<String> = std::iter::once(&cmd.program)
                .chain(&cmd.args)
                .map(|s| s.to_string_lossy().into_owned())
                .collect();
            let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
            runner.expect(&argv, Reply::Ok(String::new()));
        }
        runner.expect(
            &[
                "chroot",
                r,
                "update-initramfs",
                "-u",
                "-k",
                "6.1.0-35-cloud-amd64",
            ],
            Reply::Fail(1, "mkinitramfs: failed".into()),
        );
        for dir in ["dev", "sys", "proc"] {
            runner.expect(&["umount", &format!("{r}/{dir}")], Reply::Ok(String::new()));
        }
        let err = customize(&runner, &root, &agent, &inputs()).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("running `chroot {r} update-initramfs -u -k 6.1.0-35-cloud-amd64`")
        );
        assert!(runner.unused().is_empty(), "{:?}", runner.unused());
    }
}
