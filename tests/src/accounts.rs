//! Throw-away Unix accounts for tests that switch uid (the NodeManager backend's and the node's
//! NodeManager tests): created with `useradd`, removed again on drop even when a test fails.

use std::process::Command;
use std::sync::{Mutex, PoisonError};

/// useradd and userdel take /etc/passwd's lock and fail rather than wait: one at a time.
static PASSWD: Mutex<()> = Mutex::new(());

/// Accounts created for one test, deleted on drop.
#[derive(Debug, Default)]
pub struct Users(Vec<String>);

impl Users {
    pub fn add(&mut self, name: &str) {
        let _lock = PASSWD.lock().unwrap_or_else(PoisonError::into_inner);
        let status = Command::new("useradd")
            .args([
                "-M",
                "-s",
                "/usr/sbin/nologin",
                "-c",
                "nm-bridge test",
                name,
            ])
            .status()
            .expect("useradd runs");
        assert!(status.success(), "useradd {name}: {status}");
        self.0.push(name.to_owned());
    }
}

impl Drop for Users {
    fn drop(&mut self) {
        let _lock = PASSWD.lock().unwrap_or_else(PoisonError::into_inner);
        for name in &self.0 {
            let _ = Command::new("userdel").arg(name).status();
        }
    }
}

/// Why these tests cannot run here, if they cannot.
pub fn skip_reason() -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        return Some("not root (the tests switch uid and create accounts)".to_owned());
    }
    if Command::new("useradd").arg("--help").output().is_err() {
        return Some("useradd is missing".to_owned());
    }
    None
}
