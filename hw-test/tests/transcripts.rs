//! The real transcripts (`drivers/tests/fixtures/serial`) replayed through the drivers
//! against the simulators on pseudo-terminals: the driver is given the messages the
//! transcript's host sent, in order, and each exchange must end as the transcript's
//! did (the card read, a send refused and sent again after the wait, a message back
//! with its text, a session's result, a mailbox check), with the host's commands the
//! transcript's and the simulator's answers the transcript's lines, but where a
//! difference is named and explained here.
//!
//! The self-written BDS-3 and 4.0 dialogues (written from public facts, not captured
//! from a device) are replayed the same way: the card, a first send refused for the rate
//! with the seconds to wait and sent after them, a message back from the own card; their
//! times of day are left out of the comparison, the simulator's clock not being theirs.
//!
//! The SMS dialogue with a Tiantong-1 terminal, self-written too, is replayed against
//! `sim sms` with its delays at a tenth of the dialogue's (a send taken in 0.4 s, a
//! message back 0.6 s later), the driver on a real clock.
//!
//! The BeiDou card of the transcript has a 40 s service interval. Its simulator runs
//! its clock 20 times as fast (`--time-scale 20`) and the driver is given a clock
//! running as fast, so each 40 s passes in 2 s while every second named on the wire
//! stays the card's.

mod common;

use std::io::{Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use drivers::satellite::BeidouDialect;
use drivers::satellite::bearer::{Bearer, BearerEvent, Body, Outgoing, Urgency};
use drivers::satellite::beidou::bd1::{self, Frame, FrameReader};
use drivers::satellite::beidou::nmea::Sentence;
use drivers::satellite::beidou::terminal::{BeidouTerminal, TerminalTiming};
use drivers::satellite::iridium::{Sbd, SbdTiming, parse_sbdix};
use drivers::satellite::sms::modem::{SmsModem, SmsTiming};
use drivers::satellite::sms::pdu;

const BEIDOU: &str = include_str!("../../drivers/tests/fixtures/serial/beidou-rdss-2.1.txt");
const IRIDIUM: &str = include_str!("../../drivers/tests/fixtures/serial/iridium-sbd.txt");
const BDS3: &str = include_str!("../../drivers/tests/fixtures/serial/beidou-bds3.txt");
const BD1: &str = include_str!("../../drivers/tests/fixtures/serial/beidou-bd1-4.0.txt");
const SMS: &str = include_str!("../../drivers/tests/fixtures/serial/sms-tiantong.txt");

/// How much faster than real time the BeiDou replays' clocks run.
const SCALE: u32 = 20;

/// A transcript's lines: `true` for the host's, in order, without comments.
fn transcript(text: &'static str) -> Vec<(bool, &'static str)> {
    text.lines()
        .filter_map(|l| {
            l.strip_prefix("> ")
                .map(|s| (true, s))
                .or(l.strip_prefix("< ").map(|s| (false, s)))
        })
        .collect()
}

/// A self-written dialogue's lines, `true` for the host's, without their times.
fn dialogue(text: &'static str) -> Vec<(bool, &'static str)> {
    transcript(text)
        .into_iter()
        .map(|(host, line)| {
            let (time, rest) = line.split_once(' ').expect("a time and a line");
            assert!(time.starts_with('+'), "a time first: {line:?}");
            (host, rest)
        })
        .collect()
}

/// A driver on the terminal at `link`, on a clock `scale` times as fast as real time.
struct Replay<B: Bearer> {
    port: Box<dyn serialport::SerialPort>,
    driver: B,
    start: Instant,
    scale: u32,
    /// Every event, with the driver's time.
    events: Vec<(Instant, BearerEvent)>,
}

impl<B: Bearer> Replay<B> {
    fn new(link: &Path, scale: u32, driver: impl FnOnce(Instant) -> B) -> Replay<B> {
        let port = serialport::new(link.to_string_lossy(), 19200)
            .timeout(Duration::from_millis(10))
            .open()
            .expect("the pty opens as a serial port");
        let start = Instant::now();
        Replay {
            port,
            driver: driver(start),
            start,
            scale,
            events: Vec::new(),
        }
    }

    /// The driver's time.
    fn now(&self) -> Instant {
        self.start + self.start.elapsed() * self.scale
    }

    /// Runs the driver until `done` holds for the events so far; panics after `limit`
    /// of real time.
    fn until(&mut self, what: &str, limit: Duration, done: impl Fn(&B, &[BearerEvent]) -> bool) {
        let end = Instant::now() + limit;
        let mut buffer = [0u8; 512];
        loop {
            let events: Vec<BearerEvent> = self.events.iter().map(|(_, e)| e.clone()).collect();
            if done(&self.driver, &events) {
                return;
            }
            assert!(
                Instant::now() < end,
                "{what}: not within {limit:?}: {events:?}"
            );
            let out = self.driver.take_output();
            if !out.is_empty() {
                self.port.write_all(&out).expect("write to the terminal");
            }
            match self.port.read(&mut buffer) {
                Ok(n) => self.driver.on_bytes(&buffer[..n], self.now()),
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
                Err(e) => panic!("terminal read: {e}"),
            }
            let now = self.now();
            self.driver.poll(now);
            self.events
                .extend(self.driver.drain_events().into_iter().map(|e| (now, e)));
        }
    }

    fn enqueue(&mut self, id: u64, to: &str, body: Body) {
        let now = self.now();
        self.driver
            .enqueue(
                Outgoing {
                    id,
                    to: to.into(),
                    urgency: Urgency::Normal,
                    body,
                },
                now,
            )
            .expect("queued");
    }

    fn sent_at(&self, id: u64) -> Option<Instant> {
        self.events.iter().find_map(|(at, e)| match e {
            BearerEvent::Sent { id: i } if *i == id => Some(*at),
            _ => None,
        })
    }
}

fn received_from<B>(from: &str, body: Body) -> impl Fn(&B, &[BearerEvent]) -> bool {
    let wanted = BearerEvent::Received {
        from: from.into(),
        body,
    };
    move |_, events| events.contains(&wanted)
}

/// A driver event a clean replay never has.
fn failed_or_down(event: &BearerEvent) -> bool {
    matches!(event, BearerEvent::Failed { .. } | BearerEvent::Down { .. })
}

/// What the host wrote to the simulator, in order, from its log.
fn host_lines(log: &[(u64, String, String)]) -> Vec<&str> {
    log.iter()
        .filter(|(_, event, _)| event == "in")
        .map(|(_, _, s)| s.as_str())
        .collect()
}

/// A simulator's log: (time in ms, the event, the sentence, command, text or PDU), in
/// order.
fn logged(path: &Path) -> Vec<(u64, String, String)> {
    std::fs::read_to_string(path)
        .expect("the simulator's log")
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|entry| {
            let event = entry["event"].as_str()?;
            let sentence = ["sentence", "command", "text", "pdu"]
                .iter()
                .find_map(|k| entry[k].as_str())
                .unwrap_or_default();
            Some((
                entry["t_ms"].as_u64()?,
                event.to_string(),
                sentence.to_string(),
            ))
        })
        .collect()
}

