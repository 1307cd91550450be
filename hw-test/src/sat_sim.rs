//! Satellite terminals in software, on a pseudo-terminal, for the gateway's drivers and
//! the technician's tools to talk to as they would to a real one.
//!
//! `emcomm-bench sim beidou --link PATH [--dialect 2.1|4.0|bds3]` is a BeiDou RDSS
//! terminal. It speaks one dialect and leaves the others' commands unanswered, as a
//! real one does: it answers a card query (`$CCICA`, `$CCICR`, or an `ICJC` frame) with
//! its card, reports beams (2.1 when asked with `$CCRMO,BSI`; BDS-3 every second by
//! itself), and takes a send (`$CCTXA`, `$CCTCQ`, or a `TXSQ` frame):
//!
//! * one of the first `--refuse-first` sends: refused with no cause given (2.1: not
//!   done, rate OK, nothing to wait; 4.0: flag 1, failed; BDS-3, whose refusals always
//!   name a reason: 4, power not locked), as the 2.1 transcript's terminal refused its
//!   first;
//! * sent earlier than the service interval after the last one: refused, with the
//!   seconds still to wait; `--sent-ago-s` says the card last sent that long before
//!   the simulator started (for another host, or before the gateway restarted);
//! * with no signal (`--no-signal`) or suppressed (`--suppressed`): refused;
//! * otherwise done, and the message delivered: to its own card after the delivery
//!   delay (`--delivery-delay-ms`, 2 s by default), or to a paired simulator (`--peer`
//!   an address where the other listens with `--listen`, over UDP on the loopback),
//!   each side in its own dialect, so a 2.1 terminal can message a 4.0 one. With
//!   `--echo`, a message from the paired simulator to this card goes back to its
//!   sender, as an echo service answers. With `--position-refusal-s`, the first send
//!   done to another card is followed by a position request refused with that many
//!   seconds to wait (`$BDFKI,DWA,…`), as the transcript's terminal reported.
//!
//! The card's service interval is configurable (`--interval-s`, 60 by default; 1 in
//! tests), and so is the interval it *reports* (`--report-interval-s`), so a test can
//! make a driver send too early and meet the refusal. A BDS-3 module reports its beams
//! every `--beam-every-ms` (1000 by default). `--time-scale N` runs the simulator's
//! clock N times as fast: the interval it enforces, the beam reports and the delivery
//! delay pass N times sooner while the seconds it names stay the card's, so a test
//! whose driver runs on a clock as fast keeps a real card's 40 s without waiting them.
//! Every sentence or frame in and out is logged as a JSON line with its time.
//!
//! `emcomm-bench sim iridium --link PATH` is a 9602/9603 SBD modem: `AT`, `AT&K0`,
//! binary (`AT+SBDWB`, checking the sum) and text (`AT+SBDWT`) writes, sessions
//! (`AT+SBDIX`) that take `--session-ms` (10 s by default) and end with the MO status
//! codes given by `--fail` before they succeed (a session that fails reports MT status 2:
//! it could not check the mailbox), `AT+SBDRB` and `AT+SBDRT`, `AT+SBDD0` and `AT+CSQ`.
//! Paired like the BeiDou simulator, a message sent by one arrives at the other as an MT
//! message announced by `SBDRING`.
//!
//! `emcomm-bench sim sms --link PATH` is an SMS modem in PDU mode (TS 27.005): start-up
//! commands, `AT+CREG?` with a configurable registration, `AT+CSQ`, `AT+CMGS` with its
//! `> ` prompt and the PDU up to Ctrl-Z, answered after `--send-ms` (5 s by default;
//! sends that fail with `+CMS ERROR` on demand), and a store of received messages
//! announced by `+CMTI`, read with `AT+CMGR`, listed with `AT+CMGL` and deleted with
//! `AT+CMGD`. A sent SUBMIT becomes the DELIVER the recipient gets, `--delivery-ms` after
//! its `+CMGS`: stored here when it is for the own number, or at the paired simulator.
//! A SUBMIT that asks for a status report (TP-SRR) gets one then, with the status
//! `--report-status` (0, received, by default): as `+CDS` or stored and announced with
//! `+CDSI`, as `AT+CNMI`'s fourth value asks, or not at all.

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use drivers::satellite::BeidouDialect;
use drivers::satellite::beidou::bd1::{self, Frame, FrameReader};
use drivers::satellite::beidou::nmea::{Sentence, SentenceReader};
use drivers::satellite::beidou::payload;
use serde_json::json;

/// Why a simulator could not run.
#[derive(Debug, thiserror::Error)]
pub enum SatSimError {
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Setup(String),
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> SatSimError {
    let what = what.into();
    move |source| SatSimError::Io { what, source }
}

/// Where a simulator is reached, whom it pairs with, and where it logs.
#[derive(Debug, Clone, clap::Args)]
pub struct SimEnds {
    /// Where to link the pseudo-terminal's device (the port the driver opens).
    #[arg(long)]
    pub link: PathBuf,
    /// A paired simulator's --listen address: what this one sends arrives there.
    #[arg(long)]
    pub peer: Option<SocketAddr>,
    /// Where messages from a paired simulator arrive.
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// Log every command and answer as a JSON line to this file.
    #[arg(long)]
    pub log: Option<PathBuf>,
}

/// A simulated BeiDou terminal.
#[derive(Debug, Clone)]
pub struct BeidouSimOptions {
    /// The pseudo-terminal, the pairing and the log.
    pub ends: SimEnds,
    /// The dialect it speaks: 2.1, 4.0 or BDS-3 (not `Auto`).
    pub dialect: BeidouDialect,
    pub card_id: String,
    pub comm_level: u8,
    /// The interval the simulator enforces.
    pub interval: Duration,
    /// The interval its card reports, if not the one it enforces.
    pub report_interval: Option<Duration>,
    pub no_signal: bool,
    pub suppressed: bool,
    /// The first this many sends are refused with no cause given.
    pub refuse_first: u32,
    /// The card last sent this long (on the card's clock) before the simulator started.
    pub sent_ago: Option<Duration>,
    /// After the first send done to another card, a position request is reported
    /// refused with this many seconds to wait.
    pub position_refusal: Option<u64>,
    /// A message from the paired simulator to this card goes back to its sender.
    pub echo: bool,
    /// How long a message to the own card takes to come back.
    pub delivery_delay: Duration,
    /// How often a BDS-3 module reports its beams by itself.
    pub beam_every: Duration,
    /// The simulator's clock runs this many times as fast (at least 1).
    pub time_scale: u32,
    /// Give UTC once a second as a navigation receiver does (`$BDZDA`), this far off the
    /// system clock; a sentence dialect only.
    pub zda_offset: Option<chrono::Duration>,
}

enum Input {
    Terminal(Vec<u8>),
    Peer(Vec<u8>),
    Closed,
}

/// A message between simulated terminals, whatever dialect each speaks: its form as
/// 2.1 numbers it (0 Chinese, 1 code, 2 mixed) and its content as bytes (GB2312 for
/// Chinese, the marker A4 first for mixed).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Relayed {
    from: String,
    to: String,
    form: u8,
    content: Vec<u8>,
}

