//! The alert benchmark: a district with 1000 configured loudspeakers, driven through
//! its control API, measured at the loudspeakers' sockets.
//!
//! * **accept to first packet**: from sending an alert (CAP carrying recorded speech,
//!   so no speech synthesis is in the path) to its first RTP packet at a loudspeaker;
//! * **pre-empt**: from sending a red alert while a blue one plays to the red one's
//!   first packet at the loudspeaker;
//! * **cancel**: from sending a cancel to the RTCP BYE at the loudspeaker;
//! * **durable accepts per second**: clients sending orange Actual alerts as fast as
//!   they are acknowledged (they wait for confirmation, so none is played or
//!   synthesised: the figure is intake plus the durable commit);
//! * **speech synthesis** of a typical Mandarin alert, timed on its own.
//!
//! Every loudspeaker is a bound socket on 127.0.0.1; the first one is read (RTP and
//! RTCP) and timed, the others are never read, so the kernel drops what queues there.
//! Sender and probe share this process's clock.

use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde::Serialize;
use serde_json::{Value, json};

use crate::process::{Supervised, await_ready, watch};

const OPERATOR: &str = "bench-operator-token-0123456789";
const SUPERVISOR: &str = "bench-supervisor-token-0123456789";

/// What one run measured, in milliseconds unless named otherwise.
#[derive(Debug, Clone, Serialize)]
pub struct AlertFigures {
    pub loudspeakers: usize,
    pub accept_to_first_packet_ms: Vec<f64>,
    pub accept_answer_ms: Vec<f64>,
    pub preempt_ms: Vec<f64>,
    pub cancel_ms: Vec<f64>,
    pub accepts_per_second: f64,
    pub accept_clients: usize,
    pub accept_p50_ms: f64,
    pub accept_p99_ms: f64,
    pub synthesis_ms: Vec<f64>,
    pub synthesis_seconds_of_speech: f64,
}

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("{0}")]
    Setup(String),
    #[error("the node answered {status}: {body}")]
    Refused { status: u16, body: String },
    #[error("{0} did not happen within {1:?}")]
    TimedOut(&'static str, Duration),
}

fn setup<E: std::fmt::Display>(what: &str) -> impl FnOnce(E) -> BenchError + '_ {
    move |e| BenchError::Setup(format!("{what}: {e}"))
}

struct Probe {
    rtp: UdpSocket,
    rtcp: UdpSocket,
}

impl Probe {
    /// Waits for the first RTP packet whose SSRC is not in `old`; its SSRC.
    fn first_packet(&self, old: &[u32], limit: Duration) -> Result<(u32, Instant), BenchError> {
        let deadline = Instant::now() + limit;
        let mut buf = [0u8; 2048];
        while Instant::now() < deadline {
            if let Ok(n) = self.rtp.recv(&mut buf) {
                let at = Instant::now();
                if n >= 12 {
                    let ssrc = u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]);
                    if !old.contains(&ssrc) {
                        return Ok((ssrc, at));
                    }
                }
            }
        }
        Err(BenchError::TimedOut(
            "a new stream at the loudspeaker",
            limit,
        ))
    }

    /// Waits for an RTCP BYE of `ssrc`.
    fn bye(&self, ssrc: u32, limit: Duration) -> Result<Instant, BenchError> {
        let deadline = Instant::now() + limit;
        let mut buf = [0u8; 2048];
        while Instant::now() < deadline {
            if let Ok(n) = self.rtcp.recv(&mut buf) {
                let at = Instant::now();
                let Ok(events) = drivers::rtp::rtcp::parse_compound(&buf[..n]) else {
                    continue;
                };
                let bye = events.iter().any(|e| {
                    matches!(e, drivers::rtp::rtcp::RtcpEvent::Bye { ssrcs, .. } if ssrcs.contains(&ssrc))
                });
                if bye {
                    return Ok(at);
                }
            }
        }
        Err(BenchError::TimedOut("BYE at the loudspeaker", limit))
    }

    fn drain(&self) {
        let mut buf = [0u8; 2048];
        while self.rtp.recv(&mut buf).is_ok() {}
        while self.rtcp.recv(&mut buf).is_ok() {}
    }
}

