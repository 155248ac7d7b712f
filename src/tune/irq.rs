//! NIC checks: each receive queue's IRQ on its own shard core (so the softirq work
//! for a connection runs on the core that reads it), as many RSS queues as shards,
//! and no irqbalance undoing the pinning.

use super::cpulist::{self, format as fmt};
use super::host::Host;
use super::report::Finding;

pub fn check(host: &Host, nic: Option<&str>, cores: &[usize]) -> Vec<Finding> {
    let mut findings = match nic {
        Some(nic) => vec![affinity(host, nic, cores), rss_queues(host, nic, cores)],
        None => {
            let why = "no --nic given and no default route in /proc/net/route";
            vec![
                Finding::unknown(AFFINITY, "one queue IRQ per shard core", why),
                Finding::unknown(RSS, "one RX queue per shard", why),
            ]
        }
    };
    findings.push(irqbalance(host));
    findings
}

const AFFINITY: &str = "irq.affinity";
const RSS: &str = "net.rss_queues";

/// The interface of the default route: the one clients most likely arrive on.
pub fn default_nic(host: &Host) -> Option<String> {
    let route = host.read("/proc/net/route").ok()?;
    route.lines().skip(1).find_map(|line| {
        let mut fields = line.split_whitespace();
        let (iface, dest) = (fields.next()?, fields.next()?);
        (dest == "00000000" && iface != "lo").then(|| iface.to_string())
    })
}

/// `(irq, name)` for each numbered line of /proc/interrupts; the name is the last field.
pub fn parse_interrupts(text: &str) -> Vec<(u32, String)> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let irq = fields.next()?.strip_suffix(':')?.parse().ok()?;
            let name = fields.next_back()?;
            Some((irq, name.to_string()))
        })
        .collect()
}

/// The NIC's queue IRQs: those of its PCI device (msi_irqs) or named after it, minus
/// control vectors (virtio `config`, mlx5 `async`, Intel `misc`).
pub fn queue_irqs(host: &Host, nic: &str) -> Result<Vec<(u32, String)>, String> {
    let table = parse_interrupts(&host.read("/proc/interrupts")?);
    let dev = format!("/sys/class/net/{nic}/device");
    // virtio-net's device is a child of the PCI function that owns the vectors.
    let msi: Vec<u32> = [format!("{dev}/msi_irqs"), format!("{dev}/../msi_irqs")]
        .iter()
        .find_map(|p| host.list(p).ok())
        .unwrap_or_default()
        .iter()
        .filter_map(|n| n.parse().ok())
        .collect();
    Ok(table
        .into_iter()
        .filter(|(irq, name)| msi.contains(irq) || names_iface(name, nic))
        .filter(|(_, name)| !is_control_vector(name))
        .collect())
}

fn names_iface(name: &str, nic: &str) -> bool {
    let word = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    name.match_indices(nic).any(|(i, _)| {
        !word(name[..i].chars().next_back()) && !word(name[i + nic.len()..].chars().next())
    })
}

fn is_control_vector(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    ["config", "async", "misc", "ctrl", "control"]
        .iter()
        .any(|k| name.contains(k))
}

/// The queue number in an IRQ name (`eth0-TxRx-3`, `mlx5_comp3@pci:...`, `input.3`);
/// tuning/irq-affinity.sh maps queue i to core i mod shards the same way.
pub fn queue_index(name: &str) -> Option<usize> {
    let name = name.split('@').next().unwrap_or(name);
    let digits = name.len() - name.trim_end_matches(|c: char| c.is_ascii_digit()).len();
    name[name.len() - digits..].parse().ok()
}

