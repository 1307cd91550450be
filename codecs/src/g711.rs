//! G.711 logarithmic companding, µ-law and A-law (ITU-T Recommendation G.711, 11/1988).
//!
//! G.711 carries 8 kHz speech as one byte per sample. Each byte holds a sign, a 3-bit segment
//! (a power-of-two range of magnitudes) and a 4-bit step inside that segment; the decoder
//! returns the middle of the step's decision interval.
//!
//! - **µ-law** (G.711 §2, Tables 2a/2b) works on 14-bit magnitudes. The magnitude plus a bias
//!   of 33 is placed in one of eight segments by its leading one bit, and all eight bits of the
//!   result are inverted for transmission, so +0 is sent as `0xFF` and -0 as `0x7F`.
//! - **A-law** (G.711 §1, Tables 1a/1b) works on 13-bit magnitudes. The two lowest segments
//!   share one step size, so the curve is linear near zero; the sign bit is 1 for positive
//!   values and the even bits are inverted (XOR `0x55`), so 0 is sent as `0xD5`.
//!
//! Samples here are `i16`; the encoder drops the low bits that the law does not carry (2 for
//! µ-law, 3 for A-law) and the decoder scales back to 16 bits. Every `i16` and every code is
//! valid input: nothing here returns an error or panics. The codes match what RTP calls PCMU
//! and PCMA (RFC 3551 §4.5.14).

/// Sample rate of G.711 audio, in Hz.
pub const SAMPLE_RATE: u32 = 8_000;

/// Which of the two G.711 companding laws to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum G711Law {
    /// µ-law, used in North America and Japan; RTP payload type 0 (PCMU).
    MuLaw,
    /// A-law, used in Europe and most of the rest of the world; RTP payload type 8 (PCMA).
    ALaw,
}

impl G711Law {
    /// The static RTP payload type of this law (RFC 3551 Table 4).
    pub const fn rtp_payload_type(self) -> u8 {
        match self {
            Self::MuLaw => 0,
            Self::ALaw => 8,
        }
    }

    /// Encodes one sample with this law.
    pub fn encode_sample(self, sample: i16) -> u8 {
        match self {
            Self::MuLaw => encode_ulaw(sample),
            Self::ALaw => encode_alaw(sample),
        }
    }

    /// Decodes one code with this law.
    pub fn decode_sample(self, code: u8) -> i16 {
        match self {
            Self::MuLaw => decode_ulaw(code),
            Self::ALaw => decode_alaw(code),
        }
    }
}

/// Bias added to a µ-law 14-bit magnitude so that the segments start at powers of two.
const ULAW_BIAS: u32 = 33;

/// Largest µ-law 14-bit magnitude that still fits the top segment once biased (8158 + 33 =
/// 8191); louder input is clipped to it.
const ULAW_CLIP: u32 = 8_158;

/// Bits inverted by A-law for transmission: the even bits (G.711 §1, note to Table 1).
const ALAW_EVEN_BITS: u8 = 0x55;

/// Sign bit of a code byte.
const SIGN: u8 = 0x80;

/// Encodes one sample as µ-law.
pub fn encode_ulaw(sample: i16) -> u8 {
    let magnitude = (sample.unsigned_abs() >> 2).min(ULAW_CLIP as u16);
    let biased = u32::from(magnitude) + ULAW_BIAS;

    // Biased magnitudes 32..=63 are segment 0, 64..=127 segment 1, ... 4096..=8191 segment 7.
    let segment = (u32::BITS - 1 - biased.leading_zeros()) - 5;
    let step = (biased >> (segment + 1)) & 0x0F;
    let code = ((segment << 4) | step) as u8;

    // Transmitted inverted, with the sign bit set for positive values.
    if sample >= 0 { !code } else { !code & !SIGN }
}

/// Decodes one µ-law code.
pub fn decode_ulaw(code: u8) -> i16 {
    let code = !code;
    let segment = u32::from((code >> 4) & 0x07);
    let step = u32::from(code & 0x0F);

    // Middle of the decision interval, as a 14-bit magnitude, then scaled to 16 bits.
    let magnitude = (((2 * step + ULAW_BIAS) << segment) - ULAW_BIAS) << 2;
    let magnitude = magnitude as i16;
    if code & SIGN == 0 {
        magnitude
    } else {
        -magnitude
    }
}

