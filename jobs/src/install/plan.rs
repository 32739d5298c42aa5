//! What an apply spec asks to have installed, checked before anything is written: the packages and
//! jobs with their bundle hashes and blob sources (`agent/applier/applyspec/v1_apply_spec.go`
//! `Jobs`/`Packages`, `agent/applier/models/{job,package}.go` `BundleVersion`,
//! `agent/applier/bundlecollection/file_bundle_collection.go` `Get`).
//!
//! A bundle lives in `data/<packages|jobs>/<name>/<hash>` where `<hash>` is the sha1 hex of
//! `"<version>-<multi-digest>"`, the multi-digest printed as Go prints it (`<sha1 hex>` or
//! `sha256:<hex>`, pieces joined by `;` in the order given). Jobs take the digest of the rendered
//! templates archive, which changes whenever a template renders differently, so a job is
//! reinstalled for new properties even when its version is unchanged.
//!
//! Everything here is pure: names, versions and digests from the spec are validated (names must be
//! one plain path component, through `platform::name`), so bad input fails before the first write.
//! Where Go panics (an empty version) or loops over a random map order, we fail with an error or
//! keep the spec's order (packages sorted by their key, jobs in `job.templates` order).

use std::collections::BTreeMap;

use settings::digest::{self, Algorithm, MultiDigest};

use crate::apply_spec::{ApplySpec, PackageSpec};

/// Everything an apply spec installs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The packages, sorted by their key in `packages`.
    pub packages: Vec<PackagePlan>,
    /// The jobs, in `job.templates` order; empty without a rendered templates archive.
    pub jobs: Vec<JobPlan>,
    /// Where the jobs come from; `None` when there are no jobs.
    pub templates: Option<TemplatesPlan>,
}

/// One package to install.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackagePlan {
    /// The package name (its `name` field, as Go uses it).
    pub name: String,
    /// Its version.
    pub version: String,
    /// The digest its blob must have.
    pub digest: MultiDigest,
    /// Where its blob is.
    pub source: BlobSource,
    /// The bundle directory name: [`bundle_hash`] of the version and digest.
    pub hash: String,
}

/// One job to install from the rendered templates archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobPlan {
    /// The job name, also its top directory in the rendered templates archive.
    pub name: String,
    /// Its version.
    pub version: String,
    /// The bundle directory name: [`bundle_hash`] of the version and the archive's digest.
    pub hash: String,
}

/// The rendered templates archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplatesPlan {
    /// Its blobstore id (the director never signs it: the spec has no URL for it).
    pub blobstore_id: String,
    /// The digest it must have.
    pub digest: MultiDigest,
}

/// Where a blob is fetched from (`blobstore_delegator.go`: a signed URL wins over a blob id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlobSource {
    /// A blob id in the agent's blobstore.
    Blobstore {
        /// The blob id.
        id: String,
    },
    /// A pre-signed URL and the headers to send with it.
    SignedUrl {
        /// The URL; it carries a signature, so never log or show it whole.
        url: String,
        /// Extra request headers (they may carry encryption keys).
        headers: BTreeMap<String, String>,
    },
}

/// Why an apply spec cannot be installed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A package or job name that cannot be one path component.
    #[error(transparent)]
    Name(#[from] platform::name::Error),
    /// A package or job without a version (Go panics: `Internal inconsistency`).
    #[error("{kind} '{name}' has no version")]
    MissingVersion {
        /// `package` or `job`.
        kind: &'static str,
        /// Its name.
        name: String,
    },
    /// A digest that is not a multi-digest.
    #[error("parsing the digest of {what}")]
    Digest {
        /// `package '<name>'` or `the rendered templates archive`.
        what: String,
        /// The cause.
        #[source]
        source: digest::Error,
    },
    /// A package with neither a signed URL nor a blob id.
    #[error("package '{package}' has neither a signed_url nor a blobstore_id")]
    NoSource {
        /// The package.
        package: String,
    },
    /// Jobs to install but a rendered templates archive without a blob id.
    #[error("the rendered templates archive has no blobstore_id")]
    NoTemplatesBlob,
}

/// `pub type Result<T>` of this module.
pub type Result<T> = std::result::Result<T, Error>;

