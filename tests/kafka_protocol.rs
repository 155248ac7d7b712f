//! The Kafka protocol at the byte level, for what a well-behaved client never sends:
//! retried and out-of-order idempotent batches, fenced epochs, unsupported versions.

mod common;
use bytes::{BufMut, Bytes, BytesMut};
use common::kafka_raw::RawKafka as Raw;
use common::Broker;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{encode_request_header_into_buffer, Encodable, StrBytes};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use kafka_protocol::ResponseError;
use std::io::Write;

fn idempotent_batch(producer_id: i64, epoch: i16, first_seq: i32, count: i32) -> Bytes {
    let values: Vec<String> = (first_seq..first_seq + count)
        .map(|i| format!("seq-{i}"))
        .collect();
    let values: Vec<&str> = values.iter().map(String::as_str).collect();
    batch(producer_id, epoch, first_seq, &values)
}

/// One uncompressed v2 batch of `values`; `producer_id` -1 for a plain producer.
fn batch(producer_id: i64, epoch: i16, first_seq: i32, values: &[&str]) -> Bytes {
    let records: Vec<Record> = values
        .iter()
        .enumerate()
        .map(|(i, v)| Record {
            transactional: false,
            control: false,
            partition_leader_epoch: 0,
            producer_id,
            producer_epoch: epoch,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: if producer_id < 0 {
                -1
            } else {
                first_seq + i as i32
            },
            timestamp: 1_700_000_000_000,
            key: None,
            value: Some(Bytes::from(v.to_string())),
            headers: Default::default(),
            delete_horizon: false,
        })
        .collect();
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    RecordBatchEncoder::encode(&mut buf, records.iter(), &options).expect("encode");
    buf.freeze()
}

fn init_producer_id(raw: &mut Raw, id: i64, epoch: i16) -> (i16, i64, i16) {
    let req = InitProducerIdRequest::default()
        .with_transactional_id(None)
        .with_transaction_timeout_ms(60_000)
        .with_producer_id(ProducerId(id))
        .with_producer_epoch(epoch);
    let resp: InitProducerIdResponse = raw.call(ApiKey::InitProducerId, 4, &req);
    (resp.error_code, resp.producer_id.0, resp.producer_epoch)
}

#[test]
fn idempotent_batches_dedup_retries_refuse_gaps_and_fence_old_epochs() {
    let b = Broker::start();
    b.create_topic("idem", 1);
    let mut raw = Raw::connect(&b.kafka_addr);
    let (err, pid, epoch) = init_producer_id(&mut raw, -1, -1);
    assert_eq!((err, epoch), (0, 0));
    let (_, other, _) = init_producer_id(&mut raw, -1, -1);
    assert_ne!(pid, other, "every InitProducerId gets its own id");

    assert_eq!(raw.produce("idem", idempotent_batch(pid, 0, 0, 3)), (0, 0));
    assert_eq!(raw.produce("idem", idempotent_batch(pid, 0, 3, 2)), (0, 3));
    // The retry of the first batch: acknowledged with its first offsets, not appended.
    assert_eq!(raw.produce("idem", idempotent_batch(pid, 0, 0, 3)), (0, 0));
    assert_eq!(
        b.client()
            .fetch("idem", 0, 0, 1 << 20, 0)
            .expect("fetch")
            .high_watermark,
        5
    );
    // A gap in the sequence.
    let (code, _) = raw.produce("idem", idempotent_batch(pid, 0, 9, 1));
    assert_eq!(code, ResponseError::OutOfOrderSequenceNumber.code());
    // KIP-360: the same id with the next epoch, sequences start over; the old epoch is
    // fenced from then on.
    let (err, same, bumped) = init_producer_id(&mut raw, pid, 0);
    assert_eq!((err, same, bumped), (0, pid, 1));
    assert_eq!(raw.produce("idem", idempotent_batch(pid, 1, 0, 1)), (0, 5));
    let (code, _) = raw.produce("idem", idempotent_batch(pid, 0, 5, 1));
    assert_eq!(code, ResponseError::InvalidProducerEpoch.code());
    // Producer state survives a restart (kill -9: rebuilt from the log).
    let mut b = b;
    b.restart();
    let mut raw = Raw::connect(&b.kafka_addr);
    assert_eq!(
        raw.produce("idem", idempotent_batch(pid, 1, 0, 1)),
        (0, 5),
        "retry after restart"
    );
    let (code, _) = raw.produce("idem", idempotent_batch(pid, 1, 4, 1));
    assert_eq!(code, ResponseError::OutOfOrderSequenceNumber.code());
    assert_eq!(raw.produce("idem", idempotent_batch(pid, 1, 1, 1)), (0, 6));
    // Ids are never handed out twice, restarts included.
    let (_, after_restart, _) = init_producer_id(&mut raw, -1, -1);
    assert!(after_restart > other, "{after_restart} after {other}");
}

