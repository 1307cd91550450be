//! The tasks of a patch's network members: an RTP link to another gateway, and a zone
//! of this node's loudspeakers. They speak to the patching task as a radio port does
//! ([`PortEvent`], [`PortCommand`]), so the bus treats every member alike.
//!
//! A zone yields to the node's own voice stream: while the relay forwards a stream from
//! upstream (which carries the district's alerts and programmes) the zone sends
//! nothing, and a zone stream that was playing ends with RTCP BYE so the loudspeakers
//! take the upstream stream at once.

use std::net::SocketAddr;
use std::time::Instant;

use drivers::rtp::payload::PayloadFormat;
use drivers::rtp::rtcp::{CompoundSpec, build_compound};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tracing::{info, warn};

use super::radio::{PortCommand, PortEvent, PortHandle};
use super::rtcp_address;
use crate::cascade::keys::SrtpKey;
use crate::config::{LinkConfig, ZoneConfig};
use crate::patch::MemberId;
use crate::voice::link::{LinkEvent, LinkReceiver, LinkSender};
use crate::voice::srtp::{SrtpLink, SrtpRefusal};

/// What a network member's task needs besides its own table.
#[derive(Debug, Clone)]
pub struct NetSettings {
    pub opus_payload_type: u8,
    pub opus_bitrate: u32,
    /// True while the node relays a stream from upstream, which zones yield to.
    pub upstream_active: watch::Receiver<bool>,
}

/// Starts the task of RTP link `config`.
pub fn spawn_link(
    config: LinkConfig,
    settings: &NetSettings,
    events: mpsc::UnboundedSender<PortEvent>,
    tasks: &mut JoinSet<MemberId>,
) -> PortHandle {
    let (commands, inbox) = mpsc::unbounded_channel();
    let (task_config, settings) = (config.clone(), settings.clone());
    let name = MemberId(config.name.clone());
    tasks.spawn(supervise(
        "link",
        name,
        events.clone(),
        inbox,
        move |mut inbox| {
            let (config, settings, events) =
                (task_config.clone(), settings.clone(), events.clone());
            async move {
                let result = run_link(&config, &settings, &events, &mut inbox).await;
                (result, inbox)
            }
        },
    ));
    PortHandle {
        config: super::radio::MemberConfig::Link(config),
        commands,
    }
}

/// The first wait before a member's sockets are bound again; it doubles up to
/// [`MAX_BACKOFF`].
const FIRST_BACKOFF: std::time::Duration = std::time::Duration::from_millis(500);
const MAX_BACKOFF: std::time::Duration = std::time::Duration::from_secs(10);

type Inbox = mpsc::UnboundedReceiver<PortCommand>;

/// Runs a network member until it is stopped: each time `run` fails (its sockets), the
/// member is reported down and run again after a doubling backoff. `run` gets the inbox
/// and gives it back with its outcome. Gives the member's name when it ends.
async fn supervise<Fut>(
    kind: &'static str,
    name: MemberId,
    events: mpsc::UnboundedSender<PortEvent>,
    mut inbox: Inbox,
    mut run: impl FnMut(Inbox) -> Fut,
) -> MemberId
where
    Fut: std::future::Future<Output = (Result<(), String>, Inbox)>,
{
    let mut backoff = FIRST_BACKOFF;
    loop {
        let (result, back) = run(inbox).await;
        inbox = back;
        match result {
            Ok(()) => break,
            Err(reason) => {
                warn!(member = %name, %kind, %reason, retry_in = ?backoff, "{kind} down");
                let _ = events.send(PortEvent::Down(name.clone(), reason));
            }
        }
        if !wait_out(backoff, &mut inbox).await {
            break;
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
    name
}

/// Waits `backoff`, dropping audio meant for a member that is down; false when the
/// member is being stopped.
async fn wait_out(
    backoff: std::time::Duration,
    inbox: &mut mpsc::UnboundedReceiver<PortCommand>,
) -> bool {
    let until = tokio::time::Instant::now() + backoff;
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(until) => return true,
            command = inbox.recv() => match command {
                None | Some(PortCommand::Stop) => return false,
                Some(PortCommand::Transmit(_)) => {}
            },
        }
    }
}

