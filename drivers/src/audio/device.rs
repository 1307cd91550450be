use std::sync::mpsc;
use std::thread;

use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};

/// Samples per second on both directions.
pub const SAMPLE_RATE: u32 = 48_000;
/// Samples of one 20 ms frame.
pub const FRAME_SAMPLES: usize = 960;

/// Why a sound card cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AudioError {
    #[error("no {direction} audio device named {name:?}")]
    NotFound {
        direction: &'static str,
        name: String,
    },
    #[error("no default {direction} audio device")]
    NoDefault { direction: &'static str },
    #[error("{direction} device {name:?} cannot be opened at 48 kHz mono 16-bit: {reason}")]
    Open {
        direction: &'static str,
        name: String,
        reason: String,
    },
    #[error("{direction} device {name:?} stopped: {reason}")]
    Lost {
        direction: &'static str,
        name: String,
        reason: String,
    },
}

/// Runs `open` with the process's stderr pointed at /dev/null.
///
/// alsa-lib prints its own diagnostics to stderr while it resolves a device name
/// (several lines for a machine without a sound card); the failure reaches the operator
/// once, as our [`AudioError`]. Set `EMCOMM_ALSA_VERBOSE=1` to keep alsa-lib's lines.
/// Other threads' stderr output during the open, a few milliseconds, is lost too.
fn quietly<T>(open: impl FnOnce() -> T) -> T {
    if std::env::var_os("EMCOMM_ALSA_VERBOSE").is_some() {
        return open();
    }
    let saved = nix::unistd::dup(std::io::stderr()).ok();
    let silenced = match (
        &saved,
        std::fs::OpenOptions::new().write(true).open("/dev/null"),
    ) {
        (Some(_), Ok(null)) => nix::unistd::dup2_stderr(&null).is_ok(),
        _ => false,
    };
    let result = open();
    if let (true, Some(saved)) = (silenced, saved) {
        let _ = nix::unistd::dup2_stderr(&saved);
    }
    result
}

fn find_device(direction: &'static str, name: Option<&str>) -> Result<cpal::Device, AudioError> {
    let host = cpal::default_host();
    match name {
        None | Some("default") => {
            let device = if direction == "capture" {
                host.default_input_device()
            } else {
                host.default_output_device()
            };
            device.ok_or(AudioError::NoDefault { direction })
        }
        Some(wanted) => {
            let devices = if direction == "capture" {
                host.input_devices()
            } else {
                host.output_devices()
            };
            devices
                .map_err(|e| AudioError::Open {
                    direction,
                    name: wanted.into(),
                    reason: e.to_string(),
                })?
                .find(|d| d.name().is_ok_and(|n| n == wanted))
                .ok_or_else(|| AudioError::NotFound {
                    direction,
                    name: wanted.into(),
                })
        }
    }
}

fn stream_config() -> cpal::StreamConfig {
    cpal::StreamConfig {
        channels: 1,
        sample_rate: cpal::SampleRate(SAMPLE_RATE),
        buffer_size: cpal::BufferSize::Default,
    }
}

