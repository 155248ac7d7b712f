//! One blocking native-protocol connection with pipelining: many requests may be sent
//! before their answers are read; answers carry the request id.

use super::ClientError;
use crate::native::frame::{self, HEAD_LEN};
use crate::native::messages::{Request, RequestEnvelope, Response};
use bytes::Bytes;
use std::io::{BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// Largest answer the client accepts (fetch responses are bounded by max_bytes).
pub const RESPONSE_MAX_BYTES: u32 = 256 << 20;

pub struct Connection {
    writer: TcpStream,
    reader: BufReader<TcpStream>,
    next_id: u64,
}

impl Connection {
    pub fn connect(addr: impl ToSocketAddrs) -> Result<Connection, ClientError> {
        let stream = TcpStream::connect(addr)?;
        stream.set_nodelay(true)?;
        let reader = BufReader::with_capacity(256 * 1024, stream.try_clone()?);
        Ok(Connection {
            writer: stream,
            reader,
            next_id: 1,
        })
    }

    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> Result<(), ClientError> {
        self.writer.set_read_timeout(timeout)?;
        Ok(())
    }

    /// Sends one request without waiting; returns its id.
    pub fn send(&mut self, request: Request, payload: &[&[u8]]) -> Result<u64, ClientError> {
        let id = self.next_id;
        self.next_id += 1;
        let payload_len = payload.iter().map(|p| p.len()).sum();
        let env = RequestEnvelope { id, request };
        let mut out = frame::encode_request(&env, payload_len)
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        for p in payload {
            out.extend_from_slice(p);
        }
        self.writer.write_all(&out)?;
        Ok(id)
    }

    /// Sends raw bytes (tests use this to send malformed frames).
    pub fn send_raw(&mut self, bytes: &[u8]) -> Result<(), ClientError> {
        self.writer.write_all(bytes)?;
        Ok(())
    }

    /// Reads the next answer, whichever request it belongs to.
    pub fn recv(&mut self) -> Result<(u64, Response, Bytes), ClientError> {
        let mut head = [0u8; HEAD_LEN];
        self.reader.read_exact(&mut head)?;
        let head = frame::parse_head(head, RESPONSE_MAX_BYTES)
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        let mut body = vec![0u8; head.body_len()];
        self.reader.read_exact(&mut body)?;
        let body = Bytes::from(body);
        let env = frame::decode_response(&body[..head.envelope_len as usize])
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        let payload = body.slice(head.envelope_len as usize..);
        Ok((env.id, env.response, payload))
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
