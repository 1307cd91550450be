//! Wire protocols and devices of emcomm.
//!
//! * [`rtp`]: RTP and RTCP (RFC 3550, RFC 3551, RFC 7587) as sans-IO cores: packet
//!   views, packetisers, receiver statistics, the adaptive jitter buffer, stream
//!   rewriting for forwarding, and RTCP reports.
//! * [`net`]: the socket side of RTP that is worth its own code: fan-out of one
//!   datagram to many destinations with `sendmmsg(2)`.
//! * [`audio`]: sound cards through cpal, with errors an operator can act on.
//!
//! Nothing in [`rtp`] touches a socket or a clock: the caller passes bytes and `now`
//! and asks when to call again.
#![forbid(unsafe_code)]

pub mod audio;
pub mod net;
pub mod rtp;
