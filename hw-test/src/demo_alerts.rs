//! The alert cascade: the command centre's alerts from the district's control API to
//! six loudspeakers behind two street gateways, and the receipts back up.
//!
//! Every node and loudspeaker is a separate process on 127.0.0.1. The district runs
//! with a replay clock set inside the validity of a real-format CAP exercise alert
//! (Beiguan rainstorm, red, Exercise, GB/T 2260 codes of both streets). The first
//! street takes exercises, the second does not. Then:
//!
//! 1. a dry run of the CAP file: what would play where;
//! 2. the CAP file sent: it must play at the first street's three loudspeakers only,
//!    and each must confirm it through the street's report to the district;
//! 3. a typed red Actual alert for the whole district: it waits for a second operator,
//!    is confirmed by a supervisor, and must be played by all six.
//!
//! Each step waits on the node's answers (polling the API), with a time limit.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::demo::{DemoError, io};
use crate::process::{Supervised, await_ready, free_port_pair, watch};

const READY_LIMIT: Duration = Duration::from_secs(30);
const PLAY_LIMIT: Duration = Duration::from_secs(120);

/// Settings of a run.
#[derive(Debug, Clone)]
pub struct AlertDemoOptions {
    pub emcomm: PathBuf,
    pub bench: PathBuf,
    /// The CAP exercise alert to send.
    pub cap: PathBuf,
    pub out: PathBuf,
}

/// What one alert did, for the final table.
pub struct AlertOutcome {
    pub title: String,
    pub alert: Value,
    /// Loudspeakers expected to play it.
    pub expected: Vec<String>,
    pub pass: bool,
}

fn random_token() -> String {
    format!("{:032x}", rand::random::<u128>())
}

struct Api {
    url: String,
    agent: ureq::Agent,
}

impl Api {
    fn call(
        &self,
        method: &str,
        path: &str,
        token: &str,
        content_type: &str,
        body: &[u8],
    ) -> Result<(u16, Value), DemoError> {
        let url = format!("{}{path}", self.url);
        let auth = format!("Bearer {token}");
        let response = match method {
            "GET" => self.agent.get(&url).header("Authorization", &auth).call(),
            _ => self
                .agent
                .post(&url)
                .header("Authorization", &auth)
                .content_type(content_type)
                .send(body),
        };
        let mut response = response.map_err(|e| DemoError::Process(format!("{path}: {e}")))?;
        let status = response.status().as_u16();
        let text = response
            .body_mut()
            .read_to_string()
            .map_err(|e| DemoError::Process(format!("{path}: {e}")))?;
        let value = serde_json::from_str(&text)
            .map_err(|_| DemoError::Process(format!("{path}: not JSON: {text}")))?;
        Ok((status, value))
    }

    fn expect(
        &self,
        method: &str,
        path: &str,
        token: &str,
        content_type: &str,
        body: &[u8],
        status: u16,
    ) -> Result<Value, DemoError> {
        let (got, value) = self.call(method, path, token, content_type, body)?;
        if got != status {
            return Err(DemoError::Process(format!(
                "{method} {path}: expected {status}, got {got}: {value}"
            )));
        }
        Ok(value)
    }

