//! The crate's one error type, [`TrustError`], and its security class [`VerifyError`].
//!
//! Every rejection the verifier can make is a distinct [`VerifyError`] variant naming the
//! certificate subject it concerns, so that a fault built from it tells the caller which link of
//! which chain failed and why. Messages are meant for the peer and for operators; they never carry
//! keys or whole credentials.

use std::path::PathBuf;

/// Everything that can fail in `geni-trust`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrustError {
    /// `Hierarchy::create_authority` on an authority that already has its files.
    #[error("authority {hrn} already exists")]
    AuthorityExists { hrn: String },
    /// OpenSSL refused an operation on our own inputs (never used for a peer's bad signature:
    /// that is a [`VerifyError`]).
    #[error("{context}: {message}")]
    Crypto {
        context: &'static str,
        message: String,
    },
    /// Text that should hold a GID, credential, ticket or key but does not.
    #[error("cannot read {what}: {reason}")]
    Decode { what: String, reason: String },
    /// A field cannot be written in the requested form.
    #[error("cannot encode {what}: {reason}")]
    Encode { what: String, reason: String },
    /// A malformed human-readable name.
    #[error("invalid hrn {hrn:?}: {reason}")]
    InvalidHrn { hrn: String, reason: &'static str },
    /// A malformed `urn:publicid:IDN+…` name.
    #[error("invalid urn {urn:?}: {reason}")]
    InvalidUrn { urn: String, reason: &'static str },
    /// The message carries the OS error, so it is not also chained as a `source` (that printed
    /// it twice under `{:#}`).
    #[error("{}: {error}", path.display())]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    /// A private key file that others can read.
    #[error(
        "private key {} is readable by group or others (mode {mode:04o}); run `chmod 600 {}`",
        path.display(),
        path.display()
    )]
    KeyPermissions { path: PathBuf, mode: u32 },
    /// The hierarchy lacks one of `<leaf>.gid`, `<leaf>.pkey`, `<leaf>.dbinfo`.
    #[error("no authority {hrn} in {}", dir.display())]
    MissingAuthority { hrn: String, dir: PathBuf },
    /// A trusted-roots directory with nothing usable in it.
    #[error(
        "no usable trusted root in {} ({skipped} file(s) skipped); put the root authority's GID \
         there as <hrn>.gid (see trusted_roots.example/README.md)",
        dir.display()
    )]
    NoTrustedRoots { dir: PathBuf, skipped: usize },
    /// A right name outside the 2008 table.
    #[error("unknown right {name:?}")]
    UnknownRight { name: String },
    #[error(transparent)]
    Verify(#[from] VerifyError),
}

/// Why the verifier refused an object. Each variant names the subject (certificate CN) it
/// concerns.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    #[error("chain of {subject} is longer than {limit} certificates")]
    ChainTooLong { subject: String, limit: usize },
    #[error("{subject} expired at {not_after}")]
    Expired { subject: String, not_after: String },
    /// The request's [`crate::work::WorkBudget`] was spent before this verification finished.
    #[error(
        "this request needs more verification work than one request may do (budget {limit}); \
         send fewer or shorter credentials per request"
    )]
    WorkLimit { limit: u64 },
    /// GID rule: the parent's hrn must be a (dot-aware) authority of the child's.
    #[error("{subject} is not under the authority of its parent {parent}")]
    HrnNotUnderParent { subject: String, parent: String },
    #[error("{subject} names issuer {issuer} but its parent is {parent}")]
    IssuerMismatch {
        subject: String,
        issuer: String,
        parent: String,
    },
    #[error("credential {subject} has no caller GID")]
    MissingCallerGid { subject: String },
    /// `holder` and `parent_holder` are the callers of the child and of its parent: a credential's
    /// subject is its object's hrn, so child and parent usually share it.
    #[error(
        "{subject}: the parent credential {parent} held by {parent_holder} does not allow \
         delegation (delegate bit not set), so it cannot be passed on to {holder}"
    )]
    MissingDelegateBit {
        subject: String,
        holder: String,
        parent: String,
        parent_holder: String,
    },
    /// Ticket rule: every parent in a ticket's chain is an authority's own ticket or credential
    /// (caller = object, delegate bit, and the `authority` right on a credential), so that only
    /// the authority hierarchy can issue tickets.
    #[error(
        "ticket {subject}: its parent {parent} is not an authority ticket or credential ({reason}); \
         only the authority hierarchy issues tickets"
    )]
    NotAuthorityTicket {
        subject: String,
        parent: String,
        reason: &'static str,
    },
    #[error("{subject} has no object GID")]
    MissingObjectGid { subject: String },
    /// GENI: a certificate that issues others (or signs a credential as an authority) must be a
    /// CA (`basicConstraints` `CA:TRUE`) named by an authority URN.
    #[error(
        "{subject} issues certificates or credentials but is not an authority CA (CA:TRUE, +authority+ URN)"
    )]
    NotCa { subject: String },
    #[error("{subject} is not signed by its parent {parent}")]
    NotSignedByParent { subject: String, parent: String },
    #[error("{subject} is not valid before {not_before}")]
    NotYetValid { subject: String, not_before: String },
    #[error(
        "{subject}: object {object} is outside the authority of its parent's object {parent_object}"
    )]
    ObjectOutsideAuthority {
        subject: String,
        object: String,
        parent_object: String,
    },
    #[error("{subject} expires at {not_after}, after its parent {parent} ({parent_not_after})")]
    OutlivesParent {
        subject: String,
        not_after: String,
        parent: String,
        parent_not_after: String,
    },
    #[error("{subject} claims rights {rights:?} beyond its parent {parent}'s {parent_rights:?}")]
    RightsEscalation {
        subject: String,
        rights: String,
        parent: String,
        parent_rights: String,
    },
    /// GENI: an XML signature that does not hold (digest, value, or a `KeyValue` that is not
    /// the signer's key).
    #[error("{subject}: bad signature: {reason}")]
    SignatureInvalid { subject: String, reason: String },
    /// GENI: a root credential signed by someone without authority over its target.
    #[error("{subject} is signed by {signer}, which is not an authority for {target}")]
    SignerNotAuthority {
        subject: String,
        signer: String,
        target: String,
    },
    /// GENI: a delegated credential not signed by the owner of its parent.
    #[error(
        "{subject} is signed by {signer}, not by {owner}, the owner of the credential it delegates"
    )]
    SignerNotOwner {
        subject: String,
        signer: String,
        owner: String,
    },
    /// GENI: a delegation that changes the target.
    #[error("{subject} targets {target}, but the credential it delegates targets {parent_target}")]
    TargetChanged {
        subject: String,
        target: String,
        parent_target: String,
    },
    #[error("trusted root {root} is not an authority for {hrn}")]
    RootNotAuthority { root: String, hrn: String },
    #[error("{subject} does not chain to a trusted root")]
    UntrustedRoot { subject: String },
    #[error(
        "{subject} is signed with {algorithm}, refused by the digest policy (legacy_digests is off)"
    )]
    WeakDigest { subject: String, algorithm: String },
    #[error("{subject} has a {bits}-bit key; the policy requires at least {min} bits")]
    WeakKey {
        subject: String,
        bits: u32,
        min: u32,
    },
    #[error("ticket {subject} is for node {target}, not this node {node}")]
    WrongNode {
        subject: String,
        target: String,
        node: String,
    },
}

