//! Opening a serial port that a radio's PTT may hang on, without keying it.
//!
//! Linux raises DTR and RTS when a port is opened (unless its speed is 0), and on the
//! last close drops both when the port's HUPCL flag is set, as it is by default. So:
//!
//! * with PTT on a line that is **not inverted** (raised keys the radio), opening the
//!   port keys the radio until emcomm lowers the line, a few tens of microseconds
//!   later: too short for a radio's PTT input to act on, but visible on a scope.
//!   HUPCL is kept set, so a close, or the death of the process by any cause, drops
//!   the line and unkeys the radio. This is the safe wiring.
//! * with PTT on an **inverted** line (lowered keys the radio), opening leaves the
//!   radio unkeyed, and emcomm clears HUPCL so that its own close leaves the line
//!   raised. But a process killed while transmitting leaves the line as it was, keyed,
//!   until the radio's own time-out timer drops it.
//!
//! The wiring note in `docs/wiring.md` says the same for the installer.

use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use nix::sys::termios::{self, ControlFlags, SetArg};
use serialport::{SerialPort, TTYPort};
use tokio_serial::SerialStream;

use super::modem_lines::{InputLevels, LinesError, ModemLines, OutputLine, Wired};

/// Why a port could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("cannot open {device}: {reason}")]
    Open { device: String, reason: String },
    #[error("cannot set the termios of {device}: {reason}")]
    Termios { device: String, reason: String },
    #[error(transparent)]
    Lines(#[from] LinesError),
}

/// Sets or clears HUPCL on `path`'s termios before the port is opened for use; the
/// termios belong to the device, so the setting holds for the open that follows.
fn set_hang_up_on_close(path: &Path, on: bool) -> Result<(), OpenError> {
    let device = path.display().to_string();
    let termios_error = |e: nix::Error| OpenError::Termios {
        device: device.clone(),
        reason: e.to_string(),
    };
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(nix::libc::O_NOCTTY | nix::libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| OpenError::Open {
            device: device.clone(),
            reason: e.to_string(),
        })?;
    let mut settings = termios::tcgetattr(&file).map_err(termios_error)?;
    settings.control_flags.set(ControlFlags::HUPCL, on);
    termios::tcsetattr(&file, SetArg::TCSANOW, &settings).map_err(termios_error)
}

/// Opens `path` at `baud` for a radio, with `ptt` (when PTT hangs on one of its lines)
/// released before this returns; see the [module](self) notes on HUPCL. Gives the
/// stream for the radio's command channel and the port's modem lines, on a handle of
/// their own so that the stream can stay with the task that reads and writes it.
pub fn open_for_radio(
    path: &Path,
    baud: u32,
    ptt: Option<Wired<OutputLine>>,
) -> Result<(SerialStream, SerialLines), OpenError> {
    let device = path.display().to_string();
    let open_error = |e: serialport::Error| OpenError::Open {
        device: device.clone(),
        reason: e.to_string(),
    };
    if let Some(wiring) = ptt {
        set_hang_up_on_close(path, wiring.fails_safe())?;
    }
    let mut builder = serialport::new(device.clone(), baud);
    if let Some(wiring) = ptt.filter(|w| w.line == OutputLine::Dtr) {
        builder = builder.dtr_on_open(wiring.level_for(false));
    }
    let port = builder.open_native().map_err(open_error)?;
    let mut lines = SerialLines {
        port: port.try_clone_native().map_err(open_error)?,
        device: device.clone(),
    };
    if let Some(wiring) = ptt {
        lines.set(wiring.line, wiring.level_for(false))?;
    }
    let stream = SerialStream::try_from(port).map_err(open_error)?;
    Ok((stream, lines))
}

/// One handle on a radio's command channel.
pub type CommandChannel = Box<dyn io::Write + Send>;

