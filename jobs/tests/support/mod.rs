//! Shared helpers of the integration tests: servers they start and small fixtures.

pub mod dav;

use settings::digest::{Algorithm, MultiDigest};

/// The multi-digest of `bytes` with `algorithms`.
pub fn digest_of(bytes: &[u8], algorithms: &[Algorithm]) -> MultiDigest {
    MultiDigest::compute(bytes, algorithms).expect("hashing in memory")
}

/// The names in `dir`, sorted.
pub fn names_in(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("reading a test directory")
        .map(|entry| {
            entry
                .expect("a directory entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    names
}

/// Some bytes that are not all alike, `len` of them.
pub fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}
