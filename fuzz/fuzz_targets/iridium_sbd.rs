//! An Iridium SBD modem's answers, any bytes, to a driver with messages queued.
//!
//! The first byte sets the size of the pieces the rest arrives in; between pieces the
//! clock moves on by up to 25 s and the driver is polled. Whatever the bytes, the driver
//! never panics, never reports a message sent twice or one it was not given, and keeps
//! every message it has not reported.
#![no_main]

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use drivers::satellite::bearer::{Bearer, BearerEvent, Body, Outgoing, Urgency};
use drivers::satellite::iridium::{Sbd, SbdTiming};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&piece, stream)) = data.split_first() else {
        return;
    };
    let mut now = Instant::now();
    let mut sbd = Sbd::new(SbdTiming::default(), now);
    for id in 0..3u64 {
        let message = Outgoing {
            id,
            to: "gateway".into(),
            urgency: if id == 2 {
                Urgency::Urgent
            } else {
                Urgency::Normal
            },
            body: Body::Bytes(vec![id as u8; 10]),
        };
        sbd.enqueue(message, now).expect("fits");
    }
    let mut reported = BTreeSet::new();
    for chunk in stream.chunks(usize::from(piece).max(1)) {
        sbd.on_bytes(chunk, now);
        now += Duration::from_millis(u64::from(chunk[0]) * 100);
        sbd.poll(now);
        let _ = sbd.take_output();
        for event in sbd.drain_events() {
            if let BearerEvent::Sent { id } | BearerEvent::Failed { id, .. } = event {
                assert!(id < 3, "a message it was given");
                assert!(reported.insert(id), "reported once");
            }
        }
    }
    assert_eq!(sbd.queued().len() + reported.len(), 3, "nothing lost");
});
