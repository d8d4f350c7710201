//! Trusted roots: the GIDs a node or registry believes without proof, loaded from a directory.
//!
//! Only `*.gid`, `*.cert` and `*.pem` regular files are read (as the later SFA did); a file that
//! does not parse is logged and skipped rather than stopping the daemon, but a directory with no
//! usable root is an error, because the 2008 code's empty-roots behaviour was to verify nothing
//! at all. Only the first certificate of each file is trusted: a root is trusted for its key, not
//! for whatever chain happens to follow it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::cert::Certificate;
use crate::{Gid, Hrn, TrustError};

/// A loaded set of trusted root GIDs.
#[derive(Debug, Clone)]
pub struct TrustedRoots {
    roots: Vec<Gid>,
    by_subject: HashMap<String, Vec<usize>>,
    skipped: Vec<(PathBuf, String)>,
}

impl TrustedRoots {
    /// Loads every `*.gid`, `*.cert` and `*.pem` file of `dir`.
    pub fn load_dir(dir: &Path) -> Result<Self, TrustError> {
        let entries = std::fs::read_dir(dir).map_err(|e| TrustError::io(dir, e))?;
        let mut paths: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                matches!(
                    p.extension().and_then(|e| e.to_str()),
                    Some("gid" | "cert" | "pem")
                )
            })
            .collect();
        paths.sort();
        let mut roots = Vec::new();
        let mut skipped = Vec::new();
        for path in paths {
            if !path.is_file() {
                continue;
            }
            match Gid::load(&path) {
                Ok(gid) => roots.push(gid.without_parents()),
                Err(e) => {
                    tracing::warn!(file = %path.display(), error = %e, "Skipping trusted root");
                    skipped.push((path, e.to_string()));
                }
            }
        }
        if roots.is_empty() {
            return Err(TrustError::NoTrustedRoots {
                dir: dir.to_owned(),
                skipped: skipped.len(),
            });
        }
        let mut set = Self::from_gids(roots)?;
        set.skipped = skipped;
        Ok(set)
    }

    /// Trusts exactly these GIDs (their parents, if any, are dropped).
    pub fn from_gids(gids: Vec<Gid>) -> Result<Self, TrustError> {
        if gids.is_empty() {
            return Err(TrustError::NoTrustedRoots {
                dir: PathBuf::new(),
                skipped: 0,
            });
        }
        let roots: Vec<Gid> = gids.iter().map(Gid::without_parents).collect();
        let mut by_subject: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, r) in roots.iter().enumerate() {
            by_subject
                .entry(r.certificate().subject().to_owned())
                .or_default()
                .push(i);
        }
        Ok(Self {
            roots,
            by_subject,
            skipped: Vec::new(),
        })
    }

    pub fn len(&self) -> usize {
        self.roots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.roots.is_empty()
    }

    /// The hrns of the roots, in load order.
    pub fn hrns(&self) -> impl Iterator<Item = &Hrn> {
        self.roots.iter().map(Gid::hrn)
    }

    pub fn gids(&self) -> &[Gid] {
        &self.roots
    }

    /// Files that were present but not usable, with the reason.
    pub fn skipped(&self) -> &[(PathBuf, String)] {
        &self.skipped
    }

    /// The root whose key signed `cert`. Only roots whose subject is `cert`'s issuer are tried,
    /// so a miss costs no RSA operation and a hit costs one.
    pub(crate) fn signer_index(&self, cert: &Certificate) -> Option<usize> {
        self.by_subject
            .get(cert.issuer())?
            .iter()
            .copied()
            .find(|&i| {
                self.roots
                    .get(i)
                    .is_some_and(|root| cert.is_signed_by(root.public_key()))
            })
    }
}
