//! The AWS SDK for JavaScript v3 (`@aws-sdk/client-sqs`, SQS's JSON 1.0 protocol) running
//! typical Amazon SQS programs against the real broker's HTTP listener, changed only in
//! `endpoint`: a second SDK beside boto3 (tests/sqs_boto3.rs). The programs are the
//! functions of tests/sqs/js_cases.js, one per case; this file starts the broker and runs
//! each case as a test.
//!
//! `.ci/run` installs `@aws-sdk/client-sqs@3.699.0` into target/ci-node
//! (`PEREGRINE_NODE_MODULES` names another node_modules). Without it every case fails and
//! says how to install it: nothing is skipped. By hand:
//!
//! ```text
//! NODE_PATH=target/ci-node/node_modules node tests/sqs/js_cases.js http://127.0.0.1:8080 long_poll
//! ```

mod common;
use common::scripts::{finish, node_modules};
use common::shared_broker;
use std::process::{Command, Stdio};
use std::time::Duration;

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sqs/js_cases.js");
/// How long one script run may take; each wait inside it is bounded by 10 s.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(120);
/// The exit status js_cases.js uses when @aws-sdk/client-sqs cannot be loaded.
const EXIT_NO_SDK: i32 = 3;

/// Runs one case against the shared broker; panics with its output unless it printed
/// `ok CASE`.
fn run_case(case: &str) {
    let b = shared_broker();
    let child = Command::new("node")
        .env("NODE_PATH", node_modules())
        .arg(SCRIPT)
        .arg(format!("http://{}", b.http_addr))
        .arg(case)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("node not runnable ({e}): run .ci/run, which installs it"));
    let (status, out) = finish(child, SCRIPT_TIMEOUT);
    match status {
        None => panic!("SDK case {case} ran past {SCRIPT_TIMEOUT:?}:\n{out}"),
        Some(s) if s.code() == Some(EXIT_NO_SDK) => panic!(
            "@aws-sdk/client-sqs is not installed in {}: run .ci/run, or `npm install --prefix \
             target/ci-node @aws-sdk/client-sqs@3.699.0`\n{out}",
            node_modules()
        ),
        Some(s) => assert!(
            s.success() && out.contains(&format!("ok {case}")),
            "SDK case {case} failed ({s}):\n{out}"
        ),
    }
}

#[test]
fn create_queue_answers_the_url_that_get_queue_url_finds() {
    run_case("queue_url");
}

#[test]
fn message_attributes_body_and_md5_digests_come_back_whole() {
    run_case("attributes_and_md5");
}

#[test]
fn long_poll_answers_when_a_message_arrives() {
    run_case("long_poll");
}

#[test]
fn delete_takes_the_receipt_and_a_stale_one_is_receipt_handle_is_invalid() {
    run_case("delete_and_stale_receipt");
}

#[test]
fn send_message_batch_answers_each_entry() {
    run_case("batch_per_entry");
}

#[test]
fn a_missing_queue_is_queue_does_not_exist() {
    run_case("missing_queue");
}

#[test]
fn a_fifo_queue_keeps_order_and_drops_duplicates_and_tags_round_trip() {
    run_case("fifo_and_tags");
}
