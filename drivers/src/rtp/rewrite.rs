//! Forwarding one RTP stream onward as a continuous stream of our own.
//!
//! A forwarding gateway is an RTP translator (RFC 3550 §7.1) that also rewrites: it
//! sends every output under its own SSRC, and maps each input packet's sequence number
//! and timestamp onto the output so that the receivers see one unbroken stream even
//! when the input changes (a new source pre-empts, a sender restarts with new random
//! values). Within one input source the mapping is a fixed offset, so reordering and
//! loss pass through unchanged and the receivers' jitter buffers still see them. When
//! the source changes, the output continues one sequence number and the elapsed time
//! after the last packet it sent, with the marker bit set to start a talkspurt.
//!
//! The output clock may differ from the input's (Opus 48 kHz in, G.711 8 kHz out when
//! transcoding): timestamps are scaled by the ratio of the two clocks.

use std::time::Instant;

use super::seq::{SequenceUnwrapper, TimestampUnwrapper};

/// Sequence, timestamp and marker of one output packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rewritten {
    pub sequence: u16,
    pub timestamp: u32,
    pub marker: bool,
}

#[derive(Debug, Clone)]
struct SourceMapping {
    ssrc: u32,
    sequences: SequenceUnwrapper,
    timestamps: TimestampUnwrapper,
    first_sequence: u64,
    first_timestamp: u64,
    out_sequence: u16,
    out_timestamp: u32,
}

/// The mapping from the current input source to one output stream.
#[derive(Debug, Clone)]
pub struct StreamRewriter {
    out_ssrc: u32,
    in_clock: u32,
    out_clock: u32,
    out_step: u32,
    source: Option<SourceMapping>,
    last_sent: Option<(u16, u32, Instant)>,
    next_sequence: u16,
    next_timestamp: u32,
}

impl StreamRewriter {
    /// An output stream `out_ssrc` whose first packet gets `sequence` and `timestamp`.
    /// `out_step` is the output timestamp increment of one packet.
    pub fn new(
        out_ssrc: u32,
        in_clock: u32,
        out_clock: u32,
        out_step: u32,
        sequence: u16,
        timestamp: u32,
    ) -> Self {
        StreamRewriter {
            out_ssrc,
            in_clock,
            out_clock,
            out_step,
            source: None,
            last_sent: None,
            next_sequence: sequence,
            next_timestamp: timestamp,
        }
    }

    /// Changes the input clock rate for the next source (the input codec changed).
    /// The current source, if any, is dropped so the next packet starts afresh.
    pub fn set_in_clock(&mut self, in_clock: u32) {
        if in_clock != self.in_clock {
            self.in_clock = in_clock;
            self.source = None;
        }
    }

    /// The SSRC every output packet carries.
    pub fn out_ssrc(&self) -> u32 {
        self.out_ssrc
    }

    /// The input source currently mapped.
    pub fn current_source(&self) -> Option<u32> {
        self.source.as_ref().map(|s| s.ssrc)
    }

    /// Where the output continues when a new source takes over at `now`: one sequence
    /// number and the time that has passed after the last packet sent, at least one
    /// packet's worth.
    fn continuation(&self, now: Instant) -> (u16, u32) {
        match self.last_sent {
            Some((seq, ts, at)) => {
                let elapsed = now.saturating_duration_since(at).as_secs_f64();
                let gap = ((elapsed * f64::from(self.out_clock)) as u32).max(self.out_step);
                (seq.wrapping_add(1), ts.wrapping_add(gap))
            }
            None => (self.next_sequence, self.next_timestamp),
        }
    }

