//! Message queues through the real broker with the native client: every delivery
//! semantic by name, restarts and a kill -9 under load.

mod common;
use common::Broker;
use peregrine::client::queues::Received;
use peregrine::client::Client;
use peregrine::native::messages::{ErrorCode, PublishSpec, QueueOverflow, QueueSpec};
use std::collections::HashSet;
use std::time::{Duration, Instant};

fn declare(c: &mut Client, spec: QueueSpec) {
    c.declare_queue(spec).expect("declare");
}

fn queue(name: &str) -> QueueSpec {
    QueueSpec {
        name: name.into(),
        ..QueueSpec::default()
    }
}

fn durable() -> PublishSpec {
    PublishSpec {
        durable: true,
        ..PublishSpec::default()
    }
}

fn text(r: &Received) -> String {
    String::from_utf8_lossy(&r.body).to_string()
}

fn texts(rs: &[Received]) -> Vec<String> {
    rs.iter().map(text).collect()
}

fn header<'a>(r: &'a Received, name: &str) -> Option<&'a str> {
    r.delivery
        .headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

#[test]
fn competing_consumers_share_work_and_acks_settle() {
    let b = Broker::start();
    let mut c = b.client();
    declare(&mut c, queue("work"));
    for i in 0..100 {
        c.publish("work", durable(), format!("job-{i}").as_bytes())
            .expect("publish");
    }
    let (mut a, mut z) = (b.client(), b.client());
    let mut seen = HashSet::new();
    loop {
        let mut got = a.receive("work", 7, 0, false).expect("receive");
        got.extend(z.receive("work", 5, 0, false).expect("receive"));
        if got.is_empty() {
            break;
        }
        for r in &got {
            assert!(seen.insert(text(r)), "{} delivered twice", text(r));
        }
        let handles: Vec<u64> = got.iter().map(|r| r.delivery.handle).collect();
        c.ack("work", &handles).expect("ack");
    }
    assert_eq!(seen.len(), 100);
    let stats = c.queue_stats("work").expect("stats");
    assert_eq!((stats.ready, stats.in_flight), (0, 0));
}

#[test]
fn an_unacked_message_is_redelivered_after_the_visibility_timeout() {
    let b = Broker::start();
    let mut c = b.client();
    declare(
        &mut c,
        QueueSpec {
            visibility_timeout_ms: Some(300),
            ..queue("slow")
        },
    );
    c.publish("slow", durable(), b"task").expect("publish");
    let first = c.receive("slow", 1, 0, false).expect("receive");
    assert_eq!(first[0].delivery.deliveries, 1);
    assert!(
        c.receive("slow", 1, 0, false).expect("receive").is_empty(),
        "leased"
    );
    // A long poll picks it up when the lease runs out.
    let again = c.receive("slow", 1, 5_000, false).expect("receive");
    assert_eq!(texts(&again), ["task"]);
    assert_eq!(again[0].delivery.deliveries, 2);
    let stale = c
        .ack("slow", &[first[0].delivery.handle])
        .expect_err("old handle");
    assert_eq!(stale.code(), Some(ErrorCode::UnknownHandle));
    c.ack("slow", &[again[0].delivery.handle]).expect("ack");
}

#[test]
fn after_max_deliveries_and_on_reject_messages_are_dead_lettered_with_reasons() {
    let b = Broker::start();
    let mut c = b.client();
    declare(&mut c, queue("dead"));
    declare(
        &mut c,
        QueueSpec {
            max_deliveries: Some(2),
            dead_letter: Some("dead".into()),
            ..queue("flaky")
        },
    );
    c.publish("flaky", durable(), b"poison").expect("publish");
    c.publish("flaky", durable(), b"refused").expect("publish");
    let got = c.receive("flaky", 2, 0, false).expect("receive");
    c.nack("flaky", &[got[1].delivery.handle], false)
        .expect("reject");
    c.nack("flaky", &[got[0].delivery.handle], true)
        .expect("requeue");
    let again = c.receive("flaky", 1, 0, false).expect("receive");
    assert_eq!(texts(&again), ["poison"]);
    c.nack("flaky", &[again[0].delivery.handle], true)
        .expect("requeue");
    let dead = c.receive("dead", 10, 2_000, false).expect("receive");
    assert_eq!(texts(&dead), ["refused", "poison"]);
    assert_eq!(header(&dead[0], "x-death-reason"), Some("rejected"));
    assert_eq!(header(&dead[1], "x-death-reason"), Some("max-deliveries"));
    assert_eq!(header(&dead[1], "x-death-queue"), Some("flaky"));
    assert_eq!(header(&dead[1], "x-death-count"), Some("2"));
    assert!(header(&dead[1], "x-death-time").is_some());
    assert_eq!(c.queue_stats("flaky").expect("stats").dead_lettered, 2);
    // A dead-letter target must exist.
    let missing = QueueSpec {
        dead_letter: Some("nowhere".into()),
        ..queue("orphan")
    };
    assert!(c.declare_queue(missing).is_err());
}

#[test]
fn priorities_come_out_highest_first_and_over_the_maximum_is_refused() {
    let b = Broker::start();
    let mut c = b.client();
    declare(
        &mut c,
        QueueSpec {
            max_priority: 10,
            ..queue("urgent")
        },
    );
    for (body, priority) in [("low", 1), ("high", 9), ("mid", 5), ("high2", 9)] {
        let spec = PublishSpec {
            priority,
            ..durable()
        };
        c.publish("urgent", spec, body.as_bytes()).expect("publish");
    }
    let got = c.receive("urgent", 10, 0, true).expect("receive");
    assert_eq!(texts(&got), ["high", "high2", "mid", "low"]);
    let over = PublishSpec {
        priority: 11,
        ..durable()
    };
    assert!(c.publish("urgent", over, b"x").is_err());
}

