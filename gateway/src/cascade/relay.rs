//! The relay: what one node does with frames between its links, sans-IO.
//!
//! A node has links to its neighbours: up to the tier above, down to each node below.
//! Each link has an ordered list of routes, one per bearer (IP first, then 370 MHz
//! radio, BeiDou, Iridium, SMS as configured), and uses the first route that is up:
//!
//! * an IP route is up while heartbeats arrive over it (one every `heartbeat_every`
//!   each way; none for `dead_after` and it is down); a terminal's route is up while
//!   the caller says its terminal is ([`Relay::bearer_state`]);
//! * a route on which a frame went unacknowledged `tries_per_route` times is down
//!   until something is heard over it again; the frame moves on to the next route.
//!
//! Traffic returns to IP as soon as its heartbeats do.
//!
//! **Sending.** Every frame for a link waits in the link's queue until the peer
//! acknowledges it: it is tried on the active route, again after the route's
//! acknowledgement time-out (doubling up to `max_retry`), and never dropped while it is
//! valid; an expired frame is dropped and reported. A frame is sealed per route: over
//! IP with SM2 (this node's own frames signed afresh, others passed on as their origin
//! signed them); over a narrow bearer with the link's key (a truncated HMAC-SM3 tag).
//! A frame that came over a narrow bearer has lost its origin's signature and goes on
//! with the next link's tag, so every link that may carry such a frame needs a key. A
//! frame larger than the route's message is fragmented.
//!
//! **Receiving.** Messages are reassembled per link and bearer; each whole frame goes
//! through the acceptance check ([`Acceptor`]). A refused frame is reported with its
//! reason and goes no further. A new or duplicate frame is acknowledged over the
//! bearer it came by (a duplicate's sender missed the first acknowledgement), but only
//! a new one is acted on:
//!
//! * alerts, updates, cancels and stream grants flow down: delivered here if a target
//!   concerns this node, queued for every downward link whose peer a target concerns;
//! * receipts and field reports flow up: delivered here (the district aggregates them)
//!   and queued for the upward link;
//! * acknowledgements end the matching queued frame; heartbeats mark their route up.
//!
//! **The hop beyond.** A node's heartbeats up carry the state of each of its links down
//! (the route up, its message size, its terminal's pacing and queue: [`LinkState`]),
//! and the node above keeps the latest from each neighbour below, so that its preview
//! ([`Relay::plan`]) can say how an alert would go on from there. The state is only as
//! fresh as the neighbour's last heartbeat over IP; with no IP to it, it is not given.
//!
//! **Durability.** The relay does no I/O: it says what to store ([`Output::Persist`])
//! and the caller stores it, in the order given, before acting on what follows. A
//! received frame's onward copies and the replay state come before its
//! acknowledgement, so a node that stops at any point has either stored the frame or
//! not acknowledged it.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use thiserror::Error;

use super::accept::{Accepted, Acceptor};
use super::auth::{SealError, Sealer, reseal, seal};
use super::fragment::{Pushed, Reassembler, ReassemblyConfig, fragment, fragment_count};
use super::frame::{
    Acknowledgement, BearerKind, Body, Frame, Header, Heartbeat, Kind, LinkState, MAX_TARGETS,
    SIGNATURE_BYTES, TagLength, Timestamp, Trailer, decode,
};
use super::keys::{LinkKey, NodeKey};
use super::replay::{OriginWindow, SequenceAllocator};
use crate::alert::model::AreaCode;
use crate::satellite::session::Pacing;

/// One bearer of a link.
#[derive(Debug, Clone)]
pub struct Route {
    pub bearer: BearerKind,
    /// The bytes one message of the bearer holds (a UDP datagram, a BeiDou message).
    pub message_bytes: usize,
    /// How long a frame waits for its acknowledgement before it is tried again: seconds
    /// over IP, minutes over BeiDou (one message a service interval each way).
    pub ack_timeout: Duration,
}

/// Which way a link leads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// To the tier above: receipts and field reports go this way.
    Up,
    /// To a node below: alerts go this way.
    Down,
}

/// A link to one neighbour.
#[derive(Debug, Clone)]
pub struct LinkConfig {
    pub name: String,
    /// The neighbour's area code: the origin of what it originates.
    pub peer: AreaCode,
    pub direction: Direction,
    /// In order of preference.
    pub routes: Vec<Route>,
    /// The key of the link's tags; `None` where every route is IP with SM2.
    pub key: Option<LinkKey>,
    /// Alerts for the neighbour also go out as voice on a radio while the link has no
    /// IP (the node's playout does it; the relay only tells the node above).
    pub radio: bool,
}

/// The relay's timing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RelayTiming {
    pub heartbeat_every: Duration,
    /// An IP route without a heartbeat this long is down.
    pub dead_after: Duration,
    /// Unacknowledged tries on one route before the frame moves to the next.
    pub tries_per_route: u32,
    /// The longest wait between two tries.
    pub max_retry: Duration,
}

