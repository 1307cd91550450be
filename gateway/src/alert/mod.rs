//! Alerts: from a CAP message or a typed form to sound at the loudspeakers.
//!
//! * [`cap`]: CAP 1.1 and 1.2 parsed with a real XML library and checked against the
//!   standard alone (OASIS CAP-V1.2 §3), every fault named with its element path.
//! * [`clock`]: the node's time, shiftable for replays of old alerts.
//! * [`model`]: warning levels, area codes, alert states.
//! * [`intake`]: the node's own rules: targets, level, validity, confirmation.
//! * [`playout`]: priority, pre-emption and the sound of each play.
//! * [`shorten`]: the text an alert becomes on a narrow bearer: mark, level, headline,
//!   instruction, description, cut to the budget.
//! * [`store`]: the durable record: alerts, receipts, the audit log (SQLite).
//! * [`speech`]: what an alert sounds like: attention signal, then speech, repeated.

pub mod cap;
pub mod clock;
pub mod intake;
pub mod model;
pub mod playout;
pub mod shorten;
pub mod speech;
pub mod store;
