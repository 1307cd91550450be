//! Command templates: the bytes a radio takes on its command channel to key PTT or
//! select a talkgroup, written in the configuration as text.
//!
//! A template is text with escapes (`\r`, `\n`, `\t`, `\\`, `\xNN`) and placeholders
//! in braces (`{talkgroup}`); `{{` and `}}` stand for the braces themselves. For
//! example `AT+CTGS={talkgroup}\r` selects a talkgroup on a radio that takes AT
//! commands.

use std::collections::HashMap;

/// A template that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("unknown escape \\{0} at character {1} (use \\r, \\n, \\t, \\\\ or \\xNN)")]
    UnknownEscape(char, usize),
    #[error("\\x at character {0} needs two hex digits")]
    BadHex(usize),
    #[error("unclosed {{ at character {0}")]
    Unclosed(usize),
    #[error("unknown placeholder {{{name}}}; this template takes: {allowed}")]
    UnknownPlaceholder { name: String, allowed: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Bytes(Vec<u8>),
    Placeholder(String),
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandTemplate {
    pieces: Vec<Piece>,
}

impl CommandTemplate {
    /// Parses `text`, taking only the placeholders in `allowed`.
    pub fn parse(text: &str, allowed: &[&str]) -> Result<CommandTemplate, TemplateError> {
        let mut pieces = Vec::new();
        let mut bytes = Vec::new();
        let mut chars = text.char_indices().peekable();
        while let Some((at, c)) = chars.next() {
            match c {
                '\\' => {
                    let Some((_, e)) = chars.next() else {
                        return Err(TemplateError::UnknownEscape(' ', at));
                    };
                    match e {
                        'r' => bytes.push(b'\r'),
                        'n' => bytes.push(b'\n'),
                        't' => bytes.push(b'\t'),
                        '\\' => bytes.push(b'\\'),
                        'x' => {
                            let hex: String =
                                (0..2).filter_map(|_| chars.next()).map(|p| p.1).collect();
                            let value = u8::from_str_radix(&hex, 16)
                                .map_err(|_| TemplateError::BadHex(at))?;
                            if hex.len() != 2 {
                                return Err(TemplateError::BadHex(at));
                            }
                            bytes.push(value);
                        }
                        other => return Err(TemplateError::UnknownEscape(other, at)),
                    }
                }
                '{' if chars.peek().map(|p| p.1) == Some('{') => {
                    chars.next();
                    bytes.push(b'{');
                }
                '}' if chars.peek().map(|p| p.1) == Some('}') => {
                    chars.next();
                    bytes.push(b'}');
                }
                '{' => {
                    let mut name = String::new();
                    loop {
                        match chars.next() {
                            Some((_, '}')) => break,
                            Some((_, ch)) => name.push(ch),
                            None => return Err(TemplateError::Unclosed(at)),
                        }
                    }
                    if !allowed.contains(&name.as_str()) {
                        return Err(TemplateError::UnknownPlaceholder {
                            name,
                            allowed: if allowed.is_empty() {
                                "none".into()
                            } else {
                                allowed.join(", ")
                            },
                        });
                    }
                    if !bytes.is_empty() {
                        pieces.push(Piece::Bytes(std::mem::take(&mut bytes)));
                    }
                    pieces.push(Piece::Placeholder(name));
                }
                other => {
                    let mut buf = [0u8; 4];
                    bytes.extend_from_slice(other.encode_utf8(&mut buf).as_bytes());
                }
            }
        }
        if !bytes.is_empty() {
            pieces.push(Piece::Bytes(bytes));
        }
        Ok(CommandTemplate { pieces })
    }

    /// The bytes with every placeholder filled from `values` (empty where absent).
    pub fn render(&self, values: &HashMap<&str, String>) -> Vec<u8> {
        let mut out = Vec::new();
        for piece in &self.pieces {
            match piece {
                Piece::Bytes(b) => out.extend_from_slice(b),
                Piece::Placeholder(name) => {
                    if let Some(v) = values.get(name.as_str()) {
                        out.extend_from_slice(v.as_bytes());
                    }
                }
            }
        }
        out
    }

    /// The bytes of a template without placeholders.
    pub fn bytes(&self) -> Vec<u8> {
        self.render(&HashMap::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_talkgroup_template_fills_in_the_talkgroup_and_its_escapes() {
        let t = CommandTemplate::parse("AT+CTGS={talkgroup}\\r\\x1b{{}}", &["talkgroup"])
            .expect("valid");
        let values = HashMap::from([("talkgroup", "1001".to_string())]);
        assert_eq!(t.render(&values), b"AT+CTGS=1001\r\x1b{}".to_vec());
    }

    #[test]
    fn bad_templates_say_what_and_where() {
        assert_eq!(
            CommandTemplate::parse("PTT\\q", &[]),
            Err(TemplateError::UnknownEscape('q', 3))
        );
        assert_eq!(
            CommandTemplate::parse("\\x4", &[]),
            Err(TemplateError::BadHex(0))
        );
        assert_eq!(
            CommandTemplate::parse("TG={tg", &["talkgroup"]),
            Err(TemplateError::Unclosed(3))
        );
        assert!(matches!(
            CommandTemplate::parse("TG={tg}", &["talkgroup"]),
            Err(TemplateError::UnknownPlaceholder { .. })
        ));
    }
}
