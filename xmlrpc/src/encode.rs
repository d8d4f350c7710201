//! Encoder: values to Python 2 `xmlrpclib` bytes. (Stub: the helper implements it.)

use crate::{MethodCall, MethodResponse, Value, XmlRpcError};

/// `xmlrpclib.dumps(tuple(params), allow_none=allow_none)` of Python 2.7, byte for byte.
pub fn dumps_params(_params: &[Value], _allow_none: bool) -> Result<String, XmlRpcError> {
    todo!()
}

/// `xmlrpclib.dumps(tuple(params), methodname, allow_none=True)`.
pub fn write_method_call(_call: &MethodCall) -> Result<String, XmlRpcError> {
    todo!()
}

/// `xmlrpclib.dumps((value,), methodresponse=True, allow_none=True)`, or of a `Fault`.
pub fn write_method_response(_response: &MethodResponse) -> Result<String, XmlRpcError> {
    todo!()
}