fn init_transactional(raw: &mut Raw, id: &str, version: i16) -> InitProducerIdResponse {
    let req = InitProducerIdRequest::default()
        .with_transactional_id(Some(TransactionalId(StrBytes::from_string(id.into()))))
        .with_transaction_timeout_ms(60_000);
    raw.call(ApiKey::InitProducerId, version, &req)
}

#[test]
fn transactional_ids_get_an_epoch_per_init_and_api_versions_lists_the_transaction_apis() {
    let b = Broker::start();
    let mut raw = Raw::connect(&b.kafka_addr);
    // Each init of the same id: the same producer id, the next epoch (fencing the last).
    let first = init_transactional(&mut raw, "tx", 4);
    assert_eq!((first.error_code, first.producer_epoch), (0, 0));
    let second = init_transactional(&mut raw, "tx", 1);
    assert_eq!(second.error_code, 0);
    assert_eq!(
        (second.producer_id, second.producer_epoch),
        (first.producer_id, 1)
    );
    // Empty is not an id (null is the idempotent producer's).
    let empty = init_transactional(&mut raw, "", 4);
    assert_eq!(empty.error_code, ResponseError::InvalidRequest.code());
    // Every advertised API answers ApiVersions v3 with its range.
    let resp: ApiVersionsResponse = raw.call(
        ApiKey::ApiVersions,
        3,
        &ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("raw"))
            .with_client_software_version(StrBytes::from_static_str("1")),
    );
    assert_eq!(resp.error_code, 0);
    let produce = resp
        .api_keys
        .iter()
        .find(|k| k.api_key == ApiKey::Produce as i16)
        .expect("produce advertised");
    assert_eq!((produce.min_version, produce.max_version), (3, 9));
    // Transactions: the pre-KIP-890 versions librdkafka 2.x speaks, and no later ones.
    for (key, max) in [
        (ApiKey::InitProducerId, 4),
        (ApiKey::AddPartitionsToTxn, 3),
        (ApiKey::AddOffsetsToTxn, 3),
        (ApiKey::EndTxn, 3),
        (ApiKey::TxnOffsetCommit, 3),
        (ApiKey::DescribeTransactions, 0),
        (ApiKey::ListTransactions, 0),
        (ApiKey::DescribeProducers, 0),
    ] {
        let api = resp
            .api_keys
            .iter()
            .find(|k| k.api_key == key as i16)
            .unwrap_or_else(|| panic!("{key:?} advertised"));
        assert_eq!((api.min_version, api.max_version), (0, max), "{key:?}");
    }
    // A client newer than the broker (ApiVersions v4) gets the v0 answer saying so, with
    // the ranges to pick from (KIP-511), on a connection that stays open.
    let resp: ApiVersionsResponse =
        raw.call_answered_as(ApiKey::ApiVersions, 4, &ApiVersionsRequest::default(), 0);
    assert_eq!(resp.error_code, ResponseError::UnsupportedVersion.code());
    assert!(resp
        .api_keys
        .iter()
        .any(|k| k.api_key == ApiKey::Fetch as i16));
    let again: ApiVersionsResponse =
        raw.call(ApiKey::ApiVersions, 0, &ApiVersionsRequest::default());
    assert_eq!(again.error_code, 0);
}

