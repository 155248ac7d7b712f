//! Placement: which shard owns an object. The one function every call goes through to
//! find where it runs (Redpanda's `shard_table`); the hashes themselves live with the
//! catalog (`peregrine_shards::catalog`), which records each partition's placement so
//! that it survives restarts.

use super::error::EngineError;
use peregrine_shards::catalog::{group_owner, queue_owner, Catalog};

/// The shard that writes the catalog: topic, queue and exchange changes and producer
/// ids run there.
pub const CONTROLLER_SHARD: u32 = 0;

/// Something exactly one shard owns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Object<'a> {
    Partition {
        topic: &'a str,
        partition: i32,
    },
    Queue(&'a str),
    Group(&'a str),
    /// A transactional id: its transaction coordinator.
    Transaction(&'a str),
    /// The catalog and the producer-id blocks.
    Controller,
}

/// The shard that owns `object`, or the error a client should see (a partition of a
/// topic that does not exist).
pub fn owner(catalog: &Catalog, nshards: u32, object: Object<'_>) -> Result<u32, EngineError> {
    match object {
        Object::Partition { topic, partition } => {
            let meta = catalog.topic(topic)?;
            meta.owner(partition, nshards).ok_or_else(|| {
                EngineError::UnknownPartition(format!(
                    "topic '{topic}' has no partition {partition} (it has {})",
                    meta.config.partitions
                ))
            })
        }
        Object::Queue(name) => Ok(queue_owner(name, nshards)),
        Object::Group(name) => Ok(group_owner(name, nshards)),
        // The same stable name hash as groups: a different key space, spread alike.
        Object::Transaction(id) => Ok(group_owner(id, nshards)),
        Object::Controller => Ok(CONTROLLER_SHARD),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_object_has_one_owner_within_the_shard_count() {
        let catalog = Catalog::default();
        for nshards in 1..5 {
            for name in ["a", "orders", "q-1"] {
                assert!(owner(&catalog, nshards, Object::Queue(name)).is_ok_and(|s| s < nshards));
                assert!(owner(&catalog, nshards, Object::Group(name)).is_ok_and(|s| s < nshards));
            }
            assert_eq!(
                owner(&catalog, nshards, Object::Controller),
                Ok(CONTROLLER_SHARD)
            );
        }
        let unknown = Object::Partition {
            topic: "missing",
            partition: 0,
        };
        assert!(matches!(
            owner(&catalog, 2, unknown),
            Err(EngineError::UnknownTopic(_))
        ));
    }
}
