//! Users for `bosh ssh`: the errors of the user operations of [`Platform`](crate::Platform) and the
//! checks of their input (`agent/action/ssh.go`, `platform/linux_platform.go` `CreateUser`,
//! `AddUserToGroups`, `SetupSSH`, `DeleteEphemeralUsersMatching`, `GetHostPublicKey`).
//!
//! `ssh setup` creates a user in the groups `vcap`, `admin`, `bosh_sudoers` and `bosh_sshers` and
//! writes its `authorized_keys`; `ssh cleanup` deletes every user whose name starts with
//! [`EPHEMERAL_USER_PREFIX`] and matches the director's regex (Go's `regexp` syntax, unanchored, which
//! the `regex` crate shares for the patterns the director sends). Go passes the user name to `useradd`
//! unchecked; we refuse names `useradd` would refuse, and keys that would add lines to
//! `authorized_keys`, before changing anything.

use std::path::PathBuf;

use regex::Regex;

use crate::dummy;

/// Only users whose names start with this are ever deleted by `ssh cleanup`
/// (`boshsettings.EphemeralUserPrefix`).
pub const EPHEMERAL_USER_PREFIX: &str = "bosh_";

/// The longest user name `useradd` accepts.
pub const MAX_USER_NAME_LEN: usize = 32;

