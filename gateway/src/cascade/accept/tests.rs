use chrono::TimeZone;

use super::*;
use crate::alert::model::Level;
use crate::cascade::auth::{Sealer, seal};
use crate::cascade::frame::{Alert, Body, Content, Header, TagLength};
use crate::cascade::keys::NodeKey;

const LINK: &str = "street-410503001 beidou";

struct Fixture {
    district: NodeKey,
    link: LinkKey,
    acceptor: Acceptor,
}

fn district() -> AreaCode {
    "410503".parse().expect("area")
}

/// 2025-07-01T08:00:00Z, when the test alerts are issued.
fn issued() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 7, 1, 8, 0, 0)
        .single()
        .expect("time")
}

fn at(seconds_after_issue: i64) -> DateTime<Utc> {
    issued() + chrono::Duration::seconds(seconds_after_issue)
}

fn fixture() -> Fixture {
    let district_key = NodeKey::generate().expect("random");
    let link = LinkKey::from_bytes([0x42; 32]);
    let mut keys = Keyring::default();
    keys.add_origin(district(), district_key.public());
    keys.add_link(LINK, link.clone());
    let config = AcceptConfig {
        skew: Duration::from_secs(30),
        replay_window: 64,
    };
    Fixture {
        district: district_key,
        link,
        acceptor: Acceptor::new(keys, config, ReplayState::default()),
    }
}

fn alert_header(sequence: u32) -> Header {
    let from = Timestamp::from_datetime(issued()).expect("in range");
    Header {
        origin: district(),
        sequence,
        valid_from: from,
        valid_until: Timestamp(from.0 + 3600),
    }
}

fn alert_body(text: &str) -> Body {
    Body::Alert(Alert {
        number: 88,
        level: Level::Red,
        targets: vec!["410503001001".parse().expect("area")],
        content: Content::Text(text.to_string()),
    })
}

impl Fixture {
    fn signed(&self, header: &Header, body: &Body) -> Vec<u8> {
        seal(header, body, Sealer::Sm2(&self.district)).expect("sealed")
    }

    fn tagged(&self, header: &Header, body: &Body) -> Vec<u8> {
        seal(header, body, Sealer::Hmac(&self.link, TagLength::Eight)).expect("sealed")
    }

    fn accept(&mut self, bytes: &[u8], now: DateTime<Utc>) -> Result<Accepted, Refusal> {
        self.acceptor.accept(bytes, LINK, now)
    }
}

