//! Kafka transactions (exactly-once, issue 18): InitProducerId with a transactional id,
//! AddPartitionsToTxn, AddOffsetsToTxn, TxnOffsetCommit and EndTxn for producers;
//! DescribeTransactions, ListTransactions and DescribeProducers for operators.
//!
//! Each request becomes one call on the engine, which runs it on the coordinator shard
//! of the transactional id (or the group, or the partition) whichever shard the client
//! reached. Only the pre-KIP-890 protocol is served (`apis`): AddPartitionsToTxn v0-3
//! (one transaction per request, from the client), AddOffsetsToTxn, TxnOffsetCommit and
//! EndTxn v0-3.
//!
//! A fenced producer is told PRODUCER_FENCED where the request's version has that code,
//! INVALID_PRODUCER_EPOCH before (`errors::txn_code`). TxnOffsetCommit v3's member id
//! and generation are checked against the group (KIP-447: UNKNOWN_MEMBER_ID,
//! ILLEGAL_GENERATION), so a consumer-producer whose partitions moved cannot commit
//! their offsets; the offsets are applied at commit without further member checks.
//!
//! With `--acls`, as Kafka: every producer request needs Write on its transactional id
//! (TRANSACTIONAL_ID_AUTHORIZATION_FAILED), AddPartitionsToTxn Write on each topic,
//! AddOffsetsToTxn and TxnOffsetCommit Read on the group (and TxnOffsetCommit Read on
//! each topic); DescribeTransactions and ListTransactions show the ids the client may
//! Describe, DescribeProducers needs Read on the topic.

use super::acls::{self, Op};
use super::{errors, str_bytes, Ctx};
use crate::engine::transactions::{TxnListing, TxnProducer};
use crate::engine::{
    CommitEntry, EngineError, Object, ProducerDescription, TxnDescription, TxnState,
};
use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::describe_producers_response::{
    PartitionResponse, ProducerState, TopicResponse,
};
use kafka_protocol::messages::describe_transactions_response::{TopicData, TransactionState};
use kafka_protocol::messages::list_transactions_response::TransactionState as ListedTransaction;
use kafka_protocol::messages::txn_offset_commit_request::TxnOffsetCommitRequestTopic;
use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

/// First versions that carry PRODUCER_FENCED (KIP-588).
const PRODUCER_FENCED_SINCE_INIT: i16 = 4;
const PRODUCER_FENCED_SINCE_ADD: i16 = 2;
const PRODUCER_FENCED_SINCE_END: i16 = 2;

/// Kafka states ListTransactions accepts as filters that no transaction here is ever
/// in (this coordinator fences inside one step and removes ids outright).
const STATES_NEVER_HELD: &[&str] = &["PrepareEpochFence", "Dead"];

/// Every state a transaction here can be in, by its Kafka name.
const STATES: [TxnState; 6] = [
    TxnState::Empty,
    TxnState::Ongoing,
    TxnState::PrepareCommit,
    TxnState::PrepareAbort,
    TxnState::CompleteCommit,
    TxnState::CompleteAbort,
];

fn producer(
    transactional_id: &TransactionalId,
    producer_id: ProducerId,
    epoch: i16,
) -> TxnProducer {
    TxnProducer {
        transactional_id: transactional_id.0.to_string(),
        producer_id: producer_id.0,
        epoch,
    }
}

fn outcome_code(result: &Result<(), EngineError>, producer_fenced_known: bool) -> i16 {
    match result {
        Ok(()) => errors::NONE,
        Err(e) => errors::txn_code(e, producer_fenced_known),
    }
}

