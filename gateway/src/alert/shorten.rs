//! The text an alert becomes on a narrow bearer (BeiDou, Iridium, SMS), where every
//! byte costs time: at ~78 bytes a BeiDou message and one message a minute, a long
//! description takes many minutes, so what matters most goes first and the rest is cut.
//!
//! The rule, in this order, each piece only while it fits:
//!
//! 1. the purpose mark for an exercise or a test (`演练：`, `测试：`), so a drill can
//!    never read as the real thing, even cut short;
//! 2. the level (`【红色预警】`, or `[RED]` in other languages);
//! 3. the headline;
//! 4. the instruction (what to do);
//! 5. the description (what is happening).
//!
//! The mark, level and headline are never dropped: if even they do not fit, the
//! headline is cut. A piece that does not fit whole is cut at its last sentence end
//! that fits, else at a character, and ends with `…`, and nothing follows it. A typed
//! form's text, which has no instruction apart, takes the description's place.
//!
//! `fits` is the caller's budget on the text's UTF-8 bytes: what is left in the frame or
//! frames the operator is willing to spend.

use super::intake::Admitted;
use super::model::{Level, Purpose};

const ELLIPSIS: char = '…';

fn chinese(language: &str) -> bool {
    language.to_ascii_lowercase().starts_with("zh")
}

fn lead(level: Level, purpose: Purpose, language: &str) -> String {
    let zh = chinese(language);
    let mark = match (purpose, zh) {
        (Purpose::Actual, _) => "",
        (Purpose::Exercise, true) => "演练：",
        (Purpose::Test, true) => "测试：",
        (Purpose::Exercise, false) => "EXERCISE: ",
        (Purpose::Test, false) => "TEST: ",
    };
    let level = match (level, zh) {
        (Level::Routine, true) => String::new(),
        (level, true) => format!("【{}预警】", level.chinese()),
        (Level::Routine, false) => String::new(),
        (level, false) => format!("[{}] ", level.as_str().to_ascii_uppercase()),
    };
    format!("{mark}{level}")
}

/// The text an alert frame carries at most, bytes: two BeiDou messages' worth with the
/// frame's header and tag, a minute or two over a narrow bearer.
pub const CASCADE_TEXT_BYTES: usize = 96;

/// The text an alert goes down the cascade with: [`narrow_text`] within
/// [`CASCADE_TEXT_BYTES`].
pub fn cascade_text(alert: &Admitted) -> String {
    narrow_text(alert, |t| t.len() <= CASCADE_TEXT_BYTES)
}

/// The purpose a shortened text's mark declares (rule 1), as a node that receives the
/// text down the cascade plays it: a text without a mark is an actual alert.
pub fn purpose_of(text: &str) -> Purpose {
    let text = text.trim_start();
    if text.starts_with("演练：") || text.starts_with("EXERCISE: ") {
        Purpose::Exercise
    } else if text.starts_with("测试：") || text.starts_with("TEST: ") {
        Purpose::Test
    } else {
        Purpose::Actual
    }
}

/// Ends `piece` with a full stop of the text's language unless it ends a sentence.
fn sentence(piece: &str, zh: bool) -> String {
    let piece = piece.split_whitespace().collect::<Vec<_>>().join(" ");
    if piece.is_empty() || piece.ends_with(['.', '。', '!', '！', '?', '？']) {
        piece
    } else if zh {
        format!("{piece}。")
    } else {
        format!("{piece}.")
    }
}

/// The longest head of `piece` that fits after `text`: up to a sentence end if one
/// fits, else up to a character, with `…`; `None` when not even one character does.
fn cut(text: &str, piece: &str, fits: &impl Fn(&str) -> bool) -> Option<String> {
    let mut best_sentence = None;
    let mut best_char = None;
    for (at, c) in piece.char_indices() {
        let end = at + c.len_utf8();
        if matches!(c, '.' | '。' | '!' | '！' | '?' | '？' | '；' | ';')
            && fits(&format!("{text}{}{ELLIPSIS}", &piece[..end]))
        {
            best_sentence = Some(end);
        }
        if fits(&format!("{text}{}{ELLIPSIS}", &piece[..end])) {
            best_char = Some(end);
        } else {
            break;
        }
    }
    best_sentence
        .or(best_char)
        .map(|end| format!("{text}{}{ELLIPSIS}", piece[..end].trim_end()))
}

