//! Multi-digests: the `sha1` fields of apply specs, packages, DNS blobs and compiled packages.
//!
//! Follows bosh-utils `crypto/multiple_digest.go`. A multi-digest is a `;`-separated list of
//! `<algorithm>:<hex>` pieces; a bare `<hex>` piece is sha1 (the historical format). Verification uses the
//! strongest algorithm present (sha512, then sha256, then sha1). An algorithm we do not know is kept as
//! an opaque piece: it parses and prints, but cannot verify anything on its own. Error texts are the
//! Go agent's, because the director shows them to operators and its tests match them.

use std::fmt;
use std::io::{self, Read};

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha1::Digest as _;

/// The text used when a multi-digest has no usable piece.
pub const NO_ALGORITHM_FOUND: &str =
    "no digest algorithm found. Supported algorithms: sha1, sha256, sha512";

/// A hash algorithm named in a multi-digest.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// SHA-1, also what a bare hex digest means.
    Sha1,
    /// SHA-256.
    Sha256,
    /// SHA-512.
    Sha512,
    /// A name we do not implement; kept so the digest round-trips.
    Unknown(String),
}

impl Algorithm {
    /// The name as it appears in a multi-digest string.
    pub fn name(&self) -> &str {
        match self {
            Algorithm::Sha1 => "sha1",
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
            Algorithm::Unknown(name) => name,
        }
    }

    fn from_name(name: &str) -> Algorithm {
        match name {
            "sha1" => Algorithm::Sha1,
            "sha256" => Algorithm::Sha256,
            "sha512" => Algorithm::Sha512,
            other => Algorithm::Unknown(other.to_owned()),
        }
    }
}

/// One `<algorithm>:<hex>` piece.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digest {
    /// The algorithm.
    pub algorithm: Algorithm,
    /// The digest in hex, as given.
    pub hex: String,
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.algorithm {
            Algorithm::Sha1 => f.write_str(&self.hex),
            _ => write!(f, "{}:{}", self.algorithm.name(), self.hex),
        }
    }
}

/// A parsed, validated multi-digest: at least one piece and no algorithm twice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MultiDigest {
    digests: Vec<Digest>,
}

/// Why a multi-digest could not be parsed or did not match.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No piece at all (an empty string, or only `;`).
    #[error("{NO_ALGORITHM_FOUND}")]
    NoAlgorithm,
    /// A piece with characters other than letters and digits.
    #[error(
        "unable to parse digest string. Digest and algorithm key can only contain alpha-numeric characters"
    )]
    NotAlphanumeric,
    /// Two pieces of one algorithm.
    #[error("Multiple digests of the same algorithm '{algorithm}' found in digests '{digests}'")]
    Duplicate {
        /// The repeated algorithm.
        algorithm: String,
        /// The whole multi-digest.
        digests: String,
    },
    /// The strongest piece names an algorithm we cannot compute.
    #[error("Unable to create digest of unknown algorithm '{0}'")]
    UnknownAlgorithm(String),
    /// The content does not have the expected digest.
    #[error("Expected stream to have digest '{expected}' but was '{actual}'")]
    Mismatch {
        /// The expected piece.
        expected: String,
        /// What the content hashes to.
        actual: String,
    },
    /// Reading the content failed.
    #[error("Computing digest from stream")]
    Read(#[source] io::Error),
}

