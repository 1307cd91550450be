//! Sequence numbers: the origin's allocator that never hands out a number twice, even
//! across a restart, and the receiver's window that remembers which numbers it has
//! accepted from each origin.
//!
//! Both are plain state the caller stores; neither does I/O.
//!
//! * The origin persists [`Allocated::persist`] before it sends a frame with the number,
//!   and after a restart [`SequenceAllocator::resume`]s from the value it persisted last.
//!   Numbers are reserved a block ahead, so the store is written once a block.
//! * The receiver persists its [`ReplayState`] (serde, e.g. as JSON) after every frame
//!   it accepts as new and before it acts on it, and loads it again at start-up; then a
//!   frame replayed to a restarted node is still refused.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::alert::model::AreaCode;

/// A number from the allocator, and a reservation to store before using it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Allocated {
    pub sequence: u32,
    /// When set, store this as the value to resume from, durably, before the frame
    /// with `sequence` leaves the node.
    pub persist: Option<u32>,
}

/// The origin's sequence numbers: strictly increasing, never reused.
#[derive(Debug, Clone)]
pub struct SequenceAllocator {
    next: u32,
    /// Numbers below this are covered by the reservation last persisted.
    reserved: u32,
    ahead: u32,
}

/// Every sequence number has been used: the origin must be given a new identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("all 2^32 sequence numbers of this origin are used")]
pub struct SequenceExhausted;

impl SequenceAllocator {
    /// Starts from `persisted`, the last reservation stored (`None` on a node's first
    /// start). Every number below it may have been used before the restart, so none of
    /// them is handed out again. `ahead` numbers are reserved at a time (at least 1).
    pub fn resume(persisted: Option<u32>, ahead: u32) -> SequenceAllocator {
        let next = persisted.unwrap_or(1).max(1);
        SequenceAllocator {
            next,
            reserved: next,
            ahead: ahead.max(1),
        }
    }

    pub fn allocate(&mut self) -> Result<Allocated, SequenceExhausted> {
        let sequence = self.next;
        let next = sequence.checked_add(1).ok_or(SequenceExhausted)?;
        let persist = if sequence >= self.reserved {
            self.reserved = sequence.saturating_add(self.ahead);
            Some(self.reserved)
        } else {
            None
        };
        self.next = next;
        Ok(Allocated { sequence, persist })
    }
}

/// Fingerprint of a frame's authenticated bytes: tells a second copy of a frame (the
/// same alert over another bearer, with another trailer) from another frame that
/// reuses its sequence number.
pub type Fingerprint = u64;

/// What the receiver remembers of one origin's numbers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OriginWindow {
    /// The highest number accepted.
    pub highest: u32,
    /// Numbers accepted within the window below `highest`, with their fingerprints.
    pub seen: BTreeMap<u32, Fingerprint>,
}

/// The receiver's memory of accepted sequence numbers, per origin.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplayState {
    pub origins: BTreeMap<AreaCode, OriginWindow>,
}

/// What the replay window says of a frame's sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// Not seen: new.
    New,
    /// Accepted before with the same content.
    Duplicate,
    /// Accepted before with other content under the same number.
    Reused,
    /// Below the window: too old to tell, so refused.
    BelowWindow { lowest: u32 },
}

impl ReplayState {
    /// Where `sequence` from `origin` stands, with a window of `window` numbers.
    pub fn check(
        &self,
        origin: &AreaCode,
        sequence: u32,
        fingerprint: Fingerprint,
        window: u32,
    ) -> Seen {
        let Some(known) = self.origins.get(origin) else {
            return Seen::New;
        };
        match known.seen.get(&sequence) {
            Some(f) if *f == fingerprint => Seen::Duplicate,
            Some(_) => Seen::Reused,
            None => {
                let lowest = lowest_in_window(known.highest, window);
                if sequence < lowest {
                    Seen::BelowWindow { lowest }
                } else {
                    Seen::New
                }
            }
        }
    }

