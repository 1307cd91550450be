use chrono::TimeZone;

use super::*;
use crate::alert::cap;

fn destination(name: &str, area: &str, kind: DownstreamKind, exercises: bool) -> Destination {
    Destination {
        name: name.into(),
        area: area.parse().expect("code"),
        kind,
        takes_exercises: exercises,
    }
}

fn rules() -> Rules {
    Rules {
        node_name: "district-410503".into(),
        geocode_names: vec!["GB/T 2260".into()],
        language: "zh-CN".into(),
        confirm_levels: vec![Level::Orange, Level::Red],
        default_validity: Duration::hours(1),
        default_repeat: 2,
        destinations: vec![
            destination("street-001", "410503001", DownstreamKind::Gateway, true),
            destination("street-002", "410503002", DownstreamKind::Gateway, true),
            destination("street-005", "410503005", DownstreamKind::Gateway, false),
            destination("pole-hall", "410503", DownstreamKind::Loudspeaker, true),
        ],
    }
}

fn beiguan() -> CapAlert {
    let bytes = include_bytes!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/cap/beiguan-rainstorm-red.xml"
    ));
    cap::parse(bytes).expect("valid fixture")
}

/// During the Beiguan alert's validity (06:30 to 18:30 +08:00).
fn during() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 7, 21, 0, 0, 0)
        .single()
        .expect("time")
}

fn no_earlier(_: &Reference) -> Option<i64> {
    None
}

#[test]
fn the_beiguan_exercise_targets_the_streets_that_take_exercises() {
    let admitted = rules()
        .admit_cap(&beiguan(), "chime", during(), no_earlier)
        .expect("admitted");
    assert_eq!(admitted.level, Level::Red);
    assert_eq!(admitted.purpose, Purpose::Exercise);
    assert_eq!(admitted.language, "zh-CN");
    assert_eq!(admitted.targets, ["street-001"]);
    assert_eq!(admitted.skipped.len(), 1);
    assert_eq!(admitted.skipped[0].name, "street-005");
    assert!(
        !admitted.needs_confirmation,
        "an exercise needs no confirmation"
    );
    assert!(
        admitted
            .text
            .starts_with("演练。安阳市气象台发布暴雨红色预警信号。过去三小时")
    );
    assert!(admitted.text.ends_with("涵洞。"));
}

#[test]
fn a_node_configured_for_english_speaks_the_english_info() {
    let mut rules = rules();
    rules.language = "en".into();
    let admitted = rules
        .admit_cap(&beiguan(), "chime", during(), no_earlier)
        .expect("admitted");
    assert_eq!(admitted.language, "en-US");
    assert_eq!(
        admitted.text,
        "Exercise. Rainstorm red warning for Beiguan district. Residents of low-lying riverside areas must move to safe ground now."
    );
}

#[test]
fn an_actual_red_alert_waits_for_a_second_operator() {
    let mut alert = beiguan();
    alert.status = cap::Status::Actual;
    let admitted = rules()
        .admit_cap(&alert, "chime", during(), no_earlier)
        .expect("admitted");
    assert!(admitted.needs_confirmation);
    assert_eq!(admitted.targets, ["street-001", "street-005"]);

    let mut relaxed = rules();
    relaxed.confirm_levels.clear();
    let admitted = relaxed
        .admit_cap(&alert, "chime", during(), no_earlier)
        .expect("admitted");
    assert!(!admitted.needs_confirmation);
}

#[test]
fn an_expired_alert_is_refused() {
    let after = Utc
        .with_ymd_and_hms(2026, 7, 21, 10, 31, 0)
        .single()
        .expect("time");
    let refusal = rules()
        .admit_cap(&beiguan(), "chime", after, no_earlier)
        .expect_err("expired");
    assert!(matches!(refusal, Refusal::Expired(_)), "{refusal}");
    assert_eq!(refusal.to_string(), "expired at 2026-07-21 10:30:00 UTC");
}

#[test]
fn an_alert_for_another_district_is_refused_naming_its_codes() {
    let mut alert = beiguan();
    for info in &mut alert.infos {
        for geocode in info.areas.iter_mut().flat_map(|a| a.geocodes.iter_mut()) {
            geocode.value = "110101001".into();
        }
    }
    let refusal = rules()
        .admit_cap(&alert, "chime", during(), no_earlier)
        .expect_err("no target");
    assert_eq!(
        refusal.to_string(),
        "no area of the alert (geocodes under GB/T 2260: 110101001) matches any destination of this node"
    );
}

