//! The kubelet's part, for real: with a Docker daemon (`Options::docker`), every pod the
//! controllers create runs as Docker containers, so a test (or `make demo`) can deploy real
//! services and reach them.
//!
//! - One Docker network per namespace (`<prefix>-<namespace>`); a pod's first container joins it
//!   with the DNS names of every Service selecting the pod (`svc`, `svc.ns`, `svc.ns.svc`,
//!   `svc.ns.svc.cluster.local`), the other containers share its network namespace, as in a pod.
//! - Images are pulled by the daemon when absent (a loopback registry pulls over plain HTTP, as
//!   Docker allows for 127.0.0.0/8); a failed pull is `ErrImagePull`/`ImagePullBackOff` with
//!   the daemon's reason.
//! - `emptyDir` volumes are Docker volumes shared by the pod's containers; init containers run
//!   to completion in order first; `restartPolicy` maps onto Docker's restart policy, so a
//!   crashing container of a Deployment shows `CrashLoopBackOff` with its restart count.
//! - Pod status (phase, podIP, container states, Ready with `readinessProbe` httpGet/tcpSocket)
//!   is read back from the daemon every tick; `pods/log` streams the container's output,
//!   `services/proxy` forwards to the ready pods in turn and `pods/proxy` to the pod itself
//!   (see `api`); readiness gates hold Ready until their condition is True (`kubelet`).
//! - Everything is labelled with the fake's prefix and removed when the fake stops (or when its
//!   pod or namespace is deleted).
//!
//! Not modelled: other volume types, `valueFrom` other than Secret and ConfigMap keys, exec
//! probes (a running container is ready), Service ports that differ from the target port when
//! reached by DNS name (names resolve to the pod, so use the container's port), readiness for
//! DNS names (a Service's name resolves to its pods whether they are ready or not; through the
//! `services/proxy` only ready pods answer), image pull retries after a failure.

use super::resources;
use super::store::{self, key};
use super::{Shared, lock, notify};
use bollard::Docker;
use bollard::models::{
    ContainerCreateBody, ContainerInspectResponse, EndpointSettings, HostConfig,
    NetworkConnectRequest, NetworkCreateRequest, NetworkDisconnectRequest, NetworkingConfig,
    RestartPolicy, RestartPolicyNameEnum,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, CreateImageOptionsBuilder, ListContainersOptionsBuilder,
    ListNetworksOptionsBuilder, RemoveContainerOptionsBuilder,
};
use futures_util::StreamExt as _;
use serde_json::{Value, json};
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

mod docker;

const INSTANCE: &str = "fake-kube.instance";
const NAMESPACE: &str = "fake-kube.namespace";

/// One pod's containers.
#[derive(Debug, Clone, Default)]
struct PodRun {
    namespace: String,
    name: String,
    /// Still being started (images pulled, init containers run).
    starting: bool,
    /// (name, Docker id) of init containers, then of the main containers.
    init: Vec<(String, String)>,
    containers: Vec<(String, String)>,
    volumes: Vec<String>,
    aliases: BTreeSet<String>,
    ip: Option<String>,
}

/// The container runtime behind the fake's pods.
#[derive(Debug)]
pub struct Runtime {
    docker: Docker,
    /// Names and labels of everything this fake creates (`fk<port>`).
    prefix: String,
    pods: Mutex<HashMap<String, PodRun>>,
    http: reqwest::Client,
    /// Docker accepts two networks of one name: creating them is one pod at a time.
    networks: tokio::sync::Mutex<BTreeSet<String>>,
    /// Images this fake pulled (the daemon did not have them): removed when it stops.
    pulled: Mutex<BTreeSet<String>>,
}

