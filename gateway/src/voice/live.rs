//! A dispatcher console's voice arriving as RTP, made into 20 ms frames of 48 kHz
//! speech for a live broadcast.
//!
//! Takes Opus (the node's dynamic payload type, RFC 7587) or G.711 (payload types 0
//! and 8, RFC 3551) and decodes each packet as it arrives. There is no jitter buffer:
//! the console is expected on the command centre's own network, and a packet that
//! arrives late or out of order is played where it arrives (docs/limitations.md).
//! Packets of other sources than the first are ignored until [`LiveDecoder::reset`].

use codecs::g711::{self, G711Law};
use codecs::opus::{FRAME_SAMPLES, OpusDecoder};
use codecs::resample::StreamResampler;
use drivers::rtp::packet::RtpHeader;

/// Samples in one G.711 packet of 20 ms.
const G711_FRAME: usize = 160;

pub struct LiveDecoder {
    opus_payload_type: u8,
    opus: Option<OpusDecoder>,
    resampler: Option<StreamResampler>,
    source: Option<u32>,
    pcm: Vec<i16>,
    pending: Vec<i16>,
}

impl LiveDecoder {
    pub fn new(opus_payload_type: u8) -> LiveDecoder {
        LiveDecoder {
            opus_payload_type,
            opus: None,
            resampler: None,
            source: None,
            pcm: vec![0; FRAME_SAMPLES * 6],
            pending: Vec::new(),
        }
    }

    /// Forgets the source, to take the next one.
    pub fn reset(&mut self) {
        *self = LiveDecoder::new(self.opus_payload_type);
    }

    /// The 20 ms frames of 48 kHz mono speech in `datagram`; none for a datagram that
    /// is not RTP of a payload type taken here, or of another source.
    pub fn on_rtp(&mut self, datagram: &[u8]) -> Vec<Vec<i16>> {
        let Ok(header) = RtpHeader::parse(datagram) else {
            return Vec::new();
        };
        if *self.source.get_or_insert(header.ssrc) != header.ssrc {
            return Vec::new();
        }
        let payload = header.payload(datagram);
        let decoded: Vec<i16> = match header.payload_type {
            pt if pt == self.opus_payload_type => {
                if self.opus.is_none() {
                    self.opus = OpusDecoder::new().ok();
                }
                let Some(decoder) = self.opus.as_mut() else {
                    return Vec::new();
                };
                match decoder.decode(payload, &mut self.pcm) {
                    Ok(n) => self.pcm[..n.min(self.pcm.len())].to_vec(),
                    Err(_) => return Vec::new(),
                }
            }
            0 | 8 if payload.len() == G711_FRAME => {
                let law = if header.payload_type == 0 {
                    G711Law::MuLaw
                } else {
                    G711Law::ALaw
                };
                let mut narrow = Vec::with_capacity(G711_FRAME);
                g711::decode(law, payload, &mut narrow);
                if self.resampler.is_none() {
                    self.resampler = StreamResampler::new(8_000, 48_000, G711_FRAME).ok();
                }
                match self.resampler.as_mut().map(|r| r.process(&narrow)) {
                    Some(Ok(wide)) => wide,
                    _ => return Vec::new(),
                }
            }
            _ => return Vec::new(),
        };
        self.pending.extend_from_slice(&decoded);
        let mut frames = Vec::new();
        while self.pending.len() >= FRAME_SAMPLES {
            frames.push(self.pending.drain(..FRAME_SAMPLES).collect());
        }
        frames
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use codecs::opus::OpusEncoder;
    use drivers::rtp::packetizer::Packetizer;
    use drivers::rtp::payload::PayloadFormat;

    use super::*;

    #[test]
    fn opus_packets_become_20_ms_frames_of_the_same_tone() {
        let mut encoder = OpusEncoder::new(32_000, 0).expect("encoder");
        let mut stream = Packetizer::new(PayloadFormat::Opus { payload_type: 111 });
        let tone = codecs::pcm::f32_to_i16_vec(&codecs::tones::sine(
            440.0,
            -12.0,
            Duration::from_millis(400),
            48_000,
        ));
        let mut live = LiveDecoder::new(111);
        let mut out = Vec::new();
        let mut buf = vec![0u8; 1275];
        let t0 = Instant::now();
        for (k, frame) in tone.chunks(FRAME_SAMPLES).enumerate() {
            let n = encoder.encode(frame, &mut buf).expect("encode");
            let datagram = stream.packetize(&buf[..n], t0 + Duration::from_millis(20 * k as u64));
            for f in live.on_rtp(&datagram) {
                assert_eq!(f.len(), FRAME_SAMPLES);
                out.extend(f);
            }
        }
        assert_eq!(out.len(), tone.len());
        let level = codecs::level::Level::of_i16(&out[FRAME_SAMPLES * 5..]);
        assert!(level.rms_dbfs > -20.0, "{level:?}");
    }

    #[test]
    fn pcmu_is_widened_to_48_khz_and_other_sources_are_ignored() {
        let mut first = Packetizer::with_origin(PayloadFormat::Pcmu, 1, 0, 0);
        let mut second = Packetizer::with_origin(PayloadFormat::Pcmu, 2, 0, 0);
        let mut live = LiveDecoder::new(111);
        let t0 = Instant::now();
        let frames = live.on_rtp(&first.packetize(&[0x10; G711_FRAME], t0));
        assert_eq!(
            frames.iter().map(Vec::len).sum::<usize>() % FRAME_SAMPLES,
            0
        );
        assert!(
            live.on_rtp(&second.packetize(&[0x10; G711_FRAME], t0))
                .is_empty()
        );
        assert!(live.on_rtp(b"not rtp").is_empty());
        live.reset();
        let mut total = 0;
        for k in 0..10 {
            total += live
                .on_rtp(&second.packetize(&[0x10; G711_FRAME], t0 + Duration::from_millis(20 * k)))
                .len();
        }
        assert!(
            total >= 8,
            "about one frame a packet once the resampler has filled: {total}"
        );
    }
}
