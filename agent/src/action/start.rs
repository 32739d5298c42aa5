//! `start` (`agent/action/start.go`): starts every job process through the supervisor (monit
//! files of the applied jobs, dependencies first) and answers `"started"`, which bosh-cli requires
//! exactly. Processes start in the background; `get_state` reports `starting` until they run.

use std::sync::Arc;

use jobs::apply_spec::ApplySpec;
use serde_json::Value;

use crate::action::{ActionSpec, Context, Invocation, Result, blocking};

/// `start`.
pub const ACTION: ActionSpec = ActionSpec::change("start", |context, invocation| {
    Box::pin(run(context, invocation))
});

async fn run(context: Arc<Context>, _invocation: Invocation) -> Result {
    load_jobs(&context).await?;
    let starting = context.clone();
    blocking(move || Ok(starting.supervisor.start()?)).await?;
    Ok(Value::from("started"))
}

/// Hands the monit files of the applied spec's jobs to the supervisor.
pub async fn load_jobs(context: &Arc<Context>) -> Result<()> {
    let context = context.clone();
    let jobs = blocking(move || {
        let spec = ApplySpec::read(&context.dirs.spec_file())?;
        let mut jobs = Vec::new();
        for job in spec.jobs() {
            let dir = platform::name::join(&context.dirs.jobs_dir(), "job name", &job.name)?;
            let mut file = jobs::monit::read_job_files(&dir)?;
            // A job written for /var/vcap runs under any base dir (the process CPI's VMs).
            let base = context.dirs.base_dir();
            let standard = std::path::Path::new(settings::dirs::DEFAULT_BASE_DIR);
            if base != standard {
                file.relocate(standard, base);
            }
            jobs.push((job.name.clone(), file));
        }
        Ok((context, jobs))
    })
    .await?;
    let (context, jobs) = jobs;
    Ok(context.supervisor.load_jobs(jobs)?)
}
