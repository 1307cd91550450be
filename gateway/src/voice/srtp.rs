//! SRTP on the voice links between gateways (RFC 3711).
//!
//! Voice between two emcomm gateways (a district and its streets, a street and the
//! village gateways it relays to) goes as SRTP and SRTCP; only the last hop to
//! loudspeakers that cannot do better stays plain RTP. The crypto suite is
//! `AES_CM_128_HMAC_SHA1_80` (RFC 3711 §4.1.1 and §4.2.1, named in RFC 4568 §6.2.1): the
//! one every SRTP implementation offers, so GStreamer's `srtpenc`/`srtpdec` or libsrtp
//! interwork. Keys are not negotiated: both ends of a link hold the same [`SrtpKey`]
//! file, made by `emcomm keys srtp`.
//!
//! A [`SrtpLink`] is one end of one link. It protects what this end sends and
//! unprotects what it receives, each direction under its own cryptographic context
//! (RFC 3711 §3.2.3). One master key serves both directions: each end sends under its
//! own SSRCs, and the keystream is a function of SSRC and packet index (§4.1.1), so the
//! two directions share no keystream while their SSRCs differ.
//!
//! Contract:
//!
//! * Every packet received is authenticated (an 80-bit HMAC-SHA1 tag) before anything
//!   of it is used; one that fails, or that was seen before (a replay window of 64
//!   packets per SSRC, §3.3.2), is refused with an [`SrtpRefusal`] and changes nothing.
//!   An SRTCP packet whose encryption flag is clear is refused too: every SRTCP packet
//!   sent here is encrypted, and the library used accepts an unencrypted one without
//!   checking its tag.
//! * A packet under an SSRC not yet seen is tried in a context of its own, kept only
//!   once the packet authenticates: forged packets under random SSRCs cost time, not
//!   memory. At most [`MAX_RECEIVED_SSRCS`] SSRCs keep their state; the one heard from
//!   least recently is forgotten first.
//! * Nothing here panics on bytes from the network: lengths are checked before the
//!   library reads them, RFC 8285 header extension elements included (the library's
//!   RTP header reader trusts their lengths).

use std::collections::HashMap;

use thiserror::Error;
use webrtc_srtp::context::Context;
use webrtc_srtp::option::{srtcp_replay_protection, srtp_replay_protection};
use webrtc_srtp::protection_profile::ProtectionProfile;

use crate::cascade::keys::SrtpKey;

/// SSRCs whose replay state a link keeps for what it receives.
pub const MAX_RECEIVED_SSRCS: usize = 32;

/// Packets per SSRC in the replay window (RFC 3711 §3.3.2 asks for at least 64).
const REPLAY_WINDOW: usize = 64;

/// Bytes of the authentication tag of `AES_CM_128_HMAC_SHA1_80`.
const AUTH_TAG_LEN: usize = 10;

/// The RTP fixed header (RFC 3550 §5.1).
const RTP_HEADER_LEN: usize = 12;

/// An SRTCP packet's first header and sender SSRC, its E flag and index, and its tag
/// (RFC 3711 §3.4).
const SRTCP_MIN_LEN: usize = 8 + 4 + AUTH_TAG_LEN;

/// Why a received packet was not taken.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SrtpRefusal {
    #[error("{len} bytes: too short for SRTP")]
    TooShort { len: usize },
    #[error("not RTP version 2")]
    NotRtp,
    #[error("an RTP header whose CSRCs or extension overrun the packet")]
    BadHeader,
    #[error("an SRTCP packet sent unencrypted")]
    Unencrypted,
    #[error("authentication failed (wrong key, altered, or plain RTP)")]
    Authentication,
    #[error("a replayed packet")]
    Replayed,
}

/// Why a packet could not be protected for sending.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("cannot protect a packet: {0}")]
pub struct ProtectError(String);

/// One end of a voice link between two gateways.
pub struct SrtpLink {
    key: SrtpKey,
    outbound: Context,
    rtp_in: Received,
    rtcp_in: Received,
}

