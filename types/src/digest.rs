//! 32-byte digests with a meaning: chunk ids and key fingerprints.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::ParseError;

macro_rules! digest_newtype {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name([u8; 32]);

        impl $name {
            /// Wraps raw digest bytes.
            pub const fn from_bytes(bytes: [u8; 32]) -> Self {
                Self(bytes)
            }

            /// The raw digest bytes.
            pub const fn as_bytes(&self) -> &[u8; 32] {
                &self.0
            }

            /// Lower-case hex of all 32 bytes.
            pub fn to_hex(&self) -> String {
                hex::encode(self.0)
            }
        }

        impl FromStr for $name {
            type Err = ParseError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let clean: String = s.chars().filter(|c| *c != ':').collect();
                let mut out = [0u8; 32];
                match hex::decode_to_slice(&clean, &mut out) {
                    Ok(()) => Ok(Self(out)),
                    Err(_) => Err(ParseError::Digest {
                        what: $what,
                        input: s.to_string(),
                        expected: "64 hex digits",
                    }),
                }
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                if s.is_human_readable() {
                    s.serialize_str(&self.to_hex())
                } else {
                    self.0.serialize(s)
                }
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                if d.is_human_readable() {
                    let s = String::deserialize(d)?;
                    s.parse().map_err(serde::de::Error::custom)
                } else {
                    <[u8; 32]>::deserialize(d).map(Self)
                }
            }
        }
    };
}

digest_newtype!(
    /// The address of a chunk in a datastore: SHA-256 of the plaintext for unencrypted data, or
    /// HMAC-SHA256 under a key derived from the encryption key for encrypted data (so the server
    /// cannot confirm guesses, and deduplication stays within one key).
    ChunkId,
    "chunk id"
);

digest_newtype!(
    /// The fingerprint of an encryption key (or of a node certificate). Shown as the first eight
    /// bytes in colon-separated hex, like `a1:b2:c3:d4:e5:f6:07:18`; stored in full.
    Fingerprint,
    "fingerprint"
);

impl fmt::Display for ChunkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for ChunkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ChunkId({})", &self.to_hex()[..16])
    }
}

impl Fingerprint {
    /// The short form operators compare: the first eight bytes, colon-separated.
    pub fn short(&self) -> String {
        self.0[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":")
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.short())
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({})", self.short())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_id_hex_round_trips() {
        let id = ChunkId::from_bytes([0xab; 32]);
        let parsed: ChunkId = id.to_hex().parse().unwrap();
        assert_eq!(parsed, id);
    }

    #[test]
    fn bad_hex_is_rejected_with_the_expected_form() {
        let err = "zz".parse::<ChunkId>().unwrap_err();
        assert!(err.to_string().contains("64 hex digits"), "{err}");
    }

    #[test]
    fn fingerprint_short_form_is_colon_separated() {
        let fp = Fingerprint::from_bytes([0x0f; 32]);
        assert_eq!(fp.to_string(), "0f:0f:0f:0f:0f:0f:0f:0f");
        let json = serde_json::to_string(&fp).unwrap();
        let back: Fingerprint = serde_json::from_str(&json).unwrap();
        assert_eq!(back, fp);
    }
}
