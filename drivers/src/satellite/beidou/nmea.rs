//! The NMEA-style "2.1" dialect of BeiDou RDSS short-message terminals: sentences on
//! the wire, and the ones a gateway sends and reads.
//!
//! A sentence is `$`, a two-letter talker (`CC` host, `BD` terminal), a three-letter
//! kind, comma-separated fields, `*`, two upper-case hex digits of checksum, CR LF. The
//! checksum is the XOR of every byte between `$` and the **last** `*`: a message's
//! payload (the last field of `TXA` and `TXR`) may itself hold `*` and `,`, so the last
//! field runs to that last `*`.
//!
//! [`SentenceReader`] splits a byte stream into sentences, sans-IO. Whatever arrives —
//! garbage between sentences, a truncated sentence run into the next, a bad checksum, a
//! line longer than any sentence — costs at most that one sentence: a bad line is
//! searched for a later `$` that starts a good one, and every fault is counted.

use std::fmt;
use std::time::Duration;

use nom::IResult;
use nom::Parser;
use nom::bytes::complete::{tag, take_while_m_n};
use nom::sequence::preceded;

/// The longest line taken: far more than a 2.1 sentence holds (a TXA of 848 bits).
pub const MAX_LINE: usize = 1024;

/// One sentence: who sent it, what it is, its fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sentence {
    /// `CC` from the host, `BD` from the terminal.
    pub talker: String,
    /// `TXA`, `ICI`, …
    pub kind: String,
    /// The fields, as bytes: a Chinese payload is GB2312, not UTF-8.
    pub fields: Vec<Vec<u8>>,
}

/// Why a line is not a sentence.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SentenceError {
    #[error("no sentence start ($TTKKK)")]
    NoStart,
    #[error("no checksum (*HH at the end)")]
    NoChecksum,
    #[error("checksum {found:02X} where the bytes give {computed:02X}")]
    BadChecksum { found: u8, computed: u8 },
    #[error("line of {0} bytes, longer than any sentence")]
    TooLong(usize),
}

/// The XOR of `bytes`: the sentence checksum of what lies between `$` and `*`.
pub fn checksum(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0, |sum, b| sum ^ b)
}

fn header(input: &[u8]) -> IResult<&[u8], &[u8]> {
    preceded(
        tag(&b"$"[..]),
        take_while_m_n(5, 5, |b: u8| b.is_ascii_uppercase() || b.is_ascii_digit()),
    )
    .parse(input)
}

impl Sentence {
    /// A sentence from the host.
    pub fn host(kind: &str, fields: Vec<Vec<u8>>) -> Sentence {
        Sentence {
            talker: "CC".into(),
            kind: kind.into(),
            fields,
        }
    }

    /// Parses one line (without its CR LF).
    pub fn parse(line: &[u8]) -> Result<Sentence, SentenceError> {
        if line.len() > MAX_LINE {
            return Err(SentenceError::TooLong(line.len()));
        }
        let (_, name) = header(line).map_err(|_| SentenceError::NoStart)?;
        let star = line
            .iter()
            .rposition(|b| *b == b'*')
            .ok_or(SentenceError::NoChecksum)?;
        let (body, tail) = (&line[1..star], &line[star + 1..]);
        let found = match tail {
            [h, l] => hex_digit(*h)
                .zip(hex_digit(*l))
                .map(|(h, l)| h << 4 | l)
                .ok_or(SentenceError::NoChecksum)?,
            _ => return Err(SentenceError::NoChecksum),
        };
        let computed = checksum(body);
        if found != computed {
            return Err(SentenceError::BadChecksum { found, computed });
        }
        let (talker, kind) = name.split_at(2);
        let fields = match body.get(5..) {
            Some([b',', rest @ ..]) => rest.split(|b| *b == b',').map(<[u8]>::to_vec).collect(),
            _ => Vec::new(),
        };
        Ok(Sentence {
            talker: String::from_utf8_lossy(talker).into_owned(),
            kind: String::from_utf8_lossy(kind).into_owned(),
            fields,
        })
    }

    /// The sentence on the wire, with its checksum and CR LF.
    pub fn encode(&self) -> Vec<u8> {
        let mut body = Vec::with_capacity(64);
        body.extend_from_slice(self.talker.as_bytes());
        body.extend_from_slice(self.kind.as_bytes());
        for field in &self.fields {
            body.push(b',');
            body.extend_from_slice(field);
        }
        let mut out = Vec::with_capacity(body.len() + 6);
        out.push(b'$');
        out.extend_from_slice(&body);
        out.extend_from_slice(format!("*{:02X}\r\n", checksum(&body)).as_bytes());
        out
    }

