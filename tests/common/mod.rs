//! Test harness: starts the real `peregrine` binary on ephemeral ports with a temporary
//! data directory, and hands out native clients and CLI commands pointed at it.
#![allow(dead_code)]

pub mod amqp_raw;
pub mod http_raw;
pub mod kafka_raw;
pub mod pki;
pub mod scripts;

use peregrine::client::Client;
use peregrine::embedded::BrokerProcess;
use peregrine::native::messages::TopicSpec;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

pub const BIN: &str = env!("CARGO_BIN_EXE_peregrine");

pub struct Broker {
    process: Option<BrokerProcess>,
    pub addr: String,
    pub kafka_addr: String,
    /// The AMQP 0-9-1 address (`host:port`).
    pub amqp_addr: String,
    /// The HTTP address (`host:port`): `/metrics`, health, the SQS API.
    pub http_addr: String,
    pub shard_ports: Vec<u16>,
    /// The broker's whole ready line (TLS addresses and the like are read from it).
    pub ready_line: String,
    pub data_dir: PathBuf,
    extra: Vec<String>,
    _tmp: Option<tempfile::TempDir>,
}

impl Broker {
    /// A broker with two shards on a fresh data directory.
    pub fn start() -> Broker {
        Broker::start_with(&[])
    }

    pub fn start_with(extra: &[&str]) -> Broker {
        let tmp = tempfile::tempdir().expect("temp dir");
        let dir = tmp.path().to_path_buf();
        let mut b = Broker::start_in(&dir, extra);
        b._tmp = Some(tmp);
        b
    }

    /// A broker on `data_dir` (kept after the broker stops).
    pub fn start_in(data_dir: &Path, extra: &[&str]) -> Broker {
        Broker::start_in_with_env(data_dir, extra, &[])
    }

    /// `start_in` with environment variables for this start only (`restart` runs
    /// without them).
    pub fn start_in_with_env(data_dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> Broker {
        let mut extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        if !extra.iter().any(|a| a == "--shards") {
            extra.extend(["--shards".to_string(), "2".to_string()]);
        }
        extra.extend(["--cache-mb".to_string(), "64".to_string()]);
        let process = BrokerProcess::spawn_with_env(Path::new(BIN), data_dir, &extra, env)
            .unwrap_or_else(|e| panic!("{e}"));
        Broker {
            addr: process.addr.clone(),
            kafka_addr: process.kafka_addr.clone(),
            amqp_addr: process.amqp_addr.clone(),
            http_addr: process.http_addr.clone(),
            shard_ports: process.shard_ports.clone(),
            ready_line: process.ready_line.clone(),
            process: Some(process),
            data_dir: data_dir.to_path_buf(),
            extra,
            _tmp: None,
        }
    }

    pub fn client(&self) -> Client {
        Client::connect(&self.addr).expect("connect to broker")
    }

    pub fn create_topic(&self, name: &str, partitions: i32) {
        self.client()
            .create_topic(TopicSpec {
                name: name.into(),
                partitions,
                retention_ms: None,
                retention_bytes: None,
                segment_bytes: None,
            })
            .expect("create topic");
    }

    /// kill -9: no chance to flush anything.
    pub fn kill9(&mut self) {
        if let Some(mut p) = self.process.take() {
            p.kill();
        }
    }

    /// SIGTERM and wait for a clean exit; returns whether it exited with status 0.
    pub fn stop(&mut self) -> bool {
        self.process
            .take()
            .is_none_or(|mut p| p.stop(Duration::from_secs(30)))
    }

    /// Starts again on the same data directory (new ports).
    pub fn restart(&mut self) {
        self.kill9();
        let process = spawn(&self.data_dir, &self.extra);
        self.addr = process.addr.clone();
        self.kafka_addr = process.kafka_addr.clone();
        self.amqp_addr = process.amqp_addr.clone();
        self.http_addr = process.http_addr.clone();
        self.shard_ports = process.shard_ports.clone();
        self.ready_line = process.ready_line.clone();
        self.process = Some(process);
    }

    pub fn is_running(&mut self) -> bool {
        self.process.as_mut().is_some_and(BrokerProcess::is_running)
    }

    /// kill -9, start the broker again on its data directory with the flags
    /// `BrokerProcess::spawn` passes, and kill it -9 `after` later, whether it is ready
    /// or still recovering: a crash in the middle of recovery. The broker is down
    /// afterwards (`restart` brings it back).
    pub fn crash_while_starting(&mut self, after: Duration) {
        self.kill9();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.data_dir.join("broker.log"))
            .expect("broker log");
        let mut cmd = Command::new(BIN);
        cmd.arg("serve")
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(["--native-addr", "127.0.0.1:0"]);
        for flag in ["--kafka-addr", "--http-addr", "--amqp-addr"] {
            if !self.extra.iter().any(|a| a == flag) {
                cmd.args([flag, "127.0.0.1:0"]);
            }
        }
        let mut child = cmd
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start the broker");
        std::thread::sleep(after);
        let _ = child.kill();
        let _ = child.wait();
    }
}

fn spawn(data_dir: &Path, extra: &[String]) -> BrokerProcess {
    match BrokerProcess::spawn(Path::new(BIN), data_dir, extra) {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    }
}

/// Runs a CLI command to completion, feeding `stdin`; returns stdout, panics on failure.
pub fn run_cli(args: &[&str], stdin: &str) -> String {
    let out = run_cli_status(args, stdin);
    assert!(out.0, "peregrine {args:?} failed: {}", out.2);
    out.1
}