/// A send the simulator took from the driver.
struct Send {
    to: String,
    form: u8,
    content: Vec<u8>,
}

/// Why a send was refused.
#[derive(Debug, Clone, Copy)]
enum Refused {
    /// Too early: this many seconds to wait.
    Rate(u64),
    /// Not done, for no stated reason.
    Unexplained,
    Suppressed,
    NoSignal,
    /// The command did not parse.
    Malformed,
}

/// Runs the simulator until its pseudo-terminal's reader fails or the process is
/// stopped.
pub fn run_beidou(options: BeidouSimOptions) -> Result<(), SatSimError> {
    if options.dialect == BeidouDialect::Auto {
        return Err(SatSimError::Setup(
            "a simulated terminal speaks one dialect: 2.1, 4.0 or bds3".into(),
        ));
    }
    let address = if options.dialect == BeidouDialect::Bd1 {
        Some(
            options
                .card_id
                .parse::<u32>()
                .ok()
                .filter(|a| *a < 1 << 24)
                .ok_or_else(|| {
                    SatSimError::Setup(format!(
                        "a 4.0 card ID is a number below 16777216, not {:?}",
                        options.card_id
                    ))
                })?,
        )
    } else {
        None
    };
    let mut log = SimLog::open(options.ends.log.as_deref())?;
    let mut note = |entry: serde_json::Value| log.note(entry);
    let SimIo {
        mut writer,
        inputs: rx,
        peer_socket,
        _slave,
    } = SimIo::start(&options.ends)?;
    println!(
        "beidou simulator card {} ({}) on {}",
        options.card_id,
        dialect_name(options.dialect),
        options.ends.link.display()
    );

    let mut sentences = SentenceReader::new();
    let mut frames = FrameReader::new();
    let scale = options.time_scale.max(1);
    let mut last_sent: Option<Instant> = options
        .sent_ago
        .and_then(|ago| Instant::now().checked_sub(ago / scale));
    let mut refusals_left = options.refuse_first;
    let mut position_refusal = options.position_refusal;
    // A BDS-3 module reports beam power by itself.
    let mut beam_every =
        (options.dialect == BeidouDialect::Bds3).then(|| options.beam_every / scale);
    let mut next_beam = beam_every.map(|_| Instant::now());
    let mut next_zda =
        (options.zda_offset.is_some() && options.dialect != BeidouDialect::Bd1).then(Instant::now);
    let mut pending: Vec<(Instant, Relayed)> = Vec::new();
    let mut write = |bytes: Vec<u8>, note: &mut dyn FnMut(serde_json::Value)| {
        note(json!({"event": "out", "sentence": shown(&bytes)}));
        let _ = writer.write_all(&bytes);
    };

    loop {
        let now = Instant::now();
        let wait = [next_beam, next_zda, pending.iter().map(|(at, _)| *at).min()]
            .into_iter()
            .flatten()
            .min()
            .map_or(Duration::from_millis(200), |at| {
                at.saturating_duration_since(now)
            });
        let input = match rx.recv_timeout(wait.min(Duration::from_millis(200))) {
            Ok(input) => Some(input),
            Err(mpsc::RecvTimeoutError::Timeout) => None,
            Err(mpsc::RecvTimeoutError::Disconnected) => return Ok(()),
        };
        let now = Instant::now();
        match input {
            Some(Input::Terminal(bytes)) => {
                let commands = match address {
                    Some(_) => frames
                        .push(&bytes)
                        .into_iter()
                        .map(Command::Frame)
                        .collect(),
                    None => sentences
                        .push(&bytes)
                        .into_iter()
                        .flatten()
                        .map(Command::Sentence)
                        .collect::<Vec<_>>(),
                };
                for command in commands {
                    note(json!({"event": "in", "sentence": command.to_string()}));
                    match command.read(options.dialect) {
                        Asked::Card => write(card(&options, address), &mut note),
                        Asked::Beams(seconds) => {
                            beam_every =
                                (seconds > 0).then(|| Duration::from_secs(seconds) / scale);
                            next_beam = beam_every.map(|_| now);
                        }
                        Asked::Send(send) => {
                            let answer = if refusals_left > 0 && send.is_some() {
                                refusals_left -= 1;
                                Err(Refused::Unexplained)
                            } else {
                                transmit(&options, send.as_ref(), &mut last_sent, now)
                            };
                            write(feedback(&options, address, answer), &mut note);
                            if let (Ok(_), Some(send)) = (answer, send) {
                                let message = Relayed {
                                    from: options.card_id.clone(),
                                    to: send.to,
                                    form: send.form,
                                    content: send.content,
                                };
                                let own = same_card(&message.to, &options.card_id);
                                if !own
                                    && options.dialect == BeidouDialect::V21
                                    && let Some(wait) = position_refusal.take()
                                {
                                    write(position_refused(wait), &mut note);
                                }
                                if own {
                                    pending.push((now + options.delivery_delay / scale, message));
                                } else if let (Some(socket), Some(addr)) =
                                    (peer_socket.as_ref(), options.ends.peer)
                                    && let Ok(datagram) = serde_json::to_vec(&message)
                                {
                                    let _ = socket.send_to(&datagram, addr);
                                }
                            }
                        }
                        Asked::Nothing => {}
                    }
                }
            }
            Some(Input::Peer(bytes)) => {
                note(json!({"event": "from-peer", "bytes": bytes.len()}));
                if let Ok(message) = serde_json::from_slice::<Relayed>(&bytes) {
                    if options.echo
                        && same_card(&message.to, &options.card_id)
                        && let (Some(socket), Some(addr)) =
                            (peer_socket.as_ref(), options.ends.peer)
                    {
                        let back = Relayed {
                            from: options.card_id.clone(),
                            to: message.from.clone(),
                            form: message.form,
                            content: message.content.clone(),
                        };
                        if let Ok(datagram) = serde_json::to_vec(&back) {
                            note(json!({"event": "echo", "to": back.to}));
                            let _ = socket.send_to(&datagram, addr);
                        }
                    }
                    pending.push((now, message));
                }
            }
            Some(Input::Closed) | None => {}
        }
        if let (Some(at), Some(every)) = (next_beam, beam_every)
            && now >= at
        {
            write(beams(&options), &mut note);
            next_beam = Some(at + every);
        }
        if let (Some(at), Some(offset)) = (next_zda, options.zda_offset)
            && now >= at
        {
            write(zda(chrono::Utc::now() + offset), &mut note);
            next_zda = Some(at + Duration::from_secs(1));
        }
        let (due, later): (Vec<_>, Vec<_>) = pending.drain(..).partition(|(at, _)| *at <= now);
        pending = later;
        for (_, message) in due {
            write(received(&options, address, &message), &mut note);
        }
    }
}

