//! A Kafka connection at the byte level: requests encoded by kafka-protocol's client
//! side, answered one at a time, for what a well-behaved client never sends.

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, ProduceRequest, ProduceResponse,
    RequestHeader, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{encode_request_header_into_buffer, Decodable, Encodable, StrBytes};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// How long a test waits for one answer.
const ANSWER_WITHIN: Duration = Duration::from_secs(20);

/// A whole request frame: length, the header `key`/`version` imply, then `body`.
pub fn request_frame(key: ApiKey, version: i16, correlation_id: i32, body: &[u8]) -> Vec<u8> {
    let header = RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str("x")));
    let mut buf = BytesMut::new();
    encode_request_header_into_buffer(&mut buf, &header).expect("header");
    buf.extend_from_slice(body);
    let mut out = (buf.len() as i32).to_be_bytes().to_vec();
    out.extend_from_slice(&buf);
    out
}

/// One answer frame, without its length prefix.
pub fn read_frame(conn: &mut TcpStream) -> std::io::Result<Bytes> {
    let mut len = [0u8; 4];
    conn.read_exact(&mut len)?;
    let mut body = vec![0u8; i32::from_be_bytes(len) as usize];
    conn.read_exact(&mut body)?;
    Ok(Bytes::from(body))
}

/// The APIs the broker at `addr` advertises, as (key, min version, max version), asked
/// with ApiVersions v0; an error says what failed, for tests that report it themselves.
pub fn advertised(addr: &str) -> Result<Vec<(i16, i16, i16)>, String> {
    let mut conn = TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
    conn.set_read_timeout(Some(ANSWER_WITHIN))
        .map_err(|e| e.to_string())?;
    let mut body = BytesMut::new();
    ApiVersionsRequest::default()
        .encode(&mut body, 0)
        .map_err(|e| e.to_string())?;
    conn.write_all(&request_frame(ApiKey::ApiVersions, 0, 7, &body))
        .map_err(|e| format!("send: {e}"))?;
    let mut answer = read_frame(&mut conn).map_err(|e| format!("answer: {e}"))?;
    let header = ResponseHeader::decode(&mut answer, 0).map_err(|e| e.to_string())?;
    if header.correlation_id != 7 {
        return Err(format!(
            "answer for correlation id {}",
            header.correlation_id
        ));
    }
    let versions = ApiVersionsResponse::decode(&mut answer, 0).map_err(|e| e.to_string())?;
    if versions.error_code != 0 {
        return Err(format!("ApiVersions error {}", versions.error_code));
    }
    Ok(versions
        .api_keys
        .iter()
        .map(|k| (k.api_key, k.min_version, k.max_version))
        .collect())
}

pub struct RawKafka {
    pub stream: TcpStream,
    next_id: i32,
}

impl RawKafka {
    pub fn connect(addr: &str) -> RawKafka {
        let stream = TcpStream::connect(addr).expect("connect");
        stream
            .set_read_timeout(Some(ANSWER_WITHIN))
            .expect("timeout");
        RawKafka { stream, next_id: 1 }
    }

    /// Sends one request and decodes its answer.
    pub fn call<Req: Encodable, Resp: Decodable>(
        &mut self,
        key: ApiKey,
        version: i16,
        req: &Req,
    ) -> Resp {
        self.call_answered_as(key, version, req, version)
    }

    /// Like `call`, with the answer decoded as `answer_version`.
    pub fn call_answered_as<Req: Encodable, Resp: Decodable>(
        &mut self,
        key: ApiKey,
        version: i16,
        req: &Req,
        answer_version: i16,
    ) -> Resp {
        let id = self.next_id;
        self.next_id += 1;
        let mut body = BytesMut::new();
        req.encode(&mut body, version).expect("body");
        self.stream
            .write_all(&request_frame(key, version, id, &body))
            .expect("send");
        let mut answer = read_frame(&mut self.stream).expect("answer");
        let header =
            ResponseHeader::decode(&mut answer, key.response_header_version(answer_version))
                .expect("response header");
        assert_eq!(header.correlation_id, id);
        Resp::decode(&mut answer, answer_version).expect("response body")
    }

    /// Produces `batch` (acks=all) to partition 0 of `topic`: (error code, base offset).
    pub fn produce(&mut self, topic: &str, batch: Bytes) -> (i16, i64) {
        let req = ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(10_000)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(0)
                    .with_records(Some(batch))])]);
        let resp: ProduceResponse = self.call(ApiKey::Produce, 9, &req);
        let p = &resp.responses[0].partition_responses[0];
        (p.error_code, p.base_offset)
    }
}