#[test]
fn the_beidou_2_1_transcript_replayed_through_the_driver_ends_each_exchange_as_the_transcript() {
    let lines = transcript(BEIDOU);
    assert_eq!(lines.len(), 16);
    let dir = common::scratch("replay-beidou");
    let scale = SCALE.to_string();
    // The transcript's card, 0166166, 40 s; the card it messages in mixed form,
    // 0179773, sends the message back. The terminal refuses the first send without a
    // cause and, after the send to another card, reports a position request refused
    // with 58 s to wait, as the transcript's did.
    let ((_terminal, link), (_echo, _)) = common::paired(
        "beidou",
        "beidou simulator",
        &dir,
        &[
            "--card",
            "0166166",
            "--interval-s",
            "40",
            "--time-scale",
            &scale,
            "--refuse-first",
            "1",
            "--position-refusal-s",
            "58",
            "--delivery-delay-ms",
            "2000",
        ],
        &[
            "--card",
            "0179773",
            "--interval-s",
            "40",
            "--time-scale",
            &scale,
            "--echo",
        ],
    );
    let timing = TerminalTiming {
        probe_every: Duration::from_secs(40),
        feedback_timeout: Duration::from_secs(200),
    };
    let mut replay = Replay::new(&link, SCALE, |now| {
        BeidouTerminal::new(BeidouDialect::V21, timing, now)
    });
    let limit = Duration::from_secs(20);

    // $CCICA → $BDICI: the card is read.
    replay.until("the card", limit, |_, e| {
        e.iter().any(|e| matches!(e, BearerEvent::Up { .. }))
    });
    let card = replay.driver.card().expect("the card").clone();
    assert_eq!(card.id, "0166166");
    assert_eq!(card.service_interval, Duration::from_secs(40));
    assert_eq!((card.comm_level, card.encrypted), (3, false));
    assert_eq!(replay.driver.capacity(), Some(78));

    // Code form to the own card: refused once, then sent, and it comes back.
    replay.enqueue(1, "0166166", Body::Bytes(b"12343335".to_vec()));
    replay.until(
        "the own card's message back",
        limit,
        received_from("0166166", Body::Bytes(b"12343335".to_vec())),
    );
    assert_eq!(replay.driver.counters().refusals, 1);

    // To another card: sent one service interval after the last; the position refusal
    // that follows concerns no message of the driver's.
    replay.enqueue(2, "0247718", Body::Bytes(b"12345".to_vec()));
    replay.until("the send to 0247718", limit, |_, e| {
        e.contains(&BearerEvent::Sent { id: 2 })
    });
    let (first, second) = (
        replay.sent_at(1).expect("1 sent"),
        replay.sent_at(2).expect("2 sent"),
    );
    assert!(
        second - first >= Duration::from_secs(40),
        "one service interval apart: {:?}",
        second - first
    );

    // Mixed form ("hello" led by A4) to 0179773, which sends it back.
    replay.driver = replay.driver_with_mixed_bytes();
    replay.enqueue(3, "0179773", Body::Bytes(b"hello".to_vec()));
    replay.until(
        "the echo from 0179773",
        limit,
        received_from("0179773", Body::Bytes(b"hello".to_vec())),
    );
    assert!(
        replay
            .sent_at(3)
            .is_some_and(|third| third - second >= Duration::from_secs(40))
    );
    assert_eq!(
        replay.driver.counters().refusals,
        1,
        "the position refusal is not ours"
    );
    assert!(
        !replay.events.iter().any(|(_, e)| failed_or_down(e)),
        "{:?}",
        replay.events
    );
    drop(replay);

    // On the wire: the host's sentences are the transcript's, but `$CCBSS` (the driver
    // leaves the choice of beams to the terminal); the terminal's are the transcript's,
    // beam reports apart, with two differences named below.
    let log = logged(&dir.join("a.jsonl"));
    let host = host_lines(&log);
    let expected_host: Vec<&str> = lines
        .iter()
        .filter(|(host, line)| *host && !line.starts_with("$CCBSS"))
        .map(|(_, l)| *l)
        .collect();
    assert_eq!(host, expected_host);

    let beam = lines
        .iter()
        .find(|(_, l)| l.starts_with("$BDBSI"))
        .expect("a beam report")
        .1;
    let terminal: Vec<&str> = log
        .iter()
        .filter(|(_, event, s)| event == "out" && !s.starts_with("$BDBSI"))
        .map(|(_, _, s)| s.as_str())
        .collect();
    assert!(
        log.iter()
            .filter(|(_, event, s)| event == "out" && s.starts_with("$BDBSI"))
            .all(|(_, _, s)| s == beam),
        "beams reported as the transcript's first report"
    );
    let mut expected_terminal: Vec<&str> = lines
        .iter()
        .filter(|(host, line)| !*host && !line.starts_with("$BDBSI"))
        .map(|(_, l)| *l)
        .collect();
    // The transcript's terminal named no wait when it took the send to 0247718; the
    // simulator names the card's interval on every send it takes. The driver waits the
    // interval either way (checked above).
    let named_nothing = expected_terminal
        .iter()
        .position(|l| *l == "$BDFKI,TXA,Y,Y,0,0000*13")
        .expect("the send to 0247718 taken");
    expected_terminal[named_nothing] = "$BDFKI,TXA,Y,Y,0,0040*17";
    // The transcript leaves out the feedback to the mixed send; the simulator gives it.
    let echo = expected_terminal.len() - 1;
    expected_terminal.insert(echo, "$BDFKI,TXA,Y,Y,0,0040*17");
    assert_eq!(terminal, expected_terminal);

    // The refused send went again after the card's 40 s, not at once.
    let sends: Vec<u64> = log
        .iter()
        .filter(|(_, event, s)| event == "in" && s.starts_with("$CCTXA,0166166"))
        .map(|(t, _, _)| *t)
        .collect();
    assert_eq!(sends.len(), 2);
    assert!(
        sends[1] - sends[0] >= 40_000 / u64::from(SCALE),
        "{sends:?}"
    );
}

