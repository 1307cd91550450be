//! The operator's command line, apart from running the daemon.
//!
//! Every command prints for a human by default and, with `--json`, one JSON document
//! for scripts on stdout. Exit codes are part of the contract, the same for every
//! command: see [`Outcome`].

/// Prints a line on stdout; a closed pipe (`emcomm alert list | head -1`) is not an
/// error worth a panic.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

pub mod alert;
pub mod broadcast;
pub mod check;
pub mod client;
pub mod keys;
pub mod patch;
pub mod report;
pub mod terminal;

use std::process::ExitCode;

/// How a command ended, as a script reads it from the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// 0: done (a check found the input valid; a request was accepted).
    Done,
    /// 1: the input was refused (a check found faults; the node refused the request).
    Refused,
    /// 2: nothing could be decided (unreadable file, node unreachable, bad usage).
    Failed,
}

impl From<Outcome> for ExitCode {
    fn from(outcome: Outcome) -> ExitCode {
        match outcome {
            Outcome::Done => ExitCode::SUCCESS,
            Outcome::Refused => ExitCode::from(1),
            Outcome::Failed => ExitCode::from(2),
        }
    }
}
