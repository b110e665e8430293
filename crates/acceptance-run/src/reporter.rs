//! How the kubernetes runner gets the reports out of the suite's pod without a shared disk,
//! `kubectl cp` or a shell in the suite's image: this binary is copied into the pod by an init
//! container (`acceptance-run install-reporter DEST`, from `params.reporter_image`, i.e. this
//! resource's own image) and wraps the suite's command (`acceptance-reporter DIR -- CMD...`).
//! After the suite exits it prints each report in `DIR` to the pod's log between markers, base64
//! with its length and SHA-256, and exits with the suite's code. The runner reads the log,
//! forwards every other line to the build log, and checks and writes each report back.
//! (The same idea as Tekton's injected entrypoint binary.)

use base64::Engine as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

const BEGIN: &str = "::acceptance-run:report ";
const END: &str = "::acceptance-run:end";
/// The name the wrapper answers to (its argv[0]).
pub const REPORTER: &str = "acceptance-reporter";

/// Entry points of the two in-pod modes, before the Concourse protocol's dispatch: `Some(exit
/// code)` when argv asked for one of them.
pub fn main_if_asked() -> Option<i32> {
    let args: Vec<String> = std::env::args().collect();
    let argv0 = Path::new(args.first()?)
        .file_name()?
        .to_string_lossy()
        .into_owned();
    if argv0 == REPORTER {
        return Some(wrap(&args[1..]));
    }
    if args.get(1).map(String::as_str) == Some("install-reporter") {
        return Some(install(args.get(2).map(String::as_str)));
    }
    None
}

/// Copies this binary to `dest` (executable).
fn install(dest: Option<&str>) -> i32 {
    let Some(dest) = dest else {
        eprintln!("usage: acceptance-run install-reporter DEST");
        return 2;
    };
    let copied = std::env::current_exe()
        .and_then(|me| std::fs::copy(me, dest))
        .and_then(|_| {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(dest, std::fs::Permissions::from_mode(0o755))
        });
    match copied {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("acceptance-run install-reporter: cannot write {dest}: {e}");
            1
        }
    }
}

/// `acceptance-reporter DIR -- CMD [ARGS...]`.
fn wrap(args: &[String]) -> i32 {
    let (dir, cmd) = match args {
        [dir, sep, cmd @ ..] if sep == "--" && !cmd.is_empty() => (PathBuf::from(dir), cmd),
        _ => {
            eprintln!("usage: {REPORTER} REPORTS_DIR -- COMMAND [ARGS...]");
            return 2;
        }
    };
    let _ = std::fs::create_dir_all(&dir);
    let code = match std::process::Command::new(&cmd[0])
        .args(&cmd[1..])
        .env("REPORTS_DIR", &dir)
        .status()
    {
        Ok(s) => s.code().unwrap_or(128),
        Err(e) => {
            eprintln!("{REPORTER}: cannot start {}: {e}", cmd[0]);
            127
        }
    };
    // This mode is not the Concourse protocol: its stdout is the pod's log, which the runner reads.
    #[allow(clippy::disallowed_methods)]
    let mut out = std::io::stdout().lock();
    for (name, path) in report_files(&dir) {
        let Ok(bytes) = std::fs::read(&path) else {
            continue;
        };
        for line in encode(&name, &bytes) {
            let _ = writeln!(out, "{line}");
        }
    }
    let _ = out.flush();
    code
}

/// One report as the lines of its block in the log: the header (name, length, SHA-256), the
/// base64 in lines of 76, the end marker.
pub fn encode(name: &str, bytes: &[u8]) -> Vec<String> {
    let mut lines = vec![format!(
        "{BEGIN}{name} {} {}",
        bytes.len(),
        protocol::text::sha256_hex(bytes)
    )];
    let encoded = base64::engine::general_purpose::STANDARD.encode(bytes);
    lines.extend(
        encoded
            .as_bytes()
            .chunks(76)
            .map(|c| String::from_utf8_lossy(c).into_owned()),
    );
    lines.push(END.to_owned());
    lines
}

/// The reports a suite writes: `cucumber.json`, `junit.xml`, and `junit/*.xml` (Ruby cucumber).
fn report_files(dir: &Path) -> Vec<(String, PathBuf)> {
    let mut out: Vec<(String, PathBuf)> = ["cucumber.json", "junit.xml"]
        .iter()
        .map(|n| ((*n).to_owned(), dir.join(n)))
        .filter(|(_, p)| p.is_file())
        .collect();
    if let Ok(entries) = std::fs::read_dir(dir.join("junit")) {
        let mut parts: Vec<(String, PathBuf)> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "xml"))
            .filter_map(|p| Some((format!("junit/{}", p.file_name()?.to_str()?), p)))
            .collect();
        parts.sort();
        out.extend(parts);
    }
    out
}

