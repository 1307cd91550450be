//! The forwarding core of a street or village node, sans-IO.
//!
//! A [`Forwarder`] takes the datagrams that reach the node's RTP and RTCP ports, with
//! their source address and arrival instant, and hands back what to send through a
//! callback: one datagram per output group (all destinations of one codec get the same
//! bytes), RTCP for the groups' destinations, and reports for the upstream sender.
//!
//! * An input packet whose codec a group takes is switched without decoding: only the
//!   header is rewritten ([`StreamRewriter`]), so the group sees one continuous stream
//!   under the node's own SSRC.
//! * For groups that need another codec the packet is decoded once and re-encoded once
//!   per codec.
//! * The upstream's sender reports are translated onto each output (same NTP time,
//!   timestamp mapped through the rewriter), so loudspeakers can measure end-to-end
//!   latency against the originating clock.
//! * The input ends with the upstream's RTCP BYE, or after `input_timeout` without a
//!   packet; every output then sends its own BYE.
//! * Malformed datagrams, unknown payload types and packets from hosts not allowed are
//!   dropped and counted, never forwarded.
//! * Where grants are required (a node in a cascade), a stream is forwarded only while a
//!   stream grant covers its SSRC ([`super::grants`]); packets that come just before
//!   their grant are held briefly and forwarded when it comes.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use codecs::g711::{self, G711Law};
use codecs::opus::{FRAME_SAMPLES, OpusDecoder};
use codecs::resample::StreamResampler;
use drivers::rtp::packet::{FIXED_HEADER_LEN, OutgoingHeader, RtpHeader, write_header};
use drivers::rtp::payload::PayloadFormat;
use drivers::rtp::rewrite::StreamRewriter;
use drivers::rtp::rtcp::{CompoundSpec, RtcpEvent, SenderInfo, build_compound, parse_compound};
use drivers::rtp::session::RtcpSchedule;
use drivers::rtp::stats::{ReceiverStats, ReportBlockData};

use super::encoder::FrameEncoder;
use super::grants::StreamGrants;

/// How many finished output streams are still recognised in receiver reports.
const RETIRED_KEPT: usize = 32;

/// What the forwarder wants sent.
#[derive(Debug, PartialEq, Eq)]
pub enum Transmit<'a> {
    /// An RTP datagram for every destination of output group `group`.
    Rtp { group: usize, datagram: &'a [u8] },
    /// An RTCP datagram for the RTCP port of every destination of `group`.
    GroupRtcp { group: usize, datagram: Vec<u8> },
    /// An RTCP datagram for the upstream sender.
    UpstreamRtcp { to: SocketAddr, datagram: Vec<u8> },
}

/// Something an operator wants to know.
#[derive(Debug, Clone, PartialEq)]
pub enum ForwardEvent {
    StreamStarted {
        ssrc: u32,
        from: SocketAddr,
        format: PayloadFormat,
    },
    StreamEnded {
        ssrc: u32,
        reason: EndReason,
        received: u64,
        lost: i64,
        /// What went out for it in each output group that carried it.
        outputs: Vec<OutputStream>,
    },
    /// The upstream's note about a source (SDES NOTE): the alert a stream carries.
    SourceNote { ssrc: u32, note: String },
    /// A stream came with no grant covering it, and its packets were dropped.
    Ungranted { ssrc: u32, from: SocketAddr },
    /// A downstream receiver's report on one of our outputs.
    ReceiverReport {
        from: SocketAddr,
        reporter: u32,
        group: usize,
        format: PayloadFormat,
        block: ReportBlockData,
    },
}

/// One output stream a finished input stream was sent as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputStream {
    pub group: usize,
    pub ssrc: u32,
    /// Sequence number of its first packet.
    pub first_sequence: u16,
    pub packets: u32,
}

/// Why an input stream ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    Bye,
    Timeout,
    Shutdown,
}

/// Counts of what was dropped and why.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ForwardCounters {
    pub received: u64,
    pub forwarded: u64,
    pub malformed: u64,
    pub unknown_payload_type: u64,
    pub foreign_source: u64,
    pub competing_source: u64,
    /// RTP packets of streams no grant covered (held, then forwarded or dropped).
    pub ungranted: u64,
    pub transcode_errors: u64,
    pub rtcp_malformed: u64,
}

/// One output group: every destination that takes one payload format.
#[derive(Debug, Clone)]
pub struct GroupSpec {
    pub format: PayloadFormat,
}

struct Group {
    format: PayloadFormat,
    rewriter: StreamRewriter,
    encoder: Option<FrameEncoder>,
    packets: u32,
    octets: u32,
    first_sequence: Option<u16>,
    active: bool,
    datagram: Vec<u8>,
}

