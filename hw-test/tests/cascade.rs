//! The bench cascade end to end: district, two streets and six loudspeakers as separate
//! processes on 127.0.0.1, real speech, real sockets.

mod common;

use std::time::Duration;

use common::{binaries, repo, scratch};
use hw_test::demo::{self, DemoOptions};

#[test]
fn every_loudspeaker_hears_the_whole_message_through_the_cascade() {
    let (emcomm, bench) = binaries();
    let out = scratch("cascade");
    let options = DemoOptions {
        emcomm,
        bench,
        audio: vec![
            repo().join("assets/audio/chinese.flac"),
            repo().join("assets/audio/english.wav"),
        ],
        gap: Duration::from_millis(300),
        repeat: 1,
        out: out.clone(),
    };
    let verdicts = demo::run(&options).expect("the cascade runs");
    println!("{}", demo::table(&verdicts));
    assert_eq!(verdicts.len(), 6);
    let programme_packets = 4.0 / 0.02 - 20.0;
    for v in &verdicts {
        assert!(v.pass, "{} failed: {}", v.report.name, v.fidelity);
        assert!(v.report.ended_by_bye, "{} did not see BYE", v.report.name);
        assert!(
            v.report.received as f64 > programme_packets,
            "{} received {}",
            v.report.name,
            v.report.received
        );
        assert!(
            v.report.latency_ms_p50.is_some(),
            "{} has no latency from sender reports",
            v.report.name
        );
    }
    let g711: Vec<&str> = verdicts
        .iter()
        .filter(|v| v.report.codec != "opus")
        .map(|v| v.report.codec.as_str())
        .collect();
    assert_eq!(
        g711,
        ["pcmu", "pcma"],
        "each street transcodes for one G.711 loudspeaker"
    );
    let _ = std::fs::remove_dir_all(out);
}
