//! Decoder: untrusted text to [`Value`]s, `methodCall`, `methodResponse` and bare `<params>`.
//!
//! This is the only module that sees quick-xml. It turns reader events into a small token stream
//! (start tag, end tag, text with references resolved and line ends normalised, end of input) and
//! reads the XML-RPC grammar off that with an explicit stack, so neither hostile nesting nor a
//! generous [`Limits::max_depth`] can exhaust the thread's stack. Everything a peer could use
//! against a parser is refused with a typed error: DOCTYPE (and so entity declarations), unknown
//! entities, processing instructions, characters XML 1.0 forbids, unknown or misplaced tags,
//! nesting past the limit and oversized documents. Writing documents is `encode`'s job.

use std::borrow::Cow;
use std::collections::HashSet;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use quick_xml::errors::{Error as XmlError, IllFormedError, SyntaxError};
use quick_xml::events::{BytesRef, Event};
use quick_xml::reader::Reader;

use crate::value::{first_non_xml_char, is_iso8601, is_xml_char};
use crate::{Fault, MethodCall, MethodResponse, Struct, Value, XmlRpcError};

type Result<T> = std::result::Result<T, XmlRpcError>;

/// Bounds on what the decoder accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Deepest element nesting accepted (counting every element, `<methodCall>` is 1).
    pub max_depth: usize,
    /// Largest document accepted, in bytes.
    pub max_bytes: usize,
    /// Most values (every scalar, array and struct) and struct members one document may hold.
    /// A few bytes of markup decode to tens of bytes of values (`<value/>` is 8 bytes and
    /// becomes a 32-byte [`Value`]; a member also holds its name twice while decoding), so
    /// without this a document's memory is not bounded by its size.
    pub max_values: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_depth: 64,
            max_bytes: 4 * 1024 * 1024,
            max_values: 65_536,
        }
    }
}

/// Decodes a `<methodCall>` document.
pub fn parse_method_call(doc: &str, limits: &Limits) -> Result<MethodCall> {
    let mut p = Parser::new(doc, limits)?;
    p.open("methodCall", "<methodCall>")?;
    p.open("methodName", "<methodName>")?;
    let (name, at) = p.text_then_close("</methodName>")?;
    let method = name.trim_matches(is_xml_space);
    if method.is_empty() {
        return Err(invalid("methodName", &name, at));
    }
    let params = match p.next_skip_space()? {
        Tok::Open(Tag::Known("params"), _) => {
            let params = p.params()?;
            p.close("</methodCall>")?;
            params
        }
        Tok::Close(..) => Vec::new(),
        other => return Err(unexpected(other, "<params> or </methodCall>")),
    };
    p.finish()?;
    Ok(MethodCall {
        method: method.to_owned(),
        params,
    })
}

/// Decodes a `<methodResponse>` document (value or fault).
pub fn parse_method_response(doc: &str, limits: &Limits) -> Result<MethodResponse> {
    let mut p = Parser::new(doc, limits)?;
    p.open("methodResponse", "<methodResponse>")?;
    let response = match p.next_skip_space()? {
        Tok::Open(Tag::Known("params"), at) => {
            let mut params = p.params()?;
            match (params.pop(), params.is_empty()) {
                (Some(value), true) => MethodResponse::Success(value),
                _ => return Err(malformed("a methodResponse holds exactly one <param>", at)),
            }
        }
        Tok::Open(Tag::Known("fault"), at) => {
            p.open("value", "<value>")?;
            let value = p.value()?;
            p.close("</fault>")?;
            MethodResponse::Fault(fault(&value, at)?)
        }
        other => return Err(unexpected(other, "<params> or <fault>")),
    };
    p.close("</methodResponse>")?;
    p.finish()?;
    Ok(response)
}

