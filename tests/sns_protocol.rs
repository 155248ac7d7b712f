//! The SNS API's HTTP surface, byte by byte: malformed forms and bad parameters are
//! answered with SNS's XML errors, oversized bodies with 413, and the broker keeps
//! serving (after each, a ListTopics on a new connection succeeds and shows that nothing
//! was created). Also the routing: SNS and SQS share the listener, told apart by the
//! form's `Action`, and SNS requests are counted by action.

mod common;
use common::http_raw::{exchange, parse, Answer};
use common::{promtool_check, Broker};

const FORM: &str = "application/x-www-form-urlencoded; charset=utf-8";
const SNS_XMLNS: &str = r#"xmlns="http://sns.amazonaws.com/doc/2010-03-31/""#;
const TOPIC: &str = "arn:aws:sns:us-east-1:000000000000";

/// A form POST to `/`, `Connection: close`.
fn form(addr: &str, body: &[u8]) -> Answer {
    let mut raw = format!(
        "POST / HTTP/1.1\r\nHost: sns.test:1234\r\nConnection: close\r\nContent-Type: {FORM}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    raw.extend_from_slice(body);
    parse(&exchange(addr, &raw))
}

fn get(addr: &str, target: &str) -> Answer {
    let raw = format!("GET {target} HTTP/1.1\r\nHost: sns.test:1234\r\nConnection: close\r\n\r\n");
    parse(&exchange(addr, raw.as_bytes()))
}

/// An SNS error document with this code.
fn sns_error(a: &Answer, status: u16, code: &str, what: &str) {
    assert_eq!(a.status, status, "{what}: {}", a.body);
    assert!(
        a.head.contains("content-type: text/xml"),
        "{what}: {}",
        a.head
    );
    assert!(
        a.body.contains("<ErrorResponse") && a.body.contains(SNS_XMLNS),
        "{what}: {}",
        a.body
    );
    assert!(
        a.body.contains(&format!("<Code>{code}</Code>")) && a.body.contains("<RequestId>"),
        "{what}: {}",
        a.body
    );
    assert!(a.body.contains("<Type>Sender</Type>"), "{what}: {}", a.body);
}

/// The broker still answers SNS, and holds no topic.
fn still_serving_and_empty(addr: &str, after: &str) {
    let a = form(addr, b"Action=ListTopics&Version=2010-03-31");
    assert_eq!(a.status, 200, "ListTopics after {after}: {}", a.body);
    assert!(a.body.contains("<ListTopicsResponse"), "{}", a.body);
    assert!(
        !a.body.contains("arn:aws:sns"),
        "after {after} a topic exists: {}",
        a.body
    );
}

#[test]
fn malformed_sns_requests_get_sns_errors_and_the_broker_keeps_serving() {
    let b = Broker::start();
    let addr = &b.http_addr;
    still_serving_and_empty(addr, "nothing");

    let a = form(addr, b"Action=CreateTopic&Version=2010-03-31");
    sns_error(&a, 400, "InvalidParameter", "CreateTopic without Name");
    still_serving_and_empty(addr, "CreateTopic without Name");

    let a = form(addr, b"Action=CreateTopic&Version=2010-03-31&Name=%zz");
    assert_eq!(a.status, 400, "{}", a.body);
    assert!(a.body.contains("<ErrorResponse"), "{}", a.body);
    still_serving_and_empty(addr, "a bad % escape");

    let a = form(addr, b"Action=CreateTopic&Version=2010-03-31&Name=\xff\xfe");
    assert_eq!(a.status, 400, "{}", a.body);
    still_serving_and_empty(addr, "a name that is not UTF-8");

    let publish = format!(
        "Action=Publish&Version=2010-03-31&TopicArn={TOPIC}:none&Message=x&MessageAttributes.entry.1.Name=k"
    );
    let a = form(addr, publish.as_bytes());
    assert_eq!(a.status, 400, "an attribute without a value: {}", a.body);
    assert!(a.body.contains("<ErrorResponse"), "{}", a.body);
    still_serving_and_empty(addr, "an attribute without a value");

    // boto3 cannot send an empty batch (it checks the list's minimum); SNS answers it.
    let created = form(addr, b"Action=CreateTopic&Version=2010-03-31&Name=batch");
    assert_eq!(created.status, 200, "{}", created.body);
    let empty = format!("Action=PublishBatch&Version=2010-03-31&TopicArn={TOPIC}:batch");
    sns_error(
        &form(addr, empty.as_bytes()),
        400,
        "EmptyBatchRequest",
        "no entries",
    );
    let deleted = format!("Action=DeleteTopic&Version=2010-03-31&TopicArn={TOPIC}:batch");
    assert_eq!(form(addr, deleted.as_bytes()).status, 200);
    still_serving_and_empty(addr, "an empty batch");

    let mut big = b"Action=Publish&Version=2010-03-31&TopicArn=x&Message=".to_vec();
    big.resize((1 << 20) + 1, b'a');
    let a = form(addr, &big);
    assert!(
        a.status == 413 || a.status == 0,
        "a 1 MiB + 1 body: {}",
        a.status
    );
    still_serving_and_empty(addr, "a body over 1 MiB");
}

#[test]
fn sns_and_sqs_share_the_listener() {
    let b = Broker::start();
    let addr = &b.http_addr;
    let a = form(addr, b"Action=CreateTopic&Version=2010-03-31&Name=shared");
    assert_eq!(a.status, 200, "{}", a.body);
    assert!(
        a.body.contains("<CreateTopicResponse") && a.body.contains(SNS_XMLNS),
        "{}",
        a.body
    );
    assert!(
        a.body
            .contains(&format!("<TopicArn>{TOPIC}:shared</TopicArn>")),
        "{}",
        a.body
    );
    let a = form(
        addr,
        b"Action=CreateQueue&Version=2012-11-05&QueueName=shared",
    );
    assert_eq!(a.status, 200, "{}", a.body);
    assert!(a.body.contains("<CreateQueueResponse"), "{}", a.body);
    // An SNS action named in the query string, as a SubscribeURL is visited.
    let a = get(addr, "/?Action=ListTopics&Version=2010-03-31");
    assert_eq!(a.status, 200, "{}", a.body);
    assert!(a.body.contains(&format!("{TOPIC}:shared")), "{}", a.body);
    let a = get(addr, "/?Action=ListQueues&Version=2012-11-05");
    assert_eq!(a.status, 200, "{}", a.body);
    assert!(a.body.contains("/000000000000/shared"), "{}", a.body);
    // SNS actions the broker does not serve are SNS's to refuse, saying so.
    let a = form(addr, b"Action=CreatePlatformEndpoint&Version=2010-03-31");
    assert_eq!(a.status, 400, "{}", a.body);
    assert!(
        a.body.contains(SNS_XMLNS) && a.body.contains("<Code>InvalidAction</Code>"),
        "{}",
        a.body
    );
    // An action neither API has is SQS's to refuse, as before SNS existed.
    let a = form(addr, b"Action=Bogus&Version=2010-03-31");
    assert_eq!(a.status, 400, "{}", a.body);
    assert!(a.body.contains("<Code>InvalidAction</Code>"), "{}", a.body);
    assert_eq!(get(addr, "/healthz").status, 200);
}

/// `GET /metrics` on a new connection: the page.
fn scrape(addr: &str) -> String {
    let a = get(addr, "/metrics");
    assert_eq!(a.status, 200, "{}", a.body);
    a.body
}

/// The sum of the samples of `name` whose labels include every one of `having`.
fn sum(page: &str, name: &str, having: &[&str]) -> u64 {
    page.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' '))
        .filter(|(series, _)| {
            let (n, labels) = series.split_once('{').unwrap_or((series, ""));
            n == name && having.iter().all(|h| labels.contains(h))
        })
        .map(|(_, v)| v.parse::<u64>().expect("a whole count"))
        .sum()
}

