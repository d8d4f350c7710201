//! GIDs: a certificate binding an hrn and a uuid to a public key, with the chain of authority
//! GIDs that issued it.
//!
//! This module owns the GID payload in both forms: the 2008 one (`http://` + XML-RPC
//! `{hrn, uuid}`, uuid a decimal string) and the later SFA one (`URI:urn:publicid:IDN+…,
//! URI:urn:uuid:…`, also the transitional `{uuid, urn}` struct), and it writes the 2008 one byte
//! for byte. A parsed GID is unverified: the [`crate::Verifier`] decides whether to believe it.

use geni_xmlrpc::{Limits, Struct, Value, dumps_params, parse_params};

use crate::cert::{CertSpec, Certificate, ChainForm, Leading, Memo, join_chain, split_chain};
use crate::{CertMode, Hrn, Keypair, PublicKey, TrustError, Validity, urn_to_hrn};

/// A GID with its parent chain (parents are GIDs too, as 2008 re-read them).
#[derive(Debug, Clone)]
pub struct Gid {
    cert: Certificate,
    hrn: Hrn,
    uuid: Option<String>,
    parent: Option<Box<Self>>,
}

/// A new random uuid as 2008's `create_uuid()` wrote it: `str(uuid.uuid4().int)`.
pub fn new_uuid() -> Result<String, TrustError> {
    let mut bytes = [0u8; 16];
    openssl::rand::rand_bytes(&mut bytes).map_err(crate::error::crypto("drawing a uuid"))?;
    // RFC 4122 version 4, variant 10.
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    Ok(u128::from_be_bytes(bytes).to_string())
}

impl Gid {
    /// Reads a GID chain (either chain form).
    pub fn parse(text: &str) -> Result<Self, TrustError> {
        Self::parse_named(text, "GID", Leading::Whitespace)
    }

    pub(crate) fn parse_named(
        text: &str,
        what: &str,
        leading: Leading,
    ) -> Result<Self, TrustError> {
        Self::parse_with(text, what, leading, &mut Memo::default())
    }

    /// Parses a GID embedded in another object, within its top-level parse: credentials repeat
    /// the same GID chains in every link.
    pub(crate) fn parse_in(text: &str, what: &str, memo: &mut Memo) -> Result<Self, TrustError> {
        Self::parse_with(text, what, Leading::Whitespace, memo)
    }

    fn parse_with(
        text: &str,
        what: &str,
        leading: Leading,
        memo: &mut Memo,
    ) -> Result<Self, TrustError> {
        if let Some(g) = memo.gids.get(text) {
            return Ok(g.clone());
        }
        let certs = split_chain(text, what, leading, memo)?;
        // The chain is built from the top down; say first what the leaf is when it is no GID
        // ("this is a ticket, not a GID" rather than a complaint about its parent).
        if let Some(leaf) = certs.first().filter(|c| c.xmlrpc_payload().is_some()) {
            ObjectKind::expect(leaf, ObjectKind::Gid, what)?;
        }
        let gid = chain_from(certs, Self::from_cert)?;
        memo.gids.insert(Box::from(text), gid.clone());
        Ok(gid)
    }

    pub fn load(path: &std::path::Path) -> Result<Self, TrustError> {
        let text = read_text(path)?;
        Self::parse_named(&text, &format!("GID {}", path.display()), Leading::Text)
    }

