//! Topic configs changed through real admin clients (librdkafka's AlterConfigs through
//! the rdkafka crate, confluent-kafka's IncrementalAlterConfigs and AlterConfigs), a
//! group's committed offsets deleted with kafka-python's OffsetDelete, and the
//! authorized operations of Metadata (confluent-kafka's describe_topics, a raw Metadata
//! v10 for the cluster's) and DescribeGroups (describe_consumer_groups), each with its
//! refusals: invalid configs, members still subscribed, and
//! principals the ACLs do not allow.
//!
//! The Python side is tests/kafka_configs/admin.py; ACLs are granted with
//! tests/kafka_acls/admin.py. With `--acls` the principal is the name in the client's
//! certificate: `User:admin` is the super-user, the others start with no rights.

mod common;
use common::kafka_raw::RawKafka;
use common::pki::{arg, Pki};
use common::scripts::{finish, python};
use common::Broker;
use kafka_protocol::messages::{ApiKey, MetadataRequest, MetadataResponse};
use rdkafka::admin::{
    AdminClient, AdminOptions, AlterConfig, NewTopic, ResourceSpecifier, TopicReplication,
};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Every wait in this file ends by then.
const TIMEOUT: Duration = Duration::from_secs(20);
const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/kafka_configs/admin.py");
const ACL_SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/kafka_acls/admin.py");
/// The exit status the scripts use when a client library is missing.
const EXIT_NO_LIBRARY: i32 = 3;
const SUPER_USER: &str = "admin";
/// Kafka's "not asked for" value of the authorized-operations fields.
const OPERATIONS_NOT_ASKED: i32 = i32::MIN;

/// A broker and how its clients reach it: plaintext, or (`--acls`) TLS with client
/// certificates naming the principal.
struct Cluster {
    broker: Broker,
    pki: Option<Pki>,
}

impl Cluster {
    fn plain(extra: &[&str]) -> Cluster {
        Cluster {
            broker: Broker::start_with(extra),
            pki: None,
        }
    }

    /// With `--acls`, `admin` as the super-user and a TLS Kafka listener that requires
    /// client certificates (the plaintext one stays, for `User:ANONYMOUS`).
    fn secured() -> Cluster {
        let pki = Pki::new("configs CA");
        let (cert, key) = pki.server();
        let ca = pki.ca();
        let broker = Broker::start_with(&[
            "--tls-cert",
            arg(&cert),
            "--tls-key",
            arg(&key),
            "--tls-client-ca",
            arg(&ca),
            "--kafka-tls-addr",
            "127.0.0.1:0",
            "--acls",
            "--super-user",
            "User:admin",
        ]);
        Cluster {
            broker,
            pki: Some(pki),
        }
    }

    /// The Kafka address clients use (the TLS one when secured).
    fn addr(&self) -> String {
        if self.pki.is_none() {
            return self.broker.kafka_addr.clone();
        }
        self.broker
            .ready_line
            .split_whitespace()
            .find_map(|w| w.strip_prefix("kafka_tls="))
            .unwrap_or_else(|| panic!("no kafka_tls= in {}", self.broker.ready_line))
            .to_string()
    }

    /// (CA, certificate, key) arguments for `user`: "-" each without TLS.
    fn identity(&self, user: &str) -> [String; 3] {
        match &self.pki {
            None => ["-".into(), "-".into(), "-".into()],
            Some(pki) => {
                let (cert, key) = pki.issue(user, user, &[]);
                [arg(&pki.ca()), arg(&cert), arg(&key)].map(str::to_string)
            }
        }
    }

