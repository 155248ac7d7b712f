//! Test harness: starts the real `peregrine` binary on ephemeral ports with a temporary
//! data directory, and hands out native clients and CLI commands pointed at it.
#![allow(dead_code)]

use peregrine::client::Client;
use peregrine::native::messages::TopicSpec;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub const BIN: &str = env!("CARGO_BIN_EXE_peregrine");
const START_TIMEOUT: Duration = Duration::from_secs(60);

pub struct Broker {
    child: Option<Child>,
    pub addr: String,
    pub shard_ports: Vec<u16>,
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
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        let (child, addr, shard_ports) = spawn(data_dir, &extra);
        Broker {
            child: Some(child),
            addr,
            shard_ports,
            data_dir: data_dir.to_path_buf(),
            extra,
            _tmp: None,
        }
    }

    pub fn client(&self) -> Client {
        Client::connect(&self.addr).expect("connect to broker")
    }

    /// The CLI with `--bootstrap` pointing at this broker appended by the caller.
    pub fn cli(&self) -> Command {
        Command::new(BIN)
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

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// kill -9: no chance to flush anything.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait for a clean exit; returns whether it exited with status 0.
    pub fn stop(&mut self) -> bool {
        let Some(mut c) = self.child.take() else {
            return true;
        };
        // SAFETY: plain kill(2) on our own child.
        unsafe {
            libc::kill(c.id() as i32, libc::SIGTERM);
        }
        for _ in 0..300 {
            if let Ok(Some(status)) = c.try_wait() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = c.kill();
        let _ = c.wait();
        false
    }

    /// Starts again on the same data directory (new ports).
    pub fn restart(&mut self) {
        self.kill9();
        let (child, addr, ports) = spawn(&self.data_dir, &self.extra);
        self.child = Some(child);
        self.addr = addr;
        self.shard_ports = ports;
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill9();
    }
}

fn spawn(data_dir: &Path, extra: &[String]) -> (Child, String, Vec<u16>) {
    std::fs::create_dir_all(data_dir).expect("data dir");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(data_dir.join("broker.log"))
        .expect("broker log");
    let mut cmd = Command::new(BIN);
    cmd.arg("serve")
        .arg("--data-dir")
        .arg(data_dir)
        .args([
            "--native-addr",
            "127.0.0.1:0",
            "--kafka-addr",
            "127.0.0.1:0",
        ])
        .args(["--cache-mb", "64"])
        .args(extra)
        .env(
            "RUST_LOG",
            std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log));
    if !extra.iter().any(|a| a == "--shards") {
        cmd.args(["--shards", "2"]);
    }
    let mut child = cmd.spawn().expect("spawn peregrine");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.starts_with("peregrine ready") {
                let _ = tx.send(line);
            }
        }
    });
    let line = match rx.recv_timeout(START_TIMEOUT) {
        Ok(line) => line,
        Err(_) => {
            let _ = child.kill();
            let log = std::fs::read_to_string(data_dir.join("broker.log")).unwrap_or_default();
            panic!("broker did not become ready; log:\n{log}");
        }
    };
    let field = |name: &str| {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(name))
            .unwrap_or_default()
            .to_string()
    };
    let addr = field("native=");
    let ports = field("shard_ports=")
        .split(',')
        .filter_map(|p| p.parse().ok())
        .collect();
    (child, addr, ports)
}

/// Runs a CLI command to completion, feeding `stdin`; returns stdout, panics on failure.
pub fn run_cli(args: &[&str], stdin: &str) -> String {
    let out = run_cli_status(args, stdin);
    assert!(out.0, "peregrine {args:?} failed: {}", out.2);
    out.1
}

/// Runs a CLI command; returns (success, stdout, stderr).
pub fn run_cli_status(args: &[&str], stdin: &str) -> (bool, String, String) {
    use std::io::Write;
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn cli");
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
