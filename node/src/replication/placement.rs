//! Which nodes hold a chunk: rendezvous (highest-random-weight) hashing over the storage nodes
//! of the datastore's site. Pure: the same inputs give the same answer on every node, and a
//! node joining or leaving moves only the chunks it wins or held.

use ironcore_types::ChunkId;
use sha2::{Digest, Sha256};

/// The `copies` nodes (by name) that hold chunk `id`, best first, out of `nodes`. Fewer when
/// fewer nodes exist.
pub fn place<'a>(id: &ChunkId, nodes: &'a [String], copies: usize) -> Vec<&'a str> {
    let mut scored: Vec<([u8; 32], &str)> = nodes
        .iter()
        .map(|n| {
            let mut h = Sha256::new();
            h.update(id.as_bytes());
            h.update(n.as_bytes());
            (h.finalize().into(), n.as_str())
        })
        .collect();
    scored.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(b.1)));
    scored.into_iter().take(copies).map(|(_, n)| n).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(i: u32) -> ChunkId {
        ChunkId::from_bytes(Sha256::digest(i.to_le_bytes()).into())
    }

    #[test]
    fn placement_is_stable_balanced_and_moves_little() {
        let three: Vec<String> = ["n1", "n2", "n3"].map(String::from).to_vec();
        let four: Vec<String> = ["n1", "n2", "n3", "n4"].map(String::from).to_vec();
        let mut load = std::collections::HashMap::new();
        let mut moved = 0;
        for i in 0..3000 {
            let a = place(&id(i), &three, 2);
            assert_eq!(a.len(), 2);
            assert_ne!(a[0], a[1]);
            assert_eq!(a, place(&id(i), &three, 2));
            for n in &a {
                *load.entry(n.to_string()).or_insert(0) += 1;
            }
            let b = place(&id(i), &four, 2);
            // Adding a node only ever moves a copy onto the new node.
            for n in &a {
                if !b.contains(n) {
                    moved += 1;
                    assert!(b.contains(&"n4"));
                }
            }
        }
        for n in ["n1", "n2", "n3"] {
            let l = load[n];
            assert!((1800..2200).contains(&l), "{n} holds {l} of 6000 copies");
        }
        // About half of the chunks get one copy on the new node (2 of 4 slots).
        assert!((1200..1800).contains(&moved), "{moved} copies moved");
        assert_eq!(place(&id(1), &three[..1], 2).len(), 1);
    }
}
