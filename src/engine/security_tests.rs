//! Engine tests of the user store and the ACLs: changes through the controller, the
//! answers front ends read, `--acls` and `--super-user`, and both surviving a restart.

use super::tests::{config, with_engine_configured};
use super::Engine;
use crate::config::SecurityConfig;
use peregrine_shards::security::{
    AclBinding, AclFilter, Operation, PatternType, Permission, ResourceType, ScramMechanism,
    UserChange, UserError,
};
use std::net::IpAddr;

const HOME: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

fn secured(dir: &std::path::Path, acls: bool) -> crate::config::ServerConfig {
    crate::config::ServerConfig {
        security: SecurityConfig {
            acls,
            super_users: vec!["User:root".into()],
            ..SecurityConfig::default()
        },
        ..config(dir)
    }
}

fn write_topic(principal: &str, topic: &str, permission: Permission) -> AclBinding {
    AclBinding {
        resource_type: ResourceType::Topic,
        name: topic.into(),
        pattern: PatternType::Literal,
        principal: principal.into(),
        host: "*".into(),
        operation: Operation::Write,
        permission,
    }
}

fn may_write(engine: &Engine, principal: &str, topic: &str) -> bool {
    engine.principal_allowed(
        principal,
        HOME,
        Operation::Write,
        ResourceType::Topic,
        topic,
    )
}

#[test]
fn users_and_acls_change_through_the_controller_and_survive_a_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    with_engine_configured(secured(dir.path(), true), |engine| async move {
        let results = engine
            .alter_users(vec![
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
                UserChange::SetPassword {
                    name: "weak".into(),
                    password: "pw".into(),
                    iterations: 1,
                },
            ])
            .await
            .expect("catalog written");
        assert_eq!(results[..2], [Ok(()), Ok(())]);
        assert!(matches!(
            results[2],
            Err(UserError::UnacceptableCredential(_))
        ));
        assert!(engine.verify_password("alice", "pencil"));
        assert!(!engine.verify_password("alice", "Pencil"));
        assert!(engine.check_password("alice", "pencil").await);
        assert!(!engine.check_password("nobody", "pencil").await);
        assert!(engine
            .scram_credential("alice", ScramMechanism::Sha512)
            .is_some());
        assert!(engine
            .scram_credential("weak", ScramMechanism::Sha256)
            .is_none());
        assert_eq!(
            engine.access_key_secret("AKIDALICE"),
            Some(("alice".into(), "sigv4-secret".into()))
        );
        let listed = engine.list_users();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].access_keys, ["AKIDALICE"]);

        // With --acls: nothing allowed until an ACL allows it; deny wins; super-user.
        assert!(!may_write(&engine, "User:alice", "orders"));
        assert!(may_write(&engine, "User:root", "orders"));
        let allow_all = write_topic("User:*", "*", Permission::Allow);
        let deny_bob = write_topic("User:bob", "orders", Permission::Deny);
        let bad = write_topic("bob", "orders", Permission::Deny);
        let results = engine
            .create_acls(vec![allow_all.clone(), deny_bob.clone(), bad])
            .await;
        assert!(results[0].is_ok() && results[1].is_ok(), "{results:?}");
        assert!(
            results[2].is_err(),
            "a principal without its type is refused"
        );
        assert!(may_write(&engine, "User:alice", "orders"));
        assert!(!may_write(&engine, "User:bob", "orders"));
        assert!(may_write(&engine, "User:bob", "payments"));
        let filter = AclFilter {
            principal: Some("User:bob".into()),
            ..AclFilter::any()
        };
        assert_eq!(
            engine.describe_acls(&filter),
            std::slice::from_ref(&deny_bob)
        );
        assert_eq!(engine.describe_acls(&AclFilter::any()).len(), 2);
        // Deleting by filter takes what it matched; the wildcard allow stays.
        let removed = engine.delete_acls(vec![filter]).await;
        assert_eq!(removed, [Ok(vec![deny_bob])]);
        assert!(may_write(&engine, "User:bob", "orders"));
    });
    // Restarted from the catalog file, with ACLs off this time: all allowed.
    with_engine_configured(secured(dir.path(), false), |engine| async move {
        assert!(may_write(&engine, "User:ANONYMOUS", "anything"));
        assert!(engine.verify_password("alice", "pencil"));
        assert_eq!(
            engine.access_key_secret("AKIDALICE").map(|(user, _)| user),
            Some("alice".into())
        );
        assert_eq!(
            engine.describe_acls(&AclFilter::any()),
            [write_topic("User:*", "*", Permission::Allow)]
        );
        let results = engine
            .alter_users(vec![UserChange::Delete {
                name: "alice".into(),
                mechanism: None,
            }])
            .await
            .expect("catalog written");
        assert_eq!(results, [Ok(())]);
        assert!(!engine.verify_password("alice", "pencil"));
        assert_eq!(engine.access_key_secret("AKIDALICE"), None);
    });
}

