//! The patching task: the node's radio ports, RTP links and loudspeaker zones around
//! one [`PatchBus`].
//!
//! It starts a task per `[[radio]]`, `[[link]]` and `[[zone]]`, loads the permanent patches from the
//! configuration and the live ones from the state directory, and then moves audio:
//! what a port hears goes to the bus, what the bus routes goes to the ports. Operators
//! change patches through [`PatchRequest`]s (the control API) and DTMF commands; live
//! patches are written to the state directory on every change. SIGHUP re-reads the
//! configuration: ports whose settings changed are restarted, the others and the audio
//! they carry are left alone, and permanent patches are brought in line.
//!
//! A panic in a port task is a bug: its PTT has been released by then (the panic hook
//! and the task's unwinding), and the node stops every other port and exits with an
//! error, for the service manager to restart it clean.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tracing::{debug, error, info, warn};

use super::NodeError;
use super::link::{self, NetSettings};
use super::radio::{self, MemberConfig, PortCommand, PortEvent, PortHandle};
use super::recorder::{Recorder, RecorderConfig};
use crate::config::{Config, PatchingConfig};
use crate::patch::announce::{AnnounceEvent, Announcements, Play};
use crate::patch::bus::{BusOutput, PatchBus, PatchError};
use crate::patch::dtmf::{DtmfCommands, PatchCommand};
use crate::patch::floor::FloorEvent;
use crate::patch::store::PatchStore;
use crate::patch::{MemberId, PatchMode, PatchSpec};

/// How long stopping waits for the ports to release PTT and close.
const STOP_LIMIT: Duration = Duration::from_secs(3);

/// Between two alert plays on a radio, beyond its PTT hang: enough for PTT to drop, so
/// each play is an over of its own under the transmit time-out.
const ANNOUNCEMENT_GAP_MARGIN: Duration = Duration::from_millis(500);

/// A patch as the API shows it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct PatchStatus {
    pub name: String,
    pub number: u16,
    #[schema(value_type = Vec<String>)]
    pub members: Vec<MemberId>,
    /// `patch` or `simulselect`.
    pub mode: String,
    /// The simulselect console, if any.
    pub console: Option<String>,
    pub permanent: bool,
    /// The member holding the floor now.
    pub talking: Option<String>,
}

/// A radio port as the API shows it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct PortStatus {
    pub name: String,
    pub up: bool,
    /// Why it is down.
    pub fault: Option<String>,
    pub receiving: bool,
    pub locked_out: bool,
}

/// What an operator asks of the patching task.
#[derive(Debug)]
pub enum PatchRequest {
    List(oneshot::Sender<(Vec<PatchStatus>, Vec<PortStatus>)>),
    /// Create or change a live patch; a number of 0 takes the lowest free one.
    Upsert(PatchSpec, oneshot::Sender<Result<PatchStatus, PatchError>>),
    Remove(String, oneshot::Sender<Result<PatchStatus, PatchError>>),
    /// Re-read the configuration, as SIGHUP does.
    Reload(oneshot::Sender<Result<String, String>>),
    /// Speak one play of an alert on radio `port`, ahead of any patch
    /// ([`crate::patch::announce`]). Not answered: the alert playout must never wait on
    /// this task; an unknown port is logged here, and a port that is down keeps the play
    /// until it is back (or the alert ends).
    Announce {
        port: String,
        play: Play,
    },
    /// Stop every announcement of alert `alert`.
    EndAnnouncement {
        alert: i64,
    },
}

/// The running patching task.
pub struct Patching {
    pub requests: mpsc::UnboundedSender<PatchRequest>,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), NodeError>>,
}

