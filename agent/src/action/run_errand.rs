//! `run_errand` (`agent/action/run_errand.go`): runs `jobs/<errand>/bin/run` (the spec's job without a
//! name) and answers `{"stdout", "stderr", "exit_code"}`; a non-zero exit is a result, not an error.
//! `cancel_task` stops it (SIGTERM, then SIGKILL after 10 s).

use std::sync::Arc;

use jobs::apply_spec::ApplySpec;

use crate::action::{ActionSpec, Context, Invocation, Result, blocking, cancel_token};

/// `run_errand`.
pub const ACTION: ActionSpec = ActionSpec::task("run_errand", |context, invocation| {
    Box::pin(run(context, invocation))
})
.cancellable();

async fn run(context: Arc<Context>, invocation: Invocation) -> Result {
    let errand: Option<String> = invocation.args.optional(0)?;
    let cancel = cancel_token(invocation.cancel);
    blocking(move || {
        let spec = ApplySpec::read(&context.dirs.spec_file())?;
        let result = context
            .job_scripts()
            .run_errand(&spec, errand.as_deref(), &cancel)?;
        Ok(serde_json::to_value(result)?)
    })
    .await
}
