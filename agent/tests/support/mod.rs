//! A node world for end-to-end tests: an authority tree with a node, users and slices, a
//! running `geni-agent node` on loopback, and clients with TLS client certificates.
#![allow(dead_code, unreachable_pub)]

pub mod plc;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use geni_rpc::RpcError;
use geni_rpc::TlsIdentity;
use geni_rpc::client::{GeniClient, server_auth_from_gid};
use geni_trust::{ChainForm, Gid, Hierarchy, Hrn, Keypair, RecordType, RightList};
use geni_xmlrpc::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_geni-agent");

/// A principal: key and GID.
pub struct Principal {
    pub key: Keypair,
    pub gid: Gid,
}

/// An authority tree with a node, two users and two slices, and a running node.
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

impl World {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let h = Hierarchy::new(dir.path().join("authorities"));
        h.create_authority(&hrn("planetlab.us.pl"), true).unwrap();
        let node = principal(&h, "planetlab.us.pl.node1");
        let rights: RightList = "control,info".parse().unwrap();
        let node_cred = h
            .issue_credential(&node.gid, &node.gid, &rights, true, 30 * 86_400)
            .unwrap();
        let roots = dir.path().join("roots");
        std::fs::create_dir(&roots).unwrap();
        std::fs::copy(
            dir.path().join("authorities/planetlab/planetlab.gid"),
            roots.join("planetlab.gid"),
        )
        .unwrap();
        node.key.save(&dir.path().join("node.pkey")).unwrap();
        write(
            &dir.path().join("node.gid"),
            &node.gid.to_chain_string(ChainForm::Separator).unwrap(),
        );
        write(
            &dir.path().join("node.cred"),
            &node_cred.to_chain_string(ChainForm::Separator).unwrap(),
        );
        let rebooted = dir.path().join("rebooted");
        write(
            &dir.path().join("agent.toml"),
            &format!(
                "[node]\nreboot_command = [\"touch\", \"{}\"]\n[node.local]\nstop_grace_secs = 1\n",
                rebooted.display()
            ),
        );
        let alice = principal(&h, "planetlab.us.pl.alice");
        let bob = principal(&h, "planetlab.us.pl.bob");
        let s1 = principal(&h, "planetlab.us.pl.s1");
        let s2 = principal(&h, "planetlab.us.pl.s2");
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
        };
        w.start_agent();
        w
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn start_agent(&mut self) {
        let mut child = Command::new(BIN)
            .args(["node", "--listen", "127.0.0.1:0", "--config"])
            .arg(self.path("agent.toml"))
            .arg("--trusted-roots")
            .arg(self.path("roots"))
            .arg("--state-dir")
            .arg(self.path("state"))
            .arg("--key")
            .arg(self.path("node.pkey"))
            .arg("--gid")
            .arg(self.path("node.gid"))
            .arg("--credential")
            .arg(self.path("node.cred"))
            .env("GENI_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        self.addr = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("agent said {line:?}"))
            .to_owned();
        self.agent = Some(child);
    }

    pub fn client(&self, who: &Principal) -> GeniClient {
        let identity = TlsIdentity::from_pem(
            &who.key.to_pem().unwrap(),
            &who.gid.to_chain_string(ChainForm::Separator).unwrap(),
        )
        .unwrap();
        GeniClient::new(
            &format!("https://{}/", self.addr),
            identity,
            server_auth_from_gid(&self.node.gid),
            Duration::from_secs(20),
        )
        .unwrap()
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

    /// A ticket for `caller` on `slice`, made by the `geni-agent authority ticket` command.
    pub fn ticket(
        &self,
        caller: &Principal,
        slice: &Principal,
        sliver: &str,
        initscript: &str,
        timestamp: f64,
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
        let out = Command::new(BIN)
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
            .args(["--node", "planetlab.us.pl.node1"])
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
        .call("list_slices", vec![Value::from(cred)])
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
