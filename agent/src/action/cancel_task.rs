//! `cancel_task` (`agent/action/cancel_task.go`): asks a task to stop and answers `canceled`; tasks of
//! actions that cannot be cancelled give `not supported`, unknown ids the not-found text.

use std::sync::Arc;

use serde_json::Value;

use crate::action::{ActionSpec, Context, Invocation, Result, error};
use crate::protocol::texts;
use crate::task::CancelError;

/// `cancel_task`.
pub const ACTION: ActionSpec = ActionSpec::query("cancel_task", |context, invocation| {
    Box::pin(run(context, invocation))
});

async fn run(context: Arc<Context>, invocation: Invocation) -> Result {
    invocation.args.require(1)?;
    let id: String = invocation.args.get(0)?;
    match context.tasks.cancel(&id) {
        Ok(()) => Ok(Value::from("canceled")),
        Err(CancelError::NotFound) => Err(error(texts::task_not_found(&id))),
        Err(CancelError::NotSupported) => Err(error(texts::NOT_SUPPORTED)),
    }
}
