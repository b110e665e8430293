//! The HTTP client every resource builds, configured in one place.
//!
//! reqwest 0.13 on rustls with the `ring` provider (ring also signs Google JWTs): no OpenSSL,
//! no cmake, links statically into the FROM-scratch images. Roots come from the system bundle (`/etc/ssl/certs/ca-certificates.crt` in our images; Concourse
//! workers may mount their own there) plus any PEM certificates a `source` adds.

use anyhow::Context as _;
use std::time::Duration;

/// How a resource wants its client.
#[derive(Debug, Clone)]
pub struct Options {
    /// `gcr-image/0.1.0`.
    pub user_agent: String,
    /// Extra CA certificates (PEM), e.g. from `source.ca_certs`.
    pub ca_certs: Vec<String>,
    /// Connect timeout; whole-request deadlines are the caller's (uploads can be long).
    pub connect_timeout: Duration,
    /// How long a response may keep us waiting: for its headers (reqwest counts from the
    /// request's start) and then between two chunks of its body. A server that accepts the
    /// connection and never answers fails the request after this, as a transient fault the
    /// caller retries. `None` for a client whose requests carry large bodies (a blob upload's
    /// PUT answers only after the whole body): those callers bound progress themselves.
    pub read_timeout: Option<Duration>,
}

impl Options {
    pub fn new(user_agent: impl Into<String>) -> Self {
        Self {
            user_agent: user_agent.into(),
            ca_certs: Vec::new(),
            connect_timeout: Duration::from_secs(15),
            read_timeout: Some(READ_TIMEOUT),
        }
    }
}

/// The default bound on a silent server (see [`Options::read_timeout`]).
pub const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// Installs `ring` as the process's rustls provider (idempotent).
pub fn install_crypto_provider() {
    // Err means a provider is already installed, which is what we want.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Builds the client. Fails, naming the certificate, when an extra CA is not PEM.
pub fn client(options: &Options) -> anyhow::Result<reqwest::Client> {
    install_crypto_provider();
    let mut extra = Vec::new();
    for (i, pem) in options.ca_certs.iter().enumerate() {
        let certs = reqwest::Certificate::from_pem_bundle(pem.as_bytes())
            .with_context(|| format!("ca_certs[{i}]: not a PEM certificate"))?;
        if certs.is_empty() {
            anyhow::bail!(
                "ca_certs[{i}]: no PEM certificate found (expected -----BEGIN CERTIFICATE-----)"
            );
        }
        extra.extend(certs);
    }
    let mut builder = reqwest::Client::builder()
        .user_agent(&options.user_agent)
        .connect_timeout(options.connect_timeout)
        .tls_certs_merge(extra);
    if let Some(t) = options.read_timeout {
        builder = builder.read_timeout(t);
    }
    builder.build().context("set up the HTTP client")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_builds_with_system_roots() {
        client(&Options::new("test/0")).unwrap();
    }

    #[test]
    fn a_bad_extra_ca_is_named() {
        let mut o = Options::new("test/0");
        o.ca_certs.push("not a certificate".into());
        let err = format!("{:#}", client(&o).unwrap_err());
        assert!(err.starts_with("ca_certs[0]: "), "{err}");
    }
}
