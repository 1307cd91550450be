//! `emcomm terminal list|send|messages`: satellite terminals from a shell.

use serde_json::{Value, json};

use super::Outcome;
use super::alert::finish;
use super::client::Connection;

#[derive(Debug, clap::Subcommand)]
pub enum TerminalCommand {
    /// The node's terminals: up or down, identity, signal, capacity and queue.
    List {
        #[command(flatten)]
        connection: Connection,
        #[arg(long)]
        json: bool,
    },
    /// Queue a message on a terminal; done once the node has stored it.
    Send {
        /// The terminal, by its name in the node's configuration.
        name: String,
        /// The recipient: a BeiDou card ID, an Iridium IMEI, a phone number.
        #[arg(long)]
        to: String,
        /// Text, sent in the terminal's text form (GB2312 Chinese on BeiDou).
        #[arg(long, conflicts_with = "hex", required_unless_present = "hex")]
        text: Option<String>,
        /// Bytes in hexadecimal, sent as they are.
        #[arg(long)]
        hex: Option<String>,
        /// Ahead of every normal message.
        #[arg(long)]
        urgent: bool,
        #[command(flatten)]
        connection: Connection,
        #[arg(long)]
        json: bool,
    },
    /// A terminal's messages: what was sent, with each one's state, and what came in.
    Messages {
        name: String,
        #[command(flatten)]
        connection: Connection,
        #[arg(long)]
        json: bool,
    },
}

/// Runs a terminal command.
pub fn run(command: TerminalCommand) -> Outcome {
    match command {
        TerminalCommand::List { connection, json } => {
            finish(connection.get("/v1/terminals"), json, print_list)
        }
        TerminalCommand::Send {
            name,
            to,
            text,
            hex,
            urgent,
            connection,
            json,
        } => {
            let form = json!({"to": to, "text": text, "hex": hex, "urgent": urgent});
            finish(
                connection.post(
                    &format!("/v1/terminals/{name}/messages"),
                    "application/json",
                    form.to_string().as_bytes(),
                ),
                json,
                |a| {
                    let estimate = match a["estimated_s"].as_f64() {
                        Some(s) => format!(", about {s:.0} s once at the front"),
                        None => String::new(),
                    };
                    say!(
                        "message {} queued on {} ({} waiting{estimate})",
                        a["id"],
                        text_of(&a["terminal"]),
                        a["queued"]
                    );
                },
            )
        }
        TerminalCommand::Messages {
            name,
            connection,
            json,
        } => finish(
            connection.get(&format!("/v1/terminals/{name}/messages")),
            json,
            print_messages,
        ),
    }
}

fn text_of(value: &Value) -> &str {
    value.as_str().unwrap_or("?")
}

/// The body of a message for a line: its text, or its bytes in hex.
fn body_of(message: &Value) -> String {
    match (message["text"].as_str(), message["hex"].as_str()) {
        (Some(text), _) => text.to_string(),
        (None, Some(hex)) => format!("hex {hex}"),
        (None, None) => String::new(),
    }
}

fn print_list(body: &Value) {
    let terminals = body["terminals"].as_array().cloned().unwrap_or_default();
    if terminals.is_empty() {
        say!("no terminals");
    }
    for t in &terminals {
        let state = if t["up"] == true {
            "up".to_string()
        } else if t["port_open"] == true {
            "port open, terminal not answering yet".to_string()
        } else {
            format!(
                "DOWN: {}",
                t["last_error"].as_str().unwrap_or("not opened yet")
            )
        };
        let mut line = format!(
            "{:<12} {:<8} {}  {state}",
            text_of(&t["name"]),
            text_of(&t["kind"]),
            text_of(&t["port"])
        );
        if let Some(identity) = t["identity"].as_str() {
            line.push_str(&format!("  identity {identity}"));
        }
        if let Some(signal) = t["signal"].as_u64() {
            line.push_str(&format!("  signal {signal} of 4"));
        }
        if let Some(capacity) = t["capacity"].as_u64() {
            line.push_str(&format!("  {capacity} bytes a message"));
        }
        line.push_str(&format!("  {} queued", t["queued"]));
        say!("{line}");
    }
}

fn print_messages(body: &Value) {
    say!("sent from {}:", text_of(&body["terminal"]));
    for m in body["outbox"].as_array().into_iter().flatten() {
        let state = match m["reason"].as_str() {
            Some(reason) => format!("{} ({reason})", text_of(&m["state"])),
            None => text_of(&m["state"]).to_string(),
        };
        let urgent = if m["urgent"] == true { " URGENT" } else { "" };
        say!(
            "{:>5}  {}  to {}{urgent}  {state}: {}",
            m["id"],
            text_of(&m["accepted_at"]),
            text_of(&m["to"]),
            body_of(m)
        );
    }
    say!("received:");
    for m in body["inbox"].as_array().into_iter().flatten() {
        say!(
            "{:>5}  {}  from {}: {}",
            m["id"],
            text_of(&m["received_at"]),
            text_of(&m["from"]),
            body_of(m)
        );
    }
}
