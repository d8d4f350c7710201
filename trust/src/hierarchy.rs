//! The authority hierarchy on disk, laid out as 2008's `util/hierarchy.py` did:
//! `authorities/a/b/c/c.gid` (the GID chain, parents included), `c.pkey` (mode 0600) and
//! `c.dbinfo`.
//!
//! This module owns creating authorities and signing what authorities sign, exactly as
//! `reference/geniwrapper-2008.md` §1.4/§1.5 describe: GIDs signed by the parent authority (the
//! root self-signed); authority credentials (`authority`, delegate) and authority tickets whose
//! parents are the parent authority's credential; credentials issued by the object's authority
//! with the object's key; tickets issued by the slice's authority with the slice's key. Every
//! object of one issue shares one validity period, so no child outlives the parents minted with
//! it.

use std::fs;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use geni_xmlrpc::Struct;

use crate::credential::CredentialFields;
use crate::gid::read_text;
use crate::keys::write_public;
use crate::ticket::{TicketFields, py2_ordered};
use crate::{
    CertMode, ChainForm, Clock, Credential, Gid, Hrn, Keypair, PublicKey, RecordType, Right,
    RightList, SystemClock, Ticket, TrustError, Validity, new_uuid,
};

/// Default lifetimes in the modern form.
const AUTHORITY_LIFETIME: i64 = 5 * 365 * 86_400;
const GID_LIFETIME: i64 = 5 * 365 * 86_400;

/// An `authorities/` tree.
#[derive(Debug, Clone)]
pub struct Hierarchy {
    base: PathBuf,
    mode: CertMode,
    clock: Arc<dyn Clock>,
    /// New GIDs in the GENI form (URN subjectAltNames, CA:TRUE on authorities).
    urn_gids: bool,
}

/// One authority's files, loaded.
#[derive(Debug, Clone)]
pub struct AuthorityInfo {
    pub hrn: Hrn,
    /// The authority's GID with its parents.
    pub gid: Gid,
    pub key: Keypair,
    /// The `.dbinfo` text as stored (a Python dict literal in 2008 trees).
    pub dbinfo: String,
}

impl Hierarchy {
    /// The tree rooted at `base` (the `authorities` directory itself), writing modern objects.
    pub fn new(base: impl Into<PathBuf>) -> Self {
        Self {
            base: base.into(),
            mode: CertMode::Modern,
            clock: Arc::new(SystemClock),
            urn_gids: false,
        }
    }

    /// Writes new GIDs in the GENI form (`geni::UrnGidSpec`): URN and uuid subjectAltNames,
    /// `CA:TRUE` exactly on authorities, so that one tree serves both protocols (the 2008
    /// verifier reads these GIDs too). Not with [`CertMode::Compat2008`], which has no such form.
    #[must_use]
    pub fn with_urn_gids(mut self, on: bool) -> Self {
        self.urn_gids = on;
        self
    }

    /// Writes new objects in `mode`. In 2008 mode new authority keys are 1024-bit, as 2008's were.
    #[must_use]
    pub fn with_mode(mut self, mode: CertMode) -> Self {
        self.mode = mode;
        self
    }

    /// Uses `clock` for the validity of new objects (tests mint expired or future objects).
    #[must_use]
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    pub fn base(&self) -> &Path {
        &self.base
    }

    pub fn mode(&self) -> CertMode {
        self.mode
    }

    fn key_bits(&self) -> u32 {
        match self.mode {
            CertMode::Compat2008 => 1024,
            CertMode::Modern => Keypair::DEFAULT_BITS,
        }
    }

