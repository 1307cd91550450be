//! The cascade's task: the relay ([`crate::cascade::relay`]) between a UDP socket for
//! frames over IP and the node's satellite terminals, with its store.
//!
//! The task only moves bytes: a datagram from a link's peer, a message a terminal
//! received from the link's far terminal, a field report asked for through the API,
//! and the relay's deadline go in; what the relay asks comes out in its order: stored
//! first (each commit on disk before the next step), then sent, delivered or logged.
//!
//! What a delivered frame does here: a field report is kept for the district's list; an
//! alert, update, cancel or receipt goes to the node's alert playout (`[alerts]`), which
//! stores it before the frame is acknowledged, and is only logged on a node without one.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use drivers::satellite::TerminalKind;
use drivers::satellite::bearer::{Body as TerminalBody, Outgoing, Urgency};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{error, info, warn};

use super::NodeError;
use super::terminal::{Submit, TerminalHandle, Terminals};
use crate::alert::model::AreaCode;
use crate::cascade::accept::{AcceptConfig, Acceptor, Keyring};
use crate::cascade::frame::{BearerKind, Body, FieldReport};
use crate::cascade::keys::{LinkKey, NodeKey, NodePublicKey};
use crate::cascade::relay::{Direction, LinkConfig, Output, Relay, RelayTiming, Route};
use crate::cascade::replay::SequenceAllocator;
use crate::cascade::store::{CascadeStore, StoredReport};
use crate::config::{CascadeConfig, Config};

/// A request from the API or the node's alert playout.
pub enum Request {
    /// Send a field report up: answers its sequence number.
    Report {
        text: String,
        reply: oneshot::Sender<Result<u32, String>>,
    },
    /// Send this node's alert `number` down, once: a second request for the same number
    /// (the node restarted and renders it again) is not sent again.
    Alert {
        number: u32,
        level: crate::alert::model::Level,
        targets: Vec<AreaCode>,
        text: String,
        valid_until: chrono::DateTime<Utc>,
    },
    /// Stop this node's alert `number` everywhere below.
    Cancel {
        number: u32,
        valid_until: chrono::DateTime<Utc>,
    },
    /// Tell the streets below that this node's RTP stream `ssrc` may be forwarded
    /// until `valid_until`.
    Grant {
        ssrc: u32,
        level: crate::alert::model::Level,
        valid_until: chrono::DateTime<Utc>,
    },
    /// Tell the origin of an alert how it played at this node.
    Receipt(crate::cascade::frame::Receipt),
    /// How an alert would go down now, for a preview: nothing is sent.
    Plan {
        level: crate::alert::model::Level,
        targets: Vec<AreaCode>,
        text: String,
        valid_until: chrono::DateTime<Utc>,
        reply: oneshot::Sender<Vec<CascadePlan>>,
    },
}

/// How an alert would reach one neighbour below, as a preview shows it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct CascadePlan {
    /// The link's name in `[[cascade.link]]`.
    pub link: String,
    /// The neighbour's area code.
    pub peer: String,
    /// The bearer that would carry it now: ip, beidou, iridium or sms; none while no
    /// route of the link is up (it waits, queued, for the first that comes up).
    pub bearer: Option<String>,
    /// The frame's bytes over that bearer (or the link's first, while none is up).
    pub frame_bytes: usize,
    /// Messages it takes there: one datagram over IP, fragments over a terminal.
    pub messages: usize,
    /// Seconds until its last message has left this node, counting the messages queued
    /// at the terminal ahead of it; none when no route is up or the terminal has not yet
    /// said its pacing.
    pub seconds: Option<f64>,
    /// The `[[radio]]` on which the alert also goes out as voice, while the link has no
    /// IP and names one (the 370 MHz bearer).
    pub radio: Option<String>,
    /// How the neighbour would pass it on to each node below it that the alert
    /// concerns, from the neighbour's last heartbeat; empty while the link has no IP
    /// or the neighbour has no links down.
    pub beyond: Vec<BeyondCascadePlan>,
}

/// The hop after the next: how a neighbour below would pass an alert on to one of its
/// own neighbours (a street to a village).
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct BeyondCascadePlan {
    /// The area code of that node.
    pub peer: String,
    /// The bearer that would carry it there now; none while no route is up.
    pub bearer: Option<String>,
    pub frame_bytes: usize,
    pub messages: usize,
    /// Seconds until its last message has left the neighbour; none while no route is
    /// up there or its terminal has not said its pacing.
    pub seconds: Option<f64>,
    /// Seconds from now until then, the first hop's included, where both are known.
    pub total_seconds: Option<f64>,
    /// The neighbour speaks the alert on a radio for this node too (370 MHz).
    pub radio: bool,
}