impl std::fmt::Debug for SrtpLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SrtpLink")
            .field("rtp_ssrcs", &self.rtp_in.contexts.len())
            .field("rtcp_ssrcs", &self.rtcp_in.contexts.len())
            .finish()
    }
}

/// Receiving contexts by SSRC, with the order they were last used in.
#[derive(Default)]
struct Received {
    contexts: HashMap<u32, (Context, u64)>,
    uses: u64,
}

impl SrtpLink {
    pub fn new(key: &SrtpKey) -> Result<SrtpLink, ProtectError> {
        Ok(SrtpLink {
            key: key.clone(),
            outbound: context(key)?,
            rtp_in: Received::default(),
            rtcp_in: Received::default(),
        })
    }

    /// `packet` as SRTP: payload encrypted, tag appended.
    pub fn protect_rtp(&mut self, packet: &[u8]) -> Result<Vec<u8>, ProtectError> {
        if packet.len() < RTP_HEADER_LEN || packet[0] >> 6 != 2 {
            return Err(ProtectError("not an RTP packet".into()));
        }
        if !header_fits(packet) {
            return Err(ProtectError(SrtpRefusal::BadHeader.to_string()));
        }
        self.outbound
            .encrypt_rtp(packet)
            .map(|b| b.to_vec())
            .map_err(|e| ProtectError(e.to_string()))
    }

    /// A compound RTCP packet as SRTCP: encrypted after the first SSRC, index and tag
    /// appended.
    pub fn protect_rtcp(&mut self, compound: &[u8]) -> Result<Vec<u8>, ProtectError> {
        if compound.len() < 8 || compound[0] >> 6 != 2 {
            return Err(ProtectError("not an RTCP packet".into()));
        }
        self.outbound
            .encrypt_rtcp(compound)
            .map(|b| b.to_vec())
            .map_err(|e| ProtectError(e.to_string()))
    }

    /// The RTP packet inside an SRTP one, once its tag checks and it is no replay.
    pub fn unprotect_rtp(&mut self, packet: &[u8]) -> Result<Vec<u8>, SrtpRefusal> {
        if packet.len() < RTP_HEADER_LEN + AUTH_TAG_LEN {
            return Err(SrtpRefusal::TooShort { len: packet.len() });
        }
        if packet[0] >> 6 != 2 {
            return Err(SrtpRefusal::NotRtp);
        }
        if !header_fits(&packet[..packet.len() - AUTH_TAG_LEN]) {
            return Err(SrtpRefusal::BadHeader);
        }
        let ssrc = u32::from_be_bytes([packet[8], packet[9], packet[10], packet[11]]);
        self.rtp_in.open(&self.key, ssrc, |c| c.decrypt_rtp(packet))
    }

    /// The compound RTCP packet inside an SRTCP one, once its tag checks and it is no
    /// replay.
    pub fn unprotect_rtcp(&mut self, packet: &[u8]) -> Result<Vec<u8>, SrtpRefusal> {
        if packet.len() < SRTCP_MIN_LEN {
            return Err(SrtpRefusal::TooShort { len: packet.len() });
        }
        if packet[0] >> 6 != 2 {
            return Err(SrtpRefusal::NotRtp);
        }
        // The E flag leads the 32-bit word before the tag (RFC 3711 §3.4).
        if packet[packet.len() - AUTH_TAG_LEN - 4] & 0x80 == 0 {
            return Err(SrtpRefusal::Unencrypted);
        }
        let ssrc = u32::from_be_bytes([packet[4], packet[5], packet[6], packet[7]]);
        self.rtcp_in
            .open(&self.key, ssrc, |c| c.decrypt_rtcp(packet))
    }
}

