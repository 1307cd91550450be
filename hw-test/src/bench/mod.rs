//! Benchmarks run by `make bench`; their figures go to `docs/performance.md`.

pub mod alerts;
pub mod cascade;
pub mod cascade_ip;
pub mod fanout;
pub mod radio;
