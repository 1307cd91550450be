//! Satellite terminals: the narrow bearers that carry alerts and field reports when the
//! fibre is cut.
//!
//! * [`at`]: answer lines of AT modems.
//! * [`bearer`]: what every terminal offers the relay: capacity, pacing, a priority
//!   queue, what became of each message.
//! * [`beidou`]: BeiDou RDSS short-message terminals.
//! * [`iridium`]: Iridium 9602/9603 short-burst-data modems.
//! * [`sms`]: SMS in PDU mode, for Tiantong-1 terminals and cellular modems.

pub mod at;
pub mod bearer;
pub mod beidou;
pub mod iridium;
pub mod sms;

use std::time::Instant;

use bearer::Bearer;

/// The BeiDou dialect a terminal speaks (`../docs/satellite.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BeidouDialect {
    /// Find out at start-up.
    #[default]
    Auto,
    /// NMEA-style "2.1" sentences.
    #[serde(rename = "2.1")]
    V21,
    /// Binary BD-1 "4.0" frames.
    #[serde(rename = "4.0")]
    Bd1,
    /// BDS-3 sentences.
    Bds3,
}

/// A kind of satellite terminal, as a configuration names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TerminalKind {
    Beidou(BeidouDialect),
    Iridium,
    Sms,
}

/// The bearer core for a terminal of `kind`, with its default timing, starting at `now`.
pub fn bearer_for(kind: TerminalKind, now: Instant) -> Box<dyn Bearer + Send> {
    match kind {
        TerminalKind::Beidou(dialect) => Box::new(beidou::terminal::BeidouTerminal::new(
            dialect,
            beidou::terminal::TerminalTiming::default(),
            now,
        )),
        TerminalKind::Iridium => Box::new(iridium::Sbd::new(iridium::SbdTiming::default(), now)),
        TerminalKind::Sms => Box::new(sms::modem::SmsModem::new(
            sms::modem::SmsTiming::default(),
            now,
        )),
    }
}
