//! Test support: a glommio executor to run a test on, and a small tmpfs a test mounts
//! itself (root) and fills until ENOSPC.

use std::future::Future;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Runs `test` on a fresh glommio executor thread and propagates its panics.
pub(crate) fn run<F, Fut>(test: F)
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = ()> + 'static,
{
    crate::sys::raise_memlock_limit().expect("raise RLIMIT_MEMLOCK");
    let handle = glommio::LocalExecutorBuilder::default()
        .spawn(test)
        .expect("start executor");
    handle.join().expect("test executor");
}

/// A tmpfs of `size_mb` MiB on a fresh directory; unmounted on drop.
pub(crate) struct SmallFs {
    dir: tempfile::TempDir,
    fillers: Vec<PathBuf>,
}

impl SmallFs {
    /// `None` (with the reason printed) where mounts are refused.
    pub(crate) fn mount(size_mb: u32) -> Option<SmallFs> {
        let dir = tempfile::tempdir().expect("temp dir");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size_mb}m"), "tmpfs"])
            .arg(dir.path())
            .output()
            .expect("run mount");
        if !out.status.success() {
            eprintln!(
                "SKIPPED: cannot mount a small tmpfs ({}); needs root and mounts allowed",
                String::from_utf8_lossy(&out.stderr).trim()
            );
            return None;
        }
        Some(SmallFs {
            dir,
            fillers: Vec::new(),
        })
    }

    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes a filler file until ENOSPC (bounded by the filesystem's size).
    pub(crate) fn fill(&mut self) {
        let path = self.path().join(format!("filler-{}", self.fillers.len()));
        let mut file = std::fs::File::create(&path).expect("create filler");
        self.fillers.push(path);
        let block = vec![0u8; 4096];
        loop {
            match file.write_all(&block) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::StorageFull => break,
                Err(e) => panic!("filling: {e}"),
            }
        }
    }

    pub(crate) fn free(&mut self) {
        for path in self.fillers.drain(..) {
            std::fs::remove_file(path).expect("remove filler");
        }
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}
