//! The canonical flow of reference §4.5 (2008's `cmdline/testComponent.sh`) as genicli command
//! lines run through this library: self-credential, slice key, sa credential, slice GID, remove
//! and register the slice, slice credential, ticket, then on the node redeem, start, list, stop,
//! reset, delete and list again.
//!
//! Each [`Step`] is exactly the argument list a user would type, so `geni-agent demo` and the
//! tests run what genicli runs and print what genicli prints; [`Step::display`] shows it with the
//! working directory left out. Files live in [`Flow::dir`] under 2008's names.

use std::io::Write;
use std::path::{Path, PathBuf};

use geni_trust::Hrn;

use super::args;
use super::commands::{Outcome, execute};
use super::error::CliError;
use super::files::leaf;

/// Who runs the flow, on what, against which servers.
#[derive(Debug, Clone)]
pub struct Flow {
    /// The user's working directory: their key (`<leaf>.pkey`, registered with the plc) and every
    /// file the flow writes.
    pub dir: PathBuf,
    /// The user's hrn, e.g. `planetlab.us.pl.alice`; a PI of `site`.
    pub user: Hrn,
    /// The site authority the slice is registered under, e.g. `planetlab.us.pl`.
    pub site: Hrn,
    /// The slice, e.g. `planetlab.us.pl.testcw`.
    pub slice: Hrn,
    /// The node the ticket is for, e.g. `planetlab.us.pl.node1`.
    pub node: Hrn,
    pub plc_url: String,
    pub node_url: String,
    /// Roots both servers' GIDs must chain to.
    pub trusted_roots: PathBuf,
}

/// One genicli invocation of the flow.
#[derive(Debug, Clone)]
pub struct Step {
    /// A short name (`register-slice`).
    pub name: &'static str,
    /// What the step does, for a person reading along.
    pub title: &'static str,
    /// The arguments after `genicli`.
    pub args: Vec<String>,
    /// A fault with this code is expected on a first run and not a failure (2008's flow removes
    /// the slice "if it already exists").
    pub tolerated_fault: Option<i32>,
}

impl Flow {
    /// The steps, in order.
    pub fn steps(&self) -> Vec<Step> {
        let f = |name: &str| self.dir.join(name).display().to_string();
        let user = leaf(self.user.as_str()).to_owned();
        let slice = leaf(self.slice.as_str()).to_owned();
        let sa = format!("{}_sa.cred", leaf(self.site.as_str()));
        let on = |server: &str, rest: &[&str]| -> Vec<String> {
            let mut v: Vec<String> = [
                "--server",
                server,
                "--username",
                self.user.as_str(),
                "--keyfile",
                &f(&format!("{user}.pkey")),
                "--certfile",
                &f(&format!("{user}.cert")),
                "--trusted_roots",
                &self.trusted_roots.display().to_string(),
            ]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
            v.extend(rest.iter().map(|s| (*s).to_owned()));
            v
        };
        let plc = |rest: &[&str]| on(&self.plc_url, rest);
        // A GID that merely verifies could be anyone's: the node commands name the node.
        let node = |rest: &[&str]| {
            let mut with = vec!["--server_hrn", self.node.as_str()];
            with.extend_from_slice(rest);
            on(&self.node_url, &with)
        };
        let user_cred = f(&format!("{user}.cred"));
        let sa_cred = f(&sa);
        let slice_key = f(&format!("{slice}.pkey"));
        let slice_gid = f(&format!("{slice}.gid"));
        let slice_cred = f(&format!("{slice}.cred"));
        let ticket = f(&format!("{slice}.ticket"));
        let sliver_cred = f(&format!("{slice}.sliver.cred"));
        let (u, site, s, n) = (
            self.user.as_str(),
            self.site.as_str(),
            self.slice.as_str(),
            self.node.as_str(),
        );
        let step = |name, title, args| Step {
            name,
            title,
            args,
            tolerated_fault: None,
        };
        vec![
            step(
                "user-credential",
                "Get the user's own credential (no credential needed: the TLS key proves who asks)",
                plc(&[
                    "--credfile",
                    "None",
                    "--outfile",
                    &user_cred,
                    "getCredential",
                    "user",
                    u,
                ]),
            ),
            step(
                "slice-key",
                "Create a key for the slice",
                vec!["createKey".to_owned(), slice_key.clone()],
            ),
            step(
                "sa-credential",
                "Get a credential over the site authority (the user is its PI)",
                plc(&[
                    "--credfile",
                    &user_cred,
                    "--outfile",
                    &sa_cred,
                    "getCredential",
                    "sa",
                    site,
                ]),
            ),
            step(
                "slice-gid",
                "Have the registry make the slice's GID for that key",
                plc(&[
                    "--credfile",
                    &sa_cred,
                    "--outfile",
                    &slice_gid,
                    "createGid",
                    s,
                    "None",
                    &slice_key,
                ]),
            ),
            Step {
                tolerated_fault: Some(105),
                ..step(
                    "remove-slice",
                    "Remove the slice if it already exists",
                    plc(&["--credfile", &sa_cred, "remove", "slice", s]),
                )
            },
            step(
                "register-slice",
                "Register the slice, with the user as its researcher",
                plc(&[
                    "--credfile",
                    &sa_cred,
                    "--researcher",
                    u,
                    "register",
                    "slice",
                    s,
                    &slice_gid,
                ]),
            ),
            step(
                "slice-credential",
                "Get the slice credential",
                plc(&[
                    "--credfile",
                    &user_cred,
                    "--outfile",
                    &slice_cred,
                    "getCredential",
                    "slice",
                    s,
                ]),
            ),
            step(
                "ticket",
                "Get a ticket for the slice on the node",
                plc(&[
                    "--credfile",
                    &slice_cred,
                    "--outfile",
                    &ticket,
                    "getTicket",
                    s,
                    n,
                ]),
            ),
            step(
                "redeem",
                "Redeem the ticket on the node: the sliver is created, a sliver credential comes back",
                node(&[
                    "--ticketfile",
                    &ticket,
                    "--outfile",
                    &sliver_cred,
                    "redeemTicket",
                ]),
            ),
            step(
                "start",
                "Start the sliver: its initscript runs",
                node(&["--credfile", &slice_cred, "startSlice"]),
            ),
            step(
                "list",
                "List the slivers",
                node(&["--credfile", &slice_cred, "listSlices"]),
            ),
            step(
                "stop",
                "Stop the sliver",
                node(&["--credfile", &slice_cred, "stopSlice"]),
            ),
            step(
                "reset",
                "Reset the sliver (re-created pristine, and running again)",
                node(&["--credfile", &slice_cred, "resetSlice"]),
            ),
            step(
                "delete",
                "Delete the sliver",
                node(&["--credfile", &slice_cred, "deleteSlice"]),
            ),
            step(
                "list-after",
                "List the slivers again",
                node(&["--credfile", &slice_cred, "listSlices"]),
            ),
        ]
    }
}

