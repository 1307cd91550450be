//! `emcomm-bench`: the technician's bench tool and the device simulators.
//!
//! * [`speaker_sim`]: an IP loudspeaker in software, with jitter buffer, RTCP and a
//!   WAV recording of what it heard.
//! * [`demo`]: the bench cascade that runs district, street and loudspeaker processes
//!   and judges what every loudspeaker heard.
#![forbid(unsafe_code)]

pub mod demo;
pub mod speaker_sim;
