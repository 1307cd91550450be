//! Reading and writing audio files, against real recordings and files made from known signals.

mod common;

use std::time::Duration;

use codecs::{AudioFileError, WavSink, read_audio, write_wav_i16};
use common::{TempDir, fixture};

type TestResult = Result<(), Box<dyn std::error::Error>>;

#[test]
fn chinese_flac_reads_as_48_khz_mono_lasting_0_956_s() -> TestResult {
    let audio = read_audio(fixture("chinese.flac"))?;
    let seconds = audio.duration().as_secs_f64();
    println!(
        "chinese.flac: {} Hz, {} samples, {seconds:.4} s",
        audio.sample_rate,
        audio.samples.len()
    );

    assert_eq!(audio.sample_rate, 48_000);
    assert_eq!(audio.samples.len(), 45_910);
    assert!((seconds - 0.9565).abs() < 0.001);
    Ok(())
}

#[test]
fn english_wav_reads_as_44_1_khz_mono_lasting_2_745_s() -> TestResult {
    let audio = read_audio(fixture("english.wav"))?;
    let seconds = audio.duration().as_secs_f64();
    println!(
        "english.wav: {} Hz, {} samples, {seconds:.4} s",
        audio.sample_rate,
        audio.samples.len()
    );

    assert_eq!(audio.sample_rate, 44_100);
    assert_eq!(audio.samples.len(), 121_052);
    assert!((seconds - 2.7449).abs() < 0.001);
    Ok(())
}

#[test]
fn english_wav_samples_are_the_16_bit_values_over_32768() -> TestResult {
    let audio = read_audio(fixture("english.wav"))?;
    let mut reader = hound::WavReader::open(fixture("english.wav"))?;
    let expected: Vec<f32> = reader
        .samples::<i16>()
        .map(|s| s.map(|s| f32::from(s) / 32_768.0))
        .collect::<Result<_, _>>()?;
    assert_eq!(audio.samples, expected);
    assert_eq!(audio.to_i16().len(), expected.len());
    Ok(())
}

#[test]
fn a_stereo_24_bit_flac_at_44_1_khz_is_mixed_to_mono() -> TestResult {
    // Left channel: 0.5 sin(2π·1000·n/44100); right channel: silence (see fixtures/README.md).
    let audio = read_audio(fixture("stereo_24bit_44k1.flac"))?;
    assert_eq!(audio.sample_rate, 44_100);
    assert_eq!(audio.samples.len(), 22_050);

    // SoX ramps the first and last 67 samples of a synthesised tone; compare those between.
    let worst = audio
        .samples
        .iter()
        .enumerate()
        .take(22_050 - 100)
        .skip(100)
        .map(|(n, s)| {
            let left = 0.5 * (std::f64::consts::TAU * 1_000.0 * n as f64 / 44_100.0).sin();
            (f64::from(*s) - left / 2.0).abs()
        })
        .fold(0.0, f64::max);
    // Half of one 24-bit step, plus float rounding.
    assert!(worst < 1e-6, "largest deviation {worst}");
    Ok(())
}

fn write_wav<S: hound::Sample + Copy>(
    path: &std::path::Path,
    spec: hound::WavSpec,
    samples: &[S],
) -> TestResult {
    let mut writer = hound::WavWriter::create(path, spec)?;
    for &sample in samples {
        writer.write_sample(sample)?;
    }
    writer.finalize()?;
    Ok(())
}

fn spec(channels: u16, sample_rate: u32, bits: u16, format: hound::SampleFormat) -> hound::WavSpec {
    hound::WavSpec {
        channels,
        sample_rate,
        bits_per_sample: bits,
        sample_format: format,
    }
}

#[test]
fn an_8_bit_wav_reads_every_value_over_128() -> TestResult {
    let dir = TempDir::new("wav8");
    let path = dir.file("all-values.wav");
    let values: Vec<i8> = (i8::MIN..=i8::MAX).collect();
    write_wav(&path, spec(1, 8_000, 8, hound::SampleFormat::Int), &values)?;

    let audio = read_audio(&path)?;
    let expected: Vec<f32> = values.iter().map(|&v| f32::from(v) / 128.0).collect();
    assert_eq!(audio.sample_rate, 8_000);
    assert_eq!(audio.samples, expected);
    Ok(())
}

