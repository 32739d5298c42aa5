//! `compile_package` (`agent/action/compile_package.go`): compile a source package on a compilation
//! VM: `blobstore_id`, `sha1`, `name`, `version`, `deps` → `{"result":{"blobstore_id","sha1"}}`.

use std::collections::BTreeMap;
use std::sync::Arc;

use jobs::compile::{DependencySpec, Request};

use crate::action::{ActionSpec, Context, Invocation, Result};

/// `compile_package`.
pub const ACTION: ActionSpec = ActionSpec::task("compile_package", |context, invocation| {
    Box::pin(run(context, invocation))
});

async fn run(context: Arc<Context>, invocation: Invocation) -> Result {
    invocation.args.require(5)?;
    let blobstore_id: String = invocation.args.get(0)?;
    let sha1: String = invocation.args.get(1)?;
    let name: String = invocation.args.get(2)?;
    let version: String = invocation.args.get(3)?;
    let deps: BTreeMap<String, DependencySpec> = invocation.args.get(4)?;
    let request = Request::compile_package(&blobstore_id, &sha1, &name, &version, &deps)?;
    let compiled = super::compile_package_with_signed_url::compile(&context, &request).await?;
    Ok(compiled.compile_package_value())
}
