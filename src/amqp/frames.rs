//! AMQP 0-9-1 framing on a shard's socket: whole frames split off a receive buffer (body
//! payloads stay in that buffer, no copy), methods and content headers decoded with
//! `amq-protocol`, and the connection's output buffer that every task of the connection
//! appends whole frames to and one writer task drains.

use crate::server::stream::{read_some, write_all, Stream};
use amq_protocol::frame::{gen_frame, AMQPContentHeader, AMQPFrame, WriteContext};
use amq_protocol::protocol::{basic::AMQPProperties, AMQPClass};
use bytes::{Bytes, BytesMut};
use event_listener::Event;
use std::cell::{Cell, RefCell};

pub const FRAME_METHOD: u8 = 1;
pub const FRAME_HEADER: u8 = 2;
pub const FRAME_BODY: u8 = 3;
pub const FRAME_HEARTBEAT: u8 = 8;
pub const FRAME_END: u8 = 0xCE;
/// Type, channel and size before a frame's payload.
pub const FRAME_HEAD_LEN: usize = 7;
/// Head and end octet: what a frame adds to its payload.
pub const FRAME_OVERHEAD: usize = FRAME_HEAD_LEN + 1;
/// The protocol header a 0-9-1 client opens with.
pub const PROTOCOL_HEADER: [u8; 8] = *b"AMQP\x00\x00\x09\x01";
/// The largest frame a peer may send before `tune-ok` (the spec's minimum frame_max).
pub const FRAME_MIN_SIZE: u32 = 4096;

/// Bytes read from the socket at a time. Small payloads are copied out of it (see
/// `PAYLOAD_COPY_BELOW`) so that a held message never pins the whole buffer.
const READ_CHUNK: usize = 256 << 10;
/// Body payloads shorter than this are copied out of the receive buffer; longer ones
/// are slices of it (zero-copy), which keep the buffer alive while a queue holds them.
const PAYLOAD_COPY_BELOW: usize = READ_CHUNK / 16;

/// One frame as it arrived: its type, channel and payload (without the end octet).
#[derive(Debug)]
pub struct RawFrame {
    pub kind: u8,
    pub channel: u16,
    pub payload: Bytes,
}

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("frame of {size} bytes is larger than the negotiated frame_max of {max}")]
    TooLarge { size: usize, max: u32 },
    #[error("frame end octet is {0:#04x}, not 0xce")]
    BadEnd(u8),
    #[error("connection closed in the middle of a frame")]
    Truncated,
    #[error("read failed: {0}")]
    Io(#[from] std::io::Error),
}

/// Splits whole frames off the connection's receive buffer.
pub struct FrameReader {
    stream: Stream,
    buf: BytesMut,
    /// Bytes of `buf` holding received data; the rest is room to read into.
    filled: usize,
}

impl FrameReader {
    pub fn new(stream: Stream) -> FrameReader {
        FrameReader {
            stream,
            buf: BytesMut::zeroed(READ_CHUNK),
            filled: 0,
        }
    }

    fn make_room(&mut self, want: usize) {
        if self.buf.len() >= want {
            return;
        }
        let mut fresh = BytesMut::zeroed(want.max(READ_CHUNK));
        fresh[..self.filled].copy_from_slice(&self.buf[..self.filled]);
        self.buf = fresh;
    }

    /// Reads until `want` bytes are buffered; false when the peer closed first.
    async fn fill(&mut self, want: usize) -> std::io::Result<bool> {
        while self.filled < want {
            // Grow with what arrives, not with what a head claims.
            self.make_room(want.min((2 * self.filled).max(READ_CHUNK)));
            let n = read_some(&self.stream, &mut self.buf[self.filled..]).await?;
            if n == 0 {
                return Ok(false);
            }
            self.filled += n;
        }
        Ok(true)
    }

    /// The 8-byte protocol header; None when the peer closed before sending it.
    pub async fn protocol_header(&mut self) -> Result<Option<[u8; 8]>, FrameError> {
        if !self.fill(PROTOCOL_HEADER.len()).await? {
            return Ok(None);
        }
        let mut header = [0u8; 8];
        header.copy_from_slice(&self.buf[..8]);
        let _ = self.buf.split_to(8);
        self.filled -= 8;
        Ok(Some(header))
    }

