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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ChainForm, Hierarchy};

    #[test]
    fn bad_files_are_skipped_and_chains_trimmed_to_their_first_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let h = Hierarchy::new(dir.path().join("authorities"));
        let us = h
            .create_authority(&"planetlab.us".parse().unwrap(), true)
            .unwrap();
        let roots_dir = dir.path().join("roots");
        std::fs::create_dir(&roots_dir).unwrap();
        // A chain file: only planetlab.us itself is trusted, not the planetlab root behind it.
        std::fs::write(
            roots_dir.join("us.gid"),
            us.gid.to_chain_string(ChainForm::Separator).unwrap(),
        )
        .unwrap();
        std::fs::write(roots_dir.join("empty.gid"), "").unwrap();
        std::fs::write(roots_dir.join("garbage.pem"), "not a certificate").unwrap();
        std::fs::write(roots_dir.join("notes.txt"), "ignored: wrong extension").unwrap();
        std::fs::create_dir(roots_dir.join("dir.gid")).unwrap();
        let roots = TrustedRoots::load_dir(&roots_dir).unwrap();
        assert_eq!(
            roots.hrns().map(Hrn::as_str).collect::<Vec<_>>(),
            ["planetlab.us"]
        );
        assert!(roots.gids()[0].parent().is_none());
        let skipped: Vec<String> = roots
            .skipped()
            .iter()
            .map(|(p, _)| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(skipped, ["empty.gid", "garbage.pem"]);
        assert!(
            roots.skipped()[0].1.contains("empty"),
            "{}",
            roots.skipped()[0].1
        );
    }

    #[test]
    fn a_directory_without_a_usable_root_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("bad.gid"),
            "-----BEGIN CERTIFICATE-----\nAAAA",
        )
        .unwrap();
        let err = TrustedRoots::load_dir(dir.path()).unwrap_err();
        assert!(
            matches!(err, TrustError::NoTrustedRoots { skipped: 1, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("trusted_roots.example"), "{err}");
        let missing = TrustedRoots::load_dir(&dir.path().join("nope")).unwrap_err();
        assert!(matches!(missing, TrustError::Io { .. }), "{missing}");
        assert!(TrustedRoots::from_gids(Vec::new()).is_err());
    }
}
