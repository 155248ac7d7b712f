//! Disk checks for the device under `--data-dir`: I/O scheduler (none for NVMe: the
//! broker already orders and batches its own writes), request queue depth, and the
//! volatile write cache that makes every fdatasync a cache flush.
//!
//! The device is found by stat's st_dev → /sys/dev/block/MAJ:MIN, from a partition to
//! its disk, and through device-mapper/md `slaves/` to the disks underneath.

use super::host::{list_path, read_path, selected, Host};
use super::report::Finding;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// At least one full io_uring submission ring (glommio's default depth is 128).
pub const NR_REQUESTS_MIN: u64 = 128;
/// Bounds on the walk through stacked devices (dm on md on partitions).
const STACK_DEPTH_MAX: usize = 4;
const DISKS_MAX: usize = 16;

/// `(major, minor)` of the device holding `dir`, or of its nearest existing ancestor
/// (the broker creates the data directory on first start).
pub fn device_of(dir: &Path) -> Result<(u32, u32), String> {
    let abs = std::path::absolute(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let meta = abs
        .ancestors()
        .find_map(|a| std::fs::metadata(a).ok())
        .ok_or_else(|| format!("cannot stat {} or any parent", abs.display()))?;
    let dev = meta.dev();
    // glibc's dev_t encoding (what gnu_dev_major/minor decode).
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    Ok((major as u32, minor as u32))
}

/// A whole disk: its kernel name and sysfs directory.
#[derive(Debug)]
struct Disk {
    name: String,
    dir: PathBuf,
}

pub fn check(host: &Host, dev: Result<(u32, u32), String>) -> Vec<Finding> {
    let disks = dev.and_then(|(major, minor)| disks_of(host, major, minor));
    let disks = match disks {
        Ok(d) => d,
        Err(e) => {
            return vec![
                Finding::unknown(SCHEDULER, "none on NVMe", e.clone()),
                Finding::unknown(NR_REQUESTS, &nr_requests_want(), e.clone()),
                Finding::unknown(WRITE_CACHE, "write through (power-loss protected)", e),
            ]
        }
    };
    vec![scheduler(&disks), nr_requests(&disks), write_cache(&disks)]
}

const SCHEDULER: &str = "disk.scheduler";
const NR_REQUESTS: &str = "disk.nr_requests";
const WRITE_CACHE: &str = "disk.write_cache";

fn disks_of(host: &Host, major: u32, minor: u32) -> Result<Vec<Disk>, String> {
    let link = format!("/sys/dev/block/{major}:{minor}");
    let dir = host
        .resolve(&link)
        .map_err(|e| format!("{e}: data dir is not on a block device (tmpfs, overlay?)"))?;
    let mut disks = Vec::new();
    collect_disks(dir, 0, &mut disks);
    if disks.is_empty() {
        return Err(format!("no disk found under {link}"));
    }
    Ok(disks)
}

fn collect_disks(dir: PathBuf, depth: usize, out: &mut Vec<Disk>) {
    let dir = match dir.parent() {
        Some(parent) if dir.join("partition").exists() => parent.to_path_buf(),
        _ => dir,
    };
    let slaves = list_path(&dir.join("slaves")).unwrap_or_default();
    if !slaves.is_empty() && depth < STACK_DEPTH_MAX {
        for s in slaves {
            if let Ok(p) = std::fs::canonicalize(dir.join("slaves").join(s)) {
                collect_disks(p, depth + 1, out);
            }
        }
        return;
    }
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if out.len() < DISKS_MAX && !out.iter().any(|d| d.name == name) {
        out.push(Disk { name, dir });
    }
}

fn queue_file(disk: &Disk, file: &str) -> Result<String, String> {
    read_path(&disk.dir.join("queue").join(file))
        .map_err(|e| format!("{}/queue/{file}: {e}", disk.name))
}

/// Judges each disk; warns if any is off (fix for those), unknown if any unreadable.
fn per_disk(
    name: &'static str,
    want: &str,
    disks: &[Disk],
    judge: impl Fn(&Disk) -> Result<(bool, String), String>,
    fix: impl Fn(&Disk) -> Option<String>,
) -> Finding {
    let mut current = Vec::new();
    let (mut fixes, mut bad, mut errors) = (Vec::new(), false, Vec::new());
    for d in disks {
        match judge(d) {
            Ok((good, value)) => {
                current.push(format!("{value} ({})", d.name));
                if !good {
                    bad = true;
                    fixes.extend(fix(d));
                }
            }
            Err(e) => errors.push(e),
        }
    }
    let current = current.join("; ");
    if bad {
        let f = Finding::warn(name, current, want);
        return if fixes.is_empty() {
            f
        } else {
            f.fix(fixes.join(" && "))
        };
    }
    if !errors.is_empty() {
        return Finding::unknown(name, want, errors.join("; "));
    }
    Finding::ok(name, current, want)
}

fn is_flash(d: &Disk) -> bool {
    d.name.starts_with("nvme") || queue_file(d, "rotational").is_ok_and(|r| r == "0")
}

fn scheduler(disks: &[Disk]) -> Finding {
    let judge = |d: &Disk| {
        let text = queue_file(d, "scheduler")?;
        let current = selected(&text).unwrap_or(&text).to_string();
        Ok((!is_flash(d) || current == "none", current))
    };
    let fix = |d: &Disk| Some(format!("tuning/nvme.sh {}", d.name));
    per_disk(SCHEDULER, "none on NVMe", disks, judge, fix)
        .note("an elevator adds latency and a lock to each request the broker has already batched")
}

fn nr_requests_want() -> String {
    format!(">= {NR_REQUESTS_MIN}")
}

fn nr_requests(disks: &[Disk]) -> Finding {
    let judge = |d: &Disk| {
        let text = queue_file(d, "nr_requests")?;
        let n: u64 = text
            .parse()
            .map_err(|_| format!("{}: unexpected nr_requests '{text}'", d.name))?;
        Ok((n >= NR_REQUESTS_MIN, text))
    };
    let fix = |d: &Disk| Some(format!("tuning/nvme.sh {}", d.name));
    per_disk(NR_REQUESTS, &nr_requests_want(), disks, judge, fix)
        .note("a shallow queue makes concurrent shard writes wait in the block layer")
}

fn write_cache(disks: &[Disk]) -> Finding {
    let judge = |d: &Disk| {
        let text = queue_file(d, "write_cache")?;
        Ok((text == "write through", text))
    };
    per_disk(
        WRITE_CACHE,
        "write through (power-loss protected)",
        disks,
        judge,
        |_| None,
    )
    .note(
        "each durable fdatasync flushes the drive's volatile cache (~1 ms); use a drive \
             with power-loss protection, never force write through on one without it",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tune::host::fake;
    use crate::tune::report::Status;

    /// nvme0n1 with partition nvme0n1p1 at 259:1, and a dm-0 at 253:0 on top of it.
    fn nvme_tree(scheduler: &str, nr: &str, cache: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        let r = dir.path();
        let disk = "/sys/devices/pci0000:00/0000:00:04.0/nvme/nvme0/nvme0n1";
        fake::write(r, &format!("{disk}/queue/scheduler"), scheduler);
        fake::write(r, &format!("{disk}/queue/nr_requests"), nr);
        fake::write(r, &format!("{disk}/queue/write_cache"), cache);
        fake::write(r, &format!("{disk}/queue/rotational"), "0");
        fake::write(r, &format!("{disk}/nvme0n1p1/partition"), "1");
        let up = "../../devices/pci0000:00/0000:00:04.0/nvme/nvme0/nvme0n1";
        fake::symlink(r, "/sys/dev/block/259:0", up);
        fake::symlink(r, "/sys/dev/block/259:1", &format!("{up}/nvme0n1p1"));
        fake::write(r, "/sys/devices/virtual/block/dm-0/queue/scheduler", "none");
        fake::symlink(
            r,
            "/sys/devices/virtual/block/dm-0/slaves/nvme0n1p1",
            "../../../../pci0000:00/0000:00:04.0/nvme/nvme0/nvme0n1/nvme0n1p1",
        );
        fake::symlink(
            r,
            "/sys/dev/block/253:0",
            "../../devices/virtual/block/dm-0",
        );
        dir
    }

    #[test]
    fn mq_deadline_on_nvme_warns_with_script_fix() {
        let dir = nvme_tree("[mq-deadline] none", "64", "write back");
        let f = check(&Host::new(dir.path()), Ok((259, 1)));
        assert_eq!(f[0].status, Status::Warn);
        assert_eq!(f[0].current, "mq-deadline (nvme0n1)");
        assert_eq!(f[0].fix.as_deref(), Some("tuning/nvme.sh nvme0n1"));
        assert_eq!(f[1].status, Status::Warn);
        assert_eq!(f[2].status, Status::Warn);
        assert_eq!(f[2].fix, None);
    }

    #[test]
    fn tuned_nvme_passes_through_device_mapper() {
        let dir = nvme_tree("[none] mq-deadline", "1023", "write through");
        let f = check(&Host::new(dir.path()), Ok((253, 0)));
        assert!(f.iter().all(|x| x.status == Status::Ok), "{f:#?}");
        assert_eq!(f[0].current, "none (nvme0n1)");
    }

    #[test]
    fn rotational_disk_keeps_its_elevator() {
        let dir = nvme_tree("[mq-deadline] none", "256", "write back");
        let r = dir.path();
        fake::write(
            r,
            "/sys/devices/virtio1/block/vda/queue/scheduler",
            "[mq-deadline] none",
        );
        fake::write(r, "/sys/devices/virtio1/block/vda/queue/rotational", "1");
        fake::symlink(r, "/sys/dev/block/254:0", "../../devices/virtio1/block/vda");
        let f = check(&Host::new(r), Ok((254, 0)));
        assert_eq!(f[0].status, Status::Ok, "{:?}", f[0]);
        assert_eq!(
            f[1].status,
            Status::Unknown,
            "no nr_requests file: {:?}",
            f[1]
        );
    }

    #[test]
    fn no_block_device_is_unknown() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = check(&Host::new(dir.path()), Ok((0, 42)));
        assert!(f.iter().all(|x| x.status == Status::Unknown));
        assert!(f[0].note.contains("not on a block device"), "{}", f[0].note);
    }

    #[test]
    fn device_of_a_missing_dir_is_its_parents() {
        let dir = tempfile::tempdir().expect("tempdir");
        let inside = device_of(&dir.path().join("not/yet/created"));
        assert_eq!(inside, device_of(dir.path()));
        assert!(inside.is_ok());
    }
}
