//! Alerts from the control API to sound at simulated loudspeakers, with the district
//! as a real process on real sockets: receipts, confirmation, pre-emption, cancel,
//! bad input, and a SIGKILL in the middle.

mod common;

use common::{Speaker, spawn_speaker};

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hw_test::process::{Supervised, await_ready, free_port_pair, watch};
use nix::sys::signal::Signal;
use serde_json::{Value, json};

const OPERATOR: &str = "test-operator-token-0123456789";
const SUPERVISOR: &str = "test-supervisor-token-0123456789";
const VIEWER: &str = "test-viewer-token-0123456789";
const STREET: &str = "test-street-token-0123456789";

/// One district node with its loudspeakers, in a scratch folder.
struct Bench {
    dir: PathBuf,
    config: PathBuf,
    api: u16,
    district: Option<Supervised>,
    speakers: Vec<Speaker>,
}

fn free_tcp_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free TCP port")
}

impl Bench {
    /// `speakers`: (name, codec, area, takes exercises).
    fn new(name: &str, speakers: &[(&str, &str, &str, bool)], extra_alerts: &str) -> Bench {
        Bench::with(name, speakers, extra_alerts, "", free_tcp_port())
    }

    /// As [`Bench::new`], with more `[[downstream]]` tables (a street gateway) and the
    /// control API on port `api`.
    fn with(
        name: &str,
        speakers: &[(&str, &str, &str, bool)],
        extra_alerts: &str,
        extra_downstream: &str,
        api: u16,
    ) -> Bench {
        let dir = common::scratch(&format!("alerts-{name}"));
        let _ = std::fs::remove_dir_all(dir.join("state"));
        std::fs::write(
            dir.join("operators.toml"),
            format!(
                "[[operator]]\nname = \"zhang\"\nrole = \"operator\"\ntoken = \"{OPERATOR}\"\n\n\
                 [[operator]]\nname = \"li\"\nrole = \"supervisor\"\ntoken = \"{SUPERVISOR}\"\n\n\
                 [[operator]]\nname = \"wang\"\nrole = \"viewer\"\ntoken = \"{VIEWER}\"\n\n\
                 [[operator]]\nname = \"street-test\"\nrole = \"node\"\ntoken = \"{STREET}\"\n"
            ),
        )
        .expect("operators file");

        let mut started = Vec::new();
        let mut downstream = extra_downstream.to_string();
        for (speaker, codec, area, exercises) in speakers {
            let (spawned, port) = spawn_speaker(&dir, speaker, codec);
            downstream.push_str(&format!(
                "\n[[downstream]]\nname = \"{speaker}\"\naddress = \"127.0.0.1:{port}\"\ncodec = \"{codec}\"\narea = \"{area}\"\nexercises = {exercises}\n"
            ));
            started.push(spawned);
        }

        let config = dir.join("district.toml");
        std::fs::write(
            &config,
            format!(
                "[node]\nname = \"district-test\"\ntier = \"district\"\narea = \"410503\"\n\n\
                 [rtp]\nrtcp_interval_ms = 500\n\n\
                 [api]\nlisten = \"127.0.0.1:{api}\"\noperators = \"operators.toml\"\n\n\
                 [alerts]\nstate_dir = \"state\"\nattention = \"none\"\ngap_ms = 200\nrepeat = 1\n{extra_alerts}\n{downstream}"
            ),
        )
        .expect("config");
        let mut bench = Bench {
            dir,
            config,
            api,
            district: None,
            speakers: started,
        };
        bench.start_district();
        bench
    }

