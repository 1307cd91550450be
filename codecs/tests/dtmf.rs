//! The DTMF decoder against tones made by a third party (sox) and against a third
//! party's decoder (multimon-ng) on the same audio.

mod common;

use std::path::Path;
use std::process::Command;

use codecs::dtmf::DtmfDecoder;
use common::TempDir;

/// ITU-T Q.23: the (low, high) tone pair of a key.
fn tones(key: char) -> (u32, u32) {
    let low = [697, 770, 852, 941];
    let high = [1209, 1336, 1477, 1633];
    let pad = ["123A", "456B", "789C", "*0#D"];
    for (r, row) in pad.iter().enumerate() {
        if let Some(c) = row.find(key) {
            return (low[r], high[c]);
        }
    }
    panic!("{key} is not a DTMF key");
}

fn sox(args: &[&str]) {
    let status = Command::new("sox")
        .args(args)
        .status()
        .expect("sox runs (install sox)");
    assert!(status.success(), "sox {args:?}");
}

/// Writes `keys` as sox makes them: each tone `tone_s` long at `level_db` (each
/// component; 0 is full scale), then `gap_s` of silence; white noise `noise_db`
/// under the whole when given. Mono, 16-bit, at 48 kHz.
fn sox_keys(
    dir: &TempDir,
    name: &str,
    keys: &str,
    tone_s: f64,
    gap_s: f64,
    noise_db: Option<f64>,
) -> std::path::PathBuf {
    let mut parts = Vec::new();
    for (n, key) in keys.chars().enumerate() {
        let (low, high) = tones(key);
        let part = dir.file(&format!("{name}-{n}.wav"));
        let (tone, gap) = (tone_s.to_string(), gap_s.to_string());
        let (low, high) = (format!("sin {low}"), format!("sin {high}"));
        let mut args = vec!["-n", "-r", "48000", "-b", "16", "-c", "1"];
        let path = part.to_string_lossy().to_string();
        args.push(&path);
        args.extend(["synth", &tone]);
        args.extend(low.split(' '));
        args.extend(high.split(' '));
        args.extend(["remix", "-", "gain", "-9", "pad", "0", &gap]);
        sox(&args);
        parts.push(path);
    }
    let joined = dir.file(&format!("{name}-joined.wav"));
    let mut args: Vec<&str> = parts.iter().map(String::as_str).collect();
    let joined_path = joined.to_string_lossy().to_string();
    args.push(&joined_path);
    sox(&args);

    let Some(noise_db) = noise_db else {
        return joined;
    };
    let noise = dir.file(&format!("{name}-noise.wav"));
    let noise_path = noise.to_string_lossy().to_string();
    let length = (keys.len() as f64 * (tone_s + gap_s)).to_string();
    let gain = noise_db.to_string();
    sox(&[
        "-n",
        "-r",
        "48000",
        "-b",
        "16",
        "-c",
        "1",
        &noise_path,
        "synth",
        &length,
        "whitenoise",
        "gain",
        &gain,
    ]);
    let mixed = dir.file(&format!("{name}.wav"));
    let mixed_path = mixed.to_string_lossy().to_string();
    sox(&["-m", &joined_path, &noise_path, &mixed_path]);
    mixed
}

fn ours(wav: &Path) -> String {
    let audio = codecs::read_audio(wav).expect("sox wrote a WAV");
    assert_eq!(audio.sample_rate, 48_000);
    let samples = codecs::pcm::f32_to_i16_vec(&audio.samples);
    DtmfDecoder::new().push(&samples).into_iter().collect()
}

/// multimon-ng's DTMF decoder on the same audio, which it takes at 22 050 Hz raw.
fn multimon(dir: &TempDir, wav: &Path) -> String {
    let raw = dir.file("multimon.raw");
    sox(&[
        &wav.to_string_lossy(),
        "-r",
        "22050",
        "-t",
        "raw",
        "-e",
        "signed",
        "-b",
        "16",
        &raw.to_string_lossy(),
    ]);
    let out = Command::new("multimon-ng")
        .args(["-q", "-t", "raw", "-a", "DTMF"])
        .arg(&raw)
        .output()
        .expect("multimon-ng runs (install multimon-ng)");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix("DTMF: "))
        .collect()
}

#[test]
fn every_key_made_by_sox_decodes_as_multimon_ng_decodes_it() {
    let dir = TempDir::new("dtmf");
    let keys = "0123456789*#ABCD";
    let wav = sox_keys(&dir, "pad", keys, 0.08, 0.06, None);
    assert_eq!(ours(&wav), keys);
    assert_eq!(multimon(&dir, &wav), keys, "the reference decoder agrees");
}

#[test]
fn a_patch_command_in_noise_decodes_as_multimon_ng_decodes_it() {
    let dir = TempDir::new("dtmf-noise");
    let keys = "*1234*7#";
    // Noise 20 dB under the tones.
    let wav = sox_keys(&dir, "noisy", keys, 0.07, 0.05, Some(-29.0));
    assert_eq!(multimon(&dir, &wav), keys);
    assert_eq!(ours(&wav), keys);
}

#[test]
fn tones_of_15_ms_are_too_short_for_a_key_press() {
    let dir = TempDir::new("dtmf-short");
    // Q.24 lets a receiver reject tones under 23 ms and requires 40 ms: at 15 ms
    // nothing may come through.
    let wav = sox_keys(&dir, "short", "5555", 0.015, 0.1, None);
    assert_eq!(ours(&wav), "");
}
