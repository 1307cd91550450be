//! The `emcomm` command line and the example configurations, as an operator uses them.

use std::path::PathBuf;
use std::process::Command;

use gateway::config::{Config, Tier, VoiceSource};

fn emcomm() -> Command {
    Command::new(env!("CARGO_BIN_EXE_emcomm"))
}

fn example(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("config")
        .join(name)
}

#[test]
fn check_accepts_a_valid_config_with_exit_code_0() {
    let out = emcomm()
        .args(["check", "--config"])
        .arg(example("street.toml"))
        .output()
        .expect("runs");
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("valid street node"));
}

#[test]
fn check_names_file_line_and_key_of_a_fault_with_exit_code_1() {
    let dir = std::env::temp_dir().join(format!("emcomm-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch");
    let path = dir.join("bad.toml");
    let text = std::fs::read_to_string(example("street.toml")).expect("example");
    std::fs::write(&path, text.replace("codec = \"pcmu\"", "codec = \"g729\"")).expect("write");
    let out = emcomm()
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = text
        .lines()
        .position(|l| l.contains("codec = \"pcmu\""))
        .expect("the example has a pcmu line")
        + 1;
    assert!(
        stderr.contains(&format!(
            "bad.toml:{line}: downstream[2].codec: unknown codec \"g729\""
        )),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn run_refuses_an_invalid_config_before_starting_with_exit_code_1() {
    let out = emcomm()
        .args(["run", "--config", "/nonexistent/node.toml"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read"));
}

#[test]
fn every_example_config_is_valid_for_its_tier() {
    for (file, tier) in [
        ("district.toml", Tier::District),
        ("district-alerts.toml", Tier::District),
        ("street.toml", Tier::Street),
        ("village.toml", Tier::Village),
        ("street-radio.toml", Tier::Street),
        ("village-satellite.toml", Tier::Village),
        ("street-cascade.toml", Tier::Street),
    ] {
        let config = Config::load(&example(file)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(config.tier, tier, "{file}");
    }
}

#[test]
fn the_district_example_names_speech_files_that_exist() {
    let config = Config::load(&example("district.toml")).expect("valid");
    let Some(VoiceSource::Files { files, .. }) = config.source else {
        panic!("the example district speaks files")
    };
    for file in files {
        assert!(file.exists(), "{} is missing", file.display());
    }
}

#[test]
fn the_alert_district_example_loads_its_operators_and_confirms_orange_and_red() {
    let config = Config::load(&example("district-alerts.toml")).expect("valid");
    let api = config.api.expect("an [api] table");
    let operators = gateway::api::auth::Operators::load(&api.operators).expect("operators");
    assert!(
        operators
            .authenticate("example-supervisor-token-change-me")
            .is_some()
    );
    let alerts = config.alerts.expect("an [alerts] table");
    use gateway::alert::model::Level;
    assert_eq!(alerts.confirm_levels, [Level::Orange, Level::Red]);
    assert_eq!(
        api.listen.ip().to_string(),
        "127.0.0.1",
        "the API is local by default"
    );
}
