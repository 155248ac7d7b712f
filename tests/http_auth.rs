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
use common::{admin_cli, Broker};
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
    let cases: [(&[&str], &str); 3] = [
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
        // A broker that accepted the flags would serve until killed: bounded wait.
        let (status, out) = common::serve_refused(dir.path(), flags);
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

/// `--metrics-token-file`: `/metrics` answers 401 (with `WWW-Authenticate: Bearer`) unless
/// the request presents the token; health routes stay open.
#[test]
fn metrics_needs_its_bearer_token_when_one_is_configured() {
    let dir = tempfile::tempdir().expect("temp dir");
    let token_file = dir.path().join("metrics-token");
    std::fs::write(&token_file, "scrape-me-7f3a\n").expect("write token");
    let b = Broker::start_with(&["--metrics-token-file", token_file.to_str().expect("path")]);
    let get = |path: &str, authorization: Option<&str>| {
        let auth = authorization.map_or(String::new(), |a| format!("Authorization: {a}\r\n"));
        http(
            &b,
            &format!("GET {path} HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n\r\n"),
        )
    };
    let open = get("/metrics", None);
    assert!(open.starts_with("HTTP/1.1 401"), "{open}");
    assert!(
        open.to_ascii_lowercase()
            .contains("www-authenticate: bearer"),
        "{open}"
    );
    assert!(!open.contains("peregrine_"), "{open}");
    for wrong in [
        "Bearer scrape-me-7f3b",
        "Bearer scrape-me",
        "Basic scrape-me-7f3a",
    ] {
        let answer = get("/metrics", Some(wrong));
        assert!(answer.starts_with("HTTP/1.1 401"), "{wrong}: {answer}");
    }
    let scraped = get("/metrics", Some("Bearer scrape-me-7f3a"));
    assert!(scraped.starts_with("HTTP/1.1 200"), "{scraped}");
    assert!(scraped.contains("peregrine_"), "{scraped}");
    for path in ["/healthz", "/readyz"] {
        let answer = get(path, None);
        assert!(answer.starts_with("HTTP/1.1 200"), "{path}: {answer}");
    }
    // The token is never logged.
    assert!(!b.log().contains("scrape-me-7f3a"), "{}", b.log());
}

#[test]
fn an_empty_metrics_token_file_stops_the_broker_at_start() {
    let dir = tempfile::tempdir().expect("temp dir");
    let token_file = dir.path().join("metrics-token");
    std::fs::write(&token_file, "\n").expect("write token");
    let data = dir.path().join("data");
    let (status, out) = common::serve_refused(
        &data,
        &["--metrics-token-file", token_file.to_str().expect("path")],
    );
    assert!(
        status.is_some_and(|s| !s.success()) && out.contains("--metrics-token-file"),
        "an empty token file was accepted ({status:?}): {out}"
    );
}

const ACL_SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/http_auth/acl_cases.py");
const ADMIN_KEY: &str = "AKIDADMIN";
const ADMIN_SECRET: &str = "admin/secret";

/// Runs one case of acl_cases.py; panics with its output unless it printed `ok CASE`.
fn acl_case(b: &Broker, case: &str, query: bool, key: &str, secret: &str) {
    let python = python();
    let mut cmd = Command::new(&python);
    cmd.arg(ACL_SCRIPT)
        .args([case, &format!("http://{}", b.http_addr)])
        .args([ADMIN_KEY, ADMIN_SECRET, key, secret]);
    if query {
        cmd.arg("--query")
            .env("PEREGRINE_BOTO3_QUERY", query_boto3());
    }
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{python} not runnable ({e}): run .ci/run"));
    let (status, out) = finish(child, SCRIPT_TIMEOUT);
    assert!(
        status.is_some_and(|s| s.success()) && out.contains(&format!("ok {case}")),
        "{case} query={query} key={key} failed ({status:?}):\n{out}"
    );
}

/// With `--acls`, a caller no ACL allows gets SQS's AccessDenied / SNS's
/// AuthorizationError for every action, sees nothing in the lists, and changes nothing;
/// the super-user's key is served.
#[test]
fn acls_refuse_sqs_and_sns_actions_with_their_own_errors_and_change_nothing() {
    let b = Broker::start_with(&[
        "--acls",
        "--super-user",
        &format!("User:{ADMIN_KEY}"),
        "--http-auth",
        "--http-access-key",
        &format!("{ADMIN_KEY}:{ADMIN_SECRET}"),
        "--http-access-key",
        "AKIDBOB:bob-secret",
    ]);
    acl_case(&b, "sqs_denied", false, "AKIDBOB", "bob-secret");
    acl_case(&b, "sqs_denied", true, "AKIDBOB", "bob-secret");
    acl_case(&b, "sns_denied", false, "AKIDBOB", "bob-secret");
    acl_case(&b, "sns_confirm", false, "AKIDBOB", "bob-secret");
    // The refusals are counted as refused accesses.
    let page = http(
        &b,
        "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(
        page.lines()
            .any(|l| l.starts_with("peregrine_errors_total{")
                && l.contains("code=\"AccessRefused\"")
                && !l.ends_with(" 0")),
        "{page}"
    );
}

/// `--require-auth http` refuses unsigned SQS and SNS requests as `--http-auth` does;
/// signed ones by a known key are served, and the operator routes stay open.
#[test]
fn require_auth_http_refuses_unsigned_requests() {
    let b = Broker::start_with(&[
        "--require-auth",
        "http",
        "--http-access-key",
        &format!("{KEY}:{SECRET}"),
    ]);
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
    case(&b, "sqs", false, KEY, SECRET, "ok");
    let health = http(
        &b,
        "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
}

/// Wrong secrets are failed logins: past `--login-failures-per-minute` of them from one
/// address its requests are refused unchecked (Throttling), a right signature included
/// (one shard, so that every connection meets the same counts).
#[test]
fn wrong_signatures_past_the_limit_refuse_the_address_for_a_minute() {
    let b = Broker::start_with(&[
        "--shards",
        "1",
        "--login-failures-per-minute",
        "2",
        "--http-auth",
        "--http-access-key",
        &format!("{KEY}:{SECRET}"),
    ]);
    case(&b, "sqs", false, KEY, SECRET, "ok");
    for _ in 0..2 {
        case(&b, "sqs", false, KEY, "wrong", "SignatureDoesNotMatch");
    }
    case(&b, "sqs", false, KEY, SECRET, "Throttling");
    let log = b.log();
    assert!(
        log.lines()
            .any(|l| l.contains("login failed") && l.contains("http") && l.contains(KEY)),
        "{log}"
    );
    assert!(!log.contains(SECRET), "a secret was logged:\n{log}");
}

/// `peregrine user add-key NAME`: the key id and secret it prints once.
fn add_key(b: &Broker, user: &str) -> (String, String) {
    let out = admin_cli(b, &["user", "add-key", user], "");
    let field = |name: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(name))
            .map(str::to_string)
            .unwrap_or_else(|| panic!("no {name} in {out}"))
    };
    (
        field("aws_access_key_id = "),
        field("aws_secret_access_key = "),
    )
}

