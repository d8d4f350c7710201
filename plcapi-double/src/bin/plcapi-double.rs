//! Serves a generated PLC over HTTPS until interrupted, for trying `geni-agent plc` with
//! `backend = "plcapi"` by hand:
//!
//! ```sh
//! plcapi-double --listen 127.0.0.1:8443 --ca-out /tmp/plc-ca.pem --sites 10 --persons 50
//! ```
//!
//! It prints the URL and the admin account, and writes the CA to verify it by.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use plcapi_double::{ADMIN_EMAIL, ADMIN_PASSWORD, Plc, PlcDouble, Scale};

#[derive(Debug, Parser)]
#[command(name = "plcapi-double", about = "A PLCAPI test double over HTTPS")]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Where to write the CA certificate (PEM) that signed the server's certificate.
    #[arg(long)]
    ca_out: PathBuf,
    #[arg(long, default_value_t = Scale::SMALL.sites)]
    sites: usize,
    #[arg(long, default_value_t = Scale::SMALL.persons)]
    persons: usize,
    #[arg(long, default_value_t = Scale::SMALL.slices)]
    slices: usize,
    #[arg(long, default_value_t = Scale::SMALL.nodes)]
    nodes: usize,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let plc = Plc::generate(Scale {
        sites: args.sites,
        persons: args.persons,
        slices: args.slices,
        nodes: args.nodes,
    });
    let double = match PlcDouble::start_on(args.listen, plc).await {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: cannot serve on {}: {e}", args.listen);
            return ExitCode::from(2);
        }
    };
    if let Err(e) = double.write_ca(&args.ca_out) {
        eprintln!("error: writing {}: {e}", args.ca_out.display());
        return ExitCode::from(2);
    }
    println!("listening on {}", double.url());
    println!("admin {ADMIN_EMAIL} password {ADMIN_PASSWORD}");
    let _ = tokio::signal::ctrl_c().await;
    ExitCode::SUCCESS
}
