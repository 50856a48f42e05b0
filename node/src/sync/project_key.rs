//! The project key: encrypts unencrypted snapshots as a push sync job sends them ("Encrypt on
//! push" in the replication manual).
//!
//! A node holds it when its configuration has a `[project-key]` section (a key file and a file
//! holding its passphrase, readable by the daemon's user only); the daemon unlocks it at start —
//! or refuses to start — and keeps it in memory. A push job created with `--encrypt` records the
//! key's fingerprint: the node that runs the job must hold that same key, and both this cluster
//! and the remote must have it registered, so a restore at the other site can be checked.
//!
//! [`Reencryptor`] is the pure part: a stored unencrypted chunk in, the encrypted chunk under
//! its keyed id out; indexes and the manifest renamed to match. Chunk boundaries are kept, so
//! an archive's layout — and every offset a tree's metadata points at — is the same on both
//! sides; only ids and stored bytes differ.

use std::collections::HashMap;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;

use ironcore_chunkstore::envelope::{DEFAULT_ZSTD_LEVEL, chunk_id, decode_chunk, encode_chunk};
use ironcore_chunkstore::{ArchiveIndex, CryptKey, KeyFile, Manifest, ManifestFile};
use ironcore_types::ChunkId;

use crate::config::ProjectKeyConfig;
use crate::{NodeError, Result};

/// Unlocks the project key named by `cfg`. The passphrase file must not be readable by group
/// or others; its first line is the passphrase.
pub fn unlock(cfg: &ProjectKeyConfig) -> Result<CryptKey> {
    let bad = |path: &std::path::Path, detail: String| NodeError::Config {
        path: path.to_path_buf(),
        detail,
    };
    let pass_path = &cfg.passphrase_file;
    let mut file = std::fs::File::open(pass_path)
        .map_err(|e| bad(pass_path, format!("[project-key] passphrase-file: {e}")))?;
    let mode = file
        .metadata()
        .map_err(|e| bad(pass_path, format!("[project-key] passphrase-file: {e}")))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(bad(
            pass_path,
            format!(
                "[project-key] passphrase-file can be read by other users (mode {:o}); run `chmod 600 {}`",
                mode & 0o777,
                pass_path.display()
            ),
        ));
    }
    let mut text = String::new();
    file.read_to_string(&mut text)
        .map_err(|e| bad(pass_path, format!("[project-key] passphrase-file: {e}")))?;
    let pass = text.lines().next().unwrap_or_default();
    let key = KeyFile::load(&cfg.keyfile)
        .and_then(|k| k.unlock(pass, &cfg.keyfile))
        .map_err(|e| bad(&cfg.keyfile, format!("[project-key] keyfile: {e}")))?;
    Ok(key)
}

/// Re-encrypts one snapshot under the project key, remembering each chunk's new id.
#[derive(Debug)]
pub struct Reencryptor {
    key: CryptKey,
    renamed: HashMap<ChunkId, ChunkId>,
}

/// One chunk re-encrypted: its old id, its new id, its new stored bytes.
pub type Reencrypted = (ChunkId, ChunkId, Vec<u8>);

impl Reencryptor {
    /// Starts with nothing renamed.
    pub fn new(key: CryptKey) -> Self {
        Self {
            key,
            renamed: HashMap::new(),
        }
    }

    /// The key.
    pub fn key(&self) -> &CryptKey {
        &self.key
    }

    /// Whether chunk `old` was re-encrypted already.
    pub fn done(&self, old: &ChunkId) -> bool {
        self.renamed.contains_key(old)
    }

    /// Opens stored unencrypted chunk `old` (its plaintext checked against the id) and
    /// encrypts it under `key`. Pure CPU work: callers run it off the async threads.
    pub fn encrypt(key: &CryptKey, old: &ChunkId, stored: &[u8]) -> Result<Reencrypted> {
        let plain = decode_chunk(stored, old, None)?;
        let new = chunk_id(&plain, Some(key));
        let body = encode_chunk(&new, &plain, Some(key), DEFAULT_ZSTD_LEVEL)?;
        Ok((*old, new, body))
    }

    /// Records what [`Reencryptor::encrypt`] made of a chunk.
    pub fn record(&mut self, old: ChunkId, new: ChunkId) {
        self.renamed.insert(old, new);
    }

    /// `index` with every chunk renamed, as the id and stored bytes of its index chunk
    /// (unencrypted, like every index, so any node can read it for GC and verify).
    pub fn index(&self, index: &ArchiveIndex) -> Result<(ChunkId, Vec<u8>)> {
        let renamed = index.with_ids(|old| {
            self.renamed
                .get(old)
                .copied()
                .ok_or_else(|| ironcore_chunkstore::Error::InvalidInput {
                    what: "re-encrypted index",
                    detail: format!("chunk {old} was not re-encrypted"),
                })
        })?;
        let bytes = renamed.encode();
        let id = chunk_id(&bytes, None);
        Ok((id, encode_chunk(&id, &bytes, None, DEFAULT_ZSTD_LEVEL)?))
    }