/// InitProducerId with a (non-empty) transactional id: the id's producer id and its
/// next epoch, after the transaction an older instance left open is aborted.
pub async fn init_producer_id(
    ctx: &Ctx,
    req: InitProducerIdRequest,
    version: i16,
) -> InitProducerIdResponse {
    let transactional_id = req.transactional_id.as_ref().map_or("", |t| t.0.as_str());
    // v0-2 have no producer id/epoch: a fresh start, as -1/-1 says from v3 on (KIP-360).
    let (producer_id, epoch) = if version >= 3 {
        (req.producer_id.0, req.producer_epoch)
    } else {
        (-1, -1)
    };
    let answer = InitProducerIdResponse::default();
    if let Err((code, _)) = acls::check_transactional_id(ctx, Op::Write, transactional_id) {
        return answer
            .with_error_code(code)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1);
    }
    let init = if transactional_id.is_empty() {
        // As Kafka: an empty id is neither idempotent-only (null) nor a usable id.
        Err(EngineError::InvalidRequest(
            "an empty transactional id (send null for an idempotent producer)".into(),
        ))
    } else {
        ctx.engine
            .init_transactions(
                transactional_id,
                req.transaction_timeout_ms,
                producer_id,
                epoch,
            )
            .await
    };
    match init {
        Ok((producer_id, epoch)) => answer
            .with_producer_id(ProducerId(producer_id))
            .with_producer_epoch(epoch),
        Err(e) => {
            tracing::debug!(transactional_id, "InitProducerId refused: {e}");
            answer
                .with_error_code(errors::txn_code(&e, version >= PRODUCER_FENCED_SINCE_INIT))
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1)
        }
    }
}

/// The codes of AddPartitionsToTxn, one per requested partition in request order, from
/// why each partition cannot be added (none: it can). As Kafka does, the partitions that
/// cannot be added (a topic the client may not write, a partition that does not exist)
/// are named with their code and the others OPERATION_NOT_ATTEMPTED, without adding any;
/// otherwise the engine's one answer applies to all of them (it adds all or none).
fn add_partition_codes(refused: &[Option<i16>], added: impl FnOnce() -> Option<i16>) -> Vec<i16> {
    if refused.iter().all(Option::is_none) {
        let code = added().unwrap_or(errors::NONE);
        return vec![code; refused.len()];
    }
    refused
        .iter()
        .map(|r| r.unwrap_or(ResponseError::OperationNotAttempted.code()))
        .collect()
}

pub async fn add_partitions(
    ctx: &Ctx,
    req: AddPartitionsToTxnRequest,
    version: i16,
) -> AddPartitionsToTxnResponse {
    let wanted: Vec<(String, i32)> = req
        .v3_and_below_topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| (t.name.0.to_string(), *p)))
        .collect();
    let txn_refused =
        acls::check_transactional_id(ctx, Op::Write, req.v3_and_below_transactional_id.0.as_str())
            .err()
            .map(|(code, _)| code);
    let refused: Vec<Option<i16>> = wanted
        .iter()
        .map(|(topic, partition)| {
            let exists = ctx
                .engine
                .owner(Object::Partition {
                    topic,
                    partition: *partition,
                })
                .is_ok();
            if let Some(code) = txn_refused {
                Some(code)
            } else if !acls::topic(ctx, Op::Write, topic) {
                Some(ResponseError::TopicAuthorizationFailed.code())
            } else {
                (!exists).then_some(ResponseError::UnknownTopicOrPartition.code())
            }
        })
        .collect();
    let code = if refused.iter().all(Option::is_none) {
        let txn = producer(
            &req.v3_and_below_transactional_id,
            req.v3_and_below_producer_id,
            req.v3_and_below_producer_epoch,
        );
        let added = ctx.engine.add_partitions_to_txn(txn, wanted).await;
        if let Err(e) = &added {
            tracing::debug!(transactional_id = %req.v3_and_below_transactional_id.0,
                "AddPartitionsToTxn refused: {e}");
        }
        Some(outcome_code(&added, version >= PRODUCER_FENCED_SINCE_ADD))
    } else {
        None
    };
    let codes = add_partition_codes(&refused, || code);
    AddPartitionsToTxnResponse::default()
        .with_results_by_topic_v3_and_below(partition_results(req.v3_and_below_topics, codes))
}

