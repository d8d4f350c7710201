//! `geni-agent authority`: offline tools over an `authorities/` tree (DESIGN §3), so that an
//! operator (or a test) can make roots, sub-authorities, keys, GIDs, credentials and tickets,
//! and verify or read them, without a running registry.
//!
//! This module owns the flags and the glue of the creating subcommands (`init`, `create`, `key`,
//! `gid`, `credential`, `ticket`) and the output files; `verify` and `show` live in their own
//! submodules. Every decision about trust is `geni-trust`'s: nothing here signs, parses or checks
//! a certificate itself. Messages name what failed and the command that fixes it.

mod geni;
mod show;
mod values;
mod verify;

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use geni_trust::{
    CertMode, ChainForm, Gid, Hierarchy, Hrn, Keypair, PublicKey, RecordType, RightList,
    TrustError, format_utc,
};

use crate::ExitCode;

/// Where the tree is unless `--dir` says otherwise, relative to the working directory.
const DEFAULT_DIR: &str = "authorities";
/// Where a node looks for its roots by default (DESIGN §9); only used in hints.
const NODE_TRUSTED_ROOTS: &str = "/etc/geni-agent/trusted_roots/";
/// Lifetimes of modern-form objects when `--lifetime` is not given.
const DEFAULT_CREDENTIAL_DAYS: u32 = 30;
const DEFAULT_TICKET_DAYS: u32 = 1;
/// The longest `--lifetime`: the authority GIDs an object chains to live five years, and the
/// verifier would refuse the object once they expire anyway.
const MAX_LIFETIME_DAYS: i64 = 5 * 365;
const SECS_PER_DAY: i64 = 86_400;

#[derive(Debug, Args)]
#[command(after_help = "\
Typical session (files land in ./authorities unless --dir says otherwise):
  geni-agent authority init planetlab
  geni-agent authority create planetlab.us.pl --parents
  geni-agent authority key --out alice.pkey
  geni-agent authority gid planetlab.us.pl.alice --pubkey alice.pkey.pub --out alice.gid
  geni-agent authority credential --caller alice.gid --object slice.gid \\
      --rights embed,bind,control,info --out slice.cred
  geni-agent authority verify --trusted-roots roots/ --kind credential slice.cred

The same tree serves GENI clients when its GIDs are made with --urn (init, create, gid):
  geni-agent authority credential --caller alice.gid --object slice.gid \\
      --rights embed,bind,control,info --delegate --format geni --out slice.cred.xml
  geni-agent authority delegate --credential slice.cred.xml --to bob.gid --key alice.pkey \\
      --rights control,info --out bob.cred.xml
  geni-agent authority verify --trusted-roots roots/ bob.cred.xml")]
pub(crate) struct AuthorityArgs {
    #[command(subcommand)]
    command: AuthorityCommand,
}

#[derive(Debug, Subcommand)]
enum AuthorityCommand {
    /// Create a sub-authority, signed by its parent authority.
    Create(CreateArgs),
    /// Issue a credential for a caller over an object, or an authority's own credential.
    Credential(CredentialArgs),
    /// Delegate a GENI credential to another principal, signed by its owner.
    Delegate(geni::DelegateArgs),
    /// Issue a GID binding an hrn to a public key, signed by the hrn's authority.
    Gid(GidArgs),
    /// Create a top-level (root) authority with a self-signed GID.
    Init(InitArgs),
    /// Generate an RSA key pair for a new principal (user, slice or node).
    Key(KeyArgs),
    /// Print a GID, credential or ticket the way the 2008 tools dumped them (no verification).
    Show(show::ShowArgs),
    /// Issue a ticket for a caller on a slice, or an authority's own ticket.
    Ticket(TicketArgs),
    /// Verify a GID, credential (2008 or GENI) or ticket against trusted roots: exit 0 accept,
    /// 1 reject, 2 usage or I/O error.
    Verify(verify::VerifyArgs),
}

/// The tree a creating subcommand works in, and the form it writes.
#[derive(Debug, Args)]
struct TreeArgs {
    /// The `authorities/` tree (one directory per hrn label).
    #[arg(long, value_name = "DIR", default_value = DEFAULT_DIR)]
    dir: PathBuf,
    /// Write exactly what the 2008 code wrote: X.509 v1, md5 signatures, 1024-bit authority
    /// keys, 5×365-day lifetimes. Verifiers accept these only with legacy digests enabled.
    #[arg(long = "compat-2008")]
    compat_2008: bool,
}

