//! XML-RPC values and documents, decoded from untrusted bytes and encoded byte for byte as Python
//! 2's `xmlrpclib` wrote them.
//!
//! This crate owns the value model ([`Value`], [`Struct`]), the decoder for `methodCall`,
//! `methodResponse` (value or fault) and bare `<params>` documents, and one encoder whose output
//! is exactly `xmlrpclib.dumps(...)` of Python 2.7 given a member order. That byte-exactness is
//! what lets `geni-trust` rebuild the subjectAltName payload of a 2008 GID or credential and get
//! the very bytes the original signed. It does no I/O and knows nothing about HTTP, TLS or
//! credentials. The decoder is the first thing a peer's bytes reach, so it refuses DOCTYPE and
//! entity declarations, unknown tags and nesting past a limit with a typed [`XmlRpcError`], and
//! never panics.
#![forbid(unsafe_code)]

mod decode;
mod encode;
mod value;

pub use decode::{Limits, parse_method_call, parse_method_response, parse_params};
pub use encode::{dumps_params, write_method_call, write_method_response};
pub use value::{ALLOCATION_OVERHEAD, Fault, MethodCall, MethodResponse, Struct, Value};

/// Everything that can go wrong decoding or encoding XML-RPC.
///
/// Messages name what was wrong and where (byte offset into the document) so that a fault built
/// from one tells the peer how to fix its request; they never echo the whole document.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
#[non_exhaustive]
pub enum XmlRpcError {
    /// A `<!DOCTYPE …>` (and so any entity declaration) was present.
    #[error("DOCTYPE and entity declarations are not allowed (at byte {position})")]
    Doctype { position: u64 },
    /// `<struct>` held the same member name twice.
    #[error("struct member {name:?} appears more than once (at byte {position})")]
    DuplicateMember { name: String, position: u64 },
    /// A reference to an entity other than the five XML predefined ones.
    #[error("unknown entity reference &{name}; (at byte {position})")]
    Entity { name: String, position: u64 },
    /// A scalar's text is not of its type (`<int>x</int>`, `<boolean>2</boolean>`, bad base64, …).
    #[error("invalid <{kind}> value {text:?} (at byte {position})")]
    InvalidValue {
        kind: &'static str,
        text: String,
        position: u64,
    },
    /// The XML is not well formed.
    #[error("malformed XML: {message} (at byte {position})")]
    Malformed { message: String, position: u64 },
    /// Elements nest deeper than [`Limits::max_depth`].
    #[error("XML nesting deeper than {limit} levels (at byte {position})")]
    TooDeep { limit: usize, position: u64 },
    /// More values and struct members than [`Limits::max_values`].
    #[error("more than {limit} values in one document (at byte {position})")]
    TooManyValues { limit: usize, position: u64 },
    /// A document larger than [`Limits::max_bytes`].
    #[error("document of {size} bytes is over the limit of {limit} bytes")]
    TooLarge { size: usize, limit: usize },
    /// An element that has no place there (unknown tag, or a known tag in the wrong spot).
    #[error("unexpected <{tag}> (at byte {position}); expected {expected}")]
    UnexpectedTag {
        tag: String,
        expected: &'static str,
        position: u64,
    },
    /// The encoder was handed a value XML-RPC (or Python 2) cannot carry.
    #[error("cannot encode: {0}")]
    Unencodable(&'static str),
}