impl CascadeHandle {
    /// How an alert with this text would go down each link now.
    pub async fn plan(
        &self,
        level: crate::alert::model::Level,
        targets: Vec<AreaCode>,
        text: String,
        valid_until: chrono::DateTime<Utc>,
    ) -> Vec<CascadePlan> {
        let (reply, answer) = oneshot::channel();
        let request = Request::Plan {
            level,
            targets,
            text,
            valid_until,
            reply,
        };
        if self.requests.send(request).is_err() {
            return Vec::new();
        }
        answer.await.unwrap_or_default()
    }
}

/// A frame for the node's alert playout; its `stored` answer says whether what it
/// carried is on disk (or needs no storing), which the frame's acknowledgement waits
/// for. A `false` stops the cascade, as a failed store does.
pub enum Delivered {
    /// An alert or update that concerns this node.
    Alert {
        frame: crate::alert::intake::FrameAlert,
        stored: oneshot::Sender<bool>,
    },
    /// The origin stops its alert `number`.
    Cancel {
        origin: AreaCode,
        number: u32,
        stored: oneshot::Sender<bool>,
    },
    /// How an alert played at a node below: `origin` signed it as its `sequence`.
    Receipt {
        origin: AreaCode,
        sequence: u32,
        receipt: crate::cascade::frame::Receipt,
        stored: oneshot::Sender<bool>,
    },
}

/// Leave from the cascade to forward one RTP stream, for a node that relays voice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grant {
    pub ssrc: u32,
    pub level: crate::alert::model::Level,
    pub valid_until: chrono::DateTime<Utc>,
}

/// Where what the cascade delivers goes in the node.
#[derive(Default)]
pub struct Sinks {
    /// The node's alert playout (`[alerts]`).
    pub playout: Option<mpsc::UnboundedSender<Delivered>>,
    /// The node's voice relay, which forwards only granted streams.
    pub grants: Option<mpsc::UnboundedSender<Grant>>,
}

/// The running cascade, as the API reaches it.
#[derive(Clone)]
pub struct CascadeHandle {
    pub requests: mpsc::UnboundedSender<Request>,
    pub store: Arc<Mutex<CascadeStore>>,
    /// Each link's route in use, by link name (absent or `None`: none up), for what
    /// must know it without waiting on the cascade's task (the alert playout).
    pub routes: watch::Receiver<LinkRoutes>,
}

/// The route each link uses now, by link name.
pub type LinkRoutes = std::collections::BTreeMap<String, Option<BearerKind>>;

impl CascadeHandle {
    /// The latest field reports that reached this node.
    pub fn reports(&self, limit: u32) -> Result<Vec<StoredReport>, String> {
        let store = self
            .store
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        store.reports(limit).map_err(|e| e.to_string())
    }
}