impl Group {
    fn new(format: PayloadFormat, in_clock: u32) -> Self {
        Group {
            format,
            rewriter: StreamRewriter::new(
                rand::random(),
                in_clock,
                format.clock_rate(),
                format.timestamp_step(),
                rand::random(),
                rand::random(),
            ),
            encoder: None,
            packets: 0,
            octets: 0,
            first_sequence: None,
            active: false,
            datagram: Vec::with_capacity(1500),
        }
    }
}

/// Decodes the input to 48 kHz for groups that need another codec.
enum InputDecoder {
    Opus(OpusDecoder),
    G711 {
        law: G711Law,
        upsampler: Box<StreamResampler>,
    },
}

struct Input {
    ssrc: u32,
    format: PayloadFormat,
    stats: ReceiverStats,
    last_packet: Instant,
    rtcp_to: SocketAddr,
    decoder: Option<InputDecoder>,
}

/// Settings of a forwarder.
#[derive(Debug, Clone)]
pub struct ForwarderConfig {
    pub cname: String,
    pub opus_payload_type: u8,
    pub opus_bitrate: u32,
    pub allow: Vec<IpAddr>,
    pub input_timeout: Duration,
    pub rtcp_interval: Duration,
    /// Forward only streams a grant covers (a relaying node in a cascade).
    pub grants_required: bool,
}

/// The forwarding core. See the module documentation.
pub struct Forwarder {
    config: ForwarderConfig,
    own_ssrc: u32,
    groups: Vec<Group>,
    input: Option<Input>,
    schedule: RtcpSchedule,
    counters: ForwardCounters,
    ssrc_to_group: HashMap<u32, usize>,
    /// Output SSRCs of finished streams, newest first, with their group.
    retired: std::collections::VecDeque<(u32, usize)>,
    events: Vec<ForwardEvent>,
    pcm: Vec<i16>,
    grants: StreamGrants,
}

impl Forwarder {
    pub fn new(config: ForwarderConfig, groups: &[GroupSpec]) -> Self {
        let schedule = RtcpSchedule::new(config.rtcp_interval);
        let groups: Vec<Group> = groups
            .iter()
            .map(|g| Group::new(g.format, 48_000))
            .collect();
        let ssrc_to_group = groups
            .iter()
            .enumerate()
            .map(|(i, g)| (g.rewriter.out_ssrc(), i))
            .collect();
        Forwarder {
            config,
            own_ssrc: rand::random(),
            groups,
            input: None,
            schedule,
            counters: ForwardCounters::default(),
            ssrc_to_group,
            retired: std::collections::VecDeque::new(),
            events: Vec::new(),
            pcm: Vec::with_capacity(FRAME_SAMPLES),
            grants: StreamGrants::default(),
        }
    }

    pub fn counters(&self) -> ForwardCounters {
        self.counters
    }

    /// Events since the last call.
    pub fn drain_events(&mut self) -> Vec<ForwardEvent> {
        std::mem::take(&mut self.events)
    }

    /// The SSRC of the current input stream.
    pub fn input_ssrc(&self) -> Option<u32> {
        self.input.as_ref().map(|i| i.ssrc)
    }

