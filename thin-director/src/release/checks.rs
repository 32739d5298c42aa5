//! The checks a release passes before anything of it is written: names that are plain file
//! names, every listed blob present with its digest, job specs with their `monit` and templates,
//! and package dependencies that resolve.
//!
//! Follows bosh-cli `release/archive_reader.go` (what must be present, the license verified only
//! when shipped) and the director's `jobs/release/release_job.rb` (a job's spec names the job and
//! its templates exist). Digests are checked as `MultiDigest::verify` would: against the strongest
//! piece `release.MF` gives.

use std::collections::BTreeMap;
use std::path::Path;

use settings::digest::{self, Algorithm, MultiDigest};

use crate::release::tarball::{BlobKind, Scan, is_plain_name};
use crate::release::{Error, JobSpec, PackageGraph, ReleaseManifest};

pub(crate) fn parse_manifest(
    source_path: &Path,
    text: Option<&str>,
) -> Result<ReleaseManifest, Error> {
    let text = text.ok_or_else(|| Error::NoManifest {
        source_path: source_path.to_owned(),
    })?;
    ReleaseManifest::parse(text).map_err(|source| Error::Manifest {
        source_path: source_path.to_owned(),
        source,
    })
}

/// Names are plain file names and unique within their list.
pub(crate) fn check_names(manifest: &ReleaseManifest) -> Result<(), Error> {
    let lists: [(&'static str, Vec<&str>); 3] = [
        (
            "job",
            manifest.jobs.iter().map(|j| j.name.as_str()).collect(),
        ),
        (
            "package",
            manifest.packages.iter().map(|p| p.name.as_str()).collect(),
        ),
        (
            "compiled package",
            manifest
                .compiled_packages
                .iter()
                .map(|p| p.name.as_str())
                .collect(),
        ),
    ];
    for (noun, names) in lists {
        for (index, name) in names.iter().enumerate() {
            if !is_plain_name(name) {
                return Err(Error::InvalidName {
                    release: manifest.name.clone(),
                    noun,
                    name: (*name).to_owned(),
                });
            }
            if names[..index].contains(name) {
                return Err(Error::DuplicateName {
                    release: manifest.name.clone(),
                    noun,
                    name: (*name).to_owned(),
                });
            }
        }
    }
    Ok(())
}

/// Everything about the blobs that can be known from one pass: names, presence, digests, job specs
/// and dependencies. Returns the job specs.
pub(crate) fn check_blobs(
    tarball: &Path,
    manifest: &ReleaseManifest,
    scan: &Scan,
) -> Result<BTreeMap<String, JobSpec>, Error> {
    check_names(manifest)?;
    let listed = manifest
        .jobs
        .iter()
        .map(|j| (BlobKind::Job, j.name.as_str(), &j.sha1))
        .chain(
            manifest
                .packages
                .iter()
                .map(|p| (BlobKind::Package, p.name.as_str(), &p.sha1)),
        )
        .chain(
            manifest
                .compiled_packages
                .iter()
                .map(|p| (BlobKind::CompiledPackage, p.name.as_str(), &p.sha1)),
        );
    for (kind, name, expected) in listed {
        let blob_name = kind.blob_path(name).display().to_string();
        let Some(blob) = scan.blobs.get(&(kind, name.to_owned())) else {
            return Err(Error::MissingBlob {
                tarball: tarball.to_owned(),
                blob: blob_name,
            });
        };
        verify(expected, &blob.digest).map_err(|source| Error::Digest {
            tarball: tarball.to_owned(),
            blob: blob_name,
            source,
        })?;
    }
    // Like bosh-cli, a listed license is verified when the tarball has one.
    if let (Some(license), Some(blob)) = (
        &manifest.license,
        scan.blobs.get(&(BlobKind::License, "license".to_owned())),
    ) {
        verify(&license.sha1, &blob.digest).map_err(|source| Error::Digest {
            tarball: tarball.to_owned(),
            blob: "license.tgz".to_owned(),
            source,
        })?;
    }
    let mut specs = BTreeMap::new();
    for job in &manifest.jobs {
        // Present: checked above.
        let Some(blob) = scan.blobs.get(&(BlobKind::Job, job.name.clone())) else {
            continue;
        };
        let missing = |file: &str| Error::JobFileMissing {
            job: job.name.clone(),
            file: file.to_owned(),
        };
        let bytes = blob.job_mf.as_ref().ok_or_else(|| missing("job.MF"))?;
        let spec = parse_job_spec(&job.name, bytes)?;
        if !blob.tree.is_file(Path::new("monit")) {
            return Err(missing("monit"));
        }
        for source in spec.templates.keys() {
            let path = Path::new("templates").join(source);
            if !blob.tree.is_file(&path) {
                return Err(missing(&path.display().to_string()));
            }
        }
        specs.insert(job.name.clone(), spec);
    }
    resolve(manifest, &specs)?;
    Ok(specs)
}

pub(crate) fn parse_job_spec(job: &str, bytes: &[u8]) -> Result<JobSpec, Error> {
    let text = std::str::from_utf8(bytes).map_err(|_| Error::JobSpecText {
        job: job.to_owned(),
    })?;
    let spec = JobSpec::parse(text).map_err(|source| Error::JobSpec {
        job: job.to_owned(),
        source,
    })?;
    if spec.name != job {
        return Err(Error::JobNameMismatch {
            job: job.to_owned(),
            spec_name: spec.name,
        });
    }
    Ok(spec)
}

/// The dependency graphs of the source and compiled packages; every job's packages must be in the
/// one the release runs with.
pub(crate) fn resolve(
    manifest: &ReleaseManifest,
    specs: &BTreeMap<String, JobSpec>,
) -> Result<(PackageGraph, PackageGraph), Error> {
    let dependency_error = |source| Error::Dependencies {
        release: manifest.name.clone(),
        source,
    };
    let source_graph = PackageGraph::new(manifest.packages.iter().map(|p| {
        (
            p.name.as_str(),
            p.version.as_str(),
            p.dependencies.as_slice(),
        )
    }))
    .map_err(dependency_error)?;
    let compiled_graph = PackageGraph::new(manifest.compiled_packages.iter().map(|p| {
        (
            p.name.as_str(),
            p.version.as_str(),
            p.dependencies.as_slice(),
        )
    }))
    .map_err(dependency_error)?;
    let runtime = if manifest.packages.is_empty() {
        &compiled_graph
    } else {
        &source_graph
    };
    for job in &manifest.jobs {
        let Some(spec) = specs.get(&job.name) else {
            continue;
        };
        if let Some(package) = spec.packages.iter().find(|p| !runtime.contains(p)) {
            return Err(Error::JobPackage {
                job: job.name.clone(),
                package: package.clone(),
            });
        }
    }
    Ok((source_graph, compiled_graph))
}

/// Checks a computed digest against the strongest piece of the expected one, as
/// `MultiDigest::verify` would on the stream.
fn verify(expected: &MultiDigest, actual: &MultiDigest) -> Result<(), digest::Error> {
    let wanted = expected.strongest();
    if let Algorithm::Unknown(name) = &wanted.algorithm {
        return Err(digest::Error::UnknownAlgorithm(name.clone()));
    }
    let computed = actual
        .digests()
        .iter()
        .find(|piece| piece.algorithm == wanted.algorithm)
        .ok_or_else(|| digest::Error::UnknownAlgorithm(wanted.algorithm.name().to_owned()))?;
    if computed.hex.eq_ignore_ascii_case(&wanted.hex) {
        Ok(())
    } else {
        Err(digest::Error::Mismatch {
            expected: wanted.to_string(),
            actual: computed.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HELLO_SHA1: &str = "aaf4c61ddcc5e8a2dabede0f3b482cd9aea9434d";
    const HELLO_SHA256: &str = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";

    fn computed() -> MultiDigest {
        MultiDigest::compute(&b"hello"[..], &[Algorithm::Sha1, Algorithm::Sha256]).unwrap()
    }

    #[test]
    fn the_strongest_expected_piece_is_checked_in_any_case() {
        let expected = MultiDigest::parse(&HELLO_SHA1.to_uppercase()).unwrap();
        verify(&expected, &computed()).unwrap();
        // A wrong sha1 beside a right sha256 passes: only the strongest counts, as in Go.
        let expected = MultiDigest::parse(&format!("sha1:0000;sha256:{HELLO_SHA256}")).unwrap();
        verify(&expected, &computed()).unwrap();
    }

    #[test]
    fn a_mismatch_or_an_unknown_algorithm_is_refused() {
        let expected = MultiDigest::parse("sha256:00ff").unwrap();
        assert_eq!(
            verify(&expected, &computed()).unwrap_err().to_string(),
            format!("Expected stream to have digest 'sha256:00ff' but was 'sha256:{HELLO_SHA256}'")
        );
        let expected = MultiDigest::parse("md5:00ff").unwrap();
        assert_eq!(
            verify(&expected, &computed()).unwrap_err().to_string(),
            "Unable to create digest of unknown algorithm 'md5'"
        );
    }

    #[test]
    fn names_must_be_plain_and_unique() {
        let manifest = |jobs: &str| {
            ReleaseManifest::parse(&format!("name: r\nversion: 1\njobs: {jobs}\n")).unwrap()
        };
        let job = |name: &str| format!("{{name: '{name}', version: 1, sha1: {HELLO_SHA1}}}");
        check_names(&manifest(&format!("[{}]", job("web")))).unwrap();
        assert_eq!(
            check_names(&manifest(&format!("[{}]", job("../web"))))
                .unwrap_err()
                .to_string(),
            "release r: job name \"../web\" is not a plain file name"
        );
        assert_eq!(
            check_names(&manifest(&format!("[{}, {}]", job("web"), job("web"))))
                .unwrap_err()
                .to_string(),
            "release r: job \"web\" is listed twice"
        );
    }
}
