//! The receive side of a radio port: whether the radio hears a carrier, and the audio
//! to pass on while it does. Sans-IO: the caller passes each 20 ms frame of receive
//! audio and each change of the COS line with their instants.
//!
//! * **COS** is the radio's carrier-operated squelch line (after inversion, `true` is
//!   "carrier present"). **VOX** detects a carrier from the audio itself: the level
//!   above a threshold for the attack time opens it, below for the hang time closes
//!   it. A port uses either or both; with both, the carrier needs both, which keeps a
//!   noise burst on an open squelch from keying a patch.
//! * A carrier must stay present for `min_open` before it counts: a squelch blip
//!   shorter than that is ignored.
//! * Receive audio runs `delay` behind the decision, so the frames heard while the
//!   carrier was being confirmed go out first when it opens: the first syllable
//!   survives. When the carrier drops, the audio still in the delay line is the
//!   squelch tail, and is discarded.
//!
//! Every frame produces at most one [`RxEvent`] besides the audio: the open before
//! the first frame of a transmission, the close after its last.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use codecs::level::Level;

use super::ptt::{FRAME, Frame};

/// Which signals say the radio hears a carrier.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum CarrierSource {
    /// The COS line alone.
    Cos,
    /// The receive audio alone.
    Vox(VoxSettings),
    /// Both: COS present and VOX open.
    CosAndVox(VoxSettings),
}

/// Voice-operated detection from the receive audio.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VoxSettings {
    /// RMS level that counts as signal, in dBFS.
    pub threshold_dbfs: f32,
    /// Signal for this long opens VOX.
    pub attack: Duration,
    /// No signal for this long closes it.
    pub hang: Duration,
}

impl Default for VoxSettings {
    fn default() -> Self {
        VoxSettings {
            threshold_dbfs: -40.0,
            attack: Duration::from_millis(40),
            hang: Duration::from_millis(600),
        }
    }
}

/// Settings of the receive side.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RxSettings {
    pub source: CarrierSource,
    /// A carrier shorter than this is a blip, not a transmission.
    pub min_open: Duration,
    /// How far the audio runs behind the carrier decision.
    pub delay: Duration,
}

impl Default for RxSettings {
    fn default() -> Self {
        RxSettings {
            source: CarrierSource::Cos,
            min_open: Duration::from_millis(60),
            delay: Duration::from_millis(80),
        }
    }
}

/// What the receive side tells the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RxEvent {
    /// A transmission began.
    Open,
    /// A frame of it.
    Audio(Frame),
    /// It ended.
    Close,
}

#[derive(Debug, Clone, Copy, Default)]
struct Vox {
    open: bool,
    /// Since when the level has been on the side that would change `open`.
    changing_since: Option<Instant>,
}

impl Vox {
    fn on_frame(&mut self, settings: &VoxSettings, level_dbfs: f32, now: Instant) -> bool {
        let signal = level_dbfs >= settings.threshold_dbfs;
        if signal == self.open {
            self.changing_since = None;
            return self.open;
        }
        let since = *self.changing_since.get_or_insert(now);
        let needed = if signal {
            settings.attack
        } else {
            settings.hang
        };
        // The frame that crosses the threshold counts for its 20 ms.
        if now + FRAME >= since + needed {
            self.open = signal;
            self.changing_since = None;
        }
        self.open
    }
}

/// Counts for the operator.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RxCounters {
    pub transmissions: u64,
    /// Carriers shorter than `min_open`.
    pub blips: u64,
    pub frames_passed: u64,
    /// Frames of squelch tail discarded at a close.
    pub tail_frames_dropped: u64,
}

/// The receive side of one radio port; see the [module](self) contract.
#[derive(Debug)]
pub struct CarrierDetector {
    settings: RxSettings,
    cos: bool,
    vox: Vox,
    /// Since when the raw carrier (COS and/or VOX) has been present.
    present_since: Option<Instant>,
    open: bool,
    delay_line: VecDeque<Frame>,
    counters: RxCounters,
}

