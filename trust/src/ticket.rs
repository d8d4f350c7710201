//! Tickets: a certificate that grants the caller the slice state in `attributes` and `rspec` at
//! the time it was issued, redeemable on a node.
//!
//! As in 2008, a ticket's X.509 key is the slice's, and its chain is the authority hierarchy's: an
//! authority ticket (`get_auth_ticket`), whose parent is an authority *credential*
//! (`get_auth_cred`), and so on up to the root. Parsing is strict about that shape: the leaf must
//! carry ticket members and no credential members; a parent is either a ticket or a credential,
//! and above a credential there are only credentials. Whether each parent is really an authority's
//! (caller = object, delegate bit, the `authority` right on a credential) is the verifier's rule.
//! What goes beyond 2008 is an optional `target` member naming the one node the ticket is for,
//! written only in the modern form (a 2008 reader ignores members it does not know).

use geni_xmlrpc::{Struct, Value};

use crate::cert::{CertSpec, Certificate, ChainForm, Memo};
use crate::credential::{embedded_gid, flag, privileges_of};
use crate::gid::{Chained, ObjectKind, chain_string, encode_payload, load_object, parse_object};
use crate::py2dict;
use crate::{CertMode, Gid, Hrn, Keypair, PublicKey, RightList, TrustError, Validity};

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
    /// `Some(privileges)` for a parent link that is a credential (2008's authority credential
    /// above an authority ticket), `None` for a ticket.
    credential_privileges: Option<RightList>,
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
    /// Reads a ticket chain (either chain form). Unverified: see [`crate::Verifier`]. A
    /// credential or GID is refused ("this is a credential, not a ticket").
    pub fn parse(text: &str) -> Result<Self, TrustError> {
        parse_object(text, "ticket", Self::from_cert)?.leaf_is_ticket()
    }

    pub fn load(path: &std::path::Path) -> Result<Self, TrustError> {
        load_object(path, "ticket", Self::from_cert)?.leaf_is_ticket()
    }

    /// Reads a chain that may stand as a ticket's parent: a ticket, or a credential chain (2008's
    /// `get_auth_ticket` put the parent authority's credential there). Unverified: whether it may
    /// really parent a ticket is the verifier's rule.
    pub fn parse_parent(text: &str) -> Result<Self, TrustError> {
        parse_object(text, "ticket parent", Self::from_cert)
    }

    fn leaf_is_ticket(self) -> Result<Self, TrustError> {
        if self.credential_privileges.is_some() {
            return Err(TrustError::decode(
                format!("ticket {}", self.subject()),
                "this is a credential, not a ticket",
            ));
        }
        Ok(self)
    }

    fn from_cert(
        cert: Certificate,
        parent: Option<Box<Self>>,
        memo: &mut Memo,
    ) -> Result<Self, TrustError> {
        let what = format!("ticket {}", cert.subject());
        let (kind, fields) = ObjectKind::read(&cert, &what)?;
        match kind {
            ObjectKind::Ticket => {}
            // A credential may stand in a ticket's chain as a parent (`leaf_is_ticket` refuses it
            // as the leaf); a GID never.
            ObjectKind::Credential => return Self::credential_link(cert, &fields, parent, memo),
            ObjectKind::Gid => {
                return Err(TrustError::decode(&what, "this is a GID, not a ticket"));
            }
        }
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
            credential_privileges: None,
            cert,
            parent,
        })
    }

    /// A credential in a ticket's chain. Above it there may only be credentials: 2008 put
    /// authority tickets below authority credentials, never the reverse.
    fn credential_link(
        cert: Certificate,
        fields: &Struct,
        parent: Option<Box<Self>>,
        memo: &mut Memo,
    ) -> Result<Self, TrustError> {
        let what = format!("credential {} in a ticket's chain", cert.subject());
        if parent
            .as_ref()
            .is_some_and(|p| p.credential_privileges.is_none())
        {
            return Err(TrustError::decode(
                &what,
                "a credential cannot derive from a ticket",
            ));
        }
        Ok(Self {
            caller: embedded_gid(fields, "gidCaller", &what, memo)?,
            object: embedded_gid(fields, "gidObject", &what, memo)?,
            attributes: Struct::new(),
            rspec: Struct::new(),
            delegate: flag(fields, "delegate", &what)?,
            target: None,
            credential_privileges: Some(privileges_of(fields, &what)?),
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
            credential_privileges: None,
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

    /// For a link of the chain that is a credential (2008's authority credential above an
    /// authority ticket), its privileges; `None` for a ticket.
    pub fn credential_privileges(&self) -> Option<&RightList> {
        self.credential_privileges.as_ref()
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