/// Opens a radio's command channel at `baud`, raw (no echo, no line editing, no `\n`
/// to `\r\n`), 8N1, and gives two handles on it: one for PTT commands, one for the
/// rest. It must not be the port PTT hangs on: opening raises RTS and DTR.
pub fn open_command_channel(
    path: &Path,
    baud: u32,
) -> Result<(CommandChannel, CommandChannel), OpenError> {
    let device = path.display().to_string();
    let open_error = |e: serialport::Error| OpenError::Open {
        device: device.clone(),
        reason: e.to_string(),
    };
    let port = serialport::new(device.clone(), baud)
        .open_native()
        .map_err(open_error)?;
    let second = port.try_clone_native().map_err(open_error)?;
    Ok((Box::new(port), Box::new(second)))
}

/// The modem lines of a real serial port.
pub struct SerialLines {
    port: TTYPort,
    device: String,
}

impl SerialLines {
    /// A second handle on the same lines: one for PTT, one for reading COS.
    pub fn try_clone(&self) -> Result<SerialLines, LinesError> {
        let port = self.port.try_clone_native().map_err(|e| self.error(e))?;
        Ok(SerialLines {
            port,
            device: self.device.clone(),
        })
    }

    fn error(&self, e: serialport::Error) -> LinesError {
        let reason = e.to_string();
        // ENOTTY ("Inappropriate ioctl for device", "Not a typewriter"): a
        // pseudo-terminal.
        if reason.contains("Inappropriate ioctl") || reason.contains("Not a typewriter") {
            LinesError::Unsupported {
                device: self.device.clone(),
                reason,
            }
        } else {
            LinesError::Lost {
                device: self.device.clone(),
                reason,
            }
        }
    }
}

impl ModemLines for SerialLines {
    fn set(&mut self, line: OutputLine, level: bool) -> Result<(), LinesError> {
        let result = match line {
            OutputLine::Rts => self.port.write_request_to_send(level),
            OutputLine::Dtr => self.port.write_data_terminal_ready(level),
        };
        result.map_err(|e| self.error(e))
    }

    fn read(&mut self) -> Result<InputLevels, LinesError> {
        let cts = self.port.read_clear_to_send().map_err(|e| self.error(e))?;
        let dsr = self.port.read_data_set_ready().map_err(|e| self.error(e))?;
        let dcd = self.port.read_carrier_detect().map_err(|e| self.error(e))?;
        Ok(InputLevels { cts, dsr, dcd })
    }
}

/// Whether an I/O error on a serial stream means the device is gone (unplugged, or
/// the pseudo-terminal's other side closed), rather than a passing fault.
pub fn is_gone(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(nix::libc::EIO) | Some(nix::libc::ENXIO) | Some(nix::libc::ENODEV)
    ) || e.kind() == io::ErrorKind::UnexpectedEof
        || e.kind() == io::ErrorKind::BrokenPipe
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pseudo-terminal pair: the test holds the master side.
    fn pty() -> (nix::pty::OpenptyResult, std::path::PathBuf) {
        let pair = nix::pty::openpty(None, None).expect("openpty");
        let name = std::fs::read_link(format!(
            "/proc/self/fd/{}",
            std::os::fd::AsRawFd::as_raw_fd(&pair.slave)
        ))
        .expect("the pty's name");
        (pair, name)
    }

    #[tokio::test]
    async fn a_pseudo_terminal_opens_and_says_it_has_no_modem_lines() {
        let (_pair, name) = pty();
        let (port, mut lines) = open_for_radio(&name, 9600, None).expect("a pty opens");
        assert!(matches!(
            lines.set(OutputLine::Rts, false),
            Err(LinesError::Unsupported { .. })
        ));
        // With PTT on a line, the open itself fails: it cannot release what it
        // cannot set.
        let ptt = Wired {
            line: OutputLine::Rts,
            inverted: false,
        };
        drop((port, lines));
        assert!(matches!(
            open_for_radio(&name, 9600, Some(ptt)),
            Err(OpenError::Lines(LinesError::Unsupported { .. }))
        ));
    }
}
