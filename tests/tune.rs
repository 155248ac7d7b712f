//! `peregrine tune --check` and the tuning/ scripts, run for real: the binary against
//! this host and against a fake /proc + /sys tree, the scripts in --dry-run mode
//! (fake trees through TUNE_ROOT), so nothing on the host is changed.

use std::path::{Path, PathBuf};
use std::process::Command;

const CHECKS: &[&str] = &[
    "cpu.governor",
    "cpu.isolation",
    "cpu.nohz_full",
    "cpu.rcu_nocbs",
    "cpu.smt",
    "irq.affinity",
    "net.rss_queues",
    "irq.irqbalance",
    "mem.thp_enabled",
    "mem.thp_defrag",
    "mem.memlock",
    "mem.swappiness",
    "disk.scheduler",
    "disk.nr_requests",
    "disk.write_cache",
    "sysctl.net.core.busy_poll",
    "sysctl.net.core.busy_read",
    "sysctl.net.core.rmem_max",
    "sysctl.net.core.wmem_max",
    "sysctl.net.ipv4.tcp_rmem",
    "sysctl.net.ipv4.tcp_wmem",
    "sysctl.net.core.somaxconn",
    "sysctl.kernel.numa_balancing",
];

const SCRIPTS: &[&str] = &[
    "cpu-governor.sh",
    "isolate-cores.sh",
    "irq-affinity.sh",
    "rss.sh",
    "thp.sh",
    "nvme.sh",
    "sysctl.sh",
    "memlock.sh",
];

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

fn output(cmd: &mut Command) -> Out {
    let out = cmd.output().expect("spawn");
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn peregrine(args: &[&str]) -> Out {
    output(Command::new(env!("CARGO_BIN_EXE_peregrine")).args(args))
}

fn tuning_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tuning")
}

/// Runs a tuning script with --dry-run, against `root` when given.
fn dry_run(script: &str, args: &[&str], root: Option<&Path>) -> Out {
    let mut cmd = Command::new("bash");
    cmd.arg(tuning_dir().join(script))
        .arg("--dry-run")
        .args(args);
    match root {
        Some(r) => cmd.env("TUNE_ROOT", r),
        None => cmd.env_remove("TUNE_ROOT"),
    };
    output(&mut cmd)
}

fn write(root: &Path, abs: &str, text: &str) {
    let path = root.join(abs.trim_start_matches('/'));
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, format!("{text}\n")).expect("write");
}

fn read(root: &Path, abs: &str) -> String {
    std::fs::read_to_string(root.join(abs.trim_start_matches('/'))).expect("read")
}

/// A small host: 4 CPUs on powersave, THP always, an eth0 with 4 queue IRQs, an
/// NVMe namespace on mq-deadline, default sysctls.
fn fake_host() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let r = dir.path();
    write(r, "/sys/devices/system/cpu/online", "0-3");
    write(r, "/sys/devices/system/cpu/isolated", "");
    for c in 0..4 {
        let base = format!("/sys/devices/system/cpu/cpu{c}");
        write(r, &format!("{base}/cpufreq/scaling_governor"), "powersave");
        let avail = format!("{base}/cpufreq/scaling_available_governors");
        write(r, &avail, "performance powersave");
        write(
            r,
            &format!("{base}/topology/thread_siblings_list"),
            &c.to_string(),
        );
    }
    write(r, "/proc/cmdline", "ro quiet");
    let mut interrupts = String::from("            CPU0 CPU1 CPU2 CPU3\n");
    interrupts += " 40: 0 0 0 0 PCI-MSI 0-edge i40e-0000:3b:00.0:misc\n";
    for q in 0..4 {
        interrupts += &format!(" {}: 0 0 0 0 PCI-MSI {q}-edge eth0-TxRx-{q}\n", 41 + q);
    }
    write(r, "/proc/interrupts", &interrupts);
    for irq in 40..45 {
        write(r, &format!("/proc/irq/{irq}/smp_affinity_list"), "0-3");
    }
    write(r, "/sys/class/net/eth0/queues/rx-0/rps_cpus", "0");
    write(
        r,
        "/sys/kernel/mm/transparent_hugepage/enabled",
        "[always] madvise never",
    );
    write(
        r,
        "/sys/kernel/mm/transparent_hugepage/defrag",
        "[always] defer madvise never",
    );
    write(
        r,
        "/sys/block/nvme0n1/queue/scheduler",
        "[mq-deadline] none",
    );
    write(r, "/sys/block/nvme0n1/queue/nr_requests", "64");
    write(r, "/sys/block/nvme0n1/queue/rotational", "0");
    for (key, value) in [
        ("net/core/busy_poll", "0"),
        ("net/core/busy_read", "0"),
        ("net/core/rmem_max", "212992"),
        ("net/core/wmem_max", "212992"),
        ("net/ipv4/tcp_rmem", "4096\t131072\t33554432"),
        ("net/ipv4/tcp_wmem", "4096\t16384\t4194304"),
        ("net/core/somaxconn", "4096"),
        ("kernel/numa_balancing", "1"),
        ("vm/swappiness", "60"),
    ] {
        write(r, &format!("/proc/sys/{key}"), value);
    }
    dir
}

