//! Adding a PLC object together with its registry record: the one place that knows, for a site,
//! a person, a slice and a node, in which order the authority tree, the PLC and the record store
//! are changed, and how each step is undone when a later one fails.
//!
//! The server's `register` and the operator's `plc site|person|slice|node add` both come here,
//! so what a GENI caller makes and what an operator makes are the same, and "a failure part-way
//! leaves the tree, the store and the PLC as they were" (DESIGN §7) is written once. Parsing
//! arguments and turning a [`ProvisionError`] into a fault or a message stay with the callers.
//!
//! Every add follows one order: check that the records are new, make what is local and cheap to
//! undo first (the authority's files), then the PLC object and its links, and store the records
//! last, in one transaction, so that a record never names a PLC object or an authority that is
//! not there. An undo that fails is logged with what it left behind; the caller sees the error
//! that started the undo.

use geni_rpc::RpcError;
use geni_trust::{ChainForm, Hrn, RecordType, hrn_to_pl_login_base};
use geni_xmlrpc::Struct;

use super::Registry;
use super::backend::{Lookup, PlcBackend, PlcError};
use super::db::StoreError;
use super::store::StoredRecord;

/// Why an add did not happen (and, after its undo, changed nothing).
#[derive(Debug, thiserror::Error)]
pub(crate) enum ProvisionError {
    /// The authority tree refused: an unknown parent, or its files could not be written. The
    /// error is already the fault a caller may see.
    #[error(transparent)]
    Authority(RpcError),
    /// A record of that name and type is already in the store.
    #[error("{kind} record {hrn} already exists")]
    Exists { hrn: Hrn, kind: RecordType },
    #[error(transparent)]
    Plc(#[from] PlcError),
    /// The PLC site with the authority's login_base belongs to another authority.
    #[error("PLC site {login_base} already belongs to authority {owner}")]
    SiteClaimed { login_base: String, owner: Hrn },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Where a new authority's PLC site comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SiteSource {
    /// The site of the authority's other record (its sa for an ma, or the other way round),
    /// else a PLC site with its login_base that no authority has claimed, else a new one: what
    /// 2008's `register` did, so that PLC's existing sites can be registered.
    Adopt,
    /// Always a new PLC site; one with the same login_base is PLC's refusal (`plc site add`).
    New,
}

/// A site added by [`add_site`].
#[derive(Debug)]
pub(crate) struct SiteAdded {
    /// The authority's own GID chain, which its records store.
    pub(crate) gid: String,
    pub(crate) site_id: i64,
}

/// A person for [`add_person`].
#[derive(Debug)]
pub(crate) struct NewPerson {
    /// The user record's name.
    pub(crate) hrn: Hrn,
    /// The user's GID chain, already made or verified by the caller.
    pub(crate) gid: String,
    /// PLCAPI `AddPerson` fields.
    pub(crate) fields: Struct,
    /// Enable the account once made. PLCAPI's `AddPerson` makes every account disabled and
    /// ignores an `enabled` field; enabling is an `UpdatePerson` of our admin session.
    pub(crate) enabled: bool,
    /// The site the person joins, if any.
    pub(crate) site_id: Option<i64>,
    pub(crate) roles: Vec<String>,
    /// OpenSSH public keys for the person's slivers.
    pub(crate) ssh_keys: Vec<String>,
}

/// A slice for [`add_slice`].
#[derive(Debug)]
pub(crate) struct NewSlice {
    pub(crate) hrn: Hrn,
    pub(crate) gid: String,
    /// PLCAPI `AddSlice` fields (its `name` is `<login_base>_<leaf>`).
    pub(crate) fields: Struct,
    /// PLC person ids of its researchers.
    pub(crate) person_ids: Vec<i64>,
}

/// A node for [`add_node`].
#[derive(Debug)]
pub(crate) struct NewNode {
    pub(crate) hrn: Hrn,
    pub(crate) gid: String,
    /// The login_base of the node's site.
    pub(crate) login_base: String,
    /// PLCAPI `AddNode` fields.
    pub(crate) fields: Struct,
}

/// Adds authority `hrn` (its files, unless this registry holds it already), its PLC site and its
/// records of `kinds` (sa, ma or both), all pointing at the site. `fields` are the `AddSite`
/// fields besides `login_base`, `enabled` and `is_public`, which are set here.
pub(crate) async fn add_site<B: PlcBackend>(
    registry: &Registry<B>,
    hrn: &Hrn,
    kinds: &[RecordType],
    fields: Struct,
    source: SiteSource,
) -> Result<SiteAdded, ProvisionError> {
    for &kind in kinds {
        require_new(registry, hrn, kind).await?;
    }
    let login_base = hrn_to_pl_login_base(hrn);
    let existing = match source {
        SiteSource::Adopt => adoptable_site(registry, hrn, kinds, &login_base).await?,
        SiteSource::New => None,
    };
    let mut undo = Undo::new(registry);
    let outcome = async {
        if !registry.authorities.holds(hrn) {
            registry
                .authorities
                .create(hrn)
                .await
                .map_err(ProvisionError::Authority)?;
            undo.push(Step::Authority(hrn.clone()));
        }
        let gid = registry
            .authorities
            .gid(hrn)
            .and_then(|g| Ok(g.to_chain_string(ChainForm::Separator)?))
            .map_err(ProvisionError::Authority)?;
        let site_id = match existing {
            Some(id) => id,
            None => {
                let fields = fields
                    .with("login_base", login_base.as_str())
                    .with("enabled", true)
                    .with("is_public", true);
                let id = registry.plc.add_site(fields).await?;
                undo.push(Step::Site(id));
                id
            }
        };
        let records: Vec<StoredRecord> = kinds
            .iter()
            .map(|&kind| record(hrn, kind, &gid, site_id))
            .collect();
        registry.store.insert_all(&records).await?;
        Ok(SiteAdded { gid, site_id })
    }
    .await;
    undo.on_error(outcome).await
}

/// Adds a PLC person, joins it to its site, gives it its roles and SSH keys, and stores its user
/// record.
pub(crate) async fn add_person<B: PlcBackend>(
    registry: &Registry<B>,
    person: NewPerson,
) -> Result<i64, ProvisionError> {
    require_new(registry, &person.hrn, RecordType::User).await?;
    let mut undo = Undo::new(registry);
    let outcome = async {
        let person_id = registry.plc.add_person(person.fields).await?;
        undo.push(Step::Person(person_id));
        if person.enabled {
            registry
                .plc
                .update_person(person_id, Struct::new().with("enabled", true))
                .await?;
        }
        if let Some(site_id) = person.site_id {
            registry.plc.add_person_to_site(person_id, site_id).await?;
        }
        for role in &person.roles {
            registry.plc.add_role_to_person(role, person_id).await?;
        }
        for key in &person.ssh_keys {
            registry.plc.add_person_key(person_id, "ssh", key).await?;
        }
        let user = record(&person.hrn, RecordType::User, &person.gid, person_id);
        registry.store.insert(&user).await?;
        Ok(person_id)
    }
    .await;
    undo.on_error(outcome).await
}

/// Adds a PLC slice with its researchers and stores its slice record.
pub(crate) async fn add_slice<B: PlcBackend>(
    registry: &Registry<B>,
    slice: NewSlice,
) -> Result<i64, ProvisionError> {
    require_new(registry, &slice.hrn, RecordType::Slice).await?;
    let mut undo = Undo::new(registry);
    let outcome = async {
        let slice_id = registry.plc.add_slice(slice.fields).await?;
        undo.push(Step::Slice(slice_id));
        for &person_id in &slice.person_ids {
            registry
                .plc
                .add_person_to_slice(person_id, slice_id)
                .await?;
        }
        let stored = record(&slice.hrn, RecordType::Slice, &slice.gid, slice_id);
        registry.store.insert(&stored).await?;
        Ok(slice_id)
    }
    .await;
    undo.on_error(outcome).await
}

/// Adds a PLC node at its site and stores its node record.
pub(crate) async fn add_node<B: PlcBackend>(
    registry: &Registry<B>,
    node: NewNode,
) -> Result<i64, ProvisionError> {
    require_new(registry, &node.hrn, RecordType::Node).await?;
    let mut undo = Undo::new(registry);
    let outcome = async {
        let node_id = registry.plc.add_node(&node.login_base, node.fields).await?;
        undo.push(Step::Node(node_id));
        let stored = record(&node.hrn, RecordType::Node, &node.gid, node_id);
        registry.store.insert(&stored).await?;
        Ok(node_id)
    }
    .await;
    undo.on_error(outcome).await
}

/// Refuses a record that is already stored, before anything is made for it.
async fn require_new<B: PlcBackend>(
    registry: &Registry<B>,
    hrn: &Hrn,
    kind: RecordType,
) -> Result<(), ProvisionError> {
    if registry.store.find(hrn, kind).await?.is_some() {
        return Err(ProvisionError::Exists {
            hrn: hrn.clone(),
            kind,
        });
    }
    Ok(())
}

/// The site [`SiteSource::Adopt`] takes, if any: the authority's other record's, else an
/// unclaimed PLC site with `login_base`.
async fn adoptable_site<B: PlcBackend>(
    registry: &Registry<B>,
    hrn: &Hrn,
    kinds: &[RecordType],
    login_base: &str,
) -> Result<Option<i64>, ProvisionError> {
    for kind in [RecordType::Sa, RecordType::Ma] {
        if !kinds.contains(&kind)
            && let Some(sibling) = registry.store.find(hrn, kind).await?
        {
            return Ok(Some(sibling.pointer));
        }
    }
    let Some(site) = registry
        .plc
        .get_sites(Lookup::Names(vec![login_base.to_owned()]))
        .await?
        .pop()
    else {
        return Ok(None);
    };
    for kind in [RecordType::Sa, RecordType::Ma] {
        if let Some(owner) = registry
            .store
            .by_pointer(kind, site.site_id)
            .await?
            .into_iter()
            .find(|r| &r.hrn != hrn)
        {
            return Err(ProvisionError::SiteClaimed {
                login_base: login_base.to_owned(),
                owner: owner.hrn,
            });
        }
    }
    Ok(Some(site.site_id))
}

fn record(hrn: &Hrn, kind: RecordType, gid: &str, pointer: i64) -> StoredRecord {
    StoredRecord {
        hrn: hrn.clone(),
        kind,
        gid: gid.to_owned(),
        pointer,
    }
}

/// Something an add made, which its undo removes.
#[derive(Debug)]
enum Step {
    Authority(Hrn),
    Node(i64),
    Person(i64),
    Site(i64),
    Slice(i64),
}

/// What an add has made so far, undone newest first when the add fails.
#[derive(Debug)]
struct Undo<'r, B> {
    registry: &'r Registry<B>,
    done: Vec<Step>,
}