/// A user's access key from the user store signs as that user: boto3 with bob's key is
/// served where bob's ACLs allow (queues prefixed `acl-ok-`) and refused elsewhere; a
/// wrong secret for it is refused, and so is the key once removed.
#[test]
fn a_users_access_key_signs_as_that_user() {
    let dir = tempfile::tempdir().expect("temp dir");
    let b = common::broker_with_admin(
        dir.path(),
        &[
            "--acls",
            "--super-user",
            "User:admin",
            "--require-auth",
            "http",
        ],
    );
    let (admin_key, admin_secret) = add_key(&b, "admin");
    let bob_password = admin_cli(&b, &["user", "add", "bob"], "bob-password\n");
    assert!(bob_password.contains("bob"), "{bob_password}");
    let (bob_key, bob_secret) = add_key(&b, "bob");
    admin_cli(
        &b,
        &[
            "acl",
            "add",
            "--allow-principal",
            "User:bob",
            "--operation",
            "All",
            "--queue",
            "acl-ok-",
            "--resource-pattern-type",
            "prefixed",
        ],
        "",
    );
    let script = |case: &str, query: bool| {
        let python = python();
        let mut cmd = Command::new(&python);
        cmd.arg(ACL_SCRIPT)
            .args([case, &format!("http://{}", b.http_addr)])
            .args([&admin_key, &admin_secret, &bob_key, &bob_secret]);
        if query {
            cmd.arg("--query")
                .env("PEREGRINE_BOTO3_QUERY", query_boto3());
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{python} not runnable ({e}): run .ci/run"));
        let (status, out) = finish(child, SCRIPT_TIMEOUT);
        assert!(
            status.is_some_and(|s| s.success()) && out.contains(&format!("ok {case}")),
            "{case} query={query} failed ({status:?}):\n{out}"
        );
    };
    script("sqs_allowed", false);
    script("sqs_allowed", true);
    script("sqs_denied", false);
    case(
        &b,
        "sqs",
        false,
        &bob_key,
        "not-bobs-secret",
        "SignatureDoesNotMatch",
    );
    admin_cli(&b, &["user", "remove-key", &bob_key], "");
    case(
        &b,
        "sqs",
        false,
        &bob_key,
        &bob_secret,
        "InvalidClientTokenId",
    );
    assert!(!b.log().contains(&bob_secret), "a secret was logged");
}

/// On a `--require-auth` HTTPS listener with `--tls-client-ca`, a client's verified
/// certificate authenticates it: unsigned requests are served as `User:<CN>` (a
/// super-user here), another certificate's subject gets the ACLs of its own principal
/// (none: AccessDenied), and the plaintext listener still wants a signature.
#[test]
fn a_verified_client_certificate_authenticates_unsigned_https_requests() {
    use common::pki::{arg, Pki};
    let pki = Pki::new("http auth CA");
    let (cert, key) = pki.server();
    let (billing_cert, billing_key) = pki.issue("billing", "billing", &[]);
    let (other_cert, other_key) = pki.issue("other", "other", &[]);
    let b = Broker::start_with(&[
        "--tls-cert",
        arg(&cert),
        "--tls-key",
        arg(&key),
        "--tls-client-ca",
        arg(&pki.ca()),
        "--http-tls-addr",
        "127.0.0.1:0",
        "--require-auth",
        "http,http-tls",
        "--acls",
        "--super-user",
        "User:billing",
    ]);
    let https = b
        .ready_line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("http_tls="))
        .unwrap_or_else(|| panic!("no http_tls= in {}", b.ready_line))
        .to_string();
    let run = |cert: &std::path::Path, key: &std::path::Path, expect: &str| {
        let python = python();
        let child = Command::new(&python)
            .arg(ACL_SCRIPT)
            .args(["mtls_unsigned", &format!("https://{https}"), arg(&pki.ca())])
            .args([arg(cert), arg(key), expect])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{python} not runnable ({e}): run .ci/run"));
        let (status, out) = finish(child, SCRIPT_TIMEOUT);
        assert!(
            status.is_some_and(|s| s.success()) && out.contains("ok mtls_unsigned"),
            "mtls_unsigned {expect} failed ({status:?}):\n{out}"
        );
    };
    run(&billing_cert, &billing_key, "ok");
    run(&other_cert, &other_key, "AccessDenied");
    let body = "Action=ListQueues";
    let plain = http(
        &b,
        &format!("POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()),
    );
    assert!(plain.contains("MissingAuthenticationToken"), "{plain}");
}

/// Without `--http-auth`, an unknown key is anyone's (served as User:ANONYMOUS), but a
/// request naming a known key must verify: a wrong secret for it is refused.
#[test]
fn a_known_key_is_verified_even_where_auth_is_not_required() {
    let b = Broker::start_with(&["--http-access-key", &format!("{KEY}:{SECRET}")]);
    case(&b, "sqs", false, "AKIDUNKNOWN", "anything", "ok");
    case(&b, "sqs", false, KEY, SECRET, "ok");
    case(
        &b,
        "sqs",
        false,
        KEY,
        "not-the-secret",
        "SignatureDoesNotMatch",
    );
}
