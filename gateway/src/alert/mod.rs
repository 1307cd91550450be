//! Alerts: from a CAP message or a typed form to sound at the loudspeakers.
//!
//! * [`cap`]: CAP 1.1 and 1.2 parsed with a real XML library and checked against the
//!   standard alone (OASIS CAP-V1.2 §3), every fault named with its element path.

pub mod cap;