/// The task and its handle.
pub struct Cascade {
    pub handle: CascadeHandle,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

/// A link's terminal route: the terminal and the far terminal's address.
struct TerminalRoute {
    link: String,
    bearer: BearerKind,
    handle: TerminalHandle,
    to: String,
}

fn bearer_of(kind: TerminalKind) -> BearerKind {
    match kind {
        TerminalKind::Beidou(_) => BearerKind::Beidou,
        TerminalKind::Iridium => BearerKind::Iridium,
        TerminalKind::Sms => BearerKind::Sms,
    }
}

/// The bytes one message of a terminal of `kind` holds, before its card is read: a
/// comm level 3 BeiDou card (the common civil one), an Iridium MT message, one SMS.
fn message_bytes(kind: TerminalKind) -> usize {
    match kind {
        TerminalKind::Beidou(_) => 78,
        TerminalKind::Iridium => drivers::satellite::iridium::MAX_MT,
        TerminalKind::Sms => 140,
    }
}

fn setup(what: impl std::fmt::Display) -> NodeError {
    NodeError::Setup(what.to_string())
}

impl Cascade {
    /// Loads the keys, opens the store and starts the task; `None` without `[cascade]`.
    /// What arrives for the node's alert playout or voice relay goes to `sinks`.
    pub async fn start(
        config: &Config,
        terminals: Option<&Terminals>,
        sinks: Sinks,
    ) -> Result<Option<Cascade>, NodeError> {
        let Some(cascade) = &config.cascade else {
            return Ok(None);
        };
        let me: AreaCode = config.area.parse().map_err(setup)?;
        let node_key =
            NodeKey::load(&cascade.key).map_err(|e| setup(format!("cascade.key: {e}")))?;
        let mut keys = Keyring::default();
        // This node accepts its own frames back (an acknowledgement's echo never is,
        // but a loop must not be taken for a stranger).
        keys.add_origin(me.clone(), node_key.public());
        for (i, origin) in cascade.origins.iter().enumerate() {
            let key = NodePublicKey::load(&origin.public_key)
                .map_err(|e| setup(format!("cascade.origin[{i}].public_key: {e}")))?;
            keys.add_origin(origin.area.clone(), key);
        }
        std::fs::create_dir_all(&cascade.state_dir).map_err(|e| {
            setup(format!(
                "cannot create {}: {e}",
                cascade.state_dir.display()
            ))
        })?;
        let store = CascadeStore::open(&cascade.state_dir).map_err(setup)?;
        let (links, terminal_routes) = links(cascade, &mut keys, terminals)?;
        let acceptor = Acceptor::new(
            keys,
            AcceptConfig {
                skew: cascade.skew,
                ..AcceptConfig::default()
            },
            store.replay().map_err(setup)?,
        );
        let sequence = SequenceAllocator::resume(store.sequence().map_err(setup)?, 64);
        let timing = RelayTiming {
            heartbeat_every: cascade.heartbeat,
            dead_after: cascade.heartbeat * 3 + cascade.heartbeat / 2,
            ..RelayTiming::default()
        };
        let now = std::time::Instant::now();
        let mut relay = Relay::new(me, node_key, acceptor, sequence, timing, links, now);
        let queued = store.queued().map_err(setup)?;
        if !queued.is_empty() {
            info!(
                frames = queued.len(),
                "cascade frames queued before the restart go again"
            );
        }
        for (link, bytes) in queued {
            relay.restore(&link, bytes, now);
        }
        let socket = UdpSocket::bind(cascade.listen)
            .await
            .map_err(|source| NodeError::Bind {
                what: "cascade",
                addr: cascade.listen,
                source,
            })?;
        info!(listen = %cascade.listen, links = cascade.links.len(), "cascade listening");
        let peers: Vec<(SocketAddr, String)> = cascade
            .links
            .iter()
            .filter_map(|l| l.ip.map(|ip| (ip, l.name.clone())))
            .collect();
        let store = Arc::new(Mutex::new(store));
        let (requests, inbox) = mpsc::unbounded_channel();
        let (stop, stopping) = watch::channel(false);
        let (routes_tx, routes) = watch::channel(LinkRoutes::new());
        let outbox = terminals.map(|t| t.outbox.clone());
        let ip_links = cascade
            .links
            .iter()
            .filter(|l| l.ip.is_some())
            .map(|l| (l.name.clone(), l.peer.clone()))
            .collect();
        let task = Task {
            relay,
            socket,
            peers,
            learned: Vec::new(),
            ip_links,
            has_up_link: cascade.links.iter().any(|l| l.up),
            radio_links: cascade
                .links
                .iter()
                .filter_map(|l| Some((l.name.clone(), l.radio.clone()?)))
                .collect(),
            terminals: terminal_routes,
            outbox,
            store: store.clone(),
            inbox,
            stopping,
            playout: sinks.playout,
            grants: sinks.grants,
            skew_s: cascade.skew.as_secs(),
            routes: routes_tx,
            clock: FrameClock::new(cascade.time_from.as_deref(), terminals, cascade.skew),
        };
        Ok(Some(Cascade {
            handle: CascadeHandle {
                requests,
                store,
                routes,
            },
            stop,
            task: tokio::spawn(task.run()),
        }))
    }

