//! `compile_package_with_signed_url` (`agent/action/compile_package_with_signed_url.go`): the same
//! compilation with the source and dependencies fetched from signed URLs and the result PUT to one:
//! `{"result":{"sha1":"<sha1>;sha512:<hex>"}}`.

use std::sync::Arc;

use jobs::compile::{CompiledPackage, Compiler, Request, SignedUrlRequest};

use crate::action::{ActionSpec, Context, Invocation, Result};

/// `compile_package_with_signed_url`.
pub const ACTION: ActionSpec =
    ActionSpec::task("compile_package_with_signed_url", |context, invocation| {
        Box::pin(run(context, invocation))
    });

async fn run(context: Arc<Context>, invocation: Invocation) -> Result {
    invocation.args.require(1)?;
    let signed: SignedUrlRequest = invocation.args.get(0)?;
    let request = Request::compile_package_with_signed_url(&signed)?;
    let compiled = compile(&context, &request).await?;
    Ok(match request.upload {
        jobs::compile::UploadTarget::SignedUrl { .. } => {
            compiled.compile_package_with_signed_url_value()
        }
        jobs::compile::UploadTarget::Blobstore => compiled.compile_package_value(),
    })
}

/// Runs one compilation with the agent's blobstore, signed-URL client and installer.
pub(super) async fn compile(context: &Arc<Context>, request: &Request) -> Result<CompiledPackage> {
    let blobstore = context.blobstore().await?;
    let signed_client = context.signed_client().await?;
    let installer = context.installer().await?;
    let compiler = Compiler {
        dirs: &context.dirs,
        blobstore: blobstore.as_ref(),
        signed_client: &signed_client,
        installer: &installer,
        runner: context.runner.clone(),
    };
    Ok(compiler.compile(request).await?)
}
