//! A small file replaced whole, so that a crash leaves either the old contents or the
//! new ones: written beside it (`NAME.tmp`), synced, renamed over it, and its directory
//! synced so that the rename itself is durable. The catalog, the producer-id block and
//! the SNS signing key are written this way (a partition's small files go through
//! glommio instead, `log::file`).
//!
//! Blocking calls; for threads that may block (tools, tests, a shard's blocking pool,
//! or a shard for a file this small written rarely).

use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

/// Replaces `path` with `bytes`, readable and writable as `mode` says (the mode is set
/// before any byte is written, so a secret is never readable by others). On an error
/// the file in place is untouched and the temporary one is removed: a half-written one
/// would keep blocks that a retry on a full disk needs.
pub fn replace(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| std::io::Error::other(format!("{} has no directory", path.display())))?;
    let tmp = tmp_path(path);
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .and_then(|mut file| {
            // `mode` applies only when the file is created; one left by a crash keeps its own.
            file.set_permissions(std::fs::Permissions::from_mode(mode))?;
            file.write_all(bytes)?;
            file.sync_all()
        })
        .and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::File::open(dir)?.sync_all()
}

/// Where `replace` writes before the rename: `path` with `.tmp` in place of its
/// extension (recovery removes such leftovers where it scans).
pub fn tmp_path(path: &Path) -> PathBuf {
    path.with_extension("tmp")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_whole_file_with_its_mode_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("state.json");
        std::fs::write(&path, b"old contents, longer than the new").expect("old");
        replace(&path, b"new", 0o600).expect("replaced");
        assert_eq!(std::fs::read(&path).expect("read"), b"new");
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(!tmp_path(&path).exists());
    }

    #[test]
    fn a_failed_write_leaves_the_old_file_and_no_temporary() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("state.json");
        std::fs::write(&path, b"old").expect("old");
        // A directory where the temporary file would go: the open fails.
        std::fs::create_dir(tmp_path(&path)).expect("blocker");
        assert!(replace(&path, b"new", 0o600).is_err());
        assert_eq!(std::fs::read(&path).expect("read"), b"old");
        assert!(
            replace(Path::new("/"), b"x", 0o600).is_err(),
            "no directory"
        );
    }
}
