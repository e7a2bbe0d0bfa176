//! TLS for the connections the CLI and the worker open to the control plane. An `https://`
//! control plane is trusted through the system's roots, so a certificate from a public CA needs
//! nothing; one issued by a private CA needs that CA's certificate, named by `--ca-cert`, the
//! worker's `ca_cert` setting or [`CA_CERT_ENV`] (the same variable every Backflow client reads).

use std::path::{Path, PathBuf};

use tonic::transport::{Certificate, ClientTlsConfig};

/// The environment variable naming a PEM file of extra CA certificates to trust.
pub const CA_CERT_ENV: &str = "BACKFLOW_CA_CERT";

/// Why a CA certificate file cannot be used; reported before any connection is attempted.
#[derive(Debug, thiserror::Error)]
pub enum ClientTlsError {
    /// The file is missing or unreadable.
    #[error("cannot read the CA certificate file {path}: {source}")]
    Read {
        /// The file named.
        path: PathBuf,
        /// What the read gave.
        source: std::io::Error,
    },
    /// The file holds no `BEGIN CERTIFICATE` block, so it would silently trust nothing.
    #[error("the CA certificate file {path} holds no PEM certificate")]
    NoCertificate {
        /// The file named.
        path: PathBuf,
    },
}

/// The client TLS config for an `https://` control plane: the system's roots plus the PEM
/// certificates in `ca_cert`, if given.
pub fn client_tls_config(ca_cert: Option<&Path>) -> Result<ClientTlsConfig, ClientTlsError> {
    let config = ClientTlsConfig::new().with_enabled_roots();
    let Some(path) = ca_cert else {
        return Ok(config);
    };
    let pem = std::fs::read(path).map_err(|source| ClientTlsError::Read {
        path: path.to_owned(),
        source,
    })?;
    if !String::from_utf8_lossy(&pem).contains("-----BEGIN CERTIFICATE-----") {
        return Err(ClientTlsError::NoCertificate {
            path: path.to_owned(),
        });
    }
    Ok(config.ca_certificate(Certificate::from_pem(pem)))
}

/// The CA file [`CA_CERT_ENV`] names, if it is set and not empty.
pub fn ca_cert_from_env() -> Option<PathBuf> {
    std::env::var_os(CA_CERT_ENV)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_without_a_certificate_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, "not a certificate").unwrap();
        let error = client_tls_config(Some(&path)).unwrap_err();
        assert!(matches!(error, ClientTlsError::NoCertificate { .. }));
        assert!(error.to_string().contains("ca.pem"), "{error}");
        let missing = client_tls_config(Some(&dir.path().join("missing.pem"))).unwrap_err();
        assert!(matches!(missing, ClientTlsError::Read { .. }), "{missing}");
    }
}
