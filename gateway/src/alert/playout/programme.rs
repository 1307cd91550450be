//! What one play of an alert sounds like: the attention signal, a short pause, then
//! the speech (recorded audio that came with the alert, or text-to-speech).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use codecs::attention::{self, AttentionSignal};
use codecs::pcm::f32_to_i16;

use crate::alert::intake::Admitted;
use crate::alert::speech::{SpeechEngine, SpeechError};
use crate::config::AlertsConfig;

/// The rate every programme is rendered at: Opus's own (RFC 7587).
pub const SAMPLE_RATE: u32 = 48_000;

/// Silence between the attention signal and the speech.
const PAUSE_AFTER_ATTENTION: Duration = Duration::from_millis(500);

/// One play of an alert, ready to encode.
#[derive(Debug, Clone)]
pub struct Programme {
    /// Mono samples at [`SAMPLE_RATE`].
    pub samples: Arc<Vec<i16>>,
    pub attention: AttentionSignal,
    pub attention_duration: Duration,
    pub speech_duration: Duration,
    /// `recorded` or the speech engine's voice.
    pub voice: String,
    /// Exactly what the speech engine was given; empty for recorded audio.
    pub spoken: String,
}

impl Programme {
    /// How long one play lasts.
    pub fn duration(&self) -> Duration {
        Duration::from_secs_f64(self.samples.len() as f64 / f64::from(SAMPLE_RATE))
    }
}

/// Why an alert could not be made into sound.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("text-to-speech: {0}")]
    Speech(#[from] SpeechError),
    #[error("the recorded audio is unusable: {0}")]
    Audio(#[from] codecs::AudioFileError),
    #[error("the recorded audio is unusable: {0}")]
    Codec(#[from] codecs::CodecError),
    #[error("unknown attention signal: {0}")]
    Attention(#[from] codecs::attention::UnknownAttentionSignal),
}

impl RenderError {
    /// Whether trying again may succeed (the engine timed out or could not start),
    /// as opposed to input that will fail the same way every time.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            RenderError::Speech(
                SpeechError::Timeout { .. } | SpeechError::Spawn { .. } | SpeechError::Io { .. }
            )
        )
    }
}

/// Renders one play of `alert`.
pub async fn render(
    alert: &Admitted,
    audio: Option<Vec<u8>>,
    config: &AlertsConfig,
    engine: &SpeechEngine,
) -> Result<Programme, RenderError> {
    let signal: AttentionSignal = alert.attention.parse()?;
    if alert.broadcast.is_some() {
        // A live broadcast's speech comes from its source as it is spoken.
        let samples = attention_only(signal, config);
        return Ok(Programme {
            attention_duration: seconds(samples.len()),
            samples,
            attention: signal,
            speech_duration: Duration::ZERO,
            voice: "live".into(),
            spoken: String::new(),
        });
    }
    let mut samples = attention::render(
        signal,
        config.timing(signal),
        SAMPLE_RATE,
        config.level_dbfs,
    );
    let attention_duration = seconds(samples.len());
    if !samples.is_empty() {
        samples.resize(samples.len() + pause_samples(), 0);
    }

    let (speech, voice, spoken) = match audio {
        Some(bytes) => {
            let audio = codecs::audio_file::read_audio_bytes(bytes, Path::new("alert resource"))?
                .to_rate(SAMPLE_RATE)?;
            let speech: Vec<i16> = audio.samples.iter().map(|s| f32_to_i16(*s)).collect();
            (speech, "recorded".to_string(), String::new())
        }
        None => {
            let synthesis = engine.synthesise(&alert.text, &alert.language).await?;
            (synthesis.samples, synthesis.voice, synthesis.spoken)
        }
    };
    let speech_duration = seconds(speech.len());
    samples.extend_from_slice(&speech);

    Ok(Programme {
        samples: Arc::new(samples),
        attention: signal,
        attention_duration,
        speech_duration,
        voice,
        spoken,
    })
}

/// A live broadcast has no programme: its voice comes from a device or a stream.
/// Its attention signal alone, for the start of the broadcast.
pub fn attention_only(signal: AttentionSignal, config: &AlertsConfig) -> Arc<Vec<i16>> {
    let mut samples = attention::render(
        signal,
        config.timing(signal),
        SAMPLE_RATE,
        config.level_dbfs,
    );
    if !samples.is_empty() {
        samples.resize(samples.len() + pause_samples(), 0);
    }
    Arc::new(samples)
}

fn pause_samples() -> usize {
    (PAUSE_AFTER_ATTENTION.as_secs_f64() * f64::from(SAMPLE_RATE)) as usize
}

fn seconds(samples: usize) -> Duration {
    Duration::from_secs_f64(samples as f64 / f64::from(SAMPLE_RATE))
}
