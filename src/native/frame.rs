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
    use crate::native::messages::{
        AbortedTxn, Acks, AclBinding, AclFilter, AclOperation, AclPatternFilter, AclPatternType,
        AclPermission, AclResourceType, BindingSpec, CommitEntry, ExchangeType, Isolation,
        OffsetSpec, PublishSpec, QueueOverflow, QueueSpec, Request, Response, ScramMechanism,
        TopicSpec, UserChange,
    };

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
    fn fetched_answer_round_trips_with_its_aborted_transactions() {
        let env = ResponseEnvelope {
            id: 7,
            response: Response::Fetched {
                high_watermark: 120,
                log_start_offset: 3,
                last_stable_offset: 100,
                aborted: vec![
                    AbortedTxn {
                        producer_id: 5,
                        first_offset: 10,
                    },
                    AbortedTxn {
                        producer_id: 9,
                        first_offset: 42,
                    },
                ],
            },
        };
        let frame = encode_response(&env, 100).expect("encodes");
        let back = decode_response(&frame[HEAD_LEN..]).expect("decodes");
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

    /// One request of every kind, with names long enough to be stored out of line
    /// (rkyv inlines strings of up to 8 bytes) and non-empty lists, so corruption can
    /// reach relative pointers and lengths.
    fn every_request() -> Vec<Request> {
        let name = || "orders-eu-west".to_string();
        let spec = PublishSpec {
            priority: 3,
            delay_ms: Some(10),
            ttl_ms: Some(60_000),
            headers: vec![("content-type".into(), "application/json".into())],
            group_id: Some("customer-42".into()),
            dedup_id: Some("dedup-000000001".into()),
            durable: true,
            origin: Some("source-queue/17".into()),
        };
        let acl = AclBinding {
            resource_type: AclResourceType::Topic,
            resource_name: name(),
            pattern: AclPatternType::Prefixed,
            principal: "User:operator".into(),
            host: "192.168.100.100".into(),
            operation: AclOperation::Write,
            permission: AclPermission::Deny,
        };
        let acl_filter = AclFilter {
            resource_type: Some(AclResourceType::Queue),
            resource_name: Some(name()),
            pattern: AclPatternFilter::Match,
            principal: Some("User:operator".into()),
            host: None,
            operation: Some(AclOperation::Read),
            permission: None,
        };
        let binding = BindingSpec {
            exchange: "amq.topic.events".into(),
            queue: Some(name()),
            topic: None,
            routing_key: "orders.*.created".into(),
            headers: vec![("x-match-key".into(), "x-match-value".into())],
            match_all: true,
        };
        vec![
            Request::Metadata {
                topics: Some(vec![name(), "payments-us".into()]),
            },
            Request::CreateTopic(TopicSpec {
                name: name(),
                partitions: 12,
                retention_ms: Some(86_400_000),
                retention_bytes: Some(1 << 30),
                segment_bytes: Some(1 << 20),
            }),
            Request::DeleteTopic { name: name() },
            Request::DescribeTopic { name: name() },
            Request::Produce {
                topic: name(),
                partition: 3,
                acks: Acks::Durable,
            },
            Request::Fetch {
                topic: name(),
                partition: 1,
                offset: 1 << 40,
                max_bytes: 1 << 20,
                max_wait_ms: 500,
                min_bytes: 1,
                isolation: Isolation::Committed,
            },
            Request::ListOffsets {
                topic: name(),
                partition: 0,
                spec: OffsetSpec::Timestamp(1_700_000_000_000),
            },
            Request::DeleteRecords {
                topic: name(),
                partition: 2,
                offset: 99,
            },
            Request::PartitionStats {
                topic: name(),
                partition: 5,
            },
            Request::JoinGroup {
                group: "billing-consumers".into(),
                member_id: "member-0001-abcdef".into(),
                client_id: "rdkafka-client".into(),
                topics: vec![name(), "refunds-topic".into()],
                session_timeout_ms: 10_000,
                rebalance_timeout_ms: 30_000,
            },
            Request::Heartbeat {
                group: "billing-consumers".into(),
                member_id: "member-0001-abcdef".into(),
                generation: 7,
            },
            Request::LeaveGroup {
                group: "billing-consumers".into(),
                member_id: "member-0001-abcdef".into(),
            },
            Request::CommitOffsets {
                group: "billing-consumers".into(),
                member_id: "member-0001-abcdef".into(),
                generation: 7,
                offsets: vec![
                    CommitEntry {
                        topic: name(),
                        partition: 0,
                        offset: 41,
                    },
                    CommitEntry {
                        topic: name(),
                        partition: 1,
                        offset: 1 << 33,
                    },
                ],
            },
            Request::FetchOffsets {
                group: "billing-consumers".into(),
                topic: name(),
            },
            Request::DescribeGroup {
                group: "billing-consumers".into(),
            },
            Request::CreatePartitions {
                topic: name(),
                count: 24,
            },
            Request::DeleteGroup {
                group: "billing-consumers".into(),
            },
            Request::ListGroups,
            Request::InitProducerId {
                producer_id: 1 << 35,
                epoch: 4,
            },
            Request::DeclareQueue(QueueSpec {
                name: name(),
                max_priority: 9,
                ttl_ms: Some(1000),
                visibility_timeout_ms: Some(30_000),
                max_deliveries: Some(5),
                dead_letter: Some("orders-dead-letters".into()),
                fifo: true,
                max_length: Some(100_000),
                max_bytes: Some(1 << 30),
                overflow: QueueOverflow::RejectPublish,
            }),
            Request::DeleteQueue { name: name() },
            Request::ListQueues,
            Request::QueueStats { name: name() },
            Request::PurgeQueue { name: name() },
            Request::Publish {
                queue: name(),
                spec: spec.clone(),
            },
            Request::DeclareExchange {
                name: "amq.topic.events".into(),
                kind: ExchangeType::Headers,
            },
            Request::DeleteExchange {
                name: "amq.topic.events".into(),
            },
            Request::ListExchanges,
            Request::Bind(binding.clone()),
            Request::Unbind(binding),
            Request::PublishToExchange {
                exchange: "amq.topic.events".into(),
                routing_key: "orders.eu.created".into(),
                spec: spec.clone(),
            },
            Request::PublishBatch {
                queue: name(),
                spec,
                lens: vec![100, 2000, 1 << 20],
            },
            Request::Receive {
                queue: name(),
                max: 64,
                wait_ms: 1000,
                auto_ack: false,
            },
            Request::Ack {
                queue: name(),
                handles: vec![1, 1 << 40, u64::MAX],
            },
            Request::Subscribe {
                queue: name(),
                prefetch: 100,
                auto_ack: true,
            },
            Request::Nack {
                queue: name(),
                handles: vec![7, 8, 9],
                requeue: true,
            },
            Request::ShardStats { shard: 1 },
            Request::ScramFirst {
                mechanism: ScramMechanism::ScramSha512,
                client_first: b"n,,n=operator,r=fyko+d2lbbFgONRv9qkxdawL".to_vec(),
            },
            Request::ScramFinal {
                client_final: b"c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts="
                    .to_vec(),
            },
            Request::AlterUser(UserChange::Upsert {
                name: name(),
                mechanism: ScramMechanism::ScramSha512,
                iterations: 8192,
                salt: vec![7; 32],
                salted_password: vec![9; 64],
            }),
            Request::ListUsers,
            Request::CreateAcls {
                bindings: vec![acl.clone(), acl],
            },
            Request::DeleteAcls {
                filters: vec![acl_filter.clone()],
            },
            Request::DescribeAcls { filter: acl_filter },
        ]
    }

    /// Valid frames of every request kind (payload after the envelope, as the
    /// connection receives them).
    fn valid_frames() -> Vec<(RequestEnvelope, Vec<u8>)> {
        every_request()
            .into_iter()
            .enumerate()
            .map(|(i, request)| {
                let env = RequestEnvelope {
                    id: 1000 + i as u64,
                    request,
                };
                let mut frame = encode_request(&env, 16).expect("encodes");
                frame.extend_from_slice(&[0xab; 16]);
                (env, frame)
            })
            .collect()
    }

    /// What the connection does with a received frame: check the head, decode the
    /// envelope it delimits.
    fn receive(frame: &[u8]) -> Result<RequestEnvelope, FrameError> {
        let mut head = [0u8; HEAD_LEN];
        head.copy_from_slice(&frame[..HEAD_LEN]);
        let parsed = parse_head(head, 1 << 20)?;
        let body =
            frame
                .get(HEAD_LEN..HEAD_LEN + parsed.body_len())
                .ok_or(FrameError::BadHead {
                    frame_len: parsed.frame_len,
                    envelope_len: parsed.envelope_len,
                })?;
        decode_request(&body[..parsed.envelope_len as usize])
    }

    #[test]
    fn every_request_kind_round_trips() {
        let frames = valid_frames();
        let kinds: std::collections::BTreeSet<usize> = frames
            .iter()
            .map(|(env, _)| env.request.api_index())
            .collect();
        assert_eq!(
            kinds.len(),
            crate::metrics::NATIVE_APIS.len(),
            "a request kind is missing"
        );
        for (env, frame) in frames {
            assert_eq!(receive(&frame), Ok(env));
        }
    }

    /// rkyv finds an archive's root at its end, so a cut archive is read from another
    /// root: nearly always refused, and never taken for the request it was cut from.
    /// (13 of 6,152 cuts here decode, each as some other valid request.)
    #[test]
    fn truncated_envelopes_of_every_request_kind_are_refused() {
        let (mut refused, mut cuts) = (0usize, 0usize);
        for (env, frame) in valid_frames() {
            let envelope = &frame[HEAD_LEN..frame.len() - 16];
            for cut in 0..envelope.len() {
                cuts += 1;
                match decode_request(&envelope[..cut]) {
                    Err(FrameError::BadEnvelope(_)) => refused += 1,
                    Err(other) => panic!("{:?}: unexpected {other:?}", env.request),
                    Ok(other) => assert_ne!(other, env, "cut to {cut} decodes as whole"),
                }
            }
        }
        assert!(
            refused * 100 >= cuts * 99,
            "{refused} of {cuts} cuts refused"
        );
    }

    #[test]
    fn heads_whose_lengths_lie_are_errors() {
        for (env, frame) in valid_frames() {
            let envelope_len = (frame.len() - 16 - HEAD_LEN) as u32;
            let frame_len = (frame.len() - 4) as u32;
            let with_head = |f: u32, e: u32| {
                let mut lying = frame.clone();
                lying[..4].copy_from_slice(&f.to_be_bytes());
                lying[4..8].copy_from_slice(&e.to_be_bytes());
                receive(&lying)
            };
            // The envelope said to end early (a truncation inside it), or to run into
            // the payload: rkyv finds its root at the end, so either is refused.
            for e in [1, 8, envelope_len / 2, envelope_len - 1, envelope_len + 1] {
                let got = with_head(frame_len, e);
                assert!(
                    matches!(got, Err(FrameError::BadEnvelope(_))),
                    "{:?} with envelope length {e} of {envelope_len}: {got:?}",
                    env.request
                );
            }
            assert!(matches!(
                with_head(frame_len, frame_len),
                Err(FrameError::BadHead { .. }) | Err(FrameError::BadEnvelope(_))
            ));
            assert!(matches!(
                with_head(envelope_len + 3, envelope_len),
                Err(FrameError::BadHead { .. })
            ));
            assert!(matches!(
                with_head(frame_len, 0),
                Err(FrameError::BadHead { .. })
            ));
            // A frame longer than the bytes that came: the connection would wait for
            // more; here the missing body is an error, not a read past the buffer.
            assert!(receive(&frame[..frame.len() - 1]).is_err());
        }
    }

    /// Checked access validates every pointer, length, tag and UTF-8 string; a
    /// corruption it lets through is a well-formed request (a changed number or
    /// character), which re-encodes to itself.
    #[test]
    fn flipped_bits_and_lying_lengths_inside_archives_are_refused_or_well_formed() {
        let mut refused = [0usize; 2];
        for (env, frame) in valid_frames() {
            let envelope = &frame[HEAD_LEN..frame.len() - 16];
            let mut check = |corrupt: &[u8], kind: usize| match decode_request(corrupt) {
                Err(FrameError::BadEnvelope(_)) => refused[kind] += 1,
                Err(other) => panic!("{:?}: unexpected {other:?}", env.request),
                Ok(decoded) => {
                    let again = encode_request(&decoded, 0).expect("re-encodes");
                    assert_eq!(decode_request(&again[HEAD_LEN..]), Ok(decoded));
                }
            };
            for bit in 0..envelope.len() * 8 {
                let mut b = envelope.to_vec();
                b[bit / 8] ^= 1 << (bit % 8);
                check(&b, 0);
            }
            // Every aligned 32-bit word (relative pointers, lengths, tags) replaced by
            // values that point or reach outside the archive.
            for at in (0..envelope.len().saturating_sub(3)).step_by(4) {
                for lie in [0x7fff_ffffu32, 0xffff_fff0, 0x8000_0000, 0x0001_0000] {
                    let mut b = envelope.to_vec();
                    b[at..at + 4].copy_from_slice(&lie.to_le_bytes());
                    check(&b, 1);
                }
            }
        }
        // Flips in structure and into non-ASCII bytes of names are caught (8,037 of
        // 55,368 flips here), and a quarter of the lying words (1,585 of 6,152; the rest
        // land in numbers, where every value is valid).
        assert!(
            refused[0] > 5_000 && refused[1] > 1_000,
            "refused {refused:?}"
        );
    }
}