    /// Stops the task; what is queued is on disk for the next start.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// The relay's links from the configuration, their keys added to `keys`, and the
/// terminal routes among them.
fn links(
    cascade: &CascadeConfig,
    keys: &mut Keyring,
    terminals: Option<&Terminals>,
) -> Result<(Vec<LinkConfig>, Vec<TerminalRoute>), NodeError> {
    let mut links = Vec::new();
    let mut routes_out = Vec::new();
    for (i, link) in cascade.links.iter().enumerate() {
        let key = match &link.link_key {
            Some(path) => Some(
                LinkKey::load(path)
                    .map_err(|e| setup(format!("cascade.link[{i}].link_key: {e}")))?,
            ),
            None => None,
        };
        if let Some(key) = &key {
            keys.add_link(&link.name, key.clone());
        }
        let mut routes = Vec::new();
        if link.ip.is_some() {
            routes.push(Route {
                bearer: BearerKind::Ip,
                message_bytes: 1200,
                ack_timeout: Duration::from_secs(2),
            });
        }
        if let Some((terminal, to)) = &link.terminal {
            let handle = terminals
                .and_then(|t| t.handles.iter().find(|h| &h.config.name == terminal))
                .ok_or_else(|| setup(format!("link {}: no terminal {terminal}", link.name)))?;
            let bearer = bearer_of(handle.config.kind);
            routes.push(Route {
                bearer,
                message_bytes: message_bytes(handle.config.kind),
                ack_timeout: link.terminal_ack,
            });
            routes_out.push(TerminalRoute {
                link: link.name.clone(),
                bearer,
                handle: handle.clone(),
                to: to.clone(),
            });
        }
        links.push(LinkConfig {
            name: link.name.clone(),
            peer: link.peer.clone(),
            direction: if link.up {
                Direction::Up
            } else {
                Direction::Down
            },
            routes,
            key,
            radio: link.radio.is_some(),
        });
    }
    Ok((links, routes_out))
}

struct Task {
    relay: Relay,
    socket: UdpSocket,
    /// Where each link's peer is sent to (and usually sends from).
    peers: Vec<(SocketAddr, String)>,
    /// Addresses a peer was heard from that are not its configured one.
    learned: Vec<(SocketAddr, String)>,
    /// Links over IP and their peers' areas.
    ip_links: Vec<(String, AreaCode)>,
    /// Whether reports made here have somewhere to go.
    has_up_link: bool,
    /// Links down whose neighbour hears a radio of this node, and that radio.
    radio_links: Vec<(String, String)>,
    terminals: Vec<TerminalRoute>,
    outbox: Option<crate::satellite::outbox::Outbox>,
    store: Arc<Mutex<CascadeStore>>,
    inbox: mpsc::UnboundedReceiver<Request>,
    stopping: watch::Receiver<bool>,
    /// The node's alert playout, where it has one.
    playout: Option<mpsc::UnboundedSender<Delivered>>,
    /// The node's voice relay, where it forwards only granted streams.
    grants: Option<mpsc::UnboundedSender<Grant>>,
    /// The clock difference allowed with an origin, seconds, for the log.
    skew_s: u64,
    routes: watch::Sender<LinkRoutes>,
    clock: FrameClock,
}

/// The time the cascade stamps and checks frames by: the system clock, or the satellite
/// time of a BeiDou terminal (`[cascade] time_from`) once it has given one. Either way a
/// system clock that differs from a terminal's satellite time beyond the skew is said,
/// loudly, once until they agree again.
struct FrameClock {
    /// The terminal whose time is the cascade's, if any.
    source: Option<(String, watch::Receiver<super::terminal::Snapshot>)>,
    /// Every BeiDou terminal of the node, whose time is compared with the system's.
    watched: Vec<(String, watch::Receiver<super::terminal::Snapshot>)>,
    skew: chrono::Duration,
    /// Terminals whose time differs now, said and not yet healed.
    off: Vec<String>,
}

/// The satellite time `heard` (as it stood at the instant `at`), carried on to `now`.
pub fn satellite_now(
    heard: chrono::DateTime<Utc>,
    at: std::time::Instant,
    now: std::time::Instant,
) -> chrono::DateTime<Utc> {
    let since = chrono::Duration::from_std(now.saturating_duration_since(at)).unwrap_or_default();
    heard + since
}

impl FrameClock {
    fn new(
        time_from: Option<&str>,
        terminals: Option<&Terminals>,
        skew: std::time::Duration,
    ) -> FrameClock {
        let watched: Vec<_> = terminals
            .map(|t| {
                t.handles
                    .iter()
                    .filter(|h| matches!(h.config.kind, TerminalKind::Beidou(_)))
                    .map(|h| (h.config.name.clone(), h.snapshot.clone()))
                    .collect()
            })
            .unwrap_or_default();
        let source = time_from.and_then(|name| {
            terminals?
                .handles
                .iter()
                .find(|h| h.config.name == name)
                .map(|h| (h.config.name.clone(), h.snapshot.clone()))
        });
        FrameClock {
            source,
            watched,
            skew: chrono::Duration::from_std(skew).unwrap_or(chrono::Duration::seconds(30)),
            off: Vec::new(),
        }
    }

