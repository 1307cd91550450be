//! Alerts spoken on a radio port: the 370 MHz bearer of the cascade.
//!
//! When a neighbour below has lost IP and a radio of this node reaches its talkgroup,
//! the alert playout hands each play of the alert (attention signal and speech, 48 kHz
//! mono) to the patching task, which sends it to that port one 20 ms frame at a time,
//! in real time. The port keys PTT, holds the audio for its TX lead and releases after
//! its hang time, as for any transmission; its transmit time-out still holds.
//!
//! Contract:
//!
//! * An alert outranks any patch: while a port announces, what the patch bus would
//!   transmit on it is dropped ([`Announcements::is_announcing`]), so the talkgroup hears
//!   the alert whole.
//! * One announcement on air per port; the others wait their turn, nothing is dropped.
//!   A play of a higher level than the one on air takes the port at once, and the one
//!   it interrupted is heard again from its start afterwards; a play of the same or a
//!   lower level waits behind every play of its level or higher, in the order they came.
//!   At most one play of an alert waits per port: a second is the same programme again.
//! * [`Announcements::end`] stops and forgets every play of an alert that was
//!   cancelled or expired, on air or waiting.
//! * Frames are due at fixed 20 ms steps from a play's start; a late poll sends every
//!   frame that has come due, so the port's transmit buffer absorbs the lateness.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use drivers::radio::ptt::FRAME;

use super::MemberId;
use crate::alert::model::Level;

/// The sample rate of a programme and of a port's frames.
pub const SAMPLE_RATE: usize = 48_000;

/// Samples in one frame ([`FRAME`] at [`SAMPLE_RATE`]).
pub const FRAME_SAMPLES: usize = 960;

/// One play of an alert for one port.
#[derive(Debug)]
struct Announcement {
    alert: i64,
    level: Level,
    samples: Arc<Vec<i16>>,
    /// The first sample not yet sent.
    next: usize,
    /// When the frame starting at `next` is due.
    due: Instant,
}

impl Announcement {
    fn seconds(&self) -> u64 {
        (self.samples.len() / SAMPLE_RATE) as u64
    }
}

/// What happened to a play on a port, for the journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnnounceEvent {
    /// On air.
    Started {
        port: MemberId,
        alert: i64,
        seconds: u64,
    },
    /// Waiting behind the play on air, `ahead` plays before it.
    Waiting {
        port: MemberId,
        alert: i64,
        ahead: usize,
    },
    /// Taken off the air by a higher alert; it waits to be heard again from its start.
    Interrupted {
        port: MemberId,
        alert: i64,
    },
    Finished {
        port: MemberId,
        alert: i64,
    },
    /// Cancelled or expired: taken off the air, or out of the queue.
    Stopped {
        port: MemberId,
        alert: i64,
    },
}

#[derive(Debug, Default)]
struct Port {
    on_air: Option<Announcement>,
    waiting: VecDeque<Announcement>,
}

/// The announcements on the node's radio ports.
#[derive(Debug, Default)]
pub struct Announcements {
    ports: BTreeMap<MemberId, Port>,
}

impl Announcements {
    /// A play of `alert` at `level` for `port`, from `now` or after what goes first.
    pub fn start(
        &mut self,
        port: MemberId,
        alert: i64,
        level: Level,
        samples: Arc<Vec<i16>>,
        now: Instant,
    ) -> Vec<AnnounceEvent> {
        let state = self.ports.entry(port.clone()).or_default();
        let play = Announcement {
            alert,
            level,
            samples,
            next: 0,
            due: now,
        };
        if state.waiting.iter().any(|a| a.alert == alert) {
            return Vec::new();
        }
        let seconds = play.seconds();
        let started = AnnounceEvent::Started {
            port: port.clone(),
            alert,
            seconds,
        };
        match state.on_air.take() {
            None => {
                state.on_air = Some(play);
                vec![started]
            }
            Some(mut interrupted) if level > interrupted.level => {
                let off = interrupted.alert;
                if !state.waiting.iter().any(|a| a.alert == off) {
                    interrupted.next = 0;
                    state.waiting.push_front(interrupted);
                }
                state.on_air = Some(play);
                vec![AnnounceEvent::Interrupted { port, alert: off }, started]
            }
            on_air => {
                state.on_air = on_air;
                let at = state
                    .waiting
                    .iter()
                    .position(|a| a.level < level)
                    .unwrap_or(state.waiting.len());
                state.waiting.insert(at, play);
                vec![AnnounceEvent::Waiting {
                    port,
                    alert,
                    ahead: at + 1,
                }]
            }
        }
    }

