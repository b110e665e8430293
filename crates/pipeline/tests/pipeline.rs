//! The committed pipeline: rendered from the table, clean under the checker; and the checker
//! on broken pipelines, each finding with its line.

#![allow(clippy::unwrap_used)]

use pipeline::check::{Context, Finding, check, var_names};
use pipeline::render;
use std::collections::BTreeSet;
use std::path::PathBuf;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("read {path}: {e}"))
}

fn ctx() -> Context {
    Context {
        self_resource: Some("ci".into()),
        root: Some(root()),
        vars: Some(var_names(&read("ci/vars.example.yml")).unwrap()),
        ..Context::default()
    }
}

#[test]
fn the_committed_pipeline_is_the_rendering_of_the_table() {
    let repos = render::repos(&read("ci/repos.yml")).unwrap();
    let keys = render::google_keys(&read("ci/repos.yml")).unwrap();
    let production = render::production(&read("ci/repos.yml"), &repos).unwrap();
    assert_eq!(repos.len(), 7);
    assert_eq!(
        read("ci/pipeline.yml"),
        render::pipeline_for(&repos, &keys, &production),
        "ci/pipeline.yml is stale: run `make pipeline`"
    );
    assert_eq!(
        read("ci/k8s/services.yml"),
        render::services(&repos),
        "ci/k8s/services.yml is stale: run `make pipeline`"
    );
}

#[test]
fn the_committed_pipeline_passes_the_checker() {
    assert_eq!(
        check(&read("ci/pipeline.yml"), &ctx()),
        Vec::<Finding>::new()
    );
}

/// A type the workers provide is allowed by name (`--allow-type`), and only that one.
#[test]
fn types_from_elsewhere_can_be_allowed_by_name() {
    let yaml = "resources:\n- name: a\n  type: slack-notification\n- name: b\n  type: gcr-image\njobs:\n- name: j\n  plan:\n  - get: a\n  - get: b\n";
    let ctx = Context {
        allowed_types: ["slack-notification".to_owned()].into_iter().collect(),
        ..Context::default()
    };
    let found: Vec<String> = check(yaml, &ctx).into_iter().map(|f| f.message).collect();
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].contains("unknown type \"gcr-image\""), "{found:?}");
}

/// The demo's sample system renders with the same renderer; its pipeline passes too (with
/// every project rule: the task files it names are this repository's).
#[test]
fn the_sample_systems_pipeline_passes_the_checker() {
    let repos = pipeline::render::repos(&read("examples/sample-system/repos.yml")).unwrap();
    let text = pipeline::render::pipeline(&repos);
    // Its deploy keys are the demo's, not the team's vars example.
    let ctx = Context {
        vars: None,
        ..ctx()
    };
    assert_eq!(check(&text, &ctx), Vec::<Finding>::new());
}

#[test]
fn the_pipeline_wires_the_seven_repositories_and_gates_production() {
    let text = read("ci/pipeline.yml");
    let doc = pipeline::yaml::parse(&text).unwrap();
    let jobs: Vec<&str> = doc
        .get("jobs")
        .unwrap()
        .items()
        .iter()
        .filter_map(|j| j.get("name").and_then(|n| n.as_str()))
        .collect();
    for repo in [
        "micro-api-gateway",
        "micro-authentication-service",
        "micro-authorization-service",
        "micro-fellowship-role-service",
        "micro-user-management-service",
        "micro-assessment-service",
        "micro-acceptance-tests",
    ] {
        assert!(
            jobs.contains(&format!("unit-{repo}").as_str()),
            "{repo} has a unit-test job"
        );
    }
    for (repo, image, command) in [
        ("micro-authorization-service", "node", "gulp test"),
        ("micro-acceptance-tests", "golang", "godog"),
        ("micro-api-gateway", "golang", "./coverage.sh"),
    ] {
        let job = doc
            .get("jobs")
            .unwrap()
            .items()
            .iter()
            .find(|j| j.get("name").and_then(|n| n.as_str()) == Some(&format!("unit-{repo}")))
            .unwrap();
        let task = job
            .get("plan")
            .unwrap()
            .items()
            .iter()
            .find(|s| s.get("task").is_some())
            .unwrap();
        let vars = task.get("vars").unwrap();
        assert_eq!(vars.get("base_image").unwrap().as_str(), Some(image));
        assert_eq!(vars.get("test_command").unwrap().as_str(), Some(command));
    }
    let prod = doc
        .get("jobs")
        .unwrap()
        .items()
        .iter()
        .find(|j| j.get("name").and_then(|n| n.as_str()) == Some("deploy-prod"))
        .unwrap();
    let mut all = Vec::new();
    prod.walk(&mut all);
    assert!(
        !all.iter().any(|n| n.get("trigger").is_some()),
        "deploy-prod is started by a person"
    );
    assert!(text.contains("tag_suffix: .dev") && text.contains("strip_suffix: .dev"));
}

