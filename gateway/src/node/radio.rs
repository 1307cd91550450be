//! One radio port's task: it opens the port's devices, runs the sans-IO
//! [`RadioPort`] on what they deliver, carries out what the port decides (PTT, transmit
//! audio) and tells the patch bus what the radio hears.
//!
//! PTT safety, as this task sees it: the switch is a [`SafePtt`], released when the
//! port opens, when the task stops, when a device is lost, when the task unwinds from a
//! panic, and by the panic hook `main` installs. A port whose device is lost reports
//! itself down, releases PTT and opens its devices again with a growing backoff.

use std::path::Path;
use std::time::Duration;

use drivers::radio::external::Message;
use drivers::radio::external_link::{ExternalAudio, ExternalLink, LinkEvent};
use drivers::radio::port::{PortOutput, RadioPort};
use drivers::radio::ptt::Frame;
use drivers::radio::ptt_switch::{Cm108Ptt, CommandPtt, LinePtt, PttSwitch, SafePtt};
use drivers::serial::modem_lines::{InputLevels, ModemLines};
use drivers::serial::port::CommandChannel;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{debug, error, info, warn};

use crate::config::{AudioBackend, LinesBackend, PttWiring, RadioConfig};
use crate::patch::MemberId;

/// The first wait before opening a lost port again; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// How often serial COS lines are read.
const COS_POLL: Duration = Duration::from_millis(10);

/// What a port tells the patch task.
#[derive(Debug)]
pub enum PortEvent {
    /// The port's devices are open.
    Up(MemberId),
    /// The port is down, and why; it keeps trying to open its devices.
    Down(MemberId, String),
    /// The radio hears a carrier (`true`) or no longer does.
    Carrier(MemberId, bool),
    /// A frame of what it hears, while the carrier is open.
    Audio(MemberId, Frame),
    /// A DTMF digit heard.
    Dtmf(MemberId, char),
}

/// What the patch task asks of a port.
#[derive(Debug)]
pub enum PortCommand {
    /// Transmit this frame.
    Transmit(Frame),
    /// Release PTT and stop.
    Stop,
}

/// What a member's task was started from, to tell on reload whether it changed.
#[derive(Debug, Clone, PartialEq)]
pub enum MemberConfig {
    Radio(Box<RadioConfig>),
    Link(crate::config::LinkConfig),
    Zone(crate::config::ZoneConfig),
}

/// A running member task: a radio port, a link or a zone.
pub struct PortHandle {
    pub config: MemberConfig,
    pub commands: mpsc::UnboundedSender<PortCommand>,
}

/// Starts the port the radio `config` describes, and a task in `tasks` that gives the
/// port's name when it ends.
///
/// Each port runs on a thread and runtime of its own: its device I/O (serial lines, a
/// CM108 HID write, the command channel, the backend socket) is blocking, and a device
/// that hangs must not hold up another radio's PTT timers. A port thread that panics
/// makes its task panic too, which stops the node (see [`super::patching`]).
pub fn spawn(
    config: RadioConfig,
    events: mpsc::UnboundedSender<PortEvent>,
    tasks: &mut tokio::task::JoinSet<MemberId>,
) -> PortHandle {
    let (commands, inbox) = mpsc::unbounded_channel();
    let name = MemberId(config.name.clone());
    let port = config.clone();
    let (ended, finished) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::Builder::new()
        .name(format!("radio {}", config.name))
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            match runtime {
                Ok(runtime) => runtime.block_on(run(port, events, inbox)),
                Err(e) => error!(error = %e, "cannot start a radio port's runtime"),
            }
            let _ = ended.send(());
        });
    tasks.spawn(async move {
        if let Err(e) = thread {
            error!(port = %name, error = %e, "cannot start the radio port's thread");
            return name;
        }
        // The sender is dropped without a send only if the thread unwound.
        if finished.await.is_err() {
            panic!("radio port {name} panicked; PTT was released");
        }
        name
    });
    PortHandle {
        config: MemberConfig::Radio(Box::new(config)),
        commands,
    }
}

/// Why one opening of the port ended.
enum Ended {
    Stopped,
    Lost(String),
}

