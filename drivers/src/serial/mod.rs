//! Serial ports: opening them safely for a radio, and their modem control lines.

pub mod modem_lines;
pub mod port;
