//! The emcomm daemon: one node of the district → street → village cascade.
//!
//! * [`config`]: the node's TOML configuration, validated with located errors.
//! * [`voice`]: the voice path: programme sources, encoding, the forwarding core.
//! * [`node`]: the tokio tasks that move bytes between sockets and the cores.
#![forbid(unsafe_code)]

pub mod config;
pub mod node;
pub mod voice;
