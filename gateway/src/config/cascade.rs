//! The `[cascade]` table: this node's part in the signed frames between tiers, with
//! `[[cascade.origin]]` (whose frames it accepts) and `[[cascade.link]]` (its
//! neighbours and the bearers to each).

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::{ConfigError, Locator};
use crate::alert::model::AreaCode;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCascade {
    key: Spanned<PathBuf>,
    state_dir: Spanned<PathBuf>,
    listen: Spanned<SocketAddr>,
    skew_s: Option<u64>,
    heartbeat_s: Option<u64>,
    voice_grants: Option<bool>,
    time_from: Option<Spanned<String>>,
    #[serde(default)]
    origin: Vec<RawOrigin>,
    #[serde(default)]
    link: Vec<RawLink>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOrigin {
    area: Spanned<String>,
    public_key: Spanned<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLink {
    name: Spanned<String>,
    peer: Spanned<String>,
    direction: Spanned<String>,
    ip: Option<Spanned<SocketAddr>>,
    link_key: Option<Spanned<PathBuf>>,
    terminal: Option<Spanned<String>>,
    terminal_to: Option<Spanned<String>>,
    /// Seconds a frame over the terminal waits for its acknowledgement.
    terminal_ack_s: Option<u64>,
    /// A `[[radio]]` of this node that the neighbour's radio hears; only on a node
    /// with `[alerts]`.
    radio: Option<Spanned<String>>,
}

/// An origin whose frames this node accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CascadeOrigin {
    pub area: AreaCode,
    pub public_key: PathBuf,
}

/// A neighbour and the bearers to it, IP first, then the terminal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CascadeLink {
    pub name: String,
    pub peer: AreaCode,
    /// Towards the district (`up`) or a node below (`down`).
    pub up: bool,
    /// The neighbour's frame address over IP.
    pub ip: Option<SocketAddr>,
    pub link_key: Option<PathBuf>,
    /// A `[[terminal]]` that reaches the neighbour, and the neighbour's terminal.
    pub terminal: Option<(String, String)>,
    pub terminal_ack: Duration,
    /// A `[[radio]]` of this node on a talkgroup the neighbour's radio receives: while
    /// the link has no IP, an alert this node plays for the neighbour's area goes out
    /// on it as voice (370 MHz).
    pub radio: Option<String>,
}

/// This node's part in the cascade.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CascadeConfig {
    /// This node's SM2 private key (`emcomm keys generate`).
    pub key: PathBuf,
    /// Where `cascade.sqlite` lives: queued frames, replay memory, field reports.
    pub state_dir: PathBuf,
    /// Where frames over IP arrive (UDP).
    pub listen: SocketAddr,
    pub skew: Duration,
    pub heartbeat: Duration,
    /// A node that relays voice forwards only streams a signed stream grant covers
    /// (default); `false` forwards any stream from `[upstream] allow`, as outside a
    /// cascade.
    pub voice_grants: bool,
    /// A BeiDou `[[terminal]]` whose satellite time stamps and checks frames instead of
    /// the system clock, for a node cut off from NTP.
    pub time_from: Option<String>,
    pub origins: Vec<CascadeOrigin>,
    pub links: Vec<CascadeLink>,
}

