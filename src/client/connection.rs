//! One blocking native-protocol connection with pipelining: many requests may be sent
//! before their answers are read; answers carry the request id.

use super::ClientError;
use crate::native::frame::{self, HEAD_LEN};
use crate::native::messages::{Request, RequestEnvelope, Response};
use bytes::Bytes;
use std::io::{BufReader, IoSlice, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// Largest answer the client accepts (fetch responses are bounded by max_bytes).
pub const RESPONSE_MAX_BYTES: u32 = 256 << 20;

pub struct Connection {
    writer: FrameWriter,
    reader: FrameReader,
}

/// The sending half of a connection (see `Connection::into_split`).
pub struct FrameWriter {
    stream: TcpStream,
    next_id: u64,
}

fn write_all_vectored(stream: &mut TcpStream, mut slices: &mut [IoSlice]) -> std::io::Result<()> {
    IoSlice::advance_slices(&mut slices, 0);
    while !slices.is_empty() {
        match stream.write_vectored(slices) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut slices, n),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The receiving half of a connection.
pub struct FrameReader {
    reader: BufReader<TcpStream>,
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
        let mut body = Vec::with_capacity(len);
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

impl Connection {
    pub fn connect(addr: impl ToSocketAddrs) -> Result<Connection, ClientError> {
        let stream = TcpStream::connect(addr)?;
        stream.set_nodelay(true)?;
        let reader = BufReader::with_capacity(256 * 1024, stream.try_clone()?);
        Ok(Connection {
            writer: FrameWriter { stream, next_id: 1 },
            reader: FrameReader { reader },
        })
    }

    /// Separate halves, so that one thread can send while another reads answers.
    pub fn into_split(self) -> (FrameWriter, FrameReader) {
        (self.writer, self.reader)
    }

    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> Result<(), ClientError> {
        self.writer.stream.set_read_timeout(timeout)?;
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
