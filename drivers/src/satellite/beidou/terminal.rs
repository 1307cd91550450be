//! A BeiDou RDSS terminal as a [`Bearer`], in any of its three dialects: sans-IO.
//!
//! **Dialect.** Configured, or found at start: with [`BeidouDialect::Auto`] the driver
//! asks for the card in each dialect in turn, one every probe interval — BDS-3
//! (`$CCICR`), then 2.1 (`$CCICA`), then BD-1 4.0 (`ICJC`) — and speaks the dialect of
//! the first card that answers. A terminal that goes down is probed again the same way.
//!
//! **Up.** Once the card has answered the terminal is up: a 2.1 terminal is asked for
//! its beams every 10 s (`$CCRMO`), a BDS-3 module reports beam power by itself
//! (`$BDPWI`), a 4.0 terminal is asked for its card every 10 s so that silence shows;
//! the strongest beam is the link's signal. A terminal silent for 35 s is down.
//!
//! **Sending.** Messages go one at a time, each waiting for the terminal's feedback:
//!
//! * done: the part is sent; the next waits the card's service interval, or the seconds
//!   the terminal names if longer;
//! * refused for the rate: the message goes back to the front of its class and waits
//!   the seconds the terminal names (at least one), so an early send costs one
//!   refusal, not a loop; refused for another passing reason (no signal, suppression,
//!   silence): it waits the service interval (at least 5 s) and tries again; after 30
//!   refusals in a row it fails. A refusal that cannot pass (no card, no permission,
//!   crypto) fails it at once;
//! * no answer within the feedback time-out: sent again after the service interval (the
//!   first may have gone); after three in a row the terminal counts as down.
//!
//! Text goes in Chinese form (GB2312), bytes in code form, or in mixed form (hex led by
//! A4) when asked ([`BeidouTerminal::send_bytes_mixed`]). Text longer than one message
//! is split into numbered parts ([`split_text`]) sent one per service interval; the
//! message is sent when its last part is. Bytes longer than one message are refused
//! at [`Bearer::enqueue`] once the card is known (the relay's frames fragment
//! themselves), and failed at their turn if queued before.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::bd1::{self, Bd1Feedback, Bd1Inbound, FrameReader};
use super::bds3::{self, Bds3Inbound};
use super::nmea::{CardInfo, Inbound, MessageForm, SentenceReader, host};
use super::payload::{self, Content};
use crate::satellite::BeidouDialect;
use crate::satellite::bearer::{
    Bearer, BearerEvent, Body, Outgoing, PriorityQueue, QueueError, Urgency, split_text,
};

/// Timing of the terminal driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TerminalTiming {
    /// How often the card is asked for until the terminal answers.
    pub probe_every: Duration,
    /// How long a send waits for its feedback.
    pub feedback_timeout: Duration,
}

impl Default for TerminalTiming {
    fn default() -> Self {
        TerminalTiming {
            probe_every: Duration::from_secs(2),
            feedback_timeout: Duration::from_secs(10),
        }
    }
}

/// Feedback time-outs in a row after which the terminal counts as down.
const MAX_TIMEOUTS: u32 = 3;
/// Refusals of one message after which it fails (no signal, suppression, for long).
const MAX_REFUSALS: u32 = 30;
/// Silence after which a terminal that was up counts as gone: it reports its beams
/// every 10 s (2.1), every second (BDS-3), or answers a card query every 10 s (4.0).
const SILENCE_LIMIT: Duration = Duration::from_secs(35);
/// How often a 4.0 terminal's card is asked for, to hear that it is still there.
const KEEPALIVE_EVERY: Duration = Duration::from_secs(10);
/// The longest wait a terminal may name: a larger one is taken as this.
const MAX_WAIT: Duration = Duration::from_secs(3600);
/// The least wait after a refusal that names no time (no signal, suppression).
const MIN_PASSING_WAIT: Duration = Duration::from_secs(5);

/// The dialects in the order they are probed.
const PROBE_ORDER: [BeidouDialect; 3] =
    [BeidouDialect::Bds3, BeidouDialect::V21, BeidouDialect::Bd1];

/// Faults seen, by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TerminalCounters {
    pub refusals: u64,
    pub feedback_timeouts: u64,
    /// Sentences or frames whose fields did not fit their layout.
    pub bad_fields: u64,
    /// Messages received whose payload did not decode.
    pub bad_payloads: u64,
}

/// What a terminal said, whatever its dialect.
enum Heard {
    Card(CardInfo, BeidouDialect),
    /// The answer to the send in flight.
    Feedback(Outcome),
    Received {
        from: String,
        body: Body,
    },
    Signal(u8),
    /// The satellites' UTC time (`ZDA`).
    Time(chrono::DateTime<chrono::Utc>),
    Nothing,
    Bad,
    /// A message whose payload did not decode (not GB2312, not hex).
    BadPayload,
}

/// What became of a send.
enum Outcome {
    Done {
        wait: Duration,
    },
    /// Refused for now: the rate (with its wait), or a state that passes.
    Refused {
        wait: Duration,
        rate: bool,
    },
    /// Refused for good.
    Rejected(String),
}

/// A message whose part is out, waiting for its feedback.
#[derive(Debug)]
struct InFlight {
    message: Outgoing,
    part: usize,
    parts: usize,
    sent: Instant,
}

/// The driver; see the [module](self) notes.
#[derive(Debug)]
pub struct BeidouTerminal {
    configured: BeidouDialect,
    /// How bytes are written in the sentence dialects: code, or mixed.
    bytes_form: MessageForm,
    /// The dialect spoken, once known.
    dialect: Option<BeidouDialect>,
    /// The next dialect to probe, as an index into [`PROBE_ORDER`].
    probe_turn: usize,
    timing: TerminalTiming,
    sentences: SentenceReader,
    frames: FrameReader,
    out: Vec<u8>,
    events: Vec<BearerEvent>,
    card: Option<CardInfo>,
    /// A 4.0 card's address, which every frame carries.
    address: u32,
    queue: PriorityQueue,
    awaiting: Option<InFlight>,
    /// Parts already sent of messages split in parts, by message.
    parts_sent: HashMap<u64, usize>,
    next_send_at: Option<Instant>,
    next_probe: Option<Instant>,
    next_keepalive: Option<Instant>,
    timeouts: u32,
    /// Refusals in a row of message `refused`.
    refusals: u32,
    refused: Option<u64>,
    last_heard: Option<Instant>,
    signal: Option<u8>,
    counters: TerminalCounters,
}

impl BeidouTerminal {
    /// A driver for a terminal of `dialect` that starts probing at `now`.
    pub fn new(dialect: BeidouDialect, timing: TerminalTiming, now: Instant) -> BeidouTerminal {
        let mut driver = BeidouTerminal {
            configured: dialect,
            bytes_form: MessageForm::Code,
            dialect: (dialect != BeidouDialect::Auto).then_some(dialect),
            probe_turn: 0,
            timing,
            sentences: SentenceReader::new(),
            frames: FrameReader::new(),
            out: Vec::new(),
            events: Vec::new(),
            card: None,
            address: 0,
            queue: PriorityQueue::default(),
            awaiting: None,
            parts_sent: HashMap::new(),
            next_send_at: None,
            next_probe: None,
            next_keepalive: None,
            timeouts: 0,
            refusals: 0,
            refused: None,
            last_heard: None,
            signal: None,
            counters: TerminalCounters::default(),
        };
        driver.probe(now);
        driver
    }

    pub fn card(&self) -> Option<&CardInfo> {
        self.card.as_ref()
    }

