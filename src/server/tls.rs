//! TLS for the broker's listeners: the server configuration made from the PEM files of
//! `--tls-cert`, `--tls-key` and `--tls-client-ca`, kept current when those files change
//! (SIGHUP, or a poll of their modification times), and the principal of a client that
//! showed a verified certificate.
//!
//! rustls does the protocol (TLS 1.2 and 1.3, ring's AES-GCM and ChaCha20); the bytes move
//! through the shard's own sockets (`stream` drives rustls's buffer-level API), so a TLS
//! connection is served by the same io_uring loop as a plaintext one. Kernel TLS is not
//! used (yet): every record is sealed and opened by rustls in user space.
//!
//! Reload: the current configuration is one `Arc` behind a lock that is read once per
//! accepted TLS connection, never per request. A reload builds a whole new configuration
//! and swaps it in; connections already open keep the one they started with. Files that
//! do not load (half written, mismatched key) leave the old configuration in place and
//! are logged; the next change or SIGHUP tries again.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

/// How often the certificate, key and client CA files are checked for a change.
pub const RELOAD_POLL: Duration = Duration::from_secs(1);
/// How long a client may take to finish its TLS handshake once connected; past it the
/// connection is closed (a client that connects and sends nothing holds no more).
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The PEM files a TLS listener serves with.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// The certificate chain, leaf first.
    pub cert: PathBuf,
    /// The private key of the leaf (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// With it, clients must show a certificate that chains to one of these (mTLS).
    pub client_ca: Option<PathBuf>,
}

impl TlsFiles {
    fn paths(&self) -> impl Iterator<Item = &Path> {
        [Some(&self.cert), Some(&self.key), self.client_ca.as_ref()]
            .into_iter()
            .flatten()
            .map(PathBuf::as_path)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("TLS file {path}: {reason}")]
    File { path: String, reason: String },
    #[error("TLS configuration: {0}")]
    Config(#[from] rustls::Error),
    #[error("--tls-client-ca: {0}")]
    ClientCa(String),
}

fn file_err(path: &Path) -> impl Fn(String) -> TlsError + '_ {
    move |reason| TlsError::File {
        path: path.display().to_string(),
        reason,
    }
}

/// Reads the files and builds the server configuration they describe.
pub fn load(files: &TlsFiles) -> Result<Arc<ServerConfig>, TlsError> {
    let certs = read_certs(&files.cert)?;
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .map_err(|e| file_err(&files.key)(format!("no private key: {e}")))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?;
    let builder = match &files.client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for cert in read_certs(ca)? {
                roots.add(cert).map_err(|e| file_err(ca)(e.to_string()))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| TlsError::ClientCa(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    // Checks that the key is the certificate's.
    let config = builder.with_single_cert(certs, key)?;
    Ok(Arc::new(config))
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| file_err(path)(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_err(path)(e.to_string()))?;
    if certs.is_empty() {
        return Err(file_err(path)("no certificate in it".into()));
    }
    Ok(certs)
}

/// The configuration new TLS connections get; shared by every shard's accept loops.
pub struct TlsAcceptor {
    files: TlsFiles,
    current: RwLock<Arc<ServerConfig>>,
}

impl TlsAcceptor {
    /// Loads the files once; an error here stops the broker from starting.
    pub fn new(files: TlsFiles) -> Result<Arc<TlsAcceptor>, TlsError> {
        let config = load(&files)?;
        Ok(Arc::new(TlsAcceptor {
            files,
            current: RwLock::new(config),
        }))
    }

    /// The configuration for a connection accepted now.
    pub fn config(&self) -> Arc<ServerConfig> {
        // A poisoned lock still holds a whole configuration (the swap is one store).
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Loads the files again; on success new connections get the new configuration.
    pub fn reload(&self) -> Result<(), TlsError> {
        let config = load(&self.files)?;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = config;
        Ok(())
    }

    fn reload_logged(&self, why: &str) {
        match self.reload() {
            Ok(()) => {
                tracing::info!(cert = %self.files.cert.display(), "TLS certificate reloaded ({why})")
            }
            Err(e) => {
                tracing::error!("TLS reload ({why}) failed, keeping the previous certificate: {e}")
            }
        }
    }

    /// Reloads on SIGHUP and whenever a file's modification time or size changes; the
    /// threads live as long as the process.
    pub fn watch(self: &Arc<TlsAcceptor>) {
        match signal_hook::iterator::Signals::new([signal_hook::consts::SIGHUP]) {
            Ok(mut signals) => {
                let acceptor = self.clone();
                std::thread::spawn(move || {
                    for _ in signals.forever() {
                        acceptor.reload_logged("SIGHUP");
                    }
                });
            }
            Err(e) => tracing::error!("cannot install the SIGHUP handler for TLS reload: {e}"),
        }
        let acceptor = self.clone();
        std::thread::spawn(move || {
            let mut seen = acceptor.stamps();
            loop {
                std::thread::sleep(RELOAD_POLL);
                let now = acceptor.stamps();
                if now != seen {
                    seen = now;
                    acceptor.reload_logged("file changed");
                }
            }
        });
    }

    fn stamps(&self) -> Vec<Option<(SystemTime, u64)>> {
        self.files
            .paths()
            .map(|p| {
                let meta = std::fs::metadata(p).ok()?;
                Some((meta.modified().ok()?, meta.len()))
            })
            .collect()
    }
}

/// How often failed handshakes are logged, at most, per accept loop.
const FAILURE_LOG_EVERY: Duration = Duration::from_secs(1);

/// Aggregates failed TLS handshakes into one WARN line per `FAILURE_LOG_EVERY` (the last
/// failure's peer and reason, and how many failed since): a client that reconnects in a
/// loop cannot fill the log. Owned by one accept loop on one shard.
#[derive(Default)]
pub struct HandshakeFailures {
    unlogged: std::cell::Cell<u64>,
    last: std::cell::Cell<Option<std::time::Instant>>,
}

impl HandshakeFailures {
    pub fn failed(&self, why: &str) {
        self.unlogged.set(self.unlogged.get() + 1);
        let now = std::time::Instant::now();
        if self
            .last
            .get()
            .is_some_and(|t| now.duration_since(t) < FAILURE_LOG_EVERY)
        {
            return;
        }
        tracing::warn!(
            failed = self.unlogged.get(),
            "TLS handshake failed, connection closed: {why}"
        );
        self.unlogged.set(0);
        self.last.set(Some(now));
    }
}

/// Who a verified client certificate names: its subject's common name, or else its
/// first subject alternative name. None without a certificate (or one that names
/// nobody); the certificate has been verified by rustls before this reads it.
pub fn principal(cert: &CertificateDer<'_>) -> Option<String> {
    use x509_parser::extensions::GeneralName;
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    let cn = parsed
        .subject()
        .iter_common_name()
        .find_map(|cn| cn.as_str().ok().map(str::to_string));
    if cn.is_some() {
        return cn;
    }
    let san = parsed.subject_alternative_name().ok()??;
    san.value.general_names.iter().find_map(|name| match name {
        GeneralName::DNSName(s) | GeneralName::RFC822Name(s) | GeneralName::URI(s) => {
            Some(s.to_string())
        }
        GeneralName::IPAddress(b) => ip_text(b),
        _ => None,
    })
}

fn ip_text(bytes: &[u8]) -> Option<String> {
    if let Ok(v4) = <[u8; 4]>::try_from(bytes) {
        return Some(std::net::Ipv4Addr::from(v4).to_string());
    }
    <[u8; 16]>::try_from(bytes)
        .ok()
        .map(|v6| std::net::Ipv6Addr::from(v6).to_string())
}
