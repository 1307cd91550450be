//! The cascade frame: one alert, update, cancel, acknowledgement, receipt, field report,
//! heartbeat or stream grant, as it travels between nodes over any bearer.
//!
//! The layout is in `docs/frames.md`. In short, all integers big-endian:
//!
//! ```text
//! version u8 | kind u8 | origin area | sequence u32 | valid_from u32 | valid_until u32
//! | body (by kind) | trailer: scheme u8, tag
//! ```
//!
//! Contract:
//!
//! * [`decode`] takes bytes from any bearer and never panics. It accepts only the
//!   canonical encoding, so a frame it returns encodes back to exactly the bytes it
//!   came from ([`Frame::encode`]); the authenticator relies on that to verify the bytes
//!   that were received, not a re-encoding of them.
//! * A refused frame names what was wrong and the byte offset where the fault starts.
//! * Decoding checks form only. Whether the frame is authentic, fresh and meant for
//!   this node is the acceptance check's business (`cascade::accept`).

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use nom::IResult;
use nom::bytes::complete::take;
use nom::error::{ErrorKind, ParseError};
use nom::number::complete::{be_u8, be_u16, be_u32};
use thiserror::Error;

use crate::alert::model::{AreaCode, Level};

/// The only frame version this node writes and reads.
pub const VERSION: u8 = 1;

/// The largest text or audio reference a length field can carry (15 bits).
pub const MAX_CONTENT_BYTES: usize = 0x7fff;

/// The most targets an alert can name (a one-byte count).
pub const MAX_TARGETS: usize = 255;

/// Bytes of the SM2 signature (r ‖ s, 32 bytes each, GB/T 32918.2).
pub const SIGNATURE_BYTES: usize = 64;

/// Bytes of a full HMAC-SM3 tag (the SM3 digest size, GB/T 32905).
pub const FULL_TAG_BYTES: usize = 32;

/// Seconds since 1970-01-01T00:00:00Z, as a frame carries times. Four bytes last until
/// the year 2106.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub u32);

impl Timestamp {
    /// The time, if it lies between 1970 and 2106.
    pub fn from_datetime(at: DateTime<Utc>) -> Option<Timestamp> {
        u32::try_from(at.timestamp()).ok().map(Timestamp)
    }

    pub fn to_datetime(self) -> DateTime<Utc> {
        DateTime::from_timestamp(i64::from(self.0), 0).unwrap_or_default()
    }

    pub fn seconds(self) -> u32 {
        self.0
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.to_datetime().format("%Y-%m-%dT%H:%M:%SZ"))
    }
}

/// What every frame carries ahead of its body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The node that made the frame, named by its GB/T 2260 area code (one node a
    /// division). Relaying nodes pass it on unchanged.
    pub origin: AreaCode,
    /// Counts the origin's frames, never reused by it; the receiver's replay check
    /// refuses a number it has already seen from this origin.
    pub sequence: u32,
    /// The frame must not be acted on before this time.
    pub valid_from: Timestamp,
    /// Nor after this one: an alert's expiry, a heartbeat's freshness.
    pub valid_until: Timestamp,
}

/// The kind of a frame, as its second byte says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Alert,
    Update,
    Cancel,
    Acknowledgement,
    Receipt,
    FieldReport,
    Heartbeat,
    StreamGrant,
}

impl Kind {
    pub const ALL: [Kind; 8] = [
        Kind::Alert,
        Kind::Update,
        Kind::Cancel,
        Kind::Acknowledgement,
        Kind::Receipt,
        Kind::FieldReport,
        Kind::Heartbeat,
        Kind::StreamGrant,
    ];

    pub fn code(self) -> u8 {
        match self {
            Kind::Alert => 1,
            Kind::Update => 2,
            Kind::Cancel => 3,
            Kind::Acknowledgement => 4,
            Kind::Receipt => 5,
            Kind::FieldReport => 6,
            Kind::Heartbeat => 7,
            Kind::StreamGrant => 8,
        }
    }

    pub fn from_code(code: u8) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.code() == code)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Alert => "alert",
            Kind::Update => "update",
            Kind::Cancel => "cancel",
            Kind::Acknowledgement => "acknowledgement",
            Kind::Receipt => "receipt",
            Kind::FieldReport => "field report",
            Kind::Heartbeat => "heartbeat",
            Kind::StreamGrant => "stream grant",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an alert says: spoken from text at the village node, or played from audio the