/// The runner's side: reads the pod's log line by line.
#[derive(Debug, Default)]
pub struct Collector {
    current: Option<(String, usize, String, String)>,
    /// Reports received whole: (relative name, bytes).
    pub files: Vec<(String, Vec<u8>)>,
    /// Blocks that did not check out (name and why).
    pub broken: Vec<String>,
}

impl Collector {
    /// Takes one log line; returns it when it belongs in the build log.
    pub fn line<'a>(&mut self, line: &'a str) -> Option<&'a str> {
        if let Some(header) = line.strip_prefix(BEGIN) {
            let mut parts = header.split(' ');
            let name = parts.next().unwrap_or("").to_owned();
            let len = parts.next().and_then(|l| l.parse().ok()).unwrap_or(0);
            let sha = parts.next().unwrap_or("").to_owned();
            self.current = Some((name, len, sha, String::new()));
            return None;
        }
        let Some((name, len, sha, data)) = &mut self.current else {
            return Some(line);
        };
        if line != END {
            data.push_str(line.trim());
            return None;
        }
        let (name, len, sha) = (name.clone(), *len, sha.clone());
        let decoded = base64::engine::general_purpose::STANDARD.decode(data.as_bytes());
        self.current = None;
        let safe = !name.is_empty()
            && !name.starts_with('/')
            && !name.split('/').any(|c| c == ".." || c.is_empty());
        match decoded {
            Ok(bytes)
                if safe && bytes.len() == len && protocol::text::sha256_hex(&bytes) == sha =>
            {
                self.files.push((name, bytes));
            }
            Ok(_) => self.broken.push(format!(
                "{name}: the copy in the pod's log does not match its length and SHA-256"
            )),
            Err(e) => self
                .broken
                .push(format!("{name}: not base64 in the pod's log ({e})")),
        }
        None
    }

    /// At the end of the log: a block still open was cut.
    pub fn finish(&mut self) {
        if let Some((name, ..)) = self.current.take() {
            self.broken
                .push(format!("{name}: the pod's log ended inside the report"));
        }
    }

    /// Writes the reports received into `dir`.
    pub fn write(&self, dir: &Path) -> std::io::Result<()> {
        for (name, bytes) in &self.files {
            let path = dir.join(name);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(path, bytes)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn reports_come_back_whole_and_other_lines_pass_through() {
        let json = vec![b'x'; 1000];
        let mut lines = vec!["Feature: gateway".to_owned()];
        lines.extend(encode("cucumber.json", &json));
        lines.push("after".to_owned());
        lines.extend(encode("junit/a.xml", b"<testsuite/>"));
        let mut c = Collector::default();
        let forwarded: Vec<String> = lines
            .iter()
            .filter_map(|l| c.line(l).map(str::to_owned))
            .collect();
        c.finish();
        assert_eq!(forwarded, vec!["Feature: gateway", "after"]);
        assert_eq!(c.files.len(), 2);
        assert_eq!(c.files[0], ("cucumber.json".to_owned(), json));
        assert_eq!(c.files[1].0, "junit/a.xml");
        assert!(c.broken.is_empty());
    }

    #[test]
    fn a_damaged_or_cut_block_is_reported_not_written() {
        let mut lines = encode("cucumber.json", b"{\"a\": 1}");
        lines[1] = lines[1].replace('e', "f");
        let mut c = Collector::default();
        for l in &lines {
            c.line(l);
        }
        let cut = encode("junit.xml", b"<x/>");
        c.line(&cut[0]);
        c.finish();
        assert!(c.files.is_empty());
        assert_eq!(c.broken.len(), 2, "{:?}", c.broken);
        assert!(c.broken[0].starts_with("cucumber.json:"));
        assert!(c.broken[1].contains("ended inside"));
    }

    #[test]
    fn names_that_climb_out_of_the_reports_directory_are_refused() {
        let mut c = Collector::default();
        for l in encode("../etc/passwd", b"x") {
            c.line(&l);
        }
        assert!(c.files.is_empty());
        assert_eq!(c.broken.len(), 1);
    }
}