    /// librdkafka's settings for `user`.
    fn config(&self, user: &str) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", self.addr())
            .set("socket.timeout.ms", "10000")
            .set("message.timeout.ms", "10000");
        if self.pki.is_some() {
            let [ca, cert, key] = self.identity(user);
            c.set("security.protocol", "ssl")
                .set("ssl.ca.location", ca)
                .set("ssl.certificate.location", cert)
                .set("ssl.key.location", key);
        }
        c
    }

    /// Runs `script` COMMAND ARG as `user`: its results.
    fn run(&self, script: &str, user: &str, command: &str, arg: &Value) -> Vec<Value> {
        let [ca, cert, key] = self.identity(user);
        let child = Command::new(python())
            .args([script, &self.addr(), &ca, &cert, &key, command])
            .arg(arg.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start python");
        let (status, out) = finish(child, TIMEOUT + TIMEOUT);
        let status = status.unwrap_or_else(|| panic!("{command} hung: {out}"));
        assert_ne!(
            status.code(),
            Some(EXIT_NO_LIBRARY),
            "a client library is missing (set PEREGRINE_PYTHON or run .ci/run): {out}"
        );
        assert!(status.success(), "{command} failed: {out}");
        let line = out.lines().find(|l| l.starts_with('{')).unwrap_or_default();
        let answer: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {out}"));
        answer["results"].as_array().cloned().unwrap_or_default()
    }

    fn script(&self, user: &str, command: &str, arg: Value) -> Vec<Value> {
        self.run(SCRIPT, user, command, &arg)
    }

    /// One resource's outcome of IncrementalAlterConfigs (`ops`: (key, op, value)).
    fn incremental(&self, user: &str, resource: (&str, &str), ops: &[(&str, &str, &str)]) -> Value {
        self.alter(user, "incremental", resource, ops, false)
    }

    fn alter(
        &self,
        user: &str,
        api: &str,
        (kind, name): (&str, &str),
        ops: &[(&str, &str, &str)],
        validate_only: bool,
    ) -> Value {
        let configs: Vec<Value> = ops.iter().map(|(k, op, v)| json!([k, op, v])).collect();
        let resources = json!([{"type": kind, "name": name, "configs": configs}]);
        let arg = json!({"validate_only": validate_only, "resources": resources});
        self.script(user, api, arg)[0].clone()
    }

    /// A topic's configs as confluent-kafka describes them to `user` (or its error).
    fn described(&self, user: &str, topic: &str) -> Value {
        self.script(user, "describe", json!([topic]))[0].clone()
    }

    /// The super-user grants `bindings` (tests/kafka_acls/admin.py's form).
    fn grant(&self, bindings: &[Value]) {
        let results = self.run(ACL_SCRIPT, SUPER_USER, "create", &json!(bindings));
        assert_eq!(results, vec![Value::Null; bindings.len()], "{bindings:?}");
    }

    fn admin(&self, user: &str) -> AdminClient<DefaultClientContext> {
        self.config(user).create().expect("admin client")
    }

    /// Creates a topic as the super-user through librdkafka, with `configs`.
    fn create_topic(&self, name: &str, partitions: i32, configs: &[(&str, &str)]) {
        let mut topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
        for (k, v) in configs {
            topic = topic.set(k, v);
        }
        let created = block_on(self.admin(SUPER_USER).create_topics([&topic], &options()))
            .expect("create topics");
        for result in created {
            result.unwrap_or_else(|(t, e)| panic!("creating {t}: {e}"));
        }
    }

    /// A topic's configs as librdkafka describes them to the super-user.
    fn rdkafka_configs(&self, topic: &str) -> HashMap<String, String> {
        let described = block_on(
            self.admin(SUPER_USER)
                .describe_configs(&[ResourceSpecifier::Topic(topic)], &options()),
        )
        .expect("describe configs");
        let resource = described[0].as_ref().expect("topic configs");
        resource
            .entries
            .iter()
            .filter_map(|e| Some((e.name.clone(), e.value.clone()?)))
            .collect()
    }

    /// A group's committed offsets ("topic:partition" → offset), as kafka-python lists
    /// them to the super-user.
    fn committed(&self, group: &str) -> Value {
        self.script(SUPER_USER, "offsets", json!({"group": group}))[0].clone()
    }

    /// Commits `offsets` for `group` as `user`, outside any membership (a simple
    /// commit, as admin tools do).
    fn commit(&self, user: &str, group: &str, offsets: &[(&str, i32, i64)]) {
        let consumer: BaseConsumer = self
            .config(user)
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .create()
            .expect("consumer");
        let mut list = TopicPartitionList::new();
        for (topic, partition, offset) in offsets {
            list.add_partition_offset(topic, *partition, Offset::Offset(*offset))
                .expect("offset");
        }
        consumer.commit(&list, CommitMode::Sync).expect("commit");
    }

    /// (low, high) watermarks of partition 0.
    fn watermarks(&self, topic: &str) -> (i64, i64) {
        let consumer: BaseConsumer = self.config(SUPER_USER).create().expect("consumer");
        consumer
            .fetch_watermarks(topic, 0, TIMEOUT)
            .expect("watermarks")
    }
}

