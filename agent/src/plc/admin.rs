//! The operator's side of `geni-agent plc`: `init` (authorities, database, root GID exported for
//! nodes), the admin subcommands that add PLC objects together with their registry records
//! (`site add`, `person add`, `slice add`, `slice attr set`, `node add`, `initscript add`), and
//! `nuke`.
//!
//! Each `add` parses its flags, reads the files they name, and hands the rest to [`provision`],
//! as the server's `register` does, so what it makes is exactly what a GENI caller would have
//! made, and a failure part-way undoes itself there. They work while the server runs (the
//! database serialises writers).

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use geni_trust::{ChainForm, Hrn, Keypair, PublicKey, RecordType};
use geni_xmlrpc::Struct;

use super::backend::{Lookup, PlcBackend};
use super::config::PlcConfig;
use super::db::{self, Db};
use super::embedded::Embedded;
use super::open::{RegistryTask, hierarchy};
use super::provision::{self, NewNode, NewPerson, NewSlice, SiteSource};
use super::store::{Store, StoredRecord};
use super::{Registry, plc_fault};
use crate::ExitCode;
use crate::config::PlcBackendKind;

// === init ===

/// `plc init`: creates the interface authority (and the root above it) if missing, the
/// database and its schema, the interface's sa and ma records (pointer −1, as 2008's import
/// made them), and exports the root GID into the trusted roots directory. Running it again
/// changes nothing that is already there.
pub(super) async fn init(config: &PlcConfig) -> anyhow::Result<ExitCode> {
    let authority = &config.authority;
    let Some(root) = authority.labels().next().map(Hrn::parse).transpose()? else {
        bail!("plc.authority is empty");
    };
    if authority.authority().is_none() {
        bail!(
            "plc.authority {authority} is a root; the registry's authority sits below one \
             (e.g. planetlab.us) so that the root can sign for it"
        );
    }
    let h = hierarchy(config);
    if h.exists(authority) {
        println!("authority {authority} already exists");
    } else {
        h.create_authority(authority, true)?;
        println!("created authority {authority} (and any missing parents up to {root})");
    }
    let root_gid = h.authority(&root)?.gid;
    let gid = h
        .authority(authority)?
        .gid
        .to_chain_string(ChainForm::Separator)?;

    let dir = &config.trusted_roots;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let exported = dir.join(format!("{root}.gid"));
    let text = root_gid.to_chain_string(ChainForm::Separator)?;
    if std::fs::read_to_string(&exported).ok().as_deref() != Some(text.as_str()) {
        std::fs::write(&exported, &text)
            .with_context(|| format!("writing {}", exported.display()))?;
    }
    println!(
        "root GID exported to {}; copy it into each node's trusted roots \
         (/etc/geni-agent/trusted_roots/)",
        exported.display()
    );

    let db = Db::open(&config.database)
        .await
        .with_context(|| format!("opening {}", db::redact(&config.database)))?;
    let store = Store::new(db.clone());
    for kind in [RecordType::Sa, RecordType::Ma] {
        if store.find(authority, kind).await?.is_none() {
            store
                .insert(&StoredRecord {
                    hrn: authority.clone(),
                    kind,
                    gid: gid.clone(),
                    pointer: -1,
                })
                .await?;
            println!("registered {kind} {authority}");
        }
    }
    println!("database {} ready", db::redact(&config.database));
    db.close().await;
    Ok(ExitCode::Success)
}

// === nuke ===

/// `plc nuke`.
#[derive(Debug, Args)]
pub(super) struct NukeArgs {
    /// Do not ask for confirmation.
    #[arg(long)]
    yes: bool,
    /// Also delete the embedded PLC's sites, persons, slices, nodes and initscripts.
    #[arg(long)]
    plc: bool,
}

