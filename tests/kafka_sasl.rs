//! Kafka SASL with real clients: librdkafka (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, over
//! plaintext and over TLS), kafka-python and KafkaJS with each of the three; users made
//! and listed with confluent-kafka's AdminClient (AlterUserScramCredentials and
//! DescribeUserScramCredentials); a `--require-auth kafka` listener that serves an
//! unauthenticated client nothing but the handshake; wrong passwords refused and
//! rate-limited per address; KIP-368 session lifetimes, enforced and renewed by
//! re-authentication (librdkafka and KafkaJS re-authenticate on their own).
//!
//! Users are made by the admin client on a broker without `--require-auth`, which is then
//! restarted with it on the same data directory: the users outlive the restart.
//!
//! The Python cases need confluent-kafka and kafka-python (target/ci-venv or
//! `PEREGRINE_PYTHON`), the KafkaJS case kafkajs (`PEREGRINE_NODE_MODULES`), as `.ci/run`
//! installs them.

mod common;
use bytes::Bytes;
use common::kafka_raw::RawKafka;
use common::scripts::{finish, node_modules, python};
use common::Broker;
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse, ApiKey,
    ApiVersionsRequest, ApiVersionsResponse, DescribeUserScramCredentialsRequest,
    DescribeUserScramCredentialsResponse, MetadataRequest, MetadataResponse,
    SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest, SaslHandshakeResponse,
};
use kafka_protocol::protocol::StrBytes;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Every wait in this file ends by then.
const TIMEOUT: Duration = Duration::from_secs(20);
const PY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/kafka_sasl/clients.py");
const JS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/kafka_sasl/kafkajs_sasl.js"
);
/// The exit status the scripts use when their client library is missing.
const EXIT_NO_LIBRARY: i32 = 3;
/// What clients.py's admin case makes.
const ALICE: (&str, &str) = ("alice", "alice-secret");
const BOB: (&str, &str) = ("bob", "bob-secret");

/// Runs a client script to its end; panics with its output unless it printed `ok`.
fn script(mut cmd: Command, what: &str) -> String {
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{what}: not runnable ({e}); run .ci/run, which installs it"));
    let (status, out) = finish(child, TIMEOUT * 4);
    let code = status.and_then(|s| s.code());
    assert_ne!(code, Some(EXIT_NO_LIBRARY), "{what}: {out}\nrun .ci/run");
    assert!(
        code == Some(0) && out.contains(&format!("ok {what}")),
        "{what} failed ({status:?}):\n{out}"
    );
    out
}

fn py(args: &[&str], what: &str) -> String {
    let mut cmd = Command::new(python());
    cmd.arg(PY).args(args);
    script(cmd, what)
}

/// A broker whose users alice and bob were made through AlterUserScramCredentials by
/// confluent-kafka's AdminClient (clients.py checks them with Describe), restarted on
/// the same data directory with `extra`.
fn broker_with_users(dir: &Path, extra: &[&str]) -> Broker {
    let mut open = Broker::start_in(dir, &[]);
    py(&["admin", &open.kafka_addr], "admin");
    assert!(open.stop(), "clean stop");
    Broker::start_in(dir, extra)
}

fn sasl_config(addr: &str, mechanism: &str, (user, password): (&str, &str)) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", addr)
        .set("security.protocol", "sasl_plaintext")
        .set("sasl.mechanism", mechanism)
        .set("sasl.username", user)
        .set("sasl.password", password)
        .set("socket.timeout.ms", "10000")
        .set("message.timeout.ms", "15000");
    c
}

/// Produces `n` messages with `config` and reads them back with a consumer of it.
fn round_trip(config: &ClientConfig, topic: &str, n: usize) {
    let producer: BaseProducer = config
        .clone()
        .set("acks", "all")
        .create()
        .expect("producer");
    for i in 0..n {
        let value = format!("{topic} {i}");
        producer
            .send(BaseRecord::<(), _>::to(topic).payload(&value))
            .expect("enqueue");
    }
    producer.flush(TIMEOUT).expect("every message acknowledged");
    let consumer: BaseConsumer = config
        .clone()
        .set("group.id", format!("g-{topic}"))
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("consumer");
    consumer.subscribe(&[topic]).expect("subscribe");
    let mut got = Vec::new();
    let deadline = Instant::now() + TIMEOUT;
    while got.len() < n && Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            got.push(String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned());
        }
    }
    let mut want: Vec<String> = (0..n).map(|i| format!("{topic} {i}")).collect();
    // Partitions interleave: compared as sets (each message once).
    got.sort();
    want.sort();
    assert_eq!(got, want, "read back over SASL");
}

