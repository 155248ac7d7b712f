//! Process-level settings the io_uring runtime needs.

/// Raises RLIMIT_MEMLOCK as far as this process may (to infinity when root).
///
/// glommio registers its I/O buffers with io_uring, which locks memory; the common
/// default of 8 MiB is not enough for one executor, let alone one per core.
pub fn raise_memlock_limit() -> std::io::Result<u64> {
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    unsafe {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut lim) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let want = libc::rlimit {
            rlim_cur: libc::RLIM_INFINITY,
            rlim_max: libc::RLIM_INFINITY,
        };
        if libc::setrlimit(libc::RLIMIT_MEMLOCK, &want) == 0 {
            return Ok(u64::MAX);
        }
        // Not privileged: raise the soft limit to the hard one.
        lim.rlim_cur = lim.rlim_max;
        if libc::setrlimit(libc::RLIMIT_MEMLOCK, &lim) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(lim.rlim_cur)
    }
}