/// Decodes a bare `<params>` document, as `xmlrpclib.dumps(tuple)` writes it.
pub fn parse_params(doc: &str, limits: &Limits) -> Result<Vec<Value>> {
    let mut p = Parser::new(doc, limits)?;
    p.open("params", "<params>")?;
    let params = p.params()?;
    p.finish()?;
    Ok(params)
}

/// The element names XML-RPC uses, space-separated; anything else is reported by name.
const TAGS: &str = "array data fault member methodCall methodName methodResponse name param params \
                    string struct value base64 boolean dateTime.iso8601 double ex:nil i4 i8 int nil";

/// The type elements that hold text and are neither `<string>` nor containers.
const SCALARS: &str = "base64 boolean dateTime.iso8601 double ex:nil i4 i8 int nil";

/// An element name: known ones as `&'static str` so the grammar can match on literals.
#[derive(Debug)]
enum Tag {
    Known(&'static str),
    Unknown(String),
}

/// What the grammar reads: quick-xml events with text runs merged and comments dropped.
/// Each carries the byte offset it starts at.
#[derive(Debug)]
enum Tok {
    Open(Tag, u64),
    /// quick-xml has checked that it closes the innermost open element.
    Close(Tag, u64),
    Text(String, u64),
    Eof(u64),
}

/// The next move of the value reader, which keeps nesting on a heap stack instead of recursing.
enum Step {
    /// A complete value, for the innermost open container (or the caller when there is none).
    Done(Value),
    /// Read this container's next element or member, or its end.
    Resume(Frame),
    /// A `<value>` start tag inside this container was just read: park it, read the child.
    Child(Frame),
}

/// A container whose end tag has not been read yet.
enum Frame {
    Array(Vec<Value>),
    /// Members so far, their names (a hash set, so huge structs stay linear), and the name of
    /// the member whose value is being read.
    Struct(Struct, HashSet<String>, String),
}

struct Parser<'a> {
    reader: Reader<&'a [u8]>,
    limits: Limits,
    depth: usize,
    /// Values and members read so far, against [`Limits::max_values`].
    values: usize,
    /// The event that ended a text run, with its offset, to be handed out next.
    peeked: Option<(Event<'a>, u64)>,
    /// Whether any event has been read: the XML declaration must be the very first thing.
    started: bool,
}

impl<'a> Parser<'a> {
    fn new(doc: &'a str, limits: &Limits) -> Result<Self> {
        if doc.len() > limits.max_bytes {
            return Err(XmlRpcError::TooLarge {
                size: doc.len(),
                limit: limits.max_bytes,
            });
        }
        let mut reader = Reader::from_str(doc);
        // `<x/>` as start + end keeps one code path; end-name checks are what let `close`
        // accept any end tag as the one it expects.
        reader.config_mut().expand_empty_elements = true;
        reader.config_mut().check_end_names = true;
        Ok(Self {
            reader,
            limits: *limits,
            depth: 0,
            values: 0,
            peeked: None,
            started: false,
        })
    }

    fn next(&mut self) -> Result<Tok> {
        let mut text: Option<(String, u64)> = None;
        loop {
            let (event, at) = match self.peeked.take() {
                Some(peeked) => peeked,
                None => {
                    let at = self.reader.buffer_position();
                    (
                        self.reader.read_event().map_err(|e| self.xml_error(&e))?,
                        at,
                    )
                }
            };
            let started = std::mem::replace(&mut self.started, true);
            let segment = match event {
                Event::Text(t) => t.xml10_content(),
                Event::CData(c) => c.xml10_content(),
                Event::GeneralRef(r) => Cow::Owned(resolve(&r, at)?.to_string()),
                Event::Comment(_) => continue,
                Event::Decl(_) if !started => continue,
                event => {
                    if let Some((text, text_at)) = text.take() {
                        self.peeked = Some((event, at));
                        return Ok(Tok::Text(text, text_at));
                    }
                    return self.markup(event, at);
                }
            };
            if let Some(c) = first_non_xml_char(&segment) {
                let message = format!("character U+{:04X} is not allowed in XML", u32::from(c));
                return Err(malformed(message, at));
            }
            text.get_or_insert_with(|| (String::new(), at))
                .0
                .push_str(&segment);
        }
    }

