//! A Tiantong-1 terminal or a cellular modem sending and receiving SMS over AT
//! (3GPP TS 27.005, PDU mode), as a [`Bearer`]: sans-IO.
//!
//! * Start: `AT`, `AT+CMGF=0` (PDU mode), `AT+CNMI=2,1,0,0,0` (announce stored messages
//!   with `+CMTI`), `AT+CMGL=4` (list every stored message: those that came while no
//!   driver ran are read and deleted like announced ones), then `AT+CREG?` until the
//!   modem is registered (status 1, home, or 5,
//!   roaming); registration is asked again every signal interval with `AT+CSQ`. A
//!   registration report that comes unasked (`+CREG: stat` or, on LTE, `+CEREG: stat`)
//!   is taken as it comes: the bearer goes down when the modem leaves the network and up
//!   when it is back.
//! * Send: each part of a message is `AT+CMGS=<octets>`, the modem's `> ` prompt, the
//!   PDU and Ctrl-Z, then `+CMGS: <reference>` and `OK`. A message is sent when its last
//!   part is. An `ERROR` or `+CMS ERROR` is tried again with a doubling backoff, from the
//!   part that failed; after five tries the message fails. `+CMS ERROR: 331` (no
//!   network service, TS 27.005 §3.2.5) is not the message's fault: the bearer goes
//!   down, the try is not counted, and the message waits for the modem to register.
//! * Receive: `+CMTI: "SM",<index>` (it may come between any two lines) queues
//!   `AT+CMGR=<index>`; the PDU is read, the stored copy deleted with `AT+CMGD=<index>`,
//!   and the parts of a long message are put back together before it is handed on.
//! * Delivery, when asked ([`SmsModem::with_status_reports`]): every part asks for a
//!   status report (TP-SRR), `AT+CNMI=2,1,0,1,0` has the modem pass reports on as
//!   `+CDS: <length>` and the PDU (TS 27.005 §3.4.1); one stored and announced with
//!   `+CDSI: <mem>,<index>` is read and deleted as a message is. A report is matched to
//!   its part by the message reference `+CMGS` gave; once every part's report says
//!   received (TP-ST 0), the message is [`BearerEvent::Delivered`]. A report of a
//!   permanent error is counted among the faults.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use super::pdu::{
    DeliveryStatus, PduError, SmsBody, read_deliver, read_status_report, submit, submit_with,
};
use crate::satellite::at::AtLines;
use crate::satellite::bearer::{Bearer, BearerEvent, Body, Outgoing, PriorityQueue, QueueError};

/// Tries of one message before it fails.
const MAX_TRIES: u32 = 5;

/// Timing of the driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SmsTiming {
    pub answer_timeout: Duration,
    /// `+CMGS` waits for the network: longer.
    pub send_timeout: Duration,
    pub first_backoff: Duration,
    pub max_backoff: Duration,
    pub signal_every: Duration,
}

impl Default for SmsTiming {
    fn default() -> Self {
        SmsTiming {
            answer_timeout: Duration::from_secs(5),
            send_timeout: Duration::from_secs(60),
            first_backoff: Duration::from_secs(5),
            max_backoff: Duration::from_secs(120),
            signal_every: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Idle,
    /// `OK` to the start-up command at this index of [`START`].
    Start(usize),
    Registration {
        registered: Option<bool>,
    },
    Prompt,
    Sending,
    Reading {
        index: u32,
        pdu: Option<String>,
        header: bool,
    },
    Deleting,
    /// `+CMGL` lines of the messages stored before the driver started, then `OK`.
    Listing,
    Signal,
}

const START: [&str; 3] = ["AT", "AT+CMGF=0", "AT+CNMI=2,1,0,0,0"];
/// The last start-up command when status reports are asked for: they are passed on
/// (`ds` 1) as `+CDS`.
const CNMI_WITH_REPORTS: &str = "AT+CNMI=2,1,0,1,0";
/// Messages whose delivery is still awaited at once; the oldest is forgotten first.
const MAX_AWAITED: usize = 64;

/// Faults seen, by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SmsCounters {
    pub send_errors: u64,
    pub timeouts: u64,
    pub bad_pdus: u64,
    pub unexpected_lines: u64,
    /// Stored messages given up unread (invalid index, or reads that kept failing).
    pub unread: u64,
    /// Parts of long messages dropped before their message completed.
    pub dropped_parts: u64,
    /// Status reports of a permanent error: the centre gave the part up.
    pub undelivered: u64,
}

/// Reads of one stored message before it is given up.
const MAX_READ_TRIES: u32 = 3;
/// Long messages whose parts are held at once; the oldest goes first.
const MAX_PARTIAL: usize = 16;

/// A `+CSQ` RSSI (0–31, 99 unknown) as a bearer signal, 0 to 4.
pub fn signal_level(rssi: u8) -> u8 {
    match rssi {
        0..=1 | 32.. => 0,
        2..=9 => 1,
        10..=14 => 2,
        15..=19 => 3,
        _ => 4,
    }
}

/// A message on its way: it, its parts as (octets, PDU hex), the next part, its tries.
type Sending = (Outgoing, Vec<(usize, String)>, usize, u32);

/// The driver; see the [module](self) notes.
#[derive(Debug)]
pub struct SmsModem {
    timing: SmsTiming,
    registered: bool,
    step: Step,
    step_deadline: Option<Instant>,
    lines: AtLines,
    out: Vec<u8>,
    events: Vec<BearerEvent>,
    queue: PriorityQueue,
    /// The message being sent: it, its parts as (octets, PDU), the next part, its tries.
    current: Option<Sending>,
    next_try_at: Option<Instant>,
    backoff: Duration,
    reference: u8,
    to_read: VecDeque<u32>,
    /// Failed reads of stored messages, by index.
    read_tries: BTreeMap<u32, u32>,
    /// Reads wait until then after a failed one.
    read_after: Option<Instant>,
    to_delete: VecDeque<u32>,
    /// Parts of long messages, by sender, reference and count of parts, by sequence;
    /// with the order they began in, so the oldest can be dropped.
    parts: BTreeMap<(String, u8, u8), BTreeMap<u8, Body>>,
    partial_order: VecDeque<(String, u8, u8)>,
    next_check_at: Option<Instant>,
    counters: SmsCounters,
    /// Whether each part asks for a status report.
    status_reports: bool,
    /// The next line is the PDU of a `+CDS` report.
    report_follows: bool,
    /// Message references `+CMGS` gave, to the message whose part they carried.
    references: BTreeMap<u8, u64>,
    /// Parts of each message sent whose delivery has not been reported yet.
    awaiting_delivery: BTreeMap<u64, usize>,
}

impl SmsModem {
    pub fn new(timing: SmsTiming, now: Instant) -> SmsModem {
        let mut modem = SmsModem {
            timing,
            registered: false,
            step: Step::Idle,
            step_deadline: None,
            lines: AtLines::new(1024),
            out: Vec::new(),
            events: Vec::new(),
            queue: PriorityQueue::default(),
            current: None,
            next_try_at: None,
            backoff: timing.first_backoff,
            // A fresh start must not reuse the references of the last one's parts.
            reference: rand::random(),
            to_read: VecDeque::new(),
            read_tries: BTreeMap::new(),
            read_after: None,
            to_delete: VecDeque::new(),
            parts: BTreeMap::new(),
            partial_order: VecDeque::new(),
            next_check_at: None,
            counters: SmsCounters::default(),
            status_reports: false,
            report_follows: false,
            references: BTreeMap::new(),
            awaiting_delivery: BTreeMap::new(),
        };
        modem.command(START[0], Step::Start(0), now);
        modem
    }

