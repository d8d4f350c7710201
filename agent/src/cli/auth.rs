//! Whom genicli trusts to be the server. 2008's client accepted any server ("left as an exercise
//! for the client", design document §1.5); this one refuses unless the server proves itself:
//!
//! - `--server_gid FILE`: the server must hold exactly that GID's (or certificate's) key;
//! - `--trusted_roots DIR` (default `./trusted_roots` when it exists): the server's certificate
//!   chain must be a GID that verifies against those roots, as every node and the plc present
//!   theirs, *and* name the server genicli expects ([`Expected`]): `--server_hrn`, or for the
//!   registry any authority over `--username` (the registry's own authority is one), or for
//!   `redeemTicket` the node the ticket names. Verifying alone says only that the server is some
//!   principal of the federation, any user included;
//! - `--danger_accept_any_server`: 2008's behaviour, by name only.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use geni_rpc::{ServerAuth, ServerCheck};
use geni_trust::{Certificate, Gid, Hrn, Policy, TrustedRoots, Verifier};

use super::args::{DEFAULT_TRUSTED_ROOTS, Options};
use super::error::CliError;

/// How the server will be authenticated, and a phrase saying so.
#[derive(Debug, Clone)]
pub struct ServerTrust {
    pub auth: ServerAuth,
    pub basis: String,
}

/// Which server a command expects to reach, when the server's GID is checked against the roots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expected {
    /// Exactly this hrn (`--server_hrn`, or the node a ticket names).
    Exactly(Hrn),
    /// An authority over this hrn (the registry, for `--username`).
    AuthorityOf(Hrn),
    /// Nothing known: `--server_hrn` is needed.
    Unknown,
}

impl Expected {
    fn admits(&self, server: &Hrn) -> bool {
        match self {
            Self::Exactly(h) => server == h,
            Self::AuthorityOf(h) => server.is_authority_of(h),
            Self::Unknown => false,
        }
    }
}

impl std::fmt::Display for Expected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Exactly(h) => write!(f, "{h}"),
            Self::AuthorityOf(h) => write!(f, "an authority over {h}"),
            Self::Unknown => f.write_str("an unknown server"),
        }
    }
}

/// Picks the server authentication the options ask for, for a command that expects `expected`
/// (`--server_hrn` overrides it); refuses when they ask for none.
pub fn server_trust(o: &Options, expected: Expected) -> Result<ServerTrust, CliError> {
    if o.danger_accept_any_server {
        if o.server_gid.is_some() || o.trusted_roots.is_some() {
            return Err(CliError::usage(
                "--danger_accept_any_server cannot be combined with --server_gid or \
                 --trusted_roots",
            ));
        }
        return Ok(ServerTrust {
            auth: ServerAuth::DangerAcceptAny,
            basis: "any server (--danger_accept_any_server)".to_owned(),
        });
    }
    if let Some(path) = &o.server_gid {
        return pinned(path);
    }
    let expected = match &o.server_hrn {
        Some(h) => Expected::Exactly(h.clone()),
        None => expected,
    };
    let dir = match &o.trusted_roots {
        Some(dir) => dir.clone(),
        None => {
            let dir = PathBuf::from(DEFAULT_TRUSTED_ROOTS);
            if !dir.is_dir() {
                return Err(CliError::file(
                    format!(
                        "genicli does not know whom to trust as {}: no --server_gid, no \
                         --trusted_roots, and no ./{DEFAULT_TRUSTED_ROOTS} directory",
                        o.server
                    ),
                    Some(
                        "put the root authority's GID in ./trusted_roots/ (or name a directory \
                         with --trusted_roots), or give the server's GID with --server_gid; \
                         --danger_accept_any_server trusts any server"
                            .to_owned(),
                    ),
                ));
            }
            dir
        }
    };
    under_roots(&dir, o, expected)
}

fn pinned(path: &Path) -> Result<ServerTrust, CliError> {
    let text =
        fs::read_to_string(path).map_err(|e| CliError::io("reading the server's GID", path, &e))?;
    let (key, name) = match Gid::parse(&text) {
        Ok(gid) => (gid.public_key().clone(), gid.hrn().to_string()),
        Err(_) => {
            let cert = first_pem(&text)
                .and_then(|pem| Certificate::from_pem(pem).ok())
                .ok_or_else(|| {
                    CliError::file(
                        format!(
                            "{} holds neither a GID nor a PEM certificate",
                            path.display()
                        ),
                        Some("--server_gid wants the server's GID file (e.g. node.gid)".to_owned()),
                    )
                })?;
            (cert.public_key().clone(), cert.subject().to_owned())
        }
    };
    Ok(ServerTrust {
        auth: ServerAuth::PinnedKey(key.spki_der().to_vec()),
        basis: format!("the key of {name} ({})", path.display()),
    })
}

fn under_roots(dir: &Path, o: &Options, expected: Expected) -> Result<ServerTrust, CliError> {
    let roots = TrustedRoots::load_dir(dir).map_err(|e| {
        CliError::file(
            format!("trusted roots {}: {e}", dir.display()),
            Some("the directory must hold the root authority's GID as <hrn>.gid".to_owned()),
        )
    })?;
    if expected == Expected::Unknown {
        return Err(CliError::usage(format!(
            "genicli does not know which node {} should be: give --server_hrn <the node's hrn> \
             (or its GID with --server_gid); a GID that merely verifies could be anyone's",
            o.server
        )));
    }
    let names: Vec<String> = roots.hrns().map(ToString::to_string).collect();
    let policy = Policy {
        legacy_digests: o.legacy_digests,
        ..Policy::default()
    };
    let basis = format!(
        "the GID of {expected} under the trusted roots {} ({})",
        names.join(", "),
        dir.display()
    );
    let check = GidUnderRoots {
        verifier: Verifier::new(roots, policy),
        dir: dir.to_owned(),
        expected,
    };
    Ok(ServerTrust {
        auth: ServerAuth::Check(Arc::new(check)),
        basis,
    })
}

/// The server's chain must be a GID that verifies against the roots and names the expected
/// server.
#[derive(Debug)]
struct GidUnderRoots {
    verifier: Verifier,
    dir: PathBuf,
    expected: Expected,
}

impl ServerCheck for GidUnderRoots {
    fn check(&self, chain: &[&[u8]]) -> Result<(), String> {
        let pems = chain
            .iter()
            .map(|der| Certificate::from_der(der).and_then(|c| c.to_pem()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("the server's certificate chain is unreadable: {e}"))?;
        let gid = Gid::parse(&pems.concat()).map_err(|e| {
            format!(
                "the server's certificate is not a GID, so it cannot be checked against the \
                 trusted roots ({e}); use --server_gid to pin its key"
            )
        })?;
        self.verifier.verify_gid(&gid).map_err(|e| {
            format!(
                "the server's GID {} does not verify against the trusted roots in {}: {e}",
                gid.hrn(),
                self.dir.display()
            )
        })?;
        if !self.expected.admits(gid.hrn()) {
            return Err(format!(
                "the server presented the GID of {}, not of {}: it is a principal of the \
                 federation but not the server expected (give --server_hrn if that is wrong)",
                gid.hrn(),
                self.expected
            ));
        }
        tracing::debug!(server = %gid.hrn(), "Server GID verified");
        Ok(())
    }
}

/// The first PEM certificate block in `text`.
fn first_pem(text: &str) -> Option<&str> {
    const END: &str = "-----END CERTIFICATE-----";
    let start = text.find("-----BEGIN CERTIFICATE-----")?;
    let len = text[start..].find(END)?;
    Some(&text[start..start + len + END.len()])
}
