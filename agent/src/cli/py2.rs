//! What Python 2.7 printed for a value `xmlrpclib` decoded: `str()` for `print x`, `repr()` inside
//! lists and dicts, dict members in CPython 2.7's iteration order. The 2008 `dump()` methods
//! printed record and ticket fields this way, and genicli's human output reproduces them.
//!
//! xmlrpclib decoded `<string>` to `str` when ASCII and to `unicode` otherwise, `<int>` to `int`,
//! `<double>` to `float`, `<struct>` to a dict filled in document order, `<base64>` to a
//! `Binary` and `<dateTime.iso8601>` to a `DateTime`; the last two printed with object addresses,
//! which are not reproducible, so they print as `<Binary N bytes>` and `<DateTime '…'>`.

use std::fmt::Write as _;

use geni_xmlrpc::{Struct, Value};

/// Python 2 `str(value)`: what `print value` wrote.
pub(crate) fn str(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Double(d) => float_str(*d),
        Value::Base64(b) => String::from_utf8_lossy(b).into_owned(),
        Value::DateTime(d) => d.clone(),
        other => repr(other),
    }
}

/// Python 2 `repr(value)`.
pub(crate) fn repr(value: &Value) -> String {
    match value {
        Value::Array(items) => {
            let parts: Vec<String> = items.iter().map(repr).collect();
            format!("[{}]", parts.join(", "))
        }
        Value::Base64(b) => format!("<Binary {} bytes>", b.len()),
        Value::Bool(true) => "True".to_owned(),
        Value::Bool(false) => "False".to_owned(),
        Value::DateTime(d) => format!("<DateTime {}>", string_repr(d)),
        Value::Double(d) => float_repr(*d),
        Value::Int(i) => i.to_string(),
        Value::Nil => "None".to_owned(),
        Value::String(s) => string_repr(s),
        Value::Struct(s) => {
            let parts: Vec<String> = members(s)
                .map(|(k, v)| format!("{}: {}", string_repr(k), repr(v)))
                .collect();
            format!("{{{}}}", parts.join(", "))
        }
    }
}

/// A struct's members in the order Python 2.7 iterated the dict xmlrpclib built from it.
pub(crate) fn members(s: &Struct) -> impl Iterator<Item = (&str, &Value)> {
    let entries: Vec<(&str, &Value)> = s.iter().collect();
    let names: Vec<&str> = entries.iter().map(|(k, _)| *k).collect();
    geni_trust::py2_dict_order(&names)
        .into_iter()
        .filter_map(move |i| entries.get(i).copied())
}

/// `repr` of a `str` (ASCII) or, for anything else, of the `unicode` xmlrpclib made of it.
fn string_repr(s: &str) -> String {
    let unicode = !s.is_ascii();
    // Python prefers single quotes, and switches to double ones only to avoid escaping a quote.
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 3);
    if unicode {
        out.push('u');
    }
    out.push(quote);
    for ch in s.chars() {
        match ch {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (' '..'\x7f').contains(&c) => out.push(c),
            c => {
                let n = u32::from(c);
                let _ = match n {
                    0..=0xff => write!(out, "\\x{n:02x}"),
                    0x100..=0xffff => write!(out, "\\u{n:04x}"),
                    _ => write!(out, "\\U{n:08x}"),
                };
            }
        }
    }
    out.push(quote);
    out
}

/// Python 2.7 `str(float)`: 12 significant digits (`%.12g`), except that fixed notation stops one
/// digit earlier (CPython's `Py_DTSF_ADD_DOT_0` leaves room for the `.0` it adds to whole numbers).
pub(crate) fn float_str(x: f64) -> String {
    if let Some(special) = non_finite(x) {
        return special.to_owned();
    }
    if x == 0.0 {
        return if x.is_sign_negative() { "-0.0" } else { "0.0" }.to_owned();
    }
    // `{:.11e}` rounds to 12 significant digits; its exponent is the one %g decides by.
    let sci = format!("{x:.11e}");
    let (mantissa, exp) = split_exponent(&sci);
    if !(-4..11).contains(&exp) {
        return exponent_form(trim_fraction(mantissa), exp);
    }
    let decimals = usize::try_from(11 - exp).unwrap_or(0);
    add_dot_zero(trim_fraction(&format!("{x:.decimals$}")))
}

