//! genicli's command line: the 2008 long options and commands (reference §4.5), our additions,
//! and the help text, parsed by hand so that names, `help` and the messages stay 2008's.
//!
//! Options are long only, as 2008's getopt took them, `--name value` or `--name=value`, and may
//! come before or after the command. Option names are accepted with `_` (2008: `--dump_parents`)
//! or `-` (`--dump-parents`).

use std::path::PathBuf;
use std::time::Duration;

use geni_trust::{Hrn, RecordType};

use super::error::CliError;

/// The server 2008's genicli talked to unless told otherwise.
pub const DEFAULT_SERVER: &str = "https://localhost:12345/";
/// The directory of trusted root GIDs used when it exists and nothing else says whom to trust.
pub const DEFAULT_TRUSTED_ROOTS: &str = "trusted_roots";
const DEFAULT_TIMEOUT_SECS: u64 = 60;

/// The options, with 2008's defaults.
#[derive(Debug, Clone)]
pub struct Options {
    /// Username (or hrn) of the caller; its last label names the default files.
    pub username: String,
    pub outfile: Option<PathBuf>,
    pub credfile: CredFile,
    pub keyfile: Option<PathBuf>,
    pub certfile: Option<PathBuf>,
    pub ticketfile: Option<PathBuf>,
    pub email: Option<String>,
    pub ip: Option<String>,
    pub dns: Option<String>,
    /// Researchers of a slice being registered or updated (`geni_info.researcher`).
    pub researchers: Vec<Hrn>,
    pub dump_parents: bool,
    pub server: String,
    pub filter: Option<String>,
    pub short: bool,
    pub json: bool,
    pub trusted_roots: Option<PathBuf>,
    pub server_gid: Option<PathBuf>,
    /// The hrn the server's GID must carry (checked with `--trusted_roots`).
    pub server_hrn: Option<Hrn>,
    pub danger_accept_any_server: bool,
    pub legacy_digests: bool,
    pub timeout: Duration,
}

/// Which credential the caller presents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredFile {
    /// `<leaf>.cred`, 2008's default.
    Default,
    /// `--credfile None`: no credential (getCredential then asks for a self-credential).
    None,
    Path(PathBuf),
}

/// The four slice operations that take only a credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SliceOp {
    Start,
    Stop,
    Reset,
    Delete,
}

/// A command with its arguments.
#[derive(Debug, Clone)]
pub enum Command {
    Help,
    Resolve {
        hrn: Hrn,
    },
    GetCredential {
        kind: RecordType,
        hrn: Hrn,
    },
    CreateKey {
        file: Option<PathBuf>,
    },
    CreateGid {
        hrn: Hrn,
        uuid: Option<String>,
        pubkey: PathBuf,
    },
    Register {
        kind: RecordType,
        hrn: Hrn,
        gid: PathBuf,
    },
    Remove {
        kind: RecordType,
        hrn: Hrn,
    },
    Update {
        kind: RecordType,
        hrn: Hrn,
    },
    List {
        hrn: Option<Hrn>,
    },
    GetTicket {
        hrn: Hrn,
        node: Option<Hrn>,
    },
    RedeemTicket {
        ticket: Option<PathBuf>,
    },
    Slice {
        op: SliceOp,
        hrn: Option<Hrn>,
    },
    ListSlices {
        hrn: Option<Hrn>,
    },
    DumpCredential {
        file: PathBuf,
    },
}

/// A parsed command line.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub options: Options,
    pub command: Command,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            username: "client".to_owned(),
            outfile: None,
            credfile: CredFile::Default,
            keyfile: None,
            certfile: None,
            ticketfile: None,
            email: None,
            ip: None,
            dns: None,
            researchers: Vec::new(),
            dump_parents: false,
            server: DEFAULT_SERVER.to_owned(),
            filter: None,
            short: false,
            json: false,
            trusted_roots: None,
            server_gid: None,
            server_hrn: None,
            danger_accept_any_server: false,
            legacy_digests: false,
            timeout: Duration::from_secs(DEFAULT_TIMEOUT_SECS),
        }
    }
}