/// reference names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    /// UTF-8 text; on the narrow bearers a shortened text.
    Text(String),
    /// The name of recorded audio the receiving node can fetch or already holds.
    Audio(String),
}

impl Content {
    fn code(&self) -> u8 {
        match self {
            Content::Text(_) => 0,
            Content::Audio(_) => 1,
        }
    }

    fn as_str(&self) -> &str {
        match self {
            Content::Text(s) | Content::Audio(s) => s,
        }
    }
}

/// An alert, or (as the body of an update) the alert as it now stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alert {
    /// The origin's number for the alert; with the origin it names the alert in the
    /// whole cascade, and updates, cancels and receipts refer to it.
    pub number: u32,
    pub level: Level,
    /// Every node whose area code one of these prefixes is concerned.
    pub targets: Vec<AreaCode>,
    pub content: Content,
}

/// Stops the origin's alert `number` wherever it is queued or playing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cancel {
    pub number: u32,
}

/// One hop's word that it stored a frame: the next hop stops retrying it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acknowledgement {
    /// The origin of the frame acknowledged.
    pub origin: AreaCode,
    /// Its sequence number.
    pub sequence: u32,
}

/// The bearer a frame arrived over, as a receipt reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BearerKind {
    Ip,
    /// 370 MHz narrowband radio (PDT).
    Radio,
    Beidou,
    Iridium,
    Sms,
}

impl BearerKind {
    pub const ALL: [BearerKind; 5] = [
        BearerKind::Ip,
        BearerKind::Radio,
        BearerKind::Beidou,
        BearerKind::Iridium,
        BearerKind::Sms,
    ];

    /// Its name in logs, receipts and the API: `ip`, `radio`, `beidou`, `iridium`, `sms`.
    pub fn as_str(self) -> &'static str {
        match self {
            BearerKind::Ip => "ip",
            BearerKind::Radio => "radio",
            BearerKind::Beidou => "beidou",
            BearerKind::Iridium => "iridium",
            BearerKind::Sms => "sms",
        }
    }

    /// The bearer named by [`BearerKind::as_str`].
    pub fn from_name(name: &str) -> Option<BearerKind> {
        BearerKind::ALL.into_iter().find(|b| b.as_str() == name)
    }

    fn code(self) -> u8 {
        match self {
            BearerKind::Ip => 0,
            BearerKind::Radio => 1,
            BearerKind::Beidou => 2,
            BearerKind::Iridium => 3,
            BearerKind::Sms => 4,
        }
    }
}

/// How an alert played in one place: flows up towards the alert's origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// The origin of the alert.
    pub alert_origin: AreaCode,
    /// The origin's number for it.
    pub alert_number: u32,
    /// Where it played (a village or street).
    pub area: AreaCode,
    /// Loudspeakers there that played it.
    pub played: u16,
    /// Loudspeakers there in all.
    pub loudspeakers: u16,
    /// The bearer the alert came over to that node.
    pub bearer: BearerKind,
}

/// A short report from the field (灾情报送), sent up to the district.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldReport {
    pub text: String,
}

/// A sign of life on a link; its arrival is the link's health. A node's heartbeat up
/// also says how each of its own links down would carry a frame now, so that the node
/// above can preview the hop beyond it; a heartbeat down says nothing of the kind.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Heartbeat {
    /// At most [`MAX_TARGETS`].
    pub below: Vec<LinkState>,
}

/// How a node's link down to one neighbour would carry a frame now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkState {
    /// The neighbour's area code.
    pub peer: AreaCode,
    /// The route up now; `None` while no route of the link is up.
    pub bearer: Option<BearerKind>,
    /// The route the other figures are for: the one up, or else the link's first.
    pub planned_bearer: BearerKind,
    /// Bytes one message of that route holds.
    pub message_bytes: u16,
    /// Seconds until a frame's first message has left that route's terminal, and each
    /// message after it; `None` over IP, or while the terminal has not said.
    pub pacing: Option<(u16, u16)>,
    /// Messages queued at that route's terminal.
    pub queued: u16,
    /// The node speaks alerts for the neighbour on a radio while the link has no IP.
    pub radio: bool,
}

/// `pacing` on the wire while it is not known.
const PACING_UNKNOWN: u16 = u16::MAX;

