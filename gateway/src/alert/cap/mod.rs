//! The Common Alerting Protocol, versions 1.2 and 1.1 (OASIS CAP-V1.2, CAP-V1.1).
//!
//! [`parse`] takes a document as bytes and returns either a [`CapAlert`] that meets the
//! standard's own rules or every fault found, each named with its element path
//! (`alert/info[2]/urgency`) and line, so an operator can fix a file in one pass.
//!
//! The contract, for untrusted input:
//!
//! * The document is parsed by `roxmltree`, which never reads a file or opens a
//!   connection. A document type declaration is refused outright, so no entity other
//!   than XML's five predefined ones and character references can appear; external
//!   entities (XXE) and entity expansion bombs are impossible.
//! * Only UTF-8 is accepted (CAP §3.3.1 requires it of every implementation).
//! * Nothing here panics on any input; the size is bounded by [`MAX_DOCUMENT_BYTES`].
//!
//! What is checked is the standard alone (CAP-V1.2 §3.2, the data dictionary): the
//! required elements (`identifier`, `sender`, `sent`, `status`, `msgType`, `scope`;
//! each `info`'s `category`, `event`, `urgency`, `severity`, `certainty`; each
//! `area`'s `areaDesc`; each `resource`'s `resourceDesc`, and `mimeType` in 1.2), the
//! enumerations, empty values (an element present with no content is a fault), the
//! date-time form with an explicit numeric offset (§3.3.2: "Z" must not be used), the
//! `references` triples, polygon and circle syntax, and the conditional elements
//! (`restriction` for Restricted scope, `addresses` for Private). Whether an alert
//! suits this node (expired, targets, levels) is the intake's business, not this
//! module's. Element order is not checked; elements of other namespaces (an XML
//! signature, say) are ignored, as the schema's `any` allows.

mod parse;

use std::fmt;

use chrono::{DateTime, FixedOffset};

pub use parse::parse;

/// The largest document accepted, embedded audio included.
pub const MAX_DOCUMENT_BYTES: usize = 8 * 1024 * 1024;

/// The CAP version, from the root element's namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum CapVersion {
    #[serde(rename = "1.1")]
    V1_1,
    #[serde(rename = "1.2")]
    V1_2,
}

impl CapVersion {
    pub const NAMESPACE_1_1: &'static str = "urn:oasis:names:tc:emergency:cap:1.1";
    pub const NAMESPACE_1_2: &'static str = "urn:oasis:names:tc:emergency:cap:1.2";

    pub(crate) fn from_namespace(ns: &str) -> Option<CapVersion> {
        match ns {
            Self::NAMESPACE_1_1 => Some(CapVersion::V1_1),
            Self::NAMESPACE_1_2 => Some(CapVersion::V1_2),
            _ => None,
        }
    }
}

impl fmt::Display for CapVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CapVersion::V1_1 => "1.1",
            CapVersion::V1_2 => "1.2",
        })
    }
}

