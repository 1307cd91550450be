//! The fragment reassembler under any sequence of messages, on a fake clock.
//!
//! The input is a program (layout in `emcomm_fuzz::cascade`): raw messages, fragments
//! built from a few keys so that they collide and disagree, clock steps and expiries.
//! After every step the reassembler keeps its promises: never more frames in progress or
//! bytes held than its caps, counters that only grow, a frame completed from fragments
//! that matches its key, and a deadline exactly when something is in progress.
#![no_main]

use std::time::{Duration, Instant};

use emcomm_fuzz::Bytes;
use emcomm_fuzz::cascade::{EXPIRE, FRAGMENT, KEYS, MAX_COUNT, OPS, RAW};
use gateway::cascade::fragment::{
    MARKER, Pushed, Reassembler, ReassemblyConfig, ReassemblyStats, frame_key,
};
use libfuzzer_sys::fuzz_target;

fn counters(s: &ReassemblyStats) -> [u64; 9] {
    [
        s.whole,
        s.completed,
        s.duplicates,
        s.malformed,
        s.disagreeing,
        s.key_mismatches,
        s.too_large,
        s.expired,
        s.evicted,
    ]
}

fuzz_target!(|data: &[u8]| {
    let mut program = Bytes::new(data);
    let config = ReassemblyConfig {
        timeout: Duration::from_secs(1 + u64::from(program.u8())),
        max_frames: 1 + usize::from(program.u8() % 8),
        max_bytes: 1 + usize::from(program.u16() % 2048),
    };
    let mut reassembler = Reassembler::new(config);
    let mut now = Instant::now();
    let mut stats = reassembler.stats();

    while !program.is_empty() {
        let op = program.u8() % OPS;
        now += Duration::from_secs(u64::from(program.u8()));
        let len = usize::from(program.u8());
        let bytes = program.take(len);
        match op {
            RAW => {
                let pushed = reassembler.push(bytes, now);
                if bytes.first() != Some(&MARKER) {
                    assert_eq!(pushed, Pushed::Complete(bytes.to_vec()));
                } else if let Pushed::Complete(frame) = pushed {
                    assert_eq!(bytes.get(1..5), Some(&frame_key(&frame).to_be_bytes()[..]));
                }
            }
            FRAGMENT => {
                let [key, count, index, piece @ ..] = bytes else {
                    continue;
                };
                let key = u32::from(key % KEYS);
                let count = 1 + count % MAX_COUNT;
                let mut message = vec![MARKER];
                message.extend_from_slice(&key.to_be_bytes());
                message.extend_from_slice(&[index % count, count]);
                message.extend_from_slice(piece);
                if let Pushed::Complete(frame) = reassembler.push(&message, now) {
                    assert_eq!(frame_key(&frame), key, "completed against its key");
                }
            }
            EXPIRE => {
                reassembler.expire(now);
            }
            _ => unreachable!("opcodes are taken modulo OPS"),
        }

        assert!(reassembler.in_progress() <= config.max_frames);
        assert!(reassembler.held_bytes() <= config.max_bytes);
        let after = reassembler.stats();
        assert!(
            counters(&stats)
                .iter()
                .zip(counters(&after))
                .all(|(b, a)| a >= *b),
            "a counter went back"
        );
        stats = after;
        assert_eq!(
            reassembler.next_deadline().is_some(),
            reassembler.in_progress() > 0
        );
        if let Some(deadline) = reassembler.next_deadline() {
            assert!(deadline > now, "a frame past its time is still held");
        }
    }
});