/// Encodes one sample as A-law.
pub fn encode_alaw(sample: i16) -> u8 {
    // A-law is symmetric about -1/2 LSB, so negative values fold by one's complement; this also
    // keeps -32768 in range.
    let (sign, folded) = if sample >= 0 {
        (SIGN, sample)
    } else {
        (0, !sample)
    };
    let magnitude = (folded >> 3) as u16;

    // Magnitudes 0..=31 are segment 0 (steps of 2, like segment 1), 32..=63 segment 1, ...
    // 2048..=4095 segment 7.
    let code = if magnitude < 32 {
        magnitude >> 1
    } else {
        let segment = (u16::BITS - 1 - magnitude.leading_zeros()) - 4;
        ((segment as u16) << 4) | ((magnitude >> segment) & 0x0F)
    };

    (sign | code as u8) ^ ALAW_EVEN_BITS
}

/// Decodes one A-law code.
pub fn decode_alaw(code: u8) -> i16 {
    let code = code ^ ALAW_EVEN_BITS;
    let segment = u32::from((code >> 4) & 0x07);
    let step = u32::from(code & 0x0F);

    // Middle of the decision interval, as a 13-bit magnitude, then scaled to 16 bits.
    let magnitude = if segment == 0 {
        2 * step + 1
    } else {
        (2 * step + 33) << (segment - 1)
    };
    let magnitude = (magnitude << 3) as i16;
    if code & SIGN != 0 {
        magnitude
    } else {
        -magnitude
    }
}

/// Appends the G.711 codes of `samples` to `out`.
pub fn encode(law: G711Law, samples: &[i16], out: &mut Vec<u8>) {
    out.reserve(samples.len());
    out.extend(samples.iter().map(|&s| law.encode_sample(s)));
}

