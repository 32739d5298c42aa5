//! Installing one compiled package, as `agent/applier/packages/compiled_package_applier.go`
//! (`Prepare`, `downloadAndInstall`) does: unless `data/packages/<name>/<hash>` exists, fetch the
//! blob, verify it, and unpack it there.
//!
//! The blob is unpacked into a staging directory that is renamed into place only once complete, so
//! a bad digest, a bad archive or a crash leaves no install directory behind, and the next
//! `prepare` or `apply` tries again.

use std::sync::Arc;

use settings::Dirs;

use crate::archive::{self, ExtractOptions};
use crate::install::bundle::{self, BundleCollection};
use crate::install::download::{self, Fetcher};
use crate::install::owner::Owner;
use crate::install::plan::PackagePlan;

/// Why a package could not be installed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The blob could not be fetched or did not match its digest.
    #[error("fetching package blob")]
    Fetch(#[source] download::Error),
    /// The blob is not a safe tarball, or could not be unpacked.
    #[error("installing package directory")]
    Install(#[source] archive::Error),
    /// Creating, staging or renaming the bundle directory failed.
    #[error(transparent)]
    Bundle(#[from] bundle::Error),
    /// A blocking part panicked or was cancelled.
    #[error("package install task did not finish")]
    Task(#[source] tokio::task::JoinError),
}

/// Installs `package` into `data/packages/<name>/<hash>` unless it is there already; returns
/// whether it installed it. The blob is fetched with `fetcher` into `data/tmp`.
pub async fn install(
    fetcher: &Fetcher,
    dirs: &Dirs,
    package: &PackagePlan,
    owner: Arc<dyn Owner>,
) -> Result<bool, Error> {
    let bundle = BundleCollection::packages(dirs).bundle(&package.name, &package.hash)?;
    let probe = bundle.clone();
    if blocking(move || Ok(probe.is_installed()?)).await? {
        return Ok(false);
    }
    let download = fetcher
        .download(&package.source, &package.digest, &dirs.tmp_dir())
        .await
        .map_err(Error::Fetch)?;
    let name = package.name.clone();
    let installed = blocking(move || {
        let staging = bundle.stage(owner.as_ref())?;
        archive::extract(download.path(), staging.path(), &ExtractOptions::default())
            .map_err(Error::Install)?;
        Ok(staging.commit(owner.as_ref())?)
    })
    .await?;
    tracing::debug!(package = %name, installed, "package installed");
    Ok(installed)
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, Error> + Send + 'static,
) -> Result<T, Error> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(Error::Task)?
}
