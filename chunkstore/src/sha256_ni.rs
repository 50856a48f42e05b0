//! SHA-256 block compression with the x86-64 SHA extensions (SHA-NI), one message or two
//! interleaved.
//!
//! Why not only the `sha2` crate: it compresses one message at a time, and each
//! `sha256rnds2` waits for the one before, so a core runs at the instruction's latency, not its
//! throughput. Two independent messages interleaved fill those gaps, and the chunk pipeline
//! always has two chunks at hand. The loops also prefetch the data a few cache lines ahead: a
//! chunk read moments ago by the disk is in memory, not in the cache, and the hardware
//! prefetcher alone does not keep up with a consumer this fast. Measured on the 2-core
//! reference machine (1 GiB from memory): `sha2` 1.38 GB/s, one message here 1.88 GB/s, two
//! interleaved 2.35 GB/s.
//!
//! Everything here is safe code except the calls into functions compiled for the SHA, SSSE3
//! and SSE4.1 instruction sets, which are made only after the CPU was asked whether it has
//! them ([`available`]).

use std::arch::x86_64::{
    __m128i, _MM_HINT_T0, _mm_add_epi32, _mm_alignr_epi8, _mm_extract_epi32, _mm_prefetch,
    _mm_set_epi32, _mm_sha256msg1_epu32, _mm_sha256msg2_epu32, _mm_sha256rnds2_epu32,
    _mm_shuffle_epi32,
};

/// The round constants of FIPS 180-4, four to a group of four rounds.
const K: [[u32; 4]; 16] = [
    [0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5],
    [0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5],
    [0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3],
    [0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174],
    [0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc],
    [0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da],
    [0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7],
    [0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967],
    [0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13],
    [0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85],
    [0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3],
    [0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070],
    [0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5],
    [0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3],
    [0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208],
    [0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2],
];

/// How far ahead of the block being compressed the data is prefetched.
const PREFETCH_AHEAD: usize = 1024;

/// Whether this CPU has the instructions the functions here are compiled for.
pub(crate) fn available() -> bool {
    std::arch::is_x86_feature_detected!("sha")
        && std::arch::is_x86_feature_detected!("ssse3")
        && std::arch::is_x86_feature_detected!("sse4.1")
}

/// Compresses `blocks` into `state`. The caller checked [`available`].
pub(crate) fn compress(state: &mut [u32; 8], blocks: &[[u8; 64]]) {
    debug_assert!(available());
    #[allow(unsafe_code)]
    // SAFETY: the only requirement of a `target_feature` function is that the CPU has the
    // features; every caller checks `available()` first.
    unsafe {
        lanes(&mut [state], [blocks]);
    }
}

/// Compresses `a` into `sa` and `b` into `sb`, interleaved; the two have the same number of
/// blocks. The caller checked [`available`].
pub(crate) fn compress2(sa: &mut [u32; 8], a: &[[u8; 64]], sb: &mut [u32; 8], b: &[[u8; 64]]) {
    debug_assert!(available());
    assert_eq!(
        a.len(),
        b.len(),
        "interleaved messages take the same number of blocks"
    );
    #[allow(unsafe_code)]
    // SAFETY: as in `compress`.
    unsafe {
        lanes(&mut [sa, sb], [a, b]);
    }
}

/// A state as the SHA instructions hold it: words A, B, E, F in one register and C, D, G, H
/// in the other (highest lane first).
#[derive(Clone, Copy)]
struct Lane {
    abef: __m128i,
    cdgh: __m128i,
}

#[target_feature(enable = "sha,ssse3,sse4.1")]
fn to_lane(h: &[u32; 8]) -> Lane {
    let w = |i: usize| h[i] as i32;
    Lane {
        abef: _mm_set_epi32(w(0), w(1), w(4), w(5)),
        cdgh: _mm_set_epi32(w(2), w(3), w(6), w(7)),
    }
}