/// AddPartitionsToTxn's results: `codes` in request order, topic by topic.
fn partition_results(
    topics: Vec<AddPartitionsToTxnTopic>,
    codes: Vec<i16>,
) -> Vec<AddPartitionsToTxnTopicResult> {
    let mut codes = codes.into_iter();
    topics
        .into_iter()
        .map(|t| {
            let results = t
                .partitions
                .iter()
                .map(|p| {
                    AddPartitionsToTxnPartitionResult::default()
                        .with_partition_index(*p)
                        .with_partition_error_code(codes.next().unwrap_or(errors::NONE))
                })
                .collect();
            AddPartitionsToTxnTopicResult::default()
                .with_name(t.name)
                .with_results_by_partition(results)
        })
        .collect()
}

pub async fn add_offsets(
    ctx: &Ctx,
    req: AddOffsetsToTxnRequest,
    version: i16,
) -> AddOffsetsToTxnResponse {
    let txn = producer(&req.transactional_id, req.producer_id, req.producer_epoch);
    let allowed = acls::check_transactional_id(ctx, Op::Write, &txn.transactional_id)
        .and_then(|()| acls::check_group(ctx, Op::Read, req.group_id.0.as_str()));
    if let Err((code, _)) = allowed {
        return AddOffsetsToTxnResponse::default().with_error_code(code);
    }
    let added = ctx
        .engine
        .add_offsets_to_txn(txn, req.group_id.0.as_str())
        .await;
    AddOffsetsToTxnResponse::default()
        .with_error_code(outcome_code(&added, version >= PRODUCER_FENCED_SINCE_ADD))
}

/// TxnOffsetCommit: offsets the transaction commits for its group, applied when it
/// commits. The engine takes all of them or none: one code for every partition.
pub async fn offset_commit(ctx: &Ctx, mut req: TxnOffsetCommitRequest) -> TxnOffsetCommitResponse {
    let refused = acls::check_transactional_id(ctx, Op::Write, req.transactional_id.0.as_str())
        .and_then(|()| acls::check_group(ctx, Op::Read, req.group_id.0.as_str()));
    if let Err((code, _)) = refused {
        return TxnOffsetCommitResponse::default().with_topics(commit_results(req.topics, code));
    }
    // A topic the client may not read is refused alone; the others are committed.
    let (topics, unreadable): (Vec<_>, Vec<_>) = std::mem::take(&mut req.topics)
        .into_iter()
        .partition(|t| acls::topic(ctx, Op::Read, t.name.0.as_str()));
    let code = ResponseError::TopicAuthorizationFailed.code();
    if topics.is_empty() && !unreadable.is_empty() {
        return TxnOffsetCommitResponse::default().with_topics(commit_results(unreadable, code));
    }
    req.topics = topics;
    let mut answer = txn_offset_commit(ctx, req).await;
    answer.topics.extend(commit_results(unreadable, code));
    answer
}

/// TxnOffsetCommit of offsets the client may commit.
async fn txn_offset_commit(ctx: &Ctx, req: TxnOffsetCommitRequest) -> TxnOffsetCommitResponse {
    let offsets: Vec<CommitEntry> = req
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(|p| CommitEntry {
                topic: t.name.0.to_string(),
                partition: p.partition_index,
                offset: p.committed_offset,
            })
        })
        .collect();
    let txn = producer(&req.transactional_id, req.producer_id, req.producer_epoch);
    let group = req.group_id.0.as_str();
    // v3 (KIP-447): a member's producer names its member id and generation, and a
    // zombie whose partitions moved to another member is refused here.
    let mut committed = Ok(());
    if !req.member_id.is_empty() || req.generation_id >= 0 {
        committed = ctx
            .engine
            .check_txn_member(group, req.member_id.as_str(), req.generation_id)
            .await;
    }
    if committed.is_ok() {
        committed = ctx.engine.txn_offset_commit(txn, group, offsets).await;
    }
    // No TxnOffsetCommit version has PRODUCER_FENCED.
    let code = outcome_code(&committed, false);
    TxnOffsetCommitResponse::default().with_topics(commit_results(req.topics, code))
}

