//! The radio patching benchmark: mouth-to-ear latency through a gateway, and the CPU
//! one patch of two radios costs.
//!
//! The radios are simulated in this process on the gateway's external line backend,
//! which is a paced audio device: every 20 ms, on one timer, each radio sends a frame of
//! receive audio, as a sound card delivers it. A source radio hears 300 ms tone bursts
//! once a second with its COS held on; the time from the instant the frame holding a
//! burst's first sample is delivered to the gateway, to the instant the first loud sample
//! comes back out of the gateway (in a destination radio's transmit audio, or in an RTP
//! packet to a loudspeaker address this process listens on), is one latency sample. The
//! same clock times both ends.
//!
//! Latency paths, each with a gateway of its own:
//!
//! * radio → radio: one patch, TX lead 0 and receive delay 0, so the figure is the
//!   gateway's own; the configured lead and delay add to it one for one;
//! * radio → RTP link → RTP link → radio: two patches joined by a pair of links on the
//!   loopback, so Opus encoding, the network and the link's jitter buffer are in it;
//! * radio → loudspeaker zone: to the first RTP packet of the burst at the loudspeaker's
//!   address (the loudspeaker's own jitter buffer is the loudspeaker's, not counted).
//!
//! CPU: N patches of two radios each, every source talking, the gateway pinned to CPU
//! core 1; its user and system time from `/proc/PID/stat` over the measured seconds.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use codecs::opus::{FRAME_SAMPLES, OpusDecoder};
use drivers::radio::external::{Decoder, Message};
use drivers::rtp::packet::RtpHeader;
use drivers::serial::modem_lines::InputLevels;
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixListener;
use tokio::net::unix::OwnedWriteHalf;

use crate::process::{Supervised, await_ready, free_port_pair, watch};

