//! The district node: originates one voice stream and sends it to its downstream
//! nodes, encoded once per codec they take.
//!
//! Frames of a file programme are paced on the monotonic clock (frame *k* at start +
//! 20 ms × *k*, so pacing errors never accumulate); frames from a capture device come
//! at the device's own pace. Sender reports go out on the RTCP schedule, and a
//! BYE when the programme ends or the node is stopped. Receiver reports from the
//! downstream nodes are logged, so the operator sees each one's loss and jitter.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Instant;

use codecs::opus::FRAME_SAMPLES;
use drivers::rtp::ntp::NtpAnchor;
use drivers::rtp::packetizer::Packetizer;
use drivers::rtp::payload::PACKET_DURATION;
use drivers::rtp::rtcp::{CompoundSpec, RtcpEvent, build_compound, parse_compound};
use drivers::rtp::session::RtcpSchedule;
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use super::srtp::{Destinations, SrtpLinks};
use super::{
    NodeError, ReceiverTable, bind, destination_groups, log_last_reports, names_by_rtcp_address,
    rtcp_address, stop_requested,
};
use crate::config::{Config, VoiceSource};
use crate::voice::encoder::FrameEncoder;
use crate::voice::programme;

/// Everything sent in one payload format.
struct Group {
    encoder: FrameEncoder,
    packetizer: Packetizer,
    rtp: Destinations,
    rtcp: Destinations,
}

/// Where the frames come from.
enum Frames {
    Programme { samples: Vec<i16>, next: usize },
    Capture(mpsc::Receiver<Vec<i16>>),
}

impl Frames {
    fn open(source: &VoiceSource) -> Result<Frames, NodeError> {
        match source {
            VoiceSource::Files { files, gap, repeat } => {
                let samples = programme::assemble(files, *gap, *repeat)?;
                info!(
                    files = files.len(),
                    repeat,
                    seconds = format!("{:.1}", samples.len() as f64 / 48_000.0),
                    "voice programme loaded"
                );
                Ok(Frames::Programme { samples, next: 0 })
            }
            VoiceSource::Device(name) => {
                let capture = drivers::audio::open_capture(Some(name))?;
                let (tx, rx) = mpsc::channel(50);
                std::thread::spawn(move || {
                    while let Some(frame) = capture.next_frame() {
                        match frame {
                            Ok(frame) => {
                                if tx.blocking_send(frame).is_err() {
                                    break;
                                }
                            }
                            Err(e) => {
                                warn!(error = %e, "capture device lost");
                                break;
                            }
                        }
                    }
                });
                info!(device = %name, "capturing voice");
                Ok(Frames::Capture(rx))
            }
        }
    }

    /// The next 20 ms frame and the instant it stands for (its nominal time in a
    /// programme, its arrival from a capture device), waiting for its time; `None`
    /// at the end.
    async fn next(&mut self, start: Instant) -> Option<(Vec<i16>, Instant)> {
        match self {
            Frames::Programme { samples, next } => {
                if *next >= samples.len() {
                    return None;
                }
                let k = (*next / FRAME_SAMPLES) as u32;
                let nominal = start + PACKET_DURATION * k;
                tokio::time::sleep_until(nominal.into()).await;
                let end = (*next + FRAME_SAMPLES).min(samples.len());
                let mut frame = samples[*next..end].to_vec();
                frame.resize(FRAME_SAMPLES, 0);
                *next = end;
                Some((frame, nominal))
            }
            Frames::Capture(rx) => rx.recv().await.map(|frame| (frame, Instant::now())),
        }
    }
}

