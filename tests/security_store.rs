//! The user store and the ACLs live in the broker's catalog file: written there (as an
//! operator's tool would before the first start), they survive the real broker's
//! restarts, a kill -9 and its own rewrites of the file for other changes, and the file
//! stays owner-only. Logins and enforcement through each protocol are tested with that
//! protocol (tests/kafka_sasl.rs, native_auth.rs, amqp_auth.rs, http_auth.rs, ...).

mod common;

use common::{run_cli_status, Broker};
use peregrine_shards::catalog::{Catalog, CATALOG_FILE_MODE};
use peregrine_shards::security::{
    AclBinding, Operation, PatternType, Permission, ResourceType, ScramMechanism, UserChange,
};
use std::os::unix::fs::PermissionsExt;

fn read_orders() -> AclBinding {
    AclBinding {
        resource_type: ResourceType::Topic,
        name: "orders".into(),
        pattern: PatternType::Literal,
        principal: "User:alice".into(),
        host: "*".into(),
        operation: Operation::Read,
        permission: Permission::Allow,
    }
}

#[test]
fn users_and_acls_survive_restarts_a_kill_and_the_brokers_own_catalog_changes() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = tmp.path().join("meta").join("topics.json");
    let (with_user, results) = Catalog::default().with_user_changes(vec![
        UserChange::SetPassword {
            name: "alice".into(),
            password: "pencil".into(),
            iterations: 4096,
        },
        UserChange::AddAccessKey {
            name: "alice".into(),
            id: "AKIDALICE".into(),
            secret: "sigv4-secret".into(),
        },
    ]);
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    let (seeded, _) = with_user.expect("a user").with_acls(vec![read_orders()]);
    seeded.expect("an ACL").save_blocking(&path).expect("saved");

    let extra = [
        "--super-user",
        "User:admin",
        "--login-failures-per-minute",
        "5",
    ];
    let mut broker = Broker::start_in(tmp.path(), &extra);
    // A change of the broker's own rewrites the file; a kill -9 and a restart follow.
    broker.create_topic("orders", 1);
    broker.kill9();
    broker.restart();
    broker.create_topic("payments", 2);
    assert!(broker.stop(), "clean stop");

    let catalog = Catalog::load(&path).expect("the catalog loads");
    assert!(catalog.topics.contains_key("orders") && catalog.topics.contains_key("payments"));
    assert!(catalog.users.verify_password("alice", "pencil"));
    assert!(!catalog.users.verify_password("alice", "pencil!"));
    for m in ScramMechanism::ALL {
        assert!(
            catalog.users.scram_credential("alice", m).is_some(),
            "{}",
            m.name()
        );
    }
    let (user, key) = catalog.users.access_key("AKIDALICE").expect("the key");
    assert_eq!(
        (user.name.as_str(), key.secret.as_str()),
        ("alice", "sigv4-secret")
    );
    assert_eq!(
        catalog.acls.bindings().cloned().collect::<Vec<_>>(),
        [read_orders()]
    );
    // Neither the password nor anything but keys derived from it is in the file.
    let text = std::fs::read_to_string(&path).expect("read");
    assert!(!text.contains("pencil"));
    let mode = std::fs::metadata(&path).expect("file").permissions().mode();
    assert_eq!(
        mode & 0o777,
        CATALOG_FILE_MODE,
        "owner-only: it holds credentials"
    );
}

#[test]
fn security_flags_that_name_nothing_stop_the_start_with_a_clear_error() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().to_str().expect("utf-8 path");
    for (flags, says) in [
        (&["--require-auth", "kafka-tls"][..], "not configured"),
        (&["--require-auth", "gopher"], "invalid value"),
        (&["--super-user", "admin"], "User:admin"),
        (&["--login-failures-per-minute", "0"], "at least 1"),
    ] {
        let mut args = vec!["serve", "--data-dir", dir];
        args.extend_from_slice(flags);
        let (ok, _, stderr) = run_cli_status(&args, "");
        assert!(!ok, "{flags:?} started");
        assert!(stderr.contains(says), "{flags:?}: {stderr}");
    }
}
