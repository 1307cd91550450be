//! The node's idea of the time: the system clock, or the system clock shifted by a
//! fixed offset so that old real alerts can be replayed as they were issued.

use chrono::{DateTime, Duration, Utc};

#[derive(Debug, Clone, Copy, Default)]
pub struct Clock {
    offset: Duration,
}

impl Clock {
    /// The system clock.
    pub fn system() -> Clock {
        Clock::default()
    }

    /// A clock that reads `start` now and runs on from there.
    pub fn replay(start: DateTime<Utc>) -> Clock {
        Clock {
            offset: start - Utc::now(),
        }
    }

    pub fn now(&self) -> DateTime<Utc> {
        Utc::now() + self.offset
    }

    /// How far this clock is from the system clock.
    pub fn offset(&self) -> Duration {
        self.offset
    }
}
