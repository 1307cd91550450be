//! An Iridium 9602/9603 short-burst-data modem on its AT interface, as a [`Bearer`]:
//! sans-IO.
//!
//! At start the driver sends `AT` until the modem answers `OK`, then `AT&K0` (no flow
//! control on a three-wire port). A message goes in three steps:
//!
//! 1. Into the MO buffer. Text of plain printable ASCII (0x20 to 0x7E, no space at either
//!    end, which a command line may lose) of at most [`MAX_SBDWT`] bytes goes on the
//!    command line, `AT+SBDWT=text`, answered `OK`; everything else goes as bytes:
//!    `AT+SBDWB=n`, the modem's `READY`, then the n bytes and their 2-byte big-endian
//!    sum; the modem answers `0` (taken), `1` (time-out), `2` (bad sum) or `3` (bad size).
//!    A write that fails (`ERROR`, or 1 or 2) is tried again after the backoff; a bad
//!    size fails the message;
//! 2. `AT+SBDIX`, a session with the satellite: `+SBDIX: MO status, MOMSN, MT status,
//!    MTMSN, MT length, MT queued`. MO status 0 to 4 is sent; the transient failures
//!    (no network 32, busy 35, RF drop 18, gateway timeout 17 and the like) are tried
//!    again with a doubling backoff (so are antenna fault 33 and radio disabled 34,
//!    which a technician can put right); the permanent ones (access denied 15, ISU
//!    locked 16, bad size 14, band violation 64) fail the message;
//! 3. once sent, `AT+SBDD0` clears the MO buffer, or a later mailbox check would send it
//!    again.
//!
//! A session that brings a mobile-terminated message (MT status 1) is followed by
//! `AT+SBDRB`, a binary read: a 2-byte big-endian length, the message, its 2-byte sum,
//! then `OK`. The message is handed on as text when it is UTF-8 without control
//! characters (other than tab and line ends), else as bytes; a read whose sum or length
//! is wrong is tried once more. One that says more are queued (or an `SBDRING`, which
//! may arrive in the middle of any other answer) is followed by a mailbox check:
//! `AT+SBDIX` with an empty MO buffer. `AT+CSQ` is asked every signal interval; its
//! 0–5 becomes the bearer's 0–4.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::at::AtLines;
use super::bearer::{Bearer, BearerEvent, Body, Outgoing, PriorityQueue, QueueError};

/// The largest mobile-originated message, bytes (9602/9603).
pub const MAX_MO: usize = 340;
/// The largest mobile-terminated message, bytes.
pub const MAX_MT: usize = 270;
/// The longest text `AT+SBDWT=` takes on its command line, bytes (9602/9603 manual).
pub const MAX_SBDWT: usize = 120;

/// Timing of the driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SbdTiming {
    /// How long a command waits for its answer.
    pub answer_timeout: Duration,
    /// A session takes longer: up to a minute on a poor sky view.
    pub session_timeout: Duration,
    /// The first wait after a transient session failure; it doubles up to `max_backoff`.
    pub first_backoff: Duration,
    pub max_backoff: Duration,
    /// How often the signal is asked for.
    pub signal_every: Duration,
}

impl Default for SbdTiming {
    fn default() -> Self {
        SbdTiming {
            answer_timeout: Duration::from_secs(5),
            session_timeout: Duration::from_secs(90),
            first_backoff: Duration::from_secs(10),
            max_backoff: Duration::from_secs(300),
            signal_every: Duration::from_secs(30),
        }
    }
}

/// What an MO status of `+SBDIX` means for the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MoOutcome {
    Sent,
    /// Worth another try later.
    Transient,
    /// Will not go however often it is tried.
    Permanent,
}

/// Classifies an MO status code (Iridium SBD developer's guide, `+SBDIX`).
pub fn mo_outcome(status: u32) -> MoOutcome {
    match status {
        0..=4 => MoOutcome::Sent,
        14 | 15 | 16 | 64 => MoOutcome::Permanent,
        _ => MoOutcome::Transient,
    }
}

/// `+SBDIX`'s six fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionResult {
    pub mo_status: u32,
    pub momsn: u32,
    pub mt_status: u32,
    pub mtmsn: u32,
    pub mt_length: u32,
    pub mt_queued: u32,
}

/// Parses `+SBDIX: a, b, c, d, e, f`.
pub fn parse_sbdix(line: &str) -> Option<SessionResult> {
    let fields: Vec<u32> = line
        .strip_prefix("+SBDIX:")?
        .split(',')
        .map(|f| f.trim().parse().ok())
        .collect::<Option<Vec<u32>>>()?;
    match fields[..] {
        [mo_status, momsn, mt_status, mtmsn, mt_length, mt_queued] => Some(SessionResult {
            mo_status,
            momsn,
            mt_status,
            mtmsn,
            mt_length,
            mt_queued,
        }),
        _ => None,
    }
}

/// Parses `+CSQ:n` (0 to 5).
pub fn parse_csq(line: &str) -> Option<u8> {
    let n: u8 = line.strip_prefix("+CSQ:")?.trim().parse().ok()?;
    (n <= 5).then_some(n)
}

