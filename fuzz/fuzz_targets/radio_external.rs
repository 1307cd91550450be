//! A byte stream from the external radio backend, in pieces.
//!
//! The first byte sets the size of the pieces the rest arrives in. Whatever the
//! bytes, [`Decoder::push`] returns without panicking; every message it gives encodes
//! back to exactly the bytes it came from; once it reports a framing error the test
//! stops, as the gateway closes the connection then.
#![no_main]

use drivers::radio::external::{Decoder, Message};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&piece, stream)) = data.split_first() else {
        return;
    };
    let piece = usize::from(piece).max(1);
    let mut decoder = Decoder::new();
    let mut taken = Vec::new();
    let mut consumed = 0;
    for chunk in stream.chunks(piece) {
        match decoder.push(chunk) {
            Ok(messages) => taken.extend(messages),
            Err(_) => return,
        }
        consumed += chunk.len();
    }
    let again: Vec<u8> = taken.iter().flat_map(Message::encode).collect();
    assert!(again.len() <= consumed);
    assert_eq!(
        again[..],
        stream[..again.len()],
        "messages re-encode to their bytes"
    );
});
