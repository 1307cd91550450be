//! `emcomm alert ...` as an operator and a script use it.

use std::path::PathBuf;
use std::process::{Command, Output};

fn emcomm(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_emcomm"))
        .args(args)
        .output()
        .expect("emcomm runs")
}

fn fixture(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/cap")
        .join(name)
        .display()
        .to_string()
}

#[test]
fn alert_check_gives_every_fixture_the_outcome_its_readme_states() {
    for valid in [
        "weather.cap",
        "australia.cap",
        "canada.cap",
        "earthquake.cap",
        "amber_alert_example.xml",
        "beiguan-rainstorm-red.xml",
    ] {
        let out = emcomm(&["alert", "check", &fixture(valid)]);
        assert_eq!(out.status.code(), Some(0), "{valid}: {:?}", out);
        assert!(String::from_utf8_lossy(&out.stdout).contains(": valid CAP 1."));
    }
    for (invalid, says) in [
        ("invalid.cap", "alert/scope: required but missing"),
        ("noaa_errors.cap", "alert/info[1]/severity: empty"),
        ("xee.cap", "DOCTYPE"),
    ] {
        let out = emcomm(&["alert", "check", &fixture(invalid)]);
        assert_eq!(out.status.code(), Some(1), "{invalid}");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.contains(says), "{invalid}: {stdout}");
    }
}

#[test]
fn alert_check_json_lists_each_fault_with_path_and_line() {
    let out = emcomm(&["alert", "check", "--json", &fixture("noaa_errors.cap")]);
    assert_eq!(out.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(report["valid"], false);
    let paths: Vec<&str> = report["faults"]
        .as_array()
        .expect("faults")
        .iter()
        .map(|f| f["path"].as_str().expect("path"))
        .collect();
    assert!(paths.contains(&"alert/references"), "{paths:?}");
    assert!(paths.contains(&"alert/info[1]/urgency"));
    assert!(paths.contains(&"alert/info[1]/certainty"));
}

#[test]
fn alert_check_of_a_missing_file_exits_2() {
    let out = emcomm(&["alert", "check", "/nonexistent/alert.xml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read"));
}

#[test]
fn the_external_entity_file_is_refused_without_reading_what_it_names() {
    let text = std::fs::read_to_string(fixture("xee.cap")).expect("fixture");
    assert!(
        text.contains("<!DOCTYPE"),
        "the fixture still carries its attack"
    );
    let out = emcomm(&["alert", "check", "--json", &fixture("xee.cap")]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        !stdout.contains("root:"),
        "no file content leaked: {stdout}"
    );
}