impl Step {
    /// The command line as a user in `dir` would type it.
    pub fn display(&self, dir: &Path) -> String {
        let prefix = format!("{}/", dir.display());
        let mut line = String::from("genicli");
        for a in &self.args {
            let a = a.strip_prefix(&prefix).unwrap_or(a);
            line.push(' ');
            if a.is_empty() || a.contains(|c: char| c.is_whitespace() || c == '\'') {
                line.push_str(&format!("'{}'", a.replace('\'', r"'\''")));
            } else {
                line.push_str(a);
            }
        }
        line
    }

    /// Runs the step through the library, as `genicli` would. A tolerated fault is `Ok(None)`.
    pub async fn run(&self, notes: &mut dyn Write) -> Result<Option<Outcome>, CliError> {
        let invocation = args::parse(&self.args)?;
        match execute(&invocation, notes).await {
            Ok(outcome) => Ok(Some(outcome)),
            Err(CliError::Fault { code, .. }) if Some(code) == self.tolerated_fault => Ok(None),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flow() -> Flow {
        Flow {
            dir: PathBuf::from("/d/user"),
            user: "planetlab.us.pl.alice".parse().unwrap(),
            site: "planetlab.us.pl".parse().unwrap(),
            slice: "planetlab.us.pl.testcw".parse().unwrap(),
            node: "planetlab.us.pl.node1".parse().unwrap(),
            plc_url: "https://127.0.0.1:1/".into(),
            node_url: "https://127.0.0.1:2/".into(),
            trusted_roots: PathBuf::from("/d/trusted_roots"),
        }
    }

    #[test]
    fn every_step_is_a_valid_genicli_command_line() {
        let steps = flow().steps();
        let names: Vec<&str> = steps.iter().map(|s| s.name).collect();
        assert_eq!(
            names,
            [
                "user-credential",
                "slice-key",
                "sa-credential",
                "slice-gid",
                "remove-slice",
                "register-slice",
                "slice-credential",
                "ticket",
                "redeem",
                "start",
                "list",
                "stop",
                "reset",
                "delete",
                "list-after"
            ]
        );
        for s in &steps {
            args::parse(&s.args).unwrap_or_else(|e| panic!("{}: {e}", s.name));
        }
        assert_eq!(
            steps[7].display(Path::new("/d/user")),
            "genicli --server https://127.0.0.1:1/ --username planetlab.us.pl.alice --keyfile \
             alice.pkey --certfile alice.cert --trusted_roots /d/trusted_roots --credfile \
             testcw.cred --outfile testcw.ticket getTicket planetlab.us.pl.testcw \
             planetlab.us.pl.node1"
        );
    }
}