impl Replay<BeidouTerminal> {
    /// The driver, from now on writing bytes in mixed form.
    fn driver_with_mixed_bytes(&mut self) -> BeidouTerminal {
        let placeholder =
            BeidouTerminal::new(BeidouDialect::V21, TerminalTiming::default(), self.now());
        std::mem::replace(&mut self.driver, placeholder).send_bytes_mixed(true)
    }
}

/// An AT dialogue as exchanges: each command (a binary write as `<binary>`) and the
/// modem's lines that follow it.
fn at_exchanges(lines: &[(bool, &str)]) -> Vec<(String, Vec<String>)> {
    let mut exchanges: Vec<(String, Vec<String>)> = Vec::new();
    for (host, line) in lines {
        if *host {
            let command = if line.starts_with("<hex") {
                "<binary>".to_string()
            } else {
                line.to_string()
            };
            exchanges.push((command, Vec::new()));
        } else if let Some((_, answer)) = exchanges.last_mut() {
            answer.push(line.to_string());
        }
    }
    exchanges
}

/// The Iridium simulator's log as exchanges; `SBDRING`, which comes unasked, apart.
fn logged_at_exchanges(path: &Path) -> Vec<(String, Vec<String>)> {
    let mut exchanges: Vec<(String, Vec<String>)> = Vec::new();
    for (_, event, text) in logged(path) {
        match event.as_str() {
            "in" => exchanges.push((text, Vec::new())),
            "binary" => exchanges.push(("<binary>".into(), Vec::new())),
            "out" => {
                if let Some((_, answer)) = exchanges.last_mut() {
                    answer.extend(
                        text.lines()
                            .map(str::trim)
                            .filter(|l| !l.is_empty() && *l != "SBDRING")
                            .map(String::from),
                    );
                }
            }
            _ => {}
        }
    }
    exchanges
}