/// `bearer` on the wire while no route is up.
const NO_BEARER: u8 = u8::MAX;

/// Leave for one RTP stream to be forwarded or played during the frame's validity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamGrant {
    /// The RTP synchronisation source the grant covers (RFC 3550 §5.1).
    pub ssrc: u32,
    /// The level the stream plays at, for pre-emption.
    pub level: Level,
}

/// The body of a frame, by kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    Alert(Alert),
    Update(Alert),
    Cancel(Cancel),
    Acknowledgement(Acknowledgement),
    Receipt(Receipt),
    FieldReport(FieldReport),
    Heartbeat(Heartbeat),
    StreamGrant(StreamGrant),
}

impl Body {
    pub fn kind(&self) -> Kind {
        match self {
            Body::Alert(_) => Kind::Alert,
            Body::Update(_) => Kind::Update,
            Body::Cancel(_) => Kind::Cancel,
            Body::Acknowledgement(_) => Kind::Acknowledgement,
            Body::Receipt(_) => Kind::Receipt,
            Body::FieldReport(_) => Kind::FieldReport,
            Body::Heartbeat(_) => Kind::Heartbeat,
            Body::StreamGrant(_) => Kind::StreamGrant,
        }
    }
}

/// How many bytes of HMAC-SM3 a trailer keeps. Eight fit the narrow bearers; the
/// truncation keeps the leftmost bytes (RFC 2104 §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TagLength {
    #[default]
    Eight,
    Sixteen,
    Full,
}

impl TagLength {
    pub fn bytes(self) -> usize {
        match self {
            TagLength::Eight => 8,
            TagLength::Sixteen => 16,
            TagLength::Full => FULL_TAG_BYTES,
        }
    }
}

/// The authentication at the end of a frame, over every byte before it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trailer {
    /// The origin's SM2 signature with SM3 (GB/T 32918.2), r ‖ s.
    Sm2([u8; SIGNATURE_BYTES]),
    /// HMAC-SM3 with the key of the link the frame came over, truncated to `length`;
    /// only the first `length.bytes()` of `tag` are carried, the rest is zero.
    Hmac {
        length: TagLength,
        tag: [u8; FULL_TAG_BYTES],
    },
}

impl Trailer {
    pub(super) fn scheme(&self) -> u8 {
        match self {
            Trailer::Sm2(_) => 1,
            Trailer::Hmac { length, .. } => match length {
                TagLength::Eight => 2,
                TagLength::Sixteen => 3,
                TagLength::Full => 4,
            },
        }
    }

    /// The tag bytes as carried.
    pub fn tag(&self) -> &[u8] {
        match self {
            Trailer::Sm2(signature) => signature,
            Trailer::Hmac { length, tag } => tag.get(..length.bytes()).unwrap_or(tag),
        }
    }

    /// Bytes on the wire: the scheme byte and the tag.
    pub fn encoded_len(&self) -> usize {
        1 + self.tag().len()
    }

    /// The name of the scheme, for logs.
    pub fn scheme_name(&self) -> &'static str {
        match self {
            Trailer::Sm2(_) => "SM2",
            Trailer::Hmac { .. } => "HMAC-SM3",
        }
    }
}

/// A decoded frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub header: Header,
    pub body: Body,
    pub trailer: Trailer,
}

impl Frame {
    pub fn kind(&self) -> Kind {
        self.body.kind()
    }

    /// The frame's bytes: what [`decode`] reads back to an equal frame.
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        let mut out = encode_authenticated(&self.header, &self.body)?;
        out.push(self.trailer.scheme());
        out.extend_from_slice(self.trailer.tag());
        Ok(out)
    }
}

