//! A real Iridium SBD dialogue (tests/fixtures/serial): every line, the host's and the
//! modem's, is read as it says, the binary write's sum is emcomm's, and the driver,
//! answered line by line as the transcript answers, writes the transcript's text and
//! reaches its outcomes.

use std::time::Instant;

use drivers::satellite::bearer::{Bearer, BearerEvent, Body, Outgoing, Urgency};
use drivers::satellite::iridium::{
    MAX_MO, MAX_SBDWT, MoOutcome, Sbd, SbdTiming, mo_outcome, parse_csq, parse_sbdix, sbd_checksum,
};

const TRANSCRIPT: &str = include_str!("fixtures/serial/iridium-sbd.txt");

fn modem_lines() -> Vec<&'static str> {
    TRANSCRIPT
        .lines()
        .filter_map(|l| l.strip_prefix("< "))
        .collect()
}

/// What a host line asks, in words; `None` for a line that is no known command.
fn read_command(line: &str) -> Option<String> {
    Some(match line {
        "AT" => "attention".into(),
        "AT&K0" => "flow control off".into(),
        "AT+SBDIX" => "session".into(),
        "AT+SBDRT" => "text read".into(),
        "AT+CSQ" => "signal query".into(),
        _ => {
            if let Some(text) = line.strip_prefix("AT+SBDWT=") {
                let fits = text.len() <= MAX_SBDWT
                    && text.bytes().all(|b| b.is_ascii_graphic() || b == b' ');
                return fits.then(|| format!("text write: {text}"));
            }
            if let Some(n) = line.strip_prefix("AT+SBDWB=") {
                let n: usize = n.parse().ok()?;
                return (1..=MAX_MO)
                    .contains(&n)
                    .then(|| format!("binary write of {n}"));
            }
            let hex = line.strip_prefix("<hex ")?.strip_suffix('>')?;
            let bytes = hex
                .split_whitespace()
                .map(|h| u8::from_str_radix(h, 16).ok())
                .collect::<Option<Vec<u8>>>()?;
            let (payload, sum) = bytes.split_at_checked(bytes.len().checked_sub(2)?)?;
            return (sum == sbd_checksum(payload))
                .then(|| format!("{} bytes and their sum", payload.len()));
        }
    })
}

/// What a modem line says, in words, read with the driver's parsers; `after_text_read`
/// when the line before was `+SBDRT:`, whose message is the next line.
fn read_answer(line: &str, after_text_read: bool) -> Option<String> {
    if after_text_read {
        return Some(format!("message: {line}"));
    }
    Some(match line {
        "OK" => "ok".into(),
        "READY" => "ready".into(),
        "0" | "1" | "2" | "3" => format!("write result {line}"),
        "+SBDRT:" => "text read follows".into(),
        _ => {
            if let Some(n) = parse_csq(line) {
                return Some(format!("signal {n}"));
            }
            let r = parse_sbdix(line)?;
            format!(
                "session: MO {:?}, MT status {}, {} bytes, {} queued",
                mo_outcome(r.mo_status),
                r.mt_status,
                r.mt_length,
                r.mt_queued
            )
        }
    })
}

#[test]
fn every_line_of_the_transcript_host_and_modem_reads_as_a_known_command_or_answer() {
    let mut read = Vec::new();
    let mut after_text_read = false;
    for line in TRANSCRIPT.lines() {
        let meaning = if let Some(command) = line.strip_prefix("> ") {
            read_command(command)
        } else if let Some(answer) = line.strip_prefix("< ") {
            let meaning = read_answer(answer, after_text_read);
            after_text_read = answer == "+SBDRT:";
            meaning
        } else {
            assert!(
                line.starts_with('#'),
                "neither a comment nor a line: {line:?}"
            );
            continue;
        };
        read.push(meaning.unwrap_or_else(|| panic!("not understood: {line:?}")));
    }
    assert_eq!(
        read,
        [
            "attention",
            "ok",
            "flow control off",
            "ok",
            "text write: Hello World",
            "ok",
            "session",
            "session: MO Sent, MT status 0, 0 bytes, 0 queued",
            "ok",
            "binary write of 5",
            "ready",
            "5 bytes and their sum",
            "write result 0",
            "ok",
            "session",
            "session: MO Transient, MT status 2, 0 bytes, 0 queued",
            "ok",
            "session",
            "session: MO Sent, MT status 1, 6 bytes, 8 queued",
            "ok",
            "text read",
            "text read follows",
            "message: hello!",
            "ok",
            "signal query",
            "signal 4",
            "ok",
        ]
    );
    assert_eq!(read.len(), 27, "every line of the transcript checked");
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
    let text_write = TRANSCRIPT
        .lines()
        .find_map(|l| l.strip_prefix("> AT+SBDWT="))
        .expect("the text write");
    sbd.enqueue(
        Outgoing {
            id: 0,
            to: "gateway".into(),
            urgency: Urgency::Normal,
            body: Body::Text(text_write.into()),
        },
        now,
    )
    .expect("fits");
    assert_eq!(
        answer(&mut sbd, &["+CSQ:4", "OK"]),
        format!("AT+SBDWT={text_write}\r"),
        "the transcript's text write"
    );
    assert_eq!(answer(&mut sbd, &["OK"]), "AT+SBDIX\r");
    assert_eq!(
        answer(&mut sbd, &["+SBDIX: 0, 0, 0, 0, 0, 0", "OK"]),
        "AT+SBDD0\r"
    );
    events.extend(sbd.drain_events());
    assert!(events.contains(&BearerEvent::Sent { id: 0 }));
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
    assert_eq!(answer(&mut sbd, &["0", "OK"]), "AT+SBDWB=5\r");
    assert_eq!(answer(&mut sbd, &["READY"]).as_bytes(), b"hello\x02\x14");
    assert_eq!(answer(&mut sbd, &["0", "OK"]), "AT+SBDIX\r");
    // The transcript's failed session: the message is kept for a later try.
    assert_eq!(answer(&mut sbd, &["+SBDIX: 32, 8, 2, 0, 0, 0", "OK"]), "");
    assert_eq!(sbd.queued().len(), 1);
    events.extend(sbd.drain_events());
    assert!(events.contains(&BearerEvent::Signal { level: 3 }));
    assert!(!events.contains(&BearerEvent::Sent { id: 1 }));
}
