//! SMS in PDU mode (3GPP TS 23.040), as Tiantong-1 terminals and cellular modems take
//! it over AT (TS 27.005): SMS-SUBMIT written, SMS-DELIVER read.
//!
//! * Text goes as UCS-2 (data coding 0x08): Chinese needs it, and one coding keeps the
//!   splitting simple. Bytes go as 8-bit data (0x04).
//! * A message longer than one SMS is split into parts carrying a concatenation header
//!   (information element 00: 8-bit reference, total, sequence; TS 23.040 §9.2.3.24.1).
//!   A part holds 67 UCS-2 code units; where the 67th would be the first half of a
//!   surrogate pair, the part ends one unit early, so no character is cut in two.
//! * Reading takes the default 7-bit alphabet (with its extension table), UCS-2 and
//!   8-bit data; the concatenation header is read from a part so the parts can be put
//!   back together.
//!
//! * A status report may be asked for (TP-SRR, [`submit_with`]); the SMS-STATUS-REPORT
//!   that answers it (TS 23.040 §9.2.2.3) is read by [`read_status_report`]: the message
//!   reference it answers, the recipient and what became of the message.
//!
//! PDUs travel over AT as upper-case hex; [`submit`] gives them so, and [`read_deliver`]
//! and [`read_status_report`] take them so.

/// One SMS's user data, octets.
pub const MAX_USER_DATA: usize = 140;
/// The concatenation header: its length byte and the 5 bytes of element 00.
const CONCAT_HEADER: usize = 6;

/// Why a PDU could not be written or read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PduError {
    #[error("not hex")]
    NotHex,
    #[error("PDU ends early, at octet {0}")]
    Truncated(usize),
    #[error("not an SMS-DELIVER (message type {0})")]
    NotDeliver(u8),
    #[error("not an SMS-SUBMIT (message type {0})")]
    NotSubmit(u8),
    #[error("not an SMS-STATUS-REPORT (message type {0})")]
    NotStatusReport(u8),
    #[error("unsupported data coding 0x{0:02X}")]
    Coding(u8),
    #[error("UCS-2 text is not valid UTF-16")]
    BadUcs2,
    #[error("{0:?} is not a phone number")]
    BadNumber(String),
    #[error("a message of {0} parts is more than 255")]
    TooManyParts(usize),
}

/// What a message carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SmsBody {
    Text(String),
    Bytes(Vec<u8>),
}

/// One part of a longer message, as its header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Part {
    pub reference: u8,
    pub total: u8,
    pub sequence: u8,
}

/// An SMS-DELIVER, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    pub from: String,
    pub body: SmsBody,
    pub part: Option<Part>,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

fn unhex(text: &str) -> Result<Vec<u8>, PduError> {
    let text = text.trim();
    if text.len() % 2 != 0 {
        return Err(PduError::NotHex);
    }
    (0..text.len())
        .step_by(2)
        .map(|k| {
            text.get(k..k + 2)
                .and_then(|p| u8::from_str_radix(p, 16).ok())
                .ok_or(PduError::NotHex)
        })
        .collect()
}

/// The address field of `number`: digit count, type of number, swapped BCD digits.
fn address(number: &str) -> Result<Vec<u8>, PduError> {
    let (international, digits) = match number.strip_prefix('+') {
        Some(d) => (true, d),
        None => (false, number),
    };
    if digits.is_empty() || digits.len() > 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(PduError::BadNumber(number.to_owned()));
    }
    let mut out = vec![digits.len() as u8, if international { 0x91 } else { 0x81 }];
    let d: Vec<u8> = digits.bytes().map(|b| b - b'0').collect();
    for pair in d.chunks(2) {
        out.push(pair[0] | pair.get(1).map_or(0xF0, |h| h << 4));
    }
    Ok(out)
}

/// The phone number in an address field's `digits` swapped BCD digits, `+` first when
/// its type `kind` is international.
fn number(raw: &[u8], digits: usize, kind: u8) -> String {
    let mut number: String = raw
        .iter()
        .flat_map(|b| [b & 0x0F, b >> 4])
        .take(digits)
        .map(|d| char::from(b'0' + d.min(9)))
        .collect();
    if kind & 0x70 == 0x10 {
        number.insert(0, '+');
    }
    number
}

