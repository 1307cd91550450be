//! What keys a transmitter: a serial modem line, a CM108 sound card's GPIO pin, or a
//! command on the radio's command channel. Each is a [`PttSwitch`].
//!
//! Safety contract. A switch is created unkeyed, and a [`SafePtt`] around it releases
//! it on every path the process sees:
//!
//! * explicitly, through [`SafePtt::set`] when the port stops or a device is lost;
//! * when it is dropped, which includes a task or thread unwinding from a panic;
//! * from the panic hook installed by [`release_all_on_panic`], before the panic
//!   unwinds, for the switches of every port, in case a panic elsewhere stops the task
//!   that owns them from running again.
//!
//! What the process cannot see (SIGKILL, power loss) is for the wiring: see
//! [`crate::serial::modem_lines::Wired::fails_safe`], and the radio's own time-out
//! timer behind it.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, Weak};

use crate::serial::modem_lines::{LinesError, ModemLines, OutputLine, Wired};

/// Why PTT could not be switched.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PttError {
    #[error(transparent)]
    Lines(#[from] LinesError),
    #[error("CM108 GPIO on {path}: {reason}")]
    Hid { path: PathBuf, reason: String },
    #[error("PTT command on {device}: {reason}")]
    Command { device: String, reason: String },
}

/// Keys and releases one transmitter.
pub trait PttSwitch: Send {
    fn set(&mut self, keyed: bool) -> Result<(), PttError>;
    /// What it is, for the log: `rts on /dev/ttyUSB0`.
    fn describe(&self) -> String;
}

/// PTT on an RTS or DTR line.
pub struct LinePtt<L: ModemLines> {
    pub lines: L,
    pub wiring: Wired<OutputLine>,
    pub device: String,
}

impl<L: ModemLines> PttSwitch for LinePtt<L> {
    fn set(&mut self, keyed: bool) -> Result<(), PttError> {
        let level = self.wiring.level_for(keyed);
        Ok(self.lines.set(self.wiring.line, level)?)
    }

    fn describe(&self) -> String {
        let inverted = if self.wiring.inverted {
            " (inverted)"
        } else {
            ""
        };
        format!("{}{inverted} on {}", self.wiring.line, self.device)
    }
}

/// The HID output report that sets CM108 GPIO `pin` (1 to 8) as an output at
/// `high`: report ID 0, a reserved byte, the data bits, the direction bits (1 is
/// output), a reserved byte. The chip takes five bytes; four are refused.
pub fn cm108_report(pin: u8, high: bool) -> [u8; 5] {
    let mask = 1u8 << (pin.clamp(1, 8) - 1);
    [0, 0, if high { mask } else { 0 }, mask, 0]
}

/// PTT on a CM108 (or CM119) USB sound card's GPIO pin, through its hidraw device.
pub struct Cm108Ptt {
    path: PathBuf,
    pin: u8,
    /// Whether a high pin is unkeyed.
    inverted: bool,
}

impl Cm108Ptt {
    /// Checks the pin; the device is opened at every switch, so an unplugged and
    /// replugged card works again without a restart.
    pub fn new(path: &Path, pin: u8, inverted: bool) -> Result<Cm108Ptt, PttError> {
        if !(1..=8).contains(&pin) {
            return Err(PttError::Hid {
                path: path.into(),
                reason: format!("GPIO {pin} is not 1 to 8"),
            });
        }
        Ok(Cm108Ptt {
            path: path.into(),
            pin,
            inverted,
        })
    }
}

impl PttSwitch for Cm108Ptt {
    fn set(&mut self, keyed: bool) -> Result<(), PttError> {
        let report = cm108_report(self.pin, keyed != self.inverted);
        let hid = |e: std::io::Error| PttError::Hid {
            path: self.path.clone(),
            reason: e.to_string(),
        };
        let mut device = std::fs::OpenOptions::new()
            .write(true)
            .open(&self.path)
            .map_err(hid)?;
        device.write_all(&report).map_err(hid)
    }

    fn describe(&self) -> String {
        format!("CM108 GPIO {} on {}", self.pin, self.path.display())
    }
}

/// PTT by a command on the radio's command channel.
pub struct CommandPtt {
    pub channel: Box<dyn Write + Send>,
    pub key: Vec<u8>,
    pub release: Vec<u8>,
    pub device: String,
}

impl PttSwitch for CommandPtt {
    fn set(&mut self, keyed: bool) -> Result<(), PttError> {
        let bytes = if keyed { &self.key } else { &self.release };
        self.channel
            .write_all(bytes)
            .and_then(|()| self.channel.flush())
            .map_err(|e| PttError::Command {
                device: self.device.clone(),
                reason: e.to_string(),
            })
    }

    fn describe(&self) -> String {
        format!("command on {}", self.device)
    }
}

type Shared = Arc<Mutex<Box<dyn PttSwitch>>>;

/// Every switch made, for the panic hook.
type Registry = Mutex<Vec<Weak<Mutex<Box<dyn PttSwitch>>>>>;

fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(|| Mutex::new(Vec::new()))
}

/// A switch that releases PTT whenever it is let go of; see the [module](self)
/// contract.
pub struct SafePtt {
    switch: Shared,
    keyed: bool,
}

