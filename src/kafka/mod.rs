//! The Kafka wire protocol on every shard's Kafka port, so existing Kafka clients
//! (librdkafka and kcat, the Java client, kafka-python, ...) work unchanged.
//!
//! Requests are decoded with `kafka-protocol` and turned into calls on the shard's
//! `Engine`, which runs them where they belong; engine errors become Kafka codes in one
//! place (`errors`). Record batches pass through as the bytes the client sent (no
//! per-record decode on produce or fetch).
//!
//! `connection` owns framing and response order, `codec` headers and versions, `apis`
//! what is advertised; one module per API family does the translation (`txn` for
//! transactions, `configs` for reading and changing topic configs). `sasl` authenticates a connection (and keeps an unauthenticated
//! client to the handshake where `--require-auth` says so), `users` serves the SCRAM
//! credential admin APIs, `acls` decides what the connection's principal may do
//! (`--acls`) and serves the ACL APIs.

mod acls;
mod admin;
mod apis;
mod codec;
mod configs;
mod connection;
mod errors;
mod fetch;
mod groups;
mod metadata;
mod offsets;
mod produce;
mod sasl;
mod txn;
mod users;

pub use codec::{decode as decode_request, Decoded, Incoming};
pub use connection::serve;

/// Kafka's ACL requests short of the engine, for the `acl_requests` fuzz target
/// (`fuzz/src/lib.rs`) and its corpus replay: the conversions the handlers run.
pub mod fuzzing {
    pub use super::acls::{binding_of, delete_filters, describe_filters, Refusal};
}

use crate::engine::Engine;
use crate::server::stream::Stream;
use kafka_protocol::protocol::StrBytes;
use peregrine_shards::security::acls::ANONYMOUS;
use std::cell::RefCell;
use std::net::{IpAddr, Ipv4Addr};
use std::rc::Rc;

/// This broker's node id: one node, whatever the number of shards.
pub const NODE_ID: i32 = 0;

/// What every handler needs: the shard's engine and the address clients are told.
pub struct Ctx {
    pub engine: Engine,
    pub host: StrBytes,
    pub port: i32,
    /// Each shard's own Kafka port on the listener this connection came in on (TLS or
    /// plaintext): a client is sent on to ports that speak what it speaks.
    pub shard_ports: Vec<u16>,
    /// Who the client is, in Kafka's form `User:NAME`: the name in its verified
    /// certificate (mTLS), else `User:ANONYMOUS`; SASL replaces it when the client
    /// authenticates. ACLs are checked against it on every request (`acls`).
    pub principal: RefCell<String>,
    /// The client's address, which an ACL's host may name.
    pub peer_ip: IpAddr,
}

impl Ctx {
    /// `tls`: the connection came in on a TLS listener.
    pub fn new(engine: Engine, tls: bool) -> Ctx {
        let config = engine.config();
        let tls_listener = config.tls.as_ref().filter(|_| tls);
        let advertised = match tls_listener {
            Some(t) => t.advertised_kafka_addr.clone(),
            None => config.advertised_kafka_addr.clone(),
        }
        .unwrap_or_else(|| config.kafka_addr.to_string());
        let shard_ports = match tls_listener {
            Some(t) => t.kafka_shard_ports.clone(),
            None => config.kafka_shard_ports.clone(),
        };
        let (host, port) = match advertised.rsplit_once(':') {
            Some((h, p)) => (
                h.trim_matches(['[', ']']).to_string(),
                p.parse().unwrap_or(9092),
            ),
            None => (advertised, 9092),
        };
        Ctx {
            engine,
            host: StrBytes::from_string(host),
            port,
            shard_ports,
            principal: RefCell::new(ANONYMOUS.to_string()),
            peer_ip: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        }
    }

    /// This context for the client at the other end of `stream`: its address, and its
    /// certificate's principal when it presented a verified one.
    pub fn for_client(mut self, stream: &Stream) -> Ctx {
        if let Some(addr) = stream.peer_addr() {
            self.peer_ip = addr.ip();
        }
        if let Some(name) = stream.principal() {
            self.principal = RefCell::new(format!("User:{name}"));
        }
        self
    }

    /// The principal now (a clone: it may change while a request waits).
    pub fn principal(&self) -> String {
        self.principal.borrow().clone()
    }

    /// The principal SASL authenticated.
    pub fn set_principal(&self, principal: String) {
        *self.principal.borrow_mut() = principal;
    }
}

use kafka_protocol::messages::{RequestKind, ResponseKind};

