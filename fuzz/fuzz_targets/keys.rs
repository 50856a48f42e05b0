//! Key file (JSON and packed) and paper key parsers. Unlocking is not fuzzed: Argon2 is slow by
//! design.
#![no_main]

use ironcore_chunkstore::{KeyFile, paperkey};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = KeyFile::from_bytes(data);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = serde_json::from_str::<KeyFile>(text);
        let _ = paperkey::import(text);
    }
});
