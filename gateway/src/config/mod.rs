//! The node's configuration: one TOML file per node, validated before anything starts.
//!
//! Every fault names the file, the line and the key, in the form
//! `district.toml:12: downstream[1].codec: unknown codec "g729"`. Syntax and type
//! errors come from the TOML parser with their position; the rules that span several
//! keys (a district needs a source, a street needs an address to listen on, names and
//! addresses are unique) are checked here against the same positions.

mod alerts;
mod cascade;
mod patching;
mod terminals;

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use drivers::rtp::payload::PayloadFormat;

pub use alerts::{AlertsConfig, ApiConfig, DEFAULT_API_LISTEN};
pub use cascade::{CascadeConfig, CascadeLink, CascadeOrigin};
pub use patching::{
    AudioBackend, LinesBackend, LinkConfig, PatchingConfig, PttWiring, RadioConfig, ZoneConfig,
    ZoneSpeaker,
};
pub use terminals::{SatelliteConfig, TerminalConfig, default_baud, kind_name};

use crate::alert::model::AreaCode;
use serde::Deserialize;
use toml::Spanned;

/// A configuration fault, located.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    /// 1-based line, 0 when the fault is not tied to a line (file unreadable).
    pub line: usize,
    pub key: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            0 => write!(f, "{}: {}", self.file.display(), self.message),
            line if self.key.is_empty() => {
                write!(f, "{}:{}: {}", self.file.display(), line, self.message)
            }
            line => write!(
                f,
                "{}:{}: {}: {}",
                self.file.display(),
                line,
                self.key,
                self.message
            ),
        }
    }
}

impl std::error::Error for ConfigError {}

/// The tier a node serves in the cascade.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    /// The command centre: originates voice.
    District,
    /// A street or town gateway: forwards to its loudspeakers and village gateways.
    Street,
    /// A village broadcast room: forwards to its own loudspeakers.
    Village,
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Tier::District => "district",
            Tier::Street => "street",
            Tier::Village => "village",
        })
    }
}

