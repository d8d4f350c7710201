//! A narrow XML tree for signed credentials, read with quick-xml, that keeps exactly what inclusive
//! C14N 1.0 needs (element and attribute names with their namespace URIs, namespace
//! declarations, text with line ends normalised, byte spans) and refuses what a credential never
//! holds and an attacker likes: DOCTYPE and entity declarations (so the only references are XML's
//! five and character references), processing instructions, comments (the text-splitting trick
//! against signed names), unbound prefixes, duplicate attributes, and input beyond explicit size,
//! depth and element limits.

use std::collections::BTreeMap;

use quick_xml::XmlVersion;
use quick_xml::errors::{Error as XmlError, IllFormedError, SyntaxError};
use quick_xml::escape::resolve_predefined_entity;
use quick_xml::events::{BytesRef, BytesStart, Event};
use quick_xml::reader::Reader;

use crate::TrustError;

pub(crate) const XML_NS: &str = "http://www.w3.org/XML/1998/namespace";

/// Bounds on what the reader accepts; the defaults fit a delegation chain of
/// [`crate::MAX_CHAIN_LEN`] links many times over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct XmlLimits {
    /// Largest document in bytes.
    pub max_bytes: usize,
    /// Deepest element nesting.
    pub max_depth: usize,
    /// Most elements in one document.
    pub max_elements: usize,
    /// Most attributes (namespace declarations included) on one element.
    pub max_attributes: usize,
}

impl Default for XmlLimits {
    fn default() -> Self {
        Self {
            max_bytes: 1 << 20,
            max_depth: 96,
            max_elements: 8192,
            max_attributes: 32,
        }
    }
}

/// A parsed document: elements in document order, the root first.
#[derive(Debug)]
pub(crate) struct Doc {
    pub(crate) elems: Vec<Elem>,
}

#[derive(Debug)]
pub(crate) struct Elem {
    /// The name as written (`ds:Signature`, `credential`).
    pub(crate) qname: String,
    pub(crate) local: String,
    /// Namespace URI of the element ("" for none).
    pub(crate) ns: String,
    pub(crate) parent: Option<usize>,
    /// This element's own declarations, prefix ("" for the default) → URI ("" undeclares the
    /// default).
    pub(crate) ns_decls: Vec<(String, String)>,
    /// Attributes other than namespace declarations, values normalised and unescaped.
    pub(crate) attrs: Vec<Attr>,
    pub(crate) children: Vec<Child>,
    /// Byte span of the whole element in the source text.
    pub(crate) span: (usize, usize),
}

#[derive(Debug)]
pub(crate) struct Attr {
    pub(crate) qname: String,
    pub(crate) local: String,
    pub(crate) ns: String,
    pub(crate) value: String,
}

#[derive(Debug)]
pub(crate) enum Child {
    Elem(usize),
    Text(String),
}

// === impl Doc ===

impl Doc {
    pub(crate) fn parse(text: &str, limits: &XmlLimits) -> Result<Self, TrustError> {
        Builder::new(text, limits)?.run()
    }

    pub(crate) fn elem(&self, i: usize) -> &Elem {
        &self.elems[i]
    }

    /// The element children of `i`, in order.
    pub(crate) fn child_elems(&self, i: usize) -> impl Iterator<Item = usize> + '_ {
        self.elems[i].children.iter().filter_map(|c| match c {
            Child::Elem(e) => Some(*e),
            Child::Text(_) => None,
        })
    }

    /// The namespaces in scope at `i` (prefix → URI), the `xml` prefix excluded.
    pub(crate) fn in_scope(&self, i: usize) -> BTreeMap<String, String> {
        scope_over(&self.elems, i)
    }
}

// === impl Elem ===

impl Elem {
    pub(crate) fn attr(&self, ns: &str, local: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|a| a.ns == ns && a.local == local)
            .map(|a| a.value.as_str())
    }

    /// The element's `xml:id`.
    pub(crate) fn xml_id(&self) -> Option<&str> {
        self.attr(XML_NS, "id")
    }
}

