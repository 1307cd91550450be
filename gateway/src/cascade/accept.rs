//! The check a node runs on every frame it receives, before anything acts on it.
//!
//! [`Acceptor::accept`] takes the received bytes, the link they came over and the
//! node's time, and either accepts the frame or refuses it with a [`Refusal`] an
//! operator can read. In this order:
//!
//! 1. the bytes decode as a frame;
//! 2. its origin is a node this node has keys for;
//! 3. it is authentic: the origin's SM2 signature, or the HMAC-SM3 tag of the link it
//!    came over;
//! 4. its sequence number is not one already accepted from that origin with other
//!    content, nor below the replay window; an authentic second copy of a frame
//!    already accepted (the same alert over another bearer) is
//!    [`Accepted::Duplicate`], which is not an error but must not be acted on again;
//! 5. the node's time lies inside the frame's validity window, widened by the
//!    allowed clock skew at both ends.
//!
//! Nothing is remembered of a refused frame. A frame accepted as new changes the
//! [`ReplayState`]: the caller stores it durably before acting on the frame.
//!
//! A node whose own clock is wrong would refuse every frame as not yet valid or as
//! expired. [`clock_check`] compares the clock with a trusted time (NTP, a BeiDou
//! terminal) so the caller can say so loudly.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sm3::{Digest, Sm3};
use thiserror::Error;

use super::auth::{authenticated_part, verify_signature, verify_tag};
use super::frame::{Frame, FrameError, Kind, Timestamp, Trailer, decode};
use super::keys::{LinkKey, NodePublicKey};
use super::replay::{Fingerprint, ReplayState, Seen};
use crate::alert::model::AreaCode;

/// The keys a node verifies with. More than one key for an origin or a link is a
/// rotation in progress: any of them verifies.
#[derive(Debug, Clone, Default)]
pub struct Keyring {
    origins: HashMap<AreaCode, Vec<NodePublicKey>>,
    links: HashMap<String, Vec<LinkKey>>,
}

impl Keyring {
    /// Trusts `key` for frames that `origin` signs; `origin` becomes a known origin.
    pub fn add_origin(&mut self, origin: AreaCode, key: NodePublicKey) {
        self.origins.entry(origin).or_default().push(key);
    }

    /// Trusts `key` for tags on frames that arrive over `link`.
    pub fn add_link(&mut self, link: &str, key: LinkKey) {
        self.links.entry(link.to_string()).or_default().push(key);
    }

    pub fn knows(&self, origin: &AreaCode) -> bool {
        self.origins.contains_key(origin)
    }
}

/// The node's acceptance settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AcceptConfig {
    /// How far the node's clock and the origin's may differ.
    pub skew: Duration,
    /// Sequence numbers remembered per origin below the highest accepted; older
    /// numbers are refused.
    pub replay_window: u32,
}

impl Default for AcceptConfig {
    fn default() -> Self {
        AcceptConfig {
            skew: Duration::from_secs(30),
            replay_window: 1024,
        }
    }
}

/// A frame that passed the check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Accepted {
    /// New: act on it (after storing the replay state).
    New(Frame),
    /// An authentic copy of a frame already accepted; drop it.
    Duplicate {
        origin: AreaCode,
        sequence: u32,
        kind: Kind,
    },
}

