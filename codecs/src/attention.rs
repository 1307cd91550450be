//! Attention signals: the sound played before an alert is spoken.
//!
//! Four signals besides [`AttentionSignal::None`]:
//!
//! - [`Chime`](AttentionSignal::Chime): three descending bell-like notes, two seconds in all,
//!   for alerts that must be heard but do not call for shelter.
//! - The three civil air-defence (人民防空) alarm signals of China, each a pattern of siren
//!   sound and silence lasting about three minutes:
//!
//!   | Signal                                       | Sound | Silence | Cycles |
//!   |----------------------------------------------|-------|---------|--------|
//!   | [`PreWarning`](AttentionSignal::PreWarning) 预先警报 | 36 s  | 24 s    | 3      |
//!   | [`AirRaid`](AttentionSignal::AirRaid) 空袭警报       | 6 s   | 6 s     | 15     |
//!   | [`AllClear`](AttentionSignal::AllClear) 解除警报     | 180 s | none    | 1      |
//!
//!   These are the defaults of [`AttentionSignal::default_timing`]; [`render`] takes any other
//!   [`SirenTiming`], for drills and for tests.
//!
//! # What [`render`] produces
//!
//! Mono `i16` samples at the requested rate, full scale 32768 as everywhere in this crate. A
//! siren signal lasts exactly `cycles × on + (cycles − 1) × off`, each period rounded to whole
//! samples on its own: the silence after the last sound period is **not** appended, because
//! what follows (speech, or the end of the broadcast) should not wait for it. Silence is
//! digital zero. Every sound period opens and closes with a 10 ms raised-cosine fade so that
//! the loudspeakers do not click; between the fades the siren is a sine at exactly the
//! requested peak, gliding from 450 Hz up to 700 Hz in the first second or so of each period
//! the way a motor siren spins up, then holding that pitch.
//!
//! The peak never exceeds `peak_dbfs`. Levels above 0 dBFS are taken as 0 dBFS, since an
//! `i16` cannot go higher.

use std::f64::consts::TAU;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::pcm;

/// The sound played before an alert's message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AttentionSignal {
    /// Nothing: the message starts at once.
    None,
    /// A short three-note chime.
    Chime,
    /// The air-defence pre-warning (预先警报): 36 s of siren, 24 s of silence, three times.
    PreWarning,
    /// The air-raid warning (空袭警报): 6 s of siren, 6 s of silence, fifteen times.
    AirRaid,
    /// The all-clear (解除警报): three minutes of continuous siren.
    AllClear,
}

impl AttentionSignal {
    /// Every signal, in the order of their names in [`AttentionSignal::NAMES`].
    pub const ALL: [AttentionSignal; 5] = [
        AttentionSignal::None,
        AttentionSignal::Chime,
        AttentionSignal::PreWarning,
        AttentionSignal::AirRaid,
        AttentionSignal::AllClear,
    ];

    /// The names [`FromStr`] accepts and [`fmt::Display`] writes, as they appear in
    /// configuration files and forms.
    pub const NAMES: [&'static str; 5] = ["none", "chime", "pre-warning", "air-raid", "all-clear"];

    /// The signal's name, as in configuration files: `"air-raid"`.
    pub fn name(self) -> &'static str {
        match self {
            AttentionSignal::None => "none",
            AttentionSignal::Chime => "chime",
            AttentionSignal::PreWarning => "pre-warning",
            AttentionSignal::AirRaid => "air-raid",
            AttentionSignal::AllClear => "all-clear",
        }
    }

    /// The cadence the civil air-defence signals prescribe, or `None` for a signal that is
    /// not a siren ([`None`](AttentionSignal::None), [`Chime`](AttentionSignal::Chime)).
    pub fn default_timing(self) -> Option<SirenTiming> {
        let seconds = Duration::from_secs;
        match self {
            AttentionSignal::None | AttentionSignal::Chime => None,
            AttentionSignal::PreWarning => Some(SirenTiming {
                on: seconds(36),
                off: seconds(24),
                cycles: 3,
            }),
            AttentionSignal::AirRaid => Some(SirenTiming {
                on: seconds(6),
                off: seconds(6),
                cycles: 15,
            }),
            AttentionSignal::AllClear => Some(SirenTiming {
                on: seconds(180),
                off: Duration::ZERO,
                cycles: 1,
            }),
        }
    }

    /// Whether the signal is one of the air-defence sirens.
    pub fn is_siren(self) -> bool {
        self.default_timing().is_some()
    }
}

impl fmt::Display for AttentionSignal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for AttentionSignal {
    type Err = UnknownAttentionSignal;

