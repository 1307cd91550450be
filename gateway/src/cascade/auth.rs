//! Authenticating frames: the trailer that ends every frame, over every byte before it.
//!
//! Two schemes, and the trailer's scheme byte says which one a frame carries:
//!
//! * **SM2 with SM3** (GB/T 32918.2, the signature over `Z_A ‖ M` with the default
//!   distinguishing identifier): 64 bytes, made by the origin with its [`NodeKey`] and
//!   verified end to end with its [`NodePublicKey`]. The scheme for IP.
//! * **HMAC-SM3** (RFC 2104 with SM3, GB/T 32905) under the [`LinkKey`] of one link,
//!   truncated to its leftmost 8 (by default), 16 or all 32 bytes. It proves only that
//!   the node at the other end of the link sent the frame, so a relay that forwards a
//!   frame onto a narrow bearer tags it again with that link's key ([`reseal`]).
//!
//! Verification takes every key a node holds for the signer or the link, so that a key
//! can be rotated: during the rotation window both the old and the new key are
//! configured, and a frame is authentic if any of them verifies it. Tags are compared in
//! constant time.

use hmac::{KeyInit, Mac};
use sm2::dsa::Signature;
use sm2::dsa::signature::{Signer, Verifier};
use thiserror::Error;

use super::frame::{
    Body, EncodeError, FULL_TAG_BYTES, Frame, Header, SIGNATURE_BYTES, TagLength, Trailer,
    encode_authenticated,
};
use super::keys::{LinkKey, NodeKey, NodePublicKey};

type HmacSm3 = hmac::Hmac<sm3::Sm3>;

/// How a node authenticates a frame it sends.
#[derive(Debug, Clone, Copy)]
pub enum Sealer<'a> {
    /// Signs with the node's own key: a frame this node originates, over IP.
    Sm2(&'a NodeKey),
    /// Tags with the key of the link it goes over.
    Hmac(&'a LinkKey, TagLength),
}

/// Why a frame could not be sealed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SealError {
    #[error(transparent)]
    Encode(#[from] EncodeError),
    #[error("SM2 signing failed")]
    Signing,
}

/// The bytes to send: the header and body encoded, then the trailer `sealer` makes.
pub fn seal(header: &Header, body: &Body, sealer: Sealer<'_>) -> Result<Vec<u8>, SealError> {
    let mut bytes = encode_authenticated(header, body)?;
    let trailer = trailer_for(&bytes, sealer)?;
    Ok(append_trailer(&mut bytes, &trailer))
}

/// The received `bytes` of `frame` with its trailer replaced by one `sealer` makes, as
/// a relay passes a frame on over another link.
pub fn reseal(frame: &Frame, bytes: &[u8], sealer: Sealer<'_>) -> Result<Vec<u8>, SealError> {
    let mut authenticated = authenticated_part(frame, bytes).to_vec();
    let trailer = trailer_for(&authenticated, sealer)?;
    Ok(append_trailer(&mut authenticated, &trailer))
}

/// The bytes a decoded frame's trailer covers.
pub fn authenticated_part<'a>(frame: &Frame, bytes: &'a [u8]) -> &'a [u8] {
    let len = bytes.len().saturating_sub(frame.trailer.encoded_len());
    bytes.get(..len).unwrap_or_default()
}

/// Whether one of `keys` made `signature` over `message`.
pub fn verify_signature(
    keys: &[NodePublicKey],
    message: &[u8],
    signature: &[u8; SIGNATURE_BYTES],
) -> bool {
    let Ok(signature) = Signature::from_slice(signature) else {
        return false;
    };
    keys.iter()
        .any(|key| key.verifying().verify(message, &signature).is_ok())
}

/// Whether `tag` is the leftmost bytes of HMAC-SM3 over `message` under one of `keys`.
/// Each key's comparison takes the same time wherever the tags differ.
pub fn verify_tag(keys: &[LinkKey], message: &[u8], tag: &[u8]) -> bool {
    let mut any = false;
    for key in keys {
        // Every key is tried, so the time does not tell which key matched.
        any |= hmac_over(key, message)
            .map(|mac| mac.verify_truncated_left(tag).is_ok())
            .unwrap_or(false);
    }
    any
}

fn hmac_over(key: &LinkKey, message: &[u8]) -> Option<HmacSm3> {
    let mut mac = <HmacSm3 as KeyInit>::new_from_slice(key.bytes()).ok()?;
    mac.update(message);
    Some(mac)
}

fn trailer_for(bytes: &[u8], sealer: Sealer<'_>) -> Result<Trailer, SealError> {
    match sealer {
        Sealer::Sm2(key) => {
            let signature: Signature = key
                .signing()
                .try_sign(bytes)
                .map_err(|_| SealError::Signing)?;
            let mut carried = [0; SIGNATURE_BYTES];
            for (c, b) in carried.iter_mut().zip(signature.to_bytes().iter()) {
                *c = *b;
            }
            Ok(Trailer::Sm2(carried))
        }
        Sealer::Hmac(key, length) => {
            let mac = hmac_over(key, bytes).ok_or(SealError::Signing)?;
            let full = mac.finalize().into_bytes();
            let mut tag = [0; FULL_TAG_BYTES];
            for (t, b) in tag.iter_mut().zip(full.iter()).take(length.bytes()) {
                *t = *b;
            }
            Ok(Trailer::Hmac { length, tag })
        }
    }
}

