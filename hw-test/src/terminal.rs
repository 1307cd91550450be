//! The technician's tools for satellite terminals on a serial port: `probe` tells what
//! is on a port, `send` and `listen` move a test message through it.
//!
//! Each runs one of `drivers`' bearer cores on the port in a plain loop: write what the
//! core asks, read what the terminal says (with a short time-out), poll the core.

use std::io::{Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use drivers::satellite::bearer::{Bearer, BearerEvent};
use drivers::satellite::beidou::bd1::{self, Bd1Inbound};
use drivers::satellite::beidou::bds3::{self, Bds3Inbound};
use drivers::satellite::beidou::nmea::{CardInfo, Inbound, SentenceReader, host};
use drivers::satellite::{self, BeidouDialect};

/// Why a tool could not do its work.
#[derive(Debug, thiserror::Error)]
pub enum TerminalError {
    #[error("cannot open {port}: {reason}")]
    Open { port: String, reason: String },
    #[error("{port}: {reason}")]
    Io { port: String, reason: String },
    #[error("nothing answered on {0} at 9600, 19200 or 115200 baud")]
    NoAnswer(String),
}

/// Which kind of terminal a tool talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TerminalKind {
    Beidou,
    Iridium,
    Sms,
}

/// What `probe` found.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ProbeReport {
    pub kind: String,
    pub baud: u32,
    pub identity: String,
    /// 0 (none) to 4 (strong), where the terminal said.
    pub signal: Option<u8>,
    pub details: Vec<String>,
}

fn open(port: &str, baud: u32) -> Result<Box<dyn serialport::SerialPort>, TerminalError> {
    serialport::new(port, baud)
        .timeout(Duration::from_millis(20))
        .open()
        .map_err(|e| TerminalError::Open {
            port: port.into(),
            reason: e.to_string(),
        })
}

