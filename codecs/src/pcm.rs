//! Linear PCM: sample format conversion, L16 payloads and channel mix-down.
//!
//! # Conventions
//!
//! - Floating-point samples are full scale at ±1.0. An `i16` sample `s` maps to `s / 32768`,
//!   so -32768 maps to exactly -1.0 and 32767 to just under 1.0. The way back multiplies by
//!   32768, rounds to nearest and saturates, so `i16 -> f32 -> i16` is lossless, values beyond
//!   ±1.0 clip instead of wrapping, and NaN becomes 0.
//! - L16 is 16-bit signed linear PCM in network byte order (big-endian), as RTP carries it
//!   (RFC 3551 §4.5.11). A payload with an odd number of bytes is refused, not truncated.
//! - Interleaved multichannel audio (frame by frame, channel by channel inside a frame) is
//!   mixed down to mono by averaging the channels of each frame, which cannot overflow.

use crate::error::CodecError;

/// Full-scale magnitude of an `i16` sample, as a float.
const I16_FULL_SCALE: f32 = 32_768.0;

/// Converts one `i16` sample to a float in [-1.0, 1.0).
pub fn i16_to_f32(sample: i16) -> f32 {
    f32::from(sample) / I16_FULL_SCALE
}

/// Converts one float sample to `i16`, rounding to nearest and clipping outside [-1.0, 1.0).
pub fn f32_to_i16(sample: f32) -> i16 {
    // `as` saturates at the bounds of i16 and maps NaN to 0.
    (sample * I16_FULL_SCALE).round() as i16
}

/// Converts a buffer of `i16` samples to floats.
pub fn i16_to_f32_vec(samples: &[i16]) -> Vec<f32> {
    samples.iter().copied().map(i16_to_f32).collect()
}

/// Converts a buffer of float samples to `i16`, clipping.
pub fn f32_to_i16_vec(samples: &[f32]) -> Vec<i16> {
    samples.iter().copied().map(f32_to_i16).collect()
}

/// Appends the samples of an L16 payload (big-endian 16-bit) to `out`.
///
/// An odd-length payload is [`CodecError::L16OddLength`] and appends nothing.
pub fn l16_to_i16(payload: &[u8], out: &mut Vec<i16>) -> Result<(), CodecError> {
    let samples = payload.chunks_exact(2);
    if !samples.remainder().is_empty() {
        return Err(CodecError::L16OddLength(payload.len()));
    }

    out.reserve(payload.len() / 2);
    out.extend(
        samples
            .filter_map(|pair| <[u8; 2]>::try_from(pair).ok())
            .map(i16::from_be_bytes),
    );
    Ok(())
}

/// Appends `samples` to `out` as an L16 payload (big-endian 16-bit).
pub fn i16_to_l16(samples: &[i16], out: &mut Vec<u8>) {
    out.reserve(samples.len() * 2);
    for sample in samples {
        out.extend_from_slice(&sample.to_be_bytes());
    }
}

/// Mixes interleaved float audio of `channels` channels down to mono by averaging.
pub fn mix_to_mono_f32(interleaved: &[f32], channels: usize) -> Result<Vec<f32>, CodecError> {
    check_interleaved(interleaved.len(), channels)?;
    if channels == 1 {
        return Ok(interleaved.to_vec());
    }

    let scale = 1.0 / channels as f32;
    Ok(interleaved
        .chunks_exact(channels)
        .map(|frame| frame.iter().sum::<f32>() * scale)
        .collect())
}

/// Mixes interleaved `i16` audio of `channels` channels down to mono by averaging, rounding to
/// nearest.
pub fn mix_to_mono_i16(interleaved: &[i16], channels: usize) -> Result<Vec<i16>, CodecError> {
    check_interleaved(interleaved.len(), channels)?;
    if channels == 1 {
        return Ok(interleaved.to_vec());
    }

    let divisor = channels as f64;
    Ok(interleaved
        .chunks_exact(channels)
        .map(|frame| {
            let sum: i64 = frame.iter().map(|&s| i64::from(s)).sum();
            // The mean of i16 values is itself within i16 range.
            (sum as f64 / divisor).round() as i16
        })
        .collect())
}