    /// The time now, and the system clock checked against every terminal's.
    fn now(&mut self, now: std::time::Instant) -> chrono::DateTime<Utc> {
        let system = Utc::now();
        for (name, snapshot) in &self.watched {
            let Some((heard, at)) = snapshot.borrow().condition.satellite_time else {
                continue;
            };
            let offset = satellite_now(heard, at, now) - system;
            let beyond = offset.abs() > self.skew;
            let said = self.off.contains(name);
            if beyond && !said {
                let using = self.source.as_ref().is_some_and(|(s, _)| s == name);
                let seconds = (offset.num_milliseconds() as f64 / 1000.0).round();
                error!(terminal = %name, offset_s = seconds, using_satellite_time = using,
                "THE SYSTEM CLOCK DIFFERS FROM BEIDOU TIME BY {seconds} s, beyond the allowed skew: {}",
                if using {
                    "frames are stamped and checked by BeiDou time; fix the system clock"
                } else {
                    "frames are stamped by the system clock and neighbours may refuse them; fix NTP or set [cascade] time_from"
                });
                self.off.push(name.clone());
            } else if !beyond && said {
                info!(terminal = %name, "the system clock agrees with BeiDou time again");
                self.off.retain(|n| n != name);
            }
        }
        match &self.source {
            Some((_, snapshot)) => match snapshot.borrow().condition.satellite_time {
                Some((heard, at)) => satellite_now(heard, at, now),
                None => system,
            },
            None => system,
        }
    }
}

/// What woke the task.
enum Woke {
    Datagram(usize, SocketAddr),
    Terminal(usize, String, TerminalBody),
    TerminalState(usize, bool),
    Request(Request),
    Deadline,
    Stop,
}

impl Task {
    async fn run(mut self) {
        let mut buffer = vec![0u8; 65_536];
        let (events, mut terminal_events) = mpsc::unbounded_channel();
        for (k, route) in self.terminals.iter().enumerate() {
            watch_terminal(k, &route.handle, events.clone());
        }
        drop(events);
        let mut up: Vec<bool> = vec![false; self.terminals.len()];
        loop {
            let deadline = self
                .relay
                .next_deadline()
                .map(tokio::time::Instant::from_std);
            let woke = tokio::select! {
                r = self.socket.recv_from(&mut buffer) => match r {
                    Ok((n, from)) => Woke::Datagram(n, from),
                    Err(e) => {
                        warn!(error = %e, "cascade socket");
                        Woke::Deadline
                    }
                },
                Some(event) = terminal_events.recv() => match event {
                    TerminalEvent::Received(k, from, body) => Woke::Terminal(k, from, body),
                    TerminalEvent::Up(k, now_up) => Woke::TerminalState(k, now_up),
                },
                request = self.inbox.recv() => match request {
                    Some(r) => Woke::Request(r),
                    None => Woke::Stop,
                },
                _ = sleep_until(deadline) => Woke::Deadline,
                _ = self.stopping.changed() => Woke::Stop,
            };
            let now = std::time::Instant::now();
            let utc = self.clock.now(now);
            match woke {
                Woke::Stop => return,
                Woke::Datagram(n, from) => match self.link_of(from, &buffer[..n]) {
                    Some(link) => {
                        self.relay
                            .on_message(&link, BearerKind::Ip, &buffer[..n], now, utc);
                    }
                    None => warn!(%from, "cascade datagram from no configured peer, dropped"),
                },
                Woke::Terminal(k, from, body) => {
                    let route = &self.terminals[k];
                    let bytes = match body {
                        TerminalBody::Bytes(b) => b,
                        TerminalBody::Text(t) => t.into_bytes(),
                    };
                    if from.trim_start_matches('0') == route.to.trim_start_matches('0') {
                        let (link, bearer) = (route.link.clone(), route.bearer);
                        self.relay.on_message(&link, bearer, &bytes, now, utc);
                    }
                }
                Woke::TerminalState(k, now_up) => {
                    let route = &self.terminals[k];
                    let (pacing, queued) = {
                        let snapshot = route.handle.snapshot.borrow();
                        (snapshot.condition.pacing, snapshot.queued)
                    };
                    let (link, bearer) = (route.link.clone(), route.bearer);
                    self.relay.terminal_load(&link, bearer, pacing, queued);
                    if up[k] != now_up {
                        up[k] = now_up;
                        self.relay.bearer_state(&link, bearer, now_up, now);
                    }
                }
                Woke::Request(Request::Report { text, reply }) => {
                    if !self.has_up_link {
                        let _ = reply.send(Err(
                            "this node has no link up the cascade: a report here goes nowhere"
                                .into(),
                        ));
                        continue;
                    }
                    let until = utc + chrono::Duration::hours(24);
                    let body = Body::FieldReport(FieldReport { text });
                    let answer = self
                        .relay
                        .originate(body, until, utc, now)
                        .map_err(|e| e.to_string());
                    // Answered once the report is on disk for the link up.
                    let stored = self.act().await;
                    let _ = reply.send(if stored {
                        answer
                    } else {
                        Err("the report could not be stored".into())
                    });
                    if !stored {
                        return;
                    }
                    continue;
                }
                Woke::Request(Request::Alert {
                    number,
                    level,
                    targets,
                    text,
                    valid_until,
                }) => {
                    let body = Body::Alert(crate::cascade::frame::Alert {
                        number,
                        level,
                        targets,
                        content: crate::cascade::frame::Content::Text(text),
                    });
                    if !self
                        .originate_once(number, body, valid_until, now, utc)
                        .await
                    {
                        return;
                    }
                    continue;
                }
                Woke::Request(Request::Cancel {
                    number,
                    valid_until,
                }) => {
                    let body = Body::Cancel(crate::cascade::frame::Cancel { number });
                    // A cancel is its own frame; its number is the alert's, so it is kept
                    // apart from the alert's record by a high bit.
                    if !self
                        .originate_once(number | 1 << 31, body, valid_until, now, utc)
                        .await
                    {
                        return;
                    }
                    continue;
                }
                Woke::Request(Request::Grant {
                    ssrc,
                    level,
                    valid_until,
                }) => {
                    let body =
                        Body::StreamGrant(crate::cascade::frame::StreamGrant { ssrc, level });
                    match self.relay.originate(body, valid_until, utc, now) {
                        Ok(sequence) => {
                            info!(ssrc, %level, sequence, "stream grant sent down the cascade")
                        }
                        Err(e) => {
                            warn!(ssrc, error = %e, "cannot send a stream grant down the cascade")
                        }
                    }
                }
                Woke::Request(Request::Receipt(receipt)) => {
                    if !self.has_up_link {
                        continue;
                    }
                    let (number, played, loudspeakers) =
                        (receipt.alert_number, receipt.played, receipt.loudspeakers);
                    let until = utc + chrono::Duration::hours(24);
                    match self
                        .relay
                        .originate(Body::Receipt(receipt), until, utc, now)
                    {
                        Ok(sequence) => {
                            info!(
                                number,
                                played, loudspeakers, sequence, "receipt sent up the cascade"
                            )
                        }
                        Err(e) => warn!(number, error = %e, "cannot send a receipt up the cascade"),
                    }
                }
                Woke::Request(Request::Plan {
                    level,
                    targets,
                    text,
                    valid_until,
                    reply,
                }) => {
                    let body = Body::Alert(crate::cascade::frame::Alert {
                        number: 0,
                        level,
                        targets,
                        content: crate::cascade::frame::Content::Text(text),
                    });
                    let plans = self.relay.plan(&body, valid_until, utc, now);
                    let _ = reply.send(plans.into_iter().map(|p| self.priced(p)).collect());
                    continue;
                }
                Woke::Deadline => self.relay.poll(now, utc),
            }
            if !self.act().await {
                return;
            }
        }
    }

