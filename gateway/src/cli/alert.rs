//! `emcomm alert send|confirm|status|cancel|update|list|audit` and `emcomm status`:
//! the control API from a shell.

use std::path::PathBuf;

use serde_json::{Value, json};

use super::Outcome;
use super::client::{Answer, Connection};

/// What to say in a typed alert.
#[derive(Debug, Clone, clap::Args)]
pub struct FormArgs {
    /// The text to speak.
    #[arg(long)]
    pub text: Option<String>,
    /// routine, blue, yellow, orange or red.
    #[arg(long)]
    pub level: Option<String>,
    /// GB/T 2260 area code (6, 9 or 12 digits); repeat for several.
    #[arg(long = "area")]
    pub areas: Vec<String>,
    /// How many times to play it.
    #[arg(long)]
    pub repeat: Option<u32>,
    /// none, chime, pre-warning, air-raid or all-clear.
    #[arg(long)]
    pub attention: Option<String>,
    /// actual (default), exercise or test.
    #[arg(long)]
    pub purpose: Option<String>,
    /// Language of the text (zh-CN, en, ...).
    #[arg(long)]
    pub language: Option<String>,
    /// Minutes the alert stays valid.
    #[arg(long)]
    pub valid_minutes: Option<u32>,
    #[arg(long)]
    pub headline: Option<String>,
}

impl FormArgs {
    fn to_json(&self) -> Result<Value, String> {
        let text = self
            .text
            .clone()
            .ok_or("give a CAP FILE, or --text with --level and --area")?;
        let level = self
            .level
            .clone()
            .ok_or("--level is required with --text")?;
        if self.areas.is_empty() {
            return Err("--area is required with --text".into());
        }
        let mut form = json!({"text": text, "level": level, "areas": self.areas});
        for (key, value) in [
            ("attention", self.attention.clone().map(Value::from)),
            ("purpose", self.purpose.clone().map(Value::from)),
            ("language", self.language.clone().map(Value::from)),
            ("headline", self.headline.clone().map(Value::from)),
            ("repeat", self.repeat.map(Value::from)),
            ("valid_minutes", self.valid_minutes.map(Value::from)),
        ] {
            if let Some(value) = value {
                form[key] = value;
            }
        }
        Ok(form)
    }
}

