//! TLS on every listener, with real clients: the native client (and a bare rustls client
//! pinned to TLS 1.2 or 1.3), librdkafka with `security.protocol=ssl` (and mTLS), pika
//! over amqps and boto3 over https (tests/tls/clients.py). A plaintext client on a TLS
//! port is closed while TLS and plaintext clients go on being served; a client without a
//! certificate, or with one from another CA, is refused where certificates are required;
//! a certificate rewritten on disk is what new connections get.
//!
//! Every certificate is made here with rcgen (nothing committed that could expire): a CA,
//! a server certificate for `localhost` and 127.0.0.1 signed by it, client certificates.

mod common;
use common::pki::{arg as s, Pki};
use common::scripts::{finish, python};
use common::Broker;
use peregrine::client::records::{decode_batches, encode_batch, OutRecord};
use peregrine::client::tls::ClientTls;
use peregrine::client::{Client, Connection};
use peregrine::native::messages::{Acks, Request, Response, TopicSpec};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Every wait in this file ends by then.
const TIMEOUT: Duration = Duration::from_secs(20);
const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/tls/clients.py");
/// The exit status clients.py uses when pika or boto3 is missing.
const EXIT_NO_LIBRARY: i32 = 3;

/// The CLI's flags for the native TLS listener at `addr` with a client certificate.
fn cli_tls<'a>(addr: &'a str, ca: &'a Path, cert: &'a Path, key: &'a Path) -> [&'a str; 10] {
    [
        "--bootstrap",
        addr,
        "--tls-ca",
        s(ca),
        "--tls-client-cert",
        s(cert),
        "--tls-client-key",
        s(key),
        "--tls-server-name",
        "localhost",
    ]
}

/// A word of the ready line, e.g. `native_tls=`.
fn ready_field(b: &Broker, name: &str) -> String {
    b.ready_line
        .split_whitespace()
        .find_map(|w| w.strip_prefix(name))
        .unwrap_or_else(|| panic!("no {name} in the ready line: {}", b.ready_line))
        .to_string()
}

/// A broker with every TLS listener on free ports, serving `cert`/`key`.
fn tls_broker(cert: &Path, key: &Path, extra: &[&str]) -> Broker {
    let mut args = vec![
        "--tls-cert",
        s(cert),
        "--tls-key",
        s(key),
        "--native-tls-addr",
        "127.0.0.1:0",
        "--kafka-tls-addr",
        "127.0.0.1:0",
        "--amqp-tls-addr",
        "127.0.0.1:0",
        "--http-tls-addr",
        "127.0.0.1:0",
    ];
    args.extend_from_slice(extra);
    Broker::start_with(&args)
}

fn client_tls(pki: &Pki, identity: Option<(&Path, &Path)>) -> Arc<ClientTls> {
    Arc::new(
        ClientTls::from_files(&pki.ca(), identity, Some("localhost".into())).expect("client TLS"),
    )
}

fn topic(client: &mut Client, name: &str, partitions: i32) {
    client
        .create_topic(TopicSpec {
            name: name.into(),
            partitions,
            retention_ms: None,
            retention_bytes: None,
            segment_bytes: None,
        })
        .expect("create topic");
}

fn round_trip(client: &mut Client, topic: &str, value: &str) {
    let batch = encode_batch(&[OutRecord {
        key: None,
        value: bytes::Bytes::copy_from_slice(value.as_bytes()),
        timestamp_ms: 1,
    }])
    .expect("encode");
    let (offset, _) = client
        .produce(topic, 0, Acks::Leader, &batch)
        .expect("produce")
        .expect("acknowledged");
    let fetched = client
        .fetch(topic, 0, offset, 1 << 20, 1000)
        .expect("fetch");
    let records = decode_batches(0, fetched.batches, offset).expect("decode");
    let got = records.first().and_then(|r| r.value.clone());
    assert_eq!(
        got.as_deref(),
        Some(value.as_bytes()),
        "{value} not read back"
    );
}