    /// The link a datagram from `from` came over: the link whose peer sends from there,
    /// or, from an address not seen before (a peer behind NAT, a relay), the link whose
    /// peer originated the frame, remembered for what follows from that address. Either
    /// way the frame is then checked like any other.
    fn link_of(&mut self, from: SocketAddr, datagram: &[u8]) -> Option<String> {
        if let Some((_, link)) = self
            .peers
            .iter()
            .chain(&self.learned)
            .find(|(a, _)| *a == from)
        {
            return Some(link.clone());
        }
        let origin = crate::cascade::frame::decode(datagram).ok()?.header.origin;
        let link = self
            .ip_links
            .iter()
            .find(|(_, peer)| *peer == origin)?
            .0
            .clone();
        // One learnt address a link: a later one replaces it, so spoofed sources cannot
        // grow the list. Replies still go to the configured address.
        info!(%from, %link, "cascade peer heard from a new address");
        self.learned.retain(|(_, l)| *l != link);
        self.learned.push((from, link.clone()));
        Some(link)
    }

    /// Originates `body` unless `key` was originated before (across restarts), then
    /// stores that it was; `false` when the store failed and the task must stop.
    async fn originate_once(
        &mut self,
        key: u32,
        body: Body,
        valid_until: chrono::DateTime<Utc>,
        now: std::time::Instant,
        utc: chrono::DateTime<Utc>,
    ) -> bool {
        let store = self.store.clone();
        let seen = tokio::task::spawn_blocking(move || {
            let store = store
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            store.originated(key)
        })
        .await;
        match seen {
            Ok(Ok(true)) => return true,
            Ok(Ok(false)) => {}
            _ => {
                error!("cannot read the cascade's record of alerts sent: the cascade stops");
                return false;
            }
        }
        let kind = body.kind().as_str();
        match self.relay.originate(body, valid_until.max(utc), utc, now) {
            Ok(sequence) => info!(
                number = key & 0x7fff_ffff,
                sequence, kind, "sent down the cascade"
            ),
            Err(e) => {
                warn!(error = %e, kind, "cannot send down the cascade");
                return true;
            }
        }
        if !self.act().await {
            return false;
        }
        let store = self.store.clone();
        let marked = tokio::task::spawn_blocking(move || {
            let store = store
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            store.mark_originated(key)
        })
        .await;
        matches!(marked, Ok(Ok(())))
    }

