//! Error types of the crate.
//!
//! Two enums: [`CodecError`] for everything that works on samples and packets in memory, and
//! [`AudioFileError`] for reading and writing audio files. Every variant carries what a caller
//! needs to report the failure without more context: the length that was wrong and the length
//! that was expected, the file and the packet that failed to decode.

use std::path::PathBuf;

/// A failure of a codec, a sample conversion or the resampler.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// A frame handed to a frame-based codec or resampler had the wrong number of samples.
    #[error("frame has {actual} samples, expected exactly {expected}")]
    FrameLength {
        /// Samples the codec takes per frame.
        expected: usize,
        /// Samples the caller passed.
        actual: usize,
    },

    /// An output buffer cannot hold one frame.
    #[error("output buffer holds {actual} samples, needs at least {needed}")]
    OutputTooSmall {
        /// Samples the output must be able to hold.
        needed: usize,
        /// Samples it holds.
        actual: usize,
    },

    /// The Opus bitrate is outside what RFC 6716 allows (6 kbit/s to 510 kbit/s).
    #[error("Opus bitrate {0} bit/s is outside 6000..=510000")]
    OpusBitrate(i32),

    /// The expected packet loss is above 100 %.
    #[error("expected packet loss {0} % is above 100 %")]
    LossPercent(u8),

    /// An empty packet was handed to the decoder. A lost packet is concealed explicitly.
    #[error("empty Opus packet; a lost packet is concealed, not decoded")]
    EmptyPacket,

    /// libopus rejected a call, for example because a packet is corrupt.
    #[error("Opus {operation} failed: {source}")]
    Opus {
        /// What was being done: "encoder setup", "encode", "decode", ...
        operation: &'static str,
        /// The error libopus returned.
        #[source]
        source: opus::Error,
    },

    /// An L16 payload has an odd number of bytes, so its last sample is cut.
    #[error("L16 payload of {0} bytes is not a whole number of 16-bit samples")]
    L16OddLength(usize),

    /// An interleaved buffer does not hold a whole number of multichannel frames.
    #[error("{len} interleaved samples are not a whole number of {channels}-channel frames")]
    PartialFrame {
        /// Samples in the buffer.
        len: usize,
        /// Channels per frame.
        channels: usize,
    },

    /// A channel count of zero.
    #[error("channel count must be at least 1")]
    ZeroChannels,

    /// A sample rate outside what the resampler accepts (1 Hz to
    /// [`MAX_SAMPLE_RATE`](crate::resample::MAX_SAMPLE_RATE)).
    #[error("sample rate {0} Hz is outside 1..=768000 Hz")]
    SampleRate(u32),

    /// A streaming resampler was asked for an empty frame size.
    #[error("resampler frame size must be at least one sample")]
    ZeroFrameSize,

    /// rubato could not build a resampler for this pair of rates.
    #[error("cannot build a resampler from {from_hz} Hz to {to_hz} Hz: {source}")]
    ResamplerSetup {
        /// Input rate.
        from_hz: u32,
        /// Output rate.
        to_hz: u32,
        /// rubato's reason.
        #[source]
        source: rubato::ResamplerConstructionError,
    },

    /// rubato failed while resampling.
    #[error("resampling failed: {0}")]
    Resample(#[from] rubato::ResampleError),
}

/// A failure to read or write an audio file. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum AudioFileError {
    /// The file does not exist.
    #[error("{path}: file not found")]
    NotFound {
        /// The file.
        path: PathBuf,
    },

    /// The file could not be opened, read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's reason.
        #[source]
        source: std::io::Error,
    },

    /// The container is not one this crate reads (WAV and FLAC), or is malformed at the start.
    #[error("{path}: unsupported or unrecognised format: {source}")]
    UnsupportedFormat {
        /// The file.
        path: PathBuf,
        /// symphonia's reason.
        #[source]
        source: symphonia::core::errors::Error,
    },

    /// The file starts with neither a RIFF/WAVE nor a FLAC header.
    #[error("{path}: not a WAV or FLAC file")]
    NotWavOrFlac {
        /// The file.
        path: PathBuf,
    },

    /// The decoder gave up on the file with a panic (a defect of the decoding library on
    /// malformed input), caught and reported here.
    #[error("{path}: the decoder failed on malformed audio")]
    DecoderFailed {
        /// The file.
        path: PathBuf,
    },

    /// The container holds no audio track that a decoder exists for.
    #[error("{path}: no decodable audio track")]
    NoAudioTrack {
        /// The file.
        path: PathBuf,
    },

    /// The audio track's header does not state a sample rate.
    #[error("{path}: audio track does not state its sample rate")]
    NoSampleRate {
        /// The file.
        path: PathBuf,
    },

    /// The audio track uses a codec feature this crate cannot decode.
    #[error("{path}: unsupported codec: {source}")]
    UnsupportedCodec {
        /// The file.
        path: PathBuf,
        /// symphonia's reason.
        #[source]
        source: symphonia::core::errors::Error,
    },

    /// A packet of the audio track could not be read or decoded.
    #[error("{path}: decode error at packet {packet}: {source}")]
    Decode {
        /// The file.
        path: PathBuf,
        /// Index of the failing packet in the audio track, counted from 0.
        packet: u64,
        /// symphonia's reason.
        #[source]
        source: symphonia::core::errors::Error,
    },

    /// Audio is missing before a packet: the container skipped frames it could not read (a
    /// FLAC frame with a bad CRC, for instance), so the packet starts later than the previous
    /// one ended.
    #[error("{path}: {missing} samples missing before packet {packet} (corrupt or lost frames)")]
    MissingAudio {
        /// The file.
        path: PathBuf,
        /// Index of the packet after the gap.
        packet: u64,
        /// Samples per channel skipped.
        missing: u64,
    },

    /// The sample rate changed in the middle of the track.
    #[error("{path}: sample rate changes from {first} Hz to {later} Hz at packet {packet}")]
    RateChange {
        /// The file.
        path: PathBuf,
        /// Rate of the first packet.
        first: u32,
        /// Rate of the packet that differs.
        later: u32,
        /// Index of that packet.
        packet: u64,
    },

    /// hound could not write the WAV file.
    #[error("{path}: cannot write WAV: {source}")]
    WavWrite {
        /// The file.
        path: PathBuf,
        /// hound's reason.
        #[source]
        source: hound::Error,
    },

    /// Converting the decoded audio failed (for example, resampling it).
    #[error(transparent)]
    Codec(#[from] CodecError),
}