#[test]
fn the_iridium_transcript_replayed_through_the_driver_ends_each_exchange_as_the_transcript() {
    let lines = transcript(IRIDIUM);
    assert_eq!(lines.len(), 27);
    let dir = common::scratch("replay-iridium");
    // The transcript's modem: its first session sends, its second finds no network.
    // The paired modem plays whoever sends it the MT messages the third one brings.
    let ((_modem, link), (_sender, sender_link)) = common::paired(
        "iridium",
        "iridium simulator",
        &dir,
        &["--fail", "0,32", "--session-ms", "200"],
        &["--session-ms", "200"],
    );
    let timing = SbdTiming {
        first_backoff: Duration::from_secs(3),
        signal_every: Duration::from_secs(2),
        ..SbdTiming::default()
    };
    let mut replay = Replay::new(&link, 1, |now| Sbd::new(timing, now));
    let limit = Duration::from_secs(20);
    replay.until("the modem up", limit, |_, e| {
        e.iter().any(|e| matches!(e, BearerEvent::Up { .. }))
    });

    // AT+SBDWT=Hello World, then a session that sends it.
    replay.enqueue(1, "gateway", Body::Text("Hello World".into()));
    replay.until("the text sent", limit, |_, e| {
        e.contains(&BearerEvent::Sent { id: 1 })
    });

    // "hello" written as bytes; the session finds no network and the message stays.
    replay.enqueue(2, "gateway", Body::Bytes(b"hello".to_vec()));
    replay.until("the failed session", limit, |sbd, _| {
        sbd.counters().transient_failures == 1
    });
    assert_eq!(replay.driver.queued().len(), 1, "kept for another try");

    // Nine MT messages reach the gateway while the driver waits its backoff: the next
    // session brings the first, "hello!", and says 8 more are queued.
    let mut sender = serialport::new(sender_link.to_string_lossy(), 19200)
        .timeout(Duration::from_millis(10))
        .open()
        .expect("the sender's pty");
    for k in 0..9 {
        let text = if k == 0 {
            "hello!".to_string()
        } else {
            format!("queued {k}")
        };
        sender
            .write_all(format!("AT+SBDWT={text}\rAT+SBDIX\r").as_bytes())
            .expect("written to the sender");
    }
    replay.until("the MT message", limit, |_, e| {
        let hello = BearerEvent::Received {
            from: "Iridium".into(),
            body: Body::Text("hello!".into()),
        };
        // The transcript reads the signal last: one reading after the message.
        e.iter().position(|e| *e == hello).is_some_and(|k| {
            e[k..]
                .iter()
                .any(|e| matches!(e, BearerEvent::Signal { .. }))
        })
    });
    let events: Vec<&BearerEvent> = replay.events.iter().map(|(_, e)| e).collect();
    assert!(events.contains(&&BearerEvent::Sent { id: 2 }));
    assert_eq!(
        events
            .iter()
            .find(|e| matches!(e, BearerEvent::Received { .. })),
        Some(&&BearerEvent::Received {
            from: "Iridium".into(),
            body: Body::Text("hello!".into())
        }),
        "the first MT message is the transcript's"
    );
    assert!(
        events.contains(&&BearerEvent::Signal { level: 3 }),
        "+CSQ:4"
    );
    assert!(!events.iter().any(|e| failed_or_down(e)));
    let counters = replay.driver.counters();
    assert_eq!((counters.transient_failures, counters.write_errors), (1, 0));
    drop(replay);

    // On the wire, each of the transcript's commands is one the driver sent, in the
    // same order (the driver also clears the MO buffer after a send, writes the message
    // again before a retried session and reads the signal on its own schedule), and the
    // modem's answer to it is the transcript's, but where named below.
    let expected = at_exchanges(&lines);
    let seen = logged_at_exchanges(&dir.join("a.jsonl"));
    let mut from = 0;
    for (command, answer) in &expected {
        // The driver reads MT messages in binary (AT+SBDRB): a text read (AT+SBDRT)
        // could not carry every byte. Its outcome, "hello!" received, is checked above.
        let wanted = if command == "AT+SBDRT" {
            "AT+SBDRB"
        } else {
            command.as_str()
        };
        let k = seen[from..]
            .iter()
            .position(|(c, _)| c == wanted)
            .unwrap_or_else(|| panic!("{wanted} after exchange {from}: {seen:?}"));
        let got = &seen[from + k].1;
        from += k + 1;
        if command == "AT+SBDRT" {
            continue;
        }
        match (
            answer.first().and_then(|l| parse_sbdix(l)),
            got.first().and_then(|l| parse_sbdix(l)),
        ) {
            // The transcript's sessions come from more than one modem: their message
            // sequence numbers do not follow one from another, so that one is not held.
            (Some(mut wanted), Some(result)) => {
                wanted.momsn = result.momsn;
                assert_eq!(result, wanted, "{command}");
                assert_eq!(got[1..], answer[1..], "{command}");
            }
            _ => assert_eq!(got, answer, "{command}"),
        }
    }
}

