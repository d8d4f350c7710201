//! RSA keys: generating them, reading and writing them as PEM, and keeping private key files
//! private.
//!
//! Private keys are written as 2008 wrote them (traditional PKCS#1 `RSA PRIVATE KEY`) and read in
//! that form or PKCS#8; public keys are SubjectPublicKeyInfo PEM, as 2008's M2Crypto expected.
//! A private key file is created mode 0600 and refused on load when group or others can read it,
//! because a key others can read is a key that is no longer anyone's identity.
//!
//! Every public key read from outside passes the key policy ([`check_rsa_key`]) when it is
//! parsed: RSA only, 1024 to 8192 bits, an odd public exponent from 3 to 2^32. Verification cost
//! grows with the exponent's size and the square of the modulus's; a 3071-bit exponent made one
//! verification cost 12 ms instead of 0.08 ms, and a 16,384-bit modulus costs 10× a 4096-bit one.

use std::fmt;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use openssl::pkey::{PKey, Private, Public};
use openssl::rsa::Rsa;

use crate::TrustError;
use crate::error::crypto;

/// An RSA private key (and so its public half).
#[derive(Clone)]
pub struct Keypair {
    key: PKey<Private>,
    public: PublicKey,
}

/// A public key, compared by its SubjectPublicKeyInfo DER (never by subject or serial).
#[derive(Clone)]
pub struct PublicKey {
    key: PKey<Public>,
    spki: Vec<u8>,
}

/// Smallest RSA modulus any parser accepts (every 2008 key is 1024-bit; the verifier's policy may
/// ask for more).
pub const MIN_RSA_BITS: u32 = 1024;
/// Largest RSA modulus any parser accepts.
pub const MAX_RSA_BITS: u32 = 8192;
/// Largest RSA public exponent any parser accepts.
pub const MAX_RSA_EXPONENT: u64 = 1 << 32;

/// The key policy on an RSA public key given its modulus size and its public exponent (big-endian
/// bytes, leading zeros allowed): `Err` says what is wrong, for a message.
pub fn check_rsa_key(modulus_bits: u32, exponent: &[u8]) -> Result<(), String> {
    if !(MIN_RSA_BITS..=MAX_RSA_BITS).contains(&modulus_bits) {
        return Err(format!(
            "RSA key of {modulus_bits} bits is outside the accepted {MIN_RSA_BITS}-{MAX_RSA_BITS}"
        ));
    }
    let significant = exponent
        .iter()
        .position(|&b| b != 0)
        .map_or(&[][..], |i| &exponent[i..]);
    let value = if significant.len() > 8 {
        None
    } else {
        Some(
            significant
                .iter()
                .fold(0u64, |acc, &b| (acc << 8) | u64::from(b)),
        )
    };
    match value {
        Some(e) if (3..=MAX_RSA_EXPONENT).contains(&e) && e % 2 == 1 => Ok(()),
        Some(e) if e % 2 == 0 => Err(format!("RSA public exponent {e} is even")),
        Some(e) => Err(format!(
            "RSA public exponent {e} is outside the accepted 3-{MAX_RSA_EXPONENT}"
        )),
        None => Err(format!(
            "RSA public exponent of {} bits is over the accepted {MAX_RSA_EXPONENT}",
            significant.len() * 8
                - significant
                    .first()
                    .map_or(0, |b| b.leading_zeros() as usize)
        )),
    }
}

