//! Captured RTP: reading streams out of a pcap file, replaying them through the jitter
//! buffer with their captured timing, and recording a live stream into a pcap file.
//!
//! Replay is sans-IO: each packet's capture timestamp is its arrival instant on a fake
//! clock, so a capture of any length replays in milliseconds and gives the same figures
//! every time. Ethernet, Linux cooked (SLL) and raw-IP captures are read; other link
//! types are refused with their number.

use std::collections::BTreeMap;
use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use codecs::g711::{self, G711Law};
use codecs::opus::{FRAME_SAMPLES, OpusDecoder};
use drivers::rtp::jitter::{Inserted, JitterBuffer, JitterConfig, Playout};
use drivers::rtp::packet::RtpHeader;
use drivers::rtp::payload::PayloadFormat;
use drivers::rtp::stats::ReceiverStats;
use etherparse::{PacketBuilder, SlicedPacket, TransportSlice};
use pcap_file::DataLink;
use pcap_file::pcap::{PcapHeader, PcapPacket, PcapReader, PcapWriter};
use serde::Serialize;

/// Why a capture cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("{path}: {reason}")]
    File { path: String, reason: String },
    #[error("{path}: link type {link:?} is not Ethernet, Linux cooked or raw IP")]
    LinkType { path: String, link: DataLink },
}

/// One RTP stream found in a capture.
#[derive(Debug, Clone)]
pub struct CapturedStream {
    pub ssrc: u32,
    pub payload_type: u8,
    pub source: SocketAddr,
    pub destination: SocketAddr,
    /// Capture time since the stream's first packet, and the RTP datagram.
    pub packets: Vec<(Duration, Vec<u8>)>,
}

fn file_error(path: &Path, reason: impl ToString) -> CaptureError {
    CaptureError::File {
        path: path.display().to_string(),
        reason: reason.to_string(),
    }
}

/// Reads every UDP datagram that parses as RTP version 2, grouped by SSRC, in capture
/// order. Datagrams that are not RTP (SIP, RTCP, DNS) are skipped.
pub fn read_rtp_streams(path: &Path) -> Result<Vec<CapturedStream>, CaptureError> {
    let file = std::fs::File::open(path).map_err(|e| file_error(path, e))?;
    read_rtp_streams_from(std::io::BufReader::new(file), path)
}

/// [`read_rtp_streams`] from any reader; `path` names it in errors.
pub fn read_rtp_streams_from(
    input: impl std::io::Read,
    path: &Path,
) -> Result<Vec<CapturedStream>, CaptureError> {
    let mut reader = PcapReader::new(input).map_err(|e| file_error(path, e))?;
    let link = reader.header().datalink;
    let mut streams: BTreeMap<u32, CapturedStream> = BTreeMap::new();
    let mut order = Vec::new();
    while let Some(packet) = reader.next_packet() {
        let packet = packet.map_err(|e| file_error(path, e))?;
        let sliced = match link {
            DataLink::ETHERNET => SlicedPacket::from_ethernet(&packet.data),
            DataLink::LINUX_SLL => SlicedPacket::from_linux_sll(&packet.data),
            DataLink::RAW | DataLink::IPV4 | DataLink::IPV6 => SlicedPacket::from_ip(&packet.data),
            other => {
                return Err(CaptureError::LinkType {
                    path: path.display().to_string(),
                    link: other,
                });
            }
        };
        let Ok(sliced) = sliced else { continue };
        let (Some(TransportSlice::Udp(udp)), Some(net)) = (&sliced.transport, &sliced.net) else {
            continue;
        };
        let (source_ip, destination_ip) = match net {
            etherparse::NetSlice::Ipv4(ip) => (
                std::net::IpAddr::V4(ip.header().source_addr()),
                std::net::IpAddr::V4(ip.header().destination_addr()),
            ),
            etherparse::NetSlice::Ipv6(ip) => (
                std::net::IpAddr::V6(ip.header().source_addr()),
                std::net::IpAddr::V6(ip.header().destination_addr()),
            ),
            _ => continue,
        };
        let datagram = udp.payload();
        if drivers::rtp::rtcp::looks_like_rtcp(datagram) {
            continue;
        }
        let Ok(header) = RtpHeader::parse(datagram) else {
            continue;
        };
        let stream = streams.entry(header.ssrc).or_insert_with(|| {
            order.push(header.ssrc);
            CapturedStream {
                ssrc: header.ssrc,
                payload_type: header.payload_type,
                source: SocketAddr::new(source_ip, udp.source_port()),
                destination: SocketAddr::new(destination_ip, udp.destination_port()),
                packets: Vec::new(),
            }
        });
        stream.packets.push((packet.timestamp, datagram.to_vec()));
    }
    let mut out: Vec<CapturedStream> = order
        .into_iter()
        .filter_map(|ssrc| streams.remove(&ssrc))
        .collect();
    for stream in &mut out {
        let first = stream.packets.first().map(|(t, _)| *t).unwrap_or_default();
        for (t, _) in &mut stream.packets {
            *t = t.saturating_sub(first);
        }
    }
    Ok(out)
}