/// Where an issued object goes.
#[derive(Debug, Args)]
struct OutArgs {
    /// Write the object to FILE (mode 0644, less the umask) instead of stdout.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Replace FILE when it exists.
    #[arg(long, requires = "out")]
    force: bool,
}

#[derive(Debug, Args)]
struct InitArgs {
    /// The root authority's name: one label, such as `planetlab`.
    #[arg(value_name = "ROOT_HRN")]
    hrn: Hrn,
    /// Write the GID in the GENI form (URN subjectAltName, CA:TRUE).
    #[arg(long, conflicts_with = "compat_2008")]
    urn: bool,
    #[command(flatten)]
    tree: TreeArgs,
}

#[derive(Debug, Args)]
struct CreateArgs {
    /// The sub-authority's name, such as `planetlab.us.pl`.
    #[arg(value_name = "HRN")]
    hrn: Hrn,
    /// Also create missing authorities between the root and HRN (the root itself must exist:
    /// a new root of trust is made only by `init`).
    #[arg(long)]
    parents: bool,
    /// Write the GIDs in the GENI form (URN subjectAltName, CA:TRUE).
    #[arg(long, conflicts_with = "compat_2008")]
    urn: bool,
    #[command(flatten)]
    tree: TreeArgs,
}

#[derive(Debug, Args)]
struct KeyArgs {
    /// The private key file to create (mode 0600; never overwritten).
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// RSA key size.
    #[arg(
        long,
        value_name = "N",
        default_value_t = Keypair::DEFAULT_BITS,
        value_parser = clap::value_parser!(u32).range(1024..=16384)
    )]
    bits: u32,
    /// Do not write the public key to FILE.pub.
    #[arg(long)]
    no_pub: bool,
}

#[derive(Debug, Args)]
struct GidArgs {
    /// The principal's name, such as `planetlab.us.pl.alice`; its authority must be in the tree.
    #[arg(value_name = "HRN")]
    hrn: Hrn,
    /// The principal's public key: SPKI PEM (`FILE.pub` from `key`) or a private key PEM.
    #[arg(long, value_name = "FILE")]
    pubkey: PathBuf,
    /// The uuid, a decimal number as 2008 wrote them; a random one when absent.
    #[arg(long, value_name = "N")]
    uuid: Option<String>,
    /// Write the GID in the GENI form: `urn:publicid:IDN+…+TYPE+…` and `urn:uuid:` in its
    /// subjectAltName, CA:FALSE.
    #[arg(long, conflicts_with = "compat_2008")]
    urn: bool,
    /// The record type the URN names (with --urn).
    #[arg(
        long = "type",
        value_enum,
        value_name = "TYPE",
        requires = "urn",
        default_value_t
    )]
    kind: UrnKind,
    #[command(flatten)]
    tree: TreeArgs,
    #[command(flatten)]
    out: OutArgs,
}

/// Record types a principal's URN GID can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
enum UrnKind {
    #[default]
    User,
    Slice,
    Node,
}

#[derive(Debug, Args)]
#[command(after_help = "\
With --compat-2008 the credential gets the 2008 lifetime of 5×365 days whatever --lifetime says.
--rights has no default: the default rights depend on the object's record type (user, slice, \
authority), which a GID does not carry.")]
struct CredentialArgs {
    /// GID file of the principal the credential is for.
    #[arg(
        long,
        value_name = "GID",
        required_unless_present = "authority",
        conflicts_with = "authority"
    )]
    caller: Option<PathBuf>,
    /// GID file of the object the rights are over; its authority must be in the tree and signs.
    #[arg(
        long,
        value_name = "GID",
        required_unless_present = "authority",
        conflicts_with = "authority"
    )]
    object: Option<PathBuf>,
    /// Comma-separated rights: authority, bind, control, embed, info, ma, refresh, resolve, sa.
    #[arg(
        long,
        value_name = "LIST",
        required_unless_present = "authority",
        conflicts_with = "authority"
    )]
    rights: Option<RightList>,
    /// Let the caller delegate the credential further.
    #[arg(long, conflicts_with = "authority")]
    delegate: bool,
    /// Lifetime in days [default: 30].
    #[arg(
        long,
        value_name = "DAYS",
        conflicts_with = "authority",
        value_parser = clap::value_parser!(u32).range(1..=MAX_LIFETIME_DAYS)
    )]
    lifetime: Option<u32>,
    /// Issue the authority credential of HRN instead (caller = object = the authority, rights
    /// `authority`, delegable).
    #[arg(long, value_name = "HRN")]
    authority: Option<Hrn>,
    /// The wire form: 2008 (X.509) or geni (`geni_sfa` XML; the GIDs need URNs).
    #[arg(long, value_enum, value_name = "FORMAT", default_value_t)]
    format: geni::Format,
    /// XML-DSig signature method of a GENI credential.
    #[arg(long, value_enum, value_name = "ALG", default_value_t)]
    signature_algorithm: geni::SigAlg,
    #[command(flatten)]
    tree: TreeArgs,
    #[command(flatten)]
    out: OutArgs,
}