#[test]
fn a_24_bit_wav_reads_values_over_2_to_the_23() -> TestResult {
    let dir = TempDir::new("wav24");
    let path = dir.file("extremes.wav");
    let values = [-8_388_608, -4_194_304, -1, 0, 1, 12_345, 8_388_607];
    write_wav(
        &path,
        spec(1, 44_100, 24, hound::SampleFormat::Int),
        &values,
    )?;

    let audio = read_audio(&path)?;
    let expected: Vec<f32> = values
        .iter()
        .map(|&v| (f64::from(v) / 8_388_608.0) as f32)
        .collect();
    assert_eq!(audio.sample_rate, 44_100);
    assert_eq!(audio.samples, expected);
    Ok(())
}

#[test]
fn a_32_bit_float_wav_reads_its_values_unchanged() -> TestResult {
    let dir = TempDir::new("wavf32");
    let path = dir.file("float.wav");
    let values = [-1.0f32, -0.5, 0.0, 0.125, 0.999, 1.0];
    write_wav(
        &path,
        spec(1, 48_000, 32, hound::SampleFormat::Float),
        &values,
    )?;

    let audio = read_audio(&path)?;
    assert_eq!(audio.sample_rate, 48_000);
    assert_eq!(audio.samples, values);
    Ok(())
}

#[test]
fn a_stereo_16_bit_wav_reads_as_the_mean_of_its_channels() -> TestResult {
    let dir = TempDir::new("wavstereo");
    let path = dir.file("stereo.wav");
    let interleaved: [i16; 8] = [1_000, 3_000, -32_768, 32_767, 0, -2, 16_384, 16_384];
    write_wav(
        &path,
        spec(2, 44_100, 16, hound::SampleFormat::Int),
        &interleaved,
    )?;

    let audio = read_audio(&path)?;
    let expected = [2_000.0 / 32_768.0, -1.0 / 65_536.0, -1.0 / 32_768.0, 0.5];
    assert_eq!(audio.samples, expected);
    Ok(())
}

#[test]
fn a_stereo_24_bit_wav_reads_as_the_mean_of_its_channels() -> TestResult {
    let dir = TempDir::new("wavstereo24");
    let path = dir.file("stereo24.wav");
    let interleaved = [4_194_304, 0, -8_388_608, 8_388_607, 100, 300];
    write_wav(
        &path,
        spec(2, 48_000, 24, hound::SampleFormat::Int),
        &interleaved,
    )?;

    let audio = read_audio(&path)?;
    let expected = [0.25, -0.5 / 8_388_608.0, 200.0 / 8_388_608.0];
    assert_eq!(audio.samples, expected);
    Ok(())
}

#[test]
fn a_wav_written_whole_reads_back_unchanged() -> TestResult {
    let dir = TempDir::new("write");
    let path = dir.file("whole.wav");
    let samples: Vec<i16> = (0..8_000)
        .map(|n| ((n * 37) % 65_536 - 32_768) as i16)
        .collect();
    write_wav_i16(&path, 8_000, &samples)?;

    let audio = read_audio(&path)?;
    assert_eq!(audio.sample_rate, 8_000);
    assert_eq!(audio.to_i16(), samples);
    Ok(())
}

#[test]
fn a_wav_sink_appends_frames_and_finishes_a_readable_file() -> TestResult {
    let dir = TempDir::new("sink");
    let path = dir.file("stream.wav");
    let mut sink = WavSink::create(&path, 48_000)?;
    let mut written = Vec::new();
    for frame_index in 0..50i16 {
        let frame: Vec<i16> = (0..960)
            .map(|n| frame_index * 100 + (n % 7) as i16)
            .collect();
        sink.write(&frame)?;
        written.extend(frame);
    }
    assert_eq!(sink.samples_written(), 48_000);
    sink.finish()?;

    let audio = read_audio(&path)?;
    assert_eq!(audio.sample_rate, 48_000);
    assert_eq!(audio.duration(), Duration::from_secs(1));
    assert_eq!(audio.to_i16(), written);
    Ok(())
}

