//! A spoken programme assembled from audio files: each file in order with a gap of
//! silence after it, the whole repeated, mixed to mono and resampled to one rate.
//!
//! The sending node and the tools that check what was heard build the programme with
//! this one function, so both sides hold the same reference.

use std::path::PathBuf;
use std::time::Duration;

use crate::audio_file::read_audio;
use crate::error::AudioFileError;

/// Builds the programme at `sample_rate`, samples as `f32` in [-1, 1].
pub fn assemble(
    files: &[PathBuf],
    gap: Duration,
    repeat: u32,
    sample_rate: u32,
) -> Result<Vec<f32>, AudioFileError> {
    let gap_samples = (gap.as_secs_f64() * f64::from(sample_rate)) as usize;
    let mut once = Vec::new();
    for file in files {
        let audio = read_audio(file)?.to_rate(sample_rate)?;
        once.extend_from_slice(&audio.samples);
        once.extend(std::iter::repeat_n(0.0f32, gap_samples));
    }
    let mut programme = Vec::with_capacity(once.len() * repeat.max(1) as usize);
    for _ in 0..repeat.max(1) {
        programme.extend_from_slice(&once);
    }
    Ok(programme)
}
