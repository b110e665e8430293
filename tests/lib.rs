//! End-to-end tests across crates and images live in this package's test targets; this
//! library holds what several of them share.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

/// A fake started as a process (`fake-github-api`, `fake-kube-apiserver`): its URL (the first
/// line of its stdout), killed by its PID when dropped.
#[derive(Debug)]
pub struct FakeProcess {
    child: Child,
    pub url: String,
}

impl FakeProcess {
    /// Starts `program args...` and reads its URL line.
    pub fn start(mut command: Command) -> Self {
        let mut child = command
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the fake");
        let mut url = String::new();
        if let Some(out) = child.stdout.take() {
            let _ = BufReader::new(out).read_line(&mut url);
        }
        Self {
            child,
            url: url.trim().to_owned(),
        }
    }
}

impl Drop for FakeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