/// What replaying one stream through the jitter buffer gave.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ReplayReport {
    pub ssrc: u32,
    pub codec: String,
    pub packets: usize,
    pub seconds: f64,
    pub lost: i64,
    pub late: u64,
    pub duplicates: u64,
    pub concealed: u64,
    pub fec_recovered: u64,
    pub stretches: u64,
    pub shrinks: u64,
    pub rfc3550_jitter_ms: f64,
    /// Time each played packet waited in the buffer: arrival to playout.
    pub added_delay_ms_mean: f64,
    pub added_delay_ms_p50: f64,
    pub added_delay_ms_p99: f64,
    pub final_delay_ms: Option<f64>,
    pub samples: usize,
    pub sample_rate: u32,
}

/// Replays `stream` through a jitter buffer on a fake clock and decodes what plays.
/// Returns the report and the decoded audio.
pub fn replay(stream: &CapturedStream, format: PayloadFormat) -> (ReplayReport, Vec<i16>) {
    let t0 = Instant::now();
    let config = JitterConfig::for_clock(format.clock_rate(), format.has_inband_fec());
    let mut jitter = JitterBuffer::new(config, t0);
    let mut stats = ReceiverStats::new(stream.ssrc, format.clock_rate(), t0);
    let mut opus = matches!(format, PayloadFormat::Opus { .. })
        .then(|| OpusDecoder::new().ok())
        .flatten();
    let law = if format == PayloadFormat::Pcma {
        G711Law::ALaw
    } else {
        G711Law::MuLaw
    };
    let frame = (format.clock_rate() / 50) as usize;
    let mut arrivals: BTreeMap<u64, Instant> = BTreeMap::new();
    let mut waits: Vec<f64> = Vec::new();
    let mut audio: Vec<i16> = Vec::new();
    let mut pending_gap = 0usize;
    let mut pcm = vec![0i16; FRAME_SAMPLES * 6];
    let mut unwrap = drivers::rtp::seq::TimestampUnwrapper::default();

    let mut play = |jitter: &mut JitterBuffer,
                    now: Instant,
                    audio: &mut Vec<i16>,
                    waits: &mut Vec<f64>,
                    arrivals: &BTreeMap<u64, Instant>| {
        while let Some(slot) = jitter.poll(now) {
            let decoded: Option<usize> = match (&slot.playout, opus.as_mut()) {
                (Playout::Underrun | Playout::Silence, _) => {
                    pending_gap += frame;
                    continue;
                }
                (Playout::Packet(p), Some(d)) => d.decode(p, &mut pcm).ok(),
                (Playout::Fec(next), Some(d)) => d.decode_fec(next, &mut pcm).ok(),
                (Playout::Conceal | Playout::Stretch, Some(d)) => d.conceal(&mut pcm).ok(),
                (Playout::Packet(p), None) => {
                    let mut out = Vec::with_capacity(p.len());
                    g711::decode(law, p, &mut out);
                    let len = out.len().min(pcm.len());
                    pcm[..len].copy_from_slice(&out[..len]);
                    Some(len)
                }
                _ => None,
            };
            if let (Playout::Packet(_), Some(arrived)) =
                (&slot.playout, arrivals.get(&slot.timestamp))
            {
                waits.push(slot.due.saturating_duration_since(*arrived).as_secs_f64() * 1000.0);
            }
            let len = decoded.unwrap_or_else(|| {
                pcm[..frame].fill(0);
                frame
            });
            audio.extend(std::iter::repeat_n(0, std::mem::take(&mut pending_gap)));
            audio.extend_from_slice(&pcm[..len]);
        }
    };

    for (at, datagram) in &stream.packets {
        let now = t0 + *at;
        play(&mut jitter, now, &mut audio, &mut waits, &arrivals);
        let Ok(header) = RtpHeader::parse(datagram) else {
            continue;
        };
        let payload = header.payload(datagram);
        let duration = match format {
            PayloadFormat::Opus { .. } => drivers::rtp::opus::packet_samples(payload).unwrap_or(0),
            _ => drivers::rtp::g711::packet_samples(payload),
        };
        stats.on_packet(header.sequence, header.timestamp, now);
        arrivals.insert(unwrap.extend(u64::from(header.timestamp)), now);
        if jitter.insert(now, header.sequence, header.timestamp, duration, payload)
            == Inserted::Duplicate
        {
            stats.on_duplicate();
        }
    }
    let final_delay = jitter.delay();
    let end =
        t0 + stream.packets.last().map(|(t, _)| *t).unwrap_or_default() + Duration::from_secs(2);
    let mut now = t0 + stream.packets.last().map(|(t, _)| *t).unwrap_or_default();
    while now < end && !jitter.is_idle() {
        now = jitter.next_deadline().unwrap_or(end).max(now);
        play(&mut jitter, now, &mut audio, &mut waits, &arrivals);
    }

    waits.sort_by(f64::total_cmp);
    let pct = |p: f64| {
        waits
            .get(((waits.len().max(1) - 1) as f64 * p).round() as usize)
            .copied()
            .unwrap_or(0.0)
    };
    let j = jitter.stats();
    let report = ReplayReport {
        ssrc: stream.ssrc,
        codec: format.to_string(),
        packets: stream.packets.len(),
        seconds: stream.packets.last().map_or(0.0, |(t, _)| t.as_secs_f64()),
        lost: stats.lost(),
        late: j.late,
        duplicates: j.duplicates,
        concealed: j.concealed,
        fec_recovered: j.fec_recovered,
        stretches: j.stretches,
        shrinks: j.shrinks,
        rfc3550_jitter_ms: stats.jitter_secs() * 1000.0,
        added_delay_ms_mean: if waits.is_empty() {
            0.0
        } else {
            waits.iter().sum::<f64>() / waits.len() as f64
        },
        added_delay_ms_p50: pct(0.5),
        added_delay_ms_p99: pct(0.99),
        final_delay_ms: final_delay.map(|d| d.as_secs_f64() * 1000.0),
        samples: audio.len(),
        sample_rate: if matches!(format, PayloadFormat::Opus { .. }) {
            48_000
        } else {
            8_000
        },
    };
    (report, audio)
}