/// TxnOffsetCommit's results: `code` for every partition asked for.
fn commit_results(
    topics: Vec<TxnOffsetCommitRequestTopic>,
    code: i16,
) -> Vec<TxnOffsetCommitResponseTopic> {
    topics
        .into_iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    TxnOffsetCommitResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(code)
                })
                .collect();
            TxnOffsetCommitResponseTopic::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect()
}

/// EndTxn: answered once the decision, every marker and the offsets are durable.
pub async fn end(ctx: &Ctx, req: EndTxnRequest, version: i16) -> EndTxnResponse {
    let txn = producer(&req.transactional_id, req.producer_id, req.producer_epoch);
    if let Err((code, _)) = acls::check_transactional_id(ctx, Op::Write, &txn.transactional_id) {
        return EndTxnResponse::default().with_error_code(code);
    }
    let ended = ctx.engine.end_txn(txn, req.committed).await;
    if let Err(e) = &ended {
        tracing::debug!(transactional_id = %req.transactional_id.0,
            commit = req.committed, "EndTxn refused: {e}");
    }
    EndTxnResponse::default()
        .with_error_code(outcome_code(&ended, version >= PRODUCER_FENCED_SINCE_END))
}

/// A transaction's partitions grouped by topic, in the (sorted) order given.
fn topic_data(partitions: &[(String, i32)]) -> Vec<TopicData> {
    let mut topics: Vec<TopicData> = Vec::new();
    for (topic, partition) in partitions {
        match topics.last_mut() {
            Some(t) if t.topic.0.as_str() == topic => t.partitions.push(*partition),
            _ => topics.push(
                TopicData::default()
                    .with_topic(TopicName(str_bytes(topic)))
                    .with_partitions(vec![*partition]),
            ),
        }
    }
    topics
}

fn described(id: String, outcome: Result<TxnDescription, EngineError>) -> TransactionState {
    let state = TransactionState::default().with_transactional_id(TransactionalId(str_bytes(&id)));
    match outcome {
        Ok(d) => state
            .with_transaction_state(StrBytes::from_static_str(d.state.kafka_name()))
            .with_transaction_timeout_ms(d.timeout_ms)
            .with_transaction_start_time_ms(d.start_ms)
            .with_producer_id(ProducerId(d.producer_id))
            .with_producer_epoch(d.epoch)
            .with_topics(topic_data(&d.partitions)),
        // Kafka's DescribeTransactions names an unknown id TRANSACTIONAL_ID_NOT_FOUND.
        Err(EngineError::UnknownTransactionalId(_)) => {
            state.with_error_code(ResponseError::TransactionalIdNotFound.code())
        }
        Err(e) => state.with_error_code(errors::code(&e)),
    }
}

pub async fn describe(ctx: &Ctx, req: DescribeTransactionsRequest) -> DescribeTransactionsResponse {
    let (ids, refused): (Vec<String>, Vec<String>) = req
        .transactional_ids
        .into_iter()
        .map(|id| id.0.to_string())
        .partition(|id| acls::transactional_id(ctx, Op::Describe, id));
    let mut states: Vec<TransactionState> = ctx
        .engine
        .describe_transactions(ids)
        .await
        .into_iter()
        .map(|(id, outcome)| described(id, outcome))
        .collect();
    let code = ResponseError::TransactionalIdAuthorizationFailed.code();
    states.extend(refused.into_iter().map(|id| {
        TransactionState::default()
            .with_transactional_id(TransactionalId(str_bytes(&id)))
            .with_error_code(code)
    }));
    DescribeTransactionsResponse::default().with_transaction_states(states)
}

