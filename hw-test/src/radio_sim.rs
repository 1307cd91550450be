//! A radio in software, on the far side of the gateway's external line backend
//! ([`drivers::radio::external`]).
//!
//! The simulator listens on a Unix socket, as a radio interface would sit on a serial
//! port and a sound card. It is the paced audio device: every 20 ms it sends one frame
//! of receive audio (silence, or a file while it "hears" a transmission) and it drives
//! COS. It owns the gateway's output lines, so it records every change of them with
//! its time, whatever happens to the gateway; when the connection drops it drops both
//! lines, as a serial port's kernel driver does on the last close (HUPCL), and logs
//! that too. What the gateway transmits while PTT is keyed goes to a WAV file.
//!
//! The radio's behaviour comes from a schedule of timed actions, counted from the
//! first connection (so a slow start of the gateway does not shift it) or typed on
//! standard input without a time:
//!
//! | action | what the radio does |
//! |---|---|
//! | `transmit FILE` | raises COS and sends FILE as receive audio, then drops COS |
//! | `carrier on` / `carrier off` | raises or drops COS (a stuck carrier: `on` alone) |
//! | `blip MS` | COS for MS milliseconds over noise: a squelch blip |
//! | `dtmf KEYS` | COS, the keys as 100 ms tones with 100 ms gaps, COS dropped |
//! | `lose-audio` | reports its sound card gone (the gateway must release PTT) |
//! | `hang-up` | closes the connection (the USB adapter unplugged) |
//! | `exit` | writes its files and exits |
//!
//! A command channel can be offered on a pseudo-terminal (`--command-pty LINK`): what
//! the gateway writes there (talkgroup selection, PTT commands) is logged.
//!
//! Every log line is one JSON object with `t_ms`, milliseconds since the simulator
//! started, and an `event`.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use codecs::audio_file::{WavSink, read_audio};
use drivers::radio::external::{Decoder, FRAME_SAMPLES, Message};
use drivers::serial::modem_lines::{InputLevels, InputLine, OutputLevels, OutputLine, Wired};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixListener;
use tokio::net::unix::OwnedWriteHalf;

/// Why the simulator could not run.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("schedule line {line}: {reason}")]
    Schedule { line: usize, reason: String },
    #[error("{0}")]
    Audio(#[from] codecs::AudioFileError),
    #[error("{0}")]
    Setup(String),
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> SimError {
    let what = what.into();
    move |source| SimError::Io { what, source }
}

/// How the simulated radio is wired and what it does.
#[derive(Debug, Clone)]
pub struct RadioSimOptions {
    pub socket: PathBuf,
    /// The line the gateway keys PTT on, and its polarity.
    pub ptt: Wired<OutputLine>,
    /// The line the radio raises for COS, and its polarity.
    pub cos: Wired<InputLine>,
    /// Timed actions: seconds after the first connection, and the action.
    pub schedule: Vec<(f64, Action)>,
    /// Take actions from standard input too.
    pub stdin: bool,
    /// Where transmitted audio goes.
    pub tx_wav: Option<PathBuf>,
    /// The JSON-lines log of everything that happened.
    pub log: Option<PathBuf>,
    /// Offer a command channel on a pseudo-terminal linked here.
    pub command_pty: Option<PathBuf>,
    /// RMS level of the receive noise floor, in dBFS.
    pub noise_dbfs: f32,
}

/// One thing the radio does.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Transmit(PathBuf),
    Carrier(bool),
    Blip(Duration),
    Dtmf(String),
    LoseAudio,
    HangUp,
    Exit,
}