struct Node {
    api: String,
    agent: ureq::Agent,
}

impl Node {
    fn post(
        &self,
        path: &str,
        token: &str,
        content_type: &str,
        body: &[u8],
    ) -> Result<Value, BenchError> {
        let mut response = self
            .agent
            .post(format!("{}{path}", self.api))
            .header("Authorization", format!("Bearer {token}"))
            .content_type(content_type)
            .send(body)
            .map_err(setup("request"))?;
        let status = response.status().as_u16();
        let text = response
            .body_mut()
            .read_to_string()
            .map_err(setup("answer"))?;
        if !(200..300).contains(&status) {
            return Err(BenchError::Refused { status, body: text });
        }
        serde_json::from_str(&text).map_err(setup("answer JSON"))
    }
}

/// A CAP alert carrying `wav` as recorded speech.
fn cap_with_audio(identifier: &str, severity: &str, wav_base64: &str) -> String {
    let now = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S+00:00");
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"><identifier>{identifier}</identifier><sender>bench@emcomm</sender><sent>{now}</sent><status>Actual</status><msgType>Alert</msgType><scope>Public</scope>
<info><category>Met</category><event>Bench</event><urgency>Immediate</urgency><severity>{severity}</severity><certainty>Observed</certainty>
<resource><resourceDesc>speech</resourceDesc><mimeType>audio/wav</mimeType><derefUri>{wav_base64}</derefUri></resource>
<area><areaDesc>bench</areaDesc><geocode><valueName>GB/T 2260</valueName><value>410503</value></geocode></area></info></alert>"#
    )
}

