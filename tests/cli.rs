//! The command line end to end: topics, produce, consume, against the real broker.

mod common;
use common::{run_cli, run_cli_status, Broker};

#[test]
fn topic_create_list_describe_delete() {
    let b = Broker::start();
    let bs = b.addr.as_str();
    let out = run_cli(
        &[
            "topic",
            "create",
            "orders",
            "--partitions",
            "4",
            "--retention-ms",
            "60000",
            "--bootstrap",
            bs,
        ],
        "",
    );
    assert!(out.contains("created topic orders"), "{out}");
    let list = run_cli(&["topic", "list", "--bootstrap", bs], "");
    assert!(list.contains("orders\tpartitions=4"), "{list}");
    let desc = run_cli(&["topic", "describe", "orders", "--bootstrap", bs], "");
    assert!(desc.contains("retention_ms=60000"), "{desc}");
    let rows: Vec<&str> = desc.lines().skip(2).collect();
    assert_eq!(rows.len(), 4, "{desc}");
    let shards: std::collections::BTreeSet<&str> = rows
        .iter()
        .map(|r| r.split('\t').nth(1).unwrap_or(""))
        .collect();
    assert_eq!(
        shards.len(),
        2,
        "partitions spread over both shards: {desc}"
    );
    let (ok, _, err) = run_cli_status(
        &[
            "topic",
            "create",
            "orders",
            "--partitions",
            "1",
            "--bootstrap",
            bs,
        ],
        "",
    );
    assert!(!ok && err.contains("already exists"), "{err}");
    run_cli(&["topic", "delete", "orders", "--bootstrap", bs], "");
    let (ok, _, err) = run_cli_status(&["topic", "describe", "orders", "--bootstrap", bs], "");
    assert!(!ok && err.contains("does not exist"), "{err}");
}

#[test]
fn produce_then_consume_prints_every_line_in_order() {
    let b = Broker::start();
    let bs = b.addr.as_str();
    run_cli(
        &[
            "topic",
            "create",
            "lines",
            "--partitions",
            "1",
            "--bootstrap",
            bs,
        ],
        "",
    );
    let input: String = (0..500).map(|i| format!("line-{i}\n")).collect();
    run_cli(
        &["produce", "lines", "--acks", "durable", "--bootstrap", bs],
        &input,
    );
    let out = run_cli(&["consume", "lines", "--bootstrap", bs], "");
    assert_eq!(out, input);
    let desc = run_cli(&["topic", "describe", "lines", "--bootstrap", bs], "");
    assert!(
        desc.lines().nth(2).unwrap_or("").contains("\t0\t500\t"),
        "{desc}"
    );
}

#[test]
fn keyed_messages_keep_per_key_order_on_one_partition() {
    let b = Broker::start();
    let bs = b.addr.as_str();
    run_cli(
        &[
            "topic",
            "create",
            "keyed",
            "--partitions",
            "6",
            "--bootstrap",
            bs,
        ],
        "",
    );
    let mut input = String::new();
    for i in 0..300 {
        input.push_str(&format!("user-{}:{}\n", i % 7, i));
    }
    run_cli(
        &[
            "produce",
            "keyed",
            "--key-separator",
            ":",
            "--bootstrap",
            bs,
        ],
        &input,
    );
    let out = run_cli(
        &[
            "consume",
            "keyed",
            "--format",
            "%k %p %o %v",
            "--bootstrap",
            bs,
        ],
        "",
    );
    let mut partition_of = std::collections::HashMap::new();
    let mut last_value = std::collections::HashMap::new();
    let mut count = 0;
    for line in out.lines() {
        let parts: Vec<&str> = line.split(' ').collect();
        let (key, partition, value): (&str, i32, i64) = (
            parts[0],
            parts[1].parse().expect("partition"),
            parts[3].parse().expect("value"),
        );
        let expected = peregrine::client::partitioner::partition_for_key(key.as_bytes(), 6);
        assert_eq!(partition, expected, "key {key} on Kafka's partition");
        assert_eq!(
            *partition_of.entry(key.to_string()).or_insert(partition),
            partition
        );
        let prev = last_value.insert(key.to_string(), value).unwrap_or(-1);
        assert!(value > prev, "per-key order for {key}: {prev} then {value}");
        count += 1;
    }
    assert_eq!(count, 300);
}

