//! Start-up recovery of a partition directory.
//!
//! * Closed segments (all but the newest) were trimmed, synced and indexed when they
//!   were rolled; their indexes are only validated, and rebuilt by a scan if missing or
//!   damaged.
//! * The active (newest) segment may end in a torn write. It is scanned from the last
//!   trusted index entry, validating each batch by length, CRC32C and contiguous
//!   offsets. At the first bad or partial batch the log ends: the file is truncated
//!   there, so stale bytes can never be taken for data later, and appends continue at
//!   the offset after the last good batch.
//!
//! Runs on the partition's shard inside `PartitionLog::open`.

use std::io;
use std::path::Path;
use std::rc::Rc;

use bytes::Bytes;
use tracing::{debug, warn};

use super::config::BATCH_BYTES_MAX;
use super::error::LogError;
use super::file::{self, DirectFile};
use super::index::{self, SegmentIndex};
use super::segment::{parse_segment_name, segment_path, Segment};
use crate::batch::{self, BatchHeader, BATCH_HEADER_LEN, LOG_OVERHEAD};

/// Scan reads this much of a segment at a time.
const SCAN_CHUNK_BYTES: usize = 1 << 20;

/// What a scan of a segment found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanOutcome {
    /// File position after the last valid batch.
    pub end_position: u64,
    /// Offset after the last valid batch.
    pub next_offset: i64,
    /// Why the scan stopped before the end of the file; None if it reached the end.
    pub stopped: Option<String>,
    /// Whether the bytes where it stopped are zeros (preallocated, never written).
    pub zero_fill: bool,
}

/// A window of the file being scanned, read a large chunk at a time.
struct ScanBuffer {
    chunk: Bytes,
    chunk_pos: u64,
}

impl ScanBuffer {
    /// The `len` bytes at `pos` (all inside the file), reading more if needed.
    async fn window(
        &mut self,
        file: &DirectFile,
        pos: u64,
        len: usize,
        remaining: u64,
    ) -> io::Result<&[u8]> {
        let chunk_end = self.chunk_pos + self.chunk.len() as u64;
        if pos < self.chunk_pos || pos + len as u64 > chunk_end {
            let read_len = len.max(SCAN_CHUNK_BYTES.min(remaining as usize));
            self.chunk = file.read_exact_at(pos, read_len).await?;
            self.chunk_pos = pos;
        }
        let at = (pos - self.chunk_pos) as usize;
        Ok(&self.chunk[at..at + len])
    }
}

/// Where a scan is: the position and offset of the next batch expected.
struct ScanState {
    base_offset: i64,
    pos: u64,
    next: i64,
}

impl ScanState {
    fn stop(&self, reason: String, zero_fill: bool) -> ScanOutcome {
        ScanOutcome {
            end_position: self.pos,
            next_offset: self.next,
            stopped: Some(reason),
            zero_fill,
        }
    }

    /// Checks the head (up to `BATCH_HEADER_LEN` bytes) of the batch at `pos`, with
    /// `remaining` file bytes from there. Returns the whole batch's length, which the
    /// caller may then read: it is checked against the file and `BATCH_BYTES_MAX` first.
    fn check_head(&self, head: &[u8], remaining: u64) -> Result<usize, ScanOutcome> {
        let zero_fill = is_zero(&head[..LOG_OVERHEAD.min(head.len())]);
        let header = BatchHeader::parse(head).map_err(|e| self.stop(e.to_string(), zero_fill))?;
        let len = header.total_len();
        if header.batch_length < batch::BATCH_LENGTH_MIN
            || len as u64 > remaining
            || len > BATCH_BYTES_MAX
        {
            let reason = format!("batch length {} does not fit", header.batch_length);
            return Err(self.stop(reason, zero_fill));
        }
        Ok(len)
    }

    /// Validates the whole batch at `pos`, indexes it and moves past it.
    fn accept(&mut self, whole: &[u8], index: &mut SegmentIndex) -> Result<(), ScanOutcome> {
        let header = match batch::validate(whole) {
            Ok(h) if h.base_offset == self.next => h,
            Ok(h) => {
                let reason = format!("batch has offset {}, expected {}", h.base_offset, self.next);
                return Err(self.stop(reason, false));
            }
            Err(e) => return Err(self.stop(e.to_string(), false)),
        };
        let Some(next) = header.next_offset() else {
            return Err(self.stop("batch offsets run past i64::MAX".into(), false));
        };
        let (Ok(rel), Ok(position)) = (
            u32::try_from(self.next - self.base_offset),
            u32::try_from(self.pos),
        ) else {
            let reason = "batch does not fit the segment's u32 index".into();
            return Err(self.stop(reason, false));
        };
        // `whole` is at most BATCH_BYTES_MAX (check_head), so its length fits a u32.
        index.on_batch(rel, position, whole.len() as u32, header.max_timestamp);
        self.pos += whole.len() as u64;
        self.next = next;
        Ok(())
    }

