use super::*;

macro_rules! fixture {
    ($name:literal) => {
        include_bytes!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/cap/",
            $name
        ))
        .as_slice()
    };
}

fn faults(bytes: &[u8]) -> Vec<Fault> {
    match parse(bytes) {
        Ok(alert) => panic!("expected faults, got a valid alert {}", alert.identifier),
        Err(e) => e.faults(),
    }
}

#[test]
fn every_real_alert_the_readme_calls_valid_parses() {
    for (name, bytes) in [
        ("weather.cap", fixture!("weather.cap")),
        ("australia.cap", fixture!("australia.cap")),
        ("canada.cap", fixture!("canada.cap")),
        ("earthquake.cap", fixture!("earthquake.cap")),
        (
            "amber_alert_example.xml",
            fixture!("amber_alert_example.xml"),
        ),
        (
            "beiguan-rainstorm-red.xml",
            fixture!("beiguan-rainstorm-red.xml"),
        ),
    ] {
        if let Err(e) = parse(bytes) {
            panic!("{name}: {e}: {:#?}", e.faults());
        }
    }
}

#[test]
fn the_chinese_exercise_alert_reads_fully() {
    let alert = parse(fixture!("beiguan-rainstorm-red.xml")).expect("valid");
    assert_eq!(alert.version, CapVersion::V1_2);
    assert_eq!(alert.status, Status::Exercise);
    assert_eq!(alert.msg_type, MsgType::Alert);
    assert_eq!(format_cap_time(&alert.sent), "2026-07-21T06:30:00+08:00");
    assert_eq!(alert.infos.len(), 2);

    let zh = alert.info_for("zh-CN").expect("info");
    assert_eq!(zh.severity, Severity::Extreme);
    assert_eq!(
        zh.headline.as_deref(),
        Some("安阳市气象台发布暴雨红色预警信号")
    );
    let codes: Vec<&str> = zh.areas[0]
        .geocodes
        .iter()
        .map(|g| g.value.as_str())
        .collect();
    assert_eq!(codes, ["410503001", "410503005"]);
    assert_eq!(zh.areas[0].geocodes[0].value_name, "GB/T 2260");

    assert_eq!(
        alert.info_for("en").map(|i| i.language.as_str()),
        Some("en-US")
    );
    assert_eq!(
        alert.info_for("fr").map(|i| i.language.as_str()),
        Some("zh-CN")
    );
}

#[test]
fn a_cap_prefixed_document_and_a_cap_1_1_document_both_parse() {
    let australia = parse(fixture!("australia.cap")).expect("valid");
    assert_eq!(australia.version, CapVersion::V1_2);
    assert_eq!(australia.infos[0].resources.len(), 1);
    let weather = parse(fixture!("weather.cap")).expect("valid");
    assert_eq!(weather.version, CapVersion::V1_1);
    assert_eq!(weather.infos[0].language, "en-US", "the default language");
}

#[test]
fn a_missing_scope_is_named() {
    let faults = faults(fixture!("invalid.cap"));
    assert_eq!(faults.len(), 1, "{faults:#?}");
    assert_eq!(faults[0].path, "alert/scope");
    assert!(faults[0].message.contains("required"));
}

#[test]
fn empty_required_values_are_each_a_fault() {
    let faults = faults(fixture!("noaa_errors.cap"));
    let paths: Vec<&str> = faults.iter().map(|f| f.path.as_str()).collect();
    for expected in [
        "alert/references",
        "alert/info[1]/urgency",
        "alert/info[1]/severity",
        "alert/info[1]/certainty",
    ] {
        assert!(paths.contains(&expected), "{expected} not in {paths:?}");
    }
    assert!(faults.iter().all(|f| f.line > 0));
}

#[test]
fn a_doctype_is_refused_before_anything_is_resolved() {
    assert_eq!(parse(fixture!("xee.cap")), Err(CapError::Doctype));
    let bomb =
        br#"<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;">]>
<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"><identifier>&lol2;</identifier></alert>"#;
    assert_eq!(parse(bomb), Err(CapError::Doctype));
}

#[test]
fn an_undeclared_entity_is_malformed_xml() {
    let doc = br#"<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"><identifier>&x;</identifier></alert>"#;
    assert!(matches!(parse(doc), Err(CapError::Xml(_))));
}

const MINIMAL: &str = r#"<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">
<identifier>ID-1</identifier><sender>a@b</sender><sent>2026-07-21T06:30:00+08:00</sent>
<status>Actual</status><msgType>Alert</msgType><scope>Public</scope>
<info><category>Met</category><event>Storm</event><urgency>Immediate</urgency>
<severity>Severe</severity><certainty>Observed</certainty>
<area><areaDesc>A</areaDesc>AREA</area></info></alert>"#;

fn minimal_with(replace: &str, with: &str) -> Vec<u8> {
    assert!(MINIMAL.contains(replace), "{replace}");
    MINIMAL.replacen(replace, with, 1).into_bytes()
}

#[test]
fn the_minimal_alert_is_valid() {
    let alert = parse(&minimal_with("AREA", "")).expect("valid");
    assert_eq!(alert.infos[0].severity, Severity::Severe);
}

