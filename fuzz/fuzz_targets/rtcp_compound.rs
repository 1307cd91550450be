//! One datagram from the RTCP port, as a receiver sees it.
//!
//! Whatever the bytes, [`parse_compound`] returns without panicking. When it accepts
//! them, the datagram starts like RTCP (so a socket shared with RTP would have sent it
//! here), and the report it leads with survives a round trip: built again with
//! [`build_compound`] and parsed back, it gives the same events.
#![no_main]

use drivers::rtp::rtcp::{
    CompoundSpec, RtcpEvent, build_compound, looks_like_rtcp, parse_compound,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|datagram: &[u8]| {
    let Ok(events) = parse_compound(datagram) else {
        return;
    };
    assert!(
        looks_like_rtcp(datagram),
        "accepted a compound RTP would claim"
    );

    // The leading report: an SR with the blocks that follow it, or the blocks of an RR.
    let (ssrc, sender) = match events.first() {
        Some(RtcpEvent::SenderReport(info)) => (info.ssrc, Some(*info)),
        Some(RtcpEvent::ReceptionReport { reporter, .. }) => (*reporter, None),
        _ => return,
    };
    let blocks: Vec<_> = events
        .iter()
        .skip(usize::from(sender.is_some()))
        .map_while(|event| match event {
            RtcpEvent::ReceptionReport { reporter, block } if *reporter == ssrc => Some(*block),
            _ => None,
        })
        .collect();
    let spec = CompoundSpec {
        ssrc,
        sender,
        blocks: &blocks,
        cname: "fuzz",
        bye_reason: None,
        note: None,
    };
    let rebuilt = build_compound(&spec).expect("an accepted report can be built again");
    let reparsed = parse_compound(&rebuilt).expect("a built compound parses");
    // Consecutive reports from one source may hold more blocks than one report can
    // carry; build_compound keeps the first 31 (RFC 3550 §6.4).
    let report_events = usize::from(sender.is_some()) + blocks.len().min(31);
    assert_eq!(reparsed[..report_events], events[..report_events]);
    assert_eq!(
        reparsed.get(report_events),
        Some(&RtcpEvent::Cname {
            ssrc,
            cname: "fuzz".into()
        })
    );
});
