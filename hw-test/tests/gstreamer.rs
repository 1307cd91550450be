//! Interoperability with GStreamer, an independent RTP and SRTP stack, in both
//! directions.
//!
//! * GStreamer sends Opus RTP into a street gateway, which relays it to a simulated
//!   loudspeaker: the loudspeaker hears the whole tone at its pitch. The same as SRTP
//!   (`srtpenc`, libsrtp) into a street that takes only SRTP from above, after plain RTP
//!   it refuses.
//! * The district sends its programme to GStreamer, which decodes it into a WAV: the
//!   WAV holds the whole programme. The same as SRTP, decoded by `srtpdec`.
//!
//! Needs `gst-launch-1.0` with the base, good and bad plugins (scripts/install-deps.sh).

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

/// The SRTP key of the tests' voice links, as GStreamer's `srtpenc key=` takes it.
const SRTP_KEY: &str = "3a1f9c0e6b2d4f8a1c3e5f7092b4d6f8e0a2c4e6f8101214161820222426";

/// The caps properties that make `srtpenc`/`srtpdec` use `AES_CM_128_HMAC_SHA1_80`.
const SRTP_SUITE: [&str; 4] = [
    "rtp-cipher=aes-128-icm",
    "rtp-auth=hmac-sha1-80",
    "rtcp-cipher=aes-128-icm",
    "rtcp-auth=hmac-sha1-80",
];

/// Writes the tests' SRTP key file (mode 0600) into `dir`.
fn srtp_key_file(dir: &Path) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt as _;
    let path = dir.join("link.srtp.key");
    std::fs::write(&path, format!("# test voice link\n{SRTP_KEY}\n")).expect("key");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("mode");
    path
}

