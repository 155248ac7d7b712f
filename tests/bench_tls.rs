//! `peregrine bench` over TLS in the queue, AMQP and SQS modes (issue 20), as the native
//! modes already do: each mode runs against the broker's TLS listener of its protocol
//! (a plaintext client there is closed, so a run that delivers everything spoke TLS),
//! with `--tls-ca`; and the mismatches are refused with a clear error: a TLS listener
//! without `--tls-ca`, `--tls-ca` with a plaintext URL, a CA that did not sign the
//! broker's certificate.

mod common;
use common::pki::{arg, Pki};
use common::{Broker, BIN};
use serde_json::Value;
use std::process::Command;

/// Runs `peregrine bench ARGS --json`: its success, its last stdout line, its stderr.
fn bench(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(BIN)
        .arg("bench")
        .args(args)
        .arg("--json")
        .output()
        .expect("run bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    (
        out.status.success(),
        stdout.lines().last().unwrap_or_default().to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// A run that must succeed and deliver all of `messages`.
fn delivered(args: &[&str], messages: u64) -> Value {
    let (ok, last, stderr) = bench(args);
    assert!(ok, "bench {args:?} failed: {stderr}\n{last}");
    let r: Value = serde_json::from_str(&last).expect("a JSON line");
    assert_eq!(r["messages_acked"], messages, "{r}");
    assert_eq!(r["messages_received"], messages, "{r}");
    assert_eq!(r["lost"], 0, "{r}");
    r
}

/// A run that must fail, saying something that contains `why`.
fn refused(args: &[&str], why: &str) {
    let (ok, last, stderr) = bench(args);
    assert!(!ok, "bench {args:?} succeeded: {last}");
    assert!(
        stderr.contains(why),
        "bench {args:?}: expected '{why}' in: {stderr}"
    );
}

/// A word of the ready line, e.g. `amqp_tls=`.
fn ready_field(b: &Broker, name: &str) -> String {
    b.ready_line
        .split_whitespace()
        .find_map(|w| w.strip_prefix(name))
        .unwrap_or_else(|| panic!("no {name} in the ready line: {}", b.ready_line))
        .to_string()
}

fn tls_broker(pki: &Pki) -> Broker {
    let (cert, key) = pki.server();
    Broker::start_with(&[
        "--tls-cert",
        arg(&cert),
        "--tls-key",
        arg(&key),
        "--native-tls-addr",
        "127.0.0.1:0",
        "--amqp-tls-addr",
        "127.0.0.1:0",
        "--http-tls-addr",
        "127.0.0.1:0",
    ])
}

/// A CA that did not sign the broker's certificate: the bench refuses the handshake.
fn refused_by_another_ca(args: &[&str]) {
    let other = Pki::new("another CA");
    let ca = other.ca();
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["--tls-ca", arg(&ca), "--messages", "10"]);
    refused(&all, "UnknownIssuer");
}

#[test]
fn queue_mode_runs_over_tls_and_refuses_a_mismatch() {
    let pki = Pki::new("bench queue CA");
    let b = tls_broker(&pki);
    let addr = ready_field(&b, "native_tls=");
    let ca = pki.ca();
    let r = delivered(
        &[
            "queue",
            "--bootstrap",
            &addr,
            "--tls-ca",
            arg(&ca),
            "--messages",
            "3000",
            "--batch",
            "100",
            "--consumers",
            "2",
        ],
        3000,
    );
    assert_eq!(r["mode"], "queue");
    // The same port without --tls-ca: the broker closes the plaintext client.
    refused(
        &["queue", "--bootstrap", &addr, "--messages", "10"],
        "connection",
    );
    refused_by_another_ca(&["queue", "--bootstrap", &addr]);
}

#[test]
fn amqp_mode_runs_over_amqps_and_refuses_a_mismatch() {
    let pki = Pki::new("bench AMQP CA");
    let b = tls_broker(&pki);
    let uri = format!("amqps://guest:guest@{}/%2f", ready_field(&b, "amqp_tls="));
    let ca = pki.ca();
    let r = delivered(
        &[
            "amqp",
            "--amqp-uri",
            &uri,
            "--tls-ca",
            arg(&ca),
            "--messages",
            "2000",
        ],
        2000,
    );
    assert_eq!(r["mode"], "amqp");
    refused(
        &["amqp", "--amqp-uri", &uri, "--messages", "10"],
        "amqps:// URI needs --tls-ca",
    );
    let plain = format!("amqp://guest:guest@{}/%2f", b.amqp_addr);
    refused(
        &["amqp", "--amqp-uri", &plain, "--tls-ca", arg(&ca)],
        "must be amqps://",
    );
    refused_by_another_ca(&["amqp", "--amqp-uri", &uri]);
}

#[test]
fn sqs_mode_runs_over_https_embedded_or_not_and_refuses_a_mismatch() {
    let pki = Pki::new("bench SQS CA");
    let b = tls_broker(&pki);
    let endpoint = format!("https://{}", ready_field(&b, "http_tls="));
    let ca = pki.ca();
    let r = delivered(
        &[
            "sqs",
            "--sqs-endpoint",
            &endpoint,
            "--tls-ca",
            arg(&ca),
            "--messages",
            "1000",
            "--senders",
            "2",
            "--receivers",
            "2",
        ],
        1000,
    );
    assert_eq!(r["mode"], "sqs");
    // The embedded broker's HTTPS listener, started by --broker-args.
    let (cert, key) = pki.server();
    let broker_args = format!(
        "--tls-cert {} --tls-key {} --http-tls-addr 127.0.0.1:0",
        arg(&cert),
        arg(&key)
    );
    delivered(
        &[
            "sqs",
            "--embedded",
            "--broker-shards",
            "1",
            "--broker-args",
            &broker_args,
            "--tls-ca",
            arg(&ca),
            "--messages",
            "500",
            "--senders",
            "1",
            "--receivers",
            "1",
        ],
        500,
    );
    refused(
        &["sqs", "--sqs-endpoint", &endpoint, "--messages", "10"],
        "https:// needs --tls-ca",
    );
    let plain = format!("http://{}", b.http_addr);
    refused(
        &["sqs", "--sqs-endpoint", &plain, "--tls-ca", arg(&ca)],
        "must be https://",
    );
    // --embedded with --tls-ca but no HTTPS listener: the error names the flag.
    refused(
        &[
            "sqs",
            "--embedded",
            "--tls-ca",
            arg(&ca),
            "--messages",
            "10",
        ],
        "--http-tls-addr",
    );
    refused_by_another_ca(&["sqs", "--sqs-endpoint", &endpoint]);
}
