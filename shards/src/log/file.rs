//! Our thin wrapper over the runtime's direct-I/O files.
//!
//! This is the only module that names glommio file types, so a fork of glommio or a
//! move to raw `io-uring` changes this file and nothing else (DESIGN.md "Threads and
//! cores"). Everything returns `std::io::Error`.
//!
//! It also counts this thread's fdatasync calls and their latency (`SyncStats`), read by
//! the broker's `/metrics` from another thread.
//!
//! Owned by the partition's shard; `!Send` like the executor's files.

use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use glommio::io::{DmaBuffer, DmaFile, OpenOptions};

/// Upper bound on an index (or other small metadata) file we agree to read whole.
pub(crate) const SMALL_FILE_BYTES_MAX: u64 = 64 << 20;

fn io_err(err: glommio::GlommioError<()>) -> io::Error {
    err.into()
}

thread_local! {
    /// Devices whose io_uring poll-ring support this executor thread has probed.
    static PROBED_DEVICES: RefCell<HashSet<u64>> = RefCell::new(HashSet::new());
    /// Directories already known to be on a probed device: their files open without
    /// asking for the directory's device again (a hop to the blocking thread).
    static PREPARED_DIRS: RefCell<HashSet<PathBuf>> = RefCell::new(HashSet::new());
    static PROBE_SEQ: Cell<u64> = const { Cell::new(0) };
    /// fdatasyncs of files opened through this module on this thread (one shard).
    static SYNC_STATS: Arc<SyncStats> = Arc::new(SyncStats::default());
}

/// Latency buckets of `SyncStats`: bucket `i` counts syncs of at most `2^i` µs, the
/// last one everything slower (2^20 µs is about one second).
pub const SYNC_LATENCY_BUCKETS: usize = 22;

/// fdatasync calls made by one thread (one shard) and how long they took.
///
/// Written only by its own thread, so an increment is a plain load and store (no locked
/// read-modify-write); any thread may read it (Relaxed: figures for an operator, not
/// synchronisation).
#[derive(Debug, Default)]
pub struct SyncStats {
    count: AtomicU64,
    latency_us_sum: AtomicU64,
    buckets: [AtomicU64; SYNC_LATENCY_BUCKETS],
}

impl SyncStats {
    fn record(&self, elapsed_us: u64) {
        bump(&self.count, 1);
        bump(&self.latency_us_sum, elapsed_us);
        let bucket = (u64::BITS - elapsed_us.saturating_sub(1).leading_zeros()) as usize;
        bump(&self.buckets[bucket.min(SYNC_LATENCY_BUCKETS - 1)], 1);
    }

    /// fdatasync calls completed (failed ones included).
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Sum of their latencies, in µs.
    pub fn latency_us_sum(&self) -> u64 {
        self.latency_us_sum.load(Ordering::Relaxed)
    }

    /// Calls per bucket (not cumulative); see `SYNC_LATENCY_BUCKETS`.
    pub fn buckets(&self) -> [u64; SYNC_LATENCY_BUCKETS] {
        std::array::from_fn(|i| self.buckets[i].load(Ordering::Relaxed))
    }
}

/// Adds to a counter only its own thread writes.
fn bump(counter: &AtomicU64, n: u64) {
    counter.store(
        counter.load(Ordering::Relaxed).wrapping_add(n),
        Ordering::Relaxed,
    );
}

/// The calling thread's fdatasync figures; a shard takes this once, on its own thread,
/// and hands it to whoever reports them.
pub fn sync_stats() -> Arc<SyncStats> {
    SYNC_STATS.with(Arc::clone)
}

/// Runs one fdatasync and records it in this thread's `SyncStats`.
async fn timed_fdatasync(file: &DmaFile) -> io::Result<()> {
    let started = Instant::now();
    let synced = file.fdatasync().await.map_err(io_err);
    let elapsed_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
    SYNC_STATS.with(|s| s.record(elapsed_us));
    synced
}

/// Makes glommio decide correctly whether the device of `dir` supports polled I/O.
///
/// glommio 0.9 probes this once per device and thread, on the first direct-I/O open,
/// by reading the opened file. When that file is empty the read succeeds without
/// reaching the driver, glommio concludes "pollable", and every later read on that
/// device fails with EOPNOTSUPP (seen on ext4 over virtio). So before our first open
/// on a device we open a non-empty scratch file, which gives the probe a real read.
///
/// Every open in this module calls it. Code elsewhere that opens glommio DMA files on
/// the same executor thread should call it first with the file's directory.
pub async fn prepare_direct_io(dir: &Path) -> io::Result<()> {
    if PREPARED_DIRS.with(|d| d.borrow().contains(dir)) {
        return Ok(());
    }
    let owned = dir.to_path_buf();
    let dev = off_shard(move || std::fs::metadata(owned)).await?.dev();
    if !PROBED_DEVICES.with(|p| p.borrow().contains(&dev)) {
        probe_device(dir).await?;
        PROBED_DEVICES.with(|p| p.borrow_mut().insert(dev));
    }
    PREPARED_DIRS.with(|d| {
        let mut dirs = d.borrow_mut();
        // Directories of deleted partitions stay listed; start afresh past a bound.
        if dirs.len() >= PREPARED_DIRS_MAX {
            dirs.clear();
        }
        dirs.insert(dir.to_path_buf());
    });
    Ok(())
}

