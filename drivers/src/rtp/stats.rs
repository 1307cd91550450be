//! Receiver statistics of one RTP source (RFC 3550 §6.4.1 and Appendix A.3, A.8).
//!
//! [`ReceiverStats`] is fed every valid packet of one SSRC with its arrival instant
//! and yields the numbers of a reception report block: cumulative and fractional loss,
//! extended highest sequence number, interarrival jitter, and the LSR/DLSR pair that
//! lets the sender compute the round trip.

use std::time::Instant;

use super::ntp::{NtpTimestamp, middle32};
use super::seq::SequenceUnwrapper;

/// The content of one reception report block, ready to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportBlockData {
    /// The source this block reports on.
    pub ssrc: u32,
    /// Packets lost since the previous report, as a fixed-point fraction of 256.
    pub fraction_lost: u8,
    /// Packets expected minus packets received since the start, clamped to 24 bits.
    pub cumulative_lost: u32,
    /// Cycles of the sequence number in the high 16 bits, highest sequence in the low.
    pub extended_highest_sequence: u32,
    /// Interarrival jitter in timestamp units.
    pub jitter: u32,
    /// Middle 32 bits of the NTP timestamp of the last sender report, 0 if none.
    pub last_sr: u32,
    /// Delay since that sender report, in units of 1/65536 s, 0 if none.
    pub delay_since_last_sr: u32,
}

/// Running statistics of one source.
#[derive(Debug, Clone)]
pub struct ReceiverStats {
    ssrc: u32,
    clock_rate: u32,
    origin: Instant,
    sequence: SequenceUnwrapper,
    base: Option<u64>,
    highest: u64,
    received: u64,
    duplicates: u64,
    expected_prior: u64,
    received_prior: u64,
    last_transit: Option<f64>,
    jitter: f64,
    last_sr: Option<(NtpTimestamp, Instant)>,
}

impl ReceiverStats {
    /// Statistics of source `ssrc` whose timestamps run at `clock_rate` Hz. `origin` is
    /// any fixed instant; arrival times are measured from it.
    pub fn new(ssrc: u32, clock_rate: u32, origin: Instant) -> Self {
        ReceiverStats {
            ssrc,
            clock_rate,
            origin,
            sequence: SequenceUnwrapper::default(),
            base: None,
            highest: 0,
            received: 0,
            duplicates: 0,
            expected_prior: 0,
            received_prior: 0,
            last_transit: None,
            jitter: 0.0,
            last_sr: None,
        }
    }

    /// Accounts for one packet and returns its extended sequence number.
    pub fn on_packet(&mut self, sequence: u16, timestamp: u32, arrival: Instant) -> u64 {
        let extended = self.sequence.extend(u64::from(sequence));
        match self.base {
            None => {
                self.base = Some(extended);
                self.highest = extended;
            }
            Some(base) if extended < base => self.base = Some(extended),
            Some(_) => {}
        }
        self.highest = self.highest.max(extended);
        self.received += 1;

        // RFC 3550 A.8: J += (|D| - J) / 16, D the change in relative transit time.
        let arrival_units = arrival.saturating_duration_since(self.origin).as_secs_f64()
            * f64::from(self.clock_rate);
        let transit = arrival_units - f64::from(timestamp);
        if let Some(last) = self.last_transit {
            let mut d = (transit - last).abs();
            // A timestamp wrap shows as a jump of 2^32 in transit; fold it back.
            if d > f64::from(u32::MAX) / 2.0 {
                d = (d - 4_294_967_296.0).abs();
            }
            self.jitter += (d - self.jitter) / 16.0;
        }
        self.last_transit = Some(transit);
        extended
    }

    /// Counts a packet whose sequence number was already received.
    pub fn on_duplicate(&mut self) {
        self.duplicates += 1;
    }

    /// Records the arrival of a sender report from this source.
    pub fn on_sender_report(&mut self, ntp: NtpTimestamp, arrival: Instant) {
        self.last_sr = Some((ntp, arrival));
    }

    /// Packets expected from the first to the highest sequence number.
    pub fn expected(&self) -> u64 {
        self.base.map_or(0, |base| self.highest - base + 1)
    }

    /// Packets received, duplicates included (RFC 3550 A.3 counts them too).
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Duplicate packets seen.
    pub fn duplicates(&self) -> u64 {
        self.duplicates
    }

    /// Packets never received; negative when duplicates outnumber losses.
    pub fn lost(&self) -> i64 {
        self.expected() as i64 - self.received as i64
    }

