//! `ssh` (`agent/action/ssh.go`): `bosh ssh` creates a temporary user with the operator's key
//! (`setup`) and removes such users afterwards (`cleanup`, every `bosh_` user matching `user_regex`).

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::action::{ActionSpec, Context, Invocation, Result, blocking, error};

/// `ssh`.
pub const ACTION: ActionSpec = ActionSpec::change("ssh", |context, invocation| {
    Box::pin(run(context, invocation))
});

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct SshParams {
    user_regex: String,
    user: String,
    public_key: String,
}

#[derive(Debug, Serialize)]
struct SshResult {
    command: &'static str,
    status: &'static str,
    #[serde(skip_serializing_if = "String::is_empty")]
    ip: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    host_public_key: String,
}

async fn run(context: Arc<Context>, invocation: Invocation) -> Result {
    invocation.args.require(2)?;
    let command: String = invocation.args.get(0)?;
    let params: SshParams = invocation.args.get(1)?;
    let result = match command.as_str() {
        "setup" => {
            let platform = context.platform.clone();
            let host_public_key = blocking(move || {
                let key = platform.host_public_key()?;
                platform.setup_ssh(&params.user, &params.public_key)?;
                Ok(key)
            })
            .await?;
            let ip = context
                .resolved_networks()
                .await?
                .default_ip()
                .map(str::to_owned)
                .ok_or_else(|| error("No default ip could be found"))?;
            SshResult {
                command: "setup",
                status: "success",
                ip,
                host_public_key,
            }
        }
        "cleanup" => {
            let platform = context.platform.clone();
            blocking(move || Ok(platform.cleanup_ssh(&params.user_regex)?)).await?;
            SshResult {
                command: "cleanup",
                status: "success",
                ip: String::new(),
                host_public_key: String::new(),
            }
        }
        _ => return Err(error("Unknown command for SSH method")),
    };
    Ok(serde_json::to_value(result)?)
}
