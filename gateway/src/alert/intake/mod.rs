//! The node's own rules, applied to an alert that already meets the CAP standard
//! (or to the command centre's typed form): what it targets here, at which level,
//! what will be spoken, when it may play, and whether a second operator must confirm
//! it. Each refusal has its own [`Refusal`] variant with a message for the operator.
//!
//! Pure: the caller passes the time and how to look up earlier alerts, so every rule
//! is tested without a clock or a database.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use super::cap::{CapAlert, Info, MsgType, Reference, Status};
use super::model::{AreaCode, Level, Purpose};
use crate::config::DownstreamKind;

/// One destination of this node, as intake sees it.
#[derive(Debug, Clone)]
pub struct Destination {
    pub name: String,
    pub area: AreaCode,
    pub kind: DownstreamKind,
    /// Whether it plays `Exercise` and `Test` alerts.
    pub takes_exercises: bool,
}

/// What the node's configuration says about alerts.
#[derive(Debug, Clone)]
pub struct Rules {
    pub node_name: String,
    /// `geocode` value names read as GB/T 2260 codes (default `GB/T 2260`).
    pub geocode_names: Vec<String>,
    /// The language spoken here: picks the CAP `info` block.
    pub language: String,
    /// Actual alerts at these levels wait for a second operator.
    pub confirm_levels: Vec<Level>,
    /// How long an alert without `expires` stays valid.
    pub default_validity: Duration,
    /// How many times an alert is spoken unless the form says otherwise.
    pub default_repeat: u32,
    pub destinations: Vec<Destination>,
}

/// What kind of request it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Alert,
    Broadcast,
}

/// A destination in the alert's area that will not play it, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Skipped {
    pub name: String,
    pub reason: String,
}

/// An alert that passed intake: everything playout needs, and nothing it must look
/// up again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Admitted {
    pub kind: Kind,
    pub identifier: String,
    pub sender: String,
    pub sent: DateTime<Utc>,
    pub purpose: Purpose,
    pub msg_type: String,
    /// For an Update or a Cancel: the local ids of the alerts it replaces.
    pub replaces: Vec<i64>,
    pub level: Level,
    pub language: String,
    pub headline: String,
    /// Exactly the text to be spoken (before speech normalisation).
    pub text: String,
    /// CAP's `description` and `instruction`, apart, for the shortened text the narrow
    /// bearers carry (`alert::shorten`); none for a typed form, whose text is one piece.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instruction: Option<String>,
    pub areas: Vec<AreaCode>,
    /// Destination names, in configuration order.
    pub targets: Vec<String>,
    pub skipped: Vec<Skipped>,
    /// Nothing plays before this.
    pub effective: DateTime<Utc>,
    /// Nothing plays after this.
    pub expires: DateTime<Utc>,
    pub repeat: u32,
    pub attention: String,
    /// Speech recorded by the sender (CAP `resource` `derefUri`), played instead of
    /// synthesised speech: the file's bytes. Stored apart from the record.
    #[serde(skip)]
    pub audio: Option<Vec<u8>>,
    /// Whether recorded speech came with the alert.
    pub has_audio: bool,
    /// For a live broadcast: where the voice comes from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broadcast: Option<BroadcastSource>,
    pub needs_confirmation: bool,
    /// For an alert that came down the cascade as a frame: where from, and how.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cascade: Option<CascadeSource>,
}

/// Where an alert that came down the cascade comes from: its origin names it in the
/// whole cascade, and its receipt goes back there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CascadeSource {
    /// The area code of the node that originated it.
    #[schema(value_type = String)]
    pub origin: AreaCode,
    /// The origin's number for it.
    pub number: u32,
    /// The bearer it arrived over: `ip`, `radio`, `beidou`, `iridium` or `sms`.
    pub bearer: String,
}

/// An alert frame as intake reads it (`cascade::frame::Alert` with its header).
#[derive(Debug, Clone)]
pub struct FrameAlert {
    pub origin: AreaCode,
    pub number: u32,
    /// The frame's sequence, which tells one update of an alert from the next.
    pub sequence: u32,
    /// Whether the frame is an update of an alert sent before.
    pub update: bool,
    pub level: Level,
    pub targets: Vec<AreaCode>,
    /// The shortened text (`alert::shorten`), its purpose mark first.
    pub text: String,
    pub valid_from: DateTime<Utc>,
    pub valid_until: DateTime<Utc>,
    pub bearer: String,
}