    /// Polls alert `id` until every expected loudspeaker has a final receipt.
    fn wait_receipts(&self, id: i64, token: &str, expected: usize) -> Result<Value, DemoError> {
        let deadline = Instant::now() + PLAY_LIMIT;
        loop {
            let alert = self.expect("GET", &format!("/v1/alerts/{id}"), token, "", b"", 200)?;
            let settled = alert["receipts"]
                .as_array()
                .map(|r| {
                    r.iter()
                        .filter(|r| r["state"] != "pending" && r["state"] != "skipped")
                        .count()
                })
                .unwrap_or(0);
            if alert["state"] == "done" && settled >= expected {
                return Ok(alert);
            }
            if Instant::now() > deadline {
                return Ok(alert);
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

/// Runs the alert cascade.
pub fn run(options: &AlertDemoOptions) -> Result<Vec<AlertOutcome>, DemoError> {
    std::fs::create_dir_all(&options.out)
        .map_err(io(format!("creating {}", options.out.display())))?;
    let out = options
        .out
        .canonicalize()
        .map_err(io("resolving the output folder"))?;
    let state = out.join("alerts-state");
    let _ = std::fs::remove_dir_all(&state);
    let cap =
        std::fs::read(&options.cap).map_err(io(format!("reading {}", options.cap.display())))?;

    let (operator, supervisor, viewer) = (random_token(), random_token(), random_token());
    let streets = [
        ("street-410503001", "410503001", true),
        ("street-410503005", "410503005", false),
    ];
    let mut operators = format!(
        "[[operator]]\nname = \"zhang.wei\"\nrole = \"operator\"\ntoken = \"{operator}\"\n\n\
         [[operator]]\nname = \"li.na\"\nrole = \"supervisor\"\ntoken = \"{supervisor}\"\n\n\
         [[operator]]\nname = \"duty\"\nrole = \"viewer\"\ntoken = \"{viewer}\"\n"
    );
    let api_port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(io("finding a port for the API"))?;

    let mut processes: Vec<Supervised> = Vec::new();
    let mut district_downstream = String::new();
    for (street, area, exercises) in streets {
        let token = random_token();
        operators.push_str(&format!(
            "\n[[operator]]\nname = \"{street}\"\nrole = \"node\"\ntoken = \"{token}\"\n"
        ));
        std::fs::write(out.join(format!("{street}.token")), &token)
            .map_err(io("writing a token"))?;
        let street_port = free_port_pair()?;
        let mut config = format!(
            "[node]\nname = \"{street}\"\ntier = \"street\"\narea = \"{area}\"\n\n\
             [rtp]\nlisten = \"127.0.0.1:{street_port}\"\nrtcp_interval_ms = 1000\n\n\
             [upstream]\nallow = [\"127.0.0.1\"]\napi = \"http://127.0.0.1:{api_port}\"\ntoken_file = \"{street}.token\"\n"
        );
        for (p, codec) in ["opus", "opus", "pcmu"].into_iter().enumerate() {
            let name = format!("{street}-pole-{}", p + 1);
            let port = free_port_pair()?;
            let mut child = Command::new(&options.bench)
                .args([
                    "speaker",
                    "--listen",
                    &format!("127.0.0.1:{port}"),
                    "--codec",
                    codec,
                ])
                .args([
                    "--name",
                    &name,
                    "--streams",
                    "0",
                    "--rtcp-interval-ms",
                    "500",
                    "--silence-limit-s",
                    "3",
                ])
                .arg("--wav")
                .arg(out.join(format!("{name}-alerts.wav")))
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .map_err(io(format!("starting loudspeaker {name}")))?;
            let ready = watch(
                child
                    .stdout
                    .take()
                    .ok_or(DemoError::Process("stdout".into()))?,
                out.join(format!("{name}-alerts.out")),
                "listening",
            );
            let _ = watch(
                child
                    .stderr
                    .take()
                    .ok_or(DemoError::Process("stderr".into()))?,
                out.join(format!("{name}-alerts.log")),
                "",
            );
            processes.push(Supervised::new(name.clone(), child));
            await_ready(&name, &ready, READY_LIMIT)?;
            config.push_str(&format!("\n[[downstream]]\nname = \"{name}\"\naddress = \"127.0.0.1:{port}\"\ncodec = \"{codec}\"\n"));
        }
        let path = out.join(format!("{street}.toml"));
        std::fs::write(&path, config).map_err(io("writing a street config"))?;
        let mut child = Command::new(&options.emcomm)
            .args(["run", "--config"])
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(io(format!("starting {street}")))?;
        let ready = watch(
            child
                .stderr
                .take()
                .ok_or(DemoError::Process("stderr".into()))?,
            out.join(format!("{street}-alerts.log")),
            "relay node started",
        );
        processes.push(Supervised::new(street, child));
        await_ready(street, &ready, READY_LIMIT)?;
        district_downstream.push_str(&format!(
            "\n[[downstream]]\nname = \"{street}\"\naddress = \"{}\"\nkind = \"gateway\"\narea = \"{area}\"\nexercises = {exercises}\n",
            SocketAddr::from(([127, 0, 0, 1], street_port))
        ));
    }
    std::fs::write(out.join("operators.toml"), operators)
        .map_err(io("writing the operators file"))?;
    let district_config = out.join("district-alerts.toml");
    std::fs::write(
        &district_config,
        format!(
            "[node]\nname = \"district-410503\"\ntier = \"district\"\narea = \"410503\"\n\n\
             [rtp]\nrtcp_interval_ms = 1000\n\n\
             [api]\nlisten = \"127.0.0.1:{api_port}\"\noperators = \"operators.toml\"\n\n\
             [alerts]\nstate_dir = \"alerts-state\"\nrepeat = 1\ngap_ms = 500\nattention = \"chime\"\n\
             replay_clock = \"2026-07-21T07:00:00+08:00\"\n{district_downstream}"
        ),
    )
    .map_err(io("writing the district config"))?;
    let mut child = Command::new(&options.emcomm)
        .args(["run", "--config"])
        .arg(&district_config)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(io("starting the district"))?;
    let ready = watch(
        child
            .stderr
            .take()
            .ok_or(DemoError::Process("stderr".into()))?,
        out.join("district-alerts.log"),
        "control API listening",
    );
    processes.push(Supervised::new("district", child));
    await_ready("district", &ready, READY_LIMIT)?;

    let api = Api {
        url: format!("http://127.0.0.1:{api_port}"),
        agent: ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into(),
    };
    let street_poles = |street: &str| {
        (1..=3)
            .map(|p| format!("{street}-pole-{p}"))
            .collect::<Vec<_>>()
    };
    let mut outcomes = Vec::new();

    // 1. Dry run.
    let preview = api.expect(
        "POST",
        "/v1/alerts?dry_run=true",
        &operator,
        "application/cap+xml",
        &cap,
        200,
    )?;
    println!(
        "dry run of {}: {} {} alert would {} to {}; skipped: {}; one play {:.1} s by {}",
        options.cap.display(),
        preview["level"].as_str().unwrap_or("?").to_uppercase(),
        preview["purpose"].as_str().unwrap_or("?"),
        preview["would"].as_str().unwrap_or("?"),
        join(&preview["targets"]),
        preview["skipped"]
            .as_array()
            .map(|s| s
                .iter()
                .map(|s| format!("{} ({})", text(&s["name"]), text(&s["reason"])))
                .collect::<Vec<_>>()
                .join(", "))
            .unwrap_or_default(),
        preview["play_seconds"].as_f64().unwrap_or(0.0),
        text(&preview["voice"]),
    );
    println!(
        "  spoken as: {}",
        text(&preview["spoken"])
            .chars()
            .take(100)
            .collect::<String>()
    );

    // 2. The CAP exercise.
    let sent = api.expect(
        "POST",
        "/v1/alerts",
        &operator,
        "application/cap+xml",
        &cap,
        201,
    )?;
    let id = sent["id"].as_i64().unwrap_or(0);
    let done = api.wait_receipts(id, &viewer, 3)?;
    let expected = street_poles("street-410503001");
    let pass = played(&done) == expected && done["targets"] == json!(["street-410503001"]);
    outcomes.push(AlertOutcome {
        title: format!(
            "alert {id}: CAP exercise, red, Beiguan (exercises only at street 410503001)"
        ),
        alert: done,
        expected,
        pass,
    });

    // 3. A typed red Actual alert: a second operator confirms it.
    let form = json!({"text": "北关区发布暴雨红色预警，请沿河低洼地区群众立即转移。", "level": "red", "areas": ["410503"], "repeat": 1});
    let sent = api.expect(
        "POST",
        "/v1/alerts",
        &operator,
        "application/json",
        form.to_string().as_bytes(),
        201,
    )?;
    let id = sent["id"].as_i64().unwrap_or(0);
    println!("alert {id}: red Actual, {}", text(&sent["state"]));
    let refused = api.call(
        "POST",
        &format!("/v1/alerts/{id}/confirm"),
        &operator,
        "application/json",
        b"",
    )?;
    println!(
        "  the sender tries to confirm it: {} {}",
        refused.0,
        text(&refused.1["message"])
    );
    let confirmed = api.expect(
        "POST",
        &format!("/v1/alerts/{id}/confirm"),
        &supervisor,
        "application/json",
        b"",
        200,
    )?;
    println!("  confirmed by {}", text(&confirmed["confirmed_by"]));
    let done = api.wait_receipts(id, &viewer, 6)?;
    let mut expected = street_poles("street-410503001");
    expected.extend(street_poles("street-410503005"));
    expected.sort();
    let pass = played(&done) == expected;
    outcomes.push(AlertOutcome {
        title: format!(
            "alert {id}: typed red Actual alert for the district, confirmed by a supervisor"
        ),
        alert: done,
        expected,
        pass,
    });

    for process in &processes {
        process.signal(nix::sys::signal::Signal::SIGTERM);
    }
    Ok(outcomes)
}

fn text(v: &Value) -> String {
    v.as_str()
        .map(str::to_string)
        .unwrap_or_else(|| v.to_string())
}

fn join(v: &Value) -> String {
    v.as_array()
        .map(|a| a.iter().map(text).collect::<Vec<_>>().join(", "))
        .unwrap_or_default()
}

/// The loudspeakers whose receipt says they played it, sorted.
fn played(alert: &Value) -> Vec<String> {
    let mut names: Vec<String> = alert["receipts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["state"] == "played")
        .map(|r| text(&r["loudspeaker"]))
        .collect();
    names.sort();
    names
}

/// The receipts of every alert, as a table.
pub fn table(outcomes: &[AlertOutcome]) -> String {
    let mut out = String::new();
    for o in outcomes {
        let _ = writeln!(out, "{}", o.title);
        let _ = writeln!(
            out,
            "  {}  [{}]",
            text(&o.alert["summary"]["text"]),
            if o.pass { "PASS" } else { "FAIL" }
        );
        let _ = writeln!(
            out,
            "  {:<28} {:<18} {:<12} detail",
            "loudspeaker", "via", "receipt"
        );
        for r in o.alert["receipts"].as_array().into_iter().flatten() {
            let _ = writeln!(
                out,
                "  {:<28} {:<18} {:<12} {}",
                text(&r["loudspeaker"]),
                text(&r["via"]),
                text(&r["state"]),
                text(&r["detail"])
            );
        }
        if !o.pass {
            let _ = writeln!(out, "  expected played by: {}", o.expected.join(", "));
        }
    }
    out
}