/// The text `alert` goes as on a narrow bearer, within `fits`; see the
/// [module](self) notes for the rule.
pub fn narrow_text(alert: &Admitted, fits: impl Fn(&str) -> bool) -> String {
    let zh = chinese(&alert.language);
    let lead = lead(alert.level, alert.purpose, &alert.language);
    let separator = if zh { "" } else { " " };
    let body = match (&alert.instruction, &alert.description) {
        (None, None) => vec![alert.text.as_str()],
        (instruction, description) => instruction
            .iter()
            .chain(description.iter())
            .map(String::as_str)
            .collect(),
    };
    let headline = sentence(&alert.headline, zh);
    let mut text = lead.clone();
    if !fits(&format!("{text}{headline}")) {
        return cut(&text, &headline, &fits).unwrap_or(lead);
    }
    text.push_str(&headline);
    for piece in body {
        // A form's text (or a description) that opens with the headline says it once.
        let piece = sentence(piece, zh);
        let piece = piece.strip_prefix(&headline).unwrap_or(&piece).trim_start();
        if piece.is_empty() {
            continue;
        }
        let joined = format!("{text}{separator}{piece}");
        if fits(&joined) {
            text = joined;
            continue;
        }
        if let Some(shorter) = cut(&format!("{text}{separator}"), piece, &fits) {
            text = shorter;
        }
        break;
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::intake::Kind;
    use chrono::{TimeZone, Utc};

    fn alert(purpose: Purpose, instruction: Option<&str>, description: Option<&str>) -> Admitted {
        let at = Utc
            .with_ymd_and_hms(2026, 7, 20, 8, 0, 0)
            .single()
            .expect("time");
        Admitted {
            kind: Kind::Alert,
            identifier: "cap-1".into(),
            sender: "weather@henan".into(),
            sent: at,
            purpose,
            msg_type: "Alert".into(),
            replaces: vec![],
            level: Level::Red,
            language: "zh-CN".into(),
            headline: "暴雨红色预警".into(),
            text: "暴雨红色预警。预计未来3小时降雨量将达100毫米以上。请立即转移。".into(),
            description: description.map(str::to_owned),
            instruction: instruction.map(str::to_owned),
            areas: vec![],
            targets: vec![],
            skipped: vec![],
            effective: at,
            expires: at,
            repeat: 1,
            attention: "chime".into(),
            audio: None,
            has_audio: false,
            broadcast: None,
            needs_confirmation: false,
            cascade: None,
        }
    }

    const DESCRIPTION: &str = "预计未来3小时降雨量将达100毫米以上，山洪、泥石流风险极高。";
    const INSTRUCTION: &str = "沿河低洼地带群众立即转移到高处。不要涉水。";

    #[test]
    fn everything_fits_in_order_level_headline_instruction_description() {
        let a = alert(Purpose::Actual, Some(INSTRUCTION), Some(DESCRIPTION));
        assert_eq!(
            narrow_text(&a, |_| true),
            format!("【红色预警】暴雨红色预警。{INSTRUCTION}{DESCRIPTION}")
        );
    }

    #[test]
    fn a_tight_budget_keeps_the_instruction_cut_at_a_sentence_and_drops_the_description() {
        let a = alert(Purpose::Actual, Some(INSTRUCTION), Some(DESCRIPTION));
        let text = narrow_text(&a, |t| t.len() <= 100);
        assert_eq!(
            text,
            "【红色预警】暴雨红色预警。沿河低洼地带群众立即转移到高处。…"
        );
        // 78 bytes, one BeiDou message's worth: no sentence end fits, so a character.
        let text = narrow_text(&a, |t| t.len() <= 78);
        assert_eq!(text, "【红色预警】暴雨红色预警。沿河低洼地带群众立即转移…");
        assert_eq!(text.len(), 78);
    }

    #[test]
    fn an_exercise_says_so_first_even_when_the_headline_itself_is_cut() {
        let a = alert(Purpose::Exercise, Some(INSTRUCTION), None);
        let text = narrow_text(&a, |t| t.len() <= 36);
        assert!(text.starts_with("演练：【红色预警】"), "{text}");
        assert!(text.ends_with('…') && text.len() <= 36, "{text}");
        let english = Admitted {
            language: "en".into(),
            headline: "Flash flood warning".into(),
            instruction: Some("Move to higher ground now. Do not cross water".into()),
            ..alert(Purpose::Test, None, None)
        };
        assert_eq!(
            narrow_text(&english, |t| t.len() <= 64),
            "TEST: [RED] Flash flood warning. Move to higher ground now.…"
        );
    }

    #[test]
    fn a_typed_form_keeps_its_text_as_one_piece() {
        let a = alert(Purpose::Actual, None, None);
        assert_eq!(
            narrow_text(&a, |_| true),
            "【红色预警】暴雨红色预警。预计未来3小时降雨量将达100毫米以上。请立即转移。",
            "the headline the text opens with is said once"
        );
    }

    #[test]
    fn the_mark_of_a_shortened_text_gives_its_purpose_back() {
        for purpose in [Purpose::Actual, Purpose::Exercise, Purpose::Test] {
            for language in ["zh-CN", "en"] {
                let a = Admitted {
                    language: language.into(),
                    ..alert(purpose, Some(INSTRUCTION), None)
                };
                let text = narrow_text(&a, |t| t.len() <= 96);
                assert_eq!(purpose_of(&text), purpose, "{text}");
            }
        }
        assert_eq!(purpose_of("演练是明天的事。"), Purpose::Actual);
    }
}
