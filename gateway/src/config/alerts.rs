//! The `[api]` and `[alerts]` tables: the control API and the alert path.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use codecs::attention::{AttentionSignal, SirenTiming};
use serde::Deserialize;
use toml::Spanned;

use super::{ConfigError, Locator};
use crate::alert::model::Level;
use crate::alert::speech::SpeechConfig;

/// The longest siren signal accepted: longer than any civil air-defence signal (the
/// all-clear is 3 minutes), short enough to be a typing error when exceeded.
const MAX_SIREN_MS: u64 = 15 * 60_000;

/// The control API's default address: this host only.
pub const DEFAULT_API_LISTEN: &str = "127.0.0.1:8470";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawApi {
    listen: Option<Spanned<SocketAddr>>,
    operators: Spanned<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSiren {
    on_ms: u64,
    off_ms: u64,
    cycles: u32,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSirens {
    pre_warning: Option<RawSiren>,
    air_raid: Option<RawSiren>,
    all_clear: Option<RawSiren>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAlerts {
    state_dir: Spanned<PathBuf>,
    #[serde(default)]
    geocode_names: Option<Vec<String>>,
    #[serde(default)]
    language: Option<String>,
    #[serde(default)]
    confirm_levels: Option<Spanned<Vec<String>>>,
    #[serde(default)]
    default_validity_minutes: Option<Spanned<u32>>,
    #[serde(default)]
    repeat: Option<Spanned<u32>>,
    #[serde(default)]
    gap_ms: Option<u64>,
    #[serde(default)]
    attention: Option<Spanned<String>>,
    #[serde(default)]
    level_dbfs: Option<Spanned<f32>>,
    #[serde(default)]
    receipt_max_loss_percent: Option<Spanned<f64>>,
    #[serde(default)]
    replay_clock: Option<Spanned<String>>,
    #[serde(default)]
    siren: RawSirens,
    #[serde(default)]
    speech: SpeechConfig,
}

/// The control API.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiConfig {
    pub listen: SocketAddr,
    /// The operators file: tokens and roles.
    pub operators: PathBuf,
}

/// How this node takes and plays alerts.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertsConfig {
    /// Where the alert database lives.
    pub state_dir: PathBuf,
    /// `geocode` value names read as GB/T 2260 codes.
    pub geocode_names: Vec<String>,
    /// The language spoken here (picks the CAP `info`).
    pub language: String,
    /// Actual alerts at these levels need a second operator's confirmation.
    pub confirm_levels: Vec<Level>,
    pub default_validity: Duration,
    pub repeat: u32,
    /// Silence between repeats.
    pub gap: Duration,
    /// The attention signal before speech, unless an alert asks for another.
    pub attention: AttentionSignal,
    /// Peak level of attention signals, dBFS.
    pub level_dbfs: f32,
    /// A loudspeaker counts as having played an alert when its receiver reports
    /// show loss at most this.
    pub receipt_max_loss_percent: f64,
    /// For replays and tests: the daemon's clock reads this time at start-up.
    pub replay_clock: Option<DateTime<Utc>>,
    pub pre_warning: SirenTiming,
    pub air_raid: SirenTiming,
    pub all_clear: SirenTiming,
    pub speech: SpeechConfig,
}

impl AlertsConfig {
    /// The cadence configured for a siren signal; `None` for the chime and silence.
    pub fn timing(&self, signal: AttentionSignal) -> Option<SirenTiming> {
        match signal {
            AttentionSignal::PreWarning => Some(self.pre_warning),
            AttentionSignal::AirRaid => Some(self.air_raid),
            AttentionSignal::AllClear => Some(self.all_clear),
            AttentionSignal::None | AttentionSignal::Chime => None,
        }
    }
}

pub(super) fn api(raw: &RawApi, base: &Path) -> ApiConfig {
    ApiConfig {
        listen: raw
            .listen
            .as_ref()
            .map(|l| *l.get_ref())
            .unwrap_or_else(|| {
                DEFAULT_API_LISTEN
                    .parse()
                    .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 8470)))
            }),
        operators: base.join(raw.operators.get_ref()),
    }
}

