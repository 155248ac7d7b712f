//! `peregrine bench sns` and `sns-latency` end to end against a real broker: a topic
//! fanned out to three SQS queues, every published message received and deleted exactly
//! once from each, and the report printed with the publish and delivered rates.

mod common;
use common::{Broker, BIN};
use serde_json::Value;
use std::process::Command;

/// Runs the bench with `--json`; its JSON summary and its stderr report.
fn bench(args: &[&str]) -> (Value, String) {
    let out = Command::new(BIN)
        .arg("bench")
        .args(args)
        .arg("--json")
        .output()
        .expect("run bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "bench {args:?} failed: {stderr}\n{stdout}"
    );
    let summary =
        serde_json::from_str(stdout.lines().last().expect("a JSON line")).expect("valid JSON");
    (summary, stderr)
}

fn assert_percentiles(v: &Value) {
    for field in ["p50", "p99", "max"] {
        assert!(v[field].as_f64().is_some_and(|x| x > 0.0), "{field} in {v}");
    }
    assert!(v["p50"].as_f64() <= v["p99"].as_f64() && v["p99"].as_f64() <= v["max"].as_f64());
}

#[test]
fn sns_mode_delivers_every_message_once_to_each_of_three_queues() {
    let b = Broker::start();
    let endpoint = format!("http://{}", b.http_addr);
    // 503: the last batch of each publisher is short.
    let (r, report) = bench(&[
        "sns",
        "--sqs-endpoint",
        &endpoint,
        "--senders",
        "2",
        "--receivers",
        "2",
        "--messages",
        "503",
    ]);
    assert_eq!(r["mode"], "sns");
    assert_eq!(r["producers"], 2);
    assert_eq!(r["consumers"], 2);
    assert_eq!(r["queues"], 3);
    assert_eq!(r["batch"], 10);
    assert_eq!(r["acks"], "durable");
    assert_eq!(r["messages_sent"], 503);
    assert_eq!(r["messages_acked"], 503);
    assert_eq!(r["messages_received"], 3 * 503);
    assert_eq!(r["lost"], 0);
    assert_eq!(r["duplicated"], 0);
    assert!(r["msgs_per_s"].as_f64().is_some_and(|x| x > 0.0));
    // Publish to receipt, one sample per copy received; the PublishBatch answers.
    assert_percentiles(&r["e2e_us"]);
    assert_eq!(r["e2e_us"]["count"], 3 * 503);
    assert_percentiles(&r["ack_us"]);
    assert_eq!(r["ack_us"]["count"], 503);
    // The report: the publish rate, each queue's delivered rate and check, the total.
    assert!(
        report.contains("sns: 503 published in") && report.contains("503 distinct MessageIds"),
        "{report}"
    );
    for q in 1..=3 {
        assert!(report.contains(&format!("sns: queue {q} (")), "{report}");
    }
    assert_eq!(report.matches("503 delivered in").count(), 3, "{report}");
    assert_eq!(
        report
            .matches("exactly once: 503 of 503, 0 missing, 0 twice, 0 never published")
            .count(),
        3,
        "{report}"
    );
    assert!(
        report.contains("sns: 3 queues: 1509 delivered in"),
        "{report}"
    );
    assert!(
        report.contains("sns: 0 of 1509 deliveries in an SNS envelope ("),
        "{report}"
    );
}

/// `--sns-envelope`: every delivery is the JSON envelope, signed with the topic's
/// SignatureVersion (`--sns-signature-version`, default 1), or unsigned with the
/// broker's `--sns-signing off`; and still each message reaches each queue once.
#[test]
fn sns_envelope_mode_delivers_signed_envelopes_once_to_each_queue() {
    for (extra, counts) in [
        (&[][..], "SignatureVersion 1: 360, 2: 0, unsigned: 0"),
        (
            &["--sns-signature-version", "2"][..],
            "SignatureVersion 1: 0, 2: 360, unsigned: 0",
        ),
        (
            &["--broker-args", "--sns-signing off"][..],
            "SignatureVersion 1: 0, 2: 0, unsigned: 360",
        ),
    ] {
        let mut args = vec![
            "sns",
            "--embedded",
            "--sns-envelope",
            "--senders",
            "2",
            "--receivers",
            "1",
            "--messages",
            "120",
        ];
        args.extend_from_slice(extra);
        let (r, report) = bench(&args);
        assert_eq!(r["messages_received"], 3 * 120);
        assert_eq!(r["lost"], 0);
        assert_eq!(r["duplicated"], 0);
        let line = format!("sns: 360 of 360 deliveries in an SNS envelope ({counts})");
        assert!(report.contains(&line), "{extra:?}: {report}");
    }
}

#[test]
fn sns_latency_mode_paces_publishes_and_reports_broker_cpu_when_embedded() {
    let (r, _) = bench(&[
        "sns-latency",
        "--embedded",
        "--broker-shards",
        "2",
        "--rate",
        "500",
        "--messages",
        "500",
    ]);
    assert_eq!(r["mode"], "snslatency");
    assert_eq!(r["rate"], 500);
    assert_eq!(r["messages_received"], 3 * 500);
    assert_eq!(r["lost"], 0);
    // 500 messages at 500/s cannot finish much before one second.
    assert!(r["duration_s"].as_f64().is_some_and(|d| d >= 0.9), "{r}");
    assert_percentiles(&r["e2e_us"]);
    assert!(r["broker_cpu_ns_per_msg"].as_f64().is_some_and(|x| x > 0.0));
}

#[test]
fn sns_modes_refuse_what_they_cannot_run() {
    for args in [
        vec!["sns", "--embedded", "--size", "39"],
        vec!["sns", "--embedded", "--queues", "2"],
        vec!["sns", "--embedded", "--receivers", "0"],
        vec!["sqs", "--embedded", "--sns-envelope"],
        vec!["sqs", "--embedded", "--sns-signature-version", "2"],
        vec!["sns", "--embedded", "--sns-signature-version", "3"],
    ] {
        let out = Command::new(BIN)
            .arg("bench")
            .args(&args)
            .output()
            .expect("run bench");
        assert!(!out.status.success(), "{args:?} ran");
    }
}