#[test]
fn expired_messages_are_never_delivered() {
    let b = Broker::start();
    let mut c = b.client();
    declare(&mut c, queue("expired"));
    declare(
        &mut c,
        QueueSpec {
            ttl_ms: Some(200),
            dead_letter: Some("expired".into()),
            ..queue("fresh")
        },
    );
    c.publish("fresh", durable(), b"stale").expect("publish");
    let short = PublishSpec {
        ttl_ms: Some(50),
        ..durable()
    };
    c.publish("fresh", short, b"short").expect("publish");
    std::thread::sleep(Duration::from_millis(400));
    c.publish("fresh", durable(), b"new").expect("publish");
    assert_eq!(
        texts(&c.receive("fresh", 10, 0, true).expect("receive")),
        ["new"]
    );
    let dead = c.receive("expired", 10, 2_000, true).expect("receive");
    let mut dead = texts(&dead);
    dead.sort();
    assert_eq!(dead, ["short", "stale"]);
}

#[test]
fn fifo_groups_keep_order_wait_while_in_flight_and_drop_duplicate_ids() {
    let b = Broker::start();
    let mut c = b.client();
    declare(
        &mut c,
        QueueSpec {
            fifo: true,
            ..queue("orders.fifo")
        },
    );
    let msg = |g: &str, d: &str| PublishSpec {
        group_id: Some(g.into()),
        dedup_id: Some(d.into()),
        ..durable()
    };
    for (body, g, d) in [
        ("a1", "a", "1"),
        ("b1", "b", "2"),
        ("a2", "a", "3"),
        ("a3", "a", "4"),
    ] {
        assert!(c
            .publish("orders.fifo", msg(g, d), body.as_bytes())
            .expect("publish")
            .is_some());
    }
    assert_eq!(
        c.publish("orders.fifo", msg("a", "1"), b"again")
            .expect("publish"),
        None
    );
    let first = c.receive("orders.fifo", 1, 0, false).expect("receive");
    assert_eq!(texts(&first), ["a1"]);
    // Group a has a message in flight: none of its later ones is handed out.
    let others = c.receive("orders.fifo", 10, 0, false).expect("receive");
    assert_eq!(texts(&others), ["b1"]);
    c.ack("orders.fifo", &[first[0].delivery.handle])
        .expect("ack");
    // Free again, the group gives its ready messages in order, several at once.
    let next = c.receive("orders.fifo", 10, 0, false).expect("receive");
    assert_eq!(texts(&next), ["a2", "a3"]);
}

#[test]
fn a_receive_waits_for_a_publish_and_a_delayed_message_is_not_visible_early() {
    let b = Broker::start();
    let mut c = b.client();
    declare(&mut c, queue("later"));
    let addr = b.addr.clone();
    let publisher = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        let mut p = Client::connect(&addr).expect("connect");
        p.publish("later", durable(), b"now").expect("publish");
    });
    let started = Instant::now();
    let got = c.receive("later", 1, 10_000, true).expect("receive");
    assert_eq!(texts(&got), ["now"]);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "answered when it came"
    );
    publisher.join().expect("publisher");
    // With nothing to hand out, a long poll answers (empty) at its deadline.
    let started = Instant::now();
    assert!(c
        .receive("later", 1, 300, true)
        .expect("receive")
        .is_empty());
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(300) && waited < Duration::from_secs(2),
        "{waited:?}"
    );
    let delayed = PublishSpec {
        delay_ms: Some(600),
        ..durable()
    };
    c.publish("later", delayed, b"delayed").expect("publish");
    assert!(c.receive("later", 1, 0, true).expect("receive").is_empty());
    assert_eq!(c.queue_stats("later").expect("stats").delayed, 1);
    let got = c.receive("later", 1, 5_000, true).expect("receive");
    assert_eq!(texts(&got), ["delayed"]);
}

#[test]
fn a_restart_keeps_ready_delayed_dead_and_in_flight_and_never_brings_back_acked() {
    let mut b = Broker::start();
    let mut c = b.client();
    declare(&mut c, queue("dlq"));
    declare(
        &mut c,
        QueueSpec {
            dead_letter: Some("dlq".into()),
            ..queue("jobs")
        },
    );
    for body in ["acked", "in-flight", "ready", "rejected"] {
        c.publish("jobs", durable(), body.as_bytes())
            .expect("publish");
    }
    let delayed = PublishSpec {
        delay_ms: Some(1_500),
        ..durable()
    };
    c.publish("jobs", delayed, b"delayed").expect("publish");
    let got = c.receive("jobs", 2, 0, false).expect("receive");
    c.ack("jobs", &[got[0].delivery.handle]).expect("ack");
    let rejected = c.receive("jobs", 2, 0, false).expect("receive");
    assert_eq!(texts(&rejected), ["ready", "rejected"]);
    c.nack("jobs", &[rejected[1].delivery.handle], false)
        .expect("reject");
    c.nack("jobs", &[rejected[0].delivery.handle], true)
        .expect("requeue");
    b.restart();
    let mut c = b.client();
    let stats = c.queue_stats("jobs").expect("stats");
    assert_eq!(
        (stats.ready, stats.delayed, stats.in_flight),
        (2, 1, 0),
        "{stats:?}"
    );
    let back = c.receive("jobs", 10, 0, false).expect("receive");
    assert_eq!(texts(&back), ["in-flight", "ready"]);
    assert_eq!(back[0].delivery.deliveries, 2, "the count survives");
    let later = c.receive("jobs", 10, 5_000, false).expect("receive");
    assert_eq!(texts(&later), ["delayed"]);
    assert_eq!(
        texts(&c.receive("dlq", 10, 0, false).expect("receive")),
        ["rejected"]
    );
    assert!(
        c.receive("jobs", 10, 0, false).expect("receive").is_empty(),
        "acked stays gone"
    );
    let queues: Vec<String> = c
        .list_queues()
        .expect("list")
        .into_iter()
        .map(|q| q.name)
        .collect();
    assert_eq!(queues, ["dlq", "jobs"]);
}