/// Messages in `topic` (all its partitions), read with the native client (its listener
/// is open in these tests).
fn count_messages(b: &Broker, topic: &str, partitions: i32) -> usize {
    let mut client = b.client();
    (0..partitions)
        .map(|p| {
            let fetched = client.fetch(topic, p, 0, 1 << 20, 0).expect("native fetch");
            peregrine::client::records::decode_batches(p, fetched.batches, 0)
                .expect("batches")
                .len()
        })
        .sum()
}

/// Records whether each message was delivered.
#[derive(Clone, Default)]
struct Deliveries(std::sync::Arc<std::sync::Mutex<Vec<bool>>>);

impl rdkafka::ClientContext for Deliveries {}

impl rdkafka::producer::ProducerContext for Deliveries {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &rdkafka::message::DeliveryResult<'_>, _: ()) {
        if let Ok(mut d) = self.0.lock() {
            d.push(result.is_ok());
        }
    }
}

/// Whether one message produced with `config` (3 s message timeout) was acknowledged.
fn delivered(config: &ClientConfig, topic: &str) -> bool {
    let deliveries = Deliveries::default();
    let producer: BaseProducer<Deliveries> = config
        .clone()
        .set("message.timeout.ms", "3000")
        .create_with_context(deliveries.clone())
        .expect("producer");
    producer
        .send(BaseRecord::<(), _>::to(topic).payload("must be refused"))
        .expect("enqueue");
    let _ = producer.flush(Duration::from_secs(6));
    let got = deliveries.0.lock().map(|d| d.clone()).unwrap_or_default();
    assert_eq!(got.len(), 1, "no delivery report within 6 s");
    got[0]
}

#[test]
fn rdkafka_authenticates_with_plain_scram_sha_256_and_scram_sha_512() {
    let dir = tempfile::tempdir().expect("temp dir");
    let b = broker_with_users(dir.path(), &["--require-auth", "kafka"]);
    for (mechanism, topic) in [
        ("PLAIN", "sasl-plain"),
        ("SCRAM-SHA-256", "sasl-scram-256"),
        ("SCRAM-SHA-512", "sasl-scram-512"),
    ] {
        b.create_topic(topic, 2);
        round_trip(&sasl_config(&b.kafka_addr, mechanism, ALICE), topic, 50);
    }
    // bob has no SCRAM-SHA-512 credential.
    let bob = sasl_config(&b.kafka_addr, "SCRAM-SHA-512", BOB);
    assert!(!delivered(&bob, "sasl-scram-512"), "bob got in");
    assert_eq!(count_messages(&b, "sasl-scram-512", 2), 50);
}

#[test]
fn a_wrong_password_is_refused_and_nothing_it_sent_is_written() {
    let dir = tempfile::tempdir().expect("temp dir");
    let b = broker_with_users(dir.path(), &["--require-auth", "kafka"]);
    b.create_topic("refused", 1);
    for mechanism in ["PLAIN", "SCRAM-SHA-256"] {
        let intruder = sasl_config(&b.kafka_addr, mechanism, ("alice", "not-her-password"));
        assert!(
            !delivered(&intruder, "refused"),
            "{mechanism}: a wrong password was let in"
        );
    }
    assert_eq!(
        count_messages(&b, "refused", 1),
        0,
        "a refused client produced"
    );
    // The refusal is the one the client was told: SASL_AUTHENTICATION_FAILED.
    let mut raw = RawKafka::connect(&b.kafka_addr);
    let answer = plain(&mut raw, "alice", "nope");
    assert_eq!(answer.error_code, 58, "{answer:?}");
    assert!(
        closed(&mut raw),
        "the connection stays open after a failure"
    );
    let log = std::fs::read_to_string(dir.path().join("broker.log")).unwrap_or_default();
    assert!(
        !log.contains("not-her-password") && !log.contains("nope"),
        "a password reached the log"
    );
    let failures = log
        .lines()
        .filter(|l| l.contains("login failed") && l.contains("alice") && l.contains("127.0.0.1"))
        .count();
    assert!(
        failures >= 3,
        "failed logins not logged with peer and user:\n{log}"
    );
}

