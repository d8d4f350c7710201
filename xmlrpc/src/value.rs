//! The XML-RPC value model: what a document means once decoded, independent of its bytes.
//!
//! Structs keep their member order because the encoder must reproduce Python 2's dict order
//! byte for byte; lookups ignore order because 2008 peers emitted members in hash order.

/// What [`Value::footprint`] adds for each heap allocation: the allocator's header and rounding
/// (glibc's smallest chunk is 32 bytes, whatever was asked for).
pub const ALLOCATION_OVERHEAD: usize = 16;

/// One XML-RPC value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Array(Vec<Self>),
    Base64(Vec<u8>),
    Bool(bool),
    /// The `dateTime.iso8601` text as sent (XML-RPC gives it no zone; callers interpret it).
    DateTime(String),
    /// Always finite: the decoder refuses NaN and infinities, the encoder errors on them.
    Double(f64),
    /// `<int>`, `<i4>` and `<i8>` all decode here.
    Int(i64),
    Nil,
    String(String),
    Struct(Struct),
}

/// An XML-RPC struct: members in document (or insertion) order, names unique.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Struct {
    members: Vec<(String, Value)>,
}

/// A decoded `methodCall`.
#[derive(Debug, Clone, PartialEq)]
pub struct MethodCall {
    pub method: String,
    pub params: Vec<Value>,
}

impl MethodCall {
    /// The memory the call holds, in bytes ([`Value::footprint`] of each parameter, the
    /// parameter list and the method name).
    pub fn footprint(&self) -> usize {
        let list = match self.params.capacity() {
            0 => 0,
            n => n * size_of::<Value>() + ALLOCATION_OVERHEAD,
        };
        size_of::<Self>()
            + self.method.capacity()
            + ALLOCATION_OVERHEAD
            + list
            + self.params.iter().map(Value::owned_bytes).sum::<usize>()
    }
}

/// A decoded `methodResponse`.
#[derive(Debug, Clone, PartialEq)]
pub enum MethodResponse {
    Fault(Fault),
    Success(Value),
}

/// An XML-RPC fault: a stable code and a message meant for a person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    pub code: i32,
    pub string: String,
}

// === impl Value ===

impl Value {
    /// The memory this value holds, in bytes: itself and everything it owns, by allocated
    /// capacity, plus [`ALLOCATION_OVERHEAD`] for each allocation. What a server charges against
    /// its memory budget for a decoded request.
    pub fn footprint(&self) -> usize {
        size_of::<Self>() + self.owned_bytes()
    }

    /// What the value owns beyond its own inline size (which its holder counts: a `Vec`'s
    /// capacity, a struct member's slot). Iterative, so no nesting can exhaust the stack.
    fn owned_bytes(&self) -> usize {
        let allocation = |capacity: usize, item: usize| match capacity {
            0 => 0,
            n => n * item + ALLOCATION_OVERHEAD,
        };
        let mut total = 0;
        let mut stack = vec![self];
        while let Some(v) = stack.pop() {
            match v {
                Self::Array(items) => {
                    total += allocation(items.capacity(), size_of::<Self>());
                    stack.extend(items);
                }
                Self::Base64(b) => total += allocation(b.capacity(), 1),
                Self::DateTime(s) | Self::String(s) => total += allocation(s.capacity(), 1),
                Self::Struct(st) => {
                    total += allocation(st.members.capacity(), size_of::<(String, Self)>());
                    for (name, value) in &st.members {
                        total += allocation(name.capacity(), 1);
                        stack.push(value);
                    }
                }
                Self::Bool(_) | Self::Double(_) | Self::Int(_) | Self::Nil => {}
            }
        }
        total
    }

