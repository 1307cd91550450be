//! Floor control of one patch: half duplex, one talker at a time.
//!
//! The first member to key holds the floor. While it holds it, and for the hang time
//! after it unkeys, every other member that keys is held off: its audio goes nowhere,
//! and it waits in the order it keyed. The holder may take the floor back during its
//! own hang time (the next over of the same conversation). When the hang time ends the
//! floor goes to the first waiting member still keyed, or becomes free.
//!
//! A priority member (a dispatcher) pre-empts a holder that is not one: it takes the
//! floor at once and the pre-empted member waits, first in line, if it is still keyed.
//!
//! A member holding the floor longer than the stuck-carrier time is taken off it: a
//! carrier stuck open (a radio left keyed in a pocket, a squelch set too low) would
//! otherwise block the patch for good. The bus locks that member out until its
//! carrier drops.
//!
//! Sans-IO: the caller passes `now`, calls [`Floor::poll`] at
//! [`Floor::next_deadline`] and reads what happened from the events each call returns.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::MemberId;

/// Timing of every patch's floor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FloorSettings {
    /// How long the floor stays with the last talker after it unkeys.
    pub hang: Duration,
    /// The longest one member may hold the floor before it is taken off as stuck.
    pub stuck_carrier: Duration,
}

impl Default for FloorSettings {
    fn default() -> Self {
        FloorSettings {
            hang: Duration::from_millis(1500),
            stuck_carrier: Duration::from_secs(120),
        }
    }
}

/// What changed on the floor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FloorEvent {
    /// `member` holds the floor from now; `preempted` lost it to a priority member.
    Granted {
        member: MemberId,
        preempted: Option<MemberId>,
    },
    /// `member` keyed while the floor was taken and waits.
    HeldOff { member: MemberId },
    /// `member` stopped holding the floor after `held_for`: it unkeyed or left the
    /// patch.
    Released {
        member: MemberId,
        held_for: Duration,
    },
    /// `member` lost the floor to a priority member after `held_for`, and waits.
    Preempted {
        member: MemberId,
        held_for: Duration,
    },
    /// `member` held the floor for `held_for`, past the stuck-carrier time, and was
    /// taken off it.
    StuckCarrier {
        member: MemberId,
        held_for: Duration,
    },
    /// The hang time ended with nobody waiting: the floor is free.
    Freed,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    Free,
    Held {
        member: MemberId,
        priority: bool,
        since: Instant,
    },
    Hang {
        member: MemberId,
        until: Instant,
    },
}

/// One patch's floor.
#[derive(Debug, Clone)]
pub struct Floor {
    settings: FloorSettings,
    state: State,
    /// Members keyed while held off, with their priority, oldest first.
    waiting: VecDeque<(MemberId, bool)>,
}

impl Floor {
    pub fn new(settings: FloorSettings) -> Floor {
        Floor {
            settings,
            state: State::Free,
            waiting: VecDeque::new(),
        }
    }

    /// New timing, from the next hang time or stuck-carrier check on.
    pub fn set_settings(&mut self, settings: FloorSettings) {
        self.settings = settings;
    }

    /// The member whose audio the patch carries now, if any.
    pub fn holder(&self) -> Option<&MemberId> {
        match &self.state {
            State::Held { member, .. } => Some(member),
            _ => None,
        }
    }

    /// Whether the floor is held or in its hang time: whether the patch is busy.
    pub fn is_busy(&self) -> bool {
        self.state != State::Free
    }

    /// `member` keyed (its carrier opened).
    pub fn key(&mut self, member: &MemberId, priority: bool, now: Instant) -> Vec<FloorEvent> {
        let mut events = Vec::new();
        match &self.state {
            State::Free => self.grant(member.clone(), priority, None, now, &mut events),
            State::Hang { member: last, .. } if last == member || priority => {
                self.grant(member.clone(), priority, None, now, &mut events)
            }
            State::Held { member: holder, .. } if holder == member => {}
            State::Held {
                member: holder,
                priority: false,
                since,
            } if priority => {
                let (holder, since) = (holder.clone(), *since);
                events.push(FloorEvent::Preempted {
                    member: holder.clone(),
                    held_for: now.saturating_duration_since(since),
                });
                self.waiting.push_front((holder.clone(), false));
                self.grant(member.clone(), priority, Some(holder), now, &mut events);
            }
            _ => {
                if !self.waiting.iter().any(|(m, _)| m == member) {
                    self.waiting.push_back((member.clone(), priority));
                    events.push(FloorEvent::HeldOff {
                        member: member.clone(),
                    });
                }
            }
        }
        events
    }

