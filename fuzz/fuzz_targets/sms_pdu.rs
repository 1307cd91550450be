//! SMS-DELIVER and SMS-STATUS-REPORT PDUs as a modem shows them (hex), from any bytes,
//! and any text split for sending.
//!
//! The input is read as each kind of PDU twice: hex-encoded (any octets) and as it is
//! (any text a modem might print). Whatever it holds, reading returns without panicking. The input
//! as text, split into SMS-SUBMIT parts, gives at most 255 parts, each with at most 140
//! octets of user data.
#![no_main]

use drivers::satellite::sms::pdu::{SmsBody, read_deliver, read_status_report, submit};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let hex: String = data.iter().map(|b| format!("{b:02X}")).collect();
    let _ = read_deliver(&hex);
    let _ = read_status_report(&hex);
    let text = String::from_utf8_lossy(data);
    let _ = read_deliver(&text);
    let _ = read_status_report(&text);
    if let Ok(parts) = submit("+8613800138000", &SmsBody::Text(text.into_owned()), 7) {
        assert!(parts.len() <= 255);
        for (octets, pdu) in parts {
            assert_eq!(pdu.len(), 2 + octets * 2);
            assert!(octets <= 140 + 15, "user data and its header fields");
        }
    }
});
