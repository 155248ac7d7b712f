//! `tune --check --jitter-ms N`: how long a busy core loses the CPU while it spins.
//!
//! A polling shard (`--poll-us`) or a spinning client only sees its socket again when
//! it runs, so every stall of the core (an interrupt, a kernel worker, another task,
//! the hypervisor taking the vCPU) lands in the latency tail. One thread per core reads
//! the clock in a loop with nothing else to do; a gap between two reads is a stall.
//! This is the floor under any end-to-end percentile on that core.

use super::report::Finding;
use std::time::{Duration, Instant};

/// Gaps shorter than this are the loop itself and cache misses, not stalls.
const STALL_MIN: Duration = Duration::from_micros(10);
/// A stall longer than this breaks a tens-of-µs p99.9.
const STALL_WARN: Duration = Duration::from_micros(50);

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stalls {
    pub count: u64,
    pub total: Duration,
    pub longest: Duration,
}

impl Stalls {
    fn add(&mut self, gap: Duration) {
        if gap >= STALL_MIN {
            self.count += 1;
            self.total += gap;
            self.longest = self.longest.max(gap);
        }
    }
}

/// Spins on the calling thread for `length`, collecting the stalls it sees.
fn spin_for(length: Duration) -> Stalls {
    let mut stalls = Stalls::default();
    let start = Instant::now();
    let mut last = start;
    while last - start < length {
        let now = Instant::now();
        stalls.add(now - last);
        last = now;
    }
    stalls
}

/// Measures every core at once (so they disturb each other as shards would), each
/// thread pinned to its core.
pub fn measure(cores: &[usize], length: Duration) -> Vec<(usize, Option<Stalls>)> {
    let threads: Vec<_> = cores
        .iter()
        .map(|&core| {
            let handle = std::thread::spawn(move || {
                let pinned = core_affinity::set_for_current(core_affinity::CoreId { id: core });
                pinned.then(|| spin_for(length))
            });
            (core, handle)
        })
        .collect();
    threads
        .into_iter()
        .map(|(core, h)| (core, h.join().ok().flatten()))
        .collect()
}

/// One finding per core.
pub fn findings(measured: &[(usize, Option<Stalls>)], length: Duration) -> Vec<Finding> {
    const NAME: &str = "cpu.jitter";
    let want = format!("no stall over {} µs", STALL_WARN.as_micros());
    measured
        .iter()
        .map(|(core, stalls)| {
            let Some(s) = stalls else {
                return Finding::unknown(NAME, &want, format!("core {core}: could not pin"));
            };
            let current = format!(
                "core {core}: {} stalls ≥ {} µs in {} ms, longest {} µs, {:.2}% of the time",
                s.count,
                STALL_MIN.as_micros(),
                length.as_millis(),
                s.longest.as_micros(),
                100.0 * s.total.as_secs_f64() / length.as_secs_f64().max(1e-9),
            );
            if s.longest <= STALL_WARN {
                return Finding::ok(NAME, current, &want);
            }
            Finding::warn(NAME, current, &want)
                .fix(format!("tuning/isolate-cores.sh {core}"))
                .note(
                    "the longest stall bounds the latency tail of a shard or client \
                     polling on this core; what is left after isolation (timer ticks, \
                     a hypervisor taking the vCPU) needs nohz_full or dedicated cores",
                )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_gaps_are_not_stalls() {
        let mut s = Stalls::default();
        s.add(Duration::from_micros(2));
        s.add(Duration::from_micros(30));
        s.add(Duration::from_micros(700));
        assert_eq!(s.count, 2);
        assert_eq!(s.longest, Duration::from_micros(700));
        assert_eq!(s.total, Duration::from_micros(730));
    }

    #[test]
    fn findings_warn_on_a_long_stall_only() {
        let length = Duration::from_millis(100);
        let quiet = Stalls {
            count: 3,
            total: Duration::from_micros(60),
            longest: Duration::from_micros(20),
        };
        let noisy = Stalls {
            longest: Duration::from_micros(760),
            ..quiet
        };
        let f = findings(&[(0, Some(quiet)), (1, Some(noisy)), (2, None)], length);
        assert_eq!(f[0].status, super::super::report::Status::Ok);
        assert_eq!(f[1].status, super::super::report::Status::Warn);
        assert!(f[1].current.contains("longest 760 µs"), "{}", f[1].current);
        assert_eq!(f[2].status, super::super::report::Status::Unknown);
    }

    #[test]
    fn a_real_spin_reports_its_length() {
        let s = spin_for(Duration::from_millis(20));
        assert!(s.total <= Duration::from_millis(20) + s.longest);
    }
}
