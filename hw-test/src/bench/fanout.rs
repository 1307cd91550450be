//! The fan-out benchmark: how many datagrams per second one street gateway, pinned to
//! one core, sends when one input stream is replayed faster than real time to 100 and
//! 1000 destinations on 127.0.0.1, against two references on the same core and the
//! same destinations (the gateway's latency is measured in a second run at the stream's
//! real rate of 50 packets a second, where no input queues up):
//!
//! * GStreamer's `multiudpsink` fanning out a stream of buffers of the same size;
//! * a bare loop that sends one fixed 80-byte packet to every destination with
//!   `sendmmsg(2)` in batches of 256, close to the least any sender can spend.
//!
//! The gateway itself sends in batches of up to 1024 (the kernel's limit), as
//! GStreamer does through GLib's `g_socket_send_messages`.
//!
//! Every destination is a bound socket that is never read, so the kernel drops what
//! queues up there; no sender waits on a receiver. The gateway's own statistics give
//! its busy time, its forwarding latency (receipt to the return of the last send) and
//! the count of datagrams sent; its resident memory is read from `/proc` while it is
//! loaded. Wall-clock figures vary from run to run by several percent.

use std::fmt::Write as _;
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use codecs::opus::OpusEncoder;
use drivers::net::fanout::Fanout;
use drivers::rtp::packetizer::Packetizer;
use drivers::rtp::payload::PayloadFormat;
use nix::sched::{CpuSet, sched_setaffinity};
use nix::sys::signal::Signal;
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use crate::process::{Supervised, await_ready, free_port_pair, watch};

/// The core every contender is pinned to.
pub const BENCH_CORE: &str = "1";

/// Size of the bare loop's packet.
pub const BARE_PACKET_BYTES: usize = 80;

/// Packets per second of one 20 ms stream.
const REAL_TIME_RATE: f64 = 50.0;

/// Messages per `sendmmsg(2)` call in the bare loop.
pub const BARE_BATCH: usize = 256;

/// Figures of one contender at one fan-out size.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Figures {
    pub contender: String,
    pub destinations: usize,
    pub datagrams: u64,
    pub seconds: f64,
    pub per_second: f64,
    pub latency_us_p50: Option<f64>,
    pub latency_us_p99: Option<f64>,
    pub rss_mb: Option<f64>,
}

impl Figures {
    /// Figures of a reference that sent `datagrams` in `seconds`, without latency.
    fn throughput(
        contender: String,
        destinations: usize,
        datagrams: u64,
        seconds: f64,
        rss_mb: Option<f64>,
    ) -> Self {
        Figures {
            contender,
            destinations,
            datagrams,
            seconds,
            per_second: datagrams as f64 / seconds,
            latency_us_p50: None,
            latency_us_p99: None,
            rss_mb,
        }
    }
}