#[test]
fn consume_from_offset_timestamp_partition_and_max() {
    let b = Broker::start();
    let bs = b.addr.as_str();
    run_cli(
        &[
            "topic",
            "create",
            "t",
            "--partitions",
            "2",
            "--bootstrap",
            bs,
        ],
        "",
    );
    let first: String = (0..10).map(|i| format!("a{i}\n")).collect();
    run_cli(
        &["produce", "t", "--partition", "1", "--bootstrap", bs],
        &first,
    );
    std::thread::sleep(std::time::Duration::from_millis(50));
    let mark = peregrine::time::now_ms();
    std::thread::sleep(std::time::Duration::from_millis(50));
    let second: String = (0..5).map(|i| format!("b{i}\n")).collect();
    run_cli(
        &["produce", "t", "--partition", "1", "--bootstrap", bs],
        &second,
    );

    let out = run_cli(
        &[
            "consume",
            "t",
            "--partition",
            "1",
            "--from",
            "12",
            "--bootstrap",
            bs,
        ],
        "",
    );
    assert_eq!(out, "b2\nb3\nb4\n");
    let at = format!("@{mark}");
    let out = run_cli(
        &[
            "consume",
            "t",
            "--partition",
            "1",
            "--from",
            &at,
            "--bootstrap",
            bs,
        ],
        "",
    );
    assert_eq!(out, second);
    let out = run_cli(
        &[
            "consume",
            "t",
            "--from",
            "earliest",
            "--max",
            "3",
            "--bootstrap",
            bs,
        ],
        "",
    );
    assert_eq!(out, "a0\na1\na2\n");
    let out = run_cli(&["consume", "t", "--partition", "0", "--bootstrap", bs], "");
    assert_eq!(out, "");
    let out = run_cli(
        &[
            "consume",
            "t",
            "--partition",
            "1",
            "--from",
            "latest",
            "--bootstrap",
            bs,
        ],
        "",
    );
    assert_eq!(out, "");
}

#[test]
fn follow_sees_messages_produced_later() {
    let b = Broker::start();
    let bs = b.addr.clone();
    run_cli(&["topic", "create", "live", "--bootstrap", &bs], "");
    let reader = {
        let bs = bs.clone();
        std::thread::spawn(move || {
            run_cli(
                &[
                    "consume",
                    "live",
                    "--follow",
                    "--max",
                    "3",
                    "--bootstrap",
                    &bs,
                ],
                "",
            )
        })
    };
    std::thread::sleep(std::time::Duration::from_millis(300));
    run_cli(&["produce", "live", "--bootstrap", &bs], "x\ny\nz\n");
    assert_eq!(reader.join().expect("reader"), "x\ny\nz\n");
}

#[test]
fn metadata_and_data_survive_restart() {
    let mut b = Broker::start();
    b.create_topic("keep", 3);
    let input: String = (0..100).map(|i| format!("m{i}\n")).collect();
    run_cli(
        &[
            "produce",
            "keep",
            "--acks",
            "durable",
            "--partition",
            "2",
            "--bootstrap",
            &b.addr,
        ],
        &input,
    );
    assert!(b.stop(), "clean shutdown on SIGTERM");
    b.restart();
    let list = run_cli(&["topic", "list", "--bootstrap", &b.addr], "");
    assert!(list.contains("keep\tpartitions=3"), "{list}");
    let out = run_cli(
        &[
            "consume",
            "keep",
            "--partition",
            "2",
            "--bootstrap",
            &b.addr,
        ],
        "",
    );
    assert_eq!(out, input);
    // New appends continue after the recovered offsets.
    run_cli(
        &[
            "produce",
            "keep",
            "--partition",
            "2",
            "--bootstrap",
            &b.addr,
        ],
        "after\n",
    );
    let out = run_cli(
        &[
            "consume",
            "keep",
            "--partition",
            "2",
            "--from",
            "100",
            "--format",
            "%o %v",
            "--bootstrap",
            &b.addr,
        ],
        "",
    );
    assert_eq!(out, "100 after\n");
}

#[test]
fn failed_topic_creation_leaves_no_trace_in_the_catalog() {
    let mut b = Broker::start_with(&["--shards", "1"]);
    let bs = b.addr.clone();
    // The first topic gets id 0: a file where its folder must go makes opening fail.
    let blocker = b.data_dir.join("topics").join("x-0");
    std::fs::create_dir_all(blocker.parent().expect("parent")).expect("topics dir");
    std::fs::write(&blocker, b"in the way").expect("blocker");
    let (ok, _, err) = run_cli_status(
        &[
            "topic",
            "create",
            "x",
            "--partitions",
            "2",
            "--bootstrap",
            &bs,
        ],
        "",
    );
    assert!(!ok, "creation must fail");
    assert!(err.contains("opening x/"), "{err}");
    let list = run_cli(&["topic", "list", "--bootstrap", &bs], "");
    assert!(!list.contains("x\t"), "rolled back: {list}");
    b.restart();
    let list = run_cli(&["topic", "list", "--bootstrap", &b.addr], "");
    assert!(
        !list.contains("x\t"),
        "not in the catalog file either: {list}"
    );
    std::fs::remove_file(&blocker).expect("unblock");
    run_cli(
        &[
            "topic",
            "create",
            "x",
            "--partitions",
            "2",
            "--bootstrap",
            &b.addr,
        ],
        "",
    );
    run_cli(
        &["produce", "x", "--partition", "1", "--bootstrap", &b.addr],
        "ok\n",
    );
    assert_eq!(
        run_cli(
            &["consume", "x", "--partition", "1", "--bootstrap", &b.addr],
            ""
        ),
        "ok\n"
    );
}