/// Deletes every registry record (2008 `nuke.py` dropped every `geni$` table), and with `--plc`
/// the embedded PLC's data; the authorities on disk stay, so `plc import` or the admin commands
/// can fill the registry again with the same keys. Asks on stdin unless `--yes`.
pub(super) async fn nuke(config: &PlcConfig, args: &NukeArgs) -> anyhow::Result<ExitCode> {
    if args.plc && config.section.backend != PlcBackendKind::Embedded {
        bail!("--plc deletes the embedded PLC's data; with a PLCAPI backend PLC's data is PLC's");
    }
    let db = Db::open(&config.database)
        .await
        .with_context(|| format!("opening {}", db::redact(&config.database)))?;
    let store = Store::new(db.clone());
    let count = store.count().await?;
    if !args.yes {
        let what = if args.plc {
            "and all embedded PLC data "
        } else {
            ""
        };
        eprint!(
            "Delete all {count} registry records {what}in {}? Type yes to confirm: ",
            db::redact(&config.database)
        );
        std::io::stderr().flush()?;
        let mut answer = String::new();
        std::io::stdin().lock().read_line(&mut answer)?;
        if answer.trim() != "yes" {
            db.close().await;
            bail!("not confirmed; nothing was deleted (pass --yes to skip the question)");
        }
    }
    let deleted = store.clear().await?;
    if args.plc {
        Embedded::new(db.clone()).clear().await.map_err(plc_fault)?;
    }
    db.close().await;
    println!(
        "deleted {deleted} registry records{}",
        if args.plc {
            " and the embedded PLC data"
        } else {
            ""
        }
    );
    Ok(ExitCode::Success)
}

// === site ===

#[derive(Debug, Subcommand)]
pub(super) enum SiteCommand {
    /// Add a site: a PLC site, the authority <interface>.<login_base>, its sa and ma records.
    Add(SiteAddArgs),
    /// Enable a site again: its persons and its authority get credentials and tickets.
    Enable {
        /// The site's login_base.
        login_base: String,
    },
    /// Disable a site: none of its persons, nor its authority, gets a credential, ticket or
    /// record until it is enabled again.
    Disable {
        /// The site's login_base.
        login_base: String,
    },
}

#[derive(Debug, Args)]
pub(super) struct SiteAddArgs {
    /// The site's login_base: lowercase letters and digits, also its authority's last label.
    login_base: String,
    /// The site's name [default: the authority hrn].
    #[arg(long)]
    name: Option<String>,
    /// Its abbreviated name [default: the login_base].
    #[arg(long)]
    abbreviated_name: Option<String>,
    /// Its web page.
    #[arg(long)]
    url: Option<String>,
    /// How many slices it may have.
    #[arg(long, default_value_t = 100)]
    max_slices: i64,
}

impl RegistryTask for SiteCommand {
    async fn run<B: PlcBackend + 'static>(
        self,
        registry: Registry<B>,
        config: &PlcConfig,
    ) -> anyhow::Result<ExitCode> {
        let a = match self {
            Self::Add(a) => a,
            Self::Enable { login_base } => {
                return site_enabled(&registry, config, &login_base, true).await;
            }
            Self::Disable { login_base } => {
                return site_enabled(&registry, config, &login_base, false).await;
            }
        };
        let hrn = child(&config.authority, &a.login_base)?;
        let mut fields = Struct::new()
            .with("name", a.name.unwrap_or_else(|| hrn.to_string()))
            .with(
                "abbreviated_name",
                a.abbreviated_name.unwrap_or_else(|| a.login_base.clone()),
            )
            .with("max_slices", a.max_slices);
        if let Some(url) = a.url {
            fields.insert("url", url);
        }
        let added = provision::add_site(
            &registry,
            &hrn,
            &[RecordType::Sa, RecordType::Ma],
            fields,
            SiteSource::New,
        )
        .await?;
        let site_id = added.site_id;
        println!(
            "added site {} (site_id {site_id}) as authority {hrn}",
            a.login_base
        );
        Ok(ExitCode::Success)
    }
}

// === person ===

#[derive(Debug, Subcommand)]
pub(super) enum PersonCommand {
    /// Add a person at a site: a PLC person with SSH keys and roles, and a user record whose GID
    /// holds --pubkey (or the first ssh-rsa --key).
    Add(PersonAddArgs),
    /// Enable a person again: they get credentials, tickets and records.
    Enable {
        /// The person's e-mail address.
        email: String,
    },
    /// Disable a person: they get no credential, ticket or record until enabled again.
    Disable {
        /// The person's e-mail address.
        email: String,
    },
}

#[derive(Debug, Args)]
pub(super) struct PersonAddArgs {
    /// The person's e-mail address.
    email: String,
    /// The login_base of the person's site.
    #[arg(long)]
    site: String,
    /// The user record's hrn [default: <site authority>.<e-mail local part, cleaned>].
    #[arg(long)]
    hrn: Option<Hrn>,
    #[arg(long, default_value = "geni")]
    first_name: String,
    /// [default: the hrn]
    #[arg(long)]
    last_name: Option<String>,
    /// An OpenSSH public key file (one key per line) for the person's slivers; repeatable.
    #[arg(long, value_name = "FILE")]
    key: Vec<PathBuf>,
    /// The public (or private) key PEM the person's GID holds: the key they present over TLS.
    #[arg(long, value_name = "FILE")]
    pubkey: Option<PathBuf>,
    /// A PLC role: admin, pi, tech or user; repeatable [default: user].
    #[arg(long)]
    role: Vec<String>,
}

