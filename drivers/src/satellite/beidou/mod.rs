//! BeiDou RDSS short-message terminals.
//!
//! * [`nmea`]: the NMEA-style "2.1" dialect: sentences, their checksum, the ones a
//!   gateway sends and reads. BDS-3 modules frame their sentences the same way.
//! * [`bds3`]: the BDS-3 dialect's sentences: card, send, feedback with its reasons,
//!   received messages, beam power.
//! * [`bd1`]: the binary BD-1 "4.0" dialect's frames: card, feedback, messages.
//! * [`payload`]: a message's payload in Chinese (GB2312), code (hex) or mixed form,
//!   and how much a card's comm level lets a message carry.
//! * [`terminal`]: a terminal of any dialect as a
//!   [`crate::satellite::bearer::Bearer`]: probing the dialect, the card, one message
//!   per service interval, refusals and their waits, long text in parts.

pub mod bd1;
pub mod bds3;
pub mod nmea;
pub mod payload;
pub mod terminal;