/// A running capture stream delivering 20 ms frames.
#[derive(Debug)]
pub struct Capture {
    frames: mpsc::Receiver<Result<Vec<i16>, AudioError>>,
    /// Dropping this hangs up, which ends the stream's thread.
    stop: Option<mpsc::Sender<()>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Drop for Capture {
    /// Stops the stream and waits for its thread, so the device is closed on return.
    fn drop(&mut self) {
        self.stop.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Capture {
    /// Waits for the next frame; `None` once the stream has ended.
    pub fn next_frame(&self) -> Option<Result<Vec<i16>, AudioError>> {
        self.frames.recv().ok()
    }
}

/// Opens the named capture device (`None` or `"default"` for the default one).
pub fn open_capture(name: Option<&str>) -> Result<Capture, AudioError> {
    let (frames_tx, frames) = mpsc::sync_channel(50);
    let (ready_tx, ready) = mpsc::channel();
    let (stop, stop_rx) = mpsc::channel::<()>();
    let name = name.map(str::to_owned);
    let thread = thread::Builder::new()
        .name("audio-capture".into())
        .spawn(move || {
            let opened = quietly(|| {
                let device = find_device("capture", name.as_deref())?;
                let label = device.name().unwrap_or_else(|_| "?".into());
                let mut pending: Vec<i16> = Vec::with_capacity(FRAME_SAMPLES * 2);
                let data_tx = frames_tx.clone();
                let err_tx = frames_tx.clone();
                let err_label = label.clone();
                let stream = device
                    .build_input_stream(
                        &stream_config(),
                        move |data: &[i16], _| {
                            pending.extend_from_slice(data);
                            while pending.len() >= FRAME_SAMPLES {
                                let frame: Vec<i16> = pending.drain(..FRAME_SAMPLES).collect();
                                // A full channel means the consumer is behind: drop.
                                let _ = data_tx.try_send(Ok(frame));
                            }
                        },
                        move |e| {
                            let _ = err_tx.try_send(Err(AudioError::Lost {
                                direction: "capture",
                                name: err_label.clone(),
                                reason: e.to_string(),
                            }));
                        },
                        None,
                    )
                    .map_err(|e| AudioError::Open {
                        direction: "capture",
                        name: label.clone(),
                        reason: e.to_string(),
                    })?;
                stream.play().map_err(|e| AudioError::Open {
                    direction: "capture",
                    name: label,
                    reason: e.to_string(),
                })?;
                Ok(stream)
            });
            match opened {
                Ok(stream) => {
                    let _ = ready_tx.send(Ok(()));
                    // Keep the stream alive until the consumer hangs up.
                    let _ = stop_rx.recv();
                    drop(stream);
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                }
            }
        })
        .map_err(|e| AudioError::Open {
            direction: "capture",
            name: "default".into(),
            reason: e.to_string(),
        })?;
    ready.recv().unwrap_or(Err(AudioError::NoDefault {
        direction: "capture",
    }))?;
    Ok(Capture {
        frames,
        stop: Some(stop),
        thread: Some(thread),
    })
}

/// A running playback stream fed with 20 ms frames.
#[derive(Debug)]
pub struct Playback {
    frames: Option<mpsc::SyncSender<Vec<i16>>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Playback {
    /// Queues one frame; false once the device has gone.
    pub fn play(&self, frame: Vec<i16>) -> bool {
        self.frames.as_ref().is_some_and(|f| f.send(frame).is_ok())
    }
}

impl Drop for Playback {
    /// Stops the stream and waits for its thread, so the device is closed on return.
    fn drop(&mut self) {
        self.frames.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Opens the named playback device (`None` or `"default"` for the default one).
pub fn open_playback(name: Option<&str>) -> Result<Playback, AudioError> {
    let (frames, frames_rx) = mpsc::sync_channel::<Vec<i16>>(50);
    let (ready_tx, ready) = mpsc::channel();
    let name = name.map(str::to_owned);
    let thread = thread::Builder::new()
        .name("audio-playback".into())
        .spawn(move || {
            let opened = quietly(|| {
                let device = find_device("playback", name.as_deref())?;
                let label = device.name().unwrap_or_else(|_| "?".into());
                let (sample_tx, sample_rx) = mpsc::sync_channel::<Vec<i16>>(50);
                let mut current: std::collections::VecDeque<i16> = Default::default();
                let stream = device
                    .build_output_stream(
                        &stream_config(),
                        move |out: &mut [i16], _| {
                            for sample in out.iter_mut() {
                                if current.is_empty() {
                                    if let Ok(frame) = sample_rx.try_recv() {
                                        current.extend(frame);
                                    }
                                }
                                *sample = current.pop_front().unwrap_or(0);
                            }
                        },
                        |_| {},
                        None,
                    )
                    .map_err(|e| AudioError::Open {
                        direction: "playback",
                        name: label.clone(),
                        reason: e.to_string(),
                    })?;
                stream.play().map_err(|e| AudioError::Open {
                    direction: "playback",
                    name: label,
                    reason: e.to_string(),
                })?;
                Ok((stream, sample_tx))
            });
            match opened {
                Ok((stream, sample_tx)) => {
                    let _ = ready_tx.send(Ok(()));
                    for frame in frames_rx {
                        if sample_tx.send(frame).is_err() {
                            break;
                        }
                    }
                    drop(stream);
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                }
            }
        })
        .map_err(|e| AudioError::Open {
            direction: "playback",
            name: "default".into(),
            reason: e.to_string(),
        })?;
    ready.recv().unwrap_or(Err(AudioError::NoDefault {
        direction: "playback",
    }))?;
    Ok(Playback {
        frames: Some(frames),
        thread: Some(thread),
    })
}
