//! A node world for end-to-end tests: an authority tree with a node, users and slices, a
//! running `geni-agent node` on loopback, and clients with TLS client certificates.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use geni_rpc::RpcError;
use geni_rpc::TlsIdentity;
use geni_rpc::client::{GeniClient, server_auth_from_gid};
use geni_trust::{ChainForm, Gid, Hierarchy, Hrn, Keypair, RecordType, RightList};
use geni_xmlrpc::Value;

/// The `geni-agent` executable Cargo built for this test run, beside the `deps/` directory the
/// running test binary lives in (Cargo builds a package's binaries before its integration tests
/// and benchmarks; `cargo test --workspace` builds them for every crate's).
pub fn bin() -> PathBuf {
    beside_tests("geni-agent")
}

/// The `genicli` executable, found as [`bin`] finds `geni-agent`.
pub fn genicli_bin() -> PathBuf {
    beside_tests("genicli")
}

/// `target/<profile>/<name>`, beside the `deps/` directory the running test lives in.
fn beside_tests(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let path = exe.parent().and_then(Path::parent).unwrap().join(name);
    assert!(
        path.is_file(),
        "{} is missing: run the end-to-end tests with `cargo test --workspace` (or `cargo build \
         -p geni-agent` first)",
        path.display()
    );
    path
}

/// A principal: key and GID.
#[derive(Debug)]
pub struct Principal {
    pub key: Keypair,
    pub gid: Gid,
}

/// An authority tree with a node, two users and two slices, and a running node.
#[derive(Debug)]
pub struct World {
    pub dir: tempfile::TempDir,
    pub h: Hierarchy,
    pub node: Principal,
    pub alice: Principal,
    pub bob: Principal,
    pub s1: Principal,
    pub s2: Principal,
    pub agent: Option<Child>,
    pub addr: String,
    /// The `geni-agent` executable the node runs from.
    pub bin: PathBuf,
    /// Extra environment for the node process.
    pub envs: Vec<(String, String)>,
}

pub fn hrn(s: &str) -> Hrn {
    s.parse().unwrap()
}

pub fn principal(h: &Hierarchy, name: &str) -> Principal {
    let key = Keypair::generate(2048).unwrap();
    let gid = h.create_gid(&hrn(name), None, &key.public_key()).unwrap();
    Principal { key, gid }
}

pub fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

/// A second node started by [`World::start_second_node`]; killed on drop.
#[derive(Debug)]
pub struct OtherNode {
    pub node: Principal,
    pub child: Child,
    pub addr: String,
}

impl Drop for OtherNode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes into `dir` what a node needs: its key, GID, credential over itself (control, info,
/// delegate), `roots/` holding the tree's root GID, and `agent.toml` with `backend` and `extra`
/// (whole TOML tables).
pub fn node_files(h: &Hierarchy, node: &Principal, dir: &Path, backend: &str, extra: &str) {
    let rights: RightList = "control,info".parse().unwrap();
    let node_cred = h
        .issue_credential(&node.gid, &node.gid, &rights, true, 30 * 86_400)
        .unwrap();
    let roots = dir.join("roots");
    std::fs::create_dir(&roots).unwrap();
    let root = h.authority(&hrn("planetlab")).unwrap();
    write(
        &roots.join("planetlab.gid"),
        &root.gid.to_chain_string(ChainForm::Separator).unwrap(),
    );
    node.key.save(&dir.join("node.pkey")).unwrap();
    write(
        &dir.join("node.gid"),
        &node.gid.to_chain_string(ChainForm::Separator).unwrap(),
    );
    write(
        &dir.join("node.cred"),
        &node_cred.to_chain_string(ChainForm::Separator).unwrap(),
    );
    let rebooted = dir.join("rebooted");
    write(
        &dir.join("agent.toml"),
        &format!(
            "[node]\nbackend = \"{backend}\"\nreboot_command = [\"touch\", \"{}\"]\n[node.local]\nstop_grace_secs = 1\n# Tests run in parallel with the same sliver names: one shared account, not one each.\ndanger_shared_uid = true\n{extra}",
            rebooted.display()
        ),
    );
}

/// Starts `geni-agent node` on the files [`node_files`] wrote in `dir`, on a free loopback
/// port; returns the process and the address it said it listens on.
pub fn spawn_node(bin: &Path, dir: &Path, envs: &[(String, String)]) -> (Child, String) {
    let mut child = Command::new(bin)
        .args(["node", "--listen", "127.0.0.1:0", "--config"])
        .arg(dir.join("agent.toml"))
        .arg("--trusted-roots")
        .arg(dir.join("roots"))
        .arg("--state-dir")
        .arg(dir.join("state"))
        .arg("--key")
        .arg(dir.join("node.pkey"))
        .arg("--gid")
        .arg(dir.join("node.gid"))
        .arg("--credential")
        .arg(dir.join("node.cred"))
        .env("GENI_LOG", "warn")
        .envs(envs.iter().map(|(k, v)| (k, v)))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("agent said {line:?}"))
        .to_owned();
    (child, addr)
}

