//! Kafka transactions at the byte level (requests encoded by kafka-protocol's client
//! side): the error paths a well-behaved client rarely takes (unknown transactional id,
//! fenced epoch, offsets for a group not in the transaction), two transactions of
//! different ids interleaved on the same partitions, markers across segment rolls,
//! DeleteRecords and kill -9, what ApiVersions advertises, and what Fetch and ListOffsets
//! say with `isolation_level = read_committed` (1).
//!
//! A `read_committed` read here does what a Kafka consumer does with a Fetch answer:
//! it drops control batches, and the batches of each aborted transaction the answer
//! lists, from its first offset up to that producer's abort marker.

mod common;
use bytes::{Buf, BufMut, Bytes, BytesMut};
use common::kafka_raw::{advertised, RawKafka as Raw};
use common::{shared_broker, unique, Broker};
use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::fetch_response::PartitionData;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::txn_offset_commit_request::{
    TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Encodable, StrBytes};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use kafka_protocol::ResponseError;
use peregrine::native::messages::TopicSpec;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// The longest a test waits for a state it polls for.
const TIMEOUT: Duration = Duration::from_secs(30);
/// The transaction timeout these tests ask for: longer than any of them runs, so the
/// broker never aborts one on its own.
const TXN_TIMEOUT_MS: i32 = 60_000;
/// The smallest segment a topic may have (`SEGMENT_BYTES_MIN`): a few hundred KiB of
/// records roll several.
const SMALL_SEGMENT_BYTES: u64 = 64 * 1024;

/// What one Fetch asks for: more than any test's partition holds.
const FETCH_MAX_BYTES: i32 = 4 << 20;

const READ_UNCOMMITTED: i8 = 0;
const READ_COMMITTED: i8 = 1;

fn s(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_string())
}

fn code(e: ResponseError) -> i16 {
    e.code()
}

/// A transactional producer as the broker knows it, and its next sequence per partition.
struct Txn {
    id: String,
    pid: i64,
    epoch: i16,
    sequences: BTreeMap<(String, i32), i32>,
}

/// InitProducerId for `id` (a fresh client: producer id and epoch -1); (error, id, epoch).
fn init_raw(raw: &mut Raw, id: &str, timeout_ms: i32) -> (i16, i64, i16) {
    let req = InitProducerIdRequest::default()
        .with_transactional_id(Some(TransactionalId(s(id))))
        .with_transaction_timeout_ms(timeout_ms)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    let resp: InitProducerIdResponse = raw.call(ApiKey::InitProducerId, 4, &req);
    (resp.error_code, resp.producer_id.0, resp.producer_epoch)
}

/// InitProducerId that must succeed; CONCURRENT_TRANSACTIONS (an earlier transaction of
/// the id still completing) is retried as clients do.
fn init(raw: &mut Raw, id: &str) -> Txn {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let (err, pid, epoch) = init_raw(raw, id, TXN_TIMEOUT_MS);
        if err == code(ResponseError::ConcurrentTransactions) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
            continue;
        }
        assert_eq!(err, 0, "InitProducerId for {id}");
        assert!(pid >= 0 && epoch >= 0, "{pid}/{epoch}");
        return Txn {
            id: id.to_string(),
            pid,
            epoch,
            sequences: BTreeMap::new(),
        };
    }
}

/// AddPartitionsToTxn v3: each partition's error code.
fn add_partitions(raw: &mut Raw, txn: &Txn, topic: &str, partitions: &[i32]) -> Vec<i16> {
    let req = AddPartitionsToTxnRequest::default()
        .with_v3_and_below_transactional_id(TransactionalId(s(&txn.id)))
        .with_v3_and_below_producer_id(ProducerId(txn.pid))
        .with_v3_and_below_producer_epoch(txn.epoch)
        .with_v3_and_below_topics(vec![AddPartitionsToTxnTopic::default()
            .with_name(TopicName(s(topic)))
            .with_partitions(partitions.to_vec())]);
    let resp: AddPartitionsToTxnResponse = raw.call(ApiKey::AddPartitionsToTxn, 3, &req);
    let mut codes = BTreeMap::new();
    for t in &resp.results_by_topic_v3_and_below {
        for p in &t.results_by_partition {
            codes.insert(p.partition_index, p.partition_error_code);
        }
    }
    partitions
        .iter()
        .map(|p| *codes.get(p).unwrap_or_else(|| panic!("no answer for {p}")))
        .collect()
}

fn add_partitions_ok(raw: &mut Raw, txn: &Txn, topic: &str, partitions: &[i32]) {
    let codes = add_partitions(raw, txn, topic, partitions);
    assert!(
        codes.iter().all(|c| *c == 0),
        "AddPartitionsToTxn: {codes:?}"
    );
}

fn add_offsets(raw: &mut Raw, txn: &Txn, group: &str) -> i16 {
    let req = AddOffsetsToTxnRequest::default()
        .with_transactional_id(TransactionalId(s(&txn.id)))
        .with_producer_id(ProducerId(txn.pid))
        .with_producer_epoch(txn.epoch)
        .with_group_id(GroupId(s(group)));
    let resp: AddOffsetsToTxnResponse = raw.call(ApiKey::AddOffsetsToTxn, 3, &req);
    resp.error_code
}

/// TxnOffsetCommit v3 of one partition's offset (a simple consumer: generation -1).
fn txn_offset_commit(
    raw: &mut Raw,
    txn: &Txn,
    group: &str,
    topic: &str,
    partition: i32,
    offset: i64,
) -> i16 {
    txn_offset_commit_as(raw, txn, group, (topic, partition, offset), ("", -1))
}

/// TxnOffsetCommit v3 naming a group member and generation (KIP-447).
fn txn_offset_commit_as(
    raw: &mut Raw,
    txn: &Txn,
    group: &str,
    (topic, partition, offset): (&str, i32, i64),
    (member, generation): (&str, i32),
) -> i16 {
    let req = TxnOffsetCommitRequest::default()
        .with_transactional_id(TransactionalId(s(&txn.id)))
        .with_group_id(GroupId(s(group)))
        .with_producer_id(ProducerId(txn.pid))
        .with_producer_epoch(txn.epoch)
        .with_generation_id(generation)
        .with_member_id(s(member))
        .with_topics(vec![TxnOffsetCommitRequestTopic::default()
            .with_name(TopicName(s(topic)))
            .with_partitions(vec![TxnOffsetCommitRequestPartition::default()
                .with_partition_index(partition)
                .with_committed_offset(offset)
                .with_committed_leader_epoch(-1)])]);
    let resp: TxnOffsetCommitResponse = raw.call(ApiKey::TxnOffsetCommit, 3, &req);
    resp.topics[0].partitions[0].error_code
}

