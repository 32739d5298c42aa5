//! Bundles: installed versions of packages and jobs, and the symlinks that enable one version of
//! each. Follows `agent/applier/bundlecollection/file_bundle.go` and `file_bundle_collection.go`.
//!
//! A bundle `<name>` at `<hash>` is installed as the directory `<install root>/<name>/<hash>` and
//! enabled as the symlink `<enable root>/<name>` pointing at it (an absolute path, as Go writes it):
//! * packages: `data/packages/<name>/<hash>`, enabled as `packages/<name>` (dirs 0755);
//! * jobs: `data/jobs/<name>/<hash>`, enabled as `jobs/<name>` (dirs 0750);
//! * a job's view of the packages: the same package directories, enabled as
//!   `<job install dir>/packages/<name>` (what `jobs/<job>/packages/<name>` resolves to).
//!
//! Where we differ from Go, on purpose:
//! * An install is staged in a hidden directory next to its final place and renamed there only when
//!   complete, so "installed" (the directory exists) never means half-extracted.
//! * Enabling swaps the symlink atomically (a new link under a temporary name renamed over the old
//!   one); Go removes the old link first.
//! * Keeping only the wanted bundles also removes links into the install root that name no wanted
//!   bundle (a link to a bundle already deleted, a temporary link left by a crash) and empty
//!   `<name>` directories. Links pointing anywhere else and entries that are not links are left
//!   alone: nothing outside the two roots is ever touched, and nothing is followed through a link.

use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::os::unix::fs::DirBuilderExt as _;
use std::path::{Path, PathBuf};

use tempfile::TempDir;

use settings::Dirs;

use crate::install::owner::Owner;

/// Mode of package bundle directories and of the directories they are enabled in.
pub const PACKAGES_MODE: u32 = 0o755;

/// Mode of job bundle directories and of `jobs/`.
pub const JOBS_MODE: u32 = 0o750;

/// Installed versions of one kind of bundle and where they are enabled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleCollection {
    name_kind: &'static str,
    install_root: PathBuf,
    enable_root: PathBuf,
    mode: u32,
}

/// One version of one bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bundle {
    name: String,
    hash: String,
    install_path: PathBuf,
    enable_path: PathBuf,
    mode: u32,
}

/// A hidden directory next to a bundle's install path, to fill and then [`commit`](Staging::commit).
/// Dropped without a commit, it is deleted.
#[derive(Debug)]
pub struct Staging {
    /// `None` once committed.
    dir: Option<TempDir>,
    install_path: PathBuf,
}

