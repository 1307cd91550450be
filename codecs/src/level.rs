//! Peak and RMS level in dBFS.
//!
//! Full scale is 32768 for `i16` samples and 1.0 for `f32` samples, the same scale as
//! [`crate::pcm`]. Levels are plain ratios to full scale: a full-scale sine has a peak of
//! 0 dBFS and an RMS of −3.01 dBFS (AES17 would add 3.01 dB to the RMS; this crate does not).
//!
//! Silence, and an empty buffer, measure [`f32::NEG_INFINITY`] for both values: there is no
//! floor, so a caller comparing against a threshold gets the natural answer ("below").

/// The level of a buffer of samples.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Level {
    /// Largest absolute sample relative to full scale, in dB (0 dBFS or below for in-range
    /// samples; `-inf` for silence).
    pub peak_dbfs: f32,
    /// Root mean square relative to full scale, in dB (`-inf` for silence).
    pub rms_dbfs: f32,
}

impl Level {
    /// Measures `i16` samples against a full scale of 32768.
    pub fn of_i16(samples: &[i16]) -> Self {
        let peak = samples.iter().map(|s| s.unsigned_abs()).max().unwrap_or(0);
        let sum_of_squares: f64 = samples.iter().map(|&s| f64::from(s).powi(2)).sum();

        Self::from_peak_and_power(
            f64::from(peak) / 32_768.0,
            mean(sum_of_squares, samples.len()) / (32_768.0 * 32_768.0),
        )
    }

    /// Measures `f32` samples against a full scale of 1.0.
    pub fn of_f32(samples: &[f32]) -> Self {
        let peak = samples.iter().fold(0.0f32, |peak, s| peak.max(s.abs()));
        let sum_of_squares: f64 = samples.iter().map(|&s| f64::from(s).powi(2)).sum();

        Self::from_peak_and_power(f64::from(peak), mean(sum_of_squares, samples.len()))
    }

    fn from_peak_and_power(peak: f64, power: f64) -> Self {
        Self {
            peak_dbfs: (20.0 * peak.log10()) as f32,
            rms_dbfs: (10.0 * power.log10()) as f32,
        }
    }
}

/// The linear amplitude factor of a gain in dB: +6.02 dB doubles, -6.02 dB halves.
pub fn db_to_gain(db: f32) -> f32 {
    10f32.powf(db / 20.0)
}

fn mean(sum: f64, len: usize) -> f64 {
    if len == 0 { 0.0 } else { sum / len as f64 }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pcm;
    use crate::tones;
    use std::time::Duration;

    #[test]
    fn a_gain_in_db_is_its_amplitude_factor() {
        assert!((db_to_gain(0.0) - 1.0).abs() < 1e-6);
        assert!((db_to_gain(20.0) - 10.0).abs() < 1e-4);
        assert!((db_to_gain(-6.0206) - 0.5).abs() < 1e-4);
    }

    #[test]
    fn a_full_scale_sine_has_rms_minus_3_01_dbfs() {
        let tone = tones::sine(1_000.0, 0.0, Duration::from_secs(1), 48_000);
        let level = Level::of_f32(&tone);
        assert!(level.peak_dbfs.abs() < 0.01, "{level:?}");
        assert!((level.rms_dbfs + 3.01).abs() < 0.01, "{level:?}");
    }

    #[test]
    fn i16_and_f32_measure_the_same_signal_alike() {
        let tone = tones::sine(440.0, -20.0, Duration::from_millis(500), 8_000);
        let a = Level::of_f32(&tone);
        let b = Level::of_i16(&pcm::f32_to_i16_vec(&tone));
        assert!((a.rms_dbfs - (-23.01)).abs() < 0.01, "{a:?}");
        assert!((a.rms_dbfs - b.rms_dbfs).abs() < 0.01);
        assert!((a.peak_dbfs - b.peak_dbfs).abs() < 0.01);
    }

    #[test]
    fn the_most_negative_i16_is_full_scale() {
        let level = Level::of_i16(&[i16::MIN]);
        assert_eq!(level.peak_dbfs, 0.0);
        assert_eq!(level.rms_dbfs, 0.0);
    }

    #[test]
    fn silence_and_empty_buffers_measure_negative_infinity() {
        for level in [
            Level::of_i16(&[0; 100]),
            Level::of_i16(&[]),
            Level::of_f32(&[0.0; 100]),
            Level::of_f32(&[]),
        ] {
            assert_eq!(level.peak_dbfs, f32::NEG_INFINITY);
            assert_eq!(level.rms_dbfs, f32::NEG_INFINITY);
        }
    }
}