/// The JSON-lines log of a simulator: each entry gets its time since start.
struct SimLog {
    start: Instant,
    file: Option<BufWriter<File>>,
}

impl SimLog {
    fn open(path: Option<&Path>) -> Result<SimLog, SatSimError> {
        let file = match path {
            Some(path) => Some(BufWriter::new(
                File::create(path).map_err(io(format!("creating {}", path.display())))?,
            )),
            None => None,
        };
        Ok(SimLog {
            start: Instant::now(),
            file,
        })
    }

    fn note(&mut self, mut entry: serde_json::Value) {
        if let Some(file) = &mut self.file {
            entry["t_ms"] = json!(self.start.elapsed().as_millis() as u64);
            let _ = writeln!(file, "{entry}");
            let _ = file.flush();
        }
    }
}

/// A simulator's inputs and outputs: its pseudo-terminal, and the UDP socket of a
/// pairing.
struct SimIo {
    /// What the simulator writes to the driver.
    writer: File,
    /// What the driver wrote, and what the paired simulator sent.
    inputs: mpsc::Receiver<Input>,
    /// Where messages for the paired simulator go from, when paired.
    peer_socket: Option<UdpSocket>,
    /// Keeps the device side open, so the link survives the driver closing it.
    _slave: std::os::fd::OwnedFd,
}

impl SimIo {
    fn start(ends: &SimEnds) -> Result<SimIo, SatSimError> {
        let (mut master, slave) = open_pty(&ends.link)?;
        let writer = master.try_clone().map_err(io("cloning the pty"))?;
        let (tx, inputs) = mpsc::channel::<Input>();
        let terminal_tx = tx.clone();
        std::thread::spawn(move || {
            let mut buffer = [0u8; 512];
            loop {
                let input = match master.read(&mut buffer) {
                    Ok(n) if n > 0 => buffer[..n].to_vec(),
                    _ => {
                        // A pty master reads EIO while no one has the device open: wait.
                        std::thread::sleep(Duration::from_millis(20));
                        Vec::new()
                    }
                };
                if terminal_tx.send(Input::Terminal(input)).is_err() {
                    return;
                }
            }
        });
        let peer_socket = match ends.listen {
            Some(addr) => {
                let socket = UdpSocket::bind(addr).map_err(io(format!("listening on {addr}")))?;
                let reader = socket.try_clone().map_err(io("cloning the peer socket"))?;
                let peer_tx = tx;
                std::thread::spawn(move || {
                    let mut buffer = [0u8; 2048];
                    while let Ok(n) = reader.recv(&mut buffer) {
                        if peer_tx.send(Input::Peer(buffer[..n].to_vec())).is_err() {
                            return;
                        }
                    }
                    let _ = peer_tx.send(Input::Closed);
                });
                Some(socket)
            }
            None if ends.peer.is_some() => {
                Some(UdpSocket::bind(("127.0.0.1", 0)).map_err(io("binding a socket"))?)
            }
            None => None,
        };
        Ok(SimIo {
            writer,
            inputs,
            peer_socket,
            _slave: slave,
        })
    }
}

/// A pseudo-terminal, raw, its device linked at `link`.
pub(crate) fn open_pty(link: &Path) -> Result<(File, std::os::fd::OwnedFd), SatSimError> {
    let pty = nix::pty::openpty(None, None)
        .map_err(|e| SatSimError::Setup(format!("cannot open a pseudo-terminal: {e}")))?;
    let name = nix::unistd::ttyname(&pty.slave)
        .map_err(|e| SatSimError::Setup(format!("pseudo-terminal name: {e}")))?;
    if let Ok(mut t) = nix::sys::termios::tcgetattr(&pty.slave) {
        nix::sys::termios::cfmakeraw(&mut t);
        let _ = nix::sys::termios::tcsetattr(&pty.slave, nix::sys::termios::SetArg::TCSANOW, &t);
    }
    let _ = std::fs::remove_file(link);
    std::os::unix::fs::symlink(&name, link).map_err(io(format!(
        "linking {} to {}",
        link.display(),
        name.display()
    )))?;
    Ok((File::from(pty.master), pty.slave))
}

fn dialect_name(dialect: BeidouDialect) -> &'static str {
    match dialect {
        BeidouDialect::V21 | BeidouDialect::Auto => "2.1 sentences",
        BeidouDialect::Bd1 => "4.0 frames",
        BeidouDialect::Bds3 => "BDS-3 sentences",
    }
}

/// What the driver wrote: a sentence, or a 4.0 frame.
enum Command {
    Sentence(Sentence),
    Frame(Frame),
}

