//! The chunk envelope: how one chunk is stored on disk and sent between nodes.
//!
//! ```text
//! offset size field
//!      0    4 magic "ICCK"
//!      4    1 version (2; 1 is still read)
//!      5    1 flags: bit 0 compressed (zstd), bit 1 encrypted (AES-256-GCM); others must be 0
//!      6    2 reserved, zero
//!      8    4 raw length: plaintext bytes (u32 LE, at most MAX_CHUNK_SIZE)
//!     12    4 payload length: bytes after the header (u32 LE)
//!     16   12 nonce (zero when not encrypted)
//!     28    4 reserved, zero
//!     32   32 chunk id
//!     64   32 stored digest (see below)
//!     96    - payload: plaintext, zstd frame, or ciphertext followed by the 16-byte GCM tag
//! ```
//!
//! Data is compressed before it is encrypted, and only when zstd makes it smaller. Encryption
//! binds bytes 0..64 of the header (which include the chunk id) as associated data, so no header
//! field can be changed without the tag failing. The stored digest lets any node verify a chunk
//! — encrypted or not — without the key: it is the SHA-256 of bytes 0..64 followed by the
//! payload, except for a version 2 chunk stored as plain bytes (neither compressed nor
//! encrypted). There the payload *is* the plaintext and the chunk id is already its SHA-256, so
//! the stored digest covers bytes 0..64 alone (which include the id) and the payload is checked
//! against the id: every byte is still covered by SHA-256, and neither the writer nor a restore
//! hashes a plain chunk twice.

use crate::sha256::Sha256;
use ironcore_types::ChunkId;

use crate::crypto::{CryptKey, NONCE_LEN, TAG_LEN};
use crate::{Error, Result};

/// The magic that opens every stored chunk.
pub const CHUNK_MAGIC: [u8; 4] = *b"ICCK";
/// The envelope version this code writes; version 1 (the stored digest always covers the
/// payload) is still read.
pub const CHUNK_VERSION: u8 = 2;
/// Bytes of the envelope header.
pub const HEADER_LEN: usize = 96;
/// The largest plaintext a chunk may hold.
pub const MAX_CHUNK_SIZE: usize = 16 << 20;
/// The zstd level of a new datastore, and of envelopes built away from one. Level 3 stores
/// the reference data set's /usr files 8% smaller than level 1 (259 against 281 MB) for 50%
/// more CPU; chunks where it does no better than level 1 (the data set's logs) and
/// incompressible ones are treated otherwise (see `compression_level`).
pub const DEFAULT_ZSTD_LEVEL: i32 = 3;

const FLAG_COMPRESSED: u8 = 1;
const FLAG_ENCRYPTED: u8 = 2;

/// The parsed header of a stored chunk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkHeader {
    /// The envelope version (1 or 2).
    pub version: u8,
    /// The chunk id recorded in the envelope.
    pub id: ChunkId,
    /// Whether the payload is a zstd frame (after decryption).
    pub compressed: bool,
    /// Whether the payload is AES-256-GCM ciphertext.
    pub encrypted: bool,
    /// Plaintext length.
    pub raw_len: usize,
    /// Payload length.
    pub payload_len: usize,
    /// The GCM nonce (zero when not encrypted).
    pub nonce: [u8; NONCE_LEN],
    /// SHA-256 of header bytes 0..64 and the payload (only of bytes 0..64 when
    /// [`ChunkHeader::payload_is_id`]).
    pub stored_digest: [u8; 32],
}

impl ChunkHeader {
    /// Whether the payload is the plaintext and is checked against the chunk id rather than
    /// the stored digest (version 2, neither compressed nor encrypted).
    pub fn payload_is_id(&self) -> bool {
        payload_is_id(self.version, self.compressed, self.encrypted)
    }
}

/// Whether an envelope of `version` with these flags holds the plaintext checked against the
/// chunk id (version 2 on, neither compressed nor encrypted).
fn payload_is_id(version: u8, compressed: bool, encrypted: bool) -> bool {
    version >= 2 && !compressed && !encrypted
}

