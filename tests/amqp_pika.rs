//! pika (Python, `BlockingConnection`) running typical RabbitMQ programs against the real
//! broker's AMQP 0-9-1 listener, changed only in host and port. The programs are the
//! functions of tests/amqp/pika_cases.py, one per case; this file starts brokers, runs
//! them, and drives the steps a script cannot do alone (kill -9, restarts, the native
//! client and kcat on the other side of one engine).
//!
//! The scripts encode RabbitMQ's behaviour: every case but `delayed` (RabbitMQ needs its
//! delayed-message plugin for it) was run against RabbitMQ 3.10, e.g.
//!
//! ```text
//! RABBITMQ_NODE_PORT=5673 RABBITMQ_NODENAME=ref@localhost rabbitmq-server -detached
//! target/ci-venv/bin/python tests/amqp/pika_cases.py 127.0.0.1:5673 work_queue --rabbitmq
//! f=$(mktemp); PY=target/ci-venv/bin/python
//! $PY tests/amqp/pika_cases.py 127.0.0.1:5673 confirm_publish q1 $f 200 --rabbitmq
//! $PY tests/amqp/pika_cases.py 127.0.0.1:5673 confirm_verify q1 $f --rabbitmq
//! rabbitmqctl -n ref@localhost stop
//! ```
//!
//! (`--rabbitmq` leaves out Peregrine-only checks; run the script without a case for the
//! list.) The restart case ran against a node of its own, which `restart_reference`
//! restarts with `rabbitmqctl stop_app`/`start_app` where Peregrine's test uses kill -9:
//!
//! ```text
//! RABBITMQ_NODE_PORT=5674 RABBITMQ_DIST_PORT=25774 RABBITMQ_NODENAME=h5ref@localhost \
//!   rabbitmq-server -detached
//! RABBITMQ_NODENAME=h5ref@localhost $PY tests/amqp/pika_cases.py 127.0.0.1:5674 \
//!   restart_reference --rabbitmq
//! ```
//!
//! `.ci/run` installs pika 1.4.4 into target/ci-venv; `PEREGRINE_PYTHON` names the
//! Python to use (default: that venv's when it exists, else `python3`). Without pika every
//! case fails and says how to install it: nothing is skipped.

mod common;
use common::scripts::{finish, python};
use common::{run_cli, Broker};
use peregrine::client::Client;
use peregrine::native::messages::{BindingSpec, ExchangeType, PublishSpec, QueueSpec, TopicSpec};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/amqp/pika_cases.py");
/// How long one script run may take; each wait inside it is bounded by 10 s.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(120);
/// The exit status pika_cases.py uses when `import pika` fails.
const EXIT_NO_PIKA: i32 = 3;
/// Confirmed publishes to see before the kill -9 (mid-stream, not at the start).
const CONFIRMED_BEFORE_KILL: usize = 300;
/// Polling step while waiting for a child process or a file to grow.
const POLL: Duration = Duration::from_millis(20);

fn spawn(addr: &str, case: &str, args: &[&str]) -> Child {
    let python = python();
    Command::new(&python)
        .arg(SCRIPT)
        .arg(addr)
        .arg(case)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{python} not runnable ({e}): run .ci/run, which installs it"))
}

/// Runs one case to completion; panics with its output unless it printed `ok CASE`.
fn pika(addr: &str, case: &str, args: &[&str]) -> String {
    let (status, out) = finish(spawn(addr, case, args), SCRIPT_TIMEOUT);
    check(case, status, &out);
    out
}

fn check(case: &str, status: Option<ExitStatus>, out: &str) {
    match status {
        None => panic!("pika case {case} ran past {SCRIPT_TIMEOUT:?}:\n{out}"),
        Some(s) if s.code() == Some(EXIT_NO_PIKA) => panic!(
            "pika is not installed for {}: run .ci/run, or `pip install pika==1.4.4` and \
             set PEREGRINE_PYTHON\n{out}",
            python()
        ),
        Some(s) => assert!(
            s.success() && out.contains(&format!("ok {case}")),
            "pika case {case} failed ({s}):\n{out}"
        ),
    }
}

/// Addresses of the broker that cases without a restart share.
struct Shared {
    amqp: String,
    native: String,
    kafka: String,
}

/// Started by the first case that asks; stopped when the test process exits.
static SHARED: Mutex<Option<Broker>> = Mutex::new(None);

extern "C" fn stop_shared() {
    // Dropping the broker kills its process and removes its data directory.
    let broker = SHARED.lock().unwrap_or_else(PoisonError::into_inner).take();
    drop(broker);
}

