//! What each genicli command does (2008 `genicli.py`'s `main()`, reference §4.5), producing its
//! human text (the 2008 `RESULT:` / `dump()` layout) and its `--json` object together.

use std::io::Write;

use geni_trust::{Credential, Gid, ObjectKind, PublicKey, RecordType, Ticket};
use geni_xmlrpc::{Struct, Value};
use serde_json::{Value as Json, json};

use super::args::{Command, HELP, Invocation, Options, SliceOp};
use super::auth::{Expected, server_trust};
use super::error::CliError;
use super::files::{self, Files, Wire};
use super::record::Record;
use super::session::Session;
use super::{dump, json};

/// A command's result, in both output forms.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub human: String,
    pub json: Json,
}

impl Outcome {
    fn new(human: String, json: Json) -> Self {
        Self { human, json }
    }
}

/// Runs one command. `notes` receives side remarks that are not the result (a certificate made
/// on first use), which the binary sends to stderr.
pub async fn execute(inv: &Invocation, notes: &mut dyn Write) -> Result<Outcome, CliError> {
    let o = &inv.options;
    let files = Files::from_options(o);
    let parents = o.dump_parents;
    match &inv.command {
        Command::Help => Ok(Outcome::new(HELP.to_owned(), json!({ "help": HELP }))),
        Command::DumpCredential { file } => dump_file(file, parents),
        Command::CreateKey { file } => {
            let path = file.clone().unwrap_or_else(|| files.key.clone());
            files::create_key(&path)?;
            Ok(Outcome::new(
                format!("writing private key to {}\n", path.display()),
                json!({ "keyfile": path }),
            ))
        }
        Command::Resolve { hrn } => {
            let session = connect(o, &files, notes, registry(o)?)?;
            let cred = need_credential(&files, "resolve")?;
            let records = session.resolve(&cred.text, hrn).await?;
            Ok(records_outcome(&records, parents, false, true))
        }
        Command::GetCredential { kind, hrn } => {
            let session = connect(o, &files, notes, registry(o)?)?;
            let got = match caller_credential_or_self(&files)? {
                Some(cred) => session.get_credential(&cred.text, *kind, hrn).await?,
                None => session.get_self_credential(*kind, hrn).await?,
            };
            credential_outcome(o, &got, parents)
        }
        Command::List { hrn } => {
            let session = connect(o, &files, notes, registry(o)?)?;
            let cred = need_credential(&files, "list")?;
            let mut records = session.list(&cred.text, hrn.as_ref()).await?;
            if records.is_empty() {
                return Ok(records_outcome(&records, parents, o.short, false));
            }
            if let Some(kind) = &o.filter {
                records.retain(|r| r.kind() == kind);
            }
            Ok(records_outcome(&records, parents, o.short, false))
        }
        Command::CreateGid { hrn, uuid, pubkey } => {
            let session = connect(o, &files, notes, registry(o)?)?;
            let cred = need_credential(&files, "createGid")?;
            let key = PublicKey::load(pubkey).map_err(|e| {
                CliError::file(
                    e.to_string(),
                    Some("give a public key (PEM) or a private key file".to_owned()),
                )
            })?;
            let pem = key
                .to_pem()
                .ok()
                .and_then(|p| String::from_utf8(p).ok())
                .ok_or_else(|| CliError::file("encoding the public key failed", None))?;
            let gid = session
                .create_gid(&cred.text, hrn, uuid.as_deref(), &pem)
                .await?;
            gid_outcome(o, &gid, parents)
        }
        Command::Register { kind, hrn, gid } => {
            let geni_info = register_info(o, *kind)?;
            let session = connect(o, &files, notes, registry(o)?)?;
            let cred = need_credential(&files, "register")?;
            let gid_file = files::load_gid(gid)?;
            if gid_file.value.hrn() != hrn {
                return Err(CliError::usage(format!(
                    "{} is the GID of {}, not of {hrn}",
                    gid.display(),
                    gid_file.value.hrn()
                )));
            }
            let record = Record::new_for_register(hrn, *kind, &gid_file.text, geni_info)
                .map_err(|m| CliError::file(format!("{}: {m}", gid.display()), None))?;
            let registered = session.register(&cred.text, &record).await?;
            gid_outcome(o, &registered, parents)
        }
        Command::Remove { kind, hrn } => {
            let session = connect(o, &files, notes, registry(o)?)?;
            let cred = need_credential(&files, "remove")?;
            let matching = matching_records(&session, &cred.text, *kind, hrn).await?;
            let mut human = String::new();
            for record in &matching {
                session.remove(&cred.text, record).await?;
                human.push_str(&format!("RESULT:\nremoved {kind} {hrn}\n"));
            }
            Ok(Outcome::new(
                human,
                json!({ "removed": { "type": kind.as_str(), "hrn": hrn.as_str() } }),
            ))
        }
        Command::Update { kind, hrn } => {
            let session = connect(o, &files, notes, registry(o)?)?;
            let cred = need_credential(&files, "update")?;
            let matching = matching_records(&session, &cred.text, *kind, hrn).await?;
            let mut human = String::new();
            for mut record in matching {
                for (name, value) in [("email", &o.email), ("ip", &o.ip), ("dns", &o.dns)] {
                    if let Some(v) = value {
                        record.set_geni_info(name, v.as_str());
                    }
                }
                if !o.researchers.is_empty() {
                    record.set_geni_info("researcher", researcher_list(o));
                }
                session.update(&cred.text, &record).await?;
                human.push_str(&format!("RESULT:\nupdated {kind} {hrn}\n"));
            }
            Ok(Outcome::new(
                human,
                json!({ "updated": { "type": kind.as_str(), "hrn": hrn.as_str() } }),
            ))
        }
        Command::GetTicket { hrn, node } => {
            let session = connect(o, &files, notes, registry(o)?)?;
            let cred = need_credential(&files, "getTicket")?;
            let ticket = session.get_ticket(&cred.text, hrn, node.as_ref()).await?;
            save(o, &ticket.text)?;
            Ok(Outcome::new(
                format!("RESULT:\n{}", dump::ticket(&ticket.value, parents)),
                with_outfile(o, json::ticket(&ticket.value, parents)),
            ))
        }
        Command::RedeemTicket { ticket } => {
            let path = ticket.as_ref().or(o.ticketfile.as_ref()).ok_or_else(|| {
                CliError::usage("redeemTicket needs the ticket: --ticketfile <filename>")
            })?;
            let ticket = files::load_ticket(path)?;
            // The node the ticket is for, when it names one.
            let node = ticket
                .value
                .target()
                .map_or(Expected::Unknown, |t| Expected::Exactly(t.clone()));
            let session = connect(o, &files, notes, node)?;
            match session.redeem_ticket(&ticket.text).await? {
                Some(sliver) => credential_outcome(o, &sliver, parents),
                None => Ok(Outcome::new("RESULT: None\n".to_owned(), Json::Null)),
            }
        }
        Command::Slice { op, hrn } => {
            let name = inv.command.name();
            let session = connect(o, &files, notes, Expected::Unknown)?;
            let cred = need_credential(&files, name)?;
            let value = session.slice_op(*op, &cred.text, hrn.as_ref()).await?;
            let target = hrn
                .as_ref()
                .map_or_else(|| slice_of(&cred.value), |h| h.as_str().to_owned());
            let done = match op {
                SliceOp::Start => "started",
                SliceOp::Stop => "stopped",
                SliceOp::Reset => "reset",
                SliceOp::Delete => "deleted",
            };
            Ok(Outcome::new(
                format!("RESULT:\n{done} {target}\n"),
                json!({ "slice": target, "done": done, "returned": json::value(&value) }),
            ))
        }
        Command::ListSlices { hrn } => {
            let session = connect(o, &files, notes, Expected::Unknown)?;
            let cred = need_credential(&files, "listSlices")?;
            let slivers = session.list_slices(&cred.text, hrn.as_ref()).await?;
            let names: Vec<String> = slivers.iter().map(dump::sliver_name).collect();
            save(o, &names.join("\n"))?;
            let mut human = String::from("RESULT:\n");
            for s in &slivers {
                human.push_str(&dump::sliver(s));
                human.push('\n');
            }
            let listed = Json::Array(slivers.iter().map(json::value).collect());
            Ok(Outcome::new(human, with_outfile(o, listed)))
        }
    }
}