/// A BDS-3 sentence with its time of day (`FKI`'s, `TCI`'s, `PWI`'s) left blank: the
/// simulator's clock is not the dialogue's.
fn untimed(line: &str) -> Sentence {
    let mut sentence = Sentence::parse(line.as_bytes()).expect("a sentence");
    let at = match sentence.kind.as_str() {
        "FKI" | "PWI" => Some(0),
        "TCI" => Some(3),
        _ => None,
    };
    if let Some(field) = at.and_then(|k| sentence.fields.get_mut(k)) {
        field.clear();
    }
    sentence
}

/// The log's times of the host's lines that start with `prefix`, in ms.
fn times_of(log: &[(u64, String, String)], prefix: &str) -> Vec<u64> {
    log.iter()
        .filter(|(_, event, s)| event == "in" && s.starts_with(prefix))
        .map(|(t, _, _)| *t)
        .collect()
}

#[test]
fn the_bds3_dialogue_replayed_through_the_driver_ends_each_exchange_as_the_dialogue() {
    let lines = dialogue(BDS3);
    assert_eq!(lines.len(), 12);
    let dir = common::scratch("replay-bds3");
    let scale = SCALE.to_string();
    // The dialogue's module: card 15950044, 60 s, comm level 4, which sent for another
    // host 20 s before the gateway's first send.
    let (_module, link) = common::start_sim(
        "beidou",
        "beidou simulator",
        &dir,
        "a",
        &[
            "--dialect",
            "bds3",
            "--card",
            "15950044",
            "--interval-s",
            "60",
            "--comm-level",
            "4",
            "--sent-ago-s",
            "20",
            "--time-scale",
            &scale,
        ],
    );
    let timing = TerminalTiming {
        probe_every: Duration::from_secs(40),
        feedback_timeout: Duration::from_secs(200),
    };
    let mut replay = Replay::new(&link, SCALE, |now| {
        BeidouTerminal::new(BeidouDialect::Bds3, timing, now)
    });
    let limit = Duration::from_secs(20);

    // $CCICR → $BDICP: the card is read; $BDPWI gives the signal.
    replay.until("the card and the beams", limit, |_, e| {
        e.iter().any(|e| matches!(e, BearerEvent::Up { .. }))
            && e.contains(&BearerEvent::Signal { level: 3 })
    });
    let card = replay.driver.card().expect("the card").clone();
    assert_eq!(card.id, "15950044");
    assert_eq!(card.service_interval, Duration::from_secs(60));
    assert_eq!((card.comm_level, card.encrypted), (4, false));

    // "hello" refused for the rate with 40 s to wait, then sent.
    let asked = replay.now();
    replay.enqueue(1, "0247718", Body::Bytes(b"hello".to_vec()));
    replay.until("hello sent", limit, |_, e| {
        e.contains(&BearerEvent::Sent { id: 1 })
    });
    assert_eq!(replay.driver.counters().refusals, 1);
    let first = replay.sent_at(1).expect("1 sent");
    assert!(
        first - asked >= Duration::from_secs(40),
        "{:?}",
        first - asked
    );

    // "12345" to the own card, one interval later, comes back.
    replay.enqueue(2, "15950044", Body::Bytes(b"12345".to_vec()));
    replay.until(
        "12345 back",
        limit,
        received_from("15950044", Body::Bytes(b"12345".to_vec())),
    );
    let second = replay.sent_at(2).expect("2 sent");
    assert!(second - first >= Duration::from_secs(60));
    assert!(
        !replay.events.iter().any(|(_, e)| failed_or_down(e)),
        "{:?}",
        replay.events
    );
    drop(replay);

    // On the wire: the host's sentences are the dialogue's; the module's are too, read
    // with their time of day blank and beam reports apart (one a second on the module's
    // clock, as many as the replay took).
    let log = logged(&dir.join("a.jsonl"));
    let host = host_lines(&log);
    let expected_host: Vec<&str> = lines.iter().filter(|(h, _)| *h).map(|(_, l)| *l).collect();
    assert_eq!(host, expected_host);
    let module: Vec<Sentence> = log
        .iter()
        .filter(|(_, event, s)| event == "out" && !s.starts_with("$BDPWI"))
        .map(|(_, _, s)| untimed(s))
        .collect();
    let expected_module: Vec<Sentence> = lines
        .iter()
        .filter(|(h, l)| !*h && !l.starts_with("$BDPWI"))
        .map(|(_, l)| untimed(l))
        .collect();
    assert_eq!(module, expected_module);
    let beam = untimed(
        lines
            .iter()
            .find(|(_, l)| l.starts_with("$BDPWI"))
            .expect("a beam report")
            .1,
    );
    assert!(
        log.iter()
            .filter(|(_, event, s)| event == "out" && s.starts_with("$BDPWI"))
            .all(|(_, _, s)| untimed(s) == beam)
    );

    // The refused send went again after the 40 s it named, the next one interval later.
    let hello = times_of(&log, "$CCTCQ,0247718");
    let own = times_of(&log, "$CCTCQ,15950044");
    assert_eq!((hello.len(), own.len()), (2, 1));
    let ms = |seconds: u64| seconds * 1000 / u64::from(SCALE);
    assert!(hello[1] - hello[0] >= ms(40), "{hello:?}");
    assert!(own[0] - hello[1] >= ms(60), "{hello:?} {own:?}");
}