    /// Leave to forward the stream `ssrc` until `until`: packets of it held while the
    /// grant was on its way go out now, in order.
    pub fn grant(
        &mut self,
        ssrc: u32,
        until: Instant,
        now: Instant,
        out: &mut dyn FnMut(Transmit<'_>),
    ) {
        for held in self.grants.grant(ssrc, until, now) {
            self.forward_rtp(&held.datagram, held.from, now, out);
        }
    }

    /// Takes one datagram from the RTP port.
    pub fn on_rtp(
        &mut self,
        datagram: &[u8],
        from: SocketAddr,
        now: Instant,
        out: &mut dyn FnMut(Transmit<'_>),
    ) {
        self.counters.received += 1;
        if !self.config.allow.is_empty() && !self.config.allow.contains(&from.ip()) {
            self.counters.foreign_source += 1;
            return;
        }
        if self.config.grants_required {
            let Ok(header) = RtpHeader::parse(datagram) else {
                self.counters.malformed += 1;
                return;
            };
            if !self.grants.admits(header.ssrc, now) {
                self.counters.ungranted += 1;
                self.grants.hold(header.ssrc, datagram, from, now);
                self.refused_for_want_of_grants(now);
                return;
            }
        }
        self.forward_rtp(datagram, from, now, out);
    }

    /// Says which streams' held packets were dropped with no grant come.
    fn refused_for_want_of_grants(&mut self, now: Instant) {
        for (ssrc, from) in self.grants.poll(now) {
            self.events.push(ForwardEvent::Ungranted { ssrc, from });
        }
    }

    /// Forwards one admitted datagram from the RTP port.
    fn forward_rtp(
        &mut self,
        datagram: &[u8],
        from: SocketAddr,
        now: Instant,
        out: &mut dyn FnMut(Transmit<'_>),
    ) {
        let Ok(header) = RtpHeader::parse(datagram) else {
            self.counters.malformed += 1;
            return;
        };
        let Some(format) =
            PayloadFormat::from_payload_type(header.payload_type, self.config.opus_payload_type)
        else {
            self.counters.unknown_payload_type += 1;
            return;
        };
        let payload = header.payload(datagram);
        let duration = match format {
            PayloadFormat::Opus { .. } => drivers::rtp::opus::packet_samples(payload).ok(),
            PayloadFormat::Pcmu | PayloadFormat::Pcma => {
                Some(drivers::rtp::g711::packet_samples(payload))
            }
        };
        if duration.is_none_or(|d| d == 0) {
            self.counters.malformed += 1;
            return;
        }

        match &self.input {
            Some(input) if input.ssrc != header.ssrc => {
                self.counters.competing_source += 1;
                return;
            }
            Some(_) => {}
            None => self.start_input(&header, format, from, now),
        }
        let Some(input) = self.input.as_mut() else {
            return;
        };
        if input.format != format {
            self.counters.unknown_payload_type += 1;
            return;
        }
        input
            .stats
            .on_packet(header.sequence, header.timestamp, now);
        input.last_packet = now;

        let mut decoded = false;
        for index in 0..self.groups.len() {
            let group = &mut self.groups[index];
            let rewritten = group.rewriter.rewrite(
                header.ssrc,
                header.sequence,
                header.timestamp,
                header.marker,
                now,
            );
            let out_header = OutgoingHeader {
                marker: rewritten.marker,
                payload_type: group.format.payload_type(),
                sequence: rewritten.sequence,
                timestamp: rewritten.timestamp,
                ssrc: group.rewriter.out_ssrc(),
            };
            let mut fixed = [0u8; FIXED_HEADER_LEN];
            write_header(&mut fixed, &out_header);
            group.datagram.clear();
            group.datagram.extend_from_slice(&fixed);
            if group.format.same_codec(format) {
                group.datagram.extend_from_slice(payload);
            } else {
                if !decoded {
                    let Some(input) = self.input.as_mut() else {
                        return;
                    };
                    if decode_input(input, payload, &mut self.pcm).is_err() {
                        self.counters.transcode_errors += 1;
                        return;
                    }
                    decoded = true;
                }
                let group = &mut self.groups[index];
                let encoder = match &mut group.encoder {
                    Some(encoder) => encoder,
                    slot => match FrameEncoder::new(group.format, self.config.opus_bitrate) {
                        Ok(encoder) => slot.insert(encoder),
                        Err(_) => {
                            self.counters.transcode_errors += 1;
                            continue;
                        }
                    },
                };
                match encoder.encode(&self.pcm) {
                    Ok(encoded) => group.datagram.extend_from_slice(encoded),
                    Err(_) => {
                        self.counters.transcode_errors += 1;
                        continue;
                    }
                }
            }
            let group = &mut self.groups[index];
            if group.first_sequence.is_none() {
                group.first_sequence = group
                    .datagram
                    .get(2..4)
                    .map(|b| u16::from_be_bytes([b[0], b[1]]));
            }
            group.packets = group.packets.wrapping_add(1);
            group.octets = group
                .octets
                .wrapping_add((group.datagram.len() - FIXED_HEADER_LEN) as u32);
            group.active = true;
            out(Transmit::Rtp {
                group: index,
                datagram: &group.datagram,
            });
        }
        self.counters.forwarded += 1;
    }

    fn start_input(
        &mut self,
        header: &RtpHeader,
        format: PayloadFormat,
        from: SocketAddr,
        now: Instant,
    ) {
        let needs_decoder = self.groups.iter().any(|g| !g.format.same_codec(format));
        let decoder = if needs_decoder {
            make_decoder(format)
        } else {
            None
        };
        self.input = Some(Input {
            ssrc: header.ssrc,
            format,
            stats: ReceiverStats::new(header.ssrc, format.clock_rate(), now),
            last_packet: now,
            rtcp_to: SocketAddr::new(from.ip(), from.port().wrapping_add(1)),
            decoder,
        });
        for group in &mut self.groups {
            group.rewriter.set_in_clock(format.clock_rate());
        }
        self.schedule.start(now);
        self.events.push(ForwardEvent::StreamStarted {
            ssrc: header.ssrc,
            from,
            format,
        });
    }

    /// Takes one datagram from the RTCP port.
    pub fn on_rtcp(
        &mut self,
        datagram: &[u8],
        from: SocketAddr,
        now: Instant,
        out: &mut dyn FnMut(Transmit<'_>),
    ) {
        self.take_rtcp(datagram, from, now, out, true);
    }

    /// Takes an RTCP datagram whose sender is not authenticated where the input is (a
    /// loudspeaker's plain report beside an SRTP input): only its reception reports are
    /// read; sender reports, BYE and notes about the input are ignored.
    pub fn on_downstream_rtcp(
        &mut self,
        datagram: &[u8],
        from: SocketAddr,
        now: Instant,
        out: &mut dyn FnMut(Transmit<'_>),
    ) {
        self.take_rtcp(datagram, from, now, out, false);
    }

    fn take_rtcp(
        &mut self,
        datagram: &[u8],
        from: SocketAddr,
        now: Instant,
        out: &mut dyn FnMut(Transmit<'_>),
        from_input: bool,
    ) {
        let Ok(events) = parse_compound(datagram) else {
            self.counters.rtcp_malformed += 1;
            return;
        };
        for event in events {
            if !from_input && !matches!(event, RtcpEvent::ReceptionReport { .. }) {
                continue;
            }
            match event {
                RtcpEvent::SenderReport(info) => self.on_sender_report(info, from, now, out),
                RtcpEvent::ReceptionReport { reporter, block } => {
                    let group = self.ssrc_to_group.get(&block.ssrc).copied().or_else(|| {
                        self.retired
                            .iter()
                            .find(|(s, _)| *s == block.ssrc)
                            .map(|(_, g)| *g)
                    });
                    if let Some(group) = group {
                        let format = self.groups[group].format;
                        self.events.push(ForwardEvent::ReceiverReport {
                            from,
                            reporter,
                            group,
                            format,
                            block,
                        });
                    }
                }
                RtcpEvent::Bye { ssrcs, .. } => {
                    if self.input.as_ref().is_some_and(|i| ssrcs.contains(&i.ssrc)) {
                        self.end_input(EndReason::Bye, out);
                    }
                }
                RtcpEvent::Note { ssrc, note } => {
                    self.events.push(ForwardEvent::SourceNote { ssrc, note });
                }
                RtcpEvent::Cname { .. } => {}
            }
        }
    }

    fn on_sender_report(
        &mut self,
        info: SenderInfo,
        from: SocketAddr,
        now: Instant,
        out: &mut dyn FnMut(Transmit<'_>),
    ) {
        let Some(input) = self.input.as_mut().filter(|i| i.ssrc == info.ssrc) else {
            return;
        };
        input.stats.on_sender_report(info.ntp, now);
        input.rtcp_to = from;
        for (index, group) in self.groups.iter().enumerate() {
            let Some(rtp_timestamp) = group.rewriter.map_timestamp(info.ssrc, info.rtp_timestamp)
            else {
                continue;
            };
            let sender = SenderInfo {
                ssrc: group.rewriter.out_ssrc(),
                ntp: info.ntp,
                rtp_timestamp,
                packet_count: group.packets,
                octet_count: group.octets,
            };
            let spec = CompoundSpec {
                ssrc: sender.ssrc,
                sender: Some(sender),
                blocks: &[],
                cname: &self.config.cname,
                bye_reason: None,
                note: None,
            };
            if let Ok(datagram) = build_compound(&spec) {
                out(Transmit::GroupRtcp {
                    group: index,
                    datagram,
                });
            }
        }
    }

    fn end_input(&mut self, reason: EndReason, out: &mut dyn FnMut(Transmit<'_>)) {
        let Some(input) = self.input.take() else {
            return;
        };
        let reason_text = match reason {
            EndReason::Bye => "upstream ended the stream",
            EndReason::Timeout => "upstream went silent",
            EndReason::Shutdown => "gateway shutting down",
        };
        let mut outputs = Vec::new();
        for (index, group) in self.groups.iter_mut().enumerate() {
            if !group.active {
                continue;
            }
            outputs.push(OutputStream {
                group: index,
                ssrc: group.rewriter.out_ssrc(),
                first_sequence: group.first_sequence.unwrap_or(0),
                packets: group.packets,
            });
            // The closing compound leads with an empty RR rather than an SR: this node
            // only knows the media clock through the upstream's reports, and a mapping
            // made from local arrival times would skew the receivers' latency figures.
            let spec = CompoundSpec {
                ssrc: group.rewriter.out_ssrc(),
                sender: None,
                blocks: &[],
                cname: &self.config.cname,
                bye_reason: Some(reason_text),
                note: None,
            };
            if let Ok(datagram) = build_compound(&spec) {
                out(Transmit::GroupRtcp {
                    group: index,
                    datagram,
                });
            }
            // The next stream goes out under a new SSRC (RFC 3550 §8: a source that
            // said BYE is gone).
            // Its receivers' last reports come after the BYE: keep knowing it a while.
            if let Some(old) = self.ssrc_to_group.remove(&group.rewriter.out_ssrc()) {
                self.retired.push_front((group.rewriter.out_ssrc(), old));
                self.retired.truncate(RETIRED_KEPT);
            }
            let format = group.format;
            *group = Group::new(format, 48_000);
            self.ssrc_to_group.insert(group.rewriter.out_ssrc(), index);
        }
        self.schedule.stop();
        self.events.push(ForwardEvent::StreamEnded {
            ssrc: input.ssrc,
            reason,
            received: input.stats.received(),
            lost: input.stats.lost(),
            outputs,
        });
    }

    /// Runs the timers: input time-out and receiver reports to the upstream.
    pub fn poll(&mut self, now: Instant, out: &mut dyn FnMut(Transmit<'_>)) {
        self.refused_for_want_of_grants(now);
        let timed_out = self
            .input
            .as_ref()
            .is_some_and(|i| now >= i.last_packet + self.config.input_timeout);
        if timed_out {
            self.end_input(EndReason::Timeout, out);
            return;
        }
        if self.schedule.poll(now) {
            if let Some(input) = self.input.as_mut() {
                let block = input.stats.report_block(now);
                let spec = CompoundSpec {
                    ssrc: self.own_ssrc,
                    sender: None,
                    blocks: &[block],
                    cname: &self.config.cname,
                    bye_reason: None,
                    note: None,
                };
                if let Ok(datagram) = build_compound(&spec) {
                    out(Transmit::UpstreamRtcp {
                        to: input.rtcp_to,
                        datagram,
                    });
                }
            }
        }
    }

    /// When [`Forwarder::poll`] wants to run next.
    pub fn next_deadline(&self) -> Option<Instant> {
        let timeout = self
            .input
            .as_ref()
            .map(|i| i.last_packet + self.config.input_timeout);
        [
            timeout,
            self.schedule.next_deadline(),
            self.grants.next_deadline(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Ends the current stream, if any, with BYE on every output.
    pub fn shutdown(&mut self, out: &mut dyn FnMut(Transmit<'_>)) {
        self.end_input(EndReason::Shutdown, out);
    }
}

fn make_decoder(format: PayloadFormat) -> Option<InputDecoder> {
    let law = match format {
        PayloadFormat::Opus { .. } => return OpusDecoder::new().ok().map(InputDecoder::Opus),
        PayloadFormat::Pcmu => G711Law::MuLaw,
        PayloadFormat::Pcma => G711Law::ALaw,
    };
    let upsampler = StreamResampler::new(8_000, 48_000, drivers::rtp::g711::PACKET_BYTES).ok()?;
    Some(InputDecoder::G711 {
        law,
        upsampler: Box::new(upsampler),
    })
}

/// Decodes one input payload into 20 ms of 48 kHz audio in `pcm`.
fn decode_input(input: &mut Input, payload: &[u8], pcm: &mut Vec<i16>) -> Result<(), ()> {
    pcm.clear();
    match input.decoder.as_mut().ok_or(())? {
        InputDecoder::Opus(decoder) => {
            pcm.resize(FRAME_SAMPLES * 6, 0);
            let samples = decoder.decode(payload, pcm).map_err(|_| ())?;
            if samples != FRAME_SAMPLES {
                return Err(());
            }
            pcm.truncate(samples);
        }
        InputDecoder::G711 { law, upsampler } => {
            if payload.len() != drivers::rtp::g711::PACKET_BYTES {
                return Err(());
            }
            let mut narrow = Vec::with_capacity(payload.len());
            g711::decode(*law, payload, &mut narrow);
            *pcm = upsampler.process(&narrow).map_err(|_| ())?;
            pcm.resize(FRAME_SAMPLES, 0);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use drivers::rtp::packetizer::Packetizer;
    use drivers::rtp::rtcp::CompoundSpec;

    use super::*;
    use crate::voice::encoder::FrameEncoder;

    const UPSTREAM: &str = "127.0.0.1:40000";

    fn forwarder(formats: &[PayloadFormat]) -> Forwarder {
        forwarder_with(formats, false)
    }

    fn forwarder_with(formats: &[PayloadFormat], grants_required: bool) -> Forwarder {
        let specs: Vec<GroupSpec> = formats.iter().map(|f| GroupSpec { format: *f }).collect();
        Forwarder::new(
            ForwarderConfig {
                cname: "street@410503001".into(),
                opus_payload_type: 111,
                opus_bitrate: 32_000,
                allow: vec!["127.0.0.1".parse().expect("ip")],
                input_timeout: Duration::from_secs(2),
                rtcp_interval: Duration::from_secs(1),
                grants_required,
            },
            &specs,
        )
    }

    /// Owned copies of what the forwarder sent.
    #[derive(Debug, Default)]
    struct Sent {
        rtp: Vec<(usize, Vec<u8>)>,
        group_rtcp: Vec<(usize, Vec<u8>)>,
        upstream_rtcp: Vec<(SocketAddr, Vec<u8>)>,
    }

    impl Sent {
        fn record(&mut self) -> impl FnMut(Transmit<'_>) + '_ {
            |t| match t {
                Transmit::Rtp { group, datagram } => self.rtp.push((group, datagram.to_vec())),
                Transmit::GroupRtcp { group, datagram } => self.group_rtcp.push((group, datagram)),
                Transmit::UpstreamRtcp { to, datagram } => self.upstream_rtcp.push((to, datagram)),
            }
        }
    }

    fn opus_stream(frames: usize, t0: Instant) -> (Packetizer, Vec<Vec<u8>>) {
        let mut encoder = FrameEncoder::new(PayloadFormat::OPUS, 32_000).expect("opus");
        let mut stream =
            Packetizer::with_origin(PayloadFormat::OPUS, 0xd157, 65_530, u32::MAX - 2000);
        let packets = (0..frames)
            .map(|k| {
                let frame: Vec<i16> = (0..960)
                    .map(|i| (((k * 960 + i) as f32 * 0.0575).sin() * 9000.0) as i16)
                    .collect();
                let payload = encoder.encode(&frame).expect("encode").to_vec();
                stream.packetize(&payload, t0 + Duration::from_millis(20 * k as u64))
            })
            .collect();
        (stream, packets)
    }

    fn from() -> SocketAddr {
        UPSTREAM.parse().expect("addr")
    }

    #[test]
    fn where_grants_are_required_a_stream_goes_only_under_its_grant_and_none_of_it_is_lost() {
        let t0 = Instant::now();
        let at = |k: usize| t0 + Duration::from_millis(20 * k as u64);
        let mut fw = forwarder_with(&[PayloadFormat::OPUS], true);
        let (_, packets) = opus_stream(10, t0);
        let mut sent = Sent::default();
        for (k, p) in packets.iter().enumerate().take(3) {
            fw.on_rtp(p, from(), at(k), &mut sent.record());
        }
        assert!(sent.rtp.is_empty(), "nothing before the grant");
        assert_eq!(fw.counters().ungranted, 3);
        assert!(fw.drain_events().is_empty(), "held, not yet refused");

        // The grant comes 60 ms late: the held packets go first, in order.
        fw.grant(
            0xd157,
            at(3) + Duration::from_secs(30),
            at(3),
            &mut sent.record(),
        );
        for (k, p) in packets.iter().enumerate().skip(3) {
            fw.on_rtp(p, from(), at(k), &mut sent.record());
        }
        let sequences: Vec<u16> = sent
            .rtp
            .iter()
            .map(|(_, d)| RtpHeader::parse(d).expect("rtp").sequence)
            .collect();
        assert_eq!(sequences.len(), 10, "every packet, the held ones too");
        assert!(
            sequences.windows(2).all(|w| w[1] == w[0].wrapping_add(1)),
            "{sequences:?}"
        );

        assert!(
            !fw.drain_events()
                .iter()
                .any(|e| matches!(e, ForwardEvent::Ungranted { .. })),
            "the granted stream was never refused"
        );

        // Another stream from the same address has no grant: refused once its held
        // packets have waited their time, and said once.
        let mut other = Packetizer::with_origin(PayloadFormat::OPUS, 0xbad, 1, 1);
        let datagram = other.packetize(&[0x78, 0x01, 0x02], at(20));
        fw.on_rtp(&datagram, from(), at(20), &mut sent.record());
        let due = at(20) + crate::voice::grants::HOLD_FOR;
        assert!(fw.next_deadline().is_some_and(|d| d <= due));
        fw.poll(due - Duration::from_millis(1), &mut sent.record());
        assert!(fw.drain_events().is_empty(), "still waiting for its grant");
        fw.poll(due, &mut sent.record());
        assert_eq!(sent.rtp.len(), 10);
        assert_eq!(fw.counters().ungranted, 4);
        let refused: Vec<ForwardEvent> = fw
            .drain_events()
            .into_iter()
            .filter(|e| matches!(e, ForwardEvent::Ungranted { .. }))
            .collect();
        assert_eq!(
            refused,
            [ForwardEvent::Ungranted {
                ssrc: 0xbad,
                from: from()
            }]
        );
    }

    #[test]
    fn a_stream_whose_grant_has_ended_is_no_longer_forwarded() {
        let t0 = Instant::now();
        let mut fw = forwarder_with(&[PayloadFormat::OPUS], true);
        let (_, packets) = opus_stream(4, t0);
        let mut sent = Sent::default();
        fw.grant(
            0xd157,
            t0 + Duration::from_millis(30),
            t0,
            &mut sent.record(),
        );
        for (k, p) in packets.iter().enumerate() {
            fw.on_rtp(
                p,
                from(),
                t0 + Duration::from_millis(20 * k as u64),
                &mut sent.record(),
            );
        }
        assert_eq!(sent.rtp.len(), 2, "the packets at 0 and 20 ms only");
        assert_eq!(fw.counters().ungranted, 2);
    }

    #[test]
    fn opus_is_switched_without_decoding_under_one_continuous_ssrc() {
        let t0 = Instant::now();
        let mut fw = forwarder(&[PayloadFormat::OPUS]);
        let (_, packets) = opus_stream(10, t0);
        let mut sent = Sent::default();
        for (k, p) in packets.iter().enumerate() {
            fw.on_rtp(
                p,
                from(),
                t0 + Duration::from_millis(20 * k as u64),
                &mut sent.record(),
            );
        }
        assert_eq!(sent.rtp.len(), 10);
        let headers: Vec<RtpHeader> = sent
            .rtp
            .iter()
            .map(|(_, d)| RtpHeader::parse(d).expect("rtp"))
            .collect();
        for (k, (h, (_, d))) in headers.iter().zip(&sent.rtp).enumerate() {
            assert_eq!(h.ssrc, headers[0].ssrc);
            assert_ne!(h.ssrc, 0xd157, "the node sends under its own SSRC");
            assert_eq!(h.sequence, headers[0].sequence.wrapping_add(k as u16));
            assert_eq!(
                h.timestamp,
                headers[0].timestamp.wrapping_add(960 * k as u32)
            );
            // The payload is the upstream's, byte for byte.
            let original = RtpHeader::parse(&packets[k]).expect("rtp");
            assert_eq!(h.payload(d), original.payload(&packets[k]));
        }
        assert!(headers[0].marker);
    }

    #[test]
    fn a_g711_group_gets_one_transcoded_160_byte_packet_per_frame() {
        let t0 = Instant::now();
        let mut fw = forwarder(&[
            PayloadFormat::OPUS,
            PayloadFormat::Pcmu,
            PayloadFormat::Pcma,
        ]);
        let (_, packets) = opus_stream(5, t0);
        let mut sent = Sent::default();
        for p in &packets {
            fw.on_rtp(p, from(), t0, &mut sent.record());
        }
        let per_group = |g: usize| sent.rtp.iter().filter(|(group, _)| *group == g).count();
        assert_eq!((per_group(0), per_group(1), per_group(2)), (5, 5, 5));
        for (group, datagram) in &sent.rtp {
            let h = RtpHeader::parse(datagram).expect("rtp");
            match group {
                1 => assert_eq!((h.payload_type, h.payload_len), (0, 160)),
                2 => assert_eq!((h.payload_type, h.payload_len), (8, 160)),
                _ => assert_eq!(h.payload_type, 111),
            }
        }
        let pcmu: Vec<u32> = sent
            .rtp
            .iter()
            .filter(|(g, _)| *g == 1)
            .map(|(_, d)| RtpHeader::parse(d).expect("rtp").timestamp)
            .collect();
        assert!(
            pcmu.windows(2).all(|w| w[1].wrapping_sub(w[0]) == 160),
            "8 kHz timestamps: {pcmu:?}"
        );
    }

    #[test]
    fn bad_input_is_dropped_and_counted_never_forwarded() {
        let t0 = Instant::now();
        let mut fw = forwarder(&[PayloadFormat::OPUS]);
        let (_, packets) = opus_stream(1, t0);
        let mut sent = Sent::default();
        let stranger: SocketAddr = "10.9.8.7:5000".parse().expect("addr");
        fw.on_rtp(&packets[0], stranger, t0, &mut sent.record());
        fw.on_rtp(&[0x80, 111, 0], from(), t0, &mut sent.record());
        let mut wrong_pt = packets[0].clone();
        wrong_pt[1] = 96;
        fw.on_rtp(&wrong_pt, from(), t0, &mut sent.record());
        let mut empty_payload = packets[0].clone();
        empty_payload.truncate(12);
        fw.on_rtp(&empty_payload, from(), t0, &mut sent.record());
        fw.on_rtcp(&[0x81, 200, 0, 50], from(), t0, &mut sent.record());
        assert!(sent.rtp.is_empty());
        let c = fw.counters();
        assert_eq!(
            (
                c.foreign_source,
                c.malformed,
                c.unknown_payload_type,
                c.rtcp_malformed,
                c.forwarded
            ),
            (1, 2, 1, 1, 0)
        );
    }

    #[test]
    fn a_second_source_is_held_off_while_the_first_is_live() {
        let t0 = Instant::now();
        let mut fw = forwarder(&[PayloadFormat::OPUS]);
        let (_, first) = opus_stream(2, t0);
        let mut other = first[1].clone();
        other[8..12].copy_from_slice(&0xbad0_0001u32.to_be_bytes());
        let mut sent = Sent::default();
        fw.on_rtp(&first[0], from(), t0, &mut sent.record());
        fw.on_rtp(&other, from(), t0, &mut sent.record());
        assert_eq!(sent.rtp.len(), 1);
        assert_eq!(fw.counters().competing_source, 1);
    }

    #[test]
    fn upstream_bye_ends_the_stream_with_bye_on_every_output() {
        let t0 = Instant::now();
        let mut fw = forwarder(&[PayloadFormat::OPUS, PayloadFormat::Pcmu]);
        let (_, packets) = opus_stream(3, t0);
        let mut sent = Sent::default();
        for p in &packets {
            fw.on_rtp(p, from(), t0, &mut sent.record());
        }
        let bye = build_compound(&CompoundSpec {
            ssrc: 0xd157,
            cname: "district",
            bye_reason: Some("end"),
            note: None,
            ..Default::default()
        })
        .expect("bye");
        fw.on_rtcp(&bye, from(), t0, &mut sent.record());
        let byes: Vec<usize> = sent
            .group_rtcp
            .iter()
            .filter(|(_, d)| {
                parse_compound(d)
                    .expect("rtcp")
                    .iter()
                    .any(|e| matches!(e, RtcpEvent::Bye { .. }))
            })
            .map(|(g, _)| *g)
            .collect();
        assert_eq!(byes, [0, 1]);
        assert_eq!(fw.input_ssrc(), None);
        assert!(matches!(
            fw.drain_events().last(),
            Some(ForwardEvent::StreamEnded {
                reason: EndReason::Bye,
                ..
            })
        ));
    }

    #[test]
    fn an_input_silent_past_the_timeout_ends_by_the_fake_clock() {
        let t0 = Instant::now();
        let mut fw = forwarder(&[PayloadFormat::OPUS]);
        let (_, packets) = opus_stream(1, t0);
        let mut sent = Sent::default();
        fw.on_rtp(&packets[0], from(), t0, &mut sent.record());
        let deadline = fw.next_deadline().expect("a timer runs");
        assert!(deadline <= t0 + Duration::from_secs(2));
        fw.poll(t0 + Duration::from_millis(1999), &mut sent.record());
        assert!(fw.input_ssrc().is_some(), "not yet timed out");
        fw.poll(t0 + Duration::from_secs(2), &mut sent.record());
        assert_eq!(fw.input_ssrc(), None);
        assert!(fw.drain_events().iter().any(|e| matches!(
            e,
            ForwardEvent::StreamEnded {
                reason: EndReason::Timeout,
                ..
            }
        )));
    }

    #[test]
    fn the_upstream_sender_report_is_translated_onto_each_output_clock() {
        let t0 = Instant::now();
        let mut fw = forwarder(&[PayloadFormat::OPUS, PayloadFormat::Pcmu]);
        let (stream, packets) = opus_stream(2, t0);
        let mut sent = Sent::default();
        for p in &packets {
            fw.on_rtp(p, from(), t0, &mut sent.record());
        }
        let anchor = drivers::rtp::ntp::NtpAnchor::new(t0, 0xe000_0000_0000_0000);
        let info = stream
            .sender_info(t0 + Duration::from_secs(1), &anchor)
            .expect("started");
        let sr = build_compound(&CompoundSpec {
            ssrc: info.ssrc,
            sender: Some(info),
            cname: "d",
            ..Default::default()
        })
        .expect("sr");
        fw.on_rtcp(&sr, from(), t0, &mut sent.record());
        let first_out = |g: usize| {
            sent.rtp
                .iter()
                .find(|(group, _)| *group == g)
                .map(|(_, d)| RtpHeader::parse(d).expect("rtp").timestamp)
                .expect("sent")
        };
        for (group, datagram) in &sent.group_rtcp {
            let Some(RtcpEvent::SenderReport(out)) =
                parse_compound(datagram).expect("rtcp").into_iter().next()
            else {
                panic!("an SR leads")
            };
            assert_eq!(out.ntp, info.ntp, "the originating clock is kept");
            // One second after the first packet, in each output's clock.
            let clock = if *group == 0 { 48_000 } else { 8_000 };
            assert_eq!(out.rtp_timestamp.wrapping_sub(first_out(*group)), clock);
        }
        assert_eq!(sent.group_rtcp.len(), 2);
    }

    #[test]
    fn receiver_reports_go_upstream_on_the_rtcp_schedule() {
        let t0 = Instant::now();
        let mut fw = forwarder(&[PayloadFormat::OPUS]);
        let (_, packets) = opus_stream(3, t0);
        let mut sent = Sent::default();
        for p in packets.iter().step_by(2) {
            fw.on_rtp(p, from(), t0, &mut sent.record());
        }
        let due = fw.schedule.next_deadline().expect("started");
        fw.poll(due, &mut sent.record());
        let (to, datagram) = sent.upstream_rtcp.first().expect("a report");
        assert_eq!(
            to.port(),
            40001,
            "RTCP goes to the RTP port + 1 until an SR names the sender's"
        );
        let events = parse_compound(datagram).expect("rtcp");
        let Some(RtcpEvent::ReceptionReport { block, .. }) = events.first() else {
            panic!("RR first")
        };
        assert_eq!(block.cumulative_lost, 1);
    }
}
