//! The loudspeaker simulator: an IP loudspeaker endpoint in software.
//!
//! It receives one RTP stream (Opus, PCMU or PCMA), runs the adaptive jitter buffer,
//! decodes on the playout clock (Opus loss concealment and in-band FEC included),
//! writes what it heard to a WAV file or plays it on a sound card, sends RTCP receiver
//! reports to the sender, and ends when the sender says BYE and the buffer has played
//! out. Its statistics include one-way latency: each packet's arrival time against the
//! wall-clock time its media was sent, which the sender reports give (RFC 3550 §6.4.1).
//! The sender and the simulator must share a clock (the same host, or NTP).
//!
//! [`Receiver`] is the sans-IO core; [`run`] is the task around it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use codecs::WavSink;
use codecs::g711::{self, G711Law};
use codecs::opus::{FRAME_SAMPLES, OpusDecoder};
use drivers::rtp::jitter::{JitterBuffer, JitterConfig, Playout};
use drivers::rtp::ntp::{NtpAnchor, NtpTimestamp, ntp_diff_secs};
use drivers::rtp::packet::RtpHeader;
use drivers::rtp::payload::PayloadFormat;
use drivers::rtp::rtcp::{CompoundSpec, RtcpEvent, SenderInfo, build_compound, parse_compound};
use drivers::rtp::session::RtcpSchedule;
use drivers::rtp::stats::ReceiverStats;
use serde::{Deserialize, Serialize};
use tokio::net::UdpSocket;
use tracing::{debug, info, warn};

/// Settings of one simulated loudspeaker.
#[derive(Debug, Clone)]
pub struct SpeakerOptions {
    pub name: String,
    pub listen: SocketAddr,
    pub format: PayloadFormat,
    pub wav: Option<PathBuf>,
    pub play: bool,
    pub stats: Option<PathBuf>,
    pub rtcp_interval: Duration,
    /// Give up when no stream has started after this long.
    pub wait_limit: Duration,
    /// Take a stream as ended after this long without a packet, BYE or not.
    pub silence_limit: Duration,
    /// How many streams to take one after the other before stopping; 0 for no limit
    /// (a loudspeaker on a pole, which hears every alert that comes).
    pub streams: u32,
}

/// What a loudspeaker reports when its stream ends.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SpeakerReport {
    pub name: String,
    pub codec: String,
    pub ssrc: Option<u32>,
    pub received: u64,
    pub expected: u64,
    pub lost: i64,
    pub late: u64,
    pub duplicates: u64,
    pub concealed: u64,
    pub fec_recovered: u64,
    pub jitter_ms: f64,
    pub latency_ms_p50: Option<f64>,
    pub latency_ms_p99: Option<f64>,
    pub playout_delay_ms: Option<f64>,
    pub seconds_written: f64,
    pub sample_rate: u32,
    pub ended_by_bye: bool,
    pub foreign_packets: u64,
    pub malformed_packets: u64,
}

/// The receiving core of a loudspeaker.
pub struct Receiver {
    format: PayloadFormat,
    origin: Instant,
    anchor: NtpAnchor,
    own_ssrc: u32,
    ssrc: Option<u32>,
    jitter: JitterBuffer,
    stats: Option<ReceiverStats>,
    /// (RTP timestamp, arrival NTP) of every packet, for latency.
    arrivals: Vec<(u32, NtpTimestamp)>,
    last_sr: Option<SenderInfo>,
    sender_rtcp: Option<SocketAddr>,
    bye: bool,
    malformed: u64,
    foreign: u64,
    opus: Option<OpusDecoder>,
    pcm: Vec<i16>,
}

/// Audio for one playout slot.
pub enum Heard<'a> {
    Audio(&'a [i16]),
    /// A slot with nothing to play (the sender paused, or nothing has arrived yet):
    /// this many samples of silence, which matter only if audio follows.
    Gap(usize),
    /// The stream has been played out.
    Ended,
}