/// Runs a CLI command; returns (success, stdout, stderr).
pub fn run_cli_status(args: &[&str], stdin: &str) -> (bool, String, String) {
    run_cli_with_password(args, stdin, None)
}

/// Runs a CLI command with `password` as its password source (`PEREGRINE_PASSWORD`;
/// None: unset, whatever the test's environment holds); returns (success, stdout,
/// stderr).
pub fn run_cli_with_password(
    args: &[&str],
    stdin: &str,
    password: Option<&str>,
) -> (bool, String, String) {
    use std::io::Write;
    let mut command = Command::new(BIN);
    command
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    match password {
        Some(password) => command.env("PEREGRINE_PASSWORD", password),
        None => command.env_remove("PEREGRINE_PASSWORD"),
    };
    let mut child = command.spawn().expect("spawn cli");
    let mut input = child.stdin.take().expect("stdin");
    let data = stdin.to_string();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(data.as_bytes());
    });
    let out = child.wait_with_output().expect("cli output");
    let _ = writer.join();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs `peregrine serve` on `data_dir` with ephemeral ports and `flags`, for a start
/// that must be refused: its status (`None`: still serving after 30 s, then killed) and
/// its output.
pub fn serve_refused(
    data_dir: &Path,
    flags: &[&str],
) -> (Option<std::process::ExitStatus>, String) {
    let child = Command::new(BIN)
        .arg("serve")
        .arg("--data-dir")
        .arg(data_dir)
        .args([
            "--native-addr",
            "127.0.0.1:0",
            "--kafka-addr",
            "127.0.0.1:0",
        ])
        .args(["--http-addr", "127.0.0.1:0", "--amqp-addr", "127.0.0.1:0"])
        .args(flags)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run peregrine serve");
    scripts::finish(child, Duration::from_secs(30))
}

/// The password `broker_with_admin` gives `admin`.
pub const ADMIN_PASSWORD: &str = "admin-secret";

/// A broker on `dir` whose user store has `admin` (added by the CLI before any login is
/// required, as a first user is), restarted with `extra`.
pub fn broker_with_admin(dir: &Path, extra: &[&str]) -> Broker {
    let mut first = Broker::start_in(dir, &[]);
    let (ok, _, err) = run_cli_status(
        &["user", "add", "admin", "--bootstrap", &first.addr],
        &format!("{ADMIN_PASSWORD}\n"),
    );
    assert!(ok, "user add admin: {err}");
    first.kill9();
    Broker::start_in(dir, extra)
}

/// Runs the CLI against `b`'s native port as `admin`, feeding `stdin` (the CLI reads it
/// to the end or exits, so the wait is bounded by its own network timeouts); stdout,
/// panics unless it succeeds.
pub fn admin_cli(b: &Broker, args: &[&str], stdin: &str) -> String {
    let mut all = args.to_vec();
    all.extend(["--bootstrap", &b.addr, "--user", "admin"]);
    let (ok, out, err) = run_cli_with_password(&all, stdin, Some(ADMIN_PASSWORD));
    assert!(ok, "peregrine {all:?}: {err}");
    out
}

impl Broker {
    /// The broker process's id (changes on `restart`).
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().and_then(BrokerProcess::pid)
    }

    /// The broker's peak resident set so far (`VmHWM` in /proc/PID/status), in bytes.
    pub fn peak_rss_bytes(&self) -> Option<u64> {
        proc_status_kib(self.pid()?, "VmHWM:").map(|kib| kib * 1024)
    }

    /// The broker's resident set now (`VmRSS`), in bytes.
    pub fn rss_bytes(&self) -> Option<u64> {
        proc_status_kib(self.pid()?, "VmRSS:").map(|kib| kib * 1024)
    }

    /// What the broker wrote to stderr (its log), across restarts.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.data_dir.join("broker.log")).unwrap_or_default()
    }
}

/// A failing test shows the end of the broker's log: the temporary data directory, and
/// the log with it, is gone once the test ends.
impl Drop for Broker {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        let tail = &lines[lines.len().saturating_sub(BROKER_LOG_TAIL_LINES)..];
        eprintln!(
            "--- last {} lines of the broker log ({}) ---\n{}\n--- end of the broker log ---",
            tail.len(),
            self.data_dir.join("broker.log").display(),
            tail.join("\n")
        );
    }
}

/// How much of the broker's log a failing test prints.
const BROKER_LOG_TAIL_LINES: usize = 60;

/// One `kB` field of /proc/PID/status, e.g. `VmHWM:`.
fn proc_status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line[field.len()..].split_whitespace().next()?.parse().ok()
}

/// One broker (two shards) for the cases of a test binary that need no flags or restart
/// of their own, alive while any case holds it (a static one would outlive the binary's
/// last case and never be killed).
pub fn shared_broker() -> Arc<Broker> {
    static SHARED: OnceLock<Mutex<Weak<Broker>>> = OnceLock::new();
    let slot = SHARED.get_or_init(|| Mutex::new(Weak::new()));
    let mut weak = slot.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(broker) = weak.upgrade() {
        return broker;
    }
    let broker = Arc::new(Broker::start());
    *weak = Arc::downgrade(&broker);
    broker
}

/// A name no other case (or other run against the same broker) uses.
pub fn unique(prefix: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}-{}-{nanos}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// `promtool check metrics` accepts `page` (a Prometheus text exposition).
pub fn promtool_check(page: &str) {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool runs (Debian package `prometheus`; .ci/run installs it)");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(page.as_bytes())
        .expect("page to promtool");
    let out = child.wait_with_output().expect("promtool finishes");
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}\n{page}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