impl Default for RelayTiming {
    fn default() -> Self {
        RelayTiming {
            heartbeat_every: Duration::from_secs(10),
            dead_after: Duration::from_secs(35),
            tries_per_route: 3,
            max_retry: Duration::from_secs(600),
        }
    }
}

/// What to store, in order, before going on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Persist {
    /// A frame queued for `link` (its bytes as received or made).
    Queued {
        link: String,
        origin: AreaCode,
        sequence: u32,
        bytes: Vec<u8>,
    },
    /// The frame left `link`'s queue: acknowledged, or expired.
    Done {
        link: String,
        origin: AreaCode,
        sequence: u32,
    },
    /// The receiver's replay memory of one origin, after a frame from it was accepted:
    /// only that origin's window, so a district that hears a thousand villages writes
    /// one window per frame, not a thousand.
    Replay {
        origin: AreaCode,
        window: OriginWindow,
    },
    /// This node's sequence reservation: no number below it is used again.
    Sequence(u32),
}

/// What the relay asks of the node.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    Persist(Persist),
    /// One message to write to a bearer of a link.
    Send {
        link: String,
        bearer: BearerKind,
        message: Vec<u8>,
    },
    /// A new frame for this node: play the alert, count the receipt, list the report.
    Deliver {
        frame: Frame,
        link: String,
        bearer: BearerKind,
    },
    /// A frame refused on arrival, with the reason for the log.
    Refused {
        link: String,
        bearer: BearerKind,
        reason: String,
        code: &'static str,
    },
    /// A queued frame that expired before its peer acknowledged it.
    Expired {
        link: String,
        origin: AreaCode,
        sequence: u32,
        kind: Kind,
    },
    /// A queued frame that cannot go over its link (for the log); it was dropped.
    Unsendable {
        link: String,
        origin: AreaCode,
        sequence: u32,
        kind: Kind,
        reason: &'static str,
    },
    /// The route a link uses changed (`None`: no route is up).
    Route {
        link: String,
        bearer: Option<BearerKind>,
    },
    /// A neighbour's fresh frame (a heartbeat or acknowledgement, stamped when it was
    /// made) came from the future: the peer's clock is `offset_s` seconds ahead of this
    /// node's, beyond the allowed skew, so its frames are all refused until the clocks
    /// agree. Which of the two is wrong the relay cannot tell. Said once until a frame
    /// of the link is accepted again.
    ClockOff {
        link: String,
        offset_s: i64,
    },
}

/// Why the relay could not make a frame.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RelayError {
    #[error("this node has used every sequence number")]
    SequenceExhausted,
    #[error("the clock reads {0}, outside what a frame carries")]
    Clock(DateTime<Utc>),
    #[error("no link named {0:?}")]
    UnknownLink(String),
}

#[derive(Debug)]
struct Queued {
    frame: Frame,
    /// As received, or as made by this node with its SM2 signature when it has no link
    /// key to make: what a route without a key passes on.
    bytes: Vec<u8>,
    /// Made here: sealed afresh on each route.
    own: bool,
    route: usize,
    tries: u32,
    next_try: Instant,
}

#[derive(Debug)]
struct RouteState {
    route: Route,
    /// Heard over it (a heartbeat, an acknowledgement, any frame): when.
    heard: Option<Instant>,
    /// The bearer says it can send (terminals); IP is always able to try.
    bearer_up: bool,
    /// Set after `tries_per_route` unacknowledged tries, until this time (then the route
    /// is tried again); cleared by a new frame heard over it.
    failing_until: Option<Instant>,
    reassembler: Reassembler,
    /// The terminal's pacing, once it has said it, and the messages queued at it.
    pacing: Option<Pacing>,
    queued: usize,
}

/// How a frame would go down one link now: see [`Relay::plan`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkPlan {
    pub link: String,
    /// The neighbour's area code.
    pub peer: AreaCode,
    /// The route that would carry it now; `None` while no route of the link is up (it
    /// waits, queued, for the first one that comes up).
    pub bearer: Option<BearerKind>,
    /// The route the sizes are for: the one up, or else the link's first.
    pub planned_bearer: BearerKind,
    /// The sealed frame's bytes over that route.
    pub frame_bytes: usize,
    /// Messages (fragments) it takes there; 0 when it would need too many.
    pub messages: usize,
    /// How the neighbour would pass it on to each node below it that the alert
    /// concerns, as its last heartbeat said; empty while the link has no IP.
    pub beyond: Vec<BeyondPlan>,
}

/// How a neighbour below would pass a frame on over one of its own links.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BeyondPlan {
    /// The area code of the neighbour's neighbour (a village).
    pub peer: AreaCode,
    /// The route up there; `None` while none is.
    pub bearer: Option<BearerKind>,
    pub planned_bearer: BearerKind,
    /// The frame's bytes on that route: the origin's SM2 over IP, the link's 8-byte tag
    /// over a narrow bearer.
    pub frame_bytes: usize,
    /// Messages it takes there; 0 when it would need too many.
    pub messages: usize,
    /// The time until its last message has left the neighbour, from the pacing and
    /// queue it told; zero over IP, `None` while no route is up or the pacing is not
    /// known.
    pub time: Option<Duration>,
    /// The neighbour speaks the alert on a radio for this node too.
    pub radio: bool,
}