impl Patching {
    /// Starts patching as `config` describes; `config_path` is re-read on reload;
    /// `upstream_active` says when the node relays a stream its zones yield to.
    pub fn start(
        config: &Config,
        config_path: Option<PathBuf>,
        upstream_active: tokio::sync::watch::Receiver<bool>,
    ) -> Option<Patching> {
        let patching = config.patching.clone()?;
        let (requests, inbox) = mpsc::unbounded_channel();
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(run(patching, config_path, upstream_active, inbox, stopped));
        Some(Patching {
            requests,
            stop: Some(stop),
            task,
        })
    }

    /// Resolves if the task ends by itself: only on a fault.
    pub async fn failed(&mut self) -> NodeError {
        match (&mut self.task).await {
            Ok(Err(e)) => e,
            Ok(Ok(())) => NodeError::Setup("patching stopped".into()),
            Err(e) => NodeError::Setup(format!("patching task: {e}")),
        }
    }

    /// Stops every port (PTT released) and waits for them.
    pub async fn stop(mut self) -> Result<(), NodeError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.task.await {
            Ok(result) => result,
            Err(e) => Err(NodeError::Setup(format!("patching task: {e}"))),
        }
    }
}

struct State {
    config: PatchingConfig,
    config_path: Option<PathBuf>,
    bus: PatchBus,
    store: PatchStore,
    ports: BTreeMap<MemberId, PortHandle>,
    tasks: JoinSet<MemberId>,
    events: mpsc::UnboundedSender<PortEvent>,
    dtmf: HashMap<MemberId, DtmfCommands>,
    faults: BTreeMap<MemberId, Option<String>>,
    receiving: BTreeMap<MemberId, bool>,
    recorder: Option<Recorder>,
    net: NetSettings,
    announcements: Announcements,
}

async fn run(
    config: PatchingConfig,
    config_path: Option<PathBuf>,
    upstream_active: tokio::sync::watch::Receiver<bool>,
    mut inbox: mpsc::UnboundedReceiver<PatchRequest>,
    mut stopped: oneshot::Receiver<()>,
) -> Result<(), NodeError> {
    let (events, mut port_events) = mpsc::unbounded_channel();
    let store = PatchStore::new(&config.state_dir);
    let bus = PatchBus::new(config.floor, config.members());
    let recorder = match &config.recordings {
        None => None,
        Some(dir) => Some(
            Recorder::start(RecorderConfig {
                dir: dir.clone(),
                retention: config.retention,
            })
            .map_err(NodeError::Setup)?,
        ),
    };
    let net = NetSettings {
        opus_payload_type: config.opus_payload_type,
        opus_bitrate: config.opus_bitrate,
        upstream_active,
    };
    let mut state = State {
        net,
        recorder,
        config_path,
        bus,
        store,
        ports: BTreeMap::new(),
        tasks: JoinSet::new(),
        events,
        dtmf: HashMap::new(),
        faults: BTreeMap::new(),
        receiving: BTreeMap::new(),
        config: config.clone(),
        announcements: Announcements::default(),
    };
    state.load_patches()?;
    for member in members_of(&config) {
        state.start_member(member);
    }
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;

    let result = loop {
        let deadline = [
            state.bus.next_deadline(),
            state.announcements.next_deadline(),
        ]
        .into_iter()
        .flatten()
        .min();
        tokio::select! {
            _ = &mut stopped => break Ok(()),
            Some(event) = port_events.recv() => state.on_port_event(event),
            Some(request) = inbox.recv() => state.on_request(request),
            _ = hangup.recv() => {
                match state.reload() {
                    Ok(summary) => info!(%summary, "configuration reloaded"),
                    Err(e) => error!(error = %e, "reload refused; the running configuration stays"),
                }
            }
            _ = sleep_until(deadline) => {
                let now = Instant::now();
                state.bus.poll(now);
                state.announce(now);
            }
            Some(ended) = state.tasks.join_next() => {
                if let Err(e) = ended && e.is_panic() {
                    break Err(NodeError::Setup(
                        "a radio port task panicked; PTT was released on every port".into(),
                    ));
                }
            }
        }
        state.carry_out();
    };

    state.stop_ports().await;
    result
}

