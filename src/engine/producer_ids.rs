//! Producer ids for idempotent producers (Kafka InitProducerId), never reused for the
//! life of the data directory: the controller shard hands them out of blocks it first
//! reserves durably in `meta/producer-ids`, so a restart continues after the last block.
//!
//! The file is read and replaced (temporary file, fsync, rename, directory fsync) on
//! the shard's blocking thread (`runtime::blocking`), never on the shard's own thread.
//! It holds the reserved end in a CRC32C frame (`peregrine_shards::checked_file`; the
//! bare number of older releases still reads). A damaged file stops the start
//! (`check`): a smaller number read from it would hand out ids already in use.
//! Owned by the controller shard.

use std::cell::Cell;
use std::path::{Path, PathBuf};

use crate::runtime;
use peregrine_shards::checked_file;

/// Ids reserved per write of the file.
const BLOCK: i64 = 1000;

pub struct ProducerIds {
    path: PathBuf,
    next: Cell<i64>,
    /// Ids below this are reserved on disk; 0 until the first allocation reads the file.
    reserved_to: Cell<i64>,
    /// One reservation at a time: two would read the same file and hand out one block
    /// twice.
    reserving: glommio::sync::Semaphore,
}

impl ProducerIds {
    pub fn new(meta_dir: PathBuf) -> ProducerIds {
        ProducerIds {
            path: meta_dir.join("producer-ids"),
            next: Cell::new(0),
            reserved_to: Cell::new(0),
            reserving: glommio::sync::Semaphore::new(1),
        }
    }

    /// Reads the file once at start: the broker does not start on a damaged one. The
    /// error names the file and says what to do.
    pub async fn check(&self) -> Result<(), String> {
        let path = self.path.clone();
        runtime::blocking(move || read_reserved(&path).map(|_| ())).await
    }

    /// A fresh producer id. Reserves a block of `BLOCK` ids on disk first when the
    /// current one is used up (a few bytes and an fsync, off the shard's thread).
    pub async fn allocate(&self) -> std::io::Result<i64> {
        let _one = self
            .reserving
            .acquire_permit(1)
            .await
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        if self.next.get() >= self.reserved_to.get() {
            let (path, next) = (self.path.clone(), self.next.get());
            let (start, end) = runtime::blocking(move || reserve_block(&path, next)).await?;
            self.next.set(start);
            self.reserved_to.set(end);
        }
        let id = self.next.get();
        debug_assert!(
            id < self.reserved_to.get(),
            "ids come from a reserved block"
        );
        self.next.set(id + 1);
        Ok(id)
    }
}

/// The end of the reserved ids recorded in the file (0 when there is none yet); the
/// error names the file when it cannot be read or is damaged.
fn read_reserved(path: &Path) -> Result<i64, String> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(format!("reading {}: {e}", path.display())),
    };
    decode_reserved(&bytes).map_err(|reason| {
        format!(
            "producer id file {} is damaged: {reason}; the broker will not start on it (ids \
             already handed out could be given again). Restore it from a backup, or write a \
             number above every producer id in use",
            path.display()
        )
    })
}

/// The reserved end in a file's bytes: framed or the bare number of older releases.
fn decode_reserved(bytes: &[u8]) -> Result<i64, String> {
    let body = checked_file::open(bytes)?.body();
    let text = std::str::from_utf8(body).map_err(|_| "not text".to_string())?;
    match text.trim().parse::<i64>() {
        Ok(end) if end >= 0 => Ok(end),
        Ok(end) => Err(format!("negative reserved end {end}")),
        Err(e) => Err(format!("'{}' is not a number: {e}", text.trim())),
    }
}

/// Reserves the block after both what the file reserved and `next`; returns it.
fn reserve_block(path: &Path, next: i64) -> std::io::Result<(i64, i64)> {
    let on_disk = read_reserved(path).map_err(std::io::Error::other)?;
    let start = on_disk.max(next);
    let end = start + BLOCK;
    // A broker that has not written its catalog yet has no meta directory.
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let framed = checked_file::frame(format!("{end}\n").as_bytes());
    peregrine_shards::replace_file::replace(path, &framed, 0o644)?;
    Ok((start, end))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_reads_framed_and_bare_and_a_damaged_one_is_refused() {
        assert_eq!(decode_reserved(&checked_file::frame(b"3000\n")), Ok(3000));
        assert_eq!(decode_reserved(b"2000\n"), Ok(2000));
        let framed = checked_file::frame(b"3000\n");
        for i in 0..framed.len() {
            let mut bad = framed.clone();
            bad[i] ^= 0x04;
            assert!(decode_reserved(&bad).is_err(), "byte {i} flipped");
        }
        assert!(decode_reserved(&framed[..framed.len() - 2]).is_err());
        assert!(decode_reserved(b"").is_err(), "an empty file is torn");
    }

    #[test]
    fn ids_are_unique_across_restarts() {
        let dir = tempfile::tempdir().expect("tempdir");
        // Not there yet: the first reservation creates it.
        let meta = dir.path().join("meta");
        glommio::LocalExecutorBuilder::default()
            .spawn(move || async move {
                let first = ProducerIds::new(meta.clone());
                let mut a = Vec::new();
                for _ in 0..3 {
                    a.push(first.allocate().await.expect("id"));
                }
                assert_eq!(a, vec![0, 1, 2]);
                // A restart continues after the whole reserved block.
                let again = ProducerIds::new(meta);
                assert_eq!(again.allocate().await.expect("id"), BLOCK);
                for _ in 0..BLOCK {
                    again.allocate().await.expect("id");
                }
                assert_eq!(again.allocate().await.expect("id"), 2 * BLOCK + 1);
                // Two allocations at once when the block is used up: one reserves the
                // next block, the other waits for it instead of reserving the same one.
                for _ in 2 * BLOCK + 2..3 * BLOCK {
                    again.allocate().await.expect("id");
                }
                let (x, y) = futures_lite::future::zip(again.allocate(), again.allocate()).await;
                let mut both = [x.expect("id"), y.expect("id")];
                both.sort_unstable();
                assert_eq!(both, [3 * BLOCK, 3 * BLOCK + 1]);
            })
            .expect("start executor")
            .join()
            .expect("executor ran");
    }
}
