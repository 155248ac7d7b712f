//! One blocking native-protocol connection with pipelining: many requests may be sent
//! before their answers are read; answers carry the request id.

use super::tls::{ClientTls, TlsReader, TlsWriter};
use super::ClientError;
use crate::native::frame::{self, HEAD_LEN};
use crate::native::messages::{Request, RequestEnvelope, Response};
use bytes::Bytes;
use std::io::{BufReader, IoSlice, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// Largest answer the client accepts (fetch responses are bounded by max_bytes).
pub const RESPONSE_MAX_BYTES: u32 = 256 << 20;
/// Most bytes reserved for an answer before they arrive: a frame head alone must not
/// make the client allocate `RESPONSE_MAX_BYTES`; larger answers grow as they are read.
const RESPONSE_RESERVE_MAX: usize = 8 << 20;

/// Bytes to reserve for an answer whose head says `len`.
fn response_reserve(len: usize) -> usize {
    len.min(RESPONSE_RESERVE_MAX)
}

pub struct Connection {
    writer: FrameWriter,
    reader: FrameReader,
}

/// The sending half of a connection (see `Connection::into_split`).
pub struct FrameWriter {
    stream: WriteHalf,
    next_id: u64,
}

/// Where a connection's requests go: the socket, or a TLS session over it.
enum WriteHalf {
    Plain(TcpStream),
    Tls(TlsWriter),
}

impl Write for WriteHalf {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            WriteHalf::Plain(s) => s.write(buf),
            WriteHalf::Tls(s) => s.write(buf),
        }
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> std::io::Result<usize> {
        match self {
            WriteHalf::Plain(s) => s.write_vectored(bufs),
            WriteHalf::Tls(s) => s.write_vectored(bufs),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            WriteHalf::Plain(s) => s.flush(),
            WriteHalf::Tls(s) => s.flush(),
        }
    }
}

/// Where a connection's answers come from.
enum ReadHalf {
    Plain(TcpStream),
    Tls(TlsReader),
}

impl ReadHalf {
    fn socket(&self) -> &TcpStream {
        match self {
            ReadHalf::Plain(s) => s,
            ReadHalf::Tls(s) => s.socket(),
        }
    }
}

impl Read for ReadHalf {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            ReadHalf::Plain(s) => s.read(buf),
            ReadHalf::Tls(s) => s.read(buf),
        }
    }
}

fn write_all_vectored(stream: &mut impl Write, mut slices: &mut [IoSlice]) -> std::io::Result<()> {
    IoSlice::advance_slices(&mut slices, 0);
    while !slices.is_empty() {
        match stream.write_vectored(slices) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut slices, n),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            // A busy-polling caller's socket is non-blocking (see `into_polling`).
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => std::hint::spin_loop(),
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The receiving half of a connection.
pub struct FrameReader {
    reader: BufReader<ReadHalf>,
}

impl FrameWriter {
    /// Sends one request without waiting; returns its id.
    pub fn send(&mut self, request: Request, payload: &[&[u8]]) -> Result<u64, ClientError> {
        let id = self.next_id;
        self.next_id += 1;
        let payload_len = payload.iter().map(|p| p.len()).sum();
        let env = RequestEnvelope { id, request };
        let head = frame::encode_request(&env, payload_len)
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        // One gathered write per request: head, envelope and payload, no copy.
        let mut slices: Vec<IoSlice> = Vec::with_capacity(1 + payload.len());
        slices.push(IoSlice::new(&head));
        slices.extend(payload.iter().map(|p| IoSlice::new(p)));
        write_all_vectored(&mut self.stream, &mut slices)?;
        Ok(id)
    }

    /// Sends raw bytes (tests use this to send malformed frames).
    pub fn send_raw(&mut self, bytes: &[u8]) -> Result<(), ClientError> {
        self.stream.write_all(bytes)?;
        Ok(())
    }
}

impl FrameReader {
    /// Reads the next answer, whichever request it belongs to.
    pub fn recv(&mut self) -> Result<(u64, Response, Bytes), ClientError> {
        let mut head = [0u8; HEAD_LEN];
        self.reader.read_exact(&mut head)?;
        let head = frame::parse_head(head, RESPONSE_MAX_BYTES)
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        // read_to_end fills spare capacity without zeroing it first (a fetch answer can
        // be megabytes).
        let len = head.body_len();
        let mut body = Vec::with_capacity(response_reserve(len));
        (&mut self.reader).take(len as u64).read_to_end(&mut body)?;
        if body.len() != len {
            return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into());
        }
        let body = Bytes::from(body);
        let env = frame::decode_response(&body[..head.envelope_len as usize])
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        let payload = body.slice(head.envelope_len as usize..);
        Ok((env.id, env.response, payload))
    }
}

