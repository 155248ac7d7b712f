//! `peregrine user` and `peregrine acl` against the real broker: a user the CLI adds
//! authenticates (CLI and native client), a wrong password is refused, users and ACLs
//! survive kill -9, an ACL the CLI adds denies a native produce (the log unchanged) and
//! removing it allows it again, and an access key's secret is printed once and never
//! listed. The first user of a `--require-auth` broker: made offline on the data
//! directory (`--data-dir`, refused while a broker holds it, as is a second broker), or
//! by `serve --initial-user` on a first start only.

mod common;

use common::run_cli_with_password as cli;
use common::{admin_cli, Broker, ADMIN_PASSWORD, BIN};
use peregrine::client::auth::Credentials;
use peregrine::client::Client;
use peregrine::native::messages::{Acks, ErrorCode, OffsetSpec, ScramMechanism};

const BOB_PASSWORD: &str = "bob's long pass";

/// `cli` that must succeed; returns stdout.
fn ok(args: &[&str], stdin: &str, password: Option<&str>) -> String {
    let (success, out, err) = cli(args, stdin, password);
    assert!(success, "peregrine {args:?} failed: {err}");
    out
}

/// `common::broker_with_admin` on a directory of its own.
fn broker_with_admin(extra: &[&str]) -> (tempfile::TempDir, Broker) {
    let dir = tempfile::tempdir().expect("temp dir");
    let broker = common::broker_with_admin(dir.path(), extra);
    (dir, broker)
}

fn client_as(
    b: &Broker,
    user: &str,
    password: &str,
) -> Result<Client, peregrine::client::ClientError> {
    let mut client = Client::connect(&b.addr)?;
    client.authenticate(Credentials::new(
        user,
        password,
        ScramMechanism::ScramSha512,
    ))?;
    Ok(client)
}

#[test]
fn a_user_added_by_the_cli_authenticates_and_a_wrong_password_is_refused() {
    let (_dir, b) = broker_with_admin(&["--require-auth", "native"]);
    admin_cli(
        &b,
        &["user", "add", "bob", "--mechanism", "SCRAM-SHA-512"],
        &format!("{BOB_PASSWORD}\n"),
    );
    let listed = admin_cli(&b, &["user", "list"], "");
    assert!(
        listed.contains("bob\tmechanisms=SCRAM-SHA-512:4096"),
        "{listed}"
    );
    assert!(
        listed.contains("admin\tmechanisms=SCRAM-SHA-256:4096,SCRAM-SHA-512:4096"),
        "{listed}"
    );
    assert!(!listed.contains(BOB_PASSWORD), "no password listed");

    let mut bob = client_as(&b, "bob", BOB_PASSWORD).expect("bob authenticates");
    bob.metadata(None).expect("and is served");
    let wrong = client_as(&b, "bob", "guess");
    assert_eq!(
        wrong.err().and_then(|e| e.code()),
        Some(ErrorCode::AuthenticationFailed)
    );

    // The CLI's own flags: a password file, and a wrong password from the environment.
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("bob.pw");
    std::fs::write(&file, format!("{BOB_PASSWORD}\n")).expect("write");
    let file = file.to_str().expect("utf-8 path");
    let base = [
        "topic",
        "list",
        "--bootstrap",
        &b.addr,
        "--user",
        "bob",
        "--sasl-mechanism",
        "SCRAM-SHA-512",
    ];
    let mut with_file = base.to_vec();
    with_file.extend(["--password-file", file]);
    ok(&with_file, "", None);
    let (success, _, err) = cli(&base, "", Some("guess"));
    assert!(!success, "a wrong password fails the command");
    assert!(err.contains("AuthenticationFailed"), "{err}");
    let (success, _, err) = cli(&["topic", "list", "--bootstrap", &b.addr], "", None);
    assert!(!success && err.contains("AuthenticationRequired"), "{err}");

    // Removed: refused from then on.
    admin_cli(&b, &["user", "remove", "bob"], "");
    let refused = client_as(&b, "bob", BOB_PASSWORD);
    assert_eq!(
        refused.err().and_then(|e| e.code()),
        Some(ErrorCode::AuthenticationFailed)
    );
}

