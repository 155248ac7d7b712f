//! Replays every committed fuzz corpus (`fuzz/corpus/<target>/`) through the functions
//! the fuzz targets run (`fuzz/src/lib.rs`, included here by path), on stable and
//! without libFuzzer: what the fuzzers found stays fixed, and seeds keep decoding.
//!
//! `write_seed_corpora` (ignored) wrote the seeds: real encodings of every Kafka API
//! and version we serve, native envelopes, record batches, segments, indexes, queue
//! journals, catalogs and offsets files. The fuzzers grew and `cargo fuzz cmin`
//! minimized the corpora from there (benches/RESULTS.md, "Fuzzing the decoders").

mod common;
#[path = "../fuzz/src/lib.rs"]
mod targets;

use std::path::{Path, PathBuf};

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target)
}

#[test]
fn every_corpus_input_decodes_without_a_panic() {
    for (name, run) in targets::TARGETS {
        let dir = corpus_dir(name);
        let entries = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("corpus {} is missing: {e}", dir.display()));
        let mut inputs = 0;
        for entry in entries {
            let path = entry
                .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
                .path();
            let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            // A panic names the input: rerun it with `cargo fuzz run <target> <file>`.
            eprintln!("{name}: {}", path.display());
            run(&data);
            inputs += 1;
        }
        assert!(inputs > 0, "corpus {} is empty", dir.display());
    }
}

/// The `sigv4` seeds made from botocore's captures verify, so the fuzzer starts past
/// the clock and key checks, in the signature computation itself.
#[test]
fn sigv4_capture_seeds_verify() {
    let mut verified = 0;
    for capture in seeds::SIGV4_CAPTURES {
        let path = corpus_dir("sigv4").join(format!("seed-{capture}"));
        let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(targets::sigv4_verifies(&data), Some(true), "{capture}");
        targets::sigv4(&data);
        verified += 1;
    }
    assert_eq!(verified, 4);
}

/// The `http_request` seeds made from the aws-wire fixtures reach the decoder their
/// route runs, and most decode: the fuzzer starts inside the SQS and SNS decoders, not at
/// the head parser's refusals.
#[test]
fn http_fixture_seeds_route_to_their_decoders() {
    use peregrine::http::fuzzing::{requests, Routed};
    let mut decoded = [0usize; 3];
    for entry in std::fs::read_dir(corpus_dir("http_request")).expect("corpus") {
        let path = entry.expect("entry").path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let Some(wire) = ["json", "query", "sns"]
            .iter()
            .position(|w| name.starts_with(&format!("seed-{w}-")))
        else {
            continue;
        };
        let data = std::fs::read(&path).expect("seed");
        for framed in requests(&data) {
            // A few fixtures are requests the broker refuses (SMS, for one).
            match (wire, &framed.routed) {
                (0 | 1, Routed::Sqs(_, Ok(_))) | (2, Routed::Sns(Ok(_))) => decoded[wire] += 1,
                (0 | 1, Routed::Sqs(_, Err(_))) | (2, Routed::Sns(Err(_))) => {}
                (_, routed) => panic!("{name}: routed to {routed:?}"),
            }
        }
    }
    assert!(decoded.iter().all(|&n| n > 10), "decoded {decoded:?}");
}

/// The `acl_requests` seeds get their bindings into the store (a valid CreateAcls
/// frame, seven good creations and one bad host), so the fuzzer starts with a store to
/// check `authorize` and the filters against.
#[test]
fn acl_seeds_add_bindings() {
    let mut seeds = 0;
    for entry in std::fs::read_dir(corpus_dir("acl_requests")).expect("corpus") {
        let path = entry.expect("entry").path();
        if !path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("seed-"))
        {
            continue;
        }
        let data = std::fs::read(&path).expect("seed");
        assert_eq!(
            targets::acl_requests_applied(&data),
            7,
            "{}",
            path.display()
        );
        seeds += 1;
    }
    assert_eq!(seeds, 4);
}

mod seeds {
    use super::corpus_dir;
    use bytes::BytesMut;
    use kafka_protocol::messages::*;
    use kafka_protocol::protocol::{
        encode_request_header_into_buffer, Encodable, Message, StrBytes,
    };
    use peregrine::native::frame;
    use peregrine::native::messages::{Acks, Request, RequestEnvelope, Response, ResponseEnvelope};
    use peregrine_shards::batch;
    use peregrine_shards::catalog::{Catalog, TopicConfig};
    use peregrine_shards::groups::offset_records::{encode_batch, OffsetRecord, OffsetValue};
    use peregrine_shards::queues::exchange::{BindTarget, Binding, ExchangeKind, ExchangeMeta};
    use peregrine_shards::queues::{Event, MoveStatus, MoveTask, PublishedMeta, QueueConfig};
    use peregrine_shards::records::{BatchBuilder, EndTxnMarker};
    use std::path::Path;