#[test]
fn kill_9_under_publish_and_ack_load_loses_and_resurrects_nothing() {
    let mut b = Broker::start();
    let mut c = b.client();
    declare(&mut c, queue("ledger"));
    let addr = b.addr.clone();
    // A publisher and a consumer run until the broker dies under them.
    let publisher = std::thread::spawn(move || {
        let mut p = Client::connect(&addr).expect("connect");
        let mut acked = Vec::new();
        for i in 0..100_000u64 {
            match p.publish("ledger", durable(), format!("{i}").as_bytes()) {
                Ok(_) => acked.push(i),
                Err(_) => break,
            }
        }
        acked
    });
    let addr = b.addr.clone();
    let consumer = std::thread::spawn(move || {
        let mut k = Client::connect(&addr).expect("connect");
        let (mut settled, mut in_doubt) = (Vec::new(), Vec::new());
        loop {
            let Ok(got) = k.receive("ledger", 20, 100, false) else {
                break;
            };
            let handles: Vec<u64> = got.iter().map(|r| r.delivery.handle).collect();
            if handles.is_empty() {
                continue;
            }
            let values = got
                .iter()
                .map(|r| text(r).parse::<u64>().unwrap_or(u64::MAX));
            if k.ack("ledger", &handles).is_err() {
                // The broker died during this ack: it may or may not have reached disk.
                in_doubt.extend(values);
                break;
            }
            settled.extend(values);
        }
        (settled, in_doubt)
    });
    std::thread::sleep(Duration::from_millis(1_500));
    b.kill9();
    let published = publisher.join().expect("publisher");
    let (settled, in_doubt) = consumer.join().expect("consumer");
    let settled: HashSet<u64> = settled.into_iter().collect();
    assert!(
        published.len() > 100 && !settled.is_empty(),
        "load ran: {} {}",
        published.len(),
        settled.len()
    );
    b.restart();
    let mut c = b.client();
    let mut left = HashSet::new();
    loop {
        let got = c.receive("ledger", 1000, 0, true).expect("receive");
        if got.is_empty() {
            break;
        }
        left.extend(
            got.iter()
                .map(|r| text(r).parse::<u64>().unwrap_or(u64::MAX)),
        );
    }
    let resurrected: Vec<&u64> = left.intersection(&settled).collect();
    assert!(
        resurrected.is_empty(),
        "acked deliveries came back: {resurrected:?}"
    );
    let lost: Vec<&u64> = published
        .iter()
        .filter(|i| !left.contains(i) && !settled.contains(i) && !in_doubt.contains(i))
        .collect();
    assert!(
        lost.is_empty(),
        "acknowledged publishes lost: {} of them",
        lost.len()
    );
}

#[test]
fn bad_declarations_and_unknown_queues_get_clear_errors() {
    let b = Broker::start();
    let mut c = b.client();
    declare(&mut c, queue("once"));
    declare(&mut c, queue("once"));
    let other = QueueSpec {
        max_priority: 3,
        ..queue("once")
    };
    let err = c
        .declare_queue(other)
        .expect_err("redeclare with other settings");
    assert_eq!(err.code(), Some(ErrorCode::QueueMismatch));
    let err = c
        .publish("nope", durable(), b"x")
        .expect_err("unknown queue");
    assert_eq!(err.code(), Some(ErrorCode::UnknownQueue));
    assert!(c.declare_queue(queue("bad name!")).is_err());
    c.delete_queue("once").expect("delete");
    assert!(c.queue_stats("once").is_err());
}

