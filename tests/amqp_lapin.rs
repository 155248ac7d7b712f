//! AMQP 0-9-1 through the real broker with lapin, the Rust RabbitMQ client, unchanged:
//! declarations and bindings, publisher confirms, consumers with prefetch and manual
//! acks, message properties, `basic.get`, requeue, channel errors, consumer cancel
//! notifications, bodies split over many frames, the work-queue tutorial and a clean
//! `connection.close`. Each case encodes what RabbitMQ does: every case but the bench
//! one was first run against RabbitMQ 3.10.8 (Debian's `rabbitmq-server`, started with
//! `RABBITMQ_NODE_PORT=5673 RABBITMQ_NODENAME=ref@localhost rabbitmq-server -detached`)
//! by making `uri` return `amqp://guest:guest@127.0.0.1:5673/%2f` without starting a
//! broker. The queues are durable with fixed names, so run them on a freshly reset node
//! (`rabbitmqctl -n ref@localhost stop_app && ... reset && ... start_app`).
//!
//! lapin runs on a tokio current-thread runtime per test; every wait is under
//! `WAIT` (or `QUIET` where the point is that nothing arrives).

mod common;
use common::Broker;
use futures_lite::StreamExt;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicGetOptions, BasicNackOptions, BasicPublishOptions,
    BasicQosOptions, ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions,
    QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::protocol::{AMQPErrorKind, AMQPSoftError};
use lapin::types::{AMQPValue, FieldArray, FieldTable};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, Consumer, ExchangeKind};
use std::collections::BTreeSet;
use std::future::Future;
use std::time::Duration;

/// The longest any one step may take before the test fails.
const WAIT: Duration = Duration::from_secs(10);
/// How long a test watches for a delivery that must not come.
const QUIET: Duration = Duration::from_millis(300);

/// Runs one test's body on a fresh current-thread runtime.
fn block_on<F: Future<Output = ()>>(body: F) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(body);
}

/// `fut`, or a failed test after `WAIT`, naming the step.
async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(WAIT, fut).await {
        Ok(v) => v,
        Err(_) => panic!("{what}: nothing after {WAIT:?}"),
    }
}

fn uri(b: &Broker) -> String {
    format!("amqp://guest:guest@{}/%2f", b.amqp_addr)
}

async fn connect(b: &Broker) -> Connection {
    within(
        "connect",
        Connection::connect(&uri(b), ConnectionProperties::default()),
    )
    .await
    .expect("AMQP connection")
}

async fn channel(conn: &Connection) -> Channel {
    within("channel.open", conn.create_channel())
        .await
        .expect("channel.open")
}

async fn declare_queue(ch: &Channel, name: &str, options: QueueDeclareOptions) {
    within(
        "queue.declare",
        ch.queue_declare(name.into(), options, FieldTable::default()),
    )
    .await
    .expect("queue.declare");
}

fn durable() -> QueueDeclareOptions {
    QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    }
}

fn persistent() -> BasicProperties {
    BasicProperties::default().with_delivery_mode(2)
}

/// Publishes `body` and waits for the broker's confirm (or for nothing, outside
/// confirm mode); fails the test unless it is an ack.
async fn publish(ch: &Channel, exchange: &str, key: &str, body: &[u8], props: BasicProperties) {
    let confirm = within(
        "basic.publish",
        ch.basic_publish(
            exchange.into(),
            key.into(),
            BasicPublishOptions::default(),
            body,
            props,
        ),
    )
    .await
    .expect("basic.publish");
    let confirmation = within("publisher confirm", confirm)
        .await
        .expect("publisher confirm");
    assert!(
        !confirmation.is_nack(),
        "broker nacked a publish to {exchange}/{key}"
    );
}

async fn consume(ch: &Channel, queue: &str, tag: &str) -> Consumer {
    within(
        "basic.consume",
        ch.basic_consume(
            queue.into(),
            tag.into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        ),
    )
    .await
    .expect("basic.consume")
}