fn shared() -> Shared {
    let mut slot = SHARED.lock().unwrap_or_else(PoisonError::into_inner);
    let b = slot.get_or_insert_with(|| {
        let b = Broker::start();
        // SAFETY: registers a plain `extern "C" fn` with no arguments; it runs at exit.
        unsafe {
            libc::atexit(stop_shared);
        }
        b
    });
    Shared {
        amqp: b.amqp_addr.clone(),
        native: b.addr.clone(),
        kafka: b.kafka_addr.clone(),
    }
}

// 1. Tutorials

#[test]
fn tutorial_work_queue_dispatches_fairly_with_prefetch_1_and_manual_acks() {
    pika(&shared().amqp, "work_queue", &[]);
}

#[test]
fn tutorial_publish_subscribe_fans_out_to_exclusive_server_named_queues() {
    pika(&shared().amqp, "pubsub", &[]);
}

#[test]
fn another_connection_is_refused_an_exclusive_queue_with_405() {
    pika(&shared().amqp, "exclusive_locked", &[]);
}

#[test]
fn an_exclusive_consume_of_a_queue_with_a_consumer_is_refused_with_403() {
    pika(&shared().amqp, "exclusive_consumer", &[]);
}

#[test]
fn x_max_length_bytes_with_reject_publish_nacks_the_publish_past_it() {
    pika(&shared().amqp, "max_length_bytes", &[]);
}

#[test]
fn tutorial_routing_delivers_by_exact_key_over_a_direct_exchange() {
    pika(&shared().amqp, "routing", &[]);
}

#[test]
fn tutorial_topics_match_one_word_with_star_and_any_with_hash() {
    pika(&shared().amqp, "topics", &[]);
}

#[test]
fn tutorial_rpc_answers_to_an_exclusive_reply_queue_by_correlation_id() {
    pika(&shared().amqp, "rpc", &[]);
}

#[test]
fn rpc_with_direct_reply_to_needs_no_reply_queue() {
    pika(&shared().amqp, "rpc_direct_reply_to", &[]);
}

// 2.-4. Properties, priority, dead letters

#[test]
fn a_payment_queue_receives_every_message_property_unchanged() {
    pika(&shared().amqp, "payments", &[]);
}

#[test]
fn priority_9_published_after_1_is_delivered_first() {
    pika(&shared().amqp, "priority", &[]);
}

#[test]
fn a_queue_without_x_max_priority_accepts_and_keeps_any_priority() {
    pika(&shared().amqp, "priority_plain", &[]);
}

#[test]
fn expired_and_refused_messages_go_to_the_dead_letter_exchange_with_its_key() {
    pika(&shared().amqp, "dead_letters", &[]);
}

#[test]
fn past_x_delivery_limit_a_requeued_message_is_dead_lettered() {
    pika(&shared().amqp, "delivery_limit", &[]);
}

#[test]
fn x_max_retries_is_an_alias_of_x_delivery_limit() {
    pika(&shared().amqp, "max_retries", &[]);
}

// 5. Delayed exchange

#[test]
fn a_delayed_exchange_holds_a_message_for_its_x_delay() {
    pika(&shared().amqp, "delayed", &[]);
}

// 6. Publisher confirms across kill -9

fn count_lines(path: &std::path::Path) -> usize {
    std::fs::read_to_string(path)
        .map(|s| s.lines().count())
        .unwrap_or(0)
}

#[test]
fn no_confirmed_message_is_lost_or_reordered_across_kill_9() {
    let mut b = Broker::start();
    let tmp = tempfile::tempdir().expect("temp dir");
    let confirmed = tmp.path().join("confirmed");
    let file = confirmed.to_string_lossy().to_string();
    let mut publisher = spawn(&b.amqp_addr, "confirm_publish", &["confirmed-q", &file]);
    let deadline = Instant::now() + SCRIPT_TIMEOUT;
    while count_lines(&confirmed) < CONFIRMED_BEFORE_KILL {
        if Instant::now() > deadline || matches!(publisher.try_wait(), Ok(Some(_))) {
            let (status, out) = finish(publisher, Duration::ZERO);
            panic!(
                "{} confirms before the publisher ended ({status:?}):\n{out}",
                count_lines(&confirmed)
            );
        }
        std::thread::sleep(POLL);
    }
    b.kill9();
    let (status, out) = finish(publisher, SCRIPT_TIMEOUT);
    check("confirm_publish", status, &out);
    assert!(out.contains("stopped at"), "{out}");
    b.restart();
    let out = pika(&b.amqp_addr, "confirm_verify", &["confirmed-q", &file]);
    eprintln!("{out}");
}

