//! genicli, the researcher's client (DESIGN §8), as a library: the `genicli` binary is a thin
//! wrapper over [`main`], and `geni-agent demo` drives the same flow through [`Session`] and the
//! [`dump`] layouts.
//!
//! It keeps every command and long option of the 2008 `genicli.py` (reference §4.5) and its
//! output (`RESULT:`, `CREDENTIAL …`, `RECORD …`), the 2008 default files, and adds `--json`, a
//! `dumpCredential` that dumps, server authentication ([`auth`]) and exit statuses that tell
//! failures apart ([`ExitStatus`]). Every failure is a [`CliError`] that says what to do.

pub mod args;
pub mod auth;
pub mod commands;
pub mod dump;
pub mod error;
pub mod files;
pub mod flow;
pub mod json;
pub mod py2;
pub mod record;
pub mod session;

use std::io::Write;

pub use args::{Command, Invocation, Options};
pub use commands::{Outcome, execute};
pub use error::{CliError, ExitStatus};
pub use files::Wire;
pub use record::Record;
pub use session::Session;

/// The whole of `genicli ARGS…`: parse, run, print the result to `out` (human or `--json`) and
/// errors and notes to `err`, and say how the process ends.
pub fn main(args: &[String], out: &mut dyn Write, err: &mut dyn Write) -> ExitStatus {
    let invocation = match args::parse(args) {
        Ok(i) => i,
        Err(e) => {
            // --json may sit anywhere on a line that did not parse; honour it if present.
            let json = args.iter().any(|a| a == "--json");
            report(&e, "", json, out, err);
            return e.status();
        }
    };
    let command = invocation.command.name();
    let json = invocation.options.json;
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let e = CliError::refused(format!("starting the runtime: {e}"), None);
            report(&e, command, json, out, err);
            return e.status();
        }
    };
    match runtime.block_on(execute(&invocation, err)) {
        Ok(outcome) => {
            let text = if json {
                format!("{}\n", json::ok(command, outcome.json))
            } else {
                outcome.human
            };
            if out
                .write_all(text.as_bytes())
                .and_then(|()| out.flush())
                .is_err()
            {
                // Nowhere left to say it (a closed pipe); the status still tells.
                return ExitStatus::File;
            }
            ExitStatus::Success
        }
        Err(e) => {
            report(&e, command, json, out, err);
            e.status()
        }
    }
}

/// An error as `error: …` and `hint: …` lines on `err`, and with `--json` also as the JSON
/// object on `out`.
fn report(e: &CliError, command: &str, json: bool, out: &mut dyn Write, err: &mut dyn Write) {
    if json {
        let _ = writeln!(out, "{}", json::error(command, e));
    }
    let _ = writeln!(err, "error: {e}");
    if let Some(hint) = e.hint() {
        let _ = writeln!(err, "hint: {hint}");
    }
}