/// Records the UDP datagrams reaching `listen` into an Ethernet pcap file until
/// `silence` passes without one (after the first) or `limit` datagrams.
pub fn capture(
    listen: SocketAddr,
    path: &Path,
    silence: Duration,
    limit: usize,
    ready: impl FnOnce(),
) -> Result<usize, CaptureError> {
    let socket =
        UdpSocket::bind(listen).map_err(|e| file_error(path, format!("bind {listen}: {e}")))?;
    socket
        .set_read_timeout(Some(silence))
        .map_err(|e| file_error(path, e))?;
    let file = std::fs::File::create(path).map_err(|e| file_error(path, e))?;
    let header = PcapHeader {
        datalink: DataLink::ETHERNET,
        ..Default::default()
    };
    let mut writer = PcapWriter::with_header(std::io::BufWriter::new(file), header)
        .map_err(|e| file_error(path, e))?;
    ready();
    let mut buf = vec![0u8; 65_536];
    let mut count = 0;
    loop {
        let (len, from) = match socket.recv_from(&mut buf) {
            Ok(r) => r,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                if count > 0 {
                    break;
                }
                continue;
            }
            Err(e) => return Err(file_error(path, e)),
        };
        let (std::net::IpAddr::V4(src), std::net::IpAddr::V4(dst)) = (from.ip(), listen.ip())
        else {
            return Err(file_error(path, "only IPv4 is recorded"));
        };
        let builder = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .ipv4(src.octets(), dst.octets(), 64)
            .udp(from.port(), listen.port());
        let mut frame = Vec::with_capacity(builder.size(len));
        builder
            .write(&mut frame, &buf[..len])
            .map_err(|e| file_error(path, e))?;
        let timestamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        writer
            .write_packet(&PcapPacket::new(timestamp, frame.len() as u32, &frame))
            .map_err(|e| file_error(path, e))?;
        count += 1;
        if count >= limit {
            break;
        }
    }
    Ok(count)
}