/// What a downstream address is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum DownstreamKind {
    /// Another emcomm node of the next tier.
    Gateway,
    /// An IP loudspeaker or amplifier endpoint.
    #[default]
    Loudspeaker,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    node: RawNode,
    #[serde(default)]
    rtp: RawRtp,
    source: Option<Spanned<RawSource>>,
    #[serde(default)]
    upstream: RawUpstream,
    #[serde(default)]
    downstream: Vec<RawDownstream>,
    api: Option<alerts::RawApi>,
    alerts: Option<Spanned<alerts::RawAlerts>>,
    patching: Option<Spanned<patching::RawPatching>>,
    #[serde(default)]
    radio: Vec<patching::RawRadio>,
    #[serde(default)]
    link: Vec<patching::RawLink>,
    #[serde(default)]
    zone: Vec<patching::RawZone>,
    #[serde(default)]
    patch: Vec<patching::RawPatch>,
    satellite: Option<Spanned<terminals::RawSatellite>>,
    #[serde(default)]
    terminal: Vec<terminals::RawTerminal>,
    cascade: Option<cascade::RawCascade>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNode {
    name: Spanned<String>,
    tier: Spanned<Tier>,
    area: Spanned<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawRtp {
    listen: Option<Spanned<SocketAddr>>,
    opus_payload_type: Option<Spanned<u8>>,
    opus_bitrate: Option<Spanned<u32>>,
    rtcp_interval_ms: Option<Spanned<u64>>,
    input_timeout_ms: Option<Spanned<u64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSource {
    files: Option<Vec<Spanned<PathBuf>>>,
    device: Option<String>,
    #[serde(default)]
    gap_ms: u64,
    #[serde(default = "one")]
    repeat: u32,
}

fn one() -> u32 {
    1
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawUpstream {
    #[serde(default)]
    allow: Vec<IpAddr>,
    /// The parent's control API, where receipts are reported.
    api: Option<Spanned<String>>,
    /// A file holding this node's token for the parent's API (role `node`).
    token_file: Option<Spanned<PathBuf>>,
    /// The SRTP key file of the voice link from the parent gateway.
    srtp_key: Option<Spanned<PathBuf>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDownstream {
    name: Spanned<String>,
    address: Spanned<SocketAddr>,
    #[serde(default)]
    codec: Option<Spanned<String>>,
    #[serde(default)]
    kind: DownstreamKind,
    area: Option<Spanned<String>>,
    #[serde(default)]
    exercises: bool,
    /// The SRTP key file of the voice link to this destination.
    srtp_key: Option<Spanned<PathBuf>>,
}

/// Where a district's voice comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum VoiceSource {
    /// Audio files played in order, `gap` of silence after each, the whole `repeat`
    /// times; then the stream ends.
    Files {
        files: Vec<PathBuf>,
        gap: Duration,
        repeat: u32,
    },
    /// A capture device (`default` for the system's default).
    Device(String),
}

/// One destination of this node's voice.
#[derive(Debug, Clone, PartialEq)]
pub struct Downstream {
    pub name: String,
    /// RTP goes here; RTCP to the next port up (RFC 3550 §11).
    pub address: SocketAddr,
    pub format: PayloadFormat,
    pub kind: DownstreamKind,
    /// Where it is (GB/T 2260): alerts reach it when one of their areas covers this
    /// code (or, for a gateway, lies inside it). The node's own code when not given.
    pub area: AreaCode,
    /// Whether it plays `Exercise` and `Test` alerts.
    pub exercises: bool,
    /// The SRTP key file of the link (`crate::voice::srtp`): voice and RTCP to and from
    /// this destination are SRTP under it. Plain RTP without one.
    pub srtp_key: Option<PathBuf>,
}

/// Where a node reports its loudspeakers' receipts: its parent's control API.
#[derive(Debug, Clone, PartialEq)]
pub struct UpstreamApi {
    /// `http://HOST:PORT` of the parent's API.
    pub url: String,
    /// The file holding this node's token (role `node` at the parent).
    pub token_file: PathBuf,
}

/// A validated node configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub name: String,
    pub tier: Tier,
    /// The node's administrative division code (GB/T 2260, 6, 9 or 12 digits).
    pub area: String,
    /// RTP is received here (RTCP on the next port up); `None` for a district that
    /// sends from an ephemeral port.
    pub listen: Option<SocketAddr>,
    pub opus_payload_type: u8,
    pub opus_bitrate: u32,
    pub rtcp_interval: Duration,
    /// Silence on the input after which the stream is taken to have ended.
    pub input_timeout: Duration,
    pub source: Option<VoiceSource>,
    /// Hosts whose RTP is accepted; empty accepts any (see docs/limitations.md).
    pub upstream_allow: Vec<IpAddr>,
    /// The SRTP key file of the voice link from the parent: with one, only SRTP under it
    /// is taken from above.
    pub upstream_srtp_key: Option<PathBuf>,
    pub downstream: Vec<Downstream>,
    /// The parent's control API, to report receipts to; `None` when not reporting.
    pub upstream_api: Option<UpstreamApi>,
    /// The control API; `None` when the node serves none.
    pub api: Option<ApiConfig>,
    /// The alert path; `None` when the node takes no alerts.
    pub alerts: Option<AlertsConfig>,
    /// Radio ports, links, zones and patches (`[patching]`, `[[radio]]`, `[[link]]`,
    /// `[[zone]]`, `[[patch]]`).
    pub patching: Option<PatchingConfig>,
    /// Satellite terminals (`[satellite]`, `[[terminal]]`); `None` when there are none.
    pub satellite: Option<SatelliteConfig>,
    /// Signed frames to and from the neighbours (`[cascade]`); `None` when not in one.
    pub cascade: Option<CascadeConfig>,
}

/// Locates byte offsets of one file.
struct Locator<'a> {
    file: &'a Path,
    text: &'a str,
}

impl Locator<'_> {
    fn line_of(&self, offset: usize) -> usize {
        let end = offset.min(self.text.len());
        self.text.as_bytes()[..end]
            .iter()
            .filter(|b| **b == b'\n')
            .count()
            + 1
    }

    /// The dotted key (`downstream[2].codec`) whose line holds byte `offset`, or the
    /// table, when the offset is on a table header or between keys.
    fn key_at(&self, offset: usize) -> String {
        let mut table = String::new();
        let mut array_counts: HashMap<String, usize> = HashMap::new();
        let mut start = 0;
        for line in self.text.split_inclusive('\n') {
            let end = start + line.len();
            let trimmed = line.trim();
            if let Some(name) = trimmed
                .strip_prefix("[[")
                .and_then(|l| l.split("]]").next())
            {
                let name = name.trim().to_string();
                let count = array_counts.entry(name.clone()).or_insert(0);
                table = format!("{name}[{count}]");
                *count += 1;
            } else if let Some(name) = trimmed.strip_prefix('[').and_then(|l| l.split(']').next()) {
                table = name.trim().to_string();
            }
            if offset < end {
                return match trimmed.split_once('=') {
                    Some((key, _)) if !trimmed.starts_with('[') && table.is_empty() => {
                        key.trim().to_string()
                    }
                    Some((key, _)) if !trimmed.starts_with('[') => {
                        format!("{table}.{}", key.trim())
                    }
                    _ => table,
                };
            }
            start = end;
        }
        table
    }

    fn error(&self, span: Range<usize>, key: &str, message: impl Into<String>) -> ConfigError {
        ConfigError {
            file: self.file.to_path_buf(),
            line: self.line_of(span.start),
            key: key.to_string(),
            message: message.into(),
        }
    }
}