/// Runs the benchmark; `rounds` of each latency figure.
pub fn run(
    emcomm: &Path,
    loudspeakers: usize,
    rounds: usize,
    out: &Path,
) -> Result<AlertFigures, BenchError> {
    std::fs::create_dir_all(out).map_err(setup("output folder"))?;
    let state = out.join("alerts-state");
    let _ = std::fs::remove_dir_all(&state);

    // The loudspeakers: bound sockets, the first two ports of each pair.
    let mut sockets = Vec::with_capacity(loudspeakers * 2);
    let mut ports = Vec::with_capacity(loudspeakers);
    let mut port: u16 = 30_000;
    while ports.len() < loudspeakers && port < 60_000 {
        if let (Ok(rtp), Ok(rtcp)) = (
            UdpSocket::bind(("127.0.0.1", port)),
            UdpSocket::bind(("127.0.0.1", port + 1)),
        ) {
            ports.push(port);
            sockets.push(rtp);
            sockets.push(rtcp);
        }
        port += 2;
    }
    if ports.len() < loudspeakers {
        return Err(BenchError::Setup(
            "not enough free ports on 127.0.0.1".into(),
        ));
    }
    let probe = Probe {
        rtp: sockets[0].try_clone().map_err(setup("probe"))?,
        rtcp: sockets[1].try_clone().map_err(setup("probe"))?,
    };
    probe
        .rtp
        .set_read_timeout(Some(Duration::from_millis(20)))
        .map_err(setup("probe"))?;
    probe
        .rtcp
        .set_read_timeout(Some(Duration::from_millis(20)))
        .map_err(setup("probe"))?;

    let api_port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(setup("API port"))?;
    std::fs::write(
        out.join("operators.toml"),
        format!(
            "[[operator]]\nname = \"bench\"\nrole = \"operator\"\ntoken = \"{OPERATOR}\"\n\n[[operator]]\nname = \"bench-supervisor\"\nrole = \"supervisor\"\ntoken = \"{SUPERVISOR}\"\n"
        ),
    )
    .map_err(setup("operators file"))?;
    let mut config = format!(
        "[node]\nname = \"district-bench\"\ntier = \"district\"\narea = \"410503\"\n\n[rtp]\nrtcp_interval_ms = 5000\n\n\
         [api]\nlisten = \"127.0.0.1:{api_port}\"\noperators = \"operators.toml\"\n\n\
         [alerts]\nstate_dir = \"alerts-state\"\nattention = \"none\"\nrepeat = 1\nconfirm_levels = [\"orange\"]\n"
    );
    for (i, port) in ports.iter().enumerate() {
        config.push_str(&format!(
            "\n[[downstream]]\nname = \"pole-{i:04}\"\naddress = \"127.0.0.1:{port}\"\n"
        ));
    }
    let config_path = out.join("alerts-district.toml");
    std::fs::write(&config_path, config).map_err(setup("config"))?;

    let mut child = Command::new(emcomm)
        .args(["run", "--config"])
        .arg(&config_path)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(setup("starting emcomm"))?;
    let ready = watch(
        child
            .stderr
            .take()
            .ok_or(BenchError::Setup("stderr".into()))?,
        out.join("alerts-district.log"),
        "control API listening",
    );
    let district = Supervised::new("district", child);
    await_ready("district", &ready, Duration::from_secs(60)).map_err(setup("district"))?;
    let node = Node {
        api: format!("http://127.0.0.1:{api_port}"),
        agent: ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into(),
    };

    // Two seconds of recorded speech: a 440 Hz tone in a WAV.
    let tone = codecs::pcm::f32_to_i16_vec(&codecs::tones::sine(
        440.0,
        -12.0,
        Duration::from_secs(2),
        48_000,
    ));
    let wav_path = out.join("alerts-speech.wav");
    codecs::write_wav_i16(&wav_path, 48_000, &tone).map_err(setup("speech WAV"))?;
    let wav = std::fs::read(&wav_path).map_err(setup("speech WAV"))?;
    let wav_base64 = base64::engine::general_purpose::STANDARD.encode(wav);

    let mut figures = AlertFigures {
        loudspeakers,
        accept_to_first_packet_ms: Vec::new(),
        accept_answer_ms: Vec::new(),
        preempt_ms: Vec::new(),
        cancel_ms: Vec::new(),
        accepts_per_second: 0.0,
        accept_clients: 8,
        accept_p50_ms: 0.0,
        accept_p99_ms: 0.0,
        synthesis_ms: Vec::new(),
        synthesis_seconds_of_speech: 0.0,
    };
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let mut seen = Vec::new();
    for round in 0..rounds {
        // Accept to first packet, blue.
        probe.drain();
        let sent = Instant::now();
        let blue = node.post(
            "/v1/alerts",
            OPERATOR,
            "application/cap+xml",
            cap_with_audio(&format!("blue-{round}"), "Minor", &wav_base64).as_bytes(),
        )?;
        let answered = Instant::now();
        let (blue_ssrc, first) = probe.first_packet(&seen, Duration::from_secs(10))?;
        seen.push(blue_ssrc);
        figures.accept_to_first_packet_ms.push(ms(first - sent));
        figures.accept_answer_ms.push(ms(answered - sent));

        // Pre-empt with red (no confirmation for red in this configuration).
        std::thread::sleep(Duration::from_millis(300));
        let sent = Instant::now();
        let red = node.post(
            "/v1/alerts",
            OPERATOR,
            "application/cap+xml",
            cap_with_audio(&format!("red-{round}"), "Extreme", &wav_base64).as_bytes(),
        )?;
        let (red_ssrc, first) = probe.first_packet(&seen, Duration::from_secs(10))?;
        seen.push(red_ssrc);
        figures.preempt_ms.push(ms(first - sent));

        // Cancel red.
        std::thread::sleep(Duration::from_millis(300));
        let red_id = red["id"].as_i64().unwrap_or(0);
        let sent = Instant::now();
        node.post(
            &format!("/v1/alerts/{red_id}/cancel"),
            OPERATOR,
            "application/json",
            b"",
        )?;
        let bye = probe.bye(red_ssrc, Duration::from_secs(10))?;
        figures.cancel_ms.push(ms(bye - sent));

        // Let the blue one end before the next round.
        let blue_id = blue["id"].as_i64().unwrap_or(0);
        let _ = node.post(
            &format!("/v1/alerts/{blue_id}/cancel"),
            OPERATOR,
            "application/json",
            b"",
        );
        std::thread::sleep(Duration::from_millis(300));
    }

    // Durable accepts per second: orange Actual alerts wait for confirmation.
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let seconds = 5.0;
    let mut threads = Vec::new();
    for client in 0..figures.accept_clients {
        let (stop, count) = (stop.clone(), count.clone());
        let api = node.api.clone();
        threads.push(std::thread::spawn(move || {
            let node = Node {
                api,
                agent: ureq::Agent::config_builder()
                    .http_status_as_error(false)
                    .build()
                    .into(),
            };
            let mut latencies = Vec::new();
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let form =
                    json!({"text": "bench", "level": "orange", "areas": ["410503"]}).to_string();
                let t = Instant::now();
                if node
                    .post("/v1/alerts", OPERATOR, "application/json", form.as_bytes())
                    .is_ok()
                {
                    count.fetch_add(1, Ordering::Relaxed);
                    latencies.push(t.elapsed().as_secs_f64() * 1000.0);
                }
                i += 1;
                let _ = (client, i);
            }
            latencies
        }));
    }
    std::thread::sleep(Duration::from_secs_f64(seconds));
    stop.store(true, Ordering::Relaxed);
    let mut latencies: Vec<f64> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap_or_default())
        .collect();
    latencies.sort_by(f64::total_cmp);
    figures.accepts_per_second = count.load(Ordering::Relaxed) as f64 / seconds;
    figures.accept_p50_ms = percentile(&latencies, 0.5);
    figures.accept_p99_ms = percentile(&latencies, 0.99);
    drop(district);

    // Speech synthesis on its own.
    let text = "安阳市气象台发布暴雨黄色预警信号，预计未来六小时北关区降雨量将达五十毫米以上，请注意防范。";
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(setup("runtime"))?;
    let engine = gateway::alert::speech::SpeechEngine::default();
    for _ in 0..rounds {
        let t = Instant::now();
        let speech = runtime
            .block_on(engine.synthesise(text, "zh-CN"))
            .map_err(setup("speech synthesis"))?;
        figures.synthesis_ms.push(ms(t.elapsed()));
        figures.synthesis_seconds_of_speech = speech.samples.len() as f64 / 48_000.0;
    }
    drop(sockets);
    Ok(figures)
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    percentile(&v, 0.5)
}

