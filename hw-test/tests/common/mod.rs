//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use hw_test::process::{Supervised, await_ready, free_port_pair, watch};

/// The repository's root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The `emcomm` and `emcomm-bench` binaries of this build.
pub fn binaries() -> (PathBuf, PathBuf) {
    let bench = PathBuf::from(env!("CARGO_BIN_EXE_emcomm-bench"));
    let emcomm = bench.with_file_name("emcomm");
    assert!(
        emcomm.exists(),
        "build the workspace first: {} is missing",
        emcomm.display()
    );
    (emcomm, bench)
}

/// A scratch folder for one test, unique to this process.
pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("emcomm-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch folder");
    dir
}

/// Frequency of a steady tone from its rising zero crossings.
pub fn pitch<T: Copy + Into<f64>>(samples: &[T], sample_rate: u32) -> f64 {
    let crossings: Vec<usize> = samples
        .windows(2)
        .enumerate()
        .filter(|(_, w)| w[0].into() < 0.0 && w[1].into() >= 0.0)
        .map(|(i, _)| i)
        .collect();
    let (Some(first), Some(last)) = (crossings.first(), crossings.last()) else {
        return 0.0;
    };
    (crossings.len() - 1) as f64 * f64::from(sample_rate) / (last - first) as f64
}

/// Starts a terminal simulator (`emcomm-bench sim KIND`) linked at `dir/NAME.pty`,
/// logging to `dir/NAME.jsonl`, with `args`; waits for the line holding `ready`.
pub fn start_sim(
    kind: &str,
    ready: &'static str,
    dir: &Path,
    name: &str,
    args: &[&str],
) -> (Supervised, PathBuf) {
    let (_, bench) = binaries();
    let link = dir.join(format!("{name}.pty"));
    let mut child = Command::new(bench)
        .args(["sim", kind, "--link"])
        .arg(&link)
        .arg("--log")
        .arg(dir.join(format!("{name}.jsonl")))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("emcomm-bench sim");
    let ready = watch(
        child.stdout.take().expect("stdout"),
        dir.join(format!("{name}.out")),
        ready,
    );
    let sim = Supervised::new(name, child);
    await_ready(name, &ready, Duration::from_secs(20)).expect("simulator up");
    (sim, link)
}

/// Two free loopback addresses for a pair of simulators to listen on.
pub fn pair_addresses() -> (String, String) {
    let (a, b) = (
        hw_test::process::free_port_pair().expect("port"),
        hw_test::process::free_port_pair().expect("port"),
    );
    (format!("127.0.0.1:{a}"), format!("127.0.0.1:{b}"))
}

/// A simulator's own arguments, and those that pair it: it listens on `listen` and
/// sends to its peer at `peer`.
pub fn pairing_args(own: &[&str], listen: &str, peer: &str) -> Vec<String> {
    own.iter()
        .map(|a| a.to_string())
        .chain([
            "--listen".into(),
            listen.into(),
            "--peer".into(),
            peer.into(),
        ])
        .collect()
}

/// Two simulators of `kind` named a and b, paired over the loopback, each started with
/// its own extra arguments; gives each one's process and link.
pub fn paired(
    kind: &str,
    ready: &'static str,
    dir: &Path,
    a_args: &[&str],
    b_args: &[&str],
) -> ((Supervised, PathBuf), (Supervised, PathBuf)) {
    let (a_listen, b_listen) = pair_addresses();
    let a = pairing_args(a_args, &a_listen, &b_listen);
    let b = pairing_args(b_args, &b_listen, &a_listen);
    let (a, b): (Vec<&str>, Vec<&str>) = (
        a.iter().map(String::as_str).collect(),
        b.iter().map(String::as_str).collect(),
    );
    (
        start_sim(kind, ready, dir, "a", &a),
        start_sim(kind, ready, dir, "b", &b),
    )
}

/// A pair of BeiDou simulators, cards 0166166 (a) and 0247718 (b), 1 s service
/// interval, paired over the loopback.
pub fn paired_beidou(dir: &Path) -> ((Supervised, PathBuf), (Supervised, PathBuf)) {
    paired(
        "beidou",
        "beidou simulator",
        dir,
        &["--card", "0166166", "--interval-s", "1"],
        &["--card", "0247718", "--interval-s", "1"],
    )
}

/// Starts a loudspeaker simulator that takes every stream; it and its RTP port.
pub fn spawn_speaker(dir: &Path, speaker: &str, codec: &str) -> (Speaker, u16) {
    let (_, bench) = binaries();
    let port = free_port_pair().expect("ports");
    let wav = dir.join(format!("{speaker}.wav"));
    let log = dir.join(format!("{speaker}.log"));
    let mut child = Command::new(&bench)
        .args(["speaker", "--listen", &format!("127.0.0.1:{port}")])
        .args(["--codec", codec, "--name", speaker, "--streams", "0"])
        .args(["--rtcp-interval-ms", "300", "--silence-limit-s", "2"])
        .arg("--wav")
        .arg(&wav)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("speaker starts");
    let ready = watch(
        child.stdout.take().expect("stdout"),
        dir.join(format!("{speaker}.out")),
        "listening",
    );
    let _ = watch(child.stderr.take().expect("stderr"), log.clone(), "");
    let process = Supervised::new(speaker, child);
    await_ready(speaker, &ready, Duration::from_secs(20)).expect("speaker ready");
    (
        Speaker {
            name: speaker.to_string(),
            wav,
            log,
            _process: process,
        },
        port,
    )
}

/// A loudspeaker simulator taking every stream that comes.
pub struct Speaker {
    pub name: String,
    pub wav: PathBuf,
    pub log: PathBuf,
    _process: Supervised,
}