impl SliceOp {
    /// The XML-RPC method.
    pub fn method(self) -> &'static str {
        match self {
            Self::Start => "start_slice",
            Self::Stop => "stop_slice",
            Self::Reset => "reset_slice",
            Self::Delete => "delete_slice",
        }
    }
}

impl Command {
    /// The command's name as typed.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Help => "help",
            Self::Resolve { .. } => "resolve",
            Self::GetCredential { .. } => "getCredential",
            Self::CreateKey { .. } => "createKey",
            Self::CreateGid { .. } => "createGid",
            Self::Register { .. } => "register",
            Self::Remove { .. } => "remove",
            Self::Update { .. } => "update",
            Self::List { .. } => "list",
            Self::GetTicket { .. } => "getTicket",
            Self::RedeemTicket { .. } => "redeemTicket",
            Self::Slice { op, .. } => match op {
                SliceOp::Start => "startSlice",
                SliceOp::Stop => "stopSlice",
                SliceOp::Reset => "resetSlice",
                SliceOp::Delete => "deleteSlice",
            },
            Self::ListSlices { .. } => "listSlices",
            Self::DumpCredential { .. } => "dumpCredential",
        }
    }
}

/// Options that take a value.
const VALUED: [&str; 16] = [
    "username",
    "outfile",
    "credfile",
    "keyfile",
    "certfile",
    "ticketfile",
    "email",
    "ip",
    "dns",
    "researcher",
    "server",
    "filter",
    "trusted_roots",
    "server_gid",
    "server_hrn",
    "timeout",
];

/// Options that are flags.
const FLAGS: [&str; 6] = [
    "help",
    "dump_parents",
    "short",
    "json",
    "danger_accept_any_server",
    "legacy_digests",
];

/// Parses the arguments after the program name.
pub fn parse(args: &[String]) -> Result<Invocation, CliError> {
    let mut options = Options::default();
    let mut words: Vec<String> = Vec::new();
    let mut help = false;
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        if arg == "--" {
            words.extend(iter.by_ref().cloned());
            break;
        }
        let Some(long) = arg.strip_prefix("--") else {
            if arg.starts_with('-') && arg.len() > 1 {
                return Err(CliError::usage(format!(
                    "unknown option {arg}: genicli takes long options only (--username, --server, …)"
                )));
            }
            words.push(arg.clone());
            continue;
        };
        let (name, inline) = match long.split_once('=') {
            Some((n, v)) => (n.replace('-', "_"), Some(v.to_owned())),
            None => (long.replace('-', "_"), None),
        };
        if FLAGS.contains(&name.as_str()) {
            if inline.is_some() {
                return Err(CliError::usage(format!("--{name} takes no value")));
            }
            match name.as_str() {
                "help" => help = true,
                "dump_parents" => options.dump_parents = true,
                "short" => options.short = true,
                "json" => options.json = true,
                "danger_accept_any_server" => options.danger_accept_any_server = true,
                _ => options.legacy_digests = true,
            }
            continue;
        }
        if !VALUED.contains(&name.as_str()) {
            return Err(CliError::usage(format!("unknown option --{name}")));
        }
        let value = match inline {
            Some(v) => v,
            None => iter
                .next()
                .cloned()
                .ok_or_else(|| CliError::usage(format!("--{name} needs a value")))?,
        };
        set_option(&mut options, &name, value)?;
    }
    if help {
        return Ok(Invocation {
            options,
            command: Command::Help,
        });
    }
    let command = command(&words)?;
    Ok(Invocation { options, command })
}

