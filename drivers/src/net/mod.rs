//! The socket side of RTP that is worth its own code.

pub mod batch_recv;
pub mod fanout;
