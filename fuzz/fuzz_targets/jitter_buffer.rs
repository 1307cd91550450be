//! The adaptive jitter buffer under an arbitrary arrival pattern, on a fake clock.
//!
//! The fuzz input is a program (layout in `emcomm_fuzz::jitter`): packets inserted in
//! any order with any sequence numbers and timestamps, the clock moved forward, and the
//! buffer drained of every slot that is due. After each step the buffer must keep the
//! promises of its module documentation:
//!
//! * it never holds more than its capacity;
//! * its counters only grow, each insert moves exactly the counter its outcome names,
//!   and every packet it queued is still held, played, dropped on overflow, dropped by a
//!   shrink, skipped by a resynchronisation, or was discarded by a restart;
//! * `poll` hands out no slot before it is due, and the next deadline never lies before
//!   a slot already handed out;
//! * the playout delay stays within `[min_delay, max_delay]`.
#![no_main]

use std::time::{Duration, Instant};

use drivers::rtp::jitter::{Inserted, JitterBuffer, JitterConfig, JitterStats};
use emcomm_fuzz::Bytes;
use emcomm_fuzz::jitter::{
    ADVANCE, INSERT, INSERT_NEXT, MAX_ADVANCE_MS, MAX_DURATION, OPS, POLL, SMALL_CAPACITY,
    VARIANT_G711, VARIANT_SMALL,
};
use libfuzzer_sys::fuzz_target;

struct Harness {
    buffer: JitterBuffer,
    config: JitterConfig,
    now: Instant,
    stats: JitterStats,
    /// Packets a restart threw away; the buffer does not count them itself.
    cleared_by_restarts: u64,
    /// Due instant of the last slot handed out.
    last_due: Option<Instant>,
    last_sequence: u16,
    last_timestamp: u32,
}

impl Harness {
    fn new(variant: u8) -> Self {
        let mut config = if variant & VARIANT_G711 == 0 {
            JitterConfig::for_clock(48_000, true)
        } else {
            JitterConfig::for_clock(8_000, false)
        };
        if variant & VARIANT_SMALL != 0 {
            config.capacity = SMALL_CAPACITY;
        }
        let t0 = Instant::now();
        Harness {
            buffer: JitterBuffer::new(config, t0),
            config,
            now: t0,
            stats: JitterStats::default(),
            cleared_by_restarts: 0,
            last_due: None,
            last_sequence: 0,
            last_timestamp: 0,
        }
    }

    fn insert(&mut self, sequence: u16, timestamp: u32, duration: u32, payload_len: u8) {
        let held_before = self.buffer.len() as u64;
        let payload = vec![0x5a; usize::from(payload_len)];
        let outcome = self
            .buffer
            .insert(self.now, sequence, timestamp, duration, &payload);
        self.last_sequence = sequence;
        self.last_timestamp = timestamp;

        let before = self.stats;
        let after = self.buffer.stats();
        let (queued, late, duplicates) = match outcome {
            Inserted::Queued => (1, 0, 0),
            Inserted::Restarted => {
                self.cleared_by_restarts += held_before;
                assert_eq!(after.restarts, before.restarts + 1);
                (1, 0, 0)
            }
            Inserted::Late => (0, 1, 0),
            Inserted::Duplicate => (0, 0, 1),
        };
        assert_eq!(
            (after.queued, after.late, after.duplicates),
            (
                before.queued + queued,
                before.late + late,
                before.duplicates + duplicates
            ),
            "{outcome:?} moved the wrong counter"
        );
    }

    fn drain(&mut self) {
        while let Some(slot) = self.buffer.poll(self.now) {
            assert!(slot.due <= self.now, "slot handed out before it is due");
            self.last_due = Some(slot.due);
        }
    }

    fn check(&mut self) {
        let stats = self.buffer.stats();
        assert!(self.buffer.len() <= self.config.capacity);

        let counters = |s: &JitterStats| {
            [
                s.queued,
                s.late,
                s.duplicates,
                s.played,
                s.fec_recovered,
                s.concealed,
                s.silence,
                s.stretches,
                s.shrinks,
                s.underruns,
                s.restarts,
                s.overflow_drops,
                s.resyncs,
                s.skipped,
            ]
        };
        let grew = counters(&self.stats)
            .iter()
            .zip(counters(&stats))
            .all(|(before, after)| after >= *before);
        assert!(grew, "a counter went back: {:?} -> {stats:?}", self.stats);
        assert_eq!(
            stats.queued,
            stats.played
                + stats.overflow_drops
                + stats.shrinks
                + stats.skipped
                + self.cleared_by_restarts
                + self.buffer.len() as u64,
            "queued packets went missing: {stats:?}"
        );
        self.stats = stats;

        let deadline = self.buffer.next_deadline();
        if let (Some(deadline), Some(last_due)) = (deadline, self.last_due) {
            assert!(
                deadline >= last_due,
                "next deadline {:?} before the last slot's due",
                last_due - deadline
            );
        }
        if self.buffer.is_idle() {
            assert_eq!(deadline, None);
        }
        if let Some(delay) = self.buffer.delay() {
            assert!(
                (self.config.min_delay..=self.config.max_delay).contains(&delay),
                "delay {delay:?}"
            );
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut program = Bytes::new(data);
    let mut harness = Harness::new(program.u8());

    while !program.is_empty() {
        match program.u8() % OPS {
            INSERT => {
                let sequence = program.u16();
                let timestamp = program.u32();
                let duration = u32::from(program.u16() % (MAX_DURATION + 1));
                let payload_len = program.u8();
                harness.insert(sequence, timestamp, duration, payload_len);
            }
            INSERT_NEXT => {
                let step = program.u8() as i8;
                let jitter = program.u8() as i8;
                let payload_len = program.u8();
                let sequence = harness.last_sequence.wrapping_add(step as u16);
                let timestamp = harness
                    .last_timestamp
                    .wrapping_add((i32::from(step) * harness.config.frame_step as i32) as u32)
                    .wrapping_add(i32::from(jitter) as u32);
                harness.insert(sequence, timestamp, 0, payload_len);
            }
            ADVANCE => {
                let millis = program.u8() % (MAX_ADVANCE_MS + 1);
                harness.now += Duration::from_millis(u64::from(millis));
            }
            POLL => harness.drain(),
            _ => unreachable!("opcodes are taken modulo OPS"),
        }
        harness.check();
    }
});
