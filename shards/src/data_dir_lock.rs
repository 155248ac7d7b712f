//! The lock on a data directory: one process at a time may own it, a broker for its
//! whole run or an offline tool (`peregrine user add --data-dir`) for one edit. Two
//! brokers on one directory would both append to the same segments and rewrite the same
//! catalog; a tool editing the catalog under a running broker would have its change
//! overwritten by the broker's next write. Kafka guards its log directories the same way
//! (`.lock`).
//!
//! The lock is `flock(2)` on `DATA_DIR/.lock` (std's `File::try_lock`): the kernel
//! drops it when the process ends, kill -9 included, so a crash never leaves a stale
//! lock behind. The file holds the owner's pid, for the error a second process sees.
//! Blocking file calls: take it before the shards start, never on a shard.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

/// The lock file's name inside the data directory.
pub const LOCK_FILE: &str = ".lock";
/// Bytes read of another owner's pid: a number, not a file someone replaced.
const PID_BYTES_MAX: u64 = 32;

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "data directory {dir} is in use by another process{owner} (a running broker, or a \
         `--data-dir` command): stop it first, or use a broker's native port instead"
    )]
    InUse { dir: String, owner: String },
    #[error("data directory {dir}: cannot take its lock {file}: {source}")]
    Io {
        dir: String,
        file: String,
        source: std::io::Error,
    },
}

/// Holds the lock on one data directory until dropped (or the process ends).
#[derive(Debug)]
pub struct DataDirLock {
    /// Kept open: closing the file would release the lock.
    _file: File,
    path: PathBuf,
}

impl DataDirLock {
    /// Takes the lock of `data_dir` (created if missing) without waiting: `InUse`
    /// when another process holds it.
    pub fn acquire(data_dir: &Path) -> Result<DataDirLock, LockError> {
        let path = data_dir.join(LOCK_FILE);
        let io = |source: std::io::Error| LockError::Io {
            dir: data_dir.display().to_string(),
            file: path.display().to_string(),
            source,
        };
        std::fs::create_dir_all(data_dir).map_err(io)?;
        // Not truncated on open: the pid in it is the owner's until the lock is ours.
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(LockError::InUse {
                    dir: data_dir.display().to_string(),
                    owner: owner_of(&file),
                })
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
        }
        file.set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| writeln!(file, "{}", std::process::id()))
            .map_err(io)?;
        Ok(DataDirLock { _file: file, path })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// " (pid N)" from the lock file of the process holding it, or "" when unreadable.
fn owner_of(file: &File) -> String {
    let mut text = String::new();
    let read = file.take(PID_BYTES_MAX).read_to_string(&mut text);
    match read.ok().and_then(|_| text.trim().parse::<u32>().ok()) {
        Some(pid) => format!(" (pid {pid})"),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_is_refused_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().expect("temp dir");
        let data = dir.path().join("data");
        let first = DataDirLock::acquire(&data).expect("first lock");
        let pid = std::fs::read_to_string(first.path()).expect("lock file");
        assert_eq!(pid.trim(), std::process::id().to_string());
        // flock locks belong to the open file, so a second open in this process
        // conflicts as another process would.
        let second = DataDirLock::acquire(&data).expect_err("held");
        let said = second.to_string();
        assert!(said.contains("in use by another process"), "{said}");
        assert!(
            said.contains(&format!("pid {}", std::process::id())),
            "{said}"
        );
        drop(first);
        DataDirLock::acquire(&data).expect("free again");
    }
}
