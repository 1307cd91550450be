//! Sample rate conversion, built on rubato's synchronous FFT resampler.
//!
//! The gateway moves audio between three rates: 48 kHz (Opus, RFC 7587), 8 kHz (G.711) and
//! whatever a recorded file uses (often 44.1 kHz). Every pair of integer rates has a rational
//! ratio, so a synchronous resampler suffices; rubato's `FftFixedInOut` low-pass filters to the
//! lower of the two Nyquist frequencies and converts block by block.
//!
//! Two shapes are offered:
//!
//! - [`resample`] converts a whole buffer. Its output has `round(len × to / from)` samples and
//!   is time-aligned with the input: sample `n` of the output is at time `n / to_hz`, as sample
//!   `m` of the input is at `m / from_hz`. The resampler's own delay is trimmed off and its tail
//!   flushed out, so nothing is shifted or cut.
//! - [`StreamResampler`] converts a live stream frame by frame. It cannot see the future, so its
//!   output lags the input by [`StreamResampler::delay`] output samples. When the frame size is
//!   a multiple of `from_hz / gcd(from_hz, to_hz)` (960 samples at 48 kHz to 8 kHz, or 160
//!   samples back) every call returns exactly one output frame; otherwise the input is buffered
//!   and calls return a varying number of samples that add up to the right rate.
//!
//! Rates are limited to 1 Hz..=[`MAX_SAMPLE_RATE`] so that a rate read from a file header
//! cannot make the resampler allocate without bound.

use rubato::{FftFixedInOut, Resampler};

use crate::error::CodecError;
use crate::pcm;

/// Highest sample rate accepted, in Hz.
pub const MAX_SAMPLE_RATE: u32 = 768_000;

/// Block size asked of rubato for whole-buffer conversion; rubato rounds it up to a multiple
/// of the rate ratio's denominator.
const BLOCK_SAMPLES: usize = 1024;

/// Converts a whole buffer from `from_hz` to `to_hz`, time-aligned with the input.
///
/// Equal rates return a copy. An empty buffer returns an empty buffer.
pub fn resample(samples: &[f32], from_hz: u32, to_hz: u32) -> Result<Vec<f32>, CodecError> {
    check_rate(from_hz)?;
    check_rate(to_hz)?;
    if from_hz == to_hz || samples.is_empty() {
        return Ok(samples.to_vec());
    }

    let mut resampler = build(from_hz, to_hz, even_block(from_hz, to_hz))?;
    let block_in = resampler.input_frames_next();
    let delay = resampler.output_delay();
    let wanted = expected_len(samples.len(), from_hz, to_hz);

    let mut output = Vec::with_capacity(delay + wanted + resampler.output_frames_max());
    let mut block_out = resampler.output_buffer_allocate(true);
    let mut block = vec![0.0f32; block_in];
    let mut rest = samples;

    // After the input runs out, zeros push the resampler's delayed tail out.
    while output.len() < delay + wanted {
        let (head, tail) = rest.split_at(rest.len().min(block_in));
        let padding = std::iter::repeat(&0.0);
        for (slot, value) in block.iter_mut().zip(head.iter().chain(padding)) {
            *slot = *value;
        }
        rest = tail;

        let (_, produced) = resampler.process_into_buffer(&[&block], &mut block_out, None)?;
        let fresh = block_out
            .first()
            .and_then(|channel| channel.get(..produced))
            .unwrap_or_default();
        output.extend_from_slice(fresh);
    }

    Ok(output.into_iter().skip(delay).take(wanted).collect())
}

/// A resampler for a live stream of fixed-size `i16` frames.
///
/// Its output lags the input by [`delay`](Self::delay) output samples, to within half a sample
/// when the rubato block holds an odd number of rate-ratio units.
pub struct StreamResampler {
    /// `None` when the rates are equal and frames pass through untouched.
    inner: Option<FftFixedInOut<f32>>,
    frame_in: usize,
    block_in: usize,
    pending: Vec<f32>,
    block_out: Vec<Vec<f32>>,
}