#[test]
fn converting_english_wav_to_48_khz_keeps_its_duration() -> TestResult {
    let audio = read_audio(fixture("english.wav"))?;
    let before = audio.duration();
    let audio = audio.to_rate(48_000)?;
    assert_eq!(audio.sample_rate, 48_000);
    // round(121 052 × 48 000 / 44 100)
    assert_eq!(audio.samples.len(), 131_757);
    assert!(audio.duration().abs_diff(before) < Duration::from_micros(21));
    Ok(())
}

#[test]
fn a_missing_file_is_reported_as_not_found_with_its_name() {
    let err = read_audio("/nonexistent/emcomm/missing.wav");
    let Err(err @ AudioFileError::NotFound { .. }) = err else {
        panic!("expected NotFound, got {err:?}");
    };
    assert_eq!(
        err.to_string(),
        "/nonexistent/emcomm/missing.wav: file not found"
    );
}

#[test]
fn a_text_file_is_reported_as_an_unsupported_format() -> TestResult {
    let dir = TempDir::new("text");
    let path = dir.file("notes.wav");
    std::fs::write(&path, "these are not samples\n".repeat(20))?;

    let err = read_audio(&path);
    assert!(
        matches!(&err, Err(AudioFileError::NotWavOrFlac { path: p }) if *p == path),
        "{err:?}"
    );
    Ok(())
}

#[test]
fn a_corrupt_flac_frame_is_reported_with_the_packet_after_it() -> TestResult {
    let dir = TempDir::new("corrupt");
    let path = dir.file("corrupt.flac");
    let mut bytes = std::fs::read(fixture("chinese.flac"))?;
    let middle = bytes.len() / 2;
    if let Some(region) = bytes.get_mut(middle..middle + 64) {
        region.fill(0x5A);
    }
    std::fs::write(&path, &bytes)?;

    let result = read_audio(&path);
    // symphonia skips the damaged 4096-sample FLAC frame; the gap it leaves is the error.
    match result {
        Err(err @ AudioFileError::MissingAudio { .. }) => {
            let message = err.to_string();
            println!("corrupt FLAC: {message}");
            assert!(
                message.contains("corrupt.flac: 4096 samples missing before packet"),
                "{message}"
            );
        }
        other => panic!(
            "expected missing audio, got {:?}",
            other.map(|audio| audio.samples.len())
        ),
    }
    Ok(())
}

/// A FLAC file whose tag block claims a 4 GiB comment decodes like the same file without
/// tags: the claim is never acted on (found by fuzzing).
#[test]
fn a_flac_tag_claiming_gigabytes_is_ignored() -> Result<(), Box<dyn std::error::Error>> {
    let original = std::fs::read(fixture("chinese.flac"))?;
    // After "fLaC", the STREAMINFO block (4-byte header + 34 bytes), then our block.
    let (head, rest) = original.split_at(4 + 4 + 34);
    let mut crafted = head.to_vec();
    crafted[4] &= 0x7f; // STREAMINFO is no longer the last block
    let comment: Vec<u8> = [
        0u32.to_le_bytes(),
        1u32.to_le_bytes(),
        u32::MAX.to_le_bytes(),
    ]
    .concat();
    let last_flag = if original[4] & 0x80 != 0 { 0x80 } else { 0 };
    crafted.extend_from_slice(&[last_flag | 4, 0, 0, comment.len() as u8]);
    crafted.extend_from_slice(&comment);
    crafted.extend_from_slice(rest);

    let audio =
        codecs::audio_file::read_audio_bytes(crafted, std::path::Path::new("crafted.flac"))?;
    let reference = read_audio(fixture("chinese.flac"))?;
    assert_eq!(audio.sample_rate, reference.sample_rate);
    assert_eq!(audio.samples, reference.samples);
    Ok(())
}

/// A FLAC tag block whose length runs past the end of the file, holding a comment that
/// claims 4 GiB, is an error and not an allocation (found by fuzzing).
#[test]
fn a_flac_tag_block_running_past_the_end_is_an_error() {
    let original = std::fs::read(fixture("chinese.flac")).expect("fixture");
    let mut crafted = original[..4 + 4 + 34].to_vec();
    crafted[4] &= 0x7f;
    crafted.extend_from_slice(&[0x84, 0xff, 0xff, 0x44]);
    crafted.extend_from_slice(&[0, 0, 0, 0, 1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]);
    let result =
        codecs::audio_file::read_audio_bytes(crafted, std::path::Path::new("crafted.flac"));
    assert!(
        result.is_err(),
        "a file without its audio decodes to nothing"
    );
}

