//! OpenSSH `ssh-rsa` public key lines, read into a [`PublicKey`] and written back, as 2008's
//! `keyconvert` did when `plc import` gave a PlanetLab user a GID over the first SSH key PLC held
//! for them.
//!
//! A line is `ssh-rsa <base64> [comment]`; the base64 blob is RFC 4253 §6.6: the string
//! `ssh-rsa`, then the mpints `e` and `n`. The text comes from PLC, which stores whatever its users
//! uploaded, so every length is checked before it is used and anything other than one well-formed
//! RSA key of a sane size is an error, never a panic.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use openssl::bn::BigNum;
use openssl::pkey::PKey;
use openssl::rsa::Rsa;

use crate::error::crypto;
use crate::{PublicKey, TrustError};

const KEY_TYPE: &str = "ssh-rsa";
const WHAT: &str = "OpenSSH public key";

/// Smallest and largest modulus accepted. 2008 PlanetLab keys were 1024 bits and up; nothing
/// larger than 16384 bits is an RSA key anyone uses, and the bound keeps hostile input cheap.
const MIN_BITS: i32 = 1024;
const MAX_BITS: i32 = 16384;

/// Longest line read (a 16384-bit key is about 2.8 KB of base64).
const MAX_LINE: usize = 8 * 1024;

impl PublicKey {
    /// Reads an OpenSSH `ssh-rsa` public key line (the comment, if any, is ignored). Other key
    /// types (`ssh-dss`, `ssh-ed25519`, …) are errors: every GENI signature is RSA.
    pub fn from_openssh(line: &str) -> Result<Self, TrustError> {
        let bad = |reason: String| TrustError::decode(WHAT, reason);
        if line.len() > MAX_LINE {
            return Err(bad(format!("longer than {MAX_LINE} bytes")));
        }
        let mut fields = line.split_ascii_whitespace();
        let kind = fields.next().ok_or_else(|| bad("empty".to_owned()))?;
        if kind != KEY_TYPE {
            return Err(bad(format!("key type {kind:?} is not {KEY_TYPE}")));
        }
        let encoded = fields
            .next()
            .ok_or_else(|| bad("no key data after ssh-rsa".to_owned()))?;
        let blob = STANDARD
            .decode(encoded)
            .map_err(|e| bad(format!("key data is not base64: {e}")))?;
        let mut reader = Reader(&blob);
        let name = reader.string().map_err(bad)?;
        if name != KEY_TYPE.as_bytes() {
            return Err(bad(format!(
                "key data names type {:?}, not {KEY_TYPE}",
                String::from_utf8_lossy(name)
            )));
        }
        let e = reader.mpint("e").map_err(bad)?;
        let n = reader.mpint("n").map_err(bad)?;
        if !reader.0.is_empty() {
            return Err(bad(format!("{} bytes after the key", reader.0.len())));
        }
        let e = BigNum::from_slice(e).map_err(crypto("reading an OpenSSH key"))?;
        let n = BigNum::from_slice(n).map_err(crypto("reading an OpenSSH key"))?;
        let bits = n.num_bits();
        if !(MIN_BITS..=MAX_BITS).contains(&bits) {
            return Err(bad(format!(
                "a {bits}-bit modulus (accepted: {MIN_BITS} to {MAX_BITS})"
            )));
        }
        if !n.is_bit_set(0) {
            return Err(bad("the modulus is even".to_owned()));
        }
        if !e.is_bit_set(0) || e.num_bits() < 2 || e.num_bits() > bits {
            return Err(bad(
                "the public exponent is not a usable RSA exponent".to_owned()
            ));
        }
        let rsa = Rsa::from_public_components(n, e).map_err(crypto("reading an OpenSSH key"))?;
        let key = PKey::from_rsa(rsa).map_err(crypto("reading an OpenSSH key"))?;
        let der = key
            .public_key_to_der()
            .map_err(crypto("encoding a public key"))?;
        Ok(Self::from_parts(key, der))
    }

    /// The key as an OpenSSH `ssh-rsa` line with `comment` (none when empty).
    pub fn to_openssh(&self, comment: &str) -> Result<String, TrustError> {
        let rsa = self.pkey().rsa().map_err(|_| TrustError::Encode {
            what: WHAT.to_owned(),
            reason: "not an RSA key".to_owned(),
        })?;
        let mut blob = Vec::new();
        put_string(&mut blob, KEY_TYPE.as_bytes());
        put_mpint(&mut blob, &rsa.e().to_vec());
        put_mpint(&mut blob, &rsa.n().to_vec());
        let mut line = format!("{KEY_TYPE} {}", STANDARD.encode(blob));
        if !comment.is_empty() {
            line.push(' ');
            line.push_str(comment);
        }
        Ok(line)
    }
}

