//! Reading and writing audio files: the only module of the crate that touches the file system.
//!
//! # Reading
//!
//! [`read_audio`] reads WAV (RIFF WAVE, including `WAVE_FORMAT_EXTENSIBLE`) and FLAC with
//! symphonia, at any sample rate, with 8-, 16-, 24- or 32-bit integer or 32-bit float samples
//! and any number of channels. The result is always mono [`Audio`] in floats at full scale
//! ±1.0 (see [`crate::pcm`]); several channels are mixed down by averaging. The sample rate is
//! kept as the file states it: convert with [`Audio::to_rate`].
//!
//! A file that is cut short is read up to where it ends. Anything else that goes wrong is an
//! [`AudioFileError`] naming the file and, for a bad packet, its index in the track. That
//! includes frames the demuxer skips on its own (symphonia drops a FLAC frame whose CRC fails
//! and carries on with the next): they show up as a gap in the packet timestamps and are
//! reported as [`AudioFileError::MissingAudio`], so audio is never silently shortened in the
//! middle.
//!
//! # Writing
//!
//! Recordings are written as 16-bit mono WAV with hound: whole, with [`write_wav_i16`], or
//! frame by frame as they arrive, with [`WavSink`]. A WAV header states the length of the
//! data, so a file is only complete once [`WavSink::finish`] has returned.

use std::fs::File;
use std::io::{BufWriter, ErrorKind};
use std::path::{Path, PathBuf};
use std::time::Duration;

use symphonia::core::audio::SampleBuffer;
use symphonia::core::codecs::{CODEC_TYPE_NULL, DecoderOptions};
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::FormatOptions;
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::MetadataOptions;
use symphonia::core::probe::Hint;

use crate::error::{AudioFileError, CodecError};
use crate::pcm;
use crate::resample;

/// Mono audio in memory.
#[derive(Debug, Clone, PartialEq)]
pub struct Audio {
    /// Samples per second, in Hz.
    pub sample_rate: u32,
    /// Mono samples at full scale ±1.0.
    pub samples: Vec<f32>,
}

impl Audio {
    /// How long the audio lasts. Zero for a sample rate of zero.
    pub fn duration(&self) -> Duration {
        if self.sample_rate == 0 {
            return Duration::ZERO;
        }
        Duration::from_secs_f64(self.samples.len() as f64 / f64::from(self.sample_rate))
    }

    /// Converts to `hz`, keeping the audio time-aligned (see [`resample::resample`]).
    pub fn to_rate(self, hz: u32) -> Result<Audio, CodecError> {
        if hz == self.sample_rate {
            return Ok(self);
        }
        let samples = resample::resample(&self.samples, self.sample_rate, hz)?;
        Ok(Audio {
            sample_rate: hz,
            samples,
        })
    }

    /// The samples as `i16`, rounded and clipped.
    pub fn to_i16(&self) -> Vec<i16> {
        pcm::f32_to_i16_vec(&self.samples)
    }
}

/// Reads a WAV or FLAC file into mono [`Audio`] at the file's own sample rate.
pub fn read_audio(path: impl AsRef<Path>) -> Result<Audio, AudioFileError> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|source| io_error(path, source))?;
    read_audio_bytes(bytes, path)
}

/// Reads a WAV or FLAC file held in memory; `name` stands for it in errors and its
/// extension, if any, hints at the format.
pub fn read_audio_bytes(bytes: Vec<u8>, name: &Path) -> Result<Audio, AudioFileError> {
    // The probe would otherwise search the whole input for any format's marker and
    // hand whatever follows to that format's reader.
    let bytes = if bytes.starts_with(b"fLaC") {
        flac_without_metadata(bytes)
    } else if bytes.starts_with(b"RIFF") && bytes.get(8..12) == Some(b"WAVE") {
        wav_without_metadata(bytes)
    } else {
        return Err(AudioFileError::NotWavOrFlac {
            path: name.to_owned(),
        });
    };
    // symphonia 0.5's FLAC decoder can overflow an addition on crafted input, which
    // panics when overflow checks are on; the file is then reported, not the process.
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        decode(Box::new(std::io::Cursor::new(bytes)), name)
    }))
    .unwrap_or_else(|_| {
        Err(AudioFileError::DecoderFailed {
            path: name.to_owned(),
        })
    })
}

/// WAV chunks kept for decoding: the format and the samples.
const WAV_KEPT_CHUNKS: [&[u8; 4]; 2] = [b"fmt ", b"data"];

