//! The satellite drivers against the terminal simulators (`emcomm-bench sim beidou|
//! iridium|sms`) on real pseudo-terminals: the card, the service interval, a refusal
//! with its wait, Chinese text and bytes, two paired terminals, the transcript's
//! dialogue, the dialects found by probing, long text in parts, Iridium sessions and
//! their time, SMS between paired modems and its status reports, and the bench tools.

mod common;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use drivers::satellite::BeidouDialect;
use drivers::satellite::bearer::{Bearer, BearerEvent, Body, Outgoing, Urgency};
use drivers::satellite::beidou::terminal::{BeidouTerminal, TerminalTiming};
use drivers::satellite::iridium::{Sbd, SbdTiming};
use hw_test::process::Supervised;

/// Starts a BeiDou simulator linked at `dir/NAME.pty` with `args`.
fn simulator(dir: &Path, name: &str, args: &[&str]) -> (Supervised, PathBuf) {
    common::start_sim("beidou", "beidou simulator", dir, name, args)
}

/// A driver on the terminal at `link`, moved by a loop as the gateway's task would.
struct Driven<B: Bearer> {
    port: Box<dyn serialport::SerialPort>,
    driver: B,
    events: Vec<(Instant, BearerEvent)>,
}

impl Driven<BeidouTerminal> {
    /// A 2.1 driver.
    fn open(link: &Path) -> Driven<BeidouTerminal> {
        Driven::beidou(link, BeidouDialect::V21)
    }

    /// A driver of `dialect`, probing every 300 ms.
    fn beidou(link: &Path, dialect: BeidouDialect) -> Driven<BeidouTerminal> {
        let timing = TerminalTiming {
            probe_every: Duration::from_millis(300),
            ..TerminalTiming::default()
        };
        Driven::with(link, BeidouTerminal::new(dialect, timing, Instant::now()))
    }
}

impl<B: Bearer> Driven<B> {
    fn with(link: &Path, driver: B) -> Driven<B> {
        let port = serialport::new(link.to_string_lossy(), 19200)
            .timeout(Duration::from_millis(10))
            .open()
            .expect("the pty opens as a serial port");
        Driven {
            port,
            driver,
            events: Vec::new(),
        }
    }

    /// Runs until `done` holds for the events so far, or `limit`.
    fn run_until(&mut self, limit: Duration, done: impl Fn(&[(Instant, BearerEvent)]) -> bool) {
        let end = Instant::now() + limit;
        let mut buffer = [0u8; 512];
        while Instant::now() < end && !done(&self.events) {
            let out = self.driver.take_output();
            if !out.is_empty() {
                self.port.write_all(&out).expect("write to the terminal");
            }
            match self.port.read(&mut buffer) {
                Ok(n) => self.driver.on_bytes(&buffer[..n], Instant::now()),
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
                Err(e) => panic!("terminal read: {e}"),
            }
            self.driver.poll(Instant::now());
            let now = Instant::now();
            self.events
                .extend(self.driver.drain_events().into_iter().map(|e| (now, e)));
        }
    }
}

fn sent_at(events: &[(Instant, BearerEvent)], id: u64) -> Option<Instant> {
    events.iter().find_map(|(at, e)| match e {
        BearerEvent::Sent { id: i } if *i == id => Some(*at),
        _ => None,
    })
}

fn received(events: &[(Instant, BearerEvent)]) -> Vec<(String, Body)> {
    events
        .iter()
        .filter_map(|(_, e)| match e {
            BearerEvent::Received { from, body } => Some((from.clone(), body.clone())),
            _ => None,
        })
        .collect()
}

fn message(id: u64, to: &str, body: Body) -> Outgoing {
    Outgoing {
        id,
        to: to.into(),
        urgency: Urgency::Normal,
        body,
    }
}

