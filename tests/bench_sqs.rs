//! `peregrine bench sqs` and `sqs-latency` end to end against a real broker's HTTP
//! listener: every message sent is received and deleted exactly once, and the report
//! carries both rates and both latencies.

mod common;
use common::{Broker, BIN};
use serde_json::Value;
use std::process::Command;

fn bench(args: &[&str]) -> Value {
    let out = Command::new(BIN)
        .arg("bench")
        .args(args)
        .arg("--json")
        .output()
        .expect("run bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "bench {args:?} failed: {stderr}\n{stdout}"
    );
    assert!(stderr.contains("unique MessageIds"), "{stderr}");
    serde_json::from_str(stdout.lines().last().expect("a JSON line")).expect("valid JSON")
}

fn assert_percentiles(v: &Value) {
    for field in ["p50", "p99", "p999", "max"] {
        assert!(v[field].as_f64().is_some_and(|x| x > 0.0), "{field} in {v}");
    }
    assert!(v["p50"].as_f64() <= v["p99"].as_f64() && v["p99"].as_f64() <= v["max"].as_f64());
}

#[test]
fn sqs_mode_sends_receives_and_deletes_every_message_once() {
    let b = Broker::start();
    let endpoint = format!("http://{}", b.http_addr);
    // 1003: the last batch of each sender is short.
    let r = bench(&[
        "sqs",
        "--sqs-endpoint",
        &endpoint,
        "--senders",
        "3",
        "--receivers",
        "2",
        "--messages",
        "1003",
    ]);
    assert_eq!(r["mode"], "sqs");
    assert_eq!(r["producers"], 3);
    assert_eq!(r["consumers"], 2);
    assert_eq!(r["batch"], 10);
    assert_eq!(r["messages_sent"], 1003);
    assert_eq!(r["messages_acked"], 1003);
    assert_eq!(r["messages_received"], 1003);
    assert_eq!(r["lost"], 0);
    assert_eq!(r["duplicated"], 0);
    assert!(r["msgs_per_s"].as_f64().is_some_and(|x| x > 0.0));
    assert_percentiles(&r["e2e_us"]);
    assert_eq!(r["e2e_us"]["count"], 1003);
    // Receive to delete, one sample per message deleted.
    assert_percentiles(&r["ack_us"]);
    assert_eq!(r["ack_us"]["count"], 1003);
}

#[test]
fn sqs_latency_mode_paces_sends_and_reports_broker_cpu_when_embedded() {
    let r = bench(&[
        "sqs-latency",
        "--embedded",
        "--broker-shards",
        "2",
        "--rate",
        "1000",
        "--messages",
        "1000",
    ]);
    assert_eq!(r["rate"], 1000);
    assert_eq!(r["messages_received"], 1000);
    assert_eq!(r["lost"], 0);
    // 1000 messages at 1000/s cannot finish much before one second.
    assert!(r["duration_s"].as_f64().is_some_and(|d| d >= 0.9), "{r}");
    assert_percentiles(&r["e2e_us"]);
    assert!(r["broker_cpu_ns_per_msg"].as_f64().is_some_and(|x| x > 0.0));
}

/// `--queues`: the senders and receivers spread over several queues (raised to one of
/// each per queue), and the exactly-once check covers them all.
#[test]
fn sqs_mode_spreads_over_several_queues() {
    let r = bench(&[
        "sqs",
        "--embedded",
        "--broker-shards",
        "2",
        "--queues",
        "3",
        "--senders",
        "1",
        "--receivers",
        "1",
        "--messages",
        "601",
    ]);
    assert_eq!(r["queues"], 3);
    assert_eq!(r["producers"], 3, "one sender per queue at least");
    assert_eq!(r["consumers"], 3, "one receiver per queue at least");
    assert_eq!(r["messages_sent"], 601);
    assert_eq!(r["messages_received"], 601);
    assert_eq!(r["lost"], 0);
    assert_eq!(r["duplicated"], 0);
}

#[test]
fn sqs_modes_refuse_what_they_cannot_run() {
    for args in [
        vec!["sqs", "--embedded", "--size", "39"],
        vec!["sqs", "--embedded", "--queues", "0"],
        vec!["queue", "--sqs-endpoint", "http://127.0.0.1:1"],
        vec!["sqs", "--embedded", "--senders", "0"],
    ] {
        let out = Command::new(BIN)
            .arg("bench")
            .args(&args)
            .output()
            .expect("run bench");
        assert!(!out.status.success(), "{args:?} ran");
    }
}