#[test]
fn the_cli_declares_publishes_receives_acks_and_rejects() {
    use common::{run_cli, run_cli_status};
    let b = Broker::start();
    let bs = ["--bootstrap", b.addr.as_str()];
    let cli = |args: &[&str], stdin: &str| {
        let all: Vec<&str> = args.iter().chain(bs.iter()).copied().collect();
        run_cli(&all, stdin)
    };
    cli(&["queue", "declare", "parked"], "");
    let out = cli(
        &[
            "queue",
            "declare",
            "tasks",
            "--max-priority",
            "5",
            "--max-deliveries",
            "3",
            "--dead-letter",
            "parked",
        ],
        "",
    );
    assert!(out.contains("declared queue tasks"), "{out}");
    cli(
        &[
            "publish",
            "--queue",
            "tasks",
            "--durable",
            "--header",
            "k=v",
        ],
        "one\ntwo\nthree\n",
    );
    cli(
        &["publish", "--queue", "tasks", "--priority", "5"],
        "urgent\n",
    );
    let got = cli(
        &[
            "receive",
            "tasks",
            "--max",
            "3",
            "--then",
            "none",
            "--show-handles",
        ],
        "",
    );
    let lines: Vec<(&str, &str)> = got
        .lines()
        .map(|l| {
            let mut f = l.splitn(3, '\t');
            let handle = f.next().unwrap_or("");
            let _count = f.next();
            (handle, f.next().unwrap_or(""))
        })
        .collect();
    let bodies: Vec<&str> = lines.iter().map(|(_, b)| *b).collect();
    assert_eq!(bodies, ["urgent", "one", "two"], "{got}");
    cli(&["ack", "tasks", lines[0].0], "");
    cli(&["nack", "tasks", lines[1].0, "--reject"], "");
    cli(&["nack", "tasks", lines[2].0], "");
    let stats = cli(&["queue", "stats", "tasks"], "");
    assert!(
        stats.contains("ready=2 in_flight=0") && stats.contains("dead_lettered=1"),
        "{stats}"
    );
    assert_eq!(
        cli(&["receive", "parked", "--wait-ms", "2000"], ""),
        "one\n"
    );
    assert_eq!(
        cli(&["receive", "tasks", "--max", "5", "--ack", "auto"], ""),
        "two\nthree\n"
    );
    let list = cli(&["queue", "list"], "");
    assert!(
        list.contains("tasks\t5\t-\t30000\t3\tparked\tfalse"),
        "{list}"
    );
    cli(&["publish", "--queue", "tasks"], "x\ny\n");
    assert!(cli(&["queue", "purge", "tasks"], "").contains("purged 2"));
    cli(&["publish", "--queue", "parked"], "p1\np2\np3\n");
    assert_eq!(
        cli(
            &["subscribe", "parked", "--prefetch", "2", "--max", "3"],
            ""
        ),
        "p1\np2\np3\n"
    );
    assert!(cli(&["queue", "stats", "parked"], "").contains("ready=0 in_flight=0"));
    cli(&["queue", "delete", "tasks"], "");
    let all: Vec<&str> = ["queue", "stats", "tasks"]
        .iter()
        .chain(bs.iter())
        .copied()
        .collect();
    let (ok, _, err) = run_cli_status(&all, "");
    assert!(!ok && err.contains("does not exist"), "{err}");
}

#[test]
fn each_exchange_type_routes_exactly_to_its_matching_bindings() {
    let b = Broker::start();
    let mut c = b.client();
    for q in [
        "red",
        "blue",
        "all-logs",
        "errors",
        "pdf-reports",
        "any-pdf",
    ] {
        declare(&mut c, queue(q));
    }
    b.create_topic("audit", 2);
    use peregrine::native::messages::{BindingSpec, ExchangeType};
    let bind = |c: &mut Client,
                ex: &str,
                q: Option<&str>,
                t: Option<&str>,
                key: &str,
                headers: &[(&str, &str)],
                all: bool| {
        c.bind(BindingSpec {
            exchange: ex.into(),
            queue: q.map(String::from),
            topic: t.map(String::from),
            routing_key: key.into(),
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            match_all: all,
        })
        .expect("bind");
    };
    c.declare_exchange("colors", ExchangeType::Direct)
        .expect("declare");
    c.declare_exchange("broadcast", ExchangeType::Fanout)
        .expect("declare");
    c.declare_exchange("logs", ExchangeType::Topic)
        .expect("declare");
    c.declare_exchange("docs", ExchangeType::Headers)
        .expect("declare");
    bind(&mut c, "colors", Some("red"), None, "red", &[], true);
    bind(&mut c, "colors", Some("blue"), None, "blue", &[], true);
    bind(&mut c, "broadcast", Some("red"), None, "", &[], true);
    bind(&mut c, "broadcast", Some("blue"), None, "", &[], true);
    bind(&mut c, "broadcast", None, Some("audit"), "", &[], true);
    bind(&mut c, "logs", Some("all-logs"), None, "log.#", &[], true);
    bind(
        &mut c,
        "logs",
        Some("errors"),
        None,
        "log.*.error",
        &[],
        true,
    );
    bind(
        &mut c,
        "docs",
        Some("pdf-reports"),
        None,
        "",
        &[("format", "pdf"), ("type", "report")],
        true,
    );
    bind(
        &mut c,
        "docs",
        Some("any-pdf"),
        None,
        "",
        &[("format", "pdf"), ("type", "report")],
        false,
    );
    let send = |c: &mut Client, ex: &str, key: &str, headers: &[(&str, &str)], body: &str| {
        let spec = PublishSpec {
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..durable()
        };
        c.publish_to_exchange(ex, key, spec, body.as_bytes())
            .expect("publish")
    };
    assert_eq!(send(&mut c, "colors", "red", &[], "r1"), (1, 0));
    assert_eq!(
        send(&mut c, "colors", "green", &[], "g1"),
        (0, 0),
        "unroutable"
    );
    assert_eq!(
        send(&mut c, "broadcast", "x", &[], "b1"),
        (2, 1),
        "queues and the topic"
    );
    assert_eq!(send(&mut c, "logs", "log.db.error", &[], "e1"), (2, 0));
    assert_eq!(send(&mut c, "logs", "log.db.info", &[], "i1"), (1, 0));
    assert_eq!(
        send(
            &mut c,
            "docs",
            "",
            &[("format", "pdf"), ("type", "report")],
            "d1"
        ),
        (2, 0)
    );
    assert_eq!(send(&mut c, "docs", "", &[("format", "pdf")], "d2"), (1, 0));
    // The default exchange routes by queue name.
    assert_eq!(send(&mut c, "", "blue", &[], "direct-to-blue"), (1, 0));
    let drain = |c: &mut Client, q: &str| texts(&c.receive(q, 100, 0, true).expect("receive"));
    assert_eq!(drain(&mut c, "red"), ["r1", "b1"]);
    assert_eq!(drain(&mut c, "blue"), ["b1", "direct-to-blue"]);
    assert_eq!(drain(&mut c, "all-logs"), ["e1", "i1"]);
    assert_eq!(drain(&mut c, "errors"), ["e1"]);
    assert_eq!(drain(&mut c, "pdf-reports"), ["d1"]);
    assert_eq!(drain(&mut c, "any-pdf"), ["d1", "d2"]);
    // The topic got a record (on the partition of its routing key).
    let described = c.describe_topic("audit").expect("describe");
    let records: i64 = described
        .1
        .iter()
        .map(|p| p.end_offset - p.start_offset)
        .sum();
    assert_eq!(records, 1);
    // Binding to something missing is refused; bindings survive a restart.
    let missing = BindingSpec {
        exchange: "colors".into(),
        queue: Some("nope".into()),
        ..BindingSpec::default()
    };
    assert!(c.bind(missing).is_err());
    let mut b = b;
    b.restart();
    let mut c = b.client();
    assert_eq!(send(&mut c, "logs", "log.x.error", &[], "after"), (2, 0));
    let (exchanges, bindings) = c.list_exchanges().expect("list");
    // Ours, beside the broker's standard amq.* exchanges (RabbitMQ's five).
    let (standard, ours): (Vec<_>, Vec<_>) = exchanges
        .iter()
        .partition(|(name, _)| name.starts_with("amq."));
    assert_eq!((ours.len(), standard.len()), (4, 5));
    assert_eq!(bindings.len(), 9);
}

