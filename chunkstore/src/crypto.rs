//! The encryption key and everything derived from it.
//!
//! One 32-byte secret yields, through HKDF-SHA256 with distinct labels: the AES-256-GCM key that
//! encrypts chunk payloads, the HMAC key that names encrypted chunks (so the server cannot
//! confirm a guess of their content and deduplication stays within one key), the HMAC key that
//! signs manifests, the BLAKE3 key of quick hashes ([`crate::QuickHash`]), and the key's public
//! fingerprint. The cipher sits behind this one small type
//! so it can be swapped if measurement says so (DESIGN.md §2).

use aes_gcm::aead::{AeadInOut, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use ironcore_types::{ChunkId, Fingerprint};
use rand::RngCore;
use sha2::Sha256;

/// Bytes of an AES-GCM nonce.
pub const NONCE_LEN: usize = 12;
/// Bytes of an AES-GCM authentication tag.
pub const TAG_LEN: usize = 16;

const HKDF_SALT: &[u8] = b"ironcore-backup key v1";

/// An encryption key, ready to use. Cheap to clone (the cipher schedule is copied).
#[derive(Clone)]
pub struct CryptKey {
    secret: [u8; 32],
    cipher: Aes256Gcm,
    id_key: [u8; 32],
    sign_key: [u8; 32],
    quick_key: [u8; 32],
    fingerprint: Fingerprint,
}

fn derive(secret: &[u8; 32], label: &[u8]) -> [u8; 32] {
    let hk = Hkdf::<Sha256>::new(Some(HKDF_SALT), secret);
    let mut out = [0u8; 32];
    // Invariant: 32 bytes is far below HKDF-SHA256's limit of 255 * 32 bytes.
    hk.expand(label, &mut out)
        .expect("32-byte HKDF output is always valid");
    out
}

fn hmac(key: &[u8; 32], parts: &[&[u8]]) -> [u8; 32] {
    // Invariant: HMAC accepts keys of any length.
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes any key size");
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().into()
}

impl CryptKey {
    /// A fresh random key.
    pub fn generate() -> Self {
        let mut secret = [0u8; 32];
        rand::rng().fill_bytes(&mut secret);
        Self::from_secret(secret)
    }

    /// The key for a known secret (from a key file or a paper key).
    pub fn from_secret(secret: [u8; 32]) -> Self {
        let enc = derive(&secret, b"chunk-encryption");
        // Invariant: `enc` is exactly the 32 bytes AES-256 needs.
        let cipher = Aes256Gcm::new_from_slice(&enc).expect("AES-256 key is 32 bytes");
        Self {
            secret,
            cipher,
            id_key: derive(&secret, b"chunk-id"),
            sign_key: derive(&secret, b"manifest-signature"),
            quick_key: derive(&secret, b"quick-hash"),
            fingerprint: Fingerprint::from_bytes(derive(&secret, b"fingerprint")),
        }
    }

    /// The secret, for writing a key file or a paper key.
    pub(crate) fn secret(&self) -> &[u8; 32] {
        &self.secret
    }

    /// The key's public fingerprint, recorded with every snapshot it encrypts.
    pub fn fingerprint(&self) -> Fingerprint {
        self.fingerprint
    }

    /// The id of an encrypted chunk: HMAC-SHA256 of its plaintext under the id key.
    pub fn chunk_id(&self, plain: &[u8]) -> ChunkId {
        ChunkId::from_bytes(crate::sha256::hmac(&self.id_key, plain))
    }

    /// The ids of two encrypted chunks, hashed together.
    pub(crate) fn chunk_id_pair(&self, a: &[u8], b: &[u8]) -> ([u8; 32], [u8; 32]) {
        crate::sha256::hmac_pair(&self.id_key, a, b)
    }

    /// The key of this key's quick hashes (keyed BLAKE3), so the server cannot confirm a
    /// guess of a chunk's content from the quick hash an index records either.
    pub(crate) fn quick_key(&self) -> &[u8; 32] {
        &self.quick_key
    }

    /// Encrypts `buf` in place under a fresh random nonce, binding the associated data
    /// `aad_a ++ aad_b` (the envelope header fields, chunk id included). Returns the nonce and
    /// the tag, which goes after the ciphertext.
    pub(crate) fn encrypt_with_aad(
        &self,
        aad_a: &[u8],
        aad_b: &[u8],
        buf: &mut [u8],
    ) -> ([u8; NONCE_LEN], [u8; TAG_LEN]) {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let aad = [aad_a, aad_b].concat();
        // Invariant: the only failure is a message over GCM's 64 GiB limit; chunks are at most
        // MAX_CHUNK_SIZE.
        let tag = self
            .cipher
            .encrypt_inout_detached(&Nonce::from(nonce), &aad, buf.into())
            .expect("a chunk is far below AES-GCM's message limit");
        let mut out = [0u8; TAG_LEN];
        out.copy_from_slice(&tag);
        (nonce, out)
    }

    /// Decrypts `buf` in place (removing the tag). `Err(())` if authentication fails: the bytes
    /// or the associated data were modified, or this is the wrong key.
    pub(crate) fn decrypt_with_aad(
        &self,
        aad_a: &[u8],
        aad_b: &[u8],
        nonce: &[u8; NONCE_LEN],
        buf: &mut Vec<u8>,
    ) -> Result<(), ()> {
        let aad = [aad_a, aad_b].concat();
        self.cipher
            .decrypt_in_place(&Nonce::from(*nonce), &aad, buf)
            .map_err(|_| ())
    }

    /// The signature of a manifest body: HMAC-SHA256 under the signing key.
    pub fn sign(&self, data: &[u8]) -> [u8; 32] {
        hmac(&self.sign_key, &[data])
    }
}

impl std::fmt::Debug for CryptKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CryptKey({})", self.fingerprint)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_keys_differ_and_are_stable() {
        let k = CryptKey::from_secret([7; 32]);
        let again = CryptKey::from_secret([7; 32]);
        assert_eq!(k.fingerprint(), again.fingerprint());
        assert_eq!(k.chunk_id(b"x"), again.chunk_id(b"x"));
        assert_ne!(k.id_key, k.sign_key);
        assert_ne!(k.quick_key, k.id_key);
        assert_ne!(
            k.fingerprint(),
            CryptKey::from_secret([8; 32]).fingerprint()
        );
    }

    #[test]
    fn encrypt_round_trips_and_binds_the_associated_data() {
        let k = CryptKey::generate();
        let id = k.chunk_id(b"hello");
        let mut buf = b"hello".to_vec();
        let (nonce, tag) = k.encrypt_with_aad(b"hdr", id.as_bytes(), &mut buf);
        assert_ne!(buf, b"hello");
        buf.extend_from_slice(&tag);
        let mut wrong_id = buf.clone();
        let other = k.chunk_id(b"other");
        assert!(
            k.decrypt_with_aad(b"hdr", other.as_bytes(), &nonce, &mut wrong_id)
                .is_err()
        );
        k.decrypt_with_aad(b"hdr", id.as_bytes(), &nonce, &mut buf)
            .unwrap();
        assert_eq!(buf, b"hello");
    }
}
