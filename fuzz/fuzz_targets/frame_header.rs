//! The transport's frame header decoder: any bytes give a header within the limit or an error.
#![no_main]

use ironcore_transport::frame::{HEADER_LEN, decode_header, encode_header};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(h) = decode_header(data, 1 << 20) {
        assert!(h.len <= 1 << 20);
        assert_eq!(&encode_header(h.kind, h.cluster, h.epoch, h.len)[..], &data[..HEADER_LEN]);
    }
});
