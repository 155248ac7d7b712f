//! boto3 running typical Amazon SNS programs against the real broker's HTTP listener,
//! changed only in `endpoint_url`: topics fanned out to SQS queues (raw and enveloped),
//! filter policies, batches, HTTP endpoints with confirmation and retries, a Kafka topic
//! as a target, the fan-out surviving kill -9, and signed envelopes verified by AWS's own
//! validator (npm `sns-validator`, run by the script with node). The programs are the functions of
//! tests/sns/boto3_cases.py, one per case (SNS has one wire protocol, the query protocol);
//! this file starts brokers, runs the script, and drives what a script cannot do alone
//! (flags, kill -9 and restart, an engine topic for the Kafka target).
//!
//! `.ci/run` installs boto3 into target/ci-venv; `PEREGRINE_PYTHON` names another Python.
//! Without boto3 every case fails and says how to install it: nothing is skipped.

mod common;
use common::pki::{arg, Pki};
use common::scripts::{finish, node_modules, python};
use common::{shared_broker, unique, Broker};
use rsa::sha2::{Digest, Sha256};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
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
case!(order_events_fan_out);
case!(filter_policies);
case!(publish_batch_answers_each_entry);
case!(fifo_topic_to_fifo_queue);
case!(unsubscribe_stops_deliveries);
case!(list_subscriptions_in_pages);
case!(subscription_attributes);
case!(http_subscription_with_confirmation_and_retries);
case!(http_failures_go_to_the_dead_letter_queue);
case!(message_structure_json_sends_each_protocol_its_own);
case!(authenticate_on_unsubscribe_refuses_the_unsigned_link);
case!(unsubscribe_confirmation_restores_the_subscription);
case!(errors);
case!(signature_version_attribute);

/// A subscription whose endpoint is an engine topic: the Notification is a record there,
/// read back by confluent-kafka.
#[test]
fn kafka_subscription() {
    let b = shared_broker();
    let topic = unique("sns-target");
    b.create_topic(&topic, 1);
    boto3(&b, "kafka_subscription", &[&topic, &b.kafka_addr]);
}

/// An https endpoint: certificates chaining to a `--sns-https-ca` CA are trusted, others
/// (another CA) refused at the handshake.
#[test]
fn https_subscription_trusts_only_its_cas() {
    let (trusted, stranger) = (Pki::new("sns endpoints CA"), Pki::new("someone else's CA"));
    let (cert, key) = trusted.server();
    let (other_cert, other_key) = stranger.server();
    let b = Broker::start_with(&["--sns-https-ca", arg(&trusted.ca())]);
    let files = [&cert, &key, &other_cert, &other_key].map(|p| arg(p));
    boto3(&b, "https_subscription", &files);
}

/// A broker with an HTTPS listener (SigningCertURL points there: verifiers fetch
/// certificates over https only) whose certificate chains to `pki`'s CA.
fn https_broker(pki: &Pki, extra: &[&str]) -> Broker {
    let (cert, key) = pki.server();
    let mut args = vec![
        "--tls-cert",
        arg(&cert),
        "--tls-key",
        arg(&key),
        "--http-tls-addr",
        "127.0.0.1:0",
    ];
    args.extend_from_slice(extra);
    Broker::start_with(&args)
}

/// The `certificate HEX` line `signed_envelopes` prints: the SHA-256 of the PEM it
/// fetched from SigningCertURL.
fn certificate_of(out: &str) -> String {
    out.lines()
        .find_map(|l| l.strip_prefix("certificate "))
        .unwrap_or_else(|| panic!("no certificate line in:\n{out}"))
        .to_string()
}

/// Confirmations and Notifications (at an HTTP endpoint and in a queue) verify with npm
/// `sns-validator` against the certificate at SigningCertURL, for SignatureVersion 1 and
/// 2, and tampered copies do not; after a restart the broker signs with the same key it
/// made at its first start (the same certificate, and new messages verify).
#[test]
fn envelopes_verify_with_the_brokers_key_across_a_restart() {
    let pki = Pki::new("sns signing test CA");
    let mut b = https_broker(&pki, &[]);
    let (modules, ca) = (node_modules(), pki.ca());
    let before = certificate_of(&boto3(&b, "signed_envelopes", &[&modules, arg(&ca)]));
    let on_disk = std::fs::read(b.data_dir.join("meta/sns-signing-cert.pem")).expect("cert file");
    b.restart();
    let after = certificate_of(&boto3(&b, "signed_envelopes", &[&modules, arg(&ca)]));
    assert_eq!(
        before, after,
        "the signing certificate changed across the restart"
    );
    let kept = std::fs::read(b.data_dir.join("meta/sns-signing-cert.pem")).expect("cert file");
    assert_eq!(on_disk, kept);
}