impl Plan {
    /// Checks `spec` and computes every bundle it installs.
    pub fn from_spec(spec: &ApplySpec) -> Result<Plan> {
        let packages = spec
            .packages
            .values()
            .map(package_plan)
            .collect::<Result<Vec<_>>>()?;
        let jobs = spec.jobs();
        let (jobs, templates) = match (&spec.rendered_templates_archive, jobs.is_empty()) {
            (Some(archive), false) => {
                let digest = MultiDigest::parse(&archive.sha1).map_err(|source| Error::Digest {
                    what: "the rendered templates archive".to_owned(),
                    source,
                })?;
                if archive.blobstore_id.is_empty() {
                    return Err(Error::NoTemplatesBlob);
                }
                let jobs = jobs
                    .iter()
                    .map(|job| {
                        platform::name::check("job name", &job.name)?;
                        check_version("job", &job.name, &job.version)?;
                        Ok(JobPlan {
                            name: job.name.clone(),
                            version: job.version.clone(),
                            hash: bundle_hash(&job.version, &digest),
                        })
                    })
                    .collect::<Result<Vec<_>>>()?;
                let templates = TemplatesPlan {
                    blobstore_id: archive.blobstore_id.clone(),
                    digest,
                };
                (jobs, Some(templates))
            }
            _ => (Vec::new(), None),
        };
        Ok(Plan {
            packages,
            jobs,
            templates,
        })
    }

    /// The `(name, hash)` of every package, for keeping only these.
    pub fn package_bundles(&self) -> Vec<(String, String)> {
        self.packages
            .iter()
            .map(|package| (package.name.clone(), package.hash.clone()))
            .collect()
    }

    /// The `(name, hash)` of every job, for keeping only these.
    pub fn job_bundles(&self) -> Vec<(String, String)> {
        self.jobs
            .iter()
            .map(|job| (job.name.clone(), job.hash.clone()))
            .collect()
    }
}

/// The bundle directory name of `version` with `digest`: the sha1 hex of `"<version>-<digest>"`
/// (Go's `BundleVersion` hashed by `FileBundleCollection.Get`).
pub fn bundle_hash(version: &str, digest: &MultiDigest) -> String {
    let text = format!("{version}-{digest}");
    match MultiDigest::compute(text.as_bytes(), &[Algorithm::Sha1]) {
        Ok(sha1) => sha1
            .digests()
            .first()
            .map(|piece| piece.hex.clone())
            .unwrap_or_default(),
        // Hashing bytes in memory with sha1 cannot fail: the algorithm is known and nothing is read
        // from IO.
        Err(_) => String::new(),
    }
}

fn package_plan(package: &PackageSpec) -> Result<PackagePlan> {
    platform::name::check("package name", &package.name)?;
    check_version("package", &package.name, &package.version)?;
    let digest = MultiDigest::parse(&package.sha1).map_err(|source| Error::Digest {
        what: format!("package '{}'", package.name),
        source,
    })?;
    let source = if !package.signed_url.is_empty() {
        BlobSource::SignedUrl {
            url: package.signed_url.clone(),
            headers: package.blobstore_headers.clone(),
        }
    } else if !package.blobstore_id.is_empty() {
        BlobSource::Blobstore {
            id: package.blobstore_id.clone(),
        }
    } else {
        return Err(Error::NoSource {
            package: package.name.clone(),
        });
    };
    Ok(PackagePlan {
        name: package.name.clone(),
        version: package.version.clone(),
        hash: bundle_hash(&package.version, &digest),
        digest,
        source,
    })
}