    /// Stops and forgets every play of `alert`, on air or waiting.
    pub fn end(&mut self, alert: i64, now: Instant) -> Vec<AnnounceEvent> {
        let mut events = Vec::new();
        for (port, state) in &mut self.ports {
            let before = state.waiting.len();
            state.waiting.retain(|a| a.alert != alert);
            let on_air = state.on_air.as_ref().is_some_and(|a| a.alert == alert);
            if on_air || before != state.waiting.len() {
                events.push(AnnounceEvent::Stopped {
                    port: port.clone(),
                    alert,
                });
            }
            if on_air {
                state.on_air = None;
                next_on_air(port, state, now, &mut events);
            }
        }
        self.ports.retain(|_, s| s.on_air.is_some());
        events
    }

    /// Whether an alert is on air on `port`.
    pub fn is_announcing(&self, port: &MemberId) -> bool {
        self.ports.get(port).is_some_and(|s| s.on_air.is_some())
    }

    /// When the next frame is due.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.ports
            .values()
            .filter_map(|s| s.on_air.as_ref().map(|a| a.due))
            .min()
    }

    /// Every frame due by `now`, in order per port, and what started and ended.
    pub fn poll(&mut self, now: Instant) -> (Vec<(MemberId, Vec<i16>)>, Vec<AnnounceEvent>) {
        let mut frames = Vec::new();
        let mut events = Vec::new();
        for (port, state) in &mut self.ports {
            while let Some(a) = &mut state.on_air {
                while a.due <= now && a.next < a.samples.len() {
                    let end = (a.next + FRAME_SAMPLES).min(a.samples.len());
                    let mut frame = a.samples[a.next..end].to_vec();
                    frame.resize(FRAME_SAMPLES, 0);
                    frames.push((port.clone(), frame));
                    a.next = end;
                    a.due += FRAME;
                }
                if a.next < a.samples.len() {
                    break;
                }
                let (alert, ended) = (a.alert, a.due);
                events.push(AnnounceEvent::Finished {
                    port: port.clone(),
                    alert,
                });
                state.on_air = None;
                // The next play follows on from the last frame's end.
                next_on_air(port, state, ended.min(now), &mut events);
            }
        }
        self.ports.retain(|_, s| s.on_air.is_some());
        (frames, events)
    }
}

