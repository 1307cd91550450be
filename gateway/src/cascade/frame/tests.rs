use super::*;
use crate::cascade::auth::{Sealer, seal};
use crate::cascade::keys::{LinkKey, NodeKey};
use crate::cascade::samples;

fn area(code: &str) -> AreaCode {
    code.parse().expect("area code")
}

/// A small deterministic generator (xorshift64*), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn area(&mut self) -> AreaCode {
        let digits = [6, 9, 12][self.below(3) as usize];
        let value = self.below(10u64.pow(digits));
        area(&format!("{value:0width$}", width = digits as usize))
    }

    fn level(&mut self) -> Level {
        Level::ALL[self.below(5) as usize]
    }

    fn text(&mut self) -> String {
        let pieces = [
            "暴雨",
            "红色",
            "预警",
            "立即",
            "转移",
            "a",
            "Z",
            " ",
            "\u{1f6a8}",
            "，",
        ];
        let words = if self.below(10) == 0 {
            200
        } else {
            self.below(12)
        };
        (0..words)
            .map(|_| pieces[self.below(10) as usize])
            .collect()
    }

    fn alert(&mut self) -> Alert {
        Alert {
            number: self.next() as u32,
            level: self.level(),
            targets: (0..1 + self.below(4)).map(|_| self.area()).collect(),
            content: if self.below(2) == 0 {
                Content::Text(self.text())
            } else {
                Content::Audio(self.text())
            },
        }
    }

    fn body(&mut self, kind: Kind) -> Body {
        match kind {
            Kind::Alert => Body::Alert(self.alert()),
            Kind::Update => Body::Update(self.alert()),
            Kind::Cancel => Body::Cancel(Cancel {
                number: self.next() as u32,
            }),
            Kind::Acknowledgement => Body::Acknowledgement(Acknowledgement {
                origin: self.area(),
                sequence: self.next() as u32,
            }),
            Kind::Receipt => Body::Receipt(Receipt {
                alert_origin: self.area(),
                alert_number: self.next() as u32,
                area: self.area(),
                played: self.next() as u16,
                loudspeakers: self.next() as u16,
                bearer: BearerKind::ALL[self.below(5) as usize],
            }),
            Kind::FieldReport => Body::FieldReport(FieldReport { text: self.text() }),
            Kind::Heartbeat => Body::Heartbeat(Heartbeat {
                below: (0..self.below(4)).map(|_| self.link_state()).collect(),
            }),
            Kind::StreamGrant => Body::StreamGrant(StreamGrant {
                ssrc: self.next() as u32,
                level: self.level(),
            }),
        }
    }

    fn link_state(&mut self) -> LinkState {
        let bearer = |rng: &mut Rng| BearerKind::ALL[rng.below(5) as usize];
        LinkState {
            peer: self.area(),
            bearer: (self.below(3) > 0).then(|| bearer(self)),
            planned_bearer: bearer(self),
            message_bytes: self.next() as u16,
            pacing: (self.below(2) == 0)
                .then(|| (self.below(0xffff) as u16, self.below(0xffff) as u16)),
            queued: self.next() as u16,
            radio: self.below(2) == 0,
        }
    }

    fn trailer(&mut self) -> Trailer {
        let mut tag = [0; FULL_TAG_BYTES];
        match self.below(4) {
            0 => {
                let mut signature = [0; SIGNATURE_BYTES];
                signature.iter_mut().for_each(|b| *b = self.next() as u8);
                Trailer::Sm2(signature)
            }
            n => {
                let length =
                    [TagLength::Eight, TagLength::Sixteen, TagLength::Full][n as usize - 1];
                tag[..length.bytes()]
                    .iter_mut()
                    .for_each(|b| *b = self.next() as u8);
                Trailer::Hmac { length, tag }
            }
        }
    }

    fn frame(&mut self) -> Frame {
        let valid_from = self.next() as u32;
        let valid_until = valid_from.saturating_add(self.next() as u32 % 100_000);
        let kind = Kind::ALL[self.below(8) as usize];
        Frame {
            header: Header {
                origin: self.area(),
                sequence: self.next() as u32,
                valid_from: Timestamp(valid_from),
                valid_until: Timestamp(valid_until),
            },
            body: self.body(kind),
            trailer: self.trailer(),
        }
    }
}

