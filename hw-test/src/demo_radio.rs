//! The radio demo: three simulated 370 MHz radios patched together at one street
//! gateway, a field unit talking, then the dispatcher, and the gateway stopped.
//!
//! 1. `tg-1001` hears a call (English speech) and the patch transmits it on `tg-2002`
//!    and on the dispatcher's radio;
//! 2. the dispatcher (a priority member) answers (Mandarin speech) and it goes out on
//!    both talkgroups;
//! 3. the gateway is stopped with SIGTERM, and every radio's PTT line must be released.
//!
//! Each transmission is cut out of the receiving radio's transmit recording and scored
//! against the speech it carries ([`codecs::fidelity`]); the radio path carries PCM
//! without a codec, so the score is near 1 and the coverage near all of it, less the
//! squelch tail the gateway cuts. Exit 0 only when every verdict passes.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use codecs::audio_file::read_audio;
use codecs::fidelity::score;
use serde_json::Value;

use crate::process::{Supervised, await_ready, watch};

/// Why the demo could not run.
#[derive(Debug, thiserror::Error)]
pub enum RadioDemoError {
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Process(#[from] crate::process::ProcessError),
    #[error("{0}")]
    Audio(#[from] codecs::AudioFileError),
    #[error("{0}")]
    Setup(String),
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> RadioDemoError {
    let what = what.into();
    move |source| RadioDemoError::Io { what, source }
}

/// What the demo needs.
#[derive(Debug, Clone)]
pub struct RadioDemoOptions {
    pub emcomm: PathBuf,
    pub bench: PathBuf,
    /// The field unit's call.
    pub call: PathBuf,
    /// The dispatcher's answer.
    pub answer: PathBuf,
    pub out: PathBuf,
}

/// One line of the verdict table.
#[derive(Debug, Clone)]
pub struct RadioVerdict {
    pub what: String,
    pub detail: String,
    pub pass: bool,
}

/// The lowest envelope correlation and coverage a transmission must reach.
const MIN_CORRELATION: f32 = 0.9;
const MIN_COVERAGE: f32 = 0.9;

const RADIOS: [&str; 3] = ["tg-1001", "tg-2002", "dispatch"];

/// Runs the demo and gives its verdicts.
pub fn run(options: &RadioDemoOptions) -> Result<Vec<RadioVerdict>, RadioDemoError> {
    let out = options.out.join("radio");
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).map_err(io(format!("creating {}", out.display())))?;
    let absolute = |p: &Path| {
        p.canonicalize()
            .map_err(io(format!("finding {}", p.display())))
    };
    let (call, answer) = (absolute(&options.call)?, absolute(&options.answer)?);

    let schedules = [
        format!("1 transmit {}\n", call.display()),
        String::new(),
        format!("6 transmit {}\n", answer.display()),
    ];
    let mut sims = Vec::new();
    for (name, schedule) in RADIOS.iter().zip(&schedules) {
        let path = out.join(format!("{name}.schedule"));
        std::fs::write(&path, schedule).map_err(io("writing a schedule"))?;
        let mut child = Command::new(&options.bench)
            .args(["radio", "--socket"])
            .arg(out.join(format!("{name}.sock")))
            .arg("--schedule")
            .arg(&path)
            .arg("--log")
            .arg(out.join(format!("{name}.jsonl")))
            .arg("--tx-wav")
            .arg(out.join(format!("{name}-tx.wav")))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(io("starting emcomm-bench radio"))?;
        let ready = watch(
            child
                .stdout
                .take()
                .ok_or(RadioDemoError::Setup("no stdout".into()))?,
            out.join(format!("{name}.out")),
            "listening",
        );
        sims.push(Supervised::new(*name, child));
        await_ready(name, &ready, Duration::from_secs(20))?;
    }

    let mut config = String::from(
        "[node]\nname = \"street-410503001-radio\"\ntier = \"street\"\narea = \"410503001\"\n\n\
         [rtp]\nlisten = \"127.0.0.1:5994\"\n\n\
         [patching]\nstate_dir = \"state\"\nhang_ms = 500\nrecordings = \"recordings\"\n\n",
    );
    for name in RADIOS {
        let priority = if name == "dispatch" {
            "priority = true\n"
        } else {
            ""
        };
        config.push_str(&format!(
            "[[radio]]\nname = \"{name}\"\nlines = \"external:{name}.sock\"\nptt = \"rts\"\n\
             cos = \"dcd\"\n{priority}\n"
        ));
    }
    config.push_str(
        "[[patch]]\nname = \"town-joint\"\nmembers = [\"tg-1001\", \"tg-2002\", \"dispatch\"]\n",
    );
    std::fs::write(out.join("street-radio.toml"), config)
        .map_err(io("writing the configuration"))?;

    println!("three radios patched at a street gateway: a call, the dispatcher's answer …");
    let mut gateway = Command::new(&options.emcomm)
        .args(["run", "--config"])
        .arg(out.join("street-radio.toml"))
        .env("EMCOMM_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .map_err(io("starting emcomm"))?;
    let ready = watch(
        gateway
            .stderr
            .take()
            .ok_or(RadioDemoError::Setup("no stderr".into()))?,
        out.join("gateway.log"),
        "patching ready",
    );
    let mut gateway = Supervised::new("gateway", gateway);
    await_ready("gateway", &ready, Duration::from_secs(20))?;

    // The call and the answer, each transmitted and released, on both talkgroups.
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let done = overs_finished(&out, "tg-2002") >= 2 && overs_finished(&out, "tg-1001") >= 1;
        if done {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    gateway.signal(nix::sys::signal::Signal::SIGTERM);
    let status = gateway.wait(Duration::from_secs(10))?;
    for sim in &mut sims {
        sim.signal(nix::sys::signal::Signal::SIGTERM);
        let _ = sim.wait(Duration::from_secs(10));
    }

    let mut verdicts = Vec::new();
    let call_ref = read_audio(&call)?
        .to_rate(48_000)
        .map_err(|e| RadioDemoError::Setup(e.to_string()))?;
    let answer_ref = read_audio(&answer)?
        .to_rate(48_000)
        .map_err(|e| RadioDemoError::Setup(e.to_string()))?;
    for (what, radio, over, reference) in [
        ("the call on tg-2002", "tg-2002", 0, &call_ref),
        ("the call on dispatch", "dispatch", 0, &call_ref),
        ("the answer on tg-1001", "tg-1001", 0, &answer_ref),
        ("the answer on tg-2002", "tg-2002", 1, &answer_ref),
    ] {
        verdicts.push(judge(&out, what, radio, over, &reference.samples));
    }
    for radio in RADIOS {
        let events = events(&out, radio);
        let released = events
            .iter()
            .rev()
            .find(|e| e["event"] == "lines")
            .is_some_and(|e| e["ptt"] == false);
        let unkeyed_audio = report(&out, radio)["frames_while_unkeyed"]
            .as_u64()
            .unwrap_or(1);
        verdicts.push(RadioVerdict {
            what: format!("{radio} released at stop"),
            detail: format!("last PTT line change: released={released}; audio while unkeyed: {unkeyed_audio} frames"),
            pass: released && unkeyed_audio == 0,
        });
    }
    verdicts.push(RadioVerdict {
        what: "gateway stopped cleanly".into(),
        detail: format!("{status}"),
        pass: status.success(),
    });
    Ok(verdicts)
}

fn events(out: &Path, radio: &str) -> Vec<Value> {
    std::fs::read_to_string(out.join(format!("{radio}.jsonl")))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn report(out: &Path, radio: &str) -> Value {
    events(out, radio)
        .into_iter()
        .find(|e| e["event"] == "exit")
        .map(|e| e["report"].clone())
        .unwrap_or(Value::Null)
}

/// Transmissions `radio` has finished so far (PTT keyed, then released).
fn overs_finished(out: &Path, radio: &str) -> usize {
    let mut keyed = false;
    let mut finished = 0;
    for e in events(out, radio).iter().filter(|e| e["event"] == "lines") {
        match (keyed, e["ptt"] == true) {
            (false, true) => keyed = true,
            (true, false) => {
                keyed = false;
                finished += 1;
            }
            _ => {}
        }
    }
    finished
}

/// Scores over `over` of `radio`'s transmit recording against `reference`.
fn judge(out: &Path, what: &str, radio: &str, over: usize, reference: &[f32]) -> RadioVerdict {
    let fail = |detail: String| RadioVerdict {
        what: what.into(),
        detail,
        pass: false,
    };
    let frames: Vec<u64> = report(out, radio)["over_frames"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_u64)
        .collect();
    let Some(&count) = frames.get(over) else {
        return fail(format!("{radio} made {} transmissions", frames.len()));
    };
    let heard = match read_audio(out.join(format!("{radio}-tx.wav"))) {
        Ok(heard) => heard,
        Err(e) => return fail(e.to_string()),
    };
    let start = frames[..over].iter().sum::<u64>() as usize * 960;
    let end = (start + count as usize * 960).min(heard.samples.len());
    let fidelity = score(reference, &heard.samples[start.min(end)..end], 48_000);
    RadioVerdict {
        what: what.into(),
        detail: format!(
            "{:.2} s transmitted; {fidelity}",
            (end - start.min(end)) as f64 / 48_000.0
        ),
        pass: fidelity.envelope_correlation >= MIN_CORRELATION && fidelity.coverage >= MIN_COVERAGE,
    }
}

/// The verdict table.
pub fn table(verdicts: &[RadioVerdict]) -> String {
    let mut text = String::new();
    for v in verdicts {
        text.push_str(&format!(
            "  {:<28} {}  {}\n",
            v.what,
            if v.pass { "PASS" } else { "FAIL" },
            v.detail
        ));
    }
    let passed = verdicts.iter().filter(|v| v.pass).count();
    text.push_str(&format!(
        "{passed} of {} radio checks passed (fidelity ≥ {MIN_CORRELATION}, coverage ≥ {MIN_COVERAGE})\n",
        verdicts.len()
    ));
    text
}
