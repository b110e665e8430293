//! The demo's sample system, one static binary in three roles:
//!
//! - `sample-service users`: `/health` (and `/user-service/health`), `/users`, `/users/{id}`
//!   (404 for an unknown id).
//! - `sample-service roles`: `/health` (and `/role-service/health`), `/roles/{user}`.
//! - `sample-service gateway`: `/health`, `/versions`, `/{service}/health` for itself and each
//!   backend, `/users...` and `/roles...` forwarded, `/whoami/{id}` composed from both.
//!   Backends from `USER_SERVICE_URL` / `ROLE_SERVICE_URL` (default the Service names
//!   `http://user-service:8080`, `http://role-service:8080`).
//!
//! `PORT` (default 8080). `sample-service ROLE --check` prints the configuration and exits 0
//! (a quick run for a Job). Each request is logged on one line to stdout.
//!
//! `SAMPLE_BROKEN_PATH=/users/2` makes a bad release on purpose: requests for that path (and
//! below it) answer 500, everything else works (`make demo-bad-release`, the canary tests).

// A server's log is its stdout.
#![allow(clippy::print_stdout)]

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};
use std::sync::Arc;

#[derive(Debug)]
struct Gateway {
    client: reqwest::Client,
    users: String,
    roles: String,
}

fn users() -> Vec<Value> {
    vec![
        json!({"id": "1", "name": "Ada Lovelace", "email": "ada@example.com"}),
        json!({"id": "2", "name": "Grace Hopper", "email": "grace@example.com"}),
    ]
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn health<S: Clone + Send + Sync + 'static>(
    service: &'static str,
) -> axum::routing::MethodRouter<S> {
    get(move || async move {
        json_response(StatusCode::OK, &json!({"service": service, "status": "ok"}))
    })
}

fn user_service() -> Router {
    Router::new()
        .route("/health", health("user-service"))
        .route("/user-service/health", health("user-service"))
        .route(
            "/users",
            get(|| async { json_response(StatusCode::OK, &json!(users())) }),
        )
        .route(
            "/users/{id}",
            get(|Path(id): Path<String>| async move {
                match users().into_iter().find(|u| u["id"] == id.as_str()) {
                    Some(u) => json_response(StatusCode::OK, &u),
                    None => json_response(
                        StatusCode::NOT_FOUND,
                        &json!({"error": format!("no user {id}")}),
                    ),
                }
            }),
        )
}

fn role_service() -> Router {
    Router::new()
        .route("/health", health("role-service"))
        .route("/role-service/health", health("role-service"))
        .route(
            "/roles/{user}",
            get(|Path(user): Path<String>| async move {
                let roles = match user.as_str() {
                    "1" => vec!["fellow", "admin"],
                    "2" => vec!["fellow"],
                    _ => vec![],
                };
                json_response(StatusCode::OK, &json!({"user": user, "roles": roles}))
            }),
        )
}