#[derive(Debug)]
struct Link {
    config: LinkConfig,
    routes: Vec<RouteState>,
    queue: VecDeque<Queued>,
    /// The route last reported active.
    active: Option<usize>,
    next_heartbeat: Instant,
    /// A clock difference with the peer has been said and not yet healed.
    clock_off: bool,
    /// A link down: the state of the peer's own links down, from its newest heartbeat
    /// (by its `valid_from`: heartbeats have no replay memory, so an old one replayed
    /// must not undo a newer one).
    below: Vec<LinkState>,
    below_from: Option<Timestamp>,
}

/// The relay of one node; see the [module](self) notes.
pub struct Relay {
    me: AreaCode,
    node_key: NodeKey,
    acceptor: Acceptor,
    sequence: SequenceAllocator,
    timing: RelayTiming,
    links: Vec<Link>,
    out: Vec<Output>,
    /// The latest time the relay was given: deadlines before it are not deadlines.
    now: Instant,
}

/// Frames this node makes for itself stay valid this long unless told otherwise.
const OWN_VALIDITY: Duration = Duration::from_secs(300);

impl Relay {
    pub fn new(
        me: AreaCode,
        node_key: NodeKey,
        acceptor: Acceptor,
        sequence: SequenceAllocator,
        timing: RelayTiming,
        links: Vec<LinkConfig>,
        now: Instant,
    ) -> Relay {
        let links = links
            .into_iter()
            .map(|config| Link {
                routes: config
                    .routes
                    .iter()
                    .map(|route| RouteState {
                        route: route.clone(),
                        heard: None,
                        bearer_up: route.bearer == BearerKind::Ip,
                        failing_until: None,
                        reassembler: Reassembler::new(ReassemblyConfig::default()),
                        pacing: None,
                        queued: 0,
                    })
                    .collect(),
                config,
                queue: VecDeque::new(),
                active: None,
                next_heartbeat: now,
                clock_off: false,
                below: Vec::new(),
                below_from: None,
            })
            .collect();
        Relay {
            me,
            node_key,
            acceptor,
            sequence,
            timing,
            links,
            out: Vec::new(),
            now,
        }
    }

    /// Puts back a frame stored as queued for `link` before a restart.
    pub fn restore(&mut self, link: &str, bytes: Vec<u8>, now: Instant) {
        let me = self.me.clone();
        let Some(link) = self.links.iter_mut().find(|l| l.config.name == link) else {
            return;
        };
        if let Ok(frame) = decode(&bytes) {
            let own = frame.header.origin == me;
            link.queue.push_back(Queued {
                frame,
                bytes,
                own,
                route: 0,
                tries: 0,
                next_try: now,
            });
        }
    }

    /// Makes and queues a frame of this node's own: an alert at the district, a receipt
    /// or field report anywhere. Gives its sequence number.
    pub fn originate(
        &mut self,
        body: Body,
        valid_until: DateTime<Utc>,
        utc: DateTime<Utc>,
        now: Instant,
    ) -> Result<u32, RelayError> {
        self.now = self.now.max(now);
        let frame = self.own_frame(body, valid_until, utc)?;
        let sequence = frame.header.sequence;
        self.route_new(&frame, None, None, now);
        self.send_due(now, utc);
        Ok(sequence)
    }

    /// What sending `body` as this node's own frame would do now, without sending it:
    /// for each link it would go down, the route it would take (the first one up, or
    /// `None` while none is) and the messages it would take there. For an operator's
    /// preview; the relay's state is not changed.
    pub fn plan(
        &self,
        body: &Body,
        valid_until: DateTime<Utc>,
        utc: DateTime<Utc>,
        now: Instant,
    ) -> Vec<LinkPlan> {
        let (Body::Alert(alert) | Body::Update(alert)) = body else {
            return Vec::new();
        };
        let (Some(valid_from), Some(until)) = (
            Timestamp::from_datetime(utc),
            Timestamp::from_datetime(valid_until.max(utc)),
        ) else {
            return Vec::new();
        };
        let header = Header {
            origin: self.me.clone(),
            sequence: 1,
            valid_from,
            valid_until: until,
        };
        let mut plans = Vec::new();
        for link in &self.links {
            if link.config.direction != Direction::Down
                || !alert.targets.iter().any(|t| t.concerns(&link.config.peer))
            {
                continue;
            }
            let active = self.active_route(link, now);
            let route = &link.routes[active.unwrap_or(0)].route;
            let sealer = match (&link.config.key, route.bearer) {
                (Some(key), bearer) if bearer != BearerKind::Ip => {
                    Sealer::Hmac(key, TagLength::Eight)
                }
                _ => Sealer::Sm2(&self.node_key),
            };
            let Ok(sealed) = seal(&header, body, sealer) else {
                continue;
            };
            let ip_up = link
                .routes
                .iter()
                .any(|r| r.route.bearer == BearerKind::Ip && self.route_up(r, now));
            let beyond = if ip_up {
                let signed = match &sealer {
                    Sealer::Sm2(_) => sealed.len(),
                    Sealer::Hmac(_, length) => sealed.len() - length.bytes() + SIGNATURE_BYTES,
                };
                beyond(&link.below, &alert.targets, signed)
            } else {
                Vec::new()
            };
            plans.push(LinkPlan {
                link: link.config.name.clone(),
                peer: link.config.peer.clone(),
                bearer: active.map(|_| route.bearer),
                planned_bearer: route.bearer,
                frame_bytes: sealed.len(),
                messages: messages(sealed.len(), route.message_bytes),
                beyond,
            });
        }
        plans
    }

