//! `release.MF`, the manifest at the root of a release tarball: the release's name and version and
//! the jobs, packages and compiled packages it ships, each with its version, fingerprint and digest.
//!
//! Follows bosh-cli `release/manifest/release.go`. The file is written by tools, not operators, so
//! it is decoded the way the Go CLI decodes it: unknown keys are ignored, absent lists and empty
//! values (`packages:`) are empty, and versions may be YAML numbers (`version: 3`). Errors name the
//! path of the bad field (`jobs[2].sha1`). The Ruby CLI's `!binary` annotations of very old
//! releases are not read.

use serde::{Deserialize, Deserializer, Serialize};
use settings::digest::MultiDigest;

/// A parsed `release.MF`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ReleaseManifest {
    /// The release name.
    pub name: String,
    /// The release version.
    #[serde(deserialize_with = "scalar")]
    pub version: String,
    /// The commit the release was built from.
    #[serde(default, deserialize_with = "nullable")]
    pub commit_hash: String,
    /// Whether the working tree had uncommitted changes.
    #[serde(default, deserialize_with = "nullable")]
    pub uncommitted_changes: bool,
    /// The jobs (`jobs/<name>.tgz`).
    #[serde(default, deserialize_with = "nullable")]
    pub jobs: Vec<JobRef>,
    /// The source packages (`packages/<name>.tgz`).
    #[serde(default, deserialize_with = "nullable")]
    pub packages: Vec<PackageRef>,
    /// The compiled packages (`compiled_packages/<name>.tgz`).
    #[serde(default, deserialize_with = "nullable")]
    pub compiled_packages: Vec<CompiledPackageRef>,
    /// The license (`license.tgz`), if any.
    #[serde(default)]
    pub license: Option<LicenseRef>,
}

/// A job of the release.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct JobRef {
    /// The job name.
    pub name: String,
    /// The job version (the fingerprint in current releases).
    #[serde(deserialize_with = "scalar")]
    pub version: String,
    /// The fingerprint of the job's sources.
    #[serde(default, deserialize_with = "nullable_scalar")]
    pub fingerprint: String,
    /// The digest of `jobs/<name>.tgz`.
    pub sha1: MultiDigest,
    /// The packages the job needs, when the release lists them (the job spec always does).
    #[serde(default, deserialize_with = "nullable")]
    pub packages: Vec<String>,
}

/// A source package of the release.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PackageRef {
    /// The package name.
    pub name: String,
    /// The package version (the fingerprint in current releases).
    #[serde(deserialize_with = "scalar")]
    pub version: String,
    /// The fingerprint of the package's sources.
    #[serde(default, deserialize_with = "nullable_scalar")]
    pub fingerprint: String,
    /// The digest of `packages/<name>.tgz`.
    pub sha1: MultiDigest,
    /// The packages it needs at compile time and run time.
    #[serde(default, deserialize_with = "nullable")]
    pub dependencies: Vec<String>,
}

/// A package compiled for one stemcell.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct CompiledPackageRef {
    /// The package name.
    pub name: String,
    /// The package version.
    #[serde(deserialize_with = "scalar")]
    pub version: String,
    /// The fingerprint of the package's sources.
    #[serde(default, deserialize_with = "nullable_scalar")]
    pub fingerprint: String,
    /// The digest of `compiled_packages/<name>.tgz`.
    pub sha1: MultiDigest,
    /// The stemcell it was compiled on, written `<os>/<version>`.
    pub stemcell: StemcellRef,
    /// The packages it needs at run time.
    #[serde(default, deserialize_with = "nullable")]
    pub dependencies: Vec<String>,
}

/// The license of the release.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct LicenseRef {
    /// The license version.
    #[serde(default, deserialize_with = "nullable_scalar")]
    pub version: String,
    /// Its fingerprint.
    #[serde(default, deserialize_with = "nullable_scalar")]
    pub fingerprint: String,
    /// The digest of `license.tgz`.
    pub sha1: MultiDigest,
}

/// A stemcell operating system and version, as in `ubuntu-jammy/1.18`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct StemcellRef {
    /// The operating system, e.g. `ubuntu-jammy`.
    pub os: String,
    /// The stemcell version, e.g. `1.18`.
    pub version: String,
}

/// Why `release.MF` could not be read: the YAML error and the path of the field.
pub type Error = serde_path_to_error::Error<serde_yaml_ng::Error>;

impl ReleaseManifest {
    /// Parses `release.MF`.
    pub fn parse(text: &str) -> Result<ReleaseManifest, Error> {
        serde_path_to_error::deserialize(serde_yaml_ng::Deserializer::from_str(text))
    }
}