#[test]
fn times_need_a_numeric_offset() {
    for bad in [
        "2026-07-21T06:30:00",
        "2026-07-21T06:30:00Z",
        "2026-07-21 06:30:00+08:00",
        "yesterday",
    ] {
        let faults = faults(&minimal_with("2026-07-21T06:30:00+08:00", bad));
        assert_eq!(faults[0].path, "alert/sent", "{bad}");
    }
}

#[test]
fn an_unknown_level_is_a_fault_listing_the_allowed_values() {
    let faults = faults(&minimal_with("Severe", "Orange"));
    assert_eq!(faults[0].path, "alert/info[1]/severity");
    assert!(
        faults[0]
            .message
            .contains("Extreme, Severe, Moderate, Minor, Unknown")
    );
}

#[test]
fn every_fault_is_reported_in_one_pass() {
    let doc = minimal_with("<scope>Public</scope>", "<scope>Private</scope>")
        .into_iter()
        .collect::<Vec<u8>>();
    let doc = String::from_utf8(doc)
        .expect("utf8")
        .replace("<event>Storm</event>", "")
        .replace("AREA", "<circle>95,10 5</circle>");
    let faults = faults(doc.as_bytes());
    let paths: Vec<&str> = faults.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "alert/addresses",
            "alert/info[1]/event",
            "alert/info[1]/area[1]/circle[1]"
        ]
    );
}

#[test]
fn polygons_must_close_and_circles_need_a_radius() {
    let open = minimal_with("AREA", "<polygon>1,1 1,2 2,2 2,1</polygon>");
    assert!(faults(&open)[0].message.contains("first point"));
    let closed = minimal_with(
        "AREA",
        "<polygon>1,1 1,2 2,2 1,1</polygon><circle>32.9,-115.5 0</circle>",
    );
    assert!(parse(&closed).is_ok());
    let no_radius = minimal_with("AREA", "<circle>32.9,-115.5</circle>");
    assert_eq!(
        faults(&no_radius)[0].path,
        "alert/info[1]/area[1]/circle[1]"
    );
}

#[test]
fn identifiers_with_spaces_or_commas_are_faults() {
    let faults = faults(&minimal_with("ID-1", "ID 1,2"));
    assert_eq!(faults[0].path, "alert/identifier");
}

#[test]
fn references_are_sender_identifier_sent_triples() {
    let doc = minimal_with(
        "<scope>Public</scope>",
        "<scope>Public</scope><references>a@b,ID-0,2026-07-21T06:00:00+08:00 x,y</references>",
    );
    let faults = faults(&doc);
    assert_eq!(faults.len(), 1);
    assert!(faults[0].message.contains("`x,y`"));
}

#[test]
fn unknown_cap_elements_are_faults_and_foreign_ones_are_ignored() {
    let doc = minimal_with("AREA", "<radius>5</radius>");
    assert_eq!(faults(&doc)[0].path, "alert/info[1]/area[1]/radius");
    let signed = minimal_with(
        "</info>",
        r#"</info><Signature xmlns="http://www.w3.org/2000/09/xmldsig#">x</Signature>"#,
    );
    assert!(parse(&signed).is_ok());
}

#[test]
fn bad_bytes_get_their_own_errors() {
    assert_eq!(
        parse(b"<alert>\xff</alert>"),
        Err(CapError::NotUtf8 { offset: 7 })
    );
    let latin1 = format!("<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?>{MINIMAL}");
    assert!(matches!(parse(latin1.as_bytes()), Err(CapError::Xml(m)) if m.contains("ISO-8859-1")));
    assert!(matches!(parse(b"<alert"), Err(CapError::Xml(_))));
    assert!(matches!(
        parse(b"<feed xmlns='http://www.w3.org/2005/Atom'/>"),
        Err(CapError::Invalid(_))
    ));
    let huge = vec![b' '; MAX_DOCUMENT_BYTES + 1];
    assert!(matches!(parse(&huge), Err(CapError::TooLarge { .. })));
}

#[test]
fn cap_1_2_words_are_refused_in_1_1_and_the_reverse() {
    let v11 = MINIMAL.replace("cap:1.2", "cap:1.1");
    let avoid = v11.replace("<urgency>", "<responseType>Avoid</responseType><urgency>");
    assert!(faults(avoid.as_bytes())[0].message.contains("Avoid"));
    let very_likely = minimal_with("<certainty>Observed", "<certainty>Very Likely");
    assert!(faults(&very_likely)[0].path.ends_with("certainty"));
    let v11_very_likely = v11.replace("<certainty>Observed", "<certainty>Very Likely");
    assert!(parse(v11_very_likely.as_bytes()).is_ok());
}

#[test]
fn an_external_entity_never_opens_a_connection() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("listener");
    let port = listener.local_addr().expect("address").port();
    let doc = format!(
        r#"<?xml version="1.0"?><!DOCTYPE alert [<!ENTITY xxe SYSTEM "http://127.0.0.1:{port}/x">]>
<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"><identifier>&xxe;</identifier></alert>"#
    );
    assert_eq!(parse(doc.as_bytes()), Err(CapError::Doctype));
    listener.set_nonblocking(true).expect("non-blocking");
    let accepted = listener.accept();
    assert!(
        matches!(&accepted, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "the parser connected: {accepted:?}"
    );
}
