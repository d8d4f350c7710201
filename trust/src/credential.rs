//! Credentials: a certificate whose payload says who (`gidCaller`) may do what (`privileges`) to
//! which object (`gidObject`), and whether it may be delegated further (`delegate`).
//!
//! The X.509 key of a credential is the *object's* key (2008 `get_credential`), and a credential
//! delegated from it is signed with that key; the chain of parents ends in authority credentials.
//! This module parses and writes the payload (`xmlrpclib.dumps(({…},), allow_none=True)` in the
//! 2008 member order); the verifier judges it.

use geni_xmlrpc::{Struct, Value};

use crate::cert::{CertSpec, Certificate, ChainForm, Memo};
use crate::gid::{Chained, ObjectKind, chain_string, encode_payload, load_object, parse_object};
use crate::{CertMode, Gid, Keypair, PublicKey, RightList, TrustError, Validity};

/// A credential with its parent chain (parents re-read as credentials, as 2008 did).
#[derive(Debug, Clone)]
pub struct Credential {
    cert: Certificate,
    caller: Option<Gid>,
    object: Option<Gid>,
    privileges: RightList,
    delegate: bool,
    lifetime: Option<i64>,
    parent: Option<Box<Self>>,
}

/// The fields of a credential to be issued.
#[derive(Debug)]
pub(crate) struct CredentialFields<'a> {
    pub(crate) caller: &'a Gid,
    pub(crate) object: &'a Gid,
    pub(crate) privileges: &'a RightList,
    pub(crate) delegate: bool,
}

impl Credential {
    /// Reads a credential chain (either chain form). Unverified: see [`crate::Verifier`].
    pub fn parse(text: &str) -> Result<Self, TrustError> {
        parse_object(text, "credential", Self::from_cert)
    }

    pub fn load(path: &std::path::Path) -> Result<Self, TrustError> {
        load_object(path, "credential", Self::from_cert)
    }

    fn from_cert(
        cert: Certificate,
        parent: Option<Box<Self>>,
        memo: &mut Memo,
    ) -> Result<Self, TrustError> {
        let what = format!("credential {}", cert.subject());
        let fields = ObjectKind::expect(&cert, ObjectKind::Credential, &what)?;
        let caller = embedded_gid(&fields, "gidCaller", &what, memo)?;
        let object = embedded_gid(&fields, "gidObject", &what, memo)?;
        let privileges = privileges_of(&fields, &what)?;
        let delegate = flag(&fields, "delegate", &what)?;
        let lifetime = match fields.get("lifeTime") {
            None | Some(Value::Nil) => None,
            Some(Value::Int(i)) => Some(*i),
            Some(Value::String(s)) => Some(s.trim().parse().map_err(|_| {
                TrustError::decode(&what, format!("lifeTime {s:?} is not a number"))
            })?),
            Some(v) => {
                return Err(TrustError::decode(
                    &what,
                    format!("lifeTime is a {}", v.type_name()),
                ));
            }
        };
        Ok(Self {
            cert,
            caller,
            object,
            privileges,
            delegate,
            lifetime,
            parent,
        })
    }

    /// Makes and signs a credential. `key` is the credential's X.509 key (the object's, in 2008),
    /// `issuer`/`signer` the signing authority (or the parent credential's key holder when
    /// delegating), and `parent` the credential this one derives from.
    pub(crate) fn create(
        fields: &CredentialFields<'_>,
        key: &PublicKey,
        issuer: &str,
        signer: &Keypair,
        parent: Option<Self>,
        validity: Validity,
        mode: CertMode,
    ) -> Result<Self, TrustError> {
        let mut cred = Self {
            cert: placeholder_cert(fields.object)?,
            caller: Some(fields.caller.clone()),
            object: Some(fields.object.clone()),
            privileges: fields.privileges.clone(),
            delegate: fields.delegate,
            lifetime: None,
            parent: parent.map(Box::new),
        };
        let payload = cred.payload_2008()?;
        cred.cert = CertSpec {
            subject: fields.object.hrn().as_str(),
            issuer,
            subject_key: key,
            signer,
            payload: Some(&payload),
            validity,
            mode,
        }
        .build()?;
        Ok(cred)
    }

