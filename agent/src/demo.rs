//! `geni-agent demo`: the whole system on one machine, for real. In a fresh directory it makes the
//! authority hierarchy `planetlab → planetlab.us → planetlab.us.pl` and a registry (`plc init`,
//! `site add`), a user with a key who is the site's PI, a node with its key, GID and credential,
//! starts `geni-agent plc` (embedded PLC, SQLite) and `geni-agent node` (local backend) as child
//! processes on free loopback ports, and runs the canonical flow of reference §4.5 through
//! genicli's library (`geni_agent::cli::flow`), printing each command and its 2008-style output.
//! The slice's initscript really runs on the node and writes a file, which the demo shows. Then
//! both servers are stopped (SIGTERM), unless `--keep` leaves them running and says how to talk
//! to them.
//!
//! Every operator step is this same binary run as a child (`geni-agent plc …`, `geni-agent
//! authority …`), printed as a command a reader can run again. The directory is refused when it
//! exists and is not a previous demo (which carries [`MARKER`]), or when a kept demo's servers
//! still run in it.

use std::fs;
use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use geni_agent::cli::flow::Flow;
use geni_agent::cli::{self, Outcome};
use geni_trust::Hrn;
use nix::sys::signal::{self, Signal};
use nix::unistd::Pid;

use crate::ExitCode;