/// Declares a CAP enumeration: its values exactly as the standard spells them.
macro_rules! cap_enum {
    ($(#[$doc:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
        pub enum $name {
            $(#[serde(rename = $text)] $variant),+
        }

        impl $name {
            /// Every value, in the standard's order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The value as the standard spells it.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }

            /// The value spelled `text`, exactly (CAP values are case-sensitive).
            pub fn parse(text: &str) -> Option<$name> {
                match text {
                    $($text => Some($name::$variant),)+
                    _ => None,
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

cap_enum!(
    /// `status`: the appropriate handling of the message (§3.2.1).
    Status { Actual => "Actual", Exercise => "Exercise", System => "System", Test => "Test", Draft => "Draft" }
);
cap_enum!(
    /// `msgType`: the nature of the message (§3.2.1).
    MsgType { Alert => "Alert", Update => "Update", Cancel => "Cancel", Ack => "Ack", Error => "Error" }
);
cap_enum!(
    /// `scope`: the intended distribution (§3.2.1).
    Scope { Public => "Public", Restricted => "Restricted", Private => "Private" }
);
cap_enum!(
    /// `category` of the subject event (§3.2.2).
    Category {
        Geo => "Geo", Met => "Met", Safety => "Safety", Security => "Security",
        Rescue => "Rescue", Fire => "Fire", Health => "Health", Env => "Env",
        Transport => "Transport", Infra => "Infra", Cbrne => "CBRNE", Other => "Other",
    }
);
cap_enum!(
    /// `responseType` recommended (§3.2.2). `Avoid` and `AllClear` are new in 1.2.
    ResponseType {
        Shelter => "Shelter", Evacuate => "Evacuate", Prepare => "Prepare", Execute => "Execute",
        Avoid => "Avoid", Monitor => "Monitor", Assess => "Assess", AllClear => "AllClear",
        None => "None",
    }
);
cap_enum!(
    /// `urgency`: time available to prepare (§3.2.2).
    Urgency { Immediate => "Immediate", Expected => "Expected", Future => "Future", Past => "Past", Unknown => "Unknown" }
);
cap_enum!(
    /// `severity`: intensity of impact (§3.2.2).
    Severity { Extreme => "Extreme", Severe => "Severe", Moderate => "Moderate", Minor => "Minor", Unknown => "Unknown" }
);
cap_enum!(
    /// `certainty`: confidence in the observation or prediction (§3.2.2). `Very Likely`
    /// is CAP 1.0's spelling, still allowed by CAP 1.1 and gone from 1.2.
    Certainty {
        Observed => "Observed", VeryLikely => "Very Likely", Likely => "Likely",
        Possible => "Possible", Unlikely => "Unlikely", Unknown => "Unknown",
    }
);

/// One CAP `alert` message that met the standard's rules.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CapAlert {
    pub version: CapVersion,
    /// Unique for this sender; no spaces, commas or restricted characters.
    pub identifier: String,
    /// Globally unambiguous originator; no spaces or commas.
    pub sender: String,
    pub sent: DateTime<FixedOffset>,
    pub status: Status,
    pub msg_type: MsgType,
    pub source: Option<String>,
    pub scope: Scope,
    pub restriction: Option<String>,
    pub addresses: Option<String>,
    pub codes: Vec<String>,
    pub note: Option<String>,
    /// Earlier messages this one updates, cancels or acknowledges.
    pub references: Vec<Reference>,
    pub incidents: Option<String>,
    pub infos: Vec<Info>,
}

/// One `sender,identifier,sent` triple of `references`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Reference {
    pub sender: String,
    pub identifier: String,
    /// As written: references match on text, the way the referenced alert stated it.
    pub sent: String,
}

/// One `info` block: the alert in one language.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Info {
    /// RFC 3066 language; `en-US` when absent (§3.2.2).
    pub language: String,
    pub categories: Vec<Category>,
    pub event: String,
    pub response_types: Vec<ResponseType>,
    pub urgency: Urgency,
    pub severity: Severity,
    pub certainty: Certainty,
    pub audience: Option<String>,
    pub event_codes: Vec<NamedValue>,
    pub effective: Option<DateTime<FixedOffset>>,
    pub onset: Option<DateTime<FixedOffset>>,
    pub expires: Option<DateTime<FixedOffset>>,
    pub sender_name: Option<String>,
    pub headline: Option<String>,
    pub description: Option<String>,
    pub instruction: Option<String>,
    pub web: Option<String>,
    pub contact: Option<String>,
    pub parameters: Vec<NamedValue>,
    pub resources: Vec<Resource>,
    pub areas: Vec<Area>,
}

/// A `valueName` / `value` pair (`eventCode`, `parameter`, `geocode`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct NamedValue {
    pub value_name: String,
    pub value: String,
}

/// A `resource`: a file that goes with the alert, such as recorded speech.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Resource {
    pub resource_desc: String,
    /// Required in 1.2, optional in 1.1.
    pub mime_type: Option<String>,
    pub size: Option<u64>,
    pub uri: Option<String>,
    /// The content itself, base64 as written (decoded where it is played).
    #[serde(skip)]
    pub deref_uri: Option<String>,
    pub digest: Option<String>,
}

/// An `area`: where the alert applies.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Area {
    pub area_desc: String,
    pub polygons: Vec<String>,
    pub circles: Vec<String>,
    pub geocodes: Vec<NamedValue>,
    pub altitude: Option<f64>,
    pub ceiling: Option<f64>,
}

/// One way a document breaks the standard.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Fault {
    /// Element path from the root, 1-based like XPath: `alert/info[2]/area[1]/areaDesc`.
    pub path: String,
    /// Line of the element in the document, 1-based; 0 for the document as a whole.
    pub line: u32,
    pub message: String,
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line > 0 {
            write!(f, "line {}: {}: {}", self.line, self.path, self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// Why a document is not an acceptable CAP alert.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CapError {
    #[error("document of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge { size: usize, limit: usize },
    #[error("not UTF-8 at byte {offset} (CAP requires UTF-8)")]
    NotUtf8 { offset: usize },
    #[error(
        "refused: the document has a DOCTYPE declaration; CAP needs none, and entities could read files or exhaust memory"
    )]
    Doctype,
    #[error("malformed XML: {0}")]
    Xml(String),
    #[error("{} fault{} against the CAP standard", .0.len(), if .0.len() == 1 { "" } else { "s" })]
    Invalid(Vec<Fault>),
}

