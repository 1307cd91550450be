//! Opus over RTP (RFC 7587).
//!
//! One Opus packet per RTP packet with no payload header (§4.2); the RTP clock is
//! 48 kHz whatever the encoded bandwidth (§4.1), so a 20 ms packet advances the
//! timestamp by 960. SDP always names the format `opus/48000/2` (§7), even for mono.
//! A receiver checks the table-of-contents byte (RFC 6716 §3.1) to learn the packet's
//! duration before handing it to the decoder.

/// RTP clock of Opus, fixed by RFC 7587 §4.1.
pub const CLOCK_RATE: u32 = 48_000;

/// SDP encoding name and parameters (RFC 7587 §7).
pub const SDP_RTPMAP: &str = "opus/48000/2";

/// Why an Opus payload cannot be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpusPayloadError {
    #[error("empty Opus payload")]
    Empty,
    #[error("Opus code 3 packet without its frame count byte")]
    MissingFrameCount,
    #[error("Opus code 3 packet with zero frames")]
    ZeroFrames,
    #[error("Opus packet longer than 120 ms ({0} samples at 48 kHz)")]
    TooLong(u32),
}

/// Duration of one frame in 48 kHz samples for a TOC configuration (RFC 6716 Table 2).
fn frame_samples(config: u8) -> u32 {
    match config {
        // SILK-only: 10, 20, 40, 60 ms per bandwidth
        0..=11 => [480, 960, 1920, 2880][usize::from(config % 4)],
        // Hybrid: 10, 20 ms
        12..=15 => [480, 960][usize::from(config % 2)],
        // CELT-only: 2.5, 5, 10, 20 ms
        _ => [120, 240, 480, 960][usize::from(config % 4)],
    }
}

/// Duration of an Opus packet in 48 kHz samples, read from its TOC byte.
pub fn packet_samples(payload: &[u8]) -> Result<u32, OpusPayloadError> {
    let toc = *payload.first().ok_or(OpusPayloadError::Empty)?;
    let per_frame = frame_samples(toc >> 3);
    let frames = match toc & 0x03 {
        0 => 1,
        1 | 2 => 2,
        _ => {
            let count = payload.get(1).ok_or(OpusPayloadError::MissingFrameCount)? & 0x3f;
            if count == 0 {
                return Err(OpusPayloadError::ZeroFrames);
            }
            u32::from(count)
        }
    };
    let samples = per_frame * frames;
    // RFC 6716 §3.2.5: a packet never holds more than 120 ms.
    if samples > 5760 {
        return Err(OpusPayloadError::TooLong(samples));
    }
    Ok(samples)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_twenty_ms_celt_packet_lasts_960_samples() {
        // config 31 (CELT fullband 20 ms), mono, code 0
        assert_eq!(packet_samples(&[31 << 3, 0xaa]), Ok(960));
    }

    #[test]
    fn a_twenty_ms_silk_packet_lasts_960_samples() {
        // config 1 (SILK narrowband 20 ms)
        assert_eq!(packet_samples(&[1 << 3]), Ok(960));
    }

    #[test]
    fn code_three_counts_its_frames() {
        assert_eq!(packet_samples(&[(31 << 3) | 3, 3]), Ok(2880));
        assert_eq!(
            packet_samples(&[(31 << 3) | 3]),
            Err(OpusPayloadError::MissingFrameCount)
        );
        assert_eq!(
            packet_samples(&[(31 << 3) | 3, 0]),
            Err(OpusPayloadError::ZeroFrames)
        );
        assert_eq!(
            packet_samples(&[(31 << 3) | 3, 63]),
            Err(OpusPayloadError::TooLong(60480))
        );
    }

    #[test]
    fn an_empty_payload_is_refused() {
        assert_eq!(packet_samples(&[]), Err(OpusPayloadError::Empty));
    }
}