fn findings(yaml: &str) -> Vec<String> {
    let vars: BTreeSet<String> = ["KNOWN"].iter().map(|s| s.to_string()).collect();
    let ctx = Context {
        self_resource: Some("ci".into()),
        root: Some(root()),
        vars: Some(vars),
        ..Context::default()
    };
    check(yaml, &ctx)
        .into_iter()
        .map(|f| format!("{}: {}", f.line, f.message))
        .collect()
}

const OK_BASE: &str = "resources:\n- name: ci\n  type: git\n  source: {uri: ((KNOWN))}\njobs:\n- name: a\n  plan:\n  - get: ci\n";

#[test]
fn a_minimal_valid_pipeline_has_no_findings() {
    assert_eq!(findings(OK_BASE), Vec::<String>::new());
}

#[test]
fn broken_pipelines_are_reported_with_their_lines() {
    let cases: &[(&str, &[&str])] = &[
        (
            "resources: [\n",
            &[
                "2: invalid YAML: while parsing a node, did not find expected node content (column 1)",
            ],
        ),
        (
            // Concourse drops unknown top-level keys (teams park YAML anchors there).
            "x-anchors: &a {type: git}\nresources:\n- name: ci\n  <<: *a\njobs:\n- name: j\n  plan:\n  - get: ci\n",
            &[],
        ),
        (
            // fly refuses a key written twice in one mapping (the later would silently win).
            "resources:\n- name: ci\n  type: git\n  type: time\njobs:\n- name: j\n  plan:\n  - get: ci\n",
            &[
                "4: invalid YAML: the key \"type\" appears twice in one mapping (fly refuses it; keep one)",
            ],
        ),
        (
            "resources:\n- name: ci\n  type: git\njobs:\n- name: a\n  plan:\n  - get: ci\n  - put: nowhere\n",
            &[
                "8: jobs.a.plan[1].put(nowhere): unknown resource 'nowhere'; declare it under resources: or fix the name",
            ],
        ),
        (
            "resources:\n- name: img\n  type: gcr-image\njobs:\n- name: a\n  plan:\n  - get: img\n",
            &[
                "3: project rule: resource \"img\" has unknown type \"gcr-image\"; declare it under resource_types (Concourse itself accepts it and fails at the first check), or pass --allow-type gcr-image if the workers provide it",
            ],
        ),
        (
            "resources:\n- name: ci\n  type: git\n- name: lonely\n  type: git\njobs:\n- name: a\n  plan:\n  - get: ci\n",
            &["4: resources.lonely: is not used by any job; use it in a get or put, or remove it"],
        ),
        (
            "resources:\n- name: ci\n  type: git\n- name: x\n  type: git\njobs:\n- name: a\n  plan:\n  - get: ci\n- name: b\n  plan:\n  - get: ci\n    passed: [a, ghost]\n  - get: x\n    passed: [a]\n",
            &[
                "13: jobs.b.plan[0].get(ci): passed: unknown job 'ghost'",
                "15: jobs.b.plan[1].get(x): passed: job 'a' does not interact with resource 'x'; it must get or put it",
            ],
        ),
        (
            "resources:\n- name: ci\n  type: git\njobs:\n- name: a\n  plan:\n  - get: ci\n  - task: t\n    file: ci/ci/tasks/missing.yml\n  - task: u\n    file: other/task.yml\n  - task: v\n",
            &[
                "9: project rule: job \"a\": task file ci/tasks/missing.yml does not exist in this repository",
                "11: project rule: job \"a\": task file other/task.yml comes from \"other\", which no earlier step of the job provides; get it first",
                "12: jobs.a.plan[3].task(v): must specify either `file:` or `config:`",
            ],
        ),
        (
            "resources:\n- name: ci\n  type: git\n  source: {uri: ((UNLISTED)), key: ((KNOWN.field)), local: ((.:x))}\njobs:\n- name: a\n  plan:\n  - get: ci\n",
            &[
                "4: project rule: ((UNLISTED)) is not listed in the vars example; add it with what it is",
            ],
        ),
        (
            "resource_types:\n- name: k8s-deploy\n  type: registry-image\nresources:\n- name: prod-cluster\n  type: k8s-deploy\n- name: ci\n  type: git\njobs:\n- name: ship\n  plan:\n  - get: ci\n    trigger: true\n  - put: prod-cluster\n",
            &[
                "12: project rule: job \"ship\" deploys to production: get \"ci\" has no passed:, so it could deploy what no test saw; add passed: [the job that tested it]",
                "13: project rule: job \"ship\" deploys to production without a canary: it must be started by a person, remove trigger: true (or canary every service it deploys)",
            ],
        ),
        (
            // `yes` is true to Concourse's YAML library: still a trigger.
            "resource_types:\n- name: k8s-deploy\n  type: registry-image\nresources:\n- name: prod-cluster\n  type: k8s-deploy\n- name: ci\n  type: git\njobs:\n- name: test\n  plan:\n  - get: ci\n- name: ship\n  plan:\n  - get: ci\n    passed: [test]\n    trigger: yes\n  - put: prod-cluster\n",
            &[
                "17: project rule: job \"ship\" deploys to production without a canary: it must be started by a person, remove trigger: true (or canary every service it deploys)",
            ],
        ),
        (
            // A triggered production put canarying every Deployment it changes is accepted...
            "resource_types:\n- name: k8s-deploy\n  type: registry-image\nresources:\n- name: prod-cluster\n  type: k8s-deploy\n- name: ci\n  type: git\njobs:\n- name: test\n  plan:\n  - get: ci\n- name: ship\n  plan:\n  - get: ci\n    passed: [test]\n    trigger: true\n  - put: prod-cluster\n    params:\n      images: [{deployment: a, image: ci}, {deployment: b, image: ci}]\n      canary: {deployments: [a, b], steps: [{weight: 25}]}\n",
            &[],
        ),
        (
            // ...but not one whose canary leaves a Deployment out.
            "resource_types:\n- name: k8s-deploy\n  type: registry-image\nresources:\n- name: prod-cluster\n  type: k8s-deploy\n- name: ci\n  type: git\njobs:\n- name: test\n  plan:\n  - get: ci\n- name: ship\n  plan:\n  - get: ci\n    passed: [test]\n    trigger: true\n  - put: prod-cluster\n    params:\n      images: [{deployment: a, image: ci}, {deployment: b, image: ci}]\n      canary: {deployments: [a], steps: [{weight: 25}]}\n",
            &[
                "17: project rule: job \"ship\" deploys to production without a canary: it must be started by a person, remove trigger: true (or canary every service it deploys)",
            ],
        ),
        (
            // A production job whose every input went through the tested chain is fine.
            "resource_types:\n- name: k8s-deploy\n  type: registry-image\nresources:\n- name: prod-cluster\n  type: k8s-deploy\n- name: ci\n  type: git\njobs:\n- name: test\n  plan:\n  - get: ci\n- name: ship\n  plan:\n  - get: ci\n    passed: [test]\n  - put: prod-cluster\n",
            &[],
        ),
        (
            "resources:\n- name: ci\n  type: git\n- name: ci\n  type: git\njobs:\n- name: a\n  plan:\n  - get: ci\ngroups:\n- name: g\n  jobs: [a, b]\n",
            &[
                "4: resources[0] and resources[1] have the same name ('ci'); rename one",
                "12: groups.g: has unknown job 'b'; no job matches it",
            ],
        ),
    ];
    for (yaml, expected) in cases {
        assert_eq!(
            findings(yaml),
            expected.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            "for:\n{yaml}"
        );
    }
}

