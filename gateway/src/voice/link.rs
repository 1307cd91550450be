//! Voice between gateways on a patch's RTP link, and to a loudspeaker zone: sans-IO
//! cores for both directions.
//!
//! * [`LinkSender`] turns the 20 ms frames a patch routes to the member into RTP in one
//!   payload format (Opus between gateways; Opus or G.711 to loudspeakers). A gap
//!   between overs advances the RTP clock by the time that passed and starts a new
//!   talkspurt (marker bit, RFC 3551 §4.1), so the far end's jitter buffer re-anchors
//!   instead of taking the gap as lateness.
//! * [`LinkReceiver`] plays the far gateway's Opus stream out through an adaptive
//!   jitter buffer, and tells the patch when its "carrier" opens (the first frame of a
//!   talkspurt plays) and drops (nothing has played for the close time, or the sender
//!   said BYE). It follows one source at a time; another SSRC is taken only once the
//!   current one has gone quiet.

use std::time::{Duration, Instant};

use codecs::CodecError;
use codecs::opus::{FRAME_SAMPLES, OpusDecoder};
use drivers::rtp::jitter::{JitterBuffer, JitterConfig, Playout};
use drivers::rtp::packet::RtpHeader;
use drivers::rtp::packetizer::Packetizer;
use drivers::rtp::payload::PayloadFormat;
use drivers::rtp::rtcp::{RtcpEvent, parse_compound};

use super::encoder::FrameEncoder;

/// A pause between frames longer than this ends a talkspurt.
const TALKSPURT_GAP: Duration = Duration::from_millis(60);

/// Empty playout slots after which a link's carrier drops: 200 ms.
const CLOSE_FRAMES: u32 = 10;

/// The playout delay of a link's first talkspurt, before any jitter is measured: links
/// run between gateways on managed networks, and the buffer grows (to 400 ms) where the
/// network asks for more.
const INITIAL_DELAY: Duration = Duration::from_millis(40);

/// The sending side of a link or zone.
pub struct LinkSender {
    encoder: FrameEncoder,
    packetizer: Packetizer,
    last_frame: Option<Instant>,
}

impl LinkSender {
    pub fn new(format: PayloadFormat, opus_bitrate: u32) -> Result<LinkSender, CodecError> {
        Ok(LinkSender {
            encoder: FrameEncoder::new(format, opus_bitrate)?,
            packetizer: Packetizer::new(format),
            last_frame: None,
        })
    }

    pub fn ssrc(&self) -> u32 {
        self.packetizer.ssrc()
    }

    /// Whether a frame was sent within the talkspurt gap before `now`.
    pub fn is_talking(&self, now: Instant) -> bool {
        self.last_frame
            .is_some_and(|last| now.saturating_duration_since(last) <= TALKSPURT_GAP)
    }

    /// The RTP packet carrying `frame`, played at `now`.
    pub fn send(&mut self, frame: &[i16], now: Instant) -> Result<Vec<u8>, CodecError> {
        if let Some(last) = self.last_frame {
            let gap = now.saturating_duration_since(last);
            if gap > TALKSPURT_GAP {
                // The frames not sent during the pause, less the one this packet is.
                let skipped = (gap.as_millis() / 20).saturating_sub(1) as u32;
                self.packetizer.skip_frames(skipped);
            }
        }
        self.last_frame = Some(now);
        let payload = self.encoder.encode(frame)?;
        Ok(self.packetizer.packetize(payload, now))
    }
}

/// What a link's receiving side tells the patch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkEvent {
    /// The far gateway started talking.
    Open,
    Frame(Vec<i16>),
    /// It stopped.
    Close,
}

/// Packets a link receiver did not take, by reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkCounters {
    pub received: u64,
    pub malformed: u64,
    /// From another source while one was active.
    pub foreign: u64,
}

/// The receiving side of a link; see the [module](self) notes.
pub struct LinkReceiver {
    payload_type: u8,
    origin: Instant,
    ssrc: Option<u32>,
    jitter: JitterBuffer,
    decoder: OpusDecoder,
    pcm: Vec<i16>,
    open: bool,
    bye: bool,
    counters: LinkCounters,
}