fn affinity(host: &Host, nic: &str, cores: &[usize]) -> Finding {
    let want = format!("one queue IRQ per shard core ({})", fmt(cores));
    let irqs = match queue_irqs(host, nic) {
        Ok(irqs) if irqs.is_empty() => {
            let why = format!("no queue IRQs for {nic} in /proc/interrupts (virtual interface?)");
            return Finding::unknown(AFFINITY, &want, why);
        }
        Ok(irqs) => irqs,
        Err(e) => return Finding::unknown(AFFINITY, &want, e),
    };
    let (mut pinned, mut used, mut queues) = (0, Vec::new(), Vec::new());
    for (irq, name) in &irqs {
        let path = format!("/proc/irq/{irq}/smp_affinity_list");
        let cpus = match host.read(&path).and_then(|s| cpulist::parse(&s)) {
            Ok(c) => c,
            Err(e) => return Finding::unknown(AFFINITY, &want, e),
        };
        if let [cpu] = cpus[..] {
            if cores.contains(&cpu) {
                pinned += 1;
                used.push(cpu);
            }
        }
        queues.push(queue_index(name).unwrap_or(*irq as usize));
    }
    used.sort_unstable();
    used.dedup();
    queues.sort_unstable();
    queues.dedup();
    let current = format!("{pinned}/{} pinned, on cores {}", irqs.len(), fmt(&used));
    if pinned == irqs.len() && used.len() >= queues.len().min(cores.len()) {
        return Finding::ok(AFFINITY, current, &want);
    }
    Finding::warn(AFFINITY, current, &want)
        .fix(format!("tuning/irq-affinity.sh {nic} {}", fmt(cores)))
        .note("a queue IRQ on another core bounces each packet between caches")
}

fn rss_queues(host: &Host, nic: &str, cores: &[usize]) -> Finding {
    let want = format!("{} RX queues (one per shard)", cores.len());
    let names = match host.list(&format!("/sys/class/net/{nic}/queues")) {
        Ok(n) => n,
        Err(e) => return Finding::unknown(RSS, &want, format!("no interface {nic}? {e}")),
    };
    let rx = names.iter().filter(|n| n.starts_with("rx-")).count();
    let current = format!("{rx} RX queues");
    if rx == cores.len() {
        return Finding::ok(RSS, current, &want);
    }
    Finding::warn(RSS, current, &want)
        .fix(format!("tuning/rss.sh {nic} {}", cores.len()))
        .note("RSS spreads flows over queues; one per shard keeps each flow on one core")
}

