//! A CAP document with arbitrary bytes.
//!
//! Whatever the bytes, [`cap::parse`] returns without panicking; a refused document
//! names at least one fault, each with a path under `alert`; an accepted one has the
//! standard's required values and refers to no line beyond the document.
#![no_main]

use gateway::alert::cap;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match cap::parse(data) {
        Err(e) => {
            let faults = e.faults();
            assert!(!faults.is_empty());
            let lines = data.iter().filter(|b| **b == b'\n').count() as u32 + 1;
            for fault in faults {
                assert!(!fault.message.is_empty());
                assert!(fault.line <= lines, "line {} of {lines}", fault.line);
            }
        }
        Ok(alert) => {
            assert!(!alert.identifier.is_empty() && !alert.identifier.contains(' '));
            assert!(!alert.sender.is_empty() && !alert.sender.contains(','));
            for info in &alert.infos {
                assert!(!info.event.is_empty());
                assert!(!info.categories.is_empty());
                for area in &info.areas {
                    assert!(!area.area_desc.is_empty());
                }
            }
            let again = cap::format_cap_time(&alert.sent);
            assert_eq!(cap::parse_cap_time(&again), Ok(alert.sent));
        }
    }
});
