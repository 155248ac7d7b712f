//! `peregrine bench` end to end: every mode runs against a real broker, reports the
//! documented fields, writes its .hgrm and SVG files, and checks delivery.

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
    assert!(
        out.status.success(),
        "bench {args:?} failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.lines().last().expect("a JSON line")).expect("valid JSON")
}

fn assert_percentiles(v: &Value) {
    for field in ["p50", "p90", "p99", "p999", "p9999", "max"] {
        assert!(v[field].as_f64().is_some_and(|x| x > 0.0), "{field} in {v}");
    }
    assert!(v["p50"].as_f64() <= v["p99"].as_f64() && v["p99"].as_f64() <= v["max"].as_f64());
}

#[test]
fn throughput_run_reports_every_field_and_writes_hgrm_and_plot() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hgrm = dir.path().join("e2e.hgrm");
    let svg = dir.path().join("latency.svg");
    let (h, s) = (hgrm.to_str().expect("path"), svg.to_str().expect("path"));
    let r = bench(&[
        "--embedded",
        "--broker-shards",
        "2",
        "--messages",
        "20000",
        "--hgrm",
        h,
        "--plot",
        s,
    ]);
    assert_eq!(r["messages_received"], 20000);
    assert_eq!(r["messages_acked"], 20000);
    assert_eq!(r["lost"], 0);
    assert_eq!(r["duplicated"], 0);
    assert!(r["msgs_per_s"].as_f64().is_some_and(|x| x > 0.0));
    assert!(r["mb_per_s"].as_f64().is_some_and(|x| x > 0.0));
    assert_percentiles(&r["e2e_us"]);
    assert_percentiles(&r["ack_us"]);
    let text = std::fs::read_to_string(&hgrm).expect("hgrm written");
    assert!(
        text.starts_with("       Value     Percentile TotalCount"),
        "{text}"
    );
    assert!(std::fs::read_to_string(format!("{h}.ack"))
        .expect("ack hgrm")
        .contains("Total count"));
    let chart = std::fs::read_to_string(&svg).expect("svg written");
    assert!(chart.starts_with("<svg") && chart.matches("<polyline").count() == 2);
}

#[test]
fn latency_mode_paces_sends_at_the_fixed_rate() {
    let r = bench(&[
        "latency",
        "--embedded",
        "--rate",
        "2000",
        "--messages",
        "2000",
    ]);
    assert_eq!(r["rate"], 2000);
    assert_eq!(r["messages_received"], 2000);
    assert_eq!(r["lost"], 0);
    // 2000 messages at 2000/s cannot finish much before one second.
    assert!(r["duration_s"].as_f64().is_some_and(|d| d >= 0.9), "{r}");
    assert_percentiles(&r["e2e_us"]);
}

#[test]
fn spin_latency_client_delivers_everything_routed_or_shard_aware() {
    let b = Broker::start();
    for (aware, acks) in [(false, "leader"), (true, "leader"), (true, "none")] {
        let mut args = vec![
            "latency",
            "--bootstrap",
            &b.addr,
            "--spin",
            "--rate",
            "5000",
            "--messages",
            "2000",
            "--acks",
            acks,
        ];
        if aware {
            args.push("--shard-aware");
        }
        let r = bench(&args);
        assert_eq!(r["messages_received"], 2000, "{args:?}: {r}");
        assert_eq!(r["lost"], 0);
        assert_eq!(r["duplicated"], 0);
        assert!(r["duration_s"].as_f64().is_some_and(|d| d >= 0.35), "{r}");
        assert_percentiles(&r["e2e_us"]);
        if acks == "leader" {
            assert_eq!(r["messages_acked"], 2000);
            assert_percentiles(&r["ack_us"]);
        }
    }
}

