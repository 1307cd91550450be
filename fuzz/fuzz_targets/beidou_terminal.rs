//! A BeiDou terminal driver fed a terminal's byte stream, in any dialect.
//!
//! The first byte picks the dialect the driver is set to (auto, 2.1, 4.0, BDS-3), the
//! second the size of the pieces the stream arrives in; between pieces the clock moves
//! on a second and the driver is polled. Whatever the bytes, the driver never panics,
//! keeps every message it was given until it reports it sent or failed, and always
//! names a deadline to be polled at.
#![no_main]

use std::time::{Duration, Instant};

use drivers::satellite::BeidouDialect;
use drivers::satellite::bearer::{Bearer, BearerEvent, Body, Outgoing, Urgency};
use drivers::satellite::beidou::terminal::{BeidouTerminal, TerminalTiming};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let [choice, piece, stream @ ..] = data else {
        return;
    };
    let dialect = match choice % 4 {
        0 => BeidouDialect::Auto,
        1 => BeidouDialect::V21,
        2 => BeidouDialect::Bd1,
        _ => BeidouDialect::Bds3,
    };
    let mut now = Instant::now();
    let mut terminal = BeidouTerminal::new(dialect, TerminalTiming::default(), now);
    let messages = [
        Body::Text("暴雨红色预警，立即转移到高处。".repeat(4)),
        Body::Bytes(vec![0xA4, 0x2A, 0x24, 0x0D]),
    ];
    for (id, body) in messages.into_iter().enumerate() {
        let message = Outgoing {
            id: id as u64,
            to: "0247718".into(),
            urgency: Urgency::Normal,
            body,
        };
        terminal
            .enqueue(message, now)
            .expect("queued before the card is known");
    }
    let mut settled = 0;
    for chunk in stream.chunks(usize::from(*piece).max(1)) {
        terminal.on_bytes(chunk, now);
        now += Duration::from_secs(1);
        terminal.poll(now);
        let _ = terminal.take_output();
        for event in terminal.drain_events() {
            if matches!(event, BearerEvent::Sent { .. } | BearerEvent::Failed { .. }) {
                settled += 1;
            }
        }
        assert_eq!(
            terminal.queued().len() + settled,
            2,
            "a message lost or doubled"
        );
        assert!(terminal.next_deadline().is_some());
    }
});
