//! One radio on its accessory port, both directions, sans-IO: receive audio and COS
//! in, transmissions and DTMF digits out; audio to transmit in, PTT and transmit
//! audio out.
//!
//! The radio is half duplex: while the port transmits, what the receive side hears is
//! its own transmission leaking back through the interface, or nothing, and is never
//! passed on. Receive resumes with the first frame after PTT drops.
//!
//! Loop for the caller:
//!
//! 1. feed [`RadioPort::on_cos`], [`RadioPort::on_rx_frame`] and
//!    [`RadioPort::transmit`] as their inputs arrive, with `now`;
//! 2. call [`RadioPort::poll`] at [`RadioPort::next_deadline`];
//! 3. after each call, carry out [`RadioPort::drain`]: key or release PTT, play a
//!    frame, pass a transmission's audio to the patch.

use std::time::{Duration, Instant};

use codecs::dtmf::DtmfDecoder;

use super::carrier::{CarrierDetector, RxCounters, RxEvent, RxSettings};
use super::ptt::{Frame, PttAction, PttCounters, PttKeyer, PttTiming, UnkeyReason};

/// What the port tells its caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortOutput {
    /// Key the transmitter.
    Key,
    /// Release it.
    Unkey {
        reason: UnkeyReason,
        keyed_for: Duration,
    },
    /// Play this frame on the transmit audio.
    Play(Frame),
    /// A transmission heard by the radio began.
    RxOpen,
    /// A frame of it, for the patch.
    RxAudio(Frame),
    /// It ended.
    RxClose,
    /// A DTMF digit heard in it.
    Dtmf(char),
}

/// A radio port; see the [module](self) loop.
#[derive(Debug)]
pub struct RadioPort {
    rx: CarrierDetector,
    tx: PttKeyer,
    dtmf: DtmfDecoder,
    out: Vec<PortOutput>,
    scratch_rx: Vec<RxEvent>,
    scratch_tx: Vec<PttAction>,
}

impl RadioPort {
    pub fn new(rx: RxSettings, tx: PttTiming) -> RadioPort {
        RadioPort {
            rx: CarrierDetector::new(rx),
            tx: PttKeyer::new(tx),
            dtmf: DtmfDecoder::new(),
            out: Vec::new(),
            scratch_rx: Vec::new(),
            scratch_tx: Vec::new(),
        }
    }

    pub fn is_keyed(&self) -> bool {
        self.tx.is_keyed()
    }

    pub fn is_receiving(&self) -> bool {
        self.rx.is_open()
    }

    pub fn is_timed_out(&self) -> bool {
        self.tx.is_timed_out()
    }

    pub fn rx_counters(&self) -> RxCounters {
        self.rx.counters()
    }

    pub fn tx_counters(&self) -> PttCounters {
        self.tx.counters()
    }

    /// The COS line changed (after inversion).
    pub fn on_cos(&mut self, present: bool) {
        self.rx.on_cos(present);
    }

    /// One 20 ms frame of receive audio.
    pub fn on_rx_frame(&mut self, frame: Frame, now: Instant) {
        if self.tx.is_keyed() {
            // Half duplex: nothing heard while transmitting is passed on.
            self.reset_rx();
            return;
        }
        self.rx.on_frame(frame, now, &mut self.scratch_rx);
        for event in self.scratch_rx.drain(..) {
            match event {
                RxEvent::Open => self.out.push(PortOutput::RxOpen),
                RxEvent::Close => {
                    self.dtmf.reset();
                    self.out.push(PortOutput::RxClose);
                }
                RxEvent::Audio(frame) => {
                    let digits = self.dtmf.push(&frame);
                    self.out.push(PortOutput::RxAudio(frame));
                    self.out.extend(digits.into_iter().map(PortOutput::Dtmf));
                }
            }
        }
    }

    /// A frame to transmit.
    pub fn transmit(&mut self, frame: Frame, now: Instant) {
        let was_keyed = self.tx.is_keyed();
        self.tx.push(frame, now, &mut self.scratch_tx);
        if !was_keyed && self.tx.is_keyed() {
            self.reset_rx();
        }
        self.take_tx();
    }

    pub fn poll(&mut self, now: Instant) {
        self.tx.poll(now, &mut self.scratch_tx);
        self.take_tx();
    }

    /// Releases PTT at once and ends any reception: the port is stopping, or a device
    /// is lost.
    pub fn release(&mut self, now: Instant) {
        self.tx.release(now, &mut self.scratch_tx);
        self.take_tx();
        self.reset_rx();
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        self.tx.next_deadline()
    }

    /// What to do, in order.
    pub fn drain(&mut self) -> std::vec::Drain<'_, PortOutput> {
        self.out.drain(..)
    }

    fn reset_rx(&mut self) {
        self.rx.reset(&mut self.scratch_rx);
        self.dtmf.reset();
        if self.scratch_rx.drain(..).any(|e| e == RxEvent::Close) {
            self.out.push(PortOutput::RxClose);
        }
    }

    fn take_tx(&mut self) {
        for action in self.scratch_tx.drain(..) {
            self.out.push(match action {
                PttAction::Key => PortOutput::Key,
                PttAction::Play(frame) => PortOutput::Play(frame),
                PttAction::Unkey { reason, keyed_for } => PortOutput::Unkey { reason, keyed_for },
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::radio::carrier::CarrierSource;
    use crate::radio::ptt::FRAME;

    fn port() -> RadioPort {
        RadioPort::new(
            RxSettings {
                source: CarrierSource::Cos,
                min_open: Duration::ZERO,
                delay: Duration::ZERO,
            },
            PttTiming {
                lead: Duration::ZERO,
                ..PttTiming::default()
            },
        )
    }

    #[test]
    fn nothing_heard_while_transmitting_is_passed_on() {
        let mut port = port();
        let t0 = Instant::now();
        port.on_cos(true);
        port.on_rx_frame(vec![1; 960], t0);
        assert_eq!(
            port.drain().collect::<Vec<_>>(),
            vec![PortOutput::RxOpen, PortOutput::RxAudio(vec![1; 960])]
        );

        // The patch sends audio to it: the transmission it was receiving ends.
        port.transmit(vec![2; 960], t0 + FRAME);
        let out: Vec<_> = port.drain().collect();
        assert_eq!(
            out,
            vec![
                PortOutput::RxClose,
                PortOutput::Key,
                PortOutput::Play(vec![2; 960])
            ]
        );
        port.on_rx_frame(vec![3; 960], t0 + FRAME * 2);
        assert!(
            port.drain().next().is_none(),
            "its own transmission is not heard"
        );
    }

    #[test]
    fn dtmf_in_a_transmission_is_reported_alongside_the_audio() {
        let mut port = port();
        let t0 = Instant::now();
        port.on_cos(true);
        let tone: Vec<i16> = (0..960 * 4)
            .map(|n| {
                let t = f64::from(n) / 48_000.0;
                let s = (std::f64::consts::TAU * 941.0 * t).sin()
                    + (std::f64::consts::TAU * 1477.0 * t).sin();
                (s * 8000.0) as i16
            })
            .collect();
        for (k, frame) in tone.chunks(960).enumerate() {
            port.on_rx_frame(frame.to_vec(), t0 + FRAME * k as u32);
        }
        let digits: Vec<_> = port
            .drain()
            .filter_map(|o| match o {
                PortOutput::Dtmf(d) => Some(d),
                _ => None,
            })
            .collect();
        assert_eq!(digits, vec!['#']);
    }
}