pub(super) fn cascade(
    raw: &RawCascade,
    terminals: &[String],
    radios: &[String],
    at: &Locator,
    base: &Path,
) -> Result<CascadeConfig, ConfigError> {
    let area = |s: &Spanned<String>, key: &str| -> Result<AreaCode, ConfigError> {
        s.get_ref()
            .parse()
            .map_err(|e: String| at.error(s.span(), key, e))
    };
    let mut origins = Vec::new();
    for (i, o) in raw.origin.iter().enumerate() {
        origins.push(CascadeOrigin {
            area: area(&o.area, &format!("cascade.origin[{i}].area"))?,
            public_key: base.join(o.public_key.get_ref()),
        });
    }
    let mut names = HashSet::new();
    let mut links = Vec::new();
    for (i, l) in raw.link.iter().enumerate() {
        let key = |field: &str| format!("cascade.link[{i}].{field}");
        let name = l.name.get_ref();
        if name.is_empty() || !names.insert(name.clone()) {
            return Err(at.error(
                l.name.span(),
                &key("name"),
                "a link needs a name of its own",
            ));
        }
        let up = match l.direction.get_ref().as_str() {
            "up" => true,
            "down" => false,
            other => {
                return Err(at.error(
                    l.direction.span(),
                    &key("direction"),
                    format!("{other:?}: a link leads \"up\" (towards the district) or \"down\""),
                ));
            }
        };
        let terminal = match (&l.terminal, &l.terminal_to) {
            (None, None) => None,
            (Some(t), Some(to)) => {
                if !terminals.contains(t.get_ref()) {
                    return Err(at.error(
                        t.span(),
                        &key("terminal"),
                        format!("no [[terminal]] named {:?}", t.get_ref()),
                    ));
                }
                Some((t.get_ref().clone(), to.get_ref().clone()))
            }
            (Some(t), None) => {
                return Err(at.error(
                    t.span(),
                    &key("terminal_to"),
                    "a terminal route needs the neighbour's terminal: add terminal_to",
                ));
            }
            (None, Some(to)) => {
                return Err(at.error(to.span(), &key("terminal"), "terminal_to without terminal"));
            }
        };
        if l.ip.is_none() && terminal.is_none() {
            return Err(at.error(
                l.name.span(),
                &key("ip"),
                "a link needs a bearer: `ip`, or `terminal` and `terminal_to`",
            ));
        }
        if terminal.is_some() && l.link_key.is_none() {
            return Err(at.error(
                l.name.span(),
                &key("link_key"),
                "a terminal carries tagged frames: add the link's link_key",
            ));
        }
        let radio = match &l.radio {
            Some(r) if !radios.contains(r.get_ref()) => {
                return Err(at.error(
                    r.span(),
                    &key("radio"),
                    format!(
                        "no [[radio]] named {:?} on a node that plays alerts ([alerts]): the radio speaks what this node plays",
                        r.get_ref()
                    ),
                ));
            }
            Some(r) if up => {
                return Err(at.error(
                    r.span(),
                    &key("radio"),
                    "alerts go down: a radio serves a link with direction = \"down\"",
                ));
            }
            r => r.as_ref().map(|r| r.get_ref().clone()),
        };
        links.push(CascadeLink {
            name: name.clone(),
            peer: area(&l.peer, &key("peer"))?,
            up,
            ip: l.ip.as_ref().map(|a| *a.get_ref()),
            link_key: l.link_key.as_ref().map(|k| base.join(k.get_ref())),
            terminal,
            terminal_ack: Duration::from_secs(l.terminal_ack_s.unwrap_or(180)),
            radio,
        });
    }
    // A frame that came over a terminal has lost its origin's signature and goes on
    // with the next link's tag: with any terminal route, every link needs a key.
    if links.iter().any(|l| l.terminal.is_some()) {
        if let Some((i, l)) = links.iter().enumerate().find(|(_, l)| l.link_key.is_none()) {
            return Err(at.error(
                raw.link[i].name.span(),
                &format!("cascade.link[{i}].link_key"),
                format!(
                    "link {:?} needs a link_key: frames that came over this node's terminals go on with a link's tag",
                    l.name
                ),
            ));
        }
    }
    let time_from = match &raw.time_from {
        Some(t) if !terminals.contains(t.get_ref()) => {
            return Err(at.error(
                t.span(),
                "cascade.time_from",
                format!("no [[terminal]] named {:?}", t.get_ref()),
            ));
        }
        t => t.as_ref().map(|t| t.get_ref().clone()),
    };
    Ok(CascadeConfig {
        key: base.join(raw.key.get_ref()),
        state_dir: base.join(raw.state_dir.get_ref()),
        listen: *raw.listen.get_ref(),
        skew: Duration::from_secs(raw.skew_s.unwrap_or(30)),
        heartbeat: Duration::from_secs(raw.heartbeat_s.unwrap_or(10).max(1)),
        voice_grants: raw.voice_grants.unwrap_or(true),
        time_from,
        origins,
        links,
    })
}
