//! `geni-agent authority verify`: one object, one verdict, for operators and scripts.
//!
//! This module owns the verdict's exit code and its two renderings (a one-line summary, or a
//! JSON object with `--json`). The verdict itself is `geni-trust`'s `Verifier`, run with the
//! same policy a node would use. The line between reject (1) and error (2) is whose fault it is:
//! anything wrong with the object in FILE, including text that does not parse, is a reject;
//! anything that stops us judging it (unreadable FILE, no usable trusted root, bad flags) is an
//! error, so a script never mistakes a broken setup for a forged credential.
//!
//! Without `--kind` the kind is read from the content: a GENI credential (XML
//! `signed-credential`) or the leaf payload of a 2008 object. `--kind credential` takes either
//! credential form; `--kind geni` insists on the GENI one.

use std::fmt;
use std::fs;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use geni_trust::geni::is_geni_credential;
use geni_trust::{
    Hrn, ObjectKind, Policy, TrustError, TrustedRoots, VerifiedCredential, VerifiedGid,
    VerifiedTicket, Verifier, format_utc,
};
use serde_json::{Map, Value as Json};

use crate::ExitCode;

#[derive(Debug, Args)]
pub(crate) struct VerifyArgs {
    /// Directory of trusted root GIDs (`*.gid`, `*.cert`, `*.pem`); unusable files are skipped
    /// with a warning.
    #[arg(long, value_name = "DIR")]
    trusted_roots: PathBuf,
    /// What FILE holds; read from its content when absent (`credential` takes a 2008 or a GENI
    /// credential, `geni` only a GENI one).
    #[arg(long, value_enum, value_name = "KIND")]
    kind: Option<Kind>,
    /// The GID, credential or ticket to verify.
    #[arg(value_name = "FILE")]
    file: PathBuf,
    /// Accept md5 and sha1 signatures, as every 2008 object has; off, as on a node by default.
    #[arg(long)]
    legacy_digests: bool,
    /// This node's hrn: reject a ticket that names another node (tickets only).
    #[arg(long, value_name = "HRN")]
    node: Option<Hrn>,
    /// Print the verdict as one JSON object on stdout.
    #[arg(long)]
    json: bool,
}

/// What the object in FILE is claimed to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Kind {
    Credential,
    /// A GENI `geni_sfa` credential (XML).
    Geni,
    Gid,
    Ticket,
}

/// Why FILE was rejected.
#[derive(Debug)]
enum Rejected {
    Trust(TrustError),
    WrongKind { actual: Kind, claimed: Kind },
}

/// What an accepted object says about itself, in both renderings.
#[derive(Debug)]
struct Accepted {
    kind: Kind,
    line: String,
    json: Map<String, Json>,
}

/// Verifies FILE; see the module doc for what each exit code means.
pub(super) fn run(args: &VerifyArgs) -> anyhow::Result<ExitCode> {
    if args.node.is_some() && args.kind.is_some_and(|k| k != Kind::Ticket) {
        bail!("--node applies only to --kind ticket");
    }
    let roots = TrustedRoots::load_dir(&args.trusted_roots).context("loading --trusted-roots")?;
    let bytes = fs::read(&args.file).with_context(|| format!("reading {}", args.file.display()))?;
    let verifier = Verifier::new(
        roots,
        Policy {
            legacy_digests: args.legacy_digests,
            ..Policy::default()
        },
    );
    Ok(match judge(&verifier, args, bytes) {
        Ok(accepted) => {
            accepted.print(args);
            ExitCode::Success
        }
        Err(rejected) => {
            rejected.print(args);
            ExitCode::Reject
        }
    })
}

fn judge(verifier: &Verifier, args: &VerifyArgs, bytes: Vec<u8>) -> Result<Accepted, Rejected> {
    let Ok(text) = String::from_utf8(bytes) else {
        return Err(Rejected::Trust(TrustError::Decode {
            what: args.file.display().to_string(),
            reason: "file is not text".into(),
        }));
    };
    let found = content_kind(&text);
    let kind = match (args.kind, found) {
        (None, Some(found)) => found,
        // Undetectable text is left to the credential parser, whose message says what is wrong.
        (None, None) => Kind::Credential,
        // A GENI credential is a credential.
        (Some(Kind::Credential), Some(Kind::Geni)) => Kind::Geni,
        // Said plainly, rather than as whatever field the wrong parser misses first.
        (Some(claimed), Some(actual)) if actual != claimed => {
            return Err(Rejected::WrongKind { actual, claimed });
        }
        (Some(claimed), _) => claimed,
    };
    if args.node.is_some() && kind != Kind::Ticket {
        return Err(Rejected::WrongKind {
            actual: kind,
            claimed: Kind::Ticket,
        });
    }
    match kind {
        Kind::Credential => verifier
            .verify_credential_str(&text)
            .map(|v| Accepted::credential(&v, kind)),
        Kind::Geni => verifier
            .verify_geni_credential_str(&text)
            .map(|v| Accepted::credential(&v, kind)),
        Kind::Gid => verifier.verify_gid_str(&text).map(|v| Accepted::gid(&v)),
        Kind::Ticket => verifier
            .verify_ticket_str(&text, args.node.as_ref())
            .map(|v| Accepted::ticket(&v)),
    }
    .map_err(Rejected::Trust)
}

