//! The cascade's frames: what district, street and village nodes send each other over
//! every bearer, and how a node decides to trust what it receives.
//!
//! Sans-IO: nothing here opens a socket, reads a clock or sleeps. The caller passes
//! bytes and the time, and stores the state it is handed.
//!
//! Sending a frame:
//!
//! 1. take a sequence number from the origin's [`replay::SequenceAllocator`], storing
//!    the reservation it asks to persist before going on;
//! 2. [`auth::seal`] the header and body: SM2 over IP, an HMAC-SM3 link tag on a narrow
//!    bearer;
//! 3. [`fragment::fragment`] the bytes for the bearer's message size.
//!
//! Receiving one:
//!
//! 1. push each message into the link's [`fragment::Reassembler`] (and call its
//!    `expire` at its `next_deadline`);
//! 2. give each complete frame to [`accept::Acceptor::accept`] with the link it came
//!    over and the time; log a refusal with its reason, drop a duplicate;
//! 3. store the acceptor's replay state, then act on the new frame.
//!
//! * [`frame`]: the frame's layout, kinds and bodies; the parser.
//! * [`fragment`]: fragments for narrow bearers, and their reassembly.
//! * [`keys`]: SM2 node keys and HMAC link keys, and their files.
//! * [`auth`]: the trailer: sealing and verifying.
//! * [`replay`]: sequence numbers: the origin's allocator, the receiver's window.
//! * [`accept`]: the acceptance check, and the node's clock against a trusted time.
//! * [`store`]: what the relay keeps on disk, and the field reports that reached the
//!   node.
//! * [`relay`]: a node's links and their routes: queues, acknowledgements, retries,
//!   failover between bearers and back, what flows up and down.
//! * [`samples`]: fixed frames for tests, fuzz seeds and the documentation.
//!
//! The byte layout is documented in `docs/frames.md`.

pub mod accept;
pub mod auth;
pub mod fragment;
pub mod frame;
pub mod keys;
pub mod relay;
pub mod replay;
pub mod samples;
pub mod store;