fn end_txn_as(raw: &mut Raw, id: &str, pid: i64, epoch: i16, commit: bool) -> i16 {
    let req = EndTxnRequest::default()
        .with_transactional_id(TransactionalId(s(id)))
        .with_producer_id(ProducerId(pid))
        .with_producer_epoch(epoch)
        .with_committed(commit);
    let resp: EndTxnResponse = raw.call(ApiKey::EndTxn, 3, &req);
    resp.error_code
}

fn end_txn(raw: &mut Raw, txn: &Txn, commit: bool) -> i16 {
    end_txn_as(raw, &txn.id, txn.pid, txn.epoch, commit)
}

/// One uncompressed v2 batch of `values`; transactional when `txn` is given.
fn batch(txn: Option<(i64, i16, i32)>, values: &[String]) -> Bytes {
    let (producer_id, epoch, first_seq) = txn.unwrap_or((-1, -1, -1));
    let records: Vec<Record> = values
        .iter()
        .enumerate()
        .map(|(i, v)| Record {
            transactional: txn.is_some(),
            control: false,
            partition_leader_epoch: 0,
            producer_id,
            producer_epoch: epoch,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: if txn.is_some() {
                first_seq + i as i32
            } else {
                -1
            },
            timestamp: 1_700_000_000_000,
            key: None,
            value: Some(Bytes::from(v.clone())),
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

/// Produce v9 (acks=all) of one batch to one partition: (error code, base offset).
fn produce_batch(
    raw: &mut Raw,
    txn_id: Option<&str>,
    topic: &str,
    partition: i32,
    batch: Bytes,
) -> (i16, i64) {
    let req = ProduceRequest::default()
        .with_transactional_id(txn_id.map(|id| TransactionalId(s(id))))
        .with_acks(-1)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(s(topic)))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(partition)
                .with_records(Some(batch))])]);
    let resp: ProduceResponse = raw.call(ApiKey::Produce, 9, &req);
    let p = &resp.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

/// Produces `values` in the transaction (one batch): its base offset.
fn produce_txn(
    raw: &mut Raw,
    txn: &mut Txn,
    topic: &str,
    partition: i32,
    values: &[String],
) -> i64 {
    let seq = txn
        .sequences
        .entry((topic.to_string(), partition))
        .or_insert(0);
    let first = *seq;
    *seq += values.len() as i32;
    let b = batch(Some((txn.pid, txn.epoch, first)), values);
    let (err, base) = produce_batch(raw, Some(&txn.id.clone()), topic, partition, b);
    assert_eq!(err, 0, "transactional produce to {topic}/{partition}");
    base
}

/// Produces `values` without a transaction (one batch): its base offset.
fn produce_plain(raw: &mut Raw, topic: &str, partition: i32, values: &[String]) -> i64 {
    let (err, base) = produce_batch(raw, None, topic, partition, batch(None, values));
    assert_eq!(err, 0, "produce to {topic}/{partition}");
    base
}

fn values(tag: &str, range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("{tag}{i}")).collect()
}

fn fetch(
    raw: &mut Raw,
    topic: &str,
    partition: i32,
    offset: i64,
    isolation: i8,
    max_bytes: i32,
) -> PartitionData {
    let req = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_min_bytes(1)
        .with_max_bytes(max_bytes)
        .with_isolation_level(isolation)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(s(topic)))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(partition)
                .with_fetch_offset(offset)
                .with_partition_max_bytes(max_bytes)])]);
    let resp: FetchResponse = raw.call(ApiKey::Fetch, 12, &req);
    assert_eq!(resp.error_code, 0);
    let part = resp.responses[0].partitions[0].clone();
    assert_eq!(part.error_code, 0, "fetch {topic}/{partition} at {offset}");
    part
}

/// What a partition reads as from `from` to its end (the last stable offset for
/// `read_committed`).
#[derive(Debug)]
struct Read {
    values: Vec<String>,
    /// (producer id, first offset) of the aborted transactions the answers listed.
    aborted: BTreeSet<(i64, i64)>,
    last_stable_offset: i64,
    high_watermark: i64,
    log_start_offset: i64,
}

/// Fetches from `from` until the end, as a consumer with `isolation` would read it.
fn read(raw: &mut Raw, topic: &str, partition: i32, from: i64, isolation: i8) -> Read {
    read_in(raw, topic, partition, from, isolation, FETCH_MAX_BYTES)
}

/// `read` with at most `max_bytes` per Fetch (the broker still answers one whole batch
/// when the first is larger, as Kafka does).
fn read_in(
    raw: &mut Raw,
    topic: &str,
    partition: i32,
    from: i64,
    isolation: i8,
    max_bytes: i32,
) -> Read {
    let mut batches = Vec::new();
    let mut aborted = BTreeSet::new();
    let mut next = from;
    let deadline = Instant::now() + TIMEOUT;
    let (lso, hw, start) = loop {
        let part = fetch(raw, topic, partition, next, isolation, max_bytes);
        for a in part.aborted_transactions.iter().flatten() {
            aborted.insert((a.producer_id.0, a.first_offset));
        }
        let mut bytes = part.records.clone().unwrap_or_default();
        while bytes.has_remaining() {
            let set = RecordBatchDecoder::decode(&mut bytes).expect("batch");
            if let Some(last) = set.records.iter().map(|r| r.offset).max() {
                next = next.max(last + 1);
            }
            batches.push(set.records);
        }
        let end = if isolation == READ_COMMITTED {
            part.last_stable_offset
        } else {
            part.high_watermark
        };
        if next >= end {
            break (
                part.last_stable_offset,
                part.high_watermark,
                part.log_start_offset,
            );
        }
        assert!(
            Instant::now() < deadline,
            "{topic}/{partition}: at {next} of {end} after {TIMEOUT:?}"
        );
    };
    let values = if isolation == READ_COMMITTED {
        committed_values(&batches, &aborted, from)
    } else {
        batches
            .iter()
            .flatten()
            .filter(|r| r.offset >= from && !r.control)
            .map(value_of)
            .collect()
    };
    Read {
        values,
        aborted,
        last_stable_offset: lso,
        high_watermark: hw,
        log_start_offset: start,
    }
}

fn value_of(r: &Record) -> String {
    String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into_owned()
}

/// Whether a control record is an abort marker (key: version i16, type i16; 0 = abort).
fn is_abort_marker(r: &Record) -> bool {
    r.key
        .as_deref()
        .is_some_and(|k| k.len() >= 4 && k[2..4] == [0, 0])
}

