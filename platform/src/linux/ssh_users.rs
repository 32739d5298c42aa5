//! `bosh ssh` users on Linux (`CreateUser`, `AddUserToGroups`, `SetupSSH` and
//! `DeleteEphemeralUsersMatching` in `platform/linux_platform.go`, called by `agent/action/ssh.go`).
//!
//! [`setup`] checks the name and key first (nothing changes on bad input), then
//! `useradd -m -b <base>/bosh_ssh -s /bin/bash <user>` (the base dir `0755`), gives the home `0700`,
//! `usermod -G vcap,admin,bosh_sudoers,bosh_sshers <user>` and makes the key the user's only
//! authorized key ([`super::users::setup_ssh_keys`]: `.ssh` `0700`, `authorized_keys` `0600`, both
//! owned by the user). Unlike Go, a user that exists already is not created again, so a repeated
//! setup replaces the key instead of failing in `useradd`.
//!
//! [`host_public_key`] is the answer's host key: Go reads `/etc/ssh/ssh_host_rsa_key.pub` only; our
//! stemcell makes no RSA host key (too slow to generate under emulation), so after RSA come the
//! ECDSA and Ed25519 keys. The director only writes the key into the user's `known_hosts`, where
//! any type does.
//!
//! [`cleanup`] runs `userdel -rf <user>` for every `/etc/passwd` user whose name starts with `bosh_`
//! and matches the director's regex ([`crate::user::is_ephemeral_match`]).

use std::path::Path;

use crate::HostPaths;
use crate::bootstrap;
use crate::cmd::{Cmd, CommandRunner};
use crate::linux::{files, users};
use crate::user::{self, Error, Result};

/// The groups every `bosh ssh` user joins (`vcap`, `admin`, `bosh_sudoers`, `bosh_sshers`).
pub const GROUPS: [&str; 4] = ["vcap", "admin", "bosh_sudoers", "bosh_sshers"];

/// The directory under the base dir holding the users' homes.
pub const HOMES_DIR: &str = "bosh_ssh";

/// The host keys `ssh setup` answers with, under `/etc`, the first that exists.
pub const HOST_PUBLIC_KEY_FILES: [&str; 3] = [
    "ssh/ssh_host_rsa_key.pub",
    "ssh/ssh_host_ecdsa_key.pub",
    "ssh/ssh_host_ed25519_key.pub",
];

/// The host's SSH public key: RSA as in Go, else ECDSA, else Ed25519. None is an error naming
/// the RSA file.
pub fn host_public_key(host: &HostPaths) -> Result<String> {
    let mut first_error = None;
    for name in HOST_PUBLIC_KEY_FILES {
        let path = host.etc(name);
        match std::fs::read_to_string(&path) {
            Ok(key) => return Ok(key),
            Err(source) => {
                first_error.get_or_insert(Error::ReadHostKey { path, source });
            }
        }
    }
    Err(first_error.expect("at least one key file is tried"))
}

/// Creates `user` with its home under `homes` (`<base>/bosh_ssh`), in [`GROUPS`], with
/// `public_key` as its only authorized key.
pub fn setup(
    runner: &dyn CommandRunner,
    host: &HostPaths,
    homes: &Path,
    user_name: &str,
    public_key: &str,
) -> Result<()> {
    user::check_user_name(user_name)?;
    user::check_public_key(user_name, public_key)?;
    files::ensure_dir(homes, 0o755).map_err(host_error)?;
    if files::user_exists(host, user_name) {
        tracing::info!(
            user = user_name,
            "the ssh user exists already, not created again"
        );
    } else {
        run(
            runner,
            Cmd::new("useradd")
                .args(["-m", "-b"])
                .arg(homes)
                .args(["-s", "/bin/bash", user_name]),
        )?;
    }
    let home = files::home_dir(host, user_name).map_err(host_error)?;
    files::set_mode(&home, 0o700).map_err(host_error)?;
    run(
        runner,
        Cmd::new("usermod").args(["-G", &GROUPS.join(","), user_name]),
    )?;
    users::setup_ssh_keys(runner, host, user_name, &[public_key.trim().to_owned()])
        .map_err(host_error)
}

/// Deletes every `bosh_` user matching `user_regex`.
pub fn cleanup(runner: &dyn CommandRunner, host: &HostPaths, user_regex: &str) -> Result<()> {
    let regex = user::compile_user_regex(user_regex)?;
    let passwd_path = host.etc("passwd");
    let passwd = std::fs::read_to_string(&passwd_path)
        .map_err(|source| host_error(bootstrap::Error::io("reading", passwd_path, source)))?;
    let doomed: Vec<&str> = passwd
        .lines()
        .filter_map(|line| line.split(':').next())
        .filter(|name| user::is_ephemeral_match(name, &regex))
        .collect();
    for name in doomed {
        tracing::info!(user = name, "deleting ssh user");
        run(runner, Cmd::new("userdel").args(["-rf", name]))?;
    }
    Ok(())
}

