//! One segment: a `<base offset>.log` file of whole record batches, its metadata, the
//! O_DIRECT appender that writes it, and the reader that reads batches back.
//!
//! Appends are 4 KiB-aligned direct writes. The last, partly filled block is kept in
//! memory (`tail`) and written again, completed, by the next write, so a write never
//! has to read the file. Files grow by preallocated chunks so that writes do not
//! allocate blocks one at a time. A sealed segment is truncated to its exact data size.
//!
//! Owned by the partition's shard: `Segment` lives in the log's state, the
//! `SegmentAppender` belongs to the log's flusher task alone.

use std::io;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use bytes::Bytes;

use super::config::BATCH_BYTES_MAX;
use super::error::LogError;
use super::file::{self, DirectFile};
use super::index::SegmentIndex;
use crate::batch::{self, BatchHeader, BATCH_HEADER_LEN};

/// Write granularity. At least the device's direct-I/O alignment.
pub(crate) const BLOCK_BYTES: u64 = 4096;
/// Smallest disk read when serving a fetch; batches are usually much smaller.
const READ_CHUNK_BYTES_MIN: usize = 64 << 10;
/// Largest disk read issued for one fetch step.
const READ_CHUNK_BYTES_MAX: usize = 8 << 20;

pub(crate) fn segment_path(dir: &Path, base_offset: i64, extension: &str) -> PathBuf {
    dir.join(format!("{base_offset:020}.{extension}"))
}

/// Base offset from a file name like `00000000000000000042.log`.
pub(crate) fn parse_segment_name(name: &str, extension: &str) -> Option<i64> {
    let stem = name.strip_suffix(extension)?.strip_suffix('.')?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse::<i64>().ok()
}

/// Metadata of one segment, in the log's state.
#[derive(Debug)]
pub(crate) struct Segment {
    pub(crate) base_offset: i64,
    /// Offset after the last batch assigned to this segment (written or pending).
    pub(crate) next_offset: i64,
    /// Bytes assigned to this segment (written or pending).
    pub(crate) size: u64,
    /// Bytes written to the file; reads from disk stay below this.
    pub(crate) written_size: u64,
    /// Offset after the last batch written to the file.
    pub(crate) written_next_offset: i64,
    /// None until the flusher creates the file of a freshly rolled segment.
    pub(crate) file: Option<Rc<DirectFile>>,
    pub(crate) index: SegmentIndex,
    /// Closed, fully written, synced, indexes persisted: retention may delete it.
    pub(crate) sealed: bool,
}

impl Segment {
    /// A segment that starts with the next append and has no file yet.
    pub(crate) fn rolled(base_offset: i64, index_interval_bytes: u32) -> Segment {
        Segment {
            base_offset,
            next_offset: base_offset,
            size: 0,
            written_size: 0,
            written_next_offset: base_offset,
            file: None,
            index: SegmentIndex::new(index_interval_bytes),
            sealed: false,
        }
    }

    /// Offset relative to the base, if it fits an index entry.
    pub(crate) fn relative(&self, offset: i64) -> Option<u32> {
        u32::try_from(offset.checked_sub(self.base_offset)?).ok()
    }
}

fn align_down(v: u64) -> u64 {
    v - v % BLOCK_BYTES
}

fn align_up(v: u64) -> u64 {
    v.div_ceil(BLOCK_BYTES) * BLOCK_BYTES
}

/// Writes one segment file. Owned by the log's flusher task alone.
pub(crate) struct SegmentAppender {
    pub(crate) base_offset: i64,
    file: Rc<DirectFile>,
    /// Bytes of data in the file.
    written: u64,
    /// The data bytes of the last, partly filled block: `[align_down(written), written)`.
    tail: Vec<u8>,
    /// File size reserved by preallocation.
    allocated: u64,
    preallocate_bytes: u64,
}

impl SegmentAppender {
    /// Creates a new empty segment file and makes its name durable.
    pub(crate) async fn create(
        dir: &Path,
        base_offset: i64,
        preallocate_bytes: u64,
    ) -> Result<SegmentAppender, LogError> {
        let path = segment_path(dir, base_offset, "log");
        let file = DirectFile::open_or_create(&path)
            .await
            .map_err(|e| LogError::io(format!("creating segment {}", path.display()), e))?;
        // A leftover file of that name would hold stale bytes; start from empty.
        file.truncate(0)
            .await
            .map_err(|e| LogError::io(format!("truncating new segment {}", path.display()), e))?;
        file::sync_dir(dir)
            .await
            .map_err(|e| LogError::io(format!("syncing directory {}", dir.display()), e))?;
        Self::resume(Rc::new(file), base_offset, 0, preallocate_bytes).await
    }

