//! SHA-256 for chunk ids, stored digests and keyed chunk ids (HMAC-SHA256), with a way to hash
//! two messages at once.
//!
//! Every chunk a backup writes is hashed for its id and every chunk a node receives is hashed
//! again to verify it, so this is one of the hottest loops of the product. Where the CPU has
//! the x86-64 SHA extensions the blocks go through `sha256_ni` (two messages
//! interleaved when the caller has two, see [`Sha256::update_pair`]); elsewhere through the
//! `sha2` crate's block function. Both give the same digests (FIPS 180-4); the tests hold them
//! to `sha2`'s.

use sha2::block_api::compress256;

/// The initial hash value of FIPS 180-4.
const IV: [u32; 8] = [
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
];

/// An incremental SHA-256 hash.
#[derive(Clone, Debug)]
pub struct Sha256 {
    state: [u32; 8],
    buf: [u8; 64],
    buffered: usize,
    /// Bytes hashed so far.
    total: u64,
}

impl Default for Sha256 {
    fn default() -> Self {
        Self::new()
    }
}

impl Sha256 {
    /// An empty hash.
    pub fn new() -> Self {
        Self {
            state: IV,
            buf: [0; 64],
            buffered: 0,
            total: 0,
        }
    }

    /// The digest of `data`.
    pub fn digest(data: &[u8]) -> [u8; 32] {
        let mut h = Self::new();
        h.update(data);
        h.finalize()
    }

    /// The digests of `a` and of `b`, hashed together (faster than one after the other).
    pub fn digest_pair(a: &[u8], b: &[u8]) -> ([u8; 32], [u8; 32]) {
        let (mut ha, mut hb) = (Self::new(), Self::new());
        Self::update_pair(&mut ha, a, &mut hb, b);
        (ha.finalize(), hb.finalize())
    }

    /// Hashes `data`.
    pub fn update(&mut self, data: &[u8]) {
        let rest = self.top_up(data);
        self.absorb_counted(rest);
    }

    /// Hashes `da` into `a` and `db` into `b`, the blocks they have in common interleaved.
    pub fn update_pair(a: &mut Self, da: &[u8], b: &mut Self, db: &[u8]) {
        let (ra, rb) = (a.top_up(da), b.top_up(db));
        if a.buffered != 0 || b.buffered != 0 {
            // One message did not even fill its buffer: nothing left to pair.
            a.absorb_counted(ra);
            b.absorb_counted(rb);
            return;
        }
        let (ba, _) = ra.as_chunks::<64>();
        let (bb, _) = rb.as_chunks::<64>();
        let n = ba.len().min(bb.len());
        compress_pair(&mut a.state, &ba[..n], &mut b.state, &bb[..n]);
        a.absorb_counted(&ra[n * 64..]);
        b.absorb_counted(&rb[n * 64..]);
    }

    /// The digest of everything hashed.
    pub fn finalize(mut self) -> [u8; 32] {
        let bits = self.total.wrapping_mul(8);
        let mut last = [[0u8; 64]; 2];
        let n = self.buffered;
        last[0][..n].copy_from_slice(&self.buf[..n]);
        last[0][n] = 0x80;
        // The length takes the last 8 bytes; a second block when they are taken already.
        let blocks = if n < 56 { 1 } else { 2 };
        last[blocks - 1][56..].copy_from_slice(&bits.to_be_bytes());
        compress(&mut self.state, &last[..blocks]);
        let mut out = [0u8; 32];
        for (o, w) in out.chunks_exact_mut(4).zip(self.state) {
            o.copy_from_slice(&w.to_be_bytes());
        }
        out
    }

    /// Adds `data` to the partial block, compressing it once full; returns what is left,
    /// which starts on a block boundary (or is empty).
    fn top_up<'d>(&mut self, data: &'d [u8]) -> &'d [u8] {
        self.total = self.total.wrapping_add(data.len() as u64);
        if self.buffered == 0 {
            return data;
        }
        let take = (64 - self.buffered).min(data.len());
        self.buf[self.buffered..self.buffered + take].copy_from_slice(&data[..take]);
        self.buffered += take;
        if self.buffered == 64 {
            compress(&mut self.state, &[self.buf]);
            self.buffered = 0;
        }
        &data[take..]
    }

    /// Keeps less than a block for later; `total` counted it already.
    fn keep(&mut self, tail: &[u8]) {
        debug_assert!(self.buffered == 0 && tail.len() < 64);
        self.buf[..tail.len()].copy_from_slice(tail);
        self.buffered = tail.len();
    }

    /// What `top_up` left of `data` (counted by it already), hashed.
    fn absorb_counted(&mut self, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        let (blocks, tail) = data.as_chunks::<64>();
        compress(&mut self.state, blocks);
        self.keep(tail);
    }
}

/// HMAC-SHA256 (RFC 2104) under a 32-byte key: the keyed chunk id of encrypted data.
pub(crate) fn hmac(key: &[u8; 32], data: &[u8]) -> [u8; 32] {
    let mut inner = keyed(key, 0x36);
    inner.update(data);
    outer(key, inner)
}

