//! Memory checks: transparent hugepages (khugepaged and fault-time compaction stall
//! a shard), the locked-memory limit io_uring's registered buffers count against,
//! and swappiness (a swapped-out batch cache page is a millisecond fault).

use super::host::{selected, Host};
use super::report::Finding;
use super::sysctl::{self, Rule, Want};

/// glommio registers each executor's 10 MiB of DMA buffers (its default `io_memory`)
/// with each of its 3 rings, and the kernel charges every registration to the user's
/// RLIMIT_MEMLOCK; short of that it logs a warning and does unregistered I/O. Below
/// 512 KiB the executor does not start at all.
pub const MEMLOCK_BYTES_PER_SHARD: u64 = 3 * (10 << 20);

/// RLIMIT_MEMLOCK soft limit of this process; `None` means unlimited.
pub type Memlock = Result<Option<u64>, String>;

pub fn check(host: &Host, memlock: Memlock, shards: usize) -> Vec<Finding> {
    vec![
        thp(host, "mem.thp_enabled", "enabled", &["madvise", "never"]),
        thp(
            host,
            "mem.thp_defrag",
            "defrag",
            &["madvise", "defer+madvise", "defer", "never"],
        ),
        memlock_finding(memlock, shards),
        sysctl::evaluate(host, &SWAPPINESS),
    ]
}

const SWAPPINESS: Rule = Rule {
    check: "mem.swappiness",
    key: "vm.swappiness",
    want: Want::AtMost(10),
    why: "a swapped-out cache page costs a disk read on the hot path",
};

fn thp(host: &Host, name: &'static str, file: &str, good: &[&str]) -> Finding {
    let want = good[..2].join(" or ");
    let path = format!("/sys/kernel/mm/transparent_hugepage/{file}");
    let text = match host.read(&path) {
        Ok(t) => t,
        Err(e) => return Finding::unknown(name, &want, e),
    };
    let Some(mode) = selected(&text) else {
        return Finding::unknown(name, &want, format!("no [selected] mode in '{text}'"));
    };
    if good.contains(&mode) {
        return Finding::ok(name, mode, &want);
    }
    Finding::warn(name, mode, &want)
        .fix("tuning/thp.sh madvise")
        .note("khugepaged scans and fault-time compaction stall the shard for ms")
}

pub fn memlock_limit() -> Memlock {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes only the struct we pass.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut lim) };
    if rc != 0 {
        return Err(format!("getrlimit: {}", std::io::Error::last_os_error()));
    }
    Ok((lim.rlim_cur != libc::RLIM_INFINITY).then_some(lim.rlim_cur))
}

pub fn memlock_finding(limit: Memlock, shards: usize) -> Finding {
    const NAME: &str = "mem.memlock";
    let need = MEMLOCK_BYTES_PER_SHARD.saturating_mul(shards as u64);
    let want = format!("unlimited (>= {} MiB)", need >> 20);
    match limit {
        Err(e) => Finding::unknown(NAME, &want, e),
        Ok(None) => Finding::ok(NAME, "unlimited", &want),
        Ok(Some(bytes)) => {
            let current = format!("{} KiB", bytes >> 10);
            if bytes >= need {
                return Finding::ok(NAME, current, &want);
            }
            Finding::warn(NAME, current, &want)
                .fix("tuning/memlock.sh")
                .note("too little to register every shard's io_uring buffers (root/CAP_IPC_LOCK is exempt)")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tune::host::fake;
    use crate::tune::report::Status;

    #[test]
    fn thp_always_warns_and_madvise_passes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let r = dir.path();
        fake::write(
            r,
            "/sys/kernel/mm/transparent_hugepage/enabled",
            "[always] madvise never",
        );
        fake::write(
            r,
            "/sys/kernel/mm/transparent_hugepage/defrag",
            "always defer defer+madvise [madvise] never",
        );
        fake::write(r, "/proc/sys/vm/swappiness", "60");
        let f = check(&Host::new(r), Ok(None), 1);
        assert_eq!(f[0].status, Status::Warn);
        assert_eq!(f[0].fix.as_deref(), Some("tuning/thp.sh madvise"));
        assert_eq!(f[1].status, Status::Ok);
        assert_eq!(f[1].current, "madvise");
        assert_eq!(f[3].status, Status::Warn, "swappiness 60: {:?}", f[3]);
        fake::write(
            r,
            "/sys/kernel/mm/transparent_hugepage/enabled",
            "always [madvise] never",
        );
        assert_eq!(check(&Host::new(r), Ok(None), 1)[0].status, Status::Ok);
    }

    #[test]
    fn missing_thp_is_unknown() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = check(&Host::new(dir.path()), Ok(None), 1);
        assert_eq!(f[0].status, Status::Unknown);
        assert!(f[0].note.contains("does not exist"));
    }

    #[test]
    fn memlock_of_8_mib_warns_and_unlimited_passes() {
        let f = memlock_finding(Ok(Some(8 << 20)), 1);
        assert_eq!(f.status, Status::Warn);
        assert_eq!(f.current, "8192 KiB");
        assert_eq!(f.recommended, "unlimited (>= 30 MiB)");
        assert_eq!(f.fix.as_deref(), Some("tuning/memlock.sh"));
        assert_eq!(memlock_finding(Ok(Some(64 << 20)), 2).status, Status::Ok);
        assert_eq!(memlock_finding(Ok(Some(64 << 20)), 4).status, Status::Warn);
        assert_eq!(memlock_finding(Ok(None), 64).status, Status::Ok);
        assert_eq!(memlock_finding(Err("x".into()), 1).status, Status::Unknown);
    }

    #[test]
    fn this_process_has_a_memlock_limit() {
        assert!(memlock_limit().is_ok());
    }
}
