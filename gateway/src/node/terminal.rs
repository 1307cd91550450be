//! The satellite terminals' tasks: each opens its terminal's serial port, moves bytes
//! between the port and its [`Session`], and stores what the session reports.
//!
//! The task only moves bytes; what to do when (the re-open backoff, which messages go
//! to a new bearer) is the session's. A port that fails (a read or write error, the end
//! of the device, a pseudo-terminal whose other side went away) is logged, the terminal
//! shown down, and the port opened again with a growing backoff. The port is opened
//! without touching its modem lines.

use std::time::Duration;

use chrono::Utc;
use drivers::satellite::bearer::{Body, Outgoing};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use tokio_serial::SerialPortBuilderExt as _;
use tracing::{error, info, warn};

use super::NodeError;
use crate::config::{SatelliteConfig, TerminalConfig};
use crate::satellite::outbox::{MessageState, Outbox};
use crate::satellite::session::{Change, Condition, Session};

/// The longest a write to a terminal may take: a port that stops draining (a modem
/// hung with flow control on) counts as lost.
const WRITE_LIMIT: std::time::Duration = std::time::Duration::from_secs(5);
/// What the API sees of a terminal, kept current by its task.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub condition: Condition,
    /// Messages accepted and not yet sent or failed.
    pub queued: usize,
}

/// A message the outbox has stored, for the terminal's task.
#[derive(Debug)]
pub struct Submit {
    pub message: Outgoing,
    pub reply: oneshot::Sender<Submitted>,
}

/// What became of a [`Submit`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Submitted {
    /// Waiting to go; the bearer's time for it from the front of the queue, where a
    /// bearer is there to say (the port is open).
    Queued { time_for: Option<Duration> },
    /// The bearer can never carry it; it is stored as failed with this reason.
    Refused(String),
}

/// One running terminal, as the API reaches it.
#[derive(Clone)]
pub struct TerminalHandle {
    pub config: TerminalConfig,
    pub snapshot: watch::Receiver<Snapshot>,
    pub submit: mpsc::UnboundedSender<Submit>,
    /// Every message the terminal receives, once stored: sender and body.
    pub received: tokio::sync::broadcast::Sender<(String, Body)>,
}

