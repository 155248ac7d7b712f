//! Caps on how many topics, partitions, queues, exchanges and consumer groups clients
//! may create (`serve --max-topics`, `--max-partitions`, `--max-queues`,
//! `--max-exchanges`, `--max-groups-per-shard`): the client past a cap gets a clear
//! error that names the flag, redeclares and other clients keep working, and a delete
//! makes room again.

mod common;
use common::kafka_raw::RawKafka;
use common::Broker;
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    ApiKey, CreatePartitionsRequest, CreatePartitionsResponse, CreateTopicsRequest,
    CreateTopicsResponse, MetadataRequest, MetadataResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use peregrine::client::consumer::{Consumer, GroupConfig, StartFrom};
use peregrine::client::records::{decode_batches, encode_batch, OutRecord};
use peregrine::client::{Client, ClientError};
use peregrine::native::messages::{
    Acks, BindingSpec, CommitEntry, ErrorCode, ExchangeType, PublishSpec, QueueSpec, Request,
    Response, TopicSpec,
};
use std::time::{Duration, Instant};

fn topic_spec(name: &str, partitions: i32) -> TopicSpec {
    TopicSpec {
        name: name.into(),
        partitions,
        retention_ms: None,
        retention_bytes: None,
        segment_bytes: None,
    }
}

/// Asserts that `result` is the broker's refusal with `code`, naming `flag`.
fn refused<T: std::fmt::Debug>(result: Result<T, ClientError>, code: ErrorCode, flag: &str) {
    match result {
        Err(ClientError::Broker { code: c, message }) => {
            assert_eq!(c, code, "{message}");
            assert!(message.contains(flag), "'{message}' names {flag}");
        }
        other => panic!("expected a {code:?} refusal naming {flag}, got {other:?}"),
    }
}

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

/// Kafka CreateTopics (v5) of `(name, partitions)`: each topic's (code, message).
fn kafka_create_topics(kafka: &mut RawKafka, topics: &[(&str, i32)]) -> Vec<(i16, String)> {
    kafka_create_topics_as(kafka, topics, false)
}

fn kafka_create_topics_as(
    kafka: &mut RawKafka,
    topics: &[(&str, i32)],
    validate_only: bool,
) -> Vec<(i16, String)> {
    let mut req = CreateTopicsRequest::default();
    req.validate_only = validate_only;
    req.timeout_ms = 10_000;
    req.topics = topics
        .iter()
        .map(|(topic, partitions)| {
            let mut t = CreatableTopic::default();
            t.name = name(topic);
            t.num_partitions = *partitions;
            t.replication_factor = 1;
            t
        })
        .collect();
    let resp: CreateTopicsResponse = kafka.call(ApiKey::CreateTopics, 5, &req);
    resp.topics
        .iter()
        .map(|t| {
            let message = t.error_message.as_ref().map(|m| m.to_string());
            (t.error_code, message.unwrap_or_default())
        })
        .collect()
}

/// Kafka CreatePartitions (v1) growing `topic` to `count`: (code, message).
fn kafka_create_partitions(kafka: &mut RawKafka, topic: &str, count: i32) -> (i16, String) {
    kafka_create_partitions_as(kafka, topic, count, false)
}

fn kafka_create_partitions_as(
    kafka: &mut RawKafka,
    topic: &str,
    count: i32,
    validate_only: bool,
) -> (i16, String) {
    let mut t = CreatePartitionsTopic::default();
    t.name = name(topic);
    t.count = count;
    t.assignments = None;
    let mut req = CreatePartitionsRequest::default();
    req.timeout_ms = 10_000;
    req.topics = vec![t];
    req.validate_only = validate_only;
    let resp: CreatePartitionsResponse = kafka.call(ApiKey::CreatePartitions, 1, &req);
    let r = &resp.results[0];
    let message = r.error_message.as_ref().map(|m| m.to_string());
    (r.error_code, message.unwrap_or_default())
}

