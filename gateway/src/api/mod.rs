//! The control API: HTTP/JSON for the command centre, the CLI and child gateways.

pub mod auth;
