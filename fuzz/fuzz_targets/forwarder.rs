//! The forwarding core of a street node fed arbitrary datagrams on both ports.
//!
//! The fuzz input is a sequence of records (layout in `emcomm_fuzz::forwarder`): RTP
//! and RTCP datagrams from the allowed upstream or a stranger, with the fake clock
//! moved on and the timers polled after each. The node has two output groups, Opus
//! (switched) and PCMU (transcoded), so a valid Opus stream reaches the decoder and
//! the encoder; a valid PCMU stream reaches them the other way round.
//!
//! Nothing may panic, and everything the forwarder sends must be well-formed: RTP under
//! the group's payload type, RTCP that parses.
#![no_main]

use std::time::{Duration, Instant};

use drivers::rtp::packet::RtpHeader;
use drivers::rtp::payload::PayloadFormat;
use drivers::rtp::rtcp::parse_compound;
use emcomm_fuzz::Bytes;
use emcomm_fuzz::forwarder::{FEEDS, OPUS_PAYLOAD_TYPE, RTCP, RTP, SOURCES};
use gateway::voice::forward::{Forwarder, ForwarderConfig, GroupSpec, Transmit};
use libfuzzer_sys::fuzz_target;

const GROUPS: [PayloadFormat; 2] = [
    PayloadFormat::Opus {
        payload_type: OPUS_PAYLOAD_TYPE,
    },
    PayloadFormat::Pcmu,
];

/// What the forwarder sent, counted and checked as it goes.
#[derive(Debug, Default)]
struct Sent {
    rtp: u64,
    group_rtcp: u64,
    upstream_rtcp: u64,
}

impl Sent {
    fn take(&mut self, transmit: Transmit<'_>) {
        match transmit {
            Transmit::Rtp { group, datagram } => {
                let header = RtpHeader::parse(datagram).expect("forwarded RTP parses");
                let format = GROUPS.get(group).expect("a configured group");
                assert_eq!(header.payload_type, format.payload_type());
                self.rtp += 1;
            }
            Transmit::GroupRtcp { group, datagram } => {
                assert!(group < GROUPS.len());
                parse_compound(&datagram).expect("group RTCP parses");
                self.group_rtcp += 1;
            }
            Transmit::UpstreamRtcp { datagram, .. } => {
                parse_compound(&datagram).expect("upstream RTCP parses");
                self.upstream_rtcp += 1;
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let groups: Vec<GroupSpec> = GROUPS
        .iter()
        .map(|format| GroupSpec { format: *format })
        .collect();
    let mut forwarder = Forwarder::new(
        ForwarderConfig {
            cname: "street@410503001".into(),
            opus_payload_type: OPUS_PAYLOAD_TYPE,
            opus_bitrate: 32_000,
            allow: vec![SOURCES[0].ip()],
            input_timeout: Duration::from_secs(2),
            rtcp_interval: Duration::from_secs(1),
            grants_required: false,
        },
        &groups,
    );
    let mut now = Instant::now();
    let mut sent = Sent::default();
    let mut rtp_fed = 0;

    let mut records = Bytes::new(data);
    while !records.is_empty() {
        let kind = records.u8();
        let advance = Duration::from_millis(u64::from(records.u8()));
        let len = usize::from(records.u16());
        let datagram = records.take(len);
        let from = SOURCES[usize::from(kind / FEEDS) % SOURCES.len()];

        match kind % FEEDS {
            RTP => {
                forwarder.on_rtp(datagram, from, now, &mut |t| sent.take(t));
                rtp_fed += 1;
            }
            RTCP => forwarder.on_rtcp(datagram, from, now, &mut |t| sent.take(t)),
            _ => {}
        }

        now += advance;
        forwarder.poll(now, &mut |t| sent.take(t));
        if let Some(deadline) = forwarder.next_deadline() {
            assert!(deadline > now, "a timer is left due after poll");
        }
        let counters = forwarder.counters();
        assert_eq!(counters.received, rtp_fed);
        assert!(counters.forwarded <= counters.received);
    }

    forwarder.shutdown(&mut |t| sent.take(t));
    assert_eq!(forwarder.input_ssrc(), None);
});