/// The bytes an authenticator covers: everything before the trailer.
pub fn encode_authenticated(header: &Header, body: &Body) -> Result<Vec<u8>, EncodeError> {
    let mut out = Vec::with_capacity(64);
    out.push(VERSION);
    out.push(body.kind().code());
    put_area(&mut out, &header.origin);
    out.extend_from_slice(&header.sequence.to_be_bytes());
    out.extend_from_slice(&header.valid_from.0.to_be_bytes());
    out.extend_from_slice(&header.valid_until.0.to_be_bytes());
    if header.valid_until < header.valid_from {
        return Err(EncodeError::EmptyValidity);
    }

    match body {
        Body::Alert(alert) | Body::Update(alert) => {
            out.extend_from_slice(&alert.number.to_be_bytes());
            out.push(level_code(alert.level));
            if alert.targets.is_empty() || alert.targets.len() > MAX_TARGETS {
                return Err(EncodeError::TargetCount(alert.targets.len()));
            }
            out.push(alert.targets.len() as u8);
            for target in &alert.targets {
                put_area(&mut out, target);
            }
            out.push(alert.content.code());
            put_text(&mut out, Field::Content, alert.content.as_str())?;
        }
        Body::Cancel(cancel) => out.extend_from_slice(&cancel.number.to_be_bytes()),
        Body::Acknowledgement(ack) => {
            put_area(&mut out, &ack.origin);
            out.extend_from_slice(&ack.sequence.to_be_bytes());
        }
        Body::Receipt(receipt) => {
            put_area(&mut out, &receipt.alert_origin);
            out.extend_from_slice(&receipt.alert_number.to_be_bytes());
            put_area(&mut out, &receipt.area);
            out.extend_from_slice(&receipt.played.to_be_bytes());
            out.extend_from_slice(&receipt.loudspeakers.to_be_bytes());
            out.push(receipt.bearer.code());
        }
        Body::FieldReport(report) => put_text(&mut out, Field::ReportText, &report.text)?,
        Body::Heartbeat(heartbeat) => {
            let count = u8::try_from(heartbeat.below.len())
                .map_err(|_| EncodeError::LinkCount(heartbeat.below.len()))?;
            out.push(count);
            for link in &heartbeat.below {
                put_area(&mut out, &link.peer);
                out.push(link.bearer.map_or(NO_BEARER, BearerKind::code));
                out.push(link.planned_bearer.code());
                out.extend_from_slice(&link.message_bytes.to_be_bytes());
                let known = |s: u16| s.min(PACING_UNKNOWN - 1);
                let (first, each) = link
                    .pacing
                    .map_or((PACING_UNKNOWN, PACING_UNKNOWN), |(f, e)| {
                        (known(f), known(e))
                    });
                out.extend_from_slice(&first.to_be_bytes());
                out.extend_from_slice(&each.to_be_bytes());
                out.extend_from_slice(&link.queued.to_be_bytes());
                out.push(u8::from(link.radio));
            }
        }
        Body::StreamGrant(grant) => {
            out.extend_from_slice(&grant.ssrc.to_be_bytes());
            out.push(level_code(grant.level));
        }
    }
    Ok(out)
}

/// Why a frame cannot be encoded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EncodeError {
    #[error("{0}: more than {MAX_CONTENT_BYTES} bytes")]
    TooLong(Field),
    #[error("an alert names 1 to {MAX_TARGETS} targets, not {0}")]
    TargetCount(usize),
    #[error("a heartbeat tells of at most {MAX_TARGETS} links below, not {0}")]
    LinkCount(usize),
    #[error("the validity window ends before it starts")]
    EmptyValidity,
}

/// A field of the frame, as errors name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Field {
    Version,
    Kind,
    Origin,
    Sequence,
    ValidFrom,
    ValidUntil,
    AlertNumber,
    Level,
    TargetCount,
    Target,
    ContentType,
    Content,
    AcknowledgedOrigin,
    AcknowledgedSequence,
    AlertOrigin,
    ReceiptArea,
    Played,
    Loudspeakers,
    Bearer,
    ReportText,
    Ssrc,
    /// A heartbeat's count of links below, and each one's fields.
    LinkCount,
    LinkPeer,
    LinkBearer,
    LinkMessageBytes,
    LinkPacing,
    LinkQueued,
    LinkFlags,
    Scheme,
    Tag,
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Field::Version => "version",
            Field::Kind => "kind",
            Field::Origin => "origin",
            Field::Sequence => "sequence",
            Field::ValidFrom => "valid_from",
            Field::ValidUntil => "valid_until",
            Field::AlertNumber => "alert number",
            Field::Level => "level",
            Field::TargetCount => "target count",
            Field::Target => "target",
            Field::ContentType => "content type",
            Field::Content => "content",
            Field::AcknowledgedOrigin => "acknowledged origin",
            Field::AcknowledgedSequence => "acknowledged sequence",
            Field::AlertOrigin => "alert origin",
            Field::ReceiptArea => "receipt area",
            Field::Played => "played",
            Field::Loudspeakers => "loudspeakers",
            Field::Bearer => "bearer",
            Field::ReportText => "report text",
            Field::Ssrc => "SSRC",
            Field::LinkCount => "count of links below",
            Field::LinkPeer => "link peer",
            Field::LinkBearer => "link bearer",
            Field::LinkMessageBytes => "link message bytes",
            Field::LinkPacing => "link pacing",
            Field::LinkQueued => "link queue",
            Field::LinkFlags => "link flags",
            Field::Scheme => "authentication scheme",
            Field::Tag => "authentication tag",
        })
    }
}