fn log_announcements(events: &[AnnounceEvent]) {
    for event in events {
        match event {
            AnnounceEvent::Started {
                port,
                alert,
                seconds,
            } => info!(%port, alert, seconds, "alert going out as voice on the radio"),
            AnnounceEvent::Waiting { port, alert, ahead } => {
                info!(%port, alert, ahead, "alert waits for the radio (behind what is on air, or for the radio to come back)")
            }
            AnnounceEvent::Interrupted { port, alert } => {
                info!(%port, alert, "alert on the radio interrupted (by a higher one, or the radio going down): it goes out again whole after")
            }
            AnnounceEvent::Finished { port, alert } => {
                info!(%port, alert, "alert sent as voice on the radio")
            }
            AnnounceEvent::Stopped { port, alert } => {
                info!(%port, alert, "alert on the radio stopped")
            }
        }
    }
}

/// Every member task the configuration asks for.
fn members_of(config: &PatchingConfig) -> Vec<MemberConfig> {
    let radios = config
        .radios
        .iter()
        .map(|r| MemberConfig::Radio(Box::new(r.clone())));
    let links = config.links.iter().cloned().map(MemberConfig::Link);
    let zones = config.zones.iter().cloned().map(MemberConfig::Zone);
    radios.chain(links).chain(zones).collect()
}

fn member_name(member: &MemberConfig) -> MemberId {
    MemberId(match member {
        MemberConfig::Radio(r) => r.name.clone(),
        MemberConfig::Link(l) => l.name.clone(),
        MemberConfig::Zone(z) => z.name.clone(),
    })
}

pub(super) async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
        None => std::future::pending().await,
    }
}

impl State {
    fn start_member(&mut self, member: MemberConfig) {
        let events = self.events.clone();
        let (name, handle) = match member {
            MemberConfig::Radio(radio) => {
                let name = MemberId(radio.name.clone());
                self.dtmf.insert(
                    name.clone(),
                    DtmfCommands::new(self.config.dtmf_pin.clone(), self.config.dtmf_inter_digit),
                );
                (name, radio::spawn(*radio, events, &mut self.tasks))
            }
            MemberConfig::Link(l) => (
                MemberId(l.name.clone()),
                link::spawn_link(l, &self.net, events, &mut self.tasks),
            ),
            MemberConfig::Zone(z) => (
                MemberId(z.name.clone()),
                link::spawn_zone(z, &self.net, events, &mut self.tasks),
            ),
        };
        self.faults.insert(name.clone(), Some("starting".into()));
        self.ports.insert(name, handle);
    }

    fn load_patches(&mut self) -> Result<(), NodeError> {
        let now = Instant::now();
        for spec in self.config.patches.clone() {
            if let Err(e) = self.bus.upsert(spec, now) {
                return Err(NodeError::Setup(e.to_string()));
            }
        }
        let stored = match self.store.load() {
            Ok(stored) => stored,
            Err(e) => {
                // A damaged file must not keep every radio down: it is kept aside for
                // inspection, and the node starts with its permanent patches.
                let aside = self.store.path().with_extension("json.damaged");
                let moved = std::fs::rename(self.store.path(), &aside);
                error!(error = %e, kept_as = %aside.display(), moved = moved.is_ok(),
                    "stored live patches unreadable: starting with the permanent ones only");
                Vec::new()
            }
        };
        for spec in stored {
            let name = spec.name.clone();
            if self.bus.patch(&name).is_some_and(|p| p.permanent) {
                warn!(patch = %name, "stored live patch has the name of a permanent one: dropped");
                continue;
            }
            match self.bus.upsert(spec, now) {
                Ok(()) => info!(patch = %name, "live patch restored"),
                Err(e) => {
                    warn!(patch = %name, error = %e, "stored live patch no longer fits: dropped")
                }
            }
        }
        let count = self.bus.patches().count();
        info!(patches = count, store = %self.store.path().display(), "patching ready");
        Ok(())
    }

