//! The modem control lines of an RS-232 port, as a radio's accessory port uses them:
//! RTS or DTR keys PTT, CTS, DSR or DCD carries the carrier (COS).
//!
//! The lines sit behind [`ModemLines`] so that a port without them can still be
//! tested: Linux pseudo-terminals answer every modem-line request with ENOTTY, so the
//! daemon can instead take its lines from an external backend (the radio simulator,
//! see [`crate::radio::external`]) that owns them and records every change.

use std::fmt;
use std::str::FromStr;

/// A line the port drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OutputLine {
    /// Request To Send.
    Rts,
    /// Data Terminal Ready.
    Dtr,
}

/// A line the port reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InputLine {
    /// Clear To Send.
    Cts,
    /// Data Set Ready.
    Dsr,
    /// Data Carrier Detect.
    Dcd,
}

impl fmt::Display for OutputLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            OutputLine::Rts => "rts",
            OutputLine::Dtr => "dtr",
        })
    }
}

impl fmt::Display for InputLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            InputLine::Cts => "cts",
            InputLine::Dsr => "dsr",
            InputLine::Dcd => "dcd",
        })
    }
}

/// A line name that is not one of the port's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a modem line here (output: rts, dtr; input: cts, dsr, dcd)")]
pub struct UnknownLine(pub String);

impl FromStr for OutputLine {
    type Err = UnknownLine;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "rts" => Ok(OutputLine::Rts),
            "dtr" => Ok(OutputLine::Dtr),
            _ => Err(UnknownLine(s.into())),
        }
    }
}

impl FromStr for InputLine {
    type Err = UnknownLine;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "cts" => Ok(InputLine::Cts),
            "dsr" => Ok(InputLine::Dsr),
            "dcd" => Ok(InputLine::Dcd),
            _ => Err(UnknownLine(s.into())),
        }
    }
}

/// The levels of the output lines; `true` is asserted (the line raised).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutputLevels {
    pub rts: bool,
    pub dtr: bool,
}

impl OutputLevels {
    pub fn get(&self, line: OutputLine) -> bool {
        match line {
            OutputLine::Rts => self.rts,
            OutputLine::Dtr => self.dtr,
        }
    }

    pub fn set(&mut self, line: OutputLine, level: bool) {
        match line {
            OutputLine::Rts => self.rts = level,
            OutputLine::Dtr => self.dtr = level,
        }
    }
}

/// The levels of the input lines; `true` is asserted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InputLevels {
    pub cts: bool,
    pub dsr: bool,
    pub dcd: bool,
}

impl InputLevels {
    pub fn get(&self, line: InputLine) -> bool {
        match line {
            InputLine::Cts => self.cts,
            InputLine::Dsr => self.dsr,
            InputLine::Dcd => self.dcd,
        }
    }
}

/// How a function is wired to a line: which line, and whether asserted means off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wired<L> {
    pub line: L,
    /// Asserted means *off* (the interface inverts the line).
    pub inverted: bool,
}

impl Wired<OutputLine> {
    /// The line level that keys (`keyed = true`) or unkeys the transmitter.
    pub fn level_for(&self, keyed: bool) -> bool {
        keyed != self.inverted
    }

    /// Whether a process that dies, and so lets the kernel drop the line (HUPCL),
    /// leaves the transmitter unkeyed: only when the line is not inverted.
    pub fn fails_safe(&self) -> bool {
        !self.inverted
    }
}

impl Wired<InputLine> {
    /// Whether the input levels mean the function is on.
    pub fn is_on(&self, levels: InputLevels) -> bool {
        levels.get(self.line) != self.inverted
    }
}

/// Why a line could not be set or read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinesError {
    /// The device has no modem lines (a pseudo-terminal answers ENOTTY).
    #[error(
        "{device} has no modem lines ({reason}); a pseudo-terminal needs the external line backend"
    )]
    Unsupported { device: String, reason: String },
    /// The device went away (USB unplugged) or the backend hung up.
    #[error("{device} lost: {reason}")]
    Lost { device: String, reason: String },
}

/// The modem lines of one port.
///
/// Contract: `set` takes effect before it returns, or fails; `read` gives the levels
/// as they are now. Implementations never panic on a lost device: they return
/// [`LinesError::Lost`].
pub trait ModemLines: Send {
    fn set(&mut self, line: OutputLine, level: bool) -> Result<(), LinesError>;
    fn read(&mut self) -> Result<InputLevels, LinesError>;
}

/// A boxed port's lines are its lines: a switch can own whichever backend the
/// configuration chose.
impl<L: ModemLines + ?Sized> ModemLines for Box<L> {
    fn set(&mut self, line: OutputLine, level: bool) -> Result<(), LinesError> {
        (**self).set(line, level)
    }

    fn read(&mut self) -> Result<InputLevels, LinesError> {
        (**self).read()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_inverted_ptt_line_is_asserted_when_unkeyed_and_does_not_fail_safe() {
        let plain = Wired {
            line: OutputLine::Rts,
            inverted: false,
        };
        let inverted = Wired {
            line: OutputLine::Dtr,
            inverted: true,
        };
        assert!(plain.level_for(true) && !plain.level_for(false));
        assert!(!inverted.level_for(true) && inverted.level_for(false));
        assert!(plain.fails_safe());
        assert!(!inverted.fails_safe());
    }

    #[test]
    fn cos_reads_through_its_inversion() {
        let dcd = Wired {
            line: InputLine::Dcd,
            inverted: true,
        };
        let mut levels = InputLevels::default();
        assert!(dcd.is_on(levels));
        levels.dcd = true;
        assert!(!dcd.is_on(levels));
        assert_eq!("CTS".parse::<InputLine>(), Ok(InputLine::Cts));
        assert!("ri".parse::<InputLine>().is_err());
    }
}
