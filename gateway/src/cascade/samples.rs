//! Frames as a district and a village send them, for tests, fuzz seeds and the examples
//! of `docs/frames.md`. Every value is fixed, so their encodings are too.

use super::frame::{Alert, BearerKind, Body, Content, Header, Receipt, Timestamp};
use crate::alert::model::{AreaCode, Level};

fn area(code: &str) -> AreaCode {
    code.parse()
        .unwrap_or_else(|_| unreachable!("a valid sample code"))
}

/// District 410503's frame `sequence`, valid from `valid_from` for six hours.
pub fn district_header(sequence: u32, valid_from: Timestamp) -> Header {
    Header {
        origin: area("410503"),
        sequence,
        valid_from,
        valid_until: Timestamp(valid_from.0.saturating_add(6 * 3600)),
    }
}

/// Red alert 88 to village 410503001001 with `text`.
pub fn red_alert(text: &str) -> Alert {
    Alert {
        number: 88,
        level: Level::Red,
        targets: vec![area("410503001001")],
        content: Content::Text(text.to_string()),
    }
}

/// Village 410503001001's receipt for alert 88: three of three loudspeakers, by BeiDou.
pub fn village_receipt() -> Body {
    Body::Receipt(Receipt {
        alert_origin: area("410503"),
        alert_number: 88,
        area: area("410503001001"),
        played: 3,
        loudspeakers: 3,
        bearer: BearerKind::Beidou,
    })
}
