//! Sparse offset index and time index of one segment.
//!
//! Both live in memory and are written whole to `<base>.index` / `<base>.timeindex`
//! when a segment is rolled and when the log closes. On open they are never trusted:
//! the scan of each segment rebuilds them, and a file that differs is rewritten (see
//! `recovery.rs`), so a bad index file never costs data. `decode_offsets` and
//! `decode_times` remain as the fuzzed decoders of the file format.
//!
//! * Offset index entry (8 bytes, big endian): relative offset u32 | file position u32.
//!   One entry per `index_interval_bytes` of log: the batch whose base offset is
//!   `base + rel` starts at `position`. Both columns strictly increase.
//! * Time index entry (12 bytes): max timestamp i64 | relative offset u32. Added at the
//!   same points, when the segment's max timestamp has grown: every batch before
//!   `base + rel` has a max timestamp <= the entry's. On roll and close a last entry
//!   records the segment's max timestamp, so the last entry is the segment's maximum.
//!
//! Owned by the partition's shard.

/// Bytes per offset-index entry.
pub(crate) const OFFSET_ENTRY_LEN: usize = 8;
/// Bytes per time-index entry.
pub(crate) const TIME_ENTRY_LEN: usize = 12;
/// Kafka's "no timestamp" value; also the max timestamp of an empty segment.
pub(crate) const NO_TIMESTAMP: i64 = -1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetEntry {
    pub rel_offset: u32,
    pub position: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeEntry {
    pub timestamp_ms: i64,
    pub rel_offset: u32,
}

/// Where a segment's index is and how it grows; owned by the segment's metadata.
#[derive(Debug, Clone)]
pub(crate) struct SegmentIndex {
    pub(crate) offsets: Vec<OffsetEntry>,
    pub(crate) times: Vec<TimeEntry>,
    interval_bytes: u32,
    bytes_since_entry: u64,
    /// Largest batch max timestamp in the segment and the relative offset of its batch.
    max_timestamp_ms: i64,
    rel_offset_of_max: u32,
}

impl SegmentIndex {
    pub(crate) fn new(interval_bytes: u32) -> SegmentIndex {
        SegmentIndex {
            offsets: Vec::new(),
            times: Vec::new(),
            interval_bytes: interval_bytes.max(1),
            bytes_since_entry: 0,
            max_timestamp_ms: NO_TIMESTAMP,
            rel_offset_of_max: 0,
        }
    }

    pub(crate) fn max_timestamp_ms(&self) -> i64 {
        self.max_timestamp_ms
    }

    /// Records one batch appended at `position`. Entries go in when at least
    /// `interval_bytes` of log have passed since the previous entry.
    pub(crate) fn on_batch(&mut self, rel_offset: u32, position: u32, len: u32, max_ts_ms: i64) {
        if max_ts_ms > self.max_timestamp_ms {
            self.max_timestamp_ms = max_ts_ms;
            self.rel_offset_of_max = rel_offset;
        }
        if self.bytes_since_entry >= u64::from(self.interval_bytes) {
            let grows = self
                .offsets
                .last()
                .is_none_or(|e| e.rel_offset < rel_offset);
            if grows {
                self.offsets.push(OffsetEntry {
                    rel_offset,
                    position,
                });
            }
            self.push_time_entry();
            self.bytes_since_entry = 0;
        }
        self.bytes_since_entry += u64::from(len);
    }

    /// Adds the segment's max timestamp as the last time entry (on roll and close).
    pub(crate) fn seal(&mut self) {
        self.push_time_entry();
    }

    fn push_time_entry(&mut self) {
        let grows = self
            .times
            .last()
            .is_none_or(|e| e.timestamp_ms < self.max_timestamp_ms);
        if grows && self.max_timestamp_ms != NO_TIMESTAMP {
            let entry = TimeEntry {
                timestamp_ms: self.max_timestamp_ms,
                rel_offset: self.rel_offset_of_max,
            };
            self.times.push(entry);
        }
    }

    /// Position of the last indexed batch whose base offset is <= `rel_offset`,
    /// with that batch's relative offset; `(0, 0)` when none is indexed.
    pub(crate) fn lookup(&self, rel_offset: u32) -> OffsetEntry {
        let n = self.offsets.partition_point(|e| e.rel_offset <= rel_offset);
        match n {
            0 => OffsetEntry {
                rel_offset: 0,
                position: 0,
            },
            _ => self.offsets[n - 1],
        }
    }

    /// Relative offset from which to scan for the first batch with max timestamp >=
    /// `timestamp_ms`: every batch before it has a smaller max timestamp.
    pub(crate) fn lookup_time(&self, timestamp_ms: i64) -> u32 {
        let n = self
            .times
            .partition_point(|e| e.timestamp_ms < timestamp_ms);
        match n {
            0 => 0,
            _ => self.times[n - 1].rel_offset,
        }
    }
}

/// Serialises the offset index (whole-file format).
pub(crate) fn encode_offsets(entries: &[OffsetEntry]) -> Vec<u8> {
    let mut out = Vec::with_capacity(entries.len() * OFFSET_ENTRY_LEN);
    for e in entries {
        out.extend_from_slice(&e.rel_offset.to_be_bytes());
        out.extend_from_slice(&e.position.to_be_bytes());
    }
    out
}

/// Serialises the time index (whole-file format).
pub(crate) fn encode_times(entries: &[TimeEntry]) -> Vec<u8> {
    let mut out = Vec::with_capacity(entries.len() * TIME_ENTRY_LEN);
    for e in entries {
        out.extend_from_slice(&e.timestamp_ms.to_be_bytes());
        out.extend_from_slice(&e.rel_offset.to_be_bytes());
    }
    out
}

fn be_u32(bytes: &[u8]) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(bytes);
    u32::from_be_bytes(b)
}