    fn markup(&mut self, event: Event<'a>, at: u64) -> Result<Tok> {
        match event {
            Event::Start(e) => {
                self.depth = self.depth.saturating_add(1);
                if self.depth > self.limits.max_depth {
                    return Err(XmlRpcError::TooDeep {
                        limit: self.limits.max_depth,
                        position: at,
                    });
                }
                Ok(Tok::Open(Tag::new(e.name().0), at))
            }
            Event::End(e) => {
                self.depth = self.depth.saturating_sub(1);
                Ok(Tok::Close(Tag::new(e.name().0), at))
            }
            Event::Eof => Ok(Tok::Eof(at)),
            Event::DocType(_) => Err(XmlRpcError::Doctype { position: at }),
            Event::Decl(_) => Err(malformed("XML declaration not at the start", at)),
            Event::PI(_) => Err(malformed("processing instructions are not allowed", at)),
            _ => Err(malformed("unexpected markup", at)),
        }
    }

    /// Counts one more value or member.
    fn count(&mut self, at: u64) -> Result<()> {
        self.values += 1;
        if self.values > self.limits.max_values {
            return Err(XmlRpcError::TooManyValues {
                limit: self.limits.max_values,
                position: at,
            });
        }
        Ok(())
    }

    fn xml_error(&self, e: &XmlError) -> XmlRpcError {
        let position = self.reader.error_position();
        match e {
            // A DOCTYPE quick-xml could not even delimit is still a DOCTYPE.
            XmlError::Syntax(SyntaxError::UnclosedDoctype)
            | XmlError::IllFormed(IllFormedError::MissingDoctypeName) => {
                XmlRpcError::Doctype { position }
            }
            _ => malformed(clip(&e.to_string(), 200), position),
        }
    }

    fn next_skip_space(&mut self) -> Result<Tok> {
        match self.next()? {
            Tok::Text(text, _) if text.chars().all(is_xml_space) => self.next(),
            tok => Ok(tok),
        }
    }

    fn open(&mut self, tag: &'static str, expected: &'static str) -> Result<u64> {
        match self.next_skip_space()? {
            Tok::Open(Tag::Known(t), at) if t == tag => Ok(at),
            other => Err(unexpected(other, expected)),
        }
    }

    fn close(&mut self, expected: &'static str) -> Result<()> {
        match self.next_skip_space()? {
            Tok::Close(..) => Ok(()),
            other => Err(unexpected(other, expected)),
        }
    }

    /// The text of an element whose start tag was just read, through its end tag.
    fn text_then_close(&mut self, expected: &'static str) -> Result<(String, u64)> {
        match self.next()? {
            Tok::Text(text, at) => match self.next()? {
                Tok::Close(..) => Ok((text, at)),
                other => Err(unexpected(other, expected)),
            },
            Tok::Close(_, at) => Ok((String::new(), at)),
            other => Err(unexpected(other, expected)),
        }
    }

    /// After the root element only whitespace and comments may follow.
    fn finish(&mut self) -> Result<()> {
        match self.next_skip_space()? {
            Tok::Eof(_) => Ok(()),
            Tok::Open(_, at) | Tok::Close(_, at) | Tok::Text(_, at) => {
                Err(malformed("content after the root element", at))
            }
        }
    }

    /// The `<param>`s of a `<params>` whose start tag was just read, through its end tag.
    fn params(&mut self) -> Result<Vec<Value>> {
        let mut params = Vec::new();
        loop {
            match self.next_skip_space()? {
                Tok::Open(Tag::Known("param"), _) => {
                    self.open("value", "<value>")?;
                    params.push(self.value()?);
                    self.close("</param>")?;
                }
                Tok::Close(..) => return Ok(params),
                other => return Err(unexpected(other, "<param> or </params>")),
            }
        }
    }