    /// Does what the relay asked, in its order; `false` when the store failed, after
    /// which nothing more may go out.
    async fn act(&mut self) -> bool {
        for output in self.relay.drain() {
            match output {
                Output::Persist(persist) => {
                    let store = self.store.clone();
                    let stored = tokio::task::spawn_blocking(move || {
                        let store = store
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner);
                        store.apply(&persist)
                    })
                    .await;
                    if !matches!(stored, Ok(Ok(()))) {
                        // Nothing after it may go out (an acknowledgement promises it
                        // is stored), and the relay's memory is now ahead of the disk.
                        error!(
                            "cannot store a cascade frame: the cascade stops; restart the node once the disk is fixed"
                        );
                        return false;
                    }
                }
                Output::Send {
                    link,
                    bearer,
                    message,
                } => self.send(&link, bearer, message).await,
                Output::Deliver {
                    frame,
                    link,
                    bearer,
                } => {
                    if !self.deliver(frame, &link, bearer).await {
                        error!(
                            "cannot store what a frame brought: the cascade stops; restart the node once the disk is fixed"
                        );
                        return false;
                    }
                }
                Output::Refused {
                    link,
                    bearer,
                    reason,
                    code,
                } => warn!(%link, bearer = ?bearer, code, %reason, "cascade frame refused"),
                Output::Expired {
                    link,
                    origin,
                    sequence,
                    kind,
                } => {
                    warn!(%link, %origin, sequence, kind = kind.as_str(), "cascade frame expired before it was acknowledged")
                }
                Output::Unsendable {
                    link,
                    origin,
                    sequence,
                    kind,
                    reason,
                } => {
                    error!(%link, %origin, sequence, kind = kind.as_str(), reason, "cascade frame cannot go over this link: dropped")
                }
                Output::Route { link, bearer } => {
                    match bearer {
                        Some(b) => info!(%link, bearer = ?b, "cascade link route"),
                        None => warn!(%link, "cascade link has no route up"),
                    }
                    self.routes.send_modify(|routes| {
                        routes.insert(link, bearer);
                    });
                }
                Output::ClockOff { link, offset_s } => {
                    error!(%link, offset_s, skew_s = self.skew_s,
                        "THIS NODE'S CLOCK IS {offset_s} s behind its neighbour's on link {link} (or the neighbour's is ahead), beyond the allowed skew: every frame from there is refused until the clocks agree; check the system time and NTP on both");
                }
            }
        }
        true
    }

    async fn send(&mut self, link: &str, bearer: BearerKind, message: Vec<u8>) {
        if bearer == BearerKind::Ip {
            if let Some((addr, _)) = self.peers.iter().find(|(_, l)| l == link) {
                if let Err(e) = self.socket.send_to(&message, addr).await {
                    warn!(%link, error = %e, "cascade send over IP failed");
                }
            }
            return;
        }
        let Some(route) = self
            .terminals
            .iter()
            .find(|t| t.link == link && t.bearer == bearer)
        else {
            return;
        };
        let Some(outbox) = self.outbox.clone() else {
            return;
        };
        // The terminal's outbox keeps it too, so it goes even after a restart.
        let (terminal, to) = (route.handle.config.name.clone(), route.to.clone());
        let body = TerminalBody::Bytes(message);
        let stored = body.clone();
        let accepted = outbox
            .call(move |o| {
                o.accept(
                    &terminal,
                    &to,
                    Urgency::Urgent,
                    &stored,
                    "cascade",
                    Utc::now(),
                )
            })
            .await;
        match accepted {
            Ok(id) => {
                let (reply, _) = oneshot::channel();
                let message = Outgoing {
                    id,
                    to: route.to.clone(),
                    urgency: Urgency::Urgent,
                    body,
                };
                let _ = route.handle.submit.send(Submit { message, reply });
            }
            Err(e) => warn!(%link, error = %e, "cannot queue a cascade frame on the terminal"),
        }
    }

