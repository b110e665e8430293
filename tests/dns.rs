//! A one-name DNS server on a loopback address, for the name-resolution test of the images.
//!
//! Hand-written (about 60 lines) rather than a crate: the DNS server crates (hickory-server)
//! would add a large dependency tree to answer one A record. It answers A queries for one
//! name with one address, anything else with an empty NOERROR answer (so the resolver does not
//! wait on AAAA), and stops when dropped.

use std::net::{Ipv4Addr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

pub struct DnsServer {
    ip: Ipv4Addr,
    stop: Arc<AtomicBool>,
    answered: Arc<AtomicUsize>,
    thread: Option<JoinHandle<()>>,
}

impl DnsServer {
    /// Binds port 53 (resolv.conf has no port) on a free 127.0.0.x address; needs root.
    pub fn start(name: &str, answer: [u8; 4]) -> Self {
        let (ip, socket) = (2..=250u8)
            .map(|x| Ipv4Addr::new(127, 0, 53, x))
            .find_map(|ip| UdpSocket::bind((ip, 53)).ok().map(|s| (ip, s)))
            .expect("bind UDP port 53 on a 127.0.53.x address (the test must run as root)");
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .expect("read timeout");
        let stop = Arc::new(AtomicBool::new(false));
        let answered = Arc::new(AtomicUsize::new(0));
        let wanted = encode_name(name);
        let (stop2, answered2) = (stop.clone(), answered.clone());
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 512];
            // Bounded: stops when dropped, and after 10 minutes whatever happens.
            for _ in 0..6000 {
                if stop2.load(Ordering::Relaxed) {
                    break;
                }
                let Ok((len, peer)) = socket.recv_from(&mut buf) else {
                    continue;
                };
                if let Some(reply) = reply(&buf[..len], &wanted, answer) {
                    let _ = socket.send_to(&reply, peer);
                    answered2.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        Self {
            ip,
            stop,
            answered,
            thread: Some(thread),
        }
    }

    pub fn ip(&self) -> Ipv4Addr {
        self.ip
    }

    /// Queries answered so far.
    pub fn answered(&self) -> usize {
        self.answered.load(Ordering::Relaxed)
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn encode_name(name: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for label in name.trim_end_matches('.').split('.') {
        out.push(label.len() as u8);
        out.extend(label.to_ascii_lowercase().bytes());
    }
    out.push(0);
    out
}

/// RFC 1035 section 4: header (12 bytes), the question echoed, then an A record pointing back
/// at the question's name (compression pointer 0xc00c) when it is the wanted name.
fn reply(query: &[u8], wanted: &[u8], answer: [u8; 4]) -> Option<Vec<u8>> {
    let question = query.get(12..)?;
    let name_len = question.iter().position(|&b| b == 0)? + 1;
    let qtype = u16::from_be_bytes([*question.get(name_len)?, *question.get(name_len + 1)?]);
    let question = question.get(..name_len + 4)?;
    let name = question[..name_len].to_ascii_lowercase();
    let hit = qtype == 1 && name == wanted;
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(&query[..2]); // id
    out.extend_from_slice(&[0x81, 0x80]); // response, recursion desired + available, NOERROR
    out.extend_from_slice(&[0, 1, 0, u8::from(hit), 0, 0, 0, 0]);
    out.extend_from_slice(question);
    if hit {
        out.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4]);
        out.extend_from_slice(&answer);
    }
    Some(out)
}