/// Most directories `PREPARED_DIRS` remembers per thread.
const PREPARED_DIRS_MAX: usize = 16_384;

/// Gives glommio's pollable-device probe a real read on `dir`'s device.
async fn probe_device(dir: &Path) -> io::Result<()> {
    let seq = PROBE_SEQ.with(|s| s.replace(s.get() + 1));
    // Ends in .tmp: recovery removes it if we crash before the removal below.
    let probe = dir.join(format!(".direct-io-probe-{}-{seq}.tmp", std::process::id()));
    let written = probe.clone();
    off_shard(move || std::fs::write(written, [0u8; PROBE_BYTES])).await?;
    let opened = DmaFile::open(&probe).await.map_err(io_err);
    if let Ok(file) = opened {
        let _ = file.close().await;
    }
    off_shard(move || std::fs::remove_file(probe)).await
}

/// Bytes in the probe file: one block of the largest direct-I/O alignment we use.
const PROBE_BYTES: usize = 4096;

fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// A memory buffer aligned for direct I/O, filled by the caller and then written.
pub(crate) struct AlignedBuf {
    buf: DmaBuffer,
}

impl AlignedBuf {
    pub(crate) fn as_mut_slice(&mut self) -> &mut [u8] {
        self.buf.as_bytes_mut()
    }

    pub(crate) fn len(&self) -> usize {
        self.buf.len()
    }
}

/// One O_DIRECT file opened for reading and writing.
#[derive(Debug)]
pub(crate) struct DirectFile {
    file: DmaFile,
    path: PathBuf,
}

impl DirectFile {
    /// Opens `path` for reading and writing, creating it (empty) if missing.
    pub(crate) async fn open_or_create(path: &Path) -> io::Result<DirectFile> {
        prepare_direct_io(parent_of(path)).await?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .dma_open(path)
            .await
            .map_err(io_err)?;
        Ok(DirectFile {
            file,
            path: path.to_owned(),
        })
    }

    /// Opens an existing file for reading and writing.
    pub(crate) async fn open_existing(path: &Path) -> io::Result<DirectFile> {
        prepare_direct_io(parent_of(path)).await?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .dma_open(path)
            .await
            .map_err(io_err)?;
        Ok(DirectFile {
            file,
            path: path.to_owned(),
        })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Direct-I/O alignment of positions and lengths for this file (at least 512).
    pub(crate) fn alignment(&self) -> u64 {
        self.file.alignment()
    }

    /// Allocates a buffer of `len` bytes (a multiple of `alignment()`) whose bytes from
    /// `data_len` on are zero; the caller fills the first `data_len`.
    pub(crate) fn alloc(&self, len: usize, data_len: usize) -> AlignedBuf {
        let mut buf = self.file.alloc_dma_buffer(len);
        // Padding after the data must be zeros: recovery reads zeros as "no more batches".
        // Only the padding: zeroing what is overwritten next cost a memset per write.
        buf.as_bytes_mut()[data_len.min(len)..].fill(0);
        AlignedBuf { buf }
    }

    /// Writes a whole aligned buffer at an aligned position; short writes are an error.
    pub(crate) async fn write_aligned(&self, buf: AlignedBuf, pos: u64) -> io::Result<()> {
        debug_assert_eq!(pos % self.alignment(), 0);
        debug_assert_eq!(buf.len() as u64 % self.alignment(), 0);
        let len = buf.len();
        super::fault::check(&self.path, super::fault::Op::Write)?;
        let written = self.file.write_at(buf.buf, pos).await.map_err(io_err)?;
        if written != len {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                format!(
                    "short direct write to {}: {written} of {len} bytes",
                    self.path.display()
                ),
            ));
        }
        Ok(())
    }

    /// Reads exactly `len` bytes at `pos` (any alignment); reading past the end is an error.
    pub(crate) async fn read_exact_at(&self, pos: u64, len: usize) -> io::Result<Bytes> {
        if len == 0 {
            return Ok(Bytes::new());
        }
        let read = self.file.read_at(pos, len).await.map_err(io_err)?;
        if read.len() != len {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "short read from {} at {pos}: {} of {len} bytes",
                    self.path.display(),
                    read.len()
                ),
            ));
        }
        Ok(Bytes::copy_from_slice(&read))
    }

    pub(crate) async fn fdatasync(&self) -> io::Result<()> {
        super::fault::check(&self.path, super::fault::Op::Fdatasync)?;
        timed_fdatasync(&self.file).await
    }

    /// Reserves blocks up to `size` bytes and sets the file size to it (reads as zeros),
    /// so later appends do not allocate blocks or change the size on every fdatasync.
    pub(crate) async fn pre_allocate(&self, size: u64) -> io::Result<()> {
        self.file.pre_allocate(size, false).await.map_err(io_err)
    }

    pub(crate) async fn truncate(&self, size: u64) -> io::Result<()> {
        self.file.truncate(size).await.map_err(io_err)
    }

    pub(crate) async fn size(&self) -> io::Result<u64> {
        self.file.file_size().await.map_err(io_err)
    }

    pub(crate) async fn close(self) -> io::Result<()> {
        self.file.close().await.map_err(io_err)
    }
}