/// The 2-byte big-endian sum `AT+SBDWB` takes after the bytes.
pub fn sbd_checksum(bytes: &[u8]) -> [u8; 2] {
    let sum = bytes
        .iter()
        .fold(0u16, |s, b| s.wrapping_add(u16::from(*b)));
    sum.to_be_bytes()
}

/// What the driver is waiting for.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    /// Nothing asked.
    Idle,
    /// `OK` to `AT`, `AT&K0`, then `AT+SBDD0`: a message left in the MO buffer from
    /// before a restart must not go out with a later mailbox check.
    Init {
        flow_control_off: bool,
    },
    InitClear,
    /// `OK` to `AT+SBDWT=text`.
    WriteText,
    /// `READY` to `AT+SBDWB`.
    WriteReady,
    /// The `0` to the bytes.
    WriteResult,
    /// `+SBDIX` and `OK`.
    Session {
        result: Option<SessionResult>,
    },
    /// `OK` to `AT+SBDD0`.
    Clear,
    /// The binary block of `AT+SBDRB` as it comes, then, once whole, `OK`.
    ReadBinary {
        block: Vec<u8>,
        message: Option<Vec<u8>>,
    },
    /// `+CSQ` and `OK`.
    Signal,
    /// The rest of a binary read that came back bad, up to its `OK`: then read again
    /// if `again`.
    AfterBadRead {
        again: bool,
    },
}

/// Faults seen, by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SbdCounters {
    pub transient_failures: u64,
    pub write_errors: u64,
    pub timeouts: u64,
    pub rings: u64,
    pub unexpected_lines: u64,
    /// Binary MT reads whose length or sum was wrong.
    pub bad_reads: u64,
}

/// The driver; see the [module](self) notes.
#[derive(Debug)]
pub struct Sbd {
    timing: SbdTiming,
    up: bool,
    step: Step,
    step_deadline: Option<Instant>,
    lines: AtLines,
    out: Vec<u8>,
    events: Vec<BearerEvent>,
    queue: PriorityQueue,
    /// The message in the MO buffer, not yet confirmed sent.
    current: Option<Outgoing>,
    next_session_at: Option<Instant>,
    backoff: Duration,
    mailbox_check: bool,
    next_signal_at: Option<Instant>,
    /// Commands waiting for the modem to be free, in order.
    waiting: VecDeque<&'static str>,
    /// Commands in a row that got no answer.
    silent: u32,
    /// The binary read under way repeats one that came back bad.
    reread: bool,
    /// Commands asked again after an error wait until then.
    waiting_after: Option<Instant>,

    counters: SbdCounters,
}

/// The pause before a command the modem refused is asked again.
const WAITING_PAUSE: Duration = Duration::from_secs(2);

/// Unanswered commands in a row after which the modem counts as down.
const MAX_SILENT: u32 = 2;

impl Sbd {
    pub fn new(timing: SbdTiming, now: Instant) -> Sbd {
        let mut driver = Sbd {
            timing,
            up: false,
            step: Step::Idle,
            step_deadline: None,
            lines: AtLines::new(512),
            out: Vec::new(),
            events: Vec::new(),
            queue: PriorityQueue::default(),
            current: None,
            next_session_at: None,
            backoff: timing.first_backoff,
            mailbox_check: false,
            next_signal_at: None,
            waiting: VecDeque::new(),
            silent: 0,
            reread: false,
            waiting_after: None,
            counters: SbdCounters::default(),
        };
        driver.command(
            "AT",
            Step::Init {
                flow_control_off: false,
            },
            now,
        );
        driver
    }

    pub fn counters(&self) -> SbdCounters {
        self.counters
    }

    fn command(&mut self, command: &str, step: Step, now: Instant) {
        self.lines.sent(command);
        self.out.extend_from_slice(command.as_bytes());
        self.out.push(b'\r');
        let limit = if matches!(step, Step::Session { .. }) {
            self.timing.session_timeout
        } else {
            self.timing.answer_timeout
        };
        self.step = step;
        self.step_deadline = Some(now + limit);
    }

    fn done(&mut self) {
        self.step = Step::Idle;
        self.step_deadline = None;
    }