fn options() -> AdminOptions {
    AdminOptions::new().operation_timeout(Some(TIMEOUT))
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    futures_lite::future::block_on(f)
}

/// A binding from any host: (type, name, principal, operation), allowed.
fn allow(kind: &str, name: &str, principal: &str, op: &str) -> Value {
    json!({"type": kind, "name": name, "pattern": "literal", "principal": principal,
           "host": "*", "op": op, "perm": "allow"})
}

/// Waits until `check` holds, or fails with `what` after `TIMEOUT`.
fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + TIMEOUT;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn altered_configs_are_described_and_survive_a_restart() {
    let mut c = Cluster::plain(&[]);
    c.create_topic("orders", 2, &[("retention.ms", "60000")]);
    assert_eq!(c.rdkafka_configs("orders")["retention.ms"], "60000");

    // librdkafka's AlterConfigs: the whole set, so retention.ms (left out) goes back
    // to its default.
    let change = AlterConfig::new(ResourceSpecifier::Topic("orders"))
        .set("retention.bytes", "1048576")
        .set("segment.bytes", "1048576");
    let altered =
        block_on(c.admin(SUPER_USER).alter_configs([&change], &options())).expect("alter configs");
    assert!(altered[0].is_ok(), "{altered:?}");
    let configs = c.rdkafka_configs("orders");
    assert_eq!(configs["retention.bytes"], "1048576");
    assert_eq!(configs["segment.bytes"], "1048576");
    assert_eq!(
        configs["retention.ms"], "-1",
        "left out: back to the default"
    );

    // IncrementalAlterConfigs: only the keys named change.
    let done = c.incremental(
        SUPER_USER,
        ("topic", "orders"),
        &[
            ("retention.ms", "set", "3600000"),
            ("retention.bytes", "delete", ""),
        ],
    );
    assert_eq!(done, Value::Null);
    let expected = json!({"retention.ms": "3600000", "retention.bytes": "-1",
                          "segment.bytes": "1048576", "cleanup.policy": "delete",
                          "max.message.bytes": "1048588"});
    assert_eq!(c.described(SUPER_USER, "orders"), expected);
    let native = c.broker.client().topic("orders").expect("topic");
    assert_eq!(
        (
            native.retention_ms,
            native.retention_bytes,
            native.segment_bytes
        ),
        (Some(3_600_000), None, 1 << 20),
        "the engine runs with what was described"
    );

    // Durable: the same after a restart (kill -9, new ports).
    c.broker.restart();
    assert_eq!(c.described(SUPER_USER, "orders"), expected);
}