/// Appends the samples decoded from G.711 `codes` to `out`.
pub fn decode(law: G711Law, codes: &[u8], out: &mut Vec<i16>) {
    out.reserve(codes.len());
    out.extend(codes.iter().map(|&c| law.decode_sample(c)));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silence_encodes_to_the_standard_idle_codes() {
        assert_eq!(encode_ulaw(0), 0xFF);
        assert_eq!(encode_alaw(0), 0xD5);
        assert_eq!(encode_ulaw(-1), 0x7F);
        assert_eq!(encode_alaw(-1), 0x55);
        assert_eq!(decode_ulaw(0xFF), 0);
        assert_eq!(decode_ulaw(0x7F), 0);
        assert_eq!(decode_alaw(0xD5), 8);
        assert_eq!(decode_alaw(0x55), -8);
    }

    #[test]
    fn full_scale_encodes_to_the_extreme_codes() {
        assert_eq!(encode_ulaw(i16::MAX), 0x80);
        assert_eq!(encode_ulaw(i16::MIN), 0x00);
        assert_eq!(decode_ulaw(0x80), 32_124);
        assert_eq!(decode_ulaw(0x00), -32_124);

        assert_eq!(encode_alaw(i16::MAX), 0xAA);
        assert_eq!(encode_alaw(i16::MIN), 0x2A);
        assert_eq!(decode_alaw(0xAA), 32_256);
        assert_eq!(decode_alaw(0x2A), -32_256);
    }

    #[test]
    fn segment_first_outputs_match_the_g711_tables() {
        // Decoder output of step 0 of each positive segment, on the scale of the tables:
        // 14-bit for µ-law (Table 2a), 13-bit for A-law (Table 1a).
        let ulaw: Vec<i16> = (0..8u8)
            .map(|segment| decode_ulaw(!(segment << 4)) / 4)
            .collect();
        assert_eq!(ulaw, [0, 33, 99, 231, 495, 1023, 2079, 4191]);

        let alaw: Vec<i16> = (0..8u8)
            .map(|segment| decode_alaw((SIGN | segment << 4) ^ ALAW_EVEN_BITS) / 8)
            .collect();
        assert_eq!(alaw, [1, 33, 66, 132, 264, 528, 1056, 2112]);

        // Largest outputs: 8031 for µ-law, 4032 for A-law.
        assert_eq!(decode_ulaw(0x80) / 4, 8031);
        assert_eq!(decode_alaw(0xAA) / 8, 4032);
    }

    #[test]
    fn ulaw_round_trip_error_is_within_half_a_step() {
        for sample in i16::MIN..=i16::MAX {
            let error = (i32::from(decode_ulaw(encode_ulaw(sample))) - i32::from(sample)).abs();
            let magnitude = i32::from(sample).abs();
            if magnitude <= 32_124 {
                // Half a step in segment s is 4 * 2^s, and the segment starts near 128 * 2^s.
                assert!(error <= magnitude / 32 + 5, "{sample} -> error {error}");
            } else {
                assert!(error <= magnitude - 32_124, "{sample} clipped by {error}");
            }
        }
    }

    #[test]
    fn alaw_round_trip_error_is_within_half_a_step() {
        for sample in i16::MIN..=i16::MAX {
            let error = (i32::from(decode_alaw(encode_alaw(sample))) - i32::from(sample)).abs();
            let magnitude = i32::from(sample).abs();
            // Steps are 16 in the two lowest segments, then double with each segment.
            assert!(
                error <= (magnitude / 32).max(8),
                "{sample} -> error {error}"
            );
        }
    }

    #[test]
    fn decoding_then_encoding_gives_the_same_code() {
        for code in 0..=u8::MAX {
            assert_eq!(encode_alaw(decode_alaw(code)), code, "A-law {code:#04x}");
            // µ-law -0 (0x7F) decodes to 0, which encodes as +0.
            if code != 0x7F {
                assert_eq!(encode_ulaw(decode_ulaw(code)), code, "µ-law {code:#04x}");
            }
        }
    }

    #[test]
    fn decoded_values_rise_with_the_code_and_are_symmetric() {
        // Positive codes in order of magnitude: µ-law counts down from 0xFF, A-law up from 0x80
        // before the even-bit inversion.
        let ulaw: Vec<i16> = (0..128u8).map(|k| decode_ulaw(0xFF - k)).collect();
        let alaw: Vec<i16> = (0..128u8)
            .map(|k| decode_alaw((SIGN | k) ^ ALAW_EVEN_BITS))
            .collect();
        assert!(ulaw.windows(2).all(|w| w[0] < w[1]), "{ulaw:?}");
        assert!(alaw.windows(2).all(|w| w[0] < w[1]), "{alaw:?}");

        for k in 0..128u8 {
            assert_eq!(decode_ulaw(0x7F - k), -decode_ulaw(0xFF - k));
            assert_eq!(
                decode_alaw(k ^ ALAW_EVEN_BITS),
                -decode_alaw((SIGN | k) ^ ALAW_EVEN_BITS)
            );
        }
    }

    #[test]
    fn encoding_is_monotonic_over_all_samples() {
        for law in [G711Law::MuLaw, G711Law::ALaw] {
            let decoded: Vec<i16> = (i16::MIN..=i16::MAX)
                .map(|s| law.decode_sample(law.encode_sample(s)))
                .collect();
            assert!(decoded.windows(2).all(|w| w[0] <= w[1]), "{law:?}");
        }
    }

    #[test]
    fn block_helpers_append_to_the_output() {
        let samples = [0, 1000, -1000, i16::MAX];
        let mut codes = vec![0x42];
        encode(G711Law::MuLaw, &samples, &mut codes);
        assert_eq!(codes.len(), 5);
        assert_eq!(codes.first(), Some(&0x42));
        assert_eq!(codes.get(1), Some(&0xFF));

        let mut decoded = vec![7];
        decode(
            G711Law::MuLaw,
            codes.get(1..).unwrap_or_default(),
            &mut decoded,
        );
        assert_eq!(decoded, [7, 0, 988, -988, 32_124]);
    }

    #[test]
    fn rtp_payload_types_are_pcmu_0_and_pcma_8() {
        assert_eq!(G711Law::MuLaw.rtp_payload_type(), 0);
        assert_eq!(G711Law::ALaw.rtp_payload_type(), 8);
    }
}
