//! The transmit side of a radio port: when to key PTT, when to play audio, when to let
//! go. Sans-IO: the caller passes frames and `now`, and carries out [`PttAction`]s.
//!
//! The rules, in the order an over meets them:
//!
//! 1. The first frame of an over keys PTT and starts the *TX lead*: on a trunked
//!    system the radio needs 300–500 ms to be granted a channel, and audio played
//!    before the grant is lost. Frames that arrive meanwhile are held, not dropped,
//!    and played in order once the lead has passed, paced one every 20 ms.
//! 2. When the held audio runs out, PTT *hangs* for the hang time: a new frame within
//!    it is played at once, without a new lead, so the gaps between a talker's phrases
//!    do not cost a channel grant each.
//! 3. The *time-out timer* bounds every transmission: keyed for longer than the
//!    timeout, PTT is released and the port refuses audio until its source has been
//!    quiet for the reset time. The radio's own time-out timer stays the last backstop.
//! 4. [`PttKeyer::release`] lets go at once, whatever the state: for shutdown, and for
//!    a lost audio or serial device.
//!
//! After any sequence of calls, PTT is keyed only between a [`PttAction::Key`] and the
//! next [`PttAction::Unkey`]; every path out of a transmission emits exactly one
//! `Unkey`.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// One frame of audio: 20 ms at 48 kHz, mono.
pub type Frame = Vec<i16>;

/// The duration of one frame.
pub const FRAME: Duration = Duration::from_millis(20);

/// Timing of the transmit side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PttTiming {
    /// From keying PTT to the first audio: the trunked system's channel grant.
    pub lead: Duration,
    /// How long PTT stays keyed after the audio runs out.
    pub hang: Duration,
    /// The longest PTT may stay keyed in one transmission.
    pub timeout: Duration,
    /// After a time-out, how long the source must be quiet before the port transmits
    /// again.
    pub timeout_reset: Duration,
    /// The most audio held while keyed; older frames are dropped past it, so a source
    /// that runs faster than the radio cannot grow the delay without bound.
    pub max_held: Duration,
}

impl Default for PttTiming {
    fn default() -> Self {
        PttTiming {
            lead: Duration::from_millis(400),
            hang: Duration::from_millis(500),
            timeout: Duration::from_secs(180),
            timeout_reset: Duration::from_secs(1),
            max_held: Duration::from_secs(2),
        }
    }
}

/// Why PTT was released.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnkeyReason {
    /// The audio ran out and the hang time passed.
    Finished,
    /// The time-out timer expired.
    TimedOut,
    /// The caller released it (shutdown, a lost device).
    Released,
}

impl std::fmt::Display for UnkeyReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            UnkeyReason::Finished => "finished",
            UnkeyReason::TimedOut => "time-out timer",
            UnkeyReason::Released => "released",
        })
    }
}

/// What the caller must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PttAction {
    /// Key the transmitter.
    Key,
    /// Play this frame now.
    Play(Frame),
    /// Release the transmitter; `keyed_for` is how long it was keyed.
    Unkey {
        reason: UnkeyReason,
        keyed_for: Duration,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Idle,
    /// Keyed at `since`; audio from `play_at` on.
    Keyed {
        since: Instant,
        play_at: Instant,
    },
    /// Keyed at `since`; the audio ran out and PTT drops at `until`.
    Hang {
        since: Instant,
        until: Instant,
    },
    /// Timed out; audio is refused until the source has been quiet until `until`.
    TimedOut {
        until: Instant,
    },
}

/// Counts for the operator.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PttCounters {
    pub overs: u64,
    pub frames_played: u64,
    /// Frames dropped because more than `max_held` was waiting.
    pub frames_overflowed: u64,
    /// Frames refused after a time-out.
    pub frames_refused: u64,
    pub timeouts: u64,
}

/// The transmit side of one radio port; see the [module](self) rules.
#[derive(Debug)]
pub struct PttKeyer {
    timing: PttTiming,
    state: State,
    held: VecDeque<Frame>,
    counters: PttCounters,
}

impl PttKeyer {
    pub fn new(timing: PttTiming) -> PttKeyer {
        PttKeyer {
            timing,
            state: State::Idle,
            held: VecDeque::new(),
            counters: PttCounters::default(),
        }
    }

    pub fn timing(&self) -> PttTiming {
        self.timing
    }

    /// Whether the transmitter is keyed.
    pub fn is_keyed(&self) -> bool {
        matches!(self.state, State::Keyed { .. } | State::Hang { .. })
    }

    /// Whether the port is refusing audio after a time-out.
    pub fn is_timed_out(&self) -> bool {
        matches!(self.state, State::TimedOut { .. })
    }

    pub fn counters(&self) -> PttCounters {
        self.counters
    }

