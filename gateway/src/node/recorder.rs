//! The recorder of patched transmissions: every over that holds a patch's floor is
//! written as a WAV file (48 kHz mono, 16 bit) with a JSON file beside it saying which
//! patch, who keyed, when and for how long, and why it ended.
//!
//! Files are named `YYYYMMDDTHHMMSS.mmmZ-PATCH-MEMBER.wav` and `.json`, in UTC, so a
//! listing sorts by time; an existing name is never overwritten (a suffix is added). Recordings older than the retention time are deleted when the node
//! starts and after each recording; each deletion is logged.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};
use codecs::audio_file::WavSink;
use serde::Serialize;
use tracing::{info, warn};

use crate::patch::MemberId;

/// Where recordings go and how long they stay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecorderConfig {
    pub dir: PathBuf,
    pub retention: Duration,
}

/// What the JSON file beside a recording says.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RecordingMeta {
    pub patch: String,
    /// The member that keyed: whose voice this is.
    pub keyed_by: String,
    pub started_at: DateTime<Utc>,
    pub ended_at: DateTime<Utc>,
    pub duration_ms: u64,
    /// released (it unkeyed), preempted, stuck_carrier or stopped (the node stopped or
    /// the patch was removed).
    pub ended_by: String,
    pub audio: String,
}

struct Open {
    member: MemberId,
    started_at: DateTime<Utc>,
    wav: WavSink,
    base: PathBuf,
}

/// The recordings being written, one per patch with a talker.
pub struct Recorder {
    config: RecorderConfig,
    open: HashMap<String, Open>,
    last_prune: SystemTime,
}

/// Recordings are pruned at most this often.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

impl Recorder {
    /// Creates the folder and applies the retention to what is there.
    pub fn start(config: RecorderConfig) -> Result<Recorder, String> {
        std::fs::create_dir_all(&config.dir)
            .map_err(|e| format!("recordings folder {}: {e}", config.dir.display()))?;
        let mut recorder = Recorder {
            config,
            open: HashMap::new(),
            last_prune: SystemTime::UNIX_EPOCH,
        };
        recorder.prune(SystemTime::now());
        Ok(recorder)
    }

    /// `member` took `patch`'s floor: a recording starts.
    pub fn begin(&mut self, patch: &str, member: &MemberId, now: DateTime<Utc>) {
        self.end(patch, "stopped", now);
        let stem = format!(
            "{}-{}-{}",
            now.format("%Y%m%dT%H%M%S%.3fZ"),
            sanitise(patch),
            sanitise(&member.0)
        );
        let mut base = self.config.dir.join(&stem);
        let mut k = 1;
        while base.with_extension("wav").exists() || base.with_extension("json").exists() {
            k += 1;
            base = self.config.dir.join(format!("{stem}-{k}"));
        }
        match WavSink::create(base.with_extension("wav"), 48_000) {
            Ok(wav) => {
                self.open.insert(
                    patch.to_owned(),
                    Open {
                        member: member.clone(),
                        started_at: now,
                        wav,
                        base,
                    },
                );
            }
            Err(e) => warn!(%patch, error = %e, "cannot record this transmission"),
        }
    }

    /// A frame `patch` carried.
    pub fn frame(&mut self, patch: &str, frame: &[i16]) {
        if let Some(open) = self.open.get_mut(patch)
            && let Err(e) = open.wav.write(frame)
        {
            warn!(%patch, error = %e, "recording failed; the rest of this transmission is not kept");
            self.open.remove(patch);
        }
    }

    /// `patch`'s talker stopped holding the floor, for `ended_by`.
    pub fn end(&mut self, patch: &str, ended_by: &str, now: DateTime<Utc>) {
        let Some(open) = self.open.remove(patch) else {
            return;
        };
        let samples = open.wav.samples_written();
        let audio = open.base.with_extension("wav");
        if let Err(e) = open.wav.finish() {
            warn!(%patch, error = %e, "recording not finished");
            return;
        }
        let meta = RecordingMeta {
            patch: patch.to_owned(),
            keyed_by: open.member.0.clone(),
            started_at: open.started_at,
            ended_at: now,
            duration_ms: samples * 1000 / 48_000,
            ended_by: ended_by.to_owned(),
            audio: audio
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
        };
        let json = open.base.with_extension("json");
        let written = serde_json::to_vec_pretty(&meta)
            .map_err(|e| e.to_string())
            .and_then(|bytes| std::fs::write(&json, bytes).map_err(|e| e.to_string()));
        match written {
            Ok(()) => info!(
                %patch,
                keyed_by = %meta.keyed_by,
                duration_ms = meta.duration_ms,
                file = %audio.display(),
                "transmission recorded"
            ),
            Err(e) => warn!(%patch, error = %e, "recording's metadata not written"),
        }
        let now = SystemTime::now();
        if now.duration_since(self.last_prune).unwrap_or_default() >= PRUNE_EVERY {
            self.prune(now);
        }
    }

