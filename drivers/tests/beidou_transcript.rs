//! Every sentence of a real BeiDou 2.1 dialogue (tests/fixtures/serial) parses, the
//! host's sentences are exactly what emcomm's builders write, and the terminal's mean
//! what the transcript's comments say.

use std::time::Duration;

use drivers::satellite::beidou::nmea::{
    Inbound, MessageForm, Sentence, SentenceReader, capacity_bits, host,
};
use drivers::satellite::beidou::payload::{self, Content};

const TRANSCRIPT: &str = include_str!("fixtures/serial/beidou-rdss-2.1.txt");

/// The transcript's sentences, host's and terminal's, in order.
fn lines() -> Vec<(bool, &'static str)> {
    TRANSCRIPT
        .lines()
        .filter_map(|l| {
            l.strip_prefix("> ")
                .map(|s| (true, s))
                .or(l.strip_prefix("< ").map(|s| (false, s)))
        })
        .collect()
}

fn read(line: &str) -> Inbound {
    let sentence = Sentence::parse(line.as_bytes()).expect("a sentence with a good checksum");
    Inbound::read(&sentence).expect("fields as the dialect lays them out")
}

fn wire(sentence: Sentence) -> String {
    String::from_utf8(sentence.encode())
        .expect("ASCII")
        .trim_end()
        .to_string()
}

#[test]
fn every_line_of_the_transcript_is_a_sentence_with_a_good_checksum() {
    let all = lines();
    assert_eq!(all.len(), 16);
    let mut stream = Vec::new();
    for (_, line) in &all {
        stream.extend(line.as_bytes());
        stream.extend(b"\r\n");
    }
    let mut reader = SentenceReader::new();
    let parsed: Vec<_> = stream.chunks(5).flat_map(|c| reader.push(c)).collect();
    assert_eq!(parsed.len(), all.len());
    assert!(parsed.iter().all(Result::is_ok), "{parsed:?}");
    assert_eq!(reader.counters().sentences, 16);
}

#[test]
fn the_hosts_sentences_are_what_emcomm_writes() {
    let hello =
        payload::encode(MessageForm::Mixed, &Content::Bytes(b"hello".to_vec())).expect("mixed");
    let code = payload::encode(MessageForm::Code, &Content::Text("12343335".into())).expect("code");
    let expected = [
        wire(host::card_info()),
        wire(host::output("BSI", 2, 10)),
        wire(host::beams(5, 3)),
        wire(host::send(
            "0166166",
            false,
            MessageForm::Code,
            code.clone(),
        )),
        wire(host::send("0166166", false, MessageForm::Code, code)),
        wire(host::send(
            "0247718",
            false,
            MessageForm::Code,
            payload::encode(MessageForm::Code, &Content::Text("12345".into())).expect("code"),
        )),
        wire(host::send("0179773", false, MessageForm::Mixed, hello)),
    ];
    let from_host: Vec<&str> = lines()
        .into_iter()
        .filter(|(host, _)| *host)
        .map(|(_, l)| l)
        .collect();
    assert_eq!(from_host, expected);
}

#[test]
fn the_terminals_sentences_mean_what_the_transcript_says() {
    let from_terminal: Vec<&str> = lines()
        .into_iter()
        .filter(|(host, _)| !*host)
        .map(|(_, l)| l)
        .collect();
    assert_eq!(from_terminal.len(), 9);

    // Card info: own ID 0166166, service interval 40 s, comm level 3, not encrypted.
    let Inbound::CardInfo(card) = read(from_terminal[0]) else {
        panic!("card info");
    };
    assert_eq!(card.id, "0166166");
    assert_eq!(card.service_interval, Duration::from_secs(40));
    assert_eq!(card.comm_level, 3);
    assert!(!card.encrypted);
    assert_eq!(card.capacity_bits(), capacity_bits(3));
    assert_eq!(card.capacity_bits() / 8, 78, "about 78 bytes a message");

    // Beam status: response beam 1, timing beam 3, best beam power 3.
    for (line, response) in [(from_terminal[1], 1), (from_terminal[2], 2)] {
        let Inbound::Beam(beam) = read(line) else {
            panic!("beam status");
        };
        assert_eq!(beam.response_beam, response);
        assert_eq!(beam.power.len(), 10);
        assert_eq!(beam.best(), 3);
    }

    // First send refused (not done), the next accepted with 40 s to wait.
    let Inbound::Feedback(refused) = read(from_terminal[3]) else {
        panic!("feedback");
    };
    assert_eq!((refused.command.as_str(), refused.done), ("TXA", false));
    let Inbound::Feedback(accepted) = read(from_terminal[4]) else {
        panic!("feedback");
    };
    assert!(accepted.done && accepted.rate_ok);
    assert_eq!(accepted.wait, Duration::from_secs(40));

    // The message to our own ID comes back, in code form.
    let Inbound::Received(own) = read(from_terminal[5]) else {
        panic!("received");
    };
    assert_eq!(
        (own.from.as_str(), own.form),
        ("0166166", MessageForm::Code)
    );
    assert_eq!(
        payload::decode(own.form, &own.payload),
        Ok(Content::Bytes(b"12343335".to_vec()))
    );

    // To another terminal: accepted; a position request refused with 58 s to wait.
    let Inbound::Feedback(sent) = read(from_terminal[6]) else {
        panic!("feedback");
    };
    assert!(sent.done);
    let Inbound::Feedback(position) = read(from_terminal[7]) else {
        panic!("feedback");
    };
    assert_eq!(position.command, "DWA");
    assert!(!position.done);
    assert_eq!(position.wait, Duration::from_secs(58));

    // Mixed form: "hello" led by A4.
    let Inbound::Received(mixed) = read(from_terminal[8]) else {
        panic!("received");
    };
    assert_eq!(mixed.form, MessageForm::Mixed);
    assert_eq!(
        payload::decode(mixed.form, &mixed.payload),
        Ok(Content::Bytes(b"hello".to_vec()))
    );
}