/// The receiving half of a connection for a caller that busy-polls: `try_recv` never
/// blocks, so one thread can watch several connections without a wake-up in between.
pub struct PollReader {
    stream: TcpStream,
    buf: Vec<u8>,
    /// Unparsed bytes are `buf[start..end]`.
    start: usize,
    end: usize,
}

impl PollReader {
    /// The next whole answer if one has arrived, else `None` at once.
    pub fn try_recv(&mut self) -> Result<Option<(u64, Response, Bytes)>, ClientError> {
        loop {
            if let Some(answer) = self.take_answer()? {
                return Ok(Some(answer));
            }
            match self.stream.read(&mut self.buf[self.end..]) {
                Ok(0) => return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into()),
                Ok(n) => self.end += n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(None),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Parses one buffered answer, or makes room in the buffer for the rest of it.
    fn take_answer(&mut self) -> Result<Option<(u64, Response, Bytes)>, ClientError> {
        let have = self.end - self.start;
        let mut needed = HEAD_LEN;
        if have >= HEAD_LEN {
            let mut head = [0u8; HEAD_LEN];
            head.copy_from_slice(&self.buf[self.start..self.start + HEAD_LEN]);
            let head = frame::parse_head(head, RESPONSE_MAX_BYTES)
                .map_err(|e| ClientError::Protocol(e.to_string()))?;
            needed = HEAD_LEN + head.body_len();
            if have >= needed {
                let body_at = self.start + HEAD_LEN;
                let body = Bytes::copy_from_slice(&self.buf[body_at..self.start + needed]);
                self.start += needed;
                if self.start == self.end {
                    (self.start, self.end) = (0, 0);
                }
                let env = frame::decode_response(&body[..head.envelope_len as usize])
                    .map_err(|e| ClientError::Protocol(e.to_string()))?;
                let payload = body.slice(head.envelope_len as usize..);
                return Ok(Some((env.id, env.response, payload)));
            }
        }
        // Not all here: keep the partial answer at the front, with room for more of it.
        if self.buf.len() - self.start < needed {
            self.buf.copy_within(self.start..self.end, 0);
            (self.start, self.end) = (0, have);
            // Grow only once what arrived fills the buffer, and at most double it: the
            // room follows the bytes received, not what a frame head claims.
            if self.buf.len() < needed && self.end == self.buf.len() {
                let grown = needed.min(self.buf.len().saturating_mul(2));
                self.buf.resize(grown, 0);
            }
        }
        Ok(None)
    }
}

impl Connection {
    pub fn connect(addr: impl ToSocketAddrs) -> Result<Connection, ClientError> {
        let stream = TcpStream::connect(addr)?;
        stream.set_nodelay(true)?;
        let reader = ReadHalf::Plain(stream.try_clone()?);
        Ok(Connection::from_halves(WriteHalf::Plain(stream), reader))
    }

    /// Connects to `host:port`, over TLS when `tls` is given (the handshake is done
    /// before this returns); `host` is also the name the broker's certificate must
    /// carry unless `tls` names another.
    pub fn connect_to(
        host: &str,
        port: u16,
        tls: Option<&ClientTls>,
    ) -> Result<Connection, ClientError> {
        let Some(tls) = tls else {
            return Connection::connect((host, port));
        };
        let stream = TcpStream::connect((host.trim_matches(['[', ']']), port))?;
        stream.set_nodelay(true)?;
        let (writer, reader) = tls.connect(stream, host)?;
        Ok(Connection::from_halves(
            WriteHalf::Tls(writer),
            ReadHalf::Tls(reader),
        ))
    }

    /// Connects to `host:port` text, over TLS when `tls` is given.
    pub fn connect_addr(addr: &str, tls: Option<&ClientTls>) -> Result<Connection, ClientError> {
        let (host, port) = addr
            .rsplit_once(':')
            .and_then(|(h, p)| Some((h, p.parse::<u16>().ok()?)))
            .ok_or_else(|| ClientError::Protocol(format!("'{addr}' is not host:port")))?;
        Connection::connect_to(host, port, tls)
    }

    fn from_halves(writer: WriteHalf, reader: ReadHalf) -> Connection {
        Connection {
            writer: FrameWriter {
                stream: writer,
                next_id: 1,
            },
            reader: FrameReader {
                reader: BufReader::with_capacity(256 * 1024, reader),
            },
        }
    }

    /// Separate halves, so that one thread can send while another reads answers.
    pub fn into_split(self) -> (FrameWriter, FrameReader) {
        (self.writer, self.reader)
    }

    /// Halves for a busy-polling caller: the socket becomes non-blocking (sends spin
    /// while the socket buffer is full) and answers are read with `PollReader::try_recv`.
    pub fn into_polling(self) -> Result<(FrameWriter, PollReader), ClientError> {
        let buffered = self.reader.reader.buffer().to_vec();
        let ReadHalf::Plain(stream) = self.reader.reader.into_inner() else {
            return Err(ClientError::Protocol(
                "busy polling (bench --spin) is not offered over TLS".into(),
            ));
        };
        stream.set_nonblocking(true)?;
        let mut buf = vec![0u8; 256 * 1024];
        buf[..buffered.len()].copy_from_slice(&buffered);
        let reader = PollReader {
            stream,
            buf,
            start: 0,
            end: buffered.len(),
        };
        Ok((self.writer, reader))
    }

    /// Waits up to `timeout` for an answer to start arriving; true if one has (so a
    /// `recv` then reads a whole frame without a timeout cutting it in half).
    pub fn wait_readable(&self, timeout: Duration) -> Result<bool, ClientError> {
        use std::os::fd::AsRawFd;
        let half = self.reader.reader.get_ref();
        let tls_buffered = matches!(half, ReadHalf::Tls(t) if t.has_buffered());
        if !self.reader.reader.buffer().is_empty() || tls_buffered {
            return Ok(true);
        }
        let mut fd = libc::pollfd {
            fd: half.socket().as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // Rounded up: a deadline under a millisecond away must still wait, not spin
        // through poll(0) until it passes.
        let ms = i32::try_from(timeout.as_nanos().div_ceil(1_000_000)).unwrap_or(i32::MAX);
        // SAFETY: one pollfd we own, for a socket that outlives the call.
        let n = unsafe { libc::poll(&mut fd, 1, ms) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                return Ok(false);
            }
            return Err(e.into());
        }
        Ok(n > 0)
    }

    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> Result<(), ClientError> {
        self.reader
            .reader
            .get_ref()
            .socket()
            .set_read_timeout(timeout)?;
        Ok(())
    }

    /// Sends one request without waiting; returns its id.
    pub fn send(&mut self, request: Request, payload: &[&[u8]]) -> Result<u64, ClientError> {
        self.writer.send(request, payload)
    }

    /// Sends raw bytes (tests use this to send malformed frames).
    pub fn send_raw(&mut self, bytes: &[u8]) -> Result<(), ClientError> {
        self.writer.send_raw(bytes)
    }

    /// Reads the next answer, whichever request it belongs to.
    pub fn recv(&mut self) -> Result<(u64, Response, Bytes), ClientError> {
        self.reader.recv()
    }

    /// Sends one request and waits for its answer (no other request may be in flight).
    pub fn call(
        &mut self,
        request: Request,
        payload: &[&[u8]],
    ) -> Result<(Response, Bytes), ClientError> {
        let id = self.send(request, payload)?;
        let (got, response, payload) = self.recv()?;
        if got != id {
            if let Response::Error { code, message } = response {
                return Err(ClientError::Broker { code, message });
            }
            return Err(ClientError::Protocol(format!(
                "answer for request {got}, expected {id}"
            )));
        }
        Ok((response, payload))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::native::messages::ResponseEnvelope;
    use std::net::TcpListener;

    #[test]
    fn a_frame_head_alone_reserves_at_most_the_reserve_limit() {
        assert_eq!(response_reserve(100), 100);
        let claimed = RESPONSE_MAX_BYTES as usize;
        assert_eq!(response_reserve(claimed), RESPONSE_RESERVE_MAX);
        assert!(RESPONSE_RESERVE_MAX < claimed);
    }

    #[test]
    fn a_poll_reader_does_not_size_its_buffer_by_a_head_alone() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().expect("accept");
            // A head that claims 200 MiB, then a few bytes of it.
            let mut head = (200u32 << 20).to_be_bytes().to_vec();
            head.extend_from_slice(&16u32.to_be_bytes());
            head.extend_from_slice(&[0u8; 100]);
            s.write_all(&head).expect("write");
            s
        });
        let (_, mut reader) = Connection::connect(addr)
            .and_then(Connection::into_polling)
            .expect("connect");
        let started = std::time::Instant::now();
        while reader.end < 108 && started.elapsed() < Duration::from_secs(10) {
            assert!(matches!(reader.try_recv(), Ok(None)));
        }
        assert_eq!(reader.end, 108);
        assert_eq!(
            reader.buf.len(),
            256 * 1024,
            "no room reserved for bytes not sent"
        );
        drop(server.join().expect("server"));
    }