/// Kafka's consumer-side filter: a transactional batch of a producer with an aborted
/// transaction that began at or before it is dropped until that producer's abort
/// marker; control batches are never delivered.
fn committed_values(
    batches: &[Vec<Record>],
    aborted: &BTreeSet<(i64, i64)>,
    from: i64,
) -> Vec<String> {
    let mut pending: Vec<(i64, i64)> = aborted.iter().map(|(p, f)| (*f, *p)).collect();
    pending.sort_unstable();
    let mut pending = pending.into_iter().peekable();
    let mut active = BTreeSet::new();
    let mut out = Vec::new();
    for records in batches {
        let (Some(first), Some(last)) = (records.first(), records.last()) else {
            continue;
        };
        while let Some((_, pid)) = pending.next_if(|(f, _)| *f <= last.offset) {
            active.insert(pid);
        }
        if first.control {
            if is_abort_marker(first) {
                active.remove(&first.producer_id);
            }
            continue;
        }
        if first.transactional && active.contains(&first.producer_id) {
            continue;
        }
        out.extend(records.iter().filter(|r| r.offset >= from).map(value_of));
    }
    out
}

/// ListOffsets v7 LATEST with `isolation`.
fn latest(raw: &mut Raw, topic: &str, partition: i32, isolation: i8) -> i64 {
    list_offset(raw, topic, partition, isolation, -1)
}

/// ListOffsets v7 EARLIEST: the log start offset.
fn earliest(raw: &mut Raw, topic: &str, partition: i32) -> i64 {
    list_offset(raw, topic, partition, READ_UNCOMMITTED, -2)
}

/// ListOffsets v7 of one partition at `timestamp` (-1 latest, -2 earliest).
fn list_offset(raw: &mut Raw, topic: &str, partition: i32, isolation: i8, timestamp: i64) -> i64 {
    let req = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_isolation_level(isolation)
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(TopicName(s(topic)))
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(partition)
                .with_current_leader_epoch(-1)
                .with_timestamp(timestamp)])]);
    let resp: ListOffsetsResponse = raw.call(ApiKey::ListOffsets, 7, &req);
    let p = &resp.topics[0].partitions[0];
    assert_eq!(p.error_code, 0, "ListOffsets {topic}/{partition}");
    p.offset
}

/// DeleteRecords v2 below `offset`: the new low watermark.
fn delete_records(raw: &mut Raw, topic: &str, partition: i32, offset: i64) -> i64 {
    let req = DeleteRecordsRequest::default()
        .with_timeout_ms(10_000)
        .with_topics(vec![DeleteRecordsTopic::default()
            .with_name(TopicName(s(topic)))
            .with_partitions(vec![DeleteRecordsPartition::default()
                .with_partition_index(partition)
                .with_offset(offset)])]);
    let resp: DeleteRecordsResponse = raw.call(ApiKey::DeleteRecords, 2, &req);
    let p = &resp.topics[0].partitions[0];
    assert_eq!(
        p.error_code, 0,
        "DeleteRecords {topic}/{partition} to {offset}"
    );
    p.low_watermark
}

/// The group's committed offset of one partition (-1: none), by OffsetFetch v7.
fn committed_offset(raw: &mut Raw, group: &str, topic: &str, partition: i32) -> i64 {
    let req = OffsetFetchRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_topics(Some(vec![OffsetFetchRequestTopic::default()
            .with_name(TopicName(s(topic)))
            .with_partition_indexes(vec![partition])]));
    let resp: OffsetFetchResponse = raw.call(ApiKey::OffsetFetch, 7, &req);
    assert_eq!(resp.error_code, 0, "OffsetFetch");
    resp.topics[0].partitions[0].committed_offset
}

#[test]
fn end_txn_for_an_unknown_transactional_id_is_invalid_producer_id_mapping() {
    let b = shared_broker();
    let mut raw = Raw::connect(&b.kafka_addr);
    let err = end_txn_as(&mut raw, &unique("never-initialised"), 4242, 0, true);
    assert_eq!(err, code(ResponseError::InvalidProducerIdMapping));
    // A known id with another producer id is the same error.
    let txn = init(&mut raw, &unique("known"));
    let err = end_txn_as(&mut raw, &txn.id, txn.pid + 1000, txn.epoch, false);
    assert_eq!(err, code(ResponseError::InvalidProducerIdMapping));
}

#[test]
fn add_partitions_from_a_fenced_epoch_is_refused_and_the_current_epoch_accepted() {
    let b = shared_broker();
    let topic = unique("fenced");
    b.create_topic(&topic, 2);
    let mut raw = Raw::connect(&b.kafka_addr);
    let id = unique("fenced-txn");
    let old = init(&mut raw, &id);
    let new = init(&mut raw, &id);
    assert_eq!(new.pid, old.pid, "the same id keeps its producer id");
    assert!(new.epoch > old.epoch, "{} after {}", new.epoch, old.epoch);
    let fenced = [
        code(ResponseError::ProducerFenced),
        code(ResponseError::InvalidProducerEpoch),
    ];
    for c in add_partitions(&mut raw, &old, &topic, &[0, 1]) {
        assert!(fenced.contains(&c), "old epoch's AddPartitionsToTxn: {c}");
    }
    assert!(fenced.contains(&add_offsets(&mut raw, &old, "g")));
    assert!(fenced.contains(&end_txn(&mut raw, &old, true)));
    add_partitions_ok(&mut raw, &new, &topic, &[0, 1]);
    assert_eq!(end_txn(&mut raw, &new, true), 0);
}

/// JoinGroup v5 as a new member subscribed to `topic`: its member id and generation.
fn join_group(raw: &mut Raw, group: &str, topic: &str) -> (String, i32) {
    let subscription = ConsumerProtocolSubscription::default().with_topics(vec![s(topic)]);
    // The consumer protocol's metadata: a version, then the subscription at it.
    let mut metadata = BytesMut::new();
    metadata.put_i16(0);
    subscription
        .encode(&mut metadata, 0)
        .expect("subscription encodes");
    let req = JoinGroupRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_session_timeout_ms(60_000)
        .with_rebalance_timeout_ms(1_000)
        .with_member_id(s(""))
        .with_protocol_type(s("consumer"))
        .with_protocols(vec![JoinGroupRequestProtocol::default()
            .with_name(s("range"))
            .with_metadata(metadata.freeze())]);
    let resp: JoinGroupResponse = raw.call(ApiKey::JoinGroup, 5, &req);
    assert_eq!(resp.error_code, 0, "JoinGroup");
    (resp.member_id.to_string(), resp.generation_id)
}

