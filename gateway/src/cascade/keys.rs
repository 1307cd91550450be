//! The keys that authenticate frames, and the files that hold them.
//!
//! * [`NodeKey`]: a node's SM2 private key (GB/T 32918), which signs the frames it
//!   originates. It never leaves the node.
//! * [`NodePublicKey`]: the matching public key, which each neighbour holds in its
//!   configuration to verify that node's frames.
//! * [`LinkKey`]: a 32-byte secret shared by the two ends of one link, for the
//!   truncated HMAC-SM3 tag of the bearers too narrow for a signature.
//! * [`SrtpKey`]: the SRTP master key and salt (16 and 14 bytes) shared by the two
//!   gateways of one voice link (RFC 3711 §8.2, suite `AES_CM_128_HMAC_SHA1_80`).
//!
//! Every key file is text: lines starting with `#` are comments, and the rest is the key
//! in hexadecimal (white space ignored). A private key is 64 digits (the 32-byte
//! scalar); a public key 66 or 130 digits (the SEC1 compressed or uncompressed point,
//! GB/T 32918.1 §4.2.9); a link key 64 digits; an SRTP key 60 digits, the master key
//! then the master salt, as in an SDES `inline:` key (RFC 4568 §6.1). A private or link key file that group or
//! others may read is refused, as ssh refuses such an identity file.
//!
//! SM2 signatures use the default distinguishing identifier of GM/T 0009-2012 §10,
//! `1234567812345678`, as interoperable SM2 software does when none is agreed.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use sm2::dsa::{SigningKey, VerifyingKey};
use sm2::elliptic_curve::Generate;
use thiserror::Error;

use crate::satellite::outbox::to_hex;

/// The SM2 distinguishing identifier (GM/T 0009-2012 §10 default user ID).
pub const DISTINGUISHING_ID: &str = "1234567812345678";

/// Bytes of a link key.
pub const LINK_KEY_BYTES: usize = 32;

/// Bytes of an SRTP master key (AES-128) and of its master salt (RFC 3711 §8.2).
pub const SRTP_MASTER_KEY_BYTES: usize = 16;
pub const SRTP_MASTER_SALT_BYTES: usize = 14;

/// A node's SM2 private key, with its distinguishing identifier.
#[derive(Clone)]
pub struct NodeKey {
    signing: SigningKey,
}

/// A node's SM2 public key.
#[derive(Clone)]
pub struct NodePublicKey {
    verifying: VerifyingKey,
}

impl PartialEq for NodePublicKey {
    fn eq(&self, other: &Self) -> bool {
        self.verifying.as_affine() == other.verifying.as_affine()
    }
}

impl Eq for NodePublicKey {}

/// The secret of one link's HMAC-SM3 tags.
#[derive(Clone, PartialEq, Eq)]
pub struct LinkKey([u8; LINK_KEY_BYTES]);

/// The SRTP master key and master salt of one voice link between two gateways.
#[derive(Clone, PartialEq, Eq)]
pub struct SrtpKey {
    key: [u8; SRTP_MASTER_KEY_BYTES],
    salt: [u8; SRTP_MASTER_SALT_BYTES],
}

/// Why text is not a key.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum KeyError {
    #[error("character {position} is not a hexadecimal digit")]
    NotHex { position: usize },
    #[error("{found} hexadecimal digits where {expected} are expected")]
    WrongLength {
        expected: &'static str,
        found: usize,
    },
    #[error("not an SM2 private key: zero or not below the order of the curve")]
    InvalidPrivate,
    #[error("not an SM2 public key: not a point of the curve in SEC1 form")]
    InvalidPublic,
    #[error("the system's random source failed: {0}")]
    Random(String),
}

/// Why a key file cannot be used.
#[derive(Debug, Error)]
pub enum KeyFileError {
    #[error("{}: cannot read: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("{}: {source}", path.display())]
    Invalid { path: PathBuf, source: KeyError },
    #[error(
        "{}: a secret key readable by group or others (mode {mode:o}); chmod 600 it",
        path.display()
    )]
    Exposed { path: PathBuf, mode: u32 },
}

impl NodeKey {
    /// A new key from the system's random source.
    pub fn generate() -> Result<NodeKey, KeyError> {
        let secret = sm2::SecretKey::try_generate().map_err(|e| KeyError::Random(e.to_string()))?;
        let signing =
            SigningKey::new(DISTINGUISHING_ID, &secret).map_err(|_| KeyError::InvalidPrivate)?;
        Ok(NodeKey { signing })
    }

    pub fn from_hex(text: &str) -> Result<NodeKey, KeyError> {
        let bytes = hex_digits(text, &[32], "64")?;
        let signing = SigningKey::from_slice(DISTINGUISHING_ID, &bytes)
            .map_err(|_| KeyError::InvalidPrivate)?;
        Ok(NodeKey { signing })
    }

    /// Reads a private key file, refusing one that group or others may read.
    pub fn load(path: &Path) -> Result<NodeKey, KeyFileError> {
        let text = read_secret(path)?;
        NodeKey::from_hex(&text).map_err(|source| invalid(path, source))
    }