/// Why a user operation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A command changing users failed (`useradd`, `usermod`, `userdel`).
    #[error("running {command}")]
    Command {
        /// The command line.
        command: String,
        /// The cause.
        #[source]
        source: Box<crate::cmd::Error>,
    },
    /// Another host operation on users failed.
    #[error(transparent)]
    Host(Box<crate::bootstrap::Error>),
    /// The user name is not one `useradd` accepts.
    #[error("user name '{name}' {reason}")]
    InvalidUserName {
        /// The name as given.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The public key is empty or spans several lines.
    #[error("public key for user '{user}' {reason}")]
    InvalidPublicKey {
        /// The user.
        user: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The cleanup regex does not compile.
    #[error("compiling user regex '{regex}'")]
    InvalidRegex {
        /// The regex as given.
        regex: String,
        /// The cause.
        #[source]
        source: regex::Error,
    },
    /// The host's SSH public key could not be read.
    #[error("reading host public key {}", .path.display())]
    ReadHostKey {
        /// The key file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The dummy platform's state files could not be read or written.
    #[error(transparent)]
    State(#[from] dummy::state::Error),
}

/// `pub type Result<T>` of this module.
pub type Result<T> = std::result::Result<T, Error>;

/// Checks `name` against `useradd`'s rule: 1 to 32 characters, `[a-z_][a-z0-9_-]*`, optionally
/// ending in `$`.
pub fn check_user_name(name: &str) -> Result<()> {
    let invalid = |reason| {
        Err(Error::InvalidUserName {
            name: name.to_owned(),
            reason,
        })
    };
    if name.is_empty() {
        return invalid("is empty");
    }
    if name.len() > MAX_USER_NAME_LEN {
        return invalid("is longer than 32 characters");
    }
    let body = name.strip_suffix('$').unwrap_or(name);
    let mut chars = body.chars();
    let starts_well = chars
        .next()
        .is_some_and(|first| first.is_ascii_lowercase() || first == '_');
    if !starts_well {
        return invalid("must start with a lower-case letter or '_'");
    }
    if !chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-') {
        return invalid("may only hold lower-case letters, digits, '_' and '-'");
    }
    Ok(())
}

/// Checks that `public_key`, for `user`, is one non-empty line.
pub fn check_public_key(user: &str, public_key: &str) -> Result<()> {
    let invalid = |reason| {
        Err(Error::InvalidPublicKey {
            user: user.to_owned(),
            reason,
        })
    };
    if public_key.trim().is_empty() {
        return invalid("is empty");
    }
    if public_key.contains(['\n', '\r', '\0']) {
        return invalid("spans several lines");
    }
    Ok(())
}

/// Compiles the `user_regex` of `ssh cleanup`.
pub fn compile_user_regex(regex: &str) -> Result<Regex> {
    Regex::new(regex).map_err(|source| Error::InvalidRegex {
        regex: regex.to_owned(),
        source,
    })
}

/// Whether `ssh cleanup` with `regex` deletes `user`: it must start with [`EPHEMERAL_USER_PREFIX`] and
/// match `regex` anywhere.
pub fn is_ephemeral_match(user: &str, regex: &Regex) -> bool {
    user.starts_with(EPHEMERAL_USER_PREFIX) && regex.is_match(user)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_names_follow_useradd() {
        let cases: &[(&str, Option<&str>)] = &[
            ("bosh_7ce7ab8e11354c7", None),
            ("vcap", None),
            ("_svc", None),
            ("machine$", None),
            ("a-b_c9", None),
            ("", Some("user name '' is empty")),
            (
                "bosh_0123456789012345678901234567",
                Some("user name 'bosh_0123456789012345678901234567' is longer than 32 characters"),
            ),
            (
                "9lives",
                Some("user name '9lives' must start with a lower-case letter or '_'"),
            ),
            (
                "-rf",
                Some("user name '-rf' must start with a lower-case letter or '_'"),
            ),
            (
                "Bosh_x",
                Some("user name 'Bosh_x' must start with a lower-case letter or '_'"),
            ),
            (
                "bosh_../../etc",
                Some(
                    "user name 'bosh_../../etc' may only hold lower-case letters, digits, '_' and '-'",
                ),
            ),
            (
                "bosh x",
                Some("user name 'bosh x' may only hold lower-case letters, digits, '_' and '-'"),
            ),
            (
                "a$b",
                Some("user name 'a$b' may only hold lower-case letters, digits, '_' and '-'"),
            ),
        ];
        for (name, expected) in cases {
            let checked = check_user_name(name).err().map(|err| err.to_string());
            assert_eq!(checked.as_deref(), *expected, "{name:?}");
        }
    }

    #[test]
    fn public_keys_are_one_line() {
        let cases: &[(&str, Option<&str>)] = &[
            ("ssh-rsa AAAAB3Nza director@bosh", None),
            ("", Some("public key for user 'bosh_1' is empty")),
            ("  ", Some("public key for user 'bosh_1' is empty")),
            (
                "ssh-rsa AAA\nssh-rsa BBB",
                Some("public key for user 'bosh_1' spans several lines"),
            ),
            (
                "ssh-rsa AAA\r",
                Some("public key for user 'bosh_1' spans several lines"),
            ),
        ];
        for (key, expected) in cases {
            let checked = check_public_key("bosh_1", key)
                .err()
                .map(|err| err.to_string());
            assert_eq!(checked.as_deref(), *expected, "{key:?}");
        }
    }

    #[test]
    fn cleanup_deletes_only_prefixed_users_matching_the_regex() {
        let cases: &[(&str, &str, bool)] = &[
            ("^bosh_abc$", "bosh_abc", true),
            ("^bosh_abc$", "bosh_abcd", false),
            ("bosh_", "bosh_anything", true),
            ("abc", "bosh_xabcx", true),
            (".*", "vcap", false),
            (".*", "root", false),
            ("^vcap$", "vcap", false),
            ("^bosh_\\d+$", "bosh_42", true),
        ];
        for (regex, user, expected) in cases {
            let compiled = compile_user_regex(regex).unwrap();
            assert_eq!(
                is_ephemeral_match(user, &compiled),
                *expected,
                "{regex} {user}"
            );
        }
    }

    #[test]
    fn a_bad_regex_is_refused() {
        let err = compile_user_regex("^bosh_(").unwrap_err();
        assert_eq!(err.to_string(), "compiling user regex '^bosh_('");
        assert!(std::error::Error::source(&err).is_some());
    }
}