impl std::fmt::Display for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Command::Sentence(s) => write!(f, "{s}"),
            Command::Frame(frame) => f.write_str(&shown(&frame.encode())),
        }
    }
}

/// What a command asks of the terminal.
enum Asked {
    Card,
    /// Beam status every this many seconds (0: stop).
    Beams(u64),
    /// A message to send; `None` when its fields did not parse.
    Send(Option<Send>),
    Nothing,
}

impl Command {
    /// What the command asks, in `dialect`; the commands of other dialects go unanswered
    /// as a real terminal leaves them.
    fn read(&self, dialect: BeidouDialect) -> Asked {
        match (self, dialect) {
            (Command::Sentence(s), BeidouDialect::V21) => match s.kind.as_str() {
                "ICA" => Asked::Card,
                "RMO" if s.text(0) == "BSI" => Asked::Beams(s.text(2).parse().unwrap_or(0)),
                "TXA" if s.fields.len() >= 4 => Asked::Send(sent(s.text(0), s.text(2), &s.rest(3))),
                "TXA" => Asked::Send(None),
                _ => Asked::Nothing,
            },
            (Command::Sentence(s), BeidouDialect::Bds3) => match s.kind.as_str() {
                "ICR" => Asked::Card,
                "TCQ" if s.fields.len() >= 6 => {
                    let data = s.fields[4..s.fields.len() - 1].join(&b","[..]);
                    let form = match s.text(3) {
                        "1" => "0",
                        "2" => "1",
                        "3" => "2",
                        _ => return Asked::Send(None),
                    };
                    Asked::Send(sent(s.text(0), form, &data))
                }
                "TCQ" => Asked::Send(None),
                _ => Asked::Nothing,
            },
            (Command::Frame(frame), BeidouDialect::Bd1) => match &frame.command {
                b"ICJC" => Asked::Card,
                b"TXSQ" => {
                    let b = &frame.body;
                    if b.len() < 7 {
                        return Asked::Send(None);
                    }
                    let to = u32::from_be_bytes([0, b[1], b[2], b[3]]);
                    let bytes = usize::from(u16::from_be_bytes([b[4], b[5]])).div_ceil(8);
                    let Some(content) = b.get(7..7 + bytes) else {
                        return Asked::Send(None);
                    };
                    let form = if b[0] == bd1::category(false) { 0 } else { 1 };
                    Asked::Send(Some(Send {
                        to: to.to_string(),
                        form,
                        content: content.to_vec(),
                    }))
                }
                _ => Asked::Nothing,
            },
            _ => Asked::Nothing,
        }
    }
}

/// A send from its destination, 2.1 form number and payload field.
fn sent(to: &str, form: &str, field: &[u8]) -> Option<Send> {
    let (form, content) = match form {
        "0" => (0, field.to_vec()),
        "1" => (1, payload::decode_hex(field).ok()?),
        "2" => (2, payload::decode_hex(field).ok()?),
        _ => return None,
    };
    Some(Send {
        to: to.into(),
        form,
        content,
    })
}