    /// `member` unkeyed (its carrier dropped), or left the patch.
    pub fn unkey(&mut self, member: &MemberId, now: Instant) -> Vec<FloorEvent> {
        self.waiting.retain(|(m, _)| m != member);
        let mut events = Vec::new();
        if let State::Held {
            member: holder,
            since,
            ..
        } = &self.state
            && holder == member
        {
            events.push(FloorEvent::Released {
                member: member.clone(),
                held_for: now.saturating_duration_since(*since),
            });
            self.state = State::Hang {
                member: member.clone(),
                until: now.checked_add(self.settings.hang).unwrap_or(now),
            };
        }
        events
    }

    /// Takes `member` off the floor and out of the queue without a hang time: it left
    /// the patch or was locked out elsewhere. The next waiting member gets the floor.
    pub fn remove(&mut self, member: &MemberId, now: Instant) -> Vec<FloorEvent> {
        let mut events = self.unkey(member, now);
        if matches!(&self.state, State::Hang { member: last, .. } if last == member) {
            self.state = State::Free;
            self.next_in_line(now, &mut events);
        }
        events
    }

    /// Ends the floor: the patch is going. The holder is released and nobody waiting
    /// gets the floor.
    pub fn clear(&mut self, now: Instant) -> Vec<FloorEvent> {
        self.waiting.clear();
        let mut events = Vec::new();
        if let State::Held { member, since, .. } = &self.state {
            events.push(FloorEvent::Released {
                member: member.clone(),
                held_for: now.saturating_duration_since(*since),
            });
        }
        self.state = State::Free;
        events
    }

    /// Runs the timers due at `now`.
    pub fn poll(&mut self, now: Instant) -> Vec<FloorEvent> {
        let mut events = Vec::new();
        match &self.state {
            State::Hang { until, .. } if now >= *until => {
                self.state = State::Free;
                self.next_in_line(now, &mut events);
            }
            State::Held { member, since, .. }
                if now.saturating_duration_since(*since) >= self.settings.stuck_carrier =>
            {
                let member = member.clone();
                events.push(FloorEvent::StuckCarrier {
                    member: member.clone(),
                    held_for: now.saturating_duration_since(*since),
                });
                self.waiting.retain(|(m, _)| *m != member);
                self.state = State::Free;
                self.next_in_line(now, &mut events);
            }
            _ => {}
        }
        events
    }

    /// When [`Floor::poll`] has work next.
    pub fn next_deadline(&self) -> Option<Instant> {
        match &self.state {
            State::Free => None,
            State::Held { since, .. } => since.checked_add(self.settings.stuck_carrier),
            State::Hang { until, .. } => Some(*until),
        }
    }

    fn next_in_line(&mut self, now: Instant, events: &mut Vec<FloorEvent>) {
        // A priority member waiting (it keyed during another priority member's over)
        // goes before the others.
        let next = self
            .waiting
            .iter()
            .position(|(_, priority)| *priority)
            .or((!self.waiting.is_empty()).then_some(0));
        match next.and_then(|k| self.waiting.remove(k)) {
            Some((member, priority)) => self.grant(member, priority, None, now, events),
            None => events.push(FloorEvent::Freed),
        }
    }