impl RegistryTask for PersonCommand {
    async fn run<B: PlcBackend + 'static>(
        self,
        registry: Registry<B>,
        config: &PlcConfig,
    ) -> anyhow::Result<ExitCode> {
        let a = match self {
            Self::Add(a) => a,
            Self::Enable { email } => return person_enabled(&registry, &email, true).await,
            Self::Disable { email } => return person_enabled(&registry, &email, false).await,
        };
        let (site_hrn, site_id) = site(&registry, config, &a.site).await?;
        let hrn = match a.hrn {
            Some(h) => h,
            None => child(&site_hrn, &email_leaf(&a.email))?,
        };
        let mut ssh_keys = Vec::new();
        for path in &a.key {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading --key {}", path.display()))?;
            ssh_keys.extend(
                text.lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty() && !l.starts_with('#'))
                    .map(str::to_owned),
            );
        }
        let gid_key = match &a.pubkey {
            Some(p) => PublicKey::load(p)?,
            None => ssh_keys
                .iter()
                .find_map(|k| PublicKey::from_openssh(k).ok())
                .context("give --pubkey, or an ssh-rsa --key for the person's GID")?,
        };
        let roles = if a.role.is_empty() {
            vec!["user".to_owned()]
        } else {
            a.role
        };
        let fields = Struct::new()
            .with("email", a.email.as_str())
            .with("first_name", a.first_name)
            .with("last_name", a.last_name.unwrap_or_else(|| hrn.to_string()));
        let gid = registry.authorities.create_gid(&hrn, None, &gid_key)?;
        let person = NewPerson {
            hrn: hrn.clone(),
            gid: gid.to_chain_string(ChainForm::Separator)?,
            fields,
            enabled: true,
            site_id: Some(site_id),
            roles: roles.clone(),
            ssh_keys,
        };
        let person_id = provision::add_person(&registry, person).await?;
        println!(
            "added person {} (person_id {person_id}) as user {hrn}, roles {}",
            a.email,
            roles.join(",")
        );
        Ok(ExitCode::Success)
    }
}

// === slice ===

#[derive(Debug, Subcommand)]
pub(super) enum SliceCommand {
    /// Add a slice: a PLC slice named <login_base>_<name> and its slice record.
    Add(SliceAddArgs),
    /// Slice attributes (what a ticket's rspec carries).
    #[command(subcommand)]
    Attr(AttrCommand),
}

#[derive(Debug, Args)]
pub(super) struct SliceAddArgs {
    /// The PLC slice name, <login_base>_<name>; its record is <site authority>.<name>.
    name: String,
    /// A researcher's e-mail address; repeatable.
    #[arg(long, value_name = "EMAIL")]
    person: Vec<String>,
    #[arg(long, default_value = "delegated")]
    instantiation: String,
    /// Days until the slice expires.
    #[arg(long, default_value_t = 14)]
    expires_days: i64,
    /// The public key the slice's GID holds [default: a fresh key, then discarded, as 2008's
    /// import did].
    #[arg(long, value_name = "FILE")]
    pubkey: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub(super) enum AttrCommand {
    /// Set (add or replace) a slice attribute, slice-wide or for one node.
    Set(AttrSetArgs),
}

#[derive(Debug, Args)]
pub(super) struct AttrSetArgs {
    /// The PLC slice name.
    slice: String,
    /// The attribute, e.g. cpu_share, disk_max, vref, initscript.
    name: String,
    value: String,
    /// Only on this node (hostname).
    #[arg(long, value_name = "HOSTNAME")]
    node: Option<String>,
}

impl RegistryTask for SliceCommand {
    async fn run<B: PlcBackend + 'static>(
        self,
        registry: Registry<B>,
        config: &PlcConfig,
    ) -> anyhow::Result<ExitCode> {
        match self {
            Self::Add(a) => slice_add(registry, config, a).await,
            Self::Attr(AttrCommand::Set(a)) => attr_set(registry, a).await,
        }
    }
}

