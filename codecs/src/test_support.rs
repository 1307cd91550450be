//! Measurements shared by the unit tests.

/// Frequency of a steady tone, from the time between its first and last rising zero crossing
/// (each placed by linear interpolation between the two samples around it).
pub fn frequency_of(samples: &[f32], sample_rate: u32) -> f32 {
    let crossings: Vec<f64> = samples
        .windows(2)
        .enumerate()
        .filter_map(|(n, pair)| match pair {
            [a, b] if *a < 0.0 && *b >= 0.0 => {
                let fraction = f64::from(-a) / f64::from(b - a);
                Some(n as f64 + fraction)
            }
            _ => None,
        })
        .collect();
    match (crossings.first(), crossings.last()) {
        (Some(first), Some(last)) if crossings.len() > 1 => {
            let periods = (crossings.len() - 1) as f64;
            (periods * f64::from(sample_rate) / (last - first)) as f32
        }
        _ => 0.0,
    }
}