/// Keeps only the `fmt ` and `data` chunks of a RIFF/WAVE file (the RIFF format's chunk
/// layout: a 4-byte identifier, a 32-bit little-endian length, the body padded to an
/// even length), for the same reason as [`flac_without_metadata`]. A chunk other than
/// `data` that runs past the end ends the file there; `data` may run past the end, as
/// in a recording that was never finalised.
fn wav_without_metadata(bytes: Vec<u8>) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    out.extend_from_slice(b"RIFF\0\0\0\0WAVE");
    let mut at = 12;
    while let Some(header) = bytes.get(at..at + 8) {
        let id = &header[..4];
        let len = u32::from_le_bytes([header[4], header[5], header[6], header[7]]) as usize;
        let body_end = (at + 8).saturating_add(len);
        let is_data = id == b"data";
        if body_end > bytes.len() && !is_data {
            break;
        }
        if WAV_KEPT_CHUNKS.iter().any(|kept| id == *kept) {
            let body = &bytes[at + 8..body_end.min(bytes.len())];
            // A streamed WAV (espeak-ng's, for one) declares a placeholder length for
            // its `data` chunk; the chunk is what the file holds.
            out.extend_from_slice(id);
            out.extend_from_slice(&u32::try_from(body.len()).unwrap_or(u32::MAX).to_le_bytes());
            out.extend_from_slice(body);
        }
        if is_data {
            break;
        }
        at = body_end + (len & 1);
    }
    let riff_len = (out.len() - 8) as u32;
    out[4..8].copy_from_slice(&riff_len.to_le_bytes());
    out
}

/// FLAC metadata block types kept for decoding: STREAMINFO and SEEKTABLE.
const FLAC_KEPT_BLOCKS: [u8; 2] = [0, 3];

/// Drops every FLAC metadata block but STREAMINFO and SEEKTABLE (tags, pictures, cue
/// sheets, padding; the FLAC format specification, "METADATA_BLOCK_HEADER").
///
/// symphonia 0.5 allocates a tag or picture at the length its block claims before it
/// checks that length against the block, so a few crafted bytes ask for gigabytes. The
/// audio does not need these blocks. Input that does not start with the FLAC marker is
/// returned unchanged; a FLAC header cut short keeps only its complete blocks.
fn flac_without_metadata(bytes: Vec<u8>) -> Vec<u8> {
    if !bytes.starts_with(b"fLaC") {
        return bytes;
    }
    let mut kept: Vec<(u8, std::ops::Range<usize>)> = Vec::new();
    let mut at = 4;
    loop {
        // A block that runs past the end leaves no way to find the audio: keep the
        // blocks before it and nothing after, and let the decoder report the file.
        let Some(header) = bytes.get(at..at + 4) else {
            at = bytes.len();
            break;
        };
        let (last, kind) = (header[0] & 0x80 != 0, header[0] & 0x7f);
        let len =
            usize::from(header[1]) << 16 | usize::from(header[2]) << 8 | usize::from(header[3]);
        let body = at + 4..at + 4 + len;
        if body.end > bytes.len() {
            at = bytes.len();
            break;
        }
        if FLAC_KEPT_BLOCKS.contains(&kind) {
            kept.push((kind, body.clone()));
        }
        at = body.end;
        if last {
            break;
        }
    }
    // FLAC requires STREAMINFO first; without it, what follows the marker would be
    // read as metadata block headers.
    if kept.first().is_none_or(|(kind, _)| *kind != 0) {
        return b"fLaC".to_vec();
    }
    let mut out = Vec::with_capacity(bytes.len());
    out.extend_from_slice(b"fLaC");
    for (i, (kind, body)) in kept.iter().enumerate() {
        let last = if i + 1 == kept.len() { 0x80 } else { 0 };
        let len = body.len();
        out.extend_from_slice(&[last | kind, (len >> 16) as u8, (len >> 8) as u8, len as u8]);
        out.extend_from_slice(&bytes[body.clone()]);
    }
    out.extend_from_slice(&bytes[at..]);
    out
}