impl FrameAlert {
    /// The sender an alert from the cascade is stored under: one per origin, so its
    /// numbers never meet those of another origin or of the node's own operators.
    pub fn sender_of(origin: &AreaCode) -> String {
        format!("cascade:{origin}")
    }

    /// The identifier it is stored under: the origin's number, and for an update the
    /// frame's sequence too, so that each update is its own record.
    pub fn identifier(&self) -> String {
        if self.update {
            format!("{}.{}", self.number, self.sequence)
        } else {
            self.number.to_string()
        }
    }
}

/// Where a live broadcast's voice comes from: exactly one of the two.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BroadcastSource {
    /// A capture device (`default` for the system's default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// An address where a dispatcher console sends RTP (Opus, PCMU or PCMA).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub rtp_listen: Option<std::net::SocketAddr>,
}

/// Why this node will not take an alert.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("expired at {0}")]
    Expired(DateTime<Utc>),
    #[error("status {0} is not played (only Actual, Exercise and Test are)")]
    StatusNotPlayed(Status),
    #[error("message type {0} carries nothing to play")]
    MsgTypeNotPlayed(MsgType),
    #[error("severity Unknown has no warning level; send Minor, Moderate, Severe or Extreme")]
    NoWarningLevel,
    #[error("the alert has no info block to speak")]
    NoInfo,
    #[error("an {0} must name in `references` the alert it replaces")]
    NoReference(MsgType),
    #[error("references unknown alert {0}")]
    UnknownReference(String),
    #[error("{0}")]
    BadArea(String),
    #[error(
        "no area of the alert (geocodes under {names}: {codes}) matches any destination of this node"
    )]
    NoTarget { names: String, codes: String },
    #[error("every destination in the alert's area refuses {0} alerts")]
    NoTargetTakesExercises(Purpose),
    #[error("{0}")]
    BadForm(String),
}

/// The command centre's typed alert (`emcomm alert send --text ...`).
#[derive(Debug, Clone, Default, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AlertForm {
    /// What is spoken.
    pub text: String,
    /// routine, blue, yellow, orange or red.
    pub level: String,
    /// GB/T 2260 codes of 6, 9 or 12 digits.
    pub areas: Vec<String>,
    #[serde(default)]
    pub headline: Option<String>,
    #[serde(default)]
    pub repeat: Option<u32>,
    /// none, chime, pre-warning, air-raid or all-clear.
    #[serde(default)]
    pub attention: Option<String>,
    /// actual (default), exercise or test.
    #[serde(default)]
    pub purpose: Option<String>,
    #[serde(default)]
    pub language: Option<String>,
    /// Validity from now, minutes; the node's default when absent.
    #[serde(default)]
    pub valid_minutes: Option<u32>,
}

/// The largest repeat count accepted: more is a typing error, not an intention.
pub const MAX_REPEAT: u32 = 20;

impl Rules {
    /// Admits a CAP alert. `lookup` finds the local id of an earlier alert by its
    /// reference triple.
    pub fn admit_cap(
        &self,
        alert: &CapAlert,
        attention: &str,
        now: DateTime<Utc>,
        lookup: impl Fn(&Reference) -> Option<i64>,
    ) -> Result<Admitted, Refusal> {
        let purpose = match alert.status {
            Status::Actual => Purpose::Actual,
            Status::Exercise => Purpose::Exercise,
            Status::Test => Purpose::Test,
            other => return Err(Refusal::StatusNotPlayed(other)),
        };
        if matches!(alert.msg_type, MsgType::Ack | MsgType::Error) {
            return Err(Refusal::MsgTypeNotPlayed(alert.msg_type));
        }
        let replaces = self.replaced(alert.msg_type, &alert.references, lookup)?;
        if alert.msg_type == MsgType::Cancel {
            // A cancel only has to name what it stops: it needs no info block, level,
            // validity or target of its own, and never waits for a confirmation.
            return Ok(self.cancel(alert, purpose, replaces));
        }
        let info = alert.info_for(&self.language).ok_or(Refusal::NoInfo)?;
        let level = Level::from_severity(info.severity).ok_or(Refusal::NoWarningLevel)?;

        let sent = alert.sent.with_timezone(&Utc);
        let effective = info
            .effective
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or(sent);
        let expires = info
            .expires
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or(sent + self.default_validity);
        if expires <= now {
            return Err(Refusal::Expired(expires));
        }

        let areas = self.area_codes(info)?;
        let (targets, skipped) = self.resolve(&areas, purpose)?;
        let audio = recorded_speech(info)?;

        Ok(Admitted {
            kind: Kind::Alert,
            identifier: alert.identifier.clone(),
            sender: alert.sender.clone(),
            sent,
            purpose,
            msg_type: alert.msg_type.to_string(),
            replaces,
            level,
            language: info.language.clone(),
            headline: info.headline.clone().unwrap_or_else(|| info.event.clone()),
            text: marked(spoken_text(info), purpose, &info.language),
            description: info.description.clone(),
            instruction: info.instruction.clone(),
            areas,
            targets,
            skipped,
            effective,
            expires,
            repeat: self.default_repeat,
            attention: attention.to_string(),
            has_audio: audio.is_some(),
            audio,
            broadcast: None,
            needs_confirmation: purpose == Purpose::Actual && self.confirm_levels.contains(&level),
            cascade: None,
        })
    }