/// SaslHandshake then a PLAIN SaslAuthenticate (v2) on a raw connection.
fn plain(raw: &mut RawKafka, user: &str, password: &str) -> SaslAuthenticateResponse {
    let hs: SaslHandshakeResponse = raw.call(
        ApiKey::SaslHandshake,
        1,
        &SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str("PLAIN")),
    );
    assert_eq!(hs.error_code, 0, "handshake: {hs:?}");
    let mechanisms: Vec<&str> = hs.mechanisms.iter().map(|m| m.as_str()).collect();
    assert_eq!(mechanisms, ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]);
    let message = format!("\0{user}\0{password}");
    raw.call(
        ApiKey::SaslAuthenticate,
        2,
        &SaslAuthenticateRequest::default().with_auth_bytes(message.into_bytes().into()),
    )
}

/// Whether the broker closed the connection (end of stream within the timeout).
fn closed(raw: &mut RawKafka) -> bool {
    let mut byte = [0u8; 1];
    matches!(raw.stream.read(&mut byte), Ok(0) | Err(_))
        && !matches!(raw.stream.read(&mut byte), Ok(1..))
}

fn metadata(raw: &mut RawKafka) -> MetadataResponse {
    raw.call(
        ApiKey::Metadata,
        12,
        &MetadataRequest::default().with_topics(None),
    )
}

#[test]
fn an_unauthenticated_client_gets_nothing_but_the_handshake_on_a_require_auth_listener() {
    let dir = tempfile::tempdir().expect("temp dir");
    let b = broker_with_users(dir.path(), &["--require-auth", "kafka"]);
    b.create_topic("secret-topic", 1);
    // ApiVersions is served and advertises the SASL and SCRAM admin APIs.
    let mut raw = RawKafka::connect(&b.kafka_addr);
    let versions: ApiVersionsResponse =
        raw.call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
    for key in [
        ApiKey::SaslHandshake,
        ApiKey::SaslAuthenticate,
        ApiKey::DescribeUserScramCredentials,
        ApiKey::AlterUserScramCredentials,
    ] {
        assert!(
            versions.api_keys.iter().any(|k| k.api_key == key as i16),
            "{key:?} not advertised"
        );
    }
    // Anything else before authentication: closed, unanswered.
    let mut body = bytes::BytesMut::new();
    kafka_protocol::protocol::Encodable::encode(
        &MetadataRequest::default().with_topics(None),
        &mut body,
        12,
    )
    .expect("encode");
    std::io::Write::write_all(
        &mut raw.stream,
        &common::kafka_raw::request_frame(ApiKey::Metadata, 12, 99, &body),
    )
    .expect("send");
    assert!(
        closed(&mut raw),
        "Metadata was served before authentication"
    );
    // librdkafka without SASL learns nothing and produces nothing.
    let mut anonymous = ClientConfig::new();
    anonymous.set("bootstrap.servers", &b.kafka_addr);
    assert!(!delivered(&anonymous, "secret-topic"));
    assert_eq!(count_messages(&b, "secret-topic", 1), 0);
    // The same request after authentication is served.
    let mut raw = RawKafka::connect(&b.kafka_addr);
    assert_eq!(plain(&mut raw, ALICE.0, ALICE.1).error_code, 0);
    let topics = metadata(&mut raw).topics;
    assert!(topics.iter().any(|t| t
        .name
        .as_ref()
        .is_some_and(|n| n.as_str() == "secret-topic")));
    // The exchange's requests are counted like any other.
    let page = http_get(&b.http_addr, "/metrics");
    for api in ["SaslHandshake", "SaslAuthenticate"] {
        let counted = |l: &str| {
            l.starts_with("peregrine_requests_total")
                && l.contains(&format!("api=\"{api}\""))
                && l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()) > Some(0.0)
        };
        assert!(page.lines().any(counted), "{api} not counted:\n{page}");
    }
}

/// The body of a plain HTTP GET.
fn http_get(addr: &str, path: &str) -> String {
    let mut conn = std::net::TcpStream::connect(addr).expect("connect");
    conn.set_read_timeout(Some(TIMEOUT)).expect("timeout");
    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    std::io::Write::write_all(&mut conn, request.as_bytes()).expect("send");
    let mut page = String::new();
    conn.read_to_string(&mut page).expect("read");
    page
}