fn append_trailer(bytes: &mut Vec<u8>, trailer: &Trailer) -> Vec<u8> {
    bytes.push(trailer.scheme());
    bytes.extend_from_slice(trailer.tag());
    std::mem::take(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cascade::frame::{Cancel, Timestamp, decode};

    fn header() -> Header {
        Header {
            origin: "410503".parse().expect("area"),
            sequence: 7,
            valid_from: Timestamp(1_750_000_000),
            valid_until: Timestamp(1_750_003_600),
        }
    }

    fn cancel() -> Body {
        Body::Cancel(Cancel { number: 42 })
    }

    fn verifies(bytes: &[u8], public: &[NodePublicKey], links: &[LinkKey]) -> bool {
        let Ok(frame) = decode(bytes) else {
            return false;
        };
        let message = authenticated_part(&frame, bytes);
        match &frame.trailer {
            Trailer::Sm2(signature) => verify_signature(public, message, signature),
            Trailer::Hmac { .. } => verify_tag(links, message, frame.trailer.tag()),
        }
    }

    #[test]
    fn a_signed_frame_verifies_with_the_origins_public_key_only() {
        let key = NodeKey::generate().expect("random");
        let other = NodeKey::generate().expect("random");
        let bytes = seal(&header(), &cancel(), Sealer::Sm2(&key)).expect("sealed");
        assert_eq!(bytes.len(), 18 + 4 + 1 + SIGNATURE_BYTES);
        assert!(verifies(&bytes, &[key.public()], &[]));
        assert!(!verifies(&bytes, &[other.public()], &[]));
    }

    #[test]
    fn a_forged_signature_is_not_authentic() {
        let key = NodeKey::generate().expect("random");
        let forger = NodeKey::generate().expect("random");
        let genuine = seal(&header(), &cancel(), Sealer::Sm2(&key)).expect("sealed");
        let forged = seal(&header(), &cancel(), Sealer::Sm2(&forger)).expect("sealed");
        assert_eq!(genuine.len(), forged.len());
        assert!(!verifies(&forged, &[key.public()], &[]));
    }

    #[test]
    fn a_tag_from_the_wrong_link_key_is_not_authentic() {
        let link = LinkKey::from_bytes([1; 32]);
        let wrong = LinkKey::from_bytes([2; 32]);
        let bytes = seal(&header(), &cancel(), Sealer::Hmac(&link, TagLength::Eight)).expect("ok");
        assert_eq!(bytes.len(), 18 + 4 + 1 + 8);
        assert!(verifies(&bytes, &[], std::slice::from_ref(&link)));
        assert!(!verifies(&bytes, &[], std::slice::from_ref(&wrong)));
        assert!(
            verifies(&bytes, &[], &[wrong, link]),
            "old and new during a rotation"
        );
    }

    #[test]
    fn a_bit_flipped_anywhere_makes_the_frame_fail_to_decode_or_to_verify() {
        let key = NodeKey::generate().expect("random");
        let link = LinkKey::from_bytes([9; 32]);
        for sealer in [Sealer::Sm2(&key), Sealer::Hmac(&link, TagLength::Eight)] {
            let bytes = seal(&header(), &cancel(), sealer).expect("sealed");
            for bit in 0..bytes.len() * 8 {
                let mut flipped = bytes.clone();
                flipped[bit / 8] ^= 1 << (bit % 8);
                assert!(
                    !verifies(&flipped, &[key.public()], std::slice::from_ref(&link)),
                    "bit {bit} flipped still verifies"
                );
            }
        }
    }

    #[test]
    fn a_relay_retags_a_signed_frame_for_a_narrow_link_without_touching_its_content() {
        let key = NodeKey::generate().expect("random");
        let link = LinkKey::from_bytes([3; 32]);
        let signed = seal(&header(), &cancel(), Sealer::Sm2(&key)).expect("sealed");
        let frame = decode(&signed).expect("decodes");
        let tagged = reseal(&frame, &signed, Sealer::Hmac(&link, TagLength::Eight)).expect("ok");
        assert_eq!(tagged[..22], signed[..22]);
        assert_eq!(tagged.len(), 22 + 9);
        assert!(verifies(&tagged, &[], &[link]));
    }

    #[test]
    fn signing_is_deterministic_per_rfc_6979() {
        let key = NodeKey::from_hex(&"11".repeat(32)).expect("key");
        let once = seal(&header(), &cancel(), Sealer::Sm2(&key)).expect("sealed");
        let twice = seal(&header(), &cancel(), Sealer::Sm2(&key)).expect("sealed");
        assert_eq!(once, twice);
    }
}