impl Receiver {
    pub fn new(format: PayloadFormat, origin: Instant, anchor: NtpAnchor) -> Self {
        let config = JitterConfig::for_clock(format.clock_rate(), format.has_inband_fec());
        let opus = matches!(format, PayloadFormat::Opus { .. })
            .then(|| OpusDecoder::new().ok())
            .flatten();
        Receiver {
            format,
            origin,
            anchor,
            own_ssrc: rand::random(),
            ssrc: None,
            jitter: JitterBuffer::new(config, origin),
            stats: None,
            arrivals: Vec::new(),
            last_sr: None,
            sender_rtcp: None,
            bye: false,
            malformed: 0,
            foreign: 0,
            opus,
            pcm: vec![0; FRAME_SAMPLES * 6],
        }
    }

    /// Samples per second of the audio this receiver produces.
    pub fn sample_rate(&self) -> u32 {
        match self.format {
            PayloadFormat::Opus { .. } => 48_000,
            _ => 8_000,
        }
    }

    pub fn has_stream(&self) -> bool {
        self.ssrc.is_some()
    }

    /// The source being played, once a stream has started.
    pub fn ssrc(&self) -> Option<u32> {
        self.ssrc
    }

    /// Takes an RTP datagram.
    pub fn on_rtp(&mut self, datagram: &[u8], from: SocketAddr, now: Instant) {
        let Ok(header) = RtpHeader::parse(datagram) else {
            self.malformed += 1;
            return;
        };
        if header.payload_type != self.format.payload_type() {
            self.malformed += 1;
            return;
        }
        let ssrc = *self.ssrc.get_or_insert(header.ssrc);
        // Packets of the stream still count after its BYE: they may have been overtaken
        // by it on the way.
        if ssrc != header.ssrc {
            self.foreign += 1;
            return;
        }
        let payload = header.payload(datagram);
        let duration = match self.format {
            PayloadFormat::Opus { .. } => match drivers::rtp::opus::packet_samples(payload) {
                Ok(samples) => samples,
                Err(_) => {
                    self.malformed += 1;
                    return;
                }
            },
            _ => drivers::rtp::g711::packet_samples(payload),
        };
        if self.sender_rtcp.is_none() {
            self.sender_rtcp = Some(SocketAddr::new(from.ip(), from.port().saturating_add(1)));
        }
        let stats = self
            .stats
            .get_or_insert_with(|| ReceiverStats::new(ssrc, self.format.clock_rate(), self.origin));
        stats.on_packet(header.sequence, header.timestamp, now);
        self.arrivals.push((header.timestamp, self.anchor.ntp(now)));
        if let drivers::rtp::jitter::Inserted::Duplicate =
            self.jitter
                .insert(now, header.sequence, header.timestamp, duration, payload)
        {
            stats.on_duplicate();
        }
    }

    /// Takes an RTCP datagram.
    pub fn on_rtcp(&mut self, datagram: &[u8], from: SocketAddr, now: Instant) {
        let Ok(events) = parse_compound(datagram) else {
            self.malformed += 1;
            return;
        };
        for event in events {
            match event {
                RtcpEvent::SenderReport(info) if Some(info.ssrc) == self.ssrc => {
                    self.last_sr = Some(info);
                    self.sender_rtcp = Some(from);
                    if let Some(stats) = self.stats.as_mut() {
                        stats.on_sender_report(info.ntp, now);
                    }
                }
                RtcpEvent::Bye { ssrcs, .. } if self.ssrc.is_some_and(|s| ssrcs.contains(&s)) => {
                    self.bye = true;
                }
                _ => {}
            }
        }
    }

    /// The receiver report to send now, and where.
    pub fn report(&mut self, now: Instant, cname: &str) -> Option<(SocketAddr, Vec<u8>)> {
        let to = self.sender_rtcp?;
        let block = self.stats.as_mut()?.report_block(now);
        let spec = CompoundSpec {
            ssrc: self.own_ssrc,
            sender: None,
            blocks: &[block],
            cname,
            bye_reason: None,
            note: None,
        };
        build_compound(&spec).ok().map(|d| (to, d))
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        self.jitter.next_deadline()
    }