fn one_line(e: &impl std::fmt::Display) -> String {
    e.to_string()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

impl Runtime {
    /// Connects to the daemon (`DOCKER_HOST` or the local socket) and removes what an earlier
    /// fake with the same prefix left behind.
    pub async fn connect(prefix: &str) -> Result<Arc<Self>, String> {
        let host = std::env::var("DOCKER_HOST").ok();
        let docker = match host.as_deref() {
            Some(h) if h.starts_with("tcp://") || h.starts_with("http://") => {
                Docker::connect_with_http(h, 120, bollard::API_DEFAULT_VERSION)
            }
            Some(h) => Docker::connect_with_socket(h, 120, bollard::API_DEFAULT_VERSION),
            None => Docker::connect_with_socket(
                "/var/run/docker.sock",
                120,
                bollard::API_DEFAULT_VERSION,
            ),
        }
        .map_err(|e| one_line(&e))?;
        let docker = docker.negotiate_version().await.map_err(|e| {
            format!(
                "the Kubernetes fake runs pods with Docker, and the daemon at {} does not answer: {}",
                host.as_deref().unwrap_or("/var/run/docker.sock"),
                one_line(&e)
            )
        })?;
        let _ = tokio_rustls::rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .no_proxy()
            .build()
            .map_err(|e| one_line(&e))?;
        let rt = Arc::new(Self {
            docker,
            prefix: prefix.to_owned(),
            pods: Mutex::new(HashMap::new()),
            http,
            networks: tokio::sync::Mutex::new(BTreeSet::new()),
            pulled: Mutex::new(BTreeSet::new()),
        });
        rt.cleanup().await;
        rt.reap_orphans().await;
        Ok(rt)
    }

    fn pods(&self) -> std::sync::MutexGuard<'_, HashMap<String, PodRun>> {
        self.pods.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn network(&self, namespace: &str) -> String {
        format!("{}-{namespace}", self.prefix)
    }

    /// Removes every container, network and volume of this fake.
    pub async fn cleanup(&self) {
        self.remove_instance(&self.prefix).await;
        let runs: Vec<PodRun> = self.pods().drain().map(|(_, r)| r).collect();
        for r in runs {
            self.remove_volumes(&r).await;
        }
        // Untags what this fake pulled (layers shared with other images stay).
        let pulled: Vec<String> =
            std::mem::take(&mut *self.pulled.lock().unwrap_or_else(PoisonError::into_inner))
                .into_iter()
                .collect();
        for image in pulled {
            let _ = self
                .docker
                .remove_image(
                    &image,
                    None::<bollard::query_parameters::RemoveImageOptions>,
                    None,
                )
                .await;
        }
    }

    /// One pass: start new pods, remove deleted ones, read back the state of running ones,
    /// keep Service names pointing at their pods, drop networks of deleted namespaces.
    pub async fn sync(self: &Arc<Self>, world: &Shared) {
        let pod_r = resources::find("", "v1", "pods").expect("served");
        let svc_r = resources::find("", "v1", "services").expect("served");
        let ns_r = resources::find("", "v1", "namespaces").expect("served");
        let (pods, services, namespaces) = {
            let w = lock(world);
            (
                w.store.list(pod_r, "", "", ""),
                w.store.list(svc_r, "", "", ""),
                w.store
                    .list(ns_r, "", "", "")
                    .iter()
                    .filter_map(|n| n["metadata"]["name"].as_str().map(str::to_owned))
                    .collect::<BTreeSet<String>>(),
            )
        };
        let uids: BTreeSet<String> = pods
            .iter()
            .filter_map(|p| p["metadata"]["uid"].as_str().map(str::to_owned))
            .collect();
        // Deleted pods.
        let gone: Vec<PodRun> = {
            let mut runs = self.pods();
            let gone_uids: Vec<String> = runs
                .keys()
                .filter(|u| !uids.contains(*u))
                .cloned()
                .collect();
            gone_uids.iter().filter_map(|u| runs.remove(u)).collect()
        };
        for run in gone {
            let rt = self.clone();
            tokio::spawn(async move {
                for (_, id) in run.containers.iter().chain(&run.init) {
                    rt.remove_container(id).await;
                }
                rt.remove_volumes(&run).await;
            });
        }
        for pod in &pods {
            let uid = pod["metadata"]["uid"].as_str().unwrap_or("").to_owned();
            let known = self.pods().get(&uid).cloned();
            let wanted = aliases(pod, &services);
            match known {
                None => {
                    let terminal = matches!(
                        pod["status"]["phase"].as_str(),
                        Some("Succeeded" | "Failed")
                    );
                    if terminal {
                        continue;
                    }
                    self.pods().insert(
                        uid.clone(),
                        PodRun {
                            namespace: pod["metadata"]["namespace"]
                                .as_str()
                                .unwrap_or("")
                                .to_owned(),
                            name: pod["metadata"]["name"].as_str().unwrap_or("").to_owned(),
                            starting: true,
                            aliases: wanted,
                            ..PodRun::default()
                        },
                    );
                    let rt = self.clone();
                    let world = world.clone();
                    let pod = pod.clone();
                    tokio::spawn(async move { rt.start(&world, &pod).await });
                }
                Some(run) if run.starting => {}
                Some(run) => {
                    if run.aliases != wanted
                        && let Some((_, first)) = run.containers.first()
                    {
                        self.realias(&run.namespace, first, &wanted).await;
                        if let Some(r) = self.pods().get_mut(&uid) {
                            r.aliases = wanted;
                        }
                    }
                    if !run.containers.is_empty() {
                        self.observe(world, pod, &run).await;
                    }
                }
            }
        }
        // Networks of namespaces that are gone (once their containers are).
        let filter = HashMap::from([("label", vec![format!("{INSTANCE}={}", self.prefix)])]);
        if let Ok(nets) = self.networks_labelled(&filter).await {
            for n in nets {
                let ns = n
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(NAMESPACE))
                    .cloned()
                    .unwrap_or_default();
                if !namespaces.contains(&ns)
                    && let (Some(id), Some(name)) = (n.id, n.name)
                {
                    let mut known = self.networks.lock().await;
                    if self.docker.remove_network(&id).await.is_ok() {
                        known.remove(&name);
                    }
                }
            }
        }
    }

    /// Writes a pod's status (if the pod is still the same one).
    fn set_status(world: &Shared, pod: &Value, status: Value) {
        let pod_r = resources::find("", "v1", "pods").expect("served");
        let ns = pod["metadata"]["namespace"].as_str().unwrap_or("");
        let name = pod["metadata"]["name"].as_str().unwrap_or("");
        let mut w = lock(world);
        let Some(current) = w.store.get(&key(pod_r, ns, name)).cloned() else {
            return;
        };
        let status = super::kubelet::merge(&current, status);
        if current["metadata"]["uid"] != pod["metadata"]["uid"] || current["status"] == status {
            return;
        }
        let mut next = current;
        next["status"] = status;
        let changed = w.store.update(pod_r, ns, name, next, false).is_ok();
        drop(w);
        if changed {
            notify(world);
        }
    }

    /// A pod that cannot start: every container waits with `reason`.
    fn waiting(world: &Shared, pod: &Value, reason: &str, message: &str) {
        let statuses: Vec<Value> = containers_of(pod, "containers")
            .iter()
            .map(|c| json!({"name": c["name"], "image": c["image"], "ready": false, "restartCount": 0, "started": false,
                           "state": {"waiting": {"reason": reason, "message": message}}}))
            .collect();
        Self::set_status(
            world,
            pod,
            json!({"phase": "Pending", "conditions": conditions(false, false), "containerStatuses": statuses,
                   "startTime": pod["metadata"]["creationTimestamp"]}),
        );
    }

    async fn start(self: Arc<Self>, world: &Shared, pod: &Value) {
        let uid = pod["metadata"]["uid"].as_str().unwrap_or("").to_owned();
        if let Err((reason, message)) = self.try_start(world, pod, &uid).await {
            Self::waiting(world, pod, &reason, &message);
        }
        if let Some(r) = self.pods().get_mut(&uid) {
            r.starting = false;
        }
    }

    async fn try_start(
        &self,
        world: &Shared,
        pod: &Value,
        uid: &str,
    ) -> Result<(), (String, String)> {
        let ns = pod["metadata"]["namespace"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        let pod_name = pod["metadata"]["name"].as_str().unwrap_or("").to_owned();
        let config_error = |m: String| ("CreateContainerConfigError".to_owned(), m);
        Self::waiting(world, pod, "ContainerCreating", "");
        // The namespace's network.
        let net = self.network(&ns);
        {
            let mut known = self.networks.lock().await;
            let exists = known.contains(&net)
                || self
                    .docker
                    .inspect_network(
                        &net,
                        None::<bollard::query_parameters::InspectNetworkOptions>,
                    )
                    .await
                    .is_ok();
            if !exists {
                self.docker
                    .create_network(NetworkCreateRequest {
                        name: net.clone(),
                        labels: Some(HashMap::from([
                            (INSTANCE.to_owned(), self.prefix.clone()),
                            (NAMESPACE.to_owned(), ns.clone()),
                        ])),
                        ..Default::default()
                    })
                    .await
                    .map_err(|e| {
                        config_error(format!(
                            "cannot create the namespace's network {net}: {}",
                            one_line(&e)
                        ))
                    })?;
            }
            known.insert(net.clone());
        }
        // emptyDir volumes.
        let tail = &uid[uid.len().saturating_sub(12)..];
        let mut volumes = HashMap::new();
        for v in pod["spec"]["volumes"].as_array().into_iter().flatten() {
            let name = v["name"].as_str().unwrap_or("");
            if v.get("emptyDir").is_none() {
                return Err(config_error(format!(
                    "volume \"{name}\": the fake's Docker runtime mounts emptyDir volumes only"
                )));
            }
            let volume = format!("{}-{tail}-{name}", self.prefix);
            self.docker
                .create_volume(bollard::models::VolumeCreateRequest {
                    name: Some(volume.clone()),
                    labels: Some(HashMap::from([
                        (INSTANCE.to_owned(), self.prefix.clone()),
                        (NAMESPACE.to_owned(), ns.clone()),
                    ])),
                    ..Default::default()
                })
                .await
                .map_err(|e| config_error(format!("volume \"{name}\": {}", one_line(&e))))?;
            volumes.insert(name.to_owned(), volume);
        }
        if let Some(r) = self.pods().get_mut(uid) {
            r.volumes = volumes.values().cloned().collect();
        }
        let restart = match pod["spec"]["restartPolicy"].as_str().unwrap_or("Always") {
            "Never" => RestartPolicyNameEnum::NO,
            "OnFailure" => RestartPolicyNameEnum::ON_FAILURE,
            _ => RestartPolicyNameEnum::ALWAYS,
        };
        let inits = containers_of(pod, "initContainers");
        let mains = containers_of(pod, "containers");
        for c in inits.iter().chain(&mains) {
            self.pull(c["image"].as_str().unwrap_or("")).await?;
        }
        let base_labels = HashMap::from([
            (INSTANCE.to_owned(), self.prefix.clone()),
            (NAMESPACE.to_owned(), ns.clone()),
            ("fake-kube.pod".to_owned(), pod_name.clone()),
        ]);
        let aliases: Vec<String> = self
            .pods()
            .get(uid)
            .map(|r| r.aliases.iter().cloned().collect())
            .unwrap_or_default();
        // Init containers, in order, each to completion.
        for c in &inits {
            let body = self.container_body(world, pod, c, &volumes, &base_labels)?;
            let body = ContainerCreateBody {
                host_config: Some(HostConfig {
                    network_mode: Some(net.clone()),
                    ..body.host_config.unwrap_or_default()
                }),
                ..body
            };
            let id = self.create(&ns, &pod_name, c, body).await?;
            if let Some(r) = self.pods().get_mut(uid) {
                r.init
                    .push((c["name"].as_str().unwrap_or("").to_owned(), id.clone()));
            }
            let code = self.run_to_end(&id).await;
            if code != Some(0) {
                let name = c["name"].as_str().unwrap_or("");
                let message = format!(
                    "init container {name} exited with {}",
                    code.map_or("no code".to_owned(), |c| c.to_string())
                );
                if restart == RestartPolicyNameEnum::NO {
                    Self::set_status(
                        world,
                        pod,
                        json!({"phase": "Failed", "reason": "Init:Error", "message": message,
                               "conditions": conditions(false, false),
                               "initContainerStatuses": [{"name": name, "image": c["image"], "ready": false, "restartCount": 0,
                                   "state": {"terminated": {"exitCode": code.unwrap_or(-1), "reason": "Error"}}}]}),
                    );
                    return Ok(());
                }
                return Err(("CrashLoopBackOff".to_owned(), message));
            }
        }
        // The main containers: the first holds the pod's network, the others share it.
        let mut first: Option<String> = None;
        for c in &mains {
            let body = self.container_body(world, pod, c, &volumes, &base_labels)?;
            let mut host = body.host_config.clone().unwrap_or_default();
            host.restart_policy = Some(RestartPolicy {
                name: Some(restart),
                maximum_retry_count: None,
            });
            let body = match &first {
                None => {
                    host.network_mode = Some(net.clone());
                    ContainerCreateBody {
                        hostname: Some(pod_name.chars().take(63).collect()),
                        host_config: Some(host),
                        networking_config: Some(NetworkingConfig {
                            endpoints_config: Some(HashMap::from([(
                                net.clone(),
                                EndpointSettings {
                                    aliases: Some(aliases.clone()),
                                    ..Default::default()
                                },
                            )])),
                        }),
                        ..body
                    }
                }
                Some(holder) => {
                    host.network_mode = Some(format!("container:{holder}"));
                    ContainerCreateBody {
                        host_config: Some(host),
                        ..body
                    }
                }
            };
            let id = self.create(&ns, &pod_name, c, body).await?;
            self.docker
                .start_container(
                    &id,
                    None::<bollard::query_parameters::StartContainerOptions>,
                )
                .await
                .map_err(|e| ("RunContainerError".to_owned(), one_line(&e)))?;
            if first.is_none() {
                first = Some(id.clone());
            }
            if let Some(r) = self.pods().get_mut(uid) {
                r.containers
                    .push((c["name"].as_str().unwrap_or("").to_owned(), id));
            }
        }
        Ok(())
    }

    /// Reads the pod's containers back from the daemon into its status.
    async fn observe(&self, world: &Shared, pod: &Value, run: &PodRun) {
        let specs = containers_of(pod, "containers");
        let mut statuses = Vec::new();
        let mut all_ready = true;
        let mut all_done = true;
        let mut all_ok = true;
        let mut ip = run.ip.clone();
        for (name, id) in &run.containers {
            let Ok(info) = self
                .docker
                .inspect_container(
                    id,
                    None::<bollard::query_parameters::InspectContainerOptions>,
                )
                .await
            else {
                continue;
            };
            if ip.is_none() {
                ip = pod_ip(&info);
            }
            let spec = specs
                .iter()
                .find(|c| c["name"] == name.as_str())
                .cloned()
                .unwrap_or(Value::Null);
            let state = info.state.clone().unwrap_or_default();
            let running = state.running.unwrap_or(false) && !state.restarting.unwrap_or(false);
            let restarts = info.restart_count.unwrap_or(0);
            let exit = state.exit_code.unwrap_or(0);
            let ready = running && self.probe(&spec, ip.as_deref()).await;
            all_ready &= ready;
            let policy = pod["spec"]["restartPolicy"].as_str().unwrap_or("Always");
            let finished = !running
                && state
                    .finished_at
                    .as_deref()
                    .is_some_and(|f| !f.starts_with("0001"))
                && (policy == "Never" || (policy == "OnFailure" && exit == 0));
            all_done &= finished;
            all_ok &= finished && exit == 0;
            let terminated = |exit: i64| {
                json!({"terminated": {"exitCode": exit, "reason": if exit == 0 { "Completed" } else { "Error" },
                                      "startedAt": state.started_at, "finishedAt": state.finished_at}})
            };
            let (s, last) = if running {
                (
                    json!({"running": {"startedAt": state.started_at}}),
                    if restarts > 0 {
                        json!({"terminated": {"exitCode": 1, "reason": "Error"}})
                    } else {
                        json!({})
                    },
                )
            } else if finished {
                (terminated(exit), json!({}))
            } else {
                (
                    json!({"waiting": {"reason": "CrashLoopBackOff", "message": format!("back-off restarting failed container={name} pod={}", run.name)}}),
                    terminated(exit),
                )
            };
            statuses.push(json!({"name": name, "image": spec["image"], "imageID": info.image, "containerID": format!("docker://{id}"),
                                 "ready": ready, "started": running, "restartCount": restarts, "state": s, "lastState": last}));
        }
        if statuses.is_empty() {
            return;
        }
        if ip != run.ip
            && let Some(r) = self
                .pods()
                .get_mut(pod["metadata"]["uid"].as_str().unwrap_or(""))
        {
            r.ip = ip.clone();
        }
        let phase = if all_done {
            if all_ok { "Succeeded" } else { "Failed" }
        } else {
            "Running"
        };
        let mut status = json!({"phase": phase, "conditions": conditions(true, all_ready && !all_done),
                                "containerStatuses": statuses, "startTime": pod["metadata"]["creationTimestamp"],
                                "hostIP": "127.0.0.1"});
        if let Some(ip) = ip {
            status["podIP"] = json!(ip);
            status["podIPs"] = json!([{"ip": ip}]);
        }
        Self::set_status(world, pod, status);
    }

    /// The container's readiness probe (httpGet or tcpSocket); ready when it has none.
    async fn probe(&self, spec: &Value, ip: Option<&str>) -> bool {
        let probe = &spec["readinessProbe"];
        let Some(ip) = ip else {
            return probe.is_null();
        };
        let port = |p: &Value| -> Option<u16> {
            match p {
                Value::Number(n) => n.as_u64().and_then(|n| u16::try_from(n).ok()),
                Value::String(name) => spec["ports"]
                    .as_array()?
                    .iter()
                    .find(|x| x["name"] == name.as_str())?["containerPort"]
                    .as_u64()
                    .and_then(|n| u16::try_from(n).ok()),
                _ => None,
            }
        };
        if let Some(get) = probe.get("httpGet") {
            let Some(p) = port(&get["port"]) else {
                return false;
            };
            let path = get["path"].as_str().unwrap_or("/");
            return self
                .http
                .get(format!("http://{ip}:{p}{path}"))
                .timeout(Duration::from_secs(1))
                .send()
                .await
                .is_ok_and(|r| r.status().as_u16() < 400);
        }
        if let Some(tcp) = probe.get("tcpSocket") {
            let Some(p) = port(&tcp["port"]) else {
                return false;
            };
            return tokio::time::timeout(
                Duration::from_secs(1),
                tokio::net::TcpStream::connect((ip, p)),
            )
            .await
            .is_ok_and(|r| r.is_ok());
        }
        true
    }

    /// The Docker id of a pod's container, for `pods/log`. `Err` is (code, message) as the
    /// apiserver says it.
    pub fn container_id(
        &self,
        pod: &Value,
        container: Option<&str>,
    ) -> Result<String, (u16, String)> {
        let uid = pod["metadata"]["uid"].as_str().unwrap_or("");
        let name = pod["metadata"]["name"].as_str().unwrap_or("");
        let specs: Vec<String> = containers_of(pod, "containers")
            .iter()
            .filter_map(|c| c["name"].as_str().map(str::to_owned))
            .collect();
        let wanted = match container {
            Some(c) => c.to_owned(),
            None if specs.len() == 1 => specs[0].clone(),
            None => {
                return Err((
                    400,
                    format!(
                        "a container name must be specified for pod {name}, choose one of: [{}]",
                        specs.join(" ")
                    ),
                ));
            }
        };
        let runs = self.pods();
        let run = runs.get(uid);
        let found = run.and_then(|r| {
            r.containers
                .iter()
                .chain(&r.init)
                .find(|(n, _)| *n == wanted)
                .map(|(_, id)| id.clone())
        });
        match found {
            Some(id) => Ok(id),
            None if specs.contains(&wanted)
                || containers_of(pod, "initContainers")
                    .iter()
                    .any(|c| c["name"] == wanted.as_str()) =>
            {
                let reason = pod["status"]["containerStatuses"][0]["state"]["waiting"]["reason"]
                    .as_str()
                    .unwrap_or("ContainerCreating");
                Err((
                    400,
                    format!(
                        "container \"{wanted}\" in pod \"{name}\" is waiting to start: {reason}"
                    ),
                ))
            }
            None => Err((
                400,
                format!("container {wanted} is not valid for pod {name}"),
            )),
        }
    }

    /// The container's output (stdout and stderr, as the kubelet merges them).
    pub fn logs(
        &self,
        id: &str,
        follow: bool,
        tail: Option<String>,
    ) -> impl futures_util::Stream<Item = Result<bytes::Bytes, std::io::Error>> + use<> {
        let mut options = bollard::query_parameters::LogsOptionsBuilder::default()
            .follow(follow)
            .stdout(true)
            .stderr(true);
        if let Some(t) = tail {
            options = options.tail(&t);
        }
        self.docker
            .logs(id, Some(options.build()))
            .map(|r| r.map(|o| o.into_bytes()).map_err(std::io::Error::other))
    }

    /// Where a ready pod behind `service` (port `port`, by name or number) answers, for
    /// `services/proxy`.
    pub fn endpoint(
        world: &Shared,
        namespace: &str,
        service: &str,
        port: Option<&str>,
    ) -> Result<String, (u16, String)> {
        let svc_r = resources::find("", "v1", "services").expect("served");
        let pod_r = resources::find("", "v1", "pods").expect("served");
        let w = lock(world);
        let Some(svc) = w.store.get(&key(svc_r, namespace, service)) else {
            return Err((404, store::not_found(svc_r, service)));
        };
        let ports = svc["spec"]["ports"].as_array().cloned().unwrap_or_default();
        let chosen = match port {
            None => ports.first().cloned(),
            Some(p) => ports
                .iter()
                .find(|x| x["name"] == p || x["port"].as_u64().is_some_and(|n| n.to_string() == p))
                .cloned(),
        };
        let Some(chosen) = chosen else {
            return Err((
                503,
                format!("no endpoints available for service \"{service}\""),
            ));
        };
        let selector = store::selector_string(&svc["spec"]["selector"]);
        if selector.is_empty() {
            return Err((
                503,
                format!("no endpoints available for service \"{service}\""),
            ));
        }
        // The endpoints: ready pods, not being deleted; kube-proxy spreads connections over
        // them (at random in iptables mode; here in turn, which a test can count on).
        let ready: Vec<Value> = w
            .store
            .list(pod_r, namespace, &selector, "")
            .into_iter()
            .filter(|p| {
                p["status"]["podIP"].is_string()
                    && p["metadata"]["deletionTimestamp"].is_null()
                    && super::kubelet::is_ready(p)
            })
            .collect();
        static TURN: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let turn = TURN.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let Some(pod) = ready.get(turn % ready.len().max(1)) else {
            return Err((
                503,
                format!("no endpoints available for service \"{service}\""),
            ));
        };
        let target = match &chosen["targetPort"] {
            Value::Number(n) => n.to_string(),
            Value::String(name) => pod["spec"]["containers"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|c| c["ports"].as_array().cloned().unwrap_or_default())
                .find(|p| p["name"] == name.as_str())
                .map(|p| p["containerPort"].to_string())
                .unwrap_or_default(),
            _ => chosen["port"].to_string(),
        };
        Ok(format!(
            "{}:{target}",
            pod["status"]["podIP"].as_str().unwrap_or("")
        ))
    }

    /// `IP:PORT` of a pod for the API server's pod proxy: PORT as given (a number), else the
    /// first port its containers declare (the API server's rule).
    pub fn pod_endpoint(
        world: &Shared,
        namespace: &str,
        name: &str,
        port: Option<&str>,
    ) -> Result<String, (u16, String)> {
        let pod_r = resources::find("", "v1", "pods").expect("served");
        let w = lock(world);
        let Some(pod) = w.store.get(&key(pod_r, namespace, name)) else {
            return Err((404, store::not_found(pod_r, name)));
        };
        let Some(ip) = pod["status"]["podIP"].as_str() else {
            return Err((503, format!("pod \"{name}\" has no IP address yet")));
        };
        let port = match port {
            Some(p) if p.parse::<u16>().is_ok() => p.to_owned(),
            Some(p) => {
                return Err((
                    503,
                    format!(
                        "error trying to reach service: dial tcp: address {ip}:{p}: unknown port"
                    ),
                ));
            }
            None => pod["spec"]["containers"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|c| c["ports"].as_array().cloned().unwrap_or_default())
                .find_map(|p| p["containerPort"].as_u64())
                .unwrap_or(80)
                .to_string(),
        };
        Ok(format!("{ip}:{port}"))
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }
}

fn containers_of(pod: &Value, field: &str) -> Vec<Value> {
    pod["spec"][field].as_array().cloned().unwrap_or_default()
}

fn conditions(initialized: bool, ready: bool) -> Value {
    let s = |b: bool| if b { "True" } else { "False" };
    json!([{"type": "PodScheduled", "status": "True"}, {"type": "Initialized", "status": s(initialized)},
           {"type": "ContainersReady", "status": s(ready)}, {"type": "Ready", "status": s(ready)}])
}

fn pod_ip(info: &ContainerInspectResponse) -> Option<String> {
    info.network_settings
        .as_ref()?
        .networks
        .as_ref()?
        .values()
        .find_map(|e| e.ip_address.clone().filter(|ip| !ip.is_empty()))
}

/// The DNS names of the Services in the pod's namespace whose selector matches its labels.
fn aliases(pod: &Value, services: &[Value]) -> BTreeSet<String> {
    let ns = pod["metadata"]["namespace"].as_str().unwrap_or("");
    let labels = &pod["metadata"]["labels"];
    let mut out = BTreeSet::new();
    for s in services.iter().filter(|s| s["metadata"]["namespace"] == ns) {
        let Some(selector) = s["spec"]["selector"].as_object() else {
            continue;
        };
        if selector.is_empty() || selector.iter().any(|(k, v)| &labels[k] != v) {
            continue;
        }
        let name = s["metadata"]["name"].as_str().unwrap_or("");
        for alias in [
            name.to_owned(),
            format!("{name}.{ns}"),
            format!("{name}.{ns}.svc"),
            format!("{name}.{ns}.svc.cluster.local"),
        ] {
            out.insert(alias);
        }
    }
    out
}

/// `valueFrom` with `secretKeyRef` or `configMapKeyRef`, or `fieldRef` to the pod's name or
/// namespace.
fn resolve(world: &Shared, pod: &Value, from: &Value) -> Result<String, String> {
    let ns = pod["metadata"]["namespace"].as_str().unwrap_or("");
    if let Some(path) = from["fieldRef"]["fieldPath"].as_str() {
        return match path {
            "metadata.name" => Ok(pod["metadata"]["name"].as_str().unwrap_or("").to_owned()),
            "metadata.namespace" => Ok(ns.to_owned()),
            other => Err(format!("fieldRef {other} is not served by the fake")),
        };
    }
    let (plural, r, encoded) = if from.get("secretKeyRef").is_some() {
        ("secrets", &from["secretKeyRef"], true)
    } else if from.get("configMapKeyRef").is_some() {
        ("configmaps", &from["configMapKeyRef"], false)
    } else {
        return Err(
            "only secretKeyRef, configMapKeyRef and fieldRef are served by the fake".into(),
        );
    };
    let res = resources::find("", "v1", plural).expect("served");
    let name = r["name"].as_str().unwrap_or("");
    let k = r["key"].as_str().unwrap_or("");
    let w = lock(world);
    let Some(o) = w.store.get(&key(res, ns, name)) else {
        return Err(format!("{plural} \"{name}\" not found"));
    };
    let v = &o["data"][k];
    let Some(s) = v.as_str() else {
        return Err(format!("couldn't find key {k} in {plural} {ns}/{name}"));
    };
    if encoded {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD
            .decode(s)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .map_err(|_| format!("secret {name} key {k} is not base64"))
    } else {
        Ok(s.to_owned())
    }
}
