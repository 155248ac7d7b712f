//! Connection plumbing every front end shares: an accepted socket, plaintext or TLS, made
//! ready for a reader task and a writer task on its shard.
//!
//! A TLS connection is a `rustls::ServerConnection` driven through its buffer-level API
//! (`read_tls`/`process_new_packets`/`reader()` on the way in, `writer()`/`write_tls` on
//! the way out) over the same glommio socket a plaintext connection uses, so the front
//! ends read and write plaintext through `read_some` and `write_all` whichever it is.
//!
//! Reader and writer tasks share one rustls session: every borrow of it lasts for one
//! synchronous step, never across an await. Ciphertext leaves the session only while its
//! taker holds the connection's one send permit and is written before the permit is
//! given back, so records reach the socket in the order rustls sealed them, whichever
//! task (the writer with answers, the reader with handshake messages or alerts) sent them.
//!
//! Cancel safety: front ends race reads with timers (AMQP heartbeats, HTTP idle time) and
//! drop the losing future. Every byte taken from the socket or from rustls is kept in the
//! connection's own buffers (ciphertext in, sealed records out) and moved only inside a
//! single poll, so a dropped read or write loses nothing: the next one goes on from there.

use crate::runtime::TcpStream;
use futures_lite::{future, AsyncRead, AsyncWrite};
use std::cell::{Cell, RefCell};
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;

/// Ciphertext read from the socket at once, at most (a few TLS records).
const TLS_READ_CHUNK: usize = 64 * 1024;
/// Plaintext sealed before its records are written to the socket: one send per this
/// much of a large answer (each send waits for its completion before more is sealed, so
/// fewer, larger sends keep a fetch answer moving), and what one connection holds sealed
/// and unsent at most, beside its answer budget.
const TLS_SEAL_CHUNK: usize = 256 * 1024;

/// A connection's socket, shared by its reader and writer tasks on one shard.
#[derive(Clone)]
pub struct Stream(Rc<Conn>);

struct Conn {
    tcp: RefCell<TcpStream>,
    peer: Option<SocketAddr>,
    tls: Option<Tls>,
}

/// One TLS session over the connection's socket. Owned by the connection's shard.
struct Tls {
    session: RefCell<rustls::ServerConnection>,
    /// Ciphertext from the socket that rustls has not taken yet: `incoming[taken..filled]`.
    incoming: RefCell<Vec<u8>>,
    taken: Cell<usize>,
    filled: Cell<usize>,
    /// One task at a time takes ciphertext out of the session and writes it.
    send: glommio::sync::Semaphore,
    /// Sealed records on their way to the socket, `sealed[sent..]` not written yet; used
    /// by the send permit's holder.
    sealed: RefCell<Vec<u8>>,
    sent: Cell<usize>,
    /// The verified client certificate's subject (mTLS), see `tls::principal`.
    principal: Option<String>,
}

impl Stream {
    /// A plaintext connection, with Nagle off.
    pub fn plain(tcp: TcpStream) -> Stream {
        let peer = tcp.peer_addr().ok();
        let _ = tcp.set_nodelay(true);
        Stream(Rc::new(Conn {
            tcp: RefCell::new(tcp),
            peer,
            tls: None,
        }))
    }

