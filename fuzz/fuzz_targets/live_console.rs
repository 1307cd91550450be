//! A dispatcher console's datagrams during a live broadcast.
//!
//! The input is a sequence of datagrams, each led by a length byte. Whatever they hold,
//! [`LiveDecoder::on_rtp`] returns without panicking, and every frame it hands on is
//! exactly 20 ms of 48 kHz audio, since playout sends frames as they come.
#![no_main]

use codecs::opus::FRAME_SAMPLES;
use gateway::voice::live::LiveDecoder;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut decoder = LiveDecoder::new(111);
    let mut rest = data;
    while let Some((&len, tail)) = rest.split_first() {
        let take = usize::from(len).min(tail.len());
        let (datagram, after) = tail.split_at(take);
        for frame in decoder.on_rtp(datagram) {
            assert_eq!(frame.len(), FRAME_SAMPLES);
        }
        if datagram.first() == Some(&0xff) {
            decoder.reset();
        }
        rest = after;
    }
});