    /// Writes bytes in mixed form (hex led by A4), as some handheld terminals expect,
    /// instead of code form; text always goes in Chinese form.
    pub fn send_bytes_mixed(mut self, mixed: bool) -> BeidouTerminal {
        self.bytes_form = if mixed {
            MessageForm::Mixed
        } else {
            MessageForm::Code
        };
        self
    }

    /// The dialect spoken, once known.
    pub fn dialect(&self) -> Option<BeidouDialect> {
        self.dialect
    }

    pub fn counters(&self) -> TerminalCounters {
        self.counters
    }

    /// The sentence reader's counts of bad checksums, garbage and oversized lines.
    pub fn reader_counters(&self) -> super::nmea::ReaderCounters {
        self.sentences.counters()
    }

    /// The frame reader's counts, for a 4.0 terminal.
    pub fn frame_counters(&self) -> bd1::FrameCounters {
        self.frames.counters()
    }

    fn probe(&mut self, now: Instant) {
        let dialect = self.dialect.unwrap_or_else(|| {
            let d = PROBE_ORDER[self.probe_turn % PROBE_ORDER.len()];
            self.probe_turn += 1;
            d
        });
        self.out.extend(match dialect {
            BeidouDialect::Bds3 => bds3::host::card_info().encode(),
            BeidouDialect::Bd1 => bd1::card_info(self.address).encode(),
            BeidouDialect::V21 | BeidouDialect::Auto => host::card_info().encode(),
        });
        self.next_probe = Some(now + self.timing.probe_every);
    }

    fn go_down(&mut self, reason: &str, now: Instant) {
        if self.card.take().is_some() {
            self.events.push(BearerEvent::Down {
                reason: reason.into(),
            });
        }
        self.next_keepalive = None;
        if self.configured == BeidouDialect::Auto {
            self.dialect = None;
        }
        self.probe(now);
    }

    fn on_card(&mut self, card: CardInfo, dialect: BeidouDialect, now: Instant) {
        if self.dialect.is_some_and(|d| d != dialect) {
            return;
        }
        if self.card.is_none() {
            match dialect {
                BeidouDialect::V21 | BeidouDialect::Auto => {
                    self.out.extend(host::output("BSI", 2, 10).encode());
                }
                BeidouDialect::Bd1 => self.next_keepalive = Some(now + KEEPALIVE_EVERY),
                BeidouDialect::Bds3 => {}
            }
            self.events.push(BearerEvent::Up {
                identity: card.id.clone(),
            });
        }
        if dialect == BeidouDialect::Bd1 {
            self.address = card.id.parse().unwrap_or(0);
        }
        self.dialect = Some(dialect);
        self.next_probe = None;
        self.timeouts = 0;
        self.card = Some(card);
    }

    fn on_outcome(&mut self, outcome: Outcome, now: Instant) {
        let Some(flight) = self.awaiting.take() else {
            return;
        };
        self.timeouts = 0;
        let interval = self.interval();
        match outcome {
            Outcome::Done { wait } => {
                self.refusals = 0;
                self.next_send_at = Some(now + wait.min(MAX_WAIT).max(interval));
                if flight.part + 1 == flight.parts {
                    self.parts_sent.remove(&flight.message.id);
                    self.events.push(BearerEvent::Sent {
                        id: flight.message.id,
                    });
                } else {
                    self.parts_sent.insert(flight.message.id, flight.part + 1);
                    self.requeue_front(flight.message);
                }
            }
            Outcome::Refused { wait, rate } => {
                self.counters.refusals += 1;
                // Counted per message: another's refusals must not fail this one.
                if self.refused != Some(flight.message.id) {
                    self.refused = Some(flight.message.id);
                    self.refusals = 0;
                }
                self.refusals += 1;
                if self.refusals >= MAX_REFUSALS {
                    self.refusals = 0;
                    self.fail(
                        flight.message.id,
                        format!("refused {MAX_REFUSALS} times by the terminal"),
                    );
                    return;
                }
                let least = if rate {
                    Duration::from_secs(1)
                } else {
                    interval.max(MIN_PASSING_WAIT)
                };
                self.requeue_front(flight.message);
                self.next_send_at = Some(now + wait.min(MAX_WAIT).max(least));
            }
            Outcome::Rejected(reason) => {
                self.counters.refusals += 1;
                self.refusals = 0;
                self.fail(flight.message.id, reason);
            }
        }
    }

    fn fail(&mut self, id: u64, reason: String) {
        self.parts_sent.remove(&id);
        self.events.push(BearerEvent::Failed { id, reason });
    }

    /// The card's service interval, bounded.
    fn interval(&self) -> Duration {
        self.card
            .as_ref()
            .map_or(Duration::ZERO, |c| c.service_interval.min(MAX_WAIT))
    }

    fn requeue_front(&mut self, message: Outgoing) {
        let mut rest: Vec<Outgoing> = std::iter::from_fn(|| self.queue.pop()).collect();
        rest.insert(0, message);
        // Urgency order is kept by push; the message goes back first in its class.
        for m in rest {
            self.queue.push(m);
        }
    }

    /// What the terminal said in `bytes`, in the dialect spoken (every dialect while
    /// probing).
    fn hear(&mut self, bytes: &[u8]) -> Vec<Heard> {
        let mut heard = Vec::new();
        let nmea = self.dialect != Some(BeidouDialect::Bd1);
        let binary = matches!(self.dialect, None | Some(BeidouDialect::Bd1));
        if nmea {
            for sentence in self.sentences.push(bytes).into_iter().flatten() {
                heard.push(self.read_sentence(&sentence));
            }
        }
        if binary {
            for frame in self.frames.push(bytes) {
                heard.push(self.read_frame(&frame));
            }
        }
        heard
    }

    fn read_sentence(&self, sentence: &super::nmea::Sentence) -> Heard {
        let awaiting = self.awaiting.is_some();
        // The navigation receiver's time, in any sentence dialect and while probing.
        if sentence.kind == "ZDA" {
            return match super::nmea::read_zda(sentence) {
                Ok(Some(utc)) => Heard::Time(utc),
                Ok(None) => Heard::Nothing,
                Err(_) => Heard::Bad,
            };
        }
        match self.dialect {
            Some(BeidouDialect::Bds3) => match Bds3Inbound::read(sentence) {
                Ok(Bds3Inbound::Card(card)) => Heard::Card(card, BeidouDialect::Bds3),
                Ok(Bds3Inbound::Feedback(f)) if f.command == "TCQ" && awaiting => {
                    Heard::Feedback(match f.refusal {
                        None => Outcome::Done { wait: f.wait },
                        Some(r) if r.is_transient() => Outcome::Refused {
                            wait: f.wait,
                            rate: r == bds3::Refusal::Rate,
                        },
                        Some(r) => {
                            Outcome::Rejected(format!("refused by the module: {}", r.describe()))
                        }
                    })
                }
                Ok(Bds3Inbound::Received(r)) => received(r),
                Ok(Bds3Inbound::Power(level)) => Heard::Signal(level),
                Ok(_) => Heard::Nothing,
                Err(_) => Heard::Bad,
            },
            Some(_) => match Inbound::read(sentence) {
                Ok(Inbound::CardInfo(card)) => Heard::Card(card, BeidouDialect::V21),
                Ok(Inbound::Feedback(f)) if f.command == "TXA" && awaiting => {
                    Heard::Feedback(if f.done {
                        Outcome::Done { wait: f.wait }
                    } else {
                        Outcome::Refused {
                            wait: f.wait,
                            rate: !f.rate_ok,
                        }
                    })
                }
                Ok(Inbound::Received(r)) => received(r),
                Ok(Inbound::Beam(beam)) => Heard::Signal(beam.best()),
                Ok(_) => Heard::Nothing,
                Err(_) => Heard::Bad,
            },
            // Probing: only a card's answer tells the dialect.
            None => match sentence.kind.as_str() {
                "ICP" => match Bds3Inbound::read(sentence) {
                    Ok(Bds3Inbound::Card(card)) => Heard::Card(card, BeidouDialect::Bds3),
                    _ => Heard::Bad,
                },
                "ICI" => match Inbound::read(sentence) {
                    Ok(Inbound::CardInfo(card)) => Heard::Card(card, BeidouDialect::V21),
                    _ => Heard::Bad,
                },
                // A message that comes before the dialect is known is not lost.
                "TXR" | "TCI" => match Bds3Inbound::read(sentence) {
                    Ok(Bds3Inbound::Received(r)) => received(r),
                    _ => Heard::Bad,
                },
                _ => Heard::Nothing,
            },
        }
    }