    /// True once the sender said BYE and everything received has played.
    pub fn finished(&self) -> bool {
        self.bye && self.jitter.is_empty()
    }

    /// Whether the sender has said BYE.
    pub fn bye_received(&self) -> bool {
        self.bye
    }

    /// The audio of the slot due at `now`, if any.
    pub fn poll(&mut self, now: Instant) -> Option<Heard<'_>> {
        if self.finished() {
            return Some(Heard::Ended);
        }
        let slot = self.jitter.poll(now)?;
        let frame = (self.format.clock_rate() / 50) as usize;
        if matches!(slot.playout, Playout::Underrun | Playout::Silence) {
            return Some(Heard::Gap(frame));
        }
        let pcm = &mut self.pcm;
        let produced = match (&slot.playout, self.format, self.opus.as_mut()) {
            (Playout::Packet(payload), PayloadFormat::Opus { .. }, Some(decoder)) => {
                decoder.decode(payload, pcm).ok()
            }
            (Playout::Fec(next), PayloadFormat::Opus { .. }, Some(decoder)) => {
                decoder.decode_fec(next, pcm).ok()
            }
            (Playout::Conceal | Playout::Stretch, PayloadFormat::Opus { .. }, Some(decoder)) => {
                decoder.conceal(pcm).ok()
            }
            (Playout::Packet(payload), PayloadFormat::Pcmu | PayloadFormat::Pcma, _) => {
                let law = if self.format == PayloadFormat::Pcmu {
                    G711Law::MuLaw
                } else {
                    G711Law::ALaw
                };
                let mut decoded = Vec::with_capacity(payload.len());
                g711::decode(law, payload, &mut decoded);
                let len = decoded.len().min(pcm.len());
                pcm[..len].copy_from_slice(&decoded[..len]);
                Some(len)
            }
            _ => None,
        };
        // Anything not decoded (a G.711 loss, a corrupt packet) plays as one frame of
        // silence so the recording keeps time.
        let len = produced.unwrap_or_else(|| {
            pcm[..frame].fill(0);
            frame
        });
        Some(Heard::Audio(&self.pcm[..len]))
    }

    /// True when nothing is playing or waiting to play.
    pub fn is_idle(&self) -> bool {
        self.jitter.is_idle()
    }

    /// The report of the stream so far.
    pub fn summary(&self, name: &str, seconds_written: f64) -> SpeakerReport {
        let jitter = self.jitter.stats();
        let mut latencies: Vec<f64> = match &self.last_sr {
            Some(sr) => {
                let clock = f64::from(self.format.clock_rate());
                self.arrivals
                    .iter()
                    .map(|(ts, arrival)| {
                        let media_offset =
                            f64::from(ts.wrapping_sub(sr.rtp_timestamp) as i32) / clock;
                        (ntp_diff_secs(*arrival, sr.ntp) - media_offset) * 1000.0
                    })
                    .collect()
            }
            None => Vec::new(),
        };
        latencies.sort_by(f64::total_cmp);
        let percentile = |p: f64| {
            (!latencies.is_empty())
                .then(|| latencies[((latencies.len() - 1) as f64 * p).round() as usize])
        };
        let stats = self.stats.as_ref();
        SpeakerReport {
            name: name.to_string(),
            codec: self.format.to_string(),
            ssrc: self.ssrc,
            received: stats.map_or(0, |s| s.received()),
            expected: stats.map_or(0, |s| s.expected()),
            lost: stats.map_or(0, |s| s.lost()),
            late: jitter.late,
            duplicates: jitter.duplicates,
            concealed: jitter.concealed,
            fec_recovered: jitter.fec_recovered,
            jitter_ms: stats.map_or(0.0, |s| s.jitter_secs() * 1000.0),
            latency_ms_p50: percentile(0.5),
            latency_ms_p99: percentile(0.99),
            playout_delay_ms: self.jitter.delay().map(|d| d.as_secs_f64() * 1000.0),
            seconds_written,
            sample_rate: self.sample_rate(),
            ended_by_bye: self.bye,
            foreign_packets: self.foreign,
            malformed_packets: self.malformed,
        }
    }
}