    fn on_line(&mut self, line: &str, now: Instant) {
        self.silent = 0;
        if line == "SBDRING" {
            // May come in the middle of any answer: note it and carry on.
            self.counters.rings += 1;
            self.mailbox_check = true;
            return;
        }
        match std::mem::replace(&mut self.step, Step::Idle) {
            Step::Init {
                flow_control_off: true,
            } if line == "OK" => {
                self.command("AT+SBDD0", Step::InitClear, now);
            }
            Step::InitClear if line == "0" => self.step = Step::InitClear,
            Step::InitClear if line == "OK" => {
                self.done();
                if !self.up {
                    self.up = true;
                    self.events.push(BearerEvent::Up {
                        identity: "Iridium SBD".into(),
                    });
                }
                self.next_signal_at = Some(now);
            }
            Step::Init {
                flow_control_off: false,
            } if line == "OK" => {
                self.command(
                    "AT&K0",
                    Step::Init {
                        flow_control_off: true,
                    },
                    now,
                );
            }
            Step::WriteReady if line == "READY" => {
                if let Some(message) = &self.current {
                    let bytes = body_bytes(&message.body);
                    self.out.extend_from_slice(&bytes);
                    self.out.extend_from_slice(&sbd_checksum(&bytes));
                }
                self.step = Step::WriteResult;
            }
            Step::WriteReady | Step::WriteResult if line == "3" => {
                // Bad size: it will never be taken.
                if let Some(message) = self.current.take() {
                    self.events.push(BearerEvent::Failed {
                        id: message.id,
                        reason: "the modem refused its size".into(),
                    });
                }
                self.step = Step::WriteResult;
                self.next_session_at = Some(now);
            }
            Step::WriteResult if matches!(line, "0" | "1" | "2") => {
                if line != "0" {
                    // 1 time-out, 2 bad sum, 3 bad size: try the write again later.
                    self.counters.write_errors += 1;
                    self.retry_later(now);
                }
                self.step = Step::WriteResult;
            }
            Step::WriteText if line == "ERROR" => {
                self.counters.write_errors += 1;
                self.done();
                self.retry_later(now);
            }
            Step::WriteResult | Step::WriteText if line == "OK" => {
                if self.current.is_none() || self.next_session_at.is_some_and(|at| at > now) {
                    self.done();
                } else {
                    self.command("AT+SBDIX", Step::Session { result: None }, now);
                }
            }
            Step::Session { result: None } if line.starts_with("+SBDIX:") => {
                self.step = Step::Session {
                    result: parse_sbdix(line),
                };
            }
            Step::Session { result } if line == "OK" => {
                self.done();
                match result {
                    Some(result) => self.on_session(result, now),
                    // No readable `+SBDIX`: what became of the message is unknown, so
                    // the next try waits the backoff like a failed session.
                    None => {
                        self.counters.unexpected_lines += 1;
                        self.retry_later(now);
                    }
                }
            }
            // `AT+SBDD0` answers 0 (cleared), then OK.
            Step::Clear if line == "0" => self.step = Step::Clear,
            Step::Clear if line == "OK" => self.done(),
            Step::ReadBinary {
                message: Some(message),
                ..
            } if line == "OK" => {
                self.done();
                self.events.push(BearerEvent::Received {
                    from: "Iridium".into(),
                    body: mt_body(message),
                });
            }
            Step::Signal if line.starts_with("+CSQ:") => {
                if let Some(n) = parse_csq(line) {
                    self.events.push(BearerEvent::Signal {
                        level: (n * 4 + 2) / 5,
                    });
                }
                self.step = Step::Signal;
            }
            Step::Signal if line == "OK" => self.done(),
            Step::AfterBadRead { again } if line == "OK" || line == "ERROR" => {
                self.done();
                if again {
                    self.waiting.push_front("AT+SBDRB");
                }
            }
            // Whatever the bad block left: passed over.
            Step::AfterBadRead { again } => self.step = Step::AfterBadRead { again },
            step => {
                self.counters.unexpected_lines += 1;
                let starting = matches!(step, Step::Init { .. } | Step::InitClear);
                let clearing = step == Step::Clear;
                let reading = matches!(step, Step::ReadBinary { .. });
                let signal = step == Step::Signal;
                self.step = step;
                // During start-up the step's time-out sends AT again.
                if line == "ERROR" && !starting {
                    self.done();
                    if clearing || reading {
                        // Asked again after a pause, not in a loop as fast as the modem
                        // can refuse.
                        let command = if clearing { "AT+SBDD0" } else { "AT+SBDRB" };
                        self.waiting.push_front(command);
                        self.waiting_after = Some(now + WAITING_PAUSE);
                    } else if !signal {
                        self.retry_later(now);
                    }
                }
            }
        }
    }

    fn on_session(&mut self, result: SessionResult, now: Instant) {
        // A session with a message in the MO buffer; a mailbox check runs only with none.
        if self.current.is_some() {
            match mo_outcome(result.mo_status) {
                MoOutcome::Sent => {
                    if let Some(message) = self.current.take() {
                        self.events.push(BearerEvent::Sent { id: message.id });
                    }
                    self.backoff = self.timing.first_backoff;
                    self.waiting.push_back("AT+SBDD0");
                }
                MoOutcome::Transient => {
                    self.counters.transient_failures += 1;
                    self.retry_later(now);
                }
                MoOutcome::Permanent => {
                    if let Some(message) = self.current.take() {
                        self.events.push(BearerEvent::Failed {
                            id: message.id,
                            reason: format!("Iridium MO status {}", result.mo_status),
                        });
                    }
                    self.waiting.push_back("AT+SBDD0");
                }
            }
        }
        if result.mt_status == 1 {
            self.waiting.push_back("AT+SBDRB");
        }
        if result.mt_queued > 0 {
            self.mailbox_check = true;
        }
    }