impl World {
    /// Site `pl`, the local backend, the binary Cargo built.
    // It starts a node process, which a `Default` should not do.
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        Self::build("pl", "local", "", bin())
    }

    /// The world under the site authority `planetlab.us.<site>` (so slivers are named
    /// `<site>_<leaf>`), with `backend`, and `extra` (whole TOML tables) appended to the node's
    /// agent.toml, running `bin`.
    pub fn build(site: &str, backend: &str, extra: &str, bin: PathBuf) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let h = Hierarchy::new(dir.path().join("authorities"));
        let at = |leaf: &str| format!("planetlab.us.{site}.{leaf}");
        h.create_authority(&hrn(&format!("planetlab.us.{site}")), true)
            .unwrap();
        let node = principal(&h, &at("node1"));
        node_files(&h, &node, dir.path(), backend, extra);
        let alice = principal(&h, &at("alice"));
        let bob = principal(&h, &at("bob"));
        let s1 = principal(&h, &at("s1"));
        let s2 = principal(&h, &at("s2"));
        let mut w = Self {
            dir,
            h,
            node,
            alice,
            bob,
            s1,
            s2,
            agent: None,
            addr: String::new(),
            bin,
            envs: Vec::new(),
        };
        w.start_agent();
        w
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn start_agent(&mut self) {
        let (child, addr) = spawn_node(&self.bin, self.dir.path(), &self.envs);
        self.agent = Some(child);
        self.addr = addr;
    }

    /// Another node of the same site, `planetlab.us.<site>.<leaf>`, trusting the same root, with
    /// its files in `<dir>/<leaf>/`.
    pub fn start_second_node(&self, leaf: &str) -> OtherNode {
        let site = self.node.gid.hrn().authority().unwrap();
        let node = principal(&self.h, &format!("{site}.{leaf}"));
        let dir = self.path(leaf);
        std::fs::create_dir(&dir).unwrap();
        node_files(&self.h, &node, &dir, "local", "");
        let (child, addr) = spawn_node(&self.bin, &dir, &[]);
        OtherNode { node, child, addr }
    }

    /// A client of `who` for the node at `addr` whose GID is `node`.
    pub fn client_at(&self, who: &Principal, addr: &str, node: &Gid) -> GeniClient {
        let identity = TlsIdentity::from_pem(
            &who.key.to_pem().unwrap(),
            &who.gid.to_chain_string(ChainForm::Separator).unwrap(),
        )
        .unwrap();
        GeniClient::new(
            &format!("https://{addr}/"),
            identity,
            server_auth_from_gid(node),
            Duration::from_secs(20),
        )
        .unwrap()
    }

    pub fn client(&self, who: &Principal) -> GeniClient {
        self.client_at(who, &self.addr, &self.node.gid)
    }

    pub fn slice_cred(&self, caller: &Principal, slice: &Principal) -> String {
        self.h
            .issue_credential(
                &caller.gid,
                &slice.gid,
                &RightList::for_record_type(RecordType::Slice),
                false,
                86_400,
            )
            .unwrap()
            .to_chain_string(ChainForm::Separator)
            .unwrap()
    }

    /// The node's site authority, as a principal, and its authority credential.
    pub fn site(&self) -> (Principal, String) {
        let site = self.node.gid.hrn().authority().unwrap();
        let auth = self.h.authority(&site).unwrap();
        let cred = self
            .h
            .authority_credential(&site)
            .unwrap()
            .to_chain_string(ChainForm::Separator)
            .unwrap();
        (
            Principal {
                key: auth.key,
                gid: auth.gid,
            },
            cred,
        )
    }

    pub fn user_cred(&self, user: &Principal) -> String {
        self.h
            .issue_credential(
                &user.gid,
                &user.gid,
                &RightList::for_record_type(RecordType::User),
                false,
                86_400,
            )
            .unwrap()
            .to_chain_string(ChainForm::Separator)
            .unwrap()
    }

    /// A ticket for `caller` on `slice`, made by the `geni-agent authority ticket` command, for
    /// this world's node.
    pub fn ticket(
        &self,
        caller: &Principal,
        slice: &Principal,
        sliver: &str,
        initscript: &str,
        timestamp: f64,
    ) -> String {
        let node = self.node.gid.hrn().to_string();
        self.ticket_for(caller, slice, sliver, initscript, timestamp, &node)
    }

    /// The same for the node `node` (an hrn).
    pub fn ticket_for(
        &self,
        caller: &Principal,
        slice: &Principal,
        sliver: &str,
        initscript: &str,
        timestamp: f64,
        node: &str,
    ) -> String {
        let caller_file = self.path(&format!("{}.gid", caller.gid.hrn()));
        let slice_file = self.path(&format!("{}.gid", slice.gid.hrn()));
        write(
            &caller_file,
            &caller.gid.to_chain_string(ChainForm::Separator).unwrap(),
        );
        write(
            &slice_file,
            &slice.gid.to_chain_string(ChainForm::Separator).unwrap(),
        );
        let attributes = serde_json::json!({
            "name": sliver,
            "keys": ["ssh-rsa AAAAB3NzaC1yc2E test@example"],
            "instantiation": "delegated",
            "vref": "default",
            "timestamp": timestamp,
            "slice_id": 7,
            "initscript": initscript,
        });
        let out = Command::new(&self.bin)
            .args(["authority", "ticket", "--dir"])
            .arg(self.path("authorities"))
            .arg("--caller")
            .arg(&caller_file)
            .arg("--slice")
            .arg(&slice_file)
            .args([
                "--attributes",
                &attributes.to_string(),
                "--rspec",
                r#"{"cpu_share":"8","disk_max":"100000"}"#,
            ])
            .args(["--node", node])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    pub fn sliver_dir(&self, name: &str) -> PathBuf {
        self.path("state").join("slivers").join(name)
    }
}

