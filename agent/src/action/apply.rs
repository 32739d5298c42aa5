//! `apply` (`agent/action/apply.go`): make the instance what the spec says. DHCP networks of the spec
//! get their addresses from the settings; when `configuration_hash` is set, every job and package is
//! installed and enabled and the ones no longer wanted are removed; then the filtered spec is saved as
//! `bosh/spec.json` and `instance/{id,az,name,deployment}` are written. Answers `"applied"`.
//!
//! With a configuration hash, the log rotation of the jobs' logs is set up at the spec's
//! `properties.logging.max_log_file_size` (50M by default), as Go's applier does (a failure is
//! Go's "Logrotate setup failed"), and the supervisor lets go of the old jobs, as Go's
//! `RemoveAllJobs` and monit reload do: their processes are left alone, unwatched, until `start`
//! loads the new jobs' monit files.

use std::sync::Arc;

use jobs::apply_spec::ApplySpec;
use serde_json::Value;

use crate::action::{ActionSpec, Context, Invocation, Result};

/// `apply`.
pub const ACTION: ActionSpec = ActionSpec::task("apply", |context, invocation| {
    Box::pin(run(context, invocation))
});

async fn run(context: Arc<Context>, invocation: Invocation) -> Result {
    invocation.args.require(1)?;
    let spec: ApplySpec = invocation.args.get(0)?;
    let networks = context.settings.settings().networks;
    let applied = context.installer().await?.apply(spec, &networks).await?;
    if !applied.configuration_hash.is_empty() {
        let size = match applied.properties.logging.max_log_file_size.as_str() {
            "" => platform::logrotate::DEFAULT_MAX_LOG_FILE_SIZE.to_owned(),
            size => size.to_owned(),
        };
        let base = context.dirs.base_dir().to_owned();
        let platform = context.platform.clone();
        super::blocking(move || {
            platform
                .setup_logrotate(&base, &size)
                .map_err(|source| -> super::Error { Box::new(LogrotateFailed(source)) })
        })
        .await?;
        context.supervisor.load_jobs(Vec::new())?;
    }
    Ok(Value::from("applied"))
}

/// Go's wrapping of a log rotation failure.
#[derive(Debug, thiserror::Error)]
#[error("Logrotate setup failed")]
struct LogrotateFailed(#[source] platform::logrotate::Error);
