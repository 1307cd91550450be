//! An objective measure of how faithfully a received recording reproduces its source.
//!
//! The gateway's end-to-end check plays a known recording into one end of a path (radio,
//! satellite bearer, loudspeaker and microphone) and records what comes out of the other. This
//! module compares the two and reports numbers a test can threshold. It is not a perceptual
//! quality model like ITU-T P.862 (PESQ) or P.863 (POLQA): it answers "is this the same speech,
//! all of it, with its spectral shape over time intact?", which is what a pass/fail check of a
//! voice path needs.
//!
//! # Method
//!
//! 1. **Alignment.** [`align`] finds how far the received (degraded) signal lags the reference
//!    by FFT cross-correlation, within a bound on the lag (two seconds in [`score`]).
//! 2. **Spectral envelopes.** Both signals are cut into 20 ms frames every 10 ms, each frame
//!    Hann-windowed and transformed. The power spectrum is summed into [`BANDS`] bands equally
//!    spaced on the mel scale from 100 Hz to 7 kHz (or to the Nyquist frequency, if lower), and
//!    each band energy is taken as a logarithm, floored at [`ENVELOPE_RANGE_DB`] below the
//!    loudest band of that signal.
//! 3. **Active and present frames.** A reference frame is *active* when its mean power is
//!    within [`ACTIVE_RANGE_DB`] of the reference's loudest frame. The degraded frame aligned
//!    with it is *present* unless it is more than [`PRESENT_RANGE_DB`] weaker than the reference
//!    frame, both measured from their own signal's loudest frame (so the overall gain of the
//!    path does not matter), or below [`PRESENT_FLOOR_DBFS`].
//! 4. **Scores.** `coverage` is the fraction of active reference frames whose degraded frame is
//!    present: a stream that stopped halfway scores about one half. Over the frames that are
//!    both active and present, each signal's mean log band energies (its long-term spectrum)
//!    are subtracted from its frames, the Pearson correlation of the two band vectors is taken
//!    frame by frame, and `envelope_correlation` is the mean of those correlations.
//!
//! Subtracting the long-term spectrum means a fixed equalisation of the path (a radio's
//! pre-emphasis, a small loudspeaker's missing bass) does not count against it, while anything
//! that changes from frame to frame does: different words, noise filling the pauses, dropouts,
//! garbled codec frames. It also keeps two different stretches of speech, which share the
//! spectral tilt of the human voice, from looking alike (without it, the two speech fixtures of
//! this crate correlate at about 0.55; with it, below 0.3). The floor on band energies keeps
//! detail far below the speech from deciding the score.
//!
//! Both signals must be at the same sample rate; resample first with [`resample`](mod@crate::resample).

use std::ops::Range;

use rustfft::num_complex::Complex;
use rustfft::{Fft, FftPlanner};

/// Frame length of the envelope analysis, in seconds.
pub const FRAME_SECONDS: f64 = 0.020;

/// Step between analysis frames, in seconds.
pub const HOP_SECONDS: f64 = 0.010;

/// Number of mel-spaced bands.
pub const BANDS: usize = 20;

/// Lower edge of the lowest band, in Hz.
pub const LOW_EDGE_HZ: f64 = 100.0;

/// Upper edge of the highest band, in Hz, unless the Nyquist frequency is lower.
pub const HIGH_EDGE_HZ: f64 = 7_000.0;

/// A reference frame counts as active within this many dB of the loudest reference frame.
pub const ACTIVE_RANGE_DB: f64 = 40.0;

/// A degraded frame counts as present unless it is more than this many dB weaker than the
/// reference frame, each taken relative to its own signal's loudest frame.
pub const PRESENT_RANGE_DB: f64 = 30.0;

/// Band energies more than this many dB below the loudest band of their signal are raised to
/// that floor before correlating, so that detail far below the speech (the noise floor of a
/// radio channel, the quantisation noise of a codec in the pauses) does not decide the score.
pub const ENVELOPE_RANGE_DB: f64 = 50.0;

