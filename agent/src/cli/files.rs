//! genicli's files: the 2008 default names (`<leaf>.pkey`, `<leaf>.cert`, `<leaf>.cred` from the
//! last label of `--username`), the private key (created 0600, never overwritten, refused when
//! others can read it), the self-signed TLS certificate made from the key on first use, and
//! reading credentials, tickets and GIDs with messages that say which file and what to do.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use geni_rpc::TlsIdentity;
use geni_trust::{
    CertMode, Certificate, Clock as _, Credential, Gid, Keypair, SystemClock, Ticket, TrustError,
    Validity,
};

use super::args::{CredFile, Options};
use super::error::CliError;

/// Lifetime of the self-signed client certificate. Servers take only its key, never its dates.
const CLIENT_CERT_LIFETIME_SECS: i64 = 5 * 365 * 86_400;
/// Longest common name a certificate can carry.
const MAX_CN_CHARS: usize = 64;

/// A GID, credential or ticket with the exact text it was read from or received as, so that it
/// is sent on and saved byte for byte.
#[derive(Debug, Clone)]
pub struct Wire<T> {
    pub value: T,
    pub text: String,
}

/// The files a command uses, after the 2008 defaults.
#[derive(Debug, Clone)]
pub struct Files {
    pub username: String,
    pub key: PathBuf,
    pub cert: PathBuf,
    /// `None` for `--credfile None`.
    pub cred: Option<PathBuf>,
    /// Whether `cred` is the default `<leaf>.cred` rather than a file the user named.
    pub cred_is_default: bool,
}

/// 2008's `get_leaf`: the last dotted label.
pub fn leaf(username: &str) -> &str {
    username.rsplit('.').next().unwrap_or(username)
}

impl Files {
    pub fn from_options(o: &Options) -> Self {
        let leaf = leaf(&o.username);
        let (cred, cred_is_default) = match &o.credfile {
            CredFile::Default => (Some(PathBuf::from(format!("{leaf}.cred"))), true),
            CredFile::None => (None, false),
            CredFile::Path(p) => (Some(p.clone()), false),
        };
        Self {
            username: o.username.clone(),
            key: o
                .keyfile
                .clone()
                .unwrap_or_else(|| PathBuf::from(format!("{leaf}.pkey"))),
            cert: o
                .certfile
                .clone()
                .unwrap_or_else(|| PathBuf::from(format!("{leaf}.cert"))),
            cred,
            cred_is_default,
        }
    }

    /// Loads the private key, saying how to make one when it is missing.
    pub fn load_key(&self) -> Result<Keypair, CliError> {
        if !self.key.exists() {
            return Err(CliError::file(
                format!("key file {} does not exist", self.key.display()),
                Some(format!(
                    "run `genicli --username {} createKey` to make one, or give your private key \
                     with --keyfile",
                    self.username
                )),
            ));
        }
        Keypair::load(&self.key).map_err(|e| key_error(&self.key, e))
    }

    /// The TLS identity: the key and `<leaf>.cert`, which is made (self-signed, CN = username)
    /// when missing. Returns whether it was made.
    pub fn client_identity(&self) -> Result<(TlsIdentity, bool), CliError> {
        let key = self.load_key()?;
        let key_pem = key
            .to_pem()
            .map_err(|e| CliError::file(format!("encoding {}: {e}", self.key.display()), None))?;
        let (cert_pem, created) = if self.cert.exists() {
            let text = fs::read_to_string(&self.cert)
                .map_err(|e| CliError::io("reading the certificate", &self.cert, &e))?;
            (text, false)
        } else {
            (self.make_client_cert(&key)?, true)
        };
        let identity = TlsIdentity::from_pem(&key_pem, &cert_pem).map_err(|e| {
            CliError::file(
                format!(
                    "the certificate {} cannot be used with the key {}: {e}",
                    self.cert.display(),
                    self.key.display()
                ),
                Some(format!(
                    "delete {}; genicli makes a new one from the key",
                    self.cert.display()
                )),
            )
        })?;
        Ok((identity, created))
    }

    fn make_client_cert(&self, key: &Keypair) -> Result<String, CliError> {
        let cn: String = self.username.chars().take(MAX_CN_CHARS).collect();
        let validity = Validity::from_now(SystemClock.now(), CLIENT_CERT_LIFETIME_SECS);
        let pem = Certificate::self_signed(&cn, key, validity, CertMode::Modern)
            .and_then(|c| c.to_pem())
            .map_err(|e| CliError::file(format!("making a certificate for {cn}: {e}"), None))?;
        write_new(&self.cert, pem.as_bytes(), "the certificate")?;
        Ok(pem)
    }

