//! The adaptive jitter buffer: packets in, in any order and at uneven times; one playout
//! slot out per frame, on time.
//!
//! # Contract
//!
//! * [`JitterBuffer::insert`] takes every packet of one source with its arrival instant
//!   and classifies it: queued, late (its playout time has passed), duplicate, or
//!   refused. It never panics and never holds more than `capacity` packets.
//! * [`JitterBuffer::poll`] returns the slot due at or before `now`, if any, and
//!   [`JitterBuffer::next_deadline`] says when the next one falls due. Each slot says
//!   what to decode: the packet itself, the next packet's in-band FEC (Opus, RFC 6716
//!   §2.1.7) when only this one is missing, concealment (PLC) for a loss, silence for a
//!   sender's pause, or a stretch frame while the buffer grows.
//! * Depth follows the measured jitter. The buffer keeps the relative transit time of
//!   the last packets (arrival time minus media time, RFC 3550 §6.4.1) and plays each
//!   frame a *delay* after the fastest recent transit. The target delay is the spread
//!   of recent transits plus a margin, within `[min_delay, max_delay]`. When the target
//!   rises, the buffer grows at once by inserting one concealed frame; when it falls
//!   well below the delay, it shrinks by dropping one frame at most once a second, and
//!   re-anchors at the start of each talkspurt. A talkspurt never starts before its
//!   first packet arrived, nor over media that earlier slots covered: such a packet is
//!   late.
//! * After `idle_frames` empty slots in a row the buffer stops playing; the next packet
//!   starts a new talkspurt.
//! * A caller that polls more than twice `max_delay` after a slot fell due (a stalled
//!   process, a clock jump) gets no burst of missed slots: the buffer skips the packets
//!   whose time has passed and starts again from the first one still ahead.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use super::seq::{SequenceUnwrapper, TimestampUnwrapper};

/// Slots between two shrinks, and before the first one of a talkspurt.
const SHRINK_COOLDOWN_SLOTS: u32 = 50;

/// Frames of delay above the target that are tolerated before shrinking.
const SHRINK_MARGIN_FRAMES: u32 = 3;

/// Tuning of a jitter buffer.
#[derive(Debug, Clone, Copy)]
pub struct JitterConfig {
    /// RTP clock of the stream.
    pub clock_rate: u32,
    /// Timestamp units of one frame (960 for 20 ms Opus, 160 for 20 ms G.711).
    pub frame_step: u32,
    /// Never play earlier than this after the fastest transit.
    pub min_delay: Duration,
    /// Delay at the start of a stream, before any jitter has been measured.
    pub initial_delay: Duration,
    /// Never wait longer than this; later packets are late.
    pub max_delay: Duration,
    /// Added to the measured transit spread.
    pub margin: Duration,
    /// Packets of transit history the target is computed from.
    pub history: usize,
    /// Most packets held at once.
    pub capacity: usize,
    /// Empty slots in a row after which playout stops.
    pub idle_frames: u32,
    /// Whether the codec has in-band FEC to recover a single loss from.
    pub fec: bool,
}

impl JitterConfig {
    /// Defaults for 20 ms frames on a stream with the given clock.
    pub fn for_clock(clock_rate: u32, fec: bool) -> Self {
        JitterConfig {
            clock_rate,
            frame_step: clock_rate / 50,
            min_delay: Duration::from_millis(20),
            initial_delay: Duration::from_millis(60),
            max_delay: Duration::from_millis(400),
            margin: Duration::from_millis(10),
            history: 250,
            capacity: 512,
            idle_frames: 25,
            fec,
        }
    }

    fn frame(&self) -> Duration {
        Duration::from_secs_f64(f64::from(self.frame_step) / f64::from(self.clock_rate))
    }
}

/// What to decode for one playout slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Playout {
    /// The slot's own packet.
    Packet(Vec<u8>),
    /// This slot's packet is lost but the next one is here: decode its FEC data.
    Fec(Vec<u8>),
    /// A lost packet: conceal.
    Conceal,
    /// No packet was sent for this slot (the sender paused): play silence or comfort
    /// noise.
    Silence,
    /// The buffer is growing: one extra concealed frame, nothing was lost.
    Stretch,
    /// Nothing buffered yet for this slot (the stream is late or has ended).
    Underrun,
}

