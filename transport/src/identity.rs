//! A node's identity: an ECDSA P-256 key pair and a self-signed certificate, generated on first
//! start and kept on disk (key with mode 0600). The node is known to its peers by the SHA-256
//! fingerprint of its certificate.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use ironcore_types::{Fingerprint, NodeId};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use sha2::{Digest, Sha256};

use crate::{Result, TransportError};

const KEY_FILE: &str = "node.key";
const CERT_FILE: &str = "node.crt";

/// The key pair and certificate of one node.
#[derive(Debug)]
pub struct NodeIdentity {
    cert: CertificateDer<'static>,
    key: PrivatePkcs8KeyDer<'static>,
    fingerprint: Fingerprint,
}

impl Clone for NodeIdentity {
    fn clone(&self) -> Self {
        Self {
            cert: self.cert.clone(),
            key: self.key.clone_key(),
            fingerprint: self.fingerprint,
        }
    }
}

/// The SHA-256 fingerprint of a DER certificate.
pub fn fingerprint_of(cert: &[u8]) -> Fingerprint {
    Fingerprint::from_bytes(Sha256::digest(cert).into())
}

impl NodeIdentity {
    /// A fresh identity in memory (tests, and the first start before it is saved).
    pub fn generate(node: &NodeId) -> Result<Self> {
        let certified = rcgen::generate_simple_self_signed(vec![node.as_str().to_string()])
            .map_err(|e| TransportError::Identity {
                path: "<memory>".into(),
                detail: format!("generating a certificate: {e}"),
            })?;
        let cert = certified.cert.der().clone();
        let key = PrivatePkcs8KeyDer::from(certified.signing_key.serialize_der());
        Ok(Self {
            fingerprint: fingerprint_of(&cert),
            cert,
            key,
        })
    }

    /// Loads the identity from `dir`, or generates and saves one there on first start.
    pub fn load_or_generate(dir: &Path, node: &NodeId) -> Result<Self> {
        let err = |detail: String| TransportError::Identity {
            path: dir.display().to_string(),
            detail,
        };
        let (key_path, cert_path) = (dir.join(KEY_FILE), dir.join(CERT_FILE));
        if key_path.exists() || cert_path.exists() {
            let mode = fs::metadata(&key_path)
                .map_err(|e| err(format!("{KEY_FILE}: {e}")))?
                .permissions()
                .mode();
            if mode & 0o077 != 0 {
                return Err(err(format!(
                    "{KEY_FILE} is readable by others (mode {:o}); run `chmod 600 {}`",
                    mode & 0o777,
                    key_path.display()
                )));
            }
            let key = fs::read(&key_path).map_err(|e| err(format!("{KEY_FILE}: {e}")))?;
            let cert = fs::read(&cert_path).map_err(|e| err(format!("{CERT_FILE}: {e}")))?;
            return Ok(Self {
                fingerprint: fingerprint_of(&cert),
                cert: CertificateDer::from(cert),
                key: PrivatePkcs8KeyDer::from(key),
            });
        }
        fs::create_dir_all(dir).map_err(|e| err(e.to_string()))?;
        let id = Self::generate(node)?;
        let write = |path: &Path, bytes: &[u8], mode: u32| -> std::io::Result<()> {
            let mut f = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(mode)
                .open(path)?;
            f.write_all(bytes)?;
            f.sync_all()
        };
        write(&key_path, id.key.secret_pkcs8_der(), 0o600)
            .map_err(|e| err(format!("{KEY_FILE}: {e}")))?;
        write(&cert_path, &id.cert, 0o600).map_err(|e| err(format!("{CERT_FILE}: {e}")))?;
        Ok(id)
    }

    /// The certificate's fingerprint: the node's identity for pinning.
    pub fn fingerprint(&self) -> Fingerprint {
        self.fingerprint
    }

    /// The key of this node's QUIC stateless resets, derived from its private key: the same
    /// after a restart, so a peer still holding a connection to the node's previous process
    /// is told at its next packet that the connection is gone (instead of waiting out the idle
    /// timeout, 30 s, before it redials). See also [`Self::cid_key`].
    pub(crate) fn reset_key(&self) -> ring::hmac::Key {
        ring::hmac::Key::new(
            ring::hmac::HMAC_SHA256,
            self.derive(b"ironcore-backup QUIC stateless reset key v1")
                .as_ref(),
        )
    }

    /// The key of this node's QUIC connection ids, derived from its private key: a restarted
    /// process recognises the ids its previous one handed out, which it must to answer a
    /// packet on an old connection with a stateless reset (ids it does not recognise are
    /// dropped silently).
    pub(crate) fn cid_key(&self) -> u64 {
        let tag = self.derive(b"ironcore-backup QUIC connection id key v1");
        let mut first = [0u8; 8];
        first.copy_from_slice(&tag.as_ref()[..8]);
        u64::from_le_bytes(first)
    }

    fn derive(&self, label: &[u8]) -> ring::hmac::Tag {
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, self.key.secret_pkcs8_der());
        ring::hmac::sign(&key, label)
    }

    pub(crate) fn cert(&self) -> CertificateDer<'static> {
        self.cert.clone()
    }

    pub(crate) fn key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(self.key.clone_key())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_is_saved_with_safe_permissions_and_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let node: NodeId = "pbs-a1".parse().unwrap();
        let first = NodeIdentity::load_or_generate(dir.path(), &node).unwrap();
        let mode = fs::metadata(dir.path().join(KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let again = NodeIdentity::load_or_generate(dir.path(), &node).unwrap();
        assert_eq!(first.fingerprint(), again.fingerprint());
        fs::set_permissions(dir.path().join(KEY_FILE), fs::Permissions::from_mode(0o644)).unwrap();
        let err = NodeIdentity::load_or_generate(dir.path(), &node).unwrap_err();
        assert!(err.to_string().contains("chmod 600"), "{err}");
    }
}