impl Action {
    /// Parses one action as the module documentation lists them.
    pub fn parse(text: &str) -> Result<Action, String> {
        let mut words = text.split_whitespace();
        let verb = words.next().unwrap_or_default();
        let rest: Vec<&str> = words.collect();
        let arg = rest.join(" ");
        match (verb, rest.as_slice()) {
            ("transmit", [_, ..]) => Ok(Action::Transmit(PathBuf::from(arg))),
            ("carrier", ["on"]) => Ok(Action::Carrier(true)),
            ("carrier", ["off"]) => Ok(Action::Carrier(false)),
            ("blip", [ms]) => ms
                .parse()
                .map(|ms| Action::Blip(Duration::from_millis(ms)))
                .map_err(|_| format!("blip takes milliseconds, not {ms:?}")),
            ("dtmf", [keys]) if keys.chars().all(|c| KEYS.contains(c)) => {
                Ok(Action::Dtmf((*keys).to_owned()))
            }
            ("lose-audio", []) => Ok(Action::LoseAudio),
            ("hang-up", []) => Ok(Action::HangUp),
            ("exit", []) => Ok(Action::Exit),
            _ => Err(format!(
                "unknown action {text:?}: transmit FILE, carrier on|off, blip MS, dtmf KEYS, lose-audio, hang-up, exit"
            )),
        }
    }
}

const KEYS: &str = "0123456789*#ABCD";

/// Reads a schedule: one `SECONDS ACTION` a line; a line starting with `#` is a comment.
pub fn parse_schedule(text: &str, base: &Path) -> Result<Vec<(f64, Action)>, SimError> {
    let mut schedule = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = |reason: String| SimError::Schedule {
            line: n + 1,
            reason,
        };
        let (at, action) = line
            .split_once(char::is_whitespace)
            .ok_or_else(|| bad("expected SECONDS ACTION".into()))?;
        let at: f64 = at
            .parse()
            .ok()
            .filter(|t: &f64| t.is_finite() && *t >= 0.0)
            .ok_or_else(|| bad(format!("{at:?} is not a time in seconds")))?;
        let mut action = Action::parse(action.trim()).map_err(bad)?;
        if let Action::Transmit(path) = &action
            && path.is_relative()
        {
            action = Action::Transmit(base.join(path));
        }
        schedule.push((at, action));
    }
    schedule.sort_by(|a, b| a.0.total_cmp(&b.0));
    Ok(schedule)
}

/// What the simulator reports when it stops.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RadioReport {
    pub connections: u32,
    /// Transmissions: PTT keyed to released, in ms since start.
    pub overs: Vec<(u64, u64)>,
    /// Frames transmitted in each over, in the order of `overs`: the transmit WAV file
    /// holds them one over after the other.
    pub over_frames: Vec<u64>,
    pub tx_frames: u64,
    /// Frames the gateway sent while PTT was not keyed: a radio would not send them.
    pub frames_while_unkeyed: u64,
    pub commands: Vec<String>,
}

struct Log {
    start: Instant,
    file: Option<BufWriter<File>>,
}

impl Log {
    fn write(&mut self, mut entry: serde_json::Value) {
        let t_ms = self.start.elapsed().as_millis() as u64;
        entry["t_ms"] = json!(t_ms);
        if let Some(file) = &mut self.file {
            let _ = writeln!(file, "{entry}");
            let _ = file.flush();
        }
    }
}

/// The receive side's program, one frame at a time.
struct Receiver {
    cos: bool,
    /// Frames still to send as receive audio, then COS drops (when `drop_after`).
    queue: VecDeque<Vec<i16>>,
    drop_after: bool,
    noise: f32,
    rng: u32,
}

impl Receiver {
    fn next_frame(&mut self) -> Vec<i16> {
        match self.queue.pop_front() {
            Some(frame) => frame,
            None => (0..FRAME_SAMPLES).map(|_| self.noise_sample()).collect(),
        }
    }

    fn noise_sample(&mut self) -> i16 {
        // xorshift: cheap, deterministic noise for the squelch floor.
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 17;
        self.rng ^= self.rng << 5;
        let unit = (self.rng as f32 / u32::MAX as f32) * 2.0 - 1.0;
        (unit * self.noise * 1.732 * 32767.0) as i16
    }
}

