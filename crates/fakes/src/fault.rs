//! A fault-injecting TCP proxy for HTTP/1.1: put it between a client and a real server and
//! script what goes wrong (a status with `Retry-After`, a connection cut part-way through a
//! request body). Everything else passes through byte for byte.
//!
//! Each request is forced onto its own connection (`Connection: close` is written into the
//! request head) so the proxy sees every request line. Hand-written on tokio (about 150 lines):
//! noxious (the Toxiproxy port) works on bytes, not requests, and loses responses that end with
//! `Connection: close`.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

/// What to do to a matching request.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Answer with this status (and `Retry-After` seconds) instead of forwarding.
    Status { code: u16, retry_after: Option<u64> },
    /// Forward the head and this many body bytes, then close both connections.
    CutAfter(usize),
    /// Accept the request and never answer or read another byte (a hung server; an upload
    /// stalls once the socket buffers are full).
    Silent,
    /// Read and discard the whole request, forever, and never answer.
    Swallow,
    /// Pass through, both ways, at about this many bytes a second (slow but alive).
    Throttle(usize),
}

/// A fault for the next `times` requests whose method and path match.
#[derive(Debug, Clone)]
pub struct Rule {
    pub method: &'static str,
    /// A substring of the request target.
    pub path_contains: &'static str,
    pub times: usize,
    pub fault: Fault,
}

#[derive(Debug, Default)]
struct State {
    rules: Vec<Rule>,
    fired: Vec<String>,
}

/// A running proxy; stops when dropped.
#[derive(Debug)]
pub struct FaultProxy {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl FaultProxy {
    pub fn start(upstream: SocketAddr, rules: Vec<Rule>) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind proxy port");
        listener.set_nonblocking(true).expect("non-blocking");
        let addr = listener.local_addr().expect("proxy address");
        let state = Arc::new(Mutex::new(State {
            rules,
            fired: Vec::new(),
        }));
        let (stop, mut stopped) = oneshot::channel::<()>();
        let shared = state.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("proxy runtime");
            rt.block_on(async move {
                let listener = TcpListener::from_std(listener).expect("tokio listener");
                loop {
                    tokio::select! {
                        _ = &mut stopped => break,
                        accepted = listener.accept() => {
                            if let Ok((client, _)) = accepted {
                                tokio::spawn(handle(client, upstream, shared.clone()));
                            }
                        }
                    }
                }
            });
        });
        Self {
            addr,
            state,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// `127.0.0.1:PORT`, to use as the server's address.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// `METHOD target` of each request a fault was applied to.
    pub fn fired(&self) -> Vec<String> {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .fired
            .clone()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn handle(mut client: TcpStream, upstream: SocketAddr, state: Arc<Mutex<State>>) {
    // Read the request head.
    let mut buf = Vec::with_capacity(4096);
    let head_end = loop {
        let mut chunk = [0u8; 4096];
        match client.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
        // Not HTTP (a TLS ClientHello from a client probing https first): close at once, as
        // a plain-HTTP server would, instead of waiting for a head that never comes.
        if !buf[0].is_ascii_uppercase() {
            return;
        }
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > 64 * 1024 {
            return;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut request_line = head.lines().next().unwrap_or("").split(' ');
    let method = request_line.next().unwrap_or("").to_owned();
    let target = request_line.next().unwrap_or("").to_owned();

    let fault = {
        let mut s = state.lock().unwrap_or_else(PoisonError::into_inner);
        let hit = s
            .rules
            .iter_mut()
            .find(|r| r.times > 0 && r.method == method && target.contains(r.path_contains))
            .map(|r| {
                r.times -= 1;
                r.fault.clone()
            });
        if hit.is_some() {
            s.fired.push(format!("{method} {target}"));
        }
        hit
    };

    if let Some(Fault::Status { code, retry_after }) = &fault {
        let retry = retry_after
            .map(|s| format!("Retry-After: {s}\r\n"))
            .unwrap_or_default();
        let body = r#"{"errors":[{"code":"TOOMANYREQUESTS","message":"injected fault"}]}"#;
        let response = format!(
            "HTTP/1.1 {code} Injected\r\n{retry}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = client.write_all(response.as_bytes()).await;
        let _ = client.shutdown().await;
        return;
    }

    match &fault {
        Some(Fault::Silent) => {
            let _held = client;
            std::future::pending::<()>().await;
            return;
        }
        Some(Fault::Swallow) => {
            let mut chunk = [0u8; 16 * 1024];
            while let Ok(n) = client.read(&mut chunk).await {
                if n == 0 {
                    // The client closed its side; keep ours open, still silent.
                    std::future::pending::<()>().await;
                }
            }
            return;
        }
        _ => {}
    }

    let Ok(mut server) = TcpStream::connect(upstream).await else {
        return;
    };
    // One request per connection: rewrite the head with Connection: close.
    let mut rewritten: String = head
        .trim_end_matches("\r\n")
        .lines()
        .filter(|l| !l.to_ascii_lowercase().starts_with("connection:"))
        .map(|l| format!("{l}\r\n"))
        .collect();
    rewritten.push_str("Connection: close\r\n\r\n");
    if server.write_all(rewritten.as_bytes()).await.is_err() {
        return;
    }
    let already = buf[head_end..].to_vec();

    if let Some(Fault::CutAfter(limit)) = fault {
        let mut sent = already.len().min(limit);
        let _ = server.write_all(&already[..sent]).await;
        let mut chunk = [0u8; 16 * 1024];
        while sent < limit {
            match client.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let n = n.min(limit - sent);
                    let _ = server.write_all(&chunk[..n]).await;
                    sent += n;
                }
            }
        }
        // Cut: both sides see the connection end mid-request.
        drop(server);
        drop(client);
        return;
    }

    if server.write_all(&already).await.is_err() {
        return;
    }
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    if let Some(Fault::Throttle(rate)) = fault {
        let upload = async {
            throttled_copy(&mut client_read, &mut server_write, rate).await;
            let _ = server_write.shutdown().await;
        };
        let download = async {
            throttled_copy(&mut server_read, &mut client_write, rate).await;
            let _ = client_write.shutdown().await;
        };
        tokio::join!(upload, download);
        return;
    }
    let upload = async {
        let _ = tokio::io::copy(&mut client_read, &mut server_write).await;
        let _ = server_write.shutdown().await;
    };
    let download = async {
        let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
        let _ = client_write.shutdown().await;
    };
    tokio::join!(upload, download);
}

/// Copies at about `rate` bytes a second, in tenth-of-a-second slices.
async fn throttled_copy(
    from: &mut (impl tokio::io::AsyncRead + Unpin),
    to: &mut (impl tokio::io::AsyncWrite + Unpin),
    rate: usize,
) {
    let slice = (rate / 10).max(1);
    let mut chunk = vec![0u8; slice];
    loop {
        match from.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if to.write_all(&chunk[..n]).await.is_err() {
                    return;
                }
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}
