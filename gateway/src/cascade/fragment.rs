//! Fragments: a sealed frame split across the messages of a narrow bearer, and the
//! reassembler that joins them again.
//!
//! A frame that fits one message goes as it is. A longer one is cut into fragments,
//! each a [`HEADER_BYTES`]-byte header and a piece of the frame:
//!
//! ```text
//! marker 0x81 | key u32 | index u8 | count u8 | piece
//! ```
//!
//! The key is the first four bytes of SM3 over the whole frame, so every copy of one
//! frame is cut the same way under the same key, and the reassembler can check the
//! joined bytes against it. The marker's top bit tells a fragment from a frame (whose
//! first byte, its version, is below 0x80).
//!
//! The [`Reassembler`] is sans-IO: the caller passes each message with the current
//! instant, calls [`Reassembler::expire`] at [`Reassembler::next_deadline`], and hands
//! what completes to the acceptance check. Fragments are not authenticated; the frame
//! they make is. So the reassembler only keeps its promises about memory and order:
//!
//! * a frame completes once all its fragments are in, in any order; a repeated fragment
//!   is ignored;
//! * a fragment that disagrees with those held under its key (another count, other
//!   bytes at the same index) is dropped, and a joined frame that does not match its
//!   key is dropped;
//! * a frame still incomplete `timeout` after its first fragment is dropped;
//! * at most `max_frames` frames are in progress and `max_bytes` bytes held; to make
//!   room the oldest frame in progress is evicted. All of these are counted.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use sm3::{Digest, Sm3};
use thiserror::Error;

/// The first byte of a fragment.
pub const MARKER: u8 = 0x81;

/// Bytes of a fragment's header: marker, key, index, count.
pub const HEADER_BYTES: usize = 7;

/// The most fragments one frame may be cut into (a one-byte count).
pub const MAX_FRAGMENTS: usize = 255;

/// Bytes of a BeiDou short message on a common civil card (628 bits, comm level 3).
pub const BEIDOU_MESSAGE: usize = 78;
/// Bytes of an Iridium SBD mobile-originated message (9602/9603).
pub const IRIDIUM_MO_MESSAGE: usize = 340;
/// Bytes of an Iridium SBD mobile-terminated message.
pub const IRIDIUM_MT_MESSAGE: usize = 270;
/// Bytes of an 8-bit SMS without a user data header (3GPP TS 23.040).
pub const SMS_8BIT_MESSAGE: usize = 140;

/// Why a frame cannot be cut for a bearer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum FragmentError {
    #[error("a message of {0} bytes has no room after the {HEADER_BYTES}-byte fragment header")]
    MessageTooSmall(usize),
    #[error("{frame} bytes need more than {MAX_FRAGMENTS} fragments of {message} bytes")]
    FrameTooLarge { frame: usize, message: usize },
}

/// How many messages carry a frame of `frame_bytes` over a bearer whose message holds
/// `message_bytes`, and the frame bytes each fragment holds (`None` when one message
/// carries it whole).
fn pieces(frame_bytes: usize, message_bytes: usize) -> Result<(u8, Option<usize>), FragmentError> {
    if frame_bytes <= message_bytes {
        return Ok((1, None));
    }
    let piece = message_bytes
        .checked_sub(HEADER_BYTES)
        .filter(|p| *p > 0)
        .ok_or(FragmentError::MessageTooSmall(message_bytes))?;
    let count =
        u8::try_from(frame_bytes.div_ceil(piece)).map_err(|_| FragmentError::FrameTooLarge {
            frame: frame_bytes,
            message: message_bytes,
        })?;
    Ok((count, Some(piece)))
}

/// How many messages [`fragment`] would make of a frame of `frame_bytes`.
pub fn fragment_count(frame_bytes: usize, message_bytes: usize) -> Result<usize, FragmentError> {
    pieces(frame_bytes, message_bytes).map(|(count, _)| usize::from(count))
}

/// The messages that carry `frame` over a bearer whose message holds `message_bytes`.
pub fn fragment(frame: &[u8], message_bytes: usize) -> Result<Vec<Vec<u8>>, FragmentError> {
    let (count, Some(piece)) = pieces(frame.len(), message_bytes)? else {
        return Ok(vec![frame.to_vec()]);
    };
    let pieces = frame.chunks(piece);
    let key = frame_key(frame);
    Ok(pieces
        .enumerate()
        .map(|(index, piece)| {
            let mut message = Vec::with_capacity(HEADER_BYTES + piece.len());
            message.push(MARKER);
            message.extend_from_slice(&key.to_be_bytes());
            message.push(index as u8);
            message.push(count);
            message.extend_from_slice(piece);
            message
        })
        .collect())
}

