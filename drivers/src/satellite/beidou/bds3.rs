//! The BDS-3 dialect of BeiDou short-message modules: the sentences a gateway sends and
//! reads.
//!
//! BDS-3 modules frame their sentences as the 2.1 dialect does ([`super::nmea`]: `$`,
//! talker, kind, fields, `*HH` over the bytes up to the last `*`), so the same reader
//! splits them; what differs is which sentences there are and their fields:
//!
//! | sentence | direction | fields |
//! |---|---|---|
//! | `$CCICR` | host → module | query type (0), reserved (00) |
//! | `$BDICP` | module → host | card ID (7 or 8 digits), serial, broadcast ID, user feature, service interval in seconds, comm level 1–4, encryption E/N, subordinates |
//! | `$CCTCQ` | host → module | destination, frequency point, inbound confirmation (1 asked, 2 not), coding (1 Chinese, 2 code, 3 mixed), data, repeat interval in seconds (0 once) |
//! | `$BDTCI` | module → host | sender, receiver, frequency point, time hhmmss, coding, data |
//! | `$BDFKI` | module → host | time hhmmss, command answered, Y/N, reason (1 rate, 2 suppressed, 3 silence, 4 power not locked, 5 no IC module, 6 permission), seconds to wait |
//! | `$BDPWI` | module → host | time, beam count, then beam number and power (0–4) for each |
//!
//! Many modules still send `$BDTXR` for a received message as 2.1 terminals do: it is
//! read with [`super::nmea::Inbound`]. The sentence kinds and the meaning of their
//! fields are public facts; the order of `ICP`'s and `PWI`'s fields above rests on
//! assumption (`docs/limitations.md`), as no BDS-3 transcript was at hand.

use std::time::Duration;

use super::nmea::{CardInfo, FieldError, Inbound, MessageForm, Received, Sentence};

/// Why a BDS-3 module did not send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Sent before the service interval allowed.
    Rate,
    /// Transmission is suppressed.
    Suppressed,
    /// Radio silence is set.
    Silence,
    /// The transmitter's power is not locked.
    PowerNotLocked,
    /// No IC (card) module.
    NoCard,
    /// The card may not send this.
    Permission,
}

impl Refusal {
    fn from_code(code: &str) -> Option<Refusal> {
        Some(match code {
            "1" => Refusal::Rate,
            "2" => Refusal::Suppressed,
            "3" => Refusal::Silence,
            "4" => Refusal::PowerNotLocked,
            "5" => Refusal::NoCard,
            "6" => Refusal::Permission,
            _ => return None,
        })
    }

    /// Whether trying again later can succeed: not without a card or the permission.
    pub fn is_transient(self) -> bool {
        !matches!(self, Refusal::NoCard | Refusal::Permission)
    }

    pub fn describe(self) -> &'static str {
        match self {
            Refusal::Rate => "sent before the service interval",
            Refusal::Suppressed => "transmission suppressed",
            Refusal::Silence => "radio silence",
            Refusal::PowerNotLocked => "transmit power not locked",
            Refusal::NoCard => "no IC module",
            Refusal::Permission => "not permitted for this card",
        }
    }
}

/// `$BDFKI` in the BDS-3 layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Feedback {
    pub time: String,
    pub command: String,
    pub done: bool,
    /// Why not, when not done.
    pub refusal: Option<Refusal>,
    pub wait: Duration,
}

/// A BDS-3 module's sentence, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bds3Inbound {
    Card(CardInfo),
    Feedback(Feedback),
    Received(Received),
    /// The strongest beam's power, 0 to 4.
    Power(u8),
    Other(Sentence),
}

/// The coding field of `TCQ` and `TCI` for `form`.
pub fn coding(form: MessageForm) -> u8 {
    form.number() + 1
}

fn form_of(coding: &str) -> Option<MessageForm> {
    match coding {
        "1" => Some(MessageForm::Chinese),
        "2" => Some(MessageForm::Code),
        "3" => Some(MessageForm::Mixed),
        _ => None,
    }
}

impl Bds3Inbound {
    /// Reads a module's sentence.
    pub fn read(s: &Sentence) -> Result<Bds3Inbound, FieldError> {
        let bad = |field: usize, message: &str| FieldError {
            kind: s.kind.clone(),
            field,
            message: message.into(),
        };
        let need = |count: usize| {
            if s.fields.len() < count {
                Err(bad(s.fields.len(), &format!("{count} fields expected")))
            } else {
                Ok(())
            }
        };
        let number = |k: usize| -> Result<u32, FieldError> {
            s.text(k).parse().map_err(|_| bad(k, "not a number"))
        };
        Ok(match s.kind.as_str() {
            "ICP" => {
                // The same fields as 2.1's ICI, under another name.
                let ici = Sentence {
                    kind: "ICI".into(),
                    ..s.clone()
                };
                match Inbound::read(&ici).map_err(|e| bad(e.field, &e.message))? {
                    Inbound::CardInfo(card) => Bds3Inbound::Card(card),
                    _ => return Err(bad(0, "not card information")),
                }
            }
            "FKI" => {
                need(5)?;
                let done = match s.text(2) {
                    "Y" => true,
                    "N" => false,
                    _ => return Err(bad(2, "not Y or N")),
                };
                let refusal = match (done, s.text(3)) {
                    (true, _) => None,
                    (false, code) => {
                        Some(Refusal::from_code(code).ok_or(bad(3, "reason is 1 to 6"))?)
                    }
                };
                Bds3Inbound::Feedback(Feedback {
                    time: s.text(0).into(),
                    command: s.text(1).into(),
                    done,
                    refusal,
                    wait: Duration::from_secs(u64::from(if s.text(4).is_empty() {
                        0
                    } else {
                        number(4)?
                    })),
                })
            }
            "TCI" => {
                need(6)?;
                let form = form_of(s.text(4)).ok_or(bad(4, "coding is 1, 2 or 3"))?;
                Bds3Inbound::Received(Received {
                    kind: 1,
                    from: s.text(0).into(),
                    form,
                    payload: s.rest(5),
                })
            }
            "PWI" => {
                need(2)?;
                let beams = number(1)? as usize;
                if s.fields.len() < 2 + 2 * beams {
                    return Err(bad(s.fields.len(), "fewer beams than counted"));
                }
                let mut best = 0;
                for k in 0..beams {
                    let power = number(3 + 2 * k)?;
                    if power > 4 {
                        return Err(bad(3 + 2 * k, "power is 0 to 4"));
                    }
                    best = best.max(power as u8);
                }
                Bds3Inbound::Power(best)
            }
            "TXR" => match Inbound::read(s)? {
                Inbound::Received(r) => Bds3Inbound::Received(r),
                _ => Bds3Inbound::Other(s.clone()),
            },
            _ => Bds3Inbound::Other(s.clone()),
        })
    }
}

