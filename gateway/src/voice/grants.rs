//! Stream grants at a relaying node, sans-IO: which RTP streams it may forward.
//!
//! In a cascade the district signs a stream grant frame (`cascade::frame::StreamGrant`:
//! an SSRC and the time it is valid until) for every stream it sends down, and the frame
//! travels the cascade authenticated like an alert. A relaying node that requires grants
//! forwards a stream only while a grant covers its SSRC (RFC 3550 §5.1: the SSRC names
//! the stream), so a stream that nobody authorised, from any address, never reaches a
//! loudspeaker.
//!
//! The grant goes over the cascade's socket and the stream over RTP, so the first packets
//! can arrive before their grant. Those are held, a short while and a few at most, and
//! forwarded in order the moment the grant comes; if it does not, they are dropped.
//!
//! Contract: [`StreamGrants::admits`] is true only for an SSRC with a grant whose time
//! has not passed; memory is bounded ([`MAX_GRANTS`], [`HOLD_PACKETS`]).

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Grants remembered at once; past that the one ending first is forgotten.
pub const MAX_GRANTS: usize = 256;

/// Packets held while their grant may still come: 0.5 s of 20 ms packets.
pub const HOLD_PACKETS: usize = 25;

/// How long a held packet waits for its grant.
pub const HOLD_FOR: Duration = Duration::from_millis(500);

/// A packet that came before its grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    pub ssrc: u32,
    pub datagram: Vec<u8>,
    pub from: SocketAddr,
    pub at: Instant,
}

/// The grants a relaying node holds, and the packets that wait for one.
#[derive(Debug, Default)]
pub struct StreamGrants {
    /// SSRC to the instant its grant ends.
    grants: HashMap<u32, Instant>,
    held: VecDeque<Held>,
    /// SSRCs already reported as without a grant, so the log says it once a stream.
    reported: VecDeque<u32>,
    /// Streams found without a grant since the last [`StreamGrants::poll`].
    newly_refused: Vec<(u32, SocketAddr)>,
}

impl StreamGrants {
    /// Takes a grant for `ssrc` until `until`, and gives back the packets of that
    /// stream held meanwhile, oldest first, still within [`HOLD_FOR`].
    pub fn grant(&mut self, ssrc: u32, until: Instant, now: Instant) -> Vec<Held> {
        self.grants.retain(|_, end| *end > now);
        if self.grants.len() >= MAX_GRANTS && !self.grants.contains_key(&ssrc) {
            if let Some(first) = self.grants.iter().min_by_key(|(_, e)| **e).map(|(s, _)| *s) {
                self.grants.remove(&first);
            }
        }
        let end = self.grants.entry(ssrc).or_insert(until);
        *end = (*end).max(until);
        self.expire_held(now);
        let (mine, others): (VecDeque<Held>, VecDeque<Held>) =
            self.held.drain(..).partition(|h| h.ssrc == ssrc);
        self.held = others;
        mine.into()
    }

    /// Whether a grant covers `ssrc` at `now`.
    pub fn admits(&self, ssrc: u32, now: Instant) -> bool {
        self.grants.get(&ssrc).is_some_and(|end| *end > now)
    }

    /// Holds a packet that came without a grant, for [`HOLD_FOR`] at most; the oldest
    /// held packet makes room when [`HOLD_PACKETS`] are held.
    pub fn hold(&mut self, ssrc: u32, datagram: &[u8], from: SocketAddr, now: Instant) {
        if self.held.len() >= HOLD_PACKETS {
            if let Some(dropped) = self.held.pop_front() {
                self.dropped(dropped);
            }
        }
        self.held.push_back(Held {
            ssrc,
            datagram: datagram.to_vec(),
            from,
            at: now,
        });
    }

    /// Drops what waited too long; gives each stream newly found without a grant (a
    /// held packet of it dropped), once a stream, for the log.
    pub fn poll(&mut self, now: Instant) -> Vec<(u32, SocketAddr)> {
        self.expire_held(now);
        std::mem::take(&mut self.newly_refused)
    }

