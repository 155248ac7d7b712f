//! Start-up recovery of a partition directory.
//!
//! Every segment is scanned whole at open, each batch validated by length, CRC32C and
//! contiguous offsets, so a flipped bit anywhere is found before anything is served
//! (the cost: start-up reads every segment once). Index files are never trusted: the
//! scan rebuilds each index, and a file that differs from it is rewritten.
//!
//! * Closed segments (all but the newest) were trimmed and synced when they were
//!   rolled: any bad byte in one is damage to acknowledged data and fails the open.
//! * The active (newest) segment may end in a torn write. At the first bad or partial
//!   batch, `tail` tells a torn write (or unwritten space) from damage to written data.
//!   A torn tail is cut off (the file is truncated there, so stale bytes can never be
//!   taken for data later, and appends continue at the offset after the last good
//!   batch); damage fails the open with `LogError::Damaged`, naming the file, the byte
//!   and the offset, and the broker does not start.
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
use super::tail::{self, Tail};
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

/// Makes a segment's index files match `index` (rebuilt by the scan): they are never
/// trusted, only rewritten when they differ (missing, damaged, or written with another
/// interval).
async fn refresh_index(dir: &Path, base_offset: i64, index: &SegmentIndex) -> Result<(), LogError> {
    for (ext, data) in [
        ("index", index::encode_offsets(&index.offsets)),
        ("timeindex", index::encode_times(&index.times)),
    ] {
        let path = segment_path(dir, base_offset, ext);
        let on_disk = match file::read_small_file(&path).await {
            Ok(found) => found,
            Err(err) => {
                warn!(file = %path.display(), %err, "cannot read index; rewriting it");
                None
            }
        };
        match on_disk {
            Some(bytes) if bytes[..] == data[..] => continue,
            Some(_) => warn!(file = %path.display(),
                "index does not match its segment (damaged, or from another index interval); rewritten"),
            None => debug!(file = %path.display(), "index missing; rewritten"),
        }
        file::write_file_atomic(&path, &data)
            .await
            .map_err(|e| LogError::io(format!("writing index {}", path.display()), e))?;
    }
    Ok(())
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

/// Opens a closed segment, which ends where the next one (`next_base`) begins. Every
/// byte of it was synced before the next segment existed, so anything short of whole
/// valid batches from `base_offset` to `next_base` is damage to acknowledged data: the
/// open fails, naming the file and the byte.
pub(crate) async fn recover_closed(
    dir: &Path,
    base_offset: i64,
    next_base: i64,
    interval_bytes: u32,
) -> Result<Segment, LogError> {
    let (file, size) = open_segment_file(dir, base_offset).await?;
    let mut index = SegmentIndex::new(interval_bytes);
    let scan = scan_segment(&file, base_offset, 0, base_offset, &mut index)
        .await
        .map_err(|e| LogError::io(format!("scanning {}", file.path().display()), e))?;
    let reason = match (&scan.stopped, scan.next_offset == next_base) {
        (None, true) => None,
        (Some(reason), _) => Some(reason.clone()),
        (None, false) => Some(format!(
            "the segment ends at offset {}, the next one starts at {next_base}",
            scan.next_offset
        )),
    };
    if let Some(reason) = reason {
        return Err(LogError::Damaged {
            path: file.path().to_path_buf(),
            position: scan.end_position,
            reason: format!("closed segment, offset {}: {reason}", scan.next_offset),
            advice: "later segments hold offsets after it, so it cannot be cut: restore it \
                     from a backup"
                .into(),
        });
    }
    index.seal();
    refresh_index(dir, base_offset, &index).await?;
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

/// Opens (or creates) the active segment and scans it whole. Where the valid batches
/// end, `tail::classify` decides: a torn write or unwritten space is cut off the file;
/// damage to written data fails the open, naming the file, the byte and the offset.
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
    let mut index = SegmentIndex::new(interval_bytes);
    let outcome = scan_segment(&file, base_offset, 0, base_offset, &mut index)
        .await
        .map_err(|e| LogError::io(format!("scanning {}", path.display()), e))?;
    if let Some(reason) = &outcome.stopped {
        if let Tail::Damaged(found) = classify_tail(&file, size, &outcome).await? {
            let (pos, next) = (outcome.end_position, outcome.next_offset);
            return Err(LogError::Damaged {
                path: path.clone(),
                position: pos,
                reason: format!("active segment, offset {next}: {reason}; {found}"),
                advice: format!(
                    "restore it from a backup, or give up offsets from {next} on by cutting \
                     the file there: truncate -s {pos} {}",
                    path.display()
                ),
            });
        }
    }
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

/// Reads the window `tail::classify` needs from where the scan stopped.
async fn classify_tail(
    file: &DirectFile,
    size: u64,
    outcome: &ScanOutcome,
) -> Result<Tail, LogError> {
    let pos = outcome.end_position;
    let context = || format!("reading the tail of {}", file.path().display());
    let left = size.saturating_sub(pos);
    let head_len = (BATCH_HEADER_LEN as u64).min(left) as usize;
    let head = file
        .read_exact_at(pos, head_len)
        .await
        .map_err(|e| LogError::io(context(), e))?;
    let want = tail::window_len(&head) as u64;
    let len = want.min(left) as usize;
    let window = file
        .read_exact_at(pos, len)
        .await
        .map_err(|e| LogError::io(context(), e))?;
    Ok(tail::classify(
        &window,
        pos,
        want >= left,
        outcome.next_offset,
    ))
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
}
