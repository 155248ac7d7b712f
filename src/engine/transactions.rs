//! Kafka transactions on the engine (issue 18): the transaction coordinator of each
//! transactional id runs on the shard that owns the id (`Object::Transaction`); its
//! state is kept durably in a log of that shard's own, and its markers go to every
//! partition in the transaction, whichever shard owns it.
//!
//! These are the engine's methods for it; every front end that offers transactions
//! calls these and nothing else.

use super::error::EngineError;
use super::mesh::CallClass;
use super::partitions;
use super::placement::Object;
use super::shard::Shard;
use super::types::{CommitEntry, Marker, ProducerDescription, TxnDescription, TxnState};
use super::Engine;
use std::rc::Rc;

/// What a transactional producer identifies itself with on every call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnProducer {
    pub transactional_id: String,
    pub producer_id: i64,
    pub epoch: i16,
}

/// A transactional id in a listing (Kafka's ListTransactions).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnListing {
    pub transactional_id: String,
    pub producer_id: i64,
    pub state: TxnState,
}

fn not_yet() -> EngineError {
    EngineError::NotSupported("transactions are not offered yet".into())
}

impl Engine {
    /// Kafka's InitProducerId with a transactional id: the id's producer id and its next
    /// epoch (fencing every older instance), after ending whatever transaction an older
    /// instance left open (aborted). `producer_id`/`epoch` are -1 from a fresh client,
    /// or the current ones from a client bumping its own epoch (KIP-360).
    pub async fn init_transactions(
        &self,
        transactional_id: &str,
        timeout_ms: i32,
        producer_id: i64,
        epoch: i16,
    ) -> Result<(i64, i16), EngineError> {
        let _ = (transactional_id, timeout_ms, producer_id, epoch);
        Err(not_yet())
    }

    /// Adds partitions to the producer's transaction (begins one when none is open).
    pub async fn add_partitions_to_txn(
        &self,
        producer: TxnProducer,
        partitions: Vec<(String, i32)>,
    ) -> Result<(), EngineError> {
        let _ = (producer, partitions);
        Err(not_yet())
    }

    /// Adds a group's offsets to the producer's transaction (AddOffsetsToTxn).
    pub async fn add_offsets_to_txn(
        &self,
        producer: TxnProducer,
        group: &str,
    ) -> Result<(), EngineError> {
        let _ = (producer, group);
        Err(not_yet())
    }

    /// Offsets a transaction commits for `group`: visible to the group only once the
    /// transaction commits, dropped if it aborts (TxnOffsetCommit).
    pub async fn txn_offset_commit(
        &self,
        producer: TxnProducer,
        group: &str,
        offsets: Vec<CommitEntry>,
    ) -> Result<(), EngineError> {
        let _ = (producer, group, offsets);
        Err(not_yet())
    }

    /// Ends the producer's transaction: commit or abort. Returns once the decision is
    /// durable, every partition has its marker on disk and the offsets are applied.
    pub async fn end_txn(&self, producer: TxnProducer, commit: bool) -> Result<(), EngineError> {
        let _ = (producer, commit);
        Err(not_yet())
    }

    /// Each id's coordinator state (an unknown id: `UnknownTransactionalId`).
    pub async fn describe_transactions(
        &self,
        ids: Vec<String>,
    ) -> Vec<(String, Result<TxnDescription, EngineError>)> {
        ids.into_iter().map(|id| (id, Err(not_yet()))).collect()
    }

    /// Every transactional id of every shard, filtered by state and producer id when
    /// the filters are not empty.
    pub async fn list_transactions(
        &self,
        states: Vec<TxnState>,
        producer_ids: Vec<i64>,
    ) -> Result<Vec<TxnListing>, EngineError> {
        let _ = (states, producer_ids);
        Err(not_yet())
    }

    /// Appends a transaction marker to one partition, on its shard, durably.
    pub async fn write_marker(
        &self,
        topic: &str,
        partition: i32,
        marker: Marker,
    ) -> Result<(), EngineError> {
        let owner = self.owner(Object::Partition { topic, partition })?;
        let topic = topic.to_string();
        let job = move |s: Rc<Shard>| async move {
            partitions::write_marker(&s, &topic, partition, marker).await
        };
        self.on_owner(owner, CallClass::Internal, job).await
    }

    /// The producers one partition keeps state for (Kafka's DescribeProducers).
    pub async fn describe_producers(
        &self,
        topic: &str,
        partition: i32,
    ) -> Result<Vec<ProducerDescription>, EngineError> {
        let owner = self.owner(Object::Partition { topic, partition })?;
        let topic = topic.to_string();
        let job = move |s: Rc<Shard>| async move {
            partitions::describe_producers(&s, &topic, partition)
        };
        self.on_owner(owner, CallClass::Client, job).await
    }
}