impl World {
    /// Kills the agent with SIGKILL, as a crash would.
    pub fn kill_agent(&mut self) {
        if let Some(mut c) = self.agent.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for World {
    fn drop(&mut self) {
        if let Some(mut c) = self.agent.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub const SCRIPT: &str = "#!/bin/sh\necho started >> started.txt\nexec sleep 1000\n";

pub fn fault_code(r: Result<Value, RpcError>) -> (i32, String) {
    match r {
        Err(RpcError::Fault(f)) => (f.code, f.string),
        other => panic!("expected a fault, got {other:?}"),
    }
}

pub async fn listed(c: &GeniClient, cred: &str) -> Vec<(String, String, Option<i64>)> {
    let v = c
        .call("list_slivers", vec![Value::from(cred)])
        .await
        .unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|row| {
            let s = row.as_struct().unwrap();
            (
                s.get("name").unwrap().as_str().unwrap().to_owned(),
                s.get("state").unwrap().as_str().unwrap().to_owned(),
                s.get("pid").and_then(Value::as_i64),
            )
        })
        .collect()
}

/// Seconds since the epoch.
pub fn now() -> i64 {
    use geni_trust::Clock;
    geni_trust::SystemClock.now()
}

pub fn alive(pid: i64) -> bool {
    // A zombie is not running any more.
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z "))
}

pub async fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
