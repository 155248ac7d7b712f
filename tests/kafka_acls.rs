//! Kafka ACLs (`--acls`) with real clients: confluent-kafka's AdminClient creates,
//! describes and deletes them (tests/kafka_acls/admin.py), librdkafka producers,
//! consumers and transactional producers are refused and then allowed, and a refused
//! request leaves the log as it was.
//!
//! The principal is the name in the client's certificate (mTLS; every certificate is
//! made here with rcgen): `User:admin` is the broker's super-user and sets things up,
//! the others start with no rights at all.

mod common;
use common::kafka_raw::RawKafka;
use common::scripts::{finish, python};
use common::Broker;
use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::{
    ApiKey, CreateAclsRequest, CreateAclsResponse, DeleteAclsRequest, DeleteAclsResponse,
    DescribeAclsRequest, DescribeAclsResponse, GroupId, OffsetCommitRequest, OffsetCommitResponse,
    OffsetFetchRequest, OffsetFetchResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use rcgen::{BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, KeyPair};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::ClientContext;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Every wait in this file ends by then.
const TIMEOUT: Duration = Duration::from_secs(20);
const ADMIN_SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/kafka_acls/admin.py");
/// The exit status admin.py uses when confluent-kafka is missing.
const EXIT_NO_LIBRARY: i32 = 3;
const SUPER_USER: &str = "admin";

/// A CA and what it signed, as PEM files in a temporary directory.
struct Pki {
    dir: tempfile::TempDir,
    ca_cert: rcgen::Certificate,
    ca_key: KeyPair,
}

impl Pki {
    fn new() -> Pki {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, "acl CA");
        let ca_key = KeyPair::generate().expect("key");
        let ca_cert = params.self_signed(&ca_key).expect("CA");
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("ca.pem"), ca_cert.pem()).expect("write CA");
        Pki {
            dir,
            ca_cert,
            ca_key,
        }
    }

    fn ca(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// A certificate for `sans` named `cn`, written as NAME.pem and NAME.key (once).
    fn issue(&self, name: &str, cn: &str, sans: &[&str]) -> (PathBuf, PathBuf) {
        let (cert_path, key_path) = (
            self.dir.path().join(format!("{name}.pem")),
            self.dir.path().join(format!("{name}.key")),
        );
        if cert_path.exists() {
            return (cert_path, key_path);
        }
        let sans: Vec<String> = sans.iter().map(|s| s.to_string()).collect();
        let mut params = CertificateParams::new(sans).expect("params");
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, cn);
        let key = KeyPair::generate().expect("key");
        let cert = params
            .signed_by(&key, &self.ca_cert, &self.ca_key)
            .expect("sign");
        std::fs::write(&cert_path, cert.pem()).expect("write cert");
        std::fs::write(&key_path, key.serialize_pem()).expect("write key");
        (cert_path, key_path)
    }
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// A broker whose Kafka TLS listener requires client certificates, and its clients.
struct Secured {
    pki: Pki,
    broker: Broker,
    /// The Kafka TLS address.
    addr: String,
}

impl Secured {
    /// With `--acls` and `admin` as the super-user, plus `extra` flags.
    fn start(extra: &[&str]) -> Secured {
        let mut flags = vec!["--acls", "--super-user", "User:admin"];
        flags.extend_from_slice(extra);
        Secured::start_with(&flags)
    }

    fn start_with(flags: &[&str]) -> Secured {
        let pki = Pki::new();
        let (cert, key) = pki.issue("server", "peregrine", &["localhost", "127.0.0.1"]);
        let ca = pki.ca();
        let mut args = vec![
            "--tls-cert",
            s(&cert),
            "--tls-key",
            s(&key),
            "--tls-client-ca",
            s(&ca),
            "--kafka-tls-addr",
            "127.0.0.1:0",
        ];
        args.extend_from_slice(flags);
        let broker = Broker::start_with(&args);
        let addr = broker
            .ready_line
            .split_whitespace()
            .find_map(|w| w.strip_prefix("kafka_tls="))
            .unwrap_or_else(|| panic!("no kafka_tls= in {}", broker.ready_line))
            .to_string();
        Secured { pki, broker, addr }
    }