/// Why a frame was refused, for the operator's log.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Refusal {
    #[error("not a frame: {0}")]
    Malformed(#[from] FrameError),
    #[error("{kind} from unknown origin {origin}")]
    UnknownOrigin { origin: AreaCode, kind: Kind },
    #[error("{kind} {sequence} from {origin}: the SM2 signature does not verify")]
    BadSignature {
        origin: AreaCode,
        sequence: u32,
        kind: Kind,
    },
    #[error("{kind} {sequence} from {origin}: no link key for link {link:?}")]
    NoLinkKey {
        origin: AreaCode,
        sequence: u32,
        kind: Kind,
        link: String,
    },
    #[error("{kind} {sequence} from {origin}: the HMAC-SM3 tag of link {link:?} does not verify")]
    BadTag {
        origin: AreaCode,
        sequence: u32,
        kind: Kind,
        link: String,
    },
    #[error("{kind} {sequence} from {origin}: sequence number already used for other content")]
    SequenceReused {
        origin: AreaCode,
        sequence: u32,
        kind: Kind,
    },
    #[error(
        "{kind} {sequence} from {origin}: replayed or too old (lowest number still accepted {lowest})"
    )]
    Replayed {
        origin: AreaCode,
        sequence: u32,
        kind: Kind,
        lowest: u32,
    },
    #[error(
        "{kind} {sequence} from {origin}: not valid before {valid_from}, now {now} (skew {skew_s} s)"
    )]
    NotYetValid {
        origin: AreaCode,
        sequence: u32,
        kind: Kind,
        valid_from: Timestamp,
        now: Timestamp,
        skew_s: u64,
    },
    #[error(
        "{kind} {sequence} from {origin}: expired at {valid_until}, now {now} (skew {skew_s} s)"
    )]
    Expired {
        origin: AreaCode,
        sequence: u32,
        kind: Kind,
        valid_until: Timestamp,
        now: Timestamp,
        skew_s: u64,
    },
    #[error("the node's clock reads {0}, outside what a frame can carry")]
    ClockOutOfRange(DateTime<Utc>),
}

impl Refusal {
    /// A short name of the reason, for a log field or a counter.
    pub fn reason(&self) -> &'static str {
        match self {
            Refusal::Malformed(_) => "malformed",
            Refusal::UnknownOrigin { .. } => "unknown_origin",
            Refusal::BadSignature { .. } => "bad_signature",
            Refusal::NoLinkKey { .. } => "no_link_key",
            Refusal::BadTag { .. } => "bad_tag",
            Refusal::SequenceReused { .. } => "sequence_reused",
            Refusal::Replayed { .. } => "replayed",
            Refusal::NotYetValid { .. } => "not_yet_valid",
            Refusal::Expired { .. } => "expired",
            Refusal::ClockOutOfRange(_) => "clock_out_of_range",
        }
    }
}

/// The acceptance check of one node: its keys, its settings, its replay memory.
#[derive(Debug, Clone)]
pub struct Acceptor {
    keys: Keyring,
    config: AcceptConfig,
    replay: ReplayState,
}

impl Acceptor {
    /// Starts from the replay state stored last (`ReplayState::default()` the first
    /// time).
    pub fn new(keys: Keyring, config: AcceptConfig, replay: ReplayState) -> Acceptor {
        Acceptor {
            keys,
            config,
            replay,
        }
    }

    /// The state to store after a frame is accepted as new.
    pub fn replay_state(&self) -> &ReplayState {
        &self.replay
    }