async fn next(consumer: &mut Consumer) -> Delivery {
    within("delivery", consumer.next())
        .await
        .expect("consumer stream ended")
        .expect("delivery")
}

/// A delivery that arrives within `QUIET`, if any: for steps where none may come.
async fn next_quiet(consumer: &mut Consumer) -> Option<Delivery> {
    match tokio::time::timeout(QUIET, consumer.next()).await {
        Ok(Some(d)) => Some(d.expect("delivery")),
        Ok(None) => panic!("consumer stream ended"),
        Err(_) => None,
    }
}

async fn ack(d: &Delivery) {
    within("basic.ack", d.ack(BasicAckOptions::default()))
        .await
        .expect("basic.ack");
}

fn text(d: &Delivery) -> String {
    String::from_utf8_lossy(&d.data).into_owned()
}

async fn get_text(ch: &Channel, queue: &str) -> Option<String> {
    within(
        "basic.get",
        ch.basic_get(queue.into(), BasicGetOptions { no_ack: true }),
    )
    .await
    .expect("basic.get")
    .map(|m| text(&m.delivery))
}

#[test]
fn confirmed_publishes_reach_the_bound_queue_through_a_direct_exchange() {
    let b = Broker::start();
    block_on(async {
        let conn = connect(&b).await;
        let ch = channel(&conn).await;
        within(
            "exchange.declare",
            ch.exchange_declare(
                "orders".into(),
                ExchangeKind::Direct,
                ExchangeDeclareOptions {
                    durable: true,
                    ..ExchangeDeclareOptions::default()
                },
                FieldTable::default(),
            ),
        )
        .await
        .expect("exchange.declare");
        declare_queue(&ch, "payments", durable()).await;
        declare_queue(&ch, "refunds", durable()).await;
        for (queue, key) in [("payments", "pay"), ("refunds", "refund")] {
            within(
                "queue.bind",
                ch.queue_bind(
                    queue.into(),
                    "orders".into(),
                    key.into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                ),
            )
            .await
            .expect("queue.bind");
        }
        within(
            "confirm.select",
            ch.confirm_select(ConfirmSelectOptions::default()),
        )
        .await
        .expect("confirm.select");
        // Every confirm awaited before the next publish, then a pipelined run whose
        // confirms may come back as one `multiple` ack.
        for i in 0..20 {
            publish(
                &ch,
                "orders",
                "pay",
                format!("pay-{i}").as_bytes(),
                persistent(),
            )
            .await;
        }
        let mut pending = Vec::new();
        for i in 20..200 {
            let confirm = within(
                "basic.publish",
                ch.basic_publish(
                    "orders".into(),
                    "pay".into(),
                    BasicPublishOptions::default(),
                    format!("pay-{i}").as_bytes(),
                    persistent(),
                ),
            )
            .await
            .expect("basic.publish");
            pending.push(confirm);
        }
        for confirm in pending {
            let c = within("publisher confirm", confirm)
                .await
                .expect("publisher confirm");
            assert!(c.is_ack(), "confirm was {c:?}");
        }
        publish(&ch, "orders", "refund", b"refund-0", persistent()).await;
        // Unrouted: no queue is bound with this key, and still confirmed.
        publish(&ch, "orders", "nowhere", b"lost", persistent()).await;

        let rx = channel(&conn).await;
        let mut payments = consume(&rx, "payments", "payments-reader").await;
        for i in 0..200 {
            let d = next(&mut payments).await;
            assert_eq!(text(&d), format!("pay-{i}"));
            assert_eq!(d.exchange.as_str(), "orders");
            assert_eq!(d.routing_key.as_str(), "pay");
            assert!(!d.redelivered);
            ack(&d).await;
        }
        assert_eq!(get_text(&rx, "refunds").await.as_deref(), Some("refund-0"));
        assert_eq!(get_text(&rx, "refunds").await, None);
    });
}