    /// Stores the live patches; an error is logged and given back for the operator.
    fn save(&self) -> Result<(), PatchError> {
        self.store
            .save(self.bus.patches().map(|(spec, _)| spec))
            .map_err(|e| {
                error!(error = %e, "live patches not stored: they will not survive a restart");
                PatchError::NotStored(e.to_string())
            })
    }

    /// Removes a live patch, ending its recording as stopped.
    fn remove_patch(&mut self, name: &str, now: Instant) -> Result<PatchSpec, PatchError> {
        if let Some(recorder) = &mut self.recorder {
            recorder.end(name, "stopped", chrono::Utc::now());
        }
        self.bus.remove(name, false, now)
    }

    fn on_port_event(&mut self, event: PortEvent) {
        let now = Instant::now();
        match event {
            PortEvent::Up(name) => {
                let events = self.announcements.resume(&name, now);
                log_announcements(&events);
                self.faults.insert(name, None);
                self.announce(now);
            }
            PortEvent::Down(name, reason) => {
                self.bus.on_carrier(&name, false, now);
                self.receiving.insert(name.clone(), false);
                log_announcements(&self.announcements.pause(&name));
                self.faults.insert(name, Some(reason));
            }
            PortEvent::Carrier(name, open) => {
                self.receiving.insert(name.clone(), open);
                self.bus.on_carrier(&name, open, now);
                if !open && let Some(reader) = self.dtmf.get_mut(&name) {
                    reader.reset();
                }
            }
            PortEvent::Audio(name, frame) => self.bus.on_audio(&name, frame),
            PortEvent::Dtmf(name, digit) => self.on_digit(name, digit, now),
        }
    }

    fn on_digit(&mut self, member: MemberId, digit: char, now: Instant) {
        // A stuck carrier's tones are not commands.
        if self.bus.is_locked_out(&member) {
            return;
        }
        let Some(reader) = self.dtmf.get_mut(&member) else {
            return;
        };
        let command = match reader.on_digit(digit, now) {
            None => return,
            Some(Err(refusal)) => {
                warn!(port = %member, %refusal, "DTMF patch command refused");
                return;
            }
            Some(Ok(command)) => command,
        };
        let (number, joining) = match command {
            PatchCommand::Join(n) => (n, true),
            PatchCommand::Leave(n) => (n, false),
        };
        let Some(mut spec) = self.bus.patch_numbered(number).cloned() else {
            warn!(port = %member, number, "DTMF: no patch with this number");
            return;
        };
        if spec.permanent {
            warn!(port = %member, patch = %spec.name, "DTMF: a permanent patch changes only in the configuration");
            return;
        }
        let name = spec.name.clone();
        // The transmission that carried the command is not for the patch: the member
        // takes part from its next over.
        self.bus.ignore_until_drop(&member, now);
        let result = if joining {
            if spec.members.contains(&member) {
                return;
            }
            spec.members.push(member.clone());
            self.bus.upsert(spec, now)
        } else {
            if !spec.members.contains(&member) {
                return;
            }
            spec.members.retain(|m| *m != member);
            // What is left may not stand as a patch (one member, or zones only): it goes.
            match self.bus.check(&spec) {
                Ok(()) => self.bus.upsert(spec, now),
                Err(_) => self.remove_patch(&name, now).map(|_| ()),
            }
        };
        let action = if joining { "joined" } else { "left" };
        match result {
            Ok(()) => info!(port = %member, patch = %name, number, "{action} by DTMF"),
            Err(e) => {
                warn!(port = %member, error = %e, "DTMF command refused");
                return;
            }
        }
        let _ = self.save();
    }

