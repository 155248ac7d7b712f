//! boto3 running typical Amazon SQS programs against the real broker's HTTP listener,
//! changed only in `endpoint_url`. The programs are the functions of
//! tests/sqs/boto3_cases.py, one per case; each runs twice: `_json` with boto3 1.43.11
//! (SQS's JSON 1.0 protocol) and `_query` with boto3/botocore 1.34.89 (the query
//! protocol: forms in, XML out), and the script checks which protocol its client spoke.
//! This file starts brokers, runs the script, and drives what a script cannot do alone
//! (flags, kill -9 and restart, the native client and CLI on the other side of one engine).
//!
//! `.ci/run` installs boto3 1.43.11 into target/ci-venv and 1.34.89 into
//! target/ci-sqs-query; `PEREGRINE_PYTHON` and `PEREGRINE_BOTO3_QUERY` name others. Without
//! them every case fails and says how to install them: nothing is skipped.

mod common;
use common::scripts::{finish, python};
use common::{run_cli, shared_broker, unique, Broker};
use peregrine::native::messages::PublishSpec;
use std::process::{Command, ExitStatus, Stdio};
use std::time::Duration;

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sqs/boto3_cases.py");
/// How long one script run may take; each wait inside it is bounded by 10 s.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(120);
/// The exit status boto3_cases.py uses when boto3 (or the query release) is missing.
const EXIT_NO_BOTO3: i32 = 3;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Wire {
    Json,
    Query,
}

/// Where the query-protocol boto3 is: `PEREGRINE_BOTO3_QUERY`, else target/ci-sqs-query.
fn query_boto3() -> String {
    std::env::var("PEREGRINE_BOTO3_QUERY")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/target/ci-sqs-query").to_string())
}

fn endpoint(b: &Broker) -> String {
    format!("http://{}", b.http_addr)
}

/// Runs one case to completion; panics with its output unless it printed `ok CASE`.
fn boto3(b: &Broker, wire: Wire, case: &str, args: &[&str]) -> String {
    let python = python();
    let mut cmd = Command::new(&python);
    cmd.arg(SCRIPT).arg(endpoint(b)).arg(case).args(args);
    if wire == Wire::Query {
        cmd.arg("--query")
            .env("PEREGRINE_BOTO3_QUERY", query_boto3());
    }
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{python} not runnable ({e}): run .ci/run, which installs it"));
    let (status, out) = finish(child, SCRIPT_TIMEOUT);
    check(case, status, &out);
    out
}

fn check(case: &str, status: Option<ExitStatus>, out: &str) {
    match status {
        None => panic!("boto3 case {case} ran past {SCRIPT_TIMEOUT:?}:\n{out}"),
        Some(s) if s.code() == Some(EXIT_NO_BOTO3) => panic!(
            "boto3 is not installed for {}: run .ci/run, or `pip install boto3==1.43.11` and \
             `pip install --target DIR boto3==1.34.89 botocore==1.34.89`, then set \
             PEREGRINE_PYTHON and PEREGRINE_BOTO3_QUERY=DIR\n{out}",
            python()
        ),
        Some(s) => assert!(
            s.success() && out.contains(&format!("ok {case}")),
            "boto3 case {case} failed ({s}):\n{out}"
        ),
    }
}

/// One script case against the shared broker, once per wire protocol.
macro_rules! case {
    ($case:ident, $json:ident, $query:ident) => {
        #[test]
        fn $json() {
            boto3(&shared_broker(), Wire::Json, stringify!($case), &[]);
        }

        #[test]
        fn $query() {
            boto3(&shared_broker(), Wire::Query, stringify!($case), &[]);
        }
    };
}