fn plain_batch(values: &[&str]) -> Bytes {
    batch(-1, -1, -1, values)
}

fn produce_request(topic: &str, acks: i16, batch: Bytes) -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(batch))])])
}

fn fetch_request(topic: &str, offset: i64, max_wait_ms: i32, min_bytes: i32) -> FetchRequest {
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    FetchRequest::default()
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(min_bytes)
        .with_max_bytes(1 << 20)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(offset)
                .with_partition_max_bytes(1 << 20)])])
}

#[test]
fn acks_zero_is_never_answered_and_a_bad_crc_is_corrupt_message() {
    let b = Broker::start();
    b.create_topic("quiet", 1);
    let mut raw = Raw::connect(&b.kafka_addr);
    // acks=0: no answer; the next request's answer is the next thing on the wire.
    let req = produce_request("quiet", 0, plain_batch(&["a", "b"]));
    let header = RequestHeader::default()
        .with_request_api_key(ApiKey::Produce as i16)
        .with_request_api_version(9)
        .with_correlation_id(99);
    let mut body = BytesMut::new();
    encode_request_header_into_buffer(&mut body, &header).expect("header");
    req.encode(&mut body, 9).expect("body");
    let mut frame = BytesMut::new();
    frame.put_i32(body.len() as i32);
    frame.extend_from_slice(&body);
    raw.stream.write_all(&frame).expect("send");
    let (code, base) = raw.produce("quiet", plain_batch(&["c"]));
    assert_eq!((code, base), (0, 2), "the acks=0 batch was stored first");
    // A flipped byte in the records: CORRUPT_MESSAGE, nothing stored.
    let mut bad = BytesMut::from(&plain_batch(&["d"])[..]);
    let last = bad.len() - 1;
    bad[last] ^= 0xff;
    let (code, _) = raw.produce("quiet", bad.freeze());
    assert_eq!(code, ResponseError::CorruptMessage.code());
    let resp: ProduceResponse = raw.call(
        ApiKey::Produce,
        9,
        &produce_request("no-such-topic", -1, plain_batch(&["e"])),
    );
    assert_eq!(
        resp.responses[0].partition_responses[0].error_code,
        ResponseError::UnknownTopicOrPartition.code()
    );
    // A batch over message.max.bytes (1 MiB by default): MESSAGE_TOO_LARGE.
    let big = "x".repeat(1_100_000);
    let (code, _) = raw.produce("quiet", plain_batch(&[big.as_str()]));
    assert_eq!(code, ResponseError::MessageTooLarge.code());
    assert_eq!(
        b.client()
            .fetch("quiet", 0, 0, 1 << 20, 0)
            .expect("fetch")
            .high_watermark,
        3
    );
}

#[test]
fn fetch_long_polls_until_data_or_max_wait_and_out_of_range_is_an_error() {
    let b = Broker::start();
    b.create_topic("poll", 1);
    let mut raw = Raw::connect(&b.kafka_addr);
    // Nothing there: the answer waits max_wait_ms, then comes back empty.
    let started = std::time::Instant::now();
    let resp: FetchResponse = raw.call(ApiKey::Fetch, 12, &fetch_request("poll", 0, 400, 1));
    let waited = started.elapsed();
    let part = &resp.responses[0].partitions[0];
    assert_eq!(part.error_code, 0);
    assert!(part.records.as_ref().is_none_or(|r| r.is_empty()));
    assert!(
        waited >= std::time::Duration::from_millis(350),
        "{waited:?}"
    );
    // Data arriving during a long poll answers it at once.
    let addr = b.kafka_addr.clone();
    let producer = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(300));
        let mut raw = Raw::connect(&addr);
        raw.produce("poll", plain_batch(&["late"]))
    });
    let started = std::time::Instant::now();
    let resp: FetchResponse = raw.call(ApiKey::Fetch, 12, &fetch_request("poll", 0, 20_000, 1));
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "answered when data came"
    );
    assert_eq!(producer.join().expect("producer"), (0, 0));
    let part = &resp.responses[0].partitions[0];
    assert_eq!(part.high_watermark, 1);
    assert!(part.records.as_ref().is_some_and(|r| !r.is_empty()));
    // Past the end: OFFSET_OUT_OF_RANGE, so the client applies its reset policy.
    let resp: FetchResponse = raw.call(ApiKey::Fetch, 12, &fetch_request("poll", 5, 0, 1));
    assert_eq!(
        resp.responses[0].partitions[0].error_code,
        ResponseError::OffsetOutOfRange.code()
    );
    // An incremental fetch session that was never handed out.
    let resp: FetchResponse = raw.call(
        ApiKey::Fetch,
        12,
        &fetch_request("poll", 0, 0, 1)
            .with_session_id(42)
            .with_session_epoch(1),
    );
    assert_eq!(
        resp.error_code,
        ResponseError::FetchSessionIdNotFound.code()
    );
}