impl<'r, B: PlcBackend> Undo<'r, B> {
    fn new(registry: &'r Registry<B>) -> Self {
        Self {
            registry,
            done: Vec::new(),
        }
    }

    fn push(&mut self, step: Step) {
        self.done.push(step);
    }

    /// Passes `outcome` through, undoing every step first when it is an error.
    async fn on_error<T>(self, outcome: Result<T, ProvisionError>) -> Result<T, ProvisionError> {
        if let Err(cause) = &outcome {
            for step in self.done.into_iter().rev() {
                undo(self.registry, step, cause).await;
            }
        }
        outcome
    }
}

/// Removes what `step` made; a failure is logged with what is left behind, for an operator to
/// remove by hand.
async fn undo<B: PlcBackend>(registry: &Registry<B>, step: Step, cause: &ProvisionError) {
    let plc = &registry.plc;
    let result = match &step {
        Step::Authority(hrn) => registry.authorities.discard(hrn).map_err(|e| e.to_string()),
        Step::Node(id) => plc.delete_node(*id).await.map_err(|e| e.to_string()),
        Step::Person(id) => plc.delete_person(*id).await.map_err(|e| e.to_string()),
        Step::Site(id) => plc.delete_site(*id).await.map_err(|e| e.to_string()),
        Step::Slice(id) => plc.delete_slice(*id).await.map_err(|e| e.to_string()),
    };
    if let Err(error) = result {
        tracing::error!(
            left = ?step,
            error,
            cause = %cause,
            "Could not undo a step of a failed add; remove what it left by hand"
        );
    }
}

#[cfg(test)]
mod tests;
