//! `genicli`: the researcher's command-line client (DESIGN §8). Everything is in
//! `geni_agent::cli`; this only collects the arguments, sets up logging (stderr, `GENI_LOG`) and
//! turns the outcome into the exit status `genicli help` documents.
#![forbid(unsafe_code)]

use std::io::IsTerminal as _;
use std::process::ExitCode;

use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let filter = EnvFilter::try_from_env("GENI_LOG").unwrap_or_else(|_| EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
    let mut args = Vec::new();
    for arg in std::env::args_os().skip(1) {
        match arg.into_string() {
            Ok(a) => args.push(a),
            Err(bad) => {
                eprintln!("error: argument {bad:?} is not valid UTF-8");
                return ExitCode::from(geni_agent::cli::ExitStatus::Usage.code());
            }
        }
    }
    let status = geni_agent::cli::main(&args, &mut std::io::stdout(), &mut std::io::stderr());
    ExitCode::from(status.code())
}