/// Why bytes are not a frame; `offset` is where the faulty field starts.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FrameError {
    #[error("byte {offset}: {field}: the frame ends before it does")]
    Truncated { offset: usize, field: Field },
    #[error("byte 0: unknown frame version {version} (this node reads version {VERSION})")]
    UnknownVersion { version: u8 },
    #[error("byte 1: unknown frame kind {code}")]
    UnknownKind { code: u8 },
    #[error("byte {offset}: {field}: length {length} is not allowed here")]
    BadLength {
        offset: usize,
        field: Field,
        length: usize,
    },
    #[error("byte {offset}: {field} is not UTF-8")]
    BadUtf8 { offset: usize, field: Field },
    #[error("byte {offset}: {field}: {value} is not a valid value")]
    BadValue {
        offset: usize,
        field: Field,
        value: u64,
    },
    #[error("byte {offset}: {count} bytes follow the trailer")]
    TrailingBytes { offset: usize, count: usize },
}

impl FrameError {
    /// The byte offset the error points at.
    pub fn offset(&self) -> usize {
        match self {
            FrameError::UnknownVersion { .. } => 0,
            FrameError::UnknownKind { .. } => 1,
            FrameError::Truncated { offset, .. }
            | FrameError::BadLength { offset, .. }
            | FrameError::BadUtf8 { offset, .. }
            | FrameError::BadValue { offset, .. }
            | FrameError::TrailingBytes { offset, .. } => *offset,
        }
    }
}

/// Reads one frame, which must fill `bytes` exactly.
pub fn decode(bytes: &[u8]) -> Result<Frame, FrameError> {
    match frame(bytes) {
        Ok(([], frame)) => Ok(frame),
        Ok((rest, _)) => Err(FrameError::TrailingBytes {
            offset: bytes.len() - rest.len(),
            count: rest.len(),
        }),
        Err(nom::Err::Error(fault) | nom::Err::Failure(fault)) => Err(fault.locate(bytes.len())),
        Err(nom::Err::Incomplete(_)) => Err(FrameError::Truncated {
            offset: bytes.len(),
            field: Field::Version,
        }),
    }
}

/// The length of the authenticated part of a decoded frame's bytes.
pub fn authenticated_len(frame: &Frame, bytes: &[u8]) -> usize {
    bytes.len().saturating_sub(frame.trailer.encoded_len())
}

// ---- encoding helpers ----

fn level_code(level: Level) -> u8 {
    match level {
        Level::Routine => 0,
        Level::Blue => 1,
        Level::Yellow => 2,
        Level::Orange => 3,
        Level::Red => 4,
    }
}

fn level_from_code(code: u8) -> Option<Level> {
    Level::ALL.into_iter().find(|l| level_code(*l) == code)
}

/// Value bytes of an area code of `digits` digits: the fewest that hold 10^digits − 1.
fn area_width(digits: u8) -> Option<usize> {
    match digits {
        6 => Some(3),
        9 => Some(4),
        12 => Some(5),
        _ => None,
    }
}

/// An area code as its digit count and its value, big-endian in the fewest bytes.
fn put_area(out: &mut Vec<u8>, area: &AreaCode) {
    let digits = area.as_str().len();
    let value = area
        .as_str()
        .bytes()
        .fold(0u64, |v, d| v * 10 + u64::from(d.wrapping_sub(b'0') % 10));
    let width = area_width(digits as u8).unwrap_or(5);
    out.push(digits as u8);
    out.extend_from_slice(value.to_be_bytes().get(8 - width..).unwrap_or_default());
}