    /// Runs the TLS handshake on a fresh connection; the stream it returns reads and
    /// writes plaintext. Fails on a client that does not speak TLS, offers nothing in
    /// common, or (with `--tls-client-ca`) shows no valid certificate: the client is sent
    /// the alert rustls chose, and the connection is dropped.
    pub async fn tls(tcp: TcpStream, config: Arc<rustls::ServerConfig>) -> std::io::Result<Stream> {
        let peer = tcp.peer_addr().ok();
        let _ = tcp.set_nodelay(true);
        let mut session = rustls::ServerConnection::new(config).map_err(std::io::Error::other)?;
        // rustls's default 64 KiB would split each chunk into several sends; record
        // overhead (about 22 bytes per 16 KiB) fits in the second chunk's worth.
        session.set_buffer_limit(Some(2 * TLS_SEAL_CHUNK));
        let tls = Tls {
            session: RefCell::new(session),
            incoming: RefCell::new(vec![0; TLS_READ_CHUNK]),
            taken: Cell::new(0),
            filled: Cell::new(0),
            send: glommio::sync::Semaphore::new(1),
            sealed: RefCell::new(Vec::new()),
            sent: Cell::new(0),
            principal: None,
        };
        let tcp = RefCell::new(tcp);
        while tls.session.borrow().is_handshaking() {
            if tls.session.borrow().wants_write() {
                tls.send_pending(&tcp).await?;
            } else if !tls.feed(&tcp).await? && !tls.read_more(&tcp).await? {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "closed during the TLS handshake",
                ));
            }
        }
        tls.send_pending(&tcp).await?;
        let principal = tls
            .session
            .borrow()
            .peer_certificates()
            .and_then(|certs| certs.first())
            .and_then(super::tls::principal);
        Ok(Stream(Rc::new(Conn {
            tcp,
            peer,
            tls: Some(Tls { principal, ..tls }),
        })))
    }

    /// Gives up a plaintext connection so that another shard can serve it
    /// (`Stream::adopt` there): its socket as a descriptor of its own, this shard's
    /// closed. Refused, and the stream given back, for a TLS connection (its session
    /// lives here) or while another handle to the stream is alive (a reader or writer
    /// task of its own could still use it).
    pub fn detach(self) -> Result<Detached, (Stream, std::io::Error)> {
        if self.is_tls() {
            let refused = std::io::Error::other("a TLS connection stays on its shard");
            return Err((self, refused));
        }
        let conn = match Rc::try_unwrap(self.0) {
            Ok(conn) => conn,
            Err(shared) => {
                let refused = std::io::Error::other("the connection has other handles");
                return Err((Stream(shared), refused));
            }
        };
        // No other handle: nothing else can borrow the socket.
        let duplicated = crate::runtime::duplicate(&conn.tcp.borrow());
        match duplicated {
            // `conn` (this shard's descriptor and its pending polls) is dropped here.
            Ok(fd) => Ok(Detached(fd)),
            Err(e) => Err((Stream(Rc::new(conn)), e)),
        }
    }

    /// Serves, on this shard, a connection another shard detached.
    pub fn adopt(detached: Detached) -> Stream {
        Stream::plain(crate::runtime::adopt_stream(detached.0))
    }

    /// The peer's address as text, for logs (empty when the socket does not know it).
    pub fn peer(&self) -> String {
        self.0.peer.map(|a| a.to_string()).unwrap_or_default()
    }

    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.0.peer
    }

    /// Ends the connection from the broker's side (both directions, at once): the front
    /// end's reader sees the end of the stream and its writer's next (or blocked) write
    /// fails, so the connection unwinds even when the peer does not read.
    pub fn shut_down(&self) {
        // Not across an await: no other borrow can be live.
        if let Err(e) = crate::runtime::shut_down(&self.0.tcp.borrow()) {
            tracing::debug!(peer = %self.peer(), "shutting a connection down: {e}");
        }
    }

    /// Whether the connection came in on a TLS listener.
    pub fn is_tls(&self) -> bool {
        self.0.tls.is_some()
    }

    /// Who the client's verified certificate names (mTLS); None without one.
    pub fn principal(&self) -> Option<&str> {
        self.0.tls.as_ref()?.principal.as_deref()
    }
}

/// Reads plaintext; 0 at the end of the stream. A TLS peer that closes without
/// `close_notify` ends the stream as cleanly as one that sends it: every protocol served
/// here frames its messages, so a truncation shows as a message cut short.
pub async fn read_some(stream: &Stream, buf: &mut [u8]) -> std::io::Result<usize> {
    match &stream.0.tls {
        None => tcp_read(&stream.0.tcp, buf).await,
        Some(tls) => tls.read(&stream.0.tcp, buf).await,
    }
}

/// Writes all of `buf` (sealed first on a TLS connection).
pub async fn write_all(stream: &Stream, buf: &[u8]) -> std::io::Result<()> {
    match &stream.0.tls {
        None => tcp_write_all(&stream.0.tcp, buf).await,
        Some(tls) => tls.write_all(&stream.0.tcp, buf).await,
    }
}

/// The borrow lasts for one poll only, never across an await; glommio keeps separate
/// read and write sources.
async fn tcp_read(tcp: &RefCell<TcpStream>, buf: &mut [u8]) -> std::io::Result<usize> {
    future::poll_fn(|cx| Pin::new(&mut *tcp.borrow_mut()).poll_read(cx, buf)).await
}

async fn tcp_write_all(tcp: &RefCell<TcpStream>, mut buf: &[u8]) -> std::io::Result<()> {
    while !buf.is_empty() {
        let n = future::poll_fn(|cx| Pin::new(&mut *tcp.borrow_mut()).poll_write(cx, buf)).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        buf = &buf[n..];
    }
    Ok(())
}

