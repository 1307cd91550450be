//! Opus on real speech: a clean round trip, and lost packets rebuilt from in-band FEC
//! compared with plain concealment. Run with `--nocapture` to see the figures.

mod common;

use codecs::fidelity::score;
use codecs::opus::{FRAME_SAMPLES, OpusDecoder, OpusEncoder, SAMPLE_RATE};
use codecs::{pcm, read_audio};
use common::fixture;

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// english.wav at 48 kHz in whole 20 ms frames.
fn english_frames() -> Result<Vec<Vec<i16>>, Box<dyn std::error::Error>> {
    let english = read_audio(fixture("english.wav"))?.to_rate(SAMPLE_RATE)?;
    Ok(english
        .to_i16()
        .chunks_exact(FRAME_SAMPLES)
        .map(<[i16]>::to_vec)
        .collect())
}

fn encode_all(
    frames: &[Vec<i16>],
    encoder: &mut OpusEncoder,
) -> Result<Vec<Vec<u8>>, codecs::CodecError> {
    frames
        .iter()
        .map(|frame| encoder.encode_vec(frame))
        .collect()
}

/// Decodes `packets`, treating those for which `lost` is true as never received. A lost packet
/// is rebuilt from the next packet's FEC when `use_fec` is set, else concealed.
fn decode_with_loss(
    packets: &[Vec<u8>],
    lost: impl Fn(usize) -> bool,
    use_fec: bool,
) -> Result<Vec<i16>, codecs::CodecError> {
    let mut decoder = OpusDecoder::new()?;
    let mut out = vec![0i16; FRAME_SAMPLES];
    let mut decoded = Vec::with_capacity(packets.len() * FRAME_SAMPLES);
    for (index, packet) in packets.iter().enumerate() {
        let next = packets.get(index + 1).filter(|_| !lost(index + 1));
        let n = match (lost(index), next) {
            (false, _) => decoder.decode(packet, &mut out)?,
            (true, Some(next)) if use_fec => decoder.decode_fec(next, &mut out)?,
            (true, _) => decoder.conceal(&mut out)?,
        };
        decoded.extend_from_slice(out.get(..n).unwrap_or_default());
    }
    Ok(decoded)
}

fn error_energy(clean: &[i16], other: &[i16], frames: impl Iterator<Item = usize>) -> f64 {
    frames
        .flat_map(|frame| {
            let range = frame * FRAME_SAMPLES..(frame + 1) * FRAME_SAMPLES;
            let a = clean.get(range.clone()).unwrap_or_default();
            let b = other.get(range).unwrap_or_default();
            a.iter()
                .zip(b)
                .map(|(a, b)| (f64::from(*a) - f64::from(*b)).powi(2))
        })
        .sum()
}

#[test]
fn speech_survives_an_opus_round_trip_at_24_kbit_s() -> TestResult {
    let frames = english_frames()?;
    let packets = encode_all(&frames, &mut OpusEncoder::new(24_000, 0)?)?;
    let decoded = decode_with_loss(&packets, |_| false, false)?;
    assert_eq!(decoded.len(), frames.len() * FRAME_SAMPLES);

    let reference: Vec<f32> = frames
        .iter()
        .flatten()
        .map(|&s| pcm::i16_to_f32(s))
        .collect();
    let report = score(&reference, &pcm::i16_to_f32_vec(&decoded), SAMPLE_RATE);
    let bytes: usize = packets.iter().map(Vec::len).sum();
    println!(
        "english.wav through Opus 24 kbit/s ({} packets, {bytes} bytes, {}): {report}",
        packets.len(),
        opus::version()
    );

    assert!(report.envelope_correlation > 0.9, "{report}");
    assert!(report.coverage > 0.95, "{report}");
    Ok(())
}

#[test]
fn fec_rebuilds_lost_packets_better_than_concealment() -> TestResult {
    let frames = english_frames()?;
    let packets = encode_all(&frames, &mut OpusEncoder::new(24_000, 20)?)?;
    // Lose every fifth packet, isolated, so the next one is always there to carry the FEC.
    let lost = |index: usize| index % 5 == 3;

    let clean = decode_with_loss(&packets, |_| false, false)?;
    let with_fec = decode_with_loss(&packets, lost, true)?;
    let concealed = decode_with_loss(&packets, lost, false)?;

    let lost_frames = || (0..packets.len()).filter(|&i| lost(i));
    let signal: f64 = lost_frames()
        .flat_map(|frame| {
            clean
                .get(frame * FRAME_SAMPLES..(frame + 1) * FRAME_SAMPLES)
                .unwrap_or_default()
        })
        .map(|&s| f64::from(s).powi(2))
        .sum();
    let snr = |error: f64| 10.0 * (signal / error).log10();
    let fec_snr = snr(error_energy(&clean, &with_fec, lost_frames()));
    let plc_snr = snr(error_energy(&clean, &concealed, lost_frames()));

    let reference: Vec<f32> = frames
        .iter()
        .flatten()
        .map(|&s| pcm::i16_to_f32(s))
        .collect();
    let fec_report = score(&reference, &pcm::i16_to_f32_vec(&with_fec), SAMPLE_RATE);
    let plc_report = score(&reference, &pcm::i16_to_f32_vec(&concealed), SAMPLE_RATE);
    println!(
        "20 % loss, {} of {} packets lost: FEC {fec_snr:.1} dB SNR on lost frames ({fec_report}); \
         concealment {plc_snr:.1} dB ({plc_report})",
        lost_frames().count(),
        packets.len()
    );

    assert!(
        fec_snr > plc_snr + 3.0,
        "FEC {fec_snr:.1} dB, concealment {plc_snr:.1} dB"
    );
    assert!(fec_report.envelope_correlation > plc_report.envelope_correlation);
    Ok(())
}
