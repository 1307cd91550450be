//! A capture we made of a real GStreamer Opus stream, replayed through the jitter buffer
//! with its captured timing, then with network trouble added to that timing.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::pitch;
use drivers::rtp::payload::PayloadFormat;
use hw_test::replay::{CapturedStream, read_rtp_streams, replay};

fn capture() -> CapturedStream {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gst-opus-440hz.pcap");
    let mut streams = read_rtp_streams(&path).expect("the capture reads");
    assert_eq!(streams.len(), 1, "one RTP stream in the capture");
    streams.remove(0)
}

fn steady_part(audio: &[i16]) -> &[i16] {
    &audio[24_000..audio.len().min(120_000)]
}

#[test]
fn the_capture_replays_whole_and_on_pitch() {
    let stream = capture();
    assert_eq!(stream.payload_type, 111);
    let (report, audio) = replay(&stream, PayloadFormat::OPUS);
    assert_eq!(
        (report.packets, report.lost, report.late, report.concealed),
        (151, 0, 0, 0)
    );
    let seconds = audio.len() as f64 / 48_000.0;
    assert!((2.95..3.1).contains(&seconds), "{seconds:.3} s decoded");
    assert!((pitch(steady_part(&audio), 48_000) - 440.0).abs() < 1.0);
}

#[test]
fn added_jitter_and_reordering_grow_the_buffer_and_lose_nothing() {
    let mut stream = capture();
    // Up to 70 ms extra transit in a fixed pattern: many packets overtake others.
    let pattern = [0u64, 40, 10, 70, 20, 0, 55, 5, 65, 30];
    for (i, (at, _)) in stream.packets.iter_mut().enumerate() {
        *at += Duration::from_millis(pattern[i % pattern.len()]);
    }
    stream.packets.sort_by_key(|(at, _)| *at);
    let (report, audio) = replay(&stream, PayloadFormat::OPUS);
    assert_eq!(report.lost, 0);
    assert!(report.stretches >= 1, "the buffer grew: {report:?}");
    assert!(report.late <= 3, "only while learning: {report:?}");
    assert!(
        report.final_delay_ms.is_some_and(|d| d >= 70.0),
        "{report:?}"
    );
    assert!((pitch(steady_part(&audio), 48_000) - 440.0).abs() < 2.0);
}

#[test]
fn every_tenth_packet_lost_is_rebuilt_from_fec() {
    let mut stream = capture();
    let mut index = 0;
    stream.packets.retain(|_| {
        index += 1;
        index % 10 != 5
    });
    let (report, audio) = replay(&stream, PayloadFormat::OPUS);
    assert_eq!(report.lost, 15);
    assert_eq!(report.fec_recovered, 15);
    assert_eq!(report.concealed, 0);
    let seconds = audio.len() as f64 / 48_000.0;
    assert!(
        (2.95..3.1).contains(&seconds),
        "the recovered frames keep the length: {seconds:.3} s"
    );
}