    fn write(target: &str, name: &str, data: &[u8]) {
        let dir = corpus_dir(target);
        std::fs::create_dir_all(&dir).expect("corpus dir");
        std::fs::write(dir.join(format!("seed-{name}")), data).expect("seed written");
    }

    /// A request frame (no length prefix) of `T::default()` at every version of `T`.
    fn kafka<T: Encodable + Message + Default>(key: ApiKey) {
        for version in T::VERSIONS.min..=T::VERSIONS.max {
            let header = RequestHeader::default()
                .with_request_api_key(key as i16)
                .with_request_api_version(version)
                .with_correlation_id(version.into())
                .with_client_id(Some("seed".into()));
            let mut buf = BytesMut::new();
            let encoded = encode_request_header_into_buffer(&mut buf, &header)
                .and_then(|_| T::default().encode(&mut buf, version));
            if encoded.is_ok() {
                write("kafka_request", &format!("{key:?}-v{version}"), &buf);
            }
        }
    }

    fn kafka_requests() {
        kafka::<ProduceRequest>(ApiKey::Produce);
        kafka::<FetchRequest>(ApiKey::Fetch);
        kafka::<ListOffsetsRequest>(ApiKey::ListOffsets);
        kafka::<MetadataRequest>(ApiKey::Metadata);
        kafka::<FindCoordinatorRequest>(ApiKey::FindCoordinator);
        kafka::<kafka_protocol::messages::DescribeClusterRequest>(ApiKey::DescribeCluster);
        kafka::<ApiVersionsRequest>(ApiKey::ApiVersions);
        kafka::<OffsetCommitRequest>(ApiKey::OffsetCommit);
        kafka::<OffsetFetchRequest>(ApiKey::OffsetFetch);
        kafka::<JoinGroupRequest>(ApiKey::JoinGroup);
        kafka::<HeartbeatRequest>(ApiKey::Heartbeat);
        kafka::<LeaveGroupRequest>(ApiKey::LeaveGroup);
        kafka::<SyncGroupRequest>(ApiKey::SyncGroup);
        kafka::<DescribeGroupsRequest>(ApiKey::DescribeGroups);
        kafka::<ListGroupsRequest>(ApiKey::ListGroups);
        kafka::<DeleteGroupsRequest>(ApiKey::DeleteGroups);
        kafka::<CreateTopicsRequest>(ApiKey::CreateTopics);
        kafka::<DescribeConfigsRequest>(ApiKey::DescribeConfigs);
        kafka::<InitProducerIdRequest>(ApiKey::InitProducerId);
        kafka::<CreatePartitionsRequest>(ApiKey::CreatePartitions);
        kafka::<DeleteRecordsRequest>(ApiKey::DeleteRecords);
        kafka::<DeleteTopicsRequest>(ApiKey::DeleteTopics);
        kafka::<AddPartitionsToTxnRequest>(ApiKey::AddPartitionsToTxn);
        kafka::<AddOffsetsToTxnRequest>(ApiKey::AddOffsetsToTxn);
        kafka::<TxnOffsetCommitRequest>(ApiKey::TxnOffsetCommit);
        kafka::<EndTxnRequest>(ApiKey::EndTxn);
        kafka::<DescribeTransactionsRequest>(ApiKey::DescribeTransactions);
        kafka::<ListTransactionsRequest>(ApiKey::ListTransactions);
        kafka::<DescribeProducersRequest>(ApiKey::DescribeProducers);
        kafka::<DescribeAclsRequest>(ApiKey::DescribeAcls);
        kafka::<CreateAclsRequest>(ApiKey::CreateAcls);
        kafka::<DeleteAclsRequest>(ApiKey::DeleteAcls);
    }

    fn native_frames() {
        let requests = [
            Request::Metadata { topics: None },
            Request::Metadata {
                topics: Some(vec!["orders".into(), "t".into()]),
            },
            Request::Produce {
                topic: "orders".into(),
                partition: 3,
                acks: Acks::Durable,
            },
            Request::Fetch {
                topic: "orders".into(),
                partition: 0,
                offset: 42,
                max_bytes: 1 << 20,
                max_wait_ms: 100,
                min_bytes: 1,
                isolation: Default::default(),
            },
            Request::DeleteTopic { name: "t".into() },
        ];
        for (i, request) in requests.into_iter().enumerate() {
            let env = RequestEnvelope {
                id: i as u64,
                request,
            };
            let bytes = frame::encode_request(&env, 0).expect("encodes");
            write("native_frame", &format!("request-{i}"), &bytes);
        }
        let responses = [
            Response::Ok,
            Response::Produced {
                base_offset: 10,
                last_offset: 12,
            },
            Response::Fetched {
                high_watermark: 100,
                log_start_offset: 0,
                last_stable_offset: 100,
                aborted: Vec::new(),
            },
        ];
        for (i, response) in responses.into_iter().enumerate() {
            let env = ResponseEnvelope {
                id: i as u64,
                response,
            };
            let bytes = frame::encode_response(&env, 0).expect("encodes");
            write("native_frame", &format!("response-{i}"), &bytes);
        }
    }

