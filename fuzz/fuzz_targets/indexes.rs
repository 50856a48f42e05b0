//! Dynamic and fixed index decoders; a decoded index must re-encode to the same bytes (a dynamic
//! index of version 1 re-encodes as version 2, with the same chunks).
#![no_main]

use ironcore_chunkstore::{DynamicIndex, FixedIndex};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(idx) = DynamicIndex::decode(data) {
        let again = idx.encode();
        if data[4] == 1 {
            assert_eq!(DynamicIndex::decode(&again).unwrap(), idx);
        } else {
            assert_eq!(again, data);
        }
        let _ = idx.find(idx.size().saturating_sub(1));
    }
    if let Ok(idx) = FixedIndex::decode(data) {
        assert_eq!(idx.encode(), data);
        let _ = idx.chunk(idx.len().saturating_sub(1));
    }
});