#[test]
fn a_subscription_never_holds_more_than_its_prefetch() {
    use peregrine::client::queues::Subscription;
    let b = Broker::start();
    let mut c = b.client();
    declare(&mut c, queue("pushed"));
    for i in 0..10 {
        c.publish("pushed", durable(), format!("m{i}").as_bytes())
            .expect("publish");
    }
    let mut sub = Subscription::open(&b.addr, "pushed", 3, false).expect("subscribe");
    let wait = Duration::from_secs(5);
    let got: Vec<Received> = (0..3)
        .map(|_| sub.next(wait).expect("next").expect("a message"))
        .collect();
    assert_eq!(texts(&got), ["m0", "m1", "m2"]);
    assert!(
        sub.next(Duration::from_millis(300))
            .expect("next")
            .is_none(),
        "prefetch reached"
    );
    let stats = c.queue_stats("pushed").expect("stats");
    assert_eq!((stats.in_flight, stats.consumers), (3, 1));
    sub.ack(&[got[0].delivery.handle]).expect("ack");
    let more = sub
        .next(wait)
        .expect("next")
        .expect("one more after an ack");
    assert_eq!(text(&more), "m3");
    assert!(sub
        .next(Duration::from_millis(300))
        .expect("next")
        .is_none());
}

#[test]
fn a_consumer_that_goes_away_mid_work_has_its_messages_redelivered_at_once() {
    use peregrine::client::queues::Subscription;
    let b = Broker::start();
    let mut c = b.client();
    // A visibility timeout far longer than the test: only the disconnect can bring
    // the messages back.
    declare(
        &mut c,
        QueueSpec {
            visibility_timeout_ms: Some(600_000),
            ..queue("crashy")
        },
    );
    for i in 0..4 {
        c.publish("crashy", durable(), format!("w{i}").as_bytes())
            .expect("publish");
    }
    {
        let mut sub = Subscription::open(&b.addr, "crashy", 10, false).expect("subscribe");
        let first = sub
            .next(Duration::from_secs(5))
            .expect("next")
            .expect("message");
        sub.ack(&[first.delivery.handle]).expect("ack");
        for _ in 0..3 {
            sub.next(Duration::from_secs(5))
                .expect("next")
                .expect("message");
        }
        // The consumer dies with three messages unacked.
    }
    let again = c.receive("crashy", 10, 5_000, false).expect("receive");
    assert_eq!(
        c.queue_stats("crashy").expect("stats").consumers,
        0,
        "the subscription is gone"
    );
    let mut back = texts(&again);
    if back.len() < 3 {
        back.extend(texts(
            &c.receive("crashy", 10, 2_000, false).expect("receive"),
        ));
    }
    back.sort();
    assert_eq!(back, ["w1", "w2", "w3"], "the acked one stays gone");
    assert!(again.iter().all(|r| r.delivery.deliveries == 2));
}

