//! vcap's SSH keys and the root and vcap passwords at bootstrap (`SetupSSH` and `SetUserPassword`
//! in `platform/linux_platform.go`, `setUserPasswords` in `agent/bootstrap.go`).
//!
//! `authorized_keys` is `env.bosh.authorized_keys` followed by the IaaS key, or the IaaS key alone
//! when the env has none (Go writes the IaaS key first, then rewrites the file with both when the
//! env has keys; the end state is the same). The file ends with a newline, is `0600` in a `0700`
//! `.ssh`, both owned by the user; it is rewritten only when its content changes. Every key is
//! checked before anything is written. No key at all leaves the file alone, as in Go.

use crate::HostPaths;
use crate::bootstrap::Result;
use crate::cmd::{Cmd, CommandRunner};
use crate::linux::files;
use crate::user;

/// The user the agent gives the keys to.
pub const VCAP_USER: &str = "vcap";

/// The keys vcap gets: the env's, then the IaaS key.
pub fn vcap_keys(env_keys: &[String], iaas_key: Option<&str>) -> Vec<String> {
    let iaas_key = iaas_key.map(str::trim).filter(|key| !key.is_empty());
    let mut keys: Vec<String> = env_keys.to_vec();
    if let Some(key) = iaas_key {
        keys.push(key.to_owned());
    }
    keys
}

/// Makes `keys` `user`'s only authorized keys.
pub fn setup_ssh_keys(
    runner: &dyn CommandRunner,
    host: &HostPaths,
    user_name: &str,
    keys: &[String],
) -> Result<()> {
    if keys.is_empty() {
        return Ok(());
    }
    for key in keys {
        user::check_public_key(user_name, key)?;
    }
    let ssh_dir = files::home_dir(host, user_name)?.join(".ssh");
    let owner = format!("{user_name}:{user_name}");
    let mut text = keys.join("\n");
    text.push('\n');
    let authorized_keys = ssh_dir.join("authorized_keys");
    if std::fs::read(&authorized_keys).is_ok_and(|current| current == text.as_bytes()) {
        return Ok(());
    }
    files::ensure_dir(&ssh_dir, 0o700)?;
    files::chown(runner, &owner, &ssh_dir)?;
    files::write_if_changed(&authorized_keys, text.as_bytes(), 0o600)?;
    files::chown(runner, &owner, &authorized_keys)
}

/// `usermod -p <crypted> <user>`; an empty password locks the account (`*`).
pub fn set_password(runner: &dyn CommandRunner, user_name: &str, crypted: &str) -> Result<()> {
    user::check_user_name(user_name)?;
    let crypted = if crypted.is_empty() { "*" } else { crypted };
    files::run(runner, Cmd::new("usermod").args(["-p", crypted, user_name])).map(drop)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt as _;

    use super::*;
    use crate::testing::{RecordingRunner, Reply};

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
    fn authorized_keys_are_the_env_keys_then_the_iaas_key_with_their_modes() {
        let (root, host) = host();
        let ssh = root.path().join("home/vcap/.ssh");
        let ssh_text = ssh.to_str().unwrap().to_owned();
        let keys_text = format!("{ssh_text}/authorized_keys");
        let runner = RecordingRunner::new();
        runner.expect(&["chown", "vcap:vcap", &ssh_text], Reply::Ok(String::new()));
        runner.expect(
            &["chown", "vcap:vcap", &keys_text],
            Reply::Ok(String::new()),
        );
        let keys = vcap_keys(
            &[
                "ssh-ed25519 AAAA env@a".to_owned(),
                "ssh-rsa BBBB env@b".to_owned(),
            ],
            Some("ssh-rsa CCCC iaas\n"),
        );
        setup_ssh_keys(&runner, &host, VCAP_USER, &keys).unwrap();
        assert_eq!(
            std::fs::read_to_string(&keys_text).unwrap(),
            "ssh-ed25519 AAAA env@a\nssh-rsa BBBB env@b\nssh-rsa CCCC iaas\n"
        );
        assert_eq!(std::fs::metadata(&ssh).unwrap().mode() & 0o7777, 0o700);
        assert_eq!(
            std::fs::metadata(&keys_text).unwrap().mode() & 0o7777,
            0o600
        );
        assert_eq!(
            runner.recorded(),
            vec![
                vec!["chown", "vcap:vcap", ssh_text.as_str()],
                vec!["chown", "vcap:vcap", keys_text.as_str()],
            ]
        );
        // The same keys again: nothing is run or written.
        setup_ssh_keys(&runner, &host, VCAP_USER, &keys).unwrap();
        assert_eq!(runner.recorded().len(), 2);
    }

    #[test]
    fn no_keys_leave_the_file_alone_and_a_bad_key_changes_nothing() {
        let (root, host) = host();
        let runner = RecordingRunner::new();
        assert!(vcap_keys(&[], Some("  ")).is_empty());
        setup_ssh_keys(&runner, &host, VCAP_USER, &[]).unwrap();
        let err = setup_ssh_keys(
            &runner,
            &host,
            VCAP_USER,
            &["ssh-rsa A\nssh-rsa B".to_owned()],
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "public key for user 'vcap' spans several lines"
        );
        assert!(!root.path().join("home/vcap/.ssh").exists());
        assert!(runner.recorded().is_empty());
    }

    #[test]
    fn passwords_are_set_with_usermod_and_empty_locks() {
        let runner = RecordingRunner::new();
        runner.expect(
            &["usermod", "-p", "$6$salt$hash", "root"],
            Reply::Ok(String::new()),
        );
        runner.expect(&["usermod", "-p", "*", "vcap"], Reply::Ok(String::new()));
        set_password(&runner, "root", "$6$salt$hash").unwrap();
        set_password(&runner, "vcap", "").unwrap();
        assert!(runner.unused().is_empty());
    }
}