/// The id of a plaintext chunk: SHA-256, or the key's HMAC for encrypted data.
pub fn chunk_id(plain: &[u8], key: Option<&CryptKey>) -> ChunkId {
    match key {
        Some(k) => k.chunk_id(plain),
        None => ChunkId::from_bytes(Sha256::digest(plain)),
    }
}

/// The ids of two plaintext chunks, hashed together (faster than two [`chunk_id`] calls).
pub fn chunk_id_pair(a: &[u8], b: &[u8], key: Option<&CryptKey>) -> (ChunkId, ChunkId) {
    let (ia, ib) = match key {
        Some(k) => k.chunk_id_pair(a, b),
        None => Sha256::digest_pair(a, b),
    };
    (ChunkId::from_bytes(ia), ChunkId::from_bytes(ib))
}

/// Wraps a plaintext chunk whose id the caller computed with [`chunk_id`]. `zstd_level` 0
/// disables compression.
pub fn encode_chunk(
    id: &ChunkId,
    plain: &[u8],
    key: Option<&CryptKey>,
    zstd_level: i32,
) -> Result<Vec<u8>> {
    Ok(match encode_chunk_parts(id, plain, key, zstd_level)? {
        Encoded::Envelope(bytes) => bytes,
        Encoded::HeaderOfPlain(header) => [&header[..], plain].concat(),
    })
}

/// An encoded chunk, as [`encode_chunk_parts`] leaves it.
#[derive(Debug)]
pub enum Encoded {
    /// The whole envelope.
    Envelope(Vec<u8>),
    /// The header of an envelope whose payload is the plaintext as it is (not compressed, not
    /// encrypted): the envelope is this header followed by the plaintext, which a caller that
    /// sends or writes it in pieces need not copy.
    HeaderOfPlain([u8; HEADER_LEN]),
}

/// [`encode_chunk`], leaving a chunk stored as plain bytes as its header alone.
pub fn encode_chunk_parts(
    id: &ChunkId,
    plain: &[u8],
    key: Option<&CryptKey>,
    zstd_level: i32,
) -> Result<Encoded> {
    if plain.len() > MAX_CHUNK_SIZE {
        return Err(Error::InvalidInput {
            what: "chunk",
            detail: format!(
                "{} bytes exceeds the {MAX_CHUNK_SIZE}-byte chunk limit",
                plain.len()
            ),
        });
    }
    // The envelope is built in one buffer: header, then the payload written straight after it
    // (zstd frame, or the plaintext copied once for encryption), encrypted in place, then the
    // tag. Plain bytes are not copied here at all: the caller has them.
    let mut out = Vec::with_capacity(HEADER_LEN + plain.len() + TAG_LEN);
    out.resize(HEADER_LEN, 0);
    // zstd writes into the spare capacity; a frame that would not be smaller than the input
    // does not fit, fails fast, and the chunk is stored raw.
    let compressed = compression_level(plain, zstd_level).is_some_and(
        |level| matches!(compress_after(plain, &mut out, level), Ok(n) if n < plain.len()),
    );
    let Some(k) = key else {
        if !compressed {
            // Plain bytes: the stored digest covers the header's first 64 bytes alone.
            let mut header = [0u8; HEADER_LEN];
            fill_header(&mut header, 0, plain.len(), plain.len(), id);
            let digest = Sha256::digest(&header[0..64]);
            header[64..96].copy_from_slice(&digest);
            return Ok(Encoded::HeaderOfPlain(header));
        }
        let payload_len = out.len() - HEADER_LEN;
        fill_header(&mut out, FLAG_COMPRESSED, plain.len(), payload_len, id);
        seal_digest(&mut out);
        return Ok(Encoded::Envelope(out));
    };
    let mut flags = FLAG_ENCRYPTED;
    if compressed {
        flags |= FLAG_COMPRESSED;
    } else {
        // A frame no smaller than the input may have fit in the room: it is dropped.
        out.truncate(HEADER_LEN);
        out.extend_from_slice(plain);
    }
    let payload_len = out.len() - HEADER_LEN + TAG_LEN;
    fill_header(&mut out, flags, plain.len(), payload_len, id);
    let (header, payload) = out.split_at_mut(HEADER_LEN);
    let (nonce, tag) = k.encrypt_with_aad(&header[0..16], &header[32..64], payload);
    out[16..28].copy_from_slice(&nonce);
    out.extend_from_slice(&tag);
    seal_digest(&mut out);
    Ok(Encoded::Envelope(out))
}

