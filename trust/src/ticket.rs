//! Tickets: a certificate that grants the caller the slice state in `attributes` and `rspec` at
//! the time it was issued, redeemable on a node.
//!
//! As in 2008, a ticket's X.509 key is the slice's, and its parents are re-read as tickets even
//! where they are really authority credentials (an authority ticket's parent is
//! `get_auth_cred(parent)`); a ticket therefore tolerates the credential members it ignores. What
//! goes beyond 2008 is an optional `target` member naming the one node the ticket is for, written
//! only in the modern form (a 2008 reader ignores members it does not know).

use geni_xmlrpc::{Struct, Value};

use crate::cert::{CertSpec, Certificate, ChainForm, Memo};
use crate::credential::{embedded_gid, flag};
use crate::gid::{
    Chained, chain_string, encode_payload, load_object, parse_object, payload_struct,
};
use crate::py2dict;
use crate::{CertMode, Gid, Hrn, Keypair, PublicKey, TrustError, Validity};

/// A ticket with its parent chain.
#[derive(Debug, Clone)]
pub struct Ticket {
    cert: Certificate,
    caller: Option<Gid>,
    object: Option<Gid>,
    attributes: Struct,
    rspec: Struct,
    delegate: bool,
    target: Option<Hrn>,
    parent: Option<Box<Self>>,
}

/// The fields of a ticket to be issued.
#[derive(Debug)]
pub(crate) struct TicketFields<'a> {
    pub(crate) caller: &'a Gid,
    pub(crate) object: &'a Gid,
    pub(crate) attributes: &'a Struct,
    pub(crate) rspec: &'a Struct,
    pub(crate) delegate: bool,
    pub(crate) target: Option<&'a Hrn>,
}

impl Ticket {
    /// Reads a ticket chain (either chain form). Unverified: see [`crate::Verifier`].
    pub fn parse(text: &str) -> Result<Self, TrustError> {
        parse_object(text, "ticket", Self::from_cert)
    }

    pub fn load(path: &std::path::Path) -> Result<Self, TrustError> {
        load_object(path, "ticket", Self::from_cert)
    }

    fn from_cert(
        cert: Certificate,
        parent: Option<Box<Self>>,
        memo: &mut Memo,
    ) -> Result<Self, TrustError> {
        let what = format!("ticket {}", cert.subject());
        let payload = cert
            .xmlrpc_payload()
            .ok_or_else(|| TrustError::decode(&what, "no ticket payload in subjectAltName"))?;
        let fields = payload_struct(payload, &what)?;
        let dict = |name: &str| -> Result<Struct, TrustError> {
            match fields.get(name) {
                None | Some(Value::Nil) => Ok(Struct::new()),
                Some(Value::Struct(s)) => Ok(s.clone()),
                Some(v) => Err(TrustError::decode(
                    &what,
                    format!("{name} is a {}", v.type_name()),
                )),
            }
        };
        let target = match fields.get("target") {
            None | Some(Value::Nil) => None,
            Some(Value::String(s)) => Some(Hrn::parse(s)?),
            Some(v) => {
                return Err(TrustError::decode(
                    &what,
                    format!("target is a {}", v.type_name()),
                ));
            }
        };
        Ok(Self {
            caller: embedded_gid(&fields, "gidCaller", &what, memo)?,
            object: embedded_gid(&fields, "gidObject", &what, memo)?,
            attributes: dict("attributes")?,
            rspec: dict("rspec")?,
            delegate: flag(&fields, "delegate", &what)?,
            target,
            cert,
            parent,
        })
    }

    /// Makes and signs a ticket with the members in the order given (see [`py2_ordered`] for
    /// issuing in 2008 order). In 2008 mode a target is refused: the 2008 shape has no place for
    /// it.
    pub(crate) fn create(
        fields: &TicketFields<'_>,
        key: &PublicKey,
        issuer: &str,
        signer: &Keypair,
        parent: Option<Self>,
        validity: Validity,
        mode: CertMode,
    ) -> Result<Self, TrustError> {
        let subject = fields.object.hrn().as_str();
        if mode == CertMode::Compat2008 && fields.target.is_some() {
            return Err(TrustError::Encode {
                what: format!("ticket {subject}"),
                reason: "the 2008 ticket shape cannot name a target node; use the modern form"
                    .into(),
            });
        }
        let mut ticket = Self {
            cert: fields.object.certificate().clone(),
            caller: Some(fields.caller.clone()),
            object: Some(fields.object.clone()),
            attributes: fields.attributes.clone(),
            rspec: fields.rspec.clone(),
            delegate: fields.delegate,
            target: fields.target.cloned(),
            parent: parent.map(Box::new),
        };
        let payload = ticket.payload()?;
        ticket.cert = CertSpec {
            subject,
            issuer,
            subject_key: key,
            signer,
            payload: Some(&payload),
            validity,
            mode,
        }
        .build()?;
        Ok(ticket)
    }

    /// The payload rebuilt from the fields, members in Python 2's order (gidObject, gidCaller,
    /// delegate, rspec, attributes), then `target` when there is one.
    pub fn payload(&self) -> Result<String, TrustError> {
        let what = format!("ticket {}", self.cert.subject());
        let gid = |g: &Option<Gid>| -> Result<Value, TrustError> {
            Ok(match g {
                Some(g) => Value::String(g.to_chain_string(ChainForm::Separator)?),
                None => Value::Nil,
            })
        };
        let mut fields = Struct::new()
            .with("gidObject", gid(&self.object)?)
            .with("gidCaller", gid(&self.caller)?)
            .with("delegate", self.delegate)
            .with("rspec", self.rspec.clone())
            .with("attributes", self.attributes.clone());
        if let Some(t) = &self.target {
            fields.insert("target", t.as_str());
        }
        encode_payload(&fields, true, &what)
    }

    pub fn certificate(&self) -> &Certificate {
        &self.cert
    }

    pub fn subject(&self) -> &str {
        self.cert.subject()
    }

    pub fn caller(&self) -> Option<&Gid> {
        self.caller.as_ref()
    }

    pub fn object(&self) -> Option<&Gid> {
        self.object.as_ref()
    }

    pub fn attributes(&self) -> &Struct {
        &self.attributes
    }

    pub fn rspec(&self) -> &Struct {
        &self.rspec
    }

    pub fn delegate(&self) -> bool {
        self.delegate
    }

    /// The node this ticket is for, when it names one.
    pub fn target(&self) -> Option<&Hrn> {
        self.target.as_ref()
    }

    pub fn parent(&self) -> Option<&Self> {
        self.parent.as_deref()
    }

    pub fn to_chain_string(&self, form: ChainForm) -> Result<String, TrustError> {
        chain_string(self, form)
    }
}

impl Chained for Ticket {
    fn cert(&self) -> &Certificate {
        &self.cert
    }
    fn parent_link(&self) -> Option<&Self> {
        self.parent.as_deref()
    }
}

/// `s` with its members in the order Python 2.7 iterates a dict built by inserting them in `s`'s
/// order (top level only), as a 2008 server's `xmlrpclib.dumps` wrote them.
pub(crate) fn py2_ordered(s: &Struct) -> Struct {
    let names: Vec<&str> = s.names().collect();
    py2dict::ordered(&names)
        .into_iter()
        .filter_map(|n| s.get(n).map(|v| (n.to_owned(), v.clone())))
        .collect()
}
