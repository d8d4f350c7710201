//! OpenSSH `ssh-rsa` public keys as GID keys, as 2008's import did with `keyconvert` (an
//! `ssh-rsa` line → `PEM_write_RSA_PUBKEY`): a person registered with only an SSH key gets a GID
//! for that same RSA key. Other key types (DSA, ed25519) have no RSA form and are refused.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use geni_trust::PublicKey;
use openssl::bn::BigNum;
use openssl::pkey::PKey;
use openssl::rsa::Rsa;

/// The RSA public key of an `ssh-rsa AAAA… comment` line.
pub(crate) fn rsa_from_openssh(line: &str) -> Result<PublicKey, String> {
    let mut parts = line.split_whitespace();
    let (Some(kind), Some(blob)) = (parts.next(), parts.next()) else {
        return Err("not an OpenSSH public key line (type, base64, comment)".into());
    };
    if kind != "ssh-rsa" {
        return Err(format!(
            "a {kind} key has no RSA form; give an ssh-rsa key or a PEM key"
        ));
    }
    let blob = STANDARD
        .decode(blob)
        .map_err(|e| format!("the key's base64 is invalid: {e}"))?;
    let mut rest = blob.as_slice();
    let mut field = || -> Result<&[u8], String> {
        let (len, tail) = rest
            .split_first_chunk::<4>()
            .ok_or("the key blob is truncated")?;
        let len = usize::try_from(u32::from_be_bytes(*len)).map_err(|e| e.to_string())?;
        if tail.len() < len {
            return Err("the key blob is truncated".into());
        }
        let (value, tail) = tail.split_at(len);
        rest = tail;
        Ok(value)
    };
    if field()? != b"ssh-rsa" {
        return Err("the key blob is not ssh-rsa".into());
    }
    let e = BigNum::from_slice(field()?).map_err(|e| e.to_string())?;
    let n = BigNum::from_slice(field()?).map_err(|e| e.to_string())?;
    let rsa = Rsa::from_public_components(n, e).map_err(|e| e.to_string())?;
    let der = PKey::from_rsa(rsa)
        .and_then(|k| k.public_key_to_der())
        .map_err(|e| e.to_string())?;
    PublicKey::from_der(&der).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ssh_line(key: &Rsa<openssl::pkey::Private>) -> String {
        let mut blob = Vec::new();
        for part in [
            b"ssh-rsa".to_vec(),
            key.e().to_vec(),
            // OpenSSH writes n as an mpint: a leading zero when the top bit is set.
            [vec![0], key.n().to_vec()].concat(),
        ] {
            blob.extend_from_slice(&u32::try_from(part.len()).unwrap().to_be_bytes());
            blob.extend_from_slice(&part);
        }
        format!("ssh-rsa {} alice@example", STANDARD.encode(blob))
    }

    #[test]
    fn same_key_as_the_pem() {
        let rsa = Rsa::generate(1024).unwrap();
        let pem = PKey::from_rsa(rsa.clone())
            .unwrap()
            .public_key_to_pem()
            .unwrap();
        let expected = PublicKey::from_pem(&pem).unwrap();
        let got = rsa_from_openssh(&ssh_line(&rsa)).unwrap();
        assert_eq!(got.spki_der(), expected.spki_der());
        assert!(
            rsa_from_openssh("ssh-ed25519 AAAAC3 x")
                .unwrap_err()
                .contains("ed25519")
        );
        assert!(rsa_from_openssh("ssh-rsa !!!").is_err());
        assert!(rsa_from_openssh("ssh-rsa AAAA").is_err());
    }
}
