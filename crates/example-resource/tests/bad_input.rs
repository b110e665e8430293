//! The bad-input corpus, through the built binary exactly as Concourse would call it: every
//! case exits non-zero with one clear line naming what to fix, no panic, no echo of the
//! request. The table of cases and messages is written to `target/bad-input-table.md` for
//! the docs and closing notes.

use serde_json::json;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use testkit::{Binary, CANARY, arg, temp_dir};

struct Case {
    what: &'static str,
    argv0: &'static str,
    args: Vec<String>,
    stdin: Vec<u8>,
    exit: i32,
    message: &'static str,
}

fn case(
    what: &'static str,
    argv0: &'static str,
    stdin: impl Into<Vec<u8>>,
    exit: i32,
    message: &'static str,
) -> Case {
    Case {
        what,
        argv0,
        args: Vec::new(),
        stdin: stdin.into(),
        exit,
        message,
    }
}

impl Case {
    fn args(mut self, args: &[&str]) -> Self {
        self.args = args.iter().map(|a| (*a).to_owned()).collect();
        self
    }
}

const USAGE: &str = "usage: example-resource check | in <dir> | out <dir>   (JSON request on stdin; Concourse runs /opt/resource/check, in, out)";

#[test]
fn every_bad_input_is_one_line_a_nonzero_exit_and_no_panic() {
    let binary = Binary::at(env!("CARGO_BIN_EXE_example-resource"));
    let dir = temp_dir();
    let d = arg(dir.path());
    // Every request carries the canary in its secret field.
    let req = |mut request: serde_json::Value| {
        if request["source"].is_object() {
            request["source"]["token"] = json!(CANARY);
        }
        request.to_string().into_bytes()
    };
    let mut big = br#"{"source": {"url": ""#.to_vec();
    big.resize(10 * 1024 * 1024, b'a');
    big.extend_from_slice(br#""}}"#);
    let ok_source = json!({"url": "http://x"});

    let cases = vec![
        case("empty stdin", "check", "", 1, "request: stdin is empty; Concourse sends a JSON object, e.g. echo '{\"source\": {...}}' | example-resource check"),
        case("not JSON", "check", "source: {url: x}", 1, "request: not valid JSON (expected value at line 1 column 1)"),
        case("a JSON array", "check", "[{\"source\": {}}]", 1, "request: expected a JSON object {\"source\": {...}}, got a list"),
        case("missing source", "check", "{\"version\": null}", 1, "source: missing; the request needs the resource's configuration (\"source\": {...})"),
        case("missing required key", "check", req(json!({"source": {}})), 1, "source.url: missing; set it to e.g. \"http://feed.example.com/versions\""),
        case("typo of a real key", "check", req(json!({"source": {"url": "http://x", "prefx": "v"}})), 1, "source.prefx: unknown key; did you mean \"prefix\"? (known keys: url, token, prefix, debug)"),
        case("unknown top-level key", "check", req(json!({"source": ok_source, "verison": {}})), 1, "verison: unknown key; did you mean \"version\"? (known keys: source, version)"),
        case("a list where a string is meant", "check", req(json!({"source": {"url": ["http://x"]}})), 1, "source.url: expected a string, got a list"),
        case("a boolean where a string is meant", "check", req(json!({"source": {"url": "http://x", "prefix": true}})), 1, "source.prefix: expected a string, got a boolean; quote it in the pipeline (YAML reads yes/no/on/off/true/false as booleans)"),
        case("a decimal where a string is meant", "check", req(json!({"source": {"url": "http://x", "prefix": 1.10}})), 1, "source.prefix: expected a string, got a decimal number; quote it in the pipeline so YAML keeps it as written (e.g. \"2.10\")"),
        case("a string where an object is meant", "check", "{\"source\": \"http://x\"}", 1, "source: expected an object, got a string"),
        case("a number where a version is meant", "check", req(json!({"source": ok_source, "version": 5})), 1, "version: expected an object of strings, got a number"),
        case("a number inside a version", "in", req(json!({"source": ok_source, "version": {"ref": 5}})), 1, "version.ref: expected a string, got a number (integer)").args(&[d]),
        case("debug not a boolean", "check", "{\"source\": {\"url\": \"http://x\", \"debug\": \"yes\"}}", 1, "source.debug: expected true or false, got a string"),
        case("10 MB of input", "check", big, 1, "request: larger than 1 MiB; Concourse requests are small, so check for a file pasted into source or params"),
        case("invalid UTF-8", "check", b"{\"source\": {\"url\": \"\xff\xfe\"}}".to_vec(), 1, "request: not valid UTF-8 (at byte 20); send a JSON object"),
        case("null version for in", "in", req(json!({"source": ok_source, "version": null})), 1, "version: null; in fetches one existing version: run check first, or pin a version").args(&[d]),
        case("a version given to out", "out", req(json!({"source": ok_source, "version": {"ref": "a"}})), 1, "version: unknown key; out takes only source and params").args(&[d]),
        case("unknown argv[0]", "deploy", "{}", 2, "no step given (called as \"deploy\"); usage: example-resource check | in <dir> | out <dir>   (JSON request on stdin; Concourse runs /opt/resource/check, in, out)"),
        case("unknown step word", "example-resource", "{}", 2, "unknown step \"chek\"; usage: example-resource check | in <dir> | out <dir>   (JSON request on stdin; Concourse runs /opt/resource/check, in, out)").args(&["chek"]),
        case("in without its directory", "in", "{}", 2, "in needs the directory argument; usage: example-resource check | in <dir> | out <dir>   (JSON request on stdin; Concourse runs /opt/resource/check, in, out)"),
        case("out without its directory", "out", "{}", 2, "out needs the directory argument; usage: example-resource check | in <dir> | out <dir>   (JSON request on stdin; Concourse runs /opt/resource/check, in, out)"),
        case("out with a missing directory", "out", req(json!({"source": ok_source})), 1, "out: the sources directory /nonexistent/dir does not exist; pass the build's working directory").args(&["/nonexistent/dir"]),
        case("a bad URL", "check", req(json!({"source": {"url": "feed.example.com"}})), 1, "source.url: not a URL (relative URL without a base); e.g. \"http://feed.example.com/versions\""),
        case("credentials in the URL", "check", req(json!({"source": {"url": format!("http://user:{CANARY}@x/v")}})), 1, "source.url: must not hold credentials; put the token in source.token"),
    ];

    let mut table = String::from("| bad input | exit | the one line on stderr |\n|---|---|---|\n");
    for c in &cases {
        let args: Vec<&str> = c.args.iter().map(String::as_str).collect();
        let run = binary.run(c.argv0, &args, &c.stdin, &BTreeMap::new());
        let line = run.one_line_failure();
        assert_eq!(run.code, c.exit, "{}: {line}", c.what);
        assert_eq!(line, c.message, "{}", c.what);
        if c.exit == 2 {
            assert!(
                line.ends_with(USAGE),
                "{}: usage errors end with the usage line",
                c.what
            );
        }
        run.assert_no_secret(CANARY);
        let _ = writeln!(
            table,
            "| {} | {} | `{}` |",
            c.what,
            run.code,
            line.replace('|', "\\|")
        );
    }
    let out = testkit::target_dir().join("../bad-input-table.md");
    std::fs::write(&out, table).unwrap();
}

#[test]
fn a_yaml_number_where_a_string_is_meant_is_accepted() {
    let feed = fakes::feed::FeedServer::start(&["41-a", "42", "42-b"], None);
    let binary = Binary::at(env!("CARGO_BIN_EXE_example-resource"));
    let request = json!({"source": {"url": feed.url(), "prefix": 42}}).to_string();
    let run = binary.run("check", &[], request.as_bytes(), &BTreeMap::new());
    assert_eq!(run.success(), json!([{"ref": "42-b"}]));
}