    /// Field `k` as text, empty when absent or not text.
    pub fn text(&self, k: usize) -> &str {
        self.fields
            .get(k)
            .and_then(|f| std::str::from_utf8(f).ok())
            .unwrap_or("")
    }

    /// Fields from `k` on, joined as they were on the wire: a payload that held commas.
    pub fn rest(&self, k: usize) -> Vec<u8> {
        self.fields
            .get(k..)
            .map(|f| f.join(&b","[..]))
            .unwrap_or_default()
    }
}

impl fmt::Display for Sentence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let wire = self.encode();
        f.write_str(String::from_utf8_lossy(&wire).trim_end())
    }
}

fn hex_digit(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'A'..=b'F' => Some(b - b'A' + 10),
        b'a'..=b'f' => Some(b - b'a' + 10),
        _ => None,
    }
}

/// Faults a reader has seen, by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReaderCounters {
    pub sentences: u64,
    pub bad_checksum: u64,
    pub malformed: u64,
    pub too_long: u64,
    /// Bytes outside any sentence.
    pub garbage_bytes: u64,
}

/// Splits a terminal's byte stream into sentences; see the [module](self) notes.
#[derive(Debug, Default)]
pub struct SentenceReader {
    line: Vec<u8>,
    /// The current line passed [`MAX_LINE`]: it is dropped up to its end.
    overflowed: bool,
    counters: ReaderCounters,
}

impl SentenceReader {
    pub fn new() -> SentenceReader {
        SentenceReader::default()
    }

    pub fn counters(&self) -> ReaderCounters {
        self.counters
    }

    /// Takes `bytes` and gives each line they complete: a sentence, or why not.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<Result<Sentence, SentenceError>> {
        let mut out = Vec::new();
        for &b in bytes {
            if b == b'\n' || b == b'\r' {
                if self.overflowed {
                    self.overflowed = false;
                    self.counters.too_long += 1;
                    out.push(Err(SentenceError::TooLong(MAX_LINE + 1)));
                } else if !self.line.is_empty() {
                    let line = std::mem::take(&mut self.line);
                    out.extend(self.take_line(&line));
                }
                continue;
            }
            if self.overflowed {
                continue;
            }
            if self.line.len() >= MAX_LINE {
                self.overflowed = true;
                self.line.clear();
                continue;
            }
            self.line.push(b);
        }
        out
    }

    fn take_line(&mut self, line: &[u8]) -> Option<Result<Sentence, SentenceError>> {
        let Some(start) = line.iter().position(|b| *b == b'$') else {
            self.counters.garbage_bytes += line.len() as u64;
            return None;
        };
        self.counters.garbage_bytes += start as u64;
        let line = &line[start..];
        match Sentence::parse(line) {
            Ok(sentence) => {
                self.counters.sentences += 1;
                Some(Ok(sentence))
            }
            Err(first) => {
                // A truncated sentence run into the next one: take the first later
                // sentence start that parses, and count the lost one.
                let recovered = line
                    .iter()
                    .enumerate()
                    .skip(1)
                    .filter(|(_, b)| **b == b'$')
                    .find_map(|(k, _)| Sentence::parse(&line[k..]).ok());
                match &first {
                    SentenceError::BadChecksum { .. } => self.counters.bad_checksum += 1,
                    _ => self.counters.malformed += 1,
                }
                match recovered {
                    Some(sentence) => {
                        self.counters.sentences += 1;
                        Some(Ok(sentence))
                    }
                    None => Some(Err(first)),
                }
            }
        }
    }
}

/// A fault in a sentence whose frame was good.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind}: field {field}: {message}")]
pub struct FieldError {
    pub kind: String,
    pub field: usize,
    pub message: String,
}

/// How a message's payload is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageForm {
    /// GB2312 text (form 0).
    Chinese,
    /// Hex digits of the bytes (form 1).
    Code,
    /// Hex digits led by the byte A4 (form 2).
    Mixed,
}

impl MessageForm {
    pub fn number(self) -> u8 {
        match self {
            MessageForm::Chinese => 0,
            MessageForm::Code => 1,
            MessageForm::Mixed => 2,
        }
    }

    fn from_field(field: &str) -> Option<MessageForm> {
        match field {
            "0" => Some(MessageForm::Chinese),
            "1" => Some(MessageForm::Code),
            "2" => Some(MessageForm::Mixed),
            _ => None,
        }
    }
}

