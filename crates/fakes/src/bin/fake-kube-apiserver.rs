//! `fake-kube-apiserver --listen 127.0.0.1:PORT [--tls] [--token T] [--kubeconfig-out PATH]
//! [--registry HOST:PORT] [--docker] [--tick-ms N] [--exit-after SECONDS]`: the Kubernetes
//! fake as a process; `--docker` runs its pods as Docker containers. Prints its URL on the first line of stdout; writes a kubeconfig for it (context
//! `fake`) when asked; serves until killed or `--exit-after` (default one hour).

// A command-line tool: its URL line is its stdout.
#![allow(clippy::print_stdout)]

use fakes::kube::controller::Pullable;
use fakes::kube::{FakeKube, Options};
use std::time::Duration;

fn main() {
    let mut listen = "127.0.0.1:0".to_owned();
    let mut options = Options::default();
    let mut kubeconfig_out = None;
    let mut exit_after = 3600u64;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| {
            args.next().unwrap_or_else(|| {
                eprintln!("fake-kube-apiserver: {name} needs a value");
                std::process::exit(2)
            })
        };
        match arg.as_str() {
            "--listen" => listen = value("--listen"),
            "--tls" => options.tls = true,
            "--docker" => options.docker = true,
            "--token" => options.token = Some(value("--token")),
            "--kubeconfig-out" => kubeconfig_out = Some(value("--kubeconfig-out")),
            "--registry" => options.pullable = Pullable::Registry(value("--registry")),
            "--tick-ms" => {
                options.tick = Duration::from_millis(value("--tick-ms").parse().unwrap_or(50))
            }
            "--exit-after" => exit_after = value("--exit-after").parse().unwrap_or(3600),
            other => {
                eprintln!(
                    "fake-kube-apiserver: unknown argument {other}; usage: fake-kube-apiserver --listen 127.0.0.1:PORT [--tls] [--token T] [--kubeconfig-out PATH] [--registry HOST:PORT] [--docker] [--tick-ms N] [--exit-after SECONDS]"
                );
                std::process::exit(2);
            }
        }
    }
    let listener = match std::net::TcpListener::bind(&listen) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("fake-kube-apiserver: cannot listen on {listen}: {e}");
            std::process::exit(1);
        }
    };
    let fake = match FakeKube::try_start_on(listener, options) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("fake-kube-apiserver: {e}");
            std::process::exit(1);
        }
    };
    if let Some(path) = kubeconfig_out
        && let Err(e) = std::fs::write(&path, fake.kubeconfig())
    {
        eprintln!("fake-kube-apiserver: cannot write {path}: {e}");
        std::process::exit(1);
    }
    println!("{}", fake.url());
    std::thread::sleep(Duration::from_secs(exit_after));
}
