//! Consumer-group coordinator: Kafka "eager" rebalance semantics with server-side
//! assignment.
//!
//! Owned by the shard that owns the group (stable hash of the group id); every type here
//! is `!Send` and lives inside that shard's glommio `LocalExecutor`. No locks: state sits
//! in `RefCell`s that are never borrowed across an `.await`.
//!
//! - [`coordinator`]: [`GroupCoordinator`], the API the server calls (many groups).
//! - `group`: one group's membership state machine (Empty → PreparingRebalance →
//!   Stable). Pure: it takes `now` and returns what happened, so it is unit-tested
//!   without a clock or an executor.
//! - `assignor`: pure partition assignment, deterministic by sorted member id.
//! - `offsets`: the durable committed offsets of the shard's groups, kept in a
//!   partition log of the shard's own (`PartitionLog`: group commit + fdatasync,
//!   recovery, checkpoints that move the log start), as Kafka keeps them in
//!   `__consumer_offsets`.
//! - `offset_records`: the records of that log (Kafka's offset-commit key and value
//!   layout), pure; fuzzed.
//! - `legacy`: the one-file-per-group format of older releases, read once and carried
//!   into the log.
//!
//! Join is JoinGroup and SyncGroup in one call: the server computes the assignment, so a
//! join resolves with the member's own partitions once every known member has rejoined
//! (or the rebalance timeout removed the stragglers).
//!
//! Choices recorded for the next reader:
//! - Member ids are `<client_id>-<32 hex digits>` (a per-coordinator random nonce and a
//!   counter), so ids from before a restart never collide with new ones.
//! - Membership is in memory only: after a restart members get `UnknownMember` and
//!   rejoin, as a Kafka client does after a coordinator move. Committed offsets are
//!   durable.
//! - Offset commits for a member are accepted during PreparingRebalance with the current
//!   (old) generation, so consumers can commit before they rejoin (eager protocol).
//! - `fetch_offsets` with an explicit partition list answers every requested partition;
//!   one without a commit has offset -1 and empty metadata (Kafka's OffsetFetch answer).

pub mod assignor;
pub mod coordinator;
mod group;
mod legacy;
pub mod offset_records;
mod offsets;

use std::path::PathBuf;

pub use assignor::Assignment;
pub use coordinator::GroupCoordinator;
pub use legacy::parse_records as parse_offsets_file;
pub use offset_records::decode_batch as decode_offsets_batch;

/// Longest group id accepted (Kafka has no limit; ours bounds file names and memory).
pub const GROUP_ID_MAX_CHARS: usize = 255;
/// Most members one group may hold; a join beyond it gets [`GroupError::GroupFull`].
pub const MEMBERS_PER_GROUP_MAX: usize = 1000;
/// Most partitions one offset commit may carry.
pub const PARTITIONS_PER_COMMIT_MAX: usize = 10_000;
/// Most topics one member may subscribe to.
pub const TOPICS_PER_MEMBER_MAX: usize = 10_000;
/// Most partitions per topic the assignor will spread.
pub const PARTITIONS_PER_TOPIC_MAX: i32 = 100_000;
/// Longest offset metadata string (Kafka's `offset.metadata.max.bytes` default).
pub const OFFSET_METADATA_MAX_BYTES: usize = 4096;
/// Longest topic name accepted in a commit or subscription.
pub const TOPIC_NAME_MAX_BYTES: usize = 255;
/// Longest rebalance timeout honoured; longer requests are clamped to it.
pub const REBALANCE_TIMEOUT_MS_MAX: u32 = 30 * 60 * 1000;
/// Default cap on the groups one shard owns (members or committed offsets); a join or
/// commit that would create one more gets [`GroupError::TooManyGroups`]. Kafka has no
/// such cap; 10,000 groups per core is far above what a broker of ours serves in
/// practice, and bounds the coordinator's memory and offsets log.
pub const GROUPS_PER_SHARD_DEFAULT: usize = 10_000;
/// Default segment size of a shard's offsets log.
pub const OFFSETS_SEGMENT_BYTES_DEFAULT: u64 = 8 << 20;
/// Default size past which a shard's offsets log is checkpointed and its start moved
/// (it checkpoints again once past twice the last checkpoint, if that is larger).
pub const OFFSETS_COMPACT_BYTES_DEFAULT: u64 = 32 << 20;

/// Coordinator settings; one per shard.
#[derive(Debug, Clone)]
pub struct GroupConfig {
    /// The broker's groups directory: the shard's offsets log is
    /// `data_dir/__consumer_offsets/<shard>/`; older releases kept one file per group
    /// in `data_dir/<escaped group id>/offsets.log`, read once and removed.
    pub data_dir: PathBuf,
    /// This shard's index (names its offsets log; default 0).
    pub shard: u32,
    /// Shards of the broker: a group belongs to `catalog::group_owner(id, shards)`
    /// (default 1).
    pub shards: u32,
    /// Most groups this shard may own (default [`GROUPS_PER_SHARD_DEFAULT`]).
    pub max_groups: usize,
    /// Segment size of the offsets log (default [`OFFSETS_SEGMENT_BYTES_DEFAULT`]).
    pub offsets_segment_bytes: u64,
    /// Checkpoint the offsets log past this size (default
    /// [`OFFSETS_COMPACT_BYTES_DEFAULT`]).
    pub offsets_compact_bytes: u64,
    /// Smallest session timeout a member may ask for (Kafka default 6000; tests use 100).
    pub min_session_timeout_ms: u32,
    /// Largest session timeout a member may ask for (Kafka default 300_000).
    pub max_session_timeout_ms: u32,
    /// Delay before the first rebalance of an empty group completes, so that members
    /// starting together land in one generation (Kafka's
    /// `group.initial.rebalance.delay.ms`). 0 completes as soon as all have joined.
    pub initial_rebalance_delay_ms: u32,
}

