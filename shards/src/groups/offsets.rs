//! Durable committed-offset store: one append-only file per group.
//!
//! Owned by the group's shard; the only module in `groups` that touches glommio files.
//!
//! Layout: `data_dir/<escaped group id>/offsets.log`, a sequence of records
//! `u32 len (LE) | u32 crc32c(payload) (LE) | payload`, payload the JSON
//! `{"v":1,"o":[{"t":topic,"p":partition,"o":offset,"m":metadata},..]}`. The latest
//! value per (topic, partition) wins.
//!
//! Writes: commits queue their record and one flusher task per store writes everything
//! queued with one write and one fdatasync (group commit), then answers each commit.
//! The flusher is a detached task so a commit whose caller goes away cannot leave a
//! half-done write behind. Values become visible to fetches only once durable.
//! After a failed write or fdatasync the store refuses further commits (the page cache
//! can no longer be trusted to match the disk); a restart reloads what is durable.
//!
//! Load (lazy, first touch, one load per group however many callers): records are read
//! in order up to the first torn, oversized, bad-CRC or undecodable one; the file is
//! truncated there (fdatasync'd) so later appends follow valid data.
//!
//! Compaction: once the file passes `max(threshold, 2 × last snapshot)`, the flusher
//! writes the current offsets to `offsets.log.tmp`, fdatasyncs it, renames it over
//! `offsets.log` and fdatasyncs the directory. A crash leaves either the old or the new
//! file; a stale `.tmp` is deleted at load.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use glommio::channels::local_channel::{self, LocalSender};
use glommio::io::{BufferedFile, Directory, OpenOptions};
use serde::{Deserialize, Serialize};

use super::{CommittedOffset, GroupError, PARTITIONS_PER_COMMIT_MAX};

/// Compact a group's offsets file once it passes this size.
pub(crate) const COMPACT_THRESHOLD_BYTES: u64 = 1 << 20;
/// Distinct (topic, partition) offsets one group may hold.
pub(crate) const OFFSETS_PER_GROUP_MAX: usize = 100_000;
/// Commits that may wait for one group's flusher before new ones are refused.
const PENDING_COMMITS_MAX: usize = 4096;
const RECORD_HEADER_BYTES: usize = 8;
/// Largest payload accepted on load: a commit at every bound (10k partitions with 4 KiB
/// metadata) stays below it; a bigger length field means a corrupt header.
const RECORD_PAYLOAD_MAX_BYTES: usize = 64 << 20;
/// Reads during load are done in chunks of this size.
const READ_CHUNK_BYTES: usize = 1 << 20;
const LOG_FILE: &str = "offsets.log";
const TMP_FILE: &str = "offsets.log.tmp";
/// Escaped group ids longer than this are shortened and suffixed with a hash.
const DIR_NAME_MAX_BYTES: usize = 200;
const DIR_NAME_PREFIX_BYTES: usize = 160;

#[derive(Serialize, Deserialize)]
struct Record {
    v: u8,
    o: Vec<Entry>,
}

#[derive(Serialize, Deserialize)]
struct Entry {
    t: String,
    p: i32,
    o: i64,
    m: String,
}

/// Frames one commit as a record (header + JSON payload).
fn encode_record(offsets: &[CommittedOffset]) -> Result<Vec<u8>, GroupError> {
    let record = Record {
        v: 1,
        o: offsets
            .iter()
            .map(|c| Entry {
                t: c.topic.clone(),
                p: c.partition,
                o: c.offset,
                m: c.metadata.clone(),
            })
            .collect(),
    };
    let payload =
        serde_json::to_vec(&record).map_err(|e| GroupError::Io(format!("encode commit: {e}")))?;
    if payload.is_empty() || payload.len() > RECORD_PAYLOAD_MAX_BYTES {
        return Err(GroupError::InvalidRequest(format!(
            "commit record of {} bytes is over the {RECORD_PAYLOAD_MAX_BYTES} byte limit",
            payload.len()
        )));
    }
    let len = u32::try_from(payload.len()).map_err(|_| GroupError::Io("record too long".into()))?;
    let mut out = Vec::with_capacity(RECORD_HEADER_BYTES + payload.len());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&crc32c::crc32c(&payload).to_le_bytes());
    out.extend_from_slice(&payload);
    Ok(out)
}

