//! The street and village node: receives one voice stream and relays it to every
//! downstream destination through the [`Forwarder`] core.
//!
//! The task only moves bytes: it drains each socket when it is readable, hands every
//! datagram to the core with its arrival instant, sends what the core asks through one
//! `sendmmsg(2)` fan-out per output group, and wakes the core at its deadline.

use std::collections::HashMap;
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use drivers::net::batch_recv::BatchReceiver;
use drivers::rtp::payload::PayloadFormat;
use serde::Serialize;
use tokio::io::Interest;
use tokio::net::UdpSocket;
use tracing::{debug, info, warn};

use super::srtp::{Destinations, Packet, SrtpLinks};
use super::{
    NodeError, ReceiverTable, RunOptions, bind, destination_groups, log_last_reports,
    names_by_rtcp_address, rtcp_address, stop_requested,
};
use crate::config::Config;
use crate::voice::forward::{
    EndReason, ForwardCounters, ForwardEvent, Forwarder, ForwarderConfig, GroupSpec, Transmit,
};
use crate::voice::srtp::SrtpRefusal;

/// RTP datagrams taken per receive call when several are waiting.
const RECEIVE_BATCH: usize = 32;

/// Sockets and fan-outs the core's output goes through.
struct Outputs {
    rtp: UdpSocket,
    rtcp: UdpSocket,
    rtp_groups: Vec<Destinations>,
    rtcp_groups: Vec<Destinations>,
    links: SrtpLinks,
    datagrams_sent: u64,
    send_failures: u64,
}

impl Outputs {
    fn transmit(&mut self, transmit: Transmit<'_>) {
        let report = match transmit {
            Transmit::Rtp { group, datagram } => match self.rtp_groups.get_mut(group) {
                Some(destinations) => destinations.send(&self.rtp, datagram, &mut self.links),
                None => return,
            },
            Transmit::GroupRtcp { group, datagram } => match self.rtcp_groups.get_mut(group) {
                Some(destinations) => {
                    debug!(
                        group,
                        bytes = datagram.len(),
                        "RTCP to the group's destinations"
                    );
                    destinations.send(&self.rtcp, &datagram, &mut self.links)
                }
                None => return,
            },
            Transmit::UpstreamRtcp { to, datagram } => {
                debug!(%to, "receiver report to the upstream");
                let Some(datagram) = self.links.seal_for_upstream(&datagram) else {
                    return;
                };
                if let Err(e) = self.rtcp.try_send_to(&datagram, to) {
                    debug!(%to, error = %e, "RTCP to upstream not sent");
                }
                return;
            }
        };
        self.datagrams_sent += report.sent as u64;
        self.send_failures += report.failed as u64;
    }
}

/// Forwarding statistics written at exit for benchmarks.
#[derive(Debug, Serialize)]
struct RelayStats {
    counters: CountersJson,
    datagrams_sent: u64,
    send_failures: u64,
    /// Time from a datagram's receipt by the task to the return of its last send.
    forwarding_latency_us_p50: f64,
    forwarding_latency_us_p99: f64,
    forwarding_latency_samples: usize,
    /// From the first RTP datagram received to the return of the last send it caused.
    busy_seconds: f64,
}

#[derive(Debug, Serialize)]
struct CountersJson {
    received: u64,
    forwarded: u64,
    malformed: u64,
    unknown_payload_type: u64,
    foreign_source: u64,
    competing_source: u64,
    transcode_errors: u64,
    rtcp_malformed: u64,
}

impl From<ForwardCounters> for CountersJson {
    fn from(c: ForwardCounters) -> Self {
        CountersJson {
            received: c.received,
            forwarded: c.forwarded,
            malformed: c.malformed,
            unknown_payload_type: c.unknown_payload_type,
            foreign_source: c.foreign_source,
            competing_source: c.competing_source,
            transcode_errors: c.transcode_errors,
            rtcp_malformed: c.rtcp_malformed,
        }
    }
}

