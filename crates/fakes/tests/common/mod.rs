//! What the kubectl fidelity tests share: a fake reached over TLS with a bearer token, and
//! kubectl run against it with its output captured (and checked for the token).

#![allow(clippy::unwrap_used, dead_code)]

use fakes::kube::{FakeKube, Options};
use std::process::Command;
use std::time::Duration;

pub struct Cluster {
    pub fake: FakeKube,
    _dir: tempfile::TempDir,
    pub kubeconfig: std::path::PathBuf,
}

pub fn cluster() -> Cluster {
    cluster_with(Options::default())
}

/// A fake over TLS with a bearer token, ticking every 20 ms, plus `options`' other settings.
pub fn cluster_with(options: Options) -> Cluster {
    let fake = FakeKube::start(Options {
        token: Some("canary-kube-token".into()),
        tls: true,
        tick: Duration::from_millis(20),
        ..options
    });
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, fake.kubeconfig()).unwrap();
    Cluster {
        fake,
        _dir: dir,
        kubeconfig,
    }
}

pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Cluster {
    pub fn kubectl(&self, args: &[&str]) -> Out {
        self.kubectl_stdin(args, None)
    }

    pub fn kubectl_stdin(&self, args: &[&str], stdin: Option<&str>) -> Out {
        use std::io::Write;
        let mut cmd = Command::new("kubectl");
        cmd.env("KUBECONFIG", &self.kubeconfig)
            .arg("--request-timeout=20s")
            .args(args);
        cmd.stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().unwrap_or_else(|e| {
            panic!("run kubectl ({e}); the fidelity tests need kubectl installed")
        });
        if let Some(input) = stdin {
            child
                .stdin
                .take()
                .unwrap()
                .write_all(input.as_bytes())
                .unwrap();
        }
        drop(child.stdin.take());
        let out = child.wait_with_output().unwrap();
        let out = Out {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        assert!(
            !out.stdout.contains("canary-kube-token") && !out.stderr.contains("canary-kube-token")
        );
        out
    }

    #[track_caller]
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert_eq!(
            out.code, 0,
            "kubectl {args:?} failed:\n{}{}",
            out.stdout, out.stderr
        );
        out.stdout
    }
}
