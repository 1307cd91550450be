//! A node that takes alerts: the control API, the alert database and playout.
//!
//! The tasks only move bytes and time; the decisions are the sans-IO cores':
//! [`Scheduler`] says which alert plays on which output, [`ReceiptTracker`] which
//! loudspeakers confirmed it. Each play of an alert is one RTP stream (a *session*)
//! with its own SSRC, encoded once per payload format and sent to the outputs that
//! started it together; a pre-empted or cancelled output gets an RTCP BYE for the
//! session at once, so a relay downstream lets go of it and takes the next stream.
//!
//! Order of durability: the number of plays started is written to the database
//! before the first packet of a play leaves, so a crash can lose a repeat but never
//! play one twice past the count.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use chrono::{DateTime, Utc};
use codecs::opus::FRAME_SAMPLES;
use drivers::rtp::ntp::NtpAnchor;
use drivers::rtp::packetizer::Packetizer;
use drivers::rtp::payload::{PACKET_DURATION, PayloadFormat};
use drivers::rtp::rtcp::{CompoundSpec, RtcpEvent, build_compound, parse_compound};
use drivers::rtp::session::RtcpSchedule;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tracing::{debug, error, info, warn};

use super::cascade::Delivered;
use super::live::{self, LiveEvent, LiveSource};
use super::srtp::{Destinations, Packet, SrtpLinks};
use super::{NodeError, bind, rtcp_address, stop_requested};
use crate::alert::clock::Clock;
use crate::alert::intake::{CascadeSource, Destination, FrameAlert, Rules};
use crate::alert::model::AlertState;
use crate::alert::model::AreaCode;
use crate::alert::playout::Command;
use crate::alert::playout::programme::{self, Programme};
use crate::alert::playout::receipts::{ReceiptTracker, Update};
use crate::alert::playout::schedule::{Event, Job, OutputId, Scheduler, SessionId, StopReason};
use crate::alert::speech::SpeechEngine;
use crate::alert::store::{
    AlertRecord, AreaReceipt, NewAlert, Receipt, Store, StoreError, Transition,
};
use crate::api::auth::Operators;
use crate::api::{ApiState, DestinationInfo, Live};
use crate::cascade::frame::{BearerKind, Receipt as FrameReceipt};
use crate::config::{AlertsConfig, Config, DownstreamKind, Tier};
use crate::voice::encoder::FrameEncoder;

/// One destination, as playout addresses it.
struct Output {
    name: String,
    rtp: SocketAddr,
    rtcp: SocketAddr,
    format: PayloadFormat,
    kind: DownstreamKind,
}

/// One payload format of a session.
struct Group {
    encoder: FrameEncoder,
    packetizer: Packetizer,
    outputs: Vec<OutputId>,
    rtp: Destinations,
    first_sequence: Option<u16>,
}

/// One play of one alert on a set of outputs.
struct Session {
    alert: i64,
    samples: Arc<Vec<i16>>,
    next: usize,
    start: Instant,
    groups: Vec<Group>,
    /// Whether this is a live broadcast, whose voice follows its attention signal.
    live: bool,
}

impl Session {
    /// When its next frame is due; `None` when every frame is sent.
    fn next_due(&self) -> Option<Instant> {
        (self.next < self.samples.len())
            .then(|| self.start + PACKET_DURATION * (self.next / FRAME_SAMPLES) as u32)
    }
}

/// An alert made into sound, or why it could not be.
struct Rendered {
    record: AlertRecord,
    programme: Result<Programme, String>,
}

/// The SDES NOTE naming a session's alert for the relays: `alert=ID purpose=PURPOSE`.
fn note(alert: i64, purpose: Option<crate::alert::model::Purpose>) -> String {
    let purpose = purpose.unwrap_or(crate::alert::model::Purpose::Actual);
    format!("alert={alert} purpose={purpose}")
}

/// Speech engines run at once, at most.
const RENDER_PERMITS: usize = 2;

/// Tries to render an alert before it counts as failed, when the failure may pass.
const RENDER_ATTEMPTS: u32 = 3;

/// The rank of alerts that originate at a tier: the higher tier wins among equals.
fn tier_rank(tier: Tier) -> u8 {
    match tier {
        Tier::District => 3,
        Tier::Street => 2,
        Tier::Village => 1,
    }
}

/// The rank of an alert originated by the node at `origin`, by its code's length: a
/// 6-digit county or district, a 9-digit street or town, a 12-digit village.
fn origin_rank(origin: &AreaCode) -> u8 {
    match origin.as_str().len() {
        0..=6 => tier_rank(Tier::District),
        7..=9 => tier_rank(Tier::Street),
        _ => tier_rank(Tier::Village),
    }
}

/// Intake's view of the configuration.
pub fn rules(config: &Config, alerts: &AlertsConfig) -> Rules {
    Rules {
        node_name: config.name.clone(),
        geocode_names: alerts.geocode_names.clone(),
        language: alerts.language.clone(),
        confirm_levels: alerts.confirm_levels.clone(),
        default_validity: chrono::Duration::from_std(alerts.default_validity)
            .unwrap_or(chrono::Duration::hours(1)),
        default_repeat: alerts.repeat,
        destinations: config
            .downstream
            .iter()
            .map(|d| Destination {
                name: d.name.clone(),
                area: d.area.clone(),
                kind: d.kind,
                takes_exercises: d.exercises,
            })
            .collect(),
    }
}