    fn answer(id: u64, payload: &[u8]) -> Vec<u8> {
        let env = ResponseEnvelope {
            id,
            response: Response::Offset { offset: id as i64 },
        };
        let mut frame = frame::encode_response(&env, payload.len()).expect("encodes");
        frame.extend_from_slice(payload);
        frame
    }

    #[test]
    fn poll_reader_reassembles_answers_cut_anywhere_and_never_blocks() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let big = vec![7u8; 600 * 1024]; // larger than the initial buffer
        let mut bytes = answer(1, b"abc");
        bytes.extend(answer(2, &big));
        bytes.extend(answer(3, b""));
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().expect("accept");
            // Cuts inside a head, inside an envelope and inside a payload.
            for piece in bytes.chunks(5 + bytes.len() / 7) {
                s.write_all(piece).expect("write");
                std::thread::sleep(Duration::from_millis(5));
            }
            s
        });
        let (_, mut reader) = Connection::connect(addr)
            .and_then(Connection::into_polling)
            .expect("connect");
        let mut got = Vec::new();
        let started = std::time::Instant::now();
        while got.len() < 3 && started.elapsed() < Duration::from_secs(10) {
            if let Some((id, response, payload)) = reader.try_recv().expect("valid answers") {
                assert_eq!(response, Response::Offset { offset: id as i64 });
                got.push((id, payload.len()));
            }
        }
        let open = server.join().expect("server");
        assert_eq!(got, vec![(1, 3), (2, 600 * 1024), (3, 0)]);
        // Nothing more while the peer stays: returns at once instead of blocking.
        assert!(matches!(reader.try_recv(), Ok(None)));
        drop(open);
        let started = std::time::Instant::now();
        let closed = loop {
            match reader.try_recv() {
                Ok(None) if started.elapsed() < Duration::from_secs(10) => continue,
                other => break other,
            }
        };
        assert!(closed.is_err(), "a closed peer is an error");
    }

    #[test]
    fn waiting_less_than_a_millisecond_still_waits() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let conn = Connection::connect(listener.local_addr().expect("addr")).expect("connect");
        let _peer = listener.accept().expect("accept");
        // A silent peer: each wait lasts its whole timeout (poll(0) would return at once).
        for wait in [Duration::from_micros(300), Duration::from_micros(1500)] {
            let started = std::time::Instant::now();
            assert!(!conn.wait_readable(wait).expect("waits"));
            assert!(
                started.elapsed() >= wait,
                "{wait:?} returned after {:?}",
                started.elapsed()
            );
        }
        assert!(!conn
            .wait_readable(Duration::ZERO)
            .expect("a zero wait only looks"));
    }
}