    fn built_batch(base_offset: i64, records: usize) -> Vec<u8> {
        let mut b = BatchBuilder::new(1_700_000_000_000, 256);
        for i in 0..records {
            let key = format!("k{i}");
            let headers: &[(&[u8], &[u8])] = if i % 2 == 0 { &[(b"h", b"v")] } else { &[] };
            let key = (i % 3 != 0).then_some(key.as_bytes());
            b.push(
                key,
                Some(format!("value {i}").as_bytes()),
                1_700_000_000_000 + i as i64,
                headers,
            );
        }
        let mut bytes = b.finish().expect("records pushed");
        batch::set_base_offset(&mut bytes, base_offset);
        bytes
    }

    fn batches_and_segments() {
        let one = built_batch(0, 1);
        let three = built_batch(1, 3);
        write("record_batch", "one", &one);
        write("record_batch", "three", &three);
        let mut two = one.clone();
        two.extend_from_slice(&three);
        write("record_batch", "two-batches", &two);
        for commit in [true, false] {
            let marker = EndTxnMarker {
                commit,
                coordinator_epoch: 7,
            };
            let name = if commit { "commit" } else { "abort" };
            write(
                "record_batch",
                &format!("marker-{name}"),
                &marker.batch(42, 3, 1_700_000_000_000),
            );
        }
        let mut segment = two.clone();
        segment.extend_from_slice(&built_batch(4, 5));
        write("segment_recovery", "three-batches", &segment);
        let mut torn = segment.clone();
        torn.extend_from_slice(&built_batch(9, 2)[..40]);
        write("segment_recovery", "torn-tail", &torn);
        let mut zeros = segment;
        zeros.resize(zeros.len() + 4096, 0);
        write("segment_recovery", "preallocated-tail", &zeros);
    }

    fn indexes() {
        let offsets: Vec<u8> = [(0u32, 0u32), (5, 300), (9, 700)]
            .iter()
            .flat_map(|(rel, pos)| [rel.to_be_bytes(), pos.to_be_bytes()].concat())
            .collect();
        write("index", "offsets", &offsets);
        let times: Vec<u8> = [(1_700_000_000_000i64, 0u32), (1_700_000_000_005, 5)]
            .iter()
            .flat_map(|(ts, rel)| [&ts.to_be_bytes()[..], &rel.to_be_bytes()].concat())
            .collect();
        write("index", "times", &times);
    }

    fn rkyv<T>(value: &T) -> Vec<u8>
    where
        T: for<'a> rkyv::Serialize<
            rkyv::api::high::HighSerializer<
                rkyv::util::AlignedVec,
                rkyv::ser::allocator::ArenaHandle<'a>,
                rkyv::rancor::Error,
            >,
        >,
    {
        rkyv::to_bytes::<rkyv::rancor::Error>(value)
            .expect("encodes")
            .to_vec()
    }

    fn journal() {
        let meta = PublishedMeta {
            first_id: 0,
            lens: vec![3, 4],
            priority: 1,
            published_ms: 1_700_000_000_000,
            visible_at_ms: 1_700_000_000_000,
            expires_at_ms: Some(1_700_000_060_000),
            headers: vec![("h".into(), "v".into())],
            group_id: Some("g".into()),
            dedup_id: Some("d".into()),
            origin: None,
        };
        let events = [
            Event::Delivered { ids: vec![0, 1] },
            Event::DeadLettering { id: 1, reason: 0 },
            Event::Settled { ids: vec![0] },
        ];
        let mut b = BatchBuilder::new(1_700_000_000_000, 256);
        b.push(Some(&rkyv(&meta)), Some(b"abcdefg"), 1_700_000_000_000, &[]);
        let mut journal = b.finish().expect("publish");
        for (i, event) in events.iter().enumerate() {
            let mut b = BatchBuilder::new(1_700_000_000_001, 64);
            b.push(None, Some(&rkyv(event)), 1_700_000_000_001, &[]);
            let mut bytes = b.finish().expect("event");
            batch::set_base_offset(&mut bytes, 1 + i as i64);
            journal.extend_from_slice(&bytes);
        }
        write(
            "queue_journal",
            "publish-deliver-deadletter-settle",
            &journal,
        );
    }