/// Python 2.7 `repr(float)`: the shortest text that reads back as the same double, in fixed
/// notation from 1e-4 up to 1e16 and with an exponent outside.
pub(crate) fn float_repr(x: f64) -> String {
    if let Some(special) = non_finite(x) {
        return special.to_owned();
    }
    if x == 0.0 {
        return if x.is_sign_negative() { "-0.0" } else { "0.0" }.to_owned();
    }
    // Rust's `{:e}` is also the shortest round-trip form; only the layout differs.
    let sci = format!("{x:e}");
    let (mantissa, exp) = split_exponent(&sci);
    if !(-4..16).contains(&exp) {
        return exponent_form(mantissa.to_owned(), exp);
    }
    let (sign, digits) = match mantissa.strip_prefix('-') {
        Some(rest) => ("-", rest.replace('.', "")),
        None => ("", mantissa.replace('.', "")),
    };
    let text = if exp < 0 {
        let zeros = "0".repeat(usize::try_from(-exp - 1).unwrap_or(0));
        format!("0.{zeros}{digits}")
    } else {
        let point = usize::try_from(exp + 1).unwrap_or(0);
        if digits.len() > point {
            format!("{}.{}", &digits[..point], &digits[point..])
        } else {
            format!("{digits}{}", "0".repeat(point - digits.len()))
        }
    };
    add_dot_zero(format!("{sign}{text}"))
}

fn non_finite(x: f64) -> Option<&'static str> {
    if x.is_nan() {
        Some("nan")
    } else if x.is_infinite() {
        Some(if x > 0.0 { "inf" } else { "-inf" })
    } else {
        None
    }
}

/// `"1.5e9"` → `("1.5", 9)`.
fn split_exponent(sci: &str) -> (&str, i32) {
    match sci.split_once('e') {
        Some((m, e)) => (m, e.parse().unwrap_or(0)),
        None => (sci, 0),
    }
}

/// Drops trailing zeros of a fraction, and the point if nothing is left after it.
fn trim_fraction(s: &str) -> String {
    if !s.contains('.') {
        return s.to_owned();
    }
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

fn add_dot_zero(s: String) -> String {
    if s.contains('.') { s } else { s + ".0" }
}

/// C's `%e` exponent layout: a sign and at least two digits.
fn exponent_form(mantissa: String, exp: i32) -> String {
    let sign = if exp < 0 { '-' } else { '+' };
    format!("{mantissa}e{sign}{:02}", exp.unsigned_abs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_print_as_python_2_7() {
        // Each expectation is what CPython 2.7.18 printed for str() and repr().
        let cases = [
            (1_227_612_345.5, "1227612345.5", "1227612345.5"),
            (1_224_136_003.0, "1224136003.0", "1224136003.0"),
            (0.1, "0.1", "0.1"),
            (1e20, "1e+20", "1e+20"),
            (1e16, "1e+16", "1e+16"),
            (1e15, "1e+15", "1000000000000000.0"),
            (12_345_678_901.0, "12345678901.0", "12345678901.0"),
            (123_456_789_012.0, "1.23456789012e+11", "123456789012.0"),
            (1_234_567_890_123.0, "1.23456789012e+12", "1234567890123.0"),
            (
                1_227_612_345.123_456_7,
                "1227612345.12",
                "1227612345.1234567",
            ),
            (0.000_1, "0.0001", "0.0001"),
            (0.000_012_5, "1.25e-05", "1.25e-05"),
            (-2.5, "-2.5", "-2.5"),
            (0.0, "0.0", "0.0"),
            (1.0 / 3.0, "0.333333333333", "0.3333333333333333"),
        ];
        for (x, s, r) in cases {
            assert_eq!(float_str(x), s, "str({x})");
            assert_eq!(float_repr(x), r, "repr({x})");
        }
    }

    #[test]
    fn strings_and_containers_repr_as_python_2() {
        let v = Value::Array(vec![
            Value::from("ssh-rsa AAAA a@b"),
            Value::from("it's"),
            Value::from("say \"hi\" it's"),
            Value::from("tab\there\n"),
            Value::from("café"),
            Value::Int(30),
            Value::Nil,
            Value::Bool(true),
        ]);
        assert_eq!(
            repr(&v),
            r#"['ssh-rsa AAAA a@b', "it's", 'say "hi" it\'s', 'tab\there\n', u'caf\xe9', 30, None, True]"#
        );
        assert_eq!(str(&Value::from("plain")), "plain");
        assert_eq!(str(&Value::Nil), "None");
        assert_eq!(str(&Value::Array(vec![Value::Int(1)])), "[1]");
    }

    #[test]
    fn dicts_iterate_in_python_2_order() {
        // xmlrpclib fills the dict in document order; CPython 2.7 then iterates it by hash slot.
        let s = Struct::new()
            .with("gidCaller", "a")
            .with("gidObject", "b")
            .with("attributes", "c")
            .with("rspec", "d")
            .with("delegate", "e");
        let order: Vec<&str> = members(&s).map(|(k, _)| k).collect();
        assert_eq!(
            order,
            ["gidObject", "gidCaller", "delegate", "rspec", "attributes"]
        );
        let rspec = Struct::new()
            .with("cpu_share", "8")
            .with("disk_max", "100000");
        assert_eq!(
            repr(&Value::Struct(rspec)),
            "{'disk_max': '100000', 'cpu_share': '8'}"
        );
    }
}
