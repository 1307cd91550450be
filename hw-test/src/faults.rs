//! A fault-injecting UDP relay, for tests of what crosses a bad network: the kernel here
//! has no netem, so loss, duplication, delay and cuts are made by a process in the path.
//!
//! `emcomm-bench faults --listen A --to B` forwards every datagram that arrives at A to
//! B, and every datagram from B back to the last address that sent to A, each through
//! the same [`FaultPlan`]: dropped with a probability, duplicated with a probability,
//! delayed by a base delay plus a uniform jitter (so datagrams may come out of order).
//! While the cut file exists (`--cut-file`), everything is dropped both ways, as when
//! the fibre is cut; removing it heals the link. Every decision is counted and, with
//! `--log`, written as a JSON line.
//!
//! The plan is sans-IO: it takes a datagram and `now` and says when each copy leaves,
//! from a seeded generator, so a test can replay the same faults.

use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// What to do to the datagrams.
#[derive(Debug, Clone, PartialEq)]
pub struct Faults {
    /// Probability a datagram is lost, 0 to 1.
    pub drop: f64,
    /// Probability a datagram is sent twice, 0 to 1.
    pub duplicate: f64,
    pub delay: Duration,
    /// Up to this much more delay, uniformly, per copy.
    pub jitter: Duration,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            drop: 0.0,
            duplicate: 0.0,
            delay: Duration::ZERO,
            jitter: Duration::ZERO,
        }
    }
}

/// What became of datagrams, by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct FaultCounters {
    pub forwarded: u64,
    pub dropped: u64,
    pub duplicated: u64,
    /// Dropped while the link was cut.
    pub cut: u64,
}

/// The faults' decisions, from a seeded generator.
#[derive(Debug)]
pub struct FaultPlan {
    faults: Faults,
    rng: StdRng,
    counters: FaultCounters,
}

impl FaultPlan {
    pub fn new(faults: Faults, seed: u64) -> FaultPlan {
        FaultPlan {
            faults,
            rng: StdRng::seed_from_u64(seed),
            counters: FaultCounters::default(),
        }
    }

    pub fn counters(&self) -> FaultCounters {
        self.counters
    }

    /// When each copy of a datagram arriving at `now` leaves: none when it is lost or
    /// the link is `cut`, two when it is duplicated.
    pub fn decide(&mut self, now: Instant, cut: bool) -> Vec<Instant> {
        if cut {
            self.counters.cut += 1;
            return Vec::new();
        }
        if self.rng.random_bool(self.faults.drop.clamp(0.0, 1.0)) {
            self.counters.dropped += 1;
            return Vec::new();
        }
        let copies = if self.rng.random_bool(self.faults.duplicate.clamp(0.0, 1.0)) {
            self.counters.duplicated += 1;
            2
        } else {
            1
        };
        self.counters.forwarded += 1;
        (0..copies)
            .map(|_| {
                let jitter = self.faults.jitter.mul_f64(self.rng.random::<f64>());
                now + self.faults.delay + jitter
            })
            .collect()
    }
}

/// The relay's settings.
#[derive(Debug, Clone)]
pub struct FaultProxyOptions {
    pub listen: SocketAddr,
    pub to: SocketAddr,
    pub faults: Faults,
    pub seed: u64,
    /// While this file exists the link is cut.
    pub cut_file: Option<PathBuf>,
}

/// Why the relay stopped.
#[derive(Debug, thiserror::Error)]
pub enum FaultProxyError {
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
}

