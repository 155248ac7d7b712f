//! Native framing: `u32 frame_len | u32 envelope_len | envelope | payload`, big endian.
//!
//! `frame_len` counts every byte after itself. The envelope is an rkyv archive checked
//! with bytecheck before use; the payload is raw record batches. Pure functions only,
//! shared by the broker's async connection loop and the blocking client.

use super::messages::{RequestEnvelope, ResponseEnvelope};
use rkyv::rancor;
use rkyv::util::AlignedVec;

/// Bytes of the fixed frame head.
pub const HEAD_LEN: usize = 8;
/// Largest envelope accepted; envelopes hold names and small lists only.
pub const ENVELOPE_MAX: u32 = 1 << 20;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    #[error("frame of {len} bytes is over the limit of {max} bytes (--max-frame-bytes)")]
    TooLarge { len: u32, max: u32 },
    #[error("malformed frame head: frame length {frame_len}, envelope length {envelope_len}")]
    BadHead { frame_len: u32, envelope_len: u32 },
    #[error("envelope does not decode: {0}")]
    BadEnvelope(String),
    #[error("cannot encode envelope: {0}")]
    Encode(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHead {
    pub frame_len: u32,
    pub envelope_len: u32,
}

impl FrameHead {
    /// Bytes that follow the head: envelope plus payload.
    pub fn body_len(&self) -> usize {
        self.frame_len as usize - 4
    }

    pub fn payload_len(&self) -> usize {
        self.body_len() - self.envelope_len as usize
    }
}

/// Checks a received head against the frame limit before any body byte is read.
pub fn parse_head(head: [u8; HEAD_LEN], max_frame_bytes: u32) -> Result<FrameHead, FrameError> {
    let frame_len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
    let envelope_len = u32::from_be_bytes([head[4], head[5], head[6], head[7]]);
    if frame_len > max_frame_bytes {
        return Err(FrameError::TooLarge {
            len: frame_len,
            max: max_frame_bytes,
        });
    }
    if frame_len < 4
        || envelope_len == 0
        || envelope_len > ENVELOPE_MAX
        || envelope_len > frame_len - 4
    {
        return Err(FrameError::BadHead {
            frame_len,
            envelope_len,
        });
    }
    Ok(FrameHead {
        frame_len,
        envelope_len,
    })
}

/// Head and envelope of a frame; the caller sends `payload_len` payload bytes after it.
fn encode(envelope: &[u8], payload_len: usize) -> Result<Vec<u8>, FrameError> {
    let frame_len = 4 + envelope.len() + payload_len;
    let frame_len =
        u32::try_from(frame_len).map_err(|_| FrameError::Encode("frame over 4 GiB".into()))?;
    let envelope_len = envelope.len() as u32;
    let mut out = Vec::with_capacity(HEAD_LEN + envelope.len());
    out.extend_from_slice(&frame_len.to_be_bytes());
    out.extend_from_slice(&envelope_len.to_be_bytes());
    out.extend_from_slice(envelope);
    Ok(out)
}

pub fn encode_request(env: &RequestEnvelope, payload_len: usize) -> Result<Vec<u8>, FrameError> {
    let bytes =
        rkyv::to_bytes::<rancor::Error>(env).map_err(|e| FrameError::Encode(e.to_string()))?;
    encode(&bytes, payload_len)
}

pub fn encode_response(env: &ResponseEnvelope, payload_len: usize) -> Result<Vec<u8>, FrameError> {
    let bytes =
        rkyv::to_bytes::<rancor::Error>(env).map_err(|e| FrameError::Encode(e.to_string()))?;
    encode(&bytes, payload_len)
}

/// rkyv needs the archive aligned; a received envelope sits at an arbitrary offset in
/// the socket buffer, so it is copied (envelopes are small, payloads are not copied).
fn aligned(envelope: &[u8]) -> AlignedVec<16> {
    let mut buf = AlignedVec::<16>::with_capacity(envelope.len());
    buf.extend_from_slice(envelope);
    buf
}

pub fn decode_request(envelope: &[u8]) -> Result<RequestEnvelope, FrameError> {
    rkyv::from_bytes::<RequestEnvelope, rancor::Error>(&aligned(envelope))
        .map_err(|e| FrameError::BadEnvelope(e.to_string()))
}

pub fn decode_response(envelope: &[u8]) -> Result<ResponseEnvelope, FrameError> {
    rkyv::from_bytes::<ResponseEnvelope, rancor::Error>(&aligned(envelope))
        .map_err(|e| FrameError::BadEnvelope(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::native::messages::{Acks, Request};

    #[test]
    fn request_round_trips() {
        let env = RequestEnvelope {
            id: 42,
            request: Request::Produce {
                topic: "t".into(),
                partition: 3,
                acks: Acks::Durable,
            },
        };
        let frame = encode_request(&env, 10).expect("encodes");
        let mut head = [0u8; HEAD_LEN];
        head.copy_from_slice(&frame[..HEAD_LEN]);
        let parsed = parse_head(head, 1 << 20).expect("valid head");
        assert_eq!(parsed.payload_len(), 10);
        let back = decode_request(&frame[HEAD_LEN..]).expect("decodes");
        assert_eq!(back, env);
    }

    #[test]
    fn oversized_and_inconsistent_heads_are_refused() {
        let mut head = [0u8; HEAD_LEN];
        head[..4].copy_from_slice(&(9u32 << 20).to_be_bytes());
        head[4..].copy_from_slice(&8u32.to_be_bytes());
        assert!(matches!(
            parse_head(head, 8 << 20),
            Err(FrameError::TooLarge { .. })
        ));
        head[..4].copy_from_slice(&10u32.to_be_bytes());
        head[4..].copy_from_slice(&20u32.to_be_bytes());
        assert!(matches!(
            parse_head(head, 8 << 20),
            Err(FrameError::BadHead { .. })
        ));
    }

    #[test]
    fn garbage_envelopes_never_panic() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for len in 0..512usize {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            let _ = decode_request(&bytes);
            let _ = decode_response(&bytes);
        }
    }
}
