//! `peregrine tune --check`: how far this host is from a low-latency setup, and what
//! to change. Each module owns one area (`cpu`, `irq`, `memory`, `disk`, `sysctl`);
//! `report` holds the result type and its table/JSON forms. The fixes are the
//! scripts in tuning/ (see tuning/README.md for which fixes which check).
//!
//! Every read goes through [`host::Host`], rooted at `/` (hidden flag `--root` for
//! tests), so the checks run against fake /proc and /sys trees. A file that is missing
//! or unreadable makes that check `unknown` with a reason; it never fails the command.
//! The exit code is 0 unless `--strict` is given and a check warns.

mod cpu;
pub(crate) mod cpulist;
mod disk;
mod host;
mod irq;
mod jitter;
mod memory;
mod report;
mod sysctl;

use host::Host;
use report::{Context, Finding, Report, Status};
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct TuneArgs {
    /// Report each setting, what it should be and how to change it.
    #[arg(long)]
    pub check: bool,
    /// Cores the broker will be pinned to (as `serve --cores`). Default: all online.
    #[arg(long)]
    pub cores: Option<String>,
    /// Network interface clients arrive on. Default: the default route's interface.
    #[arg(long)]
    pub nic: Option<String>,
    /// Data directory of the broker, to find the disk under it.
    #[arg(long, default_value = crate::config::DATA_DIR_DEFAULT)]
    pub data_dir: PathBuf,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Also spin on each core for this many ms and report how long it lost the CPU
    /// (`cpu.jitter`): the floor under a polling shard's latency tail.
    #[arg(long)]
    pub jitter_ms: Option<u64>,
    /// Exit nonzero if any check warns (for provisioning pipelines).
    #[arg(long)]
    pub strict: bool,
    /// Read /proc and /sys under this directory instead of / (tests).
    #[arg(long, default_value = "/", hide = true)]
    pub root: PathBuf,
}

const USAGE: &str = "\
peregrine tune: check how far this host is from a low-latency setup.

  peregrine tune --check [--cores LIST] [--nic IFACE] [--data-dir DIR] [--jitter-ms N]
                         [--json] [--strict]

--check reports every setting (CPU governor and isolation, NIC IRQs and RSS queues,
transparent hugepages, memlock, disk scheduler, sysctls) with the recommended value and
the tuning/ script that changes it; --jitter-ms also measures how long each core stalls
while it spins. Guide: tuning/README.md.
";

/// What `run` returns: the command line prints the error. Its own type, so that `tune`
/// does not depend on `cli`, which depends on it.
pub type TuneResult = Result<(), Box<dyn std::error::Error>>;

pub fn run(args: TuneArgs) -> TuneResult {
    if !args.check {
        print!("{USAGE}");
        return Ok(());
    }
    let host = Host::new(&args.root);
    let cores = match &args.cores {
        Some(list) => match cpulist::parse(list) {
            Ok(c) if !c.is_empty() => c,
            Ok(_) => return Err(format!("--cores '{list}' names no core").into()),
            Err(e) => return Err(format!("--cores: {e}").into()),
        },
        None => cpu::online(&host).unwrap_or_else(|_| fallback_cores()),
    };
    let nic = args.nic.clone().or_else(|| irq::default_nic(&host));
    let dev = disk::device_of(&args.data_dir);
    let mut checks = collect(&host, &cores, nic.as_deref(), memory::memlock_limit(), dev);
    if let Some(ms) = args.jitter_ms {
        let length = std::time::Duration::from_millis(ms);
        checks.extend(jitter::findings(&jitter::measure(&cores, length), length));
    }
    let context = Context {
        root: args.root.display().to_string(),
        cores: cpulist::format(&cores),
        nic,
        data_dir: args.data_dir.display().to_string(),
    };
    let report = Report::new(context, checks);
    if args.json {
        println!("{}", report.to_json()?);
    } else {
        print!("{}", report.to_table());
    }
    if args.strict && report.summary.warn > 0 {
        return Err(format!("{} checks need attention (--strict)", report.summary.warn).into());
    }
    Ok(())
}

/// Every check, in report order.
fn collect(
    host: &Host,
    cores: &[usize],
    nic: Option<&str>,
    memlock: memory::Memlock,
    dev: Result<(u32, u32), String>,
) -> Vec<Finding> {
    let mut all = cpu::check(host, cores);
    all.extend(irq::check(host, nic, cores));
    all.extend(memory::check(host, memlock, cores.len()));
    all.extend(disk::check(host, dev));
    all.extend(sysctl::check(host));
    debug_assert!(all
        .iter()
        .all(|f| f.status != Status::Ok || f.fix.is_none()));
    all
}

/// What this process may run on, when /sys/devices/system/cpu/online is unreadable.
fn fallback_cores() -> Vec<usize> {
    let n = std::thread::available_parallelism().map_or(1, |n| n.get());
    (0..n).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use host::fake;

    #[test]
    fn empty_root_gives_unknowns_not_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        let all = collect(
            &Host::new(dir.path()),
            &[0],
            None,
            Ok(None),
            Err("x".into()),
        );
        let names: Vec<&str> = all.iter().map(|f| f.check).collect();
        for want in [
            "cpu.governor",
            "irq.affinity",
            "mem.thp_enabled",
            "disk.scheduler",
        ] {
            assert!(names.contains(&want), "{names:?}");
        }
        assert!(all
            .iter()
            .filter(|f| f.check != "mem.memlock")
            .all(|f| f.status == Status::Unknown || f.check == "cpu.smt"));
    }

    #[test]
    fn check_names_are_distinct() {
        let dir = tempfile::tempdir().expect("tempdir");
        fake::write(dir.path(), "/proc/cmdline", "ro");
        let all = collect(
            &Host::new(dir.path()),
            &[0],
            Some("eth0"),
            Ok(None),
            Err("x".into()),
        );
        let mut names: Vec<&str> = all.iter().map(|f| f.check).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), all.len());
    }
}