    /// A journal with the events added for durable SQS state: a timed hand-out
    /// (first-receive times) and a queue's move tasks.
    fn journal_timed_delivery_and_move_tasks() {
        let meta = PublishedMeta {
            first_id: 0,
            lens: vec![1, 1],
            priority: 0,
            published_ms: 1_700_000_000_000,
            visible_at_ms: 1_700_000_000_000,
            expires_at_ms: None,
            headers: Vec::new(),
            group_id: None,
            dedup_id: None,
            origin: Some("move:3/7".into()),
        };
        let task = MoveTask {
            id: 2,
            status: MoveStatus::Running,
            destination: Some("back".into()),
            max_per_second: Some(5),
            moved: 1,
            to_move: 2,
            failure: None,
            started_ms: 1_700_000_000_000,
        };
        let events = [
            Event::DeliveredTimed { ids: vec![0, 1] },
            Event::MoveTasks {
                next_id: 2,
                tasks: vec![task],
            },
            Event::Settled { ids: vec![1] },
        ];
        let mut b = BatchBuilder::new(1_700_000_000_000, 256);
        b.push(Some(&rkyv(&meta)), Some(b"ab"), 1_700_000_000_000, &[]);
        let mut journal = b.finish().expect("publish");
        for (i, event) in events.iter().enumerate() {
            let mut b = BatchBuilder::new(1_700_000_000_001, 64);
            b.push(None, Some(&rkyv(event)), 1_700_000_000_001, &[]);
            let mut bytes = b.finish().expect("event");
            batch::set_base_offset(&mut bytes, 1 + i as i64);
            journal.extend_from_slice(&bytes);
        }
        write("queue_journal", "timed-delivery-move-tasks", &journal);
    }

    fn catalog() {
        let config = TopicConfig {
            partitions: 4,
            retention_ms: Some(60_000),
            retention_bytes: None,
            segment_bytes: 1 << 20,
            max_message_bytes: None,
        };
        let catalog = Catalog::default()
            .with_topic("orders", config, 2, 1_700_000_000_000)
            .and_then(|c| c.with_queue("jobs", QueueConfig::default(), 1_700_000_000_000))
            .and_then(|c| {
                c.expect("new queue")
                    .with_exchange("ex", ExchangeMeta::new(ExchangeKind::Topic))
            })
            .and_then(|c| {
                c.expect("new exchange").with_binding(Binding {
                    exchange: "ex".into(),
                    target: BindTarget::Queue("jobs".into()),
                    routing_key: "a.*".into(),
                    headers: Vec::new(),
                    match_all: false,
                })
            })
            .expect("valid catalog")
            .expect("new binding");
        let bytes = serde_json::to_vec_pretty(&catalog).expect("encodes");
        write("catalog", "topic-queue-exchange-binding", &bytes);
        write(
            "catalog",
            "empty",
            b"{\"version\":0,\"next_topic_id\":0,\"topics\":{}}",
        );
    }

    fn offsets_file() {
        let mut file = Vec::new();
        for payload in [
            &br#"{"v":1,"o":[{"t":"orders","p":0,"o":42,"m":""}]}"#[..],
            br#"{"v":1,"o":[{"t":"orders","p":1,"o":7,"m":"meta"},{"t":"t","p":0,"o":-1,"m":""}]}"#,
        ] {
            file.extend_from_slice(&(payload.len() as u32).to_le_bytes());
            file.extend_from_slice(&crc32c::crc32c(payload).to_le_bytes());
            file.extend_from_slice(payload);
        }
        write("group_offsets", "two-commits", &file);
        // The offsets log: a batch of two commits, then one with a tombstone.
        let value = |offset: i64, metadata: &str| {
            Some(OffsetValue {
                offset,
                metadata: metadata.into(),
                commit_time_ms: 1_700_000_000_000,
            })
        };
        let record = |group: &str, partition: i32, value| OffsetRecord {
            group: group.into(),
            topic: "orders".into(),
            partition,
            value,
        };
        let batches = [
            vec![
                record("g", 0, value(42, "")),
                record("g", 1, value(7, "meta")),
            ],
            vec![record("other/é", 3, None)],
        ];
        let mut log = Vec::new();
        for (base, records) in batches.iter().enumerate() {
            let mut batch = encode_batch(records, 1_700_000_000_000)
                .expect("offset records encode")
                .expect("a batch");
            batch::set_base_offset(&mut batch, 2 * base as i64);
            log.extend_from_slice(&batch);
        }
        write("group_offsets", "log-batches", &log);
    }

    /// SQS requests as botocore serializes them (`aws-wire/testdata`: JSON by botocore
    /// 1.43.11, forms by 1.34.89), in the targets' framing: the JSON target's first line
    /// is the `X-Amz-Target`, the query target's the URL query string.
    fn sqs_requests() {
        let testdata = Path::new(env!("CARGO_MANIFEST_DIR")).join("aws-wire/testdata");
        for (wire, target) in [("json", "sqs_json"), ("query", "sqs_query")] {
            let dir = testdata.join(wire);
            let mut names: Vec<_> = std::fs::read_dir(&dir)
                .expect("aws-wire testdata")
                .map(|e| e.expect("testdata entry").path())
                .collect();
            names.sort();
            for path in names {
                let stem = path.file_stem().and_then(|s| s.to_str()).expect("name");
                let body = std::fs::read(&path).expect("fixture");
                let head = if wire == "json" {
                    format!("AmazonSQS.{}", stem.split('-').next().unwrap_or(stem))
                } else {
                    String::new()
                };
                let mut seed = head.into_bytes();
                seed.push(b'\n');
                seed.extend_from_slice(&body);
                write(target, stem, &seed);
            }
        }
        // The Action in the query string, and no newline at all.
        write(
            "sqs_query",
            "action-in-query",
            b"Action=ListQueues&MaxResults=5\nQueueNamePrefix=p",
        );
        write(
            "sqs_query",
            "no-query-line",
            b"Action=PurgeQueue&QueueUrl=u",
        );
        write("sqs_json", "no-target", b"{}");
    }

