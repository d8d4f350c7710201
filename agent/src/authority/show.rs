//! `geni-agent authority show`: what a GID, credential or ticket file says, without judging it.
//!
//! The text form is the 2008 `dump()` layout from `geni-trust` (`CREDENTIAL <subject>`,
//! `      privs: …`, the design document's samples), with a `GID <hrn>` header for GIDs, which
//! 2008 printed bare. `--json` gives the same fields, plus the certificate facts an operator
//! debugging a peer needs (issuer, validity, signature algorithm, key size). Nothing here
//! verifies: that is `verify`, and the help says so.

use std::fs;
use std::io::{self, Write};
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use geni_trust::{Certificate, Credential, Gid, Hrn, ObjectKind, Ticket};
use serde_json::{Map, Value as Json, json};

use super::values::struct_to_json;
use crate::ExitCode;

#[derive(Debug, Args)]
pub(crate) struct ShowArgs {
    /// The GID, credential or ticket file (the kind is detected).
    #[arg(value_name = "FILE")]
    file: PathBuf,
    /// Also show each parent, up to the root.
    #[arg(long)]
    dump_parents: bool,
    /// Print the decoded fields as one JSON object instead.
    #[arg(long)]
    json: bool,
}

/// Prints FILE's fields. Any failure is an error (exit 2): `show` gives no verdict.
pub(super) fn run(args: &ShowArgs) -> anyhow::Result<ExitCode> {
    let path = args.file.display();
    let text = fs::read_to_string(&args.file).with_context(|| format!("reading {path}"))?;
    let kind = ObjectKind::detect(&text)
        .with_context(|| format!("{path} holds no GID, credential or ticket"))?;
    let parents = args.dump_parents;
    let out = match kind {
        ObjectKind::Credential => {
            let cred = Credential::parse(&text).with_context(|| format!("reading {path}"))?;
            if args.json {
                tagged("credential", credential_json(&cred, parents))
            } else {
                cred.dump(parents)
            }
        }
        ObjectKind::Gid => {
            let gid = Gid::parse(&text).with_context(|| format!("reading {path}"))?;
            if args.json {
                tagged("gid", gid_json(&gid, parents))
            } else {
                format!("GID {}\n{}", gid.hrn(), gid.dump(0, parents))
            }
        }
        ObjectKind::Ticket => {
            let ticket = Ticket::parse(&text).with_context(|| format!("reading {path}"))?;
            if args.json {
                tagged("ticket", ticket_json(&ticket, parents))
            } else {
                ticket.dump(parents)
            }
        }
    };
    let mut stdout = io::stdout().lock();
    stdout
        .write_all(out.as_bytes())
        .and_then(|()| stdout.flush())
        .context("writing to stdout")?;
    Ok(ExitCode::Success)
}

/// `{"kind": kind, …fields}` as one line.
fn tagged(kind: &str, fields: Map<String, Json>) -> String {
    let mut obj = Map::new();
    obj.insert("kind".into(), kind.into());
    obj.extend(fields);
    format!("{}\n", Json::Object(obj))
}

fn gid_json(gid: &Gid, parents: bool) -> Map<String, Json> {
    let mut obj = object(json!({
        "hrn": gid.hrn().as_str(),
        "uuid": gid.uuid(),
        "certificate": certificate_json(gid.certificate()),
    }));
    if let (Some(parent), true) = (gid.parent(), parents) {
        obj.insert("parent".into(), gid_json(parent, parents).into());
    }
    obj
}

fn embedded_gid_json(gid: Option<&Gid>, parents: bool) -> Json {
    gid.map_or(Json::Null, |g| gid_json(g, parents).into())
}

fn credential_json(cred: &Credential, parents: bool) -> Map<String, Json> {
    let mut obj = object(json!({
        "subject": cred.subject(),
        "privileges": cred.privileges().to_string(),
        "delegate": cred.delegate(),
        "lifetime": cred.lifetime(),
        "caller": embedded_gid_json(cred.caller(), parents),
        "object": embedded_gid_json(cred.object(), parents),
        "certificate": certificate_json(cred.certificate()),
    }));
    if let (Some(parent), true) = (cred.parent(), parents) {
        obj.insert("parent".into(), credential_json(parent, parents).into());
    }
    obj
}

fn ticket_json(ticket: &Ticket, parents: bool) -> Map<String, Json> {
    let mut obj = object(json!({
        "subject": ticket.subject(),
        "delegate": ticket.delegate(),
        "target": ticket.target().map(Hrn::as_str),
        "attributes": struct_to_json(ticket.attributes()),
        "rspec": struct_to_json(ticket.rspec()),
        "caller": embedded_gid_json(ticket.caller(), parents),
        "object": embedded_gid_json(ticket.object(), parents),
        "certificate": certificate_json(ticket.certificate()),
    }));
    if let (Some(parent), true) = (ticket.parent(), parents) {
        obj.insert("parent".into(), ticket_json(parent, parents).into());
    }
    obj
}

fn certificate_json(cert: &Certificate) -> Json {
    let validity = cert.validity();
    json!({
        "subject": cert.subject(),
        "issuer": cert.issuer(),
        "version": cert.version(),
        "serial": cert.serial(),
        "signature_algorithm": cert.signature_algorithm(),
        "key_bits": cert.public_key().bits(),
        "not_before": validity.not_before,
        "not_after": validity.not_after,
    })
}

/// The map inside a `json!({…})` literal.
fn object(value: Json) -> Map<String, Json> {
    match value {
        Json::Object(map) => map,
        // Only ever called on object literals.
        _ => Map::new(),
    }
}