#[target_feature(enable = "sha,ssse3,sse4.1")]
fn from_lane(l: Lane, h: &mut [u32; 8]) {
    // Lane 3 holds the first word of each register.
    let (abef, cdgh) = (l.abef, l.cdgh);
    *h = [
        _mm_extract_epi32::<3>(abef),
        _mm_extract_epi32::<2>(abef),
        _mm_extract_epi32::<3>(cdgh),
        _mm_extract_epi32::<2>(cdgh),
        _mm_extract_epi32::<1>(abef),
        _mm_extract_epi32::<0>(abef),
        _mm_extract_epi32::<1>(cdgh),
        _mm_extract_epi32::<0>(cdgh),
    ]
    .map(|w| w as u32);
}

/// Message words `4i..4i+4` of a block, big-endian as SHA-256 reads them, word `4i` in lane 0.
#[target_feature(enable = "sha,ssse3,sse4.1")]
fn words(block: &[u8; 64], i: usize) -> __m128i {
    let w = |j: usize| {
        let o = 16 * i + 4 * j;
        i32::from_be_bytes([block[o], block[o + 1], block[o + 2], block[o + 3]])
    };
    _mm_set_epi32(w(3), w(2), w(1), w(0))
}

/// Four rounds (group `g`) with message words `w`.
#[target_feature(enable = "sha,ssse3,sse4.1")]
fn rounds(s: &mut Lane, w: __m128i, g: usize) {
    let k = &K[g];
    let wk = _mm_add_epi32(
        w,
        _mm_set_epi32(k[3] as i32, k[2] as i32, k[1] as i32, k[0] as i32),
    );
    s.cdgh = _mm_sha256rnds2_epu32(s.cdgh, s.abef, wk);
    s.abef = _mm_sha256rnds2_epu32(s.abef, s.cdgh, _mm_shuffle_epi32(wk, 0x0E));
}

/// The message words of group `g >= 4` from the four groups before it, which `w` holds at
/// `g % 4` (the oldest, replaced) and on.
#[target_feature(enable = "sha,ssse3,sse4.1")]
fn schedule(w: &mut [__m128i; 4], g: usize) -> __m128i {
    let (oldest, older, old, last) = (w[g % 4], w[(g + 1) % 4], w[(g + 2) % 4], w[(g + 3) % 4]);
    let partial = _mm_add_epi32(
        _mm_sha256msg1_epu32(oldest, older),
        _mm_alignr_epi8::<4>(last, old),
    );
    let next = _mm_sha256msg2_epu32(partial, last);
    w[g % 4] = next;
    next
}

/// Compresses `L` messages of the same length, interleaved round by round.
#[target_feature(enable = "sha,ssse3,sse4.1")]
fn lanes<const L: usize>(states: &mut [&mut [u32; 8]; L], blocks: [&[[u8; 64]]; L]) {
    let mut s: [Lane; L] = std::array::from_fn(|l| to_lane(states[l]));
    let n = blocks[0].len();
    for i in 0..n {
        for msg in &blocks {
            let ahead = msg
                .as_ptr()
                .wrapping_add(i)
                .cast::<i8>()
                .wrapping_add(PREFETCH_AHEAD);
            // A prefetch never faults, wherever it points.
            _mm_prefetch::<_MM_HINT_T0>(ahead);
        }
        let saved = s;
        let mut w: [[__m128i; 4]; L] = std::array::from_fn(|l| {
            let b = &blocks[l][i];
            [words(b, 0), words(b, 1), words(b, 2), words(b, 3)]
        });
        // Each group spelled out, so the schedule's registers are fixed at compile time.
        macro_rules! first {
            ($($g:literal)*) => {$( for l in 0..L { rounds(&mut s[l], w[l][$g], $g); } )*};
        }
        macro_rules! scheduled {
            ($($g:literal)*) => {$(
                for l in 0..L {
                    let next = schedule(&mut w[l], $g);
                    rounds(&mut s[l], next, $g);
                }
            )*};
        }
        first!(0 1 2 3);
        scheduled!(4 5 6 7 8 9 10 11 12 13 14 15);
        for l in 0..L {
            s[l].abef = _mm_add_epi32(s[l].abef, saved[l].abef);
            s[l].cdgh = _mm_add_epi32(s[l].cdgh, saved[l].cdgh);
        }
    }
    for l in 0..L {
        from_lane(s[l], states[l]);
    }
}
