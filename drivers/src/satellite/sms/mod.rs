//! SMS over AT (3GPP TS 27.005), for Tiantong-1 satellite terminals and cellular
//! modems.
//!
//! * [`pdu`]: SMS-SUBMIT written and SMS-DELIVER read in PDU mode, UCS-2 for Chinese,
//!   long messages split with concatenation headers.
//! * [`modem`]: the AT driver as a bearer: sending part by part after each prompt,
//!   `+CMTI`, reading, joining and deleting stored messages, registration, signal.

pub mod modem;
pub mod pdu;