    /// A terminal's pacing on `link`, once it has said it, and the messages queued at it:
    /// what this node's heartbeats up tell of that route.
    pub fn terminal_load(
        &mut self,
        link: &str,
        bearer: BearerKind,
        pacing: Option<Pacing>,
        queued: usize,
    ) {
        if let Some((l, r)) = self.route_of(link, bearer) {
            let route = &mut self.links[l].routes[r];
            route.pacing = pacing;
            route.queued = queued;
        }
    }

    /// What this node's heartbeats up say of its links down.
    fn links_below(&self, now: Instant) -> Vec<LinkState> {
        let seconds = |d: Duration| u16::try_from(d.as_secs()).unwrap_or(u16::MAX - 1);
        self.links
            .iter()
            .filter(|link| link.config.direction == Direction::Down)
            .take(MAX_TARGETS)
            .map(|link| {
                let active = self.active_route(link, now);
                let route = &link.routes[active.unwrap_or(0)];
                LinkState {
                    peer: link.config.peer.clone(),
                    bearer: active.map(|_| route.route.bearer),
                    planned_bearer: route.route.bearer,
                    message_bytes: u16::try_from(route.route.message_bytes).unwrap_or(u16::MAX),
                    pacing: route
                        .pacing
                        .map(|p| (seconds(p.first), seconds(p.each_more))),
                    queued: u16::try_from(route.queued).unwrap_or(u16::MAX),
                    radio: link.config.radio,
                }
            })
            .collect()
    }

    /// A message that arrived over `bearer` of `link`.
    pub fn on_message(
        &mut self,
        link_name: &str,
        bearer: BearerKind,
        message: &[u8],
        now: Instant,
        utc: DateTime<Utc>,
    ) {
        self.now = self.now.max(now);
        let Some((l, r)) = self.route_of(link_name, bearer) else {
            return;
        };
        let pushed = self.links[l].routes[r].reassembler.push(message, now);
        let Pushed::Complete(bytes) = pushed else {
            return;
        };
        match self.acceptor.accept(&bytes, link_name, utc) {
            Err(refusal) => {
                // Only a frame from the future tells of clocks apart: one that expired
                // may be an old copy replayed, or a late one from a slow bearer.
                if refusal.reason() == "not_yet_valid" {
                    self.clock_check(l, &bytes, utc);
                }
                self.out.push(Output::Refused {
                    link: link_name.to_string(),
                    bearer,
                    reason: refusal.to_string(),
                    code: refusal.reason(),
                });
            }
            Ok(accepted) => {
                let (origin, kind) = match &accepted {
                    Accepted::New(frame) => (frame.header.origin.clone(), frame.kind()),
                    Accepted::Duplicate { origin, kind, .. } => (origin.clone(), *kind),
                };
                if let Err(reason) = self.allowed(l, &origin, kind) {
                    self.out.push(Output::Refused {
                        link: link_name.to_string(),
                        bearer,
                        reason,
                        code: "wrong_direction",
                    });
                    self.send_due(now, utc);
                    return;
                }
                match accepted {
                    Accepted::New(frame) => {
                        // Only a new frame says the route works: a replayed copy must
                        // not keep a dead route up.
                        self.heard(l, r, now);
                        self.on_new(frame, bytes, l, r, now, utc)
                    }
                    Accepted::Duplicate {
                        origin,
                        sequence,
                        kind,
                    } => {
                        if acknowledged(kind) {
                            self.acknowledge(l, r, origin, sequence, now, utc);
                        }
                    }
                }
            }
        }
        self.send_due(now, utc);
    }

    /// A terminal's bearer on `link` came up or went down.
    pub fn bearer_state(&mut self, link: &str, bearer: BearerKind, up: bool, now: Instant) {
        if let Some((l, r)) = self.route_of(link, bearer) {
            self.links[l].routes[r].bearer_up = up;
            if up {
                self.links[l].routes[r].failing_until = None;
            }
            self.report_route(l, now);
        }
    }

    pub fn poll(&mut self, now: Instant, utc: DateTime<Utc>) {
        self.now = self.now.max(now);
        for l in 0..self.links.len() {
            for route in &mut self.links[l].routes {
                route.reassembler.expire(now);
            }
            if now >= self.links[l].next_heartbeat {
                self.links[l].next_heartbeat = now + self.timing.heartbeat_every;
                self.heartbeat(l, now, utc);
            }
            self.report_route(l, now);
        }
        self.expire(utc);
        self.send_due(now, utc);
    }