/// What a registry command expects at `--server`: an authority over the user (the registry's
/// own authority is one; no user, slice or node GID is).
fn registry(o: &Options) -> Result<Expected, CliError> {
    let user = o
        .username
        .parse()
        .map_err(|e| CliError::usage(format!("--username {}: {e}", o.username)))?;
    Ok(Expected::AuthorityOf(user))
}

/// A session with `--server` expected to be `expected`, after the key, the client certificate
/// and server trust are in order.
pub fn connect(
    o: &Options,
    files: &Files,
    notes: &mut dyn Write,
    expected: Expected,
) -> Result<Session, CliError> {
    let (identity, created) = files.client_identity()?;
    if created {
        let _ = writeln!(
            notes,
            "writing self-signed cert to {}",
            files.cert.display()
        );
    }
    let trust = server_trust(o, expected)?;
    tracing::debug!(server = %o.server, trust = %trust.basis, "Connecting");
    Session::new(&o.server, identity, trust.auth, o.timeout)
}

/// The credential a command presents; a usage error under `--credfile None`.
fn need_credential(files: &Files, command: &str) -> Result<Wire<Credential>, CliError> {
    files.load_credential()?.ok_or_else(|| {
        CliError::usage(format!(
            "{command} needs a credential, and --credfile None gives none"
        ))
    })
}