    /// `(directory, gid, pkey, dbinfo)` paths of `hrn`: one directory level per label, each an
    /// ordinary file name. The hrn grammar allows nothing else; checking here as well keeps every
    /// path this type writes or deletes under its base whatever a caller hands it.
    pub fn paths(&self, hrn: &Hrn) -> Result<(PathBuf, PathBuf, PathBuf, PathBuf), TrustError> {
        let mut dir = self.base.clone();
        for label in hrn.labels() {
            let mut parts = Path::new(label).components();
            match (parts.next(), parts.next()) {
                (Some(Component::Normal(_)), None) => dir.push(label),
                _ => {
                    return Err(TrustError::InvalidHrn {
                        hrn: hrn.to_string(),
                        reason: "a label would leave the authority directory",
                    });
                }
            }
        }
        let leaf = hrn.leaf();
        let gid = dir.join(format!("{leaf}.gid"));
        let pkey = dir.join(format!("{leaf}.pkey"));
        let dbinfo = dir.join(format!("{leaf}.dbinfo"));
        Ok((dir, gid, pkey, dbinfo))
    }

    /// Whether all three files of `hrn` exist (2008 `auth_exists`).
    pub fn exists(&self, hrn: &Hrn) -> bool {
        self.paths(hrn)
            .is_ok_and(|(_, gid, pkey, dbinfo)| gid.is_file() && pkey.is_file() && dbinfo.is_file())
    }

    /// Creates authority `hrn`: a new key, a GID signed by its parent (self-signed for a
    /// top-level name) and a dbinfo. The parent must exist unless `create_parents`.
    pub fn create_authority(
        &self,
        hrn: &Hrn,
        create_parents: bool,
    ) -> Result<AuthorityInfo, TrustError> {
        if self.exists(hrn) {
            return Err(TrustError::AuthorityExists {
                hrn: hrn.to_string(),
            });
        }
        if let Some(parent) = hrn.authority()
            && !self.exists(&parent)
        {
            if !create_parents {
                return Err(TrustError::MissingAuthority {
                    hrn: parent.to_string(),
                    dir: self.base.clone(),
                });
            }
            self.create_authority(&parent, true)?;
        }
        let (dir, gid_path, pkey_path, dbinfo_path) = self.paths(hrn)?;
        fs::create_dir_all(&dir).map_err(|e| TrustError::io(&dir, e))?;
        let key = Keypair::generate(self.key_bits())?;
        let uuid = new_uuid()?;
        let validity = self.validity(AUTHORITY_LIFETIME);
        let gid = match hrn.authority() {
            _ if self.urn_gids => {
                let parent = match hrn.authority() {
                    Some(p) => Some(self.authority(&p)?),
                    None => None,
                };
                self.urn_gid(
                    hrn,
                    RecordType::Sa,
                    &uuid,
                    &key.public_key(),
                    parent.as_ref(),
                    &key,
                )?
            }
            None => Gid::create(
                hrn,
                &uuid,
                &key.public_key(),
                hrn.as_str(),
                &key,
                None,
                validity,
                self.mode,
            )?,
            Some(_) => self.create_gid(hrn, Some(&uuid), &key.public_key())?,
        };
        // Key first: a GID on disk without its key would make the authority look half there.
        key.save(&pkey_path)?;
        write_public(
            &gid_path,
            gid.to_chain_string(ChainForm::Separator)?.as_bytes(),
        )?;
        let dbinfo = format!("{{'hrn': '{hrn}'}}");
        write_public(&dbinfo_path, dbinfo.as_bytes())?;
        Ok(AuthorityInfo {
            hrn: hrn.clone(),
            gid,
            key,
            dbinfo,
        })
    }

    /// Loads authority `hrn` (2008 `get_auth_info`).
    pub fn authority(&self, hrn: &Hrn) -> Result<AuthorityInfo, TrustError> {
        if !self.exists(hrn) {
            return Err(TrustError::MissingAuthority {
                hrn: hrn.to_string(),
                dir: self.base.clone(),
            });
        }
        let (_, gid_path, pkey_path, dbinfo_path) = self.paths(hrn)?;
        let gid = Gid::load(&gid_path)?;
        let key = Keypair::load(&pkey_path)?;
        let dbinfo = read_text(&dbinfo_path)?;
        Ok(AuthorityInfo {
            hrn: hrn.clone(),
            gid,
            key,
            dbinfo,
        })
    }

