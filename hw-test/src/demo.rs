//! The bench cascade: one district, two streets, three loudspeakers per street, each a
//! separate process on 127.0.0.1, and a verdict on what every loudspeaker heard.
//!
//! The district speaks a programme of real speech; each street forwards it to two Opus
//! loudspeakers without decoding and transcodes it once for a G.711 one (µ-law on the
//! first street, A-law on the second). Every step waits on an event, never a fixed
//! sleep: a loudspeaker says when it listens, a street logs when it is up, the district
//! exits after its BYE, a loudspeaker exits when it has played out after the BYE.
//!
//! Each loudspeaker's recording is aligned to the programme by cross-correlation and
//! scored by spectral envelope correlation (see `docs/fidelity.md`); the thresholds
//! differ for Opus and G.711 because G.711 carries only the 300–3400 Hz telephone band.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use codecs::fidelity::{FidelityReport, score};
use codecs::programme::assemble;
use nix::sys::signal::Signal;

use crate::process::{ProcessError, Supervised, await_ready, free_port_pair, watch};
use crate::speaker_sim::SpeakerReport;

/// Lowest envelope correlation an Opus loudspeaker must reach (docs/fidelity.md).
pub const OPUS_MIN_CORRELATION: f32 = 0.90;
/// Lowest envelope correlation a G.711 loudspeaker must reach (docs/fidelity.md).
pub const G711_MIN_CORRELATION: f32 = 0.85;
/// Fraction of the programme's active frames every loudspeaker must have played.
pub const MIN_COVERAGE: f32 = 0.98;

/// How long a process may take to say it is ready.
const READY_LIMIT: Duration = Duration::from_secs(20);

/// Settings of a demo run.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    pub emcomm: PathBuf,
    pub bench: PathBuf,
    pub audio: Vec<PathBuf>,
    pub gap: Duration,
    pub repeat: u32,
    pub out: PathBuf,
}

