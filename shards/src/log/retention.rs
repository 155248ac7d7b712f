//! Retention decisions: which whole closed segments to delete. Pure functions; the
//! log applies the result (`PartitionLog::enforce_retention`).

/// What retention needs to know about one closed segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SegmentStats {
    pub(crate) size_bytes: u64,
    /// Largest batch max timestamp in the segment (-1 if none had one).
    pub(crate) max_timestamp_ms: i64,
}

/// How many of the oldest `closed` segments (oldest first; the active segment is never
/// in the list) to delete. `total_bytes` is the whole log including the active one.
///
/// A segment goes when its newest batch is older than `now_ms - retention_ms`, or when
/// the log without it still holds at least `retention_bytes`. Deletion is a prefix:
/// it stops at the first segment that must stay, so offsets remain contiguous.
pub(crate) fn segments_to_delete(
    closed: &[SegmentStats],
    total_bytes: u64,
    now_ms: i64,
    retention_ms: Option<i64>,
    retention_bytes: Option<u64>,
) -> usize {
    let cutoff_ms = retention_ms.map(|ms| now_ms.saturating_sub(ms.max(0)));
    let mut remaining = total_bytes;
    let mut count = 0;
    for seg in closed {
        let expired = cutoff_ms.is_some_and(|cutoff| seg.max_timestamp_ms < cutoff);
        let over_size =
            retention_bytes.is_some_and(|limit| remaining.saturating_sub(seg.size_bytes) >= limit);
        if !(expired || over_size) {
            break;
        }
        remaining = remaining.saturating_sub(seg.size_bytes);
        count += 1;
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(size_bytes: u64, max_timestamp_ms: i64) -> SegmentStats {
        SegmentStats {
            size_bytes,
            max_timestamp_ms,
        }
    }

    #[test]
    fn nothing_is_deleted_without_limits() {
        let closed = [seg(100, 0), seg(100, 0)];
        assert_eq!(segments_to_delete(&closed, 300, 1_000_000, None, None), 0);
    }

    #[test]
    fn time_retention_deletes_the_expired_prefix_only() {
        let closed = [seg(100, 1_000), seg(100, 5_000), seg(100, 2_000)];
        // cutoff = 10_000 - 6_000 = 4_000: the first is expired, the second is not, and
        // the third (though old) stays behind it to keep offsets contiguous.
        assert_eq!(
            segments_to_delete(&closed, 400, 10_000, Some(6_000), None),
            1
        );
        assert_eq!(
            segments_to_delete(&closed, 400, 10_000, Some(1_000), None),
            3
        );
    }

    #[test]
    fn size_retention_keeps_at_least_the_limit() {
        let closed = [seg(100, 0), seg(100, 0), seg(100, 0)];
        // total 350 (50 in the active segment): deleting two leaves 150 >= 150.
        assert_eq!(segments_to_delete(&closed, 350, 0, None, Some(150)), 2);
        assert_eq!(segments_to_delete(&closed, 350, 0, None, Some(300)), 0);
        assert_eq!(segments_to_delete(&closed, 350, 0, None, Some(0)), 3);
    }

    #[test]
    fn either_limit_is_enough_to_delete() {
        // The first goes by size (150 left >= 150), the second by time.
        let closed = [seg(100, 9_999), seg(100, 1), seg(100, 9_999)];
        assert_eq!(
            segments_to_delete(&closed, 350, 10_000, Some(5_000), Some(250)),
            2
        );
    }
}