    /// A GID for `hrn` and `key`, signed by `hrn`'s authority, with the authority's chain as
    /// parent. A random uuid is drawn when none is given.
    pub fn create_gid(
        &self,
        hrn: &Hrn,
        uuid: Option<&str>,
        key: &PublicKey,
    ) -> Result<Gid, TrustError> {
        let auth = self.authority(&self.authority_of(hrn)?)?;
        self.create_gid_by(&auth, hrn, uuid, key)
    }

    /// A GID for `hrn` of record type `kind` (which the GENI form writes into the URN), signed by
    /// `hrn`'s authority: a URN GID in URN mode ([`Hierarchy::with_urn_gids`]), else exactly
    /// [`Hierarchy::create_gid`].
    pub fn create_typed_gid(
        &self,
        hrn: &Hrn,
        kind: RecordType,
        uuid: Option<&str>,
        key: &PublicKey,
    ) -> Result<Gid, TrustError> {
        if !self.urn_gids {
            return self.create_gid(hrn, uuid, key);
        }
        let auth = self.authority(&self.authority_of(hrn)?)?;
        let uuid = match uuid {
            Some(u) => u.to_owned(),
            None => new_uuid()?,
        };
        self.urn_gid(hrn, kind, &uuid, key, Some(&auth), &auth.key)
    }

    fn urn_gid(
        &self,
        hrn: &Hrn,
        kind: RecordType,
        uuid: &str,
        key: &PublicKey,
        issuer: Option<&AuthorityInfo>,
        own_key: &Keypair,
    ) -> Result<Gid, TrustError> {
        if self.mode == CertMode::Compat2008 {
            return Err(TrustError::Encode {
                what: format!("GID {hrn}"),
                reason: "the 2008 form has no URN GIDs".into(),
            });
        }
        let urn = crate::geni::Urn::from_hrn(hrn, kind)?;
        let lifetime = if kind == RecordType::Sa {
            AUTHORITY_LIFETIME
        } else {
            GID_LIFETIME
        };
        crate::geni::UrnGidSpec {
            urn: &urn,
            uuid,
            email: None,
            key,
            issuer: issuer.map(|a| &a.gid),
            signer: issuer.map_or(own_key, |a| &a.key),
            validity: self.validity(lifetime),
        }
        .build()
    }

    /// [`Hierarchy::create_gid`] with `hrn`'s authority already loaded, for issuing many GIDs
    /// under one authority without reading its key and GID from disk for each (`plc import`).
    pub fn create_gid_by(
        &self,
        auth: &AuthorityInfo,
        hrn: &Hrn,
        uuid: Option<&str>,
        key: &PublicKey,
    ) -> Result<Gid, TrustError> {
        if self.authority_of(hrn)? != auth.hrn {
            return Err(TrustError::InvalidHrn {
                hrn: hrn.to_string(),
                reason: "the authority given is not the one directly above it",
            });
        }
        let uuid = match uuid {
            Some(u) => u.to_owned(),
            None => new_uuid()?,
        };
        let validity = self.validity(GID_LIFETIME);
        Gid::create(
            hrn,
            &uuid,
            key,
            auth.hrn.as_str(),
            &auth.key,
            Some(auth.gid.clone()),
            validity,
            self.mode,
        )
    }

    /// The authority credential of `hrn` (2008 `get_auth_cred`): caller = object = its GID,
    /// `authority` rights, delegate set, signed by the parent authority (self-signed at the top),
    /// with the parent's authority credential as parent.
    pub fn authority_credential(&self, hrn: &Hrn) -> Result<Credential, TrustError> {
        self.authority_credential_at(hrn, self.validity(AUTHORITY_LIFETIME))
    }

