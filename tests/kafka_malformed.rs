//! Hostile Kafka requests: a count that claims more elements than the request holds gets
//! the connection closed with a logged reason, never an allocation sized by the count,
//! for every API and version the broker advertises; every other client keeps being served.
//!
//! The requests are real encodings (kafka-protocol's client side) of each API at each
//! version, empty and with one element in each array; every place in the body where an
//! array's or a length's count can sit (four zero or 0xff bytes in a classic version, a
//! 0 or 1 byte in a flexible one) is replaced by 0x7fffffff elements.

mod common;
use bytes::{Bytes, BytesMut};
use common::kafka_raw::{self, read_frame, request_frame as request};
use common::Broker;
use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::create_partitions_request::{
    CreatePartitionsAssignment, CreatePartitionsTopic,
};
use kafka_protocol::messages::create_topics_request::{
    CreatableReplicaAssignment, CreatableTopic, CreatableTopicConfig,
};
use kafka_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::describe_producers_request::TopicRequest as DescribeProducersTopic;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic, ForgottenTopic};
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::txn_offset_commit_request::{
    TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use peregrine::native::messages::{Acks, OffsetSpec};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const HUGE: i32 = 0x7fff_ffff;
/// `HUGE + 1` as an unsigned varint: a compact array or bytes field of `HUGE` elements.
const HUGE_COMPACT: [u8; 5] = [0x80, 0x80, 0x80, 0x80, 0x08];
/// How long the broker may take to close a connection it cannot decode.
const CLOSE_WITHIN: Duration = Duration::from_secs(10);

/// The APIs and version ranges the broker advertises.
fn advertised(addr: &str) -> Vec<(ApiKey, i16, i16)> {
    kafka_raw::advertised(addr)
        .expect("ApiVersions")
        .into_iter()
        .map(|(key, min, max)| (ApiKey::try_from(key).expect("known key"), min, max))
        .collect()
}

/// Each API empty, then with one element in each of its arrays (nested ones included).
fn samples(key: ApiKey) -> Vec<RequestKind> {
    let s = || StrBytes::from_static_str("");
    let mut out = vec![];
    match key {
        ApiKey::Produce => {
            out.push(RequestKind::Produce(
                ProduceRequest::default().with_acks(-1),
            ));
            let topic = TopicProduceData::default()
                .with_partition_data(vec![PartitionProduceData::default()]);
            out.push(RequestKind::Produce(
                ProduceRequest::default()
                    .with_acks(-1)
                    .with_topic_data(vec![topic]),
            ));
        }
        ApiKey::Fetch => {
            out.push(RequestKind::Fetch(FetchRequest::default()));
            let topic = FetchTopic::default().with_partitions(vec![FetchPartition::default()]);
            out.push(RequestKind::Fetch(
                FetchRequest::default().with_topics(vec![topic]),
            ));
            let forgotten = ForgottenTopic::default().with_partitions(vec![0]);
            out.push(RequestKind::Fetch(
                FetchRequest::default().with_forgotten_topics_data(vec![forgotten]),
            ));
        }
        ApiKey::ListOffsets => {
            let topic =
                ListOffsetsTopic::default().with_partitions(vec![ListOffsetsPartition::default()]);
            out.push(RequestKind::ListOffsets(
                ListOffsetsRequest::default().with_topics(vec![topic]),
            ));
        }
        ApiKey::Metadata => {
            out.push(RequestKind::Metadata(
                MetadataRequest::default().with_topics(Some(vec![])),
            ));
            out.push(RequestKind::Metadata(
                MetadataRequest::default().with_topics(Some(vec![MetadataRequestTopic::default()])),
            ));
        }
        ApiKey::OffsetCommit => {
            let topic = OffsetCommitRequestTopic::default()
                .with_partitions(vec![OffsetCommitRequestPartition::default()]);
            out.push(RequestKind::OffsetCommit(
                OffsetCommitRequest::default().with_topics(vec![topic]),
            ));
        }
        ApiKey::OffsetFetch => {
            let topic = OffsetFetchRequestTopic::default().with_partition_indexes(vec![0]);
            out.push(RequestKind::OffsetFetch(
                OffsetFetchRequest::default().with_topics(Some(vec![topic])),
            ));
        }
        ApiKey::FindCoordinator => {
            out.push(RequestKind::FindCoordinator(
                FindCoordinatorRequest::default(),
            ));
            out.push(RequestKind::FindCoordinator(
                FindCoordinatorRequest::default().with_coordinator_keys(vec![s()]),
            ));
        }
        ApiKey::DescribeCluster => out.push(RequestKind::DescribeCluster(
            kafka_protocol::messages::DescribeClusterRequest::default(),
        )),
        ApiKey::JoinGroup => {
            out.push(RequestKind::JoinGroup(
                JoinGroupRequest::default()
                    .with_protocols(vec![JoinGroupRequestProtocol::default()]),
            ));
        }
        ApiKey::Heartbeat => out.push(RequestKind::Heartbeat(HeartbeatRequest::default())),
        ApiKey::LeaveGroup => {
            out.push(RequestKind::LeaveGroup(LeaveGroupRequest::default()));
            out.push(RequestKind::LeaveGroup(
                LeaveGroupRequest::default().with_members(vec![MemberIdentity::default()]),
            ));
        }
        ApiKey::SyncGroup => {
            out.push(RequestKind::SyncGroup(
                SyncGroupRequest::default()
                    .with_assignments(vec![SyncGroupRequestAssignment::default()]),
            ));
        }
        ApiKey::DescribeGroups => {
            out.push(RequestKind::DescribeGroups(
                DescribeGroupsRequest::default().with_groups(vec![s().into()]),
            ));
        }
        ApiKey::ListGroups => {
            out.push(RequestKind::ListGroups(ListGroupsRequest::default()));
            out.push(RequestKind::ListGroups(
                ListGroupsRequest::default().with_states_filter(vec![s()]),
            ));
        }
        ApiKey::DeleteGroups => {
            out.push(RequestKind::DeleteGroups(
                DeleteGroupsRequest::default().with_groups_names(vec![s().into()]),
            ));
        }
        ApiKey::CreateTopics => {
            let assignment = CreatableReplicaAssignment::default().with_broker_ids(vec![0.into()]);
            let topic = CreatableTopic::default()
                .with_assignments(vec![assignment])
                .with_configs(vec![CreatableTopicConfig::default()]);
            out.push(RequestKind::CreateTopics(
                CreateTopicsRequest::default().with_topics(vec![topic]),
            ));
        }
        ApiKey::DescribeConfigs => {
            let resource =
                DescribeConfigsResource::default().with_configuration_keys(Some(vec![s()]));
            out.push(RequestKind::DescribeConfigs(
                DescribeConfigsRequest::default().with_resources(vec![resource]),
            ));
        }
        ApiKey::AlterConfigs => {
            use kafka_protocol::messages::alter_configs_request::{
                AlterConfigsResource, AlterableConfig,
            };
            let config = AlterableConfig::default().with_value(Some(s()));
            let resource = AlterConfigsResource::default().with_configs(vec![config]);
            out.push(RequestKind::AlterConfigs(
                AlterConfigsRequest::default().with_resources(vec![resource]),
            ));
        }
        ApiKey::IncrementalAlterConfigs => {
            use kafka_protocol::messages::incremental_alter_configs_request::{
                AlterConfigsResource, AlterableConfig,
            };
            let config = AlterableConfig::default().with_value(Some(s()));
            let resource = AlterConfigsResource::default().with_configs(vec![config]);
            out.push(RequestKind::IncrementalAlterConfigs(
                IncrementalAlterConfigsRequest::default().with_resources(vec![resource]),
            ));
        }
        ApiKey::OffsetDelete => {
            use kafka_protocol::messages::offset_delete_request::{
                OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
            };
            let topic = OffsetDeleteRequestTopic::default()
                .with_partitions(vec![OffsetDeleteRequestPartition::default()]);
            out.push(RequestKind::OffsetDelete(
                OffsetDeleteRequest::default()
                    .with_group_id(s().into())
                    .with_topics(vec![topic]),
            ));
        }
        ApiKey::InitProducerId => {
            out.push(RequestKind::InitProducerId(InitProducerIdRequest::default()));
        }
        ApiKey::CreatePartitions => {
            let assignment = CreatePartitionsAssignment::default().with_broker_ids(vec![0.into()]);
            let topic = CreatePartitionsTopic::default().with_assignments(Some(vec![assignment]));
            out.push(RequestKind::CreatePartitions(
                CreatePartitionsRequest::default().with_topics(vec![topic]),
            ));
        }
        ApiKey::DeleteRecords => {
            let topic = DeleteRecordsTopic::default()
                .with_partitions(vec![DeleteRecordsPartition::default()]);
            out.push(RequestKind::DeleteRecords(
                DeleteRecordsRequest::default().with_topics(vec![topic]),
            ));
        }
        ApiKey::DeleteTopics => {
            out.push(RequestKind::DeleteTopics(
                DeleteTopicsRequest::default().with_topic_names(vec![s().into()]),
            ));
            out.push(RequestKind::DeleteTopics(
                DeleteTopicsRequest::default().with_topics(vec![DeleteTopicState::default()]),
            ));
        }
        ApiKey::ApiVersions => {
            out.push(RequestKind::ApiVersions(ApiVersionsRequest::default()));
        }
        ApiKey::AddPartitionsToTxn => {
            let topic = AddPartitionsToTxnTopic::default().with_partitions(vec![0]);
            out.push(RequestKind::AddPartitionsToTxn(
                AddPartitionsToTxnRequest::default().with_v3_and_below_topics(vec![topic]),
            ));
        }
        ApiKey::AddOffsetsToTxn => {
            out.push(RequestKind::AddOffsetsToTxn(
                AddOffsetsToTxnRequest::default(),
            ));
        }
        ApiKey::EndTxn => {
            out.push(RequestKind::EndTxn(EndTxnRequest::default()));
        }
        ApiKey::TxnOffsetCommit => {
            let topic = TxnOffsetCommitRequestTopic::default()
                .with_partitions(vec![TxnOffsetCommitRequestPartition::default()]);
            out.push(RequestKind::TxnOffsetCommit(
                TxnOffsetCommitRequest::default().with_topics(vec![topic]),
            ));
        }
        ApiKey::DescribeTransactions => {
            out.push(RequestKind::DescribeTransactions(
                DescribeTransactionsRequest::default().with_transactional_ids(vec![s().into()]),
            ));
        }
        ApiKey::ListTransactions => {
            out.push(RequestKind::ListTransactions(
                ListTransactionsRequest::default()
                    .with_state_filters(vec![s()])
                    .with_producer_id_filters(vec![ProducerId(0)]),
            ));
        }
        ApiKey::DescribeProducers => {
            let topic = DescribeProducersTopic::default().with_partition_indexes(vec![0]);
            out.push(RequestKind::DescribeProducers(
                DescribeProducersRequest::default().with_topics(vec![topic]),
            ));
        }
        ApiKey::SaslHandshake => {
            out.push(RequestKind::SaslHandshake(
                SaslHandshakeRequest::default().with_mechanism(s()),
            ));
        }
        ApiKey::SaslAuthenticate => {
            out.push(RequestKind::SaslAuthenticate(
                SaslAuthenticateRequest::default(),
            ));
        }
        ApiKey::DescribeUserScramCredentials => {
            use kafka_protocol::messages::describe_user_scram_credentials_request::UserName;
            out.push(RequestKind::DescribeUserScramCredentials(
                DescribeUserScramCredentialsRequest::default()
                    .with_users(Some(vec![UserName::default()])),
            ));
        }
        ApiKey::AlterUserScramCredentials => {
            use kafka_protocol::messages::alter_user_scram_credentials_request::{
                ScramCredentialDeletion, ScramCredentialUpsertion,
            };
            out.push(RequestKind::AlterUserScramCredentials(
                AlterUserScramCredentialsRequest::default()
                    .with_deletions(vec![ScramCredentialDeletion::default()])
                    .with_upsertions(vec![ScramCredentialUpsertion::default()]),
            ));
        }
        ApiKey::DescribeAcls => {
            out.push(RequestKind::DescribeAcls(
                DescribeAclsRequest::default()
                    .with_resource_name_filter(Some(s()))
                    .with_principal_filter(Some(s()))
                    .with_host_filter(Some(s())),
            ));
        }
        ApiKey::CreateAcls => {
            use kafka_protocol::messages::create_acls_request::AclCreation;
            out.push(RequestKind::CreateAcls(CreateAclsRequest::default()));
            out.push(RequestKind::CreateAcls(
                CreateAclsRequest::default().with_creations(vec![AclCreation::default()]),
            ));
        }
        ApiKey::DeleteAcls => {
            use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
            out.push(RequestKind::DeleteAcls(DeleteAclsRequest::default()));
            out.push(RequestKind::DeleteAcls(
                DeleteAclsRequest::default().with_filters(vec![DeleteAclsFilter::default()]),
            ));
        }
        other => panic!("{other:?} is advertised: add samples of it to this test"),
    }
    out
}

/// The body with a huge count put at each place one can sit; a version that cannot
/// carry a sample (a field it lacks) gives none.
fn hostile_bodies(key: ApiKey, version: i16, sample: &RequestKind) -> Vec<Vec<u8>> {
    let mut body = BytesMut::new();
    if sample.encode(&mut body, version).is_err() {
        return vec![];
    }
    let flexible = key.request_header_version(version) >= 2;
    let mut out = vec![];
    if flexible {
        for (i, b) in body.iter().enumerate() {
            if *b <= 1 {
                let mut v = body[..i].to_vec();
                v.extend_from_slice(&HUGE_COMPACT);
                v.extend_from_slice(&body[i + 1..]);
                out.push(v);
            }
        }
    } else {
        for i in 0..body.len().saturating_sub(3) {
            let word = &body[i..i + 4];
            if word == [0; 4] || word == [0xff; 4] {
                let mut v = body.to_vec();
                v[i..i + 4].copy_from_slice(&HUGE.to_be_bytes());
                out.push(v);
            }
        }
    }
    out
}

/// Sends one request on a connection of its own; true when the broker closed it without
/// answering.
fn closed_unanswered(addr: &str, frame: &[u8]) -> bool {
    let mut conn = TcpStream::connect(addr).expect("connect");
    conn.set_read_timeout(Some(CLOSE_WITHIN)).expect("timeout");
    conn.write_all(frame).expect("send");
    let mut got = Vec::new();
    matches!(conn.read_to_end(&mut got), Ok(0))
}

/// A Kafka client that keeps asking for metadata on one connection until told to stop;
/// returns how many answers it got.
fn busy_kafka_client(addr: String, stop: Arc<AtomicBool>) -> u64 {
    let mut conn = TcpStream::connect(&addr).expect("connect");
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut body = BytesMut::new();
    RequestKind::Metadata(MetadataRequest::default().with_topics(None))
        .encode(&mut body, 9)
        .expect("encode");
    let mut answered = 0;
    while !stop.load(Ordering::Relaxed) {
        let id = answered as i32;
        conn.write_all(&request(ApiKey::Metadata, 9, id, &body))
            .expect("metadata request");
        let mut answer = read_frame(&mut conn).expect("metadata answered while others misbehave");
        assert_eq!(bytes::Buf::get_i32(&mut answer), id);
        answered += 1;
    }
    answered
}

#[test]
fn the_19_byte_metadata_request_closes_its_connection_and_nothing_else() {
    let mut b = Broker::start();
    b.create_topic("t", 1);
    // api key 3, version 1, correlation id, client id "x", topics: 0x7fffffff, no elements.
    let frame: [u8; 19] = [
        0, 0, 0, 15, 0, 3, 0, 1, 0, 0, 0, 9, 0, 1, b'x', 0x7f, 0xff, 0xff, 0xff,
    ];
    assert!(closed_unanswered(&b.kafka_addr, &frame));
    assert!(b.is_running(), "broker died");
    let log = std::fs::read_to_string(b.data_dir.join("broker.log")).expect("log");
    assert!(
        log.lines().any(|l| l.contains("closing Kafka connection")
            && l.contains("Metadata v1")
            && l.contains("2147483647")),
        "no logged reason in:\n{log}"
    );
    let mut c = b.client();
    let batch =
        peregrine::client::records::encode_batch(&[peregrine::client::records::OutRecord {
            key: None,
            value: Bytes::from_static(b"v"),
            timestamp_ms: 1,
        }])
        .expect("batch");
    assert!(c
        .produce("t", 0, Acks::Leader, &batch)
        .expect("produce")
        .is_some());
    assert_eq!(
        c.list_offset("t", 0, OffsetSpec::Latest).expect("offsets"),
        1
    );
}

#[test]
fn a_huge_count_in_every_served_api_and_version_closes_only_that_connection() {
    let mut b = Broker::start();
    b.create_topic("t", 1);
    let stop = Arc::new(AtomicBool::new(false));
    let busy = {
        let (addr, stop) = (b.kafka_addr.clone(), stop.clone());
        std::thread::spawn(move || busy_kafka_client(addr, stop))
    };
    let started = Instant::now();
    let (mut refused, mut decoded) = (0usize, 0usize);
    for (key, min, max) in advertised(&b.kafka_addr) {
        let mut refused_here = 0;
        for version in min..=max {
            for sample in samples(key) {
                for body in hostile_bodies(key, version, &sample) {
                    let frame = request(key, version, 9, &body);
                    // The same patched decoder the broker runs: what it refuses, the
                    // broker must refuse by closing; the rest is sent and let go.
                    if RequestKind::decode(key, &mut Bytes::from(body), version).is_err() {
                        assert!(
                            closed_unanswered(&b.kafka_addr, &frame),
                            "{key:?} v{version}: connection not closed unanswered"
                        );
                        refused += 1;
                        refused_here += 1;
                    } else {
                        let mut conn = TcpStream::connect(&b.kafka_addr).expect("connect");
                        conn.write_all(&frame).expect("send");
                        decoded += 1;
                    }
                }
            }
        }
        // SaslHandshake holds one string and no count.
        assert!(
            refused_here > 0 || key == ApiKey::SaslHandshake,
            "{key:?}: no hostile count reached the decoder"
        );
        assert!(b.is_running(), "broker died on {key:?}");
    }
    stop.store(true, Ordering::Relaxed);
    let answered = busy.join().expect("the busy client was served throughout");
    println!(
        "{refused} hostile requests refused, {decoded} decodable variants sent, {answered} \
         metadata answers to the busy client, in {:?}",
        started.elapsed()
    );
    assert!(answered > 0);
    assert!(b.is_running(), "broker died");
    let log = std::fs::read_to_string(b.data_dir.join("broker.log")).expect("log");
    let closes = log
        .lines()
        .filter(|l| l.contains("closing Kafka connection"))
        .count();
    assert!(
        closes >= refused,
        "{closes} logged reasons for {refused} refusals"
    );
    let counts = log.lines().filter(|l| l.contains("bytes are left")).count();
    assert!(counts > 0, "no refusal names the count that was too large");
    let mut c = b.client();
    assert_eq!(
        c.list_offset("t", 0, OffsetSpec::Latest).expect("offsets"),
        0
    );
}
