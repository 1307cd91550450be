//! The district's spoken programme, as 16-bit samples at 48 kHz.

use std::path::PathBuf;
use std::time::Duration;

use codecs::AudioFileError;
use codecs::pcm::f32_to_i16;

/// Sample rate of every programme.
pub const SAMPLE_RATE: u32 = 48_000;

/// Builds the programme's samples at 48 kHz (see [`codecs::programme::assemble`]).
pub fn assemble(files: &[PathBuf], gap: Duration, repeat: u32) -> Result<Vec<i16>, AudioFileError> {
    let samples = codecs::programme::assemble(files, gap, repeat, SAMPLE_RATE)?;
    Ok(samples.into_iter().map(f32_to_i16).collect())
}