pub(super) fn alerts(
    raw: &RawAlerts,
    span: std::ops::Range<usize>,
    at: &Locator,
    base: &Path,
) -> Result<AlertsConfig, ConfigError> {
    let confirm_levels = match &raw.confirm_levels {
        None => vec![Level::Orange, Level::Red],
        Some(levels) => levels
            .get_ref()
            .iter()
            .map(|l| l.parse::<Level>())
            .collect::<Result<_, _>>()
            .map_err(|e| at.error(levels.span(), "alerts.confirm_levels", e))?,
    };
    let repeat = match &raw.repeat {
        None => 2,
        Some(r) if (1..=crate::alert::intake::MAX_REPEAT).contains(r.get_ref()) => *r.get_ref(),
        Some(r) => {
            return Err(at.error(
                r.span(),
                "alerts.repeat",
                format!("must be 1 to {}", crate::alert::intake::MAX_REPEAT),
            ));
        }
    };
    let default_validity = match &raw.default_validity_minutes {
        None => Duration::from_secs(3600),
        Some(m) if *m.get_ref() == 0 => {
            return Err(at.error(
                m.span(),
                "alerts.default_validity_minutes",
                "must be at least 1",
            ));
        }
        Some(m) => Duration::from_secs(u64::from(*m.get_ref()) * 60),
    };
    let attention = match &raw.attention {
        None => AttentionSignal::Chime,
        Some(a) => {
            a.get_ref()
                .parse()
                .map_err(|e: codecs::attention::UnknownAttentionSignal| {
                    at.error(a.span(), "alerts.attention", e.to_string())
                })?
        }
    };
    let level_dbfs = match &raw.level_dbfs {
        None => -6.0,
        Some(l) if (-60.0..=0.0).contains(l.get_ref()) => *l.get_ref(),
        Some(l) => {
            return Err(at.error(l.span(), "alerts.level_dbfs", "must be from -60 to 0 dBFS"));
        }
    };
    let receipt_max_loss_percent = match &raw.receipt_max_loss_percent {
        None => 5.0,
        Some(l) if (0.0..=100.0).contains(l.get_ref()) => *l.get_ref(),
        Some(l) => {
            return Err(at.error(
                l.span(),
                "alerts.receipt_max_loss_percent",
                "must be from 0 to 100",
            ));
        }
    };
    let replay_clock = match &raw.replay_clock {
        None => None,
        Some(t) => Some(
            DateTime::parse_from_rfc3339(t.get_ref())
                .map_err(|_| {
                    at.error(
                        t.span(),
                        "alerts.replay_clock",
                        "not a time with offset, such as 2026-07-21T07:00:00+08:00",
                    )
                })?
                .with_timezone(&Utc),
        ),
    };
    for (name, siren) in [
        ("pre_warning", &raw.siren.pre_warning),
        ("air_raid", &raw.siren.air_raid),
        ("all_clear", &raw.siren.all_clear),
    ] {
        if let Some(siren) = siren {
            let total = (siren.on_ms + siren.off_ms).saturating_mul(u64::from(siren.cycles));
            if siren.cycles == 0 || siren.on_ms == 0 || total > MAX_SIREN_MS {
                return Err(at.error(
                    span.clone(),
                    &format!("alerts.siren.{name}"),
                    format!(
                        "needs on_ms above 0, cycles above 0, and at most {} minutes in all",
                        MAX_SIREN_MS / 60_000
                    ),
                ));
            }
        }
    }
    let siren = |raw: &Option<RawSiren>, signal: AttentionSignal| {
        raw.as_ref()
            .map(|s| SirenTiming {
                on: Duration::from_millis(s.on_ms),
                off: Duration::from_millis(s.off_ms),
                cycles: s.cycles,
            })
            .or_else(|| signal.default_timing())
            .unwrap_or(SirenTiming {
                on: Duration::ZERO,
                off: Duration::ZERO,
                cycles: 0,
            })
    };
    Ok(AlertsConfig {
        state_dir: base.join(raw.state_dir.get_ref()),
        geocode_names: raw
            .geocode_names
            .clone()
            .unwrap_or_else(|| vec!["GB/T 2260".into()]),
        language: raw.language.clone().unwrap_or_else(|| "zh-CN".into()),
        confirm_levels,
        default_validity,
        repeat,
        gap: Duration::from_millis(raw.gap_ms.unwrap_or(1_000)),
        attention,
        level_dbfs,
        receipt_max_loss_percent,
        replay_clock,
        pre_warning: siren(&raw.siren.pre_warning, AttentionSignal::PreWarning),
        air_raid: siren(&raw.siren.air_raid, AttentionSignal::AirRaid),
        all_clear: siren(&raw.siren.all_clear, AttentionSignal::AllClear),
        speech: raw.speech.clone(),
    })
}