#[test]
fn bad_exchange_declarations_and_bindings_are_refused_clearly() {
    use common::run_cli_status;
    use peregrine::native::messages::{BindingSpec, ExchangeType};
    let b = Broker::start();
    let (ok, _, err) = run_cli_status(
        &[
            "exchange",
            "declare",
            "x",
            "--type",
            "sideways",
            "--bootstrap",
            &b.addr,
        ],
        "",
    );
    assert!(!ok && err.contains("invalid value 'sideways'"), "{err}");
    let mut c = b.client();
    c.declare_exchange("x", ExchangeType::Direct)
        .expect("declare");
    c.declare_exchange("x", ExchangeType::Direct)
        .expect("same again is fine");
    let err = c
        .declare_exchange("x", ExchangeType::Fanout)
        .expect_err("other type");
    assert!(err.to_string().contains("another type"), "{err}");
    // The default exchange and the amq.* names are the broker's own.
    let reserved = c
        .declare_exchange("amq.mine", ExchangeType::Direct)
        .expect_err("a reserved name");
    assert!(reserved.to_string().contains("reserved"), "{reserved}");
    let standard = c
        .delete_exchange("amq.direct")
        .expect_err("a standard exchange");
    assert!(standard.to_string().contains("reserved"), "{standard}");
    let to_nothing = BindingSpec {
        exchange: "x".into(),
        routing_key: "k".into(),
        ..BindingSpec::default()
    };
    assert!(
        c.bind(to_nothing).is_err(),
        "a binding needs a queue or a topic"
    );
    let unknown = BindingSpec {
        exchange: "nope".into(),
        queue: Some("q".into()),
        ..BindingSpec::default()
    };
    assert_eq!(
        c.bind(unknown).expect_err("no exchange").code(),
        Some(ErrorCode::UnknownExchange)
    );
    assert_eq!(
        c.publish_to_exchange("nope", "k", durable(), b"x")
            .expect_err("no exchange")
            .code(),
        Some(ErrorCode::UnknownExchange)
    );
}

#[test]
fn a_shard_aware_client_talks_to_each_queues_owner_shard() {
    use peregrine::client::queues::Subscription;
    let b = Broker::start();
    let mut c = b.client();
    c.set_shard_aware(true);
    let mut owners = HashSet::new();
    for i in 0..8 {
        let name = format!("local-{i}");
        declare(&mut c, queue(&name));
        let (owner, port) = c
            .queue_owner_port(&name)
            .expect("owner")
            .expect("metadata names the owner's port");
        assert_eq!(c.queue_stats(&name).expect("stats").owner, owner);
        owners.insert(owner);
        let address = c.queue_address(&name, &b.addr).expect("address");
        assert!(address.ends_with(&format!(":{port}")), "{address}");
        // Publish, receive and ack on the owner's connection; push on its port.
        c.publish(&name, durable(), b"pulled").expect("publish");
        let got = c.receive(&name, 10, 1000, false).expect("receive");
        assert_eq!(texts(&got), ["pulled"]);
        c.ack(&name, &[got[0].delivery.handle]).expect("ack");
        // A subscription opened on the bootstrap address finds the owner by itself.
        for (body, via) in [
            ("pushed", b.addr.as_str()),
            ("pushed there", address.as_str()),
        ] {
            c.publish(&name, durable(), body.as_bytes())
                .expect("publish");
            let mut sub = if via == b.addr {
                Subscription::open(via, &name, 10, false)
            } else {
                Subscription::open_at(via, &name, 10, false)
            }
            .expect("subscribe");
            let pushed = sub
                .next(Duration::from_secs(5))
                .expect("next")
                .expect("a pushed message");
            assert_eq!(text(&pushed), body);
            sub.ack(&[pushed.delivery.handle]).expect("ack");
            // The ack is answered before the next subscription takes over.
            while sub.next(Duration::from_millis(50)).expect("next").is_some() {}
        }
    }
    let missing = Subscription::open(&b.addr, "no-such-queue", 10, false);
    assert!(
        missing.is_err(),
        "a subscription to a missing queue fails at once"
    );
    assert_eq!(owners.len(), 2, "eight queues land on both shards");
}

#[test]
fn batch_publishes_survive_a_kill_9_with_part_of_each_batch_acked() {
    let mut b = Broker::start();
    let mut c = b.client();
    declare(&mut c, queue("batched"));
    let mut all = Vec::new();
    for batch in 0..5 {
        let bodies: Vec<Vec<u8>> = (0..100)
            .map(|i| format!("b{batch}-{i:03}").into_bytes())
            .collect();
        let refs: Vec<&[u8]> = bodies.iter().map(Vec::as_slice).collect();
        let stored = c
            .publish_batch("batched", durable(), &refs)
            .expect("publish");
        assert_eq!(stored, 100);
        all.extend(
            bodies
                .into_iter()
                .map(|b| String::from_utf8_lossy(&b).to_string()),
        );
    }
    // Half of the first 250 acked (every other one, across batch boundaries).
    let got = c.receive("batched", 250, 0, false).expect("receive");
    assert_eq!(got.len(), 250);
    let acked: Vec<&Received> = got.iter().step_by(2).collect();
    let handles: Vec<u64> = acked.iter().map(|r| r.delivery.handle).collect();
    c.ack("batched", &handles).expect("ack");
    let acked: HashSet<String> = acked.iter().map(|r| text(r)).collect();
    b.kill9();
    b.restart();
    let mut c = b.client();
    let back = c.receive("batched", 1000, 0, true).expect("receive");
    let want: Vec<String> = all.into_iter().filter(|m| !acked.contains(m)).collect();
    assert_eq!(
        texts(&back),
        want,
        "every unacked message, in order, none acked"
    );
}

