//! A fake Kubernetes API server that kubectl accepts (kubectl is the referee:
//! `tests/kube_kubectl.rs` runs the real client against it), with a simulated deployment
//! controller. See `api` for the HTTP surface, `patch` for patch and apply semantics,
//! `controller` for rollouts and their failures.

mod api;
pub mod controller;
pub mod kubelet;
pub mod patch;
pub mod resources;
pub mod runtime;
pub mod ssa;
pub mod store;
pub mod table;
mod yamljson;

use controller::Pullable;
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;
use store::{Key, Store};
use tokio::sync::{Notify, oneshot};

#[derive(Debug)]
pub struct World {
    pub store: Store,
    /// `metadata.managedFields` of each object (see `ssa`).
    pub owners: BTreeMap<Key, ssa::Managed>,
    pub token: Option<String>,
    pub notify: Arc<Notify>,
    pub pullable: Pullable,
    pub pod_counter: u64,
    /// Pods run as Docker containers (`runtime`); otherwise their states are simulated.
    pub docker: bool,
    pub runtime: Option<Arc<runtime::Runtime>>,
    /// When each Deployment's rollout was first seen complete: (namespace/name) -> (generation, when).
    pub completions: std::collections::HashMap<String, (i64, std::time::Instant)>,
}

pub(crate) type Shared = Arc<Mutex<World>>;

pub(crate) fn lock(w: &Shared) -> MutexGuard<'_, World> {
    w.lock().unwrap_or_else(PoisonError::into_inner)
}

pub(crate) fn notify(w: &Shared) {
    lock(w).notify.notify_waiters();
}

/// How to start the fake.
#[derive(Debug, Clone)]
pub struct Options {
    /// Require `Authorization: Bearer <token>`.
    pub token: Option<String>,
    /// Serve HTTPS with a fresh private CA (see [`FakeKube::ca_pem`]).
    pub tls: bool,
    /// How often the controller moves rollouts forward.
    pub tick: Duration,
    pub pullable: Pullable,
    /// Run pods as Docker containers (see `runtime`); start fails when the daemon is missing.
    pub docker: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            token: None,
            tls: false,
            tick: Duration::from_millis(50),
            pullable: Pullable::Any,
            docker: false,
        }
    }
}

/// A running fake apiserver; stops when dropped.
#[derive(Debug)]
pub struct FakeKube {
    url: String,
    ca_pem: Option<String>,
    token: Option<String>,
    world: Shared,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl FakeKube {
    pub fn start(options: Options) -> Self {
        let listener =
            std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free loopback port");
        Self::start_on(listener, options)
    }

    pub fn start_on(listener: std::net::TcpListener, options: Options) -> Self {
        Self::try_start_on(listener, options).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Like `start_on`; `Err` when the Docker daemon the runtime needs does not answer.
    pub fn try_start_on(listener: std::net::TcpListener, options: Options) -> Result<Self, String> {
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let addr = listener.local_addr().expect("address");
        let dir = tempfile::tempdir().expect("a directory for certificates");
        let mut store = Store::default();
        let ns_r = resources::find("", "v1", "namespaces").expect("served");
        for ns in ["default", "kube-system"] {
            let _ = store.create(ns_r, "", json!({"metadata": {"name": ns}, "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}}));
        }
        let world: Shared = Arc::new(Mutex::new(World {
            store,
            owners: BTreeMap::new(),
            token: options.token.clone(),
            notify: Arc::new(Notify::new()),
            pullable: options.pullable.clone(),
            pod_counter: 0,
            docker: options.docker,
            runtime: None,
            completions: std::collections::HashMap::new(),
        }));
        let tls = options.tls.then(|| {
            crate::certs::server_cert(dir.path());
            (dir.path().join("server.pem"), dir.path().join("server.key"))
        });
        let ca_pem = tls
            .as_ref()
            .map(|_| std::fs::read_to_string(dir.path().join("ca.pem")).expect("CA certificate"));
        let (stop, mut stopped) = oneshot::channel::<()>();
        let shared = world.clone();
        let tick = options.tick;
        let docker = options.docker;
        let prefix = format!("fk{}", addr.port());
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<(), String>>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("fake apiserver runtime");
            rt.block_on(async move {
                let containers = if docker {
                    match runtime::Runtime::connect(&prefix).await {
                        Ok(r) => {
                            lock(&shared).runtime = Some(r.clone());
                            Some(r)
                        }
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                            return;
                        }
                    }
                } else {
                    None
                };
                let _ = ready_tx.send(Ok(()));
                let kubelet = {
                    let world = shared.clone();
                    let containers = containers.clone();
                    async move {
                        let Some(rt) = containers else {
                            return std::future::pending::<()>().await;
                        };
                        let mut interval = tokio::time::interval(Duration::from_millis(250));
                        loop {
                            interval.tick().await;
                            rt.sync(&world).await;
                        }
                    }
                };
                let router = axum::Router::new()
                    .fallback(api::handle)
                    .with_state(shared.clone());
                let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
                let controller = {
                    let world = shared.clone();
                    async move {
                        let mut progress = std::collections::HashMap::new();
                        let mut interval = tokio::time::interval(tick);
                        loop {
                            interval.tick().await;
                            controller::tick(&world, &mut progress);
                            controller::jobs(&world);
                        }
                    }
                };
                let serve = async move {
                    match tls {
                        None => {
                            let _ = axum::serve(listener, router).await;
                        }
                        Some((cert, key)) => serve_tls(listener, router, &cert, &key).await,
                    }
                };
                tokio::select! {
                    _ = &mut stopped => {}
                    _ = serve => {}
                    _ = controller => {}
                    _ = kubelet => {}
                }
                if let Some(rt) = containers {
                    rt.cleanup().await;
                }
            });
        });
        match ready_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                let _ = thread.join();
                return Err(e);
            }
            Err(_) => return Err("the fake apiserver's thread stopped while starting".into()),
        }
        let scheme = if options.tls { "https" } else { "http" };
        Ok(Self {
            url: format!("{scheme}://{addr}"),
            ca_pem,
            token: options.token,
            world,
            stop: Some(stop),
            thread: Some(thread),
            _dir: dir,
        })
    }

    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// The CA that signed the server certificate (TLS only).
    pub fn ca_pem(&self) -> Option<&str> {
        self.ca_pem.as_deref()
    }

