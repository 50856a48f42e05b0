//! Key files: the encryption key's secret sealed under a passphrase.
//!
//! The passphrase goes through Argon2id (memory-hard, parameters stored in the file) to a key
//! that seals the 32-byte secret with AES-256-GCM; the fingerprint is bound as associated data.
//! A wrong passphrase, or any change to the file, fails the tag and is reported as a wrong
//! passphrase; nothing is ever derived from a half-valid file.
//!
//! On disk it is versioned JSON, written with mode 0600. The same fields pack into 121 bytes
//! for the paper key ([`crate::paperkey`]).

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use aes_gcm::aead::{AeadInOut, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use argon2::{Algorithm, Argon2, Params, Version};
use ironcore_types::Fingerprint;
use rand::RngCore;
use serde::{Deserialize, Serialize};

use crate::crypto::CryptKey;
use crate::{Error, Result};

const FORMAT_VERSION: u32 = 1;
/// Bytes of a packed key file (see [`KeyFile::to_bytes`]).
pub const PACKED_LEN: usize = 1 + 12 + 16 + 12 + 48 + 32;

/// Argon2id cost parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct KdfParams {
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Passes.
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
}

impl Default for KdfParams {
    /// 64 MiB, 3 passes, 1 lane: about half a second on the reference machine.
    fn default() -> Self {
        Self {
            memory_kib: 64 * 1024,
            iterations: 3,
            parallelism: 1,
        }
    }
}

impl KdfParams {
    /// The cheapest parameters accepted (8 MiB, 1 pass); for tests and tiny devices.
    pub fn minimum() -> Self {
        Self {
            memory_kib: 8 * 1024,
            iterations: 1,
            parallelism: 1,
        }
    }

    fn check(&self) -> Result<Params> {
        let sane = self.memory_kib >= 8 * 1024
            && self.memory_kib <= 4 * 1024 * 1024
            && (1..=16).contains(&self.iterations)
            && (1..=8).contains(&self.parallelism);
        if !sane {
            return Err(Error::InvalidInput {
                what: "key derivation parameters",
                detail: format!("{self:?}: use 8 MiB-4 GiB memory, 1-16 passes, 1-8 lanes"),
            });
        }
        Params::new(self.memory_kib, self.iterations, self.parallelism, Some(32)).map_err(|e| {
            Error::InvalidInput {
                what: "key derivation parameters",
                detail: e.to_string(),
            }
        })
    }

    fn derive(&self, passphrase: &str, salt: &[u8; 16]) -> Result<Aes256Gcm> {
        let params = self.check()?;
        let mut kek = [0u8; 32];
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            .hash_password_into(passphrase.as_bytes(), salt, &mut kek)
            .map_err(|e| Error::InvalidInput {
                what: "passphrase",
                detail: e.to_string(),
            })?;
        Aes256Gcm::new_from_slice(&kek)
            .map_err(|_| Error::corrupt("key file", "derived key has the wrong size"))
    }
}

/// A passphrase-protected encryption key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct KeyFile {
    /// Format version (1).
    pub version: u32,
    /// Argon2id parameters.
    pub kdf: KdfParams,
    /// Argon2id salt (hex).
    #[serde(with = "hex::serde")]
    pub salt: [u8; 16],
    /// AES-GCM nonce (hex).
    #[serde(with = "hex::serde")]
    pub nonce: [u8; 12],
    /// The sealed secret and tag (hex).
    #[serde(with = "hex::serde")]
    pub sealed: Vec<u8>,
    /// The key's fingerprint.
    pub fingerprint: Fingerprint,
}

fn aad(fp: &Fingerprint) -> Vec<u8> {
    [b"ironcore key file v1".as_slice(), fp.as_bytes()].concat()
}

impl KeyFile {
    /// Seals `key` under `passphrase`.
    pub fn protect(key: &CryptKey, passphrase: &str, kdf: KdfParams) -> Result<Self> {
        if passphrase.chars().count() < 8 {
            return Err(Error::InvalidInput {
                what: "passphrase",
                detail: "use at least 8 characters".into(),
            });
        }
        let mut salt = [0u8; 16];
        let mut nonce = [0u8; 12];
        rand::rng().fill_bytes(&mut salt);
        rand::rng().fill_bytes(&mut nonce);
        let cipher = kdf.derive(passphrase, &salt)?;
        let mut sealed = key.secret().to_vec();
        let fingerprint = key.fingerprint();
        cipher
            .encrypt_in_place(&Nonce::from(nonce), &aad(&fingerprint), &mut sealed)
            .map_err(|_| Error::corrupt("key file", "sealing failed"))?;
        Ok(Self {
            version: FORMAT_VERSION,
            kdf,
            salt,
            nonce,
            sealed,
            fingerprint,
        })
    }