    /// The manifest of the re-encrypted snapshot: `files` (with their new index ids), the key's
    /// fingerprint, signed with the key.
    pub fn manifest(&self, manifest: &Manifest, files: Vec<ManifestFile>) -> Result<Vec<u8>> {
        let out = Manifest {
            files,
            key_fingerprint: Some(self.key.fingerprint()),
            ..manifest.clone()
        };
        Ok(out.encode(Some(&self.key))?)
    }
}

#[cfg(test)]
mod tests {
    use ironcore_chunkstore::DynamicIndex;
    use ironcore_chunkstore::envelope::verify_stored;
    use ironcore_types::{BackupGroup, Namespace, SnapshotRef};

    use super::*;

    fn stored(plain: &[u8]) -> (ChunkId, Vec<u8>) {
        let id = chunk_id(plain, None);
        (
            id,
            encode_chunk(&id, plain, None, DEFAULT_ZSTD_LEVEL).unwrap(),
        )
    }

    #[test]
    fn a_snapshot_reencrypted_reads_back_with_the_key_only() {
        let key = CryptKey::generate();
        let mut re = Reencryptor::new(key.clone());
        let parts: [&[u8]; 2] = [b"first chunk of a file", b"second chunk, repeated"];
        let mut index = DynamicIndex::new();
        for p in [parts[0], parts[1], parts[1]] {
            let (old, body) = stored(p);
            index.push(p.len() as u64, old);
            if re.done(&old) {
                continue;
            }
            let (o, new, enc) = Reencryptor::encrypt(re.key(), &old, &body).unwrap();
            assert_eq!(o, old);
            assert_ne!(new, old, "encrypted chunks get keyed ids");
            verify_stored(&enc, &new).unwrap();
            assert_eq!(decode_chunk(&enc, &new, Some(&key)).unwrap(), p);
            assert!(decode_chunk(&enc, &new, Some(&CryptKey::generate())).is_err());
            assert!(decode_chunk(&enc, &new, None).is_err());
            re.record(old, new);
        }
        let index = ArchiveIndex::Dynamic(index);
        let (iid, ibody) = re.index(&index).unwrap();
        let renamed =
            ArchiveIndex::decode(index.kind(), &decode_chunk(&ibody, &iid, None).unwrap()).unwrap();
        assert_eq!(renamed.size(), index.size());
        assert_eq!(
            renamed.chunk_ids().collect::<Vec<_>>(),
            parts
                .iter()
                .chain([&parts[1]])
                .map(|p| key.chunk_id(p))
                .collect::<Vec<_>>()
        );
        let manifest = Manifest {
            snapshot: SnapshotRef {
                ns: Namespace::root(),
                group: "host/a".parse::<BackupGroup>().unwrap(),
                time: 1,
            },
            files: vec![ManifestFile {
                name: "payload.didx".into(),
                kind: index.kind(),
                size: index.size(),
                index: chunk_id(&index.encode(), None),
            }],
            key_fingerprint: None,
            finished: 1,
        };
        let files = vec![ManifestFile {
            index: iid,
            ..manifest.files[0].clone()
        }];
        let bytes = re.manifest(&manifest, files).unwrap();
        let signed = Manifest::verify_signature(&bytes, &key).unwrap();
        assert_eq!(signed.key_fingerprint, Some(key.fingerprint()));
        assert_eq!(signed.files[0].index, iid);
        assert!(Manifest::verify_signature(&bytes, &CryptKey::generate()).is_err());
    }

    #[test]
    fn an_index_with_a_chunk_not_reencrypted_is_refused() {
        let re = Reencryptor::new(CryptKey::generate());
        let mut index = DynamicIndex::new();
        index.push(5, stored(b"never").0);
        let err = re.index(&ArchiveIndex::Dynamic(index)).unwrap_err();
        assert!(err.to_string().contains("was not re-encrypted"), "{err}");
    }

    #[test]
    fn a_passphrase_file_others_can_read_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let pass = dir.path().join("pass");
        std::fs::write(&pass, "a long passphrase\n").unwrap();
        let key = CryptKey::generate();
        let keyfile = dir.path().join("project.key");
        KeyFile::protect(
            &key,
            "a long passphrase",
            ironcore_chunkstore::KdfParams::minimum(),
        )
        .unwrap()
        .save(&keyfile)
        .unwrap();
        let cfg = ProjectKeyConfig {
            keyfile,
            passphrase_file: pass.clone(),
        };
        std::fs::set_permissions(&pass, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = unlock(&cfg).unwrap_err().to_string();
        assert!(err.contains("chmod 600"), "{err}");
        std::fs::set_permissions(&pass, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(unlock(&cfg).unwrap().fingerprint(), key.fingerprint());
        std::fs::write(&pass, "the wrong passphrase\n").unwrap();
        assert!(unlock(&cfg).is_err());
    }
}