    fn read_frame(&self, frame: &bd1::Frame) -> Heard {
        match Bd1Inbound::read(frame) {
            Ok(Bd1Inbound::Card(card)) => Heard::Card(card.card_info(), BeidouDialect::Bd1),
            // FKXX names the command it answers (but for a rate refusal, whose four
            // bytes are the wait): only TXSQ's answer concerns the send.
            Ok(Bd1Inbound::Feedback(flag)) => {
                let answers_send = matches!(flag, Bd1Feedback::RateNotReached(_))
                    || frame.body.get(1..5).is_none_or(|c| c == b"TXSQ");
                if !answers_send || self.awaiting.is_none() {
                    return Heard::Nothing;
                }
                Heard::Feedback(match flag {
                    Bd1Feedback::Done => Outcome::Done {
                        wait: Duration::ZERO,
                    },
                    Bd1Feedback::RateNotReached(wait) => Outcome::Refused { wait, rate: true },
                    Bd1Feedback::Crypto => {
                        Outcome::Rejected("refused by the terminal: encryption fault".into())
                    }
                    Bd1Feedback::SuppressionLifted => return Heard::Nothing,
                    // No signal, low battery, a failure, a CRC error, suppression:
                    // states that pass.
                    _ => Outcome::Refused {
                        wait: Duration::ZERO,
                        rate: false,
                    },
                })
            }
            Ok(Bd1Inbound::Message(message)) => {
                let body = if message.category == bd1::category(false) {
                    match payload::decode_chinese(&message.content) {
                        Ok(text) => Body::Text(text),
                        Err(_) => return Heard::BadPayload,
                    }
                } else {
                    Body::Bytes(message.content)
                };
                Heard::Received {
                    from: message.from.to_string(),
                    body,
                }
            }
            Ok(Bd1Inbound::Other(_)) => Heard::Nothing,
            Err(_) => Heard::Bad,
        }
    }

    /// The parts `message` goes in at this card: each part's wire form and bytes.
    fn parts(&self, message: &Outgoing, card: &CardInfo) -> Result<Vec<Wire>, String> {
        let dialect = self.dialect.unwrap_or(BeidouDialect::V21);
        let level = card.comm_level;
        let fits = |wire: &Wire| wire.bits(dialect) <= card.capacity_bits();
        match &message.body {
            Body::Bytes(bytes) => {
                let wire = Wire::binary(bytes, self.bytes_form == MessageForm::Mixed);
                if fits(&wire) {
                    Ok(vec![wire])
                } else {
                    Err(format!(
                        "{} bytes do not fit one message at comm level {level}",
                        bytes.len()
                    ))
                }
            }
            Body::Text(text) => {
                // A character that is not GB2312 is refused before any part goes.
                payload::encode_chinese(text).map_err(|e| e.to_string())?;
                let parts = split_text(text, |part| {
                    Wire::chinese(part).is_ok_and(|wire| fits(&wire))
                })
                .ok_or("a character does not fit one message")?;
                parts
                    .iter()
                    .map(|part| Wire::chinese(part).map_err(|e| e.to_string()))
                    .collect()
            }
        }
    }

    fn send_next(&mut self, now: Instant) {
        let Some(card) = self.card.clone() else {
            return;
        };
        if self.awaiting.is_some() || self.next_send_at.is_some_and(|at| now < at) {
            return;
        }
        while let Some(message) = self.queue.pop() {
            let parts = match self.parts(&message, &card) {
                Ok(parts) => parts,
                Err(reason) => {
                    self.fail(message.id, reason);
                    continue;
                }
            };
            let part = self
                .parts_sent
                .get(&message.id)
                .copied()
                .unwrap_or(0)
                .min(parts.len() - 1);
            match self.encode_send(&message, &parts[part]) {
                Ok(bytes) => {
                    self.out.extend(bytes);
                    self.awaiting = Some(InFlight {
                        message,
                        part,
                        parts: parts.len(),
                        sent: now,
                    });
                    return;
                }
                Err(reason) => self.fail(message.id, reason),
            }
        }
    }

    fn encode_send(&self, message: &Outgoing, wire: &Wire) -> Result<Vec<u8>, String> {
        let urgent = message.urgency == Urgency::Urgent;
        Ok(match self.dialect.unwrap_or(BeidouDialect::V21) {
            BeidouDialect::Bds3 => {
                // In TCQ the data is not the last field: a comma in Chinese text would
                // end it, so it goes as the full-width comma (GB2312 A3AC).
                let mut field = wire.field.clone();
                if wire.form == MessageForm::Chinese {
                    field = field
                        .iter()
                        .flat_map(|&b| if b == b',' { vec![0xA3, 0xAC] } else { vec![b] })
                        .collect();
                }
                bds3::host::send(&message.to, wire.form, field, false).encode()
            }
            BeidouDialect::Bd1 => {
                let to = message
                    .to
                    .parse::<u32>()
                    .ok()
                    .filter(|a| *a < 1 << 24)
                    .ok_or_else(|| format!("{:?} is not a 4.0 card address", message.to))?;
                let code = wire.form != MessageForm::Chinese;
                bd1::send(self.address, to, code, &wire.bytes).encode()
            }
            BeidouDialect::V21 | BeidouDialect::Auto => {
                host::send(&message.to, urgent, wire.form, wire.field.clone()).encode()
            }
        })
    }
}

/// One message's payload, ready for any dialect: the sentence field (GB2312 or hex
/// digits) and the bytes a 4.0 frame carries.
#[derive(Debug, Clone)]
struct Wire {
    form: MessageForm,
    field: Vec<u8>,
    bytes: Vec<u8>,
}

impl Wire {
    fn chinese(text: &str) -> Result<Wire, payload::PayloadError> {
        let field = payload::encode_chinese(text)?;
        Ok(Wire {
            form: MessageForm::Chinese,
            bytes: field.clone(),
            field,
        })
    }

    /// Bytes in code form, or in mixed form (hex led by A4) when `mixed`.
    fn binary(bytes: &[u8], mixed: bool) -> Wire {
        let (form, field) = if mixed {
            let mut field = b"A4".to_vec();
            field.extend(payload::encode_hex(bytes));
            (MessageForm::Mixed, field)
        } else {
            (MessageForm::Code, payload::encode_hex(bytes))
        };
        Wire {
            form,
            field,
            bytes: bytes.to_vec(),
        }
    }

    /// The bits it takes in a message: as the 2.1 and BDS-3 forms count them, or its
    /// bytes in a 4.0 frame.
    fn bits(&self, dialect: BeidouDialect) -> u32 {
        match dialect {
            BeidouDialect::Bd1 => self.bytes.len() as u32 * 8,
            _ => payload::bits(self.form, &self.field),
        }
    }
}