    /// When a held packet is due to be dropped.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.held.front().map(|h| h.at + HOLD_FOR)
    }

    /// Packets held now.
    pub fn held(&self) -> usize {
        self.held.len()
    }

    fn expire_held(&mut self, now: Instant) {
        while self
            .held
            .front()
            .is_some_and(|h| now.saturating_duration_since(h.at) >= HOLD_FOR)
        {
            if let Some(dropped) = self.held.pop_front() {
                self.dropped(dropped);
            }
        }
    }

    fn dropped(&mut self, held: Held) {
        if self.reported.contains(&held.ssrc) {
            return;
        }
        if self.reported.len() >= MAX_GRANTS {
            self.reported.pop_front();
        }
        self.reported.push_back(held.ssrc);
        self.newly_refused.push((held.ssrc, held.from));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from() -> SocketAddr {
        "127.0.0.1:5004".parse().expect("address")
    }

    #[test]
    fn a_stream_is_admitted_only_while_its_grant_lasts() {
        let start = Instant::now();
        let mut grants = StreamGrants::default();
        assert!(!grants.admits(7, start));
        grants.grant(7, start + Duration::from_secs(60), start);
        assert!(grants.admits(7, start + Duration::from_secs(59)));
        assert!(!grants.admits(8, start), "another stream has no grant");
        assert!(!grants.admits(7, start + Duration::from_secs(60)));
    }

    #[test]
    fn packets_before_their_grant_are_handed_back_in_order_when_it_comes() {
        let start = Instant::now();
        let mut grants = StreamGrants::default();
        grants.hold(7, &[1], from(), start);
        grants.hold(7, &[2], from(), start + Duration::from_millis(20));
        grants.hold(9, &[9], from(), start + Duration::from_millis(30));
        let held = grants.grant(
            7,
            start + Duration::from_secs(60),
            start + Duration::from_millis(40),
        );
        let bytes: Vec<Vec<u8>> = held.into_iter().map(|h| h.datagram).collect();
        assert_eq!(bytes, [vec![1], vec![2]]);
        assert_eq!(grants.held(), 1, "the other stream's packet still waits");
        assert!(
            grants.poll(start + Duration::from_millis(40)).is_empty(),
            "nothing refused yet"
        );
    }

    #[test]
    fn a_stream_whose_grant_never_comes_is_dropped_and_said_once() {
        let start = Instant::now();
        let mut grants = StreamGrants::default();
        for k in 0..(HOLD_PACKETS as u8 + 10) {
            grants.hold(7, &[k], from(), start + Duration::from_millis(u64::from(k)));
        }
        assert_eq!(grants.held(), HOLD_PACKETS, "never more than the cap");
        assert_eq!(grants.poll(start), [(7, from())], "said at the first drop");
        assert_eq!(
            grants.next_deadline(),
            Some(start + Duration::from_millis(10) + HOLD_FOR)
        );
        let late = start + Duration::from_secs(1);
        assert!(grants.poll(late).is_empty(), "said once a stream");
        assert_eq!(grants.held(), 0);
        assert!(
            grants
                .grant(7, late + Duration::from_secs(60), late)
                .is_empty(),
            "too old to forward"
        );
    }

    #[test]
    fn grants_are_bounded_and_the_one_ending_first_goes() {
        let start = Instant::now();
        let mut grants = StreamGrants::default();
        for ssrc in 0..MAX_GRANTS as u32 {
            grants.grant(
                ssrc,
                start + Duration::from_secs(100 + u64::from(ssrc)),
                start,
            );
        }
        grants.grant(9999, start + Duration::from_secs(1000), start);
        assert!(!grants.admits(0, start), "the earliest end was forgotten");
        assert!(grants.admits(1, start));
        assert!(grants.admits(9999, start));
    }
}
