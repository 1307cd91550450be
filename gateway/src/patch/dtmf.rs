//! Patch commands keyed on a radio's keypad, as DTMF digits heard on its talkgroup.
//!
//! * `*` number `#` joins the radio's talkgroup to the patch with that number;
//! * `#` number `#` takes it out again;
//! * where a PIN is configured, it comes first and ends with `*`: `*` PIN `*` number
//!   `#` and `#` PIN `*` number `#`.
//!
//! Digits more than the inter-digit time apart start over, so a half-keyed command
//! does not combine with digits keyed much later. Digits outside a command are
//! ignored: a keypad is also used for other things on a talkgroup.
//!
//! Sans-IO: the caller passes each digit with its instant.

use std::time::{Duration, Instant};

/// The longest command body kept; anything longer is not a command.
const MAX_BODY: usize = 16;

/// What a keyed command asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchCommand {
    Join(u16),
    Leave(u16),
}

/// A command keyed in full but refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandRefusal {
    #[error("a PIN is required")]
    PinMissing,
    #[error("wrong PIN")]
    WrongPin,
    #[error("not a patch number: {0:?}")]
    BadNumber(String),
    #[error("too many wrong PINs: commands from this radio are refused for a minute")]
    TooManyWrongPins,
}

/// Wrong PINs in a row after which a radio's commands are refused for [`PIN_LOCKOUT`].
pub const MAX_WRONG_PINS: u32 = 3;
pub const PIN_LOCKOUT: Duration = Duration::from_secs(60);

/// The command reader of one radio port.
#[derive(Debug, Clone)]
pub struct DtmfCommands {
    pin: Option<String>,
    inter_digit: Duration,
    /// The command being keyed: its kind and the digits after the opening key.
    pending: Option<(Kind, String)>,
    last_digit: Option<Instant>,
    wrong_pins: u32,
    refused_until: Option<Instant>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Join,
    Leave,
}

impl DtmfCommands {
    /// `pin` of digits only, or none; `inter_digit` is the longest gap inside a
    /// command.
    pub fn new(pin: Option<String>, inter_digit: Duration) -> DtmfCommands {
        DtmfCommands {
            pin,
            inter_digit,
            pending: None,
            last_digit: None,
            wrong_pins: 0,
            refused_until: None,
        }
    }

    /// Forgets a half-keyed command: the transmission carrying it ended, and digits of
    /// another transmission (another user) must not complete it.
    pub fn reset(&mut self) {
        self.pending = None;
    }

    /// One digit heard at `now`: a command when it completes one.
    pub fn on_digit(
        &mut self,
        digit: char,
        now: Instant,
    ) -> Option<Result<PatchCommand, CommandRefusal>> {
        let stale = self
            .last_digit
            .is_some_and(|last| now.saturating_duration_since(last) > self.inter_digit);
        self.last_digit = Some(now);
        if stale {
            self.pending = None;
        }

        let Some((kind, body)) = &mut self.pending else {
            self.pending = match digit {
                '*' => Some((Kind::Join, String::new())),
                '#' => Some((Kind::Leave, String::new())),
                _ => None,
            };
            return None;
        };
        match digit {
            '*' | '#' if body.is_empty() => {
                // "##", "#*", "*#": nothing keyed yet; the second opens a command.
                let kind = if digit == '*' {
                    Kind::Join
                } else {
                    Kind::Leave
                };
                self.pending = Some((kind, String::new()));
                None
            }
            '#' => {
                let (kind, body) = (*kind, std::mem::take(body));
                self.pending = None;
                if self.refused_until.is_some_and(|until| now < until) {
                    return Some(Err(CommandRefusal::TooManyWrongPins));
                }
                let result = self.finish(kind, &body);
                match result {
                    Err(CommandRefusal::WrongPin) => {
                        self.wrong_pins += 1;
                        if self.wrong_pins >= MAX_WRONG_PINS {
                            self.wrong_pins = 0;
                            self.refused_until = Some(now + PIN_LOCKOUT);
                        }
                    }
                    Ok(_) => self.wrong_pins = 0,
                    Err(_) => {}
                }
                Some(result)
            }
            '0'..='9' | '*' if body.len() < MAX_BODY => {
                body.push(digit);
                None
            }
            _ => {
                self.pending = None;
                None
            }
        }
    }

