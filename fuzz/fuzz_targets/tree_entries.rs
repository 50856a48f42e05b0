//! The tree archive's entry list decoder: a decoded list re-encodes to the same bytes. (Names
//! are not checked here but by the restore planner: see the `restore_plan` target.)
#![no_main]

use ironcore_client::{decode_entries, encode_entries};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(entries) = decode_entries(data) {
        let again = encode_entries(&entries).unwrap();
        assert_eq!(decode_entries(&again).unwrap(), entries);
    }
});
