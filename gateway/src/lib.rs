//! The emcomm daemon: one node of the district → street → village cascade.
//!
//! * [`alert`]: alerts from intake (CAP, typed forms) to the sound they make.
//! * [`api`]: the control API (HTTP/JSON) and its operators.
//! * [`cascade`]: frames between the nodes of the cascade, their fragments and their
//!   authentication.
//! * [`cli`]: the operator's commands other than running the daemon.
//! * [`config`]: the node's TOML configuration, validated with located errors.
//! * [`durable`]: SQLite opened so that a commit is on disk when it returns.
//! * [`voice`]: the voice path: programme sources, encoding, the forwarding core.
//! * [`patch`]: talkgroup patching: the patch bus, floor control, DTMF commands.
//! * [`satellite`]: satellite terminals' outbox and inbox, and their sessions.
//! * [`node`]: the tokio tasks that move bytes between sockets and the cores.
#![forbid(unsafe_code)]

pub mod alert;
pub mod api;
pub mod cascade;
pub mod cli;
pub mod config;
pub mod durable;
pub mod node;
pub mod patch;
pub mod satellite;
pub mod voice;