fn received(r: super::nmea::Received) -> Heard {
    match payload::decode(r.form, &r.payload) {
        Ok(Content::Text(t)) => Heard::Received {
            from: r.from,
            body: Body::Text(t),
        },
        Ok(Content::Bytes(b)) => Heard::Received {
            from: r.from,
            body: Body::Bytes(b),
        },
        Err(_) => Heard::BadPayload,
    }
}

impl Bearer for BeidouTerminal {
    fn capacity(&self) -> Option<usize> {
        self.card.as_ref().map(|c| c.capacity_bits() as usize / 8)
    }

    fn time_for(&self, bytes: usize) -> Duration {
        let (Some(card), Some(capacity)) = (&self.card, self.capacity()) else {
            return Duration::MAX;
        };
        let messages = bytes.div_ceil(capacity.max(1)).max(1) as u32;
        card.service_interval * (messages - 1) + Duration::from_secs(2)
    }

    fn is_up(&self) -> bool {
        self.card.is_some()
    }

    fn enqueue(&mut self, message: Outgoing, now: Instant) -> Result<(), QueueError> {
        match &message.body {
            Body::Text(text) => {
                payload::encode_chinese(text).map_err(|e| QueueError::Unsendable {
                    id: message.id,
                    reason: e.to_string(),
                })?;
            }
            Body::Bytes(bytes) => {
                if let (Some(capacity), Some(card)) = (self.capacity(), &self.card)
                    && self.parts(&message, card).is_err()
                {
                    return Err(QueueError::TooLong {
                        id: message.id,
                        needed: bytes.len(),
                        capacity,
                    });
                }
            }
        }
        self.queue.push(message);
        self.send_next(now);
        Ok(())
    }

    fn queued(&self) -> Vec<Outgoing> {
        let awaiting = self.awaiting.iter().map(|f| f.message.clone());
        awaiting.chain(self.queue.iter().cloned()).collect()
    }

    fn on_bytes(&mut self, bytes: &[u8], now: Instant) {
        for heard in self.hear(bytes) {
            self.last_heard = Some(now);
            match heard {
                Heard::Card(card, dialect) => self.on_card(card, dialect, now),
                Heard::Feedback(outcome) => self.on_outcome(outcome, now),
                Heard::Received { from, body } => {
                    self.events.push(BearerEvent::Received { from, body });
                }
                Heard::Signal(level) => {
                    if self.signal != Some(level) {
                        self.signal = Some(level);
                        self.events.push(BearerEvent::Signal { level });
                    }
                }
                Heard::Time(utc) => self.events.push(BearerEvent::Time { utc, at: now }),
                Heard::Nothing => {}
                Heard::Bad => self.counters.bad_fields += 1,
                Heard::BadPayload => self.counters.bad_payloads += 1,
            }
        }
        self.send_next(now);
    }

    fn poll(&mut self, now: Instant) {
        if self.next_probe.is_some_and(|at| now >= at) {
            self.probe(now);
        }
        if self.next_keepalive.is_some_and(|at| now >= at) {
            self.out.extend(bd1::card_info(self.address).encode());
            self.next_keepalive = Some(now + KEEPALIVE_EVERY);
        }
        if self.card.is_some()
            && self
                .last_heard
                .is_some_and(|heard| now.saturating_duration_since(heard) > SILENCE_LIMIT)
        {
            self.go_down("the terminal has gone silent", now);
        }
        if let Some(flight) = &self.awaiting
            && now >= flight.sent + self.timing.feedback_timeout
        {
            if let Some(flight) = self.awaiting.take() {
                self.requeue_front(flight.message);
            }
            // The send may have gone with only its feedback lost: wait the interval
            // before sending again, or the terminal refuses it and then sends it twice.
            self.next_send_at = Some(now + self.interval());
            self.counters.feedback_timeouts += 1;
            self.timeouts += 1;
            if self.timeouts >= MAX_TIMEOUTS && self.card.is_some() {
                self.go_down("the terminal does not answer", now);
            }
        }
        self.send_next(now);
    }

