//! The RTP fixed header (RFC 3550 §5.1) over an untrusted datagram.
//!
//! [`RtpHeader::parse`] is the only way in: it checks the version, the CSRC list, the
//! header extension and the padding against the datagram's length (parsing is done by
//! the `rtp-types` crate) and returns the fields with the payload's byte range. After
//! it, slicing the datagram with [`RtpHeader::payload_range`] cannot panic.
//!
//! [`write_header`] writes a 12-byte header (no CSRC, no extension, no padding), which
//! is all emcomm ever sends.

use std::ops::Range;

use rtp_types::{RtpPacket, RtpParseError};

/// Length of the fixed header without CSRCs (RFC 3550 §5.1).
pub const FIXED_HEADER_LEN: usize = 12;

const VERSION_BITS: u8 = 2 << 6;
const MARKER_BIT: u8 = 0x80;
const SEQUENCE: Range<usize> = 2..4;
const TIMESTAMP: Range<usize> = 4..8;
const SSRC: Range<usize> = 8..12;

/// Why a datagram is not an RTP packet we can use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RtpError {
    /// Shorter than its header says it is (fixed header, CSRC list, extension or padding).
    #[error("RTP packet truncated: {actual} bytes, header needs {expected}")]
    Truncated { expected: usize, actual: usize },
    /// RFC 3550 defines version 2 only.
    #[error("RTP version {0}, expected 2")]
    Version(u8),
    /// A padding count of zero, or one that reaches back into the header.
    #[error("RTP padding count {0} is invalid")]
    Padding(u8),
}

impl From<RtpParseError> for RtpError {
    fn from(e: RtpParseError) -> Self {
        match e {
            RtpParseError::UnsupportedVersion(v) => RtpError::Version(v),
            RtpParseError::Truncated { expected, actual } => {
                RtpError::Truncated { expected, actual }
            }
            RtpParseError::PaddingInvalid(p) => RtpError::Padding(p),
        }
    }
}

/// The fields of an RTP header that emcomm acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpHeader {
    /// On audio, set on the first packet of a talkspurt (RFC 3551 §4.1).
    pub marker: bool,
    /// Identifies the payload format; static 0 (PCMU) and 8 (PCMA), dynamic 96–127.
    pub payload_type: u8,
    /// Increments by one per packet and wraps at 2^16; lets a receiver detect loss
    /// and restore order.
    pub sequence: u16,
    /// Sampling instant of the first sample of the payload, in the payload's clock
    /// (48 kHz for Opus, 8 kHz for G.711); wraps at 2^32.
    pub timestamp: u32,
    /// Synchronisation source: one stream from one sender.
    pub ssrc: u32,
    /// Where the payload lies in the datagram, padding excluded.
    pub payload_offset: usize,
    /// Length of the payload, padding excluded.
    pub payload_len: usize,
}

impl RtpHeader {
    /// Parses and validates the header of `datagram`.
    pub fn parse(datagram: &[u8]) -> Result<Self, RtpError> {
        let packet = RtpPacket::parse(datagram)?;
        let payload_offset = packet.payload_offset();
        let padding = usize::from(packet.padding().unwrap_or(0));
        // rtp-types accepts padding that overlaps the header extension; RFC 3550 §5.1
        // counts padding from the end of the payload, so it must fit after the header.
        let payload_len = datagram
            .len()
            .checked_sub(payload_offset + padding)
            .ok_or(RtpError::Padding(padding as u8))?;
        Ok(RtpHeader {
            marker: packet.marker_bit(),
            payload_type: packet.payload_type(),
            sequence: packet.sequence_number(),
            timestamp: packet.timestamp(),
            ssrc: packet.ssrc(),
            payload_offset,
            payload_len,
        })
    }

    /// Byte range of the payload inside the datagram it was parsed from.
    pub fn payload_range(&self) -> Range<usize> {
        self.payload_offset..self.payload_offset + self.payload_len
    }

    /// The payload inside the datagram it was parsed from.
    pub fn payload<'a>(&self, datagram: &'a [u8]) -> &'a [u8] {
        datagram.get(self.payload_range()).unwrap_or(&[])
    }
}