#[test]
fn messages_to_the_own_card_come_back_one_service_interval_apart() {
    let dir = common::scratch("sat-own");
    let (_sim, link) = simulator(&dir, "terminal", &["--interval-s", "1"]);
    let mut driven = Driven::open(&link);
    driven.run_until(Duration::from_secs(10), |e| {
        e.iter().any(|(_, e)| matches!(e, BearerEvent::Up { .. }))
    });
    assert_eq!(driven.driver.capacity(), Some(78));
    let now = Instant::now();
    driven
        .driver
        .enqueue(
            message(1, "0166166", Body::Text("暴雨红色预警，立即转移".into())),
            now,
        )
        .expect("fits");
    driven
        .driver
        .enqueue(
            message(2, "0166166", Body::Bytes(vec![0x01, 0xA4, 0x2A, 0xFF])),
            now,
        )
        .expect("fits");
    driven.run_until(Duration::from_secs(15), |e| received(e).len() >= 2);

    let events = &driven.events;
    let (first, second) = (
        sent_at(events, 1).expect("1 sent"),
        sent_at(events, 2).expect("2 sent"),
    );
    assert!(
        second.duration_since(first) >= Duration::from_millis(950),
        "the second waited the interval: {:?}",
        second.duration_since(first)
    );
    assert_eq!(
        received(events),
        vec![
            (
                "0166166".into(),
                Body::Text("暴雨红色预警，立即转移".into())
            ),
            ("0166166".into(), Body::Bytes(vec![0x01, 0xA4, 0x2A, 0xFF])),
        ]
    );
    assert_eq!(driven.driver.counters().refusals, 0);
}

#[test]
fn an_early_send_is_refused_with_the_seconds_to_wait_and_goes_after_them() {
    let dir = common::scratch("sat-early");
    // The card says 0 s, the system enforces 2 s: the driver's second send is early.
    let (_sim, link) = simulator(
        &dir,
        "terminal",
        &["--interval-s", "2", "--report-interval-s", "0"],
    );
    let mut driven = Driven::open(&link);
    let now = Instant::now();
    for id in [1, 2] {
        driven
            .driver
            .enqueue(message(id, "0166166", Body::Text(format!("报告{id}"))), now)
            .expect("queued");
    }
    driven.run_until(Duration::from_secs(20), |e| received(e).len() >= 2);
    assert_eq!(
        driven.driver.counters().refusals,
        1,
        "one refusal, not a loop"
    );
    let events = &driven.events;
    let gap = sent_at(events, 2)
        .expect("2 sent")
        .duration_since(sent_at(events, 1).expect("1 sent"));
    assert!(
        gap >= Duration::from_millis(1900),
        "waited the named seconds: {gap:?}"
    );
}

#[test]
fn two_paired_terminals_carry_a_message_from_one_card_to_the_other() {
    let dir = common::scratch("sat-pair");
    let ((_a, a_link), (_b, b_link)) = common::paired_beidou(&dir);
    let mut a = Driven::open(&a_link);
    let mut b = Driven::open(&b_link);
    a.driver
        .enqueue(
            message(5, "0247718", Body::Text("村委会：桥梁冲毁".into())),
            Instant::now(),
        )
        .expect("queued");
    run_pair(&mut a, &mut b, Duration::from_secs(15), |_, b| {
        !received(b).is_empty()
    });
    assert_eq!(
        received(&b.events),
        vec![("0166166".into(), Body::Text("村委会：桥梁冲毁".into()))]
    );
    assert!(received(&a.events).is_empty());
}