/// Writes the header fields other than the nonce and the stored digest.
fn fill_header(out: &mut [u8], flags: u8, raw_len: usize, payload_len: usize, id: &ChunkId) {
    out[0..4].copy_from_slice(&CHUNK_MAGIC);
    out[4] = CHUNK_VERSION;
    out[5] = flags;
    out[8..12].copy_from_slice(&(raw_len as u32).to_le_bytes());
    out[12..16].copy_from_slice(&(payload_len as u32).to_le_bytes());
    out[32..64].copy_from_slice(id.as_bytes());
}

/// Sets the stored digest of a compressed or encrypted envelope: bytes 0..64 and the payload.
fn seal_digest(out: &mut [u8]) {
    let mut h = Sha256::new();
    h.update(&out[0..64]);
    h.update(&out[HEADER_LEN..]);
    let digest = h.finalize();
    out[64..96].copy_from_slice(&digest);
}

/// Bytes of each of the three samples [`compression_level`] tries.
const SAMPLE: usize = 16 << 10;

/// The zstd level to compress `plain` at, or `None` when it is not worth trying. Chunks of
/// 128 KiB and more are judged by three 16 KiB samples (start, middle, end), compressed at
/// level 1 and at `level`:
/// - level 1 saves less than 3%: random or already-compressed data (media, archives,
///   encrypted disks) costs one small attempt instead of a full one thrown away;
/// - `level` does no better than 1% over level 1: highly repetitive data (logs, where level 1
///   even comes out smaller) is compressed at level 1, about twice as fast;
/// - else `level`. Smaller chunks are compressed at `level`.
fn compression_level(plain: &[u8], level: i32) -> Option<i32> {
    if level == 0 {
        return None;
    }
    if plain.len() < 8 * SAMPLE {
        return Some(level);
    }
    let mid = plain.len() / 2 - SAMPLE / 2;
    let end = plain.len() - SAMPLE;
    let mut sample = Vec::with_capacity(3 * SAMPLE);
    for at in [0, mid, end] {
        sample.extend_from_slice(&plain[at..at + SAMPLE]);
    }
    // Each attempt gets only the room that would make it worth it, so a worse one fails fast.
    let fast = compress_after(&sample, &mut Vec::with_capacity(sample.len() * 97 / 100), 1).ok()?;
    if level <= 1 {
        return Some(level);
    }
    match compress_after(&sample, &mut Vec::with_capacity(fast), level) {
        Ok(n) if n * 101 / 100 < fast => Some(level),
        _ => Some(1),
    }
}