/// getCredential's caller credential: none (a self-credential is asked for) with `--credfile
/// None`, or when the default `<leaf>.cred` does not exist yet.
fn caller_credential_or_self(files: &Files) -> Result<Option<Wire<Credential>>, CliError> {
    match &files.cred {
        Some(path) if files.cred_is_default && !path.exists() => Ok(None),
        _ => files.load_credential(),
    }
}

/// The records at `hrn` of `kind`, saying which part did not match when none does.
async fn matching_records(
    session: &Session,
    cred: &str,
    kind: RecordType,
    hrn: &geni_trust::Hrn,
) -> Result<Vec<Record>, CliError> {
    let records = session.resolve(cred, hrn).await?;
    if records.is_empty() {
        return Err(CliError::refused(
            format!("no records match {hrn}"),
            Some("list shows the records under an authority".to_owned()),
        ));
    }
    let found: Vec<String> = records.iter().map(|r| r.kind().to_owned()).collect();
    let matching: Vec<Record> = records
        .into_iter()
        .filter(|r| r.kind() == kind.as_str())
        .collect();
    if matching.is_empty() {
        return Err(CliError::refused(
            format!(
                "records match {hrn}, but no records match type {kind} (found: {})",
                found.join(", ")
            ),
            None,
        ));
    }
    Ok(matching)
}

/// 2008's register rules: users need `--email`, nodes `--ip` and `--dns`.
fn register_info(o: &Options, kind: RecordType) -> Result<Struct, CliError> {
    let mut info = Struct::new();
    match kind {
        RecordType::User => {
            let email = o.email.as_deref().ok_or_else(|| {
                CliError::usage("must specify --email <addr> when registering users")
            })?;
            info.insert("email", email);
        }
        RecordType::Node => {
            let ip = o.ip.as_deref().ok_or_else(|| {
                CliError::usage("must specify --ip <addr> when registering nodes")
            })?;
            let dns = o.dns.as_deref().ok_or_else(|| {
                CliError::usage("must specify --dns <addr> when registering nodes")
            })?;
            info.insert("ip", ip);
            info.insert("dns", dns);
        }
        RecordType::Slice => {
            if !o.researchers.is_empty() {
                info.insert("researcher", researcher_list(o));
            }
        }
        RecordType::Sa | RecordType::Ma => {}
    }
    if kind != RecordType::Slice && !o.researchers.is_empty() {
        return Err(CliError::usage("--researcher is for slices"));
    }
    Ok(info)
}

