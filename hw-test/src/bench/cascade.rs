//! The cascade benchmark: what authenticating and relaying frames costs on this machine,
//! and how long one alert takes through a district, its streets and their villages, all
//! sans-IO in this one process.
//!
//! * **crypto**: SM2 signing and verifying, and the HMAC-SM3 link tag made and checked,
//!   over the authenticated bytes of the typical alert frame of `docs/frames.md` (red,
//!   one village, 11 Chinese characters: 65 bytes before the trailer);
//! * **acceptance**: [`Acceptor::accept`] on that frame, signed and tagged, each copy
//!   with a fresh sequence number so every one is accepted as new;
//! * **one relay**: a street relay fed pre-signed district alerts for its village; per
//!   frame, the time of `on_message` and `drain` (the check, the onward copy, the
//!   signed acknowledgement back up), then the village's pre-signed acknowledgement fed
//!   back so the queue stays empty, as in steady state;
//! * **the cascade**: one district, `streets` streets, `villages` villages per street,
//!   every link IP only, wired in memory. Each round the district originates one alert
//!   for the whole district; each village, the moment it delivers the alert, sends its
//!   receipt up (as a node with `[alerts]` does once its loudspeakers have played it;
//!   the playing is not modelled). The round ends when no message is in flight, every
//!   village has delivered the alert, the district has every village's receipt and every
//!   queue is empty, so every hop's acknowledgement reached its sender. The time to the
//!   last receipt at the district is kept apart from the round's end.
//!
//! The cascade round is timed two ways. **Serial** is the wall time of this process
//! doing every relay's work one after another on one core: what the whole cascade
//! costs in CPU. **Parallel (modelled)** gives each relay its own core and the network
//! no time at all: a message reaches its peer the moment its sender finished the
//! `on_message` (or `originate`) that made it, a relay works on one message at a time,
//! and each step costs what it was measured to cost here. It is the critical path of
//! the computation, a floor under what real gateways on a real network could reach.
//!
//! No I/O, no store, no sockets: the relay's `Persist` outputs are dropped, so the
//! durable writes a node makes before each acknowledgement are not in these figures.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone, Utc};
use gateway::alert::model::{AreaCode, Level};
use gateway::cascade::accept::{AcceptConfig, Accepted, Acceptor, Keyring};
use gateway::cascade::auth::{Sealer, authenticated_part, seal, verify_signature, verify_tag};
use gateway::cascade::frame::{
    Acknowledgement, Alert, BearerKind, Body, Content, Header, Heartbeat, Receipt, TagLength,
    Timestamp, Trailer, decode,
};
use gateway::cascade::keys::{LinkKey, NodeKey};
use gateway::cascade::relay::{Direction, LinkConfig, Output, Relay, RelayTiming, Route};
use gateway::cascade::replay::{ReplayState, SequenceAllocator};
use serde::Serialize;

/// The district every frame comes from.
const DISTRICT: &str = "410503";
/// The text of the typical alert: 11 characters, 33 bytes.
const TEXT: &str = "暴雨红色预警，立即转移";
/// Pre-sealed frames per acceptance pass; a fresh acceptor each pass.
const ACCEPT_BATCH: u32 = 256;

/// What to run, and how long.
#[derive(Debug, Clone)]
pub struct CascadeOptions {
    /// Seconds each crypto and acceptance figure runs for.
    pub seconds: f64,
    /// Alerts fed through the single relay.
    pub frames: usize,
    pub streets: usize,
    /// Villages per street.
    pub villages: usize,
    /// Alerts sent through the cascade, one at a time.
    pub rounds: usize,
}

impl Default for CascadeOptions {
    fn default() -> Self {
        CascadeOptions {
            seconds: 2.0,
            frames: 2000,
            streets: 10,
            villages: 100,
            rounds: 20,
        }
    }
}

/// What one run measured: rates per second of one core, times in microseconds or
/// milliseconds as named.
#[derive(Debug, Clone, Serialize)]
pub struct CascadeFigures {
    /// Bytes the signature and the tag cover.
    pub authenticated_bytes: usize,
    pub sm2_sign_per_s: f64,
    pub sm2_verify_per_s: f64,
    pub hmac_tag_per_s: f64,
    pub hmac_verify_per_s: f64,
    pub accept_sm2_per_s: f64,
    pub accept_hmac_per_s: f64,
    pub relay: RelayFigures,
    pub cascade: CascadeRounds,
}