    /// The next time the relay must be polled: a heartbeat, a frame's retry on a link
    /// with a route up, a reassembly to expire, an IP route's heartbeats running out,
    /// a failing route's pause ending. Never a time already passed: a heartbeat or a
    /// retry that came due while the relay was busy with a message (it is only sent
    /// by [`Relay::poll`]) is due now; an expiry already passed is no deadline.
    pub fn next_deadline(&self) -> Option<Instant> {
        let now = self.now;
        let due = self.links.iter().flat_map(|link| {
            // Frames of a link with no route up wait for one: a route coming up sends
            // them, so their retry times are no deadline.
            let routed = self.active_route(link, now).is_some();
            let tries = link
                .queue
                .iter()
                .filter(move |_| routed)
                .map(|q| q.next_try);
            std::iter::once(link.next_heartbeat)
                .chain(tries)
                .map(move |at| at.max(now))
        });
        let expiries = self.links.iter().flat_map(|link| {
            let reassembly = link
                .routes
                .iter()
                .filter_map(|r| r.reassembler.next_deadline());
            let deaths = link.routes.iter().filter_map(|r| {
                (r.route.bearer == BearerKind::Ip)
                    .then_some(r.heard)
                    .flatten()
                    .map(|h| h + self.timing.dead_after)
            });
            let pauses = link.routes.iter().filter_map(|r| r.failing_until);
            reassembly
                .chain(deaths)
                .chain(pauses)
                .filter(|at| *at >= now)
                .collect::<Vec<_>>()
        });
        due.chain(expiries).min()
    }

    pub fn drain(&mut self) -> Vec<Output> {
        std::mem::take(&mut self.out)
    }

    /// Per link: the route in use and the frames waiting.
    pub fn status(&self, now: Instant) -> Vec<(String, Option<BearerKind>, usize)> {
        self.links
            .iter()
            .map(|link| {
                let active = self
                    .active_route(link, now)
                    .map(|r| link.routes[r].route.bearer);
                (link.config.name.clone(), active, link.queue.len())
            })
            .collect()
    }

    fn route_of(&self, link: &str, bearer: BearerKind) -> Option<(usize, usize)> {
        let l = self.links.iter().position(|x| x.config.name == link)?;
        let r = self.links[l]
            .routes
            .iter()
            .position(|x| x.route.bearer == bearer)?;
        Some((l, r))
    }

    /// Whether a frame of `kind` from `origin` may come over link `l`: what flows down
    /// comes from the tier above, receipts and reports from inside the peer's area below,
    /// and acknowledgements and heartbeats only from the peer itself. A link key held
    /// by a village must not let it speak for the district.
    fn allowed(&self, l: usize, origin: &AreaCode, kind: Kind) -> Result<(), String> {
        let link = &self.links[l].config;
        let ok = match kind {
            Kind::Acknowledgement | Kind::Heartbeat => *origin == link.peer,
            Kind::Alert | Kind::Update | Kind::Cancel | Kind::StreamGrant => {
                link.direction == Direction::Up
            }
            Kind::Receipt | Kind::FieldReport => {
                link.direction == Direction::Down && link.peer.covers(origin)
            }
        };
        if ok {
            Ok(())
        } else {
            Err(format!(
                "{} from {origin} cannot come over link {} (peer {}, {})",
                kind.as_str(),
                link.name,
                link.peer,
                match link.direction {
                    Direction::Up => "up",
                    Direction::Down => "down",
                }
            ))
        }
    }

    /// A frame of link `l` refused for its time: when it is one the peer made just now
    /// (a heartbeat or acknowledgement), its stamp is the peer's clock.
    fn clock_check(&mut self, l: usize, bytes: &[u8], utc: DateTime<Utc>) {
        let Ok(frame) = crate::cascade::frame::decode(bytes) else {
            return;
        };
        let fresh = matches!(frame.body, Body::Heartbeat(_) | Body::Acknowledgement(_));
        if !fresh || self.links[l].clock_off {
            return;
        }
        self.links[l].clock_off = true;
        let offset_s = i64::from(frame.header.valid_from.seconds()) - utc.timestamp();
        self.out.push(Output::ClockOff {
            link: self.links[l].config.name.clone(),
            offset_s,
        });
    }

    fn heard(&mut self, l: usize, r: usize, now: Instant) {
        self.links[l].clock_off = false;
        let route = &mut self.links[l].routes[r];
        route.heard = Some(now);
        route.failing_until = None;
        self.report_route(l, now);
    }

    fn route_up(&self, route: &RouteState, now: Instant) -> bool {
        let alive = match route.route.bearer {
            BearerKind::Ip => route
                .heard
                .is_some_and(|h| now.saturating_duration_since(h) < self.timing.dead_after),
            _ => route.bearer_up,
        };
        alive && route.failing_until.is_none_or(|until| now >= until)
    }

    fn active_route(&self, link: &Link, now: Instant) -> Option<usize> {
        (0..link.routes.len()).find(|&r| self.route_up(&link.routes[r], now))
    }