impl LinkReceiver {
    pub fn new(opus_payload_type: u8, origin: Instant) -> Result<LinkReceiver, CodecError> {
        Ok(LinkReceiver {
            payload_type: opus_payload_type,
            origin,
            ssrc: None,
            jitter: JitterBuffer::new(Self::jitter_config(), origin),
            decoder: OpusDecoder::new()?,
            pcm: vec![0; FRAME_SAMPLES * 6],
            open: false,
            bye: false,
            counters: LinkCounters::default(),
        })
    }

    fn jitter_config() -> JitterConfig {
        JitterConfig {
            idle_frames: CLOSE_FRAMES,
            initial_delay: INITIAL_DELAY,
            ..JitterConfig::for_clock(48_000, true)
        }
    }

    pub fn counters(&self) -> LinkCounters {
        self.counters
    }

    pub fn is_open(&self) -> bool {
        self.open
    }

    /// One RTP datagram from the far gateway.
    pub fn on_rtp(&mut self, datagram: &[u8], now: Instant) {
        let Ok(header) = RtpHeader::parse(datagram) else {
            self.counters.malformed += 1;
            return;
        };
        if header.payload_type != self.payload_type {
            self.counters.malformed += 1;
            return;
        }
        let payload = header.payload(datagram);
        let Ok(duration) = drivers::rtp::opus::packet_samples(payload) else {
            self.counters.malformed += 1;
            return;
        };
        match self.ssrc {
            Some(ssrc) if ssrc == header.ssrc => {}
            Some(_) if !self.jitter.is_idle() => {
                self.counters.foreign += 1;
                return;
            }
            _ => {
                // A new source, or the old one back after going quiet: start afresh.
                self.ssrc = Some(header.ssrc);
                self.jitter = JitterBuffer::new(Self::jitter_config(), self.origin);
                self.bye = false;
            }
        }
        self.counters.received += 1;
        self.jitter
            .insert(now, header.sequence, header.timestamp, duration, payload);
    }

    /// One RTCP datagram from the far gateway: a BYE ends its talk at once.
    pub fn on_rtcp(&mut self, datagram: &[u8]) {
        let Ok(events) = parse_compound(datagram) else {
            self.counters.malformed += 1;
            return;
        };
        for event in events {
            if let RtcpEvent::Bye { ssrcs, .. } = event
                && self.ssrc.is_some_and(|s| ssrcs.contains(&s))
            {
                self.bye = true;
            }
        }
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        self.jitter.next_deadline()
    }

