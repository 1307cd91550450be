//! Talkgroup patching: the bus that joins radio ports, RTP links to other gateways and
//! loudspeaker zones into patches, and the rules that keep it safe on air.
//!
//! * [`floor`]: half-duplex floor control of one patch: first to key holds it, hang
//!   time between overs, priority pre-emption, stuck carriers taken off.
//! * [`bus`]: the patches and their members: who hears whom, one source per member at
//!   a time, no echo back to a source, no loops between patches, simulselect.
//! * [`dtmf`]: patch join and leave commands keyed on a radio's keypad.
//! * [`store`]: live patches kept across restarts.
//! * [`announce`]: alerts spoken on a radio port, ahead of any patch (the cascade's
//!   370 MHz bearer).
//!
//! Everything here but [`store`] is sans-IO: the node feeds carrier and audio events
//! with `now` and carries out what the bus returns.

pub mod announce;
pub mod bus;
pub mod dtmf;
pub mod floor;
pub mod store;

use std::fmt;

use serde::{Deserialize, Serialize};

/// A member's name, as the configuration gives it (a radio port, a link, a zone).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MemberId(pub String);

impl From<&str> for MemberId {
    fn from(name: &str) -> MemberId {
        MemberId(name.to_owned())
    }
}

impl fmt::Display for MemberId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What kind of equipment a member is; it decides which directions it has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MemberKind {
    /// A radio port on one talkgroup: it hears and transmits.
    Radio,
    /// An RTP link to another gateway: voice both ways.
    Link,
    /// A set of loudspeakers: it only plays.
    Zone,
}

impl MemberKind {
    /// Whether audio comes from this member into a patch.
    pub fn is_source(self) -> bool {
        !matches!(self, MemberKind::Zone)
    }
}

/// How a patch routes its members' audio.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(tag = "mode", rename_all = "lowercase")]
pub enum PatchMode {
    /// Every member hears whoever holds the floor.
    #[default]
    Patch,
    /// The console member transmits on every other member at once; what they answer
    /// goes to the console only, so the others stay apart.
    Simulselect { console: MemberId },
}

/// A patch as an operator or the configuration describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PatchSpec {
    pub name: String,
    /// The number keyed on a radio to join or leave the patch.
    pub number: u16,
    pub members: Vec<MemberId>,
    #[serde(flatten)]
    pub mode: PatchMode,
    /// Whether the patch comes from the configuration (and so cannot be removed live).
    #[serde(default)]
    pub permanent: bool,
}
