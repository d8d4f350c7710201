//! `genicli`: the researcher's command-line client (DESIGN §8). It arrives with the genicli
//! issue; until then this placeholder only says so and exits 2, so that the workspace keeps
//! building both binaries the packaging expects.
#![forbid(unsafe_code)]

use std::process::ExitCode;

fn main() -> ExitCode {
    eprintln!("genicli arrives with the genicli issue");
    ExitCode::from(2)
}
