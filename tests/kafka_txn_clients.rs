//! Kafka transactions through two more real clients: confluent-kafka (Python) and
//! KafkaJS (Node). Each runs the cases of its script in tests/txn/ (commit, abort,
//! timeout, fence, offsets) on a topic whose partitions are on both shards; this file
//! starts the broker, creates the topics and runs the scripts.
//!
//! `.ci/run` installs confluent-kafka into target/ci-venv (`PEREGRINE_PYTHON` names the
//! Python to use; default: that venv's when it exists, else `python3`) and KafkaJS into
//! target/ci-node (`PEREGRINE_NODE_MODULES` names the node_modules folder that has it;
//! default target/ci-node/node_modules). Without them every case fails and says how to
//! install them: nothing is skipped. By hand:
//!
//! ```text
//! target/ci-venv/bin/python tests/txn/confluent_cases.py 127.0.0.1:9092 commit TOPIC 4
//! NODE_PATH=target/ci-node/node_modules node tests/txn/kafkajs_cases.js 127.0.0.1:9092 commit TOPIC 4
//! ```

mod common;
use common::scripts::{finish, node_modules, python};
use common::{shared_broker, unique};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const CONFLUENT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/txn/confluent_cases.py");
const KAFKAJS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/txn/kafkajs_cases.js");
/// How long one script run may take; each wait inside it is bounded by 30 s.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(180);
/// The exit status the scripts use when their client library cannot be loaded.
const EXIT_NO_CLIENT: i32 = 3;
/// Partitions of each case's topic: round-robin placement puts them on both shards.
const PARTITIONS: i32 = 4;

#[derive(Clone, Copy, Debug)]
enum ClientKind {
    Confluent,
    KafkaJs,
}

fn spawn(kind: ClientKind, addr: &str, case: &str, topic: &str) -> Child {
    let partitions = PARTITIONS.to_string();
    let (program, mut cmd) = match kind {
        ClientKind::Confluent => {
            let python = python();
            let mut cmd = Command::new(&python);
            cmd.arg(CONFLUENT);
            (python, cmd)
        }
        ClientKind::KafkaJs => {
            let mut cmd = Command::new("node");
            cmd.env("NODE_PATH", node_modules()).arg(KAFKAJS);
            ("node".to_string(), cmd)
        }
    };
    cmd.args([addr, case, topic, &partitions])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{program} not runnable ({e}): run .ci/run, which installs it"))
}

/// Runs one case on a fresh topic of the shared broker; panics with the script's output
/// unless it printed `ok CASE`.
fn run_case(kind: ClientKind, case: &str) {
    let b = shared_broker();
    let topic = unique(&format!("{kind:?}-{case}").to_lowercase());
    b.create_topic(&topic, PARTITIONS);
    let (status, out) = finish(spawn(kind, &b.kafka_addr, case, &topic), SCRIPT_TIMEOUT);
    match status {
        None => panic!("{kind:?} case {case} ran past {SCRIPT_TIMEOUT:?}:\n{out}"),
        Some(s) if s.code() == Some(EXIT_NO_CLIENT) => panic!(
            "{kind:?}'s client library is not installed: run .ci/run (confluent-kafka==2.12.2 \
             into target/ci-venv, kafkajs@2.2.4 into target/ci-node)\n{out}"
        ),
        Some(s) => assert!(
            s.success() && out.contains(&format!("ok {case}")),
            "{kind:?} case {case} failed ({s}):\n{out}"
        ),
    }
}

#[test]
fn confluent_kafka_commit_over_both_shards_is_read_whole() {
    run_case(ClientKind::Confluent, "commit");
}

#[test]
fn confluent_kafka_abort_is_seen_only_by_read_uncommitted() {
    run_case(ClientKind::Confluent, "abort");
}

#[test]
fn confluent_kafka_transaction_past_its_timeout_is_aborted_and_fenced() {
    run_case(ClientKind::Confluent, "timeout");
}

#[test]
fn confluent_kafka_second_producer_with_the_same_id_fences_the_first() {
    run_case(ClientKind::Confluent, "fence");
}

#[test]
fn kafkajs_commit_over_both_shards_is_read_whole() {
    run_case(ClientKind::KafkaJs, "commit");
}

#[test]
fn kafkajs_abort_is_seen_only_by_read_uncommitted() {
    run_case(ClientKind::KafkaJs, "abort");
}

#[test]
fn kafkajs_transaction_past_its_timeout_is_aborted_and_fenced() {
    run_case(ClientKind::KafkaJs, "timeout");
}

#[test]
fn kafkajs_second_producer_with_the_same_id_fences_the_first() {
    run_case(ClientKind::KafkaJs, "fence");
}

#[test]
fn confluent_kafka_offsets_reach_the_group_only_with_a_commit() {
    run_case(ClientKind::Confluent, "offsets");
}

#[test]
fn kafkajs_offsets_reach_the_group_only_with_a_commit() {
    run_case(ClientKind::KafkaJs, "offsets");
}
