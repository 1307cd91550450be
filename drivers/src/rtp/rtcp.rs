//! RTCP reports and BYE (RFC 3550 §6), built and parsed with the `rtcp-types` crate.
//!
//! emcomm sends compound packets in the order RFC 3550 §6.1 requires: a report first
//! (SR when the node sent media since its last report, RR otherwise), then an SDES
//! with the CNAME, then BYE when a stream ends. Received compounds are reduced to
//! [`RtcpEvent`]s; anything malformed is an [`RtcpError`] and is dropped whole.

use rtcp_types::prelude::*;
use rtcp_types::{
    Bye, Compound, Packet, ReceiverReport, ReportBlock, ReportBlockBuilder, RtcpParseError, Sdes,
    SdesChunk, SdesItem, SenderReport,
};

use super::ntp::NtpTimestamp;
use super::stats::ReportBlockData;

/// Largest compound emcomm builds: an SR with 31 report blocks, SDES and BYE fit.
const MAX_COMPOUND_LEN: usize = 1200;

/// Why an RTCP datagram was dropped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RtcpError {
    #[error("malformed RTCP: {0}")]
    Malformed(String),
    #[error("RTCP compound does not start with SR or RR (RFC 3550 §6.1)")]
    NoLeadingReport,
}

impl From<RtcpParseError> for RtcpError {
    fn from(e: RtcpParseError) -> Self {
        RtcpError::Malformed(e.to_string())
    }
}

/// What a sender says about its own stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SenderInfo {
    pub ssrc: u32,
    /// Wall-clock time of the report.
    pub ntp: NtpTimestamp,
    /// The same instant in the stream's RTP timestamp units.
    pub rtp_timestamp: u32,
    pub packet_count: u32,
    pub octet_count: u32,
}

/// One element of a received compound packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RtcpEvent {
    /// A sender report: the clock mapping and counts of `info.ssrc`.
    SenderReport(SenderInfo),
    /// A reception report block from `reporter` about `block.ssrc`.
    ReceptionReport {
        reporter: u32,
        block: ReportBlockData,
    },
    /// The canonical name of a source.
    Cname { ssrc: u32, cname: String },
    /// A note about the source's current state (SDES NOTE).
    Note { ssrc: u32, note: String },
    /// The sources are leaving (RFC 3550 §6.6).
    Bye {
        ssrcs: Vec<u32>,
        reason: Option<String>,
    },
}

/// What to put in an outgoing compound.
#[derive(Debug, Clone, Default)]
pub struct CompoundSpec<'a> {
    /// The reporting source (the sender's SSRC, or the receiver's own SSRC).
    pub ssrc: u32,
    /// Present when the reporter sent media since its last report: makes an SR.
    pub sender: Option<SenderInfo>,
    pub blocks: &'a [ReportBlockData],
    pub cname: &'a str,
    /// Present when the source is leaving.
    pub bye_reason: Option<&'a str>,
    /// An SDES NOTE item (RFC 3550 §6.5.7: the current state of the source); emcomm
    /// names there the alert a stream carries, `alert=ID`.
    pub note: Option<&'a str>,
}

fn block_builder(block: &ReportBlockData) -> ReportBlockBuilder {
    ReportBlock::builder(block.ssrc)
        .fraction_lost(block.fraction_lost)
        .cumulative_lost(block.cumulative_lost)
        .extended_sequence_number(block.extended_highest_sequence)
        .interarrival_jitter(block.jitter)
        .last_sender_report_timestamp(block.last_sr)
        .delay_since_last_sender_report_timestamp(block.delay_since_last_sr)
}