#[test]
fn the_transcripts_dialogue_meets_the_same_answers_from_the_simulator() {
    let dir = common::scratch("sat-transcript");
    // The transcript's card: 0166166, 40 s, comm level 3.
    let (_sim, link) = simulator(&dir, "terminal", &["--interval-s", "40"]);
    let mut port = serialport::new(link.to_string_lossy(), 9600)
        .timeout(Duration::from_millis(50))
        .open()
        .expect("pty");
    let mut reader = drivers::satellite::beidou::nmea::SentenceReader::new();
    let mut ask = |line: &str, answers: usize| -> Vec<String> {
        port.write_all(format!("{line}\r\n").as_bytes())
            .expect("write");
        let mut got = Vec::new();
        let end = Instant::now() + Duration::from_secs(5);
        let mut buffer = [0u8; 512];
        while got.len() < answers && Instant::now() < end {
            if let Ok(n) = port.read(&mut buffer) {
                got.extend(
                    reader
                        .push(&buffer[..n])
                        .into_iter()
                        .flatten()
                        .map(|s| s.to_string()),
                );
            }
        }
        got
    };
    assert_eq!(
        ask("$CCICA,0,00*7B", 1),
        vec!["$BDICI,0166166,02097151,0000011,6,40,3,N,000*33"]
    );
    // Accepted with 40 s to wait, and the message comes back to the own card.
    assert_eq!(
        ask("$CCTXA,0166166,1,1,3132333433333335*7F", 2),
        vec![
            "$BDFKI,TXA,Y,Y,0,0040*17",
            "$BDTXR,1,0166166,1,,3132333433333335*46"
        ]
    );
    // Within the interval: refused, with the seconds to wait.
    let refused = ask("$CCTXA,0179773,1,2,A468656C6C6F*7A", 1);
    assert!(refused[0].starts_with("$BDFKI,TXA,N,N,0,00"), "{refused:?}");
}

fn quick_sbd() -> Sbd {
    Sbd::new(
        SbdTiming {
            first_backoff: Duration::from_millis(300),
            ..SbdTiming::default()
        },
        Instant::now(),
    )
}

#[test]
fn an_iridium_session_that_finds_no_network_is_tried_again_and_the_message_goes() {
    let dir = common::scratch("sbd-retry");
    let (_sim, link) = common::start_sim(
        "iridium",
        "iridium simulator",
        &dir,
        "modem",
        &["--fail", "32,35", "--session-ms", "200"],
    );
    let mut driven = Driven::with(&link, quick_sbd());
    driven
        .driver
        .enqueue(
            message(1, "gateway", Body::Bytes(b"hello".to_vec())),
            Instant::now(),
        )
        .expect("fits");
    driven.run_until(Duration::from_secs(15), |e| {
        e.iter().any(|(_, e)| matches!(e, BearerEvent::Sent { .. }))
    });
    assert!(sent_at(&driven.events, 1).is_some(), "{:?}", driven.events);
    assert_eq!(driven.driver.counters().transient_failures, 2);
    assert!(driven.driver.queued().is_empty());
    assert!(
        driven
            .events
            .iter()
            .any(|(_, e)| *e == BearerEvent::Signal { level: 3 })
    );
}

#[test]
fn an_iridium_session_takes_the_simulators_session_time_and_the_driver_waits_for_it() {
    let dir = common::scratch("sbd-session-time");
    let (_sim, link) = common::start_sim(
        "iridium",
        "iridium simulator",
        &dir,
        "modem",
        &["--session-ms", "1500"],
    );
    let mut driven = Driven::with(&link, quick_sbd());
    driven.run_until(Duration::from_secs(10), |e| {
        e.iter().any(|(_, e)| matches!(e, BearerEvent::Up { .. }))
    });
    let asked = Instant::now();
    driven
        .driver
        .enqueue(message(1, "gateway", Body::Bytes(b"hello".to_vec())), asked)
        .expect("fits");
    driven.run_until(Duration::from_secs(10), |e| {
        e.iter().any(|(_, e)| matches!(e, BearerEvent::Sent { .. }))
    });
    let sent = sent_at(&driven.events, 1).expect("sent");
    assert!(
        sent - asked >= Duration::from_millis(1500),
        "{:?}",
        sent - asked
    );
    assert_eq!(driven.driver.counters().timeouts, 0);

    // In the modem's log: the session's result 1.5 s after AT+SBDIX, not sooner.
    let log = std::fs::read_to_string(dir.join("modem.jsonl")).expect("the modem's log");
    let entries: Vec<serde_json::Value> = log
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let time_of = |wanted: &dyn Fn(&serde_json::Value) -> bool| {
        entries
            .iter()
            .find(|e| wanted(e))
            .and_then(|e| e["t_ms"].as_u64())
            .expect("in the log")
    };
    let session = time_of(&|e| e["event"] == "in" && e["command"] == "AT+SBDIX");
    let result = time_of(&|e| {
        e["event"] == "out" && e["text"].as_str().is_some_and(|t| t.starts_with("+SBDIX"))
    });
    assert!(result - session >= 1500, "{session} {result}");
}

