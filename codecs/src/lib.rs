//! Audio codecs and signal processing for the emcomm gateway.
//!
//! Everything here is plain computation on buffers in memory, except [`audio_file`], which
//! reads and writes files. Nothing spawns threads, keeps time or logs.
//!
//! The gateway's audio moves through these pieces in one direction or the other:
//!
//! 1. Audio arrives as packets or a file: Opus ([`opus`], RFC 6716/7587), G.711 µ-law or A-law
//!    ([`g711`]), L16 ([`pcm`], RFC 3551), or a WAV/FLAC recording ([`audio_file`]).
//! 2. It is decoded to linear samples and, where the rates differ, converted with
//!    [`resample`](mod@resample): Opus runs at 48 kHz, G.711 at 8 kHz.
//! 3. Its [`level`] is measured in dBFS; [`tones`] makes test signals of a known level.
//! 4. At the far end of a path, [`fidelity`] compares what came out with what went in.
//!
//! Alerts open with an [`attention`] signal rendered here: a chime or one of the civil
//! air-defence sirens.
//!
//! Conventions shared by every module: `i16` samples are full scale at 32768 and `f32` samples
//! at 1.0 (see [`pcm`]); mono throughout; errors are [`CodecError`] and [`AudioFileError`].

#![forbid(unsafe_code)]

pub mod attention;
pub mod audio_file;
pub mod dtmf;
pub mod error;
pub mod fidelity;
pub mod g711;
pub mod level;
pub mod opus;
pub mod pcm;
pub mod programme;
pub mod resample;
pub mod tones;

#[cfg(test)]
mod test_support;

pub use audio_file::{Audio, WavSink, read_audio, write_wav_i16};
pub use error::{AudioFileError, CodecError};
pub use fidelity::{FidelityReport, align, score};
pub use g711::G711Law;
pub use level::Level;
pub use opus::{OpusDecoder, OpusEncoder};
pub use resample::{StreamResampler, resample};
