//! The `[patching]`, `[[radio]]` and `[[patch]]` tables: radio ports on their accessory
//! ports, and the patches that join them.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use drivers::radio::carrier::{CarrierSource, RxSettings, VoxSettings};
use drivers::radio::command::CommandTemplate;
use drivers::radio::ptt::PttTiming;
use drivers::rtp::payload::PayloadFormat;
use drivers::serial::modem_lines::{InputLine, OutputLine, Wired};
use serde::Deserialize;
use toml::Spanned;

use super::{ConfigError, Downstream, DownstreamKind, Locator};
use crate::patch::bus::MemberInfo;
use crate::patch::floor::FloorSettings;
use crate::patch::{MemberId, MemberKind, PatchMode, PatchSpec};

/// The TX lead accepted: a trunked channel grant takes 300–500 ms; beyond two seconds
/// a talker loses the start of every over.
const MAX_TX_LEAD_MS: u64 = 2_000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPatching {
    state_dir: Spanned<PathBuf>,
    hang_ms: Option<Spanned<u64>>,
    stuck_carrier_s: Option<Spanned<u64>>,
    dtmf_pin: Option<Spanned<String>>,
    dtmf_inter_digit_ms: Option<Spanned<u64>>,
    recordings: Option<PathBuf>,
    retention_days: Option<Spanned<u32>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRadio {
    name: Spanned<String>,
    #[serde(default)]
    priority: bool,
    lines: Spanned<String>,
    #[serde(default = "default_baud")]
    baud: u32,
    ptt: Spanned<String>,
    ptt_key_command: Option<Spanned<String>>,
    ptt_release_command: Option<Spanned<String>>,
    #[serde(default = "default_cos")]
    cos: Spanned<String>,
    vox_threshold_dbfs: Option<f32>,
    vox_attack_ms: Option<u64>,
    vox_hang_ms: Option<u64>,
    #[serde(default = "default_audio")]
    audio: String,
    tx_lead_ms: Option<Spanned<u64>>,
    ptt_hang_ms: Option<u64>,
    timeout_s: Option<Spanned<u64>>,
    timeout_reset_ms: Option<u64>,
    rx_delay_ms: Option<u64>,
    min_open_ms: Option<u64>,
    talkgroup: Option<u32>,
    select_command: Option<Spanned<String>>,
    command_port: Option<PathBuf>,
    #[serde(default = "default_baud")]
    command_baud: u32,
    rx_gain_db: Option<Spanned<f32>>,
    tx_gain_db: Option<Spanned<f32>>,
}

fn default_baud() -> u32 {
    9600
}

fn default_cos() -> Spanned<String> {
    Spanned::new(0..0, "dcd".into())
}

fn default_audio() -> String {
    "external".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLink {
    name: Spanned<String>,
    listen: Spanned<SocketAddr>,
    send_to: Spanned<SocketAddr>,
    #[serde(default)]
    priority: bool,
    /// The SRTP key file shared with the far gateway.
    srtp_key: Option<Spanned<PathBuf>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawZone {
    name: Spanned<String>,
    loudspeakers: Option<Vec<String>>,
    area: Option<String>,
}

/// The patching tables of a configuration file, as read.
pub(super) struct RawTables<'a> {
    pub patching: Option<&'a Spanned<RawPatching>>,
    pub radios: &'a [RawRadio],
    pub links: &'a [RawLink],
    pub zones: &'a [RawZone],
    pub patches: &'a [RawPatch],
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPatch {
    name: Spanned<String>,
    number: Option<u16>,
    members: Vec<String>,
    simulselect_console: Option<String>,
}

/// Where a radio's modem lines are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinesBackend {
    /// A serial port (USB adapter, on-board UART) at a speed.
    Serial { path: PathBuf, baud: u32 },
    /// A backend listening on a Unix socket: the radio simulator, a test rig.
    External(PathBuf),
}

/// What keys a radio's transmitter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PttWiring {
    /// RTS or DTR of the port's lines.
    Line(Wired<OutputLine>),
    /// GPIO `pin` of a CM108 sound card's HID device.
    Cm108 {
        path: PathBuf,
        pin: u8,
        inverted: bool,
    },
    /// Commands on the radio's command channel.
    Command { key: Vec<u8>, release: Vec<u8> },
}

/// Where a radio's audio is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AudioBackend {
    /// In the external backend's connection.
    External,
    /// A sound card, by cpal device name (`default` for the system's default).
    Device(String),
}