/// A SCRAM exchange through a session, as a front end drives it.
async fn scram_login(
    engine: &Engine,
    mechanism: ScramMechanism,
    peer: IpAddr,
    password: &str,
) -> Result<String, String> {
    use crate::auth::sasl::ScramClient;
    use crate::auth::session::{Mechanism, SaslSession, SaslStep};
    let mut client = ScramClient::new(mechanism, "alice", password).map_err(|e| e.to_string())?;
    let mut session = SaslSession::new(Mechanism::Scram(mechanism), peer, "test");
    let first = session
        .step(engine, &client.client_first())
        .await
        .map_err(|e| e.to_string())?;
    let SaslStep::Challenge(server_first) = first else {
        return Err("no challenge".into());
    };
    let last = client
        .server_first(&server_first)
        .map_err(|e| e.to_string())?;
    match session
        .step(engine, &last)
        .await
        .map_err(|e| e.to_string())?
    {
        SaslStep::Success { principal, message } => {
            client.server_final(&message).map_err(|e| e.to_string())?;
            Ok(principal)
        }
        SaslStep::Challenge(_) => Err("a third message".into()),
    }
}

async fn plain_login(engine: &Engine, peer: IpAddr, password: &str) -> Result<String, String> {
    use crate::auth::session::{Mechanism, SaslSession, SaslStep};
    let mut session = SaslSession::new(Mechanism::Plain, peer, "test");
    let message = crate::auth::sasl::plain_message("alice", password);
    match session.step(engine, &message).await {
        Ok(SaslStep::Success { principal, .. }) => Ok(principal),
        Ok(SaslStep::Challenge(_)) => Err("a challenge".into()),
        Err(e) => Err(e.to_string()),
    }
}

#[test]
fn sasl_sessions_log_in_with_each_mechanism_and_failures_are_limited_per_peer() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = crate::config::ServerConfig {
        security: SecurityConfig {
            login_failures_per_minute: 2,
            ..SecurityConfig::default()
        },
        ..config(dir.path())
    };
    with_engine_configured(config, |engine| async move {
        let set = UserChange::SetPassword {
            name: "alice".into(),
            password: "pencil".into(),
            iterations: 4096,
        };
        let results = engine.alter_users(vec![set]).await.expect("written");
        assert_eq!(results, [Ok(())]);
        for m in ScramMechanism::ALL {
            let principal = scram_login(&engine, m, HOME, "pencil").await;
            assert_eq!(principal.as_deref(), Ok("User:alice"), "{}", m.name());
        }
        assert_eq!(
            plain_login(&engine, HOME, "pencil").await.as_deref(),
            Ok("User:alice")
        );

        // Two failures from one peer (a wrong SCRAM proof, a wrong PLAIN password)...
        let guesser: IpAddr = "192.0.2.1".parse().expect("ip");
        let wrong = scram_login(&engine, ScramMechanism::Sha256, guesser, "pen").await;
        assert!(wrong.expect_err("refused").contains("invalid credentials"));
        let wrong = plain_login(&engine, guesser, "pen").await;
        assert!(wrong.expect_err("refused").contains("invalid credentials"));
        // ...and even the right password is refused from it, unchecked, for a minute.
        let limited = plain_login(&engine, guesser, "pencil").await;
        assert!(limited
            .expect_err("limited")
            .contains("too many failed logins"));
        let limited = scram_login(&engine, ScramMechanism::Sha512, guesser, "pencil").await;
        assert!(limited
            .expect_err("limited")
            .contains("too many failed logins"));
        // Other peers are served.
        assert!(plain_login(&engine, HOME, "pencil").await.is_ok());
    });
}

#[test]
fn every_shard_reads_users_and_acls_from_its_snapshot_once_a_change_returns() {
    super::tests::with_two_shards(|engine| async move {
        let set = UserChange::SetPassword {
            name: "alice".into(),
            password: "pencil".into(),
            iterations: 4096,
        };
        assert_eq!(engine.alter_users(vec![set]).await, Ok(vec![Ok(())]));
        let acl = write_topic("User:alice", "orders", Permission::Allow);
        assert!(engine.create_acls(vec![acl.clone()]).await[0].is_ok());
        // This shard and the other answer from their own snapshots (one of the two is
        // not the controller).
        assert!(engine.verify_password("alice", "pencil"));
        assert!(may_write_any(&engine));
        let other = 1 - engine.shard_id();
        let job = move |shard: std::rc::Rc<super::shard::Shard>| async move {
            let there = Engine::new(shard);
            let allowed = may_write_any(&there);
            Ok((
                there.shard_id(),
                there.verify_password("alice", "pencil"),
                there.describe_acls(&AclFilter::any()),
                allowed,
            ))
        };
        let answer = engine.on_owner(other, super::CallClass::Client, job).await;
        let (shard, verified, acls, allowed) = answer.expect("the other shard answers");
        assert_eq!(shard, other);
        assert!(verified && allowed);
        assert_eq!(acls, [acl]);
    });
}

/// `User:alice` may write `orders` by this shard's ACL snapshot (whatever `--acls` says).
fn may_write_any(engine: &Engine) -> bool {
    let catalog = engine.shard().catalog();
    catalog.acls.authorize(
        "User:alice",
        HOME,
        Operation::Write,
        ResourceType::Topic,
        "orders",
    )
}
