//! Kafka frames: `i32 length | request header | body` in, `i32 length | response header
//! | body` out, with the header and body versions each API's version implies.

use super::apis;
use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseHeader, ResponseKind};
use kafka_protocol::protocol::{decode_request_header_from_buffer, Encodable};
use kafka_protocol::ResponseError;

pub struct Decoded {
    pub header: RequestHeader,
    pub api_key: ApiKey,
    pub body: RequestKind,
}

pub enum Incoming {
    Request(Box<Decoded>),
    /// Already answered: an ApiVersions request of a version newer than ours gets the
    /// v0 answer with UNSUPPORTED_VERSION and our ranges, so the client retries (KIP-511).
    Answered(BytesMut),
}

/// Decodes one request frame (without its length prefix). An error means the stream
/// cannot be trusted any more: the caller logs it and closes the connection.
pub fn decode(mut frame: Bytes) -> Result<Incoming, String> {
    if frame.len() < 8 {
        return Err(format!(
            "request of {} bytes is shorter than a header",
            frame.len()
        ));
    }
    let mut head = &frame[..8];
    let (key, version, correlation_id) = (head.get_i16(), head.get_i16(), head.get_i32());
    let api_key = ApiKey::try_from(key).map_err(|_| format!("unknown API key {key}"))?;
    let Some((min, max)) = apis::range(api_key) else {
        return Err(format!("API {api_key:?} (key {key}) is not implemented"));
    };
    if version < min || version > max {
        if api_key == ApiKey::ApiVersions {
            let body = apis::api_versions(ResponseError::UnsupportedVersion.code());
            return encode(correlation_id, api_key, 0, &ResponseKind::ApiVersions(body))
                .map(Incoming::Answered);
        }
        return Err(format!(
            "{api_key:?} v{version} is not supported (v{min} to v{max} are)"
        ));
    }
    let header = decode_request_header_from_buffer(&mut frame)
        .map_err(|e| format!("bad {api_key:?} v{version} request header: {e:#}"))?;
    // `{e:#}`: the whole chain, so the log names the field's cause (a count over the
    // bytes left, say), not only "failed to decode".
    let body = RequestKind::decode(api_key, &mut frame, version)
        .map_err(|e| format!("bad {api_key:?} v{version} request: {e:#}"))?;
    Ok(Incoming::Request(Box::new(Decoded {
        header,
        api_key,
        body,
    })))
}

/// Encodes a whole response frame, length prefix included.
pub fn encode(
    correlation_id: i32,
    api_key: ApiKey,
    version: i16,
    body: &ResponseKind,
) -> Result<BytesMut, String> {
    let mut buf = BytesMut::with_capacity(256);
    buf.put_i32(0);
    ResponseHeader::default()
        .with_correlation_id(correlation_id)
        .encode(&mut buf, api_key.response_header_version(version))
        .map_err(|e| format!("encoding {api_key:?} response header: {e}"))?;
    body.encode(&mut buf, version)
        .map_err(|e| format!("encoding {api_key:?} v{version} response: {e}"))?;
    let len = i32::try_from(buf.len() - 4).map_err(|_| "response over 2 GiB".to_string())?;
    buf[..4].copy_from_slice(&len.to_be_bytes());
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::ApiVersionsResponse;
    use kafka_protocol::messages::{ApiVersionsRequest, MetadataRequest};
    use kafka_protocol::protocol::{encode_request_header_into_buffer, Decodable, StrBytes};

    fn frame(key: ApiKey, version: i16, body: &impl Encodable) -> Bytes {
        let header = RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version)
            .with_correlation_id(7)
            .with_client_id(Some(StrBytes::from_static_str("test")));
        let mut buf = BytesMut::new();
        encode_request_header_into_buffer(&mut buf, &header).expect("header");
        body.encode(&mut buf, version).expect("body");
        buf.freeze()
    }

    #[test]
    fn decodes_a_flexible_request_and_its_header() {
        let req = MetadataRequest::default().with_topics(None);
        let Ok(Incoming::Request(d)) = decode(frame(ApiKey::Metadata, 12, &req)) else {
            panic!("decodes");
        };
        assert_eq!(d.api_key, ApiKey::Metadata);
        assert_eq!(d.header.correlation_id, 7);
        assert!(matches!(d.body, RequestKind::Metadata(_)));
    }

    #[test]
    fn newer_api_versions_gets_the_v0_fallback_and_others_are_refused() {
        let req = ApiVersionsRequest::default();
        // v4 is past our v3: answered, not an error.
        let Ok(Incoming::Answered(mut out)) = decode(frame(ApiKey::ApiVersions, 4, &req)) else {
            panic!("answered");
        };
        let len = out.get_i32();
        assert_eq!(len as usize, out.len());
        assert_eq!(out.get_i32(), 7, "correlation id");
        let body = ApiVersionsResponse::decode(&mut out, 0).expect("v0");
        assert_eq!(body.error_code, ResponseError::UnsupportedVersion.code());
        assert!(!body.api_keys.is_empty());
        let req = MetadataRequest::default();
        assert!(decode(frame(ApiKey::Metadata, 13, &req)).is_err());
        assert!(decode(Bytes::from_static(&[0, 1, 0])).is_err());
        assert!(decode(Bytes::from_static(&[0x7f, 0x7f, 0, 0, 0, 0, 0, 1])).is_err());
    }
}