/// A length (one byte below 128, else two bytes with the top bit set) and UTF-8 text.
fn put_text(out: &mut Vec<u8>, field: Field, text: &str) -> Result<(), EncodeError> {
    let len = text.len();
    if len > MAX_CONTENT_BYTES {
        return Err(EncodeError::TooLong(field));
    }
    if len < 0x80 {
        out.push(len as u8);
    } else {
        out.extend_from_slice(&(0x8000 | len as u16).to_be_bytes());
    }
    out.extend_from_slice(text.as_bytes());
    Ok(())
}

// ---- the parser ----

/// A parse fault: the input left where the faulty field starts, and what was wrong.
#[derive(Debug)]
struct Fault<'a> {
    rest: &'a [u8],
    field: Field,
    what: What,
}

#[derive(Debug)]
enum What {
    Truncated,
    Version(u8),
    Kind(u8),
    Length(usize),
    Utf8,
    Value(u64),
}

impl<'a> ParseError<&'a [u8]> for Fault<'a> {
    fn from_error_kind(input: &'a [u8], _: ErrorKind) -> Self {
        Fault {
            rest: input,
            field: Field::Version,
            what: What::Truncated,
        }
    }

    fn append(_: &'a [u8], _: ErrorKind, other: Self) -> Self {
        other
    }
}

impl Fault<'_> {
    fn locate(self, total: usize) -> FrameError {
        let offset = total - self.rest.len();
        let field = self.field;
        match self.what {
            What::Truncated => FrameError::Truncated { offset, field },
            What::Version(version) => FrameError::UnknownVersion { version },
            What::Kind(code) => FrameError::UnknownKind { code },
            What::Length(length) => FrameError::BadLength {
                offset,
                field,
                length,
            },
            What::Utf8 => FrameError::BadUtf8 { offset, field },
            What::Value(value) => FrameError::BadValue {
                offset,
                field,
                value,
            },
        }
    }
}

type Parsed<'a, T> = IResult<&'a [u8], T, Fault<'a>>;

fn fail<T>(rest: &[u8], field: Field, what: What) -> Parsed<'_, T> {
    Err(nom::Err::Failure(Fault { rest, field, what }))
}

/// Runs a nom number or byte parser, naming `field` if the input ends inside it.
fn read<'a, T>(
    input: &'a [u8],
    field: Field,
    parse: impl FnOnce(&'a [u8]) -> Parsed<'a, T>,
) -> Parsed<'a, T> {
    parse(input).map_err(|e| {
        e.map(|mut fault| {
            fault.field = field;
            fault
        })
    })
}

fn u8_field(input: &[u8], field: Field) -> Parsed<'_, u8> {
    read(input, field, be_u8)
}

fn u16_field(input: &[u8], field: Field) -> Parsed<'_, u16> {
    read(input, field, be_u16)
}

fn u32_field(input: &[u8], field: Field) -> Parsed<'_, u32> {
    read(input, field, be_u32)
}

/// Points a fault inside a field at the field's start.
fn from_start<'a, T>(input: &'a [u8], parsed: Parsed<'a, T>) -> Parsed<'a, T> {
    parsed.map_err(|e| {
        e.map(|fault| Fault {
            rest: input,
            ..fault
        })
    })
}

fn area(input: &[u8], field: Field) -> Parsed<'_, AreaCode> {
    from_start(input, area_inner(input, field))
}

fn area_inner(input: &[u8], field: Field) -> Parsed<'_, AreaCode> {
    let (rest, digits) = u8_field(input, field)?;
    let Some(width) = area_width(digits) else {
        return fail(input, field, What::Value(u64::from(digits)));
    };
    let (rest, value_bytes) = read(rest, field, |i| take(width)(i))?;
    let value = value_bytes
        .iter()
        .fold(0u64, |v, b| (v << 8) | u64::from(*b));
    if value >= 10u64.pow(u32::from(digits)) {
        return fail(input, field, What::Value(value));
    }
    let text = format!("{value:0width$}", width = usize::from(digits));
    match AreaCode::from_str(&text) {
        Ok(code) => Ok((rest, code)),
        Err(_) => fail(input, field, What::Value(value)),
    }
}

fn level(input: &[u8]) -> Parsed<'_, Level> {
    let (rest, code) = u8_field(input, Field::Level)?;
    match level_from_code(code) {
        Some(level) => Ok((rest, level)),
        None => fail(input, Field::Level, What::Value(u64::from(code))),
    }
}

fn text(input: &[u8], field: Field) -> Parsed<'_, String> {
    from_start(input, text_inner(input, field))
}

