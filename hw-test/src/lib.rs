//! `emcomm-bench`: the technician's bench tool and the device simulators.
//!
//! * [`speaker_sim`]: an IP loudspeaker in software, with jitter buffer, RTCP and a
//!   WAV recording of what it heard.
//! * [`demo`]: the bench cascade that runs district, street and loudspeaker processes
//!   and judges what every loudspeaker heard.
//! * [`demo_alerts`]: the alert cascade: alerts through the district's control API to
//!   six loudspeakers behind two streets, and their receipts back up.
//! * [`demo_radio`]: the radio demo: three simulated radios patched at a street gateway,
//!   a call and the dispatcher's answer judged on every talkgroup, PTT released at stop.
//! * [`radio_sim`]: a radio on the gateway's external line backend: receive audio
//!   and COS from a schedule, transmit audio to a file, every line change logged.
//! * [`sat_sim`]: satellite terminals on a pseudo-terminal (BeiDou in its three
//!   dialects, Iridium SBD, SMS modems), with service intervals, refusals and pairing.
//! * [`faults`]: a UDP relay that loses, duplicates, delays and cuts, for tests of what
//!   crosses a bad network.
//! * [`netns`]: test hosts in network namespaces joined by veth pairs, links cut and
//!   healed.
//! * [`terminal`]: the technician's tools for satellite terminals: probe, send, listen.
//! * [`bench`]: the benchmarks behind `docs/performance.md`.
//! * [`replay`]: RTP captures: reading, replaying through the jitter buffer, recording.
//! * [`process`]: starting, watching and stopping the processes of a bench set-up.
#![forbid(unsafe_code)]

pub mod bench;
pub mod demo;
pub mod demo_alerts;
pub mod demo_radio;
pub mod faults;
pub mod netns;
pub mod process;
pub mod radio_sim;
pub mod replay;
pub mod sat_sim;
pub mod speaker_sim;
pub mod terminal;
