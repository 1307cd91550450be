//! A capture file handed to `emcomm-bench replay`: any bytes.
//!
//! [`read_rtp_streams_from`] returns streams or an error, never panics; every packet of a
//! returned stream parses as RTP of that stream's SSRC, and replaying a stream through
//! the jitter buffer returns.
#![no_main]

use std::io::Cursor;
use std::path::Path;

use drivers::rtp::packet::RtpHeader;
use drivers::rtp::payload::PayloadFormat;
use hw_test::replay::{read_rtp_streams_from, replay};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(streams) = read_rtp_streams_from(Cursor::new(data), Path::new("fuzz.pcap")) else {
        return;
    };
    for stream in &streams {
        for (_, datagram) in &stream.packets {
            let header = RtpHeader::parse(datagram).expect("only RTP is kept");
            assert_eq!(header.ssrc, stream.ssrc);
        }
        // Replay is bounded by the capture's own length; keep the runs short.
        if stream.packets.len() <= 200 {
            let format = match stream.payload_type {
                0 => PayloadFormat::Pcmu,
                8 => PayloadFormat::Pcma,
                pt => PayloadFormat::Opus { payload_type: pt },
            };
            let (report, _) = replay(stream, format);
            assert_eq!(report.packets, stream.packets.len());
        }
    }
});
