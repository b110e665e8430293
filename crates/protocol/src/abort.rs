//! What a step undoes when Concourse stops it. An aborted build, or a step's `timeout:`, sends
//! the step's process SIGTERM and SIGKILL 10 s later (Concourse's `garden` process stop). The
//! harness (in a real process) listens for SIGTERM and SIGINT; on one it stops the step where
//! it is, runs the hooks the step registered for what it had changed (roll a Deployment back,
//! delete a Job, remove a container), each within what is left of [`GRACE`], prints one
//! `aborted: ...` line per hook, and exits non-zero.
//!
//! A step registers a hook right before the change it would undo and keeps the returned
//! [`Registered`] while the change is in flight; dropping it (the change finished, or failed
//! and was dealt with) removes the hook. Hooks run on the step's own runtime, after the step's
//! future was dropped.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// The part of Concourse's 10 s grace period the hooks may use, leaving time to print and exit.
pub const GRACE: Duration = Duration::from_secs(8);

type Hook = Box<dyn FnOnce() -> Pin<Box<dyn Future<Output = String>>> + Send>;

#[derive(Default)]
struct Inner {
    hooks: Mutex<Vec<(u64, Hook)>>,
    next: AtomicU64,
    aborting: AtomicBool,
}

/// The hooks of one step (shared through [`crate::Context`]).
#[derive(Clone, Default)]
pub struct OnAbort(Arc<Inner>);

impl std::fmt::Debug for OnAbort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self
            .0
            .hooks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len();
        write!(f, "OnAbort({n} hooks)")
    }
}

/// Keeps a hook registered; dropping it removes the hook (unless the step is being aborted,
/// when the hooks are about to run).
#[must_use = "the hook is removed when this is dropped"]
pub struct Registered {
    inner: Arc<Inner>,
    id: u64,
}

impl std::fmt::Debug for Registered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Registered({})", self.id)
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        if self.inner.aborting.load(Ordering::SeqCst) {
            return;
        }
        self.inner
            .hooks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|(id, _)| *id != self.id);
    }
}

impl OnAbort {
    /// Registers `hook`: an async undo that returns the line to print (`rolled back
    /// api-gateway to ...`). Hooks run newest first.
    pub fn register<F, Fut>(&self, hook: F) -> Registered
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = String> + 'static,
    {
        let id = self.0.next.fetch_add(1, Ordering::SeqCst);
        let boxed: Hook = Box::new(move || Box::pin(hook()));
        self.0
            .hooks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((id, boxed));
        Registered {
            inner: self.0.clone(),
            id,
        }
    }

    /// Marks the step as aborting: from now on dropped registrations keep their hooks.
    pub(crate) fn begin(&self) {
        self.0.aborting.store(true, Ordering::SeqCst);
    }

    /// Runs every registered hook, newest first, each within what is left of `grace`; returns
    /// their lines (a hook that runs out of time says so).
    pub(crate) async fn run(&self, grace: Duration) -> Vec<String> {
        let hooks: Vec<(u64, Hook)> =
            std::mem::take(&mut *self.0.hooks.lock().unwrap_or_else(PoisonError::into_inner));
        let deadline = tokio::time::Instant::now() + grace;
        let mut lines = Vec::new();
        for (_, hook) in hooks.into_iter().rev() {
            match tokio::time::timeout_at(deadline, hook()).await {
                Ok(line) => {
                    tracing::warn!("aborted: {line}");
                    lines.push(line);
                }
                Err(_) => {
                    let line =
                        "ran out of the grace period before finishing its cleanup".to_owned();
                    tracing::warn!("aborted: {line}");
                    lines.push(line);
                    break;
                }
            }
        }
        lines
    }
}

/// Waits for SIGTERM or SIGINT; returns the signal's name.
pub(crate) async fn signalled() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn dropped_registrations_leave_and_live_ones_run_newest_first() {
        let on = OnAbort::default();
        let first = on.register(|| async { "first".to_owned() });
        let gone = on.register(|| async { "never".to_owned() });
        drop(gone);
        let second = on.register(|| async { "second".to_owned() });
        on.begin();
        drop((first, second));
        let lines = rt().block_on(on.run(GRACE));
        assert_eq!(lines, ["second", "first"]);
    }

    #[test]
    fn a_hook_that_outlives_the_grace_period_is_cut_off() {
        let on = OnAbort::default();
        let _slow = on.register(|| async {
            tokio::time::sleep(Duration::from_secs(60)).await;
            "late".to_owned()
        });
        on.begin();
        let lines = rt().block_on(on.run(Duration::from_millis(50)));
        assert_eq!(
            lines,
            ["ran out of the grace period before finishing its cleanup"]
        );
    }
}