impl std::fmt::Debug for StreamResampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamResampler")
            .field("frame_in", &self.frame_in)
            .field("block_in", &self.block_in)
            .field("pending", &self.pending.len())
            .finish_non_exhaustive()
    }
}

impl StreamResampler {
    /// Builds a resampler from `from_hz` to `to_hz` that takes frames of `frame_in` samples.
    pub fn new(from_hz: u32, to_hz: u32, frame_in: usize) -> Result<Self, CodecError> {
        check_rate(from_hz)?;
        check_rate(to_hz)?;
        if frame_in == 0 {
            return Err(CodecError::ZeroFrameSize);
        }

        let inner = if from_hz == to_hz {
            None
        } else {
            Some(build(from_hz, to_hz, frame_in)?)
        };
        let block_in = inner.as_ref().map_or(frame_in, |r| r.input_frames_next());
        let block_out = inner
            .as_ref()
            .map_or_else(Vec::new, |r| r.output_buffer_allocate(true));

        Ok(Self {
            inner,
            frame_in,
            block_in,
            pending: Vec::with_capacity(block_in + frame_in),
            block_out,
        })
    }

    /// Output samples produced per input frame, when that number is fixed; `None` when input is
    /// buffered and the output size varies from call to call.
    pub fn frame_out(&self) -> Option<usize> {
        match &self.inner {
            None => Some(self.frame_in),
            Some(r) if self.block_in == self.frame_in => Some(r.output_frames_next()),
            Some(_) => None,
        }
    }

    /// How far the output lags the input, in output samples: the resampler's filter delay plus,
    /// when frames are buffered, up to one block of waiting input.
    pub fn delay(&self) -> usize {
        self.inner.as_ref().map_or(0, |r| {
            let buffering = (self.block_in - self.frame_in.min(self.block_in))
                * r.output_frames_next()
                / self.block_in;
            r.output_delay() + buffering
        })
    }

    /// Converts one frame of exactly `frame_in` samples and returns the output that is ready.
    pub fn process(&mut self, frame: &[i16]) -> Result<Vec<i16>, CodecError> {
        if frame.len() != self.frame_in {
            return Err(CodecError::FrameLength {
                expected: self.frame_in,
                actual: frame.len(),
            });
        }
        let Some(resampler) = self.inner.as_mut() else {
            return Ok(frame.to_vec());
        };

        self.pending
            .extend(frame.iter().copied().map(pcm::i16_to_f32));
        let mut output = Vec::new();
        while let Some(block) = self.pending.get(..self.block_in) {
            let (_, produced) =
                resampler.process_into_buffer(&[block], &mut self.block_out, None)?;
            let fresh = self
                .block_out
                .first()
                .and_then(|channel| channel.get(..produced))
                .unwrap_or_default();
            output.extend(fresh.iter().copied().map(pcm::f32_to_i16));
            self.pending.drain(..self.block_in);
        }

        Ok(output)
    }
}

fn check_rate(hz: u32) -> Result<(), CodecError> {
    if (1..=MAX_SAMPLE_RATE).contains(&hz) {
        Ok(())
    } else {
        Err(CodecError::SampleRate(hz))
    }
}

fn build(from_hz: u32, to_hz: u32, block_in: usize) -> Result<FftFixedInOut<f32>, CodecError> {
    FftFixedInOut::new(from_hz as usize, to_hz as usize, block_in, 1).map_err(|source| {
        CodecError::ResamplerSetup {
            from_hz,
            to_hz,
            source,
        }
    })
}

/// A block size near [`BLOCK_SAMPLES`] that rubato keeps as it is and that makes the filter
/// delay a whole number of output samples.
///
/// rubato's blocks are whole multiples of `from / gcd` input samples, and its filter is centred
/// on the middle sample of the block. With an even multiple, the middle of both the input and
/// the output block falls on a sample, so [`Resampler::output_delay`] is exact.
fn even_block(from_hz: u32, to_hz: u32) -> usize {
    let unit = (from_hz / gcd(from_hz, to_hz)) as usize;
    let units = BLOCK_SAMPLES.div_ceil(unit);
    (units + units % 2) * unit
}

