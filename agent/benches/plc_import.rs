//! `geni-agent plc import` of a PlanetLab-sized PLC, the figure issue 5 asks for: the PLCAPI
//! double holding 1,000 sites, 10,000 persons, 10,000 slices and 5,000 nodes (generated
//! deterministically), imported over HTTPS by the real binary (`backend = "plcapi"`) into a fresh
//! SQLite file (or `--database URL`), then imported again, which must find nothing to do. Prints
//! the wall time of each run and the import's own report. The double serves from this process on
//! the same cores, so the figures are a ceiling on what the import alone costs.
//!
//! ```sh
//! cargo bench -p geni-agent --bench plc_import \
//!     [-- --sites 1000 --persons 10000 --slices 10000 --nodes 5000 --database URL --key-per-record]
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use plcapi_double::{ADMIN_EMAIL, ADMIN_PASSWORD, Plc, PlcDouble, Scale};

const BIN: &str = env!("CARGO_BIN_EXE_geni-agent");

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

fn number(name: &str, default: usize) -> usize {
    arg(name).and_then(|v| v.parse().ok()).unwrap_or(default)
}

#[tokio::main]
async fn main() {
    let scale = Scale {
        sites: number("--sites", Scale::LARGE.sites),
        persons: number("--persons", Scale::LARGE.persons),
        slices: number("--slices", Scale::LARGE.slices),
        nodes: number("--nodes", Scale::LARGE.nodes),
    };
    let started = Instant::now();
    let double = PlcDouble::start(Plc::generate(scale)).await.unwrap();
    println!(
        "PLCAPI double: {scale:?}, generated in {:?}",
        started.elapsed()
    );

    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("plc-ca.pem");
    double.write_ca(&ca).unwrap();
    std::fs::write(
        dir.path().join("agent.toml"),
        format!(
            "[plc]\nauthority = \"planetlab.us\"\nbackend = \"plcapi\"\n\
             [plc.plcapi]\nurl = \"{}\"\nusername = \"{ADMIN_EMAIL}\"\npassword = \"{ADMIN_PASSWORD}\"\n\
             ca_file = \"{}\"\n",
            double.url(),
            ca.display()
        ),
    )
    .unwrap();
    let database = arg("--database")
        .unwrap_or_else(|| format!("sqlite://{}?mode=rwc", dir.path().join("plc.db").display()));
    let mut import = vec!["plc", "import"];
    if std::env::args().any(|a| a == "--key-per-record") {
        import.push("--key-per-record");
    }

    for run in ["first", "second"] {
        double.reset_stats();
        let started = Instant::now();
        let out = tokio::process::Command::new(BIN)
            .args(&import)
            .arg("--config")
            .arg(dir.path().join("agent.toml"))
            .arg("--state-dir")
            .arg(dir.path().join("state"))
            .arg("--database")
            .arg(&database)
            .env(
                "GENI_LOG",
                std::env::var("GENI_LOG").unwrap_or_else(|_| "info".into()),
            )
            .output()
            .await
            .unwrap();
        let took = started.elapsed();
        let stats = double.stats();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        println!(
            "\n== {run} import: {took:.1?} wall; PLCAPI: {} requests, {} multicalls, {} calls",
            stats.requests,
            stats.multicalls,
            stats.calls.values().sum::<usize>()
        );
        print!("{}", String::from_utf8_lossy(&out.stdout));
        // The import's own phase timings (GENI_LOG=info).
        print!("{}", String::from_utf8_lossy(&out.stderr));
    }
}