#[test]
fn geocodes_under_other_value_names_are_not_targets() {
    let weather = cap::parse(include_bytes!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/cap/weather.cap"
    )))
    .expect("valid");
    let when = weather.sent.with_timezone(&Utc);
    let refusal = rules()
        .admit_cap(&weather, "chime", when, no_earlier)
        .expect_err("no target");
    assert!(matches!(refusal, Refusal::NoTarget { .. }));
    assert!(refusal.to_string().contains("FIPS6="), "{refusal}");
}

#[test]
fn unknown_severity_has_no_warning_level() {
    let mut alert = beiguan();
    for info in &mut alert.infos {
        info.severity = cap::Severity::Unknown;
    }
    let refusal = rules()
        .admit_cap(&alert, "chime", during(), no_earlier)
        .expect_err("refused");
    assert_eq!(refusal, Refusal::NoWarningLevel);
}

#[test]
fn an_update_or_cancel_must_reference_a_known_alert() {
    let mut cancel = beiguan();
    cancel.msg_type = cap::MsgType::Cancel;
    assert_eq!(
        rules().admit_cap(&cancel, "chime", during(), no_earlier),
        Err(Refusal::NoReference(cap::MsgType::Cancel))
    );
    cancel.references = vec![beiguan().reference()];
    let refusal = rules()
        .admit_cap(&cancel, "chime", during(), no_earlier)
        .expect_err("unknown");
    assert!(matches!(refusal, Refusal::UnknownReference(_)));
    let known = |r: &Reference| (r.identifier == "41050341400000_20260721063000_1").then_some(7);
    let admitted = rules()
        .admit_cap(&cancel, "chime", during(), known)
        .expect("known");
    assert_eq!(admitted.replaces, [7]);
}

#[test]
fn drafts_and_system_messages_are_not_played() {
    let mut draft = beiguan();
    draft.status = cap::Status::Draft;
    assert_eq!(
        rules().admit_cap(&draft, "chime", during(), no_earlier),
        Err(Refusal::StatusNotPlayed(cap::Status::Draft))
    );
}

fn form(text: &str, level: &str, areas: &[&str]) -> AlertForm {
    AlertForm {
        text: text.into(),
        level: level.into(),
        areas: areas.iter().map(|a| a.to_string()).collect(),
        ..AlertForm::default()
    }
}

#[test]
fn a_typed_alert_for_a_village_goes_to_its_street() {
    let admitted = rules()
        .admit_form(
            &form("河水上涨，请立即转移。", "yellow", &["410503002003"]),
            Kind::Alert,
            "zhang",
            "X-1".into(),
            "chime",
            during(),
        )
        .expect("admitted");
    assert_eq!(
        admitted.targets,
        ["street-002"],
        "the hall loudspeaker is the district's, not the village's"
    );
    assert_eq!(admitted.headline, "河水上涨，请立即转移");
    assert_eq!(admitted.sender, "zhang@district-410503");
    assert_eq!(admitted.expires - admitted.effective, Duration::hours(1));
    assert!(!admitted.needs_confirmation);
}

#[test]
fn a_typed_alert_for_the_district_reaches_every_destination() {
    let admitted = rules()
        .admit_form(
            &form("test", "blue", &["410503"]),
            Kind::Alert,
            "zhang",
            "X-2".into(),
            "none",
            during(),
        )
        .expect("admitted");
    assert_eq!(admitted.targets.len(), 4);
}

#[test]
fn bad_forms_are_refused_with_the_field_named() {
    let r = rules();
    let refuse = |f: AlertForm| {
        r.admit_form(&f, Kind::Alert, "zhang", "X".into(), "chime", during())
            .expect_err("refused")
            .to_string()
    };
    assert!(refuse(form("x", "purple", &["410503"])).contains("unknown level \"purple\""));
    assert!(refuse(form("x", "red", &["4105"])).contains("\"4105\" is not a GB/T 2260"));
    assert!(refuse(form("", "red", &["410503"])).contains("`text` is empty"));
    assert!(refuse(form("x", "red", &[])).contains("`areas` is empty"));
    let mut f = form("x", "red", &["410503"]);
    f.repeat = Some(0);
    assert!(refuse(f).contains("`repeat`"));
    let mut f = form("x", "red", &["410503"]);
    f.attention = Some("klaxon".into());
    assert!(refuse(f).contains("unknown attention signal"));
}

