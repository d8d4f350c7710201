//! RSA keys: generating them, reading and writing them as PEM, and keeping private key files
//! private.
//!
//! Private keys are written as 2008 wrote them (traditional PKCS#1 `RSA PRIVATE KEY`) and read in
//! that form or PKCS#8; public keys are SubjectPublicKeyInfo PEM, as 2008's M2Crypto expected.
//! A private key file is created mode 0600 and refused on load when group or others can read it,
//! because a key others can read is a key that is no longer anyone's identity.

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
        let public = PublicKey::from_der(&der)?;
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
    /// Reads SubjectPublicKeyInfo DER.
    pub fn from_der(der: &[u8]) -> Result<Self, TrustError> {
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

    #[test]
    fn garbage_is_an_error() {
        assert!(Keypair::from_pem(b"").is_err());
        assert!(Keypair::from_pem(b"-----BEGIN RSA PRIVATE KEY-----\nAAAA\n").is_err());
        assert!(PublicKey::from_pem(b"hello").is_err());
    }
}