    /// Admits the command centre's typed form, sent by `operator`.
    pub fn admit_form(
        &self,
        form: &AlertForm,
        kind: Kind,
        operator: &str,
        identifier: String,
        default_attention: &str,
        now: DateTime<Utc>,
    ) -> Result<Admitted, Refusal> {
        if kind == Kind::Alert && form.text.trim().is_empty() {
            return Err(Refusal::BadForm("`text` is empty: nothing to speak".into()));
        }
        let level: Level = form.level.parse().map_err(Refusal::BadForm)?;
        let purpose = match form.purpose.as_deref() {
            None => Purpose::Actual,
            Some(p) => Purpose::parse(p).ok_or_else(|| {
                Refusal::BadForm(format!(
                    "unknown purpose {p:?}: expected actual, exercise or test"
                ))
            })?,
        };
        let repeat = form.repeat.unwrap_or(self.default_repeat);
        if !(1..=MAX_REPEAT).contains(&repeat) {
            return Err(Refusal::BadForm(format!(
                "`repeat` must be 1 to {MAX_REPEAT}"
            )));
        }
        let attention = form
            .attention
            .clone()
            .unwrap_or_else(|| default_attention.into());
        if attention
            .parse::<codecs::attention::AttentionSignal>()
            .is_err()
        {
            return Err(Refusal::BadForm(format!(
                "unknown attention signal {attention:?}: expected none, chime, pre-warning, air-raid or all-clear"
            )));
        }
        if form.areas.is_empty() {
            return Err(Refusal::BadForm(
                "`areas` is empty: name at least one area code".into(),
            ));
        }
        let areas = form
            .areas
            .iter()
            .map(|a| a.parse::<AreaCode>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(Refusal::BadArea)?;
        let (targets, skipped) = self.resolve(&areas, purpose)?;
        let validity = form
            .valid_minutes
            .map(|m| Duration::minutes(i64::from(m)))
            .unwrap_or(self.default_validity);
        if validity <= Duration::zero() {
            return Err(Refusal::BadForm(
                "`valid_minutes` must be at least 1".into(),
            ));
        }
        let headline = form.headline.clone().unwrap_or_else(|| match kind {
            Kind::Alert => first_sentence(&form.text),
            Kind::Broadcast => format!("live broadcast by {operator}"),
        });

        Ok(Admitted {
            kind,
            identifier,
            sender: format!("{operator}@{}", self.node_name),
            sent: now,
            purpose,
            msg_type: "Alert".into(),
            replaces: Vec::new(),
            level,
            language: form
                .language
                .clone()
                .unwrap_or_else(|| self.language.clone()),
            headline,
            text: marked(
                form.text.trim().to_string(),
                purpose,
                form.language.as_deref().unwrap_or(&self.language),
            ),
            description: None,
            instruction: None,
            areas,
            targets,
            skipped,
            effective: now,
            expires: now + validity,
            repeat,
            attention,
            audio: None,
            has_audio: false,
            broadcast: None,
            // A live broadcast at orange or red is guarded like an alert.
            needs_confirmation: purpose == Purpose::Actual && self.confirm_levels.contains(&level),
            cascade: None,
        })
    }

    /// Admits an alert that came down the cascade: confirmed where it was sent, so it
    /// waits for no operator here; played as an exercise or test when its text's mark
    /// says so; spoken in Chinese when its text is. An update names, in `replaces`, the
    /// local ids of the alert it updates.
    pub fn admit_frame(
        &self,
        frame: &FrameAlert,
        replaces: Vec<i64>,
        default_attention: &str,
        now: DateTime<Utc>,
    ) -> Result<Admitted, Refusal> {
        if frame.valid_until <= now {
            return Err(Refusal::Expired(frame.valid_until));
        }
        if frame.text.trim().is_empty() {
            return Err(Refusal::BadForm(
                "the frame's text is empty: nothing to speak".into(),
            ));
        }
        let purpose = super::shorten::purpose_of(&frame.text);
        let (targets, skipped) = self.resolve(&frame.targets, purpose)?;
        let has_chinese = frame
            .text
            .chars()
            .any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c));
        let here_chinese = self.language.to_ascii_lowercase().starts_with("zh");
        let language = match (has_chinese, here_chinese) {
            (true, true) | (false, false) => self.language.clone(),
            (true, false) => "zh-CN".into(),
            (false, true) => "en".into(),
        };
        Ok(Admitted {
            kind: Kind::Alert,
            identifier: frame.identifier(),
            sender: FrameAlert::sender_of(&frame.origin),
            sent: frame.valid_from.min(now),
            purpose,
            msg_type: if frame.update { "Update" } else { "Alert" }.into(),
            replaces,
            level: frame.level,
            language,
            headline: first_sentence(&frame.text),
            // Already marked by its origin (`alert::shorten`, rule 1).
            text: frame.text.trim().to_string(),
            description: None,
            instruction: None,
            areas: frame.targets.clone(),
            targets,
            skipped,
            // The origin's clock may run a little ahead (within the skew): an alert that
            // came is played now, not held until the origin's time.
            effective: frame.valid_from.min(now),
            expires: frame.valid_until,
            repeat: self.default_repeat,
            attention: default_attention.into(),
            audio: None,
            has_audio: false,
            broadcast: None,
            needs_confirmation: false,
            cascade: Some(CascadeSource {
                origin: frame.origin.clone(),
                number: frame.number,
                bearer: frame.bearer.clone(),
            }),
        })
    }

    fn cancel(&self, alert: &CapAlert, purpose: Purpose, replaces: Vec<i64>) -> Admitted {
        let info = alert.info_for(&self.language);
        let sent = alert.sent.with_timezone(&Utc);
        Admitted {
            kind: Kind::Alert,
            identifier: alert.identifier.clone(),
            sender: alert.sender.clone(),
            sent,
            purpose,
            msg_type: MsgType::Cancel.to_string(),
            replaces,
            level: info
                .and_then(|i| Level::from_severity(i.severity))
                .unwrap_or(Level::Routine),
            language: info
                .map(|i| i.language.clone())
                .unwrap_or_else(|| self.language.clone()),
            headline: info
                .and_then(|i| i.headline.clone())
                .unwrap_or_else(|| "cancel".to_string()),
            text: String::new(),
            description: None,
            instruction: None,
            areas: Vec::new(),
            targets: Vec::new(),
            skipped: Vec::new(),
            effective: sent,
            expires: sent,
            repeat: 0,
            attention: "none".into(),
            audio: None,
            has_audio: false,
            broadcast: None,
            needs_confirmation: false,
            cascade: None,
        }
    }

    fn replaced(
        &self,
        msg_type: MsgType,
        references: &[Reference],
        lookup: impl Fn(&Reference) -> Option<i64>,
    ) -> Result<Vec<i64>, Refusal> {
        if !matches!(msg_type, MsgType::Update | MsgType::Cancel) {
            return Ok(Vec::new());
        }
        if references.is_empty() {
            return Err(Refusal::NoReference(msg_type));
        }
        references
            .iter()
            .map(|r| {
                lookup(r).ok_or_else(|| {
                    Refusal::UnknownReference(format!("{},{},{}", r.sender, r.identifier, r.sent))
                })
            })
            .collect()
    }

    /// The GB/T 2260 codes of the info's areas, under the configured value names.
    fn area_codes(&self, info: &Info) -> Result<Vec<AreaCode>, Refusal> {
        let mut codes = Vec::new();
        for geocode in info.areas.iter().flat_map(|a| &a.geocodes) {
            if !self.geocode_names.contains(&geocode.value_name) {
                continue;
            }
            let code: AreaCode = geocode.value.trim().parse().map_err(Refusal::BadArea)?;
            if !codes.contains(&code) {
                codes.push(code);
            }
        }
        if codes.is_empty() {
            let codes: Vec<String> = info
                .areas
                .iter()
                .flat_map(|a| &a.geocodes)
                .map(|g| format!("{}={}", g.value_name, g.value))
                .collect();
            return Err(Refusal::NoTarget {
                names: self.geocode_names.join(" or "),
                codes: if codes.is_empty() {
                    "none".into()
                } else {
                    codes.join(", ")
                },
            });
        }
        Ok(codes)
    }

    /// The destinations the areas concern: a loudspeaker when an area covers it, a
    /// gateway also when an area lies inside it. Exercises and tests skip those not
    /// configured to take them.
    fn resolve(
        &self,
        areas: &[AreaCode],
        purpose: Purpose,
    ) -> Result<(Vec<String>, Vec<Skipped>), Refusal> {
        let mut targets = Vec::new();
        let mut skipped = Vec::new();
        for d in &self.destinations {
            let in_area = areas.iter().any(|a| match d.kind {
                DownstreamKind::Gateway => a.concerns(&d.area),
                DownstreamKind::Loudspeaker => a.covers(&d.area),
            });
            if !in_area {
                continue;
            }
            if purpose != Purpose::Actual && !d.takes_exercises {
                skipped.push(Skipped {
                    name: d.name.clone(),
                    reason: format!("not configured to take {purpose} alerts"),
                });
                continue;
            }
            targets.push(d.name.clone());
        }
        if targets.is_empty() {
            return Err(if skipped.is_empty() {
                Refusal::NoTarget {
                    names: self.geocode_names.join(" or "),
                    codes: areas
                        .iter()
                        .map(AreaCode::to_string)
                        .collect::<Vec<_>>()
                        .join(", "),
                }
            } else {
                Refusal::NoTargetTakesExercises(purpose)
            });
        }
        Ok((targets, skipped))
    }
}