/// One radio on its accessory port.
#[derive(Debug, Clone, PartialEq)]
pub struct RadioConfig {
    pub name: String,
    /// A dispatcher's radio: pre-empts other talkers.
    pub priority: bool,
    pub lines: LinesBackend,
    pub ptt: PttWiring,
    /// The COS line, when the carrier comes from one.
    pub cos: Option<Wired<InputLine>>,
    pub rx: RxSettings,
    pub tx: PttTiming,
    pub audio: AudioBackend,
    pub talkgroup: Option<u32>,
    /// Sent on the command channel when the port starts, to select `talkgroup`.
    pub select_command: Option<Vec<u8>>,
    /// The radio's command channel: a serial port of its own, never the one PTT hangs
    /// on (opening a port raises its lines).
    pub command_port: Option<PathBuf>,
    pub command_baud: u32,
    /// Gain applied to what the radio hears, before COS/VOX and the patch.
    pub rx_gain_db: f32,
    /// Gain applied to what the radio transmits.
    pub tx_gain_db: f32,
}

/// An RTP link to another gateway: Opus both ways.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkConfig {
    pub name: String,
    /// Where the far gateway's RTP arrives (its RTCP on the next port).
    pub listen: SocketAddr,
    /// The far gateway's link address.
    pub send_to: SocketAddr,
    pub priority: bool,
    /// The SRTP key file shared with the far gateway (`crate::voice::srtp`): with one,
    /// the link sends and takes only SRTP and SRTCP under it.
    pub srtp_key: Option<PathBuf>,
}

/// One loudspeaker of a zone: where its RTP goes and in which format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneSpeaker {
    pub name: String,
    pub address: SocketAddr,
    pub format: PayloadFormat,
}

/// A set of this node's loudspeakers that a patch can talk to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneConfig {
    pub name: String,
    pub loudspeakers: Vec<ZoneSpeaker>,
}

/// Patching on this node.
#[derive(Debug, Clone, PartialEq)]
pub struct PatchingConfig {
    /// Where live patches are kept across restarts.
    pub state_dir: PathBuf,
    pub floor: FloorSettings,
    pub dtmf_pin: Option<String>,
    pub dtmf_inter_digit: Duration,
    /// Where patched transmissions are recorded, if they are.
    pub recordings: Option<PathBuf>,
    /// How long a recording is kept.
    pub retention: Duration,
    pub radios: Vec<RadioConfig>,
    pub links: Vec<LinkConfig>,
    pub zones: Vec<ZoneConfig>,
    /// The Opus bit rate links and zones send at.
    pub opus_bitrate: u32,
    /// The payload type of Opus on links.
    pub opus_payload_type: u8,
    /// The permanent patches.
    pub patches: Vec<PatchSpec>,
}

