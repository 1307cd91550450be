//! The payload formats emcomm carries and their RTP clock facts.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// Packet duration on every stream emcomm sends (RFC 7587 allows 2.5–120 ms; 20 ms is
/// the usual voice choice and the default of RFC 3551 for G.711).
pub const PACKET_DURATION: Duration = Duration::from_millis(20);

/// An audio payload format on an RTP stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PayloadFormat {
    /// Opus (RFC 7587), with its dynamic payload type. 48 kHz RTP clock whatever the
    /// audio bandwidth; one Opus packet per RTP packet, no payload header.
    Opus { payload_type: u8 },
    /// G.711 µ-law, static payload type 0, 8 kHz (RFC 3551 §4.5.14).
    Pcmu,
    /// G.711 A-law, static payload type 8, 8 kHz (RFC 3551 §4.5.14).
    Pcma,
}

/// Payload type most peers use for Opus (GStreamer, browsers); it is dynamic, so both
/// ends must agree on it.
pub const DEFAULT_OPUS_PAYLOAD_TYPE: u8 = 111;

impl PayloadFormat {
    /// Opus with the customary dynamic payload type.
    pub const OPUS: PayloadFormat = PayloadFormat::Opus {
        payload_type: DEFAULT_OPUS_PAYLOAD_TYPE,
    };

    /// The RTP payload type number.
    pub fn payload_type(self) -> u8 {
        match self {
            PayloadFormat::Opus { payload_type } => payload_type,
            PayloadFormat::Pcmu => 0,
            PayloadFormat::Pcma => 8,
        }
    }

    /// RTP timestamp units per second.
    pub fn clock_rate(self) -> u32 {
        match self {
            PayloadFormat::Opus { .. } => 48_000,
            PayloadFormat::Pcmu | PayloadFormat::Pcma => 8_000,
        }
    }

    /// Timestamp increment of one [`PACKET_DURATION`] packet.
    pub fn timestamp_step(self) -> u32 {
        self.clock_rate() / 50
    }

    /// Whether the codec can rebuild a lost packet from the next one (Opus in-band FEC).
    pub fn has_inband_fec(self) -> bool {
        matches!(self, PayloadFormat::Opus { .. })
    }

    /// The format a received payload type stands for, given the Opus type in use.
    pub fn from_payload_type(pt: u8, opus_payload_type: u8) -> Option<Self> {
        match pt {
            0 => Some(PayloadFormat::Pcmu),
            8 => Some(PayloadFormat::Pcma),
            pt if pt == opus_payload_type => Some(PayloadFormat::Opus { payload_type: pt }),
            _ => None,
        }
    }

    /// Same codec, whatever the dynamic payload type.
    pub fn same_codec(self, other: PayloadFormat) -> bool {
        std::mem::discriminant(&self) == std::mem::discriminant(&other)
    }
}

impl fmt::Display for PayloadFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PayloadFormat::Opus { .. } => f.write_str("opus"),
            PayloadFormat::Pcmu => f.write_str("pcmu"),
            PayloadFormat::Pcma => f.write_str("pcma"),
        }
    }
}

/// A codec name that emcomm does not carry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown codec {0:?}: expected opus, pcmu or pcma")]
pub struct UnknownCodec(pub String);

impl FromStr for PayloadFormat {
    type Err = UnknownCodec;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "opus" => Ok(PayloadFormat::OPUS),
            "pcmu" | "g711u" | "ulaw" => Ok(PayloadFormat::Pcmu),
            "pcma" | "g711a" | "alaw" => Ok(PayloadFormat::Pcma),
            _ => Err(UnknownCodec(s.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_twenty_ms_packet_advances_the_timestamp_by_the_clock_facts() {
        assert_eq!(PayloadFormat::OPUS.timestamp_step(), 960);
        assert_eq!(PayloadFormat::Pcmu.timestamp_step(), 160);
        assert_eq!(PayloadFormat::Pcma.timestamp_step(), 160);
    }

    #[test]
    fn static_and_dynamic_payload_types_map_to_formats() {
        assert_eq!(
            PayloadFormat::from_payload_type(0, 111),
            Some(PayloadFormat::Pcmu)
        );
        assert_eq!(
            PayloadFormat::from_payload_type(8, 111),
            Some(PayloadFormat::Pcma)
        );
        assert_eq!(
            PayloadFormat::from_payload_type(111, 111),
            Some(PayloadFormat::OPUS)
        );
        assert_eq!(PayloadFormat::from_payload_type(96, 111), None);
    }

    #[test]
    fn codec_names_parse() {
        assert_eq!("Opus".parse(), Ok(PayloadFormat::OPUS));
        assert_eq!("pcma".parse(), Ok(PayloadFormat::Pcma));
        assert!("g729".parse::<PayloadFormat>().is_err());
    }
}
