//! TLS for the native client: the rustls client configuration (`--tls-ca`, and a client
//! certificate for a broker that asks for one), and a blocking TLS connection split into
//! a reading half and a writing half that two threads may use at once, as a plaintext
//! connection's halves are.
//!
//! Both halves share one rustls session behind a mutex held only for synchronous steps
//! (sealing, opening), never across a blocking socket call: a writer blocked on a full
//! socket must not stop the reader from taking answers off the wire, or neither side
//! would move. Sealed records are written under a second lock (the send lock, taken
//! before the session's), so they reach the socket in the order they were sealed.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore};
use std::io::{IoSlice, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

/// Ciphertext read from the socket at once, at most.
const READ_CHUNK: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ClientTlsError {
    #[error("TLS file {path}: {reason}")]
    File { path: String, reason: String },
    #[error("TLS configuration: {0}")]
    Config(#[from] rustls::Error),
    #[error("'{0}' is not a name a server certificate can carry")]
    ServerName(String),
}

/// How a native client speaks TLS to the broker: which CA it trusts, what it shows.
pub struct ClientTls {
    config: Arc<ClientConfig>,
    /// The name the broker's certificate must carry; None: the host connected to.
    server_name: Option<String>,
}

fn file_err(path: &Path, reason: impl ToString) -> ClientTlsError {
    ClientTlsError::File {
        path: path.display().to_string(),
        reason: reason.to_string(),
    }
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, ClientTlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| file_err(path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_err(path, e))?;
    if certs.is_empty() {
        return Err(file_err(path, "no certificate in it"));
    }
    Ok(certs)
}

impl ClientTls {
    /// Trusts the CA certificates in `ca`; shows `identity` (certificate chain and key
    /// files) to a broker that asks for a client certificate.
    pub fn from_files(
        ca: &Path,
        identity: Option<(&Path, &Path)>,
        server_name: Option<String>,
    ) -> Result<ClientTls, ClientTlsError> {
        let mut roots = RootCertStore::empty();
        for cert in read_certs(ca)? {
            roots.add(cert).map_err(|e| file_err(ca, e))?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
            .with_root_certificates(roots);
        let config = match identity {
            None => builder.with_no_client_auth(),
            Some((cert, key)) => {
                let chain = read_certs(cert)?;
                let key = PrivateKeyDer::from_pem_file(key).map_err(|e| file_err(key, e))?;
                builder.with_client_auth_cert(chain, key)?
            }
        };
        Ok(ClientTls {
            config: Arc::new(config),
            server_name,
        })
    }

    /// Runs the handshake on a connected socket; `host` is the name connected to.
    pub fn connect(&self, tcp: TcpStream, host: &str) -> std::io::Result<(TlsWriter, TlsReader)> {
        let name = self.server_name.as_deref().unwrap_or(host);
        let name =
            ServerName::try_from(name.trim_matches(['[', ']']).to_string()).map_err(|_| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    ClientTlsError::ServerName(name.to_string()),
                )
            })?;
        let session =
            ClientConnection::new(self.config.clone(), name).map_err(std::io::Error::other)?;
        let shared = Arc::new(Shared {
            session: Mutex::new(session),
            send: Mutex::new(tcp.try_clone()?),
        });
        let mut reader = TlsReader {
            shared: shared.clone(),
            tcp,
            incoming: Vec::new(),
            taken: 0,
        };
        // The handshake, before anything is sent: errors (an unknown CA, a refused
        // client certificate) show here rather than on the first request.
        while shared.session().is_handshaking() {
            if shared.session().wants_write() {
                shared.send_sealed()?;
            } else if !reader.feed()? && !reader.read_more()? {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the broker closed the connection during the TLS handshake",
                ));
            }
        }
        shared.send_sealed()?;
        Ok((TlsWriter { shared }, reader))
    }
}

