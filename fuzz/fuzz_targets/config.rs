//! A node configuration file with arbitrary text.
//!
//! Whatever the text, [`Config::parse`] returns without panicking; a fault it reports
//! points at a line that exists in the file, and a configuration it accepts obeys the
//! rules the parser promises (a destination to relay to, ports that leave room for
//! RTCP on the next one up).
#![no_main]

use std::path::Path;

use gateway::config::{Config, Tier};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Config::parse(Path::new("fuzz.toml"), text) {
        Err(e) => {
            let lines = text.matches('\n').count() + 1;
            assert!((1..=lines).contains(&e.line), "line {} of {lines}", e.line);
            assert!(!e.to_string().is_empty());
        }
        Ok(config) => {
            assert!(!config.downstream.is_empty() || config.patching.is_some());
            assert!(matches!(config.area.len(), 6 | 9 | 12));
            assert!((96..=127).contains(&config.opus_payload_type));
            for downstream in &config.downstream {
                assert!(!matches!(downstream.address.port(), 0 | u16::MAX));
            }
            if config.source.is_some() {
                assert_eq!(config.tier, Tier::District);
            }
            if config.tier == Tier::District {
                assert!(config.source.is_some() || config.alerts.is_some());
            }
            assert!(config.alerts.is_none() || config.api.is_some());
            if config.tier != Tier::District {
                assert!(config.listen.is_some());
            }
        }
    }
});
