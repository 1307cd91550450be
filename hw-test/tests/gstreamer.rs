//! Interoperability with GStreamer, an independent RTP stack, in both directions.
//!
//! * GStreamer sends Opus RTP into a street gateway, which relays it to a simulated
//!   loudspeaker: the loudspeaker hears the whole tone at its pitch.
//! * The district sends its programme to GStreamer, which decodes it into a WAV: the
//!   WAV holds the whole programme.
//!
//! Needs `gst-launch-1.0` with the base and good plugins (scripts/install-deps.sh).

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use codecs::fidelity::score;
use codecs::programme::assemble;
use common::{binaries, pitch, repo, scratch};
use hw_test::process::{Supervised, await_ready, free_port_pair, watch};
use hw_test::speaker_sim::SpeakerReport;
use nix::sys::signal::Signal;

fn start_speaker(bench: &Path, dir: &Path, port: u16, codec: &str) -> Supervised {
    let mut child = Command::new(bench)
        .args([
            "speaker",
            "--name",
            "pole",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--codec",
            codec,
        ])
        .args([
            "--rtcp-interval-ms",
            "500",
            "--wait-limit-s",
            "30",
            "--silence-limit-s",
            "5",
        ])
        .arg("--wav")
        .arg(dir.join("heard.wav"))
        .arg("--stats")
        .arg(dir.join("heard.json"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("emcomm-bench starts");
    let ready = watch(
        child.stdout.take().expect("stdout"),
        dir.join("speaker.out"),
        "listening",
    );
    let _ = watch(
        child.stderr.take().expect("stderr"),
        dir.join("speaker.log"),
        "",
    );
    let speaker = Supervised::new("speaker", child);
    await_ready("speaker", &ready, Duration::from_secs(20)).expect("speaker listens");
    speaker
}

#[test]
fn gstreamer_opus_reaches_a_loudspeaker_through_a_street_gateway() {
    let (emcomm, bench) = binaries();
    let dir = scratch("in");
    let (street_port, speaker_port) = (
        free_port_pair().expect("port"),
        free_port_pair().expect("port"),
    );
    let config = dir.join("street.toml");
    std::fs::write(
        &config,
        format!(
            "[node]\nname = \"street\"\ntier = \"street\"\narea = \"410503001\"\n\n\
             [rtp]\nlisten = \"127.0.0.1:{street_port}\"\ninput_timeout_ms = 1000\nrtcp_interval_ms = 500\n\n\
             [upstream]\nallow = [\"127.0.0.1\"]\n\n\
             [[downstream]]\nname = \"pole\"\naddress = \"127.0.0.1:{speaker_port}\"\ncodec = \"opus\"\n"
        ),
    )
    .expect("config");

    let mut speaker = start_speaker(&bench, &dir, speaker_port, "opus");
    let mut street = Command::new(&emcomm)
        .args(["run", "--config"])
        .arg(&config)
        .stderr(Stdio::piped())
        .spawn()
        .expect("emcomm starts");
    let ready = watch(
        street.stderr.take().expect("stderr"),
        dir.join("street.log"),
        "relay node started",
    );
    let mut street = Supervised::new("street", street);
    await_ready("street", &ready, Duration::from_secs(20)).expect("street up");

    // 150 buffers of 20 ms: 3 s of a 440 Hz tone, paced in real time.
    let status = Command::new("gst-launch-1.0")
        .args([
            "-q",
            "audiotestsrc",
            "is-live=true",
            "num-buffers=150",
            "samplesperbuffer=960",
            "wave=sine",
            "freq=440",
        ])
        .args([
            "!",
            "audio/x-raw,rate=48000,channels=1",
            "!",
            "audioconvert",
        ])
        .args([
            "!",
            "opusenc",
            "bitrate=32000",
            "frame-size=20",
            "inband-fec=true",
            "packet-loss-percentage=10",
        ])
        .args([
            "!",
            "rtpopuspay",
            "pt=111",
            "!",
            "udpsink",
            "host=127.0.0.1",
            &format!("port={street_port}"),
        ])
        .status()
        .expect("gst-launch-1.0 runs (install gstreamer1.0-tools)");
    assert!(status.success());

    // The street times the input out, says BYE, and the loudspeaker plays out and exits.
    let status = speaker.wait(Duration::from_secs(30)).expect("speaker ends");
    assert!(status.success(), "speaker failed; see {}", dir.display());
    street.signal(Signal::SIGTERM);
    assert!(
        street
            .wait(Duration::from_secs(10))
            .expect("street stops")
            .success()
    );

    let report: SpeakerReport =
        serde_json::from_str(&std::fs::read_to_string(dir.join("heard.json")).expect("stats"))
            .expect("json");
    assert!(report.ended_by_bye, "the street's BYE ended the stream");
    assert!(report.received >= 148, "received {}", report.received);
    assert_eq!(report.lost, 0);
    let heard = codecs::read_audio(dir.join("heard.wav")).expect("wav");
    let seconds = heard.samples.len() as f64 / f64::from(heard.sample_rate);
    assert!((2.9..3.4).contains(&seconds), "heard {seconds:.2} s");
    let steady = &heard.samples[(heard.sample_rate / 2) as usize..(heard.sample_rate * 2) as usize];
    let hz = pitch(steady, heard.sample_rate);
    assert!((hz - 440.0).abs() < 2.0, "pitch {hz:.1} Hz");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn gstreamer_decodes_the_districts_stream_into_the_whole_programme() {
    let (emcomm, _) = binaries();
    let dir = scratch("out");
    let port = free_port_pair().expect("port");
    let audio = [
        repo().join("assets/audio/chinese.flac"),
        repo().join("assets/audio/english.wav"),
    ];
    let files: Vec<String> = audio
        .iter()
        .map(|a| format!("\"{}\"", a.display()))
        .collect();
    let config = dir.join("district.toml");
    std::fs::write(
        &config,
        format!(
            "[node]\nname = \"district\"\ntier = \"district\"\narea = \"410503\"\n\n\
             [source]\nfiles = [{}]\ngap_ms = 300\nrepeat = 1\n\n\
             [[downstream]]\nname = \"gst\"\naddress = \"127.0.0.1:{port}\"\nkind = \"gateway\"\n",
            files.join(", ")
        ),
    )
    .expect("config");

    let wav = dir.join("gst.wav");
    let mut gst = Command::new("gst-launch-1.0")
        .args(["-e", "udpsrc", "address=127.0.0.1", &format!("port={port}")])
        .arg("caps=application/x-rtp,media=audio,clock-rate=48000,encoding-name=OPUS,payload=111")
        .args([
            "!",
            "rtpjitterbuffer",
            "latency=60",
            "!",
            "rtpopusdepay",
            "!",
            "opusdec",
            "plc=true",
        ])
        .args([
            "!",
            "audioconvert",
            "!",
            "audio/x-raw,format=S16LE,channels=1",
            "!",
            "wavenc",
            "!",
            "filesink",
        ])
        .arg(format!("location={}", wav.display()))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("gst-launch-1.0 runs (install gstreamer1.0-tools)");
    // gst-launch prints this once the pipeline is PLAYING and udpsrc is bound.
    let ready = watch(
        gst.stdout.take().expect("stdout"),
        dir.join("gst.out"),
        "Setting pipeline to PLAYING",
    );
    let mut gst = Supervised::new("gst-launch", gst);
    await_ready("gst-launch", &ready, Duration::from_secs(20)).expect("gst playing");

    let status = Command::new(&emcomm)
        .args(["run", "--config"])
        .arg(&config)
        .stderr(Stdio::null())
        .status()
        .expect("emcomm runs");
    assert!(status.success());
    gst.signal(Signal::SIGINT);
    assert!(
        gst.wait(Duration::from_secs(20))
            .expect("gst stops")
            .success()
    );

    let programme = assemble(&audio, Duration::from_millis(300), 1, 48_000).expect("programme");
    let heard = codecs::read_audio(&wav)
        .expect("gst wrote a WAV")
        .to_rate(48_000)
        .expect("rate");
    let expected = programme.len() as f64 / 48_000.0;
    let got = heard.samples.len() as f64 / 48_000.0;
    assert!(
        got >= expected - 0.1 && got <= expected + 0.5,
        "programme {expected:.2} s, GStreamer decoded {got:.2} s"
    );
    let fidelity = score(&programme, &heard.samples, 48_000);
    assert!(
        fidelity.envelope_correlation > 0.9 && fidelity.coverage > 0.98,
        "{fidelity}"
    );
    let _ = std::fs::remove_dir_all(dir);
}
