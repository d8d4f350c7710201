//! Trust for geni-agent: keys, certificates, GIDs, credentials, rights and tickets in the exact
//! wire formats of Geniwrapper (2008), and the verifier that decides whether to believe them.
//!
//! Every object is an X.509 certificate whose subjectAltName carries an XML-RPC payload
//! (`geni-xmlrpc` writes and reads it byte for byte as Python 2 did). This crate parses those
//! objects from untrusted text, builds new ones in a modern form or in the exact 2008 shape
//! ([`CertMode`]), keeps the on-disk authority tree ([`Hierarchy`]) and the trusted roots
//! ([`TrustedRoots`]), and verifies chains with every hole of the original closed
//! ([`Verifier`]). Only the verifier constructs [`VerifiedGid`], [`VerifiedCredential`] and
//! [`VerifiedTicket`], so code downstream that takes those types cannot be handed something
//! unchecked. It does no network I/O.
#![forbid(unsafe_code)]

mod cert;
mod credential;
mod dump;
mod error;
pub mod geni;
mod gid;
mod hierarchy;
mod hrn;
mod keys;
mod openssh;
mod py2dict;
mod rights;
mod roots;
mod ticket;
mod verify;
pub mod work;

pub use cert::{CertMode, Certificate, ChainForm, Validity, format_utc};
pub use credential::Credential;
pub use error::{TrustError, VerifyError};
pub use gid::{Gid, ObjectKind, new_uuid};
pub use hierarchy::{
    AuthorityInfo, Hierarchy, Issuer, credential_under, delegate_credential, gid_under,
    ticket_under,
};
pub use hrn::{Hrn, RecordType, hrn_to_pl_login_base, hrn_to_pl_slicename, hrn_to_urn, urn_to_hrn};
pub use keys::{Keypair, MAX_RSA_BITS, MAX_RSA_EXPONENT, MIN_RSA_BITS, PublicKey, check_rsa_key};
pub use py2dict::iteration_order as py2_dict_order;
pub use rights::{Operation, Right, RightList};
pub use roots::TrustedRoots;
pub use ticket::Ticket;
pub use verify::{
    Clock, GeniVerdict, Policy, SystemClock, VerifiedCredential, VerifiedGid, VerifiedTicket,
    Verifier,
};

/// Longest certificate chain any parser or the verifier accepts. 2008 chains are as deep as the
/// authority tree plus one or two delegations; the bound keeps hostile input from costing
/// unbounded work.
pub const MAX_CHAIN_LEN: usize = 16;

#[cfg(test)]
mod compat_tests;
