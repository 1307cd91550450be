//! One terminal across the openings of its serial port, without I/O: the caller
//! passes `now`.
//!
//! The loop the caller runs:
//!
//! 1. While the port is closed, open it when [`Session::open_due`]; say
//!    [`Session::opened`] or [`Session::lost`].
//! 2. While it is open, write [`Session::take_output`], feed what the terminal sends
//!    with [`Session::on_bytes`], [`Session::poll`] at [`Session::next_deadline`]; on a
//!    read or write error, or the end of the device, say [`Session::lost`].
//! 3. After each step, store what [`Session::drain_changes`] gives.
//!
//! Contract: every message given to [`Session::submit`] (or to [`Session::new`], from
//! the outbox) stays pending until the bearer says it was sent or failed. Each opening
//! builds a new bearer and gives it every pending message in the order they were
//! accepted, with their urgency; so a message whose confirmation was lost with the
//! device goes again (at least once, never silently dropped). A lost port is opened
//! again after a wait that doubles from [`FIRST_BACKOFF`] to [`MAX_BACKOFF`], and
//! starts again from the first once a port opens.

use std::time::{Duration, Instant};

use drivers::satellite::bearer::{Bearer, BearerEvent, Body, Outgoing, QueueError};
use drivers::satellite::{TerminalKind, bearer_for};

/// The first wait before opening a lost port again; it doubles up to [`MAX_BACKOFF`].
pub const FIRST_BACKOFF: Duration = Duration::from_millis(500);
pub const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// What happened that the outbox, the status or the journal should know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// The terminal answered and said what it is.
    Up {
        identity: String,
    },
    /// The terminal says it cannot send, or stopped answering (the port may be open).
    Down {
        reason: String,
    },
    Sent {
        id: u64,
    },
    /// The network reported the message reached its recipient.
    Delivered {
        id: u64,
    },
    Failed {
        id: u64,
        reason: String,
    },
    Received {
        from: String,
        body: Body,
    },
    /// The terminal's driver counted `new` more faults of `kind`, `total` in all.
    Faults {
        kind: &'static str,
        new: u64,
        total: u64,
    },
}

/// What the status page shows of a terminal.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Condition {
    /// The port is open.
    pub open: bool,
    /// The terminal answered on it and can send.
    pub up: bool,
    pub identity: Option<String>,
    /// 0 (none) to 4 (strong), once the terminal said.
    pub signal: Option<u8>,
    /// Bytes a message holds, once the terminal said.
    pub capacity: Option<usize>,
    /// Why the port or the terminal last went down.
    pub last_error: Option<String>,
    /// How long messages take to leave, once the terminal said.
    pub pacing: Option<Pacing>,
    /// The latest time the terminal's satellites gave (UTC), and the instant it was
    /// heard: a clock for a node cut off from NTP.
    pub satellite_time: Option<(chrono::DateTime<chrono::Utc>, Instant)>,
}

/// How long a terminal takes to send messages from the front of its queue: the first
/// after `first`, each one more after `each_more` (a BeiDou card's service interval,
/// an Iridium session).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pacing {
    pub first: Duration,
    pub each_more: Duration,
}

impl Pacing {
    /// The time until the last of `messages` has gone, behind `ahead` already queued.
    pub fn time_for(&self, ahead: usize, messages: usize) -> Duration {
        let more = u32::try_from(ahead + messages.saturating_sub(1)).unwrap_or(u32::MAX);
        self.first
            .saturating_add(self.each_more.saturating_mul(more))
    }
}

/// What [`Session::lost`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    pub after: Duration,
    /// The same reason as the last time: not worth another line in the journal.
    pub repeated: bool,
}

enum Port {
    Closed { retry_at: Instant },
    Open(Box<dyn Bearer + Send>),
}

/// One terminal; see the [module](self) notes.
pub struct Session {
    kind: TerminalKind,
    port: Port,
    backoff: Duration,
    /// Accepted, not yet sent or failed, in the order accepted.
    pending: Vec<Outgoing>,
    condition: Condition,
    changes: Vec<Change>,
    /// The fault counts last reported, by kind, of the bearer now open.
    faults: std::collections::BTreeMap<&'static str, u64>,
}

impl Session {
    /// A terminal whose port is to be opened now, with `pending` messages from the
    /// outbox in the order they were accepted.
    pub fn new(kind: TerminalKind, pending: Vec<Outgoing>, now: Instant) -> Session {
        Session {
            kind,
            port: Port::Closed { retry_at: now },
            backoff: FIRST_BACKOFF,
            pending,
            condition: Condition::default(),
            changes: Vec::new(),
            faults: std::collections::BTreeMap::new(),
        }
    }

    pub fn condition(&self) -> &Condition {
        &self.condition
    }

