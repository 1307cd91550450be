//! Satellite terminals in software, on a pseudo-terminal, for the gateway's drivers and
//! the technician's tools to talk to as they would to a real one.
//!
//! `emcomm-bench sim beidou --link PATH` is a BeiDou RDSS terminal speaking the 2.1
//! dialect: it answers `$CCICA` with its card (`$BDICI`), sends beam status when asked
//! (`$CCRMO,BSI`), and takes `$CCTXA`:
//!
//! * sent earlier than the service interval after the last one: refused, `$BDFKI`
//!   with the seconds still to wait;
//! * with no signal (`--no-signal`) or suppressed (`--suppressed`): refused;
//! * otherwise `$BDFKI` done with the interval to wait, and the message delivered: to
//!   its own card as `$BDTXR` a moment later, to a paired simulator (`--peer` an
//!   address where the other listens with `--listen`, over UDP on the loopback) as
//!   `$BDTXR` there.
//!
//! The card's service interval is configurable (`--interval-s`, 60 by default; 1 in
//! tests), and so is the interval it *reports* (`--report-interval-s`), so a test can
//! make a driver send too early and meet the refusal. Every sentence in and out is
//! logged as a JSON line with its time.
//!
//! `emcomm-bench sim iridium --link PATH` is a 9602/9603 SBD modem: `AT`, `AT&K0`,
//! binary (`AT+SBDWB`, checking the sum) and text (`AT+SBDWT`) writes, sessions
//! (`AT+SBDIX`) that fail with the MO status codes given by `--fail` before they
//! succeed, `AT+SBDRT`, `AT+SBDD0` and `AT+CSQ`. Paired like the BeiDou simulator, a
//! message sent by one arrives at the other as an MT message announced by `SBDRING`.

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use drivers::satellite::beidou::nmea::{Sentence, SentenceReader};
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

/// A simulated BeiDou terminal.
#[derive(Debug, Clone)]
pub struct BeidouSimOptions {
    /// Where the pseudo-terminal's device is linked.
    pub link: PathBuf,
    pub card_id: String,
    pub comm_level: u8,
    /// The interval the simulator enforces.
    pub interval: Duration,
    /// The interval its card reports, if not the one it enforces.
    pub report_interval: Option<Duration>,
    pub no_signal: bool,
    pub suppressed: bool,
    /// Where a paired simulator listens, and where this one listens for it.
    pub peer: Option<SocketAddr>,
    pub listen: Option<SocketAddr>,
    pub log: Option<PathBuf>,
}

enum Input {
    Terminal(Vec<u8>),
    Peer(Vec<u8>),
    Closed,
}