fn short_red_alert() -> (Header, Body) {
    // 2025-07-01T08:00:00Z.
    let header = samples::district_header(1207, Timestamp(1_751_356_800));
    let body = Body::Alert(samples::red_alert("暴雨红色预警，立即转移到高处"));
    (header, body)
}

#[test]
fn every_kind_round_trips_through_encode_and_decode() {
    let mut rng = Rng(0x5eed_cafe);
    let mut kinds = std::collections::HashSet::new();
    for _ in 0..5_000 {
        let frame = rng.frame();
        kinds.insert(frame.kind());
        let bytes = frame.encode().expect("encodes");
        assert_eq!(decode(&bytes), Ok(frame.clone()), "{bytes:02x?}");
    }
    assert_eq!(kinds.len(), Kind::ALL.len());
}

#[test]
fn mutated_frames_never_panic_and_what_decodes_encodes_back_to_the_same_bytes() {
    let mut rng = Rng(0xbad_f00d);
    for _ in 0..20_000 {
        let mut bytes = rng.frame().encode().expect("encodes");
        match rng.below(3) {
            0 => {
                let at = rng.below(bytes.len() as u64) as usize;
                bytes[at] ^= 1 << rng.below(8);
            }
            1 => bytes.truncate(rng.below(bytes.len() as u64) as usize),
            _ => {
                let at = rng.below(bytes.len() as u64) as usize;
                bytes[at] = rng.next() as u8;
                bytes.push(rng.next() as u8);
            }
        }
        if let Ok(frame) = decode(&bytes) {
            assert_eq!(frame.encode().as_ref(), Ok(&bytes), "{frame:?}");
        }
    }
}

#[test]
fn every_prefix_of_a_frame_is_truncated_at_a_located_field() {
    let (header, body) = short_red_alert();
    let bytes = seal(
        &header,
        &body,
        Sealer::Hmac(&LinkKey::from_bytes([5; 32]), TagLength::Eight),
    )
    .expect("sealed");
    for len in 0..bytes.len() {
        match decode(&bytes[..len]) {
            Err(FrameError::Truncated { offset, .. }) => assert!(offset <= len, "{len}"),
            other => panic!("prefix of {len} bytes: {other:?}"),
        }
    }
    assert_eq!(
        decode(&bytes[..20]),
        Err(FrameError::Truncated {
            offset: 18,
            field: Field::AlertNumber
        })
    );
}

#[test]
fn faults_name_the_field_and_the_byte_where_it_starts() {
    let (header, body) = short_red_alert();
    let good = seal(
        &header,
        &body,
        Sealer::Hmac(&LinkKey::from_bytes([5; 32]), TagLength::Eight),
    )
    .expect("sealed");
    let with = |at: usize, value: u8| {
        let mut bytes = good.clone();
        bytes[at] = value;
        decode(&bytes)
    };
    assert_eq!(with(0, 2), Err(FrameError::UnknownVersion { version: 2 }));
    assert_eq!(with(1, 0), Err(FrameError::UnknownKind { code: 0 }));
    assert_eq!(
        with(2, 7),
        Err(FrameError::BadValue {
            offset: 2,
            field: Field::Origin,
            value: 7
        })
    );
    // Level: header 18 bytes, then the alert number.
    assert_eq!(
        with(22, 9),
        Err(FrameError::BadValue {
            offset: 22,
            field: Field::Level,
            value: 9
        })
    );
    assert_eq!(
        with(23, 0),
        Err(FrameError::BadLength {
            offset: 23,
            field: Field::TargetCount,
            length: 0
        })
    );
    // The first byte of the text: 0xe6 of 暴 replaced by a lone continuation byte.
    assert_eq!(
        with(32, 0x80),
        Err(FrameError::BadUtf8 {
            offset: 31,
            field: Field::Content
        })
    );
    let scheme_at = good.len() - 9;
    assert_eq!(
        with(scheme_at, 9),
        Err(FrameError::BadValue {
            offset: scheme_at,
            field: Field::Scheme,
            value: 9
        })
    );
    let mut longer = good.clone();
    longer.push(0);
    assert_eq!(
        decode(&longer),
        Err(FrameError::TrailingBytes {
            offset: good.len(),
            count: 1
        })
    );
}

