//! `geni-agent authority credential --format geni` and `authority delegate`: GENI (`geni_sfa`)
//! credentials issued from the same `authorities/` tree as the 2008 ones, so that one tree serves
//! both protocols (its GIDs made with `--urn`).
//!
//! This module owns the flags and glue only: the document, its signature and every rule are
//! `geni-trust`'s (`geni::issue`, `geni::delegate`). A credential is signed by the object's own
//! authority (for `--authority HRN`, by HRN's parent, or by the root itself), rsa-sha256 unless
//! `--signature-algorithm rsa-sha1` asks for what gcf and SFA write (both verify through xmlsec1,
//! which accepts either).

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use geni_trust::geni::{self, GeniCredential, GeniIssue, Privilege, SignatureAlgorithm};
use geni_trust::{Gid, Hrn, Keypair, RightList, format_utc};

use super::{OutArgs, TreeArgs, days_to_secs, load_gid};
use crate::ExitCode;

/// The wire form a credential is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub(super) enum Format {
    /// The 2008 X.509 credential (a PEM chain).
    #[default]
    #[value(name = "2008")]
    Y2008,
    /// A GENI `geni_sfa` XML signed credential.
    Geni,
}

/// The XML-DSig signature method of a GENI credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub(super) enum SigAlg {
    #[default]
    #[value(name = "rsa-sha256")]
    RsaSha256,
    #[value(name = "rsa-sha1")]
    RsaSha1,
}

impl SigAlg {
    pub(super) fn algorithm(self) -> SignatureAlgorithm {
        match self {
            Self::RsaSha1 => SignatureAlgorithm::RsaSha1,
            Self::RsaSha256 => SignatureAlgorithm::RsaSha256,
        }
    }
}

#[derive(Debug, Args)]
#[command(after_help = "\
The delegated credential keeps the parent and every signature in it unchanged and adds one \
signature by the parent's owner (whose private key --key is). Rights must be ones the parent \
lets its owner delegate; the expiry is the parent's unless --lifetime makes it earlier.")]
pub(super) struct DelegateArgs {
    /// The GENI credential to delegate (a `signed-credential` XML file).
    #[arg(long, value_name = "FILE")]
    credential: PathBuf,
    /// GID file of the principal to delegate to (with a URN: made with `gid --urn`).
    #[arg(long, value_name = "GID")]
    to: PathBuf,
    /// Private key of the credential's owner, who signs the delegation.
    #[arg(long, value_name = "KEY")]
    key: PathBuf,
    /// Comma-separated rights to pass on.
    #[arg(long, value_name = "LIST")]
    rights: RightList,
    /// Let the new owner delegate these rights further.
    #[arg(long)]
    delegate: bool,
    /// Lifetime in days from now (never past the parent's expiry).
    #[arg(
        long,
        value_name = "DAYS",
        value_parser = clap::value_parser!(u32).range(1..=super::MAX_LIFETIME_DAYS)
    )]
    lifetime: Option<u32>,
    /// XML-DSig signature method.
    #[arg(long, value_enum, value_name = "ALG", default_value_t)]
    signature_algorithm: SigAlg,
    #[command(flatten)]
    out: OutArgs,
}

fn privileges(rights: &RightList, delegate: bool) -> anyhow::Result<Vec<Privilege>> {
    rights
        .rights()
        .iter()
        .map(|r| Privilege::new(r.as_str(), delegate).map_err(Into::into))
        .collect()
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// What `credential --format geni` needs from the 2008 flags.
#[derive(Debug)]
pub(super) struct GeniCredentialRequest<'a> {
    pub(super) tree: &'a TreeArgs,
    pub(super) caller: Option<&'a PathBuf>,
    pub(super) object: Option<&'a PathBuf>,
    pub(super) rights: Option<&'a RightList>,
    pub(super) delegate: bool,
    pub(super) authority: Option<&'a Hrn>,
    pub(super) days: u32,
    pub(super) algorithm: SigAlg,
    pub(super) out: &'a OutArgs,
}