#[test]
fn a_signed_alert_from_a_known_origin_inside_its_window_is_accepted() {
    let mut f = fixture();
    let bytes = f.signed(&alert_header(1), &alert_body("撤离"));
    match f.accept(&bytes, at(5)) {
        Ok(Accepted::New(frame)) => assert_eq!(frame.body, alert_body("撤离")),
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_same_alert_over_another_bearer_is_a_duplicate_not_an_error() {
    let mut f = fixture();
    let over_ip = f.signed(&alert_header(1), &alert_body("撤离"));
    let over_beidou = f.tagged(&alert_header(1), &alert_body("撤离"));
    assert!(matches!(f.accept(&over_ip, at(5)), Ok(Accepted::New(_))));
    assert_eq!(
        f.accept(&over_beidou, at(65)),
        Ok(Accepted::Duplicate {
            origin: district(),
            sequence: 1,
            kind: Kind::Alert
        })
    );
}

#[test]
fn a_replayed_sequence_with_other_content_is_refused() {
    let mut f = fixture();
    let first = f.signed(&alert_header(1), &alert_body("撤离"));
    let other = f.signed(&alert_header(1), &alert_body("解除"));
    assert!(matches!(f.accept(&first, at(5)), Ok(Accepted::New(_))));
    let refusal = f.accept(&other, at(6)).expect_err("reused");
    assert_eq!(refusal.reason(), "sequence_reused");
}

#[test]
fn a_sequence_below_the_window_is_refused_as_replayed() {
    let mut f = fixture();
    let old = f.signed(&alert_header(10), &alert_body("一"));
    let newer = f.signed(&alert_header(200), &alert_body("二"));
    assert!(matches!(f.accept(&newer, at(1)), Ok(Accepted::New(_))));
    assert_eq!(
        f.accept(&old, at(2)),
        Err(Refusal::Replayed {
            origin: district(),
            sequence: 10,
            kind: Kind::Alert,
            lowest: 137
        })
    );
}

#[test]
fn a_restarted_node_keeps_refusing_what_it_accepted_before() {
    let mut f = fixture();
    let bytes = f.signed(&alert_header(3), &alert_body("撤离"));
    assert!(matches!(f.accept(&bytes, at(1)), Ok(Accepted::New(_))));
    let stored = serde_json::to_string(f.acceptor.replay_state()).expect("stores");

    let mut keys = Keyring::default();
    keys.add_origin(district(), f.district.public());
    let loaded = serde_json::from_str(&stored).expect("loads");
    let mut restarted = Acceptor::new(keys, AcceptConfig::default(), loaded);
    assert!(matches!(
        restarted.accept(&bytes, LINK, at(2)),
        Ok(Accepted::Duplicate { sequence: 3, .. })
    ));
}

#[test]
fn a_forged_signature_is_refused() {
    let mut f = fixture();
    let forger = NodeKey::generate().expect("random");
    let forged = seal(&alert_header(1), &alert_body("假"), Sealer::Sm2(&forger)).expect("ok");
    assert_eq!(
        f.accept(&forged, at(1)),
        Err(Refusal::BadSignature {
            origin: district(),
            sequence: 1,
            kind: Kind::Alert
        })
    );
    assert!(
        f.acceptor.replay_state().origins.is_empty(),
        "a refused frame leaves no trace"
    );
}

#[test]
fn a_tag_from_the_wrong_link_key_is_refused() {
    let mut f = fixture();
    let wrong = LinkKey::from_bytes([0x43; 32]);
    let bytes = seal(
        &alert_header(1),
        &alert_body("撤离"),
        Sealer::Hmac(&wrong, TagLength::Eight),
    )
    .expect("sealed");
    let refusal = f.accept(&bytes, at(1)).expect_err("wrong key");
    assert_eq!(refusal.reason(), "bad_tag");
    assert_eq!(
        refusal.to_string(),
        "alert 1 from 410503: the HMAC-SM3 tag of link \"street-410503001 beidou\" does not verify"
    );
}

#[test]
fn a_tagged_frame_over_a_link_without_a_key_is_refused() {
    let mut f = fixture();
    let bytes = f.tagged(&alert_header(1), &alert_body("撤离"));
    let refusal = f.acceptor.accept(&bytes, "some other link", at(1));
    assert!(
        matches!(refusal, Err(Refusal::NoLinkKey { .. })),
        "{refusal:?}"
    );
}

#[test]
fn a_bit_flipped_anywhere_is_refused() {
    let mut f = fixture();
    let signed = f.signed(&alert_header(1), &alert_body("撤离"));
    let tagged = f.tagged(&alert_header(1), &alert_body("撤离"));
    for bytes in [signed, tagged] {
        for bit in 0..bytes.len() * 8 {
            let mut flipped = bytes.clone();
            flipped[bit / 8] ^= 1 << (bit % 8);
            let outcome = f.accept(&flipped, at(1));
            assert!(outcome.is_err(), "bit {bit}: {outcome:?}");
        }
    }
}

#[test]
fn a_frame_from_an_unknown_origin_is_refused() {
    let mut f = fixture();
    let stranger: AreaCode = "410504".parse().expect("area");
    let header = Header {
        origin: stranger.clone(),
        ..alert_header(1)
    };
    let bytes = seal(&header, &alert_body("撤离"), Sealer::Sm2(&f.district)).expect("sealed");
    assert_eq!(
        f.accept(&bytes, at(1)),
        Err(Refusal::UnknownOrigin {
            origin: stranger,
            kind: Kind::Alert
        })
    );
}

#[test]
fn an_expired_frame_is_refused_once_past_the_skew() {
    let mut f = fixture();
    let bytes = f.signed(&alert_header(1), &alert_body("撤离"));
    let refusal = f.accept(&bytes, at(3600 + 31)).expect_err("expired");
    assert_eq!(refusal.reason(), "expired");
    assert_eq!(
        refusal.to_string(),
        "alert 1 from 410503: expired at 2025-07-01T09:00:00Z, now 2025-07-01T09:00:31Z (skew 30 s)"
    );
    assert!(matches!(
        f.accept(&bytes, at(3600 + 30)),
        Ok(Accepted::New(_))
    ));
}

#[test]
fn a_frame_from_a_clock_beyond_the_skew_is_not_yet_valid() {
    let mut f = fixture();
    let bytes = f.signed(&alert_header(1), &alert_body("撤离"));
    let refusal = f.accept(&bytes, at(-31)).expect_err("early");
    assert!(
        matches!(refusal, Refusal::NotYetValid { skew_s: 30, .. }),
        "{refusal}"
    );
    assert!(matches!(f.accept(&bytes, at(-30)), Ok(Accepted::New(_))));
}

#[test]
fn a_refusal_for_bad_bytes_says_where_they_are_wrong() {
    let mut f = fixture();
    let refusal = f.accept(&[1, 1, 6], at(0)).expect_err("short");
    assert_eq!(refusal.reason(), "malformed");
    assert_eq!(
        refusal.to_string(),
        "not a frame: byte 2: origin: the frame ends before it does"
    );
}

#[test]
fn a_rotated_key_verifies_beside_the_old_one_during_the_window() {
    let mut f = fixture();
    let new_key = NodeKey::generate().expect("random");
    let mut keys = Keyring::default();
    keys.add_origin(district(), f.district.public());
    keys.add_origin(district(), new_key.public());
    let mut acceptor = Acceptor::new(keys, AcceptConfig::default(), ReplayState::default());
    let old = f.signed(&alert_header(1), &alert_body("旧"));
    let new = seal(&alert_header(2), &alert_body("新"), Sealer::Sm2(&new_key)).expect("ok");
    assert!(matches!(
        acceptor.accept(&old, LINK, at(1)),
        Ok(Accepted::New(_))
    ));
    assert!(matches!(
        acceptor.accept(&new, LINK, at(1)),
        Ok(Accepted::New(_))
    ));
    // Once the old key is removed, only the new one is trusted.
    let mut keys = Keyring::default();
    keys.add_origin(district(), new_key.public());
    f.acceptor = Acceptor::new(keys, AcceptConfig::default(), ReplayState::default());
    assert_eq!(
        f.accept(&old, at(1)).map(|_| ()).map_err(|r| r.reason()),
        Err("bad_signature")
    );
}

#[test]
fn a_clock_inside_the_skew_is_fine_and_one_outside_says_so() {
    let skew = Duration::from_secs(30);
    assert_eq!(
        clock_check(at(20), at(0), skew),
        ClockCheck::Within { offset_s: 20 }
    );
    let check = clock_check(at(0), at(372), skew);
    assert_eq!(
        check,
        ClockCheck::Outside {
            offset_s: -372,
            skew_s: 30
        }
    );
    assert_eq!(
        check.to_string(),
        "the clock is 372 s behind the reference, beyond the allowed skew of 30 s: frames will \
         be refused as not yet valid or expired until the clock is corrected"
    );
}