/// OffsetFetch v7 of one partition: (error code, committed offset).
fn offset_fetch(raw: &mut Raw, group: &str, topic: &str, require_stable: bool) -> (i16, i64) {
    use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
    let req = OffsetFetchRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group.into())))
        .with_require_stable(require_stable)
        .with_topics(Some(vec![OffsetFetchRequestTopic::default()
            .with_name(TopicName(StrBytes::from_string(topic.into())))
            .with_partition_indexes(vec![0])]));
    let resp: OffsetFetchResponse = raw.call(ApiKey::OffsetFetch, 7, &req);
    assert_eq!(resp.error_code, 0, "OffsetFetch");
    let p = &resp.topics[0].partitions[0];
    (p.error_code, p.committed_offset)
}

#[test]
fn offsets_a_transaction_holds_are_unstable_for_require_stable_until_it_commits() {
    use kafka_protocol::messages::txn_offset_commit_request::{
        TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
    };
    let b = Broker::start();
    b.create_topic("in", 1);
    let mut raw = Raw::connect(&b.kafka_addr);
    let init = init_transactional(&mut raw, "stable-tx", 4);
    assert_eq!(init.error_code, 0);
    let (txn_id, group) = (
        TransactionalId(StrBytes::from_static_str("stable-tx")),
        GroupId(StrBytes::from_static_str("stable-group")),
    );
    let add: AddOffsetsToTxnResponse = raw.call(
        ApiKey::AddOffsetsToTxn,
        3,
        &AddOffsetsToTxnRequest::default()
            .with_transactional_id(txn_id.clone())
            .with_producer_id(init.producer_id)
            .with_producer_epoch(init.producer_epoch)
            .with_group_id(group.clone()),
    );
    assert_eq!(add.error_code, 0, "AddOffsetsToTxn");
    let commit: TxnOffsetCommitResponse = raw.call(
        ApiKey::TxnOffsetCommit,
        3,
        &TxnOffsetCommitRequest::default()
            .with_transactional_id(txn_id.clone())
            .with_group_id(group)
            .with_producer_id(init.producer_id)
            .with_producer_epoch(init.producer_epoch)
            .with_generation_id(-1)
            .with_topics(vec![TxnOffsetCommitRequestTopic::default()
                .with_name(TopicName(StrBytes::from_static_str("in")))
                .with_partitions(vec![TxnOffsetCommitRequestPartition::default()
                    .with_partition_index(0)
                    .with_committed_offset(42)])]),
    );
    assert_eq!(commit.topics[0].partitions[0].error_code, 0);
    // Pending: a read_committed consumer is told to wait; others see the last commit.
    let unstable = ResponseError::UnstableOffsetCommit.code();
    assert_eq!(
        offset_fetch(&mut raw, "stable-group", "in", true),
        (unstable, -1)
    );
    assert_eq!(offset_fetch(&mut raw, "stable-group", "in", false), (0, -1));
    let end: EndTxnResponse = raw.call(
        ApiKey::EndTxn,
        3,
        &EndTxnRequest::default()
            .with_transactional_id(txn_id)
            .with_producer_id(init.producer_id)
            .with_producer_epoch(init.producer_epoch)
            .with_committed(true),
    );
    assert_eq!(end.error_code, 0, "EndTxn");
    assert_eq!(offset_fetch(&mut raw, "stable-group", "in", true), (0, 42));
}

