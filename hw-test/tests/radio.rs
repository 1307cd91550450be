//! Radio ports and patches in a real gateway process, against simulated radios
//! (`emcomm-bench radio`) on the external line backend. Each simulator records every
//! change of its PTT line with its time, so a test can stop or kill the gateway and
//! still read what the lines did.
//!
//! Waits are on events in the simulators' logs (PTT keyed, a connection), each with a
//! limit, never on a fixed sleep alone.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use codecs::pcm::f32_to_i16;
use hw_test::process::{Supervised, await_ready, watch};
use nix::sys::signal::Signal;
use serde_json::Value;

/// A simulated radio: its wiring and what it does.
struct RadioSpec {
    name: &'static str,
    ptt: &'static str,
    cos: &'static str,
    schedule: String,
    /// Wired to a second gateway, not the rig's main one.
    far: bool,
    /// More keys of its `[[radio]]` table; `{pty}` stands for its command channel, which
    /// the simulator then offers on a pseudo-terminal.
    extra: &'static str,
}

impl RadioSpec {
    fn new(name: &'static str, schedule: &str) -> RadioSpec {
        RadioSpec {
            name,
            ptt: "rts",
            cos: "dcd",
            schedule: schedule.to_owned(),
            far: false,
            extra: "",
        }
    }
}

/// Simulators and a gateway, in a scratch folder.
struct Rig {
    dir: PathBuf,
    radios: Vec<Supervised>,
    gateway: Option<Supervised>,
    gateway_log: PathBuf,
    /// Other processes of the set-up: a second gateway, loudspeakers.
    others: Vec<Supervised>,
}

impl Rig {
    /// Starts the simulators, then a gateway with `patching` (the tables after the
    /// `[[radio]]` ones) and the radios wired as their specs say.
    fn start(test: &str, radios: &[RadioSpec], patching: &str, env: &[(&str, &str)]) -> Rig {
        let (emcomm, bench) = common::binaries();
        let dir = common::scratch(test);
        write_tone(&dir.join("tone-3s.wav"), 3);
        write_tone(&dir.join("tone-8s.wav"), 8);

        let mut sims = Vec::new();
        for radio in radios {
            let schedule = dir.join(format!("{}.schedule", radio.name));
            std::fs::write(&schedule, &radio.schedule).expect("schedule");
            let mut command = Command::new(&bench);
            if radio.extra.contains("{pty}") {
                command
                    .arg("radio")
                    .arg("--command-pty")
                    .arg(dir.join(format!("{}.pty", radio.name)));
            } else {
                command.arg("radio");
            }
            let mut child = command
                .args(["--ptt", radio.ptt, "--cos", radio.cos, "--socket"])
                .arg(dir.join(format!("{}.sock", radio.name)))
                .arg("--schedule")
                .arg(&schedule)
                .arg("--log")
                .arg(dir.join(format!("{}.jsonl", radio.name)))
                .arg("--tx-wav")
                .arg(dir.join(format!("{}-tx.wav", radio.name)))
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .expect("emcomm-bench radio");
            let ready = watch(
                child.stdout.take().expect("stdout"),
                dir.join(format!("{}.out", radio.name)),
                "listening",
            );
            let sim = Supervised::new(radio.name, child);
            await_ready(radio.name, &ready, Duration::from_secs(20)).expect("simulator listens");
            sims.push(sim);
        }

        let mut config = String::from(
            "[node]\nname = \"street-radio\"\ntier = \"street\"\narea = \"410503001\"\n\n",
        );
        if !patching.contains("[rtp]") {
            config.push_str("[rtp]\nlisten = \"127.0.0.1:5998\"\n\n");
        }
        config.push_str(patching);
        for radio in radios.iter().filter(|r| !r.far) {
            config.push_str(&radio_table(radio));
        }
        std::fs::write(dir.join("node.toml"), &config).expect("config");

        let mut rig = Rig {
            dir,
            radios: sims,
            gateway: None,
            gateway_log: PathBuf::new(),
            others: Vec::new(),
        };
        rig.start_gateway(&emcomm, env);
        rig
    }

    fn start_gateway(&mut self, emcomm: &Path, env: &[(&str, &str)]) {
        let mut command = Command::new(emcomm);
        command
            .args(["run", "--config"])
            .arg(self.dir.join("node.toml"))
            .env("EMCOMM_LOG", "info")
            .stderr(Stdio::piped());
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("emcomm starts");
        self.gateway_log = self.dir.join("gateway.log");
        let ready = watch(
            child.stderr.take().expect("stderr"),
            self.gateway_log.clone(),
            "patching ready",
        );
        let gateway = Supervised::new("gateway", child);
        await_ready("gateway", &ready, Duration::from_secs(20)).expect("gateway starts");
        self.gateway = Some(gateway);
    }

    /// Starts another process of the set-up and waits for `ready` in its output.
    fn start_other(
        &mut self,
        name: &str,
        mut command: Command,
        ready_marker: &'static str,
        stderr: bool,
    ) {
        let mut child = if stderr {
            command.stderr(Stdio::piped()).stdout(Stdio::null())
        } else {
            command.stdout(Stdio::piped()).stderr(Stdio::null())
        }
        .spawn()
        .expect("process starts");
        let log = self.dir.join(format!("{name}.log"));
        let ready = if stderr {
            watch(child.stderr.take().expect("stderr"), log, ready_marker)
        } else {
            watch(child.stdout.take().expect("stdout"), log, ready_marker)
        };
        self.others.push(Supervised::new(name, child));
        await_ready(name, &ready, Duration::from_secs(20)).expect("process comes up");
    }