/// Produces one record to `topic`/`partition` and reads it back.
fn round_trip(c: &mut Client, topic: &str, partition: i32, value: &str) {
    let record = OutRecord {
        key: None,
        value: bytes::Bytes::from(value.to_string()),
        timestamp_ms: 0,
    };
    let batch = encode_batch(&[record]).expect("encode");
    let (base, _) = c
        .produce(topic, partition, Acks::Leader, &batch)
        .expect("produce")
        .expect("acks=leader is answered");
    let fetched = c.fetch(topic, partition, base, 1 << 20, 0).expect("fetch");
    let records = decode_batches(partition, fetched.batches, base).expect("decode");
    let first = records.first().and_then(|r| r.value.as_deref());
    assert_eq!(first, Some(value.as_bytes()));
}

fn topic_names(c: &mut Client) -> Vec<String> {
    let mut names: Vec<String> = c
        .metadata(None)
        .expect("metadata")
        .into_iter()
        .map(|t| t.name)
        .collect();
    names.sort();
    names
}

#[test]
fn a_topic_past_the_cap_is_refused_on_both_protocols_until_one_is_deleted() {
    let b = Broker::start_with(&["--max-topics", "2"]);
    let mut c = b.client();
    b.create_topic("a", 1);
    b.create_topic("b", 1);

    refused(
        c.create_topic(topic_spec("c", 1)),
        ErrorCode::InvalidRequest,
        "--max-topics",
    );
    // At the cap an existing topic is still "already exists", not the cap.
    refused(
        c.create_topic(topic_spec("a", 1)),
        ErrorCode::TopicExists,
        "'a'",
    );
    let mut kafka = RawKafka::connect(&b.kafka_addr);
    let answers = kafka_create_topics(&mut kafka, &[("c", 1), ("a", 1)]);
    assert_eq!(
        answers[0].0,
        ResponseError::PolicyViolation.code(),
        "{answers:?}"
    );
    assert!(answers[0].1.contains("--max-topics"), "{answers:?}");
    assert_eq!(answers[1].0, ResponseError::TopicAlreadyExists.code());
    // A validate-only creation answers as the creation would.
    let answers = kafka_create_topics_as(&mut kafka, &[("c", 1), ("a", 1)], true);
    assert_eq!(
        answers[0].0,
        ResponseError::PolicyViolation.code(),
        "{answers:?}"
    );
    assert!(answers[0].1.contains("--max-topics"), "{answers:?}");
    assert_eq!(answers[1].0, ResponseError::TopicAlreadyExists.code());

    // Other clients keep working.
    round_trip(&mut b.client(), "a", 0, "still served");
    assert_eq!(topic_names(&mut c), ["a", "b"]);

    c.delete_topic("b").expect("delete");
    let answers = kafka_create_topics(&mut kafka, &[("c", 1)]);
    assert_eq!(answers[0].0, 0, "a delete makes room: {answers:?}");
    refused(
        c.create_topic(topic_spec("d", 1)),
        ErrorCode::InvalidRequest,
        "--max-topics",
    );
    assert_eq!(topic_names(&mut c), ["a", "c"]);
}

