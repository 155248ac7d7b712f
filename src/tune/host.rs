//! Every read of the host's /proc and /sys goes through [`Host`], relative to a root
//! (`/` in production) so that unit tests can point the checks at a fake tree.

use std::io::Read;
use std::path::{Path, PathBuf};

/// Largest file read. /proc/interrupts on a large host with thousands of IRQs stays
/// well below; anything bigger is not a file we understand.
const READ_BYTES_MAX: u64 = 16 << 20;
/// Most directory entries listed (bounds the /proc scan for irqbalance).
const DIR_ENTRIES_MAX: usize = 1 << 20;

#[derive(Debug, Clone)]
pub struct Host {
    root: PathBuf,
}

impl Host {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Host { root: root.into() }
    }

    /// `abs` is a host path such as `/proc/interrupts`; it is taken under the root.
    pub fn path(&self, abs: &str) -> PathBuf {
        self.root.join(abs.trim_start_matches('/'))
    }

    /// The file's text with trailing whitespace removed; the error says which file.
    pub fn read(&self, abs: &str) -> Result<String, String> {
        read_path(&self.path(abs)).map_err(|e| describe(abs, &e))
    }

    /// Entry names of a directory, sorted.
    pub fn list(&self, abs: &str) -> Result<Vec<String>, String> {
        list_path(&self.path(abs)).map_err(|e| describe(abs, &e))
    }

    /// Follows symlinks (sysfs is made of them); the result stays under the root
    /// because sysfs links are relative.
    pub fn resolve(&self, abs: &str) -> Result<PathBuf, String> {
        std::fs::canonicalize(self.path(abs)).map_err(|e| describe(abs, &e))
    }
}

fn describe(abs: &str, e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => format!("{abs} does not exist"),
        _ => format!("cannot read {abs}: {e}"),
    }
}

pub fn read_path(path: &Path) -> std::io::Result<String> {
    let mut text = String::new();
    std::fs::File::open(path)?
        .take(READ_BYTES_MAX)
        .read_to_string(&mut text)?;
    text.truncate(text.trim_end().len());
    Ok(text)
}

pub fn list_path(path: &Path) -> std::io::Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(path)?.take(DIR_ENTRIES_MAX) {
        names.push(entry?.file_name().to_string_lossy().into_owned());
    }
    names.sort();
    Ok(names)
}

/// The bracketed choice of a sysfs selector such as `always [madvise] never`.
pub fn selected(text: &str) -> Option<&str> {
    let start = text.find('[')?;
    let end = text[start..].find(']')?;
    Some(&text[start + 1..start + end])
}

#[cfg(test)]
pub mod fake {
    //! Builds fake /proc and /sys trees for the checks' unit tests.

    use std::path::Path;

    pub fn write(root: &Path, abs: &str, text: &str) {
        let path = root.join(abs.trim_start_matches('/'));
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("create fake dir");
        }
        std::fs::write(&path, format!("{text}\n")).expect("write fake file");
    }

    pub fn symlink(root: &Path, abs: &str, target: &str) {
        let path = root.join(abs.trim_start_matches('/'));
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("create fake dir");
        }
        std::os::unix::fs::symlink(target, &path).expect("fake symlink");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selector_choice_is_the_bracketed_word() {
        assert_eq!(selected("always [madvise] never"), Some("madvise"));
        assert_eq!(selected("[none] mq-deadline"), Some("none"));
        assert_eq!(selected("none"), None);
    }

    #[test]
    fn missing_file_says_which() {
        let dir = tempfile::tempdir().expect("tempdir");
        let host = Host::new(dir.path());
        assert_eq!(
            host.read("/proc/nothing"),
            Err("/proc/nothing does not exist".to_string())
        );
        fake::write(dir.path(), "/proc/x", "  value \n\n");
        assert_eq!(host.read("/proc/x"), Ok("  value".to_string()));
    }
}