async fn slice_add<B: PlcBackend>(
    registry: Registry<B>,
    config: &PlcConfig,
    a: SliceAddArgs,
) -> anyhow::Result<ExitCode> {
    let Some((login_base, leaf)) = a.name.split_once('_') else {
        bail!("slice name {} must be <login_base>_<name>", a.name);
    };
    let (site_hrn, _) = site(&registry, config, login_base).await?;
    let hrn = child(&site_hrn, leaf)?;
    let mut people = Vec::new();
    for email in &a.person {
        let p = registry
            .plc
            .get_persons(Lookup::Names(vec![email.clone()]))
            .await
            .map_err(plc_fault)?
            .pop()
            .with_context(|| format!("no PLC person {email}; add them with `plc person add`"))?;
        people.push(p.person_id);
    }
    let key = match &a.pubkey {
        Some(p) => PublicKey::load(p)?,
        None => Keypair::generate(Keypair::DEFAULT_BITS)?.public_key(),
    };
    let expires = geni_trust::Clock::now(&geni_trust::SystemClock)
        .saturating_add(a.expires_days.saturating_mul(86_400));
    let fields = Struct::new()
        .with("name", a.name.as_str())
        .with("instantiation", a.instantiation.as_str())
        .with("max_nodes", 10)
        .with("expires", expires);
    let gid = registry.authorities.create_gid(&hrn, None, &key)?;
    let slice = NewSlice {
        hrn: hrn.clone(),
        gid: gid.to_chain_string(ChainForm::Separator)?,
        fields,
        person_ids: people,
    };
    let slice_id = provision::add_slice(&registry, slice).await?;
    println!("added slice {} (slice_id {slice_id}) as {hrn}", a.name);
    Ok(ExitCode::Success)
}

async fn attr_set<B: PlcBackend>(
    registry: Registry<B>,
    a: AttrSetArgs,
) -> anyhow::Result<ExitCode> {
    let slice = registry
        .plc
        .get_slices(Lookup::Names(vec![a.slice.clone()]))
        .await
        .map_err(plc_fault)?
        .pop()
        .with_context(|| format!("no PLC slice {}", a.slice))?;
    let node_id = match &a.node {
        Some(host) => Some(
            registry
                .plc
                .get_nodes(Lookup::Names(vec![host.clone()]))
                .await
                .map_err(plc_fault)?
                .pop()
                .with_context(|| format!("no PLC node {host}"))?
                .node_id,
        ),
        None => None,
    };
    let id = registry
        .plc
        .set_slice_attribute(slice.slice_id, &a.name, &a.value, node_id)
        .await
        .map_err(plc_fault)?;
    println!(
        "slice {} attribute {} = {:?}{} (slice_attribute_id {id})",
        a.slice,
        a.name,
        a.value,
        a.node.map(|n| format!(" on {n}")).unwrap_or_default()
    );
    Ok(ExitCode::Success)
}

// === node ===

#[derive(Debug, Subcommand)]
pub(super) enum NodeCommand {
    /// Add a node at a site: a PLC node and its node record.
    Add(NodeAddArgs),
}

#[derive(Debug, Args)]
pub(super) struct NodeAddArgs {
    hostname: String,
    /// The login_base of the node's site.
    #[arg(long)]
    site: String,
    /// The node record's hrn [default: <site authority>.<hostname with . as _>].
    #[arg(long)]
    hrn: Option<Hrn>,
    /// The public key the node's GID holds (the node's own TLS key) [default: a fresh key,
    /// then discarded].
    #[arg(long, value_name = "FILE")]
    pubkey: Option<PathBuf>,
    #[arg(long, default_value = "geni")]
    model: String,
}

impl RegistryTask for NodeCommand {
    async fn run<B: PlcBackend + 'static>(
        self,
        registry: Registry<B>,
        config: &PlcConfig,
    ) -> anyhow::Result<ExitCode> {
        let Self::Add(a) = self;
        let (site_hrn, _) = site(&registry, config, &a.site).await?;
        let hrn = match a.hrn {
            Some(h) => h,
            None => child(&site_hrn, &a.hostname.replace('.', "_"))?,
        };
        let key = match &a.pubkey {
            Some(p) => PublicKey::load(p)?,
            None => Keypair::generate(Keypair::DEFAULT_BITS)?.public_key(),
        };
        let fields = Struct::new()
            .with("hostname", a.hostname.as_str())
            .with("model", a.model);
        let gid = registry.authorities.create_gid(&hrn, None, &key)?;
        let node = NewNode {
            hrn: hrn.clone(),
            gid: gid.to_chain_string(ChainForm::Separator)?,
            login_base: a.site.clone(),
            fields,
        };
        let node_id = provision::add_node(&registry, node).await?;
        println!("added node {} (node_id {node_id}) as {hrn}", a.hostname);
        Ok(ExitCode::Success)
    }
}

