//! Logging: `tracing` events to stderr, the way Concourse users read a build log.
//!
//! Info lines are plain text; warnings and errors carry a coloured `warning:`/`error:` prefix
//! (Concourse renders ANSI); debug lines (only with `source.debug: true`) are dimmed. No
//! timestamps: Concourse adds its own. The writer is shared so that in-process test runs can
//! capture the log exactly as a user would see it.

use std::fmt;
use std::io::{self, Write};
use std::sync::{Arc, Mutex, PoisonError};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, MakeWriter};
use tracing_subscriber::registry::LookupSpan;

pub(crate) const RED: &str = "\x1b[31m";
pub(crate) const YELLOW: &str = "\x1b[33m";
pub(crate) const DIM: &str = "\x1b[2m";
pub(crate) const RESET: &str = "\x1b[0m";

/// A cloneable handle on the step's stderr.
#[derive(Clone)]
pub struct SharedWriter(Arc<Mutex<Box<dyn Write + Send>>>);

impl fmt::Debug for SharedWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SharedWriter")
    }
}

impl SharedWriter {
    pub fn new(w: impl Write + Send + 'static) -> Self {
        Self(Arc::new(Mutex::new(Box::new(w))))
    }

    /// The process's stderr.
    pub fn stderr() -> Self {
        Self::new(io::stderr())
    }

    /// An in-memory buffer and a writer into it (for tests).
    pub fn buffer() -> (Self, Arc<Mutex<Vec<u8>>>) {
        let buf = Arc::new(Mutex::new(Vec::new()));
        (Self::new(BufferWriter(buf.clone())), buf)
    }
}

impl Write for SharedWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .write(data)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .flush()
    }
}

impl<'a> MakeWriter<'a> for SharedWriter {
    type Writer = SharedWriter;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

struct BufferWriter(Arc<Mutex<Vec<u8>>>);

impl Write for BufferWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The line format described in the module header.
struct ConcourseFormat;

impl<S, N> FormatEvent<S, N> for ConcourseFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let krate = event.metadata().target().split("::").next().unwrap_or("");
        // A library's event (shown only with `source.debug: true`) is detail whatever its
        // level: kube logs a failed request as an error and then returns it to us, and the
        // step's own `error:` line must stay the only one, and the last.
        let library = LIBRARY_CRATES.contains(&krate);
        let (colour, prefix) = match *event.metadata().level() {
            _ if library => (DIM, "debug: "),
            Level::ERROR => (RED, "error: "),
            Level::WARN => (YELLOW, "warning: "),
            Level::INFO => ("", ""),
            _ => (DIM, "debug: "),
        };
        write!(writer, "{colour}{prefix}")?;
        if library {
            write!(writer, "{krate}: ")?;
        }
        ctx.format_fields(writer.by_ref(), event)?;
        if colour.is_empty() {
            writeln!(writer)
        } else {
            writeln!(writer, "{RESET}")
        }
    }
}

/// The subscriber for one step: everything at `info` and above, `debug` too when asked.
/// Libraries that log in their own words, sometimes at error level for failures we report
/// ourselves in one line (kube logs a failed connection as an error, then returns it): their
/// events show only with `source.debug: true`.
pub const LIBRARY_CRATES: &[&str] = &[
    "kube",
    "kube_client",
    "kube_core",
    "hyper",
    "hyper_util",
    "hyper_rustls",
    "h2",
    "tower",
    "tower_http",
    "reqwest",
    "rustls",
    "tokio_rustls",
    "octocrab",
    "bollard",
    "tokio",
    "mio",
];

/// The subscriber for one step: `info` and above (`debug` too when asked); the libraries of
/// [`LIBRARY_CRATES`] only when `debug` is asked.
pub fn subscriber(stderr: SharedWriter, debug: bool) -> impl Subscriber + Send + Sync {
    use tracing_subscriber::Layer as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    let level = if debug { Level::DEBUG } else { Level::INFO };
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(stderr)
        .with_ansi(true)
        .event_format(ConcourseFormat)
        .with_filter(tracing_subscriber::filter::filter_fn(move |meta| {
            let krate = meta.target().split("::").next().unwrap_or("");
            let library = LIBRARY_CRATES.contains(&krate);
            *meta.level() <= level && (debug || !library)
        }));
    tracing_subscriber::registry().with(layer)
}

/// Runs `fut`, saying on stderr what it waits for when it takes long: a first line after 5 s,
/// then one every 15 s (`still waiting for the registry to answer GET ... (20s)`), so a build
/// log never sits silent on a slow or silent server.
pub async fn patiently<F: std::future::Future>(what: &str, fut: F) -> F::Output {
    let started = tokio::time::Instant::now();
    let mut next = std::time::Duration::from_secs(5);
    tokio::pin!(fut);
    loop {
        tokio::select! {
            out = &mut fut => return out,
            () = tokio::time::sleep_until(started + next) => {
                tracing::info!("still waiting for {what} ({}s)", next.as_secs());
                next += std::time::Duration::from_secs(15);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_is_plain_and_warnings_are_prefixed_and_debug_only_when_asked() {
        let (w, buf) = SharedWriter::buffer();
        tracing::subscriber::with_default(subscriber(w, false), || {
            tracing::error!(target: "hyper_util::client", "a library's own error line");
            tracing::info!("pushed {} bytes", 42);
            tracing::warn!("tag-only reference");
            tracing::debug!("request detail");
        });
        let text = String::from_utf8(buf.lock().unwrap().clone()).unwrap();
        assert_eq!(
            text,
            format!("pushed 42 bytes\n{YELLOW}warning: tag-only reference{RESET}\n")
        );

        let (w, buf) = SharedWriter::buffer();
        tracing::subscriber::with_default(subscriber(w, true), || tracing::debug!("detail"));
        let text = String::from_utf8(buf.lock().unwrap().clone()).unwrap();
        assert_eq!(text, format!("{DIM}debug: detail{RESET}\n"));
    }

    #[test]
    fn with_debug_a_librarys_error_is_a_debug_line_not_a_second_error() {
        let (w, buf) = SharedWriter::buffer();
        tracing::subscriber::with_default(subscriber(w, true), || {
            tracing::error!(target: "kube_client::client", "failed with error: connection refused");
        });
        let text = String::from_utf8(buf.lock().unwrap().clone()).unwrap();
        assert_eq!(
            text,
            format!("{DIM}debug: kube_client: failed with error: connection refused{RESET}\n")
        );
    }
}
