//! The committed-offsets format of releases before the offsets log: one file per
//! group, `data_dir/<escaped group id>/offsets.log`. Read once at start (and, for ids
//! whose directory name was shortened, on the group's first touch), carried into the
//! shard's offsets log, then removed. Nothing writes this format any more.
//!
//! Records: `u32 len (LE) | u32 crc32c(payload) (LE) | payload`, payload the JSON
//! `{"v":1,"o":[{"t":topic,"p":partition,"o":offset,"m":metadata},..]}`; the latest
//! value per (topic, partition) wins. A torn or corrupt tail ends the valid prefix
//! (the old store truncated it on load; here it is simply not read).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use glommio::io::{BufferedFile, OpenOptions};
use serde::{Deserialize, Serialize};

use super::{CommittedOffset, GroupError};

const RECORD_HEADER_BYTES: usize = 8;
/// Largest payload accepted: a commit at every old bound (10k partitions with 4 KiB
/// metadata) stays below it; a bigger length field means a corrupt header.
const RECORD_PAYLOAD_MAX_BYTES: usize = 64 << 20;
/// Reads are done in chunks of this size.
const READ_CHUNK_BYTES: usize = 1 << 20;
const LOG_FILE: &str = "offsets.log";
const TMP_FILE: &str = "offsets.log.tmp";
/// Escaped group ids longer than this were shortened and suffixed with a hash.
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

/// Frames one commit as a record (header + JSON payload): how the old store wrote
/// them; tests write old data directories with it.
#[cfg(test)]
pub(crate) fn encode_record(offsets: &[CommittedOffset]) -> Result<Vec<u8>, GroupError> {
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

/// One old-format group directory found at start.
pub(crate) struct LegacyDir {
    pub(crate) path: PathBuf,
    /// The directory name.
    pub(crate) name: String,
    /// `None` for a shortened name: the id is known only once a client names it.
    pub(crate) group: Option<String>,
}

/// Old-format group directories under `data_dir`, listed on the executor's blocking
/// thread (once, while the shard's offsets log opens).
pub(crate) async fn scan(data_dir: &Path) -> Vec<LegacyDir> {
    let data_dir = data_dir.to_path_buf();
    glommio::executor()
        .spawn_blocking(move || scan_blocking(&data_dir))
        .await
}

fn scan_blocking(data_dir: &Path) -> Vec<LegacyDir> {
    let Ok(entries) = std::fs::read_dir(data_dir) else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter(|e| e.path().join(LOG_FILE).is_file())
        .filter_map(|e| {
            let name = e.file_name().to_str()?.to_string();
            Some(LegacyDir {
                path: e.path(),
                group: unescape_group_id(&name),
                name,
            })
        })
        .collect()
}

/// The latest offset of every partition in the group directory `dir`.
pub(crate) async fn read(dir: &Path) -> Result<Vec<CommittedOffset>, GroupError> {
    let path = dir.join(LOG_FILE);
    let file = OpenOptions::new()
        .read(true)
        .buffered_open(&path)
        .await
        .map_err(|e| io_err("open", &path, e))?;
    let read = read_file(&file, &path).await;
    let closed = file.close().await.map_err(|e| io_err("close", &path, e));
    let buf = read?;
    closed?;
    let (commits, valid) = parse_records(&buf);
    if valid < buf.len() {
        tracing::warn!(path = %path.display(), valid, size = buf.len(), "old offsets file has a torn or corrupt tail; reading its valid prefix");
    }
    let mut latest = BTreeMap::new();
    for c in commits.into_iter().flatten() {
        latest.insert((c.topic.clone(), c.partition), c);
    }
    Ok(latest.into_values().collect())
}

/// Removes an old group directory once its offsets are durable in the log. A
/// directory that holds anything else is left in place (only our files go).
pub(crate) async fn remove(dir: &Path) -> Result<(), GroupError> {
    for name in [LOG_FILE, TMP_FILE] {
        let path = dir.join(name);
        match glommio::io::remove(&path)
            .await
            .map_err(std::io::Error::from)
        {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(io_err("remove", &path, e));
            }
            _ => {}
        }
    }
    let owned = dir.to_path_buf();
    let removed = glommio::executor()
        .spawn_blocking(move || std::fs::remove_dir(owned))
        .await;
    if let Err(e) = removed {
        tracing::warn!(dir = %dir.display(), error = %e, "old offsets directory not removed");
    }
    Ok(())
}

/// Bytes reserved before reading a file of `size` bytes: the size is the disk's word,
/// not a measure of what will be read, so the buffer grows with what is read.
fn load_reserve(size: u64) -> usize {
    usize::try_from(size).map_or(RECORD_PAYLOAD_MAX_BYTES, |s| {
        s.min(RECORD_PAYLOAD_MAX_BYTES)
    })
}

async fn read_file(file: &BufferedFile, path: &Path) -> Result<Vec<u8>, GroupError> {
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
    Ok(buf)
}

fn io_err(what: &str, path: &Path, e: impl std::fmt::Display) -> GroupError {
    GroupError::Io(format!("{what} {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