    fn next_deadline(&self) -> Option<Instant> {
        let feedback = self
            .awaiting
            .as_ref()
            .map(|f| f.sent + self.timing.feedback_timeout);
        let send = (!self.queue.is_empty() && self.awaiting.is_none() && self.card.is_some())
            .then_some(self.next_send_at)
            .flatten();
        let silence = self
            .card
            .as_ref()
            .and(self.last_heard)
            .map(|heard| heard + SILENCE_LIMIT + Duration::from_millis(1));
        [
            self.next_probe,
            self.next_keepalive,
            feedback,
            send,
            silence,
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
        let (c, r, f) = (
            self.counters,
            self.sentences.counters(),
            self.frames.counters(),
        );
        vec![
            ("refusals", c.refusals),
            ("feedback time-outs", c.feedback_timeouts),
            ("sentences or frames with bad fields", c.bad_fields),
            ("messages that did not decode", c.bad_payloads),
            ("sentences with a bad checksum", r.bad_checksum),
            ("malformed sentences", r.malformed),
            ("lines too long for a sentence", r.too_long),
            ("bytes outside any sentence", r.garbage_bytes),
            ("frames with a bad checksum", f.bad_checksum),
            ("frames with an impossible length", f.bad_length),
            ("frames cut short", f.truncated),
            ("bytes outside any frame", f.garbage_bytes),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ICI: &[u8] = b"$BDICI,0166166,02097151,0000011,6,40,3,N,000*33\r\n";

    fn fki(done: bool, wait: u32) -> Vec<u8> {
        let sentence = super::super::nmea::Sentence {
            talker: "BD".into(),
            kind: "FKI".into(),
            fields: vec![
                b"TXA".to_vec(),
                if done { b"Y".to_vec() } else { b"N".to_vec() },
                b"Y".to_vec(),
                b"0".to_vec(),
                format!("{wait:04}").into_bytes(),
            ],
        };
        sentence.encode()
    }

    fn report(id: u64, urgency: Urgency, text: &str) -> Outgoing {
        Outgoing {
            id,
            to: "0247718".into(),
            urgency,
            body: Body::Text(text.into()),
        }
    }

    fn sent_ids(events: &[BearerEvent]) -> Vec<u64> {
        events
            .iter()
            .filter_map(|e| match e {
                BearerEvent::Sent { id } => Some(*id),
                _ => None,
            })
            .collect()
    }

    const BSI: &[u8] = b"$BDBSI,01,03,3,2,2,0,3,0,0,3,0,0*5F\r\n";

    fn txa_count(out: &[u8]) -> usize {
        out.windows(6).filter(|w| w == b"$CCTXA").count()
    }

    #[test]
    fn the_navigation_receivers_time_is_told_with_the_instant_it_was_heard() {
        let t0 = Instant::now();
        let mut terminal = BeidouTerminal::new(BeidouDialect::V21, TerminalTiming::default(), t0);
        terminal.on_bytes(ICI, t0);
        terminal.drain_events();
        let zda = super::super::nmea::Sentence {
            talker: "GN".into(),
            kind: "ZDA".into(),
            fields: ["082730.00", "20", "07", "2026", "00", "00"]
                .iter()
                .map(|f| f.as_bytes().to_vec())
                .collect(),
        };
        let heard = t0 + Duration::from_millis(1500);
        terminal.on_bytes(&zda.encode(), heard);
        let utc = chrono::DateTime::parse_from_rfc3339("2026-07-20T08:27:30Z")
            .expect("time")
            .to_utc();
        assert_eq!(
            terminal.drain_events(),
            vec![BearerEvent::Time { utc, at: heard }]
        );
    }

    #[test]
    fn it_probes_until_the_card_answers_then_is_up_with_its_capacity() {
        let t0 = Instant::now();
        let mut terminal = BeidouTerminal::new(BeidouDialect::V21, TerminalTiming::default(), t0);
        assert_eq!(terminal.take_output(), b"$CCICA,0,00*7B\r\n");
        assert_eq!(terminal.next_deadline(), Some(t0 + Duration::from_secs(2)));
        terminal.poll(t0 + Duration::from_secs(2));
        assert_eq!(terminal.take_output(), b"$CCICA,0,00*7B\r\n");

        terminal.on_bytes(ICI, t0 + Duration::from_secs(3));
        assert!(terminal.is_up());
        assert_eq!(terminal.capacity(), Some(78));
        assert_eq!(
            terminal.drain_events(),
            vec![BearerEvent::Up {
                identity: "0166166".into()
            }]
        );
        assert_eq!(terminal.take_output(), b"$CCRMO,BSI,2,10*17\r\n");
        assert_eq!(
            terminal.next_deadline(),
            Some(t0 + Duration::from_secs(3) + SILENCE_LIMIT + Duration::from_millis(1)),
            "only the silence watch"
        );
        // Three messages of 78 bytes each take two service intervals after the first.
        assert_eq!(
            terminal.time_for(3 * 78),
            Duration::from_secs(80) + Duration::from_secs(2)
        );
    }

    #[test]
    fn messages_go_one_per_service_interval_urgent_first() {
        let t0 = Instant::now();
        let mut terminal = BeidouTerminal::new(BeidouDialect::V21, TerminalTiming::default(), t0);
        terminal
            .enqueue(report(1, Urgency::Normal, "灾情：道路中断"), t0)
            .expect("fits");
        terminal
            .enqueue(report(2, Urgency::Urgent, "红色预警"), t0)
            .expect("fits");
        terminal.take_output();
        // The card answers: the first send goes at once, the urgent one.
        terminal.on_bytes(ICI, t0);
        let first = terminal.take_output();
        assert_eq!(txa_count(&first), 1);
        let at = first
            .windows(6)
            .position(|w| w == b"$CCTXA")
            .expect("a send");
        assert!(
            first[at..].starts_with(b"$CCTXA,0247718,0,0,"),
            "urgent goes first, urgently"
        );

        terminal.on_bytes(&fki(true, 40), t0 + Duration::from_secs(1));
        assert_eq!(sent_ids(&terminal.drain_events()), vec![2]);
        assert_eq!(terminal.take_output(), b"", "the next waits the interval");
        let next = t0 + Duration::from_secs(41);
        terminal.on_bytes(BSI, next - Duration::from_secs(5));
        assert_eq!(terminal.next_deadline(), Some(next));
        terminal.poll(next - Duration::from_millis(1));
        assert_eq!(terminal.take_output(), b"");
        terminal.poll(next);
        assert!(terminal.take_output().starts_with(b"$CCTXA,0247718,1,0,"));
    }

    #[test]
    fn a_refusal_waits_the_seconds_the_terminal_names_and_sends_the_same_message_again() {
        let t0 = Instant::now();
        let mut terminal = BeidouTerminal::new(BeidouDialect::V21, TerminalTiming::default(), t0);
        terminal.on_bytes(ICI, t0);
        terminal.take_output();
        terminal
            .enqueue(report(7, Urgency::Normal, "test"), t0)
            .expect("fits");
        terminal.poll(t0);
        let first = terminal.take_output();
        terminal.on_bytes(&fki(false, 58), t0 + Duration::from_secs(1));
        terminal.on_bytes(BSI, t0 + Duration::from_secs(50));
        assert_eq!(terminal.counters().refusals, 1);
        assert_eq!(terminal.next_deadline(), Some(t0 + Duration::from_secs(59)));
        terminal.poll(t0 + Duration::from_secs(59));
        assert_eq!(terminal.take_output(), first, "the same sentence again");
        assert_eq!(terminal.queued().len(), 1);
    }

    #[test]
    fn no_feedback_resends_after_the_interval_and_three_silences_put_the_terminal_down() {
        let t0 = Instant::now();
        let timing = TerminalTiming::default();
        let mut terminal = BeidouTerminal::new(BeidouDialect::V21, timing, t0);
        terminal.on_bytes(ICI, t0);
        terminal.drain_events();
        terminal.take_output();
        terminal
            .enqueue(report(9, Urgency::Normal, "test"), t0)
            .expect("fits");
        let mut sent = t0;
        for round in 0..3 {
            assert_eq!(txa_count(&terminal.take_output()), 1, "round {round}");
            let timed_out = sent + timing.feedback_timeout;
            terminal.on_bytes(BSI, timed_out - Duration::from_secs(1));
            terminal.poll(timed_out);
            if round < 2 {
                // Resent only after the service interval: the first may have gone.
                assert_eq!(terminal.take_output(), b"");
                sent = timed_out + Duration::from_secs(40);
                terminal.on_bytes(BSI, sent - Duration::from_secs(1));
                terminal.poll(sent);
            }
        }
        assert_eq!(terminal.counters().feedback_timeouts, 3);
        assert!(!terminal.is_up());
        assert!(
            terminal
                .drain_events()
                .iter()
                .any(|e| matches!(e, BearerEvent::Down { .. }))
        );
        assert_eq!(terminal.queued().len(), 1, "the message is kept");
        assert!(terminal.take_output().ends_with(b"$CCICA,0,00*7B\r\n"));
    }

    #[test]
    fn a_terminal_that_goes_silent_is_down_and_probed_again() {
        let t0 = Instant::now();
        let mut terminal = BeidouTerminal::new(BeidouDialect::V21, TerminalTiming::default(), t0);
        terminal.on_bytes(ICI, t0);
        terminal.drain_events();
        terminal.take_output();
        assert_eq!(
            terminal.next_deadline(),
            Some(t0 + SILENCE_LIMIT + Duration::from_millis(1))
        );
        terminal.poll(t0 + SILENCE_LIMIT + Duration::from_millis(1));
        assert!(!terminal.is_up());
        assert_eq!(
            terminal.drain_events(),
            vec![BearerEvent::Down {
                reason: "the terminal has gone silent".into()
            }]
        );
        assert_eq!(terminal.take_output(), b"$CCICA,0,00*7B\r\n");
    }

    #[test]
    fn a_message_too_long_for_the_card_is_refused_and_a_received_one_is_decoded() {
        let t0 = Instant::now();
        let mut terminal = BeidouTerminal::new(BeidouDialect::V21, TerminalTiming::default(), t0);
        terminal.on_bytes(ICI, t0);
        let long = Outgoing {
            id: 3,
            to: "0247718".into(),
            urgency: Urgency::Normal,
            body: Body::Bytes(vec![0; 79]),
        };
        assert_eq!(
            terminal.enqueue(long, t0),
            Err(QueueError::TooLong {
                id: 3,
                needed: 79,
                capacity: 78
            })
        );
        terminal.drain_events();
        terminal.on_bytes(
            b"$BDTXR,1,0179773,2,,A468656C6C6F*43\r\n$BDBSI,01,03,3,2,2,0,3,0,0,3,0,0*5F\r\n",
            t0,
        );
        assert_eq!(
            terminal.drain_events(),
            vec![
                BearerEvent::Received {
                    from: "0179773".into(),
                    body: Body::Bytes(b"hello".to_vec())
                },
                BearerEvent::Signal { level: 3 }
            ]
        );
    }

    fn bds3_line(kind: &str, fields: &[&str]) -> Vec<u8> {
        super::super::nmea::Sentence {
            talker: "BD".into(),
            kind: kind.into(),
            fields: fields.iter().map(|f| f.as_bytes().to_vec()).collect(),
        }
        .encode()
    }

    fn icp() -> Vec<u8> {
        bds3_line(
            "ICP",
            &["15950044", "0", "2097151", "6", "30", "3", "N", "0"],
        )
    }

    #[test]
    fn auto_probes_bds3_then_2_1_then_4_0_and_speaks_the_dialect_that_answers() {
        let t0 = Instant::now();
        let every = TerminalTiming::default().probe_every;
        let mut terminal = BeidouTerminal::new(BeidouDialect::Auto, TerminalTiming::default(), t0);
        assert!(terminal.take_output().starts_with(b"$CCICR,0,00*"));
        terminal.poll(t0 + every);
        assert_eq!(terminal.take_output(), b"$CCICA,0,00*7B\r\n");
        terminal.poll(t0 + every * 2);
        assert_eq!(terminal.take_output(), bd1::card_info(0).encode());
        terminal.poll(t0 + every * 3);
        assert!(terminal.take_output().starts_with(b"$CCICR"), "round again");

        // A 4.0 card answers: frames from now on, addressed from the card.
        let card = bd1::Frame::new(b"ICXX", 0x028A1F, vec![0, 0, 0, 11, 6, 0, 60, 3, 0, 0, 0]);
        terminal.on_bytes(&card.encode(), t0 + every * 3);
        assert_eq!(terminal.dialect(), Some(BeidouDialect::Bd1));
        assert_eq!(
            terminal.drain_events(),
            vec![BearerEvent::Up {
                identity: "166431".into()
            }]
        );
        terminal
            .enqueue(
                Outgoing {
                    id: 1,
                    to: "246006".into(),
                    urgency: Urgency::Urgent,
                    body: Body::Bytes(b"hello".to_vec()),
                },
                t0 + every * 3,
            )
            .expect("fits");
        assert_eq!(
            terminal.take_output(),
            bd1::send(0x028A1F, 246006, true, b"hello").encode()
        );
    }

    #[test]
    fn a_4_0_rate_refusal_waits_its_seconds_and_a_received_frame_is_decoded() {
        let t0 = Instant::now();
        let mut terminal = BeidouTerminal::new(BeidouDialect::Bd1, TerminalTiming::default(), t0);
        let card = bd1::Frame::new(b"ICXX", 0x028A1F, vec![0, 0, 0, 11, 6, 0, 60, 3, 0, 0, 0]);
        terminal.on_bytes(&card.encode(), t0);
        terminal.take_output();
        terminal.drain_events();
        terminal
            .enqueue(report(4, Urgency::Normal, "道路中断"), t0)
            .expect("fits");
        let first = terminal.take_output();
        let rate = bd1::Frame::new(b"FKXX", 0x028A1F, vec![4, 0, 0, 0, 20]);
        terminal.on_bytes(&rate.encode(), t0 + Duration::from_secs(1));
        assert_eq!(
            terminal.next_deadline(),
            Some(t0 + Duration::from_secs(10)),
            "the keepalive"
        );
        terminal.poll(t0 + Duration::from_secs(10));
        assert_eq!(terminal.take_output(), bd1::card_info(0x028A1F).encode());
        terminal.on_bytes(&card.encode(), t0 + Duration::from_secs(11));
        terminal.poll(t0 + Duration::from_secs(21));
        assert!(
            terminal.take_output().ends_with(&first),
            "sent again after its 20 s, after the keepalive"
        );
        let done = bd1::Frame::new(b"FKXX", 0x028A1F, [&[0u8][..], b"TXSQ"].concat());
        terminal.on_bytes(&done.encode(), t0 + Duration::from_secs(22));
        let mut body = vec![bd1::category(false), 0x03, 0xC2, 0xF6, 14, 5, 0, 32];
        body.extend(payload::encode_chinese("收到").expect("GB2312"));
        body.push(0);
        let inbound = bd1::Frame::new(b"TXXX", 0x028A1F, body);
        terminal.on_bytes(&inbound.encode(), t0 + Duration::from_secs(23));
        assert_eq!(
            terminal.drain_events(),
            vec![
                BearerEvent::Sent { id: 4 },
                BearerEvent::Received {
                    from: "246518".into(),
                    body: Body::Text("收到".into())
                }
            ]
        );
    }

    #[test]
    fn bds3_sends_tcq_a_passing_refusal_waits_the_interval_and_no_permission_fails() {
        let t0 = Instant::now();
        let mut terminal = BeidouTerminal::new(BeidouDialect::Auto, TerminalTiming::default(), t0);
        terminal.on_bytes(&icp(), t0);
        assert_eq!(terminal.dialect(), Some(BeidouDialect::Bds3));
        terminal.take_output();
        terminal
            .enqueue(report(1, Urgency::Urgent, "红色预警"), t0)
            .expect("fits");
        let first = terminal.take_output();
        assert!(
            first.starts_with(b"$CCTCQ,0247718,2,2,1,"),
            "{}",
            String::from_utf8_lossy(&first)
        );
        terminal.on_bytes(
            &bds3_line("FKI", &["101502", "TCQ", "N", "2", "0"]),
            t0 + Duration::from_secs(1),
        );
        terminal.on_bytes(
            &bds3_line("PWI", &["101510", "1", "3", "2"]),
            t0 + Duration::from_secs(9),
        );
        assert_eq!(
            terminal.next_deadline(),
            Some(t0 + Duration::from_secs(31)),
            "suppressed: the 30 s interval"
        );
        terminal.poll(t0 + Duration::from_secs(31));
        assert_eq!(terminal.take_output(), first);
        terminal.on_bytes(
            &bds3_line("FKI", &["101533", "TCQ", "N", "6", "0"]),
            t0 + Duration::from_secs(32),
        );
        let events = terminal.drain_events();
        assert!(
            events.iter().any(|e| matches!(e, BearerEvent::Failed { id: 1, reason } if reason.contains("not permitted"))),
            "{events:?}"
        );
        assert!(events.contains(&BearerEvent::Signal { level: 2 }));
    }

    #[test]
    fn a_text_longer_than_one_message_goes_in_numbered_parts_one_per_interval() {
        let t0 = Instant::now();
        let mut terminal = BeidouTerminal::new(BeidouDialect::V21, TerminalTiming::default(), t0);
        terminal.on_bytes(ICI, t0);
        terminal.take_output();
        terminal.drain_events();
        // 44 Chinese characters fit a comm level 3 message; 100 need three parts.
        let text = "山洪预警请沿河村民立即转移到高处安全地带".repeat(5);
        terminal
            .enqueue(report(5, Urgency::Urgent, &text), t0)
            .expect("splits");
        let mut bodies = String::new();
        let mut at = t0;
        for part in 1..=3 {
            let out = terminal.take_output();
            let sentence = super::super::nmea::Sentence::parse(out.trim_ascii_end()).expect("TXA");
            let field = payload::decode_chinese(&sentence.fields[3]).expect("GB2312");
            assert!(payload::check_fits(MessageForm::Chinese, &sentence.fields[3], 3).is_ok());
            let (lead, body) = field.split_once(' ').expect("a lead");
            assert_eq!(lead, format!("{part}/3"));
            bodies.push_str(body);
            terminal.on_bytes(&fki(true, 0), at + Duration::from_secs(1));
            let sent = sent_ids(&terminal.drain_events());
            assert_eq!(
                sent,
                if part == 3 { vec![5] } else { vec![] },
                "part {part}"
            );
            at += Duration::from_secs(41);
            terminal.on_bytes(BSI, at - Duration::from_secs(1));
            terminal.poll(at);
        }
        assert_eq!(bodies, text);
        assert!(terminal.queued().is_empty());
    }

    #[test]
    fn a_message_that_comes_while_probing_is_not_lost() {
        let t0 = Instant::now();
        let mut terminal = BeidouTerminal::new(BeidouDialect::Auto, TerminalTiming::default(), t0);
        terminal.on_bytes(b"$BDTXR,1,0179773,2,,A468656C6C6F*43\r\n", t0);
        assert_eq!(
            terminal.drain_events(),
            vec![BearerEvent::Received {
                from: "0179773".into(),
                body: Body::Bytes(b"hello".to_vec())
            }]
        );
    }

    #[test]
    fn refusals_are_counted_per_message_so_an_alert_does_not_inherit_a_reports_count() {
        let t0 = Instant::now();
        let mut terminal = BeidouTerminal::new(BeidouDialect::V21, TerminalTiming::default(), t0);
        terminal.on_bytes(ICI, t0);
        terminal
            .enqueue(report(1, Urgency::Normal, "灾情报告"), t0)
            .expect("fits");
        let mut now = t0;
        for round in 1..MAX_REFUSALS {
            terminal.take_output();
            terminal.on_bytes(&fki(false, 1), now);
            if round == MAX_REFUSALS - 1 {
                // An alert comes while the report waits after its 29th refusal.
                terminal
                    .enqueue(report(2, Urgency::Urgent, "红色预警"), now)
                    .expect("fits");
            }
            now += Duration::from_secs(41);
            terminal.on_bytes(BSI, now - Duration::from_secs(1));
            terminal.poll(now);
        }
        let out = terminal.take_output();
        assert!(
            out.starts_with(b"$CCTXA,0247718,0,"),
            "the alert goes first: {}",
            String::from_utf8_lossy(&out)
        );
        terminal.on_bytes(&fki(false, 1), now);
        assert!(
            !terminal
                .drain_events()
                .iter()
                .any(|e| matches!(e, BearerEvent::Failed { .. })),
            "the alert's first refusal fails nothing"
        );
        assert_eq!(terminal.queued().len(), 2);
    }

    fn txa_fki(done: bool, rate_ok: bool, suppression: u8, wait: u32) -> Vec<u8> {
        let yes = |b: bool| if b { b"Y".to_vec() } else { b"N".to_vec() };
        super::super::nmea::Sentence {
            talker: "BD".into(),
            kind: "FKI".into(),
            fields: vec![
                b"TXA".to_vec(),
                yes(done),
                yes(rate_ok),
                suppression.to_string().into_bytes(),
                format!("{wait:04}").into_bytes(),
            ],
        }
        .encode()
    }

    /// A 2.1 terminal up with the 40 s card, a report queued and its first send out.
    fn sending_2_1(t0: Instant) -> (BeidouTerminal, Vec<u8>) {
        let mut terminal = BeidouTerminal::new(BeidouDialect::V21, TerminalTiming::default(), t0);
        terminal.on_bytes(ICI, t0);
        terminal.take_output();
        terminal.drain_events();
        terminal
            .enqueue(report(1, Urgency::Normal, "灾情报告"), t0)
            .expect("fits");
        let first = terminal.take_output();
        assert_eq!(txa_count(&first), 1);
        (terminal, first)
    }

    #[test]
    fn a_message_refused_thirty_times_in_a_row_fails_and_the_next_goes() {
        let t0 = Instant::now();
        let (mut terminal, first) = sending_2_1(t0);
        terminal
            .enqueue(report(2, Urgency::Normal, "下一条"), t0)
            .expect("fits");
        let mut now = t0;
        for round in 1..=MAX_REFUSALS {
            terminal.on_bytes(&txa_fki(false, true, 0, 0), now);
            let events: Vec<BearerEvent> = terminal
                .drain_events()
                .into_iter()
                .filter(|e| !matches!(e, BearerEvent::Signal { .. }))
                .collect();
            if round < MAX_REFUSALS {
                assert!(events.is_empty(), "round {round}: {events:?}");
                now += Duration::from_secs(40);
                terminal.on_bytes(BSI, now);
                terminal.poll(now);
                assert_eq!(
                    terminal.take_output(),
                    first,
                    "round {round}: the same again"
                );
            } else {
                assert_eq!(
                    events,
                    vec![BearerEvent::Failed {
                        id: 1,
                        reason: "refused 30 times by the terminal".into()
                    }]
                );
            }
        }
        assert_eq!(terminal.counters().refusals, u64::from(MAX_REFUSALS));
        let next = terminal.take_output();
        assert!(
            next.starts_with(b"$CCTXA,0247718,1,0,"),
            "{}",
            String::from_utf8_lossy(&next)
        );
        assert_eq!(terminal.queued().len(), 1);
    }

    #[test]
    fn a_2_1_suppression_refusal_waits_the_service_interval_and_sends_the_same_again() {
        let t0 = Instant::now();
        let (mut terminal, first) = sending_2_1(t0);
        // Not done, rate OK, suppression 2, nothing to wait.
        terminal.on_bytes(&txa_fki(false, true, 2, 0), t0 + Duration::from_secs(1));
        assert_eq!(terminal.counters().refusals, 1);
        assert!(terminal.drain_events().is_empty(), "nothing failed");
        terminal.on_bytes(BSI, t0 + Duration::from_secs(30));
        assert_eq!(
            terminal.next_deadline(),
            Some(t0 + Duration::from_secs(41)),
            "the card's 40 s"
        );
        terminal.poll(t0 + Duration::from_secs(41));
        assert_eq!(terminal.take_output(), first);
    }

    /// A BDS-3 module up with a 30 s card, an alert queued and its first send out.
    fn sending_bds3(t0: Instant) -> (BeidouTerminal, Vec<u8>) {
        let mut terminal = BeidouTerminal::new(BeidouDialect::Bds3, TerminalTiming::default(), t0);
        terminal.on_bytes(&icp(), t0);
        terminal.take_output();
        terminal.drain_events();
        terminal
            .enqueue(report(1, Urgency::Urgent, "红色预警"), t0)
            .expect("fits");
        let first = terminal.take_output();
        assert!(first.starts_with(b"$CCTCQ"));
        (terminal, first)
    }

    #[test]
    fn bds3_silence_and_power_not_locked_wait_the_interval_and_no_ic_module_fails() {
        for reason in ["3", "4"] {
            let t0 = Instant::now();
            let (mut terminal, first) = sending_bds3(t0);
            terminal.on_bytes(
                &bds3_line("FKI", &["101502", "TCQ", "N", reason, "0"]),
                t0 + Duration::from_secs(1),
            );
            assert!(terminal.drain_events().is_empty(), "reason {reason}");
            assert_eq!(terminal.counters().refusals, 1);
            assert_eq!(
                terminal.next_deadline(),
                Some(t0 + Duration::from_secs(31)),
                "reason {reason}: the 30 s interval"
            );
            terminal.on_bytes(
                &bds3_line("PWI", &["101520", "1", "3", "2"]),
                t0 + Duration::from_secs(20),
            );
            terminal.poll(t0 + Duration::from_secs(31));
            assert_eq!(terminal.take_output(), first, "reason {reason}");
        }
        let t0 = Instant::now();
        let (mut terminal, _) = sending_bds3(t0);
        terminal.on_bytes(
            &bds3_line("FKI", &["101502", "TCQ", "N", "5", "0"]),
            t0 + Duration::from_secs(1),
        );
        assert_eq!(
            terminal.drain_events(),
            vec![BearerEvent::Failed {
                id: 1,
                reason: "refused by the module: no IC module".into()
            }]
        );
        assert!(terminal.queued().is_empty());
    }

    /// A 4.0 terminal up with the 60 s card at 0x028A1F, a report queued and its send out.
    fn sending_4_0(t0: Instant) -> (BeidouTerminal, Vec<u8>) {
        let mut terminal = BeidouTerminal::new(BeidouDialect::Bd1, TerminalTiming::default(), t0);
        let card = bd1::Frame::new(b"ICXX", 0x028A1F, vec![0, 0, 0, 11, 6, 0, 60, 3, 0, 0, 0]);
        terminal.on_bytes(&card.encode(), t0);
        terminal.take_output();
        terminal.drain_events();
        terminal
            .enqueue(report(1, Urgency::Normal, "道路中断"), t0)
            .expect("fits");
        let first = terminal.take_output();
        (terminal, first)
    }

    fn fkxx(flag: u8) -> Vec<u8> {
        bd1::Frame::new(b"FKXX", 0x028A1F, [&[flag][..], b"TXSQ"].concat()).encode()
    }

    #[test]
    fn a_4_0_failure_no_signal_low_battery_crc_and_suppression_wait_the_interval() {
        for flag in [1, 2, 3, 6, 7] {
            let t0 = Instant::now();
            let (mut terminal, first) = sending_4_0(t0);
            terminal.on_bytes(&fkxx(flag), t0 + Duration::from_secs(1));
            assert!(terminal.drain_events().is_empty(), "flag {flag}");
            assert_eq!(terminal.counters().refusals, 1, "flag {flag}");
            assert_eq!(terminal.queued().len(), 1, "flag {flag}: kept");
            // The keepalives at 10 s, 20 s, … come before the card's 60 s.
            let mut at = t0;
            while at < t0 + Duration::from_secs(61) {
                at = terminal.next_deadline().expect("a deadline");
                terminal.poll(at);
                let out = terminal.take_output();
                if out.ends_with(&first) {
                    break;
                }
                terminal.on_bytes(
                    &bd1::Frame::new(b"ICXX", 0x028A1F, vec![0, 0, 0, 11, 6, 0, 60, 3, 0, 0, 0])
                        .encode(),
                    at,
                );
            }
            assert_eq!(
                at,
                t0 + Duration::from_secs(61),
                "flag {flag}: sent again at 61 s"
            );
        }
    }

    #[test]
    fn a_4_0_crypto_fault_fails_the_message_and_suppression_lifted_is_no_answer() {
        let t0 = Instant::now();
        let (mut terminal, _) = sending_4_0(t0);
        terminal.on_bytes(&fkxx(8), t0 + Duration::from_secs(1));
        assert!(terminal.drain_events().is_empty());
        assert_eq!(terminal.counters().refusals, 0);
        assert_eq!(terminal.queued().len(), 1, "still waiting for its feedback");
        terminal.on_bytes(&fkxx(5), t0 + Duration::from_secs(2));
        assert_eq!(
            terminal.drain_events(),
            vec![BearerEvent::Failed {
                id: 1,
                reason: "refused by the terminal: encryption fault".into()
            }]
        );
        assert!(terminal.queued().is_empty());
    }

    fn fault(terminal: &BeidouTerminal, kind: &str) -> u64 {
        terminal
            .faults()
            .into_iter()
            .find(|(k, _)| *k == kind)
            .unwrap_or_else(|| panic!("{kind} is reported"))
            .1
    }

    #[test]
    fn faults_report_garbage_overlong_lines_and_payloads_that_do_not_decode() {
        let t0 = Instant::now();
        let mut terminal = BeidouTerminal::new(BeidouDialect::V21, TerminalTiming::default(), t0);
        terminal.on_bytes(ICI, t0);
        // Noise before a sentence, a line past the longest sentence, and a message in
        // code form whose payload is not hex.
        terminal.on_bytes(b"~~~~~", t0);
        terminal.on_bytes(BSI, t0);
        terminal.on_bytes(&[b'A'; super::super::nmea::MAX_LINE + 10], t0);
        terminal.on_bytes(b"\r\n", t0);
        let not_hex = super::super::nmea::Sentence {
            talker: "BD".into(),
            kind: "TXR".into(),
            fields: vec![
                b"1".to_vec(),
                b"0179773".to_vec(),
                b"1".to_vec(),
                Vec::new(),
                b"3G3H".to_vec(),
            ],
        };
        terminal.on_bytes(&not_hex.encode(), t0);
        assert!(
            !terminal
                .drain_events()
                .iter()
                .any(|e| matches!(e, BearerEvent::Received { .. }))
        );
        assert_eq!(fault(&terminal, "bytes outside any sentence"), 5);
        assert_eq!(fault(&terminal, "lines too long for a sentence"), 1);
        assert_eq!(fault(&terminal, "messages that did not decode"), 1);
        assert_eq!(fault(&terminal, "sentences or frames with bad fields"), 0);
    }

    #[test]
    fn faults_report_4_0_noise_impossible_lengths_and_text_that_is_not_gb2312() {
        let t0 = Instant::now();
        let mut terminal = BeidouTerminal::new(BeidouDialect::Bd1, TerminalTiming::default(), t0);
        let card = bd1::Frame::new(b"ICXX", 0x028A1F, vec![0, 0, 0, 11, 6, 0, 60, 3, 0, 0, 0]);
        terminal.on_bytes(&card.encode(), t0);
        // Three bytes of noise, then a `$` and a command whose length field says 2.
        terminal.on_bytes(&[0x00, 0x11, 0x22], t0);
        terminal.on_bytes(b"$TXXX\x00\x02", t0);
        // Chinese category, but 0xFF 0xFF is no GB2312 character.
        let mut body = vec![bd1::category(false), 0x03, 0xC2, 0xF6, 14, 5, 0, 16];
        body.extend([0xFF, 0xFF, 0]);
        terminal.on_bytes(&bd1::Frame::new(b"TXXX", 0x028A1F, body).encode(), t0);
        assert!(
            !terminal
                .drain_events()
                .iter()
                .any(|e| matches!(e, BearerEvent::Received { .. }))
        );
        assert_eq!(fault(&terminal, "bytes outside any frame"), 3 + 6);
        assert_eq!(fault(&terminal, "frames with an impossible length"), 1);
        assert_eq!(fault(&terminal, "messages that did not decode"), 1);
        assert_eq!(terminal.counters().bad_payloads, 1);
    }

    #[test]
    fn bytes_go_in_mixed_form_when_asked_and_count_the_marker() {
        let t0 = Instant::now();
        let mut terminal = BeidouTerminal::new(BeidouDialect::V21, TerminalTiming::default(), t0)
            .send_bytes_mixed(true);
        terminal.on_bytes(ICI, t0);
        terminal.take_output();
        let message = |id, n| Outgoing {
            id,
            to: "0247718".into(),
            urgency: Urgency::Normal,
            body: Body::Bytes(vec![0x2A; n]),
        };
        terminal.enqueue(message(1, 3), t0).expect("fits");
        assert!(
            terminal
                .take_output()
                .starts_with(b"$CCTXA,0247718,1,2,A42A2A2A*")
        );
        // 78 code bytes fill a comm level 3 message; with the marker they do not.
        assert!(matches!(
            terminal.enqueue(message(2, 78), t0),
            Err(QueueError::TooLong { .. })
        ));
    }
}