/// `$BDICI`: what the terminal's card says of itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardInfo {
    pub id: String,
    pub serial: String,
    pub broadcast_id: String,
    pub user_feature: u8,
    /// The least time between two messages from this card.
    pub service_interval: Duration,
    /// 1 to 4: how long a message may be.
    pub comm_level: u8,
    pub encrypted: bool,
    pub subordinates: u16,
}

impl CardInfo {
    /// Bits a message may carry at this comm level, unencrypted.
    pub fn capacity_bits(&self) -> u32 {
        capacity_bits(self.comm_level)
    }
}

/// Bits a message may carry at `comm_level` (1 to 4), unencrypted: 110, 408, 628, 848.
pub fn capacity_bits(comm_level: u8) -> u32 {
    match comm_level {
        1 => 110,
        2 => 408,
        3 => 628,
        _ => 848,
    }
}

/// `$BDBSI`: the beams the terminal hears and their power (0 none to 4 strong).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BeamStatus {
    pub response_beam: u8,
    pub timing_beam: u8,
    pub power: Vec<u8>,
}

impl BeamStatus {
    /// The strongest beam's power, 0 to 4: the link quality.
    pub fn best(&self) -> u8 {
        self.power.iter().copied().max().unwrap_or(0)
    }
}

/// `$BDFKI`: the terminal's answer to a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Feedback {
    /// The command answered: `TXA`, `DWA`, …
    pub command: String,
    /// Whether it was carried out.
    pub done: bool,
    /// Whether the service interval allowed it.
    pub rate_ok: bool,
    /// Transmission suppression state, 0 (none) to 3.
    pub suppression: u8,
    /// How long until the card may send again.
    pub wait: Duration,
}

/// `$BDTXR`: a message received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub kind: u8,
    pub from: String,
    pub form: MessageForm,
    /// The payload field as it came: GB2312 text, or hex digits.
    pub payload: Vec<u8>,
}

/// The UTC time of an NMEA 0183 `ZDA` sentence (any talker: `BD`, `GN`, `GP`), which a
/// BeiDou terminal with a navigation receiver gives once a second: `hhmmss.ss`, day,
/// month, year, then the local zone (ignored: the time is UTC). `None` while the
/// receiver has no fix (empty fields) or when a field is out of range.
pub fn read_zda(s: &Sentence) -> Result<Option<chrono::DateTime<chrono::Utc>>, FieldError> {
    use chrono::{NaiveDate, NaiveTime};
    let bad = |field: usize, message: &str| FieldError {
        kind: s.kind.clone(),
        field,
        message: message.into(),
    };
    if s.fields.len() < 4 {
        return Err(bad(s.fields.len(), "4 fields expected"));
    }
    let clock = s.text(0);
    if clock.is_empty() || s.text(3).is_empty() {
        return Ok(None);
    }
    let number = |k: usize| -> Result<u32, FieldError> {
        s.text(k).parse().map_err(|_| bad(k, "not a number"))
    };
    let (whole, fraction) = clock.split_once('.').unwrap_or((clock, ""));
    let digits = |range: std::ops::Range<usize>| -> Result<u32, FieldError> {
        whole
            .get(range)
            .and_then(|d| d.parse().ok())
            .ok_or_else(|| bad(0, "not hhmmss.ss"))
    };
    if whole.len() != 6 {
        return Err(bad(0, "not hhmmss.ss"));
    }
    let millis = match fraction {
        "" => 0,
        f => {
            let padded: String = f.chars().chain("000".chars()).take(3).collect();
            padded.parse::<u32>().map_err(|_| bad(0, "not hhmmss.ss"))?
        }
    };
    let year = i32::try_from(number(3)?).map_err(|_| bad(3, "out of range"))?;
    let date = NaiveDate::from_ymd_opt(year, number(2)?, number(1)?)
        .ok_or_else(|| bad(1, "no such date"))?;
    let time = NaiveTime::from_hms_milli_opt(digits(0..2)?, digits(2..4)?, digits(4..6)?, millis)
        .ok_or_else(|| bad(0, "no such time"))?;
    Ok(Some(date.and_time(time).and_utc()))
}

/// What a terminal says, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inbound {
    CardInfo(CardInfo),
    Beam(BeamStatus),
    Feedback(Feedback),
    Received(Received),
    /// A sentence the gateway does not read.
    Other(Sentence),
}

