//! The external radio backend's wire format: a radio port's modem lines and audio
//! carried over a Unix stream socket, for a radio that is not a serial port and a
//! sound card (the radio simulator, a test rig, or a radio interface with its own
//! daemon).
//!
//! The backend (the simulator) listens; the gateway connects, says which port it is
//! and drives the lines. The backend owns the lines, so whatever becomes of the
//! gateway process, the backend knows what the lines did: when the connection drops
//! it treats the lines as a serial port's kernel would on the last close (HUPCL): both
//! output lines drop.
//!
//! Every message is a frame: one byte of kind, a big-endian `u16` length, then that
//! many bytes of body.
//!
//! | kind | direction | body |
//! |---|---|---|
//! | `0x01` hello | gateway → backend | the port's name, UTF-8 |
//! | `0x02` outputs | gateway → backend | one byte: bit 0 RTS, bit 1 DTR |
//! | `0x03` inputs | backend → gateway | one byte: bit 0 CTS, bit 1 DSR, bit 2 DCD |
//! | `0x04` audio | both | 960 samples, `i16` little-endian: 20 ms at 48 kHz |
//! | `0x05` audio lost | backend → gateway | a reason, UTF-8: the sound card vanished |
//!
//! Receive audio comes from the backend in real time, one frame every 20 ms whether
//! the radio hears anything or not, as a sound card delivers it: the backend is the
//! paced audio device. Transmit audio goes to it as the gateway plays it. A radio's
//! command channel (talkgroup selection, PTT by command) is not carried here: it is a
//! serial port of its own, a pseudo-terminal in tests.

use crate::serial::modem_lines::{InputLevels, OutputLevels};

const HELLO: u8 = 0x01;
const OUTPUTS: u8 = 0x02;
const INPUTS: u8 = 0x03;
const AUDIO: u8 = 0x04;
const AUDIO_LOST: u8 = 0x05;

/// Samples in one audio frame.
pub const FRAME_SAMPLES: usize = 960;

/// Bytes of the kind and length before a body.
pub const HEADER_LEN: usize = 3;

/// The largest body taken: an audio frame. A longer length is a framing fault.
pub const MAX_BODY: usize = FRAME_SAMPLES * 2;

/// One message of either direction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Hello { port: String },
    Outputs(OutputLevels),
    Inputs(InputLevels),
    Audio(Vec<i16>),
    AudioLost { reason: String },
}

/// A frame that cannot be taken. After one, the stream cannot be trusted to be in
/// step, and the connection is closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("unknown message kind 0x{kind:02x} at byte {offset}")]
    UnknownKind { kind: u8, offset: u64 },
    #[error("message kind 0x{kind:02x} at byte {offset} has a body of {len} bytes: {expected}")]
    BadLength {
        kind: u8,
        offset: u64,
        len: usize,
        expected: &'static str,
    },
    #[error("message at byte {offset} is not UTF-8")]
    NotText { offset: u64 },
    #[error("line levels 0x{byte:02x} at byte {offset} set bits no line has")]
    UnknownLines { byte: u8, offset: u64 },
}

impl Message {
    /// The message as bytes on the wire.
    pub fn encode(&self) -> Vec<u8> {
        let (kind, body): (u8, Vec<u8>) = match self {
            Message::Hello { port } => (HELLO, port.as_bytes().to_vec()),
            Message::Outputs(o) => (OUTPUTS, vec![u8::from(o.rts) | u8::from(o.dtr) << 1]),
            Message::Inputs(i) => (
                INPUTS,
                vec![u8::from(i.cts) | u8::from(i.dsr) << 1 | u8::from(i.dcd) << 2],
            ),
            Message::Audio(samples) => (
                AUDIO,
                samples.iter().flat_map(|s| s.to_le_bytes()).collect(),
            ),
            Message::AudioLost { reason } => (AUDIO_LOST, reason.as_bytes().to_vec()),
        };
        // Text bodies are cut to fit; audio and lines always fit.
        let body = &body[..body.len().min(MAX_BODY)];
        let mut out = Vec::with_capacity(HEADER_LEN + body.len());
        out.push(kind);
        out.extend_from_slice(&(body.len() as u16).to_be_bytes());
        out.extend_from_slice(body);
        out
    }
}

/// Splits a byte stream into messages. Sans-IO: feed it what the socket gave.
#[derive(Debug, Default)]
pub struct Decoder {
    buffer: Vec<u8>,
    /// Stream offset of `buffer[0]`, for errors.
    offset: u64,
}

impl Decoder {
    pub fn new() -> Decoder {
        Decoder::default()
    }

