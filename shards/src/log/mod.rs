//! Partition log storage (DESIGN.md "Storage").
//!
//! A partition is a directory of segments named by base offset (20 digits): a `.log`
//! of Kafka v2 record batches written with O_DIRECT, a sparse `.index` and a
//! `.timeindex`. `PartitionLog` is the API; the modules below each own one concern:
//!
//! * `segment`   one segment file: aligned appends with the tail block kept in memory,
//!   preallocation, reading batches back with CRC checks
//! * `index`     sparse offset and time indexes: in memory, persisted, validated
//! * `recovery`  start-up scan: validate batches, cut a torn tail, rebuild indexes
//! * `tail`      what follows the last valid batch: a torn write, or damage that
//!   refuses the open
//! * `retention` which whole segments to delete by time and bytes (pure)
//! * `cache`     the shard-wide bounded cache of recent batches
//! * `producers` idempotent (and transactional) producers' epochs and sequences
//! * `transactions` open transactions, aborted ranges and the last stable offset
//! * `file`      the only user of glommio's file types
//! * `fault`     injected EIO for tests of the failure paths (debug builds only)
//!
//! Everything here is owned by one shard and is `!Send`.

mod cache;
mod config;
mod error;
mod fault;
mod file;
mod index;
mod notify;
mod partition_log;
mod producers;
mod recovery;
mod retention;
mod segment;
mod tail;
mod transactions;

#[cfg(test)]
mod full_tests;
#[cfg(test)]
mod tests;

pub use cache::{BatchCache, CacheCounters};
pub use config::{FsyncPolicy, LogConfig, BATCH_BYTES_MAX, SEGMENT_BYTES_MAX};
pub use error::{is_out_of_space, LogError, StorageFault};
pub use file::{prepare_direct_io, sync_stats, SyncStats, SYNC_LATENCY_BUCKETS};
// Pure decoders of what recovery reads from disk, for the fuzz targets (fuzz/).
pub use index::{decode_offsets, decode_times, OffsetEntry, TimeEntry};
pub use partition_log::{AppendResult, Durability, PartitionLog, ProducerSummary, ReadResult};
pub use recovery::{scan_segment_bytes, ScanOutcome};
pub use segment::batch_at;