    /// librdkafka's settings for the client whose certificate names `user`.
    fn config(&self, user: &str) -> ClientConfig {
        let (cert, key) = self.pki.issue(user, user, &[]);
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.addr)
            .set("security.protocol", "ssl")
            .set("ssl.ca.location", s(&self.pki.ca()))
            .set("ssl.certificate.location", s(&cert))
            .set("ssl.key.location", s(&key))
            .set("socket.timeout.ms", "10000")
            .set("message.timeout.ms", "10000");
        c
    }

    /// Runs admin.py as `user`: the results of COMMAND, one per binding or filter.
    fn acls(&self, user: &str, command: &str, arg: &Value) -> Vec<Value> {
        let (cert, key) = self.pki.issue(user, user, &[]);
        let child = Command::new(python())
            .args([
                ADMIN_SCRIPT,
                &self.addr,
                s(&self.pki.ca()),
                s(&cert),
                s(&key),
            ])
            .args([command, &arg.to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start python");
        let (status, out) = finish(child, TIMEOUT + TIMEOUT);
        let status = status.unwrap_or_else(|| panic!("admin.py {command} hung: {out}"));
        assert_ne!(
            status.code(),
            Some(EXIT_NO_LIBRARY),
            "confluent-kafka missing (set PEREGRINE_PYTHON or run .ci/run): {out}"
        );
        assert!(status.success(), "admin.py {command} failed: {out}");
        let line = out.lines().find(|l| l.starts_with('{')).unwrap_or_default();
        let answer: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {out}"));
        answer["results"].as_array().cloned().unwrap_or_default()
    }

    /// The super-user creates `bindings`; every one must succeed.
    fn grant(&self, bindings: &[Value]) {
        let results = self.acls(SUPER_USER, "create", &json!(bindings));
        assert_eq!(results, vec![Value::Null; bindings.len()], "{bindings:?}");
    }

    fn create_topic(&self, name: &str, partitions: i32) {
        let admin: AdminClient<DefaultClientContext> =
            self.config(SUPER_USER).create().expect("admin client");
        let topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
        let options = AdminOptions::new().operation_timeout(Some(TIMEOUT));
        let created = futures_lite::future::block_on(admin.create_topics([&topic], &options))
            .expect("create topics");
        for result in created {
            result.unwrap_or_else(|(t, e)| panic!("creating {t}: {e}"));
        }
    }

    /// The topic's end offset (partition 0), as the super-user sees it.
    fn end_offset(&self, topic: &str) -> i64 {
        let consumer: BaseConsumer = self.config(SUPER_USER).create().expect("consumer");
        let (_, high) = consumer
            .fetch_watermarks(topic, 0, TIMEOUT)
            .expect("watermarks");
        high
    }

    /// The topics the super-user's metadata shows.
    fn topic_exists(&self, topic: &str) -> bool {
        let consumer: BaseConsumer = self.config(SUPER_USER).create().expect("consumer");
        let metadata = consumer.fetch_metadata(None, TIMEOUT).expect("metadata");
        let exists = metadata.topics().iter().any(|t| t.name() == topic);
        exists
    }
}

/// A binding from any host: (type, name, pattern, principal, operation, permission).
fn acl(kind: &str, name: &str, pattern: &str, principal: &str, op: &str, perm: &str) -> Value {
    acl_from(kind, name, pattern, principal, "*", op, perm)
}

fn acl_from(
    kind: &str,
    name: &str,
    pattern: &str,
    principal: &str,
    host: &str,
    op: &str,
    perm: &str,
) -> Value {
    json!({"type": kind, "name": name, "pattern": pattern, "principal": principal,
           "host": host, "op": op, "perm": perm})
}

/// What librdkafka reported for each message it was given.
#[derive(Default)]
struct Deliveries(Mutex<Vec<Result<i64, RDKafkaErrorCode>>>);

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        let outcome = match result {
            Ok(m) => Ok(m.offset()),
            Err((e, _)) => Err(e.rdkafka_error_code().unwrap_or(RDKafkaErrorCode::Fail)),
        };
        self.0.lock().expect("lock").push(outcome);
    }
}

/// Produces one message with a fresh producer (no metadata cached from an earlier
/// refusal): its offset, or the error librdkafka delivered it with.
fn produce_one(config: &ClientConfig, topic: &str, value: &str) -> Result<i64, RDKafkaErrorCode> {
    let producer: BaseProducer<Deliveries> = config
        .clone()
        .set("acks", "all")
        .create_with_context(Deliveries::default())
        .expect("producer");
    producer
        .send(BaseRecord::to(topic).key("k").payload(value))
        .map_err(|(e, _)| panic!("enqueue: {e}"))
        .unwrap_or(());
    let _ = producer.flush(TIMEOUT);
    let delivered = producer.context().0.lock().expect("lock").pop();
    delivered.unwrap_or(Err(RDKafkaErrorCode::MessageTimedOut))
}