/// KIP-447: a consumer's transactional producer names its member id and generation in
/// TxnOffsetCommit; a member not in the group, or a generation that is not the group's
/// (a zombie whose partitions moved), is refused, and nothing it sent reaches the group.
#[test]
fn txn_offset_commit_from_an_unknown_member_or_old_generation_is_refused() {
    let b = shared_broker();
    let topic = unique("kip447");
    b.create_topic(&topic, 1);
    let group = unique("kip447-group");
    let mut raw = Raw::connect(&b.kafka_addr);
    let (member, generation) = join_group(&mut raw, &group, &topic);
    assert!(generation >= 1, "generation {generation}");
    let mut txn = init(&mut raw, &unique("kip447-txn"));
    add_partitions_ok(&mut raw, &txn, &topic, &[0]);
    produce_txn(&mut raw, &mut txn, &topic, 0, &values("k", 0..3));
    assert_eq!(add_offsets(&mut raw, &txn, &group), 0);
    let offset = (topic.as_str(), 0, 3);
    assert_eq!(
        txn_offset_commit_as(&mut raw, &txn, &group, offset, ("not-a-member", generation)),
        code(ResponseError::UnknownMemberId)
    );
    assert_eq!(
        txn_offset_commit_as(&mut raw, &txn, &group, offset, (&member, generation + 1)),
        code(ResponseError::IllegalGeneration)
    );
    assert_eq!(
        txn_offset_commit_as(&mut raw, &txn, &group, offset, (&member, generation - 1)),
        code(ResponseError::IllegalGeneration)
    );
    assert_eq!(end_txn(&mut raw, &txn, true), 0);
    assert_eq!(
        committed_offset(&mut raw, &group, &topic, 0),
        -1,
        "refused offsets never reach the group"
    );
    // The current member and generation commit.
    assert_eq!(add_offsets(&mut raw, &txn, &group), 0);
    assert_eq!(
        txn_offset_commit_as(&mut raw, &txn, &group, offset, (&member, generation)),
        0
    );
    assert_eq!(end_txn(&mut raw, &txn, true), 0);
    assert_eq!(committed_offset(&mut raw, &group, &topic, 0), 3);
    // A group that does not exist has no members.
    let other = unique("kip447-none");
    assert_eq!(add_offsets(&mut raw, &txn, &other), 0);
    assert_eq!(
        txn_offset_commit_as(&mut raw, &txn, &other, offset, (&member, generation)),
        code(ResponseError::UnknownMemberId)
    );
    assert_eq!(end_txn(&mut raw, &txn, false), 0);
}

#[test]
fn txn_offset_commit_for_a_group_not_added_is_invalid_txn_state() {
    let b = shared_broker();
    let topic = unique("offsets");
    b.create_topic(&topic, 1);
    let group = unique("offsets-group");
    let mut raw = Raw::connect(&b.kafka_addr);
    let mut txn = init(&mut raw, &unique("offsets-txn"));
    add_partitions_ok(&mut raw, &txn, &topic, &[0]);
    produce_txn(&mut raw, &mut txn, &topic, 0, &values("o", 0..2));
    assert_eq!(
        txn_offset_commit(&mut raw, &txn, &group, &topic, 0, 1),
        code(ResponseError::InvalidTxnState)
    );
    assert_eq!(add_offsets(&mut raw, &txn, &group), 0);
    assert_eq!(txn_offset_commit(&mut raw, &txn, &group, &topic, 0, 1), 0);
    // A later offset in the same transaction replaces the earlier one.
    assert_eq!(txn_offset_commit(&mut raw, &txn, &group, &topic, 0, 2), 0);
    assert_eq!(
        committed_offset(&mut raw, &group, &topic, 0),
        -1,
        "not visible before the commit"
    );
    assert_eq!(end_txn(&mut raw, &txn, true), 0);
    assert_eq!(committed_offset(&mut raw, &group, &topic, 0), 2);
    // An aborted transaction's offsets are dropped.
    assert_eq!(add_offsets(&mut raw, &txn, &group), 0);
    assert_eq!(txn_offset_commit(&mut raw, &txn, &group, &topic, 0, 7), 0);
    assert_eq!(end_txn(&mut raw, &txn, false), 0);
    assert_eq!(committed_offset(&mut raw, &group, &topic, 0), 2);
}

#[test]
fn two_interleaved_transactions_on_the_same_partitions_commit_and_abort_apart() {
    let b = shared_broker();
    let topic = unique("interleaved");
    b.create_topic(&topic, 2);
    let mut raw = Raw::connect(&b.kafka_addr);
    let mut kept = init(&mut raw, &unique("kept"));
    let mut dropped = init(&mut raw, &unique("dropped"));
    add_partitions_ok(&mut raw, &kept, &topic, &[0, 1]);
    add_partitions_ok(&mut raw, &dropped, &topic, &[0, 1]);
    let mut dropped_first = BTreeMap::new();
    for round in 0..3 {
        for p in 0..2 {
            produce_txn(
                &mut raw,
                &mut kept,
                &topic,
                p,
                &values(&format!("k{round}-"), 0..2),
            );
            let base = produce_txn(
                &mut raw,
                &mut dropped,
                &topic,
                p,
                &values(&format!("d{round}-"), 0..2),
            );
            dropped_first.entry(p).or_insert(base);
        }
    }
    assert_eq!(end_txn(&mut raw, &kept, true), 0);
    // The other one is still open: nothing after its first record is stable yet.
    for p in 0..2 {
        let r = read(&mut raw, &topic, p, 0, READ_COMMITTED);
        assert_eq!(r.last_stable_offset, dropped_first[&p], "partition {p}");
        assert_eq!(r.values, values("k0-", 0..2), "partition {p}");
    }
    assert_eq!(end_txn(&mut raw, &dropped, false), 0);
    let mut kept_values = Vec::new();
    for round in 0..3 {
        kept_values.extend(values(&format!("k{round}-"), 0..2));
    }
    for p in 0..2 {
        let r = read(&mut raw, &topic, p, 0, READ_COMMITTED);
        assert_eq!(r.values, kept_values, "partition {p}");
        assert_eq!(r.last_stable_offset, r.high_watermark, "partition {p}");
        let expected: BTreeSet<(i64, i64)> = [(dropped.pid, dropped_first[&p])].into();
        assert_eq!(r.aborted, expected, "partition {p}");
        let all = read(&mut raw, &topic, p, 0, READ_UNCOMMITTED);
        assert_eq!(all.values.len(), 12, "partition {p}: {:?}", all.values);
        // One batch per Fetch: each answer lists the aborted transactions of its range.
        let small = read_in(&mut raw, &topic, p, 0, READ_COMMITTED, 1);
        assert_eq!(
            small.values, kept_values,
            "partition {p}, one batch a fetch"
        );
    }
}