#[test]
fn a_fenced_epoch_is_producer_fenced_where_the_version_has_it_else_invalid_producer_epoch() {
    use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
    let b = Broker::start();
    b.create_topic("fenced", 1);
    let mut raw = Raw::connect(&b.kafka_addr);
    let old = init_transactional(&mut raw, "fenced-tx", 4);
    let new = init_transactional(&mut raw, "fenced-tx", 4);
    assert_eq!((old.error_code, new.error_code), (0, 0));
    assert!(new.producer_epoch > old.producer_epoch);
    let txn_id = TransactionalId(StrBytes::from_static_str("fenced-tx"));
    let fenced = ResponseError::ProducerFenced.code();
    let invalid_epoch = ResponseError::InvalidProducerEpoch.code();
    // KIP-588: AddPartitionsToTxn, AddOffsetsToTxn and EndTxn know PRODUCER_FENCED from v2.
    for (version, want) in [
        (0, invalid_epoch),
        (1, invalid_epoch),
        (2, fenced),
        (3, fenced),
    ] {
        let add: AddPartitionsToTxnResponse = raw.call(
            ApiKey::AddPartitionsToTxn,
            version,
            &AddPartitionsToTxnRequest::default()
                .with_v3_and_below_transactional_id(txn_id.clone())
                .with_v3_and_below_producer_id(old.producer_id)
                .with_v3_and_below_producer_epoch(old.producer_epoch)
                .with_v3_and_below_topics(vec![AddPartitionsToTxnTopic::default()
                    .with_name(TopicName(StrBytes::from_static_str("fenced")))
                    .with_partitions(vec![0])]),
        );
        let code =
            add.results_by_topic_v3_and_below[0].results_by_partition[0].partition_error_code;
        assert_eq!(code, want, "AddPartitionsToTxn v{version}");
        let offsets: AddOffsetsToTxnResponse = raw.call(
            ApiKey::AddOffsetsToTxn,
            version,
            &AddOffsetsToTxnRequest::default()
                .with_transactional_id(txn_id.clone())
                .with_producer_id(old.producer_id)
                .with_producer_epoch(old.producer_epoch)
                .with_group_id(GroupId(StrBytes::from_static_str("g"))),
        );
        assert_eq!(offsets.error_code, want, "AddOffsetsToTxn v{version}");
        let end: EndTxnResponse = raw.call(
            ApiKey::EndTxn,
            version,
            &EndTxnRequest::default()
                .with_transactional_id(txn_id.clone())
                .with_producer_id(old.producer_id)
                .with_producer_epoch(old.producer_epoch)
                .with_committed(true),
        );
        assert_eq!(end.error_code, want, "EndTxn v{version}");
    }
    // A partition that does not exist fails alone; the others are not attempted.
    let add: AddPartitionsToTxnResponse = raw.call(
        ApiKey::AddPartitionsToTxn,
        3,
        &AddPartitionsToTxnRequest::default()
            .with_v3_and_below_transactional_id(txn_id)
            .with_v3_and_below_producer_id(new.producer_id)
            .with_v3_and_below_producer_epoch(new.producer_epoch)
            .with_v3_and_below_topics(vec![AddPartitionsToTxnTopic::default()
                .with_name(TopicName(StrBytes::from_static_str("fenced")))
                .with_partitions(vec![0, 7])]),
    );
    let codes: Vec<i16> = add.results_by_topic_v3_and_below[0]
        .results_by_partition
        .iter()
        .map(|p| p.partition_error_code)
        .collect();
    assert_eq!(
        codes,
        vec![
            ResponseError::OperationNotAttempted.code(),
            ResponseError::UnknownTopicOrPartition.code()
        ]
    );
}