    fn from_cert(cert: Certificate, parent: Option<Box<Self>>) -> Result<Self, TrustError> {
        let what = || format!("GID {}", cert.subject());
        let (hrn, uuid) = if cert.xmlrpc_payload().is_some() {
            let fields = ObjectKind::expect(&cert, ObjectKind::Gid, &what())?;
            let uuid = match fields.get("uuid") {
                None | Some(Value::Nil) => None,
                Some(Value::String(s)) => Some(s.clone()),
                Some(Value::Int(i)) => Some(i.to_string()),
                Some(v) => {
                    return Err(TrustError::decode(
                        what(),
                        format!("uuid is a {}", v.type_name()),
                    ));
                }
            };
            let hrn = match (fields.get("hrn"), fields.get("urn")) {
                (Some(Value::String(h)), _) => Hrn::parse(h)?,
                (_, Some(Value::String(u))) => urn_to_hrn(u)?.0,
                _ => return Err(TrustError::decode(what(), "payload has no hrn")),
            };
            (hrn, uuid)
        } else {
            sfa_names(&cert)
                .ok_or_else(|| TrustError::decode(what(), "no GID payload in subjectAltName"))??
        };
        Ok(Self {
            cert,
            hrn,
            uuid,
            parent,
        })
    }

    /// Makes and signs a GID. `issuer` is the signing authority's hrn (the GID's own for a
    /// self-signed root) and `parent` the issuer's GID chain.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn create(
        hrn: &Hrn,
        uuid: &str,
        key: &PublicKey,
        issuer: &str,
        signer: &Keypair,
        parent: Option<Self>,
        validity: Validity,
        mode: CertMode,
    ) -> Result<Self, TrustError> {
        if uuid.is_empty() || !uuid.bytes().all(|b| b.is_ascii_digit()) {
            return Err(TrustError::Encode {
                what: format!("GID {hrn}"),
                reason: format!("uuid {uuid:?} is not a decimal number"),
            });
        }
        let payload = encode_payload(
            &Struct::new().with("hrn", hrn.as_str()).with("uuid", uuid),
            false,
            hrn.as_str(),
        )?;
        let cert = CertSpec {
            subject: hrn.as_str(),
            issuer,
            subject_key: key,
            signer,
            payload: Some(&payload),
            validity,
            mode,
        }
        .build()?;
        Ok(Self {
            cert,
            hrn: hrn.clone(),
            uuid: Some(uuid.to_owned()),
            parent: parent.map(Box::new),
        })
    }

    pub fn hrn(&self) -> &Hrn {
        &self.hrn
    }

    pub fn uuid(&self) -> Option<&str> {
        self.uuid.as_deref()
    }

    pub fn certificate(&self) -> &Certificate {
        &self.cert
    }

    pub fn public_key(&self) -> &PublicKey {
        self.cert.public_key()
    }

    pub fn parent(&self) -> Option<&Self> {
        self.parent.as_deref()
    }

    /// The GID without its parents (what `TrustedRootList.add_gid` wrote).
    #[must_use]
    pub fn without_parents(&self) -> Self {
        Self {
            parent: None,
            ..self.clone()
        }
    }

    /// The 2008 payload rebuilt from the fields: equal to the certificate's own for anything the
    /// 2008 classes (or our compat mode) wrote.
    pub fn payload_2008(&self) -> Result<String, TrustError> {
        let uuid = self.uuid.as_deref().ok_or_else(|| TrustError::Encode {
            what: format!("GID {}", self.hrn),
            reason: "no uuid".into(),
        })?;
        encode_payload(
            &Struct::new()
                .with("hrn", self.hrn.as_str())
                .with("uuid", uuid),
            false,
            self.hrn.as_str(),
        )
    }

    /// The chain as text, child first.
    pub fn to_chain_string(&self, form: ChainForm) -> Result<String, TrustError> {
        chain_string(self, form)
    }
}

impl Chained for Gid {
    fn cert(&self) -> &Certificate {
        &self.cert
    }
    fn parent_link(&self) -> Option<&Self> {
        self.parent.as_deref()
    }
}

