//! The gateway's end of an [external backend](super::external) connection: the
//! radio's modem lines and transmit audio written to it, its messages read back on a
//! thread of their own.
//!
//! Writes are blocking, with a short timeout: a backend that stops reading is a lost
//! device, reported as [`LinesError::Lost`], never a stalled gateway. Lines and audio
//! share one writer, so their frames never interleave.

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::external::{Decoder, FrameError, Message};
use crate::serial::modem_lines::{InputLevels, LinesError, ModemLines, OutputLevels, OutputLine};

/// The longest a write may block before the backend counts as lost.
pub const WRITE_TIMEOUT: Duration = Duration::from_millis(250);

type Writer = Arc<Mutex<UnixStream>>;

/// What the reading side hands on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkEvent {
    Message(Message),
    /// The connection ended or broke; nothing more comes.
    Closed(String),
}

/// A connected backend for one radio port.
pub struct ExternalLink {
    writer: Writer,
    reader: UnixStream,
    inputs: Arc<Mutex<InputLevels>>,
    device: String,
}

impl ExternalLink {
    /// Connects to the backend listening at `path` and introduces port `port`.
    pub fn connect(path: &Path, port: &str) -> io::Result<ExternalLink> {
        let stream = UnixStream::connect(path)?;
        stream.set_write_timeout(Some(WRITE_TIMEOUT))?;
        let reader = stream.try_clone()?;
        let link = ExternalLink {
            writer: Arc::new(Mutex::new(stream)),
            reader,
            inputs: Arc::new(Mutex::new(InputLevels::default())),
            device: format!("external:{}", path.display()),
        };
        write_message(
            &link.writer,
            &Message::Hello {
                port: port.to_owned(),
            },
        )?;
        Ok(link)
    }

    pub fn device(&self) -> &str {
        &self.device
    }

    /// The port's modem lines through this connection, all outputs low to start.
    pub fn lines(&self) -> ExternalLines {
        ExternalLines {
            writer: self.writer.clone(),
            outputs: OutputLevels::default(),
            inputs: self.inputs.clone(),
            device: self.device.clone(),
        }
    }

    /// The port's transmit audio through this connection.
    pub fn audio(&self) -> ExternalAudio {
        ExternalAudio {
            writer: self.writer.clone(),
        }
    }

    /// Reads the backend's messages on a thread until the connection ends, handing
    /// each to `deliver`; the input levels seen by [`ExternalLines::read`] follow them.
    /// `deliver` returning false stops the thread.
    pub fn spawn_reader(
        &self,
        mut deliver: impl FnMut(LinkEvent) -> bool + Send + 'static,
    ) -> io::Result<std::thread::JoinHandle<()>> {
        let mut stream = self.reader.try_clone()?;
        let inputs = self.inputs.clone();
        std::thread::Builder::new()
            .name("radio-link".into())
            .spawn(move || {
                let mut decoder = Decoder::new();
                let mut buffer = [0u8; 4096];
                loop {
                    let n = match stream.read(&mut buffer) {
                        Ok(0) => {
                            deliver(LinkEvent::Closed(
                                "the backend closed the connection".into(),
                            ));
                            return;
                        }
                        Ok(n) => n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => {
                            deliver(LinkEvent::Closed(e.to_string()));
                            return;
                        }
                    };
                    let messages = match decoder.push(&buffer[..n]) {
                        Ok(messages) => messages,
                        Err(e) => {
                            deliver(LinkEvent::Closed(framing(&e)));
                            return;
                        }
                    };
                    for message in messages {
                        if let (Message::Inputs(levels), Ok(mut shared)) = (&message, inputs.lock())
                        {
                            *shared = *levels;
                        }
                        if !deliver(LinkEvent::Message(message)) {
                            return;
                        }
                    }
                }
            })
    }

    /// Ends the connection both ways; the reader thread sees it closed.
    pub fn shutdown(&self) {
        let _ = self.reader.shutdown(std::net::Shutdown::Both);
    }
}