/// The single street relay.
#[derive(Debug, Clone, Serialize)]
pub struct RelayFigures {
    pub frames: usize,
    /// Alerts per second, each with its onward copy, its acknowledgement up and the
    /// village's acknowledgement taken in.
    pub frames_per_s: f64,
    /// `on_message` + `drain` of one alert.
    pub alert_p50_us: f64,
    pub alert_p99_us: f64,
    /// `on_message` + `drain` of the village's acknowledgement.
    pub ack_p50_us: f64,
    pub ack_p99_us: f64,
    /// Messages sent on the village link and acknowledgements sent up to the district.
    pub sent_down: usize,
    pub acks_up: usize,
}

/// The cascade's rounds.
#[derive(Debug, Clone, Serialize)]
pub struct CascadeRounds {
    pub relays: usize,
    pub streets: usize,
    pub villages_per_street: usize,
    pub rounds: usize,
    /// Messages passed in one round (alerts, receipts and acknowledgements).
    pub messages_per_round: usize,
    /// Receipts the district took in each round: one per village.
    pub receipts_per_round: usize,
    /// From the alert's origination to the last village's receipt at the district,
    /// on the parallel model's clock.
    pub receipts_ms: Vec<f64>,
    pub receipts_p50_ms: f64,
    pub receipts_p99_ms: f64,
    pub serial_ms: Vec<f64>,
    pub serial_p50_ms: f64,
    pub serial_p99_ms: f64,
    pub parallel_ms: Vec<f64>,
    pub parallel_p50_ms: f64,
    pub parallel_p99_ms: f64,
    /// The wall time of wiring the relays and bringing every route up.
    pub setup_s: f64,
}

#[derive(Debug, thiserror::Error)]
pub enum CascadeBenchError {
    #[error("{0}")]
    Setup(String),
    #[error("{0}")]
    Failed(String),
}

fn setup<E: std::fmt::Display>(what: &str) -> impl FnOnce(E) -> CascadeBenchError + '_ {
    move |e| CascadeBenchError::Setup(format!("{what}: {e}"))
}

fn area(code: &str) -> Result<AreaCode, CascadeBenchError> {
    code.parse().map_err(setup("area code"))
}

/// The frames' notion of now: fixed, so every run seals the same bytes.
fn utc() -> Result<DateTime<Utc>, CascadeBenchError> {
    Utc.with_ymd_and_hms(2026, 7, 20, 8, 0, 0)
        .single()
        .ok_or(CascadeBenchError::Setup("the fixed time".into()))
}

fn header(
    origin: &AreaCode,
    sequence: u32,
    utc: DateTime<Utc>,
) -> Result<Header, CascadeBenchError> {
    let stamp = |at| Timestamp::from_datetime(at).ok_or(CascadeBenchError::Setup("time".into()));
    Ok(Header {
        origin: origin.clone(),
        sequence,
        valid_from: stamp(utc)?,
        valid_until: stamp(utc + chrono::Duration::hours(6))?,
    })
}

fn red_alert(number: u32, targets: Vec<AreaCode>) -> Body {
    Body::Alert(Alert {
        number,
        level: Level::Red,
        targets,
        content: Content::Text(TEXT.into()),
    })
}

fn ip() -> Route {
    Route {
        bearer: BearerKind::Ip,
        message_bytes: 1200,
        ack_timeout: Duration::from_secs(2),
    }
}

/// How many times `step` runs in `seconds`, per second; `step` says whether it did what
/// it should.
fn rate(seconds: f64, mut step: impl FnMut() -> bool) -> Result<f64, CascadeBenchError> {
    let limit = Duration::from_secs_f64(seconds);
    let start = Instant::now();
    let mut count = 0u64;
    while count == 0 || start.elapsed() < limit {
        for _ in 0..16 {
            if !step() {
                return Err(CascadeBenchError::Failed(
                    "a check failed while timed".into(),
                ));
            }
            count += 1;
        }
    }
    Ok(count as f64 / start.elapsed().as_secs_f64())
}

/// The `q` quantile of `sorted` values (the nearest index); NaN when there are none.
pub(crate) fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