#[test]
fn acls_are_created_described_and_deleted_through_the_admin_client() {
    let b = Secured::start(&[]);
    let write = acl("topic", "orders", "literal", "User:alice", "write", "allow");
    let read_logs = acl("topic", "logs-", "prefixed", "User:alice", "read", "allow");
    let deny_group = acl("group", "g1", "literal", "User:*", "read", "deny");
    let cluster = acl_from(
        "cluster",
        "kafka-cluster",
        "literal",
        "User:bob",
        "127.0.0.1",
        "describe",
        "allow",
    );
    let all = [
        write.clone(),
        read_logs.clone(),
        deny_group.clone(),
        cluster.clone(),
    ];
    b.grant(&all);

    let described = |filter: Value| -> Value { b.acls(SUPER_USER, "describe", &filter)[0].clone() };
    let mut alices = vec![read_logs.clone(), write.clone()];
    alices.sort_by_key(|v| v.to_string());
    assert_eq!(described(json!({"principal": "User:alice"})), json!(alices));
    assert_eq!(described(json!({})).as_array().map(Vec::len), Some(4));
    // MATCH: every binding that applies to topic logs-app (the prefixed one).
    assert_eq!(
        described(json!({"type": "topic", "name": "logs-app", "pattern": "match"})),
        json!([read_logs])
    );
    assert_eq!(
        described(json!({"type": "cluster"})),
        json!([cluster]),
        "the cluster binding keeps its host"
    );

    // Alice may not manage ACLs: refused, and nothing changes.
    let bogus = acl("topic", "*", "literal", "User:alice", "all", "allow");
    assert_eq!(
        b.acls("alice", "create", &json!([bogus])),
        vec![json!("CLUSTER_AUTHORIZATION_FAILED")]
    );
    assert_eq!(
        b.acls("alice", "delete", &json!([{}])),
        vec![json!("CLUSTER_AUTHORIZATION_FAILED")]
    );
    // librdkafka drops DescribeAcls' error code (it reads it and answers the empty
    // list); `describe_is_refused_on_the_wire` checks the code itself.
    assert_eq!(b.acls("alice", "describe", &json!({})), vec![json!([])]);
    assert_eq!(described(json!({})).as_array().map(Vec::len), Some(4));
    // Bob may describe them (Describe on the cluster from 127.0.0.1), not change them.
    assert_eq!(
        b.acls("bob", "describe", &json!({"type": "group"}))[0],
        json!([deny_group])
    );
    assert_eq!(
        b.acls("bob", "delete", &json!([{}])),
        vec![json!("CLUSTER_AUTHORIZATION_FAILED")]
    );

    // A creation that is not an ACL is refused alone.
    let no_principal = acl("topic", "t", "literal", "alice", "read", "allow");
    let fine = acl("topic", "t", "literal", "User:carol", "read", "allow");
    let results = b.acls(SUPER_USER, "create", &json!([no_principal, fine]));
    assert_eq!(results[0], json!("INVALID_REQUEST"), "{results:?}");
    assert_eq!(results[1], Value::Null, "{results:?}");

    // Deleting answers what was deleted; the rest stays.
    let deleted = b.acls(
        SUPER_USER,
        "delete",
        &json!([{"principal": "User:alice", "op": "write"}, {"principal": "User:carol"}]),
    );
    assert_eq!(deleted, vec![json!([write]), json!([fine])]);
    assert_eq!(
        described(json!({"principal": "User:alice"})),
        json!([read_logs])
    );
    assert_eq!(described(json!({})).as_array().map(Vec::len), Some(3));
}

#[test]
fn a_refused_produce_leaves_the_log_unchanged_and_write_allows_it() {
    let b = Secured::start(&[]);
    b.create_topic("orders", 1);
    assert_eq!(produce_one(&b.config(SUPER_USER), "orders", "first"), Ok(0));
    let alice = b.config("alice");
    // No ACL: the topic is not even described to alice.
    assert_eq!(
        produce_one(&alice, "orders", "no rights"),
        Err(RDKafkaErrorCode::TopicAuthorizationFailed)
    );
    // Describe only: alice sees the topic and her Produce request itself is refused.
    b.grant(&[acl(
        "topic",
        "orders",
        "literal",
        "User:alice",
        "describe",
        "allow",
    )]);
    // (An ACL is on every shard once CreateAcls is answered.)
    let metadata: BaseConsumer = alice.create().expect("client");
    let seen = metadata
        .fetch_metadata(Some("orders"), TIMEOUT)
        .expect("metadata");
    assert_eq!(seen.topics()[0].error(), None, "Describe shows the topic");
    let refused = produce_one(&alice, "orders", "describe only");
    assert_eq!(refused, Err(RDKafkaErrorCode::TopicAuthorizationFailed));
    assert_eq!(
        b.end_offset("orders"),
        1,
        "a refused produce wrote something"
    );

    b.grant(&[acl(
        "topic",
        "orders",
        "literal",
        "User:alice",
        "write",
        "allow",
    )]);
    assert_eq!(produce_one(&alice, "orders", "allowed"), Ok(1));
    assert_eq!(b.end_offset("orders"), 2);
}

/// Polls a fresh consumer of `topic` in `group` until it reads a message (its value) or
/// reports an error (its code), within `TIMEOUT`.
fn consume_first(
    config: &ClientConfig,
    group: &str,
    topic: &str,
) -> Result<String, RDKafkaErrorCode> {
    let consumer: BaseConsumer = config
        .clone()
        .set("group.id", group)
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    consumer.subscribe(&[topic]).expect("subscribe");
    let deadline = Instant::now() + TIMEOUT;
    while Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                return Ok(String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned())
            }
            Some(Err(KafkaError::MessageConsumption(code))) => return Err(code),
            Some(Err(e)) => {
                if let Some(code) = e.rdkafka_error_code() {
                    return Err(code);
                }
            }
            None => {}
        }
    }
    Err(RDKafkaErrorCode::OperationTimedOut)
}