/// Builds the tree from quick-xml events.
struct Builder<'a> {
    reader: Reader<&'a [u8]>,
    limits: XmlLimits,
    elems: Vec<Elem>,
    open: Vec<usize>,
    root_done: bool,
}

fn bad(reason: impl Into<String>) -> TrustError {
    TrustError::decode("GENI credential XML", reason)
}

impl<'a> Builder<'a> {
    fn new(text: &'a str, limits: &XmlLimits) -> Result<Self, TrustError> {
        if text.len() > limits.max_bytes {
            return Err(bad(format!(
                "document is {} bytes, more than the limit of {}",
                text.len(),
                limits.max_bytes
            )));
        }
        let mut reader = Reader::from_str(text);
        reader.config_mut().check_end_names = true;
        reader.config_mut().expand_empty_elements = true;
        Ok(Self {
            reader,
            limits: *limits,
            elems: Vec::new(),
            open: Vec::new(),
            root_done: false,
        })
    }

    fn run(mut self) -> Result<Doc, TrustError> {
        let mut first = true;
        loop {
            let at = usize::try_from(self.reader.buffer_position()).unwrap_or(usize::MAX);
            let event = self.reader.read_event().map_err(|e| self.xml_error(&e))?;
            let was_first = std::mem::replace(&mut first, false);
            match event {
                Event::Decl(_) if was_first => {}
                Event::Decl(_) => return Err(bad("XML declaration not at the start")),
                Event::DocType(_) => return Err(bad("DOCTYPE is not allowed")),
                Event::PI(_) => return Err(bad("processing instructions are not allowed")),
                Event::Comment(_) => return Err(bad("comments are not allowed")),
                Event::Start(e) => self.start(&e, at)?,
                Event::End(_) => {
                    let end = usize::try_from(self.reader.buffer_position()).unwrap_or(usize::MAX);
                    let Some(i) = self.open.pop() else {
                        return Err(bad("end tag without a start tag"));
                    };
                    self.elems[i].span.1 = end;
                    if self.open.is_empty() {
                        self.root_done = true;
                    }
                }
                Event::Text(t) => self.text_node(&t.xml10_content())?,
                Event::CData(c) => self.text_node(&c.xml10_content())?,
                Event::GeneralRef(r) => self.text_node(&resolve(&r)?.to_string())?,
                Event::Eof => break,
                Event::Empty(_) => return Err(bad("unexpected empty element event")),
            }
        }
        if !self.open.is_empty() || self.elems.is_empty() {
            return Err(bad("the document ends before its root element does"));
        }
        Ok(Doc { elems: self.elems })
    }

    fn xml_error(&self, e: &XmlError) -> TrustError {
        let at = self.reader.error_position();
        match e {
            XmlError::Syntax(SyntaxError::UnclosedDoctype)
            | XmlError::IllFormed(IllFormedError::MissingDoctypeName) => {
                bad("DOCTYPE is not allowed")
            }
            _ => {
                let msg: String = e.to_string().chars().take(200).collect();
                bad(format!("malformed XML at byte {at}: {msg}"))
            }
        }
    }

    fn text_node(&mut self, s: &str) -> Result<(), TrustError> {
        if let Some(c) = s.chars().find(|c| !is_xml_char(*c)) {
            return Err(bad(format!(
                "character U+{:04X} is not allowed in XML",
                u32::from(c)
            )));
        }
        let Some(&parent) = self.open.last() else {
            if s.chars().all(is_xml_space) {
                return Ok(());
            }
            return Err(bad("text outside the root element"));
        };
        let children = &mut self.elems[parent].children;
        match children.last_mut() {
            Some(Child::Text(t)) => t.push_str(s),
            _ => children.push(Child::Text(s.to_owned())),
        }
        Ok(())
    }

