//! `emcomm broadcast start|stop`: the command centre's live voice, from a shell.

use serde_json::{Value, json};

use super::Outcome;
use super::alert::{finish, print_alert};
use super::client::Connection;

#[derive(Debug, clap::Subcommand)]
pub enum BroadcastCommand {
    /// Start a live broadcast to chosen areas: the attention signal, then the voice
    /// from a capture device or a dispatcher console's RTP, until stopped.
    Start {
        /// GB/T 2260 area code (6, 9 or 12 digits); repeat for several.
        #[arg(long = "area", required = true)]
        areas: Vec<String>,
        /// routine (default), blue, yellow, orange or red.
        #[arg(long)]
        level: Option<String>,
        /// Capture device to broadcast from (`default` is the system's default).
        #[arg(long, conflicts_with = "rtp_listen")]
        device: Option<String>,
        /// IP:PORT where a dispatcher console sends RTP (Opus, PCMU or PCMA).
        #[arg(long)]
        rtp_listen: Option<String>,
        /// none, chime, pre-warning, air-raid or all-clear (the node's default when absent).
        #[arg(long)]
        attention: Option<String>,
        /// actual (default), exercise or test.
        #[arg(long)]
        purpose: Option<String>,
        /// The longest it may run, minutes.
        #[arg(long)]
        valid_minutes: Option<u32>,
        #[arg(long)]
        headline: Option<String>,
        #[command(flatten)]
        connection: Connection,
        #[arg(long)]
        json: bool,
    },
    /// Stop a live broadcast; without ID, every live broadcast on the node.
    Stop {
        id: Option<i64>,
        #[command(flatten)]
        connection: Connection,
        #[arg(long)]
        json: bool,
    },
}

/// Runs a broadcast command.
pub fn run(command: BroadcastCommand) -> Outcome {
    match command {
        BroadcastCommand::Start {
            areas,
            level,
            device,
            rtp_listen,
            attention,
            purpose,
            valid_minutes,
            headline,
            connection,
            json,
        } => {
            // The capture device is the default source, as the command centre expects.
            let device = match (&device, &rtp_listen) {
                (None, None) => Some("default".to_string()),
                _ => device,
            };
            let mut form = json!({ "areas": areas });
            for (key, value) in [
                ("level", level.map(Value::from)),
                ("device", device.map(Value::from)),
                ("rtp_listen", rtp_listen.map(Value::from)),
                ("attention", attention.map(Value::from)),
                ("purpose", purpose.map(Value::from)),
                ("valid_minutes", valid_minutes.map(Value::from)),
                ("headline", headline.map(Value::from)),
            ] {
                if let Some(value) = value {
                    form[key] = value;
                }
            }
            finish(
                connection.post(
                    "/v1/broadcasts",
                    "application/json",
                    form.to_string().as_bytes(),
                ),
                json,
                print_alert,
            )
        }
        BroadcastCommand::Stop {
            id: Some(id),
            connection,
            json,
        } => finish(
            connection.post(
                &format!("/v1/broadcasts/{id}/stop"),
                "application/json",
                b"",
            ),
            json,
            print_alert,
        ),
        BroadcastCommand::Stop {
            id: None,
            connection,
            json,
        } => stop_all(&connection, json),
    }
}

/// Stops every live broadcast the node holds; done when there was none to stop.
fn stop_all(connection: &Connection, json: bool) -> Outcome {
    let active = match connection.get("/v1/alerts") {
        Ok(answer) if answer.outcome() == Outcome::Done => answer.body,
        Ok(answer) => {
            eprintln!("{}", answer.error_text());
            return answer.outcome();
        }
        Err(e) => {
            eprintln!("{e}");
            return Outcome::Failed;
        }
    };
    let ids: Vec<i64> = active
        .as_array()
        .into_iter()
        .flatten()
        .filter(|a| a["kind"] == "broadcast")
        .filter_map(|a| a["id"].as_i64())
        .collect();
    if ids.is_empty() {
        if json {
            say!("[]");
        } else {
            say!("no live broadcast to stop");
        }
        return Outcome::Done;
    }
    let mut worst = Outcome::Done;
    for id in ids {
        let outcome = finish(
            connection.post(
                &format!("/v1/broadcasts/{id}/stop"),
                "application/json",
                b"",
            ),
            json,
            print_alert,
        );
        if outcome != Outcome::Done && worst != Outcome::Failed {
            worst = outcome;
        }
    }
    worst
}