#[test]
fn session_lifetime_is_told_enforced_and_renewed_by_reauthentication() {
    let dir = tempfile::tempdir().expect("temp dir");
    let b = broker_with_users(
        dir.path(),
        &[
            "--require-auth",
            "kafka",
            "--sasl-session-lifetime-ms",
            "1500",
        ],
    );
    let mut lapsing = RawKafka::connect(&b.kafka_addr);
    let mut renewing = RawKafka::connect(&b.kafka_addr);
    for raw in [&mut lapsing, &mut renewing] {
        let answer = plain(raw, ALICE.0, ALICE.1);
        assert_eq!(answer.error_code, 0);
        assert_eq!(answer.error_message, None);
        assert_eq!(answer.session_lifetime_ms, 1500, "KIP-368 lifetime told");
    }
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(plain(&mut renewing, ALICE.0, ALICE.1).error_code, 0);
    std::thread::sleep(Duration::from_millis(1000));
    // 2 s in: the renewed session is served, the other one is over.
    assert!(!metadata(&mut renewing).brokers.is_empty());
    let mut body = bytes::BytesMut::new();
    kafka_protocol::protocol::Encodable::encode(&MetadataRequest::default(), &mut body, 12)
        .expect("encode");
    std::io::Write::write_all(
        &mut lapsing.stream,
        &common::kafka_raw::request_frame(ApiKey::Metadata, 12, 99, &body),
    )
    .expect("send");
    assert!(closed(&mut lapsing), "served past its session's end");
    // A re-authentication may not change the principal.
    let answer = plain(&mut renewing, BOB.0, BOB.1);
    assert_eq!(answer.error_code, 58, "{answer:?}");
    assert!(closed(&mut renewing));
}

#[test]
fn librdkafka_reauthenticates_before_its_session_ends() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut open = Broker::start_in(dir.path(), &[]);
    py(&["admin", &open.kafka_addr], "admin");
    assert!(open.stop());
    let b = Broker::start_in_with_env(
        dir.path(),
        &[
            "--require-auth",
            "kafka",
            "--sasl-session-lifetime-ms",
            "1000",
        ],
        &[("RUST_LOG", "info,peregrine::kafka::sasl=debug")],
    );
    b.create_topic("reauth", 1);
    let producer: BaseProducer = sasl_config(&b.kafka_addr, "SCRAM-SHA-256", ALICE)
        .set("acks", "all")
        .create()
        .expect("producer");
    // Four sessions' worth of producing, one message at a time.
    let n = 20;
    for i in 0..n {
        producer
            .send(BaseRecord::<(), _>::to("reauth").payload(&format!("m{i}")))
            .expect("enqueue");
        producer.flush(TIMEOUT).expect("acknowledged");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(count_messages(&b, "reauth", 1), n);
    let log = std::fs::read_to_string(dir.path().join("broker.log")).unwrap_or_default();
    assert!(
        log.contains("re-authenticated"),
        "no re-authentication:\n{log}"
    );
    assert!(!log.contains("session expired"), "a session lapsed:\n{log}");
}

#[test]
fn kafkajs_reauthenticates_before_its_session_ends() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut open = Broker::start_in(dir.path(), &[]);
    py(&["admin", &open.kafka_addr], "admin");
    assert!(open.stop());
    let b = Broker::start_in_with_env(
        dir.path(),
        &[
            "--require-auth",
            "kafka",
            "--sasl-session-lifetime-ms",
            "1500",
        ],
        &[("RUST_LOG", "info,peregrine::kafka::sasl=debug")],
    );
    b.create_topic("js-reauth", 1);
    let mut cmd = Command::new("node");
    cmd.env("NODE_PATH", node_modules()).arg(JS).args([
        &b.kafka_addr,
        "scram-sha-256",
        ALICE.0,
        ALICE.1,
        "js-reauth",
        "spread",
    ]);
    script(cmd, "kafkajs scram-sha-256");
    let log = std::fs::read_to_string(dir.path().join("broker.log")).unwrap_or_default();
    assert!(
        log.contains("re-authenticated"),
        "no re-authentication:\n{log}"
    );
    assert!(!log.contains("session expired"), "a session lapsed:\n{log}");
}