    fn start_district(&mut self) {
        let (emcomm, _) = common::binaries();
        // No sound card: a live broadcast from the default capture device reads the
        // file-backed ALSA device of tests/asound-file-null.conf.
        let asound = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/asound-file-null.conf");
        let mut child = Command::new(emcomm)
            .args(["run", "--config"])
            .arg(&self.config)
            .env("EMCOMM_LOG", "info")
            .env(
                "ALSA_CONFIG_PATH",
                format!("/usr/share/alsa/alsa.conf:{}", asound.display()),
            )
            .env("ALSA_IN_FILE", self.dir.join("microphone.raw"))
            .env("ALSA_OUT_FILE", self.dir.join("alsa-out.wav"))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("district starts");
        let n = std::fs::read_dir(&self.dir).map(|d| d.count()).unwrap_or(0);
        let ready = watch(
            child.stderr.take().expect("stderr"),
            self.dir.join(format!("district-{n}.log")),
            "control API listening",
        );
        self.district = Some(Supervised::new("district", child));
        await_ready("district", &ready, Duration::from_secs(30)).expect("district ready");
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.api)
    }

    /// One request; the status and the JSON body.
    fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        content_type: &str,
        body: &[u8],
    ) -> (u16, Value) {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let url = self.url(path);
        let auth = token.map(|t| format!("Bearer {t}"));
        let response = match method {
            "GET" => {
                let mut request = agent.get(&url);
                if let Some(a) = &auth {
                    request = request.header("Authorization", a);
                }
                request.call()
            }
            _ => {
                let mut request = agent.post(&url);
                if let Some(a) = &auth {
                    request = request.header("Authorization", a);
                }
                if !content_type.is_empty() {
                    request = request.header("Content-Type", content_type);
                }
                request.send(body)
            }
        };
        let mut response = response.expect("the node answers");
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().expect("body");
        let body =
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("{status}: not JSON: {text}"));
        (status, body)
    }

    fn send(&self, token: &str, form: Value) -> (u16, Value) {
        self.call(
            "POST",
            "/v1/alerts",
            Some(token),
            "application/json",
            form.to_string().as_bytes(),
        )
    }

    fn alert(&self, id: i64) -> Value {
        let (status, body) = self.call("GET", &format!("/v1/alerts/{id}"), Some(VIEWER), "", b"");
        assert_eq!(status, 200, "{body}");
        body
    }

    /// Polls until `done` holds of the alert, or fails after `limit`.
    fn wait_alert(&self, id: i64, limit: Duration, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + limit;
        loop {
            let alert = self.alert(id);
            if done(&alert) {
                return alert;
            }
            assert!(
                Instant::now() < deadline,
                "alert {id} never got there: {alert:#}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Polls the status until destination `name` plays `alert` (or nothing, for None).
    fn wait_playing(&self, name: &str, alert: Option<i64>, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            let (_, status) = self.call("GET", "/v1/status", Some(VIEWER), "", b"");
            let playing = status["destinations"]
                .as_array()
                .expect("destinations")
                .iter()
                .find(|d| d["name"] == name)
                .map(|d| d["playing"].as_i64())
                .expect("destination listed");
            if playing == alert {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{name} plays {playing:?}, not {alert:?}: {status:#}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn kill_district(&mut self) {
        if let Some(district) = self.district.take() {
            district.signal(Signal::SIGKILL);
            drop(district);
        }
    }

    fn streams_started(&self, speaker: &str) -> usize {
        let log = &self
            .speakers
            .iter()
            .find(|s| s.name == speaker)
            .expect("speaker")
            .log;
        std::fs::read_to_string(log)
            .unwrap_or_default()
            .matches("stream started")
            .count()
    }
}

impl Drop for Bench {
    fn drop(&mut self) {
        if let Some(district) = &self.district {
            district.signal(Signal::SIGTERM);
        }
    }
}

fn id_of(body: &Value) -> i64 {
    body["id"]
        .as_i64()
        .unwrap_or_else(|| panic!("no id in {body:#}"))
}

fn receipt<'a>(alert: &'a Value, speaker: &str) -> &'a Value {
    alert["receipts"]
        .as_array()
        .expect("receipts")
        .iter()
        .find(|r| r["loudspeaker"] == speaker)
        .unwrap_or_else(|| panic!("no receipt of {speaker}: {alert:#}"))
}

fn heard(wav: &Path) -> (f64, f32) {
    let audio = codecs::read_audio(wav).expect("the loudspeaker recorded");
    let level = codecs::level::Level::of_f32(&audio.samples);
    (audio.duration().as_secs_f64(), level.rms_dbfs)
}

#[test]
fn an_alert_from_the_api_is_spoken_at_every_target_and_each_loudspeaker_confirms_it() {
    let bench = Bench::new(
        "spoken",
        &[
            ("pole-opus", "opus", "410503001001", false),
            ("pole-pcmu", "pcmu", "410503001002", false),
        ],
        "",
    );
    let (status, body) = bench.send(
        OPERATOR,
        json!({"text": "北关区今天下午有大雨，请注意安全。", "level": "blue", "areas": ["410503001"], "repeat": 2}),
    );
    assert_eq!(status, 201, "{body:#}");
    assert_eq!(body["state"], "accepted");
    let id = id_of(&body);

    let done = bench.wait_alert(id, Duration::from_secs(60), |a| {
        a["state"] == "done" && a["summary"]["played"] == 2
    });
    assert_eq!(done["plays_started"], 2);
    assert_eq!(done["summary"]["text"], "2 of 2 loudspeakers played");
    for speaker in &bench.speakers {
        assert_eq!(receipt(&done, &speaker.name)["state"], "played");
        assert_eq!(
            bench.streams_started(&speaker.name),
            2,
            "two plays, two streams"
        );
        let (seconds, rms) = heard(&speaker.wav);
        assert!(seconds > 2.0, "{}: only {seconds:.1} s heard", speaker.name);
        assert!(
            rms > -40.0,
            "{}: speech too quiet or silent ({rms:.1} dBFS)",
            speaker.name
        );
    }
}

#[test]
fn a_red_alert_waits_for_a_supervisor_then_preempts_yellow_where_they_overlap_and_a_cancel_lets_yellow_resume()
 {
    let bench = Bench::new(
        "preempt",
        &[
            ("pole-001", "opus", "410503001001", false),
            ("pole-002", "opus", "410503002001", false),
        ],
        "",
    );
    let long = "这是一条较长的黄色预警测试信息，用于检验高级别预警能否抢占低级别预警的播放，请大家注意收听并做好准备。";
    let (status, yellow) = bench.send(
        OPERATOR,
        json!({"text": long, "level": "yellow", "areas": ["410503"], "repeat": 5}),
    );
    assert_eq!(status, 201, "{yellow:#}");
    let yellow = id_of(&yellow);
    bench.wait_playing("pole-001", Some(yellow), Duration::from_secs(30));

    let (status, red) = bench.send(OPERATOR, json!({"text": "红色预警，请立即转移。", "level": "red", "areas": ["410503001"], "repeat": 20}));
    assert_eq!(status, 201, "{red:#}");
    assert_eq!(red["state"], "awaiting_confirmation");
    let red = id_of(&red);
    std::thread::sleep(Duration::from_millis(500));
    bench.wait_playing("pole-001", Some(yellow), Duration::from_secs(1));

    let (status, body) = bench.call(
        "POST",
        &format!("/v1/alerts/{red}/confirm"),
        Some(OPERATOR),
        "",
        b"",
    );
    assert_eq!(
        (status, body["error"].as_str()),
        (403, Some("forbidden")),
        "{body:#}"
    );
    let (status, body) = bench.call(
        "POST",
        &format!("/v1/alerts/{red}/confirm"),
        Some(SUPERVISOR),
        "",
        b"",
    );
    assert_eq!(status, 200, "{body:#}");
    assert_eq!(body["confirmed_by"], "li");

    bench.wait_playing("pole-001", Some(red), Duration::from_secs(30));
    bench.wait_playing("pole-002", Some(yellow), Duration::from_secs(1));

    let (status, body) = bench.call(
        "POST",
        &format!("/v1/alerts/{red}/cancel"),
        Some(OPERATOR),
        "application/json",
        br#"{"reason": "false alarm, drill only"}"#,
    );
    assert_eq!(status, 200, "{body:#}");
    assert_eq!(body["state"], "cancelled");
    bench.wait_playing("pole-001", Some(yellow), Duration::from_secs(10));

    let (_, audit) = bench.call("GET", "/v1/audit", Some(VIEWER), "", b"");
    let lines: Vec<(String, String)> = audit
        .as_array()
        .expect("audit")
        .iter()
        .filter(|e| e["alert_id"] == red)
        .map(|e| {
            (
                e["operator"].as_str().unwrap_or("").into(),
                e["action"].as_str().unwrap_or("").into(),
            )
        })
        .collect();
    let expected: Vec<(String, String)> = [
        ("zhang", "submitted"),
        ("li", "confirmed"),
        ("zhang", "cancelled"),
    ]
    .iter()
    .map(|(o, a)| (o.to_string(), a.to_string()))
    .collect();
    assert_eq!(lines, expected);
    let cancelled = audit
        .as_array()
        .expect("audit")
        .iter()
        .find(|e| e["action"] == "cancelled")
        .expect("line");
    assert_eq!(cancelled["detail"], "false alarm, drill only");
}

#[test]
fn the_submitter_cannot_be_the_second_operator() {
    let bench = Bench::new("self-confirm", &[("pole", "pcmu", "410503", false)], "");
    let (status, red) = bench.send(
        SUPERVISOR,
        json!({"text": "演练", "level": "orange", "areas": ["410503"]}),
    );
    assert_eq!(status, 201);
    let id = id_of(&red);
    let (status, body) = bench.call(
        "POST",
        &format!("/v1/alerts/{id}/confirm"),
        Some(SUPERVISOR),
        "",
        b"",
    );
    assert_eq!(status, 409, "{body:#}");
    assert!(
        body["message"]
            .as_str()
            .unwrap_or("")
            .contains("second operator")
    );
    assert_eq!(bench.alert(id)["state"], "awaiting_confirmation");
}

#[test]
fn an_exercise_plays_only_where_exercises_are_taken_and_says_so() {
    let bench = Bench::new(
        "exercise",
        &[
            ("takes", "opus", "410503001001", true),
            ("refuses", "opus", "410503001002", false),
        ],
        "",
    );
    let (status, body) = bench.send(
        OPERATOR,
        json!({"text": "这是一次演练。", "level": "red", "areas": ["410503001"], "purpose": "exercise"}),
    );
    assert_eq!(status, 201, "{body:#}");
    assert_eq!(
        body["state"], "accepted",
        "an exercise needs no second operator"
    );
    assert_eq!(body["purpose"], "exercise");
    assert_eq!(body["targets"], json!(["takes"]));
    let done = bench.wait_alert(id_of(&body), Duration::from_secs(60), |a| {
        a["summary"]["played"] == 1
    });
    assert_eq!(receipt(&done, "refuses")["state"], "skipped");
    assert_eq!(bench.streams_started("refuses"), 0);
}

#[test]
fn a_dry_run_says_what_would_play_where_and_plays_nothing() {
    let bench = Bench::new("dry-run", &[("pole", "opus", "410503001001", false)], "");
    let (status, preview) = bench.call(
        "POST",
        "/v1/alerts?dry_run=true",
        Some(OPERATOR),
        "application/json",
        json!({"text": "明天上午8点到10点停水。", "level": "yellow", "areas": ["410503001"], "repeat": 3, "attention": "chime"})
            .to_string()
            .as_bytes(),
    );
    assert_eq!(status, 200, "{preview:#}");
    assert_eq!(preview["dry_run"], true);
    assert_eq!(preview["targets"], json!(["pole"]));
    assert_eq!(preview["voice"], "cmn-latn-pinyin");
    assert!(
        preview["spoken"]
            .as_str()
            .unwrap_or("")
            .contains("ba1 dian3"),
        "{preview:#}"
    );
    let play = preview["play_seconds"].as_f64().expect("seconds");
    assert!(play > 4.0, "chime 2 s + pause + speech: {play}");
    assert!((preview["total_seconds"].as_f64().expect("total") - (3.0 * play + 0.4)).abs() < 0.01);

    std::thread::sleep(Duration::from_secs(1));
    let (_, all) = bench.call("GET", "/v1/alerts?all=true", Some(VIEWER), "", b"");
    assert_eq!(all, json!([]), "nothing stored");
    assert_eq!(bench.streams_started("pole"), 0, "nothing played");
}

#[test]
fn bad_input_gets_a_json_error_naming_the_fault_and_nothing_is_stored() {
    let bench = Bench::new("bad-input", &[("pole", "opus", "410503", false)], "");
    let cap = |sent: &str| {
        format!(
            r#"<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"><identifier>X</identifier><sender>a@b</sender><sent>{sent}</sent><status>Actual</status><msgType>Alert</msgType><scope>Public</scope><info><category>Met</category><event>Storm</event><urgency>Immediate</urgency><severity>Severe</severity><certainty>Observed</certainty><area><areaDesc>A</areaDesc></area></info></alert>"#
        )
    };
    // (what, token, content type, body, status, error kind)
    type Case<'a> = (&'a str, Option<&'a str>, &'a str, Vec<u8>, u16, &'a str);
    let cases: Vec<Case> = vec![
        (
            "no token",
            None,
            "application/json",
            b"{}".to_vec(),
            401,
            "unauthorised",
        ),
        (
            "wrong token",
            Some("not-a-token-at-all-xxxxxxxx"),
            "application/json",
            b"{}".to_vec(),
            401,
            "unauthorised",
        ),
        (
            "viewer sends",
            Some(VIEWER),
            "application/json",
            b"{}".to_vec(),
            403,
            "forbidden",
        ),
        (
            "no content type",
            Some(OPERATOR),
            "",
            b"{}".to_vec(),
            415,
            "unsupported_media_type",
        ),
        (
            "plain text",
            Some(OPERATOR),
            "text/plain",
            b"hello".to_vec(),
            415,
            "unsupported_media_type",
        ),
        (
            "too large",
            Some(OPERATOR),
            "application/cap+xml",
            vec![b' '; 9 * 1024 * 1024],
            413,
            "too_large",
        ),
        (
            "malformed XML",
            Some(OPERATOR),
            "application/cap+xml",
            b"<alert><identifier>".to_vec(),
            400,
            "bad_request",
        ),
        (
            "not UTF-8",
            Some(OPERATOR),
            "application/cap+xml",
            b"<alert>\xff\xfe</alert>".to_vec(),
            400,
            "bad_request",
        ),
        (
            "DOCTYPE",
            Some(OPERATOR),
            "application/cap+xml",
            br#"<!DOCTYPE a [<!ENTITY x SYSTEM "file:///etc/passwd">]><alert/>"#.to_vec(),
            400,
            "bad_request",
        ),
        (
            "time without offset",
            Some(OPERATOR),
            "application/cap+xml",
            cap("2026-07-21T06:30:00").into_bytes(),
            422,
            "invalid_cap",
        ),
        (
            "no GB/T 2260 area",
            Some(OPERATOR),
            "application/cap+xml",
            cap("2026-07-21T06:30:00+08:00").into_bytes(),
            422,
            "refused",
        ),
        (
            "unknown level",
            Some(OPERATOR),
            "application/json",
            br#"{"text":"x","level":"purple","areas":["410503"]}"#.to_vec(),
            422,
            "refused",
        ),
        (
            "unknown area",
            Some(OPERATOR),
            "application/json",
            br#"{"text":"x","level":"red","areas":["110101"]}"#.to_vec(),
            422,
            "refused",
        ),
        (
            "bad area code",
            Some(OPERATOR),
            "application/json",
            br#"{"text":"x","level":"red","areas":["4105"]}"#.to_vec(),
            422,
            "refused",
        ),
        (
            "unknown field",
            Some(OPERATOR),
            "application/json",
            br#"{"text":"x","level":"red","areas":["410503"],"colour":1}"#.to_vec(),
            400,
            "bad_request",
        ),
        (
            "JSON syntax",
            Some(OPERATOR),
            "application/json",
            b"{\"text\":".to_vec(),
            400,
            "bad_request",
        ),
    ];
    for (what, token, content_type, body, status, kind) in cases {
        let (got, answer) = bench.call("POST", "/v1/alerts", token, content_type, &body);
        assert_eq!(
            (got, answer["error"].as_str()),
            (status, Some(kind)),
            "{what}: {answer:#}"
        );
        assert!(
            !answer["message"].as_str().unwrap_or("").is_empty(),
            "{what}: no message"
        );
    }
    let (_, invalid) = bench.call(
        "POST",
        "/v1/alerts",
        Some(OPERATOR),
        "application/cap+xml",
        cap("2026-07-21T06:30:00").as_bytes(),
    );
    assert_eq!(invalid["faults"][0]["path"], "alert/sent");

    let (status, body) = bench.call("GET", "/v1/alerts/1/confirm", Some(VIEWER), "", b"");
    assert_eq!(
        (status, body["error"].as_str()),
        (405, Some("method_not_allowed"))
    );
    let (status, body) = bench.call("GET", "/v1/alerts/abc", Some(VIEWER), "", b"");
    assert_eq!((status, body["error"].as_str()), (400, Some("bad_request")));
    let (status, _) = bench.call("GET", "/v1/alerts/999", Some(VIEWER), "", b"");
    assert_eq!(status, 404);

    let (_, all) = bench.call("GET", "/v1/alerts?all=true", Some(VIEWER), "", b"");
    assert_eq!(all, json!([]), "nothing stored");
    assert_eq!(bench.streams_started("pole"), 0, "nothing played");
}

#[test]
fn sigkill_loses_no_accepted_alert_and_replays_no_play() {
    let mut bench = Bench::new("sigkill", &[("pole", "opus", "410503", false)], "");

    // Twenty alerts acknowledged, queued behind one of three plays.
    let (status, body) = bench.send(
        OPERATOR,
        json!({"text": "第一条测试预警，请注意。", "level": "yellow", "areas": ["410503"], "repeat": 3}),
    );
    assert_eq!(status, 201);
    let three = id_of(&body);
    let mut acknowledged = Vec::new();
    for i in 0..20 {
        let (status, body) = bench.send(
            OPERATOR,
            json!({"text": format!("第{i}条"), "level": "blue", "areas": ["410503"], "repeat": 1, "valid_minutes": 30}),
        );
        assert_eq!(status, 201);
        acknowledged.push(id_of(&body));
    }
    // Killed as soon as the second play has begun.
    bench.wait_alert(three, Duration::from_secs(60), |a| a["plays_started"] == 2);
    bench.kill_district();
    bench.start_district();

    let done = bench.wait_alert(three, Duration::from_secs(120), |a| a["state"] == "done");
    assert_eq!(done["plays_started"], 3, "the play cut by the kill counts");
    for id in &acknowledged {
        bench.wait_alert(*id, Duration::from_secs(120), |a| a["state"] == "done");
    }
    // Every play started is one stream at the loudspeaker: three of the first alert
    // (the second cut short by the kill), one of each other. A replayed play would
    // make one more.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(bench.streams_started("pole"), 3 + 20);
}

#[test]
fn an_alert_that_expires_while_the_node_is_down_never_plays() {
    let mut bench = Bench::new("expiry", &[("pole", "opus", "410503", false)], "");
    let now = chrono::Utc::now();
    let cap = format!(
        r#"<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"><identifier>EXPIRING-1</identifier><sender>test@example.cn</sender><sent>{sent}</sent><status>Actual</status><msgType>Alert</msgType><scope>Public</scope><info><category>Met</category><event>Storm</event><urgency>Immediate</urgency><severity>Moderate</severity><certainty>Observed</certainty><effective>{effective}</effective><expires>{expires}</expires><headline>EXPIRED</headline><area><areaDesc>A</areaDesc><geocode><valueName>GB/T 2260</valueName><value>410503</value></geocode></area></info></alert>"#,
        sent = now.format("%Y-%m-%dT%H:%M:%S+00:00"),
        effective = (now + chrono::Duration::seconds(3)).format("%Y-%m-%dT%H:%M:%S+00:00"),
        expires = (now + chrono::Duration::seconds(5)).format("%Y-%m-%dT%H:%M:%S+00:00"),
    );
    let (status, body) = bench.call(
        "POST",
        "/v1/alerts",
        Some(OPERATOR),
        "application/cap+xml",
        cap.as_bytes(),
    );
    assert_eq!(status, 201, "{body:#}");
    assert_eq!(body["state"], "accepted", "not yet effective");
    let id = id_of(&body);
    bench.kill_district();
    std::thread::sleep(Duration::from_secs(6));
    bench.start_district();

    let gone = bench.wait_alert(id, Duration::from_secs(30), |a| a["state"] == "expired");
    assert_eq!(gone["plays_started"], 0);
    assert_eq!(receipt(&gone, "pole")["state"], "missed");
    assert_eq!(bench.streams_started("pole"), 0);
}

#[test]
fn a_cap_cancel_stops_a_playing_alert_everywhere() {
    let bench = Bench::new(
        "cap-cancel",
        &[
            ("pole-a", "opus", "410503001001", false),
            ("pole-b", "pcmu", "410503002001", false),
        ],
        "",
    );
    let now = chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S+00:00")
        .to_string();
    let alert = format!(
        r#"<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"><identifier>FLOOD-7</identifier><sender>weather@example.cn</sender><sent>{now}</sent><status>Actual</status><msgType>Alert</msgType><scope>Public</scope><info><language>zh-CN</language><category>Met</category><event>洪水</event><urgency>Immediate</urgency><severity>Moderate</severity><certainty>Observed</certainty><headline>洪水黄色预警</headline><instruction>请沿河群众注意防范，远离河道，听从指挥，有序转移到安全地带。</instruction><area><areaDesc>北关区</areaDesc><geocode><valueName>GB/T 2260</valueName><value>410503</value></geocode></area></info></alert>"#
    );
    let (status, body) = bench.call(
        "POST",
        "/v1/alerts",
        Some(OPERATOR),
        "application/cap+xml",
        alert.as_bytes(),
    );
    assert_eq!(status, 201, "{body:#}");
    let id = id_of(&body);
    bench.wait_playing("pole-a", Some(id), Duration::from_secs(30));

    let cancel = format!(
        r#"<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"><identifier>FLOOD-7-CANCEL</identifier><sender>weather@example.cn</sender><sent>{now}</sent><status>Actual</status><msgType>Cancel</msgType><scope>Public</scope><references>weather@example.cn,FLOOD-7,{now}</references></alert>"#
    );
    let (status, body) = bench.call(
        "POST",
        "/v1/alerts",
        Some(OPERATOR),
        "application/cap+xml",
        cancel.as_bytes(),
    );
    assert_eq!(status, 201, "{body:#}");
    bench.wait_playing("pole-a", None, Duration::from_secs(5));
    bench.wait_playing("pole-b", None, Duration::from_secs(5));
    let stopped = bench.alert(id);
    assert_eq!(stopped["state"], "cancelled");
    assert!(
        stopped["state_reason"]
            .as_str()
            .unwrap_or("")
            .contains("CAP Cancel"),
        "{stopped:#}"
    );
}

#[test]
fn the_openapi_document_describes_every_endpoint_and_needs_a_token() {
    let bench = Bench::new("openapi", &[("pole", "opus", "410503", false)], "");
    let (status, _) = bench.call("GET", "/openapi.json", None, "", b"");
    assert_eq!(status, 401);
    let (status, doc) = bench.call("GET", "/openapi.json", Some(VIEWER), "", b"");
    assert_eq!(status, 200);
    for path in [
        "/v1/alerts",
        "/v1/alerts/{id}",
        "/v1/alerts/{id}/confirm",
        "/v1/alerts/{id}/update",
        "/v1/alerts/{id}/cancel",
        "/v1/alerts/{id}/receipts",
        "/v1/audit",
        "/v1/status",
        "/v1/broadcasts",
        "/v1/broadcasts/{id}/stop",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} missing");
    }
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
}

#[test]
fn the_cli_speaks_to_the_node_with_exit_codes_scripts_can_trust() {
    let bench = Bench::new("cli", &[("pole", "opus", "410503001001", false)], "");
    let (emcomm, _) = common::binaries();
    let token = bench.dir.join("token");
    std::fs::write(&token, OPERATOR).expect("token file");
    let node = bench.url("");
    let run = |args: &[&str]| {
        Command::new(&emcomm)
            .args(args)
            .args(["--node", &node, "--token-file"])
            .arg(&token)
            .output()
            .expect("emcomm runs")
    };

    let out = run(&[
        "alert",
        "send",
        "--text",
        "测试",
        "--level",
        "blue",
        "--area",
        "410503001",
        "--dry-run",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let preview: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(preview["dry_run"], true);

    let out = run(&[
        "alert",
        "send",
        "--text",
        "测试",
        "--level",
        "purple",
        "--area",
        "410503001",
    ]);
    assert_eq!(out.status.code(), Some(1), "refused: {out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown level"));

    let out = run(&[
        "alert",
        "send",
        "--text",
        "测试",
        "--level",
        "blue",
        "--area",
        "410503001",
    ]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.starts_with("alert 1  BLUE  actual"), "{stdout}");

    let out = run(&["alert", "status", "1", "--json"]);
    assert_eq!(out.status.code(), Some(0));
    let out = run(&["alert", "list"]);
    assert_eq!(out.status.code(), Some(0));
    let out = run(&["status"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("district-test (district 410503)"));

    let out = run(&["alert", "confirm", "1"]);
    assert_eq!(out.status.code(), Some(1), "an operator cannot confirm");

    let out = Command::new(&emcomm)
        .args([
            "alert",
            "list",
            "--node",
            "http://127.0.0.1:1",
            "--token-file",
        ])
        .arg(&token)
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2), "unreachable node");
    let out = Command::new(&emcomm)
        .args(["alert", "list", "--node", &node])
        .env_remove("EMCOMM_TOKEN")
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2), "no token");
    assert!(String::from_utf8_lossy(&out.stderr).contains("EMCOMM_TOKEN"));
}

