//! A message's payload in the three forms of a 2.1 terminal, and how much fits.
//!
//! * **Chinese** (form 0): GB2312 text, written into the sentence as its bytes. GB2312
//!   is read and written through `encoding_rs`'s GBK codec, and held to GB2312's own
//!   range (lead byte 0xA1–0xF7, trail byte 0xA1–0xFE): a GBK-only character is
//!   refused, as the terminal would garble it. So are control characters and `$`,
//!   which would break the sentence the text travels in.
//! * **Code** (form 1): the bytes as upper-case hex digits.
//! * **Mixed** (form 2): hex digits of the bytes led by the marker byte A4.
//!
//! Capacity: a message carries [`capacity_bits`](super::nmea::capacity_bits) bits at the
//! card's comm level; a code byte takes 8 bits, a Chinese character 14 (an ASCII
//! character in Chinese form counts as one), and a mixed message gives 8 to its marker.

use super::nmea::{MessageForm, capacity_bits};

/// Why a payload cannot be written or read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    #[error("{0:?} is not in GB2312")]
    NotGb2312(char),
    #[error("{0:?} cannot travel in a sentence (control characters and $ are refused)")]
    NotAllowed(char),
    #[error("byte {offset} is not GB2312 text")]
    BadGb2312 { offset: usize },
    #[error("hex payload: {0}")]
    BadHex(&'static str),
    #[error("a mixed payload starts with A4")]
    NoMarker,
    #[error("{needed} bits do not fit in {capacity}")]
    TooLong { needed: u32, capacity: u32 },
}

/// What a payload means once read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    Text(String),
    Bytes(Vec<u8>),
}

fn is_gb2312_pair(lead: u8, trail: u8) -> bool {
    (0xA1..=0xF7).contains(&lead) && (0xA1..=0xFE).contains(&trail)
}

/// `text` in GB2312.
pub fn encode_chinese(text: &str) -> Result<Vec<u8>, PayloadError> {
    let mut out = Vec::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() || c == '$' {
            return Err(PayloadError::NotAllowed(c));
        }
        let mut buf = [0u8; 4];
        let (bytes, _, unmappable) = encoding_rs::GBK.encode(c.encode_utf8(&mut buf));
        match &bytes[..] {
            [b] if !unmappable && b.is_ascii() => out.push(*b),
            [lead, trail] if !unmappable && is_gb2312_pair(*lead, *trail) => {
                out.extend_from_slice(&[*lead, *trail]);
            }
            _ => return Err(PayloadError::NotGb2312(c)),
        }
    }
    Ok(out)
}

/// GB2312 `bytes` as text.
pub fn decode_chinese(bytes: &[u8]) -> Result<String, PayloadError> {
    let mut k = 0;
    while k < bytes.len() {
        match bytes[k] {
            b if b.is_ascii() => k += 1,
            lead => match bytes.get(k + 1) {
                Some(&trail) if is_gb2312_pair(lead, trail) => k += 2,
                _ => return Err(PayloadError::BadGb2312 { offset: k }),
            },
        }
    }
    let (text, _, malformed) = encoding_rs::GBK.decode(bytes);
    if malformed {
        return Err(PayloadError::BadGb2312 { offset: 0 });
    }
    Ok(text.into_owned())
}

/// Upper-case hex digits of `bytes`.
pub fn encode_hex(bytes: &[u8]) -> Vec<u8> {
    bytes
        .iter()
        .flat_map(|b| format!("{b:02X}").into_bytes())
        .collect()
}

/// The bytes of hex digits.
pub fn decode_hex(digits: &[u8]) -> Result<Vec<u8>, PayloadError> {
    if digits.len() % 2 != 0 {
        return Err(PayloadError::BadHex("an odd number of digits"));
    }
    digits
        .chunks(2)
        .map(|pair| {
            std::str::from_utf8(pair)
                .ok()
                .and_then(|p| u8::from_str_radix(p, 16).ok())
                .ok_or(PayloadError::BadHex("not a hex digit"))
        })
        .collect()
}

/// The payload field of a message of `content` in `form`.
pub fn encode(form: MessageForm, content: &Content) -> Result<Vec<u8>, PayloadError> {
    match (form, content) {
        (MessageForm::Chinese, Content::Text(text)) => encode_chinese(text),
        (MessageForm::Chinese, Content::Bytes(bytes)) => {
            encode_chinese(&String::from_utf8_lossy(bytes))
        }
        (MessageForm::Code, Content::Text(text)) => Ok(encode_hex(text.as_bytes())),
        (MessageForm::Code, Content::Bytes(bytes)) => Ok(encode_hex(bytes)),
        (MessageForm::Mixed, content) => {
            let bytes = match content {
                Content::Text(text) => text.as_bytes(),
                Content::Bytes(bytes) => bytes,
            };
            let mut out = b"A4".to_vec();
            out.extend(encode_hex(bytes));
            Ok(out)
        }
    }
}