    /// Interarrival jitter in seconds.
    pub fn jitter_secs(&self) -> f64 {
        self.jitter / f64::from(self.clock_rate)
    }

    /// The source these statistics describe.
    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// Builds a report block and starts a new interval for the fraction lost.
    pub fn report_block(&mut self, now: Instant) -> ReportBlockData {
        let expected = self.expected();
        let expected_interval = expected - self.expected_prior;
        let received_interval = self.received.saturating_sub(self.received_prior);
        self.expected_prior = expected;
        self.received_prior = self.received;
        let lost_interval = expected_interval as i64 - received_interval as i64;
        let fraction_lost = if expected_interval == 0 || lost_interval <= 0 {
            0
        } else {
            ((lost_interval << 8) / expected_interval as i64).min(255) as u8
        };
        // 24-bit signed field; a negative count is reported as zero here.
        let cumulative_lost = self.lost().clamp(0, 0x7f_ffff) as u32;
        // Extended values start one cycle up (see seq.rs); report cycles from zero.
        let extended_highest_sequence = self.highest.saturating_sub(1 << 16) as u32;
        let (last_sr, delay_since_last_sr) = match self.last_sr {
            Some((ntp, at)) => {
                let delay = now.saturating_duration_since(at).as_secs_f64() * 65536.0;
                (middle32(ntp), delay as u32)
            }
            None => (0, 0),
        };
        ReportBlockData {
            ssrc: self.ssrc,
            fraction_lost,
            cumulative_lost,
            extended_highest_sequence,
            jitter: self.jitter as u32,
            last_sr,
            delay_since_last_sr,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const STEP: Duration = Duration::from_millis(20);

    #[test]
    fn a_steady_stream_has_no_loss_and_no_jitter() {
        let t0 = Instant::now();
        let mut stats = ReceiverStats::new(7, 48_000, t0);
        for i in 0..100u32 {
            stats.on_packet(i as u16, i * 960, t0 + STEP * i);
        }
        let block = stats.report_block(t0 + STEP * 100);
        assert_eq!(block.cumulative_lost, 0);
        assert_eq!(block.fraction_lost, 0);
        assert_eq!(block.extended_highest_sequence, 99);
        assert!(stats.jitter_secs() < 1e-6);
    }

    #[test]
    fn one_lost_in_four_reports_a_quarter() {
        let t0 = Instant::now();
        let mut stats = ReceiverStats::new(7, 8_000, t0);
        for i in (0..100u32).filter(|i| i % 4 != 1) {
            stats.on_packet(i as u16, i * 160, t0 + STEP * i);
        }
        let block = stats.report_block(t0 + STEP * 100);
        assert_eq!(block.cumulative_lost, 25);
        assert_eq!(block.fraction_lost, 64);
        // The next interval had nothing new: no fraction lost.
        assert_eq!(stats.report_block(t0 + STEP * 101).fraction_lost, 0);
    }

    #[test]
    fn alternating_arrival_delay_converges_to_rfc3550_jitter() {
        let t0 = Instant::now();
        let mut stats = ReceiverStats::new(7, 8_000, t0);
        // Every other packet 10 ms late: |D| is 10 ms each time, so J tends to 10 ms.
        for i in 0..400u32 {
            let late = if i % 2 == 1 {
                Duration::from_millis(10)
            } else {
                Duration::ZERO
            };
            stats.on_packet(i as u16, i * 160, t0 + STEP * i + late);
        }
        assert!(
            (stats.jitter_secs() - 0.010).abs() < 0.0005,
            "{}",
            stats.jitter_secs()
        );
    }

    #[test]
    fn the_sequence_wrap_counts_a_cycle() {
        let t0 = Instant::now();
        let mut stats = ReceiverStats::new(7, 48_000, t0);
        for (i, seq) in [65534u16, 65535, 0, 1].into_iter().enumerate() {
            stats.on_packet(seq, i as u32 * 960, t0 + STEP * i as u32);
        }
        let block = stats.report_block(t0);
        assert_eq!(block.extended_highest_sequence, (1 << 16) | 1);
        assert_eq!(block.cumulative_lost, 0);
    }

    #[test]
    fn lsr_and_dlsr_describe_the_last_sender_report() {
        let t0 = Instant::now();
        let mut stats = ReceiverStats::new(7, 48_000, t0);
        stats.on_packet(1, 0, t0);
        stats.on_sender_report(0x0001_2345_6789_0000, t0);
        let block = stats.report_block(t0 + Duration::from_millis(500));
        assert_eq!(block.last_sr, 0x2345_6789);
        assert_eq!(block.delay_since_last_sr, 32768);
    }
}