    fn report_route(&mut self, l: usize, now: Instant) {
        let active = self.active_route(&self.links[l], now);
        if active != self.links[l].active {
            self.links[l].active = active;
            // Everything waiting goes on the new route now, not at its old retry time.
            if let Some(r) = active {
                for q in &mut self.links[l].queue {
                    if q.route != r {
                        q.route = r;
                        q.tries = 0;
                        q.next_try = now;
                    }
                }
            }
            let bearer = active.map(|r| self.links[l].routes[r].route.bearer);
            self.out.push(Output::Route {
                link: self.links[l].config.name.clone(),
                bearer,
            });
        }
    }

    fn own_frame(
        &mut self,
        body: Body,
        valid_until: DateTime<Utc>,
        utc: DateTime<Utc>,
    ) -> Result<Frame, RelayError> {
        // Acknowledgements and heartbeats take sequence 0, outside the replay window
        // (`accept`): they would otherwise use up the numbers a retried frame needs.
        let sequence = if matches!(body, Body::Acknowledgement(_) | Body::Heartbeat(_)) {
            0
        } else {
            let allocated = self
                .sequence
                .allocate()
                .map_err(|_| RelayError::SequenceExhausted)?;
            if let Some(reserved) = allocated.persist {
                self.out.push(Output::Persist(Persist::Sequence(reserved)));
            }
            allocated.sequence
        };
        let header = Header {
            origin: self.me.clone(),
            sequence,
            valid_from: Timestamp::from_datetime(utc).ok_or(RelayError::Clock(utc))?,
            valid_until: Timestamp::from_datetime(valid_until.max(utc))
                .ok_or(RelayError::Clock(valid_until))?,
        };
        // The trailer is made per route when sent; a placeholder until then.
        Ok(Frame {
            header,
            body,
            trailer: Trailer::Hmac {
                length: TagLength::Eight,
                tag: [0; 32],
            },
        })
    }

    /// Queues a new frame for every link it goes to, except `from`; delivers it here
    /// when it concerns this node (a received frame only: own frames are the caller's).
    fn route_new(
        &mut self,
        frame: &Frame,
        received: Option<Vec<u8>>,
        from: Option<usize>,
        now: Instant,
    ) {
        let own = received.is_none();
        let bytes = match received {
            Some(bytes) => bytes,
            // Kept signed by this node, for routes without a link key.
            None => match seal(&frame.header, &frame.body, Sealer::Sm2(&self.node_key)) {
                Ok(bytes) => bytes,
                Err(_) => return,
            },
        };
        let targets: Vec<AreaCode> = match &frame.body {
            Body::Alert(a) | Body::Update(a) => a.targets.clone(),
            _ => Vec::new(),
        };
        for l in 0..self.links.len() {
            if Some(l) == from {
                continue;
            }
            let link = &self.links[l].config;
            let goes = match frame.kind() {
                Kind::Alert | Kind::Update => {
                    link.direction == Direction::Down
                        && targets.iter().any(|t| t.concerns(&link.peer))
                }
                // Cancels and grants name no targets: every link down.
                Kind::Cancel | Kind::StreamGrant => link.direction == Direction::Down,
                Kind::Receipt | Kind::FieldReport => link.direction == Direction::Up,
                Kind::Acknowledgement | Kind::Heartbeat => false,
            };
            if !goes {
                continue;
            }
            self.out.push(Output::Persist(Persist::Queued {
                link: link.name.clone(),
                origin: frame.header.origin.clone(),
                sequence: frame.header.sequence,
                bytes: bytes.clone(),
            }));
            self.links[l].queue.push_back(Queued {
                frame: frame.clone(),
                bytes: bytes.clone(),
                own,
                route: 0,
                tries: 0,
                next_try: now,
            });
        }
    }

    fn on_new(
        &mut self,
        frame: Frame,
        bytes: Vec<u8>,
        l: usize,
        r: usize,
        now: Instant,
        utc: DateTime<Utc>,
    ) {
        let (origin, sequence, kind) = (
            frame.header.origin.clone(),
            frame.header.sequence,
            frame.kind(),
        );
        match &frame.body {
            // Neither is in the replay memory: nothing to store.
            Body::Acknowledgement(ack) => {
                self.acknowledged(l, &ack.origin, ack.sequence);
                return;
            }
            Body::Heartbeat(heartbeat) => {
                let link = &mut self.links[l];
                let newer = link.below_from.is_none_or(|t| frame.header.valid_from >= t);
                if link.config.direction == Direction::Down && newer {
                    link.below = heartbeat.below.clone();
                    link.below_from = Some(frame.header.valid_from);
                }
                return;
            }
            _ => {}
        }
        let here = match &frame.body {
            Body::Alert(a) | Body::Update(a) => a.targets.iter().any(|t| t.concerns(&self.me)),
            _ => true,
        };
        // Stored first: the onward copies, then what the frame brings this node, then the
        // replay memory; then acknowledged. A crash before the replay memory is on disk
        // has the frame delivered again after the restart, which every delivery takes
        // as the same report, alert, cancel or receipt; the other order would lose it.
        self.route_new(&frame, Some(bytes), Some(l), now);
        let bearer = self.links[l].routes[r].route.bearer;
        if here {
            self.out.push(Output::Deliver {
                frame,
                link: self.links[l].config.name.clone(),
                bearer,
            });
        }
        if let Some(window) = self.acceptor.replay_state().origins.get(&origin) {
            self.out.push(Output::Persist(Persist::Replay {
                origin: origin.clone(),
                window: window.clone(),
            }));
        }
        if acknowledged(kind) {
            self.acknowledge(l, r, origin, sequence, now, utc);
        }
    }

