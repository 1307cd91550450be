//! The binary BD-1 "4.0" dialect of BeiDou RDSS terminals: frames on the wire, and the
//! ones a gateway sends and reads.
//!
//! A frame is `$`, a four-letter command, a big-endian `u16` total length (the whole
//! frame, checksum included), the 3-byte user address, the body, and one checksum byte:
//! the XOR of every byte before it. Commands used here:
//!
//! | command | direction | body |
//! |---|---|---|
//! | `ICJC` | host → terminal | frame number (1 byte, 0) |
//! | `ICXX` | terminal → host | frame number, broadcast ID (3), user feature (1), service interval in seconds (2), comm level (1), encryption (1: 0 none), subordinates (2) |
//! | `TXSQ` | host → terminal | category (1), destination (3), length in bits (2), answer flag (1), content |
//! | `TXXX` | terminal → host | category (1), sender (3), time hh mm (2), length in bits (2), content, CRC flag (1) |
//! | `FKXX` | terminal → host | flag (1): 0 done, 1 failed, 2 no signal, 3 low battery, 4 rate not reached, 5 crypto, 6 CRC, 7 suppressed, 8 suppression lifted; then 4 bytes: the command answered, or for flag 4 the seconds to wait |
//!
//! The frame layout and the FKXX flags are public facts; the exact body layouts of
//! `ICXX`, `TXSQ` and `TXXX` above follow the commonly published 4.0 protocol tables and
//! rest on that assumption (`docs/limitations.md`).
//!
//! [`FrameReader`] splits a byte stream into frames, sans-IO: bytes before a `$` are
//! skipped, a frame with a bad checksum or an impossible length is dropped and the
//! search resumes one byte after its `$`, so one bad frame costs at most itself. A frame
//! cut short whose length field is still in range would otherwise hold the stream until
//! that many bytes came (up to [`MAX_FRAME`]): while it waits, a later `$` and known
//! command ([`KNOWN_COMMANDS`]) starting a whole frame whose checksum is right ends it,
//! so only the cut frame is lost.

use std::time::Duration;

/// The bytes before a frame's body: `$`, command, length, address.
pub const HEADER_LEN: usize = 10;
/// The longest frame taken: a TXSQ of 848 bits and its header, with room to spare.
pub const MAX_FRAME: usize = 256;

/// The 4.0 commands a frame may carry, host's and terminal's: a `$` followed by one of
/// these is taken as a frame start when resynchronising after a cut frame.
pub const KNOWN_COMMANDS: [&[u8; 4]; 20] = [
    b"ICJC", b"ICXX", b"TXSQ", b"TXXX", b"FKXX", b"DWSQ", b"DWXX", b"GLJC", b"GLZK", b"SJSC",
    b"SJXX", b"BBDQ", b"BBXX", b"XTZJ", b"ZJXX", b"CKSC", b"TXHZ", b"HZXX", b"JSZL", b"GXZR",
];

/// One frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// `TXSQ`, `FKXX`, …
    pub command: [u8; 4],
    /// The user (card) address, 24 bits.
    pub address: u32,
    pub body: Vec<u8>,
}

impl Frame {
    pub fn new(command: &[u8; 4], address: u32, body: Vec<u8>) -> Frame {
        Frame {
            command: *command,
            address: address & 0x00FF_FFFF,
            body,
        }
    }

    pub fn command_str(&self) -> &str {
        std::str::from_utf8(&self.command).unwrap_or("????")
    }

    /// The frame on the wire, checksum included.
    pub fn encode(&self) -> Vec<u8> {
        // A body is never near 64 KiB (MAX_FRAME); the length saturates rather than wrap.
        let total = (HEADER_LEN + self.body.len() + 1).min(usize::from(u16::MAX));
        let mut out = Vec::with_capacity(total);
        out.push(b'$');
        out.extend_from_slice(&self.command);
        out.extend_from_slice(&u16::try_from(total).unwrap_or(u16::MAX).to_be_bytes());
        out.extend_from_slice(&self.address.to_be_bytes()[1..]);
        out.extend_from_slice(&self.body);
        out.push(out.iter().fold(0, |x, b| x ^ b));
        out
    }
}

/// Faults a reader has seen.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FrameCounters {
    pub frames: u64,
    pub bad_checksum: u64,
    pub bad_length: u64,
    pub garbage_bytes: u64,
    /// Frames cut short and given up for a whole frame that came after them.
    pub truncated: u64,
}

