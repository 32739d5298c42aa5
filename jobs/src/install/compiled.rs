//! The installer as `compile_package` uses it (`agent/compiler/concrete_compiler.go`'s
//! `packageApplier`): compiled dependencies are installed like `apply` installs packages, then
//! enabled as `packages/<name>`, and everything else is removed before and after a compilation.

use std::sync::Arc;

use crate::blobstore::{BoxError, BoxFuture};
use crate::compile::{DependencyInstaller, Package};
use crate::install::bundle::BundleCollection;
use crate::install::plan::{PackagePlan, bundle_hash};
use crate::install::{Installer, package};

impl DependencyInstaller for Installer {
    fn keep_only<'a>(&'a self, keep: &'a [Package]) -> BoxFuture<'a, Result<(), BoxError>> {
        let wanted: Vec<(String, String)> = keep
            .iter()
            .map(|package| {
                (
                    package.name.clone(),
                    bundle_hash(&package.version, &package.digest),
                )
            })
            .collect();
        let packages = BundleCollection::packages(&self.dirs);
        Box::pin(async move {
            tokio::task::spawn_blocking(move || packages.keep_only(&wanted, true))
                .await
                .map_err(|err| -> BoxError { Box::new(err) })??;
            Ok(())
        })
    }

    fn install<'a>(&'a self, dependency: &'a Package) -> BoxFuture<'a, Result<(), BoxError>> {
        Box::pin(async move {
            let plan = PackagePlan {
                name: dependency.name.clone(),
                version: dependency.version.clone(),
                digest: dependency.digest.clone(),
                source: dependency.source.clone(),
                hash: bundle_hash(&dependency.version, &dependency.digest),
            };
            package::install(&self.fetcher, &self.dirs, &plan, self.owner.clone()).await?;
            let bundle = BundleCollection::packages(&self.dirs).bundle(&plan.name, &plan.hash)?;
            let owner = Arc::clone(&self.owner);
            tokio::task::spawn_blocking(move || bundle.enable(owner.as_ref()))
                .await
                .map_err(|err| -> BoxError { Box::new(err) })??;
            Ok(())
        })
    }
}