impl Received {
    /// Runs `open` in the SSRC's context, or in a new one kept only if it succeeds.
    fn open(
        &mut self,
        key: &SrtpKey,
        ssrc: u32,
        open: impl FnOnce(&mut Context) -> Result<bytes::Bytes, webrtc_srtp::Error>,
    ) -> Result<Vec<u8>, SrtpRefusal> {
        self.uses += 1;
        let uses = self.uses;
        if let Some((context, used)) = self.contexts.get_mut(&ssrc) {
            let plain = open(context).map_err(refusal)?;
            *used = uses;
            return Ok(plain.to_vec());
        }

        let mut fresh = context(key).map_err(|_| SrtpRefusal::Authentication)?;
        let plain = open(&mut fresh).map_err(refusal)?;
        if self.contexts.len() >= MAX_RECEIVED_SSRCS {
            if let Some(oldest) = self
                .contexts
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(ssrc, _)| *ssrc)
            {
                self.contexts.remove(&oldest);
            }
        }
        self.contexts.insert(ssrc, (fresh, uses));
        Ok(plain.to_vec())
    }
}

/// Whether an RTP packet's CSRC list and header extension lie inside it, and each
/// element of an RFC 8285 extension (one-byte profile `0xBEDE` §4.2, two-byte profile
/// `0x1000` §4.3, the one the library reads as such) inside the extension: what the
/// library's header reader assumes without checking. The packet is at least the
/// fixed header.
fn header_fits(packet: &[u8]) -> bool {
    let csrcs = usize::from(packet[0] & 0x0f);
    let mut at = RTP_HEADER_LEN + 4 * csrcs;
    if packet.len() < at {
        return false;
    }
    if packet[0] & 0x10 == 0 {
        return true;
    }
    let Some(&[p0, p1, l0, l1]) = packet.get(at..at + 4) else {
        return false;
    };
    at += 4;
    let end = at + 4 * usize::from(u16::from_be_bytes([l0, l1]));
    if packet.len() < end {
        return false;
    }
    let two_byte = match u16::from_be_bytes([p0, p1]) {
        0xBEDE => false,
        0x1000 => true,
        _ => return true,
    };
    while at < end {
        let first = packet[at];
        at += 1;
        if first == 0 {
            continue; // padding
        }
        let length = if two_byte {
            let Some(&length) = packet[..end].get(at) else {
                return false;
            };
            at += 1;
            usize::from(length)
        } else if first >> 4 == 0x0f {
            return true; // the reserved ID ends the reading (§4.2)
        } else {
            usize::from(first & 0x0f) + 1
        };
        at += length;
        if at > end {
            return false;
        }
    }
    true
}

fn context(key: &SrtpKey) -> Result<Context, ProtectError> {
    Context::new(
        key.master_key(),
        key.master_salt(),
        ProtectionProfile::Aes128CmHmacSha1_80,
        Some(srtp_replay_protection(REPLAY_WINDOW)),
        Some(srtcp_replay_protection(REPLAY_WINDOW)),
    )
    .map_err(|e| ProtectError(e.to_string()))
}