    fn retry_later(&mut self, now: Instant) {
        self.next_session_at = Some(now + self.backoff);
        self.backoff = (self.backoff * 2).min(self.timing.max_backoff);
    }

    /// Starts the next thing to do, if the modem is free.
    fn next(&mut self, now: Instant) {
        if !self.up || self.step != Step::Idle {
            return;
        }
        if !self.waiting.is_empty() && self.waiting_after.is_some_and(|at| now < at) {
            return;
        }
        if let Some(command) = self.waiting.pop_front() {
            let step = match command {
                "AT+SBDRB" => Step::ReadBinary {
                    block: Vec::new(),
                    message: None,
                },
                _ => Step::Clear,
            };
            self.command(command, step, now);
            return;
        }
        let session_due = self.next_session_at.is_none_or(|at| now >= at);
        if self.current.is_none()
            && session_due
            && let Some(message) = self.queue.pop()
        {
            self.current = Some(message);
        }
        if let Some(message) = &self.current
            && session_due
        {
            let (command, step) = write_command(&message.body);
            self.command(&command, step, now);
            return;
        }
        if self.mailbox_check && session_due {
            self.mailbox_check = false;
            self.command("AT+SBDIX", Step::Session { result: None }, now);
            return;
        }
        if self.next_signal_at.is_some_and(|at| now >= at) {
            self.next_signal_at = Some(now + self.timing.signal_every);
            self.command("AT+CSQ", Step::Signal, now);
        }
    }
}

/// What a binary read's bytes so far came to.
enum Block {
    Incomplete,
    Whole(Vec<u8>),
    /// An `SBDRING` before the block began.
    Ring,
    /// A length over the MT limit, or a wrong sum.
    Bad,
}

/// Takes bytes of an `AT+SBDRB` answer into `block`; gives how many of `bytes` it took
/// and what the block came to. Before the block begins, the command's echo and line
/// ends are skipped (a length's first byte is 0 or 1, never CR, LF or a letter), and an
/// `SBDRING` is recognised.
fn take_block(block: &mut Vec<u8>, bytes: &[u8]) -> (usize, Block) {
    for (k, &b) in bytes.iter().enumerate() {
        block.push(b);
        if block[0] >= b'\n' {
            // Not the block yet: a line of text (the echo, a ring, an error) or its end.
            if matches!(b, b'\r' | b'\n') {
                let line = String::from_utf8_lossy(block).trim().to_string();
                block.clear();
                match line.as_str() {
                    "SBDRING" => return (k + 1, Block::Ring),
                    "ERROR" => return (k + 1, Block::Bad),
                    _ => {}
                }
            } else if block.len() > 64 {
                block.clear();
                return (k + 1, Block::Bad);
            }
            continue;
        }
        if block.len() < 2 {
            continue;
        }
        let length = usize::from(u16::from_be_bytes([block[0], block[1]]));
        if length > MAX_MT {
            block.clear();
            return (k + 1, Block::Bad);
        }
        if block.len() == 2 + length + 2 {
            let (message, sum) = block[2..].split_at(length);
            let read = if sum == sbd_checksum(message) {
                Block::Whole(message.to_vec())
            } else {
                Block::Bad
            };
            block.clear();
            return (k + 1, read);
        }
    }
    (bytes.len(), Block::Incomplete)
}

/// An MT message as text when it reads as text, else as bytes: lossless either way.
fn mt_body(message: Vec<u8>) -> Body {
    match String::from_utf8(message) {
        Ok(text)
            if !text
                .chars()
                .any(|c| c.is_control() && !matches!(c, '\t' | '\r' | '\n')) =>
        {
            Body::Text(text)
        }
        Ok(text) => Body::Bytes(text.into_bytes()),
        Err(e) => Body::Bytes(e.into_bytes()),
    }
}

/// The command that puts `body` into the MO buffer, and the step that waits for its
/// answer: text on the command line when the line carries it unchanged, else bytes.
fn write_command(body: &Body) -> (String, Step) {
    match body {
        Body::Text(text)
            if text.len() <= MAX_SBDWT
                && text.bytes().all(|b| (0x20..=0x7E).contains(&b))
                && !text.starts_with(' ')
                && !text.ends_with(' ') =>
        {
            (format!("AT+SBDWT={text}"), Step::WriteText)
        }
        _ => (
            format!("AT+SBDWB={}", body_bytes(body).len()),
            Step::WriteReady,
        ),
    }
}

fn body_bytes(body: &Body) -> Vec<u8> {
    match body {
        Body::Text(t) => t.as_bytes().to_vec(),
        Body::Bytes(b) => b.clone(),
    }
}

impl Bearer for Sbd {
    fn capacity(&self) -> Option<usize> {
        Some(MAX_MO)
    }

    fn time_for(&self, bytes: usize) -> Duration {
        // One session per message, about 20 s on a clear sky.
        Duration::from_secs(20) * bytes.div_ceil(MAX_MO).max(1) as u32
    }

    fn is_up(&self) -> bool {
        self.up
    }