    /// A kubeconfig for this server (context `fake`), with the CA and token when set.
    pub fn kubeconfig(&self) -> String {
        use base64::Engine as _;
        let ca = self
            .ca_pem
            .as_ref()
            .map(|c| {
                format!(
                    "    certificate-authority-data: {}\n",
                    base64::engine::general_purpose::STANDARD.encode(c)
                )
            })
            .unwrap_or_default();
        let user = self
            .token
            .as_ref()
            .map(|t| format!("    token: {t}\n"))
            .unwrap_or_else(|| "    {}\n".to_owned());
        let user = if self.token.is_some() {
            user
        } else {
            String::from("    username: anonymous\n")
        };
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {}\n{ca}users:\n- name: fake\n  user:\n{user}contexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake\n    namespace: default\ncurrent-context: fake\n",
            self.url
        )
    }

    /// When the controller first marked the rollout of generation `generation` of a Deployment
    /// complete (for latency measurements).
    pub fn completed_at(
        &self,
        namespace: &str,
        name: &str,
        generation: i64,
    ) -> Option<std::time::Instant> {
        lock(&self.world)
            .completions
            .get(&format!("{namespace}/{name}"))
            .filter(|(g, _)| *g == generation)
            .map(|(_, t)| *t)
    }

    /// Creates a namespace if it does not exist (a cluster's standing namespaces).
    pub fn ensure_namespace(&self, name: &str) {
        let r = resources::find("", "v1", "namespaces").expect("served");
        let mut w = lock(&self.world);
        if w.store.get(&store::key(r, "", name)).is_none() {
            let _ = w.store.create(r, "", json!({"metadata": {"name": name}, "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}}));
        }
    }

    /// Objects of a kind in a namespace (all namespaces when empty), as JSON.
    pub fn list(
        &self,
        group: &str,
        version: &str,
        plural: &str,
        namespace: &str,
    ) -> Vec<serde_json::Value> {
        resources::find(group, version, plural)
            .map(|r| lock(&self.world).store.list(r, namespace, "", ""))
            .unwrap_or_default()
    }

    /// An object as JSON (`apps/v1`, `deployments`, namespace, name).
    pub fn get(
        &self,
        group: &str,
        version: &str,
        plural: &str,
        namespace: &str,
        name: &str,
    ) -> Option<serde_json::Value> {
        let r = resources::find(group, version, plural)?;
        let w = lock(&self.world);
        let k = store::key(r, namespace, name);
        let mut o = w.store.get(&k).cloned()?;
        // As the API serves it: with its managedFields.
        if let Some(managed) = w.owners.get(&k).filter(|m| !m.is_empty()) {
            o["metadata"]["managedFields"] = ssa::render(managed);
        }
        Some(o)
    }
}

impl Drop for FakeKube {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// HTTPS with rustls: each connection is handshaken, then served by hyper through the same
/// router. Runs until the task is dropped.
async fn serve_tls(
    listener: tokio::net::TcpListener,
    router: axum::Router,
    cert: &std::path::Path,
    key: &std::path::Path,
) {
    use rustls_pki_types::pem::PemObject as _;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .expect("server certificate")
        .filter_map(Result::ok)
        .collect();
    let key = PrivateKeyDer::from_pem_file(key).expect("server key");
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = tokio_rustls::rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .expect("server certificate and key");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        let acceptor = acceptor.clone();
        let service = hyper_util::service::TowerToHyperService::new(router.clone());
        tokio::spawn(async move {
            let Ok(tls) = acceptor.accept(tcp).await else {
                return;
            };
            let io = hyper_util::rt::TokioIo::new(tls);
            let _ =
                hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new())
                    .serve_connection(io, service)
                    .await;
        });
    }
}