#[derive(Debug, clap::Subcommand)]
pub enum AlertCommand {
    /// Check CAP files against the CAP 1.2/1.1 standard alone, offline. Exit code 0
    /// when every file is valid, 1 when any is not, 2 when one cannot be read.
    Check {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Send an alert: a CAP FILE, or a typed one with --text --level --area.
    Send {
        /// A CAP 1.2 or 1.1 file.
        file: Option<PathBuf>,
        #[command(flatten)]
        form: FormArgs,
        /// Show what would play where, and for how long, without playing.
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        connection: Connection,
        #[arg(long)]
        json: bool,
    },
    /// Confirm an alert as the second operator.
    Confirm {
        id: i64,
        #[command(flatten)]
        connection: Connection,
        #[arg(long)]
        json: bool,
    },
    /// Show an alert: its state and which loudspeakers played it.
    Status {
        id: i64,
        #[command(flatten)]
        connection: Connection,
        #[arg(long)]
        json: bool,
    },
    /// Cancel an alert: it stops on every loudspeaker.
    Cancel {
        id: i64,
        #[arg(long)]
        reason: Option<String>,
        #[command(flatten)]
        connection: Connection,
        #[arg(long)]
        json: bool,
    },
    /// Replace an alert with a new typed one.
    Update {
        id: i64,
        #[command(flatten)]
        form: FormArgs,
        #[command(flatten)]
        connection: Connection,
        #[arg(long)]
        json: bool,
    },
    /// List active alerts (--all: the latest 100).
    List {
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        connection: Connection,
        #[arg(long)]
        json: bool,
    },
    /// Print the audit log.
    Audit {
        #[command(flatten)]
        connection: Connection,
        #[arg(long)]
        json: bool,
    },
}

/// Runs an alert command.
pub fn run(command: AlertCommand) -> Outcome {
    match command {
        AlertCommand::Check { files, json } => super::check::run(&files, json),
        AlertCommand::Send {
            file,
            form,
            dry_run,
            connection,
            json,
        } => {
            let (content_type, body) = match &file {
                Some(path) => match std::fs::read(path) {
                    Ok(bytes) => ("application/cap+xml", bytes),
                    Err(e) => {
                        eprintln!("{}: cannot read: {e}", path.display());
                        return Outcome::Failed;
                    }
                },
                None => match form.to_json() {
                    Ok(form) => ("application/json", form.to_string().into_bytes()),
                    Err(e) => {
                        eprintln!("{e}");
                        return Outcome::Failed;
                    }
                },
            };
            let path = if dry_run {
                "/v1/alerts?dry_run=true"
            } else {
                "/v1/alerts"
            };
            finish(connection.post(path, content_type, &body), json, |body| {
                if dry_run {
                    print_preview(body)
                } else {
                    print_alert(body)
                }
            })
        }
        AlertCommand::Confirm {
            id,
            connection,
            json,
        } => finish(
            connection.post(&format!("/v1/alerts/{id}/confirm"), "application/json", b""),
            json,
            print_alert,
        ),
        AlertCommand::Status {
            id,
            connection,
            json,
        } => finish(
            connection.get(&format!("/v1/alerts/{id}")),
            json,
            print_alert,
        ),
        AlertCommand::Cancel {
            id,
            reason,
            connection,
            json,
        } => {
            let body = json!({ "reason": reason }).to_string();
            finish(
                connection.post(
                    &format!("/v1/alerts/{id}/cancel"),
                    "application/json",
                    body.as_bytes(),
                ),
                json,
                print_alert,
            )
        }
        AlertCommand::Update {
            id,
            form,
            connection,
            json,
        } => match form.to_json() {
            Ok(form) => finish(
                connection.post(
                    &format!("/v1/alerts/{id}/update"),
                    "application/json",
                    form.to_string().as_bytes(),
                ),
                json,
                print_alert,
            ),
            Err(e) => {
                eprintln!("{e}");
                Outcome::Failed
            }
        },
        AlertCommand::List {
            all,
            connection,
            json,
        } => {
            let path = if all {
                "/v1/alerts?all=true"
            } else {
                "/v1/alerts"
            };
            finish(connection.get(path), json, |body| {
                let alerts = body.as_array().cloned().unwrap_or_default();
                if alerts.is_empty() {
                    say!("no {}alerts", if all { "" } else { "active " });
                }
                for alert in alerts {
                    say!("{}", one_line(&alert));
                }
            })
        }
        AlertCommand::Audit { connection, json } => {
            finish(connection.get("/v1/audit"), json, |body| {
                for entry in body.as_array().into_iter().flatten() {
                    say!(
                        "{:>5}  {}  {:<12} {:<14} {:>6}  {}",
                        entry["seq"],
                        text(&entry["at"]),
                        text(&entry["operator"]),
                        text(&entry["action"]),
                        entry["alert_id"]
                            .as_i64()
                            .map(|i| i.to_string())
                            .unwrap_or_default(),
                        text(&entry["detail"])
                    );
                }
            })
        }
    }
}

/// `emcomm status`: the node, its clock and its destinations.
pub fn status(connection: Connection, json: bool) -> Outcome {
    finish(connection.get("/v1/status"), json, |s| {
        say!(
            "{} ({} {}), {} active alert(s), time {}{}",
            text(&s["node"]),
            text(&s["tier"]),
            text(&s["area"]),
            s["active_alerts"],
            text(&s["now"]),
            match s["clock_offset_seconds"].as_i64() {
                Some(0) | None => String::new(),
                Some(o) => format!(" (REPLAY CLOCK, {o} s off the system clock)"),
            }
        );
        say!(
            "{:<24} {:<12} {:<13} {:<6} {:>9} {:>8} {:>9}  playing",
            "destination",
            "kind",
            "area",
            "codec",
            "loss %",
            "jitter",
            "report"
        );
        for d in s["destinations"].as_array().into_iter().flatten() {
            say!(
                "{:<24} {:<12} {:<13} {:<6} {:>9} {:>8} {:>9}  {}",
                text(&d["name"]),
                text(&d["kind"]),
                text(&d["area"]),
                text(&d["codec"]),
                d["loss_percent"]
                    .as_f64()
                    .map(|l| format!("{l:.1}"))
                    .unwrap_or("-".into()),
                d["jitter_ms"]
                    .as_f64()
                    .map(|j| format!("{j:.1} ms"))
                    .unwrap_or("-".into()),
                if d["last_report_at"].is_null() {
                    "never"
                } else {
                    "seen"
                },
                d["playing"]
                    .as_i64()
                    .map(|a| format!("alert {a}"))
                    .unwrap_or_default(),
            );
        }
    })
}

fn text(v: &Value) -> String {
    v.as_str()
        .map(str::to_string)
        .unwrap_or_else(|| v.to_string())
}

/// Prints the answer (JSON or human) and turns it into the exit outcome.
pub(super) fn finish(
    answer: Result<Answer, super::client::ClientError>,
    json: bool,
    human: impl FnOnce(&Value),
) -> Outcome {
    let answer = match answer {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return Outcome::Failed;
        }
    };
    if json {
        say!("{:#}", answer.body);
    } else if answer.outcome() == Outcome::Done {
        human(&answer.body);
    } else {
        eprintln!("{}", answer.error_text());
    }
    answer.outcome()
}

fn one_line(a: &Value) -> String {
    format!(
        "{:>5}  {:<6} {:<8} {:<22} {}  [{}]",
        a["id"],
        text(&a["level"]).to_uppercase(),
        text(&a["purpose"]),
        text(&a["state"]),
        text(&a["headline"]),
        text(&a["summary"]["text"])
    )
}

