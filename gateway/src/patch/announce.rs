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
//! * One play on air per port; the others wait their turn. A play of a higher level
//!   than the one on air takes the port at once, and the one it interrupted is heard
//!   again from its start afterwards; a play of the same or a lower level waits behind
//!   every play of its level or higher, in the order they came. At most one play of an
//!   alert waits per port: a second is the same programme again.
//! * Each play after a finished one starts `gap` later (the port's PTT hang and a
//!   margin), so every play is an over of its own and the transmit time-out counts each
//!   play, not a queue of them.
//! * A play is never started, nor kept on air, after its alert's end (`until`):
//!   [`Announcements::end`] stops every play of an alert that was cancelled or expired
//!   earlier, on air or waiting.
//! * While a port is down ([`Announcements::pause`]) nothing goes on air there: the play
//!   on air goes back to the head of the queue, to be heard whole once the port is up.
//! * Frames are due at fixed 20 ms steps from a play's start; a late poll sends every
//!   frame that has come due, so the port's transmit buffer absorbs the lateness.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use drivers::radio::ptt::FRAME;

use super::MemberId;
use crate::alert::model::Level;

/// The sample rate of a programme and of a port's frames.
pub const SAMPLE_RATE: usize = 48_000;

/// Samples in one frame ([`FRAME`] at [`SAMPLE_RATE`]).
pub const FRAME_SAMPLES: usize = 960;

/// One play of an alert, as the playout hands it over.
#[derive(Debug, Clone)]
pub struct Play {
    pub alert: i64,
    pub level: Level,
    /// The programme: attention signal and speech, 48 kHz mono.
    pub samples: Arc<Vec<i16>>,
    /// The alert's end: not on air after it.
    pub until: Instant,
}

/// A play on one port.
#[derive(Debug)]
struct Announcement {
    play: Play,
    /// The first sample not yet sent.
    next: usize,
    /// When the frame starting at `next` is due.
    due: Instant,
}

impl Announcement {
    fn seconds(&self) -> u64 {
        (self.play.samples.len() / SAMPLE_RATE) as u64
    }

    fn alert(&self) -> i64 {
        self.play.alert
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
    /// Waiting behind the play on air (or for the port to come back), `ahead` plays
    /// before it.
    Waiting {
        port: MemberId,
        alert: i64,
        ahead: usize,
    },
    /// Taken off the air by a higher alert, or by the port going down; it waits to be
    /// heard again from its start.
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
    /// Between one play and the next.
    gap: Duration,
}

/// The announcements on the node's radio ports.
#[derive(Debug, Default)]
pub struct Announcements {
    ports: BTreeMap<MemberId, Port>,
    /// Ports that are down: nothing goes on air there.
    down: BTreeSet<MemberId>,
}

impl Announcements {
    /// `play` for `port`, from `now` or after what goes first; `gap` is the port's
    /// pause between plays.
    pub fn start(
        &mut self,
        port: MemberId,
        play: Play,
        gap: Duration,
        now: Instant,
    ) -> Vec<AnnounceEvent> {
        let down = self.down.contains(&port);
        let state = self.ports.entry(port.clone()).or_default();
        state.gap = gap;
        let (alert, level) = (play.alert, play.level);
        if state.waiting.iter().any(|a| a.alert() == alert) || play.until <= now {
            return Vec::new();
        }
        let play = Announcement {
            play,
            next: 0,
            due: now,
        };
        let started = AnnounceEvent::Started {
            port: port.clone(),
            alert,
            seconds: play.seconds(),
        };
        match state.on_air.take() {
            None if !down => {
                state.on_air = Some(play);
                vec![started]
            }
            Some(mut interrupted) if level > interrupted.play.level => {
                let off = interrupted.alert();
                if !state.waiting.iter().any(|a| a.alert() == off) {
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
                    .position(|a| a.play.level < level)
                    .unwrap_or(state.waiting.len());
                state.waiting.insert(at, play);
                vec![AnnounceEvent::Waiting {
                    port,
                    alert,
                    ahead: at + usize::from(state.on_air.is_some()),
                }]
            }
        }
    }

    /// Stops and forgets every play of `alert`, on air or waiting.
    pub fn end(&mut self, alert: i64, now: Instant) -> Vec<AnnounceEvent> {
        let mut events = Vec::new();
        for (port, state) in &mut self.ports {
            let before = state.waiting.len();
            state.waiting.retain(|a| a.alert() != alert);
            let on_air = state.on_air.as_ref().is_some_and(|a| a.alert() == alert);
            if on_air || before != state.waiting.len() {
                events.push(AnnounceEvent::Stopped {
                    port: port.clone(),
                    alert,
                });
            }
            if on_air {
                state.after_on_air(port, now, now, &mut events);
            }
        }
        self.forget_idle_ports();
        events
    }

    /// `port` went down: its play on air goes back to the head of the queue.
    pub fn pause(&mut self, port: &MemberId) -> Vec<AnnounceEvent> {
        self.down.insert(port.clone());
        let Some(state) = self.ports.get_mut(port) else {
            return Vec::new();
        };
        let Some(mut interrupted) = state.on_air.take() else {
            return Vec::new();
        };
        let alert = interrupted.alert();
        interrupted.next = 0;
        state.waiting.push_front(interrupted);
        vec![AnnounceEvent::Interrupted {
            port: port.clone(),
            alert,
        }]
    }

    /// `port` is up again: what waits for it goes on air.
    pub fn resume(&mut self, port: &MemberId, now: Instant) -> Vec<AnnounceEvent> {
        let mut events = Vec::new();
        if self.down.remove(port)
            && let Some(state) = self.ports.get_mut(port)
            && state.on_air.is_none()
        {
            next_on_air(port, state, now, now, &mut events);
        }
        self.forget_idle_ports();
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
                if a.play.until <= now {
                    events.push(AnnounceEvent::Stopped {
                        port: port.clone(),
                        alert: a.alert(),
                    });
                    state.after_on_air(port, now, now, &mut events);
                    continue;
                }
                while a.due <= now && a.next < a.play.samples.len() {
                    let end = (a.next + FRAME_SAMPLES).min(a.play.samples.len());
                    let mut frame = a.play.samples[a.next..end].to_vec();
                    frame.resize(FRAME_SAMPLES, 0);
                    frames.push((port.clone(), frame));
                    a.next = end;
                    a.due += FRAME;
                }
                if a.next < a.play.samples.len() || a.due > now {
                    break;
                }
                let (alert, ended) = (a.alert(), a.due);
                events.push(AnnounceEvent::Finished {
                    port: port.clone(),
                    alert,
                });
                state.after_on_air(port, ended, now, &mut events);
            }
        }
        self.forget_idle_ports();
        (frames, events)
    }