/// Splits a terminal's byte stream into frames; see the [module](self) notes.
#[derive(Debug, Default)]
pub struct FrameReader {
    buffer: Vec<u8>,
    counters: FrameCounters,
}

impl FrameReader {
    pub fn new() -> FrameReader {
        FrameReader::default()
    }

    pub fn counters(&self) -> FrameCounters {
        self.counters
    }

    /// Takes `bytes` and gives the frames they complete.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<Frame> {
        self.buffer.extend_from_slice(bytes);
        let mut frames = Vec::new();
        loop {
            let Some(start) = self.buffer.iter().position(|b| *b == b'$') else {
                self.counters.garbage_bytes += self.buffer.len() as u64;
                self.buffer.clear();
                break;
            };
            if start > 0 {
                self.counters.garbage_bytes += start as u64;
                self.buffer.drain(..start);
            }
            if self.buffer.len() < 7 {
                break;
            }
            let command = &self.buffer[1..5];
            let total = usize::from(u16::from_be_bytes([self.buffer[5], self.buffer[6]]));
            if !command.iter().all(u8::is_ascii_uppercase)
                || !(HEADER_LEN + 1..=MAX_FRAME).contains(&total)
            {
                self.counters.bad_length += 1;
                self.buffer.drain(..1);
                continue;
            }
            if self.buffer.len() < total {
                match self.later_whole_frame() {
                    Some(at) => {
                        self.counters.truncated += 1;
                        self.buffer.drain(..at);
                        continue;
                    }
                    None => break,
                }
            }
            let checksum = self.buffer[..total - 1].iter().fold(0, |x, b| x ^ b);
            if checksum != self.buffer[total - 1] {
                self.counters.bad_checksum += 1;
                self.buffer.drain(..1);
                continue;
            }
            let mut command_bytes = [0u8; 4];
            command_bytes.copy_from_slice(&self.buffer[1..5]);
            let address = u32::from_be_bytes([0, self.buffer[7], self.buffer[8], self.buffer[9]]);
            let body = self.buffer[HEADER_LEN..total - 1].to_vec();
            self.buffer.drain(..total);
            self.counters.frames += 1;
            frames.push(Frame {
                command: command_bytes,
                address,
                body,
            });
        }
        frames
    }
}

impl FrameReader {
    /// Where a later frame starts that is already whole, with a known command, a length
    /// in range and a right checksum: the frame at the front was cut short.
    fn later_whole_frame(&self) -> Option<usize> {
        let buffer = &self.buffer;
        (1..buffer.len()).find(|&at| {
            let Some(header) = buffer.get(at..at + 7) else {
                return false;
            };
            let total = usize::from(u16::from_be_bytes([header[5], header[6]]));
            header[0] == b'$'
                && KNOWN_COMMANDS.iter().any(|c| c[..] == header[1..5])
                && (HEADER_LEN + 1..=MAX_FRAME).contains(&total)
                && buffer.get(at..at + total).is_some_and(|frame| {
                    let (rest, sum) = frame.split_at(total - 1);
                    sum.first() == Some(&rest.iter().fold(0, |x, b| x ^ b))
                })
        })
    }
}

/// `ICXX`: the card.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bd1Card {
    pub address: u32,
    pub broadcast_id: u32,
    pub user_feature: u8,
    pub service_interval: Duration,
    pub comm_level: u8,
    pub encrypted: bool,
    pub subordinates: u16,
}

impl Bd1Card {
    /// The card as the sentence dialects describe one: its ID is the address in decimal.
    pub fn card_info(&self) -> super::nmea::CardInfo {
        super::nmea::CardInfo {
            id: self.address.to_string(),
            serial: String::new(),
            broadcast_id: self.broadcast_id.to_string(),
            user_feature: self.user_feature,
            service_interval: self.service_interval,
            comm_level: self.comm_level,
            encrypted: self.encrypted,
            subordinates: self.subordinates,
        }
    }
}

/// `FKXX`'s flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bd1Feedback {
    Done,
    Failed,
    NoSignal,
    LowBattery,
    /// Sent before the service interval: this long to wait.
    RateNotReached(Duration),
    Crypto,
    Crc,
    Suppressed,
    SuppressionLifted,
}

/// `TXXX`: a message received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bd1Message {
    pub category: u8,
    pub from: u32,
    pub bits: u16,
    pub content: Vec<u8>,
}

