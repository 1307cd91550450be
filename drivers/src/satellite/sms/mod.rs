//! SMS over AT (3GPP TS 27.005), for Tiantong-1 satellite terminals and cellular
//! modems.
//!
//! * [`pdu`]: SMS-SUBMIT written and SMS-DELIVER read in PDU mode, UCS-2 for Chinese,
//!   long messages split with concatenation headers.
//!
//! The AT driver (`+CMGS`, `+CMTI`, reading and deleting stored messages, registration)
//! is not here yet (`docs/limitations.md`).

pub mod pdu;