fn gcd(mut a: u32, mut b: u32) -> u32 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// `round(len × to / from)`, exact for any buffer that fits in memory.
fn expected_len(len: usize, from_hz: u32, to_hz: u32) -> usize {
    let from = u128::from(from_hz);
    ((len as u128 * u128::from(to_hz) + from / 2) / from) as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::level::Level;
    use crate::test_support::frequency_of;
    use crate::tones;
    use std::time::Duration;

    /// Samples at either end left out of comparisons, where the filter sees the tone switch on
    /// or off.
    fn middle(samples: &[f32], rate: u32) -> &[f32] {
        let edge = rate as usize / 50;
        samples
            .get(edge..samples.len().saturating_sub(edge))
            .unwrap_or_default()
    }

    #[test]
    fn a_tone_resampled_from_44_1_to_48_khz_matches_the_tone_made_at_48_khz()
    -> Result<(), CodecError> {
        let input = tones::sine(1_000.0, -6.0, Duration::from_secs(1), 44_100);
        let output = resample(&input, 44_100, 48_000)?;
        assert_eq!(output.len(), 48_000);

        // Same frequency, same level and the same phase at every instant: any residual delay
        // would show up as a large difference.
        let ideal = tones::sine(1_000.0, -6.0, Duration::from_secs(1), 48_000);
        let worst = middle(&output, 48_000)
            .iter()
            .zip(middle(&ideal, 48_000))
            .fold(0.0f32, |worst, (a, b)| worst.max((a - b).abs()));
        assert!(
            worst < 0.005,
            "largest deviation from the ideal tone {worst}"
        );

        let frequency = frequency_of(middle(&output, 48_000), 48_000);
        let level = Level::of_f32(middle(&output, 48_000));
        println!(
            "44.1 -> 48 kHz: {frequency:.2} Hz, {:.3} dBFS RMS",
            level.rms_dbfs
        );
        assert!((frequency - 1_000.0).abs() < 0.5);
        assert!((level.rms_dbfs - (-9.03)).abs() < 0.05);
        Ok(())
    }

    #[test]
    fn a_tone_survives_48_to_8_and_back_to_48_khz() -> Result<(), CodecError> {
        let input = tones::sine(1_000.0, -6.0, Duration::from_secs(1), 48_000);
        let narrow = resample(&input, 48_000, 8_000)?;
        assert_eq!(narrow.len(), 8_000);
        let output = resample(&narrow, 8_000, 48_000)?;
        assert_eq!(output.len(), 48_000);

        let worst = middle(&output, 48_000)
            .iter()
            .zip(middle(&input, 48_000))
            .fold(0.0f32, |worst, (a, b)| worst.max((a - b).abs()));
        let frequency = frequency_of(middle(&output, 48_000), 48_000);
        let level = Level::of_f32(middle(&output, 48_000));
        println!(
            "48 -> 8 -> 48 kHz: {frequency:.2} Hz, {:.3} dBFS RMS, worst deviation {worst:.5}",
            level.rms_dbfs
        );
        assert!(worst < 0.01);
        assert!((frequency - 1_000.0).abs() < 0.5);
        assert!((level.rms_dbfs - (-9.03)).abs() < 0.05);
        Ok(())
    }

    #[test]
    fn an_impulse_stays_at_the_same_instant() -> Result<(), CodecError> {
        // 10 ms into a 48 kHz buffer is sample 80 at 8 kHz.
        let mut input = vec![0.0f32; 4_800];
        if let Some(s) = input.get_mut(480) {
            *s = 1.0;
        }
        let output = resample(&input, 48_000, 8_000)?;
        let loudest = output
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.abs().total_cmp(&b.1.abs()))
            .map(|(i, _)| i);
        assert_eq!(loudest, Some(80));
        Ok(())
    }

    #[test]
    fn output_length_follows_the_rate_ratio() -> Result<(), CodecError> {
        for (len, from, to, expected) in [
            (1, 48_000, 8_000, 0),
            (7, 48_000, 8_000, 1),
            (44_100, 44_100, 48_000, 48_000),
            (12_345, 44_100, 16_000, 4_479),
            (100, 8_000, 48_000, 600),
            (0, 8_000, 48_000, 0),
        ] {
            let output = resample(&vec![0.1; len], from, to)?;
            assert_eq!(output.len(), expected, "{len} samples {from} -> {to}");
        }
        Ok(())
    }

    #[test]
    fn equal_rates_return_the_input_unchanged() -> Result<(), CodecError> {
        let input = [0.1, -0.2, 0.3];
        assert_eq!(resample(&input, 16_000, 16_000)?, input);
        Ok(())
    }

    #[test]
    fn rates_outside_the_supported_range_are_refused() {
        assert!(matches!(
            resample(&[0.0], 0, 8_000),
            Err(CodecError::SampleRate(0))
        ));
        assert!(matches!(
            StreamResampler::new(8_000, u32::MAX, 160),
            Err(CodecError::SampleRate(u32::MAX))
        ));
        assert!(matches!(
            StreamResampler::new(8_000, 48_000, 0),
            Err(CodecError::ZeroFrameSize)
        ));
    }

    #[test]
    fn a_20_ms_frame_at_48_khz_becomes_a_20_ms_frame_at_8_khz_and_back() -> Result<(), CodecError> {
        let mut down = StreamResampler::new(48_000, 8_000, 960)?;
        let mut up = StreamResampler::new(8_000, 48_000, 160)?;
        assert_eq!(down.frame_out(), Some(160));
        assert_eq!(up.frame_out(), Some(960));

        let tone =
            crate::pcm::f32_to_i16_vec(&tones::sine(1_000.0, -6.0, Duration::from_secs(1), 48_000));
        let mut output = Vec::new();
        for frame in tone.chunks_exact(960) {
            let narrow = down.process(frame)?;
            assert_eq!(narrow.len(), 160);
            let wide = up.process(&narrow)?;
            assert_eq!(wide.len(), 960);
            output.extend(wide);
        }

        let delay = down.delay() * 6 + up.delay();
        println!("48 -> 8 -> 48 kHz stream delay: {delay} samples at 48 kHz");
        let output = crate::pcm::i16_to_f32_vec(output.get(delay..).unwrap_or_default());
        let frequency = frequency_of(middle(&output, 48_000), 48_000);
        let level = Level::of_f32(middle(&output, 48_000));
        assert!((frequency - 1_000.0).abs() < 0.5, "{frequency}");
        assert!((level.rms_dbfs - (-9.03)).abs() < 0.1, "{level:?}");

        // The stated delay is the real one: the stream lines up with the input tone.
        let input = crate::pcm::i16_to_f32_vec(&tone);
        let worst = middle(&output, 48_000)
            .iter()
            .zip(middle(&input, 48_000))
            .fold(0.0f32, |worst, (a, b)| worst.max((a - b).abs()));
        assert!(worst < 0.01, "{worst}");
        Ok(())
    }

    #[test]
    fn a_frame_size_that_does_not_divide_the_ratio_is_buffered() -> Result<(), CodecError> {
        let mut resampler = StreamResampler::new(44_100, 48_000, 1_000)?;
        assert_eq!(resampler.frame_out(), None);

        let mut total = 0;
        for _ in 0..441 {
            total += resampler.process(&[100; 1_000])?.len();
        }
        // 441 000 input samples are 480 000 output samples, less at most one waiting block.
        assert!((480_000 - 1_120..=480_000).contains(&total), "{total}");
        Ok(())
    }

    #[test]
    fn a_frame_of_the_wrong_size_is_refused() -> Result<(), CodecError> {
        let mut resampler = StreamResampler::new(48_000, 8_000, 960)?;
        assert!(matches!(
            resampler.process(&[0; 959]),
            Err(CodecError::FrameLength {
                expected: 960,
                actual: 959
            })
        ));
        Ok(())
    }

    #[test]
    fn equal_rates_pass_frames_through() -> Result<(), CodecError> {
        let mut resampler = StreamResampler::new(8_000, 8_000, 3)?;
        assert_eq!(resampler.process(&[1, 2, 3])?, [1, 2, 3]);
        assert_eq!(resampler.delay(), 0);
        Ok(())
    }
}