fn researcher_list(o: &Options) -> Value {
    Value::Array(
        o.researchers
            .iter()
            .map(|h| Value::from(h.as_str()))
            .collect(),
    )
}

/// The slice a credential acts on, for messages.
fn slice_of(cred: &Credential) -> String {
    cred.object()
        .map_or_else(|| cred.subject().to_owned(), |g| g.hrn().to_string())
}

fn records_outcome(records: &[Record], parents: bool, short: bool, each: bool) -> Outcome {
    let mut human = String::new();
    if records.is_empty() {
        human.push_str("NO RESULT\n");
    } else if each {
        // resolve: 2008 printed RESULT: before every record.
        for r in records {
            human.push_str("RESULT:\n");
            human.push_str(&dump::record(r, parents));
        }
    } else {
        // list: once, then each record (or its name with --short).
        human.push_str("RESULT:\n");
        for r in records {
            if short {
                human.push_str(&format!("   {}\n", r.name()));
            } else {
                human.push_str(&dump::record(r, parents));
            }
        }
    }
    let listed = records.iter().map(|r| json::record(r, parents)).collect();
    Outcome::new(human, Json::Array(listed))
}

fn credential_outcome(
    o: &Options,
    cred: &Wire<Credential>,
    parents: bool,
) -> Result<Outcome, CliError> {
    save(o, &cred.text)?;
    Ok(Outcome::new(
        format!("RESULT:\n{}", dump::credential(&cred.value, parents)),
        with_outfile(o, json::credential(&cred.value, parents)),
    ))
}

fn gid_outcome(o: &Options, gid: &Wire<Gid>, parents: bool) -> Result<Outcome, CliError> {
    save(o, &gid.text)?;
    Ok(Outcome::new(
        format!("RESULT:\n{}", dump::gid(&gid.value, parents)),
        with_outfile(o, json::gid(&gid.value, parents)),
    ))
}

/// `dumpCredential FILE`: whatever the file holds, dumped; nothing is verified.
fn dump_file(path: &std::path::Path, parents: bool) -> Result<Outcome, CliError> {
    let text = std::fs::read_to_string(path).map_err(|e| CliError::io("reading", path, &e))?;
    let kind = ObjectKind::detect(&text).map_err(|e| {
        CliError::file(
            format!("{} holds no credential, GID or ticket: {e}", path.display()),
            None,
        )
    })?;
    let unreadable =
        |e: geni_trust::TrustError| CliError::file(format!("{}: {e}", path.display()), None);
    Ok(match kind {
        ObjectKind::Credential => {
            let c = Credential::parse(&text).map_err(unreadable)?;
            Outcome::new(dump::credential(&c, parents), json::credential(&c, parents))
        }
        ObjectKind::Gid => {
            let g = Gid::parse(&text).map_err(unreadable)?;
            let mut j = json::gid(&g, parents);
            if let Json::Object(m) = &mut j {
                m.insert("kind".into(), "gid".into());
            }
            Outcome::new(dump::gid(&g, parents), j)
        }
        ObjectKind::Ticket => {
            let t = Ticket::parse(&text).map_err(unreadable)?;
            Outcome::new(dump::ticket(&t, parents), json::ticket(&t, parents))
        }
    })
}

/// `--outfile`: the object's text as received.
fn save(o: &Options, text: &str) -> Result<(), CliError> {
    match &o.outfile {
        Some(path) => files::write_output(path, text),
        None => Ok(()),
    }
}

fn with_outfile(o: &Options, mut result: Json) -> Json {
    if let (Some(path), Json::Object(m)) = (&o.outfile, &mut result) {
        m.insert("outfile".into(), path.display().to_string().into());
    }
    result
}