/// Runs the simulator until its pseudo-terminal's reader fails or the process is
/// stopped.
pub fn run_beidou(options: BeidouSimOptions) -> Result<(), SatSimError> {
    let mut log = SimLog::open(options.log.as_deref())?;
    let mut note = |entry: serde_json::Value| log.note(entry);
    let SimIo {
        mut writer,
        inputs: rx,
        peer_socket,
        _slave,
    } = SimIo::start(&options.link, options.listen, options.peer)?;
    println!(
        "beidou simulator card {} on {}",
        options.card_id,
        options.link.display()
    );

    let mut reader = SentenceReader::new();
    let mut last_sent: Option<Instant> = None;
    let mut beam_every: Option<Duration> = None;
    let mut next_beam: Option<Instant> = None;
    let mut pending: Vec<(Instant, Vec<u8>)> = Vec::new();
    let mut send = |sentence: Sentence, note: &mut dyn FnMut(serde_json::Value)| {
        note(json!({"event": "out", "sentence": sentence.to_string()}));
        let _ = writer.write_all(&sentence.encode());
    };

    loop {
        let now = Instant::now();
        let wait = [next_beam, pending.iter().map(|(at, _)| *at).min()]
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
                for sentence in reader.push(&bytes).into_iter().flatten() {
                    note(json!({"event": "in", "sentence": sentence.to_string()}));
                    match sentence.kind.as_str() {
                        "ICA" => send(card(&options), &mut note),
                        "RMO" if sentence.text(0) == "BSI" => {
                            let seconds: u64 = sentence.text(2).parse().unwrap_or(0);
                            beam_every = (seconds > 0).then(|| Duration::from_secs(seconds));
                            next_beam = beam_every.map(|_| now);
                        }
                        "TXA" => {
                            let answer = transmit(&options, &sentence, &mut last_sent, now);
                            let delivered = answer.is_ok();
                            send(feedback(&options, answer), &mut note);
                            if delivered {
                                deliver(
                                    &options,
                                    &sentence,
                                    peer_socket.as_ref(),
                                    &mut pending,
                                    now,
                                );
                            }
                        }
                        _ => {}
                    }
                }
            }
            Some(Input::Peer(bytes)) => {
                note(json!({"event": "from-peer", "bytes": bytes.len()}));
                pending.push((now, bytes));
            }
            Some(Input::Closed) | None => {}
        }
        if let (Some(at), Some(every)) = (next_beam, beam_every)
            && now >= at
        {
            send(beams(&options), &mut note);
            next_beam = Some(at + every);
        }
        let (due, later): (Vec<_>, Vec<_>) = pending.drain(..).partition(|(at, _)| *at <= now);
        pending = later;
        for (_, line) in due {
            if let Ok(sentence) = Sentence::parse(&line) {
                send(sentence, &mut note);
            }
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
    fn start(
        link: &Path,
        listen: Option<SocketAddr>,
        peer: Option<SocketAddr>,
    ) -> Result<SimIo, SatSimError> {
        let (mut master, slave) = open_pty(link)?;
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
        let peer_socket = match listen {
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
            None if peer.is_some() => {
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

fn terminal(kind: &str, fields: Vec<String>) -> Sentence {
    Sentence {
        talker: "BD".into(),
        kind: kind.into(),
        fields: fields.into_iter().map(String::into_bytes).collect(),
    }
}

fn card(options: &BeidouSimOptions) -> Sentence {
    let interval = options
        .report_interval
        .unwrap_or(options.interval)
        .as_secs();
    terminal(
        "ICI",
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
}

fn beams(options: &BeidouSimOptions) -> Sentence {
    let power = if options.no_signal { "0" } else { "3" };
    let mut fields = vec!["01".to_string(), "03".to_string()];
    fields.extend((0..10).map(|k| {
        if k % 3 == 0 {
            power.to_string()
        } else {
            "0".to_string()
        }
    }));
    terminal("BSI", fields)
}

/// Whether a send may go now: `Ok(interval)` to wait after it, or `Err` with the
/// refusal's (rate ok, suppression, seconds to wait).
fn transmit(
    options: &BeidouSimOptions,
    sentence: &Sentence,
    last_sent: &mut Option<Instant>,
    now: Instant,
) -> Result<u64, (bool, u8, u64)> {
    if sentence.fields.len() < 4 {
        return Err((true, 0, 0));
    }
    if options.suppressed {
        return Err((true, 1, 0));
    }
    if options.no_signal {
        return Err((true, 0, 0));
    }
    if let Some(last) = *last_sent {
        let since = now.saturating_duration_since(last);
        if since < options.interval {
            let left = (options.interval - since).as_secs_f64().ceil() as u64;
            return Err((false, 0, left.max(1)));
        }
    }
    *last_sent = Some(now);
    Ok(options.interval.as_secs())
}

fn feedback(options: &BeidouSimOptions, answer: Result<u64, (bool, u8, u64)>) -> Sentence {
    // A done send names the interval the card reports, which a test may set wrong to
    // make a driver send early.
    let reported = options
        .report_interval
        .unwrap_or(options.interval)
        .as_secs();
    let (done, rate_ok, suppression, wait) = match answer {
        Ok(_) => (true, true, 0, reported),
        Err((rate_ok, suppression, wait)) => (false, rate_ok, suppression, wait),
    };
    let yes = |b: bool| if b { "Y" } else { "N" }.to_string();
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
}

/// Delivers a sent message: back to this card, or to the paired simulator.
fn deliver(
    options: &BeidouSimOptions,
    sentence: &Sentence,
    peer: Option<&UdpSocket>,
    pending: &mut Vec<(Instant, Vec<u8>)>,
    now: Instant,
) {
    let to = sentence.text(0);
    let received = Sentence {
        talker: "BD".into(),
        kind: "TXR".into(),
        fields: vec![
            b"1".to_vec(),
            options.card_id.clone().into_bytes(),
            sentence.fields.get(2).cloned().unwrap_or_default(),
            Vec::new(),
            sentence.rest(3),
        ],
    };
    let mut line = received.encode();
    line.truncate(line.len() - 2);
    if to == options.card_id {
        pending.push((now + Duration::from_millis(500), line));
    } else if let (Some(socket), Some(addr)) = (peer, options.peer) {
        let _ = socket.send_to(&line, addr);
    }
}

/// A simulated Iridium 9602/9603 SBD modem.
#[derive(Debug, Clone)]
pub struct IridiumSimOptions {
    pub link: PathBuf,
    /// MO status codes the next sessions fail with, in order; then they succeed.
    pub fail: Vec<u32>,
    /// Signal, 0 to 5.
    pub csq: u8,
    /// Where a paired simulator listens, and where this one listens for it: a message
    /// sent here arrives there as an MT message, announced by `SBDRING`.
    pub peer: Option<SocketAddr>,
    pub listen: Option<SocketAddr>,
    pub log: Option<PathBuf>,
}

/// Runs the Iridium simulator until its process is stopped.
pub fn run_iridium(options: IridiumSimOptions) -> Result<(), SatSimError> {
    let mut log = SimLog::open(options.log.as_deref())?;
    let mut note = |entry: serde_json::Value| log.note(entry);
    let SimIo {
        mut writer,
        inputs: rx,
        peer_socket,
        _slave,
    } = SimIo::start(&options.link, options.listen, options.peer)?;
    println!("iridium simulator on {}", options.link.display());

    let mut say = |text: &str, note: &mut dyn FnMut(serde_json::Value)| {
        note(json!({"event": "out", "text": text}));
        let _ = writer.write_all(text.as_bytes());
    };
    let mut line = Vec::new();
    // Binary write in progress: the bytes still expected, and those taken.
    let mut binary: Option<(usize, Vec<u8>)> = None;
    let mut mo: Option<Vec<u8>> = None;
    let mut mt: std::collections::VecDeque<Vec<u8>> = std::collections::VecDeque::new();
    let mut current_mt: Option<Vec<u8>> = None;
    let mut fail = options.fail.clone().into_iter();
    let mut momsn = 0u32;
    let mut mtmsn = 0u32;

    loop {
        let input = match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(input) => input,
            Err(mpsc::RecvTimeoutError::Timeout) => continue,
            Err(mpsc::RecvTimeoutError::Disconnected) => return Ok(()),
        };
        let bytes = match input {
            Input::Terminal(bytes) => bytes,
            Input::Peer(bytes) => {
                note(json!({"event": "from-peer", "bytes": bytes.len()}));
                mt.push_back(bytes);
                say("SBDRING\r\n", &mut note);
                continue;
            }
            Input::Closed => continue,
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
                            "0\r\n\r\nOK\r\n"
                        } else {
                            "2\r\n\r\nOK\r\n"
                        },
                        &mut note,
                    );
                }
                continue;
            }
            if b != b'\r' && b != b'\n' {
                if line.len() < 512 {
                    line.push(b);
                }
                continue;
            }
            if line.is_empty() {
                continue;
            }
            let command = String::from_utf8_lossy(&line).trim().to_string();
            line.clear();
            note(json!({"event": "in", "command": command}));
            let upper = command.to_ascii_uppercase();
            if upper == "AT" || upper == "AT&K0" || upper == "ATE0" {
                say("\r\nOK\r\n", &mut note);
            } else if let Some(n) = upper.strip_prefix("AT+SBDWB=") {
                match n.parse::<usize>() {
                    Ok(n) if (1..=drivers::satellite::iridium::MAX_MO).contains(&n) => {
                        binary = Some((n, Vec::new()));
                        say("READY\r\n", &mut note);
                    }
                    _ => say("3\r\n\r\nOK\r\n", &mut note),
                }
            } else if upper.starts_with("AT+SBDWT=") {
                mo = Some(command.as_bytes().get(9..).unwrap_or_default().to_vec());
                say("\r\nOK\r\n", &mut note);
            } else if upper == "AT+SBDIX" {
                let mo_status = match (&mo, fail.next()) {
                    (Some(_), Some(code)) => code,
                    _ => 0,
                };
                // As a real modem does, the MO buffer keeps its message after a session
                // until AT+SBDD0: every session sends it again.
                if mo_status <= 4
                    && let Some(message) = &mo
                {
                    momsn += 1;
                    if let (Some(socket), Some(peer)) = (&peer_socket, options.peer) {
                        let _ = socket.send_to(message, peer);
                    }
                }
                let (mt_status, mt_length) = match mt.pop_front() {
                    Some(message) => {
                        mtmsn += 1;
                        let len = message.len();
                        current_mt = Some(message);
                        (1, len)
                    }
                    None => (0, 0),
                };
                say(
                    &format!(
                        "+SBDIX: {mo_status}, {momsn}, {mt_status}, {mtmsn}, {mt_length}, {}\r\n\r\nOK\r\n",
                        mt.len()
                    ),
                    &mut note,
                );
            } else if upper == "AT+SBDRT" {
                let text = current_mt
                    .as_ref()
                    .map(|m| String::from_utf8_lossy(m).into_owned())
                    .unwrap_or_default();
                say(&format!("+SBDRT:\r\n{text}\r\nOK\r\n"), &mut note);
            } else if upper == "AT+SBDD0" {
                mo = None;
                say("0\r\n\r\nOK\r\n", &mut note);
            } else if upper == "AT+CGMM" {
                say(
                    "\r\nIRIDIUM 9600 Family SBD Transceiver\r\n\r\nOK\r\n",
                    &mut note,
                );
            } else if upper == "AT+CGSN" {
                say("\r\n300234010753370\r\n\r\nOK\r\n", &mut note);
            } else if upper == "AT+CSQ" {
                say(
                    &format!("+CSQ:{}\r\n\r\nOK\r\n", options.csq.min(5)),
                    &mut note,
                );
            } else {
                say("ERROR\r\n", &mut note);
            }
        }
    }
}