impl Inbound {
    /// Reads a terminal's sentence.
    pub fn read(s: &Sentence) -> Result<Inbound, FieldError> {
        let bad = |field: usize, message: &str| FieldError {
            kind: s.kind.clone(),
            field,
            message: message.into(),
        };
        let number = |k: usize| -> Result<u32, FieldError> {
            s.text(k).parse().map_err(|_| bad(k, "not a number"))
        };
        let small = |k: usize| -> Result<u8, FieldError> {
            u8::try_from(number(k)?).map_err(|_| bad(k, "out of range"))
        };
        let yes = |k: usize| -> Result<bool, FieldError> {
            match s.text(k) {
                "Y" => Ok(true),
                "N" => Ok(false),
                _ => Err(bad(k, "not Y or N")),
            }
        };
        let need = |count: usize| {
            if s.fields.len() < count {
                Err(bad(s.fields.len(), &format!("{count} fields expected")))
            } else {
                Ok(())
            }
        };
        Ok(match s.kind.as_str() {
            "ICI" => {
                need(8)?;
                let comm_level = small(5)?;
                if !(1..=4).contains(&comm_level) {
                    return Err(bad(5, "comm level is 1 to 4"));
                }
                Inbound::CardInfo(CardInfo {
                    id: s.text(0).into(),
                    serial: s.text(1).into(),
                    broadcast_id: s.text(2).into(),
                    user_feature: small(3)?,
                    service_interval: Duration::from_secs(u64::from(number(4)?)),
                    comm_level,
                    encrypted: match s.text(6) {
                        "E" => true,
                        "N" => false,
                        _ => return Err(bad(6, "not E or N")),
                    },
                    subordinates: u16::try_from(number(7)?).map_err(|_| bad(7, "out of range"))?,
                })
            }
            "BSI" => {
                need(2)?;
                let power = (2..s.fields.len())
                    .map(|k| {
                        small(k).and_then(|p| {
                            if p <= 4 {
                                Ok(p)
                            } else {
                                Err(bad(k, "power is 0 to 4"))
                            }
                        })
                    })
                    .collect::<Result<Vec<u8>, _>>()?;
                Inbound::Beam(BeamStatus {
                    response_beam: small(0)?,
                    timing_beam: small(1)?,
                    power,
                })
            }
            "FKI" => {
                need(5)?;
                Inbound::Feedback(Feedback {
                    command: s.text(0).into(),
                    done: yes(1)?,
                    rate_ok: yes(2)?,
                    suppression: small(3)?,
                    wait: Duration::from_secs(u64::from(number(4)?)),
                })
            }
            "TXR" => {
                need(5)?;
                let form = MessageForm::from_field(s.text(2)).ok_or(bad(2, "form is 0, 1 or 2"))?;
                Inbound::Received(Received {
                    kind: small(0)?,
                    from: s.text(1).into(),
                    form,
                    payload: s.rest(4),
                })
            }
            _ => Inbound::Other(s.clone()),
        })
    }
}

/// What the host sends.
pub mod host {
    use super::{MessageForm, Sentence};

    fn text(t: &str) -> Vec<u8> {
        t.as_bytes().to_vec()
    }

    /// `$CCICA`: ask for the card's information.
    pub fn card_info() -> Sentence {
        Sentence::host("ICA", vec![text("0"), text("00")])
    }

    /// `$CCRMO`: have the terminal output `sentence` in `mode` every `seconds`.
    pub fn output(sentence: &str, mode: u8, seconds: u32) -> Sentence {
        Sentence::host(
            "RMO",
            vec![
                text(sentence),
                mode.to_string().into_bytes(),
                seconds.to_string().into_bytes(),
            ],
        )
    }

    /// `$CCBSS`: set the response and timing beams.
    pub fn beams(response: u8, timing: u8) -> Sentence {
        Sentence::host(
            "BSS",
            vec![
                format!("{response:02}").into_bytes(),
                format!("{timing:02}").into_bytes(),
            ],
        )
    }