#[test]
fn bad_configs_are_refused_and_change_nothing() {
    let c = Cluster::plain(&[]);
    c.create_topic("orders", 1, &[]);
    let before = c.described(SUPER_USER, "orders");
    let refused = |ops: &[(&str, &str, &str)]| c.incremental(SUPER_USER, ("topic", "orders"), ops);
    assert_eq!(
        refused(&[("min.insync.replicas", "set", "2")]),
        "INVALID_CONFIG"
    );
    assert_eq!(
        refused(&[("retention.ms", "append", "5")]),
        "INVALID_CONFIG"
    );
    assert_eq!(
        refused(&[("cleanup.policy", "set", "compact")]),
        "INVALID_CONFIG"
    );
    assert_eq!(
        refused(&[("cleanup.policy", "subtract", "delete")]),
        "INVALID_CONFIG"
    );
    assert_eq!(
        refused(&[("segment.bytes", "set", "1000")]),
        "INVALID_CONFIG"
    );
    assert_eq!(
        refused(&[("max.message.bytes", "set", "-1")]),
        "INVALID_CONFIG"
    );
    assert_eq!(
        refused(&[("retention.ms", "set", "soon")]),
        "INVALID_CONFIG"
    );
    // One bad key refuses the whole resource: the good one is not applied either.
    assert_eq!(
        refused(&[
            ("retention.ms", "set", "1000"),
            ("compression.type", "set", "lz4")
        ]),
        "INVALID_CONFIG"
    );
    // The legacy API refuses the same way.
    let legacy = c.alter(
        SUPER_USER,
        "legacy",
        ("topic", "orders"),
        &[
            ("retention.ms", "set", "1000"),
            ("unclean.leader.election.enable", "set", "true"),
        ],
        false,
    );
    assert_eq!(legacy, "INVALID_CONFIG");
    // validate_only: a valid change is answered as valid, an invalid one refused, and
    // neither is applied.
    for api in ["incremental", "legacy"] {
        let valid = [("retention.ms", "set", "1000")];
        let checked = c.alter(SUPER_USER, api, ("topic", "orders"), &valid, true);
        assert_eq!(checked, Value::Null, "{api}");
        let invalid = [("segment.bytes", "set", "1")];
        let checked = c.alter(SUPER_USER, api, ("topic", "orders"), &invalid, true);
        assert_eq!(checked, "INVALID_CONFIG", "{api}");
    }
    assert_eq!(c.described(SUPER_USER, "orders"), before);
    // No such topic; a broker's settings are flags, not configs.
    let ops = [("retention.ms", "set", "1000")];
    assert_eq!(
        c.incremental(SUPER_USER, ("topic", "never-was"), &ops),
        "UNKNOWN_TOPIC_OR_PART",
        "librdkafka's name for UNKNOWN_TOPIC_OR_PARTITION"
    );
    let broker = [("log.retention.ms", "set", "1000")];
    assert_eq!(
        c.incremental(SUPER_USER, ("broker", "0"), &broker),
        "INVALID_REQUEST"
    );
}

#[test]
fn a_lower_retention_deletes_old_segments_of_a_running_topic() {
    let c = Cluster::plain(&["--retention-check-ms", "100"]);
    c.create_topic("logs", 1, &[("segment.bytes", "65536")]);
    // Small batches, so the log rolls many 64 KiB segments.
    let producer: BaseProducer = c
        .config(SUPER_USER)
        .set("acks", "all")
        .set("batch.size", "16384")
        .set("linger.ms", "0")
        .create()
        .expect("producer");
    let payload = vec![b'x'; 1024];
    let messages = 400;
    for _ in 0..messages {
        producer
            .send(BaseRecord::<(), _>::to("logs").payload(&payload))
            .map_err(|(e, _)| e)
            .expect("enqueue");
        producer.poll(Duration::ZERO);
    }
    producer.flush(TIMEOUT).expect("flush");
    let (low, high) = c.watermarks("logs");
    assert_eq!(
        (low, high),
        (0, messages),
        "no retention yet: everything kept"
    );

    let done = c.incremental(
        SUPER_USER,
        ("topic", "logs"),
        &[("retention.bytes", "65536")].map(|(k, v)| (k, "set", v)),
    );
    assert_eq!(done, Value::Null);
    eventually("the retention pass to delete old segments", || {
        c.watermarks("logs").0 > 0
    });
    let (low, high) = c.watermarks("logs");
    assert_eq!(high, messages, "retention never touches the end");
    // At least the 64 KiB bound is kept: more than 50 records of 1 KiB and overhead.
    assert!(
        high - low > 50,
        "less than the retention bound kept: low watermark {low}"
    );
}