/// `credential --format geni`.
pub(super) fn credential(req: &GeniCredentialRequest<'_>) -> anyhow::Result<ExitCode> {
    if req.tree.compat_2008 {
        bail!("--compat-2008 has no GENI form; drop it or use --format 2008");
    }
    let hierarchy = req.tree.hierarchy();
    let explain = |e| req.tree.explain(e);
    let (owner, target, privileges, signer_hrn) = if let Some(hrn) = req.authority {
        let auth = hierarchy.authority(hrn).map_err(explain)?;
        let signer = hrn.authority().unwrap_or_else(|| hrn.clone());
        let rights = RightList::new(vec![geni_trust::Right::Authority]);
        (
            auth.gid.clone(),
            auth.gid,
            privileges(&rights, true)?,
            signer,
        )
    } else {
        let (Some(caller), Some(object), Some(rights)) = (req.caller, req.object, req.rights)
        else {
            bail!("--caller, --object and --rights are required unless --authority is given");
        };
        let caller = load_gid(caller, "--caller")?;
        let object = load_gid(object, "--object")?;
        let Some(signer) = object.hrn().authority() else {
            bail!(
                "{} is a top-level name: issue its credential with --authority {}",
                object.hrn(),
                object.hrn()
            );
        };
        (caller, object, privileges(rights, req.delegate)?, signer)
    };
    let signer = hierarchy.authority(&signer_hrn).map_err(explain)?;
    let expires =
        (now() + days_to_secs(req.days)).min(signer.gid.certificate().validity().not_after);
    let text = geni::issue(&GeniIssue {
        owner: &owner,
        target: &target,
        privileges: &privileges,
        expires,
        signer: &signer.key,
        signer_gid: &signer.gid,
        algorithm: req.algorithm.algorithm(),
    })?;
    req.out.emit(
        &text,
        &format!(
            "GENI credential {} for {} (rights {}, {}, signed by {}, expires {})",
            geni::gid_urn(&target).map_or_else(|| target.hrn().to_string(), |u| u.to_string()),
            owner.hrn(),
            privilege_names(&privileges),
            req.algorithm.algorithm().as_str(),
            signer_hrn,
            format_utc(expires)
        ),
    )?;
    Ok(ExitCode::Success)
}

/// `authority delegate`.
pub(super) fn delegate(args: &DelegateArgs) -> anyhow::Result<ExitCode> {
    args.out.check_free()?;
    let parent = std::fs::read_to_string(&args.credential)
        .with_context(|| format!("reading {}", args.credential.display()))?;
    if !geni::is_geni_credential(&parent) {
        bail!(
            "{} is not a GENI credential (a 2008 credential is delegated by `credential` with a \
             parent); only GENI credentials are delegated here",
            args.credential.display()
        );
    }
    let cred = GeniCredential::parse(&parent)
        .with_context(|| format!("reading {}", args.credential.display()))?;
    let to: Gid = load_gid(&args.to, "--to")?;
    let key = Keypair::load(&args.key).context("reading --key")?;
    let owner = cred.outer().owner();
    let parent_expiry = cred.outer().expires();
    let expires = match args.lifetime {
        Some(days) => (now() + days_to_secs(days)).min(parent_expiry),
        None => parent_expiry,
    };
    let privileges = privileges(&args.rights, args.delegate)?;
    let text = geni::delegate(
        &parent,
        &to,
        &privileges,
        expires,
        &key,
        owner,
        args.signature_algorithm.algorithm(),
    )?;
    args.out.emit(
        &text,
        &format!(
            "GENI credential for {} delegated by {} to {} (rights {}, expires {})",
            cred.outer().target_urn(),
            cred.outer().owner_urn(),
            to.hrn(),
            privilege_names(&privileges),
            format_utc(expires)
        ),
    )?;
    Ok(ExitCode::Success)
}

fn privilege_names(p: &[Privilege]) -> String {
    p.iter()
        .map(|p| p.name().as_str())
        .collect::<Vec<_>>()
        .join(",")
}