/// The key fragments of `frame` carry: SM3 of it, first four bytes.
pub fn frame_key(frame: &[u8]) -> u32 {
    let digest = Sm3::digest(frame);
    let mut first = [0; 4];
    for (f, d) in first.iter_mut().zip(digest.iter()) {
        *f = *d;
    }
    u32::from_be_bytes(first)
}

/// A fragment's header and piece, read from a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fragment<'a> {
    pub key: u32,
    pub index: u8,
    pub count: u8,
    pub piece: &'a [u8],
}

/// Reads a message that starts with [`MARKER`]; `None` if it is not a well-formed
/// fragment (too short, no piece, an index not below the count).
pub fn read_fragment(message: &[u8]) -> Option<Fragment<'_>> {
    let [MARKER, k0, k1, k2, k3, index, count, piece @ ..] = message else {
        return None;
    };
    if piece.is_empty() || index >= count {
        return None;
    }
    Some(Fragment {
        key: u32::from_be_bytes([*k0, *k1, *k2, *k3]),
        index: *index,
        count: *count,
        piece,
    })
}

/// The reassembler's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReassemblyConfig {
    /// How long a frame may stay incomplete after its first fragment.
    pub timeout: Duration,
    /// Frames in progress at once.
    pub max_frames: usize,
    /// Bytes of pieces held at once.
    pub max_bytes: usize,
}

impl Default for ReassemblyConfig {
    /// Room for a few long alerts over BeiDou, one message a minute: a frame of 15
    /// fragments takes a quarter of an hour.
    fn default() -> Self {
        ReassemblyConfig {
            timeout: Duration::from_secs(30 * 60),
            max_frames: 16,
            max_bytes: 64 * 1024,
        }
    }
}

/// What became of one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pushed {
    /// A whole frame: one that came unfragmented, or the last fragment of one.
    Complete(Vec<u8>),
    /// Held; the frame under `key` has `have` of its `count` fragments.
    Pending { key: u32, have: u8, count: u8 },
    /// A fragment already held, ignored.
    Duplicate { key: u32, index: u8 },
    /// Dropped, for the reason given.
    Discarded(Discard),
}

/// Why a message or a frame in progress was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Discard {
    /// Marked as a fragment but not one (too short, no piece, index not below count).
    Malformed,
    /// Its count differs from the count of the fragments held under its key.
    CountDisagrees { key: u32, held: u8, given: u8 },
    /// Other bytes than the fragment held at the same index.
    BytesDisagree { key: u32, index: u8 },
    /// The joined frame does not match its key; the whole frame is dropped.
    KeyMismatch { key: u32 },
    /// A piece larger than all the room the reassembler has.
    TooLarge { key: u32, bytes: usize },
}

/// What the reassembler has done, as counters that only grow.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReassemblyStats {
    pub whole: u64,
    pub completed: u64,
    pub duplicates: u64,
    pub malformed: u64,
    pub disagreeing: u64,
    pub key_mismatches: u64,
    pub too_large: u64,
    /// Frames dropped incomplete after the timeout.
    pub expired: u64,
    /// Frames dropped incomplete to make room.
    pub evicted: u64,
}

#[derive(Debug)]
struct Partial {
    count: u8,
    first_seen: Instant,
    /// Tells apart frames first seen at the same instant: lower is older.
    arrival: u64,
    pieces: Vec<Option<Vec<u8>>>,
    have: u8,
    bytes: usize,
}

/// Joins fragments into frames, within bounded memory.
#[derive(Debug)]
pub struct Reassembler {
    config: ReassemblyConfig,
    partials: BTreeMap<u32, Partial>,
    held_bytes: usize,
    arrivals: u64,
    stats: ReassemblyStats,
}

impl Reassembler {
    pub fn new(config: ReassemblyConfig) -> Reassembler {
        Reassembler {
            config,
            partials: BTreeMap::new(),
            held_bytes: 0,
            arrivals: 0,
            stats: ReassemblyStats::default(),
        }
    }

    pub fn stats(&self) -> ReassemblyStats {
        self.stats
    }

    /// Frames in progress.
    pub fn in_progress(&self) -> usize {
        self.partials.len()
    }