fn refusal(error: webrtc_srtp::Error) -> SrtpRefusal {
    use webrtc_srtp::Error as E;
    match error {
        E::SrtpSsrcDuplicated(..) | E::SrtcpSsrcDuplicated(..) | E::ErrDuplicated => {
            SrtpRefusal::Replayed
        }
        E::ErrTooShortRtp | E::ErrTooShortRtcp | E::SrtpTooSmall(..) | E::SrtcpTooSmall(..) => {
            SrtpRefusal::TooShort { len: 0 }
        }
        _ => SrtpRefusal::Authentication,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use drivers::rtp::packet::{OutgoingHeader, build_packet};
    use drivers::rtp::rtcp::{CompoundSpec, RtcpEvent, build_compound, parse_compound};

    fn key(first: u8) -> SrtpKey {
        let hex: String = (first..first + 30).map(|b| format!("{b:02x}")).collect();
        SrtpKey::from_hex(&hex).expect("30 bytes")
    }

    fn rtp(ssrc: u32, sequence: u16, payload: &[u8]) -> Vec<u8> {
        let header = OutgoingHeader {
            marker: false,
            payload_type: 111,
            sequence,
            timestamp: u32::from(sequence) * 960,
            ssrc,
        };
        build_packet(&header, payload)
    }

    fn bye(ssrc: u32) -> Vec<u8> {
        build_compound(&CompoundSpec {
            ssrc,
            sender: None,
            blocks: &[],
            cname: "district@410503",
            bye_reason: Some("end of play"),
            note: None,
        })
        .expect("compound")
    }

    #[test]
    fn a_packet_protected_at_one_end_is_the_same_packet_at_the_other() {
        let (mut district, mut street) = (
            SrtpLink::new(&key(0)).expect("link"),
            SrtpLink::new(&key(0)).expect("link"),
        );
        let packet = rtp(0x1234_5678, 7, b"voice frame");
        let sent = district.protect_rtp(&packet).expect("protected");
        assert_eq!(sent.len(), packet.len() + AUTH_TAG_LEN);
        assert_eq!(
            sent[..RTP_HEADER_LEN],
            packet[..RTP_HEADER_LEN],
            "the header stays clear"
        );
        assert_ne!(
            sent[RTP_HEADER_LEN..packet.len()],
            packet[RTP_HEADER_LEN..],
            "the payload is not"
        );
        assert_eq!(street.unprotect_rtp(&sent), Ok(packet));

        let report = bye(0x1234_5678);
        let sent = district.protect_rtcp(&report).expect("protected");
        let opened = street.unprotect_rtcp(&sent).expect("opened");
        assert_eq!(opened, report);
        assert!(matches!(
            parse_compound(&opened).expect("RTCP")[..],
            [.., RtcpEvent::Bye { .. }]
        ));
    }

    #[test]
    fn a_replayed_packet_is_refused_and_the_stream_goes_on() {
        let (mut district, mut street) = (
            SrtpLink::new(&key(0)).expect("link"),
            SrtpLink::new(&key(0)).expect("link"),
        );
        let first = district.protect_rtp(&rtp(9, 1, b"one")).expect("protected");
        let second = district.protect_rtp(&rtp(9, 2, b"two")).expect("protected");
        assert!(street.unprotect_rtp(&first).is_ok());
        assert_eq!(street.unprotect_rtp(&first), Err(SrtpRefusal::Replayed));
        assert!(street.unprotect_rtp(&second).is_ok());

        let report = district.protect_rtcp(&bye(9)).expect("protected");
        assert!(street.unprotect_rtcp(&report).is_ok());
        assert_eq!(street.unprotect_rtcp(&report), Err(SrtpRefusal::Replayed));
    }

    #[test]
    fn plain_rtp_a_wrong_key_and_an_altered_byte_are_refused() {
        let mut district = SrtpLink::new(&key(0)).expect("link");
        let mut street = SrtpLink::new(&key(0)).expect("link");
        let mut stranger = SrtpLink::new(&key(1)).expect("link");
        let plain = rtp(5, 1, b"plain voice, no tag at all");
        assert_eq!(
            street.unprotect_rtp(&plain),
            Err(SrtpRefusal::Authentication)
        );
        let forged = stranger
            .protect_rtp(&rtp(5, 2, b"forged"))
            .expect("protected");
        assert_eq!(
            street.unprotect_rtp(&forged),
            Err(SrtpRefusal::Authentication)
        );
        let mut altered = district
            .protect_rtp(&rtp(5, 3, b"genuine"))
            .expect("protected");
        altered[RTP_HEADER_LEN] ^= 1;
        assert_eq!(
            street.unprotect_rtp(&altered),
            Err(SrtpRefusal::Authentication)
        );
        assert_eq!(
            street.rtp_in.contexts.len(),
            0,
            "no state kept for refused packets"
        );

        let forged = stranger.protect_rtcp(&bye(5)).expect("protected");
        assert_eq!(
            street.unprotect_rtcp(&forged),
            Err(SrtpRefusal::Authentication)
        );
    }

    #[test]
    fn srtcp_with_its_encryption_flag_cleared_is_refused() {
        let mut district = SrtpLink::new(&key(0)).expect("link");
        let mut street = SrtpLink::new(&key(0)).expect("link");
        let mut sent = district.protect_rtcp(&bye(5)).expect("protected");
        let flag = sent.len() - AUTH_TAG_LEN - 4;
        sent[flag] &= 0x7f;
        assert_eq!(street.unprotect_rtcp(&sent), Err(SrtpRefusal::Unencrypted));
        // A plain BYE with four bytes and a made-up tag appended, as a forger would send.
        let mut forged = bye(5);
        forged.extend_from_slice(&[0; 4 + AUTH_TAG_LEN]);
        assert_eq!(
            street.unprotect_rtcp(&forged),
            Err(SrtpRefusal::Unencrypted)
        );
    }

    #[test]
    fn short_and_foreign_bytes_are_refused_without_a_panic() {
        let mut street = SrtpLink::new(&key(0)).expect("link");
        for len in 0..40 {
            let bytes = vec![0x80; len];
            assert!(street.unprotect_rtp(&bytes).is_err());
            assert!(street.unprotect_rtcp(&bytes).is_err());
        }
        assert_eq!(street.unprotect_rtp(&[0u8; 30]), Err(SrtpRefusal::NotRtp));
    }

    /// Found by the `srtp_link` fuzz target: the library read an extension element's
    /// length past the end of the packet and panicked.
    #[test]
    fn header_extensions_that_overrun_are_refused_before_the_library_reads_them() {
        let key = key(3);
        let mut district = SrtpLink::new(&key).expect("link");
        let mut street = SrtpLink::new(&key).expect("link");
        // X set, one 4-byte word of extension under each profile, then a payload.
        let with_extension = |profile: u16, words: &[u8; 4]| {
            let mut p = rtp(0x5150_0001, profile, &[]);
            p[0] |= 0x10;
            p.extend_from_slice(&profile.to_be_bytes());
            p.extend_from_slice(&1u16.to_be_bytes());
            p.extend_from_slice(words);
            p.extend_from_slice(&[0xaa; 40]);
            p
        };
        // One-byte: ID 1, 2 bytes, padding. Two-byte: ID 1, 1 byte, padding.
        for good in [
            with_extension(0xBEDE, &[0x11, 0xab, 0xcd, 0x00]),
            with_extension(0x1000, &[0x01, 0x01, 0xab, 0x00]),
        ] {
            let sent = district.protect_rtp(&good).expect("protected");
            assert_eq!(street.unprotect_rtp(&sent).expect("opened"), good);
        }
        // An element longer than the extension; under the two-byte profile, longer
        // than the packet (the fuzzer's case); a length byte beyond the extension.
        for bad in [
            with_extension(0xBEDE, &[0x1f, 0, 0, 0]),
            with_extension(0x1000, &[0x01, 0xff, 0, 0]),
            with_extension(0x1000, &[0, 0, 0, 0x01]),
        ] {
            assert!(district.protect_rtp(&bad).is_err());
            let mut tagged = bad.clone();
            tagged.extend_from_slice(&[0; AUTH_TAG_LEN]);
            assert_eq!(street.unprotect_rtp(&tagged), Err(SrtpRefusal::BadHeader));
        }
        let mut cut = with_extension(0x1000, &[0; 4]);
        cut.truncate(RTP_HEADER_LEN + 6);
        cut.extend_from_slice(&[0; AUTH_TAG_LEN]);
        assert_eq!(street.unprotect_rtp(&cut), Err(SrtpRefusal::BadHeader));
    }

    #[test]
    fn the_least_recently_heard_ssrc_is_forgotten_past_the_limit() {
        let mut district = SrtpLink::new(&key(0)).expect("link");
        let mut street = SrtpLink::new(&key(0)).expect("link");
        let first = district.protect_rtp(&rtp(0, 1, b"x")).expect("protected");
        assert!(street.unprotect_rtp(&first).is_ok());
        for ssrc in 1..=MAX_RECEIVED_SSRCS as u32 {
            let packet = district
                .protect_rtp(&rtp(ssrc, 1, b"x"))
                .expect("protected");
            assert!(street.unprotect_rtp(&packet).is_ok());
        }
        assert_eq!(street.rtp_in.contexts.len(), MAX_RECEIVED_SSRCS);
        assert!(!street.rtp_in.contexts.contains_key(&0));
    }
}