    /// Takes `bytes` and returns the messages they complete. An error leaves the
    /// decoder unusable; the caller closes the connection.
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<Message>, FrameError> {
        self.buffer.extend_from_slice(bytes);
        let mut messages = Vec::new();
        let mut at = 0;
        while let Some(header) = self.buffer.get(at..at + HEADER_LEN) {
            let kind = header[0];
            let len = usize::from(u16::from_be_bytes([header[1], header[2]]));
            let offset = self.offset + at as u64;
            check_length(kind, len, offset)?;
            let Some(body) = self.buffer.get(at + HEADER_LEN..at + HEADER_LEN + len) else {
                break;
            };
            messages.push(parse_body(kind, body, offset)?);
            at += HEADER_LEN + len;
        }
        self.buffer.drain(..at);
        self.offset += at as u64;
        Ok(messages)
    }
}

fn check_length(kind: u8, len: usize, offset: u64) -> Result<(), FrameError> {
    let (ok, expected) = match kind {
        OUTPUTS | INPUTS => (len == 1, "1 byte"),
        AUDIO => (len == MAX_BODY, "1920 bytes"),
        HELLO | AUDIO_LOST => (len <= MAX_BODY, "at most 1920 bytes"),
        _ => return Err(FrameError::UnknownKind { kind, offset }),
    };
    if ok {
        Ok(())
    } else {
        Err(FrameError::BadLength {
            kind,
            offset,
            len,
            expected,
        })
    }
}

fn parse_body(kind: u8, body: &[u8], offset: u64) -> Result<Message, FrameError> {
    let text = || {
        std::str::from_utf8(body)
            .map(str::to_string)
            .map_err(|_| FrameError::NotText { offset })
    };
    let bit = |n: u8| body.first().is_some_and(|b| b & (1 << n) != 0);
    let lines = |defined: u8| match body.first() {
        Some(&byte) if byte & !defined != 0 => Err(FrameError::UnknownLines { byte, offset }),
        _ => Ok(()),
    };
    Ok(match kind {
        HELLO => Message::Hello { port: text()? },
        OUTPUTS => {
            lines(0b011)?;
            Message::Outputs(OutputLevels {
                rts: bit(0),
                dtr: bit(1),
            })
        }
        INPUTS => {
            lines(0b111)?;
            Message::Inputs(InputLevels {
                cts: bit(0),
                dsr: bit(1),
                dcd: bit(2),
            })
        }
        AUDIO => Message::Audio(
            body.chunks_exact(2)
                .map(|b| i16::from_le_bytes([b[0], b[1]]))
                .collect(),
        ),
        AUDIO_LOST => Message::AudioLost { reason: text()? },
        _ => return Err(FrameError::UnknownKind { kind, offset }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every_kind() -> Vec<Message> {
        vec![
            Message::Hello {
                port: "tg-1001".into(),
            },
            Message::Outputs(OutputLevels {
                rts: true,
                dtr: false,
            }),
            Message::Inputs(InputLevels {
                cts: false,
                dsr: true,
                dcd: true,
            }),
            Message::Audio((0..960).map(|n| (n * 37 - 16_000) as i16).collect()),
            Message::AudioLost {
                reason: "USB sound card unplugged".into(),
            },
        ]
    }

    #[test]
    fn every_message_survives_the_wire_even_a_byte_at_a_time() {
        let wire: Vec<u8> = every_kind().iter().flat_map(Message::encode).collect();
        let mut whole = Decoder::new();
        assert_eq!(whole.push(&wire), Ok(every_kind()));

        let mut trickle = Decoder::new();
        let mut got = Vec::new();
        for b in &wire {
            got.extend(trickle.push(std::slice::from_ref(b)).expect("valid"));
        }
        assert_eq!(got, every_kind());
    }

    #[test]
    fn a_wrong_length_or_kind_is_a_located_error() {
        let mut wire = Message::Outputs(OutputLevels::default()).encode();
        wire.extend([AUDIO, 0x00, 0x02, 1, 2]);
        assert_eq!(
            Decoder::new().push(&wire),
            Err(FrameError::BadLength {
                kind: AUDIO,
                offset: 4,
                len: 2,
                expected: "1920 bytes"
            })
        );
        assert_eq!(
            Decoder::new().push(&[0x7f, 0, 0]),
            Err(FrameError::UnknownKind {
                kind: 0x7f,
                offset: 0
            })
        );
        assert_eq!(
            Decoder::new().push(&[HELLO, 0, 2, 0xff, 0xfe]),
            Err(FrameError::NotText { offset: 0 })
        );
    }

    #[test]
    fn line_levels_with_bits_no_line_has_are_refused() {
        // Found by the radio_external fuzz target: 0xbf read as RTS and DTR on would
        // not say what the sender meant.
        let mut wire = Message::Outputs(OutputLevels::default()).encode();
        wire.extend([OUTPUTS, 0x00, 0x01, 0xbf]);
        assert_eq!(
            Decoder::new().push(&wire),
            Err(FrameError::UnknownLines {
                byte: 0xbf,
                offset: 4
            })
        );
        assert_eq!(
            Decoder::new().push(&[INPUTS, 0, 1, 0x08]),
            Err(FrameError::UnknownLines { byte: 8, offset: 0 })
        );
    }
}