fn max(values: &[f64]) -> f64 {
    values.iter().copied().fold(f64::NAN, f64::max)
}

/// The figures as a Markdown table.
pub fn table(f: &AlertFigures) -> String {
    let rounds = f.accept_to_first_packet_ms.len();
    format!(
        "| figure ({} loudspeakers, {rounds} rounds) | median | worst | aim |\n|---|---|---|---|\n\
         | accept to first packet at a loudspeaker (recorded speech) | {:.1} ms | {:.1} ms | < 100 ms |\n\
         | of which the API's durable answer | {:.1} ms | {:.1} ms | |\n\
         | red sent to its first packet, pre-empting blue | {:.1} ms | {:.1} ms | < 200 ms |\n\
         | cancel sent to BYE at the loudspeaker | {:.1} ms | {:.1} ms | < 200 ms |\n\
         | durable accepts, {} clients | {:.0} /s (p50 {:.1} ms, p99 {:.1} ms) | | ≥ 500 /s |\n\
         | speech synthesis, {:.1} s of Mandarin (espeak-ng) | {:.0} ms | {:.0} ms | timed apart |\n",
        f.loudspeakers,
        median(&f.accept_to_first_packet_ms),
        max(&f.accept_to_first_packet_ms),
        median(&f.accept_answer_ms),
        max(&f.accept_answer_ms),
        median(&f.preempt_ms),
        max(&f.preempt_ms),
        median(&f.cancel_ms),
        max(&f.cancel_ms),
        f.accept_clients,
        f.accepts_per_second,
        f.accept_p50_ms,
        f.accept_p99_ms,
        f.synthesis_seconds_of_speech,
        median(&f.synthesis_ms),
        max(&f.synthesis_ms),
    )
}

/// The default output folder of `emcomm-bench alerts`.
pub fn default_out() -> PathBuf {
    PathBuf::from("bench-out")
}
