//! The native protocol's SCRAM handshake and ACLs against the real broker, with the
//! native client library: each mechanism authenticates, a wrong password and an unknown
//! user are refused, a listener that requires authentication serves nothing before it
//! (and closes a client that keeps asking), every shard port asks too, failed logins
//! are rate-limited per address, a request the ACLs deny changes nothing, and a client
//! whose TLS certificate was verified is authenticated as the certificate's name.

mod common;

use common::Broker;
use peregrine::client::auth::Credentials;
use peregrine::client::{Client, ClientError};
use peregrine::native::messages::{
    Acks, AclBinding, AclOperation, AclPatternType, AclPermission, AclResourceType, ErrorCode,
    OffsetSpec, Request, ScramMechanism, TopicSpec, UserChange,
};
use std::time::Duration;

const ADMIN_PASSWORD: &str = "admin-secret-1";
const ALICE_PASSWORD: &str = "alice pass phrase";

fn credentials(user: &str, password: &str, mechanism: ScramMechanism) -> Credentials {
    Credentials::new(user, password, mechanism)
}

fn admin() -> Credentials {
    credentials("admin", ADMIN_PASSWORD, ScramMechanism::ScramSha256)
}

fn alice() -> Credentials {
    credentials("alice", ALICE_PASSWORD, ScramMechanism::ScramSha256)
}

/// A broker whose store holds `admin` and `alice` (both mechanisms), restarted with
/// `extra`: users are made before authentication is required, as a first user is.
fn broker_with_users(extra: &[&str]) -> (tempfile::TempDir, Broker) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut first = Broker::start_in(dir.path(), &[]);
    let mut client = first.client();
    for (name, password) in [("admin", ADMIN_PASSWORD), ("alice", ALICE_PASSWORD)] {
        client
            .set_password(name, password, &[], None)
            .expect("add user");
    }
    drop(client);
    first.kill9();
    let broker = Broker::start_in(dir.path(), extra);
    (dir, broker)
}