impl Gateway {
    /// GET `base` + `path`: the backend's status and JSON, or 502 saying which backend failed.
    async fn fetch(&self, base: &str, path: &str) -> (StatusCode, Value) {
        let url = format!("{base}{path}");
        match self.client.get(&url).send().await {
            Ok(r) => {
                let status =
                    StatusCode::from_u16(r.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
                let body = r.json::<Value>().await.unwrap_or(Value::Null);
                (status, body)
            }
            Err(e) => (
                StatusCode::BAD_GATEWAY,
                json!({"error": format!("{url}: {e}")}),
            ),
        }
    }
}

fn gateway(g: Arc<Gateway>) -> Router {
    Router::new()
        .route("/health", health("api-gateway"))
        .route("/api-gateway/health", health("api-gateway"))
        .route(
            "/versions",
            get(|| async { json_response(StatusCode::OK, &json!({"versions": ["v1"]})) }),
        )
        .route(
            "/user-service/health",
            get(|State(g): State<Arc<Gateway>>| async move {
                let (s, b) = g.fetch(&g.users, "/health").await;
                json_response(s, &b)
            }),
        )
        .route(
            "/role-service/health",
            get(|State(g): State<Arc<Gateway>>| async move {
                let (s, b) = g.fetch(&g.roles, "/health").await;
                json_response(s, &b)
            }),
        )
        .route(
            "/users",
            get(|State(g): State<Arc<Gateway>>| async move {
                let (s, b) = g.fetch(&g.users, "/users").await;
                json_response(s, &b)
            }),
        )
        .route(
            "/users/{id}",
            get(
                |State(g): State<Arc<Gateway>>, Path(id): Path<String>| async move {
                    let (s, b) = g.fetch(&g.users, &format!("/users/{id}")).await;
                    json_response(s, &b)
                },
            ),
        )
        .route(
            "/roles/{user}",
            get(
                |State(g): State<Arc<Gateway>>, Path(user): Path<String>| async move {
                    let (s, b) = g.fetch(&g.roles, &format!("/roles/{user}")).await;
                    json_response(s, &b)
                },
            ),
        )
        .route(
            "/whoami/{id}",
            get(
                |State(g): State<Arc<Gateway>>, Path(id): Path<String>| async move {
                    let (s, user) = g.fetch(&g.users, &format!("/users/{id}")).await;
                    if s != StatusCode::OK {
                        return json_response(s, &user);
                    }
                    let (s, roles) = g.fetch(&g.roles, &format!("/roles/{id}")).await;
                    if s != StatusCode::OK {
                        return json_response(s, &roles);
                    }
                    json_response(
                        StatusCode::OK,
                        &json!({"name": user["name"], "roles": roles["roles"]}),
                    )
                },
            ),
        )
        .with_state(g)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let role = args.first().map(String::as_str).unwrap_or("");
    let port = std::env::var("PORT").unwrap_or_else(|_| "8080".into());
    let env = |k: &str, d: &str| std::env::var(k).unwrap_or_else(|_| d.to_owned());
    let router = match role {
        "users" => user_service(),
        "roles" => role_service(),
        "gateway" => {
            let client = match httpc::client(&httpc::Options::new("sample-gateway")) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("sample-service: {e}");
                    std::process::exit(1);
                }
            };
            gateway(Arc::new(Gateway {
                client,
                users: env("USER_SERVICE_URL", "http://user-service:8080"),
                roles: env("ROLE_SERVICE_URL", "http://role-service:8080"),
            }))
        }
        _ => {
            eprintln!("usage: sample-service users|roles|gateway [--check]");
            std::process::exit(2);
        }
    };
    if args.get(1).map(String::as_str) == Some("--check") {
        println!("sample-service {role}: port {port}");
        return;
    }
    let router = match std::env::var("SAMPLE_BROKEN_PATH") {
        Ok(path) if path.starts_with('/') => {
            println!("sample-service {role}: {path} is broken on purpose (SAMPLE_BROKEN_PATH)");
            let path: &'static str = Box::leak(path.into_boxed_str());
            router.layer(axum::middleware::from_fn(
                move |request: axum::extract::Request, next: axum::middleware::Next| async move {
                    let p = request.uri().path();
                    let hit = p == path
                        || p.strip_prefix(path.trim_end_matches('/'))
                            .is_some_and(|rest| rest.starts_with('/'));
                    if hit {
                        return json_response(
                            StatusCode::INTERNAL_SERVER_ERROR,
                            &json!({"error": format!("{p} is broken in this release")}),
                        );
                    }
                    next.run(request).await
                },
            ))
        }
        _ => router,
    };
    let router = router.layer(axum::middleware::from_fn(log_request));
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("sample-service: {e}");
            std::process::exit(1);
        }
    };
    runtime.block_on(async move {
        let listener = match tokio::net::TcpListener::bind(format!("0.0.0.0:{port}")).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("sample-service: cannot listen on port {port}: {e}");
                std::process::exit(1);
            }
        };
        println!("sample-service {role} listening on port {port}");
        if let Err(e) = axum::serve(listener, router).await {
            eprintln!("sample-service: {e}");
            std::process::exit(1);
        }
    });
}

async fn log_request(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let line = format!("{} {}", request.method(), request.uri().path());
    let response = next.run(request).await;
    println!("{line} {}", response.status().as_u16());
    response
}