#[test]
fn kafka_python_and_kafkajs_log_in_with_each_mechanism() {
    let dir = tempfile::tempdir().expect("temp dir");
    // Each kafka-python run also tries a wrong password, which it retries with backoff
    // (about ten failed logins in its 30 s): the default limit of 10 a minute would
    // refuse the next client's right password. The limit has a test of its own.
    let b = broker_with_users(
        dir.path(),
        &[
            "--require-auth",
            "kafka",
            "--login-failures-per-minute",
            "1000",
        ],
    );
    for (mechanism, topic) in [
        ("PLAIN", "py-plain"),
        ("SCRAM-SHA-256", "py-256"),
        ("SCRAM-SHA-512", "py-512"),
    ] {
        b.create_topic(topic, 1);
        py(
            &[
                "kafka-python",
                &b.kafka_addr,
                mechanism,
                ALICE.0,
                ALICE.1,
                topic,
            ],
            &format!("kafka-python {mechanism}"),
        );
    }
    for (mechanism, topic) in [
        ("plain", "js-plain"),
        ("scram-sha-256", "js-256"),
        ("scram-sha-512", "js-512"),
    ] {
        b.create_topic(topic, 1);
        let mut cmd = Command::new("node");
        cmd.env("NODE_PATH", node_modules()).arg(JS).args([
            &b.kafka_addr,
            mechanism,
            ALICE.0,
            ALICE.1,
            topic,
        ]);
        script(cmd, &format!("kafkajs {mechanism}"));
    }
}

#[test]
fn failed_logins_over_the_limit_are_refused_without_checking() {
    let dir = tempfile::tempdir().expect("temp dir");
    let b = broker_with_users(
        dir.path(),
        &[
            "--require-auth",
            "kafka",
            "--login-failures-per-minute",
            "3",
            // One shard: each shard counts failures on its own.
            "--shards",
            "1",
        ],
    );
    for _ in 0..3 {
        let mut raw = RawKafka::connect(&b.kafka_addr);
        assert_eq!(plain(&mut raw, ALICE.0, "guess").error_code, 58);
    }
    // The right password, from the same address, over the limit: refused.
    let mut raw = RawKafka::connect(&b.kafka_addr);
    let answer = plain(&mut raw, ALICE.0, ALICE.1);
    assert_eq!(answer.error_code, 58, "{answer:?}");
    let message = answer
        .error_message
        .map(|m| m.to_string())
        .unwrap_or_default();
    assert!(message.contains("too many failed logins"), "{message}");
    let log = std::fs::read_to_string(dir.path().join("broker.log")).unwrap_or_default();
    assert!(
        log.contains("127.0.0.1"),
        "failed logins not logged with the peer:\n{log}"
    );
}

#[test]
fn scram_admin_apis_need_alter_and_describe_on_the_cluster_with_acls() {
    let dir = tempfile::tempdir().expect("temp dir");
    let b = broker_with_users(
        dir.path(),
        &[
            "--require-auth",
            "kafka",
            "--acls",
            "--super-user",
            "User:alice",
        ],
    );
    let mut bob = RawKafka::connect(&b.kafka_addr);
    assert_eq!(plain(&mut bob, BOB.0, BOB.1).error_code, 0);
    let described: DescribeUserScramCredentialsResponse = bob.call(
        ApiKey::DescribeUserScramCredentials,
        0,
        &DescribeUserScramCredentialsRequest::default().with_users(None),
    );
    assert_eq!(described.error_code, 31, "CLUSTER_AUTHORIZATION_FAILED");
    assert!(described.results.is_empty());
    let deletion = kafka_protocol::messages::alter_user_scram_credentials_request::ScramCredentialDeletion::default()
        .with_name(StrBytes::from_static_str("alice"))
        .with_mechanism(1);
    let altered: AlterUserScramCredentialsResponse = bob.call(
        ApiKey::AlterUserScramCredentials,
        0,
        &AlterUserScramCredentialsRequest::default().with_deletions(vec![deletion.clone()]),
    );
    assert_eq!(altered.results.len(), 1);
    assert_eq!(altered.results[0].error_code, 31, "{altered:?}");
    // The super-user sees alice's credential still there (bob's deletion did nothing).
    let mut alice = RawKafka::connect(&b.kafka_addr);
    assert_eq!(plain(&mut alice, ALICE.0, ALICE.1).error_code, 0);
    let described: DescribeUserScramCredentialsResponse = alice.call(
        ApiKey::DescribeUserScramCredentials,
        0,
        &DescribeUserScramCredentialsRequest::default().with_users(None),
    );
    assert_eq!(described.error_code, 0);
    let alice_mechs: Vec<i8> = described
        .results
        .iter()
        .filter(|r| r.user.as_str() == "alice")
        .flat_map(|r| r.credential_infos.iter().map(|c| c.mechanism))
        .collect();
    assert_eq!(alice_mechs.len(), 2, "{described:?}");
}