    /// The driver, asking for a status report on every part it sends from now on and
    /// saying [`BearerEvent::Delivered`] when all of a message's came back received.
    pub fn with_status_reports(mut self, on: bool) -> SmsModem {
        self.status_reports = on;
        self
    }

    /// Start-up command `k`.
    fn start_command(&self, k: usize) -> Option<&'static str> {
        match START.get(k) {
            Some(_) if k + 1 == START.len() && self.status_reports => Some(CNMI_WITH_REPORTS),
            other => other.copied(),
        }
    }

    pub fn counters(&self) -> SmsCounters {
        self.counters
    }

    fn command(&mut self, command: &str, step: Step, now: Instant) {
        self.lines.sent(command);
        self.out.extend_from_slice(command.as_bytes());
        self.out.push(b'\r');
        let limit = if step == Step::Sending {
            self.timing.send_timeout
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

    fn failed_try(&mut self, now: Instant) {
        self.counters.send_errors += 1;
        let Some((message, _, _, tries)) = &mut self.current else {
            return;
        };
        *tries += 1;
        if *tries >= MAX_TRIES {
            let id = message.id;
            self.current = None;
            self.awaiting_delivery.remove(&id);
            self.references.retain(|_, m| *m != id);
            self.events.push(BearerEvent::Failed {
                id,
                reason: format!("the modem refused it {MAX_TRIES} times"),
            });
            return;
        }
        self.next_try_at = Some(now + self.backoff);
        self.backoff = (self.backoff * 2).min(self.timing.max_backoff);
    }

    /// The modem registered or not: the bearer goes up or down with it.
    fn set_registered(&mut self, registered: bool) {
        if registered && !self.registered {
            self.events.push(BearerEvent::Up {
                identity: "SMS".into(),
            });
        } else if !registered && self.registered {
            self.events.push(BearerEvent::Down {
                reason: "not registered on the network".into(),
            });
        }
        self.registered = registered;
    }

    fn on_line(&mut self, line: &str, now: Instant) {
        if std::mem::take(&mut self.report_follows) {
            self.on_status_report(line);
            return;
        }
        // `+CDS: <length>`, the report's PDU on the next line; `+CDSI: <mem>,<index>`, a
        // report stored (TS 27.005 §3.4.1). Either may come between any two lines.
        if line.starts_with("+CDS:") {
            self.report_follows = true;
            return;
        }
        if let Some(index) = line
            .strip_prefix("+CDSI:")
            .and_then(|rest| rest.rsplit(',').next())
            .and_then(|i| i.trim().parse::<u32>().ok())
        {
            self.want_read(index);
            return;
        }
        // An unsolicited registration report, `+CREG: stat[,lac,ci]` or `+CEREG: stat…`
        // (TS 27.007 §7.2, §10.1.22), outside the answer to `AT+CREG?`.
        if !matches!(self.step, Step::Registration { .. })
            && let Some(report) = line
                .strip_prefix("+CREG:")
                .or_else(|| line.strip_prefix("+CEREG:"))
        {
            let status = report.split(',').next().map(str::trim);
            self.set_registered(matches!(status, Some("1" | "5")));
            return;
        }
        if let Some(index) = line
            .strip_prefix("+CMTI:")
            .and_then(|rest| rest.rsplit(',').next())
            .and_then(|i| i.trim().parse::<u32>().ok())
        {
            self.want_read(index);
            return;
        }
        let error =
            line == "ERROR" || line.starts_with("+CMS ERROR") || line.starts_with("+CME ERROR");
        match std::mem::replace(&mut self.step, Step::Idle) {
            Step::Start(k) if line == "OK" => match self.start_command(k + 1) {
                Some(next) => self.command(next, Step::Start(k + 1), now),
                None => self.command("AT+CMGL=4", Step::Listing, now),
            },
            // Each stored message is read and deleted as an announced one is; the PDUs in
            // the listing itself are passed over.
            Step::Listing if line.starts_with("+CMGL:") => {
                if let Some(index) = line
                    .trim_start_matches("+CMGL:")
                    .split(',')
                    .next()
                    .and_then(|i| i.trim().parse::<u32>().ok())
                {
                    self.want_read(index);
                }
                self.step = Step::Listing;
            }
            Step::Listing if line == "OK" || error => {
                self.command("AT+CREG?", Step::Registration { registered: None }, now);
            }
            Step::Listing => self.step = Step::Listing,
            Step::Registration { .. }
                if line.starts_with("+CREG:") || line.starts_with("+CEREG:") =>
            {
                // `+CREG: n,stat[,lac,ci[,act]]` to the query: stat is the second field
                // (an unsolicited `+CREG: stat[,lac,ci]` has it first).
                let report = line.split_once(':').map_or("", |(_, r)| r);
                let fields: Vec<&str> = report.split(',').map(str::trim).collect();
                let status = match fields.get(1) {
                    Some(f) if f.parse::<u8>().is_ok() => Some(*f),
                    _ => fields.first().copied(),
                };
                self.step = Step::Registration {
                    registered: Some(matches!(status, Some("1" | "5"))),
                };
            }
            Step::Registration { registered } if line == "OK" => {
                self.done();
                self.set_registered(registered.unwrap_or(false));
                self.next_check_at = Some(now + self.timing.signal_every);
            }
            Step::Sending if line.starts_with("+CMGS:") => {
                let reference = line
                    .trim_start_matches("+CMGS:")
                    .split(',')
                    .next()
                    .and_then(|r| r.trim().parse::<u8>().ok());
                if let (true, Some(reference), Some((message, ..))) =
                    (self.status_reports, reference, &self.current)
                {
                    self.references.insert(reference, message.id);
                }
                self.step = Step::Sending;
            }
            Step::Sending if line == "OK" => {
                self.done();
                self.backoff = self.timing.first_backoff;
                if let Some((message, parts, next, _)) = &mut self.current {
                    *next += 1;
                    if *next == parts.len() {
                        let id = message.id;
                        self.current = None;
                        self.events.push(BearerEvent::Sent { id });
                    }
                }
            }
            Step::Prompt | Step::Sending
                if line
                    .strip_prefix("+CMS ERROR:")
                    .is_some_and(|code| code.trim() == "331") =>
            {
                // No network service: the message waits for registration, its tries kept.
                self.done();
                self.counters.send_errors += 1;
                self.set_registered(false);
                self.next_check_at = Some(now + self.timing.first_backoff);
            }
            Step::Prompt | Step::Sending if error => {
                self.done();
                self.failed_try(now);
            }
            Step::Reading {
                index,
                pdu: None,
                header: false,
            } if line.starts_with("+CMGR:") => {
                self.step = Step::Reading {
                    index,
                    pdu: None,
                    header: true,
                };
            }
            Step::Reading {
                index,
                pdu: None,
                header: true,
            } if line != "OK" => {
                self.step = Step::Reading {
                    index,
                    pdu: Some(line.to_owned()),
                    header: true,
                };
            }
            Step::Reading { index, pdu, .. } if line == "OK" => {
                self.done();
                if let Some(pdu) = pdu {
                    self.on_pdu(&pdu);
                }
                self.to_delete.push_back(index);
            }
            Step::Reading { index, .. } if error => {
                self.done();
                self.read_failed(index, line, now);
            }
            Step::Deleting if line == "OK" || error => self.done(),
            Step::Signal if line.starts_with("+CSQ:") => {
                let rssi = line
                    .trim_start_matches("+CSQ:")
                    .split(',')
                    .next()
                    .and_then(|r| r.trim().parse::<u8>().ok());
                if let Some(rssi) = rssi {
                    self.events.push(BearerEvent::Signal {
                        level: signal_level(rssi),
                    });
                }
                self.step = Step::Signal;
            }
            Step::Signal if line == "OK" || error => {
                self.done();
                // Registration is asked after the signal, each interval.
                self.command("AT+CREG?", Step::Registration { registered: None }, now);
            }
            step => {
                self.counters.unexpected_lines += 1;
                self.step = step;
            }
        }
    }

    /// Queues stored message `index` for reading, once.
    fn want_read(&mut self, index: u32) {
        let reading = matches!(self.step, Step::Reading { index: i, .. } if i == index);
        if !reading && !self.to_read.contains(&index) {
            self.to_read.push_back(index);
        }
    }

    /// A read of `index` failed with `answer` (or no answer): it stays stored and is read
    /// again after a pause, never deleted unread; an index the modem says is invalid
    /// (`+CMS ERROR: 321`: gone, or taken by another program) and a read that failed
    /// [`MAX_READ_TRIES`] times are given up, counted.
    fn read_failed(&mut self, index: u32, answer: &str, now: Instant) {
        let tries = self.read_tries.entry(index).or_insert(0);
        *tries += 1;
        if answer.contains("321") || *tries >= MAX_READ_TRIES {
            self.read_tries.remove(&index);
            self.counters.unread += 1;
            return;
        }
        self.to_read.push_back(index);
        self.read_after = Some(now + self.timing.first_backoff);
    }

    /// A status report's PDU: the part it answers is delivered, still on its way, or
    /// given up.
    fn on_status_report(&mut self, pdu: &str) {
        let report = match read_status_report(pdu) {
            Ok(report) => report,
            Err(_) => {
                self.counters.bad_pdus += 1;
                return;
            }
        };
        if matches!(report.status, DeliveryStatus::StillTrying(_)) {
            return;
        }
        let Some(id) = self.references.remove(&report.reference) else {
            return;
        };
        if !report.status.is_delivered() {
            if matches!(report.status, DeliveryStatus::Failed(_)) {
                self.counters.undelivered += 1;
            }
            // The message cannot be confirmed whole any more.
            self.awaiting_delivery.remove(&id);
            return;
        }
        if let Some(left) = self.awaiting_delivery.get_mut(&id) {
            *left = left.saturating_sub(1);
            if *left == 0 {
                self.awaiting_delivery.remove(&id);
                self.events.push(BearerEvent::Delivered { id });
            }
        }
    }

    fn on_pdu(&mut self, pdu: &str) {
        let delivered = match read_deliver(pdu) {
            Ok(d) => d,
            // A status report stored and announced with +CDSI.
            Err(PduError::NotDeliver(2)) => {
                self.on_status_report(pdu);
                return;
            }
            Err(_) => {
                self.counters.bad_pdus += 1;
                return;
            }
        };
        let body = match &delivered.body {
            SmsBody::Text(t) => Body::Text(t.clone()),
            SmsBody::Bytes(b) => Body::Bytes(b.clone()),
        };
        let Some(part) = delivered.part else {
            self.events.push(BearerEvent::Received {
                from: delivered.from,
                body,
            });
            return;
        };
        if part.sequence == 0 || part.sequence > part.total {
            self.counters.bad_pdus += 1;
            return;
        }
        let key = (delivered.from.clone(), part.reference, part.total);
        if !self.parts.contains_key(&key) {
            if self.partial_order.len() >= MAX_PARTIAL
                && let Some(oldest) = self.partial_order.pop_front()
            {
                self.counters.dropped_parts +=
                    self.parts.remove(&oldest).map_or(0, |p| p.len() as u64);
            }
            self.partial_order.push_back(key.clone());
        }
        let pieces = self.parts.entry(key.clone()).or_default();
        pieces.insert(part.sequence, body);
        if pieces.len() == usize::from(part.total) {
            self.partial_order.retain(|k| *k != key);
            let pieces = self.parts.remove(&key).unwrap_or_default();
            let whole = if pieces.values().all(|p| matches!(p, Body::Text(_))) {
                Body::Text(
                    pieces
                        .values()
                        .filter_map(|p| match p {
                            Body::Text(t) => Some(t.as_str()),
                            Body::Bytes(_) => None,
                        })
                        .collect(),
                )
            } else {
                Body::Bytes(
                    pieces
                        .values()
                        .flat_map(|p| match p {
                            Body::Text(t) => t.as_bytes().to_vec(),
                            Body::Bytes(b) => b.clone(),
                        })
                        .collect(),
                )
            };
            self.events.push(BearerEvent::Received {
                from: delivered.from,
                body: whole,
            });
        }
    }

    fn next(&mut self, now: Instant) {
        if self.step != Step::Idle {
            return;
        }
        if let Some(index) = self.to_delete.pop_front() {
            self.command(&format!("AT+CMGD={index}"), Step::Deleting, now);
            return;
        }
        let read_due = self.read_after.is_none_or(|at| now >= at);
        if read_due && let Some(index) = self.to_read.pop_front() {
            self.command(
                &format!("AT+CMGR={index}"),
                Step::Reading {
                    index,
                    pdu: None,
                    header: false,
                },
                now,
            );
            return;
        }
        if !self.registered {
            if self.next_check_at.is_some_and(|at| now >= at) {
                self.command("AT+CREG?", Step::Registration { registered: None }, now);
            }
            return;
        }
        let due = self.next_try_at.is_none_or(|at| now >= at);
        if self.current.is_none()
            && due
            && let Some(message) = self.queue.pop()
        {
            let body = match &message.body {
                Body::Text(t) => SmsBody::Text(t.clone()),
                Body::Bytes(b) => SmsBody::Bytes(b.clone()),
            };
            self.reference = self.reference.wrapping_add(1);
            match submit_with(&message.to, &body, self.reference, self.status_reports) {
                Ok(parts) => {
                    if self.status_reports {
                        if self.awaiting_delivery.len() >= MAX_AWAITED
                            && let Some(oldest) = self.awaiting_delivery.keys().next().copied()
                        {
                            self.awaiting_delivery.remove(&oldest);
                            self.references.retain(|_, id| *id != oldest);
                        }
                        self.awaiting_delivery.insert(message.id, parts.len());
                    }
                    self.current = Some((message, parts, 0, 0));
                }
                Err(e) => {
                    self.events.push(BearerEvent::Failed {
                        id: message.id,
                        reason: e.to_string(),
                    });
                    return;
                }
            }
        }
        if due && let Some((_, parts, next, _)) = &self.current {
            let octets = parts.get(*next).map_or(0, |p| p.0);
            self.command(&format!("AT+CMGS={octets}"), Step::Prompt, now);
            return;
        }
        if self.next_check_at.is_some_and(|at| now >= at) {
            self.next_check_at = Some(now + self.timing.signal_every);
            self.command("AT+CSQ", Step::Signal, now);
        }
    }
}

impl Bearer for SmsModem {
    fn capacity(&self) -> Option<usize> {
        // One SMS; longer messages are split, up to 255 parts.
        Some(super::pdu::MAX_USER_DATA)
    }

    fn time_for(&self, bytes: usize) -> Duration {
        Duration::from_secs(5) * bytes.div_ceil(134).max(1) as u32
    }

    fn is_up(&self) -> bool {
        self.registered
    }

    fn enqueue(&mut self, message: Outgoing, now: Instant) -> Result<(), QueueError> {
        let body = match &message.body {
            Body::Text(t) => SmsBody::Text(t.clone()),
            Body::Bytes(b) => SmsBody::Bytes(b.clone()),
        };
        submit(&message.to, &body, 0).map_err(|e| QueueError::Unsendable {
            id: message.id,
            reason: e.to_string(),
        })?;
        self.queue.push(message);
        self.next(now);
        Ok(())
    }

    fn queued(&self) -> Vec<Outgoing> {
        self.current
            .iter()
            .map(|(m, ..)| m.clone())
            .chain(self.queue.iter().cloned())
            .collect()
    }

    fn on_bytes(&mut self, bytes: &[u8], now: Instant) {
        for &b in bytes {
            if let Some(line) = self.lines.push(b) {
                self.on_line(&line, now);
                continue;
            }
            // The prompt has no line end: "> ".
            if self.step == Step::Prompt && matches!(self.lines.partial(), b">" | b"> ") {
                self.lines.clear_partial();
                if let Some((_, parts, next, _)) = &self.current
                    && let Some((_, pdu)) = parts.get(*next)
                {
                    self.out.extend_from_slice(pdu.as_bytes());
                    self.out.push(0x1A);
                }
                self.step = Step::Sending;
                self.step_deadline = Some(now + self.timing.send_timeout);
            }
        }
        self.next(now);
    }

    fn poll(&mut self, now: Instant) {
        if self.step_deadline.is_some_and(|at| now >= at) {
            self.counters.timeouts += 1;
            let step = std::mem::replace(&mut self.step, Step::Idle);
            self.step_deadline = None;
            match step {
                Step::Prompt | Step::Sending => {
                    // The modem may still be taking message text: ESC ends that.
                    self.out.push(0x1B);
                    self.failed_try(now);
                }
                Step::Reading { index, .. } => self.read_failed(index, "", now),
                // A long listing that timed out: what it named is queued; go on.
                Step::Listing => {
                    self.command("AT+CREG?", Step::Registration { registered: None }, now);
                    return;
                }
                Step::Start(_) | Step::Registration { .. } | Step::Signal => {
                    if self.registered {
                        self.registered = false;
                        self.events.push(BearerEvent::Down {
                            reason: "the modem does not answer".into(),
                        });
                    }
                    self.command(START[0], Step::Start(0), now);
                    return;
                }
                _ => {}
            }
        }
        self.next(now);
    }

    fn next_deadline(&self) -> Option<Instant> {
        let idle = self.step == Step::Idle;
        let sending = idle && self.registered && (self.current.is_some() || !self.queue.is_empty());
        [
            self.step_deadline,
            sending.then_some(self.next_try_at).flatten(),
            idle.then_some(self.next_check_at).flatten(),
            (idle && !self.to_read.is_empty())
                .then_some(self.read_after)
                .flatten(),
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
            ("refused sends", c.send_errors),
            ("unanswered commands", c.timeouts),
            ("messages that did not decode", c.bad_pdus),
            ("stored messages given up unread", c.unread),
            (
                "parts dropped before their message completed",
                c.dropped_parts,
            ),
            ("parts the network could not deliver", c.undelivered),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::satellite::bearer::Urgency;

    fn exchange(modem: &mut SmsModem, now: Instant, answer: &str) -> String {
        let out = String::from_utf8_lossy(&modem.take_output()).into_owned();
        modem.on_bytes(answer.as_bytes(), now);
        out
    }

    /// The SMS-DELIVER a phone would receive for SMS-SUBMIT `pdu` from 13800138000.
    fn delivered_from_13800138000(pdu: &str) -> String {
        let stamp = [0x62, 0x21, 0x40, 0x21, 0x43, 0x00, 0x00];
        super::super::pdu::deliver_for_submit(pdu, "13800138000", stamp)
            .expect("a SUBMIT")
            .1
    }

    fn registered(now: Instant) -> SmsModem {
        registered_with(SmsTiming::default(), now)
    }

    /// A registered modem that asks for the signal only once an hour, so no check falls
    /// among a test's exchanges.
    fn registered_without_signal_checks(t0: Instant) -> SmsModem {
        let timing = SmsTiming {
            signal_every: Duration::from_secs(3600),
            ..SmsTiming::default()
        };
        registered_with(timing, t0)
    }

    fn registered_with(timing: SmsTiming, now: Instant) -> SmsModem {
        let mut modem = SmsModem::new(timing, now);
        assert_eq!(exchange(&mut modem, now, "OK\r\n"), "AT\r");
        assert_eq!(exchange(&mut modem, now, "OK\r\n"), "AT+CMGF=0\r");
        assert_eq!(exchange(&mut modem, now, "OK\r\n"), "AT+CNMI=2,1,0,0,0\r");
        assert_eq!(exchange(&mut modem, now, "OK\r\n"), "AT+CMGL=4\r");
        assert_eq!(
            exchange(&mut modem, now, "+CREG: 0,5\r\nOK\r\n"),
            "AT+CREG?\r"
        );
        assert_eq!(
            modem.drain_events(),
            vec![BearerEvent::Up {
                identity: "SMS".into()
            }]
        );
        modem
    }

    fn alert(id: u64) -> Outgoing {
        Outgoing {
            id,
            to: "+8613800138000".into(),
            urgency: Urgency::Urgent,
            body: Body::Text("山洪预警".into()),
        }
    }

    #[test]
    fn a_message_the_modem_refuses_five_times_fails_after_doubling_waits() {
        let t0 = Instant::now();
        // No signal check falls among the tries.
        let mut modem = registered_without_signal_checks(t0);
        modem.enqueue(alert(1), t0).expect("takes it");
        let mut at = t0;
        let mut waits = Vec::new();
        for try_ in 1..=MAX_TRIES {
            let command = exchange(&mut modem, at, "\r\n+CMS ERROR: 332\r\n");
            assert!(command.starts_with("AT+CMGS="), "try {try_}: {command}");
            if try_ < MAX_TRIES {
                assert!(modem.drain_events().is_empty(), "try {try_}");
                let next = modem.next_deadline().expect("a next try");
                waits.push(next - at);
                at = next;
                modem.poll(at);
            }
        }
        assert_eq!(
            waits,
            [5, 10, 20, 40].map(Duration::from_secs),
            "doubling from the first backoff"
        );
        assert_eq!(
            modem.drain_events(),
            vec![BearerEvent::Failed {
                id: 1,
                reason: "the modem refused it 5 times".into()
            }]
        );
        assert_eq!(modem.counters().send_errors, u64::from(MAX_TRIES));
        assert!(modem.queued().is_empty());
    }

    #[test]
    fn unsolicited_creg_and_cereg_reports_take_the_bearer_down_and_up() {
        let t0 = Instant::now();
        let mut modem = registered(t0);
        modem.on_bytes(b"\r\n+CREG: 0\r\n", t0);
        assert!(!modem.is_up());
        assert_eq!(
            modem.drain_events(),
            vec![BearerEvent::Down {
                reason: "not registered on the network".into()
            }]
        );
        modem.on_bytes(b"\r\n+CEREG: 5,\"1A2B\",\"01C3F2\",7\r\n", t0);
        assert!(modem.is_up());
        assert_eq!(
            modem.drain_events(),
            vec![BearerEvent::Up {
                identity: "SMS".into()
            }]
        );
        modem.on_bytes(b"\r\n+CEREG: 2\r\n", t0);
        assert!(!modem.is_up(), "searching is not registered");
    }

    #[test]
    fn no_network_service_takes_the_bearer_down_and_the_message_waits_for_registration() {
        let t0 = Instant::now();
        let mut modem = registered_without_signal_checks(t0);
        modem.enqueue(alert(1), t0).expect("takes it");
        let command = exchange(&mut modem, t0, "\r\n+CMS ERROR: 331\r\n");
        assert!(command.starts_with("AT+CMGS="), "{command}");
        assert!(!modem.is_up());
        assert_eq!(
            modem.drain_events(),
            vec![BearerEvent::Down {
                reason: "not registered on the network".into()
            }]
        );
        assert_eq!(modem.queued().len(), 1, "kept");
        let check = t0 + Duration::from_secs(5);
        assert_eq!(modem.next_deadline(), Some(check));
        modem.poll(check);
        assert_eq!(
            exchange(&mut modem, check, "\r\n+CREG: 0,0\r\n\r\nOK\r\n"),
            "AT+CREG?\r"
        );
        assert!(!modem.is_up(), "still searching");
        assert_eq!(modem.take_output(), b"", "nothing sent while unregistered");
        let later = modem.next_deadline().expect("asked again");
        modem.poll(later);
        assert_eq!(
            exchange(&mut modem, later, "\r\n+CREG: 0,1\r\n\r\nOK\r\n"),
            "AT+CREG?\r"
        );
        assert!(modem.is_up());
        assert!(
            String::from_utf8_lossy(&modem.take_output()).starts_with("AT+CMGS="),
            "sent again once registered"
        );
        // The lost network took none of its tries: it fails at the fifth refusal after.
        let mut at = later;
        for try_ in 1..=MAX_TRIES {
            modem.on_bytes(b"\r\n+CMS ERROR: 332\r\n", at);
            let failed = modem
                .drain_events()
                .iter()
                .any(|e| matches!(e, BearerEvent::Failed { id: 1, .. }));
            assert_eq!(failed, try_ == MAX_TRIES, "refusal {try_}");
            if try_ < MAX_TRIES {
                at = modem.next_deadline().expect("a next try");
                modem.poll(at);
                let command = String::from_utf8_lossy(&modem.take_output()).into_owned();
                assert!(command.starts_with("AT+CMGS="), "{command}");
            }
        }
    }

    #[test]
    fn a_long_chinese_message_goes_part_by_part_after_each_prompt() {
        let t0 = Instant::now();
        let mut modem = registered(t0);
        let text = "道路中断".repeat(20);
        modem
            .enqueue(
                Outgoing {
                    id: 1,
                    to: "+8613800138000".into(),
                    urgency: Urgency::Normal,
                    body: Body::Text(text),
                },
                t0,
            )
            .expect("takes it");
        modem.poll(t0);
        for part in 0..2 {
            let command = exchange(&mut modem, t0, "\r\n> ");
            assert!(command.starts_with("AT+CMGS="), "part {part}: {command}");
            let pdu = exchange(&mut modem, t0, "\r\n+CMGS: 7\r\n\r\nOK\r\n");
            assert!(pdu.ends_with('\u{1a}'), "PDU and Ctrl-Z");
            assert!(
                pdu.starts_with("0051"),
                "with a concatenation header: {pdu}"
            );
        }
        assert_eq!(modem.drain_events(), vec![BearerEvent::Sent { id: 1 }]);
    }

    /// A modem asking for status reports, registered.
    fn reporting(now: Instant) -> SmsModem {
        let mut modem = SmsModem::new(SmsTiming::default(), now).with_status_reports(true);
        assert_eq!(exchange(&mut modem, now, "OK\r\n"), "AT\r");
        assert_eq!(exchange(&mut modem, now, "OK\r\n"), "AT+CMGF=0\r");
        assert_eq!(
            exchange(&mut modem, now, "OK\r\n"),
            "AT+CNMI=2,1,0,1,0\r",
            "reports passed on as +CDS"
        );
        assert_eq!(exchange(&mut modem, now, "OK\r\n"), "AT+CMGL=4\r");
        assert_eq!(
            exchange(&mut modem, now, "+CREG: 0,1\r\nOK\r\n"),
            "AT+CREG?\r"
        );
        modem.drain_events();
        modem
    }

    /// Sends message `id` of `text` to 13800138000 through `modem`, each part answered
    /// with the next of `references`; gives the PDUs written.
    fn send_with_references(
        modem: &mut SmsModem,
        now: Instant,
        id: u64,
        text: &str,
        references: &[u8],
    ) -> Vec<String> {
        modem
            .enqueue(
                Outgoing {
                    id,
                    to: "13800138000".into(),
                    urgency: Urgency::Normal,
                    body: Body::Text(text.into()),
                },
                now,
            )
            .expect("takes it");
        modem.poll(now);
        let mut pdus = Vec::new();
        for reference in references {
            let command = exchange(modem, now, "\r\n> ");
            assert!(command.starts_with("AT+CMGS="), "{command}");
            let answer = format!("\r\n+CMGS: {reference}\r\n\r\nOK\r\n");
            let pdu = exchange(modem, now, &answer);
            pdus.push(pdu.trim_end_matches('\u{1a}').to_string());
        }
        assert_eq!(modem.drain_events(), vec![BearerEvent::Sent { id }]);
        pdus
    }

    fn report(submit: &str, reference: u8, status: u8) -> String {
        super::super::pdu::status_report_for_submit(submit, reference, [0x62; 7], status)
            .expect("a SUBMIT")
            .expect("asking for a report")
    }

    #[test]
    fn a_message_is_delivered_once_every_parts_status_report_says_received() {
        let t0 = Instant::now();
        let mut modem = reporting(t0);
        let pdus = send_with_references(&mut modem, t0, 1, &"道路中断".repeat(20), &[7, 8]);
        assert!(
            pdus.iter().all(|p| p.starts_with("0071")),
            "TP-SRR: {pdus:?}"
        );

        // Part 1 received; part 2 still on its way (0x30), then received.
        let cds = |pdu: &str| format!("\r\n+CDS: {}\r\n{pdu}\r\n", pdu.len() / 2 - 1);
        modem.on_bytes(cds(&report(&pdus[0], 7, 0x00)).as_bytes(), t0);
        modem.on_bytes(cds(&report(&pdus[1], 8, 0x30)).as_bytes(), t0);
        assert_eq!(modem.drain_events(), vec![], "part 2 not yet there");
        modem.on_bytes(cds(&report(&pdus[1], 8, 0x00)).as_bytes(), t0);
        assert_eq!(modem.drain_events(), vec![BearerEvent::Delivered { id: 1 }]);

        // A report stored and announced with +CDSI is read, counted and deleted.
        let pdus = send_with_references(&mut modem, t0, 2, "收到", &[9]);
        modem.on_bytes(b"\r\n+CDSI: \"SR\",3\r\n", t0);
        assert_eq!(String::from_utf8_lossy(&modem.take_output()), "AT+CMGR=3\r");
        let stored = report(&pdus[0], 9, 0x00);
        let answer = format!("+CMGR: 0,,{}\r\n{stored}\r\nOK\r\n", stored.len() / 2 - 1);
        assert_eq!(exchange(&mut modem, t0, &answer), "");
        assert_eq!(String::from_utf8_lossy(&modem.take_output()), "AT+CMGD=3\r");
        assert_eq!(modem.drain_events(), vec![BearerEvent::Delivered { id: 2 }]);
        assert_eq!(modem.counters(), SmsCounters::default());
    }

    #[test]
    fn a_part_the_network_gave_up_is_counted_and_its_message_never_said_delivered() {
        let t0 = Instant::now();
        let mut modem = reporting(t0);
        let pdus = send_with_references(&mut modem, t0, 1, &"道路中断".repeat(20), &[7, 8]);
        let cds = |pdu: &str| format!("+CDS: {}\r\n{pdu}\r\n", pdu.len() / 2 - 1);
        modem.on_bytes(cds(&report(&pdus[0], 7, 0x41)).as_bytes(), t0);
        modem.on_bytes(cds(&report(&pdus[1], 8, 0x00)).as_bytes(), t0);
        assert_eq!(modem.drain_events(), vec![]);
        assert_eq!(modem.counters().undelivered, 1);

        // A report of a reference no part of ours carried is passed over.
        modem.on_bytes(cds(&report(&pdus[1], 99, 0x00)).as_bytes(), t0);
        assert_eq!(modem.drain_events(), vec![]);
    }

    #[test]
    fn without_status_reports_none_is_asked_for() {
        let t0 = Instant::now();
        let mut modem = registered(t0);
        let pdus = send_with_references(&mut modem, t0, 1, "收到", &[5]);
        assert!(pdus[0].starts_with("0011"), "no TP-SRR: {}", pdus[0]);
    }

    #[test]
    fn a_refused_send_is_tried_again_after_a_backoff() {
        let t0 = Instant::now();
        let mut modem = registered(t0);
        modem
            .enqueue(
                Outgoing {
                    id: 2,
                    to: "10086".into(),
                    urgency: Urgency::Urgent,
                    body: Body::Text("测试".into()),
                },
                t0,
            )
            .expect("takes it");
        modem.poll(t0);
        exchange(&mut modem, t0, "> ");
        exchange(&mut modem, t0, "+CMS ERROR: 500\r\n");
        assert_eq!(modem.counters().send_errors, 1);
        assert_eq!(modem.next_deadline(), Some(t0 + Duration::from_secs(5)));
        modem.poll(t0 + Duration::from_secs(5));
        assert!(String::from_utf8_lossy(&modem.take_output()).starts_with("AT+CMGS="));
    }

    #[test]
    fn a_stored_message_announced_anywhere_is_read_put_together_and_deleted() {
        let t0 = Instant::now();
        let mut modem = registered(t0);
        // Two parts of one message, as a phone would send them to us.
        let parts = submit("13800138000", &SmsBody::Text("雨".repeat(100)), 4).expect("parts");
        let delivered: Vec<String> = parts
            .iter()
            .map(|(_, pdu)| delivered_from_13800138000(pdu))
            .collect();
        modem.on_bytes(b"+CMTI: \"SM\",3\r\n+CMTI: \"SM\",4\r\n", t0);
        for (index, pdu) in [(3, &delivered[0]), (4, &delivered[1])] {
            let read = exchange(&mut modem, t0, &format!("+CMGR: 0,,150\r\n{pdu}\r\nOK\r\n"));
            assert_eq!(read, format!("AT+CMGR={index}\r"));
            assert_eq!(
                exchange(&mut modem, t0, "OK\r\n"),
                format!("AT+CMGD={index}\r")
            );
        }
        assert_eq!(
            modem.drain_events(),
            vec![BearerEvent::Received {
                from: "13800138000".into(),
                body: Body::Text("雨".repeat(100))
            }]
        );
    }

    #[test]
    fn a_failed_read_is_tried_again_after_a_pause_an_invalid_index_is_given_up_and_a_lost_prompt_is_escaped()
     {
        let t0 = Instant::now();
        let mut modem = registered(t0);
        modem.on_bytes(b"+CMTI: \"SM\",7\r\n+CMTI: \"SM\",7\r\n", t0);
        // A passing failure: read again after a pause, not at once, and not twice over
        // for the doubled announcement.
        assert_eq!(
            exchange(&mut modem, t0, "+CMS ERROR: 500\r\n"),
            "AT+CMGR=7\r"
        );
        assert_eq!(modem.take_output(), b"");
        let again = t0 + SmsTiming::default().first_backoff;
        assert_eq!(modem.next_deadline(), Some(again));
        modem.poll(again);
        assert_eq!(
            exchange(&mut modem, again, "+CMS ERROR: 321\r\n"),
            "AT+CMGR=7\r"
        );
        // Invalid index: gone, or taken by another program. Given up, counted, no loop.
        modem.poll(again + Duration::from_secs(60));
        assert!(!String::from_utf8_lossy(&modem.take_output()).contains("CMGR"));
        assert_eq!(modem.counters().unread, 1);

        let mut modem = registered(t0);
        modem
            .enqueue(
                Outgoing {
                    id: 5,
                    to: "10086".into(),
                    urgency: Urgency::Normal,
                    body: Body::Text("测试".into()),
                },
                t0,
            )
            .expect("takes it");
        assert!(String::from_utf8_lossy(&modem.take_output()).starts_with("AT+CMGS="));
        modem.poll(t0 + Duration::from_secs(5));
        assert_eq!(
            modem.take_output(),
            vec![0x1B],
            "ESC ends a half-taken message"
        );
    }

    #[test]
    fn the_parts_of_a_long_binary_message_are_joined_as_bytes() {
        let t0 = Instant::now();
        let mut modem = registered(t0);
        let bytes: Vec<u8> = (0..200).map(|k| k as u8).collect();
        let parts = submit("13800138000", &SmsBody::Bytes(bytes.clone()), 2).expect("parts");
        assert_eq!(parts.len(), 2);
        for (index, (_, pdu)) in parts.iter().enumerate() {
            let hex = delivered_from_13800138000(pdu);
            modem.on_bytes(format!("+CMTI: \"SM\",{index}\r\n").as_bytes(), t0);
            exchange(&mut modem, t0, &format!("+CMGR: 0,,150\r\n{hex}\r\nOK\r\n"));
            exchange(&mut modem, t0, "OK\r\n");
        }
        assert_eq!(
            modem.drain_events(),
            vec![BearerEvent::Received {
                from: "13800138000".into(),
                body: Body::Bytes(bytes)
            }]
        );
    }

    #[test]
    fn messages_stored_before_the_start_are_listed_then_read_and_deleted() {
        let now = Instant::now();
        let mut modem = SmsModem::new(SmsTiming::default(), now);
        for answer in ["OK\r\n", "OK\r\n", "OK\r\n"] {
            exchange(&mut modem, now, answer);
        }
        let pdu = delivered_from_13800138000(
            &submit("13900139000", &SmsBody::Text("留言".into()), 1).expect("PDU")[0].1,
        );
        let listing = format!("+CMGL: 3,1,,20\r\n{pdu}\r\n+CMGL: 5,1,,20\r\n{pdu}\r\nOK\r\n");
        assert_eq!(exchange(&mut modem, now, &listing), "AT+CMGL=4\r");
        assert_eq!(
            exchange(&mut modem, now, "+CREG: 0,1\r\nOK\r\n"),
            "AT+CREG?\r"
        );
        let read = format!("+CMGR: 1,,20\r\n{pdu}\r\nOK\r\n");
        assert_eq!(exchange(&mut modem, now, &read), "AT+CMGR=3\r");
        assert_eq!(exchange(&mut modem, now, "OK\r\n"), "AT+CMGD=3\r");
        assert_eq!(exchange(&mut modem, now, &read), "AT+CMGR=5\r");
        assert_eq!(exchange(&mut modem, now, "OK\r\n"), "AT+CMGD=5\r");
        let received = modem
            .drain_events()
            .into_iter()
            .filter(|e| matches!(e, BearerEvent::Received { .. }))
            .count();
        assert_eq!(received, 2);
    }

    #[test]
    fn registration_is_read_from_the_stat_field_whatever_follows_it() {
        let now = Instant::now();
        let mut modem = SmsModem::new(SmsTiming::default(), now);
        for answer in ["OK\r\n", "OK\r\n", "OK\r\n", "OK\r\n"] {
            exchange(&mut modem, now, answer);
        }
        exchange(
            &mut modem,
            now,
            "+CREG: 2,1,\"1A2B\",\"01C3F2\",7\r\nOK\r\n",
        );
        assert!(
            modem.is_up(),
            "home network, with location and access technology"
        );
    }
}