/// A frame's bytes from the simulator's log (hex, no spaces) or a dialogue (`<hex ..>`).
fn frame_bytes(text: &str) -> Vec<u8> {
    let digits: Vec<u8> = text
        .trim_start_matches("<hex")
        .trim_end_matches('>')
        .bytes()
        .filter(u8::is_ascii_hexdigit)
        .collect();
    digits
        .chunks(2)
        .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).expect("ASCII"), 16).expect("hex"))
        .collect()
}

/// A 4.0 frame as the dialogue means it: a message's time of day (hour and minute,
/// body bytes 4 and 5) zeroed, as the simulator's clock is not the dialogue's.
fn untimed_frame(bytes: &[u8]) -> Frame {
    let frames = FrameReader::new().push(bytes);
    let [frame] = frames.as_slice() else {
        panic!("one frame: {bytes:02X?}");
    };
    let mut frame = frame.clone();
    if &frame.command == b"TXXX" {
        for b in frame.body.iter_mut().skip(4).take(2) {
            *b = 0;
        }
    }
    frame
}

#[test]
fn the_bd1_dialogue_replayed_through_the_driver_ends_each_exchange_as_the_dialogue() {
    let lines = dialogue(BD1);
    assert_eq!(lines.len(), 11);
    let dir = common::scratch("replay-bd1");
    let scale = SCALE.to_string();
    // The dialogue's terminal: card 166166, 60 s, comm level 3, which sent for another
    // host 20 s before the gateway's first send.
    let (_terminal, link) = common::start_sim(
        "beidou",
        "beidou simulator",
        &dir,
        "a",
        &[
            "--dialect",
            "4.0",
            "--card",
            "166166",
            "--interval-s",
            "60",
            "--sent-ago-s",
            "20",
            "--time-scale",
            &scale,
        ],
    );
    let timing = TerminalTiming {
        probe_every: Duration::from_secs(40),
        feedback_timeout: Duration::from_secs(200),
    };
    let mut replay = Replay::new(&link, SCALE, |now| {
        BeidouTerminal::new(BeidouDialect::Bd1, timing, now)
    });
    let limit = Duration::from_secs(20);

    // ICJC → ICXX: the card is read.
    replay.until("the card", limit, |_, e| {
        e.iter().any(|e| matches!(e, BearerEvent::Up { .. }))
    });
    let card = replay.driver.card().expect("the card").clone();
    assert_eq!(card.id, "166166");
    assert_eq!(card.service_interval, Duration::from_secs(60));
    assert_eq!(card.comm_level, 3);

    // "hello" refused with flag 4 and 40 s, then sent.
    let asked = replay.now();
    replay.enqueue(1, "246006", Body::Bytes(b"hello".to_vec()));
    replay.until("hello sent", limit, |_, e| {
        e.contains(&BearerEvent::Sent { id: 1 })
    });
    assert_eq!(replay.driver.counters().refusals, 1);
    let first = replay.sent_at(1).expect("1 sent");
    assert!(
        first - asked >= Duration::from_secs(40),
        "{:?}",
        first - asked
    );

    // "12345" to the own card, one interval later, comes back as TXXX.
    replay.enqueue(2, "166166", Body::Bytes(b"12345".to_vec()));
    replay.until(
        "12345 back",
        limit,
        received_from("166166", Body::Bytes(b"12345".to_vec())),
    );
    assert!(replay.sent_at(2).expect("2 sent") - first >= Duration::from_secs(60));
    assert!(
        !replay.events.iter().any(|(_, e)| failed_or_down(e)),
        "{:?}",
        replay.events
    );
    drop(replay);

    // On the wire: the dialogue's frames, host's and terminal's, in order, but for the
    // card queries the driver makes every 10 s and their answers: the dialogue keeps the
    // first round, the replay has as many as its time took (at least one between the
    // refusal and the send that followed).
    let keepalive = bd1::card_info(166_166);
    let log = logged(&dir.join("a.jsonl"));
    let wire: Vec<(bool, Frame)> = log
        .iter()
        .filter(|(_, event, _)| event == "in" || event == "out")
        .map(|(_, event, s)| (event == "in", untimed_frame(&frame_bytes(s))))
        .collect();
    let expected: Vec<(bool, Frame)> = lines
        .iter()
        .map(|(host, l)| (*host, untimed_frame(&frame_bytes(l))))
        .collect();
    let without_keepalives = |frames: &[(bool, Frame)]| -> Vec<(bool, Frame)> {
        let mut kept = Vec::new();
        let mut skip_answer = false;
        for (host, frame) in frames {
            if *host && *frame == keepalive {
                skip_answer = true;
                continue;
            }
            if !*host && skip_answer && &frame.command == b"ICXX" {
                skip_answer = false;
                continue;
            }
            kept.push((*host, frame.clone()));
        }
        kept
    };
    assert_eq!(without_keepalives(&wire), without_keepalives(&expected));
    let sends: Vec<usize> = wire
        .iter()
        .enumerate()
        .filter(|(_, (host, f))| *host && &f.command == b"TXSQ")
        .map(|(k, _)| k)
        .collect();
    assert_eq!(sends.len(), 3);
    assert!(
        wire[sends[0]..sends[1]]
            .iter()
            .any(|(host, f)| *host && *f == keepalive),
        "the card asked for while the refusal's wait runs"
    );
}

