//! Text to speech: an alert's message spoken by the `espeak-ng` program.
//!
//! Speaking a message is two steps, kept apart so that a dry run can show exactly what would
//! be spoken without running anything:
//!
//! 1. [`prepare`] picks the voice from the message's language tag (BCP 47, `zh-Hans-CN`,
//!    `en-US`) and rewrites the text into what that voice reads well. It is pure.
//! 2. [`SpeechEngine::synthesise`] runs the engine on the prepared text and returns 48 kHz mono
//!    samples, the rate of the gateway's voice path.
//!
//! # Voices
//!
//! Chinese (`zh`, `cmn`, with any script or region) goes to the voice `cmn-latn-pinyin`, after
//! [`normalise::normalise_mandarin`] and [`pinyin::to_numbered_pinyin`]: espeak-ng 1.51's
//! character-reading Mandarin voice `cmn` gets many tones wrong, while the pinyin voice reads
//! numbered pinyin (`bei3 guan1 qu1`) as written. Every other language is passed unchanged to
//! the voice named by its primary language subtag (`en-US` → `en`, `fr-CA` → `fr`); a language
//! espeak-ng has no voice for makes it exit with an error, reported as [`SpeechError::Exit`].
//!
//! # Running the engine
//!
//! The program is started directly, never through a shell, as
//! `PROGRAM [extra args] -b 1 -v VOICE --stdout --stdin`: the text goes in on standard input
//! as UTF-8 (`-b 1`), so nothing in a message can be taken for an option or a file name, and
//! a WAV file comes out on standard output. The engine's own arguments come last so that
//! extra arguments (a speed, `-s 150`; a pitch, `-p 40`) cannot override them. A program
//! still running at the timeout is killed. The WAV is decoded and resampled to 48 kHz (from
//! espeak-ng's 22 050 Hz).

pub mod normalise;
pub mod pinyin;

use std::io::ErrorKind;
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use codecs::AudioFileError;
use serde::Deserialize;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

/// Sample rate of [`Synthesis::samples`], that of the gateway's voice path (RFC 7587), in Hz.
pub const SAMPLE_RATE: u32 = 48_000;

/// The espeak-ng voice that reads numbered pinyin.
pub const MANDARIN_PINYIN_VOICE: &str = "cmn-latn-pinyin";

/// Longest piece of the engine's standard error kept in [`SpeechError::Exit`], in characters.
const STDERR_KEPT_CHARS: usize = 1_000;

/// The `[speech]` settings of a node's configuration.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SpeechConfig {
    /// The speech program, by name (looked up in `PATH`) or path. Default `espeak-ng`.
    pub program: String,
    /// Extra arguments, placed before the engine's own, such as `["-s", "150"]` for
    /// 150 words a minute. Default none.
    pub args: Vec<String>,
    /// How long one message may take to synthesise before the program is killed, in
    /// milliseconds. Default 30 000.
    pub timeout_ms: u64,
}

impl Default for SpeechConfig {
    fn default() -> Self {
        Self {
            program: "espeak-ng".to_owned(),
            args: Vec::new(),
            timeout_ms: 30_000,
        }
    }
}

/// Speaks text by running a speech program; see the [module documentation](self).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpeechEngine {
    program: String,
    args: Vec<String>,
    timeout: Duration,
}

impl Default for SpeechEngine {
    fn default() -> Self {
        Self::new(&SpeechConfig::default())
    }
}

/// What [`prepare`] makes of a message: the voice and the exact text it will be given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Utterance {
    /// The espeak-ng voice: `cmn-latn-pinyin`, `en`, `fr`...
    pub voice: String,
    /// The text for the voice, exactly as it is written to the program's standard input.
    pub spoken: String,
}

/// A message turned into sound.
#[derive(Debug, Clone, PartialEq)]
pub struct Synthesis {
    /// Mono samples at [`SAMPLE_RATE`].
    pub samples: Vec<i16>,
    /// Exactly what was passed to the engine.
    pub spoken: String,
    /// The voice that spoke it.
    pub voice: String,
}

/// Why a message could not be spoken.
#[derive(Debug, thiserror::Error)]
pub enum SpeechError {
    /// There is nothing to say: the text is empty, or only white space and punctuation.
    #[error("the message has no text to speak")]
    EmptyText,