    fn enqueue(&mut self, message: Outgoing, now: Instant) -> Result<(), QueueError> {
        let needed = body_bytes(&message.body).len();
        if needed == 0 {
            return Err(QueueError::Unsendable {
                id: message.id,
                reason: "an empty message".into(),
            });
        }
        if needed > MAX_MO {
            return Err(QueueError::TooLong {
                id: message.id,
                needed,
                capacity: MAX_MO,
            });
        }
        self.queue.push(message);
        self.next(now);
        Ok(())
    }

    fn queued(&self) -> Vec<Outgoing> {
        self.current
            .iter()
            .cloned()
            .chain(self.queue.iter().cloned())
            .collect()
    }

    fn on_bytes(&mut self, bytes: &[u8], now: Instant) {
        let mut rest = bytes;
        while !rest.is_empty() {
            if let Step::ReadBinary {
                block,
                message: None,
            } = &mut self.step
            {
                let (taken, read) = take_block(block, rest);
                rest = &rest[taken..];
                match read {
                    Block::Incomplete => {}
                    Block::Whole(message) => {
                        self.reread = false;
                        self.step = Step::ReadBinary {
                            block: Vec::new(),
                            message: Some(message),
                        };
                        self.lines.clear_partial();
                    }
                    Block::Ring => {
                        self.counters.rings += 1;
                        self.mailbox_check = true;
                    }
                    Block::Bad => {
                        // Read once more, once the modem has ended its answer.
                        self.counters.bad_reads += 1;
                        self.reread = !self.reread;
                        self.step = Step::AfterBadRead { again: self.reread };
                    }
                }
                continue;
            }
            let (&b, tail) = rest.split_first().expect("not empty");
            rest = tail;
            if let Some(line) = self.lines.push(b) {
                self.on_line(&line, now);
            }
        }
        self.next(now);
    }

    fn poll(&mut self, now: Instant) {
        if self.step_deadline.is_some_and(|at| now >= at) {
            self.counters.timeouts += 1;
            self.silent += 1;
            let was_init = matches!(self.step, Step::Init { .. } | Step::InitClear);
            let signal = self.step == Step::Signal;
            match self.step {
                Step::Clear => self.waiting.push_front("AT+SBDD0"),
                Step::ReadBinary { .. } | Step::AfterBadRead { again: true } => {
                    self.waiting.push_front("AT+SBDRB")
                }
                _ => {}
            }
            self.done();
            if was_init || !self.up || self.silent >= MAX_SILENT {
                if self.up {
                    self.up = false;
                    self.events.push(BearerEvent::Down {
                        reason: "the modem does not answer".into(),
                    });
                }
                self.command(
                    "AT",
                    Step::Init {
                        flow_control_off: false,
                    },
                    now,
                );
                return;
            }
            // A signal query that went unanswered delays no message.
            if !signal {
                self.retry_later(now);
            }
        }
        self.next(now);
    }

    fn next_deadline(&self) -> Option<Instant> {
        let work = self.step == Step::Idle && self.up;
        let session = (work
            && (self.current.is_some() || !self.queue.is_empty() || self.mailbox_check))
            .then_some(self.next_session_at)
            .flatten();
        let waiting = (work && !self.waiting.is_empty())
            .then_some(self.waiting_after)
            .flatten();
        [
            self.step_deadline,
            session,
            work.then_some(self.next_signal_at).flatten(),
            waiting,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.out)
    }

    fn drain_events(&mut self) -> Vec<BearerEvent> {
        std::mem::take(&mut self.events)
    }