#[test]
fn native_client_produces_and_consumes_over_tls_on_shared_and_shard_ports() {
    let pki = Pki::new("native CA");
    let (cert, key) = pki.server();
    let b = tls_broker(&cert, &key, &[]);
    let addr = ready_field(&b, "native_tls=");
    let mut client = Client::connect_with(&addr, Some(client_tls(&pki, None))).expect("connect");
    topic(&mut client, "secured", 2);
    round_trip(&mut client, "secured", "through the shared TLS port");
    // Shard-aware: metadata over TLS names the shards' TLS ports, not the plaintext ones.
    let tls_ports: Vec<u16> = ready_field(&b, "native_tls_shard_ports=")
        .split(',')
        .map(|p| p.parse().expect("port"))
        .collect();
    assert_eq!(tls_ports.len(), 2);
    for p in 0..2 {
        let (_, port) = client
            .owner_port("secured", p)
            .expect("metadata")
            .expect("an owner");
        assert!(
            tls_ports.contains(&port),
            "{port} is not a TLS shard port {tls_ports:?}"
        );
        assert!(!b.shard_ports.contains(&port));
    }
    client.set_shard_aware(true);
    round_trip(&mut client, "secured", "through a shard's own TLS port");
    // The plaintext listener serves the same data beside it.
    let mut plain = b.client();
    round_trip(&mut plain, "secured", "plaintext beside TLS");
}

type BareTls = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

/// A bare rustls client of `addr` trusting `pki`'s CA, limited to `versions`; nothing
/// sent yet.
fn bare_tls(
    pki: &Pki,
    addr: &str,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> BareTls {
    let mut roots = rustls::RootCertStore::empty();
    let ca = std::fs::read(pki.ca()).expect("CA");
    let ca = rustls::pki_types::pem::PemObject::from_pem_slice(&ca).expect("CA PEM");
    roots.add(ca).expect("root");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
    let conn = rustls::ClientConnection::new(Arc::new(config), name).expect("session");
    let tcp = TcpStream::connect(addr).expect("connect");
    tcp.set_read_timeout(Some(TIMEOUT)).expect("timeout");
    rustls::StreamOwned::new(conn, tcp)
}

/// A bare rustls client limited to one protocol version, on the native TLS port.
fn handshake_with(
    pki: &Pki,
    addr: &str,
    version: &'static rustls::SupportedProtocolVersion,
) -> rustls::ProtocolVersion {
    let mut tls = bare_tls(pki, addr, &[version]);
    // A native Metadata request, answered: the handshake and a round trip both worked.
    let env = peregrine::native::messages::RequestEnvelope {
        id: 1,
        request: Request::Metadata { topics: None },
    };
    let head = peregrine::native::frame::encode_request(&env, 0).expect("encode");
    tls.write_all(&head).expect("send over TLS");
    let mut answer_head = [0u8; peregrine::native::frame::HEAD_LEN];
    tls.read_exact(&mut answer_head).expect("answer over TLS");
    tls.conn.protocol_version().expect("negotiated")
}

#[test]
fn tls_1_2_and_1_3_are_both_served() {
    let pki = Pki::new("versions CA");
    let (cert, key) = pki.server();
    let b = tls_broker(&cert, &key, &[]);
    let addr = ready_field(&b, "native_tls=");
    assert_eq!(
        handshake_with(&pki, &addr, &rustls::version::TLS12),
        rustls::ProtocolVersion::TLSv1_2
    );
    assert_eq!(
        handshake_with(&pki, &addr, &rustls::version::TLS13),
        rustls::ProtocolVersion::TLSv1_3
    );
}

/// Reads until the peer closes (true) or the deadline passes (false).
fn closed_by_peer(mut tcp: TcpStream) -> bool {
    let deadline = Instant::now() + TIMEOUT;
    let mut buf = [0u8; 4096];
    tcp.set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    while Instant::now() < deadline {
        match tcp.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => {}
        }
    }
    false
}

#[test]
fn plaintext_clients_on_tls_ports_are_closed_and_others_are_served() {
    let pki = Pki::new("mixed CA");
    let (cert, key) = pki.server();
    let b = tls_broker(&cert, &key, &[]);
    let mut tls_client = Client::connect_with(
        &ready_field(&b, "native_tls="),
        Some(client_tls(&pki, None)),
    )
    .expect("TLS connect");
    topic(&mut tls_client, "mixed", 1);
    for name in ["native_tls=", "kafka_tls=", "amqp_tls=", "http_tls="] {
        let mut tcp = TcpStream::connect(ready_field(&b, name)).expect("connect");
        // What a plaintext client of each protocol starts with: not a TLS ClientHello.
        tcp.write_all(b"AMQP\x00\x00\x09\x01GET / HTTP/1.1\r\n\r\n\x00\x00\x00\x10")
            .expect("send");
        assert!(
            closed_by_peer(tcp),
            "{name}: a plaintext client was not closed"
        );
        round_trip(&mut tls_client, "mixed", "TLS client still served");
        round_trip(&mut b.client(), "mixed", "plaintext client still served");
    }
    // One that connects and says nothing holds only its socket, and only for the
    // handshake timeout; meanwhile new TLS clients are served.
    let _silent = TcpStream::connect(ready_field(&b, "native_tls=")).expect("connect");
    let mut fresh = Client::connect_with(
        &ready_field(&b, "native_tls="),
        Some(client_tls(&pki, None)),
    )
    .expect("TLS connect beside a silent one");
    round_trip(&mut fresh, "mixed", "a new TLS client");
    assert!(b.log().contains("TLS handshake failed"), "{}", b.log());
}

