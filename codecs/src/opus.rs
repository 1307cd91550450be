//! Opus voice coding (RFC 6716) as carried over RTP (RFC 7587).
//!
//! The gateway uses one fixed shape of Opus everywhere: 48 kHz, one channel, 20 ms frames of
//! [`FRAME_SAMPLES`] samples. RFC 7587 §4.1 fixes the RTP clock of Opus at 48 kHz whatever
//! the audio bandwidth, so a 20 ms frame always advances the RTP timestamp by 960.
//!
//! # Contract
//!
//! - [`OpusEncoder::encode`] takes exactly one frame. Any other length is a
//!   [`CodecError::FrameLength`], never a partial encode.
//! - The encoder runs in the VoIP application mode with in-band forward error correction
//!   (RFC 6716 §2.1.7, "LBRR" frames). libopus only spends bits on FEC when it is told to
//!   expect loss, so [`OpusEncoder::new`] takes the expected loss percentage; with 0 no FEC
//!   is emitted.
//! - The decoder is handed each received packet once, in order. For a lost packet the caller
//!   chooses: if the *next* packet has arrived, [`OpusDecoder::decode_fec`] rebuilds the lost
//!   frame from the redundancy in that packet (and the next packet is then decoded normally
//!   with [`OpusDecoder::decode`]); otherwise [`OpusDecoder::conceal`] runs packet loss
//!   concealment (RFC 6716 §4.4). When the next packet carries no FEC (CELT-only packets, or
//!   an encoder that expected no loss), `decode_fec` falls back to concealment by itself.
//! - Packets come from the network, so nothing in them can make the decoder panic: a corrupt
//!   packet is a [`CodecError::Opus`] and leaves the decoder usable.

use opus::{Application, Bitrate, Channels};

use crate::error::CodecError;

/// Opus sample rate used throughout the gateway, in Hz (the RTP clock rate of RFC 7587 §4.1).
pub const SAMPLE_RATE: u32 = 48_000;

/// Samples in one 20 ms frame at [`SAMPLE_RATE`].
pub const FRAME_SAMPLES: usize = 960;

/// Largest packet one Opus frame can produce (RFC 6716 §3.2.1: a frame is at most 1275 bytes),
/// plus the one-byte TOC. A buffer of this size never makes [`OpusEncoder::encode`] fail.
pub const MAX_PACKET_BYTES: usize = 1276;

/// Lowest bitrate RFC 6716 §2.1.1 allows for Opus, in bit/s.
pub const MIN_BITRATE_BPS: i32 = 6_000;

/// Highest bitrate RFC 6716 §2.1.1 allows for Opus, in bit/s.
pub const MAX_BITRATE_BPS: i32 = 510_000;

/// An Opus encoder for 20 ms mono voice frames at 48 kHz.
pub struct OpusEncoder {
    inner: opus::Encoder,
}

impl std::fmt::Debug for OpusEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpusEncoder").finish_non_exhaustive()
    }
}

impl OpusEncoder {
    /// Builds a VoIP-mode encoder at `bitrate_bps` with in-band FEC sized for
    /// `expected_loss_percent` packet loss.
    ///
    /// The bitrate must lie in [`MIN_BITRATE_BPS`]..=[`MAX_BITRATE_BPS`] and the loss in
    /// 0..=100. FEC is only emitted when the loss is above 0 and the bitrate leaves room for it
    /// (the SILK layer, below about 40 kbit/s for mono voice).
    pub fn new(bitrate_bps: i32, expected_loss_percent: u8) -> Result<Self, CodecError> {
        if !(MIN_BITRATE_BPS..=MAX_BITRATE_BPS).contains(&bitrate_bps) {
            return Err(CodecError::OpusBitrate(bitrate_bps));
        }
        if expected_loss_percent > 100 {
            return Err(CodecError::LossPercent(expected_loss_percent));
        }

        let setup = |source| CodecError::Opus {
            operation: "encoder setup",
            source,
        };
        let mut inner =
            opus::Encoder::new(SAMPLE_RATE, Channels::Mono, Application::Voip).map_err(setup)?;
        inner
            .set_bitrate(Bitrate::Bits(bitrate_bps))
            .map_err(setup)?;
        inner.set_inband_fec(true).map_err(setup)?;
        inner
            .set_packet_loss_perc(i32::from(expected_loss_percent))
            .map_err(setup)?;

        Ok(Self { inner })
    }

    /// Encodes one frame of exactly [`FRAME_SAMPLES`] samples into `out` and returns the packet
    /// length in bytes.
    ///
    /// `out` of [`MAX_PACKET_BYTES`] always suffices; a smaller one may make libopus fail.
    pub fn encode(&mut self, frame: &[i16], out: &mut [u8]) -> Result<usize, CodecError> {
        check_frame(frame.len())?;

        self.inner
            .encode(frame, out)
            .map_err(|source| CodecError::Opus {
                operation: "encode",
                source,
            })
    }