fn framing(e: &FrameError) -> String {
    format!("the backend sent a malformed message: {e}")
}

fn write_message(writer: &Writer, message: &Message) -> io::Result<()> {
    let bytes = message.encode();
    let mut stream = match writer.lock() {
        Ok(stream) => stream,
        Err(poisoned) => poisoned.into_inner(),
    };
    stream.write_all(&bytes)
}

/// A port's modem lines over the backend connection.
pub struct ExternalLines {
    writer: Writer,
    outputs: OutputLevels,
    inputs: Arc<Mutex<InputLevels>>,
    device: String,
}

impl ModemLines for ExternalLines {
    fn set(&mut self, line: OutputLine, level: bool) -> Result<(), LinesError> {
        self.outputs.set(line, level);
        write_message(&self.writer, &Message::Outputs(self.outputs)).map_err(|e| LinesError::Lost {
            device: self.device.clone(),
            reason: e.to_string(),
        })
    }

    fn read(&mut self) -> Result<InputLevels, LinesError> {
        Ok(match self.inputs.lock() {
            Ok(levels) => *levels,
            Err(poisoned) => *poisoned.into_inner(),
        })
    }
}

/// A port's transmit audio over the backend connection.
#[derive(Clone)]
pub struct ExternalAudio {
    writer: Writer,
}

impl ExternalAudio {
    /// Sends one 20 ms frame to the radio's transmit audio.
    pub fn play(&self, frame: Vec<i16>) -> io::Result<()> {
        write_message(&self.writer, &Message::Audio(frame))
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::net::UnixListener;
    use std::sync::mpsc;

    use super::*;
    use crate::radio::ptt_switch::{LinePtt, PttSwitch};
    use crate::serial::modem_lines::Wired;

    #[test]
    fn the_gateway_says_hello_drives_ptt_and_reads_the_carrier_over_the_socket() {
        let dir = std::env::temp_dir().join(format!("emcomm-link-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("socket");
        let path = dir.join("radio.sock");
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path).expect("socket");

        let link = ExternalLink::connect(&path, "tg-1001").expect("socket");
        let (mut backend, _) = listener.accept().expect("socket");
        let (events, received) = mpsc::channel();
        link.spawn_reader(move |event| events.send(event).is_ok())
            .expect("socket");

        let mut ptt = LinePtt {
            lines: link.lines(),
            wiring: Wired {
                line: OutputLine::Rts,
                inverted: false,
            },
            device: link.device().to_owned(),
        };
        ptt.set(true).expect("socket");
        link.audio().play(vec![5; 960]).expect("socket");
        ptt.set(false).expect("socket");

        let mut decoder = Decoder::new();
        let mut got = Vec::new();
        let mut buffer = [0u8; 4096];
        while got.len() < 4 {
            let n = backend.read(&mut buffer).expect("socket");
            got.extend(decoder.push(&buffer[..n]).expect("socket"));
        }
        assert_eq!(
            got,
            vec![
                Message::Hello {
                    port: "tg-1001".into()
                },
                Message::Outputs(OutputLevels {
                    rts: true,
                    dtr: false
                }),
                Message::Audio(vec![5; 960]),
                Message::Outputs(OutputLevels::default()),
            ]
        );

        let carrier = InputLevels {
            dcd: true,
            ..Default::default()
        };
        backend
            .write_all(&Message::Inputs(carrier).encode())
            .expect("socket");
        assert_eq!(
            received.recv().expect("socket"),
            LinkEvent::Message(Message::Inputs(carrier))
        );
        assert_eq!(ptt.lines.read().expect("socket"), carrier);

        drop(backend);
        assert!(matches!(
            received.recv().expect("socket"),
            LinkEvent::Closed(_)
        ));
        assert!(ptt.set(true).is_err(), "a closed backend is a lost device");
        std::fs::remove_dir_all(dir).expect("socket");
    }
}