/// What became of a message, as a status report's TP-ST says (TS 23.040 §9.2.3.15).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryStatus {
    /// 0x00–0x1F, transaction completed: 0x00 received by the recipient, 0x01 forwarded
    /// but not confirmed, 0x02 replaced; the rest reserved or centre-specific.
    Completed(u8),
    /// 0x20–0x3F: a temporary error, the centre still trying.
    StillTrying(u8),
    /// 0x40–0x7F: a permanent error, or a temporary one the centre gave up on.
    Failed(u8),
}

impl DeliveryStatus {
    fn from_octet(status: u8) -> DeliveryStatus {
        match status & 0x7F {
            s @ 0x00..=0x1F => DeliveryStatus::Completed(s),
            s @ 0x20..=0x3F => DeliveryStatus::StillTrying(s),
            s => DeliveryStatus::Failed(s),
        }
    }

    /// Whether the recipient has the message: "short message received by the SME" (0x00).
    pub fn is_delivered(self) -> bool {
        self == DeliveryStatus::Completed(0)
    }
}

/// An SMS-STATUS-REPORT, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusReport {
    /// TP-MR of the SMS-SUBMIT it answers, as `+CMGS` gave it.
    pub reference: u8,
    pub recipient: String,
    pub status: DeliveryStatus,
}

/// The SMS-SUBMIT PDUs, as hex, that carry `body` to `to`; with their lengths in
/// octets after the SMSC field, as `AT+CMGS=` wants them. `reference` tells the parts
/// of one message from those of another.
pub fn submit(to: &str, body: &SmsBody, reference: u8) -> Result<Vec<(usize, String)>, PduError> {
    submit_with(to, body, reference, false)
}

/// As [`submit`], asking the centre for a status report on each part when
/// `status_report` (TP-SRR, bit 5 of the first octet; TS 23.040 §9.2.3.5).
pub fn submit_with(
    to: &str,
    body: &SmsBody,
    reference: u8,
    status_report: bool,
) -> Result<Vec<(usize, String)>, PduError> {
    let (coding, parts) = match body {
        SmsBody::Text(text) => (0x08, split_ucs2(text)),
        SmsBody::Bytes(bytes) => {
            let whole = bytes.len() <= MAX_USER_DATA;
            let size = if whole {
                MAX_USER_DATA
            } else {
                MAX_USER_DATA - CONCAT_HEADER
            };
            (
                0x04,
                bytes
                    .chunks(size.max(1))
                    .map(<[u8]>::to_vec)
                    .collect::<Vec<_>>(),
            )
        }
    };
    let parts = if parts.is_empty() {
        vec![Vec::new()]
    } else {
        parts
    };
    if parts.len() > 255 {
        return Err(PduError::TooManyParts(parts.len()));
    }
    let total = parts.len() as u8;
    let destination = address(to)?;
    parts
        .iter()
        .enumerate()
        .map(|(k, data)| {
            let concatenated = total > 1;
            // SMS-SUBMIT, relative validity period; user-data header; status report.
            let first =
                0x11 | if concatenated { 0x40 } else { 0 } | if status_report { 0x20 } else { 0 };
            let mut tpdu = vec![first, 0x00];
            tpdu.extend(&destination);
            tpdu.extend([0x00, coding, 0xAA]);
            let mut user_data = Vec::with_capacity(MAX_USER_DATA);
            if concatenated {
                user_data.extend([0x05, 0x00, 0x03, reference, total, k as u8 + 1]);
            }
            user_data.extend(data);
            tpdu.push(user_data.len() as u8);
            tpdu.extend(user_data);
            // "00": the modem's own SMSC.
            Ok((tpdu.len(), format!("00{}", hex(&tpdu))))
        })
        .collect()
}

/// Splits `text` into UCS-2 parts of at most 70 code units (one SMS) or 67 (parts of
/// a longer one), never between the halves of a surrogate pair.
fn split_ucs2(text: &str) -> Vec<Vec<u8>> {
    let units: Vec<u16> = text.encode_utf16().collect();
    let per_part = if units.len() <= MAX_USER_DATA / 2 {
        MAX_USER_DATA / 2
    } else {
        (MAX_USER_DATA - CONCAT_HEADER) / 2
    };
    let mut parts = Vec::new();
    let mut start = 0;
    while start < units.len() {
        let mut end = (start + per_part).min(units.len());
        if end < units.len() && (0xD800..0xDC00).contains(&units[end - 1]) {
            end -= 1;
        }
        parts.push(
            units[start..end]
                .iter()
                .flat_map(|u| u.to_be_bytes())
                .collect(),
        );
        start = end;
    }
    parts
}

