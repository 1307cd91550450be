//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::PathBuf;

/// The repository's root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The `emcomm` and `emcomm-bench` binaries of this build.
pub fn binaries() -> (PathBuf, PathBuf) {
    let bench = PathBuf::from(env!("CARGO_BIN_EXE_emcomm-bench"));
    let emcomm = bench.with_file_name("emcomm");
    assert!(
        emcomm.exists(),
        "build the workspace first: {} is missing",
        emcomm.display()
    );
    (emcomm, bench)
}

/// A scratch folder for one test, unique to this process.
pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("emcomm-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch folder");
    dir
}

/// Frequency of a steady tone from its rising zero crossings.
pub fn pitch<T: Copy + Into<f64>>(samples: &[T], sample_rate: u32) -> f64 {
    let crossings: Vec<usize> = samples
        .windows(2)
        .enumerate()
        .filter(|(_, w)| w[0].into() < 0.0 && w[1].into() >= 0.0)
        .map(|(i, _)| i)
        .collect();
    let (Some(first), Some(last)) = (crossings.first(), crossings.last()) else {
        return 0.0;
    };
    (crossings.len() - 1) as f64 * f64::from(sample_rate) / (last - first) as f64
}