/// Rewrites the parser's messages in an operator's words.
fn plain_message(message: &str) -> String {
    let mut message = message.trim_end().to_string();
    for (jargon, plain) in [
        (
            "invalid socket address syntax",
            "not an IP address with a port, such as 127.0.0.1:5004 (host names are not accepted, ports go up to 65535)",
        ),
        (
            "invalid IP address syntax",
            "not an IP address, such as 127.0.0.1",
        ),
        ("expected u8", "expected a whole number from 0 to 255"),
        ("expected u16", "expected a whole number from 0 to 65535"),
        ("expected u32", "expected a whole number"),
        ("expected u64", "expected a whole number"),
    ] {
        message = message.replace(jargon, plain);
    }
    message
}

impl Config {
    /// Reads and validates the configuration in `path`. Relative source files are
    /// taken from the configuration file's folder.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.to_path_buf(),
            line: 0,
            key: String::new(),
            message: format!("cannot read: {e}"),
        })?;
        Config::parse(path, &text)
    }

    /// Validates configuration `text` that was read from `path`.
    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let at = Locator { file: path, text };
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            let span = e.span().unwrap_or(0..0);
            let key = at.key_at(span.start);
            at.error(span, &key, plain_message(e.message()))
        })?;

        let area = raw.node.area.get_ref();
        if !matches!(area.len(), 6 | 9 | 12) || !area.bytes().all(|b| b.is_ascii_digit()) {
            return Err(at.error(
                raw.node.area.span(),
                "node.area",
                format!("{area:?} is not a GB/T 2260 division code of 6, 9 or 12 digits"),
            ));
        }
        if raw.node.name.get_ref().trim().is_empty() {
            return Err(at.error(raw.node.name.span(), "node.name", "must not be empty"));
        }

        let opus_payload_type = match raw.rtp.opus_payload_type {
            Some(pt) if !(96..=127).contains(pt.get_ref()) => {
                return Err(at.error(
                    pt.span(),
                    "rtp.opus_payload_type",
                    "Opus needs a dynamic payload type, 96 to 127 (RFC 3551 §6)",
                ));
            }
            Some(pt) => *pt.get_ref(),
            None => drivers::rtp::payload::DEFAULT_OPUS_PAYLOAD_TYPE,
        };
        let opus_bitrate = match raw.rtp.opus_bitrate {
            Some(rate) if !(6_000..=510_000).contains(rate.get_ref()) => {
                return Err(at.error(
                    rate.span(),
                    "rtp.opus_bitrate",
                    "Opus takes 6000 to 510000 bit/s",
                ));
            }
            Some(rate) => *rate.get_ref(),
            None => 32_000,
        };
        let millis = |value: &Option<Spanned<u64>>, key: &str, default: u64, min: u64| match value {
            Some(v) if *v.get_ref() < min => {
                Err(at.error(v.span(), key, format!("must be at least {min} ms")))
            }
            Some(v) => Ok(Duration::from_millis(*v.get_ref())),
            None => Ok(Duration::from_millis(default)),
        };
        let rtcp_interval = millis(
            &raw.rtp.rtcp_interval_ms,
            "rtp.rtcp_interval_ms",
            5_000,
            100,
        )?;
        let input_timeout = millis(
            &raw.rtp.input_timeout_ms,
            "rtp.input_timeout_ms",
            2_000,
            100,
        )?;

        let tier = *raw.node.tier.get_ref();
        let base = path.parent().unwrap_or(Path::new("."));
        let source = match (&raw.source, tier) {
            (None, Tier::District) if raw.alerts.is_none() && raw.cascade.is_none() => {
                return Err(at.error(
                    raw.node.tier.span(),
                    "source",
                    "a district node needs a [source] of voice, an [alerts] table or a [cascade]",
                ));
            }
            (Some(source), Tier::Street | Tier::Village) => {
                return Err(at.error(
                    source.span(),
                    "source",
                    format!("a {tier} node relays voice and takes no [source]"),
                ));
            }
            (None, _) => None,
            (Some(spanned), Tier::District) => {
                let source = spanned.get_ref();
                match (&source.files, &source.device) {
                    (Some(files), None) if !files.is_empty() => {
                        let mut resolved = Vec::with_capacity(files.len());
                        for (i, file) in files.iter().enumerate() {
                            let path = base.join(file.get_ref());
                            if !path.is_file() {
                                return Err(at.error(
                                    file.span(),
                                    &format!("source.files[{i}]"),
                                    format!("{} does not exist (relative paths are taken from the configuration's folder)", path.display()),
                                ));
                            }
                            resolved.push(path);
                        }
                        if source.repeat == 0 {
                            return Err(at.error(
                                spanned.span(),
                                "source.repeat",
                                "must be at least 1",
                            ));
                        }
                        Some(VoiceSource::Files {
                            files: resolved,
                            gap: Duration::from_millis(source.gap_ms),
                            repeat: source.repeat,
                        })
                    }
                    (None, Some(device)) => Some(VoiceSource::Device(device.clone())),
                    _ => {
                        return Err(at.error(
                            spanned.span(),
                            "source",
                            "give either `files` (a non-empty list) or `device`",
                        ));
                    }
                }
            }
        };

        let listen = raw.rtp.listen.as_ref().map(|l| *l.get_ref());
        if tier != Tier::District && listen.is_none() {
            return Err(at.error(
                raw.node.tier.span(),
                "rtp.listen",
                format!("a {tier} node needs rtp.listen, the address its upstream sends to"),
            ));
        }
        if let Some(l) = &raw.rtp.listen {
            if l.get_ref().port() == 0 && tier != Tier::District || l.get_ref().port() == u16::MAX {
                return Err(at.error(
                    l.span(),
                    "rtp.listen",
                    "needs a fixed port below 65535 (RTCP uses the next one)",
                ));
            }
        }

        let patches_radios =
            raw.patching.is_some() || !raw.radio.is_empty() || !raw.link.is_empty();
        if raw.downstream.is_empty()
            && !patches_radios
            && raw.terminal.is_empty()
            && raw.cascade.is_none()
        {
            return Err(at.error(
                raw.node.tier.span(),
                "downstream",
                "no [[downstream]] destination, no [[radio]], no [[terminal]] and no [cascade]: the node would relay to nobody",
            ));
        }
        let mut names = HashSet::new();
        let mut addresses = HashSet::new();
        let mut downstream = Vec::with_capacity(raw.downstream.len());
        for (i, d) in raw.downstream.iter().enumerate() {
            let key = |field: &str| format!("downstream[{i}].{field}");
            if !names.insert(d.name.get_ref().clone()) {
                return Err(at.error(
                    d.name.span(),
                    &key("name"),
                    format!("{:?} is used twice", d.name.get_ref()),
                ));
            }
            let address = *d.address.get_ref();
            if address.port() == 0 || address.port() == u16::MAX {
                return Err(at.error(
                    d.address.span(),
                    &key("address"),
                    "needs a port from 1 to 65534 (RTCP uses the next one)",
                ));
            }
            if !addresses.insert(address) {
                return Err(at.error(
                    d.address.span(),
                    &key("address"),
                    format!("{address} is used twice"),
                ));
            }
            // Each address also takes the next port for RTCP (RFC 3550 §11).
            let rtcp = SocketAddr::new(address.ip(), address.port() + 1);
            let below = SocketAddr::new(address.ip(), address.port() - 1);
            if let Some(other) = [rtcp, below].into_iter().find(|a| addresses.contains(a)) {
                return Err(at.error(
                    d.address.span(),
                    &key("address"),
                    format!("{address} and {other} are one port apart: each destination's RTCP uses its port + 1"),
                ));
            }
            if listen.is_some_and(|l| {
                l == address || l.port().abs_diff(address.port()) == 1 && l.ip() == address.ip()
            }) {
                return Err(at.error(
                    d.address.span(),
                    &key("address"),
                    "is this node's own RTP or RTCP address: it would relay to itself",
                ));
            }
            let format = match &d.codec {
                None => PayloadFormat::Opus {
                    payload_type: opus_payload_type,
                },
                Some(codec) => match codec.get_ref().parse::<PayloadFormat>() {
                    Ok(PayloadFormat::Opus { .. }) => PayloadFormat::Opus {
                        payload_type: opus_payload_type,
                    },
                    Ok(format) => format,
                    Err(e) => return Err(at.error(codec.span(), &key("codec"), e.to_string())),
                },
            };
            let area = match &d.area {
                None => area
                    .parse()
                    .map_err(|e: String| at.error(raw.node.area.span(), "node.area", e))?,
                Some(a) => {
                    let code: AreaCode = a
                        .get_ref()
                        .parse()
                        .map_err(|e: String| at.error(a.span(), &key("area"), e))?;
                    if !code.as_str().starts_with(area.as_str()) {
                        return Err(at.error(
                            a.span(),
                            &key("area"),
                            format!("{code} is not inside this node's area {area}"),
                        ));
                    }
                    code
                }
            };
            downstream.push(Downstream {
                name: d.name.get_ref().clone(),
                address,
                format,
                kind: d.kind,
                area,
                exercises: d.exercises,
                srtp_key: d.srtp_key.as_ref().map(|k| base.join(k.get_ref())),
            });
        }

        let patching = patching::patching(
            &patching::RawTables {
                patching: raw.patching.as_ref(),
                radios: &raw.radio,
                links: &raw.link,
                zones: &raw.zone,
                patches: &raw.patch,
            },
            &downstream,
            raw.alerts.is_some(),
            (opus_payload_type, opus_bitrate),
            &at,
            base,
        )?;
        let upstream_api = match (&raw.upstream.api, &raw.upstream.token_file) {
            (None, None) => None,
            (Some(url), Some(token)) => {
                if !url.get_ref().starts_with("http://") {
                    return Err(at.error(
                        url.span(),
                        "upstream.api",
                        "must be an http:// address of the parent's control API",
                    ));
                }
                Some(UpstreamApi {
                    url: url.get_ref().trim_end_matches('/').to_string(),
                    token_file: base.join(token.get_ref()),
                })
            }
            (Some(url), None) => {
                return Err(at.error(
                    url.span(),
                    "upstream.token_file",
                    "reporting to the parent needs this node's token: add token_file",
                ));
            }
            (None, Some(token)) => {
                return Err(at.error(
                    token.span(),
                    "upstream.api",
                    "a token without the parent's API address: add api",
                ));
            }
        };
        // A node with `[alerts]` speaks alerts itself; it forwards no voice from above.
        if let (Some(a), true) = (&raw.alerts, tier != Tier::District) {
            if let Some(url) = &raw.upstream.api {
                return Err(at.error(
                    url.span(),
                    "upstream.api",
                    "a node with [alerts] relays no voice from above, so it has no receipts to post here: its receipts go up the cascade",
                ));
            }
            if !raw.upstream.allow.is_empty() || raw.upstream.srtp_key.is_some() {
                return Err(at.error(
                    a.span(),
                    "upstream.allow",
                    "a node with [alerts] relays no voice from above: remove [upstream], or [alerts] to relay the district's voice",
                ));
            }
        }
        if let (Some(key), Tier::District) = (&raw.upstream.srtp_key, tier) {
            return Err(at.error(
                key.span(),
                "upstream.srtp_key",
                "a district has no voice from above: an SRTP key goes on each [[downstream]] gateway",
            ));
        }
        let api = raw.api.as_ref().map(|a| alerts::api(a, base));
        let alerts = match &raw.alerts {
            None => None,
            Some(a) if api.is_none() => {
                return Err(at.error(
                    a.span(),
                    "alerts",
                    "alerts come in through the control API: add an [api] table with `operators`",
                ));
            }
            Some(a) => Some(alerts::alerts(a.get_ref(), a.span(), &at, base)?),
        };
        let satellite = terminals::satellite(
            terminals::RawTables {
                satellite: raw.satellite.as_ref(),
                terminals: &raw.terminal,
                other_state_dirs: alerts
                    .iter()
                    .map(|a| a.state_dir.clone())
                    .chain(patching.iter().map(|p| p.state_dir.clone()))
                    .collect(),
            },
            &at,
            base,
        )?;

        let terminal_names: Vec<String> = satellite
            .iter()
            .flat_map(|s| s.terminals.iter().map(|t| t.name.clone()))
            .collect();
        let cascade = match &raw.cascade {
            Some(c) => {
                // A radio on a link speaks what this node's playout plays: none
                // without [alerts].
                let radios: Vec<String> = patching
                    .iter()
                    .filter(|_| alerts.is_some())
                    .flat_map(|p| p.radios.iter().map(|r| r.name.clone()))
                    .collect();
                Some(cascade::cascade(c, &terminal_names, &radios, &at, base)?)
            }
            None => None,
        };

        Ok(Config {
            name: raw.node.name.into_inner(),
            tier,
            area: raw.node.area.into_inner(),
            listen,
            opus_payload_type,
            opus_bitrate,
            rtcp_interval,
            input_timeout,
            source,
            upstream_allow: raw.upstream.allow.clone(),
            upstream_srtp_key: raw
                .upstream
                .srtp_key
                .as_ref()
                .map(|k| base.join(k.get_ref())),
            upstream_api,
            downstream,
            api,
            alerts,
            patching,
            satellite,
            cascade,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STREET: &str = r#"
[node]
name = "street-001"
tier = "street"
area = "410503001"

[rtp]
listen = "127.0.0.1:5010"

[[downstream]]
name = "pole-1"
address = "127.0.0.1:6000"

[[downstream]]
name = "pole-2"
address = "127.0.0.1:6002"
codec = "pcmu"
"#;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(Path::new("street.toml"), text)
    }

    #[test]
    fn a_street_config_parses_with_defaults() {
        let config = parse(STREET).expect("valid");
        assert_eq!(config.tier, Tier::Street);
        assert_eq!(config.downstream[0].format, PayloadFormat::OPUS);
        assert_eq!(config.downstream[1].format, PayloadFormat::Pcmu);
        assert_eq!(config.rtcp_interval, Duration::from_secs(5));
    }

    #[test]
    fn an_unknown_codec_names_file_line_and_key() {
        let text = STREET.replace("\"pcmu\"", "\"g729\"");
        let e = parse(&text).expect_err("invalid");
        assert_eq!(
            e.to_string(),
            "street.toml:17: downstream[1].codec: unknown codec \"g729\": expected opus, pcmu or pcma"
        );
    }

    #[test]
    fn a_bad_address_is_reported_where_it_is() {
        let text = STREET.replace("127.0.0.1:6002", "127.0.0.1");
        let e = parse(&text).expect_err("invalid");
        assert_eq!(e.line, 16);
        assert_eq!(e.key, "downstream[1].address");
        assert!(e.message.contains("not an IP address with a port"), "{e}");
    }

    #[test]
    fn an_unknown_key_is_refused() {
        let text = STREET.replace("tier = \"street\"", "tier = \"street\"\ncolour = \"red\"");
        let e = parse(&text).expect_err("invalid");
        assert_eq!(e.line, 5);
        assert!(e.message.contains("unknown field `colour`"), "{e}");
    }

    #[test]
    fn a_street_with_alerts_plays_them_itself_and_takes_no_voice_from_upstream() {
        let alerts = "\n[api]\nlisten = \"127.0.0.1:8471\"\noperators = \"operators.toml\"\n\n\
                      [alerts]\nstate_dir = \"state\"\n";
        let config = parse(&format!("{STREET}{alerts}")).expect("valid");
        assert!(config.alerts.is_some());
        let relaying = format!("{STREET}{alerts}\n[upstream]\nallow = [\"10.1.0.1\"]\n");
        let e = parse(&relaying).expect_err("invalid");
        assert_eq!(e.key, "upstream.allow");
        assert!(e.message.contains("relays no voice from above"), "{e}");
        let keyed = format!("{STREET}{alerts}\n[upstream]\nsrtp_key = \"k.srtp.key\"\n");
        assert!(
            parse(&keyed).is_err(),
            "an SRTP key for voice it never takes"
        );
    }

    #[test]
    fn a_cascade_link_names_a_radio_of_this_node_only_going_down() {
        let text = format!(
            "{STREET}\n[api]\nlisten = \"127.0.0.1:8471\"\noperators = \"operators.toml\"\n\n\
             [alerts]\nstate_dir = \"state\"\n\n\
             [patching]\nstate_dir = \"state\"\n\n\
             [[radio]]\nname = \"tg-v\"\nlines = \"external:tg-v.sock\"\nptt = \"rts\"\n\n\
             [cascade]\nkey = \"street.sm2.key\"\nstate_dir = \"cascade\"\nlisten = \"127.0.0.1:7400\"\n\n\
             [[cascade.link]]\nname = \"village-1\"\npeer = \"410503001001\"\n\
             direction = \"down\"\nip = \"127.0.0.1:7401\"\nradio = \"tg-v\"\n"
        );
        let config = parse(&text).expect("valid");
        let links = &config.cascade.expect("cascade").links;
        assert_eq!(links[0].radio.as_deref(), Some("tg-v"));

        let e = parse(&text.replace("radio = \"tg-v\"", "radio = \"tg-x\"")).expect_err("invalid");
        assert_eq!(e.key, "cascade.link[0].radio");
        assert!(e.message.contains("no [[radio]] named \"tg-x\""), "{e}");
        let silent = text.replace("[alerts]\nstate_dir = \"state\"\n", "");
        let e = parse(&silent).expect_err("a radio on a node that plays nothing");
        assert!(e.message.contains("plays alerts ([alerts])"), "{e}");
        let up = text.replace(
            "410503001001\"\ndirection = \"down\"",
            "410503\"\ndirection = \"up\"",
        );
        let e = parse(&up).expect_err("invalid");
        assert!(
            e.message
                .contains("a radio serves a link with direction = \"down\""),
            "{e}"
        );
    }

    #[test]
    fn srtp_keys_name_files_beside_the_configuration() {
        let text = STREET.replace(
            "address = \"127.0.0.1:6000\"\n",
            "address = \"127.0.0.1:6000\"\nkind = \"gateway\"\nsrtp_key = \"keys/street-village.srtp.key\"\n",
        );
        let text = format!("{text}\n[upstream]\nsrtp_key = \"keys/district-street.srtp.key\"\n");
        let config = Config::parse(Path::new("/etc/emcomm/street.toml"), &text).expect("valid");
        assert_eq!(
            config.downstream[0].srtp_key.as_deref(),
            Some(Path::new("/etc/emcomm/keys/street-village.srtp.key"))
        );
        assert_eq!(config.downstream[1].srtp_key, None);
        assert_eq!(
            config.upstream_srtp_key.as_deref(),
            Some(Path::new("/etc/emcomm/keys/district-street.srtp.key"))
        );

        let district = format!(
            "{}\n[source]\ndevice = \"default\"\n",
            STREET
                .replace("\"street\"", "\"district\"")
                .replace("\n[rtp]\nlisten = \"127.0.0.1:5010\"\n", "")
        );
        parse(&district).expect("a district without an upstream key");
        let e = parse(&format!("{district}\n[upstream]\nsrtp_key = \"k\"\n")).expect_err("invalid");
        assert_eq!(e.key, "upstream.srtp_key");
    }

    #[test]
    fn a_district_without_source_is_refused() {
        let text = STREET.replace("\"street\"", "\"district\"");
        let e = parse(&text).expect_err("invalid");
        assert_eq!(e.key, "source");
    }

    #[test]
    fn an_area_code_must_have_6_9_or_12_digits() {
        let text = STREET.replace("410503001", "41050");
        assert_eq!(parse(&text).expect_err("invalid").key, "node.area");
    }

    #[test]
    fn duplicate_addresses_are_refused() {
        let text = STREET.replace("6002", "6000");
        let e = parse(&text).expect_err("invalid");
        assert_eq!((e.line, e.key.as_str()), (16, "downstream[1].address"));
    }

    #[test]
    fn type_errors_name_the_key_in_plain_words() {
        let text = STREET.replace(
            "listen = \"127.0.0.1:5010\"",
            "listen = \"127.0.0.1:5010\"\ninput_timeout_ms = \"2000\"",
        );
        let e = parse(&text).expect_err("invalid");
        assert_eq!(
            e.to_string(),
            "street.toml:9: rtp.input_timeout_ms: invalid type: string \"2000\", expected a whole number"
        );
    }

    #[test]
    fn a_destination_on_another_ones_rtcp_port_is_refused() {
        let text = STREET.replace("6002", "6001");
        let e = parse(&text).expect_err("invalid");
        assert_eq!(e.key, "downstream[1].address");
        assert!(e.message.contains("one port apart"), "{e}");
    }

    #[test]
    fn a_node_never_relays_to_itself() {
        let text = STREET.replace("127.0.0.1:6002", "127.0.0.1:5011");
        assert!(
            parse(&text)
                .expect_err("invalid")
                .message
                .contains("relay to itself")
        );
    }

    #[test]
    fn a_district_speaking_a_missing_file_is_refused_at_check_time() {
        let text = STREET.replace("\"street\"", "\"district\"").replace(
            "[rtp]\nlisten = \"127.0.0.1:5010\"",
            "[source]\nfiles = [\"no-such-file.wav\"]",
        );
        let e = parse(&text).expect_err("invalid");
        assert_eq!((e.line, e.key.as_str()), (8, "source.files[0]"));
        assert!(e.message.contains("does not exist"), "{e}");
    }

    #[test]
    fn a_street_needs_an_address_to_listen_on() {
        let text = STREET.replace("listen = \"127.0.0.1:5010\"", "");
        assert_eq!(parse(&text).expect_err("invalid").key, "rtp.listen");
    }
}
