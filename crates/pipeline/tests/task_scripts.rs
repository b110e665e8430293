//! The unit-test task's script (`ci/tasks/unit-tests.sh`) on sample repositories of each shape
//! the team has (`examples/task-samples`), run for real with Debian's `golang` and
//! `nodejs`/`npm` under `/bin/sh` (dash on Debian: no bash-isms), the way the task runs it:
//! from the build directory, the repository in `source/`, the table's values as params.
//! `.ci/run` installs golang-go and nodejs/npm.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn copy(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}

struct Outcome {
    code: i32,
    output: String,
}

/// Runs the script in a fresh build directory holding `sample` as `source/`.
fn run(sample: &str, params: &[(&str, &str)], prepare: impl FnOnce(&Path, &Path)) -> Outcome {
    let build = tempfile::tempdir().unwrap();
    copy(
        &root().join("examples/task-samples").join(sample),
        &build.path().join("source"),
    );
    let gopath = build.path().join("gopath");
    prepare(&build.path().join("source"), &gopath);
    let out = Command::new("/bin/sh")
        .arg(root().join("ci/tasks/unit-tests.sh"))
        .current_dir(build.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", build.path())
        .env("GOPATH", &gopath)
        .env("GOCACHE", build.path().join("gocache"))
        .env("npm_config_cache", build.path().join("npm-cache"))
        .env("npm_config_offline", "true")
        .envs(params.iter().copied())
        .output()
        .unwrap_or_else(|e| panic!("run /bin/sh: {e}"));
    Outcome {
        code: out.status.code().unwrap_or(-1),
        output: format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

#[track_caller]
fn needs(tool: &str) {
    let found = Command::new(tool).arg("--version").output().is_ok()
        || Command::new(tool).arg("version").output().is_ok();
    assert!(
        found,
        "{tool} is missing: .ci/run installs it (apt-get install golang-go nodejs npm)"
    );
}

const GO: &[(&str, &str)] = &[
    ("LANGUAGE", "go"),
    ("TEST_COMMAND", "./coverage.sh"),
    ("GO_IMPORT_PATH", "github.com/example/go-gopath"),
];

#[test]
fn a_gopath_repository_with_a_vendored_import_passes_its_coverage_script() {
    needs("go");
    let ok = run("go-gopath", GO, |_, _| {});
    assert_eq!(ok.code, 0, "{}", ok.output);
    assert!(
        ok.output.contains("placing the repository at"),
        "{}",
        ok.output
    );
    assert!(
        ok.output.contains("coverage:"),
        "go test -cover ran:\n{}",
        ok.output
    );

    // A failing test fails the task with the test's own output.
    let failing = run("go-gopath", GO, |src, _| {
        let test = src.join("greet/greet_test.go");
        let text = std::fs::read_to_string(&test).unwrap();
        std::fs::write(test, text.replace("HELLO GOPHER", "hello gopher")).unwrap();
    });
    assert_ne!(failing.code, 0, "{}", failing.output);
    assert!(
        failing.output.contains("Hello = \"HELLO GOPHER\""),
        "{}",
        failing.output
    );

    // Without its place in GOPATH the vendored import would not resolve: the import path
    // is what the script needs, and it says so when it is missing.
    let missing = run(
        "go-gopath",
        &[("LANGUAGE", "go"), ("TEST_COMMAND", "./coverage.sh")],
        |_, _| {},
    );
    assert_ne!(missing.code, 0);
    assert!(
        missing.output.contains("GO_IMPORT_PATH is not set"),
        "{}",
        missing.output
    );
}

#[test]
fn a_node_repository_is_installed_then_tested() {
    needs("npm");
    let ok = run(
        "node-npm",
        &[("LANGUAGE", "node"), ("TEST_COMMAND", "npm test")],
        |_, _| {},
    );
    assert_eq!(ok.code, 0, "{}", ok.output);
    assert!(ok.output.contains("npm install"), "{}", ok.output);
    assert!(ok.output.contains("1 passing"), "{}", ok.output);

    let failing = run(
        "node-npm",
        &[("LANGUAGE", "node"), ("TEST_COMMAND", "npm test")],
        |src, _| {
            std::fs::write(
                src.join("test.js"),
                "require('assert').strictEqual(1, 2);\n",
            )
            .unwrap()
        },
    );
    assert_ne!(failing.code, 0, "{}", failing.output);
    assert!(
        failing.output.contains("AssertionError"),
        "{}",
        failing.output
    );
}

#[test]
fn gulp_test_uses_the_repositorys_own_gulp() {
    needs("npm");
    let ok = run(
        "node-gulp",
        &[("LANGUAGE", "node"), ("TEST_COMMAND", "gulp test")],
        |_, _| {},
    );
    assert_eq!(ok.code, 0, "{}", ok.output);
    assert!(ok.output.contains("gulp test: 1 passing"), "{}", ok.output);
    assert!(
        !ok.output.contains("installing gulp-cli"),
        "the repository's gulp (node_modules/.bin) was found:\n{}",
        ok.output
    );
}

#[test]
fn godog_is_installed_with_go_get_when_the_image_lacks_it() {
    needs("go");
    let ok = run(
        "go-godog",
        &[
            ("LANGUAGE", "go"),
            ("TEST_COMMAND", "godog"),
            ("GO_IMPORT_PATH", "github.com/example/go-godog"),
        ],
        |_, gopath| {
            copy(
                &root().join("examples/task-samples/godog-standin"),
                &gopath.join("src/github.com/DATA-DOG/godog/cmd/godog"),
            );
        },
    );
    assert_eq!(ok.code, 0, "{}", ok.output);
    assert!(
        ok.output
            .contains("installing godog: go get github.com/DATA-DOG/godog/cmd/godog"),
        "{}",
        ok.output
    );
    assert!(
        ok.output.contains("1 scenarios (1 passed)"),
        "{}",
        ok.output
    );
}

#[test]
fn the_script_is_posix_sh() {
    // dash (Debian's /bin/sh, the base images' shell) parses it; no bash-only syntax.
    let out = Command::new("/bin/sh")
        .args(["-n"])
        .arg(root().join("ci/tasks/unit-tests.sh"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(root().join("ci/tasks/unit-tests.sh")).unwrap();
    for bashism in ["[[", "function ", "$'", "<<<", "${!", "pipefail", "local "] {
        assert!(
            !text.contains(bashism),
            "bash-only {bashism:?} in unit-tests.sh"
        );
    }
}

/// `ci/preflight.sh` (run first by `make demo`, `make test` and .ci/run, before anything is
/// compiled) on a machine without docker-registry: one line naming the package and the exact
/// command, exit 1, when it may not install (not root, or PREFLIGHT_INSTALL=never).
#[test]
fn preflight_names_what_is_missing_and_the_command_before_anything_compiles() {
    let bin = tempfile::tempdir().unwrap();
    // A PATH with the script's own tools and nothing else: no docker-registry, no go.
    for tool in ["id", "docker"] {
        if let Some(found) = ["/usr/bin", "/bin"]
            .iter()
            .map(|d| Path::new(d).join(tool))
            .find(|p| p.exists())
        {
            std::os::unix::fs::symlink(found, bin.path().join(tool)).unwrap();
        }
    }
    let run = |purpose: &str| {
        Command::new("/bin/sh")
            .arg(root().join("ci/preflight.sh"))
            .arg(purpose)
            .env_clear()
            .env("PATH", bin.path())
            .env("PREFLIGHT_INSTALL", "never")
            .output()
            .unwrap()
    };
    let demo = run("demo");
    assert_eq!(demo.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&demo.stderr),
        "preflight: missing docker-registry; run: sudo apt-get install -y docker-registry\n"
    );
    let test = run("test");
    assert_eq!(test.status.code(), Some(1));
    let line = String::from_utf8_lossy(&test.stderr).into_owned();
    assert!(
        line.starts_with("preflight: missing ")
            && line.contains(" golang-go")
            && line.contains("; run: sudo apt-get install -y "),
        "{line}"
    );
    assert_eq!(line.lines().count(), 1, "{line}");
    let usage = run("other");
    assert_eq!(usage.status.code(), Some(2));
}