    /// `$CCTXA`: send `payload` (already in `form`'s writing) to card `to`; urgent
    /// messages use communication type 0, normal ones 1.
    pub fn send(to: &str, urgent: bool, form: MessageForm, payload: Vec<u8>) -> Sentence {
        Sentence::host(
            "TXA",
            vec![
                text(to),
                text(if urgent { "0" } else { "1" }),
                form.number().to_string().into_bytes(),
                payload,
            ],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `$BODY*HH` with its checksum, as a terminal sends it.
    fn zda(body: &str) -> Result<Option<chrono::DateTime<chrono::Utc>>, FieldError> {
        let sum = body.bytes().fold(0u8, |a, b| a ^ b);
        let line = format!("${body}*{sum:02X}\r\n");
        let mut reader = SentenceReader::new();
        let got = reader.push(line.as_bytes());
        let Some(Ok(sentence)) = got.first() else {
            panic!("parsed: {got:?}");
        };
        read_zda(sentence)
    }

    #[test]
    fn a_zda_sentence_of_any_talker_gives_its_utc_time_and_none_without_a_fix() {
        let at = zda("GNZDA,082730.50,20,07,2026,00,00").expect("read");
        assert_eq!(
            at.map(|t| t.to_rfc3339()),
            Some("2026-07-20T08:27:30.500+00:00".to_string())
        );
        let at = zda("BDZDA,235959.00,31,12,2026,08,00").expect("read");
        assert_eq!(
            at.map(|t| t.to_rfc3339()),
            Some("2026-12-31T23:59:59+00:00".to_string()),
            "the local zone does not change UTC"
        );
        assert_eq!(zda("GNZDA,,,,,,").expect("read"), None, "no fix yet");
    }

    #[test]
    fn a_zda_sentence_with_an_impossible_date_or_time_is_a_located_error() {
        let e = zda("GNZDA,082730.50,31,02,2026,00,00");
        assert!(e.is_err(), "{e:?}");
        let e = zda("GNZDA,256130.50,20,07,2026,00,00");
        assert_eq!(e.map_err(|e| e.field), Err(0));
        let e = zda("GNZDA,0827,20,07,2026,00,00");
        assert_eq!(e.map_err(|e| e.field), Err(0));
    }

    #[test]
    fn a_payload_holding_stars_and_commas_is_one_field_checked_to_the_last_star() {
        let sentence = host::send("0247718", false, MessageForm::Chinese, b"A*B,C".to_vec());
        let wire = sentence.encode();
        let mut reader = SentenceReader::new();
        let got = reader.push(&wire);
        let Some(Ok(parsed)) = got.first() else {
            panic!("parsed: {got:?}");
        };
        assert_eq!(parsed.rest(3), b"A*B,C");
        assert_eq!(parsed.encode(), wire);
    }

    #[test]
    fn garbage_a_truncated_sentence_and_a_bad_checksum_cost_only_their_own_sentence() {
        let good = host::card_info().encode();
        let mut stream = b"\x00\xffnoise".to_vec();
        stream.extend(&good[..9]); // truncated, then the next sentence on the same line
        stream.extend(&good);
        stream.extend(b"$CCICA,0,00*00\r\n");
        stream.extend(&good);
        let mut reader = SentenceReader::new();
        let got: Vec<_> = stream.chunks(3).flat_map(|c| reader.push(c)).collect();
        let good_count = got.iter().filter(|r| r.is_ok()).count();
        assert_eq!(good_count, 2, "{got:?}");
        assert_eq!(
            got.iter().filter(|r| r.is_err()).count(),
            1,
            "the bad checksum: {got:?}"
        );
        let c = reader.counters();
        assert_eq!((c.sentences, c.bad_checksum), (2, 2));
        assert!(c.garbage_bytes >= 7);
    }

    #[test]
    fn a_line_longer_than_any_sentence_is_dropped_and_the_next_is_read() {
        let mut stream = vec![b'$'; MAX_LINE * 3];
        stream.extend(b"\r\n");
        stream.extend(host::card_info().encode());
        let mut reader = SentenceReader::new();
        let got = reader.push(&stream);
        assert_eq!(got.len(), 2);
        assert!(matches!(got[0], Err(SentenceError::TooLong(_))));
        assert!(got[1].is_ok());
    }

    fn terminal(kind: &str, fields: &[&str]) -> Sentence {
        Sentence {
            talker: "BD".into(),
            kind: kind.into(),
            fields: fields.iter().map(|f| f.as_bytes().to_vec()).collect(),
        }
    }

    #[test]
    fn fields_that_break_the_layout_are_located_errors() {
        let ici = terminal("ICI", &["0166166", "1", "2", "6", "40", "9", "N", "000"]);
        let wire = ici.encode();
        let parsed = Sentence::parse(&wire[..wire.len() - 2]).expect("frame");
        let e = Inbound::read(&parsed).expect_err("comm level 9");
        assert_eq!(e.field, 5);
        assert!(
            Inbound::read(&terminal("FKI", &["TXA", "Y"])).is_err(),
            "too few fields"
        );
        let e = Inbound::read(&terminal("FKI", &["TXA", "Y", "maybe", "0", "0"])).expect_err("Y/N");
        assert_eq!(e.field, 2);
        let e = Inbound::read(&terminal("BSI", &["01", "02", "7"])).expect_err("power");
        assert_eq!(e.field, 2);
    }
}