#[derive(Debug, Args)]
#[command(after_help = "\
JSON objects keep the order written. Strings, integers, other numbers, booleans, null, arrays and \
objects become XML-RPC string, int, double, boolean, nil, array and struct.
With --compat-2008 the ticket gets the 2008 lifetime of 5×365 days and cannot name a --node.")]
struct TicketArgs {
    /// GID file of the principal who may redeem the ticket.
    #[arg(
        long,
        value_name = "GID",
        required_unless_present = "authority",
        conflicts_with = "authority"
    )]
    caller: Option<PathBuf>,
    /// GID file of the slice; its authority must be in the tree and signs.
    #[arg(
        long,
        value_name = "GID",
        required_unless_present = "authority",
        conflicts_with = "authority"
    )]
    slice: Option<PathBuf>,
    /// Slice attributes as a JSON object, or @FILE to read it from FILE.
    #[arg(
        long,
        value_name = "JSON",
        required_unless_present = "authority",
        conflicts_with = "authority"
    )]
    attributes: Option<String>,
    /// Resource specification as a JSON object, or @FILE to read it from FILE.
    #[arg(
        long,
        value_name = "JSON",
        required_unless_present = "authority",
        conflicts_with = "authority"
    )]
    rspec: Option<String>,
    /// The one node the ticket may be redeemed on.
    #[arg(long, value_name = "HRN", conflicts_with = "authority")]
    node: Option<Hrn>,
    /// Lifetime in days [default: 1].
    #[arg(
        long,
        value_name = "DAYS",
        conflicts_with = "authority",
        value_parser = clap::value_parser!(u32).range(1..=MAX_LIFETIME_DAYS)
    )]
    lifetime: Option<u32>,
    /// Issue the authority ticket of HRN instead (caller = object = the authority, empty
    /// attributes and rspec).
    #[arg(long, value_name = "HRN")]
    authority: Option<Hrn>,
    #[command(flatten)]
    tree: TreeArgs,
    #[command(flatten)]
    out: OutArgs,
}

/// Runs one `authority` subcommand.
pub(crate) fn run(args: AuthorityArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        AuthorityCommand::Create(a) => create(&a),
        AuthorityCommand::Credential(a) => credential(&a),
        AuthorityCommand::Delegate(a) => geni::delegate(&a),
        AuthorityCommand::Gid(a) => gid(&a),
        AuthorityCommand::Init(a) => init(&a),
        AuthorityCommand::Key(a) => key(&a),
        AuthorityCommand::Show(a) => show::run(&a),
        AuthorityCommand::Ticket(a) => ticket(&a),
        AuthorityCommand::Verify(a) => verify::run(&a),
    }
}

// === subcommands ===

fn init(args: &InitArgs) -> anyhow::Result<ExitCode> {
    let hrn = &args.hrn;
    if hrn.authority().is_some() {
        bail!(
            "init takes a top-level name; use `geni-agent authority create {hrn}` for \
             sub-authorities"
        );
    }
    let tree = &args.tree;
    let hierarchy = tree.hierarchy().with_urn_gids(args.urn);
    hierarchy
        .create_authority(hrn, false)
        .map_err(|e| tree.explain(e))?;
    report_authority(&hierarchy, hrn)?;
    let (_, gid_path, _, _) = hierarchy.paths(hrn)?;
    println!(
        "To make a node trust this root, copy its GID into the node's trusted roots:\n  \
         cp {} {NODE_TRUSTED_ROOTS}",
        gid_path.display()
    );
    Ok(ExitCode::Success)
}