/// Why the demo could not run (as opposed to a loudspeaker failing its check).
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Audio(#[from] codecs::AudioFileError),
    #[error("{0}")]
    Process(String),
    #[error("{0}")]
    Supervision(#[from] ProcessError),
}

pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> DemoError {
    let what = what.into();
    move |source| DemoError::Io { what, source }
}

/// One loudspeaker of the cascade.
struct Speaker {
    name: String,
    codec: &'static str,
    address: SocketAddr,
    wav: PathBuf,
    stats: PathBuf,
}

/// One row of the final table.
pub struct Verdict {
    pub report: SpeakerReport,
    pub fidelity: FidelityReport,
    pub threshold: f32,
    pub pass: bool,
}

fn toml_path(path: &Path) -> String {
    path.display()
        .to_string()
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
}

/// Runs the cascade and returns one verdict per loudspeaker.
pub fn run(options: &DemoOptions) -> Result<Vec<Verdict>, DemoError> {
    std::fs::create_dir_all(&options.out)
        .map_err(io(format!("creating {}", options.out.display())))?;
    let out = options
        .out
        .canonicalize()
        .map_err(io("resolving the output folder"))?;
    let audio: Vec<PathBuf> = options
        .audio
        .iter()
        .map(|a| {
            a.canonicalize()
                .map_err(io(format!("audio file {}", a.display())))
        })
        .collect::<Result<_, _>>()?;

    let streets = ["street-001", "street-002"];
    let mut speakers = Vec::new();
    let mut street_ports = Vec::new();
    for (s, street) in streets.iter().enumerate() {
        street_ports.push(free_port_pair()?);
        let g711 = if s == 0 { "pcmu" } else { "pcma" };
        for (p, codec) in ["opus", "opus", g711].into_iter().enumerate() {
            let name = format!("{street}-pole-{}", p + 1);
            let port = free_port_pair()?;
            speakers.push(Speaker {
                address: SocketAddr::from(([127, 0, 0, 1], port)),
                wav: out.join(format!("{name}.wav")),
                stats: out.join(format!("{name}.json")),
                name,
                codec,
            });
        }
    }

    // Configurations: one file per node, as an operator would write them.
    let mut district = String::new();
    let _ = writeln!(
        district,
        "[node]\nname = \"district\"\ntier = \"district\"\narea = \"410503\"\n"
    );
    let _ = writeln!(district, "[rtp]\nrtcp_interval_ms = 1000\n");
    let files: Vec<String> = audio
        .iter()
        .map(|a| format!("\"{}\"", toml_path(a)))
        .collect();
    let _ = writeln!(
        district,
        "[source]\nfiles = [{}]\ngap_ms = {}\nrepeat = {}\n",
        files.join(", "),
        options.gap.as_millis(),
        options.repeat
    );
    // Voice between the district and each street goes as SRTP, under a key per link.
    let mut link_keys = Vec::new();
    for street in &streets {
        link_keys.push(srtp_key(
            &options.emcomm,
            &out.join("keys"),
            &format!("district-{street}"),
        )?);
    }
    for ((street, port), key) in streets.iter().zip(&street_ports).zip(&link_keys) {
        let _ = writeln!(
            district,
            "[[downstream]]\nname = \"{street}\"\naddress = \"127.0.0.1:{port}\"\nkind = \"gateway\"\nsrtp_key = \"{}\"\n",
            toml_path(key)
        );
    }
    let district_config = out.join("district.toml");
    std::fs::write(&district_config, district).map_err(io("writing district.toml"))?;

    let mut street_configs = Vec::new();
    for (s, ((street, port), key)) in streets
        .iter()
        .zip(&street_ports)
        .zip(&link_keys)
        .enumerate()
    {
        let mut text = format!(
            "[node]\nname = \"{street}\"\ntier = \"street\"\narea = \"41050300{}\"\n\n[rtp]\nlisten = \"127.0.0.1:{port}\"\nrtcp_interval_ms = 1000\ninput_timeout_ms = 3000\n\n[upstream]\nallow = [\"127.0.0.1\"]\nsrtp_key = \"{}\"\n\n",
            s + 1,
            toml_path(key)
        );
        for speaker in speakers.iter().filter(|sp| sp.name.starts_with(street)) {
            let _ = writeln!(
                text,
                "[[downstream]]\nname = \"{}\"\naddress = \"{}\"\ncodec = \"{}\"\n",
                speaker.name, speaker.address, speaker.codec
            );
        }
        let path = out.join(format!("{street}.toml"));
        std::fs::write(&path, text).map_err(io(format!("writing {street}.toml")))?;
        street_configs.push(path);
    }

    // Loudspeakers first, then streets, then the district: each waits for the one below.
    let mut speaker_procs = Vec::new();
    for speaker in &speakers {
        let mut child = Command::new(&options.bench)
            .args([
                "speaker",
                "--name",
                &speaker.name,
                "--listen",
                &speaker.address.to_string(),
            ])
            .args([
                "--codec",
                speaker.codec,
                "--rtcp-interval-ms",
                "1000",
                "--wait-limit-s",
                "60",
            ])
            .arg("--wav")
            .arg(&speaker.wav)
            .arg("--stats")
            .arg(&speaker.stats)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(io(format!("starting {}", options.bench.display())))?;
        let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
            return Err(DemoError::Process("no pipes to the loudspeaker".into()));
        };
        let ready = watch(
            stdout,
            out.join(format!("{}.out", speaker.name)),
            "listening",
        );
        let _log = watch(stderr, out.join(format!("{}.log", speaker.name)), "");
        speaker_procs.push((
            Supervised {
                name: speaker.name.clone(),
                child,
            },
            ready,
        ));
    }
    for (proc_, ready) in &speaker_procs {
        await_ready(&proc_.name, ready, READY_LIMIT)?;
    }

    let mut street_procs = Vec::new();
    for (street, config) in streets.iter().zip(&street_configs) {
        let mut child = Command::new(&options.emcomm)
            .args(["run", "--config"])
            .arg(config)
            .arg("--stats-out")
            .arg(out.join(format!("{street}-stats.json")))
            .env("EMCOMM_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(io(format!("starting {}", options.emcomm.display())))?;
        let Some(stderr) = child.stderr.take() else {
            return Err(DemoError::Process("no pipe to the street".into()));
        };
        let ready = watch(
            stderr,
            out.join(format!("{street}.log")),
            "relay node started",
        );
        await_ready(street, &ready, READY_LIMIT)?;
        street_procs.push(Supervised {
            name: street.to_string(),
            child,
        });
    }

    let programme = assemble(&audio, options.gap, options.repeat, 48_000)?;
    let seconds = programme.len() as f64 / 48_000.0;
    println!("district speaks {seconds:.1} s of speech to 2 streets and 6 loudspeakers …");
    let mut district = Command::new(&options.emcomm)
        .args(["run", "--config"])
        .arg(&district_config)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(io("starting the district"))?;
    if let Some(stderr) = district.stderr.take() {
        let _ = watch(stderr, out.join("district.log"), "");
    }
    let mut district = Supervised {
        name: "district".into(),
        child: district,
    };
    let limit = Duration::from_secs_f64(seconds + 30.0);
    let status = district.wait(limit)?;
    if !status.success() {
        return Err(DemoError::Process(format!(
            "the district exited with {status}; see district.log"
        )));
    }

    for (proc_, _) in &mut speaker_procs {
        let status = proc_.wait(Duration::from_secs(30))?;
        if !status.success() {
            return Err(DemoError::Process(format!(
                "{} exited with {status}; see its log",
                proc_.name
            )));
        }
    }
    for street in &mut street_procs {
        street.signal(Signal::SIGTERM);
        street.wait(Duration::from_secs(10))?;
    }

    let mut verdicts = Vec::new();
    let reference_8k =
        codecs::resample(&programme, 48_000, 8_000).map_err(codecs::AudioFileError::from)?;
    for speaker in &speakers {
        let text = std::fs::read_to_string(&speaker.stats)
            .map_err(io(format!("reading {}", speaker.stats.display())))?;
        let report: SpeakerReport = serde_json::from_str(&text)
            .map_err(|e| DemoError::Process(format!("{}: {e}", speaker.stats.display())))?;
        let heard = codecs::read_audio(&speaker.wav)?;
        let (reference, threshold) = if speaker.codec == "opus" {
            (&programme, OPUS_MIN_CORRELATION)
        } else {
            (&reference_8k, G711_MIN_CORRELATION)
        };
        let fidelity = score(reference, &heard.samples, heard.sample_rate);
        let pass = fidelity.envelope_correlation >= threshold
            && fidelity.coverage >= MIN_COVERAGE
            && report.ended_by_bye;
        verdicts.push(Verdict {
            report,
            fidelity,
            threshold,
            pass,
        });
    }
    Ok(verdicts)
}

/// The table printed at the end of the demo.
pub fn table(verdicts: &[Verdict]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<20} {:<5} {:>8} {:>5} {:>5} {:>9} {:>9} {:>9} {:>8} {:>8}  verdict",
        "loudspeaker",
        "codec",
        "received",
        "lost",
        "late",
        "conceal",
        "p50 ms",
        "p99 ms",
        "fidelity",
        "coverage"
    );
    for v in verdicts {
        let r = &v.report;
        let ms = |x: Option<f64>| x.map_or("-".to_string(), |v| format!("{v:.2}"));
        let _ = writeln!(
            out,
            "{:<20} {:<5} {:>8} {:>5} {:>5} {:>9} {:>9} {:>9} {:>8.3} {:>8.3}  {} (≥ {:.2}, ≥ {:.2})",
            r.name,
            r.codec,
            r.received,
            r.lost,
            r.late,
            r.concealed,
            ms(r.latency_ms_p50),
            ms(r.latency_ms_p99),
            v.fidelity.envelope_correlation,
            v.fidelity.coverage,
            if v.pass { "PASS" } else { "FAIL" },
            v.threshold,
            MIN_COVERAGE
        );
    }
    out
}

/// A fresh SRTP key for voice link `link`, made in `dir` by `emcomm keys srtp` as an
/// operator would; the key of an earlier run is removed first (a key is never
/// overwritten).
fn srtp_key(emcomm: &Path, dir: &Path, link: &str) -> Result<PathBuf, DemoError> {
    let path = dir.join(format!("{link}.srtp.key"));
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(format!("removing {}", path.display()))(e)),
    }
    let out = Command::new(emcomm)
        .args(["keys", "srtp", "--out"])
        .arg(dir)
        .args(["--link", link])
        .output()
        .map_err(io(format!("starting {}", emcomm.display())))?;
    if !out.status.success() {
        return Err(DemoError::Process(format!(
            "emcomm keys srtp --link {link}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(path)
}
