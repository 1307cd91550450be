//! What every satellite terminal offers the relay: a bearer.
//!
//! A bearer carries short messages to other terminals. It says how much one message
//! holds, how long a message of a given size takes to go (the service interval of a
//! BeiDou card, a session of an Iridium modem), whether it is up, and what became of
//! each message. Messages wait in a priority queue: urgent ones (alerts) go before
//! normal ones (field reports), each class in the order it came.
//!
//! Bearers are sans-IO, like the rest of `drivers`: the caller feeds the bytes the
//! terminal sent with `now`, writes out what the bearer asks, and polls at its deadline.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// How soon a message must go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Urgency {
    /// Alerts: ahead of everything normal.
    Urgent,
    Normal,
}

/// One message for a bearer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    /// The caller's identifier, reported back in [`BearerEvent`]s.
    pub id: u64,
    /// The terminal it is for (a BeiDou card ID, an Iridium IMEI, a phone number).
    pub to: String,
    pub urgency: Urgency,
    pub body: Body,
}

/// What a message carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// Text, sent in the terminal's text form (GB2312 Chinese on BeiDou).
    Text(String),
    /// Bytes, sent in the terminal's binary form.
    Bytes(Vec<u8>),
}

impl Body {
    pub fn len(&self) -> usize {
        match self {
            Body::Text(t) => t.len(),
            Body::Bytes(b) => b.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What became of messages, and what the terminal heard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BearerEvent {
    /// The terminal is ready: it answered and said what it is.
    Up { identity: String },
    /// It stopped answering, or said it cannot send.
    Down { reason: String },
    /// Message `id` left the terminal.
    Sent { id: u64 },
    /// Message `id` reached its recipient, as the network reported after it was sent
    /// (an SMS status report); only bearers asked to get such reports say it.
    Delivered { id: u64 },
    /// Message `id` will not go: too long for the terminal, or refused for good.
    Failed { id: u64, reason: String },
    /// A message from another terminal.
    Received { from: String, body: Body },
    /// Link quality, 0 (none) to 4 (strong).
    Signal { level: u8 },
    /// The time the terminal's satellites give (UTC), as it stood at `at`.
    Time {
        utc: chrono::DateTime<chrono::Utc>,
        at: Instant,
    },
}

/// A message that a bearer cannot take.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueueError {
    #[error("message {id} needs {needed} bytes; a message here holds {capacity}")]
    TooLong {
        id: u64,
        needed: usize,
        capacity: usize,
    },
    #[error("message {id}: {reason}")]
    Unsendable { id: u64, reason: String },
}

/// Messages waiting, urgent first, each class in order.
#[derive(Debug, Default)]
pub struct PriorityQueue {
    urgent: VecDeque<Outgoing>,
    normal: VecDeque<Outgoing>,
}

impl PriorityQueue {
    pub fn push(&mut self, message: Outgoing) {
        match message.urgency {
            Urgency::Urgent => self.urgent.push_back(message),
            Urgency::Normal => self.normal.push_back(message),
        }
    }

    /// The message that goes next.
    pub fn front(&self) -> Option<&Outgoing> {
        self.urgent.front().or(self.normal.front())
    }

    pub fn pop(&mut self) -> Option<Outgoing> {
        self.urgent.pop_front().or_else(|| self.normal.pop_front())
    }

    pub fn len(&self) -> usize {
        self.urgent.len() + self.normal.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every waiting message, in the order they would go.
    pub fn iter(&self) -> impl Iterator<Item = &Outgoing> {
        self.urgent.iter().chain(self.normal.iter())
    }
}

/// Splits `text` into the fewest parts for which `fits` holds, each led by `k/n ` when
/// there is more than one, so a reader on a handheld terminal puts them in order.
///
/// Parts break between characters, and between words where a part would otherwise
/// end inside a run of letters or digits that has a space before it. `None` when even
/// one character and its lead do not fit.
pub fn split_text(text: &str, fits: impl Fn(&str) -> bool) -> Option<Vec<String>> {
    if fits(text) {
        return Some(vec![text.to_owned()]);
    }
    let chars: Vec<char> = text.chars().collect();
    // Guess the count, pack greedily with leads of that width, and guess again until
    // the packing needs no more parts than the guess.
    let mut guess = 2;
    loop {
        let parts = pack(&chars, guess, &fits)?;
        if parts.len() <= guess {
            let total = parts.len();
            return Some(
                parts
                    .iter()
                    .enumerate()
                    .map(|(k, body)| format!("{}/{total} {body}", k + 1))
                    .collect(),
            );
        }
        guess = parts.len();
    }
}

/// Bodies of parts whose leads count to `of`; `None` when a character cannot fit.
fn pack(chars: &[char], of: usize, fits: &impl Fn(&str) -> bool) -> Option<Vec<String>> {
    let mut parts = Vec::new();
    let mut start = 0;
    while start < chars.len() {
        // A space where parts meet is the break itself.
        if !parts.is_empty() && chars[start] == ' ' {
            start += 1;
            continue;
        }
        let lead = format!("{}/{of} ", parts.len() + 1);
        let mut end = start;
        while end < chars.len() {
            let body: String = chars[start..=end].iter().collect();
            if !fits(&format!("{lead}{body}")) {
                break;
            }
            end += 1;
        }
        if end == start {
            return None;
        }
        if end < chars.len() && chars[end - 1].is_alphanumeric() && chars[end].is_alphanumeric() {
            if let Some(space) = chars[start..end].iter().rposition(|c| *c == ' ') {
                if space > 0 {
                    end = start + space + 1;
                }
            }
        }
        parts.push(
            chars[start..end]
                .iter()
                .collect::<String>()
                .trim_end()
                .to_owned(),
        );
        start = end;
    }
    Some(parts)
}

/// The common interface of satellite terminals; see the [module](self) notes.
pub trait Bearer {
    /// Bytes one message holds, once the terminal has said (a BeiDou card's comm level).
    fn capacity(&self) -> Option<usize>;
    /// How long a message of `bytes` takes from the front of the queue to leaving.
    fn time_for(&self, bytes: usize) -> Duration;
    fn is_up(&self) -> bool;
    /// Queues a message; one that can never fit is refused at once.
    fn enqueue(&mut self, message: Outgoing, now: Instant) -> Result<(), QueueError>;
    /// Messages still waiting, in the order they would go.
    fn queued(&self) -> Vec<Outgoing>;
    /// Bytes the terminal sent.
    fn on_bytes(&mut self, bytes: &[u8], now: Instant);
    fn poll(&mut self, now: Instant);
    fn next_deadline(&self) -> Option<Instant>;
    /// Bytes to write to the terminal, in order.
    fn take_output(&mut self) -> Vec<u8>;
    fn drain_events(&mut self) -> Vec<BearerEvent>;
    /// Faults seen since the start, by kind (bad checksums, refusals, time-outs, …),
    /// for an operator's log: each count only grows.
    fn faults(&self) -> Vec<(&'static str, u64)> {
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(id: u64, urgency: Urgency) -> Outgoing {
        Outgoing {
            id,
            to: "0247718".into(),
            urgency,
            body: Body::Text("report".into()),
        }
    }

    #[test]
    fn urgent_messages_jump_ahead_of_normal_ones_and_each_class_keeps_its_order() {
        let mut queue = PriorityQueue::default();
        queue.push(message(1, Urgency::Normal));
        queue.push(message(2, Urgency::Normal));
        queue.push(message(3, Urgency::Urgent));
        queue.push(message(4, Urgency::Urgent));
        let order: Vec<u64> = std::iter::from_fn(|| queue.pop()).map(|m| m.id).collect();
        assert_eq!(order, vec![3, 4, 1, 2]);
    }

    #[test]
    fn a_long_text_splits_into_numbered_parts_that_each_fit_and_keep_every_character() {
        let fits = |s: &str| s.chars().count() <= 12;
        assert_eq!(split_text("short", fits), Some(vec!["short".to_owned()]));
        let parts = split_text("red alert at Zhangcun village now", fits).expect("splits");
        assert!(parts.iter().all(|p| fits(p)), "{parts:?}");
        assert_eq!(
            parts,
            [
                "1/5 red",
                "2/5 alert at",
                "3/5 Zhangcun",
                "4/5 village",
                "5/5 now"
            ]
        );
        let n = parts.len();
        let joined: Vec<String> = parts
            .iter()
            .enumerate()
            .map(|(k, p)| {
                p.strip_prefix(&format!("{}/{n} ", k + 1))
                    .expect("lead")
                    .to_owned()
            })
            .collect();
        assert_eq!(joined.join(" "), "red alert at Zhangcun village now");
        let chinese = "暴雨红色预警请立即转移到安全地带".repeat(3);
        let parts = split_text(&chinese, fits).expect("splits");
        let bodies: String = parts
            .iter()
            .map(|p| p.split_once(' ').expect("lead").1)
            .collect();
        assert_eq!(bodies, chinese);
        assert_eq!(split_text("abcdef", |s: &str| s.len() <= 3), None);
    }
}
