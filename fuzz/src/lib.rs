//! What the emcomm fuzz targets share: a reader that turns fuzz bytes into a program,
//! and the byte layouts of the programs that drive the sans-IO cores.
//!
//! The targets for the wire parsers take the fuzz input as one datagram. The targets for
//! the jitter buffer and the forwarder read it as a sequence of operations instead; the
//! layouts are written down here, once, so that the seed generator
//! (`examples/seeds.rs`) and the targets cannot drift apart.
//!
//! [`Bytes`] never fails: a read past the end yields zeros, so every input, however
//! short or odd, decodes to some program and no execution is spent on framing errors.

/// A cursor over fuzz input.
#[derive(Debug, Clone)]
pub struct Bytes<'a> {
    rest: &'a [u8],
}

impl<'a> Bytes<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Bytes { rest: data }
    }

    pub fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    pub fn u8(&mut self) -> u8 {
        let [first, rest @ ..] = self.rest else {
            return 0;
        };
        self.rest = rest;
        *first
    }

    /// Big-endian, as on the wire.
    pub fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.u8(), self.u8()])
    }

    /// Big-endian, as on the wire.
    pub fn u32(&mut self) -> u32 {
        u32::from_be_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }

    /// Up to `len` bytes: fewer when the input ends first.
    pub fn take(&mut self, len: usize) -> &'a [u8] {
        let (head, rest) = self.rest.split_at(len.min(self.rest.len()));
        self.rest = rest;
        head
    }
}

/// The program of the `jitter_buffer` target.
///
/// ```text
/// variant:u8  op*
/// variant     bit 0: 0 = Opus (48 kHz, FEC), 1 = G.711 (8 kHz, no FEC)
///             bit 1: 1 = a capacity of SMALL_CAPACITY packets, to reach overflow
/// op          INSERT      sequence:u16 timestamp:u32 duration:u16 payload_len:u8
///             INSERT_NEXT sequence_step:i8 timestamp_jitter:i8 payload_len:u8
///                         (the packet after the last inserted one, `sequence_step`
///                         frames on, its timestamp moved by `timestamp_jitter` units)
///             ADVANCE     milliseconds:u8 (taken modulo MAX_ADVANCE_MS + 1)
///             POLL        (drains every slot that is due)
/// ```
/// The opcode is taken modulo [`jitter::OPS`].
pub mod jitter {
    pub const INSERT: u8 = 0;
    pub const INSERT_NEXT: u8 = 1;
    pub const ADVANCE: u8 = 2;
    pub const POLL: u8 = 3;
    pub const OPS: u8 = 4;

    pub const VARIANT_G711: u8 = 0b01;
    pub const VARIANT_SMALL: u8 = 0b10;

    pub const SMALL_CAPACITY: usize = 4;
    pub const MAX_ADVANCE_MS: u8 = 200;
    /// Longest packet inserted, in timestamp units: 120 ms of Opus, the most RFC 6716
    /// allows in one packet.
    pub const MAX_DURATION: u16 = 5760;
}

/// The program of the `forwarder` target: a sequence of records.
///
/// ```text
/// record  kind:u8 advance_ms:u8 len:u16 datagram[len]
/// kind    (kind % 3): RTP, RTCP or TIMER (no datagram is fed, the timers run)
///         (kind / 3 % 3): the source address, one of SOURCES
/// ```
/// After each record the fake clock advances by `advance_ms` and the forwarder's
/// timers are polled.
pub mod forwarder {
    use std::net::{IpAddr, Ipv4Addr, SocketAddr};

    pub const RTP: u8 = 0;
    pub const RTCP: u8 = 1;
    pub const TIMER: u8 = 2;
    pub const FEEDS: u8 = 3;

    /// The allowed upstream on its RTP port, the same host on another port, and a host
    /// that is not allowed.
    pub const SOURCES: [SocketAddr; 3] = [
        SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1)), 40_000),
        SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1)), 40_001),
        SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 9, 8, 7)), 5_000),
    ];

    /// Payload type the forwarder under test takes for Opus.
    pub const OPUS_PAYLOAD_TYPE: u8 = 111;

    /// One record, as the target reads it.
    pub fn record(feed: u8, source: u8, advance_ms: u8, datagram: &[u8]) -> Vec<u8> {
        let len = u16::try_from(datagram.len()).unwrap_or(u16::MAX);
        let mut out = vec![feed + FEEDS * source, advance_ms];
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&datagram[..usize::from(len)]);
        out
    }
}

/// What the cascade targets share: the keys the seeds are sealed with, and the program
/// of the `cascade_reassembly` target.
///
/// ```text
/// timeout_s:u8 max_frames:u8 max_bytes:u16  record*
/// record   op:u8 advance_s:u8 len:u8 bytes[len]
/// op       (op % OPS) RAW: `bytes` pushed as a message from the bearer
///                     FRAGMENT: `bytes` = key count index piece…, pushed as a fragment
///                     under key % KEYS with count 1 + count % MAX_COUNT
///                     EXPIRE: the reassembler's expire at the current time
/// ```
/// The reassembler's timeout is 1 + `timeout_s` seconds, its caps 1 + `max_frames % 8`
/// frames and 1 + `max_bytes % 2048` bytes.
pub mod cascade {
    pub const RAW: u8 = 0;
    pub const FRAGMENT: u8 = 1;
    pub const EXPIRE: u8 = 2;
    pub const OPS: u8 = 3;

    /// Few keys, so that fragments of different frames meet under one.
    pub const KEYS: u8 = 4;
    pub const MAX_COUNT: u8 = 6;

    /// The link the `cascade_frame` target receives over, and its key.
    pub const LINK: &str = "fuzz link";
    pub const LINK_KEY: [u8; 32] = [0x42; 32];
    /// The SEC1 public key of the private key 0x1111…11 that signs the seeds.
    pub const SEED_PUBLIC_KEY: &str = "04852611f744af045689dcfbf4c0437730d2d2de332ab7f0fc02769c5fab8a89437d9384f19ab882ed668a28936db92475aa79aef8690ee36f6fb77c69b9b571f8";
    /// The time the `cascade_frame` target accepts at: 2025-07-01T08:00:10Z, inside the
    /// seeds' validity windows.
    pub const NOW: u32 = 1_751_356_810;
}