    fn finished(&self) -> ScanOutcome {
        ScanOutcome {
            end_position: self.pos,
            next_offset: self.next,
            stopped: None,
            zero_fill: false,
        }
    }
}

/// Scans batches from `start` (a batch boundary holding offset `start_offset`) to the
/// end of the file, feeding each valid batch to `index`.
pub(crate) async fn scan_segment(
    file: &DirectFile,
    base_offset: i64,
    start: u64,
    start_offset: i64,
    index: &mut SegmentIndex,
) -> io::Result<ScanOutcome> {
    let file_size = file.size().await?;
    let mut buf = ScanBuffer {
        chunk: Bytes::new(),
        chunk_pos: start,
    };
    let mut state = ScanState {
        base_offset,
        pos: start,
        next: start_offset,
    };
    while state.pos < file_size {
        let (pos, remaining) = (state.pos, file_size - state.pos);
        let head_len = BATCH_HEADER_LEN.min(remaining as usize);
        let head = buf.window(file, pos, head_len, remaining).await?;
        let len = match state.check_head(head, remaining) {
            Ok(len) => len,
            Err(stopped) => return Ok(stopped),
        };
        let whole = buf.window(file, pos, len, remaining).await?;
        if let Err(stopped) = state.accept(whole, index) {
            return Ok(stopped);
        }
    }
    Ok(state.finished())
}

/// `scan_segment` over a segment held in memory, with the same checks; what the
/// recovery fuzz target and the corpus replay run.
pub(crate) fn scan_slice(
    data: &[u8],
    base_offset: i64,
    start: u64,
    start_offset: i64,
    index: &mut SegmentIndex,
) -> ScanOutcome {
    let mut state = ScanState {
        base_offset,
        pos: start,
        next: start_offset,
    };
    let file_size = data.len() as u64;
    while state.pos < file_size {
        let (pos, remaining) = (state.pos as usize, file_size - state.pos);
        let head = &data[pos..pos + BATCH_HEADER_LEN.min(remaining as usize)];
        let len = match state.check_head(head, remaining) {
            Ok(len) => len,
            Err(stopped) => return stopped,
        };
        if let Err(stopped) = state.accept(&data[pos..pos + len], index) {
            return stopped;
        }
    }
    state.finished()
}

/// Recovers a whole active segment held in memory, as `recover_active` does with no
/// index file: the outcome and the rebuilt index's entry counts.
pub fn scan_segment_bytes(
    data: &[u8],
    base_offset: i64,
    interval_bytes: u32,
) -> (ScanOutcome, usize, usize) {
    let mut index = SegmentIndex::new(interval_bytes);
    let outcome = scan_slice(data, base_offset, 0, base_offset, &mut index);
    index.seal();
    (outcome, index.offsets.len(), index.times.len())
}

fn is_zero(bytes: &[u8]) -> bool {
    bytes.iter().all(|b| *b == 0)
}

/// Base offsets of the directory's segments, oldest first. Removes leftovers: index
/// files of segments that are gone and temporary files of interrupted writes.
pub(crate) async fn list_segments(dir: &Path) -> Result<Vec<i64>, LogError> {
    let names = file::list_dir(dir)
        .await
        .map_err(|e| LogError::io(format!("listing partition directory {}", dir.display()), e))?;
    let mut bases: Vec<i64> = names
        .iter()
        .filter_map(|n| parse_segment_name(n, "log"))
        .collect();
    bases.sort_unstable();
    for name in &names {
        let orphan_index = ["index", "timeindex"]
            .iter()
            .filter_map(|ext| parse_segment_name(name, ext))
            .any(|base| bases.binary_search(&base).is_err());
        if orphan_index || name.ends_with(".tmp") {
            debug!(dir = %dir.display(), file = %name, "removing leftover file");
            file::remove_file(&dir.join(name)).await.map_err(|e| {
                LogError::io(format!("removing leftover {name} in {}", dir.display()), e)
            })?;
        }
    }
    Ok(bases)
}