/// A degraded frame quieter than this (mean power, dBFS) is never present.
pub const PRESENT_FLOOR_DBFS: f64 = -90.0;

/// Largest lag [`score`] searches for, in seconds.
pub const MAX_LAG_SECONDS: f64 = 2.0;

/// Energy added to each band before taking the logarithm, relative to full scale, so that
/// digital silence gives a finite (very low) value rather than minus infinity.
const BAND_FLOOR: f64 = 1e-12;

/// The result of comparing a degraded recording with its reference.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FidelityReport {
    /// How many samples the degraded signal lags the reference (negative: it leads). Zero when
    /// either signal is silent.
    pub offset_samples: isize,
    /// Mean per-frame correlation of the spectral envelopes, −1 to 1 (1: identical shape),
    /// over the active reference frames where the degraded signal is present; 0 if there are
    /// none.
    pub envelope_correlation: f32,
    /// Fraction of the active reference frames where the degraded signal is present, 0 to 1.
    pub coverage: f32,
    /// Number of active reference frames.
    pub active_frames: usize,
}

impl std::fmt::Display for FidelityReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "envelope correlation {:.3}, coverage {:.3} of {} active frames, offset {} samples",
            self.envelope_correlation, self.coverage, self.active_frames, self.offset_samples
        )
    }
}

/// Finds the lag of `degraded` behind `reference` in samples, searching lags up to
/// `max_lag_samples` either way.
///
/// The lag maximises the magnitude of the cross-correlation, so a path that inverts polarity
/// aligns too. Returns `None` when either signal is empty or silent.
pub fn align(reference: &[f32], degraded: &[f32], max_lag_samples: usize) -> Option<isize> {
    if !has_energy(reference) || !has_energy(degraded) {
        return None;
    }

    // Long enough that the circular correlation never wraps over a lag of interest.
    let len = (reference.len() + degraded.len()).next_power_of_two();
    let mut planner = FftPlanner::<f32>::new();
    let forward = planner.plan_fft_forward(len);
    let inverse = planner.plan_fft_inverse(len);

    let mut reference_spectrum = padded(reference, len);
    let mut correlation = padded(degraded, len);
    forward.process(&mut reference_spectrum);
    forward.process(&mut correlation);
    for (d, r) in correlation.iter_mut().zip(&reference_spectrum) {
        *d *= r.conj();
    }
    inverse.process(&mut correlation);

    // Index k holds lag k for k >= 0 and lag k - len for the upper half.
    let max_lag = max_lag_samples.min(len / 2 - 1) as isize;
    (-max_lag..=max_lag)
        .filter_map(|lag| {
            let index = if lag >= 0 { lag } else { lag + len as isize };
            correlation
                .get(index as usize)
                .map(|value| (lag, value.re.abs()))
        })
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(lag, _)| lag)
}

/// Scores `degraded` against `reference`, both at `sample_rate`, searching lags up to
/// [`MAX_LAG_SECONDS`].
pub fn score(reference: &[f32], degraded: &[f32], sample_rate: u32) -> FidelityReport {
    let max_lag = (MAX_LAG_SECONDS * f64::from(sample_rate)) as usize;
    score_with_max_lag(reference, degraded, sample_rate, max_lag)
}