/// Runs a directory call io_uring does not offer on the executor's blocking thread, so
/// that a slow disk never holds the shard's core (DESIGN: no blocking file call on a
/// serving shard).
async fn off_shard<R: Send + 'static>(work: impl FnOnce() -> R + Send + 'static) -> R {
    glommio::executor().spawn_blocking(work).await
}

/// Creates `dir` and its missing parents. Runs once per partition open.
pub(crate) async fn create_dir_all(dir: &Path) -> io::Result<()> {
    let dir = dir.to_path_buf();
    off_shard(move || std::fs::create_dir_all(dir)).await
}

/// Lists the file names in `dir`. Runs once per partition open.
pub(crate) async fn list_dir(dir: &Path) -> io::Result<Vec<String>> {
    let dir = dir.to_path_buf();
    off_shard(move || {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            if let Ok(name) = entry.file_name().into_string() {
                names.push(name);
            }
        }
        Ok(names)
    })
    .await
}

/// fsyncs a directory so that files created or renamed in it survive a power loss.
pub(crate) async fn sync_dir(dir: &Path) -> io::Result<()> {
    let handle = glommio::io::Directory::open(dir).await.map_err(io_err)?;
    let synced = handle.sync().await.map_err(io_err);
    let closed = handle.close().await.map_err(io_err);
    synced.and(closed)
}

/// Removes a file; a missing file is not an error.
pub(crate) async fn remove_file(path: &Path) -> io::Result<()> {
    match glommio::io::remove(path).await.map_err(io_err) {
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// Removes an empty directory.
pub(crate) async fn remove_dir(dir: &Path) -> io::Result<()> {
    let dir = dir.to_path_buf();
    off_shard(move || std::fs::remove_dir(dir)).await
}

/// Reads a whole small file; `Ok(None)` if it does not exist, an error if it is larger
/// than `SMALL_FILE_BYTES_MAX`.
pub(crate) async fn read_small_file(path: &Path) -> io::Result<Option<Bytes>> {
    let file = match DirectFile::open_existing(path).await {
        Ok(file) => file,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(err),
    };
    let result = async {
        let size = file.size().await?;
        if size > SMALL_FILE_BYTES_MAX {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{} is {size} bytes, more than a metadata file may be",
                    path.display()
                ),
            ));
        }
        file.read_exact_at(0, size as usize).await
    }
    .await;
    let closed = file.close().await;
    let data = result?;
    closed?;
    Ok(Some(data))
}

/// Replaces `path` with `data` atomically: write a temporary file, fdatasync it, rename.
/// A crash leaves either the old or the new content, never a mix.
pub(crate) async fn write_file_atomic(path: &Path, data: &[u8]) -> io::Result<()> {
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(".tmp");
    let tmp = PathBuf::from(tmp_name);
    let file = DirectFile::open_or_create(&tmp).await?;
    let result = async {
        let align = file.alignment();
        let padded = (data.len() as u64).div_ceil(align) * align;
        if padded > 0 {
            let mut buf = file.alloc(padded as usize, data.len());
            buf.as_mut_slice()[..data.len()].copy_from_slice(data);
            file.write_aligned(buf, 0).await?;
        }
        // Direct writes are whole blocks; cut the padding so the size is the data size.
        file.truncate(data.len() as u64).await?;
        file.fdatasync().await
    }
    .await;
    let closed = file.close().await;
    if let Err(err) = result.and(closed) {
        // Out of space, the half-written file would hold on to blocks the retry needs.
        let _ = remove_file(&tmp).await;
        return Err(err);
    }
    glommio::io::rename(&tmp, path).await.map_err(io_err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sync_latencies_land_in_power_of_two_buckets() {
        let stats = SyncStats::default();
        for us in [0, 1, 2, 3, 4, 5, 1_000, u64::MAX] {
            stats.record(us);
        }
        let b = stats.buckets();
        assert_eq!(stats.count(), 8);
        assert_eq!((b[0], b[1], b[2], b[3]), (2, 1, 2, 1), "{b:?}");
        assert_eq!(b[10], 1, "1000 µs is at most 1024: {b:?}");
        assert_eq!(
            b[SYNC_LATENCY_BUCKETS - 1],
            1,
            "the slowest bucket takes the rest"
        );
        assert_eq!(b.iter().sum::<u64>(), 8);
    }
}