/// Writes a 12-byte RTP header for `header` into the start of `out` and returns the
/// header length. `out` must hold at least [`FIXED_HEADER_LEN`] bytes.
pub fn write_header(out: &mut [u8; FIXED_HEADER_LEN], header: &OutgoingHeader) -> usize {
    out[0] = VERSION_BITS;
    out[1] = (header.payload_type & 0x7f) | if header.marker { MARKER_BIT } else { 0 };
    out[SEQUENCE].copy_from_slice(&header.sequence.to_be_bytes());
    out[TIMESTAMP].copy_from_slice(&header.timestamp.to_be_bytes());
    out[SSRC].copy_from_slice(&header.ssrc.to_be_bytes());
    FIXED_HEADER_LEN
}

/// The header fields of a packet emcomm sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutgoingHeader {
    pub marker: bool,
    pub payload_type: u8,
    pub sequence: u16,
    pub timestamp: u32,
    pub ssrc: u32,
}

/// Builds a whole packet: header then payload.
pub fn build_packet(header: &OutgoingHeader, payload: &[u8]) -> Vec<u8> {
    let mut fixed = [0u8; FIXED_HEADER_LEN];
    write_header(&mut fixed, header);
    let mut packet = Vec::with_capacity(FIXED_HEADER_LEN + payload.len());
    packet.extend_from_slice(&fixed);
    packet.extend_from_slice(payload);
    packet
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_header() -> OutgoingHeader {
        OutgoingHeader {
            marker: true,
            payload_type: 111,
            sequence: 0xfffe,
            timestamp: 0xffff_ff00,
            ssrc: 0x1234_5678,
        }
    }

    #[test]
    fn a_built_packet_parses_back_to_its_fields() {
        let packet = build_packet(&sample_header(), b"opus");
        let header = RtpHeader::parse(&packet).expect("valid packet");
        assert!(header.marker);
        assert_eq!(header.payload_type, 111);
        assert_eq!(header.sequence, 0xfffe);
        assert_eq!(header.timestamp, 0xffff_ff00);
        assert_eq!(header.ssrc, 0x1234_5678);
        assert_eq!(header.payload(&packet), b"opus");
    }

    #[test]
    fn short_datagrams_are_truncated_errors() {
        for len in 0..FIXED_HEADER_LEN {
            let datagram = vec![0x80; len];
            assert!(matches!(
                RtpHeader::parse(&datagram),
                Err(RtpError::Truncated { .. })
            ));
        }
    }

    #[test]
    fn version_other_than_two_is_refused() {
        let mut packet = build_packet(&sample_header(), b"x");
        packet[0] = 0x40;
        assert_eq!(RtpHeader::parse(&packet), Err(RtpError::Version(1)));
    }

    #[test]
    fn csrc_count_past_the_end_is_refused() {
        let mut packet = build_packet(&sample_header(), b"abcd");
        packet[0] |= 0x0f; // 15 CSRCs = 60 bytes that are not there
        assert!(matches!(
            RtpHeader::parse(&packet),
            Err(RtpError::Truncated { .. })
        ));
    }

    #[test]
    fn extension_length_past_the_end_is_refused() {
        let mut packet = build_packet(&sample_header(), &[0xbe, 0xde, 0x00, 0xff]);
        packet[0] |= 0x10; // extension bit; 0xff words follow the 4-byte extension header
        assert!(matches!(
            RtpHeader::parse(&packet),
            Err(RtpError::Truncated { .. })
        ));
    }

    #[test]
    fn padding_longer_than_the_payload_is_refused() {
        let mut packet = build_packet(&sample_header(), &[1, 2, 3, 200]);
        packet[0] |= 0x20;
        assert!(RtpHeader::parse(&packet).is_err());
    }

    #[test]
    fn padding_is_excluded_from_the_payload() {
        let mut packet = build_packet(&sample_header(), &[9, 9, 0, 0, 3]);
        packet[0] |= 0x20;
        let header = RtpHeader::parse(&packet).expect("valid padded packet");
        assert_eq!(header.payload(&packet), &[9, 9]);
    }
}