/// Why a bundle operation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A bundle name or hash that cannot be one path component.
    #[error(transparent)]
    Name(#[from] platform::name::Error),
    /// A file operation failed.
    #[error("{action} {}", .path.display())]
    Io {
        /// What was done (`creating`, `removing`, `renaming a staged bundle to`, ...).
        action: &'static str,
        /// The path it was done to.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// Enabling a bundle that is not installed (Go: `bundle must be installed`).
    #[error("bundle must be installed: {} does not exist", .path.display())]
    NotInstalled {
        /// The missing install directory.
        path: PathBuf,
    },
}

/// `pub type Result<T>` of this module.
pub type Result<T> = std::result::Result<T, Error>;

impl BundleCollection {
    /// Packages: `data/packages/<name>/<hash>`, enabled as `packages/<name>`.
    pub fn packages(dirs: &Dirs) -> BundleCollection {
        BundleCollection {
            name_kind: "package name",
            install_root: dirs.data_packages_dir(),
            enable_root: dirs.packages_dir(),
            mode: PACKAGES_MODE,
        }
    }

    /// Jobs: `data/jobs/<name>/<hash>`, enabled as `jobs/<name>`.
    pub fn jobs(dirs: &Dirs) -> BundleCollection {
        BundleCollection {
            name_kind: "job name",
            install_root: dirs.data_jobs_dir(),
            enable_root: dirs.jobs_dir(),
            mode: JOBS_MODE,
        }
    }

    /// The packages as one job sees them: `data/packages/<name>/<hash>`, enabled as
    /// `<job_install_path>/packages/<name>` (`compiled_package_applier_provider.go` `JobSpecific`).
    pub fn job_packages(dirs: &Dirs, job_install_path: &Path) -> BundleCollection {
        BundleCollection {
            name_kind: "package name",
            install_root: dirs.data_packages_dir(),
            enable_root: job_install_path.join("packages"),
            mode: PACKAGES_MODE,
        }
    }

    /// Where the bundles are installed.
    pub fn install_root(&self) -> &Path {
        &self.install_root
    }

    /// Where they are enabled.
    pub fn enable_root(&self) -> &Path {
        &self.enable_root
    }

    /// The bundle `name` at `hash`; both must be plain path components.
    pub fn bundle(&self, name: &str, hash: &str) -> Result<Bundle> {
        platform::name::check(self.name_kind, name)?;
        platform::name::check("bundle hash", hash)?;
        Ok(Bundle {
            name: name.to_owned(),
            hash: hash.to_owned(),
            install_path: self.install_root.join(name).join(hash),
            enable_path: self.enable_root.join(name),
            mode: self.mode,
        })
    }

    /// Every installed `(name, hash)`, sorted: the entries of `<install root>/*/*`, where the first
    /// level must be a real directory (never a symlink) and names must be UTF-8.
    pub fn installed(&self) -> Result<Vec<(String, String)>> {
        let mut installed = Vec::new();
        for (name, name_path) in entries(&self.install_root)? {
            let is_dir = fs::symlink_metadata(&name_path)
                .map(|meta| meta.is_dir())
                .map_err(|source| io_error("reading", &name_path, source))?;
            if !is_dir {
                continue;
            }
            for (hash, _) in entries(&name_path)? {
                installed.push((name.clone(), hash));
            }
        }
        installed.sort();
        Ok(installed)
    }

    /// Disables every link of the enable root that points into the install root but not at a
    /// wanted bundle under its own name, then, if `uninstall`, deletes every installed bundle that
    /// is not wanted (and `<name>` directories left empty). Go disables before uninstalling so a
    /// failed disable is retried on the next apply (`compiled_package_applier.go` `KeepOnly`).
    pub fn keep_only(&self, wanted: &[(String, String)], uninstall: bool) -> Result<()> {
        let wanted: BTreeSet<(&str, &str)> = wanted
            .iter()
            .map(|(name, hash)| (name.as_str(), hash.as_str()))
            .collect();
        for (link_name, link_path) in entries(&self.enable_root)? {
            let target = match fs::read_link(&link_path) {
                Ok(target) => target,
                // Not a symlink: not ours to remove.
                Err(err) if err.kind() == io::ErrorKind::InvalidInput => continue,
                Err(err) if err.kind() == io::ErrorKind::NotFound => continue,
                Err(source) => return Err(io_error("reading link", &link_path, source)),
            };
            let Some((name, hash)) = self.bundle_of(&target) else {
                continue;
            };
            if name == link_name && wanted.contains(&(name.as_str(), hash.as_str())) {
                continue;
            }
            remove_if_present(&link_path, |path| fs::remove_file(path))
                .map_err(|source| io_error("removing", &link_path, source))?;
            tracing::debug!(link = %link_path.display(), "disabled bundle");
        }
        if !uninstall {
            return Ok(());
        }
        let mut names = BTreeSet::new();
        for (name, hash) in self.installed()? {
            if !wanted.contains(&(name.as_str(), hash.as_str())) {
                let path = self.install_root.join(&name).join(&hash);
                remove_tree(&path)?;
                tracing::debug!(path = %path.display(), "uninstalled bundle");
            }
            names.insert(name);
        }
        for name in names {
            let path = self.install_root.join(&name);
            // Only an empty directory goes; a failure just means something is still installed.
            let _ = fs::remove_dir(&path);
        }
        Ok(())
    }

    /// The `(name, hash)` a link target names, if it is `<install root>/<name>/<hash>`.
    fn bundle_of(&self, target: &Path) -> Option<(String, String)> {
        let hash_dir = target.parent()?;
        let root = hash_dir.parent()?;
        if root != self.install_root {
            return None;
        }
        let name = hash_dir.file_name()?.to_str()?;
        let hash = target.file_name()?.to_str()?;
        Some((name.to_owned(), hash.to_owned()))
    }
}

impl Bundle {
    /// The bundle's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its hash, the name of its install directory.
    pub fn hash(&self) -> &str {
        &self.hash
    }

    /// `<install root>/<name>/<hash>`.
    pub fn install_path(&self) -> &Path {
        &self.install_path
    }

    /// `<enable root>/<name>`.
    pub fn enable_path(&self) -> &Path {
        &self.enable_path
    }

    /// Whether the install directory exists (Go's `IsInstalled`).
    pub fn is_installed(&self) -> Result<bool> {
        match fs::symlink_metadata(&self.install_path) {
            Ok(_) => Ok(true),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(source) => Err(io_error("reading", &self.install_path, source)),
        }
    }

    /// Creates the install directory's parents (with the collection's mode, the last one given to
    /// `owner`) and an empty hidden directory beside the install path to fill.
    pub fn stage(&self, owner: &dyn Owner) -> Result<Staging> {
        let parent = self.install_path.parent().unwrap_or(Path::new("/"));
        create_dirs(parent, self.mode)?;
        owner
            .set_root_vcap(parent)
            .map_err(|source| io_error("setting the owner of", parent, source))?;
        let dir = tempfile::Builder::new()
            .prefix(&format!(".staging-{}-", self.hash))
            .tempdir_in(parent)
            .map_err(|source| io_error("creating a staging directory in", parent, source))?;
        Ok(Staging {
            dir: Some(dir),
            install_path: self.install_path.clone(),
        })
    }

    /// Points `<enable root>/<name>` at the install directory, atomically; creates the enable root
    /// (collection mode, given to `owner`). Anything but a symlink in the way is removed first, as
    /// Go's `Symlink` does. Enabling an enabled bundle changes nothing.
    pub fn enable(&self, owner: &dyn Owner) -> Result<()> {
        if !self.is_installed()? {
            return Err(Error::NotInstalled {
                path: self.install_path.clone(),
            });
        }
        let enable_root = self.enable_path.parent().unwrap_or(Path::new("/"));
        create_dirs(enable_root, self.mode)?;
        owner
            .set_root_vcap(enable_root)
            .map_err(|source| io_error("setting the owner of", enable_root, source))?;
        if fs::read_link(&self.enable_path).is_ok_and(|target| target == self.install_path) {
            return Ok(());
        }
        let temporary = enable_root.join(format!(
            ".{}.enable-{}",
            self.name,
            uuid::Uuid::new_v4().simple()
        ));
        std::os::unix::fs::symlink(&self.install_path, &temporary)
            .map_err(|source| io_error("creating symlink", &temporary, source))?;
        let swapped = (|| {
            let is_real_dir = fs::symlink_metadata(&self.enable_path)
                .map(|meta| meta.is_dir())
                .unwrap_or(false);
            if is_real_dir {
                fs::remove_dir_all(&self.enable_path)
                    .map_err(|source| io_error("removing", &self.enable_path, source))?;
            }
            fs::rename(&temporary, &self.enable_path)
                .map_err(|source| io_error("enabling bundle as", &self.enable_path, source))
        })();
        if swapped.is_err() {
            // Best effort: a leftover is a link into the install root, removed by `keep_only`.
            let _ = fs::remove_file(&temporary);
        }
        swapped
    }

    /// Removes `<enable root>/<name>` if it points at this bundle (Go's `Disable`); returns whether
    /// it did.
    pub fn disable(&self) -> Result<bool> {
        match fs::read_link(&self.enable_path) {
            Ok(target) if target == self.install_path => {
                remove_if_present(&self.enable_path, |path| fs::remove_file(path))
                    .map_err(|source| io_error("removing", &self.enable_path, source))?;
                Ok(true)
            }
            Ok(_) => Ok(false),
            Err(err)
                if matches!(
                    err.kind(),
                    io::ErrorKind::NotFound | io::ErrorKind::InvalidInput
                ) =>
            {
                Ok(false)
            }
            Err(source) => Err(io_error("reading link", &self.enable_path, source)),
        }
    }

    /// Deletes the install directory (Go's `Uninstall`); a missing one is not an error.
    pub fn uninstall(&self) -> Result<()> {
        remove_tree(&self.install_path)
    }
}

impl Staging {
    /// The directory to fill.
    pub fn path(&self) -> &Path {
        self.dir
            .as_ref()
            .map_or(self.install_path.as_path(), |dir| dir.path())
    }

    /// Gives the filled directory to `owner` and renames it to the install path. Returns `false`
    /// (and deletes the staged copy) if the bundle was installed meanwhile by someone else.
    pub fn commit(mut self, owner: &dyn Owner) -> Result<bool> {
        let Some(staged) = self.dir.as_ref().map(|dir| dir.path().to_owned()) else {
            return Ok(false);
        };
        owner
            .set_root_vcap(&staged)
            .map_err(|source| io_error("setting the owner of", &staged, source))?;
        match fs::rename(&staged, &self.install_path) {
            Ok(()) => {
                // The directory is now the install path: nothing is left to clean up.
                if let Some(dir) = self.dir.take() {
                    let _ = dir.keep();
                }
                Ok(true)
            }
            // Someone else installed it meanwhile; dropping `self` deletes our copy.
            Err(_) if fs::symlink_metadata(&self.install_path).is_ok() => Ok(false),
            Err(source) => Err(io_error(
                "renaming a staged bundle to",
                &self.install_path,
                source,
            )),
        }
    }
}

impl Drop for Staging {
    /// Deletes an uncommitted staging directory, and its parent `<install root>/<name>` if that
    /// is left empty, so a failed install leaves no trace.
    fn drop(&mut self) {
        if let Some(dir) = self.dir.take() {
            let parent = dir.path().parent().map(Path::to_owned);
            drop(dir);
            if let Some(parent) = parent {
                // Only an empty directory goes; another version may be installed there.
                let _ = fs::remove_dir(parent);
            }
        }
    }
}

/// Creates `dir` and its missing parents with `mode` (before the umask).
pub(crate) fn create_dirs(dir: &Path, mode: u32) -> Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(dir)
        .map_err(|source| io_error("creating", dir, source))
}