#[test]
fn an_access_denied_session_fails_the_message_for_good() {
    let dir = common::scratch("sbd-denied");
    let (_sim, link) = common::start_sim(
        "iridium",
        "iridium simulator",
        &dir,
        "modem",
        &["--fail", "15", "--session-ms", "200"],
    );
    let mut driven = Driven::with(&link, quick_sbd());
    driven
        .driver
        .enqueue(
            message(4, "gateway", Body::Bytes(b"report".to_vec())),
            Instant::now(),
        )
        .expect("fits");
    driven.run_until(Duration::from_secs(15), |e| {
        e.iter()
            .any(|(_, e)| matches!(e, BearerEvent::Failed { .. }))
    });
    assert!(driven.events.iter().any(|(_, e)| matches!(
        e,
        BearerEvent::Failed { id: 4, reason } if reason.contains("15")
    )));
}

#[test]
fn a_message_between_two_paired_iridium_modems_arrives_after_a_ring() {
    let dir = common::scratch("sbd-pair");
    let ((_a, a_link), (_b, b_link)) = common::paired(
        "iridium",
        "iridium simulator",
        &dir,
        &["--session-ms", "200"],
        &["--session-ms", "200"],
    );
    let mut a = Driven::with(&a_link, quick_sbd());
    let mut b = Driven::with(&b_link, quick_sbd());
    a.driver
        .enqueue(
            message(
                1,
                "b",
                Body::Bytes("灾情报送: 道路中断".as_bytes().to_vec()),
            ),
            Instant::now(),
        )
        .expect("fits");
    run_pair(&mut a, &mut b, Duration::from_secs(15), |_, b| {
        !received(b).is_empty()
    });
    assert_eq!(
        received(&b.events),
        vec![("Iridium".into(), Body::Text("灾情报送: 道路中断".into()))]
    );
    assert_eq!(b.driver.counters().rings, 1);
}

