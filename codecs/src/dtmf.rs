//! DTMF (ITU-T Q.23 frequencies, Q.24 reception) decoding from 48 kHz audio.
//!
//! A digit is one tone of the low group (697, 770, 852, 941 Hz) plus one of the high
//! group (1209, 1336, 1477, 1633 Hz). Each 20 ms block of audio is measured at the
//! eight frequencies with the Goertzel algorithm (a single DFT bin at an exact
//! frequency). A block holds a digit when:
//!
//! * the strongest tone of each group is above [`MIN_TONE_DBFS`];
//! * it is at least [`GROUP_MARGIN_DB`] above the next strongest of its group;
//! * the two tones are within the twist Q.24 allows: the high tone at most 8 dB
//!   weaker ("normal twist") and at most 4 dB stronger ("reverse twist");
//! * together they carry most of the block's energy, which speech does not.
//!
//! A digit is reported once, when two blocks in a row hold it; it is reported again
//! only after a block without it. A tone of 40 ms or more (the least Q.24 requires to
//! be recognised) always fills two blocks; a shorter one is taken only when it
//! straddles two blocks strongly enough for both. The decoder keeps up to one partial block between calls, so audio can come in
//! pieces of any length.

use std::f64::consts::TAU;

const SAMPLE_RATE: f64 = 48_000.0;
/// Samples in one analysis block: 20 ms, a frequency resolution of 50 Hz.
pub const BLOCK: usize = 960;

const LOW: [f64; 4] = [697.0, 770.0, 852.0, 941.0];
const HIGH: [f64; 4] = [1209.0, 1336.0, 1477.0, 1633.0];
const KEYS: [[char; 4]; 4] = [
    ['1', '2', '3', 'A'],
    ['4', '5', '6', 'B'],
    ['7', '8', '9', 'C'],
    ['*', '0', '#', 'D'],
];

/// The weakest tone taken, as the peak level of a sine.
pub const MIN_TONE_DBFS: f64 = -36.0;
/// How far the strongest tone of a group must stand above the next.
pub const GROUP_MARGIN_DB: f64 = 8.0;
/// Q.24: the high-group tone may be this much weaker than the low.
const NORMAL_TWIST_DB: f64 = 8.0;
/// Q.24: the high-group tone may be this much stronger than the low.
const REVERSE_TWIST_DB: f64 = 4.0;
/// The share of the block's energy the two tones must carry.
const MIN_TONE_SHARE: f64 = 0.6;