    /// A frame to transmit. Call [`PttKeyer::poll`] afterwards.
    pub fn push(&mut self, frame: Frame, now: Instant, out: &mut Vec<PttAction>) {
        match self.state {
            State::TimedOut { .. } => {
                // The source is still talking: the reset waits for it to stop.
                self.state = State::TimedOut {
                    until: now + self.timing.timeout_reset,
                };
                self.counters.frames_refused += 1;
                return;
            }
            State::Idle => {
                self.state = State::Keyed {
                    since: now,
                    play_at: now + self.timing.lead,
                };
                self.counters.overs += 1;
                out.push(PttAction::Key);
            }
            State::Hang { since, .. } => {
                self.state = State::Keyed {
                    since,
                    play_at: now,
                };
            }
            State::Keyed { .. } => {}
        }
        self.held.push_back(frame);
        let limit = (self.timing.max_held.as_millis() / FRAME.as_millis()).max(1) as usize;
        while self.held.len() > limit {
            self.held.pop_front();
            self.counters.frames_overflowed += 1;
        }
        self.poll(now, out);
    }

    /// Plays what is due and applies the timers.
    pub fn poll(&mut self, now: Instant, out: &mut Vec<PttAction>) {
        if let Some(since) = self.keyed_since()
            && now >= since + self.timing.timeout
        {
            self.held.clear();
            self.counters.timeouts += 1;
            self.state = State::TimedOut {
                until: now + self.timing.timeout_reset,
            };
            out.push(PttAction::Unkey {
                reason: UnkeyReason::TimedOut,
                keyed_for: now - since,
            });
            return;
        }
        match self.state {
            State::Idle => {}
            State::TimedOut { until } => {
                if now >= until {
                    self.state = State::Idle;
                }
            }
            State::Keyed { since, mut play_at } => {
                while play_at <= now {
                    let Some(frame) = self.held.pop_front() else {
                        // Out of audio: the hang runs from the end of the last frame.
                        self.state = State::Hang {
                            since,
                            until: play_at.max(now) + self.timing.hang,
                        };
                        return self.poll(now, out);
                    };
                    self.counters.frames_played += 1;
                    out.push(PttAction::Play(frame));
                    play_at += FRAME;
                }
                self.state = State::Keyed { since, play_at };
            }
            State::Hang { since, until } => {
                if now >= until {
                    self.state = State::Idle;
                    out.push(PttAction::Unkey {
                        reason: UnkeyReason::Finished,
                        keyed_for: now - since,
                    });
                }
            }
        }
    }

    /// Releases PTT at once and drops held audio; a no-op when not keyed.
    pub fn release(&mut self, now: Instant, out: &mut Vec<PttAction>) {
        self.held.clear();
        if let Some(since) = self.keyed_since() {
            self.state = State::Idle;
            out.push(PttAction::Unkey {
                reason: UnkeyReason::Released,
                keyed_for: now - since,
            });
        }
    }