/// The first audio `resource` carried in the alert (`derefUri`, base64, CAP-V1.2
/// §3.2.3). One given only by `uri` is not fetched (docs/limitations.md).
fn recorded_speech(info: &Info) -> Result<Option<Vec<u8>>, Refusal> {
    use base64::Engine as _;
    let Some(resource) = info.resources.iter().find(|r| {
        r.deref_uri.is_some()
            && r.mime_type
                .as_deref()
                .is_some_and(|m| m.starts_with("audio/"))
    }) else {
        return Ok(None);
    };
    let text: String = resource
        .deref_uri
        .iter()
        .flat_map(|t| t.split_whitespace())
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .map(Some)
        .map_err(|e| {
            Refusal::BadForm(format!(
                "resource {:?}: derefUri is not base64: {e}",
                resource.resource_desc
            ))
        })
}

/// An exercise or test says so before anything else, so nobody who hears it takes it
/// for a real warning.
fn marked(text: String, purpose: Purpose, language: &str) -> String {
    let chinese = language.to_ascii_lowercase().starts_with("zh")
        || language.to_ascii_lowercase().starts_with("cmn");
    let mark = match (purpose, chinese) {
        (Purpose::Actual, _) => return text,
        (Purpose::Exercise, true) => "演练。",
        (Purpose::Test, true) => "测试。",
        (Purpose::Exercise, false) => "Exercise. ",
        (Purpose::Test, false) => "Test. ",
    };
    format!("{mark}{text}")
}

/// What a loudspeaker says for a CAP `info`: the headline (or the event), then the
/// description, then the instruction, each once, in that order.
pub fn spoken_text(info: &Info) -> String {
    let headline = info.headline.as_deref().unwrap_or(&info.event);
    let mut parts: Vec<&str> = vec![headline];
    parts.extend(info.description.as_deref());
    parts.extend(info.instruction.as_deref());
    let chinese = parts
        .iter()
        .any(|p| p.chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c)));
    let mut text = String::new();
    for part in parts {
        let part = part.split_whitespace().collect::<Vec<_>>().join(" ");
        if part.is_empty() {
            continue;
        }
        if !text.is_empty() {
            text.push_str(if chinese { "" } else { " " });
        }
        text.push_str(&part);
        if !part.ends_with(['.', '。', '!', '！', '?', '？']) {
            text.push_str(if chinese { "。" } else { "." });
        }
    }
    text
}

fn first_sentence(text: &str) -> String {
    let end = text
        .char_indices()
        .find(|(_, c)| matches!(c, '。' | '.' | '！' | '!' | '\n'))
        .map(|(i, _)| i)
        .unwrap_or(text.len());
    text[..end].chars().take(60).collect()
}

#[cfg(test)]
mod tests;