    fn start(&mut self, e: &BytesStart<'_>, at: usize) -> Result<(), TrustError> {
        if self.root_done {
            return Err(bad("more than one root element"));
        }
        if self.elems.len() >= self.limits.max_elements {
            return Err(bad(format!(
                "more than {} elements",
                self.limits.max_elements
            )));
        }
        if self.open.len() >= self.limits.max_depth {
            return Err(bad(format!(
                "elements nested deeper than {}",
                self.limits.max_depth
            )));
        }
        let qname = e.name().0.to_owned();
        check_name(&qname)?;
        let mut ns_decls = Vec::new();
        let mut raw_attrs = Vec::new();
        for (n, a) in e.attributes().with_checks(true).enumerate() {
            if n >= self.limits.max_attributes {
                return Err(bad(format!(
                    "more than {} attributes on <{qname}>",
                    self.limits.max_attributes
                )));
            }
            let a = a.map_err(|e| bad(format!("attribute of <{qname}>: {e}")))?;
            let name = a.key.0.to_owned();
            check_name(&name)?;
            let value = a
                .normalized_value_with(XmlVersion::Implicit1_0, 1, resolve_predefined_entity)
                .map_err(|e| bad(format!("attribute {name} of <{qname}>: {e}")))?;
            // Only the predefined entities exist (no DTD), and quick-xml resolves character
            // references itself; anything else fails above.
            if let Some(c) = value.chars().find(|c| !is_xml_char(*c)) {
                return Err(bad(format!(
                    "character U+{:04X} is not allowed in XML",
                    u32::from(c)
                )));
            }
            if name == "xmlns" {
                ns_decls.push((String::new(), value.into_owned()));
            } else if let Some(prefix) = name.strip_prefix("xmlns:") {
                if value.is_empty() {
                    return Err(bad(format!("prefix {prefix} is undeclared (XML 1.1 only)")));
                }
                if prefix == "xml" && value != XML_NS || prefix == "xmlns" {
                    return Err(bad(format!("prefix {prefix} cannot be redeclared")));
                }
                ns_decls.push((prefix.to_owned(), value.into_owned()));
            } else {
                raw_attrs.push((name, value.into_owned()));
            }
        }
        let parent = self.open.last().copied();
        let index = self.elems.len();
        // In-scope namespaces: the parent's, then this element's own declarations.
        let mut scope = match parent {
            Some(p) => self.scope_of(p),
            None => BTreeMap::new(),
        };
        for (p, u) in &ns_decls {
            scope.insert(p.clone(), u.clone());
        }
        let (ns, local) = resolve_name(&qname, &scope, true)?;
        let mut attrs: Vec<Attr> = Vec::with_capacity(raw_attrs.len());
        for (name, value) in raw_attrs {
            let (ans, alocal) = resolve_name(&name, &scope, false)?;
            if attrs.iter().any(|a| a.ns == ans && a.local == alocal) {
                return Err(bad(format!("duplicate attribute {name} on <{qname}>")));
            }
            attrs.push(Attr {
                qname: name,
                local: alocal,
                ns: ans,
                value,
            });
        }
        self.elems.push(Elem {
            qname,
            local,
            ns,
            parent,
            ns_decls,
            attrs,
            children: Vec::new(),
            span: (at, at),
        });
        if let Some(p) = parent {
            self.elems[p].children.push(Child::Elem(index));
        }
        self.open.push(index);
        Ok(())
    }

    fn scope_of(&self, i: usize) -> BTreeMap<String, String> {
        scope_over(&self.elems, i)
    }
}

fn scope_over(elems: &[Elem], i: usize) -> BTreeMap<String, String> {
    let mut path = Vec::new();
    let mut cur = Some(i);
    while let Some(e) = cur {
        path.push(e);
        cur = elems[e].parent;
    }
    let mut scope = BTreeMap::new();
    for e in path.into_iter().rev() {
        for (p, u) in &elems[e].ns_decls {
            scope.insert(p.clone(), u.clone());
        }
    }
    scope
}

/// (namespace URI, local name) of a qualified name. Unprefixed attributes have no namespace;
/// unprefixed elements take the default one.
fn resolve_name(
    qname: &str,
    scope: &BTreeMap<String, String>,
    element: bool,
) -> Result<(String, String), TrustError> {
    match qname.split_once(':') {
        Some(("xml", local)) => Ok((XML_NS.to_owned(), local.to_owned())),
        Some((prefix, local)) => match scope.get(prefix) {
            Some(uri) if !uri.is_empty() => Ok((uri.clone(), local.to_owned())),
            _ => Err(bad(format!("prefix {prefix} of {qname} is not declared"))),
        },
        None if element => Ok((scope.get("").cloned().unwrap_or_default(), qname.to_owned())),
        None => Ok((String::new(), qname.to_owned())),
    }
}

