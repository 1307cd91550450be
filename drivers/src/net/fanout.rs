//! Sending one datagram to many destinations in few system calls.
//!
//! A street gateway sends the same packet to every loudspeaker that takes its codec.
//! One `sendto(2)` per destination spends most of its time entering the kernel;
//! `sendmmsg(2)` hands the kernel a batch of messages per call, all pointing at the
//! same buffer: up to [`MAX_BATCH`], the kernel's limit (`UIO_MAXIOV`). A destination whose send fails (its socket buffer full, an ICMP
//! error pending) is counted and skipped: one bad endpoint never holds up the others.

use std::io::IoSlice;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;

use nix::sys::socket::{MsgFlags, MultiHeaders, SockaddrStorage, sendmmsg};

/// Most messages one `sendmmsg(2)` call takes (`UIO_MAXIOV` on Linux).
pub const MAX_BATCH: usize = 1024;

/// Counts of one fan-out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FanoutReport {
    pub sent: usize,
    pub failed: usize,
    pub calls: usize,
}

/// A fixed set of destinations and the headers to reach them.
pub struct Fanout {
    destinations: Vec<Option<SockaddrStorage>>,
    headers: MultiHeaders<SockaddrStorage>,
    batch: usize,
}

impl std::fmt::Debug for Fanout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fanout")
            .field("destinations", &self.destinations.len())
            .finish()
    }
}

impl Fanout {
    /// Sends to `destinations` in batches of [`MAX_BATCH`].
    pub fn new(destinations: &[SocketAddr]) -> Self {
        Fanout::with_batch(destinations, MAX_BATCH)
    }

    /// Sends to `destinations` in batches of `batch` (clamped to 1..=[`MAX_BATCH`]).
    pub fn with_batch(destinations: &[SocketAddr], batch: usize) -> Self {
        let batch = batch.clamp(1, MAX_BATCH);
        Fanout {
            destinations: destinations
                .iter()
                .map(|a| Some(SockaddrStorage::from(*a)))
                .collect(),
            headers: MultiHeaders::preallocate(batch, None),
            batch,
        }
    }

    pub fn len(&self) -> usize {
        self.destinations.len()
    }

    pub fn is_empty(&self) -> bool {
        self.destinations.is_empty()
    }

    /// Sends `datagram` to every destination from `socket`.
    pub fn send(&mut self, socket: &impl AsRawFd, datagram: &[u8]) -> FanoutReport {
        let iov = [IoSlice::new(datagram)];
        let slices = vec![iov; self.batch.min(self.destinations.len())];
        let mut report = FanoutReport::default();
        let mut start = 0;
        while start < self.destinations.len() {
            let end = (start + self.batch).min(self.destinations.len());
            let batch = &self.destinations[start..end];
            report.calls += 1;
            match sendmmsg(
                socket.as_raw_fd(),
                &mut self.headers,
                &slices[..batch.len()],
                batch,
                [],
                MsgFlags::MSG_DONTWAIT,
            ) {
                Ok(results) => {
                    let sent = results.count();
                    report.sent += sent;
                    // The kernel stops at the first message it cannot send: skip it.
                    if sent < batch.len() {
                        report.failed += 1;
                        start += sent + 1;
                    } else {
                        start = end;
                    }
                }
                Err(_) => {
                    report.failed += 1;
                    start += 1;
                }
            }
        }
        report
    }
}

#[cfg(test)]
mod tests {
    use std::net::UdpSocket;

    use super::*;

    #[test]
    fn every_destination_receives_the_datagram_once() {
        let receivers: Vec<UdpSocket> = (0..300)
            .map(|_| UdpSocket::bind("127.0.0.1:0").expect("bind"))
            .collect();
        let addrs: Vec<SocketAddr> = receivers
            .iter()
            .map(|s| s.local_addr().expect("addr"))
            .collect();
        let sender = UdpSocket::bind("127.0.0.1:0").expect("bind");
        let mut fanout = Fanout::with_batch(&addrs, 256);
        let report = fanout.send(&sender, b"alert");
        assert_eq!(
            report,
            FanoutReport {
                sent: 300,
                failed: 0,
                calls: 2
            }
        );
        for r in &receivers {
            let mut buf = [0u8; 16];
            let (len, from) = r.recv_from(&mut buf).expect("received");
            assert_eq!(&buf[..len], b"alert");
            assert_eq!(from, sender.local_addr().expect("addr"));
        }
    }
}