/// Runs the relay until the process is stopped.
pub fn run_fault_proxy(options: FaultProxyOptions) -> Result<(), FaultProxyError> {
    let io = |what: &str| {
        let what = what.to_owned();
        move |source| FaultProxyError::Io { what, source }
    };
    let outer = UdpSocket::bind(options.listen).map_err(io("binding the listening side"))?;
    let inner = UdpSocket::bind(match options.to {
        SocketAddr::V4(_) => "0.0.0.0:0",
        SocketAddr::V6(_) => "[::]:0",
    })
    .map_err(io("binding the forwarding side"))?;
    for socket in [&outer, &inner] {
        socket
            .set_nonblocking(true)
            .map_err(io("non-blocking socket"))?;
    }
    println!("fault relay {} -> {}", options.listen, options.to);
    let mut plan = FaultPlan::new(options.faults.clone(), options.seed);
    let mut client: Option<SocketAddr> = None;
    // Copies waiting for their time: when, which way (true: towards `to`), the bytes.
    let mut waiting: Vec<(Instant, bool, Vec<u8>)> = Vec::new();
    let mut buffer = vec![0u8; 65_536];
    loop {
        // Sleep until a socket is readable, a copy is due, or a while has passed (the
        // cut file is looked at each round).
        let now = Instant::now();
        let wait = waiting
            .iter()
            .map(|(at, _, _)| at.saturating_duration_since(now))
            .min()
            .unwrap_or(Duration::from_millis(50))
            .min(Duration::from_millis(50));
        let timeout = nix::poll::PollTimeout::try_from(wait.as_millis() as u32)
            .unwrap_or(nix::poll::PollTimeout::MAX);
        let mut fds = [
            nix::poll::PollFd::new(outer.as_fd(), nix::poll::PollFlags::POLLIN),
            nix::poll::PollFd::new(inner.as_fd(), nix::poll::PollFlags::POLLIN),
        ];
        match nix::poll::poll(&mut fds, timeout) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(io("waiting for datagrams")(e.into())),
        }
        let cut = options.cut_file.as_ref().is_some_and(|f| f.exists());
        for (socket, towards) in [(&outer, true), (&inner, false)] {
            loop {
                match socket.recv_from(&mut buffer) {
                    Ok((n, from)) => {
                        if towards {
                            client = Some(from);
                        }
                        for at in plan.decide(Instant::now(), cut) {
                            waiting.push((at, towards, buffer[..n].to_vec()));
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    // A refused send from before (nobody listening yet) shows here.
                    Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {}
                    Err(e) => return Err(io("receiving")(e)),
                }
            }
        }
        let now = Instant::now();
        waiting.sort_by_key(|(at, _, _)| *at);
        let due = waiting.partition_point(|(at, _, _)| *at <= now);
        for (_, towards, bytes) in waiting.drain(..due) {
            // A send that fails (nobody listening yet) is a loss like any other.
            let _ = match (towards, client) {
                (true, _) => inner.send_to(&bytes, options.to),
                (false, Some(client)) => outer.send_to(&bytes, client),
                (false, None) => Ok(0),
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_faults_forwards_everything_at_once() {
        let mut plan = FaultPlan::new(Faults::default(), 1);
        let now = Instant::now();
        for _ in 0..100 {
            assert_eq!(plan.decide(now, false), vec![now]);
        }
        assert_eq!(plan.counters().forwarded, 100);
    }

    #[test]
    fn loss_and_duplication_come_at_about_their_rates_and_the_same_seed_repeats_them() {
        let faults = Faults {
            drop: 0.2,
            duplicate: 0.1,
            delay: Duration::from_millis(20),
            jitter: Duration::from_millis(30),
        };
        let now = Instant::now();
        let run = |seed| {
            let mut plan = FaultPlan::new(faults.clone(), seed);
            let copies: Vec<Vec<Instant>> = (0..10_000).map(|_| plan.decide(now, false)).collect();
            (copies, plan.counters())
        };
        let (copies, counters) = run(7);
        assert_eq!(run(7).0, copies, "the same seed, the same faults");
        assert!((1_800..2_200).contains(&counters.dropped), "{counters:?}");
        assert!((700..900).contains(&counters.duplicated), "{counters:?}");
        for at in copies.iter().flatten() {
            let delay = *at - now;
            assert!(delay >= Duration::from_millis(20) && delay <= Duration::from_millis(50));
        }
    }

    #[test]
    fn a_cut_link_drops_everything_and_heals_when_the_cut_ends() {
        let mut plan = FaultPlan::new(Faults::default(), 1);
        let now = Instant::now();
        assert!(plan.decide(now, true).is_empty());
        assert_eq!(plan.decide(now, false).len(), 1);
        assert_eq!(plan.counters().cut, 1);
    }
}