// === initscript ===

#[derive(Debug, Subcommand)]
pub(super) enum InitscriptCommand {
    /// Add an initscript a slice's `initscript` attribute can name.
    Add(InitscriptAddArgs),
}

#[derive(Debug, Args)]
pub(super) struct InitscriptAddArgs {
    name: String,
    /// The script's file.
    #[arg(
        long,
        value_name = "FILE",
        conflicts_with = "script",
        required_unless_present = "script"
    )]
    file: Option<PathBuf>,
    /// The script's text.
    #[arg(long)]
    script: Option<String>,
}

impl RegistryTask for InitscriptCommand {
    async fn run<B: PlcBackend + 'static>(
        self,
        registry: Registry<B>,
        _config: &PlcConfig,
    ) -> anyhow::Result<ExitCode> {
        let Self::Add(a) = self;
        let body = match (&a.file, a.script) {
            (Some(path), _) => read(path)?,
            (None, Some(s)) => s,
            (None, None) => bail!("give --file or --script"),
        };
        let id = registry
            .plc
            .add_initscript(&a.name, &body)
            .await
            .map_err(plc_fault)?;
        println!("added initscript {} (initscript_id {id})", a.name);
        Ok(ExitCode::Success)
    }
}

// === enable and disable ===

/// `site enable|disable`: PLC's `enabled` flag on the site, which the registry honours for its
/// persons and its authority.
async fn site_enabled<B: PlcBackend>(
    registry: &Registry<B>,
    config: &PlcConfig,
    login_base: &str,
    enabled: bool,
) -> anyhow::Result<ExitCode> {
    let (hrn, site_id) = site(registry, config, login_base).await?;
    registry
        .plc
        .update_site(site_id, Struct::new().with("enabled", enabled))
        .await?;
    println!(
        "{} site {login_base} (authority {hrn})",
        if enabled { "enabled" } else { "disabled" }
    );
    Ok(ExitCode::Success)
}

/// `person enable|disable`: PLC's `enabled` flag on the person.
async fn person_enabled<B: PlcBackend>(
    registry: &Registry<B>,
    email: &str,
    enabled: bool,
) -> anyhow::Result<ExitCode> {
    let persons = registry
        .plc
        .get_persons(Lookup::Names(vec![email.to_owned()]))
        .await?;
    let Some(person) = persons.first() else {
        bail!(
            "no person {email} in PLC; add one with `geni-agent plc person add {email} --site …`"
        );
    };
    registry
        .plc
        .update_person(person.person_id, Struct::new().with("enabled", enabled))
        .await?;
    println!(
        "{} person {email} (person_id {})",
        if enabled { "enabled" } else { "disabled" },
        person.person_id
    );
    Ok(ExitCode::Success)
}

// === helpers ===

/// `<parent>.<label>`, checked as an hrn.
fn child(parent: &Hrn, label: &str) -> anyhow::Result<Hrn> {
    Ok(Hrn::parse(&format!("{parent}.{label}"))?)
}

/// The authority and PLC id of site `login_base`, which must have been added.
async fn site<B: PlcBackend>(
    registry: &Registry<B>,
    config: &PlcConfig,
    login_base: &str,
) -> anyhow::Result<(Hrn, i64)> {
    let hrn = child(&config.authority, login_base)?;
    let record = registry.store.find(&hrn, RecordType::Sa).await?;
    match record {
        Some(r) if r.pointer >= 0 && registry.authorities.holds(&hrn) => Ok((hrn, r.pointer)),
        _ => bail!(
            "no site {login_base} (authority {hrn}); add it with `geni-agent plc site add \
             {login_base}`"
        ),
    }
}

/// A user label from an e-mail address, as the 2009 import named users: the local part with
/// anything but letters, digits and `_` turned into `_`.
fn email_leaf(email: &str) -> String {
    let local = email.split('@').next().unwrap_or(email);
    local
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn read(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leaves_from_emails() {
        assert_eq!(email_leaf("first.last@example.org"), "first_last");
        assert_eq!(email_leaf("o'hara+x@example.org"), "o_hara_x");
    }
}
