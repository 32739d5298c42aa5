//! Installing what an apply spec asks for: the library behind the `prepare` and `apply` actions
//! (`agent/applier/applier.go`'s `concrete_applier.go`, `agent/action/prepare.go`,
//! `agent/action/apply.go`; reference/bosh-agent.md §3.2).
//!
//! * [`Installer::prepare`]: download and install every job and package of the spec that is not
//!   installed yet, `env.bosh.parallel` at a time, then delete the rendered templates archive from
//!   the local blob directories. Nothing is enabled.
//! * [`Installer::apply`]: resolve the spec's DHCP networks ([`network`]); if `configuration_hash`
//!   is not empty, install what is missing, enable every job (with its directories and package
//!   links), delete the job source blob, keep only the wanted jobs, enable every package and keep
//!   only the wanted packages; then persist the spec as `bosh/spec.json` and write
//!   `instance/{id,az,name,deployment}` ([`instance`]).
//!
//! Not here, because `jobs::install` does not know the supervisor: removing the monit job files
//! before applying, reloading the supervisor and writing the logrotate config after. An action that
//! needs Go's exact order calls [`Installer::apply_jobs_and_packages`] and [`Installer::persist`]
//! around those steps instead of [`Installer::apply`].
//!
//! The pieces: [`plan`] (what the spec installs, validated before the first write; pure),
//! [`bundle`] (install directories and enable links, Go's `bundlecollection`), [`download`]
//! (blobs into `data/tmp`), [`package`] and [`job`] (one package, one job), [`owner`] (the
//! `root:vcap` seam the platform implements).
//!
//! The methods are async: downloads wait on the network, and every file operation runs in
//! `spawn_blocking`. A caller on a blocking thread runs them with
//! `tokio::runtime::Handle::block_on`.

pub mod bundle;
mod compiled;
pub mod download;
pub mod instance;
pub mod job;
pub mod network;
pub mod owner;
pub mod package;
pub mod plan;

use std::future::Future;
use std::sync::Arc;

use tokio::task::JoinSet;

use settings::Dirs;
use settings::model::{DEFAULT_PARALLEL, Networks};

use crate::apply_spec::ApplySpec;
use crate::blobstore::{Blobstore, BoxFuture, SignedClient};

pub use bundle::{Bundle, BundleCollection};
pub use download::Fetcher;
pub use network::resolve_dhcp_networks;
pub use owner::{KeepOwners, Owner};
pub use plan::Plan;

/// Installs jobs and packages under one base dir.
#[derive(Debug, Clone)]
pub struct Installer {
    dirs: Dirs,
    fetcher: Fetcher,
    owner: Arc<dyn Owner>,
    parallel: usize,
}