fn decode(
    media: Box<dyn symphonia::core::io::MediaSource>,
    path: &Path,
) -> Result<Audio, AudioFileError> {
    let mut hint = Hint::new();
    if let Some(extension) = path.extension().and_then(|e| e.to_str()) {
        hint.with_extension(extension);
    }
    let source = MediaSourceStream::new(media, Default::default());
    let probed = symphonia::default::get_probe()
        .format(
            &hint,
            source,
            &FormatOptions::default(),
            &MetadataOptions::default(),
        )
        .map_err(|source| match source {
            SymphoniaError::IoError(source) => io_error(path, source),
            source => AudioFileError::UnsupportedFormat {
                path: path.to_owned(),
                source,
            },
        })?;
    let mut format = probed.format;

    let track = format
        .tracks()
        .iter()
        .find(|track| track.codec_params.codec != CODEC_TYPE_NULL)
        .ok_or_else(|| AudioFileError::NoAudioTrack {
            path: path.to_owned(),
        })?;
    let track_id = track.id;
    let sample_rate =
        track
            .codec_params
            .sample_rate
            .ok_or_else(|| AudioFileError::NoSampleRate {
                path: path.to_owned(),
            })?;
    let mut decoder = symphonia::default::get_codecs()
        .make(&track.codec_params, &DecoderOptions::default())
        .map_err(|source| AudioFileError::UnsupportedCodec {
            path: path.to_owned(),
            source,
        })?;

    let mut samples = Vec::new();
    let mut packet_index = 0u64;
    // Timestamp (in samples per channel) at which the next packet should start.
    let mut next_ts = None;
    loop {
        let decode_error = |source| AudioFileError::Decode {
            path: path.to_owned(),
            packet: packet_index,
            source,
        };
        let packet = match format.next_packet() {
            Ok(packet) => packet,
            // The end of the file, or a file cut short.
            Err(SymphoniaError::IoError(e)) if e.kind() == ErrorKind::UnexpectedEof => break,
            Err(source) => return Err(decode_error(source)),
        };
        if packet.track_id() != track_id {
            continue;
        }
        let missing = next_ts.map_or(0, |expected| packet.ts().saturating_sub(expected));
        if missing > 0 {
            return Err(AudioFileError::MissingAudio {
                path: path.to_owned(),
                packet: packet_index,
                missing,
            });
        }

        let decoded = decoder.decode(&packet).map_err(decode_error)?;
        let spec = *decoded.spec();
        if spec.rate != sample_rate {
            return Err(AudioFileError::RateChange {
                path: path.to_owned(),
                first: sample_rate,
                later: spec.rate,
                packet: packet_index,
            });
        }

        next_ts = Some(packet.ts() + decoded.frames() as u64);

        let mut interleaved = SampleBuffer::<f32>::new(decoded.capacity() as u64, spec);
        interleaved.copy_interleaved_ref(decoded);
        let mono = pcm::mix_to_mono_f32(interleaved.samples(), spec.channels.count())?;
        samples.extend_from_slice(&mono);
        packet_index += 1;
    }

    Ok(Audio {
        sample_rate,
        samples,
    })
}

/// Writes `samples` as a 16-bit mono WAV file at `sample_rate`, replacing any existing file.
pub fn write_wav_i16(
    path: impl AsRef<Path>,
    sample_rate: u32,
    samples: &[i16],
) -> Result<(), AudioFileError> {
    let mut sink = WavSink::create(path, sample_rate)?;
    sink.write(samples)?;
    sink.finish()
}

/// A 16-bit mono WAV file written frame by frame.
///
/// Dropping a sink without [`finish`](Self::finish) still finalises the header, but any error
/// in doing so is lost.
pub struct WavSink {
    writer: hound::WavWriter<BufWriter<File>>,
    path: PathBuf,
    samples_written: u64,
}

impl std::fmt::Debug for WavSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WavSink")
            .field("path", &self.path)
            .field("samples_written", &self.samples_written)
            .finish_non_exhaustive()
    }
}

impl WavSink {
    /// Creates (or truncates) the file at `path` for mono 16-bit audio at `sample_rate`.
    pub fn create(path: impl AsRef<Path>, sample_rate: u32) -> Result<Self, AudioFileError> {
        let path = path.as_ref().to_owned();
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let writer = hound::WavWriter::create(&path, spec).map_err(|source| match source {
            hound::Error::IoError(source) => io_error(&path, source),
            source => AudioFileError::WavWrite {
                path: path.clone(),
                source,
            },
        })?;

        Ok(Self {
            writer,
            path,
            samples_written: 0,
        })
    }

    /// Appends a frame of samples.
    pub fn write(&mut self, frame: &[i16]) -> Result<(), AudioFileError> {
        for &sample in frame {
            self.writer
                .write_sample(sample)
                .map_err(|source| AudioFileError::WavWrite {
                    path: self.path.clone(),
                    source,
                })?;
        }
        self.samples_written += frame.len() as u64;
        Ok(())
    }

    /// Samples appended so far.
    pub fn samples_written(&self) -> u64 {
        self.samples_written
    }

    /// The file being written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Brings the header up to date with what is written, so the file reads whole
    /// while writing goes on (a loudspeaker that records stream after stream).
    pub fn flush(&mut self) -> Result<(), AudioFileError> {
        self.writer
            .flush()
            .map_err(|source| AudioFileError::WavWrite {
                path: self.path.clone(),
                source,
            })
    }

    /// Writes the final header and closes the file.
    pub fn finish(self) -> Result<(), AudioFileError> {
        let path = self.path;
        self.writer
            .finalize()
            .map_err(|source| AudioFileError::WavWrite { path, source })
    }
}

fn io_error(path: &Path, source: std::io::Error) -> AudioFileError {
    if source.kind() == ErrorKind::NotFound {
        AudioFileError::NotFound {
            path: path.to_owned(),
        }
    } else {
        AudioFileError::Io {
            path: path.to_owned(),
            source,
        }
    }
}