/// `--max-length` with both overflow policies: reject-publish refuses the publish with
/// a clear error, drop-head dead-letters the oldest; a client of the full queue and of
/// its neighbours keeps working.
#[test]
fn a_full_queue_refuses_or_drops_its_oldest_as_declared() {
    let b = Broker::start();
    let mut c = b.client();
    declare(&mut c, queue("dlq"));
    let strict = QueueSpec {
        max_length: Some(2),
        overflow: QueueOverflow::RejectPublish,
        ..queue("strict")
    };
    declare(&mut c, strict);
    let rolling = QueueSpec {
        max_length: Some(2),
        dead_letter: Some("dlq".into()),
        ..queue("rolling")
    };
    declare(&mut c, rolling);
    let listed = c.list_queues().expect("list");
    let kept = listed.iter().find(|q| q.name == "strict").expect("listed");
    assert_eq!(
        (kept.max_length, kept.max_bytes, kept.overflow),
        (Some(2), None, QueueOverflow::RejectPublish),
        "the bounds are kept"
    );
    for body in ["a", "b"] {
        c.publish("strict", durable(), body.as_bytes())
            .expect("publish");
        c.publish("rolling", durable(), body.as_bytes())
            .expect("publish");
    }
    let err = c.publish("strict", durable(), b"c").expect_err("full");
    assert_eq!(err.code(), Some(ErrorCode::InvalidRequest));
    assert!(err.to_string().contains("is full"), "{err}");
    c.publish("rolling", durable(), b"c")
        .expect("drop-head takes it");
    let mut other = b.client();
    let got = other.receive("strict", 10, 0, true).expect("receive");
    assert_eq!(texts(&got), ["a", "b"], "the refused one was not stored");
    c.publish("strict", durable(), b"c")
        .expect("room again once received");
    assert_eq!(
        texts(&other.receive("rolling", 10, 0, true).expect("receive")),
        ["b", "c"]
    );
    let dead = c.receive("dlq", 10, 5_000, true).expect("receive");
    assert_eq!(texts(&dead), ["a"]);
    assert_eq!(header(&dead[0], "x-death-reason"), Some("max-length"));
}

/// The body of backlog message `i`: its number, padded to 1 KiB.
fn numbered(i: usize) -> Vec<u8> {
    let mut body = format!("{i:08}").into_bytes();
    body.resize(1024, b'.');
    body
}

/// Receives (auto-acked) until `n` messages came, checking each is the next number.
fn drain_in_order(c: &mut Client, queue: &str, from: usize, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut next = from;
    while next < from + n {
        assert!(Instant::now() < deadline, "stuck at message {next}");
        let want = (from + n - next).min(5_000) as u32;
        for r in c.receive(queue, want, 1_000, true).expect("receive") {
            assert_eq!(r.body, numbered(next), "message {next} in its place");
            next += 1;
        }
    }
}

/// 156 MiB of bodies, past a queue's read-ahead (`READ_AHEAD_BYTES`, 64 MiB): the
/// broker keeps the rest as metadata, reads bodies back from the journal as the head
/// nears them, and a restart does not load them either.
#[test]
fn a_backlog_past_the_read_ahead_is_delivered_complete_and_in_order_across_a_restart() {
    const MIB: u64 = 1 << 20;
    let (batches, per_batch) = (160, 1_000);
    let mut b = Broker::start();
    let mut c = b.client();
    declare(&mut c, queue("backlog"));
    let before = b.rss_bytes().expect("rss");
    for batch in 0..batches {
        let bodies: Vec<Vec<u8>> = (0..per_batch)
            .map(|i| numbered(batch * per_batch + i))
            .collect();
        let refs: Vec<&[u8]> = bodies.iter().map(Vec::as_slice).collect();
        let stored = c
            .publish_batch("backlog", durable(), &refs)
            .expect("publish");
        assert_eq!(stored as usize, per_batch);
    }
    let total = batches * per_batch;
    let grown = b.rss_bytes().expect("rss").saturating_sub(before);
    assert!(
        grown < 110 * MIB,
        "{} MiB more for 156 MiB of bodies",
        grown / MIB
    );
    drain_in_order(&mut c, "backlog", 0, total / 4);
    b.restart();
    let mut c = b.client();
    let restarted = b.rss_bytes().expect("rss");
    assert!(
        restarted < before + 40 * MIB,
        "{} MiB after a restart with 117 MiB of bodies waiting",
        restarted / MIB
    );
    drain_in_order(&mut c, "backlog", total / 4, total - total / 4);
    assert!(c
        .receive("backlog", 10, 0, true)
        .expect("receive")
        .is_empty());
    let stats = c.queue_stats("backlog").expect("stats");
    assert_eq!((stats.ready, stats.in_flight), (0, 0));
}

/// Forwards every connection on `ip`, on a port none of `avoid`, to `to`, both ways,
/// until the test ends. (A port taken on another address can be handed out again, and
/// the forwarder must not sit where a test expects nothing.)
fn forward(ip: &str, avoid: &[u16], to: String) -> String {
    use std::net::{TcpListener, TcpStream};
    let listener =
        std::iter::repeat_with(|| TcpListener::bind((ip, 0)).expect("bind the forwarder"))
            .find(|l| l.local_addr().is_ok_and(|a| !avoid.contains(&a.port())))
            .expect("a free port");
    let addr = listener
        .local_addr()
        .expect("forwarder address")
        .to_string();
    std::thread::spawn(move || {
        for inbound in listener.incoming() {
            let Ok(inbound) = inbound else { return };
            let Ok(outbound) = TcpStream::connect(&to) else {
                return;
            };
            for (mut from, mut into) in [
                (
                    inbound.try_clone().expect("clone"),
                    outbound.try_clone().expect("clone"),
                ),
                (outbound, inbound),
            ] {
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut from, &mut into);
                    let _ = into.shutdown(std::net::Shutdown::Both);
                });
            }
        }
    });
    addr
}