/// Runs the link until it is stopped (`Ok`) or its sockets fail (`Err`).
async fn run_link(
    config: &LinkConfig,
    settings: &NetSettings,
    events: &mpsc::UnboundedSender<PortEvent>,
    inbox: &mut mpsc::UnboundedReceiver<PortCommand>,
) -> Result<(), String> {
    let name = MemberId(config.name.clone());
    let bind = |addr: SocketAddr| {
        std::net::UdpSocket::bind(addr)
            .and_then(|s| s.set_nonblocking(true).map(|()| s))
            .and_then(UdpSocket::from_std)
            .map_err(|e| format!("cannot bind {addr}: {e}"))
    };
    let rtp = bind(config.listen)?;
    let rtcp = bind(rtcp_address(config.listen))?;
    let mut sender =
        LinkSender::new(PayloadFormat::OPUS, settings.opus_bitrate).map_err(|e| e.to_string())?;
    let mut receiver =
        LinkReceiver::new(settings.opus_payload_type, Instant::now()).map_err(|e| e.to_string())?;
    let mut srtp = match &config.srtp_key {
        Some(path) => {
            let key = SrtpKey::load(path).map_err(|e| e.to_string())?;
            Some(SrtpLink::new(&key).map_err(|e| e.to_string())?)
        }
        None => None,
    };
    info!(link = %name, listen = %config.listen, send_to = %config.send_to, srtp = srtp.is_some(), "RTP link up");
    let _ = events.send(PortEvent::Up(name.clone()));

    let mut rtp_buffer = vec![0u8; 1500];
    let mut rtcp_buffer = vec![0u8; 1500];
    // Only the far gateway may talk on the link: anything else is dropped, so nobody
    // who can reach the port can key the patch's radios (docs/limitations.md: the link
    // is not authenticated beyond this).
    let peer = config.send_to.ip();
    let mut foreign: u64 = 0;
    let mut refused: u64 = 0;
    let result = loop {
        let deadline = receiver.next_deadline();
        tokio::select! {
            command = inbox.recv() => match command {
                Some(PortCommand::Transmit(frame)) => {
                    match sender.send(&frame, Instant::now()) {
                        Ok(packet) => match seal(srtp.as_mut(), &packet, false) {
                            Some(packet) => {
                                let _ = rtp.send_to(&packet, config.send_to).await;
                            }
                            None => warn!(link = %name, "cannot protect a packet for the link"),
                        },
                        Err(e) => warn!(link = %name, error = %e, "cannot encode for the link"),
                    }
                }
                None | Some(PortCommand::Stop) => {
                    send_bye(&rtcp, sender.ssrc(), rtcp_address(config.send_to), srtp.as_mut()).await;
                    break Ok(());
                }
            },
            read = rtp.recv_from(&mut rtp_buffer) => match read {
                Ok((n, from)) if from.ip() == peer => match open(srtp.as_mut(), &rtp_buffer[..n], false) {
                    Ok(packet) => receiver.on_rtp(&packet, Instant::now()),
                    Err(e) => {
                        refused += 1;
                        if refused.is_power_of_two() {
                            warn!(link = %name, %from, reason = %e, refused, "RTP on the link refused: not SRTP under its key");
                        }
                    }
                },
                Ok((_, from)) => {
                    foreign += 1;
                    if foreign.is_power_of_two() {
                        warn!(link = %name, %from, dropped = foreign, "RTP on the link from a stranger dropped");
                    }
                }
                Err(e) => break Err(format!("link socket: {e}")),
            },
            read = rtcp.recv_from(&mut rtcp_buffer) => match read {
                Ok((n, from)) if from.ip() == peer => match open(srtp.as_mut(), &rtcp_buffer[..n], true) {
                    Ok(packet) => receiver.on_rtcp(&packet),
                    Err(_) => refused += 1,
                },
                Ok(_) => foreign += 1,
                Err(e) => break Err(format!("link socket: {e}")),
            },
            _ = super::patching::sleep_until(deadline) => {}
        }
        for event in receiver.poll(Instant::now()) {
            let event = match event {
                LinkEvent::Open => PortEvent::Carrier(name.clone(), true),
                LinkEvent::Frame(frame) => PortEvent::Audio(name.clone(), frame),
                LinkEvent::Close => PortEvent::Carrier(name.clone(), false),
            };
            let _ = events.send(event);
        }
    };
    // A link that stops while the far side talks must not hold the floor.
    if receiver.is_open() {
        let _ = events.send(PortEvent::Carrier(name.clone(), false));
    }
    result
}

/// `packet` as it goes on the link: protected under its SRTP key where it has one.
fn seal(srtp: Option<&mut SrtpLink>, packet: &[u8], rtcp: bool) -> Option<Vec<u8>> {
    match srtp {
        None => Some(packet.to_vec()),
        Some(link) if rtcp => link.protect_rtcp(packet).ok(),
        Some(link) => link.protect_rtp(packet).ok(),
    }
}

/// `packet` as it came on the link, unprotected where the link has an SRTP key.
fn open(srtp: Option<&mut SrtpLink>, packet: &[u8], rtcp: bool) -> Result<Vec<u8>, SrtpRefusal> {
    match srtp {
        None => Ok(packet.to_vec()),
        Some(link) if rtcp => link.unprotect_rtcp(packet),
        Some(link) => link.unprotect_rtp(packet),
    }
}

