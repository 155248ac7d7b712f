//! Starting a broker as a child process: `peregrine bench --embedded` and the
//! integration tests both run the real binary this way.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// How long a broker may take to print its ready line.
pub const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A running broker process and the addresses from its ready line.
pub struct BrokerProcess {
    child: Option<Child>,
    /// The shared native address (`host:port`).
    pub addr: String,
    /// The Kafka protocol address (`host:port`).
    pub kafka_addr: String,
    /// Each shard's own native port.
    pub shard_ports: Vec<u16>,
    /// The HTTP address (`/metrics`, `/healthz`, `/readyz`).
    pub http_addr: String,
    /// The AMQP 0-9-1 address.
    pub amqp_addr: String,
    /// The native TLS address (`--native-tls-addr`); empty without one.
    pub native_tls_addr: String,
    /// The whole ready line (`peregrine ready ...`), for the addresses not above.
    pub ready_line: String,
}

#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error("cannot start {bin}: {source}")]
    Spawn { bin: String, source: std::io::Error },
    #[error("broker did not become ready; its log:\n{log}")]
    NotReady { log: String },
}

impl BrokerProcess {
    /// Runs `bin serve --data-dir DIR` on ephemeral loopback ports plus `extra` flags
    /// (a `--kafka-addr`, `--http-addr` or `--amqp-addr` among them replaces the ephemeral one); the
    /// broker's stderr goes to `DIR/broker.log`.
    pub fn spawn(
        bin: &Path,
        data_dir: &Path,
        extra: &[String],
    ) -> Result<BrokerProcess, SpawnError> {
        Self::spawn_with_env(bin, data_dir, extra, &[])
    }

    /// `spawn` with environment variables added for this process only (tests set the
    /// debug-only `PEREGRINE_FAULT_INJECT` this way).
    pub fn spawn_with_env(
        bin: &Path,
        data_dir: &Path,
        extra: &[String],
        env: &[(&str, &str)],
    ) -> Result<BrokerProcess, SpawnError> {
        let spawn_err = |source| SpawnError::Spawn {
            bin: bin.display().to_string(),
            source,
        };
        std::fs::create_dir_all(data_dir).map_err(spawn_err)?;
        let log_path = data_dir.join("broker.log");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(spawn_err)?;
        let mut cmd = Command::new(bin);
        cmd.arg("serve")
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--native-addr", "127.0.0.1:0"]);
        if !extra.iter().any(|a| a == "--kafka-addr") {
            cmd.args(["--kafka-addr", "127.0.0.1:0"]);
        }
        if !extra.iter().any(|a| a == "--http-addr") {
            cmd.args(["--http-addr", "127.0.0.1:0"]);
        }
        if !extra.iter().any(|a| a == "--amqp-addr") {
            cmd.args(["--amqp-addr", "127.0.0.1:0"]);
        }
        cmd.args(extra)
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log));
        let mut child = cmd.spawn().map_err(spawn_err)?;
        let Some(stdout) = child.stdout.take() else {
            let _ = child.kill();
            return Err(SpawnError::NotReady {
                log: "no stdout".into(),
            });
        };
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.starts_with("peregrine ready") {
                    let _ = tx.send(line);
                }
            }
        });
        let Ok(line) = rx.recv_timeout(START_TIMEOUT) else {
            let _ = child.kill();
            let _ = child.wait();
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            return Err(SpawnError::NotReady { log });
        };
        let field = |name: &str| {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(name))
                .unwrap_or_default()
                .to_string()
        };
        Ok(BrokerProcess {
            child: Some(child),
            addr: field("native="),
            kafka_addr: field("kafka="),
            http_addr: field("http="),
            amqp_addr: field("amqp="),
            native_tls_addr: field("native_tls="),
            shard_ports: field("shard_ports=")
                .split(',')
                .filter_map(|p| p.parse().ok())
                .collect(),
            ready_line: line.clone(),
        })
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// kill -9 and reap.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, then wait up to `timeout` for a clean exit; true if it exited with 0.
    pub fn stop(&mut self, timeout: Duration) -> bool {
        let Some(mut c) = self.child.take() else {
            return true;
        };
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(c.id() as i32, libc::SIGTERM);
        }
        let deadline = std::time::Instant::now() + timeout;
        while std::time::Instant::now() < deadline {
            if let Ok(Some(status)) = c.try_wait() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = c.kill();
        let _ = c.wait();
        false
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The `peregrine` binary beside the running one (the bench runs its own binary).
pub fn current_binary() -> std::io::Result<PathBuf> {
    std::env::current_exe()
}