/// ListTransactions' state filters: the states asked for, and the names this broker
/// does not know (answered back as Kafka does). `None`: no transaction can match.
fn state_filters(names: &[StrBytes]) -> (Option<Vec<TxnState>>, Vec<StrBytes>) {
    let mut states = Vec::new();
    let mut unknown = Vec::new();
    for name in names {
        match STATES.iter().find(|s| s.kafka_name() == name.as_str()) {
            Some(s) => states.push(*s),
            None if STATES_NEVER_HELD.contains(&name.as_str()) => {}
            None => unknown.push(name.clone()),
        }
    }
    // Filters given but none that a transaction here can be in: nothing matches
    // (an empty list would mean "no filter" to the engine).
    let matchable = (names.is_empty() || !states.is_empty()).then_some(states);
    (matchable, unknown)
}

fn listed(t: TxnListing) -> ListedTransaction {
    ListedTransaction::default()
        .with_transactional_id(TransactionalId(str_bytes(&t.transactional_id)))
        .with_producer_id(ProducerId(t.producer_id))
        .with_transaction_state(StrBytes::from_static_str(t.state.kafka_name()))
}

pub async fn list(ctx: &Ctx, req: ListTransactionsRequest) -> ListTransactionsResponse {
    let (states, unknown) = state_filters(&req.state_filters);
    let answer = ListTransactionsResponse::default().with_unknown_state_filters(unknown);
    let Some(states) = states else {
        return answer;
    };
    let producer_ids = req.producer_id_filters.iter().map(|p| p.0).collect();
    match ctx.engine.list_transactions(states, producer_ids).await {
        Ok(all) => answer.with_transaction_states(
            all.into_iter()
                .filter(|t| acls::transactional_id(ctx, Op::Describe, &t.transactional_id))
                .map(listed)
                .collect(),
        ),
        Err(e) => answer.with_error_code(errors::code(&e)),
    }
}

fn producer_state(p: &ProducerDescription) -> ProducerState {
    ProducerState::default()
        .with_producer_id(ProducerId(p.producer_id))
        .with_producer_epoch(i32::from(p.epoch))
        .with_last_sequence(p.last_sequence)
        .with_last_timestamp(p.last_timestamp_ms)
        // Markers carry the coordinator epoch, but partitions do not keep it per producer.
        .with_coordinator_epoch(-1)
        .with_current_txn_start_offset(p.txn_start_offset)
}