/// HMAC-SHA256 of `a` and of `b` under one key, the two hashed together.
pub(crate) fn hmac_pair(key: &[u8; 32], a: &[u8], b: &[u8]) -> ([u8; 32], [u8; 32]) {
    let (mut ia, mut ib) = (keyed(key, 0x36), keyed(key, 0x36));
    Sha256::update_pair(&mut ia, a, &mut ib, b);
    (outer(key, ia), outer(key, ib))
}

fn keyed(key: &[u8; 32], pad: u8) -> Sha256 {
    let mut block = [pad; 64];
    for (b, k) in block.iter_mut().zip(key) {
        *b ^= k;
    }
    let mut h = Sha256::new();
    h.update(&block);
    h
}

fn outer(key: &[u8; 32], inner: Sha256) -> [u8; 32] {
    let mut h = keyed(key, 0x5c);
    h.update(&inner.finalize());
    h.finalize()
}

fn compress(state: &mut [u32; 8], blocks: &[[u8; 64]]) {
    if blocks.is_empty() {
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if crate::sha256_ni::available() {
        return crate::sha256_ni::compress(state, blocks);
    }
    compress256(state, blocks);
}

fn compress_pair(sa: &mut [u32; 8], a: &[[u8; 64]], sb: &mut [u32; 8], b: &[[u8; 64]]) {
    if a.is_empty() {
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if crate::sha256_ni::available() {
        return crate::sha256_ni::compress2(sa, a, sb, b);
    }
    compress256(sa, a);
    compress256(sb, b);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_data::pseudo_random as data;
    use hmac::{KeyInit, Mac};
    use sha2::Digest;

    fn reference(d: &[u8]) -> [u8; 32] {
        sha2::Sha256::digest(d).into()
    }

    const LENGTHS: [usize; 14] = [
        0, 1, 55, 56, 63, 64, 65, 119, 120, 127, 128, 129, 4097, 70_001,
    ];

    #[test]
    fn digests_match_fips_180_4_at_every_block_boundary() {
        // The FIPS 180-4 example "abc".
        assert_eq!(
            hex::encode(Sha256::digest(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        for len in LENGTHS {
            let d = data(len, len as u64);
            assert_eq!(Sha256::digest(&d), reference(&d), "length {len}");
        }
    }

    #[test]
    fn pairs_of_any_two_lengths_hash_like_one_at_a_time() {
        for la in LENGTHS {
            for lb in LENGTHS {
                let (a, b) = (data(la, 1), data(lb, 2));
                let (da, db) = Sha256::digest_pair(&a, &b);
                assert_eq!((da, db), (reference(&a), reference(&b)), "{la} and {lb}");
            }
        }
    }

    #[test]
    fn updates_in_odd_pieces_and_pairs_after_partial_blocks_agree() {
        let d = data(10_000, 3);
        for piece in [1, 7, 63, 64, 65, 1000] {
            let mut h = Sha256::new();
            for p in d.chunks(piece) {
                h.update(p);
            }
            assert_eq!(h.finalize(), reference(&d), "pieces of {piece}");
        }
        // A pair after each side holds a partial block (the 64-byte chunk header is hashed
        // first in some digests; here odd prefixes too).
        for (pa, pb) in [(64, 64), (3, 64), (64, 5), (10, 70), (0, 200)] {
            let (mut a, mut b) = (Sha256::new(), Sha256::new());
            a.update(&d[..pa]);
            b.update(&d[..pb]);
            Sha256::update_pair(&mut a, &d[pa..9000], &mut b, &d[pb..]);
            assert_eq!(a.finalize(), reference(&d[..9000]), "{pa}/{pb}");
            assert_eq!(b.finalize(), reference(&d), "{pa}/{pb}");
        }
    }

    #[test]
    fn hmac_matches_rfc_2104_as_the_hmac_crate_computes_it() {
        let key: [u8; 32] = data(32, 9).try_into().unwrap();
        for len in LENGTHS {
            let (a, b) = (data(len, 4), data(len / 2 + 3, 5));
            let expect = |m: &[u8]| -> [u8; 32] {
                let mut mac = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(&key).unwrap();
                mac.update(m);
                mac.finalize().into_bytes().into()
            };
            assert_eq!(hmac(&key, &a), expect(&a), "length {len}");
            assert_eq!(hmac_pair(&key, &a, &b), (expect(&a), expect(&b)));
        }
    }

    #[test]
    fn the_portable_block_function_agrees_with_the_one_in_use() {
        let d = data(64 * 37, 6);
        let (blocks, _) = d.as_chunks::<64>();
        let (mut fast, mut portable) = (IV, IV);
        compress(&mut fast, blocks);
        compress256(&mut portable, blocks);
        assert_eq!(fast, portable);
        let (mut a, mut b) = (IV, IV);
        compress_pair(&mut a, blocks, &mut b, blocks);
        assert_eq!((a, b), (portable, portable));
    }
}
