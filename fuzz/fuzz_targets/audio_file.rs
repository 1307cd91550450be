//! A WAV or FLAC file as an operator might hand one to a district: any bytes.
//!
//! [`read_audio_bytes`] returns audio or an error naming what was wrong, never panics,
//! and what it returns is mono audio at a sample rate it can state.
#![no_main]

use std::path::Path;

use codecs::audio_file::read_audio_bytes;
use libfuzzer_sys::fuzz_target;

/// libFuzzer's panic hook aborts on every panic, even one the product catches. The
/// product catches panics from symphonia's decoder (an arithmetic overflow in its FLAC
/// LPC predictor on crafted input) and reports the file; let those through, abort on
/// any other.
fn tolerate_caught_decoder_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let in_symphonia = info
                .location()
                .is_some_and(|l| l.file().contains("symphonia"));
            if !in_symphonia {
                previous(info);
            }
        }));
    });
}

fuzz_target!(|data: &[u8]| {
    tolerate_caught_decoder_panics();
    // The first byte picks the extension the probe is hinted with.
    let Some((hint, file)) = data.split_first() else {
        return;
    };
    let name = if hint % 2 == 0 {
        "fuzz.wav"
    } else {
        "fuzz.flac"
    };
    if let Ok(audio) = read_audio_bytes(file.to_vec(), Path::new(name)) {
        assert!(audio.sample_rate > 0, "audio without a sample rate");
        assert!(
            audio.samples.iter().all(|s| s.is_finite()),
            "a sample is not a number"
        );
    }
});