    fn gateway(&mut self) -> &mut Supervised {
        self.gateway.as_mut().expect("gateway running")
    }

    /// Every event `radio`'s simulator logged so far.
    fn events(&self, radio: &str) -> Vec<Value> {
        let text =
            std::fs::read_to_string(self.dir.join(format!("{radio}.jsonl"))).unwrap_or_default();
        text.lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Waits until `radio` logged an event that `matches`, up to `limit`.
    fn wait_for(&self, radio: &str, limit: Duration, matches: impl Fn(&Value) -> bool) -> Value {
        self.wait_after(radio, None, limit, matches)
    }

    /// Waits until `radio` logged an event that `matches` after the event `after`.
    fn wait_after(
        &self,
        radio: &str,
        after: Option<&Value>,
        limit: Duration,
        matches: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + limit;
        loop {
            let events = self.events(radio);
            let start = after
                .and_then(|a| events.iter().position(|e| e == a))
                .map_or(0, |k| k + 1);
            if let Some(event) = events.into_iter().skip(start).find(&matches) {
                return event;
            }
            assert!(
                Instant::now() < deadline,
                "{radio}: no such event within {limit:?}; log: {:#?}\ngateway: {}",
                self.events(radio),
                std::fs::read_to_string(&self.gateway_log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops every simulator with `exit` (SIGTERM) and gives each one's final report.
    fn finish(mut self) -> (Vec<Value>, String) {
        if let Some(mut gateway) = self.gateway.take() {
            gateway.signal(Signal::SIGTERM);
            let _ = gateway.wait(Duration::from_secs(10));
        }
        for other in &mut self.others {
            other.signal(Signal::SIGTERM);
            let _ = other.wait(Duration::from_secs(10));
        }
        let mut reports = Vec::new();
        for sim in &mut self.radios {
            sim.signal(Signal::SIGTERM);
            let _ = sim.wait(Duration::from_secs(10));
        }
        for sim in &self.radios {
            let report = self
                .events(&sim.name)
                .into_iter()
                .find(|e| e["event"] == "exit")
                .map(|e| e["report"].clone())
                .unwrap_or(Value::Null);
            reports.push(report);
        }
        let log = std::fs::read_to_string(&self.gateway_log).unwrap_or_default();
        (reports, log)
    }
}

fn radio_table(radio: &RadioSpec) -> String {
    let ptt = if radio.extra.contains("ptt_key_command") {
        "command"
    } else {
        radio.ptt
    };
    format!(
        "[[radio]]\nname = \"{name}\"\nlines = \"external:{name}.sock\"\nptt = \"{ptt}\"\n\
         cos = \"{cos}\"\ntx_lead_ms = 300\nptt_hang_ms = 300\n{extra}\n",
        name = radio.name,
        cos = radio.cos,
        extra = radio.extra.replace("{pty}", &format!("{}.pty", radio.name)),
    )
}

/// A 700 Hz tone of `seconds` at -12 dBFS, 48 kHz mono WAV.
fn write_tone(path: &Path, seconds: u64) {
    let tone = codecs::tones::sine(700.0, -12.0, Duration::from_secs(seconds), 48_000);
    let samples: Vec<i16> = tone.iter().map(|s| f32_to_i16(*s)).collect();
    codecs::audio_file::write_wav_i16(path, 48_000, &samples).expect("tone");
}

fn is_ptt(keyed: bool) -> impl Fn(&Value) -> bool {
    move |e| e["event"] == "lines" && e["ptt"] == keyed
}

fn keyed_ms(report: &Value) -> Vec<u64> {
    report["overs"]
        .as_array()
        .map(|overs| {
            overs
                .iter()
                .map(|o| o[1].as_u64().unwrap_or(0) - o[0].as_u64().unwrap_or(0))
                .collect()
        })
        .unwrap_or_default()
}

const PATCH_AB: &str = "[patching]\nstate_dir = \"state\"\nhang_ms = 300\nrecordings = \"recordings\"\n\n\
    [[patch]]\nname = \"joint\"\nmembers = [\"tg-a\", \"tg-b\"]\n\n";

#[test]
fn what_one_talkgroup_hears_is_transmitted_on_the_patched_one_and_not_echoed() {
    let mut b = RadioSpec::new("tg-b", "");
    b.extra = "tx_gain_db = -6.0206\n";
    let rig = Rig::start(
        "radio-patch",
        &[RadioSpec::new("tg-a", "1 transmit tone-3s.wav\n"), b],
        PATCH_AB,
        &[],
    );
    let keyed = rig.wait_for("tg-b", Duration::from_secs(20), is_ptt(true));
    rig.wait_after("tg-b", Some(&keyed), Duration::from_secs(20), is_ptt(false));
    let dir = rig.dir.clone();
    let (reports, log) = rig.finish();

    let (a, b) = (&reports[0], &reports[1]);
    assert_eq!(keyed_ms(a), Vec::<u64>::new(), "the source is never keyed");
    let overs = keyed_ms(b);
    assert_eq!(overs.len(), 1, "one over on the patched talkgroup: {b}");
    // 3 s of speech, plus the 300 ms lead and 300 ms hang, less the squelch tail.
    assert!(
        (3300..=4200).contains(&overs[0]),
        "keyed for {} ms",
        overs[0]
    );
    assert_eq!(b["frames_while_unkeyed"], 0);

    let heard = codecs::audio_file::read_audio(dir.join("tg-b-tx.wav")).expect("tx recording");
    let seconds = heard.duration().as_secs_f64();
    assert!((2.7..=3.1).contains(&seconds), "transmitted {seconds:.2} s");
    let samples = heard.to_i16();
    let steady = &samples[4800..samples.len() - 4800];
    let pitch = common::pitch(steady, 48_000);
    assert!(
        (pitch - 700.0).abs() < 5.0,
        "transmitted a {pitch:.1} Hz tone"
    );
    // The -12 dBFS tone (-15 dBFS RMS) at tg-b's transmit gain of -6 dB.
    let rms = codecs::level::Level::of_i16(steady).rms_dbfs;
    assert!((rms + 21.0).abs() < 0.5, "transmitted at {rms:.1} dBFS RMS");
    assert!(
        log.contains("floor granted") && log.contains("PTT released"),
        "{log}"
    );
}

#[test]
fn ptt_is_released_when_the_gateway_is_stopped_mid_transmission() {
    let mut rig = Rig::start(
        "radio-sigterm",
        &[
            RadioSpec::new("tg-a", "1 transmit tone-8s.wav\n"),
            RadioSpec::new("tg-b", ""),
        ],
        PATCH_AB,
        &[],
    );
    rig.wait_for("tg-b", Duration::from_secs(20), is_ptt(true));
    std::thread::sleep(Duration::from_millis(500));
    rig.gateway().signal(Signal::SIGTERM);
    let status = rig.gateway().wait(Duration::from_secs(10)).expect("stops");
    assert!(status.success(), "clean stop: {status:?}");

    let events = rig.events("tg-b");
    let released = events.iter().position(is_ptt(false));
    let closed = events.iter().position(|e| e["event"] == "closed");
    assert!(
        matches!((released, closed), (Some(r), Some(c)) if r < c),
        "PTT released before the connection closed: {events:#?}"
    );
    rig.finish();
}

#[test]
fn ptt_is_released_when_the_gateway_panics() {
    let mut rig = Rig::start(
        "radio-panic",
        &[
            RadioSpec::new("tg-a", "1 transmit tone-8s.wav\n"),
            RadioSpec::new("tg-b", ""),
        ],
        PATCH_AB,
        &[("EMCOMM_FAULT", "panic-after-key")],
    );
    rig.wait_for("tg-b", Duration::from_secs(20), is_ptt(true));
    let status = rig.gateway().wait(Duration::from_secs(10)).expect("exits");
    assert!(!status.success(), "a panic ends the process with an error");

    let events = rig.events("tg-b");
    let keyed = events.iter().position(is_ptt(true)).expect("keyed");
    let released = events.iter().skip(keyed).position(is_ptt(false));
    assert!(
        released.is_some(),
        "PTT released after the panic: {events:#?}"
    );
    let log = std::fs::read_to_string(&rig.gateway_log).unwrap_or_default();
    assert!(log.contains("panicked"), "{log}");
    rig.finish();
}

#[test]
fn ptt_is_released_when_the_sound_card_is_lost_and_the_port_comes_back() {
    let rig = Rig::start(
        "radio-audio-lost",
        &[
            RadioSpec::new("tg-a", "1 transmit tone-8s.wav\n"),
            RadioSpec::new("tg-b", "3 lose-audio\n6 hang-up\n"),
        ],
        PATCH_AB,
        &[],
    );
    rig.wait_for("tg-b", Duration::from_secs(20), is_ptt(true));
    rig.wait_for("tg-b", Duration::from_secs(20), |e| {
        e["event"] == "action" && e["action"] == "LoseAudio"
    });
    // Released, then the port reopens: a second connection.
    rig.wait_for("tg-b", Duration::from_secs(20), |e| e["event"] == "closed");
    let events = rig.events("tg-b");
    let lost = events
        .iter()
        .position(|e| e["action"] == "LoseAudio")
        .expect("lost");
    let released = events.iter().skip(lost).position(is_ptt(false));
    let closed = events
        .iter()
        .skip(lost)
        .position(|e| e["event"] == "closed");
    assert!(
        matches!((released, closed), (Some(r), Some(c)) if r < c),
        "PTT released before the port closed: {events:#?}"
    );
    let reconnected = rig.wait_for("tg-b", Duration::from_secs(20), |e| {
        e["event"] == "connected" && e["t_ms"].as_u64() > events[lost]["t_ms"].as_u64()
    });
    // The adapter unplugged (the backend hangs up): down, then open again.
    rig.wait_after("tg-b", Some(&reconnected), Duration::from_secs(20), |e| {
        e["event"] == "connected"
    });
    let (_, log) = rig.finish();
    // Down twice: for the sound card, then for the hang-up, which reads as the backend
    // closing the connection or, when a write meets it first, as a reset or broken pipe.
    assert!(log.matches("radio port down").count() >= 2, "{log}");
}

#[test]
fn after_sigkill_the_lines_do_what_the_wiring_decides() {
    // tg-b keys on RTS (fails safe: the kernel drops RTS when the process dies);
    // tg-c on inverted DTR (dropping DTR keys it: the wiring note warns against it).
    let mut c = RadioSpec::new("tg-c", "");
    c.ptt = "!dtr";
    let mut rig = Rig::start(
        "radio-sigkill",
        &[
            RadioSpec::new("tg-a", "1 transmit tone-8s.wav\n"),
            RadioSpec::new("tg-b", ""),
            c,
        ],
        "[patching]\nstate_dir = \"state\"\n\n\
         [[patch]]\nname = \"all\"\nmembers = [\"tg-a\", \"tg-b\", \"tg-c\"]\n\n",
        &[],
    );
    rig.wait_for("tg-b", Duration::from_secs(20), is_ptt(true));
    rig.wait_for("tg-c", Duration::from_secs(20), is_ptt(true));
    rig.gateway().signal(Signal::SIGKILL);
    let _ = rig.gateway().wait(Duration::from_secs(10));

    let b = rig.wait_for("tg-b", Duration::from_secs(10), |e| e["event"] == "closed");
    let c = rig.wait_for("tg-c", Duration::from_secs(10), |e| e["event"] == "closed");
    assert_eq!(b["ptt"], false, "RTS wiring: unkeyed when the process dies");
    assert_eq!(
        c["ptt"], true,
        "inverted DTR wiring: keyed when the process dies"
    );
    rig.finish();
}

#[test]
fn a_stuck_carrier_is_taken_off_the_patch_and_locked_out_until_it_drops() {
    let rig = Rig::start(
        "radio-stuck",
        &[
            RadioSpec::new(
                "tg-a",
                "1 carrier on\n6 carrier off\n7 transmit tone-3s.wav\n",
            ),
            RadioSpec::new("tg-b", ""),
        ],
        "[patching]\nstate_dir = \"state\"\nhang_ms = 300\nstuck_carrier_s = 2\n\n\
         [[patch]]\nname = \"joint\"\nmembers = [\"tg-a\", \"tg-b\"]\n\n",
        &[],
    );
    // Keyed by the stuck carrier, released when the patch times it out...
    let keyed = rig.wait_for("tg-b", Duration::from_secs(20), is_ptt(true));
    let released = rig.wait_after("tg-b", Some(&keyed), Duration::from_secs(20), is_ptt(false));
    // ...and keyed again only by the real transmission after the carrier dropped.
    let second = rig.wait_after(
        "tg-b",
        Some(&released),
        Duration::from_secs(20),
        is_ptt(true),
    );
    rig.wait_after(
        "tg-b",
        Some(&second),
        Duration::from_secs(20),
        is_ptt(false),
    );
    let a_events = rig.events("tg-a");
    let dropped = a_events
        .iter()
        .find(|e| e["event"] == "cos" && e["on"] == false)
        .expect("carrier dropped");
    let (reports, log) = rig.finish();
    let overs = keyed_ms(&reports[1]);
    assert_eq!(overs.len(), 2, "{overs:?}");
    assert!(
        (2000..3500).contains(&overs[0]),
        "the stuck over lasted {} ms: the stuck-carrier time, plus the hang",
        overs[0]
    );
    assert!(second["t_ms"].as_u64() > dropped["t_ms"].as_u64());
    assert!(log.contains("locked out"), "{log}");
    assert!(log.contains("lock-out cleared"), "{log}");
}

#[test]
fn a_reload_adds_a_member_to_a_patch_while_audio_flows() {
    let mut rig = Rig::start(
        "radio-reload",
        &[
            RadioSpec::new("tg-a", "1 transmit tone-8s.wav\n"),
            RadioSpec::new("tg-b", ""),
            RadioSpec::new("tg-c", ""),
        ],
        PATCH_AB,
        &[],
    );
    let b_keyed = rig.wait_for("tg-b", Duration::from_secs(20), is_ptt(true));
    std::thread::sleep(Duration::from_millis(1000));
    let config = std::fs::read_to_string(rig.dir.join("node.toml")).expect("config");
    std::fs::write(
        rig.dir.join("node.toml"),
        config.replace("[\"tg-a\", \"tg-b\"]", "[\"tg-a\", \"tg-b\", \"tg-c\"]"),
    )
    .expect("new config");
    rig.gateway().signal(Signal::SIGHUP);

    let c_keyed = rig.wait_for("tg-c", Duration::from_secs(20), is_ptt(true));
    rig.wait_after(
        "tg-b",
        Some(&b_keyed),
        Duration::from_secs(30),
        is_ptt(false),
    );
    rig.wait_after(
        "tg-c",
        Some(&c_keyed),
        Duration::from_secs(30),
        is_ptt(false),
    );
    let (reports, log) = rig.finish();
    let b = keyed_ms(&reports[1]);
    let c = keyed_ms(&reports[2]);
    assert_eq!(b.len(), 1, "tg-b's over was not interrupted: {b:?}");
    assert!(b[0] > 8000, "tg-b carried the whole 8 s: {b:?}");
    assert_eq!(c.len(), 1, "{c:?}");
    assert!(c[0] > 2000 && c[0] < b[0], "tg-c joined mid-over: {c:?}");
    assert!(log.contains("configuration reloaded"), "{log}");
}

#[test]
fn a_radio_joins_a_stored_live_patch_by_dtmf() {
    let dir = common::scratch("radio-dtmf");
    let _ = std::fs::remove_dir_all(dir.join("state"));
    std::fs::create_dir_all(dir.join("state")).expect("state");
    // A live patch made earlier, restored from the state directory at start.
    std::fs::write(
        dir.join("state/patches.json"),
        r#"[{"name": "flood", "number": 5, "members": ["tg-b", "tg-c"], "mode": "patch"}]"#,
    )
    .expect("stored patch");
    let rig = Rig::start(
        "radio-dtmf",
        &[
            RadioSpec::new("tg-a", "1 dtmf *5#\n4 transmit tone-3s.wav\n"),
            RadioSpec::new("tg-b", ""),
            RadioSpec::new("tg-c", ""),
        ],
        "[patching]\nstate_dir = \"state\"\nhang_ms = 300\n\n",
        &[],
    );
    let b_keyed = rig.wait_for("tg-b", Duration::from_secs(20), is_ptt(true));
    let c_keyed = rig.wait_for("tg-c", Duration::from_secs(20), is_ptt(true));
    rig.wait_after(
        "tg-b",
        Some(&b_keyed),
        Duration::from_secs(20),
        is_ptt(false),
    );
    rig.wait_after(
        "tg-c",
        Some(&c_keyed),
        Duration::from_secs(20),
        is_ptt(false),
    );
    let stored = std::fs::read_to_string(rig.dir.join("state/patches.json")).expect("stored");
    let (reports, log) = rig.finish();
    assert!(log.contains("joined by DTMF"), "{log}");
    assert!(stored.contains("tg-a"), "the join is stored: {stored}");
    for report in &reports[1..] {
        let overs = keyed_ms(report);
        assert_eq!(
            overs.len(),
            1,
            "only the transmission, not the DTMF: {overs:?}"
        );
    }
}

#[test]
fn patches_made_from_the_cli_carry_audio_are_listed_and_survive_a_restart() {
    let dir = common::scratch("radio-cli");
    let _ = std::fs::remove_dir_all(dir.join("state"));
    std::fs::write(
        dir.join("operators.toml"),
        "[[operator]]\nname = \"li.na\"\nrole = \"operator\"\ntoken = \"operator-token-0123456789\"\n\n\
         [[operator]]\nname = \"wang.fang\"\nrole = \"viewer\"\ntoken = \"viewer-token-0123456789ab\"\n",
    )
    .expect("operators");
    std::fs::write(dir.join("operator.token"), "operator-token-0123456789").expect("token");
    std::fs::write(dir.join("viewer.token"), "viewer-token-0123456789ab").expect("token");
    let port = hw_test::process::free_port_pair().expect("port");
    let node = format!("http://127.0.0.1:{port}");
    let mut rig = Rig::start(
        "radio-cli",
        &[
            RadioSpec::new("tg-a", "4 transmit tone-3s.wav\n"),
            RadioSpec::new("tg-b", ""),
            RadioSpec::new("tg-c", ""),
        ],
        &format!(
            "[api]\nlisten = \"127.0.0.1:{port}\"\noperators = \"operators.toml\"\n\n\
             [patching]\nstate_dir = \"state\"\nhang_ms = 300\n\n"
        ),
        &[],
    );
    let (emcomm, _) = common::binaries();
    let cli = |token: &str, args: &[&str]| {
        let output = Command::new(&emcomm)
            .args(args)
            .args(["--node", &node, "--token-file"])
            .arg(dir.join(token))
            .output()
            .expect("emcomm cli");
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stdout).to_string(),
            String::from_utf8_lossy(&output.stderr).to_string(),
        )
    };

    let (code, out, err) = cli(
        "operator.token",
        &[
            "patch", "create", "ops", "--member", "tg-a", "--member", "tg-b",
        ],
    );
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("ops") && out.contains("tg-a + tg-b"), "{out}");

    let (code, _, err) = cli(
        "operator.token",
        &[
            "patch", "create", "bad", "--member", "tg-a", "--member", "tg-9",
        ],
    );
    assert_eq!(code, Some(1), "refused: {err}");
    assert!(err.contains("no member named tg-9"), "{err}");
    let (code, _, err) = cli(
        "viewer.token",
        &[
            "patch", "create", "view", "--member", "tg-b", "--member", "tg-c",
        ],
    );
    assert_eq!(code, Some(1), "a viewer may not patch: {err}");
    assert!(err.contains("forbidden"), "{err}");
    let (code, _, err) = cli("operator.token", &["reload"]);
    assert_eq!(code, Some(1), "only a supervisor reloads: {err}");

    // The patch carries tg-a's transmission to tg-b, not to tg-c.
    let keyed = rig.wait_for("tg-b", Duration::from_secs(20), is_ptt(true));
    rig.wait_after("tg-b", Some(&keyed), Duration::from_secs(20), is_ptt(false));
    assert!(!rig.events("tg-c").iter().any(is_ptt(true)));

    // Restarted, the gateway has the live patch back.
    rig.gateway().signal(Signal::SIGTERM);
    let _ = rig.gateway().wait(Duration::from_secs(10));
    rig.start_gateway(&emcomm, &[]);
    let (code, out, _) = cli("viewer.token", &["patch", "list", "--json"]);
    assert_eq!(code, Some(0));
    let listed: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(listed["patches"][0]["name"], "ops", "{listed}");
    assert_eq!(
        listed["ports"].as_array().map(Vec::len),
        Some(3),
        "{listed}"
    );

    let (code, out, _) = cli("operator.token", &["patch", "remove", "ops"]);
    assert_eq!(code, Some(0), "{out}");
    let (code, _, err) = cli("operator.token", &["patch", "remove", "ops"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("no patch named ops"), "{err}");
    rig.finish();
}

#[test]
fn a_patch_reaches_a_talkgroup_on_another_gateway_over_an_srtp_link() {
    let near = hw_test::process::free_port_pair().expect("port");
    let far = hw_test::process::free_port_pair().expect("port");
    // Both gateways hold the link's SRTP key.
    let keys = common::scratch("radio-link-keys");
    let key = keys.join("street-1-street-2.srtp.key");
    let _ = std::fs::remove_file(&key);
    let (emcomm, _) = common::binaries();
    let made = Command::new(&emcomm)
        .args(["keys", "srtp", "--out"])
        .arg(&keys)
        .args(["--link", "street-1-street-2"])
        .output()
        .expect("emcomm keys srtp");
    assert!(made.status.success(), "{made:?}");
    let mut b = RadioSpec::new("tg-b", "");
    b.far = true;
    let mut rig = Rig::start(
        "radio-link",
        &[RadioSpec::new("tg-a", "2 transmit tone-3s.wav\n"), b],
        &format!(
            "[patching]\nstate_dir = \"state\"\nhang_ms = 300\n\n\
             [[link]]\nname = \"to-street-2\"\nlisten = \"127.0.0.1:{near}\"\nsend_to = \"127.0.0.1:{far}\"\n\
             srtp_key = \"{key}\"\n\n\
             [[patch]]\nname = \"across\"\nmembers = [\"tg-a\", \"to-street-2\"]\n\n",
            key = key.display()
        ),
        &[],
    );
    let mut far_b = RadioSpec::new("tg-b", "");
    far_b.far = true;
    let config = format!(
        "[node]\nname = \"street-2\"\ntier = \"street\"\narea = \"410503002\"\n\n\
         [rtp]\nlisten = \"127.0.0.1:5996\"\n\n\
         [patching]\nstate_dir = \"state-2\"\nhang_ms = 300\n\n\
         [[link]]\nname = \"to-street-1\"\nlisten = \"127.0.0.1:{far}\"\nsend_to = \"127.0.0.1:{near}\"\n\
         srtp_key = \"{}\"\n\n\
         [[patch]]\nname = \"across\"\nmembers = [\"to-street-1\", \"tg-b\"]\n\n{}",
        key.display(),
        radio_table(&far_b)
    );
    std::fs::write(rig.dir.join("street-2.toml"), config).expect("config");
    let mut second = Command::new(&emcomm);
    second
        .args(["run", "--config"])
        .arg(rig.dir.join("street-2.toml"))
        .env("EMCOMM_LOG", "info");
    rig.start_other("street-2", second, "patching ready", true);

    let keyed = rig.wait_for("tg-b", Duration::from_secs(20), is_ptt(true));
    rig.wait_after("tg-b", Some(&keyed), Duration::from_secs(20), is_ptt(false));
    let dir = rig.dir.clone();
    let (reports, _) = rig.finish();
    assert_eq!(
        keyed_ms(&reports[0]),
        Vec::<u64>::new(),
        "nothing comes back to tg-a"
    );
    assert_eq!(keyed_ms(&reports[1]).len(), 1, "{}", reports[1]);

    let heard = codecs::audio_file::read_audio(dir.join("tg-b-tx.wav")).expect("tx recording");
    let seconds = heard.duration().as_secs_f64();
    assert!((2.6..=3.2).contains(&seconds), "transmitted {seconds:.2} s");
    let samples = heard.to_i16();
    let pitch = common::pitch(&samples[4800..samples.len() - 4800], 48_000);
    assert!(
        (pitch - 700.0).abs() < 5.0,
        "a {pitch:.1} Hz tone after Opus"
    );
    let log = std::fs::read_to_string(dir.join("street-2.log")).unwrap_or_default();
    assert!(
        log.contains("floor granted patch=across port=to-street-1"),
        "{log}"
    );
    assert!(log.contains("RTP link up link=to-street-1"), "{log}");
    assert!(log.contains("srtp=true"), "{log}");
    assert!(!log.contains("RTP on the link refused"), "{log}");
    let _ = std::fs::remove_dir_all(keys);
}

#[test]
fn a_patch_into_a_loudspeaker_zone_yields_to_the_upstream_stream() {
    let street = hw_test::process::free_port_pair().expect("port");
    let pole_1 = hw_test::process::free_port_pair().expect("port");
    let pole_2 = hw_test::process::free_port_pair().expect("port");
    let mut rig = Rig::start(
        "radio-zone",
        &[RadioSpec::new("tg-a", "1 transmit tone-8s.wav\n")],
        &format!(
            "[rtp]\nlisten = \"127.0.0.1:{street}\"\ninput_timeout_ms = 1000\nrtcp_interval_ms = 500\n\n\
             [upstream]\nallow = [\"127.0.0.1\"]\n\n\
             [[downstream]]\nname = \"pole-1\"\naddress = \"127.0.0.1:{pole_1}\"\n\n\
             [[downstream]]\nname = \"pole-2\"\naddress = \"127.0.0.1:{pole_2}\"\ncodec = \"pcmu\"\n\n\
             [patching]\nstate_dir = \"state\"\nhang_ms = 300\n\n\
             [[zone]]\nname = \"east\"\narea = \"410503001\"\n\n\
             [[patch]]\nname = \"to-east\"\nmembers = [\"tg-a\", \"east\"]\n\n"
        ),
        &[],
    );
    let (_, bench) = common::binaries();
    for (name, port, codec) in [("pole-1", pole_1, "opus"), ("pole-2", pole_2, "pcmu")] {
        let mut speaker = Command::new(&bench);
        speaker
            .args(["speaker", "--name", name, "--codec", codec, "--listen"])
            .arg(format!("127.0.0.1:{port}"))
            .args([
                "--streams",
                "2",
                "--silence-limit-s",
                "2",
                "--wait-limit-s",
                "30",
            ])
            .arg("--wav")
            .arg(rig.dir.join(format!("{name}.wav")))
            .arg("--stats")
            .arg(rig.dir.join(format!("{name}.json")));
        rig.start_other(name, speaker, "listening", false);
    }

    // The patch plays tg-a's 700 Hz on the zone; 3 s in, the district's stream (a
    // 1 kHz tone, from GStreamer) comes down and takes the loudspeakers.
    rig.wait_for("tg-a", Duration::from_secs(20), |e| {
        e["event"] == "cos" && e["on"] == true
    });
    std::thread::sleep(Duration::from_secs(3));
    let status = Command::new("gst-launch-1.0")
        .args([
            "-q",
            "audiotestsrc",
            "is-live=true",
            "num-buffers=100",
            "samplesperbuffer=960",
        ])
        .args([
            "wave=sine",
            "freq=1000",
            "!",
            "audio/x-raw,rate=48000,channels=1",
        ])
        .args([
            "!",
            "audioconvert",
            "!",
            "opusenc",
            "bitrate=32000",
            "frame-size=20",
        ])
        .args([
            "!",
            "rtpopuspay",
            "pt=111",
            "!",
            "udpsink",
            "host=127.0.0.1",
        ])
        .arg(format!("port={street}"))
        .status()
        .expect("gst-launch-1.0 runs (install gstreamer1.0-tools)");
    assert!(status.success());
    let dir = rig.dir.clone();
    for pole in &mut rig.others {
        let _ = pole.wait(Duration::from_secs(30));
    }
    let (_, log) = rig.finish();
    assert!(log.contains("the patch yields"), "{log}");

    for (name, rate) in [("pole-1", 48_000), ("pole-2", 8_000)] {
        let heard = codecs::audio_file::read_audio(dir.join(format!("{name}.wav"))).expect("wav");
        let samples = heard.to_i16();
        let second = |from: f64| {
            let start = (from * f64::from(rate)) as usize;
            let end = (start + rate as usize).min(samples.len());
            common::pitch(&samples[start.min(end)..end], rate)
        };
        // The patch's tone first, then the district's.
        let first = second(0.5);
        assert!(
            (first - 700.0).abs() < 10.0,
            "{name} first heard {first:.0} Hz"
        );
        let duration = heard.duration().as_secs_f64();
        let last = second(duration - 1.5);
        assert!(
            (last - 1000.0).abs() < 10.0,
            "{name} last heard {last:.0} Hz"
        );
    }
}

#[test]
fn talkgroup_selection_and_ptt_by_command_go_over_the_radios_command_channel() {
    let mut b = RadioSpec::new("tg-b", "");
    b.extra = "talkgroup = 2002\nselect_command = \"AT+CTGS={talkgroup}\\r\"\n\
               ptt_key_command = \"AT+PTT=1\\r\"\nptt_release_command = \"AT+PTT=0\\r\"\n\
               command_port = \"{pty}\"\n";
    let rig = Rig::start(
        "radio-command",
        &[
            // A squelch blip first: it must not key the patch.
            RadioSpec::new("tg-a", "1 blip 40\n2 transmit tone-3s.wav\n"),
            b,
        ],
        PATCH_AB,
        &[],
    );
    rig.wait_for("tg-b", Duration::from_secs(20), |e| {
        e["text"] == "AT+CTGS=2002"
    });
    rig.wait_for("tg-b", Duration::from_secs(20), |e| e["text"] == "AT+PTT=1");
    rig.wait_for("tg-b", Duration::from_secs(20), |e| e["text"] == "AT+PTT=0");
    let (reports, log) = rig.finish();
    let commands: Vec<&str> = reports[1]["commands"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    // Released as the port opens, the talkgroup selected, keyed once for the
    // transmission (not for the blip), released after it and again as the port stops.
    assert_eq!(commands.first(), Some(&"AT+PTT=0"), "{commands:?}");
    assert_eq!(commands.get(1), Some(&"AT+CTGS=2002"), "{commands:?}");
    assert_eq!(
        commands.iter().filter(|c| **c == "AT+PTT=1").count(),
        1,
        "{commands:?}"
    );
    let keyed = commands.iter().position(|c| *c == "AT+PTT=1").unwrap_or(0);
    assert_eq!(commands.get(keyed + 1), Some(&"AT+PTT=0"), "{commands:?}");
    assert_eq!(commands.last(), Some(&"AT+PTT=0"), "{commands:?}");
    assert!(log.contains("talkgroup selected"), "{log}");
}

/// The cascade's 370 MHz bearer: a street that plays alerts, whose link to a village
/// has no IP (nothing is heard from the village), speaks an alert for that village on
/// the radio its link names; the talkgroup gets the whole alert and PTT drops after it;
/// a village gateway whose radio hears that transmission plays it on its loudspeaker.
#[test]
fn an_alert_for_a_village_whose_link_has_no_ip_goes_out_as_voice_on_its_radio() {
    let dir = common::scratch("radio-alert");
    for state in ["state", "alerts", "cascade"] {
        let _ = std::fs::remove_dir_all(dir.join(state));
    }
    std::fs::write(
        dir.join("operators.toml"),
        "[[operator]]\nname = \"li.na\"\nrole = \"operator\"\ntoken = \"operator-token-0123456789\"\n",
    )
    .expect("operators");
    std::fs::write(dir.join("operator.token"), "operator-token-0123456789").expect("token");
    let (emcomm, _) = common::binaries();
    let _ = std::fs::remove_dir_all(dir.join("keys"));
    let made = Command::new(&emcomm)
        .args(["keys", "generate", "--out"])
        .arg(dir.join("keys"))
        .args(["--node", "street"])
        .output()
        .expect("emcomm keys");
    assert!(made.status.success(), "{made:?}");
    let port = |_| hw_test::process::free_port_pair().expect("port");
    let [api, rtp, frames, pole, village] = [0; 5].map(port);
    let rig = Rig::start(
        "radio-alert",
        &[RadioSpec::new("tg-v", "")],
        &format!(
            "[rtp]\nlisten = \"127.0.0.1:{rtp}\"\n\n\
             [api]\nlisten = \"127.0.0.1:{api}\"\noperators = \"operators.toml\"\n\n\
             [alerts]\nstate_dir = \"alerts\"\nattention = \"chime\"\nrepeat = 1\n\n\
             [[downstream]]\nname = \"pole\"\naddress = \"127.0.0.1:{pole}\"\narea = \"410503001001\"\n\n\
             [cascade]\nkey = \"keys/street.sm2.key\"\nstate_dir = \"cascade\"\n\
             listen = \"127.0.0.1:{frames}\"\nheartbeat_s = 1\n\n\
             [[cascade.link]]\nname = \"village-1\"\npeer = \"410503001001\"\ndirection = \"down\"\n\
             ip = \"127.0.0.1:{village}\"\nradio = \"tg-v\"\n\n\
             [patching]\nstate_dir = \"state\"\nhang_ms = 300\n\n"
        ),
        &[],
    );
    let log = rig.gateway_log.clone();
    let logged = |what: &str| {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains(what)
    };
    assert!(
        logged("alerts for this link go out on the radio while it has no IP"),
        "{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );

    let send = |extra: &[&str]| {
        Command::new(&emcomm)
            .args([
                "alert",
                "send",
                "--text",
                "山洪预警：沿河村民立即转移到高处。",
            ])
            .args(["--level", "blue", "--area", "410503001001"])
            .args(extra)
            .args(["--node", &format!("http://127.0.0.1:{api}"), "--token-file"])
            .arg(dir.join("operator.token"))
            .output()
            .expect("emcomm alert send")
    };
    // The preview names the radio before anything is sent.
    let preview = send(&["--dry-run"]);
    let said = String::from_utf8_lossy(&preview.stdout);
    assert!(preview.status.success(), "{preview:?}");
    assert!(said.contains("as voice on radio tg-v"), "{said}");
    assert!(!logged("alert sent as voice on the radio"));

    let sent = send(&["--json"]);
    assert!(sent.status.success(), "{sent:?}");

    let keyed = rig.wait_for("tg-v", Duration::from_secs(30), is_ptt(true));
    rig.wait_after("tg-v", Some(&keyed), Duration::from_secs(60), is_ptt(false));
    assert!(logged(
        "the link below has no IP: the alert goes out on its radio"
    ));
    assert!(logged("alert sent as voice on the radio"));
    let dir = rig.dir.clone();
    let (reports, _) = rig.finish();
    assert_eq!(keyed_ms(&reports[0]).len(), 1, "one over: {}", reports[0]);

    // What went out is the chime and the speech: seconds of sound, not silence.
    let air = dir.join("tg-v-tx.wav");
    let sent = codecs::audio_file::read_audio(&air).expect("tx recording");
    let seconds = sent.duration().as_secs_f64();
    assert!(seconds > 3.0, "transmitted {seconds:.2} s");
    assert_loud(&sent.to_i16(), "transmitted");

    // The village end: its radio on the talkgroup hears what the street sent (the
    // simulator plays the street's transmission as received audio), and a patch from
    // that radio to the village's zone puts it on the village's loudspeaker.
    let rtp = hw_test::process::free_port_pair().expect("port");
    let pole = hw_test::process::free_port_pair().expect("port");
    let mut village = Rig::start(
        "radio-alert-village",
        &[RadioSpec::new(
            "village-rx",
            &format!("1 transmit {}\n", air.display()),
        )],
        &format!(
            "[rtp]\nlisten = \"127.0.0.1:{rtp}\"\n\n\
             [[downstream]]\nname = \"pole\"\naddress = \"127.0.0.1:{pole}\"\n\n\
             [patching]\nstate_dir = \"state\"\nhang_ms = 300\n\n\
             [[zone]]\nname = \"village\"\narea = \"410503001\"\n\n\
             [[patch]]\nname = \"air-to-poles\"\nmembers = [\"village-rx\", \"village\"]\n\n"
        ),
        &[],
    );
    let (_, bench) = common::binaries();
    let mut speaker = Command::new(&bench);
    speaker
        .args(["speaker", "--name", "pole", "--codec", "opus", "--listen"])
        .arg(format!("127.0.0.1:{pole}"))
        .args([
            "--streams",
            "1",
            "--silence-limit-s",
            "2",
            "--wait-limit-s",
            "30",
        ])
        .arg("--wav")
        .arg(village.dir.join("pole.wav"));
    village.start_other("pole", speaker, "listening", false);
    for pole in &mut village.others {
        let _ = pole.wait(Duration::from_secs(60));
    }
    let dir = village.dir.clone();
    village.finish();
    let played = codecs::audio_file::read_audio(dir.join("pole.wav")).expect("pole's recording");
    let played_s = played.duration().as_secs_f64();
    assert!(
        played_s > seconds - 1.0,
        "the loudspeaker played {played_s:.2} s of {seconds:.2} s sent"
    );
    assert_loud(&played.to_i16(), "played at the village");
}

/// Asserts that at least a tenth of `samples` are above -30 dBFS: sound, not silence.
fn assert_loud(samples: &[i16], what: &str) {
    let loud = samples.iter().filter(|s| s.unsigned_abs() > 1000).count();
    assert!(
        loud as f64 > samples.len() as f64 * 0.1,
        "{what}: {loud} of {} samples above -30 dBFS",
        samples.len()
    );
}