/// The key policy on a SubjectPublicKeyInfo (DER), read from the DER itself: asking OpenSSL 3 for
/// the exponent converts the key to a legacy structure, which costs more than the check.
pub(crate) fn check_spki(spki: &[u8]) -> Result<(), String> {
    const RSA_ALGORITHM: [u8; 11] = [
        0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01,
    ];
    let bad = || "unreadable public key".to_owned();
    let (_, spki_body) = der_tlv(spki, 0x30).ok_or_else(bad)?;
    let (rest, algorithm) = der_tlv(spki_body, 0x30).ok_or_else(bad)?;
    if !algorithm.starts_with(&RSA_ALGORITHM) {
        return Err("not an RSA key (every GENI signature is RSA)".into());
    }
    let (_, bits) = der_tlv(rest, 0x03).ok_or_else(bad)?;
    let key = match bits.split_first() {
        Some((0, key)) => key,
        _ => return Err(bad()),
    };
    let (_, rsa) = der_tlv(key, 0x30).ok_or_else(bad)?;
    let (rest, modulus) = der_tlv(rsa, 0x02).ok_or_else(bad)?;
    let (_, exponent) = der_tlv(rest, 0x02).ok_or_else(bad)?;
    if modulus.first().is_some_and(|b| b & 0x80 != 0)
        || exponent.first().is_some_and(|b| b & 0x80 != 0)
    {
        return Err("RSA key with a negative modulus or exponent".into());
    }
    let modulus = match modulus.iter().position(|&b| b != 0) {
        Some(i) => &modulus[i..],
        None => return Err("RSA key with a zero modulus".into()),
    };
    let bits = u32::try_from(modulus.len() * 8)
        .unwrap_or(u32::MAX)
        .saturating_sub(modulus[0].leading_zeros());
    check_rsa_key(bits, exponent)
}

/// One DER TLV with tag `tag` at the start of `data`: (what follows it, its contents).
fn der_tlv(data: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    if *data.first()? != tag {
        return None;
    }
    let first = *data.get(1)?;
    let (header, len) = if first < 0x80 {
        (2, usize::from(first))
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 {
            return None;
        }
        let len = data
            .get(2..2 + n)?
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (2 + n, len)
    };
    let end = header.checked_add(len)?;
    Some((data.get(end..)?, data.get(header..end)?))
}

// === impl Keypair ===

impl Keypair {
    /// The size new keys get unless asked otherwise.
    pub const DEFAULT_BITS: u32 = 2048;

    pub fn generate(bits: u32) -> Result<Self, TrustError> {
        let rsa = Rsa::generate(bits).map_err(crypto("generating an RSA key"))?;
        let key = PKey::from_rsa(rsa).map_err(crypto("generating an RSA key"))?;
        Self::from_pkey(key)
    }

    fn from_pkey(key: PKey<Private>) -> Result<Self, TrustError> {
        let der = key
            .public_key_to_der()
            .map_err(crypto("encoding a public key"))?;
        // Our own key: the policy is for keys from elsewhere (and tests make small ones).
        let public = PKey::public_key_from_der(&der)
            .map(|k| PublicKey::from_parts(k, der))
            .map_err(crypto("reading back a public key"))?;
        Ok(Self { key, public })
    }

    /// Reads a PEM private key (PKCS#1 or unencrypted PKCS#8). Only RSA is accepted: every GENI
    /// signature is RSA.
    pub fn from_pem(pem: &[u8]) -> Result<Self, TrustError> {
        let key = PKey::private_key_from_pem(pem)
            .map_err(|e| TrustError::decode("private key", first_reason(&e)))?;
        if key.rsa().is_err() {
            return Err(TrustError::decode("private key", "not an RSA key"));
        }
        Self::from_pkey(key)
    }

    /// Loads a private key file, refusing one that group or others can read.
    pub fn load(path: &Path) -> Result<Self, TrustError> {
        let meta = fs::metadata(path).map_err(|e| TrustError::io(path, e))?;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(TrustError::KeyPermissions {
                path: path.to_owned(),
                mode,
            });
        }
        let pem = fs::read(path).map_err(|e| TrustError::io(path, e))?;
        Self::from_pem(&pem).map_err(|e| match e {
            TrustError::Decode { reason, .. } => {
                TrustError::decode(format!("private key {}", path.display()), reason)
            }
            other => other,
        })
    }

    /// Traditional PKCS#1 PEM (`-----BEGIN RSA PRIVATE KEY-----`), as 2008 wrote.
    pub fn to_pem(&self) -> Result<Vec<u8>, TrustError> {
        let rsa = self.key.rsa().map_err(crypto("encoding a private key"))?;
        rsa.private_key_to_pem()
            .map_err(crypto("encoding a private key"))
    }

    /// Writes the key to a new file created with mode 0600 (never widened, even briefly), and
    /// syncs it. Refuses to overwrite an existing file.
    pub fn save(&self, path: &Path) -> Result<(), TrustError> {
        let pem = self.to_pem()?;
        write_private(path, &pem)
    }

    pub fn public_key(&self) -> PublicKey {
        self.public.clone()
    }

    pub fn bits(&self) -> u32 {
        self.key.bits()
    }

    pub(crate) fn pkey(&self) -> &PKey<Private> {
        &self.key
    }
}