async fn send_bye(socket: &UdpSocket, ssrc: u32, to: SocketAddr, srtp: Option<&mut SrtpLink>) {
    let spec = CompoundSpec {
        ssrc,
        sender: None,
        blocks: &[],
        cname: "emcomm",
        bye_reason: Some("patch ended"),
        note: None,
    };
    if let Some(bye) = build_compound(&spec)
        .ok()
        .and_then(|b| seal(srtp, &b, true))
    {
        let _ = socket.send_to(&bye, to).await;
    }
}

/// Starts the task of loudspeaker zone `config`.
pub fn spawn_zone(
    config: ZoneConfig,
    settings: &NetSettings,
    events: mpsc::UnboundedSender<PortEvent>,
    tasks: &mut JoinSet<MemberId>,
) -> PortHandle {
    let (commands, inbox) = mpsc::unbounded_channel();
    let (task_config, settings) = (config.clone(), settings.clone());
    let name = MemberId(config.name.clone());
    tasks.spawn(supervise(
        "zone",
        name,
        events.clone(),
        inbox,
        move |mut inbox| {
            let (config, settings, events) =
                (task_config.clone(), settings.clone(), events.clone());
            async move {
                let result = run_zone(&config, settings, &events, &mut inbox).await;
                (result, inbox)
            }
        },
    ));
    PortHandle {
        config: super::radio::MemberConfig::Zone(config),
        commands,
    }
}

/// One payload format's stream to the zone's loudspeakers that take it.
struct ZoneStream {
    sender: LinkSender,
    rtp: Vec<SocketAddr>,
}

async fn run_zone(
    config: &ZoneConfig,
    mut settings: NetSettings,
    events: &mpsc::UnboundedSender<PortEvent>,
    inbox: &mut mpsc::UnboundedReceiver<PortCommand>,
) -> Result<(), String> {
    let name = MemberId(config.name.clone());
    let socket = std::net::UdpSocket::bind(("0.0.0.0", 0))
        .and_then(|s| s.set_nonblocking(true).map(|()| s))
        .and_then(UdpSocket::from_std)
        .map_err(|e| format!("cannot bind a socket: {e}"))?;
    let mut streams: Vec<FormatStream> = Vec::new();
    for speaker in &config.loudspeakers {
        let format = match speaker.format {
            PayloadFormat::Opus { .. } => PayloadFormat::Opus {
                payload_type: settings.opus_payload_type,
            },
            other => other,
        };
        match streams.iter_mut().find(|s| s.sender_format == format) {
            Some(stream) => stream.stream.rtp.push(speaker.address),
            None => streams.push(FormatStream {
                sender_format: format,
                stream: ZoneStream {
                    sender: LinkSender::new(format, settings.opus_bitrate)
                        .map_err(|e| e.to_string())?,
                    rtp: vec![speaker.address],
                },
            }),
        }
    }
    info!(zone = %name, loudspeakers = config.loudspeakers.len(), "loudspeaker zone ready");
    let _ = events.send(PortEvent::Up(name.clone()));

    let mut yielding = *settings.upstream_active.borrow();
    // Without a relay on this node (its sender gone) there is nothing to yield to.
    let mut watching = true;
    loop {
        tokio::select! {
            command = inbox.recv() => match command {
                Some(PortCommand::Transmit(frame)) if !yielding => {
                    let now = Instant::now();
                    for s in &mut streams {
                        match s.stream.sender.send(&frame, now) {
                            Ok(packet) => {
                                for to in &s.stream.rtp {
                                    let _ = socket.send_to(&packet, *to).await;
                                }
                            }
                            Err(e) => warn!(zone = %name, error = %e, "cannot encode for the zone"),
                        }
                    }
                }
                Some(PortCommand::Transmit(_)) => {}
                None | Some(PortCommand::Stop) => {
                    end_streams(&socket, byes(&streams)).await;
                    return Ok(());
                }
            },
            changed = settings.upstream_active.changed(), if watching => {
                if changed.is_err() {
                    watching = false;
                    continue;
                }
                let active = *settings.upstream_active.borrow();
                if active && !yielding {
                    info!(zone = %name, "upstream voice takes the zone's loudspeakers: the patch yields");
                    end_streams(&socket, byes(&streams)).await;
                } else if !active && yielding {
                    info!(zone = %name, "upstream voice ended: the zone takes patch audio again");
                }
                yielding = active;
            }
        }
    }
}

struct FormatStream {
    sender_format: PayloadFormat,
    stream: ZoneStream,
}

/// Where to say BYE for every zone stream.
fn byes(streams: &[FormatStream]) -> Vec<(u32, SocketAddr)> {
    streams
        .iter()
        .flat_map(|s| {
            s.stream
                .rtp
                .iter()
                .map(|to| (s.stream.sender.ssrc(), rtcp_address(*to)))
        })
        .collect()
}

/// Says BYE for every zone stream, so loudspeakers end it at once.
async fn end_streams(socket: &UdpSocket, byes: Vec<(u32, SocketAddr)>) {
    for (ssrc, to) in byes {
        send_bye(socket, ssrc, to, None).await;
    }
}