    /// The botocore captures of `aws-wire/testdata/sigv4` (signed with the fuzz
    /// library's `SIGV4_KEY`).
    pub const SIGV4_CAPTURES: [&str; 4] = [
        "sqs-json-1.43.11",
        "sns-query-1.43.11",
        "sqs-query-1.34.89",
        "sns-query-1.34.89",
    ];

    /// A capture as the bytes the client sent: the captures leave the HTTP version off
    /// the request line.
    fn capture_bytes(name: &str) -> Vec<u8> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("aws-wire/testdata/sigv4")
            .join(format!("{name}.http"));
        let text = std::fs::read(&path).expect("sigv4 capture");
        let line_end = text
            .windows(2)
            .position(|w| w == b"\r\n")
            .expect("request line");
        let mut out = text[..line_end].to_vec();
        out.extend_from_slice(b" HTTP/1.1");
        out.extend_from_slice(&text[line_end..]);
        out
    }

    fn sigv4_requests() {
        for name in SIGV4_CAPTURES {
            write("sigv4", name, &capture_bytes(name));
        }
        // The AWS suite's get-vanilla, signed with another key (refused as unknown).
        write(
            "sigv4",
            "aws-suite-get-vanilla",
            b"GET / HTTP/1.1\r\nHost:example.amazonaws.com\r\nX-Amz-Date:20150830T123600Z\r\nAuthorization:AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31\r\n\r\n",
        );
        write(
            "sigv4",
            "unsigned-payload",
            b"POST /q HTTP/1.1\r\nHost: h\r\nX-Amz-Date: 20261203T214705Z\r\nx-amz-content-sha256: UNSIGNED-PAYLOAD\r\nAuthorization: AWS4-HMAC-SHA256 Credential=AKIDPEREGRINE/20261203/eu-west-3/sqs/aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature=0000000000000000000000000000000000000000000000000000000000000000\r\nContent-Length: 2\r\n\r\n{}",
        );
        write(
            "sigv4",
            "presigned",
            b"GET /?Action=ListQueues&X-Amz-Signature=00 HTTP/1.1\r\nHost: h\r\n\r\n",
        );
    }

    /// Requests on the HTTP port, pipelined as keep-alive clients send them: the SQS
    /// fixtures over JSON (to `/`) and the query protocol (to a queue's URL), SNS
    /// queries, the operator routes, and heads the connection refuses.
    fn http_requests() {
        let testdata = Path::new(env!("CARGO_MANIFEST_DIR")).join("aws-wire/testdata");
        let post = |path: &str, headers: &str, body: &[u8]| {
            let mut req = format!(
                "POST {path} HTTP/1.1\r\nHost: 127.0.0.1:9324\r\n{headers}Content-Length: {}\r\n\r\n",
                body.len()
            )
            .into_bytes();
            req.extend_from_slice(body);
            req
        };
        for (wire, sub) in [("json", "json"), ("query", "query"), ("sns", "sns/query")] {
            let mut names: Vec<_> = std::fs::read_dir(testdata.join(sub))
                .expect("aws-wire testdata")
                .map(|e| e.expect("testdata entry").path())
                .filter(|p| p.is_file())
                .collect();
            names.sort();
            let mut pipelined = Vec::new();
            for path in names {
                let stem = path.file_stem().and_then(|s| s.to_str()).expect("name");
                let body = std::fs::read(&path).expect("fixture");
                let req = match wire {
                    "json" => {
                        let action = stem.split('-').next().unwrap_or(stem);
                        let headers = format!(
                            "X-Amz-Target: AmazonSQS.{action}\r\nContent-Type: application/x-amz-json-1.0\r\n"
                        );
                        post("/", &headers, &body)
                    }
                    "query" => post(
                        "/000000000000/orders",
                        "Content-Type: application/x-www-form-urlencoded; charset=utf-8\r\n",
                        &body,
                    ),
                    _ => post(
                        "/",
                        "Content-Type: application/x-www-form-urlencoded; charset=utf-8\r\n",
                        &body,
                    ),
                };
                write("http_request", &format!("{wire}-{stem}"), &req);
                pipelined.extend_from_slice(&req);
            }
            write("http_request", &format!("{wire}-pipelined"), &pipelined);
        }
        write(
            "http_request",
            "operator-routes",
            b"GET /metrics HTTP/1.1\r\nHost: h\r\n\r\nHEAD /healthz HTTP/1.1\r\n\r\nGET /readyz HTTP/1.0\r\n\r\n",
        );
        write(
            "http_request",
            "action-in-query",
            b"GET /?Action=ListQueues&MaxResults=5 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
        );
        write(
            "http_request",
            "sns-confirm-by-get",
            b"GET /?Action=ConfirmSubscription&TopicArn=arn:aws:sns:us-east-1:000000000000:t&Token=abc HTTP/1.1\r\n\r\n",
        );
        for (name, head) in [
            (
                "chunked",
                "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
            ),
            (
                "expect",
                "POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n",
            ),
            (
                "too-long",
                "POST / HTTP/1.1\r\nContent-Length: 1048577\r\n\r\n",
            ),
            (
                "bad-length",
                "POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
            ),
            (
                "after-keep-alive",
                "GET /healthz HTTP/1.1\r\n\r\nGET\0 / HTTP/1.1\r\n\r\n",
            ),
        ] {
            write("http_request", name, head.as_bytes());
        }
    }

    /// Frames a client sends after the protocol header (`amq-protocol` encodes them): a
    /// whole session (login both ways, tune, open, declares, a publish with every
    /// property, consume, ack, close), and its frames one by one.
    fn amqp_frames() {
        use crate::common::amqp_raw::{self, encode, method_frame, Login};
        use amq_protocol::frame::AMQPFrame;
        use amq_protocol::protocol::{basic, channel, connection, AMQPClass};
        let properties = rich_properties();
        let frames: Vec<(&str, Vec<u8>)> = vec![
            (
                "start-ok-plain",
                method_frame(0, amqp_raw::start_ok(Login::Plain("guest", "guest"))),
            ),
            (
                "start-ok-amqplain",
                method_frame(0, amqp_raw::start_ok(Login::AmqPlain("app", "s3cret"))),
            ),
            (
                "tune-ok",
                method_frame(
                    0,
                    AMQPClass::Connection(connection::AMQPMethod::TuneOk(connection::TuneOk {
                        channel_max: 2047,
                        frame_max: 131_072,
                        heartbeat: 60,
                    })),
                ),
            ),
            (
                "open",
                method_frame(
                    0,
                    AMQPClass::Connection(connection::AMQPMethod::Open(connection::Open {
                        virtual_host: "/".into(),
                    })),
                ),
            ),
            (
                "channel-open",
                method_frame(
                    1,
                    AMQPClass::Channel(channel::AMQPMethod::Open(channel::Open {})),
                ),
            ),
            (
                "queue-declare",
                method_frame(
                    1,
                    amqp_raw::queue_declare(
                        "jobs",
                        false,
                        amqp_raw::int_argument("x-max-length", 10),
                    ),
                ),
            ),
            (
                "exchange-declare",
                method_frame(1, amqp_raw::exchange_declare("ex", "topic", false)),
            ),
            ("publish", method_frame(1, amqp_raw::publish("ex", "a.b"))),
            (
                "content-header",
                encode(&AMQPFrame::Header(
                    1,
                    amq_protocol::frame::AMQPContentHeader {
                        class_id: 60,
                        body_size: 5,
                        properties,
                    },
                )),
            ),
            ("body", encode(&AMQPFrame::Body(1, b"hello".to_vec()))),
            (
                "consume",
                method_frame(
                    1,
                    AMQPClass::Basic(basic::AMQPMethod::Consume(basic::Consume {
                        queue: "jobs".into(),
                        consumer_tag: "c1".into(),
                        no_local: false,
                        no_ack: false,
                        exclusive: false,
                        nowait: false,
                        arguments: amqp_raw::int_argument("x-priority", 3),
                    })),
                ),
            ),
            (
                "ack",
                method_frame(
                    1,
                    AMQPClass::Basic(basic::AMQPMethod::Ack(basic::Ack {
                        delivery_tag: 1,
                        multiple: true,
                    })),
                ),
            ),
            ("heartbeat", encode(&AMQPFrame::Heartbeat)),
            (
                "close",
                method_frame(0, amqp_raw::connection_close(200, "bye")),
            ),
        ];
        let mut session = Vec::new();
        for (name, bytes) in &frames {
            write("amqp_frames", name, bytes);
            session.extend_from_slice(bytes);
        }
        write("amqp_frames", "session", &session);
        // What aborted the broker before field tables' nesting was bounded: a content
        // header whose headers table nests 18,000 deep (tests/abusive_clients.rs).
        let mut header = Vec::new();
        header.extend_from_slice(&60u16.to_be_bytes());
        header.extend_from_slice(&0u16.to_be_bytes());
        header.extend_from_slice(&3u64.to_be_bytes());
        header.extend_from_slice(&0x2000u16.to_be_bytes());
        header.extend_from_slice(&nested_table(18_000));
        let mut frame = vec![2u8, 0, 1];
        frame.extend_from_slice(&(header.len() as u32).to_be_bytes());
        frame.extend_from_slice(&header);
        frame.push(0xCE);
        write("amqp_frames", "nested-content-header", &frame);
    }

    /// A field table nested `depth` deep, with its length prefix.
    fn nested_table(depth: usize) -> Vec<u8> {
        let mut content: Vec<u8> = Vec::new();
        for _ in 0..depth {
            let mut next = vec![1u8, b'k', b'F'];
            next.extend_from_slice(&(content.len() as u32).to_be_bytes());
            next.extend_from_slice(&content);
            content = next;
        }
        let mut table = (content.len() as u32).to_be_bytes().to_vec();
        table.extend_from_slice(&content);
        table
    }

    /// Properties with every field set and a headers table of every value type.
    fn rich_properties() -> amq_protocol::protocol::BasicProperties {
        use amq_protocol::types::{AMQPValue, FieldArray, FieldTable};
        let mut nested = FieldTable::default();
        nested.insert("inner".into(), AMQPValue::LongInt(-7));
        let mut headers = FieldTable::default();
        headers.insert("s".into(), AMQPValue::LongString("text".into()));
        headers.insert("x-delay".into(), AMQPValue::LongLongInt(1500));
        headers.insert("b".into(), AMQPValue::Boolean(true));
        headers.insert("f".into(), AMQPValue::Double(1.5));
        headers.insert("ts".into(), AMQPValue::Timestamp(1_700_000_000));
        headers.insert("t".into(), AMQPValue::FieldTable(nested));
        headers.insert(
            "a".into(),
            AMQPValue::FieldArray(FieldArray::from(vec![AMQPValue::ShortInt(1)])),
        );
        headers.insert("bytes".into(), AMQPValue::ByteArray(vec![0, 0xff].into()));
        amq_protocol::protocol::BasicProperties::default()
            .with_content_type("application/json".into())
            .with_content_encoding("gzip".into())
            .with_headers(headers)
            .with_delivery_mode(2)
            .with_priority(5)
            .with_correlation_id("c-1".into())
            .with_reply_to("replies".into())
            .with_expiration("60000".into())
            .with_message_id("m-1".into())
            .with_timestamp(1_700_000_000)
            .with_type("order".into())
            .with_user_id("guest".into())
            .with_app_id("shop".into())
    }

    /// Stored messages' headers as AMQP deliveries read them: what an AMQP publish
    /// stores (`props::to_headers`), what other protocols store, dead-lettering's.
    fn amqp_headers() {
        let lines = |priority: u8, headers: &[(String, String)]| {
            let mut out = vec![priority];
            let text: Vec<String> = headers.iter().map(|(k, v)| format!("{k}={v}")).collect();
            out.extend_from_slice(text.join("\n").as_bytes());
            out
        };
        let stored = peregrine::amqp::props::to_headers(&rich_properties());
        write("amqp_headers", "amqp-publish", &lines(5, &stored));
        let plain = [
            ("trace".to_string(), "abc".to_string()),
            ("n".to_string(), "1".to_string()),
        ];
        write("amqp_headers", "kafka-headers", &lines(0, &plain));
        let death = [
            ("x-death-reason", "expired"),
            ("x-death-queue", "work"),
            ("x-death-count", "2"),
            ("x-death-time", "1700000000000"),
            (peregrine::engine::ROUTING_KEY_HEADER, "jobs"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()));
        write("amqp_headers", "dead-lettered", &lines(0, &death));
        let hex: String = nested_table(20_000)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let typed = [("amqp-typed-headers".to_string(), hex)];
        write("amqp_headers", "nested-typed-headers", &lines(0, &typed));
    }

    fn sns_deliveries() {
        for (name, seed) in [
            ("plain", &b"http://127.0.0.1:8080/hook\n"[..]),
            ("port-query", b"http://[::1]:9000?x=1\n{\"healthyRetryPolicy\":{\"numRetries\":10,\"minDelayTarget\":1,\"maxDelayTarget\":60,\"numNoDelayRetries\":1,\"numMinDelayRetries\":2,\"numMaxDelayRetries\":3,\"backoffFunction\":\"exponential\"}}"),
            ("topic-policy", b"http://host/p\n{\"http\":{\"defaultHealthyRetryPolicy\":{\"numRetries\":5,\"backoffFunction\":\"geometric\",\"minDelayTarget\":2,\"maxDelayTarget\":20}}}"),
            ("arithmetic", b"http://h:1/\n{\"healthyRetryPolicy\":{\"numRetries\":100,\"backoffFunction\":\"arithmetic\",\"maxDelayTarget\":3600}}"),
        ] {
            write("sns_delivery", name, seed);
        }
    }

    /// `body` as an `acl_requests` frame: a u16 length, then the request with its header.
    fn acl_frame<T: Encodable>(key: ApiKey, version: i16, body: &T) -> Vec<u8> {
        let header = RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version)
            .with_client_id(Some(StrBytes::from_static_str("seed")));
        let mut buf = BytesMut::new();
        encode_request_header_into_buffer(&mut buf, &header).expect("header");
        body.encode(&mut buf, version).expect("body");
        let mut out = (buf.len() as u16).to_be_bytes().to_vec();
        out.extend_from_slice(&buf);
        out
    }

    /// Kafka's codes: resource topic 2, group 3, cluster 4, transactional id 5; pattern
    /// literal 3, prefixed 4 (filters: any 1, match 2); operation all 2, read 3, write 4,
    /// alter 7, describe 8; permission deny 2, allow 3.
    fn acl_creation(
        (rtype, name, pattern): (i8, &'static str, i8),
        (principal, host): (&'static str, &'static str),
        (op, permission): (i8, i8),
    ) -> create_acls_request::AclCreation {
        create_acls_request::AclCreation::default()
            .with_resource_type(rtype)
            .with_resource_name(StrBytes::from_static_str(name))
            .with_resource_pattern_type(pattern)
            .with_principal(StrBytes::from_static_str(principal))
            .with_host(StrBytes::from_static_str(host))
            .with_operation(op)
            .with_permission_type(permission)
    }

    fn acl_delete_filter(
        rtype: i8,
        name: Option<&'static str>,
        pattern: i8,
    ) -> delete_acls_request::DeleteAclsFilter {
        delete_acls_request::DeleteAclsFilter::default()
            .with_resource_type_filter(rtype)
            .with_resource_name_filter(name.map(StrBytes::from_static_str))
            .with_pattern_type_filter(pattern)
            .with_operation(1)
            .with_permission_type(1)
    }

    fn acl_requests() {
        let creations = vec![
            acl_creation((2, "orders", 3), ("User:alice", "*"), (3, 3)),
            acl_creation((2, "ord", 4), ("User:*", "*"), (4, 3)),
            acl_creation((2, "orders-eu", 4), ("User:alice", "10.0.0.1"), (2, 2)),
            acl_creation((2, "*", 3), ("User:bob", "10.0.0.1"), (2, 2)),
            acl_creation((3, "g-", 4), ("User:alice", "::ffff:10.0.0.2"), (8, 3)),
            acl_creation((4, "kafka-cluster", 3), ("User:carol", "*"), (7, 3)),
            acl_creation((5, "tx", 4), ("User:dave", "2001:db8::1"), (4, 3)),
            acl_creation((2, "bad-host", 3), ("User:eve", "nope"), (3, 3)),
        ];
        for version in [1, 3] {
            let create = acl_frame(
                ApiKey::CreateAcls,
                version,
                &CreateAclsRequest::default().with_creations(creations.clone()),
            );
            let describe_match = acl_frame(
                ApiKey::DescribeAcls,
                version,
                &DescribeAclsRequest::default()
                    .with_resource_type_filter(2)
                    .with_resource_name_filter(Some(StrBytes::from_static_str("orders-eu-1")))
                    .with_pattern_type_filter(2)
                    .with_principal_filter(Some(StrBytes::from_static_str("User:alice")))
                    .with_host_filter(Some(StrBytes::from_static_str("10.0.0.1")))
                    .with_operation(3)
                    .with_permission_type(1),
            );
            let describe_all = acl_frame(
                ApiKey::DescribeAcls,
                version,
                &DescribeAclsRequest::default()
                    .with_resource_type_filter(1)
                    .with_pattern_type_filter(1)
                    .with_operation(1)
                    .with_permission_type(1),
            );
            let delete = acl_frame(
                ApiKey::DeleteAcls,
                version,
                &DeleteAclsRequest::default().with_filters(vec![
                    acl_delete_filter(2, Some("ord"), 4),
                    acl_delete_filter(1, Some("g-"), 1),
                ]),
            );
            let grant = [create.clone(), describe_match.clone(), describe_all.clone()].concat();
            write(
                "acl_requests",
                &format!("grant-describe-v{version}"),
                &grant,
            );
            let revoke = [create, delete, describe_match, describe_all].concat();
            write(
                "acl_requests",
                &format!("grant-delete-describe-v{version}"),
                &revoke,
            );
        }
    }

    #[test]
    #[ignore = "writes the seed corpus of the acl_requests target into fuzz/corpus (run once, by hand)"]
    fn write_acl_seed_corpora() {
        acl_requests();
    }

    #[test]
    #[ignore = "writes the seed corpora of the issue 20 targets into fuzz/corpus (run once, by hand)"]
    fn write_issue_20_seed_corpora() {
        sigv4_requests();
        http_requests();
        amqp_frames();
        amqp_headers();
        sns_deliveries();
    }

    #[test]
    #[ignore = "writes the seed journal of the durable SQS state events into fuzz/corpus (run once, by hand)"]
    fn write_durable_sqs_state_seed_corpora() {
        journal_timed_delivery_and_move_tasks();
    }

    #[test]
    #[ignore = "writes the SQS seed corpora into fuzz/corpus (run once, by hand)"]
    fn write_sqs_seed_corpora() {
        sqs_requests();
    }

    #[test]
    #[ignore = "writes the seed corpora into fuzz/corpus (run once, by hand)"]
    fn write_seed_corpora() {
        write_issue_20_seed_corpora();
        acl_requests();
        sqs_requests();
        kafka_requests();
        native_frames();
        batches_and_segments();
        indexes();
        journal();
        catalog();
        offsets_file();
    }
}
