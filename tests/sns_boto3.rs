//! boto3 running typical Amazon SNS programs against the real broker's HTTP listener,
//! changed only in `endpoint_url`: topics fanned out to SQS queues (raw and enveloped),
//! filter policies, batches, HTTP endpoints with confirmation and retries, a Kafka topic
//! as a target, and the fan-out surviving kill -9. The programs are the functions of
//! tests/sns/boto3_cases.py, one per case (SNS has one wire protocol, the query protocol);
//! this file starts brokers, runs the script, and drives what a script cannot do alone
//! (flags, kill -9 and restart, an engine topic for the Kafka target).
//!
//! `.ci/run` installs boto3 into target/ci-venv; `PEREGRINE_PYTHON` names another Python.
//! Without boto3 every case fails and says how to install it: nothing is skipped.

mod common;
use common::scripts::{finish, python};
use common::{shared_broker, Broker};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sns/boto3_cases.py");
/// How long one script run may take; each wait inside it is bounded by 10 s (30 s for
/// the check after a restart).
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(120);
/// The exit status boto3_cases.py uses when boto3 is missing.
const EXIT_NO_BOTO3: i32 = 3;

fn spawn(b: &Broker, case: &str, args: &[&str]) -> Child {
    let python = python();
    Command::new(&python)
        .arg(SCRIPT)
        .arg(format!("http://{}", b.http_addr))
        .arg(case)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{python} not runnable ({e}): run .ci/run, which installs it"))
}

/// Runs one case to completion; panics with its output unless it printed `ok CASE`.
fn boto3(b: &Broker, case: &str, args: &[&str]) -> String {
    let (status, out) = finish(spawn(b, case, args), SCRIPT_TIMEOUT);
    check(case, status, &out);
    out
}

fn check(case: &str, status: Option<ExitStatus>, out: &str) {
    match status {
        None => panic!("boto3 case {case} ran past {SCRIPT_TIMEOUT:?}:\n{out}"),
        Some(s) if s.code() == Some(EXIT_NO_BOTO3) => panic!(
            "boto3 is not installed for {}: run .ci/run, or `pip install boto3==1.43.11`, \
             then set PEREGRINE_PYTHON\n{out}",
            python()
        ),
        Some(s) => assert!(
            s.success() && out.contains(&format!("ok {case}")),
            "boto3 case {case} failed ({s}):\n{out}"
        ),
    }
}

/// One script case against the shared broker.
macro_rules! case {
    ($case:ident) => {
        #[test]
        fn $case() {
            boto3(&shared_broker(), stringify!($case), &[]);
        }
    };
}

case!(topic_lifecycle);
case!(list_topics_in_pages);
case!(subscription_attributes);
case!(errors);

/// `--sqs-region` and `--sqs-account-id` shape topic and subscription ARNs too.
#[test]
fn region_and_account_flags_shape_topic_arns() {
    let b = Broker::start_with(&[
        "--sqs-region",
        "eu-west-3",
        "--sqs-account-id",
        "123456789012",
    ]);
    let flags = ["--region", "eu-west-3", "--account", "123456789012"];
    boto3(&b, "region_and_account", &flags);
}