/// [`score`] with the lag search bounded by `max_lag_samples` instead.
pub fn score_with_max_lag(
    reference: &[f32],
    degraded: &[f32],
    sample_rate: u32,
    max_lag_samples: usize,
) -> FidelityReport {
    let offset = align(reference, degraded, max_lag_samples).unwrap_or(0);
    let mut report = FidelityReport {
        offset_samples: offset,
        envelope_correlation: 0.0,
        coverage: 0.0,
        active_frames: 0,
    };
    let Some(mut analyser) = Analyser::new(sample_rate) else {
        return report;
    };

    let count = analyser.frame_count(reference.len());
    let reference_frames = analyser.frames(reference, 0, count);
    let degraded_frames = analyser.frames(degraded, offset, count);
    let loudest_reference = loudest(&reference_frames);
    let own_count = analyser.frame_count(degraded.len());
    let own_frames = analyser.frames(degraded, 0, own_count);
    let loudest_degraded = loudest(&own_frames);
    let reference_floor = loudest_band(&reference_frames) - ENVELOPE_RANGE_DB / 10.0;
    let degraded_floor = loudest_band(&own_frames) - ENVELOPE_RANGE_DB / 10.0;

    // Pairs of (reference, degraded) envelopes where the reference is active and the degraded
    // signal present.
    let mut pairs = Vec::new();
    for (r, d) in reference_frames.iter().zip(&degraded_frames) {
        if r.power_db < loudest_reference - ACTIVE_RANGE_DB || !r.power_db.is_finite() {
            continue;
        }
        report.active_frames += 1;
        // How far the degraded frame falls short of the level the reference frame implies,
        // once each signal is taken relative to its own loudest frame (the path's gain).
        let shortfall = (r.power_db - loudest_reference) - (d.power_db - loudest_degraded);
        if shortfall <= PRESENT_RANGE_DB && d.power_db >= PRESENT_FLOOR_DBFS {
            pairs.push((
                floored(&r.bands, reference_floor),
                floored(&d.bands, degraded_floor),
            ));
        }
    }
    if report.active_frames == 0 || pairs.is_empty() {
        return report;
    }
    report.coverage = pairs.len() as f32 / report.active_frames as f32;

    let reference_mean = band_mean(pairs.iter().map(|pair| &pair.0));
    let degraded_mean = band_mean(pairs.iter().map(|pair| &pair.1));
    let total: f64 = pairs
        .iter()
        .map(|(r, d)| pearson(&centred(r, &reference_mean), &centred(d, &degraded_mean)))
        .sum();
    report.envelope_correlation = (total / pairs.len() as f64) as f32;
    report
}

/// One analysis frame: its mean power and its log band energies.
struct Frame {
    /// Mean power of the frame, dBFS (−∞ for digital silence).
    power_db: f64,
    /// log10 of each band's energy.
    bands: Vec<f64>,
}

/// Frame-by-frame spectral envelope analysis at one sample rate.
struct Analyser {
    frame_len: usize,
    hop: usize,
    window: Vec<f32>,
    fft: std::sync::Arc<dyn Fft<f32>>,
    buffer: Vec<Complex<f32>>,
    /// FFT bins summed into each band; bands that no bin falls into are left out.
    bands: Vec<Range<usize>>,
    /// Scale that makes band energies relative to a full-scale signal.
    scale: f64,
}

impl Analyser {
    /// `None` when the rate is too low for a 20 ms frame of more than a few samples or for the
    /// lowest band to lie below the Nyquist frequency.
    fn new(sample_rate: u32) -> Option<Self> {
        let rate = f64::from(sample_rate);
        let frame_len = (FRAME_SECONDS * rate).round() as usize;
        let hop = (HOP_SECONDS * rate).round() as usize;
        let high = HIGH_EDGE_HZ.min(rate / 2.0);
        if frame_len < 8 || hop == 0 || high <= LOW_EDGE_HZ {
            return None;
        }

        let fft_len = frame_len.next_power_of_two().max(512);
        let window: Vec<f32> = (0..frame_len)
            .map(|n| {
                let phase = std::f64::consts::TAU * n as f64 / frame_len as f64;
                (0.5 - 0.5 * phase.cos()) as f32
            })
            .collect();
        let window_energy: f64 = window.iter().map(|w| f64::from(*w).powi(2)).sum();

        let bin_hz = rate / fft_len as f64;
        let (low_mel, high_mel) = (mel(LOW_EDGE_HZ), mel(high));
        let edge_bin = |band: usize| {
            let hz = hz_of_mel(low_mel + (high_mel - low_mel) * band as f64 / BANDS as f64);
            (hz / bin_hz).ceil() as usize
        };
        let bands: Vec<Range<usize>> = (0..BANDS)
            .map(|band| edge_bin(band)..edge_bin(band + 1).min(fft_len / 2 + 1))
            .filter(|range| !range.is_empty())
            .collect();
        if bands.len() < 2 {
            return None;
        }

        Some(Self {
            frame_len,
            hop,
            window,
            fft: FftPlanner::new().plan_fft_forward(fft_len),
            buffer: vec![Complex::default(); fft_len],
            bands,
            scale: 1.0 / (window_energy * fft_len as f64),
        })
    }