    /// Parses a name of [`AttentionSignal::NAMES`], exactly (lower case, with hyphens).
    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|signal| signal.name() == name)
            .ok_or_else(|| UnknownAttentionSignal {
                name: name.to_owned(),
            })
    }
}

/// A name that is not one of [`AttentionSignal::NAMES`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown attention signal {name:?}; expected one of none, chime, pre-warning, air-raid, \
     all-clear"
)]
pub struct UnknownAttentionSignal {
    /// The name that was given.
    pub name: String,
}

/// The cadence of a siren signal: `cycles` periods of sound, separated by silence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SirenTiming {
    /// How long each period of sound lasts.
    pub on: Duration,
    /// How long the silence between two periods of sound lasts.
    pub off: Duration,
    /// How many periods of sound there are.
    pub cycles: u32,
}

impl SirenTiming {
    /// How long the whole signal lasts: the silence after the last period is not counted,
    /// as [`render`] does not produce it.
    pub fn total(&self) -> Duration {
        match self.cycles {
            0 => Duration::ZERO,
            n => self.on * n + self.off * (n - 1),
        }
    }
}

/// Renders `signal` as mono `i16` samples at `sample_rate` Hz, with a peak of `peak_dbfs`.
///
/// `timing` replaces the signal's [default cadence](AttentionSignal::default_timing); it is
/// ignored for [`None`](AttentionSignal::None) (no samples) and
/// [`Chime`](AttentionSignal::Chime) (always [`CHIME_LENGTH`]). A sample rate of zero gives
/// no samples.
pub fn render(
    signal: AttentionSignal,
    timing: Option<SirenTiming>,
    sample_rate: u32,
    peak_dbfs: f32,
) -> Vec<i16> {
    if sample_rate == 0 {
        return Vec::new();
    }

    // `min` also turns NaN into 0 dBFS.
    let amplitude = 10f64.powf(f64::from(peak_dbfs.min(0.0)) / 20.0);
    let shape = match signal {
        AttentionSignal::None => Vec::new(),
        AttentionSignal::Chime => chime(sample_rate),
        AttentionSignal::PreWarning | AttentionSignal::AirRaid | AttentionSignal::AllClear => {
            match timing.or(signal.default_timing()) {
                Some(timing) => siren(timing, sample_rate),
                None => Vec::new(),
            }
        }
    };

    shape
        .into_iter()
        .map(|s| pcm::f32_to_i16((s * amplitude) as f32))
        .collect()
}

/// How long the chime lasts.
pub const CHIME_LENGTH: Duration = Duration::from_secs(2);

/// Length of the fade at each edge of a period of siren sound and at the end of the chime.
const FADE: Duration = Duration::from_millis(10);

/// Pitch at which a siren period starts, in Hz.
const SIREN_START_HZ: f64 = 450.0;

/// Pitch the siren settles at, in Hz.
const SIREN_STEADY_HZ: f64 = 700.0;

/// Time constant of the siren's exponential rise in pitch: within 5 % of the steady pitch
/// after about 1.2 s.
const SIREN_RISE_SECONDS: f64 = 0.4;

/// The chime's notes, a descending G major triad (G5, E5, C5): frequency in Hz and start in
/// seconds.
const CHIME_NOTES: [(f64, f64); 3] = [(783.99, 0.0), (659.26, 0.45), (523.25, 0.9)];

/// Time constant of each chime note's exponential decay, in seconds.
const CHIME_DECAY_SECONDS: f64 = 0.45;

/// Rise time of a chime note, short enough to sound struck, long enough not to click.
const CHIME_ATTACK_SECONDS: f64 = 0.005;

/// Relative level of the second partial, which gives the chime notes a bell-like colour.
const CHIME_OVERTONE: f64 = 0.3;

/// Samples in `duration` at `sample_rate`, rounded to nearest.
fn samples_in(duration: Duration, sample_rate: u32) -> usize {
    (duration.as_secs_f64() * f64::from(sample_rate)).round() as usize
}

/// The siren signal at a peak of 1.0.
fn siren(timing: SirenTiming, sample_rate: u32) -> Vec<f64> {
    let on_len = samples_in(timing.on, sample_rate);
    let off_len = samples_in(timing.off, sample_rate);
    let fade_len = samples_in(FADE, sample_rate).min(on_len / 2);
    let cycles = timing.cycles as usize;

    let mut out = Vec::with_capacity((on_len + off_len) * cycles);
    for cycle in 0..cycles {
        if cycle > 0 {
            out.resize(out.len() + off_len, 0.0);
        }
        out.extend((0..on_len).map(|n| {
            let t = n as f64 / f64::from(sample_rate);
            siren_phase(t).sin() * edge_gain(n, on_len, fade_len)
        }));
    }
    out
}

