//! The voice path of a node: where voice comes from, how it is encoded once per codec,
//! and how a forwarding node relays it.

pub mod encoder;
pub mod forward;
pub mod grants;
pub mod link;
pub mod live;
pub mod programme;
pub mod srtp;