    fn grant(
        &mut self,
        member: MemberId,
        priority: bool,
        preempted: Option<MemberId>,
        now: Instant,
        events: &mut Vec<FloorEvent>,
    ) {
        self.waiting.retain(|(m, _)| *m != member);
        self.state = State::Held {
            member: member.clone(),
            priority,
            since: now,
        };
        events.push(FloorEvent::Granted { member, preempted });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn floor() -> (Floor, Instant) {
        let settings = FloorSettings {
            hang: 1000 * MS,
            stuck_carrier: Duration::from_secs(60),
        };
        (Floor::new(settings), Instant::now())
    }

    fn m(name: &str) -> MemberId {
        MemberId::from(name)
    }

    #[test]
    fn the_first_to_key_holds_the_floor_and_the_second_waits_out_the_hang_time() {
        let (mut floor, t0) = floor();
        assert_eq!(
            floor.key(&m("a"), false, t0),
            vec![FloorEvent::Granted {
                member: m("a"),
                preempted: None
            }]
        );
        assert_eq!(
            floor.key(&m("b"), false, t0),
            vec![FloorEvent::HeldOff { member: m("b") }]
        );

        let released = floor.unkey(&m("a"), t0 + 3000 * MS);
        assert_eq!(
            released,
            vec![FloorEvent::Released {
                member: m("a"),
                held_for: 3000 * MS
            }]
        );
        assert_eq!(floor.holder(), None);
        assert_eq!(floor.next_deadline(), Some(t0 + 4000 * MS));
        assert!(floor.poll(t0 + 3999 * MS).is_empty());
        assert_eq!(
            floor.poll(t0 + 4000 * MS),
            vec![FloorEvent::Granted {
                member: m("b"),
                preempted: None
            }]
        );
    }

    #[test]
    fn the_last_talker_takes_the_floor_back_within_its_hang_time_and_others_do_not() {
        let (mut floor, t0) = floor();
        floor.key(&m("a"), false, t0);
        floor.unkey(&m("a"), t0 + 2000 * MS);

        assert_eq!(
            floor.key(&m("b"), false, t0 + 2500 * MS),
            vec![FloorEvent::HeldOff { member: m("b") }]
        );
        assert_eq!(
            floor.key(&m("a"), false, t0 + 2600 * MS),
            vec![FloorEvent::Granted {
                member: m("a"),
                preempted: None
            }]
        );
        // b unkeys while waiting: it is no longer in line.
        floor.unkey(&m("b"), t0 + 2700 * MS);
        floor.unkey(&m("a"), t0 + 3000 * MS);
        assert_eq!(floor.poll(t0 + 4000 * MS), vec![FloorEvent::Freed]);
        assert!(!floor.is_busy());
    }

    #[test]
    fn a_priority_member_preempts_and_the_preempted_member_is_next_in_line() {
        let (mut floor, t0) = floor();
        floor.key(&m("field"), false, t0);
        floor.key(&m("other"), false, t0 + 100 * MS);

        let events = floor.key(&m("dispatch"), true, t0 + 500 * MS);
        assert_eq!(
            events,
            vec![
                FloorEvent::Preempted {
                    member: m("field"),
                    held_for: 500 * MS
                },
                FloorEvent::Granted {
                    member: m("dispatch"),
                    preempted: Some(m("field"))
                }
            ]
        );

        floor.unkey(&m("dispatch"), t0 + 2000 * MS);
        assert_eq!(
            floor.poll(t0 + 3000 * MS),
            vec![FloorEvent::Granted {
                member: m("field"),
                preempted: None
            }]
        );
    }

    #[test]
    fn a_priority_member_does_not_preempt_another_priority_member() {
        let (mut floor, t0) = floor();
        floor.key(&m("dispatch-1"), true, t0);
        assert_eq!(
            floor.key(&m("dispatch-2"), true, t0 + MS),
            vec![FloorEvent::HeldOff {
                member: m("dispatch-2")
            }]
        );
    }

    #[test]
    fn a_priority_member_takes_the_floor_during_another_members_hang_time() {
        let (mut floor, t0) = floor();
        floor.key(&m("field"), false, t0);
        floor.unkey(&m("field"), t0 + 100 * MS);
        assert_eq!(
            floor.key(&m("dispatch"), true, t0 + 200 * MS),
            vec![FloorEvent::Granted {
                member: m("dispatch"),
                preempted: None
            }]
        );
    }

    #[test]
    fn a_carrier_held_past_the_stuck_time_is_taken_off_and_the_next_member_gets_the_floor() {
        let (mut floor, t0) = floor();
        floor.key(&m("stuck"), false, t0);
        floor.key(&m("b"), false, t0 + 10 * MS);
        assert_eq!(floor.next_deadline(), Some(t0 + Duration::from_secs(60)));
        assert!(floor.poll(t0 + Duration::from_secs(59)).is_empty());

        let events = floor.poll(t0 + Duration::from_secs(60));
        assert_eq!(
            events,
            vec![
                FloorEvent::StuckCarrier {
                    member: m("stuck"),
                    held_for: Duration::from_secs(60)
                },
                FloorEvent::Granted {
                    member: m("b"),
                    preempted: None
                }
            ]
        );
    }

    #[test]
    fn a_member_removed_in_its_hang_time_frees_the_floor_for_the_next_at_once() {
        let (mut floor, t0) = floor();
        floor.key(&m("a"), false, t0);
        floor.key(&m("b"), false, t0);
        floor.unkey(&m("a"), t0 + 100 * MS);
        assert_eq!(
            floor.remove(&m("a"), t0 + 200 * MS),
            vec![FloorEvent::Granted {
                member: m("b"),
                preempted: None
            }]
        );
    }
}