impl TrustError {
    pub(crate) fn decode(what: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Decode {
            what: what.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, error: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            error,
        }
    }

    /// A stable snake_case name of the error's kind, for scripts and logs that branch on the
    /// reason rather than parse the message.
    pub fn name(&self) -> &'static str {
        match self {
            Self::AuthorityExists { .. } => "authority_exists",
            Self::Crypto { .. } => "crypto",
            Self::Decode { .. } => "decode",
            Self::Encode { .. } => "encode",
            Self::InvalidHrn { .. } => "invalid_hrn",
            Self::InvalidUrn { .. } => "invalid_urn",
            Self::Io { .. } => "io",
            Self::KeyPermissions { .. } => "key_permissions",
            Self::MissingAuthority { .. } => "missing_authority",
            Self::NoTrustedRoots { .. } => "no_trusted_roots",
            Self::UnknownRight { .. } => "unknown_right",
            Self::Verify(v) => v.name(),
        }
    }
}

impl VerifyError {
    /// A stable snake_case name of the rejection.
    pub fn name(&self) -> &'static str {
        match self {
            Self::ChainTooLong { .. } => "chain_too_long",
            Self::Expired { .. } => "expired",
            Self::WorkLimit { .. } => "work_limit",
            Self::HrnNotUnderParent { .. } => "hrn_not_under_parent",
            Self::IssuerMismatch { .. } => "issuer_mismatch",
            Self::MissingCallerGid { .. } => "missing_caller_gid",
            Self::MissingDelegateBit { .. } => "missing_delegate_bit",
            Self::MissingObjectGid { .. } => "missing_object_gid",
            Self::NotCa { .. } => "not_ca",
            Self::NotAuthorityTicket { .. } => "not_authority_ticket",
            Self::NotSignedByParent { .. } => "not_signed_by_parent",
            Self::NotYetValid { .. } => "not_yet_valid",
            Self::ObjectOutsideAuthority { .. } => "object_outside_authority",
            Self::OutlivesParent { .. } => "outlives_parent",
            Self::RightsEscalation { .. } => "rights_escalation",
            Self::RootNotAuthority { .. } => "root_not_authority",
            Self::SignatureInvalid { .. } => "signature_invalid",
            Self::SignerNotAuthority { .. } => "signer_not_authority",
            Self::SignerNotOwner { .. } => "signer_not_owner",
            Self::TargetChanged { .. } => "target_changed",
            Self::UntrustedRoot { .. } => "untrusted_root",
            Self::WeakDigest { .. } => "weak_digest",
            Self::WeakKey { .. } => "weak_key",
            Self::WrongNode { .. } => "wrong_node",
        }
    }
}

/// Wraps an OpenSSL error stack raised by one of our own operations.
pub(crate) fn crypto(
    context: &'static str,
) -> impl FnOnce(openssl::error::ErrorStack) -> TrustError {
    move |e| TrustError::Crypto {
        context,
        message: e.to_string(),
    }
}