impl SafePtt {
    /// Takes `switch`, releases it at once (a port opened by the kernel may have come
    /// up keyed), and registers it with the panic hook.
    pub fn new(switch: Box<dyn PttSwitch>) -> Result<SafePtt, PttError> {
        let switch: Shared = Arc::new(Mutex::new(switch));
        let mut ptt = SafePtt {
            switch,
            keyed: true,
        };
        ptt.set(false)?;
        if let Ok(mut all) = registry().lock() {
            all.retain(|w| w.strong_count() > 0);
            all.push(Arc::downgrade(&ptt.switch));
        }
        Ok(ptt)
    }

    pub fn set(&mut self, keyed: bool) -> Result<(), PttError> {
        let result = match self.switch.lock() {
            Ok(mut switch) => switch.set(keyed),
            // A panic while switching: try again on the switch itself.
            Err(poisoned) => poisoned.into_inner().set(keyed),
        };
        // A failed release still counts as released: nothing more can be done here,
        // and the caller must not believe the transmitter is keyed for audio.
        if result.is_ok() || !keyed {
            self.keyed = keyed && result.is_ok();
        }
        result
    }

    pub fn is_keyed(&self) -> bool {
        self.keyed
    }

    pub fn describe(&self) -> String {
        match self.switch.lock() {
            Ok(switch) => switch.describe(),
            Err(poisoned) => poisoned.into_inner().describe(),
        }
    }
}

impl Drop for SafePtt {
    fn drop(&mut self) {
        let _ = self.set(false);
    }
}

/// Releases every live switch; for the panic hook, so it never blocks: a switch
/// another thread is using at that instant is left to its owner's drop.
pub fn release_all() -> usize {
    let Ok(all) = registry().try_lock() else {
        return 0;
    };
    let mut released = 0;
    for switch in all.iter().filter_map(Weak::upgrade) {
        if let Ok(mut s) = switch.try_lock()
            && s.set(false).is_ok()
        {
            released += 1;
        }
    }
    released
}

/// Installs a panic hook that releases every transmitter before the panic is
/// reported and unwinds; then the previous hook runs.
pub fn release_all_on_panic() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let released = release_all();
        eprintln!("emcomm: panic: released PTT on {released} port(s)");
        previous(info);
    }));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serial::modem_lines::InputLevels;

    /// Modem lines that record what was set.
    #[derive(Clone, Default)]
    struct Recorded(Arc<Mutex<Vec<(OutputLine, bool)>>>);

    impl ModemLines for Recorded {
        fn set(&mut self, line: OutputLine, level: bool) -> Result<(), LinesError> {
            self.0.lock().expect("lock").push((line, level));
            Ok(())
        }
        fn read(&mut self) -> Result<InputLevels, LinesError> {
            Ok(InputLevels::default())
        }
    }

    fn line_ptt(record: &Recorded, inverted: bool) -> SafePtt {
        SafePtt::new(Box::new(LinePtt {
            lines: record.clone(),
            wiring: Wired {
                line: OutputLine::Rts,
                inverted,
            },
            device: "test".into(),
        }))
        .expect("switch")
    }

    #[test]
    fn a_switch_is_released_when_made_and_when_dropped() {
        let record = Recorded::default();
        let mut ptt = line_ptt(&record, false);
        ptt.set(true).expect("keyed");
        assert!(ptt.is_keyed());
        drop(ptt);
        // Other tests may call `release_all` meanwhile, adding releases in between.
        let record = record.0.lock().expect("lock");
        assert_eq!(record.first(), Some(&(OutputLine::Rts, false)));
        assert!(record.contains(&(OutputLine::Rts, true)));
        assert_eq!(record.last(), Some(&(OutputLine::Rts, false)));
    }

    #[test]
    fn a_panicking_thread_releases_the_ptt_it_holds() {
        let record = Recorded::default();
        let inverted = record.clone();
        let result = std::thread::spawn(move || {
            let mut ptt = line_ptt(&inverted, true);
            ptt.set(true).expect("keyed");
            panic!("a bug while transmitting");
        })
        .join();
        assert!(result.is_err());
        // Inverted: keyed is RTS low, released is RTS high.
        assert_eq!(
            record.0.lock().expect("lock").last(),
            Some(&(OutputLine::Rts, true))
        );
    }

    #[test]
    fn release_all_reaches_every_live_switch() {
        let record = Recorded::default();
        let mut ptt = line_ptt(&record, false);
        ptt.set(true).expect("keyed");
        assert!(release_all() >= 1);
        assert_eq!(
            record.0.lock().expect("lock").last(),
            Some(&(OutputLine::Rts, false))
        );
    }

    #[test]
    fn the_cm108_report_sets_one_pin_as_an_output() {
        assert_eq!(cm108_report(3, true), [0, 0, 0b100, 0b100, 0]);
        assert_eq!(cm108_report(3, false), [0, 0, 0, 0b100, 0]);
        let file = std::env::temp_dir().join(format!("cm108-{}", std::process::id()));
        std::fs::write(&file, b"").expect("stand-in for hidraw");
        let mut ptt = Cm108Ptt::new(&file, 3, false).expect("pin");
        ptt.set(true).expect("written");
        assert_eq!(std::fs::read(&file).expect("read"), vec![0, 0, 4, 4, 0]);
        assert!(Cm108Ptt::new(&file, 9, false).is_err());
        let _ = std::fs::remove_file(file);
    }
}
