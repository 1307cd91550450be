//! Helpers shared by the integration tests.

#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Path of a test file: the speech recordings live in the repository's `assets/audio`
/// (one copy, shared with the demo), made-up signals in this crate's `tests/fixtures`.
pub fn fixture(name: &str) -> PathBuf {
    let crate_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let speech = crate_dir.join("..").join("assets").join("audio").join(name);
    if speech.exists() {
        return speech;
    }
    crate_dir.join("tests").join("fixtures").join(name)
}

/// A fresh directory under the system temporary directory, removed when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(purpose: &str) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let unique = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!(
            "emcomm-codecs-{purpose}-{}-{unique}",
            std::process::id()
        ));
        std::fs::create_dir_all(&path).expect("temporary directory can be created");
        Self(path)
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Deterministic white noise, uniformly distributed, at `rms` (linear, full scale 1.0).
pub fn white_noise(len: usize, rms: f32, seed: u64) -> Vec<f32> {
    let mut state = seed | 1;
    // A uniform variable on [-a, a] has an RMS of a / sqrt(3).
    let amplitude = rms * 3f32.sqrt();
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let unit = (state >> 11) as f64 / (1u64 << 53) as f64;
            ((unit * 2.0 - 1.0) as f32) * amplitude
        })
        .collect()
}

/// Root mean square of a signal, linear.
pub fn rms(samples: &[f32]) -> f32 {
    if samples.is_empty() {
        return 0.0;
    }
    let power: f64 = samples.iter().map(|s| f64::from(*s).powi(2)).sum();
    (power / samples.len() as f64).sqrt() as f32
}