    /// A `<value>` whose start tag was just read, through its end tag.
    fn value(&mut self) -> Result<Value> {
        let mut stack = Vec::new();
        let mut step = self.value_head()?;
        loop {
            step = match step {
                Step::Done(value) => match stack.pop() {
                    None => return Ok(value),
                    Some(Frame::Array(mut items)) => {
                        items.push(value);
                        Step::Resume(Frame::Array(items))
                    }
                    Some(Frame::Struct(mut members, names, name)) => {
                        self.close("</member>")?;
                        members.push_unchecked(name, value);
                        Step::Resume(Frame::Struct(members, names, String::new()))
                    }
                },
                Step::Resume(frame) => self.next_item(frame)?,
                Step::Child(frame) => {
                    stack.push(frame);
                    self.value_head()?
                }
            };
        }
    }

    /// Inside a `<value>`: untyped text, a scalar, or the start of a container.
    fn value_head(&mut self) -> Result<Step> {
        let at = self.reader.buffer_position();
        self.count(at)?;
        let (text, tok) = match self.next()? {
            Tok::Text(text, _) => (text, self.next()?),
            tok => (String::new(), tok),
        };
        let (tag, at) = match tok {
            // No type element: a string, kept exactly (xmlrpclib does the same).
            Tok::Close(..) => return Ok(Step::Done(Value::String(text))),
            Tok::Open(Tag::Known(tag), at) => (tag, at),
            other => return Err(unexpected(other, "a type element or </value>")),
        };
        if !text.chars().all(is_xml_space) {
            return Err(malformed("text beside a type element in <value>", at));
        }
        let value = match tag {
            "array" => {
                self.open("data", "<data>")?;
                return Ok(Step::Resume(Frame::Array(Vec::new())));
            }
            "struct" => {
                return Ok(Step::Resume(Frame::Struct(
                    Struct::new(),
                    HashSet::new(),
                    String::new(),
                )));
            }
            "string" => Value::String(self.text_then_close("</string>")?.0),
            tag if SCALARS.split(' ').any(|t| t == tag) => {
                let (text, text_at) = self.text_then_close("text")?;
                scalar(tag, &text, text_at)?
            }
            tag => return Err(unexpected(Tok::Open(Tag::Known(tag), at), "a type element")),
        };
        self.close("</value>")?;
        Ok(Step::Done(value))
    }

    /// Reads on in a container: its next child `<value>`, or its end tags through `</value>`.
    fn next_item(&mut self, frame: Frame) -> Result<Step> {
        let tok = self.next_skip_space()?;
        match frame {
            Frame::Array(items) => match tok {
                Tok::Open(Tag::Known("value"), _) => Ok(Step::Child(Frame::Array(items))),
                Tok::Close(..) => {
                    self.close("</array>")?;
                    self.close("</value>")?;
                    Ok(Step::Done(Value::Array(items)))
                }
                other => Err(unexpected(other, "<value> or </data>")),
            },
            Frame::Struct(members, mut names, _) => match tok {
                Tok::Open(Tag::Known("member"), at) => {
                    self.count(at)?;
                    self.open("name", "<name>")?;
                    let (name, _) = self.text_then_close("</name>")?;
                    if !names.insert(name.clone()) {
                        return Err(XmlRpcError::DuplicateMember {
                            name: clip(&name, 64),
                            position: at,
                        });
                    }
                    self.open("value", "<value>")?;
                    Ok(Step::Child(Frame::Struct(members, names, name)))
                }
                Tok::Close(..) => {
                    self.close("</value>")?;
                    Ok(Step::Done(Value::Struct(members)))
                }
                other => Err(unexpected(other, "<member> or </struct>")),
            },
        }
    }
}

impl Tag {
    fn new(name: &str) -> Self {
        TAGS.split(' ')
            .find(|t| *t == name)
            .map_or_else(|| Self::Unknown(clip(name, 64)), Self::Known)
    }

