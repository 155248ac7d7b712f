//! Which certificates an `https` SNS endpoint may show: the system's trusted CAs (as
//! AWS trusts the public ones) plus any `--sns-https-ca` files, for endpoints signed by a
//! private CA. Built once per shard thread and reused: loading the system's bundle reads
//! a directory of files.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::{ClientConfig, RootCertStore};
use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::sync::Arc;

thread_local! {
    static BUILT: RefCell<Option<(Vec<PathBuf>, Arc<ClientConfig>)>> = const { RefCell::new(None) };
}

/// The TLS client configuration for `https` endpoints, trusting the system's CAs and the
/// certificates in `ca_files`.
pub fn client_config(ca_files: &[PathBuf]) -> Result<Arc<ClientConfig>, String> {
    BUILT.with(|built| {
        if let Some((files, config)) = &*built.borrow() {
            if files == ca_files {
                return Ok(config.clone());
            }
        }
        let config = build(ca_files)?;
        *built.borrow_mut() = Some((ca_files.to_vec(), config.clone()));
        Ok(config)
    })
}

fn build(ca_files: &[PathBuf]) -> Result<Arc<ClientConfig>, String> {
    let mut roots = RootCertStore::empty();
    // A system bundle with a few unreadable entries still trusts the rest, as curl does.
    let system = rustls_native_certs::load_native_certs();
    for e in &system.errors {
        tracing::debug!("system CA store: {e}");
    }
    let (_added, _ignored) = roots.add_parsable_certificates(system.certs);
    for file in ca_files {
        for cert in read_certs(file)? {
            roots
                .add(cert)
                .map_err(|e| format!("--sns-https-ca {}: {e}", file.display()))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| format!("TLS client configuration: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let err = |e: &dyn std::fmt::Display| format!("--sns-https-ca {}: {e}", path.display());
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| err(&e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| err(&e))?;
    if certs.is_empty() {
        return Err(err(&"no PEM certificate in it"));
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ca_file_without_certificates_is_refused_by_name() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("empty.pem");
        std::fs::write(&path, "not a certificate\n").expect("write");
        let err = build(&[path]).expect_err("refused");
        assert!(
            err.contains("empty.pem") && err.contains("no PEM certificate"),
            "{err}"
        );
        let missing = dir.path().join("missing.pem");
        assert!(build(&[missing])
            .expect_err("refused")
            .contains("missing.pem"));
    }
}
