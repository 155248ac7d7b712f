//! AMQP logins and ACLs with pika (tests/amqp_auth/auth_cases.py, one case per run):
//! EXTERNAL over amqps logs in as the client certificate's subject and is not offered
//! without one. AMQPLAIN (RabbitMQ's own field-table login, which pika does not speak)
//! with lapin: a store user logs in and is served, a wrong password is refused.
//!
//! `.ci/run` installs pika into target/ci-venv; `PEREGRINE_PYTHON` names the Python.

mod common;
use common::pki::{arg, Pki};
use common::scripts::{finish, python};
use common::{admin_cli, Broker, ADMIN_PASSWORD};
use std::process::{Command, Stdio};
use std::time::Duration;

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/amqp_auth/auth_cases.py");
/// One script run; each network wait inside it is bounded by 10 s.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(60);
/// The exit status auth_cases.py uses when pika is missing.
const EXIT_NO_PIKA: i32 = 3;

/// Runs one case; panics with its output unless it printed `ok CASE`.
fn pika(case: &str, addr: &str, args: &[&str]) -> String {
    let python = python();
    let child = Command::new(&python)
        .arg(SCRIPT)
        .args([case, addr])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{python} not runnable ({e}): run .ci/run, which installs it"));
    let (status, out) = finish(child, SCRIPT_TIMEOUT);
    let code = status.and_then(|s| s.code());
    assert_ne!(
        code,
        Some(EXIT_NO_PIKA),
        "{out}\nrun .ci/run (it installs pika)"
    );
    assert!(
        code == Some(0) && out.contains(&format!("ok {case}")),
        "{case} {args:?} failed ({status:?}):\n{out}"
    );
    out
}

/// A word of the ready line, e.g. `amqp_tls=`.
fn ready_field(b: &Broker, name: &str) -> String {
    b.ready_line
        .split_whitespace()
        .find_map(|w| w.strip_prefix(name))
        .unwrap_or_else(|| panic!("no {name} in the ready line: {}", b.ready_line))
        .to_string()
}

#[test]
fn external_logs_in_as_the_certificate_subject_and_needs_one() {
    let pki = Pki::new("amqp auth CA");
    let (cert, key) = pki.server();
    let (client_cert, client_key) = pki.issue("billing", "billing", &[]);
    let b = Broker::start_with(&[
        "--tls-cert",
        arg(&cert),
        "--tls-key",
        arg(&key),
        "--tls-client-ca",
        arg(&pki.ca()),
        "--amqp-tls-addr",
        "127.0.0.1:0",
    ]);
    let amqps = ready_field(&b, "amqp_tls=");
    pika(
        "external",
        &amqps,
        &[
            arg(&pki.ca()),
            arg(&client_cert),
            arg(&client_key),
            "billing",
        ],
    );
    // The plaintext port has no certificate to go by: EXTERNAL is not offered there.
    pika("external_not_offered", &b.amqp_addr, &[]);
}

/// A broker with `--amqp-users` users `admin` (a super-user) and `bob`, and `extra`.
fn users_broker(dir: &tempfile::TempDir, extra: &[&str]) -> Broker {
    let users = dir.path().join("amqp-users");
    std::fs::write(&users, "admin:admin-pw\nbob:bob-pw\n").expect("users file");
    let mut args = vec!["--amqp-users", arg(&users)];
    args.extend_from_slice(extra);
    Broker::start_with(&args)
}

/// With `--acls` and no ACL for bob, every queue and exchange method bob tries is
/// refused with 403 ACCESS_REFUSED (the channel closes, the connection stays) and
/// changes nothing; a denied publish is not enqueued. The super-user is served.
#[test]
fn acls_refuse_methods_with_403_and_change_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let b = users_broker(&dir, &["--acls", "--super-user", "User:admin"]);
    let admin = ["bob", "bob-pw", "admin", "admin-pw"];
    pika("publish_denied", &b.amqp_addr, &admin);
    pika("denied_all", &b.amqp_addr, &admin);
}

/// A wrong password is refused; the refusal is logged with the peer and the user name,
/// never the password.
#[test]
fn a_wrong_password_is_refused_and_logged_without_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let b = users_broker(&dir, &[]);
    pika("plain", &b.amqp_addr, &["bob", "bob-pw"]);
    pika("plain_refused", &b.amqp_addr, &["bob", "not-bobs-pw"]);
    pika("plain_refused", &b.amqp_addr, &["nobody", "bob-pw"]);
    let log = b.log();
    let refusal = log
        .lines()
        .find(|l| l.contains("login failed") && l.contains("amqp") && l.contains("bob"))
        .unwrap_or_else(|| panic!("no failed login logged for bob:\n{log}"));
    assert!(refusal.contains("127.0.0.1"), "{refusal}");
    assert!(
        !log.contains("not-bobs-pw"),
        "a password was logged:\n{log}"
    );
}

/// RabbitMQ's `guest`/`guest` default is there only while `--require-auth` does not name
/// the AMQP listener.
#[test]
fn require_auth_amqp_turns_the_guest_default_off() {
    let open = Broker::start();
    pika("plain", &open.amqp_addr, &["guest", "guest"]);
    let dir = tempfile::tempdir().expect("temp dir");
    let b = users_broker(&dir, &["--require-auth", "amqp"]);
    pika("plain_refused", &b.amqp_addr, &["guest", "guest"]);
    pika("plain", &b.amqp_addr, &["bob", "bob-pw"]);
}

