//! The fidelity measure on real speech: what it gives for the cases the gateway's end-to-end
//! check must tell apart. Run with `--nocapture` to see the figures.

mod common;

use codecs::fidelity::{align, score};
use codecs::g711::{self, G711Law};
use codecs::{Audio, pcm, read_audio, resample};
use common::{fixture, rms, white_noise};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn english_at(rate: u32) -> Result<Audio, Box<dyn std::error::Error>> {
    Ok(read_audio(fixture("english.wav"))?.to_rate(rate)?)
}

#[test]
fn identical_speech_scores_one_with_full_coverage() -> TestResult {
    let english = read_audio(fixture("english.wav"))?;
    let report = score(&english.samples, &english.samples, english.sample_rate);
    println!("identical english.wav at 44.1 kHz: {report}");

    assert_eq!(report.offset_samples, 0);
    assert!(report.envelope_correlation > 0.999);
    assert_eq!(report.coverage, 1.0);
    assert!(report.active_frames > 100, "{report}");
    Ok(())
}

#[test]
fn speech_delayed_by_123_ms_in_noise_30_db_down_is_aligned_and_scores_high() -> TestResult {
    let english = english_at(48_000)?;
    let delay = 5_904; // 123 ms at 48 kHz
    let noise_rms = rms(&english.samples) * 10f32.powf(-30.0 / 20.0);

    let mut degraded = vec![0.0; delay];
    degraded.extend_from_slice(&english.samples);
    let noise = white_noise(degraded.len(), noise_rms, 0x5EED);
    for (sample, noise) in degraded.iter_mut().zip(noise) {
        *sample += noise;
    }

    let lag = align(&english.samples, &degraded, 96_000);
    let report = score(&english.samples, &degraded, 48_000);
    println!("english.wav delayed 123 ms, white noise 30 dB below: lag {lag:?}, {report}");

    assert!(lag.is_some_and(|lag| (lag - delay as isize).abs() <= 1));
    assert!((report.offset_samples - delay as isize).abs() <= 1);
    assert!(report.envelope_correlation > 0.9, "{report}");
    assert!(report.coverage > 0.95, "{report}");
    Ok(())
}

#[test]
fn the_score_falls_as_noise_rises() -> TestResult {
    let english = english_at(16_000)?;
    let speech_rms = rms(&english.samples);

    let mut previous = f32::INFINITY;
    for snr_db in [30.0f32, 20.0, 10.0, 0.0] {
        let noise = white_noise(
            english.samples.len(),
            speech_rms * 10f32.powf(-snr_db / 20.0),
            7,
        );
        let degraded: Vec<f32> = english
            .samples
            .iter()
            .zip(&noise)
            .map(|(s, n)| s + n)
            .collect();
        let report = score(&english.samples, &degraded, 16_000);
        println!("english.wav at 16 kHz, white noise {snr_db} dB below the speech: {report}");

        assert!(report.envelope_correlation < previous, "{report}");
        previous = report.envelope_correlation;
    }
    assert!(previous < 0.7, "at 0 dB SNR: {previous}");
    Ok(())
}

#[test]
fn speech_through_g711_ulaw_at_8_khz_scores_high() -> TestResult {
    let english = english_at(8_000)?;
    let mut codes = Vec::new();
    g711::encode(G711Law::MuLaw, &english.to_i16(), &mut codes);
    let mut decoded = Vec::new();
    g711::decode(G711Law::MuLaw, &codes, &mut decoded);
    let degraded = pcm::i16_to_f32_vec(&decoded);

    let report = score(&english.samples, &degraded, 8_000);
    println!("english.wav through G.711 µ-law at 8 kHz: {report}");

    assert_eq!(report.offset_samples, 0);
    assert!(report.envelope_correlation > 0.9, "{report}");
    assert!(report.coverage > 0.95, "{report}");
    Ok(())
}

#[test]
fn speech_through_48_to_8_to_48_khz_scores_high() -> TestResult {
    let english = english_at(48_000)?;
    let narrow = resample(&english.samples, 48_000, 8_000)?;
    let degraded = resample(&narrow, 8_000, 48_000)?;

    let report = score(&english.samples, &degraded, 48_000);
    println!("english.wav band-limited to 8 kHz sampling, scored at 48 kHz: {report}");

    assert_eq!(report.offset_samples, 0);
    assert!(report.envelope_correlation > 0.7, "{report}");
    Ok(())
}

#[test]
fn different_speech_scores_low() -> TestResult {
    let english = english_at(48_000)?;
    let chinese = read_audio(fixture("chinese.flac"))?;

    let report = score(&english.samples, &chinese.samples, 48_000);
    println!("english.wav against chinese.flac: {report}");
    let reverse = score(&chinese.samples, &english.samples, 48_000);
    println!("chinese.flac against english.wav: {reverse}");

    assert!(report.envelope_correlation < 0.5, "{report}");
    assert!(reverse.envelope_correlation < 0.5, "{reverse}");
    Ok(())
}

#[test]
fn silence_has_no_coverage() -> TestResult {
    let english = english_at(16_000)?;
    let silence = vec![0.0; english.samples.len()];

    let report = score(&english.samples, &silence, 16_000);
    println!("english.wav against silence: {report}");

    assert_eq!(report.coverage, 0.0);
    assert_eq!(report.envelope_correlation, 0.0);
    assert!(report.active_frames > 0);
    Ok(())
}

#[test]
fn speech_cut_off_halfway_has_about_half_coverage() -> TestResult {
    let english = english_at(16_000)?;
    let half = english
        .samples
        .get(..english.samples.len() / 2)
        .unwrap_or_default();

    let report = score(&english.samples, half, 16_000);
    println!("english.wav cut off halfway: {report}");

    assert_eq!(report.offset_samples, 0);
    assert!((0.4..0.6).contains(&report.coverage), "{report}");
    assert!(report.envelope_correlation > 0.95, "{report}");
    Ok(())
}