#[test]
fn a_subscription_falls_back_to_the_bootstrap_port_when_the_owners_port_is_unreachable() {
    use peregrine::client::queues::Subscription;
    let b = Broker::start();
    let names: Vec<String> = (0..4).map(|i| format!("behind-{i}")).collect();
    let mut direct = Client::connect(&b.addr).expect("connect");
    direct.set_shard_aware(true);
    let mut ports = Vec::new();
    for name in &names {
        declare(&mut direct, queue(name));
        let (_, port) = direct.queue_owner_port(name).expect("owner").expect("port");
        ports.push(port);
    }
    // Only the main port is published, on another address: the shards' own ports,
    // bound to 127.0.0.1, cannot be reached through it.
    let bootstrap = forward("127.0.0.2", &ports, b.addr.clone());
    let mut c = Client::connect(&bootstrap).expect("connect through the forwarder");
    for (name, port) in names.iter().zip(ports) {
        assert!(
            std::net::TcpStream::connect(("127.0.0.2", port)).is_err(),
            "the owner's port must be unreachable for this test to mean anything"
        );
        c.publish(name, durable(), b"through").expect("publish");
        let mut sub = Subscription::open(&bootstrap, name, 10, false).expect("subscribe");
        let got = sub
            .next(Duration::from_secs(5))
            .expect("next")
            .expect("a pushed message");
        assert_eq!(text(&got), "through");
        sub.ack(&[got.delivery.handle]).expect("ack");
    }
}

/// A dead-letter move that reached a topic but not every target is retried (every
/// queue tick) until all take it: the topic keeps one record, found again by its
/// `x-origin` header, however often the move is retried. A move resumed after a crash
/// takes the same path, from the time its intent was journaled.
#[test]
fn a_retried_dead_letter_move_writes_its_topic_record_once() {
    use peregrine::native::messages::{BindingSpec, ExchangeType};
    let b = Broker::start();
    let mut c = b.client();
    b.create_topic("graveyard", 1);
    // A FIFO queue refuses a message without a group id: the move fails there.
    declare(
        &mut c,
        QueueSpec {
            fifo: true,
            ..queue("strict")
        },
    );
    c.declare_exchange("dlx", ExchangeType::Fanout)
        .expect("declare");
    for (queue, topic) in [(None, Some("graveyard")), (Some("strict"), None)] {
        c.bind(BindingSpec {
            exchange: "dlx".into(),
            queue: queue.map(String::from),
            topic: topic.map(String::from),
            routing_key: String::new(),
            headers: Vec::new(),
            match_all: true,
        })
        .expect("bind");
    }
    declare(
        &mut c,
        QueueSpec {
            dead_letter: Some("dlx".into()),
            ..queue("work")
        },
    );
    c.publish("work", durable(), b"doomed").expect("publish");
    let got = c.receive("work", 1, 0, false).expect("receive");
    c.nack("work", &[got[0].delivery.handle], false)
        .expect("reject");
    // Dozens of retries at one per 20 ms tick.
    std::thread::sleep(Duration::from_millis(600));
    let fetched = c.fetch("graveyard", 0, 0, 1 << 20, 0).expect("fetch");
    let mut origins = Vec::new();
    for (range, _) in peregrine_shards::batch::split(&fetched.batches).expect("batches") {
        let batch = &fetched.batches[range];
        for r in peregrine_shards::records::records(batch).expect("records") {
            let r = r.expect("record");
            assert_eq!(r.value, Some(&b"doomed"[..]));
            for (k, v) in r.headers().expect("headers") {
                if k == b"x-origin" {
                    origins.push(String::from_utf8_lossy(v.unwrap_or_default()).to_string());
                }
            }
        }
    }
    assert_eq!(origins, ["work/0"], "one record, stamped with its origin");
    let stats = c.queue_stats("work").expect("stats");
    assert_eq!(stats.dead_lettered, 0, "the move is not finished");
    assert_eq!(stats.ready + stats.in_flight, 0, "nor back in its queue");
}

#[test]
fn a_batch_publisher_keeps_several_batches_in_flight_and_answers_each() {
    use peregrine::client::queues::BatchPublisher;
    let b = Broker::start();
    let mut c = b.client();
    declare(&mut c, queue("piped"));
    let mut client = b.client();
    client.set_shard_aware(true);
    let mut publisher = BatchPublisher::new(client, "piped", durable());
    assert_eq!(publisher.wait_oldest().expect("nothing to wait for"), None);
    // Ten batches of 3, up to four on the wire at once.
    let mut stored = Vec::new();
    for batch in 0..10 {
        let bodies: Vec<String> = (0..3).map(|i| format!("m-{batch}-{i}")).collect();
        let refs: Vec<&[u8]> = bodies.iter().map(|b| b.as_bytes()).collect();
        publisher.send(&refs).expect("send");
        if publisher.in_flight() == 4 {
            stored.push(publisher.wait_oldest().expect("answer").expect("in flight"));
        }
    }
    while let Some(n) = publisher.wait_oldest().expect("answer") {
        stored.push(n);
    }
    assert_eq!(
        stored,
        vec![3; 10],
        "every batch answered once, oldest first"
    );
    let got = c.receive("piped", 100, 1000, true).expect("receive");
    let want: Vec<String> = (0..10)
        .flat_map(|b| (0..3).map(move |i| format!("m-{b}-{i}")))
        .collect();
    assert_eq!(texts(&got), want, "in publish order");

    // A batch the broker refuses answers with the broker's error, and leaves the pipeline.
    let mut publisher = BatchPublisher::new(b.client(), "no-such-queue", durable());
    publisher.send(&[b"lost"]).expect("send");
    let err = publisher.wait_oldest().expect_err("unknown queue");
    assert_eq!(err.code(), Some(ErrorCode::UnknownQueue), "{err}");
    assert_eq!(publisher.in_flight(), 0);
}