#[test]
fn offsets_are_deleted_unless_a_member_is_subscribed_to_the_topic() {
    let c = Cluster::plain(&[]);
    c.create_topic("t", 2, &[]);
    c.create_topic("u", 1, &[]);
    c.commit(SUPER_USER, "g", &[("t", 0, 5), ("t", 1, 7), ("u", 0, 3)]);
    assert_eq!(c.committed("g"), json!({"t:0": 5, "t:1": 7, "u:0": 3}));

    // A member subscribed to t keeps t's offsets in use.
    let member: BaseConsumer = c
        .config(SUPER_USER)
        .set("group.id", "g")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    member.subscribe(&["t"]).expect("subscribe");
    eventually("the member to be assigned t", || {
        let _ = member.poll(Duration::from_millis(100));
        member.assignment().is_ok_and(|a| a.count() > 0)
    });
    let delete = |partitions: Value| {
        c.script(
            SUPER_USER,
            "delete_offsets",
            json!({"group": "g", "partitions": partitions}),
        )[0]
        .clone()
    };
    assert_eq!(
        delete(json!([["t", 0], ["u", 0], ["t", 9]])),
        json!({"error": null, "partitions": {
            "t:0": "GROUP_SUBSCRIBED_TO_TOPIC", "u:0": null, "t:9": "UNKNOWN_TOPIC_OR_PARTITION"}})
    );
    assert_eq!(c.committed("g"), json!({"t:0": 5, "t:1": 7}));

    // Once the member has left, t's go too.
    member.unsubscribe();
    drop(member);
    eventually("the member to leave and t's offsets to be deleted", || {
        let answer = delete(json!([["t", 0], ["t", 1]]));
        answer["partitions"] == json!({"t:0": null, "t:1": null})
    });
    assert_eq!(c.committed("g"), json!({}));
    let nobody = c.script(
        SUPER_USER,
        "delete_offsets",
        json!({"group": "nobody", "partitions": [["t", 0]]}),
    );
    assert_eq!(
        nobody[0],
        json!({"error": "GROUP_ID_NOT_FOUND", "partitions": {}})
    );
}

#[test]
fn altering_configs_needs_alter_configs_on_the_topic_or_the_cluster() {
    let c = Cluster::secured();
    c.create_topic("orders", 1, &[]);
    let before = c.described(SUPER_USER, "orders");
    let ops = [("retention.ms", "set", "1000")];
    assert_eq!(
        c.incremental("alice", ("topic", "orders"), &ops),
        "TOPIC_AUTHORIZATION_FAILED"
    );
    let legacy = c.alter("alice", "legacy", ("topic", "orders"), &ops, false);
    assert_eq!(legacy, "TOPIC_AUTHORIZATION_FAILED");
    // librdkafka through the rdkafka crate: its per-resource errors are not passed on,
    // but the topic must not have changed.
    let change = AlterConfig::new(ResourceSpecifier::Topic("orders")).set("retention.ms", "1000");
    let _ = block_on(c.admin("alice").alter_configs([&change], &options()));
    assert_eq!(
        c.described(SUPER_USER, "orders"),
        before,
        "a refused alter changed the topic"
    );
    // Refused before anything else: a topic that does not exist looks the same.
    assert_eq!(
        c.incremental("alice", ("topic", "never-was"), &ops),
        "TOPIC_AUTHORIZATION_FAILED"
    );
    let broker = [("log.retention.ms", "set", "1000")];
    assert_eq!(
        c.incremental("alice", ("broker", "0"), &broker),
        "CLUSTER_AUTHORIZATION_FAILED"
    );

    c.grant(&[allow("topic", "orders", "User:alice", "alter_configs")]);
    assert_eq!(
        c.incremental("alice", ("topic", "orders"), &ops),
        Value::Null
    );
    assert_eq!(c.described(SUPER_USER, "orders")["retention.ms"], "1000");
    let via_rdkafka =
        AlterConfig::new(ResourceSpecifier::Topic("orders")).set("retention.ms", "2000");
    let altered = block_on(c.admin("alice").alter_configs([&via_rdkafka], &options()))
        .expect("alter configs");
    assert!(altered[0].is_ok(), "{altered:?}");
    // AlterConfigs implies DescribeConfigs, as in Kafka.
    assert_eq!(c.described("alice", "orders")["retention.ms"], "2000");
    // A topic's rights do not reach the broker; the super-user's do, and the broker
    // then says its settings are not configs.
    assert_eq!(
        c.incremental("alice", ("broker", "0"), &broker),
        "CLUSTER_AUTHORIZATION_FAILED"
    );
    assert_eq!(
        c.incremental(SUPER_USER, ("broker", "0"), &broker),
        "INVALID_REQUEST"
    );
}

