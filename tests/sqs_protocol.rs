//! The SQS API's HTTP surface, byte by byte: malformed JSON, unknown targets and
//! actions, oversized bodies are answered with SQS's errors in the protocol the client
//! spoke (or 413), and the broker keeps serving: after each, a ListQueues on a new
//! connection succeeds and shows that nothing was created. Also the routing: SQS
//! requests on any path, operator routes untouched.

mod common;
use common::http_raw::{exchange, parse, Answer};
use common::{promtool_check, Broker};
use std::time::Duration;

const JSON: &str = "application/x-amz-json-1.0";
const FORM: &str = "application/x-www-form-urlencoded; charset=utf-8";

/// A POST with these headers and body, `Connection: close`.
fn post(addr: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Answer {
    let mut raw = format!("POST {path} HTTP/1.1\r\nHost: sqs.test:1234\r\nConnection: close\r\n");
    for (k, v) in headers {
        raw.push_str(&format!("{k}: {v}\r\n"));
    }
    raw.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    let mut raw = raw.into_bytes();
    raw.extend_from_slice(body);
    parse(&exchange(addr, &raw))
}

fn json(addr: &str, action: &str, body: &str) -> Answer {
    let target = format!("AmazonSQS.{action}");
    post(
        addr,
        "/",
        &[("Content-Type", JSON), ("X-Amz-Target", &target)],
        body.as_bytes(),
    )
}

fn form(addr: &str, path: &str, body: &str) -> Answer {
    post(addr, path, &[("Content-Type", FORM)], body.as_bytes())
}

/// The broker still answers SQS, and holds no queue.
fn still_serving_and_empty(addr: &str, after: &str) {
    let a = json(addr, "ListQueues", "{}");
    assert_eq!(a.status, 200, "ListQueues after {after}: {}", a.body);
    assert!(
        !a.body.contains("http://"),
        "after {after} a queue exists: {}",
        a.body
    );
}

#[test]
fn malformed_requests_get_sqs_errors_and_the_broker_keeps_serving() {
    let b = Broker::start();
    let addr = &b.http_addr;
    let a = json(addr, "ListQueues", "{not json");
    assert_eq!(a.status, 400, "{}", a.body);
    assert!(a.body.contains("SerializationException"), "{}", a.body);
    assert!(a.head.contains("x-amzn-requestid:"), "{}", a.head);
    still_serving_and_empty(addr, "malformed JSON");

    let a = json(addr, "CreateQueue", r#"{"QueueName": 7}"#);
    assert_eq!(a.status, 400, "{}", a.body);
    still_serving_and_empty(addr, "a number for a string");

    let a = json(addr, "Bogus", "{}");
    assert_eq!(a.status, 400, "{}", a.body);
    assert!(a.body.contains("UnknownOperationException"), "{}", a.body);
    still_serving_and_empty(addr, "an unknown X-Amz-Target");

    let a = form(addr, "/", "Version=2012-11-05&QueueName=x");
    assert_eq!(a.status, 400, "{}", a.body);
    assert!(a.head.contains("content-type: text/xml"), "{}", a.head);
    assert!(a.body.contains("<ErrorResponse"), "{}", a.body);
    still_serving_and_empty(addr, "a form without Action");

    let a = form(addr, "/", "Action=Bogus&Version=2012-11-05");
    assert_eq!(a.status, 400, "{}", a.body);
    assert!(a.body.contains("<Code>InvalidAction</Code>"), "{}", a.body);
    still_serving_and_empty(addr, "an unknown Action");

    let a = form(addr, "/", "Action=CreateQueue&QueueName=%zz");
    assert_eq!(a.status, 400, "{}", a.body);
    still_serving_and_empty(addr, "a bad % escape");

    let big = vec![b'a'; (1 << 20) + 1];
    let a = post(
        addr,
        "/",
        &[
            ("Content-Type", JSON),
            ("X-Amz-Target", "AmazonSQS.SendMessage"),
        ],
        &big,
    );
    assert!(
        a.status == 413 || a.status == 0,
        "a 1 MiB + 1 body: {}",
        a.status
    );
    still_serving_and_empty(addr, "a body over 1 MiB");
}

#[test]
fn errors_carry_the_query_code_for_json_clients() {
    let b = Broker::start();
    let addr = &b.http_addr;
    let a = json(addr, "GetQueueUrl", r#"{"QueueName": "nothing-here"}"#);
    assert_eq!(a.status, 400, "{}", a.body);
    assert!(
        a.head
            .contains("x-amzn-query-error: aws.simplequeueservice.nonexistentqueue;sender"),
        "{}",
        a.head
    );
    assert!(
        a.body.contains("com.amazonaws.sqs#QueueDoesNotExist"),
        "{}",
        a.body
    );
    assert!(
        a.head.contains(&format!("content-type: {JSON}")),
        "{}",
        a.head
    );
}

#[test]
fn query_requests_are_served_on_any_path_and_by_get() {
    let b = Broker::start();
    let addr = &b.http_addr;
    let a = form(
        addr,
        "/",
        "Action=CreateQueue&Version=2012-11-05&QueueName=form-q",
    );
    assert_eq!(a.status, 200, "{}", a.body);
    assert!(
        a.body
            .contains("<QueueUrl>http://sqs.test:1234/000000000000/form-q</QueueUrl>"),
        "the URL's host is the request's Host: {}",
        a.body
    );
    // Query clients may post to the queue's URL.
    let a = form(
        addr,
        "/000000000000/form-q",
        "Action=SendMessage&Version=2012-11-05&QueueUrl=http%3A%2F%2Fsqs.test%3A1234%2F000000000000%2Fform-q&MessageBody=hi",
    );
    assert_eq!(a.status, 200, "{}", a.body);
    assert!(
        a.body
            .contains("<MD5OfMessageBody>49f68a5c8493ec2c0bf489821c21fc3b</MD5OfMessageBody>"),
        "{}",
        a.body
    );
    // ... and leave QueueUrl out of the form (the AWS SDK for Java 1.x does).
    let a = form(
        addr,
        "/000000000000/form-q",
        "Action=SendMessage&Version=2012-11-05&MessageBody=hi",
    );
    assert_eq!(a.status, 200, "{}", a.body);
    let a = form(
        addr,
        "/000000000000/no-such-queue",
        "Action=SendMessage&Version=2012-11-05&MessageBody=hi",
    );
    assert!(
        a.body.contains("AWS.SimpleQueueService.NonExistentQueue"),
        "{}",
        a.body
    );
    let raw = "GET /?Action=ListQueues&Version=2012-11-05 HTTP/1.1\r\nHost: h:1\r\nConnection: close\r\n\r\n";
    let a = parse(&exchange(addr, raw.as_bytes()));
    assert_eq!(a.status, 200, "{}", a.body);
    assert!(a.body.contains("<ListQueuesResponse"), "{}", a.body);
    assert!(
        a.body.contains("http://h:1/000000000000/form-q"),
        "{}",
        a.body
    );
}

#[test]
fn operator_routes_are_untouched_by_the_sqs_api() {
    let b = Broker::start();
    let addr = &b.http_addr;
    let raw = b"GET /healthz HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n";
    assert_eq!(parse(&exchange(addr, raw)).status, 200);
    let raw = b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    assert_eq!(parse(&exchange(addr, raw)).status, 405);
    // A POST that is neither JSON with an SQS target nor a form is not SQS.
    let a = post(
        addr,
        "/",
        &[("Content-Type", "text/plain")],
        b"Action=ListQueues",
    );
    assert_eq!(a.status, 404, "{}", a.body);
}

#[test]
fn keep_alive_serves_pipelined_sqs_requests() {
    let b = Broker::start();
    let body = "{}";
    let one = format!(
        "POST / HTTP/1.1\r\nHost: b\r\nContent-Type: {JSON}\r\nX-Amz-Target: AmazonSQS.ListQueues\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let last = one.replace("Host: b\r\n", "Host: b\r\nConnection: close\r\n");
    let raw = format!("{one}{one}{last}");
    let answer = String::from_utf8_lossy(&exchange(&b.http_addr, raw.as_bytes())).to_string();
    assert_eq!(answer.matches("HTTP/1.1 200 OK").count(), 3, "{answer}");
}

/// A long poll does not hold a shutdown up: the broker stops at once and cleanly, and
/// the waiting client is told ServiceUnavailable before its connection closes.
#[test]
fn a_long_poll_does_not_hold_up_shutdown() {
    let mut b = Broker::start();
    let addr = b.http_addr.clone();
    let created = json(&addr, "CreateQueue", r#"{"QueueName": "waiting"}"#);
    assert_eq!(created.status, 200, "{}", created.body);
    let url = "http://sqs.test:1234/000000000000/waiting";
    let body = format!(r#"{{"QueueUrl": "{url}", "WaitTimeSeconds": 20}}"#);
    let poll = std::thread::spawn(move || json(&addr, "ReceiveMessage", &body));
    // Let the receive reach the engine and wait there.
    std::thread::sleep(Duration::from_millis(500));
    let started = std::time::Instant::now();
    assert!(b.stop(), "the broker did not exit cleanly");
    let took = started.elapsed();
    assert!(took < Duration::from_secs(10), "shutdown took {took:?}");
    let a = poll.join().expect("poll thread");
    assert!(
        a.status == 503 && a.body.contains("ServiceUnavailable"),
        "the waiting receive got {} {}",
        a.status,
        a.body
    );
}

/// `--max-long-polls` bounds SQS long polls too: past it a ReceiveMessage answers at once
/// (with no message: SQS clients just poll again), while the waiting one keeps waiting
/// and gets what arrives.
#[test]
fn long_polls_past_the_bound_answer_at_once() {
    let b = Broker::start_with(&["--shards", "1", "--max-long-polls", "1"]);
    let addr = b.http_addr.clone();
    let created = json(&addr, "CreateQueue", r#"{"QueueName": "bounded"}"#);
    assert_eq!(created.status, 200, "{}", created.body);
    let url = "http://b/000000000000/bounded";
    let receive = format!(r#"{{"QueueUrl": "{url}", "WaitTimeSeconds": 8}}"#);
    let waiting = {
        let (addr, receive) = (addr.clone(), receive.clone());
        std::thread::spawn(move || {
            let started = std::time::Instant::now();
            (json(&addr, "ReceiveMessage", &receive), started.elapsed())
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    let started = std::time::Instant::now();
    let second = json(&addr, "ReceiveMessage", &receive);
    let took = started.elapsed();
    assert_eq!(second.status, 200, "{}", second.body);
    assert!(!second.body.contains("Body"), "{}", second.body);
    assert!(
        took < Duration::from_secs(4),
        "the long poll past the bound waited {took:?}"
    );
    let send = format!(r#"{{"QueueUrl": "{url}", "MessageBody": "for the waiter"}}"#);
    assert_eq!(json(&addr, "SendMessage", &send).status, 200);
    let (first, took) = waiting.join().expect("waiting thread");
    assert_eq!(first.status, 200, "{}", first.body);
    assert!(first.body.contains("for the waiter"), "{}", first.body);
    assert!(
        took < Duration::from_secs(8),
        "the waiter was not woken: {took:?}"
    );
}

/// `GET /metrics` on a new connection: the page.
fn scrape(addr: &str) -> String {
    let raw = "GET /metrics HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n";
    let a = parse(&exchange(addr, raw.as_bytes()));
    assert_eq!(a.status, 200, "{}", a.body);
    a.body
}

/// The sum of the samples of `name` whose labels include every one of `having`
/// (`protocol="http"`, as the page writes them).
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

/// Every SQS request counts once in `requests_total{protocol="http"}` under its action,
/// whichever wire it came on and whether it succeeded; requests naming no served action
/// count as "unknown"; every refused request counts once in `errors_total` by the engine
/// kind it stands for; scrapes and other operator routes count nothing.
#[test]
fn sqs_requests_are_counted_by_action() {
    let b = Broker::start();
    let addr = &b.http_addr;
    let url = "http://b/000000000000/counted";
    let created = json(addr, "CreateQueue", r#"{"QueueName": "counted"}"#);
    assert_eq!(created.status, 200, "{}", created.body);
    let send = format!(r#"{{"QueueUrl": "{url}", "MessageBody": "one"}}"#);
    assert_eq!(json(addr, "SendMessage", &send).status, 200);
    let form_send = "Action=SendMessage&Version=2012-11-05&MessageBody=two";
    assert_eq!(form(addr, "/000000000000/counted", form_send).status, 200);
    // Refused before the engine, still a SendMessage.
    let bad = format!(r#"{{"QueueUrl": "{url}", "MessageBody": "x", "DelaySeconds": 901}}"#);
    assert_eq!(json(addr, "SendMessage", &bad).status, 400);
    let receive = format!(r#"{{"QueueUrl": "{url}", "MaxNumberOfMessages": 10}}"#);
    assert_eq!(json(addr, "ReceiveMessage", &receive).status, 200);
    let missing = r#"{"QueueUrl": "http://b/000000000000/missing", "MessageBody": "x"}"#;
    assert_eq!(json(addr, "SendMessage", missing).status, 400);
    assert_eq!(json(addr, "Bogus", "{}").status, 400);
    assert_eq!(json(addr, "AddPermission", "{}").status, 400);
    assert_eq!(form(addr, "/", "Version=2012-11-05").status, 400);
    let raw = "GET /healthz HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n";
    assert_eq!(parse(&exchange(addr, raw.as_bytes())).status, 200);

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
    for (api, want) in [
        ("CreateQueue", 1),
        ("SendMessage", 4),
        ("ReceiveMessage", 1),
        ("unknown", 3),
    ] {
        assert_eq!(requests(api), want, "{api}\n{page}");
    }
    let http = ["protocol=\"http\""];
    let all = sum(&page, "peregrine_requests_total", &http);
    assert_eq!(all, 9, "nothing else is counted\n{page}");
    // Every refused request counts once, whichever layer refused it: the bad delay as
    // InvalidRequest, the missing queue as UnknownQueue, the unknown, unsupported and
    // action-less requests as NotSupported.
    let errors = |code: &str| {
        let code = format!("code=\"{code}\"");
        sum(
            &page,
            "peregrine_errors_total",
            &["protocol=\"http\"", &code],
        )
    };
    for (code, want) in [
        ("UnknownQueue", 1),
        ("InvalidRequest", 1),
        ("NotSupported", 3),
    ] {
        assert_eq!(errors(code), want, "{code}\n{page}");
    }
    assert_eq!(
        sum(&page, "peregrine_errors_total", &http),
        5,
        "each error once\n{page}"
    );
    // Scrapes are not SQS requests.
    let again = scrape(addr);
    assert_eq!(sum(&again, "peregrine_requests_total", &http), 9, "{again}");
}