/// Loads a segment's persisted indexes; None if either is missing or invalid.
async fn load_index(
    dir: &Path,
    base_offset: i64,
    log_size: u64,
    rel_offset_end: u64,
    interval_bytes: u32,
) -> Option<SegmentIndex> {
    let read = |ext: &'static str| {
        let path = segment_path(dir, base_offset, ext);
        async move {
            match file::read_small_file(&path).await {
                Ok(data) => data,
                Err(err) => {
                    warn!(file = %path.display(), %err, "cannot read index; rebuilding it");
                    None
                }
            }
        }
    };
    let offsets = read("index").await?;
    let times = read("timeindex").await?;
    let decoded = index::decode_offsets(&offsets, log_size, rel_offset_end)
        .and_then(|o| Ok((o, index::decode_times(&times, rel_offset_end)?)));
    match decoded {
        Ok((offsets, times)) => Some(SegmentIndex::from_entries(interval_bytes, offsets, times)),
        Err(reason) => {
            warn!(dir = %dir.display(), base_offset, reason, "damaged index; rebuilding it");
            None
        }
    }
}

/// Writes a segment's indexes (whole files, atomically).
pub(crate) async fn persist_index(
    dir: &Path,
    base_offset: i64,
    index: &SegmentIndex,
) -> Result<(), LogError> {
    for (ext, data) in [
        ("index", index::encode_offsets(&index.offsets)),
        ("timeindex", index::encode_times(&index.times)),
    ] {
        let path = segment_path(dir, base_offset, ext);
        file::write_file_atomic(&path, &data)
            .await
            .map_err(|e| LogError::io(format!("writing index {}", path.display()), e))?;
    }
    Ok(())
}

async fn open_segment_file(dir: &Path, base_offset: i64) -> Result<(DirectFile, u64), LogError> {
    let path = segment_path(dir, base_offset, "log");
    let context = |what: &str| format!("{what} segment {}", path.display());
    let file = DirectFile::open_existing(&path)
        .await
        .map_err(|e| LogError::io(context("opening"), e))?;
    let size = file
        .size()
        .await
        .map_err(|e| LogError::io(context("sizing"), e))?;
    Ok((file, size))
}

/// Opens a closed segment, which ends where the next one (`next_base`) begins.
pub(crate) async fn recover_closed(
    dir: &Path,
    base_offset: i64,
    next_base: i64,
    interval_bytes: u32,
) -> Result<Segment, LogError> {
    let (file, size) = open_segment_file(dir, base_offset).await?;
    let rel_end = u64::try_from(next_base - base_offset).unwrap_or(0);
    let index = match load_index(dir, base_offset, size, rel_end, interval_bytes).await {
        Some(index) => index,
        None => {
            let mut index = SegmentIndex::new(interval_bytes);
            let scan = scan_segment(&file, base_offset, 0, base_offset, &mut index)
                .await
                .map_err(|e| LogError::io(format!("scanning {}", file.path().display()), e))?;
            if scan.stopped.is_some() || scan.next_offset != next_base {
                // Offsets after this segment exist, so it cannot be cut; reads of the
                // damaged range will report Corrupt.
                warn!(file = %file.path().display(), position = scan.end_position, reason = ?scan.stopped,
                    "closed segment is damaged; indexed up to the damage");
            }
            index.seal();
            persist_index(dir, base_offset, &index).await?;
            index
        }
    };
    Ok(Segment {
        base_offset,
        next_offset: next_base,
        size,
        written_size: size,
        written_next_offset: next_base,
        file: Some(Rc::new(file)),
        index,
        sealed: true,
    })
}

/// Bound on the relative offsets of an active segment's index: a u32, and small enough
/// that base + relative cannot pass `i64::MAX` (the base comes from a file name).
fn active_rel_end(base_offset: i64) -> u64 {
    let room = u64::try_from(i64::MAX.saturating_sub(base_offset)).unwrap_or(0);
    room.min(u64::from(u32::MAX) + 1)
}