/// Why the benchmark could not run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Failed(String),
    #[error("{0}")]
    Process(#[from] crate::process::ProcessError),
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> BenchError {
    let what = what.into();
    move |source| BenchError::Io { what, source }
}

/// The gateway's statistics file (written by `emcomm run --stats-out`).
#[derive(Debug, Deserialize)]
struct RelayStats {
    datagrams_sent: u64,
    forwarding_latency_us_p50: f64,
    forwarding_latency_us_p99: f64,
    busy_seconds: f64,
}

/// Binds `count` destination sockets on 127.0.0.1 that are never read, on even ports
/// with the odd port above each left free (where a destination's RTCP would go, which
/// the gateway's configuration check insists on).
pub fn destinations(count: usize) -> Result<(Vec<UdpSocket>, Vec<SocketAddr>), BenchError> {
    let mut sockets = Vec::with_capacity(count);
    let mut port: u32 = 20_000;
    while sockets.len() < count {
        if port >= 65_000 {
            return Err(BenchError::Failed(format!(
                "only {} destination ports free",
                sockets.len()
            )));
        }
        if let Ok(socket) = UdpSocket::bind(("127.0.0.1", port as u16)) {
            sockets.push(socket);
        }
        port += 2;
    }
    let addrs = sockets
        .iter()
        .map(|s| s.local_addr().map_err(io("destination address")))
        .collect::<Result<_, _>>()?;
    Ok((sockets, addrs))
}

fn rss_mb(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// Real Opus packets of a 440 Hz tone, as a district would send them.
fn input_stream(count: usize) -> Result<Vec<Vec<u8>>, BenchError> {
    let mut encoder =
        OpusEncoder::new(32_000, 10).map_err(|e| BenchError::Failed(e.to_string()))?;
    let mut stream = Packetizer::new(PayloadFormat::OPUS);
    let now = Instant::now();
    (0..count)
        .map(|k| {
            let frame: Vec<i16> = (0..960)
                .map(|i| (((k * 960 + i) as f32 * 0.0576).sin() * 8000.0) as i16)
                .collect();
            let payload = encoder
                .encode_vec(&frame)
                .map_err(|e| BenchError::Failed(e.to_string()))?;
            Ok(stream.packetize(&payload, now))
        })
        .collect()
}

/// Runs the street gateway against `addrs`, replaying input for `flood` at `rate`
/// packets per second.
pub fn gateway(
    emcomm: &Path,
    addrs: &[SocketAddr],
    flood: Duration,
    rate: f64,
    dir: &Path,
) -> Result<Figures, BenchError> {
    let port = free_port_pair()?;
    let mut config = format!(
        "[node]\nname = \"bench-street\"\ntier = \"street\"\narea = \"410503001\"\n\n[rtp]\nlisten = \"127.0.0.1:{port}\"\ninput_timeout_ms = 60000\n\n"
    );
    for (i, a) in addrs.iter().enumerate() {
        let _ = writeln!(
            config,
            "[[downstream]]\nname = \"d{i}\"\naddress = \"{a}\"\ncodec = \"opus\"\n"
        );
    }
    let config_path = dir.join(format!("street-{}.toml", addrs.len()));
    std::fs::write(&config_path, config).map_err(io("writing the bench config"))?;
    let stats_path = dir.join(format!("street-{}-stats.json", addrs.len()));

    let mut child = Command::new("taskset")
        .args(["-c", BENCH_CORE])
        .arg(emcomm)
        .args(["run", "--config"])
        .arg(&config_path)
        .arg("--stats-out")
        .arg(&stats_path)
        .stderr(Stdio::piped())
        .spawn()
        .map_err(io("starting the gateway under taskset"))?;
    let stderr = child
        .stderr
        .take()
        .ok_or_else(|| BenchError::Failed("no stderr".into()))?;
    let ready = watch(
        stderr,
        dir.join(format!("street-{}.log", addrs.len())),
        "relay node started",
    );
    let gateway = Supervised::new("gateway", child);
    await_ready("gateway", &ready, Duration::from_secs(20))?;

    let packets = input_stream(((flood.as_secs_f64() * rate) as usize).max(1))?;
    let sender = UdpSocket::bind("127.0.0.1:0").map_err(io("binding the replayer"))?;
    let target = SocketAddr::from(([127, 0, 0, 1], port));
    // Send what is due once a millisecond, sleeping in between: the replayer must not
    // spin, or it would compete with the gateway for a core.
    let start = Instant::now();
    let mut rss = None;
    let mut sent = 0;
    while sent < packets.len() {
        let due = ((start.elapsed().as_secs_f64() * rate) as usize + 1).min(packets.len());
        for p in &packets[sent..due] {
            let _ = sender.send_to(p, target);
        }
        if sent < packets.len() / 2 && due >= packets.len() / 2 {
            rss = rss_mb(gateway.child.id());
        }
        sent = due;
        std::thread::sleep(Duration::from_millis(1));
    }
    gateway.signal(Signal::SIGTERM);
    let mut gateway = gateway;
    let status = gateway.wait(Duration::from_secs(30))?;
    if !status.success() {
        return Err(BenchError::Failed(format!(
            "the gateway exited with {status}"
        )));
    }
    let stats: RelayStats = serde_json::from_str(
        &std::fs::read_to_string(&stats_path).map_err(io("reading gateway stats"))?,
    )
    .map_err(|e| BenchError::Failed(format!("gateway stats: {e}")))?;
    Ok(Figures {
        contender: "emcomm street gateway".into(),
        destinations: addrs.len(),
        datagrams: stats.datagrams_sent,
        seconds: stats.busy_seconds,
        per_second: stats.datagrams_sent as f64 / stats.busy_seconds.max(1e-9),
        latency_us_p50: Some(stats.forwarding_latency_us_p50),
        latency_us_p99: Some(stats.forwarding_latency_us_p99),
        rss_mb: rss,
    })
}

/// Runs GStreamer's multiudpsink with `buffers` buffers of `size` bytes.
pub fn gstreamer(addrs: &[SocketAddr], buffers: usize, size: usize) -> Result<Figures, BenchError> {
    let clients: Vec<String> = addrs.iter().map(|a| a.to_string()).collect();
    let start = Instant::now();
    let mut child = Command::new("taskset")
        .args(["-c", BENCH_CORE, "gst-launch-1.0", "-q", "fakesrc"])
        .arg(format!("num-buffers={buffers}"))
        .args([
            "sizetype=fixed",
            &format!("sizemax={size}"),
            "filltype=zero",
        ])
        .args(["!", "multiudpsink", "sync=false", "async=false"])
        .arg(format!("clients={}", clients.join(",")))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(io("starting gst-launch-1.0 under taskset"))?;
    let pid = child.id();
    let mut rss = None;
    let status = loop {
        if let Some(status) = child.try_wait().map_err(io("waiting for gst-launch"))? {
            break status;
        }
        if rss.is_none() && start.elapsed() > Duration::from_millis(500) {
            rss = rss_mb(pid);
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let seconds = start.elapsed().as_secs_f64();
    if !status.success() {
        return Err(BenchError::Failed(format!(
            "gst-launch exited with {status}"
        )));
    }
    let datagrams = (buffers * addrs.len()) as u64;
    Ok(Figures::throughput(
        "GStreamer multiudpsink".into(),
        addrs.len(),
        datagrams,
        seconds,
        rss,
    ))
}

/// The bare `sendmmsg(2)` loop, run in this process: `rounds` times one packet to
/// every destination in batches of [`BARE_BATCH`].
pub fn bare_loop(addrs: &[SocketAddr], rounds: usize, batch: usize) -> Result<Figures, BenchError> {
    let socket = UdpSocket::bind("127.0.0.1:0").map_err(io("binding the bare loop"))?;
    let packet = [0u8; BARE_PACKET_BYTES];
    let mut fanout = Fanout::with_batch(addrs, batch);
    let start = Instant::now();
    let mut datagrams = 0u64;
    for _ in 0..rounds {
        datagrams += fanout.send(&socket, &packet).sent as u64;
    }
    let seconds = start.elapsed().as_secs_f64();
    Ok(Figures::throughput(
        format!("bare sendmmsg loop ({batch}/call)"),
        addrs.len(),
        datagrams,
        seconds,
        rss_mb(std::process::id()),
    ))
}

/// Runs the bare loop in a child pinned to the bench core.
pub fn bare_loop_pinned(
    bench: &Path,
    addrs_file: &Path,
    rounds: usize,
) -> Result<Figures, BenchError> {
    let output = Command::new("taskset")
        .args(["-c", BENCH_CORE])
        .arg(bench)
        .args([
            "bench-bare-loop",
            "--rounds",
            &rounds.to_string(),
            "--destinations",
        ])
        .arg(addrs_file)
        .output()
        .map_err(io("starting the bare loop under taskset"))?;
    if !output.status.success() {
        return Err(BenchError::Failed(format!(
            "bare loop: {}",
            String::from_utf8_lossy(&output.stderr)
        )));
    }
    serde_json::from_slice::<Figures>(&output.stdout)
        .map_err(|e| BenchError::Failed(format!("bare loop output: {e}")))
}

/// Runs every contender at every size and returns the figures.
pub fn run(
    emcomm: &Path,
    bench: &Path,
    sizes: &[usize],
    seconds: f64,
    repeats: usize,
    dir: &Path,
) -> Result<Vec<Figures>, BenchError> {
    std::fs::create_dir_all(dir).map_err(io("creating the bench folder"))?;
    // This process (the replayer) stays off the contenders' core.
    let mut others = CpuSet::new();
    others
        .set(0)
        .map_err(|e| BenchError::Failed(format!("CPU set: {e}")))?;
    sched_setaffinity(Pid::from_raw(0), &others)
        .map_err(|e| BenchError::Failed(format!("pinning the replayer: {e}")))?;
    let mut all = Vec::new();
    for &size in sizes {
        let (_sockets, addrs) = destinations(size)?;
        let addrs_file: PathBuf = dir.join(format!("destinations-{size}.txt"));
        let list: Vec<String> = addrs.iter().map(|a| a.to_string()).collect();
        std::fs::write(&addrs_file, list.join("\n")).map_err(io("writing destinations"))?;
        // The references send a fixed count, about `seconds` long at 300 k datagrams/s.
        let rounds = ((seconds * 300_000.0) as usize / size).max(1);
        // Contenders take turns, so a change in the machine's load touches all of them.
        for _ in 0..repeats.max(1) {
            let bare = bare_loop_pinned(bench, &addrs_file, rounds)?;
            // Replay a quarter faster than the bare loop just managed: enough to keep
            // the gateway's input queue from running dry, not a flood whose drops would
            // load the socket the gateway sends from.
            let rate = bare.per_second * 1.25 / size as f64;
            all.push(bare);
            let mut loaded = gateway(emcomm, &addrs, Duration::from_secs_f64(seconds), rate, dir)?;
            // Latency is what one stream at its real rate (50 packets/s) sees; under the
            // overload above it would measure the input queue instead.
            let real_time = gateway(emcomm, &addrs, Duration::from_secs(3), REAL_TIME_RATE, dir)?;
            loaded.latency_us_p50 = real_time.latency_us_p50;
            loaded.latency_us_p99 = real_time.latency_us_p99;
            all.push(loaded);
            all.push(gstreamer(&addrs, rounds, 92)?);
        }
    }
    Ok(all)
}

/// The run with the median rate of each contender at each size.
pub fn medians(figures: &[Figures]) -> Vec<Figures> {
    let mut keys: Vec<(usize, String)> = Vec::new();
    for f in figures {
        let key = (f.destinations, f.contender.clone());
        if !keys.contains(&key) {
            keys.push(key);
        }
    }
    keys.into_iter()
        .filter_map(|(size, contender)| {
            let mut runs: Vec<&Figures> = figures
                .iter()
                .filter(|f| f.destinations == size && f.contender == contender)
                .collect();
            runs.sort_by(|a, b| a.per_second.total_cmp(&b.per_second));
            runs.get(runs.len() / 2).map(|f| (*f).clone())
        })
        .collect()
}

/// The comparison table.
pub fn table(figures: &[Figures]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<32} {:>6} {:>11} {:>8} {:>12} {:>9} {:>9} {:>8}",
        "contender", "dests", "datagrams", "seconds", "datagrams/s", "p50 µs", "p99 µs", "RSS MB"
    );
    for f in figures {
        let opt = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.1}"));
        let _ = writeln!(
            out,
            "{:<32} {:>6} {:>11} {:>8.2} {:>12.0} {:>9} {:>9} {:>8}",
            f.contender,
            f.destinations,
            f.datagrams,
            f.seconds,
            f.per_second,
            opt(f.latency_us_p50),
            opt(f.latency_us_p99),
            opt(f.rss_mb)
        );
    }
    for size in figures
        .iter()
        .map(|f| f.destinations)
        .collect::<std::collections::BTreeSet<_>>()
    {
        let rate = |name: &str| {
            figures
                .iter()
                .find(|f| f.destinations == size && f.contender.starts_with(name))
                .map(|f| f.per_second)
        };
        if let (Some(gw), Some(gst), Some(bare)) = (rate("emcomm"), rate("GStreamer"), rate("bare"))
        {
            let _ = writeln!(
                out,
                "{size} destinations: gateway {:.2}× GStreamer, {:.1} % below the bare loop",
                gw / gst,
                (1.0 - gw / bare) * 100.0
            );
        }
    }
    out
}
