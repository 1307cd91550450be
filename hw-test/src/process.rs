//! Supervising the processes of a bench set-up: start, wait for a ready line, stop.
//!
//! Every wait is on an event (a line a process prints, its exit) with a limit after
//! which the process is killed, so a broken set-up fails instead of hanging.

use std::io::{BufRead, BufReader};
use std::net::UdpSocket;
use std::path::PathBuf;
use std::process::{Child, ExitStatus};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// Why a supervised process let the set-up down.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("{name} did not {what} within {limit:?}; see its log")]
    TimedOut {
        name: String,
        what: &'static str,
        limit: Duration,
    },
    #[error("no free port pair on 127.0.0.1")]
    NoPorts,
}

/// A child process, killed if it is still running when dropped.
#[derive(Debug)]
pub struct Supervised {
    pub name: String,
    pub child: Child,
}

impl Supervised {
    pub fn new(name: impl Into<String>, child: Child) -> Self {
        Supervised {
            name: name.into(),
            child,
        }
    }

    /// Waits for the process to exit, killing it after `limit`.
    pub fn wait(&mut self, limit: Duration) -> Result<ExitStatus, ProcessError> {
        let deadline = Instant::now() + limit;
        loop {
            let status = self.child.try_wait().map_err(|source| ProcessError::Io {
                what: format!("waiting for {}", self.name),
                source,
            })?;
            if let Some(status) = status {
                return Ok(status);
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return Err(ProcessError::TimedOut {
                    name: self.name.clone(),
                    what: "exit",
                    limit,
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends a signal (SIGTERM to stop a node, SIGINT to stop gst-launch with EOS).
    pub fn signal(&self, signal: Signal) {
        let _ = kill(Pid::from_raw(self.child.id() as i32), signal);
    }
}

impl Drop for Supervised {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Copies a child's output to `log`, sending the first line that contains `marker`
/// through the returned channel.
pub fn watch(
    stream: impl std::io::Read + Send + 'static,
    log: PathBuf,
    marker: &'static str,
) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut file = std::fs::File::create(&log).ok();
        let mut sent = false;
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            if let Some(f) = file.as_mut() {
                let _ = std::io::Write::write_all(f, format!("{line}\n").as_bytes());
            }
            if !sent && !marker.is_empty() && line.contains(marker) {
                sent = tx.send(line).is_ok();
            }
        }
    });
    rx
}

/// Waits for the line [`watch`] reports.
pub fn await_ready(
    name: &str,
    ready: &mpsc::Receiver<String>,
    limit: Duration,
) -> Result<String, ProcessError> {
    ready
        .recv_timeout(limit)
        .map_err(|_| ProcessError::TimedOut {
            name: name.to_string(),
            what: "come up",
            limit,
        })
}

/// A port P on 127.0.0.1 with P and P+1 both free (RTP and RTCP), P even.
pub fn free_port_pair() -> Result<u16, ProcessError> {
    for _ in 0..200 {
        let Ok(probe) = UdpSocket::bind("127.0.0.1:0") else {
            continue;
        };
        let Ok(port) = probe.local_addr().map(|a| a.port()) else {
            continue;
        };
        if port % 2 == 1 || port >= u16::MAX - 1 {
            continue;
        }
        if UdpSocket::bind(("127.0.0.1", port + 1)).is_ok() {
            return Ok(port);
        }
    }
    Err(ProcessError::NoPorts)
}
