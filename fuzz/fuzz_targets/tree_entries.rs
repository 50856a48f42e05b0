//! The tree archive's entry list decoder, including its path-safety check.
#![no_main]

use ironcore_client::decode_entries;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(entries) = decode_entries(data) {
        for e in entries {
            assert!(!e.path.starts_with(b"/"));
        }
    }
});