#[test]
fn a_consumer_needs_read_on_its_group_and_on_the_topic() {
    let b = Secured::start(&[]);
    b.create_topic("events", 1);
    assert_eq!(produce_one(&b.config(SUPER_USER), "events", "e0"), Ok(0));
    let bob = b.config("bob");
    b.grant(&[acl(
        "topic", "events", "literal", "User:bob", "describe", "allow",
    )]);
    assert_eq!(
        consume_first(&bob, "bobs", "events"),
        Err(RDKafkaErrorCode::GroupAuthorizationFailed)
    );
    b.grant(&[acl("group", "bobs", "literal", "User:bob", "read", "allow")]);
    assert_eq!(
        consume_first(&bob, "bobs", "events"),
        Err(RDKafkaErrorCode::TopicAuthorizationFailed),
        "Describe is not Read: the fetch must be refused"
    );
    b.grant(&[acl(
        "topic", "events", "literal", "User:bob", "read", "allow",
    )]);
    assert_eq!(consume_first(&bob, "bobs", "events"), Ok("e0".to_string()));
}

#[test]
fn deny_wins_over_allow_and_super_users_need_no_acl() {
    let b = Secured::start(&[]);
    b.create_topic("open", 1);
    b.create_topic("locked", 1);
    b.grant(&[
        acl("topic", "*", "literal", "User:dave", "all", "allow"),
        acl("topic", "locked", "literal", "User:dave", "write", "deny"),
        acl("topic", "locked", "literal", "User:*", "all", "deny"),
    ]);
    let dave = b.config("dave");
    assert_eq!(produce_one(&dave, "open", "allowed by *"), Ok(0));
    assert_eq!(
        produce_one(&dave, "locked", "denied"),
        Err(RDKafkaErrorCode::TopicAuthorizationFailed)
    );
    assert_eq!(b.end_offset("locked"), 0);
    // The super-user is not bound by any ACL, deny included.
    assert_eq!(produce_one(&b.config(SUPER_USER), "locked", "admin"), Ok(0));
}

#[test]
fn a_prefixed_acl_covers_exactly_the_names_that_start_with_it() {
    let b = Secured::start(&[]);
    for t in ["logs-app", "logs-db", "logsx", "metrics"] {
        b.create_topic(t, 1);
    }
    b.grant(&[acl(
        "topic",
        "logs-",
        "prefixed",
        "User:erin",
        "write",
        "allow",
    )]);
    let erin = b.config("erin");
    assert_eq!(produce_one(&erin, "logs-app", "a"), Ok(0));
    assert_eq!(produce_one(&erin, "logs-db", "b"), Ok(0));
    for other in ["logsx", "metrics"] {
        assert_eq!(
            produce_one(&erin, other, "c"),
            Err(RDKafkaErrorCode::TopicAuthorizationFailed),
            "{other}"
        );
        assert_eq!(b.end_offset(other), 0);
    }
}

#[test]
fn an_acl_for_another_host_does_not_apply() {
    let b = Secured::start(&[]);
    b.create_topic("hosted", 1);
    b.grant(&[acl_from(
        "topic", "hosted", "literal", "User:hal", "10.9.8.7", "write", "allow",
    )]);
    let hal = b.config("hal");
    assert_eq!(
        produce_one(&hal, "hosted", "from 127.0.0.1"),
        Err(RDKafkaErrorCode::TopicAuthorizationFailed)
    );
    b.grant(&[acl_from(
        "topic",
        "hosted",
        "literal",
        "User:hal",
        "127.0.0.1",
        "write",
        "allow",
    )]);
    assert_eq!(produce_one(&hal, "hosted", "from 127.0.0.1"), Ok(0));
}

#[test]
fn metadata_shows_only_the_topics_the_client_may_describe() {
    let b = Secured::start(&[]);
    for t in ["visible", "hidden-1", "hidden-2"] {
        b.create_topic(t, 2);
    }
    b.grant(&[acl(
        "topic",
        "visible",
        "literal",
        "User:carol",
        "describe",
        "allow",
    )]);
    let carol: BaseConsumer = b.config("carol").create().expect("consumer");
    let metadata = carol.fetch_metadata(None, TIMEOUT).expect("metadata");
    let names: Vec<&str> = metadata.topics().iter().map(|t| t.name()).collect();
    assert_eq!(names, vec!["visible"]);
    let asked = carol
        .fetch_metadata(Some("hidden-1"), TIMEOUT)
        .expect("metadata");
    let topic = &asked.topics()[0];
    assert_eq!(topic.name(), "hidden-1");
    assert!(
        topic.partitions().is_empty(),
        "a hidden topic's partitions were shown"
    );
    assert_eq!(
        topic.error().map(RDKafkaErrorCode::from),
        Some(RDKafkaErrorCode::TopicAuthorizationFailed)
    );
}