impl GroupConfig {
    /// Defaults for a one-shard broker: sessions 100 ms ..= 300 s, no initial delay.
    pub fn new(data_dir: PathBuf) -> GroupConfig {
        GroupConfig {
            data_dir,
            shard: 0,
            shards: 1,
            max_groups: GROUPS_PER_SHARD_DEFAULT,
            offsets_segment_bytes: OFFSETS_SEGMENT_BYTES_DEFAULT,
            offsets_compact_bytes: OFFSETS_COMPACT_BYTES_DEFAULT,
            min_session_timeout_ms: 100,
            max_session_timeout_ms: 300_000,
            initial_rebalance_delay_ms: 0,
        }
    }
}

/// A JoinGroup (+ SyncGroup) request, topics already resolved by the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinRequest {
    pub group: String,
    /// `None` or `""`: a new member; the coordinator assigns an id.
    pub member_id: Option<String>,
    pub client_id: String,
    /// Subscribed topics with their partition counts.
    pub topics: Vec<(String, i32)>,
    pub session_timeout_ms: u32,
    /// How long the coordinator waits for members to rejoin; 0 means the session
    /// timeout (JoinGroup v0 has no rebalance timeout).
    pub rebalance_timeout_ms: u32,
}

/// What a completed join hands back to one member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinResult {
    pub member_id: String,
    pub generation: i32,
    pub leader: String,
    /// All member ids of this generation, sorted.
    pub members: Vec<String>,
    /// This member's partitions: topics sorted, partitions ascending.
    pub assignment: Vec<(String, Vec<i32>)>,
}

/// One committed offset of one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedOffset {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub metadata: String,
}

/// DescribeGroups answer for one group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDescription {
    pub group: String,
    /// "Empty" | "PreparingRebalance" | "Stable" | "Dead" (unknown group).
    pub state: String,
    pub generation: i32,
    /// (member id, client id, assignment), sorted by member id.
    pub members: Vec<(String, String, Assignment)>,
}

/// Why a group call failed; each maps onto one Kafka error code.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum GroupError {
    #[error("unknown member id (the member expired or left; rejoin with an empty member id)")]
    UnknownMember,
    #[error("illegal generation (the group rebalanced; rejoin to get the new generation)")]
    IllegalGeneration,
    #[error("rebalance in progress (stop fetching, commit, and rejoin the group)")]
    RebalanceInProgress,
    #[error("invalid session timeout (must lie within the broker's min..=max session timeout)")]
    InvalidSessionTimeout,
    #[error("invalid group id (must be 1..=255 characters)")]
    InvalidGroupId,
    #[error("group is not empty (members must leave before it can be deleted)")]
    NotEmpty,
    /// Kafka GROUP_MAX_SIZE_REACHED.
    #[error("group is full ({} members at most)", MEMBERS_PER_GROUP_MAX)]
    GroupFull,
    /// A request over one of this module's bounds (Kafka INVALID_REQUEST or
    /// OFFSET_METADATA_TOO_LARGE); the text says which bound.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The shard already owns `max` groups (`GroupConfig::max_groups`).
    #[error("too many consumer groups: this broker core already holds {max} (delete unused groups with DeleteGroups, or raise the per-core cap)")]
    TooManyGroups { max: usize },
    #[error("offsets store I/O failed: {0}")]
    Io(String),
    /// The offsets log has no space left: retry once space is freed.
    #[error("committed offsets cannot be stored: {0}")]
    StorageFull(String),
    /// A write or fdatasync of the offsets log failed: it is read-only until restart.
    #[error("committed offsets cannot be stored: {0}")]
    StorageFailed(String),
}

/// Checks the 1..=255 character rule shared by every entry point.
fn check_group_id(group: &str) -> Result<(), GroupError> {
    let chars = group.chars().count();
    if chars == 0 || chars > GROUP_ID_MAX_CHARS {
        return Err(GroupError::InvalidGroupId);
    }
    Ok(())
}

/// Runs `fut` on a fresh glommio executor (tests only).
#[cfg(test)]
pub(crate) fn run_local<T>(fut: impl std::future::Future<Output = T>) -> T {
    // A test without memlock headroom cannot start io_uring at all; fail loudly.
    let _ = crate::sys::raise_memlock_limit();
    let ex = glommio::LocalExecutorBuilder::default()
        .make()
        .unwrap_or_else(|e| panic!("cannot start a glommio executor: {e}"));
    ex.run(fut)
}