/// What a payload field of `form` holds.
pub fn decode(form: MessageForm, field: &[u8]) -> Result<Content, PayloadError> {
    match form {
        MessageForm::Chinese => decode_chinese(field).map(Content::Text),
        MessageForm::Code => decode_hex(field).map(Content::Bytes),
        MessageForm::Mixed => {
            let bytes = decode_hex(field)?;
            match bytes.split_first() {
                Some((0xA4, rest)) => Ok(Content::Bytes(rest.to_vec())),
                _ => Err(PayloadError::NoMarker),
            }
        }
    }
}

/// The bits a payload field of `form` takes in a message.
pub fn bits(form: MessageForm, field: &[u8]) -> u32 {
    match form {
        MessageForm::Chinese => {
            let ascii = field.iter().filter(|b| b.is_ascii()).count() as u32;
            let pairs = (field.len() as u32 - ascii) / 2;
            (ascii + pairs) * 14
        }
        MessageForm::Code | MessageForm::Mixed => field.len() as u32 / 2 * 8,
    }
}

/// Checks that a payload field fits a card of `comm_level`.
pub fn check_fits(form: MessageForm, field: &[u8], comm_level: u8) -> Result<(), PayloadError> {
    let (needed, capacity) = (bits(form, field), capacity_bits(comm_level));
    if needed > capacity {
        return Err(PayloadError::TooLong { needed, capacity });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chinese_text_goes_out_as_gb2312_and_comes_back() {
        let text = "暴雨红色预警 ZX-1";
        let field = encode_chinese(text).expect("GB2312");
        assert_eq!(&field[..2], &[0xB1, 0xA9], "暴 is B1A9 in GB2312");
        assert_eq!(decode_chinese(&field).expect("reads"), text);
        assert_eq!(bits(MessageForm::Chinese, &field), 11 * 14);
    }

    #[test]
    fn line_breaks_and_dollar_signs_are_refused_as_they_would_break_the_sentence() {
        assert_eq!(
            encode_chinese("第一行\n第二行"),
            Err(PayloadError::NotAllowed('\n'))
        );
        assert_eq!(encode_chinese("$CC"), Err(PayloadError::NotAllowed('$')));
    }

    #[test]
    fn characters_outside_gb2312_and_broken_bytes_are_refused() {
        assert_eq!(encode_chinese("😀"), Err(PayloadError::NotGb2312('😀')));
        // 亍 is in GB2312; 丂 (GBK 8140) is GBK only.
        assert!(encode_chinese("亍").is_ok());
        assert_eq!(encode_chinese("丂"), Err(PayloadError::NotGb2312('丂')));
        assert_eq!(
            decode_chinese(&[0xB1, 0xA9, 0xB1]),
            Err(PayloadError::BadGb2312 { offset: 2 })
        );
        assert_eq!(
            decode_chinese(&[0x81, 0x40]),
            Err(PayloadError::BadGb2312 { offset: 0 })
        );
    }

    #[test]
    fn code_and_mixed_forms_are_hex_the_mixed_led_by_a4() {
        let hello = Content::Bytes(b"hello".to_vec());
        assert_eq!(
            encode(MessageForm::Mixed, &hello).expect("mixed"),
            b"A468656C6C6F"
        );
        assert_eq!(
            decode(MessageForm::Mixed, b"A468656C6C6F").expect("reads"),
            hello
        );
        assert_eq!(
            decode(MessageForm::Mixed, b"68656C"),
            Err(PayloadError::NoMarker)
        );
        assert_eq!(
            decode(MessageForm::Code, b"3132G3"),
            Err(PayloadError::BadHex("not a hex digit"))
        );
        assert_eq!(
            decode(MessageForm::Code, b"313"),
            Err(PayloadError::BadHex("an odd number of digits"))
        );
    }

    #[test]
    fn a_comm_level_3_card_takes_78_code_bytes_and_44_chinese_characters() {
        let bytes = encode_hex(&[0x55; 78]);
        assert!(check_fits(MessageForm::Code, &bytes, 3).is_ok());
        let more = encode_hex(&[0x55; 79]);
        assert_eq!(
            check_fits(MessageForm::Code, &more, 3),
            Err(PayloadError::TooLong {
                needed: 632,
                capacity: 628
            })
        );
        let chinese = encode_chinese(&"雨".repeat(44)).expect("GB2312");
        assert!(check_fits(MessageForm::Chinese, &chinese, 3).is_ok());
        let longer = encode_chinese(&"雨".repeat(45)).expect("GB2312");
        assert!(check_fits(MessageForm::Chinese, &longer, 3).is_err());
    }
}