    /// Number of whole frames in a signal of `len` samples.
    fn frame_count(&self, len: usize) -> usize {
        len.checked_sub(self.frame_len)
            .map_or(0, |rest| rest / self.hop + 1)
    }

    /// Analyses `count` frames of `signal` on the hop grid, shifted later by `offset` samples.
    /// Samples outside the signal count as silence.
    fn frames(&mut self, signal: &[f32], offset: isize, count: usize) -> Vec<Frame> {
        (0..count)
            .map(|index| self.frame(signal, (index * self.hop) as isize + offset))
            .collect()
    }

    fn frame(&mut self, signal: &[f32], start: isize) -> Frame {
        let sample = |n: usize| {
            start
                .checked_add(n as isize)
                .and_then(|at| usize::try_from(at).ok())
                .and_then(|at| signal.get(at))
                .copied()
                .unwrap_or(0.0)
        };

        let mut power = 0.0f64;
        self.buffer.fill(Complex::default());
        for (n, (slot, w)) in self.buffer.iter_mut().zip(&self.window).enumerate() {
            let x = sample(n);
            power += f64::from(x).powi(2);
            *slot = Complex::new(x * w, 0.0);
        }
        self.fft.process(&mut self.buffer);

        let bands = self
            .bands
            .iter()
            .map(|bins| {
                let energy: f64 = self
                    .buffer
                    .get(bins.clone())
                    .unwrap_or_default()
                    .iter()
                    .map(|c| f64::from(c.norm_sqr()))
                    .sum();
                (energy * self.scale + BAND_FLOOR).log10()
            })
            .collect();

        Frame {
            power_db: 10.0 * (power / self.frame_len as f64).log10(),
            bands,
        }
    }
}

fn mel(hz: f64) -> f64 {
    2595.0 * (1.0 + hz / 700.0).log10()
}

fn hz_of_mel(mel: f64) -> f64 {
    700.0 * (10f64.powf(mel / 2595.0) - 1.0)
}

fn has_energy(signal: &[f32]) -> bool {
    signal.iter().any(|s| *s != 0.0 && s.is_finite())
}

fn padded(signal: &[f32], len: usize) -> Vec<Complex<f32>> {
    let mut buffer: Vec<Complex<f32>> = signal
        .iter()
        .map(|s| Complex::new(if s.is_finite() { *s } else { 0.0 }, 0.0))
        .collect();
    buffer.resize(len, Complex::default());
    buffer
}

fn loudest(frames: &[Frame]) -> f64 {
    frames
        .iter()
        .map(|frame| frame.power_db)
        .fold(f64::NEG_INFINITY, f64::max)
}

/// The highest log band energy in any frame.
fn loudest_band(frames: &[Frame]) -> f64 {
    frames
        .iter()
        .flat_map(|frame| frame.bands.iter().copied())
        .fold(f64::NEG_INFINITY, f64::max)
}

fn floored(bands: &[f64], floor: f64) -> Vec<f64> {
    bands.iter().map(|value| value.max(floor)).collect()
}

fn band_mean<'a>(frames: impl Iterator<Item = &'a Vec<f64>>) -> Vec<f64> {
    let mut sum: Vec<f64> = Vec::new();
    let mut count = 0usize;
    for bands in frames {
        if sum.is_empty() {
            sum = vec![0.0; bands.len()];
        }
        for (total, value) in sum.iter_mut().zip(bands) {
            *total += value;
        }
        count += 1;
    }
    let count = count.max(1) as f64;
    sum.into_iter().map(|total| total / count).collect()
}