fn check_version(kind: &'static str, name: &str, version: &str) -> Result<()> {
    if version.is_empty() {
        return Err(Error::MissingVersion {
            kind,
            name: name.to_owned(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::apply_spec::{JobTemplateSpec, RenderedTemplatesArchive};

    fn sha1_hex(text: &str) -> String {
        MultiDigest::compute(text.as_bytes(), &[Algorithm::Sha1])
            .unwrap()
            .to_string()
    }

    fn package(name: &str, version: &str, sha1: &str, id: &str) -> PackageSpec {
        PackageSpec {
            name: name.to_owned(),
            version: version.to_owned(),
            sha1: sha1.to_owned(),
            blobstore_id: id.to_owned(),
            ..PackageSpec::default()
        }
    }

    fn spec_with_jobs(jobs: &[(&str, &str)], archive_sha1: &str) -> ApplySpec {
        let mut spec = ApplySpec::default();
        spec.job.templates = jobs
            .iter()
            .map(|(name, version)| JobTemplateSpec {
                name: (*name).to_owned(),
                version: (*version).to_owned(),
            })
            .collect();
        spec.rendered_templates_archive = Some(RenderedTemplatesArchive {
            sha1: archive_sha1.to_owned(),
            blobstore_id: "templates-1".to_owned(),
        });
        spec
    }

    #[test]
    fn the_bundle_hash_is_the_sha1_of_version_dash_digest_as_go_prints_it() {
        let cases = [
            ("1.2", "abc123", "1.2-abc123"),
            // A `sha1:` prefix is dropped when printed, as bosh-utils `digestImpl.String` does.
            ("1.2", "sha1:abc123", "1.2-abc123"),
            ("7", "sha256:beef", "7-sha256:beef"),
            ("7", "abc;sha512:ff", "7-abc;sha512:ff"),
        ];
        for (version, digest, text) in cases {
            let digest = MultiDigest::parse(digest).unwrap();
            assert_eq!(bundle_hash(version, &digest), sha1_hex(text), "{text}");
        }
        // A known value, computed with `printf '1.2-abc123' | sha1sum`.
        assert_eq!(
            bundle_hash("1.2", &MultiDigest::parse("abc123").unwrap()),
            "2c8540c6c4a5248892c61fd71e128a8e8521ebfc"
        );
    }

    #[test]
    fn packages_are_planned_in_key_order_with_signed_urls_winning() {
        let mut spec = ApplySpec::default();
        spec.packages
            .insert("ruby".into(), package("ruby", "2.1", "aa", "blob-ruby"));
        let mut signed = package("app", "1", "sha256:bb", "blob-app");
        signed.signed_url = "https://s3/app?sig=1".into();
        signed.blobstore_headers = BTreeMap::from([("h".to_owned(), "v".to_owned())]);
        spec.packages.insert("app".into(), signed);

        let plan = Plan::from_spec(&spec).unwrap();
        assert_eq!(plan.jobs, Vec::new());
        assert_eq!(plan.templates, None);
        let names: Vec<_> = plan.packages.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["app", "ruby"]);
        assert_eq!(
            plan.packages[0].source,
            BlobSource::SignedUrl {
                url: "https://s3/app?sig=1".into(),
                headers: BTreeMap::from([("h".to_owned(), "v".to_owned())]),
            }
        );
        assert_eq!(
            plan.packages[1].source,
            BlobSource::Blobstore {
                id: "blob-ruby".into()
            }
        );
        assert_eq!(plan.packages[1].hash, sha1_hex("2.1-aa"));
        assert_eq!(
            plan.package_bundles(),
            [
                ("app".to_owned(), sha1_hex("1-sha256:bb")),
                ("ruby".to_owned(), sha1_hex("2.1-aa"))
            ]
        );
    }

    #[test]
    fn jobs_take_the_digest_of_the_rendered_templates_archive() {
        let spec = spec_with_jobs(&[("web", "3"), ("worker", "4")], "sha1:cafe;sha256:f00d");
        let plan = Plan::from_spec(&spec).unwrap();
        assert_eq!(
            plan.job_bundles(),
            [
                ("web".to_owned(), sha1_hex("3-cafe;sha256:f00d")),
                ("worker".to_owned(), sha1_hex("4-cafe;sha256:f00d"))
            ]
        );
        let templates = plan.templates.unwrap();
        assert_eq!(templates.blobstore_id, "templates-1");
        assert_eq!(templates.digest.to_string(), "cafe;sha256:f00d");
    }

    #[test]
    fn without_an_archive_there_are_no_jobs() {
        let mut spec = spec_with_jobs(&[("web", "3")], "cafe");
        spec.rendered_templates_archive = None;
        let plan = Plan::from_spec(&spec).unwrap();
        assert!(plan.jobs.is_empty());
        assert!(plan.templates.is_none());
        // An archive without jobs is not even parsed.
        let spec = spec_with_jobs(&[], "");
        assert!(Plan::from_spec(&spec).unwrap().templates.is_none());
    }

    #[test]
    fn bad_specs_are_refused_with_the_thing_named() {
        let with_package = |package: PackageSpec| {
            let mut spec = ApplySpec::default();
            spec.packages.insert("key".into(), package);
            spec
        };
        let cases = [
            (
                with_package(package("../etc", "1", "aa", "b")),
                "package name '../etc' is not a plain file name (no '/', NUL, '.' or '..')",
            ),
            (
                with_package(package("", "1", "aa", "b")),
                "package name is empty",
            ),
            (
                with_package(package("ruby", "", "aa", "b")),
                "package 'ruby' has no version",
            ),
            (
                with_package(package("ruby", "1", "", "b")),
                "parsing the digest of package 'ruby': no digest algorithm found. Supported algorithms: sha1, sha256, sha512",
            ),
            (
                with_package(package("ruby", "1", "aa", "")),
                "package 'ruby' has neither a signed_url nor a blobstore_id",
            ),
            (
                spec_with_jobs(&[("a/b", "1")], "cafe"),
                "job name 'a/b' is not a plain file name (no '/', NUL, '.' or '..')",
            ),
            (
                spec_with_jobs(&[("web", "")], "cafe"),
                "job 'web' has no version",
            ),
            (
                spec_with_jobs(&[("web", "1")], ""),
                "parsing the digest of the rendered templates archive: no digest algorithm found. Supported algorithms: sha1, sha256, sha512",
            ),
        ];
        for (spec, expected) in cases {
            let err = Plan::from_spec(&spec).unwrap_err();
            assert_eq!(settings::source::error_chain(&err), expected);
        }
        let mut spec = spec_with_jobs(&[("web", "1")], "cafe");
        if let Some(archive) = spec.rendered_templates_archive.as_mut() {
            archive.blobstore_id.clear();
        }
        assert!(matches!(
            Plan::from_spec(&spec),
            Err(Error::NoTemplatesBlob)
        ));
    }
}