fn check_interleaved(len: usize, channels: usize) -> Result<(), CodecError> {
    if channels == 0 {
        return Err(CodecError::ZeroChannels);
    }
    if len % channels != 0 {
        return Err(CodecError::PartialFrame { len, channels });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_i16_survives_a_round_trip_through_f32() {
        for s in i16::MIN..=i16::MAX {
            assert_eq!(f32_to_i16(i16_to_f32(s)), s);
        }
    }

    #[test]
    fn the_i16_extremes_map_to_full_scale() {
        assert_eq!(i16_to_f32(i16::MIN), -1.0);
        assert_eq!(i16_to_f32(i16::MAX), 32_767.0 / 32_768.0);
        assert_eq!(i16_to_f32(0), 0.0);
    }

    #[test]
    fn floats_beyond_full_scale_clip_instead_of_wrapping() {
        assert_eq!(f32_to_i16(1.0), i16::MAX);
        assert_eq!(f32_to_i16(1.5), i16::MAX);
        assert_eq!(f32_to_i16(-1.0), i16::MIN);
        assert_eq!(f32_to_i16(-7.0), i16::MIN);
        assert_eq!(f32_to_i16(f32::INFINITY), i16::MAX);
        assert_eq!(f32_to_i16(f32::NEG_INFINITY), i16::MIN);
        assert_eq!(f32_to_i16(f32::NAN), 0);
        assert_eq!(f32_to_i16(0.5), 16_384);
    }

    #[test]
    fn l16_is_big_endian() -> Result<(), CodecError> {
        let mut payload = Vec::new();
        i16_to_l16(&[0x0102, -2, i16::MIN], &mut payload);
        assert_eq!(payload, [0x01, 0x02, 0xFF, 0xFE, 0x80, 0x00]);

        let mut samples = vec![7];
        l16_to_i16(&payload, &mut samples)?;
        assert_eq!(samples, [7, 0x0102, -2, i16::MIN]);
        Ok(())
    }

    #[test]
    fn an_odd_length_l16_payload_is_refused_and_appends_nothing() {
        let mut samples = Vec::new();
        let err = l16_to_i16(&[0x01, 0x02, 0x03], &mut samples);
        assert!(matches!(err, Err(CodecError::L16OddLength(3))));
        assert!(samples.is_empty());
    }

    #[test]
    fn stereo_is_mixed_to_the_mean_of_its_channels() -> Result<(), CodecError> {
        let stereo = [1.0, 0.0, -0.5, -0.5, 0.25, 0.75];
        assert_eq!(mix_to_mono_f32(&stereo, 2)?, [0.5, -0.5, 0.5]);

        let stereo = [i16::MAX, i16::MAX, i16::MIN, i16::MIN, 3, 4, -3, -4];
        assert_eq!(mix_to_mono_i16(&stereo, 2)?, [i16::MAX, i16::MIN, 4, -4]);
        Ok(())
    }

    #[test]
    fn multichannel_is_mixed_to_the_mean_of_its_channels() -> Result<(), CodecError> {
        let quad = [0.4, 0.4, 0.0, 0.0, -1.0, -1.0, -1.0, -1.0];
        let mono = mix_to_mono_f32(&quad, 4)?;
        assert!((mono[0] - 0.2).abs() < 1e-6 && (mono[1] + 1.0).abs() < 1e-6);
        Ok(())
    }

    #[test]
    fn a_partial_multichannel_frame_is_refused() {
        assert!(matches!(
            mix_to_mono_i16(&[1, 2, 3], 2),
            Err(CodecError::PartialFrame {
                len: 3,
                channels: 2
            })
        ));
        assert!(matches!(
            mix_to_mono_f32(&[1.0], 0),
            Err(CodecError::ZeroChannels)
        ));
    }
}