impl fmt::Debug for Keypair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print key material.
        f.debug_struct("Keypair")
            .field("bits", &self.bits())
            .finish_non_exhaustive()
    }
}

/// Creates `path` with mode 0600, writes `data`, syncs the file and its directory.
pub(crate) fn write_private(path: &Path, data: &[u8]) -> Result<(), TrustError> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| TrustError::io(path, e))?;
    f.write_all(data).map_err(|e| TrustError::io(path, e))?;
    f.sync_all().map_err(|e| TrustError::io(path, e))?;
    sync_parent(path)
}

/// Writes a non-secret file durably: temp file, fsync, rename, fsync of the directory.
pub(crate) fn write_public(path: &Path, data: &[u8]) -> Result<(), TrustError> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp{}", std::process::id()));
    let result = (|| {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o644)
            .open(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(TrustError::io(path, e));
    }
    sync_parent(path)
}

fn sync_parent(path: &Path) -> Result<(), TrustError> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| TrustError::io(dir, e))
}

/// The most specific line of an OpenSSL error stack, for messages a person reads.
pub(crate) fn first_reason(e: &openssl::error::ErrorStack) -> String {
    e.errors()
        .first()
        .and_then(|x| x.reason().map(str::to_owned))
        .unwrap_or_else(|| "not valid PEM".to_owned())
}

// === impl PublicKey ===

impl PublicKey {
    /// Reads SubjectPublicKeyInfo DER; the key policy applies.
    pub fn from_der(der: &[u8]) -> Result<Self, TrustError> {
        check_spki(der).map_err(|reason| TrustError::decode("public key", reason))?;
        let key = PKey::public_key_from_der(der)
            .map_err(|e| TrustError::decode("public key", first_reason(&e)))?;
        Ok(Self {
            key,
            spki: der.to_vec(),
        })
    }

    pub(crate) fn from_parts(key: PKey<Public>, spki: Vec<u8>) -> Self {
        Self { key, spki }
    }

    /// Reads `-----BEGIN PUBLIC KEY-----` (SPKI) PEM, or a private key PEM whose public half is
    /// wanted (as 2008's `genicli` did with `openssl rsa -pubout`).
    pub fn from_pem(pem: &[u8]) -> Result<Self, TrustError> {
        match PKey::public_key_from_pem(pem) {
            Ok(key) => {
                let spki = key
                    .public_key_to_der()
                    .map_err(crypto("encoding a public key"))?;
                check_spki(&spki).map_err(|reason| TrustError::decode("public key", reason))?;
                Ok(Self { key, spki })
            }
            Err(e) => match Keypair::from_pem(pem) {
                Ok(pair) => Ok(pair.public_key()),
                Err(_) => Err(TrustError::decode("public key", first_reason(&e))),
            },
        }
    }

    pub fn load(path: &Path) -> Result<Self, TrustError> {
        let pem = fs::read(path).map_err(|e| TrustError::io(path, e))?;
        Self::from_pem(&pem).map_err(|e| match e {
            TrustError::Decode { reason, .. } => {
                TrustError::decode(format!("public key {}", path.display()), reason)
            }
            other => other,
        })
    }

    pub fn to_pem(&self) -> Result<Vec<u8>, TrustError> {
        self.key
            .public_key_to_pem()
            .map_err(crypto("encoding a public key"))
    }

    /// The SubjectPublicKeyInfo DER: the identity of the key.
    pub fn spki_der(&self) -> &[u8] {
        &self.spki
    }

    pub fn bits(&self) -> u32 {
        self.key.bits()
    }

    pub(crate) fn pkey(&self) -> &PKey<Public> {
        &self.key
    }
}

impl PartialEq for PublicKey {
    fn eq(&self, other: &Self) -> bool {
        self.spki == other.spki
    }
}

