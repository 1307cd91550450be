//! Sound cards through cpal (ALSA on Linux).
//!
//! Both directions run at 48 kHz mono, 16-bit, the rate of the Opus path. cpal streams
//! are tied to the thread that built them, so each stream lives on its own thread and
//! exchanges 20 ms frames with the caller over a channel. A device that is missing or
//! refuses the format is an [`AudioError`] naming the device and the reason, never a
//! panic: a gateway without a sound card still relays.

mod device;

pub use device::{AudioError, Capture, Playback, open_capture, open_playback};