/// Why the simulator stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum SpeakerError {
    #[error("cannot bind {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("socket: {0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Wav(#[from] codecs::AudioFileError),
    #[error("no stream arrived within {0:?}")]
    NoStream(Duration),
    #[error("cannot write statistics: {0}")]
    Stats(String),
}

fn bind(addr: SocketAddr) -> Result<UdpSocket, SpeakerError> {
    let socket =
        std::net::UdpSocket::bind(addr).map_err(|source| SpeakerError::Bind { addr, source })?;
    socket.set_nonblocking(true)?;
    Ok(UdpSocket::from_std(socket)?)
}

/// Runs one simulated loudspeaker until its last stream has ended; returns the report
/// of that stream.
pub async fn run(options: SpeakerOptions) -> Result<SpeakerReport, SpeakerError> {
    let rtp = bind(options.listen)?;
    let rtcp_addr = SocketAddr::new(options.listen.ip(), options.listen.port().saturating_add(1));
    let rtcp = bind(rtcp_addr)?;
    // The line a supervising process waits for before starting the senders.
    println!("listening {} {}", options.name, rtp.local_addr()?);

    let origin = Instant::now();
    let mut receiver = Receiver::new(options.format, origin, NtpAnchor::now());
    let mut wav = match &options.wav {
        Some(path) => Some(WavSink::create(path, receiver.sample_rate())?),
        None => None,
    };
    let playback = if options.play {
        match drivers::audio::open_playback(None) {
            Ok(p) if receiver.sample_rate() == 48_000 => Some(p),
            Ok(_) => {
                warn!(
                    "the sound card path plays 48 kHz only; G.711 audio goes to the WAV file alone"
                );
                None
            }
            Err(e) => {
                warn!(error = %e, "no sound card: not playing");
                None
            }
        }
    } else {
        None
    };
    let mut schedule = RtcpSchedule::new(options.rtcp_interval);
    let cname = format!("{}@emcomm-bench", options.name);
    let mut buf = vec![0u8; 2048];
    let mut rtcp_buf = vec![0u8; 2048];
    let mut samples_written: u64 = 0;
    let mut pending_gap: usize = 0;
    let mut last_packet = Instant::now();
    let mut streams_heard = 0u32;

    loop {
        let now = Instant::now();
        if !receiver.has_stream()
            && streams_heard == 0
            && now.duration_since(origin) > options.wait_limit
        {
            return Err(SpeakerError::NoStream(options.wait_limit));
        }
        if receiver.has_stream()
            && now.duration_since(last_packet) > options.silence_limit
            && receiver.is_idle()
        {
            warn!(name = %options.name, "stream went silent without BYE");
            streams_heard += 1;
            if options.streams != 0 && streams_heard >= options.streams {
                break;
            }
            receiver = Receiver::new(options.format, Instant::now(), NtpAnchor::now());
            schedule = RtcpSchedule::new(options.rtcp_interval);
            continue;
        }
        let mut ended = false;
        while let Some(heard) = receiver.poll(now) {
            match heard {
                Heard::Gap(len) => pending_gap += len,
                Heard::Audio(samples) => {
                    if pending_gap > 0 {
                        let silence = vec![0i16; pending_gap];
                        if let Some(w) = wav.as_mut() {
                            w.write(&silence)?;
                        }
                        samples_written += pending_gap as u64;
                        pending_gap = 0;
                    }
                    if let Some(w) = wav.as_mut() {
                        w.write(samples)?;
                    }
                    if let Some(p) = &playback {
                        p.play(samples.to_vec());
                    }
                    samples_written += samples.len() as u64;
                }
                Heard::Ended => {
                    ended = true;
                    break;
                }
            }
        }
        if ended {
            streams_heard += 1;
            if options.streams != 0 && streams_heard >= options.streams {
                break;
            }
            // The next stream starts afresh: its own SSRC, sequence and statistics.
            if let Some((to, datagram)) = receiver.report(Instant::now(), &cname) {
                let _ = rtcp.send_to(&datagram, to).await;
            }
            if let Some(w) = wav.as_mut() {
                w.flush()?;
            }
            let report = receiver.summary(&options.name, 0.0);
            info!(name = %options.name, ssrc = ?report.ssrc, received = report.received, lost = report.lost, "stream ended, listening for the next");
            receiver = Receiver::new(options.format, Instant::now(), NtpAnchor::now());
            schedule = RtcpSchedule::new(options.rtcp_interval);
            continue;
        }
        if schedule.poll(now) {
            if let Some((to, datagram)) = receiver.report(now, &cname) {
                let _ = rtcp.send_to(&datagram, to).await;
            }
        }
        let deadline = [
            receiver.next_deadline(),
            schedule.next_deadline(),
            Some(now + Duration::from_millis(250)),
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(now + Duration::from_millis(250));
        // RTP first: a BYE sent after the last packet must not be handled before it.
        tokio::select! {
            biased;
            received = rtp.recv_from(&mut buf) => {
                let (len, from) = received?;
                let at = Instant::now();
                if !receiver.has_stream() {
                    info!(name = %options.name, %from, "stream started");
                    schedule.start(at);
                }
                receiver.on_rtp(&buf[..len], from, at);
                // Only the stream being played keeps it alive: another source's packets
                // (a sender that restarted and lost its stream) must not.
                let ssrc = buf.get(8..12).map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
                if ssrc.is_some() && ssrc == receiver.ssrc() {
                    last_packet = at;
                }
            }
            received = rtcp.recv_from(&mut rtcp_buf) => {
                let (len, from) = received?;
                receiver.on_rtcp(&rtcp_buf[..len], from, Instant::now());
                if receiver.bye_received() {
                    debug!(name = %options.name, "BYE received, playing out");
                }
            }
            _ = tokio::time::sleep_until(deadline.into()) => {}
        }
    }

    // A last report so the sender sees the final loss figures.
    if let Some((to, datagram)) = receiver.report(Instant::now(), &cname) {
        let _ = rtcp.send_to(&datagram, to).await;
    }
    if let Some(w) = wav {
        w.finish()?;
    }
    let report = receiver.summary(
        &options.name,
        samples_written as f64 / f64::from(receiver.sample_rate()),
    );
    if let Some(path) = &options.stats {
        let json = serde_json::to_string_pretty(&report)
            .map_err(|e| SpeakerError::Stats(e.to_string()))?;
        std::fs::write(path, json)
            .map_err(|e| SpeakerError::Stats(format!("{}: {e}", path.display())))?;
    }
    info!(
        name = %report.name,
        received = report.received,
        lost = report.lost,
        late = report.late,
        concealed = report.concealed,
        "stream ended"
    );
    Ok(report)
}

#[cfg(test)]
mod tests {
    use drivers::rtp::packetizer::Packetizer;
    use drivers::rtp::rtcp::CompoundSpec;

    use super::*;

    const SENDER: &str = "127.0.0.1:5010";

    fn sender() -> SocketAddr {
        SENDER.parse().expect("addr")
    }

    /// A G.711 stream: 20 ms packets of a constant code, so decoding is exact.
    fn pcmu_packets(count: usize, t0: Instant) -> (Packetizer, Vec<Vec<u8>>) {
        let mut stream = Packetizer::with_origin(PayloadFormat::Pcmu, 0x5eed, 100, 8_000);
        let packets = (0..count)
            .map(|k| stream.packetize(&[0x80; 160], t0 + Duration::from_millis(20 * k as u64)))
            .collect();
        (stream, packets)
    }

    #[test]
    fn latency_is_arrival_against_the_senders_clock_mapping() {
        let t0 = Instant::now();
        // Sender and loudspeaker share the wall clock: the same anchor.
        let anchor = NtpAnchor::new(t0, 0xe000_0000_0000_0000);
        let mut rx = Receiver::new(PayloadFormat::Pcmu, t0, anchor);
        let (stream, packets) = pcmu_packets(50, t0);
        // Every packet arrives 7 ms after it was captured.
        for (k, p) in packets.iter().enumerate() {
            rx.on_rtp(p, sender(), t0 + Duration::from_millis(20 * k as u64 + 7));
        }
        let info = stream
            .sender_info(t0 + Duration::from_millis(500), &anchor)
            .expect("started");
        let sr = build_compound(&CompoundSpec {
            ssrc: info.ssrc,
            sender: Some(info),
            cname: "s",
            ..Default::default()
        })
        .expect("sr");
        rx.on_rtcp(&sr, sender(), t0 + Duration::from_millis(501));
        let report = rx.summary("pole", 1.0);
        let p50 = report.latency_ms_p50.expect("latency from the SR");
        assert!((p50 - 7.0).abs() < 0.01, "{p50} ms");
        assert!((report.latency_ms_p99.expect("p99") - 7.0).abs() < 0.01);
        assert_eq!((report.received, report.lost), (50, 0));
    }

    #[test]
    fn without_a_sender_report_there_is_no_latency_figure() {
        let t0 = Instant::now();
        let mut rx = Receiver::new(PayloadFormat::Pcmu, t0, NtpAnchor::new(t0, 0));
        let (_, packets) = pcmu_packets(3, t0);
        for p in &packets {
            rx.on_rtp(p, sender(), t0);
        }
        assert_eq!(rx.summary("pole", 0.0).latency_ms_p50, None);
    }

    #[test]
    fn after_bye_the_stream_plays_out_and_then_ends() {
        let t0 = Instant::now();
        let mut rx = Receiver::new(PayloadFormat::Pcmu, t0, NtpAnchor::new(t0, 0));
        let (stream, packets) = pcmu_packets(10, t0);
        for (k, p) in packets.iter().enumerate() {
            rx.on_rtp(p, sender(), t0 + Duration::from_millis(20 * k as u64));
        }
        let bye = build_compound(&CompoundSpec {
            ssrc: stream.ssrc(),
            cname: "s",
            bye_reason: Some("end"),
            note: None,
            ..Default::default()
        })
        .expect("bye");
        rx.on_rtcp(&bye, sender(), t0 + Duration::from_millis(200));
        assert!(
            rx.bye_received() && !rx.finished(),
            "packets are still waiting to play"
        );
        let mut samples = 0;
        let mut now = t0;
        let ended = loop {
            match rx.poll(now) {
                Some(Heard::Audio(a)) => {
                    assert!(a.iter().all(|s| *s == codecs::g711::decode_ulaw(0x80)));
                    samples += a.len();
                }
                Some(Heard::Gap(_)) => {}
                Some(Heard::Ended) => break true,
                None if now > t0 + Duration::from_secs(2) => break false,
                None => now += Duration::from_millis(1),
            }
        };
        assert!(ended);
        assert_eq!(samples, 10 * 160, "every packet played before the end");
    }

    #[test]
    fn a_second_source_and_bad_packets_are_counted_not_played() {
        let t0 = Instant::now();
        let mut rx = Receiver::new(PayloadFormat::Pcmu, t0, NtpAnchor::new(t0, 0));
        let (_, packets) = pcmu_packets(2, t0);
        rx.on_rtp(&packets[0], sender(), t0);
        let mut intruder = packets[1].clone();
        intruder[8..12].copy_from_slice(&7u32.to_be_bytes());
        rx.on_rtp(&intruder, sender(), t0);
        rx.on_rtp(&[0x80, 0, 1], sender(), t0);
        let mut wrong_codec = packets[1].clone();
        wrong_codec[1] = 8;
        rx.on_rtp(&wrong_codec, sender(), t0);
        let report = rx.summary("pole", 0.0);
        assert_eq!(
            (
                report.received,
                report.foreign_packets,
                report.malformed_packets
            ),
            (1, 1, 2)
        );
    }
}
