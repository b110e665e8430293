//! A "version feed" for the example resource: `GET /versions` lists versions one per line,
//! `POST /versions` appends one. Optional bearer-token check. It is our own format (the
//! example resource exists only to prove the kit), so there is no real system to match.

use crate::Server;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::get;
use std::sync::{Arc, Mutex, PoisonError};

#[derive(Debug, Default)]
struct Feed {
    versions: Vec<String>,
    token: Option<String>,
    requests: usize,
}

type Shared = Arc<Mutex<Feed>>;

/// A running feed.
#[derive(Debug)]
pub struct FeedServer {
    server: Server,
    feed: Shared,
}

impl FeedServer {
    /// Starts a feed holding `versions` (oldest first), requiring `token` when given.
    pub fn start(versions: &[&str], token: Option<&str>) -> Self {
        let feed: Shared = Arc::new(Mutex::new(Feed {
            versions: versions.iter().map(|v| (*v).to_owned()).collect(),
            token: token.map(str::to_owned),
            requests: 0,
        }));
        let router = Router::new()
            .route("/versions", get(list).post(append))
            .with_state(feed.clone());
        Self {
            server: Server::start(router),
            feed,
        }
    }

    /// `http://127.0.0.1:PORT/versions`.
    pub fn url(&self) -> String {
        format!("{}/versions", self.server.url())
    }

    pub fn port(&self) -> u16 {
        self.server.port()
    }

    pub fn versions(&self) -> Vec<String> {
        self.lock().versions.clone()
    }

    /// Replaces the feed (a version vanishing, a new one arriving).
    pub fn set_versions(&self, versions: &[&str]) {
        self.lock().versions = versions.iter().map(|v| (*v).to_owned()).collect();
    }

    /// Requests served so far.
    pub fn requests(&self) -> usize {
        self.lock().requests
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Feed> {
        self.feed.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn authorized(feed: &Feed, headers: &HeaderMap) -> bool {
    match &feed.token {
        None => true,
        Some(token) => headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.strip_prefix("Bearer ") == Some(token.as_str())),
    }
}

async fn list(State(feed): State<Shared>, headers: HeaderMap) -> (StatusCode, String) {
    let mut feed = feed.lock().unwrap_or_else(PoisonError::into_inner);
    feed.requests += 1;
    if !authorized(&feed, &headers) {
        return (StatusCode::UNAUTHORIZED, "unauthorized\n".into());
    }
    let mut body = feed.versions.join("\n");
    body.push('\n');
    (StatusCode::OK, body)
}

async fn append(State(feed): State<Shared>, headers: HeaderMap, body: String) -> StatusCode {
    let mut feed = feed.lock().unwrap_or_else(PoisonError::into_inner);
    feed.requests += 1;
    if !authorized(&feed, &headers) {
        return StatusCode::UNAUTHORIZED;
    }
    feed.versions.push(body.trim().to_owned());
    StatusCode::CREATED
}