    /// The language tag does not start with a language subtag of two or three letters.
    #[error("language tag {tag:?} does not start with a two- or three-letter language code")]
    Language {
        /// The tag as given.
        tag: String,
    },

    /// The speech program does not exist.
    #[error(
        "speech program {program:?} not found: install espeak-ng (Debian package \
         \"espeak-ng\") or configure the path of the speech program"
    )]
    NotFound {
        /// The program as configured.
        program: String,
    },

    /// The speech program exists but could not be started.
    #[error("cannot start speech program {program:?}: {source}")]
    Spawn {
        /// The program as configured.
        program: String,
        /// The operating system's reason.
        #[source]
        source: std::io::Error,
    },

    /// Writing the text to the program or reading its output failed.
    #[error("speech program {program:?}: {source}")]
    Io {
        /// The program as configured.
        program: String,
        /// The operating system's reason.
        #[source]
        source: std::io::Error,
    },

    /// The program ended with a failure.
    #[error("speech program {program:?} failed ({status}): {stderr}")]
    Exit {
        /// The program as configured.
        program: String,
        /// How it ended.
        status: ExitStatus,
        /// What it wrote to standard error, trimmed and cut to 1 000 characters.
        stderr: String,
    },

    /// The program was still running at the timeout and was killed.
    #[error("speech program {program:?} did not finish within {timeout:?}")]
    Timeout {
        /// The program as configured.
        program: String,
        /// The configured timeout.
        timeout: Duration,
    },

    /// The program's output is not a WAV file that can be decoded and resampled.
    #[error("speech program {program:?} wrote unusable audio: {source}")]
    BadAudio {
        /// The program as configured.
        program: String,
        /// What was wrong with it.
        #[source]
        source: AudioFileError,
    },

    /// The program's output is a valid WAV file without a single sample.
    #[error("speech program {program:?} wrote no audio")]
    NoAudio {
        /// The program as configured.
        program: String,
    },
}

/// Picks the voice for `language` (a BCP 47 tag) and rewrites `text` for it, as described in
/// the [module documentation](self).
pub fn prepare(text: &str, language: &str) -> Result<Utterance, SpeechError> {
    let primary = language
        .split(['-', '_'])
        .next()
        .filter(|subtag| (2..=3).contains(&subtag.len()))
        .filter(|subtag| subtag.chars().all(|c| c.is_ascii_alphabetic()))
        .ok_or_else(|| SpeechError::Language {
            tag: language.to_owned(),
        })?
        .to_ascii_lowercase();

    let (voice, spoken) = match primary.as_str() {
        "zh" | "cmn" => {
            let normalised = normalise::normalise_mandarin(text);
            (
                MANDARIN_PINYIN_VOICE.to_owned(),
                pinyin::to_numbered_pinyin(&normalised),
            )
        }
        _ => (primary, text.to_owned()),
    };

    let has_words = spoken.chars().any(char::is_alphanumeric);
    if !has_words {
        return Err(SpeechError::EmptyText);
    }
    Ok(Utterance { voice, spoken })
}

impl SpeechEngine {
    /// An engine with the settings of `config`.
    pub fn new(config: &SpeechConfig) -> Self {
        Self {
            program: config.program.clone(),
            args: config.args.clone(),
            timeout: Duration::from_millis(config.timeout_ms),
        }
    }

    /// Speaks `text` in `language` (a BCP 47 tag): [`prepare`], then run the program on the
    /// result.
    pub async fn synthesise(&self, text: &str, language: &str) -> Result<Synthesis, SpeechError> {
        let Utterance { voice, spoken } = prepare(text, language)?;
        tracing::debug!(program = %self.program, %voice, chars = spoken.chars().count(), "synthesising speech");

        let wav = tokio::time::timeout(self.timeout, self.run(&voice, &spoken))
            .await
            .map_err(|_| SpeechError::Timeout {
                program: self.program.clone(),
                timeout: self.timeout,
            })??;

        let samples = self.decode(wav)?;
        Ok(Synthesis {
            samples,
            spoken,
            voice,
        })
    }

