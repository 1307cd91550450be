//! Receive audio of any content through the DTMF decoder, in pieces.
//!
//! Whatever the samples, [`DtmfDecoder::push`] returns without panicking and gives
//! only keys of the pad, never more than one per two 20 ms blocks.
#![no_main]

use codecs::dtmf::{BLOCK, DtmfDecoder};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let samples: Vec<i16> = data
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect();
    let mut decoder = DtmfDecoder::new();
    let mut digits = Vec::new();
    for piece in samples.chunks(777) {
        digits.extend(decoder.push(piece));
    }
    assert!(digits.iter().all(|d| "0123456789*#ABCD".contains(*d)));
    assert!(digits.len() <= samples.len() / BLOCK / 2 + 1);
});