/// The unread rest of a key blob.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    /// An RFC 4251 `string`: a big-endian u32 length, then that many bytes.
    fn string(&mut self) -> Result<&'a [u8], String> {
        let Some((len, rest)) = self.0.split_first_chunk::<4>() else {
            return Err("truncated key data".to_owned());
        };
        let len = usize::try_from(u32::from_be_bytes(*len))
            .map_err(|_| "a length that does not fit in memory".to_owned())?;
        if len > rest.len() {
            return Err("truncated key data".to_owned());
        }
        let (value, rest) = rest.split_at(len);
        self.0 = rest;
        Ok(value)
    }

    /// An RFC 4251 `mpint` that must be positive; its magnitude, big-endian.
    fn mpint(&mut self, name: &str) -> Result<&'a [u8], String> {
        let value = self.string()?;
        match value.first() {
            None => Err(format!("{name} is zero")),
            Some(b) if b & 0x80 != 0 => Err(format!("{name} is negative")),
            Some(_) => Ok(value),
        }
    }
}

fn put_string(out: &mut Vec<u8>, value: &[u8]) {
    // Our own values: a key type name and numbers of at most a few kilobytes.
    let len = u32::try_from(value.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(value);
}

/// `magnitude` (big-endian, no leading zeros) as a positive mpint.
fn put_mpint(out: &mut Vec<u8>, magnitude: &[u8]) {
    if magnitude.first().is_some_and(|b| b & 0x80 != 0) {
        let mut padded = Vec::with_capacity(magnitude.len() + 1);
        padded.push(0);
        padded.extend_from_slice(magnitude);
        put_string(out, &padded);
    } else {
        put_string(out, magnitude);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Keypair;

    /// `ssh-keygen -t rsa -b 1024 -C alice@example.org`, public half, and the same key as
    /// `ssh-keygen -e -m PKCS8` printed it.
    const SSH_LINE: &str = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQDST0bJ+a8R51SA7IOot9eCtkCCFu176SNGxrzmyWa7Q142EfaEqM+wfAnGFz9S9GlSTsdJiqxaT/Kp3pf/RprOCR8/9giUMJ49QfhcJQHZQ39sykm1s9koH652wets2qbQLautjfs+7gyR7eQC+D0zSkwlfAHjQGYTF+ASMAa6ww== alice@example.org";
    const SPKI_PEM: &str = "-----BEGIN PUBLIC KEY-----
MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDST0bJ+a8R51SA7IOot9eCtkCC
Fu176SNGxrzmyWa7Q142EfaEqM+wfAnGFz9S9GlSTsdJiqxaT/Kp3pf/RprOCR8/
9giUMJ49QfhcJQHZQ39sykm1s9koH652wets2qbQLautjfs+7gyR7eQC+D0zSkwl
fAHjQGYTF+ASMAa6wwIDAQAB
-----END PUBLIC KEY-----
";

    #[test]
    fn reads_what_ssh_keygen_wrote() {
        let key = PublicKey::from_openssh(SSH_LINE).unwrap();
        assert_eq!(key, PublicKey::from_pem(SPKI_PEM.as_bytes()).unwrap());
        assert_eq!(key.bits(), 1024);
        // Comment-less and with surrounding whitespace, as users paste them.
        let bare: String = SSH_LINE.rsplit_once(' ').unwrap().0.to_owned();
        assert_eq!(
            PublicKey::from_openssh(&format!("  {bare}\n")).unwrap(),
            key
        );
        assert_eq!(key.to_openssh("alice@example.org").unwrap(), SSH_LINE);
        assert_eq!(key.to_openssh("").unwrap(), bare);
    }

    #[test]
    fn round_trips_a_fresh_key() {
        let key = Keypair::generate(2048).unwrap().public_key();
        let line = key.to_openssh("x").unwrap();
        assert_eq!(PublicKey::from_openssh(&line).unwrap(), key);
    }

    #[test]
    fn rejects_what_is_not_one_rsa_key() {
        let blob = SSH_LINE.split(' ').nth(1).unwrap();
        let raw = STANDARD.decode(blob).unwrap();
        let reencode = |bytes: &[u8]| format!("ssh-rsa {}", STANDARD.encode(bytes));
        let mut trailing = raw.clone();
        trailing.push(0);
        let mut wrong_name = raw.clone();
        wrong_name[4..11].copy_from_slice(b"ssh-dss");
        let cases = [
            ("", "empty"),
            ("ssh-dss AAAAB3NzaC1kc3M= x", "is not ssh-rsa"),
            ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5 x", "is not ssh-rsa"),
            ("ssh-rsa", "no key data"),
            ("ssh-rsa !!!", "not base64"),
            (&reencode(&raw[..raw.len() - 3]), "truncated"),
            (&reencode(&trailing), "1 bytes after the key"),
            (&reencode(&wrong_name), "names type \"ssh-dss\""),
            (&reencode(&[0xff, 0xff, 0xff, 0xff]), "truncated"),
        ];
        for (line, expected) in cases {
            let err = PublicKey::from_openssh(line).unwrap_err().to_string();
            assert!(err.contains(expected), "{line:?}: {err}");
        }
        // A 512-bit key is too small to be anyone's identity.
        let small = Keypair::generate(512).unwrap().public_key();
        let err = PublicKey::from_openssh(&small.to_openssh("").unwrap()).unwrap_err();
        assert!(err.to_string().contains("512-bit"), "{err}");
        assert!(PublicKey::from_openssh(&"A".repeat(MAX_LINE + 1)).is_err());
    }
}