fn connect_as(b: &Broker, who: Credentials) -> Client {
    let mut client = Client::connect(&b.addr).expect("connect");
    client.authenticate(who).expect("authenticate");
    client
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

fn batch(value: &str) -> Vec<u8> {
    peregrine::client::records::encode_batch(&[peregrine::client::records::OutRecord {
        key: None,
        value: bytes::Bytes::from(value.to_string()),
        timestamp_ms: 0,
    }])
    .expect("encode")
    .to_vec()
}

fn end_offset(client: &mut Client, topic: &str) -> i64 {
    client
        .list_offset(topic, 0, OffsetSpec::Latest)
        .expect("end offset")
}

fn code(result: Result<impl std::fmt::Debug, ClientError>) -> Option<ErrorCode> {
    match result {
        Err(e) => e.code(),
        Ok(v) => panic!("expected an error answer, got {v:?}"),
    }
}

#[test]
fn each_mechanism_authenticates_and_wrong_passwords_and_unknown_users_are_refused() {
    let (_dir, b) = broker_with_users(&["--require-auth", "native"]);
    for mechanism in [ScramMechanism::ScramSha256, ScramMechanism::ScramSha512] {
        let mut client = Client::connect(&b.addr).expect("connect");
        let principal = client
            .authenticate(credentials("alice", ALICE_PASSWORD, mechanism))
            .expect("the right password authenticates");
        assert_eq!(principal, "User:alice");
        client.metadata(None).expect("served once authenticated");
    }
    let mut wrong = Client::connect(&b.addr).expect("connect");
    let refused = wrong.authenticate(credentials("alice", "not it", ScramMechanism::ScramSha512));
    assert_eq!(code(refused), Some(ErrorCode::AuthenticationFailed));
    assert_eq!(
        code(wrong.metadata(None)),
        Some(ErrorCode::AuthenticationRequired),
        "a failed handshake leaves the connection unauthenticated"
    );
    let mut nobody = Client::connect(&b.addr).expect("connect");
    let refused = nobody.authenticate(credentials("mallory", "x", ScramMechanism::ScramSha256));
    assert_eq!(code(refused), Some(ErrorCode::AuthenticationFailed));
    assert!(
        !b.log().contains(ALICE_PASSWORD) && !b.log().contains("not it"),
        "no password in the broker's log"
    );
}

#[test]
fn an_unauthenticated_client_is_refused_changes_nothing_and_is_closed() {
    let (_dir, b) = broker_with_users(&["--require-auth", "native"]);
    let mut admin = connect_as(&b, admin());
    topic(&mut admin, "guarded", 1);
    let before = end_offset(&mut admin, "guarded");

    let mut anonymous = peregrine::client::Connection::connect(&b.addr).expect("connect");
    let produce = Request::Produce {
        topic: "guarded".into(),
        partition: 0,
        acks: Acks::Leader,
    };
    let (answer, _) = anonymous
        .call(produce, &[&batch("sneaky")])
        .expect("answered");
    assert!(
        matches!(
            answer,
            peregrine::native::messages::Response::Error {
                code: ErrorCode::AuthenticationRequired,
                ..
            }
        ),
        "{answer:?}"
    );
    assert_eq!(
        end_offset(&mut admin, "guarded"),
        before,
        "nothing appended"
    );
    // A client that keeps asking is closed after a few refusals.
    anonymous
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut closed = false;
    for _ in 0..10 {
        match anonymous.call(Request::Metadata { topics: None }, &[]) {
            Ok((peregrine::native::messages::Response::Error { code, .. }, _)) => {
                assert_eq!(code, ErrorCode::AuthenticationRequired)
            }
            Ok((other, _)) => panic!("served before authenticating: {other:?}"),
            Err(_) => {
                closed = true;
                break;
            }
        }
    }
    assert!(closed, "the connection was closed");
    // Other clients are still served.
    assert!(admin.metadata(None).is_ok());
}

#[test]
fn every_shard_port_requires_authentication_and_a_shard_aware_client_authenticates_each() {
    let (_dir, b) = broker_with_users(&["--require-auth", "native"]);
    let mut admin = connect_as(&b, admin());
    topic(&mut admin, "spread", 4);
    for port in &b.shard_ports {
        let mut raw =
            peregrine::client::Connection::connect(("127.0.0.1", *port)).expect("connect");
        let (answer, _) = raw
            .call(Request::Metadata { topics: None }, &[])
            .expect("answered");
        assert!(
            matches!(
                answer,
                peregrine::native::messages::Response::Error {
                    code: ErrorCode::AuthenticationRequired,
                    ..
                }
            ),
            "shard port {port}: {answer:?}"
        );
    }
    admin.set_shard_aware(true);
    for partition in 0..4 {
        admin
            .produce("spread", partition, Acks::Leader, &batch("hi"))
            .expect("produced through the owning shard's port");
    }
}

#[test]
fn failed_logins_past_the_limit_are_refused_without_checking() {
    let (_dir, b) = broker_with_users(&[
        "--require-auth",
        "native",
        "--login-failures-per-minute",
        "2",
    ]);
    // The failures go to shard 0's own port, the last attempt to shard 1's: the limit
    // holds for the address across the shards.
    assert!(b.shard_ports.len() >= 2, "a broker of several shards");
    let attempt = |shard: usize, who: Credentials| {
        let port = b.shard_ports[shard];
        let mut c = Client::connect(&format!("127.0.0.1:{port}")).expect("connect");
        c.authenticate(who)
    };
    attempt(1, alice()).expect("the right password first");
    for _ in 0..2 {
        let refused = attempt(
            0,
            credentials("alice", "wrong-guess-7", ScramMechanism::ScramSha256),
        );
        assert_eq!(code(refused), Some(ErrorCode::AuthenticationFailed));
    }
    let refused = attempt(1, alice());
    assert_eq!(
        code(refused),
        Some(ErrorCode::AuthenticationFailed),
        "the right password is refused too, on another shard, once the address is over the limit"
    );
    let log = b.log();
    assert!(
        log.contains("login failed") && log.contains("alice") && log.contains("127.0.0.1"),
        "failed logins are logged with the peer and the user"
    );
    assert!(
        !log.contains(ALICE_PASSWORD) && !log.contains("wrong-guess-7"),
        "never a password"
    );
}

#[test]
fn acls_deny_what_is_not_granted_and_a_denied_request_changes_nothing() {
    let (_dir, b) = broker_with_users(&[
        "--require-auth",
        "native",
        "--acls",
        "--super-user",
        "User:admin",
    ]);
    let mut admin = connect_as(&b, admin());
    topic(&mut admin, "orders", 1);
    topic(&mut admin, "secret", 1);
    let mut alice = connect_as(&b, alice());
    // Nothing granted: produce refused, the log unchanged, the topic hidden.
    let refused = alice.produce("orders", 0, Acks::Leader, &batch("x"));
    assert_eq!(code(refused), Some(ErrorCode::AuthorizationFailed));
    assert_eq!(end_offset(&mut admin, "orders"), 0);
    let grant = |op, permission| AclBinding {
        resource_type: AclResourceType::Topic,
        resource_name: "ord".into(),
        pattern: AclPatternType::Prefixed,
        principal: "User:alice".into(),
        host: "*".into(),
        operation: op,
        permission,
    };
    admin
        .create_acls(vec![grant(AclOperation::Write, AclPermission::Allow)])
        .expect("grant");
    alice
        .produce("orders", 0, Acks::Leader, &batch("x"))
        .expect("allowed by the prefixed grant");
    let visible: Vec<String> = alice
        .metadata(None)
        .expect("metadata")
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(
        visible,
        vec!["orders".to_string()],
        "only what alice may describe"
    );
    // Fetch needs Read, which Write does not give.
    let refused = alice.fetch("orders", 0, 0, 1 << 20, 0);
    assert_eq!(code(refused), Some(ErrorCode::AuthorizationFailed));
    // Alice may not manage ACLs or users.
    let refused = alice.create_acls(vec![grant(AclOperation::Read, AclPermission::Allow)]);
    assert_eq!(code(refused), Some(ErrorCode::AuthorizationFailed));
    let refused = alice.alter_user(UserChange::Delete {
        name: "admin".into(),
        mechanism: None,
    });
    assert_eq!(code(refused), Some(ErrorCode::AuthorizationFailed));
    // A deny wins over the allow.
    admin
        .create_acls(vec![grant(AclOperation::Write, AclPermission::Deny)])
        .expect("deny");
    let refused = alice.produce("orders", 0, Acks::Leader, &batch("y"));
    assert_eq!(code(refused), Some(ErrorCode::AuthorizationFailed));
    assert_eq!(
        end_offset(&mut admin, "orders"),
        1,
        "only the allowed produce landed"
    );
    // Nobody reads the answer to acks=none: a refused one closes the connection.
    let mut raw = peregrine::client::Connection::connect(&b.addr).expect("connect");
    raw.authenticate(&credentials(
        "alice",
        ALICE_PASSWORD,
        ScramMechanism::ScramSha256,
    ))
    .expect("authenticate");
    let fire_and_forget = Request::Produce {
        topic: "orders".into(),
        partition: 0,
        acks: Acks::None,
    };
    raw.send(fire_and_forget, &[&batch("z")]).expect("sent");
    raw.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    assert!(raw.recv().is_err(), "the connection was closed");
    assert_eq!(end_offset(&mut admin, "orders"), 1, "and nothing appended");
    assert!(
        refusals_counted(&b.http_addr) >= 5,
        "refusals count in errors_total"
    );
}

/// `peregrine_errors_total{protocol="native",code="AccessRefused"}`, summed over shards.
fn refusals_counted(http_addr: &str) -> u64 {
    use std::io::{Read, Write};
    let mut http = std::net::TcpStream::connect(http_addr).expect("connect");
    http.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    http.write_all(b"GET /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .expect("ask");
    let mut page = String::new();
    http.read_to_string(&mut page).expect("metrics page");
    page.lines()
        .filter(|l| l.starts_with("peregrine_errors_total{"))
        .filter(|l| l.contains("protocol=\"native\"") && l.contains("code=\"AccessRefused\""))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// A CA, a broker certificate for 127.0.0.1 and client certificates named `cns`, as PEM
/// files in `dir`: (CA, server cert, server key, [(client cert, client key)]).
fn pki(dir: &std::path::Path, cns: &[&str]) -> (String, [String; 2], Vec<(String, String)>) {
    use rcgen::{BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, KeyPair};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "auth test CA");
    let ca_key = KeyPair::generate().expect("key");
    let ca = ca_params.self_signed(&ca_key).expect("CA");
    let write = |name: &str, text: String| {
        let path = dir.join(name);
        std::fs::write(&path, text).expect("write");
        path.to_str().expect("utf-8 path").to_string()
    };
    let issue = |name: &str, cn: &str, sans: Vec<String>| {
        let mut params = CertificateParams::new(sans).expect("params");
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, cn);
        let key = KeyPair::generate().expect("key");
        let cert = params.signed_by(&key, &ca, &ca_key).expect("sign");
        (
            write(&format!("{name}.pem"), cert.pem()),
            write(&format!("{name}.key"), key.serialize_pem()),
        )
    };
    let server = issue(
        "server",
        "broker",
        vec!["localhost".into(), "127.0.0.1".into()],
    );
    let clients = cns.iter().map(|cn| issue(cn, cn, Vec::new())).collect();
    (write("ca.pem", ca.pem()), [server.0, server.1], clients)
}

#[test]
fn an_mtls_client_is_authenticated_as_its_certificate_name() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (ca, [cert, key], clients) = pki(dir.path(), &["boss", "intern"]);
    let b = Broker::start_with(&[
        "--tls-cert",
        &cert,
        "--tls-key",
        &key,
        "--tls-client-ca",
        &ca,
        "--native-tls-addr",
        "127.0.0.1:0",
        "--require-auth",
        "native,native-tls",
        "--acls",
        "--super-user",
        "User:boss",
    ]);
    let tls_addr = b
        .ready_line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("native_tls="))
        .expect("native TLS address")
        .to_string();
    let connect = |(cert, key): &(String, String)| {
        let identity = Some((std::path::Path::new(cert), std::path::Path::new(key)));
        let tls = peregrine::client::tls::ClientTls::from_files(
            std::path::Path::new(&ca),
            identity,
            Some("localhost".into()),
        )
        .expect("client TLS");
        Client::connect_with(&tls_addr, Some(std::sync::Arc::new(tls))).expect("connect")
    };
    // No SCRAM: the certificate is the login; `boss` is a super-user.
    let mut boss = connect(&clients[0]);
    topic(&mut boss, "by-cert", 1);
    // `intern` is served too (not AuthenticationRequired), as itself: the ACLs refuse it.
    let mut intern = connect(&clients[1]);
    match intern.produce("by-cert", 0, Acks::Leader, &batch("x")) {
        Err(ClientError::Broker { code, message }) => {
            assert_eq!(code, ErrorCode::AuthorizationFailed);
            assert!(message.contains("User:intern"), "{message}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    // The plaintext port still requires a login.
    let refused = Client::connect(&b.addr).expect("connect").metadata(None);
    assert_eq!(code(refused), Some(ErrorCode::AuthenticationRequired));
}

#[test]
fn queue_acls_refuse_publish_and_receive_without_their_grants_and_hide_the_queue() {
    use peregrine::native::messages::{PublishSpec, QueueSpec};
    let (_dir, b) = broker_with_users(&[
        "--require-auth",
        "native",
        "--acls",
        "--super-user",
        "User:admin",
    ]);
    let mut admin = connect_as(&b, admin());
    let spec = |name: &str| QueueSpec {
        name: name.into(),
        ..QueueSpec::default()
    };
    admin.declare_queue(spec("jobs")).expect("declare");
    admin.declare_queue(spec("payroll")).expect("declare");
    let mut alice = connect_as(&b, alice());
    let refused = alice.publish("jobs", PublishSpec::default(), b"work");
    assert_eq!(code(refused), Some(ErrorCode::AuthorizationFailed));
    assert_eq!(
        admin.queue_stats("jobs").expect("stats").ready,
        0,
        "nothing enqueued"
    );
    let refused = alice.declare_queue(spec("alices-own"));
    assert_eq!(code(refused), Some(ErrorCode::AuthorizationFailed));
    let grant = |op| AclBinding {
        resource_type: AclResourceType::Queue,
        resource_name: "jobs".into(),
        pattern: AclPatternType::Literal,
        principal: "User:alice".into(),
        host: "*".into(),
        operation: op,
        permission: AclPermission::Allow,
    };
    admin
        .create_acls(vec![grant(AclOperation::Write)])
        .expect("grant");
    alice
        .publish("jobs", PublishSpec::default(), b"work")
        .expect("publish allowed");
    // Write does not give Read: the message stays where it is.
    let refused = alice.receive("jobs", 1, 0, true);
    assert_eq!(code(refused), Some(ErrorCode::AuthorizationFailed));
    assert_eq!(admin.queue_stats("jobs").expect("stats").ready, 1);
    admin
        .create_acls(vec![grant(AclOperation::Read)])
        .expect("grant");
    let got = alice.receive("jobs", 1, 0, true).expect("receive allowed");
    assert_eq!(got.len(), 1);
    let listed: Vec<String> = alice
        .list_queues()
        .expect("list")
        .into_iter()
        .map(|q| q.name)
        .collect();
    assert_eq!(
        listed,
        vec!["jobs".to_string()],
        "payroll is hidden from alice"
    );
}
