//! Extending 16-bit sequence numbers and 32-bit timestamps past their wrap-around.
//!
//! RTP counters wrap (RFC 3550 §5.1). A receiver keeps a 64-bit extended value so that
//! ordering, loss counting and playout arithmetic never see the wrap. A new value is
//! placed in the cycle that puts it nearest to the last one seen, so a packet that is
//! late across a wrap is still recognised as old.

/// Extends a counter of `BITS` width to 64 bits.
#[derive(Debug, Clone, Copy, Default)]
pub struct Unwrapper<const BITS: u32> {
    last: Option<u64>,
}

/// Extends RTP sequence numbers.
pub type SequenceUnwrapper = Unwrapper<16>;
/// Extends RTP timestamps.
pub type TimestampUnwrapper = Unwrapper<32>;

impl<const BITS: u32> Unwrapper<BITS> {
    const MODULUS: u64 = 1 << BITS;
    const HALF: u64 = 1 << (BITS - 1);

    /// The extended value of `value`. The first value seen starts one cycle up, so that
    /// a packet slightly older than it, across a wrap, still has a non-negative value.
    pub fn extend(&mut self, value: u64) -> u64 {
        let value = value & (Self::MODULUS - 1);
        let extended = match self.last {
            None => Self::MODULUS + value,
            Some(last) => {
                let mut diff = value as i64 - (last & (Self::MODULUS - 1)) as i64;
                if diff >= Self::HALF as i64 {
                    diff -= Self::MODULUS as i64;
                } else if diff < -(Self::HALF as i64) {
                    diff += Self::MODULUS as i64;
                }
                (last as i64 + diff).max(0) as u64
            }
        };
        match self.last {
            Some(last) if extended <= last => {}
            _ => self.last = Some(extended),
        }
        extended
    }

    /// The highest extended value seen.
    pub fn highest(&self) -> Option<u64> {
        self.last
    }

    /// True when `a` is ahead of `b` by less than half the counter range (serial
    /// number arithmetic on the raw values, RFC 1982 style).
    pub fn is_newer(a: u64, b: u64) -> bool {
        let diff = a.wrapping_sub(b) & (Self::MODULUS - 1);
        diff != 0 && diff < Self::HALF
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_numbers_keep_counting_across_the_wrap() {
        let mut seq = SequenceUnwrapper::default();
        let first = seq.extend(65534);
        assert_eq!(seq.extend(65535), first + 1);
        assert_eq!(seq.extend(0), first + 2);
        assert_eq!(seq.extend(1), first + 3);
    }

    #[test]
    fn a_late_packet_from_before_the_wrap_is_recognised_as_old() {
        let mut seq = SequenceUnwrapper::default();
        let a = seq.extend(65535);
        let b = seq.extend(1);
        let late = seq.extend(0);
        assert!(a < late && late < b);
        assert_eq!(seq.highest(), Some(b));
    }

    #[test]
    fn timestamps_keep_counting_across_the_wrap() {
        let mut ts = TimestampUnwrapper::default();
        let first = ts.extend(0xffff_fc40);
        assert_eq!(ts.extend(0x0000_0000), first + 960);
        assert_eq!(ts.extend(0x0000_03c0), first + 1920);
    }

    #[test]
    fn serial_comparison_sees_through_the_wrap() {
        assert!(SequenceUnwrapper::is_newer(0, 65535));
        assert!(!SequenceUnwrapper::is_newer(65535, 0));
        assert!(!SequenceUnwrapper::is_newer(5, 5));
    }
}