/// Runs the simulator until `exit`, SIGINT or SIGTERM.
pub async fn run(options: RadioSimOptions) -> Result<RadioReport, SimError> {
    let start = Instant::now();
    let file = match &options.log {
        Some(path) => Some(BufWriter::new(
            File::create(path).map_err(io(format!("creating {}", path.display())))?,
        )),
        None => None,
    };
    let log = Arc::new(Mutex::new(Log { start, file }));
    let report = Arc::new(Mutex::new(RadioReport::default()));
    let write_log = |entry: serde_json::Value| {
        if let Ok(mut log) = log.lock() {
            log.write(entry);
        }
    };

    let _ = std::fs::remove_file(&options.socket);
    let listener = UnixListener::bind(&options.socket)
        .map_err(io(format!("listening on {}", options.socket.display())))?;
    if let Some(link) = &options.command_pty {
        command_channel(link, log.clone(), report.clone())?;
    }
    let mut tx_wav = match &options.tx_wav {
        Some(path) => Some(WavSink::create(path, 48_000)?),
        None => None,
    };
    println!("radio simulator listening on {}", options.socket.display());

    let mut receiver = Receiver {
        cos: false,
        queue: VecDeque::new(),
        drop_after: false,
        noise: 10f32.powf(options.noise_dbfs / 20.0),
        rng: 0x1234_5678,
    };
    let mut schedule: VecDeque<(f64, Action)> = options.schedule.clone().into();
    let mut schedule_origin: Option<Instant> = None;
    let mut writer: Option<OwnedWriteHalf> = None;
    let mut reader: Option<tokio::net::unix::OwnedReadHalf> = None;
    let mut decoder = Decoder::new();
    let mut outputs = OutputLevels::default();
    let mut keyed_since: Option<u64> = None;
    let mut stdin = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    let mut stdin_open = options.stdin;
    let mut pacer = tokio::time::interval(Duration::from_millis(20));
    pacer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(io("SIGTERM handler"))?;
    let mut buffer = vec![0u8; 8192];
    let now_ms = || start.elapsed().as_millis() as u64;

    let ptt_of = |levels: OutputLevels| levels.get(options.ptt.line) != options.ptt.inverted;
    let cos_levels = |cos: bool| {
        let mut levels = InputLevels::default();
        let level = cos != options.cos.inverted;
        match options.cos.line {
            InputLine::Cts => levels.cts = level,
            InputLine::Dsr => levels.dsr = level,
            InputLine::Dcd => levels.dcd = level,
        }
        levels
    };

    loop {
        let next_action = match (schedule_origin, schedule.front()) {
            (Some(origin), Some((at, _))) => Some(origin + Duration::from_secs_f64(*at)),
            _ => None,
        };
        let mut actions: Vec<Action> = Vec::new();
        let mut hung_up = false;
        tokio::select! {
            accepted = listener.accept(), if writer.is_none() => {
                let (stream, _) = accepted.map_err(io("accepting"))?;
                let (r, mut w) = stream.into_split();
                let _ = w.write_all(&Message::Inputs(cos_levels(receiver.cos)).encode()).await;
                writer = Some(w);
                reader = Some(r);
                decoder = Decoder::new();
                if let Ok(mut r) = report.lock() {
                    r.connections += 1;
                }
                schedule_origin.get_or_insert_with(Instant::now);
                write_log(json!({"event": "connected"}));
            }
            read = read_some(&mut reader, &mut buffer) => {
                match read {
                    Ok(0) | Err(_) => hung_up = true,
                    Ok(n) => match decoder.push(&buffer[..n]) {
                        Err(e) => {
                            write_log(json!({"event": "framing-error", "error": e.to_string()}));
                            hung_up = true;
                        }
                        Ok(messages) => for message in messages {
                            match message {
                                Message::Hello { port } => write_log(json!({"event": "hello", "port": port})),
                                Message::Outputs(levels) => {
                                    let was = ptt_of(outputs);
                                    outputs = levels;
                                    let ptt = ptt_of(outputs);
                                    write_log(json!({"event": "lines", "rts": levels.rts, "dtr": levels.dtr, "ptt": ptt}));
                                    note_ptt(was, ptt, &mut keyed_since, now_ms(), &report);
                                }
                                Message::Audio(frame) => {
                                    if ptt_of(outputs) {
                                        if let Some(wav) = &mut tx_wav {
                                            wav.write(&frame)?;
                                        }
                                        if let Ok(mut r) = report.lock() {
                                            r.tx_frames += 1;
                                            if let Some(n) = r.over_frames.last_mut() {
                                                *n += 1;
                                            }
                                        }
                                    } else if let Ok(mut r) = report.lock() {
                                        r.frames_while_unkeyed += 1;
                                    }
                                }
                                other => write_log(json!({"event": "unexpected", "message": format!("{other:?}")})),
                            }
                        }
                    },
                }
            }
            _ = pacer.tick() => {
                let frame = receiver.next_frame();
                if receiver.queue.is_empty() && receiver.drop_after {
                    receiver.drop_after = false;
                    actions.push(Action::Carrier(false));
                }
                if let Some(w) = &mut writer && w.write_all(&Message::Audio(frame).encode()).await.is_err() {
                    hung_up = true;
                }
            }
            _ = sleep_until(next_action) => {
                if let Some((_, action)) = schedule.pop_front() {
                    actions.push(action);
                }
            }
            line = stdin.next_line(), if stdin_open => match line {
                Ok(Some(text)) if !text.trim().is_empty() => match Action::parse(text.trim()) {
                    Ok(action) => actions.push(action),
                    Err(e) => eprintln!("{e}"),
                },
                Ok(Some(_)) => {}
                _ => stdin_open = false,
            },
            _ = term.recv() => actions.push(Action::Exit),
            _ = tokio::signal::ctrl_c() => actions.push(Action::Exit),
        }

        let mut exit = false;
        for action in actions {
            write_log(json!({"event": "action", "action": format!("{action:?}")}));
            match action {
                Action::Carrier(on) => {
                    receiver.cos = on;
                    if let Some(w) = &mut writer {
                        let _ = w.write_all(&Message::Inputs(cos_levels(on)).encode()).await;
                    }
                    write_log(json!({"event": "cos", "on": on}));
                }
                Action::Transmit(path) => {
                    let audio = read_audio(&path)
                        .map_err(|e| e.to_string())
                        .and_then(|a| a.to_rate(48_000).map_err(|e| e.to_string()));
                    let samples = match audio {
                        Ok(audio) => audio.to_i16(),
                        Err(e) => {
                            // A typing error must not hang the radio up.
                            eprintln!("transmit: {e}");
                            write_log(json!({"event": "error", "error": e}));
                            continue;
                        }
                    };
                    receiver
                        .queue
                        .extend(samples.chunks(FRAME_SAMPLES).map(|c| {
                            let mut frame = c.to_vec();
                            frame.resize(FRAME_SAMPLES, 0);
                            frame
                        }));
                    receiver.drop_after = true;
                    set_cos(&mut receiver, &mut writer, cos_levels(true)).await;
                    write_log(json!({"event": "cos", "on": true}));
                }
                Action::Blip(length) => {
                    let frames = (length.as_millis() / 20).max(1) as usize;
                    let loud: Vec<Vec<i16>> = (0..frames)
                        .map(|_| {
                            (0..FRAME_SAMPLES)
                                .map(|_| receiver.noise_sample().saturating_mul(20))
                                .collect()
                        })
                        .collect();
                    receiver.queue.extend(loud);
                    receiver.drop_after = true;
                    set_cos(&mut receiver, &mut writer, cos_levels(true)).await;
                    write_log(json!({"event": "cos", "on": true}));
                }
                Action::Dtmf(keys) => {
                    for key in keys.chars() {
                        receiver.queue.extend(dtmf_frames(key));
                    }
                    receiver.drop_after = true;
                    set_cos(&mut receiver, &mut writer, cos_levels(true)).await;
                    write_log(json!({"event": "cos", "on": true}));
                }
                Action::LoseAudio => {
                    if let Some(w) = &mut writer {
                        let lost = Message::AudioLost {
                            reason: "simulated sound card unplugged".into(),
                        };
                        let _ = w.write_all(&lost.encode()).await;
                    }
                }
                Action::HangUp => hung_up = true,
                Action::Exit => exit = true,
            }
        }
        if hung_up && writer.is_some() {
            writer = None;
            reader = None;
            // The kernel drops both output lines on the last close (HUPCL).
            let was = ptt_of(outputs);
            outputs = OutputLevels::default();
            let ptt = ptt_of(outputs);
            write_log(json!({"event": "closed", "rts": false, "dtr": false, "ptt": ptt}));
            note_ptt(was, ptt, &mut keyed_since, now_ms(), &report);
        }
        if exit {
            break;
        }
    }

    if let Some(wav) = tx_wav {
        wav.finish()?;
    }
    let _ = std::fs::remove_file(&options.socket);
    let report = report.lock().map(|r| r.clone()).unwrap_or_default();
    write_log(json!({"event": "exit", "report": report}));
    Ok(report)
}