pub(super) fn print_alert(a: &Value) {
    say!(
        "alert {}  {}  {}  {}  (plays started {} of {})",
        a["id"],
        text(&a["level"]).to_uppercase(),
        text(&a["purpose"]),
        text(&a["state"]),
        a["plays_started"],
        a["repeat"]
    );
    if let Some(reason) = a["state_reason"].as_str() {
        say!("  why: {reason}");
    }
    say!("  {}", text(&a["headline"]));
    say!("  areas {}  ->  {}", join(&a["areas"]), join(&a["targets"]));
    say!(
        "  valid {} to {}",
        text(&a["effective"]),
        text(&a["expires"])
    );
    say!(
        "  submitted by {}{}",
        text(&a["submitted_by"]),
        a["confirmed_by"]
            .as_str()
            .map(|c| format!(", confirmed by {c}"))
            .unwrap_or_default()
    );
    if a["state"] == "awaiting_confirmation" {
        say!(
            "  waits for a second operator: emcomm alert confirm {}",
            a["id"]
        );
    }
    say!("  {}", text(&a["summary"]["text"]));
    for r in a["receipts"].as_array().into_iter().flatten() {
        say!(
            "    {:<28} {:<12} {}",
            text(&r["loudspeaker"]),
            text(&r["state"]),
            text(&r["detail"])
        );
    }
    for r in a["area_receipts"].as_array().into_iter().flatten() {
        say!(
            "    {:<28} played {} of {} loudspeakers, reached over {}",
            text(&r["area"]),
            r["played"],
            r["loudspeakers"],
            text(&r["bearer"])
        );
    }
}

fn print_preview(p: &Value) {
    say!(
        "DRY RUN, nothing played: {} {} alert would {}",
        text(&p["level"]).to_uppercase(),
        text(&p["purpose"]),
        text(&p["would"])
    );
    say!("  {}", text(&p["headline"]));
    for d in p["destinations"].as_array().into_iter().flatten() {
        say!(
            "  -> {:<24} {:<12} {:<13} {}",
            text(&d["name"]),
            text(&d["kind"]),
            text(&d["area"]),
            text(&d["codec"])
        );
    }
    for s in p["skipped"].as_array().into_iter().flatten() {
        say!("  skipped {}: {}", text(&s["name"]), text(&s["reason"]));
    }
    say!(
        "  attention {} ({:.1} s), speech {:.1} s by {}; one play {:.1} s, {} play(s) {:.1} s in all",
        text(&p["attention"]),
        p["attention_seconds"].as_f64().unwrap_or(0.0),
        p["speech_seconds"].as_f64().unwrap_or(0.0),
        text(&p["voice"]),
        p["play_seconds"].as_f64().unwrap_or(0.0),
        p["repeat"],
        p["total_seconds"].as_f64().unwrap_or(0.0)
    );
    say!("  text: {}", text(&p["text"]));
    if !text(&p["spoken"]).is_empty() {
        say!("  spoken as: {}", text(&p["spoken"]));
    }
    if let Some(narrow) = p["cascade_text"].as_str() {
        say!("  down the cascade as: {narrow} ({} bytes)", narrow.len());
    }
    for c in p["cascade"].as_array().into_iter().flatten() {
        let over = hop_over(c, "no route up now: it waits, queued, for the first");
        let voice = match c["radio"].as_str() {
            Some(radio) => format!("; as voice on radio {radio} while played here"),
            None => String::new(),
        };
        say!(
            "  => {:<24} {:<13} {} message(s) of a {}-byte frame, {over}{voice}",
            text(&c["link"]),
            text(&c["peer"]),
            c["messages"],
            c["frame_bytes"]
        );
        for b in c["beyond"].as_array().into_iter().flatten() {
            let over = hop_over(b, "no route up there now: it waits");
            let total = match b["total_seconds"].as_f64() {
                Some(s) => format!(" ({} from now)", duration(s)),
                None => String::new(),
            };
            let voice = match b["radio"].as_bool() {
                Some(true) => "; as voice on its radio while played there",
                _ => "",
            };
            say!(
                "       then {:<13} {} message(s) of a {}-byte frame, {over}{total}{voice}",
                text(&b["peer"]),
                b["messages"],
                b["frame_bytes"]
            );
        }
    }
}

/// How a planned hop goes: its bearer and time, or `none` while no route is up.
fn hop_over(hop: &Value, none: &str) -> String {
    match (hop["bearer"].as_str(), hop["seconds"].as_f64()) {
        (None, _) => none.to_string(),
        (Some("ip"), _) => "over ip, at once".to_string(),
        (Some(bearer), Some(s)) => format!("over {bearer}, about {}", duration(s)),
        (Some(bearer), None) => format!("over {bearer}, time not yet known"),
    }
}

/// Seconds as an operator reads them: "45 s", "3 min 20 s".
fn duration(seconds: f64) -> String {
    let whole = seconds.round() as u64;
    match (whole / 60, whole % 60) {
        (0, s) => format!("{s} s"),
        (m, 0) => format!("{m} min"),
        (m, s) => format!("{m} min {s} s"),
    }
}

fn join(v: &Value) -> String {
    v.as_array()
        .into_iter()
        .flatten()
        .map(text)
        .collect::<Vec<_>>()
        .join(", ")
}
