//! Content-defined chunking: FastCDC (2020) with the `fastcdc` crate's tables and masks, cut
//! points identical to its `v2020::FastCDC`, scanned in two lanes.
//!
//! The gear hash shifts left by one bit per byte, so after 64 bytes (32 steps of two) nothing
//! older is left in it: the hash at any position depends only on the 64 bytes before it. The
//! scan therefore splits the region where a cut may fall into segments and hashes two segments
//! at once, the second warmed up on the 64 bytes before it. A cut in the first segment wins; one
//! in the second counts only when the first has none. The two hash chains are independent, so
//! the CPU overlaps them. The cut points are the crate's (tests compare them on random,
//! repetitive and text data), so chunks, and deduplication against earlier snapshots, do not
//! change.

use fastcdc::v2020::{Normalization, get_gear_with_seed, select_masks};

/// Steps (of two bytes) per segment.
const SEGMENT: usize = 4096;
/// Steps after which the hash no longer depends on where it started.
const WARM_UP: usize = 32;

/// A FastCDC chunker with fixed bounds.
#[derive(Clone, Debug)]
pub struct Cdc {
    min: usize,
    avg: usize,
    max: usize,
    gear: [u64; 256],
    gear_ls: [u64; 256],
    mask_s: u64,
    mask_l: u64,
}

/// The two masks a step tests: after its first byte (shifted) and after its second.
#[derive(Clone, Copy)]
struct Masks {
    first: u64,
    second: u64,
}

impl Cdc {
    /// A chunker for chunks of `min..=max` bytes, `avg` on average (all even; normalization
    /// level 1, as `FastCDC::new`).
    pub fn new(min: usize, avg: usize, max: usize) -> Self {
        assert!(
            [min, avg, max].iter().all(|b| b.is_multiple_of(2)) && min < avg && avg < max,
            "FastCDC bounds must be even and ordered"
        );
        let (gear, gear_ls) = get_gear_with_seed(0);
        let table = |t: &[u64]| -> [u64; 256] {
            // Invariant: the crate's gear tables have one entry per byte value.
            t.try_into().expect("256 gear entries")
        };
        let (mask_s, mask_l) = select_masks(avg, Normalization::Level1);
        Self {
            min,
            avg,
            max,
            gear: table(&gear),
            gear_ls: table(&gear_ls),
            mask_s,
            mask_l,
        }
    }

    /// The chunks of `buf`, as `(offset, length)`, the last one ending at the buffer's end.
    pub fn chunks<'a>(&'a self, buf: &'a [u8]) -> impl Iterator<Item = (usize, usize)> + 'a {
        let mut at = 0;
        std::iter::from_fn(move || {
            if at == buf.len() {
                return None;
            }
            let len = self.cut(&buf[at..]);
            let chunk = (at, len);
            at += len;
            Some(chunk)
        })
    }

    /// The length of the chunk that starts `source` (all of it when no cut point is found).
    pub fn cut(&self, source: &[u8]) -> usize {
        let mut remaining = source.len();
        if remaining <= self.min {
            return remaining;
        }
        let mut center = self.avg;
        if remaining > self.max {
            remaining = self.max;
        } else if remaining < center {
            center = remaining;
        }
        let src = &source[..remaining];
        let (limit1, limit2) = (center / 2, remaining / 2);
        let first = self.min / 2;
        // Segment ends: never across `limit1`, where the masks change.
        let end_from = |step: usize| {
            let end = (step + SEGMENT).min(limit2);
            if step < limit1 { end.min(limit1) } else { end }
        };
        let mut step = first;
        while step < limit2 {
            let a_end = end_from(step);
            let b_end = end_from(a_end).max(a_end);
            let lane_a = Lane::new(self, src, first, step, a_end, limit1);
            let lane_b = Lane::new(self, src, first, a_end, b_end, limit1);
            if let Some(cut) = self.two_lanes(lane_a, lane_b) {
                return cut;
            }
            step = b_end;
        }
        // No cut point: the whole window (its odd last byte included).
        remaining
    }