/// Runs the node until SIGINT or SIGTERM.
/// Runs an alert node; `routes` are the other routes of its API, when it patches
/// radios or has satellite terminals too.
/// With `patching`, alerts for a neighbour below whose link has no IP also go out as
/// voice on the radio its `[[cascade.link]]` names.
pub async fn run(
    config: Config,
    routes: Option<axum::Router>,
    cascade: Option<super::cascade::CascadeHandle>,
    mut from_cascade: Option<mpsc::UnboundedReceiver<Delivered>>,
    patching: Option<mpsc::UnboundedSender<super::patching::PatchRequest>>,
) -> Result<(), NodeError> {
    let (Some(api), Some(alerts)) = (config.api.clone(), config.alerts.clone()) else {
        return Err(NodeError::Config("an alert node needs [api] and [alerts]"));
    };
    let operators = Operators::load(&api.operators).map_err(|e| NodeError::Setup(e.to_string()))?;
    std::fs::create_dir_all(&alerts.state_dir).map_err(|e| {
        NodeError::Setup(format!("cannot create {}: {e}", alerts.state_dir.display()))
    })?;
    let store = Store::open(&alerts.state_dir).map_err(|e| NodeError::Setup(e.to_string()))?;
    let clock = match alerts.replay_clock {
        Some(start) => {
            warn!(clock = %start, "REPLAY CLOCK: this node's time is set to {start}, not the system time");
            Clock::replay(start)
        }
        None => Clock::system(),
    };

    let outputs: Vec<Output> = config
        .downstream
        .iter()
        .map(|d| Output {
            name: d.name.clone(),
            rtp: d.address,
            rtcp: rtcp_address(d.address),
            format: d.format,
            kind: d.kind,
        })
        .collect();
    let live = Arc::new(Mutex::new(Live::default()));
    let (commands, mut command_rx) = mpsc::unbounded_channel();
    let state = Arc::new(ApiState {
        node_name: config.name.clone(),
        tier: config.tier.to_string(),
        area: config.area.clone(),
        destinations: config
            .downstream
            .iter()
            .map(|d| DestinationInfo {
                name: d.name.clone(),
                kind: match d.kind {
                    DownstreamKind::Gateway => "gateway".into(),
                    DownstreamKind::Loudspeaker => "loudspeaker".into(),
                },
                area: d.area.to_string(),
                codec: d.format.to_string(),
                address: d.address,
                exercises: d.exercises,
            })
            .collect(),
        operators,
        store: store.clone(),
        rules: rules(&config, &alerts),
        alerts: alerts.clone(),
        engine: SpeechEngine::new(&alerts.speech),
        clock,
        started_at: clock.now(),
        playout: commands,
        live: live.clone(),
        cascade: cascade.clone(),
    });

    let listener = super::bind_api(api.listen).await?;
    let (stop_api, api_stopped) = tokio::sync::oneshot::channel::<()>();
    let router = crate::api::router(state.clone(), routes);
    let api_task = tokio::spawn(crate::api::serve(listener, router, async move {
        let _ = api_stopped.await;
    }));
    info!(
        node = %config.name,
        tier = %config.tier,
        api = %api.listen,
        destinations = outputs.len(),
        "alert node started, control API listening"
    );

    let (rtp_addr, rtcp_addr): (SocketAddr, SocketAddr) = match config.listen {
        Some(listen) => (listen, rtcp_address(listen)),
        None => (([0, 0, 0, 0], 0).into(), ([0, 0, 0, 0], 0).into()),
    };
    let (live_events, mut live_rx) = mpsc::unbounded_channel::<LiveEvent>();
    let mut playout = Playout {
        rtp: bind("RTP", rtp_addr)?,
        rtcp: bind("RTCP", rtcp_addr)?,
        srtp: SrtpLinks::load(&config)?,
        outputs,
        by_rtcp: HashMap::new(),
        sessions: HashMap::new(),
        scheduler: Scheduler::new(
            chrono::Duration::from_std(alerts.gap).unwrap_or(chrono::Duration::seconds(1)),
        ),
        receipts: ReceiptTracker::new(
            chrono::Duration::from_std(config.rtcp_interval * 3)
                .unwrap_or(chrono::Duration::seconds(15)),
            alerts.receipt_max_loss_percent,
        ),
        store,
        clock,
        live,
        config: alerts,
        engine: SpeechEngine::new(&state.alerts.speech),
        tier_rank: tier_rank(config.tier),
        opus_bitrate: config.opus_bitrate,
        anchor: NtpAnchor::now(),
        cname: format!("{}@{}", config.name, config.area),
        programmes: HashMap::new(),
        rendering: HashSet::new(),
        render_permits: Arc::new(tokio::sync::Semaphore::new(RENDER_PERMITS)),
        purposes: HashMap::new(),
        broadcasts: HashMap::new(),
        live_events,
        opus_payload_type: config.opus_payload_type,
        cancelled: HashSet::new(),
        cascade,
        area: config
            .area
            .parse()
            .map_err(|e| NodeError::Setup(format!("node.area: {e}")))?,
        rules: rules(&config, &state.alerts),
        from_cascade: HashMap::new(),
        receipts_sent: HashMap::new(),
        grant_terms: HashMap::new(),
        radio: RadioBearer::new(&config, patching),
    };
    playout.by_rtcp = playout
        .outputs
        .iter()
        .enumerate()
        .map(|(i, o)| (o.rtcp, i))
        .collect();

    let (rendered_tx, mut rendered_rx) = mpsc::unbounded_channel::<Rendered>();
    // The highest alerts are rendered first, so after a restart a red alert does not
    // wait behind blue ones for the speech engine.
    let mut active = playout
        .store
        .list(true, 10_000)
        .await
        .map_err(|e| NodeError::Setup(e.to_string()))?;
    active.sort_by_key(|r| (std::cmp::Reverse(r.alert.level), r.id));
    for record in active {
        playout.consider(record, &rendered_tx);
    }

    let mut sr_schedule = RtcpSchedule::new(config.rtcp_interval);
    sr_schedule.start(Instant::now());
    let mut rtcp_buf = [0u8; 1500];
    let stop = stop_requested();
    tokio::pin!(stop);
    loop {
        let deadline = playout.next_deadline(&sr_schedule);
        tokio::select! {
            biased;
            _ = &mut stop => {
                info!("stop requested");
                break;
            }
            Some(command) = command_rx.recv() => playout.command(command, &rendered_tx).await,
            Some(delivered) = recv_from_cascade(&mut from_cascade) => {
                playout.on_cascade(delivered, &rendered_tx).await;
            }
            Some(rendered) = rendered_rx.recv() => playout.rendered(rendered).await,
            Some(event) = live_rx.recv() => match event {
                LiveEvent::Frame(alert, frame) => playout.on_live_frame(alert, frame),
                LiveEvent::Lost(alert, reason) => playout.source_lost(alert, reason).await,
            },
            received = playout.rtcp.recv_from(&mut rtcp_buf) => {
                let (len, from) = received?;
                playout.on_rtcp(&rtcp_buf[..len], from).await;
            }
            _ = sleep_until(deadline) => {
                let now = Instant::now();
                playout.send_due_frames(now);
                if sr_schedule.poll(now) {
                    playout.send_sender_reports(now, None, None);
                }
                let events = playout.scheduler.poll(playout.clock.now());
                playout.apply(events).await;
                let updates = playout.receipts.poll(playout.clock.now());
                playout.record_receipts(updates).await;
            }
        }
    }

    // The cascade waits on nothing from here any more: what it hands over now is not
    // acknowledged, and comes again after the restart.
    drop(from_cascade.take());
    playout.send_sender_reports(Instant::now(), Some("node stopped"), None);
    let _ = stop_api.send(());
    match api_task.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => warn!(error = %e, "control API stopped with an error"),
        Err(e) => warn!(error = %e, "control API task failed"),
    }
    info!("alert node stopped; alerts not finished resume at the next start");
    Ok(())
}