/// The default alphabet (TS 23.038 §6.2.1), by septet.
const GSM_BASIC: [char; 128] = [
    '@', '£', '$', '¥', 'è', 'é', 'ù', 'ì', 'ò', 'Ç', '\n', 'Ø', 'ø', '\r', 'Å', 'å', 'Δ', '_',
    'Φ', 'Γ', 'Λ', 'Ω', 'Π', 'Ψ', 'Σ', 'Θ', 'Ξ', '\u{1b}', 'Æ', 'æ', 'ß', 'É', ' ', '!', '"', '#',
    '¤', '%', '&', '\'', '(', ')', '*', '+', ',', '-', '.', '/', '0', '1', '2', '3', '4', '5', '6',
    '7', '8', '9', ':', ';', '<', '=', '>', '?', '¡', 'A', 'B', 'C', 'D', 'E', 'F', 'G', 'H', 'I',
    'J', 'K', 'L', 'M', 'N', 'O', 'P', 'Q', 'R', 'S', 'T', 'U', 'V', 'W', 'X', 'Y', 'Z', 'Ä', 'Ö',
    'Ñ', 'Ü', '§', '¿', 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'k', 'l', 'm', 'n', 'o',
    'p', 'q', 'r', 's', 't', 'u', 'v', 'w', 'x', 'y', 'z', 'ä', 'ö', 'ñ', 'ü', 'à',
];

/// The extension table, after the escape septet.
fn gsm_extension(septet: u8) -> Option<char> {
    Some(match septet {
        0x0A => '\u{c}',
        0x14 => '^',
        0x28 => '{',
        0x29 => '}',
        0x2F => '\\',
        0x3C => '[',
        0x3D => '~',
        0x3E => ']',
        0x40 => '|',
        0x65 => '€',
        _ => return None,
    })
}

/// `count` septets packed in `octets`, from septet `skip` on (a header's fill bits).
fn unpack_septets(octets: &[u8], count: usize, skip: usize) -> String {
    let septet = |k: usize| -> u8 {
        let bit = k * 7;
        let (byte, shift) = (bit / 8, bit % 8);
        let low = u16::from(octets.get(byte).copied().unwrap_or(0));
        let high = u16::from(octets.get(byte + 1).copied().unwrap_or(0));
        (((low | high << 8) >> shift) & 0x7F) as u8
    };
    let mut text = String::new();
    let mut escape = false;
    for k in skip..count {
        let s = septet(k);
        if escape {
            text.push(gsm_extension(s).unwrap_or(' '));
            escape = false;
        } else if s == 0x1B {
            escape = true;
        } else {
            text.push(GSM_BASIC[usize::from(s)]);
        }
    }
    text
}

/// The SMS-DELIVER, as hex with an empty SMSC field, that the network hands to the
/// recipient of SMS-SUBMIT `submit_hex` (SMSC field first, as `AT+CMGS` takes it): the
/// recipient's number, the same protocol, coding and user data, sent by `from`, time
/// stamped `timestamp` (seven semi-octet-swapped octets, TS 23.040 §9.2.3.11). What a
/// simulated network does; gives the recipient too.
pub fn deliver_for_submit(
    submit_hex: &str,
    from: &str,
    timestamp: [u8; 7],
) -> Result<(String, String), PduError> {
    let pdu = unhex(submit_hex)?;
    let at = |k: usize| pdu.get(k).copied().ok_or(PduError::Truncated(k));
    let mut k = 1 + usize::from(at(0)?);
    let first = at(k)?;
    if first & 0x03 != 0x01 {
        return Err(PduError::NotSubmit(first & 0x03));
    }
    let validity = match first >> 3 & 0x03 {
        0 => 0,
        2 => 1,
        _ => 7,
    };
    k += 2; // first octet, message reference
    let digits = usize::from(at(k)?);
    let kind = at(k + 1)?;
    let raw = pdu
        .get(k + 2..k + 2 + digits.div_ceil(2))
        .ok_or(PduError::Truncated(k + 2))?;
    let to = number(raw, digits, kind);
    k += 2 + digits.div_ceil(2);
    let (pid, coding) = (at(k)?, at(k + 1)?);
    k += 2 + validity;
    let user_data = pdu.get(k..).ok_or(PduError::Truncated(k))?;
    if user_data.is_empty() {
        return Err(PduError::Truncated(k));
    }
    // No more messages waiting (0x04), and the user-data header flag kept.
    let mut out = vec![0x00, 0x04 | (first & 0x40)];
    out.extend(address(from)?);
    out.extend([pid, coding]);
    out.extend(timestamp);
    out.extend(user_data);
    Ok((to, hex(&out)))
}