    /// Encodes one frame into a freshly allocated packet.
    pub fn encode_vec(&mut self, frame: &[i16]) -> Result<Vec<u8>, CodecError> {
        let mut packet = vec![0u8; MAX_PACKET_BYTES];
        let len = self.encode(frame, &mut packet)?;
        packet.truncate(len);
        Ok(packet)
    }
}

/// An Opus decoder producing 48 kHz mono samples.
pub struct OpusDecoder {
    inner: opus::Decoder,
}

impl std::fmt::Debug for OpusDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpusDecoder").finish_non_exhaustive()
    }
}

impl OpusDecoder {
    /// Builds a decoder for 48 kHz mono output. A stereo packet is mixed down by libopus.
    pub fn new() -> Result<Self, CodecError> {
        let inner =
            opus::Decoder::new(SAMPLE_RATE, Channels::Mono).map_err(|source| CodecError::Opus {
                operation: "decoder setup",
                source,
            })?;
        Ok(Self { inner })
    }

    /// Decodes a received packet into `out` and returns the number of samples written.
    ///
    /// `out` must hold at least one frame ([`FRAME_SAMPLES`]); a packet longer than `out` (a
    /// 60 ms packet into a 20 ms buffer) is an error, as is a corrupt or empty packet.
    pub fn decode(&mut self, packet: &[u8], out: &mut [i16]) -> Result<usize, CodecError> {
        check_output(out.len())?;
        if packet.is_empty() {
            return Err(CodecError::EmptyPacket);
        }

        self.inner
            .decode(packet, out, false)
            .map_err(|source| CodecError::Opus {
                operation: "decode",
                source,
            })
    }

    /// Rebuilds the frame *before* `next_packet`, which was lost, from the in-band FEC data
    /// that `next_packet` carries, and returns the number of samples written (one frame).
    ///
    /// `next_packet` is not consumed: decode it afterwards with [`decode`](Self::decode).
    /// Without FEC data in `next_packet` the result is the same as [`conceal`](Self::conceal).
    pub fn decode_fec(&mut self, next_packet: &[u8], out: &mut [i16]) -> Result<usize, CodecError> {
        let frame = one_frame(out)?;
        if next_packet.is_empty() {
            return Err(CodecError::EmptyPacket);
        }

        // libopus recovers exactly as many samples as the output it is given, and the lost
        // packet was one frame long.
        self.inner
            .decode(next_packet, frame, true)
            .map_err(|source| CodecError::Opus {
                operation: "FEC decode",
                source,
            })
    }

    /// Fills one frame of `out` for a lost packet by packet loss concealment and returns the
    /// number of samples written (one frame).
    pub fn conceal(&mut self, out: &mut [i16]) -> Result<usize, CodecError> {
        let frame = one_frame(out)?;

        self.inner
            .decode(&[], frame, false)
            .map_err(|source| CodecError::Opus {
                operation: "loss concealment",
                source,
            })
    }
}

fn check_frame(len: usize) -> Result<(), CodecError> {
    if len == FRAME_SAMPLES {
        Ok(())
    } else {
        Err(CodecError::FrameLength {
            expected: FRAME_SAMPLES,
            actual: len,
        })
    }
}

fn check_output(len: usize) -> Result<(), CodecError> {
    if len >= FRAME_SAMPLES {
        Ok(())
    } else {
        Err(CodecError::OutputTooSmall {
            needed: FRAME_SAMPLES,
            actual: len,
        })
    }
}