impl Tls {
    async fn read(&self, tcp: &RefCell<TcpStream>, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            let read = self.session.borrow_mut().reader().read(buf);
            match read {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(0),
                Err(e) => return Err(e),
            }
            if self.feed(tcp).await? {
                continue;
            }
            if !self.read_more(tcp).await? {
                // The socket's end: rustls reports it on the next `reader().read`.
                self.session.borrow_mut().read_tls(&mut std::io::empty())?;
            }
        }
    }

    /// Hands buffered ciphertext to rustls and processes it; false when none was left.
    /// Whatever rustls wants to send back (handshake messages, alerts) is sent first.
    async fn feed(&self, tcp: &RefCell<TcpStream>) -> std::io::Result<bool> {
        let processed = {
            let incoming = self.incoming.borrow();
            let (taken, filled) = (self.taken.get(), self.filled.get());
            if taken == filled {
                return Ok(false);
            }
            let mut session = self.session.borrow_mut();
            let mut rest = &incoming[taken..filled];
            let n = session.read_tls(&mut rest)?;
            self.taken.set(taken + n);
            session.process_new_packets().map(|_| ())
        };
        if self.session.borrow().wants_write() {
            // Best effort when the session failed: the alert tells the peer why.
            let sent = self.send_pending(tcp).await;
            if processed.is_ok() {
                sent?;
            }
        }
        processed.map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
        Ok(true)
    }

    /// Reads more ciphertext from the socket; false at its end.
    async fn read_more(&self, tcp: &RefCell<TcpStream>) -> std::io::Result<bool> {
        {
            // Room for a chunk after what is buffered (at most one partial record, since
            // everything is fed to rustls before reading more).
            let mut incoming = self.incoming.borrow_mut();
            let (taken, filled) = (self.taken.get(), self.filled.get());
            incoming.copy_within(taken..filled, 0);
            self.taken.set(0);
            self.filled.set(filled - taken);
            if incoming.len() < filled - taken + TLS_READ_CHUNK {
                incoming.resize(filled - taken + TLS_READ_CHUNK, 0);
            }
        }
        // The bytes land in `incoming` within the poll that completes the read.
        let n = future::poll_fn(|cx| {
            let mut incoming = self.incoming.borrow_mut();
            let filled = self.filled.get();
            let read = Pin::new(&mut *tcp.borrow_mut()).poll_read(cx, &mut incoming[filled..]);
            if let std::task::Poll::Ready(Ok(n)) = read {
                self.filled.set(filled + n);
            }
            read
        })
        .await?;
        Ok(n > 0)
    }

    async fn write_all(&self, tcp: &RefCell<TcpStream>, mut buf: &[u8]) -> std::io::Result<()> {
        let _permit = self
            .send
            .acquire_permit(1)
            .await
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::BrokenPipe))?;
        while !buf.is_empty() {
            let chunk = &buf[..buf.len().min(TLS_SEAL_CHUNK)];
            let n = self.session.borrow_mut().writer().write(chunk)?;
            buf = &buf[n..];
            self.send_sealed(tcp).await?;
            if n == 0 {
                // Everything sealed was just sent, so rustls has room now; a second
                // refusal means the session is closed.
                let n = self.session.borrow_mut().writer().write(chunk)?;
                if n == 0 {
                    return Err(std::io::ErrorKind::WriteZero.into());
                }
                buf = &buf[n..];
                self.send_sealed(tcp).await?;
            }
        }
        Ok(())
    }

    /// Sends what the session has sealed (takes the send permit).
    async fn send_pending(&self, tcp: &RefCell<TcpStream>) -> std::io::Result<()> {
        let _permit = self
            .send
            .acquire_permit(1)
            .await
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::BrokenPipe))?;
        self.send_sealed(tcp).await
    }

    /// Writes the session's sealed records to the socket; the caller holds the permit.
    /// Records a dropped writer left unsent go first.
    async fn send_sealed(&self, tcp: &RefCell<TcpStream>) -> std::io::Result<()> {
        loop {
            if self.sent.get() == self.sealed.borrow().len() {
                let mut sealed = self.sealed.borrow_mut();
                sealed.clear();
                self.sent.set(0);
                let mut session = self.session.borrow_mut();
                if !session.wants_write() {
                    return Ok(());
                }
                session.write_tls(&mut *sealed)?;
            }
            // `sent` moves within the poll that completes the write.
            let n = future::poll_fn(|cx| {
                let sealed = self.sealed.borrow();
                let sent = self.sent.get();
                let write = Pin::new(&mut *tcp.borrow_mut()).poll_write(cx, &sealed[sent..]);
                if let std::task::Poll::Ready(Ok(n)) = write {
                    self.sent.set(sent + n);
                }
                write
            })
            .await?;
            if n == 0 {
                return Err(std::io::ErrorKind::WriteZero.into());
            }
        }
    }
}

/// A plaintext connection on its way to another shard (`Stream::detach`, `Stream::adopt`):
/// owned by no shard until adopted; dropped unadopted, the connection is closed.
#[derive(Debug)]
pub struct Detached(std::os::fd::OwnedFd);

impl std::fmt::Debug for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stream")
            .field("peer", &self.0.peer)
            .field("tls", &self.is_tls())
            .finish()
    }
}