fn set_option(o: &mut Options, name: &str, value: String) -> Result<(), CliError> {
    if value.is_empty() {
        return Err(CliError::usage(format!("--{name} needs a non-empty value")));
    }
    match name {
        "username" => o.username = value,
        "outfile" => o.outfile = Some(value.into()),
        "credfile" => {
            o.credfile = if value == "None" {
                CredFile::None
            } else {
                CredFile::Path(value.into())
            };
        }
        "keyfile" => o.keyfile = Some(value.into()),
        "certfile" => o.certfile = Some(value.into()),
        "ticketfile" => o.ticketfile = Some(value.into()),
        "email" => o.email = Some(value),
        "ip" => o.ip = Some(value),
        "dns" => o.dns = Some(value),
        "researcher" => {
            for h in value.split(',').filter(|h| !h.is_empty()) {
                o.researchers.push(hrn(h)?);
            }
        }
        "server" => o.server = value,
        "filter" => {
            value.parse::<RecordType>().map_err(|_| {
                CliError::usage(format!(
                    "--filter {value}: expected a record type (user, slice, sa, ma, node)"
                ))
            })?;
            o.filter = Some(value);
        }
        "trusted_roots" => o.trusted_roots = Some(value.into()),
        "server_gid" => o.server_gid = Some(value.into()),
        "server_hrn" => o.server_hrn = Some(hrn(&value)?),
        _ => {
            let secs: u64 = value
                .parse()
                .ok()
                .filter(|s| (1..=3600).contains(s))
                .ok_or_else(|| {
                    CliError::usage(format!("--timeout {value}: expected seconds, 1 to 3600"))
                })?;
            o.timeout = Duration::from_secs(secs);
        }
    }
    Ok(())
}

/// The command word and its arguments.
fn command(words: &[String]) -> Result<Command, CliError> {
    let Some((name, args)) = words.split_first() else {
        return Err(CliError::usage("no operation specified"));
    };
    let syntax = |s: &str| CliError::usage(format!("syntax: {s}"));
    let want = |n: usize, s: &str| -> Result<(), CliError> {
        if args.len() == n {
            Ok(())
        } else {
            Err(syntax(s))
        }
    };
    let at_most = |n: usize, s: &str| -> Result<(), CliError> {
        if args.len() <= n {
            Ok(())
        } else {
            Err(syntax(s))
        }
    };
    let cmd = match name.as_str() {
        "help" => Command::Help,
        "resolve" => {
            want(1, "resolve <hrn>")?;
            Command::Resolve {
                hrn: hrn(&args[0])?,
            }
        }
        "getCredential" => {
            want(2, "getCredential <type> <hrn>")?;
            Command::GetCredential {
                kind: kind(&args[0])?,
                hrn: hrn(&args[1])?,
            }
        }
        "createKey" => {
            at_most(1, "createKey [<filename>]")?;
            Command::CreateKey {
                file: args.first().map(PathBuf::from),
            }
        }
        "createGid" => {
            want(3, "createGid <hrn> <uuid|None> <pubkey_fn>")?;
            let uuid = match args[1].as_str() {
                "None" => None,
                u if !u.is_empty() && u.bytes().all(|b| b.is_ascii_digit()) => Some(u.to_owned()),
                u => {
                    return Err(CliError::usage(format!(
                        "createGid: the uuid {u:?} must be a decimal number or None"
                    )));
                }
            };
            Command::CreateGid {
                hrn: hrn(&args[0])?,
                uuid,
                pubkey: PathBuf::from(&args[2]),
            }
        }
        "register" => {
            want(3, "register <type> <hrn> <gid_filename>")?;
            Command::Register {
                kind: kind(&args[0])?,
                hrn: hrn(&args[1])?,
                gid: PathBuf::from(&args[2]),
            }
        }
        "remove" => {
            want(2, "remove <type> <hrn>")?;
            Command::Remove {
                kind: kind(&args[0])?,
                hrn: hrn(&args[1])?,
            }
        }
        "update" => {
            want(2, "update <type> <hrn>")?;
            Command::Update {
                kind: kind(&args[0])?,
                hrn: hrn(&args[1])?,
            }
        }
        "list" => {
            at_most(1, "list [<hrn>]")?;
            Command::List {
                hrn: args.first().map(|a| hrn(a)).transpose()?,
            }
        }
        "getTicket" => {
            if args.is_empty() {
                return Err(syntax("getTicket <hrn> [<node hrn>]"));
            }
            at_most(2, "getTicket <hrn> [<node hrn>]")?;
            Command::GetTicket {
                hrn: hrn(&args[0])?,
                node: args.get(1).map(|a| hrn(a)).transpose()?,
            }
        }
        "redeemTicket" => {
            at_most(1, "redeemTicket [<ticket_filename>] (or --ticketfile)")?;
            Command::RedeemTicket {
                ticket: args.first().map(PathBuf::from),
            }
        }
        "startSlice" | "stopSlice" | "resetSlice" | "deleteSlice" => {
            let op = match name.as_str() {
                "startSlice" => SliceOp::Start,
                "stopSlice" => SliceOp::Stop,
                "resetSlice" => SliceOp::Reset,
                _ => SliceOp::Delete,
            };
            at_most(1, &format!("{name} [<slice hrn>]"))?;
            Command::Slice {
                op,
                hrn: args.first().map(|a| hrn(a)).transpose()?,
            }
        }
        "listSlices" => {
            at_most(1, "listSlices [<slice hrn>]")?;
            Command::ListSlices {
                hrn: args.first().map(|a| hrn(a)).transpose()?,
            }
        }
        // `dumpGid` is the later 2008 client's name for the same thing on GIDs.
        "dumpCredential" | "dumpGid" => {
            want(1, &format!("{name} <filename>"))?;
            Command::DumpCredential {
                file: PathBuf::from(&args[0]),
            }
        }
        other => {
            return Err(CliError::usage(format!("unknown operation: {other}")));
        }
    };
    Ok(cmd)
}