/// The SMS-STATUS-REPORT, as hex with an empty SMSC field, that the centre sends back for
/// SMS-SUBMIT `submit_hex` (SMSC field first) when it asked for one: message reference
/// `reference` (the one `+CMGS` gave), its recipient, time stamps `timestamp` and
/// status `status` (TS 23.040 §9.2.2.3). What a simulated network does; `None` when the
/// SUBMIT did not ask (TP-SRR clear).
pub fn status_report_for_submit(
    submit_hex: &str,
    reference: u8,
    timestamp: [u8; 7],
    status: u8,
) -> Result<Option<String>, PduError> {
    let pdu = unhex(submit_hex)?;
    let at = |k: usize| pdu.get(k).copied().ok_or(PduError::Truncated(k));
    let k = 1 + usize::from(at(0)?);
    let first = at(k)?;
    if first & 0x03 != 0x01 {
        return Err(PduError::NotSubmit(first & 0x03));
    }
    if first & 0x20 == 0 {
        return Ok(None);
    }
    let digits = usize::from(at(k + 2)?);
    let recipient = pdu
        .get(k + 2..k + 4 + digits.div_ceil(2))
        .ok_or(PduError::Truncated(k + 2))?;
    // SMS-STATUS-REPORT (TP-MTI 10), no more messages to send (TP-MMS), a report of a
    // SUBMIT (TP-SRQ 0).
    let mut out = vec![0x00, 0x06, reference];
    out.extend(recipient);
    out.extend(timestamp);
    out.extend(timestamp);
    out.push(status);
    Ok(Some(hex(&out)))
}

/// Reads an SMS-STATUS-REPORT given as hex, SMSC field first (as `+CDS` and `AT+CMGR`
/// show it): TP-MTI, TP-MR, TP-RA, TP-SCTS, TP-DT, TP-ST (TS 23.040 §9.2.2.3); the
/// optional fields after TP-ST are not read.
pub fn read_status_report(pdu_hex: &str) -> Result<StatusReport, PduError> {
    let pdu = unhex(pdu_hex)?;
    let at = |k: usize| pdu.get(k).copied().ok_or(PduError::Truncated(k));
    let mut k = 1 + usize::from(at(0)?);
    let first = at(k)?;
    if first & 0x03 != 0x02 {
        return Err(PduError::NotStatusReport(first & 0x03));
    }
    let reference = at(k + 1)?;
    k += 2;
    let digits = usize::from(at(k)?);
    let kind = at(k + 1)?;
    let raw = pdu
        .get(k + 2..k + 2 + digits.div_ceil(2))
        .ok_or(PduError::Truncated(k + 2))?;
    let recipient = number(raw, digits, kind);
    k += 2 + digits.div_ceil(2);
    // TP-SCTS and TP-DT, seven octets each, then TP-ST.
    let status = at(k + 14)?;
    Ok(StatusReport {
        reference,
        recipient,
        status: DeliveryStatus::from_octet(status),
    })
}

