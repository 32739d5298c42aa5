//! `bosh ssh` users on the dummy platform, recorded in `bosh/dummy_ssh_users.json` (the Go dummy
//! platform's `CreateUser`, `SetupSSH` and `DeleteEphemeralUsersMatching` do nothing, so tests cannot
//! see them).
//!
//! Setting up a user again replaces its keys, as the Linux platform rewrites `authorized_keys`.
//! Passwords go to `bosh/<user>/password`, as in the Go dummy platform.

use serde::{Deserialize, Serialize};

use crate::dummy::{DummyPlatform, SSH_USERS_FILE, state};
use crate::user::{self, Result};

/// One user in `bosh/dummy_ssh_users.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SshUser {
    /// The user name.
    #[serde(rename = "User")]
    pub user: String,
    /// Its authorized keys.
    #[serde(rename = "PublicKeys")]
    pub public_keys: Vec<String>,
}

impl DummyPlatform {
    pub(super) fn add_ssh_user(&self, user_name: &str, public_key: &str) -> Result<()> {
        user::check_user_name(user_name)?;
        user::check_public_key(user_name, public_key)?;
        let _state = self.lock_state();
        let file = self.state_file(SSH_USERS_FILE);
        let mut users: Vec<SshUser> = state::read_json(&file)?;
        let public_keys = vec![public_key.to_owned()];
        match users.iter_mut().find(|known| known.user == user_name) {
            Some(known) => known.public_keys = public_keys,
            None => users.push(SshUser {
                user: user_name.to_owned(),
                public_keys,
            }),
        }
        state::write_json(&file, &users)?;
        Ok(())
    }

    pub(super) fn write_password(&self, user_name: &str, crypted: &str) -> Result<()> {
        user::check_user_name(user_name)?;
        let crypted = if crypted.is_empty() { "*" } else { crypted };
        let _state = self.lock_state();
        state::write_bytes(
            &self.state_file(user_name).join("password"),
            crypted.as_bytes(),
        )?;
        Ok(())
    }

    pub(super) fn delete_ssh_users(&self, user_regex: &str) -> Result<()> {
        let regex = user::compile_user_regex(user_regex)?;
        let _state = self.lock_state();
        let file = self.state_file(SSH_USERS_FILE);
        let mut users: Vec<SshUser> = state::read_json(&file)?;
        let before = users.len();
        users.retain(|known| !user::is_ephemeral_match(&known.user, &regex));
        if users.len() != before {
            state::write_json(&file, &users)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use settings::Dirs;

    #[test]
    fn passwords_are_kept_per_user_and_empty_locks() {
        let base = tempfile::tempdir().unwrap();
        let platform = DummyPlatform::new(&Dirs::new(base.path()));
        platform.write_password("vcap", "$6$crypted").unwrap();
        platform.write_password("root", "").unwrap();
        assert_eq!(
            std::fs::read_to_string(base.path().join("bosh/vcap/password")).unwrap(),
            "$6$crypted"
        );
        assert_eq!(
            std::fs::read_to_string(base.path().join("bosh/root/password")).unwrap(),
            "*"
        );
        assert!(platform.write_password("../etc", "x").is_err());
    }

    use super::*;
    use crate::Platform;

    fn users(platform: &DummyPlatform) -> Vec<String> {
        let users: Vec<SshUser> = state::read_json(&platform.state_file(SSH_USERS_FILE)).unwrap();
        users.into_iter().map(|u| u.user).collect()
    }

    #[test]
    fn ssh_users_are_set_up_and_cleaned_up() {
        let base = tempfile::tempdir().unwrap();
        let platform = DummyPlatform::new(&Dirs::new(base.path()));
        platform.setup_ssh("bosh_abc", "ssh-rsa AAA1").unwrap();
        platform.setup_ssh("bosh_abd", "ssh-rsa AAA2").unwrap();
        platform.setup_ssh("vcapx", "ssh-rsa AAA3").unwrap();
        platform.setup_ssh("bosh_abc", "ssh-rsa AAA4").unwrap();
        assert_eq!(
            std::fs::read_to_string(platform.state_file(SSH_USERS_FILE)).unwrap(),
            r#"[{"User":"bosh_abc","PublicKeys":["ssh-rsa AAA4"]},{"User":"bosh_abd","PublicKeys":["ssh-rsa AAA2"]},{"User":"vcapx","PublicKeys":["ssh-rsa AAA3"]}]"#
        );

        platform.cleanup_ssh("^bosh_abc$").unwrap();
        assert_eq!(users(&platform), vec!["bosh_abd", "vcapx"]);
        // Users without the bosh_ prefix survive any regex.
        platform.cleanup_ssh(".*").unwrap();
        assert_eq!(users(&platform), vec!["vcapx"]);
    }

    #[test]
    fn bad_ssh_input_is_refused_before_any_write() {
        let base = tempfile::tempdir().unwrap();
        let platform = DummyPlatform::new(&Dirs::new(base.path()));
        let cases = [
            ("bosh_../../x", "ssh-rsa AAA"),
            ("", "ssh-rsa AAA"),
            ("bosh_ok", ""),
            ("bosh_ok", "ssh-rsa AAA\nssh-rsa EVIL"),
        ];
        for (user_name, key) in cases {
            assert!(
                platform.setup_ssh(user_name, key).is_err(),
                "{user_name:?} {key:?}"
            );
        }
        assert!(matches!(
            platform.cleanup_ssh("(").unwrap_err(),
            user::Error::InvalidRegex { .. }
        ));
        assert_eq!(std::fs::read_dir(base.path()).unwrap().count(), 0);
    }
}
