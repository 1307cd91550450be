//! The example configurations in `config/` stay valid.

use std::path::PathBuf;

use gateway::config::{Config, Tier, VoiceSource};

fn example(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("config")
        .join(name)
}

#[test]
fn every_example_config_is_valid_for_its_tier() {
    for (file, tier) in [
        ("district.toml", Tier::District),
        ("street.toml", Tier::Street),
        ("village.toml", Tier::Village),
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
