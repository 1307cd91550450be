//! `emcomm report send|list`: field reports (灾情报送) from a shell.

use serde_json::{Value, json};

use super::Outcome;
use super::alert::finish;
use super::client::Connection;

#[derive(Debug, clap::Subcommand)]
pub enum ReportCommand {
    /// Send a short report up the cascade, over whatever bearer is up.
    Send {
        /// What happened, where (up to 200 characters).
        text: String,
        #[command(flatten)]
        connection: Connection,
        #[arg(long)]
        json: bool,
    },
    /// The reports that reached this node, newest first.
    List {
        #[command(flatten)]
        connection: Connection,
        #[arg(long)]
        json: bool,
    },
}

pub fn run(command: ReportCommand) -> Outcome {
    match command {
        ReportCommand::Send {
            text,
            connection,
            json,
        } => {
            let form = json!({ "text": text });
            finish(
                connection.post(
                    "/v1/reports",
                    "application/json",
                    form.to_string().as_bytes(),
                ),
                json,
                |a| say!("report {} on its way up", a["sequence"]),
            )
        }
        ReportCommand::List { connection, json } => {
            finish(connection.get("/v1/reports"), json, print_list)
        }
    }
}

fn print_list(list: &Value) {
    let reports = list["reports"].as_array().cloned().unwrap_or_default();
    if reports.is_empty() {
        say!("no field reports");
    }
    for r in reports {
        let text = |k: &str| r[k].as_str().unwrap_or("?").to_string();
        say!(
            "{}  from {} over {} ({}): {}",
            text("received"),
            text("origin"),
            text("bearer"),
            text("link"),
            text("text")
        );
    }
}
