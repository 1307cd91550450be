//! Encoding 20 ms frames of 48 kHz speech into one payload format.
//!
//! A node encodes each frame once per codec that some destination takes: Opus at
//! 48 kHz, or G.711 after resampling to 8 kHz. The resampler keeps its state across
//! frames, so the stream has no seams.

use codecs::CodecError;
use codecs::g711::{self, G711Law};
use codecs::opus::OpusEncoder;
use codecs::resample::StreamResampler;
use drivers::rtp::payload::PayloadFormat;

/// Largest Opus packet we let the encoder produce (RFC 6716 §3.4 allows 1275 per frame).
const MAX_OPUS_PACKET: usize = 1275;

/// Expected loss the Opus encoder protects against with in-band FEC.
const EXPECTED_LOSS_PERCENT: u8 = 10;

/// An encoder for one payload format.
pub enum FrameEncoder {
    Opus {
        encoder: OpusEncoder,
        buffer: Vec<u8>,
    },
    G711 {
        law: G711Law,
        resampler: Box<StreamResampler>,
        buffer: Vec<u8>,
    },
}

impl FrameEncoder {
    /// An encoder for `format`; `opus_bitrate` in bit/s applies to Opus.
    pub fn new(format: PayloadFormat, opus_bitrate: u32) -> Result<Self, CodecError> {
        let law = match format {
            PayloadFormat::Opus { .. } => {
                return Ok(FrameEncoder::Opus {
                    encoder: OpusEncoder::new(opus_bitrate as i32, EXPECTED_LOSS_PERCENT)?,
                    buffer: vec![0; MAX_OPUS_PACKET],
                });
            }
            PayloadFormat::Pcmu => G711Law::MuLaw,
            PayloadFormat::Pcma => G711Law::ALaw,
        };
        Ok(FrameEncoder::G711 {
            law,
            resampler: Box::new(StreamResampler::new(
                48_000,
                8_000,
                codecs::opus::FRAME_SAMPLES,
            )?),
            buffer: Vec::with_capacity(drivers::rtp::g711::PACKET_BYTES),
        })
    }

    /// Encodes one 20 ms frame of 48 kHz audio (960 samples).
    pub fn encode(&mut self, frame: &[i16]) -> Result<&[u8], CodecError> {
        match self {
            FrameEncoder::Opus { encoder, buffer } => {
                let len = encoder.encode(frame, buffer)?;
                Ok(&buffer[..len])
            }
            FrameEncoder::G711 {
                law,
                resampler,
                buffer,
            } => {
                let narrow = resampler.process(frame)?;
                buffer.clear();
                g711::encode(*law, &narrow, buffer);
                Ok(buffer)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_becomes_one_opus_packet_or_160_g711_bytes() {
        let frame: Vec<i16> = (0..960)
            .map(|i| ((i as f32 * 0.06).sin() * 8000.0) as i16)
            .collect();
        let mut opus = FrameEncoder::new(PayloadFormat::OPUS, 32_000).expect("opus");
        let packet = opus.encode(&frame).expect("encode").to_vec();
        assert_eq!(drivers::rtp::opus::packet_samples(&packet), Ok(960));
        let mut pcmu = FrameEncoder::new(PayloadFormat::Pcmu, 32_000).expect("pcmu");
        assert_eq!(pcmu.encode(&frame).expect("encode").len(), 160);
    }
}