/// The kind FILE recognisably holds, if any: a GENI credential by its XML root, a 2008 object by
/// its leaf payload.
fn content_kind(text: &str) -> Option<Kind> {
    if is_geni_credential(text) {
        return Some(Kind::Geni);
    }
    Some(match ObjectKind::detect(text).ok()? {
        ObjectKind::Credential => Kind::Credential,
        ObjectKind::Gid => Kind::Gid,
        ObjectKind::Ticket => Kind::Ticket,
    })
}

// === impl Kind ===

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Credential => "credential",
            Self::Geni => "geni",
            Self::Gid => "gid",
            Self::Ticket => "ticket",
        }
    }
}

// === impl Rejected ===

impl Rejected {
    /// The reason on stderr always (a script that only checks the exit code still logs it), and
    /// with `--json` also on stdout.
    fn print(&self, args: &VerifyArgs) {
        let kind = args.kind.map_or("object", Kind::as_str);
        eprintln!("REJECT {kind} {}: {self}", args.file.display());
        if args.json {
            let mut json = fields([
                ("verdict", "reject".into()),
                ("kind", kind.into()),
                ("file", args.file.display().to_string().into()),
                ("reason", self.to_string().into()),
            ]);
            json.insert("error".into(), self.name().into());
            println!("{}", Json::Object(json));
        }
    }

    /// A stable `snake_case` name for the rejection, for scripts that branch on the reason rather
    /// than parse the message.
    fn name(&self) -> &'static str {
        match self {
            Self::Trust(e) => e.name(),
            Self::WrongKind { .. } => "wrong_kind",
        }
    }
}

impl fmt::Display for Rejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Trust(e) => write!(f, "{e}"),
            Self::WrongKind { actual, claimed } => write!(
                f,
                "the file holds a {}, not a {}",
                actual.as_str(),
                claimed.as_str()
            ),
        }
    }
}

// === impl Accepted ===

impl Accepted {
    fn print(self, args: &VerifyArgs) {
        if args.json {
            let mut json = fields([
                ("verdict", "accept".into()),
                ("kind", self.kind.as_str().into()),
                ("file", args.file.display().to_string().into()),
            ]);
            json.extend(self.json);
            println!("{}", Json::Object(json));
        } else {
            println!("ACCEPT {} {}", self.kind.as_str(), self.line);
        }
    }

    fn gid(v: &VerifiedGid) -> Self {
        let uuid = v.gid().uuid();
        Self {
            kind: Kind::Gid,
            line: format!(
                "{} uuid={} root={} expires={}",
                v.hrn(),
                uuid.unwrap_or("none"),
                v.root(),
                format_utc(v.expires())
            ),
            json: fields([
                ("subject", v.hrn().as_str().into()),
                ("uuid", uuid.into()),
                ("root", v.root().as_str().into()),
                ("expires", v.expires().into()),
            ]),
        }
    }

    fn credential(v: &VerifiedCredential, kind: Kind) -> Self {
        let root = v.root();
        let mut line = format!(
            "{} caller={} rights={} delegate={} root={root} expires={}",
            v.subject(),
            v.caller().hrn(),
            v.privileges(),
            v.delegate(),
            format_utc(v.expires())
        );
        let mut json = fields([
            ("subject", v.subject().into()),
            ("caller", v.caller().hrn().as_str().into()),
            ("object", v.object().hrn().as_str().into()),
            ("rights", v.privileges().to_string().into()),
            ("delegate", v.delegate().into()),
            ("root", root.as_str().into()),
            ("expires", v.expires().into()),
        ]);
        if let Some(g) = v.geni() {
            let privileges: Vec<&str> = g.privileges().iter().map(|p| p.name().as_str()).collect();
            line.push_str(&format!(
                " owner_urn={} target_urn={} chain={}",
                g.owner_urn(),
                g.target_urn(),
                g.chain_len()
            ));
            json.insert("owner_urn".into(), g.owner_urn().to_string().into());
            json.insert("target_urn".into(), g.target_urn().to_string().into());
            json.insert("privileges".into(), privileges.into());
            json.insert("chain".into(), g.chain_len().into());
        }
        Self { kind, line, json }
    }

    fn ticket(v: &VerifiedTicket) -> Self {
        let ticket = v.ticket();
        let node = ticket.target().map(Hrn::as_str);
        let root = v.root();
        Self {
            kind: Kind::Ticket,
            line: format!(
                "{} caller={} node={} root={root} expires={}",
                ticket.subject(),
                v.caller().hrn(),
                node.unwrap_or("any"),
                format_utc(v.expires())
            ),
            json: fields([
                ("subject", ticket.subject().into()),
                ("caller", v.caller().hrn().as_str().into()),
                ("object", v.object().hrn().as_str().into()),
                ("node", node.into()),
                ("root", root.as_str().into()),
                ("expires", v.expires().into()),
            ]),
        }
    }
}

fn fields<const N: usize>(pairs: [(&str, Json); N]) -> Map<String, Json> {
    pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}
