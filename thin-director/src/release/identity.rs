//! What identifies a package across releases, and a compiled package across deployments: the keys
//! a compiled package cache stores results under.
//!
//! Follows the director's `models/package.rb` and `deployment_plan/compiled_package_finder.rb`: a
//! package is the same package when its name and fingerprint match, whichever release ships it;
//! a compiled package is reusable when the package, the stemcell OS and version, and the
//! dependency key (the versions of everything it was compiled against) all match. Releases that
//! predate fingerprints use their version, which then is the fingerprint.

use std::fmt;

use crate::release::release_manifest::StemcellRef;

/// A package by content: its name and fingerprint.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PackageId {
    /// The package name.
    pub name: String,
    /// The fingerprint of its sources (or its version, for releases without fingerprints).
    pub fingerprint: String,
}

/// The key of one compiled package: the package, the stemcell it was compiled on, and what it was
/// compiled against.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CompiledPackageKey {
    /// The package.
    pub package: PackageId,
    /// The stemcell OS and version.
    pub stemcell: StemcellRef,
    /// [`crate::release::dependencies::PackageGraph::dependency_key`] of the package.
    pub dependency_key: String,
}

impl PackageId {
    /// The identity of a package with `fingerprint`, falling back to `version` when it is empty.
    pub fn new(name: &str, fingerprint: &str, version: &str) -> PackageId {
        let fingerprint = if fingerprint.is_empty() {
            version
        } else {
            fingerprint
        };
        PackageId {
            name: name.to_owned(),
            fingerprint: fingerprint.to_owned(),
        }
    }
}

impl fmt::Display for PackageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.name, self.fingerprint)
    }
}

impl fmt::Display for CompiledPackageKey {
    /// `<name>/<fingerprint> on <os>/<version> with <dependency key>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} on {} with {}",
            self.package, self.stemcell, self.dependency_key
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_uses_the_fingerprint_or_else_the_version() {
        assert_eq!(PackageId::new("ruby", "f1", "v1").to_string(), "ruby/f1");
        assert_eq!(PackageId::new("ruby", "", "v1").to_string(), "ruby/v1");
        let key = CompiledPackageKey {
            package: PackageId::new("ruby", "f1", "f1"),
            stemcell: StemcellRef::parse("ubuntu-jammy/1.18").unwrap(),
            dependency_key: "[]".into(),
        };
        assert_eq!(key.to_string(), "ruby/f1 on ubuntu-jammy/1.18 with []");
    }
}