    /// Acts on a new frame for this node; `false` when what it had to store was not.
    async fn deliver(
        &mut self,
        frame: crate::cascade::frame::Frame,
        link: &str,
        bearer: BearerKind,
    ) -> bool {
        let origin = frame.header.origin.to_string();
        let sequence = frame.header.sequence;
        match frame.body {
            Body::FieldReport(report) => {
                info!(%origin, sequence, %link, bearer = ?bearer, text = %report.text, "field report received");
                let (store, link) = (self.store.clone(), link.to_string());
                let bearer = format!("{bearer:?}").to_ascii_lowercase();
                let stored = tokio::task::spawn_blocking(move || {
                    let store = store
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    store.add_report(&origin, sequence, &report.text, &link, &bearer, Utc::now())
                })
                .await;
                matches!(stored, Ok(Ok(())))
            }
            body @ (Body::Alert(_) | Body::Update(_)) => {
                let update = matches!(body, Body::Update(_));
                let (Body::Alert(alert) | Body::Update(alert)) = body else {
                    return true;
                };
                let text = match &alert.content {
                    crate::cascade::frame::Content::Text(t) => t.clone(),
                    crate::cascade::frame::Content::Audio(a) => {
                        warn!(%origin, number = alert.number, audio = %a,
                            "alert received down the cascade names recorded audio, which this node cannot fetch: not played");
                        return true;
                    }
                };
                info!(%origin, number = alert.number, level = %alert.level, %link, bearer = bearer.as_str(), %text,
                    "alert received down the cascade");
                let frame = crate::alert::intake::FrameAlert {
                    origin: frame.header.origin.clone(),
                    number: alert.number,
                    sequence,
                    update,
                    level: alert.level,
                    targets: alert.targets,
                    text,
                    valid_from: frame.header.valid_from.to_datetime(),
                    valid_until: frame.header.valid_until.to_datetime(),
                    bearer: bearer.as_str().to_string(),
                };
                self.to_playout(|stored| Delivered::Alert { frame, stored }, "alert")
                    .await
            }
            Body::Cancel(cancel) => {
                info!(%origin, number = cancel.number, %link, bearer = bearer.as_str(), "cancel received down the cascade");
                let origin = frame.header.origin.clone();
                self.to_playout(
                    |stored| Delivered::Cancel {
                        origin,
                        number: cancel.number,
                        stored,
                    },
                    "cancel",
                )
                .await
            }
            Body::Receipt(receipt) => {
                info!(%origin, alert_origin = %receipt.alert_origin, number = receipt.alert_number,
                    played = receipt.played, loudspeakers = receipt.loudspeakers,
                    over = receipt.bearer.as_str(), %link, "receipt received up the cascade");
                let origin = frame.header.origin.clone();
                self.to_playout(
                    |stored| Delivered::Receipt {
                        origin,
                        sequence,
                        receipt,
                        stored,
                    },
                    "receipt",
                )
                .await
            }
            Body::StreamGrant(grant) => {
                let valid_until = frame.header.valid_until.to_datetime();
                info!(%origin, ssrc = grant.ssrc, level = %grant.level, until = %valid_until, %link,
                    "stream grant received");
                if let Some(grants) = &self.grants {
                    let _ = grants.send(Grant {
                        ssrc: grant.ssrc,
                        level: grant.level,
                        valid_until,
                    });
                }
                true
            }
            body => {
                info!(%origin, sequence, %link, bearer = ?bearer, kind = body.kind().as_str(), "cascade frame delivered");
                true
            }
        }
    }
}

impl Task {
    /// A relay's plan for one link, with the time its route's pacing gives it.
    fn priced(&self, plan: crate::cascade::relay::LinkPlan) -> CascadePlan {
        let seconds = match plan.bearer {
            None => None,
            Some(BearerKind::Ip) => Some(0.0),
            Some(bearer) => self
                .terminals
                .iter()
                .find(|t| t.link == plan.link && t.bearer == bearer)
                .and_then(|t| {
                    let snapshot = t.handle.snapshot.borrow();
                    let pacing = snapshot.condition.pacing?;
                    Some(
                        pacing
                            .time_for(snapshot.queued, plan.messages)
                            .as_secs_f64(),
                    )
                }),
        };
        let radio = match plan.bearer {
            Some(BearerKind::Ip) => None,
            _ => self
                .radio_links
                .iter()
                .find(|(link, _)| *link == plan.link)
                .map(|(_, radio)| radio.clone()),
        };
        let beyond = plan
            .beyond
            .iter()
            .map(|b| {
                let hop = b.time.map(|t| t.as_secs_f64());
                BeyondCascadePlan {
                    peer: b.peer.to_string(),
                    bearer: b.bearer.map(|b| b.as_str().to_string()),
                    frame_bytes: b.frame_bytes,
                    messages: b.messages,
                    seconds: hop,
                    total_seconds: seconds.zip(hop).map(|(first, then)| first + then),
                    radio: b.radio,
                }
            })
            .collect();
        CascadePlan {
            radio,
            beyond,
            link: plan.link,
            peer: plan.peer.to_string(),
            bearer: plan.bearer.map(|b| b.as_str().to_string()),
            frame_bytes: plan.frame_bytes,
            messages: plan.messages,
            seconds,
        }
    }

    /// Hands a frame's content to the node's alert playout and waits until it is stored;
    /// on a node without one it is only logged. `false` when the playout could not store
    /// it.
    async fn to_playout(
        &self,
        make: impl FnOnce(oneshot::Sender<bool>) -> Delivered,
        what: &'static str,
    ) -> bool {
        let Some(playout) = &self.playout else {
            info!(
                what,
                "this node has no [alerts] table: nothing plays or is counted here"
            );
            return true;
        };
        let (stored, answer) = oneshot::channel();
        if playout.send(make(stored)).is_err() {
            // The playout has stopped: the node is stopping, the frame goes again later.
            return false;
        }
        answer.await.unwrap_or(false)
    }
}

/// What a terminal task told: a message received, or its state.
enum TerminalEvent {
    Received(usize, String, TerminalBody),
    Up(usize, bool),
}

/// Forwards what terminal `k` receives, and its state changes, into one channel.
fn watch_terminal(k: usize, handle: &TerminalHandle, events: mpsc::UnboundedSender<TerminalEvent>) {
    let mut received = handle.received.subscribe();
    let mut snapshot = handle.snapshot.clone();
    tokio::spawn(async move {
        loop {
            let event = tokio::select! {
                r = received.recv() => match r {
                    Ok((from, body)) => TerminalEvent::Received(k, from, body),
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                        warn!(missed = n, "the cascade fell behind a terminal's messages");
                        continue;
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                },
                changed = snapshot.changed() => match changed {
                    Ok(()) => TerminalEvent::Up(k, snapshot.borrow().condition.up),
                    Err(_) => return,
                },
            };
            if events.send(event).is_err() {
                return;
            }
        }
    });
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