/// Why the benchmark could not run.
#[derive(Debug, thiserror::Error)]
pub enum RadioBenchError {
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Setup(String),
    #[error(transparent)]
    Process(#[from] crate::process::ProcessError),
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> RadioBenchError {
    let what = what.into();
    move |source| RadioBenchError::Io { what, source }
}

/// Figures of one latency path, in milliseconds.
#[derive(Debug, Clone, Serialize)]
pub struct LatencyFigures {
    pub path: String,
    pub bursts: usize,
    pub median_ms: f64,
    pub p95_ms: f64,
    pub max_ms: f64,
}

/// CPU of the gateway with `patches` patches of two radios each.
#[derive(Debug, Clone, Serialize)]
pub struct CpuFigures {
    pub patches: usize,
    pub seconds: f64,
    /// Percent of one core.
    pub cpu_percent: f64,
    pub cpu_percent_per_patch: f64,
    /// Frames the destinations transmitted, against what the sources sent.
    pub frames_delivered_percent: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct RadioBenchReport {
    pub latency: Vec<LatencyFigures>,
    pub cpu: Vec<CpuFigures>,
}

/// What to measure.
#[derive(Debug, Clone)]
pub struct RadioBenchOptions {
    pub emcomm: PathBuf,
    pub out: PathBuf,
    /// Patch counts for the CPU figure.
    pub patches: Vec<usize>,
    /// Seconds of each latency run and of each CPU measurement.
    pub seconds: f64,
}

const BURST_FRAMES: u64 = 15;
const PERIOD_FRAMES: u64 = 50;
const LOUD: i16 = 8000;

/// The source's frame `k`: a 1 kHz tone in the first 300 ms of every second.
fn source_frame(k: u64) -> Vec<i16> {
    if k % PERIOD_FRAMES >= BURST_FRAMES {
        return vec![0; FRAME_SAMPLES];
    }
    (0..FRAME_SAMPLES)
        .map(|n| {
            let t = (k * FRAME_SAMPLES as u64 + n as u64) as f64 / 48_000.0;
            // A cosine, so the first sample of a burst is already loud.
            (f64::from(LOUD) * (std::f64::consts::TAU * 1000.0 * t).cos()) as i16
        })
        .collect()
}

/// Instants at which each burst's first sample reached the gateway, and at which a
/// loud sample first came back after each, per destination.
#[derive(Default)]
struct Timeline {
    bursts: Vec<Instant>,
    arrivals: HashMap<String, Vec<Instant>>,
    frames_sent: u64,
    frames_back: HashMap<String, u64>,
}

/// A destination's detector: the first loud sample after a quiet stretch.
#[derive(Default)]
struct Onsets {
    quiet_samples: usize,
}

impl Onsets {
    /// The offset in `samples` of a burst's start, if one starts here.
    fn feed(&mut self, samples: &[i16], threshold: i16) -> Option<usize> {
        let mut found = None;
        for (k, s) in samples.iter().enumerate() {
            if s.unsigned_abs() > threshold.unsigned_abs() {
                if self.quiet_samples > 48_000 / 4 && found.is_none() {
                    found = Some(k);
                }
                self.quiet_samples = 0;
            } else {
                self.quiet_samples += 1;
            }
        }
        found
    }
}

/// The simulated radios of one run.
struct Radios {
    timeline: Arc<Mutex<Timeline>>,
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

/// Starts `sources` talking radios and `destinations` listening ones on sockets in
/// `dir`, paced together.
fn start_radios(
    dir: &Path,
    sources: &[String],
    destinations: &[String],
) -> Result<Radios, RadioBenchError> {
    let timeline = Arc::new(Mutex::new(Timeline::default()));
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut listeners = Vec::new();
    for name in sources.iter().chain(destinations) {
        let path = dir.join(format!("{name}.sock"));
        let _ = std::fs::remove_file(&path);
        let listener =
            UnixListener::bind(&path).map_err(io(format!("binding {}", path.display())))?;
        listeners.push((name.clone(), sources.contains(name), listener));
    }
    let shared = timeline.clone();
    let task = tokio::spawn(async move {
        let mut writers: Vec<(bool, OwnedWriteHalf)> = Vec::new();
        for (name, is_source, listener) in listeners {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let (mut reader, mut writer) = stream.into_split();
            if is_source {
                let cos = InputLevels {
                    dcd: true,
                    ..Default::default()
                };
                let _ = writer.write_all(&Message::Inputs(cos).encode()).await;
            }
            writers.push((is_source, writer));
            let timeline = shared.clone();
            let mut stopped = stopped.clone();
            tokio::spawn(async move {
                let mut decoder = Decoder::new();
                let mut onsets = Onsets::default();
                let mut buffer = vec![0u8; 16_384];
                loop {
                    let n = tokio::select! {
                        n = reader.read(&mut buffer) => match n { Ok(0) | Err(_) => return, Ok(n) => n },
                        _ = stopped.changed() => return,
                    };
                    let now = Instant::now();
                    let Ok(messages) = decoder.push(&buffer[..n]) else {
                        return;
                    };
                    for message in messages {
                        if let Message::Audio(frame) = message
                            && let Ok(mut t) = timeline.lock()
                        {
                            *t.frames_back.entry(name.clone()).or_default() += 1;
                            if let Some(at) = onsets.feed(&frame, LOUD / 4) {
                                let when = now + Duration::from_secs_f64(at as f64 / 48_000.0);
                                t.arrivals.entry(name.clone()).or_default().push(when);
                            }
                        }
                    }
                }
            });
        }
        let mut pacer = tokio::time::interval(Duration::from_millis(20));
        pacer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        let silence = Message::Audio(vec![0; FRAME_SAMPLES]).encode();
        let mut stopped = stopped.clone();
        for k in 0u64.. {
            tokio::select! {
                _ = pacer.tick() => {}
                _ = stopped.changed() => return,
            }
            let talk = Message::Audio(source_frame(k)).encode();
            let now = Instant::now();
            if let Ok(mut t) = shared.lock() {
                if k % PERIOD_FRAMES == 0 {
                    t.bursts.push(now);
                }
                t.frames_sent += 1;
            }
            for (is_source, writer) in &mut writers {
                let bytes = if *is_source { &talk } else { &silence };
                let _ = writer.write_all(bytes).await;
            }
        }
    });
    Ok(Radios {
        timeline,
        stop,
        task,
    })
}

/// Listens as a loudspeaker on `port`, decoding Opus, and notes burst onsets by the
/// arrival of their first loud packet.
fn start_loudspeaker(
    port: u16,
    timeline: Arc<Mutex<Timeline>>,
    mut stopped: tokio::sync::watch::Receiver<bool>,
) -> Result<tokio::task::JoinHandle<()>, RadioBenchError> {
    let socket = std::net::UdpSocket::bind(("127.0.0.1", port))
        .and_then(|s| s.set_nonblocking(true).map(|()| s))
        .and_then(tokio::net::UdpSocket::from_std)
        .map_err(io("binding the loudspeaker"))?;
    let mut decoder = OpusDecoder::new().map_err(|e| RadioBenchError::Setup(e.to_string()))?;
    Ok(tokio::spawn(async move {
        let mut buffer = vec![0u8; 1500];
        let mut pcm = vec![0i16; FRAME_SAMPLES * 6];
        let mut onsets = Onsets::default();
        loop {
            let n = tokio::select! {
                r = socket.recv(&mut buffer) => match r { Ok(n) => n, Err(_) => return },
                _ = stopped.changed() => return,
            };
            let now = Instant::now();
            let Ok(header) = RtpHeader::parse(&buffer[..n]) else {
                continue;
            };
            let Ok(len) = decoder.decode(header.payload(&buffer[..n]), &mut pcm) else {
                continue;
            };
            if onsets.feed(&pcm[..len], LOUD / 4).is_some()
                && let Ok(mut t) = timeline.lock()
            {
                t.arrivals
                    .entry("loudspeaker".into())
                    .or_default()
                    .push(now);
            }
        }
    }))
}

/// A gateway running `config`, pinned to `core` when given.
fn start_gateway(
    options: &RadioBenchOptions,
    dir: &Path,
    config: &str,
    core: Option<usize>,
) -> Result<Supervised, RadioBenchError> {
    let path = dir.join("gateway.toml");
    std::fs::write(&path, config).map_err(io("writing the configuration"))?;
    let mut command = match core {
        Some(core) => {
            let mut c = Command::new("taskset");
            c.args(["-c", &core.to_string()]).arg(&options.emcomm);
            c
        }
        None => Command::new(&options.emcomm),
    };
    let mut child: Child = command
        .args(["run", "--config"])
        .arg(&path)
        .env("EMCOMM_LOG", "warn,gateway=info")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .map_err(io("starting the gateway"))?;
    let ready = watch(
        child
            .stderr
            .take()
            .ok_or(RadioBenchError::Setup("no stderr".into()))?,
        dir.join("gateway.log"),
        "patching ready",
    );
    let gateway = Supervised::new("gateway", child);
    await_ready("gateway", &ready, Duration::from_secs(20))?;
    Ok(gateway)
}

fn header(rtp_listen: u16) -> String {
    format!(
        "[node]\nname = \"bench\"\ntier = \"street\"\narea = \"410503001\"\n\n\
         [rtp]\nlisten = \"127.0.0.1:{rtp_listen}\"\n\n\
         [patching]\nstate_dir = \"state\"\nhang_ms = 300\n\n"
    )
}

fn radio(name: &str) -> String {
    format!(
        "[[radio]]\nname = \"{name}\"\nlines = \"external:{name}.sock\"\nptt = \"rts\"\n\
         tx_lead_ms = 0\nrx_delay_ms = 0\nmin_open_ms = 20\n\n"
    )
}

fn patch(name: &str, members: &[&str]) -> String {
    let members: Vec<String> = members.iter().map(|m| format!("\"{m}\"")).collect();
    format!(
        "[[patch]]\nname = \"{name}\"\nmembers = [{}]\n\n",
        members.join(", ")
    )
}

fn figures(path: &str, sent: &[Instant], back: &[Instant]) -> LatencyFigures {
    // Each burst's onset is the first arrival after it was sent and before the next.
    let mut samples: Vec<f64> = Vec::new();
    for (k, start) in sent.iter().enumerate() {
        let next = sent.get(k + 1).copied();
        if let Some(arrival) = back
            .iter()
            .find(|a| **a >= *start && next.is_none_or(|n| **a < n))
        {
            samples.push(arrival.duration_since(*start).as_secs_f64() * 1000.0);
        }
    }
    samples.sort_by(f64::total_cmp);
    let at = |p: f64| {
        samples
            .get(((samples.len().max(1) - 1) as f64 * p).round() as usize)
            .copied()
            .unwrap_or(f64::NAN)
    };
    LatencyFigures {
        path: path.into(),
        bursts: samples.len(),
        median_ms: at(0.5),
        p95_ms: at(0.95),
        max_ms: samples.last().copied().unwrap_or(f64::NAN),
    }
}

async fn latency_run(
    options: &RadioBenchOptions,
    name: &str,
    config: String,
    destination: &str,
    with_loudspeaker: Option<u16>,
) -> Result<LatencyFigures, RadioBenchError> {
    let dir = options.out.join(format!("radio-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(io("creating the run folder"))?;
    let destinations: Vec<String> = if with_loudspeaker.is_some() {
        Vec::new()
    } else {
        vec![destination.to_owned()]
    };
    let radios = start_radios(&dir, &["src".to_owned()], &destinations)?;
    let speaker = match with_loudspeaker {
        Some(port) => Some(start_loudspeaker(
            port,
            radios.timeline.clone(),
            radios.stop.subscribe(),
        )?),
        None => None,
    };
    let mut gateway = start_gateway(options, &dir, &config, None)?;
    tokio::time::sleep(Duration::from_secs_f64(options.seconds)).await;
    gateway.signal(nix::sys::signal::Signal::SIGTERM);
    let _ = radios.stop.send(true);
    let _ = radios.task.await;
    if let Some(s) = speaker {
        let _ = s.await;
    }
    let _ = gateway.wait(Duration::from_secs(10));
    let t = radios
        .timeline
        .lock()
        .map_err(|_| RadioBenchError::Setup("timeline".into()))?;
    let back = t.arrivals.get(destination).cloned().unwrap_or_default();
    // The first burst may fall before the gateway had connected: skip it.
    Ok(figures(name, t.bursts.get(1..).unwrap_or(&[]), &back))
}

async fn cpu_run(
    options: &RadioBenchOptions,
    patches: usize,
) -> Result<CpuFigures, RadioBenchError> {
    let dir = options.out.join(format!("radio-cpu-{patches}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(io("creating the run folder"))?;
    let sources: Vec<String> = (0..patches).map(|k| format!("src-{k}")).collect();
    let destinations: Vec<String> = (0..patches).map(|k| format!("dst-{k}")).collect();
    let mut config = header(free_port_pair()?);
    for k in 0..patches {
        config.push_str(&radio(&sources[k]));
        config.push_str(&radio(&destinations[k]));
        config.push_str(&patch(&format!("p{k}"), &[&sources[k], &destinations[k]]));
    }
    let radios = start_radios(&dir, &sources, &destinations)?;
    let mut gateway = start_gateway(options, &dir, &config, Some(1))?;
    let pid = gateway.child.id();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (cpu_before, t_before) = (cpu_ticks(pid)?, Instant::now());
    let sent_before = radios.timeline.lock().map(|t| t.frames_sent).unwrap_or(0);
    tokio::time::sleep(Duration::from_secs_f64(options.seconds)).await;
    let (cpu_after, t_after) = (cpu_ticks(pid)?, Instant::now());
    let sent_after = radios.timeline.lock().map(|t| t.frames_sent).unwrap_or(0);
    gateway.signal(nix::sys::signal::Signal::SIGTERM);
    let _ = radios.stop.send(true);
    let _ = radios.task.await;
    let _ = gateway.wait(Duration::from_secs(10));

    let seconds = t_after.duration_since(t_before).as_secs_f64();
    let ticks_per_second = 100.0; // USER_HZ on Linux
    let cpu_percent = (cpu_after - cpu_before) as f64 / ticks_per_second / seconds * 100.0;
    let t = radios
        .timeline
        .lock()
        .map_err(|_| RadioBenchError::Setup("timeline".into()))?;
    let back: u64 = t.frames_back.values().sum();
    let sent_total = t.frames_sent * patches as u64;
    let _ = (sent_before, sent_after);
    Ok(CpuFigures {
        patches,
        seconds,
        cpu_percent,
        cpu_percent_per_patch: cpu_percent / patches as f64,
        frames_delivered_percent: back as f64 / sent_total.max(1) as f64 * 100.0,
    })
}

/// User plus system clock ticks the process has used.
fn cpu_ticks(pid: u32) -> Result<u64, RadioBenchError> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map_err(io("reading the gateway's /proc stat"))?;
    // Fields after the command name (which may hold spaces) start after ") ".
    let rest = stat
        .rsplit_once(") ")
        .map(|(_, r)| r)
        .ok_or(RadioBenchError::Setup("unexpected /proc stat".into()))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let tick = |k: usize| {
        fields
            .get(k)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    Ok(tick(11) + tick(12))
}

/// Runs every measurement.
pub async fn run(options: RadioBenchOptions) -> Result<RadioBenchReport, RadioBenchError> {
    std::fs::create_dir_all(&options.out).map_err(io("creating the output folder"))?;
    let mut latency = Vec::new();

    let direct = format!(
        "{}{}{}{}",
        header(free_port_pair()?),
        radio("src"),
        radio("dst"),
        patch("direct", &["src", "dst"])
    );
    latency.push(latency_run(&options, "radio-to-radio", direct, "dst", None).await?);

    let (near, far) = (free_port_pair()?, free_port_pair()?);
    let linked = format!(
        "{}{}{}\
         [[link]]\nname = \"out\"\nlisten = \"127.0.0.1:{near}\"\nsend_to = \"127.0.0.1:{far}\"\n\n\
         [[link]]\nname = \"in\"\nlisten = \"127.0.0.1:{far}\"\nsend_to = \"127.0.0.1:{near}\"\n\n{}{}",
        header(free_port_pair()?),
        radio("src"),
        radio("dst"),
        patch("leaving", &["src", "out"]),
        patch("arriving", &["in", "dst"])
    );
    latency.push(latency_run(&options, "radio-link-link-radio", linked, "dst", None).await?);

    let speaker = free_port_pair()?;
    let zoned = format!(
        "{}{}\
         [[downstream]]\nname = \"pole\"\naddress = \"127.0.0.1:{speaker}\"\n\n\
         [[zone]]\nname = \"zone\"\nloudspeakers = [\"pole\"]\n\n{}",
        header(free_port_pair()?),
        radio("src"),
        patch("to-zone", &["src", "zone"])
    );
    latency.push(
        latency_run(
            &options,
            "radio-to-loudspeaker",
            zoned,
            "loudspeaker",
            Some(speaker),
        )
        .await?,
    );

    let mut cpu = Vec::new();
    for &n in &options.patches {
        cpu.push(cpu_run(&options, n).await?);
    }
    let report = RadioBenchReport { latency, cpu };
    let json =
        serde_json::to_vec_pretty(&report).map_err(|e| RadioBenchError::Setup(e.to_string()))?;
    std::fs::write(options.out.join("radio.json"), json).map_err(io("writing radio.json"))?;
    Ok(report)
}