/// Bytes for the log: a sentence as its text, a frame as its hex.
fn shown(bytes: &[u8]) -> String {
    if bytes.first() == Some(&b'$') && bytes.ends_with(b"\r\n") && !bytes[..5].contains(&0) {
        if let Ok(s) = Sentence::parse(&bytes[..bytes.len() - 2]) {
            return s.to_string();
        }
    }
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

/// The navigation receiver's time, NMEA 0183 `ZDA`: `hhmmss.ss,dd,mm,yyyy,zh,zm`.
fn zda(at: chrono::DateTime<chrono::Utc>) -> Vec<u8> {
    let fields = vec![
        format!(
            "{}.{:02}",
            at.format("%H%M%S"),
            at.timestamp_subsec_millis() / 10
        ),
        at.format("%d").to_string(),
        at.format("%m").to_string(),
        at.format("%Y").to_string(),
        "00".into(),
        "00".into(),
    ];
    terminal("ZDA", fields).encode()
}

fn terminal(kind: &str, fields: Vec<String>) -> Sentence {
    Sentence {
        talker: "BD".into(),
        kind: kind.into(),
        fields: fields.into_iter().map(String::into_bytes).collect(),
    }
}

fn reported_interval(options: &BeidouSimOptions) -> u64 {
    options
        .report_interval
        .unwrap_or(options.interval)
        .as_secs()
}

/// The card's answer, in the dialect spoken.
fn card(options: &BeidouSimOptions, address: Option<u32>) -> Vec<u8> {
    let interval = reported_interval(options);
    if let Some(address) = address {
        let seconds = u16::try_from(interval).unwrap_or(u16::MAX).to_be_bytes();
        let body = vec![
            0,
            0,
            0,
            11,
            6,
            seconds[0],
            seconds[1],
            options.comm_level,
            0,
            0,
            0,
        ];
        return Frame::new(b"ICXX", address, body).encode();
    }
    let kind = if options.dialect == BeidouDialect::Bds3 {
        "ICP"
    } else {
        "ICI"
    };
    terminal(
        kind,
        vec![
            options.card_id.clone(),
            "02097151".into(),
            "0000011".into(),
            "6".into(),
            interval.to_string(),
            options.comm_level.to_string(),
            "N".into(),
            "000".into(),
        ],
    )
    .encode()
}

/// Beam status: ten beams as 2.1's `BSI`, or BDS-3's `PWI` of three.
fn beams(options: &BeidouSimOptions) -> Vec<u8> {
    let power = if options.no_signal { "0" } else { "3" };
    if options.dialect == BeidouDialect::Bds3 {
        let fields = ["000000.00", "3", "1", power, "2", "0", "3", power];
        return terminal("PWI", fields.iter().map(|f| f.to_string()).collect()).encode();
    }
    // Response beam 1, timing beam 3, and the ten beams' power as the 2.1 transcript's
    // terminal reported them; all 0 with no signal.
    let mut fields = vec!["01".to_string(), "03".to_string()];
    fields.extend(
        [3, 2, 2, 0, 3, 0, 0, 3, 0, 0].map(|p| if options.no_signal { 0 } else { p }.to_string()),
    );
    terminal("BSI", fields).encode()
}

/// Whether a send may go now: `Ok(interval)` to wait after it, or why not.
fn transmit(
    options: &BeidouSimOptions,
    send: Option<&Send>,
    last_sent: &mut Option<Instant>,
    now: Instant,
) -> Result<u64, Refused> {
    if send.is_none() {
        return Err(Refused::Malformed);
    }
    if options.suppressed {
        return Err(Refused::Suppressed);
    }
    if options.no_signal {
        return Err(Refused::NoSignal);
    }
    if let Some(last) = *last_sent {
        // Measured on the simulator's clock, which runs `time_scale` times as fast.
        let since = now.saturating_duration_since(last) * options.time_scale.max(1);
        if since < options.interval {
            let left = (options.interval - since).as_secs_f64().ceil() as u64;
            return Err(Refused::Rate(left.max(1)));
        }
    }
    *last_sent = Some(now);
    Ok(options.interval.as_secs())
}

/// The time of day for a BDS-3 sentence, hhmmss, in UTC.
fn clock() -> String {
    let seconds = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
        % 86_400;
    format!(
        "{:02}{:02}{:02}",
        seconds / 3600,
        seconds / 60 % 60,
        seconds % 60
    )
}

/// Whether two card IDs are one card: 4.0 addresses lose their leading zeros.
fn same_card(a: &str, b: &str) -> bool {
    a.trim_start_matches('0') == b.trim_start_matches('0')
}

/// A 2.1 terminal's report of a position request refused, with the seconds to wait.
fn position_refused(wait: u64) -> Vec<u8> {
    terminal(
        "FKI",
        vec![
            "DWA".into(),
            "N".into(),
            "Y".into(),
            "0".into(),
            format!("{wait:04}"),
        ],
    )
    .encode()
}

/// The feedback to a send, in the dialect spoken.
fn feedback(
    options: &BeidouSimOptions,
    address: Option<u32>,
    answer: Result<u64, Refused>,
) -> Vec<u8> {
    // A done send names the interval the card reports, which a test may set wrong to
    // make a driver send early.
    let reported = reported_interval(options);
    if let Some(address) = address {
        let body = match answer {
            Ok(_) => [&[0u8][..], b"TXSQ"].concat(),
            Err(Refused::Rate(wait)) => {
                let wait = u32::try_from(wait).unwrap_or(u32::MAX).to_be_bytes();
                [&[4u8][..], &wait].concat()
            }
            Err(Refused::Suppressed) => [&[7u8][..], b"TXSQ"].concat(),
            Err(Refused::NoSignal) => [&[2u8][..], b"TXSQ"].concat(),
            Err(Refused::Malformed | Refused::Unexplained) => [&[1u8][..], b"TXSQ"].concat(),
        };
        return Frame::new(b"FKXX", address, body).encode();
    }
    let yes = |b: bool| if b { "Y" } else { "N" }.to_string();
    if options.dialect == BeidouDialect::Bds3 {
        let (done, reason, wait) = match answer {
            Ok(_) => (true, "", reported),
            Err(Refused::Rate(wait)) => (false, "1", wait),
            Err(Refused::Suppressed) => (false, "2", 0),
            Err(Refused::NoSignal) => (false, "4", 0),
            Err(Refused::Malformed) => (false, "6", 0),
            // Every BDS-3 refusal names its reason: the nearest to none is a passing state.
            Err(Refused::Unexplained) => (false, "4", 0),
        };
        return terminal(
            "FKI",
            vec![
                clock(),
                "TCQ".into(),
                yes(done),
                reason.into(),
                wait.to_string(),
            ],
        )
        .encode();
    }
    let (done, rate_ok, suppression, wait) = match answer {
        Ok(_) => (true, true, 0, reported),
        Err(Refused::Rate(wait)) => (false, false, 0, wait),
        Err(Refused::Suppressed) => (false, true, 1, 0),
        Err(Refused::NoSignal | Refused::Malformed | Refused::Unexplained) => (false, true, 0, 0),
    };
    terminal(
        "FKI",
        vec![
            "TXA".into(),
            yes(done),
            yes(rate_ok),
            suppression.to_string(),
            format!("{wait:04}"),
        ],
    )
    .encode()
}

/// A message arriving at this terminal, in the dialect spoken.
fn received(options: &BeidouSimOptions, address: Option<u32>, message: &Relayed) -> Vec<u8> {
    if let Some(address) = address {
        let from = message.from.parse::<u32>().unwrap_or(0).to_be_bytes();
        let bits = u16::try_from(message.content.len() * 8)
            .unwrap_or(u16::MAX)
            .to_be_bytes();
        let mut body = vec![
            bd1::category(message.form != 0),
            from[1],
            from[2],
            from[3],
            0,
            0,
            bits[0],
            bits[1],
        ];
        body.extend_from_slice(&message.content);
        body.push(0);
        return Frame::new(b"TXXX", address, body).encode();
    }
    let field = if message.form == 0 {
        message.content.clone()
    } else {
        payload::encode_hex(&message.content)
    };
    let from = message.from.clone().into_bytes();
    let sentence = if options.dialect == BeidouDialect::Bds3 {
        Sentence {
            talker: "BD".into(),
            kind: "TCI".into(),
            fields: vec![
                from,
                message.to.clone().into_bytes(),
                b"2".to_vec(),
                clock().into_bytes(),
                (message.form + 1).to_string().into_bytes(),
                field,
            ],
        }
    } else {
        Sentence {
            talker: "BD".into(),
            kind: "TXR".into(),
            fields: vec![
                b"1".to_vec(),
                from,
                message.form.to_string().into_bytes(),
                Vec::new(),
                field,
            ],
        }
    };
    sentence.encode()
}

/// An AT modem's command line: bytes gathered up to CR or LF, at most 512 kept.
#[derive(Debug, Default)]
struct CommandLine(Vec<u8>);

impl CommandLine {
    /// Takes a byte; gives the command it ends, if any.
    fn push(&mut self, b: u8) -> Option<String> {
        if b != b'\r' && b != b'\n' {
            if self.0.len() < 512 {
                self.0.push(b);
            }
            return None;
        }
        if self.0.is_empty() {
            return None;
        }
        let command = String::from_utf8_lossy(&self.0).trim().to_string();
        self.0.clear();
        Some(command)
    }
}

/// A simulated Iridium 9602/9603 SBD modem.
#[derive(Debug, Clone)]
pub struct IridiumSimOptions {
    /// The pseudo-terminal, the pairing and the log.
    pub ends: SimEnds,
    /// MO status codes the next sessions with a message end with, in order (0 to 4
    /// sent, 32 no network, 35 busy, 15 access denied, …); then they succeed.
    pub fail: Vec<u32>,
    /// Signal, 0 to 5.
    pub csq: u8,
    /// How long an `AT+SBDIX` session takes before its result.
    pub session: Duration,
}

/// Runs the Iridium simulator until its process is stopped.
pub fn run_iridium(options: IridiumSimOptions) -> Result<(), SatSimError> {
    let mut log = SimLog::open(options.ends.log.as_deref())?;
    let mut note = |entry: serde_json::Value| log.note(entry);
    let SimIo {
        mut writer,
        inputs: rx,
        peer_socket,
        _slave,
    } = SimIo::start(&options.ends)?;
    println!("iridium simulator on {}", options.ends.link.display());

    let mut say = |bytes: &[u8], note: &mut dyn FnMut(serde_json::Value)| {
        note(json!({"event": "out", "text": String::from_utf8_lossy(bytes)}));
        let _ = writer.write_all(bytes);
    };
    let mut line = CommandLine::default();
    // Binary write in progress: the bytes still expected, and those taken.
    let mut binary: Option<(usize, Vec<u8>)> = None;
    let mut mo: Option<Vec<u8>> = None;
    let mut mt: std::collections::VecDeque<Vec<u8>> = std::collections::VecDeque::new();
    let mut current_mt: Option<Vec<u8>> = None;
    let mut fail = options.fail.clone().into_iter();
    let mut momsn = 0u32;
    let mut mtmsn = 0u32;
    // A session's result, due when the session has taken its time.
    let mut session_result: Option<(Instant, String)> = None;

    loop {
        let wait = session_result
            .as_ref()
            .map_or(Duration::from_millis(200), |(at, _)| {
                at.saturating_duration_since(Instant::now())
            })
            .min(Duration::from_millis(200));
        let input = match rx.recv_timeout(wait) {
            Ok(input) => Some(input),
            Err(mpsc::RecvTimeoutError::Timeout) => None,
            Err(mpsc::RecvTimeoutError::Disconnected) => return Ok(()),
        };
        if session_result
            .as_ref()
            .is_some_and(|(at, _)| *at <= Instant::now())
            && let Some((_, result)) = session_result.take()
        {
            say(result.as_bytes(), &mut note);
        }
        let bytes = match input {
            Some(Input::Terminal(bytes)) => bytes,
            Some(Input::Peer(bytes)) => {
                note(json!({"event": "from-peer", "bytes": bytes.len()}));
                mt.push_back(bytes);
                say(b"SBDRING\r\n", &mut note);
                continue;
            }
            Some(Input::Closed) | None => continue,
        };
        for b in bytes {
            if let Some((needed, taken)) = &mut binary {
                taken.push(b);
                if taken.len() == *needed + 2 {
                    let (payload, sum) = taken.split_at(*needed);
                    let good = drivers::satellite::iridium::sbd_checksum(payload) == sum;
                    if good {
                        mo = Some(payload.to_vec());
                    }
                    note(json!({"event": "binary", "bytes": *needed, "sum_ok": good}));
                    binary = None;
                    say(
                        if good {
                            b"0\r\n\r\nOK\r\n"
                        } else {
                            b"2\r\n\r\nOK\r\n"
                        },
                        &mut note,
                    );
                }
                continue;
            }
            let Some(command) = line.push(b) else {
                continue;
            };
            note(json!({"event": "in", "command": command}));
            let upper = command.to_ascii_uppercase();
            if upper == "AT" || upper == "AT&K0" || upper == "ATE0" {
                say(b"\r\nOK\r\n", &mut note);
            } else if let Some(n) = upper.strip_prefix("AT+SBDWB=") {
                match n.parse::<usize>() {
                    Ok(n) if (1..=drivers::satellite::iridium::MAX_MO).contains(&n) => {
                        binary = Some((n, Vec::new()));
                        say(b"READY\r\n", &mut note);
                    }
                    _ => say(b"3\r\n\r\nOK\r\n", &mut note),
                }
            } else if upper.starts_with("AT+SBDWT=") {
                // The text is the rest of the line, at most 120 bytes (9602/9603 manual).
                let text = command.as_bytes().get(9..).unwrap_or_default();
                if text.len() <= drivers::satellite::iridium::MAX_SBDWT {
                    mo = Some(text.to_vec());
                    say(b"\r\nOK\r\n", &mut note);
                } else {
                    say(b"\r\nERROR\r\n", &mut note);
                }
            } else if upper == "AT+SBDIX" {
                // Only a session with a message in the MO buffer takes a failure code.
                let mo_status = if mo.is_some() {
                    fail.next().unwrap_or(0)
                } else {
                    0
                };
                let reached = mo_status <= 4;
                // As a real modem does, the MO buffer keeps its message after a session
                // until AT+SBDD0: every session sends it again. The sequence number is
                // the message's, and grows with each one the gateway took.
                let session_momsn = momsn;
                if reached && let Some(message) = &mo {
                    momsn += 1;
                    if let (Some(socket), Some(peer)) = (&peer_socket, options.ends.peer) {
                        let _ = socket.send_to(message, peer);
                    }
                }
                // A session that did not reach the gateway could not check the mailbox
                // either: MT status 2, nothing known of what waits.
                let (mt_status, mt_length, mt_queued, session_mtmsn) = if !reached {
                    (2, 0, 0, 0)
                } else {
                    match mt.pop_front() {
                        Some(message) => {
                            mtmsn += 1;
                            let len = message.len();
                            current_mt = Some(message);
                            (1, len, mt.len(), mtmsn)
                        }
                        None => (0, 0, mt.len(), mtmsn),
                    }
                };
                // The outcome is settled when the session starts; its result comes
                // once the session has taken its time.
                session_result = Some((
                    Instant::now() + options.session,
                    format!(
                        "+SBDIX: {mo_status}, {session_momsn}, {mt_status}, {session_mtmsn}, \
                         {mt_length}, {mt_queued}\r\n\r\nOK\r\n"
                    ),
                ));
            } else if upper == "AT+SBDRT" {
                let text = current_mt
                    .as_ref()
                    .map(|m| String::from_utf8_lossy(m).into_owned())
                    .unwrap_or_default();
                say(format!("+SBDRT:\r\n{text}\r\nOK\r\n").as_bytes(), &mut note);
            } else if upper == "AT+SBDRB" {
                // Length, message, sum, then OK: a binary block in the answer stream.
                let message = current_mt.clone().unwrap_or_default();
                let mut block = u16::try_from(message.len())
                    .unwrap_or(0)
                    .to_be_bytes()
                    .to_vec();
                block.extend_from_slice(&message);
                block.extend_from_slice(&drivers::satellite::iridium::sbd_checksum(&message));
                block.extend_from_slice(b"\r\nOK\r\n");
                say(&block, &mut note);
            } else if upper == "AT+SBDD0" {
                mo = None;
                say(b"0\r\n\r\nOK\r\n", &mut note);
            } else if upper == "AT+CGMM" {
                say(
                    b"\r\nIRIDIUM 9600 Family SBD Transceiver\r\n\r\nOK\r\n",
                    &mut note,
                );
            } else if upper == "AT+CGSN" {
                say(b"\r\n300234010753370\r\n\r\nOK\r\n", &mut note);
            } else if upper == "AT+CSQ" {
                say(
                    format!("+CSQ:{}\r\n\r\nOK\r\n", options.csq.min(5)).as_bytes(),
                    &mut note,
                );
            } else {
                say(b"ERROR\r\n", &mut note);
            }
        }
    }
}

/// A simulated SMS modem (a Tiantong-1 terminal or a cellular modem) in PDU mode.
#[derive(Debug, Clone)]
pub struct SmsSimOptions {
    /// The pseudo-terminal, the pairing and the log.
    pub ends: SimEnds,
    /// The modem's own number: the sender of what it sends.
    pub number: String,
    /// What `AT+CGMM` answers.
    pub model: String,
    /// `AT+CREG?`'s status: 1 home, 5 roaming, 0 or 2 not registered.
    pub registration: u8,
    /// RSSI, 0 to 31 (99 unknown).
    pub rssi: u8,
    /// The next this many sends fail with `+CMS ERROR: 332` (network timeout).
    pub fail_sends: u32,
    /// How long a send takes, from the PDU's Ctrl-Z to `+CMGS` (or its error).
    pub send_delay: Duration,
    /// How long a message to the own number takes, after its `+CMGS`, to be stored
    /// and announced with `+CMTI`.
    pub delivery_delay: Duration,
    /// The status (TP-ST) of the report a send that asks for one gets, as it arrives:
    /// 0 received, 0x41 and up a permanent error.
    pub report_status: u8,
}

/// What an SMS simulator does later: an answer that takes time, or a message arriving.
enum SmsLater {
    Say(String),
    /// A message for the own number, stored and announced.
    Store(String),
    /// A message for the paired simulator's number, sent to it.
    Relay(String),
    /// A status report, passed on or stored as `AT+CNMI` asked.
    Report(String),
}

/// The service centre time stamp of a delivered message: 2026-12-04 10:15:00 UTC+8,
/// semi-octets swapped (TS 23.040 §9.2.3.11).
const SMS_TIMESTAMP: [u8; 7] = [0x62, 0x21, 0x40, 0x01, 0x51, 0x00, 0x23];

/// Runs the SMS simulator until its process is stopped.
pub fn run_sms(options: SmsSimOptions) -> Result<(), SatSimError> {
    use drivers::satellite::sms::pdu;

    let mut log = SimLog::open(options.ends.log.as_deref())?;
    let mut note = |entry: serde_json::Value| log.note(entry);
    let SimIo {
        mut writer,
        inputs: rx,
        peer_socket,
        _slave,
    } = SimIo::start(&options.ends)?;
    println!(
        "sms simulator {} on {}",
        options.number,
        options.ends.link.display()
    );

    let mut say = |text: &str, note: &mut dyn FnMut(serde_json::Value)| {
        note(json!({"event": "out", "text": text}));
        let _ = writer.write_all(text.as_bytes());
    };
    let mut line = CommandLine::default();
    // `AT+CMGS` in progress: the PDU's hex digits until Ctrl-Z.
    let mut composing: Option<Vec<u8>> = None;
    let mut stored: std::collections::BTreeMap<u32, String> = std::collections::BTreeMap::new();
    let mut next_index = 1u32;
    let mut reference = 0u8;
    let mut failures_left = options.fail_sends;
    // How status reports reach the host: `AT+CNMI`'s `ds`, 0 not at all, 1 as `+CDS`, 2
    // stored and announced with `+CDSI` (TS 27.005 §3.4.1).
    let mut report_mode = 0u8;
    // Stores a delivered PDU and says the index it is at.
    let mut store = |pdu: String, stored: &mut std::collections::BTreeMap<u32, String>| {
        let index = next_index;
        next_index += 1;
        stored.insert(index, pdu);
        format!("\r\n+CMTI: \"SM\",{index}\r\n")
    };

    // Answers and arrivals still to come, in the order they were made.
    let mut later: Vec<(Instant, SmsLater)> = Vec::new();

    loop {
        let now = Instant::now();
        let wait = later
            .iter()
            .map(|(at, _)| at.saturating_duration_since(now))
            .min()
            .unwrap_or(Duration::from_millis(200))
            .min(Duration::from_millis(200));
        let input = match rx.recv_timeout(wait) {
            Ok(input) => Some(input),
            Err(mpsc::RecvTimeoutError::Timeout) => None,
            Err(mpsc::RecvTimeoutError::Disconnected) => return Ok(()),
        };
        let now = Instant::now();
        let (due, not_yet): (Vec<_>, Vec<_>) = later.drain(..).partition(|(at, _)| *at <= now);
        later = not_yet;
        for (_, action) in due {
            match action {
                SmsLater::Say(text) => say(&text, &mut note),
                SmsLater::Store(pdu) => {
                    let announce = store(pdu, &mut stored);
                    say(&announce, &mut note);
                }
                SmsLater::Relay(pdu) => {
                    if let (Some(socket), Some(peer)) = (&peer_socket, options.ends.peer) {
                        let _ = socket.send_to(pdu.as_bytes(), peer);
                    }
                }
                SmsLater::Report(pdu) => match report_mode {
                    1 => {
                        let octets = (pdu.len() / 2).saturating_sub(1);
                        say(&format!("\r\n+CDS: {octets}\r\n{pdu}\r\n"), &mut note);
                    }
                    2 => {
                        let announce = store(pdu, &mut stored).replace("+CMTI", "+CDSI");
                        say(&announce, &mut note);
                    }
                    _ => note(json!({"event": "report-dropped"})),
                },
            }
        }
        let bytes = match input {
            Some(Input::Terminal(bytes)) => bytes,
            Some(Input::Peer(bytes)) => {
                note(json!({"event": "from-peer", "bytes": bytes.len()}));
                let announce = store(String::from_utf8_lossy(&bytes).into_owned(), &mut stored);
                say(&announce, &mut note);
                continue;
            }
            Some(Input::Closed) | None => continue,
        };
        for b in bytes {
            if let Some(digits) = &mut composing {
                match b {
                    0x1A => {
                        let submit = String::from_utf8_lossy(digits).trim().to_string();
                        composing = None;
                        note(json!({"event": "submit", "pdu": submit}));
                        // The answer comes once the network has taken the message (or
                        // not): the send delay after Ctrl-Z.
                        let answered = Instant::now() + options.send_delay;
                        if failures_left > 0 {
                            failures_left -= 1;
                            later.push((answered, SmsLater::Say("\r\n+CMS ERROR: 332\r\n".into())));
                            continue;
                        }
                        match pdu::deliver_for_submit(&submit, &options.number, SMS_TIMESTAMP) {
                            Ok((to, deliver)) => {
                                reference = reference.wrapping_add(1);
                                later.push((
                                    answered,
                                    SmsLater::Say(format!("\r\n+CMGS: {reference}\r\n\r\nOK\r\n")),
                                ));
                                let own = to.trim_start_matches('+')
                                    == options.number.trim_start_matches('+');
                                later.push((
                                    answered + options.delivery_delay,
                                    if own {
                                        SmsLater::Store(deliver)
                                    } else {
                                        SmsLater::Relay(deliver)
                                    },
                                ));
                                // The report comes once the message has arrived.
                                if let Ok(Some(report)) = pdu::status_report_for_submit(
                                    &submit,
                                    reference,
                                    SMS_TIMESTAMP,
                                    options.report_status,
                                ) {
                                    later.push((
                                        answered + options.delivery_delay,
                                        SmsLater::Report(report),
                                    ));
                                }
                            }
                            Err(e) => {
                                note(json!({"event": "bad-pdu", "reason": e.to_string()}));
                                say("\r\n+CMS ERROR: 304\r\n", &mut note);
                            }
                        }
                    }
                    // Escape: the send is abandoned.
                    0x1B => {
                        composing = None;
                        say("\r\nOK\r\n", &mut note);
                    }
                    b'\r' | b'\n' => {}
                    _ if digits.len() < 2 * 200 => digits.push(b),
                    _ => {}
                }
                continue;
            }
            let Some(command) = line.push(b) else {
                continue;
            };
            note(json!({"event": "in", "command": command}));
            let upper = command.to_ascii_uppercase();
            let index = |prefix: &str| {
                upper
                    .strip_prefix(prefix)
                    .and_then(|n| n.trim().parse::<u32>().ok())
            };
            if let Some(settings) = upper.strip_prefix("AT+CNMI=") {
                report_mode = settings
                    .split(',')
                    .nth(3)
                    .and_then(|ds| ds.trim().parse().ok())
                    .unwrap_or(0);
                say("\r\nOK\r\n", &mut note);
            } else if ["AT", "ATE0", "AT+CMGF=0"].contains(&upper.as_str()) {
                say("\r\nOK\r\n", &mut note);
            } else if upper == "AT+CREG?" {
                say(
                    &format!("\r\n+CREG: 0,{}\r\n\r\nOK\r\n", options.registration),
                    &mut note,
                );
            } else if upper == "AT+CSQ" {
                say(
                    &format!("\r\n+CSQ: {},99\r\n\r\nOK\r\n", options.rssi),
                    &mut note,
                );
            } else if upper == "AT+CGMM" {
                say(&format!("\r\n{}\r\n\r\nOK\r\n", options.model), &mut note);
            } else if upper == "AT+CGSN" {
                say("\r\n861234050012345\r\n\r\nOK\r\n", &mut note);
            } else if upper.starts_with("AT+CMGS=") {
                if matches!(options.registration, 1 | 5) {
                    composing = Some(Vec::new());
                    say("\r\n> ", &mut note);
                } else {
                    say("\r\n+CMS ERROR: 331\r\n", &mut note);
                }
            } else if let Some(k) = index("AT+CMGR=") {
                match stored.get(&k) {
                    Some(pdu) => {
                        let octets = (pdu.len() / 2).saturating_sub(1);
                        say(
                            &format!("\r\n+CMGR: 0,,{octets}\r\n{pdu}\r\n\r\nOK\r\n"),
                            &mut note,
                        );
                    }
                    None => say("\r\n+CMS ERROR: 321\r\n", &mut note),
                }
            } else if let Some(k) = index("AT+CMGD=") {
                stored.remove(&k);
                say("\r\nOK\r\n", &mut note);
            } else if upper.starts_with("AT+CMGL") {
                let mut listing = String::from("\r\n");
                for (k, pdu) in &stored {
                    listing.push_str(&format!(
                        "+CMGL: {k},0,,{}\r\n{pdu}\r\n",
                        (pdu.len() / 2).saturating_sub(1)
                    ));
                }
                listing.push_str("\r\nOK\r\n");
                say(&listing, &mut note);
            } else {
                say("\r\nERROR\r\n", &mut note);
            }
        }
    }
}