#[test]
fn api_versions_lists_exactly_the_transaction_apis_served() {
    let b = shared_broker();
    let apis = advertised(&b.kafka_addr).expect("ApiVersions");
    let transactional = [
        ApiKey::InitProducerId,
        ApiKey::AddPartitionsToTxn,
        ApiKey::AddOffsetsToTxn,
        ApiKey::EndTxn,
        ApiKey::WriteTxnMarkers,
        ApiKey::TxnOffsetCommit,
        ApiKey::DescribeProducers,
        ApiKey::DescribeTransactions,
        ApiKey::ListTransactions,
    ];
    let got: BTreeMap<i16, (i16, i16)> = apis
        .iter()
        .filter(|(key, ..)| transactional.iter().any(|k| *k as i16 == *key))
        .map(|(key, min, max)| (*key, (*min, *max)))
        .collect();
    // Pre-KIP-890 ranges; WriteTxnMarkers is broker-to-broker and not served.
    let want: BTreeMap<i16, (i16, i16)> = [
        (ApiKey::InitProducerId as i16, (0, 4)),
        (ApiKey::AddPartitionsToTxn as i16, (0, 3)),
        (ApiKey::AddOffsetsToTxn as i16, (0, 3)),
        (ApiKey::EndTxn as i16, (0, 3)),
        (ApiKey::TxnOffsetCommit as i16, (0, 3)),
        (ApiKey::DescribeProducers as i16, (0, 0)),
        (ApiKey::DescribeTransactions as i16, (0, 0)),
        (ApiKey::ListTransactions as i16, (0, 0)),
    ]
    .into();
    assert_eq!(got, want);
    let keys: Vec<i16> = apis.iter().map(|(k, ..)| *k).collect();
    let distinct: BTreeSet<i16> = keys.iter().copied().collect();
    assert_eq!(distinct.len(), keys.len(), "an API listed twice: {keys:?}");
}

/// DescribeTransactions v0 of one id: (state, producer id, topics and partitions).
fn describe(raw: &mut Raw, id: &str) -> (String, i64, Vec<(String, Vec<i32>)>) {
    let req =
        DescribeTransactionsRequest::default().with_transactional_ids(vec![TransactionalId(s(id))]);
    let resp: DescribeTransactionsResponse = raw.call(ApiKey::DescribeTransactions, 0, &req);
    let st = &resp.transaction_states[0];
    assert_eq!(st.error_code, 0, "DescribeTransactions {id}");
    let topics = st
        .topics
        .iter()
        .map(|t| (t.topic.0.to_string(), t.partitions.clone()))
        .collect();
    (st.transaction_state.to_string(), st.producer_id.0, topics)
}

/// ListTransactions v0 (no filters): the state of `id`, if listed.
fn listed_state(raw: &mut Raw, id: &str) -> Option<String> {
    let resp: ListTransactionsResponse = raw.call(
        ApiKey::ListTransactions,
        0,
        &ListTransactionsRequest::default(),
    );
    assert_eq!(resp.error_code, 0, "ListTransactions");
    resp.transaction_states
        .iter()
        .find(|t| t.transactional_id.0.as_str() == id)
        .map(|t| t.transaction_state.to_string())
}

/// DescribeProducers v0 of one partition: (producer id, current transaction's first
/// offset or -1) of each producer.
fn producers(raw: &mut Raw, topic: &str, partition: i32) -> Vec<(i64, i64)> {
    use kafka_protocol::messages::describe_producers_request::TopicRequest;
    let req = DescribeProducersRequest::default().with_topics(vec![TopicRequest::default()
        .with_name(TopicName(s(topic)))
        .with_partition_indexes(vec![partition])]);
    let resp: DescribeProducersResponse = raw.call(ApiKey::DescribeProducers, 0, &req);
    let p = &resp.topics[0].partitions[0];
    assert_eq!(p.error_code, 0, "DescribeProducers {topic}/{partition}");
    p.active_producers
        .iter()
        .map(|a| (a.producer_id.0, a.current_txn_start_offset))
        .collect()
}

#[test]
fn read_committed_stops_below_an_open_transaction_and_lists_it_once_aborted() {
    let b = shared_broker();
    let topic = unique("lso");
    b.create_topic(&topic, 1);
    let mut raw = Raw::connect(&b.kafka_addr);
    produce_plain(&mut raw, &topic, 0, &values("p", 0..3));
    let id = unique("lso-txn");
    let mut txn = init(&mut raw, &id);
    add_partitions_ok(&mut raw, &txn, &topic, &[0]);
    assert_eq!(
        produce_txn(&mut raw, &mut txn, &topic, 0, &values("t", 0..3)),
        3
    );

    let r = read(&mut raw, &topic, 0, 0, READ_COMMITTED);
    assert_eq!((r.last_stable_offset, r.high_watermark), (3, 6));
    assert_eq!(r.values, values("p", 0..3));
    assert!(r.aborted.is_empty(), "{:?}", r.aborted);
    let all = read(&mut raw, &topic, 0, 0, READ_UNCOMMITTED);
    assert_eq!(all.values.len(), 6, "{:?}", all.values);
    assert_eq!(latest(&mut raw, &topic, 0, READ_COMMITTED), 3);
    assert_eq!(latest(&mut raw, &topic, 0, READ_UNCOMMITTED), 6);
    // Operators see it open.
    let (state, pid, topics) = describe(&mut raw, &id);
    assert_eq!((state.as_str(), pid), ("Ongoing", txn.pid));
    assert_eq!(topics, vec![(topic.clone(), vec![0])]);
    assert_eq!(listed_state(&mut raw, &id).as_deref(), Some("Ongoing"));
    assert!(producers(&mut raw, &topic, 0).contains(&(txn.pid, 3)));

    assert_eq!(end_txn(&mut raw, &txn, false), 0);
    let r = read(&mut raw, &topic, 0, 0, READ_COMMITTED);
    assert_eq!(
        (r.last_stable_offset, r.high_watermark),
        (7, 7),
        "marker at 6"
    );
    assert_eq!(r.values, values("p", 0..3));
    assert_eq!(r.aborted, [(txn.pid, 3)].into());
    assert_eq!(latest(&mut raw, &topic, 0, READ_COMMITTED), 7);
    let (state, ..) = describe(&mut raw, &id);
    assert_eq!(state, "CompleteAbort");
    assert!(producers(&mut raw, &topic, 0).contains(&(txn.pid, -1)));
    // Reading from inside the aborted range still drops it.
    let r = read(&mut raw, &topic, 0, 4, READ_COMMITTED);
    assert!(r.values.is_empty(), "{:?}", r.values);
}

/// What the `rolls` topic must read as `read_committed` from `from`.
fn check_rolled(raw: &mut Raw, topic: &str, from: i64, want: &[String], aborted: &[(i64, i64)]) {
    let r = read(raw, topic, 0, from, READ_COMMITTED);
    assert_eq!(r.last_stable_offset, r.high_watermark);
    assert!(r.log_start_offset <= from, "{r:?}");
    assert_eq!(r.values.len(), want.len(), "from {from}");
    assert!(r.values == want, "from {from}: read differs");
    for a in aborted {
        assert!(
            r.aborted.contains(a),
            "from {from}: {a:?} not in {:?}",
            r.aborted
        );
    }
    let small = read_in(raw, topic, 0, from, READ_COMMITTED, 1);
    assert!(
        small.values == want,
        "from {from}, one batch a fetch: read differs"
    );
}