fn text_inner(input: &[u8], field: Field) -> Parsed<'_, String> {
    let (rest, first) = u8_field(input, field)?;
    let (rest, len) = if first < 0x80 {
        (rest, usize::from(first))
    } else {
        let (rest, second) = u8_field(rest, field)?;
        let len = usize::from(first & 0x7f) << 8 | usize::from(second);
        if len < 0x80 {
            // The short form was available: only one encoding of a length is canonical.
            return fail(input, field, What::Length(len));
        }
        (rest, len)
    };
    let (rest, bytes) = read(rest, field, |i| take(len)(i))?;
    match std::str::from_utf8(bytes) {
        Ok(text) => Ok((rest, text.to_string())),
        Err(_) => fail(input, field, What::Utf8),
    }
}

fn header(input: &[u8]) -> Parsed<'_, (Kind, Header)> {
    let (rest, version) = u8_field(input, Field::Version)?;
    if version != VERSION {
        return fail(input, Field::Version, What::Version(version));
    }
    let kind_at = rest;
    let (rest, code) = u8_field(rest, Field::Kind)?;
    let Some(kind) = Kind::from_code(code) else {
        return fail(kind_at, Field::Kind, What::Kind(code));
    };
    let (rest, origin) = area(rest, Field::Origin)?;
    let (rest, sequence) = u32_field(rest, Field::Sequence)?;
    let (rest, valid_from) = u32_field(rest, Field::ValidFrom)?;
    let until_at = rest;
    let (rest, valid_until) = u32_field(rest, Field::ValidUntil)?;
    if valid_until < valid_from {
        return fail(
            until_at,
            Field::ValidUntil,
            What::Value(u64::from(valid_until)),
        );
    }
    let header = Header {
        origin,
        sequence,
        valid_from: Timestamp(valid_from),
        valid_until: Timestamp(valid_until),
    };
    Ok((rest, (kind, header)))
}

fn alert(input: &[u8]) -> Parsed<'_, Alert> {
    let (rest, number) = u32_field(input, Field::AlertNumber)?;
    let (rest, level) = level(rest)?;
    let count_at = rest;
    let (mut rest, count) = u8_field(rest, Field::TargetCount)?;
    if count == 0 {
        return fail(count_at, Field::TargetCount, What::Length(0));
    }
    let mut targets = Vec::with_capacity(usize::from(count));
    for _ in 0..count {
        let (next, target) = area(rest, Field::Target)?;
        targets.push(target);
        rest = next;
    }
    let type_at = rest;
    let (rest, content_type) = u8_field(rest, Field::ContentType)?;
    let (rest, content) = text(rest, Field::Content)?;
    let content = match content_type {
        0 => Content::Text(content),
        1 => Content::Audio(content),
        other => return fail(type_at, Field::ContentType, What::Value(u64::from(other))),
    };
    let alert = Alert {
        number,
        level,
        targets,
        content,
    };
    Ok((rest, alert))
}

fn receipt(input: &[u8]) -> Parsed<'_, Receipt> {
    let (rest, alert_origin) = area(input, Field::AlertOrigin)?;
    let (rest, alert_number) = u32_field(rest, Field::AlertNumber)?;
    let (rest, area) = area(rest, Field::ReceiptArea)?;
    let (rest, played) = u16_field(rest, Field::Played)?;
    let (rest, loudspeakers) = u16_field(rest, Field::Loudspeakers)?;
    let (rest, bearer) = bearer_code(rest, Field::Bearer)?;
    let receipt = Receipt {
        alert_origin,
        alert_number,
        area,
        played,
        loudspeakers,
        bearer,
    };
    Ok((rest, receipt))
}

fn bearer_code(input: &[u8], field: Field) -> Parsed<'_, BearerKind> {
    let (rest, code) = u8_field(input, field)?;
    match BearerKind::ALL.into_iter().find(|b| b.code() == code) {
        Some(bearer) => Ok((rest, bearer)),
        None => fail(input, field, What::Value(u64::from(code))),
    }
}

