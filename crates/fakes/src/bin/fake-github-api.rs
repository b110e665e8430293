//! `fake-github-api --listen 127.0.0.1:PORT [--token T]... [--repo OWNER/NAME]... [--ahead N]
//! [--exit-after SECONDS]`: the GitHub fake as a process, for the demo and the image tests.
//! Prints its URL on the first line of stdout, then serves until killed or `--exit-after`
//! (default one hour) has passed. Each `--repo` gets `master`, and `develop` N commits ahead.

// A command-line tool for people and scripts: its URL line is its stdout.
#![allow(clippy::print_stdout)]

use std::time::Duration;

fn main() {
    let mut listen = "127.0.0.1:0".to_owned();
    let (mut tokens, mut repos) = (Vec::new(), Vec::new());
    let (mut ahead, mut exit_after) = (1usize, 3600u64);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| {
            args.next().unwrap_or_else(|| {
                eprintln!("fake-github-api: {name} needs a value");
                std::process::exit(2)
            })
        };
        match arg.as_str() {
            "--listen" => listen = value("--listen"),
            "--token" => tokens.push(value("--token")),
            "--repo" => repos.push(value("--repo")),
            "--ahead" => ahead = value("--ahead").parse().unwrap_or(1),
            "--exit-after" => exit_after = value("--exit-after").parse().unwrap_or(3600),
            other => {
                eprintln!(
                    "fake-github-api: unknown argument {other}; usage: fake-github-api --listen 127.0.0.1:PORT [--token T]... [--repo OWNER/NAME]... [--ahead N] [--exit-after SECONDS]"
                );
                std::process::exit(2);
            }
        }
    }
    let listener = match std::net::TcpListener::bind(&listen) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("fake-github-api: cannot listen on {listen}: {e}");
            std::process::exit(1);
        }
    };
    let fake = fakes::github::FakeGithub::start_on(listener);
    for t in &tokens {
        fake.add_token(t);
    }
    for r in &repos {
        fake.add_repo(r);
        fake.push(r, "develop", ahead);
    }
    println!("{}", fake.url());
    std::thread::sleep(Duration::from_secs(exit_after));
}