/// Phase of the siren `t` seconds into a period of sound, in radians.
///
/// The pitch is `f(t) = steady − (steady − start)·e^(−t/τ)`; the phase is its integral,
/// written out so that it is computed per sample and never accumulates rounding error.
fn siren_phase(t: f64) -> f64 {
    let rise = SIREN_STEADY_HZ - SIREN_START_HZ;
    let tau = SIREN_RISE_SECONDS;
    TAU * (SIREN_STEADY_HZ * t - rise * tau * (1.0 - (-t / tau).exp()))
}

/// Gain of sample `n` of a period of `len` samples faded in and out over `fade_len` samples
/// with a raised cosine.
fn edge_gain(n: usize, len: usize, fade_len: usize) -> f64 {
    let from_edge = n.min(len - 1 - n);
    if from_edge >= fade_len {
        return 1.0;
    }
    let x = (from_edge as f64 + 0.5) / fade_len as f64;
    0.5 - 0.5 * (std::f64::consts::PI * x).cos()
}

/// The chime, normalised to a peak of 1.0.
fn chime(sample_rate: u32) -> Vec<f64> {
    let len = samples_in(CHIME_LENGTH, sample_rate);
    let fade_len = samples_in(FADE, sample_rate);
    let rate = f64::from(sample_rate);

    let mut out: Vec<f64> = (0..len)
        .map(|n| {
            let t = n as f64 / rate;
            CHIME_NOTES
                .iter()
                .map(|&(hz, start)| chime_note(hz, t - start))
                .sum()
        })
        .collect();

    // The last note is still ringing faintly at the end: fade it out rather than cut it.
    for (n, sample) in out
        .iter_mut()
        .enumerate()
        .skip(len.saturating_sub(fade_len))
    {
        *sample *= edge_gain(n, len, fade_len);
    }

    let peak = out.iter().fold(0.0f64, |peak, s| peak.max(s.abs()));
    if peak > 0.0 {
        out.iter_mut().for_each(|s| *s /= peak);
    }
    out
}