    fn authority_credential_at(
        &self,
        hrn: &Hrn,
        validity: Validity,
    ) -> Result<Credential, TrustError> {
        let auth = self.authority(hrn)?;
        let rights = RightList::new(vec![Right::Authority]);
        let fields = CredentialFields {
            caller: &auth.gid,
            object: &auth.gid,
            privileges: &rights,
            delegate: true,
        };
        let key = auth.gid.public_key().clone();
        match hrn.authority() {
            None => Credential::create(
                &fields,
                &key,
                hrn.as_str(),
                &auth.key,
                None,
                validity,
                self.mode,
            ),
            Some(parent_hrn) => {
                let parent = self.authority(&parent_hrn)?;
                let parent_cred = self.authority_credential_at(&parent_hrn, validity)?;
                Credential::create(
                    &fields,
                    &key,
                    parent_hrn.as_str(),
                    &parent.key,
                    Some(parent_cred),
                    validity,
                    self.mode,
                )
            }
        }
    }

    /// The authority ticket of `hrn` (2008 `get_auth_ticket`): caller = object = its GID,
    /// delegate set, empty attributes and rspec, signed by the parent authority, with the
    /// parent's *authority credential* as parent.
    pub fn authority_ticket(&self, hrn: &Hrn) -> Result<Ticket, TrustError> {
        self.authority_ticket_at(hrn, self.validity(AUTHORITY_LIFETIME))
    }

    fn authority_ticket_at(&self, hrn: &Hrn, validity: Validity) -> Result<Ticket, TrustError> {
        let auth = self.authority(hrn)?;
        let empty = Struct::new();
        let fields = TicketFields {
            caller: &auth.gid,
            object: &auth.gid,
            attributes: &empty,
            rspec: &empty,
            delegate: true,
            target: None,
        };
        let key = auth.gid.public_key().clone();
        match hrn.authority() {
            None => Ticket::create(
                &fields,
                &key,
                hrn.as_str(),
                &auth.key,
                None,
                validity,
                self.mode,
            ),
            Some(parent_hrn) => {
                let parent = self.authority(&parent_hrn)?;
                // 2008 put the parent's authority credential here; it is re-read as a ticket.
                let parent_cred = self.authority_credential_at(&parent_hrn, validity)?;
                let text = parent_cred.to_chain_string(ChainForm::Separator)?;
                let parent_ticket = Ticket::parse_parent(&text)?;
                Ticket::create(
                    &fields,
                    &key,
                    parent_hrn.as_str(),
                    &parent.key,
                    Some(parent_ticket),
                    validity,
                    self.mode,
                )
            }
        }
    }

    /// A credential for `caller` over `object` (2008 `get_credential`): subject = object hrn,
    /// issued and signed by the object's authority, X.509 key = the object's key, parent = that
    /// authority's credential, valid for `lifetime_secs` from now. In compat mode every object
    /// gets the 2008 five years and `lifetime_secs` is ignored.
    pub fn issue_credential(
        &self,
        caller: &Gid,
        object: &Gid,
        rights: &RightList,
        delegate: bool,
        lifetime_secs: i64,
    ) -> Result<Credential, TrustError> {
        let auth_hrn = self.authority_of(object.hrn())?;
        let auth = self.authority(&auth_hrn)?;
        let now = self.clock.now();
        let validity = self.validity(lifetime_secs);
        // The authority credentials above get the longer authority lifetime but the same start.
        let parent = self.authority_credential_at(
            &auth_hrn,
            Validity::from_now(now, AUTHORITY_LIFETIME.max(lifetime_secs)),
        )?;
        let fields = CredentialFields {
            caller,
            object,
            privileges: rights,
            delegate,
        };
        Credential::create(
            &fields,
            object.public_key(),
            auth_hrn.as_str(),
            &auth.key,
            Some(parent),
            validity,
            self.mode,
        )
    }