impl MultiDigest {
    /// Parses `"<hex>"` or `"sha1:<hex>;sha256:<hex>;sha512:<hex>"` (any subset, any order).
    pub fn parse(text: &str) -> Result<MultiDigest, Error> {
        let mut digests = Vec::new();
        for piece in text.split(';').filter(|piece| !piece.is_empty()) {
            let (name, hex) = match piece.split_once(':') {
                Some((name, hex)) => (name, hex),
                None => ("sha1", piece),
            };
            let alphanumeric =
                |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric());
            if !alphanumeric(name) || !alphanumeric(hex) {
                return Err(Error::NotAlphanumeric);
            }
            digests.push(Digest {
                algorithm: Algorithm::from_name(name),
                hex: hex.to_owned(),
            });
        }
        if digests.is_empty() {
            return Err(Error::NoAlgorithm);
        }
        let multi = MultiDigest { digests };
        for (index, digest) in multi.digests.iter().enumerate() {
            if multi.digests[..index]
                .iter()
                .any(|d| d.algorithm == digest.algorithm)
            {
                return Err(Error::Duplicate {
                    algorithm: digest.algorithm.name().to_owned(),
                    digests: multi.to_string(),
                });
            }
        }
        Ok(multi)
    }

    /// Computes a multi-digest of `reader` with each of `algorithms`, reading it once.
    pub fn compute(mut reader: impl Read, algorithms: &[Algorithm]) -> Result<MultiDigest, Error> {
        let mut hasher = Hasher::new(algorithms)?;
        io::copy(&mut reader, &mut hasher).map_err(Error::Read)?;
        Ok(hasher.finish())
    }

    /// The pieces, in the order given.
    pub fn digests(&self) -> &[Digest] {
        &self.digests
    }

    /// The piece verification uses: sha512, else sha256, else sha1, else the first.
    pub fn strongest(&self) -> &Digest {
        [Algorithm::Sha512, Algorithm::Sha256, Algorithm::Sha1]
            .iter()
            .find_map(|algorithm| self.digests.iter().find(|d| d.algorithm == *algorithm))
            .unwrap_or(&self.digests[0]) // `parse` guarantees at least one piece.
    }

    /// Checks that `reader` hashes to the strongest piece.
    pub fn verify(&self, reader: impl Read) -> Result<(), Error> {
        let expected = self.strongest();
        let actual = MultiDigest::compute(reader, std::slice::from_ref(&expected.algorithm))?;
        let actual = &actual.digests[0];
        if actual.hex.eq_ignore_ascii_case(&expected.hex) {
            Ok(())
        } else {
            Err(Error::Mismatch {
                expected: expected.to_string(),
                actual: actual.to_string(),
            })
        }
    }
}

impl fmt::Display for MultiDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, digest) in self.digests.iter().enumerate() {
            if index > 0 {
                f.write_str(";")?;
            }
            write!(f, "{digest}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for MultiDigest {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self, Error> {
        MultiDigest::parse(text)
    }
}

impl Serialize for MultiDigest {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for MultiDigest {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        MultiDigest::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// Hashes a stream with several algorithms at once; write the content into it, then `finish`.
pub struct Hasher {
    states: Vec<HashState>,
}

enum HashState {
    Sha1(sha1::Sha1),
    Sha256(sha2::Sha256),
    Sha512(sha2::Sha512),
}

impl fmt::Debug for Hasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hasher")
            .field("algorithms", &self.states.len())
            .finish()
    }
}

impl Hasher {
    /// A hasher for `algorithms`; fails on an algorithm we cannot compute.
    pub fn new(algorithms: &[Algorithm]) -> Result<Hasher, Error> {
        let states = algorithms
            .iter()
            .map(|algorithm| match algorithm {
                Algorithm::Sha1 => Ok(HashState::Sha1(sha1::Sha1::new())),
                Algorithm::Sha256 => Ok(HashState::Sha256(sha2::Sha256::new())),
                Algorithm::Sha512 => Ok(HashState::Sha512(sha2::Sha512::new())),
                Algorithm::Unknown(name) => Err(Error::UnknownAlgorithm(name.clone())),
            })
            .collect::<Result<Vec<_>, _>>()?;
        if states.is_empty() {
            return Err(Error::NoAlgorithm);
        }
        Ok(Hasher { states })
    }

    /// The digests of everything written so far.
    pub fn finish(self) -> MultiDigest {
        let digests = self
            .states
            .into_iter()
            .map(|state| match state {
                HashState::Sha1(h) => (Algorithm::Sha1, hex(&h.finalize())),
                HashState::Sha256(h) => (Algorithm::Sha256, hex(&h.finalize())),
                HashState::Sha512(h) => (Algorithm::Sha512, hex(&h.finalize())),
            })
            .map(|(algorithm, hex)| Digest { algorithm, hex })
            .collect();
        MultiDigest { digests }
    }
}