    /// The 2008 payload rebuilt from the fields, members in Python 2's order
    /// (gidObject, privileges, gidCaller, delegate, lifeTime), embedded GIDs in separator form.
    pub fn payload_2008(&self) -> Result<String, TrustError> {
        let what = format!("credential {}", self.cert.subject());
        let gid = |g: &Option<Gid>| -> Result<Value, TrustError> {
            Ok(match g {
                Some(g) => Value::String(g.to_chain_string(ChainForm::Separator)?),
                None => Value::Nil,
            })
        };
        let fields = Struct::new()
            .with("gidObject", gid(&self.object)?)
            .with("privileges", self.privileges.to_string())
            .with("gidCaller", gid(&self.caller)?)
            .with("delegate", self.delegate)
            .with("lifeTime", self.lifetime.map_or(Value::Nil, Value::Int));
        encode_payload(&fields, true, &what)
    }

    pub fn certificate(&self) -> &Certificate {
        &self.cert
    }

    /// The credential's subject: its object's hrn.
    pub fn subject(&self) -> &str {
        self.cert.subject()
    }

    pub fn caller(&self) -> Option<&Gid> {
        self.caller.as_ref()
    }

    pub fn object(&self) -> Option<&Gid> {
        self.object.as_ref()
    }

    pub fn privileges(&self) -> &RightList {
        &self.privileges
    }

    pub fn delegate(&self) -> bool {
        self.delegate
    }

    /// The raw `lifeTime` member (`None` for 2008 credentials, which never set it); expiry is the
    /// certificate's notAfter.
    pub fn lifetime(&self) -> Option<i64> {
        self.lifetime
    }

    pub fn parent(&self) -> Option<&Self> {
        self.parent.as_deref()
    }

    /// Whether the privileges allow `operation` (no verification implied).
    pub fn can_perform(&self, operation: crate::Operation) -> bool {
        self.privileges.can_perform(operation)
    }

    pub fn to_chain_string(&self, form: ChainForm) -> Result<String, TrustError> {
        chain_string(self, form)
    }
}

impl Chained for Credential {
    fn cert(&self) -> &Certificate {
        &self.cert
    }
    fn parent_link(&self) -> Option<&Self> {
        self.parent.as_deref()
    }
}

/// Stands in while a new credential's payload is computed from its fields; replaced before the
/// value is returned.
fn placeholder_cert(object: &Gid) -> Result<Certificate, TrustError> {
    Ok(object.certificate().clone())
}

pub(crate) fn embedded_gid(
    fields: &Struct,
    name: &str,
    what: &str,
    memo: &mut Memo,
) -> Result<Option<Gid>, TrustError> {
    match fields.get(name) {
        None | Some(Value::Nil) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Gid::parse_in(s, &format!("{name} of {what}"), memo).map(Some),
        Some(v) => Err(TrustError::decode(
            what,
            format!("{name} is a {}", v.type_name()),
        )),
    }
}

/// A boolean member; 2008 read it with `dict.get(…, None)`, so absent or nil is false.
/// The `privileges` member (2008 writes `None` for no rights).
pub(crate) fn privileges_of(fields: &Struct, what: &str) -> Result<RightList, TrustError> {
    match fields.get("privileges") {
        None | Some(Value::Nil) => Ok(RightList::default()),
        Some(Value::String(s)) => s.parse(),
        Some(v) => Err(TrustError::decode(
            what,
            format!("privileges is a {}", v.type_name()),
        )),
    }
}

pub(crate) fn flag(fields: &Struct, name: &str, what: &str) -> Result<bool, TrustError> {
    match fields.get(name) {
        None | Some(Value::Nil) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(Value::Int(0)) => Ok(false),
        Some(Value::Int(1)) => Ok(true),
        Some(v) => Err(TrustError::decode(
            what,
            format!("{name} is not a boolean ({})", v.type_name()),
        )),
    }
}