    /// Messages accepted and not yet sent or failed.
    pub fn pending(&self) -> &[Outgoing] {
        &self.pending
    }

    /// Whether the port is closed and its wait is over.
    pub fn open_due(&self, now: Instant) -> bool {
        matches!(self.port, Port::Closed { retry_at } if retry_at <= now)
    }

    /// The port opened: a new bearer takes every pending message.
    pub fn opened(&mut self, now: Instant) {
        let mut bearer = bearer_for(self.kind, now);
        let mut refused = Vec::new();
        for message in &self.pending {
            if let Err(e) = bearer.enqueue(message.clone(), now) {
                refused.push((message.id, e));
            }
        }
        for (id, e) in refused {
            self.fail(id, e.to_string());
        }
        self.port = Port::Open(bearer);
        // A new bearer counts from zero.
        self.faults.clear();
        self.backoff = FIRST_BACKOFF;
        self.condition.open = true;
        self.condition.up = false;
    }

    /// The port could not be opened, or was lost: it is opened again after the backoff.
    pub fn lost(&mut self, reason: String, now: Instant) -> Retry {
        let after = self.backoff;
        self.port = Port::Closed {
            retry_at: now + after,
        };
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
        let repeated =
            self.condition.last_error.as_deref() == Some(reason.as_str()) && !self.condition.open;
        self.condition.open = false;
        self.condition.up = false;
        self.condition.last_error = Some(reason);
        Retry { after, repeated }
    }

    /// Takes a message the outbox has stored. It waits in the bearer when the port is
    /// open, or until it opens. Refused when the bearer knows it can never go (too long
    /// for this terminal): the caller marks it failed.
    pub fn submit(&mut self, message: Outgoing, now: Instant) -> Result<(), QueueError> {
        if self.pending.iter().any(|m| m.id == message.id) {
            return Ok(());
        }
        if let Port::Open(bearer) = &mut self.port {
            bearer.enqueue(message.clone(), now)?;
        }
        self.pending.push(message);
        Ok(())
    }

    /// How long a message of `bytes` takes from the front of the queue to leaving,
    /// where a bearer is there to say.
    pub fn time_for(&self, bytes: usize) -> Option<Duration> {
        match &self.port {
            // A bearer that cannot tell yet (a card not read) says MAX: no estimate.
            Port::Open(bearer) => Some(bearer.time_for(bytes)).filter(|t| *t != Duration::MAX),
            Port::Closed { .. } => None,
        }
    }

    pub fn on_bytes(&mut self, bytes: &[u8], now: Instant) {
        if let Port::Open(bearer) = &mut self.port {
            bearer.on_bytes(bytes, now);
        }
        self.collect();
    }

    pub fn poll(&mut self, now: Instant) {
        if let Port::Open(bearer) = &mut self.port {
            bearer.poll(now);
        }
        self.collect();
    }

    /// When to poll (the port open) or to open the port again (closed).
    pub fn next_deadline(&self) -> Option<Instant> {
        match &self.port {
            Port::Open(bearer) => bearer.next_deadline(),
            Port::Closed { retry_at } => Some(*retry_at),
        }
    }

    /// Bytes for the terminal, in order; nothing while the port is closed.
    pub fn take_output(&mut self) -> Vec<u8> {
        match &mut self.port {
            Port::Open(bearer) => bearer.take_output(),
            Port::Closed { .. } => Vec::new(),
        }
    }

    pub fn drain_changes(&mut self) -> Vec<Change> {
        std::mem::take(&mut self.changes)
    }

    fn fail(&mut self, id: u64, reason: String) {
        self.pending.retain(|m| m.id != id);
        self.changes.push(Change::Failed { id, reason });
    }