#[test]
fn users_and_acls_survive_kill_9() {
    let (dir, mut b) = broker_with_admin(&["--require-auth", "native"]);
    admin_cli(&b, &["user", "add", "bob"], &format!("{BOB_PASSWORD}\n"));
    admin_cli(
        &b,
        &[
            "acl",
            "add",
            "--allow-principal",
            "User:bob",
            "--operation",
            "Read",
            "--topic",
            "logs-",
            "--resource-pattern-type",
            "prefixed",
        ],
        "",
    );
    let acls_before = admin_cli(&b, &["acl", "list"], "");
    assert!(
        acls_before.contains("User:bob") && acls_before.contains("logs-"),
        "{acls_before}"
    );
    let users_before = admin_cli(&b, &["user", "list"], "");
    b.kill9();
    let b = Broker::start_in(dir.path(), &["--require-auth", "native"]);
    assert_eq!(admin_cli(&b, &["user", "list"], ""), users_before);
    assert_eq!(admin_cli(&b, &["acl", "list"], ""), acls_before);
    client_as(&b, "bob", BOB_PASSWORD).expect("bob still authenticates");
}

#[test]
fn an_acl_added_by_the_cli_denies_a_native_produce_and_removing_it_allows_it() {
    let (_dir, b) = broker_with_admin(&[
        "--require-auth",
        "native",
        "--acls",
        "--super-user",
        "User:admin",
    ]);
    admin_cli(&b, &["user", "add", "bob"], &format!("{BOB_PASSWORD}\n"));
    admin_cli(&b, &["topic", "create", "payments"], "");
    admin_cli(
        &b,
        &[
            "acl",
            "add",
            "--allow-principal",
            "User:bob",
            "--operation",
            "Write",
            "--operation",
            "Describe",
            "--topic",
            "payments",
        ],
        "",
    );
    let mut admin = client_as(&b, "admin", ADMIN_PASSWORD).expect("admin");
    let mut bob = client_as(&b, "bob", BOB_PASSWORD).expect("bob");
    let batch = |v: &str| {
        peregrine::client::records::encode_batch(&[peregrine::client::records::OutRecord {
            key: None,
            value: bytes::Bytes::from(v.to_string()),
            timestamp_ms: 0,
        }])
        .expect("encode")
    };
    let end = |c: &mut Client| {
        c.list_offset("payments", 0, OffsetSpec::Latest)
            .expect("end")
    };
    bob.produce("payments", 0, Acks::Leader, &batch("one"))
        .expect("allowed");
    assert_eq!(end(&mut admin), 1);

    admin_cli(
        &b,
        &[
            "acl",
            "add",
            "--deny-principal",
            "User:bob",
            "--operation",
            "Write",
            "--topic",
            "payments",
        ],
        "",
    );
    let denied = bob.produce("payments", 0, Acks::Leader, &batch("two"));
    assert_eq!(
        denied.err().and_then(|e| e.code()),
        Some(ErrorCode::AuthorizationFailed)
    );
    assert_eq!(end(&mut admin), 1, "the denied produce appended nothing");
    // The CLI produce is refused too, with the reason.
    let (success, _, err) = cli(
        &[
            "produce",
            "payments",
            "--bootstrap",
            &b.addr,
            "--user",
            "bob",
        ],
        "three\n",
        Some(BOB_PASSWORD),
    );
    assert!(!success && err.contains("may not Write"), "{err}");

    let removed = admin_cli(
        &b,
        &[
            "acl",
            "remove",
            "--deny-principal",
            "User:bob",
            "--operation",
            "Write",
            "--topic",
            "payments",
        ],
        "",
    );
    assert!(
        removed.contains("removed") && removed.contains("Deny"),
        "{removed}"
    );
    bob.produce("payments", 0, Acks::Leader, &batch("four"))
        .expect("allowed again");
    assert_eq!(end(&mut admin), 2);
    // Bob may not manage ACLs himself.
    let (success, _, err) = cli(
        &[
            "acl",
            "add",
            "--allow-principal",
            "User:bob",
            "--topic",
            "*",
            "--bootstrap",
            &b.addr,
            "--user",
            "bob",
        ],
        "",
        Some(BOB_PASSWORD),
    );
    assert!(!success && err.contains("AuthorizationFailed"), "{err}");
}