#[test]
fn a_client_that_does_not_trust_the_broker_refuses_it() {
    let pki = Pki::new("real CA");
    let other = Pki::new("other CA");
    let (cert, key) = pki.server();
    let b = tls_broker(&cert, &key, &[]);
    let err = Client::connect_with(
        &ready_field(&b, "native_tls="),
        Some(client_tls(&other, None)),
    )
    .err()
    .expect("a broker certificate from an untrusted CA must be refused");
    assert!(err.to_string().contains("UnknownIssuer"), "{err}");
}

fn kafka_tls(addr: &str, ca: &Path) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", addr)
        .set("security.protocol", "ssl")
        .set("ssl.ca.location", s(ca))
        .set("ssl.endpoint.identification.algorithm", "https")
        .set("socket.timeout.ms", "10000")
        .set("message.timeout.ms", "15000");
    c
}

/// Produces `n` messages over Kafka TLS and reads them back with a consumer.
fn kafka_round_trip(config: &ClientConfig, topic: &str, n: usize) {
    let producer: BaseProducer = config
        .clone()
        .set("acks", "all")
        .create()
        .expect("producer");
    for i in 0..n {
        let value = format!("ssl {i}");
        let key = i.to_string();
        producer
            .send(BaseRecord::to(topic).key(&key).payload(&value))
            .expect("enqueue");
    }
    producer
        .flush(TIMEOUT)
        .expect("every message acknowledged over TLS");
    let consumer: BaseConsumer = config
        .clone()
        .set("group.id", format!("g-{topic}"))
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("consumer");
    consumer.subscribe(&[topic]).expect("subscribe");
    let mut got = std::collections::HashSet::new();
    let deadline = Instant::now() + TIMEOUT;
    while got.len() < n && Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            got.insert(String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned());
        }
    }
    assert_eq!(got.len(), n, "consumed {} of {n} over TLS", got.len());
}

#[test]
fn rdkafka_produces_and_consumes_over_ssl_through_every_shards_tls_port() {
    let pki = Pki::new("kafka CA");
    let (cert, key) = pki.server();
    let b = tls_broker(&cert, &key, &["--auto-create-topics"]);
    let mut client = b.client();
    topic(&mut client, "kafka-ssl", 4);
    let config = kafka_tls(&ready_field(&b, "kafka_tls="), &pki.ca());
    kafka_round_trip(&config, "kafka-ssl", 200);
    // Metadata over TLS named the shards' TLS ports: the producer reached both shards
    // through them (a plaintext port would have failed the handshake).
    let ports = ready_field(&b, "kafka_tls_shard_ports=");
    assert_eq!(ports.split(',').count(), 2, "{ports}");
}