/// One playout slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slot {
    /// When the slot was due to play.
    pub due: Instant,
    /// Extended RTP timestamp of the slot's first sample.
    pub timestamp: u64,
    pub playout: Playout,
}

/// What [`JitterBuffer::insert`] did with a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    Queued,
    /// Arrived after its playout time; dropped.
    Late,
    Duplicate,
    /// Too far ahead of playout: the buffer restarted on it.
    Restarted,
}

/// Counters of a jitter buffer's life.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JitterStats {
    pub queued: u64,
    pub late: u64,
    pub duplicates: u64,
    pub played: u64,
    pub fec_recovered: u64,
    pub concealed: u64,
    pub silence: u64,
    pub stretches: u64,
    pub shrinks: u64,
    pub underruns: u64,
    pub restarts: u64,
    /// Times the caller fell so far behind the playout clock that missed slots were
    /// skipped rather than played.
    pub resyncs: u64,
    /// Packets dropped unplayed by a resynchronisation.
    pub skipped: u64,
    pub overflow_drops: u64,
}

#[derive(Debug, Clone)]
struct Buffered {
    sequence: u64,
    duration: u32,
    payload: Vec<u8>,
}

#[derive(Debug, Clone, Copy)]
struct Playing {
    /// Extended timestamp of the next slot.
    next_ts: u64,
    /// Reference relative transit (seconds): the fastest recent packet's.
    reference: f64,
    delay: Duration,
    last_sequence: Option<u64>,
    empty_run: u32,
    shrink_cooldown: u32,
    /// Whether a slot of this talkspurt has been handed out yet.
    started: bool,
}

/// An adaptive jitter buffer for one RTP source. See the module documentation.
#[derive(Debug)]
pub struct JitterBuffer {
    config: JitterConfig,
    origin: Instant,
    timestamps: TimestampUnwrapper,
    sequences: SequenceUnwrapper,
    packets: BTreeMap<u64, Buffered>,
    transits: VecDeque<f64>,
    recently_played: VecDeque<u64>,
    playing: Option<Playing>,
    last_played_ts: Option<u64>,
    /// Extended timestamp where the last slot handed out ends. Media before it has been
    /// played, concealed or skipped; a packet for it is late, also once playout stopped.
    played_until: Option<u64>,
    stats: JitterStats,
}

impl JitterBuffer {
    /// An empty buffer; `origin` is any fixed instant at or before the first arrival.
    pub fn new(config: JitterConfig, origin: Instant) -> Self {
        JitterBuffer {
            config,
            origin,
            timestamps: TimestampUnwrapper::default(),
            sequences: SequenceUnwrapper::default(),
            packets: BTreeMap::new(),
            transits: VecDeque::with_capacity(config.history),
            recently_played: VecDeque::with_capacity(64),
            playing: None,
            last_played_ts: None,
            played_until: None,
            stats: JitterStats::default(),
        }
    }

    pub fn stats(&self) -> JitterStats {
        self.stats
    }

    /// The current playout delay after the fastest recent transit, while playing.
    pub fn delay(&self) -> Option<Duration> {
        self.playing.map(|p| p.delay)
    }

    /// Packets waiting to play.
    pub fn len(&self) -> usize {
        self.packets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.packets.is_empty()
    }

    /// True when nothing is playing and nothing is waiting.
    pub fn is_idle(&self) -> bool {
        self.playing.is_none() && self.packets.is_empty()
    }

    fn media_secs(&self, ts: u64) -> f64 {
        ts as f64 / f64::from(self.config.clock_rate)
    }

    fn transit(&self, ts: u64, arrival: Instant) -> f64 {
        arrival.saturating_duration_since(self.origin).as_secs_f64() - self.media_secs(ts)
    }

    /// The delay the measured jitter asks for.
    pub fn target_delay(&self) -> Duration {
        let (Some(playing), Some(max)) =
            (self.playing, self.transits.iter().copied().reduce(f64::max))
        else {
            return self.config.initial_delay;
        };
        let spread = (max - playing.reference).max(0.0);
        (Duration::from_secs_f64(spread) + self.config.margin)
            .clamp(self.config.min_delay, self.config.max_delay)
    }

