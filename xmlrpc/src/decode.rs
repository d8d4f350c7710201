//! Decoder: untrusted bytes to values. (Stub: the helper implements it.)

use crate::{MethodCall, MethodResponse, Value, XmlRpcError};

/// Bounds on what the decoder accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Deepest element nesting accepted (counting every element, `<methodCall>` is 1).
    pub max_depth: usize,
    /// Largest document accepted, in bytes.
    pub max_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self { max_depth: 64, max_bytes: 4 * 1024 * 1024 }
    }
}

/// Decodes a `<methodCall>` document.
pub fn parse_method_call(_doc: &str, _limits: &Limits) -> Result<MethodCall, XmlRpcError> {
    todo!()
}

/// Decodes a `<methodResponse>` document (value or fault).
pub fn parse_method_response(_doc: &str, _limits: &Limits) -> Result<MethodResponse, XmlRpcError> {
    todo!()
}

/// Decodes a bare `<params>` document, as `xmlrpclib.dumps(tuple)` writes it.
pub fn parse_params(_doc: &str, _limits: &Limits) -> Result<Vec<Value>, XmlRpcError> {
    todo!()
}