    /// Sends an acknowledgement of `origin`'s `sequence` back over route `r` of link `l`.
    fn acknowledge(
        &mut self,
        l: usize,
        r: usize,
        origin: AreaCode,
        sequence: u32,
        now: Instant,
        utc: DateTime<Utc>,
    ) {
        let body = Body::Acknowledgement(Acknowledgement { origin, sequence });
        let until = utc + chrono::Duration::from_std(OWN_VALIDITY).unwrap_or_default();
        if let Ok(frame) = self.own_frame(body, until, utc) {
            let _ = self.send_on(l, r, &frame, None, true, now);
        }
    }

    fn heartbeat(&mut self, l: usize, now: Instant, utc: DateTime<Utc>) {
        let Some(r) = self.links[l]
            .routes
            .iter()
            .position(|r| r.route.bearer == BearerKind::Ip)
        else {
            return;
        };
        let until = utc + chrono::Duration::from_std(self.timing.dead_after).unwrap_or_default();
        let below = match self.links[l].config.direction {
            Direction::Up => self.links_below(now),
            Direction::Down => Vec::new(),
        };
        if let Ok(frame) = self.own_frame(Body::Heartbeat(Heartbeat { below }), until, utc) {
            let _ = self.send_on(l, r, &frame, None, true, now);
        }
    }

    fn acknowledged(&mut self, l: usize, origin: &AreaCode, sequence: u32) {
        let link = &mut self.links[l];
        let before = link.queue.len();
        link.queue
            .retain(|q| !(q.frame.header.origin == *origin && q.frame.header.sequence == sequence));
        if link.queue.len() < before {
            self.out.push(Output::Persist(Persist::Done {
                link: link.config.name.clone(),
                origin: origin.clone(),
                sequence,
            }));
        }
    }

    fn expire(&mut self, utc: DateTime<Utc>) {
        let now = Timestamp::from_datetime(utc);
        for link in &mut self.links {
            let name = link.config.name.clone();
            let out = &mut self.out;
            link.queue.retain(|q| {
                let expired = now.is_some_and(|n| q.frame.header.valid_until < n);
                if expired {
                    out.push(Output::Persist(Persist::Done {
                        link: name.clone(),
                        origin: q.frame.header.origin.clone(),
                        sequence: q.frame.header.sequence,
                    }));
                    out.push(Output::Expired {
                        link: name.clone(),
                        origin: q.frame.header.origin.clone(),
                        sequence: q.frame.header.sequence,
                        kind: q.frame.kind(),
                    });
                }
                !expired
            });
        }
    }

    /// Tries every queued frame that is due, on its link's active route.
    fn send_due(&mut self, now: Instant, _utc: DateTime<Utc>) {
        for l in 0..self.links.len() {
            let Some(active) = self.active_route(&self.links[l], now) else {
                continue;
            };
            let mut k = 0;
            while k < self.links[l].queue.len() {
                let q = &self.links[l].queue[k];
                if q.next_try > now {
                    k += 1;
                    continue;
                }
                // A frame that used up its tries on its route marks that route failing:
                // it and every other frame move to the next route that is up.
                if q.route == active && q.tries >= self.timing.tries_per_route {
                    self.links[l].routes[active].failing_until = Some(now + self.timing.max_retry);
                    self.report_route(l, now);
                    let next = self.active_route(&self.links[l], now);
                    let q = &mut self.links[l].queue[k];
                    q.tries = 0;
                    match next {
                        Some(next) => q.route = next,
                        None => {
                            // Nothing else is up: the link waits until the failing
                            // route's pause ends, or another route comes up.
                            k += 1;
                            continue;
                        }
                    }
                    return self.send_due(now, _utc);
                }
                let (frame, bytes, own) = (q.frame.clone(), q.bytes.clone(), q.own);
                // A frame in many fragments takes as many messages each way: over BeiDou
                // a minute each, so its wait grows with them.
                let route = &self.links[l].routes[active].route;
                let fragments = bytes
                    .len()
                    .div_ceil(route.message_bytes.saturating_sub(7).max(1))
                    .max(1);
                let timeout = route
                    .ack_timeout
                    .saturating_mul(u32::try_from(fragments).unwrap_or(u32::MAX));
                let q = &mut self.links[l].queue[k];
                if q.route != active {
                    q.route = active;
                    q.tries = 0;
                }
                let wait = timeout
                    .saturating_mul(1 << q.tries.min(8))
                    .min(self.timing.max_retry);
                q.tries += 1;
                q.next_try = now + wait;
                if let Err(reason) = self.send_on(l, active, &frame, Some(&bytes), own, now) {
                    // It can never go this way: dropped and said, not tried in vain.
                    let q = self.links[l].queue.remove(k).expect("index in range");
                    let name = self.links[l].config.name.clone();
                    self.out.push(Output::Persist(Persist::Done {
                        link: name.clone(),
                        origin: q.frame.header.origin.clone(),
                        sequence: q.frame.header.sequence,
                    }));
                    self.out.push(Output::Unsendable {
                        link: name,
                        origin: q.frame.header.origin.clone(),
                        sequence: q.frame.header.sequence,
                        kind: q.frame.kind(),
                        reason,
                    });
                    continue;
                }
                k += 1;
            }
        }
    }