#[test]
fn prefetch_bounds_unacked_deliveries_per_consumer() {
    let b = Broker::start();
    block_on(async {
        let conn = connect(&b).await;
        let ch = channel(&conn).await;
        declare_queue(&ch, "prefetched", durable()).await;
        for i in 0..20 {
            publish(
                &ch,
                "",
                "prefetched",
                format!("m{i}").as_bytes(),
                persistent(),
            )
            .await;
        }
        let rx = channel(&conn).await;
        within("basic.qos", rx.basic_qos(5, BasicQosOptions::default()))
            .await
            .expect("basic.qos");
        let mut consumer = consume(&rx, "prefetched", "bounded").await;
        let mut held = Vec::new();
        for i in 0..5 {
            let d = next(&mut consumer).await;
            assert_eq!(text(&d), format!("m{i}"));
            held.push(d);
        }
        assert!(
            next_quiet(&mut consumer).await.is_none(),
            "a sixth delivery came with 5 unacked and prefetch 5"
        );
        // One ack with `multiple` settles the first three: three more may come.
        within(
            "basic.ack multiple",
            held[2].ack(BasicAckOptions { multiple: true }),
        )
        .await
        .expect("basic.ack");
        for i in 5..8 {
            let d = next(&mut consumer).await;
            assert_eq!(text(&d), format!("m{i}"));
            held.push(d);
        }
        assert!(next_quiet(&mut consumer).await.is_none());
        for d in &held[3..] {
            ack(d).await;
        }
        for i in 8..20 {
            let d = next(&mut consumer).await;
            assert_eq!(text(&d), format!("m{i}"));
            ack(&d).await;
        }
        assert!(next_quiet(&mut consumer).await.is_none());
    });
}

/// Headers of every common field type, nested table and array included.
fn rich_headers() -> FieldTable {
    let mut nested = FieldTable::default();
    nested.insert("region".into(), AMQPValue::LongString("eu-west".into()));
    nested.insert("attempt".into(), AMQPValue::LongInt(3));
    let mut h = FieldTable::default();
    h.insert("text".into(), AMQPValue::LongString("héllo wörld".into()));
    h.insert("int".into(), AMQPValue::LongInt(-42));
    h.insert("long".into(), AMQPValue::LongLongInt(1 << 40));
    h.insert("flag".into(), AMQPValue::Boolean(true));
    h.insert("ratio".into(), AMQPValue::Double(0.25));
    h.insert("when".into(), AMQPValue::Timestamp(1_700_000_000));
    h.insert(
        "bytes".into(),
        AMQPValue::ByteArray(vec![0u8, 1, 255].into()),
    );
    h.insert("none".into(), AMQPValue::Void);
    h.insert("table".into(), AMQPValue::FieldTable(nested));
    h.insert(
        "list".into(),
        AMQPValue::FieldArray(FieldArray::from(vec![
            AMQPValue::LongInt(1),
            AMQPValue::LongString("two".into()),
            AMQPValue::Boolean(false),
        ])),
    );
    h
}