    /// Scans two lanes together; the first cut, in byte order (lane `a` comes first).
    fn two_lanes(&self, a: Lane<'_>, b: Lane<'_>) -> Option<usize> {
        let (mut ha, mut hb) = (a.hash, b.hash);
        let both = a.pairs.len().min(b.pairs.len());
        let mut b_cut = None;
        let mut k = 0;
        while k < both {
            if let Some(cut) = self.step(&mut ha, a.pairs[k], a.masks) {
                return Some(a.offset(k, cut));
            }
            if let Some(cut) = self.step(&mut hb, b.pairs[k], b.masks) {
                b_cut = Some(b.offset(k, cut));
                k += 1;
                break;
            }
            k += 1;
        }
        // The rest of lane `a` alone (after a cut in `b`, or where `b` is shorter).
        for (j, &pair) in a.pairs.iter().enumerate().skip(k) {
            if let Some(cut) = self.step(&mut ha, pair, a.masks) {
                return Some(a.offset(j, cut));
            }
        }
        if b_cut.is_some() {
            return b_cut;
        }
        // The rest of lane `b` alone, where `a` is shorter.
        for (j, &pair) in b.pairs.iter().enumerate().skip(both) {
            if let Some(cut) = self.step(&mut hb, pair, b.masks) {
                return Some(b.offset(j, cut));
            }
        }
        None
    }

    /// One step over a pair of bytes; `Some(0)` when the first is a cut point (the chunk ends
    /// before it), `Some(1)` for the second.
    #[inline(always)]
    fn step(&self, h: &mut u64, pair: [u8; 2], m: Masks) -> Option<usize> {
        *h = (*h << 2).wrapping_add(self.gear_ls[pair[0] as usize]);
        if *h & m.first == 0 {
            return Some(0);
        }
        *h = h.wrapping_add(self.gear[pair[1] as usize]);
        if *h & m.second == 0 {
            return Some(1);
        }
        None
    }
}

/// Steps `from..to` of a window (step `s` is bytes `2s` and `2s + 1`), the hash warmed up to
/// `from`.
struct Lane<'a> {
    from: usize,
    pairs: &'a [[u8; 2]],
    hash: u64,
    masks: Masks,
}

impl<'a> Lane<'a> {
    fn new(cdc: &Cdc, src: &'a [u8], first: usize, from: usize, to: usize, limit1: usize) -> Self {
        let warm_from = first.max(from.saturating_sub(WARM_UP));
        let (warm, _) = src[2 * warm_from..2 * from].as_chunks::<2>();
        let hash = warm.iter().fold(0u64, |h, p| {
            (h << 2)
                .wrapping_add(cdc.gear_ls[p[0] as usize])
                .wrapping_add(cdc.gear[p[1] as usize])
        });
        let (pairs, _) = src[2 * from..2 * to].as_chunks::<2>();
        let m = if from < limit1 {
            cdc.mask_s
        } else {
            cdc.mask_l
        };
        Self {
            from,
            pairs,
            hash,
            masks: Masks {
                first: m << 1,
                second: m,
            },
        }
    }

    /// The chunk length for a cut at byte `cut` (0 or 1) of this lane's step `k`.
    fn offset(&self, k: usize, cut: usize) -> usize {
        2 * (self.from + k) + cut
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_data::pseudo_random as random;

    fn reference(buf: &[u8], min: usize, avg: usize, max: usize) -> Vec<(usize, usize)> {
        fastcdc::v2020::FastCDC::new(buf, min, avg, max)
            .map(|c| (c.offset, c.length))
            .collect()
    }

    #[test]
    fn cut_points_are_those_of_the_fastcdc_crate() {
        let text: Vec<u8> = (0..3_000_000u32)
            .flat_map(|i| format!("line {} of the log, value {}\n", i, i % 97).into_bytes())
            .take(9_000_000)
            .collect();
        let mut sparse = random(9_000_000, 5);
        sparse.iter_mut().for_each(|b| *b &= 0x03);
        let cases = [
            random(9_000_001, 1),
            text,
            sparse,
            vec![0u8; 9_000_000],
            random(1_000_003, 2),
            random(300_000, 3),
            random(100, 4),
            Vec::new(),
        ];
        // The archive's bounds, and bounds whose regions do not fall on segment boundaries.
        let bounds = [
            (256 << 10, 1 << 20, 4 << 20),
            (2048, 8192, 65536),
            (3000, 12_002, 100_000),
            (70_000, 300_000, 1_000_000),
        ];
        for (min, avg, max) in bounds {
            let cdc = Cdc::new(min, avg, max);
            for (n, buf) in cases.iter().enumerate() {
                let ours: Vec<_> = cdc.chunks(buf).collect();
                assert_eq!(ours, reference(buf, min, avg, max), "case {n}, avg {avg}");
            }
        }
    }

    #[test]
    fn every_window_length_around_the_bounds_cuts_alike() {
        let cdc = Cdc::new(2048, 8192, 65536);
        let buf = random(70_000, 9);
        for len in (2040..2060)
            .chain(8180..8200)
            .chain(65530..65545)
            .chain([69_999])
        {
            let want = reference(&buf[..len], 2048, 8192, 65536)[0].1;
            assert_eq!(cdc.cut(&buf[..len]), want, "window of {len}");
        }
    }
}
