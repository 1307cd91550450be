//! Wall-clock time in RTCP's NTP format (RFC 3550 §4).
//!
//! A sans-IO core never reads a clock. The process takes one [`NtpAnchor`] at start-up
//! (the wall clock at one monotonic instant) and every later instant is converted
//! through it, so a test can fix both ends and get exact NTP values.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Seconds from the NTP era (1900-01-01) to the Unix epoch (1970-01-01).
const NTP_UNIX_OFFSET_SECS: u64 = 2_208_988_800;

/// A 64-bit NTP timestamp: seconds since 1900 in the high 32 bits, fraction in the low.
pub type NtpTimestamp = u64;

/// The correspondence between the monotonic clock and the wall clock.
#[derive(Debug, Clone, Copy)]
pub struct NtpAnchor {
    instant: Instant,
    ntp: NtpTimestamp,
}

impl NtpAnchor {
    /// Reads the system clock once.
    pub fn now() -> Self {
        let since_epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO);
        NtpAnchor::new(Instant::now(), unix_to_ntp(since_epoch))
    }

    /// An anchor with a given correspondence (tests, fake clocks).
    pub fn new(instant: Instant, ntp: NtpTimestamp) -> Self {
        NtpAnchor { instant, ntp }
    }

    /// The NTP timestamp of `at`.
    pub fn ntp(&self, at: Instant) -> NtpTimestamp {
        if at >= self.instant {
            self.ntp.wrapping_add(duration_to_ntp(at - self.instant))
        } else {
            self.ntp.wrapping_sub(duration_to_ntp(self.instant - at))
        }
    }
}

/// A duration as 32.32 fixed point.
pub fn duration_to_ntp(d: Duration) -> u64 {
    (d.as_secs() << 32) + ((u64::from(d.subsec_nanos()) << 32) / 1_000_000_000)
}

/// Time since the Unix epoch as an NTP timestamp.
pub fn unix_to_ntp(since_epoch: Duration) -> NtpTimestamp {
    duration_to_ntp(since_epoch) + (NTP_UNIX_OFFSET_SECS << 32)
}

/// Signed seconds from `earlier` to `later`.
pub fn ntp_diff_secs(later: NtpTimestamp, earlier: NtpTimestamp) -> f64 {
    later.wrapping_sub(earlier) as i64 as f64 / 4_294_967_296.0
}

/// The middle 32 bits, as carried in a report block's LSR field (RFC 3550 §6.4.1).
pub fn middle32(ntp: NtpTimestamp) -> u32 {
    (ntp >> 16) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_unix_epoch_is_ntp_second_2208988800() {
        assert_eq!(unix_to_ntp(Duration::ZERO) >> 32, 2_208_988_800);
    }

    #[test]
    fn half_a_second_is_half_the_fraction_range() {
        assert_eq!(duration_to_ntp(Duration::from_millis(500)), 1 << 31);
    }

    #[test]
    fn instants_convert_through_the_anchor_both_ways() {
        let t0 = Instant::now();
        let anchor = NtpAnchor::new(t0 + Duration::from_secs(10), 100 << 32);
        assert_eq!(anchor.ntp(t0 + Duration::from_secs(11)), 101 << 32);
        assert_eq!(anchor.ntp(t0 + Duration::from_secs(9)), 99 << 32);
        let d = ntp_diff_secs(anchor.ntp(t0), anchor.ntp(t0 + Duration::from_millis(250)));
        assert!((d + 0.25).abs() < 1e-9);
    }
}