impl CarrierDetector {
    pub fn new(settings: RxSettings) -> CarrierDetector {
        CarrierDetector {
            settings,
            cos: false,
            vox: Vox::default(),
            present_since: None,
            open: false,
            delay_line: VecDeque::new(),
            counters: RxCounters::default(),
        }
    }

    /// Whether a transmission is being passed on.
    pub fn is_open(&self) -> bool {
        self.open
    }

    pub fn counters(&self) -> RxCounters {
        self.counters
    }

    /// The COS line changed (after inversion: `true` is carrier present).
    pub fn on_cos(&mut self, present: bool) {
        self.cos = present;
    }

    /// One 20 ms frame of receive audio, captured at `now`.
    pub fn on_frame(&mut self, frame: Frame, now: Instant, out: &mut Vec<RxEvent>) {
        let vox = match self.settings.source {
            CarrierSource::Cos => true,
            CarrierSource::Vox(v) | CarrierSource::CosAndVox(v) => {
                self.vox.on_frame(&v, Level::of_i16(&frame).rms_dbfs, now)
            }
        };
        let cos = match self.settings.source {
            CarrierSource::Vox(_) => true,
            CarrierSource::Cos | CarrierSource::CosAndVox(_) => self.cos,
        };
        let present = cos && vox;

        let depth = (self.settings.delay.as_millis() / FRAME.as_millis()) as usize;
        self.delay_line.push_back(frame);

        if present {
            let since = *self.present_since.get_or_insert(now);
            if !self.open && now + FRAME >= since + self.settings.min_open {
                self.open = true;
                self.counters.transmissions += 1;
                out.push(RxEvent::Open);
            }
        } else {
            if self.present_since.take().is_some() && !self.open {
                self.counters.blips += 1;
            }
            if self.open {
                self.open = false;
                // What is still in the delay line is the squelch tail.
                self.counters.tail_frames_dropped += self.delay_line.len() as u64;
                self.delay_line.clear();
                out.push(RxEvent::Close);
                return;
            }
        }

        while self.delay_line.len() > depth {
            let Some(frame) = self.delay_line.pop_front() else {
                break;
            };
            if self.open {
                self.counters.frames_passed += 1;
                out.push(RxEvent::Audio(frame));
            }
        }
    }