/// Names are at most one `:` with non-empty parts.
fn check_name(name: &str) -> Result<(), TrustError> {
    let ok = !name.is_empty()
        && name.split(':').count() <= 2
        && name.split(':').all(|p| !p.is_empty())
        && !name.chars().any(|c| c.is_whitespace() || c.is_control());
    if ok {
        Ok(())
    } else {
        Err(bad(format!(
            "malformed name {:?}",
            name.chars().take(64).collect::<String>()
        )))
    }
}

/// The character an entity or character reference stands for: XML's five predefined entities
/// and character references only.
fn resolve(r: &BytesRef<'_>) -> Result<char, TrustError> {
    Ok(match &**r {
        "amp" => '&',
        "lt" => '<',
        "gt" => '>',
        "quot" => '"',
        "apos" => '\'',
        _ => match r.resolve_char_ref() {
            Ok(Some(c)) if is_xml_char(c) => c,
            _ => {
                let name: String = r.chars().take(64).collect();
                return Err(bad(format!("unknown entity or bad reference &{name};")));
            }
        },
    })
}

pub(crate) fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

pub(crate) fn is_xml_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r')
}

/// Escapes text content for writing.
pub(crate) fn escape_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\r' => out.push_str("&#xD;"),
            c => out.push(c),
        }
    }
    out
}

/// Escapes an attribute value for writing (double-quoted).
pub(crate) fn escape_attr(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '"' => out.push_str("&quot;"),
            '\t' => out.push_str("&#x9;"),
            '\n' => out.push_str("&#xA;"),
            '\r' => out.push_str("&#xD;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Doc, TrustError> {
        Doc::parse(s, &XmlLimits::default())
    }

    #[test]
    fn builds_a_tree_with_namespaces_and_spans() {
        let s = "<?xml version=\"1.0\"?>\n<r xmlns:a=\"urn:a\" a:x=\"1&amp;\r\n2\"><c xml:id=\"i\">t&lt;<d/></c></r>";
        let doc = parse(s).unwrap();
        let r = doc.elem(0);
        assert_eq!(r.attrs[0].ns, "urn:a");
        assert_eq!(r.attrs[0].value, "1& 2");
        let c = doc.elem(1);
        assert_eq!(c.xml_id(), Some("i"));
        assert!(matches!(&c.children[0], Child::Text(t) if t == "t<"));
        assert_eq!(&s[c.span.0..c.span.1], "<c xml:id=\"i\">t&lt;<d/></c>");
        assert_eq!(doc.in_scope(2).get("a").map(String::as_str), Some("urn:a"));
    }

    #[test]
    fn refuses_what_credentials_never_hold() {
        for (doc, why) in [
            ("<!DOCTYPE r [<!ENTITY e \"x\">]><r>&e;</r>", "DOCTYPE"),
            ("<r>&e;</r>", "entity"),
            ("<r><!-- c --></r>", "comments"),
            ("<r><?pi x?></r>", "processing"),
            ("<r><a:b/></r>", "not declared"),
            ("<r x=\"1\" x=\"2\"/>", "attribute"),
            ("<r/><r/>", "root"),
            ("<r>", "ends"),
            ("x<r/>", "outside"),
            ("<r>&#0;</r>", "reference"),
        ] {
            let e = parse(doc).unwrap_err().to_string();
            assert!(e.contains(why), "{doc}: {e}");
        }
        let deep = "<a>".repeat(200) + &"</a>".repeat(200);
        assert!(parse(&deep).unwrap_err().to_string().contains("deeper"));
        let limits = XmlLimits {
            max_bytes: 10,
            ..XmlLimits::default()
        };
        assert!(Doc::parse("<r>0123456789</r>", &limits).is_err());
    }
}
