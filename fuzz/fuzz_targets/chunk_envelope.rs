//! The chunk envelope decoder: header parsing, keyless verification, and decoding with and
//! without a key must return errors on any input, never panic or over-allocate.
#![no_main]

use ironcore_chunkstore::CryptKey;
use ironcore_chunkstore::envelope::{decode_chunk, parse_header, verify_stored};
use ironcore_types::ChunkId;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let id = match parse_header(data) {
        Ok(h) => h.id,
        Err(_) => ChunkId::from_bytes([0; 32]),
    };
    let _ = verify_stored(data, &id);
    let _ = decode_chunk(data, &id, None);
    let key = CryptKey::from_secret([7; 32]);
    let _ = decode_chunk(data, &id, Some(&key));
});