/// Runs one decoded request; `None` when Kafka sends no answer (acks=0 produce).
pub(crate) async fn handle(ctx: &Rc<Ctx>, request: Box<codec::Decoded>) -> Option<ResponseKind> {
    let v = request.header.request_api_version;
    crate::metrics::local::kafka_request(request.header.request_api_key);
    Some(match request.body {
        RequestKind::ApiVersions(_) => ResponseKind::ApiVersions(apis::api_versions(errors::NONE)),
        RequestKind::Metadata(r) => ResponseKind::Metadata(metadata::metadata(ctx, r, v).await),
        RequestKind::FindCoordinator(r) => {
            ResponseKind::FindCoordinator(metadata::find_coordinator(ctx, r, v))
        }
        RequestKind::DescribeCluster(r) => {
            ResponseKind::DescribeCluster(metadata::describe_cluster(ctx, r, v))
        }
        RequestKind::Produce(r) => ResponseKind::Produce(produce::produce(ctx, r, v).await?),
        RequestKind::Fetch(r) => ResponseKind::Fetch(fetch::fetch(ctx, r, v).await),
        RequestKind::ListOffsets(r) => {
            ResponseKind::ListOffsets(offsets::list_offsets(ctx, r).await)
        }
        RequestKind::JoinGroup(r) => {
            let client = request.header.client_id.as_ref().map_or("", |c| c.as_str());
            ResponseKind::JoinGroup(groups::join(ctx, r, client, v).await)
        }
        RequestKind::SyncGroup(r) => ResponseKind::SyncGroup(groups::sync(ctx, r, v).await),
        RequestKind::Heartbeat(r) => ResponseKind::Heartbeat(groups::heartbeat(ctx, r).await),
        RequestKind::LeaveGroup(r) => ResponseKind::LeaveGroup(groups::leave(ctx, r, v).await),
        RequestKind::OffsetCommit(r) => ResponseKind::OffsetCommit(groups::commit(ctx, r).await),
        RequestKind::OffsetFetch(r) => {
            ResponseKind::OffsetFetch(groups::fetch_offsets(ctx, r, v).await)
        }
        RequestKind::DescribeGroups(r) => {
            ResponseKind::DescribeGroups(groups::describe(ctx, r, v).await)
        }
        RequestKind::ListGroups(_) => ResponseKind::ListGroups(groups::list(ctx, v).await),
        RequestKind::DeleteGroups(r) => ResponseKind::DeleteGroups(groups::delete(ctx, r).await),
        RequestKind::OffsetDelete(r) => {
            ResponseKind::OffsetDelete(groups::delete_offsets(ctx, r).await)
        }
        RequestKind::DescribeConfigs(r) => {
            ResponseKind::DescribeConfigs(configs::describe_configs(ctx, r, v).await)
        }
        RequestKind::AlterConfigs(r) => {
            ResponseKind::AlterConfigs(configs::alter_configs(ctx, r).await)
        }
        RequestKind::IncrementalAlterConfigs(r) => {
            ResponseKind::IncrementalAlterConfigs(configs::incremental_alter_configs(ctx, r).await)
        }
        RequestKind::InitProducerId(r) => {
            ResponseKind::InitProducerId(admin::init_producer_id(ctx, r, v).await)
        }
        RequestKind::CreatePartitions(r) => {
            ResponseKind::CreatePartitions(admin::create_partitions(ctx, r).await)
        }
        RequestKind::DeleteRecords(r) => {
            ResponseKind::DeleteRecords(admin::delete_records(ctx, r).await)
        }
        RequestKind::CreateTopics(r) => {
            ResponseKind::CreateTopics(admin::create_topics(ctx, r, v).await)
        }
        RequestKind::DeleteTopics(r) => {
            ResponseKind::DeleteTopics(admin::delete_topics(ctx, r, v).await)
        }
        RequestKind::AddPartitionsToTxn(r) => {
            ResponseKind::AddPartitionsToTxn(txn::add_partitions(ctx, r, v).await)
        }
        RequestKind::AddOffsetsToTxn(r) => {
            ResponseKind::AddOffsetsToTxn(txn::add_offsets(ctx, r, v).await)
        }
        RequestKind::TxnOffsetCommit(r) => {
            ResponseKind::TxnOffsetCommit(txn::offset_commit(ctx, r).await)
        }
        RequestKind::EndTxn(r) => ResponseKind::EndTxn(txn::end(ctx, r, v).await),
        RequestKind::DescribeTransactions(r) => {
            ResponseKind::DescribeTransactions(txn::describe(ctx, r).await)
        }
        RequestKind::ListTransactions(r) => ResponseKind::ListTransactions(txn::list(ctx, r).await),
        RequestKind::DescribeProducers(r) => {
            ResponseKind::DescribeProducers(txn::describe_producers(ctx, r).await)
        }
        RequestKind::CreateAcls(r) => ResponseKind::CreateAcls(acls::create(ctx, r).await),
        RequestKind::DescribeAcls(r) => ResponseKind::DescribeAcls(acls::describe(ctx, r)),
        RequestKind::DeleteAcls(r) => ResponseKind::DeleteAcls(acls::delete(ctx, r).await),
        RequestKind::DescribeUserScramCredentials(r) => {
            ResponseKind::DescribeUserScramCredentials(users::describe(ctx, r))
        }
        RequestKind::AlterUserScramCredentials(r) => {
            ResponseKind::AlterUserScramCredentials(users::alter(ctx, r).await)
        }
        _ => {
            // The codec refuses every API not in `apis::SUPPORTED` before this.
            tracing::error!(api = ?request.api_key, "Kafka API advertised but not handled");
            return None;
        }
    })
}

pub(crate) fn str_bytes(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}
