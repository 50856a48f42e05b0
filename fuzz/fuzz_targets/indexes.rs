//! Dynamic and fixed index decoders; a decoded index must re-encode to the same bytes.
#![no_main]

use ironcore_chunkstore::{DynamicIndex, FixedIndex};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(idx) = DynamicIndex::decode(data) {
        assert_eq!(idx.encode(), data);
        let _ = idx.find(idx.size().saturating_sub(1));
    }
    if let Ok(idx) = FixedIndex::decode(data) {
        assert_eq!(idx.encode(), data);
        let _ = idx.chunk(idx.len().saturating_sub(1));
    }
});