#[test]
fn offset_delete_needs_delete_on_the_group_and_read_on_the_topic() {
    let c = Cluster::secured();
    c.create_topic("t", 1, &[]);
    c.commit(SUPER_USER, "g", &[("t", 0, 4)]);
    let delete = || {
        c.script(
            "alice",
            "delete_offsets",
            json!({"group": "g", "partitions": [["t", 0]]}),
        )[0]
        .clone()
    };
    // Describe lets alice find the coordinator; the deletion itself needs Delete.
    c.grant(&[allow("group", "g", "User:alice", "describe")]);
    assert_eq!(
        delete(),
        json!({"error": "GROUP_AUTHORIZATION_FAILED", "partitions": {}})
    );
    c.grant(&[allow("group", "g", "User:alice", "delete")]);
    assert_eq!(
        delete(),
        json!({"error": null, "partitions": {"t:0": "TOPIC_AUTHORIZATION_FAILED"}})
    );
    assert_eq!(
        c.committed("g"),
        json!({"t:0": 4}),
        "a refused delete deleted"
    );
    c.grant(&[allow("topic", "t", "User:alice", "read")]);
    assert_eq!(
        delete(),
        json!({"error": null, "partitions": {"t:0": null}})
    );
    assert_eq!(c.committed("g"), json!({}));
}

/// Metadata v10 on the plaintext listener (`User:ANONYMOUS`), asking for both fields:
/// (cluster operations, topic's operations).
fn raw_operations(c: &Cluster, topic: &str, ask: bool) -> (i32, i32) {
    use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
    use kafka_protocol::messages::TopicName;
    use kafka_protocol::protocol::StrBytes;
    let req = MetadataRequest::default()
        .with_topics(Some(vec![MetadataRequestTopic::default().with_name(Some(
            TopicName(StrBytes::from_string(topic.to_string())),
        ))]))
        .with_include_cluster_authorized_operations(ask)
        .with_include_topic_authorized_operations(ask);
    let mut raw = RawKafka::connect(&c.broker.kafka_addr);
    let resp: MetadataResponse = raw.call(ApiKey::Metadata, 10, &req);
    (
        resp.cluster_authorized_operations,
        resp.topics[0].topic_authorized_operations,
    )
}

