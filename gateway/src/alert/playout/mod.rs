//! Making alerts into sound at the node that originates the voice stream.
//!
//! * [`schedule`]: which alert plays on which output, and when (sans-IO).
//! * [`receipts`]: which loudspeakers played, from their RTCP receiver reports.
//! * [`programme`]: the sound of one play: attention signal, then speech.

pub mod programme;
pub mod receipts;
pub mod schedule;

/// What the control API tells playout after a change it has made durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// The alert was stored, confirmed or updated: read it and schedule it.
    Changed(i64),
    /// The alert was cancelled: stop it everywhere.
    Cancelled(i64),
}