    /// Maps an input packet of source `ssrc` that arrived at `now`. A packet from a
    /// source other than the current one makes it the current one.
    pub fn rewrite(
        &mut self,
        ssrc: u32,
        sequence: u16,
        timestamp: u32,
        marker: bool,
        now: Instant,
    ) -> Rewritten {
        let (out_sequence, out_timestamp) = self.continuation(now);
        let (in_clock, out_clock) = (self.in_clock, self.out_clock);
        let switched = self.source.as_ref().is_none_or(|s| s.ssrc != ssrc);
        let source = match &mut self.source {
            Some(source) if source.ssrc == ssrc => source,
            slot => {
                let mut sequences = SequenceUnwrapper::default();
                let mut timestamps = TimestampUnwrapper::default();
                slot.insert(SourceMapping {
                    ssrc,
                    first_sequence: sequences.extend(u64::from(sequence)),
                    first_timestamp: timestamps.extend(u64::from(timestamp)),
                    sequences,
                    timestamps,
                    out_sequence,
                    out_timestamp,
                })
            }
        };
        let seq_delta =
            source.sequences.extend(u64::from(sequence)) as i64 - source.first_sequence as i64;
        let ts_delta =
            source.timestamps.extend(u64::from(timestamp)) as i64 - source.first_timestamp as i64;
        let rewritten = Rewritten {
            sequence: source.out_sequence.wrapping_add(seq_delta as u16),
            timestamp: source
                .out_timestamp
                .wrapping_add(scale(ts_delta, in_clock, out_clock) as u32),
            marker: marker || switched,
        };
        let newest = switched
            || self.last_sent.is_none_or(|(seq, _, _)| {
                SequenceUnwrapper::is_newer(u64::from(rewritten.sequence), u64::from(seq))
            });
        if newest {
            self.last_sent = Some((rewritten.sequence, rewritten.timestamp, now));
        }
        rewritten
    }

    /// The output timestamp of input timestamp `timestamp` of the current source, to
    /// translate a sender report's clock mapping onto the output.
    pub fn map_timestamp(&self, ssrc: u32, timestamp: u32) -> Option<u32> {
        let source = self.source.as_ref().filter(|s| s.ssrc == ssrc)?;
        let mut probe = source.timestamps;
        let delta = probe.extend(u64::from(timestamp)) as i64 - source.first_timestamp as i64;
        Some(
            source
                .out_timestamp
                .wrapping_add(scale(delta, self.in_clock, self.out_clock) as u32),
        )
    }
}

/// Converts a timestamp difference between clock rates.
fn scale(in_units: i64, in_clock: u32, out_clock: u32) -> i64 {
    in_units * i64::from(out_clock) / i64::from(in_clock)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn opus_rewriter() -> StreamRewriter {
        StreamRewriter::new(0xfeed, 48_000, 48_000, 960, 100, 10_000)
    }

    #[test]
    fn one_source_is_shifted_onto_the_output_numbering() {
        let t0 = Instant::now();
        let mut rw = opus_rewriter();
        let a = rw.rewrite(1, 65535, u32::MAX - 959, true, t0);
        let b = rw.rewrite(1, 0, 0, false, t0);
        assert_eq!(
            a,
            Rewritten {
                sequence: 100,
                timestamp: 10_000,
                marker: true
            }
        );
        assert_eq!(
            b,
            Rewritten {
                sequence: 101,
                timestamp: 10_960,
                marker: false
            }
        );
    }

    #[test]
    fn reordering_and_loss_pass_through_unchanged() {
        let t0 = Instant::now();
        let mut rw = opus_rewriter();
        rw.rewrite(1, 10, 0, false, t0);
        let late = rw.rewrite(1, 13, 2880, false, t0);
        let early = rw.rewrite(1, 12, 1920, false, t0);
        assert_eq!(late.sequence, 103);
        assert_eq!(early.sequence, 102);
        assert_eq!(early.timestamp, 10_000 + 1920);
    }

    #[test]
    fn a_new_source_continues_the_output_after_the_elapsed_time() {
        let t0 = Instant::now();
        let mut rw = opus_rewriter();
        rw.rewrite(1, 500, 7, false, t0);
        let switched = rw.rewrite(2, 9, 123_456, false, t0 + Duration::from_millis(100));
        assert_eq!(switched.sequence, 101);
        assert_eq!(switched.timestamp, 10_000 + 4800);
        assert!(switched.marker);
        assert_eq!(rw.current_source(), Some(2));
    }

    #[test]
    fn transcoding_to_g711_scales_timestamps_to_8_khz() {
        let t0 = Instant::now();
        let mut rw = StreamRewriter::new(0xfeed, 48_000, 8_000, 160, 0, 0);
        rw.rewrite(1, 0, 96_000, false, t0);
        let next = rw.rewrite(1, 1, 96_960, false, t0);
        assert_eq!(next.timestamp, 160);
        assert_eq!(rw.map_timestamp(1, 96_000 + 48_000), Some(8_000));
        assert_eq!(rw.map_timestamp(2, 0), None);
    }
}
