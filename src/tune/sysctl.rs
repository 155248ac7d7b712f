//! Kernel network and scheduler knobs read from /proc/sys. vm.dirty_* is left out on
//! purpose: segments are written with O_DIRECT and never sit in the page cache.
//! tuning/sysctl.sh sets exactly the values recommended here.

use super::host::Host;
use super::report::Finding;

const MIB: u64 = 1 << 20;

/// What a value should be.
#[derive(Debug, Clone, Copy)]
pub enum Want {
    AtLeast(u64),
    AtMost(u64),
    /// The last field of a triple such as tcp_rmem `min default max`.
    MaxAtLeast(u64),
}

pub struct Rule {
    pub check: &'static str,
    pub key: &'static str,
    pub want: Want,
    pub why: &'static str,
}

const RULES: &[Rule] = &[
    Rule {
        check: "sysctl.net.core.busy_poll",
        key: "net.core.busy_poll",
        want: Want::AtLeast(50),
        why: "µs to busy-poll the NIC queue in poll/select before sleeping",
    },
    Rule {
        check: "sysctl.net.core.busy_read",
        key: "net.core.busy_read",
        want: Want::AtLeast(50),
        why: "µs to busy-poll the NIC queue on a blocking read before sleeping",
    },
    Rule {
        check: "sysctl.net.core.rmem_max",
        key: "net.core.rmem_max",
        want: Want::AtLeast(16 * MIB),
        why: "caps SO_RCVBUF; small buffers throttle fast producers",
    },
    Rule {
        check: "sysctl.net.core.wmem_max",
        key: "net.core.wmem_max",
        want: Want::AtLeast(16 * MIB),
        why: "caps SO_SNDBUF; small buffers stall fetch responses to consumers",
    },
    Rule {
        check: "sysctl.net.ipv4.tcp_rmem",
        key: "net.ipv4.tcp_rmem",
        want: Want::MaxAtLeast(16 * MIB),
        why: "autotuned receive buffer ceiling",
    },
    Rule {
        check: "sysctl.net.ipv4.tcp_wmem",
        key: "net.ipv4.tcp_wmem",
        want: Want::MaxAtLeast(16 * MIB),
        why: "autotuned send buffer ceiling",
    },
    Rule {
        check: "sysctl.net.core.somaxconn",
        key: "net.core.somaxconn",
        want: Want::AtLeast(4096),
        why: "accept backlog for connection storms after a failover",
    },
    Rule {
        check: "sysctl.kernel.numa_balancing",
        key: "kernel.numa_balancing",
        want: Want::AtMost(0),
        why: "page migration faults stall pinned shards; placement is explicit",
    },
];

pub fn check(host: &Host) -> Vec<Finding> {
    RULES.iter().map(|r| evaluate(host, r)).collect()
}

/// Reads the rule's key from /proc/sys and judges it; fix is tuning/sysctl.sh.
pub fn evaluate(host: &Host, rule: &Rule) -> Finding {
    let want = describe(rule.want);
    let path = format!("/proc/sys/{}", rule.key.replace('.', "/"));
    let raw = match host.read(&path) {
        Ok(t) => t,
        Err(e) => return Finding::unknown(rule.check, &want, e),
    };
    let field = match rule.want {
        Want::MaxAtLeast(_) => raw.split_whitespace().next_back(),
        _ => Some(raw.trim()),
    };
    let Some(value) = field.and_then(|f| f.parse::<u64>().ok()) else {
        return Finding::unknown(
            rule.check,
            &want,
            format!("unexpected value '{raw}' in {path}"),
        );
    };
    let good = match rule.want {
        Want::AtLeast(n) | Want::MaxAtLeast(n) => value >= n,
        Want::AtMost(n) => value <= n,
    };
    let current = raw.split_whitespace().collect::<Vec<_>>().join(" ");
    if good {
        Finding::ok(rule.check, current, &want)
    } else {
        Finding::warn(rule.check, current, &want)
            .fix("tuning/sysctl.sh")
            .note(rule.why)
    }
}

fn describe(want: Want) -> String {
    match want {
        Want::AtLeast(n) => format!(">= {}", human(n)),
        Want::AtMost(0) => "0".to_string(),
        Want::AtMost(n) => format!("<= {}", human(n)),
        Want::MaxAtLeast(n) => format!("max >= {}", human(n)),
    }
}

fn human(n: u64) -> String {
    if n >= MIB && n.is_multiple_of(MIB) {
        format!("{} MiB", n / MIB)
    } else {
        n.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tune::host::fake;
    use crate::tune::report::Status;

    fn status_of(findings: &[Finding], check: &str) -> Status {
        findings
            .iter()
            .find(|f| f.check == check)
            .map(|f| f.status)
            .unwrap_or(Status::Unknown)
    }

    #[test]
    fn values_are_judged_against_the_rules() {
        let dir = tempfile::tempdir().expect("tempdir");
        let r = dir.path();
        fake::write(r, "/proc/sys/net/core/busy_poll", "0");
        fake::write(r, "/proc/sys/net/core/busy_read", "50");
        fake::write(r, "/proc/sys/net/core/rmem_max", "212992");
        fake::write(r, "/proc/sys/net/ipv4/tcp_rmem", "4096\t131072\t33554432");
        fake::write(r, "/proc/sys/net/ipv4/tcp_wmem", "4096\t16384\t4194304");
        fake::write(r, "/proc/sys/kernel/numa_balancing", "1");
        let f = check(&Host::new(r));
        assert_eq!(f.len(), RULES.len());
        assert_eq!(status_of(&f, "sysctl.net.core.busy_poll"), Status::Warn);
        assert_eq!(status_of(&f, "sysctl.net.core.busy_read"), Status::Ok);
        assert_eq!(status_of(&f, "sysctl.net.core.rmem_max"), Status::Warn);
        assert_eq!(status_of(&f, "sysctl.net.ipv4.tcp_rmem"), Status::Ok);
        assert_eq!(status_of(&f, "sysctl.net.ipv4.tcp_wmem"), Status::Warn);
        assert_eq!(status_of(&f, "sysctl.kernel.numa_balancing"), Status::Warn);
        assert_eq!(status_of(&f, "sysctl.net.core.somaxconn"), Status::Unknown);
        let busy = f.iter().find(|x| x.check == "sysctl.net.core.busy_poll");
        assert_eq!(
            busy.and_then(|x| x.fix.as_deref()),
            Some("tuning/sysctl.sh")
        );
    }

    #[test]
    fn garbage_is_unknown() {
        let dir = tempfile::tempdir().expect("tempdir");
        fake::write(dir.path(), "/proc/sys/net/core/somaxconn", "lots");
        let f = evaluate(&Host::new(dir.path()), &RULES[6]);
        assert_eq!(f.status, Status::Unknown);
        assert!(f.note.contains("unexpected value"), "{}", f.note);
    }
}