// 7.-9. Redelivery, basic.get and mandatory, overflow

#[test]
fn unacked_messages_of_a_dropped_connection_are_redelivered_to_another_consumer() {
    pika(&shared().amqp, "redelivery", &[]);
}

#[test]
fn basic_get_answers_get_empty_and_mandatory_unroutable_publishes_come_back() {
    pika(&shared().amqp, "get_and_mandatory", &[]);
}

#[test]
fn max_length_nacks_a_publish_with_reject_publish_and_drops_the_head_otherwise() {
    pika(&shared().amqp, "overflow", &[]);
}

// 10. One engine under every protocol

fn kcat(kafka: &str, args: &[&str]) -> String {
    let out = Command::new("kcat")
        .args(["-b", kafka])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("kcat not runnable ({e}): run .ci/run, which installs it"));
    assert!(
        out.status.success(),
        "kcat failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn an_amqp_publish_to_an_exchange_bound_to_a_topic_is_a_record_with_header_properties() {
    let s = shared();
    let mut c = Client::connect(&s.native).expect("connect");
    c.create_topic(TopicSpec {
        name: "pika-records".into(),
        partitions: 1,
        retention_ms: None,
        retention_bytes: None,
        segment_bytes: None,
    })
    .expect("create topic");
    c.declare_exchange("pika-to-kafka", ExchangeType::Direct)
        .expect("declare exchange");
    c.bind(BindingSpec {
        exchange: "pika-to-kafka".into(),
        topic: Some("pika-records".into()),
        routing_key: "orders".into(),
        ..BindingSpec::default()
    })
    .expect("bind the topic");
    pika(&s.amqp, "publish_to_exchange", &["pika-to-kafka", "orders"]);
    let records = kcat(
        &s.kafka,
        &[
            "-C",
            "-t",
            "pika-records",
            "-p",
            "0",
            "-o",
            "0",
            "-e",
            "-f",
            "%h\t%s\n",
        ],
    );
    let lines: Vec<&str> = records.lines().collect();
    assert_eq!(lines.len(), 1, "{records}");
    let (headers, body) = lines[0].split_once('\t').unwrap_or_default();
    assert_eq!(body, r#"{"to":"kafka"}"#);
    for value in ["abc-123", "application/json", "rec-1", "corr-9"] {
        assert!(headers.contains(value), "{value} not in headers {headers}");
    }
}

#[test]
fn a_queue_filled_natively_is_consumed_with_pika_and_the_other_way_round() {
    let s = shared();
    let mut c = Client::connect(&s.native).expect("connect");
    c.declare_queue(QueueSpec {
        name: "native-to-pika".into(),
        ..QueueSpec::default()
    })
    .expect("declare");
    for i in 0..3 {
        let spec = PublishSpec {
            durable: true,
            headers: vec![("source".into(), "native".into())],
            ..PublishSpec::default()
        };
        c.publish("native-to-pika", spec, format!("n-{i}").as_bytes())
            .expect("publish");
    }
    let out = pika(&s.amqp, "consume_expect", &["native-to-pika", "3", "n"]);
    assert_eq!(out.matches("'source': 'native'").count(), 3, "{out}");
    assert_eq!(
        c.queue_stats("native-to-pika").expect("stats").in_flight,
        0,
        "pika's acks settled the native messages"
    );

    pika(&s.amqp, "fill", &["pika-to-native", "3", "p"]);
    let got = c
        .receive("pika-to-native", 10, 2_000, true)
        .expect("receive");
    let bodies: Vec<String> = got
        .iter()
        .map(|r| String::from_utf8_lossy(&r.body).into_owned())
        .collect();
    assert_eq!(bodies, ["p-0", "p-1", "p-2"]);
    for r in &got {
        assert!(
            r.delivery
                .headers
                .iter()
                .any(|(k, v)| k == "source" && v == "pika"),
            "headers {:?}",
            r.delivery.headers
        );
    }
}

fn queue_line(list: &str, name: &str) -> Option<Vec<String>> {
    list.lines()
        .map(|l| l.split('\t').map(String::from).collect::<Vec<_>>())
        .find(|f| f.first().is_some_and(|n| n == name))
}

#[test]
fn queues_declared_with_pika_are_listed_and_keep_persistent_messages_across_kill_9() {
    let mut b = Broker::start();
    pika(&b.amqp_addr, "fill", &["pika-kept", "5", "k"]);
    let args = [
        "pika-args",
        "0",
        "x",
        "x-max-priority=5",
        "x-message-ttl=600000",
        "x-max-length=100",
        "x-overflow=reject-publish",
    ];
    pika(&b.amqp_addr, "fill", &args);
    for round in ["before", "after"] {
        let list = run_cli(&["queue", "list", "--bootstrap", &b.addr], "");
        assert!(queue_line(&list, "pika-kept").is_some(), "{round}: {list}");
        let f = queue_line(&list, "pika-args").unwrap_or_default();
        assert!(
            f.get(1).is_some_and(|p| p == "5")
                && f.get(2).is_some_and(|t| t == "600000")
                && f.iter().any(|x| x == "100")
                && f.iter().any(|x| x == "RejectPublish"),
            "{round} the restart, pika-args is listed as {f:?}:\n{list}"
        );
        if round == "before" {
            b.kill9();
            b.restart();
        }
    }
    pika(&b.amqp_addr, "consume_expect", &["pika-kept", "5", "k"]);
}

// 11. Streams

#[test]
fn a_stream_takes_x_max_age_and_is_read_from_an_interval() {
    pika(&shared().amqp, "stream_ages", &[]);
}

#[test]
fn a_stream_fed_by_an_exchange_is_read_from_first_next_or_an_offset_and_is_a_topic() {
    let s = shared();
    pika(&s.amqp, "streams", &["pika-stream-orders"]);
    let records = kcat(
        &s.kafka,
        &[
            "-C",
            "-t",
            "pika-stream-orders",
            "-p",
            "0",
            "-o",
            "0",
            "-e",
            "-f",
            "%o %s\n",
        ],
    );
    let want: Vec<String> = (0..7).map(|i| format!("{i} s-{i}")).collect();
    assert_eq!(records.lines().collect::<Vec<_>>(), want, "{records}");
}

// 12.-14. Alternate, exchange-to-exchange, headers and internal exchanges

#[test]
fn an_alternate_exchange_takes_unroutable_messages_and_a_mandatory_one_returns_only_if_it_cannot() {
    pika(&shared().amqp, "alternate_exchange", &[]);
}

#[test]
fn exchange_bindings_route_two_hops_until_unbound_and_headers_match_all_or_any() {
    pika(&shared().amqp, "exchange_to_exchange", &[]);
}

#[test]
fn an_internal_exchange_is_reached_through_a_binding_and_refuses_a_direct_publish() {
    pika(&shared().amqp, "internal_exchange", &[]);
}

// 15.-18. Prefetch per channel, recover/reject/nack, cancel notices, queue lifetimes

#[test]
fn a_channel_wide_prefetch_bounds_two_consumers_together() {
    pika(&shared().amqp, "global_prefetch", &[]);
}

#[test]
fn recover_redelivers_reject_dead_letters_and_nack_multiple_requeues() {
    pika(&shared().amqp, "recover_reject_nack", &[]);
}

#[test]
fn deleting_a_consumed_queue_cancels_its_consumer_with_a_notification() {
    pika(&shared().amqp, "cancel_notification", &[]);
}

#[test]
fn an_auto_delete_queue_goes_with_its_consumer_and_an_unused_one_past_x_expires() {
    pika(&shared().amqp, "auto_delete_and_expires", &[]);
}

// 19. Restarts

#[test]
fn a_restart_keeps_durable_queues_exchanges_and_bindings_and_drops_the_rest() {
    let mut b = Broker::start();
    let tmp = tempfile::tempdir().expect("temp dir");
    let ready = tmp.path().join("ready");
    let file = ready.to_string_lossy().to_string();
    let mut holder = spawn(&b.amqp_addr, "restart_setup", &["restart", &file]);
    let deadline = Instant::now() + SCRIPT_TIMEOUT;
    while !ready.exists() {
        if Instant::now() > deadline || matches!(holder.try_wait(), Ok(Some(_))) {
            let (status, out) = finish(holder, Duration::ZERO);
            panic!("restart_setup never got ready ({status:?}):\n{out}");
        }
        std::thread::sleep(POLL);
    }
    // The exclusive queue's connection is still open when the broker dies.
    b.kill9();
    let _ = finish(holder, Duration::ZERO);
    b.restart();
    pika(&b.amqp_addr, "restart_verify", &["restart"]);
}
