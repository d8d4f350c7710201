//! Inclusive Canonical XML 1.0 without comments (`REC-xml-c14n-20010315`) of one element's
//! subtree, as an XML-DSig same-document reference (`URI="#id"`) and `SignedInfo` need it, with
//! the enveloped-signature transform as an excluded subtree.
//!
//! The rules that matter for credentials: the apex element carries every namespace in scope
//! (so a credential's canonical form includes the root's `xmlns:xsi`), and the `xml:*`
//! attributes of its ancestors that it does not override (C14N 1.0 inherits them, `xml:id`
//! included, which is what xmlsec1 signs); descendants carry only the declarations that change
//! their parent's scope; attributes sort by (namespace URI, local name), declarations by prefix;
//! empty elements become start/end pairs; text and attribute values are escaped as the
//! recommendation says. There are no comments or processing instructions to drop: the reader
//! refuses them.

use std::collections::BTreeMap;

use super::xml::{Child, Doc, XML_NS, escape_attr, escape_text};

/// The canonical form of the subtree at `apex`, leaving out the subtree at `exclude` (the
/// enveloping signature) wherever it occurs inside.
pub(crate) fn canonicalize(doc: &Doc, apex: usize, exclude: Option<usize>) -> Vec<u8> {
    let mut out = String::with_capacity(4096);
    if Some(apex) != exclude {
        let scope = doc.in_scope(apex);
        let rendered: Vec<(&str, &str)> = scope
            .iter()
            // The xml prefix is never rendered; an empty default is no declaration.
            .filter(|(p, u)| !(p.is_empty() && u.is_empty()) && p.as_str() != "xml")
            .map(|(p, u)| (p.as_str(), u.as_str()))
            .collect();
        let inherited = inherited_xml_attrs(doc, apex);
        element(doc, apex, exclude, &rendered, &inherited, &scope, &mut out);
    }
    out.into_bytes()
}

/// The `xml:*` attributes of the apex's ancestors, nearest first, each name once, that the apex
/// does not carry itself.
fn inherited_xml_attrs(doc: &Doc, apex: usize) -> Vec<(String, String, String)> {
    let own = &doc.elem(apex).attrs;
    let mut out: Vec<(String, String, String)> = Vec::new();
    let mut cur = doc.elem(apex).parent;
    while let Some(e) = cur {
        for a in &doc.elem(e).attrs {
            if a.ns == XML_NS
                && !own.iter().any(|o| o.ns == XML_NS && o.local == a.local)
                && !out.iter().any(|(_, l, _)| *l == a.local)
            {
                out.push((a.qname.clone(), a.local.clone(), a.value.clone()));
            }
        }
        cur = doc.elem(e).parent;
    }
    out
}

fn element(
    doc: &Doc,
    i: usize,
    exclude: Option<usize>,
    ns_nodes: &[(&str, &str)],
    inherited: &[(String, String, String)],
    scope: &BTreeMap<String, String>,
    out: &mut String,
) {
    let e = doc.elem(i);
    out.push('<');
    out.push_str(&e.qname);
    // Declarations sorted by prefix; the default (empty prefix) sorts first.
    for (prefix, uri) in ns_nodes {
        if prefix.is_empty() {
            out.push_str(" xmlns=\"");
        } else {
            out.push_str(" xmlns:");
            out.push_str(prefix);
            out.push_str("=\"");
        }
        out.push_str(&escape_attr(uri));
        out.push('"');
    }
    let mut attrs: Vec<(&str, &str, &str, &str)> = e
        .attrs
        .iter()
        .map(|a| {
            (
                a.ns.as_str(),
                a.local.as_str(),
                a.qname.as_str(),
                a.value.as_str(),
            )
        })
        .collect();
    for (qname, local, value) in inherited {
        attrs.push((XML_NS, local, qname, value));
    }
    attrs.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
    for (_, _, qname, value) in attrs {
        out.push(' ');
        out.push_str(qname);
        out.push_str("=\"");
        out.push_str(&escape_attr(value));
        out.push('"');
    }
    out.push('>');
    for child in &e.children {
        match child {
            Child::Text(t) => out.push_str(&escape_text(t)),
            Child::Elem(c) if Some(*c) == exclude => {}
            Child::Elem(c) => {
                let mut child_scope = scope.clone();
                let mut changed: Vec<(&str, &str)> = Vec::new();
                for (p, u) in &doc.elem(*c).ns_decls {
                    child_scope.insert(p.clone(), u.clone());
                }
                for (p, u) in &doc.elem(*c).ns_decls {
                    let before = scope.get(p).map_or("", String::as_str);
                    if p != "xml" && before != u.as_str() && !changed.iter().any(|(q, _)| q == p) {
                        changed.push((p.as_str(), u.as_str()));
                    }
                }
                // A redeclared prefix counts once, with its last value.
                changed.retain(|(p, _)| child_scope.contains_key(*p));
                let mut nodes: Vec<(&str, &str)> = changed
                    .iter()
                    .map(|(p, _)| (*p, child_scope.get(*p).map_or("", String::as_str)))
                    .collect();
                nodes.sort_unstable();
                nodes.dedup();
                element(doc, *c, exclude, &nodes, &[], &child_scope, out);
            }
        }
    }
    out.push_str("</");
    out.push_str(&e.qname);
    out.push('>');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geni::xml::XmlLimits;

    fn c14n(s: &str, apex: usize) -> String {
        let doc = Doc::parse(s, &XmlLimits::default()).unwrap();
        String::from_utf8(canonicalize(&doc, apex, None)).unwrap()
    }

    #[test]
    fn apex_carries_scope_and_inherited_xml_attributes() {
        let s =
            "<r xmlns:xsi=\"http://x\" xml:lang=\"en\" a=\"1\"><c xml:id=\"ref0\" b=\"2\"/></r>";
        assert_eq!(
            c14n(s, 1),
            "<c xmlns:xsi=\"http://x\" b=\"2\" xml:id=\"ref0\" xml:lang=\"en\"></c>"
        );
    }

    #[test]
    fn descendants_carry_only_changed_declarations() {
        let s = "<r xmlns=\"urn:d\"><a xmlns=\"urn:d\" xmlns:p=\"urn:p\"><b xmlns=\"\"/></a></r>";
        assert_eq!(
            c14n(s, 0),
            "<r xmlns=\"urn:d\"><a xmlns:p=\"urn:p\"><b xmlns=\"\"></b></a></r>"
        );
    }

    #[test]
    fn attributes_sort_by_namespace_then_name_and_escape() {
        let s = "<r xmlns:z=\"urn:a\" xmlns:a=\"urn:z\" z:b=\"1\" a:a=\"2\" c=\"&#9;&quot;&lt;&gt;&#13;\">x&gt;\r\ny&#13;</r>";
        assert_eq!(
            c14n(s, 0),
            "<r xmlns:a=\"urn:z\" xmlns:z=\"urn:a\" c=\"&#x9;&quot;&lt;>&#xD;\" z:b=\"1\" a:a=\"2\">x&gt;\ny&#xD;</r>"
        );
    }

    #[test]
    fn excluded_subtree_is_left_out() {
        let s = "<r><a/><s><t/></s>x</r>";
        let doc = Doc::parse(s, &XmlLimits::default()).unwrap();
        let out = String::from_utf8(canonicalize(&doc, 0, Some(2))).unwrap();
        assert_eq!(out, "<r><a></a>x</r>");
    }
}