#[test]
fn markers_stay_right_across_segment_rolls_delete_records_and_kill_9() {
    let mut b = Broker::start();
    let topic = "rolls";
    b.client()
        .create_topic(TopicSpec {
            name: topic.into(),
            partitions: 1,
            retention_ms: None,
            retention_bytes: None,
            segment_bytes: Some(SMALL_SEGMENT_BYTES),
        })
        .expect("create topic");
    let mut raw = Raw::connect(&b.kafka_addr);
    // Offsets 0-4 aborted (marker 5), 6-10 committed (marker 11), filler from 12 on over
    // several segments, one more aborted transaction after it, then a plain tail.
    let mut t1 = init(&mut raw, &unique("rolls-a"));
    add_partitions_ok(&mut raw, &t1, topic, &[0]);
    assert_eq!(
        produce_txn(&mut raw, &mut t1, topic, 0, &values("a", 0..5)),
        0
    );
    assert_eq!(end_txn(&mut raw, &t1, false), 0);
    let mut t2 = init(&mut raw, &unique("rolls-c"));
    add_partitions_ok(&mut raw, &t2, topic, &[0]);
    assert_eq!(
        produce_txn(&mut raw, &mut t2, topic, 0, &values("c", 0..5)),
        6
    );
    assert_eq!(end_txn(&mut raw, &t2, true), 0);
    let pad = "x".repeat(1000);
    let mut filler = Vec::new();
    for chunk in 0..12 {
        let vals: Vec<String> = (0..20)
            .map(|i| format!("f{}-{pad}", chunk * 20 + i))
            .collect();
        produce_plain(&mut raw, topic, 0, &vals);
        filler.extend(vals);
    }
    let after_filler = 12 + filler.len() as i64;
    let mut t3 = init(&mut raw, &unique("rolls-b"));
    add_partitions_ok(&mut raw, &t3, topic, &[0]);
    assert_eq!(
        produce_txn(&mut raw, &mut t3, topic, 0, &values("b", 0..3)),
        after_filler
    );
    assert_eq!(end_txn(&mut raw, &t3, false), 0);
    produce_plain(&mut raw, topic, 0, &values("tail", 0..2));

    let mut want: Vec<String> = values("c", 0..5);
    want.extend(filler.iter().cloned());
    want.extend(values("tail", 0..2));
    let aborted = [(t1.pid, 0), (t3.pid, after_filler)];
    check_rolled(&mut raw, topic, 0, &want, &aborted);
    let segments = std::fs::read_dir(b.data_dir.join("topics"))
        .expect("topics dir")
        .flatten()
        .filter_map(|d| std::fs::read_dir(d.path().join("0")).ok())
        .flatten()
        .flatten()
        .filter(|f| f.path().extension().is_some_and(|e| e == "log"))
        .count();
    assert!(
        segments >= 3,
        "the partition rolled its segment ({segments} .log files)"
    );

    // Markers and the aborted ranges are durable.
    b.restart();
    let mut raw = Raw::connect(&b.kafka_addr);
    check_rolled(&mut raw, topic, 0, &want, &aborted);

    // The log starts inside the first aborted transaction: its rest stays invisible.
    assert_eq!(delete_records(&mut raw, topic, 0, 2), 2);
    check_rolled(&mut raw, topic, 2, &want, &aborted);
    // Past both early transactions and into the filler (whole segments go).
    let cut = 100;
    assert_eq!(delete_records(&mut raw, topic, 0, cut), cut);
    let later = &want[(cut - 12 + 5) as usize..];
    check_rolled(&mut raw, topic, cut, later, &[(t3.pid, after_filler)]);
    b.restart();
    let mut raw = Raw::connect(&b.kafka_addr);
    check_rolled(&mut raw, topic, cut, later, &[(t3.pid, after_filler)]);
    // And it keeps working: one more committed transaction after all that.
    let mut t4 = init(&mut raw, &unique("rolls-d"));
    add_partitions_ok(&mut raw, &t4, topic, &[0]);
    produce_txn(&mut raw, &mut t4, topic, 0, &values("d", 0..2));
    assert_eq!(end_txn(&mut raw, &t4, true), 0);
    let mut last = later.to_vec();
    last.extend(values("d", 0..2));
    check_rolled(&mut raw, topic, cut, &last, &[(t3.pid, after_filler)]);
}

/// What retention leaves of the `retained` topic must read, `read_committed`, as the
/// plain and committed records at or after the log start, in offset order.
fn check_retained(raw: &mut Raw, topic: &str, produced: &[(i64, Vec<String>, bool)]) -> i64 {
    let start = earliest(raw, topic, 0);
    let want: Vec<String> = produced
        .iter()
        .filter(|(_, _, visible)| *visible)
        .flat_map(|(base, vals, _)| {
            vals.iter()
                .enumerate()
                .filter(move |(i, _)| base + *i as i64 >= start)
                .map(|(_, v)| v.clone())
        })
        .collect();
    let r = read(raw, topic, 0, start, READ_COMMITTED);
    assert_eq!(r.last_stable_offset, r.high_watermark);
    let leaked: Vec<&String> = r.values.iter().filter(|v| v.starts_with('a')).collect();
    assert!(
        leaked.is_empty(),
        "aborted records read: {} of them",
        leaked.len()
    );
    assert_eq!(r.values.len(), want.len(), "from {start}");
    assert!(r.values == want, "from {start}: read differs");
    let small = read_in(raw, topic, 0, start, READ_COMMITTED, 1);
    assert!(
        small.values == want,
        "from {start}, one batch a fetch: read differs"
    );
    start
}

