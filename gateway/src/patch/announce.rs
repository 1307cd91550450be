//! Alerts spoken on a radio port: the 370 MHz bearer of the cascade.
//!
//! When a neighbour below has lost IP and a radio of this node reaches its talkgroup,
//! the alert playout hands the alert's programme (attention signal and speech, 48 kHz
//! mono) to the patching task, which sends it to that port one 20 ms frame at a time,
//! in real time. The port keys PTT, holds the audio for its TX lead and releases after
//! its hang time, as for any transmission.
//!
//! Contract:
//!
//! * An alert outranks any patch: while a port announces, what the patch bus would
//!   transmit on it is dropped ([`Announcements::is_announcing`]), so the talkgroup hears
//!   the alert whole.
//! * One announcement per port: a second alert for a busy port replaces the first (the
//!   playout starts a higher alert only by pre-empting the lower one), and
//!   [`Announcements::end`] stops every announcement of an alert that was cancelled,
//!   pre-empted or expired.
//! * Frames are due at fixed 20 ms steps from the start; a late poll sends every frame
//!   that has come due, so the port's transmit buffer absorbs the lateness.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use drivers::radio::ptt::FRAME;

use super::MemberId;

/// Samples in one frame ([`FRAME`] at 48 kHz).
pub const FRAME_SAMPLES: usize = 960;

/// An alert being spoken on one port.
#[derive(Debug)]
struct Announcement {
    alert: i64,
    samples: Arc<Vec<i16>>,
    /// The first sample not yet sent.
    next: usize,
    /// When the frame starting at `next` is due.
    due: Instant,
}

/// What happened to an announcement, for the journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnnounceEvent {
    Started {
        port: MemberId,
        alert: i64,
        seconds: u64,
    },
    /// Another alert took the port before this one ended.
    Replaced {
        port: MemberId,
        alert: i64,
    },
    Finished {
        port: MemberId,
        alert: i64,
    },
    Stopped {
        port: MemberId,
        alert: i64,
    },
}

/// The announcements on the node's radio ports.
#[derive(Debug, Default)]
pub struct Announcements {
    by_port: BTreeMap<MemberId, Announcement>,
}

impl Announcements {
    /// Speaks `samples` of `alert` on `port` from `now`.
    pub fn start(
        &mut self,
        port: MemberId,
        alert: i64,
        samples: Arc<Vec<i16>>,
        now: Instant,
    ) -> Vec<AnnounceEvent> {
        let mut events = Vec::new();
        let seconds = (samples.len() / 48_000) as u64;
        let old = self.by_port.insert(
            port.clone(),
            Announcement {
                alert,
                samples,
                next: 0,
                due: now,
            },
        );
        if let Some(old) = old {
            events.push(AnnounceEvent::Replaced {
                port: port.clone(),
                alert: old.alert,
            });
        }
        events.push(AnnounceEvent::Started {
            port,
            alert,
            seconds,
        });
        events
    }

    /// Stops every announcement of `alert`.
    pub fn end(&mut self, alert: i64) -> Vec<AnnounceEvent> {
        let ports: Vec<MemberId> = self
            .by_port
            .iter()
            .filter(|(_, a)| a.alert == alert)
            .map(|(p, _)| p.clone())
            .collect();
        ports
            .into_iter()
            .map(|port| {
                self.by_port.remove(&port);
                AnnounceEvent::Stopped { port, alert }
            })
            .collect()
    }

    pub fn is_announcing(&self, port: &MemberId) -> bool {
        self.by_port.contains_key(port)
    }

    /// When the next frame is due.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.by_port.values().map(|a| a.due).min()
    }

    /// Every frame due by `now`, in order per port, and the announcements that ended.
    pub fn poll(&mut self, now: Instant) -> (Vec<(MemberId, Vec<i16>)>, Vec<AnnounceEvent>) {
        let mut frames = Vec::new();
        let mut events = Vec::new();
        for (port, a) in &mut self.by_port {
            while a.due <= now && a.next < a.samples.len() {
                let end = (a.next + FRAME_SAMPLES).min(a.samples.len());
                let mut frame = a.samples[a.next..end].to_vec();
                frame.resize(FRAME_SAMPLES, 0);
                frames.push((port.clone(), frame));
                a.next = end;
                a.due += FRAME;
            }
            if a.next >= a.samples.len() {
                events.push(AnnounceEvent::Finished {
                    port: port.clone(),
                    alert: a.alert,
                });
            }
        }
        self.by_port.retain(|_, a| a.next < a.samples.len());
        (frames, events)
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

    #[test]
    fn an_alert_goes_out_frame_by_frame_in_real_time_then_ends() {
        let t0 = Instant::now();
        let mut a = Announcements::default();
        a.start(port("tg-v"), 7, programme(3), t0);
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
        a.start(port("tg-1"), 7, programme(50), t0);
        a.start(port("tg-2"), 7, programme(50), t0);
        a.start(port("tg-3"), 8, programme(50), t0);
        let stopped = a.end(7);
        assert_eq!(stopped.len(), 2);
        assert!(!a.is_announcing(&port("tg-1")));
        assert!(a.is_announcing(&port("tg-3")));
        let (frames, _) = a.poll(t0);
        assert_eq!(frames.len(), 1);
        assert_eq!(frames[0].0, port("tg-3"));
    }

    #[test]
    fn a_second_alert_on_a_busy_port_replaces_the_first() {
        let t0 = Instant::now();
        let mut a = Announcements::default();
        a.start(port("tg-v"), 7, programme(50), t0);
        let events = a.start(port("tg-v"), 9, programme(2), t0 + FRAME);
        assert_eq!(
            events[0],
            AnnounceEvent::Replaced {
                port: port("tg-v"),
                alert: 7
            }
        );
        let (frames, _) = a.poll(t0 + FRAME);
        assert_eq!(frames.len(), 1);
        assert_eq!(frames[0].1[0], 1, "the new alert from its start");
    }
}