pub(super) fn patching(
    tables: &RawTables,
    downstream: &[Downstream],
    alert_node: bool,
    opus: (u8, u32),
    at: &Locator,
    base: &Path,
) -> Result<Option<PatchingConfig>, ConfigError> {
    let (radios, patches) = (tables.radios, tables.patches);
    let Some(spanned) = tables.patching else {
        let first = radios
            .first()
            .map(|r| (r.name.span(), "radio"))
            .or(tables.links.first().map(|l| (l.name.span(), "link")))
            .or(tables.zones.first().map(|z| (z.name.span(), "zone")))
            .or(patches.first().map(|p| (p.name.span(), "patch")));
        if let Some((span, key)) = first {
            return Err(at.error(
                span,
                key,
                format!("[[{key}]] needs a [patching] table with `state_dir`"),
            ));
        }
        return Ok(None);
    };
    let raw = spanned.get_ref();
    let within = |value: &Option<Spanned<u64>>,
                  key: &str,
                  range: std::ops::RangeInclusive<u64>,
                  unit: &str| match value {
        Some(v) if !range.contains(v.get_ref()) => Err(at.error(
            v.span(),
            key,
            format!("must be {} to {} {unit}", range.start(), range.end()),
        )),
        Some(v) => Ok(Some(*v.get_ref())),
        None => Ok(None),
    };
    let stuck_carrier = within(
        &raw.stuck_carrier_s,
        "patching.stuck_carrier_s",
        1..=3600,
        "s",
    )?
    .map_or(FloorSettings::default().stuck_carrier, Duration::from_secs);
    let hang = within(&raw.hang_ms, "patching.hang_ms", 0..=10_000, "ms")?
        .map_or(FloorSettings::default().hang, Duration::from_millis);
    let inter_digit = within(
        &raw.dtmf_inter_digit_ms,
        "patching.dtmf_inter_digit_ms",
        500..=10_000,
        "ms",
    )?
    .unwrap_or(3_000);
    let floor = FloorSettings {
        hang,
        stuck_carrier,
    };
    let dtmf_pin = match &raw.dtmf_pin {
        Some(pin)
            if pin.get_ref().len() < 4
                || pin.get_ref().len() > 8
                || !pin.get_ref().bytes().all(|b| b.is_ascii_digit()) =>
        {
            return Err(at.error(pin.span(), "patching.dtmf_pin", "a PIN is 4 to 8 digits"));
        }
        Some(pin) => Some(pin.get_ref().clone()),
        None => None,
    };

    let state_dir = base.join(raw.state_dir.get_ref());
    let recordings = raw.recordings.as_ref().map(|d| base.join(d));
    if recordings.as_ref() == Some(&state_dir) {
        return Err(at.error(
            spanned.span(),
            "patching.recordings",
            "recordings need a folder of their own, apart from state_dir (old recordings are deleted there)",
        ));
    }
    let retention = match &raw.retention_days {
        Some(days) if *days.get_ref() == 0 => {
            return Err(at.error(
                days.span(),
                "patching.retention_days",
                "recordings are kept at least 1 day",
            ));
        }
        Some(days) => Duration::from_secs(u64::from(*days.get_ref()) * 86_400),
        None => Duration::from_secs(30 * 86_400),
    };

    let mut names = HashSet::new();
    let mut configured = Vec::with_capacity(radios.len());
    for (i, r) in radios.iter().enumerate() {
        let name = r.name.get_ref();
        if !names.insert(name.clone()) {
            return Err(at.error(
                r.name.span(),
                &format!("radio[{i}].name"),
                format!("{name:?} is used twice"),
            ));
        }
        configured.push(radio(r, i, at, base)?);
    }

    let mut links = Vec::with_capacity(tables.links.len());
    for (i, l) in tables.links.iter().enumerate() {
        let key = |field: &str| format!("link[{i}].{field}");
        let name = l.name.get_ref();
        if !names.insert(name.clone()) {
            return Err(at.error(
                l.name.span(),
                &key("name"),
                format!("{name:?} is used twice"),
            ));
        }
        let listen = *l.listen.get_ref();
        if matches!(listen.port(), 0 | u16::MAX) {
            return Err(at.error(
                l.listen.span(),
                &key("listen"),
                "needs a fixed port below 65535 (RTCP uses the next one)",
            ));
        }
        let send_to = *l.send_to.get_ref();
        if matches!(send_to.port(), 0 | u16::MAX) {
            return Err(at.error(
                l.send_to.span(),
                &key("send_to"),
                "needs a port from 1 to 65534 (RTCP uses the next one)",
            ));
        }
        links.push(LinkConfig {
            name: name.clone(),
            listen,
            send_to,
            priority: l.priority,
            srtp_key: l.srtp_key.as_ref().map(|k| base.join(k.get_ref())),
        });
    }

    let mut zones = Vec::with_capacity(tables.zones.len());
    for (i, z) in tables.zones.iter().enumerate() {
        let key = |field: &str| format!("zone[{i}].{field}");
        let name = z.name.get_ref();
        if alert_node {
            return Err(at.error(
                z.name.span(),
                &key("name"),
                "an alert node does not patch into loudspeaker zones yet: patch into a zone at a street or village gateway without [alerts]",
            ));
        }
        if !names.insert(name.clone()) {
            return Err(at.error(
                z.name.span(),
                &key("name"),
                format!("{name:?} is used twice"),
            ));
        }
        let speakers: Vec<&Downstream> = match (&z.loudspeakers, &z.area) {
            (Some(list), None) => {
                let mut found = Vec::with_capacity(list.len());
                for wanted in list {
                    match downstream.iter().find(|d| d.name == *wanted) {
                        Some(d) if d.kind == DownstreamKind::Loudspeaker => found.push(d),
                        Some(_) => {
                            return Err(at.error(
                                z.name.span(),
                                &key("loudspeakers"),
                                format!("{wanted:?} is a gateway, not a loudspeaker"),
                            ));
                        }
                        None => {
                            return Err(at.error(
                                z.name.span(),
                                &key("loudspeakers"),
                                format!("{wanted:?} is not a [[downstream]] of this node"),
                            ));
                        }
                    }
                }
                found
            }
            (None, Some(area)) => downstream
                .iter()
                .filter(|d| d.kind == DownstreamKind::Loudspeaker)
                .filter(|d| d.area.as_str().starts_with(area.as_str()))
                .collect(),
            _ => {
                return Err(at.error(
                    z.name.span(),
                    &key("name"),
                    "give either `loudspeakers` (names) or `area` (a division code)",
                ));
            }
        };
        if speakers.is_empty() {
            return Err(at.error(
                z.name.span(),
                &key("area"),
                "no loudspeaker of this node is in the zone",
            ));
        }
        zones.push(ZoneConfig {
            name: name.clone(),
            loudspeakers: speakers
                .into_iter()
                .map(|d| ZoneSpeaker {
                    name: d.name.clone(),
                    address: d.address,
                    format: d.format,
                })
                .collect(),
        });
    }

    let mut specs: Vec<PatchSpec> = Vec::with_capacity(patches.len());
    for (i, p) in patches.iter().enumerate() {
        let key = |field: &str| format!("patch[{i}].{field}");
        let number = p.number.unwrap_or(i as u16 + 1);
        if number == 0 {
            return Err(at.error(
                p.name.span(),
                &key("number"),
                "patch numbers start at 1 (they are keyed by DTMF)",
            ));
        }
        for member in &p.members {
            if !names.contains(member) {
                return Err(at.error(
                    p.name.span(),
                    &key("members"),
                    format!("{member:?} is not a [[radio]], [[link]] or [[zone]] of this node"),
                ));
            }
        }
        let mode = match &p.simulselect_console {
            None => PatchMode::Patch,
            Some(console) => PatchMode::Simulselect {
                console: MemberId(console.clone()),
            },
        };
        specs.push(PatchSpec {
            name: p.name.get_ref().clone(),
            number,
            members: p.members.iter().map(|m| MemberId(m.clone())).collect(),
            mode,
            permanent: true,
        });
    }
    // The bus checks the rest (loops, numbers, consoles) as it checks a live patch, so
    // the configuration and the API refuse the same things.
    let mut trial = crate::patch::bus::PatchBus::new(floor, members(&configured, &links, &zones));
    for (k, spec) in specs.iter().enumerate() {
        if let Err(e) = trial.upsert(spec.clone(), std::time::Instant::now()) {
            return Err(at.error(
                patches[k].name.span(),
                &format!("patch[{k}]"),
                e.to_string(),
            ));
        }
    }

    Ok(Some(PatchingConfig {
        state_dir,
        floor,
        dtmf_pin,
        dtmf_inter_digit: Duration::from_millis(inter_digit),
        recordings,
        retention,
        radios: configured,
        links,
        zones,
        opus_payload_type: opus.0,
        opus_bitrate: opus.1,
        patches: specs,
    }))
}

