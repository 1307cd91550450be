//! The self-written SMS dialogue with a Tiantong-1 terminal (tests/fixtures/serial,
//! written from public facts, not captured from a device): the host's commands and PDUs
//! are exactly what emcomm's SMS driver writes, the terminal's answers mean what the
//! comments say, and the times between them are the dialogue's.

mod common;

use std::time::Duration;

use drivers::satellite::sms::modem::signal_level;
use drivers::satellite::sms::pdu::{self, Delivered, Part, SmsBody};

use common::Line;

const DIALOGUE: &str = include_str!("fixtures/serial/sms-tiantong.txt");

const OWN: &str = "+8617400012345";
const SHORT: &str = "收到，马上转移";
const WARNING: &str = "暴雨红色预警：预计未来三小时本村降雨量将超过一百毫米，山洪和泥石流风险极高。\
    请沿河及低洼地带群众立即转移到村委会或学校等安全地点，带好证件和药品，听从村干部指挥，不要返回取物。";

fn dialogue() -> Vec<Line> {
    common::dialogue(DIALOGUE)
}

/// Where the line `text` is, the first at or after `from`.
fn find(lines: &[Line], from: usize, text: &str) -> usize {
    from + lines[from..]
        .iter()
        .position(|l| l.text == text)
        .unwrap_or_else(|| panic!("{text:?} after line {from}"))
}

fn between(lines: &[Line], from: usize, to: usize) -> Duration {
    lines[from + 1..=to].iter().map(|l| l.after).sum()
}

#[test]
fn the_hosts_lines_are_the_commands_and_pdus_emcomm_writes() {
    let host: Vec<&str> = dialogue()
        .iter()
        .filter(|l| l.host)
        .map(|l| l.text)
        .collect();
    let short = pdu::submit("+8613800138000", &SmsBody::Text(SHORT.into()), 0).expect("a PDU");
    let warning = pdu::submit(OWN, &SmsBody::Text(WARNING.into()), 0x2A).expect("PDUs");
    assert_eq!(short.len(), 1);
    assert_eq!(warning.len(), 2, "67 characters and 21");

    let mut expected: Vec<String> = [
        "AT",
        "AT+CMGF=0",
        "AT+CNMI=2,1,0,0,0",
        "AT+CMGL=4",
        "AT+CREG?",
        "AT+CSQ",
        "AT+CREG?",
    ]
    .map(String::from)
    .to_vec();
    for (octets, pdu) in short.iter().chain(&warning) {
        expected.push(format!("AT+CMGS={octets}"));
        expected.push(format!("{pdu}<1A>"));
    }
    for index in [1, 2] {
        expected.push(format!("AT+CMGR={index}"));
        expected.push(format!("AT+CMGD={index}"));
    }
    assert_eq!(host, expected);
}

#[test]
fn the_terminals_answers_mean_what_the_dialogue_says() {
    let lines = dialogue();
    let answers: Vec<&str> = lines.iter().filter(|l| !l.host).map(|l| l.text).collect();
    assert_eq!(answers.len(), 29);

    // Registered at home; RSSI 20, the bearer's signal 4 of 4.
    assert_eq!(answers.iter().filter(|a| **a == "+CREG: 0,1").count(), 2);
    assert_eq!(signal_level(20), 4);
    assert!(answers.contains(&"+CSQ: 20,99"));

    // Each part sent is answered with the prompt and its reference, 1 to 3.
    assert_eq!(answers.iter().filter(|a| **a == ">").count(), 3);
    for reference in 1..=3 {
        assert!(answers.contains(&format!("+CMGS: {reference}").as_str()));
    }

    // The two parts come back, stored at 1 and 2; together they are the warning.
    let mut text = String::new();
    for index in [1, 2] {
        let at = find(&lines, 0, &format!("+CMTI: \"SM\",{index}"));
        let read = find(&lines, at, &format!("AT+CMGR={index}"));
        let header = lines[read + 1].text;
        let pdu = lines[read + 2].text;
        let octets: usize = header
            .strip_prefix("+CMGR: 0,,")
            .and_then(|n| n.parse().ok())
            .expect("+CMGR: 0,,<octets>");
        assert_eq!(
            octets,
            pdu.len() / 2 - 1,
            "octets after the empty SMSC field"
        );
        let Delivered { from, body, part } = pdu::read_deliver(pdu).expect("an SMS-DELIVER");
        assert_eq!(from, OWN);
        assert_eq!(
            part,
            Some(Part {
                reference: 0x2A,
                total: 2,
                sequence: index
            })
        );
        let SmsBody::Text(piece) = body else {
            panic!("UCS-2 text");
        };
        text.push_str(&piece);
        assert_eq!(lines[read + 3].text, "OK");
        assert_eq!(
            lines[find(&lines, read, &format!("AT+CMGD={index}")) + 1].text,
            "OK"
        );
    }
    assert_eq!(text, WARNING);
}

#[test]
fn the_network_takes_each_part_in_4_s_and_a_part_comes_back_6_s_later() {
    let lines = dialogue();
    for reference in 1..=3 {
        let answer = find(&lines, 0, &format!("+CMGS: {reference}"));
        assert!(lines[answer - 1].text.ends_with("<1A>"));
        assert_eq!(
            lines[answer].after,
            Duration::from_secs(4),
            "part {reference}"
        );
    }
    for (index, reference) in [(1, 2), (2, 3)] {
        let taken = find(&lines, 0, &format!("+CMGS: {reference}"));
        let back = find(&lines, taken, &format!("+CMTI: \"SM\",{index}"));
        // Taken when its +CMGS came; its OK follows at once.
        assert_eq!(between(&lines, taken, back), Duration::from_secs(6));
    }
}