/// The SMS dialogue's own number, and its two messages.
const SMS_OWN: &str = "+8617400012345";
const SMS_SHORT: &str = "收到，马上转移";
const SMS_WARNING: &str = "暴雨红色预警：预计未来三小时本村降雨量将超过一百毫米，山洪和泥石流风险极高。\
    请沿河及低洼地带群众立即转移到村委会或学校等安全地点，带好证件和药品，听从村干部指挥，不要返回取物。";

/// An SMS line as the dialogue means it: a PDU (an SMS-SUBMIT sent with Ctrl-Z, or an
/// SMS-DELIVER read) as its recipient or sender, text and part, the concatenation
/// reference left out (the driver draws its own); any other line as it is.
fn sms_meaning(line: &str) -> String {
    let without_reference = |d: pdu::Delivered| {
        (
            d.body,
            d.part.map(|p| (p.total, p.sequence)),
            d.from.clone(),
        )
    };
    if let Some(submit) = line.strip_suffix("<1A>") {
        let (to, deliver) =
            pdu::deliver_for_submit(submit, SMS_OWN, [0; 7]).expect("an SMS-SUBMIT");
        let read = pdu::read_deliver(&deliver).expect("as delivered");
        return format!(
            "SUBMIT to {to}, {} octets: {:?}",
            submit.len() / 2,
            without_reference(read)
        );
    }
    match pdu::read_deliver(line) {
        Ok(read) => format!(
            "DELIVER, {} octets: {:?}",
            line.len() / 2,
            without_reference(read)
        ),
        Err(_) => line.to_string(),
    }
}

/// AT exchanges as (command, answer lines) with every line as [`sms_meaning`] reads it,
/// and apart the `+CMTI` announcements with the exchange they came in.
type SmsWire = (Vec<(String, Vec<String>)>, Vec<(usize, String)>);

fn sms_exchange(wire: &mut SmsWire, host: bool, line: &str) {
    let (exchanges, announced) = wire;
    if host {
        exchanges.push((sms_meaning(line), Vec::new()));
    } else if line.starts_with("+CMTI:") {
        announced.push((exchanges.len(), line.to_string()));
    } else if let Some((_, answer)) = exchanges.last_mut() {
        answer.push(sms_meaning(line));
    }
}

/// Leaves out the signal rounds the driver makes on its own schedule: `AT+CSQ` and the
/// `AT+CREG?` that follows it.
fn without_signal_rounds(exchanges: &[(String, Vec<String>)]) -> Vec<(String, Vec<String>)> {
    let mut kept: Vec<(String, Vec<String>)> = Vec::new();
    let mut after_signal = false;
    for (command, answer) in exchanges {
        let signal = command == "AT+CSQ";
        let signal_round = signal || (after_signal && command == "AT+CREG?");
        if !signal_round {
            kept.push((command.clone(), answer.clone()));
        }
        after_signal = signal;
    }
    kept
}

