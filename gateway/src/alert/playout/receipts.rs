//! Whether each loudspeaker played an alert, from its RTCP receiver reports.
//!
//! A play counts as heard by a loudspeaker when a receiver report from it covers the
//! play's stream to its last packet (extended highest sequence number, RFC 3550
//! §6.4.1) with cumulative loss at most the configured bound. A loudspeaker that
//! sends no covering report within the grace period after the play is "sent, not
//! confirmed"; one whose report shows more loss has "failed". A later play can
//! improve a loudspeaker's verdict, never worsen it.
//!
//! Sans-IO: the caller passes the time and the reports, and polls at the deadline.

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use drivers::rtp::stats::ReportBlockData;

use super::schedule::OutputId;

/// One loudspeaker's verdict on one alert.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Played {
        loss_percent: f64,
    },
    Failed {
        loss_percent: f64,
    },
    /// Sent, not confirmed: no report covered the stream.
    Unconfirmed {
        detail: String,
    },
}

impl Verdict {
    /// The receipt state word.
    pub fn state(&self) -> &'static str {
        match self {
            Verdict::Played { .. } => "played",
            Verdict::Failed { .. } => "failed",
            Verdict::Unconfirmed { .. } => "unconfirmed",
        }
    }

    pub fn detail(&self) -> String {
        match self {
            Verdict::Played { loss_percent } => format!("RTCP: loss {loss_percent:.1} %"),
            Verdict::Failed { loss_percent } => {
                format!("RTCP: loss {loss_percent:.1} %, above the bound")
            }
            Verdict::Unconfirmed { detail } => detail.clone(),
        }
    }

    fn rank(&self) -> u8 {
        match self {
            Verdict::Unconfirmed { .. } => 0,
            Verdict::Failed { .. } => 1,
            Verdict::Played { .. } => 2,
        }
    }
}

/// A play sent to one output, waiting for a report that covers it.
#[derive(Debug, Clone)]
struct Waiting {
    alert: i64,
    output: OutputId,
    ssrc: u32,
    /// Extended sequence number of the play's last packet, counting from its first.
    last: u32,
    packets: u32,
    deadline: DateTime<Utc>,
    /// The best partial coverage seen, for the "unconfirmed" detail.
    covered: u32,
}

/// An updated verdict for `alert` on `output`.
#[derive(Debug, Clone, PartialEq)]
pub struct Update {
    pub alert: i64,
    pub output: OutputId,
    pub verdict: Verdict,
}

#[derive(Debug)]
pub struct ReceiptTracker {
    waiting: Vec<Waiting>,
    verdicts: HashMap<(i64, OutputId), Verdict>,
    grace: Duration,
    max_loss_percent: f64,
}

impl ReceiptTracker {
    /// `grace`: how long after a play a covering report may come (a little more than
    /// the receivers' report interval).
    pub fn new(grace: Duration, max_loss_percent: f64) -> ReceiptTracker {
        ReceiptTracker {
            waiting: Vec::new(),
            verdicts: HashMap::new(),
            grace,
            max_loss_percent,
        }
    }

    /// A play of `alert` ended on `output`: `packets` packets from sequence number
    /// `first_sequence` in the stream `ssrc`.
    pub fn play_sent(
        &mut self,
        alert: i64,
        output: OutputId,
        ssrc: u32,
        first_sequence: u16,
        packets: u32,
        now: DateTime<Utc>,
    ) {
        if packets == 0 {
            return;
        }
        self.waiting.push(Waiting {
            alert,
            output,
            ssrc,
            last: u32::from(first_sequence) + packets - 1,
            packets,
            deadline: now + self.grace,
            covered: 0,
        });
    }

    /// A receiver report from `output`.
    pub fn report(&mut self, output: OutputId, block: &ReportBlockData) -> Vec<Update> {
        let mut decided = Vec::new();
        let max_loss = self.max_loss_percent;
        self.waiting.retain_mut(|w| {
            if w.output != output || w.ssrc != block.ssrc {
                return true;
            }
            let behind = w.last.wrapping_sub(block.extended_highest_sequence) as i32;
            if behind > 0 {
                // A report from the middle of the play.
                w.covered = w.covered.max(w.packets.saturating_sub(behind as u32));
                return true;
            }
            let loss_percent = f64::from(block.cumulative_lost) * 100.0 / f64::from(w.packets);
            let verdict = if loss_percent <= max_loss {
                Verdict::Played { loss_percent }
            } else {
                Verdict::Failed { loss_percent }
            };
            decided.push((w.alert, w.output, verdict));
            false
        });
        decided
            .into_iter()
            .filter_map(|(alert, output, verdict)| self.decide(alert, output, verdict))
            .collect()
    }

