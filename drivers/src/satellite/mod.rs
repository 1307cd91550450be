//! Satellite terminals: the narrow bearers that carry alerts and field reports when the
//! fibre is cut.
//!
//! * [`beidou`]: BeiDou RDSS short-message terminals.

pub mod beidou;