    fn name(&self) -> &str {
        match self {
            Self::Known(name) => name,
            Self::Unknown(name) => name,
        }
    }
}

/// The character an entity or character reference stands for; only XML's five predefined
/// entities exist here, since DOCTYPEs (and so declarations) are refused.
fn resolve(r: &BytesRef<'_>, at: u64) -> Result<char> {
    Ok(match &**r {
        "amp" => '&',
        "lt" => '<',
        "gt" => '>',
        "quot" => '"',
        "apos" => '\'',
        _ => match r.resolve_char_ref() {
            Ok(Some(c)) if is_xml_char(c) => c,
            _ => {
                return Err(XmlRpcError::Entity {
                    name: clip(r, 64),
                    position: at,
                });
            }
        },
    })
}

/// A scalar type element's text as its value.
fn scalar(kind: &'static str, text: &str, at: u64) -> Result<Value> {
    let trimmed = text.trim_matches(is_xml_space);
    let bad = || invalid(kind, text, at);
    Ok(match kind {
        "boolean" => match trimmed {
            "0" => Value::Bool(false),
            "1" => Value::Bool(true),
            _ => return Err(bad()),
        },
        "double" => match trimmed.parse::<f64>() {
            Ok(d) if d.is_finite() => Value::Double(d),
            _ => return Err(bad()),
        },
        "dateTime.iso8601" if is_iso8601(trimmed) => Value::DateTime(trimmed.to_owned()),
        "base64" => {
            let compact: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
            Value::Base64(STANDARD.decode(compact).map_err(|_| bad())?)
        }
        "nil" | "ex:nil" if trimmed.is_empty() => Value::Nil,
        "int" | "i4" | "i8" => Value::Int(trimmed.parse().map_err(|_| bad())?),
        _ => return Err(bad()),
    })
}

/// Builds the fault from the value inside `<fault>`; extra members are ignored, as xmlrpclib did.
fn fault(value: &Value, at: u64) -> Result<Fault> {
    let members = value.as_struct();
    let code = members
        .and_then(|s| s.get("faultCode"))
        .and_then(Value::as_i64);
    let string = members
        .and_then(|s| s.get("faultString"))
        .and_then(Value::as_str);
    let (Some(code), Some(string)) = (code, string) else {
        return Err(malformed(
            "a fault is a struct of int faultCode and string faultString",
            at,
        ));
    };
    let code = i32::try_from(code).map_err(|_| invalid("faultCode", &code.to_string(), at))?;
    Ok(Fault {
        code,
        string: string.to_owned(),
    })
}

fn unexpected(tok: Tok, expected: &'static str) -> XmlRpcError {
    match tok {
        Tok::Open(tag, position) => XmlRpcError::UnexpectedTag {
            tag: tag.name().to_owned(),
            expected,
            position,
        },
        Tok::Close(tag, position) => XmlRpcError::UnexpectedTag {
            tag: format!("/{}", tag.name()),
            expected,
            position,
        },
        Tok::Text(_, at) => malformed(format!("unexpected text; expected {expected}"), at),
        Tok::Eof(at) => malformed(format!("document ends; expected {expected}"), at),
    }
}

fn is_xml_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r')
}

/// At most `max` characters of peer text: errors go back to the peer and into logs, and must
/// not carry a multi-megabyte blob.
fn clip(text: &str, max: usize) -> String {
    text.chars().take(max).collect()
}

fn invalid(kind: &'static str, text: &str, position: u64) -> XmlRpcError {
    XmlRpcError::InvalidValue {
        kind,
        text: clip(text, 64),
        position,
    }
}

fn malformed(message: impl Into<String>, position: u64) -> XmlRpcError {
    XmlRpcError::Malformed {
        message: message.into(),
        position,
    }
}

#[cfg(test)]
mod tests;