    /// Whether a whole frame is already buffered (so the caller can handle it before
    /// flushing what it owes).
    pub fn has_frame(&self) -> bool {
        let buffered = &self.buf[..self.filled];
        matches!(frame_len(buffered, u32::MAX), Ok(Some(total)) if buffered.len() >= total)
    }

    /// The next frame, at most `frame_max` bytes long with its framing; None when the
    /// peer closed between frames.
    pub async fn next(&mut self, frame_max: u32) -> Result<Option<RawFrame>, FrameError> {
        if !self.fill(FRAME_HEAD_LEN).await? {
            return if self.filled == 0 {
                Ok(None)
            } else {
                Err(FrameError::Truncated)
            };
        }
        let total = match frame_len(&self.buf[..self.filled], frame_max)? {
            Some(total) => total,
            None => return Err(FrameError::Truncated),
        };
        if !self.fill(total).await? {
            return Err(FrameError::Truncated);
        }
        let frame = self.buf.split_to(total);
        self.filled -= total;
        take_frame(frame).map(Some)
    }
}

/// The length (head, payload and end octet) of the frame whose head starts `buf`;
/// `None` while the head is incomplete. A frame over `frame_max` is refused from its
/// head, before any of its payload is read.
pub fn frame_len(buf: &[u8], frame_max: u32) -> Result<Option<usize>, FrameError> {
    let Some(head) = buf.first_chunk::<FRAME_HEAD_LEN>() else {
        return Ok(None);
    };
    let size = u32::from_be_bytes([head[3], head[4], head[5], head[6]]);
    let total = FRAME_OVERHEAD + size as usize;
    // frame_max 0 would mean "no limit": the broker never offers it.
    if total > frame_max as usize {
        return Err(FrameError::TooLarge {
            size: total,
            max: frame_max,
        });
    }
    Ok(Some(total))
}

/// One whole frame, `frame_len` bytes split off the receive buffer: its end octet
/// checked, its payload copied out of the buffer when small.
pub fn take_frame(mut frame: BytesMut) -> Result<RawFrame, FrameError> {
    let total = frame.len();
    if total < FRAME_OVERHEAD {
        return Err(FrameError::Truncated);
    }
    let kind = frame[0];
    let channel = u16::from_be_bytes([frame[1], frame[2]]);
    let end = frame[total - 1];
    if end != FRAME_END {
        return Err(FrameError::BadEnd(end));
    }
    frame.truncate(total - 1);
    let mut payload = frame.split_off(FRAME_HEAD_LEN);
    if payload.len() < PAYLOAD_COPY_BELOW {
        payload = BytesMut::from(&payload[..]);
    }
    Ok(RawFrame {
        kind,
        channel,
        payload: payload.freeze(),
    })
}

/// Encodes one frame with amq-protocol's generator onto `buf`.
fn gen(buf: &mut Vec<u8>, frame: &AMQPFrame) {
    let ctx = WriteContext::from(std::mem::take(buf));
    match gen_frame(frame)(ctx) {
        Ok(ctx) => *buf = ctx.write,
        // Only a value the spec cannot carry (a short string past 255 bytes, which
        // our own callers never build) fails; the frame is left out and logged.
        Err(e) => tracing::error!("encoding an AMQP frame: {e:?}"),
    }
}

pub fn encode_method(buf: &mut Vec<u8>, channel: u16, method: AMQPClass) {
    gen(buf, &AMQPFrame::Method(channel, method));
}

pub fn encode_heartbeat(buf: &mut Vec<u8>) {
    gen(buf, &AMQPFrame::Heartbeat);
}

/// A content header and its body, split into body frames of at most `frame_max` bytes.
pub fn encode_content(
    buf: &mut Vec<u8>,
    channel: u16,
    properties: AMQPProperties,
    body: &[u8],
    frame_max: u32,
) {
    let header = AMQPContentHeader {
        class_id: 60,
        body_size: body.len() as u64,
        properties,
    };
    gen(buf, &AMQPFrame::Header(channel, header));
    let chunk = (frame_max as usize).saturating_sub(FRAME_OVERHEAD).max(1);
    for part in body.chunks(chunk) {
        // Written by hand so that the body is copied once, into the output buffer.
        buf.push(FRAME_BODY);
        buf.extend_from_slice(&channel.to_be_bytes());
        buf.extend_from_slice(&(part.len() as u32).to_be_bytes());
        buf.extend_from_slice(part);
        buf.push(FRAME_END);
    }
}