/// The file that marks a directory as made by `geni-agent demo`.
const MARKER: &str = ".geni-agent-demo";
/// The kept servers' pids, one per line, for the next run to check.
const PIDS: &str = "servers.pid";
const USER: &str = "planetlab.us.pl.alice";
const SITE: &str = "planetlab.us.pl";
const SLICE: &str = "planetlab.us.pl.testcw";
const NODE: &str = "planetlab.us.pl.node1";
const NODE_HOST: &str = "node1.pl.example";
/// What the slice's initscript does on the node: write a file the demo then shows, and keep the
/// sliver running until it is stopped.
const INITSCRIPT: &str = "#!/bin/sh\n\
echo \"hello from slice pl_testcw, started $(date -u '+%Y-%m-%d %H:%M:%S UTC') in $(pwd)\" > hello.txt\n\
exec sleep 100000\n";
/// How long a server may take to say `listening on`, and the initscript to write its file.
const START_TIMEOUT: Duration = Duration::from_secs(30);
const STOP_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Debug, Args)]
#[command(after_help = "\
Everything happens under DIR: plc/ (authorities, trusted_roots, plc.db), node/ (its key, GID, \
credential and slivers), user/ (alice's key and every file genicli writes) and logs/. Run it \
again to start over; the previous demo directory is replaced.")]
pub(crate) struct DemoArgs {
    /// Where the demo lives; it must not exist, or be a previous demo's.
    #[arg(value_name = "DIR", default_value = "demo")]
    dir: PathBuf,
    /// Leave the plc and the node running at the end, and print how to use them with genicli.
    #[arg(long)]
    keep: bool,
}

/// A server the demo started.
struct Server {
    name: &'static str,
    child: Option<Child>,
    url: String,
    log: PathBuf,
}

pub(crate) fn run(args: &DemoArgs) -> anyhow::Result<ExitCode> {
    let dir = prepare(&args.dir)?;
    let demo = Demo {
        exe: std::env::current_exe().context("finding the geni-agent binary")?,
        dir,
        given: args.dir.display().to_string(),
    };
    println!("== geni-agent demo in {}", demo.dir.display());
    demo.setup()?;
    let mut servers = demo.start_servers()?;
    let outcome = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")
        .and_then(|rt| rt.block_on(demo.flow(&servers)));
    if let Err(e) = outcome {
        stop_all(&mut servers);
        for s in &servers {
            eprintln!("(the {} log is {})", s.name, s.log.display());
        }
        return Err(e);
    }
    if args.keep {
        demo.keep(&mut servers)?;
    } else {
        println!("\n-- Stopping the plc and the node (SIGTERM)");
        stop_all(&mut servers);
        println!(
            "\nDemo finished: every step above ran for real. Its files stay in {}.",
            demo.dir.display()
        );
    }
    Ok(ExitCode::Success)
}

/// Makes `dir` fresh: refuses a directory that is not a previous demo or whose kept servers
/// still run, removes a previous demo, and marks the new one.
fn prepare(dir: &Path) -> anyhow::Result<PathBuf> {
    if dir.exists() {
        if !dir.join(MARKER).is_file() {
            bail!(
                "{} exists and is not a previous demo (no {MARKER} in it); choose another \
                 directory: geni-agent demo <DIR>",
                dir.display()
            );
        }
        if let Ok(text) = fs::read_to_string(dir.join(PIDS)) {
            let alive: Vec<&str> = text
                .split_whitespace()
                .filter(|p| Path::new("/proc").join(p).exists())
                .collect();
            if !alive.is_empty() {
                bail!(
                    "the servers kept by the previous demo in {} still run (pid {}); stop them \
                     first: kill {}",
                    dir.display(),
                    alive.join(", "),
                    alive.join(" ")
                );
            }
        }
        fs::remove_dir_all(dir)
            .with_context(|| format!("removing the old demo {}", dir.display()))?;
    }
    for sub in ["plc", "node", "user", "logs"] {
        fs::create_dir_all(dir.join(sub))
            .with_context(|| format!("creating {}", dir.join(sub).display()))?;
    }
    fs::write(dir.join(MARKER), "made by geni-agent demo\n")
        .with_context(|| format!("writing {}", dir.join(MARKER).display()))?;
    // Absolute from here on: children run with other working directories.
    fs::canonicalize(dir).with_context(|| format!("resolving {}", dir.display()))
}

struct Demo {
    exe: PathBuf,
    /// Absolute.
    dir: PathBuf,
    /// As the user wrote it, for what is printed.
    given: String,
}

impl Demo {
    fn path(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }

    fn p(&self, rel: &str) -> String {
        self.path(rel).display().to_string()
    }

    /// Runs `geni-agent ARGS` to completion, printing the command and what it printed.
    fn geni_agent(&self, args: &[&str]) -> anyhow::Result<()> {
        println!("$ {}", self.shown(&shell_line("geni-agent", args)));
        let out = Command::new(&self.exe)
            .args(args)
            .env("GENI_LOG", "warn")
            .output()
            .with_context(|| format!("running {}", self.exe.display()))?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        print!("{}", self.shown(&stdout));
        if !out.status.success() {
            bail!(
                "geni-agent {} failed: {}",
                args.first().copied().unwrap_or_default(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(())
    }

    /// Text with the demo directory written as the user gave it, so that commands read short
    /// and can be run again from where the demo was started.
    fn shown(&self, text: &str) -> String {
        text.replace(&self.dir.display().to_string(), &self.given)
    }

    /// Runs `geni-agent plc --config … --state-dir … ARGS`: the demo's own (empty) configuration,
    /// so that this machine's /etc/geni-agent/agent.toml plays no part.
    fn plc(&self, args: &[&str]) -> anyhow::Result<()> {
        let (config, state) = (self.p("plc/agent.toml"), self.p("plc"));
        let mut all = vec!["plc", "--config", &config, "--state-dir", &state];
        all.extend(args);
        self.geni_agent(&all)
    }

    /// The registry, the user and the node, made with the operator commands.
    fn setup(&self) -> anyhow::Result<()> {
        fs::write(self.path("plc/agent.toml"), "").context("writing the plc's configuration")?;
        println!(
            "\n-- The registry: authorities planetlab → planetlab.us, its database and trusted roots"
        );
        self.plc(&["init"])?;
        println!("\n-- A site: the authority {SITE}, with its sa and ma records");
        self.plc(&["site", "add", "pl", "--name", "Demo site"])?;

        println!("\n-- A user with a key, the site's PI");
        let key = self.path("user/alice.pkey");
        cli::files::create_key(&key).map_err(|e| anyhow::anyhow!("{e}"))?;
        println!(
            "$ cd {}/user && genicli createKey alice.pkey",
            self.shown(&self.dir.display().to_string())
        );
        println!("writing private key to alice.pkey");
        self.plc(&[
            "person",
            "add",
            "alice@pl.example",
            "--site",
            "pl",
            "--hrn",
            USER,
            "--pubkey",
            &self.p("user/alice.pkey"),
            "--role",
            "pi",
            "--role",
            "user",
        ])?;
        println!("\n-- The user trusts the federation's root");
        fs::create_dir_all(self.path("user/trusted_roots"))?;
        fs::copy(
            self.path("plc/trusted_roots/planetlab.gid"),
            self.path("user/trusted_roots/planetlab.gid"),
        )
        .context("copying the root GID for the user")?;
        println!(
            "$ cp {} {}",
            self.shown(&self.p("plc/trusted_roots/planetlab.gid")),
            self.shown(&self.p("user/trusted_roots/"))
        );

        println!("\n-- An initscript slices can name");
        let script = self.path("plc/hello.sh");
        fs::write(&script, INITSCRIPT).with_context(|| format!("writing {}", script.display()))?;
        println!("$ cat {}", self.shown(&script.display().to_string()));
        print!("{INITSCRIPT}");
        self.plc(&[
            "initscript",
            "add",
            "hello",
            "--file",
            &self.p("plc/hello.sh"),
        ])?;

        println!(
            "\n-- A node: its key, its GID and credential from the site authority, its record"
        );
        let auth = self.p("plc/authorities");
        self.geni_agent(&["authority", "key", "--out", &self.p("node/node.pkey")])?;
        self.geni_agent(&[
            "authority",
            "gid",
            NODE,
            "--dir",
            &auth,
            "--pubkey",
            &self.p("node/node.pkey.pub"),
            "--out",
            &self.p("node/node.gid"),
        ])?;
        self.geni_agent(&[
            "authority",
            "credential",
            "--dir",
            &auth,
            "--caller",
            &self.p("node/node.gid"),
            "--object",
            &self.p("node/node.gid"),
            "--rights",
            "control,info",
            "--delegate",
            "--out",
            &self.p("node/node.cred"),
        ])?;
        self.plc(&[
            "node",
            "add",
            NODE_HOST,
            "--site",
            "pl",
            "--hrn",
            NODE,
            "--pubkey",
            &self.p("node/node.pkey.pub"),
        ])?;
        // Its own configuration, so that this machine's /etc/geni-agent/agent.toml plays no part;
        // slivers stop quickly. One shared account rather than a Unix account per sliver: the
        // demo's sliver outlives the demo, and its account would stay in the host's passwd.
        fs::write(
            self.path("node/agent.toml"),
            "[node.local]\nstop_grace_secs = 2\ndanger_shared_uid = true\n",
        )
        .context("writing the node's configuration")?;
        Ok(())
    }

    fn start_servers(&self) -> anyhow::Result<Vec<Server>> {
        println!("\n-- Starting the plc and the node on free loopback ports");
        let plc_args = vec![
            "plc".to_owned(),
            "--config".to_owned(),
            self.p("plc/agent.toml"),
            "--state-dir".to_owned(),
            self.p("plc"),
            "serve".to_owned(),
            "--listen".to_owned(),
            "127.0.0.1:0".to_owned(),
        ];
        let node_args = vec![
            "node".to_owned(),
            "--config".to_owned(),
            self.p("node/agent.toml"),
            "--listen".to_owned(),
            "127.0.0.1:0".to_owned(),
            "--trusted-roots".to_owned(),
            self.p("plc/trusted_roots"),
            "--state-dir".to_owned(),
            self.p("node/state"),
            "--key".to_owned(),
            self.p("node/node.pkey"),
            "--gid".to_owned(),
            self.p("node/node.gid"),
            "--credential".to_owned(),
            self.p("node/node.cred"),
        ];
        let mut servers = Vec::new();
        for (name, args) in [("plc", plc_args), ("node", node_args)] {
            match self.start(name, &args) {
                Ok(s) => {
                    println!(
                        "{name:>4}: {} (pid {}, log {})",
                        s.url,
                        s.child.as_ref().map_or(0, Child::id),
                        self.shown(&s.log.display().to_string())
                    );
                    servers.push(s);
                }
                Err(e) => {
                    stop_all(&mut servers);
                    return Err(e);
                }
            }
        }
        Ok(servers)
    }

    /// Starts `geni-agent ARGS` with its output in `logs/<name>.log` and waits for its
    /// `listening on ADDR` line.
    fn start(&self, name: &'static str, args: &[String]) -> anyhow::Result<Server> {
        let shown: Vec<&str> = args.iter().map(String::as_str).collect();
        println!("$ {} &", self.shown(&shell_line("geni-agent", &shown)));
        let log = self.path(&format!("logs/{name}.log"));
        let open = || {
            fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log)
                .with_context(|| format!("opening {}", log.display()))
        };
        let mut child = Command::new(&self.exe)
            .args(args)
            .stdin(Stdio::null())
            .stdout(open()?)
            .stderr(open()?)
            .spawn()
            .with_context(|| format!("starting the {name}"))?;
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(addr) = listening(&log) {
                return Ok(Server {
                    name,
                    child: Some(child),
                    url: format!("https://{addr}/"),
                    log,
                });
            }
            if let Ok(Some(status)) = child.try_wait() {
                bail!(
                    "the {name} exited ({status}) before it listened; its log {} says:\n{}",
                    log.display(),
                    fs::read_to_string(&log).unwrap_or_default().trim_end()
                );
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!(
                    "the {name} did not listen within {START_TIMEOUT:?}; see {}",
                    log.display()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The canonical flow through genicli's library, with the operator's one step in it.
    async fn flow(&self, servers: &[Server]) -> anyhow::Result<()> {
        let url = |name: &str| {
            servers
                .iter()
                .find(|s| s.name == name)
                .map(|s| s.url.clone())
                .unwrap_or_default()
        };
        let flow = Flow {
            dir: self.path("user"),
            user: hrn(USER)?,
            site: hrn(SITE)?,
            slice: hrn(SLICE)?,
            node: hrn(NODE)?,
            plc_url: url("plc"),
            node_url: url("node"),
            trusted_roots: self.path("user/trusted_roots"),
        };
        let user_dir = self.path("user");
        let hello = self.path("node/state/slivers/pl_testcw/hello.txt");
        println!(
            "\n== The canonical flow (reference §4.5, 2008's testComponent.sh), as user {USER} in {}",
            self.shown(&user_dir.display().to_string())
        );
        for (n, step) in flow.steps().iter().enumerate() {
            println!("\n-- {}. {}", n + 1, step.title);
            println!("$ {}", step.display(&user_dir));
            let mut notes = Vec::new();
            let result = step.run(&mut notes).await;
            // Files in the user's directory are named as the command line names them.
            let local =
                |text: &str| self.shown(&text.replace(&format!("{}/", user_dir.display()), ""));
            print!("{}", local(&String::from_utf8_lossy(&notes)));
            match result {
                Ok(Some(Outcome { human, .. })) => print!("{}", local(&human)),
                Ok(None) => println!("(no such slice yet: nothing to remove)"),
                Err(e) => {
                    let hint = e.hint().map(|h| format!("\nhint: {h}")).unwrap_or_default();
                    bail!("step {} ({}) failed: {e}{hint}", n + 1, step.name);
                }
            }
            match step.name {
                "register-slice" => {
                    println!(
                        "\n-- The operator gives the slice its initscript (a PLC slice attribute)"
                    );
                    self.plc(&["slice", "attr", "set", "pl_testcw", "initscript", "hello"])?;
                }
                "start" => {
                    wait_for(&hello).await?;
                    let text = fs::read_to_string(&hello)
                        .with_context(|| format!("reading {}", hello.display()))?;
                    println!(
                        "\n-- On the node, the initscript ran in the sliver and wrote {}:",
                        self.shown(&hello.display().to_string())
                    );
                    print!("{}", self.shown(&text));
                }
                _ => {}
            }
            let _ = std::io::stdout().flush();
        }
        Ok(())
    }

    /// `--keep`: the servers stay; record their pids and say how to use and stop them.
    fn keep(&self, servers: &mut [Server]) -> anyhow::Result<()> {
        let pids: Vec<String> = servers
            .iter_mut()
            .filter_map(|s| s.child.take())
            .map(|c| c.id().to_string())
            .collect();
        fs::write(self.path(PIDS), format!("{}\n", pids.join("\n")))
            .with_context(|| format!("writing {}", self.path(PIDS).display()))?;
        let url = |name: &str| {
            servers
                .iter()
                .find(|s| s.name == name)
                .map(|s| s.url.clone())
                .unwrap_or_default()
        };
        let user = self.shown(&self.p("user"));
        println!(
            "\nThe plc ({}) and the node ({}) keep running. Talk to them with genicli:\n\
             \n  cd {user}\n\
             \x20 genicli --server {} --username {USER} resolve {USER}\n\
             \x20 genicli --server {} --username {USER} --credfile pl_sa.cred list {SITE}\n\
             \x20 genicli --server {} --username {USER} --credfile testcw.cred --outfile testcw.ticket getTicket {SLICE} {NODE}\n\
             \x20 genicli --server {} --username {USER} --ticketfile testcw.ticket redeemTicket\n\
             \x20 genicli --server {} --server_hrn {NODE} --username {USER} --credfile testcw.cred startSlice\n\
             \x20 genicli --server {} --server_hrn {NODE} --username {USER} --credfile testcw.cred listSlices\n\
             \n(genicli trusts them through {user}/trusted_roots; alice.pkey is the user's key.)\n\
             Logs: {}/logs/. Stop them with: kill {}",
            url("plc"),
            url("node"),
            url("plc"),
            url("plc"),
            url("plc"),
            url("node"),
            url("node"),
            url("node"),
            self.shown(&self.dir.display().to_string()),
            pids.join(" ")
        );
        Ok(())
    }
}

/// `program args…` as a shell would take it back: arguments with spaces or shell characters
/// quoted.
fn shell_line(program: &str, args: &[&str]) -> String {
    let mut line = program.to_owned();
    for a in args {
        line.push(' ');
        if !a.is_empty()
            && a.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./:@,=+".contains(c))
        {
            line.push_str(a);
        } else {
            line.push_str(&format!("'{}'", a.replace('\'', r"'\''")));
        }
    }
    line
}

fn hrn(s: &str) -> anyhow::Result<Hrn> {
    Ok(Hrn::parse(s)?)
}

/// The address in a server's `listening on ADDR` line, once it is in the log.
fn listening(log: &Path) -> Option<String> {
    let file = fs::File::open(log).ok()?;
    BufReader::new(file)
        .lines()
        .map_while(Result::ok)
        .find_map(|l| l.strip_prefix("listening on ").map(str::to_owned))
}

async fn wait_for(file: &Path) -> anyhow::Result<()> {
    let deadline = Instant::now() + START_TIMEOUT;
    while !file.is_file() {
        if Instant::now() > deadline {
            bail!(
                "the initscript did not write {} within {START_TIMEOUT:?}",
                file.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The shell creates the file before it writes the line.
    tokio::time::sleep(Duration::from_millis(100)).await;
    Ok(())
}

impl Drop for Server {
    /// A server still owned here when the demo ends early (a panic) is not left behind.
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// SIGTERM to each server, then SIGKILL to any still there after [`STOP_TIMEOUT`].
fn stop_all(servers: &mut [Server]) {
    for s in servers.iter_mut() {
        let Some(mut child) = s.child.take() else {
            continue;
        };
        let pid = i32::try_from(child.id()).map(Pid::from_raw);
        if let Ok(pid) = pid {
            let _ = signal::kill(pid, Signal::SIGTERM);
        }
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            match child.try_wait() {
                Ok(Some(status)) => {
                    println!("{:>4}: stopped ({status})", s.name);
                    break;
                }
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    println!("{:>4}: killed after {STOP_TIMEOUT:?}", s.name);
                    break;
                }
            }
        }
    }
}