#[test]
fn auto_creation_needs_create_and_a_refused_topic_is_not_created() {
    let b = Secured::start(&["--auto-create-topics"]);
    b.grant(&[acl(
        "topic",
        "auto-",
        "prefixed",
        "User:frank",
        "write",
        "allow",
    )]);
    let frank = b.config("frank");
    assert_eq!(
        produce_one(&frank, "auto-1", "no create"),
        Err(RDKafkaErrorCode::TopicAuthorizationFailed)
    );
    assert!(!b.topic_exists("auto-1"), "created without Create");
    assert_eq!(
        produce_one(&frank, "elsewhere", "no write"),
        Err(RDKafkaErrorCode::TopicAuthorizationFailed)
    );
    assert!(!b.topic_exists("elsewhere"));
    b.grant(&[acl(
        "topic",
        "auto-",
        "prefixed",
        "User:frank",
        "create",
        "allow",
    )]);
    assert_eq!(produce_one(&frank, "auto-1", "created"), Ok(0));
    assert!(b.topic_exists("auto-1"));
}

#[test]
fn a_transactional_producer_needs_write_on_its_transactional_id() {
    use rdkafka::producer::Producer as _;
    let b = Secured::start(&[]);
    b.create_topic("ledger", 1);
    b.grant(&[acl(
        "topic",
        "ledger",
        "literal",
        "User:gina",
        "write",
        "allow",
    )]);
    let transactional = |id: &str| -> BaseProducer {
        b.config("gina")
            .set("transactional.id", id)
            .create()
            .expect("producer")
    };
    let refused = transactional("tx-gina").init_transactions(TIMEOUT);
    let code = refused.err().and_then(|e| e.rdkafka_error_code());
    assert_eq!(
        code,
        Some(RDKafkaErrorCode::TransactionalIdAuthorizationFailed)
    );
    b.grant(&[acl(
        "transactional_id",
        "tx-",
        "prefixed",
        "User:gina",
        "write",
        "allow",
    )]);
    let producer = transactional("tx-gina");
    producer
        .init_transactions(TIMEOUT)
        .expect("init_transactions");
    producer.begin_transaction().expect("begin");
    producer
        .send(
            BaseRecord::to("ledger")
                .key("k")
                .payload("in a transaction"),
        )
        .map_err(|(e, _)| e)
        .expect("send");
    producer.commit_transaction(TIMEOUT).expect("commit");
    // The record and the commit marker.
    assert_eq!(b.end_offset("ledger"), 2);
}

#[test]
fn without_acls_every_authenticated_client_may_do_anything() {
    let b = Secured::start_with(&[]);
    b.create_topic("free", 1);
    assert_eq!(produce_one(&b.config("anyone"), "free", "no ACLs"), Ok(0));
    let consumer = consume_first(&b.config("anyone"), "any-group", "free");
    assert_eq!(consumer, Ok("no ACLs".to_string()));
}

