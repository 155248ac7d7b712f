//! Producer ids for idempotent producers (Kafka InitProducerId), never reused for the
//! life of the data directory: the controller shard hands them out of blocks it first
//! reserves durably in `meta/producer-ids`, so a restart continues after the last block.

use std::cell::Cell;
use std::io::Write;
use std::path::PathBuf;

/// Ids reserved per write of the file.
const BLOCK: i64 = 1000;

pub struct ProducerIds {
    path: PathBuf,
    next: Cell<i64>,
    /// Ids below this are reserved on disk; 0 until the first allocation reads the file.
    reserved_to: Cell<i64>,
}

impl ProducerIds {
    pub fn new(meta_dir: PathBuf) -> ProducerIds {
        ProducerIds {
            path: meta_dir.join("producer-ids"),
            next: Cell::new(0),
            reserved_to: Cell::new(0),
        }
    }

    /// A fresh producer id. Writes the file once per `BLOCK` ids (a few hundred bytes
    /// and an fsync, so plain blocking calls).
    pub fn allocate(&self) -> std::io::Result<i64> {
        if self.next.get() >= self.reserved_to.get() {
            let on_disk = match std::fs::read_to_string(&self.path) {
                Ok(text) => text.trim().parse::<i64>().map_err(std::io::Error::other)?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
                Err(e) => return Err(e),
            };
            let start = on_disk.max(self.next.get());
            let end = start + BLOCK;
            let tmp = self.path.with_extension("tmp");
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(format!("{end}\n").as_bytes())?;
            f.sync_all()?;
            std::fs::rename(&tmp, &self.path)?;
            if let Some(dir) = self.path.parent() {
                std::fs::File::open(dir)?.sync_all()?;
            }
            self.next.set(start);
            self.reserved_to.set(end);
        }
        let id = self.next.get();
        self.next.set(id + 1);
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_across_restarts() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = ProducerIds::new(dir.path().to_path_buf());
        let a: Vec<i64> = (0..3).map(|_| first.allocate().expect("id")).collect();
        assert_eq!(a, vec![0, 1, 2]);
        // A restart continues after the whole reserved block.
        let again = ProducerIds::new(dir.path().to_path_buf());
        assert_eq!(again.allocate().expect("id"), BLOCK);
        for _ in 0..BLOCK {
            again.allocate().expect("id");
        }
        assert_eq!(again.allocate().expect("id"), 2 * BLOCK + 1);
    }
}
