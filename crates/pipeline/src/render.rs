//! Renders `ci/pipeline.yml` and `ci/k8s/services.yml` from the table of repositories in
//! `ci/repos.yml`, so the seven repositories are described once, not in seven hand-copied
//! blocks. A test keeps the committed files equal to the rendering.

use crate::yaml::{self, Node};

/// One row of `ci/repos.yml`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repo {
    /// `micro-api-gateway`.
    pub name: String,
    /// `golang:1.6.2`, `node:argon`.
    pub base_image: String,
    /// `./coverage.sh`, `gulp test`, `npm test`, `godog`.
    pub test: String,
    /// The Deployment (and image) name for services; `None` for the acceptance tests.
    pub deployment: Option<String>,
    /// The port the service listens on.
    pub port: Option<u16>,
    /// The repository holding the acceptance suite.
    pub acceptance: bool,
    /// The service the acceptance suite talks to (the API gateway).
    pub gateway: bool,
    /// The acceptance suite's command, when its image's is not godog's default.
    pub suite_command: Vec<String>,
    /// `go`, `node` or `other`: how the unit-test task sets the repository up (GOPATH,
    /// `npm install`); by default from the base image.
    pub language: Option<String>,
    /// A setup command run instead of the language's default (optional).
    pub setup: Option<String>,
    /// The credential name of its deploy key (the team's: `API_GATEWAY_KEY`); when the table
    /// does not say, `NAME_DEPLOY_KEY`.
    pub deploy_key: Option<String>,
    /// Production releases this service through a canary, checking these paths on the canary
    /// pods (an empty list: the built-in gates only); `None`: no canary.
    pub canary: Option<Vec<String>>,
}

impl Repo {
    /// Image name in `us.gcr.io/microservices-kube/`: the repository name without `micro-`.
    pub fn image(&self) -> String {
        self.name
            .strip_prefix("micro-")
            .unwrap_or(&self.name)
            .to_owned()
    }

    /// The table's `language`, else the base image's: `golang` -> go, `node` -> node.
    pub fn language(&self) -> String {
        self.language.clone().unwrap_or_else(|| {
            let image = self.base_image.split(':').next().unwrap_or("");
            match image.rsplit('/').next().unwrap_or("") {
                "golang" => "go",
                "node" => "node",
                _ => "other",
            }
            .to_owned()
        })
    }

    /// The deploy key's var: the table's `deploy_key`, else `MICRO_API_GATEWAY_DEPLOY_KEY`.
    pub fn key_var(&self) -> String {
        self.deploy_key.clone().unwrap_or_else(|| {
            format!(
                "{}_DEPLOY_KEY",
                self.name.to_ascii_uppercase().replace('-', "_")
            )
        })
    }
}