    fn due(&self, playing: &Playing, ts: u64) -> Instant {
        let secs = self.media_secs(ts) + playing.reference + playing.delay.as_secs_f64();
        self.origin + Duration::from_secs_f64(secs.max(0.0))
    }

    /// Takes one packet of the source. `duration` is its length in timestamp units,
    /// read from the payload by the caller.
    pub fn insert(
        &mut self,
        now: Instant,
        sequence: u16,
        timestamp: u32,
        duration: u32,
        payload: &[u8],
    ) -> Inserted {
        let ts = self.timestamps.extend(u64::from(timestamp));
        let sequence = self.sequences.extend(u64::from(sequence));
        let duration = if duration == 0 {
            self.config.frame_step
        } else {
            duration
        };

        if self.packets.contains_key(&ts) || self.recently_played.contains(&ts) {
            self.stats.duplicates += 1;
            return Inserted::Duplicate;
        }

        let transit = self.transit(ts, now);
        if self.transits.len() == self.config.history {
            self.transits.pop_front();
        }
        self.transits.push_back(transit);

        let mut outcome = Inserted::Queued;
        match self.playing {
            // Before the first slot of a talkspurt is out, an earlier packet that is
            // still in time moves the start back instead of being late, unless the
            // previous talkspurt's slots already covered it.
            Some(mut playing)
                if !playing.started
                    && ts < playing.next_ts
                    && !self.already_played(ts)
                    && self.due(&playing, ts) > now =>
            {
                playing.next_ts = ts;
                self.playing = Some(playing);
            }
            Some(playing) if ts + u64::from(duration) <= playing.next_ts => {
                self.stats.late += 1;
                return Inserted::Late;
            }
            Some(playing) => {
                let horizon = self.config.max_delay * 4;
                if self.due(&playing, ts) > now + horizon {
                    self.restart();
                    outcome = Inserted::Restarted;
                }
            }
            None => {
                if self.already_played(ts) {
                    self.stats.late += 1;
                    return Inserted::Late;
                }
            }
        }

        if self.packets.len() >= self.config.capacity {
            self.packets.pop_first();
            self.stats.overflow_drops += 1;
        }
        self.packets.insert(
            ts,
            Buffered {
                sequence,
                duration,
                payload: payload.to_vec(),
            },
        );
        self.stats.queued += 1;
        if self.playing.is_none() {
            self.start_talkspurt(ts, now);
        }
        outcome
    }

    fn restart(&mut self) {
        self.packets.clear();
        self.transits.clear();
        self.playing = None;
        self.last_played_ts = None;
        self.played_until = None;
        self.stats.restarts += 1;
    }

    /// Begins playout at `ts`, whose packet arrived at `now`, anchored on the fastest
    /// recent transit, or on the packet's own when that one is too old to reach.
    fn start_talkspurt(&mut self, ts: u64, now: Instant) {
        let reference = self
            .transits
            .iter()
            .copied()
            .reduce(f64::min)
            .unwrap_or(0.0);
        let fresh = self.last_played_ts.is_none();
        let mut playing = Playing {
            next_ts: ts,
            reference,
            delay: self.config.initial_delay,
            last_sequence: None,
            empty_run: 0,
            // Let a second of transits be measured before the first shrink.
            shrink_cooldown: SHRINK_COOLDOWN_SLOTS,
            started: false,
        };
        self.playing = Some(playing);
        if !fresh {
            playing.delay = self.target_delay();
        }
        // A packet that came later after the fastest transit than `max_delay` (the
        // network slowed since) would be due before it arrived, and before slots already
        // handed out. The old transits cannot place it: start as a fresh stream does.
        if self.due(&playing, ts) < now {
            playing.reference = self.transit(ts, now);
            playing.delay = self.config.initial_delay;
        }
        self.playing = Some(playing);
    }