/// One struck note `t` seconds after it is struck (silent before).
fn chime_note(hz: f64, t: f64) -> f64 {
    if t < 0.0 {
        return 0.0;
    }
    let attack = (t / CHIME_ATTACK_SECONDS).min(1.0);
    let envelope = attack * (-t / CHIME_DECAY_SECONDS).exp();
    let phase = TAU * hz * t;
    envelope * (phase.sin() + CHIME_OVERTONE * (2.0 * phase).sin())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::level::Level;

    const RATE: u32 = 48_000;

    fn short(on_ms: u64, off_ms: u64, cycles: u32) -> Option<SirenTiming> {
        Some(SirenTiming {
            on: Duration::from_millis(on_ms),
            off: Duration::from_millis(off_ms),
            cycles,
        })
    }

    #[test]
    fn the_default_cadences_are_those_of_the_air_defence_signals() {
        let timing = |signal: AttentionSignal| signal.default_timing().map(|t| t.total());
        assert_eq!(
            timing(AttentionSignal::PreWarning),
            Some(Duration::from_secs(156))
        );
        assert_eq!(
            timing(AttentionSignal::AirRaid),
            Some(Duration::from_secs(174))
        );
        assert_eq!(
            timing(AttentionSignal::AllClear),
            Some(Duration::from_secs(180))
        );
        assert_eq!(timing(AttentionSignal::Chime), None);
        assert_eq!(timing(AttentionSignal::None), None);
    }

    #[test]
    fn a_siren_lasts_its_cycles_without_the_last_silence() {
        for signal in [AttentionSignal::PreWarning, AttentionSignal::AirRaid] {
            let samples = render(signal, short(100, 50, 3), RATE, -6.0);
            assert_eq!(samples.len(), 3 * 4_800 + 2 * 2_400, "{signal}");
        }
        let all_clear = render(AttentionSignal::AllClear, short(250, 0, 1), RATE, -6.0);
        assert_eq!(all_clear.len(), 12_000);
    }

    #[test]
    fn the_all_clear_renders_at_its_full_default_length() {
        let samples = render(AttentionSignal::AllClear, None, 8_000, -6.0);
        assert_eq!(samples.len(), 180 * 8_000);
    }

    #[test]
    fn the_chime_lasts_two_seconds_and_none_is_empty() {
        assert_eq!(
            render(AttentionSignal::Chime, None, RATE, -6.0).len(),
            96_000
        );
        assert_eq!(
            render(AttentionSignal::Chime, short(1, 1, 9), RATE, -6.0).len(),
            96_000
        );
        assert!(render(AttentionSignal::None, None, RATE, -6.0).is_empty());
    }

    #[test]
    fn siren_periods_sound_at_full_level_and_silences_are_digital_zero() {
        let samples = render(AttentionSignal::AirRaid, short(200, 100, 4), RATE, -10.0);
        let (on, off, fade) = (9_600, 4_800, 480);

        for cycle in 0..4 {
            let start = cycle * (on + off);
            let steady = &samples[start + fade..start + on - fade];
            let level = Level::of_i16(steady);
            assert!(
                (level.rms_dbfs - (-13.01)).abs() < 0.1,
                "cycle {cycle}: {level:?}"
            );

            if cycle < 3 {
                let silence = &samples[start + on..start + on + off];
                assert!(silence.iter().all(|&s| s == 0), "cycle {cycle}");
            }
        }
    }

    #[test]
    fn siren_periods_fade_in_and_out_without_a_click() {
        let samples = render(AttentionSignal::PreWarning, short(100, 100, 2), RATE, 0.0);
        let on = 4_800; // and the silence between is as long
        for edge in [0, on - 1, 2 * on, 3 * on - 1] {
            assert!(
                samples[edge].unsigned_abs() < 400,
                "sample {edge}: {}",
                samples[edge]
            );
        }
        let biggest_step = samples
            .windows(2)
            .map(|pair| (i32::from(pair[1]) - i32::from(pair[0])).abs())
            .max();
        // A 700 Hz sine at full scale moves at most 2π·700/48000 of full scale per sample.
        assert!(biggest_step < Some(3_100), "{biggest_step:?}");
    }

    #[test]
    fn the_siren_rises_in_pitch_then_holds_it() {
        let samples = render(AttentionSignal::AllClear, short(3_000, 0, 1), RATE, -6.0);
        let zero_crossings = |window: &[i16]| {
            window
                .windows(2)
                .filter(|pair| (pair[0] < 0) != (pair[1] < 0))
                .count()
        };
        // Two crossings per cycle over a tenth of a second: crossings × 5 is the pitch in Hz.
        let start_hz = zero_crossings(&samples[480..5_280]) * 5;
        let steady_hz = zero_crossings(&samples[120_000..124_800]) * 5;
        assert!((440..=560).contains(&start_hz), "{start_hz}");
        assert!((690..=710).contains(&steady_hz), "{steady_hz}");
    }

    #[test]
    fn the_peak_is_the_requested_level() {
        for signal in [
            AttentionSignal::Chime,
            AttentionSignal::PreWarning,
            AttentionSignal::AirRaid,
            AttentionSignal::AllClear,
        ] {
            for peak_dbfs in [-20.0f32, -6.0, 0.0] {
                let samples = render(signal, short(300, 100, 2), RATE, peak_dbfs);
                let peak = Level::of_i16(&samples).peak_dbfs;
                assert!(peak <= peak_dbfs + 0.001, "{signal} at {peak_dbfs}: {peak}");
                assert!(peak > peak_dbfs - 0.05, "{signal} at {peak_dbfs}: {peak}");
            }
        }
    }

    #[test]
    fn a_level_above_full_scale_is_held_at_full_scale() {
        let samples = render(AttentionSignal::Chime, None, RATE, 6.0);
        let peak = samples.iter().map(|s| s.unsigned_abs()).max();
        assert!(matches!(peak, Some(32_767..=32_768)), "{peak:?}");
    }

    #[test]
    fn names_parse_and_print_alike() {
        for (signal, name) in AttentionSignal::ALL.into_iter().zip(AttentionSignal::NAMES) {
            assert_eq!(signal.to_string(), name);
            assert_eq!(name.parse::<AttentionSignal>(), Ok(signal));
        }
        assert_eq!("air-raid".parse(), Ok(AttentionSignal::AirRaid));
    }

    #[test]
    fn an_unknown_name_is_refused_with_the_accepted_ones() {
        let error = "air_raid"
            .parse::<AttentionSignal>()
            .expect_err("underscore");
        assert_eq!(error.name, "air_raid");
        assert_eq!(
            error.to_string(),
            "unknown attention signal \"air_raid\"; expected one of none, chime, pre-warning, \
             air-raid, all-clear"
        );
    }

    #[test]
    fn zero_cycles_or_a_zero_sample_rate_give_no_samples() {
        assert!(render(AttentionSignal::AirRaid, short(100, 100, 0), RATE, -6.0).is_empty());
        assert!(render(AttentionSignal::Chime, None, 0, -6.0).is_empty());
    }
}