    fn on_request(&mut self, request: PatchRequest) {
        let now = Instant::now();
        match request {
            PatchRequest::List(reply) => {
                let _ = reply.send((self.patch_statuses(), self.port_statuses()));
            }
            PatchRequest::Announce { port, play } => {
                let id = MemberId(port);
                let alert = play.alert;
                let Some(MemberConfig::Radio(radio)) = self.ports.get(&id).map(|p| &p.config)
                else {
                    error!(port = %id, alert, "no radio port of that name: the alert cannot go out on it");
                    return;
                };
                let length = Duration::from_secs_f64(
                    play.samples.len() as f64 / crate::patch::announce::SAMPLE_RATE as f64,
                );
                if length > radio.tx.timeout {
                    warn!(
                        port = %id,
                        alert,
                        seconds = length.as_secs(),
                        timeout_s = radio.tx.timeout.as_secs(),
                        "the alert is longer than the radio's transmit time-out: the talkgroup hears only its start"
                    );
                }
                // PTT drops between two plays: each is an over of its own.
                let gap = radio.tx.hang + ANNOUNCEMENT_GAP_MARGIN;
                if let Some(Some(fault)) = self.faults.get(&id) {
                    warn!(port = %id, alert, %fault, "the radio is down: the alert waits for it");
                }
                let events = self.announcements.start(id, play, gap, now);
                log_announcements(&events);
                self.announce(now);
            }
            PatchRequest::EndAnnouncement { alert } => {
                let events = self.announcements.end(alert, now);
                log_announcements(&events);
                self.announce(now);
            }
            PatchRequest::Upsert(mut spec, reply) => {
                if spec.number == 0 {
                    spec.number = self
                        .bus
                        .patch(&spec.name)
                        .map_or_else(|| self.bus.free_number(), |p| p.number);
                }
                spec.permanent = false;
                let name = spec.name.clone();
                let result = match self.bus.patch(&name) {
                    Some(existing) if existing.permanent => {
                        Err(PatchError::Permanent(name.clone()))
                    }
                    _ => self.bus.upsert(spec, now),
                };
                let answer = result.and_then(|()| {
                    info!(patch = %name, "patch made or changed");
                    self.save()?;
                    self.status_of(&name)
                        .ok_or(PatchError::UnknownPatch(name.clone()))
                });
                let _ = reply.send(answer);
            }
            PatchRequest::Remove(name, reply) => {
                let talking = self
                    .bus
                    .patches()
                    .find(|(s, _)| s.name == name)
                    .and_then(|(_, t)| t.cloned());
                let result = self.remove_patch(&name, now).and_then(|spec| {
                    info!(patch = %name, "patch removed");
                    self.save()?;
                    Ok(status(&spec, talking.as_ref()))
                });
                let _ = reply.send(result);
            }
            PatchRequest::Reload(reply) => {
                let result = self.reload();
                match &result {
                    Ok(summary) => info!(%summary, "configuration reloaded"),
                    Err(e) => error!(error = %e, "reload refused; the running configuration stays"),
                }
                let _ = reply.send(result);
            }
        }
    }

    fn status_of(&self, name: &str) -> Option<PatchStatus> {
        self.bus
            .patches()
            .find(|(s, _)| s.name == name)
            .map(|(s, talking)| status(s, talking))
    }

    fn patch_statuses(&self) -> Vec<PatchStatus> {
        self.bus
            .patches()
            .map(|(s, talking)| status(s, talking))
            .collect()
    }

    fn port_statuses(&self) -> Vec<PortStatus> {
        self.ports
            .keys()
            .map(|name| {
                let fault = self.faults.get(name).cloned().flatten();
                PortStatus {
                    name: name.0.clone(),
                    up: fault.is_none(),
                    fault,
                    receiving: self.receiving.get(name).copied().unwrap_or(false),
                    locked_out: self.bus.is_locked_out(name),
                }
            })
            .collect()
    }