#[test]
fn metadata_reports_the_operations_the_acls_allow() {
    let c = Cluster::secured();
    c.create_topic("orders", 1, &[]);
    let ops = |user: &str| c.script(user, "topic_ops", json!(["orders"]))[0].clone();
    assert_eq!(
        ops(SUPER_USER),
        json!([
            "ALTER",
            "ALTER_CONFIGS",
            "CREATE",
            "DELETE",
            "DESCRIBE",
            "DESCRIBE_CONFIGS",
            "READ",
            "WRITE"
        ])
    );
    assert_eq!(ops("alice"), "TOPIC_AUTHORIZATION_FAILED");
    c.grant(&[allow("topic", "orders", "User:alice", "read")]);
    assert_eq!(
        ops("alice"),
        json!(["DESCRIBE", "READ"]),
        "Read implies Describe"
    );
    c.grant(&[allow("topic", "orders", "User:alice", "alter_configs")]);
    assert_eq!(
        ops("alice"),
        json!(["ALTER_CONFIGS", "DESCRIBE", "DESCRIBE_CONFIGS", "READ"])
    );

    // The cluster's, on the wire (Metadata v8-10); a refused topic carries none.
    let describe = 1 << 8;
    assert_eq!(
        raw_operations(&c, "orders", false),
        (OPERATIONS_NOT_ASKED, OPERATIONS_NOT_ASKED)
    );
    assert_eq!(
        raw_operations(&c, "orders", true),
        (0, OPERATIONS_NOT_ASKED)
    );
    c.grant(&[
        allow("cluster", "kafka-cluster", "User:ANONYMOUS", "describe"),
        allow("topic", "orders", "User:ANONYMOUS", "describe"),
    ]);
    assert_eq!(raw_operations(&c, "orders", true), (describe, describe));

    // DescribeCluster (KIP-700), as confluent-kafka's describe_cluster asks it: the
    // cluster's operations for alice are those her ACLs allow, none at first.
    let cluster = |user: &str| c.script(user, "cluster", json!(null))[0].clone();
    let all = cluster(SUPER_USER);
    assert_eq!(
        (&all["cluster_id"], &all["controller"]),
        (&json!("peregrine"), &json!(true))
    );
    assert!(all["nodes"].as_u64().is_some_and(|n| n >= 1), "{all}");
    assert!(
        all["ops"]
            .as_array()
            .is_some_and(|ops| ops.contains(&json!("ALTER_CONFIGS")) && ops.len() > 5),
        "{all}"
    );
    // No operation: librdkafka reports an empty bitfield as no list at all.
    let none = cluster("alice")["ops"].clone();
    assert!(none.is_null() || none == json!([]), "{none}");
    c.grant(&[allow(
        "cluster",
        "kafka-cluster",
        "User:alice",
        "alter_configs",
    )]);
    assert_eq!(
        cluster("alice")["ops"],
        json!(["ALTER_CONFIGS", "DESCRIBE_CONFIGS"]),
        "AlterConfigs implies DescribeConfigs"
    );
    // Controllers are a KRaft endpoint of their own: refused by name, nothing listed.
    let req = kafka_protocol::messages::DescribeClusterRequest::default().with_endpoint_type(2);
    let mut raw = RawKafka::connect(&c.broker.kafka_addr);
    let resp: kafka_protocol::messages::DescribeClusterResponse =
        raw.call(ApiKey::DescribeCluster, 1, &req);
    assert_eq!(
        (resp.error_code, resp.brokers.len()),
        (
            kafka_protocol::ResponseError::UnsupportedEndpointType.code(),
            0
        )
    );
}

#[test]
fn describe_groups_reports_the_operations_the_acls_allow() {
    let c = Cluster::secured();
    c.create_topic("t", 1, &[]);
    c.commit(SUPER_USER, "g", &[("t", 0, 1)]);
    let ops = |user: &str| c.script(user, "group_ops", json!(["g"]))[0].clone();
    assert_eq!(ops(SUPER_USER), json!(["DELETE", "DESCRIBE", "READ"]));
    assert_eq!(ops("alice"), "GROUP_AUTHORIZATION_FAILED");
    c.grant(&[allow("group", "g", "User:alice", "describe")]);
    assert_eq!(ops("alice"), json!(["DESCRIBE"]));
    c.grant(&[allow("group", "g", "User:alice", "read")]);
    assert_eq!(ops("alice"), json!(["DESCRIBE", "READ"]));
}

/// The delivery reports of a producer: the first one's outcome.
#[derive(Default)]
struct FirstDelivery(std::sync::Mutex<Option<Result<(), rdkafka::types::RDKafkaErrorCode>>>);

impl rdkafka::ClientContext for FirstDelivery {}

impl rdkafka::producer::ProducerContext for FirstDelivery {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &rdkafka::producer::DeliveryResult<'_>, _: ()) {
        let outcome = match result {
            Ok(_) => Ok(()),
            Err((e, _)) => Err(e
                .rdkafka_error_code()
                .unwrap_or(rdkafka::types::RDKafkaErrorCode::Fail)),
        };
        let mut first = self.0.lock().expect("lock");
        first.get_or_insert(outcome);
    }
}