fn heartbeat(input: &[u8]) -> Parsed<'_, Heartbeat> {
    let (mut rest, count) = u8_field(input, Field::LinkCount)?;
    let mut below = Vec::with_capacity(usize::from(count));
    for _ in 0..count {
        let (r, peer) = area(rest, Field::LinkPeer)?;
        let (r, bearer) = match r.first() {
            Some(&NO_BEARER) => (&r[1..], None),
            _ => bearer_code(r, Field::LinkBearer).map(|(r, b)| (r, Some(b)))?,
        };
        let (r, planned_bearer) = bearer_code(r, Field::LinkBearer)?;
        let (r, message_bytes) = u16_field(r, Field::LinkMessageBytes)?;
        let pacing_at = r;
        let (r, first) = u16_field(r, Field::LinkPacing)?;
        let (r, each) = u16_field(r, Field::LinkPacing)?;
        let pacing = match (first, each) {
            (PACING_UNKNOWN, PACING_UNKNOWN) => None,
            (PACING_UNKNOWN, _) | (_, PACING_UNKNOWN) => {
                return fail(pacing_at, Field::LinkPacing, What::Value(u64::from(first)));
            }
            known => Some(known),
        };
        let (r, queued) = u16_field(r, Field::LinkQueued)?;
        let flags_at = r;
        let (r, flags) = u8_field(r, Field::LinkFlags)?;
        if flags > 1 {
            return fail(flags_at, Field::LinkFlags, What::Value(u64::from(flags)));
        }
        rest = r;
        below.push(LinkState {
            peer,
            bearer,
            planned_bearer,
            message_bytes,
            pacing,
            queued,
            radio: flags == 1,
        });
    }
    Ok((rest, Heartbeat { below }))
}

fn body(input: &[u8], kind: Kind) -> Parsed<'_, Body> {
    match kind {
        Kind::Alert => alert(input).map(|(rest, a)| (rest, Body::Alert(a))),
        Kind::Update => alert(input).map(|(rest, a)| (rest, Body::Update(a))),
        Kind::Cancel => {
            let (rest, number) = u32_field(input, Field::AlertNumber)?;
            Ok((rest, Body::Cancel(Cancel { number })))
        }
        Kind::Acknowledgement => {
            let (rest, origin) = area(input, Field::AcknowledgedOrigin)?;
            let (rest, sequence) = u32_field(rest, Field::AcknowledgedSequence)?;
            let ack = Acknowledgement { origin, sequence };
            Ok((rest, Body::Acknowledgement(ack)))
        }
        Kind::Receipt => receipt(input).map(|(rest, r)| (rest, Body::Receipt(r))),
        Kind::FieldReport => {
            let (rest, text) = text(input, Field::ReportText)?;
            Ok((rest, Body::FieldReport(FieldReport { text })))
        }
        Kind::Heartbeat => heartbeat(input).map(|(rest, h)| (rest, Body::Heartbeat(h))),
        Kind::StreamGrant => {
            let (rest, ssrc) = u32_field(input, Field::Ssrc)?;
            let (rest, level) = level(rest)?;
            Ok((rest, Body::StreamGrant(StreamGrant { ssrc, level })))
        }
    }
}

fn trailer(input: &[u8]) -> Parsed<'_, Trailer> {
    let (rest, scheme) = u8_field(input, Field::Scheme)?;
    let length = match scheme {
        1 => {
            let tag_at = rest;
            let (rest, signature) = read(rest, Field::Tag, |i| take(SIGNATURE_BYTES)(i))?;
            return match <[u8; SIGNATURE_BYTES]>::try_from(signature) {
                Ok(signature) => Ok((rest, Trailer::Sm2(signature))),
                Err(_) => fail(tag_at, Field::Tag, What::Truncated),
            };
        }
        2 => TagLength::Eight,
        3 => TagLength::Sixteen,
        4 => TagLength::Full,
        other => return fail(input, Field::Scheme, What::Value(u64::from(other))),
    };
    let (rest, carried) = read(rest, Field::Tag, |i| take(length.bytes())(i))?;
    let mut tag = [0; FULL_TAG_BYTES];
    if let Some(head) = tag.get_mut(..carried.len()) {
        head.copy_from_slice(carried);
    }
    Ok((rest, Trailer::Hmac { length, tag }))
}

fn frame(input: &[u8]) -> Parsed<'_, Frame> {
    let (rest, (kind, header)) = header(input)?;
    let (rest, body) = body(rest, kind)?;
    let (rest, trailer) = trailer(rest)?;
    Ok((
        rest,
        Frame {
            header,
            body,
            trailer,
        },
    ))
}

#[cfg(test)]
mod tests;
