//! GENI credentials: the second wire form of the same objects (`reference/geni-am-api-spec.md`
//! §4). URN identities ([`Urn`]), GIDs whose subjectAltName carries the URN, and `geni_sfa`
//! v2/v3 XML credentials signed with XML-DSig, parsed ([`GeniCredential`]), verified by
//! [`crate::Verifier::verify_geni_credential_str`] into the same [`crate::VerifiedCredential`]
//! as a 2008 credential, and issued or delegated ([`issue`], [`delegate`]).
//!
//! Canonicalization and signatures are a narrow implementation on quick-xml covering exactly
//! what GENI credentials use (inclusive C14N 1.0, enveloped-signature, sha1/sha256,
//! rsa-sha1/rsa-sha256, same-document `#id` references) rather than a general XML-DSig engine:
//! no xmlsec1 process and no libxml2, and nothing (XPath, external references, other transforms)
//! that a verifier could be talked into doing.

mod c14n;
mod credential;
pub(crate) mod dsig;
pub(crate) mod gid;
mod sign;
mod urn;
pub(crate) mod xml;

use std::fmt;

pub use credential::{GeniCredential, GeniLink, is_geni_credential};
pub use dsig::SignatureAlgorithm;
pub use gid::{UrnGidSpec, gid_urn};
pub use sign::{GeniIssue, delegate, issue};
pub use urn::{Urn, publicid_to_urn, urn_to_publicid};
pub use xml::XmlLimits;

use crate::{Right, RightList, TrustError};

/// One privilege of a GENI credential: a name from SFA/gcf `rights.py` and whether it may be
/// delegated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Privilege {
    name: PrivilegeName,
    can_delegate: bool,
}

/// The privilege names GENI tools write: the 2008 rights, plus `operator` and `*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrivilegeName {
    /// A right of the 2008 table.
    Right(Right),
    /// `operator`: gettrustedcerts, getgids (no 2008 operation).
    Operator,
    /// `*`: in gcf, createsliver deletesliver sliverstatus renewsliver shutdown; in ProtoGENI,
    /// everything. Never mapped to a 2008 right.
    Star,
}

impl Privilege {
    /// A privilege by name; unknown names are an error, never a privilege that quietly allows
    /// nothing.
    pub fn new(name: &str, can_delegate: bool) -> Result<Self, TrustError> {
        let parsed = match name {
            "*" => PrivilegeName::Star,
            "operator" => PrivilegeName::Operator,
            _ if name.contains(':') || name.trim() != name => {
                return Err(TrustError::UnknownRight {
                    name: name.to_owned(),
                });
            }
            _ => PrivilegeName::Right(name.parse()?),
        };
        Ok(Self {
            name: parsed,
            can_delegate,
        })
    }

    pub fn name(&self) -> PrivilegeName {
        self.name
    }

    pub fn can_delegate(&self) -> bool {
        self.can_delegate
    }

    /// Whether a parent holding `self` may pass `child` on: `self` is delegatable and covers
    /// `child` (same name, `*`, or a 2008 right that allows everything the child's allows).
    pub fn covers(&self, child: &Self) -> bool {
        self.can_delegate
            && match (self.name, child.name) {
                (PrivilegeName::Star, _) => true,
                (a, b) if a == b => true,
                (PrivilegeName::Right(a), PrivilegeName::Right(b)) => a.is_superset(b),
                _ => false,
            }
    }
}

impl PrivilegeName {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Right(r) => r.as_str(),
            Self::Operator => "operator",
            Self::Star => "*",
        }
    }
}

impl fmt::Display for PrivilegeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The 2008 rights among `privileges`, in order (what [`crate::VerifiedCredential::privileges`]
/// holds for a GENI credential; `operator` and `*` have no 2008 meaning and are left out).
pub(crate) fn rights_of(privileges: &[Privilege]) -> RightList {
    let mut rights: Vec<Right> = Vec::new();
    for p in privileges {
        if let PrivilegeName::Right(r) = p.name
            && !rights.contains(&r)
        {
            rights.push(r);
        }
    }
    RightList::new(rights)
}

/// Privileges as text (`refresh,embed:1`) for messages.
pub(crate) fn privileges_text(privileges: &[Privilege]) -> String {
    privileges
        .iter()
        .map(|p| {
            if p.can_delegate {
                format!("{}:delegatable", p.name)
            } else {
                p.name.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests;
