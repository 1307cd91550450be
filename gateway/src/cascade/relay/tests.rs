//! Three relays, district → street → village, on wires a test can cut per bearer, with
//! a fake clock.

use std::collections::HashSet;

use chrono::TimeZone;

use super::*;
use crate::alert::model::Level;
use crate::cascade::accept::{AcceptConfig, Keyring};
use crate::cascade::frame::{Alert, Content};
use crate::cascade::replay::ReplayState;

const DISTRICT: usize = 0;
const STREET: usize = 1;
const VILLAGE: usize = 2;

fn area(code: &str) -> AreaCode {
    code.parse().expect("area")
}

fn ip() -> Route {
    Route {
        bearer: BearerKind::Ip,
        message_bytes: 1200,
        ack_timeout: Duration::from_secs(2),
    }
}

fn beidou() -> Route {
    Route {
        bearer: BearerKind::Beidou,
        message_bytes: 78,
        ack_timeout: Duration::from_secs(120),
    }
}

/// A wire: node and link name at each end.
struct Wire {
    a: (usize, &'static str),
    b: (usize, &'static str),
}

struct Net {
    relays: Vec<Relay>,
    wires: Vec<Wire>,
    /// (wire, bearer) pairs that carry nothing.
    cut: HashSet<(usize, BearerKind)>,
    /// (node, link, bearer) whose sends are lost: one way only.
    mute: HashSet<(usize, &'static str, BearerKind)>,
    now: Instant,
    utc: DateTime<Utc>,
    delivered: Vec<(usize, Frame, BearerKind)>,
    refused: Vec<(usize, &'static str)>,
    persisted: Vec<(usize, Persist)>,
    /// Messages that crossed each (wire, bearer), both ways.
    carried: Vec<(usize, BearerKind)>,
    keys: Vec<NodeKey>,
}

fn codes() -> [AreaCode; 3] {
    [area("410503"), area("410503001"), area("410503001001")]
}

fn relay_for(node: usize, keys: &[NodeKey], now: Instant, sequence: Option<u32>) -> Relay {
    relay_with_replay(node, keys, now, sequence, ReplayState::default())
}

fn relay_with_replay(
    node: usize,
    keys: &[NodeKey],
    now: Instant,
    sequence: Option<u32>,
    replay: ReplayState,
) -> Relay {
    let link_key = |n: u8| LinkKey::from_bytes([n; 32]);
    let mut ring = Keyring::default();
    for (code, key) in codes().iter().zip(keys) {
        ring.add_origin(code.clone(), key.public());
    }
    let links = match node {
        DISTRICT => vec![LinkConfig {
            name: "street-1".into(),
            peer: area("410503001"),
            direction: Direction::Down,
            routes: vec![ip(), beidou()],
            key: Some(link_key(1)),
            radio: false,
        }],
        STREET => vec![
            LinkConfig {
                name: "district".into(),
                peer: area("410503"),
                direction: Direction::Up,
                routes: vec![ip(), beidou()],
                key: Some(link_key(1)),
                radio: false,
            },
            LinkConfig {
                name: "village-1".into(),
                peer: area("410503001001"),
                direction: Direction::Down,
                routes: vec![ip(), beidou()],
                key: Some(link_key(2)),
                radio: false,
            },
        ],
        _ => vec![LinkConfig {
            name: "street".into(),
            peer: area("410503001"),
            direction: Direction::Up,
            routes: vec![ip()],
            key: Some(link_key(2)),
            radio: false,
        }],
    };
    for link in &links {
        if let Some(key) = &link.key {
            ring.add_link(&link.name, key.clone());
        }
    }
    let acceptor = Acceptor::new(ring, AcceptConfig::default(), replay);
    Relay::new(
        codes()[node].clone(),
        keys[node].clone(),
        acceptor,
        SequenceAllocator::resume(sequence, 16),
        RelayTiming::default(),
        links,
        now,
    )
}

impl Net {
    fn new() -> Net {
        let now = Instant::now();
        let keys: Vec<NodeKey> = (0..3).map(|_| NodeKey::generate().expect("key")).collect();
        let relays = (0..3).map(|n| relay_for(n, &keys, now, None)).collect();
        Net {
            relays,
            wires: vec![
                Wire {
                    a: (DISTRICT, "street-1"),
                    b: (STREET, "district"),
                },
                Wire {
                    a: (STREET, "village-1"),
                    b: (VILLAGE, "street"),
                },
            ],
            cut: HashSet::new(),
            mute: HashSet::new(),
            now,
            utc: Utc
                .with_ymd_and_hms(2026, 7, 20, 8, 0, 0)
                .single()
                .expect("time"),
            delivered: Vec::new(),
            refused: Vec::new(),
            persisted: Vec::new(),
            carried: Vec::new(),
            keys,
        }
    }

    /// Moves every message until none is in flight.
    fn settle(&mut self) {
        loop {
            let mut flight = Vec::new();
            for n in 0..self.relays.len() {
                for output in self.relays[n].drain() {
                    match output {
                        Output::Send {
                            link,
                            bearer,
                            message,
                        } => flight.push((n, link, bearer, message)),
                        Output::Deliver { frame, bearer, .. } => {
                            self.delivered.push((n, frame, bearer))
                        }
                        Output::Refused { code, .. } => self.refused.push((n, code)),
                        Output::Persist(p) => self.persisted.push((n, p)),
                        _ => {}
                    }
                }
            }
            if flight.is_empty() {
                return;
            }
            for (n, link, bearer, message) in flight {
                let Some((w, wire)) = self
                    .wires
                    .iter()
                    .enumerate()
                    .find(|(_, w)| w.a == (n, link.as_str()) || w.b == (n, link.as_str()))
                else {
                    continue;
                };
                if self.cut.contains(&(w, bearer))
                    || self.mute.iter().any(|m| *m == (n, link.as_str(), bearer))
                {
                    continue;
                }
                self.carried.push((w, bearer));
                let (to, to_link) = if wire.a.0 == n { wire.b } else { wire.a };
                self.relays[to].on_message(to_link, bearer, &message, self.now, self.utc);
            }
        }
    }

    /// Lets `seconds` pass, a second at a time, polling every relay.
    fn run(&mut self, seconds: u64) {
        for _ in 0..seconds {
            self.now += Duration::from_secs(1);
            self.utc += chrono::Duration::seconds(1);
            for relay in &mut self.relays {
                relay.poll(self.now, self.utc);
            }
            self.settle();
        }
    }

    fn alert(&mut self, number: u32, text: &str) {
        let body = Body::Alert(Alert {
            number,
            level: Level::Red,
            targets: vec![area("410503001001")],
            content: Content::Text(text.into()),
        });
        let until = self.utc + chrono::Duration::hours(1);
        self.relays[DISTRICT]
            .originate(body, until, self.utc, self.now)
            .expect("made");
        self.settle();
    }

    fn alerts_delivered_at(&self, node: usize) -> Vec<(u32, BearerKind)> {
        self.delivered
            .iter()
            .filter(|(n, _, _)| *n == node)
            .filter_map(|(_, f, b)| match &f.body {
                Body::Alert(a) => Some((a.number, *b)),
                _ => None,
            })
            .collect()
    }

    fn queued(&self, node: usize) -> usize {
        self.relays[node]
            .status(self.now)
            .iter()
            .map(|(_, _, q)| q)
            .sum()
    }

    fn route(&self, node: usize, link: &str) -> Option<BearerKind> {
        self.relays[node]
            .status(self.now)
            .into_iter()
            .find(|(l, _, _)| l == link)
            .and_then(|(_, b, _)| b)
    }
}

/// A header in the district's name, valid for the next hour.
fn district_header(net: &Net, sequence: u32) -> Header {
    Header {
        origin: area("410503"),
        sequence,
        valid_from: Timestamp::from_datetime(net.utc).expect("time"),
        valid_until: Timestamp::from_datetime(net.utc + chrono::Duration::hours(1)).expect("time"),
    }
}

/// A red alert for `target`.
fn red_alert(number: u32, target: &str, text: &str) -> Body {
    Body::Alert(Alert {
        number,
        level: Level::Red,
        targets: vec![area(target)],
        content: Content::Text(text.into()),
    })
}

#[test]
fn an_alert_goes_down_over_ip_is_played_at_the_village_once_and_every_hop_acknowledges() {
    let mut net = Net::new();
    net.run(2);
    assert_eq!(net.route(DISTRICT, "street-1"), Some(BearerKind::Ip));
    net.alert(1, "暴雨红色预警，请立即转移");
    net.run(5);
    assert_eq!(net.alerts_delivered_at(VILLAGE), vec![(1, BearerKind::Ip)]);
    // The village lies in the street's area: the street's own loudspeakers are its
    // playout's to choose.
    assert_eq!(net.alerts_delivered_at(STREET), vec![(1, BearerKind::Ip)]);
    assert_eq!(
        net.queued(DISTRICT) + net.queued(STREET),
        0,
        "all acknowledged"
    );
    assert!(net.refused.is_empty(), "{:?}", net.refused);

    // An alert for another street goes nowhere from here.
    let carried = net.carried.len();
    let body = Body::Alert(Alert {
        number: 2,
        level: Level::Blue,
        targets: vec![area("410503002")],
        content: Content::Text("另一街道".into()),
    });
    let until = net.utc + chrono::Duration::hours(1);
    net.relays[DISTRICT]
        .originate(body, until, net.utc, net.now)
        .expect("made");
    net.settle();
    assert_eq!(net.queued(DISTRICT), 0, "no link leads to 410503002");
    assert_eq!(net.carried.len(), carried, "nothing sent for it");
}

#[test]
fn with_ip_cut_the_alert_goes_over_beidou_and_traffic_returns_to_ip_when_it_heals() {
    let mut net = Net::new();
    net.run(2);
    for (n, link) in [(DISTRICT, "street-1"), (STREET, "district")] {
        net.relays[n].bearer_state(link, BearerKind::Beidou, true, net.now);
    }
    net.cut.insert((0, BearerKind::Ip));
    net.run(40);
    assert_eq!(net.route(DISTRICT, "street-1"), Some(BearerKind::Beidou));
    net.alert(7, "山洪预警：沿河村民立即转移到高处，不要涉水，等待通知。");
    net.run(10);
    assert_eq!(
        net.alerts_delivered_at(STREET),
        vec![(7, BearerKind::Beidou)]
    );
    assert_eq!(net.alerts_delivered_at(VILLAGE), vec![(7, BearerKind::Ip)]);
    let over_beidou = net
        .carried
        .iter()
        .filter(|(w, b)| *w == 0 && *b == BearerKind::Beidou)
        .count();
    assert!(over_beidou >= 2, "fragments of 78 bytes: {over_beidou}");
    assert_eq!(net.queued(DISTRICT), 0, "acknowledged over BeiDou");

    // Healed: heartbeats come back and the link returns to IP.
    net.cut.clear();
    net.run(12);
    assert_eq!(net.route(DISTRICT, "street-1"), Some(BearerKind::Ip));
    net.alert(8, "解除预警");
    net.run(3);
    let district_to_street: Vec<_> = net.carried.iter().rev().take(4).collect();
    assert!(district_to_street.iter().all(|(_, b)| *b == BearerKind::Ip));
}

#[test]
fn a_copy_that_arrives_later_over_another_bearer_plays_nothing_twice() {
    let mut net = Net::new();
    net.run(2);
    for (n, link) in [(DISTRICT, "street-1"), (STREET, "district")] {
        net.relays[n].bearer_state(link, BearerKind::Beidou, true, net.now);
    }
    // The street hears the district over IP, but its acknowledgements and heartbeats
    // back are lost: the district tries again, then moves the alert to BeiDou, whose
    // copy the street already has.
    net.mute.insert((STREET, "district", BearerKind::Ip));
    net.alert(3, "红色预警");
    net.run(60);
    assert_eq!(net.route(DISTRICT, "street-1"), Some(BearerKind::Beidou));
    net.run(10);
    let over_beidou = net
        .carried
        .iter()
        .filter(|(w, b)| *w == 0 && *b == BearerKind::Beidou)
        .count();
    assert!(over_beidou > 0, "the copy went over BeiDou");
    assert_eq!(net.queued(DISTRICT), 0, "acknowledged over BeiDou at last");
    assert_eq!(net.alerts_delivered_at(STREET), vec![(3, BearerKind::Ip)]);
    assert_eq!(net.alerts_delivered_at(VILLAGE), vec![(3, BearerKind::Ip)]);
}

#[test]
fn forged_tampered_and_unknown_frames_are_refused_and_never_delivered() {
    let mut net = Net::new();
    net.run(2);
    // A frame the district would send, tampered with in flight: one bit of its text.
    net.alert(4, "红色预警");
    let before = net.delivered.len();
    let stranger = NodeKey::generate().expect("key");
    let body = red_alert(99, "410503001001", "假警报");
    let header = district_header(&net, 500);
    // Signed by a key nobody trusts, in the district's name.
    let forged = seal(&header, &body, Sealer::Sm2(&stranger)).expect("sealed");
    net.relays[STREET].on_message("village-1", BearerKind::Ip, &forged, net.now, net.utc);
    // Tagged with a wrong link key.
    let wrong = seal(
        &header,
        &body,
        Sealer::Hmac(&LinkKey::from_bytes([9; 32]), TagLength::Eight),
    )
    .expect("sealed");
    net.relays[STREET].on_message("district", BearerKind::Beidou, &wrong, net.now, net.utc);
    // From an origin nobody knows.
    let unknown = Header {
        origin: area("410599"),
        ..header.clone()
    };
    let from_unknown = seal(&unknown, &body, Sealer::Sm2(&stranger)).expect("sealed");
    net.relays[STREET].on_message("district", BearerKind::Ip, &from_unknown, net.now, net.utc);
    // Expired an hour ago, properly signed.
    let old = Header {
        sequence: 501,
        valid_from: Timestamp::from_datetime(net.utc - chrono::Duration::hours(2)).expect("time"),
        valid_until: Timestamp::from_datetime(net.utc - chrono::Duration::hours(1)).expect("time"),
        ..header.clone()
    };
    let expired = seal(&old, &body, Sealer::Sm2(&net.keys[DISTRICT])).expect("sealed");
    net.relays[STREET].on_message("district", BearerKind::Ip, &expired, net.now, net.utc);
    // A bit flipped in a genuine frame.
    let mut flipped = seal(&header, &body, Sealer::Sm2(&net.keys[DISTRICT])).expect("sealed");
    flipped[20] ^= 0x01;
    net.relays[STREET].on_message("district", BearerKind::Ip, &flipped, net.now, net.utc);
    net.settle();
    net.run(5);
    let codes: Vec<&str> = net.refused.iter().map(|(_, c)| *c).collect();
    assert_eq!(
        codes,
        vec![
            "bad_signature",
            "bad_tag",
            "unknown_origin",
            "expired",
            "bad_signature"
        ],
        "{codes:?}"
    );
    assert_eq!(net.delivered.len(), before, "nothing forged played");
    assert!(
        net.alerts_delivered_at(VILLAGE)
            .iter()
            .all(|(n, _)| *n == 4)
    );
}

#[test]
fn a_replayed_frame_is_acknowledged_but_not_played_again() {
    let mut net = Net::new();
    net.run(2);
    net.alert(5, "红色预警");
    net.run(3);
    // Every message the street got from the district, again, a minute later.
    let header = district_header(&net, 900);
    let body = red_alert(6, "410503001001", "红色预警");
    let genuine = seal(&header, &body, Sealer::Sm2(&net.keys[DISTRICT])).expect("sealed");
    net.relays[STREET].on_message("district", BearerKind::Ip, &genuine, net.now, net.utc);
    net.run(3);
    net.run(60);
    net.relays[STREET].on_message("district", BearerKind::Ip, &genuine, net.now, net.utc);
    net.run(3);
    let played: Vec<u32> = net
        .alerts_delivered_at(VILLAGE)
        .iter()
        .map(|(n, _)| *n)
        .collect();
    assert_eq!(played, vec![5, 6]);
}

#[test]
fn a_street_restarted_mid_relay_sends_what_it_had_stored_and_the_village_plays_it_once() {
    let mut net = Net::new();
    net.run(2);
    // The village is unreachable: the street stores the alert and keeps trying.
    net.cut.insert((1, BearerKind::Ip));
    net.alert(9, "红色预警");
    net.run(3);
    assert_eq!(net.queued(STREET), 1);
    let stored: Vec<(String, Vec<u8>)> = net
        .persisted
        .iter()
        .filter(|(n, _)| *n == STREET)
        .filter_map(|(_, p)| match p {
            Persist::Queued { link, bytes, .. } => Some((link.clone(), bytes.clone())),
            _ => None,
        })
        .collect();
    let reserved = net
        .persisted
        .iter()
        .filter(|(n, _)| *n == STREET)
        .filter_map(|(_, p)| match p {
            Persist::Sequence(s) => Some(*s),
            _ => None,
        })
        .max();
    // The street process dies; a new one starts from what it stored: the frames still
    // queued (not those marked done since), the replay memory, the reservation.
    let done: Vec<(String, u32)> = net
        .persisted
        .iter()
        .filter(|(n, _)| *n == STREET)
        .filter_map(|(_, p)| match p {
            Persist::Done { link, sequence, .. } => Some((link.clone(), *sequence)),
            _ => None,
        })
        .collect();
    // The street's replay memory as its store would read it back: each origin's
    // window as last persisted.
    let mut replay = ReplayState::default();
    for (n, p) in &net.persisted {
        if let (&STREET, Persist::Replay { origin, window }) = (n, p) {
            replay.origins.insert(origin.clone(), window.clone());
        }
    }
    let mut street = relay_with_replay(STREET, &net.keys, net.now, reserved, replay);
    for (link, bytes) in stored {
        let sequence = decode(&bytes).expect("frame").header.sequence;
        if !done.contains(&(link.clone(), sequence)) {
            street.restore(&link, bytes, net.now);
        }
    }
    net.relays[STREET] = street;
    net.cut.clear();
    net.run(40);
    assert_eq!(net.alerts_delivered_at(VILLAGE), vec![(9, BearerKind::Ip)]);
    assert_eq!(net.queued(STREET), 0);
}

#[test]
fn a_village_link_key_cannot_speak_for_the_district() {
    let mut net = Net::new();
    net.run(2);
    // Whoever holds the village's link key tags an alert in the district's name and sends
    // it up the village's link.
    let header = district_header(&net, 700);
    let body = red_alert(70, "410503001", "假警报");
    let village_key = LinkKey::from_bytes([2; 32]);
    let forged =
        seal(&header, &body, Sealer::Hmac(&village_key, TagLength::Eight)).expect("sealed");
    net.relays[STREET].on_message("village-1", BearerKind::Ip, &forged, net.now, net.utc);
    net.settle();
    assert_eq!(net.refused, vec![(STREET, "wrong_direction")]);
    assert!(net.alerts_delivered_at(STREET).is_empty());
    assert!(net.alerts_delivered_at(VILLAGE).is_empty());
}

#[test]
fn with_ip_dead_the_next_deadline_is_never_in_the_past() {
    let mut net = Net::new();
    net.run(2);
    net.cut.insert((0, BearerKind::Ip));
    net.alert(11, "红色预警");
    for _ in 0..120 {
        net.run(1);
        for relay in &net.relays {
            if let Some(at) = relay.next_deadline() {
                assert!(at >= net.now, "a deadline already past: a busy loop");
            }
        }
    }
}

#[test]
fn a_plan_names_the_route_and_messages_an_alert_would_take_and_sends_nothing() {
    let mut net = Net::new();
    net.run(2);
    let text = "山洪预警：沿河村民立即转移到高处，不要涉水，等待通知。";
    let body = red_alert(9, "410503001001", text);
    let until = net.utc + chrono::Duration::hours(1);
    let plan = net.relays[DISTRICT].plan(&body, until, net.utc, net.now);
    assert_eq!(plan.len(), 1);
    assert_eq!(plan[0].link, "street-1");
    assert_eq!(plan[0].peer, area("410503001"));
    assert_eq!(plan[0].bearer, Some(BearerKind::Ip));
    assert_eq!(plan[0].messages, 1, "one datagram over IP");

    net.cut.insert((0, BearerKind::Ip));
    net.run(40);
    let plan = net.relays[DISTRICT].plan(&body, until, net.utc, net.now);
    assert_eq!(plan[0].bearer, None, "no route up: it would wait");
    assert_eq!(plan[0].planned_bearer, BearerKind::Ip);
    for (n, link) in [(DISTRICT, "street-1"), (STREET, "district")] {
        net.relays[n].bearer_state(link, BearerKind::Beidou, true, net.now);
    }
    let plan = net.relays[DISTRICT].plan(&body, until, net.utc, net.now);
    assert_eq!(plan[0].bearer, Some(BearerKind::Beidou));
    // The frame as it goes over BeiDou: tagged with the link key, in 78-byte messages.
    let header = district_header(&net, 1);
    let key = LinkKey::from_bytes([1; 32]);
    let sealed = seal(&header, &body, Sealer::Hmac(&key, TagLength::Eight)).expect("sealed");
    assert_eq!(plan[0].frame_bytes, sealed.len());
    assert_eq!(
        plan[0].messages,
        fragment(&sealed, 78).expect("fragments").len()
    );
    assert!(plan[0].messages >= 2, "{plan:?}");
    assert_eq!(net.queued(DISTRICT), 0, "a plan sends nothing");

    let elsewhere = red_alert(10, "410503002", text);
    assert!(
        net.relays[DISTRICT]
            .plan(&elsewhere, until, net.utc, net.now)
            .is_empty()
    );
}

#[test]
fn a_plan_tells_how_the_street_would_pass_the_alert_on_from_its_last_heartbeat() {
    let mut net = Net::new();
    // The street's first heartbeat up went before it had heard the village's.
    net.run(12);
    let text = "山洪预警：沿河村民立即转移到高处，不要涉水，等待通知。";
    let body = red_alert(9, "410503001001", text);
    let until = net.utc + chrono::Duration::hours(1);
    let plan = net.relays[DISTRICT].plan(&body, until, net.utc, net.now);
    let signed = plan[0].frame_bytes;
    assert_eq!(plan[0].beyond.len(), 1, "{plan:?}");
    let village = &plan[0].beyond[0];
    assert_eq!(village.peer, area("410503001001"));
    assert_eq!(village.bearer, Some(BearerKind::Ip));
    assert_eq!(
        village.frame_bytes, signed,
        "passed on as the district signed it"
    );
    assert_eq!(village.time, Some(Duration::ZERO));
    assert!(!village.radio);

    // IP to the village cut, its BeiDou route up with a queue: the street's next
    // heartbeat says so, and the time is the terminal's pacing for the tagged frame.
    net.cut.insert((1, BearerKind::Ip));
    net.run(40);
    net.relays[STREET].bearer_state("village-1", BearerKind::Beidou, true, net.now);
    let pacing = Pacing {
        first: Duration::from_secs(2),
        each_more: Duration::from_secs(60),
    };
    net.relays[STREET].terminal_load("village-1", BearerKind::Beidou, Some(pacing), 1);
    net.run(10);
    let plan = net.relays[DISTRICT].plan(&body, until, net.utc, net.now);
    let village = &plan[0].beyond[0];
    assert_eq!(village.bearer, Some(BearerKind::Beidou));
    let tagged = signed - SIGNATURE_BYTES + 8;
    assert_eq!(village.frame_bytes, tagged);
    assert_eq!(village.messages, messages(tagged, 78));
    assert!(village.messages >= 2, "{village:?}");
    let behind_one = pacing.time_for(1, village.messages);
    assert_eq!(village.time, Some(behind_one));

    // Another village's heartbeat says nothing of it; an alert elsewhere under the
    // street has no hop beyond; and with IP to the street cut, the street's state is
    // not known.
    let street_only = red_alert(11, "410503001", text);
    let plan = net.relays[DISTRICT].plan(&street_only, until, net.utc, net.now);
    assert_eq!(
        plan[0].beyond.len(),
        1,
        "a street's alert concerns its villages"
    );
    let other = red_alert(12, "410503001002", text);
    let plan = net.relays[DISTRICT].plan(&other, until, net.utc, net.now);
    assert!(plan[0].beyond.is_empty(), "{plan:?}");
    net.cut.insert((0, BearerKind::Ip));
    net.run(40);
    let plan = net.relays[DISTRICT].plan(&body, until, net.utc, net.now);
    assert!(plan[0].beyond.is_empty(), "{plan:?}");
}

#[test]
fn an_older_heartbeat_replayed_does_not_undo_what_a_newer_one_said_of_the_links_below() {
    let mut net = Net::new();
    net.run(12);
    let heartbeat = |net: &Net, seconds_ago: i64, bearer| {
        let at = net.utc - chrono::Duration::seconds(seconds_ago);
        let header = Header {
            origin: area("410503001"),
            sequence: 0,
            valid_from: Timestamp::from_datetime(at).expect("time"),
            valid_until: Timestamp::from_datetime(at + chrono::Duration::seconds(35))
                .expect("time"),
        };
        let below = vec![LinkState {
            peer: area("410503001001"),
            bearer,
            planned_bearer: BearerKind::Ip,
            message_bytes: 1200,
            pacing: None,
            queued: 0,
            radio: false,
        }];
        seal(
            &header,
            &Body::Heartbeat(Heartbeat { below }),
            Sealer::Sm2(&net.keys[STREET]),
        )
        .expect("sealed")
    };
    let (newer, older) = (
        heartbeat(&net, 1, None),
        heartbeat(&net, 5, Some(BearerKind::Ip)),
    );
    let body = red_alert(9, "410503001001", "山洪预警");
    let until = net.utc + chrono::Duration::hours(1);
    let village_bearer = |net: &mut Net, message: &[u8]| {
        let (now, utc) = (net.now, net.utc);
        net.relays[DISTRICT].on_message("street-1", BearerKind::Ip, message, now, utc);
        net.relays[DISTRICT].plan(&body, until, utc, now)[0].beyond[0].bearer
    };
    assert_eq!(village_bearer(&mut net, &newer), None);
    assert_eq!(
        village_bearer(&mut net, &older),
        None,
        "the older heartbeat, accepted (heartbeats have no replay memory), changes nothing"
    );
}

/// Found by the over-IP benchmark: a datagram handled just after a heartbeat came due
/// (the task woke for the datagram, not for the deadline) moved the relay's clock past
/// it, and the heartbeat, no longer a future deadline, was never sent again; the peer
/// then took the link for dead.
#[test]
fn a_heartbeat_that_came_due_while_a_message_was_handled_is_due_at_once() {
    let mut net = Net::new();
    net.run(1);
    let _ = net.relays[DISTRICT].drain();
    let late = net.now + Duration::from_millis(10_500);
    let utc = net.utc;
    net.relays[DISTRICT].on_message("street-1", BearerKind::Ip, b"not a frame", late, utc);
    let _ = net.relays[DISTRICT].drain();
    assert_eq!(net.relays[DISTRICT].next_deadline(), Some(late));
    net.relays[DISTRICT].poll(late, utc);
    let heartbeats = net.relays[DISTRICT]
        .drain()
        .into_iter()
        .filter(|o| matches!(o, Output::Send { link, .. } if link == "street-1"))
        .count();
    assert_eq!(heartbeats, 1, "the heartbeat goes out at that poll");
    assert!(
        net.relays[DISTRICT].next_deadline() > Some(late),
        "and the next one is in the future"
    );
}

/// What the district sends when polled `after` the net's time, its clock reading `utc`.
fn district_sends(net: &mut Net, after: Duration, utc: DateTime<Utc>) -> Vec<Vec<u8>> {
    let now = net.now + after;
    net.relays[DISTRICT].poll(now, utc);
    net.relays[DISTRICT]
        .drain()
        .into_iter()
        .filter_map(|o| match o {
            Output::Send { message, .. } => Some(message),
            _ => None,
        })
        .collect()
}

/// The street's outputs after it hears `messages` from the district, on its own clock.
fn street_hears(net: &mut Net, messages: &[Vec<u8>]) -> Vec<Output> {
    for message in messages {
        net.relays[STREET].on_message("district", BearerKind::Ip, message, net.now, net.utc);
    }
    net.relays[STREET].drain()
}

#[test]
fn a_neighbour_whose_clock_is_ahead_beyond_the_skew_is_said_once_and_healed_by_an_accepted_frame() {
    let mut net = Net::new();
    // The district's clock runs two minutes ahead of the street's (skew: 30 s).
    let ahead = net.utc + chrono::Duration::seconds(120);
    let heartbeats = district_sends(&mut net, Duration::ZERO, ahead);
    assert!(!heartbeats.is_empty(), "the district sent its heartbeat");
    let twice: Vec<Vec<u8>> = heartbeats.iter().chain(&heartbeats).cloned().collect();
    let said: Vec<(String, i64)> = street_hears(&mut net, &twice)
        .into_iter()
        .filter_map(|o| match o {
            Output::ClockOff { link, offset_s } => Some((link, offset_s)),
            _ => None,
        })
        .collect();
    assert_eq!(
        said,
        [("district".to_string(), 120)],
        "said once, with the offset"
    );

    // Once the clocks agree, a heartbeat is accepted and a later difference is said again.
    net.run(12);
    assert_eq!(
        net.route(STREET, "district"),
        Some(BearerKind::Ip),
        "healed"
    );
    net.relays[STREET].drain();
    // A heartbeat from the past (an old copy replayed, or one late from a slow bearer)
    // says nothing of the clocks: refused as expired, and no more.
    let behind = net.utc - chrono::Duration::seconds(300);
    let old = district_sends(&mut net, Duration::from_secs(30), behind);
    assert!(!old.is_empty());
    let outputs = street_hears(&mut net, &old);
    assert!(
        outputs.iter().any(|o| matches!(
            o,
            Output::Refused {
                code: "expired",
                ..
            }
        )),
        "{outputs:?}"
    );
    assert!(
        !outputs.iter().any(|o| matches!(o, Output::ClockOff { .. })),
        "{outputs:?}"
    );

    // The clocks healed above; a clock ahead again is said again.
    let ahead = net.utc + chrono::Duration::seconds(300);
    let sent = district_sends(&mut net, Duration::from_secs(60), ahead);
    let outputs = street_hears(&mut net, &sent);
    assert!(
        outputs
            .iter()
            .any(|o| matches!(o, Output::ClockOff { offset_s: 300, .. })),
        "{outputs:?}"
    );
}

#[test]
fn a_new_frame_is_delivered_before_the_replay_memory_is_stored_and_both_before_its_acknowledgement()
{
    let mut net = Net::new();
    net.run(2);
    let header = district_header(&net, 77);
    let bytes = seal(
        &header,
        &red_alert(77, "410503001", "红色预警"),
        Sealer::Sm2(&net.keys[DISTRICT]),
    )
    .expect("sealed");
    net.relays[STREET].on_message("district", BearerKind::Ip, &bytes, net.now, net.utc);
    let outputs = net.relays[STREET].drain();
    let position = |wanted: &dyn Fn(&Output) -> bool| {
        outputs
            .iter()
            .position(wanted)
            .unwrap_or_else(|| panic!("missing in {outputs:?}"))
    };
    let delivered = position(&|o| matches!(o, Output::Deliver { .. }));
    let remembered = position(&|o| matches!(o, Output::Persist(Persist::Replay { .. })));
    let acknowledged = position(&|o| matches!(o, Output::Send { link, .. } if link == "district"));
    assert!(
        delivered < remembered && remembered < acknowledged,
        "{outputs:?}"
    );
}