/// Puts the first waiting play of `port` on air from `at`.
fn next_on_air(port: &MemberId, state: &mut Port, at: Instant, events: &mut Vec<AnnounceEvent>) {
    if let Some(mut next) = state.waiting.pop_front() {
        next.due = at;
        events.push(AnnounceEvent::Started {
            port: port.clone(),
            alert: next.alert,
            seconds: next.seconds(),
        });
        state.on_air = Some(next);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn port(name: &str) -> MemberId {
        MemberId::from(name)
    }

    /// `frames` whole frames and a half, each frame's samples its own number.
    fn programme(frames: usize) -> Arc<Vec<i16>> {
        let mut samples: Vec<i16> = (0..frames)
            .flat_map(|f| std::iter::repeat_n(f as i16 + 1, FRAME_SAMPLES))
            .collect();
        samples.extend(std::iter::repeat_n(99, FRAME_SAMPLES / 2));
        Arc::new(samples)
    }

    /// A programme whose every sample is `mark`, `frames` frames long.
    fn marked(mark: i16, frames: usize) -> Arc<Vec<i16>> {
        Arc::new(vec![mark; frames * FRAME_SAMPLES])
    }

    /// The first sample of each frame sent on `port` while polling every frame time
    /// from `t0` for `frames` frames.
    fn heard(a: &mut Announcements, t0: Instant, frames: u32, on: &str) -> Vec<i16> {
        (0..frames)
            .flat_map(|k| a.poll(t0 + FRAME * k).0)
            .filter(|(p, _)| *p == port(on))
            .map(|(_, f)| f[0])
            .collect()
    }

    #[test]
    fn an_alert_goes_out_frame_by_frame_in_real_time_then_ends() {
        let t0 = Instant::now();
        let mut a = Announcements::default();
        a.start(port("tg-v"), 7, Level::Red, programme(3), t0);
        assert!(a.is_announcing(&port("tg-v")));

        let (frames, events) = a.poll(t0);
        assert_eq!(frames.len(), 1, "the first frame at once");
        assert_eq!(frames[0].1[0], 1);
        assert!(events.is_empty());
        assert_eq!(a.next_deadline(), Some(t0 + FRAME));

        // Polled late: both frames that came due go, in order.
        let (frames, _) = a.poll(t0 + FRAME * 2);
        let firsts: Vec<i16> = frames.iter().map(|(_, f)| f[0]).collect();
        assert_eq!(firsts, vec![2, 3]);

        let (frames, events) = a.poll(t0 + FRAME * 3);
        assert_eq!(frames.len(), 1);
        assert_eq!(frames[0].1.len(), FRAME_SAMPLES, "the last frame padded");
        assert_eq!(frames[0].1[FRAME_SAMPLES / 2 - 1], 99);
        assert_eq!(frames[0].1[FRAME_SAMPLES / 2], 0);
        assert_eq!(
            events,
            vec![AnnounceEvent::Finished {
                port: port("tg-v"),
                alert: 7
            }]
        );
        assert!(!a.is_announcing(&port("tg-v")));
        assert_eq!(a.next_deadline(), None);
    }

    #[test]
    fn a_cancelled_alert_stops_on_every_port_and_leaves_others() {
        let t0 = Instant::now();
        let mut a = Announcements::default();
        a.start(port("tg-1"), 7, Level::Red, programme(50), t0);
        a.start(port("tg-2"), 7, Level::Red, programme(50), t0);
        a.start(port("tg-3"), 8, Level::Red, programme(50), t0);
        let stopped = a.end(7, t0);
        assert_eq!(stopped.len(), 2);
        assert!(!a.is_announcing(&port("tg-1")));
        assert!(a.is_announcing(&port("tg-3")));
        let (frames, _) = a.poll(t0);
        assert_eq!(frames.len(), 1);
        assert_eq!(frames[0].0, port("tg-3"));
    }

    #[test]
    fn a_higher_alert_interrupts_and_the_interrupted_one_is_heard_again_whole_after() {
        let t0 = Instant::now();
        let mut a = Announcements::default();
        a.start(port("tg-v"), 7, Level::Blue, marked(7, 10), t0);
        assert_eq!(heard(&mut a, t0, 3, "tg-v"), vec![7, 7, 7]);
        let events = a.start(port("tg-v"), 9, Level::Red, marked(9, 2), t0 + FRAME * 3);
        assert_eq!(
            events[0],
            AnnounceEvent::Interrupted {
                port: port("tg-v"),
                alert: 7
            }
        );
        let rest = heard(&mut a, t0 + FRAME * 3, 14, "tg-v");
        assert_eq!(&rest[..2], &[9, 9], "the red alert at once");
        assert_eq!(rest[2..].len(), 10, "the blue one again, all ten frames");
        assert!(rest[2..].iter().all(|s| *s == 7));
        assert!(!a.is_announcing(&port("tg-v")));
    }

    #[test]
    fn plays_of_the_same_or_a_lower_level_wait_their_turn_and_are_not_doubled() {
        let t0 = Instant::now();
        let mut a = Announcements::default();
        a.start(port("tg-v"), 1, Level::Orange, marked(1, 2), t0);
        let waiting = a.start(port("tg-v"), 2, Level::Blue, marked(2, 2), t0);
        assert_eq!(
            waiting,
            vec![AnnounceEvent::Waiting {
                port: port("tg-v"),
                alert: 2,
                ahead: 1
            }]
        );
        // An orange one goes ahead of the blue one, behind the orange on air.
        a.start(port("tg-v"), 3, Level::Orange, marked(3, 2), t0);
        // The second play of alert 1 waits; a third while that one waits is the same.
        a.start(port("tg-v"), 1, Level::Orange, marked(1, 2), t0);
        assert!(
            a.start(port("tg-v"), 1, Level::Orange, marked(1, 2), t0)
                .is_empty()
        );
        assert_eq!(
            heard(&mut a, t0, 10, "tg-v"),
            vec![1, 1, 3, 3, 1, 1, 2, 2],
            "played back to back, in order"
        );
    }

    #[test]
    fn ending_the_alert_on_air_puts_the_next_on_air_and_ending_a_waiting_one_drops_it() {
        let t0 = Instant::now();
        let mut a = Announcements::default();
        a.start(port("tg-v"), 1, Level::Red, marked(1, 5), t0);
        a.start(port("tg-v"), 2, Level::Red, marked(2, 2), t0);
        a.start(port("tg-v"), 3, Level::Red, marked(3, 2), t0);
        assert_eq!(heard(&mut a, t0, 1, "tg-v"), vec![1]);
        let events = a.end(3, t0 + FRAME);
        assert_eq!(
            events,
            vec![AnnounceEvent::Stopped {
                port: port("tg-v"),
                alert: 3
            }]
        );
        let events = a.end(1, t0 + FRAME);
        assert_eq!(events.len(), 2, "{events:?}");
        assert!(matches!(events[1], AnnounceEvent::Started { alert: 2, .. }));
        assert_eq!(heard(&mut a, t0 + FRAME, 4, "tg-v"), vec![2, 2]);
        assert!(!a.is_announcing(&port("tg-v")));
    }
}