/// Writes `bytes`, then gathers what comes back for `wait`.
fn ask(
    port: &mut Box<dyn serialport::SerialPort>,
    bytes: &[u8],
    wait: Duration,
) -> Result<Vec<u8>, std::io::Error> {
    port.write_all(bytes)?;
    let end = Instant::now() + wait;
    let mut got = Vec::new();
    let mut buffer = [0u8; 512];
    while Instant::now() < end {
        match port.read(&mut buffer) {
            Ok(n) => got.extend_from_slice(&buffer[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// Finds what answers on `port`: a BeiDou 2.1 terminal (`$CCICA`), or an AT modem
/// (Iridium if `AT+CGMM` names it, else an SMS modem), at the first speed that answers.
pub fn probe(port_name: &str) -> Result<ProbeReport, TerminalError> {
    let io = |e: std::io::Error| TerminalError::Io {
        port: port_name.into(),
        reason: e.to_string(),
    };
    for baud in [9600, 19200, 115200] {
        let mut port = open(port_name, baud)?;
        let wait = Duration::from_millis(600);
        if let Some(report) = probe_beidou(&mut port, baud, wait).map_err(io)? {
            return Ok(report);
        }
        // The CR first ends whatever the BeiDou probes left on a modem's command line.
        let answer = ask(&mut port, b"\rAT\r", wait).map_err(io)?;
        if !String::from_utf8_lossy(&answer).contains("OK") {
            continue;
        }
        let text = |bytes: Vec<u8>| {
            String::from_utf8_lossy(&bytes)
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && *l != "OK" && !l.starts_with("AT"))
                .collect::<Vec<_>>()
                .join(" ")
        };
        let model = text(ask(&mut port, b"AT+CGMM\r", wait).map_err(io)?);
        let serial = text(ask(&mut port, b"AT+CGSN\r", wait).map_err(io)?);
        let csq = text(ask(&mut port, b"AT+CSQ\r", wait).map_err(io)?);
        let iridium = model.to_ascii_uppercase().contains("IRIDIUM");
        let signal = csq
            .trim_start_matches("+CSQ:")
            .split(',')
            .next()
            .and_then(|v| v.trim().parse::<u8>().ok())
            .map(|v| {
                if iridium {
                    (v.min(5) * 4 + 2) / 5
                } else {
                    drivers::satellite::sms::modem::signal_level(v)
                }
            });
        let mut details = vec![format!("model: {model}"), format!("signal: {csq}")];
        if !iridium {
            details.push(format!(
                "registration: {}",
                text(ask(&mut port, b"AT+CREG?\r", wait).map_err(io)?)
            ));
        }
        return Ok(ProbeReport {
            kind: if iridium {
                "Iridium SBD (AT)".into()
            } else {
                "SMS modem (AT, TS 27.005)".into()
            },
            baud,
            identity: serial,
            signal,
            details,
        });
    }
    Err(TerminalError::NoAnswer(port_name.into()))
}

/// Asks for a BeiDou card in each dialect, BDS-3, 2.1 and 4.0; reports the first that
/// answers, with its signal where the dialect reports one.
fn probe_beidou(
    port: &mut Box<dyn serialport::SerialPort>,
    baud: u32,
    wait: Duration,
) -> Result<Option<ProbeReport>, std::io::Error> {
    let mut reader = SentenceReader::new();
    let answer = ask(port, &bds3::host::card_info().encode(), wait)?;
    if let Some(card) =
        reader
            .push(&answer)
            .into_iter()
            .flatten()
            .find_map(|s| match Bds3Inbound::read(&s) {
                Ok(Bds3Inbound::Card(card)) => Some(card),
                _ => None,
            })
    {
        // A module reports its beams every second by itself.
        let beams = ask(port, b"", Duration::from_millis(1500))?;
        let signal =
            reader
                .push(&beams)
                .into_iter()
                .flatten()
                .find_map(|s| match Bds3Inbound::read(&s) {
                    Ok(Bds3Inbound::Power(level)) => Some(level),
                    _ => None,
                });
        return Ok(Some(beidou_report("BDS-3 sentences", baud, &card, signal)));
    }
    let answer = ask(port, &host::card_info().encode(), wait)?;
    if let Some(card) =
        reader
            .push(&answer)
            .into_iter()
            .flatten()
            .find_map(|s| match Inbound::read(&s) {
                Ok(Inbound::CardInfo(card)) => Some(card),
                _ => None,
            })
    {
        let beams = ask(
            port,
            &host::output("BSI", 2, 1).encode(),
            Duration::from_millis(1500),
        )?;
        let signal =
            reader
                .push(&beams)
                .into_iter()
                .flatten()
                .find_map(|s| match Inbound::read(&s) {
                    Ok(Inbound::Beam(b)) => Some(b.best()),
                    _ => None,
                });
        let _ = port.write_all(&host::output("BSI", 2, 0).encode());
        return Ok(Some(beidou_report("2.1 sentences", baud, &card, signal)));
    }
    let answer = ask(port, &bd1::card_info(0).encode(), wait)?;
    let mut frames = bd1::FrameReader::new();
    Ok(frames
        .push(&answer)
        .iter()
        .find_map(|f| match Bd1Inbound::read(f) {
            Ok(Bd1Inbound::Card(card)) => Some(card),
            _ => None,
        })
        .map(|card| beidou_report("4.0 frames", baud, &card.card_info(), None)))
}

fn beidou_report(dialect: &str, baud: u32, card: &CardInfo, signal: Option<u8>) -> ProbeReport {
    ProbeReport {
        kind: format!("BeiDou RDSS ({dialect})"),
        baud,
        identity: card.id.clone(),
        signal,
        details: vec![
            format!("service interval {} s", card.service_interval.as_secs()),
            format!(
                "comm level {} ({} bits a message)",
                card.comm_level,
                card.capacity_bits()
            ),
            format!("encrypted: {}", if card.encrypted { "yes" } else { "no" }),
        ],
    }
}

/// The bearer core for a kind of terminal (`dialect` for BeiDou).
pub fn bearer(kind: TerminalKind, dialect: BeidouDialect, now: Instant) -> Box<dyn Bearer> {
    let kind = match kind {
        TerminalKind::Beidou => satellite::TerminalKind::Beidou(dialect),
        TerminalKind::Iridium => satellite::TerminalKind::Iridium,
        TerminalKind::Sms => satellite::TerminalKind::Sms,
    };
    satellite::bearer_for(kind, now)
}

/// Runs `bearer` on the port at `baud` until `done` holds for an event, or `limit`;
/// `on_event` sees every event as it comes.
pub fn drive(
    port_name: &Path,
    baud: u32,
    bearer: &mut dyn Bearer,
    limit: Duration,
    mut on_event: impl FnMut(&BearerEvent) -> bool,
) -> Result<bool, TerminalError> {
    let name = port_name.display().to_string();
    let mut port = open(&name, baud)?;
    let io = |e: std::io::Error| TerminalError::Io {
        port: name.clone(),
        reason: e.to_string(),
    };
    let end = Instant::now() + limit;
    let mut buffer = [0u8; 512];
    while Instant::now() < end {
        let out = bearer.take_output();
        if !out.is_empty() {
            port.write_all(&out).map_err(io)?;
        }
        match port.read(&mut buffer) {
            Ok(n) => bearer.on_bytes(&buffer[..n], Instant::now()),
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(e) => return Err(io(e)),
        }
        bearer.poll(Instant::now());
        for event in bearer.drain_events() {
            if on_event(&event) {
                return Ok(true);
            }
        }
    }
    Ok(false)
}
