//! A real Iridium SBD dialogue (tests/fixtures/serial): every modem line is read as it
//! says, the binary write's sum is emcomm's, and the driver, answered line by line as
//! the transcript answers, reaches the transcript's outcomes.

use std::time::Instant;

use drivers::satellite::bearer::{Bearer, BearerEvent, Body, Outgoing, Urgency};
use drivers::satellite::iridium::{
    MoOutcome, Sbd, SbdTiming, mo_outcome, parse_csq, parse_sbdix, sbd_checksum,
};

const TRANSCRIPT: &str = include_str!("fixtures/serial/iridium-sbd.txt");

fn modem_lines() -> Vec<&'static str> {
    TRANSCRIPT
        .lines()
        .filter_map(|l| l.strip_prefix("< "))
        .collect()
}

#[test]
fn every_modem_line_reads_as_the_transcript_says() {
    let lines = modem_lines();
    let sessions: Vec<_> = lines.iter().filter_map(|l| parse_sbdix(l)).collect();
    assert_eq!(sessions.len(), 3);
    assert_eq!(mo_outcome(sessions[0].mo_status), MoOutcome::Sent);
    // No network service (32): the message stays for another try.
    assert_eq!(sessions[1].mo_status, 32);
    assert_eq!(mo_outcome(sessions[1].mo_status), MoOutcome::Transient);
    // The mailbox check: one MT message of 6 bytes, 8 more queued.
    assert_eq!(
        (
            sessions[2].mt_status,
            sessions[2].mt_length,
            sessions[2].mt_queued
        ),
        (1, 6, 8)
    );
    assert_eq!(
        lines
            .iter()
            .filter_map(|l| parse_csq(l))
            .collect::<Vec<_>>(),
        vec![4]
    );
    assert!(lines.contains(&"hello!"));
}

#[test]
fn the_binary_write_of_hello_carries_the_sum_emcomm_computes() {
    let written = TRANSCRIPT
        .lines()
        .find_map(|l| l.strip_prefix("> <hex ").and_then(|l| l.strip_suffix('>')))
        .expect("the binary write");
    let bytes: Vec<u8> = written
        .split_whitespace()
        .map(|h| u8::from_str_radix(h, 16).expect("hex"))
        .collect();
    let (payload, sum) = bytes.split_at(bytes.len() - 2);
    assert_eq!(payload, b"hello");
    assert_eq!(sum, sbd_checksum(b"hello"));
}

#[test]
fn the_driver_answered_as_in_the_transcript_writes_with_the_sum_and_keeps_the_message_after_a_failed_session()
 {
    let now = Instant::now();
    let mut sbd = Sbd::new(SbdTiming::default(), now);
    let mut events = Vec::new();
    let answer = |sbd: &mut Sbd, lines: &[&str]| {
        let mut wire = String::new();
        for l in lines {
            wire.push_str(l);
            wire.push_str("\r\n");
        }
        sbd.on_bytes(wire.as_bytes(), now);
        sbd.poll(now);
        String::from_utf8_lossy(&sbd.take_output()).into_owned()
    };
    assert_eq!(String::from_utf8_lossy(&sbd.take_output()), "AT\r");
    assert_eq!(answer(&mut sbd, &["OK"]), "AT&K0\r");
    assert_eq!(answer(&mut sbd, &["OK"]), "AT+SBDD0\r");
    assert_eq!(answer(&mut sbd, &["0", "OK"]), "AT+CSQ\r");
    sbd.enqueue(
        Outgoing {
            id: 1,
            to: "gateway".into(),
            urgency: Urgency::Normal,
            body: Body::Bytes(b"hello".to_vec()),
        },
        now,
    )
    .expect("fits");
    assert_eq!(answer(&mut sbd, &["+CSQ:4", "OK"]), "AT+SBDWB=5\r");
    assert_eq!(answer(&mut sbd, &["READY"]).as_bytes(), b"hello\x02\x14");
    assert_eq!(answer(&mut sbd, &["0", "OK"]), "AT+SBDIX\r");
    // The transcript's failed session: the message is kept for a later try.
    assert_eq!(answer(&mut sbd, &["+SBDIX: 32, 8, 2, 0, 0, 0", "OK"]), "");
    assert_eq!(sbd.queued().len(), 1);
    events.extend(sbd.drain_events());
    assert!(events.contains(&BearerEvent::Signal { level: 3 }));
    assert!(!events.iter().any(|e| matches!(e, BearerEvent::Sent { .. })));
}
