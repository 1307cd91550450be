//! A cascade frame from any bytes, then the acceptance check on the same bytes.
//!
//! Decoding never panics. A frame that decodes encodes back to exactly the bytes it came
//! from (the parser takes only the canonical encoding, which authentication relies on),
//! and those decode to the same frame. The acceptance check, with a known origin and a
//! link key, never panics and never accepts a frame whose tag it did not verify; the same
//! bytes again are a duplicate (but for acknowledgements and heartbeats, which stand
//! outside the replay window).
#![no_main]

use chrono::{DateTime, Utc};
use gateway::cascade::accept::{AcceptConfig, Accepted, Acceptor, Keyring};
use gateway::cascade::frame::{Kind, decode};
use gateway::cascade::keys::{LinkKey, NodePublicKey};
use gateway::cascade::replay::ReplayState;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let decoded = decode(data);
    if let Ok(frame) = &decoded {
        let bytes = frame.encode().expect("a decoded frame encodes");
        assert_eq!(bytes, data, "not the canonical encoding");
        assert_eq!(decode(&bytes).as_ref(), Ok(frame));
    }

    let mut keys = Keyring::default();
    let public =
        NodePublicKey::from_hex(emcomm_fuzz::cascade::SEED_PUBLIC_KEY).expect("the seed key");
    keys.add_origin("410503".parse().expect("area"), public);
    keys.add_link(
        emcomm_fuzz::cascade::LINK,
        LinkKey::from_bytes(emcomm_fuzz::cascade::LINK_KEY),
    );
    let mut acceptor = Acceptor::new(keys, AcceptConfig::default(), ReplayState::default());
    let now =
        DateTime::<Utc>::from_timestamp(i64::from(emcomm_fuzz::cascade::NOW), 0).expect("time");
    if let Ok(Accepted::New(frame)) = acceptor.accept(data, emcomm_fuzz::cascade::LINK, now) {
        assert_eq!(decoded.as_ref(), Ok(&frame));
        // Acknowledgements and heartbeats stand outside the replay window.
        if matches!(frame.kind(), Kind::Acknowledgement | Kind::Heartbeat) {
            return;
        }
        assert_eq!(
            acceptor.accept(data, emcomm_fuzz::cascade::LINK, now),
            Ok(Accepted::Duplicate {
                origin: frame.header.origin.clone(),
                sequence: frame.header.sequence,
                kind: frame.kind(),
            })
        );
    }
});