async fn run(
    config: RadioConfig,
    events: mpsc::UnboundedSender<PortEvent>,
    mut inbox: mpsc::UnboundedReceiver<PortCommand>,
) {
    let name = MemberId(config.name.clone());
    let mut backoff = FIRST_BACKOFF;
    let mut last_fault = String::new();
    loop {
        let reason = match Devices::open(&config) {
            Ok(devices) => {
                info!(port = %name, ptt = %devices.ptt.describe(), "radio port up");
                let _ = events.send(PortEvent::Up(name.clone()));
                backoff = FIRST_BACKOFF;
                last_fault.clear();
                match serve(&config, devices, &events, &mut inbox).await {
                    Ended::Stopped => return,
                    Ended::Lost(reason) => reason,
                }
            }
            Err(reason) => reason,
        };
        if reason != last_fault {
            warn!(port = %name, %reason, retry_in = ?backoff, "radio port down");
            let _ = events.send(PortEvent::Down(name.clone(), reason.clone()));
            last_fault = reason;
        }
        // Wait out the backoff, dropping audio meant for a port that is down.
        let until = Instant::now() + backoff;
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(until) => break,
                command = inbox.recv() => match command {
                    None | Some(PortCommand::Stop) => return,
                    Some(PortCommand::Transmit(_)) => {}
                },
            }
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Where the receive side's inputs come from.
enum Inputs {
    /// Messages from the external backend (lines and audio).
    External(mpsc::UnboundedReceiver<LinkEvent>),
    /// A serial port's COS line, polled, and a sound card's frames.
    Local {
        lines: Option<Box<dyn ModemLines>>,
        audio: mpsc::UnboundedReceiver<Result<Frame, String>>,
    },
}

enum Player {
    External(ExternalAudio),
    Device(drivers::audio::Playback),
}

/// A port's open devices.
struct Devices {
    ptt: SafePtt,
    /// The radio's command channel, for talkgroup selection.
    command: Option<CommandChannel>,
    player: Player,
    inputs: Inputs,
    /// Keeps the external connection open; closed when dropped.
    link: Option<ExternalLink>,
    /// Keeps a sound card's capture stream running.
    _capture: Option<std::thread::JoinHandle<()>>,
}

impl Devices {
    fn open(config: &RadioConfig) -> Result<Devices, String> {
        let (ptt_channel, command) = match &config.command_port {
            Some(port) => {
                let (ptt, other) =
                    drivers::serial::port::open_command_channel(port, config.command_baud)
                        .map_err(|e| e.to_string())?;
                (Some(ptt), Some(other))
            }
            None => (None, None),
        };
        let mut devices = match &config.lines {
            LinesBackend::External(path) => Devices::open_external(config, path, ptt_channel),
            LinesBackend::Serial { path, baud } => {
                Devices::open_serial(config, path, *baud, ptt_channel)
            }
        }?;
        devices.command = command;
        Ok(devices)
    }

    fn open_external(
        config: &RadioConfig,
        path: &Path,
        ptt_channel: Option<CommandChannel>,
    ) -> Result<Devices, String> {
        let link = ExternalLink::connect(path, &config.name)
            .map_err(|e| format!("cannot reach the radio backend at {}: {e}", path.display()))?;
        let switch = ptt_switch(
            config,
            || Box::new(link.lines()),
            link.device(),
            ptt_channel,
        )?;
        let ptt = SafePtt::new(switch).map_err(|e| e.to_string())?;
        let (tx, rx) = mpsc::unbounded_channel();
        link.spawn_reader(move |event| tx.send(event).is_ok())
            .map_err(|e| e.to_string())?;
        let player = match &config.audio {
            AudioBackend::External => Player::External(link.audio()),
            AudioBackend::Device(name) => Player::Device(
                drivers::audio::open_playback(Some(name)).map_err(|e| e.to_string())?,
            ),
        };
        Ok(Devices {
            ptt,
            command: None,
            player,
            inputs: Inputs::External(rx),
            link: Some(link),
            _capture: None,
        })
    }

    fn open_serial(
        config: &RadioConfig,
        path: &Path,
        baud: u32,
        ptt_channel: Option<CommandChannel>,
    ) -> Result<Devices, String> {
        let line_ptt = match &config.ptt {
            PttWiring::Line(wiring) => Some(*wiring),
            _ => None,
        };
        let (_stream, lines) = drivers::serial::port::open_for_radio(path, baud, line_ptt)
            .map_err(|e| e.to_string())?;
        let device = path.display().to_string();
        let cos_lines: Option<Box<dyn ModemLines>> = match config.cos {
            Some(_) => Some(Box::new(lines.try_clone().map_err(|e| e.to_string())?)),
            None => None,
        };
        let ptt_lines: Box<dyn ModemLines> = Box::new(lines);
        let switch = ptt_switch(config, move || ptt_lines, &device, ptt_channel)?;
        let ptt = SafePtt::new(switch).map_err(|e| e.to_string())?;
        let AudioBackend::Device(name) = &config.audio else {
            return Err("a serial radio needs a sound card for its audio".into());
        };
        let playback = drivers::audio::open_playback(Some(name)).map_err(|e| e.to_string())?;
        let capture = drivers::audio::open_capture(Some(name)).map_err(|e| e.to_string())?;
        let (tx, rx) = mpsc::unbounded_channel();
        let thread = std::thread::Builder::new()
            .name("radio-capture".into())
            .spawn(move || {
                while let Some(frame) = capture.next_frame() {
                    let frame = frame.map_err(|e| e.to_string());
                    let failed = frame.is_err();
                    if tx.send(frame).is_err() || failed {
                        return;
                    }
                }
                let _ = tx.send(Err("the capture stream ended".into()));
            })
            .map_err(|e| e.to_string())?;
        Ok(Devices {
            ptt,
            command: None,
            player: Player::Device(playback),
            inputs: Inputs::Local {
                lines: cos_lines,
                audio: rx,
            },
            link: None,
            _capture: Some(thread),
        })
    }
}

/// The PTT switch the configuration wires; `lines` gives the port's modem lines,
/// `channel` its command channel.
fn ptt_switch(
    config: &RadioConfig,
    lines: impl FnOnce() -> Box<dyn ModemLines>,
    device: &str,
    channel: Option<CommandChannel>,
) -> Result<Box<dyn PttSwitch>, String> {
    Ok(match &config.ptt {
        PttWiring::Line(wiring) => Box::new(LinePtt {
            lines: lines(),
            wiring: *wiring,
            device: device.to_owned(),
        }),
        PttWiring::Cm108 {
            path,
            pin,
            inverted,
        } => Box::new(Cm108Ptt::new(path, *pin, *inverted).map_err(|e| e.to_string())?),
        PttWiring::Command { key, release } => {
            let (Some(port), Some(channel)) = (&config.command_port, channel) else {
                return Err("PTT by command needs the radio's command_port".into());
            };
            Box::new(CommandPtt {
                channel,
                key: key.clone(),
                release: release.clone(),
                device: port.display().to_string(),
            })
        }
    })
}

/// Runs one opening of the port until it is stopped or a device is lost.
async fn serve(
    config: &RadioConfig,
    mut devices: Devices,
    events: &mpsc::UnboundedSender<PortEvent>,
    inbox: &mut mpsc::UnboundedReceiver<PortCommand>,
) -> Ended {
    let name = MemberId(config.name.clone());
    let mut port = RadioPort::new(config.rx, config.tx);
    let rx_gain = codecs::level::db_to_gain(config.rx_gain_db);
    let tx_gain = codecs::level::db_to_gain(config.tx_gain_db);
    let mut cos_poll = tokio::time::interval(COS_POLL);
    if let Some(command) = &config.select_command {
        if let Err(e) = send_command(&mut devices, command) {
            warn!(port = %name, error = %e, "talkgroup selection failed");
        } else {
            info!(port = %name, talkgroup = ?config.talkgroup, "talkgroup selected");
        }
    }

    let ended = loop {
        let deadline = port.next_deadline().map(Instant::from_std);
        let now_std = std::time::Instant::now;
        let step: Result<(), String> = tokio::select! {
            command = inbox.recv() => match command {
                Some(PortCommand::Transmit(frame)) => {
                    port.transmit(frame, now_std());
                    Ok(())
                }
                None | Some(PortCommand::Stop) => break Ended::Stopped,
            },
            _ = sleep_until(deadline) => {
                port.poll(now_std());
                Ok(())
            }
            input = next_input(&mut devices.inputs, &mut cos_poll) => match input {
                Input::Cos(levels) => {
                    if let Some(wiring) = config.cos {
                        port.on_cos(wiring.is_on(levels));
                    }
                    Ok(())
                }
                Input::Frame(mut frame) => {
                    apply_gain(&mut frame, rx_gain);
                    port.on_rx_frame(frame, now_std());
                    Ok(())
                }
                Input::Nothing => Ok(()),
                Input::Lost(reason) => Err(reason),
            },
        };
        let carried = carry_out(&name, &mut port, &mut devices, events, tx_gain);
        if let Err(reason) = step.and(carried) {
            break Ended::Lost(reason);
        }
    };

    // Every way out releases PTT before the devices close.
    port.release(std::time::Instant::now());
    let _ = carry_out(&name, &mut port, &mut devices, events, tx_gain);
    if let Err(e) = devices.ptt.set(false) {
        error!(port = %name, error = %e, "PTT release failed: check the radio");
    }
    if let Some(link) = &devices.link {
        link.shutdown();
    }
    ended
}

enum Input {
    Cos(InputLevels),
    Frame(Frame),
    Nothing,
    Lost(String),
}

async fn next_input(inputs: &mut Inputs, cos_poll: &mut tokio::time::Interval) -> Input {
    match inputs {
        Inputs::External(rx) => match rx.recv().await {
            Some(LinkEvent::Message(Message::Inputs(levels))) => Input::Cos(levels),
            Some(LinkEvent::Message(Message::Audio(frame))) => Input::Frame(frame),
            Some(LinkEvent::Message(Message::AudioLost { reason })) => {
                Input::Lost(format!("audio device lost: {reason}"))
            }
            Some(LinkEvent::Message(other)) => {
                debug!(message = ?other, "unexpected message from the radio backend");
                Input::Nothing
            }
            Some(LinkEvent::Closed(reason)) => Input::Lost(reason),
            None => Input::Lost("the radio backend's reader stopped".into()),
        },
        Inputs::Local { lines, audio } => {
            tokio::select! {
                frame = audio.recv() => match frame {
                    Some(Ok(frame)) => Input::Frame(frame),
                    Some(Err(reason)) => Input::Lost(format!("audio device lost: {reason}")),
                    None => Input::Lost("audio device lost".into()),
                },
                _ = cos_poll.tick(), if lines.is_some() => {
                    match lines.as_mut().map(|l| l.read()) {
                        Some(Ok(levels)) => Input::Cos(levels),
                        Some(Err(e)) => Input::Lost(e.to_string()),
                        None => Input::Nothing,
                    }
                }
            }
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Carries out what the port decided; an error is a lost device.
fn carry_out(
    name: &MemberId,
    port: &mut RadioPort,
    devices: &mut Devices,
    events: &mpsc::UnboundedSender<PortEvent>,
    tx_gain: f32,
) -> Result<(), String> {
    let outputs: Vec<PortOutput> = port.drain().collect();
    for output in outputs {
        match output {
            PortOutput::Key => {
                devices.ptt.set(true).map_err(|e| e.to_string())?;
                info!(port = %name, "PTT keyed");
                fault_injection::after_key();
            }
            PortOutput::Unkey { reason, keyed_for } => {
                let released = devices.ptt.set(false);
                info!(port = %name, ?reason, keyed_ms = keyed_for.as_millis() as u64, "PTT released");
                released.map_err(|e| e.to_string())?;
            }
            PortOutput::Play(mut frame) => match &devices.player {
                Player::External(audio) => audio
                    .play({
                        apply_gain(&mut frame, tx_gain);
                        frame
                    })
                    .map_err(|e| format!("radio backend: {e}"))?,
                Player::Device(playback) => {
                    apply_gain(&mut frame, tx_gain);
                    if !playback.play(frame) {
                        return Err("audio device lost: playback stopped".into());
                    }
                }
            },
            PortOutput::RxOpen => {
                debug!(port = %name, "carrier");
                let _ = events.send(PortEvent::Carrier(name.clone(), true));
            }
            PortOutput::RxAudio(frame) => {
                let _ = events.send(PortEvent::Audio(name.clone(), frame));
            }
            PortOutput::RxClose => {
                debug!(port = %name, "carrier dropped");
                let _ = events.send(PortEvent::Carrier(name.clone(), false));
            }
            PortOutput::Dtmf(digit) => {
                debug!(port = %name, "DTMF digit");
                let _ = events.send(PortEvent::Dtmf(name.clone(), digit));
            }
        }
    }
    Ok(())
}

/// Scales `frame` by a linear `gain`, saturating; 1.0 leaves it as it is.
fn apply_gain(frame: &mut [i16], gain: f32) {
    if (gain - 1.0).abs() < f32::EPSILON {
        return;
    }
    for sample in frame {
        *sample = (f32::from(*sample) * gain).clamp(-32768.0, 32767.0) as i16;
    }
}

fn send_command(devices: &mut Devices, bytes: &[u8]) -> Result<(), String> {
    let Some(channel) = &mut devices.command else {
        return Err("no command_port".into());
    };
    channel
        .write_all(bytes)
        .and_then(|()| channel.flush())
        .map_err(|e| format!("command port: {e}"))
}

/// Faults a test can ask for, in debug builds only: `EMCOMM_FAULT=panic-after-key`
/// panics in the port task right after it keys PTT, to show that a panic releases it.
mod fault_injection {
    #[cfg(debug_assertions)]
    pub fn after_key() {
        if std::env::var("EMCOMM_FAULT").is_ok_and(|f| f == "panic-after-key") {
            panic!("fault injected after PTT keyed (EMCOMM_FAULT)");
        }
    }

    #[cfg(not(debug_assertions))]
    pub fn after_key() {}
}