fn irqbalance(host: &Host) -> Finding {
    const NAME: &str = "irq.irqbalance";
    const WANT: &str = "not running";
    let pids = match host.list("/proc") {
        Ok(p) => p,
        Err(e) => return Finding::unknown(NAME, WANT, e),
    };
    let running = pids
        .iter()
        .filter(|p| p.bytes().all(|b| b.is_ascii_digit()))
        .find(|p| {
            host.read(&format!("/proc/{p}/comm"))
                .is_ok_and(|c| c == "irqbalance")
        });
    match running {
        None => Finding::ok(NAME, WANT, WANT),
        Some(pid) => Finding::warn(NAME, format!("running (pid {pid})"), WANT)
            .fix("tuning/irq-affinity.sh IFACE CORES (stops irqbalance)")
            .note("irqbalance rewrites IRQ affinity every 10 s, undoing the pinning"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tune::host::fake;
    use crate::tune::report::Status;

    const INTERRUPTS: &str = "           CPU0       CPU1       CPU2       CPU3
  24:          1          0          0          0  IO-APIC   5-edge      ACPI:Ged
  40:          0          0          0          0  PCI-MSI 1 edge  i40e-0000:3b:00.0:misc
  41:         10          0          0          0  PCI-MSI 2 edge  eth0-TxRx-0
  42:          0         10          0          0  PCI-MSI 3 edge  eth0-TxRx-1
  43:          0          0          0          0  PCI-MSI 4 edge  eth10-TxRx-0
NMI:          0          0          0          0   Non-maskable interrupts";

    fn nic_tree(affinity: &[(u32, &str)], rx_queues: usize) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        let r = dir.path();
        fake::write(r, "/proc/interrupts", INTERRUPTS);
        for (irq, list) in affinity {
            fake::write(r, &format!("/proc/irq/{irq}/smp_affinity_list"), list);
        }
        for q in 0..rx_queues {
            fake::write(
                r,
                &format!("/sys/class/net/eth0/queues/rx-{q}/rps_cpus"),
                "0",
            );
        }
        fake::write(r, "/proc/1/comm", "init");
        dir
    }

    #[test]
    fn queue_irqs_match_the_interface_name_not_a_longer_one() {
        let dir = nic_tree(&[], 2);
        let irqs = queue_irqs(&Host::new(dir.path()), "eth0").expect("irqs");
        assert_eq!(
            irqs,
            vec![(41, "eth0-TxRx-0".into()), (42, "eth0-TxRx-1".into())]
        );
    }

    #[test]
    fn virtio_queue_irqs_come_from_the_pci_function() {
        let dir = tempfile::tempdir().expect("tempdir");
        let r = dir.path();
        let text = " 37: 0 0 PCI-MSIX 0-edge virtio2-config\n 38: 0 1 PCI-MSIX 1-edge virtio2-input.0\n 39: 1 0 PCI-MSIX 2-edge virtio2-output.0";
        fake::write(r, "/proc/interrupts", text);
        for irq in [37, 38, 39] {
            fake::write(
                r,
                &format!("/sys/devices/pci0/0000:00:03.0/msi_irqs/{irq}"),
                "msix",
            );
        }
        fake::write(r, "/sys/devices/pci0/0000:00:03.0/virtio2/vendor", "0x1af4");
        fake::symlink(
            r,
            "/sys/class/net/eth0/device",
            "../../../devices/pci0/0000:00:03.0/virtio2",
        );
        let irqs = queue_irqs(&Host::new(r), "eth0").expect("irqs");
        assert_eq!(irqs.iter().map(|i| i.0).collect::<Vec<_>>(), vec![38, 39]);
    }

    #[test]
    fn queue_index_ignores_the_pci_address() {
        assert_eq!(queue_index("mlx5_comp3@pci:0000:3b:00.0"), Some(3));
        assert_eq!(queue_index("eth0-TxRx-12"), Some(12));
        assert_eq!(queue_index("virtio2-input.0"), Some(0));
        assert_eq!(queue_index("timer"), None);
    }

    #[test]
    fn unpinned_queue_irqs_warn_and_pinned_ones_pass() {
        let dir = nic_tree(&[(41, "0-3"), (42, "1")], 2);
        let host = Host::new(dir.path());
        let f = affinity(&host, "eth0", &[0, 1]);
        assert_eq!(f.status, Status::Warn);
        assert_eq!(f.fix.as_deref(), Some("tuning/irq-affinity.sh eth0 0-1"));
        fake::write(dir.path(), "/proc/irq/41/smp_affinity_list", "0");
        assert_eq!(affinity(&host, "eth0", &[0, 1]).status, Status::Ok);
        fake::write(dir.path(), "/proc/irq/42/smp_affinity_list", "0");
        let f = affinity(&host, "eth0", &[0, 1]);
        assert_eq!(f.status, Status::Warn, "both queues on one core: {f:?}");
    }

    #[test]
    fn rss_queue_count_should_match_shards() {
        let dir = nic_tree(&[], 2);
        let host = Host::new(dir.path());
        assert_eq!(rss_queues(&host, "eth0", &[0, 1]).status, Status::Ok);
        let f = rss_queues(&host, "eth0", &[0, 1, 2, 3]);
        assert_eq!(f.status, Status::Warn);
        assert_eq!(f.fix.as_deref(), Some("tuning/rss.sh eth0 4"));
        assert_eq!(rss_queues(&host, "nope0", &[0]).status, Status::Unknown);
    }

    #[test]
    fn running_irqbalance_warns() {
        let dir = nic_tree(&[], 1);
        let host = Host::new(dir.path());
        assert_eq!(irqbalance(&host).status, Status::Ok);
        fake::write(dir.path(), "/proc/812/comm", "irqbalance");
        assert_eq!(irqbalance(&host).current, "running (pid 812)");
    }

    #[test]
    fn default_nic_is_the_default_route() {
        let dir = tempfile::tempdir().expect("tempdir");
        let route = "Iface\tDestination\tGateway\nlo\t0000007F\t00000000\neth1\t00000000\t0100A8C0";
        fake::write(dir.path(), "/proc/net/route", route);
        assert_eq!(default_nic(&Host::new(dir.path())), Some("eth1".into()));
        assert_eq!(default_nic(&Host::new("/nonexistent-root")), None);
    }
}