    /// The caller's credential, or `None` for `--credfile None`.
    pub fn load_credential(&self) -> Result<Option<Wire<Credential>>, CliError> {
        let Some(path) = &self.cred else {
            return Ok(None);
        };
        if !path.exists() {
            let leaf = leaf(&self.username);
            let hint = if self.cred_is_default {
                format!(
                    "get one with `genicli --username {} --credfile None --outfile {} \
                     getCredential user <your hrn>`, or name one with --credfile",
                    self.username,
                    path.display()
                )
            } else {
                format!("check --credfile; the default for this user is {leaf}.cred")
            };
            return Err(CliError::file(
                format!("credential file {} does not exist", path.display()),
                Some(hint),
            ));
        }
        read_object(path, "credential", Credential::parse).map(Some)
    }
}

/// Makes a new private key at `path` (mode 0600; an existing file is never replaced).
pub fn create_key(path: &Path) -> Result<Keypair, CliError> {
    if path.exists() {
        return Err(CliError::file(
            format!("{} already exists", path.display()),
            Some(
                "genicli never overwrites a key: remove it first, or choose another --username or \
                 --keyfile"
                    .to_owned(),
            ),
        ));
    }
    let key = Keypair::generate(Keypair::DEFAULT_BITS)
        .map_err(|e| CliError::file(format!("generating a key: {e}"), None))?;
    key.save(path).map_err(|e| key_error(path, e))?;
    Ok(key)
}

/// Reads a ticket file.
pub fn load_ticket(path: &Path) -> Result<Wire<Ticket>, CliError> {
    read_object(path, "ticket", Ticket::parse)
}

/// Reads a GID file.
pub fn load_gid(path: &Path) -> Result<Wire<Gid>, CliError> {
    read_object(path, "GID", Gid::parse)
}

/// Reads `path` and parses it as `what`.
pub fn read_object<T>(
    path: &Path,
    what: &str,
    parse: impl FnOnce(&str) -> Result<T, TrustError>,
) -> Result<Wire<T>, CliError> {
    let text = fs::read_to_string(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            CliError::file(
                format!("{what} file {} does not exist", path.display()),
                None,
            )
        } else {
            CliError::io(&format!("reading the {what}"), path, &e)
        }
    })?;
    let value = parse(&text).map_err(|e| {
        CliError::file(
            format!("{} is not a usable {what}: {e}", path.display()),
            None,
        )
    })?;
    Ok(Wire { value, text })
}

/// Writes an `--outfile` (replacing it, as 2008 did).
pub fn write_output(path: &Path, text: &str) -> Result<(), CliError> {
    fs::write(path, text).map_err(|e| CliError::io("writing", path, &e))
}

/// Writes a file that must not exist yet.
fn write_new(path: &Path, bytes: &[u8], what: &str) -> Result<(), CliError> {
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .and_then(|mut f| f.write_all(bytes))
        .map_err(|e| CliError::io(&format!("writing {what}"), path, &e))
}

fn key_error(path: &Path, e: TrustError) -> CliError {
    match e {
        // The message already says `chmod 600`.
        e @ TrustError::KeyPermissions { .. } => CliError::file(e.to_string(), None),
        TrustError::Decode { reason, .. } => CliError::file(
            format!("{} is not a usable private key: {reason}", path.display()),
            Some("give an unencrypted RSA private key in PEM (as createKey writes)".to_owned()),
        ),
        other => CliError::file(other.to_string(), None),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    #[test]
    fn default_files_follow_the_last_label_of_the_username() {
        let o = Options {
            username: "planetlab.us.pl.alice".into(),
            ..Options::default()
        };
        let f = Files::from_options(&o);
        assert_eq!(f.key, PathBuf::from("alice.pkey"));
        assert_eq!(f.cert, PathBuf::from("alice.cert"));
        assert_eq!(f.cred, Some(PathBuf::from("alice.cred")));
        assert!(f.cred_is_default);
        assert_eq!(leaf("client"), "client");
    }

    #[test]
    fn a_key_is_made_0600_once_and_its_certificate_on_first_use() {
        let dir = tempfile::tempdir().unwrap();
        let o = Options {
            username: "planetlab.us.pl.alice".into(),
            keyfile: Some(dir.path().join("alice.pkey")),
            certfile: Some(dir.path().join("alice.cert")),
            ..Options::default()
        };
        let f = Files::from_options(&o);
        let e = f.load_key().unwrap_err();
        assert!(e.hint().unwrap().contains("createKey"), "{e}");

        let key = create_key(&f.key).unwrap();
        let mode = fs::metadata(&f.key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(
            create_key(&f.key)
                .unwrap_err()
                .to_string()
                .contains("exists")
        );

        let (identity, created) = f.client_identity().unwrap();
        assert!(created);
        let cert = Certificate::from_der(identity.certificate_der()).unwrap();
        assert_eq!(cert.subject(), "planetlab.us.pl.alice");
        assert_eq!(*cert.public_key(), key.public_key());
        let (again, created) = f.client_identity().unwrap();
        assert!(!created);
        assert_eq!(again.certificate_der(), identity.certificate_der());

        fs::set_permissions(&f.key, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(f.load_key().unwrap_err().to_string().contains("chmod 600"));
    }
}