/// Builds a compound RTCP packet.
pub fn build_compound(spec: &CompoundSpec<'_>) -> Result<Vec<u8>, RtcpError> {
    let mut compound = Compound::builder();
    // RFC 3550 §6.4: at most 31 report blocks in one SR or RR.
    let blocks = spec.blocks.iter().take(31);
    match &spec.sender {
        Some(info) => {
            let mut sr = SenderReport::builder(spec.ssrc)
                .ntp_timestamp(info.ntp)
                .rtp_timestamp(info.rtp_timestamp)
                .packet_count(info.packet_count)
                .octet_count(info.octet_count);
            for block in blocks {
                sr = sr.add_report_block(block_builder(block));
            }
            compound = compound.add_packet(sr);
        }
        None => {
            let mut rr = ReceiverReport::builder(spec.ssrc);
            for block in blocks {
                rr = rr.add_report_block(block_builder(block));
            }
            compound = compound.add_packet(rr);
        }
    }
    let mut chunk =
        SdesChunk::builder(spec.ssrc).add_item(SdesItem::builder(SdesItem::CNAME, spec.cname));
    if let Some(note) = spec.note {
        chunk = chunk.add_item(SdesItem::builder(SdesItem::NOTE, note));
    }
    compound = compound.add_packet(Sdes::builder().add_chunk(chunk));
    if let Some(reason) = spec.bye_reason {
        compound = compound.add_packet(Bye::builder().add_source(spec.ssrc).reason(reason));
    }
    let mut out = vec![0u8; MAX_COMPOUND_LEN];
    let len = compound
        .write_into(&mut out)
        .map_err(|e| RtcpError::Malformed(e.to_string()))?;
    out.truncate(len);
    Ok(out)
}

fn block_data(block: &ReportBlock<'_>) -> ReportBlockData {
    ReportBlockData {
        ssrc: block.ssrc(),
        fraction_lost: block.fraction_lost(),
        cumulative_lost: block.cumulative_lost(),
        extended_highest_sequence: block.extended_sequence_number(),
        jitter: block.interarrival_jitter(),
        last_sr: block.last_sender_report_timestamp(),
        delay_since_last_sr: block.delay_since_last_sender_report_timestamp(),
    }
}

/// Parses a received compound packet into events. The first packet must be SR or RR
/// (RFC 3550 §6.1), except that a lone BYE is accepted, as some stacks send one.
pub fn parse_compound(datagram: &[u8]) -> Result<Vec<RtcpEvent>, RtcpError> {
    let compound = Compound::parse(datagram)?;
    let mut events = Vec::new();
    for (index, packet) in compound.enumerate() {
        let packet = packet?;
        let is_report = matches!(packet, Packet::Sr(_) | Packet::Rr(_));
        if index == 0 && !is_report && !matches!(packet, Packet::Bye(_)) {
            return Err(RtcpError::NoLeadingReport);
        }
        match packet {
            Packet::Sr(sr) => {
                events.push(RtcpEvent::SenderReport(SenderInfo {
                    ssrc: sr.ssrc(),
                    ntp: sr.ntp_timestamp(),
                    rtp_timestamp: sr.rtp_timestamp(),
                    packet_count: sr.packet_count(),
                    octet_count: sr.octet_count(),
                }));
                for block in sr.report_blocks() {
                    events.push(RtcpEvent::ReceptionReport {
                        reporter: sr.ssrc(),
                        block: block_data(&block),
                    });
                }
            }
            Packet::Rr(rr) => {
                for block in rr.report_blocks() {
                    events.push(RtcpEvent::ReceptionReport {
                        reporter: rr.ssrc(),
                        block: block_data(&block),
                    });
                }
            }
            Packet::Sdes(sdes) => {
                for chunk in sdes.chunks() {
                    for item in chunk.items() {
                        if item.type_() == SdesItem::CNAME {
                            events.push(RtcpEvent::Cname {
                                ssrc: chunk.ssrc(),
                                cname: String::from_utf8_lossy(item.value()).into_owned(),
                            });
                        } else if item.type_() == SdesItem::NOTE {
                            events.push(RtcpEvent::Note {
                                ssrc: chunk.ssrc(),
                                note: String::from_utf8_lossy(item.value()).into_owned(),
                            });
                        }
                    }
                }
            }
            Packet::Bye(bye) => events.push(RtcpEvent::Bye {
                ssrcs: bye.ssrcs().collect(),
                reason: bye
                    .reason()
                    .map(|r| String::from_utf8_lossy(r).into_owned()),
            }),
            _ => {}
        }
    }
    Ok(events)
}

