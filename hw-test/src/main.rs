//! `emcomm-bench`: bench tests and simulators for emcomm.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use drivers::rtp::payload::PayloadFormat;
use hw_test::bench::fanout;
use hw_test::demo::{self, DemoOptions};
use hw_test::replay;
use hw_test::speaker_sim::{self, SpeakerOptions};

#[derive(Parser)]
#[command(
    name = "emcomm-bench",
    version,
    about = "Bench tests and simulators for emcomm"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Simulate an IP loudspeaker: receive RTP, play it out through a jitter buffer,
    /// record it and report.
    Speaker {
        /// Address to receive RTP on; RTCP uses the next port up.
        #[arg(long)]
        listen: SocketAddr,
        /// opus, pcmu or pcma.
        #[arg(long, default_value = "opus")]
        codec: PayloadFormat,
        /// Opus payload type (dynamic).
        #[arg(long, default_value_t = 111)]
        opus_payload_type: u8,
        /// A name for logs and reports.
        #[arg(long, default_value = "speaker")]
        name: String,
        /// Record what was heard to this WAV file.
        #[arg(long)]
        wav: Option<PathBuf>,
        /// Play what was heard on the default output device.
        #[arg(long)]
        play: bool,
        /// Write the statistics as JSON to this file.
        #[arg(long)]
        stats: Option<PathBuf>,
        /// Mean interval of RTCP receiver reports.
        #[arg(long, default_value_t = 5000)]
        rtcp_interval_ms: u64,
        /// Give up when no stream starts within this many seconds.
        #[arg(long, default_value_t = 3600)]
        wait_limit_s: u64,
        /// End a stream that stops without BYE after this many seconds of silence.
        #[arg(long, default_value_t = 5)]
        silence_limit_s: u64,
        /// Streams to take one after the other before stopping (0: no limit).
        #[arg(long, default_value_t = 1)]
        streams: u32,
    },
    /// Run the bench cascade (1 district, 2 streets, 6 loudspeakers) and judge what
    /// every loudspeaker heard. Exits 0 only when all pass.
    Demo {
        /// The emcomm daemon to run (default: next to this program).
        #[arg(long)]
        emcomm: Option<PathBuf>,
        /// Speech files the district speaks, in order.
        #[arg(long, num_args = 1.., default_values = ["assets/audio/chinese.flac", "assets/audio/english.wav"])]
        audio: Vec<PathBuf>,
        /// Silence after each file, in milliseconds.
        #[arg(long, default_value_t = 400)]
        gap_ms: u64,
        /// How many times the files are spoken.
        #[arg(long, default_value_t = 3)]
        repeat: u32,
        /// Folder for configurations, logs, recordings and reports.
        #[arg(long, default_value = "demo-out")]
        out: PathBuf,
    },
    /// Run the alert cascade: CAP and typed alerts through the district's control API
    /// to six loudspeakers behind two streets; exits 0 only when every receipt is as
    /// expected.
    DemoAlerts {
        /// The emcomm daemon to run (default: next to this program).
        #[arg(long)]
        emcomm: Option<PathBuf>,
        /// The CAP exercise alert to send.
        #[arg(
            long,
            default_value = "gateway/tests/fixtures/cap/beiguan-rainstorm-red.xml"
        )]
        cap: PathBuf,
        /// Folder for configurations, logs, recordings and reports.
        #[arg(long, default_value = "demo-out")]
        out: PathBuf,
    },
    /// Run the radio demo: three simulated radios patched at a street gateway, a call
    /// and the dispatcher's answer; exits 0 only when every transmission is whole and
    /// every PTT is released at the end.
    DemoRadio {
        /// The emcomm daemon to run (default: next to this program).
        #[arg(long)]
        emcomm: Option<PathBuf>,
        /// The field unit's call.
        #[arg(long, default_value = "assets/audio/english.wav")]
        call: PathBuf,
        /// The dispatcher's answer.
        #[arg(long, default_value = "assets/audio/chinese.flac")]
        answer: PathBuf,
        /// Folder for configurations, logs and recordings.
        #[arg(long, default_value = "demo-out")]
        out: PathBuf,
    },
    /// Benchmark a street gateway's fan-out against GStreamer and a bare sendmmsg loop,
    /// each pinned to CPU core 1.
    Fanout {
        /// The emcomm daemon to run (default: next to this program).
        #[arg(long)]
        emcomm: Option<PathBuf>,
        /// Destination counts to measure.
        #[arg(long, num_args = 1.., default_values_t = [100usize, 1000])]
        destinations: Vec<usize>,
        /// Seconds of load per contender and size.
        #[arg(long, default_value_t = 3.0)]
        seconds: f64,
        /// Runs of each contender; the table shows the median.
        #[arg(long, default_value_t = 3)]
        repeats: usize,
        /// Folder for configurations, logs and the JSON figures.
        #[arg(long, default_value = "bench-out")]
        out: PathBuf,
    },
    /// Benchmark the alert path of a district with 1000 loudspeakers: accept to first
    /// packet, pre-emption, cancel, durable accepts per second, speech synthesis.
    Alerts {
        /// The emcomm daemon to run (default: next to this program).
        #[arg(long)]
        emcomm: Option<PathBuf>,
        #[arg(long, default_value_t = 1000)]
        loudspeakers: usize,
        /// Rounds of each latency figure.
        #[arg(long, default_value_t = 5)]
        rounds: usize,
        /// Folder for the configuration, logs and the JSON figures.
        #[arg(long, default_value = "bench-out")]
        out: PathBuf,
    },
    /// Benchmark the cascade sans-IO in this process: SM2 and HMAC-SM3 per second, the
    /// acceptance check, one street relay's frames per second, and one alert through a
    /// district, its streets and their villages to every delivery and acknowledgement.
    Cascade {
        /// Seconds each crypto and acceptance figure runs for.
        #[arg(long, default_value_t = 2.0)]
        seconds: f64,
        /// Alerts fed through the single street relay.
        #[arg(long, default_value_t = 2000)]
        frames: usize,
        #[arg(long, default_value_t = 10)]
        streets: usize,
        /// Villages per street.
        #[arg(long, default_value_t = 100)]
        villages: usize,
        /// Alerts sent through the cascade, one after another.
        #[arg(long, default_value_t = 20)]
        rounds: usize,
        /// Print the figures as JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Benchmark the cascade over IP in this process: the daemon's cascade task at each
    /// node of a district, its streets and their villages, on loopback UDP with SQLite
    /// stores; one alert to every village and every receipt back, per round.
    CascadeIp {
        #[arg(long, default_value_t = 10)]
        streets: usize,
        /// Villages per street.
        #[arg(long, default_value_t = 100)]
        villages: usize,
        #[arg(long, default_value_t = 10)]
        rounds: usize,
        /// Print the figures as JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Benchmark radio patching: mouth-to-ear latency on three paths, and the CPU of N
    /// patches of two radios each, the gateway pinned to CPU core 1.
    Patching {
        /// The emcomm daemon to run (default: next to this program).
        #[arg(long)]
        emcomm: Option<PathBuf>,
        /// Patch counts to measure the CPU of.
        #[arg(long, num_args = 1.., default_values_t = [1usize, 10, 50])]
        patches: Vec<usize>,
        /// Seconds of each run.
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
        /// Folder for configurations, logs and the JSON figures.
        #[arg(long, default_value = "bench-out")]
        out: PathBuf,
    },
    /// Replay the RTP streams of a pcap capture through the jitter buffer with their
    /// captured timing, and report loss, lateness, concealment and added delay.
    Replay {
        /// The capture (pcap; Ethernet, Linux cooked or raw IP).
        capture: PathBuf,
        /// Write each stream's decoded audio as WAV into this folder.
        #[arg(long)]
        wav_dir: Option<PathBuf>,
    },
    /// Record the UDP datagrams reaching an address into a pcap file, until a second
    /// of silence after the first one.
    Capture {
        /// Address to receive on (IPv4 and port).
        #[arg(long)]
        listen: SocketAddr,
        /// The pcap file to write.
        #[arg(long)]
        out: PathBuf,
        /// Stop after this much silence once datagrams have arrived.
        #[arg(long, default_value_t = 1000)]
        silence_ms: u64,
        /// Stop after this many datagrams.
        #[arg(long, default_value_t = 100_000)]
        limit: usize,
    },
    /// Simulate a radio on the gateway's external line backend: receive audio and COS
    /// from a schedule, transmit audio to a WAV file, every line change logged.
    Radio {
        /// The Unix socket to listen on (the gateway's `lines = "external:PATH"`).
        #[arg(long)]
        socket: PathBuf,
        /// The line the gateway keys PTT on: rts, dtr, or inverted !rts, !dtr.
        #[arg(long, default_value = "rts")]
        ptt: String,
        /// The line COS is raised on: dcd, cts, dsr, or inverted !dcd, ….
        #[arg(long, default_value = "dcd")]
        cos: String,
        /// A schedule file: `SECONDS ACTION` per line, from the first connection.
        #[arg(long)]
        schedule: Option<PathBuf>,
        /// Take actions typed on standard input too.
        #[arg(long)]
        stdin: bool,
        /// Write what the gateway transmits (while PTT is keyed) to this WAV file.
        #[arg(long)]
        tx_wav: Option<PathBuf>,
        /// Log every event as a JSON line to this file.
        #[arg(long)]
        log: Option<PathBuf>,
        /// Offer a command channel on a pseudo-terminal linked at this path.
        #[arg(long)]
        command_pty: Option<PathBuf>,
        /// The receive noise floor, dBFS.
        #[arg(long, default_value_t = -60.0, allow_hyphen_values = true)]
        noise_dbfs: f32,
    },
    /// Tell which satellite terminal is on a serial port, at which speed, its identity
    /// and signal.
    Probe {
        /// The serial port (or a simulator's pseudo-terminal).
        port: String,
        #[arg(long)]
        json: bool,
    },
    /// Send a test message through a satellite terminal and wait until it has left.
    Send {
        #[arg(long)]
        port: PathBuf,
        #[arg(long, value_enum)]
        kind: hw_test::terminal::TerminalKind,
        /// A BeiDou terminal's dialect: auto, 2.1, 4.0 or bds3.
        #[arg(long, default_value = "auto", value_parser = parse_dialect)]
        dialect: drivers::satellite::BeidouDialect,
        /// The card, IMEI or phone number it is for.
        #[arg(long)]
        to: String,
        /// The message, as text (GB2312 Chinese on BeiDou, UCS-2 over SMS).
        #[arg(long, conflicts_with = "hex")]
        text: Option<String>,
        /// The message, as hex bytes.
        #[arg(long)]
        hex: Option<String>,
        /// BeiDou: write the bytes in mixed form (hex led by A4) instead of code form.
        #[arg(long, requires = "hex")]
        mixed: bool,
        #[arg(long, default_value_t = 19200)]
        baud: u32,
        /// How long to wait for the terminal.
        #[arg(long, default_value_t = 180)]
        wait_s: u64,
    },
    /// Print the messages a satellite terminal receives, and its signal.
    Listen {
        #[arg(long)]
        port: PathBuf,
        #[arg(long, value_enum)]
        kind: hw_test::terminal::TerminalKind,
        /// A BeiDou terminal's dialect: auto, 2.1, 4.0 or bds3.
        #[arg(long, default_value = "auto", value_parser = parse_dialect)]
        dialect: drivers::satellite::BeidouDialect,
        #[arg(long, default_value_t = 19200)]
        baud: u32,
        /// Stop after this many seconds.
        #[arg(long, default_value_t = 600)]
        seconds: u64,
        /// Stop after this many messages.
        #[arg(long)]
        count: Option<usize>,
    },
    /// Simulate a satellite terminal on a pseudo-terminal.
    #[command(subcommand)]
    Sim(SimCommand),
    /// Relay UDP between two addresses with loss, duplication, delay and cuts.
    Faults {
        /// Where the sending side sends.
        #[arg(long)]
        listen: SocketAddr,
        /// Where the datagrams go on; its answers go back to the last sender.
        #[arg(long)]
        to: SocketAddr,
        /// Probability a datagram is lost, 0 to 1.
        #[arg(long, default_value_t = 0.0)]
        drop: f64,
        /// Probability a datagram is sent twice, 0 to 1.
        #[arg(long, default_value_t = 0.0)]
        duplicate: f64,
        #[arg(long, default_value_t = 0)]
        delay_ms: u64,
        /// Up to this much more delay per datagram, uniformly: reorders.
        #[arg(long, default_value_t = 0)]
        jitter_ms: u64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// While this file exists, the link is cut both ways.
        #[arg(long)]
        cut_file: Option<PathBuf>,
    },
    /// The bare loop of the fan-out benchmark (run by `fanout` under taskset).
    #[command(hide = true)]
    BenchBareLoop {
        #[arg(long)]
        rounds: usize,
        /// A file with one destination address per line.
        #[arg(long)]
        destinations: PathBuf,
        /// Messages per sendmmsg call.
        #[arg(long, default_value_t = fanout::BARE_BATCH)]
        batch: usize,
    },
}

#[derive(Subcommand)]
enum SimCommand {
    /// An Iridium 9602/9603 SBD modem on its AT interface.
    Iridium {
        #[command(flatten)]
        ends: hw_test::sat_sim::SimEnds,
        /// MO status codes the next sessions with a message end with (0 sent, 32 no
        /// network, 35 busy, 15 access denied, …), in order; later sessions succeed.
        #[arg(long, value_delimiter = ',')]
        fail: Vec<u32>,
        /// Signal, 0 to 5.
        #[arg(long, default_value_t = 4)]
        csq: u8,
        /// How long an AT+SBDIX session takes, milliseconds. By default 10 s: a session
        /// acquires a satellite, registers and exchanges the MO and MT messages, several
        /// seconds to a few tens with a clear view of the sky; tests make it short.
        #[arg(long, default_value_t = 10_000)]
        session_ms: u64,
    },
    /// An SMS modem (a Tiantong-1 terminal, a cellular modem) in PDU mode.
    Sms {
        #[command(flatten)]
        ends: hw_test::sat_sim::SimEnds,
        /// The modem's own number, the sender of what it sends.
        #[arg(long, default_value = "8617400012345")]
        number: String,
        /// What AT+CGMM answers.
        #[arg(long, default_value = "Tiantong T900 satellite terminal")]
        model: String,
        /// Registration status AT+CREG? reports: 1 home, 5 roaming, 0 or 2 not registered.
        #[arg(long, default_value_t = 1)]
        registration: u8,
        /// RSSI, 0 to 31.
        #[arg(long, default_value_t = 20)]
        rssi: u8,
        /// The next this many sends fail with +CMS ERROR: 332 (network timeout).
        #[arg(long, default_value_t = 0)]
        fail_sends: u32,
        /// How long a send takes from the PDU to +CMGS, milliseconds. By default 5 s: on
        /// a geostationary satellite each round trip to the ground station takes about
        /// 0.55 s, and a send needs several (a channel, the message, the centre's
        /// acknowledgement); tests make it short.
        #[arg(long, default_value_t = 5_000)]
        send_ms: u64,
        /// How long a message to the own number takes after its +CMGS to arrive (+CMTI),
        /// milliseconds: by default 5 s, the centre sending it back over the satellite.
        #[arg(long, default_value_t = 5_000)]
        delivery_ms: u64,
        /// The status of the report a send that asks for one gets (TP-ST): 0 received,
        /// 65 (0x41) and up a permanent error.
        #[arg(long, default_value_t = 0)]
        report_status: u8,
    },
    /// A BeiDou RDSS terminal speaking the 2.1, 4.0 or BDS-3 dialect.
    Beidou {
        #[command(flatten)]
        ends: hw_test::sat_sim::SimEnds,
        /// The dialect: 2.1 (NMEA-style sentences), 4.0 (binary BD-1 frames) or bds3.
        #[arg(long, default_value = "2.1", value_parser = parse_dialect)]
        dialect: drivers::satellite::BeidouDialect,
        /// The card's ID.
        #[arg(long, default_value = "0166166")]
        card: String,
        /// Comm level 1 to 4 (capacity 110, 408, 628, 848 bits).
        #[arg(long, default_value_t = 3)]
        comm_level: u8,
        /// The service interval enforced, seconds.
        #[arg(long, default_value_t = 60)]
        interval_s: u64,
        /// The service interval the card reports, if different.
        #[arg(long)]
        report_interval_s: Option<u64>,
        /// No satellite in view: beams at 0, every send refused.
        #[arg(long)]
        no_signal: bool,
        /// Transmission suppressed: every send refused.
        #[arg(long)]
        suppressed: bool,
        /// Refuse the first this many sends with no cause given.
        #[arg(long, default_value_t = 0)]
        refuse_first: u32,
        /// The card last sent this many seconds before the simulator started (for
        /// another host, or before the gateway restarted): a send within the service
        /// interval of it is refused with the seconds left.
        #[arg(long)]
        sent_ago_s: Option<u64>,
        /// After the first send done to another card, report a position request
        /// refused with this many seconds to wait (2.1).
        #[arg(long)]
        position_refusal_s: Option<u64>,
        /// Send a message from the paired simulator to this card back to its sender.
        #[arg(long)]
        echo: bool,
        /// How long a message to the own card takes to come back, milliseconds.
        #[arg(long, default_value_t = 2000)]
        delivery_delay_ms: u64,
        /// How often a BDS-3 module reports its beams, milliseconds.
        #[arg(long, default_value_t = 1000)]
        beam_every_ms: u64,
        /// Run the simulator's clock this many times as fast (the seconds it names stay
        /// the card's).
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
        time_scale: u32,
        /// Give the navigation receiver's UTC time once a second (`$BDZDA`), set off the
        /// system clock by this many seconds (2.1 and BDS-3).
        #[arg(long, allow_hyphen_values = true)]
        zda_offset_s: Option<i64>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("EMCOMM_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();

    match cli.command {
        Command::Speaker {
            listen,
            codec,
            opus_payload_type,
            name,
            wav,
            play,
            stats,
            rtcp_interval_ms,
            wait_limit_s,
            silence_limit_s,
            streams,
        } => {
            let format = match codec {
                PayloadFormat::Opus { .. } => PayloadFormat::Opus {
                    payload_type: opus_payload_type,
                },
                other => other,
            };
            let options = SpeakerOptions {
                name,
                listen,
                format,
                wav,
                play,
                stats,
                rtcp_interval: Duration::from_millis(rtcp_interval_ms),
                wait_limit: Duration::from_secs(wait_limit_s),
                silence_limit: Duration::from_secs(silence_limit_s),
                streams,
            };
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("cannot start the runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match runtime.block_on(speaker_sim::run(options)) {
                Ok(report) => {
                    println!(
                        "{}: received {} lost {} late {} concealed {} fec {} jitter {:.1} ms latency p50 {} p99 {} ms, {:.1} s heard",
                        report.name,
                        report.received,
                        report.lost,
                        report.late,
                        report.concealed,
                        report.fec_recovered,
                        report.jitter_ms,
                        report
                            .latency_ms_p50
                            .map_or("-".into(), |v| format!("{v:.2}")),
                        report
                            .latency_ms_p99
                            .map_or("-".into(), |v| format!("{v:.2}")),
                        report.seconds_written
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("speaker: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::DemoAlerts { emcomm, cap, out } => {
            let (bench, emcomm) = programs(emcomm);
            let options = hw_test::demo_alerts::AlertDemoOptions {
                emcomm,
                bench,
                cap,
                out,
            };
            match hw_test::demo_alerts::run(&options) {
                Ok(outcomes) => {
                    print!("{}", hw_test::demo_alerts::table(&outcomes));
                    let passed = outcomes.iter().filter(|o| o.pass).count();
                    println!(
                        "{passed} of {} alerts played where they should, with every receipt back",
                        outcomes.len()
                    );
                    if passed == outcomes.len() {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::FAILURE
                    }
                }
                Err(e) => {
                    eprintln!("demo-alerts: {e}");
                    ExitCode::from(2)
                }
            }
        }
        Command::Alerts {
            emcomm,
            loudspeakers,
            rounds,
            out,
        } => {
            let (_, emcomm) = programs(emcomm);
            match hw_test::bench::alerts::run(&emcomm, loudspeakers, rounds, &out) {
                Ok(figures) => {
                    print!("{}", hw_test::bench::alerts::table(&figures));
                    let json = serde_json::to_string_pretty(&figures).unwrap_or_default();
                    let _ = std::fs::write(out.join("alerts.json"), json);
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("alerts: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::DemoRadio {
            emcomm,
            call,
            answer,
            out,
        } => {
            let (bench, emcomm) = programs(emcomm);
            let options = hw_test::demo_radio::RadioDemoOptions {
                emcomm,
                bench,
                call,
                answer,
                out,
            };
            match hw_test::demo_radio::run(&options) {
                Ok(verdicts) => {
                    print!("{}", hw_test::demo_radio::table(&verdicts));
                    if verdicts.iter().all(|v| v.pass) {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::FAILURE
                    }
                }
                Err(e) => {
                    eprintln!("demo-radio: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Cascade {
            seconds,
            frames,
            streets,
            villages,
            rounds,
            json,
        } => {
            use hw_test::bench::cascade;
            if streets == 0 || villages == 0 || streets > 999 || villages > 999 {
                eprintln!(
                    "cascade: --streets and --villages are 1 to 999 (three digits of a code)"
                );
                return ExitCode::from(2);
            }
            let options = cascade::CascadeOptions {
                seconds,
                frames,
                streets,
                villages,
                rounds,
            };
            report("cascade", cascade::run(&options), json, cascade::table)
        }
        Command::CascadeIp {
            streets,
            villages,
            rounds,
            json,
        } => {
            use hw_test::bench::cascade_ip;
            let options = cascade_ip::CascadeIpOptions {
                streets,
                villages,
                rounds,
            };
            report(
                "cascade-ip",
                cascade_ip::run(&options),
                json,
                cascade_ip::table,
            )
        }
        Command::Patching {
            emcomm,
            patches,
            seconds,
            out,
        } => {
            let (_, emcomm) = programs(emcomm);
            let options = hw_test::bench::radio::RadioBenchOptions {
                emcomm,
                out,
                patches,
                seconds,
            };
            let result = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| hw_test::bench::radio::RadioBenchError::Setup(e.to_string()))
                .and_then(|rt| rt.block_on(hw_test::bench::radio::run(options)));
            match result {
                Ok(report) => {
                    println!("| path | bursts | median | p95 | max |");
                    println!("|---|---|---|---|---|");
                    for l in &report.latency {
                        println!(
                            "| {} | {} | {:.1} ms | {:.1} ms | {:.1} ms |",
                            l.path, l.bursts, l.median_ms, l.p95_ms, l.max_ms
                        );
                    }
                    println!();
                    println!("| patches | CPU of one core | per patch | frames delivered |");
                    println!("|---|---|---|---|");
                    for c in &report.cpu {
                        println!(
                            "| {} | {:.1} % | {:.2} % | {:.1} % |",
                            c.patches,
                            c.cpu_percent,
                            c.cpu_percent_per_patch,
                            c.frames_delivered_percent
                        );
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("patching: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Fanout {
            emcomm,
            destinations,
            seconds,
            repeats,
            out,
        } => {
            let (bench, emcomm) = programs(emcomm);
            match fanout::run(&emcomm, &bench, &destinations, seconds, repeats, &out) {
                Ok(figures) => {
                    println!(
                        "median of {repeats} runs, each contender pinned to CPU core {}:",
                        fanout::BENCH_CORE
                    );
                    print!("{}", fanout::table(&fanout::medians(&figures)));
                    let json = serde_json::to_string_pretty(&figures).unwrap_or_default();
                    let _ = std::fs::write(out.join("fanout.json"), json);
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("fanout: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Replay { capture, wav_dir } => replay_capture(&capture, wav_dir.as_deref()),
        Command::Probe { port, json } => match hw_test::terminal::probe(&port) {
            Ok(report) => {
                if json {
                    println!(
                        "{}",
                        serde_json::to_string_pretty(&report).unwrap_or_default()
                    );
                } else {
                    println!("{port}: {} at {} baud", report.kind, report.baud);
                    println!("  identity: {}", report.identity);
                    match report.signal {
                        Some(level) => println!("  signal: {level} of 4"),
                        None => println!("  signal: not reported"),
                    }
                    for line in &report.details {
                        println!("  {line}");
                    }
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("probe: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Send {
            port,
            kind,
            dialect,
            to,
            text,
            hex,
            mixed,
            baud,
            wait_s,
        } => {
            let body = match (text, hex) {
                (Some(t), None) => drivers::satellite::bearer::Body::Text(t),
                (None, Some(h)) => match parse_hex(&h) {
                    Some(bytes) => drivers::satellite::bearer::Body::Bytes(bytes),
                    None => {
                        eprintln!("send: --hex takes pairs of hex digits");
                        return ExitCode::from(2);
                    }
                },
                _ => {
                    eprintln!("send: give --text or --hex");
                    return ExitCode::from(2);
                }
            };
            let now = std::time::Instant::now();
            let mut bearer = if mixed && kind == hw_test::terminal::TerminalKind::Beidou {
                Box::new(
                    drivers::satellite::beidou::terminal::BeidouTerminal::new(
                        dialect,
                        drivers::satellite::beidou::terminal::TerminalTiming::default(),
                        now,
                    )
                    .send_bytes_mixed(true),
                )
            } else {
                hw_test::terminal::bearer(kind, dialect, now)
            };
            let message = drivers::satellite::bearer::Outgoing {
                id: 1,
                to,
                urgency: drivers::satellite::bearer::Urgency::Normal,
                body,
            };
            if let Err(e) = bearer.enqueue(message, now) {
                eprintln!("send: {e}");
                return ExitCode::FAILURE;
            }
            let mut outcome = None;
            let result = hw_test::terminal::drive(
                &port,
                baud,
                bearer.as_mut(),
                Duration::from_secs(wait_s),
                |event| {
                    use drivers::satellite::bearer::BearerEvent;
                    match event {
                        BearerEvent::Up { identity } => println!("terminal up: {identity}"),
                        BearerEvent::Signal { level } => println!("signal: {level} of 4"),
                        BearerEvent::Down { reason } => println!("terminal down: {reason}"),
                        BearerEvent::Sent { .. } => {
                            outcome = Some(Ok(()));
                            return true;
                        }
                        BearerEvent::Delivered { .. } => println!("delivered"),
                        BearerEvent::Failed { reason, .. } => {
                            outcome = Some(Err(reason.clone()));
                            return true;
                        }
                        BearerEvent::Received { from, .. } => {
                            println!("(a message from {from} arrived meanwhile)")
                        }
                        BearerEvent::Time { .. } => {}
                    }
                    false
                },
            );
            match (result, outcome) {
                (Err(e), _) => {
                    eprintln!("send: {e}");
                    ExitCode::from(2)
                }
                (Ok(_), Some(Ok(()))) => {
                    println!("sent");
                    ExitCode::SUCCESS
                }
                (Ok(_), Some(Err(reason))) => {
                    eprintln!("send: refused: {reason}");
                    ExitCode::from(1)
                }
                (Ok(_), None) => {
                    eprintln!(
                        "send: not sent within {wait_s} s (the terminal did not answer, or kept refusing)"
                    );
                    ExitCode::FAILURE
                }
            }
        }
        Command::Listen {
            port,
            kind,
            dialect,
            baud,
            seconds,
            count,
        } => {
            let mut bearer = hw_test::terminal::bearer(kind, dialect, std::time::Instant::now());
            let mut heard = 0usize;
            let result = hw_test::terminal::drive(
                &port,
                baud,
                bearer.as_mut(),
                Duration::from_secs(seconds),
                |event| {
                    use drivers::satellite::bearer::{BearerEvent, Body};
                    match event {
                        BearerEvent::Up { identity } => println!("terminal up: {identity}"),
                        BearerEvent::Signal { level } => println!("signal: {level} of 4"),
                        BearerEvent::Down { reason } => println!("terminal down: {reason}"),
                        BearerEvent::Received { from, body } => {
                            heard += 1;
                            match body {
                                Body::Text(t) => println!("from {from}: {t}"),
                                Body::Bytes(b) => println!(
                                    "from {from}: {} bytes: {}",
                                    b.len(),
                                    b.iter().map(|x| format!("{x:02X}")).collect::<String>()
                                ),
                            }
                        }
                        _ => {}
                    }
                    count.is_some_and(|c| heard >= c)
                },
            );
            match result {
                Ok(_) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("listen: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Sim(SimCommand::Iridium {
            ends,
            fail,
            csq,
            session_ms,
        }) => {
            let options = hw_test::sat_sim::IridiumSimOptions {
                ends,
                fail,
                csq,
                session: Duration::from_millis(session_ms),
            };
            simulator_exit("sim iridium", hw_test::sat_sim::run_iridium(options))
        }
        Command::Faults {
            listen,
            to,
            drop,
            duplicate,
            delay_ms,
            jitter_ms,
            seed,
            cut_file,
        } => {
            let options = hw_test::faults::FaultProxyOptions {
                listen,
                to,
                faults: hw_test::faults::Faults {
                    drop,
                    duplicate,
                    delay: Duration::from_millis(delay_ms),
                    jitter: Duration::from_millis(jitter_ms),
                },
                seed,
                cut_file,
            };
            match hw_test::faults::run_fault_proxy(options) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("faults: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Sim(SimCommand::Sms {
            ends,
            number,
            model,
            registration,
            rssi,
            fail_sends,
            send_ms,
            delivery_ms,
            report_status,
        }) => {
            let options = hw_test::sat_sim::SmsSimOptions {
                ends,
                number,
                model,
                registration,
                rssi: rssi.min(31),
                fail_sends,
                send_delay: Duration::from_millis(send_ms),
                delivery_delay: Duration::from_millis(delivery_ms),
                report_status,
            };
            simulator_exit("sim sms", hw_test::sat_sim::run_sms(options))
        }
        Command::Sim(SimCommand::Beidou {
            ends,
            dialect,
            card,
            comm_level,
            interval_s,
            report_interval_s,
            no_signal,
            suppressed,
            refuse_first,
            sent_ago_s,
            position_refusal_s,
            echo,
            delivery_delay_ms,
            beam_every_ms,
            time_scale,
            zda_offset_s,
        }) => {
            if !(1..=4).contains(&comm_level) {
                eprintln!("sim beidou: --comm-level is 1 to 4");
                return ExitCode::from(2);
            }
            let options = hw_test::sat_sim::BeidouSimOptions {
                ends,
                dialect,
                card_id: card,
                comm_level,
                interval: Duration::from_secs(interval_s),
                report_interval: report_interval_s.map(Duration::from_secs),
                no_signal,
                suppressed,
                refuse_first,
                sent_ago: sent_ago_s.map(Duration::from_secs),
                position_refusal: position_refusal_s,
                echo,
                delivery_delay: Duration::from_millis(delivery_delay_ms),
                beam_every: Duration::from_millis(beam_every_ms),
                time_scale,
                zda_offset: zda_offset_s.map(chrono::Duration::seconds),
            };
            simulator_exit("sim beidou", hw_test::sat_sim::run_beidou(options))
        }
        Command::Radio {
            socket,
            ptt,
            cos,
            schedule,
            stdin,
            tx_wav,
            log,
            command_pty,
            noise_dbfs,
        } => {
            let options = match radio_options(&ptt, &cos, schedule.as_deref()) {
                Ok((ptt, cos, schedule)) => hw_test::radio_sim::RadioSimOptions {
                    socket,
                    ptt,
                    cos,
                    schedule,
                    stdin,
                    tx_wav,
                    log,
                    command_pty,
                    noise_dbfs,
                },
                Err(e) => {
                    eprintln!("radio: {e}");
                    return ExitCode::from(2);
                }
            };
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            let result = match runtime {
                Ok(rt) => rt.block_on(hw_test::radio_sim::run(options)),
                Err(e) => Err(hw_test::radio_sim::SimError::Setup(e.to_string())),
            };
            match result {
                Ok(report) => {
                    println!("{}", serde_json::to_string(&report).unwrap_or_default());
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("radio: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Capture {
            listen,
            out,
            silence_ms,
            limit,
        } => {
            let ready = || println!("capturing on {listen}");
            match replay::capture(
                listen,
                &out,
                Duration::from_millis(silence_ms),
                limit,
                ready,
            ) {
                Ok(count) => {
                    println!("{count} datagrams written to {}", out.display());
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("capture: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::BenchBareLoop {
            rounds,
            destinations,
            batch,
        } => {
            let addrs: Result<Vec<SocketAddr>, String> = std::fs::read_to_string(&destinations)
                .map_err(|e| format!("{}: {e}", destinations.display()))
                .and_then(|text| {
                    text.lines()
                        .map(|l| l.trim().parse().map_err(|e| format!("{l:?}: {e}")))
                        .collect()
                });
            let figures = addrs.and_then(|addrs| {
                fanout::bare_loop(&addrs, rounds, batch).map_err(|e| e.to_string())
            });
            match figures {
                Ok(f) => {
                    println!("{}", serde_json::to_string(&f).unwrap_or_default());
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("bare loop: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Demo {
            emcomm,
            audio,
            gap_ms,
            repeat,
            out,
        } => {
            let (bench, emcomm) = programs(emcomm);
            let options = DemoOptions {
                emcomm,
                bench,
                audio,
                gap: Duration::from_millis(gap_ms),
                repeat,
                out,
            };
            match demo::run(&options) {
                Ok(verdicts) => {
                    print!("{}", demo::table(&verdicts));
                    let passed = verdicts.iter().filter(|v| v.pass).count();
                    println!(
                        "{passed} of {} loudspeakers heard the whole message above threshold",
                        verdicts.len()
                    );
                    if passed == verdicts.len() {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::FAILURE
                    }
                }
                Err(e) => {
                    eprintln!("demo: {e}");
                    ExitCode::from(2)
                }
            }
        }
    }
}

/// Replays every RTP stream of a capture and prints one line of figures per stream.
fn replay_capture(capture: &std::path::Path, wav_dir: Option<&std::path::Path>) -> ExitCode {
    let streams = match replay::read_rtp_streams(capture) {
        Ok(s) if !s.is_empty() => s,
        Ok(_) => {
            eprintln!("replay: no RTP stream in {}", capture.display());
            return ExitCode::FAILURE;
        }
        Err(e) => {
            eprintln!("replay: {e}");
            return ExitCode::FAILURE;
        }
    };
    for stream in &streams {
        let format = match stream.payload_type {
            0 => PayloadFormat::Pcmu,
            8 => PayloadFormat::Pcma,
            pt => PayloadFormat::Opus { payload_type: pt },
        };
        let (report, audio) = replay::replay(stream, format);
        println!(
            "{} -> {} ssrc {:#010x} {}: {} packets over {:.2} s; lost {} late {} concealed {} fec {} \
             stretches {} shrinks {}; RFC 3550 jitter {:.1} ms; added delay mean {:.1} p50 {:.1} p99 {:.1} ms; \
             final depth {} ms",
            stream.source,
            stream.destination,
            report.ssrc,
            report.codec,
            report.packets,
            report.seconds,
            report.lost,
            report.late,
            report.concealed,
            report.fec_recovered,
            report.stretches,
            report.shrinks,
            report.rfc3550_jitter_ms,
            report.added_delay_ms_mean,
            report.added_delay_ms_p50,
            report.added_delay_ms_p99,
            report
                .final_delay_ms
                .map_or("-".into(), |d| format!("{d:.0}"))
        );
        if let Some(dir) = wav_dir {
            let path = dir.join(format!("{:08x}.wav", report.ssrc));
            let written = std::fs::create_dir_all(dir)
                .map_err(|e| e.to_string())
                .and_then(|_| {
                    codecs::write_wav_i16(&path, report.sample_rate, &audio)
                        .map_err(|e| e.to_string())
                });
            if let Err(e) = written {
                eprintln!("replay: {}: {e}", path.display());
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::SUCCESS
}

type RadioWiring = (
    drivers::serial::modem_lines::Wired<drivers::serial::modem_lines::OutputLine>,
    drivers::serial::modem_lines::Wired<drivers::serial::modem_lines::InputLine>,
    Vec<(f64, hw_test::radio_sim::Action)>,
);

/// The simulated radio's wiring and schedule from the command line.
fn radio_options(
    ptt: &str,
    cos: &str,
    schedule: Option<&std::path::Path>,
) -> Result<RadioWiring, String> {
    use drivers::serial::modem_lines::Wired;
    fn wired<L: std::str::FromStr>(text: &str) -> Result<Wired<L>, String>
    where
        L::Err: std::fmt::Display,
    {
        let (inverted, line) = match text.strip_prefix('!') {
            Some(line) => (true, line),
            None => (false, text),
        };
        let line = line.parse::<L>().map_err(|e| e.to_string())?;
        Ok(Wired { line, inverted })
    }
    let schedule = match schedule {
        None => Vec::new(),
        Some(path) => {
            let text =
                std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
            let base = path.parent().unwrap_or(std::path::Path::new("."));
            hw_test::radio_sim::parse_schedule(&text, base).map_err(|e| e.to_string())?
        }
    };
    Ok((wired(ptt)?, wired(cos)?, schedule))
}

/// Bytes from pairs of hex digits.
fn parse_hex(text: &str) -> Option<Vec<u8>> {
    let text = text.trim();
    if text.len() % 2 != 0 {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|k| {
            text.get(k..k + 2)
                .and_then(|p| u8::from_str_radix(p, 16).ok())
        })
        .collect()
}

/// This program, and the emcomm daemon: `emcomm` if given, else the one beside it.
fn programs(emcomm: Option<PathBuf>) -> (PathBuf, PathBuf) {
    let bench = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("emcomm-bench"));
    let emcomm = emcomm.unwrap_or_else(|| bench.with_file_name("emcomm"));
    (bench, emcomm)
}

/// A BeiDou dialect as a technician writes it: `2.1`, `4.0`, `bds3` (or `auto` where a
/// driver finds it out).
fn parse_dialect(text: &str) -> Result<drivers::satellite::BeidouDialect, String> {
    use drivers::satellite::BeidouDialect;
    match text.to_ascii_lowercase().as_str() {
        "auto" => Ok(BeidouDialect::Auto),
        "2.1" => Ok(BeidouDialect::V21),
        "4.0" | "bd1" => Ok(BeidouDialect::Bd1),
        "bds3" | "bds-3" => Ok(BeidouDialect::Bds3),
        _ => Err(format!("{text:?} is not a dialect: 2.1, 4.0, bds3 or auto")),
    }
}

/// A simulator's exit: success when it ran until stopped, failure with its error.
fn simulator_exit(what: &str, result: Result<(), hw_test::sat_sim::SatSimError>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{what}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Prints a benchmark's figures, as JSON or as its table, or its error: the exit code.
fn report<F: serde::Serialize, E: std::fmt::Display>(
    name: &str,
    result: Result<F, E>,
    json: bool,
    table: fn(&F) -> String,
) -> ExitCode {
    match result {
        Ok(figures) if json => {
            println!(
                "{}",
                serde_json::to_string_pretty(&figures).unwrap_or_default()
            );
            ExitCode::SUCCESS
        }
        Ok(figures) => {
            print!("{}", table(&figures));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{name}: {e}");
            ExitCode::FAILURE
        }
    }
}
