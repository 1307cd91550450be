//! What the dialogue tests share: reading a timed dialogue written from public facts
//! (tests/fixtures/serial), one line each: direction (`> ` host, `< ` terminal),
//! `+seconds` since the previous line, then the line itself.

use std::time::Duration;

/// One line of a timed dialogue.
#[derive(Debug, Clone, Copy)]
pub struct Line {
    pub host: bool,
    /// Since the previous line.
    pub after: Duration,
    pub text: &'static str,
}

/// A dialogue's lines in order, comments left out; panics on a line that is not
/// direction, `+seconds`, text.
pub fn dialogue(text: &'static str) -> Vec<Line> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let host = match l.get(..2) {
                Some("> ") => true,
                Some("< ") => false,
                _ => panic!("no direction: {l:?}"),
            };
            let (time, text) = l[2..].split_once(' ').expect("a time and a line");
            let seconds: f64 = time
                .strip_prefix('+')
                .and_then(|t| t.parse().ok())
                .expect("+seconds");
            Line {
                host,
                // To the millisecond, as the dialogue writes it.
                after: Duration::from_millis((seconds * 1000.0).round() as u64),
                text,
            }
        })
        .collect()
}