case!(queue_lifecycle, queue_lifecycle_json, queue_lifecycle_query);
case!(
    list_queues_by_prefix_and_page,
    list_queues_by_prefix_and_page_json,
    list_queues_by_prefix_and_page_query
);
case!(
    queue_attributes_round_trip,
    queue_attributes_round_trip_json,
    queue_attributes_round_trip_query
);
case!(
    approximate_counts,
    approximate_counts_json,
    approximate_counts_query
);
case!(
    send_receive_delete_with_attributes_and_md5,
    send_receive_delete_with_attributes_and_md5_json,
    send_receive_delete_with_attributes_and_md5_query
);
case!(
    send_batch_answers_each_entry,
    send_batch_answers_each_entry_json,
    send_batch_answers_each_entry_query
);
case!(
    receive_ten_and_delete_in_a_batch,
    receive_ten_and_delete_in_a_batch_json,
    receive_ten_and_delete_in_a_batch_query
);
case!(
    long_poll_answers_when_a_message_arrives,
    long_poll_answers_when_a_message_arrives_json,
    long_poll_answers_when_a_message_arrives_query
);
case!(
    visibility_timeout_and_stale_receipt,
    visibility_timeout_and_stale_receipt_json,
    visibility_timeout_and_stale_receipt_query
);
case!(
    change_visibility,
    change_visibility_json,
    change_visibility_query
);
case!(delays, delays_json, delays_query);
case!(
    redrive_to_dead_letter_queue,
    redrive_to_dead_letter_queue_json,
    redrive_to_dead_letter_queue_query
);
case!(purge, purge_json, purge_query);
case!(tags, tags_json, tags_query);
case!(
    fair_queue_group_ids,
    fair_queue_group_ids_json,
    fair_queue_group_ids_query
);
case!(
    system_attributes_and_first_receive,
    system_attributes_and_first_receive_json,
    system_attributes_and_first_receive_query
);
case!(
    message_move_tasks,
    message_move_tasks_json,
    message_move_tasks_query
);
case!(
    redrive_allow_policy,
    redrive_allow_policy_json,
    redrive_allow_policy_query
);
case!(
    dead_letter_source_queues,
    dead_letter_source_queues_json,
    dead_letter_source_queues_query
);
case!(
    fifo_attributes_and_rules,
    fifo_attributes_and_rules_json,
    fifo_attributes_and_rules_query
);
case!(
    fifo_queue_keeps_group_order_and_drops_duplicates,
    fifo_queue_keeps_group_order_and_drops_duplicates_json,
    fifo_queue_keeps_group_order_and_drops_duplicates_query
);
case!(
    fifo_receive_request_attempt_id,
    fifo_receive_request_attempt_id_json,
    fifo_receive_request_attempt_id_query
);
case!(
    fifo_content_based_and_per_group_deduplication,
    fifo_content_based_and_per_group_deduplication_json,
    fifo_content_based_and_per_group_deduplication_query
);
case!(
    missing_queue_and_bad_input,
    missing_queue_and_bad_input_json,
    missing_queue_and_bad_input_query
);

/// The script's own MD5OfMessageAttributes against AWS's vectors: the MD5 checks of
/// every other case lean on it.
#[test]
fn the_scripts_attribute_digest_matches_aws_vectors() {
    boto3(&shared_broker(), Wire::Json, "md5_vectors", &[]);
}

/// An SQS queue is an engine queue: the CLI and the native client see what SQS sent,
/// and SQS receives what the native client published (its header as a String attribute,
/// its non-UTF-8 body as U+FFFD with MD5OfBody over that text).
#[test]
fn a_queue_declared_by_sqs_is_the_engine_queue() {
    let b = shared_broker();
    let q = unique("sqs-native");
    boto3(&b, Wire::Json, "fill", &[&q, "3"]);
    let list = run_cli(&["queue", "list", "--bootstrap", &b.addr], "");
    assert!(
        list.lines()
            .any(|l| l.split_whitespace().next() == Some(q.as_str())),
        "peregrine queue list does not show {q}:\n{list}"
    );
    let mut client = b.client();
    let stats = client.queue_stats(&q).expect("queue stats");
    assert_eq!(stats.ready, 3, "{stats:?}");
    let spec = PublishSpec {
        headers: vec![("source".to_string(), "native".to_string())],
        durable: true,
        ..PublishSpec::default()
    };
    client.publish(&q, spec, &[0xff]).expect("native publish");
    boto3(&b, Wire::Json, "consume_expect", &[&q, "4"]);
}