/// The later SFA form: `URI:urn:publicid:IDN+…` and `URI:urn:uuid:…` GeneralNames.
fn sfa_names(cert: &Certificate) -> Option<Result<(Hrn, Option<String>), TrustError>> {
    let urn = cert
        .san_uris()
        .iter()
        .find(|u| u.to_ascii_lowercase().starts_with("urn:publicid:idn+"))?;
    let hrn = match urn_to_hrn(urn) {
        Ok((hrn, _)) => hrn,
        Err(e) => return Some(Err(e)),
    };
    let uuid = cert.san_uris().iter().find_map(|u| {
        let hex: String = u
            .strip_prefix("urn:uuid:")?
            .chars()
            .filter(|c| *c != '-')
            .collect();
        u128::from_str_radix(&hex, 16).ok().map(|n| n.to_string())
    });
    Some(Ok((hrn, uuid)))
}

// === shared by GIDs, credentials and tickets ===

/// A certificate-backed object whose parents are of its own type, as 2008's polymorphic
/// `load_from_string` made them.
pub(crate) trait Chained: Sized {
    fn cert(&self) -> &Certificate;
    fn parent_link(&self) -> Option<&Self>;

    /// Self, then each parent up to the root.
    fn links(&self) -> Vec<&Self> {
        let mut out = vec![self];
        let mut cur = self;
        while let Some(p) = cur.parent_link() {
            out.push(p);
            cur = p;
        }
        out
    }
}

/// Builds an object chain from certificates (child first), innermost parent first.
pub(crate) fn chain_from<T>(
    certs: Vec<Certificate>,
    mut make: impl FnMut(Certificate, Option<Box<T>>) -> Result<T, TrustError>,
) -> Result<T, TrustError> {
    let mut parent: Option<Box<T>> = None;
    let mut certs = certs;
    while let Some(cert) = certs.pop() {
        let obj = make(cert, parent.take())?;
        if certs.is_empty() {
            return Ok(obj);
        }
        parent = Some(Box::new(obj));
    }
    Err(TrustError::decode("chain", "no certificate"))
}

/// Builds one link of an object chain from its certificate and its parent.
pub(crate) type MakeLink<T> = fn(Certificate, Option<Box<T>>, &mut Memo) -> Result<T, TrustError>;

/// Parses an object chain whose links embed GIDs (credentials, tickets), sharing one memo. Text
/// from a peer: nothing but whitespace may precede the first certificate.
pub(crate) fn parse_object<T>(text: &str, what: &str, make: MakeLink<T>) -> Result<T, TrustError> {
    parse_object_with(text, what, Leading::Whitespace, make)
}

fn parse_object_with<T>(
    text: &str,
    what: &str,
    leading: Leading,
    make: MakeLink<T>,
) -> Result<T, TrustError> {
    let mut memo = Memo::default();
    let certs = split_chain(text, what, leading, &mut memo)?;
    chain_from(certs, |c, p| make(c, p, &mut memo))
}

/// [`parse_object`] on a file, errors naming the file.
pub(crate) fn load_object<T>(
    path: &std::path::Path,
    what: &str,
    make: MakeLink<T>,
) -> Result<T, TrustError> {
    let text = read_text(path)?;
    parse_object_with(
        &text,
        &format!("{what} {}", path.display()),
        Leading::Text,
        make,
    )
}

pub(crate) fn chain_string<T: Chained>(obj: &T, form: ChainForm) -> Result<String, TrustError> {
    let pems = obj
        .links()
        .iter()
        .map(|l| l.cert().to_pem())
        .collect::<Result<Vec<_>, _>>()?;
    Ok(join_chain(&pems, form))
}

/// Decodes a SAN payload into its one struct.
pub(crate) fn payload_struct(payload: &str, what: &str) -> Result<Struct, TrustError> {
    let params = parse_params(payload, &Limits::default())
        .map_err(|e| TrustError::decode(what, format!("subjectAltName payload: {e}")))?;
    match params.into_iter().next() {
        Some(Value::Struct(s)) => Ok(s),
        Some(v) => Err(TrustError::decode(
            what,
            format!("payload is a {}, not a struct", v.type_name()),
        )),
        None => Err(TrustError::decode(what, "payload has no parameter")),
    }
}