#[test]
fn queue_modes_publish_receive_and_ack_everything() {
    let r = bench(&[
        "queue",
        "--embedded",
        "--messages",
        "20000",
        "--batch",
        "500",
        "--acks",
        "durable",
        "--shard-aware",
    ]);
    assert_eq!(r["mode"], "queue");
    assert_eq!(r["messages_acked"], 20000);
    assert_eq!(r["messages_received"], 20000);
    assert_eq!(r["lost"], 0);
    assert_eq!(r["duplicated"], 0);
    assert_percentiles(&r["e2e_us"]);
    assert_percentiles(&r["ack_us"]);
    let r = bench(&[
        "queue-latency",
        "--embedded",
        "--rate",
        "2000",
        "--messages",
        "2000",
        "--consumers",
        "2",
        "--prefetch",
        "10",
    ]);
    assert_eq!(r["messages_received"], 2000);
    assert_eq!(r["rate"], 2000);
    assert!(r["duration_s"].as_f64().is_some_and(|d| d >= 0.9), "{r}");
    // `--duration` without `--messages`: the deadline ends the publishing.
    let r = bench(&[
        "queue-latency",
        "--embedded",
        "--rate",
        "2000",
        "--duration",
        "1",
        "--queues",
        "2",
    ]);
    let acked = r["messages_acked"].as_u64().expect("acked");
    assert!((1500..=2100).contains(&acked), "{r}");
    assert_eq!(r["messages_received"], acked, "{r}");
    assert_eq!(r["lost"], 0);
    assert!(
        r["duration_s"]
            .as_f64()
            .is_some_and(|d| (0.9..3.0).contains(&d)),
        "{r}"
    );
}

#[test]
fn queue_bench_spreads_its_queues_over_the_shards() {
    let b = Broker::start();
    let r = bench(&[
        "queue",
        "--bootstrap",
        &b.addr,
        "--queues",
        "3",
        "--messages",
        "9000",
        "--batch",
        "300",
        "--acks",
        "durable",
    ]);
    assert_eq!(r["queues"], 3, "{r}");
    // Every queue gets its own producer and consumer.
    assert_eq!(r["producers"], 3, "{r}");
    assert_eq!(r["consumers"], 3, "{r}");
    assert_eq!(r["messages_acked"], 9000, "{r}");
    assert_eq!(r["messages_received"], 9000, "{r}");
    assert_eq!(r["lost"], 0);
    assert_eq!(r["duplicated"], 0);
    let mut client = b.client();
    let mut owners: Vec<u32> = client
        .list_queues()
        .expect("list")
        .iter()
        .map(|q| client.queue_stats(&q.name).expect("stats").owner)
        .collect();
    owners.sort_unstable();
    // Queue i is owned by shard i % 2, and the names tried on the way were deleted.
    assert_eq!(owners, vec![0, 0, 1], "owners of the bench's queues");
}

#[test]
fn produce_only_and_consume_only_modes() {
    let p = bench(&[
        "produce",
        "--embedded",
        "--messages",
        "10000",
        "--acks",
        "durable",
    ]);
    assert_eq!(p["messages_acked"], 10000);
    assert!(p["e2e_us"].is_null());
    assert_percentiles(&p["ack_us"]);
    let c = bench(&["consume", "--embedded", "--messages", "10000"]);
    assert_eq!(c["messages_received"], 10000);
    assert_eq!(c["lost"], 0);
    assert_percentiles(&c["e2e_us"]);
}

#[test]
fn many_producers_consumers_and_partitions_against_a_running_broker() {
    let b = Broker::start();
    for aware in [false, true] {
        let mut args = vec![
            "--bootstrap",
            &b.addr,
            "--producers",
            "2",
            "--consumers",
            "2",
            "--partitions",
            "4",
            "--messages",
            "20000",
            "--batch",
            "100",
        ];
        if aware {
            args.push("--shard-aware");
        }
        let r = bench(&args);
        assert_eq!(r["messages_received"], 20000, "shard-aware {aware}: {r}");
        assert_eq!(r["lost"], 0);
        assert_eq!(r["duplicated"], 0);
    }
}

#[test]
fn bad_bench_arguments_are_refused() {
    let out = Command::new(BIN)
        .args(["bench", "--embedded", "--size", "8"])
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--size must be at least"));
    let out = Command::new(BIN)
        .args([
            "bench",
            "latency",
            "--embedded",
            "--spin",
            "--partitions",
            "2",
        ])
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--spin runs latency mode"));
    for (args, error) in [
        (["queue", "--queues", "0"], "--queues must be at least 1"),
        (["queue", "--partitions", "2"], "not --partitions"),
        (
            ["throughput", "--queues", "2"],
            "--queues is for the queue and SQS modes",
        ),
    ] {
        let out = Command::new(BIN)
            .arg("bench")
            .args(args)
            .arg("--embedded")
            .output()
            .expect("run");
        assert!(!out.status.success(), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(error),
            "{args:?}"
        );
    }
}