impl Eq for PublicKey {}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublicKey")
            .field("bits", &self.bits())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_is_private_and_load_refuses_readable_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.pkey");
        let key = Keypair::generate(1024).unwrap();
        key.save(&path).unwrap();
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let back = Keypair::load(&path).unwrap();
        assert_eq!(back.public_key(), key.public_key());
        assert!(
            String::from_utf8(back.to_pem().unwrap())
                .unwrap()
                .starts_with("-----BEGIN RSA PRIVATE KEY-----")
        );
        assert!(key.save(&path).is_err(), "must not overwrite");

        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let err = Keypair::load(&path).unwrap_err();
        assert!(matches!(
            err,
            TrustError::KeyPermissions { mode: 0o644, .. }
        ));
        assert!(err.to_string().contains("chmod 600"));
    }

    #[test]
    fn pkcs8_and_public_pem_are_read() {
        let key = Keypair::generate(1024).unwrap();
        let pkcs8 = key.pkey().private_key_to_pem_pkcs8().unwrap();
        assert_eq!(
            Keypair::from_pem(&pkcs8).unwrap().public_key(),
            key.public_key()
        );
        let spki = key.public_key().to_pem().unwrap();
        assert!(String::from_utf8_lossy(&spki).starts_with("-----BEGIN PUBLIC KEY-----"));
        assert_eq!(PublicKey::from_pem(&spki).unwrap(), key.public_key());
        assert_eq!(
            PublicKey::from_pem(&key.to_pem().unwrap()).unwrap(),
            key.public_key()
        );
    }

    fn spki_with(bits: u32, e: u32) -> Vec<u8> {
        let e = openssl::bn::BigNum::from_u32(e).unwrap();
        let rsa = Rsa::generate_with_e(bits, &e).unwrap();
        PKey::from_rsa(rsa).unwrap().public_key_to_der().unwrap()
    }

    // See: issue 13 (a 3071-bit exponent cost 150× a normal verification).
    #[test]
    fn r13_key_policy_bounds_modulus_and_exponent() {
        for (bits, e) in [(1024, 65537), (2048, 3), (2048, (1 << 31) + 1)] {
            assert_eq!(check_spki(&spki_with(bits, e)), Ok(()), "{bits} {e}");
            assert!(PublicKey::from_der(&spki_with(bits, e)).is_ok());
        }
        let e = PublicKey::from_der(&spki_with(512, 65537)).unwrap_err();
        assert!(e.to_string().contains("512 bits"), "{e}");
        assert!(check_rsa_key(8192, &[1, 0, 1]).is_ok());
        assert!(
            check_rsa_key(8193, &[1, 0, 1])
                .unwrap_err()
                .contains("8193 bits")
        );
        assert!(check_rsa_key(16384, &[1, 0, 1]).is_err());
        assert!(
            check_rsa_key(2048, &[1, 0, 0])
                .unwrap_err()
                .contains("even")
        );
        assert!(check_rsa_key(2048, &[1]).is_err());
        assert!(
            check_rsa_key(2048, &[1, 0, 0, 0, 1])
                .unwrap_err()
                .contains("outside")
        );
        assert!(check_rsa_key(2048, &[0, 0, 1, 0, 0, 0, 1]).is_err());
        let huge = vec![0xffu8; 384];
        assert!(
            check_rsa_key(2048, &[0, 1, 0, 0, 0, 0, 0, 0, 0, 1])
                .unwrap_err()
                .contains("65 bits")
        );
        assert!(
            check_rsa_key(3072, &huge)
                .unwrap_err()
                .contains("3072 bits")
        );
        assert_eq!(check_rsa_key(2048, &[0, 0, 0, 1, 0, 1]), Ok(()));
        // Not RSA at all.
        let ec = openssl::ec::EcKey::generate(
            &openssl::ec::EcGroup::from_curve_name(openssl::nid::Nid::X9_62_PRIME256V1).unwrap(),
        )
        .unwrap();
        let ec = PKey::from_ec_key(ec).unwrap().public_key_to_der().unwrap();
        assert!(check_spki(&ec).unwrap_err().contains("not an RSA key"));
        assert!(check_spki(b"\x30\x03\x30\x01").is_err());
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(Keypair::from_pem(b"").is_err());
        assert!(Keypair::from_pem(b"-----BEGIN RSA PRIVATE KEY-----\nAAAA\n").is_err());
        assert!(PublicKey::from_pem(b"hello").is_err());
    }
}
