//! Which certificate authorities outbound HTTPS trusts: the Mozilla roots
//! built into the binary, plus the certificates of a `--ca-file`.
//!
//! Self-hosted gateways deliver to internal services as often as to SaaS
//! APIs, and internal services often have certificates from a private CA.
//! The extra roots are a process setting (a flag, not `meshes.yaml`: the
//! file's path belongs to the machine, not to the config in git), set once
//! before any client is built, so every client (the gateway's, the
//! unpooled one, the CLI's) trusts the same authorities.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

static EXTRA_ROOTS: OnceLock<Vec<reqwest::Certificate>> = OnceLock::new();

/// Why a `--ca-file` cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    /// The file cannot be read.
    #[error("--ca-file {}: cannot read it: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file holds no usable PEM certificate.
    #[error("--ca-file {}: {reason}; expected PEM certificates (-----BEGIN CERTIFICATE-----)", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// Extra roots were already set (by an earlier call in this process).
    #[error("--ca-file {}: the extra certificate authorities were already set", path.display())]
    AlreadySet {
        /// The file.
        path: PathBuf,
    },
}

/// Trusts the certificates in the PEM file at `path` besides the built-in
/// roots, for every client built from now on; returns how many there are.
pub fn trust_ca_file(path: &Path) -> Result<usize, TrustError> {
    let roots = read_ca_file(path)?;
    let count = roots.len();
    EXTRA_ROOTS.set(roots).map_err(|_| TrustError::AlreadySet { path: path.into() })?;
    Ok(count)
}

/// The certificates of a PEM file: at least one, each one a certificate
/// rustls accepts as a root (checked here, not at the first delivery).
pub fn read_ca_file(path: &Path) -> Result<Vec<reqwest::Certificate>, TrustError> {
    let invalid = |reason: String| TrustError::Invalid { path: path.into(), reason };
    let pem =
        std::fs::read(path).map_err(|source| TrustError::Read { path: path.into(), source })?;
    if !pem.windows(27).any(|w| w == b"-----BEGIN CERTIFICATE-----") {
        return Err(invalid("it holds no certificate".into()));
    }
    let roots = reqwest::Certificate::from_pem_bundle(&pem)
        .map_err(|e| invalid(format!("it is not valid PEM ({})", chain(&e))))?;
    // A client built with them fails here, at start, for a certificate
    // that is PEM but not a usable root (bad DER, an unsupported key).
    let mut builder = reqwest::Client::builder();
    for root in &roots {
        builder = builder.add_root_certificate(root.clone());
    }
    builder
        .build()
        .map_err(|e| invalid(format!("a certificate cannot be used ({})", chain(&e))))?;
    Ok(roots)
}

/// An error and its causes, joined.
fn chain(e: &dyn std::error::Error) -> String {
    match crate::adapters::failure::causes(e) {
        below if below.is_empty() => e.to_string(),
        below => format!("{e}: {below}"),
    }
}

/// Adds the extra roots, if any, to `builder`.
pub(super) fn with_extra_roots(builder: reqwest::ClientBuilder) -> reqwest::ClientBuilder {
    EXTRA_ROOTS.get().into_iter().flatten().fold(builder, |b, c| b.add_root_certificate(c.clone()))
}

/// Whether a transport error's causes say the peer's certificate was not
/// trusted, so the message can point at `--ca-file`.
pub(super) fn untrusted(causes: &str) -> bool {
    ["UnknownIssuer", "unknown issuer", "self-signed", "SelfSigned"]
        .iter()
        .any(|s| causes.contains(s))
}

#[cfg(test)]
#[path = "trust_tests.rs"]
mod tests;
