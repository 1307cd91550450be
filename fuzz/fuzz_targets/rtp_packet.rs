//! One datagram from the RTP port, as a receiver sees it.
//!
//! Whatever the bytes, [`RtpHeader::parse`] returns without panicking; when it accepts
//! them, the payload range it gives lies inside the datagram, after the fixed header and
//! before any padding, and the fields it reports are the ones on the wire. The payload
//! then goes to the Opus and G.711 duration readers as the forwarder would hand it on.
#![no_main]

use drivers::rtp::packet::{FIXED_HEADER_LEN, RtpHeader};
use drivers::rtp::{g711, opus};
use libfuzzer_sys::fuzz_target;

/// RFC 3550 §5.1: the padding bit is the third bit of the first byte.
const PADDING_BIT: u8 = 0x20;

fuzz_target!(|datagram: &[u8]| {
    let Ok(header) = RtpHeader::parse(datagram) else {
        return;
    };

    let range = header.payload_range();
    assert!(
        range.start >= FIXED_HEADER_LEN,
        "payload {range:?} starts inside the header"
    );
    assert!(
        range.end <= datagram.len(),
        "payload {range:?} runs past {}",
        datagram.len()
    );
    let payload = header.payload(datagram);
    assert_eq!(payload.len(), header.payload_len);
    assert_eq!(payload.as_ptr(), datagram[range.start..].as_ptr());

    // The fixed header was read from where RFC 3550 §5.1 puts it.
    assert_eq!(header.marker, datagram[1] & 0x80 != 0);
    assert_eq!(header.payload_type, datagram[1] & 0x7f);
    assert_eq!(
        header.sequence,
        u16::from_be_bytes([datagram[2], datagram[3]])
    );
    assert_eq!(
        header.ssrc,
        u32::from_be_bytes([datagram[8], datagram[9], datagram[10], datagram[11]])
    );

    // Padding, when flagged, is counted by the last byte and is all that follows the
    // payload; without it the payload runs to the end.
    let padding = if datagram[0] & PADDING_BIT != 0 {
        datagram.last().map_or(0, |count| usize::from(*count))
    } else {
        0
    };
    assert_eq!(
        range.end + padding,
        datagram.len(),
        "padding {padding} misplaced"
    );

    if let Ok(samples) = opus::packet_samples(payload) {
        // 2.5 ms to 120 ms, in whole 2.5 ms frames (RFC 6716 §3.1, §3.2.5).
        assert!((120..=5760).contains(&samples), "{samples} samples");
        assert_eq!(samples % 120, 0);
    }
    assert_eq!(g711::packet_samples(payload) as usize, payload.len());
});
