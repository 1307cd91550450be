//! `emcomm alert check FILE...`: a CAP file against the standard alone, offline.
//!
//! No node is consulted, so a file can be checked anywhere before it is sent. A
//! valid file may still be refused by a node for its own reasons (expired, no
//! target here); `emcomm alert send --dry-run` asks the node.

use std::path::Path;

use serde::Serialize;

use super::Outcome;
use crate::alert::cap::{self, CapAlert, Fault};

#[derive(Serialize)]
struct Report<'a> {
    file: &'a Path,
    valid: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    identifier: Option<&'a str>,
    faults: Vec<Fault>,
}

/// Checks every file, prints a report for each; [`Outcome::Refused`] if any is
/// invalid, [`Outcome::Failed`] if any cannot be read.
pub fn run(files: &[impl AsRef<Path>], json: bool) -> Outcome {
    let mut outcome = Outcome::Done;
    let mut reports = Vec::new();
    for file in files {
        let file = file.as_ref();
        let bytes = match std::fs::read(file) {
            Ok(bytes) => bytes,
            Err(e) => {
                eprintln!("{}: cannot read: {e}", file.display());
                outcome = Outcome::Failed;
                continue;
            }
        };
        let parsed = cap::parse(&bytes);
        let report = report(file, &parsed);
        if !report.valid && outcome == Outcome::Done {
            outcome = Outcome::Refused;
        }
        if json {
            reports.push(serde_json::to_value(&report).unwrap_or_default());
        } else {
            print_human(&report, parsed.as_ref().ok());
        }
    }
    if json {
        let document = if reports.len() == 1 {
            reports.pop().unwrap_or_default()
        } else {
            serde_json::Value::Array(reports)
        };
        say!("{document:#}");
    }
    outcome
}

fn report<'a>(file: &'a Path, parsed: &'a Result<CapAlert, cap::CapError>) -> Report<'a> {
    match parsed {
        Ok(alert) => Report {
            file,
            valid: true,
            version: Some(alert.version.to_string()),
            identifier: Some(&alert.identifier),
            faults: Vec::new(),
        },
        Err(e) => Report {
            file,
            valid: false,
            version: None,
            identifier: None,
            faults: e.faults(),
        },
    }
}

fn print_human(report: &Report, alert: Option<&CapAlert>) {
    let file = report.file.display();
    match alert {
        Some(alert) => {
            let languages: Vec<&str> = alert.infos.iter().map(|i| i.language.as_str()).collect();
            say!(
                "{file}: valid CAP {} {} {} {:?} from {} ({} info: {})",
                alert.version,
                alert.status,
                alert.msg_type,
                alert.identifier,
                alert.sender,
                alert.infos.len(),
                languages.join(", ")
            );
        }
        None => {
            let n = report.faults.len();
            say!(
                "{file}: invalid, {n} fault{}",
                if n == 1 { "" } else { "s" }
            );
            for fault in &report.faults {
                say!("  {fault}");
            }
        }
    }
}