impl CapError {
    /// Every fault, as one list: a document-level error is a single fault at `alert`.
    pub fn faults(&self) -> Vec<Fault> {
        match self {
            CapError::Invalid(faults) => faults.clone(),
            other => vec![Fault {
                path: "alert".into(),
                line: 0,
                message: other.to_string(),
            }],
        }
    }
}

impl CapAlert {
    /// The `info` block for `language` (a primary subtag such as `zh`, or a full tag
    /// such as `zh-CN`): an exact match first, then the same primary language, then
    /// the first block. `None` only for an alert without `info`.
    pub fn info_for(&self, language: &str) -> Option<&Info> {
        let primary = |tag: &str| tag.split('-').next().unwrap_or("").to_ascii_lowercase();
        let wanted = primary(language);
        self.infos
            .iter()
            .find(|i| i.language.eq_ignore_ascii_case(language))
            .or_else(|| self.infos.iter().find(|i| primary(&i.language) == wanted))
            .or_else(|| self.infos.first())
    }

    /// This message's own `sender,identifier,sent` triple, as another alert would
    /// reference it.
    pub fn reference(&self) -> Reference {
        Reference {
            sender: self.sender.clone(),
            identifier: self.identifier.clone(),
            sent: format_cap_time(&self.sent),
        }
    }
}

/// A time in CAP's form, `2026-07-21T06:30:00+08:00` (§3.3.2); UTC is `-00:00` when
/// the zone is unknown, and `+00:00` here.
pub fn format_cap_time(time: &DateTime<FixedOffset>) -> String {
    time.format("%Y-%m-%dT%H:%M:%S%:z").to_string()
}

/// Parses a CAP date-time: `YYYY-MM-DDThh:mm:ss` with an explicit `+hh:mm` or
/// `-hh:mm` offset (§3.3.2). CAP 1.1 documents in the wild carry fractional seconds,
/// which the XML schema allows; they are accepted. `Z` and a missing offset are not.
pub fn parse_cap_time(text: &str) -> Result<DateTime<FixedOffset>, &'static str> {
    if text.ends_with('Z') || text.ends_with('z') {
        return Err("the zone must be a numeric offset such as +08:00; \"Z\" is not allowed");
    }
    let tail = text.get(text.len().saturating_sub(6)..).unwrap_or("");
    let has_offset = tail.len() == 6
        && (tail.starts_with('+') || tail.starts_with('-'))
        && tail.as_bytes().get(3) == Some(&b':');
    if !has_offset {
        return Err("a time needs an explicit offset such as +08:00");
    }
    DateTime::parse_from_rfc3339(text)
        .map_err(|_| "not a date-time of the form 2026-07-21T06:30:00+08:00")
}

#[cfg(test)]
mod tests;