/// The bus members of the configured radios, links and zones.
pub fn members(
    radios: &[RadioConfig],
    links: &[LinkConfig],
    zones: &[ZoneConfig],
) -> Vec<(MemberId, MemberInfo)> {
    let member =
        |name: &str, kind, priority| (MemberId(name.to_owned()), MemberInfo { kind, priority });
    radios
        .iter()
        .map(|r| member(&r.name, MemberKind::Radio, r.priority))
        .chain(
            links
                .iter()
                .map(|l| member(&l.name, MemberKind::Link, l.priority)),
        )
        .chain(
            zones
                .iter()
                .map(|z| member(&z.name, MemberKind::Zone, false)),
        )
        .collect()
}

impl PatchingConfig {
    /// The bus members this configuration has.
    pub fn members(&self) -> Vec<(MemberId, MemberInfo)> {
        members(&self.radios, &self.links, &self.zones)
    }
}

fn radio(r: &RawRadio, i: usize, at: &Locator, base: &Path) -> Result<RadioConfig, ConfigError> {
    let key = |field: &str| format!("radio[{i}].{field}");
    let lines_text = r.lines.get_ref();
    let lines = match lines_text.strip_prefix("external:") {
        Some(path) if !path.is_empty() => LinesBackend::External(base.join(path)),
        Some(_) => {
            return Err(at.error(
                r.lines.span(),
                &key("lines"),
                "external: needs the backend's socket path",
            ));
        }
        None => LinesBackend::Serial {
            path: PathBuf::from(lines_text),
            baud: r.baud,
        },
    };

    let template = |t: &Spanned<String>, field: &str, allowed: &[&str]| {
        CommandTemplate::parse(t.get_ref(), allowed)
            .map_err(|e| at.error(t.span(), &key(field), e.to_string()))
    };
    let ptt_text = r.ptt.get_ref().to_ascii_lowercase();
    let ptt = if ptt_text == "command" {
        let (Some(k), Some(rel)) = (&r.ptt_key_command, &r.ptt_release_command) else {
            return Err(at.error(
                r.ptt.span(),
                &key("ptt"),
                "PTT by command needs ptt_key_command and ptt_release_command",
            ));
        };
        PttWiring::Command {
            key: template(k, "ptt_key_command", &[])?.bytes(),
            release: template(rel, "ptt_release_command", &[])?.bytes(),
        }
    } else if let Some(rest) = ptt_text.strip_prefix("cm108:") {
        let (inverted, rest) = match rest.strip_prefix('!') {
            Some(rest) => (true, rest),
            None => (false, rest),
        };
        let parsed = rest
            .rsplit_once(':')
            .and_then(|(path, pin)| Some((path, pin.parse::<u8>().ok()?)))
            .filter(|(path, pin)| !path.is_empty() && (1..=8).contains(pin));
        let Some((path, pin)) = parsed else {
            return Err(at.error(
                r.ptt.span(),
                &key("ptt"),
                "CM108 PTT is cm108:/dev/hidrawN:PIN with PIN 1 to 8 (cm108:!… inverts)",
            ));
        };
        PttWiring::Cm108 {
            path: PathBuf::from(path),
            pin,
            inverted,
        }
    } else {
        let (inverted, line) = match ptt_text.strip_prefix('!') {
            Some(line) => (true, line),
            None => (false, ptt_text.as_str()),
        };
        let line: OutputLine =
            line.parse()
                .map_err(|e: drivers::serial::modem_lines::UnknownLine| {
                    at.error(r.ptt.span(), &key("ptt"), e.to_string())
                })?;
        PttWiring::Line(Wired { line, inverted })
    };

    let vox = VoxSettings {
        threshold_dbfs: r
            .vox_threshold_dbfs
            .unwrap_or(VoxSettings::default().threshold_dbfs),
        attack: r
            .vox_attack_ms
            .map_or(VoxSettings::default().attack, Duration::from_millis),
        hang: r
            .vox_hang_ms
            .map_or(VoxSettings::default().hang, Duration::from_millis),
    };
    let cos_text = r.cos.get_ref().to_ascii_lowercase();
    let (with_vox, line) = match cos_text.split_once('+') {
        Some((line, "vox")) => (true, Some(line)),
        _ if cos_text == "vox" => (true, None),
        _ => (false, Some(cos_text.as_str())),
    };
    let cos = match line {
        None => None,
        Some(line) => {
            let (inverted, line) = match line.strip_prefix('!') {
                Some(line) => (true, line),
                None => (false, line),
            };
            let line: InputLine =
                line.parse()
                    .map_err(|e: drivers::serial::modem_lines::UnknownLine| {
                        at.error(
                            r.cos.span(),
                            &key("cos"),
                            format!("{e}; or \"vox\", or a line and vox: \"dcd+vox\""),
                        )
                    })?;
            Some(Wired { line, inverted })
        }
    };
    let source = match (cos.is_some(), with_vox) {
        (true, false) => CarrierSource::Cos,
        (false, _) => CarrierSource::Vox(vox),
        (true, true) => CarrierSource::CosAndVox(vox),
    };
    let defaults = RxSettings::default();
    let rx = RxSettings {
        source,
        min_open: r
            .min_open_ms
            .map_or(defaults.min_open, Duration::from_millis),
        delay: r.rx_delay_ms.map_or(defaults.delay, Duration::from_millis),
    };

    let timing = PttTiming::default();
    let lead = match &r.tx_lead_ms {
        Some(ms) if *ms.get_ref() > MAX_TX_LEAD_MS => {
            return Err(at.error(
                ms.span(),
                &key("tx_lead_ms"),
                format!("at most {MAX_TX_LEAD_MS} ms: a longer lead loses the start of every over"),
            ));
        }
        Some(ms) => Duration::from_millis(*ms.get_ref()),
        None => timing.lead,
    };
    let timeout = match &r.timeout_s {
        Some(s) if *s.get_ref() == 0 => {
            return Err(at.error(
                s.span(),
                &key("timeout_s"),
                "the transmit time-out must be at least 1 s",
            ));
        }
        Some(s) => Duration::from_secs(*s.get_ref()),
        None => timing.timeout,
    };
    let tx = PttTiming {
        lead,
        hang: r.ptt_hang_ms.map_or(timing.hang, Duration::from_millis),
        timeout,
        timeout_reset: r
            .timeout_reset_ms
            .map_or(timing.timeout_reset, Duration::from_millis),
        max_held: timing.max_held.max(lead + Duration::from_millis(500)),
    };

    let select_command = match &r.select_command {
        None => None,
        Some(t) => {
            let Some(talkgroup) = r.talkgroup else {
                return Err(at.error(
                    t.span(),
                    &key("select_command"),
                    "selecting a talkgroup needs `talkgroup`",
                ));
            };
            let values = std::collections::HashMap::from([("talkgroup", talkgroup.to_string())]);
            Some(template(t, "select_command", &["talkgroup"])?.render(&values))
        }
    };
    let needs_channel = select_command.is_some() || matches!(ptt, PttWiring::Command { .. });
    if needs_channel && r.command_port.is_none() {
        return Err(at.error(
            r.name.span(),
            &key("command_port"),
            "commands to the radio need its command_port (a serial device)",
        ));
    }
    let command_port = r.command_port.as_ref().map(|p| base.join(p));
    if let (Some(port), LinesBackend::Serial { path, .. }) = (&command_port, &lines)
        && port == path
    {
        return Err(at.error(
            r.name.span(),
            &key("command_port"),
            "the command channel must be a port of its own: opening a port raises its RTS and DTR, which would key a radio whose PTT hangs on it",
        ));
    }
    let audio = match r.audio.as_str() {
        "external" if !matches!(lines, LinesBackend::External(_)) => {
            return Err(at.error(
                r.name.span(),
                &key("audio"),
                "audio = \"external\" needs external lines; name a sound card instead",
            ));
        }
        "external" => AudioBackend::External,
        device => AudioBackend::Device(device.to_owned()),
    };

    let gain = |value: &Option<Spanned<f32>>, field: &str| match value {
        Some(v) if !(-40.0..=20.0).contains(v.get_ref()) => Err(at.error(
            v.span(),
            &key(field),
            "a gain is -40 to +20 dB: set the radio's own level for more",
        )),
        Some(v) => Ok(*v.get_ref()),
        None => Ok(0.0),
    };
    let rx_gain_db = gain(&r.rx_gain_db, "rx_gain_db")?;
    let tx_gain_db = gain(&r.tx_gain_db, "tx_gain_db")?;

    Ok(RadioConfig {
        rx_gain_db,
        tx_gain_db,
        name: r.name.get_ref().clone(),
        priority: r.priority,
        lines,
        ptt,
        cos,
        rx,
        tx,
        audio,
        talkgroup: r.talkgroup,
        select_command,
        command_port,
        command_baud: r.command_baud,
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::Config;

    const NODE: &str = r#"
[node]
name = "street-radio"
tier = "street"
area = "410503001"

[rtp]
listen = "127.0.0.1:5010"

[patching]
state_dir = "state"

[[radio]]
name = "tg-1001"
lines = "external:tg-1001.sock"
ptt = "rts"

[[radio]]
name = "tg-2002"
lines = "/dev/ttyUSB0"
ptt = "!dtr"
cos = "cts+vox"
audio = "default"
talkgroup = 2002
select_command = "AT+CTGS={talkgroup}\r"
command_port = "/dev/ttyUSB1"

[[radio]]
name = "tg-3003"
lines = "external:tg-3003.sock"
ptt = "rts"
cos = "vox"

[[patch]]
name = "joint"
members = ["tg-1001", "tg-2002"]
"#;

    fn parse(text: &str) -> Result<Config, crate::config::ConfigError> {
        Config::parse(Path::new("/etc/emcomm/street.toml"), text)
    }

    #[test]
    fn radios_and_a_permanent_patch_parse_with_their_defaults() {
        let config = parse(NODE).expect("valid");
        let patching = config.patching.expect("patching");
        assert_eq!(patching.state_dir, Path::new("/etc/emcomm/state"));
        let [a, b, c] = &patching.radios[..] else {
            panic!("three radios: {:?}", patching.radios);
        };
        assert_eq!(
            a.lines,
            LinesBackend::External("/etc/emcomm/tg-1001.sock".into())
        );
        assert_eq!(a.rx.source, CarrierSource::Cos);
        assert_eq!(
            a.cos,
            Some(Wired {
                line: InputLine::Dcd,
                inverted: false
            })
        );
        assert_eq!(a.tx.lead, Duration::from_millis(400));
        assert_eq!(
            b.ptt,
            PttWiring::Line(Wired {
                line: OutputLine::Dtr,
                inverted: true
            })
        );
        assert!(matches!(b.rx.source, CarrierSource::CosAndVox(_)));
        assert_eq!(b.select_command.as_deref(), Some(&b"AT+CTGS=2002\r"[..]));
        assert_eq!(b.audio, AudioBackend::Device("default".into()));
        assert_eq!(c.cos, None);
        assert!(matches!(c.rx.source, CarrierSource::Vox(_)));
        assert_eq!(patching.patches[0].number, 1);
        assert!(patching.patches[0].permanent);
    }

    #[test]
    fn faults_name_the_key_and_say_what_is_expected() {
        let cases = [
            (
                NODE.replace(
                    "ptt = \"rts\"\n\n[[radio]]\nname = \"tg-2002\"",
                    "ptt = \"cts\"\n\n[[radio]]\nname = \"tg-2002\"",
                ),
                "radio[0].ptt",
                "not a modem line",
            ),
            (
                NODE.replace("cos = \"vox\"", "cos = \"ring\""),
                "radio[2].cos",
                "\"ring\" is not a modem line",
            ),
            (
                NODE.replace("ptt = \"!dtr\"", "ptt = \"!dtr\"\ntx_lead_ms = 5000"),
                "radio[1].tx_lead_ms",
                "at most 2000 ms",
            ),
            (
                NODE.replace("\"tg-1001\", \"tg-2002\"]", "\"tg-1001\", \"tg-9\"]"),
                "patch[0].members",
                "\"tg-9\" is not a [[radio]]",
            ),
            (
                NODE.replace("command_port = \"/dev/ttyUSB1\"\n", ""),
                "radio[1].command_port",
                "command_port",
            ),
            (
                NODE.replace("[patching]\nstate_dir = \"state\"\n", ""),
                "radio",
                "[patching]",
            ),
        ];
        for (text, key, message) in cases {
            let e = parse(&text).expect_err(key);
            assert_eq!(e.key, key, "{e}");
            assert!(e.message.contains(message), "{e}");
        }
    }

    #[test]
    fn permanent_patches_that_loop_are_refused_as_a_live_one_would_be() {
        let text =
            format!("{NODE}\n[[patch]]\nname = \"second\"\nmembers = [\"tg-2002\", \"tg-1001\"]\n");
        let e = parse(&text).expect_err("loop");
        assert_eq!(e.key, "patch[1]");
        assert!(e.message.contains("loop"), "{e}");
    }

    #[test]
    fn a_zone_by_area_takes_the_loudspeakers_under_it_in_their_codecs() {
        let text = format!(
            "{NODE}\n[[zone]]\nname = \"east\"\narea = \"410503001002\"\n\n\
             [[downstream]]\nname = \"p1\"\naddress = \"127.0.0.1:6000\"\narea = \"410503001002\"\n\n\
             [[downstream]]\nname = \"p2\"\naddress = \"127.0.0.1:6002\"\narea = \"410503001003\"\n\n\
             [[downstream]]\nname = \"p3\"\naddress = \"127.0.0.1:6004\"\narea = \"410503001002\"\ncodec = \"pcma\"\n"
        );
        let patching = parse(&text).expect("valid").patching.expect("patching");
        let names: Vec<(&str, PayloadFormat)> = patching.zones[0]
            .loudspeakers
            .iter()
            .map(|s| (s.name.as_str(), s.format))
            .collect();
        assert_eq!(
            names,
            vec![("p1", PayloadFormat::OPUS), ("p3", PayloadFormat::Pcma)]
        );
    }

    #[test]
    fn a_node_with_radios_needs_no_downstream() {
        let config = parse(NODE).expect("valid");
        assert!(config.downstream.is_empty());
    }
}