/// A terminal's frame, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bd1Inbound {
    Card(Bd1Card),
    Feedback(Bd1Feedback),
    Message(Bd1Message),
    Other(Frame),
}

/// A frame whose body does not fit its command's layout.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{command}: {message}")]
pub struct BodyError {
    pub command: String,
    pub message: String,
}

fn u24(b: &[u8]) -> u32 {
    u32::from_be_bytes([0, b[0], b[1], b[2]])
}

impl Bd1Inbound {
    pub fn read(frame: &Frame) -> Result<Bd1Inbound, BodyError> {
        let bad = |message: &str| BodyError {
            command: frame.command_str().into(),
            message: message.into(),
        };
        let b = &frame.body;
        Ok(match &frame.command {
            b"ICXX" => {
                if b.len() < 11 {
                    return Err(bad("card info needs 11 bytes"));
                }
                let comm_level = b[7];
                if !(1..=4).contains(&comm_level) {
                    return Err(bad("comm level is 1 to 4"));
                }
                Bd1Inbound::Card(Bd1Card {
                    address: frame.address,
                    broadcast_id: u24(&b[1..4]),
                    user_feature: b[4],
                    service_interval: Duration::from_secs(u64::from(u16::from_be_bytes([
                        b[5], b[6],
                    ]))),
                    comm_level,
                    encrypted: b[8] != 0,
                    subordinates: u16::from_be_bytes([b[9], b[10]]),
                })
            }
            b"FKXX" => {
                let (&flag, rest) = b.split_first().ok_or_else(|| bad("no flag"))?;
                Bd1Inbound::Feedback(match flag {
                    0 => Bd1Feedback::Done,
                    1 => Bd1Feedback::Failed,
                    2 => Bd1Feedback::NoSignal,
                    3 => Bd1Feedback::LowBattery,
                    4 => {
                        let seconds = rest
                            .get(..4)
                            .map(|s| u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
                            .ok_or_else(|| bad("rate refusal without its wait"))?;
                        Bd1Feedback::RateNotReached(Duration::from_secs(u64::from(seconds)))
                    }
                    5 => Bd1Feedback::Crypto,
                    6 => Bd1Feedback::Crc,
                    7 => Bd1Feedback::Suppressed,
                    8 => Bd1Feedback::SuppressionLifted,
                    _ => return Err(bad("flag is 0 to 8")),
                })
            }
            b"TXXX" => {
                if b.len() < 9 {
                    return Err(bad("a message needs 9 bytes before its content"));
                }
                let bits = u16::from_be_bytes([b[6], b[7]]);
                let bytes = usize::from(bits).div_ceil(8);
                let content = b
                    .get(8..8 + bytes)
                    .ok_or_else(|| bad("content shorter than its length"))?
                    .to_vec();
                Bd1Inbound::Message(Bd1Message {
                    category: b[0],
                    from: u24(&b[1..4]),
                    bits,
                    content,
                })
            }
            _ => Bd1Inbound::Other(frame.clone()),
        })
    }
}

/// `ICJC`: ask card `address` for its information.
pub fn card_info(address: u32) -> Frame {
    Frame::new(b"ICJC", address, vec![0])
}

/// The category byte of a message: communication, code (`true`) or Chinese text.
pub fn category(code: bool) -> u8 {
    if code { 0x46 } else { 0x44 }
}

/// `TXSQ`: send `content` from card `address` to card `to`.
pub fn send(address: u32, to: u32, code: bool, content: &[u8]) -> Frame {
    let mut body = vec![category(code)];
    body.extend_from_slice(&to.to_be_bytes()[1..]);
    let bits = u16::try_from(content.len() * 8).unwrap_or(u16::MAX);
    body.extend_from_slice(&bits.to_be_bytes());
    body.push(0);
    body.extend_from_slice(content);
    Frame::new(b"TXSQ", address, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_carries_its_total_length_and_a_checksum_over_everything_before_it() {
        let wire = card_info(0x028A1F).encode();
        assert_eq!(&wire[..7], b"$ICJC\x00\x0c");
        assert_eq!(&wire[7..10], &[0x02, 0x8A, 0x1F]);
        assert_eq!(wire.len(), 12);
        assert_eq!(
            *wire.last().expect("byte"),
            wire[..11].iter().fold(0, |x, b| x ^ b)
        );
        let mut reader = FrameReader::new();
        assert_eq!(reader.push(&wire), vec![card_info(0x028A1F)]);
    }

    #[test]
    fn garbage_a_bad_checksum_and_a_wrong_length_cost_only_themselves() {
        let good = send(0x028A1F, 0x03C2F6, true, b"hello").encode();
        let mut bad = good.clone();
        let last = bad.len() - 1;
        bad[last] ^= 0xFF;
        let mut stream = b"\x00\x01noise".to_vec();
        stream.extend(&bad);
        stream.extend(b"$TXSQ\xff\xff");
        stream.extend(&good);
        let mut reader = FrameReader::new();
        let frames: Vec<Frame> = stream.chunks(3).flat_map(|c| reader.push(c)).collect();
        assert_eq!(frames.len(), 1);
        assert_eq!(frames[0].body[6..], *b"\x00hello");
        let c = reader.counters();
        assert_eq!((c.frames, c.bad_checksum, c.bad_length), (1, 1, 1));
    }

    #[test]
    fn a_cut_frame_is_given_up_for_the_whole_frame_after_it_and_only_it_is_lost() {
        let message = Frame::new(b"TXXX", 0x028A1F, vec![0x44; 40]).encode();
        let done = Frame::new(b"FKXX", 0x028A1F, [&[0u8][..], b"TXSQ"].concat());
        let card = Frame::new(b"ICXX", 0x028A1F, vec![0, 0, 0, 11, 6, 0, 60, 3, 0, 0, 0]);

        // In one read: the message's first 12 bytes, then the feedback whole.
        let mut reader = FrameReader::new();
        let mut stream = message[..12].to_vec();
        stream.extend(done.encode());
        assert_eq!(reader.push(&stream), vec![done.clone()]);
        assert_eq!(reader.counters().truncated, 1);

        // In pieces: the cut frame waits until a whole frame has come after it.
        let mut reader = FrameReader::new();
        assert_eq!(reader.push(&message[..12]), vec![]);
        let card_bytes = card.encode();
        let (head, tail) = card_bytes.split_at(8);
        assert_eq!(reader.push(head), vec![], "the card not yet whole");
        assert_eq!(reader.push(tail), vec![card.clone()]);
        assert_eq!(reader.push(&done.encode()), vec![done.clone()]);
        let counters = reader.counters();
        assert_eq!((counters.truncated, counters.frames), (1, 2));

        // A frame split across reads with nothing after it is only waited for.
        let mut reader = FrameReader::new();
        assert_eq!(reader.push(&message[..30]), vec![]);
        assert_eq!(reader.push(&message[30..]).len(), 1);
        assert_eq!(reader.counters().truncated, 0);
    }

    #[test]
    fn card_feedback_and_messages_read_as_the_layout_says() {
        let card = Frame::new(b"ICXX", 0x028A1F, vec![0, 0, 0, 11, 6, 0, 60, 3, 0, 0, 0]);
        assert_eq!(
            Bd1Inbound::read(&card),
            Ok(Bd1Inbound::Card(Bd1Card {
                address: 0x028A1F,
                broadcast_id: 11,
                user_feature: 6,
                service_interval: Duration::from_secs(60),
                comm_level: 3,
                encrypted: false,
                subordinates: 0,
            }))
        );
        let rate = Frame::new(b"FKXX", 0x028A1F, vec![4, 0, 0, 0, 58]);
        assert_eq!(
            Bd1Inbound::read(&rate),
            Ok(Bd1Inbound::Feedback(Bd1Feedback::RateNotReached(
                Duration::from_secs(58)
            )))
        );
        let mut body = vec![0x46, 0x03, 0xC2, 0xF6, 14, 5, 0, 40];
        body.extend(b"hello");
        body.push(0);
        let message = Frame::new(b"TXXX", 0x028A1F, body);
        assert_eq!(
            Bd1Inbound::read(&message),
            Ok(Bd1Inbound::Message(Bd1Message {
                category: 0x46,
                from: 0x03C2F6,
                bits: 40,
                content: b"hello".to_vec()
            }))
        );
        let short = Frame::new(b"TXXX", 0x028A1F, vec![0x46, 0, 0, 0, 0, 0, 0x01, 0x00, 1]);
        assert!(
            Bd1Inbound::read(&short).is_err(),
            "256 bits claimed, 1 byte given"
        );
        assert!(Bd1Inbound::read(&Frame::new(b"FKXX", 1, vec![9])).is_err());
    }
}