    pub fn to_hex(&self) -> String {
        to_hex(&self.signing.to_bytes())
    }

    pub fn public(&self) -> NodePublicKey {
        NodePublicKey {
            verifying: self.signing.verifying_key().clone(),
        }
    }

    pub(super) fn signing(&self) -> &SigningKey {
        &self.signing
    }
}

impl fmt::Debug for NodeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeKey(public {})", self.public().to_hex())
    }
}

impl NodePublicKey {
    pub fn from_hex(text: &str) -> Result<NodePublicKey, KeyError> {
        let bytes = hex_digits(text, &[33, 65], "66 or 130")?;
        let verifying = VerifyingKey::from_sec1_bytes(DISTINGUISHING_ID, &bytes)
            .map_err(|_| KeyError::InvalidPublic)?;
        Ok(NodePublicKey { verifying })
    }

    pub fn load(path: &Path) -> Result<NodePublicKey, KeyFileError> {
        let text = read(path)?;
        NodePublicKey::from_hex(&text).map_err(|source| invalid(path, source))
    }

    /// The SEC1 encoding in hexadecimal, as the neighbours' configuration holds it.
    pub fn to_hex(&self) -> String {
        to_hex(&self.verifying.to_sec1_bytes())
    }

    pub(super) fn verifying(&self) -> &VerifyingKey {
        &self.verifying
    }
}

impl fmt::Debug for NodePublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodePublicKey({})", self.to_hex())
    }
}

impl LinkKey {
    pub fn generate() -> Result<LinkKey, KeyError> {
        let mut bytes = [0; LINK_KEY_BYTES];
        getrandom::fill(&mut bytes).map_err(|e| KeyError::Random(e.to_string()))?;
        Ok(LinkKey(bytes))
    }

    pub fn from_bytes(bytes: [u8; LINK_KEY_BYTES]) -> LinkKey {
        LinkKey(bytes)
    }

    pub fn from_hex(text: &str) -> Result<LinkKey, KeyError> {
        let bytes = hex_digits(text, &[LINK_KEY_BYTES], "64")?;
        let mut key = [0; LINK_KEY_BYTES];
        for (k, b) in key.iter_mut().zip(bytes) {
            *k = b;
        }
        Ok(LinkKey(key))
    }

    /// Reads a link key file, refusing one that group or others may read.
    pub fn load(path: &Path) -> Result<LinkKey, KeyFileError> {
        let text = read_secret(path)?;
        LinkKey::from_hex(&text).map_err(|source| invalid(path, source))
    }

    pub fn to_hex(&self) -> String {
        to_hex(&self.0)
    }

    pub(super) fn bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for LinkKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LinkKey(…)")
    }
}

impl SrtpKey {
    pub fn generate() -> Result<SrtpKey, KeyError> {
        let mut bytes = [0; SRTP_MASTER_KEY_BYTES + SRTP_MASTER_SALT_BYTES];
        getrandom::fill(&mut bytes).map_err(|e| KeyError::Random(e.to_string()))?;
        Ok(SrtpKey::from_bytes(&bytes))
    }

    pub fn from_hex(text: &str) -> Result<SrtpKey, KeyError> {
        let bytes = hex_digits(
            text,
            &[SRTP_MASTER_KEY_BYTES + SRTP_MASTER_SALT_BYTES],
            "60",
        )?;
        Ok(SrtpKey::from_bytes(&bytes))
    }

    /// The key from its first 16 bytes and the salt from the 14 after; zeros where
    /// `bytes` is shorter (only [`Self::from_hex`] and [`Self::generate`] call it, with 30).
    fn from_bytes(bytes: &[u8]) -> SrtpKey {
        let mut key = [0; SRTP_MASTER_KEY_BYTES];
        let mut salt = [0; SRTP_MASTER_SALT_BYTES];
        for (k, b) in key.iter_mut().zip(bytes) {
            *k = *b;
        }
        for (s, b) in salt
            .iter_mut()
            .zip(bytes.iter().skip(SRTP_MASTER_KEY_BYTES))
        {
            *s = *b;
        }
        SrtpKey { key, salt }
    }

    /// Reads an SRTP key file, refusing one that group or others may read.
    pub fn load(path: &Path) -> Result<SrtpKey, KeyFileError> {
        let text = read_secret(path)?;
        SrtpKey::from_hex(&text).map_err(|source| invalid(path, source))
    }

    /// The master key then the master salt, in hexadecimal: the form GStreamer's
    /// `srtpenc key=` and libsrtp's test tools take.
    pub fn to_hex(&self) -> String {
        format!("{}{}", to_hex(&self.key), to_hex(&self.salt))
    }

    pub fn master_key(&self) -> &[u8] {
        &self.key
    }

    pub fn master_salt(&self) -> &[u8] {
        &self.salt
    }
}

impl fmt::Debug for SrtpKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SrtpKey(…)")
    }
}