/// `--sqs-region` and `--sqs-account-id` shape queue URLs, ARNs and SenderId; a URL of
/// another account names no queue.
#[test]
fn region_and_account_flags_shape_urls_and_arns() {
    let b = Broker::start_with(&[
        "--sqs-region",
        "eu-west-3",
        "--sqs-account-id",
        "123456789012",
    ]);
    let flags = ["--region", "eu-west-3", "--account", "123456789012"];
    boto3(&b, Wire::Json, "urls_and_arns", &flags);
    boto3(&b, Wire::Query, "urls_and_arns", &flags);
}

/// Bad values of the flags stop the broker before it starts.
#[test]
fn bad_region_or_account_flags_are_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    for flags in [
        ["--sqs-region", "EU West"],
        ["--sqs-account-id", "12345"],
        ["--sqs-account-id", "12345678901x"],
    ] {
        // A broker that accepted the flags would serve until killed: bounded wait.
        let (status, out) = common::serve_refused(dir.path(), &flags);
        assert!(
            status.is_some_and(|s| !s.success()) && out.contains(flags[0]),
            "{flags:?} was accepted or not explained ({status:?}): {out}"
        );
    }
}

/// Attributes set by SetQueueAttributes and an acknowledged send survive kill -9; the
/// lease held at the kill does not, and its receipt is refused afterwards.
#[test]
fn attributes_and_messages_survive_kill_9() {
    let mut b = Broker::start();
    let q = unique("sqs-kept");
    let receipt = b.data_dir.join("receipt-before-kill");
    let receipt = receipt.to_string_lossy().to_string();
    boto3(&b, Wire::Json, "persist_setup", &[&q, &receipt]);
    b.kill9();
    b.restart();
    boto3(&b, Wire::Query, "persist_check", &[&q, &receipt]);
}

/// Message move tasks outlive a kill -9: the finished ones stay listed, and the one that
/// was running resumes under its handle and moves the rest, storing none twice.
#[test]
fn message_move_tasks_survive_kill_9_and_the_running_one_resumes() {
    let mut b = Broker::start();
    let q = unique("sqs-moves-kept");
    let state = b.data_dir.join("move-task-before-kill");
    let state = state.to_string_lossy().to_string();
    boto3(&b, Wire::Json, "moves_persist_setup", &[&q, &state]);
    b.kill9();
    b.restart();
    boto3(&b, Wire::Query, "moves_persist_check", &[&q, &state]);
}

/// ApproximateFirstReceiveTimestamp outlives a clean stop for a message still in the
/// queue: received again after the restart, it shows the first receive's time.
#[test]
fn first_receive_timestamp_survives_a_restart() {
    let mut b = Broker::start();
    let q = unique("sqs-first-kept");
    let state = b.data_dir.join("first-receive-before-stop");
    let state = state.to_string_lossy().to_string();
    boto3(&b, Wire::Json, "first_receive_persist_setup", &[&q, &state]);
    assert!(b.stop(), "a clean stop exits 0:\n{}", b.log());
    b.restart();
    boto3(&b, Wire::Json, "first_receive_persist_check", &[&q, &state]);
}

/// Receive attempt ids are not kept across a restart, on purpose: leases are not, so a
/// retry after a kill -9 receives the same messages afresh, under new receipts.
#[test]
fn a_receive_attempt_retried_after_kill_9_receives_afresh() {
    let mut b = Broker::start();
    let q = unique("sqs-attempt-kept");
    let state = b.data_dir.join("attempt-before-kill");
    let state = state.to_string_lossy().to_string();
    boto3(&b, Wire::Json, "attempt_persist_setup", &[&q, &state]);
    b.kill9();
    b.restart();
    boto3(&b, Wire::Json, "attempt_persist_check", &[&q, &state]);
}
