//! Lines of an AT modem's answers (V.250), shared by the Iridium and SMS drivers.
//!
//! Answers come as lines ending in CR, LF or both. A modem with echo on repeats each
//! command first; that echo, and the blank lines between answers, are not answers. The
//! part of a line not yet ended stays readable, for the prompts that have no line end
//! (`> ` of `AT+CMGS`).

/// Splits a modem's bytes into answer lines.
#[derive(Debug, Clone)]
pub struct AtLines {
    line: Vec<u8>,
    /// The command sent last, whose echo is skipped.
    echo: String,
    /// The longest line kept; the rest of a longer one is dropped.
    limit: usize,
}

impl AtLines {
    pub fn new(limit: usize) -> AtLines {
        AtLines {
            line: Vec::new(),
            echo: String::new(),
            limit,
        }
    }

    /// `command` was sent: a line repeating it is its echo.
    pub fn sent(&mut self, command: &str) {
        command.clone_into(&mut self.echo);
    }

    /// Takes one byte; gives the answer line it ends, trimmed, if it ends one.
    pub fn push(&mut self, byte: u8) -> Option<String> {
        if byte != b'\r' && byte != b'\n' {
            if self.line.len() < self.limit {
                self.line.push(byte);
            }
            return None;
        }
        let line = String::from_utf8_lossy(&self.line).trim().to_string();
        self.line.clear();
        (!line.is_empty() && line != self.echo).then_some(line)
    }

    /// The line so far, not yet ended.
    pub fn partial(&self) -> &[u8] {
        &self.line
    }

    pub fn clear_partial(&mut self) {
        self.line.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_echo_and_blank_lines_are_skipped_and_an_answer_starting_with_at_is_kept() {
        let mut lines = AtLines::new(64);
        lines.sent("AT+CSQ");
        let got: Vec<String> = b"AT+CSQ\r\r\n+CSQ:4\r\n\r\nATTN field\r\nOK\r\n> "
            .iter()
            .filter_map(|b| lines.push(*b))
            .collect();
        assert_eq!(got, vec!["+CSQ:4", "ATTN field", "OK"]);
        assert_eq!(lines.partial(), b"> ");
    }
}