/// Every SNS request counts once in `requests_total{protocol="http"}` under its action,
/// whether it succeeded or not; a missing topic counts in `errors_total`.
#[test]
fn sns_requests_are_counted_by_action() {
    let b = Broker::start();
    let addr = &b.http_addr;
    assert_eq!(form(addr, b"Action=CreateTopic&Name=counted").status, 200);
    let publish = format!("Action=Publish&TopicArn={TOPIC}:counted&Message=one");
    assert_eq!(form(addr, publish.as_bytes()).status, 200);
    // Refused before the engine, still a Publish.
    let publish = format!("Action=Publish&TopicArn={TOPIC}:counted&Message=");
    assert_eq!(form(addr, publish.as_bytes()).status, 400);
    let missing = format!("Action=Publish&TopicArn={TOPIC}:missing&Message=x");
    sns_error(
        &form(addr, missing.as_bytes()),
        404,
        "NotFound",
        "a missing topic",
    );
    assert_eq!(get(addr, "/?Action=ListTopics").status, 200);

    let page = scrape(addr);
    promtool_check(&page);
    let requests = |api: &str| {
        let api = format!("api=\"{api}\"");
        sum(
            &page,
            "peregrine_requests_total",
            &["protocol=\"http\"", &api],
        )
    };
    for (api, want) in [("CreateTopic", 1), ("Publish", 3), ("ListTopics", 1)] {
        assert_eq!(requests(api), want, "{api}\n{page}");
    }
    let http = ["protocol=\"http\""];
    assert_eq!(
        sum(&page, "peregrine_requests_total", &http),
        5,
        "nothing else is counted\n{page}"
    );
    assert!(
        sum(&page, "peregrine_errors_total", &http) >= 1,
        "the missing topic is not counted\n{page}"
    );
}

/// The SNS signing certificate is served, unsigned and without a token, at the path its
/// fingerprint names (`/SimpleNotificationService-{first 16 bytes of its SHA-256}.pem`);
/// it is the data directory's; other methods get 405 and another `.pem` path 404.
#[test]
fn the_signing_certificate_is_served_at_its_fingerprint_path() {
    use rsa::sha2::{Digest, Sha256};
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    let b = Broker::start();
    let pem = std::fs::read(b.data_dir.join("meta/sns-signing-cert.pem")).expect("cert file");
    let der = CertificateDer::from_pem_slice(&pem).expect("a PEM certificate");
    let path = format!(
        "/SimpleNotificationService-{}.pem",
        hex::encode(&Sha256::digest(&der[..])[..16])
    );
    let a = get(&b.http_addr, &path);
    assert_eq!(a.status, 200, "{}", a.body);
    assert!(
        a.head.contains("content-type: application/x-pem-file"),
        "{}",
        a.head
    );
    assert_eq!(
        a.body.as_bytes(),
        &pem[..],
        "the data directory's certificate"
    );
    let raw = format!(
        "POST {path} HTTP/1.1\r\nHost: h\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
    );
    assert_eq!(parse(&exchange(&b.http_addr, raw.as_bytes())).status, 405);
    let other = get(
        &b.http_addr,
        "/SimpleNotificationService-00000000000000000000000000000000.pem",
    );
    assert_eq!(other.status, 404, "{}", other.body);
}
