//! A BeiDou RDSS terminal speaking the 2.1 dialect, as a [`Bearer`]: sans-IO.
//!
//! At start it asks for the card (`$CCICA`) every probe interval until the terminal
//! answers with `$BDICI`; then it is up, asks for beam status every 10 s (`$CCRMO`) and
//! reports the strongest beam as the link's signal. Messages go one at a time
//! (`$CCTXA`), each waiting for the terminal's `$BDFKI`:
//!
//! * done: the message is sent; the next waits the card's service interval, or the
//!   seconds the terminal names if longer;
//! * refused: the message goes back to the front of its class and waits the seconds the
//!   terminal names (at least one), so an early send costs one refusal, not a loop;
//! * no answer within the feedback time-out: sent again; after three in a row the
//!   terminal counts as down and is probed again.
//!
//! Text goes in Chinese form (GB2312), bytes in code form (hex). A message longer than
//! the card's comm level allows is refused at [`Bearer::enqueue`] once the card is known,
//! and failed at its turn if it was queued before.

use std::time::{Duration, Instant};

use super::nmea::{CardInfo, Inbound, MessageForm, SentenceReader, host};
use super::payload::{self, Content};
use crate::satellite::bearer::{Bearer, BearerEvent, Body, Outgoing, PriorityQueue, QueueError};

/// Timing of the terminal driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TerminalTiming {
    /// How often the card is asked for until the terminal answers.
    pub probe_every: Duration,
    /// How long a `$CCTXA` waits for its `$BDFKI`.
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
/// Refusals of one message after which it fails (no signal, suppression, for minutes).
const MAX_REFUSALS: u32 = 30;
/// Silence after which a terminal that was up counts as gone: it reports its beams
/// every 10 s.
const SILENCE_LIMIT: Duration = Duration::from_secs(35);
/// The longest wait a terminal may name: a larger one is taken as this.
const MAX_WAIT: Duration = Duration::from_secs(3600);

/// Faults seen, by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TerminalCounters {
    pub refusals: u64,
    pub feedback_timeouts: u64,
    /// Sentences whose fields did not fit their layout.
    pub bad_fields: u64,
    /// Messages received whose payload did not decode.
    pub bad_payloads: u64,
}

/// The driver; see the [module](self) notes.
#[derive(Debug)]
pub struct Beidou21 {
    timing: TerminalTiming,
    reader: SentenceReader,
    out: Vec<u8>,
    events: Vec<BearerEvent>,
    card: Option<CardInfo>,
    queue: PriorityQueue,
    /// The message sent and waiting for its feedback, and when it went.
    awaiting: Option<(Outgoing, Instant)>,
    next_send_at: Option<Instant>,
    next_probe: Option<Instant>,
    timeouts: u32,
    /// Refusals of the message at the front.
    refusals: u32,
    last_heard: Option<Instant>,
    signal: Option<u8>,
    counters: TerminalCounters,
}