#[test]
fn a_bare_cap_cancel_needs_only_its_references() {
    let mut cancel = beiguan();
    cancel.msg_type = cap::MsgType::Cancel;
    cancel.infos.clear();
    cancel.references = vec![beiguan().reference()];
    let known = |_: &Reference| Some(3);
    let long_after = Utc
        .with_ymd_and_hms(2027, 1, 1, 0, 0, 0)
        .single()
        .expect("time");
    let admitted = rules()
        .admit_cap(&cancel, "chime", long_after, known)
        .expect("admitted");
    assert_eq!(admitted.replaces, [3]);
    assert_eq!(admitted.msg_type, "Cancel");
    assert!(admitted.targets.is_empty());
    assert!(
        !admitted.needs_confirmation,
        "stopping an alert never waits"
    );
}

/// A village node's rules: two loudspeakers, one of which takes exercises.
fn village_rules() -> Rules {
    Rules {
        node_name: "village-410503001001".into(),
        destinations: vec![
            destination("pole-1", "410503001001", DownstreamKind::Loudspeaker, true),
            destination("pole-2", "410503001001", DownstreamKind::Loudspeaker, false),
        ],
        ..rules()
    }
}

fn frame(text: &str, targets: &[&str]) -> FrameAlert {
    FrameAlert {
        origin: "410503".parse().expect("code"),
        number: 7,
        sequence: 41,
        update: false,
        level: Level::Red,
        targets: targets.iter().map(|t| t.parse().expect("code")).collect(),
        text: text.into(),
        valid_from: during(),
        valid_until: during() + Duration::minutes(30),
        bearer: "beidou".into(),
    }
}

#[test]
fn an_alert_frame_for_a_street_plays_on_every_loudspeaker_of_its_villages_without_confirmation() {
    let admitted = village_rules()
        .admit_frame(
            &frame("【红色预警】山洪预警。沿河村民立即转移。", &["410503001"]),
            vec![],
            "chime",
            during(),
        )
        .expect("admitted");
    assert_eq!(admitted.targets, ["pole-1", "pole-2"]);
    assert_eq!(admitted.purpose, Purpose::Actual);
    assert!(!admitted.needs_confirmation, "confirmed where it was sent");
    assert_eq!(admitted.sender, "cascade:410503");
    assert_eq!(admitted.identifier, "7");
    assert_eq!(admitted.language, "zh-CN");
    assert_eq!(admitted.text, "【红色预警】山洪预警。沿河村民立即转移。");
    assert_eq!(admitted.expires, during() + Duration::minutes(30));
    assert_eq!(
        admitted.cascade,
        Some(CascadeSource {
            origin: "410503".parse().expect("code"),
            number: 7,
            bearer: "beidou".into(),
        })
    );
}

#[test]
fn an_exercise_frame_skips_the_loudspeakers_that_take_no_exercises() {
    let admitted = village_rules()
        .admit_frame(
            &frame("演练：【红色预警】山洪预警。", &["410503001001"]),
            vec![],
            "chime",
            during(),
        )
        .expect("admitted");
    assert_eq!(admitted.purpose, Purpose::Exercise);
    assert_eq!(admitted.targets, ["pole-1"]);
    assert_eq!(admitted.skipped[0].name, "pole-2");
}

#[test]
fn an_expired_frame_or_one_for_another_village_is_refused() {
    let rules = village_rules();
    let late = during() + Duration::hours(1);
    assert!(matches!(
        rules.admit_frame(&frame("山洪预警。", &["410503001"]), vec![], "chime", late),
        Err(Refusal::Expired(_))
    ));
    assert!(matches!(
        rules.admit_frame(
            &frame("山洪预警。", &["410503001002"]),
            vec![],
            "chime",
            during()
        ),
        Err(Refusal::NoTarget { .. })
    ));
}

#[test]
fn an_update_frame_is_its_own_record_and_replaces_the_alert_it_updates() {
    let update = FrameAlert {
        update: true,
        ..frame("[RED] Flood warning. Leave now.", &["410503001001"])
    };
    let admitted = village_rules()
        .admit_frame(&update, vec![3], "chime", during())
        .expect("admitted");
    assert_eq!(admitted.identifier, "7.41");
    assert_eq!(admitted.msg_type, "Update");
    assert_eq!(admitted.replaces, [3]);
    assert_eq!(admitted.language, "en", "English text on a Chinese node");
}

#[test]
fn an_alert_frame_stamped_by_a_clock_a_little_ahead_plays_now() {
    let ahead = FrameAlert {
        valid_from: during() + Duration::seconds(20),
        ..frame("山洪预警。", &["410503001001"])
    };
    let admitted = village_rules()
        .admit_frame(&ahead, vec![], "chime", during())
        .expect("admitted");
    assert_eq!(
        admitted.effective,
        during(),
        "not held for the origin's time"
    );
}
