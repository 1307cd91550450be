//! Test signals: sine tones at a given level.
//!
//! The level is the *peak* amplitude in dBFS, so a tone at 0 dBFS swings between −1.0 and
//! 1.0 and measures −3.01 dBFS RMS with [`crate::level::Level`]. The phase starts at 0, and
//! the tone has `round(duration × sample_rate)` samples.

use std::f64::consts::TAU;
use std::time::Duration;

/// Generates a sine of `frequency_hz` with a peak of `amplitude_dbfs` lasting `duration` at
/// `sample_rate` Hz. A sample rate of 0 gives an empty buffer.
pub fn sine(
    frequency_hz: f32,
    amplitude_dbfs: f32,
    duration: Duration,
    sample_rate: u32,
) -> Vec<f32> {
    if sample_rate == 0 {
        return Vec::new();
    }

    let amplitude = 10f64.powf(f64::from(amplitude_dbfs) / 20.0);
    let len = (duration.as_secs_f64() * f64::from(sample_rate)).round() as usize;
    let phase_step = TAU * f64::from(frequency_hz) / f64::from(sample_rate);

    // The phase is computed per sample, not accumulated, so long tones do not drift.
    (0..len)
        .map(|n| (amplitude * (phase_step * n as f64).sin()) as f32)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tone_has_the_requested_length_and_peak() {
        let tone = sine(1_000.0, -6.0, Duration::from_millis(20), 48_000);
        assert_eq!(tone.len(), 960);
        let peak = tone.iter().fold(0.0f32, |p, s| p.max(s.abs()));
        assert!((peak - 0.501).abs() < 0.001, "{peak}");
    }

    #[test]
    fn a_tone_starts_at_zero_phase_and_repeats_at_its_period() {
        let tone = sine(1_000.0, 0.0, Duration::from_millis(3), 8_000);
        assert_eq!(tone.len(), 24);
        assert_eq!(tone.first(), Some(&0.0));
        for (a, b) in tone.iter().zip(tone.iter().skip(8)) {
            assert!((a - b).abs() < 1e-5);
        }
    }

    #[test]
    fn a_zero_sample_rate_gives_no_samples() {
        assert!(sine(1_000.0, 0.0, Duration::from_secs(1), 0).is_empty());
    }
}