#[test]
fn check_json_on_this_host_lists_every_check_and_exits_zero() {
    let out = peregrine(&["tune", "--check", "--json"]);
    assert_eq!(out.code, 0, "stderr: {}", out.stderr);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).expect("valid JSON");
    let checks = v["checks"].as_array().expect("checks array");
    let names: Vec<&str> = checks.iter().filter_map(|c| c["check"].as_str()).collect();
    assert_eq!(names, CHECKS);
    for c in checks {
        let status = c["status"].as_str().unwrap_or("");
        assert!(["ok", "warn", "unknown"].contains(&status), "{c}");
    }
}

#[test]
fn jitter_measures_each_named_core() {
    let out = peregrine(&[
        "tune",
        "--check",
        "--json",
        "--cores",
        "0",
        "--jitter-ms",
        "50",
    ]);
    assert_eq!(out.code, 0, "stderr: {}", out.stderr);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).expect("valid JSON");
    let jitter: Vec<&serde_json::Value> = v["checks"]
        .as_array()
        .expect("checks array")
        .iter()
        .filter(|c| c["check"] == "cpu.jitter")
        .collect();
    assert_eq!(jitter.len(), 1, "{}", out.stdout);
    let current = jitter[0]["current"].as_str().unwrap_or("");
    assert!(
        current.starts_with("core 0: ") && current.contains("in 50 ms, longest"),
        "{current}"
    );
}

#[test]
fn check_prints_a_table_and_tune_alone_points_to_check() {
    let out = peregrine(&["tune", "--check"]);
    assert_eq!(out.code, 0, "stderr: {}", out.stderr);
    assert!(out.stdout.contains("STATUS"), "{}", out.stdout);
    let out = peregrine(&["tune"]);
    assert_eq!(out.code, 0);
    assert!(out.stdout.contains("--check"), "{}", out.stdout);
}

#[test]
fn fake_host_warnings_name_their_scripts_and_strict_fails() {
    let host = fake_host();
    let root = host.path().to_str().expect("utf-8 path");
    let args = [
        "tune", "--check", "--json", "--root", root, "--cores", "2-3", "--nic", "eth0",
    ];
    let out = peregrine(&args);
    assert_eq!(out.code, 0, "stderr: {}", out.stderr);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).expect("valid JSON");
    let find = |name: &str| {
        let checks = v["checks"].as_array().expect("checks");
        checks
            .iter()
            .find(|c| c["check"] == name)
            .cloned()
            .expect(name)
    };
    let fixes = [
        ("cpu.governor", "tuning/cpu-governor.sh performance"),
        ("cpu.isolation", "tuning/isolate-cores.sh 2-3"),
        ("irq.affinity", "tuning/irq-affinity.sh eth0 2-3"),
        ("net.rss_queues", "tuning/rss.sh eth0 2"),
        ("mem.thp_enabled", "tuning/thp.sh madvise"),
        ("sysctl.net.core.busy_poll", "tuning/sysctl.sh"),
    ];
    for (name, fix) in fixes {
        let c = find(name);
        assert_eq!(c["status"], "warn", "{c}");
        assert_eq!(c["fix"], fix, "{c}");
    }
    let strict = peregrine(&[
        "tune", "--check", "--strict", "--root", root, "--cores", "2-3",
    ]);
    assert_ne!(strict.code, 0);
    assert!(strict.stderr.contains("--strict"), "{}", strict.stderr);
}

#[test]
fn bad_cores_list_is_refused_with_a_hint() {
    let out = peregrine(&["tune", "--check", "--cores", "3-1"]);
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains("0-3"), "{}", out.stderr);
}

#[test]
fn every_script_parses_and_has_help() {
    for script in SCRIPTS {
        let path = tuning_dir().join(script);
        let syntax = output(Command::new("bash").arg("-n").arg(&path));
        assert_eq!(syntax.code, 0, "{script}: {}", syntax.stderr);
        let help = output(Command::new("bash").arg(&path).arg("--help"));
        assert_eq!(help.code, 0, "{script}: {}", help.stderr);
        assert!(
            help.stdout.contains("--dry-run"),
            "{script}: {}",
            help.stdout
        );
    }
}

