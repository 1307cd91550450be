//! Satellite terminals in the daemon: what is kept of their messages, and what a
//! terminal does when its device comes and goes.
//!
//! * [`outbox`]: the messages accepted for each terminal and the ones it received, in
//!   SQLite, durable before the API answers.
//! * [`session`]: one terminal's bearer across openings of its port, sans-IO: the
//!   re-open backoff, and every accepted message not yet sent given to each new bearer.
//!
//! The tasks that move the bytes are in [`crate::node`]; the bearer cores in
//! `drivers::satellite`.

pub mod outbox;
pub mod session;
