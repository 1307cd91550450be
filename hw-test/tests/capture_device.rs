//! The district speaking live from the default capture device (cpal over ALSA), with no
//! sound card: ALSA's `file` plugin over `null` (tests/asound-file-null.conf) feeds the
//! capture from a raw file. The null device has no clock and runs far faster than real
//! time, so the test stops after a packet count, never after a sleep.

mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use codecs::pcm::f32_to_i16;
use common::pitch;
use drivers::rtp::payload::PayloadFormat;
use hw_test::process::{Supervised, await_ready, free_port_pair, watch};
use hw_test::replay::{read_rtp_streams, replay};
use nix::sys::signal::Signal;

#[test]
fn a_district_speaks_what_the_capture_device_hears() {
    let bench = PathBuf::from(env!("CARGO_BIN_EXE_emcomm-bench"));
    let emcomm = bench.with_file_name("emcomm");
    let dir = std::env::temp_dir().join(format!("emcomm-capture-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch");

    // Two seconds of a 1 kHz tone as raw S16_LE, 48 kHz, mono: what the "microphone" hears.
    let tone = codecs::tones::sine(1000.0, -6.0, Duration::from_secs(2), 48_000);
    let raw: Vec<u8> = tone
        .iter()
        .flat_map(|s| f32_to_i16(*s).to_le_bytes())
        .collect();
    std::fs::write(dir.join("mic.raw"), raw).expect("raw input");

    let port = free_port_pair().expect("port");
    std::fs::write(
        dir.join("district.toml"),
        format!(
            "[node]\nname = \"district\"\ntier = \"district\"\narea = \"410503\"\n\n[source]\ndevice = \"default\"\n\n\
             [[downstream]]\nname = \"recorder\"\naddress = \"127.0.0.1:{port}\"\n"
        ),
    )
    .expect("config");

    let pcap = dir.join("district.pcap");
    let mut recorder = Command::new(&bench)
        .args([
            "capture",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--limit",
            "50",
            "--out",
        ])
        .arg(&pcap)
        .stdout(Stdio::piped())
        .spawn()
        .expect("emcomm-bench capture");
    let ready = watch(
        recorder.stdout.take().expect("stdout"),
        dir.join("recorder.out"),
        "capturing",
    );
    let mut recorder = Supervised::new("recorder", recorder);
    await_ready("recorder", &ready, Duration::from_secs(20)).expect("recorder listens");

    let asound = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/asound-file-null.conf");
    let district = Command::new(&emcomm)
        .args(["run", "--config"])
        .arg(dir.join("district.toml"))
        .env(
            "ALSA_CONFIG_PATH",
            format!("/usr/share/alsa/alsa.conf:{}", asound.display()),
        )
        .env("ALSA_IN_FILE", dir.join("mic.raw"))
        .env("ALSA_OUT_FILE", dir.join("alsa-out.wav"))
        .stderr(Stdio::piped())
        .spawn()
        .expect("emcomm starts");
    let mut district = Supervised::new("district", district);
    let stderr = district.child.stderr.take().expect("stderr");
    let ended = watch(stderr, dir.join("district.log"), "BYE sent");

    assert!(
        recorder
            .wait(Duration::from_secs(30))
            .expect("recorder ends")
            .success()
    );
    district.signal(Signal::SIGTERM);
    assert!(
        district
            .wait(Duration::from_secs(10))
            .expect("district stops")
            .success()
    );
    await_ready("district", &ended, Duration::from_secs(5)).expect("the district said BYE on stop");

    let streams = read_rtp_streams(&pcap).expect("pcap");
    assert_eq!(streams.len(), 1);
    let (report, audio) = replay(&streams[0], PayloadFormat::OPUS);
    assert_eq!(report.packets, 50);
    assert_eq!(report.lost, 0);
    let hz = pitch(&audio[9600..audio.len() - 4800], 48_000);
    assert!(
        (hz - 1000.0).abs() < 5.0,
        "the district sent a {hz:.1} Hz tone"
    );
    let _ = std::fs::remove_dir_all(dir);
}
