//! The `[satellite]` and `[[terminal]]` tables: satellite terminals on serial ports,
//! each driven by the daemon with a durable outbox.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use drivers::satellite::{BeidouDialect, TerminalKind};
use serde::Deserialize;
use toml::Spanned;

use super::{ConfigError, Locator};

/// The name of a terminal appears in API paths: keep it to URL-safe characters.
const MAX_NAME_CHARS: usize = 64;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSatellite {
    state_dir: Spanned<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTerminal {
    name: Spanned<String>,
    kind: Spanned<String>,
    port: Spanned<PathBuf>,
    baud: Option<Spanned<u32>>,
    dialect: Option<Spanned<BeidouDialect>>,
}

/// One satellite terminal on a serial port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TerminalConfig {
    /// Letters, digits, `-` and `_`: it names the terminal in the API and the CLI.
    pub name: String,
    pub kind: TerminalKind,
    /// The serial device (a stable `/dev/serial/by-id/` name, or a simulator's link).
    pub port: PathBuf,
    pub baud: u32,
}

/// The terminals of this node and where their messages are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SatelliteConfig {
    /// Where the outbox and inbox database (`terminals.sqlite`) lives.
    pub state_dir: PathBuf,
    pub terminals: Vec<TerminalConfig>,
}

/// The speed a terminal of `kind` usually runs at (`docs/satellite.md`, Wiring).
pub fn default_baud(kind: TerminalKind) -> u32 {
    match kind {
        TerminalKind::Beidou(_) => 9600,
        TerminalKind::Iridium => 19200,
        TerminalKind::Sms => 115200,
    }
}

/// The configuration's word for a kind of terminal.
pub fn kind_name(kind: TerminalKind) -> &'static str {
    match kind {
        TerminalKind::Beidou(_) => "beidou",
        TerminalKind::Iridium => "iridium",
        TerminalKind::Sms => "sms",
    }
}

/// The tables as read, with the state directories of other tables to fall back on.
pub(super) struct RawTables<'a> {
    pub satellite: Option<&'a Spanned<RawSatellite>>,
    pub terminals: &'a [RawTerminal],
    /// `[alerts].state_dir`, then `[patching].state_dir`, already resolved.
    pub other_state_dirs: Vec<PathBuf>,
}

pub(super) fn satellite(
    tables: RawTables,
    at: &Locator,
    base: &Path,
) -> Result<Option<SatelliteConfig>, ConfigError> {
    let Some(first) = tables.terminals.first() else {
        if let Some(s) = tables.satellite {
            return Err(at.error(
                s.span(),
                "satellite",
                "a [satellite] table without any [[terminal]]",
            ));
        }
        return Ok(None);
    };
    let state_dir = match (tables.satellite, tables.other_state_dirs.first()) {
        (Some(s), _) => base.join(s.get_ref().state_dir.get_ref()),
        (None, Some(dir)) => dir.clone(),
        (None, None) => {
            return Err(at.error(
                first.name.span(),
                "terminal",
                "[[terminal]] keeps its messages in a state directory: add [satellite] with `state_dir`",
            ));
        }
    };

    let mut names = HashSet::new();
    let mut ports = HashSet::new();
    let mut terminals = Vec::with_capacity(tables.terminals.len());
    for (i, raw) in tables.terminals.iter().enumerate() {
        let key = |field: &str| format!("terminal[{i}].{field}");
        let name = raw.name.get_ref();
        if name.is_empty()
            || name.chars().count() > MAX_NAME_CHARS
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(at.error(
                raw.name.span(),
                &key("name"),
                format!("{name:?}: a terminal's name is 1 to {MAX_NAME_CHARS} letters, digits, '-' or '_'"),
            ));
        }
        if !names.insert(name.clone()) {
            return Err(at.error(
                raw.name.span(),
                &key("name"),
                format!("{name:?} is used twice"),
            ));
        }
        let dialect = raw.dialect.as_ref().map(|d| *d.get_ref());
        let kind = match (raw.kind.get_ref().as_str(), &raw.dialect) {
            ("beidou", _) => TerminalKind::Beidou(dialect.unwrap_or_default()),
            ("iridium" | "sms", Some(d)) => {
                return Err(at.error(
                    d.span(),
                    &key("dialect"),
                    "only a BeiDou terminal has a dialect",
                ));
            }
            ("iridium", None) => TerminalKind::Iridium,
            ("sms", None) => TerminalKind::Sms,
            (other, _) => {
                return Err(at.error(
                    raw.kind.span(),
                    &key("kind"),
                    format!("unknown kind of terminal {other:?}: expected beidou, iridium or sms"),
                ));
            }
        };
        let port = base.join(raw.port.get_ref());
        if !ports.insert(port.clone()) {
            return Err(at.error(
                raw.port.span(),
                &key("port"),
                format!("{} is used by two terminals", port.display()),
            ));
        }
        let baud = match &raw.baud {
            Some(b) if !(300..=4_000_000).contains(b.get_ref()) => {
                return Err(at.error(
                    b.span(),
                    &key("baud"),
                    "must be a serial speed from 300 to 4000000",
                ));
            }
            Some(b) => *b.get_ref(),
            None => default_baud(kind),
        };
        terminals.push(TerminalConfig {
            name: name.clone(),
            kind,
            port,
            baud,
        });
    }
    Ok(Some(SatelliteConfig {
        state_dir,
        terminals,
    }))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::Config;

    const NODE: &str = r#"
