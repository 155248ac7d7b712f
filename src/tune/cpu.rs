//! CPU checks: frequency governor, isolation of the shard cores from the scheduler,
//! timer ticks and RCU callbacks, and SMT siblings sharing a shard's physical core.

use super::cpulist::{self, format as fmt};
use super::host::Host;
use super::report::Finding;
use std::collections::BTreeMap;

pub fn check(host: &Host, cores: &[usize]) -> Vec<Finding> {
    vec![
        governor(host, cores),
        isolation(host, cores),
        nohz_full(host, cores),
        rcu_nocbs(host, cores),
        smt(host, cores),
    ]
}

/// CPUs the kernel has online; the broker's default when `--cores` is not given.
pub fn online(host: &Host) -> Result<Vec<usize>, String> {
    cpulist::parse(&host.read("/sys/devices/system/cpu/online")?)
}

fn governor(host: &Host, cores: &[usize]) -> Finding {
    const NAME: &str = "cpu.governor";
    const WANT: &str = "performance";
    let mut by_governor: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    let mut unreadable = None;
    for &c in cores {
        match host.read(&format!(
            "/sys/devices/system/cpu/cpu{c}/cpufreq/scaling_governor"
        )) {
            Ok(g) => by_governor.entry(g).or_default().push(c),
            Err(e) => unreadable = unreadable.or(Some(e)),
        }
    }
    if by_governor.is_empty() {
        let why = unreadable.unwrap_or_else(|| "no shard cores".into());
        return Finding::unknown(
            NAME,
            WANT,
            format!("{why} (no cpufreq: VM, or frequency not OS-controlled)"),
        );
    }
    let current = by_governor
        .iter()
        .map(|(g, cs)| format!("{g} on {}", fmt(cs)))
        .collect::<Vec<_>>()
        .join("; ");
    if by_governor.len() == 1 && by_governor.contains_key(WANT) && unreadable.is_none() {
        return Finding::ok(NAME, WANT, WANT);
    }
    Finding::warn(NAME, current, WANT)
        .fix("tuning/cpu-governor.sh performance")
        .note("frequency ramp-up after idle adds tens of µs to the first request")
}

fn isolation(host: &Host, cores: &[usize]) -> Finding {
    const NAME: &str = "cpu.isolation";
    let want = format!("shard cores {} isolated, one core left", fmt(cores));
    let isolated = match host
        .read("/sys/devices/system/cpu/isolated")
        .and_then(|s| cpulist::parse(&s))
    {
        Ok(i) => i,
        Err(e) => return Finding::unknown(NAME, &want, e),
    };
    let current = format!("isolated: {}", fmt(&isolated));
    if let Ok(all) = online(host) {
        if !all.is_empty() && cpulist::minus(&all, cores).is_empty() {
            let rest = cpulist::minus(&all, &all[..1]);
            return Finding::warn(NAME, current, &want)
                .fix(format!(
                    "peregrine serve --cores {0}; tuning/isolate-cores.sh {0}",
                    fmt(&rest)
                ))
                .note("shards on every core leave none for the kernel, IRQs and daemons");
        }
    }
    let missing = cpulist::minus(cores, &isolated);
    if missing.is_empty() {
        return Finding::ok(NAME, current, &want);
    }
    Finding::warn(NAME, current, &want)
        .fix(format!("tuning/isolate-cores.sh {}", fmt(cores)))
        .note(format!(
            "cores {} run other tasks that preempt the shard",
            fmt(&missing)
        ))
}

fn nohz_full(host: &Host, cores: &[usize]) -> Finding {
    const NAME: &str = "cpu.nohz_full";
    let want = format!("nohz_full includes {}", fmt(cores));
    let text = match host.read("/sys/devices/system/cpu/nohz_full") {
        Ok(t) => t,
        Err(e) => {
            return Finding::unknown(
                NAME,
                &want,
                format!("{e} (kernel without CONFIG_NO_HZ_FULL?)"),
            )
        }
    };
    covered(NAME, &want, cpulist::parse(&text), cores)
        .note("the scheduler tick interrupts a busy shard up to 1000 times a second")
}