/// Reads an SMS-DELIVER PDU given as hex, SMSC field first (as `AT+CMGR` shows it).
pub fn read_deliver(pdu_hex: &str) -> Result<Delivered, PduError> {
    let pdu = unhex(pdu_hex)?;
    let at = |k: usize| pdu.get(k).copied().ok_or(PduError::Truncated(k));
    let smsc_len = usize::from(at(0)?);
    let mut k = 1 + smsc_len;
    let first = at(k)?;
    if first & 0x03 != 0 {
        return Err(PduError::NotDeliver(first & 0x03));
    }
    let has_header = first & 0x40 != 0;
    k += 1;
    let digits = usize::from(at(k)?);
    let kind = at(k + 1)?;
    let address_octets = digits.div_ceil(2);
    let raw = pdu
        .get(k + 2..k + 2 + address_octets)
        .ok_or(PduError::Truncated(k + 2))?;
    let from = if kind & 0x70 == 0x50 {
        // Alphanumeric sender: its digit count is in semi-octets of 7-bit text.
        unpack_septets(raw, digits * 4 / 7, 0)
    } else {
        number(raw, digits, kind)
    };
    k += 2 + address_octets;
    let _pid = at(k)?;
    let coding = at(k + 1)?;
    k += 2 + 7; // the service centre time stamp
    let length = usize::from(at(k)?);
    let data = pdu.get(k + 1..).ok_or(PduError::Truncated(k + 1))?;

    let (part, header_octets) = if has_header {
        let header_len = usize::from(*data.first().ok_or(PduError::Truncated(k + 1))?);
        let header = data
            .get(1..1 + header_len)
            .ok_or(PduError::Truncated(k + 2))?;
        (concatenation(header), 1 + header_len)
    } else {
        (None, 0)
    };
    let body = match coding & 0x0C {
        0x00 => {
            let skip = (header_octets * 8).div_ceil(7);
            SmsBody::Text(unpack_septets(data, length, skip))
        }
        0x08 => {
            let octets = data
                .get(header_octets..length.min(data.len()))
                .ok_or(PduError::Truncated(k + 1))?;
            let units: Vec<u16> = octets
                .chunks_exact(2)
                .map(|p| u16::from_be_bytes([p[0], p[1]]))
                .collect();
            SmsBody::Text(String::from_utf16(&units).map_err(|_| PduError::BadUcs2)?)
        }
        0x04 => SmsBody::Bytes(
            data.get(header_octets..length.min(data.len()))
                .ok_or(PduError::Truncated(k + 1))?
                .to_vec(),
        ),
        _ => return Err(PduError::Coding(coding)),
    };
    Ok(Delivered { from, body, part })
}