#[test]
fn an_access_key_secret_is_printed_once_and_never_listed() {
    let (_dir, b) = broker_with_admin(&["--require-auth", "native"]);
    admin_cli(&b, &["user", "add", "bob"], &format!("{BOB_PASSWORD}\n"));
    let out = admin_cli(&b, &["user", "add-key", "bob"], "");
    let field = |name: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(name))
            .map(str::to_string)
            .unwrap_or_else(|| panic!("no {name} in {out}"))
    };
    let key_id = field("aws_access_key_id = ");
    let secret = field("aws_secret_access_key = ");
    assert!(secret.len() >= 30, "{secret}");
    let listed = admin_cli(&b, &["user", "list"], "");
    assert!(listed.contains(&key_id), "{listed}");
    assert!(!listed.contains(&secret), "the secret is never listed");
    admin_cli(&b, &["user", "remove-key", &key_id], "");
    assert!(!admin_cli(&b, &["user", "list"], "").contains(&key_id));
}

#[test]
fn bench_authenticates_every_connection_it_opens_with_user() {
    let (_dir, b) = broker_with_admin(&["--require-auth", "native"]);
    let runs: [&[&str]; 3] = [
        &["--producers", "2", "--consumers", "2", "--partitions", "4"],
        &[
            "--producers",
            "2",
            "--consumers",
            "2",
            "--partitions",
            "4",
            "--shard-aware",
        ],
        &["latency", "--spin", "--rate", "5000", "--shard-aware"],
    ];
    for run in runs {
        let mut args = vec!["bench"];
        args.extend_from_slice(run);
        args.extend(["--messages", "2000", "--bootstrap", &b.addr, "--json"]);
        let (success, _, err) = cli(&args, "", None);
        assert!(!success, "{run:?} without --user is refused");
        assert!(err.contains("AuthenticationRequired"), "{err}");
        args.extend(["--user", "admin"]);
        let out = ok(&args, "", Some(ADMIN_PASSWORD));
        let last = out.lines().last().unwrap_or_default();
        assert!(
            last.contains("\"messages_received\":2000") && last.contains("\"lost\":0"),
            "{run:?}: {last}"
        );
    }
}

#[test]
fn queue_commands_and_subscribe_authenticate_with_user() {
    let (_dir, b) = broker_with_admin(&["--require-auth", "native"]);
    admin_cli(&b, &["queue", "declare", "inbox"], "");
    admin_cli(&b, &["publish", "--queue", "inbox"], "hello\nworld\n");
    // The subscription's own connection (to the queue's shard) authenticates too.
    let out = admin_cli(&b, &["subscribe", "inbox", "--max", "2"], "");
    assert_eq!(out, "hello\nworld\n");
    let (success, _, err) = cli(
        &["subscribe", "inbox", "--max", "1", "--bootstrap", &b.addr],
        "",
        None,
    );
    assert!(!success && err.contains("AuthenticationRequired"), "{err}");
}