    /// Bytes of pieces held.
    pub fn held_bytes(&self) -> usize {
        self.held_bytes
    }

    /// When the oldest frame in progress times out: call [`Reassembler::expire`] then.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.partials
            .values()
            .map(|p| p.first_seen + self.config.timeout)
            .min()
    }

    /// Drops every frame in progress whose time is up at `now`; returns their keys.
    pub fn expire(&mut self, now: Instant) -> Vec<u32> {
        let timeout = self.config.timeout;
        let due: Vec<u32> = self
            .partials
            .iter()
            .filter(|(_, p)| now.saturating_duration_since(p.first_seen) >= timeout)
            .map(|(key, _)| *key)
            .collect();
        for key in &due {
            self.remove(*key);
            self.stats.expired += 1;
        }
        due
    }

    /// Takes one message from the bearer at `now`.
    pub fn push(&mut self, message: &[u8], now: Instant) -> Pushed {
        self.expire(now);
        if message.first() != Some(&MARKER) {
            self.stats.whole += 1;
            return Pushed::Complete(message.to_vec());
        }
        let Some(fragment) = read_fragment(message) else {
            self.stats.malformed += 1;
            return Pushed::Discarded(Discard::Malformed);
        };
        let key = fragment.key;

        if let Some(partial) = self.partials.get(&key) {
            if partial.count != fragment.count {
                self.stats.disagreeing += 1;
                return Pushed::Discarded(Discard::CountDisagrees {
                    key,
                    held: partial.count,
                    given: fragment.count,
                });
            }
            if let Some(Some(held)) = partial.pieces.get(usize::from(fragment.index)) {
                if held.as_slice() == fragment.piece {
                    self.stats.duplicates += 1;
                    return Pushed::Duplicate {
                        key,
                        index: fragment.index,
                    };
                }
                self.stats.disagreeing += 1;
                return Pushed::Discarded(Discard::BytesDisagree {
                    key,
                    index: fragment.index,
                });
            }
        }

        let bytes = fragment.piece.len();
        if !self.make_room(key, bytes) {
            self.stats.too_large += 1;
            return Pushed::Discarded(Discard::TooLarge { key, bytes });
        }
        self.hold(fragment, now)
    }

    /// Evicts the oldest other frames until a piece of `bytes` for `key` fits, and a
    /// new frame has a place; false if even then it does not fit.
    fn make_room(&mut self, key: u32, bytes: usize) -> bool {
        let is_new = !self.partials.contains_key(&key);
        loop {
            let frames_full = is_new && self.partials.len() >= self.config.max_frames;
            let bytes_full = self.held_bytes + bytes > self.config.max_bytes;
            if !frames_full && !bytes_full {
                return true;
            }
            let oldest = self
                .partials
                .iter()
                .filter(|(k, _)| **k != key)
                .min_by_key(|(_, p)| (p.first_seen, p.arrival))
                .map(|(k, _)| *k);
            let Some(oldest) = oldest else {
                return false;
            };
            self.remove(oldest);
            self.stats.evicted += 1;
        }
    }

    fn hold(&mut self, fragment: Fragment<'_>, now: Instant) -> Pushed {
        let key = fragment.key;
        self.arrivals += 1;
        let arrival = self.arrivals;
        let partial = self.partials.entry(key).or_insert_with(|| Partial {
            count: fragment.count,
            first_seen: now,
            arrival,
            pieces: vec![None; usize::from(fragment.count)],
            have: 0,
            bytes: 0,
        });
        if let Some(slot) = partial.pieces.get_mut(usize::from(fragment.index)) {
            *slot = Some(fragment.piece.to_vec());
            partial.have += 1;
            partial.bytes += fragment.piece.len();
            self.held_bytes += fragment.piece.len();
        }
        if partial.have < partial.count {
            return Pushed::Pending {
                key,
                have: partial.have,
                count: partial.count,
            };
        }

        let frame: Vec<u8> = partial.pieces.iter().flatten().flatten().copied().collect();
        self.remove(key);
        if frame_key(&frame) != key {
            self.stats.key_mismatches += 1;
            return Pushed::Discarded(Discard::KeyMismatch { key });
        }
        self.stats.completed += 1;
        Pushed::Complete(frame)
    }

    fn remove(&mut self, key: u32) {
        if let Some(partial) = self.partials.remove(&key) {
            self.held_bytes -= partial.bytes;
        }
    }
}

#[cfg(test)]
mod tests;