fn io_error(action: &'static str, path: &Path, source: io::Error) -> Error {
    Error::Io {
        action,
        path: path.to_owned(),
        source,
    }
}

/// The UTF-8 names in `dir` with their paths; a missing `dir` has none. Other names cannot be
/// bundles we made, and are left alone.
fn entries(dir: &Path) -> Result<Vec<(String, PathBuf)>> {
    let read = match fs::read_dir(dir) {
        Ok(read) => read,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(io_error("listing", dir, source)),
    };
    let mut entries = Vec::new();
    for entry in read {
        let entry = entry.map_err(|source| io_error("listing", dir, source))?;
        if let Ok(name) = entry.file_name().into_string() {
            entries.push((name, entry.path()));
        }
    }
    entries.sort();
    Ok(entries)
}

/// Deletes `path`, a directory tree or anything else, without following a symlink at `path`.
fn remove_tree(path: &Path) -> Result<()> {
    let is_dir = match fs::symlink_metadata(path) {
        Ok(meta) => meta.is_dir(),
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(source) => return Err(io_error("reading", path, source)),
    };
    let removed = if is_dir {
        remove_if_present(path, |path| fs::remove_dir_all(path))
    } else {
        remove_if_present(path, |path| fs::remove_file(path))
    };
    removed.map_err(|source| io_error("removing", path, source))
}