    /// Continues appending to an existing file holding `written` bytes of data (and
    /// nothing after them: recovery truncated it).
    pub(crate) async fn resume(
        file: Rc<DirectFile>,
        base_offset: i64,
        written: u64,
        preallocate_bytes: u64,
    ) -> Result<SegmentAppender, LogError> {
        if file.alignment() > BLOCK_BYTES {
            return Err(LogError::io(
                format!("opening {}", file.path().display()),
                io::Error::other(format!(
                    "device needs {}-byte direct I/O alignment, more than {BLOCK_BYTES}",
                    file.alignment()
                )),
            ));
        }
        let tail_start = align_down(written);
        let tail = file
            .read_exact_at(tail_start, (written - tail_start) as usize)
            .await
            .map_err(|e| LogError::io(format!("reading tail of {}", file.path().display()), e))?;
        Ok(SegmentAppender {
            base_offset,
            file,
            written,
            tail: tail.to_vec(),
            allocated: written,
            preallocate_bytes: preallocate_bytes.max(BLOCK_BYTES),
        })
    }

    pub(crate) fn file(&self) -> &Rc<DirectFile> {
        &self.file
    }

    pub(crate) fn written(&self) -> u64 {
        self.written
    }

    fn context(&self, what: &str) -> String {
        format!("{what} {}", self.file.path().display())
    }

    /// Writes `chunks` after the current data in one aligned write, which also rewrites
    /// the partly filled tail block.
    pub(crate) async fn append(&mut self, chunks: &[Bytes]) -> Result<(), LogError> {
        let data_len: u64 = chunks.iter().map(|c| c.len() as u64).sum();
        if data_len == 0 {
            return Ok(());
        }
        let start = align_down(self.written);
        debug_assert_eq!(self.written - start, self.tail.len() as u64);
        let end = self.written + data_len;
        self.reserve(align_up(end)).await?;

        let mut buf = self
            .file
            .alloc((align_up(end) - start) as usize, (end - start) as usize);
        let out = buf.as_mut_slice();
        out[..self.tail.len()].copy_from_slice(&self.tail);
        let mut at = self.tail.len();
        for chunk in chunks {
            out[at..at + chunk.len()].copy_from_slice(chunk);
            at += chunk.len();
        }
        let new_tail_start = (align_down(end) - start) as usize;
        let new_tail = out[new_tail_start..at].to_vec();

        self.file
            .write_aligned(buf, start)
            .await
            .map_err(|e| LogError::io(self.context("writing"), e))?;
        self.written = end;
        self.tail = new_tail;
        Ok(())
    }

    /// Makes sure the file has blocks reserved up to `needed` bytes.
    async fn reserve(&mut self, needed: u64) -> Result<(), LogError> {
        if needed <= self.allocated {
            return Ok(());
        }
        let target = needed.max(self.allocated + self.preallocate_bytes);
        self.file
            .pre_allocate(target)
            .await
            .map_err(|e| LogError::io(self.context("preallocating"), e))?;
        self.allocated = target;
        Ok(())
    }

    pub(crate) async fn sync(&self) -> Result<(), LogError> {
        self.file
            .fdatasync()
            .await
            .map_err(|e| LogError::io(self.context("fdatasync of"), e))
    }

    /// Cuts the preallocated space after the data and syncs: the file is then exactly
    /// its batches, as a closed segment must be.
    pub(crate) async fn trim_and_sync(&mut self) -> Result<(), LogError> {
        self.file
            .truncate(self.written)
            .await
            .map_err(|e| LogError::io(self.context("truncating"), e))?;
        self.allocated = self.written;
        self.sync().await
    }
}

/// Where a disk read starts and where the readable data of the segment ends.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DiskRead {
    /// File position of a batch boundary at or before the wanted offset (from the index).
    pub(crate) position: u64,
    /// Base offset of the batch at `position`.
    pub(crate) position_offset: i64,
    /// Data in the file ends here (bytes written) ...
    pub(crate) end_position: u64,
    /// ... and at this offset.
    pub(crate) end_offset: i64,
    /// First offset the caller wants.
    pub(crate) offset: i64,
    /// Byte budget; the first batch is returned even if larger.
    pub(crate) max_bytes: usize,
    /// Whether a first batch larger than `max_bytes` may be returned.
    pub(crate) allow_oversized_first: bool,
}

fn corrupt(file: &DirectFile, position: u64, reason: impl Into<String>) -> LogError {
    LogError::Corrupt {
        path: file.path().to_owned(),
        position,
        reason: reason.into(),
    }
}