    /// Plays whose grace period has passed without a covering report.
    pub fn poll(&mut self, now: DateTime<Utc>) -> Vec<Update> {
        let mut expired = Vec::new();
        self.waiting.retain(|w| {
            if w.deadline > now {
                return true;
            }
            let detail = if w.covered == 0 {
                "sent, not confirmed: no RTCP receiver report".to_string()
            } else {
                format!(
                    "sent, not confirmed: the last report covered {} of {} packets",
                    w.covered, w.packets
                )
            };
            expired.push((w.alert, w.output, Verdict::Unconfirmed { detail }));
            false
        });
        expired
            .into_iter()
            .filter_map(|(alert, output, verdict)| self.decide(alert, output, verdict))
            .collect()
    }

    pub fn next_deadline(&self) -> Option<DateTime<Utc>> {
        self.waiting.iter().map(|w| w.deadline).min()
    }

    fn decide(&mut self, alert: i64, output: OutputId, verdict: Verdict) -> Option<Update> {
        let better = self
            .verdicts
            .get(&(alert, output))
            .is_none_or(|old| verdict.rank() > old.rank());
        if !better {
            return None;
        }
        self.verdicts.insert((alert, output), verdict.clone());
        Some(Update {
            alert,
            output,
            verdict,
        })
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn t(s: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 7, 21, 0, 0, 0)
            .single()
            .expect("time")
            + Duration::seconds(s)
    }

    fn block(ssrc: u32, highest: u32, lost: u32) -> ReportBlockData {
        ReportBlockData {
            ssrc,
            fraction_lost: 0,
            cumulative_lost: lost,
            extended_highest_sequence: highest,
            jitter: 0,
            last_sr: 0,
            delay_since_last_sr: 0,
        }
    }

    fn tracker() -> ReceiptTracker {
        ReceiptTracker::new(Duration::seconds(12), 5.0)
    }

    #[test]
    fn a_report_covering_the_play_with_little_loss_confirms_it() {
        let mut r = tracker();
        r.play_sent(1, 0, 0xAB, 65_000, 1_000, t(0));
        assert!(
            r.report(0, &block(0xAB, 65_500, 0)).is_empty(),
            "mid-play report"
        );
        let updates = r.report(0, &block(0xAB, 65_999, 20));
        assert_eq!(updates.len(), 1);
        assert_eq!(updates[0].verdict, Verdict::Played { loss_percent: 2.0 });
        assert_eq!(r.next_deadline(), None);
    }

    #[test]
    fn heavy_loss_fails_and_a_later_clean_play_confirms() {
        let mut r = tracker();
        r.play_sent(1, 0, 1, 0, 100, t(0));
        let failed = r.report(0, &block(1, 99, 30));
        assert_eq!(failed[0].verdict.state(), "failed");
        r.play_sent(1, 0, 2, 0, 100, t(20));
        let played = r.report(0, &block(2, 99, 0));
        assert_eq!(played[0].verdict.state(), "played");
        r.play_sent(1, 0, 3, 0, 100, t(40));
        assert!(
            r.report(0, &block(3, 99, 90)).is_empty(),
            "never worse than played"
        );
    }

    #[test]
    fn silence_after_the_grace_period_is_sent_not_confirmed() {
        let mut r = tracker();
        r.play_sent(1, 0, 1, 10, 100, t(0));
        r.play_sent(1, 1, 1, 10, 100, t(0));
        r.report(1, &block(1, 59, 0));
        assert!(r.poll(t(11)).is_empty());
        let updates = r.poll(t(12));
        assert_eq!(updates.len(), 2);
        let detail = |o| {
            updates
                .iter()
                .find(|u| u.output == o)
                .map(|u| u.verdict.detail())
        };
        assert_eq!(
            detail(0).as_deref(),
            Some("sent, not confirmed: no RTCP receiver report")
        );
        assert_eq!(
            detail(1).as_deref(),
            Some("sent, not confirmed: the last report covered 50 of 100 packets")
        );
    }

    #[test]
    fn reports_about_other_streams_or_from_other_outputs_do_not_count() {
        let mut r = tracker();
        r.play_sent(1, 0, 7, 0, 10, t(0));
        assert!(r.report(1, &block(7, 9, 0)).is_empty());
        assert!(r.report(0, &block(8, 9, 0)).is_empty());
        assert_eq!(r.report(0, &block(7, 9, 0)).len(), 1);
    }
}