#[test]
fn the_bench_tools_probe_send_and_listen_through_simulated_terminals() {
    let dir = common::scratch("sat-tools");
    let (_, bench) = common::binaries();
    let ((_a, a_link), (_b, b_link)) = common::paired_beidou(&dir);
    let (_m, modem_link) = common::start_sim(
        "iridium",
        "iridium simulator",
        &dir,
        "modem",
        &["--session-ms", "200"],
    );

    let probe = |link: &Path| {
        let out = Command::new(&bench)
            .arg("probe")
            .arg(link)
            .output()
            .expect("probe");
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let beidou = probe(&a_link);
    assert!(
        beidou.contains("BeiDou RDSS") && beidou.contains("identity: 0166166"),
        "{beidou}"
    );
    assert!(beidou.contains("service interval 1 s"), "{beidou}");
    let iridium = probe(&modem_link);
    assert!(
        iridium.contains("Iridium SBD") && iridium.contains("signal: 3 of 4"),
        "{iridium}"
    );

    let listener = Command::new(&bench)
        .args([
            "listen",
            "--kind",
            "beidou",
            "--count",
            "1",
            "--seconds",
            "20",
            "--port",
        ])
        .arg(&b_link)
        .stdout(Stdio::piped())
        .spawn()
        .expect("listen");
    std::thread::sleep(Duration::from_millis(500));
    let sent = Command::new(&bench)
        .args([
            "send",
            "--kind",
            "beidou",
            "--to",
            "0247718",
            "--text",
            "测试：桥梁冲毁",
            "--wait-s",
            "15",
            "--port",
        ])
        .arg(&a_link)
        .output()
        .expect("send");
    assert!(sent.status.success(), "{sent:?}");
    let heard = listener.wait_with_output().expect("listen ends");
    let heard = String::from_utf8_lossy(&heard.stdout);
    assert!(heard.contains("from 0166166: 测试：桥梁冲毁"), "{heard}");
}

#[test]
fn a_terminal_unplugged_mid_send_loses_nothing_once_it_is_back() {
    let dir = common::scratch("sat-unplug");
    let (mut sim, link) = simulator(&dir, "terminal", &["--interval-s", "1"]);
    let timing = TerminalTiming {
        probe_every: Duration::from_millis(500),
        feedback_timeout: Duration::from_secs(1),
    };
    let mut driven = Driven::with(
        &link,
        BeidouTerminal::new(BeidouDialect::V21, timing, Instant::now()),
    );
    driven.run_until(Duration::from_secs(10), |e| {
        e.iter().any(|(_, e)| matches!(e, BearerEvent::Up { .. }))
    });
    driven
        .driver
        .enqueue(
            message(1, "0166166", Body::Text("不要丢失".into())),
            Instant::now(),
        )
        .expect("fits");
    // The driver sends; the terminal is pulled at that instant and the bytes never reach
    // it, so no feedback comes.
    driven.driver.poll(Instant::now());
    let out = driven.driver.take_output();
    assert!(
        out.windows(6).any(|w| w == b"$CCTXA"),
        "{}",
        String::from_utf8_lossy(&out)
    );
    sim.signal(nix::sys::signal::Signal::SIGKILL);
    let _ = sim.wait(Duration::from_secs(5));
    drop(driven.port);

    // Plugged back in (a new terminal process on the same link): the same driver goes on.
    let (_sim, link) = simulator(&dir, "terminal", &["--interval-s", "1"]);
    let port = serialport::new(link.to_string_lossy(), 19200)
        .timeout(Duration::from_millis(10))
        .open()
        .expect("reopened");
    let mut driven = Driven {
        port,
        driver: driven.driver,
        events: driven.events,
    };
    assert_eq!(
        driven.driver.queued().len(),
        1,
        "still waiting for its feedback"
    );
    driven.run_until(Duration::from_secs(15), |e| !received(e).is_empty());
    assert_eq!(
        received(&driven.events),
        vec![("0166166".into(), Body::Text("不要丢失".into()))]
    );
    assert!(driven.driver.counters().feedback_timeouts >= 1);
    assert!(driven.driver.queued().is_empty());
}

/// Runs `a` and `b` in turn until `done` holds for their events, or `limit`.
fn run_pair<A: Bearer, B: Bearer>(
    a: &mut Driven<A>,
    b: &mut Driven<B>,
    limit: Duration,
    done: impl Fn(&[(Instant, BearerEvent)], &[(Instant, BearerEvent)]) -> bool,
) {
    let end = Instant::now() + limit;
    while Instant::now() < end && !done(&a.events, &b.events) {
        a.run_until(Duration::from_millis(50), |_| false);
        b.run_until(Duration::from_millis(50), |_| false);
    }
}

#[test]
fn a_bds3_module_and_a_4_0_terminal_are_found_by_probing_and_carry_long_chinese_text_and_bytes() {
    let dir = common::scratch("sat-dialects");
    let ((_a, a_link), (_b, b_link)) = common::paired(
        "beidou",
        "beidou simulator",
        &dir,
        &[
            "--dialect",
            "bds3",
            "--card",
            "15950044",
            "--interval-s",
            "1",
        ],
        &["--dialect", "4.0", "--card", "0247718", "--interval-s", "1"],
    );
    let mut a = Driven::beidou(&a_link, BeidouDialect::Auto);
    let mut b = Driven::beidou(&b_link, BeidouDialect::Auto);
    let up =
        |e: &[(Instant, BearerEvent)]| e.iter().any(|(_, e)| matches!(e, BearerEvent::Up { .. }));
    run_pair(&mut a, &mut b, Duration::from_secs(10), |a, b| {
        up(a) && up(b)
    });
    assert_eq!(a.driver.dialect(), Some(BeidouDialect::Bds3));
    assert_eq!(b.driver.dialect(), Some(BeidouDialect::Bd1));
    assert_eq!(a.driver.card().map(|c| c.id.as_str()), Some("15950044"));
    assert_eq!(b.driver.card().map(|c| c.id.as_str()), Some("247718"));

    // 60 characters: more than the 44 a comm level 3 message holds, so two parts.
    let long =
        "山洪预警：沿河村民请立即转移到高处，带上老人和孩子，不要返回取物，等待通知。".repeat(2);
    a.driver
        .enqueue(
            message(1, "247718", Body::Text(long.clone())),
            Instant::now(),
        )
        .expect("queued");
    b.driver
        .enqueue(
            message(2, "15950044", Body::Bytes(vec![0x00, 0x2A, 0xA4, 0xFF])),
            Instant::now(),
        )
        .expect("queued");
    run_pair(&mut a, &mut b, Duration::from_secs(20), |a, b| {
        received(b).len() >= 2 && !received(a).is_empty()
    });
    let parts = received(&b.events);
    assert_eq!(parts.len(), 2, "{parts:?}");
    let mut text = String::new();
    for (k, (from, body)) in parts.iter().enumerate() {
        assert_eq!(from, "15950044");
        let Body::Text(part) = body else {
            panic!("text, not {body:?}")
        };
        let (lead, rest) = part.split_once(' ').expect("a lead");
        assert_eq!(lead, format!("{}/2", k + 1));
        text.push_str(rest);
    }
    assert_eq!(text, long);
    assert!(
        sent_at(&a.events, 1).is_some(),
        "sent once its last part is"
    );
    assert_eq!(
        received(&a.events),
        vec![("0247718".into(), Body::Bytes(vec![0x00, 0x2A, 0xA4, 0xFF]))]
    );
}

#[test]
fn the_probe_tool_names_each_beidou_dialect_and_an_sms_modem() {
    let dir = common::scratch("sat-probe-dialects");
    let (_, bench) = common::binaries();
    for (dialect, card, named) in [
        ("bds3", "15950044", "BDS-3 sentences"),
        ("4.0", "0247718", "4.0 frames"),
    ] {
        let (_sim, link) = simulator(&dir, dialect, &["--dialect", dialect, "--card", card]);
        let out = Command::new(&bench)
            .arg("probe")
            .arg(&link)
            .output()
            .expect("probe");
        let shown = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{out:?}");
        assert!(shown.contains(named), "{shown}");
        assert!(shown.contains("service interval 60 s"), "{shown}");
    }
    let (_sim, link) = common::start_sim(
        "sms",
        "sms simulator",
        &dir,
        "sms",
        &["--send-ms", "200", "--delivery-ms", "200"],
    );
    let out = Command::new(&bench)
        .arg("probe")
        .arg(&link)
        .output()
        .expect("probe");
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(
        shown.contains("SMS modem") && shown.contains("Tiantong") && shown.contains("+CREG: 0,1"),
        "{shown}"
    );
}

#[test]
fn a_long_chinese_sms_crosses_between_paired_modems_after_a_failed_send_is_tried_again() {
    use drivers::satellite::sms::modem::{SmsModem, SmsTiming};
    let dir = common::scratch("sat-sms");
    let ((_a, a_link), (_b, b_link)) = common::paired(
        "sms",
        "sms simulator",
        &dir,
        &[
            "--number",
            "8617400010001",
            "--fail-sends",
            "1",
            "--send-ms",
            "200",
            "--delivery-ms",
            "200",
        ],
        &[
            "--number",
            "8617400010002",
            "--send-ms",
            "200",
            "--delivery-ms",
            "200",
        ],
    );
    let timing = SmsTiming {
        first_backoff: Duration::from_millis(500),
        ..SmsTiming::default()
    };
    let mut a = Driven::with(&a_link, SmsModem::new(timing, Instant::now()));
    let mut b = Driven::with(&b_link, SmsModem::new(timing, Instant::now()));
    // 100 characters with one outside the BMP: two parts, the pair not split.
    let text = format!(
        "{}𠀋{}",
        "地震预警：请立即到空旷地带避险。".repeat(5),
        "村".repeat(14)
    );
    a.driver
        .enqueue(
            message(1, "+8617400010002", Body::Text(text.clone())),
            Instant::now(),
        )
        .expect("queued");
    run_pair(&mut a, &mut b, Duration::from_secs(20), |_, b| {
        !received(b).is_empty()
    });
    assert_eq!(
        received(&b.events),
        vec![("8617400010001".into(), Body::Text(text))]
    );
    assert!(sent_at(&a.events, 1).is_some());
    let log = std::fs::read_to_string(dir.join("a.jsonl")).expect("a's log");
    assert_eq!(
        log.matches("\"submit\"").count(),
        3,
        "one failed, two parts"
    );
}

#[test]
fn an_sms_asking_for_status_reports_is_said_delivered_once_the_recipient_has_every_part() {
    use drivers::satellite::sms::modem::{SmsModem, SmsTiming};
    let dir = common::scratch("sat-sms-delivered");
    let quick = ["--send-ms", "200", "--delivery-ms", "300"];
    let ((_a, a_link), (_b, b_link)) = common::paired(
        "sms",
        "sms simulator",
        &dir,
        &[&["--number", "8617400010001"][..], &quick].concat(),
        &[&["--number", "8617400010002"][..], &quick].concat(),
    );
    let timing = SmsTiming::default();
    let mut a = Driven::with(
        &a_link,
        SmsModem::new(timing, Instant::now()).with_status_reports(true),
    );
    let mut b = Driven::with(&b_link, SmsModem::new(timing, Instant::now()));
    let text = "山洪预警：沿河群众立即转移。".repeat(6);
    a.driver
        .enqueue(
            message(1, "+8617400010002", Body::Text(text.clone())),
            Instant::now(),
        )
        .expect("queued");
    run_pair(&mut a, &mut b, Duration::from_secs(20), |a, b| {
        !received(b).is_empty()
            && a.iter()
                .any(|(_, e)| *e == BearerEvent::Delivered { id: 1 })
    });
    assert_eq!(
        received(&b.events),
        vec![("8617400010001".into(), Body::Text(text))]
    );
    let delivered = a
        .events
        .iter()
        .find_map(|(at, e)| (*e == BearerEvent::Delivered { id: 1 }).then_some(*at))
        .expect("delivered");
    assert!(delivered >= sent_at(&a.events, 1).expect("sent"));

    // Both parts asked for a report (TP-SRR), and both reports came as +CDS.
    let log = std::fs::read_to_string(dir.join("a.jsonl")).expect("a's log");
    assert_eq!(log.matches("\"pdu\":\"0071").count(), 2, "{log}");
    assert_eq!(log.matches("+CDS: ").count(), 2);
    assert_eq!(a.driver.counters().undelivered, 0);
}

#[test]
fn status_reports_of_a_permanent_error_are_counted_and_the_sms_is_never_said_delivered() {
    use drivers::satellite::sms::modem::{SmsModem, SmsTiming};
    let dir = common::scratch("sat-sms-undelivered");
    // The centre reports status 0x41, incompatible destination: a permanent error.
    let (_sim, link) = common::start_sim(
        "sms",
        "sms simulator",
        &dir,
        "sms",
        &[
            "--number",
            "8617400010001",
            "--send-ms",
            "200",
            "--delivery-ms",
            "300",
            "--report-status",
            "65",
        ],
    );
    let mut driven = Driven::with(
        &link,
        SmsModem::new(SmsTiming::default(), Instant::now()).with_status_reports(true),
    );
    driven
        .driver
        .enqueue(
            message(1, "+8613800138000", Body::Text("收到".into())),
            Instant::now(),
        )
        .expect("queued");
    let limit = Duration::from_secs(20);
    let end = Instant::now() + limit;
    while driven.driver.counters().undelivered == 0 && Instant::now() < end {
        driven.run_until(Duration::from_millis(100), |_| false);
    }
    assert_eq!(driven.driver.counters().undelivered, 1);
    assert!(sent_at(&driven.events, 1).is_some());
    assert!(
        !driven
            .events
            .iter()
            .any(|(_, e)| matches!(e, BearerEvent::Delivered { .. }))
    );
}
