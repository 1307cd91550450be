//! An SMS modem's answers, any bytes, to a driver with a long message queued.
//!
//! The first byte sets the size of the pieces the rest arrives in, and, when odd, asks
//! for status reports; between pieces the clock moves on by up to 25 s and the driver
//! is polled. Whatever the bytes (listings, `+CMTI` for any index, PDUs, `+CDS` status
//! reports, errors), the driver never panics, never reports a message sent twice, or
//! delivered twice, or one it was not given, keeps every message it has not reported,
//! and always names a deadline while it has work.
#![no_main]

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use drivers::satellite::bearer::{Bearer, BearerEvent, Body, Outgoing, Urgency};
use drivers::satellite::sms::modem::{SmsModem, SmsTiming};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&piece, stream)) = data.split_first() else {
        return;
    };
    let mut now = Instant::now();
    let mut modem = SmsModem::new(SmsTiming::default(), now).with_status_reports(piece & 1 == 1);
    let bodies = [
        Body::Text("地震预警：请立即到空旷地带避险。".repeat(6)),
        Body::Bytes(vec![0xA4; 20]),
    ];
    for (id, body) in bodies.into_iter().enumerate() {
        let message = Outgoing {
            id: id as u64,
            to: "+8613800138000".into(),
            urgency: if id == 1 { Urgency::Urgent } else { Urgency::Normal },
            body,
        };
        modem.enqueue(message, now).expect("takes it");
    }
    let mut reported = BTreeSet::new();
    let mut delivered = BTreeSet::new();
    for chunk in stream.chunks(usize::from(piece).max(1)) {
        modem.on_bytes(chunk, now);
        now += Duration::from_millis(u64::from(chunk[0]) * 100);
        modem.poll(now);
        let _ = modem.take_output();
        for event in modem.drain_events() {
            match event {
                BearerEvent::Sent { id } | BearerEvent::Failed { id, .. } => {
                    assert!(id < 2, "a message it was given");
                    assert!(reported.insert(id), "reported once");
                }
                BearerEvent::Delivered { id } => {
                    assert!(id < 2, "a message it was given");
                    assert!(delivered.insert(id), "delivered once");
                }
                _ => {}
            }
        }
        assert!(modem.next_deadline().is_some(), "a deadline while it has work");
    }
    assert_eq!(modem.queued().len() + reported.len(), 2, "nothing lost");
});
