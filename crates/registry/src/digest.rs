//! SHA-256 digests of blobs and manifests (ring's, linked already as the TLS provider).

/// A `sha256:` digest computed over a stream of chunks. ring's SHA-256 (ring is linked
/// already as the TLS provider): no second digest crate in the binaries.
#[derive(Clone)]
pub struct StreamingDigest(ring::digest::Context);

impl std::fmt::Debug for StreamingDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StreamingDigest")
    }
}

impl Default for StreamingDigest {
    fn default() -> Self {
        Self(ring::digest::Context::new(&ring::digest::SHA256))
    }
}

impl StreamingDigest {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn update(&mut self, chunk: &[u8]) {
        self.0.update(chunk);
    }

    /// `sha256:<hex>`.
    pub fn finish(self) -> String {
        format!("sha256:{}", hex::encode(self.0.finish()))
    }
}

/// `sha256:<hex>` of some bytes.
pub fn sha256_digest(data: &[u8]) -> String {
    format!("sha256:{}", protocol::text::sha256_hex(data))
}