/// The bytes of a key file's hexadecimal, which must be one of `sizes` bytes long.
/// Comment lines (`#`) and white space are skipped; `position` in an error counts the
/// characters of the whole text from 1.
fn hex_digits(text: &str, sizes: &[usize], expected: &'static str) -> Result<Vec<u8>, KeyError> {
    let mut nibbles = Vec::with_capacity(130);
    let mut position = 0;
    for line in text.split_inclusive('\n') {
        let comment = line.trim_start().starts_with('#');
        for c in line.chars() {
            position += 1;
            if comment || c.is_whitespace() {
                continue;
            }
            let nibble = c.to_digit(16).ok_or(KeyError::NotHex { position })?;
            nibbles.push(nibble as u8);
        }
    }
    if nibbles.len() % 2 != 0 || !sizes.contains(&(nibbles.len() / 2)) {
        return Err(KeyError::WrongLength {
            expected,
            found: nibbles.len(),
        });
    }
    Ok(nibbles
        .chunks_exact(2)
        .map(|pair| match pair {
            [high, low] => high << 4 | low,
            _ => 0,
        })
        .collect())
}

fn read(path: &Path) -> Result<String, KeyFileError> {
    std::fs::read_to_string(path).map_err(|source| KeyFileError::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn read_secret(path: &Path) -> Result<String, KeyFileError> {
    use std::os::unix::fs::PermissionsExt as _;

    let metadata = std::fs::metadata(path).map_err(|source| KeyFileError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let mode = metadata.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(KeyFileError::Exposed {
            path: path.to_path_buf(),
            mode,
        });
    }
    read(path)
}

fn invalid(path: &Path, source: KeyError) -> KeyFileError {
    KeyFileError::Invalid {
        path: path.to_path_buf(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_private_key_reads_back_from_its_hex_with_the_same_public_key() {
        let key = NodeKey::generate().expect("random");
        let again = NodeKey::from_hex(&key.to_hex()).expect("reads");
        assert_eq!(again.public(), key.public());
        assert_eq!(
            NodePublicKey::from_hex(&key.public().to_hex()).expect("reads"),
            key.public()
        );
    }

    #[test]
    fn comments_and_white_space_in_a_key_file_are_skipped() {
        let key = LinkKey::from_bytes([0xab; 32]);
        let text = format!(
            "# link street-1 to village-7\n  {}\n{}\n",
            &key.to_hex()[..20],
            &key.to_hex()[20..]
        );
        assert_eq!(LinkKey::from_hex(&text).expect("reads"), key);
    }

    #[test]
    fn a_stray_character_is_named_by_its_position() {
        let text = format!("{}g{}", "0".repeat(10), "0".repeat(53));
        assert_eq!(
            LinkKey::from_hex(&text),
            Err(KeyError::NotHex { position: 11 })
        );
    }

    #[test]
    fn a_key_of_the_wrong_length_says_how_long_it_should_be() {
        assert_eq!(
            NodePublicKey::from_hex("0311"),
            Err(KeyError::WrongLength {
                expected: "66 or 130",
                found: 4
            })
        );
        let error = NodeKey::from_hex("00").expect_err("too short").to_string();
        assert_eq!(error, "2 hexadecimal digits where 64 are expected");
        let error = SrtpKey::from_hex(&"ab".repeat(32)).expect_err("a link key's length");
        assert_eq!(
            error.to_string(),
            "64 hexadecimal digits where 60 are expected"
        );
    }

    #[test]
    fn an_srtp_key_is_the_master_key_then_the_master_salt() {
        let hex = "# voice link street-1\n\
                   000102030405060708090a0b0c0d0e0f\n\
                   101112131415161718191a1b1c1d\n";
        let key = SrtpKey::from_hex(hex).expect("60 digits");
        assert_eq!(key.master_key(), (0u8..16).collect::<Vec<_>>());
        assert_eq!(key.master_salt(), (16u8..30).collect::<Vec<_>>());
        assert_eq!(
            key.to_hex(),
            hex.lines().skip(1).map(str::trim).collect::<String>()
        );
        let fresh = SrtpKey::generate().expect("random");
        assert_eq!(SrtpKey::from_hex(&fresh.to_hex()), Ok(fresh));
    }

    #[test]
    fn a_zero_private_key_and_a_point_off_the_curve_are_refused() {
        assert_eq!(
            NodeKey::from_hex(&"0".repeat(64)).map(|k| k.to_hex()),
            Err(KeyError::InvalidPrivate)
        );
        let off_curve = format!("04{}", "01".repeat(64));
        assert_eq!(
            NodePublicKey::from_hex(&off_curve),
            Err(KeyError::InvalidPublic)
        );
    }

    #[test]
    fn a_secret_key_file_others_can_read_is_refused() {
        use std::os::unix::fs::PermissionsExt as _;

        let dir = std::env::temp_dir().join(format!("emcomm-keys-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("scratch");
        let path = dir.join("link.key");
        std::fs::write(&path, LinkKey::from_bytes([7; 32]).to_hex()).expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let refused = LinkKey::load(&path).expect_err("exposed");
        assert!(
            matches!(refused, KeyFileError::Exposed { mode: 0o644, .. }),
            "{refused}"
        );

        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        assert_eq!(
            LinkKey::load(&path).expect("private"),
            LinkKey::from_bytes([7; 32])
        );
        let _ = std::fs::remove_dir_all(dir);
    }
}