/// The connection's output: frames appended whole by any of its tasks (so one
/// message's frames are never interleaved with another's), written by one writer task.
/// Appending never waits; a task that produces a lot waits for `room` afterwards.
pub struct Output {
    buf: RefCell<Vec<u8>>,
    /// Wakes the writer.
    ready: Event,
    /// Wakes tasks waiting for room.
    drained: Event,
    closed: Cell<bool>,
    /// Bytes buffered past which producers wait for the writer.
    max: usize,
}

impl Output {
    pub fn new(max: usize) -> Output {
        Output {
            buf: RefCell::new(Vec::with_capacity(16 << 10)),
            ready: Event::new(),
            drained: Event::new(),
            closed: Cell::new(false),
            max,
        }
    }

    /// Appends with `f` and wakes the writer.
    pub fn push(&self, f: impl FnOnce(&mut Vec<u8>)) {
        if self.closed.get() {
            return;
        }
        f(&mut self.buf.borrow_mut());
        self.ready.notify(1);
    }

    pub fn method(&self, channel: u16, method: AMQPClass) {
        self.push(|b| encode_method(b, channel, method));
    }

    /// Waits until what is buffered is under the bound (or the connection closed).
    pub async fn room(&self) {
        self.under(self.max).await;
    }

    /// Waits until what is buffered is at most `limit` bytes (or the connection closed).
    pub async fn under(&self, limit: usize) {
        let room = || self.closed.get() || self.buf.borrow().len() <= limit;
        crate::runtime::until(&self.drained, room).await;
    }

    /// Waits until everything appended so far was written (or the connection closed).
    pub async fn flushed(&self) {
        self.under(0).await;
    }

    /// Stops the writer once it has written what is buffered; later pushes are dropped.
    pub fn close(&self) {
        self.closed.set(true);
        self.ready.notify(usize::MAX);
        self.drained.notify(usize::MAX);
    }

    pub fn is_closed(&self) -> bool {
        self.closed.get()
    }

    /// The writer task: writes what is buffered, in one write per wake-up.
    pub async fn write_loop(&self, stream: Stream) {
        let mut spare = Vec::with_capacity(16 << 10);
        loop {
            let work = || !self.buf.borrow().is_empty() || self.closed.get();
            crate::runtime::until(&self.ready, work).await;
            if self.buf.borrow().is_empty() {
                // Closed, and everything buffered was written.
                return;
            }
            std::mem::swap(&mut *self.buf.borrow_mut(), &mut spare);
            let written = write_all(&stream, &spare).await;
            spare.clear();
            if spare.capacity() > 4 << 20 {
                spare = Vec::with_capacity(16 << 10);
            }
            self.drained.notify(usize::MAX);
            if written.is_err() {
                self.closed.set(true);
                self.buf.borrow_mut().clear();
                self.drained.notify(usize::MAX);
                return;
            }
        }
    }
}

/// A method frame's payload decoded (class and method with their arguments).
pub fn decode_method(payload: &[u8]) -> Result<AMQPClass, String> {
    use amq_protocol::protocol::parse_class;
    match parse_class(payload) {
        Ok(([], class)) => Ok(class),
        Ok((rest, _)) => Err(format!("{} bytes after the method's arguments", rest.len())),
        Err(e) => Err(format!("undecodable method: {e}")),
    }
}

/// A content header frame's payload decoded.
pub fn decode_content_header(payload: &[u8]) -> Result<AMQPContentHeader, String> {
    use amq_protocol::frame::parsing::parse_content_header;
    match parse_content_header(payload) {
        Ok(([], header)) => Ok(header),
        Ok((rest, _)) => Err(format!("{} bytes after the content header", rest.len())),
        Err(e) => Err(format!("undecodable content header: {e}")),
    }
}

/// Bodies kept as the frames' own payloads: one frame's body is used as is.
#[derive(Debug, Default)]
pub struct BodyParts {
    parts: Vec<Bytes>,
    len: u64,
}

impl BodyParts {
    pub fn push(&mut self, part: Bytes) {
        self.len += part.len() as u64;
        self.parts.push(part);
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The whole body: the one part itself, or the parts joined.
    pub fn into_bytes(mut self) -> Bytes {
        match self.parts.len() {
            0 => Bytes::new(),
            1 => self.parts.pop().unwrap_or_default(),
            _ => {
                let mut all = BytesMut::with_capacity(self.len as usize);
                for p in &self.parts {
                    all.extend_from_slice(p);
                }
                all.freeze()
            }
        }
    }
}