    /// The string inside, when this is a `String`.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Self::String(s) => Some(s),
            _ => None,
        }
    }

    /// The struct inside, when this is a `Struct`.
    pub fn as_struct(&self) -> Option<&Struct> {
        match self {
            Self::Struct(s) => Some(s),
            _ => None,
        }
    }

    /// The elements, when this is an `Array`.
    pub fn as_array(&self) -> Option<&[Self]> {
        match self {
            Self::Array(a) => Some(a),
            _ => None,
        }
    }

    /// The integer, when this is an `Int`.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Self::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// The boolean, when this is a `Bool`.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Self::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// The XML-RPC type name, for error messages ("expected string, got int").
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::Array(_) => "array",
            Self::Base64(_) => "base64",
            Self::Bool(_) => "boolean",
            Self::DateTime(_) => "dateTime.iso8601",
            Self::Double(_) => "double",
            Self::Int(_) => "int",
            Self::Nil => "nil",
            Self::String(_) => "string",
            Self::Struct(_) => "struct",
        }
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Self::String(s.to_owned())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Self {
        Self::String(s)
    }
}

impl From<i64> for Value {
    fn from(i: i64) -> Self {
        Self::Int(i)
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Self::Bool(b)
    }
}

impl From<Struct> for Value {
    fn from(s: Struct) -> Self {
        Self::Struct(s)
    }
}

// === impl Struct ===

impl Struct {
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `name` to `value`: replaces in place when present (keeping its position), appends
    /// otherwise.
    pub fn insert(&mut self, name: impl Into<String>, value: impl Into<Value>) {
        let name = name.into();
        let value = value.into();
        match self.members.iter_mut().find(|(k, _)| *k == name) {
            Some(slot) => slot.1 = value,
            None => self.members.push((name, value)),
        }
    }

    /// Builder form of [`Struct::insert`].
    #[must_use]
    pub fn with(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        self.insert(name, value);
        self
    }

    pub fn get(&self, name: &str) -> Option<&Value> {
        self.members.iter().find(|(k, _)| k == name).map(|(_, v)| v)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    pub fn remove(&mut self, name: &str) -> Option<Value> {
        let at = self.members.iter().position(|(k, _)| k == name)?;
        Some(self.members.remove(at).1)
    }

    /// Members in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.members.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Member names in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.members.iter().map(|(k, _)| k.as_str())
    }

    pub fn len(&self) -> usize {
        self.members.len()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Appends without looking for `name`: the decoder has already refused duplicates with a
    /// hash set, and [`Struct::insert`]'s linear search would make a large struct quadratic.
    pub(crate) fn push_unchecked(&mut self, name: String, value: Value) {
        self.members.push((name, value));
    }
}

impl FromIterator<(String, Value)> for Struct {
    fn from_iter<I: IntoIterator<Item = (String, Value)>>(iter: I) -> Self {
        let mut s = Self::new();
        for (k, v) in iter {
            s.insert(k, v);
        }
        s
    }
}

// === text rules shared by the decoder and the encoder ===

/// A character XML 1.0 allows in a document (its `Char` production). Anything else could be
/// written but never read back, so the decoder refuses it and the encoder will not write it.
pub(crate) fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

/// The first character XML 1.0 forbids in `s`, if any. Payloads are mostly ASCII PEM text, so
/// a word-at-a-time scan settles the common case before any `char` decoding: every call carries
/// a credential of 30–65 KB, and a byte-at-a-time scan was a third of a node's CPU.
pub(crate) fn first_non_xml_char(s: &str) -> Option<char> {
    let (words, tail) = s.as_bytes().as_chunks::<8>();
    let plain = words.iter().all(|w| plain_word(u64::from_le_bytes(*w)))
        && tail.iter().all(|&b| plain_byte(b));
    if plain {
        None
    } else {
        s.chars().find(|c| !is_xml_char(*c))
    }
}

/// Printable ASCII, tab, newline or carriage return.
fn plain_byte(b: u8) -> bool {
    (0x20..0x80).contains(&b) || matches!(b, b'\t' | b'\n' | b'\r')
}

/// [`plain_byte`] for the eight bytes of a word at once, with lane-wise tests that never carry
/// into the next lane. Most words hold no control byte at all; the one in eight that holds PEM's
/// newline takes the longer test.
fn plain_word(w: u64) -> bool {
    let high = w & HIGH_BITS;
    let control = lanes_below(w, 0x20);
    if (high | control) == 0 {
        return true;
    }
    let allowed = lanes_equal(w, b'\t') | lanes_equal(w, b'\n') | lanes_equal(w, b'\r');
    (high | (control & !allowed)) == 0
}

const LOW_7_BITS: u64 = 0x7F7F_7F7F_7F7F_7F7F;
const HIGH_BITS: u64 = 0x8080_8080_8080_8080;
const ONES: u64 = 0x0101_0101_0101_0101;

/// The high bit of each lane whose low seven bits are below `n` (1..=0x80). Each lane's sum stays
/// under 0x100, so no lane carries into its neighbour.
fn lanes_below(w: u64, n: u8) -> u64 {
    !((w & LOW_7_BITS) + ONES * u64::from(0x80 - n)) & HIGH_BITS
}

/// The high bit of each lane equal to `b`.
fn lanes_equal(w: u64, b: u8) -> u64 {
    let x = w ^ (ONES * u64::from(b));
    !(((x & LOW_7_BITS) + LOW_7_BITS) | x) & HIGH_BITS
}

/// Whether a `dateTime.iso8601` text has the shape XML-RPC peers write: `YYYYMMDDTHH:MM:SS`
/// (xmlrpclib) or `YYYY-MM-DDTHH:MM:SS` (some other stacks). Digits are not range-checked: the
/// text is carried, not interpreted.
pub(crate) fn is_iso8601(text: &str) -> bool {
    let shape: &[u8] = match text.len() {
        17 => b"DDDDDDDDTDD:DD:DD",
        19 => b"DDDD-DD-DDTDD:DD:DD",
        _ => return false,
    };
    text.bytes().zip(shape).all(|(b, &s)| {
        if s == b'D' {
            b.is_ascii_digit()
        } else {
            b == s
        }
    })
}

#[cfg(test)]
mod tests {
    use super::{first_non_xml_char, is_xml_char, plain_byte, plain_word};