    /// Seals `frame` for route `r` of link `l` and sends it in as many messages as the
    /// route needs.
    fn send_on(
        &mut self,
        l: usize,
        r: usize,
        frame: &Frame,
        received: Option<&[u8]>,
        own: bool,
        _now: Instant,
    ) -> Result<(), &'static str> {
        let link = &self.links[l];
        let route = &link.routes[r].route;
        // A grant is leave for RTP, which only IP carries: over a narrow bearer it would
        // only hold up the frames behind it.
        if matches!(frame.body, Body::StreamGrant(_)) && route.bearer != BearerKind::Ip {
            return Err("a stream grant goes over IP only, where the voice goes");
        }
        // IP carries SM2: this node's own frames signed afresh, others as their origin
        // signed them. A narrow bearer, or a frame that lost its signature on a narrow
        // hop before, takes the link's tag; without a link key an SM2 frame goes as it
        // is, fragmented, and one that came tagged cannot go on.
        let narrow = route.bearer != BearerKind::Ip;
        let came_signed = matches!(frame.trailer, Trailer::Sm2(_));
        let hmac = |key| Sealer::Hmac(key, TagLength::Eight);
        let sealed: Result<Vec<u8>, SealError> = match (own, received, &link.config.key) {
            (true, _, Some(key)) if narrow => seal(&frame.header, &frame.body, hmac(key)),
            // Signed once when queued: the same bytes on every link (SM2 here signs
            // deterministically, so a second signature would only cost time).
            (true, Some(bytes), _) => Ok(bytes.to_vec()),
            (true, None, _) => seal(&frame.header, &frame.body, Sealer::Sm2(&self.node_key)),
            (false, Some(bytes), _) if came_signed && !narrow => Ok(bytes.to_vec()),
            (false, Some(bytes), Some(key)) => reseal(frame, bytes, hmac(key)),
            (false, Some(bytes), None) if came_signed => Ok(bytes.to_vec()),
            (false, _, _) => {
                return Err("it came tagged over a narrow bearer and this link has no link_key");
            }
        };
        let Ok(sealed) = sealed else {
            return Err("it could not be sealed");
        };
        let Ok(messages) = fragment(&sealed, route.message_bytes) else {
            return Err("it needs more fragments than a frame may have");
        };
        let (name, bearer) = (link.config.name.clone(), route.bearer);
        for message in messages {
            self.out.push(Output::Send {
                link: name.clone(),
                bearer,
                message,
            });
        }
        Ok(())
    }
}

/// Messages a sealed frame of `bytes` takes on a route of `message_bytes`; 0 when it
/// would need more fragments than a frame may have.
fn messages(bytes: usize, message_bytes: usize) -> usize {
    fragment_count(bytes, message_bytes).unwrap_or(0)
}

/// How a neighbour whose links are `below` would pass on a frame for `targets` that is
/// `signed` bytes with its origin's SM2 signature.
fn beyond(below: &[LinkState], targets: &[AreaCode], signed: usize) -> Vec<BeyondPlan> {
    let tagged = signed.saturating_sub(SIGNATURE_BYTES) + TagLength::Eight.bytes();
    below
        .iter()
        .filter(|state| targets.iter().any(|t| t.concerns(&state.peer)))
        .map(|state| {
            let frame_bytes = match state.planned_bearer {
                BearerKind::Ip => signed,
                _ => tagged,
            };
            let messages = messages(frame_bytes, usize::from(state.message_bytes));
            let time = match (state.bearer, state.pacing) {
                (Some(BearerKind::Ip), _) => Some(Duration::ZERO),
                (Some(_), Some((first, each))) => Some(
                    Pacing {
                        first: Duration::from_secs(first.into()),
                        each_more: Duration::from_secs(each.into()),
                    }
                    .time_for(usize::from(state.queued), messages),
                ),
                _ => None,
            };
            BeyondPlan {
                peer: state.peer.clone(),
                bearer: state.bearer,
                planned_bearer: state.planned_bearer,
                frame_bytes,
                messages,
                time,
                // Over IP the village hears the frame, not the radio.
                radio: state.radio && state.bearer != Some(BearerKind::Ip),
            }
        })
        .collect()
}

/// Whether frames of `kind` are acknowledged hop by hop.
fn acknowledged(kind: Kind) -> bool {
    !matches!(kind, Kind::Acknowledgement | Kind::Heartbeat)
}

#[cfg(test)]
mod tests;