fn remove_if_present(path: &Path, remove: impl Fn(&Path) -> io::Result<()>) -> io::Result<()> {
    match remove(path) {
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::os::unix::fs::PermissionsExt as _;

    use crate::install::owner::KeepOwners;

    fn install(collection: &BundleCollection, name: &str, hash: &str) -> Bundle {
        let bundle = collection.bundle(name, hash).unwrap();
        let staging = bundle.stage(&KeepOwners).unwrap();
        fs::write(staging.path().join("file"), hash).unwrap();
        assert!(staging.commit(&KeepOwners).unwrap());
        bundle
    }

    fn mode(path: &Path) -> u32 {
        fs::symlink_metadata(path).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn paths_follow_the_go_layout() {
        let dirs = Dirs::new("/var/vcap");
        let bundle = BundleCollection::packages(&dirs)
            .bundle("ruby", "abc")
            .unwrap();
        assert_eq!(
            bundle.install_path(),
            Path::new("/var/vcap/data/packages/ruby/abc")
        );
        assert_eq!(bundle.enable_path(), Path::new("/var/vcap/packages/ruby"));
        let bundle = BundleCollection::jobs(&dirs).bundle("web", "def").unwrap();
        assert_eq!(
            bundle.install_path(),
            Path::new("/var/vcap/data/jobs/web/def")
        );
        assert_eq!(bundle.enable_path(), Path::new("/var/vcap/jobs/web"));
        let job_packages =
            BundleCollection::job_packages(&dirs, Path::new("/var/vcap/data/jobs/web/def"));
        let bundle = job_packages.bundle("ruby", "abc").unwrap();
        assert_eq!(
            bundle.install_path(),
            Path::new("/var/vcap/data/packages/ruby/abc")
        );
        assert_eq!(
            bundle.enable_path(),
            Path::new("/var/vcap/data/jobs/web/def/packages/ruby")
        );
    }

    #[test]
    fn outside_names_cannot_leave_the_roots() {
        let collection = BundleCollection::packages(&Dirs::new("/var/vcap"));
        for (name, hash) in [("..", "a"), ("a/b", "c"), ("", "c"), ("a", "../b")] {
            assert!(
                matches!(collection.bundle(name, hash), Err(Error::Name(_))),
                "{name:?} {hash:?}"
            );
        }
    }

    #[test]
    fn staged_installs_appear_whole_and_enable_swaps_the_link() {
        let base = tempfile::tempdir().unwrap();
        let dirs = Dirs::new(base.path());
        let collection = BundleCollection::jobs(&dirs);
        let first = collection.bundle("web", "h1").unwrap();
        assert!(!first.is_installed().unwrap());
        assert_eq!(
            first.enable(&KeepOwners).unwrap_err().to_string(),
            format!(
                "bundle must be installed: {} does not exist",
                first.install_path().display()
            )
        );

        let staging = first.stage(&KeepOwners).unwrap();
        assert!(!first.is_installed().unwrap());
        fs::write(staging.path().join("file"), "1").unwrap();
        assert!(staging.commit(&KeepOwners).unwrap());
        assert!(first.is_installed().unwrap());
        assert_eq!(mode(&dirs.data_jobs_dir().join("web")) & 0o027, 0);

        first.enable(&KeepOwners).unwrap();
        first.enable(&KeepOwners).unwrap();
        assert_eq!(
            fs::read_link(first.enable_path()).unwrap(),
            first.install_path()
        );

        let second = install(&collection, "web", "h2");
        second.enable(&KeepOwners).unwrap();
        assert_eq!(
            fs::read_link(second.enable_path()).unwrap(),
            second.install_path()
        );
        // No temporary link is left next to it.
        let names: Vec<_> = entries(&dirs.jobs_dir())
            .unwrap()
            .into_iter()
            .map(|(name, _)| name)
            .collect();
        assert_eq!(names, ["web"]);

        assert!(!first.disable().unwrap());
        assert!(second.disable().unwrap());
        assert!(!second.enable_path().exists());
    }

    #[test]
    fn a_second_install_of_the_same_bundle_keeps_the_first() {
        let base = tempfile::tempdir().unwrap();
        let collection = BundleCollection::packages(&Dirs::new(base.path()));
        let bundle = collection.bundle("ruby", "h1").unwrap();
        let late = bundle.stage(&KeepOwners).unwrap();
        let late_path = late.path().to_owned();
        fs::write(late_path.join("file"), "late").unwrap();
        install(&collection, "ruby", "h1");
        assert!(!late.commit(&KeepOwners).unwrap());
        assert!(!late_path.exists());
        assert_eq!(
            fs::read_to_string(bundle.install_path().join("file")).unwrap(),
            "h1"
        );
    }

    #[test]
    fn an_abandoned_staging_leaves_no_trace() {
        let base = tempfile::tempdir().unwrap();
        let dirs = Dirs::new(base.path());
        let collection = BundleCollection::packages(&dirs);
        let staging = collection
            .bundle("ruby", "h1")
            .unwrap()
            .stage(&KeepOwners)
            .unwrap();
        fs::write(staging.path().join("file"), "partial").unwrap();
        drop(staging);
        assert!(entries(&dirs.data_packages_dir()).unwrap().is_empty());

        // With another version installed, only the staging directory goes.
        install(&collection, "ruby", "h0");
        drop(
            collection
                .bundle("ruby", "h1")
                .unwrap()
                .stage(&KeepOwners)
                .unwrap(),
        );
        assert_eq!(
            collection.installed().unwrap(),
            [("ruby".to_owned(), "h0".to_owned())]
        );
    }

    #[test]
    fn keep_only_removes_unwanted_bundles_and_their_links_only() {
        let base = tempfile::tempdir().unwrap();
        let dirs = Dirs::new(base.path());
        let collection = BundleCollection::packages(&dirs);
        install(&collection, "ruby", "old")
            .enable(&KeepOwners)
            .unwrap();
        install(&collection, "ruby", "new");
        install(&collection, "gone", "h")
            .enable(&KeepOwners)
            .unwrap();
        let kept = install(&collection, "app", "h");
        kept.enable(&KeepOwners).unwrap();
        // Not ours: a link elsewhere, a real directory, a file in the install root.
        let elsewhere = base.path().join("elsewhere");
        fs::create_dir(&elsewhere).unwrap();
        std::os::unix::fs::symlink(&elsewhere, dirs.packages_dir().join("foreign")).unwrap();
        fs::create_dir(dirs.packages_dir().join("real")).unwrap();
        fs::write(dirs.data_packages_dir().join("stray-file"), "x").unwrap();
        // A crash leftover: a temporary link into the install root.
        std::os::unix::fs::symlink(
            kept.install_path(),
            dirs.packages_dir().join(".app.enable-1"),
        )
        .unwrap();

        let wanted = vec![
            ("ruby".to_owned(), "new".to_owned()),
            ("app".to_owned(), "h".to_owned()),
        ];
        collection.keep_only(&wanted, true).unwrap();

        assert_eq!(
            collection.installed().unwrap(),
            [
                ("app".to_owned(), "h".to_owned()),
                ("ruby".to_owned(), "new".to_owned())
            ]
        );
        let links: Vec<_> = entries(&dirs.packages_dir())
            .unwrap()
            .into_iter()
            .map(|(name, _)| name)
            .collect();
        // `ruby` pointed at the old version, so it is gone until `ruby/new` is enabled.
        assert_eq!(links, ["app", "foreign", "real"]);
        assert!(!dirs.data_packages_dir().join("gone").exists());
        assert!(dirs.data_packages_dir().join("stray-file").exists());
        assert!(elsewhere.exists());
    }

    #[test]
    fn keep_only_without_uninstall_only_disables() {
        let base = tempfile::tempdir().unwrap();
        let dirs = Dirs::new(base.path());
        let job_dir = base.path().join("data/jobs/web/h");
        fs::create_dir_all(&job_dir).unwrap();
        let packages = BundleCollection::packages(&dirs);
        install(&packages, "ruby", "h1");
        install(&packages, "app", "h2");
        let job_packages = BundleCollection::job_packages(&dirs, &job_dir);
        for (name, hash) in [("ruby", "h1"), ("app", "h2")] {
            job_packages
                .bundle(name, hash)
                .unwrap()
                .enable(&KeepOwners)
                .unwrap();
        }
        assert_eq!(
            mode(&job_dir.join("packages")) & 0o777 & !0o022,
            0o755 & !0o022
        );

        job_packages
            .keep_only(&[("app".to_owned(), "h2".to_owned())], false)
            .unwrap();
        assert!(!job_dir.join("packages/ruby").exists());
        assert!(job_dir.join("packages/app").exists());
        assert_eq!(packages.installed().unwrap().len(), 2);
    }
}