    fn collect(&mut self) {
        let Port::Open(bearer) = &mut self.port else {
            return;
        };
        let events = bearer.drain_events();
        self.condition.capacity = bearer.capacity();
        self.condition.pacing = bearer.capacity().and_then(|c| {
            let (one, two) = (bearer.time_for(c), bearer.time_for(2 * c));
            (one != Duration::MAX).then(|| Pacing {
                first: one,
                each_more: two.saturating_sub(one),
            })
        });
        for (kind, total) in bearer.faults() {
            let seen = self.faults.insert(kind, total).unwrap_or(0);
            if total > seen {
                self.changes.push(Change::Faults {
                    kind,
                    new: total - seen,
                    total,
                });
            }
        }
        for event in events {
            match event {
                BearerEvent::Up { identity } => {
                    self.condition.up = true;
                    self.condition.identity = Some(identity.clone());
                    self.changes.push(Change::Up { identity });
                }
                BearerEvent::Down { reason } => {
                    self.condition.up = false;
                    self.condition.last_error = Some(reason.clone());
                    self.changes.push(Change::Down { reason });
                }
                BearerEvent::Sent { id } => {
                    self.pending.retain(|m| m.id != id);
                    self.changes.push(Change::Sent { id });
                }
                BearerEvent::Delivered { id } => self.changes.push(Change::Delivered { id }),
                BearerEvent::Failed { id, reason } => self.fail(id, reason),
                BearerEvent::Received { from, body } => {
                    self.changes.push(Change::Received { from, body });
                }
                BearerEvent::Signal { level } => self.condition.signal = Some(level),
                BearerEvent::Time { utc, at } => self.condition.satellite_time = Some((utc, at)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use drivers::satellite::bearer::Urgency;

    use super::*;

    fn message(id: u64, urgency: Urgency) -> Outgoing {
        Outgoing {
            id,
            to: "300234010753370".into(),
            urgency,
            body: Body::Bytes(format!("report {id}").into_bytes()),
        }
    }

    fn queued_ids(session: &Session) -> Vec<u64> {
        match &session.port {
            Port::Open(bearer) => bearer.queued().iter().map(|m| m.id).collect(),
            Port::Closed { .. } => Vec::new(),
        }
    }

    #[test]
    fn a_lost_port_is_opened_again_after_a_doubling_wait_that_resets_once_it_opens() {
        let start = Instant::now();
        let mut session = Session::new(TerminalKind::Iridium, Vec::new(), start);
        assert!(session.open_due(start));

        let mut now = start;
        let mut waits = Vec::new();
        for _ in 0..7 {
            let retry = session.lost("No such file or directory".into(), now);
            waits.push(retry.after);
            assert!(!session.open_due(now + retry.after - Duration::from_millis(1)));
            now += retry.after;
            assert!(session.open_due(now));
            assert_eq!(session.next_deadline(), Some(now));
        }
        let ms = |ms| Duration::from_millis(ms);
        assert_eq!(
            waits,
            vec![
                ms(500),
                ms(1000),
                ms(2000),
                ms(4000),
                ms(8000),
                ms(10_000),
                ms(10_000)
            ]
        );

        session.opened(now);
        assert!(session.condition().open && !session.condition().up);
        assert!(!session.open_due(now + Duration::from_secs(60)));
        let retry = session.lost("device vanished".into(), now);
        assert_eq!(retry.after, ms(500));
    }

    #[test]
    fn the_same_fault_again_is_a_repeat_and_a_new_one_is_not() {
        let now = Instant::now();
        let mut session = Session::new(TerminalKind::Iridium, Vec::new(), now);
        assert!(!session.lost("gone".into(), now).repeated);
        assert!(session.lost("gone".into(), now).repeated);
        assert!(!session.lost("permission denied".into(), now).repeated);
        session.opened(now);
        assert!(!session.lost("permission denied".into(), now).repeated);
        assert_eq!(
            session.condition().last_error.as_deref(),
            Some("permission denied")
        );
    }

    #[test]
    fn every_unconfirmed_message_goes_to_the_next_bearer_in_order_and_urgency() {
        let now = Instant::now();
        let from_outbox = vec![message(1, Urgency::Normal), message(2, Urgency::Normal)];
        let mut session = Session::new(TerminalKind::Iridium, from_outbox, now);
        // Accepted while the port is closed: kept, and handed over when it opens.
        session
            .submit(message(3, Urgency::Urgent), now)
            .expect("kept");
        assert_eq!(session.time_for(10), None);
        session.opened(now);
        assert_eq!(queued_ids(&session), vec![3, 1, 2]);
        assert!(session.time_for(10).is_some());

        session
            .submit(message(4, Urgency::Normal), now)
            .expect("queued");
        session
            .submit(message(4, Urgency::Normal), now)
            .expect("a repeat is ignored");
        let later = now + Duration::from_secs(3);
        session.lost("device vanished".into(), later);
        assert_eq!(session.take_output(), Vec::<u8>::new());
        session.opened(later + FIRST_BACKOFF);
        assert_eq!(queued_ids(&session), vec![3, 1, 2, 4]);
        let pending: Vec<u64> = session.pending().iter().map(|m| m.id).collect();
        assert_eq!(pending, vec![1, 2, 3, 4]);
        assert!(session.drain_changes().is_empty());
    }

    #[test]
    fn a_message_no_bearer_can_carry_fails_instead_of_waiting_for_ever() {
        let now = Instant::now();
        let huge = Outgoing {
            body: Body::Bytes(vec![0; 4096]),
            ..message(9, Urgency::Normal)
        };
        let mut session = Session::new(TerminalKind::Iridium, vec![huge.clone()], now);
        session.opened(now);
        assert!(session.pending().is_empty());
        assert!(matches!(
            session.drain_changes().as_slice(),
            [Change::Failed { id: 9, .. }]
        ));
        assert!(session.submit(huge, now).is_err());
        assert!(session.pending().is_empty());
    }
}