    /// A ticket for `caller` on `slice` (2008 `get_ticket`): subject = slice hrn, issued and
    /// signed by the slice's authority, X.509 key = the slice's key, parent = that authority's
    /// ticket. `target` names the one node it may be redeemed on (modern form only).
    #[allow(clippy::too_many_arguments)]
    pub fn issue_ticket(
        &self,
        caller: &Gid,
        slice: &Gid,
        attributes: &Struct,
        rspec: &Struct,
        target: Option<&Hrn>,
        lifetime_secs: i64,
    ) -> Result<Ticket, TrustError> {
        let auth_hrn = self.authority_of(slice.hrn())?;
        let auth = self.authority(&auth_hrn)?;
        let now = self.clock.now();
        let validity = self.validity(lifetime_secs);
        let parent = self.authority_ticket_at(
            &auth_hrn,
            Validity::from_now(now, AUTHORITY_LIFETIME.max(lifetime_secs)),
        )?;
        let what = TicketRequest {
            caller,
            slice,
            attributes,
            rspec,
            target,
        };
        what.sign(&auth, parent, validity, self.mode)
    }

    fn authority_of(&self, hrn: &Hrn) -> Result<Hrn, TrustError> {
        hrn.authority().ok_or_else(|| TrustError::InvalidHrn {
            hrn: hrn.to_string(),
            reason: "a top-level name has no authority above it to sign for it",
        })
    }

    fn validity(&self, lifetime_secs: i64) -> Validity {
        let now = self.clock.now();
        match self.mode {
            CertMode::Compat2008 => Validity::compat_2008(now),
            CertMode::Modern => Validity::from_now(now, lifetime_secs),
        }
    }
}

/// One authority ready to issue many credentials and tickets: its files read once, and its
/// authority credential and authority ticket (the parents of everything it issues) signed once.
///
/// [`Hierarchy::issue_credential`] and [`Hierarchy::issue_ticket`] re-read the authority and
/// re-sign its whole parent chain on every call (one RSA signature per level); a server issuing
/// thousands keeps an `Issuer` per authority instead and pays one signature per object. The
/// objects are the same as the hierarchy's, except that a child never outlives the cached parent:
/// its notAfter is capped at [`Issuer::expires`], so make a new `Issuer` well before then.
#[derive(Debug, Clone)]
pub struct Issuer {
    info: AuthorityInfo,
    credential: Credential,
    ticket: Ticket,
    mode: CertMode,
    clock: Arc<dyn Clock>,
}

/// What a slice ticket says, before its authority signs it.
struct TicketRequest<'a> {
    caller: &'a Gid,
    slice: &'a Gid,
    attributes: &'a Struct,
    rspec: &'a Struct,
    target: Option<&'a Hrn>,
}

impl TicketRequest<'_> {
    /// Signed by the slice's authority `signer` under its authority ticket `parent`, with the
    /// slice's key as the X.509 key: the one construction behind [`Hierarchy::issue_ticket`] and
    /// [`Issuer::issue_ticket`].
    fn sign(
        &self,
        signer: &AuthorityInfo,
        parent: Ticket,
        validity: Validity,
        mode: CertMode,
    ) -> Result<Ticket, TrustError> {
        let (attributes, rspec) = match mode {
            CertMode::Compat2008 => (py2_ordered(self.attributes), py2_ordered(self.rspec)),
            CertMode::Modern => (self.attributes.clone(), self.rspec.clone()),
        };
        let fields = TicketFields {
            caller: self.caller,
            object: self.slice,
            attributes: &attributes,
            rspec: &rspec,
            delegate: false,
            target: self.target,
        };
        Ticket::create(
            &fields,
            self.slice.public_key(),
            signer.hrn.as_str(),
            &signer.key,
            Some(parent),
            validity,
            mode,
        )
    }
}

impl Hierarchy {
    /// An [`Issuer`] for authority `hrn`, whose authority credential and ticket are valid for the
    /// authority lifetime (five years) from now.
    pub fn issuer(&self, hrn: &Hrn) -> Result<Issuer, TrustError> {
        let validity = self.validity(AUTHORITY_LIFETIME);
        Ok(Issuer {
            info: self.authority(hrn)?,
            credential: self.authority_credential_at(hrn, validity)?,
            ticket: self.authority_ticket_at(hrn, validity)?,
            mode: self.mode,
            clock: Arc::clone(&self.clock),
        })
    }
}