    /// Checks `bytes`, received over `link`, at the node's time `now`.
    pub fn accept(
        &mut self,
        bytes: &[u8],
        link: &str,
        now: DateTime<Utc>,
    ) -> Result<Accepted, Refusal> {
        let frame = decode(bytes)?;
        let header = &frame.header;
        let (origin, sequence, kind) = (header.origin.clone(), header.sequence, frame.kind());

        let Some(public_keys) = self.keys.origins.get(&origin) else {
            return Err(Refusal::UnknownOrigin { origin, kind });
        };
        let authenticated = authenticated_part(&frame, bytes);
        match &frame.trailer {
            Trailer::Sm2(signature) => {
                if !verify_signature(public_keys, authenticated, signature) {
                    return Err(Refusal::BadSignature {
                        origin,
                        sequence,
                        kind,
                    });
                }
            }
            Trailer::Hmac { .. } => {
                let link = link.to_string();
                let Some(link_keys) = self.keys.links.get(&link) else {
                    return Err(Refusal::NoLinkKey {
                        origin,
                        sequence,
                        kind,
                        link,
                    });
                };
                if !verify_tag(link_keys, authenticated, frame.trailer.tag()) {
                    return Err(Refusal::BadTag {
                        origin,
                        sequence,
                        kind,
                        link,
                    });
                }
            }
        }

        // Validity first: an expired copy is refused as expired, duplicate or not.
        let now_ts = Timestamp::from_datetime(now).ok_or(Refusal::ClockOutOfRange(now))?;
        let skew_s = self.config.skew.as_secs();
        let skew = i64::try_from(skew_s).unwrap_or(i64::MAX);
        let now_s = i64::from(now_ts.seconds());
        if now_s.saturating_add(skew) < i64::from(header.valid_from.seconds()) {
            return Err(Refusal::NotYetValid {
                origin,
                sequence,
                kind,
                valid_from: header.valid_from,
                now: now_ts,
                skew_s,
            });
        }
        if now_s.saturating_sub(skew) > i64::from(header.valid_until.seconds()) {
            return Err(Refusal::Expired {
                origin,
                sequence,
                kind,
                valid_until: header.valid_until,
                now: now_ts,
                skew_s,
            });
        }

        // Acknowledgements and heartbeats carry sequence 0 and stand outside the replay
        // window: their short validity bounds a replay, and they must not push the window
        // past the frames still being retried.
        if matches!(kind, Kind::Acknowledgement | Kind::Heartbeat) {
            return Ok(Accepted::New(frame));
        }
        let fingerprint = fingerprint(authenticated);
        let window = self.config.replay_window;
        match self.replay.check(&origin, sequence, fingerprint, window) {
            Seen::New => {}
            Seen::Duplicate => {
                return Ok(Accepted::Duplicate {
                    origin,
                    sequence,
                    kind,
                });
            }
            Seen::Reused => {
                return Err(Refusal::SequenceReused {
                    origin,
                    sequence,
                    kind,
                });
            }
            Seen::BelowWindow { lowest } => {
                return Err(Refusal::Replayed {
                    origin,
                    sequence,
                    kind,
                    lowest,
                });
            }
        }

        self.replay.record(&origin, sequence, fingerprint, window);
        Ok(Accepted::New(frame))
    }
}

/// The first eight bytes of SM3 over a frame's authenticated bytes.
fn fingerprint(authenticated: &[u8]) -> Fingerprint {
    let digest = Sm3::digest(authenticated);
    let mut first = [0; 8];
    for (f, d) in first.iter_mut().zip(digest.iter()) {
        *f = *d;
    }
    u64::from_be_bytes(first)
}

/// How the node's clock stands against a trusted time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "a clock outside the skew must be logged at ERROR"]
pub enum ClockCheck {
    /// Within the skew; `offset_s` is local minus reference.
    Within { offset_s: i64 },
    /// Outside: the node will refuse good frames and may accept stale ones until its
    /// clock is corrected. Log this at ERROR.
    Outside { offset_s: i64, skew_s: u64 },
}

impl fmt::Display for ClockCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ClockCheck::Within { offset_s } => {
                write!(
                    f,
                    "the clock is {} within the allowed skew",
                    describe(offset_s)
                )
            }
            ClockCheck::Outside { offset_s, skew_s } => write!(
                f,
                "the clock is {}, beyond the allowed skew of {skew_s} s: frames will be \
                 refused as not yet valid or expired until the clock is corrected",
                describe(offset_s)
            ),
        }
    }
}

fn describe(offset_s: i64) -> String {
    match offset_s {
        0 => "in step with the reference".to_string(),
        s if s > 0 => format!("{s} s ahead of the reference"),
        s => format!("{} s behind the reference", s.unsigned_abs()),
    }
}

/// Compares the node's clock `local` with `reference`, a time from a trusted source
/// read at the same instant.
pub fn clock_check(local: DateTime<Utc>, reference: DateTime<Utc>, skew: Duration) -> ClockCheck {
    let offset_s = (local - reference).num_seconds();
    let skew_s = skew.as_secs();
    if offset_s.unsigned_abs() > skew_s {
        ClockCheck::Outside { offset_s, skew_s }
    } else {
        ClockCheck::Within { offset_s }
    }
}

#[cfg(test)]
mod tests;