fn run(runner: &dyn CommandRunner, cmd: Cmd) -> Result<()> {
    runner.run(&cmd).map(drop).map_err(|source| Error::Command {
        command: cmd.to_string(),
        source: Box::new(source),
    })
}

/// A bootstrap helper's error as a user error.
pub(crate) fn host_error(err: bootstrap::Error) -> Error {
    match err {
        bootstrap::Error::User(err) => err,
        bootstrap::Error::Command { command, source } => Error::Command { command, source },
        other => Error::Host(Box::new(other)),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt as _;
    use std::sync::Arc;

    use super::*;
    use crate::cmd::{Error as CmdError, Output};
    use crate::testing::{RecordingRunner, Reply};

    const KEY: &str = "ssh-ed25519 AAAAC3Nza operator@laptop";

    /// The recording runner, plus what `useradd -m` does to `/etc/passwd` and the home.
    #[derive(Debug)]
    struct UserAdd {
        root: std::path::PathBuf,
        recording: Arc<RecordingRunner>,
    }

    impl CommandRunner for UserAdd {
        fn run(&self, cmd: &Cmd) -> std::result::Result<Output, CmdError> {
            let output = self.recording.run(cmd)?;
            let argv: Vec<String> = cmd
                .args
                .iter()
                .map(|a| a.to_string_lossy().into_owned())
                .collect();
            if cmd.program_name() == "useradd" {
                let (base, name) = (&argv[2], &argv[5]);
                let home = format!("{base}/{name}");
                std::fs::create_dir_all(&home).unwrap();
                let passwd = self.root.join("etc/passwd");
                let mut text = std::fs::read_to_string(&passwd).unwrap();
                let guest_home = home.strip_prefix(self.root.to_str().unwrap()).unwrap();
                text.push_str(&format!("{name}:x:1001:1001::{guest_home}:/bin/bash\n"));
                std::fs::write(passwd, text).unwrap();
            }
            Ok(output)
        }
    }

    fn host() -> (tempfile::TempDir, HostPaths) {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("etc")).unwrap();
        std::fs::write(
            root.path().join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/bash\nvcap:x:1000:1000::/home/vcap:/bin/bash\n",
        )
        .unwrap();
        let host = HostPaths::with_root(root.path());
        (root, host)
    }

    #[test]
    fn setup_creates_the_user_in_the_groups_with_the_key_and_modes() {
        let (root, host) = host();
        let homes = root.path().join("var/vcap/bosh_ssh");
        let home = homes.join("bosh_abc");
        let (homes_text, home_text) = (homes.to_str().unwrap(), home.to_str().unwrap());
        let ssh = format!("{home_text}/.ssh");
        let keys = format!("{ssh}/authorized_keys");
        let recording = Arc::new(RecordingRunner::new());
        for argv in [
            vec![
                "useradd",
                "-m",
                "-b",
                homes_text,
                "-s",
                "/bin/bash",
                "bosh_abc",
            ],
            vec![
                "usermod",
                "-G",
                "vcap,admin,bosh_sudoers,bosh_sshers",
                "bosh_abc",
            ],
            vec!["chown", "bosh_abc:bosh_abc", &ssh],
            vec!["chown", "bosh_abc:bosh_abc", &keys],
        ] {
            recording.expect(&argv, Reply::Ok(String::new()));
        }
        let runner = UserAdd {
            root: root.path().to_owned(),
            recording: recording.clone(),
        };
        setup(&runner, &host, &homes, "bosh_abc", KEY).unwrap();
        assert!(recording.unused().is_empty(), "{:?}", recording.unused());
        assert_eq!(recording.recorded().len(), 4, "in this order, nothing else");
        let mode = |path: &str| std::fs::metadata(path).unwrap().mode() & 0o7777;
        assert_eq!(mode(homes_text), 0o755);
        assert_eq!(mode(home_text), 0o700);
        assert_eq!(mode(&ssh), 0o700);
        assert_eq!(mode(&keys), 0o600);
        assert_eq!(std::fs::read_to_string(&keys).unwrap(), format!("{KEY}\n"));

        // Again with another key: the user is not created twice, the key is replaced.
        let recording = Arc::new(RecordingRunner::new());
        for argv in [
            vec![
                "usermod",
                "-G",
                "vcap,admin,bosh_sudoers,bosh_sshers",
                "bosh_abc",
            ],
            vec!["chown", "bosh_abc:bosh_abc", &ssh],
            vec!["chown", "bosh_abc:bosh_abc", &keys],
        ] {
            recording.expect(&argv, Reply::Ok(String::new()));
        }
        setup(&*recording, &host, &homes, "bosh_abc", "ssh-rsa BBBB other").unwrap();
        assert!(recording.unused().is_empty(), "{:?}", recording.recorded());
        assert_eq!(
            std::fs::read_to_string(&keys).unwrap(),
            "ssh-rsa BBBB other\n"
        );
    }

    #[test]
    fn bad_names_and_keys_change_nothing_and_a_failed_useradd_is_named() {
        let (root, host) = host();
        let homes = root.path().join("var/vcap/bosh_ssh");
        let runner = RecordingRunner::new();
        assert_eq!(
            setup(&runner, &host, &homes, "bosh_../x", KEY)
                .unwrap_err()
                .to_string(),
            "user name 'bosh_../x' may only hold lower-case letters, digits, '_' and '-'"
        );
        assert_eq!(
            setup(&runner, &host, &homes, "bosh_abc", "a\nb")
                .unwrap_err()
                .to_string(),
            "public key for user 'bosh_abc' spans several lines"
        );
        assert!(!homes.exists());
        assert!(runner.recorded().is_empty());

        runner.expect(
            &[
                "useradd",
                RecordingRunner::ANY,
                RecordingRunner::ANY,
                RecordingRunner::ANY,
                RecordingRunner::ANY,
                RecordingRunner::ANY,
                "bosh_abc",
            ],
            Reply::Fail(9, "useradd: user 'bosh_abc' already exists".into()),
        );
        let err = setup(&runner, &host, &homes, "bosh_abc", KEY).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "running useradd -m -b {} -s /bin/bash bosh_abc",
                homes.display()
            )
        );
    }

    #[test]
    fn the_host_key_is_rsa_else_ecdsa_else_ed25519() {
        let (root, host) = host();
        let err = host_public_key(&host).unwrap_err();
        assert!(
            err.to_string().ends_with("etc/ssh/ssh_host_rsa_key.pub"),
            "{err}"
        );
        let ssh = root.path().join("etc/ssh");
        std::fs::create_dir_all(&ssh).unwrap();
        std::fs::write(ssh.join("ssh_host_ed25519_key.pub"), "ssh-ed25519 E\n").unwrap();
        assert_eq!(host_public_key(&host).unwrap(), "ssh-ed25519 E\n");
        std::fs::write(
            ssh.join("ssh_host_ecdsa_key.pub"),
            "ecdsa-sha2-nistp256 C\n",
        )
        .unwrap();
        assert_eq!(host_public_key(&host).unwrap(), "ecdsa-sha2-nistp256 C\n");
        std::fs::write(ssh.join("ssh_host_rsa_key.pub"), "ssh-rsa R\n").unwrap();
        assert_eq!(host_public_key(&host).unwrap(), "ssh-rsa R\n");
    }

    #[test]
    fn cleanup_deletes_only_bosh_users_matching_the_regex() {
        let (root, host) = host();
        std::fs::write(
            root.path().join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/bash\n\
             vcap:x:1000:1000::/home/vcap:/bin/bash\n\
             bosh_abc:x:1001:1001::/var/vcap/bosh_ssh/bosh_abc:/bin/bash\n\
             bosh_abd:x:1002:1002::/var/vcap/bosh_ssh/bosh_abd:/bin/bash\n\
             bosh_xyz:x:1003:1003::/var/vcap/bosh_ssh/bosh_xyz:/bin/bash\n\
             abc_bosh_abc:x:1004:1004::/home/a:/bin/bash\n",
        )
        .unwrap();
        let runner = RecordingRunner::new();
        runner.expect(&["userdel", "-rf", "bosh_abc"], Reply::Ok(String::new()));
        runner.expect(&["userdel", "-rf", "bosh_abd"], Reply::Ok(String::new()));
        cleanup(&runner, &host, "^bosh_ab").unwrap();
        assert_eq!(
            runner.recorded(),
            vec![
                vec!["userdel", "-rf", "bosh_abc"],
                vec!["userdel", "-rf", "bosh_abd"],
            ]
        );
        assert_eq!(
            cleanup(&runner, &host, "bosh_(").unwrap_err().to_string(),
            "compiling user regex 'bosh_('"
        );
        assert_eq!(runner.recorded().len(), 2, "a bad regex deletes nothing");
    }
}