    /// What is due at `now`.
    pub fn poll(&mut self, now: Instant) -> Vec<LinkEvent> {
        let mut events = Vec::new();
        while let Some(slot) = self.jitter.poll(now) {
            let decoded = match &slot.playout {
                Playout::Packet(payload) => self.decoder.decode(payload, &mut self.pcm).ok(),
                Playout::Fec(next) => self.decoder.decode_fec(next, &mut self.pcm).ok(),
                Playout::Conceal | Playout::Stretch if self.open => {
                    self.decoder.conceal(&mut self.pcm).ok()
                }
                _ => None,
            };
            if let Some(len) = decoded {
                if !self.open {
                    self.open = true;
                    events.push(LinkEvent::Open);
                }
                for frame in self.pcm[..len].chunks(FRAME_SAMPLES) {
                    let mut frame = frame.to_vec();
                    frame.resize(FRAME_SAMPLES, 0);
                    events.push(LinkEvent::Frame(frame));
                }
            }
        }
        let ended = self.jitter.is_idle() || (self.bye && self.jitter.is_empty());
        if self.open && ended {
            self.open = false;
            events.push(LinkEvent::Close);
        }
        events
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FRAME: Duration = Duration::from_millis(20);

    fn tone(k: usize) -> Vec<i16> {
        (0..FRAME_SAMPLES)
            .map(|n| {
                let t = (k * FRAME_SAMPLES + n) as f64 / 48_000.0;
                (8000.0 * (std::f64::consts::TAU * 440.0 * t).sin()) as i16
            })
            .collect()
    }

    /// Sends `frames` frames from `start`, delivering each 5 ms later, polling as a
    /// task would; gives the events.
    fn talk(
        sender: &mut LinkSender,
        receiver: &mut LinkReceiver,
        start: Instant,
        frames: usize,
        then_quiet: Duration,
    ) -> Vec<LinkEvent> {
        let mut events = Vec::new();
        for k in 0..frames {
            let at = start + FRAME * k as u32;
            let packet = sender.send(&tone(k), at).expect("encodes");
            receiver.on_rtp(&packet, at + Duration::from_millis(5));
            events.extend(receiver.poll(at + Duration::from_millis(5)));
        }
        let end = start + FRAME * frames as u32 + then_quiet;
        let mut now = start + FRAME * frames as u32;
        while now < end {
            now += Duration::from_millis(5);
            events.extend(receiver.poll(now));
        }
        events
    }

    #[test]
    fn a_talkspurt_opens_the_link_plays_every_frame_and_closes_when_it_stops() {
        let t0 = Instant::now();
        let mut sender = LinkSender::new(PayloadFormat::OPUS, 32_000).expect("encoder");
        let mut receiver = LinkReceiver::new(111, t0).expect("decoder");
        let events = talk(
            &mut sender,
            &mut receiver,
            t0,
            50,
            Duration::from_millis(600),
        );

        assert_eq!(events.first(), Some(&LinkEvent::Open));
        assert_eq!(events.last(), Some(&LinkEvent::Close));
        let frames = events
            .iter()
            .filter(|e| matches!(e, LinkEvent::Frame(_)))
            .count();
        assert!((50..=52).contains(&frames), "{frames} frames");
        assert!(!receiver.is_open());
    }

    #[test]
    fn a_second_over_after_a_pause_opens_the_link_again() {
        let t0 = Instant::now();
        let mut sender = LinkSender::new(PayloadFormat::OPUS, 32_000).expect("encoder");
        let mut receiver = LinkReceiver::new(111, t0).expect("decoder");
        let first = talk(
            &mut sender,
            &mut receiver,
            t0,
            20,
            Duration::from_millis(600),
        );
        let again = t0 + Duration::from_secs(3);
        let second = talk(
            &mut sender,
            &mut receiver,
            again,
            20,
            Duration::from_millis(600),
        );
        for events in [first, second] {
            let opens = events.iter().filter(|e| **e == LinkEvent::Open).count();
            let closes = events.iter().filter(|e| **e == LinkEvent::Close).count();
            assert_eq!((opens, closes), (1, 1), "{events:?}");
        }
    }

    #[test]
    fn another_source_is_ignored_while_one_talks() {
        let t0 = Instant::now();
        let mut first = LinkSender::new(PayloadFormat::OPUS, 32_000).expect("encoder");
        let mut other = LinkSender::new(PayloadFormat::OPUS, 32_000).expect("encoder");
        let mut receiver = LinkReceiver::new(111, t0).expect("decoder");
        for k in 0..10 {
            let at = t0 + FRAME * k;
            receiver.on_rtp(&first.send(&tone(0), at).expect("encodes"), at);
            receiver.on_rtp(&other.send(&tone(0), at).expect("encodes"), at);
            receiver.poll(at);
        }
        assert_eq!(receiver.counters().foreign, 10);
        assert_eq!(receiver.counters().received, 10);
    }

    #[test]
    fn garbage_and_other_payload_types_are_counted_not_played() {
        let t0 = Instant::now();
        let mut receiver = LinkReceiver::new(111, t0).expect("decoder");
        receiver.on_rtp(b"not rtp", t0);
        let mut pcmu = LinkSender::new(PayloadFormat::Pcmu, 32_000).expect("encoder");
        receiver.on_rtp(&pcmu.send(&tone(0), t0).expect("encodes"), t0);
        receiver.on_rtcp(b"\x80");
        assert_eq!(receiver.counters().malformed, 3);
        assert!(receiver.poll(t0 + Duration::from_secs(1)).is_empty());
    }
}