    fn faults(&self) -> Vec<(&'static str, u64)> {
        let c = self.counters;
        vec![
            ("failed sessions", c.transient_failures),
            ("write errors", c.write_errors),
            ("unanswered commands", c.timeouts),
            ("unexpected lines", c.unexpected_lines),
            ("bad binary reads", c.bad_reads),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::satellite::bearer::Urgency;

    /// A modem in a test: answers each command the driver writes with `answer`.
    /// `AT+SBDRB`'s answer for `message`, before its `OK`.
    fn binary_block(message: &[u8]) -> Vec<u8> {
        let mut block = (message.len() as u16).to_be_bytes().to_vec();
        block.extend_from_slice(message);
        block.extend_from_slice(&sbd_checksum(message));
        block
    }

    fn exchange(sbd: &mut Sbd, now: Instant, answer: &str) -> String {
        let out = String::from_utf8_lossy(&sbd.take_output()).into_owned();
        sbd.on_bytes(answer.as_bytes(), now);
        out
    }

    fn up(now: Instant) -> Sbd {
        let mut sbd = Sbd::new(SbdTiming::default(), now);
        assert_eq!(exchange(&mut sbd, now, "\r\nOK\r\n"), "AT\r");
        assert_eq!(exchange(&mut sbd, now, "\r\nOK\r\n"), "AT&K0\r");
        assert_eq!(
            exchange(&mut sbd, now, "0\r\n\r\nOK\r\n"),
            "AT+SBDD0\r",
            "a left-over MO message is cleared"
        );
        assert_eq!(
            sbd.drain_events(),
            vec![BearerEvent::Up {
                identity: "Iridium SBD".into()
            }]
        );
        assert_eq!(exchange(&mut sbd, now, "+CSQ:4\r\nOK\r\n"), "AT+CSQ\r");
        assert_eq!(sbd.drain_events(), vec![BearerEvent::Signal { level: 3 }]);
        sbd
    }

    fn hello(id: u64) -> Outgoing {
        Outgoing {
            id,
            to: "gateway".into(),
            urgency: Urgency::Normal,
            body: Body::Bytes(b"hello".to_vec()),
        }
    }

    #[test]
    fn a_binary_write_carries_its_sum_and_a_confirmed_send_clears_the_mo_buffer() {
        let t0 = Instant::now();
        let mut sbd = up(t0);
        sbd.enqueue(hello(1), t0).expect("fits");
        sbd.poll(t0);
        assert_eq!(exchange(&mut sbd, t0, "READY\r\n"), "AT+SBDWB=5\r");
        let written = sbd.take_output();
        assert_eq!(written, [b'h', b'e', b'l', b'l', b'o', 0x02, 0x14]);
        sbd.on_bytes(b"0\r\nOK\r\n", t0);
        assert_eq!(
            exchange(&mut sbd, t0, "+SBDIX: 0, 0, 0, 0, 0, 0\r\nOK\r\n"),
            "AT+SBDIX\r"
        );
        assert_eq!(sbd.drain_events(), vec![BearerEvent::Sent { id: 1 }]);
        assert_eq!(exchange(&mut sbd, t0, "OK\r\n"), "AT+SBDD0\r");
        assert!(sbd.queued().is_empty());
    }

    fn text(id: u64, text: &str) -> Outgoing {
        Outgoing {
            body: Body::Text(text.into()),
            ..hello(id)
        }
    }

    #[test]
    fn printable_ascii_text_goes_on_the_command_line_with_sbdwt_and_is_sent() {
        let t0 = Instant::now();
        let mut sbd = up(t0);
        sbd.enqueue(text(1, "Hello World"), t0).expect("fits");
        assert_eq!(exchange(&mut sbd, t0, "OK\r\n"), "AT+SBDWT=Hello World\r");
        assert_eq!(
            exchange(&mut sbd, t0, "+SBDIX: 0, 0, 0, 0, 0, 0\r\nOK\r\n"),
            "AT+SBDIX\r"
        );
        assert_eq!(sbd.drain_events(), vec![BearerEvent::Sent { id: 1 }]);
        assert_eq!(exchange(&mut sbd, t0, "0\r\nOK\r\n"), "AT+SBDD0\r");
        assert!(sbd.queued().is_empty());
    }

    #[test]
    fn text_the_command_line_cannot_carry_goes_as_bytes_with_sbdwb() {
        let longest = "x".repeat(MAX_SBDWT);
        let too_long = "x".repeat(MAX_SBDWT + 1);
        let cases = [
            (longest.as_str(), format!("AT+SBDWT={longest}\r")),
            (too_long.as_str(), format!("AT+SBDWB={}\r", MAX_SBDWT + 1)),
            ("道路中断", "AT+SBDWB=12\r".to_string()),
            ("line\r\nbreak", "AT+SBDWB=11\r".to_string()),
            (" padded", "AT+SBDWB=7\r".to_string()),
            ("tab\there", "AT+SBDWB=8\r".to_string()),
        ];
        for (body, command) in cases {
            let t0 = Instant::now();
            let mut sbd = up(t0);
            sbd.enqueue(text(1, body), t0).expect("fits");
            assert_eq!(
                String::from_utf8_lossy(&sbd.take_output()),
                command,
                "{body:?}"
            );
        }
        // The bytes written are the text's UTF-8, with their sum.
        let t0 = Instant::now();
        let mut sbd = up(t0);
        sbd.enqueue(text(2, "道路中断"), t0).expect("fits");
        sbd.take_output();
        sbd.on_bytes(b"READY\r\n", t0);
        let written = sbd.take_output();
        let (bytes, sum) = written.split_at(written.len() - 2);
        assert_eq!(bytes, "道路中断".as_bytes());
        assert_eq!(sum, sbd_checksum("道路中断".as_bytes()));
    }

    #[test]
    fn a_text_write_answered_error_is_counted_and_tried_again_after_the_backoff() {
        let t0 = Instant::now();
        let mut sbd = up(t0);
        sbd.enqueue(text(1, "Hello World"), t0).expect("fits");
        assert_eq!(
            exchange(&mut sbd, t0, "ERROR\r\n"),
            "AT+SBDWT=Hello World\r"
        );
        assert_eq!(sbd.counters().write_errors, 1);
        assert_eq!(
            sbd.take_output(),
            b"",
            "no session for an unwritten message"
        );
        assert_eq!(sbd.next_deadline(), Some(t0 + Duration::from_secs(10)));
        sbd.poll(t0 + Duration::from_secs(10));
        assert_eq!(
            String::from_utf8_lossy(&sbd.take_output()),
            "AT+SBDWT=Hello World\r"
        );
        assert!(sbd.drain_events().is_empty(), "nothing failed");
    }

    #[test]
    fn a_binary_write_that_times_out_or_has_a_bad_sum_is_written_again_after_the_backoff() {
        for (result, t) in [("1", 0u64), ("2", 1)] {
            let t0 = Instant::now() + Duration::from_secs(t);
            let mut sbd = up(t0);
            sbd.enqueue(hello(1), t0).expect("fits");
            assert_eq!(exchange(&mut sbd, t0, "READY\r\n"), "AT+SBDWB=5\r");
            sbd.take_output();
            sbd.on_bytes(format!("{result}\r\n\r\nOK\r\n").as_bytes(), t0);
            assert_eq!(sbd.counters().write_errors, 1, "result {result}");
            assert_eq!(
                sbd.take_output(),
                b"",
                "result {result}: no session with a bad MO buffer"
            );
            assert!(sbd.drain_events().is_empty(), "result {result}");
            assert_eq!(sbd.queued().len(), 1);
            let later = t0 + Duration::from_secs(10);
            assert_eq!(sbd.next_deadline(), Some(later), "result {result}");
            sbd.poll(later);
            assert_eq!(
                String::from_utf8_lossy(&sbd.take_output()),
                "AT+SBDWB=5\r",
                "result {result}: written again"
            );
        }
    }

    #[test]
    fn no_network_is_tried_again_with_a_doubling_backoff_and_access_denied_fails() {
        let t0 = Instant::now();
        let mut sbd = up(t0);
        sbd.enqueue(hello(1), t0).expect("fits");
        sbd.poll(t0);
        exchange(&mut sbd, t0, "READY\r\n");
        sbd.take_output();
        sbd.on_bytes(b"0\r\nOK\r\n", t0);
        exchange(&mut sbd, t0, "+SBDIX: 32, 8, 2, 0, 0, 0\r\nOK\r\n");
        assert_eq!(sbd.counters().transient_failures, 1);
        assert_eq!(sbd.next_deadline(), Some(t0 + Duration::from_secs(10)));
        let t1 = t0 + Duration::from_secs(10);
        sbd.poll(t1);
        assert_eq!(
            exchange(&mut sbd, t1, "READY\r\n"),
            "AT+SBDWB=5\r",
            "written again"
        );
        sbd.take_output();
        sbd.on_bytes(b"0\r\nOK\r\n", t1);
        exchange(&mut sbd, t1, "+SBDIX: 35, 9, 2, 0, 0, 0\r\nOK\r\n");
        assert_eq!(
            sbd.next_deadline(),
            Some(t1 + Duration::from_secs(20)),
            "doubled"
        );
        let t2 = t1 + Duration::from_secs(20);
        sbd.poll(t2);
        exchange(&mut sbd, t2, "READY\r\n");
        sbd.take_output();
        sbd.on_bytes(b"0\r\nOK\r\n", t2);
        exchange(&mut sbd, t2, "+SBDIX: 15, 10, 2, 0, 0, 0\r\nOK\r\n");
        assert_eq!(
            sbd.drain_events(),
            vec![BearerEvent::Failed {
                id: 1,
                reason: "Iridium MO status 15".into()
            }]
        );
    }

    #[test]
    fn a_ring_in_the_middle_of_an_answer_brings_a_mailbox_check_and_the_mt_message() {
        let t0 = Instant::now();
        let mut sbd = up(t0);
        sbd.enqueue(hello(1), t0).expect("fits");
        sbd.poll(t0);
        exchange(&mut sbd, t0, "SBDRING\r\nREADY\r\n");
        sbd.take_output();
        sbd.on_bytes(b"0\r\nOK\r\n", t0);
        // The session sends ours and says one MT message of 6 bytes waits, 8 more queued.
        exchange(&mut sbd, t0, "+SBDIX: 0, 1, 1, 1, 6, 8\r\nOK\r\n");
        assert_eq!(exchange(&mut sbd, t0, "OK\r\n"), "AT+SBDD0\r");
        assert_eq!(String::from_utf8_lossy(&sbd.take_output()), "AT+SBDRB\r");
        // The echo, then the block in pieces: length, message, sum, OK.
        let block = binary_block(b"hello!");
        sbd.on_bytes(b"AT+SBDRB\r", t0);
        sbd.on_bytes(&block[..3], t0);
        sbd.on_bytes(&block[3..], t0);
        sbd.on_bytes(b"\r\nOK\r\n", t0);
        let events = sbd.drain_events();
        assert!(events.contains(&BearerEvent::Sent { id: 1 }));
        assert!(events.contains(&BearerEvent::Received {
            from: "Iridium".into(),
            body: Body::Text("hello!".into())
        }));
        assert_eq!(sbd.counters().rings, 1);
        // More are queued at the gateway: a mailbox check follows.
        sbd.poll(t0);
        assert_eq!(String::from_utf8_lossy(&sbd.take_output()), "AT+SBDIX\r");
    }

    #[test]
    fn an_error_at_start_up_is_tried_again_and_a_bad_size_fails_the_message() {
        let t0 = Instant::now();
        let mut sbd = Sbd::new(SbdTiming::default(), t0);
        assert_eq!(exchange(&mut sbd, t0, "ERROR\r\n"), "AT\r");
        let later = t0 + Duration::from_secs(5);
        assert_eq!(sbd.next_deadline(), Some(later), "not stuck");
        sbd.poll(later);
        assert_eq!(String::from_utf8_lossy(&sbd.take_output()), "AT\r");
        let mut sbd = up(t0);
        assert!(
            sbd.enqueue(
                Outgoing {
                    body: Body::Bytes(Vec::new()),
                    ..hello(3)
                },
                t0
            )
            .is_err()
        );
        sbd.enqueue(hello(4), t0).expect("fits");
        assert_eq!(exchange(&mut sbd, t0, "3\r\n\r\nOK\r\n"), "AT+SBDWB=5\r");
        assert_eq!(
            sbd.drain_events(),
            vec![BearerEvent::Failed {
                id: 4,
                reason: "the modem refused its size".into()
            }]
        );
        assert!(sbd.queued().is_empty());
    }

    #[test]
    fn limits_and_parsers_follow_the_manual() {
        let t0 = Instant::now();
        let mut sbd = Sbd::new(SbdTiming::default(), t0);
        let long = Outgoing {
            body: Body::Bytes(vec![0; MAX_MO + 1]),
            ..hello(2)
        };
        assert!(matches!(
            sbd.enqueue(long, t0),
            Err(QueueError::TooLong { needed: 341, .. })
        ));
        assert_eq!(
            parse_sbdix("+SBDIX: 0, 1, 1, 1, 6, 8").map(|r| r.mt_queued),
            Some(8)
        );
        assert_eq!(parse_sbdix("+SBDIX: 0, 1"), None);
        assert_eq!(parse_csq("+CSQ:4"), Some(4));
        assert_eq!(parse_csq("+CSQ:9"), None);
        assert_eq!(mo_outcome(2), MoOutcome::Sent);
        assert_eq!(mo_outcome(32), MoOutcome::Transient);
        assert_eq!(mo_outcome(16), MoOutcome::Permanent);
    }

    #[test]
    fn a_modem_that_stops_answering_is_down_and_woken_again() {
        let t0 = Instant::now();
        let mut sbd = up(t0);
        let s = Duration::from_secs;
        sbd.poll(t0 + s(30));
        assert_eq!(String::from_utf8_lossy(&sbd.take_output()), "AT+CSQ\r");
        sbd.poll(t0 + s(35));
        assert!(sbd.is_up(), "one silence is not yet down");
        sbd.poll(t0 + s(60));
        assert_eq!(String::from_utf8_lossy(&sbd.take_output()), "AT+CSQ\r");
        sbd.poll(t0 + s(65));
        assert!(!sbd.is_up());
        assert_eq!(
            sbd.drain_events(),
            vec![BearerEvent::Down {
                reason: "the modem does not answer".into()
            }]
        );
        assert_eq!(
            String::from_utf8_lossy(&sbd.take_output()),
            "AT\r",
            "woken again"
        );
        sbd.on_bytes(b"OK\r\n", t0 + s(66));
        sbd.on_bytes(b"OK\r\n", t0 + s(66));
        sbd.on_bytes(b"0\r\nOK\r\n", t0 + s(66));
        assert!(sbd.is_up());
    }

    #[test]
    fn a_binary_mt_message_keeps_its_line_ends_and_a_bad_sum_is_read_once_more() {
        let t0 = Instant::now();
        let mut sbd = up(t0);
        sbd.take_output();
        sbd.on_bytes(b"SBDRING\r\n", t0);
        sbd.poll(t0);
        assert_eq!(String::from_utf8_lossy(&sbd.take_output()), "AT+SBDIX\r");
        sbd.on_bytes(b"+SBDIX: 0, 0, 1, 1, 6, 0\r\nOK\r\n", t0);
        assert_eq!(String::from_utf8_lossy(&sbd.take_output()), "AT+SBDRB\r");
        let frame = [0x01, 0x0D, 0x0A, 0xFF, 0x00, 0x2A];
        let mut bad = binary_block(&frame);
        let last = bad.len() - 1;
        bad[last] ^= 1;
        sbd.on_bytes(&bad, t0);
        sbd.on_bytes(b"\r\nOK\r\n", t0);
        assert_eq!(sbd.counters().bad_reads, 1);
        assert_eq!(String::from_utf8_lossy(&sbd.take_output()), "AT+SBDRB\r");
        sbd.on_bytes(&binary_block(&frame), t0);
        sbd.on_bytes(b"\r\nOK\r\n", t0);
        assert_eq!(
            sbd.drain_events(),
            vec![BearerEvent::Received {
                from: "Iridium".into(),
                body: Body::Bytes(frame.to_vec())
            }]
        );
    }
}