    fn finish(&self, kind: Kind, body: &str) -> Result<PatchCommand, CommandRefusal> {
        let number = match (&self.pin, body.split_once('*')) {
            (None, None) => body,
            (None, Some(_)) => return Err(CommandRefusal::BadNumber(body.to_owned())),
            (Some(_), None) => return Err(CommandRefusal::PinMissing),
            (Some(pin), Some((keyed, number))) if keyed == pin => number,
            (Some(_), Some(_)) => return Err(CommandRefusal::WrongPin),
        };
        let number: u16 = number
            .parse()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| CommandRefusal::BadNumber(number.to_owned()))?;
        Ok(match kind {
            Kind::Join => PatchCommand::Join(number),
            Kind::Leave => PatchCommand::Leave(number),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(
        reader: &mut DtmfCommands,
        keys: &str,
        t0: Instant,
        gap: Duration,
    ) -> Vec<Result<PatchCommand, CommandRefusal>> {
        keys.chars()
            .enumerate()
            .filter_map(|(k, digit)| reader.on_digit(digit, t0 + gap * k as u32))
            .collect()
    }

    const GAP: Duration = Duration::from_millis(300);

    #[test]
    fn star_number_hash_joins_and_hash_number_hash_leaves() {
        let mut reader = DtmfCommands::new(None, Duration::from_secs(3));
        let t0 = Instant::now();
        assert_eq!(
            key(&mut reader, "*12#", t0, GAP),
            vec![Ok(PatchCommand::Join(12))]
        );
        assert_eq!(
            key(&mut reader, "#12#", t0 + Duration::from_secs(5), GAP),
            vec![Ok(PatchCommand::Leave(12))]
        );
    }

    #[test]
    fn with_a_pin_the_pin_comes_first_and_a_wrong_or_missing_one_is_refused() {
        let mut reader = DtmfCommands::new(Some("4711".into()), Duration::from_secs(3));
        let t0 = Instant::now();
        assert_eq!(
            key(&mut reader, "*4711*3#", t0, GAP),
            vec![Ok(PatchCommand::Join(3))]
        );
        assert_eq!(
            key(&mut reader, "*1234*3#", t0 + Duration::from_secs(10), GAP),
            vec![Err(CommandRefusal::WrongPin)]
        );
        assert_eq!(
            key(&mut reader, "*3#", t0 + Duration::from_secs(20), GAP),
            vec![Err(CommandRefusal::PinMissing)]
        );
    }

    #[test]
    fn three_wrong_pins_refuse_every_command_for_a_minute() {
        let mut reader = DtmfCommands::new(Some("4711".into()), Duration::from_secs(3));
        let t0 = Instant::now();
        for k in 0..3 {
            let at = t0 + Duration::from_secs(10 * k);
            assert_eq!(
                key(&mut reader, "*1111*3#", at, GAP),
                vec![Err(CommandRefusal::WrongPin)]
            );
        }
        let soon = t0 + Duration::from_secs(40);
        assert_eq!(
            key(&mut reader, "*4711*3#", soon, GAP),
            vec![Err(CommandRefusal::TooManyWrongPins)],
            "even the right PIN"
        );
        let later = t0 + Duration::from_secs(20) + PIN_LOCKOUT + Duration::from_secs(1);
        assert_eq!(
            key(&mut reader, "*4711*3#", later, GAP),
            vec![Ok(PatchCommand::Join(3))]
        );
    }

    #[test]
    fn a_half_keyed_command_is_forgotten_when_its_transmission_ends() {
        let mut reader = DtmfCommands::new(None, Duration::from_secs(3));
        let t0 = Instant::now();
        assert!(key(&mut reader, "*1", t0, GAP).is_empty());
        reader.reset();
        assert!(key(&mut reader, "2#", t0 + Duration::from_secs(1), GAP).is_empty());
    }

    #[test]
    fn digits_further_apart_than_the_inter_digit_time_start_over() {
        let mut reader = DtmfCommands::new(None, Duration::from_secs(3));
        let t0 = Instant::now();
        assert_eq!(reader.on_digit('*', t0), None);
        assert_eq!(reader.on_digit('1', t0 + Duration::from_secs(1)), None);
        // Four seconds later the half command is forgotten: this '2#' is no command.
        assert_eq!(reader.on_digit('2', t0 + Duration::from_secs(5)), None);
        assert_eq!(reader.on_digit('#', t0 + Duration::from_millis(5300)), None);
        // A fresh command right after works.
        assert_eq!(
            key(&mut reader, "*2#", t0 + Duration::from_millis(5600), GAP),
            vec![Ok(PatchCommand::Join(2))]
        );
    }

    #[test]
    fn digits_outside_a_command_and_letters_are_ignored() {
        let mut reader = DtmfCommands::new(None, Duration::from_secs(3));
        let t0 = Instant::now();
        assert!(key(&mut reader, "5551234", t0, GAP).is_empty());
        assert!(key(&mut reader, "*1A2#", t0 + Duration::from_secs(9), GAP).is_empty());
        assert_eq!(
            key(&mut reader, "##7#", t0 + Duration::from_secs(20), GAP),
            vec![Ok(PatchCommand::Leave(7))]
        );
    }

    #[test]
    fn a_number_that_is_not_a_patch_number_is_refused() {
        let mut reader = DtmfCommands::new(None, Duration::from_secs(3));
        let t0 = Instant::now();
        assert_eq!(
            key(&mut reader, "*0#", t0, GAP),
            vec![Err(CommandRefusal::BadNumber("0".into()))]
        );
        assert_eq!(
            key(&mut reader, "*99999#", t0 + Duration::from_secs(9), GAP),
            vec![Err(CommandRefusal::BadNumber("99999".into()))]
        );
        assert_eq!(
            key(&mut reader, "*1*2#", t0 + Duration::from_secs(19), GAP),
            vec![Err(CommandRefusal::BadNumber("1*2".into()))]
        );
    }
}
