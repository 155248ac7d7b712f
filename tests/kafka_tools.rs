//! Kafka command-line and Python clients against the real broker: `kcat` (Debian
//! package) and `kafka-python` (pip). `.ci/run` installs both; without them these tests
//! fail and say what to install.

mod common;
use common::Broker;
use std::process::{Command, Stdio};

fn run(cmd: &mut Command, stdin: &str, what: &str) -> String {
    use std::io::Write;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{what} not runnable ({e}): run .ci/run, which installs it"));
    if let Some(mut input) = child.stdin.take() {
        input.write_all(stdin.as_bytes()).expect("stdin");
    }
    let out = child.wait_with_output().expect("wait");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{what} failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn kcat_lists_metadata_produces_keys_and_consumes_from_offsets() {
    let b = Broker::start();
    b.create_topic("kc", 2);
    let kcat = |args: &[&str], stdin: &str| {
        let mut cmd = Command::new("kcat");
        cmd.args(["-b", &b.kafka_addr]).args(args);
        run(&mut cmd, stdin, "kcat")
    };
    let md: serde_json::Value = serde_json::from_str(&kcat(&["-L", "-J"], "")).expect("JSON");
    let topic = md["topics"]
        .as_array()
        .and_then(|t| t.iter().find(|t| t["topic"] == "kc"))
        .expect("topic listed");
    assert_eq!(topic["partitions"].as_array().map(Vec::len), Some(2));
    let lines: String = (0..10).map(|i| format!("k{}:v{i}\n", i % 3)).collect();
    kcat(&["-P", "-t", "kc", "-K:", "-p", "0"], &lines);
    let from_3 = kcat(
        &[
            "-C",
            "-t",
            "kc",
            "-p",
            "0",
            "-o",
            "3",
            "-e",
            "-f",
            "%o %k %s\n",
        ],
        "",
    );
    let expected: String = (3..10).map(|i| format!("{i} k{} v{i}\n", i % 3)).collect();
    assert_eq!(from_3, expected);
    let last_two = kcat(
        &[
            "-C", "-t", "kc", "-p", "0", "-o", "-2", "-e", "-f", "%o %s\n",
        ],
        "",
    );
    assert_eq!(last_two, "8 v8\n9 v9\n");
}

#[test]
fn kafka_python_json_producer_and_group_consumer() {
    let b = Broker::start();
    let python = common::scripts::python();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/clients/kafka_python_check.py"
    );
    let out = run(
        Command::new(&python).args([script, &b.kafka_addr, "py-json"]),
        "",
        "kafka-python (python3 with `pip install kafka-python`)",
    );
    assert!(out.contains("kafka-python ok"), "{out}");
}