#[test]
fn mtls_accepts_a_signed_client_certificate_and_refuses_others() {
    let pki = Pki::new("mtls CA");
    let rogue = Pki::new("rogue CA");
    let (cert, key) = pki.server();
    let b = tls_broker(&cert, &key, &["--tls-client-ca", s(&pki.ca())]);
    let (alice_cert, alice_key) = pki.issue("alice", "alice", &["alice.example"]);
    let (mallory_cert, mallory_key) = rogue.issue("mallory", "mallory", &[]);
    let addr = ready_field(&b, "native_tls=");
    // Native client with a good certificate.
    let mut alice = Client::connect_with(
        &addr,
        Some(client_tls(&pki, Some((&alice_cert, &alice_key)))),
    )
    .expect("a signed client certificate is accepted");
    topic(&mut alice, "mtls", 1);
    round_trip(&mut alice, "mtls", "from alice");
    // Without a certificate, and with one from another CA: refused at the handshake
    // (TLS 1.3 clients learn it on their first read).
    for identity in [None, Some((mallory_cert.as_path(), mallory_key.as_path()))] {
        let refused = Client::connect_with(&addr, Some(client_tls(&pki, identity)))
            .and_then(|mut c| c.call(Request::Metadata { topics: None }, &[]).map(|_| ()));
        assert!(
            refused.is_err(),
            "a client without a valid certificate was served"
        );
    }
    // librdkafka with and without its certificate.
    let kafka_addr = ready_field(&b, "kafka_tls=");
    let mut config = kafka_tls(&kafka_addr, &pki.ca());
    config
        .set("ssl.certificate.location", s(&alice_cert))
        .set("ssl.key.location", s(&alice_key));
    kafka_round_trip(&config, "mtls", 20);
    let anonymous: BaseProducer = kafka_tls(&kafka_addr, &pki.ca())
        .create()
        .expect("producer");
    let metadata = anonymous
        .client()
        .fetch_metadata(None, Duration::from_secs(5));
    assert!(
        metadata.is_err(),
        "librdkafka without a client certificate was served"
    );
    assert!(b.log().contains("TLS handshake failed"), "{}", b.log());
}

#[test]
fn principal_is_the_common_name_else_the_first_subject_alternative_name() {
    let pki = Pki::new("principal CA");
    let (with_cn, _) = pki.issue("cn", "orders-service", &["orders.internal"]);
    let (san_only, _) = pki.issue("san", "", &["billing.internal", "other.internal"]);
    let der = |p: &Path| {
        let pem = std::fs::read(p).expect("read");
        rustls::pki_types::pem::PemObject::from_pem_slice(&pem).expect("PEM")
    };
    use peregrine::server::tls::principal;
    assert_eq!(principal(&der(&with_cn)).as_deref(), Some("orders-service"));
    assert_eq!(
        principal(&der(&san_only)).as_deref(),
        Some("billing.internal")
    );
}

fn script(case: &str, addr: &str, ca: &Path) {
    let python = python();
    let child = Command::new(&python)
        .arg(SCRIPT)
        .args([case, addr, s(ca)])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{python} not runnable ({e}): run .ci/run, which installs it"));
    let (status, out) = finish(child, TIMEOUT * 3);
    let code = status.and_then(|s| s.code());
    assert_ne!(
        code,
        Some(EXIT_NO_LIBRARY),
        "{out}\nrun .ci/run (it installs pika and boto3)"
    );
    assert!(
        code == Some(0) && out.contains(&format!("ok {case}")),
        "{case} failed ({status:?}):\n{out}"
    );
}

#[test]
fn pika_publishes_and_gets_over_amqps() {
    let pki = Pki::new("amqps CA");
    let (cert, key) = pki.server();
    let b = tls_broker(&cert, &key, &[]);
    script("pika_amqps", &ready_field(&b, "amqp_tls="), &pki.ca());
}

#[test]
fn boto3_speaks_sqs_over_https_and_refuses_an_untrusted_certificate() {
    let pki = Pki::new("https CA");
    let other = Pki::new("other https CA");
    let (cert, key) = pki.server();
    let b = tls_broker(&cert, &key, &[]);
    let addr = ready_field(&b, "http_tls=");
    script("boto3_https", &addr, &pki.ca());
    script("boto3_untrusted", &addr, &other.ca());
}

/// Connects and runs one request over TLS trusting `pki`; Err when refused.
fn try_tls(addr: &str, pki: &Pki) -> Result<(), String> {
    let tls = ClientTls::from_files(&pki.ca(), None, Some("localhost".into()))
        .map_err(|e| e.to_string())?;
    let (host, port) = addr.rsplit_once(':').expect("host:port");
    let mut conn = Connection::connect_to(host, port.parse().expect("port"), Some(&tls))
        .map_err(|e| e.to_string())?;
    match conn.call(Request::Metadata { topics: None }, &[]) {
        Ok((Response::Metadata { .. }, _)) => Ok(()),
        other => Err(format!("{other:?}")),
    }
}