/// Runs a district node until its programme ends or it is stopped.
pub async fn run(config: Config) -> Result<(), NodeError> {
    let anchor = NtpAnchor::now();
    let cname = format!("{}@{}", config.name, config.area);
    let Some(source) = config.source.as_ref() else {
        return Err(NodeError::Config("a district node needs a [source]"));
    };
    let mut frames = Frames::open(source)?;

    let (rtp_addr, rtcp_addr): (SocketAddr, SocketAddr) = match config.listen {
        Some(listen) => (listen, rtcp_address(listen)),
        None => (([0, 0, 0, 0], 0).into(), ([0, 0, 0, 0], 0).into()),
    };
    let rtp = bind("RTP", rtp_addr)?;
    let rtcp = bind("RTCP", rtcp_addr)?;

    let mut links = SrtpLinks::load(&config)?;
    let mut groups = Vec::new();
    for destinations in destination_groups(&config, &links) {
        groups.push(Group {
            encoder: FrameEncoder::new(destinations.format, config.opus_bitrate)?,
            packetizer: Packetizer::new(destinations.format),
            rtp: destinations.rtp,
            rtcp: destinations.rtcp,
        });
    }
    let names = names_by_rtcp_address(&config);
    info!(
        node = %config.name,
        tier = %config.tier,
        area = %config.area,
        downstream = config.downstream.len(),
        "district node started"
    );

    let mut schedule = RtcpSchedule::new(config.rtcp_interval);
    let mut reports = ReceiverTable::new();
    let mut rtcp_buf = [0u8; 1500];
    let start = Instant::now();
    let stop = stop_requested();
    tokio::pin!(stop);
    let mut stopped = false;
    let mut started = false;

    loop {
        tokio::select! {
            biased;
            _ = &mut stop => {
                info!("stop requested");
                stopped = true;
                break;
            }
            received = rtcp.recv_from(&mut rtcp_buf) => {
                let (len, from) = received?;
                if let Some(datagram) = links.open_from_downstream(&rtcp_buf[..len], from) {
                    on_rtcp(&datagram, from, &groups, &names, &mut reports);
                }
            }
            _ = sleep_until_opt(schedule.next_deadline()) => {
                let now = Instant::now();
                if schedule.poll(now) {
                    send_reports(&mut groups, &rtcp, &mut links, now, &anchor, &cname, None);
                }
            }
            frame = frames.next(start) => {
                let Some((frame, captured)) = frame else { break };
                let now = Instant::now();
                for group in &mut groups {
                    let payload = group.encoder.encode(&frame)?;
                    // The stream's clock runs from the frame's nominal time, so any
                    // pacing or encoding delay shows up in the receivers' latency.
                    let datagram = group.packetizer.packetize(payload, captured);
                    group.rtp.send(&rtp, &datagram, &mut links);
                }
                if !started {
                    started = true;
                    schedule.start(now);
                    // An early report lets receivers map the stream to wall-clock time.
                    send_reports(&mut groups, &rtcp, &mut links, now, &anchor, &cname, None);
                    for group in &groups {
                        info!(ssrc = group.packetizer.ssrc(), codec = %group.packetizer.format(), "voice stream started");
                    }
                }
            }
        }
    }

    let now = Instant::now();
    send_reports(
        &mut groups,
        &rtcp,
        &mut links,
        now,
        &anchor,
        &cname,
        Some(if stopped {
            "node stopped"
        } else {
            "end of programme"
        }),
    );
    for group in &groups {
        info!(
            ssrc = group.packetizer.ssrc(),
            packets = group.packetizer.packet_count(),
            "voice stream ended, BYE sent"
        );
    }
    log_last_reports(&names, &reports);
    Ok(())
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

fn send_reports(
    groups: &mut [Group],
    rtcp: &tokio::net::UdpSocket,
    links: &mut SrtpLinks,
    now: Instant,
    anchor: &NtpAnchor,
    cname: &str,
    bye: Option<&str>,
) {
    for group in groups {
        let Some(sender) = group.packetizer.sender_info(now, anchor) else {
            continue;
        };
        let spec = CompoundSpec {
            ssrc: sender.ssrc,
            sender: Some(sender),
            blocks: &[],
            cname,
            bye_reason: bye,
            note: None,
        };
        match build_compound(&spec) {
            Ok(datagram) => {
                let report = group.rtcp.send(rtcp, &datagram, links);
                debug!(
                    ssrc = sender.ssrc,
                    bye = bye.is_some(),
                    sent = report.sent,
                    "sender report sent"
                );
            }
            Err(e) => warn!(error = %e, "cannot build RTCP report"),
        }
    }
}

fn on_rtcp(
    datagram: &[u8],
    from: SocketAddr,
    groups: &[Group],
    names: &HashMap<SocketAddr, &str>,
    reports: &mut ReceiverTable,
) {
    let events = match parse_compound(datagram) {
        Ok(events) => events,
        Err(e) => {
            debug!(%from, error = %e, "RTCP dropped");
            return;
        }
    };
    for event in events {
        let RtcpEvent::ReceptionReport { block, .. } = event else {
            continue;
        };
        let Some(group) = groups.iter().find(|g| g.packetizer.ssrc() == block.ssrc) else {
            continue;
        };
        let clock = f64::from(group.packetizer.format().clock_rate()) / 1000.0;
        let receiver = names.get(&from).copied().unwrap_or("unknown");
        let first = !reports.contains_key(&from);
        if first || block.fraction_lost > 0 {
            info!(
                receiver,
                address = %from,
                loss_percent = format!("{:.1}", f64::from(block.fraction_lost) * 100.0 / 256.0),
                lost = block.cumulative_lost,
                jitter_ms = format!("{:.1}", f64::from(block.jitter) / clock),
                "receiver report"
            );
        } else {
            debug!(
                receiver,
                lost = block.cumulative_lost,
                jitter = block.jitter,
                "receiver report"
            );
        }
        reports.insert(from, (group.packetizer.format().clock_rate(), block));
    }
}