/// Reads the table.
pub fn repos(text: &str) -> Result<Vec<Repo>, String> {
    let doc = yaml::parse(text)?;
    let list = doc
        .get("repositories")
        .ok_or("ci/repos.yml: no repositories list")?;
    list.items()
        .iter()
        .map(|r: &Node| {
            let field = |k: &str| r.get(k).and_then(Node::as_str).map(str::to_owned);
            let name = field("name").ok_or(format!(
                "ci/repos.yml:{}: a repository without a name",
                r.line
            ))?;
            Ok(Repo {
                base_image: field("base_image")
                    .ok_or(format!("ci/repos.yml:{}: {name} has no base_image", r.line))?,
                test: field("test").ok_or(format!(
                    "ci/repos.yml:{}: {name} has no test command",
                    r.line
                ))?,
                deployment: field("deployment"),
                deploy_key: field("deploy_key"),
                language: field("language"),
                setup: field("setup"),
                port: field("port").and_then(|p| p.parse().ok()),
                acceptance: field("acceptance").as_deref() == Some("true"),
                gateway: field("gateway").as_deref() == Some("true"),
                suite_command: r
                    .get("suite_command")
                    .map(|c| {
                        c.items()
                            .iter()
                            .filter_map(|i| i.as_str().map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default(),
                canary: match r.get("canary") {
                    None => None,
                    Some(c) => Some(
                        c.items()
                            .iter()
                            .map(|p| match p.as_str() {
                                Some(path) if path.starts_with('/') => Ok(path.to_owned()),
                                _ => Err(format!(
                                    "ci/repos.yml:{}: {name}: canary lists paths to check, each starting with /, e.g. [/health]",
                                    p.line
                                )),
                            })
                            .collect::<Result<Vec<_>, _>>()?,
                    ),
                },
                name,
            })
        })
        .collect()
}

const REGISTRY: &str = "us.gcr.io/microservices-kube";

/// The resource types the pipeline pulls (acceptance-run's image is also the reporter).
use crate::publish::TYPES as RESOURCE_TYPES;

/// The credential each use of Google access is read from. By default all are
/// `GOOGLE_CLOUD_AUTH_KEY`, the one key the team provides; a team that wants least privilege
/// names one key per use in ci/repos.yml (`google_keys:`) and gives each key only its role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoogleKeys {
    /// Pulling the resource types' images (Artifact Registry Reader).
    pub resource_types: String,
    /// Pushing `.dev` images, promoting, publishing the resource types (Artifact Registry Writer).
    pub images: String,
    /// Storing the acceptance reports (Artifact Registry Writer on acceptance-reports).
    pub reports: String,
    /// Deploying to production (Kubernetes Engine Developer on the production cluster).
    pub deploy_prod: String,
}

impl Default for GoogleKeys {
    fn default() -> Self {
        let key = "GOOGLE_CLOUD_AUTH_KEY".to_owned();
        Self {
            resource_types: key.clone(),
            images: key.clone(),
            reports: key.clone(),
            deploy_prod: key,
        }
    }
}

/// The table's optional `google_keys:` mapping (use -> var name).
pub fn google_keys(text: &str) -> Result<GoogleKeys, String> {
    let doc = yaml::parse(text)?;
    let mut keys = GoogleKeys::default();
    let Some(map) = doc.get("google_keys") else {
        return Ok(keys);
    };
    for (name, value) in map.entries() {
        let name = name.as_str().unwrap_or("");
        let var = value
            .as_str()
            .ok_or(format!(
                "ci/repos.yml:{}: google_keys.{name} must be a var name",
                value.line
            ))?
            .to_owned();
        match name {
            "resource_types" => keys.resource_types = var,
            "images" => keys.images = var,
            "reports" => keys.reports = var,
            "deploy_prod" => keys.deploy_prod = var,
            other => {
                return Err(format!(
                    "ci/repos.yml:{}: google_keys.{other} is not a use; the uses are resource_types, images, reports, deploy_prod",
                    value.line
                ));
            }
        }
    }
    Ok(keys)
}

/// The production job's settings from the table's top level.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Production {
    /// `deploy_prod_trigger: true`: deploy-prod starts by itself once the promotion PRs are
    /// open. Accepted only when every service has a `canary`.
    pub trigger: bool,
}

/// The table's `deploy_prod_trigger` (default false), refused unless every service is canaried.
pub fn production(text: &str, repos: &[Repo]) -> Result<Production, String> {
    let doc = yaml::parse(text)?;
    let Some(node) = doc.get("deploy_prod_trigger") else {
        return Ok(Production::default());
    };
    let trigger = match node.scalar() {
        Some(yaml::Scalar::Bool(b)) => b,
        _ => {
            return Err(format!(
                "ci/repos.yml:{}: deploy_prod_trigger must be true or false",
                node.line
            ));
        }
    };
    let bare: Vec<&str> = repos
        .iter()
        .filter(|r| r.deployment.is_some() && r.canary.is_none())
        .map(|r| r.name.as_str())
        .collect();
    if trigger && !bare.is_empty() {
        return Err(format!(
            "ci/repos.yml:{}: deploy_prod_trigger: true needs a canary for every service, and {} {} none; add canary: [/health] (the paths to check) to {}",
            node.line,
            bare.join(", "),
            if bare.len() == 1 { "has" } else { "have" },
            if bare.len() == 1 { "it" } else { "each" }
        ));
    }
    Ok(Production { trigger })
}

/// The canary steps of every production release: a quarter, a pause, a half, a pause, then
/// the promotion (the interval and budget: `CANARY_INTERVAL`, no failed check tolerated).
const CANARY_STEPS: &str = "[{weight: 25}, {pause: 2m}, {weight: 50}, {pause: 2m}, {weight: 100}]";
const CANARY_INTERVAL: &str = "10s";

/// `ci/pipeline.yml`, every Google access through the one team key.
pub fn pipeline(repos: &[Repo]) -> String {
    pipeline_with(repos, &GoogleKeys::default())
}

/// `ci/pipeline.yml` with the table's Google keys, production started by a person.
pub fn pipeline_with(repos: &[Repo], keys: &GoogleKeys) -> String {
    pipeline_for(repos, keys, &Production::default())
}

/// `ci/pipeline.yml` with the table's Google keys and production settings.
pub fn pipeline_for(repos: &[Repo], keys: &GoogleKeys, production: &Production) -> String {
    let mut y = String::new();
    let services: Vec<&Repo> = repos.iter().filter(|r| r.deployment.is_some()).collect();
    let imaged: Vec<&Repo> = repos
        .iter()
        .filter(|r| r.deployment.is_some() || r.acceptance)
        .collect();
    let suite = repos.iter().find(|r| r.acceptance);
    y.push_str("# Continuous delivery of the microservices. RENDERED from ci/repos.yml by `make pipeline`:\n");
    y.push_str("# edit the table there, not this file (a test fails when they disagree).\n");
    y.push_str("#   fly -t TARGET set-pipeline -p microservices -c ci/pipeline.yml -l vars.yml\n");
    y.push_str("# Every ((var)) is described in ci/vars.example.yml.\n\n");

    y.push_str("resource_types:\n");
    for t in RESOURCE_TYPES {
        y.push_str(&format!(
            "- name: {t}\n  type: registry-image\n  source:\n    repository: {REGISTRY}/{t}\n    tag: ((resource-types-tag))\n    username: _json_key\n    password: (({}))\n",
            keys.resource_types
        ));
    }

    y.push_str("\nresources:\n");
    y.push_str("- name: ci\n  type: git\n  icon: cog\n  source:\n    uri: ((ci-repository-uri))\n    branch: main\n    private_key: ((CI_DEPLOY_KEY))\n");
    for r in repos {
        y.push_str(&format!(
            "- name: {0}\n  type: git\n  icon: source-branch\n  source:\n    uri: git@github.com:((github-org))/{0}.git\n    branch: develop\n    private_key: (({1}))\n",
            r.name,
            r.key_var()
        ));
    }
    for r in &imaged {
        let image = r.image();
        y.push_str(&format!(
            "- name: {image}-dev\n  type: gcr-image\n  icon: docker\n  source:\n    repository: {REGISTRY}/{image}\n    tag_regex: '\\.dev$'\n    google_credentials: (({}))\n",
            keys.images
        ));
    }
    for r in &services {
        let image = r.image();
        y.push_str(&format!(
            "- name: {image}-prod\n  type: gcr-image\n  icon: docker\n  source:\n    repository: {REGISTRY}/{image}\n    tag_regex: '^[0-9a-f]{{7,40}}$'\n    google_credentials: (({}))\n",
            keys.images
        ));
    }
    y.push_str("- name: every-6h\n  type: time\n  icon: clock-outline\n  source: {interval: 6h}\n");
    y.push_str("- name: test-cluster\n  type: k8s-deploy\n  icon: kubernetes\n  source:\n    kubeconfig: ((TEST_KUBECONFIG))\n    namespace: microservices-test\n");
    y.push_str(&format!("- name: prod-cluster\n  type: k8s-deploy\n  icon: kubernetes\n  source:\n    server: ((PROD_CLUSTER_SERVER))\n    certificate_authority: ((PROD_CLUSTER_CA))\n    google_credentials: (({}))\n    namespace: microservices\n", keys.deploy_prod));
    y.push_str(&format!(
        "- name: acceptance\n  type: acceptance-run\n  icon: check-all\n  source:\n    reports_repository: {REGISTRY}/acceptance-reports\n    google_credentials: (({}))\n    kubeconfig: ((TEST_KUBECONFIG))\n",
        keys.reports
    ));
    // The resource types' own images, published by this pipeline (job resource-types).
    for t in RESOURCE_TYPES {
        y.push_str(&format!(
            "- name: {t}-type\n  type: gcr-image\n  icon: package-variant\n  check_every: 24h\n  source:\n    repository: {REGISTRY}/{t}\n    google_credentials: (({}))\n",
            keys.images
        ));
    }
    for r in repos {
        y.push_str(&format!(
            "- name: {0}-promotion\n  type: github-promote-pr\n  icon: source-pull\n  source:\n    repository: ((github-org))/{0}\n    access_token: ((GITHUB_TOKEN))\n",
            r.name
        ));
    }

    y.push_str("\njobs:\n");
    // The pipeline keeps itself current: a change to ci/repos.yml (rendered and committed
    // with `make pipeline`) reaches Concourse without a person running fly. Secrets come from
    // the credential manager under the same names, so no var file is needed here.
    y.push_str("- name: reconfigure\n  plan:\n  - get: ci\n    trigger: true\n  - set_pipeline: self\n    file: ci/ci/pipeline.yml\n");
    for r in repos {
        let (image, tag) = r
            .base_image
            .split_once(':')
            .unwrap_or((&r.base_image, "latest"));
        y.push_str(&format!(
            "- name: unit-{0}\n  max_in_flight: 1\n  plan:\n  - get: ci\n  - get: {0}\n    trigger: true\n  - task: unit-tests\n    file: ci/ci/tasks/unit-tests.yml\n    input_mapping: {{source: {0}}}\n    vars: {{base_image: {image}, base_tag: \"{tag}\", language: {2}, test_command: \"{1}\", setup: \"{3}\", go_import_path: \"github.com/((github-org))/{0}\"}}\n",
            r.name,
            r.test,
            r.language(),
            r.setup.as_deref().unwrap_or("")
        ));
    }
    for r in &imaged {
        let image = r.image();
        y.push_str(&format!(
            "- name: build-{image}\n  max_in_flight: 2\n  plan:\n  - get: ci\n  - get: {0}\n    trigger: true\n    passed: [unit-{0}]\n  - task: build-image\n    privileged: true\n    file: ci/ci/tasks/build-image.yml\n    input_mapping: {{context: {0}}}\n    vars: {{oci_build_task_tag: ((oci-build-task-tag))}}\n  - put: {image}-dev\n    params: {{image: image/image.tar, tag_file: {0}/.git/short_ref, tag_suffix: .dev}}\n",
            r.name
        ));
    }
    let dev_gets = |passed: &str, trigger: bool| {
        imaged
            .iter()
            .map(|r| {
                format!(
                    "    - get: {}-dev\n      passed: [{}]\n{}",
                    r.image(),
                    passed.replace("{}", &r.image()),
                    if trigger { "      trigger: true\n" } else { "" }
                )
            })
            .collect::<String>()
    };
    y.push_str("- name: deploy-test\n  serial: true\n  serial_groups: [test-environment]\n  plan:\n  - get: ci\n  - in_parallel:\n");
    y.push_str(&dev_gets("build-{}", true));
    y.push_str("  - put: test-cluster\n    params:\n      ephemeral_namespace: microservices-test\n      manifests: [ci/ci/k8s/services.yml]\n      images:\n");
    for r in &services {
        let d = r.deployment.as_deref().unwrap_or_default();
        y.push_str(&format!(
            "      - {{deployment: {d}, container: {d}, image: {}-dev}}\n",
            r.image()
        ));
    }
    y.push_str("      rollback_on_failure: false\n      timeout: 5m\n");
    // A failed, errored or aborted deploy leaves its namespace: this build's goes at once.
    for hook in ["on_failure", "on_error", "on_abort"] {
        y.push_str(&format!("  {hook}:\n    put: test-cluster\n    params: {{delete_namespace: true, ephemeral_namespace: microservices-test}}\n    no_get: true\n"));
    }

    let suite_image = suite
        .map(Repo::image)
        .unwrap_or_else(|| "acceptance-tests".into());
    let gateway = services
        .iter()
        .find(|r| r.gateway)
        .or(services.first())
        .map(|r| {
            format!(
                "{}:{}",
                r.deployment.as_deref().unwrap_or_default(),
                r.port.unwrap_or(8080)
            )
        })
        .unwrap_or_default();
    let command = suite
        .filter(|s| !s.suite_command.is_empty())
        .map(|s| format!("      command: [{}]\n", s.suite_command.join(", ")))
        .unwrap_or_default();
    y.push_str("- name: acceptance\n  serial: true\n  serial_groups: [test-environment]\n  plan:\n  - in_parallel:\n");
    y.push_str(&dev_gets("deploy-test", true));
    y.push_str("    - get: test-cluster\n      passed: [deploy-test]\n      trigger: true\n    - get: ci\n      passed: [deploy-test]\n");
    y.push_str(&format!(
        "  - put: acceptance\n    params:\n      runner: kubernetes\n      namespace_file: test-cluster/namespace\n      gateway_service: {gateway}\n      smoke:\n{}      image: {suite_image}-dev\n{command}      reporter_image: {REGISTRY}/acceptance-run:((resource-types-tag))\n      timeout: 15m\n",
        services
            .iter()
            .map(|r| format!("      - {{name: {0}, path: /{0}/health}}\n", r.deployment.as_deref().unwrap_or_default()))
            .collect::<String>()
    ));
    y.push_str("  ensure:\n    put: test-cluster\n    params: {delete_namespace: true, namespace_file: test-cluster/namespace}\n    no_get: true\n");

    y.push_str("- name: publish-prod-images\n  serial: true\n  plan:\n  - in_parallel:\n");
    y.push_str(&dev_gets("acceptance", true));
    y.push_str("  - get: acceptance\n    passed: [acceptance]\n  - get: ci\n    passed: [acceptance]\n  - in_parallel:\n");
    for r in &services {
        let image = r.image();
        y.push_str(&format!(
            "    - put: {image}-prod\n      params: {{promote: {image}-dev, strip_suffix: .dev}}\n"
        ));
    }

    y.push_str("- name: open-promotion-prs\n  plan:\n  - in_parallel:\n");
    for r in &services {
        y.push_str(&format!(
            "    - get: {}-prod\n      passed: [publish-prod-images]\n      trigger: true\n",
            r.image()
        ));
    }
    y.push_str("    - get: acceptance\n      passed: [publish-prod-images]\n    - get: ci\n      passed: [publish-prod-images]\n  - in_parallel:\n");
    for r in repos {
        let images = if r.deployment.is_some() {
            format!("[{}-prod]", r.image())
        } else {
            "[]".to_owned()
        };
        y.push_str(&format!("    - put: {}-promotion\n      params: {{images: {images}, acceptance: acceptance, labels: [promotion]}}\n", r.name));
    }

    // The manifests travel with the images: production applies the ci commit that
    // deploy-test applied and acceptance tested.
    y.push_str("- name: deploy-prod\n  serial: true\n  plan:\n  - in_parallel:\n    - get: ci\n      passed: [open-promotion-prs]\n");
    // Started by a person, unless the table asks otherwise and every service is canaried.
    let trigger = if production.trigger {
        "      trigger: true\n"
    } else {
        ""
    };
    for r in &services {
        y.push_str(&format!(
            "    - get: {}-prod\n      passed: [open-promotion-prs]\n{trigger}",
            r.image()
        ));
    }
    y.push_str("  - put: prod-cluster\n    params:\n      manifests: [ci/ci/k8s/services.yml]\n      images:\n");
    for r in &services {
        let d = r.deployment.as_deref().unwrap_or_default();
        y.push_str(&format!(
            "      - {{deployment: {d}, container: {d}, image: {}-prod}}\n",
            r.image()
        ));
    }
    y.push_str("      rollback_on_failure: true\n      timeout: 10m\n");
    let canaried: Vec<&&Repo> = services.iter().filter(|r| r.canary.is_some()).collect();
    if !canaried.is_empty() {
        let names: Vec<&str> = canaried
            .iter()
            .filter_map(|r| r.deployment.as_deref())
            .collect();
        y.push_str(&format!(
            "      canary:\n        deployments: [{}]\n        steps: {CANARY_STEPS}\n        interval: {CANARY_INTERVAL}\n",
            names.join(", ")
        ));
        let checks: Vec<String> = canaried
            .iter()
            .flat_map(|r| {
                let d = r.deployment.as_deref().unwrap_or_default();
                r.canary
                    .iter()
                    .flatten()
                    .map(move |p| format!("        - {{deployment: {d}, path: {p}}}\n"))
            })
            .collect();
        if !checks.is_empty() {
            y.push_str("        checks:\n");
            y.push_str(&checks.concat());
        }
    }

    // The resource types, built from this repository and published as REGISTRY/<type> tagged
    // with the commit's short ref: the pipeline pins them with ((resource-types-tag)).
    y.push_str("- name: resource-types\n  plan:\n  - get: ci\n    trigger: true\n  - task: resource-binaries\n    file: ci/ci/tasks/resource-binaries.yml\n    vars: {rust_tag: ((rust-tag))}\n  - in_parallel:\n");
    for t in RESOURCE_TYPES {
        y.push_str(&format!(
            "    - do:\n      - task: image-{t}\n        privileged: true\n        file: ci/ci/tasks/resource-image.yml\n        vars: {{resource: {t}, oci_build_task_tag: ((oci-build-task-tag))}}\n        output_mapping: {{image: image-{t}}}\n      - put: {t}-type\n        params: {{image: image-{t}/image.tar, tag_file: ci/.git/short_ref}}\n"
        ));
    }

    // The janitor: test namespaces whose cleanup never ran (a lost worker) go after 6 hours.
    y.push_str("- name: test-namespace-janitor\n  plan:\n  - get: every-6h\n    trigger: true\n  - put: test-cluster\n    params: {delete_namespaces_older_than: 6h, ephemeral_namespace: microservices-test}\n    no_get: true\n");

    y.push_str("\ngroups:\n- name: delivery\n  jobs: [deploy-test, acceptance, publish-prod-images, open-promotion-prs, deploy-prod, test-namespace-janitor, reconfigure]\n- name: unit-and-build\n  jobs:\n");
    // (the resource-types group follows the build jobs below)
    for r in repos {
        y.push_str(&format!("  - unit-{}\n", r.name));
    }
    for r in &imaged {
        y.push_str(&format!("  - build-{}\n", r.image()));
    }
    y.push_str("- name: resource-types\n  jobs: [resource-types]\n");
    y
}

/// `ci/k8s/services.yml`: a Deployment and a Service per service.
pub fn services(repos: &[Repo]) -> String {
    let mut y = String::from(
        "# RENDERED from ci/repos.yml by `make pipeline`. Images are set at deploy time by digest.\n",
    );
    for r in repos.iter().filter(|r| r.deployment.is_some()) {
        let d = r.deployment.as_deref().unwrap_or_default();
        let port = r.port.unwrap_or(8080);
        y.push_str(&format!(
            "---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {d}\n  labels: {{app: {d}}}\nspec:\n  replicas: 2\n  progressDeadlineSeconds: 120\n  selector:\n    matchLabels: {{app: {d}}}\n  template:\n    metadata:\n      labels: {{app: {d}}}\n    spec:\n      containers:\n      - name: {d}\n        image: {REGISTRY}/{}:unset\n        ports:\n        - containerPort: {port}\n        readinessProbe:\n          httpGet: {{path: /{d}/health, port: {port}}}\n---\napiVersion: v1\nkind: Service\nmetadata:\n  name: {d}\nspec:\n  selector: {{app: {d}}}\n  ports:\n  - port: {port}\n    targetPort: {port}\n",
            r.image()
        ));
    }
    y
}