/// Runs a street or village node until it is stopped.
/// Runs the relay; `upstream_active`, when given, is kept true while a stream from
/// upstream is being forwarded (the node's loudspeaker zones yield to it). With
/// `grants` (a node in a cascade), only streams a stream grant covers are forwarded.
pub async fn run(
    config: Config,
    options: RunOptions,
    upstream_active: Option<tokio::sync::watch::Sender<bool>>,
    mut grants: Option<tokio::sync::mpsc::UnboundedReceiver<super::cascade::Grant>>,
) -> Result<(), NodeError> {
    let Some(listen) = config.listen else {
        return Err(NodeError::Config("a relay node needs rtp.listen"));
    };
    let rtp = bind("RTP", listen)?;
    let rtcp = bind("RTCP", rtcp_address(listen))?;

    let links = SrtpLinks::load(&config)?;
    let groups = destination_groups(&config, &links);
    let formats: Vec<PayloadFormat> = groups.iter().map(|g| g.format).collect();
    let (rtp_groups, rtcp_groups): (Vec<Destinations>, Vec<Destinations>) =
        groups.into_iter().map(|g| (g.rtp, g.rtcp)).unzip();
    let names = names_by_rtcp_address(&config);
    let specs: Vec<GroupSpec> = formats.iter().map(|f| GroupSpec { format: *f }).collect();
    let mut forwarder = Forwarder::new(
        ForwarderConfig {
            cname: format!("{}@{}", config.name, config.area),
            opus_payload_type: config.opus_payload_type,
            opus_bitrate: config.opus_bitrate,
            allow: config.upstream_allow.clone(),
            input_timeout: config.input_timeout,
            rtcp_interval: config.rtcp_interval,
            grants_required: grants.is_some(),
        },
        &specs,
    );
    if grants.is_some() {
        info!("voice from upstream is forwarded only under a stream grant from the cascade");
    }
    let mut outputs = Outputs {
        rtp,
        rtcp,
        rtp_groups,
        rtcp_groups,
        links,
        datagrams_sent: 0,
        send_failures: 0,
    };
    info!(
        node = %config.name,
        tier = %config.tier,
        area = %config.area,
        listen = %listen,
        downstream = config.downstream.len(),
        codecs = formats.iter().map(|f| f.to_string()).collect::<Vec<_>>().join(","),
        "relay node started"
    );

    let mut reporter = super::report::ReceiptReporter::new(&config, &formats);
    if let Some(api) = &config.upstream_api {
        info!(parent = %api.url, "receipts are reported to the parent's control API");
    }
    let mut receivers = ReceiverTable::new();
    let mut latencies: Vec<u32> = Vec::new();
    let mut first_received: Option<Instant> = None;
    let mut last_forwarded: Option<Instant> = None;
    let measure = options.stats_out.is_some();
    let mut buf = vec![0u8; 2048];
    let mut rtp_batch = BatchReceiver::new(RECEIVE_BATCH, 2048);
    let mut refused = Refusals::default();
    let stop = stop_requested();
    tokio::pin!(stop);

    loop {
        let deadline = [
            forwarder.next_deadline(),
            reporter.as_ref().and_then(|r| r.next_deadline()),
        ]
        .into_iter()
        .flatten()
        .min();
        tokio::select! {
            biased;
            _ = &mut stop => break,
            ready = outputs.rtp.readable() => {
                ready?;
                loop {
                    let batch = outputs.rtp.try_io(Interest::READABLE, || rtp_batch.recv(&outputs.rtp));
                    let count = match batch {
                        Ok(count) => count,
                        Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                        Err(e) => {
                            debug!(error = %e, "RTP receive error");
                            break;
                        }
                    };
                    // Datagrams of one batch count as received when the batch was.
                    let received = Instant::now();
                    for index in 0..count {
                        let Some((datagram, Some(from))) = rtp_batch.datagram(index) else {
                            continue;
                        };
                        if outputs.links.upstream_protected() {
                            match outputs.links.open_from_upstream(datagram, Packet::Rtp) {
                                Ok(plain) => forwarder.on_rtp(&plain, from, received, &mut |t| outputs.transmit(t)),
                                Err(refusal) => refused.note(from, &refusal),
                            }
                            continue;
                        }
                        forwarder.on_rtp(datagram, from, received, &mut |t| outputs.transmit(t));
                        if measure {
                            let done = Instant::now();
                            first_received.get_or_insert(received);
                            last_forwarded = Some(done);
                            if latencies.len() < 10_000_000 {
                                let nanos = (done - received).as_nanos();
                                latencies.push(nanos.min(u128::from(u32::MAX)) as u32);
                            }
                        }
                    }
                }
            }
            ready = outputs.rtcp.readable() => {
                ready?;
                loop {
                    match outputs.rtcp.try_recv_from(&mut buf) {
                        Ok((len, from)) => {
                            let now = Instant::now();
                            let datagram = &buf[..len];
                            if outputs.links.protects(from) {
                                if let Some(plain) = outputs.links.open_from_downstream(datagram, from) {
                                    forwarder.on_rtcp(&plain, from, now, &mut |t| outputs.transmit(t));
                                }
                            } else if outputs.links.upstream_protected() {
                                // The parent's SRTCP, or a loudspeaker's plain report.
                                match outputs.links.open_from_upstream(datagram, Packet::Rtcp) {
                                    Ok(plain) => forwarder.on_rtcp(&plain, from, now, &mut |t| outputs.transmit(t)),
                                    Err(_) => forwarder.on_downstream_rtcp(datagram, from, now, &mut |t| outputs.transmit(t)),
                                }
                            } else {
                                forwarder.on_rtcp(datagram, from, now, &mut |t| outputs.transmit(t));
                            }
                        }
                        Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                        Err(e) => {
                            debug!(error = %e, "RTCP receive error");
                            break;
                        }
                    }
                }
            }
            Some(grant) = next_grant(&mut grants) => {
                let ahead = (grant.valid_until - chrono::Utc::now()).to_std().unwrap_or_default();
                let now = Instant::now();
                forwarder.grant(grant.ssrc, now + ahead, now, &mut |t| outputs.transmit(t));
            }
            _ = sleep_until_opt(deadline) => {
                forwarder.poll(Instant::now(), &mut |t| outputs.transmit(t));
                if let Some(r) = reporter.as_mut() {
                    r.poll();
                }
            }
        }
        for event in forwarder.drain_events() {
            if let Some(r) = reporter.as_mut() {
                report_event(r, &event);
            }
            if let Some(active) = &upstream_active {
                match event {
                    ForwardEvent::StreamStarted { .. } => active.send_replace(true),
                    ForwardEvent::StreamEnded { .. } => active.send_replace(false),
                    _ => false,
                };
            }
            log_event(&event, &names, &mut receivers);
        }
    }

    forwarder.shutdown(&mut |t| outputs.transmit(t));
    for event in forwarder.drain_events() {
        log_event(&event, &names, &mut receivers);
    }
    let counters = forwarder.counters();
    info!(
        received = counters.received,
        forwarded = counters.forwarded,
        malformed = counters.malformed,
        unknown_payload_type = counters.unknown_payload_type,
        foreign_source = counters.foreign_source,
        competing_source = counters.competing_source,
        ungranted = counters.ungranted,
        transcode_errors = counters.transcode_errors,
        rtcp_malformed = counters.rtcp_malformed,
        srtp_refused = refused.count,
        srtcp_refused = outputs.links.refused,
        datagrams_sent = outputs.datagrams_sent,
        send_failures = outputs.send_failures,
        "relay node stopped"
    );
    if let Some(path) = options.stats_out {
        latencies.sort_unstable();
        let percentile = |p: f64| {
            if latencies.is_empty() {
                return 0.0;
            }
            let index = ((latencies.len() - 1) as f64 * p).round() as usize;
            f64::from(latencies[index]) / 1000.0
        };
        let stats = RelayStats {
            counters: counters.into(),
            datagrams_sent: outputs.datagrams_sent,
            send_failures: outputs.send_failures,
            forwarding_latency_us_p50: percentile(0.50),
            forwarding_latency_us_p99: percentile(0.99),
            forwarding_latency_samples: latencies.len(),
            busy_seconds: match (first_received, last_forwarded) {
                (Some(first), Some(last)) => (last - first).as_secs_f64(),
                _ => 0.0,
            },
        };
        let json = serde_json::to_string_pretty(&stats).map_err(|e| NodeError::Stats {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        std::fs::write(&path, json).map_err(|e| NodeError::Stats {
            path: path.clone(),
            reason: e.to_string(),
        })?;
    }
    Ok(())
}

/// RTP from above refused by the SRTP link, said to the operator at the first and then
/// at every thousandth, so a flood of forged packets does not flood the journal.
#[derive(Default)]
struct Refusals {
    count: u64,
}

impl Refusals {
    fn note(&mut self, from: SocketAddr, refusal: &SrtpRefusal) {
        self.count += 1;
        if self.count % 1000 == 1 {
            warn!(%from, reason = %refusal, refused = self.count, "RTP from above refused: not SRTP under the link's key");
        }
    }
}

/// Hands the reporter what it needs of a forwarding event.
fn report_event(reporter: &mut super::report::ReceiptReporter, event: &ForwardEvent) {
    match event {
        ForwardEvent::SourceNote { ssrc, note } => reporter.on_note(*ssrc, note),
        ForwardEvent::StreamEnded { ssrc, outputs, .. } => reporter.on_stream_ended(*ssrc, outputs),
        ForwardEvent::ReceiverReport { from, block, .. } => {
            reporter.on_receiver_report(*from, block)
        }
        ForwardEvent::StreamStarted { .. } | ForwardEvent::Ungranted { .. } => {}
    }
}

/// The next grant from the cascade; never, without one.
async fn next_grant(
    grants: &mut Option<tokio::sync::mpsc::UnboundedReceiver<super::cascade::Grant>>,
) -> Option<super::cascade::Grant> {
    match grants {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => tokio::time::sleep(Duration::from_secs(3600)).await,
    }
}

/// Logs one event; at the end of a stream, one line per destination with its last report,
/// and a warning for each that never reported.
fn log_event(
    event: &ForwardEvent,
    names: &HashMap<SocketAddr, &str>,
    receivers: &mut ReceiverTable,
) {
    if let ForwardEvent::StreamEnded { .. } = event {
        log_last_reports(names, receivers);
        receivers.clear();
    }
    if let ForwardEvent::ReceiverReport {
        from,
        block,
        format,
        ..
    } = event
    {
        receivers.insert(*from, (format.clock_rate(), *block));
    }
    match event {
        ForwardEvent::StreamStarted { ssrc, from, format } => {
            info!(ssrc, %from, codec = %format, "voice stream from upstream started")
        }
        ForwardEvent::SourceNote { ssrc, note } => debug!(ssrc, note, "upstream note"),
        ForwardEvent::Ungranted { ssrc, from } => {
            warn!(ssrc, %from, "voice stream without a stream grant: not forwarded")
        }
        ForwardEvent::StreamEnded {
            ssrc,
            reason,
            received,
            lost,
            ..
        } => {
            let reason = match reason {
                EndReason::Bye => "BYE",
                EndReason::Timeout => "input time-out",
                EndReason::Shutdown => "node stopping",
            };
            info!(
                ssrc,
                reason, received, lost, "voice stream ended, BYE sent downstream"
            )
        }
        ForwardEvent::ReceiverReport {
            from,
            reporter,
            group,
            block,
            ..
        } => {
            let receiver = names.get(from).copied().unwrap_or("unknown");
            if block.fraction_lost > 0 {
                warn!(
                    receiver,
                    reporter,
                    group,
                    loss_percent = format!("{:.1}", f64::from(block.fraction_lost) * 100.0 / 256.0),
                    lost = block.cumulative_lost,
                    "loudspeaker reports loss"
                );
            } else {
                debug!(
                    receiver,
                    reporter,
                    group,
                    jitter = block.jitter,
                    "receiver report"
                );
            }
        }
    }
}
