//! The words of the alert domain: warning levels, area codes, states.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::cap::Severity;

/// How loud an alert shouts, and how it ranks: `Red > Orange > Yellow > Blue >
/// Routine`. The four colours are China's warning levels (GB/T 35965.1 profiles CAP's
/// severity onto them); `Routine` is a broadcast that is not a warning.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Routine,
    Blue,
    Yellow,
    Orange,
    Red,
}

impl Level {
    pub const ALL: [Level; 5] = [
        Level::Routine,
        Level::Blue,
        Level::Yellow,
        Level::Orange,
        Level::Red,
    ];

    /// The warning colour for a CAP severity: Minor blue, Moderate yellow, Severe
    /// orange, Extreme red. `Unknown` has no colour, so it cannot be played as a
    /// warning.
    pub fn from_severity(severity: Severity) -> Option<Level> {
        match severity {
            Severity::Minor => Some(Level::Blue),
            Severity::Moderate => Some(Level::Yellow),
            Severity::Severe => Some(Level::Orange),
            Severity::Extreme => Some(Level::Red),
            Severity::Unknown => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Level::Routine => "routine",
            Level::Blue => "blue",
            Level::Yellow => "yellow",
            Level::Orange => "orange",
            Level::Red => "red",
        }
    }

    /// The level's name as spoken and printed in Chinese (蓝色 …).
    pub fn chinese(self) -> &'static str {
        match self {
            Level::Routine => "常规",
            Level::Blue => "蓝色",
            Level::Yellow => "黄色",
            Level::Orange => "橙色",
            Level::Red => "红色",
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Level {
    type Err = String;

    fn from_str(s: &str) -> Result<Level, String> {
        Level::ALL
            .into_iter()
            .find(|l| l.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                format!("unknown level {s:?}: expected routine, blue, yellow, orange or red")
            })
    }
}

/// A GB/T 2260 administrative division code, extended the way the civil registers
/// do: 6 digits a county or district, 9 a township or street, 12 a village.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
#[schema(value_type = String, example = "410503001")]
#[serde(try_from = "String", into = "String")]
pub struct AreaCode(String);

impl AreaCode {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this code covers `other`: the same place or a place inside it.
    pub fn covers(&self, other: &AreaCode) -> bool {
        other.0.starts_with(&self.0)
    }

    /// Whether an alert for this code concerns a node at `node`: the code covers the
    /// node, or lies inside it (a village under a street gateway).
    pub fn concerns(&self, node: &AreaCode) -> bool {
        self.covers(node) || node.covers(self)
    }
}

impl FromStr for AreaCode {
    type Err = String;

    fn from_str(s: &str) -> Result<AreaCode, String> {
        if matches!(s.len(), 6 | 9 | 12) && s.bytes().all(|b| b.is_ascii_digit()) {
            Ok(AreaCode(s.to_string()))
        } else {
            Err(format!(
                "{s:?} is not a GB/T 2260 division code of 6, 9 or 12 digits"
            ))
        }
    }
}

impl TryFrom<String> for AreaCode {
    type Error = String;

    fn try_from(s: String) -> Result<AreaCode, String> {
        s.parse()
    }
}

impl From<AreaCode> for String {
    fn from(code: AreaCode) -> String {
        code.0
    }
}

impl fmt::Display for AreaCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where an alert is in its life. The order of the variants is the order of the
/// states; the last four are final.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AlertState {
    /// Stored; not yet due or not yet scheduled.
    Accepted,
    /// An Actual alert at a level that needs a second operator's confirmation.
    AwaitingConfirmation,
    /// Due, waiting for loudspeakers held by a higher alert.
    Queued,
    Playing,
    /// Played as many times as asked.
    Done,
    Cancelled,
    /// Its validity ended before it finished.
    Expired,
    /// It could not be made into sound (speech engine, audio).
    Failed,
}

impl AlertState {
    pub const ALL: [AlertState; 8] = [
        AlertState::Accepted,
        AlertState::AwaitingConfirmation,
        AlertState::Queued,
        AlertState::Playing,
        AlertState::Done,
        AlertState::Cancelled,
        AlertState::Expired,
        AlertState::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AlertState::Accepted => "accepted",
            AlertState::AwaitingConfirmation => "awaiting_confirmation",
            AlertState::Queued => "queued",
            AlertState::Playing => "playing",
            AlertState::Done => "done",
            AlertState::Cancelled => "cancelled",
            AlertState::Expired => "expired",
            AlertState::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<AlertState> {
        AlertState::ALL.into_iter().find(|a| a.as_str() == s)
    }

    /// Whether nothing more will happen to the alert.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            AlertState::Done | AlertState::Cancelled | AlertState::Expired | AlertState::Failed
        )
    }
}

impl fmt::Display for AlertState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// CAP `status` as it concerns playout: an exercise or test plays only where a
/// loudspeaker is configured to take it, and says so in every log and receipt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Purpose {
    Actual,
    Exercise,
    Test,
}

impl Purpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::Actual => "actual",
            Purpose::Exercise => "exercise",
            Purpose::Test => "test",
        }
    }

    pub fn parse(s: &str) -> Option<Purpose> {
        [Purpose::Actual, Purpose::Exercise, Purpose::Test]
            .into_iter()
            .find(|p| p.as_str() == s)
    }
}

impl fmt::Display for Purpose {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn severity_maps_to_the_chinese_warning_colours() {
        assert_eq!(Level::from_severity(Severity::Minor), Some(Level::Blue));
        assert_eq!(
            Level::from_severity(Severity::Moderate),
            Some(Level::Yellow)
        );
        assert_eq!(Level::from_severity(Severity::Severe), Some(Level::Orange));
        assert_eq!(Level::from_severity(Severity::Extreme), Some(Level::Red));
        assert_eq!(Level::from_severity(Severity::Unknown), None);
    }

    #[test]
    fn levels_rank_red_over_orange_over_yellow_over_blue_over_routine() {
        assert!(Level::Red > Level::Orange);
        assert!(Level::Orange > Level::Yellow);
        assert!(Level::Yellow > Level::Blue);
        assert!(Level::Blue > Level::Routine);
        assert_eq!("RED".parse::<Level>(), Ok(Level::Red));
        assert!("purple".parse::<Level>().is_err());
    }

    #[test]
    fn a_code_covers_every_place_it_prefixes() {
        let district: AreaCode = "410503".parse().expect("code");
        let street: AreaCode = "410503001".parse().expect("code");
        let village: AreaCode = "410503001002".parse().expect("code");
        let other_street: AreaCode = "410503005".parse().expect("code");
        assert!(district.covers(&street) && district.covers(&village));
        assert!(street.covers(&village) && !village.covers(&street));
        assert!(!other_street.covers(&village));
        assert!(
            village.concerns(&street),
            "a street gateway relays to its villages"
        );
        assert!(!other_street.concerns(&street));
        for bad in ["41050", "4105030011", "41050300100A", ""] {
            assert!(bad.parse::<AreaCode>().is_err(), "{bad}");
        }
    }
}