/// The peak amplitude (full scale 1.0) of the component of `block` at `freq`.
fn goertzel_amplitude(block: &[f64], freq: f64) -> f64 {
    let coeff = 2.0 * (TAU * freq / SAMPLE_RATE).cos();
    let (mut s1, mut s2) = (0.0, 0.0);
    for &x in block {
        let s0 = x + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    let power = s1 * s1 + s2 * s2 - coeff * s1 * s2;
    2.0 * power.max(0.0).sqrt() / block.len() as f64
}

fn db(amplitude: f64) -> f64 {
    20.0 * amplitude.max(1e-12).log10()
}

/// The strongest tone of a group, if it stands clear of the others: its index and
/// amplitude.
fn strongest(amplitudes: &[f64; 4]) -> Option<(usize, f64)> {
    let mut order: Vec<usize> = (0..4).collect();
    order.sort_by(|a, b| amplitudes[*b].total_cmp(&amplitudes[*a]));
    let (best, next) = (amplitudes[order[0]], amplitudes[order[1]]);
    (db(best) >= MIN_TONE_DBFS && db(best) - db(next) >= GROUP_MARGIN_DB)
        .then_some((order[0], best))
}

/// The digit a 20 ms block holds, if any.
pub fn detect_block(samples: &[i16]) -> Option<char> {
    let block: Vec<f64> = samples.iter().map(|s| f64::from(*s) / 32_768.0).collect();
    let low = LOW.map(|f| goertzel_amplitude(&block, f));
    let high = HIGH.map(|f| goertzel_amplitude(&block, f));
    let (row, low_amp) = strongest(&low)?;
    let (col, high_amp) = strongest(&high)?;

    let twist = db(high_amp) - db(low_amp);
    if !(-NORMAL_TWIST_DB..=REVERSE_TWIST_DB).contains(&twist) {
        return None;
    }
    // A sine of amplitude a has power a²/2.
    let tone_power = (low_amp * low_amp + high_amp * high_amp) / 2.0;
    let total_power = block.iter().map(|x| x * x).sum::<f64>() / block.len().max(1) as f64;
    (tone_power >= MIN_TONE_SHARE * total_power).then_some(KEYS[row][col])
}

/// A streaming DTMF decoder; see the [module](self) rules.
#[derive(Debug, Default)]
pub struct DtmfDecoder {
    pending: Vec<i16>,
    /// The digit of the last block, and whether it has been reported.
    last: Option<(char, bool)>,
}

impl DtmfDecoder {
    pub fn new() -> DtmfDecoder {
        DtmfDecoder::default()
    }

    /// Takes 48 kHz samples; returns the digits they complete.
    pub fn push(&mut self, samples: &[i16]) -> Vec<char> {
        self.pending.extend_from_slice(samples);
        let mut digits = Vec::new();
        let mut at = 0;
        while let Some(block) = self.pending.get(at..at + BLOCK) {
            let digit = detect_block(block);
            self.last = match (digit, self.last) {
                (Some(d), Some((prev, reported))) if d == prev => {
                    if !reported {
                        digits.push(d);
                    }
                    Some((d, true))
                }
                (Some(d), _) => Some((d, false)),
                (None, _) => None,
            };
            at += BLOCK;
        }
        self.pending.drain(..at);
        digits
    }

    /// Forgets a digit in progress (the transmission ended).
    pub fn reset(&mut self) {
        self.pending.clear();
        self.last = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pcm::f32_to_i16_vec;
    use crate::tones::sine;
    use std::time::Duration;

    fn digit_tone(low: f32, high: f32, ms: u64, low_dbfs: f32, high_dbfs: f32) -> Vec<i16> {
        let d = Duration::from_millis(ms);
        let a = sine(low, low_dbfs, d, 48_000);
        let b = sine(high, high_dbfs, d, 48_000);
        f32_to_i16_vec(&a.iter().zip(&b).map(|(x, y)| x + y).collect::<Vec<_>>())
    }

    fn silence(ms: usize) -> Vec<i16> {
        vec![0; ms * 48]
    }

    #[test]
    fn every_key_of_the_pad_is_decoded_once() {
        let mut audio = Vec::new();
        for (r, row) in KEYS.iter().enumerate() {
            for (c, _) in row.iter().enumerate() {
                audio.extend(digit_tone(LOW[r] as f32, HIGH[c] as f32, 80, -10.0, -10.0));
                audio.extend(silence(60));
            }
        }
        let mut decoder = DtmfDecoder::new();
        // In uneven pieces, as audio arrives.
        let digits: Vec<char> = audio.chunks(700).flat_map(|c| decoder.push(c)).collect();
        let expected: Vec<char> = KEYS.iter().flatten().copied().collect();
        assert_eq!(digits, expected);
    }

    #[test]
    fn a_held_key_counts_once_and_a_repeated_key_twice() {
        let mut audio = digit_tone(852.0, 1477.0, 400, -12.0, -12.0);
        audio.extend(silence(60));
        audio.extend(digit_tone(852.0, 1477.0, 60, -12.0, -12.0));
        assert_eq!(DtmfDecoder::new().push(&audio), vec!['9', '9']);
    }

    #[test]
    fn too_much_twist_too_little_level_and_a_lone_tone_are_no_digit() {
        // High tone 10 dB weaker than the low one: beyond normal twist.
        assert_eq!(
            detect_block(&digit_tone(697.0, 1209.0, 20, -6.0, -16.0)),
            None
        );
        // High tone 6 dB stronger: beyond reverse twist.
        assert_eq!(
            detect_block(&digit_tone(697.0, 1209.0, 20, -12.0, -6.0)),
            None
        );
        assert_eq!(
            detect_block(&digit_tone(697.0, 1209.0, 20, -45.0, -45.0)),
            None
        );
        assert_eq!(
            detect_block(&f32_to_i16_vec(&sine(
                1000.0,
                -6.0,
                Duration::from_millis(20),
                48_000
            ))),
            None
        );
        // Within the allowed twist it is a digit.
        assert_eq!(
            detect_block(&digit_tone(697.0, 1209.0, 20, -8.0, -14.0)),
            Some('1')
        );
    }

    #[test]
    fn a_tone_within_one_block_is_too_short_to_count() {
        let mut audio = silence(20);
        audio.extend(digit_tone(941.0, 1336.0, 20, -10.0, -10.0));
        audio.extend(silence(100));
        assert!(DtmfDecoder::new().push(&audio).is_empty());
    }
}