    /// Drops the ports with nothing on air or waiting.
    fn forget_idle_ports(&mut self) {
        self.ports
            .retain(|_, s| s.on_air.is_some() || !s.waiting.is_empty());
    }
}

impl Port {
    /// Takes the play on air off, and puts the next on air `gap` after `ended`. (A port
    /// that is down has nothing on air: [`Announcements::pause`] moved it back.)
    fn after_on_air(
        &mut self,
        port: &MemberId,
        ended: Instant,
        now: Instant,
        events: &mut Vec<AnnounceEvent>,
    ) {
        self.on_air = None;
        let at = ended + self.gap;
        next_on_air(port, self, at, now, events);
    }
}

/// Puts the first waiting play of `port` that has not ended on air from `at`; those
/// that ended by `now` are dropped.
fn next_on_air(
    port: &MemberId,
    state: &mut Port,
    at: Instant,
    now: Instant,
    events: &mut Vec<AnnounceEvent>,
) {
    while let Some(mut next) = state.waiting.pop_front() {
        if next.play.until <= now.max(at) {
            events.push(AnnounceEvent::Stopped {
                port: port.clone(),
                alert: next.alert(),
            });
            continue;
        }
        next.due = at;
        events.push(AnnounceEvent::Started {
            port: port.clone(),
            alert: next.alert(),
            seconds: next.seconds(),
        });
        state.on_air = Some(next);
        return;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// No pause between plays, unless a test says so.
    const NO_GAP: Duration = Duration::ZERO;

    fn port(name: &str) -> MemberId {
        MemberId::from(name)
    }

    /// A play of `alert` that ends in an hour.
    fn play(alert: i64, level: Level, samples: Arc<Vec<i16>>, t0: Instant) -> Play {
        Play {
            alert,
            level,
            samples,
            until: t0 + Duration::from_secs(3600),
        }
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
    /// from `t0` for `frames` frames; 0 for a frame time with nothing sent.
    fn heard(a: &mut Announcements, t0: Instant, frames: u32, on: &str) -> Vec<i16> {
        (0..frames)
            .map(|k| {
                a.poll(t0 + FRAME * k)
                    .0
                    .into_iter()
                    .find(|(p, _)| *p == port(on))
                    .map_or(0, |(_, f)| f[0])
            })
            .collect()
    }

    #[test]
    fn an_alert_goes_out_frame_by_frame_in_real_time_then_ends() {
        let t0 = Instant::now();
        let mut a = Announcements::default();
        a.start(
            port("tg-v"),
            play(7, Level::Red, programme(3), t0),
            NO_GAP,
            t0,
        );
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
        assert!(events.is_empty(), "on air until its last frame has played");
        assert!(a.is_announcing(&port("tg-v")));

        let (frames, events) = a.poll(t0 + FRAME * 4);
        assert!(frames.is_empty());
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
        for (p, alert) in [("tg-1", 7), ("tg-2", 7), ("tg-3", 8)] {
            a.start(
                port(p),
                play(alert, Level::Red, programme(50), t0),
                NO_GAP,
                t0,
            );
        }
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
        a.start(
            port("tg-v"),
            play(7, Level::Blue, marked(7, 10), t0),
            NO_GAP,
            t0,
        );
        assert_eq!(heard(&mut a, t0, 3, "tg-v"), vec![7, 7, 7]);
        let t1 = t0 + FRAME * 3;
        let events = a.start(
            port("tg-v"),
            play(9, Level::Red, marked(9, 2), t0),
            NO_GAP,
            t1,
        );
        assert_eq!(
            events[0],
            AnnounceEvent::Interrupted {
                port: port("tg-v"),
                alert: 7
            }
        );
        let rest = heard(&mut a, t1, 13, "tg-v");
        assert_eq!(&rest[..2], &[9, 9], "the red alert at once");
        assert_eq!(&rest[2..12], &[7; 10], "then the blue one again, whole");
        assert_eq!(rest[12], 0, "and nothing after");
    }

    #[test]
    fn plays_of_the_same_or_a_lower_level_wait_their_turn_and_are_not_doubled() {
        let t0 = Instant::now();
        let mut a = Announcements::default();
        a.start(
            port("tg-v"),
            play(1, Level::Orange, marked(1, 2), t0),
            NO_GAP,
            t0,
        );
        let waiting = a.start(
            port("tg-v"),
            play(2, Level::Blue, marked(2, 2), t0),
            NO_GAP,
            t0,
        );
        assert_eq!(
            waiting,
            vec![AnnounceEvent::Waiting {
                port: port("tg-v"),
                alert: 2,
                ahead: 1
            }]
        );
        // An orange one goes ahead of the blue one, behind the orange on air.
        a.start(
            port("tg-v"),
            play(3, Level::Orange, marked(3, 2), t0),
            NO_GAP,
            t0,
        );
        // The second play of alert 1 waits; a third while that one waits is the same.
        a.start(
            port("tg-v"),
            play(1, Level::Orange, marked(1, 2), t0),
            NO_GAP,
            t0,
        );
        let again = a.start(
            port("tg-v"),
            play(1, Level::Orange, marked(1, 2), t0),
            NO_GAP,
            t0,
        );
        assert!(again.is_empty());
        assert_eq!(
            heard(&mut a, t0, 8, "tg-v"),
            vec![1, 1, 3, 3, 1, 1, 2, 2],
            "played back to back, in order"
        );
    }

    #[test]
    fn each_play_after_a_finished_one_waits_the_gap_so_it_is_an_over_of_its_own() {
        let t0 = Instant::now();
        let gap = FRAME * 3;
        let mut a = Announcements::default();
        a.start(port("tg-v"), play(1, Level::Red, marked(1, 2), t0), gap, t0);
        a.start(port("tg-v"), play(1, Level::Red, marked(1, 2), t0), gap, t0);
        assert_eq!(
            heard(&mut a, t0, 8, "tg-v"),
            vec![1, 1, 0, 0, 0, 1, 1, 0],
            "two frames, three frame times of silence, then the second play"
        );
    }

    #[test]
    fn nothing_goes_on_air_after_its_alerts_end_whether_on_air_or_waiting() {
        let t0 = Instant::now();
        let mut a = Announcements::default();
        let short = |alert, frames| Play {
            until: t0 + FRAME * frames,
            ..play(alert, Level::Red, marked(alert as i16, 5), t0)
        };
        a.start(port("tg-v"), short(1, 3), NO_GAP, t0);
        a.start(port("tg-v"), short(2, 3), NO_GAP, t0);
        a.start(
            port("tg-v"),
            play(3, Level::Red, marked(3, 2), t0),
            NO_GAP,
            t0,
        );
        // Alert 1 is cut at its end; alert 2 ended while it waited; alert 3 plays.
        assert_eq!(heard(&mut a, t0, 6, "tg-v"), vec![1, 1, 1, 3, 3, 0]);
        let expired = play(4, Level::Red, marked(4, 2), t0);
        let late = t0 + Duration::from_secs(3600);
        assert!(a.start(port("tg-v"), expired, NO_GAP, late).is_empty());
        assert!(!a.is_announcing(&port("tg-v")));
    }

    #[test]
    fn a_port_that_goes_down_keeps_its_play_and_sends_it_whole_when_back() {
        let t0 = Instant::now();
        let mut a = Announcements::default();
        a.start(
            port("tg-v"),
            play(1, Level::Red, marked(1, 3), t0),
            NO_GAP,
            t0,
        );
        assert_eq!(heard(&mut a, t0, 2, "tg-v"), vec![1, 1]);
        let events = a.pause(&port("tg-v"));
        assert!(matches!(
            events[0],
            AnnounceEvent::Interrupted { alert: 1, .. }
        ));
        assert!(
            !a.is_announcing(&port("tg-v")),
            "the patch bus has the port back"
        );
        // Down, a new play waits too.
        let waiting = a.start(
            port("tg-v"),
            play(2, Level::Red, marked(2, 1), t0),
            NO_GAP,
            t0,
        );
        assert!(matches!(
            waiting[0],
            AnnounceEvent::Waiting { alert: 2, .. }
        ));
        assert_eq!(heard(&mut a, t0 + FRAME * 2, 3, "tg-v"), vec![0, 0, 0]);

        let t1 = t0 + FRAME * 5;
        a.resume(&port("tg-v"), t1);
        assert_eq!(heard(&mut a, t1, 5, "tg-v"), vec![1, 1, 1, 2, 0]);
    }
}