fn rcu_nocbs(host: &Host, cores: &[usize]) -> Finding {
    const NAME: &str = "cpu.rcu_nocbs";
    let want = format!("rcu_nocbs includes {}", fmt(cores));
    let cmdline = match host.read("/proc/cmdline") {
        Ok(t) => t,
        Err(e) => return Finding::unknown(NAME, &want, e),
    };
    // nohz_full= implies rcu_nocbs= for the same CPUs.
    let mut set = Vec::new();
    for key in ["rcu_nocbs", "nohz_full"] {
        match kernel_param(&cmdline, key).map(cpulist::parse) {
            Some(Ok(cs)) => set.extend(cs),
            Some(Err(e)) => return Finding::unknown(NAME, &want, format!("{key}=: {e}")),
            None => {}
        }
    }
    set.sort_unstable();
    set.dedup();
    covered(NAME, &want, Ok(set), cores)
        .note("RCU callbacks run on the core that queued them unless offloaded")
}

/// ok when every shard core is in `set`, else warn with the isolate-cores fix.
fn covered(
    name: &'static str,
    want: &str,
    set: Result<Vec<usize>, String>,
    cores: &[usize],
) -> Finding {
    let set = match set {
        Ok(s) => s,
        Err(e) => return Finding::unknown(name, want, e),
    };
    let current = fmt(&set);
    if cpulist::minus(cores, &set).is_empty() {
        return Finding::ok(name, current, want);
    }
    Finding::warn(name, current, want).fix(format!("tuning/isolate-cores.sh {}", fmt(cores)))
}

/// `all` in a CPU list parameter: every CPU number we accept.
const ALL_CPUS: &str = "0-8191";

/// The value of `key=` on the kernel command line (before `--`, which ends the
/// kernel's part); the last one wins, as in the kernel, and `all` means every CPU.
pub fn kernel_param<'a>(cmdline: &'a str, key: &str) -> Option<&'a str> {
    cmdline
        .split_whitespace()
        .take_while(|t| *t != "--")
        .filter_map(|t| t.split_once('='))
        .filter(|(k, _)| *k == key)
        .map(|(_, v)| if v == "all" { ALL_CPUS } else { v })
        .last()
}

