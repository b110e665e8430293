//! k8s-deploy through the protocol against the Kubernetes fake (over TLS with a bearer token,
//! its behaviour refereed by kubectl in crates/fakes/tests/kube_kubectl.rs).

#![allow(clippy::unwrap_used)]

use fakes::kube::{FakeKube, Options};
use k8s_deploy::K8sDeploy;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::Duration;
use testkit::{Binary, CANARY, Run, arg, build_env, in_process, temp_dir};

const DIGEST: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";

fn fake() -> FakeKube {
    FakeKube::start(Options {
        token: Some(CANARY.into()),
        tls: true,
        tick: Duration::from_millis(20),
        ..Options::default()
    })
}

fn source(k: &FakeKube) -> Value {
    json!({"kubeconfig": k.kubeconfig()})
}

fn app(image: &str, extra_env: &str, annotations: &str, deadline: u32) -> String {
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: api-gateway
  annotations: {{{annotations}}}
spec:
  replicas: 2
  progressDeadlineSeconds: {deadline}
  selector:
    matchLabels: {{app: api-gateway}}
  template:
    metadata:
      labels: {{app: api-gateway}}
    spec:
      containers:
      - name: api-gateway
        image: {image}
        env: [{extra_env}]
---
apiVersion: v1
kind: Service
metadata:
  name: api-gateway
spec:
  selector: {{app: api-gateway}}
  ports:
  - port: 8080
"
    )
}

struct Build {
    dir: tempfile::TempDir,
}

impl Build {
    fn new(manifest: &str) -> Self {
        let dir = temp_dir();
        std::fs::create_dir_all(dir.path().join("ci/k8s")).unwrap();
        std::fs::write(dir.path().join("ci/k8s/app.yml"), manifest).unwrap();
        std::fs::create_dir(dir.path().join("api-dev")).unwrap();
        std::fs::write(
            dir.path().join("api-dev/image-ref"),
            format!("us.gcr.io/microservices-kube/api-gateway@{DIGEST}"),
        )
        .unwrap();
        Self { dir }
    }

    /// `out` as Concourse runs it, in the background (to be stopped with SIGTERM).
    fn start(&self, k: &FakeKube, params: Value) -> testkit::Running {
        let request = json!({"source": source(k), "params": params});
        Binary::at(env!("CARGO_BIN_EXE_k8s-deploy")).start(
            "out",
            &[arg(self.dir.path())],
            request.to_string().as_bytes(),
            &build_env(),
        )
    }

    fn put(&self, k: &FakeKube, params: Value) -> Run {
        let request = json!({"source": source(k), "params": params});
        let run = in_process(
            &K8sDeploy,
            &["out", arg(self.dir.path())],
            request.to_string().as_bytes(),
            &build_env(),
        );
        run.assert_no_secret(CANARY);
        run
    }
}

/// A release whose rollout the fake's controller never finishes (the stall is on the
/// Deployment, not on its template).
fn stalled(image: &str) -> Build {
    Build::new(&app(image, "", "fake.k8s.io/stall: \"true\"", 600))
}