/// What the host sends to a BDS-3 module.
pub mod host {
    use super::{MessageForm, Sentence, coding};

    /// `$CCICR`: ask for the card's information.
    pub fn card_info() -> Sentence {
        Sentence::host("ICR", vec![b"0".to_vec(), b"00".to_vec()])
    }

    /// `$CCTCQ`: send `payload` (already in `form`'s writing) once to card `to` on
    /// frequency point 2, asking for the inbound confirmation only when `confirm`.
    pub fn send(to: &str, form: MessageForm, payload: Vec<u8>, confirm: bool) -> Sentence {
        Sentence::host(
            "TCQ",
            vec![
                to.as_bytes().to_vec(),
                b"2".to_vec(),
                if confirm {
                    b"1".to_vec()
                } else {
                    b"2".to_vec()
                },
                coding(form).to_string().into_bytes(),
                payload,
                b"0".to_vec(),
            ],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(line: &[u8]) -> Bds3Inbound {
        let sentence = Sentence::parse(line.trim_ascii_end()).expect("a sentence");
        Bds3Inbound::read(&sentence).expect("fields fit")
    }

    fn line(kind: &str, fields: &[&str]) -> Vec<u8> {
        Sentence {
            talker: "BD".into(),
            kind: kind.into(),
            fields: fields.iter().map(|f| f.as_bytes().to_vec()).collect(),
        }
        .encode()
    }

    #[test]
    fn an_eight_digit_card_reads_with_its_interval_and_level() {
        let Bds3Inbound::Card(card) = read(&line(
            "ICP",
            &["15950044", "0", "2097151", "6", "30", "4", "N", "0"],
        )) else {
            panic!("a card")
        };
        assert_eq!(card.id, "15950044");
        assert_eq!(card.service_interval, Duration::from_secs(30));
        assert_eq!(card.capacity_bits(), 848);
    }

    #[test]
    fn feedback_carries_its_reason_and_wait_and_a_bad_reason_is_an_error() {
        assert_eq!(
            read(&line("FKI", &["101502", "TCQ", "N", "1", "42"])),
            Bds3Inbound::Feedback(Feedback {
                time: "101502".into(),
                command: "TCQ".into(),
                done: false,
                refusal: Some(Refusal::Rate),
                wait: Duration::from_secs(42),
            })
        );
        let done = read(&line("FKI", &["101502", "TCQ", "Y", "", ""]));
        assert!(matches!(
            done,
            Bds3Inbound::Feedback(Feedback {
                done: true,
                refusal: None,
                ..
            })
        ));
        let bad = Sentence::parse(line("FKI", &["1", "TCQ", "N", "9", "0"]).trim_ascii_end())
            .expect("sentence");
        assert!(Bds3Inbound::read(&bad).is_err());
        assert!(!Refusal::Permission.is_transient() && Refusal::Suppressed.is_transient());
    }

    #[test]
    fn a_message_reads_from_tci_and_from_the_older_txr() {
        let tci = read(&line(
            "TCI",
            &["15950044", "0247718", "2", "101502", "2", "68656C6C6F"],
        ));
        assert_eq!(
            tci,
            Bds3Inbound::Received(Received {
                kind: 1,
                from: "15950044".into(),
                form: MessageForm::Code,
                payload: b"68656C6C6F".to_vec(),
            })
        );
        assert!(matches!(
            read(b"$BDTXR,1,0179773,2,,A468656C6C6F*43\r\n"),
            Bds3Inbound::Received(Received {
                form: MessageForm::Mixed,
                ..
            })
        ));
    }

    #[test]
    fn beam_power_is_the_strongest_beam_and_a_short_count_is_an_error() {
        assert_eq!(
            read(&line(
                "PWI",
                &["101502.00", "3", "1", "2", "2", "4", "3", "0"]
            )),
            Bds3Inbound::Power(4)
        );
        let short =
            Sentence::parse(line("PWI", &["1", "3", "1", "2"]).trim_ascii_end()).expect("sentence");
        assert!(Bds3Inbound::read(&short).is_err());
    }

    #[test]
    fn a_send_names_the_coding_one_above_the_2_1_form() {
        let wire = host::send("0247718", MessageForm::Chinese, vec![0xB1, 0xA9], false).encode();
        assert!(wire.starts_with(b"$CCTCQ,0247718,2,2,1,\xB1\xA9,0*"));
        assert!(host::card_info().encode().starts_with(b"$CCICR,0,00*"));
    }
}
