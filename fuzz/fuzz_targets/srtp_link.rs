//! SRTP and SRTCP between two ends of a voice link, from any bytes.
//!
//! The first byte chooses RTP or RTCP, the next two a byte of the protected packet to
//! alter and how (0: none). The rest is the packet one end protects and the other
//! unprotects: it comes back exactly, and the same packet again is a replay; any
//! altered byte makes it refused. The whole input is also handed to the receiving end
//! as if it came from the network. Nothing panics.
#![no_main]

use gateway::cascade::keys::SrtpKey;
use gateway::voice::srtp::{SrtpLink, SrtpRefusal};
use libfuzzer_sys::fuzz_target;

const KEY: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d";

fuzz_target!(|data: &[u8]| {
    let key = SrtpKey::from_hex(KEY).expect("the fuzz key");
    let mut sender = SrtpLink::new(&key).expect("link");
    let mut receiver = SrtpLink::new(&key).expect("link");
    let rtcp = data.first().is_some_and(|b| b & 1 == 1);

    let _ = receiver.unprotect_rtp(data);
    let _ = receiver.unprotect_rtcp(data);

    let [_, at, mask, packet @ ..] = data else {
        return;
    };
    let mut receiver = SrtpLink::new(&key).expect("link");
    let sealed = if rtcp {
        sender.protect_rtcp(packet)
    } else {
        sender.protect_rtp(packet)
    };
    let Ok(mut sealed) = sealed else {
        return;
    };
    let open = |r: &mut SrtpLink, bytes: &[u8]| {
        if rtcp {
            r.unprotect_rtcp(bytes)
        } else {
            r.unprotect_rtp(bytes)
        }
    };
    if *mask == 0 {
        assert_eq!(open(&mut receiver, &sealed).as_deref(), Ok(packet));
        assert_eq!(open(&mut receiver, &sealed), Err(SrtpRefusal::Replayed));
    } else {
        let index = usize::from(*at) % sealed.len();
        sealed[index] ^= mask;
        assert!(
            open(&mut receiver, &sealed).is_err(),
            "byte {index} altered by {mask:#04x} and still taken"
        );
    }
});
