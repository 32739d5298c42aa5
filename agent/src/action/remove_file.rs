//! `remove_file` (`agent/action/remove_file.go`): deletes a file or a directory tree (used after
//! `bundle_logs`) and answers its path. A path that does not exist is not an error, as with `rm -rf`.

use std::path::PathBuf;
use std::sync::Arc;

use serde_json::Value;

use crate::action::{ActionSpec, Context, Invocation, Result, blocking};

/// `remove_file`.
pub const ACTION: ActionSpec = ActionSpec::change("remove_file", |context, invocation| {
    Box::pin(run(context, invocation))
});

async fn run(_context: Arc<Context>, invocation: Invocation) -> Result {
    invocation.args.require(1)?;
    let path: String = invocation.args.get(0)?;
    let target = PathBuf::from(&path);
    blocking(move || {
        let removed = match std::fs::symlink_metadata(&target) {
            Ok(metadata) if metadata.is_dir() => std::fs::remove_dir_all(&target),
            Ok(_) => std::fs::remove_file(&target),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(err) => Err(err),
        };
        removed.map_err(|err| crate::action::error(format!("removing {}: {err}", target.display())))
    })
    .await?;
    Ok(Value::from(path))
}