/// Encodes one frame for `group` and sends it to the group's outputs.
fn send_frame(
    group: &mut Group,
    frame: &[i16],
    at: Instant,
    (rtp, links): (&UdpSocket, &mut SrtpLinks),
    session: SessionId,
) {
    match group.encoder.encode(frame) {
        Ok(payload) => {
            let datagram = group.packetizer.packetize(payload, at);
            if group.first_sequence.is_none() {
                group.first_sequence = datagram.get(2..4).map(|b| u16::from_be_bytes([b[0], b[1]]));
            }
            group.rtp.send(rtp, &datagram, links);
        }
        Err(e) => warn!(session, error = %e, "frame not encoded"),
    }
}

/// The next frame the cascade delivers; never, on a node without a cascade.
async fn recv_from_cascade(
    from: &mut Option<mpsc::UnboundedReceiver<Delivered>>,
) -> Option<Delivered> {
    match from {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

struct Playout {
    rtp: UdpSocket,
    rtcp: UdpSocket,
    /// The SRTP links to the gateways below that have a key.
    srtp: SrtpLinks,
    outputs: Vec<Output>,
    by_rtcp: HashMap<SocketAddr, OutputId>,
    sessions: HashMap<SessionId, Session>,
    scheduler: Scheduler,
    receipts: ReceiptTracker,
    store: Store,
    clock: Clock,
    live: Arc<Mutex<Live>>,
    config: AlertsConfig,
    engine: SpeechEngine,
    tier_rank: u8,
    opus_bitrate: u32,
    anchor: NtpAnchor,
    cname: String,
    /// The samples of one play of each alert the scheduler holds.
    programmes: HashMap<i64, Arc<Vec<i16>>>,
    /// Alerts being rendered, so a second notice does not render twice.
    rendering: HashSet<i64>,
    render_permits: Arc<tokio::sync::Semaphore>,
    /// The running sources of the live broadcasts the scheduler holds.
    broadcasts: HashMap<i64, LiveSource>,
    /// Where the live sources send their frames.
    live_events: mpsc::UnboundedSender<LiveEvent>,
    opus_payload_type: u8,
    /// Each held alert's purpose, for the logs and receipts.
    purposes: HashMap<i64, crate::alert::model::Purpose>,
    /// Alerts cancelled while this node runs: a render that finishes after the
    /// cancel must not schedule them.
    cancelled: HashSet<i64>,
    /// The cascade, where alerts also go down as frames (`[cascade]`).
    cascade: Option<super::cascade::CascadeHandle>,
    /// This node's area, which its receipts name.
    area: AreaCode,
    /// Intake's rules, for alerts that come down the cascade.
    rules: Rules,
    /// Where each held alert that came down the cascade came from.
    from_cascade: HashMap<i64, CascadeSource>,
    /// The counts last sent up in a receipt for each such alert.
    receipts_sent: HashMap<i64, (u16, u16)>,
    /// Each held alert's level and end, which its streams' grants carry.
    grant_terms: HashMap<i64, (crate::alert::model::Level, DateTime<Utc>)>,
    /// The links below that a radio of this node reaches, where there are any.
    radio: Option<RadioBearer>,
}

/// The cascade's 370 MHz bearer at an alert node: each play here of an alert that
/// concerns a neighbour below whose link names a radio and has no IP now (the cascade's
/// route watch says which) goes out on that radio too, ahead of any patch on it.
///
/// It never waits on the cascade or the patching task: the route comes from a watch
/// channel, and announcements are sent without an answer.
struct RadioBearer {
    patching: mpsc::UnboundedSender<super::patching::PatchRequest>,
    /// Link name, neighbour's area, radio port.
    links: Vec<(String, AreaCode, String)>,
    /// The areas of each held alert (not a live broadcast); its level and end are in
    /// the playout's `grant_terms`.
    areas: HashMap<i64, Vec<AreaCode>>,
    /// The last play of each alert handed to the radios: a resumed or out-of-step
    /// session of the same play is not spoken again.
    spoken: HashMap<i64, u32>,
}

impl RadioBearer {
    fn new(
        config: &Config,
        patching: Option<mpsc::UnboundedSender<super::patching::PatchRequest>>,
    ) -> Option<RadioBearer> {
        let links: Vec<(String, AreaCode, String)> = config
            .cascade
            .iter()
            .flat_map(|c| &c.links)
            .filter_map(|l| Some((l.name.clone(), l.peer.clone(), l.radio.clone()?)))
            .collect();
        if links.is_empty() {
            return None;
        }
        for (link, _, radio) in &links {
            info!(%link, %radio, "alerts for this link go out on the radio while it has no IP");
        }
        Some(RadioBearer {
            patching: patching?,
            links,
            areas: HashMap::new(),
            spoken: HashMap::new(),
        })
    }

    /// Hands play `play` of `alert`, at `level` and ending at `until`, to every radio
    /// whose link concerns it and has no IP now, once per radio and play.
    fn speak(
        &mut self,
        (alert, play): (i64, u32),
        (level, until): (crate::alert::model::Level, Instant),
        samples: &Arc<Vec<i16>>,
        routes: &super::cascade::LinkRoutes,
    ) {
        let Some(areas) = self.areas.get(&alert) else {
            return;
        };
        if self.spoken.get(&alert).is_some_and(|last| *last >= play) {
            return;
        }
        self.spoken.insert(alert, play);
        let ip = Some(Some(crate::cascade::frame::BearerKind::Ip));
        let mut ports: Vec<&str> = Vec::new();
        for (link, peer, port) in &self.links {
            let concerned = areas.iter().any(|a| a.concerns(peer));
            if !concerned || routes.get(link).copied() == ip || ports.contains(&port.as_str()) {
                continue;
            }
            ports.push(port);
            info!(alert, play, %link, radio = %port,
                "the link below has no IP: the alert goes out on its radio");
            let _ = self.patching.send(super::patching::PatchRequest::Announce {
                port: port.clone(),
                play: crate::patch::announce::Play {
                    alert,
                    level,
                    samples: samples.clone(),
                    until,
                },
            });
        }
    }

    /// Forgets `alert`; stops it on the radios when it ended short of its plays
    /// (cancelled, expired, failed), not when it is done: its last play runs out.
    fn ended(&mut self, alert: i64, state: AlertState) {
        self.areas.remove(&alert);
        self.spoken.remove(&alert);
        if state != AlertState::Done {
            let _ = self
                .patching
                .send(super::patching::PatchRequest::EndAnnouncement { alert });
        }
    }
}

impl Playout {
    fn instant_of(&self, at: DateTime<Utc>) -> Instant {
        let ahead = (at - self.clock.now()).to_std().unwrap_or_default();
        Instant::now() + ahead
    }

    fn next_deadline(&self, sr: &RtcpSchedule) -> Option<Instant> {
        let frames = self.sessions.values().filter_map(Session::next_due);
        let schedule = self.scheduler.next_deadline().map(|at| self.instant_of(at));
        let receipts = self.receipts.next_deadline().map(|at| self.instant_of(at));
        let reports = (!self.sessions.is_empty())
            .then(|| sr.next_deadline())
            .flatten();
        frames.chain(schedule).chain(receipts).chain(reports).min()
    }

    /// Renders an alert that is due to play, in the background.
    fn consider(&mut self, record: AlertRecord, rendered: &mpsc::UnboundedSender<Rendered>) {
        let id = record.id;
        let playable = matches!(
            record.state,
            AlertState::Accepted | AlertState::Queued | AlertState::Playing
        );
        if !playable || self.scheduler.holds(id) || self.cancelled.contains(&id) {
            return;
        }
        if !self.rendering.insert(id) {
            return;
        }
        let store = self.store.clone();
        let config = self.config.clone();
        let engine = self.engine.clone();
        let permits = self.render_permits.clone();
        let tx = rendered.clone();
        let work = tokio::spawn(async move {
            // A burst of alerts (or a restart with many) must not start a speech
            // engine for each at once.
            let _permit = permits.acquire_owned().await;
            let started = Instant::now();
            let audio = store.audio(id).await.ok().flatten();
            let mut attempt = 1;
            let programme = loop {
                match programme::render(&record.alert, audio.clone(), &config, &engine).await {
                    Ok(p) => break Ok(p),
                    Err(e) if attempt < RENDER_ATTEMPTS && e.is_transient() => {
                        warn!(alert = id, attempt, error = %e, "rendering failed, trying again");
                        attempt += 1;
                        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    }
                    Err(e) => break Err(e.to_string()),
                }
            };
            if let Ok(p) = &programme {
                info!(
                    alert = id,
                    purpose = %record.alert.purpose,
                    voice = %p.voice,
                    seconds = format!("{:.1}", p.duration().as_secs_f64()),
                    render_ms = started.elapsed().as_millis() as u64,
                    "alert rendered"
                );
            }
            Rendered { record, programme }
        });
        // A render that panics still answers, as a failure, so the alert is not left
        // waiting for ever.
        let store = self.store.clone();
        tokio::spawn(async move {
            let rendered = match work.await {
                Ok(rendered) => rendered,
                Err(e) => match store.get(id).await {
                    Ok(record) => Rendered {
                        record,
                        programme: Err(format!("rendering stopped: {e}")),
                    },
                    Err(_) => return,
                },
            };
            let _ = tx.send(rendered);
        });
    }

    async fn command(&mut self, command: Command, rendered: &mpsc::UnboundedSender<Rendered>) {
        match command {
            Command::Changed(id) => match self.store.get(id).await {
                Ok(record) => self.consider(record, rendered),
                Err(e) => warn!(alert = id, error = %e, "cannot read a changed alert"),
            },
            Command::Cancelled(id) => {
                // Plays that finished before the cancel still await their receipts.
                self.cancelled.insert(id);
                // An alert that came down the cascade is its origin's to cancel below.
                let own = !self.from_cascade.contains_key(&id);
                if let (Some(cascade), Ok(number), true) = (&self.cascade, u32::try_from(id), own) {
                    let valid_until = self.clock.now() + chrono::Duration::hours(1);
                    let _ = cascade.requests.send(super::cascade::Request::Cancel {
                        number,
                        valid_until,
                    });
                }
                let events = self.scheduler.cancel(id, self.clock.now());
                self.apply(events).await;
                // Its pending receipts are closed as missed: the origin hears what
                // played before the cancel.
                self.send_receipt_up(id).await;
            }
        }
    }

    async fn rendered(&mut self, rendered: Rendered) {
        let Rendered { record, programme } = rendered;
        let id = record.id;
        self.rendering.remove(&id);
        if self.cancelled.contains(&id) {
            return;
        }
        let programme = match programme {
            Ok(p) => p,
            Err(reason) => {
                error!(alert = id, %reason, "alert cannot be made into sound");
                self.fail(id, record.plays_started, reason).await;
                return;
            }
        };
        let outputs: Vec<OutputId> = record
            .alert
            .targets
            .iter()
            .filter_map(|name| self.outputs.iter().position(|o| &o.name == name))
            .collect();
        // Whole frames, so the scheduler's end of a play is the last frame's end; a
        // live broadcast lasts until it is stopped or its validity ends.
        let frames = programme.samples.len().div_ceil(FRAME_SAMPLES) as u32;
        let play_length = match &record.alert.broadcast {
            Some(source) => {
                let started =
                    live::start(id, source, self.opus_payload_type, self.live_events.clone());
                let live = match started {
                    Ok(live) => live,
                    Err(reason) => {
                        error!(alert = id, %reason, "live broadcast cannot start");
                        self.fail(id, record.plays_started, reason).await;
                        return;
                    }
                };
                self.broadcasts.insert(id, live);
                record.alert.expires - record.alert.effective.max(self.clock.now())
            }
            None => chrono::Duration::from_std(PACKET_DURATION * frames)
                .unwrap_or(chrono::Duration::zero()),
        };
        // Among equals the higher tier wins: an alert from the cascade ranks as its origin.
        let tier_rank = match &record.alert.cascade {
            Some(source) => origin_rank(&source.origin),
            None => self.tier_rank,
        };
        if let Some(source) = &record.alert.cascade {
            self.from_cascade.insert(id, source.clone());
        }
        let job = Job {
            alert: id,
            level: record.alert.level,
            tier_rank,
            order: id,
            effective: record.alert.effective,
            expires: record.alert.expires,
            plays_started: record.plays_started,
            repeat: record.alert.repeat,
            play_length,
            outputs,
        };
        self.programmes.insert(id, programme.samples.clone());
        self.purposes.insert(id, record.alert.purpose);
        self.grant_terms
            .insert(id, (record.alert.level, record.alert.expires));
        if let (Some(radio), None) = (&mut self.radio, &record.alert.broadcast) {
            radio.areas.insert(id, record.alert.areas.clone());
        }
        self.send_down_the_cascade(id, &record.alert);
        let events = self.scheduler.add(job, self.clock.now());
        self.apply(events).await;
    }

    /// Hands alert `id` to the cascade, as the text the narrow bearers carry; the
    /// cascade sends each alert once, across restarts too. A live broadcast has no text
    /// to send.
    fn send_down_the_cascade(&self, id: i64, alert: &crate::alert::intake::Admitted) {
        let (Some(cascade), Ok(number)) = (&self.cascade, u32::try_from(id)) else {
            return;
        };
        // One that came down the cascade goes on below with the frame it came in.
        if alert.broadcast.is_some()
            || alert.kind != crate::alert::intake::Kind::Alert
            || alert.cascade.is_some()
        {
            return;
        }
        let text = crate::alert::shorten::cascade_text(alert);
        let _ = cascade.requests.send(super::cascade::Request::Alert {
            number,
            level: alert.level,
            targets: alert.areas.clone(),
            text,
            valid_until: alert.expires,
        });
    }

    /// Records that alert `id` failed, and why.
    async fn fail(&self, id: i64, plays_started: u32, reason: String) {
        let now = self.clock.now();
        if let Err(e) = self
            .store
            .set_progress(id, AlertState::Failed, plays_started, Some(reason), now)
            .await
        {
            error!(alert = id, error = %e, "cannot record the failure");
        }
    }

    /// The source of live broadcast `alert` is lost: the broadcast ends as failed,
    /// with the reason, and stops on every loudspeaker; what they played until then
    /// still earns its receipts.
    async fn source_lost(&mut self, alert: i64, reason: String) {
        if self.broadcasts.remove(&alert).is_none() {
            return;
        }
        warn!(alert, %reason, "live broadcast ends: its source is lost");
        // The count of plays started is kept: MAX in the store.
        self.fail(alert, 0, reason).await;
        self.cancelled.insert(alert);
        let events = self.scheduler.cancel(alert, self.clock.now());
        self.apply(events).await;
    }

    /// Carries out the scheduler's decisions.
    async fn apply(&mut self, events: Vec<Event>) {
        for event in events {
            match event {
                Event::Start {
                    session,
                    alert,
                    outputs,
                    plays_started,
                } => self.start(session, alert, outputs, plays_started).await,
                Event::Stop {
                    session,
                    outputs,
                    reason,
                } => self.stop(session, &outputs, reason),
                Event::State {
                    alert,
                    state,
                    plays_started,
                } => {
                    if state.is_final() {
                        self.programmes.remove(&alert);
                        self.grant_terms.remove(&alert);
                        if let Some(radio) = &mut self.radio {
                            radio.ended(alert, state);
                        }
                        // Dropping a live source stops it.
                        self.broadcasts.remove(&alert);
                    }
                    info!(alert, %state, plays_started, "alert playout");
                    // A cancel was recorded by the API with its reason already.
                    if state != AlertState::Cancelled {
                        let store = self.store.clone();
                        let now = self.clock.now();
                        let recorded = tokio::spawn(async move {
                            if let Err(e) = store
                                .set_progress(alert, state, plays_started, None, now)
                                .await
                            {
                                error!(alert, error = %e, "cannot record the alert's progress");
                            }
                        });
                        // An alert that ended short (expired) has closed its pending
                        // receipts by now: the origin hears what played.
                        if state.is_final() && state != AlertState::Done {
                            let _ = recorded.await;
                            self.send_receipt_up(alert).await;
                        }
                    }
                }
            }
        }
    }

    async fn start(
        &mut self,
        session: SessionId,
        alert: i64,
        outputs: Vec<OutputId>,
        plays_started: u32,
    ) {
        // Durable before the first packet: a crash from here on counts this play. If
        // the database cannot take the write, the alert plays all the same: a missed
        // alarm is worse than a repeat after a crash that nothing recorded.
        if let Err(e) = self
            .store
            .set_progress(
                alert,
                AlertState::Playing,
                plays_started,
                None,
                self.clock.now(),
            )
            .await
        {
            error!(alert, error = %e, "cannot record the start of a play; playing anyway");
        }
        let Some(samples) = self.programmes.get(&alert).cloned() else {
            warn!(
                alert,
                session, "no programme for a play the scheduler started"
            );
            return;
        };
        let mut groups: Vec<Group> = Vec::new();
        for output in &outputs {
            let Some(o) = self.outputs.get(*output) else {
                continue;
            };
            match groups
                .iter_mut()
                .find(|g| g.packetizer.format() == o.format)
            {
                Some(group) => group.outputs.push(*output),
                None => match FrameEncoder::new(o.format, self.opus_bitrate) {
                    Ok(encoder) => groups.push(Group {
                        encoder,
                        packetizer: Packetizer::new(o.format),
                        outputs: vec![*output],
                        rtp: Destinations::none(Packet::Rtp),
                        first_sequence: None,
                    }),
                    Err(e) => error!(alert, error = %e, "cannot create an encoder"),
                },
            }
        }
        for group in &mut groups {
            let addresses: Vec<SocketAddr> =
                group.outputs.iter().map(|o| self.outputs[*o].rtp).collect();
            group.rtp = Destinations::new(Packet::Rtp, &addresses, &self.srtp);
        }
        self.grant_streams(alert, &groups);
        let names: Vec<&str> = outputs
            .iter()
            .map(|o| self.outputs[*o].name.as_str())
            .collect();
        info!(alert, session, play = plays_started, outputs = %names.join(", "), "play started");
        if let Ok(mut live) = self.live.lock() {
            for output in &outputs {
                live.destinations
                    .entry(self.outputs[*output].name.clone())
                    .or_default()
                    .playing = Some(alert);
            }
        }
        self.sessions.insert(
            session,
            Session {
                alert,
                samples: samples.clone(),
                next: 0,
                start: Instant::now(),
                groups,
                live: self.broadcasts.contains_key(&alert),
            },
        );
        self.send_due_frames(Instant::now());
        // An early sender report lets receivers map the stream to wall-clock time.
        self.send_sender_reports(Instant::now(), None, Some(session));
        let terms = self
            .grant_terms
            .get(&alert)
            .map(|(level, end)| (*level, self.instant_of(*end)));
        if let (Some(radio), Some(cascade), Some(terms)) = (&mut self.radio, &self.cascade, terms) {
            let routes = cascade.routes.borrow();
            radio.speak((alert, plays_started), terms, &samples, &routes);
        }
    }

    /// In a cascade, grants each stream of a play that goes to a gateway below, before
    /// its first packet: a relaying gateway forwards no stream without one.
    fn grant_streams(&self, alert: i64, groups: &[Group]) {
        let (Some(cascade), Some(&(level, valid_until))) =
            (&self.cascade, self.grant_terms.get(&alert))
        else {
            return;
        };
        for group in groups {
            let to_gateway = group.outputs.iter().any(|o| {
                self.outputs
                    .get(*o)
                    .is_some_and(|o| o.kind == DownstreamKind::Gateway)
            });
            if to_gateway {
                let _ = cascade.requests.send(super::cascade::Request::Grant {
                    ssrc: group.packetizer.ssrc(),
                    level,
                    valid_until,
                });
            }
        }
    }

    fn stop(&mut self, id: SessionId, outputs: &[OutputId], reason: StopReason) {
        let Some(session) = self.sessions.get_mut(&id) else {
            return;
        };
        let alert = session.alert;
        let now = Instant::now();
        for group in &mut session.groups {
            let leaving: Vec<OutputId> = group
                .outputs
                .iter()
                .copied()
                .filter(|o| outputs.contains(o))
                .collect();
            if leaving.is_empty() {
                continue;
            }
            // Tell the leaving outputs the stream has ended for them.
            let why = match reason {
                StopReason::Finished => "end of play".to_string(),
                StopReason::Preempted { by } => format!("pre-empted by alert {by}"),
                StopReason::Cancelled => "alert cancelled".to_string(),
                StopReason::Expired => "alert expired".to_string(),
            };
            if let Some(sender) = group.packetizer.sender_info(now, &self.anchor) {
                let note = note(alert, self.purposes.get(&alert).copied());
                let spec = CompoundSpec {
                    ssrc: sender.ssrc,
                    sender: Some(sender),
                    blocks: &[],
                    cname: &self.cname,
                    bye_reason: Some(&why),
                    note: Some(&note),
                };
                if let Ok(datagram) = build_compound(&spec) {
                    let rtcp: Vec<SocketAddr> =
                        leaving.iter().map(|o| self.outputs[*o].rtcp).collect();
                    Destinations::new(Packet::Rtcp, &rtcp, &self.srtp).send(
                        &self.rtcp,
                        &datagram,
                        &mut self.srtp,
                    );
                }
            }
            // A live broadcast ends by being stopped: what was sent counts as its play.
            let ended =
                reason == StopReason::Finished || (session.live && reason == StopReason::Cancelled);
            if ended {
                for output in &leaving {
                    if self.outputs[*output].kind == DownstreamKind::Loudspeaker {
                        self.receipts.play_sent(
                            alert,
                            *output,
                            group.packetizer.ssrc(),
                            group.first_sequence.unwrap_or(0),
                            group.packetizer.packet_count(),
                            self.clock.now(),
                        );
                    }
                }
            }
            group.outputs.retain(|o| !leaving.contains(o));
            let addresses: Vec<SocketAddr> =
                group.outputs.iter().map(|o| self.outputs[*o].rtp).collect();
            group.rtp = Destinations::new(Packet::Rtp, &addresses, &self.srtp);
            let names: Vec<&str> = leaving
                .iter()
                .map(|o| self.outputs[*o].name.as_str())
                .collect();
            info!(alert, session = id, outputs = %names.join(", "), reason = %why, "play stopped");
        }
        if let Ok(mut live) = self.live.lock() {
            for output in outputs {
                if let Some(d) = live.destinations.get_mut(&self.outputs[*output].name) {
                    if d.playing == Some(alert) {
                        d.playing = None;
                    }
                }
            }
        }
        session.groups.retain(|g| !g.outputs.is_empty());
        if session.groups.is_empty() {
            self.sessions.remove(&id);
        }
    }

    /// A frame of live broadcast `alert`, sent to every play of it whose attention
    /// signal has ended; a frame that comes while the signal sounds, or while the
    /// broadcast is pre-empted, is dropped: the voice is live, not queued.
    fn on_live_frame(&mut self, alert: i64, frame: Vec<i16>) {
        let now = Instant::now();
        for (id, session) in &mut self.sessions {
            if session.alert != alert || !session.live || session.next < session.samples.len() {
                continue;
            }
            for group in &mut session.groups {
                send_frame(group, &frame, now, (&self.rtp, &mut self.srtp), *id);
            }
        }
    }

    /// Sends every frame that is due, in every session.
    fn send_due_frames(&mut self, now: Instant) {
        for (id, session) in &mut self.sessions {
            while let Some(due) = session.next_due() {
                if due > now {
                    break;
                }
                let end = (session.next + FRAME_SAMPLES).min(session.samples.len());
                let mut frame = session.samples[session.next..end].to_vec();
                frame.resize(FRAME_SAMPLES, 0);
                session.next = end;
                for group in &mut session.groups {
                    // The stream's clock runs from the frame's nominal time.
                    send_frame(group, &frame, due, (&self.rtp, &mut self.srtp), *id);
                }
            }
        }
    }

    /// Sender reports (and a BYE when stopping) for every session, or for `only`.
    fn send_sender_reports(&mut self, now: Instant, bye: Option<&str>, only: Option<SessionId>) {
        for (id, session) in &self.sessions {
            if only.is_some_and(|o| o != *id) {
                continue;
            }
            // The relays downstream learn from the note which alert the stream is.
            let note = note(session.alert, self.purposes.get(&session.alert).copied());
            for group in &session.groups {
                let Some(sender) = group.packetizer.sender_info(now, &self.anchor) else {
                    continue;
                };
                let spec = CompoundSpec {
                    ssrc: sender.ssrc,
                    sender: Some(sender),
                    blocks: &[],
                    cname: &self.cname,
                    bye_reason: bye,
                    note: Some(&note),
                };
                if let Ok(datagram) = build_compound(&spec) {
                    let rtcp: Vec<SocketAddr> = group
                        .outputs
                        .iter()
                        .map(|o| self.outputs[*o].rtcp)
                        .collect();
                    Destinations::new(Packet::Rtcp, &rtcp, &self.srtp).send(
                        &self.rtcp,
                        &datagram,
                        &mut self.srtp,
                    );
                }
            }
        }
    }

    async fn on_rtcp(&mut self, datagram: &[u8], from: SocketAddr) {
        let Some(&output) = self.by_rtcp.get(&from) else {
            debug!(%from, "RTCP from an address that is no destination");
            return;
        };
        let Some(datagram) = self.srtp.open_from_downstream(datagram, from) else {
            return;
        };
        let events = match parse_compound(&datagram) {
            Ok(events) => events,
            Err(e) => {
                debug!(%from, error = %e, "RTCP dropped");
                return;
            }
        };
        let mut updates = Vec::new();
        for event in events {
            let RtcpEvent::ReceptionReport { block, .. } = event else {
                continue;
            };
            let clock = f64::from(self.outputs[output].format.clock_rate()) / 1000.0;
            if let Ok(mut live) = self.live.lock() {
                let d = live
                    .destinations
                    .entry(self.outputs[output].name.clone())
                    .or_default();
                d.last_report_at = Some(self.clock.now());
                d.loss_percent = Some(f64::from(block.fraction_lost) * 100.0 / 256.0);
                d.jitter_ms = Some(f64::from(block.jitter) / clock);
            }
            updates.extend(self.receipts.report(output, &block));
        }
        self.record_receipts(updates).await;
    }

    async fn record_receipts(&mut self, updates: Vec<Update>) {
        let mut touched = HashSet::new();
        for update in updates {
            let o = &self.outputs[update.output];
            let purpose = self
                .purposes
                .get(&update.alert)
                .copied()
                .unwrap_or(crate::alert::model::Purpose::Actual);
            info!(
                alert = update.alert,
                %purpose,
                loudspeaker = %o.name,
                receipt = update.verdict.state(),
                detail = %update.verdict.detail(),
                "receipt"
            );
            let receipt = Receipt {
                loudspeaker: o.name.clone(),
                via: String::new(),
                state: update.verdict.state().to_string(),
                detail: update.verdict.detail(),
            };
            if let Err(e) = self
                .store
                .put_receipts(update.alert, vec![receipt], self.clock.now())
                .await
            {
                warn!(alert = update.alert, error = %e, "cannot record a receipt");
            }
            touched.insert(update.alert);
        }
        for alert in touched {
            self.send_receipt_up(alert).await;
        }
    }

    /// Tells the origin of `alert`, when it came down the cascade, how many of this
    /// node's loudspeakers played it: once every loudspeaker has a verdict (a cancel or
    /// expiry gives the ones that had not played theirs), and again when a later play
    /// changes the count.
    async fn send_receipt_up(&mut self, alert: i64) {
        let (Some(source), Some(cascade)) = (self.from_cascade.get(&alert), &self.cascade) else {
            return;
        };
        let receipts = match self.store.receipts(alert).await {
            Ok(r) => r,
            Err(e) => {
                warn!(alert, error = %e, "cannot read the receipts to send up");
                return;
            }
        };
        if receipts.iter().any(|r| r.state == "pending") {
            return;
        }
        let count = |keep: &dyn Fn(&str) -> bool| {
            u16::try_from(receipts.iter().filter(|r| keep(&r.state)).count()).unwrap_or(u16::MAX)
        };
        let played = count(&|s| s == "played");
        let loudspeakers = count(&|s| s != "skipped");
        if self.receipts_sent.get(&alert) == Some(&(played, loudspeakers)) {
            return;
        }
        self.receipts_sent.insert(alert, (played, loudspeakers));
        let bearer = BearerKind::from_name(&source.bearer).unwrap_or(BearerKind::Ip);
        let _ = cascade
            .requests
            .send(super::cascade::Request::Receipt(FrameReceipt {
                alert_origin: source.origin.clone(),
                alert_number: source.number,
                area: self.area.clone(),
                played,
                loudspeakers,
                bearer,
            }));
    }

    /// Acts on what came down (or up) the cascade, and answers whether it is stored.
    async fn on_cascade(
        &mut self,
        delivered: Delivered,
        rendered: &mpsc::UnboundedSender<Rendered>,
    ) {
        match delivered {
            Delivered::Alert { frame, stored } => {
                let _ = stored.send(self.take_frame_alert(frame, rendered).await);
            }
            Delivered::Cancel {
                origin,
                number,
                stored,
            } => {
                let _ = stored.send(self.take_frame_cancel(origin, number, rendered).await);
            }
            Delivered::Receipt {
                origin,
                sequence,
                receipt,
                stored,
            } => {
                let _ = stored.send(self.take_frame_receipt(origin, sequence, receipt).await);
            }
        }
    }

    /// Stores an alert that came down the cascade and plays it; `false` only when the
    /// store failed. The same alert again (over another bearer, or resent after a
    /// restart) is the stored one, and plays once.
    async fn take_frame_alert(
        &mut self,
        frame: FrameAlert,
        rendered: &mpsc::UnboundedSender<Rendered>,
    ) -> bool {
        match self
            .store
            .cancelled_in_cascade(frame.origin.to_string(), frame.number)
            .await
        {
            Ok(true) => {
                info!(origin = %frame.origin, number = frame.number,
                    "alert from the cascade already cancelled by its origin: not played");
                return true;
            }
            Ok(false) => {}
            Err(e) => {
                error!(error = %e, "cannot read the alert database");
                return false;
            }
        }
        let sender = FrameAlert::sender_of(&frame.origin);
        match self.store.find(sender.clone(), frame.identifier()).await {
            Ok(Some(id)) => {
                debug!(alert = id, origin = %frame.origin, number = frame.number, "alert from the cascade already stored");
                return true;
            }
            Ok(None) => {}
            Err(e) => {
                error!(error = %e, "cannot read the alert database");
                return false;
            }
        }
        let replaces = if frame.update {
            match self.store.find(sender, frame.number.to_string()).await {
                Ok(earlier) => earlier.into_iter().collect(),
                Err(e) => {
                    error!(error = %e, "cannot read the alert database");
                    return false;
                }
            }
        } else {
            Vec::new()
        };
        let now = self.clock.now();
        let admitted =
            match self
                .rules
                .admit_frame(&frame, replaces, &self.config.attention.to_string(), now)
            {
                Ok(a) => a,
                Err(refusal) => {
                    // Said and not stored: the frame still goes on to the nodes below.
                    warn!(origin = %frame.origin, number = frame.number, reason = %refusal,
                    "alert from the cascade not played here");
                    return true;
                }
            };
        let loudspeakers = self
            .outputs
            .iter()
            .filter(|o| o.kind == DownstreamKind::Loudspeaker && admitted.targets.contains(&o.name))
            .map(|o| o.name.clone())
            .collect();
        let (origin, number, level) = (frame.origin.clone(), frame.number, admitted.level);
        let inserted = self
            .store
            .insert(
                NewAlert {
                    alert: admitted,
                    state: AlertState::Accepted,
                    operator: FrameAlert::sender_of(&origin),
                    cap: None,
                    loudspeakers,
                    stop_replaced: true,
                },
                now,
            )
            .await;
        let inserted = match inserted {
            Ok(i) => i,
            Err(e) => {
                error!(%origin, number, error = %e, "cannot store an alert from the cascade");
                return false;
            }
        };
        info!(alert = inserted.id, %origin, number, %level, over = %frame.bearer,
            "alert from the cascade accepted");
        for old in inserted.stopped {
            self.command(Command::Cancelled(old), rendered).await;
        }
        self.command(Command::Changed(inserted.id), rendered).await;
        true
    }

    /// Cancels the alert `origin` sent as `number`, if it is here; `false` only when the
    /// store failed.
    async fn take_frame_cancel(
        &mut self,
        origin: AreaCode,
        number: u32,
        rendered: &mpsc::UnboundedSender<Rendered>,
    ) -> bool {
        // Remembered first, so the alert itself, should it come later (a lost datagram
        // retried, a slow terminal), never plays.
        if let Err(e) = self
            .store
            .cancel_from_cascade(origin.to_string(), number, self.clock.now())
            .await
        {
            error!(%origin, number, error = %e, "cannot record a cancel from the cascade");
            return false;
        }
        let sender = FrameAlert::sender_of(&origin);
        let id = match self.store.find(sender, number.to_string()).await {
            Ok(Some(id)) => id,
            Ok(None) => {
                info!(%origin, number, "cancel from the cascade for an alert not here (yet): it will not play");
                return true;
            }
            Err(e) => {
                error!(error = %e, "cannot read the alert database");
                return false;
            }
        };
        let change = Transition::cancel(format!("cancelled by {origin}"));
        match self
            .store
            .transition(id, change, FrameAlert::sender_of(&origin), self.clock.now())
            .await
        {
            Ok(_) => {
                info!(alert = id, %origin, number, "alert cancelled from the cascade");
                self.command(Command::Cancelled(id), rendered).await;
                true
            }
            // Already over: nothing left to stop.
            Err(StoreError::Conflict(_)) => true,
            Err(e) => {
                error!(alert = id, error = %e, "cannot record a cancel from the cascade");
                false
            }
        }
    }

    /// Records a receipt from a node below for one of this node's own alerts; `false`
    /// only when the store failed.
    async fn take_frame_receipt(
        &mut self,
        origin: AreaCode,
        sequence: u32,
        receipt: FrameReceipt,
    ) -> bool {
        if receipt.alert_origin != self.area {
            // On its way to another origin: the relay passes it on.
            return true;
        }
        // A node speaks for its own loudspeakers only: a receipt for another place, even
        // one signed by a node this one trusts, is no confirmation.
        if receipt.area != origin {
            warn!(alert = receipt.alert_number, area = %receipt.area, signed_by = %origin,
                "receipt from the cascade for a place other than its sender's: not counted");
            return true;
        }
        let id = i64::from(receipt.alert_number);
        let area = AreaReceipt {
            area: receipt.area.to_string(),
            played: receipt.played,
            loudspeakers: receipt.loudspeakers,
            bearer: receipt.bearer.as_str().to_string(),
            sequence,
            updated_at: self.clock.now(),
        };
        match self.store.put_area_receipt(id, area).await {
            Ok(()) => {
                info!(alert = id, area = %receipt.area, played = receipt.played,
                    loudspeakers = receipt.loudspeakers, over = receipt.bearer.as_str(),
                    "receipt from the cascade");
                true
            }
            Err(StoreError::NotFound(_)) => {
                warn!(alert = id, area = %receipt.area, "receipt from the cascade for an alert this node does not have");
                true
            }
            Err(e) => {
                error!(alert = id, error = %e, "cannot record a receipt from the cascade");
                false
            }
        }
    }
}