thread_local! {
    /// This thread's zstd contexts, one per level used, reused across chunks.
    static COMPRESSORS: std::cell::RefCell<Vec<(i32, zstd::bulk::Compressor<'static>)>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// Compresses `plain` at `level` and appends the frame to `out`, in its spare capacity; fails
/// (leaving `out` as it was) if the frame does not fit there. Returns the frame's length.
fn compress_after(plain: &[u8], out: &mut Vec<u8>, level: i32) -> std::io::Result<usize> {
    let start = out.len();
    COMPRESSORS.with(|cell| {
        let mut contexts = cell.borrow_mut();
        let at = match contexts.iter().position(|(l, _)| *l == level) {
            Some(at) => at,
            None => {
                contexts.push((level, zstd::bulk::Compressor::new(level)?));
                contexts.len() - 1
            }
        };
        let mut dst = std::io::Cursor::new(std::mem::take(out));
        dst.set_position(start as u64);
        let result = contexts[at].1.compress_to_buffer(plain, &mut dst);
        *out = dst.into_inner();
        if result.is_err() {
            out.truncate(start);
        }
        result
    })
}

/// Parses and checks the header's structure (magic, version, flags, lengths against `bytes`).
pub fn parse_header(bytes: &[u8]) -> Result<ChunkHeader> {
    parse_header_of(bytes, bytes.len())
}

/// [`parse_header`] of a chunk of `total` bytes that begins with `head` (its first
/// [`HEADER_LEN`] bytes, or all of them when it is shorter).
fn parse_header_of(head: &[u8], total: usize) -> Result<ChunkHeader> {
    if total < HEADER_LEN || head.len() < HEADER_LEN {
        return Err(Error::corrupt(
            "chunk",
            format!("{total} bytes is shorter than the {HEADER_LEN}-byte header (truncated)"),
        ));
    }
    let bytes = &head[..HEADER_LEN];
    if bytes[0..4] != CHUNK_MAGIC {
        return Err(Error::corrupt("chunk", "bad magic: not an Ironcore chunk"));
    }
    let version = bytes[4];
    if !(1..=CHUNK_VERSION).contains(&version) {
        return Err(Error::corrupt(
            "chunk",
            format!(
                "envelope version {version} is not supported (this build reads 1 to {CHUNK_VERSION})"
            ),
        ));
    }
    let flags = bytes[5];
    if flags & !(FLAG_COMPRESSED | FLAG_ENCRYPTED) != 0
        || bytes[6..8] != [0, 0]
        || bytes[28..32] != [0; 4]
    {
        return Err(Error::corrupt(
            "chunk",
            format!("unknown flags or reserved bits set ({flags:#04x})"),
        ));
    }
    let raw_len = u32_at(bytes, 8) as usize;
    let payload_len = u32_at(bytes, 12) as usize;
    if raw_len > MAX_CHUNK_SIZE {
        return Err(Error::corrupt(
            "chunk",
            format!("raw length {raw_len} exceeds the chunk limit"),
        ));
    }
    if total - HEADER_LEN != payload_len {
        return Err(Error::corrupt(
            "chunk",
            format!(
                "payload is {} bytes but the header says {payload_len} (truncated or extended)",
                total - HEADER_LEN
            ),
        ));
    }
    let mut nonce = [0u8; NONCE_LEN];
    nonce.copy_from_slice(&bytes[16..28]);
    Ok(ChunkHeader {
        version,
        id: ChunkId::from_bytes(array32(&bytes[32..64])),
        compressed: flags & FLAG_COMPRESSED != 0,
        encrypted: flags & FLAG_ENCRYPTED != 0,
        raw_len,
        payload_len,
        nonce,
        stored_digest: array32(&bytes[64..96]),
    })
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn array32(b: &[u8]) -> [u8; 32] {
    let mut a = [0u8; 32];
    a.copy_from_slice(b);
    a
}

/// Checks a stored chunk without the key: structure, the expected id, and the stored digest.
/// This is what verification and peer transfer use; it catches any flipped or missing byte.
pub fn verify_stored(bytes: &[u8], expected: &ChunkId) -> Result<ChunkHeader> {
    let mut check = StoredCheck::new();
    check.update(bytes);
    check.finish(expected)
}

/// [`verify_stored`] of a chunk that arrives in pieces: each piece is hashed as it comes,
/// while it is still in the CPU's cache, and [`StoredCheck::finish`] checks the header and
/// the digests once all of it is here.
#[derive(Clone, Debug)]
pub struct StoredCheck {
    head: [u8; HEADER_LEN],
    seen: usize,
    /// Decided from the header's version and flags once its bytes are here.
    payload_is_id: bool,
    stored: Sha256,
    id: Sha256,
}

impl Default for StoredCheck {
    fn default() -> Self {
        Self::new()
    }
}

impl StoredCheck {
    /// A check of a chunk none of whose bytes are here yet.
    pub fn new() -> Self {
        Self {
            head: [0; HEADER_LEN],
            seen: 0,
            payload_is_id: false,
            stored: Sha256::new(),
            id: Sha256::new(),
        }
    }

    /// Bytes taken so far.
    pub fn len(&self) -> usize {
        self.seen
    }

    /// Whether no byte was taken yet.
    pub fn is_empty(&self) -> bool {
        self.seen == 0
    }

    /// Takes the chunk's next bytes.
    pub fn update(&mut self, mut piece: &[u8]) {
        if self.seen < HEADER_LEN {
            let take = (HEADER_LEN - self.seen).min(piece.len());
            self.head[self.seen..self.seen + take].copy_from_slice(&piece[..take]);
            self.seen += take;
            piece = &piece[take..];
            if self.seen == HEADER_LEN {
                self.stored.update(&self.head[..64]);
                let (version, flags) = (self.head[4], self.head[5]);
                self.payload_is_id = payload_is_id(
                    version,
                    flags & FLAG_COMPRESSED != 0,
                    flags & FLAG_ENCRYPTED != 0,
                );
            }
        }
        if !piece.is_empty() {
            if self.payload_is_id {
                self.id.update(piece);
            } else {
                self.stored.update(piece);
            }
            self.seen += piece.len();
        }
    }

    /// Checks the structure, the expected id and the digests of all the bytes taken.
    pub fn finish(self, expected: &ChunkId) -> Result<ChunkHeader> {
        let header = parse_header_of(&self.head[..self.seen.min(HEADER_LEN)], self.seen)?;
        if header.id != *expected {
            return Err(Error::corrupt(
                "chunk",
                format!("file holds chunk {} but {expected} was expected", header.id),
            ));
        }
        debug_assert_eq!(header.payload_is_id(), self.payload_is_id);
        let id_matches = !self.payload_is_id || self.id.finalize() == *expected.as_bytes();
        if self.stored.finalize() != header.stored_digest || !id_matches {
            return Err(Error::corrupt(
                "chunk",
                format!(
                    "stored digest of chunk {expected} does not match its bytes (bit rot or tampering)"
                ),
            ));
        }
        Ok(header)
    }
}

/// Opens a stored chunk and returns its plaintext, checked against `expected`.
///
/// With a key, every failure to prove the bytes genuine — a changed byte anywhere, a wrong key
/// — is `decryption failed`: never wrong data. Without a key, an encrypted chunk is
/// `encryption key not found`-class and is refused by the caller before it gets here.
pub fn decode_chunk(bytes: &[u8], expected: &ChunkId, key: Option<&CryptKey>) -> Result<Vec<u8>> {
    match key {
        Some(k) => {
            let header = verify_stored(bytes, expected)
                .map_err(|_| Error::DecryptionFailed { id: *expected })?;
            if !header.encrypted {
                return Err(Error::DecryptionFailed { id: *expected });
            }
            let mut buf = bytes[HEADER_LEN..].to_vec();
            k.decrypt_with_aad(&bytes[0..16], &bytes[32..64], &header.nonce, &mut buf)
                .map_err(|()| Error::DecryptionFailed { id: *expected })?;
            let plain =
                finish(header, buf).map_err(|_| Error::DecryptionFailed { id: *expected })?;
            Ok(plain)
        }
        None => {
            let header = verify_stored(bytes, expected)?;
            if header.encrypted {
                return Err(Error::corrupt(
                    "chunk",
                    format!("chunk {expected} is encrypted but no key was given"),
                ));
            }
            let plain = finish(header, bytes[HEADER_LEN..].to_vec())?;
            // A version 2 plain payload was checked against the id by `verify_stored`.
            if !header.payload_is_id() && chunk_id(&plain, None) != *expected {
                return Err(Error::corrupt(
                    "chunk",
                    format!("plaintext of chunk {expected} does not hash to its id"),
                ));
            }
            Ok(plain)
        }
    }
}

fn finish(header: ChunkHeader, payload: Vec<u8>) -> Result<Vec<u8>> {
    let plain = if header.compressed {
        zstd::bulk::decompress(&payload, header.raw_len).map_err(|e| {
            Error::corrupt("chunk", format!("zstd frame of chunk {}: {e}", header.id))
        })?
    } else {
        payload
    };
    if plain.len() != header.raw_len {
        return Err(Error::corrupt(
            "chunk",
            format!(
                "chunk {} decodes to {} bytes, header says {}",
                header.id,
                plain.len(),
                header.raw_len
            ),
        ));
    }
    Ok(plain)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(n: usize) -> Vec<u8> {
        (0..n)
            .map(|i| b"abcdefgh"[i % 8] ^ (i / 977) as u8)
            .collect()
    }

    #[test]
    fn a_chunk_checked_in_pieces_gets_the_verdict_of_verify_stored() {
        let key = CryptKey::generate();
        let mut chunks = Vec::new();
        for data in [random(50_000), text(50_000), b"x".to_vec()] {
            for k in [None, Some(&key)] {
                let id = chunk_id(&data, k);
                chunks.push((encode_chunk(&id, &data, k, 3).unwrap(), id));
            }
        }
        let mut cases = Vec::new();
        for (bytes, id) in &chunks {
            cases.push((bytes.clone(), *id));
            cases.push((bytes.clone(), ChunkId::from_bytes([3; 32])));
            for at in [4, 5, 40, 70, 96, bytes.len() - 1] {
                let mut bad = bytes.clone();
                bad[at] ^= 0x10;
                cases.push((bad, *id));
            }
            cases.push((bytes[..bytes.len() - 1].to_vec(), *id));
            cases.push((bytes[..50].to_vec(), *id));
        }
        for (bytes, id) in &cases {
            let whole = verify_stored(bytes, id).map_err(|e| e.to_string());
            for piece in [1, 7, 95, 96, 97, 4096] {
                let mut check = StoredCheck::new();
                for p in bytes.chunks(piece) {
                    check.update(p);
                }
                assert_eq!(check.len(), bytes.len());
                let pieces = check.finish(id).map_err(|e| e.to_string());
                assert_eq!(pieces, whole, "pieces of {piece}");
            }
        }
    }

    #[test]
    fn plain_chunk_round_trips_compressed_when_smaller() {
        let data = text(100_000);
        let id = chunk_id(&data, None);
        let bytes = encode_chunk(&id, &data, None, 1).unwrap();
        assert!(bytes.len() < data.len() / 2);
        assert!(parse_header(&bytes).unwrap().compressed);
        assert_eq!(decode_chunk(&bytes, &id, None).unwrap(), data);
    }

    #[test]
    fn incompressible_chunk_is_stored_raw() {
        let data = random(50_000);
        let id = chunk_id(&data, None);
        let bytes = encode_chunk(&id, &data, None, 1).unwrap();
        assert!(!parse_header(&bytes).unwrap().compressed);
        assert_eq!(bytes.len(), HEADER_LEN + data.len());
        assert_eq!(decode_chunk(&bytes, &id, None).unwrap(), data);
    }

    fn random(n: usize) -> Vec<u8> {
        let mut data = vec![0u8; n];
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut data);
        data
    }

    #[test]
    fn plain_chunk_payload_is_checked_against_its_id() {
        let data = random(40_000);
        let id = chunk_id(&data, None);
        let bytes = encode_chunk(&id, &data, None, DEFAULT_ZSTD_LEVEL).unwrap();
        let header = verify_stored(&bytes, &id).unwrap();
        assert!(header.payload_is_id());
        for at in [HEADER_LEN, HEADER_LEN + 20_000, bytes.len() - 1] {
            let mut bad = bytes.clone();
            bad[at] ^= 0x04;
            let err = verify_stored(&bad, &id).unwrap_err().to_string();
            assert!(err.contains("stored digest of chunk"), "{err}");
            assert!(decode_chunk(&bad, &id, None).is_err());
        }
        // A changed header byte (here the raw length) fails the stored digest.
        let mut bad = bytes.clone();
        bad[8] ^= 0x01;
        assert!(verify_stored(&bad, &id).is_err());
        // A version 2 plain chunk relabelled as version 1 no longer verifies.
        let mut old = bytes.clone();
        old[4] = 1;
        assert!(verify_stored(&old, &id).is_err());
    }

    #[test]
    fn version_1_chunks_are_still_read() {
        for data in [random(30_000), text(30_000)] {
            let id = chunk_id(&data, None);
            let mut bytes = encode_chunk(&id, &data, None, 1).unwrap();
            // Re-seal as version 1 wrote it: the stored digest always covers the payload.
            bytes[4] = 1;
            let mut h = Sha256::new();
            h.update(&bytes[0..64]);
            h.update(&bytes[HEADER_LEN..]);
            let digest = h.finalize();
            bytes[64..96].copy_from_slice(&digest);
            let header = verify_stored(&bytes, &id).unwrap();
            assert_eq!(header.version, 1);
            assert!(!header.payload_is_id());
            assert_eq!(decode_chunk(&bytes, &id, None).unwrap(), data);
            let mut bad = bytes.clone();
            let last = bad.len() - 1;
            bad[last] ^= 0x01;
            assert!(verify_stored(&bad, &id).is_err());
        }
        let mut future = encode_chunk(&chunk_id(b"x", None), b"x", None, 1).unwrap();
        future[4] = 3;
        let err = parse_header(&future).unwrap_err().to_string();
        assert!(err.contains("envelope version 3 is not supported"), "{err}");
    }

    /// Pseudo-prose: words drawn from a small vocabulary, which level 3 (minimum match 5)
    /// compresses clearly better than level 1.
    fn prose(n: usize, seed: u64) -> Vec<u8> {
        const WORDS: [&str; 24] = [
            "backup",
            "chunk",
            "the",
            "of",
            "restore",
            "node",
            "cluster",
            "index",
            "a",
            "to",
            "snapshot",
            "datastore",
            "raft",
            "leader",
            "and",
            "is",
            "verify",
            "in",
            "key",
            "tape",
            "site",
            "primary",
            "quorum",
            "for",
        ];
        let mut x = seed | 1;
        let mut out = Vec::with_capacity(n + 16);
        while out.len() < n {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            out.extend_from_slice(WORDS[(x % 24) as usize].as_bytes());
            out.push(if x.is_multiple_of(11) { b'\n' } else { b' ' });
        }
        out.truncate(n);
        out
    }

    #[test]
    fn large_chunks_are_sampled_to_choose_how_to_compress() {
        let random = random(1 << 20);
        assert_eq!(compression_level(&random, DEFAULT_ZSTD_LEVEL), None);
        let bytes =
            encode_chunk(&chunk_id(&random, None), &random, None, DEFAULT_ZSTD_LEVEL).unwrap();
        assert!(!parse_header(&bytes).unwrap().compressed);
        // Highly repetitive data: level 1 does as well, and is taken.
        let text = text(1 << 20);
        assert_eq!(compression_level(&text, DEFAULT_ZSTD_LEVEL), Some(1));
        let bytes = encode_chunk(&chunk_id(&text, None), &text, None, DEFAULT_ZSTD_LEVEL).unwrap();
        assert!(parse_header(&bytes).unwrap().compressed);
        assert_eq!(
            decode_chunk(&bytes, &chunk_id(&text, None), None).unwrap(),
            text
        );
        // Data where the datastore's level pays gets it.
        let prose = prose(1 << 20, 7);
        assert_eq!(
            compression_level(&prose, DEFAULT_ZSTD_LEVEL),
            Some(DEFAULT_ZSTD_LEVEL)
        );
        assert_eq!(compression_level(&prose, 1), Some(1));
        assert_eq!(compression_level(&prose, 0), None);
        // Text with random bytes only between the samples is still judged by its samples.
        let mut mixed = text.clone();
        mixed[100_000..200_000].copy_from_slice(&random[..100_000]);
        assert!(compression_level(&mixed, DEFAULT_ZSTD_LEVEL).is_some());
        // Small chunks are not sampled.
        assert_eq!(compression_level(&random[..4096], 5), Some(5));
    }

    #[test]
    fn a_plain_chunk_is_left_as_its_header_and_the_rest_as_whole_envelopes() {
        let key = CryptKey::generate();
        let (noise, words) = (random(200_000), text(200_000));
        // Small random data is not sampled: zstd is tried, and its frame (no smaller than the
        // input) may fit the room; it must not end up in front of the plaintext.
        let small = random(4096);
        for (data, k) in [
            (&noise, None),
            (&small, None),
            (&words, None),
            (&noise, Some(&key)),
            (&small, Some(&key)),
            (&words, Some(&key)),
        ] {
            let id = chunk_id(data, k);
            let whole = encode_chunk(&id, data, k, DEFAULT_ZSTD_LEVEL).unwrap();
            let parts = encode_chunk_parts(&id, data, k, DEFAULT_ZSTD_LEVEL).unwrap();
            let joined = match parts {
                Encoded::HeaderOfPlain(header) => {
                    assert!(
                        k.is_none() && !std::ptr::eq(data, &words),
                        "plain bytes only"
                    );
                    [&header[..], &data[..]].concat()
                }
                Encoded::Envelope(bytes) => {
                    assert!(k.is_some() || std::ptr::eq(data, &words), "whole envelope");
                    bytes
                }
            };
            let header = verify_stored(&joined, &id).unwrap();
            assert_eq!(decode_chunk(&joined, &id, k).unwrap(), *data);
            if k.is_none() {
                assert_eq!(joined, whole, "the same bytes either way");
            } else {
                assert_eq!(header.payload_len, whole.len() - HEADER_LEN);
            }
        }
    }

    #[test]
    fn encrypted_chunk_round_trips_and_verifies_without_key() {
        let key = CryptKey::generate();
        let data = text(70_000);
        let id = chunk_id(&data, Some(&key));
        assert_ne!(id, chunk_id(&data, None));
        let bytes = encode_chunk(&id, &data, Some(&key), 1).unwrap();
        verify_stored(&bytes, &id).unwrap();
        assert_eq!(decode_chunk(&bytes, &id, Some(&key)).unwrap(), data);
    }

    #[test]
    fn tampering_any_byte_of_an_encrypted_chunk_is_decryption_failed() {
        let key = CryptKey::generate();
        let data = text(3_000);
        let id = chunk_id(&data, Some(&key));
        let bytes = encode_chunk(&id, &data, Some(&key), 1).unwrap();
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x01;
            let err = decode_chunk(&bad, &id, Some(&key)).unwrap_err();
            assert!(
                err.to_string().starts_with("decryption failed"),
                "byte {i}: {err}"
            );
        }
    }

    #[test]
    fn wrong_key_is_decryption_failed_never_data() {
        let key = CryptKey::generate();
        let other = CryptKey::generate();
        let data = text(3_000);
        let id = chunk_id(&data, Some(&key));
        let bytes = encode_chunk(&id, &data, Some(&key), 1).unwrap();
        assert!(matches!(
            decode_chunk(&bytes, &id, Some(&other)),
            Err(Error::DecryptionFailed { .. })
        ));
    }

    #[test]
    fn flipped_or_truncated_plain_chunk_is_corrupt() {
        let data = text(10_000);
        let id = chunk_id(&data, None);
        let bytes = encode_chunk(&id, &data, None, 1).unwrap();
        let mut flipped = bytes.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 0x80;
        assert!(matches!(
            verify_stored(&flipped, &id),
            Err(Error::Corrupt { .. })
        ));
        assert!(matches!(
            verify_stored(&bytes[..bytes.len() - 7], &id),
            Err(Error::Corrupt { .. })
        ));
        assert!(matches!(
            verify_stored(&bytes[..10], &id),
            Err(Error::Corrupt { .. })
        ));
    }

    #[test]
    fn oversized_lengths_are_refused_without_allocating() {
        let data = text(1_000);
        let id = chunk_id(&data, None);
        let mut bytes = encode_chunk(&id, &data, None, 1).unwrap();
        bytes[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(parse_header(&bytes).is_err());
    }
}
