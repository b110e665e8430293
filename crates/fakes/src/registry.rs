//! The real reference registry (Debian's `docker-registry`, distribution 2.8) on a free
//! loopback port, in the setups our resources meet: no auth, htpasswd basic auth, token auth
//! (the Bearer flow GCR and Artifact Registry use, with a token server of ours), each over
//! plain HTTP or TLS with a private CA.
//!
//! Not a fake: the real server, started and stopped per test. Request counts come from its
//! own access log, so a budget ("at most 3 requests per check") is measured by the server,
//! not by our client. Certificates are made by `openssl` per registry.

use std::fs::File;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BINARY: &str = "docker-registry";

/// How clients must authenticate.
#[derive(Debug, Clone)]
pub enum Auth {
    None,
    /// Basic auth with these `(user, password)` pairs (bcrypt via `htpasswd -B`).
    Htpasswd(Vec<(String, String)>),
    /// Bearer tokens from our token server, which logs in these `(user, password)` pairs.
    Token(Vec<(String, String)>),
}

/// One request from the access log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    pub uri: String,
    pub status: u16,
}

/// A running registry; killed (by its PID) when dropped.
#[derive(Debug)]
pub struct Registry {
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
    tls: bool,
    token_server: Option<crate::token::TokenServer>,
}

impl Registry {
    /// Starts a plain-HTTP registry. Panics with what to install when the binary is missing.
    pub fn start(auth: Auth) -> Self {
        Self::start_with(auth, false)
    }

    /// Starts a registry, over TLS with a fresh private CA when `tls` (see [`Registry::ca_pem`]).
    pub fn start_with(auth: Auth, tls: bool) -> Self {
        let dir = tempfile::tempdir().expect("registry directory");
        let mut token_server = None;
        let tls_yaml = if tls {
            crate::certs::server_cert(dir.path());
            format!(
                ", tls: {{ certificate: {0}/server.pem, key: {0}/server.key }}",
                dir.path().display()
            )
        } else {
            String::new()
        };
        let auth_yaml = match &auth {
            Auth::None => String::new(),
            Auth::Token(users) => {
                let server = crate::token::TokenServer::start(dir.path(), users.clone());
                let yaml = format!(
                    "auth: {{ token: {{ realm: {}, service: {}, issuer: {}, rootcertbundle: {} }} }}\n",
                    server.realm(),
                    crate::token::SERVICE,
                    crate::token::ISSUER,
                    server.cert_path().display()
                );
                token_server = Some(server);
                yaml
            }
            Auth::Htpasswd(users) => {
                let path = dir.path().join("htpasswd");
                let mut lines = String::new();
                for (user, password) in users {
                    let out = Command::new("htpasswd")
                        .args(["-Bbn", user, password])
                        .output()
                        .expect("run htpasswd (apt-get install apache2-utils)");
                    assert!(out.status.success(), "htpasswd failed");
                    lines.push_str(String::from_utf8_lossy(&out.stdout).trim());
                    lines.push('\n');
                }
                std::fs::write(&path, lines).expect("write htpasswd");
                format!(
                    "auth: {{ htpasswd: {{ realm: basic-realm, path: {} }} }}\n",
                    path.display()
                )
            }
        };
        // A free port: bind, read, release. Retried if another process takes it meanwhile.
        for _ in 0..5 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("free port")
                .port();
            let config = format!(
                "version: 0.1\nlog: {{ level: info, accesslog: {{ disabled: false }} }}\nstorage: {{ filesystem: {{ rootdirectory: {} }}, delete: {{ enabled: true }} }}\nhttp: {{ addr: 127.0.0.1:{port}{tls_yaml} }}\n{auth_yaml}",
                dir.path().join("data").display()
            );
            let config_path = dir.path().join("config.yml");
            std::fs::write(&config_path, config).expect("write registry config");
            let log = File::create(dir.path().join("registry.log")).expect("registry log");
            let mut child = Command::new(BINARY)
                .arg("serve")
                .arg(&config_path)
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("log handle"))
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| {
                    panic!("start {BINARY} ({e}); apt-get install docker-registry (.ci/run does)")
                });
            if wait_ready(&mut child, port) {
                return Self {
                    child,
                    dir,
                    port,
                    tls,
                    token_server,
                };
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("docker-registry did not start after 5 attempts")
    }

    /// `127.0.0.1:PORT`, the registry part of a repository name.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The private CA that signed the registry's certificate (TLS registries only).
    pub fn ca_pem(&self) -> Option<String> {
        self.tls
            .then(|| std::fs::read_to_string(self.dir.path().join("ca.pem")).ok())
            .flatten()
    }

    /// Tokens the token server issued (token registries only).
    pub fn tokens_issued(&self) -> usize {
        self.token_server.as_ref().map_or(0, |t| t.issued())
    }

    /// Where the data lives (to corrupt or inspect it in tests).
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("registry.log")
    }

    /// Every request served so far, from the access log, in order.
    pub fn requests(&self) -> Vec<Request> {
        parse_access_log(&std::fs::read_to_string(self.log_path()).unwrap_or_default())
    }

    /// The server's whole log (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// Polls until the port accepts connections (the server needs ~35 ms), up to 10 s; false if
/// the process exited (port taken) or never listened.
fn wait_ready(child: &mut Child, port: u16) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    false
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Lines of the combined log format: `IP - - [date] "METHOD URI HTTP/1.1" STATUS SIZE ...`.
fn parse_access_log(log: &str) -> Vec<Request> {
    log.lines()
        .filter_map(|line| {
            let (_, rest) = line.split_once("] \"")?;
            let (request, rest) = rest.split_once("\" ")?;
            let mut parts = request.split(' ');
            let method = parts.next()?.to_owned();
            let uri = parts.next()?.to_owned();
            let status = rest.split(' ').next()?.parse().ok()?;
            Some(Request {
                method,
                uri,
                status,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_log_lines_become_requests() {
        let log = "time=\"x\" level=info msg=\"response completed\"\n127.0.0.1 - - [26/Nov/2026:20:04:45 +0000] \"HEAD /v2/team/app/manifests/1.0 HTTP/1.1\" 200 345 \"\" \"ua\"\n";
        assert_eq!(
            parse_access_log(log),
            [Request {
                method: "HEAD".into(),
                uri: "/v2/team/app/manifests/1.0".into(),
                status: 200
            }]
        );
    }
}