    /// Ends a transmission at once (the audio device is lost, the port is stopping).
    pub fn reset(&mut self, out: &mut Vec<RxEvent>) {
        self.delay_line.clear();
        self.present_since = None;
        self.vox = Vox::default();
        if self.open {
            self.open = false;
            out.push(RxEvent::Close);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn loud(tag: i16) -> Frame {
        // A square wave at about -6 dBFS whose first sample carries the tag.
        let mut f: Frame = (0..960)
            .map(|n| if n % 20 < 10 { 16_000 } else { -16_000 })
            .collect();
        f[0] = tag;
        f
    }

    fn quiet(tag: i16) -> Frame {
        let mut f = vec![0; 960];
        f[0] = tag;
        f
    }

    fn tags(events: &[RxEvent]) -> Vec<String> {
        events
            .iter()
            .map(|e| match e {
                RxEvent::Open => "open".into(),
                RxEvent::Close => "close".into(),
                RxEvent::Audio(f) => f[0].to_string(),
            })
            .collect()
    }

    /// Runs frames 0..n at 20 ms, with COS present for the frame numbers in `cos`.
    fn run(
        detector: &mut CarrierDetector,
        n: i16,
        cos: impl Fn(i16) -> bool,
        frame: impl Fn(i16) -> Frame,
    ) -> Vec<RxEvent> {
        let t0 = Instant::now();
        let mut out = Vec::new();
        for k in 0..n {
            detector.on_cos(cos(k));
            detector.on_frame(frame(k), t0 + FRAME * k as u32, &mut out);
        }
        out
    }

    #[test]
    fn the_first_syllable_survives_the_cos_decision_and_the_squelch_tail_is_cut() {
        let mut detector = CarrierDetector::new(RxSettings {
            source: CarrierSource::Cos,
            min_open: 60 * MS,
            delay: 80 * MS,
        });
        // COS from frame 10 to frame 19 inclusive.
        let out = run(&mut detector, 30, |k| (10..20).contains(&k), quiet);
        // Open after 60 ms (frame 12), then the audio from 80 ms behind it: frame 8 on,
        // two frames before COS rose; at the close (frame 20) frames 16..20 are still in
        // the delay line: the tail.
        let expected: Vec<String> = ["open"]
            .into_iter()
            .map(String::from)
            .chain((8..=15).map(|k: i16| k.to_string()))
            .chain(["close".to_string()])
            .collect();
        assert_eq!(tags(&out), expected);
        assert_eq!(detector.counters().tail_frames_dropped, 5);
        assert_eq!(detector.counters().transmissions, 1);
    }

    #[test]
    fn a_squelch_blip_before_a_real_transmission_is_ignored_and_the_transmission_is_whole() {
        let mut detector = CarrierDetector::new(RxSettings {
            source: CarrierSource::Cos,
            min_open: 60 * MS,
            delay: 80 * MS,
        });
        // A 40 ms blip at frames 3-4, then the transmission from frame 8 to 40.
        let out = run(
            &mut detector,
            50,
            |k| (3..5).contains(&k) || (8..41).contains(&k),
            quiet,
        );
        assert_eq!(detector.counters().blips, 1);
        assert_eq!(detector.counters().transmissions, 1);
        let t = tags(&out);
        assert_eq!(t[0], "open");
        assert_eq!(
            t[1], "6",
            "from two frames before COS rose, as the delay allows"
        );
        assert_eq!(t.iter().filter(|s| *s == "open").count(), 1);
    }

    #[test]
    fn vox_opens_on_speech_after_the_attack_and_closes_after_the_hang() {
        let vox = VoxSettings {
            threshold_dbfs: -30.0,
            attack: 40 * MS,
            hang: 100 * MS,
        };
        let mut detector = CarrierDetector::new(RxSettings {
            source: CarrierSource::Vox(vox),
            min_open: Duration::ZERO,
            delay: 40 * MS,
        });
        // Speech from frame 5 to 14, silence after.
        let out = run(
            &mut detector,
            30,
            |_| false,
            |k| {
                if (5..15).contains(&k) {
                    loud(k)
                } else {
                    quiet(k)
                }
            },
        );
        let t = tags(&out);
        assert_eq!(t[0], "open", "{t:?}");
        assert_eq!(
            t[1], "4",
            "the delay line gives back the frame before the attack"
        );
        assert!(
            t.contains(&"14".to_string()),
            "the last word passes during the hang"
        );
        assert_eq!(t.last().map(String::as_str), Some("close"));
        // No COS needed: the line was never present.
        assert_eq!(detector.counters().transmissions, 1);
    }

    #[test]
    fn cos_and_vox_together_need_both() {
        let vox = VoxSettings {
            threshold_dbfs: -30.0,
            attack: 20 * MS,
            hang: 60 * MS,
        };
        let mut detector = CarrierDetector::new(RxSettings {
            source: CarrierSource::CosAndVox(vox),
            min_open: Duration::ZERO,
            delay: Duration::ZERO,
        });
        // COS stuck present on noise-free silence: no carrier.
        let out = run(&mut detector, 20, |_| true, quiet);
        assert!(out.is_empty(), "{:?}", tags(&out));
        // Speech without COS: no carrier either.
        let out = run(&mut detector, 20, |_| false, loud);
        assert!(out.is_empty());
        let out = run(&mut detector, 5, |_| true, loud);
        assert_eq!(tags(&out)[0], "open");
    }

    #[test]
    fn reset_closes_an_open_transmission() {
        let mut detector = CarrierDetector::new(RxSettings::default());
        let mut out = run(&mut detector, 10, |_| true, quiet);
        assert!(detector.is_open());
        detector.reset(&mut out);
        assert_eq!(out.last(), Some(&RxEvent::Close));
        assert!(!detector.is_open());
    }
}
