//! Encoder: values to the exact bytes Python 2.7's `xmlrpclib.Marshaller` wrote.
//!
//! Byte-exactness is the point: `geni-trust` re-creates signed 2008 subjectAltName payloads with
//! [`dumps_params`], so every newline, the missing one after `<nil/>`, the minimal escaping and
//! `repr(float)` follow xmlrpclib rather than taste. Parsing is `decode`'s business; this module
//! only refuses values that Python would reject or that no XML parser could read back.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::value::{first_non_xml_char, is_iso8601};
use crate::{MethodCall, MethodResponse, Value, XmlRpcError};

const XML_HEADER: &str = "<?xml version='1.0'?>\n";

/// `xmlrpclib.dumps(tuple(params), allow_none=allow_none)` of Python 2.7, byte for byte.
///
/// Integers outside the `i32` range are refused as Python 2 refused them (`OverflowError`).
pub fn dumps_params(params: &[Value], allow_none: bool) -> Result<String, XmlRpcError> {
    let mut m = Marshaller {
        out: String::new(),
        allow_none,
        wide_ints: false,
    };
    m.params(params)?;
    Ok(m.out)
}

/// `xmlrpclib.dumps(tuple(params), methodname, allow_none=True)`.
///
/// Unlike xmlrpclib this escapes the method name (Python wrote it raw, which only mattered for
/// names no server had) and writes `<i8>` for integers beyond `i32`, which Python 3 reads.
pub fn write_method_call(call: &MethodCall) -> Result<String, XmlRpcError> {
    let mut m = Marshaller {
        out: String::from(XML_HEADER),
        allow_none: true,
        wide_ints: true,
    };
    m.out.push_str("<methodCall>\n<methodName>");
    m.escaped(&call.method)?;
    m.out.push_str("</methodName>\n");
    m.params(&call.params)?;
    m.out.push_str("</methodCall>\n");
    Ok(m.out)
}

/// `xmlrpclib.dumps((value,), methodresponse=True, allow_none=True)`, or of a `Fault`.
pub fn write_method_response(response: &MethodResponse) -> Result<String, XmlRpcError> {
    let mut m = Marshaller {
        out: String::from(XML_HEADER),
        allow_none: true,
        wide_ints: true,
    };
    m.out.push_str("<methodResponse>\n");
    match response {
        MethodResponse::Success(value) => m.params(std::slice::from_ref(value))?,
        MethodResponse::Fault(fault) => {
            m.out
                .push_str("<fault>\n<value><struct>\n<member>\n<name>faultCode</name>\n");
            m.value(&Value::Int(fault.code.into()))?;
            m.out
                .push_str("</member>\n<member>\n<name>faultString</name>\n<value><string>");
            m.escaped(&fault.string)?;
            m.out
                .push_str("</string></value>\n</member>\n</struct></value>\n</fault>\n");
        }
    }
    m.out.push_str("</methodResponse>\n");
    Ok(m.out)
}