    /// Opens the key with `passphrase`. `source` names the file in the error.
    pub fn unlock(&self, passphrase: &str, source: &Path) -> Result<CryptKey> {
        let wrong = || Error::WrongPassphrase {
            path: source.to_path_buf(),
        };
        if self.version != FORMAT_VERSION || self.sealed.len() != 48 {
            return Err(Error::corrupt(
                "key file",
                format!(
                    "version {} / sealed length {}",
                    self.version,
                    self.sealed.len()
                ),
            ));
        }
        let cipher = self.kdf.derive(passphrase, &self.salt)?;
        let mut secret = self.sealed.clone();
        cipher
            .decrypt_in_place(
                &Nonce::from(self.nonce),
                &aad(&self.fingerprint),
                &mut secret,
            )
            .map_err(|_| wrong())?;
        let mut s = [0u8; 32];
        s.copy_from_slice(&secret);
        let key = CryptKey::from_secret(s);
        if key.fingerprint() != self.fingerprint {
            return Err(wrong());
        }
        Ok(key)
    }

    /// Reads a key file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = fs::read_to_string(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::InvalidInput {
                what: "key file",
                detail: format!(
                    "encryption key not found: '{}' does not exist; check the --keyfile path",
                    path.display()
                ),
            },
            _ => Error::io("reading key file", path, e),
        })?;
        serde_json::from_str(&text)
            .map_err(|e| Error::corrupt("key file", format!("'{}': {e}", path.display())))
    }

    /// Writes the key file with mode 0600, refusing to overwrite an existing file.
    pub fn save(&self, path: &Path) -> Result<()> {
        let json = serde_json::to_string_pretty(self)
            .map_err(|e| Error::corrupt("key file", e.to_string()))?;
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| Error::io("creating key file", path, e))?;
        f.write_all(json.as_bytes())
            .and_then(|()| f.write_all(b"\n"))
            .and_then(|()| f.sync_all())
            .map_err(|e| Error::io("writing key file", path, e))
    }

    /// The packed form for the paper key: version, KDF parameters, salt, nonce, sealed secret,
    /// fingerprint.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(PACKED_LEN);
        out.push(self.version as u8);
        out.extend_from_slice(&self.kdf.memory_kib.to_le_bytes());
        out.extend_from_slice(&self.kdf.iterations.to_le_bytes());
        out.extend_from_slice(&self.kdf.parallelism.to_le_bytes());
        out.extend_from_slice(&self.salt);
        out.extend_from_slice(&self.nonce);
        out.extend_from_slice(&self.sealed);
        out.extend_from_slice(self.fingerprint.as_bytes());
        out
    }

    /// Unpacks [`KeyFile::to_bytes`].
    pub fn from_bytes(b: &[u8]) -> Result<Self> {
        if b.len() != PACKED_LEN || u32::from(b[0]) != FORMAT_VERSION {
            return Err(Error::corrupt(
                "key",
                format!(
                    "packed key of {} bytes, version {}",
                    b.len(),
                    b.first().copied().unwrap_or(0)
                ),
            ));
        }
        let u32_at = |at: usize| u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
        let mut salt = [0u8; 16];
        salt.copy_from_slice(&b[13..29]);
        let mut nonce = [0u8; 12];
        nonce.copy_from_slice(&b[29..41]);
        let mut fp = [0u8; 32];
        fp.copy_from_slice(&b[89..121]);
        Ok(Self {
            version: FORMAT_VERSION,
            kdf: KdfParams {
                memory_kib: u32_at(1),
                iterations: u32_at(5),
                parallelism: u32_at(9),
            },
            salt,
            nonce,
            sealed: b[41..89].to_vec(),
            fingerprint: Fingerprint::from_bytes(fp),
        })
    }
}

/// A label for errors about a key that did not come from a file.
pub fn in_memory_source() -> PathBuf {
    PathBuf::from("<paper key>")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_file_round_trips_only_with_its_passphrase() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key.json");
        let key = CryptKey::generate();
        let kf = KeyFile::protect(&key, "correct horse", KdfParams::minimum()).unwrap();
        kf.save(&path).unwrap();
        assert!(
            kf.save(&path).is_err(),
            "an existing key file must not be overwritten"
        );
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let loaded = KeyFile::load(&path).unwrap();
        assert_eq!(
            loaded.unlock("correct horse", &path).unwrap().fingerprint(),
            key.fingerprint()
        );
        let err = loaded.unlock("wrong horse!", &path).unwrap_err();
        assert!(matches!(err, Error::WrongPassphrase { .. }), "{err}");
        assert_eq!(KeyFile::from_bytes(&kf.to_bytes()).unwrap(), kf);
    }

    #[test]
    fn short_passphrases_and_silly_costs_are_refused() {
        let key = CryptKey::generate();
        assert!(KeyFile::protect(&key, "short", KdfParams::minimum()).is_err());
        let bad = KdfParams {
            memory_kib: 1,
            ..KdfParams::minimum()
        };
        assert!(KeyFile::protect(&key, "long enough", bad).is_err());
    }
}
