//! Content digests as a validated type.
//!
//! A digest string comes from untrusted places (manifests, lock files, the command line) and one
//! ends up as a store path component, so it is parsed once here: only `sha256:` followed by exactly
//! 64 lowercase hex digits is accepted (CVE-2024-3727 was a digest joined into a path unchecked).

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest as _, Sha256};

/// A `sha256:<64 lowercase hex>` digest.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    hex: String,
}

/// Why a string is not a digest we accept.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid digest `{shown}`: {reason}")]
pub struct DigestError {
    shown: String,
    reason: &'static str,
}

impl Digest {
    /// Parses `sha256:<hex>`; anything else (other algorithms, case, length) is refused.
    pub fn parse(text: &str) -> Result<Self, DigestError> {
        let fail = |reason| DigestError {
            shown: text.chars().take(80).collect(),
            reason,
        };
        let (algorithm, hex) = text
            .split_once(':')
            .ok_or_else(|| fail("expected `sha256:<hex>`"))?;
        if algorithm != "sha256" {
            return Err(fail("only sha256 digests are supported"));
        }
        if hex.len() != 64 {
            return Err(fail("a sha256 digest has exactly 64 hex digits"));
        }
        if !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(fail("the hex part must be lowercase 0-9a-f"));
        }
        Ok(Self {
            hex: hex.to_owned(),
        })
    }

    /// The digest of `bytes`.
    pub fn of_bytes(bytes: &[u8]) -> Self {
        Self::from_hasher(Sha256::new_with_prefix(bytes))
    }

    /// Finishes a running sha256 into a digest.
    pub fn from_hasher(hasher: Sha256) -> Self {
        Self {
            hex: hex_string(&hasher.finalize()),
        }
    }

    /// The 64 hex digits; safe to use as a file name.
    pub fn hex(&self) -> &str {
        &self.hex
    }

    /// The first 12 hex digits, for tables.
    pub fn short(&self) -> &str {
        &self.hex[..12]
    }
}

/// Lowercase hex of `bytes`.
pub fn hex_string(bytes: &[u8]) -> String {
    use fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex)
    }
}

impl std::str::FromStr for Digest {
    type Err = DigestError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl Serialize for Digest {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn accepts_a_lowercase_sha256() {
        let d = Digest::parse(GOOD).unwrap();
        assert_eq!(d.to_string(), GOOD);
        assert_eq!(Digest::of_bytes(b""), d);
    }

    #[test]
    fn refuses_everything_that_could_become_a_path_trick() {
        for bad in [
            "sha256:../../x",
            "sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b85",
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b8555",
            "sha256:",
            "md5:d41d8cd98f00b204e9800998ecf8427e",
            "sha512:abc",
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        ] {
            assert!(Digest::parse(bad).is_err(), "{bad} was accepted");
        }
    }
}