fn create(args: &CreateArgs) -> anyhow::Result<ExitCode> {
    let hrn = &args.hrn;
    let tree = &args.tree;
    let Some(parent) = hrn.authority() else {
        bail!(
            "{hrn} is a top-level name; use `geni-agent authority init {hrn}` to create a root \
             authority"
        );
    };
    let hierarchy = tree.hierarchy().with_urn_gids(args.urn);
    if hierarchy.exists(hrn) {
        return Err(tree.explain(TrustError::AuthorityExists {
            hrn: hrn.to_string(),
        }));
    }
    // The ancestors that will be made, top first, so that each can be reported; the root is
    // never among them (only `init` makes a root, and says how to distribute it).
    let mut missing = Vec::new();
    let mut cursor = Some(parent);
    while let Some(auth) = cursor {
        if hierarchy.exists(&auth) {
            break;
        }
        cursor = auth.authority();
        if cursor.is_none() {
            return Err(tree.explain(TrustError::MissingAuthority {
                hrn: auth.to_string(),
                dir: tree.dir.clone(),
            }));
        }
        missing.push(auth);
    }
    missing.reverse();
    if let Some(first) = missing.first()
        && !args.parents
    {
        bail!(
            "no authority {first} in {}; run `geni-agent authority create {first}{}` first, or \
             pass --parents to create {}",
            tree.dir.display(),
            tree.dir_flag(),
            join_hrns(&missing)
        );
    }
    hierarchy
        .create_authority(hrn, args.parents)
        .map_err(|e| tree.explain(e))?;
    for auth in missing.iter().chain([hrn]) {
        report_authority(&hierarchy, auth)?;
    }
    Ok(ExitCode::Success)
}

fn key(args: &KeyArgs) -> anyhow::Result<ExitCode> {
    let pub_path = (!args.no_pub).then(|| append_extension(&args.out, "pub"));
    // Checked before the (slow) key generation so that nothing is half-written.
    for path in std::iter::once(&args.out).chain(pub_path.as_ref()) {
        if path.exists() {
            bail!(
                "{} already exists; keys are never overwritten: choose another --out or remove \
                 it first",
                path.display()
            );
        }
    }
    let keypair = Keypair::generate(args.bits).context("generating the RSA key")?;
    keypair.save(&args.out).context("writing the private key")?;
    println!(
        "wrote private key {} (RSA-{}, mode 0600)",
        args.out.display(),
        args.bits
    );
    if let Some(pub_path) = pub_path {
        let pem = keypair.public_key().to_pem()?;
        write_new_file(&pub_path, &pem, false)?;
        println!("wrote public key {}", pub_path.display());
    }
    tracing::info!(bits = args.bits, path = %args.out.display(), "Generated key");
    Ok(ExitCode::Success)
}

fn gid(args: &GidArgs) -> anyhow::Result<ExitCode> {
    args.out.check_free()?;
    let key = PublicKey::load(&args.pubkey).context("reading --pubkey")?;
    let hierarchy = args.tree.hierarchy().with_urn_gids(args.urn);
    let kind = match args.kind {
        UrnKind::User => RecordType::User,
        UrnKind::Slice => RecordType::Slice,
        UrnKind::Node => RecordType::Node,
    };
    let gid = hierarchy
        .create_typed_gid(&args.hrn, kind, args.uuid.as_deref(), &key)
        .map_err(|e| args.tree.explain(e))?;
    let text = gid.to_chain_string(ChainForm::Separator)?;
    let uuid = gid.uuid().unwrap_or("none");
    args.out
        .emit(&text, &format!("GID {} (uuid {uuid})", gid.hrn()))?;
    Ok(ExitCode::Success)
}

