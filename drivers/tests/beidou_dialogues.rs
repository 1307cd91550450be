//! The self-written BDS-3 and BD-1 "4.0" dialogues (tests/fixtures/serial, written from
//! public facts, not captured from a device): every line parses, the host's lines are
//! exactly what emcomm's builders write, the terminal's mean what the comments say, and
//! the times between them are the ones the exchanges need.

mod common;

use std::time::Duration;

use drivers::satellite::beidou::bd1::{self, Bd1Card, Bd1Feedback, Bd1Inbound, Frame, FrameReader};
use drivers::satellite::beidou::bds3::{self, Bds3Inbound, Refusal};
use drivers::satellite::beidou::nmea::{MessageForm, Sentence, SentenceReader};
use drivers::satellite::beidou::payload::{self, Content};

use common::{Line, dialogue};

const BDS3: &str = include_str!("fixtures/serial/beidou-bds3.txt");
const BD1: &str = include_str!("fixtures/serial/beidou-bd1-4.0.txt");

/// The time from line `from` to line `to`.
fn between(lines: &[Line], from: usize, to: usize) -> Duration {
    lines[from + 1..=to].iter().map(|l| l.after).sum()
}

fn sentence(line: &str) -> Sentence {
    Sentence::parse(line.as_bytes()).expect("a sentence with a good checksum")
}

fn wire(sentence: Sentence) -> String {
    String::from_utf8(sentence.encode())
        .expect("ASCII")
        .trim_end()
        .to_string()
}

fn hex_bytes(line: &str) -> Vec<u8> {
    line.strip_prefix("<hex ")
        .and_then(|l| l.strip_suffix('>'))
        .expect("<hex ..>")
        .split(' ')
        .map(|b| u8::from_str_radix(b, 16).expect("a hex byte"))
        .collect()
}

fn code(bytes: &[u8]) -> Vec<u8> {
    payload::encode(MessageForm::Code, &Content::Bytes(bytes.to_vec())).expect("code form")
}

#[test]
fn every_line_of_the_bds3_dialogue_is_a_sentence_with_a_good_checksum() {
    let lines = dialogue(BDS3);
    assert_eq!(lines.len(), 12);
    let mut stream = Vec::new();
    for line in &lines {
        stream.extend(line.text.as_bytes());
        stream.extend(b"\r\n");
    }
    let mut reader = SentenceReader::new();
    let parsed: Vec<_> = stream.chunks(7).flat_map(|c| reader.push(c)).collect();
    assert_eq!(parsed.len(), 12);
    assert!(parsed.iter().all(Result::is_ok), "{parsed:?}");
}

#[test]
fn the_bds3_hosts_sentences_are_what_emcomm_writes() {
    let host: Vec<&str> = dialogue(BDS3)
        .iter()
        .filter(|l| l.host)
        .map(|l| l.text)
        .collect();
    let hello = wire(bds3::host::send(
        "0247718",
        MessageForm::Code,
        code(b"hello"),
        false,
    ));
    assert_eq!(
        host,
        [
            wire(bds3::host::card_info()),
            hello.clone(),
            hello,
            wire(bds3::host::send(
                "15950044",
                MessageForm::Code,
                code(b"12345"),
                false
            )),
        ]
    );
}

#[test]
fn the_bds3_modules_sentences_mean_what_the_dialogue_says() {
    let lines = dialogue(BDS3);
    let read = |k: usize| {
        assert!(!lines[k].host, "line {k} is the module's");
        Bds3Inbound::read(&sentence(lines[k].text)).expect("fields as the layout says")
    };

    // The card: eight digits, 60 s, comm level 4 (848 bits), not encrypted.
    let Bds3Inbound::Card(card) = read(1) else {
        panic!("card information");
    };
    assert_eq!(card.id, "15950044");
    assert_eq!(card.service_interval, Duration::from_secs(60));
    assert_eq!((card.comm_level, card.encrypted), (4, false));
    assert_eq!(card.capacity_bits(), 848);

    // Beam power: the strongest of three beams at 3, about once a second.
    for k in [2, 5, 11] {
        assert_eq!(read(k), Bds3Inbound::Power(3), "line {k}");
    }
    assert_eq!(between(&lines, 2, 5), Duration::from_secs(1));

    // The first send refused for the rate, 40 s to wait; sent again after them.
    assert_eq!(
        read(4),
        Bds3Inbound::Feedback(bds3::Feedback {
            time: "101501".into(),
            command: "TCQ".into(),
            done: false,
            refusal: Some(Refusal::Rate),
            wait: Duration::from_secs(40),
        })
    );
    assert!(between(&lines, 4, 6) >= Duration::from_secs(40));

    // Done, 60 s before the next; the next goes one interval later.
    for k in [7, 9] {
        let Bds3Inbound::Feedback(done) = read(k) else {
            panic!("feedback on line {k}");
        };
        assert!(done.done && done.refusal.is_none(), "line {k}");
        assert_eq!(done.wait, Duration::from_secs(60));
    }
    assert!(between(&lines, 7, 8) >= Duration::from_secs(60));

    // "12345" back from the own card, 2 s after it went.
    let Bds3Inbound::Received(back) = read(10) else {
        panic!("a message");
    };
    assert_eq!(
        (back.from.as_str(), back.form),
        ("15950044", MessageForm::Code)
    );
    assert_eq!(
        payload::decode(back.form, &back.payload),
        Ok(Content::Bytes(b"12345".to_vec()))
    );
    assert_eq!(between(&lines, 9, 10), Duration::from_secs(2));
}