/// A CA and the broker's certificate it signed (localhost, 127.0.0.1), as PEM files:
/// (directory, CA, certificate, key).
fn pki() -> (tempfile::TempDir, String, String, String) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    let dir = tempfile::tempdir().expect("temp dir");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(DnType::CommonName, "sasl test CA");
    let ca_key = KeyPair::generate().expect("key");
    let ca = params.self_signed(&ca_key).expect("CA");
    let params =
        CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()]).expect("params");
    let key = KeyPair::generate().expect("key");
    let cert = params.signed_by(&key, &ca, &ca_key).expect("sign");
    let path = |name: &str| dir.path().join(name).to_string_lossy().into_owned();
    std::fs::write(path("ca.pem"), ca.pem()).expect("write");
    std::fs::write(path("server.pem"), cert.pem()).expect("write");
    std::fs::write(path("server.key"), key.serialize_pem()).expect("write");
    let (ca, cert, key) = (path("ca.pem"), path("server.pem"), path("server.key"));
    (dir, ca, cert, key)
}

#[test]
fn sasl_ssl_on_the_tls_port_with_scram_sha_512() {
    let (_pki, ca, cert, key) = pki();
    let dir = tempfile::tempdir().expect("temp dir");
    let b = broker_with_users(
        dir.path(),
        &[
            "--tls-cert",
            &cert,
            "--tls-key",
            &key,
            "--kafka-tls-addr",
            "127.0.0.1:0",
            "--require-auth",
            "kafka-tls",
        ],
    );
    let tls_addr = b
        .ready_line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("kafka_tls="))
        .expect("kafka_tls= in the ready line")
        .to_string();
    b.create_topic("sasl-ssl", 2);
    let mut config = sasl_config(&tls_addr, "SCRAM-SHA-512", ALICE);
    config
        .set("security.protocol", "sasl_ssl")
        .set("ssl.ca.location", &ca);
    round_trip(&config, "sasl-ssl", 50);
    // The TLS listener requires authentication: TLS alone is not enough.
    let mut anonymous = ClientConfig::new();
    anonymous
        .set("bootstrap.servers", &tls_addr)
        .set("security.protocol", "ssl")
        .set("ssl.ca.location", &ca);
    assert!(!delivered(&anonymous, "sasl-ssl"));
    assert_eq!(count_messages(&b, "sasl-ssl", 2), 50);
}

/// SaslHandshake v0 for PLAIN, then the PLAIN token bare (KIP-152's old framing).
fn plain_v0(raw: &mut RawKafka, user: &str, password: &str) -> std::io::Result<Bytes> {
    let hs: SaslHandshakeResponse = raw.call(
        ApiKey::SaslHandshake,
        0,
        &SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str("PLAIN")),
    );
    assert_eq!(hs.error_code, 0, "handshake v0: {hs:?}");
    let token = format!("\0{user}\0{password}");
    let mut frame = (token.len() as i32).to_be_bytes().to_vec();
    frame.extend_from_slice(token.as_bytes());
    std::io::Write::write_all(&mut raw.stream, &frame)?;
    common::kafka_raw::read_frame(&mut raw.stream)
}

#[test]
fn a_v0_handshake_takes_bare_tokens_and_a_failure_closes_unanswered() {
    let dir = tempfile::tempdir().expect("temp dir");
    let b = broker_with_users(dir.path(), &["--require-auth", "kafka"]);
    let mut raw = RawKafka::connect(&b.kafka_addr);
    let answer = plain_v0(&mut raw, ALICE.0, ALICE.1).expect("a bare answer");
    assert!(answer.is_empty(), "PLAIN's answer is an empty token");
    assert!(
        !metadata(&mut raw).brokers.is_empty(),
        "served once logged in"
    );
    let mut raw = RawKafka::connect(&b.kafka_addr);
    assert!(
        plain_v0(&mut raw, ALICE.0, "wrong").is_err(),
        "a failed bare login was answered"
    );
}