/// Opens (or creates) the active segment, scans it after its last trusted index entry,
/// and cuts a torn tail off the file.
pub(crate) async fn recover_active(
    dir: &Path,
    base_offset: i64,
    interval_bytes: u32,
) -> Result<Segment, LogError> {
    let path = segment_path(dir, base_offset, "log");
    let file = DirectFile::open_or_create(&path)
        .await
        .map_err(|e| LogError::io(format!("opening segment {}", path.display()), e))?;
    let size = file
        .size()
        .await
        .map_err(|e| LogError::io(format!("sizing {}", path.display()), e))?;
    let rel_end = active_rel_end(base_offset);
    let loaded = load_index(dir, base_offset, size, rel_end, interval_bytes).await;
    let mut scan = None;
    if let Some(mut index) = loaded {
        // Entries were persisted after their data was synced; resume at the last one.
        let start = index.offsets.last().copied().unwrap_or(index::OffsetEntry {
            rel_offset: 0,
            position: 0,
        });
        index.truncate_from(start.rel_offset);
        let start_offset = base_offset + i64::from(start.rel_offset);
        let outcome = scan_segment(
            &file,
            base_offset,
            u64::from(start.position),
            start_offset,
            &mut index,
        )
        .await
        .map_err(|e| LogError::io(format!("scanning {}", path.display()), e))?;
        // Nothing valid where the index pointed: distrust it and scan everything.
        let trusted = outcome.end_position > u64::from(start.position) || outcome.stopped.is_none();
        if trusted {
            scan = Some((outcome, index));
        }
    }
    let (outcome, index) = match scan {
        Some(found) => found,
        None => {
            let mut index = SegmentIndex::new(interval_bytes);
            let outcome = scan_segment(&file, base_offset, 0, base_offset, &mut index)
                .await
                .map_err(|e| LogError::io(format!("scanning {}", path.display()), e))?;
            (outcome, index)
        }
    };
    cut_torn_tail(&file, size, &outcome).await?;
    Ok(Segment {
        base_offset,
        next_offset: outcome.next_offset,
        size: outcome.end_position,
        written_size: outcome.end_position,
        written_next_offset: outcome.next_offset,
        file: Some(Rc::new(file)),
        index,
        sealed: false,
    })
}

/// Truncates the file to its last valid batch, so later writes start on clean ground.
async fn cut_torn_tail(
    file: &DirectFile,
    size: u64,
    outcome: &ScanOutcome,
) -> Result<(), LogError> {
    if outcome.end_position == size {
        return Ok(());
    }
    let path = file.path().display();
    if outcome.zero_fill {
        debug!(file = %path, end = outcome.end_position, "trimming unwritten preallocated space");
    } else {
        warn!(file = %path, end = outcome.end_position, size, reason = ?outcome.stopped,
            next_offset = outcome.next_offset, "truncating torn or corrupt tail of the active segment");
    }
    file.truncate(outcome.end_position)
        .await
        .map_err(|e| LogError::io(format!("truncating torn tail of {path}"), e))?;
    file.fdatasync()
        .await
        .map_err(|e| LogError::io(format!("fdatasync of {path}"), e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::BatchBuilder;

    fn batch(base_offset: i64, records: usize) -> Vec<u8> {
        let mut b = BatchBuilder::new(1_000, 256);
        for i in 0..records {
            b.push(None, Some(format!("v{i}").as_bytes()), 1_000, &[]);
        }
        let mut bytes = b.finish().expect("records pushed");
        batch::set_base_offset(&mut bytes, base_offset);
        bytes
    }

    #[test]
    fn scan_of_memory_matches_a_segment_of_valid_batches_and_a_torn_tail() {
        let mut data = batch(100, 3);
        let first = data.len() as u64;
        data.extend_from_slice(&batch(103, 2));
        let whole = data.len() as u64;
        data.extend_from_slice(&batch(105, 1)[..30]);
        let (outcome, offsets, times) = scan_segment_bytes(&data, 100, 1);
        assert_eq!((outcome.end_position, outcome.next_offset), (whole, 105));
        assert!(outcome.stopped.is_some() && !outcome.zero_fill);
        assert_eq!((offsets, times), (1, 1));
        assert!(first < whole);
    }

    #[test]
    fn a_batch_whose_offsets_pass_i64_max_ends_the_scan_instead_of_wrapping() {
        // Two records from i64::MAX - 1: the offset after it would be i64::MAX + 1.
        let base = i64::MAX - 1;
        let data = batch(base, 2);
        let (outcome, ..) = scan_segment_bytes(&data, base, 4096);
        assert_eq!(outcome.end_position, 0);
        assert_eq!(outcome.next_offset, base);
        assert_eq!(
            outcome.stopped.as_deref(),
            Some("batch offsets run past i64::MAX")
        );
    }

    #[test]
    fn an_active_index_never_points_past_i64_max() {
        assert_eq!(active_rel_end(0), 1 << 32);
        assert_eq!(active_rel_end(i64::MAX - 10), 10);
        assert_eq!(active_rel_end(i64::MAX), 0);
    }
}
