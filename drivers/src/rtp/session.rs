//! When to send RTCP (RFC 3550 §6.2, §6.3).
//!
//! [`RtcpSchedule`] is the report timer of one participant. The first report goes out
//! half an interval after start (§6.2: the initial interval is halved), later ones at
//! the interval scaled by a random factor in [0.5, 1.5] so that participants that
//! started together do not stay synchronised (§6.3.1). The interval is configured, not
//! derived from session bandwidth: emcomm sessions have one sender and few receivers
//! per hop, far below the point where the 5 % rule would lengthen it.

use std::time::{Duration, Instant};

/// The report timer of one participant.
#[derive(Debug, Clone)]
pub struct RtcpSchedule {
    interval: Duration,
    next: Option<Instant>,
    rng: u64,
}

impl RtcpSchedule {
    /// A stopped timer with mean interval `interval`.
    pub fn new(interval: Duration) -> Self {
        RtcpSchedule::with_seed(interval, rand::random::<u64>() | 1)
    }

    /// A timer whose random factors come from `seed` (tests).
    pub fn with_seed(interval: Duration, seed: u64) -> Self {
        RtcpSchedule {
            interval,
            next: None,
            rng: seed | 1,
        }
    }

    /// A uniform factor in [0.5, 1.5) (xorshift; statistical quality is not needed).
    fn factor(&mut self) -> f64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        0.5 + (self.rng >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Starts the timer, if stopped, at `now`.
    pub fn start(&mut self, now: Instant) {
        if self.next.is_none() {
            let first = self.interval.mul_f64(self.factor() / 2.0);
            self.next = Some(now + first);
        }
    }

    /// Stops the timer (the stream ended).
    pub fn stop(&mut self) {
        self.next = None;
    }

    /// True when a report is due at `now`; the next one is then scheduled.
    pub fn poll(&mut self, now: Instant) -> bool {
        match self.next {
            Some(due) if due <= now => {
                let interval = self.interval.mul_f64(self.factor());
                self.next = Some(now + interval);
                true
            }
            _ => false,
        }
    }

    /// When the next report falls due, if running.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.next
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_report_comes_within_half_to_three_quarters_of_an_interval() {
        let t0 = Instant::now();
        let mut timer = RtcpSchedule::with_seed(Duration::from_secs(1), 42);
        assert!(
            !timer.poll(t0 + Duration::from_secs(100)),
            "stopped timers never fire"
        );
        timer.start(t0);
        let first = timer.next_deadline().expect("running") - t0;
        assert!(first >= Duration::from_millis(250) && first < Duration::from_millis(750));
    }

    #[test]
    fn reports_keep_the_mean_interval_with_randomised_spacing() {
        let t0 = Instant::now();
        let mut timer = RtcpSchedule::with_seed(Duration::from_secs(1), 7);
        timer.start(t0);
        let mut now = t0;
        let mut fired = Vec::new();
        while now < t0 + Duration::from_secs(200) {
            if timer.poll(now) {
                fired.push(now);
            }
            now += Duration::from_millis(1);
        }
        let gaps: Vec<Duration> = fired.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(
            gaps.iter()
                .all(|g| *g >= Duration::from_millis(500) && *g <= Duration::from_millis(1500))
        );
        let mean = gaps.iter().sum::<Duration>().as_secs_f64() / gaps.len() as f64;
        assert!((mean - 1.0).abs() < 0.1, "mean {mean}");
        assert!(
            gaps.windows(2).any(|w| w[0] != w[1]),
            "spacing is randomised"
        );
    }

    #[test]
    fn a_stopped_timer_has_no_deadline() {
        let t0 = Instant::now();
        let mut timer = RtcpSchedule::with_seed(Duration::from_secs(5), 3);
        timer.start(t0);
        timer.stop();
        assert_eq!(timer.next_deadline(), None);
    }
}