/// Sends one record of `bytes` through a fresh producer and waits for its delivery
/// report: `Ok` or the broker's error code.
fn produce_one(
    c: &Cluster,
    topic: &str,
    bytes: usize,
) -> Result<(), rdkafka::types::RDKafkaErrorCode> {
    let producer: BaseProducer<FirstDelivery> = c
        .config(SUPER_USER)
        .set("acks", "all")
        .set("linger.ms", "0")
        // The client's own bound stays out of the way: the broker decides.
        .set("message.max.bytes", "4000000")
        .create_with_context(FirstDelivery::default())
        .expect("producer");
    let payload = vec![b'm'; bytes];
    producer
        .send(BaseRecord::<(), _>::to(topic).payload(&payload))
        .map_err(|(e, _)| e)
        .expect("enqueue");
    let deadline = Instant::now() + TIMEOUT;
    loop {
        producer.poll(Duration::from_millis(100));
        if let Some(outcome) = *producer.context().0.lock().expect("lock") {
            return outcome;
        }
        assert!(
            Instant::now() < deadline,
            "no delivery report for {bytes} bytes"
        );
    }
}

/// A native produce of one record of `bytes` to partition 0: `Ok` or the error code.
fn native_produce(
    c: &Cluster,
    topic: &str,
    bytes: usize,
) -> Result<(), Option<peregrine::native::messages::ErrorCode>> {
    let record = peregrine::client::records::OutRecord {
        key: None,
        value: bytes::Bytes::from(vec![b'n'; bytes]),
        timestamp_ms: 1,
    };
    let batch = peregrine::client::records::encode_batch(&[record]).expect("encode");
    let mut client = c.broker.client();
    client
        .produce(topic, 0, peregrine::native::messages::Acks::Leader, &batch)
        .map(|_| ())
        .map_err(|e| e.code())
}

#[test]
fn a_topics_max_message_bytes_bounds_its_batches_for_every_producer() {
    use rdkafka::types::RDKafkaErrorCode::MessageSizeTooLarge;
    let mut c = Cluster::plain(&[]);
    c.create_topic("small", 1, &[("max.message.bytes", "4096")]);
    assert_eq!(c.rdkafka_configs("small")["max.message.bytes"], "4096");
    assert_eq!(produce_one(&c, "small", 1000), Ok(()));
    assert_eq!(produce_one(&c, "small", 8000), Err(MessageSizeTooLarge));
    // The engine holds the bound for every front end, the native protocol's too.
    assert_eq!(native_produce(&c, "small", 1000), Ok(()));
    assert_eq!(
        native_produce(&c, "small", 8000),
        Err(Some(
            peregrine::native::messages::ErrorCode::MessageTooLarge
        ))
    );

    // Above the broker's message.max.bytes (1048588), as Kafka allows a topic.
    let done = c.incremental(
        SUPER_USER,
        ("topic", "small"),
        &[("max.message.bytes", "set", "3000000")],
    );
    assert_eq!(done, Value::Null);
    assert_eq!(produce_one(&c, "small", 2_000_000), Ok(()));
    // Durable, as the topic's other settings (kill -9, new ports).
    c.broker.restart();
    assert_eq!(c.rdkafka_configs("small")["max.message.bytes"], "3000000");
    // Deleted: back to the broker's default, which refuses the same record.
    let done = c.incremental(
        SUPER_USER,
        ("topic", "small"),
        &[("max.message.bytes", "delete", "")],
    );
    assert_eq!(done, Value::Null);
    assert_eq!(c.rdkafka_configs("small")["max.message.bytes"], "1048588");
    assert_eq!(
        produce_one(&c, "small", 2_000_000),
        Err(MessageSizeTooLarge)
    );
    // Exactly what was acknowledged is in the log.
    assert_eq!(c.watermarks("small"), (0, 3));
}
