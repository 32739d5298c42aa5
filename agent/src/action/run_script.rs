//! `run_script` (`agent/action/run_script.go`): runs `jobs/<job>/bin/<script>` of every job at once
//! (`pre-start`, `post-start`, `post-deploy`, `pre-stop`, `post-stop` or a custom name; a job without
//! the script is skipped) with `options.env`, logging to `sys/log/<job>/<script>.std{out,err}.log`.
//! Answers `{}`; failures are reported in the Go agent's words (`N of M ... scripts failed`).

use std::collections::BTreeMap;
use std::sync::Arc;

use jobs::apply_spec::ApplySpec;
use serde::Deserialize;

use crate::action::{ActionSpec, Context, Invocation, Result, blocking, cancel_token};

/// `run_script`.
pub const ACTION: ActionSpec = ActionSpec::task("run_script", |context, invocation| {
    Box::pin(run(context, invocation))
});

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Options {
    env: BTreeMap<String, String>,
}

async fn run(context: Arc<Context>, invocation: Invocation) -> Result {
    invocation.args.require(1)?;
    let script_name: String = invocation.args.get(0)?;
    let options: Options = invocation.args.optional(1)?.unwrap_or_default();
    let cancel = cancel_token(invocation.cancel);
    blocking(move || {
        let spec = ApplySpec::read(&context.dirs.spec_file())?;
        context
            .job_scripts()
            .run_script(&spec, &script_name, &options.env, &cancel)?;
        Ok(serde_json::json!({}))
    })
    .await
}
