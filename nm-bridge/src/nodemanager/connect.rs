//! Connecting to NodeManager as another account, and the helper program that does the connect.
//!
//! NM takes a caller's identity from the uid that called `connect()`: the kernel records the
//! peer credentials then (SO_PEERCRED, `reference/nodemanager.md` §1.2). A root agent cannot
//! switch uid for one connection, because `setuid` applies to the whole process under glibc and
//! musl, and forking a multi-threaded tokio process is not safe. So the agent creates an
//! unconnected Unix stream socket and starts a short-lived helper as the target account
//! (`Command::uid/gid`; std drops supplementary groups when root does that) with a duplicate of
//! that socket as its standard input. The helper calls `connect()` on it and exits. The agent
//! holds the same socket, now connected, and NM attributes it to the helper's uid.
//!
//! This is `rust-stack.md` §5's verified helper design, with the descriptor passed *to* the
//! helper before it connects instead of back over SCM_RIGHTS afterwards. nix hands a received
//! descriptor over as a bare `RawFd`, which only `unsafe` can turn into an owned one, and this
//! crate forbids `unsafe`. A duplicated `OwnedFd` given as stdin needs none, and there is no
//! second channel, message framing or stray received descriptor to get wrong.

use std::os::fd::AsRawFd as _;
use std::os::unix::net::UnixStream as StdUnixStream;
use std::path::Path;
use std::process::{ExitCode, Stdio};
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::prctl;
use nix::sys::socket::{AddressFamily, SockFlag, SockType, UnixAddr, connect, socket};
use nix::unistd::{User, getuid};

use crate::NmError;

/// A local account to call NodeManager as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Account {
    pub(super) name: String,
    pub(super) uid: u32,
    pub(super) gid: u32,
}

/// The passwd entry named `name`, if there is one.
pub(super) fn lookup(name: &str) -> Result<Option<Account>, NmError> {
    let user = User::from_name(name).map_err(|e| {
        NmError::io(
            "/etc/passwd",
            std::io::Error::other(format!("looking up account {name}: {}", e.desc())),
        )
    })?;
    Ok(user.map(|u| Account {
        name: u.name,
        uid: u.uid.as_raw(),
        gid: u.gid.as_raw(),
    }))
}

/// This process's own identity (for calls anyone may make, such as `GetXIDs`).
pub(super) fn this_process() -> Account {
    let uid = nix::unistd::geteuid();
    let name = User::from_uid(uid)
        .ok()
        .flatten()
        .map_or_else(|| format!("uid {uid}"), |u| u.name);
    Account {
        name,
        uid: uid.as_raw(),
        gid: nix::unistd::getegid().as_raw(),
    }
}

/// A stream connected to `socket` by `helper` (argv; `socket` is appended) running as
/// `account`, within `timeout`.
pub(super) async fn via_helper(
    helper: &[String],
    socket_path: &Path,
    account: &Account,
    timeout: Duration,
) -> Result<StdUnixStream, NmError> {
    let who = format!("{} (uid {})", account.name, account.uid);
    let Some((program, fixed)) = helper.split_first() else {
        return Err(NmError::Permission(format!(
            "no NodeManager connect helper is configured, so NodeManager cannot be called as {who}"
        )));
    };
    let ours = socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(|e| NmError::io(socket_path, e.into()))?;
    let theirs = ours.try_clone().map_err(|e| NmError::io(socket_path, e))?;
    let mut command = tokio::process::Command::new(program);
    command
        .args(fixed)
        .arg(socket_path)
        .uid(account.uid)
        .gid(account.gid)
        // The helper runs as the sliver's account, which may read its environment: pass nothing.
        .env_clear()
        .current_dir("/")
        .stdin(Stdio::from(theirs))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let child = command.spawn().map_err(|e| match e.kind() {
        std::io::ErrorKind::PermissionDenied => NmError::Permission(format!(
            "cannot start the NodeManager connect helper {program} as {who}: {e} (the agent must \
             run as root to call NodeManager as other accounts)"
        )),
        _ => NmError::Transport(format!(
            "cannot start the NodeManager connect helper {program} as {who}: {e}"
        )),
    })?;
    let output = match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Ok(Ok(output)) => output,
        Ok(Err(e)) => {
            return Err(NmError::Transport(format!(
                "waiting for the NodeManager connect helper running as {who}: {e}"
            )));
        }
        Err(_) => {
            return Err(NmError::Transport(format!(
                "the NodeManager connect helper running as {who} did not connect to {} within \
                 {timeout:?}",
                socket_path.display()
            )));
        }
    };
    if !output.status.success() {
        let said = String::from_utf8_lossy(&output.stderr);
        let said: String = said.trim().chars().take(600).collect();
        let said = if said.is_empty() {
            output.status.to_string()
        } else {
            said
        };
        return Err(NmError::Transport(format!(
            "connecting to NodeManager at {} as {who} failed: {said}",
            socket_path.display()
        )));
    }
    let stream = StdUnixStream::from(ours);
    // The helper runs as an account its owner controls; make sure it connected where it was told
    // (a process of that uid could otherwise point it at a socket of its own).
    match stream.peer_addr() {
        Ok(peer) if peer.as_pathname() == Some(socket_path) => Ok(stream),
        Ok(peer) => Err(NmError::Transport(format!(
            "the NodeManager connect helper running as {who} connected to {:?}, not to {}; \
             refusing the connection (if NodeManager binds its socket under another name, \
             configure that name)",
            peer.as_pathname(),
            socket_path.display()
        ))),
        Err(e) => Err(NmError::Transport(format!(
            "the NodeManager connect helper running as {who} exited without connecting to {} ({e})",
            socket_path.display()
        ))),
    }
}

/// The connect helper program, for the agent binary to expose as a hidden subcommand
/// (`geni-agent nm-connect <socket>`): `args` are the arguments after the subcommand, exactly
/// one, the NodeManager socket path.
///
/// It expects an unconnected Unix stream socket as its standard input, connects it to the path,
/// and exits 0; on failure it says why on standard error and exits 1 (2 for misuse). The backend
/// starts it already running as the account NodeManager should see; it never switches uid
/// itself.
pub fn connect_helper_main(args: &[String]) -> ExitCode {
    // Not dumpable means another process of the same uid cannot ptrace this one and point the
    // connection elsewhere. Failure leaves only the parent's peer check, so it is not fatal.
    let _ = prctl::set_dumpable(false);
    let [socket_path] = args else {
        eprintln!(
            "usage: nm-connect <NodeManager socket>\n(an internal helper of geni-agent: it connects \
             the socket it is given as standard input)"
        );
        return ExitCode::from(2);
    };
    let addr = match UnixAddr::new(Path::new(socket_path)) {
        Ok(addr) => addr,
        Err(e) => {
            eprintln!("nm-connect: {socket_path}: {}", e.desc());
            return ExitCode::from(2);
        }
    };
    let stdin = std::io::stdin();
    match connect(stdin.as_raw_fd(), &addr) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Errno::ENOTSOCK) => {
            eprintln!(
                "nm-connect: standard input is not a socket (this helper is started by geni-agent, \
                 which hands it the socket to connect)"
            );
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!(
                "nm-connect: cannot connect to {socket_path} as uid {}: {}",
                getuid(),
                e.desc()
            );
            ExitCode::FAILURE
        }
    }
}