/// Reads from the connection, or waits for ever when there is none.
async fn read_some(
    reader: &mut Option<tokio::net::unix::OwnedReadHalf>,
    buffer: &mut [u8],
) -> std::io::Result<usize> {
    match reader {
        Some(r) => r.read(buffer).await,
        None => std::future::pending().await,
    }
}

async fn set_cos(
    receiver: &mut Receiver,
    writer: &mut Option<OwnedWriteHalf>,
    levels: InputLevels,
) {
    receiver.cos = true;
    if let Some(w) = writer {
        let _ = w.write_all(&Message::Inputs(levels).encode()).await;
    }
}

fn note_ptt(
    was: bool,
    now: bool,
    keyed_since: &mut Option<u64>,
    t_ms: u64,
    report: &Mutex<RadioReport>,
) {
    match (was, now) {
        (false, true) => {
            *keyed_since = Some(t_ms);
            if let Ok(mut r) = report.lock() {
                r.over_frames.push(0);
            }
        }
        (true, false) => {
            if let (Some(since), Ok(mut r)) = (keyed_since.take(), report.lock()) {
                r.overs.push((since, t_ms));
            }
        }
        _ => {}
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
        None => std::future::pending().await,
    }
}

/// One key as 100 ms of its two tones at -10 dBFS each, then 100 ms of silence.
fn dtmf_frames(key: char) -> Vec<Vec<i16>> {
    const ROWS: [f64; 4] = [697.0, 770.0, 852.0, 941.0];
    const COLUMNS: [f64; 4] = [1209.0, 1336.0, 1477.0, 1633.0];
    let pad = ["123A", "456B", "789C", "*0#D"];
    let Some((row, column)) = pad
        .iter()
        .enumerate()
        .find_map(|(r, keys)| keys.find(key).map(|c| (r, c)))
    else {
        return Vec::new();
    };
    let amplitude = 32767.0 * 10f64.powf(-10.0 / 20.0);
    let tone: Vec<i16> = (0..4800)
        .map(|n| {
            let t = n as f64 / 48_000.0;
            let s = (std::f64::consts::TAU * ROWS[row] * t).sin()
                + (std::f64::consts::TAU * COLUMNS[column] * t).sin();
            (s * amplitude) as i16
        })
        .collect();
    let mut frames: Vec<Vec<i16>> = tone.chunks(FRAME_SAMPLES).map(<[i16]>::to_vec).collect();
    frames.extend((0..5).map(|_| vec![0; FRAME_SAMPLES]));
    frames
}