#[test]
fn every_line_of_the_bd1_dialogue_is_one_frame_with_a_good_checksum() {
    let lines = dialogue(BD1);
    assert_eq!(lines.len(), 11);
    let stream: Vec<u8> = lines.iter().flat_map(|l| hex_bytes(l.text)).collect();
    let mut reader = FrameReader::new();
    let frames: Vec<Frame> = stream.chunks(5).flat_map(|c| reader.push(c)).collect();
    assert_eq!(frames.len(), 11);
    let counters = reader.counters();
    assert_eq!(
        (
            counters.bad_checksum,
            counters.bad_length,
            counters.garbage_bytes
        ),
        (0, 0, 0)
    );
    for (line, frame) in lines.iter().zip(&frames) {
        assert_eq!(frame.encode(), hex_bytes(line.text), "one frame a line");
    }
}

#[test]
fn the_bd1_hosts_frames_are_what_emcomm_writes() {
    let host: Vec<Vec<u8>> = dialogue(BD1)
        .iter()
        .filter(|l| l.host)
        .map(|l| hex_bytes(l.text))
        .collect();
    let hello = bd1::send(166_166, 246_006, true, b"hello").encode();
    assert_eq!(
        host,
        [
            bd1::card_info(0).encode(),
            hello.clone(),
            bd1::card_info(166_166).encode(),
            hello,
            bd1::send(166_166, 166_166, true, b"12345").encode(),
        ]
    );
}

#[test]
fn the_bd1_terminals_frames_mean_what_the_dialogue_says() {
    let lines = dialogue(BD1);
    let read = |k: usize| {
        assert!(!lines[k].host, "line {k} is the terminal's");
        let frames = FrameReader::new().push(&hex_bytes(lines[k].text));
        let [frame] = frames.as_slice() else {
            panic!("one frame on line {k}");
        };
        Bd1Inbound::read(frame).expect("a body as the layout says")
    };

    let card = Bd1Card {
        address: 166_166,
        broadcast_id: 11,
        user_feature: 6,
        service_interval: Duration::from_secs(60),
        comm_level: 3,
        encrypted: false,
        subordinates: 0,
    };
    assert_eq!(read(1), Bd1Inbound::Card(card.clone()));
    assert_eq!(read(5), Bd1Inbound::Card(card));

    // Flag 4: rate not reached, 40 s; the send goes again after them.
    assert_eq!(
        read(3),
        Bd1Inbound::Feedback(Bd1Feedback::RateNotReached(Duration::from_secs(40)))
    );
    assert!(between(&lines, 3, 6) >= Duration::from_secs(40));

    // Flag 0, done, naming TXSQ; the next send one interval later.
    for k in [7, 9] {
        assert_eq!(read(k), Bd1Inbound::Feedback(Bd1Feedback::Done), "line {k}");
        assert!(hex_bytes(lines[k].text).windows(4).any(|w| w == b"TXSQ"));
    }
    assert!(between(&lines, 7, 8) >= Duration::from_secs(60));

    // "12345" back from the own card, code form, 40 bits, 2 s after it went.
    let Bd1Inbound::Message(back) = read(10) else {
        panic!("a message");
    };
    assert_eq!(back.from, 166_166);
    assert_eq!(back.category, bd1::category(true));
    assert_eq!((back.bits, back.content.as_slice()), (40, &b"12345"[..]));
    assert_eq!(between(&lines, 9, 10), Duration::from_secs(2));
}