    /// Ends every open recording: the node is stopping.
    pub fn end_all(&mut self, now: DateTime<Utc>) {
        let patches: Vec<String> = self.open.keys().cloned().collect();
        for patch in patches {
            self.end(&patch, "stopped", now);
        }
    }

    /// Deletes recordings (both files) last written before the retention time.
    fn prune(&mut self, now: SystemTime) {
        self.last_prune = now;
        let Ok(entries) = std::fs::read_dir(&self.config.dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let is_recording = matches!(
                path.extension().and_then(|e| e.to_str()),
                Some("wav" | "json")
            ) && path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(is_recording_name);
            let old = entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| now.duration_since(t).ok())
                .is_some_and(|age| age > self.config.retention);
            if is_recording && old && self.is_closed(&path) {
                match std::fs::remove_file(&path) {
                    Ok(()) => info!(file = %path.display(), "recording past its retention deleted"),
                    Err(e) => {
                        warn!(file = %path.display(), error = %e, "cannot delete an old recording")
                    }
                }
            }
        }
    }

    fn is_closed(&self, path: &Path) -> bool {
        !self
            .open
            .values()
            .any(|o| path.with_extension("") == o.base)
    }
}

/// Whether `name` is one the recorder gives: it starts with `YYYYMMDDTHHMMSS`.
fn is_recording_name(name: &str) -> bool {
    let b = name.as_bytes();
    b.len() > 16
        && b[..8].iter().all(u8::is_ascii_digit)
        && b[8] == b'T'
        && b[9..15].iter().all(u8::is_ascii_digit)
}

/// A name safe in a file name: letters, digits, `-` and `_` kept, the rest `_`.
fn sanitise(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_over_is_recorded_with_who_keyed_it_and_old_recordings_are_deleted() {
        let dir = std::env::temp_dir().join(format!("emcomm-recorder-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("folder");
        let stale = dir.join("20200101T000000.000Z-old-tg-1.wav");
        let other = dir.join("patches.json");
        std::fs::write(&other, b"[]").expect("other file");
        std::fs::write(&stale, b"old").expect("old file");
        let long_ago = SystemTime::now() - Duration::from_secs(3 * 86_400);
        std::fs::File::options()
            .write(true)
            .open(&stale)
            .and_then(|f| f.set_modified(long_ago))
            .expect("age the file");

        let mut recorder = Recorder::start(RecorderConfig {
            dir: dir.clone(),
            retention: Duration::from_secs(86_400),
        })
        .expect("recorder");
        std::fs::File::options()
            .write(true)
            .open(&other)
            .and_then(|f| f.set_modified(long_ago))
            .expect("age the file");
        let recorder_again = Recorder::start(RecorderConfig {
            dir: dir.clone(),
            retention: Duration::from_secs(86_400),
        });
        drop(recorder_again);
        assert!(!stale.exists(), "older than the retention: deleted");
        assert!(other.exists(), "not a recording: kept");

        let t0: DateTime<Utc> = "2026-12-04T08:00:00Z".parse().expect("time");
        recorder.begin("flood", &MemberId::from("tg-1001"), t0);
        for _ in 0..50 {
            recorder.frame("flood", &[100; 960]);
        }
        recorder.end("flood", "released", t0 + chrono::Duration::seconds(1));

        let base = dir.join("20261204T080000.000Z-flood-tg-1001");
        let audio = codecs::audio_file::read_audio(base.with_extension("wav")).expect("wav");
        assert_eq!(audio.duration(), Duration::from_secs(1));
        let meta: serde_json::Value =
            serde_json::from_slice(&std::fs::read(base.with_extension("json")).expect("json"))
                .expect("parses");
        assert_eq!(meta["keyed_by"], "tg-1001");
        assert_eq!(meta["duration_ms"], 1000);
        assert_eq!(meta["ended_by"], "released");
        assert_eq!(meta["started_at"], "2026-12-04T08:00:00Z");
        std::fs::remove_dir_all(dir).expect("clean up");
    }
}