/// Bytes that only contain a FLAC marker somewhere inside are not a FLAC file (found by
/// fuzzing: the format probe would search for the marker and trust what follows).
#[test]
fn a_flac_marker_inside_other_bytes_is_not_a_flac_file() {
    let mut crafted = b"RIFW junk".to_vec();
    crafted.extend_from_slice(&std::fs::read(fixture("chinese.flac")).expect("fixture"));
    let result = codecs::audio_file::read_audio_bytes(crafted, std::path::Path::new("x.wav"));
    assert!(
        matches!(result, Err(AudioFileError::NotWavOrFlac { .. })),
        "{result:?}"
    );
}

/// A WAV file whose LIST chunk holds a tag claiming 4 GiB still decodes, to the same
/// samples: only `fmt ` and `data` are read.
#[test]
fn a_wav_tag_claiming_gigabytes_is_ignored() -> TestResult {
    let original = std::fs::read(fixture("english.wav"))?;
    let reference = read_audio(fixture("english.wav"))?;
    let mut list = b"INFOINAM".to_vec();
    list.extend_from_slice(&0xFFFF_FF00u32.to_le_bytes());
    let mut crafted = original[..12].to_vec();
    crafted.extend_from_slice(b"LIST");
    crafted.extend_from_slice(&(list.len() as u32).to_le_bytes());
    crafted.extend_from_slice(&list);
    crafted.extend_from_slice(&original[12..]);
    let audio = codecs::audio_file::read_audio_bytes(crafted, std::path::Path::new("x.wav"))?;
    assert_eq!(audio.samples, reference.samples);
    Ok(())
}

/// A FLAC file whose first block is not STREAMINFO is an error, and its audio bytes are
/// never read as metadata (found by fuzzing).
#[test]
fn a_flac_file_without_streaminfo_first_is_an_error() {
    let mut crafted = b"fLaC".to_vec();
    crafted.extend_from_slice(&[0xdf, 0, 0, 2, 0, 0]); // the last block, of an unknown type
    crafted.extend_from_slice(&[
        0x84, 0, 0, 12, 0, 0, 0, 0, 1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff,
    ]);
    let result = codecs::audio_file::read_audio_bytes(crafted, std::path::Path::new("x.flac"));
    assert!(result.is_err());
}

/// A FLAC frame crafted so that symphonia's LPC predictor overflows an addition: with
/// overflow checks on (as in tests) the decoder panics, and the panic is reported as a
/// failed file (found by fuzzing; the fixture is the fuzzer's input without its first,
/// format-choosing byte).
#[test]
fn a_decoder_panic_on_a_crafted_flac_is_an_error_not_a_crash() {
    let bytes = std::fs::read(fixture("flac-lpc-overflow.flac")).expect("fixture");
    let result = codecs::audio_file::read_audio_bytes(bytes, std::path::Path::new("crafted.flac"));
    assert!(result.is_err(), "{result:?}");
}

/// espeak-ng writes its WAV header before it knows the length of the speech, with a
/// placeholder of 0x7FFF_F000 bytes for the RIFF and `data` chunks.
#[test]
fn a_streamed_wav_with_placeholder_lengths_reads_to_its_end() -> TestResult {
    let mut wav = b"RIFF\x24\xf0\xff\x7fWAVEfmt \x10\0\0\0".to_vec();
    wav.extend_from_slice(&[1, 0, 1, 0, 0x22, 0x56, 0, 0, 0x44, 0xac, 0, 0, 2, 0, 16, 0]);
    wav.extend_from_slice(b"data\x00\xf0\xff\x7f");
    wav.extend_from_slice(&[0x10, 0, 0xf0, 0xff]);

    let audio = codecs::audio_file::read_audio_bytes(wav, std::path::Path::new("stream"))?;
    assert_eq!(audio.sample_rate, 22_050);
    assert_eq!(audio.samples.len(), 2);
    Ok(())
}