#[test]
fn the_sms_dialogue_replayed_through_the_driver_ends_each_exchange_as_the_dialogue() {
    let lines = dialogue(SMS);
    assert_eq!(lines.len(), 46);
    let dir = common::scratch("replay-sms");
    // The dialogue's terminal, its send taking 4 s and a message back 6 s: a tenth here.
    let (_terminal, link) = common::start_sim(
        "sms",
        "sms simulator",
        &dir,
        "a",
        &[
            "--number",
            SMS_OWN,
            "--send-ms",
            "400",
            "--delivery-ms",
            "600",
        ],
    );
    let timing = SmsTiming {
        signal_every: Duration::from_secs(1),
        ..SmsTiming::default()
    };
    let mut replay = Replay::new(&link, 1, |now| SmsModem::new(timing, now));
    let limit = Duration::from_secs(20);

    // Start-up and registration; the signal is read.
    replay.until("registered", limit, |_, e| {
        e.iter().any(|e| matches!(e, BearerEvent::Up { .. }))
    });

    // The short message to another number, then the warning to the own number in two
    // parts, which come back and are put together.
    replay.enqueue(1, "+8613800138000", Body::Text(SMS_SHORT.into()));
    replay.enqueue(2, SMS_OWN, Body::Text(SMS_WARNING.into()));
    replay.until(
        "the warning back",
        limit,
        received_from(SMS_OWN, Body::Text(SMS_WARNING.into())),
    );
    // A signal reading after it: the stored copy deleted first, as the driver deletes
    // before anything else.
    replay.until("a signal reading after the warning", limit, |_, e| {
        let warning = BearerEvent::Received {
            from: SMS_OWN.into(),
            body: Body::Text(SMS_WARNING.into()),
        };
        e.iter()
            .position(|e| *e == warning)
            .is_some_and(|k| e[k..].contains(&BearerEvent::Signal { level: 4 }))
    });
    let events: Vec<&BearerEvent> = replay.events.iter().map(|(_, e)| e).collect();
    let sent: Vec<&&BearerEvent> = events
        .iter()
        .filter(|e| matches!(e, BearerEvent::Sent { .. }))
        .collect();
    assert_eq!(
        sent,
        [&&BearerEvent::Sent { id: 1 }, &&BearerEvent::Sent { id: 2 }]
    );
    assert!(!events.iter().any(|e| failed_or_down(e)), "{events:?}");
    assert_eq!(replay.driver.counters(), Default::default(), "no fault");
    drop(replay);

    // On the wire: the dialogue's exchanges, commands and answers, in order, but for the
    // signal rounds (at least one, answered as in the dialogue) and the concatenation
    // reference; the parts announced in the dialogue's order, each read after it came.
    let mut expected: SmsWire = Default::default();
    for (host, line) in &lines {
        sms_exchange(&mut expected, *host, line);
    }
    let log = logged(&dir.join("a.jsonl"));
    let mut seen: SmsWire = Default::default();
    for (_, event, text) in &log {
        match event.as_str() {
            "in" => sms_exchange(&mut seen, true, text),
            "submit" => sms_exchange(&mut seen, true, &format!("{text}<1A>")),
            "out" => {
                for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
                    sms_exchange(&mut seen, false, line);
                }
            }
            _ => {}
        }
    }
    assert_eq!(
        without_signal_rounds(&seen.0),
        without_signal_rounds(&expected.0)
    );
    let signal = |wire: &SmsWire| -> Vec<(String, Vec<String>)> {
        wire.0
            .iter()
            .filter(|(c, _)| c == "AT+CSQ")
            .cloned()
            .collect()
    };
    let (seen_signal, expected_signal) = (signal(&seen), signal(&expected));
    assert!(!seen_signal.is_empty());
    assert!(seen_signal.iter().all(|s| *s == expected_signal[0]));
    let announced =
        |wire: &SmsWire| -> Vec<String> { wire.1.iter().map(|(_, l)| l.clone()).collect() };
    assert_eq!(announced(&seen), announced(&expected));
    for (at, line) in &seen.1 {
        let index = line.rsplit(',').next().expect("an index");
        assert!(
            seen.0[*at..]
                .iter()
                .any(|(c, _)| *c == format!("AT+CMGR={index}")),
            "{line} read after it came"
        );
    }

    // The warning's two parts share one reference.
    let references: Vec<u8> = log
        .iter()
        .filter(|(_, event, _)| event == "submit")
        .filter_map(|(_, _, pdu)| {
            let (_, deliver) = pdu::deliver_for_submit(pdu, SMS_OWN, [0; 7]).ok()?;
            Some(pdu::read_deliver(&deliver).ok()?.part?.reference)
        })
        .collect();
    assert_eq!(references.len(), 2);
    assert_eq!(references[0], references[1]);

    // Each send answered no sooner than 0.4 s after its PDU, each part back no sooner
    // than 0.6 s after its +CMGS.
    let at = |event: &str, prefix: &str| -> Vec<u64> {
        log.iter()
            .filter(|(_, e, text)| e == event && text.trim_start().starts_with(prefix))
            .map(|(t, _, _)| *t)
            .collect()
    };
    let (submits, answers, back) = (at("submit", ""), at("out", "+CMGS"), at("out", "+CMTI"));
    assert_eq!((submits.len(), answers.len(), back.len()), (3, 3, 2));
    for (submit, answer) in submits.iter().zip(&answers) {
        assert!(answer - submit >= 400, "{submits:?} {answers:?}");
    }
    for (answer, back) in answers[1..].iter().zip(&back) {
        assert!(back - answer >= 600, "{answers:?} {back:?}");
    }
}