/// `user add`/`acl add` with `--data-dir` write a stopped broker's data directory: the
/// broker then started with `--require-auth` lets the user in and holds the ACL. While
/// it runs, the directory is locked: an offline change and a second broker are refused
/// naming the owner, and nothing changes. kill -9 frees the lock.
#[test]
fn the_first_user_is_made_offline_and_the_data_dir_is_refused_while_a_broker_runs() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let data_arg = data.to_str().expect("utf-8 path");
    let out = ok(
        &["user", "add", "admin", "--data-dir", data_arg],
        &format!("{ADMIN_PASSWORD}\n"),
        None,
    );
    assert!(
        out.contains("user admin saved") && out.contains("topics.json"),
        "{out}"
    );
    ok(
        &["user", "add", "bob", "--data-dir", data_arg],
        &format!("{BOB_PASSWORD}\n"),
        None,
    );
    let added = ok(
        &[
            "acl",
            "add",
            "--allow-principal",
            "User:bob",
            "--operation",
            "Read",
            "--topic",
            "orders",
            "--data-dir",
            data_arg,
        ],
        "",
        None,
    );
    assert!(added.contains("User:bob"), "{added}");
    // A broker's flags and --data-dir do not mix: the change would go one place only.
    let (success, _, err) = cli(
        &[
            "user",
            "list",
            "--data-dir",
            data_arg,
            "--bootstrap",
            "127.0.0.1:1",
        ],
        "",
        None,
    );
    assert!(!success && err.contains("cannot be used with"), "{err}");

    let flags = [
        "--require-auth",
        "native",
        "--acls",
        "--super-user",
        "User:admin",
    ];
    let mut b = Broker::start_in(&data, &flags);
    let (success, _, err) = cli(&["topic", "list", "--bootstrap", &b.addr], "", None);
    assert!(!success && err.contains("AuthenticationRequired"), "{err}");
    client_as(&b, "admin", ADMIN_PASSWORD).expect("admin authenticates");
    client_as(&b, "bob", BOB_PASSWORD).expect("bob authenticates");
    let acls = admin_cli(&b, &["acl", "list"], "");
    assert!(
        acls.contains("Topic:orders") && acls.contains("User:bob"),
        "{acls}"
    );

    // Locked while the broker runs.
    let (success, _, err) = cli(
        &["user", "add", "carol", "--data-dir", data_arg],
        "carol-pw\n",
        None,
    );
    assert!(
        !success,
        "an offline change under a running broker is refused"
    );
    assert!(
        err.contains("in use by another process") && err.contains("(pid "),
        "{err}"
    );
    let (success, _, err) = cli(&["acl", "list", "--data-dir", data_arg], "", None);
    assert!(!success && err.contains("in use"), "{err}");
    match peregrine::embedded::BrokerProcess::spawn(std::path::Path::new(BIN), &data, &[]) {
        Ok(_) => panic!("a second broker started on a data directory in use"),
        Err(e) => assert!(e.to_string().contains("in use by another process"), "{e}"),
    }
    let users = admin_cli(&b, &["user", "list"], "");
    assert!(!users.contains("carol"), "{users}");
    client_as(&b, "admin", ADMIN_PASSWORD).expect("the first broker still serves");

    // kill -9 leaves no stale lock: offline again, then the broker sees the change.
    b.kill9();
    let listed = ok(&["user", "list", "--data-dir", data_arg], "", None);
    assert!(
        listed.contains("admin\t") && listed.contains("bob\t"),
        "{listed}"
    );
    ok(&["user", "remove", "bob", "--data-dir", data_arg], "", None);
    let b = Broker::start_in(&data, &flags);
    let refused = client_as(&b, "bob", BOB_PASSWORD);
    assert_eq!(
        refused.err().and_then(|e| e.code()),
        Some(ErrorCode::AuthenticationFailed)
    );
}

/// `serve --initial-user` creates the user on a start that finds no user, and never
/// again: a password changed since stays changed across restarts.
#[test]
fn the_initial_user_is_created_on_a_first_start_only() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("admin.pw");
    std::fs::write(&file, format!("{ADMIN_PASSWORD}\n")).expect("write");
    let data = dir.path().join("data");
    let mut b = Broker::start_in(
        &data,
        &[
            "--require-auth",
            "native",
            "--initial-user",
            "admin",
            "--initial-user-password-file",
            file.to_str().expect("utf-8 path"),
        ],
    );
    assert!(b.log().contains("initial user created"), "{}", b.log());
    let wrong = client_as(&b, "admin", "guess");
    assert_eq!(
        wrong.err().and_then(|e| e.code()),
        Some(ErrorCode::AuthenticationFailed)
    );
    let listed = admin_cli(&b, &["user", "list"], "");
    assert!(
        listed.contains("admin\tmechanisms=SCRAM-SHA-256:4096,SCRAM-SHA-512:4096"),
        "{listed}"
    );
    admin_cli(&b, &["user", "add", "admin"], "a new password\n");
    b.restart();
    assert!(b.log().contains("--initial-user left alone"), "{}", b.log());
    let old = client_as(&b, "admin", ADMIN_PASSWORD);
    assert_eq!(
        old.err().and_then(|e| e.code()),
        Some(ErrorCode::AuthenticationFailed)
    );
    client_as(&b, "admin", "a new password").expect("the changed password stands");
}