impl Issuer {
    /// The authority this issues for.
    pub fn hrn(&self) -> &Hrn {
        &self.info.hrn
    }

    /// The authority's GID, with its parents.
    pub fn gid(&self) -> &Gid {
        &self.info.gid
    }

    /// When the cached parents expire: nothing issued lives longer.
    pub fn expires(&self) -> i64 {
        self.credential
            .certificate()
            .validity()
            .not_after
            .min(self.ticket.certificate().validity().not_after)
    }

    /// As [`Hierarchy::issue_credential`]; `object` must be directly under this authority.
    pub fn issue_credential(
        &self,
        caller: &Gid,
        object: &Gid,
        rights: &RightList,
        delegate: bool,
        lifetime_secs: i64,
    ) -> Result<Credential, TrustError> {
        self.check_under(object)?;
        let fields = CredentialFields {
            caller,
            object,
            privileges: rights,
            delegate,
        };
        Credential::create(
            &fields,
            object.public_key(),
            self.info.hrn.as_str(),
            &self.info.key,
            Some(self.credential.clone()),
            self.validity(lifetime_secs),
            self.mode,
        )
    }

    /// As [`Hierarchy::issue_ticket`]; `slice` must be directly under this authority.
    pub fn issue_ticket(
        &self,
        caller: &Gid,
        slice: &Gid,
        attributes: &Struct,
        rspec: &Struct,
        target: Option<&Hrn>,
        lifetime_secs: i64,
    ) -> Result<Ticket, TrustError> {
        self.check_under(slice)?;
        let what = TicketRequest {
            caller,
            slice,
            attributes,
            rspec,
            target,
        };
        what.sign(
            &self.info,
            self.ticket.clone(),
            self.validity(lifetime_secs),
            self.mode,
        )
    }

    fn check_under(&self, object: &Gid) -> Result<(), TrustError> {
        if object.hrn().authority().as_ref() == Some(&self.info.hrn) {
            Ok(())
        } else {
            Err(TrustError::InvalidHrn {
                hrn: object.hrn().to_string(),
                reason: "not directly under the issuing authority",
            })
        }
    }

    fn validity(&self, lifetime_secs: i64) -> Validity {
        let now = self.clock.now();
        let v = match self.mode {
            CertMode::Compat2008 => Validity::compat_2008(now),
            CertMode::Modern => Validity::from_now(now, lifetime_secs),
        };
        Validity {
            not_after: v.not_after.min(self.expires()),
            ..v
        }
    }
}

/// Delegates `parent` (held by whoever has the key of its certificate, `holder`) to
/// `new_caller` with `rights`, over the same object. The verifier accepts the result only if
/// `parent` allows delegation, covers `rights` and outlives it.
pub fn delegate_credential(
    parent: &Credential,
    holder: &Keypair,
    new_caller: &Gid,
    rights: &RightList,
    delegate: bool,
    validity: Validity,
    mode: CertMode,
) -> Result<Credential, TrustError> {
    let object = parent.object().ok_or_else(|| TrustError::Encode {
        what: format!("credential {}", parent.subject()),
        reason: "the parent credential has no object".into(),
    })?;
    credential_under(
        parent, holder, new_caller, object, rights, delegate, validity, mode,
    )
}

/// A credential for `caller` over `object`, issued by whoever holds `parent` (its certificate's
/// key is `holder`): the child's issuer is the parent's subject and the parent rides along as
/// its chain. The verifier accepts it only if `parent` allows delegation, covers `rights`,
/// outlives it, and its object is `object` or an authority over it (a node holding a credential
/// over itself issues credentials over its slivers this way). The child's own certificate key is
/// the caller's, so that only the caller can delegate further.
#[allow(clippy::too_many_arguments)]
pub fn credential_under(
    parent: &Credential,
    holder: &Keypair,
    caller: &Gid,
    object: &Gid,
    rights: &RightList,
    delegate: bool,
    validity: Validity,
    mode: CertMode,
) -> Result<Credential, TrustError> {
    let fields = CredentialFields {
        caller,
        object,
        privileges: rights,
        delegate,
    };
    Credential::create(
        &fields,
        caller.public_key(),
        parent.subject(),
        holder,
        Some(parent.clone()),
        validity,
        mode,
    )
}