#[test]
fn an_area_code_value_beyond_its_digit_count_is_refused() {
    let (header, body) = short_red_alert();
    let mut bytes = encode_authenticated(&header, &body).expect("encodes");
    // The origin: 6 digits in 3 bytes, 0xffffff > 999999.
    bytes[3..6].copy_from_slice(&[0xff, 0xff, 0xff]);
    bytes.extend_from_slice(&[2; 9]);
    assert_eq!(
        decode(&bytes),
        Err(FrameError::BadValue {
            offset: 2,
            field: Field::Origin,
            value: 0xff_ffff
        })
    );
}

#[test]
fn a_long_length_that_had_a_short_form_is_not_canonical() {
    let frame = Frame {
        header: short_red_alert().0,
        body: Body::FieldReport(FieldReport {
            text: "ok".to_string(),
        }),
        trailer: Trailer::Hmac {
            length: TagLength::Eight,
            tag: [0; FULL_TAG_BYTES],
        },
    };
    let bytes = frame.encode().expect("encodes");
    let mut long_form = bytes[..18].to_vec();
    long_form.extend_from_slice(&[0x80, 0x02, b'o', b'k']);
    long_form.extend_from_slice(&bytes[21..]);
    assert_eq!(
        decode(&long_form),
        Err(FrameError::BadLength {
            offset: 18,
            field: Field::ReportText,
            length: 2
        })
    );
}

#[test]
fn a_window_that_ends_before_it_starts_is_refused_both_ways() {
    let (mut header, body) = short_red_alert();
    header.valid_until = Timestamp(header.valid_from.0 - 1);
    assert_eq!(
        encode_authenticated(&header, &body),
        Err(EncodeError::EmptyValidity)
    );
}

#[test]
fn encoding_refuses_what_the_layout_cannot_carry() {
    let (header, _) = short_red_alert();
    let report = Body::FieldReport(FieldReport {
        text: "x".repeat(MAX_CONTENT_BYTES + 1),
    });
    assert_eq!(
        encode_authenticated(&header, &report),
        Err(EncodeError::TooLong(Field::ReportText))
    );
    let no_target = Body::Alert(Alert {
        number: 1,
        level: Level::Blue,
        targets: vec![],
        content: Content::Text(String::new()),
    });
    assert_eq!(
        encode_authenticated(&header, &no_target),
        Err(EncodeError::TargetCount(0))
    );
}

#[test]
fn a_short_red_alert_to_one_village_fits_one_beidou_message_with_an_eight_byte_tag() {
    let (header, body) = short_red_alert();
    let link = LinkKey::from_bytes(*b"example link key, not for a node");
    let tagged = seal(&header, &body, Sealer::Hmac(&link, TagLength::Eight)).expect("sealed");
    // 18 header + 14 alert fields + 42 text (14 characters) + 9 trailer.
    assert_eq!(tagged.len(), 83);
    assert!(tagged.len() > crate::cascade::fragment::BEIDOU_MESSAGE);

    let (header, mut body) = short_red_alert();
    if let Body::Alert(alert) = &mut body {
        alert.content = Content::Text("暴雨红色预警，立即转移".to_string());
    }
    let tagged = seal(&header, &body, Sealer::Hmac(&link, TagLength::Eight)).expect("sealed");
    assert_eq!(tagged.len(), 74);
    assert!(tagged.len() <= crate::cascade::fragment::BEIDOU_MESSAGE);
    let key = NodeKey::from_hex(&"11".repeat(32)).expect("key");
    let signed = seal(&header, &body, Sealer::Sm2(&key)).expect("sealed");
    assert_eq!(signed.len(), 130);

    // The example in docs/frames.md.
    let hex: Vec<String> = tagged.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(
        hex.join(" "),
        "01 01 06 06 43 87 00 00 04 b7 68 63 95 80 68 63 e9 e0 00 00 00 58 04 01 0c 5f 93 e2 \
         b3 a9 00 21 e6 9a b4 e9 9b a8 e7 ba a2 e8 89 b2 e9 a2 84 e8 ad a6 ef bc 8c e7 ab 8b e5 \
         8d b3 e8 bd ac e7 a7 bb 02 9c 52 6c 4a 8f d8 8f d4"
    );
}

