//! The snapshot manifest: the commit point of a snapshot.
//!
//! It lists the snapshot's archives (name, kind, size, and the digest of the index that names
//! every chunk, which transitively covers every byte) and the fingerprint of the key that
//! encrypted them. It is stored as:
//!
//! ```text
//! offset size field
//!      0    4 magic "ICMF"
//!      4    2 version (1, u16 LE)
//!      6    2 flags: bit 0 signed
//!      8    4 body length n (u32 LE, at most 1 MiB)
//!     12    n body: postcard encoding of `Manifest`
//!   12+n   32 SHA-256 of the body (integrity without any key)
//!   44+n   32 HMAC-SHA256 of the body under the key's signing key (only when signed)
//! ```
//!
//! An encrypted snapshot's manifest is signed, so a client holding the key can prove that the
//! server did not swap archives or fingerprints.

use ironcore_types::{ChunkId, Fingerprint, SnapshotRef};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::crypto::CryptKey;
use crate::index::IndexKind;
use crate::{Error, Result};

const MAGIC: [u8; 4] = *b"ICMF";
const VERSION: u16 = 1;
const MAX_BODY: usize = 1 << 20;

/// One archive of a snapshot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestFile {
    /// The archive's name within the snapshot (`root.payload`, `disk0.img`).
    pub name: String,
    /// How it was chunked.
    pub kind: IndexKind,
    /// Its size in bytes.
    pub size: u64,
    /// The digest (and chunk id) of its stored index: the archive's checksum.
    pub index: ChunkId,
}

/// What a committed snapshot consists of.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Which snapshot this is.
    pub snapshot: SnapshotRef,
    /// Its archives.
    pub files: Vec<ManifestFile>,
    /// The key that encrypted it, if any.
    pub key_fingerprint: Option<Fingerprint>,
    /// When the backup finished (epoch seconds).
    pub finished: i64,
}

impl Manifest {
    /// The archive named `name`.
    pub fn file(&self, name: &str) -> Option<&ManifestFile> {
        self.files.iter().find(|f| f.name == name)
    }

    /// The logical size of all archives.
    pub fn size(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }

    /// The stored bytes; signed when a key is given (it must be the snapshot's key).
    pub fn encode(&self, key: Option<&CryptKey>) -> Result<Vec<u8>> {
        if key.map(CryptKey::fingerprint) != self.key_fingerprint {
            return Err(Error::InvalidInput {
                what: "manifest signature",
                detail: "a manifest is signed with the key that encrypted its snapshot".into(),
            });
        }
        let body = postcard::to_allocvec(self)
            .map_err(|e| Error::corrupt("manifest", format!("cannot encode: {e}")))?;
        if body.len() > MAX_BODY {
            return Err(Error::InvalidInput {
                what: "manifest",
                detail: format!("{} bytes exceeds the 1 MiB manifest limit", body.len()),
            });
        }
        let mut out = Vec::with_capacity(body.len() + 76);
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&u16::from(key.is_some()).to_le_bytes());
        out.extend_from_slice(&(body.len() as u32).to_le_bytes());
        out.extend_from_slice(&body);
        out.extend_from_slice(&Sha256::digest(&body));
        if let Some(k) = key {
            out.extend_from_slice(&k.sign(&body));
        }
        Ok(out)
    }

    /// Parses stored bytes and checks their integrity (not the signature: see
    /// [`Manifest::verify_signature`]).
    pub fn decode(bytes: &[u8]) -> Result<(Self, Option<[u8; 32]>)> {
        const WHAT: &str = "manifest";
        if bytes.len() < 12 || bytes[0..4] != MAGIC {
            return Err(Error::corrupt(WHAT, "bad magic or too short"));
        }
        let version = u16::from_le_bytes([bytes[4], bytes[5]]);
        let flags = u16::from_le_bytes([bytes[6], bytes[7]]);
        if version != VERSION || flags > 1 {
            return Err(Error::corrupt(
                WHAT,
                format!("version {version} / flags {flags} not supported"),
            ));
        }
        let n = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize;
        let signed = flags == 1;
        let want = 12 + n + 32 + if signed { 32 } else { 0 };
        if n > MAX_BODY || bytes.len() != want {
            return Err(Error::corrupt(
                WHAT,
                format!("{} bytes, expected {want}", bytes.len()),
            ));
        }
        let body = &bytes[12..12 + n];
        if Sha256::digest(body)[..] != bytes[12 + n..12 + n + 32] {
            return Err(Error::corrupt(WHAT, "checksum does not match the body"));
        }
        let manifest: Manifest = postcard::from_bytes(body)
            .map_err(|e| Error::corrupt(WHAT, format!("body does not parse: {e}")))?;
        let signature = signed.then(|| {
            let mut s = [0u8; 32];
            s.copy_from_slice(&bytes[12 + n + 32..]);
            s
        });
        if signed != manifest.key_fingerprint.is_some() {
            return Err(Error::corrupt(
                WHAT,
                "signature presence does not match the key fingerprint",
            ));
        }
        Ok((manifest, signature))
    }

    /// Checks that `key` is the snapshot's key (`fingerprint mismatch` otherwise, naming both)
    /// and that the signature over `bytes` is genuine.
    pub fn verify_signature(bytes: &[u8], key: &CryptKey) -> Result<Self> {
        let (manifest, signature) = Self::decode(bytes)?;
        let Some(expected) = manifest.key_fingerprint else {
            return Ok(manifest);
        };
        if expected != key.fingerprint() {
            return Err(Error::FingerprintMismatch {
                expected,
                actual: key.fingerprint(),
            });
        }
        let n = bytes.len() - 12 - 64;
        if signature != Some(key.sign(&bytes[12..12 + n])) {
            return Err(Error::corrupt(
                "manifest",
                format!(
                    "signature of {} does not verify: the manifest was altered",
                    manifest.snapshot
                ),
            ));
        }
        Ok(manifest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(fp: Option<Fingerprint>) -> Manifest {
        Manifest {
            snapshot: SnapshotRef {
                ns: "prod".parse().unwrap(),
                group: "host/web01".parse().unwrap(),
                time: 1_700_000_000,
            },
            files: vec![ManifestFile {
                name: "root.payload".into(),
                kind: IndexKind::Dynamic,
                size: 12345,
                index: ChunkId::from_bytes([9; 32]),
            }],
            key_fingerprint: fp,
            finished: 1_700_000_100,
        }
    }

    #[test]
    fn unsigned_manifest_round_trips() {
        let m = sample(None);
        let bytes = m.encode(None).unwrap();
        assert_eq!(Manifest::decode(&bytes).unwrap(), (m, None));
    }

    #[test]
    fn signed_manifest_verifies_only_with_its_key() {
        let key = CryptKey::generate();
        let other = CryptKey::generate();
        let m = sample(Some(key.fingerprint()));
        let bytes = m.encode(Some(&key)).unwrap();
        assert_eq!(Manifest::verify_signature(&bytes, &key).unwrap(), m);
        let err = Manifest::verify_signature(&bytes, &other).unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("fingerprint mismatch"), "{text}");
        assert!(text.contains(&key.fingerprint().to_string()));
        assert!(text.contains(&other.fingerprint().to_string()));
    }

    #[test]
    fn any_flipped_byte_is_refused() {
        let key = CryptKey::generate();
        let bytes = sample(Some(key.fingerprint())).encode(Some(&key)).unwrap();
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x01;
            assert!(
                Manifest::verify_signature(&bad, &key).is_err(),
                "byte {i} accepted"
            );
        }
    }
}