/// `--sns-signing http`: what goes to an HTTP endpoint is signed (and verifies), the
/// envelope a queue receives is not.
#[test]
fn sns_signing_http_signs_what_goes_to_http_endpoints_only() {
    let pki = Pki::new("sns signing test CA");
    let b = https_broker(&pki, &["--sns-signing", "http"]);
    boto3(
        &b,
        "signing_scope",
        &["http", &node_modules(), arg(&pki.ca())],
    );
    assert!(b.data_dir.join("meta/sns-signing-key.pem").exists());
}

/// `--sns-signing off`: no envelope is signed, and no key is made in the data directory.
#[test]
fn sns_signing_off_signs_nothing_and_makes_no_key() {
    let b = Broker::start_with(&["--sns-signing", "off"]);
    boto3(&b, "signing_scope", &["off"]);
    for file in ["meta/sns-signing-key.pem", "meta/sns-signing-cert.pem"] {
        assert!(!b.data_dir.join(file).exists(), "{file} was made");
    }
}

/// `--sns-signing-key` and `--sns-signing-cert`: the operator's pair signs, and its
/// certificate is the one served at SigningCertURL; a key and a certificate that are not
/// one pair stop the start.
#[test]
fn a_given_signing_key_signs_and_a_mismatched_pair_is_refused() {
    let pki = Pki::new("sns signing test CA");
    // A pair made by a broker of its own (RSA; rcgen here makes ECDSA keys only).
    let mut maker = Broker::start();
    maker.stop();
    let (key, cert) = (
        maker.data_dir.join("meta/sns-signing-key.pem"),
        maker.data_dir.join("meta/sns-signing-cert.pem"),
    );
    let b = https_broker(
        &pki,
        &[
            "--sns-signing-key",
            arg(&key),
            "--sns-signing-cert",
            arg(&cert),
        ],
    );
    let (modules, ca) = (node_modules(), pki.ca());
    let served = certificate_of(&boto3(&b, "signed_envelopes", &[&modules, arg(&ca)]));
    let given = std::fs::read(&cert).expect("cert");
    assert_eq!(
        served,
        hex::encode(Sha256::digest(&given)),
        "SigningCertURL serves it"
    );
    assert!(
        !b.data_dir.join("meta/sns-signing-key.pem").exists(),
        "a given key leaves the data directory alone"
    );
    let other = Broker::start();
    let other_cert = other.data_dir.join("meta/sns-signing-cert.pem");
    let dir = tempfile::tempdir().expect("dir");
    let (status, out) = common::serve_refused(
        dir.path(),
        &[
            "--sns-signing-key",
            arg(&key),
            "--sns-signing-cert",
            arg(&other_cert),
        ],
    );
    assert!(
        status.is_some_and(|s| !s.success()) && out.contains("not of this key"),
        "a mismatched pair must stop the start ({status:?}):\n{out}"
    );
}

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

/// kill -9 the moment the last Publish is acknowledged: after the restart every
/// subscribed queue holds every message exactly once (the fan-out resumes from its
/// committed cursor, and the queues drop what they already had by its origin).
#[test]
fn fan_out_survives_kill_9_right_after_publish() {
    let mut b = Broker::start();
    let prefix = unique("sns-kept");
    let n = "200";
    let mut child = spawn(&b, "durable_setup", &[&prefix, n]);
    let lines = lines_of(&mut child);
    let deadline = std::time::Instant::now() + SCRIPT_TIMEOUT;
    let mut seen = String::new();
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) if line.trim() == "published" => break,
            Ok(line) => seen.push_str(&line),
            Err(_) => {
                let (status, out) = finish(child, Duration::from_secs(1));
                panic!("durable_setup ended without `published` ({status:?}):\n{seen}{out}");
            }
        }
    }
    b.kill9();
    let (status, out) = finish(child, SCRIPT_TIMEOUT);
    // The rest of its stdout (`ok durable_setup`): the pipe closed when it exited.
    while let Ok(line) = lines.recv_timeout(Duration::from_secs(5)) {
        seen.push_str(&line);
    }
    check("durable_setup", status, &format!("{seen}{out}"));
    b.restart();
    boto3(&b, "durable_check", &[&prefix, n]);
}

/// The child's stdout, line by line, as it comes (its stderr stays with the child).
fn lines_of(child: &mut Child) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    if let Some(out) = child.stdout.take() {
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line + "\n").is_err() {
                    break;
                }
            }
        });
    }
    rx
}
