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