/// Reads whole batches from disk, from the one containing `req.offset` on, checking
/// length, contiguous offsets and CRC32C of each.
pub(crate) async fn read_batches(file: &DirectFile, req: DiskRead) -> Result<Vec<Bytes>, LogError> {
    let mut out: Vec<Bytes> = Vec::new();
    let mut out_bytes = 0usize;
    let mut pos = req.position;
    let mut expected = req.position_offset;
    let mut want = req
        .max_bytes
        .clamp(READ_CHUNK_BYTES_MIN, READ_CHUNK_BYTES_MAX);
    while pos < req.end_position && expected < req.end_offset {
        let len = want.min((req.end_position - pos) as usize);
        let chunk = file
            .read_exact_at(pos, len)
            .await
            .map_err(|e| LogError::io(format!("reading {}", file.path().display()), e))?;
        let mut at = 0usize;
        while let Some(header) = next_header(file, &chunk, at, pos, req.end_position)? {
            let len = header.total_len();
            if at + len > chunk.len() {
                // Partial batch at the end of the chunk: read again from its start.
                want = want.max(len);
                break;
            }
            let bytes = chunk.slice(at..at + len);
            let position = pos + at as u64;
            let header =
                batch::validate(&bytes).map_err(|e| corrupt(file, position, e.to_string()))?;
            if header.base_offset != expected {
                let reason = format!(
                    "batch has offset {}, expected {expected}",
                    header.base_offset
                );
                return Err(corrupt(file, position, reason));
            }
            expected = header
                .next_offset()
                .ok_or_else(|| corrupt(file, position, "batch offsets run past i64::MAX"))?;
            at += len;
            if header.last_offset() < req.offset {
                continue;
            }
            let first = out.is_empty() && req.allow_oversized_first;
            if !first && out_bytes + len > req.max_bytes {
                return Ok(out);
            }
            out_bytes += len;
            out.push(bytes);
            if out_bytes >= req.max_bytes || expected >= req.end_offset {
                return Ok(out);
            }
        }
        pos += at as u64;
    }
    if out.is_empty() && req.allow_oversized_first {
        // The index and offsets say the batch is here; the data does not have it.
        let reason = format!("offset {} is missing from the segment data", req.offset);
        return Err(corrupt(file, pos, reason));
    }
    Ok(out)
}

/// Header of the batch at `chunk[at..]`, or None if the chunk ends before the header
/// does (the caller reads on). Errors if the batch would run past the segment's data.
fn next_header(
    file: &DirectFile,
    chunk: &Bytes,
    at: usize,
    chunk_pos: u64,
    end_position: u64,
) -> Result<Option<BatchHeader>, LogError> {
    let position = chunk_pos + at as u64;
    batch_at(chunk, at, position, end_position).map_err(|reason| corrupt(file, position, reason))
}

/// The pure part of `next_header`: `position` is where `chunk[at..]` sits in the file.
/// The batch length read here sizes the next disk read, so it is checked against the
/// data left and against `BATCH_BYTES_MAX` before anyone trusts it.
pub fn batch_at(
    chunk: &[u8],
    at: usize,
    position: u64,
    end_position: u64,
) -> Result<Option<BatchHeader>, &'static str> {
    let rest = chunk.get(at..).unwrap_or_default();
    if rest.len() < BATCH_HEADER_LEN {
        if position + BATCH_HEADER_LEN as u64 > end_position && position < end_position {
            return Err("partial batch header at the end of the data");
        }
        return Ok(None);
    }
    let header = BatchHeader::parse(rest).map_err(|_| "truncated batch header")?;
    if header.batch_length < batch::BATCH_LENGTH_MIN || header.magic != batch::MAGIC_V2 {
        return Err("bad batch length or magic");
    }
    if header.total_len() > BATCH_BYTES_MAX {
        return Err("batch is larger than any the log accepts");
    }
    if position.saturating_add(header.total_len() as u64) > end_position {
        return Err("batch runs past the end of the segment data");
    }
    Ok(Some(header))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(batch_length: i32) -> Vec<u8> {
        let mut b = vec![0u8; BATCH_HEADER_LEN];
        b[8..12].copy_from_slice(&batch_length.to_be_bytes());
        b[16] = batch::MAGIC_V2 as u8;
        b
    }

    #[test]
    fn a_batch_length_over_the_log_limit_is_corrupt_not_a_giant_read() {
        // The length would fit the segment's data, so only the limit stops a read
        // (and a buffer) of a gigabyte sized by one corrupt field.
        let huge = (BATCH_BYTES_MAX - batch::LOG_OVERHEAD + 1) as i32;
        let end = 1u64 << 31;
        assert_eq!(
            batch_at(&head(huge), 0, 0, end),
            Err("batch is larger than any the log accepts")
        );
        let ok = batch_at(&head(1000), 0, 0, end).map(|h| h.map(|h| h.total_len()));
        assert_eq!(ok, Ok(Some(1012)));
        assert_eq!(
            batch_at(&head(1000), 0, 0, 500),
            Err("batch runs past the end of the segment data")
        );
        assert_eq!(batch_at(&head(1000)[..20], 0, 0, 1 << 20), Ok(None));
        assert!(batch_at(&head(1000)[..20], 0, 0, 30).is_err());
    }

    #[test]
    fn segment_names_are_twenty_digit_base_offsets() {
        let path = segment_path(Path::new("/d"), 42, "log");
        assert_eq!(path, PathBuf::from("/d/00000000000000000042.log"));
        assert_eq!(
            parse_segment_name("00000000000000000042.log", "log"),
            Some(42)
        );
        assert_eq!(
            parse_segment_name("00000000000000000042.index", "log"),
            None
        );
        assert_eq!(parse_segment_name("42.log", "log"), None);
        assert_eq!(parse_segment_name("0000000000000000004x.log", "log"), None);
    }
}