    /// Re-reads the configuration file; see the [module](self) notes.
    fn reload(&mut self) -> Result<String, String> {
        let Some(path) = self.config_path.clone() else {
            return Err("this node was not started from a configuration file".into());
        };
        let config = Config::load(&path).map_err(|e| e.to_string())?;
        let Some(new) = config.patching else {
            return Err("the new configuration has no [patching]: restart to stop patching".into());
        };
        if new.state_dir != self.config.state_dir {
            return Err("patching.state_dir changed: restart to move the state".into());
        }
        let now = Instant::now();
        let mut summary = Vec::new();

        // Ports: stop the removed and changed ones, start the new and changed ones.
        let wanted: BTreeMap<MemberId, MemberConfig> = members_of(&new)
            .into_iter()
            .map(|m| (member_name(&m), m))
            .collect();
        let running: Vec<MemberId> = self.ports.keys().cloned().collect();
        for name in running {
            let unchanged = wanted
                .get(&name)
                .is_some_and(|r| self.ports.get(&name).is_some_and(|p| p.config == *r));
            if !unchanged && let Some(port) = self.ports.remove(&name) {
                let _ = port.commands.send(PortCommand::Stop);
                self.faults.remove(&name);
                summary.push(format!("port {name} stopped"));
            }
        }
        // The PIN and the floor timing apply to every port and patch at once: a PIN
        // changed because it leaked must not stay valid on radios left running.
        if new.dtmf_pin != self.config.dtmf_pin
            || new.dtmf_inter_digit != self.config.dtmf_inter_digit
        {
            self.config.dtmf_pin = new.dtmf_pin.clone();
            self.config.dtmf_inter_digit = new.dtmf_inter_digit;
            for reader in self.dtmf.values_mut() {
                *reader = DtmfCommands::new(new.dtmf_pin.clone(), new.dtmf_inter_digit);
            }
            summary.push("DTMF PIN and timing set".into());
        }
        if new.floor != self.config.floor {
            self.bus.set_settings(new.floor);
            self.config.floor = new.floor;
            summary.push("floor timing set".into());
        }
        if new.recordings != self.config.recordings || new.retention != self.config.retention {
            summary.push("recordings and retention_days change at the next restart".into());
        }
        for (name, member) in &wanted {
            if !self.ports.contains_key(name) {
                self.start_member(member.clone());
                summary.push(format!("port {name} started"));
            }
        }
        for dropped in self.bus.set_members(new.members(), now) {
            summary.push(format!("patch {dropped} removed: its members are gone"));
        }

        // Permanent patches: as the file now says.
        let old_permanent: Vec<String> = self
            .bus
            .patches()
            .filter(|(s, _)| s.permanent)
            .map(|(s, _)| s.name.clone())
            .collect();
        for name in old_permanent {
            if !new.patches.iter().any(|p| p.name == name) {
                let _ = self.bus.remove(&name, true, now);
                summary.push(format!("patch {name} removed"));
            }
        }
        for spec in &new.patches {
            let before = self.bus.patch(&spec.name).cloned();
            if before.as_ref() == Some(spec) {
                continue;
            }
            match self.bus.upsert(spec.clone(), now) {
                Ok(()) => summary.push(format!("patch {} set", spec.name)),
                Err(e) => summary.push(format!("patch {} refused: {e}", spec.name)),
            }
        }
        self.config = PatchingConfig {
            radios: new.radios,
            links: new.links,
            zones: new.zones,
            patches: new.patches,
            ..self.config.clone()
        };
        if let Err(e) = self.save() {
            summary.push(e.to_string());
        }
        if summary.is_empty() {
            summary.push("nothing changed".into());
        }
        Ok(summary.join("; "))
    }

