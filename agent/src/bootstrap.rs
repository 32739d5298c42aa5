//! The agent's bootstrap (`agent/bootstrap.go`, §5.1 of the reference): what the agent does to the VM
//! after loading its settings and before serving the bus.
//!
//! The steps done so far: the root and vcap passwords from `env.bosh.password` (root's only unless
//! `keep_root_password`). The Linux platform's steps (SSH keys, hostname, networking, disks, mounts,
//! the data dir layout) arrive with the Linux platform issue; until then a platform that cannot do a
//! step says so in the log and the agent goes on, so the message bus stays reachable.

use std::sync::Arc;

use platform::user;

use crate::action::{self, Context};

/// Runs the bootstrap steps.
pub async fn run(context: Arc<Context>) -> action::Result<()> {
    action::blocking(move || {
        let settings = context.settings.settings();
        let password = &settings.env.bosh.password;
        let mut users = vec!["vcap"];
        if !settings.env.bosh.keep_root_password {
            users.insert(0, "root");
        }
        for user in users {
            match context.platform.set_user_password(user, password) {
                Ok(()) => {}
                Err(user::Error::Unsupported(what)) => {
                    tracing::warn!(
                        user,
                        "{what} is not implemented on this platform yet, skipped"
                    );
                }
                Err(err) => return Err(err.into()),
            }
        }
        Ok(())
    })
    .await
}