fn one_frame(out: &mut [i16]) -> Result<&mut [i16], CodecError> {
    let actual = out.len();
    out.get_mut(..FRAME_SAMPLES)
        .ok_or(CodecError::OutputTooSmall {
            needed: FRAME_SAMPLES,
            actual,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::level::Level;
    use crate::pcm;
    use crate::tones;
    use std::time::Duration;

    fn sine_frames(frequency_hz: f32, level_dbfs: f32, seconds: f32) -> Vec<Vec<i16>> {
        let tone = tones::sine(
            frequency_hz,
            level_dbfs,
            Duration::from_secs_f32(seconds),
            SAMPLE_RATE,
        );
        pcm::f32_to_i16_vec(&tone)
            .chunks_exact(FRAME_SAMPLES)
            .map(<[i16]>::to_vec)
            .collect()
    }

    #[test]
    fn a_tone_survives_encode_and_decode_at_its_level() -> Result<(), CodecError> {
        let mut encoder = OpusEncoder::new(24_000, 10)?;
        let mut decoder = OpusDecoder::new()?;
        let mut decoded = Vec::new();
        let mut out = [0i16; FRAME_SAMPLES];

        for frame in sine_frames(440.0, -12.0, 1.0) {
            let packet = encoder.encode_vec(&frame)?;
            assert!(packet.len() <= MAX_PACKET_BYTES);
            let n = decoder.decode(&packet, &mut out)?;
            assert_eq!(n, FRAME_SAMPLES);
            decoded.extend_from_slice(&out);
        }

        // Skip the first 100 ms while the codec settles.
        let level = Level::of_i16(decoded.get(4800..).unwrap_or_default());
        assert!((level.rms_dbfs - (-15.05)).abs() < 1.0, "{level:?}");
        Ok(())
    }

    #[test]
    fn a_frame_of_the_wrong_length_is_refused() -> Result<(), CodecError> {
        let mut encoder = OpusEncoder::new(24_000, 0)?;
        let mut out = [0u8; MAX_PACKET_BYTES];
        let err = encoder.encode(&[0i16; 480], &mut out);
        assert!(matches!(
            err,
            Err(CodecError::FrameLength {
                expected: 960,
                actual: 480
            })
        ));
        Ok(())
    }

    #[test]
    fn bitrate_and_loss_outside_the_standard_are_refused() {
        assert!(matches!(
            OpusEncoder::new(2_000, 5),
            Err(CodecError::OpusBitrate(2_000))
        ));
        assert!(matches!(
            OpusEncoder::new(24_000, 101),
            Err(CodecError::LossPercent(101))
        ));
    }

    #[test]
    fn a_corrupt_packet_is_an_error_and_the_decoder_recovers() -> Result<(), CodecError> {
        let mut encoder = OpusEncoder::new(24_000, 0)?;
        let mut decoder = OpusDecoder::new()?;
        let mut out = [0i16; FRAME_SAMPLES];

        // TOC code 3 (RFC 6716 §3.2.5) announces a frame count byte that is missing.
        assert!(matches!(
            decoder.decode(&[0xFB], &mut out),
            Err(CodecError::Opus { .. })
        ));
        // Code 3 with a frame count of 0 is invalid by R5 of §3.4.
        assert!(matches!(
            decoder.decode(&[0x0B, 0x00], &mut out),
            Err(CodecError::Opus { .. })
        ));
        // A 60 ms SILK packet (TOC configuration 3) does not fit a 20 ms buffer.
        assert!(matches!(
            decoder.decode(&[0x18, 0x00, 0x00, 0x00], &mut out),
            Err(CodecError::Opus { .. })
        ));
        assert!(matches!(
            decoder.decode(&[], &mut out),
            Err(CodecError::EmptyPacket)
        ));

        let frames = sine_frames(440.0, -12.0, 0.1);
        let first = frames.first().map(Vec::as_slice).unwrap_or_default();
        let packet = encoder.encode_vec(first)?;
        assert_eq!(decoder.decode(&packet, &mut out)?, FRAME_SAMPLES);
        Ok(())
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_decoder() -> Result<(), CodecError> {
        let mut decoder = OpusDecoder::new()?;
        let mut out = [0i16; FRAME_SAMPLES * 6];
        let mut state = 0x2545_F491_u32;
        for len in 1..400 {
            let packet: Vec<u8> = (0..len)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 17;
                    state ^= state << 5;
                    state.to_le_bytes()[0]
                })
                .collect();
            // Either outcome is fine; what matters is that it returns.
            let _ = decoder.decode(&packet, &mut out);
            let _ = decoder.decode_fec(&packet, &mut out);
        }
        Ok(())
    }

    #[test]
    fn an_output_shorter_than_a_frame_is_refused() -> Result<(), CodecError> {
        let mut decoder = OpusDecoder::new()?;
        let mut out = [0i16; 100];
        assert!(matches!(
            decoder.conceal(&mut out),
            Err(CodecError::OutputTooSmall {
                needed: 960,
                actual: 100
            })
        ));
        assert!(matches!(
            decoder.decode(&[0x08, 0x00], &mut out),
            Err(CodecError::OutputTooSmall { .. })
        ));
        Ok(())
    }

    #[test]
    fn concealment_fills_exactly_one_frame() -> Result<(), CodecError> {
        let mut decoder = OpusDecoder::new()?;
        let mut out = [1i16; FRAME_SAMPLES * 3];
        assert_eq!(decoder.conceal(&mut out)?, FRAME_SAMPLES);
        assert_eq!(out.get(FRAME_SAMPLES), Some(&1));
        Ok(())
    }
}