    /// Runs the program on `spoken` and returns its standard output. Dropping the future
    /// kills the program.
    async fn run(&self, voice: &str, spoken: &str) -> Result<Vec<u8>, SpeechError> {
        let mut child = Command::new(&self.program)
            .args(&self.args)
            .args(["-b", "1", "-v", voice, "--stdout", "--stdin"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| match source.kind() {
                ErrorKind::NotFound => SpeechError::NotFound {
                    program: self.program.clone(),
                },
                _ => SpeechError::Spawn {
                    program: self.program.clone(),
                    source,
                },
            })?;

        // The text is written while the output is read, so that neither side can block
        // the other on a full pipe.
        let stdin = child.stdin.take();
        let write = async move {
            if let Some(mut stdin) = stdin {
                stdin.write_all(spoken.as_bytes()).await?;
                stdin.shutdown().await?;
            }
            Ok::<(), std::io::Error>(())
        };
        let (written, output) = tokio::join!(write, child.wait_with_output());
        let output = output.map_err(|source| self.io_error(source))?;

        if !output.status.success() {
            return Err(SpeechError::Exit {
                program: self.program.clone(),
                status: output.status,
                stderr: kept_stderr(&output.stderr),
            });
        }
        // A program that stops reading early has already said why through its exit status;
        // one that exits successfully without reading everything has not.
        written.map_err(|source| self.io_error(source))?;
        Ok(output.stdout)
    }

    fn decode(&self, wav: Vec<u8>) -> Result<Vec<i16>, SpeechError> {
        let bad_audio = |source: AudioFileError| SpeechError::BadAudio {
            program: self.program.clone(),
            source,
        };
        let audio = codecs::audio_file::read_audio_bytes(wav, Path::new(&self.program))
            .map_err(bad_audio)?;
        if audio.samples.is_empty() {
            return Err(SpeechError::NoAudio {
                program: self.program.clone(),
            });
        }
        let audio = audio
            .to_rate(SAMPLE_RATE)
            .map_err(|source| bad_audio(source.into()))?;
        Ok(audio.to_i16())
    }

    fn io_error(&self, source: std::io::Error) -> SpeechError {
        SpeechError::Io {
            program: self.program.clone(),
            source,
        }
    }
}

/// The program's standard error as text, trimmed and cut to [`STDERR_KEPT_CHARS`].
fn kept_stderr(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let text = text.trim();
    match text.char_indices().nth(STDERR_KEPT_CHARS) {
        Some((cut, _)) => format!("{}…", text.get(..cut).unwrap_or_default()),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use codecs::Level;

    fn engine(program: &str, args: &[&str], timeout_ms: u64) -> SpeechEngine {
        SpeechEngine::new(&SpeechConfig {
            program: program.to_owned(),
            args: args.iter().map(|&a| a.to_owned()).collect(),
            timeout_ms,
        })
    }

    #[test]
    fn chinese_in_any_script_or_region_goes_to_the_pinyin_voice() {
        for tag in ["zh", "zh-CN", "zh-Hans-CN", "zh_CN", "ZH-cn", "cmn-Hans"] {
            let utterance = prepare("北关区暴雨红色预警", tag).expect(tag);
            assert_eq!(utterance.voice, "cmn-latn-pinyin", "{tag}");
            assert_eq!(
                utterance.spoken, "bei3 guan1 qu1 bao4 yu3 hong2 se4 yu4 jing3",
                "{tag}"
            );
        }
    }

    #[test]
    fn chinese_numbers_are_normalised_before_pinyin() {
        let utterance = prepare("06:30降雨量达100mm。", "zh-CN").expect("prepared");
        assert_eq!(
            utterance.spoken,
            "liu4 dian3 san1 shi2 fen1 jiang4 yu3 liang4 da2 yi1 bai3 hao2 mi3."
        );
    }

    #[test]
    fn other_languages_keep_their_text_and_use_the_primary_subtag_as_voice() {
        let english = prepare("Flood warning: move to higher ground.", "en-US").expect("en");
        assert_eq!(english.voice, "en");
        assert_eq!(english.spoken, "Flood warning: move to higher ground.");
        assert_eq!(prepare("Alerte", "fr-CA").expect("fr").voice, "fr");
    }

    #[test]
    fn a_tag_without_a_language_subtag_is_refused() {
        for tag in ["", "-en", "english", "e", "1x", "--stdout"] {
            let error = prepare("text", tag).expect_err(tag);
            assert!(
                matches!(error, SpeechError::Language { .. }),
                "{tag}: {error}"
            );
        }
    }

    #[test]
    fn a_text_without_words_is_empty() {
        for (text, tag) in [("", "en"), ("   ", "en"), ("。！", "zh"), ("...", "en")] {
            let error = prepare(text, tag).expect_err(text);
            assert!(matches!(error, SpeechError::EmptyText), "{text:?}: {error}");
        }
    }

    #[test]
    fn the_default_engine_runs_espeak_ng() {
        let config: SpeechConfig = toml::from_str("").expect("empty config");
        assert_eq!(config, SpeechConfig::default());
        assert_eq!(SpeechEngine::default().program, "espeak-ng");
        assert_eq!(SpeechEngine::default().timeout, Duration::from_secs(30));
    }

    #[test]
    fn a_config_with_an_unknown_key_is_refused() {
        let error =
            toml::from_str::<SpeechConfig>("programme = \"espeak\"").expect_err("unknown key");
        assert!(error.to_string().contains("programme"), "{error}");
    }

    async fn assert_speaks(text: &str, language: &str) {
        let synthesis = SpeechEngine::default()
            .synthesise(text, language)
            .await
            .expect("espeak-ng speaks");
        let seconds = synthesis.samples.len() as f64 / f64::from(SAMPLE_RATE);
        let level = Level::of_i16(&synthesis.samples);
        assert!(seconds > 0.5, "{language}: {seconds} s");
        assert!(level.rms_dbfs > -40.0, "{language}: {level:?}");
    }

    #[tokio::test]
    async fn espeak_ng_speaks_chinese_and_english_at_48_khz() {
        assert_speaks("北关区暴雨红色预警，请立即转移。", "zh-CN").await;
        assert_speaks("Flood warning for the north district.", "en-US").await;
    }

    #[tokio::test]
    async fn a_missing_program_says_to_install_espeak_ng() {
        let error = engine("/nonexistent/espeak", &[], 1_000)
            .synthesise("hello", "en")
            .await
            .expect_err("no such program");
        assert!(matches!(error, SpeechError::NotFound { .. }), "{error}");
        assert!(error.to_string().contains("install espeak-ng"), "{error}");
    }

    #[tokio::test]
    async fn a_failing_program_is_reported_with_its_standard_error() {
        let error = engine("false", &[], 1_000)
            .synthesise("hello", "en")
            .await
            .expect_err("false fails");
        assert!(matches!(error, SpeechError::Exit { .. }), "{error}");

        // The script echoes its standard input to standard error: the text arrives there,
        // not as an argument.
        let error = engine("sh", &["-c", "cat >&2; echo; exit 3"], 1_000)
            .synthesise("  text; rm -rf /  ", "en")
            .await
            .expect_err("script fails");
        let SpeechError::Exit { status, stderr, .. } = error else {
            panic!("{error}");
        };
        assert_eq!(status.code(), Some(3));
        assert_eq!(stderr, "text; rm -rf /");
    }

    #[tokio::test]
    async fn a_program_that_hangs_is_killed_at_the_timeout() {
        let started = std::time::Instant::now();
        let error = engine("sh", &["-c", "exec sleep 10"], 200)
            .synthesise("hello", "en")
            .await
            .expect_err("times out");
        assert!(matches!(error, SpeechError::Timeout { .. }), "{error}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[tokio::test]
    async fn output_that_is_not_a_wav_file_is_bad_audio() {
        let error = engine("sh", &["-c", "cat"], 1_000)
            .synthesise("hello", "en")
            .await
            .expect_err("text is not audio");
        assert!(matches!(error, SpeechError::BadAudio { .. }), "{error}");
    }

    #[test]
    fn long_standard_error_is_cut() {
        let kept = kept_stderr("x".repeat(5_000).as_bytes());
        assert_eq!(kept.chars().count(), STDERR_KEPT_CHARS + 1);
        assert!(kept.ends_with('…'));
        assert_eq!(kept_stderr(b"  Error: no voice\n"), "Error: no voice");
    }
}
