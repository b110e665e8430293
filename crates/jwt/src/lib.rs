//! RS256 JSON Web Tokens (RFC 7519 with RFC 7518's RS256), signed with ring.
//!
//! Two users: Google service-account assertions (google-auth) and GitHub App tokens
//! (github-promote-pr). Hand-written rather than jsonwebtoken: one algorithm, and ring is
//! already linked as the TLS provider (jsonwebtoken would add aws-lc-rs or RustCrypto's rsa).
//! Keys come as PEM, PKCS#8 (`BEGIN PRIVATE KEY`, Google) or PKCS#1 (`BEGIN RSA PRIVATE KEY`,
//! GitHub); errors never contain key material.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use protocol::Secret;
use ring::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
use rustls_pki_types::PrivateKeyDer;
use rustls_pki_types::pem::PemObject;
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    #[error("not a PEM private key (BEGIN PRIVATE KEY or BEGIN RSA PRIVATE KEY)")]
    NotPem,
    #[error("not an RSA key that can sign RS256")]
    NotRsa,
    #[error("signing failed")]
    Signing,
}

/// An RSA key that signs RS256 tokens.
pub struct Signer(RsaKeyPair);

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signer(<redacted>)")
    }
}

impl Signer {
    /// From a PEM private key, PKCS#8 or PKCS#1.
    pub fn from_pem(pem: &Secret) -> Result<Self, JwtError> {
        let der =
            PrivateKeyDer::from_pem_slice(pem.expose().as_bytes()).map_err(|_| JwtError::NotPem)?;
        let pair = match &der {
            PrivateKeyDer::Pkcs8(k) => RsaKeyPair::from_pkcs8(k.secret_pkcs8_der()),
            PrivateKeyDer::Pkcs1(k) => RsaKeyPair::from_der(k.secret_pkcs1_der()),
            _ => return Err(JwtError::NotRsa),
        }
        .map_err(|_| JwtError::NotRsa)?;
        Ok(Self(pair))
    }

    /// `header.claims.signature`, base64url without padding. `alg` and `typ` are set here.
    pub fn sign(&self, mut header: Value, claims: &Value) -> Result<Secret, JwtError> {
        header["alg"] = "RS256".into();
        header["typ"] = "JWT".into();
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let mut signature = vec![0u8; self.0.public().modulus_len()];
        self.0
            .sign(
                &RSA_PKCS1_SHA256,
                &ring::rand::SystemRandom::new(),
                input.as_bytes(),
                &mut signature,
            )
            .map_err(|_| JwtError::Signing)?;
        Ok(Secret::new(format!(
            "{input}.{}",
            URL_SAFE_NO_PAD.encode(signature)
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_that_are_not_pem_rsa_are_refused_without_echo() {
        let err = Signer::from_pem(&Secret::new("canary-not-a-key")).unwrap_err();
        assert_eq!(err, JwtError::NotPem);
        assert!(!format!("{err} {err:?}").contains("canary"));
    }
}