/// Python 2.7 `repr(float)`: the shortest digits that round-trip (Rust's `{:e}` picks the same
/// ones), fixed notation for decimal exponents in `-4..16`, scientific otherwise.
fn python_repr(x: f64) -> Result<String, XmlRpcError> {
    if !x.is_finite() {
        return Err(XmlRpcError::Unencodable(
            "NaN and infinities have no XML-RPC form",
        ));
    }
    let sci = format!("{x:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let (sign, mantissa) = mantissa
        .strip_prefix('-')
        .map_or(("", mantissa), |m| ("-", m));
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let (first, rest) = digits.split_at(1.min(digits.len()));
    if !(-4..16).contains(&exp) {
        let dot = if rest.is_empty() { "" } else { "." };
        let exp_sign = if exp < 0 { '-' } else { '+' };
        return Ok(format!(
            "{sign}{first}{dot}{rest}e{exp_sign}{:02}",
            exp.unsigned_abs()
        ));
    }
    if exp < 0 {
        let zeros = "0".repeat(usize::try_from(-1 - exp).unwrap_or(0));
        return Ok(format!("{sign}0.{zeros}{digits}"));
    }
    let int_len = usize::try_from(exp).unwrap_or(0) + 1;
    if digits.len() > int_len {
        let (int, frac) = digits.split_at(int_len);
        Ok(format!("{sign}{int}.{frac}"))
    } else {
        Ok(format!(
            "{sign}{digits}{}.0",
            "0".repeat(int_len - digits.len())
        ))
    }
}

/// The xmlrpclib `Marshaller` state: output so far and the two knobs that differ per caller.
struct Marshaller {
    out: String,
    allow_none: bool,
    /// `<i8>` for integers beyond `i32` (our own documents) rather than refusing them (Python 2).
    wide_ints: bool,
}

impl Marshaller {
    fn params(&mut self, params: &[Value]) -> Result<(), XmlRpcError> {
        self.out.push_str("<params>\n");
        for param in params {
            self.out.push_str("<param>\n");
            self.value(param)?;
            self.out.push_str("</param>\n");
        }
        self.out.push_str("</params>\n");
        Ok(())
    }

    fn value(&mut self, value: &Value) -> Result<(), XmlRpcError> {
        match value {
            Value::String(s) => {
                self.out.push_str("<value><string>");
                self.escaped(s)?;
                self.out.push_str("</string></value>\n");
            }
            Value::Int(i) => match i32::try_from(*i) {
                Ok(i) => self
                    .out
                    .push_str(&format!("<value><int>{i}</int></value>\n")),
                Err(_) if self.wide_ints => {
                    self.out.push_str(&format!("<value><i8>{i}</i8></value>\n"));
                }
                Err(_) => return Err(XmlRpcError::Unencodable("int exceeds XML-RPC limits")),
            },
            Value::Bool(b) => {
                self.out.push_str(&format!(
                    "<value><boolean>{}</boolean></value>\n",
                    u8::from(*b)
                ));
            }
            Value::Double(d) => {
                self.out.push_str(&format!(
                    "<value><double>{}</double></value>\n",
                    python_repr(*d)?
                ));
            }
            Value::Nil if self.allow_none => self.out.push_str("<value><nil/></value>"),
            Value::Nil => return Err(XmlRpcError::Unencodable("nil without allow_none")),
            Value::Array(items) => {
                self.out.push_str("<value><array><data>\n");
                for item in items {
                    self.value(item)?;
                }
                self.out.push_str("</data></array></value>\n");
            }
            Value::Struct(members) => {
                self.out.push_str("<value><struct>\n");
                for (name, member) in members.iter() {
                    self.out.push_str("<member>\n<name>");
                    self.escaped(name)?;
                    self.out.push_str("</name>\n");
                    self.value(member)?;
                    self.out.push_str("</member>\n");
                }
                self.out.push_str("</struct></value>\n");
            }
            Value::DateTime(text) if is_iso8601(text) => {
                self.out.push_str("<value><dateTime.iso8601>");
                self.out.push_str(text);
                self.out.push_str("</dateTime.iso8601></value>\n");
            }
            Value::DateTime(_) => {
                return Err(XmlRpcError::Unencodable(
                    "dateTime.iso8601 text not YYYYMMDDTHH:MM:SS",
                ));
            }
            Value::Base64(data) => {
                // `base64.encodestring`: 57 input bytes (76 output characters) per line.
                self.out.push_str("<value><base64>\n");
                for line in data.chunks(57) {
                    STANDARD.encode_string(line, &mut self.out);
                    self.out.push('\n');
                }
                self.out.push_str("</base64></value>\n");
            }
        }
        Ok(())
    }

    /// xmlrpclib's `escape`: only `&`, `<` and `>`; quotes and `\r` go out raw.
    fn escaped(&mut self, text: &str) -> Result<(), XmlRpcError> {
        if first_non_xml_char(text).is_some() {
            return Err(XmlRpcError::Unencodable("character not allowed in XML 1.0"));
        }
        // Copy the runs between the three escaped characters whole: payloads are kilobytes of PEM.
        let mut last = 0;
        for (at, c) in text.match_indices(['&', '<', '>']) {
            self.out.push_str(&text[last..at]);
            self.out.push_str(match c {
                "&" => "&amp;",
                "<" => "&lt;",
                _ => "&gt;",
            });
            last = at + c.len();
        }
        self.out.push_str(&text[last..]);
        Ok(())
    }
}

#[cfg(test)]
mod tests;
