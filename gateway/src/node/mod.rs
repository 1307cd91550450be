//! The node's tasks: sockets and timers around the sans-IO cores.
//!
//! A district node originates voice ([`origin`]); street and village nodes relay it
//! ([`relay`]). Both stop on SIGINT or SIGTERM after sending RTCP BYE on every stream
//! they were sending, so downstream receivers know the stream ended.

pub mod cascade;
pub mod district;
mod link;
mod live;
pub mod origin;
pub mod patching;
mod radio;
mod recorder;
pub mod relay;
pub mod report;
mod srtp;
pub mod terminal;

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::config::{Config, Tier};

/// Why a node stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// A configuration that bypassed [`Config::load`]'s validation.
    #[error("configuration: {0}")]
    Config(&'static str),
    #[error("cannot bind {what} socket on {addr}: {source}")]
    Bind {
        what: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("socket error: {0}")]
    Io(#[from] std::io::Error),
    #[error("voice source: {0}")]
    Programme(#[from] codecs::AudioFileError),
    #[error("codec: {0}")]
    Codec(#[from] codecs::CodecError),
    #[error("audio device: {0}")]
    Audio(#[from] drivers::audio::AudioError),
    #[error("{0}")]
    Setup(String),
    #[error("cannot write statistics to {path}: {reason}")]
    Stats { path: PathBuf, reason: String },
}

/// Options that are not part of the node's configuration.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Where a relay writes its forwarding statistics as JSON when it stops.
    pub stats_out: Option<PathBuf>,
    /// The configuration file, re-read on SIGHUP.
    pub config_path: Option<PathBuf>,
}

/// Runs the node described by `config` until its work is done or a stop signal.
///
/// Radio ports and patches, and satellite terminals, where configured, run beside the
/// node's voice path and stop with it; a node with radios or terminals and no
/// `[[downstream]]` runs them alone.
pub async fn run(config: Config, options: RunOptions) -> Result<(), NodeError> {
    // The relay says when it forwards a stream from upstream; zones yield to it.
    let (upstream_active, upstream_seen) = tokio::sync::watch::channel(false);
    let mut patching =
        patching::Patching::start(&config, options.config_path.clone(), upstream_seen);
    let patch_api = match (&config.api, &patching) {
        (Some(api), Some(p)) => Some(std::sync::Arc::new(crate::api::patches::PatchApi {
            operators: crate::api::auth::Operators::load(&api.operators)
                .map_err(|e| NodeError::Setup(e.to_string()))?,
            requests: p.requests.clone(),
        })),
        _ => None,
    };
    let terminals = match &config.satellite {
        Some(satellite) => Some(terminal::Terminals::start(satellite)?),
        None => None,
    };
    let terminal_api = match (&config.api, &terminals) {
        (Some(api), Some(t)) => Some(std::sync::Arc::new(crate::api::terminals::TerminalApi {
            operators: crate::api::auth::Operators::load(&api.operators)
                .map_err(|e| NodeError::Setup(e.to_string()))?,
            outbox: t.outbox.clone(),
            terminals: t.handles.clone(),
        })),
        _ => None,
    };
    // A node with `[alerts]` plays what comes down the cascade itself, at any tier.
    let alert_node = config.alerts.is_some();
    let plays_alerts = alert_node && !config.downstream.is_empty();
    let (to_playout, from_cascade) = channel(plays_alerts && config.cascade.is_some());
    // A street or village that relays voice in a cascade forwards granted streams only.
    let relays_voice = !alert_node && config.tier != Tier::District;
    let granted = config.cascade.as_ref().is_some_and(|c| c.voice_grants);
    let (to_relay, grants) = channel(relays_voice && granted && !config.downstream.is_empty());
    let sinks = cascade::Sinks {
        playout: to_playout,
        grants: to_relay,
    };
    let cascade = cascade::Cascade::start(&config, terminals.as_ref(), sinks).await?;
    let report_api = match (&config.api, &cascade) {
        (Some(api), Some(c)) => Some(std::sync::Arc::new(crate::api::reports::ReportApi {
            operators: crate::api::auth::Operators::load(&api.operators)
                .map_err(|e| NodeError::Setup(e.to_string()))?,
            cascade: c.handle.clone(),
        })),
        _ => None,
    };
    // A node that takes no alerts serves the routes of its patching, terminals and
    // field reports alone.
    let mut api_server = None;
    let report_routes = || report_api.clone().map(crate::api::reports::routes);
    let own_router = match (&patch_api, &terminal_api, &report_api) {
        (Some(p), t, _) => Some(
            crate::api::patches::router(p.clone())
                .merge(
                    t.clone()
                        .map(crate::api::terminals::routes)
                        .unwrap_or_default(),
                )
                .merge(report_routes().unwrap_or_default()),
        ),
        (None, Some(t), _) => Some(
            crate::api::terminals::router(t.clone()).merge(report_routes().unwrap_or_default()),
        ),
        (None, None, Some(r)) => Some(crate::api::reports::router(r.clone())),
        (None, None, None) => None,
    };
    if let (Some(router), false, Some(api)) = (own_router, alert_node, &config.api) {
        let listener = bind_api(api.listen).await?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tracing::info!(api = %api.listen, "control API listening (patching, terminals, reports)");
        let task = tokio::spawn(crate::api::serve(listener, router, async move {
            let _ = stopped.await;
        }));
        api_server = Some((stop, task));
    }

    let patch_requests = patching.as_ref().map(|p| p.requests.clone());
    let voice = async {
        if config.downstream.is_empty() {
            stop_requested().await;
            return Ok(());
        }
        match config.tier {
            _ if alert_node => {
                let routes = [
                    patch_api.map(crate::api::patches::routes),
                    terminal_api.map(crate::api::terminals::routes),
                    report_api.map(crate::api::reports::routes),
                ]
                .into_iter()
                .flatten()
                .reduce(axum::Router::merge);
                district::run(
                    config.clone(),
                    routes,
                    cascade.as_ref().map(|c| c.handle.clone()),
                    from_cascade,
                    patch_requests,
                )
                .await
            }
            Tier::District => origin::run(config.clone()).await,
            Tier::Street | Tier::Village => {
                relay::run(config.clone(), options, Some(upstream_active), grants).await
            }
        }
    };
    let result = match patching.take() {
        None => voice.await,
        Some(mut running) => {
            let outcome = tokio::select! {
                result = voice => Ok(result),
                fault = running.failed() => Err(fault),
            };
            match outcome {
                // The voice path ended (a stop signal, or its work done): stop patching.
                Ok(result) => {
                    let stopped = running.stop().await;
                    result.and(stopped)
                }
                // Patching failed and has stopped its ports; the voice path stops too.
                Err(fault) => Err(fault),
            }
        }
    };
    if let Some((stop, task)) = api_server {
        let _ = stop.send(());
        let _ = task.await;
    }
    if let Some(cascade) = cascade {
        cascade.stop().await;
    }
    if let Some(terminals) = terminals {
        terminals.stop().await;
    }
    result
}

/// The destinations of one payload format: an output group.
pub(crate) struct DestinationGroup {
    pub format: drivers::rtp::payload::PayloadFormat,
    /// The group's RTP addresses.
    pub rtp: srtp::Destinations,
    /// The group's RTCP addresses (RTP port + 1).
    pub rtcp: srtp::Destinations,
}

/// Groups the downstream destinations by payload format, in order of first appearance,
/// so each format is encoded once and sent to all its destinations together.
pub(crate) fn destination_groups(
    config: &Config,
    links: &srtp::SrtpLinks,
) -> Vec<DestinationGroup> {
    let mut formats = Vec::new();
    for d in &config.downstream {
        if !formats.contains(&d.format) {
            formats.push(d.format);
        }
    }
    formats
        .into_iter()
        .map(|format| {
            let members: Vec<SocketAddr> = config
                .downstream
                .iter()
                .filter(|d| d.format == format)
                .map(|d| d.address)
                .collect();
            let rtcp: Vec<SocketAddr> = members.iter().map(|a| rtcp_address(*a)).collect();
            DestinationGroup {
                format,
                rtp: srtp::Destinations::new(srtp::Packet::Rtp, &members, links),
                rtcp: srtp::Destinations::new(srtp::Packet::Rtcp, &rtcp, links),
            }
        })
        .collect()
}

/// Destination names by the address their RTCP comes from, for the logs.
pub(crate) fn names_by_rtcp_address(
    config: &Config,
) -> std::collections::HashMap<SocketAddr, &str> {
    config
        .downstream
        .iter()
        .map(|d| (rtcp_address(d.address), d.name.as_str()))
        .collect()
}

/// The latest receiver report from each downstream address, with the RTP clock rate of
/// the stream it reports on.
pub(crate) type ReceiverTable =
    std::collections::HashMap<SocketAddr, (u32, drivers::rtp::stats::ReportBlockData)>;

/// Logs, at the end of a stream, one line per downstream destination: its last receiver
/// report, or a warning that it never sent one (down, unreachable, or not receiving).
pub(crate) fn log_last_reports(
    names: &std::collections::HashMap<SocketAddr, &str>,
    reports: &ReceiverTable,
) {
    let mut destinations: Vec<(&SocketAddr, &&str)> = names.iter().collect();
    destinations.sort_by_key(|(_, name)| **name);
    for (address, name) in destinations {
        match reports.get(address) {
            Some((clock, block)) => tracing::info!(
                receiver = *name,
                lost = block.cumulative_lost,
                highest_sequence = block.extended_highest_sequence,
                jitter_ms = format!(
                    "{:.1}",
                    f64::from(block.jitter) * 1000.0 / f64::from(*clock)
                ),
                "receiver's last report"
            ),
            None => {
                tracing::warn!(receiver = *name, %address, "no receiver report from this destination")
            }
        }
    }
}

/// The RTCP address paired with an RTP address (RFC 3550 §11: the next port up).
pub fn rtcp_address(rtp: SocketAddr) -> SocketAddr {
    SocketAddr::new(rtp.ip(), rtp.port().saturating_add(1))
}

/// Binds a UDP socket for tokio.
fn bind(what: &'static str, addr: SocketAddr) -> Result<tokio::net::UdpSocket, NodeError> {
    let socket =
        std::net::UdpSocket::bind(addr).map_err(|source| NodeError::Bind { what, addr, source })?;
    socket.set_nonblocking(true)?;
    Ok(tokio::net::UdpSocket::from_std(socket)?)
}

/// Binds the control API's listening socket.
pub(crate) async fn bind_api(listen: SocketAddr) -> Result<tokio::net::TcpListener, NodeError> {
    tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|source| NodeError::Bind {
            what: "control API",
            addr: listen,
            source,
        })
}

/// Resolves when the process is asked to stop (SIGINT or SIGTERM).
async fn stop_requested() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => term,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// A channel between two of the node's tasks, where `wanted`.
#[allow(clippy::type_complexity)]
fn channel<T>(
    wanted: bool,
) -> (
    Option<tokio::sync::mpsc::UnboundedSender<T>>,
    Option<tokio::sync::mpsc::UnboundedReceiver<T>>,
) {
    if wanted {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        (Some(tx), Some(rx))
    } else {
        (None, None)
    }
}