impl StemcellRef {
    /// Parses `<os>/<version>`.
    pub fn parse(text: &str) -> Option<StemcellRef> {
        let (os, version) = text.split_once('/')?;
        (!os.is_empty() && !version.is_empty() && !version.contains('/')).then(|| StemcellRef {
            os: os.to_owned(),
            version: version.to_owned(),
        })
    }
}

impl std::fmt::Display for StemcellRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.version)
    }
}

impl<'de> Deserialize<'de> for StemcellRef {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        StemcellRef::parse(&text).ok_or_else(|| {
            serde::de::Error::custom(format!("stemcell {text:?} is not <os>/<version>"))
        })
    }
}

/// A string, or a number written as one (`version: 3`).
#[derive(Deserialize)]
#[serde(untagged)]
enum Scalar {
    Text(String),
    Integer(i64),
    Float(f64),
}

impl Scalar {
    fn into_string(self) -> String {
        match self {
            Scalar::Text(text) => text,
            Scalar::Integer(number) => number.to_string(),
            Scalar::Float(number) => number.to_string(),
        }
    }
}

fn scalar<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    Scalar::deserialize(deserializer).map(Scalar::into_string)
}

fn nullable_scalar<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    Option::<Scalar>::deserialize(deserializer)
        .map(|scalar| scalar.map(Scalar::into_string).unwrap_or_default())
}

/// A value that may be written empty (`packages:`), which YAML reads as null.
pub(crate) fn nullable<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Option::<T>::deserialize(deserializer).map(Option::unwrap_or_default)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA1: &str = "aaf4c61ddcc5e8a2dabede0f3b482cd9aea9434d";

    #[test]
    fn a_source_release_manifest_parses() {
        let text = format!(
            "name: demo\nversion: 3\ncommit_hash: abc123\nuncommitted_changes: false\n\
             jobs:\n- {{name: web, version: f1, fingerprint: f1, sha1: {SHA1}, packages: [ruby]}}\n\
             packages:\n- name: ruby\n  version: f2\n  fingerprint: f2\n  sha1: sha256:abcd\n  dependencies:\n\
             - {{name: libyaml, version: 1.5, sha1: {SHA1}, dependencies: []}}\n\
             license: {{version: l1, fingerprint: l1, sha1: {SHA1}}}\nextra_key: ignored\n"
        );
        let manifest = ReleaseManifest::parse(&text).unwrap();
        assert_eq!(manifest.version, "3");
        assert_eq!(manifest.jobs[0].packages, ["ruby"]);
        assert_eq!(manifest.packages[0].sha1.to_string(), "sha256:abcd");
        assert!(manifest.packages[0].dependencies.is_empty());
        assert_eq!(manifest.packages[1].version, "1.5");
        assert_eq!(manifest.packages[1].fingerprint, "");
        assert!(manifest.compiled_packages.is_empty());
        assert!(manifest.license.is_some());
    }

    #[test]
    fn compiled_packages_name_their_stemcell() {
        let text = format!(
            "name: demo\nversion: '1.0'\ncompiled_packages:\n\
             - {{name: ruby, version: f2, fingerprint: f2, sha1: {SHA1}, stemcell: ubuntu-jammy/1.18, dependencies: [libyaml]}}\n"
        );
        let manifest = ReleaseManifest::parse(&text).unwrap();
        let compiled = &manifest.compiled_packages[0];
        assert_eq!(compiled.stemcell.to_string(), "ubuntu-jammy/1.18");
        assert_eq!(compiled.dependencies, ["libyaml"]);
    }

    #[test]
    fn errors_name_the_path_of_the_bad_field() {
        let err = ReleaseManifest::parse(&format!(
            "name: demo\nversion: 1\njobs:\n- {{name: a, version: 1, sha1: {SHA1}}}\n- {{name: b, version: 1, sha1: ''}}\n"
        ))
        .unwrap_err();
        assert_eq!(err.path().to_string(), "jobs[1].sha1");
        assert!(
            err.to_string().contains("no digest algorithm found"),
            "{err}"
        );

        let err = ReleaseManifest::parse(&format!(
            "name: demo\nversion: 1\ncompiled_packages:\n- {{name: a, version: 1, sha1: {SHA1}, stemcell: jammy}}\n"
        ))
        .unwrap_err();
        assert_eq!(err.path().to_string(), "compiled_packages[0].stemcell");

        let err = ReleaseManifest::parse("version: 1\n").unwrap_err();
        assert!(err.to_string().contains("missing field `name`"), "{err}");
    }
}
