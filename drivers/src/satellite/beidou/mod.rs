//! BeiDou RDSS short-message terminals.
//!
//! * [`nmea`]: the NMEA-style "2.1" dialect: sentences, their checksum, the ones a
//!   gateway sends and reads.
//! * [`payload`]: a message's payload in Chinese (GB2312), code (hex) or mixed form,
//!   and how much a card's comm level lets a message carry.
//! * [`terminal`]: a 2.1 terminal as a [`crate::satellite::bearer::Bearer`]: probing,
//!   the card, one message per service interval, refusals and their waits.
//!
//! * [`bd1`]: the binary BD-1 "4.0" dialect's frames: card, feedback, messages.
//!
//! The BDS-3 dialect, and a 4.0 terminal driver, are not here yet
//! (`docs/limitations.md`).

pub mod bd1;
pub mod nmea;
pub mod payload;
pub mod terminal;
