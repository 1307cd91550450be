//! RTP and RTCP as sans-IO cores.
//!
//! Every type here is driven the same way:
//!
//! 1. feed it what arrived ([`packet::RtpHeader::parse`] for a datagram, an RTCP compound
//!    for [`rtcp::parse_compound`]) together with the instant it arrived;
//! 2. drain what it wants sent or played ([`jitter::JitterBuffer::poll`],
//!    [`session::RtcpSchedule::poll`]);
//! 3. sleep until the deadline it returns, then go back to 1.
//!
//! Time is always a [`std::time::Instant`] given by the caller, so every timer can be
//! tested with a fake clock, and wall-clock time for RTCP comes from an [`ntp::NtpAnchor`]
//! taken once at start-up.

pub mod g711;
pub mod jitter;
pub mod ntp;
pub mod opus;
pub mod packet;
pub mod packetizer;
pub mod payload;
pub mod rewrite;
pub mod rtcp;
pub mod seq;
pub mod session;
pub mod stats;
