//! Per-partition log settings.

use std::str::FromStr;

/// Largest segment: index entries store file positions as u32.
pub const SEGMENT_BYTES_MAX: u64 = u32::MAX as u64;
/// Largest single batch the log accepts; bounds the memory one append may pin.
pub const BATCH_BYTES_MAX: usize = 256 << 20;

/// When appended data is made durable with fdatasync.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// fdatasync only while an `acks=durable` append waits; concurrent waiters share
    /// one fdatasync (group commit).
    OnDurable,
    /// Every flush cycle writes and then fdatasyncs.
    Always,
    /// Like `OnDurable`, and also fdatasync at least every N ms while data is unsynced.
    IntervalMs(u64),
}

impl FromStr for FsyncPolicy {
    type Err = String;

    /// Parses `durable`, `always` or `interval:MS`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "durable" => Ok(FsyncPolicy::OnDurable),
            "always" => Ok(FsyncPolicy::Always),
            _ => match s.strip_prefix("interval:").map(str::parse::<u64>) {
                Some(Ok(ms)) if ms > 0 => Ok(FsyncPolicy::IntervalMs(ms)),
                _ => Err(format!(
                    "unknown fsync policy '{s}' (use 'durable', 'always' or 'interval:MS' with MS > 0)"
                )),
            },
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogConfig {
    /// Roll to a new segment when the active one would grow past this (default 1 GiB).
    pub segment_bytes: u64,
    /// Delete closed segments whose newest batch is older than this.
    pub retention_ms: Option<i64>,
    /// Delete the oldest closed segments while the rest still hold at least this much.
    pub retention_bytes: Option<u64>,
    /// Bytes of log between two sparse index entries (default 4 KiB).
    pub index_interval_bytes: u32,
    /// Preallocation chunk for segment files (default 64 MiB, capped at segment_bytes).
    pub preallocate_bytes: u64,
    pub fsync: FsyncPolicy,
    /// How long small appends that nobody waits on durably may wait to share one write
    /// (zero: write at once). See `partition_log::linger`.
    pub write_linger: std::time::Duration,
    /// Idempotent producers idle for longer than this are forgotten (Kafka's
    /// `producer.id.expiration.ms`; default one day). See `producers`.
    pub producer_id_expiration_ms: u64,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: 1 << 30,
            retention_ms: None,
            retention_bytes: None,
            index_interval_bytes: 4096,
            preallocate_bytes: 64 << 20,
            fsync: FsyncPolicy::OnDurable,
            write_linger: std::time::Duration::from_millis(1),
            producer_id_expiration_ms: LogConfig::PRODUCER_ID_EXPIRATION_MS_DEFAULT,
        }
    }
}

impl LogConfig {
    /// Kafka's `producer.id.expiration.ms` default, one day (`--producer-id-expiration-ms`).
    pub const PRODUCER_ID_EXPIRATION_MS_DEFAULT: u64 =
        super::producers::PRODUCER_ID_EXPIRATION_MS_DEFAULT;

    /// Clamps values into what the on-disk format and the writer can hold.
    pub(crate) fn normalized(mut self) -> LogConfig {
        self.segment_bytes = self.segment_bytes.clamp(1, SEGMENT_BYTES_MAX);
        self.index_interval_bytes = self.index_interval_bytes.max(1);
        self.preallocate_bytes = self.preallocate_bytes.min(self.segment_bytes);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fsync_policy_parses_its_three_spellings() {
        assert_eq!("durable".parse(), Ok(FsyncPolicy::OnDurable));
        assert_eq!("always".parse(), Ok(FsyncPolicy::Always));
        assert_eq!("interval:250".parse(), Ok(FsyncPolicy::IntervalMs(250)));
        assert!("interval:0".parse::<FsyncPolicy>().is_err());
        assert!("sometimes".parse::<FsyncPolicy>().is_err());
    }
}