fn credential(args: &CredentialArgs) -> anyhow::Result<ExitCode> {
    args.out.check_free()?;
    let tree = &args.tree;
    if args.format == geni::Format::Geni {
        return geni::credential(&geni::GeniCredentialRequest {
            tree,
            caller: args.caller.as_ref(),
            object: args.object.as_ref(),
            rights: args.rights.as_ref(),
            delegate: args.delegate,
            authority: args.authority.as_ref(),
            days: args.lifetime.unwrap_or(DEFAULT_CREDENTIAL_DAYS),
            algorithm: args.signature_algorithm,
            out: &args.out,
        });
    }
    let hierarchy = tree.hierarchy();
    let cred = if let Some(hrn) = &args.authority {
        hierarchy
            .authority_credential(hrn)
            .map_err(|e| tree.explain(e))?
    } else {
        let (Some(caller), Some(object), Some(rights)) = (&args.caller, &args.object, &args.rights)
        else {
            bail!("--caller, --object and --rights are required unless --authority is given");
        };
        let caller = load_gid(caller, "--caller")?;
        let object = load_gid(object, "--object")?;
        let days = tree.lifetime_days(args.lifetime, DEFAULT_CREDENTIAL_DAYS);
        hierarchy
            .issue_credential(&caller, &object, rights, args.delegate, days_to_secs(days))
            .map_err(|e| tree.explain(e))?
    };
    let text = cred.to_chain_string(ChainForm::Separator)?;
    let not_after = cred.certificate().validity().not_after;
    args.out.emit(
        &text,
        &format!(
            "credential {} (rights {}, expires {})",
            cred.subject(),
            cred.privileges(),
            format_utc(not_after)
        ),
    )?;
    Ok(ExitCode::Success)
}

fn ticket(args: &TicketArgs) -> anyhow::Result<ExitCode> {
    args.out.check_free()?;
    let tree = &args.tree;
    let hierarchy = tree.hierarchy();
    let ticket = if let Some(hrn) = &args.authority {
        hierarchy
            .authority_ticket(hrn)
            .map_err(|e| tree.explain(e))?
    } else {
        let (Some(caller), Some(slice), Some(attributes), Some(rspec)) =
            (&args.caller, &args.slice, &args.attributes, &args.rspec)
        else {
            bail!(
                "--caller, --slice, --attributes and --rspec are required unless --authority is \
                 given"
            );
        };
        let attributes = values::struct_from_json_arg(attributes, "--attributes")?;
        let rspec = values::struct_from_json_arg(rspec, "--rspec")?;
        let caller = load_gid(caller, "--caller")?;
        let slice = load_gid(slice, "--slice")?;
        let days = tree.lifetime_days(args.lifetime, DEFAULT_TICKET_DAYS);
        hierarchy
            .issue_ticket(
                &caller,
                &slice,
                &attributes,
                &rspec,
                args.node.as_ref(),
                days_to_secs(days),
            )
            .map_err(|e| tree.explain(e))?
    };
    let text = ticket.to_chain_string(ChainForm::Separator)?;
    let not_after = ticket.certificate().validity().not_after;
    let node = ticket
        .target()
        .map_or_else(String::new, |t| format!(", node {t}"));
    args.out.emit(
        &text,
        &format!(
            "ticket {} (expires {}{node})",
            ticket.subject(),
            format_utc(not_after)
        ),
    )?;
    Ok(ExitCode::Success)
}

// === impl TreeArgs ===

impl TreeArgs {
    fn mode(&self) -> CertMode {
        if self.compat_2008 {
            CertMode::Compat2008
        } else {
            CertMode::Modern
        }
    }

    fn hierarchy(&self) -> Hierarchy {
        Hierarchy::new(&self.dir).with_mode(self.mode())
    }

    /// ` --dir DIR` when the tree is not the default one, for commands quoted in hints.
    fn dir_flag(&self) -> String {
        if self.dir == Path::new(DEFAULT_DIR) {
            String::new()
        } else {
            format!(" --dir {}", self.dir.display())
        }
    }

    /// The lifetime to ask the hierarchy for. The 2008 form has one fixed lifetime, which the
    /// hierarchy applies whatever it is given; say so rather than silently ignore the flag.
    fn lifetime_days(&self, given: Option<u32>, default: u32) -> u32 {
        if self.compat_2008 && given.is_some() {
            eprintln!(
                "note: --compat-2008 issues with the 2008 lifetime of 5×365 days; --lifetime is \
                 ignored"
            );
        }
        given.unwrap_or(default)
    }

    /// Adds to a tree error the command that fixes it.
    fn explain(&self, e: TrustError) -> anyhow::Error {
        let dir = self.dir.display();
        let flag = self.dir_flag();
        match e {
            TrustError::MissingAuthority { hrn, .. } => {
                let fix = match Hrn::parse(&hrn).ok().and_then(|h| h.authority()) {
                    None => format!("geni-agent authority init {hrn}{flag}"),
                    Some(_) => format!("geni-agent authority create {hrn}{flag} --parents"),
                };
                anyhow::anyhow!("no authority {hrn} in {dir}; run `{fix}` first")
            }
            TrustError::AuthorityExists { hrn } => anyhow::anyhow!(
                "authority {hrn} already exists in {dir}; use another --dir for a separate tree"
            ),
            other => other.into(),
        }
    }
}

