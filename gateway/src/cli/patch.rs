//! `emcomm patch create|list|remove` and `emcomm reload`: patching from a shell.

use serde_json::{Value, json};

use super::Outcome;
use super::alert::finish;
use super::client::Connection;

#[derive(Debug, clap::Subcommand)]
pub enum PatchCommand {
    /// Make a live patch, or change the live patch of that name.
    Create {
        /// Letters, digits, '-' and '_'.
        name: String,
        /// A member (a radio port by its name); at least two.
        #[arg(long = "member", required = true)]
        members: Vec<String>,
        /// The number keyed by DTMF to join or leave (the lowest free one by default).
        #[arg(long)]
        number: Option<u16>,
        /// Make it a simulselect: this member transmits on all the others, who answer
        /// it alone.
        #[arg(long)]
        console: Option<String>,
        #[command(flatten)]
        connection: Connection,
        #[arg(long)]
        json: bool,
    },
    /// The patches, who is talking on each, and the radio ports.
    List {
        #[command(flatten)]
        connection: Connection,
        #[arg(long)]
        json: bool,
    },
    /// Remove a live patch (permanent ones change in the configuration).
    Remove {
        name: String,
        #[command(flatten)]
        connection: Connection,
        #[arg(long)]
        json: bool,
    },
}

/// Runs a patch command.
pub fn run(command: PatchCommand) -> Outcome {
    match command {
        PatchCommand::Create {
            name,
            members,
            number,
            console,
            connection,
            json,
        } => {
            let form = json!({
                "name": name,
                "members": members,
                "number": number,
                "console": console,
            });
            finish(
                connection.post(
                    "/v1/patches",
                    "application/json",
                    form.to_string().as_bytes(),
                ),
                json,
                |p| say!("{}", patch_line(p)),
            )
        }
        PatchCommand::List { connection, json } => {
            finish(connection.get("/v1/patches"), json, print_list)
        }
        PatchCommand::Remove {
            name,
            connection,
            json,
        } => finish(
            connection.delete(&format!("/v1/patches/{name}")),
            json,
            |p| say!("removed {}", patch_line(p)),
        ),
    }
}

/// `emcomm reload`: the node re-reads its configuration.
pub fn reload(connection: Connection, json: bool) -> Outcome {
    finish(
        connection.post("/v1/reload", "application/json", b""),
        json,
        |answer| say!("reloaded: {}", answer["summary"].as_str().unwrap_or("")),
    )
}

fn patch_line(p: &Value) -> String {
    let members: Vec<&str> = p["members"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let mut line = format!(
        "{:>3}  {:<16} {}",
        p["number"],
        p["name"].as_str().unwrap_or("?"),
        members.join(" + ")
    );
    if let Some(console) = p["console"].as_str() {
        line.push_str(&format!("  (simulselect from {console})"));
    }
    if p["permanent"] == true {
        line.push_str("  [permanent]");
    }
    if let Some(talking) = p["talking"].as_str() {
        line.push_str(&format!("  talking: {talking}"));
    }
    line
}

fn print_list(body: &Value) {
    let patches = body["patches"].as_array().cloned().unwrap_or_default();
    if patches.is_empty() {
        say!("no patches");
    }
    for p in &patches {
        say!("{}", patch_line(p));
    }
    say!("");
    for port in body["ports"].as_array().into_iter().flatten() {
        let name = port["name"].as_str().unwrap_or("?");
        let state = match (port["up"] == true, port["fault"].as_str()) {
            (true, _) if port["locked_out"] == true => "up, locked out (stuck carrier)".to_string(),
            (true, _) if port["receiving"] == true => "up, receiving".to_string(),
            (true, _) => "up".to_string(),
            (false, fault) => format!("DOWN: {}", fault.unwrap_or("unknown")),
        };
        say!("port {name:<16} {state}");
    }
}
