//! A BeiDou BD-1 "4.0" terminal's byte stream, in pieces.
//!
//! The first byte sets the size of the pieces. Whatever the bytes, the reader returns
//! without panicking; every frame it gives encodes back to bytes that read as the same
//! frame; reading its body never panics.
#![no_main]

use drivers::satellite::beidou::bd1::{Bd1Inbound, FrameReader};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&piece, stream)) = data.split_first() else {
        return;
    };
    let mut reader = FrameReader::new();
    for chunk in stream.chunks(usize::from(piece).max(1)) {
        for frame in reader.push(chunk) {
            let again = FrameReader::new().push(&frame.encode());
            assert_eq!(again, vec![frame.clone()]);
            let _ = Bd1Inbound::read(&frame);
        }
    }
});