/// True when a datagram looks like RTCP rather than RTP (RFC 5761 §4: packet types
/// 192–223 in the second byte), for sockets that may see both.
pub fn looks_like_rtcp(datagram: &[u8]) -> bool {
    matches!(datagram.get(1), Some(192..=223))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block() -> ReportBlockData {
        ReportBlockData {
            ssrc: 0xaaaa,
            fraction_lost: 12,
            cumulative_lost: 34,
            extended_highest_sequence: 0x0001_0005,
            jitter: 77,
            last_sr: 0x1234_5678,
            delay_since_last_sr: 999,
        }
    }

    #[test]
    fn a_sender_report_with_bye_round_trips() {
        let info = SenderInfo {
            ssrc: 0xbbbb,
            ntp: 0xe000_0000_8000_0000,
            rtp_timestamp: 48_000,
            packet_count: 50,
            octet_count: 4000,
        };
        let spec = CompoundSpec {
            ssrc: 0xbbbb,
            sender: Some(info),
            blocks: &[block()],
            cname: "district@410503",
            bye_reason: Some("end of message"),
            note: None,
        };
        let events = parse_compound(&build_compound(&spec).expect("build")).expect("parse");
        assert_eq!(
            events,
            vec![
                RtcpEvent::SenderReport(info),
                RtcpEvent::ReceptionReport {
                    reporter: 0xbbbb,
                    block: block()
                },
                RtcpEvent::Cname {
                    ssrc: 0xbbbb,
                    cname: "district@410503".into()
                },
                RtcpEvent::Bye {
                    ssrcs: vec![0xbbbb],
                    reason: Some("end of message".into())
                },
            ]
        );
    }

    #[test]
    fn a_receiver_report_round_trips() {
        let spec = CompoundSpec {
            ssrc: 0xcccc,
            blocks: &[block()],
            cname: "speaker",
            ..Default::default()
        };
        let events = parse_compound(&build_compound(&spec).expect("build")).expect("parse");
        assert_eq!(
            events[0],
            RtcpEvent::ReceptionReport {
                reporter: 0xcccc,
                block: block()
            }
        );
    }

    #[test]
    fn truncated_and_wrong_version_rtcp_is_an_error() {
        let spec = CompoundSpec {
            ssrc: 1,
            cname: "x",
            ..Default::default()
        };
        let good = build_compound(&spec).expect("build");
        // Cutting at the end of the leading RR leaves a valid compound of one packet.
        for len in (0..good.len()).filter(|len| *len != 8) {
            assert!(
                parse_compound(&good[..len]).is_err(),
                "length {len} accepted"
            );
        }
        let mut bad = good.clone();
        bad[0] = (bad[0] & 0x3f) | 0x40;
        assert!(parse_compound(&bad).is_err());
    }

    #[test]
    fn a_compound_led_by_sdes_is_refused() {
        let spec = CompoundSpec {
            ssrc: 1,
            cname: "x",
            ..Default::default()
        };
        let good = build_compound(&spec).expect("build");
        let rr_len = 8; // an RR without blocks
        assert_eq!(
            parse_compound(&good[rr_len..]),
            Err(RtcpError::NoLeadingReport)
        );
    }

    #[test]
    fn rtcp_and_rtp_are_told_apart() {
        let spec = CompoundSpec {
            ssrc: 1,
            cname: "x",
            ..Default::default()
        };
        assert!(looks_like_rtcp(&build_compound(&spec).expect("build")));
        assert!(!looks_like_rtcp(&[0x80, 111, 0, 1]));
    }
}