    /// When [`PttKeyer::poll`] next has something to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        let timeout = self.keyed_since().map(|since| since + self.timing.timeout);
        let step = match self.state {
            State::Idle => None,
            State::Keyed { play_at, .. } => Some(play_at),
            State::Hang { until, .. } | State::TimedOut { until } => Some(until),
        };
        [timeout, step].into_iter().flatten().min()
    }

    fn keyed_since(&self) -> Option<Instant> {
        match self.state {
            State::Keyed { since, .. } | State::Hang { since, .. } => Some(since),
            State::Idle | State::TimedOut { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn timing() -> PttTiming {
        PttTiming {
            lead: 400 * MS,
            hang: 500 * MS,
            timeout: Duration::from_secs(10),
            timeout_reset: Duration::from_secs(1),
            max_held: Duration::from_secs(2),
        }
    }

    fn frame(tag: i16) -> Frame {
        vec![tag; 960]
    }

    /// Feeds one frame every 20 ms for `frames` frames from `start`, polling at every
    /// deadline in between; returns the actions with their instants.
    fn talk(
        keyer: &mut PttKeyer,
        start: Instant,
        frames: u32,
        until: Instant,
    ) -> Vec<(Duration, PttAction)> {
        let mut log = Vec::new();
        let mut now = start;
        let mut next_frame = 0;
        while now <= until {
            let mut out = Vec::new();
            if next_frame < frames && now >= start + FRAME * next_frame {
                keyer.push(frame(next_frame as i16), now, &mut out);
                next_frame += 1;
            } else {
                keyer.poll(now, &mut out);
            }
            log.extend(out.into_iter().map(|a| (now - start, a)));
            let frame_due = (next_frame < frames).then(|| start + FRAME * next_frame);
            now = [keyer.next_deadline(), frame_due]
                .into_iter()
                .flatten()
                .min()
                .unwrap_or(until + MS)
                .max(now + Duration::from_micros(1));
        }
        log
    }

    #[test]
    fn audio_is_held_through_the_tx_lead_and_played_in_order_not_clipped() {
        let mut keyer = PttKeyer::new(timing());
        let t0 = Instant::now();
        let log = talk(&mut keyer, t0, 50, t0 + Duration::from_secs(3));

        assert_eq!(log[0], (Duration::ZERO, PttAction::Key));
        let plays: Vec<(Duration, i16)> = log
            .iter()
            .filter_map(|(at, a)| match a {
                PttAction::Play(f) => Some((*at, f[0])),
                _ => None,
            })
            .collect();
        assert_eq!(plays.len(), 50, "every frame of the over is played");
        assert_eq!(
            plays[0],
            (400 * MS, 0),
            "the first frame waits for the lead"
        );
        for (k, (at, tag)) in plays.iter().enumerate() {
            assert_eq!(*tag, k as i16);
            assert_eq!(*at, 400 * MS + FRAME * k as u32, "paced at 20 ms");
        }
        // The last frame plays at 1380 ms and ends at 1400 ms; PTT hangs 500 ms more.
        let (at, unkey) = log.last().expect("unkeyed");
        assert_eq!(*at, 1900 * MS);
        assert_eq!(
            *unkey,
            PttAction::Unkey {
                reason: UnkeyReason::Finished,
                keyed_for: 1900 * MS
            }
        );
        assert!(!keyer.is_keyed());
    }

    #[test]
    fn a_phrase_within_the_hang_time_plays_at_once_without_a_second_lead() {
        let mut keyer = PttKeyer::new(timing());
        let t0 = Instant::now();
        let mut log = talk(&mut keyer, t0, 10, t0 + 700 * MS);
        assert!(keyer.is_keyed(), "hanging after the first phrase");
        let second = t0 + 700 * MS;
        let mut out = Vec::new();
        keyer.push(frame(99), second, &mut out);
        assert_eq!(out, vec![PttAction::Play(frame(99))]);
        log.extend(talk(
            &mut keyer,
            second + FRAME,
            0,
            second + Duration::from_secs(2),
        ));
        let keys = log.iter().filter(|(_, a)| *a == PttAction::Key).count();
        assert_eq!(keys, 1, "one key for both phrases");
    }

    #[test]
    fn the_time_out_timer_releases_ptt_and_resets_once_the_source_is_quiet() {
        let mut keyer = PttKeyer::new(PttTiming {
            timeout: Duration::from_secs(2),
            ..timing()
        });
        let t0 = Instant::now();
        // A source that talks for 3 s: PTT drops at 2 s.
        let log = talk(&mut keyer, t0, 150, t0 + 3000 * MS);
        let unkeys: Vec<_> = log
            .iter()
            .filter(|(_, a)| matches!(a, PttAction::Unkey { .. }))
            .collect();
        assert_eq!(
            unkeys,
            vec![&(
                2000 * MS,
                PttAction::Unkey {
                    reason: UnkeyReason::TimedOut,
                    keyed_for: 2000 * MS
                }
            )]
        );
        assert!(keyer.is_timed_out());
        assert!(keyer.counters().frames_refused > 40);

        // Still refusing 0.9 s after the source stopped (it sent its last frame at
        // 2980 ms), transmitting again after 1 s of quiet.
        let mut out = Vec::new();
        keyer.poll(t0 + 3900 * MS, &mut out);
        assert!(keyer.is_timed_out());
        keyer.poll(t0 + 3980 * MS, &mut out);
        assert!(!keyer.is_timed_out());
        keyer.push(frame(1), t0 + 4000 * MS, &mut out);
        assert_eq!(out, vec![PttAction::Key]);
    }

    #[test]
    fn release_unkeys_at_once_from_the_lead_and_from_the_hang() {
        let t0 = Instant::now();
        let mut keyer = PttKeyer::new(timing());
        let mut out = Vec::new();
        keyer.push(frame(0), t0, &mut out);
        keyer.release(t0 + 100 * MS, &mut out);
        assert_eq!(
            out,
            vec![
                PttAction::Key,
                PttAction::Unkey {
                    reason: UnkeyReason::Released,
                    keyed_for: 100 * MS
                }
            ]
        );
        assert!(!keyer.is_keyed());
        assert_eq!(keyer.next_deadline(), None, "nothing left to play");

        let mut out = Vec::new();
        talk(&mut keyer, t0 + Duration::from_secs(1), 1, t0 + 1500 * MS);
        assert!(keyer.is_keyed(), "hanging");
        keyer.release(t0 + 1500 * MS, &mut out);
        assert!(matches!(out[..], [PttAction::Unkey { .. }]));
        keyer.release(t0 + 1600 * MS, &mut out);
        assert_eq!(out.len(), 1, "a second release is a no-op");
    }

    #[test]
    fn a_source_faster_than_the_radio_cannot_grow_the_delay_past_the_limit() {
        let mut keyer = PttKeyer::new(PttTiming {
            max_held: 200 * MS,
            ..timing()
        });
        let t0 = Instant::now();
        let mut out = Vec::new();
        for k in 0..30 {
            keyer.push(frame(k), t0, &mut out);
        }
        assert_eq!(keyer.counters().frames_overflowed, 20);
        keyer.poll(t0 + 400 * MS, &mut out);
        assert_eq!(
            out.iter()
                .filter_map(|a| match a {
                    PttAction::Play(f) => Some(f[0]),
                    _ => None,
                })
                .collect::<Vec<_>>(),
            vec![20],
            "the newest 200 ms are kept; one frame is due at the end of the lead"
        );
    }
}
