//! Radios on their accessory ports: a 370 MHz PDT terminal joined by its receive and
//! transmit audio, a PTT input and a carrier (COS) output.
//!
//! * [`ptt`]: the transmit side's timing: TX lead for the trunked channel grant, hang
//!   time between overs, the time-out timer.
//! * [`carrier`]: the receive side: COS, VOX, or both; blips ignored; audio delayed
//!   behind the decision so the first syllable survives and the squelch tail does not.
//! * [`port`]: both sides of one radio, half duplex, with DTMF digits picked out of
//!   what it hears.
//! * [`ptt_switch`]: what keys the transmitter (an RTS or DTR line, a CM108 GPIO pin,
//!   a command) and the safety net that releases it on every exit path the process
//!   sees.
//! * [`command`]: command templates for PTT and talkgroup selection.
//! * [`external`]: the wire format of the external backend, which owns a radio's lines
//!   and audio where the machine has no serial lines or sound card.
//!
//! Everything but [`ptt_switch`] and [`external_link`] is sans-IO: timers are driven by the `now` the caller
//! passes, and the next deadline is asked for.

pub mod carrier;
pub mod command;
pub mod external;
pub mod external_link;
pub mod port;
pub mod ptt;
pub mod ptt_switch;