fn image_of(k: &FakeKube, ns: &str) -> String {
    k.get("apps", "v1", "deployments", ns, "api-gateway")
        .unwrap()["spec"]["template"]["spec"]["containers"][0]["image"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[test]
fn deploys_by_digest_into_a_fresh_namespace_waits_and_cleans_up() {
    let k = fake();
    let b = Build::new(&app(
        "us.gcr.io/microservices-kube/api-gateway:placeholder",
        "",
        "",
        60,
    ));
    let run = b.put(&k, json!({"ephemeral_namespace": "test", "manifests": ["ci/k8s"], "images": [{"deployment": "api-gateway", "image": "api-dev"}]}));
    let answer = run.success();
    assert_eq!(answer["version"]["namespace"], "test-4242");
    let log = run.log();
    assert!(
        log.contains("applied Deployment/api-gateway")
            && log.contains("applied Service/api-gateway"),
        "{log}"
    );
    assert!(log.contains("api-gateway: rolled out"), "{log}");
    assert!(log.contains("updated, "), "progress lines: {log}");
    assert_eq!(
        image_of(&k, "test-4242"),
        format!("us.gcr.io/microservices-kube/api-gateway@{DIGEST}")
    );
    let ns = k.get("", "v1", "namespaces", "", "test-4242").unwrap();
    assert_eq!(ns["metadata"]["labels"]["concourse.ci/job"], "deploy-test");

    // check sees the same revision; in writes what runs.
    let check = in_process(
        &K8sDeploy,
        &["check"],
        json!({"source": {"kubeconfig": k.kubeconfig(), "namespace": "test-4242"}})
            .to_string()
            .as_bytes(),
        &BTreeMap::new(),
    )
    .success();
    assert_eq!(check, json!([answer["version"]]));
    let got = temp_dir();
    let request = json!({"source": source(&k), "version": answer["version"]});
    in_process(
        &K8sDeploy,
        &["in", arg(got.path())],
        request.to_string().as_bytes(),
        &build_env(),
    )
    .success();
    let deployed: Value = serde_json::from_str(
        &std::fs::read_to_string(got.path().join("deployments.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(deployed[0]["containers"][0]["digest"], DIGEST);
    assert_eq!(deployed[0]["ready_replicas"], 2);

    // A later put removes the namespace, named by the get's files.
    std::fs::create_dir(b.dir.path().join("test-cluster")).unwrap();
    std::fs::copy(
        got.path().join("namespace"),
        b.dir.path().join("test-cluster/namespace"),
    )
    .unwrap();
    b.put(
        &k,
        json!({"delete_namespace": true, "namespace_file": "test-cluster/namespace"}),
    )
    .success();
    assert!(k.get("", "v1", "namespaces", "", "test-4242").is_none());
}

#[test]
fn an_image_that_cannot_be_pulled_fails_fast_quoting_the_container() {
    let k = fake();
    let b = Build::new(&app("registry.local/does-not-exist/api:1", "", "", 600));
    let line = b
        .put(
            &k,
            json!({"manifests": ["ci/k8s/app.yml"], "timeout": "60s"}),
        )
        .failure();
    assert!(
        line.starts_with("api-gateway: container api-gateway of pod api-gateway-"),
        "{line}"
    );
    assert!(line.ends_with("is in ImagePullBackOff: Back-off pulling image \"registry.local/does-not-exist/api:1\": manifest unknown"), "{line}");
}

#[test]
fn a_crashing_container_fails_fast() {
    let k = fake();
    let b = Build::new(&app(
        "registry.local/api:1",
        "{name: FAKE_CRASH, value: \"true\"}",
        "",
        600,
    ));
    let line = b
        .put(
            &k,
            json!({"manifests": ["ci/k8s/app.yml"], "timeout": "60s"}),
        )
        .failure();
    assert!(line.contains("is in CrashLoopBackOff: back-off 10s restarting failed container=api-gateway pod=api-gateway-"), "{line}");
}

#[test]
fn a_stalled_rollout_hits_its_progress_deadline_or_our_timeout() {
    let k = fake();
    let b = Build::new(&app(
        "registry.local/api:1",
        "",
        "fake.k8s.io/stall: \"true\"",
        1,
    ));
    let line = b
        .put(
            &k,
            json!({"manifests": ["ci/k8s/app.yml"], "timeout": "60s"}),
        )
        .failure();
    assert!(
        line.starts_with("api-gateway: exceeded its progress deadline (ReplicaSet \"api-gateway-"),
        "{line}"
    );

    let k = fake();
    let b = stalled("registry.local/api:1");
    let line = b
        .put(
            &k,
            json!({"manifests": ["ci/k8s/app.yml"], "timeout": "2s"}),
        )
        .failure();
    assert!(
        line.starts_with("api-gateway: timed out; last seen: api-gateway: 0/2 updated"),
        "{line}"
    );
}

#[test]
fn a_failed_rollout_is_rolled_back_to_the_previous_images() {
    let k = fake();
    let b = Build::new(&app("registry.local/api:1", "", "", 600));
    b.put(&k, json!({"manifests": ["ci/k8s/app.yml"]}))
        .success();
    let line = b
        .put(&k, json!({"images": [{"deployment": "api-gateway", "image": "registry.local/does-not-exist/api:2"}], "rollback_on_failure": true, "timeout": "60s"}))
        .failure();
    assert!(line.contains("is in ImagePullBackOff"), "{line}");
    assert!(
        line.ends_with("; rolled back api-gateway to the previous images"),
        "{line}"
    );
    assert_eq!(image_of(&k, "default"), "registry.local/api:1");
}

#[test]
fn bad_credentials_and_an_unreachable_server_are_one_clear_line() {
    let k = fake();
    let wrong = k.kubeconfig().replace(CANARY, "canary-wrong-token");
    let request = json!({"source": {"kubeconfig": wrong}});
    let binary = Binary::at(env!("CARGO_BIN_EXE_k8s-deploy"));
    let run = binary.run(
        "check",
        &[],
        request.to_string().as_bytes(),
        &BTreeMap::new(),
    );
    let line = run.one_line_failure();
    assert!(
        line.contains("the cluster refused the credentials (401"),
        "{line}"
    );
    run.assert_no_secret("canary-wrong-token");

    let url = k.url();
    drop(k);
    let request = json!({"source": {"server": url, "token": CANARY}});
    let started = std::time::Instant::now();
    let run = binary.run(
        "check",
        &[],
        request.to_string().as_bytes(),
        &BTreeMap::new(),
    );
    let line = run.one_line_failure();
    assert!(
        line.starts_with("list the Deployments of default: "),
        "{line}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "fails within the timeout"
    );
    run.assert_no_secret(CANARY);
}

#[test]
fn bad_input_names_the_field_and_what_exists() {
    let k = fake();
    let b = Build::new(&app("registry.local/api:1", "", "", 600));
    b.put(&k, json!({"manifests": ["ci/k8s/app.yml"]}))
        .success();
    std::fs::write(
        b.dir.path().join("broken.yml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: [unclosed\n",
    )
    .unwrap();
    let cases = [
        (json!({"images": [{"deployment": "api-gatewy", "image": "api-dev"}]}), "params.images[0].deployment: no Deployment \"api-gatewy\" in namespace default or the manifests; there are: api-gateway".to_owned()),
        (json!({"images": [{"deployment": "api-gateway", "container": "sidecar", "image": "api-dev"}]}), "params.images[0].container: Deployment api-gateway has no container \"sidecar\"; it has: api-gateway".to_owned()),
        (json!({"images": [{"deployment": "api-gateway", "image": "nowhere"}]}), "params.images[0].image: nowhere is neither a directory of the build nor an image reference".to_owned()),
        (json!({"manifests": ["missing.yml"]}), "params.manifests[0]: missing.yml does not exist".to_owned()),
        (json!({"images": [], "timeout": "soon"}), "params.timeout: must be a duration like \"5m\", \"90s\"".to_owned()),
        (json!({}), "params: set images, manifests or ephemeral_namespace (or delete_namespace)".to_owned()),
    ];
    for (params, expected) in cases {
        assert_eq!(b.put(&k, params).one_line_failure(), expected);
    }
    let line = b
        .put(&k, json!({"manifests": ["broken.yml"]}))
        .one_line_failure();
    assert!(
        line.starts_with("params.manifests: broken.yml: invalid YAML: ") && line.contains("line 4"),
        "{line}"
    );

    let request = json!({"source": {"kubeconfig": k.kubeconfig(), "context": "production"}});
    let run = in_process(
        &K8sDeploy,
        &["check"],
        request.to_string().as_bytes(),
        &BTreeMap::new(),
    );
    assert_eq!(
        run.one_line_failure(),
        "source.context: the kubeconfig has no context \"production\"; it has: fake"
    );
    let request = json!({"source": {"kubeconfig": CANARY}});
    let run = in_process(
        &K8sDeploy,
        &["check"],
        request.to_string().as_bytes(),
        &BTreeMap::new(),
    );
    assert_eq!(
        run.one_line_failure(),
        "source.kubeconfig: is not a kubeconfig (YAML with clusters, users and contexts)"
    );
    run.assert_no_secret(CANARY);
}

#[test]
fn gke_access_exchanges_a_service_account_key_for_the_bearer_token() {
    let google = fakes::google::GoogleTokenServer::start("ya29.gke-token");
    let k = FakeKube::start(Options {
        token: Some("ya29.gke-token".into()),
        tls: true,
        tick: Duration::from_millis(20),
        ..Options::default()
    });
    let key = fakes::google::service_account_json(&google.token_uri());
    let request = json!({"source": {"server": k.url(), "certificate_authority": k.ca_pem().unwrap(), "google_credentials": key}});
    let run = in_process(
        &K8sDeploy,
        &["check"],
        request.to_string().as_bytes(),
        &BTreeMap::new(),
    );
    assert_eq!(
        run.success(),
        json!([]),
        "an empty namespace has no version yet"
    );
    assert_eq!(google.grants(), 1);
    run.assert_no_secret("ya29.gke-token")
        .assert_no_secret("PRIVATE KEY");
}

#[test]
fn a_field_another_manager_owns_is_a_clear_conflict_unless_forced() {
    let k = fake();
    let b = Build::new(&app("registry.local/api:1", "", "", 600));
    b.put(&k, json!({"manifests": ["ci/k8s/app.yml"]}))
        .success();
    // Someone scales by hand (kubectl, field manager kubectl-scale... here the fake's default).
    let dir = temp_dir();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, k.kubeconfig()).unwrap();
    let out = std::process::Command::new("kubectl")
        .env("KUBECONFIG", &kubeconfig)
        .args([
            "scale",
            "deployment/api-gateway",
            "--replicas=4",
            "--request-timeout=20s",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = b
        .put(&k, json!({"manifests": ["ci/k8s/app.yml"]}))
        .failure();
    assert!(
        line.starts_with(
            "ci/k8s/app.yml: apply Deployment/api-gateway: Apply failed with 1 conflict: "
        ),
        "{line}"
    );
    assert!(
        line.contains(".spec.replicas")
            && line.ends_with("set params.force_conflicts: true to take these fields over"),
        "{line}"
    );
    b.put(
        &k,
        json!({"manifests": ["ci/k8s/app.yml"], "force_conflicts": true}),
    )
    .success();
    assert_eq!(
        k.get("apps", "v1", "deployments", "default", "api-gateway")
            .unwrap()["spec"]["replicas"],
        2
    );
}

#[test]
fn images_missing_from_the_registry_do_not_pull_and_pushed_ones_do() {
    use fakes::registry::{Auth, Registry};
    let registry = Registry::start(Auth::None);
    let k = FakeKube::start(Options {
        token: Some(CANARY.into()),
        tls: true,
        tick: Duration::from_millis(20),
        pullable: fakes::kube::controller::Pullable::Registry(registry.host()),
        ..Options::default()
    });
    let repo = registry::Repository::parse(&format!(
        "{}/microservices-kube/api-gateway",
        registry.host()
    ))
    .unwrap();
    let missing = repo.pinned(DIGEST);
    let b = Build::new(&app(&missing, "", "", 600));
    let line = b
        .put(
            &k,
            json!({"manifests": ["ci/k8s/app.yml"], "timeout": "60s"}),
        )
        .failure();
    assert!(
        line.contains(&format!(
            "is in ImagePullBackOff: Back-off pulling image \"{missing}\""
        )),
        "{line}"
    );

    // Push a (tiny) image, then deploy its digest: it pulls.
    let client = registry::Client::new(
        &repo.host,
        registry::Credentials::Anonymous,
        registry::Options {
            insecure: true,
            ..Default::default()
        },
    )
    .unwrap();
    let dir = temp_dir();
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    std::fs::write(dir.path().join("config"), config).unwrap();
    let blob = registry::push::Blob {
        digest: registry::sha256_digest(config),
        size: config.len() as u64,
        path: dir.path().join("config"),
        offset: 0,
    };
    let manifest = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": blob.digest, "size": blob.size}, "layers": []});
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let digest = rt.block_on(async {
        client.push_blob(&repo, &blob, None, "t").await.unwrap();
        client
            .put_manifest(
                &repo,
                "1.0.0.dev",
                serde_json::to_vec(&manifest).unwrap().into(),
                "application/vnd.oci.image.manifest.v1+json",
            )
            .await
            .unwrap()
    });
    std::fs::write(b.dir.path().join("api-dev/image-ref"), repo.pinned(&digest)).unwrap();
    b.put(
        &k,
        json!({"images": [{"deployment": "api-gateway", "image": "api-dev"}], "timeout": "60s"}),
    )
    .success();
    assert_eq!(image_of(&k, "default"), repo.pinned(&digest));
}

/// A configuration-only rollout keeps the image: pods are judged by their ReplicaSet's
/// `pod-template-hash`, not by their image (before: the old, crash-looping pods with the same
/// image counted as the new release's and the fix failed at once, quoting them).
#[test]
fn a_config_only_fix_replaces_a_crash_looping_release() {
    let k = fake();
    let crashing = Build::new(&app(
        "registry.local/api:1",
        "{name: FAKE_CRASH, value: \"true\"}",
        "",
        600,
    ));
    crashing
        .put(&k, json!({"manifests": ["ci/k8s/app.yml"], "wait": false}))
        .success();
    // Let the crash-looping pods be there, as in production.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !k.list("", "v1", "pods", "default").iter().any(|p| {
        p["status"]["containerStatuses"][0]["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    }) {
        assert!(
            std::time::Instant::now() < deadline,
            "the fake never crash-looped"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let fixed = Build::new(&app(
        "registry.local/api:1",
        "{name: FAKE_CRASH, value: \"false\"}",
        "",
        600,
    ));
    let run = fixed.put(
        &k,
        json!({"manifests": ["ci/k8s/app.yml"], "timeout": "60s"}),
    );
    run.success();
    assert!(
        run.log().contains("api-gateway: rolled out"),
        "{}",
        run.log()
    );
}

/// A configuration-only change that fails is rolled back to the previous template, and the
/// rollback is judged by revision too (before: `out` said the rollback did not finish while
/// kubectl said it had rolled out).
#[test]
fn a_failed_config_only_rollout_is_rolled_back() {
    let k = fake();
    let good = Build::new(&app(
        "registry.local/api:1",
        "{name: MODE, value: a}",
        "",
        600,
    ));
    good.put(&k, json!({"manifests": ["ci/k8s/app.yml"]}))
        .success();
    let bad = Build::new(&app(
        "registry.local/api:1",
        "{name: MODE, value: a}, {name: FAKE_CRASH, value: \"true\"}",
        "",
        600,
    ));
    let line = bad
        .put(
            &k,
            json!({"manifests": ["ci/k8s/app.yml"], "rollback_on_failure": true, "timeout": "60s"}),
        )
        .failure();
    assert!(line.contains("is in CrashLoopBackOff"), "{line}");
    assert!(
        line.ends_with("; rolled back api-gateway to the previous images"),
        "{line}"
    );
    let env = k
        .get("apps", "v1", "deployments", "default", "api-gateway")
        .unwrap()["spec"]["template"]["spec"]["containers"][0]["env"]
        .clone();
    assert_eq!(
        env,
        json!([{"name": "MODE", "value": "a"}]),
        "the old template is back"
    );
    // Every write was a server-side apply by one manager: one managedFields entry of ours,
    // so the next apply neither conflicts with ourselves nor leaves fields behind.
    let d = k
        .get("apps", "v1", "deployments", "default", "api-gateway")
        .unwrap();
    let ours: Vec<&Value> = d["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["manager"] == "k8s-deploy")
        .collect();
    assert_eq!(ours.len(), 1, "{ours:?}");
    assert_eq!(ours[0]["operation"], "Apply");
    let images = Build::new(&app(
        "registry.local/api:1",
        "{name: MODE, value: a}",
        "",
        600,
    ));
    images
        .put(
            &k,
            json!({"manifests": ["ci/k8s/app.yml"], "images": [{"deployment": "api-gateway", "image": "api-dev"}]}),
        )
        .success();
    images
        .put(
            &k,
            json!({"images": [{"deployment": "api-gateway", "image": "registry.local/api:3"}]}),
        )
        .success();
    let d = k
        .get("apps", "v1", "deployments", "default", "api-gateway")
        .unwrap();
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["env"],
        json!([{"name": "MODE", "value": "a"}]),
        "an image-only deploy keeps what the manifests set"
    );
    assert_eq!(d["spec"]["replicas"], 2);
    assert_eq!(image_of(&k, "default"), "registry.local/api:3");
}

/// Concourse stops a step with SIGTERM (build aborted, step timeout) and SIGKILL 10 s later.
/// A production deploy with `rollback_on_failure` stopped mid-rollout puts the previous
/// template back before it exits (before: the process died, the half-done rollout stayed).
#[test]
fn sigterm_mid_rollout_rolls_back_when_asked() {
    let k = fake();
    let good = Build::new(&app("registry.local/api:1", "", "", 600));
    good.put(&k, json!({"manifests": ["ci/k8s/app.yml"]}))
        .success();
    // The new release never finishes rolling out.
    let stuck = stalled("registry.local/api:2");
    let running = stuck.start(
        &k,
        json!({"manifests": ["ci/k8s/app.yml"], "rollback_on_failure": true, "timeout": "5m"}),
    );
    running.wait_for("updated", Duration::from_secs(20));
    assert_eq!(image_of(&k, "default"), "registry.local/api:2");
    let (run, took) = running.terminate();
    run.assert_no_secret(CANARY);
    let line = run.failure();
    assert!(
        line.starts_with("aborted by SIGTERM: rolled back api-gateway to registry.local/api:1"),
        "{line}"
    );
    assert!(took < Duration::from_secs(9), "{took:?}");
    assert_eq!(image_of(&k, "default"), "registry.local/api:1");

    // Without rollback_on_failure the rollout is left as it stands, and the log says so.
    let running = stuck.start(
        &k,
        json!({"manifests": ["ci/k8s/app.yml"], "timeout": "5m"}),
    );
    running.wait_for("updated", Duration::from_secs(20));
    let (run, _) = running.terminate();
    assert_eq!(
        run.failure(),
        "aborted by SIGTERM: left the rollout of api-gateway in default where it stood (rollback_on_failure is off)"
    );
    assert_eq!(image_of(&k, "default"), "registry.local/api:2");
}

/// Everything that can be checked from the request and one LIST is checked before the first
/// write (before: the namespace was created and the manifests applied, then the typo failed).
#[test]
fn a_typo_in_images_changes_nothing_in_the_cluster() {
    let k = fake();
    let b = Build::new(&app("registry.local/api:1", "", "", 600));
    std::fs::write(
        b.dir.path().join("ci/k8s/config.yml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {a: b}\n",
    )
    .unwrap();
    let namespaces = k.list("", "v1", "namespaces", "").len();
    let line = b
        .put(
            &k,
            json!({"manifests": ["ci/k8s/app.yml", "ci/k8s/config.yml"], "ephemeral_namespace": "typo",
                   "images": [{"deployment": "api-gatewy", "image": "api-dev"}]}),
        )
        .one_line_failure();
    assert!(
        line.starts_with("params.images[0].deployment: no Deployment \"api-gatewy\""),
        "{line}"
    );
    assert_eq!(
        k.list("", "v1", "namespaces", "").len(),
        namespaces,
        "no namespace made"
    );
    assert!(
        k.list("", "v1", "configmaps", "").is_empty(),
        "nothing applied"
    );
    assert!(
        k.list("apps", "v1", "deployments", "").is_empty(),
        "nothing applied"
    );
}

/// A deploy-test that fails or is aborted leaves its namespace: an `on_failure`/`on_abort`
/// hook deletes this build's `PREFIX-BUILD_ID` by the prefix alone, and the janitor deletes
/// what any build of the prefix left behind (by the labels the resource writes), nothing else.
#[test]
fn failed_builds_namespaces_are_deleted_by_prefix_and_by_the_janitor() {
    let k = fake();
    let broken = Build::new(&app("registry.local/does-not-exist/api:1", "", "", 600));
    broken
        .put(
            &k,
            json!({"ephemeral_namespace": "test", "manifests": ["ci/k8s/app.yml"], "timeout": "30s"}),
        )
        .failure();
    assert!(
        k.get("", "v1", "namespaces", "", "test-4242").is_some(),
        "the failed deploy left it"
    );
    broken
        .put(
            &k,
            json!({"delete_namespace": true, "ephemeral_namespace": "test"}),
        )
        .success();
    assert!(k.get("", "v1", "namespaces", "", "test-4242").is_none());

    // Left behind by three builds (two of this prefix), and one namespace of someone else.
    for (prefix, build) in [("test", "1"), ("test", "2"), ("other", "3")] {
        let mut env = build_env();
        env.insert("BUILD_ID".into(), build.into());
        in_process(
            &K8sDeploy,
            &["out", arg(broken.dir.path())],
            json!({"source": source(&k), "params": {"ephemeral_namespace": prefix}})
                .to_string()
                .as_bytes(),
            &env,
        )
        .success();
    }
    k.ensure_namespace("test-by-hand");
    std::thread::sleep(Duration::from_millis(1100));
    let run = broken.put(
        &k,
        json!({"ephemeral_namespace": "test", "delete_namespaces_older_than": "1s"}),
    );
    let answer = run.success();
    assert_eq!(answer["version"]["revision"], "pruned-2");
    for gone in ["test-1", "test-2"] {
        assert!(k.get("", "v1", "namespaces", "", gone).is_none(), "{gone}");
    }
    for kept in ["other-3", "test-by-hand"] {
        assert!(k.get("", "v1", "namespaces", "", kept).is_some(), "{kept}");
    }
    let line = broken
        .put(&k, json!({"delete_namespaces_older_than": "1s"}))
        .one_line_failure();
    assert_eq!(
        line,
        "params.delete_namespaces_older_than: goes with ephemeral_namespace: PREFIX (the namespaces it made)"
    );
}

/// `params.canary` mistakes are one line naming the field, before any change.
#[test]
fn canary_mistakes_are_one_line_and_change_nothing() {
    let k = fake();
    Build::new(&app("registry.local/api:1", "", "", 600))
        .put(&k, json!({"manifests": ["ci/k8s/app.yml"]}))
        .success();
    let next = Build::new(&app("registry.local/api:2", "", "", 600));
    for (canary, extra, expected) in [
        (
            json!({"steps": [{"weight": 25}], "checks": [{"deployment": "ghost", "path": "/"}]}),
            json!({}),
            "params.canary.checks[0].deployment: \"ghost\" is not a Deployment this put releases through the canary; those are: api-gateway",
        ),
        (
            json!({"steps": [{"weight": 25}], "deployments": ["users"]}),
            json!({}),
            "params.canary.deployments[0]: \"users\" is not a Deployment this put changes; those are: api-gateway",
        ),
        (
            json!({"steps": [{"weight": 25}]}),
            json!({"wait": false}),
            "params.canary: cannot be set together with params.wait: false; keep one",
        ),
        (
            json!({"steps": [{"weight": 25}, {"pause": "soon"}]}),
            json!({}),
            "params.canary.steps[1].pause: must be a duration like \"30s\", \"2m\"",
        ),
    ] {
        let mut params = json!({"manifests": ["ci/k8s/app.yml"], "canary": canary});
        for (key, v) in extra.as_object().unwrap() {
            params[key] = v.clone();
        }
        let run = next.put(&k, params);
        assert_eq!(run.one_line_failure(), expected);
        assert_eq!(image_of(&k, "default"), "registry.local/api:1");
    }
    // A misspelt key is refused by name too.
    let line = next
        .put(
            &k,
            json!({"manifests": ["ci/k8s/app.yml"], "canary": {"steps": [{"weigth": 25}]}}),
        )
        .one_line_failure();
    assert!(line.contains("weigth"), "{line}");
    assert!(
        k.get("apps", "v1", "deployments", "default", "api-gateway-canary")
            .is_none()
    );
}

/// Without checks the built-in gates decide: on simulated pods that start, the canary opens
/// its readiness gates, passes its steps and the stable Deployment is promoted.
#[test]
fn a_canary_with_gates_only_promotes_and_leaves_no_canary() {
    let k = fake();
    // The first release has nothing to compare with: deployed directly, and said so.
    let first = Build::new(&app("registry.local/api:1", "", "", 600)).put(
        &k,
        json!({"manifests": ["ci/k8s/app.yml"], "canary": {"steps": [{"weight": 50}], "deployments": ["api-gateway"]}}),
    );
    first.success();
    assert!(
        first
            .log()
            .contains("api-gateway did not run before: deployed without a canary"),
        "{}",
        first.log()
    );
    assert_eq!(image_of(&k, "default"), "registry.local/api:1");
    let run = Build::new(&app("registry.local/api:2", "", "", 600)).put(
        &k,
        json!({"manifests": ["ci/k8s/app.yml"], "canary": {"steps": [{"weight": 50}, {"pause": "200ms"}], "interval": "100ms"}}),
    );
    let response = run.success();
    assert!(
        response["metadata"]
            .as_array()
            .unwrap()
            .contains(&json!({"name": "canary", "value": "50%, pause 200ms, promoted"})),
        "{response}"
    );
    assert!(
        run.log()
            .contains("api-gateway canary step 1 (50%): 1 pod beside 2 stable, checks 0/0 ok"),
        "{}",
        run.log()
    );
    assert_eq!(image_of(&k, "default"), "registry.local/api:2");
    assert!(
        k.get("apps", "v1", "deployments", "default", "api-gateway-canary")
            .is_none()
    );
    // The version is the stable set: the canary never appears in it.
    assert_eq!(response["version"]["namespace"], "default");
    // The same release again changes no pod template (the API server's dry run says so):
    // no canary is made.
    let again = Build::new(&app("registry.local/api:2", "", "", 600)).put(
        &k,
        json!({"manifests": ["ci/k8s/app.yml"], "canary": {"steps": [{"weight": 50}]}}),
    );
    again.success();
    assert!(
        again
            .log()
            .contains("api-gateway: its pod template does not change; no canary"),
        "{}",
        again.log()
    );
    assert!(
        !again.log().contains("readiness gate is open"),
        "{}",
        again.log()
    );
}

/// SIGTERM during the promotion (the canary passed, the stable Deployment is rolling out):
/// the stable Deployment gets its previous template back and the canary goes.
#[test]
fn sigterm_during_the_promotion_rolls_back_and_removes_the_canary() {
    let k = fake();
    Build::new(&app("registry.local/api:1", "", "", 600))
        .put(&k, json!({"manifests": ["ci/k8s/app.yml"]}))
        .success();
    // The stable Deployment's rollout never finishes (the stall is on the Deployment, not on
    // its template: the canary rolls out).
    let stuck = stalled("registry.local/api:2");
    let running = stuck.start(
        &k,
        json!({"manifests": ["ci/k8s/app.yml"], "timeout": "5m",
        "canary": {"steps": [{"weight": 50}]}}),
    );
    running.wait_for("promoting api-gateway", Duration::from_secs(30));
    running.wait_for("updated", Duration::from_secs(20));
    let (run, took) = running.terminate();
    run.assert_no_secret(CANARY);
    assert_eq!(
        run.failure(),
        "aborted by SIGTERM: rolled back api-gateway to registry.local/api:1; removed api-gateway-canary"
    );
    assert!(took < Duration::from_secs(9), "{took:?}");
    assert_eq!(image_of(&k, "default"), "registry.local/api:1");
    assert!(
        k.get("apps", "v1", "deployments", "default", "api-gateway-canary")
            .is_none()
    );
}

/// A check the API server cannot carry to the pod is a failed check like any other: the
/// canary stops, quoting what happened. The simulated pods' address (10.0.0.1) answers
/// nothing here, so this is also the pod that never answers: bounded by the check's 10 s (a
/// network that refuses at once gives the proxy's error status instead).
#[test]
fn a_check_that_cannot_reach_its_pod_stops_the_canary() {
    let k = fake();
    Build::new(&app("registry.local/api:1", "", "", 600))
        .put(&k, json!({"manifests": ["ci/k8s/app.yml"]}))
        .success();
    let line = Build::new(&app("registry.local/api:2", "", "", 600))
        .put(
            &k,
            json!({"manifests": ["ci/k8s/app.yml"], "canary": {"steps": [{"weight": 50}], "checks": [{"path": "/health"}]}}),
        )
        .failure();
    assert!(
        line.starts_with("api-gateway canary stopped at step 1 (50%): check GET /health on pod api-gateway-canary-"),
        "{line}"
    );
    assert!(
        line.contains(": no answer within 10s (1 failed, budget 0)")
            || line.contains(", expected 200: "),
        "{line}"
    );
    assert!(
        line.ends_with("api-gateway still runs the previous release"),
        "{line}"
    );
    assert_eq!(image_of(&k, "default"), "registry.local/api:1");
    assert!(
        k.get("apps", "v1", "deployments", "default", "api-gateway-canary")
            .is_none()
    );
}
