//! `get_task` (`agent/action/get_task.go`): a task's handle while it runs, its raw value when done, or
//! the error `Task <id> result: <err>` when it failed.

use std::sync::Arc;

use crate::action::{ActionSpec, Context, Invocation, Result, error};
use crate::protocol::{TaskHandle, texts};
use crate::task::TaskState;

/// `get_task`.
pub const ACTION: ActionSpec = ActionSpec::query("get_task", |context, invocation| {
    Box::pin(run(context, invocation))
});

async fn run(context: Arc<Context>, invocation: Invocation) -> Result {
    invocation.args.require(1)?;
    let id: String = invocation.args.get(0)?;
    match context.tasks.state(&id) {
        None => Err(error(texts::task_not_found(&id))),
        Some(TaskState::Running) => Ok(serde_json::to_value(TaskHandle::running(id))?),
        Some(TaskState::Done(value)) => Ok(value),
        Some(TaskState::Failed(message)) => Err(error(texts::task_result(&id, &message))),
    }
}