pub(crate) fn encode_payload(
    fields: &Struct,
    allow_none: bool,
    what: &str,
) -> Result<String, TrustError> {
    dumps_params(&[Value::Struct(fields.clone())], allow_none).map_err(|e| TrustError::Encode {
        what: what.to_owned(),
        reason: e.to_string(),
    })
}

pub(crate) fn read_text(path: &std::path::Path) -> Result<String, TrustError> {
    let bytes = std::fs::read(path).map_err(|e| TrustError::io(path, e))?;
    String::from_utf8(bytes)
        .map_err(|_| TrustError::decode(path.display().to_string(), "file is not text"))
}

/// What kind of object a text holds, judged by its leaf certificate's payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectKind {
    Credential,
    Gid,
    Ticket,
}

impl ObjectKind {
    /// The kind a subjectAltName payload's members say: credentials carry `privileges` or
    /// `lifeTime`, tickets `attributes` or `rspec`, GIDs an `hrn` (or `urn`) and neither of the
    /// others. A payload with members of two kinds is no object at all, and an error: parsing is
    /// strict so that no object can stand in for another of a different kind (a credential
    /// re-read as a ticket, a GID as a credential).
    pub(crate) fn of_payload(fields: &Struct, what: &str) -> Result<Self, TrustError> {
        let credential = fields.contains("privileges") || fields.contains("lifeTime");
        let ticket = fields.contains("attributes") || fields.contains("rspec");
        let gid = fields.contains("hrn") || fields.contains("urn");
        match (credential, ticket, gid) {
            (true, false, false) => Ok(Self::Credential),
            (false, true, false) => Ok(Self::Ticket),
            (false, false, true) => Ok(Self::Gid),
            (false, false, false) => Err(TrustError::decode(
                what,
                "payload is not a GID, credential or ticket",
            )),
            _ => Err(TrustError::decode(
                what,
                "payload mixes the members of a GID, a credential and a ticket",
            )),
        }
    }

    /// "GID", "credential" or "ticket", as messages name them.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Credential => "credential",
            Self::Gid => "GID",
            Self::Ticket => "ticket",
        }
    }

    /// The kind of `cert` and its payload's members (none for a GID in the later SFA form,
    /// whose names are URIs rather than a payload).
    pub(crate) fn read(cert: &Certificate, what: &str) -> Result<(Self, Struct), TrustError> {
        let Some(payload) = cert.xmlrpc_payload() else {
            return match sfa_names(cert) {
                Some(_) => Ok((Self::Gid, Struct::new())),
                None => Err(TrustError::decode(
                    what,
                    "no Geniwrapper payload in subjectAltName",
                )),
            };
        };
        let fields = payload_struct(payload, what)?;
        Ok((Self::of_payload(&fields, what)?, fields))
    }

    /// The payload of `cert` when it is of kind `want`, else the error that names what it is
    /// ("this is a credential, not a ticket").
    pub(crate) fn expect(cert: &Certificate, want: Self, what: &str) -> Result<Struct, TrustError> {
        match Self::read(cert, what)? {
            (found, fields) if found == want => Ok(fields),
            (found, _) => Err(TrustError::decode(
                what,
                format!("this is a {}, not a {}", found.as_str(), want.as_str()),
            )),
        }
    }

    /// The kind of the leaf of `text`, judged by [`ObjectKind::of_payload`].
    pub fn detect(text: &str) -> Result<Self, TrustError> {
        let certs = split_chain(text, "object", Leading::Text, &mut Memo::default())?;
        let Some(leaf) = certs.first() else {
            return Err(TrustError::decode("object", "no certificate"));
        };
        let Some(payload) = leaf.xmlrpc_payload() else {
            return match sfa_names(leaf) {
                Some(_) => Ok(Self::Gid),
                None => Err(TrustError::decode(
                    leaf.subject(),
                    "no Geniwrapper payload in subjectAltName",
                )),
            };
        };
        let fields = payload_struct(payload, leaf.subject())?;
        Self::of_payload(&fields, leaf.subject())
    }
}