/// A ticket for `caller` over `object`, issued by whoever holds `parent` (its certificate's key
/// is `holder`), with `parent` as its chain: how a ticket with the delegate bit is passed on. The
/// verifier accepts the result only if every parent is an authority's own ticket or credential
/// (caller = object, delegate bit, the `authority` right on a credential) whose object is `object`
/// or an authority over it, so nothing but the authority hierarchy can mint a ticket this way.
#[allow(clippy::too_many_arguments)]
pub fn ticket_under(
    parent: &Ticket,
    holder: &Keypair,
    caller: &Gid,
    object: &Gid,
    attributes: &Struct,
    rspec: &Struct,
    target: Option<&Hrn>,
    validity: Validity,
    mode: CertMode,
) -> Result<Ticket, TrustError> {
    let fields = TicketFields {
        caller,
        object,
        attributes,
        rspec,
        delegate: false,
        target,
    };
    Ticket::create(
        &fields,
        object.public_key(),
        parent.subject(),
        holder,
        Some(parent.clone()),
        validity,
        mode,
    )
}

/// A GID for `hrn` with `uuid` (a decimal string, or [`new_uuid`]), signed by `issuer` (whose
/// key is `issuer_key`), with `issuer`'s chain as parent: how a node names its slivers. The
/// verifier accepts it only if `issuer`'s hrn is an authority of `hrn` and `issuer` chains to a
/// trusted root.
pub fn gid_under(
    issuer: &Gid,
    issuer_key: &Keypair,
    hrn: &Hrn,
    uuid: &str,
    key: &PublicKey,
    validity: Validity,
    mode: CertMode,
) -> Result<Gid, TrustError> {
    Gid::create(
        hrn,
        uuid,
        key,
        issuer.hrn().as_str(),
        issuer_key,
        Some(issuer.clone()),
        validity,
        mode,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_path_stays_under_the_base() {
        let dir = tempfile::tempdir().unwrap();
        let h = Hierarchy::new(dir.path().join("authorities"));
        // The grammar's oddest label is still one ordinary directory name.
        let odd: Hrn = "planetlab.us.\\.\\.".parse().unwrap();
        let (d, gid, _, _) = h.paths(&odd).unwrap();
        assert_eq!(d, dir.path().join("authorities/planetlab/us/\\.\\."));
        assert!(gid.starts_with(h.base()));
    }

    #[test]
    fn create_gid_by_signs_with_the_loaded_authority_only() {
        let dir = tempfile::tempdir().unwrap();
        let h = Hierarchy::new(dir.path());
        let pl: Hrn = "planetlab.us.pl".parse().unwrap();
        let auth = h.create_authority(&pl, true).unwrap();
        let key = Keypair::generate(1024).unwrap().public_key();
        let gid = h
            .create_gid_by(&auth, &"planetlab.us.pl.alice".parse().unwrap(), None, &key)
            .unwrap();
        assert_eq!(gid.public_key(), &key);
        assert_eq!(gid.certificate().issuer(), "planetlab.us.pl");
        assert!(gid.certificate().is_signed_by(auth.gid.public_key()));
        assert_eq!(gid.parent().map(Gid::hrn), Some(&pl));
        // Not directly under it: refused, nothing signed.
        for other in [
            "planetlab.us.other.bob",
            "planetlab.us.pl.x.y",
            "planetlab.us",
        ] {
            let err = h
                .create_gid_by(&auth, &other.parse().unwrap(), None, &key)
                .unwrap_err();
            assert_eq!(err.name(), "invalid_hrn", "{other}");
        }
    }
}
