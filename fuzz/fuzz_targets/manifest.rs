//! The manifest decoder and signature check.
#![no_main]

use ironcore_chunkstore::{CryptKey, Manifest};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = Manifest::decode(data);
    let _ = Manifest::verify_signature(data, &CryptKey::from_secret([3; 32]));
});
