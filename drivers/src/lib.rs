//! Wire protocols and devices of emcomm.
//!
//! * [`rtp`]: RTP and RTCP (RFC 3550, RFC 3551, RFC 7587) as sans-IO cores: packet
//!   views, packetisers, receiver statistics, the adaptive jitter buffer, stream
//!   rewriting for forwarding, and RTCP reports.
//! * [`net`]: the socket side of RTP that is worth its own code: fan-out of one
//!   datagram to many destinations with `sendmmsg(2)`.
//! * [`audio`]: sound cards through cpal, with errors an operator can act on.
//! * [`serial`]: serial ports opened without keying a radio, and their modem lines.
//! * [`radio`]: radios on accessory ports: PTT timing, carrier detection, DTMF, the
//!   switches that key a transmitter, and the external backend's wire format.
//! * [`satellite`]: satellite terminals: BeiDou RDSS sentences and message payloads.
//!
//! Nothing in [`rtp`], in [`radio`]'s cores or in [`satellite`] touches a socket or a
//! clock: the caller passes bytes and `now` and asks when to call again.
#![forbid(unsafe_code)]

pub mod audio;
pub mod net;
pub mod radio;
pub mod rtp;
pub mod satellite;
pub mod serial;