impl io::Write for Hasher {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        for state in &mut self.states {
            match state {
                HashState::Sha1(h) => h.update(buf),
                HashState::Sha256(h) => h.update(buf),
                HashState::Sha512(h) => h.update(buf),
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HELLO_SHA1: &str = "aaf4c61ddcc5e8a2dabede0f3b482cd9aea9434d";
    const HELLO_SHA256: &str = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";
    const HELLO_SHA512: &str = "9b71d224bd62f3785d96d46ad3ea3d73319bfbc2890caadae2dff72519673ca72323c3d99ba5c11d7c7acc6e14b8c5da0c4663475c2e5c3adef46f73bcdec043";

    #[test]
    fn bare_hex_is_sha1() {
        let digest = MultiDigest::parse(HELLO_SHA1).unwrap();
        assert_eq!(digest.strongest().algorithm, Algorithm::Sha1);
        assert_eq!(digest.to_string(), HELLO_SHA1);
        digest.verify(&b"hello"[..]).unwrap();
    }

    #[test]
    fn strongest_algorithm_wins() {
        let text = format!("sha1:{HELLO_SHA1};sha512:{HELLO_SHA512};sha256:{HELLO_SHA256}");
        let digest = MultiDigest::parse(&text).unwrap();
        assert_eq!(digest.strongest().algorithm, Algorithm::Sha512);
        // sha1 prints bare, the others with their prefix, in the order given.
        assert_eq!(
            digest.to_string(),
            format!("{HELLO_SHA1};sha512:{HELLO_SHA512};sha256:{HELLO_SHA256}")
        );
        digest.verify(&b"hello"[..]).unwrap();
    }

    #[test]
    fn a_wrong_weaker_digest_is_not_checked() {
        // Go verifies only the strongest piece; so do we.
        let text = format!("sha1:0000;sha256:{HELLO_SHA256}");
        MultiDigest::parse(&text)
            .unwrap()
            .verify(&b"hello"[..])
            .unwrap();
    }

    #[test]
    fn mismatch_names_both_digests() {
        let digest = MultiDigest::parse(&format!("sha256:{HELLO_SHA256}")).unwrap();
        let err = digest.verify(&b"hellO"[..]).unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with(&format!(
                "Expected stream to have digest 'sha256:{HELLO_SHA256}' but was 'sha256:"
            )),
            "{text}"
        );
    }

    #[test]
    fn empty_digest_gets_the_go_error_text() {
        for text in ["", ";", ";;"] {
            let err = MultiDigest::parse(text).unwrap_err();
            assert_eq!(
                err.to_string(),
                "no digest algorithm found. Supported algorithms: sha1, sha256, sha512"
            );
        }
    }

    #[test]
    fn non_alphanumeric_pieces_are_refused() {
        let err = MultiDigest::parse("sha1:abc-def").unwrap_err();
        assert_eq!(
            err.to_string(),
            "unable to parse digest string. Digest and algorithm key can only contain alpha-numeric characters"
        );
        assert!(MultiDigest::parse("sha256:").is_err());
    }

    #[test]
    fn duplicate_algorithms_are_refused() {
        let err = MultiDigest::parse("abc;sha1:def").unwrap_err();
        assert_eq!(
            err.to_string(),
            "Multiple digests of the same algorithm 'sha1' found in digests 'abc;def'"
        );
    }

    #[test]
    fn unknown_algorithms_parse_but_cannot_verify() {
        let digest = MultiDigest::parse("md5:abcd").unwrap();
        assert_eq!(digest.to_string(), "md5:abcd");
        let err = digest.verify(&b"hello"[..]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Unable to create digest of unknown algorithm 'md5'"
        );
        // With a known piece beside it, the known one is used.
        let digest = MultiDigest::parse(&format!("md5:abcd;{HELLO_SHA1}")).unwrap();
        digest.verify(&b"hello"[..]).unwrap();
    }

    #[test]
    fn compute_gives_every_requested_algorithm() {
        let digest =
            MultiDigest::compute(&b"hello"[..], &[Algorithm::Sha1, Algorithm::Sha512]).unwrap();
        assert_eq!(
            digest.to_string(),
            format!("{HELLO_SHA1};sha512:{HELLO_SHA512}")
        );
    }

    #[test]
    fn serde_uses_the_string_form() {
        let digest: MultiDigest =
            serde_json::from_str(&format!("\"sha256:{HELLO_SHA256}\"")).unwrap();
        assert_eq!(
            serde_json::to_string(&digest).unwrap(),
            format!("\"sha256:{HELLO_SHA256}\"")
        );
        assert!(serde_json::from_str::<MultiDigest>("\"\"").is_err());
    }
}
