//! Whom genicli trusts to be the server. 2008's client accepted any server ("left as an exercise
//! for the client", design document §1.5); this one refuses unless the server proves itself:
//!
//! - `--server_gid FILE`: the server must hold exactly that GID's (or certificate's) key;
//! - `--trusted_roots DIR` (default `./trusted_roots` when it exists): the server's certificate
//!   chain must be a GID that verifies against those roots, as every node and the plc present
//!   theirs. This says the server is a principal of the federation, not which one; pin with
//!   `--server_gid` to say which;
//! - `--danger_accept_any_server`: 2008's behaviour, by name only.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use geni_rpc::{ServerAuth, ServerCheck};
use geni_trust::{Certificate, Gid, Policy, TrustedRoots, Verifier};

use super::args::{DEFAULT_TRUSTED_ROOTS, Options};
use super::error::CliError;

/// How the server will be authenticated, and a phrase saying so.
#[derive(Debug, Clone)]
pub struct ServerTrust {
    pub auth: ServerAuth,
    pub basis: String,
}

/// Picks the server authentication the options ask for; refuses when they ask for none.
pub fn server_trust(o: &Options) -> Result<ServerTrust, CliError> {
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
    under_roots(&dir, o.legacy_digests)
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

fn under_roots(dir: &Path, legacy_digests: bool) -> Result<ServerTrust, CliError> {
    let roots = TrustedRoots::load_dir(dir).map_err(|e| {
        CliError::file(
            format!("trusted roots {}: {e}", dir.display()),
            Some("the directory must hold the root authority's GID as <hrn>.gid".to_owned()),
        )
    })?;
    let names: Vec<String> = roots.hrns().map(ToString::to_string).collect();
    let policy = Policy {
        legacy_digests,
        ..Policy::default()
    };
    let check = GidUnderRoots {
        verifier: Verifier::new(roots, policy),
        dir: dir.to_owned(),
    };
    Ok(ServerTrust {
        auth: ServerAuth::Check(Arc::new(check)),
        basis: format!(
            "a GID under the trusted roots {} ({})",
            names.join(", "),
            dir.display()
        ),
    })
}

/// The server's chain must be a GID that verifies against the roots.
#[derive(Debug)]
struct GidUnderRoots {
    verifier: Verifier,
    dir: PathBuf,
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