fn hrn(s: &str) -> Result<Hrn, CliError> {
    Hrn::parse(s).map_err(|e| CliError::usage(e.to_string()))
}

fn kind(s: &str) -> Result<RecordType, CliError> {
    s.parse().map_err(|_| {
        CliError::usage(format!(
            "unknown record type {s:?}: expected user, slice, sa, ma or node"
        ))
    })
}

/// `genicli help`: 2008's `showhelp()` layout, with our additions and what the exit status means.
pub const HELP: &str = "\
syntax: genicli <options> command <args>
options:
    --username       ... username (or hrn) of user making call [client]
    --outfile        ... save response to a file
    --credfile       ... credential of user making call (or 'None') [<leaf>.cred]
    --keyfile        ... private key file of user making call [<leaf>.pkey]
    --certfile       ... TLS certificate for the key, made on first use [<leaf>.cert]
    --ticketfile     ... filename of ticket (for redeemTicket)
    --email          ... email address (for registering users)
    --ip             ... IP address (for registering nodes)
    --dns            ... DNS address (for registering nodes)
    --researcher     ... researcher hrn(s), comma-separated (for registering or updating slices)
    --dump_parents   ... dump parents
    --server         ... geni server (registry/component) to connect to [https://localhost:12345/]
    --filter <type>  ... filter the results of a list operation (user | slice | node ...)
    --short          ... list records in short format (name only)
    --json           ... print the result (or the error) as one JSON object
    --trusted_roots  ... directory of root GIDs the server's GID must chain to [./trusted_roots]
    --server_gid     ... the server's own GID (or certificate): trust exactly its key
    --server_hrn     ... the hrn the server's GID must carry under --trusted_roots [registry
                         commands: any authority over --username; redeemTicket: the node the
                         ticket names; other node commands: required]
    --danger_accept_any_server
                     ... trust whatever server answers (2008's behaviour; anyone on the path
                         can then pose as the server)
    --legacy_digests ... accept md5/sha1 signatures in the server's GID chain (2008 trees)
    --timeout        ... seconds to wait for the server [60]
commands:
    resolve <hrn>
    dumpCredential <filename>       (a credential, GID or ticket; also dumpGid)
    getCredential <type> <hrn>      (a self-credential with --credfile None or no <leaf>.cred)
    list [<hrn>]
    createKey [<filename>]
    createGid <hrn> <uuid|None> <pubkey_fn>
    register <type> <hrn> <gid_filename>
    remove <type> <hrn>
    update <type> <hrn>
    getTicket <hrn> [<node hrn>]    (a ticket only that node accepts, when a node is named)
    redeemTicket                    (with --ticketfile; against a node)
    startSlice, stopSlice, resetSlice, deleteSlice, listSlices   (against a node)
    help