    /// When the next slot falls due, if playing.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.playing.as_ref().map(|p| self.due(p, p.next_ts))
    }

    /// The slot due at or before `now`, if any. Call until it returns `None`.
    pub fn poll(&mut self, now: Instant) -> Option<Slot> {
        let mut playing = self.playing?;
        let due = self.due(&playing, playing.next_ts);
        if due > now {
            return None;
        }
        // A caller that has not polled for a long time (a stalled process, a clock
        // jump) would otherwise get every missed slot at once, hours of them at worst.
        if now.saturating_duration_since(due) > self.config.max_delay * 2 {
            self.resynchronise(&playing, due, now);
            return None;
        }
        let frame = self.config.frame();
        let target = self.target_delay();
        playing.started = true;
        playing.shrink_cooldown = playing.shrink_cooldown.saturating_sub(1);

        // Grow at once: a concealed frame in place of media time.
        if playing.delay + frame / 2 < target && playing.delay + frame <= self.config.max_delay {
            playing.delay += frame;
            self.playing = Some(playing);
            self.stats.stretches += 1;
            return Some(Slot {
                due,
                timestamp: playing.next_ts,
                playout: Playout::Stretch,
            });
        }

        // Shrink slowly, only when well above the target, and only where two frames in
        // a row are at hand: a dropped frame is audible, a few ms of delay are not.
        if playing.delay > target + frame * SHRINK_MARGIN_FRAMES && playing.shrink_cooldown == 0 {
            let next = playing.next_ts + u64::from(self.config.frame_step);
            if self.packets.contains_key(&playing.next_ts) && self.packets.contains_key(&next) {
                self.packets.remove(&playing.next_ts);
                playing.next_ts = next;
                playing.delay -= frame;
                playing.shrink_cooldown = SHRINK_COOLDOWN_SLOTS;
                self.stats.shrinks += 1;
            }
        }

        let slot_ts = playing.next_ts;
        let slot_end = slot_ts + u64::from(self.config.frame_step);
        let playout = match self.packets.first_key_value().map(|(ts, _)| *ts) {
            // The head packet starts within this slot (timestamps need not fall on
            // the frame grid: a sender's first packet may be shorter).
            Some(head) if head < slot_end => {
                let packet = self.packets.remove(&head)?;
                playing.next_ts = head + u64::from(packet.duration);
                playing.last_sequence = Some(packet.sequence);
                playing.empty_run = 0;
                self.note_played(head);
                self.stats.played += 1;
                Playout::Packet(packet.payload)
            }
            Some(head) => {
                playing.next_ts = slot_end;
                playing.empty_run = 0;
                let next_sequence = self.packets.get(&head).map(|p| p.sequence);
                let contiguous = matches!(
                    (playing.last_sequence, next_sequence),
                    (Some(last), Some(next)) if next == last + 1
                );
                if contiguous {
                    self.stats.silence += 1;
                    Playout::Silence
                } else if self.config.fec && head < slot_end + u64::from(self.config.frame_step) {
                    self.stats.fec_recovered += 1;
                    Playout::Fec(
                        self.packets
                            .get(&head)
                            .map(|p| p.payload.clone())
                            .unwrap_or_default(),
                    )
                } else {
                    self.stats.concealed += 1;
                    Playout::Conceal
                }
            }
            None => {
                playing.next_ts = slot_end;
                playing.empty_run += 1;
                self.stats.underruns += 1;
                if playing.empty_run >= self.config.idle_frames {
                    self.playing = None;
                    self.played_until = Some(playing.next_ts);
                    return Some(Slot {
                        due,
                        timestamp: slot_ts,
                        playout: Playout::Underrun,
                    });
                }
                Playout::Underrun
            }
        };
        self.playing = Some(playing);
        self.played_until = Some(playing.next_ts);
        Some(Slot {
            due,
            timestamp: slot_ts,
            playout,
        })
    }

    /// Whether media at `ts` lies before the end of the last slot handed out, in this
    /// talkspurt or an earlier one: it can no longer be played.
    fn already_played(&self, ts: u64) -> bool {
        self.played_until.is_some_and(|end| ts < end)
    }

    /// Drops the slots missed since `due` and the packets they held, and starts again
    /// from the first packet still ahead of `now`.
    fn resynchronise(&mut self, playing: &Playing, due: Instant, now: Instant) {
        let missed =
            now.saturating_duration_since(due).as_secs_f64() * f64::from(self.config.clock_rate);
        let now_ts = playing.next_ts.saturating_add(missed as u64);
        let ahead = self.packets.split_off(&now_ts);
        self.stats.skipped += self.packets.len() as u64;
        self.packets = ahead;
        self.stats.resyncs += 1;
        self.playing = None;
        self.last_played_ts = Some(now_ts.saturating_sub(1));
        if let Some(first) = self.packets.first_key_value().map(|(ts, _)| *ts) {
            self.start_talkspurt(first, now);
        }
    }

    fn note_played(&mut self, ts: u64) {
        if self.recently_played.len() == 64 {
            self.recently_played.pop_front();
        }
        self.recently_played.push_back(ts);
        self.last_played_ts = Some(ts);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FRAME: Duration = Duration::from_millis(20);

    /// A packet on the wire: arrival offset, sequence number, timestamp.
    #[derive(Clone, Copy)]
    struct Arrival {
        at: Duration,
        sequence: u16,
        timestamp: u32,
    }

    fn stream(count: u32, first_seq: u16, first_ts: u32, step: u32) -> Vec<Arrival> {
        (0..count)
            .map(|i| Arrival {
                at: FRAME * i,
                sequence: first_seq.wrapping_add(i as u16),
                timestamp: first_ts.wrapping_add(i * step),
            })
            .collect()
    }

    /// Drives a buffer with a fake clock in 1 ms ticks from zero until `until` and
    /// returns every slot.
    fn drive(
        buffer: &mut JitterBuffer,
        t0: Instant,
        arrivals: &[Arrival],
        until: Duration,
    ) -> Vec<Slot> {
        drive_from(buffer, t0, arrivals, Duration::ZERO, until)
    }

    /// Drives a buffer with a fake clock in 1 ms ticks from `from` until `until`.
    fn drive_from(
        buffer: &mut JitterBuffer,
        t0: Instant,
        arrivals: &[Arrival],
        from: Duration,
        until: Duration,
    ) -> Vec<Slot> {
        let mut pending: Vec<Arrival> = arrivals.to_vec();
        pending.sort_by_key(|a| a.at);
        let mut slots = Vec::new();
        let mut now = from;
        let mut next = 0;
        while now <= until {
            while next < pending.len() && pending[next].at <= now {
                let a = pending[next];
                let payload = a.sequence.to_be_bytes();
                buffer.insert(t0 + now, a.sequence, a.timestamp, 0, &payload);
                next += 1;
            }
            while let Some(slot) = buffer.poll(t0 + now) {
                slots.push(slot);
            }
            now += Duration::from_millis(1);
        }
        slots
    }

    fn played_sequences(slots: &[Slot]) -> Vec<u16> {
        slots
            .iter()
            .filter_map(|s| match &s.playout {
                Playout::Packet(p) => Some(u16::from_be_bytes([p[0], p[1]])),
                _ => None,
            })
            .collect()
    }

    fn opus_buffer(t0: Instant) -> JitterBuffer {
        JitterBuffer::new(JitterConfig::for_clock(48_000, true), t0)
    }

    #[test]
    fn a_steady_stream_plays_every_packet_once_in_order_after_the_initial_delay() {
        let t0 = Instant::now();
        let mut jb = opus_buffer(t0);
        let slots = drive(&mut jb, t0, &stream(100, 7, 0, 960), Duration::from_secs(3));
        assert_eq!(played_sequences(&slots), (7..107).collect::<Vec<u16>>());
        assert_eq!(slots[0].due, t0 + Duration::from_millis(60));
        let stats = jb.stats();
        assert_eq!((stats.late, stats.concealed, stats.stretches), (0, 0, 0));
        assert!(jb.is_idle(), "playout stops after the stream ends");
    }

    #[test]
    fn sequence_and_timestamp_wrap_around_play_continuously() {
        let t0 = Instant::now();
        let mut jb = opus_buffer(t0);
        let arrivals = stream(50, 65_510, u32::MAX - 960 * 20 + 1, 960);
        let slots = drive(&mut jb, t0, &arrivals, Duration::from_secs(2));
        let expected: Vec<u16> = (0..50u16).map(|i| 65_510u16.wrapping_add(i)).collect();
        assert_eq!(played_sequences(&slots), expected);
        assert_eq!(jb.stats().concealed + jb.stats().late, 0);
    }

    #[test]
    fn swapped_pairs_are_put_back_in_order() {
        let t0 = Instant::now();
        let mut jb = opus_buffer(t0);
        let mut arrivals = stream(40, 0, 0, 960);
        for pair in arrivals.chunks_mut(2) {
            let at = pair[0].at;
            pair[0].at = pair[1].at;
            pair[1].at = at;
        }
        let slots = drive(&mut jb, t0, &arrivals, Duration::from_secs(2));
        assert_eq!(played_sequences(&slots), (0..40).collect::<Vec<u16>>());
        assert_eq!(jb.stats().late, 0);
    }

    #[test]
    fn a_single_loss_is_rebuilt_from_the_next_packets_fec() {
        let t0 = Instant::now();
        let mut jb = opus_buffer(t0);
        let arrivals: Vec<Arrival> = stream(20, 0, 0, 960)
            .into_iter()
            .filter(|a| a.sequence != 5)
            .collect();
        let slots = drive(&mut jb, t0, &arrivals, Duration::from_secs(2));
        let fec: Vec<&Slot> = slots
            .iter()
            .filter(|s| matches!(s.playout, Playout::Fec(_)))
            .collect();
        assert_eq!(fec.len(), 1);
        assert_eq!(fec[0].timestamp, (1u64 << 32) + 5 * 960);
        assert_eq!(fec[0].playout, Playout::Fec(6u16.to_be_bytes().to_vec()));
        assert_eq!(jb.stats().fec_recovered, 1);
    }

    #[test]
    fn without_fec_a_burst_loss_is_concealed_frame_by_frame() {
        let t0 = Instant::now();
        let mut jb = JitterBuffer::new(JitterConfig::for_clock(8_000, false), t0);
        let arrivals: Vec<Arrival> = stream(20, 0, 0, 160)
            .into_iter()
            .filter(|a| !(5..8).contains(&a.sequence))
            .collect();
        let slots = drive(&mut jb, t0, &arrivals, Duration::from_secs(2));
        assert_eq!(jb.stats().concealed, 3);
        assert_eq!(played_sequences(&slots).len(), 17);
    }

    #[test]
    fn a_packet_after_its_playout_time_is_late_and_its_slot_concealed() {
        let t0 = Instant::now();
        let mut jb = opus_buffer(t0);
        let mut arrivals = stream(20, 0, 0, 960);
        arrivals[10].at += Duration::from_millis(500);
        let slots = drive(&mut jb, t0, &arrivals, Duration::from_secs(2));
        assert_eq!(jb.stats().late, 1);
        assert!(!played_sequences(&slots).contains(&10));
        // The slot was covered from the next packet's FEC.
        assert_eq!(jb.stats().fec_recovered, 1);
    }

    #[test]
    fn jittery_arrivals_grow_the_depth_until_nothing_is_late() {
        let t0 = Instant::now();
        let mut jb = opus_buffer(t0);
        // Deterministic jitter: 0..=90 ms in a repeating pattern.
        let pattern = [0u64, 70, 10, 90, 30, 0, 50, 20, 80, 40];
        let mut arrivals = stream(500, 0, 0, 960);
        for (i, a) in arrivals.iter_mut().enumerate() {
            a.at += Duration::from_millis(pattern[i % pattern.len()]);
        }
        // Packet 250 is the first to arrive at or after 5 s.
        let learnt_at = Duration::from_millis(4_999);
        drive(&mut jb, t0, &arrivals[..250], learnt_at);
        let late_while_learning = jb.stats().late;
        let slots = drive_from(
            &mut jb,
            t0,
            &arrivals[250..],
            learnt_at + Duration::from_millis(1),
            Duration::from_secs(11),
        );
        let stats = jb.stats();
        assert!(stats.stretches >= 1, "the buffer grew");
        assert_eq!(
            stats.late, late_while_learning,
            "no packet is late once the depth is learnt"
        );
        assert!(played_sequences(&slots).len() >= 249);
        // 60 ms initial delay, one frame per stretch: the learnt depth covers the
        // 90 ms spread plus the 10 ms margin.
        let learnt_ms = 60 + 20 * (stats.stretches as i64 - stats.shrinks as i64);
        assert!((100..=120).contains(&learnt_ms), "{learnt_ms} ms");
    }

    #[test]
    fn a_calm_stream_after_a_jittery_start_shrinks_the_depth() {
        let t0 = Instant::now();
        let mut config = JitterConfig::for_clock(48_000, true);
        config.history = 50;
        let mut jb = JitterBuffer::new(config, t0);
        let mut arrivals = stream(600, 0, 0, 960);
        for a in arrivals.iter_mut().take(60).skip(1).step_by(3) {
            a.at += Duration::from_millis(150);
        }
        let (first, rest) = arrivals.split_at(100);
        drive(&mut jb, t0, first, Duration::from_millis(2_000));
        let grown = jb.delay().expect("playing");
        drive_from(
            &mut jb,
            t0,
            rest,
            Duration::from_millis(2_001),
            Duration::from_millis(11_000),
        );
        assert!(jb.stats().shrinks >= 1);
        assert!(grown > Duration::from_millis(150), "{grown:?}");
        let delay = jb.delay();
        assert!(delay.is_none() || delay < Some(grown));
    }

    #[test]
    fn a_pause_with_contiguous_sequence_numbers_is_silence_not_loss() {
        let t0 = Instant::now();
        let mut jb = opus_buffer(t0);
        let mut arrivals = stream(10, 0, 0, 960);
        // The sender paused 5 frames (timestamps jump, sequence does not).
        arrivals.extend(stream(10, 10, 15 * 960, 960).into_iter().map(|mut a| {
            a.at += FRAME * 15;
            a
        }));
        // The first pause slots fall due before the next packet has arrived: the
        // buffer cannot tell a pause yet and reports an underrun; none is a loss.
        let slots = drive(&mut jb, t0, &arrivals, Duration::from_secs(2));
        assert_eq!(played_sequences(&slots), (0..20).collect::<Vec<u16>>());
        assert!(jb.stats().silence >= 1);
        assert_eq!(jb.stats().concealed, 0);
    }

    #[test]
    fn a_packet_whose_slot_passed_before_playout_stopped_is_late_not_a_new_talkspurt() {
        let t0 = Instant::now();
        let mut jb = opus_buffer(t0);
        // Packets 0 to 8 play; packet 9 is held up so long that 25 empty slots stop
        // playout before it arrives.
        let slots = drive(&mut jb, t0, &stream(9, 0, 0, 960), Duration::from_secs(2));
        assert!(jb.is_idle());
        let last_due = slots.last().expect("slots were played").due;

        let straggler = jb.insert(t0 + Duration::from_secs(2), 9, 9 * 960, 0, &[9]);
        assert_eq!(straggler, Inserted::Late);
        assert_eq!(jb.next_deadline(), None);
        assert_eq!(jb.poll(t0 + Duration::from_secs(2)), None);

        // A packet after the end of playout starts the next talkspurt, later in time.
        let next = jb.insert(t0 + Duration::from_secs(2), 10, 40 * 960, 0, &[10]);
        assert_eq!(next, Inserted::Queued);
        assert!(jb.next_deadline().is_some_and(|due| due > last_due));
    }

    #[test]
    fn a_talkspurt_after_the_network_slowed_past_max_delay_starts_when_its_first_packet_arrives() {
        let t0 = Instant::now();
        let mut jb = opus_buffer(t0);
        drive(&mut jb, t0, &stream(10, 0, 0, 960), Duration::from_secs(2));
        assert!(jb.is_idle());

        // The second talkspurt, 2 s of media later, arrives 600 ms later than the first
        // one's transit: more than the 400 ms the delay may reach.
        let slow = Duration::from_millis(600);
        let arrivals: Vec<Arrival> = stream(10, 10, 100 * 960, 960)
            .into_iter()
            .map(|a| Arrival {
                at: a.at + Duration::from_secs(2) + slow,
                ..a
            })
            .collect();
        let slots = drive_from(
            &mut jb,
            t0,
            &arrivals,
            Duration::from_millis(2_001),
            Duration::from_secs(4),
        );
        assert_eq!(played_sequences(&slots), (10..20).collect::<Vec<u16>>());
        assert_eq!(jb.stats().late, 0);
        // Played as a fresh stream plays: the initial 60 ms after the first arrival.
        assert_eq!(slots[0].due, t0 + Duration::from_millis(2_660));
    }

    #[test]
    fn a_caller_that_stalls_for_seconds_skips_ahead_instead_of_bursting() {
        let t0 = Instant::now();
        let mut jb = opus_buffer(t0);
        // Packets keep arriving for 6 s but nobody polls from 1 s to 5 s.
        let arrivals = stream(300, 0, 0, 960);
        let mut slots = drive(&mut jb, t0, &arrivals[..50], Duration::from_secs(1));
        for a in &arrivals[50..250] {
            jb.insert(
                t0 + a.at,
                a.sequence,
                a.timestamp,
                960,
                &a.sequence.to_be_bytes(),
            );
        }
        let resumed = t0 + Duration::from_secs(5);
        let mut burst = 0;
        while jb.poll(resumed).is_some() {
            burst += 1;
        }
        assert_eq!(burst, 0, "no slot is handed out for the stalled time");
        assert_eq!(jb.stats().resyncs, 1);
        slots.extend(drive_from(
            &mut jb,
            t0,
            &arrivals[250..],
            Duration::from_millis(5_001),
            Duration::from_secs(7),
        ));
        let played = played_sequences(&slots);
        assert!(
            played.contains(&40) && played.contains(&299),
            "plays before and after the stall"
        );
        assert!(!played.contains(&150), "the stalled time is skipped");
    }

    #[test]
    fn duplicates_are_counted_and_played_once() {
        let t0 = Instant::now();
        let mut jb = opus_buffer(t0);
        let mut arrivals = stream(10, 0, 0, 960);
        arrivals.push(Arrival {
            at: Duration::from_millis(45),
            sequence: 2,
            timestamp: 1920,
        });
        arrivals.push(Arrival {
            at: Duration::from_millis(300),
            sequence: 3,
            timestamp: 2880,
        });
        let slots = drive(&mut jb, t0, &arrivals, Duration::from_secs(1));
        assert_eq!(played_sequences(&slots), (0..10).collect::<Vec<u16>>());
        assert_eq!(jb.stats().duplicates, 2);
    }

    #[test]
    fn a_packet_from_before_the_start_that_is_still_in_time_leads_the_talkspurt() {
        let t0 = Instant::now();
        let mut jb = opus_buffer(t0);
        let mut arrivals = stream(10, 0, 0, 960);
        arrivals[0].at = Duration::from_millis(25);
        let slots = drive(&mut jb, t0, &arrivals, Duration::from_secs(1));
        assert_eq!(played_sequences(&slots), (0..10).collect::<Vec<u16>>());
    }

    #[test]
    fn the_buffer_never_holds_more_than_its_capacity() {
        let t0 = Instant::now();
        let mut config = JitterConfig::for_clock(48_000, true);
        config.capacity = 8;
        let mut jb = JitterBuffer::new(config, t0);
        for i in 0..20u16 {
            jb.insert(t0, i, u32::from(i) * 960, 960, &[0]);
        }
        assert_eq!(jb.len(), 8);
        assert_eq!(jb.stats().overflow_drops, 12);
    }

    #[test]
    fn a_timestamp_far_ahead_restarts_the_buffer() {
        let t0 = Instant::now();
        let mut jb = opus_buffer(t0);
        jb.insert(t0, 1, 0, 960, &[0]);
        let outcome = jb.insert(t0, 2, 48_000 * 60, 960, &[0]);
        assert_eq!(outcome, Inserted::Restarted);
        assert_eq!(jb.len(), 1);
    }
}