#[test]
fn a_street_gateway_reports_which_of_its_loudspeakers_played_to_the_district() {
    let dir = common::scratch("alerts-street");
    let (emcomm, _) = common::binaries();
    let (pole_1, port_1) = spawn_speaker(&dir, "street-pole-1", "opus");
    let (pole_2, port_2) = spawn_speaker(&dir, "street-pole-2", "pcma");
    let street_port = free_port_pair().expect("ports");
    let api = free_tcp_port();
    std::fs::write(dir.join("street-token"), STREET).expect("token");
    let street_config = dir.join("street.toml");
    std::fs::write(
        &street_config,
        format!(
            "[node]\nname = \"street-test\"\ntier = \"street\"\narea = \"410503001\"\n\n\
             [rtp]\nlisten = \"127.0.0.1:{street_port}\"\nrtcp_interval_ms = 500\n\n\
             [upstream]\nallow = [\"127.0.0.1\"]\napi = \"http://127.0.0.1:{api}\"\ntoken_file = \"street-token\"\n\n\
             [[downstream]]\nname = \"street-pole-1\"\naddress = \"127.0.0.1:{port_1}\"\n\n\
             [[downstream]]\nname = \"street-pole-2\"\naddress = \"127.0.0.1:{port_2}\"\ncodec = \"pcma\"\n"
        ),
    )
    .expect("street config");
    let mut child = Command::new(&emcomm)
        .args(["run", "--config"])
        .arg(&street_config)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("street starts");
    let ready = watch(
        child.stderr.take().expect("stderr"),
        dir.join("street.log"),
        "relay node started",
    );
    let _street = Supervised::new("street", child);
    await_ready("street", &ready, Duration::from_secs(20)).expect("street ready");

    let bench = Bench::with(
        "street-district",
        &[],
        "",
        &format!(
            "\n[[downstream]]\nname = \"street-test\"\naddress = \"127.0.0.1:{street_port}\"\nkind = \"gateway\"\narea = \"410503001\"\n"
        ),
        api,
    );
    let (status, body) = bench.send(
        OPERATOR,
        json!({"text": "红旗路街道请注意，河水上涨。", "level": "blue", "areas": ["410503001"], "repeat": 1}),
    );
    assert_eq!(status, 201, "{body:#}");
    assert_eq!(body["summary"]["silent_gateways"], json!(["street-test"]));
    let done = bench.wait_alert(id_of(&body), Duration::from_secs(60), |a| {
        a["summary"]["played"] == 2
    });
    assert_eq!(done["summary"]["text"], "2 of 2 loudspeakers played");
    for pole in ["street-pole-1", "street-pole-2"] {
        let r = receipt(&done, pole);
        assert_eq!(
            (r["state"].as_str(), r["via"].as_str()),
            (Some("played"), Some("street-test")),
            "{r}"
        );
    }
    assert_eq!(done["summary"]["silent_gateways"], json!([]));

    // A node speaks for its own loudspeakers only, and only for alerts sent to it.
    let forged =
        json!([{"loudspeaker": "street-test", "via": "", "state": "played", "detail": "forged"}]);
    let (status, _) = bench.call(
        "POST",
        &format!("/v1/alerts/{}/receipts", id_of(&done)),
        Some(STREET),
        "application/json",
        forged.to_string().as_bytes(),
    );
    assert_eq!(
        status, 400,
        "the district's own destination is judged by the district"
    );
    let (status, _) = bench.call(
        "POST",
        &format!("/v1/alerts/{}/receipts", id_of(&done)),
        Some(OPERATOR),
        "application/json",
        b"[]",
    );
    assert_eq!(status, 403, "an operator is no node");
    drop((pole_1, pole_2));
}

