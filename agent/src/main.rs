//! `geni-agent`: the node and PLC-side daemon of geni-agent and its operator tools.
//!
//! This file owns only the process: it parses flags, sets up logging (journald under systemd,
//! stderr otherwise), hands the
//! subcommand to the module that owns it, and turns the outcome into an exit code. Everything
//! that decides anything lives in the libraries (`geni-trust`, `geni-xmlrpc`) or in the
//! subcommand's module, so that the same code serves every mode (DESIGN §2: binaries are thin).
#![forbid(unsafe_code)]

mod auth;
mod authority;
mod config;
mod daemon;
mod demo;
mod node;
mod notify;
mod plc;

use std::io::IsTerminal;
use std::process;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

/// The static build links musl, whose malloc (mallocng) serialises every call on one lock and
/// hands freed memory back to the kernel at once: under load the node made ~25x glibc's futex
/// calls and ~3 mmap + munmap pairs per request, and redeeming a ticket cost 1.7x glibc's CPU.
/// mimalloc takes that to 1.25x (the rest is musl's byte-wise memcmp and `rep movs` memcpy);
/// glibc builds keep glibc's malloc.
#[cfg(target_env = "musl")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The environment variable holding the log filter (`tracing-subscriber` `EnvFilter` syntax).
const LOG_ENV: &str = "GENI_LOG";

#[derive(Debug, Parser)]
#[command(
    name = "geni-agent",
    version,
    about = "GENI wrapper for PlanetLab: node and PLC-side daemon, and authority tools",
    after_help = "Exit status: 0 success (or `verify` accepted), 1 `verify` rejected, \
                  2 usage or I/O error, or a failed operation.\n\
                  Logs go to stderr; set GENI_LOG (e.g. GENI_LOG=debug) to change the level."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Offline tools for an authority tree: create authorities, keys, GIDs, credentials and
    /// tickets; verify and show them.
    Authority(authority::AuthorityArgs),
    /// The whole system on this machine: a registry and a node on loopback, and the canonical
    /// genicli flow against them, with a slice whose initscript really runs.
    Demo(demo::DemoArgs),
    /// Run the component interface on this node: redeem tickets, start, stop, reset and delete
    /// slivers for callers whose credentials verify against the trusted roots.
    Node(node::NodeArgs),
    /// The PLC side: the registry and slice interface (`plc serve`), its authorities and
    /// database (`plc init`), and the admin commands for sites, persons, slices and nodes.
    Plc(plc::PlcArgs),
}

/// How `geni-agent` ends. Scripts and tests depend on these values, so they never change
/// meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ExitCode {
    /// The command did what was asked; for `verify`, the object was accepted.
    Success,
    /// `verify` rejected the object; the reason is on stderr.
    Reject,
    /// Bad usage, unreadable input, or an operation that failed. Nothing was decided about an
    /// object.
    Error,
}

impl From<ExitCode> for process::ExitCode {
    fn from(code: ExitCode) -> Self {
        match code {
            ExitCode::Success => Self::SUCCESS,
            ExitCode::Reject => Self::from(1),
            ExitCode::Error => Self::from(2),
        }
    }
}

fn main() -> process::ExitCode {
    // The NodeManager backend's short-lived helper: runs as a sliver's account with no
    // environment, connects its stdin socket to NodeManager and exits. Nothing else may run first.
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some(nm_bridge::nodemanager::HELPER_SUBCOMMAND) {
        return nm_bridge::nodemanager::connect_helper_main(args.get(2..).unwrap_or_default());
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // `--help` and `--version` arrive here too; clap knows which stream each belongs on,
            // and that tells a request for help from a usage error.
            let _ = e.print();
            let code = if e.use_stderr() {
                ExitCode::Error
            } else {
                ExitCode::Success
            };
            return code.into();
        }
    };
    let daemon = match &cli.command {
        Command::Node(_) => true,
        Command::Plc(args) => args.is_daemon(),
        Command::Authority(_) | Command::Demo(_) => false,
    };
    init_logging(daemon);
    let outcome = match cli.command {
        Command::Authority(args) => authority::run(args),
        Command::Demo(args) => demo::run(&args),
        Command::Node(args) => node::run(&args),
        Command::Plc(args) => plc::run(args),
    };
    match outcome {
        Ok(code) => code.into(),
        Err(e) => {
            eprintln!("error: {}", render(&e));
            ExitCode::Error.into()
        }
    }
}

/// The error and its causes on one line, `a: b: c`. A cause whose text already ends the line is
/// skipped: some library errors print their source in their own message *and* report it as
/// their source, and `{:#}` would then say everything twice.
fn render(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if line.ends_with(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

/// journald when systemd started us (it sets `JOURNAL_STREAM` and the journal socket exists),
/// stderr otherwise. Daemons log at info by default, tools at warn.
fn init_logging(daemon: bool) {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let default = if daemon { "info" } else { "warn" };
    let filter = EnvFilter::try_from_env(LOG_ENV).unwrap_or_else(|_| EnvFilter::new(default));
    let journald = std::env::var_os("JOURNAL_STREAM")
        .and_then(|_| tracing_journald::layer().ok())
        .map(|l| l.with_syslog_identifier("geni-agent".into()));
    // A second subscriber cannot exist in this process; ignoring the error keeps that a non-issue
    // rather than a panic.
    let _ = match journald {
        Some(layer) => tracing_subscriber::registry()
            .with(filter)
            .with(layer)
            .try_init(),
        None => tracing_subscriber::registry()
            .with(filter)
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(std::io::stderr)
                    .with_ansi(std::io::stderr().is_terminal()),
            )
            .try_init(),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An error that prints its source and also reports it, as some library errors do.
    #[derive(Debug)]
    struct Echo(std::io::Error);

    impl std::fmt::Display for Echo {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "x.gid: {}", self.0)
        }
    }

    impl std::error::Error for Echo {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn repeated_causes_are_said_once() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "gone");
        let e = anyhow::Error::new(Echo(io)).context("reading --pubkey");
        assert_eq!(render(&e), "reading --pubkey: x.gid: gone");
    }

    #[test]
    fn exit_codes_are_stable() {
        assert_eq!(
            process::ExitCode::from(ExitCode::Success),
            process::ExitCode::SUCCESS
        );
        assert_eq!(
            process::ExitCode::from(ExitCode::Reject),
            process::ExitCode::from(1)
        );
        assert_eq!(
            process::ExitCode::from(ExitCode::Error),
            process::ExitCode::from(2)
        );
    }
}