/// Decodes records in order; stops at the first invalid one. Returns the commits and
/// the length of the valid prefix. Pure, so the fuzz target runs the load path's code.
pub fn parse_records(buf: &[u8]) -> (Vec<Vec<CommittedOffset>>, usize) {
    let mut out = Vec::new();
    let mut pos = 0usize;
    while let Some(header) = buf.get(pos..pos + RECORD_HEADER_BYTES) {
        let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        // len 0 is never written; it is what a zero-filled (preallocated) tail reads as,
        // and crc32c("") == 0 would otherwise accept it.
        if len == 0 || len > RECORD_PAYLOAD_MAX_BYTES {
            break;
        }
        let start = pos + RECORD_HEADER_BYTES;
        let Some(payload) = buf.get(start..start + len) else {
            break;
        };
        if crc32c::crc32c(payload) != crc {
            break;
        }
        match serde_json::from_slice::<Record>(payload) {
            Ok(r) if r.v == 1 => out.push(
                r.o.into_iter()
                    .map(|e| CommittedOffset {
                        topic: e.t,
                        partition: e.p,
                        offset: e.o,
                        metadata: e.m,
                    })
                    .collect(),
            ),
            _ => break,
        }
        pos = start + len;
    }
    (out, pos)
}

/// Maps a group id to a safe, unique directory name: `[A-Za-z0-9_-]` and non-leading
/// `.` are kept, every other byte becomes `%XX`. Names over 200 bytes keep a 160-byte
/// prefix plus `~` and a 64-bit FNV-1a hash of the id (`~` never appears otherwise).
pub(crate) fn escape_group_id(group: &str) -> String {
    let mut out = String::with_capacity(group.len());
    for (i, b) in group.bytes().enumerate() {
        let keep = b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || (b == b'.' && i > 0);
        if keep {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    if out.len() > DIR_NAME_MAX_BYTES {
        out.truncate(DIR_NAME_PREFIX_BYTES); // ASCII only, so any index is a boundary.
        let _ = write!(out, "~{:016x}", fnv1a64(group.as_bytes()));
    }
    out
}

/// Inverse of [`escape_group_id`] for names that were not shortened.
pub(crate) fn unescape_group_id(name: &str) -> Option<String> {
    let mut bytes = Vec::with_capacity(name.len());
    let mut it = name.bytes();
    while let Some(b) = it.next() {
        if b == b'%' {
            let hex = [it.next()?, it.next()?];
            let s = std::str::from_utf8(&hex).ok()?;
            bytes.push(u8::from_str_radix(s, 16).ok()?);
        } else {
            bytes.push(b);
        }
    }
    let id = String::from_utf8(bytes).ok()?;
    // Only canonical names: anything else is not a directory we made.
    (escape_group_id(&id) == name).then_some(id)
}

fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Group ids that have an offsets file under `data_dir` (names that were shortened
/// are skipped: their id is not recoverable from the name). Blocking: startup only.
pub(crate) fn scan_group_ids(data_dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(data_dir) else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter(|e| e.path().join(LOG_FILE).is_file())
        .filter_map(|e| unescape_group_id(e.file_name().to_str()?))
        .collect()
}

fn io_err(what: &str, path: &Path, e: impl std::fmt::Display) -> GroupError {
    GroupError::Io(format!("{what} {}: {e}", path.display()))
}

struct Pending {
    record: Vec<u8>,
    offsets: Vec<CommittedOffset>,
    done: LocalSender<Result<(), GroupError>>,
}

struct StoreInner {
    group: String,
    dir: PathBuf,
    /// `None` until the first commit creates the file, and while the flusher writes.
    file: Option<BufferedFile>,
    /// Bytes of valid records: where the next record goes.
    len: u64,
    /// Size of the last compacted snapshot (0: none since load).
    snapshot_len: u64,
    compact_threshold: u64,
    /// Durable values only.
    offsets: BTreeMap<(String, i32), (i64, String)>,
    pending: Vec<Pending>,
    flushing: bool,
    idle_waiters: Vec<LocalSender<()>>,
    /// Set after an I/O failure: the store refuses further commits.
    failed: Option<String>,
    closed: bool,
}

/// One group's offsets. Cheap to clone (a handle); owned by the group's shard.
#[derive(Clone)]
pub(crate) struct OffsetStore {
    inner: Rc<RefCell<StoreInner>>,
}

impl OffsetStore {
    /// Loads the group's offsets; creates nothing on disk if it has none.
    pub(crate) async fn open(
        data_dir: &Path,
        group: &str,
        compact_threshold: u64,
    ) -> Result<OffsetStore, GroupError> {
        let dir = data_dir.join(escape_group_id(group));
        // A temp file left by a compaction that crashed before its rename is garbage.
        match std::fs::remove_file(dir.join(TMP_FILE)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(io_err("remove stale", &dir.join(TMP_FILE), e));
            }
            _ => {}
        }
        let path = dir.join(LOG_FILE);
        let opened = OpenOptions::new()
            .read(true)
            .write(true)
            .buffered_open(&path)
            .await;
        let (file, commits, len) = match opened.map_err(std::io::Error::from) {
            Ok(file) => {
                let (commits, len) = load_file(&file, &path).await?;
                (Some(file), commits, len)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (None, Vec::new(), 0),
            Err(e) => return Err(io_err("open", &path, e)),
        };
        let mut offsets = BTreeMap::new();
        for commit in commits {
            apply(&mut offsets, commit);
        }
        tracing::debug!(%group, partitions = offsets.len(), bytes = len, "offsets loaded");
        let inner = StoreInner {
            group: group.to_string(),
            dir,
            file,
            len,
            snapshot_len: 0,
            compact_threshold,
            offsets,
            pending: Vec::new(),
            flushing: false,
            idle_waiters: Vec::new(),
            failed: None,
            closed: false,
        };
        Ok(OffsetStore {
            inner: Rc::new(RefCell::new(inner)),
        })
    }

    /// Makes `offsets` durable (write + fdatasync, batched with concurrent commits).
    pub(crate) async fn commit(&self, offsets: Vec<CommittedOffset>) -> Result<(), GroupError> {
        let (rx, start_flusher) = {
            let mut s = self.inner.borrow_mut();
            if s.closed {
                return Err(GroupError::Io(format!(
                    "offsets of group '{}' are closed",
                    s.group
                )));
            }
            if let Some(e) = &s.failed {
                return Err(GroupError::Io(e.clone()));
            }
            if s.pending.len() >= PENDING_COMMITS_MAX {
                return Err(GroupError::Io(format!(
                    "{} commits of group '{}' are waiting for the disk; retry",
                    s.pending.len(),
                    s.group
                )));
            }
            let new_keys = offsets
                .iter()
                .filter(|c| !s.offsets.contains_key(&(c.topic.clone(), c.partition)))
                .count();
            if s.offsets.len() + new_keys > OFFSETS_PER_GROUP_MAX {
                return Err(GroupError::InvalidRequest(format!(
                    "group '{}' would hold more than {OFFSETS_PER_GROUP_MAX} committed offsets",
                    s.group
                )));
            }
            let record = encode_record(&offsets)?;
            let (done, rx) = local_channel::new_bounded(1);
            s.pending.push(Pending {
                record,
                offsets,
                done,
            });
            let start_flusher = !s.flushing;
            s.flushing = true;
            (rx, start_flusher)
        };
        if start_flusher {
            // Spawned outside the borrow: glommio may poll a new task right away.
            glommio::spawn_local(flush_loop(self.inner.clone())).detach();
        }
        rx.recv()
            .await
            .unwrap_or_else(|| Err(GroupError::Io("offsets flusher went away".into())))
    }

    /// Committed offsets: all (`None`), or one per requested partition (-1 if none).
    pub(crate) fn fetch(&self, partitions: Option<&[(String, i32)]>) -> Vec<CommittedOffset> {
        let s = self.inner.borrow();
        let entry = |t: &str, p: i32, v: Option<&(i64, String)>| CommittedOffset {
            topic: t.to_string(),
            partition: p,
            offset: v.map_or(-1, |v| v.0),
            metadata: v.map(|v| v.1.clone()).unwrap_or_default(),
        };
        match partitions {
            None => s
                .offsets
                .iter()
                .map(|((t, p), v)| entry(t, *p, Some(v)))
                .collect(),
            Some(list) => list
                .iter()
                .map(|(t, p)| entry(t, *p, s.offsets.get(&(t.clone(), *p))))
                .collect(),
        }
    }

    /// Refuses new commits, waits for queued ones, closes the file.
    pub(crate) async fn shutdown(&self) -> Result<(), GroupError> {
        let idle = {
            let mut s = self.inner.borrow_mut();
            s.closed = true;
            s.flushing.then(|| {
                let (tx, rx) = local_channel::new_bounded(1);
                s.idle_waiters.push(tx);
                rx
            })
        };
        if let Some(rx) = idle {
            let _ = rx.recv().await; // None only if the flusher was dropped: also idle.
        }
        let file = self.inner.borrow_mut().file.take();
        match file {
            Some(f) => f
                .close()
                .await
                .map_err(|e| GroupError::Io(format!("close offsets: {e}"))),
            None => Ok(()),
        }
    }

    /// Shuts down, then removes the group's files and directory.
    pub(crate) async fn destroy(&self) -> Result<(), GroupError> {
        self.shutdown().await?;
        let dir = self.inner.borrow().dir.clone();
        for name in [LOG_FILE, TMP_FILE] {
            match std::fs::remove_file(dir.join(name)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(io_err("remove", &dir.join(name), e));
                }
                _ => {}
            }
        }
        match std::fs::remove_dir(&dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io_err("remove", &dir, e)),
            _ => {
                self.inner.borrow_mut().offsets.clear();
                Ok(())
            }
        }
    }
}

fn apply(map: &mut BTreeMap<(String, i32), (i64, String)>, commit: Vec<CommittedOffset>) {
    for c in commit {
        map.insert((c.topic, c.partition), (c.offset, c.metadata));
    }
}

/// Bytes reserved before loading a file of `size` bytes. The size is the disk's word,
/// not a measure of what will be read (a file can shrink, or be sparse), so the buffer
/// starts at most one payload large and grows with what is actually read.
fn load_reserve(size: u64) -> usize {
    usize::try_from(size).map_or(RECORD_PAYLOAD_MAX_BYTES, |s| {
        s.min(RECORD_PAYLOAD_MAX_BYTES)
    })
}

/// Reads and validates the whole file; truncates a torn or corrupt tail.
async fn load_file(
    file: &BufferedFile,
    path: &Path,
) -> Result<(Vec<Vec<CommittedOffset>>, u64), GroupError> {
    let size = file
        .file_size()
        .await
        .map_err(|e| io_err("stat", path, e))?;
    let mut buf = Vec::with_capacity(load_reserve(size));
    while (buf.len() as u64) < size {
        let want = usize::try_from(size - buf.len() as u64).unwrap_or(READ_CHUNK_BYTES);
        let chunk = file
            .read_at(buf.len() as u64, want.min(READ_CHUNK_BYTES))
            .await
            .map_err(|e| io_err("read", path, e))?;
        if chunk.is_empty() {
            break; // Shrunk underneath us: parse what we have.
        }
        buf.extend_from_slice(&chunk);
    }
    let (commits, valid) = parse_records(&buf);
    let valid = valid as u64;
    if valid < size {
        tracing::warn!(path = %path.display(), valid, size, "offsets file has a torn or corrupt tail; truncating");
        file.truncate(valid)
            .await
            .map_err(|e| io_err("truncate", path, e))?;
        file.fdatasync()
            .await
            .map_err(|e| io_err("fdatasync", path, e))?;
    }
    Ok((commits, valid))
}

/// The flusher: writes everything queued, fdatasyncs, answers, repeats until idle.
async fn flush_loop(inner: Rc<RefCell<StoreInner>>) {
    loop {
        let (batch, file, pos, dir) = {
            let mut s = inner.borrow_mut();
            if s.pending.is_empty() {
                s.flushing = false;
                for w in s.idle_waiters.drain(..) {
                    let _ = w.try_send(()); // The waiter may have gone away; fine.
                }
                return;
            }
            (
                std::mem::take(&mut s.pending),
                s.file.take(),
                s.len,
                s.dir.clone(),
            )
        };
        let bytes: Vec<u8> = batch
            .iter()
            .flat_map(|p| p.record.iter().copied())
            .collect();
        let written = write_durably(file, &dir, &bytes, pos).await;
        let compact = {
            let mut s = inner.borrow_mut();
            match written {
                Ok(file) => {
                    s.file = Some(file);
                    s.len = pos + bytes.len() as u64;
                    for p in batch {
                        apply(&mut s.offsets, p.offsets);
                        let _ = p.done.try_send(Ok(())); // Caller may have gone away.
                    }
                    s.len > s.compact_threshold.max(s.snapshot_len.saturating_mul(2))
                }
                Err(e) => {
                    tracing::error!(group = %s.group, error = %e, "offsets write failed; store refuses commits until restart");
                    let msg = match e {
                        GroupError::Io(m) => m,
                        other => other.to_string(),
                    };
                    s.failed = Some(msg.clone());
                    let rest = std::mem::take(&mut s.pending);
                    for p in batch.into_iter().chain(rest) {
                        let _ = p.done.try_send(Err(GroupError::Io(msg.clone())));
                    }
                    false
                }
            }
        };
        if compact {
            compact_file(&inner).await;
        }
    }
}

/// Appends `bytes` at `pos` (creating the file on first use) and fdatasyncs.
async fn write_durably(
    file: Option<BufferedFile>,
    dir: &Path,
    bytes: &[u8],
    pos: u64,
) -> Result<BufferedFile, GroupError> {
    let path = dir.join(LOG_FILE);
    let file = match file {
        Some(f) => f,
        None => create_log(dir, &path).await?,
    };
    write_all(&file, bytes, pos, &path).await?;
    file.fdatasync()
        .await
        .map_err(|e| io_err("fdatasync", &path, e))?;
    Ok(file)
}

/// Creates the group directory and log file, and makes both names durable.
async fn create_log(dir: &Path, path: &Path) -> Result<BufferedFile, GroupError> {
    std::fs::create_dir_all(dir).map_err(|e| io_err("create", dir, e))?;
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .buffered_open(path)
        .await
        .map_err(|e| io_err("create", path, e))?;
    sync_dir(dir).await?;
    if let Some(parent) = dir.parent() {
        sync_dir(parent).await?;
    }
    Ok(file)
}

async fn sync_dir(dir: &Path) -> Result<(), GroupError> {
    let d = Directory::open(dir)
        .await
        .map_err(|e| io_err("open dir", dir, e))?;
    let synced = d.sync().await.map_err(|e| io_err("fsync dir", dir, e));
    let closed = d.close().await.map_err(|e| io_err("close dir", dir, e));
    synced.and(closed)
}

async fn write_all(
    file: &BufferedFile,
    bytes: &[u8],
    pos: u64,
    path: &Path,
) -> Result<(), GroupError> {
    let mut done = 0usize;
    while done < bytes.len() {
        let n = file
            .write_at(bytes[done..].to_vec(), pos + done as u64)
            .await
            .map_err(|e| io_err("write", path, e))?;
        if n == 0 {
            return Err(io_err("write", path, "wrote 0 bytes (disk full?)"));
        }
        done += n;
    }
    Ok(())
}

/// Rewrites the file as a snapshot of the current offsets. Runs inside the flusher,
/// so no append races it.
async fn compact_file(inner: &Rc<RefCell<StoreInner>>) {
    let (snapshot, dir, group) = {
        let s = inner.borrow();
        let entries: Vec<CommittedOffset> = s
            .offsets
            .iter()
            .map(|((t, p), (o, m))| CommittedOffset {
                topic: t.clone(),
                partition: *p,
                offset: *o,
                metadata: m.clone(),
            })
            .collect();
        let mut bytes = Vec::new();
        for chunk in entries.chunks(PARTITIONS_PER_COMMIT_MAX) {
            match encode_record(chunk) {
                Ok(r) => bytes.extend_from_slice(&r),
                Err(e) => {
                    tracing::warn!(group = %s.group, error = %e, "cannot encode offsets snapshot");
                    return;
                }
            }
        }
        (bytes, s.dir.clone(), s.group.clone())
    };
    let tmp = dir.join(TMP_FILE);
    let path = dir.join(LOG_FILE);
    if let Err(e) = write_snapshot(&tmp, &path, &dir, &snapshot).await {
        // The old file is intact: keep appending to it, retry after it doubles.
        tracing::warn!(%group, error = %e, "offsets compaction failed");
        let _ = std::fs::remove_file(&tmp);
        let mut s = inner.borrow_mut();
        s.snapshot_len = s.len;
        return;
    }
    // The rename happened: the old handle now points at an unlinked file.
    let old = inner.borrow_mut().file.take();
    if let Some(f) = old {
        let _ = f.close().await; // Its data is superseded; a close error changes nothing.
    }
    let reopened = OpenOptions::new()
        .read(true)
        .write(true)
        .buffered_open(&path)
        .await;
    let mut s = inner.borrow_mut();
    match reopened {
        Ok(f) => {
            s.file = Some(f);
            s.len = snapshot.len() as u64;
            s.snapshot_len = s.len;
            tracing::debug!(%group, bytes = s.len, "offsets compacted");
        }
        Err(e) => {
            let msg = io_err("reopen", &path, e).to_string();
            tracing::error!(%group, error = %msg, "offsets store refuses commits until restart");
            s.failed = Some(msg);
        }
    }
}

async fn write_snapshot(
    tmp: &Path,
    path: &Path,
    dir: &Path,
    bytes: &[u8],
) -> Result<(), GroupError> {
    let file = BufferedFile::create(tmp)
        .await
        .map_err(|e| io_err("create", tmp, e))?;
    let written = match write_all(&file, bytes, 0, tmp).await {
        Ok(()) => file
            .fdatasync()
            .await
            .map_err(|e| io_err("fdatasync", tmp, e)),
        Err(e) => Err(e),
    };
    let closed = file.close().await.map_err(|e| io_err("close", tmp, e));
    written.and(closed)?;
    glommio::io::rename(tmp, path)
        .await
        .map_err(|e| io_err("rename", tmp, e))?;
    sync_dir(dir).await
}

enum Slot {
    Loading(Vec<LocalSender<Result<OffsetStore, GroupError>>>),
    Ready(OffsetStore),
}

/// Every group's store on this shard, loaded on first touch (one load per group).
pub(crate) struct OffsetStores {
    data_dir: PathBuf,
    compact_threshold: u64,
    slots: Rc<RefCell<HashMap<String, Slot>>>,
    closed: Cell<bool>,
}

impl OffsetStores {
    pub(crate) fn new(data_dir: PathBuf, compact_threshold: u64) -> OffsetStores {
        OffsetStores {
            data_dir,
            compact_threshold,
            slots: Rc::new(RefCell::new(HashMap::new())),
            closed: Cell::new(false),
        }
    }

    /// The group's store, loading it on first touch. Concurrent callers share one load,
    /// which runs as a detached task so a caller going away cannot abandon it.
    pub(crate) async fn get(&self, group: &str) -> Result<OffsetStore, GroupError> {
        if self.closed.get() {
            return Err(GroupError::Io("group coordinator is closed".into()));
        }
        let (tx, rx) = local_channel::new_bounded(1);
        let start_load = {
            let mut slots = self.slots.borrow_mut();
            match slots.get_mut(group) {
                Some(Slot::Ready(store)) => return Ok(store.clone()),
                Some(Slot::Loading(waiters)) => {
                    waiters.push(tx);
                    false
                }
                None => {
                    slots.insert(group.to_string(), Slot::Loading(vec![tx]));
                    true
                }
            }
        };
        if start_load {
            // Spawned outside the borrow: glommio may poll a new task right away.
            let slots = self.slots.clone();
            let load = load_slot(
                slots,
                self.data_dir.clone(),
                group.to_string(),
                self.compact_threshold,
            );
            glommio::spawn_local(load).detach();
        }
        rx.recv()
            .await
            .unwrap_or_else(|| Err(GroupError::Io("offsets load went away".into())))
    }

    /// Deletes the group's offsets (files and directory).
    pub(crate) async fn remove(&self, group: &str) -> Result<(), GroupError> {
        let store = self.get(group).await?;
        store.destroy().await?;
        let mut slots = self.slots.borrow_mut();
        if let Some(Slot::Ready(s)) = slots.get(group) {
            if Rc::ptr_eq(&s.inner, &store.inner) {
                slots.remove(group);
            }
        }
        Ok(())
    }

    /// Shuts every loaded store down; later calls fail.
    pub(crate) async fn close_all(&self) -> Result<(), GroupError> {
        self.closed.set(true);
        let stores: Vec<OffsetStore> = self
            .slots
            .borrow()
            .values()
            .filter_map(|s| match s {
                Slot::Ready(s) => Some(s.clone()),
                Slot::Loading(_) => None,
            })
            .collect();
        let mut first_err = Ok(());
        for store in stores {
            if let Err(e) = store.shutdown().await {
                first_err = first_err.and(Err(e));
            }
        }
        first_err
    }
}

async fn load_slot(
    slots: Rc<RefCell<HashMap<String, Slot>>>,
    data_dir: PathBuf,
    group: String,
    compact_threshold: u64,
) {
    let loaded = OffsetStore::open(&data_dir, &group, compact_threshold).await;
    if let Err(e) = &loaded {
        tracing::error!(%group, error = %e, "cannot load committed offsets");
    }
    let mut slots = slots.borrow_mut();
    let waiters = match slots.remove(&group) {
        Some(Slot::Loading(w)) => w,
        Some(other) => {
            slots.insert(group.clone(), other);
            Vec::new()
        }
        None => Vec::new(),
    };
    if let Ok(store) = &loaded {
        slots.insert(group, Slot::Ready(store.clone()));
    } // On error no slot stays: the next touch retries the load.
    for w in waiters {
        let _ = w.try_send(loaded.clone()); // A waiter may have gone away; fine.
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::groups::run_local;

    fn off(topic: &str, partition: i32, offset: i64) -> CommittedOffset {
        CommittedOffset {
            topic: topic.into(),
            partition,
            offset,
            metadata: format!("m{offset}"),
        }
    }

    fn ok<T>(r: Result<T, GroupError>) -> T {
        r.unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn the_load_buffer_is_not_sized_by_the_file_size_alone() {
        assert_eq!(load_reserve(4096), 4096);
        assert_eq!(load_reserve(u64::MAX), RECORD_PAYLOAD_MAX_BYTES);
        assert_eq!(load_reserve(1 << 40), RECORD_PAYLOAD_MAX_BYTES);
    }

    #[test]
    fn group_ids_escape_to_safe_unique_directory_names() {
        assert_eq!(
            escape_group_id("orders-v1.consumers_2"),
            "orders-v1.consumers_2"
        );
        assert_eq!(escape_group_id(".."), "%2E.");
        assert_eq!(escape_group_id("a/b c%"), "a%2Fb%20c%25");
        assert_eq!(escape_group_id("é"), "%C3%A9");
        for id in ["orders", "..", "a/b c%", "é", ".hidden"] {
            assert_eq!(unescape_group_id(&escape_group_id(id)).as_deref(), Some(id));
        }
        let long_a = "/".repeat(255);
        let long_b = format!("{}x", "/".repeat(254));
        let (a, b) = (escape_group_id(&long_a), escape_group_id(&long_b));
        assert!(a.len() <= DIR_NAME_MAX_BYTES && a != b);
        assert_eq!(unescape_group_id(&a), None);
    }

    #[test]
    fn records_parse_up_to_the_first_bad_one() {
        let r1 = ok(encode_record(&[off("t", 0, 1)]));
        let r2 = ok(encode_record(&[off("t", 0, 2), off("t", 1, 7)]));
        let mut buf = [r1.clone(), r2.clone()].concat();
        let (commits, valid) = parse_records(&buf);
        assert_eq!((commits.len(), valid), (2, buf.len()));
        // A flipped payload byte in the second record stops the parse after the first.
        let last = buf.len() - 2;
        buf[last] ^= 0xff;
        assert_eq!(parse_records(&buf).1, r1.len());
        // A zero-filled tail is not a record.
        let zeros = [r1.clone(), vec![0u8; 64]].concat();
        assert_eq!(parse_records(&zeros).1, r1.len());
    }

    #[test]
    fn compaction_keeps_latest_values_and_shrinks_the_file() {
        let dir = ok(tempfile::tempdir().map_err(|e| GroupError::Io(e.to_string())));
        let root = dir.path().to_path_buf();
        run_local(async move {
            let store = ok(OffsetStore::open(&root, "g", 2048).await);
            for i in 0..200i64 {
                ok(store.commit(vec![off("t", (i % 3) as i32, i)]).await);
            }
            let size = std::fs::metadata(root.join("g").join(LOG_FILE)).map(|m| m.len());
            assert!(
                matches!(size, Ok(n) if n <= 2048 + 200),
                "file was compacted: {size:?}"
            );
            ok(store.shutdown().await);
            let again = ok(OffsetStore::open(&root, "g", 2048).await);
            let want = vec![off("t", 0, 198), off("t", 1, 199), off("t", 2, 197)];
            assert_eq!(again.fetch(None), want);
            ok(again.shutdown().await);
        });
    }

    #[test]
    fn concurrent_commits_share_flushes_and_all_become_durable() {
        let dir = ok(tempfile::tempdir().map_err(|e| GroupError::Io(e.to_string())));
        let root = dir.path().to_path_buf();
        run_local(async move {
            let store = ok(OffsetStore::open(&root, "g", COMPACT_THRESHOLD_BYTES).await);
            let tasks: Vec<_> = (0..50)
                .map(|i| {
                    let s = store.clone();
                    glommio::spawn_local(
                        async move { s.commit(vec![off("t", i, i64::from(i))]).await },
                    )
                })
                .collect();
            for t in tasks {
                ok(t.await);
            }
            ok(store.shutdown().await);
            let again = ok(OffsetStore::open(&root, "g", COMPACT_THRESHOLD_BYTES).await);
            assert_eq!(again.fetch(None).len(), 50);
            ok(again.shutdown().await);
        });
    }

    #[test]
    fn fetch_of_uncommitted_partition_answers_minus_one() {
        let dir = ok(tempfile::tempdir().map_err(|e| GroupError::Io(e.to_string())));
        let root = dir.path().to_path_buf();
        run_local(async move {
            let store = ok(OffsetStore::open(&root, "g", COMPACT_THRESHOLD_BYTES).await);
            assert!(!root.join("g").exists(), "a read creates nothing on disk");
            ok(store.commit(vec![off("t", 0, 5)]).await);
            let got = store.fetch(Some(&[("t".to_string(), 0), ("t".to_string(), 1)]));
            assert_eq!(got[0].offset, 5);
            assert_eq!((got[1].offset, got[1].metadata.as_str()), (-1, ""));
            ok(store.shutdown().await);
        });
    }
}