/// `buffers` of 20 ms of a 440 Hz tone from GStreamer to `port`, as Opus RTP, or as
/// SRTP under the tests' key.
fn gst_tone(port: u16, buffers: u32, srtp: bool) {
    let mut command = Command::new("gst-launch-1.0");
    command
        .args([
            "-q",
            "audiotestsrc",
            "is-live=true",
            &format!("num-buffers={buffers}"),
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
        .args(["!", "rtpopuspay", "pt=111"]);
    if srtp {
        command
            .args(["!", "srtpenc", &format!("key={SRTP_KEY}")])
            .args(SRTP_SUITE);
    }
    let status = command
        .args(["!", "udpsink", "host=127.0.0.1", &format!("port={port}")])
        .status()
        .expect("gst-launch-1.0 runs (install gstreamer1.0-tools)");
    assert!(status.success());
}

#[test]
fn gstreamer_opus_reaches_a_loudspeaker_through_a_street_gateway() {
    tone_through_a_street(false);
}

#[test]
fn gstreamer_srtp_reaches_a_loudspeaker_through_a_street_that_refuses_plain_rtp() {
    tone_through_a_street(true);
}

/// GStreamer's tone through a street gateway to a simulated loudspeaker; with `srtp`,
/// 1 s of plain RTP first, which the street must refuse, then the tone as SRTP.
fn tone_through_a_street(srtp: bool) {
    let (emcomm, bench) = binaries();
    let dir = scratch(if srtp { "in-srtp" } else { "in" });
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
             [upstream]\nallow = [\"127.0.0.1\"]\n{}\n\
             [[downstream]]\nname = \"pole\"\naddress = \"127.0.0.1:{speaker_port}\"\ncodec = \"opus\"\n",
            if srtp {
                format!("srtp_key = \"{}\"\n", srtp_key_file(&dir).display())
            } else {
                String::new()
            }
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

    if srtp {
        gst_tone(street_port, 50, false);
    }
    // 150 buffers of 20 ms: 3 s of a 440 Hz tone, paced in real time.
    gst_tone(street_port, 150, srtp);

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
    if srtp {
        let log = std::fs::read_to_string(dir.join("street.log")).expect("street log");
        // GStreamer sends a packet or two more than its 50 buffers.
        let refused: u32 = log
            .split("srtp_refused=")
            .nth(1)
            .and_then(|rest| rest.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        assert!((50..=52).contains(&refused), "the plain RTP refused: {log}");
    }
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
    programme_to_gstreamer(false);
}

#[test]
fn gstreamer_decodes_the_districts_srtp_into_the_whole_programme() {
    programme_to_gstreamer(true);
}

/// GStreamer's `udpsrc` caps for the district's stream: Opus RTP, or SRTP under the
/// tests' key for the stream `ssrc` (`srtpdec` takes a key per SSRC).
fn caps(srtp: Option<u32>) -> String {
    let rtp = "media=audio,clock-rate=48000,encoding-name=OPUS,payload=111";
    match srtp {
        None => format!("caps=application/x-rtp,{rtp}"),
        Some(ssrc) => format!(
            "caps=application/x-srtp,{rtp},ssrc=(uint){ssrc},srtp-key=(buffer){SRTP_KEY},\
             srtp-cipher=aes-128-icm,srtp-auth=hmac-sha1-80,srtcp-cipher=aes-128-icm,srtcp-auth=hmac-sha1-80"
        ),
    }
}

/// The district's programme to GStreamer, decoded into a WAV that must hold the whole
/// programme. With `srtp` the district protects its stream under the tests' key; the
/// test takes the stream first, reads its SSRC from the clear header, and passes every
/// datagram on to `srtpdec` unchanged.
fn programme_to_gstreamer(srtp: bool) {
    let (emcomm, _) = binaries();
    let dir = scratch(if srtp { "out-srtp" } else { "out" });
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
    let key = if srtp {
        format!("srtp_key = \"{}\"\n", srtp_key_file(&dir).display())
    } else {
        String::new()
    };
    std::fs::write(
        &config,
        format!(
            "[node]\nname = \"district\"\ntier = \"district\"\narea = \"410503\"\n\n\
             [source]\nfiles = [{}]\ngap_ms = 300\nrepeat = 1\n\n\
             [[downstream]]\nname = \"gst\"\naddress = \"127.0.0.1:{port}\"\nkind = \"gateway\"\n{key}",
            files.join(", ")
        ),
    )
    .expect("config");

    let wav = dir.join("gst.wav");
    let gst_port = if srtp {
        free_port_pair().expect("port")
    } else {
        port
    };
    let start_gst = |ssrc: Option<u32>| {
        let mut gst = Command::new("gst-launch-1.0")
            .args([
                "-e",
                "udpsrc",
                "address=127.0.0.1",
                &format!("port={gst_port}"),
            ])
            .arg(caps(ssrc))
            .args(if ssrc.is_some() {
                vec!["!", "srtpdec"]
            } else {
                vec!["!", "rtpjitterbuffer", "latency=60"]
            })
            .args(["!", "rtpopusdepay", "!", "opusdec", "plc=true"])
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
        let gst = Supervised::new("gst-launch", gst);
        await_ready("gst-launch", &ready, Duration::from_secs(20)).expect("gst playing");
        gst
    };

    let mut district = Command::new(&emcomm);
    district
        .args(["run", "--config"])
        .arg(&config)
        .stderr(Stdio::null());
    let (mut gst, status) = if srtp {
        let (ssrc, passed_on) = pass_srtp_on(port, gst_port);
        let mut district = Supervised::new("district", district.spawn().expect("emcomm runs"));
        let ssrc = ssrc
            .recv_timeout(Duration::from_secs(20))
            .expect("the district's first packet");
        let gst = start_gst(Some(ssrc));
        passed_on.store(true, std::sync::atomic::Ordering::SeqCst);
        let status = district
            .wait(Duration::from_secs(120))
            .expect("district ends");
        // The last datagrams reach GStreamer before it is told to end.
        std::thread::sleep(Duration::from_secs(1));
        (gst, status)
    } else {
        let gst = start_gst(None);
        (gst, district.status().expect("emcomm runs"))
    };
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

/// Takes the datagrams sent to `port`, says the SSRC of the first, holds them until
/// `ready` is set, and from then on passes them to `to` unchanged.
fn pass_srtp_on(
    port: u16,
    to: u16,
) -> (
    std::sync::mpsc::Receiver<u32>,
    std::sync::Arc<std::sync::atomic::AtomicBool>,
) {
    use std::sync::atomic::Ordering;
    let socket = std::net::UdpSocket::bind(("127.0.0.1", port)).expect("bind");
    socket
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let (ssrc_tx, ssrc_rx) = std::sync::mpsc::channel();
    let ready = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let go = ready.clone();
    std::thread::spawn(move || {
        let mut held: Vec<Vec<u8>> = Vec::new();
        let mut first = true;
        let mut buf = [0u8; 2048];
        while let Ok(len) = socket.recv(&mut buf) {
            if first && len >= 12 {
                first = false;
                let _ = ssrc_tx.send(u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]));
            }
            held.push(buf[..len].to_vec());
            if go.load(Ordering::SeqCst) {
                for d in held.drain(..) {
                    let _ = socket.send_to(&d, ("127.0.0.1", to));
                }
                // The programme has ended after 2 s without a datagram.
                let _ = socket.set_read_timeout(Some(Duration::from_secs(2)));
            }
        }
    });
    (ssrc_rx, ready)
}
