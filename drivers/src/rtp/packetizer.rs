//! Turning 20 ms encoded frames into an RTP stream.
//!
//! A [`Packetizer`] owns one outgoing stream: its SSRC, its sequence number and
//! timestamp (both start at random values, RFC 3550 §5.1), and the packet and octet
//! counts a sender report needs. It maps instants to RTP time from the instant of the
//! stream's first packet, so a sender report's timestamp matches its packets.

use std::time::Instant;

use super::ntp::NtpAnchor;
use super::packet::{OutgoingHeader, build_packet};
use super::payload::PayloadFormat;
use super::rtcp::SenderInfo;

/// One outgoing RTP stream.
#[derive(Debug, Clone)]
pub struct Packetizer {
    format: PayloadFormat,
    ssrc: u32,
    next_sequence: u16,
    next_timestamp: u32,
    start: Option<(Instant, u32)>,
    talkspurt_pending: bool,
    packets: u32,
    octets: u32,
}

impl Packetizer {
    /// A stream with random SSRC, sequence and timestamp.
    pub fn new(format: PayloadFormat) -> Self {
        Packetizer::with_origin(format, rand::random(), rand::random(), rand::random())
    }

    /// A stream with given initial values (tests, reproducible captures).
    pub fn with_origin(format: PayloadFormat, ssrc: u32, sequence: u16, timestamp: u32) -> Self {
        Packetizer {
            format,
            ssrc,
            next_sequence: sequence,
            next_timestamp: timestamp,
            start: None,
            talkspurt_pending: true,
            packets: 0,
            octets: 0,
        }
    }

    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    pub fn format(&self) -> PayloadFormat {
        self.format
    }

    /// Packets sent so far.
    pub fn packet_count(&self) -> u32 {
        self.packets
    }

    /// Packetises one 20 ms frame whose first sample was captured at `captured`. The
    /// stream's clock runs from the first frame's capture instant, so that a sender
    /// report maps the media to the time it was spoken, not the time it was sent. The
    /// first packet, and the first after [`Packetizer::skip_frames`], carries the
    /// marker bit.
    pub fn packetize(&mut self, payload: &[u8], captured: Instant) -> Vec<u8> {
        if self.start.is_none() {
            self.start = Some((captured, self.next_timestamp));
        }
        let header = OutgoingHeader {
            marker: std::mem::take(&mut self.talkspurt_pending),
            payload_type: self.format.payload_type(),
            sequence: self.next_sequence,
            timestamp: self.next_timestamp,
            ssrc: self.ssrc,
        };
        self.next_sequence = self.next_sequence.wrapping_add(1);
        self.next_timestamp = self
            .next_timestamp
            .wrapping_add(self.format.timestamp_step());
        self.packets = self.packets.wrapping_add(1);
        self.octets = self.octets.wrapping_add(payload.len() as u32);
        build_packet(&header, payload)
    }

    /// Leaves `frames` 20 ms frames unsent (silence); the next packet starts a new
    /// talkspurt.
    pub fn skip_frames(&mut self, frames: u32) {
        self.next_timestamp = self
            .next_timestamp
            .wrapping_add(frames.wrapping_mul(self.format.timestamp_step()));
        self.talkspurt_pending = true;
    }

    /// The RTP timestamp of instant `at` on this stream's clock.
    pub fn rtp_time(&self, at: Instant) -> Option<u32> {
        let (start, ts) = self.start?;
        let elapsed = at.saturating_duration_since(start).as_secs_f64();
        Some(ts.wrapping_add((elapsed * f64::from(self.format.clock_rate())) as u32))
    }

    /// The sender information of an SR sent at `now`, once the stream has started.
    pub fn sender_info(&self, now: Instant, anchor: &NtpAnchor) -> Option<SenderInfo> {
        Some(SenderInfo {
            ssrc: self.ssrc,
            ntp: anchor.ntp(now),
            rtp_timestamp: self.rtp_time(now)?,
            packet_count: self.packets,
            octet_count: self.octets,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::rtp::packet::RtpHeader;

    #[test]
    fn consecutive_opus_packets_step_sequence_by_one_and_timestamp_by_960_across_wraps() {
        let t0 = Instant::now();
        let mut stream = Packetizer::with_origin(PayloadFormat::OPUS, 9, 65535, u32::MAX - 959);
        let a = RtpHeader::parse(&stream.packetize(b"a", t0)).expect("rtp");
        let b = RtpHeader::parse(&stream.packetize(b"b", t0)).expect("rtp");
        assert!(a.marker && !b.marker);
        assert_eq!((a.sequence, b.sequence), (65535, 0));
        assert_eq!((a.timestamp, b.timestamp), (u32::MAX - 959, 0));
        assert_eq!(a.payload_type, 111);
    }

    #[test]
    fn a_skip_starts_a_new_talkspurt_later_in_time() {
        let t0 = Instant::now();
        let mut stream = Packetizer::with_origin(PayloadFormat::Pcmu, 9, 0, 0);
        stream.packetize(&[0xff; 160], t0);
        stream.skip_frames(10);
        let next = RtpHeader::parse(&stream.packetize(&[0xff; 160], t0)).expect("rtp");
        assert!(next.marker);
        assert_eq!(next.timestamp, 160 * 11);
        assert_eq!(next.payload_type, 0);
    }

    #[test]
    fn the_sender_report_maps_wall_time_onto_the_stream_clock() {
        let t0 = Instant::now();
        let anchor = NtpAnchor::new(t0, 1000 << 32);
        let mut stream = Packetizer::with_origin(PayloadFormat::OPUS, 9, 0, 5000);
        assert!(stream.sender_info(t0, &anchor).is_none());
        stream.packetize(b"x", t0);
        let info = stream
            .sender_info(t0 + Duration::from_secs(2), &anchor)
            .expect("started");
        assert_eq!(info.rtp_timestamp, 5000 + 96_000);
        assert_eq!(info.ntp, 1002 << 32);
        assert_eq!((info.packet_count, info.octet_count), (1, 1));
    }
}