/// Past `--login-failures-per-minute` failed logins from one address, its logins are
/// refused without checking, the right password included (one shard, so that every
/// connection meets the same counts).
#[test]
fn failed_logins_past_the_limit_refuse_the_address_for_a_minute() {
    let dir = tempfile::tempdir().expect("temp dir");
    let b = users_broker(&dir, &["--shards", "1", "--login-failures-per-minute", "2"]);
    pika("plain", &b.amqp_addr, &["bob", "bob-pw"]);
    for _ in 0..2 {
        pika(
            "plain_refused",
            &b.amqp_addr,
            &["bob", "guess", "Login was refused"],
        );
    }
    pika(
        "plain_refused",
        &b.amqp_addr,
        &["bob", "bob-pw", "too many failed logins"],
    );
    assert!(
        b.log().contains("too many failed logins from this address"),
        "{}",
        b.log()
    );
}

/// Users of the store (`peregrine user add`) log in with PLAIN; a wrong password and an
/// unknown user are refused. An ACL added by the CLI (All on queues prefixed `bob-`)
/// lets bob use those queues and nothing else.
#[test]
fn store_users_log_in_and_their_acls_allow_what_they_grant() {
    let dir = tempfile::tempdir().expect("temp dir");
    let b = common::broker_with_admin(
        dir.path(),
        &[
            "--acls",
            "--super-user",
            "User:admin",
            "--require-auth",
            "amqp",
        ],
    );
    admin_cli(&b, &["user", "add", "bob"], "bob's pass\n");
    pika("plain_refused", &b.amqp_addr, &["bob", "bob's pasS"]);
    pika("plain_refused", &b.amqp_addr, &["carol", "bob's pass"]);
    pika(
        "publish_denied",
        &b.amqp_addr,
        &["bob", "bob's pass", "admin", ADMIN_PASSWORD],
    );
    admin_cli(
        &b,
        &[
            "acl",
            "add",
            "--allow-principal",
            "User:bob",
            "--operation",
            "All",
            "--queue",
            "bob-",
            "--resource-pattern-type",
            "prefixed",
        ],
        "",
    );
    pika(
        "allowed",
        &b.amqp_addr,
        &["bob", "bob's pass", "bob-", "admin", ADMIN_PASSWORD],
    );
}

/// Each lapin step's bound.
const LAPIN_WAIT: Duration = Duration::from_secs(10);

/// `fut` on a fresh current-thread tokio runtime, failing after `LAPIN_WAIT`.
fn lapin_run<T>(what: &str, fut: impl std::future::Future<Output = T>) -> T {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(async {
        tokio::time::timeout(LAPIN_WAIT, fut)
            .await
            .unwrap_or_else(|_| panic!("{what}: nothing after {LAPIN_WAIT:?}"))
    })
}

/// An AMQPLAIN login with lapin as `user`, then a queue declared, a message published
/// and got back: Ok(body) when served, Err(the connection error) when refused.
fn amqplain_round_trip(addr: &str, user: &str, password: &str) -> Result<Vec<u8>, String> {
    use lapin::options::{BasicGetOptions, BasicPublishOptions, QueueDeclareOptions};
    use lapin::types::FieldTable;
    use lapin::{BasicProperties, Connection, ConnectionProperties};
    let uri = format!("amqp://{user}:{password}@{addr}/%2f?auth_mechanism=amqplain");
    lapin_run("AMQPLAIN round trip", async move {
        let conn = Connection::connect(&uri, ConnectionProperties::default())
            .await
            .map_err(|e| e.to_string())?;
        let ch = conn.create_channel().await.expect("channel.open");
        let options = QueueDeclareOptions {
            exclusive: true,
            ..QueueDeclareOptions::default()
        };
        ch.queue_declare("amqplain-q".into(), options, FieldTable::default())
            .await
            .expect("queue.declare");
        let publish = BasicPublishOptions::default();
        ch.basic_publish(
            "".into(),
            "amqplain-q".into(),
            publish,
            b"by amqplain",
            BasicProperties::default(),
        )
        .await
        .expect("basic.publish");
        let got = ch
            .basic_get("amqplain-q".into(), BasicGetOptions { no_ack: true })
            .await
            .expect("basic.get")
            .expect("the message published");
        let _ = conn.close(200, "bye".into()).await;
        Ok(got.delivery.data.clone())
    })
}

/// lapin logs in with AMQPLAIN as a user of the store (made offline, before the first
/// start, with `user add --data-dir`) and is served; a wrong password, an unknown user
/// and RabbitMQ's guest default are refused with ACCESS_REFUSED.
#[test]
fn amqplain_logs_a_store_user_in_with_lapin_and_refuses_a_wrong_password() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (ok, _, err) = common::run_cli_status(
        &["user", "add", "bob", "--data-dir", arg(dir.path())],
        "bob's amqp pass\n",
    );
    assert!(ok, "user add bob --data-dir: {err}");
    let b = Broker::start_in(dir.path(), &["--require-auth", "amqp"]);
    let body = amqplain_round_trip(&b.amqp_addr, "bob", "bob%27s%20amqp%20pass")
        .expect("bob is let in with AMQPLAIN");
    assert_eq!(body, b"by amqplain");
    for (user, password) in [
        ("bob", "bob%27s%20amqp%20pasS"),
        ("carol", "x"),
        ("guest", "guest"),
    ] {
        let refused = amqplain_round_trip(&b.amqp_addr, user, password)
            .expect_err("a wrong login is refused");
        assert!(
            refused.contains("ACCESS_REFUSED") || refused.contains("403"),
            "{user}: {refused}"
        );
    }
    let log = b.log();
    assert!(
        log.lines()
            .any(|l| l.contains("login failed") && l.contains("carol")),
        "{log}"
    );
}