/// Why `prepare` or `apply` failed. Texts follow Go's wrapping (`Preparing job <name>`, `Keeping only
/// needed packages`), in lower case.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The spec names something that cannot be installed; nothing was written.
    #[error("invalid apply spec")]
    Plan(#[source] plan::Error),
    /// A spec network is not in the settings; nothing was written.
    #[error("resolving dynamic networks")]
    Network(#[source] network::Error),
    /// A package could not be downloaded or installed.
    #[error("preparing package '{package}'")]
    PreparePackage {
        /// The package.
        package: String,
        /// The cause.
        #[source]
        source: Box<package::Error>,
    },
    /// The rendered templates archive could not be downloaded or verified.
    #[error("getting job source from blobstore")]
    Templates(#[source] download::Error),
    /// A job could not be installed from the rendered templates archive.
    #[error("preparing job '{job}'")]
    PrepareJob {
        /// The job.
        job: String,
        /// The cause.
        #[source]
        source: Box<job::Error>,
    },
    /// A job could not be enabled.
    #[error("applying job '{job}'")]
    ApplyJob {
        /// The job.
        job: String,
        /// The cause.
        #[source]
        source: Box<job::Error>,
    },
    /// The rendered templates archive could not be deleted from the local blob directories.
    #[error("removing job source blobs")]
    DeleteSourceBlobs(#[source] download::Error),
    /// Unwanted jobs could not be disabled or deleted.
    #[error("keeping only needed jobs")]
    KeepJobs(#[source] bundle::Error),
    /// A package could not be enabled.
    #[error("applying package '{package}'")]
    ApplyPackage {
        /// The package.
        package: String,
        /// The cause.
        #[source]
        source: bundle::Error,
    },
    /// Unwanted packages could not be disabled or deleted.
    #[error("keeping only needed packages")]
    KeepPackages(#[source] bundle::Error),
    /// The spec or the instance files could not be written.
    #[error("persisting apply spec")]
    Persist(#[source] instance::Error),
    /// A task of the installer panicked or was cancelled.
    #[error("install task did not finish")]
    Task(#[source] tokio::task::JoinError),
}

/// `pub type Result<T>` of this module.
pub type Result<T> = std::result::Result<T, Error>;

impl Installer {
    /// An installer under `dirs` fetching blob ids from `blobstore` (as built by
    /// [`crate::blobstore::from_settings`]), without a signed URL client, leaving owners as they
    /// are ([`KeepOwners`]) and fetching [`DEFAULT_PARALLEL`] blobs at a time.
    pub fn new(dirs: Dirs, blobstore: Arc<dyn Blobstore>) -> Installer {
        Installer {
            dirs,
            fetcher: Fetcher::new(blobstore, None),
            owner: Arc::new(KeepOwners),
            parallel: DEFAULT_PARALLEL as usize,
        }
    }

    /// Fetches packages that have a `signed_url` with `client`; without one they fail.
    pub fn with_signed_client(mut self, client: SignedClient) -> Installer {
        self.fetcher = self.fetcher.with_signed_client(client);
        self
    }

    /// Gives installed files to `root:vcap` through `owner` (the Linux platform's).
    pub fn with_owner(mut self, owner: Arc<dyn Owner>) -> Installer {
        self.owner = owner;
        self
    }

    /// Installs `parallel` jobs and packages at a time (`env.bosh.parallel`); values below 1 mean
    /// one at a time (Go's pool of zero workers silently does nothing).
    pub fn with_parallel(mut self, parallel: i64) -> Installer {
        self.parallel = usize::try_from(parallel).unwrap_or(1).max(1);
        self
    }

    /// The base dir's paths.
    pub fn dirs(&self) -> &Dirs {
        &self.dirs
    }

    /// The `prepare` action: installs every job and package of `spec` not installed yet, then
    /// deletes the rendered templates archive from the local blob directories.
    pub async fn prepare(&self, spec: &ApplySpec) -> Result<()> {
        let plan = Plan::from_spec(spec).map_err(Error::Plan)?;
        self.install_missing(&plan).await?;
        let dirs = self.dirs.clone();
        blocking(move || delete_source_blobs(&dirs, &plan)).await?;
        tracing::debug!("prepared apply spec");
        Ok(())
    }

    /// The `apply` action without the supervisor's steps: resolves the DHCP networks of `spec`
    /// against `settings_networks`, installs and enables its jobs and packages if its
    /// `configuration_hash` is not empty (removing the others), then persists it. Returns the spec
    /// as persisted.
    pub async fn apply(&self, spec: ApplySpec, settings_networks: &Networks) -> Result<ApplySpec> {
        let mut spec = spec;
        spec.networks =
            resolve_dhcp_networks(&spec.networks, settings_networks).map_err(Error::Network)?;
        if spec.configuration_hash.is_empty() {
            tracing::debug!("no configuration hash, jobs and packages left as they are");
        } else {
            self.apply_jobs_and_packages(&spec).await?;
        }
        self.persist(&spec).await?;
        tracing::info!(
            jobs = spec.jobs().len(),
            packages = spec.packages.len(),
            "applied apply spec"
        );
        Ok(spec)
    }

    /// Installs what `spec` needs, enables every job and package, deletes the job source blob, and
    /// keeps only the wanted jobs and packages (Go's `concreteApplier.Apply`, monit and logrotate
    /// aside).
    pub async fn apply_jobs_and_packages(&self, spec: &ApplySpec) -> Result<()> {
        let plan = Plan::from_spec(spec).map_err(Error::Plan)?;
        self.install_missing(&plan).await?;
        let dirs = self.dirs.clone();
        let owner = self.owner.clone();
        blocking(move || enable_and_keep_only(&dirs, &plan, owner.as_ref())).await
    }

    /// Writes `bosh/spec.json` and `instance/{id,az,name,deployment}` from `spec`.
    pub async fn persist(&self, spec: &ApplySpec) -> Result<()> {
        let dirs = self.dirs.clone();
        let spec = spec.clone();
        blocking(move || {
            instance::write_spec(&dirs, &spec)
                .and_then(|()| instance::write_instance_files(&dirs, &spec))
                .map_err(Error::Persist)
        })
        .await
    }

    /// Installs the missing packages (one task each) and jobs (one task: the archive is fetched
    /// once), at most `parallel` tasks at a time.
    async fn install_missing(&self, plan: &Plan) -> Result<()> {
        let mut tasks: Vec<BoxFuture<'static, Result<()>>> = Vec::new();
        for package in &plan.packages {
            let installer = self.clone();
            let package = package.clone();
            tasks.push(Box::pin(async move {
                package::install(
                    &installer.fetcher,
                    &installer.dirs,
                    &package,
                    installer.owner.clone(),
                )
                .await
                .map(|_| ())
                .map_err(|source| Error::PreparePackage {
                    package: package.name.clone(),
                    source: Box::new(source),
                })
            }));
        }
        if let Some(templates) = &plan.templates {
            let installer = self.clone();
            let templates = templates.clone();
            let jobs = plan.jobs.clone();
            tasks.push(Box::pin(async move {
                installer.install_jobs(&templates, jobs).await
            }));
        }
        run_bounded(self.parallel, tasks).await
    }

    /// Installs the jobs of `jobs` that are missing from the archive of `templates`, fetched once
    /// and only if a job is missing.
    async fn install_jobs(
        &self,
        templates: &plan::TemplatesPlan,
        jobs: Vec<plan::JobPlan>,
    ) -> Result<()> {
        let dirs = self.dirs.clone();
        let missing = blocking(move || {
            let collection = BundleCollection::jobs(&dirs);
            let mut missing = Vec::new();
            for job in jobs {
                let installed = collection
                    .bundle(&job.name, &job.hash)
                    .and_then(|bundle| bundle.is_installed())
                    .map_err(|source| Error::PrepareJob {
                        job: job.name.clone(),
                        source: Box::new(job::Error::Bundle(source)),
                    })?;
                if !installed {
                    missing.push(job);
                }
            }
            Ok(missing)
        })
        .await?;
        if missing.is_empty() {
            return Ok(());
        }
        let source = plan::BlobSource::Blobstore {
            id: templates.blobstore_id.clone(),
        };
        let archive = self
            .fetcher
            .download(&source, &templates.digest, &self.dirs.tmp_dir())
            .await
            .map_err(Error::Templates)?;
        let dirs = self.dirs.clone();
        let owner = self.owner.clone();
        blocking(move || {
            for job in &missing {
                job::install(&dirs, archive.path(), job, owner.as_ref()).map_err(|source| {
                    Error::PrepareJob {
                        job: job.name.clone(),
                        source: Box::new(source),
                    }
                })?;
            }
            Ok(())
        })
        .await
    }
}

/// Enables every job and package of `plan` and removes the others, in Go's order (blocking).
fn enable_and_keep_only(dirs: &Dirs, plan: &Plan, owner: &dyn Owner) -> Result<()> {
    let packages = plan.package_bundles();
    for job in &plan.jobs {
        job::enable(dirs, job, &packages, owner).map_err(|source| Error::ApplyJob {
            job: job.name.clone(),
            source: Box::new(source),
        })?;
    }
    delete_source_blobs(dirs, plan)?;
    BundleCollection::jobs(dirs)
        .keep_only(&plan.job_bundles(), true)
        .map_err(Error::KeepJobs)?;
    let collection = BundleCollection::packages(dirs);
    for package in &plan.packages {
        collection
            .bundle(&package.name, &package.hash)
            .and_then(|bundle| bundle.enable(owner))
            .map_err(|source| Error::ApplyPackage {
                package: package.name.clone(),
                source,
            })?;
    }
    collection
        .keep_only(&packages, true)
        .map_err(Error::KeepPackages)
}

/// Deletes the rendered templates archive from the local blob directories, if the plan has jobs
/// (Go's `DeleteSourceBlobs`, blocking).
fn delete_source_blobs(dirs: &Dirs, plan: &Plan) -> Result<()> {
    if let Some(templates) = &plan.templates {
        if let Some(path) = download::remove_local_blob(dirs, &templates.blobstore_id)
            .map_err(Error::DeleteSourceBlobs)?
        {
            tracing::debug!(path = %path.display(), "removed job source blob");
        }
    }
    Ok(())
}

/// Runs `tasks`, at most `limit` at a time. After the first failure no new task starts; the
/// running ones are awaited, and the first error is returned (later ones are logged), as bosh-utils
/// `work.Pool.ParallelDo` stops handing out work.
async fn run_bounded<F>(limit: usize, tasks: Vec<F>) -> Result<()>
where
    F: Future<Output = Result<()>> + Send + 'static,
{
    let mut pending = tasks.into_iter();
    let mut running = JoinSet::new();
    let mut first_error = None;
    loop {
        while first_error.is_none() && running.len() < limit.max(1) {
            let Some(task) = pending.next() else {
                break;
            };
            running.spawn(task);
        }
        let Some(joined) = running.join_next().await else {
            break;
        };
        if let Err(err) = joined.map_err(Error::Task).and_then(|result| result) {
            if first_error.is_none() {
                first_error = Some(err);
            } else {
                tracing::warn!(
                    error = %settings::source::error_chain(&err),
                    "another install task failed"
                );
            }
        }
    }
    first_error.map_or(Ok(()), Err)
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(Error::Task)?
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn run_bounded_never_runs_more_than_the_limit_and_stops_after_a_failure() {
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let started = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..10)
            .map(|index| {
                let (running, most, started) = (running.clone(), most.clone(), started.clone());
                async move {
                    started.fetch_add(1, Ordering::SeqCst);
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    tokio::task::yield_now().await;
                    running.fetch_sub(1, Ordering::SeqCst);
                    if index == 3 {
                        Err(Error::Plan(plan::Error::NoTemplatesBlob))
                    } else {
                        Ok(())
                    }
                }
            })
            .collect();
        let err = run_bounded(2, tasks).await.unwrap_err();
        assert!(matches!(err, Error::Plan(_)), "{err:?}");
        assert!(most.load(Ordering::SeqCst) <= 2);
        // Task 3 fails while at most one later task has started.
        assert!(started.load(Ordering::SeqCst) <= 5, "{started:?}");

        let tasks: Vec<_> = (0..3).map(|_| async { Ok(()) }).collect();
        run_bounded(0, tasks).await.unwrap();
    }

    #[test]
    fn parallel_is_at_least_one() {
        let installer = Installer::new(
            Dirs::new("/var/vcap"),
            Arc::new(crate::blobstore::DummyBlobstore),
        );
        assert_eq!(installer.parallel, 5);
        assert_eq!(installer.clone().with_parallel(0).parallel, 1);
        assert_eq!(installer.clone().with_parallel(-3).parallel, 1);
        assert_eq!(installer.with_parallel(12).parallel, 12);
    }
}