/// The node's terminals and their database.
pub struct Terminals {
    pub outbox: Outbox,
    pub handles: Vec<TerminalHandle>,
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Terminals {
    /// Opens the outbox and starts a task for each terminal, each with the messages it
    /// had queued. The queues are read before this returns, so a message the API
    /// accepts afterwards cannot be handed over twice.
    pub fn start(config: &SatelliteConfig) -> Result<Terminals, NodeError> {
        std::fs::create_dir_all(&config.state_dir).map_err(|e| {
            NodeError::Setup(format!("cannot create {}: {e}", config.state_dir.display()))
        })?;
        let outbox =
            Outbox::open(&config.state_dir).map_err(|e| NodeError::Setup(e.to_string()))?;
        let (stop, stopping) = watch::channel(false);
        let mut handles = Vec::new();
        let mut tasks = Vec::new();
        for terminal in &config.terminals {
            let pending = outbox
                .queued(&terminal.name)
                .map_err(|e| NodeError::Setup(e.to_string()))?;
            if !pending.is_empty() {
                info!(terminal = %terminal.name, queued = pending.len(), "messages queued before the restart go again");
            }
            let session = Session::new(terminal.kind, pending, std::time::Instant::now());
            let (snapshots, snapshot) = watch::channel(snapshot_of(&session));
            let (submit, inbox) = mpsc::unbounded_channel();
            let (received, _) = tokio::sync::broadcast::channel(256);
            let task = Task {
                config: terminal.clone(),
                session,
                outbox: outbox.clone(),
                snapshots,
                inbox,
                stopping: stopping.clone(),
                received: received.clone(),
            };
            tasks.push(tokio::spawn(task.run()));
            handles.push(TerminalHandle {
                config: terminal.clone(),
                snapshot,
                submit,
                received,
            });
        }
        Ok(Terminals {
            outbox,
            handles,
            stop,
            tasks,
        })
    }

    /// Stops the tasks; what is queued stays in the outbox for the next start.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

fn snapshot_of(session: &Session) -> Snapshot {
    Snapshot {
        condition: session.condition().clone(),
        queued: session.pending().len(),
    }
}

/// Why one opening of the port ended.
enum Ended {
    Stopped,
    Lost(String),
}

struct Task {
    config: TerminalConfig,
    session: Session,
    outbox: Outbox,
    snapshots: watch::Sender<Snapshot>,
    inbox: mpsc::UnboundedReceiver<Submit>,
    stopping: watch::Receiver<bool>,
    received: tokio::sync::broadcast::Sender<(String, Body)>,
}

impl Task {
    async fn run(mut self) {
        let name = self.config.name.clone();
        let port = self.config.port.display().to_string();
        loop {
            if self.session.open_due(std::time::Instant::now()) {
                let ended = match tokio_serial::new(&port, self.config.baud).open_native_async() {
                    Ok(stream) => {
                        info!(terminal = %name, %port, "terminal port open");
                        self.session.opened(std::time::Instant::now());
                        self.settle().await;
                        self.serve(stream).await
                    }
                    Err(e) => Ended::Lost(format!("cannot open {port}: {e}")),
                };
                match ended {
                    Ended::Stopped => return,
                    Ended::Lost(reason) => {
                        let retry = self.session.lost(reason.clone(), std::time::Instant::now());
                        if !retry.repeated {
                            warn!(terminal = %name, %port, %reason, retry_in = ?retry.after, "terminal down");
                        }
                        self.publish();
                    }
                }
            }
            // Closed: wait for the next opening, taking messages meanwhile.
            let until = self.session.next_deadline().map(Instant::from_std);
            tokio::select! {
                _ = sleep_until(until) => {}
                submit = self.inbox.recv() => match submit {
                    Some(submit) => self.take(submit).await,
                    None => return,
                },
                _ = self.stopping.changed() => return,
            }
        }
    }

    /// Runs one opening of the port until it is lost or the node stops.
    async fn serve(&mut self, mut stream: tokio_serial::SerialStream) -> Ended {
        let mut buffer = [0u8; 512];
        loop {
            // What the terminal said is stored before anything more is written to it:
            // a received message's delete goes out only once the message is on disk.
            self.settle().await;
            let out = self.session.take_output();
            if !out.is_empty() {
                match tokio::time::timeout(WRITE_LIMIT, stream.write_all(&out)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => return Ended::Lost(format!("write failed: {e}")),
                    Err(_) => {
                        return Ended::Lost(format!(
                            "a write did not drain within {} s",
                            WRITE_LIMIT.as_secs()
                        ));
                    }
                }
            }

            let until = self.session.next_deadline().map(Instant::from_std);
            tokio::select! {
                read = stream.read(&mut buffer) => match read {
                    Ok(0) => return Ended::Lost("the device closed".into()),
                    Ok(n) => self.session.on_bytes(&buffer[..n], std::time::Instant::now()),
                    Err(e) => return Ended::Lost(format!("read failed: {e}")),
                },
                _ = sleep_until(until) => {}
                submit = self.inbox.recv() => match submit {
                    Some(submit) => self.take(submit).await,
                    None => return Ended::Stopped,
                },
                _ = self.stopping.changed() => return Ended::Stopped,
            }
            self.session.poll(std::time::Instant::now());
        }
    }

    /// Gives a stored message to the session, and tells the API what became of it.
    async fn take(&mut self, submit: Submit) {
        let id = submit.message.id;
        let bytes = submit.message.body.len();
        let answer = match self
            .session
            .submit(submit.message, std::time::Instant::now())
        {
            Ok(()) => Submitted::Queued {
                time_for: self.session.time_for(bytes),
            },
            Err(e) => {
                let reason = e.to_string();
                let failed = Change::Failed {
                    id,
                    reason: reason.clone(),
                };
                record(&self.config.name, &self.outbox, failed).await;
                Submitted::Refused(reason)
            }
        };
        self.publish();
        let _ = submit.reply.send(answer);
    }

    /// Stores and logs what the session reported, then shows the new state.
    async fn settle(&mut self) {
        for change in self.session.drain_changes() {
            let heard = match &change {
                Change::Received { from, body } => Some((from.clone(), body.clone())),
                _ => None,
            };
            record(&self.config.name, &self.outbox, change).await;
            // Handed on once stored; nobody listening is no fault.
            if let Some(heard) = heard {
                let _ = self.received.send(heard);
            }
        }
        self.publish();
    }

    fn publish(&self) {
        self.snapshots.send_replace(snapshot_of(&self.session));
    }
}

/// Stores and logs one change of `terminal`.
async fn record(terminal: &str, outbox: &Outbox, change: Change) {
    let stored = match change {
        Change::Up { identity } => {
            info!(terminal = %terminal, %identity, "terminal up");
            return;
        }
        Change::Down { reason } => {
            warn!(terminal = %terminal, %reason, "terminal cannot send");
            return;
        }
        Change::Sent { id } => {
            info!(terminal = %terminal, message_id = id, "message sent");
            outbox
                .call(move |o| o.settle(id, MessageState::Sent, None, Utc::now()))
                .await
                .map(|_| ())
        }
        // The outbox keeps a message's leaving, not its arrival: the log says it.
        Change::Delivered { id } => {
            info!(terminal = %terminal, message_id = id, "message delivered to its recipient");
            return;
        }
        Change::Failed { id, reason } => {
            warn!(terminal = %terminal, message_id = id, %reason, "message failed");
            outbox
                .call(move |o| o.settle(id, MessageState::Failed, Some(&reason), Utc::now()))
                .await
                .map(|_| ())
        }
        Change::Faults { kind, new, total } => {
            warn!(terminal = %terminal, fault = kind, new, total, "terminal faults");
            return;
        }
        Change::Received { from, body } => {
            info!(terminal = %terminal, %from, bytes = body.len(), "message received");
            let name = terminal.to_string();
            outbox
                .call(move |o| o.receive(&name, &from, &body, Utc::now()))
                .await
                .map(|_| ())
        }
    };
    if let Err(e) = stored {
        error!(terminal = %terminal, error = %e, "cannot store a terminal's message");
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