// === impl OutArgs ===

impl OutArgs {
    /// Fails early, before any key is generated or anything is signed, when `--out` exists and
    /// `--force` was not given.
    fn check_free(&self) -> anyhow::Result<()> {
        match &self.out {
            Some(path) if !self.force && path.exists() => Err(exists_error(path)),
            _ => Ok(()),
        }
    }

    /// Writes `text` to `--out` and says what went there, or writes `text` alone to stdout.
    fn emit(&self, text: &str, what: &str) -> anyhow::Result<()> {
        match &self.out {
            Some(path) => {
                write_new_file(path, text.as_bytes(), self.force)?;
                println!("wrote {what} to {}", path.display());
            }
            None => {
                let mut stdout = io::stdout().lock();
                stdout
                    .write_all(text.as_bytes())
                    .and_then(|()| stdout.flush())
                    .context("writing to stdout")?;
            }
        }
        Ok(())
    }
}

// === helpers ===

fn report_authority(hierarchy: &Hierarchy, hrn: &Hrn) -> anyhow::Result<()> {
    let info = hierarchy.authority(hrn)?;
    let (_, gid, pkey, dbinfo) = hierarchy.paths(hrn)?;
    println!(
        "created authority {hrn} (uuid {})",
        info.gid.uuid().unwrap_or("none")
    );
    println!("  {}", gid.display());
    println!("  {}  (private key, mode 0600)", pkey.display());
    println!("  {}", dbinfo.display());
    tracing::info!(%hrn, dir = %hierarchy.base().display(), "Created authority");
    Ok(())
}

fn load_gid(path: &Path, flag: &str) -> anyhow::Result<Gid> {
    Gid::load(path).with_context(|| format!("reading the {flag} GID"))
}

fn join_hrns(hrns: &[Hrn]) -> String {
    hrns.iter().map(Hrn::as_str).collect::<Vec<_>>().join(", ")
}

fn days_to_secs(days: u32) -> i64 {
    i64::from(days) * SECS_PER_DAY
}

/// `path` with `.ext` appended to its whole file name (`alice.pkey` → `alice.pkey.pub`).
fn append_extension(path: &Path, ext: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".");
    name.push(ext);
    PathBuf::from(name)
}

fn exists_error(path: &Path) -> anyhow::Error {
    anyhow::anyhow!(
        "{} already exists; pass --force to replace it",
        path.display()
    )
}

/// Writes a public (non-secret) file, mode 0644 less the umask. Without `force` an existing file
/// is refused atomically (`create_new`), so that two runs cannot both believe they wrote it;
/// with `force` the new content replaces the old by rename, so a reader never sees half a file.
fn write_new_file(path: &Path, data: &[u8], force: bool) -> anyhow::Result<()> {
    let write = |target: &Path, create_new: bool| -> io::Result<()> {
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(create_new)
            .create(true)
            .truncate(true)
            .mode(0o644)
            .open(target)?;
        file.write_all(data)?;
        file.sync_all()
    };
    if force {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = path.with_file_name(format!(".{name}.tmp{}", std::process::id()));
        let result = write(&tmp, false).and_then(|()| fs::rename(&tmp, path));
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        return result.with_context(|| format!("writing {}", path.display()));
    }
    match write(path, true) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(exists_error(path)),
        Err(e) => {
            // Past `create_new`, the file at `path` is ours: drop the partial one.
            if path.exists() {
                let _ = fs::remove_file(path);
            }
            Err(anyhow::Error::new(e).context(format!("writing {}", path.display())))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pub_path_keeps_the_whole_name() {
        assert_eq!(
            append_extension(Path::new("dir/alice.pkey"), "pub"),
            PathBuf::from("dir/alice.pkey.pub")
        );
    }

    #[test]
    fn lifetimes_fit() {
        assert_eq!(days_to_secs(30), 2_592_000);
        assert_eq!(days_to_secs(u32::MAX), i64::from(u32::MAX) * 86_400);
    }
}