/// Waits until the broker's log contains `text`.
fn wait_for_log(b: &Broker, text: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !b.log().contains(text) {
        assert!(
            Instant::now() < deadline,
            "no '{text}' in the log:\n{}",
            b.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_kafka_auto_creation_past_the_cap_is_logged_for_the_operator() {
    let b = Broker::start_with(&["--max-topics", "1", "--auto-create-topics"]);
    b.create_topic("a", 1);
    let mut req = MetadataRequest::default();
    let mut wanted = MetadataRequestTopic::default();
    wanted.name = Some(name("auto"));
    req.topics = Some(vec![wanted]);
    req.allow_auto_topic_creation = true;
    let resp: MetadataResponse = RawKafka::connect(&b.kafka_addr).call(ApiKey::Metadata, 9, &req);
    let auto = resp.topics.iter().find(|t| t.name == Some(name("auto")));
    assert_eq!(
        auto.map(|t| t.error_code),
        Some(ResponseError::UnknownTopicOrPartition.code()),
        "{resp:?}"
    );
    wait_for_log(&b, "--max-topics");
}

#[test]
fn partitions_are_capped_across_all_topics_and_per_topic() {
    let b = Broker::start_with(&["--max-partitions", "6"]);
    let mut c = b.client();
    b.create_topic("wide", 4);

    refused(
        c.create_topic(topic_spec("more", 3)),
        ErrorCode::InvalidPartitions,
        "--max-partitions",
    );
    let grow = Request::CreatePartitions {
        topic: "wide".into(),
        count: 7,
    };
    refused(
        c.call(grow, &[]),
        ErrorCode::InvalidPartitions,
        "--max-partitions",
    );
    let mut kafka = RawKafka::connect(&b.kafka_addr);
    let answers = kafka_create_topics(&mut kafka, &[("more", 3)]);
    assert_eq!(
        answers[0].0,
        ResponseError::InvalidPartitions.code(),
        "{answers:?}"
    );
    assert!(answers[0].1.contains("--max-partitions"), "{answers:?}");
    let (code, message) = kafka_create_partitions(&mut kafka, "wide", 7);
    assert_eq!(code, ResponseError::InvalidPartitions.code(), "{message}");
    assert!(message.contains("--max-partitions"), "{message}");
    // Validate-only requests answer as the real ones would.
    let answers = kafka_create_topics_as(&mut kafka, &[("more", 3)], true);
    assert_eq!(
        answers[0].0,
        ResponseError::InvalidPartitions.code(),
        "{answers:?}"
    );
    let (code, message) = kafka_create_partitions_as(&mut kafka, "wide", 7, true);
    assert_eq!(code, ResponseError::InvalidPartitions.code(), "{message}");
    assert!(message.contains("--max-partitions"), "{message}");
    let answers = kafka_create_topics_as(&mut kafka, &[("more", 2)], true);
    assert_eq!(answers[0].0, 0, "up to the cap validates: {answers:?}");
    // The per-topic bound stays, whatever the total cap.
    let answers = kafka_create_topics(&mut kafka, &[("huge", 10_001)]);
    assert_ne!(answers[0].0, 0, "{answers:?}");
    assert!(answers[0].1.contains("10000"), "{answers:?}");

    // Up to the cap is fine, and what exists keeps serving.
    b.create_topic("more", 2);
    round_trip(&mut c, "wide", 3, "served");
    assert_eq!(c.topic("wide").expect("wide").owners.len(), 4);

    c.delete_topic("more").expect("delete");
    let (code, message) = kafka_create_partitions(&mut kafka, "wide", 6);
    assert_eq!(code, 0, "a delete makes room: {message}");
    let (code, _) = kafka_create_partitions(&mut kafka, "wide", 7);
    assert_eq!(code, ResponseError::InvalidPartitions.code());
}

#[test]
fn queues_and_exchanges_past_their_caps_are_refused_and_redeclares_accepted() {
    let b = Broker::start_with(&[
        "--max-queues",
        "2",
        "--max-exchanges",
        "1",
        "--max-bindings",
        "1",
    ]);
    let mut c = b.client();
    let queue = |name: &str| QueueSpec {
        name: name.into(),
        ..QueueSpec::default()
    };
    c.declare_queue(queue("q1")).expect("q1");
    c.declare_queue(queue("q2")).expect("q2");
    refused(
        c.declare_queue(queue("q3")),
        ErrorCode::InvalidRequest,
        "--max-queues",
    );
    c.declare_queue(queue("q1"))
        .expect("a redeclare at the cap is accepted");

    c.declare_exchange("x1", ExchangeType::Fanout).expect("x1");
    refused(
        c.declare_exchange("x2", ExchangeType::Fanout),
        ErrorCode::InvalidRequest,
        "--max-exchanges",
    );
    c.declare_exchange("x1", ExchangeType::Fanout)
        .expect("a redeclare at the cap is accepted");
    let binding = |key: &str| BindingSpec {
        exchange: "x1".into(),
        queue: Some("q1".into()),
        topic: None,
        routing_key: key.into(),
        headers: Vec::new(),
        match_all: false,
    };
    c.bind(binding("k1")).expect("first binding");
    refused(
        c.bind(binding("k2")),
        ErrorCode::InvalidRequest,
        "--max-bindings",
    );
    c.bind(binding("k1"))
        .expect("the same binding again at the cap is accepted");
    c.unbind(binding("k1")).expect("unbind");
    refused(
        c.bind(binding(&"k".repeat(5000))),
        ErrorCode::InvalidRequest,
        "4096",
    );
    c.bind(binding("k2")).expect("an unbind makes room");

    // Another client's queue keeps working.
    let mut other = b.client();
    other
        .publish("q1", PublishSpec::default(), b"kept")
        .expect("publish");
    let got = other.receive("q1", 1, 5_000, true).expect("receive");
    assert_eq!(got.first().map(|r| r.body.as_ref()), Some(&b"kept"[..]));

    c.delete_queue("q2").expect("delete");
    c.declare_queue(queue("q3")).expect("a delete makes room");
    c.delete_exchange("x1").expect("delete");
    c.declare_exchange("x2", ExchangeType::Direct)
        .expect("a delete makes room");
}

fn commit(c: &mut Client, group: &str, offset: i64) -> Result<(), ClientError> {
    let offsets = vec![CommitEntry {
        topic: "t".into(),
        partition: 0,
        offset,
    }];
    c.commit(group, "", -1, offsets)
}

fn committed(c: &mut Client, group: &str) -> Vec<(i32, i64)> {
    let offsets = c.committed(group, "t").expect("fetch offsets");
    offsets.iter().map(|o| (o.partition, o.offset)).collect()
}

#[test]
fn a_group_past_the_per_shard_cap_is_refused_while_existing_ones_keep_working() {
    // One shard, so every group counts against the same cap.
    let b = Broker::start_with(&["--shards", "1", "--max-groups-per-shard", "2"]);
    b.create_topic("t", 1);
    let config = |group: &str| GroupConfig {
        group: group.into(),
        client_id: "limits".into(),
        session_timeout_ms: 30_000,
        rebalance_timeout_ms: 30_000,
    };
    let mut member =
        Consumer::join(b.client(), "t", StartFrom::Earliest, config("g1")).expect("join g1");
    let mut c = b.client();
    commit(&mut c, "g2", 5).expect("a simple commit creates g2");

    refused(
        commit(&mut c, "g3", 1),
        ErrorCode::InvalidGroup,
        "--max-groups-per-shard",
    );
    refused(
        Consumer::join(b.client(), "t", StartFrom::Earliest, config("g3")).map(|_| ()),
        ErrorCode::InvalidGroup,
        "--max-groups-per-shard",
    );

    // The groups that exist keep committing (g1 had no offset before its member's).
    assert_eq!(committed(&mut c, "g1"), []);
    member.commit().expect("g1's member commits");
    commit(&mut c, "g2", 7).expect("g2 commits");
    assert_eq!(committed(&mut c, "g1"), [(0, 0)]);
    assert_eq!(committed(&mut c, "g2"), [(0, 7)]);

    match c.call(Request::DeleteGroup { group: "g2".into() }, &[]) {
        Ok((Response::Ok, _)) => {}
        other => panic!("delete g2: {other:?}"),
    }
    commit(&mut c, "g3", 3).expect("a delete makes room");
    assert_eq!(committed(&mut c, "g3"), [(0, 3)]);
    member.close().expect("leave g1");
}