#[test]
fn every_message_property_round_trips() {
    let b = Broker::start();
    block_on(async {
        let conn = connect(&b).await;
        let ch = channel(&conn).await;
        declare_queue(&ch, "props", durable()).await;
        let sent = BasicProperties::default()
            .with_content_type("application/json".into())
            .with_content_encoding("utf-8".into())
            .with_headers(rich_headers())
            .with_delivery_mode(2)
            .with_priority(7)
            .with_correlation_id("corr-1".into())
            .with_reply_to("replies".into())
            .with_expiration("60000".into())
            .with_message_id("msg-1".into())
            .with_timestamp(1_700_000_123)
            .with_type("order.created".into())
            .with_user_id("guest".into())
            .with_app_id("lapin-test".into());
        publish(&ch, "", "props", br#"{"id":1}"#, sent.clone()).await;
        let got = within(
            "basic.get",
            ch.basic_get("props".into(), BasicGetOptions { no_ack: true }),
        )
        .await
        .expect("basic.get")
        .expect("a message");
        let p = &got.delivery.properties;
        assert_eq!(p.content_type(), sent.content_type());
        assert_eq!(p.content_encoding(), sent.content_encoding());
        assert_eq!(p.delivery_mode(), &Some(2));
        assert_eq!(p.priority(), &Some(7));
        assert_eq!(p.correlation_id(), sent.correlation_id());
        assert_eq!(p.reply_to(), sent.reply_to());
        assert_eq!(p.expiration(), sent.expiration());
        assert_eq!(p.message_id(), sent.message_id());
        assert_eq!(p.timestamp(), &Some(1_700_000_123));
        assert_eq!(p.kind(), sent.kind());
        assert_eq!(p.user_id(), sent.user_id());
        assert_eq!(p.app_id(), sent.app_id());
        let headers = p.headers().as_ref().expect("headers");
        assert_eq!(headers, &rich_headers(), "headers changed on the way");
        assert_eq!(got.delivery.data, br#"{"id":1}"#);
    });
}

#[test]
fn basic_get_counts_down_then_says_empty() {
    let b = Broker::start();
    block_on(async {
        let conn = connect(&b).await;
        let ch = channel(&conn).await;
        declare_queue(&ch, "polled", durable()).await;
        assert_eq!(get_text(&ch, "polled").await, None);
        for i in 0..3 {
            publish(&ch, "", "polled", format!("p{i}").as_bytes(), persistent()).await;
        }
        // Manual ack: the message stays the channel's until acked.
        let first = within(
            "basic.get",
            ch.basic_get("polled".into(), BasicGetOptions { no_ack: false }),
        )
        .await
        .expect("basic.get")
        .expect("a message");
        assert_eq!(text(&first.delivery), "p0");
        assert_eq!(first.message_count, 2, "messages left after the first get");
        ack(&first.delivery).await;
        let second = within(
            "basic.get",
            ch.basic_get("polled".into(), BasicGetOptions { no_ack: true }),
        )
        .await
        .expect("basic.get")
        .expect("a message");
        assert_eq!(text(&second.delivery), "p1");
        assert_eq!(second.message_count, 1);
        assert_eq!(get_text(&ch, "polled").await.as_deref(), Some("p2"));
        assert_eq!(get_text(&ch, "polled").await, None);
    });
}

#[test]
fn nack_with_requeue_redelivers_marked_redelivered() {
    let b = Broker::start();
    block_on(async {
        let conn = connect(&b).await;
        let ch = channel(&conn).await;
        declare_queue(&ch, "retry", durable()).await;
        publish(&ch, "", "retry", b"flaky", persistent()).await;
        let mut consumer = consume(&ch, "retry", "retrier").await;
        let d = next(&mut consumer).await;
        assert_eq!(text(&d), "flaky");
        assert!(!d.redelivered, "first delivery marked redelivered");
        within(
            "basic.nack",
            d.nack(BasicNackOptions {
                multiple: false,
                requeue: true,
            }),
        )
        .await
        .expect("basic.nack");
        let again = next(&mut consumer).await;
        assert_eq!(text(&again), "flaky");
        assert!(
            again.redelivered,
            "requeued delivery not marked redelivered"
        );
        // Without requeue the message is gone (no dead-letter exchange here).
        within(
            "basic.nack",
            again.nack(BasicNackOptions {
                multiple: false,
                requeue: false,
            }),
        )
        .await
        .expect("basic.nack");
        assert!(next_quiet(&mut consumer).await.is_none());
        assert_eq!(get_text(&ch, "retry").await, None);
    });
}

#[test]
fn channel_error_closes_only_that_channel() {
    let b = Broker::start();
    block_on(async {
        let conn = connect(&b).await;
        let doomed = channel(&conn).await;
        let survivor = channel(&conn).await;
        declare_queue(&survivor, "alive", durable()).await;
        let err = within(
            "passive queue.declare",
            doomed.queue_declare(
                "no-such-queue".into(),
                QueueDeclareOptions {
                    passive: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            ),
        )
        .await
        .expect_err("passive declare of a missing queue succeeded");
        match err.kind() {
            lapin::ErrorKind::ProtocolError(e) => assert_eq!(
                e.kind(),
                &AMQPErrorKind::Soft(AMQPSoftError::NOTFOUND),
                "reply: {e}"
            ),
            other => panic!("expected a 404 channel error, got {other:?}"),
        }
        assert!(
            !doomed.status().connected(),
            "the failed channel is still open"
        );
        // The same connection and its other channel go on as before.
        assert!(conn.status().connected(), "the connection was closed");
        publish(&survivor, "", "alive", b"still here", persistent()).await;
        assert_eq!(
            get_text(&survivor, "alive").await.as_deref(),
            Some("still here")
        );
        let fresh = channel(&conn).await;
        declare_queue(&fresh, "alive", durable()).await;
    });
}

#[test]
fn deleting_a_queue_cancels_its_consumer() {
    let b = Broker::start();
    block_on(async {
        let conn = connect(&b).await;
        let ch = channel(&conn).await;
        declare_queue(&ch, "doomed", durable()).await;
        publish(&ch, "", "doomed", b"before", persistent()).await;
        let rx = channel(&conn).await;
        let mut consumer = consume(&rx, "doomed", "watcher").await;
        let d = next(&mut consumer).await;
        assert_eq!(text(&d), "before");
        ack(&d).await;
        within(
            "queue.delete",
            ch.queue_delete("doomed".into(), QueueDeleteOptions::default()),
        )
        .await
        .expect("queue.delete");
        // basic.cancel from the broker ends lapin's consumer stream.
        let end = within("consumer cancel notification", consumer.next()).await;
        assert!(end.is_none(), "expected the stream to end, got {end:?}");
        // The channel itself stays open.
        assert!(rx.status().connected());
        declare_queue(&rx, "after", durable()).await;
    });
}

#[test]
fn one_mib_body_round_trips_byte_exact_over_many_frames() {
    let b = Broker::start();
    block_on(async {
        let conn = connect(&b).await;
        let frame_max = conn.configuration().frame_max();
        let body: Vec<u8> = (0..1024 * 1024u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        assert!(
            frame_max > 0 && (body.len() as u32) > frame_max,
            "frame_max {frame_max}: the body would not be split"
        );
        let ch = channel(&conn).await;
        within(
            "confirm.select",
            ch.confirm_select(ConfirmSelectOptions::default()),
        )
        .await
        .expect("confirm.select");
        declare_queue(&ch, "big", durable()).await;
        publish(&ch, "", "big", &body, persistent()).await;
        publish(&ch, "", "big", b"small after big", persistent()).await;
        let rx = channel(&conn).await;
        let mut consumer = consume(&rx, "big", "big-reader").await;
        let d = next(&mut consumer).await;
        assert_eq!(d.data.len(), body.len());
        assert!(d.data == body, "1 MiB body changed on the way");
        ack(&d).await;
        let d = next(&mut consumer).await;
        assert_eq!(text(&d), "small after big");
        ack(&d).await;
    });
}

/// The RabbitMQ work-queue tutorial: two workers with prefetch 1 and manual acks. A
/// worker busy with an unacked task gets nothing more; the other takes the rest.
#[test]
fn work_queue_dispatches_fairly_to_two_workers() {
    let b = Broker::start();
    block_on(async {
        let conn = connect(&b).await;
        let ch = channel(&conn).await;
        declare_queue(&ch, "task_queue", durable()).await;
        let (busy_ch, quick_ch) = (channel(&conn).await, channel(&conn).await);
        for ch in [&busy_ch, &quick_ch] {
            within("basic.qos", ch.basic_qos(1, BasicQosOptions::default()))
                .await
                .expect("basic.qos");
        }
        let mut busy = consume(&busy_ch, "task_queue", "busy-worker").await;
        let mut quick = consume(&quick_ch, "task_queue", "quick-worker").await;
        let tasks = 20;
        for i in 0..tasks {
            publish(
                &ch,
                "",
                "task_queue",
                format!("task-{i}").as_bytes(),
                persistent(),
            )
            .await;
        }
        let mut done = BTreeSet::new();
        let held = next(&mut busy).await;
        done.insert(text(&held));
        while done.len() < tasks {
            let d = next(&mut quick).await;
            assert!(done.insert(text(&d)), "{} delivered twice", text(&d));
            ack(&d).await;
        }
        assert!(
            next_quiet(&mut busy).await.is_none(),
            "the busy worker got a second task before acking its first"
        );
        ack(&held).await;
        assert!(next_quiet(&mut busy).await.is_none());
        assert!(next_quiet(&mut quick).await.is_none());
        let want: BTreeSet<String> = (0..tasks).map(|i| format!("task-{i}")).collect();
        assert_eq!(done, want);
    });
}

/// A client's `connection.close` ends cleanly, with lapin's connection Closed, not
/// Error. `close-ok` tells its recipient that it may now close the socket, and RabbitMQ
/// leaves that to the client; lapin reads until the socket would block, so a server
/// that closes right after `close-ok` hands it the frame and the end of the stream in
/// one go, and lapin reports the end as a broken connection ("Socket was readable but
/// we read 0").
#[test]
fn connection_close_is_clean() {
    let b = Broker::start();
    block_on(async {
        for i in 0..20 {
            let conn = connect(&b).await;
            let ch = channel(&conn).await;
            declare_queue(&ch, "close-check", durable()).await;
            within("connection.close", conn.close(200, "bye".into()))
                .await
                .unwrap_or_else(|e| panic!("close {i}: {e}"));
            // The I/O thread may still be reading: give it the socket's end.
            tokio::time::sleep(Duration::from_millis(20)).await;
            let status = conn.status();
            assert!(
                status.closed() && !status.errored(),
                "connection {i} after a clean close: {status:?}"
            );
        }
    });
}

/// `peregrine bench amqp --json` with `extra`: its report.
fn bench_amqp(mode: &str, extra: &[&str]) -> serde_json::Value {
    let out = std::process::Command::new(common::BIN)
        .args(["bench", mode, "--json"])
        .args(extra)
        .output()
        .expect("run bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "bench {mode} {extra:?} failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.lines().last().expect("a JSON line")).expect("valid JSON")
}

#[test]
fn bench_amqp_modes_deliver_every_confirmed_message() {
    let r = bench_amqp(
        "amqp",
        &[
            "--embedded",
            "--messages",
            "5000",
            "--confirm-window",
            "500",
        ],
    );
    assert_eq!(r["messages_acked"], 5000, "{r}");
    assert_eq!(r["messages_received"], 5000, "{r}");
    assert_eq!(r["lost"], 0);
    assert_eq!(r["duplicated"], 0);
    assert!(r["e2e_us"]["p99"].as_f64().is_some_and(|x| x > 0.0), "{r}");
    assert!(r["ack_us"]["p99"].as_f64().is_some_and(|x| x > 0.0), "{r}");
    let r = bench_amqp(
        "amqp-latency",
        &["--embedded", "--rate", "2000", "--messages", "2000"],
    );
    assert_eq!(r["rate"], 2000, "{r}");
    assert_eq!(r["messages_received"], 2000, "{r}");
    assert_eq!(r["lost"], 0);
    assert!(r["e2e_us"]["p999"].as_f64().is_some_and(|x| x > 0.0), "{r}");
}