fn text(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

/// Over the plaintext port a client is `User:ANONYMOUS`: it may not touch ACLs, and the
/// codes are Kafka's (librdkafka hides DescribeAcls' own).
#[test]
fn acl_apis_refuse_a_client_without_rights_with_cluster_authorization_failed() {
    let b = Secured::start(&[]);
    b.grant(&[acl("topic", "t", "literal", "User:x", "read", "allow")]);
    let mut raw = RawKafka::connect(&b.broker.kafka_addr);
    let refused = ResponseError::ClusterAuthorizationFailed.code();
    let any_filter = DescribeAclsRequest::default()
        .with_resource_type_filter(1)
        .with_pattern_type_filter(1)
        .with_operation(1)
        .with_permission_type(1);
    for version in 1..=3 {
        let described: DescribeAclsResponse = raw.call(ApiKey::DescribeAcls, version, &any_filter);
        assert_eq!(described.error_code, refused, "v{version}");
        assert!(
            described.resources.is_empty(),
            "ACLs shown to an anonymous client"
        );
    }
    let creation = AclCreation::default()
        .with_resource_type(2)
        .with_resource_name(text("*"))
        .with_resource_pattern_type(3)
        .with_principal(text("User:ANONYMOUS"))
        .with_host(text("*"))
        .with_operation(2)
        .with_permission_type(3);
    let created: CreateAclsResponse = raw.call(
        ApiKey::CreateAcls,
        3,
        &CreateAclsRequest::default().with_creations(vec![creation]),
    );
    assert_eq!(created.results[0].error_code, refused);
    let filter = DeleteAclsFilter::default()
        .with_resource_type_filter(1)
        .with_pattern_type_filter(1)
        .with_operation(1)
        .with_permission_type(1);
    let deleted: DeleteAclsResponse = raw.call(
        ApiKey::DeleteAcls,
        3,
        &DeleteAclsRequest::default().with_filters(vec![filter]),
    );
    assert_eq!(deleted.filter_results[0].error_code, refused);
    assert!(deleted.filter_results[0].matching_acls.is_empty());
    // Nothing changed.
    let all = b.acls(SUPER_USER, "describe", &json!({}));
    assert_eq!(
        all[0],
        json!([acl("topic", "t", "literal", "User:x", "read", "allow")])
    );
}

fn commit_request(group: &str, topics: &[&str], offset: i64) -> OffsetCommitRequest {
    let topics = topics
        .iter()
        .map(|t| {
            OffsetCommitRequestTopic::default()
                .with_name(TopicName(text(t)))
                .with_partitions(vec![OffsetCommitRequestPartition::default()
                    .with_partition_index(0)
                    .with_committed_offset(offset)])
        })
        .collect();
    OffsetCommitRequest::default()
        .with_group_id(GroupId(text(group)))
        .with_generation_id_or_member_epoch(-1)
        .with_topics(topics)
}

/// The group's committed offsets of partition 0 of `topics`: (offset, error) each.
fn committed(raw: &mut RawKafka, group: &str, topics: &[&str]) -> Vec<(i64, i16)> {
    let request = OffsetFetchRequest::default()
        .with_group_id(GroupId(text(group)))
        .with_topics(Some(
            topics
                .iter()
                .map(|t| {
                    OffsetFetchRequestTopic::default()
                        .with_name(TopicName(text(t)))
                        .with_partition_indexes(vec![0])
                })
                .collect(),
        ));
    let answer: OffsetFetchResponse = raw.call(ApiKey::OffsetFetch, 5, &request);
    assert_eq!(answer.error_code, 0);
    answer
        .topics
        .iter()
        .map(|t| (t.partitions[0].committed_offset, t.partitions[0].error_code))
        .collect()
}

/// A commit needs Read on the group and on each topic: the partitions of a topic the
/// client may not read are refused and not committed, the others are.
#[test]
fn a_commit_is_refused_for_the_topics_the_client_may_not_read_and_only_those() {
    let b = Secured::start(&[]);
    b.create_topic("mine", 1);
    b.create_topic("theirs", 1);
    let anonymous = "User:ANONYMOUS";
    let mut raw = RawKafka::connect(&b.broker.kafka_addr);
    let commit = |raw: &mut RawKafka| -> Vec<i16> {
        let answer: OffsetCommitResponse = raw.call(
            ApiKey::OffsetCommit,
            8,
            &commit_request("g", &["mine", "theirs"], 5),
        );
        answer
            .topics
            .iter()
            .map(|t| t.partitions[0].error_code)
            .collect()
    };
    let group_refused = ResponseError::GroupAuthorizationFailed.code();
    assert_eq!(commit(&mut raw), vec![group_refused, group_refused]);
    b.grant(&[
        acl("group", "g", "literal", anonymous, "read", "allow"),
        acl("topic", "mine", "literal", anonymous, "read", "allow"),
    ]);
    let topic_refused = ResponseError::TopicAuthorizationFailed.code();
    assert_eq!(commit(&mut raw), vec![0, topic_refused]);
    assert_eq!(
        committed(&mut raw, "g", &["mine", "theirs"]),
        vec![(5, 0), (-1, topic_refused)]
    );
    // Shown the topic now, the group still has nothing committed for it.
    b.grant(&[acl(
        "topic", "theirs", "literal", anonymous, "describe", "allow",
    )]);
    assert_eq!(committed(&mut raw, "g", &["theirs"]), vec![(-1, 0)]);
}

/// After a SASL login the principal is the user's: its ACLs apply, not the anonymous
/// ones it had before.
#[test]
fn a_sasl_login_makes_the_user_the_principal_its_acls_apply_to() {
    let b = Secured::start(&[]);
    let made = b.acls(SUPER_USER, "user", &json!(["sam", "sam-secret"]));
    assert_eq!(made, vec![Value::Null]);
    b.create_topic("sams", 1);
    b.create_topic("anons", 1);
    b.grant(&[acl(
        "topic",
        "anons",
        "literal",
        "User:ANONYMOUS",
        "write",
        "allow",
    )]);
    let mut sam = ClientConfig::new();
    sam.set("bootstrap.servers", &b.broker.kafka_addr)
        .set("security.protocol", "sasl_plaintext")
        .set("sasl.mechanism", "SCRAM-SHA-256")
        .set("sasl.username", "sam")
        .set("sasl.password", "sam-secret")
        .set("socket.timeout.ms", "10000")
        .set("message.timeout.ms", "10000");
    let refused = Err(RDKafkaErrorCode::TopicAuthorizationFailed);
    assert_eq!(produce_one(&sam, "sams", "no ACL yet"), refused);
    assert_eq!(
        produce_one(&sam, "anons", "not anonymous"),
        refused,
        "an anonymous ACL applied to a logged-in user"
    );
    // The same ACL lets an anonymous client in.
    let mut anonymous = ClientConfig::new();
    anonymous
        .set("bootstrap.servers", &b.broker.kafka_addr)
        .set("message.timeout.ms", "10000");
    assert_eq!(produce_one(&anonymous, "anons", "anonymous"), Ok(0));
    b.grant(&[acl(
        "topic", "sams", "literal", "User:sam", "write", "allow",
    )]);
    assert_eq!(produce_one(&sam, "sams", "allowed"), Ok(0));
    assert_eq!(b.end_offset("anons"), 1, "only the anonymous record");
}

/// Requests with names in them, answered with one error code: a raw request as the
/// anonymous client, answered at `version`, the code picked out of the answer.
fn raw_code<Req, Resp>(
    raw: &mut RawKafka,
    key: ApiKey,
    version: i16,
    req: Req,
    code: impl Fn(&Resp) -> i16,
) -> i16
where
    Req: kafka_protocol::protocol::Encodable,
    Resp: kafka_protocol::protocol::Decodable,
{
    let answer: Resp = raw.call(key, version, &req);
    code(&answer)
}

/// Topic administration, offsets, groups and idempotent producer ids without rights:
/// each refused with its Kafka code, and the topic as it was.
#[test]
fn admin_requests_without_rights_are_refused_and_change_nothing() {
    use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
    use kafka_protocol::messages::create_topics_request::CreatableTopic;
    use kafka_protocol::messages::delete_records_request::{
        DeleteRecordsPartition, DeleteRecordsTopic,
    };
    use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
    use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
    use kafka_protocol::messages::*;
    let b = Secured::start(&[]);
    b.create_topic("kept", 1);
    assert_eq!(produce_one(&b.config(SUPER_USER), "kept", "v"), Ok(0));
    let mut raw = RawKafka::connect(&b.broker.kafka_addr);
    let topic = || TopicName(text("kept"));
    let topic_refused = ResponseError::TopicAuthorizationFailed.code();
    let group_refused = ResponseError::GroupAuthorizationFailed.code();
    let cluster_refused = ResponseError::ClusterAuthorizationFailed.code();

    let create = CreateTopicsRequest::default()
        .with_timeout_ms(10_000)
        .with_topics(vec![CreatableTopic::default()
            .with_name(TopicName(text("new")))
            .with_num_partitions(1)
            .with_replication_factor(1)]);
    let code = raw_code(
        &mut raw,
        ApiKey::CreateTopics,
        5,
        create,
        |r: &CreateTopicsResponse| r.topics[0].error_code,
    );
    assert_eq!(code, topic_refused, "CreateTopics");
    let delete = DeleteTopicsRequest::default()
        .with_timeout_ms(10_000)
        .with_topic_names(vec![topic()]);
    let code = raw_code(
        &mut raw,
        ApiKey::DeleteTopics,
        4,
        delete,
        |r: &DeleteTopicsResponse| r.responses[0].error_code,
    );
    assert_eq!(code, topic_refused, "DeleteTopics");
    let grow = CreatePartitionsRequest::default()
        .with_timeout_ms(10_000)
        .with_topics(vec![CreatePartitionsTopic::default()
            .with_name(topic())
            .with_count(3)]);
    let code = raw_code(
        &mut raw,
        ApiKey::CreatePartitions,
        1,
        grow,
        |r: &CreatePartitionsResponse| r.results[0].error_code,
    );
    assert_eq!(code, topic_refused, "CreatePartitions");
    let trim = DeleteRecordsRequest::default()
        .with_timeout_ms(10_000)
        .with_topics(vec![DeleteRecordsTopic::default()
            .with_name(topic())
            .with_partitions(vec![
                DeleteRecordsPartition::default().with_offset(1)
            ])]);
    let code = raw_code(
        &mut raw,
        ApiKey::DeleteRecords,
        1,
        trim,
        |r: &DeleteRecordsResponse| r.topics[0].partitions[0].error_code,
    );
    assert_eq!(code, topic_refused, "DeleteRecords");
    let configs = DescribeConfigsRequest::default().with_resources(vec![
        DescribeConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(text("kept")),
        DescribeConfigsResource::default()
            .with_resource_type(4)
            .with_resource_name(text("0")),
    ]);
    let answer: DescribeConfigsResponse = raw.call(ApiKey::DescribeConfigs, 1, &configs);
    let codes: Vec<i16> = answer.results.iter().map(|r| r.error_code).collect();
    assert_eq!(
        codes,
        vec![topic_refused, cluster_refused],
        "DescribeConfigs"
    );
    assert!(answer.results.iter().all(|r| r.configs.is_empty()));
    let offsets = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(topic())
            .with_partitions(vec![
                ListOffsetsPartition::default().with_timestamp(-1)
            ])]);
    let code = raw_code(
        &mut raw,
        ApiKey::ListOffsets,
        2,
        offsets,
        |r: &ListOffsetsResponse| r.topics[0].partitions[0].error_code,
    );
    assert_eq!(code, topic_refused, "ListOffsets");
    let groups = DeleteGroupsRequest::default().with_groups_names(vec![GroupId(text("g"))]);
    let code = raw_code(
        &mut raw,
        ApiKey::DeleteGroups,
        1,
        groups,
        |r: &DeleteGroupsResponse| r.results[0].error_code,
    );
    assert_eq!(code, group_refused, "DeleteGroups");
    let described = DescribeGroupsRequest::default().with_groups(vec![GroupId(text("g"))]);
    let code = raw_code(
        &mut raw,
        ApiKey::DescribeGroups,
        1,
        described,
        |r: &DescribeGroupsResponse| r.groups[0].error_code,
    );
    assert_eq!(code, group_refused, "DescribeGroups");
    let idempotent = InitProducerIdRequest::default()
        .with_transactional_id(None)
        .with_transaction_timeout_ms(60_000);
    let code = raw_code(
        &mut raw,
        ApiKey::InitProducerId,
        1,
        idempotent.clone(),
        |r: &InitProducerIdResponse| r.error_code,
    );
    assert_eq!(
        code, cluster_refused,
        "InitProducerId without Write anywhere"
    );

    // Nothing changed: no new topic, one partition, nothing deleted.
    let admin: BaseConsumer = b.config(SUPER_USER).create().expect("consumer");
    let metadata = admin.fetch_metadata(None, TIMEOUT).expect("metadata");
    let topics: Vec<(&str, usize)> = metadata
        .topics()
        .iter()
        .map(|t| (t.name(), t.partitions().len()))
        .collect();
    assert_eq!(topics, vec![("kept", 1)]);
    assert_eq!(
        admin
            .fetch_watermarks("kept", 0, TIMEOUT)
            .expect("watermarks"),
        (0, 1)
    );

    // Write on some topic is enough for an idempotent producer id (KIP-679).
    b.grant(&[acl(
        "topic",
        "else",
        "literal",
        "User:ANONYMOUS",
        "write",
        "allow",
    )]);
    let code = raw_code(
        &mut raw,
        ApiKey::InitProducerId,
        1,
        idempotent,
        |r: &InitProducerIdResponse| r.error_code,
    );
    assert_eq!(code, 0, "InitProducerId with Write on a topic");
}

