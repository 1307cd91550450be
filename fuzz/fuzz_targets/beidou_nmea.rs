//! A BeiDou 2.1 terminal's or BDS-3 module's byte stream, in pieces.
//!
//! The first byte sets the size of the pieces. Whatever the bytes, the reader returns
//! without panicking; every sentence it gives encodes back to a line that parses to the
//! same sentence; reading its fields as 2.1 and as BDS-3 sentences and decoding a
//! received payload never panic.
#![no_main]

use drivers::satellite::beidou::bds3::Bds3Inbound;
use drivers::satellite::beidou::nmea::{Inbound, Sentence, SentenceReader};
use drivers::satellite::beidou::payload;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&piece, stream)) = data.split_first() else {
        return;
    };
    let mut reader = SentenceReader::new();
    for chunk in stream.chunks(usize::from(piece).max(1)) {
        for sentence in reader.push(chunk).into_iter().flatten() {
            let wire = sentence.encode();
            let again = Sentence::parse(&wire[..wire.len() - 2]).expect("re-encoded parses");
            assert_eq!(again, sentence);
            if let Ok(Inbound::Received(message)) = Inbound::read(&sentence) {
                let _ = payload::decode(message.form, &message.payload);
            }
            if let Ok(Bds3Inbound::Received(message)) = Bds3Inbound::read(&sentence) {
                let _ = payload::decode(message.form, &message.payload);
            }
        }
    }
});