    /// XML's own rule restricted to single bytes, independent of the lane arithmetic.
    fn rule(b: u8) -> bool {
        b < 0x80 && is_xml_char(char::from(b))
    }

    #[test]
    fn the_byte_test_is_xmls_rule_for_ascii() {
        for b in 0..=u8::MAX {
            assert_eq!(plain_byte(b), rule(b), "{b:#04x}");
        }
    }

    /// The word test against the byte rule, for every byte value in every lane, next to bytes
    /// that could disturb a neighbouring lane (allowed controls, forbidden ones, high bits).
    #[test]
    fn the_word_test_agrees_with_the_byte_rule() {
        for lane in 0..8 {
            for other in 0..8 {
                for neighbour in [
                    b'A', b'\n', b'\t', b'\r', 0x00, 0x1F, 0x20, 0x7F, 0x80, 0xFF,
                ] {
                    for b in 0..=u8::MAX {
                        let mut word = [b'M'; 8];
                        word[other] = neighbour;
                        word[lane] = b;
                        let expected = word.iter().all(|&x| rule(x));
                        assert_eq!(
                            plain_word(u64::from_le_bytes(word)),
                            expected,
                            "{word:02x?}"
                        );
                    }
                }
            }
        }
    }

    /// The word scan must see a forbidden character wherever it falls: in the first word, on
    /// either side of a word edge, in a short tail, in a word that also holds a newline.
    #[test]
    fn a_forbidden_character_is_found_at_every_offset() {
        let pem = "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA\r\n\t".repeat(5);
        assert_eq!(first_non_xml_char(&pem), None);
        for at in 0..pem.len() {
            for bad in [
                '\u{0}', '\u{1}', '\u{1F}', '\u{FFFE}', '\u{D7FF}', '\u{7F}', '\u{E9}',
            ] {
                let mut text = pem.clone();
                text.insert(at, bad);
                let expected = (!matches!(bad, '\u{D7FF}' | '\u{7F}' | '\u{E9}')).then_some(bad);
                assert_eq!(first_non_xml_char(&text), expected, "{bad:?} at {at}");
            }
        }
    }
}