#[test]
fn a_rewritten_certificate_is_served_to_new_connections_without_a_restart() {
    let first = Pki::new("first CA");
    let second = Pki::new("second CA");
    let (cert, key) = first.server();
    let b = tls_broker(&cert, &key, &[]);
    let addr = ready_field(&b, "native_tls=");
    try_tls(&addr, &first).expect("the first certificate is served");
    assert!(try_tls(&addr, &second).is_err());
    // A connection made before the change keeps working.
    let mut before = Client::connect_with(&addr, Some(client_tls(&first, None))).expect("connect");
    topic(&mut before, "reload", 1);
    // Half-written or mismatched files are not served: the old certificate stays.
    std::fs::write(&key, "not a key").expect("write");
    std::thread::sleep(Duration::from_secs(3));
    try_tls(&addr, &first).expect("the old certificate stays while the files are bad");
    let (new_cert, new_key) = second.server();
    std::fs::copy(&new_cert, &cert).expect("copy cert");
    std::fs::copy(&new_key, &key).expect("copy key");
    let deadline = Instant::now() + TIMEOUT;
    while try_tls(&addr, &second).is_err() {
        assert!(
            Instant::now() < deadline,
            "the new certificate was never served"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        try_tls(&addr, &first).is_err(),
        "the old certificate is still served"
    );
    round_trip(
        &mut before,
        "reload",
        "an open connection survives the reload",
    );
    assert!(b.log().contains("TLS certificate reloaded"), "{}", b.log());
}

#[test]
fn sighup_reloads_the_certificate() {
    let first = Pki::new("hup first CA");
    let (cert, key) = first.server();
    let b = tls_broker(&cert, &key, &[]);
    let addr = ready_field(&b, "native_tls=");
    try_tls(&addr, &first).expect("the first certificate is served");
    let log_before = b.log().matches("(SIGHUP)").count();
    let pid = b.pid().expect("pid") as i32;
    // SAFETY: kill(2) on the broker child this test started.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGHUP) }, 0);
    let deadline = Instant::now() + TIMEOUT;
    while b.log().matches("(SIGHUP)").count() == log_before {
        assert!(
            Instant::now() < deadline,
            "SIGHUP was not acted on: {}",
            b.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        b.log().contains("TLS certificate reloaded (SIGHUP)"),
        "{}",
        b.log()
    );
    // Still serving, with the same certificate (the files did not change).
    try_tls(&addr, &first).expect("served after SIGHUP");
}

#[test]
fn a_certificate_without_a_tls_listener_is_refused_at_start() {
    let pki = Pki::new("flags CA");
    let (cert, key) = pki.server();
    let out = Command::new(common::BIN)
        .args(["serve", "--tls-cert", s(&cert), "--tls-key", s(&key)])
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--tls-cert needs at least one TLS listener"),
        "{err}"
    );
}

#[test]
fn cli_produce_and_consume_over_tls_with_a_client_certificate() {
    let pki = Pki::new("cli CA");
    let (cert, key) = pki.server();
    let b = tls_broker(&cert, &key, &["--tls-client-ca", s(&pki.ca())]);
    let (client_cert, client_key) = pki.issue("cli", "cli-user", &[]);
    b.create_topic("cli-lines", 2);
    let addr = ready_field(&b, "native_tls=");
    let ca = pki.ca();
    let tls = cli_tls(&addr, &ca, &client_cert, &client_key);
    let mut produce = vec!["produce", "cli-lines", "--shard-aware"];
    produce.extend_from_slice(&tls);
    common::run_cli(&produce, "one\ntwo\nthree\n");
    let mut consume = vec!["consume", "cli-lines", "--max", "3"];
    consume.extend_from_slice(&tls);
    let out = common::run_cli(&consume, "");
    let mut lines: Vec<&str> = out.lines().collect();
    lines.sort_unstable();
    assert_eq!(lines, ["one", "three", "two"]);
    // Without the client certificate the same command is refused.
    let (ok, _, err) = common::run_cli_status(&consume[..consume.len() - 6], "");
    assert!(!ok, "consumed without a client certificate");
    assert!(!err.is_empty());
}

/// The admin commands (topic, queue, exchange, group, publish, receive, ack) take the
/// same TLS flags as produce and consume.
#[test]
fn cli_admin_and_queue_commands_over_tls_with_a_client_certificate() {
    let pki = Pki::new("cli admin CA");
    let (cert, key) = pki.server();
    let b = tls_broker(&cert, &key, &["--tls-client-ca", s(&pki.ca())]);
    let (client_cert, client_key) = pki.issue("cli admin", "cli-admin", &[]);
    let addr = ready_field(&b, "native_tls=");
    let ca = pki.ca();
    let tls = cli_tls(&addr, &ca, &client_cert, &client_key);
    let run = |args: &[&str], stdin: &str| {
        let mut all = args.to_vec();
        all.extend_from_slice(&tls);
        common::run_cli(&all, stdin)
    };
    let out = run(&["topic", "create", "tls-admin", "--partitions", "2"], "");
    assert!(out.contains("created topic tls-admin"), "{out}");
    let out = run(&["topic", "list"], "");
    assert!(out.contains("tls-admin\tpartitions=2"), "{out}");
    run(&["queue", "declare", "tls-q"], "");
    run(&["exchange", "declare", "tls-x", "--type", "fanout"], "");
    run(&["bind", "--exchange", "tls-x", "--queue", "tls-q"], "");
    run(
        &["publish", "--exchange", "tls-x", "--routing-key", "k"],
        "over tls\n",
    );
    let stats = run(&["queue", "stats", "tls-q"], "");
    assert!(stats.contains("ready=1"), "{stats}");
    let got = run(&["receive", "tls-q", "--max", "1", "--ack", "auto"], "");
    assert!(got.contains("over tls"), "{got}");
    run(&["group", "list"], "");
    // Without the client certificate an admin command is refused too.
    let (ok, _, err) = common::run_cli_status(
        &[
            "queue",
            "stats",
            "tls-q",
            "--bootstrap",
            addr.as_str(),
            "--tls-ca",
            s(&ca),
            "--tls-server-name",
            "localhost",
        ],
        "",
    );
    assert!(!ok, "queue stats without a client certificate");
    assert!(!err.is_empty());
}

/// How long a connection may idle in `idle_tls_connections_are_closed_after_the_bound`.
const IDLE_MS: u64 = 500;

/// Reads until the broker ends the TLS connection; how long after `since` that came, or
/// None if it was still open after `TIMEOUT`. The broker's idle watch shuts the socket
/// down under the session, without a close_notify: rustls reports that end as an
/// unexpected EOF.
fn tls_closed_after(tls: &mut BareTls, since: Instant) -> Option<Duration> {
    let mut buf = [0u8; 4096];
    loop {
        match tls.read(&mut buf) {
            Ok(0) => return Some(since.elapsed()),
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return None
            }
            Err(_) => return Some(since.elapsed()),
        }
    }
}