    /// Remembers an accepted frame and forgets numbers that fell out of the window.
    pub fn record(
        &mut self,
        origin: &AreaCode,
        sequence: u32,
        fingerprint: Fingerprint,
        window: u32,
    ) {
        let known = self.origins.entry(origin.clone()).or_default();
        known.highest = known.highest.max(sequence);
        known.seen.insert(sequence, fingerprint);
        let lowest = lowest_in_window(known.highest, window);
        known.seen = known.seen.split_off(&lowest);
    }
}

fn lowest_in_window(highest: u32, window: u32) -> u32 {
    highest.saturating_sub(window.max(1) - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn district() -> AreaCode {
        "410503".parse().expect("area")
    }

    #[test]
    fn an_allocator_reserves_a_block_ahead_and_persists_once_a_block() {
        let mut allocator = SequenceAllocator::resume(None, 100);
        let first = allocator.allocate().expect("number");
        assert_eq!(
            first,
            Allocated {
                sequence: 1,
                persist: Some(101)
            }
        );
        for expected in 2..=100 {
            assert_eq!(
                allocator.allocate(),
                Ok(Allocated {
                    sequence: expected,
                    persist: None
                })
            );
        }
        assert_eq!(
            allocator.allocate(),
            Ok(Allocated {
                sequence: 101,
                persist: Some(201)
            })
        );
    }

    #[test]
    fn a_restarted_origin_never_reuses_a_number_it_may_have_sent() {
        let mut before = SequenceAllocator::resume(None, 10);
        let mut stored = None;
        let mut used = Vec::new();
        for _ in 0..13 {
            let a = before.allocate().expect("number");
            stored = a.persist.or(stored);
            used.push(a.sequence);
        }
        // The process dies here, and starts again from what it stored.
        let mut after = SequenceAllocator::resume(stored, 10);
        let next = after.allocate().expect("number");
        assert!(
            used.iter().all(|u| *u < next.sequence),
            "{next:?} after {used:?}"
        );
        assert_eq!(
            next,
            Allocated {
                sequence: 21,
                persist: Some(31)
            }
        );
    }

    #[test]
    fn an_allocator_at_the_end_of_its_numbers_says_so_instead_of_wrapping() {
        let mut allocator = SequenceAllocator::resume(Some(u32::MAX - 1), 10);
        assert_eq!(allocator.allocate().map(|a| a.sequence), Ok(u32::MAX - 1));
        assert_eq!(allocator.allocate(), Err(SequenceExhausted));
    }

    #[test]
    fn the_window_tells_new_duplicate_reused_and_too_old() {
        let mut state = ReplayState::default();
        let origin = district();
        for sequence in [5, 7, 6] {
            assert_eq!(state.check(&origin, sequence, 0xaa, 4), Seen::New);
            state.record(&origin, sequence, 0xaa, 4);
        }
        assert_eq!(state.check(&origin, 6, 0xaa, 4), Seen::Duplicate);
        assert_eq!(state.check(&origin, 6, 0xbb, 4), Seen::Reused);
        assert_eq!(
            state.check(&origin, 4, 0xaa, 4),
            Seen::New,
            "inside the window, unseen"
        );
        assert_eq!(
            state.check(&origin, 3, 0xaa, 4),
            Seen::BelowWindow { lowest: 4 }
        );
        state.record(&origin, 100, 0xcc, 4);
        assert_eq!(
            state.origins[&origin]
                .seen
                .keys()
                .copied()
                .collect::<Vec<_>>(),
            [100]
        );
    }

    #[test]
    fn the_state_survives_a_restart_as_json() {
        let mut state = ReplayState::default();
        state.record(&district(), 9, 0x1234, 64);
        let stored = serde_json::to_string(&state).expect("serialises");
        let loaded: ReplayState = serde_json::from_str(&stored).expect("deserialises");
        assert_eq!(loaded, state);
        assert_eq!(loaded.check(&district(), 9, 0x1234, 64), Seen::Duplicate);
    }
}