#[test]
fn transactions_spanning_segments_that_retention_deletes_stay_right_across_kill_9() {
    let mut b = Broker::start_with(&["--retention-check-ms", "100"]);
    let topic = "retained";
    b.client()
        .create_topic(TopicSpec {
            name: topic.into(),
            partitions: 1,
            retention_ms: None,
            retention_bytes: Some(4 * SMALL_SEGMENT_BYTES),
            segment_bytes: Some(SMALL_SEGMENT_BYTES),
        })
        .expect("create topic");
    let mut raw = Raw::connect(&b.kafka_addr);
    // One aborted and one committed transaction, each with a batch in every round,
    // between plain records: both span several segments.
    let mut aborted = init(&mut raw, &unique("retained-a"));
    let mut committed = init(&mut raw, &unique("retained-c"));
    add_partitions_ok(&mut raw, &aborted, topic, &[0]);
    add_partitions_ok(&mut raw, &committed, topic, &[0]);
    let pad = "x".repeat(1000);
    // (base offset, values, visible to read_committed) of every batch.
    let mut produced: Vec<(i64, Vec<String>, bool)> = Vec::new();
    for round in 0..20 {
        let plain: Vec<String> = (0..10).map(|i| format!("f{round}-{i}-{pad}")).collect();
        produced.push((produce_plain(&mut raw, topic, 0, &plain), plain, true));
        let a: Vec<String> = (0..2).map(|i| format!("a{round}-{i}-{pad}")).collect();
        produced.push((produce_txn(&mut raw, &mut aborted, topic, 0, &a), a, false));
        let c: Vec<String> = (0..2).map(|i| format!("c{round}-{i}-{pad}")).collect();
        produced.push((produce_txn(&mut raw, &mut committed, topic, 0, &c), c, true));
    }
    assert_eq!(end_txn(&mut raw, &aborted, false), 0);
    assert_eq!(end_txn(&mut raw, &committed, true), 0);
    for round in 0..20 {
        let plain: Vec<String> = (0..10).map(|i| format!("g{round}-{i}-{pad}")).collect();
        produced.push((produce_plain(&mut raw, topic, 0, &plain), plain, true));
    }
    // Retention deletes the oldest segments, with the transactions' first batches. It
    // only deletes sealed segments, and a rolled segment is sealed in the background, so
    // the start can move in several steps: wait until it has not moved for ten checks,
    // or a read could start below a start that moves on under it.
    let deadline = Instant::now() + TIMEOUT;
    let mut seen = (-1, Instant::now());
    loop {
        let start = earliest(&mut raw, topic, 0);
        if start != seen.0 {
            seen = (start, Instant::now());
        } else if start > produced[3].0 && seen.1.elapsed() >= Duration::from_secs(1) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "retention left the log at {start}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let start = check_retained(&mut raw, topic, &produced);
    // Recovery rebuilds the aborted range from a log that no longer has its start.
    b.restart();
    let mut raw = Raw::connect(&b.kafka_addr);
    assert!(check_retained(&mut raw, topic, &produced) >= start);
}

#[test]
fn transaction_timeouts_outside_the_brokers_range_are_refused() {
    let b = shared_broker();
    let mut raw = Raw::connect(&b.kafka_addr);
    let invalid = code(ResponseError::InvalidTransactionTimeout);
    // Kafka's transaction.max.timeout.ms default, 15 minutes, is the broker's maximum.
    for timeout_ms in [0, -1, 900_001] {
        let (err, ..) = init_raw(&mut raw, &unique("timeout-range"), timeout_ms);
        assert_eq!(err, invalid, "timeout {timeout_ms}");
    }
    let (err, ..) = init_raw(&mut raw, &unique("timeout-range"), 900_000);
    assert_eq!(err, 0);
}

#[test]
fn a_retried_end_txn_is_answered_like_the_first_and_the_other_outcome_is_refused() {
    let b = shared_broker();
    let topic = unique("retried");
    b.create_topic(&topic, 1);
    let mut raw = Raw::connect(&b.kafka_addr);
    let mut txn = init(&mut raw, &unique("retried-txn"));
    add_partitions_ok(&mut raw, &txn, &topic, &[0]);
    produce_txn(&mut raw, &mut txn, &topic, 0, &values("r", 0..2));
    assert_eq!(end_txn(&mut raw, &txn, true), 0);
    // The client's retry of a commit whose answer it lost.
    assert_eq!(end_txn(&mut raw, &txn, true), 0);
    assert_eq!(
        end_txn(&mut raw, &txn, false),
        code(ResponseError::InvalidTxnState)
    );
    // One marker only: the two data records and one commit marker.
    let r = read(&mut raw, &topic, 0, 0, READ_COMMITTED);
    assert_eq!(r.high_watermark, 3);
    assert_eq!(r.values, values("r", 0..2));
    // An id nobody initialised is not found by DescribeTransactions.
    let req = DescribeTransactionsRequest::default()
        .with_transactional_ids(vec![TransactionalId(s(&unique("nobody")))]);
    let resp: DescribeTransactionsResponse = raw.call(ApiKey::DescribeTransactions, 0, &req);
    assert_eq!(
        resp.transaction_states[0].error_code,
        code(ResponseError::TransactionalIdNotFound)
    );
}

#[test]
fn a_transaction_open_at_kill_9_is_aborted_on_restart_with_its_offsets_and_fenced() {
    let mut b = Broker::start();
    let topic = "open-at-crash";
    b.create_topic(topic, 2);
    let group = "crash-group";
    let mut raw = Raw::connect(&b.kafka_addr);
    // A committed transaction's offsets survive; the open one's do not appear.
    let id = unique("open-at-crash");
    let mut txn = init(&mut raw, &id);
    add_partitions_ok(&mut raw, &txn, topic, &[0, 1]);
    for p in 0..2 {
        produce_txn(&mut raw, &mut txn, topic, p, &values("kept", 0..2));
    }
    assert_eq!(add_offsets(&mut raw, &txn, group), 0);
    assert_eq!(txn_offset_commit(&mut raw, &txn, group, topic, 0, 2), 0);
    assert_eq!(end_txn(&mut raw, &txn, true), 0);
    add_partitions_ok(&mut raw, &txn, topic, &[0, 1]);
    for p in 0..2 {
        assert_eq!(
            produce_txn(&mut raw, &mut txn, topic, p, &values("open", 0..3)),
            3
        );
    }
    assert_eq!(add_offsets(&mut raw, &txn, group), 0);
    assert_eq!(txn_offset_commit(&mut raw, &txn, group, topic, 0, 5), 0);
    assert_eq!(txn_offset_commit(&mut raw, &txn, group, topic, 1, 5), 0);

    b.restart();
    let mut raw = Raw::connect(&b.kafka_addr);
    // Recovery aborts it: a marker after the open records, the last stable offset moves.
    let deadline = Instant::now() + TIMEOUT;
    for p in 0..2 {
        loop {
            let r = read(&mut raw, topic, p, 0, READ_UNCOMMITTED);
            if r.last_stable_offset == r.high_watermark && r.high_watermark == 7 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "partition {p}: last stable offset {}, end {}",
                r.last_stable_offset,
                r.high_watermark
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let r = read(&mut raw, topic, p, 0, READ_COMMITTED);
        assert_eq!(r.values, values("kept", 0..2), "partition {p}");
        assert_eq!(r.aborted, [(txn.pid, 3)].into(), "partition {p}");
    }
    assert_eq!(committed_offset(&mut raw, group, topic, 0), 2);
    assert_eq!(committed_offset(&mut raw, group, topic, 1), -1);
    // The coordinator moves PrepareAbort -> CompleteAbort once every marker is written,
    // which can come a moment after the markers are readable.
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let (state, pid, _) = describe(&mut raw, &id);
        assert_eq!(pid, txn.pid);
        if state == "CompleteAbort" {
            break;
        }
        assert_eq!(state, "PrepareAbort");
        assert!(Instant::now() < deadline, "still {state}");
        std::thread::sleep(Duration::from_millis(50));
    }
    // The epoch was bumped by the abort: the instance from before the crash is fenced.
    let fenced = [
        code(ResponseError::ProducerFenced),
        code(ResponseError::InvalidProducerEpoch),
    ];
    let err = end_txn(&mut raw, &txn, true);
    assert!(fenced.contains(&err), "EndTxn from before the crash: {err}");
    let next = init(&mut raw, &id);
    assert_eq!(next.pid, txn.pid);
    assert!(
        next.epoch > txn.epoch + 1,
        "{} after {}",
        next.epoch,
        txn.epoch
    );
}

#[test]
fn transactional_batches_keep_the_idempotence_checks_and_a_new_epoch_starts_at_sequence_0() {
    let b = shared_broker();
    let topic = unique("idempotent");
    b.create_topic(&topic, 1);
    let mut raw = Raw::connect(&b.kafka_addr);
    let id = unique("idempotent-txn");
    let mut txn = init(&mut raw, &id);
    add_partitions_ok(&mut raw, &txn, &topic, &[0]);
    let first = values("i", 0..3);
    assert_eq!(produce_txn(&mut raw, &mut txn, &topic, 0, &first), 0);
    // The retry of that batch: answered with its offset, not appended again.
    let retry = batch(Some((txn.pid, txn.epoch, 0)), &first);
    assert_eq!(produce_batch(&mut raw, Some(&id), &topic, 0, retry), (0, 0));
    // A gap in the sequence.
    let gap = batch(Some((txn.pid, txn.epoch, 7)), &values("gap", 0..1));
    let (err, _) = produce_batch(&mut raw, Some(&id), &topic, 0, gap);
    assert_eq!(err, code(ResponseError::OutOfOrderSequenceNumber));
    assert_eq!(end_txn(&mut raw, &txn, true), 0);
    // The next instance (epoch bumped) starts its sequence over.
    let mut next = init(&mut raw, &id);
    add_partitions_ok(&mut raw, &next, &topic, &[0]);
    assert_eq!(
        produce_txn(&mut raw, &mut next, &topic, 0, &values("n", 0..1)),
        4
    );
    // The older epoch is fenced on produce too.
    let old = batch(Some((txn.pid, txn.epoch, 3)), &values("old", 0..1));
    let (err, _) = produce_batch(&mut raw, Some(&id), &topic, 0, old);
    let fenced = [
        code(ResponseError::ProducerFenced),
        code(ResponseError::InvalidProducerEpoch),
    ];
    assert!(fenced.contains(&err), "produce from the old epoch: {err}");
    assert_eq!(end_txn(&mut raw, &next, true), 0);
    let r = read(&mut raw, &topic, 0, 0, READ_COMMITTED);
    let mut want = first;
    want.extend(values("n", 0..1));
    assert_eq!(r.values, want);
}

/// Kafka's groups-per-transaction bound here (`GROUPS_PER_TXN_MAX`).
const GROUPS_PER_TXN: usize = 100;

#[test]
fn a_transaction_takes_offsets_of_at_most_100_groups_and_commits_them_all() {
    let b = shared_broker();
    let topic = unique("many-groups");
    b.create_topic(&topic, 1);
    let mut raw = Raw::connect(&b.kafka_addr);
    let txn = init(&mut raw, &unique("many-groups-txn"));
    let groups: Vec<String> = (0..=GROUPS_PER_TXN)
        .map(|i| unique(&format!("g{i}")))
        .collect();
    for g in &groups[..GROUPS_PER_TXN] {
        assert_eq!(add_offsets(&mut raw, &txn, g), 0, "group {g}");
        assert_eq!(txn_offset_commit(&mut raw, &txn, g, &topic, 0, 1), 0);
    }
    assert_eq!(
        add_offsets(&mut raw, &txn, &groups[GROUPS_PER_TXN]),
        code(ResponseError::InvalidRequest),
        "group {} of {GROUPS_PER_TXN}",
        GROUPS_PER_TXN + 1
    );
    assert_eq!(end_txn(&mut raw, &txn, true), 0);
    for g in &groups[..GROUPS_PER_TXN] {
        assert_eq!(committed_offset(&mut raw, g, &topic, 0), 1, "group {g}");
    }
    assert_eq!(
        committed_offset(&mut raw, &groups[GROUPS_PER_TXN], &topic, 0),
        -1
    );
}

#[test]
fn transactional_ids_past_the_per_shard_cap_are_refused() {
    let cap = 2;
    let b = Broker::start_with(&["--max-transactional-ids-per-shard", &cap.to_string()]);
    let mut raw = Raw::connect(&b.kafka_addr);
    let mut accepted = Vec::new();
    for i in 0..10 {
        let id = unique(&format!("capped-{i}"));
        let (err, ..) = init_raw(&mut raw, &id, TXN_TIMEOUT_MS);
        if err == 0 {
            accepted.push(id);
        } else {
            assert_eq!(err, code(ResponseError::InvalidRequest), "id {i}");
        }
    }
    // Two shards, two ids each (an id with an open or recent transaction is never
    // dropped to make room).
    assert!(
        (1..=2 * cap).contains(&accepted.len()),
        "{} ids accepted",
        accepted.len()
    );
    // The accepted ids keep working.
    for id in &accepted {
        let (err, ..) = init_raw(&mut raw, id, TXN_TIMEOUT_MS);
        assert_eq!(err, 0, "{id} again");
    }
}

#[test]
fn a_topic_deleted_inside_a_transaction_does_not_stop_its_commit() {
    let b = shared_broker();
    let kept = unique("kept-topic");
    let deleted = unique("deleted-topic");
    b.create_topic(&kept, 1);
    b.create_topic(&deleted, 2);
    let mut raw = Raw::connect(&b.kafka_addr);
    let id = unique("deleted-txn");
    let mut txn = init(&mut raw, &id);
    add_partitions_ok(&mut raw, &txn, &kept, &[0]);
    add_partitions_ok(&mut raw, &txn, &deleted, &[0, 1]);
    produce_txn(&mut raw, &mut txn, &kept, 0, &values("k", 0..2));
    for p in 0..2 {
        produce_txn(&mut raw, &mut txn, &deleted, p, &values("d", 0..2));
    }
    b.client().delete_topic(&deleted).expect("delete topic");
    // Kafka skips the markers of partitions that no longer exist.
    assert_eq!(end_txn(&mut raw, &txn, true), 0);
    let r = read(&mut raw, &kept, 0, 0, READ_COMMITTED);
    assert_eq!(r.values, values("k", 0..2));
    assert_eq!(r.last_stable_offset, r.high_watermark);
    let (state, ..) = describe(&mut raw, &id);
    assert_eq!(state, "CompleteCommit");
    // The id goes on.
    let next = init(&mut raw, &id);
    add_partitions_ok(&mut raw, &next, &kept, &[0]);
    assert_eq!(end_txn(&mut raw, &next, false), 0);
}