[node]
name = "village-relay"
tier = "village"
area = "410503001001"

[rtp]
listen = "127.0.0.1:5010"

[satellite]
state_dir = "state"

[[terminal]]
name = "bd-1"
kind = "beidou"
port = "/dev/serial/by-id/usb-beidou"

[[terminal]]
name = "sbd-1"
kind = "iridium"
port = "/dev/ttyUSB1"
"#;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(Path::new("/etc/emcomm/village.toml"), text)
    }

    #[test]
    fn terminals_alone_make_a_node_with_default_speeds_and_dialect() {
        let satellite = parse(NODE).expect("valid").satellite.expect("terminals");
        assert_eq!(satellite.state_dir, Path::new("/etc/emcomm/state"));
        assert_eq!(
            satellite.terminals,
            vec![
                TerminalConfig {
                    name: "bd-1".into(),
                    kind: TerminalKind::Beidou(BeidouDialect::Auto),
                    port: "/dev/serial/by-id/usb-beidou".into(),
                    baud: 9600,
                },
                TerminalConfig {
                    name: "sbd-1".into(),
                    kind: TerminalKind::Iridium,
                    port: "/dev/ttyUSB1".into(),
                    baud: 19200,
                },
            ]
        );
    }

    #[test]
    fn a_dialect_is_read_for_beidou_and_refused_for_others() {
        let text = NODE.replace(
            "kind = \"beidou\"",
            "kind = \"beidou\"\ndialect = \"4.0\"\nbaud = 115200",
        );
        let terminal = &parse(&text).expect("valid").satellite.expect("t").terminals[0];
        assert_eq!(terminal.kind, TerminalKind::Beidou(BeidouDialect::Bd1));
        assert_eq!(terminal.baud, 115200);
        let text = NODE.replace(
            "kind = \"iridium\"",
            "kind = \"iridium\"\ndialect = \"2.1\"",
        );
        let e = parse(&text).expect_err("invalid");
        assert_eq!((e.line, e.key.as_str()), (21, "terminal[1].dialect"));
    }

    #[test]
    fn an_unknown_kind_or_a_repeated_name_is_reported_where_it_is() {
        let e = parse(&NODE.replace("\"iridium\"", "\"inmarsat\"")).expect_err("invalid");
        assert_eq!(
            e.to_string(),
            "/etc/emcomm/village.toml:20: terminal[1].kind: unknown kind of terminal \"inmarsat\": expected beidou, iridium or sms"
        );
        let e = parse(&NODE.replace("\"sbd-1\"", "\"bd-1\"")).expect_err("invalid");
        assert_eq!((e.line, e.key.as_str()), (19, "terminal[1].name"));
        let e = parse(&NODE.replace("\"sbd-1\"", "\"sbd 1\"")).expect_err("invalid");
        assert_eq!(e.key, "terminal[1].name");
    }

    #[test]
    fn terminals_need_a_state_directory() {
        let e =
            parse(&NODE.replace("[satellite]\nstate_dir = \"state\"\n", "")).expect_err("invalid");
        assert!(e.message.contains("add [satellite]"), "{e}");
    }
}
