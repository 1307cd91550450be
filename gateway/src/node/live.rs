//! The sources of live broadcasts: a capture device read on its own thread, or a
//! dispatcher console's RTP read by a task. Each sends 20 ms frames of 48 kHz speech,
//! tagged with its broadcast, to the playout task until its [`LiveSource`] is dropped,
//! and says once if the source is lost, so the broadcast ends as failed instead of
//! sounding silence until its validity runs out.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info};

use crate::alert::intake::BroadcastSource;
use crate::voice::live::LiveDecoder;

/// What a live source tells the playout task.
pub enum LiveEvent {
    /// 20 ms of broadcast `alert`'s voice.
    Frame(i64, Vec<i16>),
    /// The source of broadcast `alert` stopped delivering, and why.
    Lost(i64, String),
}

/// A running live source: its thread or task stops when this is dropped.
pub struct LiveSource {
    running: Arc<AtomicBool>,
    _stop: Option<oneshot::Sender<()>>,
}

impl Drop for LiveSource {
    fn drop(&mut self) {
        self.running.store(false, Ordering::Relaxed);
    }
}

/// Starts the source of live broadcast `alert`. It runs while the scheduler holds the
/// broadcast, so a pre-empted broadcast resumes from the same source. The error is the
/// reason the broadcast fails, for its record.
pub fn start(
    alert: i64,
    source: &BroadcastSource,
    opus_payload_type: u8,
    events: mpsc::UnboundedSender<LiveEvent>,
) -> Result<LiveSource, String> {
    match (&source.device, source.rtp_listen) {
        (Some(device), _) => from_device(alert, device, events),
        (None, Some(listen)) => from_console(alert, listen, opus_payload_type, events),
        (None, None) => Err("a broadcast without a source".into()),
    }
}

fn from_device(
    alert: i64,
    device: &str,
    events: mpsc::UnboundedSender<LiveEvent>,
) -> Result<LiveSource, String> {
    let capture = drivers::audio::open_capture(Some(device))
        .map_err(|e| format!("capture device {device:?}: {e}"))?;
    let running = Arc::new(AtomicBool::new(true));
    let flag = running.clone();
    let name = device.to_string();
    std::thread::spawn(move || {
        // A capture that blocks is read until the next frame comes; the flag is seen
        // then, so a stopped broadcast releases the device within one frame.
        let reason = loop {
            if !flag.load(Ordering::Relaxed) {
                return;
            }
            match capture.next_frame() {
                Some(Ok(frame)) => {
                    if events.send(LiveEvent::Frame(alert, frame)).is_err() {
                        return;
                    }
                }
                Some(Err(e)) => break format!("capture device {name:?} lost: {e}"),
                None => break format!("capture device {name:?} stopped delivering audio"),
            }
        };
        if flag.load(Ordering::Relaxed) {
            let _ = events.send(LiveEvent::Lost(alert, reason));
        }
    });
    info!(alert, device, "live broadcast from the capture device");
    Ok(LiveSource {
        running,
        _stop: None,
    })
}

fn from_console(
    alert: i64,
    listen: std::net::SocketAddr,
    opus_payload_type: u8,
    events: mpsc::UnboundedSender<LiveEvent>,
) -> Result<LiveSource, String> {
    let socket = std::net::UdpSocket::bind(listen)
        .and_then(|s| s.set_nonblocking(true).map(|()| s))
        .and_then(UdpSocket::from_std)
        .map_err(|e| format!("cannot listen for the console's RTP on {listen}: {e}"))?;
    let (stop, mut stopped) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let mut decoder = LiveDecoder::new(opus_payload_type);
        let mut buf = [0u8; 2048];
        loop {
            let len = tokio::select! {
                _ = &mut stopped => return,
                received = socket.recv(&mut buf) => match received {
                    Ok(len) => len,
                    // An ICMP error from an earlier send, or a datagram too large:
                    // the socket itself is still good.
                    Err(e) => {
                        debug!(alert, error = %e, "console RTP not received");
                        continue;
                    }
                },
            };
            for frame in decoder.on_rtp(&buf[..len]) {
                if events.send(LiveEvent::Frame(alert, frame)).is_err() {
                    return;
                }
            }
        }
    });
    info!(alert, %listen, "live broadcast from the console's RTP");
    Ok(LiveSource {
        running: Arc::new(AtomicBool::new(true)),
        _stop: Some(stop),
    })
}
