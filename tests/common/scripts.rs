//! Client scripts in other languages (pika, confluent-kafka, KafkaJS) run as child
//! processes: which interpreter, and waiting for one with a deadline.

use std::io::Read;
use std::process::{Child, ExitStatus};
use std::time::{Duration, Instant};

/// Polling step while waiting for a script to exit.
const POLL: Duration = Duration::from_millis(20);

/// The Python with the test libraries: `PEREGRINE_PYTHON`, else the venv `.ci/run`
/// makes in target/ci-venv, else `python3`.
pub fn python() -> String {
    if let Ok(p) = std::env::var("PEREGRINE_PYTHON") {
        return p;
    }
    let venv = concat!(env!("CARGO_MANIFEST_DIR"), "/target/ci-venv/bin/python");
    if std::path::Path::new(venv).exists() {
        venv.to_string()
    } else {
        "python3".to_string()
    }
}

/// Where `.ci/run` installs the npm packages: `PEREGRINE_NODE_MODULES`, else
/// target/ci-node/node_modules.
pub fn node_modules() -> String {
    std::env::var("PEREGRINE_NODE_MODULES").unwrap_or_else(|_| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/target/ci-node/node_modules").to_string()
    })
}

/// Waits for the script (killing it past `timeout`); its status (`None`: killed) and
/// its stdout and stderr.
pub fn finish(mut child: Child, timeout: Duration) -> (Option<ExitStatus>, String) {
    let pipe = |r: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            if let Some(mut r) = r {
                let _ = r.read_to_string(&mut s);
            }
            s
        })
    };
    let out = pipe(child.stdout.take().map(|r| Box::new(r) as _));
    let err = pipe(child.stderr.take().map(|r| Box::new(r) as _));
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(POLL),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    };
    let text = format!(
        "{}{}",
        out.join().unwrap_or_default(),
        err.join().unwrap_or_default()
    );
    (status, text)
}