/// Offers a command channel on a pseudo-terminal whose device is linked at `link`,
/// logging every line written to it.
fn command_channel(
    link: &Path,
    log: Arc<Mutex<Log>>,
    report: Arc<Mutex<RadioReport>>,
) -> Result<(), SimError> {
    use std::io::Read;
    let (mut master, slave) =
        crate::sat_sim::open_pty(link).map_err(|e| SimError::Setup(e.to_string()))?;
    std::thread::spawn(move || {
        // The simulator keeps the device side open, so the channel survives the
        // gateway closing and opening it again.
        let _keep = slave;
        let mut pending = Vec::new();
        let mut buffer = [0u8; 256];
        while let Ok(n) = master.read(&mut buffer) {
            if n == 0 {
                break;
            }
            pending.extend_from_slice(&buffer[..n]);
            while let Some(end) = pending.iter().position(|b| *b == b'\r' || *b == b'\n') {
                let line: Vec<u8> = pending.drain(..=end).collect();
                let text = String::from_utf8_lossy(&line).trim().to_string();
                if text.is_empty() {
                    continue;
                }
                if let Ok(mut log) = log.lock() {
                    log.write(json!({"event": "command", "text": text}));
                }
                if let Ok(mut r) = report.lock() {
                    r.commands.push(text);
                }
            }
        }
    });
    Ok(())
}