fn centred(bands: &[f64], mean: &[f64]) -> Vec<f64> {
    bands
        .iter()
        .zip(mean)
        .map(|(value, mean)| value - mean)
        .collect()
}

/// Pearson correlation of two sequences (over the length of the shorter); 0 when either does
/// not vary.
fn pearson(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len().min(b.len());
    if n < 2 {
        return 0.0;
    }
    let (a, b) = (a.iter().take(n), b.iter().take(n));
    let mean_a = a.clone().sum::<f64>() / n as f64;
    let mean_b = b.clone().sum::<f64>() / n as f64;

    let (mut cov, mut var_a, mut var_b) = (0.0, 0.0, 0.0);
    for (x, y) in a.zip(b) {
        let (dx, dy) = (x - mean_a, y - mean_b);
        cov += dx * dy;
        var_a += dx * dx;
        var_b += dy * dy;
    }
    if var_a <= f64::EPSILON || var_b <= f64::EPSILON {
        return 0.0;
    }
    (cov / (var_a * var_b).sqrt()).clamp(-1.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tones;
    use std::time::Duration;

    fn chirpy(rate: u32) -> Vec<f32> {
        // A sequence of tones gives the envelope something to follow from frame to frame.
        [300.0, 800.0, 1_500.0, 500.0, 2_500.0, 1_000.0]
            .iter()
            .flat_map(|&hz| tones::sine(hz, -12.0, Duration::from_millis(150), rate))
            .collect()
    }

    #[test]
    fn alignment_finds_a_known_delay_either_way() {
        let reference = chirpy(8_000);
        let mut late = vec![0.0; 321];
        late.extend_from_slice(&reference);
        assert_eq!(align(&reference, &late, 4_000), Some(321));
        assert_eq!(align(&late, &reference, 4_000), Some(-321));
    }

    #[test]
    fn alignment_of_an_inverted_signal_still_finds_the_delay() {
        let reference = chirpy(8_000);
        let mut late = vec![0.0; 50];
        late.extend(reference.iter().map(|s| -s));
        assert_eq!(align(&reference, &late, 400), Some(50));
    }

    #[test]
    fn alignment_of_silence_is_none() {
        assert_eq!(align(&chirpy(8_000), &[0.0; 1_000], 100), None);
        assert_eq!(align(&[], &chirpy(8_000), 100), None);
    }

    #[test]
    fn an_identical_signal_scores_one() {
        let reference = chirpy(16_000);
        let report = score(&reference, &reference, 16_000);
        assert_eq!(report.offset_samples, 0);
        assert!(report.envelope_correlation > 0.999, "{report}");
        assert_eq!(report.coverage, 1.0);
    }

    #[test]
    fn a_rate_too_low_for_the_analysis_gives_an_empty_report() {
        let report = score(&[0.5; 100], &[0.5; 100], 100);
        assert_eq!(report.active_frames, 0);
        assert_eq!(report.envelope_correlation, 0.0);
    }

    #[test]
    fn bands_are_mel_spaced_and_stop_at_7_khz() {
        let analyser = Analyser::new(48_000);
        let Some(analyser) = analyser else {
            panic!("48 kHz must be analysable");
        };
        assert_eq!(analyser.bands.len(), BANDS);
        let bin_hz = 48_000.0 / 1_024.0;
        let first = analyser.bands.first().map(|b| b.start as f64 * bin_hz);
        let last = analyser.bands.last().map(|b| b.end as f64 * bin_hz);
        assert!(first.is_some_and(|hz| (100.0..150.0).contains(&hz)));
        assert!(last.is_some_and(|hz| (7_000.0..7_050.0).contains(&hz)));
        let widths: Vec<usize> = analyser.bands.iter().map(ExactSizeIterator::len).collect();
        assert!(widths.first() < widths.last(), "{widths:?}");
    }
}