pub async fn describe_producers(
    ctx: &Ctx,
    req: DescribeProducersRequest,
) -> DescribeProducersResponse {
    let mut topics = Vec::with_capacity(req.topics.len());
    for topic in req.topics {
        let mut partitions = Vec::with_capacity(topic.partition_indexes.len());
        let readable = acls::check_topic(ctx, Op::Read, topic.name.0.as_str());
        for p in &topic.partition_indexes {
            let answer = PartitionResponse::default().with_partition_index(*p);
            if let Err(refused) = &readable {
                partitions.push(
                    answer
                        .with_error_code(refused.0)
                        .with_error_message(acls::message(refused)),
                );
                continue;
            }
            partitions.push(
                match ctx
                    .engine
                    .describe_producers(topic.name.0.as_str(), *p)
                    .await
                {
                    Ok(all) => {
                        answer.with_active_producers(all.iter().map(producer_state).collect())
                    }
                    Err(e) => {
                        let (code, message) = errors::of(e);
                        answer
                            .with_error_code(code)
                            .with_error_message(Some(str_bytes(&message)))
                    }
                },
            );
        }
        topics.push(
            TopicResponse::default()
                .with_name(topic.name)
                .with_partitions(partitions),
        );
    }
    DescribeProducersResponse::default().with_topics(topics)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use kafka_protocol::protocol::{Decodable, Encodable};

    #[test]
    fn unknown_partitions_fail_alone_and_the_rest_are_not_attempted() {
        let unknown = ResponseError::UnknownTopicOrPartition.code();
        let skipped = ResponseError::OperationNotAttempted.code();
        let denied = ResponseError::TopicAuthorizationFailed.code();
        let codes = add_partition_codes(&[None, Some(unknown), Some(denied), None], || {
            panic!("not called")
        });
        assert_eq!(codes, vec![skipped, unknown, denied, skipped]);
        let fenced = ResponseError::ProducerFenced.code();
        assert_eq!(
            add_partition_codes(&[None, None], || Some(fenced)),
            vec![fenced; 2]
        );
        assert!(add_partition_codes(&[], || Some(0)).is_empty());
    }

    #[test]
    fn state_filters_keep_known_states_and_name_the_unknown_ones() {
        let names = |n: &[&'static str]| -> Vec<StrBytes> {
            n.iter().map(|s| StrBytes::from_static_str(s)).collect()
        };
        let (states, unknown) = state_filters(&[]);
        assert_eq!(states, Some(vec![]), "no filter: everything");
        assert!(unknown.is_empty());
        let (states, unknown) = state_filters(&names(&["Ongoing", "Bogus", "Dead"]));
        assert_eq!(states, Some(vec![TxnState::Ongoing]));
        assert_eq!(unknown, names(&["Bogus"]));
        // Only unknown or never-held states: nothing matches (not "no filter").
        let (states, unknown) = state_filters(&names(&["Bogus", "PrepareEpochFence"]));
        assert_eq!(states, None);
        assert_eq!(unknown, names(&["Bogus"]));
        for s in STATES {
            let (states, _) = state_filters(&names(&[s.kafka_name()]));
            assert_eq!(states, Some(vec![s]));
        }
    }

    #[test]
    fn a_description_groups_partitions_by_topic_and_unknown_ids_are_not_found() {
        let d = TxnDescription {
            transactional_id: "tx".into(),
            state: TxnState::Ongoing,
            producer_id: 7,
            epoch: 2,
            timeout_ms: 60_000,
            start_ms: 1_700_000_000_000,
            partitions: vec![("a".into(), 0), ("a".into(), 3), ("b".into(), 1)],
            groups: vec!["g".into()],
        };
        let s = described("tx".into(), Ok(d));
        assert_eq!(s.error_code, 0);
        assert_eq!(s.transaction_state.as_str(), "Ongoing");
        assert_eq!((s.producer_id.0, s.producer_epoch), (7, 2));
        assert_eq!(s.transaction_timeout_ms, 60_000);
        let topics: Vec<(&str, Vec<i32>)> = s
            .topics
            .iter()
            .map(|t| (t.topic.0.as_str(), t.partitions.clone()))
            .collect();
        assert_eq!(topics, vec![("a", vec![0, 3]), ("b", vec![1])]);
        let missing = described(
            "nope".into(),
            Err(EngineError::UnknownTransactionalId("nope".into())),
        );
        assert_eq!(
            missing.error_code,
            ResponseError::TransactionalIdNotFound.code()
        );
        assert_eq!(missing.transactional_id.0.as_str(), "nope");
    }

    /// Encodes `value` at `version` and decodes it back.
    fn round_trip<T: Encodable + Decodable>(value: &T, version: i16) -> T {
        let mut buf = BytesMut::new();
        value.encode(&mut buf, version).expect("encodes");
        T::decode(&mut buf.freeze(), version).expect("decodes")
    }

    fn topic_of(name: &'static str) -> TopicName {
        TopicName(StrBytes::from_static_str(name))
    }

    #[test]
    fn partition_results_follow_the_request_at_every_served_version() {
        let topics = vec![
            AddPartitionsToTxnTopic::default()
                .with_name(topic_of("a"))
                .with_partitions(vec![0, 2]),
            AddPartitionsToTxnTopic::default()
                .with_name(topic_of("b"))
                .with_partitions(vec![1]),
        ];
        let codes = vec![1, 2, 3];
        let answer = AddPartitionsToTxnResponse::default()
            .with_results_by_topic_v3_and_below(partition_results(topics, codes));
        for version in 0..=3 {
            let back = round_trip(&answer, version);
            let got: Vec<(&str, i32, i16)> = back
                .results_by_topic_v3_and_below
                .iter()
                .flat_map(|t| {
                    t.results_by_partition
                        .iter()
                        .map(|p| (t.name.0.as_str(), p.partition_index, p.partition_error_code))
                })
                .collect();
            assert_eq!(
                got,
                vec![("a", 0, 1), ("a", 2, 2), ("b", 1, 3)],
                "v{version}"
            );
        }
    }

    #[test]
    fn commit_results_give_every_partition_the_one_code() {
        use kafka_protocol::messages::txn_offset_commit_request::TxnOffsetCommitRequestPartition;
        let partition = |p| TxnOffsetCommitRequestPartition::default().with_partition_index(p);
        let topics = vec![TxnOffsetCommitRequestTopic::default()
            .with_name(topic_of("in"))
            .with_partitions(vec![partition(0), partition(5)])];
        let code = ResponseError::InvalidTxnState.code();
        let answer = TxnOffsetCommitResponse::default().with_topics(commit_results(topics, code));
        for version in 0..=3 {
            let back = round_trip(&answer, version);
            let got: Vec<(i32, i16)> = back.topics[0]
                .partitions
                .iter()
                .map(|p| (p.partition_index, p.error_code))
                .collect();
            assert_eq!(got, vec![(0, code), (5, code)], "v{version}");
        }
    }

    #[test]
    fn operator_answers_encode_at_version_0() {
        let d = TxnDescription {
            transactional_id: "tx".into(),
            state: TxnState::PrepareCommit,
            producer_id: 3,
            epoch: 1,
            timeout_ms: 1000,
            start_ms: 5,
            partitions: vec![("a".into(), 1)],
            groups: vec![],
        };
        let described = DescribeTransactionsResponse::default()
            .with_transaction_states(vec![described("tx".into(), Ok(d))]);
        let back = round_trip(&described, 0);
        assert_eq!(
            back.transaction_states[0].transaction_state.as_str(),
            "PrepareCommit"
        );
        let listed = ListTransactionsResponse::default()
            .with_unknown_state_filters(vec![StrBytes::from_static_str("Bogus")])
            .with_transaction_states(vec![listed(TxnListing {
                transactional_id: "tx".into(),
                producer_id: 3,
                state: TxnState::Ongoing,
            })]);
        let back = round_trip(&listed, 0);
        assert_eq!(back.transaction_states[0].producer_id.0, 3);
        assert_eq!(back.unknown_state_filters.len(), 1);
        let p = ProducerDescription {
            producer_id: 3,
            epoch: 1,
            last_sequence: 9,
            last_timestamp_ms: 7,
            txn_start_offset: -1,
        };
        let producers =
            DescribeProducersResponse::default().with_topics(vec![TopicResponse::default()
                .with_name(topic_of("a"))
                .with_partitions(vec![PartitionResponse::default()
                    .with_partition_index(0)
                    .with_active_producers(vec![producer_state(&p)])])]);
        let back = round_trip(&producers, 0);
        assert_eq!(
            back.topics[0].partitions[0].active_producers[0].last_sequence,
            9
        );
    }

    #[test]
    fn producer_states_carry_the_partition_view() {
        let p = ProducerDescription {
            producer_id: 11,
            epoch: 4,
            last_sequence: 99,
            last_timestamp_ms: 5,
            txn_start_offset: 120,
        };
        let s = producer_state(&p);
        assert_eq!((s.producer_id.0, s.producer_epoch), (11, 4));
        assert_eq!((s.last_sequence, s.last_timestamp), (99, 5));
        assert_eq!((s.current_txn_start_offset, s.coordinator_epoch), (120, -1));
    }
}