#[test]
fn small_frames_have_the_sizes_docs_frames_md_gives() {
    let link = LinkKey::from_bytes([1; 32]);
    let key = NodeKey::from_hex(&"11".repeat(32)).expect("key");
    let (district, _) = short_red_alert();
    let village = Header {
        origin: area("410503001001"),
        ..district.clone()
    };
    let receipt = samples::village_receipt();
    for (header, body, tagged, signed) in [
        (&district, Body::Cancel(Cancel { number: 88 }), 31, 87),
        (&district, Body::Heartbeat(Heartbeat::default()), 28, 84),
        (&village, receipt, 48, 104),
    ] {
        let hmac = seal(header, &body, Sealer::Hmac(&link, TagLength::Eight)).expect("sealed");
        let sm2 = seal(header, &body, Sealer::Sm2(&key)).expect("sealed");
        assert_eq!(
            (hmac.len(), sm2.len()),
            (tagged, signed),
            "{:?}",
            body.kind()
        );
    }
}

#[test]
fn a_heartbeat_up_tells_each_link_below_in_17_bytes_and_refuses_what_it_cannot_mean() {
    let link = LinkKey::from_bytes([1; 32]);
    let (district, _) = short_red_alert();
    let street = Header {
        origin: area("410503001"),
        ..district
    };
    let village = |peer: &str, bearer| LinkState {
        peer: area(peer),
        bearer,
        planned_bearer: BearerKind::Beidou,
        message_bytes: 78,
        pacing: Some((2, 60)),
        queued: 3,
        radio: true,
    };
    let body = Body::Heartbeat(Heartbeat {
        below: vec![
            village("410503001001", Some(BearerKind::Beidou)),
            village("410503001002", None),
        ],
    });
    let sealed = seal(&street, &body, Sealer::Hmac(&link, TagLength::Eight)).expect("sealed");
    // 29 bytes empty from a street (a 9-digit origin), then per link: area 6, bearers 2,
    // message size, pacing and queue 8, flags 1.
    assert_eq!(sealed.len(), 29 + 2 * 17);
    assert_eq!(decode(&sealed).expect("decodes").body, body);

    // The byte after the second link's peer (header 19, count 1, first link 17): none
    // up, then its planned route.
    let at = 19 + 1 + 17 + 6;
    assert_eq!(sealed[at], 0xff);
    let mut no_such_bearer = sealed.clone();
    no_such_bearer[at + 1] = 9;
    assert!(matches!(
        decode(&no_such_bearer),
        Err(FrameError::BadValue {
            field: Field::LinkBearer,
            ..
        })
    ));
    let mut half_known_pacing = sealed.clone();
    half_known_pacing[at + 4..at + 6].copy_from_slice(&[0xff, 0xff]);
    assert!(matches!(
        decode(&half_known_pacing),
        Err(FrameError::BadValue {
            field: Field::LinkPacing,
            ..
        })
    ));
    let mut unknown_flag = sealed.clone();
    unknown_flag[at + 10] = 2;
    assert!(matches!(
        decode(&unknown_flag),
        Err(FrameError::BadValue {
            field: Field::LinkFlags,
            ..
        })
    ));
}
