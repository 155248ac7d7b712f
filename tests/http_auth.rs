//! `serve --http-auth`: boto3 signing with a configured key and secret is served, over
//! SQS's JSON 1.0 (boto3 1.43.11) and query (1.34.89) protocols and SNS's query protocol;
//! a wrong secret gets SignatureDoesNotMatch and an unknown key InvalidClientTokenId, as
//! the SDK's own exceptions. Without the flag any key is accepted; the flags are checked
//! at start. The signing algorithm's edge cases are aws-wire's unit tests (sigv4.rs).
//!
//! The Python cases are tests/http_auth/auth_cases.py; boto3 comes from `.ci/run` (see
//! tests/sqs_boto3.rs: `PEREGRINE_PYTHON`, `PEREGRINE_BOTO3_QUERY`).

mod common;
use common::scripts::{finish, python};
use common::Broker;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/http_auth/auth_cases.py");
/// How long one script run may take; its HTTP calls time out well within it.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(60);
const KEY: &str = "AKIDPEREGRINE";
const SECRET: &str = "peregrine/secret+key";

fn query_boto3() -> String {
    std::env::var("PEREGRINE_BOTO3_QUERY")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/target/ci-sqs-query").to_string())
}

/// Runs one case; panics with its output unless it printed `ok EXPECT`.
fn case(b: &Broker, service: &str, query: bool, key: &str, secret: &str, expect: &str) {
    let python = python();
    let mut cmd = Command::new(&python);
    cmd.arg(SCRIPT)
        .arg(format!("http://{}", b.http_addr))
        .args([service, key, secret, expect]);
    if query {
        cmd.arg("--query")
            .env("PEREGRINE_BOTO3_QUERY", query_boto3());
    }
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("{python} not runnable ({e}): run .ci/run, which installs boto3")
        });
    let (status, out) = finish(child, SCRIPT_TIMEOUT);
    assert!(
        status.is_some_and(|s| s.success()) && out.contains(&format!("ok {expect}")),
        "{service} query={query} key={key} expecting {expect} failed ({status:?}):\n{out}"
    );
}

fn auth_broker() -> Broker {
    Broker::start_with(&[
        "--http-auth",
        "--http-access-key",
        &format!("{KEY}:{SECRET}"),
        "--http-access-key",
        "AKIDSECOND:second",
    ])
}

#[test]
fn signed_requests_are_served_and_bad_signatures_refused_on_every_wire() {
    let b = auth_broker();
    for (service, query) in [("sqs", false), ("sqs", true), ("sns", false)] {
        case(&b, service, query, KEY, SECRET, "ok");
        case(&b, service, query, "AKIDSECOND", "second", "ok");
        case(
            &b,
            service,
            query,
            KEY,
            "peregrine/secret+kez",
            "SignatureDoesNotMatch",
        );
        case(
            &b,
            service,
            query,
            "AKIDSECOND",
            SECRET,
            "SignatureDoesNotMatch",
        );
        case(
            &b,
            service,
            query,
            "AKIDUNKNOWN",
            SECRET,
            "InvalidClientTokenId",
        );
    }
}

#[test]
fn without_the_flag_any_key_is_accepted() {
    let b = Broker::start();
    case(&b, "sqs", false, "AKIDUNKNOWN", "anything", "ok");
    case(&b, "sqs", true, "AKIDUNKNOWN", "anything", "ok");
}

/// One raw HTTP request; the whole answer.
fn http(b: &Broker, request: &str) -> String {
    let mut s = TcpStream::connect(&b.http_addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s.write_all(request.as_bytes()).expect("write");
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn unsigned_requests_are_refused_and_operator_routes_stay_open() {
    let b = auth_broker();
    let body = "Action=ListQueues";
    let answer = http(
        &b,
        &format!("POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()),
    );
    assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
    assert!(
        answer.contains("<Code>MissingAuthenticationToken</Code>"),
        "{answer}"
    );
    let json = http(
        &b,
        "POST / HTTP/1.1\r\nHost: x\r\nX-Amz-Target: AmazonSQS.ListQueues\r\nContent-Type: application/x-amz-json-1.0\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}",
    );
    assert!(json.starts_with("HTTP/1.1 403"), "{json}");
    assert!(
        json.to_ascii_lowercase()
            .contains("x-amzn-query-error: missingauthenticationtoken;sender"),
        "{json}"
    );
    // A SubscribeURL visit (unsigned GET of ConfirmSubscription with its token) passes
    // the check: SNS answers it (here NotFound, no such topic), not the auth layer.
    let confirm = http(
        &b,
        "GET /?Action=ConfirmSubscription&TopicArn=arn%3Aaws%3Asns%3Aus-east-1%3A000000000000%3Anone&Token=abc HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(!confirm.contains("MissingAuthenticationToken"), "{confirm}");
    assert!(confirm.contains("<Code>NotFound</Code>"), "{confirm}");
    // Without its token it is refused like any other unsigned request.
    let tokenless = http(
        &b,
        "GET /?Action=ConfirmSubscription&TopicArn=x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(tokenless.starts_with("HTTP/1.1 403"), "{tokenless}");
    let health = http(
        &b,
        "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    // The three refusals above (form, JSON, tokenless confirmation) are counted.
    let page = http(
        &b,
        "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    let refused: f64 = page
        .lines()
        .filter(|l| {
            l.starts_with("peregrine_errors_total{")
                && l.contains("protocol=\"http\"")
                && l.contains("code=\"AccessRefused\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(refused, 3.0, "{page}");
}

/// Flags that would do nothing or cannot work stop the broker before it starts.
#[test]
fn auth_flags_are_checked_at_start() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().to_string_lossy().to_string();
    let cases: [(&[&str], &str); 5] = [
        (&["--http-auth"], "--http-access-key"),
        (&["--http-access-key", "K:s"], "--http-auth"),
        (
            &["--http-auth", "--http-access-key", "K"],
            "--http-access-key",
        ),
        (
            &["--http-auth", "--http-access-key", "K/x:s"],
            "--http-access-key",
        ),
        (
            &[
                "--http-auth",
                "--http-access-key",
                "K:s",
                "--http-access-key",
                "K:t",
            ],
            "more than once",
        ),
    ];
    for (flags, said) in cases {
        let child = Command::new(common::BIN)
            .args(["serve", "--data-dir", &data])
            .args([
                "--native-addr",
                "127.0.0.1:0",
                "--kafka-addr",
                "127.0.0.1:0",
            ])
            .args(["--http-addr", "127.0.0.1:0", "--amqp-addr", "127.0.0.1:0"])
            .args(flags)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run peregrine serve");
        // A broker that accepted the flags would serve until killed: bounded wait.
        let (status, out) = finish(child, Duration::from_secs(30));
        assert!(
            status.is_some_and(|s| !s.success()) && out.contains(said),
            "{flags:?} was accepted or not explained ({status:?}): {out}"
        );
        assert!(
            !out.contains(":s\"") && !out.contains("secret"),
            "a secret leaked: {out}"
        );
    }
}