/// Decodes and validates an offset index: whole entries, both columns strictly
/// increasing, positions inside `log_size`, offsets below `rel_offset_end`.
pub fn decode_offsets(
    data: &[u8],
    log_size: u64,
    rel_offset_end: u64,
) -> Result<Vec<OffsetEntry>, &'static str> {
    if !data.len().is_multiple_of(OFFSET_ENTRY_LEN) {
        return Err("offset index size is not a whole number of entries");
    }
    let mut out: Vec<OffsetEntry> = Vec::with_capacity(data.len() / OFFSET_ENTRY_LEN);
    for chunk in data.chunks_exact(OFFSET_ENTRY_LEN) {
        let entry = OffsetEntry {
            rel_offset: be_u32(&chunk[..4]),
            position: be_u32(&chunk[4..]),
        };
        if let Some(prev) = out.last() {
            if entry.rel_offset <= prev.rel_offset || entry.position <= prev.position {
                return Err("offset index entries are not increasing");
            }
        }
        if u64::from(entry.position) >= log_size || u64::from(entry.rel_offset) >= rel_offset_end {
            return Err("offset index points past the end of the segment");
        }
        out.push(entry);
    }
    Ok(out)
}

/// Decodes and validates a time index: whole entries, timestamps strictly increasing,
/// offsets non-decreasing and below `rel_offset_end`.
pub fn decode_times(data: &[u8], rel_offset_end: u64) -> Result<Vec<TimeEntry>, &'static str> {
    if !data.len().is_multiple_of(TIME_ENTRY_LEN) {
        return Err("time index size is not a whole number of entries");
    }
    let mut out: Vec<TimeEntry> = Vec::with_capacity(data.len() / TIME_ENTRY_LEN);
    for chunk in data.chunks_exact(TIME_ENTRY_LEN) {
        let mut ts = [0u8; 8];
        ts.copy_from_slice(&chunk[..8]);
        let entry = TimeEntry {
            timestamp_ms: i64::from_be_bytes(ts),
            rel_offset: be_u32(&chunk[8..]),
        };
        if let Some(prev) = out.last() {
            if entry.timestamp_ms <= prev.timestamp_ms || entry.rel_offset < prev.rel_offset {
                return Err("time index entries are not increasing");
            }
        }
        if u64::from(entry.rel_offset) >= rel_offset_end {
            return Err("time index points past the end of the segment");
        }
        out.push(entry);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filled(interval: u32) -> SegmentIndex {
        let mut index = SegmentIndex::new(interval);
        // 10 batches of 100 bytes, 5 offsets each, timestamps rising by 10.
        for i in 0..10u32 {
            index.on_batch(i * 5, i * 100, 100, 1_000 + i64::from(i) * 10);
        }
        index.seal();
        index
    }

    #[test]
    fn entries_are_spaced_by_the_interval() {
        let index = filled(250);
        let positions: Vec<u32> = index.offsets.iter().map(|e| e.position).collect();
        assert_eq!(positions, vec![300, 600, 900]);
        assert_eq!(
            index.lookup(0),
            OffsetEntry {
                rel_offset: 0,
                position: 0
            }
        );
        assert_eq!(
            index.lookup(17),
            OffsetEntry {
                rel_offset: 15,
                position: 300
            }
        );
        assert_eq!(
            index.lookup(1_000),
            OffsetEntry {
                rel_offset: 45,
                position: 900
            }
        );
        assert_eq!(index.max_timestamp_ms(), 1_090);
        assert_eq!(index.times.last().map(|e| e.timestamp_ms), Some(1_090));
    }

    #[test]
    fn time_lookup_starts_before_the_first_match() {
        let index = filled(250);
        // Every batch before the returned offset has a smaller max timestamp.
        assert_eq!(index.lookup_time(0), 0);
        let rel = index.lookup_time(1_065);
        assert!(
            rel <= 30,
            "batch 6 (rel 30) holds ts 1060 < 1065; scan must not skip 7"
        );
        assert!(rel >= 15);
    }

    #[test]
    fn persisted_indexes_round_trip_and_validate() {
        let index = filled(250);
        let offsets = encode_offsets(&index.offsets);
        let times = encode_times(&index.times);
        assert_eq!(
            decode_offsets(&offsets, 1_000, 50),
            Ok(index.offsets.clone())
        );
        assert_eq!(decode_times(&times, 50), Ok(index.times.clone()));
        assert!(decode_offsets(&offsets[..offsets.len() - 1], 1_000, 50).is_err());
        assert!(
            decode_offsets(&offsets, 900, 50).is_err(),
            "position past the log"
        );
        assert!(decode_times(&times, 40).is_err(), "offset past the segment");
        let mut swapped = offsets.clone();
        swapped.rotate_left(OFFSET_ENTRY_LEN);
        assert!(
            decode_offsets(&swapped, 1_000, 50).is_err(),
            "not monotonic"
        );
    }
}