impl Beidou21 {
    /// A driver that starts probing at `now`.
    pub fn new(timing: TerminalTiming, now: Instant) -> Beidou21 {
        let mut driver = Beidou21 {
            timing,
            reader: SentenceReader::new(),
            out: Vec::new(),
            events: Vec::new(),
            card: None,
            queue: PriorityQueue::default(),
            awaiting: None,
            next_send_at: None,
            next_probe: None,
            timeouts: 0,
            refusals: 0,
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

    pub fn counters(&self) -> TerminalCounters {
        self.counters
    }

    /// The sentence reader's counts of bad checksums, garbage and oversized lines.
    pub fn reader_counters(&self) -> super::nmea::ReaderCounters {
        self.reader.counters()
    }

    fn probe(&mut self, now: Instant) {
        self.out.extend(host::card_info().encode());
        self.next_probe = Some(now + self.timing.probe_every);
    }

    fn on_card(&mut self, card: CardInfo) {
        if self.card.is_none() {
            self.out.extend(host::output("BSI", 2, 10).encode());
            self.events.push(BearerEvent::Up {
                identity: card.id.clone(),
            });
        }
        self.next_probe = None;
        self.timeouts = 0;
        self.card = Some(card);
    }

    fn on_feedback(&mut self, feedback: super::nmea::Feedback, now: Instant) {
        if feedback.command != "TXA" {
            return;
        }
        let Some((message, _)) = self.awaiting.take() else {
            return;
        };
        self.timeouts = 0;
        let interval = self.interval();
        let wait = feedback.wait.min(MAX_WAIT);
        if feedback.done {
            self.refusals = 0;
            self.events.push(BearerEvent::Sent { id: message.id });
            self.next_send_at = Some(now + wait.max(interval));
        } else {
            self.counters.refusals += 1;
            self.refusals += 1;
            if self.refusals >= MAX_REFUSALS {
                // No signal or suppression for this long: report it, do not loop on it.
                self.refusals = 0;
                self.events.push(BearerEvent::Failed {
                    id: message.id,
                    reason: format!("refused {MAX_REFUSALS} times by the terminal"),
                });
                return;
            }
            self.requeue_front(message);
            self.next_send_at = Some(now + wait.max(Duration::from_secs(1)));
        }
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

    fn on_received(&mut self, received: super::nmea::Received) {
        match payload::decode(received.form, &received.payload) {
            Ok(content) => self.events.push(BearerEvent::Received {
                from: received.from,
                body: match content {
                    Content::Text(t) => Body::Text(t),
                    Content::Bytes(b) => Body::Bytes(b),
                },
            }),
            Err(_) => self.counters.bad_payloads += 1,
        }
    }

    fn field(message: &Outgoing) -> Result<(MessageForm, Vec<u8>), String> {
        let (form, content) = match &message.body {
            Body::Text(t) => (MessageForm::Chinese, Content::Text(t.clone())),
            Body::Bytes(b) => (MessageForm::Code, Content::Bytes(b.clone())),
        };
        payload::encode(form, &content)
            .map(|field| (form, field))
            .map_err(|e| e.to_string())
    }

    fn send_next(&mut self, now: Instant) {
        let Some(card) = &self.card else {
            return;
        };
        if self.awaiting.is_some() || self.next_send_at.is_some_and(|at| now < at) {
            return;
        }
        let level = card.comm_level;
        while let Some(message) = self.queue.pop() {
            let fits = Self::field(&message).and_then(|(form, field)| {
                payload::check_fits(form, &field, level)
                    .map(|()| (form, field))
                    .map_err(|e| e.to_string())
            });
            match fits {
                Ok((form, field)) => {
                    let urgent = message.urgency == crate::satellite::bearer::Urgency::Urgent;
                    self.out
                        .extend(host::send(&message.to, urgent, form, field).encode());
                    self.awaiting = Some((message, now));
                    return;
                }
                Err(reason) => self.events.push(BearerEvent::Failed {
                    id: message.id,
                    reason,
                }),
            }
        }
    }
}

impl Bearer for Beidou21 {
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
        let field = Self::field(&message).map_err(|reason| QueueError::Unsendable {
            id: message.id,
            reason,
        })?;
        if let Some(card) = &self.card
            && payload::check_fits(field.0, &field.1, card.comm_level).is_err()
        {
            return Err(QueueError::TooLong {
                id: message.id,
                needed: message.body.len(),
                capacity: card.capacity_bits() as usize / 8,
            });
        }
        self.queue.push(message);
        self.send_next(now);
        Ok(())
    }

    fn queued(&self) -> Vec<Outgoing> {
        let awaiting = self.awaiting.iter().map(|(m, _)| m.clone());
        awaiting.chain(self.queue.iter().cloned()).collect()
    }

    fn on_bytes(&mut self, bytes: &[u8], now: Instant) {
        for sentence in self.reader.push(bytes).into_iter().flatten() {
            self.last_heard = Some(now);
            match Inbound::read(&sentence) {
                Ok(Inbound::CardInfo(card)) => self.on_card(card),
                Ok(Inbound::Feedback(feedback)) => self.on_feedback(feedback, now),
                Ok(Inbound::Received(received)) => self.on_received(received),
                Ok(Inbound::Beam(beam)) => {
                    let level = beam.best();
                    if self.signal != Some(level) {
                        self.signal = Some(level);
                        self.events.push(BearerEvent::Signal { level });
                    }
                }
                Ok(Inbound::Other(_)) => {}
                Err(_) => self.counters.bad_fields += 1,
            }
        }
        self.send_next(now);
    }

    fn poll(&mut self, now: Instant) {
        if self.next_probe.is_some_and(|at| now >= at) {
            self.probe(now);
        }
        if self.card.is_some()
            && self
                .last_heard
                .is_some_and(|heard| now.saturating_duration_since(heard) > SILENCE_LIMIT)
        {
            self.card = None;
            self.events.push(BearerEvent::Down {
                reason: "the terminal has gone silent".into(),
            });
            self.probe(now);
        }
        if let Some((_, sent)) = &self.awaiting
            && now >= *sent + self.timing.feedback_timeout
        {
            if let Some((message, _)) = self.awaiting.take() {
                self.requeue_front(message);
            }
            // The send may have gone with only its feedback lost: wait the interval
            // before sending again, or the terminal refuses it and then sends it twice.
            self.next_send_at = Some(now + self.interval());
            self.counters.feedback_timeouts += 1;
            self.timeouts += 1;
            if self.timeouts >= MAX_TIMEOUTS && self.card.take().is_some() {
                self.events.push(BearerEvent::Down {
                    reason: "the terminal does not answer".into(),
                });
                self.probe(now);
            }
        }
        self.send_next(now);
    }

    fn next_deadline(&self) -> Option<Instant> {
        let feedback = self
            .awaiting
            .as_ref()
            .map(|(_, sent)| *sent + self.timing.feedback_timeout);
        let send = (!self.queue.is_empty() && self.awaiting.is_none() && self.card.is_some())
            .then_some(self.next_send_at)
            .flatten();
        let silence = self
            .card
            .as_ref()
            .and(self.last_heard)
            .map(|heard| heard + SILENCE_LIMIT + Duration::from_millis(1));
        [self.next_probe, feedback, send, silence]
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::satellite::bearer::Urgency;

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
    fn it_probes_until_the_card_answers_then_is_up_with_its_capacity() {
        let t0 = Instant::now();
        let mut terminal = Beidou21::new(TerminalTiming::default(), t0);
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
        let mut terminal = Beidou21::new(TerminalTiming::default(), t0);
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
        let mut terminal = Beidou21::new(TerminalTiming::default(), t0);
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
        let mut terminal = Beidou21::new(timing, t0);
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
        let mut terminal = Beidou21::new(TerminalTiming::default(), t0);
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
        let mut terminal = Beidou21::new(TerminalTiming::default(), t0);
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
}