/// The concatenation element of a user-data header, if it has one.
fn concatenation(header: &[u8]) -> Option<Part> {
    let mut k = 0;
    while k + 1 < header.len() {
        let (id, len) = (header[k], usize::from(header[k + 1]));
        let value = header.get(k + 2..k + 2 + len)?;
        match (id, value) {
            (0x00, [reference, total, sequence]) => {
                return Some(Part {
                    reference: *reference,
                    total: *total,
                    sequence: *sequence,
                });
            }
            (0x08, [r1, r2, total, sequence]) => {
                return Some(Part {
                    reference: r1 ^ r2,
                    total: *total,
                    sequence: *sequence,
                });
            }
            _ => k += 2 + len,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_published_7_bit_deliver_reads_as_hellohello() {
        // The SMS-DELIVER example of the well-known PDU tutorials.
        let delivered = read_deliver(
            "07917283010010F5040BC87238880900F10000993092516195800AE8329BFD4697D9EC37",
        )
        .expect("reads");
        assert_eq!(delivered.body, SmsBody::Text("hellohello".into()));
        assert_eq!(delivered.from, "27838890001");
        assert_eq!(delivered.part, None);
    }

    /// The SMS-SUBMIT `pdu` turned into the SMS-DELIVER a phone would receive.
    fn as_delivered(pdu: &str, from: &str) -> String {
        let tpdu = unhex(&pdu[2..]).expect("hex");
        let first = tpdu[0];
        let da_digits = usize::from(tpdu[2]);
        let rest = &tpdu[4 + da_digits.div_ceil(2)..];
        // PID, DCS, then VP (dropped), UDL and UD.
        let (pid, dcs, ud) = (rest[0], rest[1], &rest[3..]);
        let mut out = vec![0x00, if first & 0x40 != 0 { 0x44 } else { 0x04 }];
        out.extend(address(from).expect("number"));
        out.extend([pid, dcs]);
        out.extend([0x62, 0x21, 0x40, 0x21, 0x43, 0x00, 0x00]);
        out.extend(ud);
        hex(&out)
    }

    #[test]
    fn chinese_text_goes_as_ucs2_and_comes_back() {
        let body = SmsBody::Text("村委会：桥梁冲毁，请求支援".into());
        let pdus = submit("+8613800138000", &body, 1).expect("writes");
        assert_eq!(pdus.len(), 1);
        let (length, pdu) = &pdus[0];
        assert_eq!(*length, pdu.len() / 2 - 1, "octets after the SMSC field");
        let delivered = read_deliver(&as_delivered(pdu, "+8613800138000")).expect("reads");
        assert_eq!(delivered.body, body);
        assert_eq!(delivered.from, "+8613800138000");
    }

    #[test]
    fn a_long_message_is_split_with_headers_and_never_between_a_surrogate_pair() {
        // 66 characters, then an emoji whose two halves straddle the 67-unit boundary.
        let text = format!("{}😀{}", "雨".repeat(66), "后".repeat(80));
        let pdus = submit("13800138000", &SmsBody::Text(text.clone()), 9).expect("writes");
        assert_eq!(pdus.len(), 3);
        let mut joined = String::new();
        for (k, (_, pdu)) in pdus.iter().enumerate() {
            let delivered = read_deliver(&as_delivered(pdu, "13800138000")).expect("reads");
            assert_eq!(
                delivered.part,
                Some(Part {
                    reference: 9,
                    total: 3,
                    sequence: k as u8 + 1
                })
            );
            let SmsBody::Text(piece) = delivered.body else {
                panic!("text");
            };
            joined.push_str(&piece);
        }
        assert_eq!(joined, text, "every part is valid UTF-16 on its own");
    }

    #[test]
    fn a_submit_asks_for_a_status_report_only_when_told() {
        let body = SmsBody::Text("收到".into());
        let plain = submit("+8613800138000", &body, 0).expect("writes");
        let asking = submit_with("+8613800138000", &body, 0, true).expect("writes");
        assert_eq!(&plain[0].1[..4], "0011");
        assert_eq!(&asking[0].1[..4], "0031", "TP-SRR, bit 5");
        assert_eq!(plain[0].1[4..], asking[0].1[4..]);
        let long = submit_with("10086", &SmsBody::Text("雨".repeat(71)), 3, true).expect("two");
        assert!(long.iter().all(|(_, pdu)| pdu.starts_with("0071")));
        assert_eq!(
            status_report_for_submit(&plain[0].1, 7, [0; 7], 0),
            Ok(None),
            "not asked"
        );
    }

    #[test]
    fn a_status_report_reads_its_reference_recipient_and_status() {
        // SMSC +8613800210500; report of TP-MR 0x2C to +8613800138000, received by it
        // (TP-ST 00): the layout of TS 23.040 §9.2.2.3 written out by hand.
        let report = read_status_report(concat!(
            "0891683108200105F0",
            "062C0D91683108108300F0",
            "62214001510023",
            "62214001520023",
            "00",
        ))
        .expect("reads");
        assert_eq!(
            report,
            StatusReport {
                reference: 0x2C,
                recipient: "+8613800138000".into(),
                status: DeliveryStatus::Completed(0),
            }
        );
        assert!(report.status.is_delivered());
        assert_eq!(
            DeliveryStatus::from_octet(0x01),
            DeliveryStatus::Completed(1)
        );
        assert!(
            !DeliveryStatus::Completed(1).is_delivered(),
            "not confirmed"
        );
        assert_eq!(
            DeliveryStatus::from_octet(0x30),
            DeliveryStatus::StillTrying(0x30)
        );
        assert_eq!(
            DeliveryStatus::from_octet(0x41),
            DeliveryStatus::Failed(0x41)
        );
        assert_eq!(
            DeliveryStatus::from_octet(0x62),
            DeliveryStatus::Failed(0x62)
        );

        // What the simulated centre writes reads back the same.
        let asking =
            submit_with("+8613800138000", &SmsBody::Text("收到".into()), 0, true).expect("writes");
        let written = status_report_for_submit(&asking[0].1, 0x2C, [0x62; 7], 0)
            .expect("a SUBMIT")
            .expect("asked");
        assert_eq!(read_status_report(&written).expect("reads"), report);

        assert_eq!(
            read_status_report("0004"),
            Err(PduError::NotStatusReport(0))
        );
        assert_eq!(
            read_status_report("00062C0D91"),
            Err(PduError::Truncated(5))
        );
    }

    #[test]
    fn bytes_go_as_8_bit_data_and_bad_input_is_an_error() {
        let pdus = submit("10086", &SmsBody::Bytes(vec![0xA4, 0x00, 0xFF]), 0).expect("writes");
        let delivered = read_deliver(&as_delivered(&pdus[0].1, "10086")).expect("reads");
        assert_eq!(delivered.body, SmsBody::Bytes(vec![0xA4, 0x00, 0xFF]));
        assert_eq!(
            submit("12a4", &SmsBody::Bytes(vec![]), 0),
            Err(PduError::BadNumber("12a4".into()))
        );
        assert_eq!(read_deliver("0791"), Err(PduError::Truncated(8)));
        assert_eq!(read_deliver("07917283010010F5G4"), Err(PduError::NotHex));
    }
}