/// Sends `seconds` of a 440 Hz tone as Opus RTP, paced in real time, to `port`: a
/// dispatcher console as GStreamer plays it.
fn console_tone(port: u16, seconds: u32) {
    let status = Command::new("gst-launch-1.0")
        .args(["-q", "audiotestsrc", "is-live=true"])
        .arg(format!("num-buffers={}", seconds * 50))
        .args(["samplesperbuffer=960", "wave=sine", "freq=440"])
        .args([
            "!",
            "audio/x-raw,rate=48000,channels=1",
            "!",
            "audioconvert",
        ])
        .args(["!", "opusenc", "bitrate=32000", "frame-size=20"])
        .args([
            "!",
            "rtpopuspay",
            "pt=111",
            "!",
            "udpsink",
            "host=127.0.0.1",
        ])
        .arg(format!("port={port}"))
        .status()
        .expect("gst-launch-1.0 runs (install gstreamer1.0-tools)");
    assert!(status.success());
}

#[test]
fn a_live_broadcast_from_a_console_reaches_its_area_and_stops_on_command() {
    let bench = Bench::new(
        "broadcast",
        &[
            ("pole-in-area", "opus", "410503001001", false),
            ("pole-elsewhere", "pcmu", "410503002001", false),
        ],
        "",
    );
    let (emcomm, _) = common::binaries();
    let token = bench.dir.join("token");
    std::fs::write(&token, OPERATOR).expect("token file");
    let node = bench.url("");
    let run = |args: &[&str]| {
        Command::new(&emcomm)
            .args(args)
            .args(["--node", &node, "--token-file"])
            .arg(&token)
            .output()
            .expect("emcomm runs")
    };
    let console = free_port_pair().expect("a port for the console");
    let listen = format!("127.0.0.1:{console}");

    let out = run(&[
        "broadcast",
        "start",
        "--area",
        "410503001",
        "--rtp-listen",
        &listen,
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let started: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(started["kind"], "broadcast");
    assert_eq!(started["level"], "routine");
    assert_eq!(started["targets"], json!(["pole-in-area"]));
    let id = id_of(&started);
    bench.wait_playing("pole-in-area", Some(id), Duration::from_secs(10));

    console_tone(console, 3);

    let out = run(&["broadcast", "stop"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let done = bench.wait_alert(id, Duration::from_secs(20), |a| {
        a["state"] == "done" && receipt(a, "pole-in-area")["state"] == "played"
    });
    assert_eq!(done["summary"]["text"], "1 of 1 loudspeakers played");
    bench.wait_playing("pole-in-area", None, Duration::from_secs(10));

    // The loudspeaker heard the console's tone, and only it heard anything.
    let audio = codecs::read_audio(&bench.speakers[0].wav).expect("the loudspeaker recorded");
    let rate = audio.sample_rate as usize;
    assert!(
        audio.samples.len() > 2 * rate,
        "only {:.1} s heard",
        audio.duration().as_secs_f64()
    );
    let middle = &audio.samples[rate / 2..2 * rate];
    let hz = common::pitch(middle, audio.sample_rate);
    assert!((hz - 440.0).abs() < 5.0, "heard {hz:.1} Hz, not 440 Hz");
    assert_eq!(bench.streams_started("pole-elsewhere"), 0);

    let (_, audit) = bench.call("GET", "/v1/audit", Some(VIEWER), "", b"");
    let actions: Vec<(&str, &str)> = audit
        .as_array()
        .expect("audit")
        .iter()
        .filter(|e| e["alert_id"] == id)
        .map(|e| {
            (
                e["operator"].as_str().unwrap_or(""),
                e["action"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert!(actions.contains(&("zhang", "stopped")), "{actions:?}");

    let out = run(&["broadcast", "stop"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("no live broadcast to stop"));
}

#[test]
fn a_red_broadcast_waits_for_a_supervisor_and_a_missing_capture_device_fails_it_with_the_reason() {
    let bench = Bench::new("broadcast-red", &[("pole", "opus", "410503", false)], "");
    let form = json!({"areas": ["410503"], "level": "red", "device": "no-such-capture-device"});
    let (status, body) = bench.call(
        "POST",
        "/v1/broadcasts",
        Some(VIEWER),
        "application/json",
        form.to_string().as_bytes(),
    );
    assert_eq!(status, 403, "a viewer may not broadcast: {body}");
    let both = json!({"areas": ["410503"], "device": "default", "rtp_listen": "127.0.0.1:9"});
    let (status, body) = bench.call(
        "POST",
        "/v1/broadcasts",
        Some(OPERATOR),
        "application/json",
        both.to_string().as_bytes(),
    );
    assert_eq!(status, 400, "two sources: {body}");

    let (status, body) = bench.call(
        "POST",
        "/v1/broadcasts",
        Some(OPERATOR),
        "application/json",
        form.to_string().as_bytes(),
    );
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["state"], "awaiting_confirmation");
    let id = id_of(&body);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        bench.streams_started("pole"),
        0,
        "nothing plays unconfirmed"
    );

    let (status, body) = bench.call(
        "POST",
        &format!("/v1/alerts/{id}/confirm"),
        Some(SUPERVISOR),
        "application/json",
        b"",
    );
    assert_eq!(status, 200, "{body}");
    let failed = bench.wait_alert(id, Duration::from_secs(10), |a| a["state"] == "failed");
    let reason = failed["state_reason"].as_str().unwrap_or("");
    assert!(reason.contains("no-such-capture-device"), "{failed:#}");
    assert_eq!(bench.streams_started("pole"), 0);

    // An alert is cancelled, not stopped as a broadcast.
    let (status, body) = bench.send(
        OPERATOR,
        json!({"text": "测试", "level": "blue", "areas": ["410503"]}),
    );
    assert_eq!(status, 201, "{body}");
    let (status, body) = bench.call(
        "POST",
        &format!("/v1/broadcasts/{}/stop", id_of(&body)),
        Some(OPERATOR),
        "application/json",
        b"",
    );
    assert_eq!(status, 409, "{body}");
}

#[test]
fn a_live_broadcast_from_the_capture_device_plays_until_stopped() {
    let bench = Bench::new(
        "broadcast-mic",
        &[("pole", "opus", "410503001001", false)],
        "",
    );
    // What the command centre's microphone hears: a 600 Hz tone, raw S16_LE at 48 kHz.
    let tone = codecs::tones::sine(600.0, -12.0, Duration::from_secs(4), 48_000);
    let raw: Vec<u8> = tone
        .iter()
        .flat_map(|s| codecs::pcm::f32_to_i16(*s).to_le_bytes())
        .collect();
    std::fs::write(bench.dir.join("microphone.raw"), raw).expect("microphone file");

    let form = json!({"areas": ["410503001"], "level": "blue", "device": "default"});
    let (status, body) = bench.call(
        "POST",
        "/v1/broadcasts",
        Some(OPERATOR),
        "application/json",
        form.to_string().as_bytes(),
    );
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["level"], "blue");
    let id = id_of(&body);
    bench.wait_playing("pole", Some(id), Duration::from_secs(10));
    let deadline = Instant::now() + Duration::from_secs(10);
    while bench.streams_started("pole") == 0 {
        assert!(Instant::now() < deadline, "the loudspeaker never heard it");
        std::thread::sleep(Duration::from_millis(50));
    }

    let (status, body) = bench.call(
        "POST",
        &format!("/v1/broadcasts/{id}/stop"),
        Some(OPERATOR),
        "application/json",
        b"",
    );
    assert_eq!(status, 200, "{body}");
    let done = bench.wait_alert(id, Duration::from_secs(20), |a| {
        a["state"] == "done" && receipt(a, "pole")["state"] != "pending"
    });
    assert_eq!(receipt(&done, "pole")["state"], "played", "{done:#}");
    bench.wait_playing("pole", None, Duration::from_secs(10));
}