#[test]
fn cpu_thp_and_nvme_dry_runs_print_writes_and_change_nothing() {
    let host = fake_host();
    let r = host.path();
    let gov = dry_run("cpu-governor.sh", &["performance"], Some(r));
    assert_eq!(gov.code, 0, "{}", gov.stderr);
    let line = format!(
        "echo performance > {}/sys/devices/system/cpu/cpu3/cpufreq/scaling_governor",
        r.display()
    );
    assert!(gov.stdout.contains(&line), "{}", gov.stdout);
    let bad = dry_run("cpu-governor.sh", &["turbo"], Some(r));
    assert!(
        bad.code != 0 && bad.stderr.contains("no governor 'turbo'"),
        "{}",
        bad.stderr
    );

    let thp = dry_run("thp.sh", &[], Some(r));
    assert_eq!(thp.code, 0, "{}", thp.stderr);
    assert!(thp.stdout.contains("echo madvise > "), "{}", thp.stdout);

    let nvme = dry_run("nvme.sh", &["/dev/nvme0n1"], Some(r));
    assert_eq!(nvme.code, 0, "{}", nvme.stderr);
    assert!(nvme.stdout.contains("echo none > "), "{}", nvme.stdout);
    assert!(nvme.stdout.contains("echo 1023 > "), "{}", nvme.stdout);
    let missing = dry_run("nvme.sh", &["nvme9n9"], None);
    assert_eq!(missing.code, 1);
    assert!(
        missing.stderr.contains("no block device 'nvme9n9'"),
        "{}",
        missing.stderr
    );

    assert_eq!(
        read(r, "/sys/kernel/mm/transparent_hugepage/enabled").trim(),
        "[always] madvise never"
    );
    assert_eq!(
        read(r, "/sys/block/nvme0n1/queue/scheduler").trim(),
        "[mq-deadline] none"
    );
}

#[test]
fn irq_affinity_dry_run_spreads_queues_round_robin() {
    let host = fake_host();
    let r = host.path();
    let out = dry_run("irq-affinity.sh", &["eth0", "2-3"], Some(r));
    assert_eq!(out.code, 0, "{}", out.stderr);
    for (irq, core) in [(41, 2), (42, 3), (43, 2), (44, 3)] {
        let line = format!(
            "echo {core} > {}/proc/irq/{irq}/smp_affinity_list",
            r.display()
        );
        assert!(out.stdout.contains(&line), "{line} in {}", out.stdout);
    }
    assert!(
        !out.stdout.contains("/proc/irq/40/"),
        "misc vector left alone: {}",
        out.stdout
    );
    assert_eq!(read(r, "/proc/irq/41/smp_affinity_list").trim(), "0-3");

    let lo = dry_run("irq-affinity.sh", &["lo", "0"], None);
    assert_eq!(lo.code, 1);
    assert!(lo.stderr.contains("no queue IRQs for lo"), "{}", lo.stderr);
    let nic = dry_run("irq-affinity.sh", &["nope0", "0"], None);
    assert!(
        nic.code == 1 && nic.stderr.contains("no interface 'nope0'"),
        "{}",
        nic.stderr
    );
}

#[test]
fn rss_and_isolation_dry_runs_print_their_commands() {
    let rss = dry_run("rss.sh", &["lo", "2"], None);
    assert_eq!(rss.code, 0, "{}", rss.stderr);
    assert!(
        rss.stdout.contains("ethtool -L lo combined 2"),
        "{}",
        rss.stdout
    );
    assert!(
        rss.stdout.contains("ethtool -X lo equal 2"),
        "{}",
        rss.stdout
    );

    let host = fake_host();
    let iso = dry_run("isolate-cores.sh", &["2-3"], Some(host.path()));
    assert_eq!(iso.code, 0, "{}", iso.stderr);
    let params = "isolcpus=2-3 nohz_full=2-3 rcu_nocbs=2-3 irqaffinity=0,1";
    assert!(iso.stdout.contains(params), "{}", iso.stdout);
    let all = dry_run("isolate-cores.sh", &["0-3"], Some(host.path()));
    assert!(
        all.code == 1 && all.stderr.contains("leave at least one"),
        "{}",
        all.stderr
    );
}

#[test]
fn sysctl_and_memlock_dry_runs_print_config_files() {
    let host = fake_host();
    let r = host.path();
    let out = dry_run("sysctl.sh", &[], Some(r));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.contains("net.core.busy_poll = 50"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("net.core.rmem_max = 16777216"),
        "{}",
        out.stdout
    );
    // Ceilings are raised only: tcp_rmem max stays 32 MiB.
    assert!(
        out.stdout
            .contains("net.ipv4.tcp_rmem = 4096 131072 33554432"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("kernel.numa_balancing = 0"),
        "{}",
        out.stdout
    );
    assert_eq!(read(r, "/proc/sys/net/core/busy_poll").trim(), "0");
    assert!(!r.join("etc").exists());

    let mem = dry_run("memlock.sh", &["--unit", "peregrine"], Some(r));
    assert_eq!(mem.code, 0, "{}", mem.stderr);
    assert!(
        mem.stdout.contains("* hard memlock unlimited"),
        "{}",
        mem.stdout
    );
    assert!(
        mem.stdout.contains("LimitMEMLOCK=infinity"),
        "{}",
        mem.stdout
    );
    assert!(!r.join("etc").exists());
}