#[test]
fn steps_inside_in_parallel_do_try_and_hooks_are_checked() {
    let yaml = "resources:\n- name: ci\n  type: git\njobs:\n- name: a\n  plan:\n  - in_parallel:\n    - get: ci\n    - do:\n      - try:\n          put: gone\n  ensure:\n    put: also-gone\n";
    assert_eq!(
        findings(yaml),
        [
            "11: jobs.a.plan[0].in_parallel.steps[1].do[0].try.put(gone): unknown resource 'gone'; declare it under resources: or fix the name",
            "13: jobs.a.ensure.put(also-gone): unknown resource 'also-gone'; declare it under resources: or fix the name"
        ]
    );
}

/// Least privilege: one Google key per use, named in the table; by default every use reads
/// the team's one key, GOOGLE_CLOUD_AUTH_KEY.
#[test]
fn google_keys_per_use_default_to_the_teams_one_key() {
    let table = read("ci/repos.yml");
    let repos = render::repos(&table).unwrap();
    assert_eq!(
        render::google_keys(&table).unwrap(),
        render::GoogleKeys::default()
    );
    let split = format!(
        "{table}google_keys:\n  resource_types: GCR_READ_KEY\n  images: GCR_WRITE_KEY\n  reports: REPORTS_KEY\n  deploy_prod: GKE_DEPLOY_KEY\n"
    );
    let keys = render::google_keys(&split).unwrap();
    let rendered = render::pipeline_with(&repos, &keys);
    assert!(
        !rendered.contains("GOOGLE_CLOUD_AUTH_KEY"),
        "every use has its own key"
    );
    for (var, at) in [
        ("GCR_READ_KEY", "password: ((GCR_READ_KEY))"),
        ("GCR_WRITE_KEY", "google_credentials: ((GCR_WRITE_KEY))"),
        ("REPORTS_KEY", "google_credentials: ((REPORTS_KEY))"),
        ("GKE_DEPLOY_KEY", "google_credentials: ((GKE_DEPLOY_KEY))"),
    ] {
        assert!(rendered.contains(at), "{var} not used: {at}");
    }
    let bad = format!("{table}google_keys:\n  everything: K\n");
    let e = render::google_keys(&bad).unwrap_err();
    assert!(e.contains("google_keys.everything is not a use"), "{e}");
}