<leaf> is the last dotted label of --username: --username planetlab.us.pl.alice uses alice.pkey,
alice.cert and alice.cred. createKey writes <leaf>.pkey (mode 0600, never overwritten); the
self-signed <leaf>.cert is made from the key when a command first needs it. The same client talks
to the plc (registry and slice interface) and to a node (component interface): the command
decides which methods are called, --server where they go.

Server authentication: genicli talks only to a server that proves who it is. With --server_gid the
server must hold exactly that GID's key; otherwise its certificate must be a GID that verifies
against the roots in --trusted_roots (./trusted_roots when that directory exists) and names the
server genicli expects: --server_hrn when given; else, for the registry, an authority over
--username; for redeemTicket, the node the ticket names; for the other node commands genicli asks
for --server_hrn <node hrn>. With neither, genicli refuses, unless --danger_accept_any_server says
to trust any server.

Exit status: 0 success; 1 the server refused the operation (fault) or it could not be done;
2 usage error; 3 a local file is missing or unusable; 4 the server could not be reached, did not
prove who it is, or did not answer in XML-RPC.
";

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn the_2008_command_lines_parse() {
        let i = parse(&args(
            "--username test --credfile None --outfile test.cred getCredential user planetlab.us.pl.account_test",
        ))
        .unwrap();
        assert_eq!(i.options.username, "test");
        assert_eq!(i.options.credfile, CredFile::None);
        assert_eq!(i.options.outfile, Some(PathBuf::from("test.cred")));
        assert!(matches!(
            i.command,
            Command::GetCredential { kind: RecordType::User, ref hrn } if hrn.as_str() == "planetlab.us.pl.account_test"
        ));

        let i = parse(&args(
            "--server=https://198.0.0.131:12345/ --username tmack --ticketfile testcw.ticket redeemTicket",
        ))
        .unwrap();
        assert_eq!(i.options.server, "https://198.0.0.131:12345/");
        assert_eq!(i.options.ticketfile, Some(PathBuf::from("testcw.ticket")));
        assert!(matches!(i.command, Command::RedeemTicket { ticket: None }));

        let i = parse(&args("createGid planetlab.us.pl.testcw None testcw.pkey")).unwrap();
        assert!(matches!(i.command, Command::CreateGid { uuid: None, .. }));
        assert_eq!(i.options.server, DEFAULT_SERVER);
        assert_eq!(i.options.credfile, CredFile::Default);
    }

    #[test]
    fn options_may_follow_the_command_and_use_dashes() {
        let i = parse(&args("dumpCredential x.cred --dump-parents --json")).unwrap();
        assert!(i.options.dump_parents && i.options.json);
        assert!(matches!(i.command, Command::DumpCredential { .. }));
        let i = parse(&args("--help resolve")).unwrap();
        assert!(matches!(i.command, Command::Help));
    }

    #[test]
    fn mistakes_are_usage_errors_that_say_what_is_wrong() {
        for (line, says) in [
            ("", "no operation specified"),
            ("resolve", "syntax: resolve <hrn>"),
            ("getCredential user", "syntax: getCredential <type> <hrn>"),
            ("getCredential person a.b", "unknown record type"),
            ("frobnicate", "unknown operation: frobnicate"),
            ("--username", "--username needs a value"),
            ("--verbose list", "unknown option --verbose"),
            ("-u x list", "long options only"),
            ("--filter people list", "expected a record type"),
            ("createGid a.b 12ab k.pkey", "decimal number or None"),
            ("resolve a..b", "invalid hrn"),
            ("--timeout 0 list", "--timeout"),
            ("--json=1 list", "takes no value"),
        ] {
            let e = parse(&args(line)).unwrap_err();
            assert!(matches!(e, CliError::Usage(_)), "{line}: {e:?}");
            assert!(e.to_string().contains(says), "{line}: {e}");
        }
    }
}