fn smt(host: &Host, cores: &[usize]) -> Finding {
    const NAME: &str = "cpu.smt";
    const WANT: &str = "no shard shares a physical core";
    let isolated = host
        .read("/sys/devices/system/cpu/isolated")
        .and_then(|s| cpulist::parse(&s))
        .unwrap_or_default();
    let mut shared = Vec::new();
    let mut busy_siblings = Vec::new();
    for &c in cores {
        let path = format!("/sys/devices/system/cpu/cpu{c}/topology/thread_siblings_list");
        let siblings = match host.read(&path).and_then(|s| cpulist::parse(&s)) {
            Ok(s) => s,
            Err(e) => return Finding::unknown(NAME, WANT, e),
        };
        for s in siblings.into_iter().filter(|s| *s != c) {
            if cores.contains(&s) {
                shared.push(c);
            } else if !isolated.contains(&s) {
                busy_siblings.push(s);
            }
        }
    }
    let fix = "echo off > /sys/devices/system/cpu/smt/control (or boot with nosmt)";
    if !shared.is_empty() {
        return Finding::warn(NAME, format!("shards share cores {}", fmt(&shared)), WANT)
            .fix(fix)
            .note("two shards on one physical core halve each other's throughput");
    }
    busy_siblings.sort_unstable();
    busy_siblings.dedup();
    if !busy_siblings.is_empty() {
        return Finding::warn(NAME, format!("busy siblings {}", fmt(&busy_siblings)), WANT)
            .fix(fix)
            .note("other work on a sibling thread steals the shard's execution units and cache");
    }
    Finding::ok(NAME, "no busy siblings", WANT)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tune::host::fake;
    use crate::tune::report::Status;

    fn cpu_tree(governors: &[&str]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        let r = dir.path();
        let n = governors.len();
        fake::write(r, "/sys/devices/system/cpu/online", &format!("0-{}", n - 1));
        for (c, g) in governors.iter().enumerate() {
            let base = format!("/sys/devices/system/cpu/cpu{c}");
            fake::write(r, &format!("{base}/cpufreq/scaling_governor"), g);
            fake::write(
                r,
                &format!("{base}/topology/thread_siblings_list"),
                &c.to_string(),
            );
        }
        fake::write(r, "/sys/devices/system/cpu/isolated", "");
        fake::write(r, "/proc/cmdline", "ro quiet");
        dir
    }

    #[test]
    fn powersave_governor_warns_with_script_fix() {
        let dir = cpu_tree(&["performance", "powersave", "powersave", "performance"]);
        let f = governor(&Host::new(dir.path()), &[1, 2, 3]);
        assert_eq!(f.status, Status::Warn);
        assert_eq!(f.current, "performance on 3; powersave on 1-2");
        assert_eq!(f.fix.as_deref(), Some("tuning/cpu-governor.sh performance"));
        let f = governor(&Host::new(dir.path()), &[0, 3]);
        assert_eq!(f.status, Status::Ok);
    }

    #[test]
    fn missing_cpufreq_is_unknown_not_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = governor(&Host::new(dir.path()), &[0]);
        assert_eq!(f.status, Status::Unknown);
        assert!(f.note.contains("does not exist"), "{}", f.note);
    }

    #[test]
    fn shard_cores_must_be_isolated_and_leave_a_housekeeping_core() {
        let dir = cpu_tree(&["performance"; 4]);
        let host = Host::new(dir.path());
        let f = isolation(&host, &[0, 1, 2, 3]);
        assert_eq!(f.status, Status::Warn);
        assert!(
            f.fix.as_deref().unwrap_or("").contains("--cores 1-3"),
            "{f:?}"
        );
        let f = isolation(&host, &[2, 3]);
        assert_eq!(f.status, Status::Warn);
        assert_eq!(f.fix.as_deref(), Some("tuning/isolate-cores.sh 2-3"));
        fake::write(dir.path(), "/sys/devices/system/cpu/isolated", "1-3");
        assert_eq!(isolation(&host, &[2, 3]).status, Status::Ok);
    }

    #[test]
    fn nohz_full_and_rcu_nocbs_come_from_sysfs_and_cmdline() {
        let dir = cpu_tree(&["performance"; 4]);
        let host = Host::new(dir.path());
        assert_eq!(nohz_full(&host, &[1]).status, Status::Unknown);
        fake::write(dir.path(), "/sys/devices/system/cpu/nohz_full", "(null)");
        assert_eq!(nohz_full(&host, &[1]).status, Status::Warn);
        fake::write(dir.path(), "/sys/devices/system/cpu/nohz_full", "1-3");
        assert_eq!(nohz_full(&host, &[1, 2]).status, Status::Ok);
        assert_eq!(rcu_nocbs(&host, &[1]).status, Status::Warn);
        fake::write(
            dir.path(),
            "/proc/cmdline",
            "ro nohz_full=1-2 -- rcu_nocbs=3",
        );
        assert_eq!(rcu_nocbs(&host, &[1, 2]).status, Status::Ok);
        assert_eq!(rcu_nocbs(&host, &[3]).status, Status::Warn);
    }

    #[test]
    fn smt_siblings_of_shard_cores_warn() {
        let dir = cpu_tree(&["performance"; 4]);
        let r = dir.path();
        let host = Host::new(r);
        assert_eq!(smt(&host, &[0, 1]).status, Status::Ok);
        for (c, s) in [(0, "0,2"), (1, "1,3"), (2, "0,2"), (3, "1,3")] {
            let p = format!("/sys/devices/system/cpu/cpu{c}/topology/thread_siblings_list");
            fake::write(r, &p, s);
        }
        assert_eq!(smt(&host, &[0, 2]).current, "shards share cores 0,2");
        assert_eq!(smt(&host, &[0, 1]).current, "busy siblings 2-3");
        fake::write(r, "/sys/devices/system/cpu/isolated", "0-3");
        assert_eq!(smt(&host, &[0, 1]).status, Status::Ok);
    }
}