struct Shared {
    session: Mutex<ClientConnection>,
    /// The socket's writing side; held while sealed records are written.
    send: Mutex<TcpStream>,
}

impl Shared {
    fn session(&self) -> MutexGuard<'_, ClientConnection> {
        // A panic while sealing leaves a session no worse than any other error would.
        self.session.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn send_lock(&self) -> MutexGuard<'_, TcpStream> {
        self.send.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes whatever the session has sealed.
    fn send_sealed(&self) -> std::io::Result<()> {
        let mut tcp = self.send_lock();
        write_sealed(&self.session, &mut tcp)
    }
}

/// Takes sealed records out of the session (briefly locked) and writes them; the caller
/// holds the send lock.
fn write_sealed(session: &Mutex<ClientConnection>, tcp: &mut TcpStream) -> std::io::Result<()> {
    let mut out = Vec::new();
    loop {
        out.clear();
        {
            let mut s = session.lock().unwrap_or_else(|e| e.into_inner());
            if !s.wants_write() {
                return Ok(());
            }
            s.write_tls(&mut out)?;
        }
        tcp.write_all(&out)?;
    }
}

/// The sending half of a TLS connection.
pub struct TlsWriter {
    shared: Arc<Shared>,
}

impl Write for TlsWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.write_vectored(&[IoSlice::new(buf)])
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> std::io::Result<usize> {
        let mut tcp = self.shared.send_lock();
        let n = self.shared.session().writer().write_vectored(bufs)?;
        write_sealed(&self.shared.session, &mut tcp)?;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.shared.send_sealed()
    }
}

/// The receiving half of a TLS connection.
pub struct TlsReader {
    shared: Arc<Shared>,
    tcp: TcpStream,
    /// Ciphertext read and not yet taken by rustls: `incoming[taken..]`.
    incoming: Vec<u8>,
    taken: usize,
}

impl TlsReader {
    /// The socket, for timeouts and readiness polls.
    pub fn socket(&self) -> &TcpStream {
        &self.tcp
    }

    /// Whether plaintext or ciphertext is already here (a read may not need the socket).
    pub fn has_buffered(&self) -> bool {
        let plaintext = self
            .shared
            .session()
            .process_new_packets()
            .is_ok_and(|state| state.plaintext_bytes_to_read() > 0);
        plaintext || self.taken < self.incoming.len()
    }

    /// Hands buffered ciphertext to rustls; false when none was left.
    fn feed(&mut self) -> std::io::Result<bool> {
        if self.taken == self.incoming.len() {
            return Ok(false);
        }
        let (processed, reply) = {
            let mut session = self.shared.session();
            let mut rest = &self.incoming[self.taken..];
            self.taken += session.read_tls(&mut rest)?;
            let processed = session.process_new_packets().map(|_| ());
            (processed, session.wants_write())
        };
        // Anything rustls wants to say back (handshake, alerts, key updates) goes first;
        // after a failure only as a courtesy. Answers are sealed and sent by the writer
        // alone, so this rarely waits for the send lock.
        let sent = match reply {
            true => self.shared.send_sealed(),
            false => Ok(()),
        };
        processed.map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
        sent?;
        Ok(true)
    }

    /// Reads ciphertext from the socket; false at its end.
    fn read_more(&mut self) -> std::io::Result<bool> {
        self.incoming.drain(..self.taken);
        self.taken = 0;
        let have = self.incoming.len();
        self.incoming.resize(have + READ_CHUNK, 0);
        let read = self.tcp.read(&mut self.incoming[have..]);
        self.incoming.truncate(have + *read.as_ref().unwrap_or(&0));
        Ok(read? > 0)
    }
}

impl Read for TlsReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            match self.shared.session().reader().read(buf) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
            if self.feed()? {
                continue;
            }
            if !self.read_more()? {
                // The socket's end: rustls reports it (cleanly or not) on the next read.
                self.shared.session().read_tls(&mut std::io::empty())?;
            }
        }
    }
}
