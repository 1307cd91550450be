//! G.711 over RTP (RFC 3551 §4.5.14).
//!
//! PCMU (payload type 0) and PCMA (payload type 8) carry one byte per sample at 8 kHz,
//! so the timestamp advances by the payload length and a 20 ms packet holds 160 bytes.
//! Any payload length is valid; an empty one carries no audio.

/// RTP clock of G.711 (RFC 3551 Table 4).
pub const CLOCK_RATE: u32 = 8_000;

/// Bytes, and samples, of a 20 ms packet.
pub const PACKET_BYTES: usize = 160;

/// Duration of a G.711 payload in 8 kHz samples.
pub fn packet_samples(payload: &[u8]) -> u32 {
    payload.len() as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_byte_is_one_sample() {
        assert_eq!(packet_samples(&[0xff; PACKET_BYTES]), 160);
    }
}