/// The command line: run from anywhere (the vars example is found beside the checked file),
/// `--concourse-only` leaves the project's own rules out, findings exit 1, an unreadable file
/// or a bad flag exits 2 with one line (never a backtrace).
#[test]
fn the_checker_runs_from_anywhere_and_can_give_concourses_verdict_alone() {
    let bin = env!("CARGO_BIN_EXE_pipeline");
    let elsewhere = std::env::temp_dir();
    let ok = std::process::Command::new(bin)
        .args(["check"])
        .arg(root().join("ci/pipeline.yml"))
        .current_dir(&elsewhere)
        .output()
        .unwrap();
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stdout)
    );

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pipeline.yml");
    std::fs::write(
        &file,
        "resources:\n- name: prod-cluster\n  type: k8s-deploy\n- name: ci\n  type: git\njobs:\n- name: ship\n  plan:\n  - get: ci\n    trigger: true\n  - put: prod-cluster\n",
    )
    .unwrap();
    let run = |extra: &[&str]| {
        std::process::Command::new(bin)
            .arg("check")
            .args(extra)
            .arg(&file)
            .current_dir(&elsewhere)
            .output()
            .unwrap()
    };
    let all = run(&[]);
    assert_eq!(all.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&all.stdout).into_owned();
    assert!(
        stdout.contains("project rule: job \"ship\" deploys to production"),
        "{stdout}"
    );
    let concourse = run(&["--concourse-only"]);
    assert_eq!(
        concourse.status.code(),
        Some(0),
        "Concourse accepts it: {}",
        String::from_utf8_lossy(&concourse.stdout)
    );
    let missing = std::process::Command::new(bin)
        .args(["check", "/nonexistent/pipeline.yml"])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(2));
    let err = String::from_utf8_lossy(&missing.stderr).into_owned();
    assert!(
        err.starts_with("pipeline check: cannot read /nonexistent/pipeline.yml"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    let flag = std::process::Command::new(bin)
        .args(["check", "--nope"])
        .output()
        .unwrap();
    assert_eq!(flag.status.code(), Some(2));
}

/// `deploy_prod_trigger: true` renders deploy-prod with triggers only when every service is
/// canaried; the rendered pipeline then passes the checker's production rule.
#[test]
fn production_starts_by_itself_only_when_every_service_is_canaried() {
    let table = read("ci/repos.yml");
    let repos = render::repos(&table).unwrap();
    assert_eq!(
        render::production(&table, &repos).unwrap(),
        render::Production::default(),
        "manual by default"
    );
    let auto = format!("{table}deploy_prod_trigger: true\n");
    let production = render::production(&auto, &repos).unwrap();
    assert!(production.trigger);
    let rendered = render::pipeline_for(&repos, &render::GoogleKeys::default(), &production);
    let prod_job = &rendered[rendered.find("- name: deploy-prod").unwrap()..];
    let prod_job = &prod_job[..prod_job.find("- name: resource-types").unwrap()];
    assert_eq!(prod_job.matches("trigger: true").count(), 6, "{prod_job}");
    assert!(prod_job.contains("      canary:\n        deployments: [api-gateway, authentication-service, authorization-service, fellowship-role-service, user-management-service, assessment-service]\n"), "{prod_job}");
    assert_eq!(check(&rendered, &ctx()), Vec::<Finding>::new());
    // The same pipeline without the canary is refused by the production rule.
    let start = rendered.find("      canary:\n").unwrap();
    let end = rendered[start..].find("- name: resource-types").unwrap() + start;
    let uncanaried = format!("{}{}", &rendered[..start], &rendered[end..]);
    let found: Vec<String> = check(&uncanaried, &ctx())
        .into_iter()
        .map(|f| f.message)
        .collect();
    assert_eq!(found.len(), 6, "{found:?}");
    assert!(
        found
            .iter()
            .all(|f| f.contains("deploys to production without a canary"))
    );

    // One service without a canary: the table is refused, naming it.
    let partial = auto.replacen("    canary: []\n", "", 1);
    let repos = render::repos(&partial).unwrap();
    let e = render::production(&partial, &repos).unwrap_err();
    assert!(
        e.ends_with("deploy_prod_trigger: true needs a canary for every service, and micro-api-gateway has none; add canary: [/health] (the paths to check) to it"),
        "{e}"
    );
    let bad = format!("{table}deploy_prod_trigger: sometimes\n");
    assert!(
        render::production(&bad, &repos)
            .unwrap_err()
            .ends_with("deploy_prod_trigger must be true or false")
    );
    let paths = table.replacen("canary: []", "canary: [health]", 1);
    assert!(
        render::repos(&paths)
            .unwrap_err()
            .contains("canary lists paths to check, each starting with /")
    );
}