pub(crate) fn sorted(values: &[f64]) -> Vec<f64> {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    v
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// Runs every part in turn.
pub fn run(options: &CascadeOptions) -> Result<CascadeFigures, CascadeBenchError> {
    let utc = utc()?;
    let district = area(DISTRICT)?;
    let village = area("410503001001")?;
    let key = NodeKey::generate().map_err(setup("key"))?;
    let link = LinkKey::from_bytes([0x5a; 32]);
    let alert = red_alert(88, vec![village.clone()]);

    // The crypto on its own, over the typical frame's authenticated bytes.
    let signed = seal(&header(&district, 1207, utc)?, &alert, Sealer::Sm2(&key))
        .map_err(setup("sealing"))?;
    let frame = decode(&signed).map_err(setup("decoding"))?;
    let message = authenticated_part(&frame, &signed).to_vec();
    let Trailer::Sm2(signature) = &frame.trailer else {
        return Err(CascadeBenchError::Setup("not signed".into()));
    };
    let public = [key.public()];
    let hmac = Sealer::Hmac(&link, TagLength::Eight);
    let tagged = seal(&frame.header, &alert, hmac).map_err(setup("tagging"))?;
    let tag = tagged
        .get(tagged.len() - TagLength::Eight.bytes()..)
        .unwrap_or_default()
        .to_vec();
    let links = [link.clone()];
    let sign = |sealer| seal(&frame.header, &alert, sealer).is_ok();

    let sm2_sign_per_s = rate(options.seconds, || sign(Sealer::Sm2(&key)))?;
    let sm2_verify_per_s = rate(options.seconds, || {
        verify_signature(&public, &message, signature)
    })?;
    let hmac_tag_per_s = rate(options.seconds, || sign(hmac))?;
    let hmac_verify_per_s = rate(options.seconds, || verify_tag(&links, &message, &tag))?;

    let accept_sm2_per_s = accept_rate(options.seconds, &key, None, utc)?;
    let accept_hmac_per_s = accept_rate(options.seconds, &key, Some(&link), utc)?;
    let relay = one_relay(options.frames, utc)?;
    let cascade = cascade(options, utc)?;

    Ok(CascadeFigures {
        authenticated_bytes: message.len(),
        sm2_sign_per_s,
        sm2_verify_per_s,
        hmac_tag_per_s,
        hmac_verify_per_s,
        accept_sm2_per_s,
        accept_hmac_per_s,
        relay,
        cascade,
    })
}

/// Acceptances per second of the typical alert, signed (`link` `None`) or tagged with
/// `link`'s key.
fn accept_rate(
    seconds: f64,
    key: &NodeKey,
    link: Option<&LinkKey>,
    utc: DateTime<Utc>,
) -> Result<f64, CascadeBenchError> {
    let district = area(DISTRICT)?;
    let alert = red_alert(88, vec![area("410503001001")?]);
    let mut ring = Keyring::default();
    ring.add_origin(district.clone(), key.public());
    if let Some(link) = link {
        ring.add_link("district", link.clone());
    }
    let frames: Vec<Vec<u8>> = (1..=ACCEPT_BATCH)
        .map(|sequence| {
            let sealer = match link {
                Some(link) => Sealer::Hmac(link, TagLength::Eight),
                None => Sealer::Sm2(key),
            };
            seal(&header(&district, sequence, utc)?, &alert, sealer).map_err(setup("sealing"))
        })
        .collect::<Result<_, _>>()?;

    // Each pass starts from an empty replay memory, so every frame is new; only the
    // checks are timed.
    let limit = Duration::from_secs_f64(seconds);
    let (mut spent, mut count) = (Duration::ZERO, 0u64);
    while count == 0 || spent < limit {
        let mut acceptor = Acceptor::new(
            ring.clone(),
            AcceptConfig::default(),
            ReplayState::default(),
        );
        let start = Instant::now();
        for bytes in &frames {
            match acceptor.accept(bytes, "district", utc) {
                Ok(Accepted::New(_)) => count += 1,
                other => {
                    return Err(CascadeBenchError::Failed(format!(
                        "a fresh frame was not accepted as new: {other:?}"
                    )));
                }
            }
        }
        spent += start.elapsed();
    }
    Ok(count as f64 / spent.as_secs_f64())
}

/// The street relay fed `frames` district alerts for its village.
fn one_relay(frames: usize, utc: DateTime<Utc>) -> Result<RelayFigures, CascadeBenchError> {
    let generate = || NodeKey::generate().map_err(setup("key"));
    let (district_key, street_key, village_key) = (generate()?, generate()?, generate()?);
    let district = area(DISTRICT)?;
    let street = area("410503001")?;
    let village = area("410503001001")?;
    let mut ring = Keyring::default();
    ring.add_origin(district.clone(), district_key.public());
    ring.add_origin(village.clone(), village_key.public());
    let link = |name: &str, peer: &AreaCode, direction| LinkConfig {
        name: name.into(),
        peer: peer.clone(),
        direction,
        routes: vec![ip()],
        key: None,
        radio: false,
    };
    let now = Instant::now();
    let mut relay = Relay::new(
        street,
        street_key,
        Acceptor::new(ring, AcceptConfig::default(), ReplayState::default()),
        SequenceAllocator::resume(None, 16),
        RelayTiming::default(),
        vec![
            link("district", &district, Direction::Up),
            link("village-1", &village, Direction::Down),
        ],
        now,
    );

    // Both routes up: a heartbeat from each neighbour.
    for (name, origin, key) in [
        ("district", &district, &district_key),
        ("village-1", &village, &village_key),
    ] {
        let beat = seal(
            &header(origin, 1, utc)?,
            &Body::Heartbeat(Heartbeat::default()),
            Sealer::Sm2(key),
        )
        .map_err(setup("heartbeat"))?;
        relay.on_message(name, BearerKind::Ip, &beat, now, utc);
    }
    relay.drain();

    // Sealed before the clock starts: the district's alerts, the village's
    // acknowledgements of them.
    let mut inputs = Vec::with_capacity(frames);
    for k in 0..frames {
        let sequence = u32::try_from(k).map_err(setup("frames"))? + 2;
        let alert = red_alert(sequence, vec![village.clone()]);
        let alert = seal(
            &header(&district, sequence, utc)?,
            &alert,
            Sealer::Sm2(&district_key),
        )
        .map_err(setup("alert"))?;
        let ack = Body::Acknowledgement(Acknowledgement {
            origin: district.clone(),
            sequence,
        });
        let ack = seal(
            &header(&village, sequence, utc)?,
            &ack,
            Sealer::Sm2(&village_key),
        )
        .map_err(setup("acknowledgement"))?;
        inputs.push((alert, ack));
    }

    let (mut alert_us, mut ack_us) = (Vec::with_capacity(frames), Vec::with_capacity(frames));
    let (mut sent_down, mut acks_up) = (0, 0);
    let start = Instant::now();
    for (alert, ack) in &inputs {
        let t = Instant::now();
        relay.on_message("district", BearerKind::Ip, alert, now, utc);
        let outputs = relay.drain();
        alert_us.push(micros(t.elapsed()));
        for output in outputs {
            match output {
                Output::Send { link, .. } if link == "village-1" => sent_down += 1,
                Output::Send { link, .. } if link == "district" => acks_up += 1,
                Output::Refused { reason, .. } => return Err(CascadeBenchError::Failed(reason)),
                _ => {}
            }
        }

        let t = Instant::now();
        relay.on_message("village-1", BearerKind::Ip, ack, now, utc);
        let outputs = relay.drain();
        ack_us.push(micros(t.elapsed()));
        if let Some(Output::Refused { reason, .. }) =
            outputs.iter().find(|o| matches!(o, Output::Refused { .. }))
        {
            return Err(CascadeBenchError::Failed(reason.clone()));
        }
    }
    let elapsed = start.elapsed();

    let queued: usize = relay.status(now).iter().map(|(_, _, q)| q).sum();
    if queued != 0 || sent_down != frames || acks_up != frames {
        return Err(CascadeBenchError::Failed(format!(
            "the relay sent {sent_down} down and {acks_up} acknowledgements up for {frames} \
             alerts, {queued} left queued"
        )));
    }
    let (alert_us, ack_us) = (sorted(&alert_us), sorted(&ack_us));
    Ok(RelayFigures {
        frames,
        frames_per_s: frames as f64 / elapsed.as_secs_f64(),
        alert_p50_us: percentile(&alert_us, 0.5),
        alert_p99_us: percentile(&alert_us, 0.99),
        ack_p50_us: percentile(&ack_us, 0.5),
        ack_p99_us: percentile(&ack_us, 0.99),
        sent_down,
        acks_up,
    })
}

/// A message in flight: when it reaches its peer in the parallel model, an order to
/// break ties, the relay and link it reaches, and its bytes.
type InFlight = Reverse<(Duration, u64, usize, usize, Vec<u8>)>;

/// What one round has seen so far.
#[derive(Default)]
struct Round {
    /// Per relay: it delivered the alert.
    delivered: Vec<bool>,
    /// Villages that delivered the alert and owe a receipt, with the model's time then.
    receipts_due: Vec<(usize, Duration)>,
    /// Receipts delivered at the district, and when the last one was.
    receipts_back: usize,
    last_receipt: Duration,
    /// The alert's number, which the receipts name.
    number: u32,
}

/// District, streets and villages wired in memory.
struct Net {
    relays: Vec<Relay>,
    /// Per relay, per link (in the order of its configuration): the relay at the other
    /// end and the index of the link there.
    wires: Vec<Vec<(usize, usize)>>,
    /// Per relay, its links' names, to find a link by the name an output gives.
    names: Vec<Vec<String>>,
    villages: Vec<usize>,
    /// Per relay, its area code.
    codes: Vec<AreaCode>,
    now: Instant,
    utc: DateTime<Utc>,
}

impl Net {
    fn new(streets: usize, villages: usize, utc: DateTime<Utc>) -> Result<Net, CascadeBenchError> {
        // Relay 0 is the district, 1..=streets the streets, then each street's villages.
        let mut codes = vec![DISTRICT.to_string()];
        codes.extend((1..=streets).map(|s| format!("{DISTRICT}{s:03}")));
        for s in 1..=streets {
            codes.extend((1..=villages).map(|v| format!("{DISTRICT}{s:03}{v:03}")));
        }
        let codes: Vec<AreaCode> = codes.iter().map(|c| area(c)).collect::<Result<_, _>>()?;
        let keys: Vec<NodeKey> = (0..codes.len())
            .map(|_| NodeKey::generate().map_err(setup("key")))
            .collect::<Result<_, _>>()?;
        let village_of = |s: usize, v: usize| 1 + streets + (s - 1) * villages + (v - 1);

        // Links as (name, peer relay, direction); the peer's end is found below.
        let mut plans: Vec<Vec<(String, usize, Direction)>> = vec![Vec::new(); codes.len()];
        for s in 1..=streets {
            plans[0].push((format!("street-{s}"), s, Direction::Down));
            plans[s].push(("district".into(), 0, Direction::Up));
            for v in 1..=villages {
                let n = village_of(s, v);
                plans[s].push((format!("village-{v}"), n, Direction::Down));
                plans[n].push(("street".into(), s, Direction::Up));
            }
        }
        let wires = plans
            .iter()
            .enumerate()
            .map(|(n, plan)| {
                plan.iter()
                    .map(|(_, peer, _)| {
                        let back = plans[*peer].iter().position(|(_, p, _)| *p == n);
                        (*peer, back.unwrap_or(0))
                    })
                    .collect()
            })
            .collect();
        let names = plans
            .iter()
            .map(|plan| plan.iter().map(|(name, _, _)| name.clone()).collect())
            .collect();

        let now = Instant::now();
        let relays = plans
            .iter()
            .enumerate()
            .map(|(n, plan)| {
                // Each node trusts the district (alerts) and its neighbours
                // (acknowledgements, heartbeats).
                let mut ring = Keyring::default();
                ring.add_origin(codes[0].clone(), keys[0].public());
                // The district takes every village's receipt, signed by the village.
                if n == 0 {
                    for (code, key) in codes.iter().zip(&keys) {
                        ring.add_origin(code.clone(), key.public());
                    }
                }
                let links = plan
                    .iter()
                    .map(|(name, peer, direction)| {
                        if *peer != 0 {
                            ring.add_origin(codes[*peer].clone(), keys[*peer].public());
                        }
                        LinkConfig {
                            name: name.clone(),
                            peer: codes[*peer].clone(),
                            direction: *direction,
                            routes: vec![ip()],
                            key: None,
                            radio: false,
                        }
                    })
                    .collect();
                Relay::new(
                    codes[n].clone(),
                    keys[n].clone(),
                    Acceptor::new(ring, AcceptConfig::default(), ReplayState::default()),
                    SequenceAllocator::resume(None, 16),
                    RelayTiming::default(),
                    links,
                    now,
                )
            })
            .collect();

        Ok(Net {
            relays,
            wires,
            names,
            villages: (1 + streets..codes.len()).collect(),
            codes,
            now,
            utc,
        })
    }

    /// Every relay's outputs after step `n` finished at `done`, its messages put in
    /// flight; what it delivered counted in `round`.
    fn dispatch(
        &mut self,
        n: usize,
        outputs: Vec<Output>,
        done: Duration,
        flight: &mut BinaryHeap<InFlight>,
        order: &mut u64,
        round: &mut Round,
    ) -> Result<(), CascadeBenchError> {
        for output in outputs {
            match output {
                Output::Send { link, message, .. } => {
                    let l = self.names[n].iter().position(|name| *name == link);
                    let Some(&(peer, peer_link)) = l.and_then(|l| self.wires[n].get(l)) else {
                        return Err(CascadeBenchError::Failed(format!("no wire for {link}")));
                    };
                    *order += 1;
                    flight.push(Reverse((done, *order, peer, peer_link, message)));
                }
                Output::Deliver { frame, .. } => match &frame.body {
                    Body::Alert(_) => {
                        if let Some(d) = round.delivered.get_mut(n) {
                            *d = true;
                        }
                        if self.villages.contains(&n) {
                            round.receipts_due.push((n, done));
                        }
                    }
                    Body::Receipt(r) if n == 0 && r.alert_number == round.number => {
                        round.receipts_back += 1;
                        round.last_receipt = round.last_receipt.max(done);
                    }
                    _ => {}
                },
                Output::Refused { reason, .. } => return Err(CascadeBenchError::Failed(reason)),
                _ => {}
            }
        }
        Ok(())
    }

    /// Passes messages until none is in flight, in the order they arrive on the model's
    /// clock: when the last relay finished on that clock, and how many messages passed.
    fn settle(
        &mut self,
        mut flight: BinaryHeap<InFlight>,
        mut order: u64,
        round: &mut Round,
    ) -> Result<(Duration, usize), CascadeBenchError> {
        let mut busy = vec![Duration::ZERO; self.relays.len()];
        let mut finished = Duration::ZERO;
        let mut messages = 0;
        while let Some(Reverse((arrives, _, n, l, message))) = flight.pop() {
            messages += 1;
            let t = Instant::now();
            let link = self.names[n][l].clone();
            self.relays[n].on_message(&link, BearerKind::Ip, &message, self.now, self.utc);
            let outputs = self.relays[n].drain();
            let done = arrives.max(busy[n]) + t.elapsed();
            busy[n] = done;
            finished = finished.max(done);
            self.dispatch(n, outputs, done, &mut flight, &mut order, round)?;
            // A village that just took the alert sends its receipt up, on its own clock.
            for (village, at) in std::mem::take(&mut round.receipts_due) {
                let t = Instant::now();
                let receipt = Body::Receipt(Receipt {
                    alert_origin: area(DISTRICT)?,
                    alert_number: round.number,
                    area: self.codes[village].clone(),
                    played: 3,
                    loudspeakers: 3,
                    bearer: BearerKind::Ip,
                });
                let until = self.utc + chrono::Duration::hours(1);
                self.relays[village]
                    .originate(receipt, until, self.utc, self.now)
                    .map_err(|e| CascadeBenchError::Failed(e.to_string()))?;
                let outputs = self.relays[village].drain();
                let done = at.max(busy[village]) + t.elapsed();
                busy[village] = done;
                finished = finished.max(done);
                self.dispatch(village, outputs, done, &mut flight, &mut order, round)?;
            }
        }
        Ok((finished, messages))
    }

    /// Heartbeats both ways on every link, so every IP route is up.
    fn bring_up(&mut self) -> Result<(), CascadeBenchError> {
        let mut flight = BinaryHeap::new();
        let mut round = Round::default();
        let mut order = 0;
        for n in 0..self.relays.len() {
            self.relays[n].poll(self.now, self.utc);
            let outputs = self.relays[n].drain();
            self.dispatch(
                n,
                outputs,
                Duration::ZERO,
                &mut flight,
                &mut order,
                &mut round,
            )?;
        }
        self.settle(flight, order, &mut round)?;
        Ok(())
    }

    /// One alert from the district to every village and every receipt back: (serial,
    /// parallel, messages, the last receipt on the parallel clock).
    fn round(
        &mut self,
        number: u32,
    ) -> Result<(Duration, Duration, usize, Duration), CascadeBenchError> {
        let mut round = Round {
            delivered: vec![false; self.relays.len()],
            number,
            ..Round::default()
        };
        let mut flight = BinaryHeap::new();
        let body = red_alert(number, vec![area(DISTRICT)?]);
        let until = self.utc + chrono::Duration::hours(1);

        let start = Instant::now();
        self.relays[0]
            .originate(body, until, self.utc, self.now)
            .map_err(|e| CascadeBenchError::Failed(e.to_string()))?;
        let outputs = self.relays[0].drain();
        let originated = start.elapsed();
        let mut order = 0;
        self.dispatch(0, outputs, originated, &mut flight, &mut order, &mut round)?;
        let (parallel, messages) = self.settle(flight, order, &mut round)?;
        let serial = start.elapsed();

        let missing = self
            .villages
            .iter()
            .filter(|&&v| !round.delivered[v])
            .count();
        let queued: usize = self
            .relays
            .iter()
            .flat_map(|r| r.status(self.now))
            .map(|(_, _, q)| q)
            .sum();
        if missing != 0 || queued != 0 || round.receipts_back != self.villages.len() {
            return Err(CascadeBenchError::Failed(format!(
                "alert {number}: {missing} villages without it, {} of {} receipts back, \
                 {queued} frames unacknowledged",
                round.receipts_back,
                self.villages.len()
            )));
        }
        Ok((
            serial,
            parallel.max(originated),
            messages,
            round.last_receipt,
        ))
    }
}

fn cascade(
    options: &CascadeOptions,
    utc: DateTime<Utc>,
) -> Result<CascadeRounds, CascadeBenchError> {
    let start = Instant::now();
    let mut net = Net::new(options.streets, options.villages, utc)?;
    net.bring_up()?;
    let setup_s = start.elapsed().as_secs_f64();

    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let (mut serial_ms, mut parallel_ms, mut messages) = (Vec::new(), Vec::new(), 0);
    let mut receipts_ms = Vec::new();
    for round in 0..options.rounds {
        let number = u32::try_from(round).map_err(setup("rounds"))? + 1;
        let (serial, parallel, passed, last_receipt) = net.round(number)?;
        serial_ms.push(ms(serial));
        parallel_ms.push(ms(parallel));
        receipts_ms.push(ms(last_receipt));
        messages = passed;
    }
    let (serial, parallel) = (sorted(&serial_ms), sorted(&parallel_ms));
    let receipts = sorted(&receipts_ms);
    Ok(CascadeRounds {
        relays: net.relays.len(),
        streets: options.streets,
        villages_per_street: options.villages,
        rounds: options.rounds,
        messages_per_round: messages,
        receipts_per_round: net.villages.len(),
        receipts_p50_ms: percentile(&receipts, 0.5),
        receipts_p99_ms: percentile(&receipts, 0.99),
        receipts_ms,
        serial_p50_ms: percentile(&serial, 0.5),
        serial_p99_ms: percentile(&serial, 0.99),
        parallel_p50_ms: percentile(&parallel, 0.5),
        parallel_p99_ms: percentile(&parallel, 0.99),
        serial_ms,
        parallel_ms,
        setup_s,
    })
}

/// The figures as a Markdown table.
pub fn table(f: &CascadeFigures) -> String {
    let (r, c) = (&f.relay, &f.cascade);
    let mut out = String::new();
    let _ = writeln!(out, "| figure | value |\n|---|---|");
    let mut row = |name: String, value: String| {
        let _ = writeln!(out, "| {name} | {value} |");
    };
    let bytes = f.authenticated_bytes;
    row(
        format!("SM2 sign (sealing: encode and sign), {bytes} bytes"),
        format!("{:.0} /s", f.sm2_sign_per_s),
    );
    row(
        format!("SM2 verify, {bytes} bytes"),
        format!("{:.0} /s", f.sm2_verify_per_s),
    );
    row(
        format!("HMAC-SM3 tag (sealing: encode and tag), {bytes} bytes"),
        format!("{:.0} /s", f.hmac_tag_per_s),
    );
    row(
        format!("HMAC-SM3 verify, {bytes} bytes"),
        format!("{:.0} /s", f.hmac_verify_per_s),
    );
    row(
        "acceptance check, SM2 frame".into(),
        format!("{:.0} /s", f.accept_sm2_per_s),
    );
    row(
        "acceptance check, HMAC frame".into(),
        format!("{:.0} /s", f.accept_hmac_per_s),
    );
    row(
        format!(
            "one street relay, {} alerts with both acknowledgements",
            r.frames
        ),
        format!("{:.0} frames/s", r.frames_per_s),
    );
    row(
        "one relay: alert in, copy down, acknowledgement up (p50 / p99)".into(),
        format!("{:.0} / {:.0} µs", r.alert_p50_us, r.alert_p99_us),
    );
    row(
        "one relay: the village's acknowledgement in (p50 / p99)".into(),
        format!("{:.0} / {:.0} µs", r.ack_p50_us, r.ack_p99_us),
    );
    let scale = format!(
        "{} relays (1 + {} + {} × {}), {} rounds",
        c.relays, c.streets, c.streets, c.villages_per_street, c.rounds
    );
    row(
        format!(
            "cascade, {scale}: alert to all deliveries, receipts and acknowledgements, serial (p50 / p99)"
        ),
        format!("{:.1} / {:.1} ms", c.serial_p50_ms, c.serial_p99_ms),
    );
    row(
        "the same, parallel: a core per relay, no network time (modelled; p50 / p99)".into(),
        format!("{:.1} / {:.1} ms", c.parallel_p50_ms, c.parallel_p99_ms),
    );
    row(
        format!(
            "parallel model: alert accepted to the last of {} receipts at the district (p50 / p99)",
            c.receipts_per_round
        ),
        format!("{:.1} / {:.1} ms", c.receipts_p50_ms, c.receipts_p99_ms),
    );
    row(
        "messages per cascade round".into(),
        c.messages_per_round.to_string(),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tiny_run_completes_every_round_and_its_figures_read_back_as_json() {
        let options = CascadeOptions {
            seconds: 0.01,
            frames: 5,
            streets: 2,
            villages: 3,
            rounds: 2,
        };
        let figures = run(&options).expect("runs");

        let json = serde_json::to_string(&figures).expect("serialises");
        let back: serde_json::Value = serde_json::from_str(&json).expect("parses");
        assert_eq!(back["authenticated_bytes"], 65);
        assert_eq!(back["relay"]["frames"], 5);
        assert_eq!(back["relay"]["sent_down"], 5);
        assert_eq!(back["relay"]["acks_up"], 5);
        assert_eq!(back["cascade"]["relays"], 1 + 2 + 2 * 3);
        assert_eq!(
            back["cascade"]["serial_ms"].as_array().map(Vec::len),
            Some(2)
        );
        // Each of the 8 links carries the alert down and its acknowledgement up; each of
        // the 6 villages' receipts goes up two links, each hop acknowledged.
        assert_eq!(back["cascade"]["messages_per_round"], 16 + 6 * 4);
        assert_eq!(back["cascade"]["receipts_per_round"], 6);
        assert_eq!(
            back["cascade"]["receipts_ms"].as_array().map(Vec::len),
            Some(2)
        );
        for rate in ["sm2_sign_per_s", "sm2_verify_per_s", "accept_hmac_per_s"] {
            assert!(back[rate].as_f64().is_some_and(|r| r > 0.0), "{rate}");
        }

        let table = table(&figures);
        assert!(table.contains("| SM2 verify, 65 bytes |"), "{table}");
        assert!(
            table.contains("9 relays (1 + 2 + 2 × 3), 2 rounds"),
            "{table}"
        );
    }
}