    fn carry_out(&mut self) {
        let outputs: Vec<BusOutput> = self.bus.drain().collect();
        for output in outputs {
            match output {
                // An alert being spoken on a port outranks the patch.
                BusOutput::Transmit { to, .. } if self.announcements.is_announcing(&to) => {}
                BusOutput::Transmit { to, frame, .. } => {
                    if let Some(port) = self.ports.get(&to) {
                        let _ = port.commands.send(PortCommand::Transmit(frame));
                    }
                }
                BusOutput::Carried { patch, frame, .. } => {
                    if let Some(recorder) = &mut self.recorder {
                        recorder.frame(&patch, &frame);
                    }
                }
                BusOutput::Floor { patch, event } => {
                    log_floor(&patch, &event);
                    self.record(&patch, &event);
                }
                BusOutput::LockedOut { member, patch } => warn!(
                    port = %member, %patch,
                    "carrier stuck open: locked out of every patch until it drops"
                ),
                BusOutput::LockoutCleared { member } => {
                    info!(port = %member, "carrier dropped: lock-out cleared");
                }
            }
        }
    }

    /// Sends the announcements' frames that are due to their ports.
    fn announce(&mut self, now: Instant) {
        let (frames, events) = self.announcements.poll(now);
        for (port, frame) in frames {
            if let Some(handle) = self.ports.get(&port) {
                let _ = handle.commands.send(PortCommand::Transmit(frame));
            }
        }
        log_announcements(&events);
    }

    fn record(&mut self, patch: &str, event: &FloorEvent) {
        let Some(recorder) = &mut self.recorder else {
            return;
        };
        let now = chrono::Utc::now();
        match event {
            FloorEvent::Granted { member, .. } => recorder.begin(patch, member, now),
            FloorEvent::Released { .. } => recorder.end(patch, "released", now),
            FloorEvent::Preempted { .. } => recorder.end(patch, "preempted", now),
            FloorEvent::StuckCarrier { .. } => recorder.end(patch, "stuck_carrier", now),
            FloorEvent::HeldOff { .. } | FloorEvent::Freed => {}
        }
    }

    async fn stop_ports(&mut self) {
        if let Some(recorder) = &mut self.recorder {
            recorder.end_all(chrono::Utc::now());
        }
        info!(
            ports = self.ports.len(),
            "stopping radio ports: PTT released on each"
        );
        for port in self.ports.values() {
            let _ = port.commands.send(PortCommand::Stop);
        }
        let all_done = async { while self.tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(STOP_LIMIT, all_done).await.is_err() {
            error!(
                "radio ports did not stop in time; their PTT switches release as the process exits"
            );
        }
    }
}

fn status(spec: &PatchSpec, talking: Option<&MemberId>) -> PatchStatus {
    let (mode, console) = match &spec.mode {
        PatchMode::Patch => ("patch", None),
        PatchMode::Simulselect { console } => ("simulselect", Some(console.0.clone())),
    };
    PatchStatus {
        name: spec.name.clone(),
        number: spec.number,
        members: spec.members.clone(),
        mode: mode.into(),
        console,
        permanent: spec.permanent,
        talking: talking.map(|m| m.0.clone()),
    }
}

fn log_floor(patch: &str, event: &FloorEvent) {
    match event {
        FloorEvent::Granted { member, preempted } => match preempted {
            Some(other) => {
                info!(%patch, port = %member, preempted = %other, "floor taken by priority")
            }
            None => info!(%patch, port = %member, "floor granted"),
        },
        FloorEvent::Released { member, held_for } => {
            info!(%patch, port = %member, held_ms = held_for.as_millis() as u64, "floor released");
        }
        FloorEvent::Preempted { member, held_for } => {
            info!(%patch, port = %member, held_ms = held_for.as_millis() as u64, "pre-empted");
        }
        FloorEvent::HeldOff { member } => {
            info!(%patch, port = %member, "held off: the floor is taken")
        }
        FloorEvent::StuckCarrier { member, held_for } => warn!(
            %patch, port = %member, held_s = held_for.as_secs(),
            "carrier held past the stuck-carrier time: taken off the floor"
        ),
        FloorEvent::Freed => debug!(%patch, "floor free"),
    }
}