fn idle_closes(b: &Broker) -> usize {
    b.log().matches("(--connections-max-idle-ms)").count()
}

/// `--connections-max-idle-ms` closes silent connections on the TLS listeners as on the
/// plaintext ones: the idle watch shuts the socket under the TLS session down, and the
/// front end unwinds from there.
#[test]
fn idle_tls_connections_are_closed_after_the_bound() {
    let pki = Pki::new("idle CA");
    let (cert, key) = pki.server();
    let idle_ms = IDLE_MS.to_string();
    let b = tls_broker(&cert, &key, &["--connections-max-idle-ms", &idle_ms]);
    let all = [&rustls::version::TLS12, &rustls::version::TLS13];
    // A handshake, then silence, on the native and Kafka TLS ports.
    for (n, name) in ["native_tls=", "kafka_tls="].into_iter().enumerate() {
        let since = Instant::now();
        let mut tls = bare_tls(&pki, &ready_field(&b, name), &all);
        while tls.conn.is_handshaking() {
            tls.conn.complete_io(&mut tls.sock).expect("TLS handshake");
        }
        let took = tls_closed_after(&mut tls, since)
            .unwrap_or_else(|| panic!("{name}: an idle TLS connection stayed open"));
        assert!(
            took >= Duration::from_millis(IDLE_MS),
            "{name}: closed after {took:?}, before the {IDLE_MS} ms bound"
        );
        assert_eq!(idle_closes(&b), n + 1, "{name}: {}", b.log());
    }
    // A native client served over TLS, then left idle: closed, its next request fails.
    let addr = ready_field(&b, "native_tls=");
    let mut client = Client::connect_with(&addr, Some(client_tls(&pki, None))).expect("connect");
    client.metadata(None).expect("a first request over TLS");
    let deadline = Instant::now() + TIMEOUT;
    while idle_closes(&b) < 3 {
        assert!(
            Instant::now() < deadline,
            "the idle TLS client was never closed"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        client.metadata(None).is_err(),
        "a request on the closed TLS connection was answered"
    );
    let mut fresh = Client::connect_with(&addr, Some(client_tls(&pki, None))).expect("connect");
    fresh
        .metadata(None)
        .expect("a fresh TLS connection is served");
}