/// AddPartitionsToTxn with a topic the producer may not write: that topic is refused,
/// the others not attempted, and the transaction holds no partition afterwards.
#[test]
fn a_transaction_cannot_add_a_partition_its_producer_may_not_write() {
    use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
    use kafka_protocol::messages::*;
    let b = Secured::start(&[]);
    b.create_topic("allowed", 1);
    b.create_topic("denied", 1);
    let anonymous = "User:ANONYMOUS";
    b.grant(&[
        acl(
            "transactional_id",
            "tx-raw",
            "literal",
            anonymous,
            "write",
            "allow",
        ),
        acl("topic", "allowed", "literal", anonymous, "write", "allow"),
    ]);
    let mut raw = RawKafka::connect(&b.broker.kafka_addr);
    let id = TransactionalId(text("tx-raw"));
    let init = InitProducerIdRequest::default()
        .with_transactional_id(Some(id.clone()))
        .with_transaction_timeout_ms(60_000);
    let producer: InitProducerIdResponse = raw.call(ApiKey::InitProducerId, 1, &init);
    assert_eq!(producer.error_code, 0);
    let add = AddPartitionsToTxnRequest::default()
        .with_v3_and_below_transactional_id(id.clone())
        .with_v3_and_below_producer_id(producer.producer_id)
        .with_v3_and_below_producer_epoch(producer.producer_epoch)
        .with_v3_and_below_topics(
            ["allowed", "denied"]
                .iter()
                .map(|t| {
                    AddPartitionsToTxnTopic::default()
                        .with_name(TopicName(text(t)))
                        .with_partitions(vec![0])
                })
                .collect(),
        );
    let added: AddPartitionsToTxnResponse = raw.call(ApiKey::AddPartitionsToTxn, 3, &add);
    let codes: Vec<(&str, i16)> = added
        .results_by_topic_v3_and_below
        .iter()
        .map(|t| {
            let p = &t.results_by_partition[0];
            (t.name.0.as_str(), p.partition_error_code)
        })
        .collect();
    assert_eq!(
        codes,
        vec![
            ("allowed", ResponseError::OperationNotAttempted.code()),
            ("denied", ResponseError::TopicAuthorizationFailed.code())
        ]
    );
    let describe = DescribeTransactionsRequest::default().with_transactional_ids(vec![id]);
    let described: DescribeTransactionsResponse =
        raw.call(ApiKey::DescribeTransactions, 0, &describe);
    let state = &described.transaction_states[0];
    assert_eq!(state.error_code, 0);
    assert_eq!(state.transaction_state.as_str(), "Empty");
    assert!(state.topics.is_empty(), "{:?}", state.topics);
    // Another id's transaction is not described to this client.
    let other = DescribeTransactionsRequest::default()
        .with_transactional_ids(vec![TransactionalId(text("tx-other"))]);
    let described: DescribeTransactionsResponse = raw.call(ApiKey::DescribeTransactions, 0, &other);
    assert_eq!(
        described.transaction_states[0].error_code,
        ResponseError::TransactionalIdAuthorizationFailed.code()
    );
}
