//! DescribeUserScramCredentials and AlterUserScramCredentials (KIP-554) on the broker's
//! user store: Kafka admin clients list and manage the SCRAM users every protocol logs
//! in with. Describing needs Describe on the cluster, altering Alter (with `--acls`).
//!
//! Kafka sends SCRAM credentials already salted (salt, iterations, SaltedPassword), so
//! the password never reaches the broker; the store keeps StoredKey and ServerKey.
//! Kafka's rules, kept: one result per user named; a user whose changes include a bad
//! one (unknown mechanism, iterations outside 4096..=16384, the same credential twice,
//! deleting a credential that does not exist) gets that error and none of its changes
//! are made.

use super::{errors, str_bytes, Ctx};
use kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
use kafka_protocol::messages::describe_user_scram_credentials_response::{
    CredentialInfo, DescribeUserScramCredentialsResult,
};
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse,
    DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse,
};
use kafka_protocol::ResponseError as K;
use peregrine_shards::security::acls::CLUSTER_NAME;
use peregrine_shards::security::users::{ITERATIONS_MAX, ITERATIONS_MIN};
use peregrine_shards::security::{Operation, ResourceType, ScramMechanism, UserChange, UserError};
use std::collections::{BTreeMap, HashMap, HashSet};

/// A Kafka error code and its message.
type Refusal = (i16, String);

fn allowed(ctx: &Ctx, op: Operation) -> bool {
    let principal = ctx.principal();
    ctx.engine.principal_allowed(
        &principal,
        ctx.peer_ip,
        op,
        ResourceType::Cluster,
        CLUSTER_NAME,
    )
}

pub fn describe(
    ctx: &Ctx,
    r: DescribeUserScramCredentialsRequest,
) -> DescribeUserScramCredentialsResponse {
    let answer = DescribeUserScramCredentialsResponse::default();
    if !allowed(ctx, Operation::Describe) {
        return answer
            .with_error_code(K::ClusterAuthorizationFailed.code())
            .with_error_message(Some(str_bytes("Describe on the cluster is not allowed")));
    }
    let users: BTreeMap<String, Vec<CredentialInfo>> = ctx
        .engine
        .list_users()
        .into_iter()
        .map(|u| {
            let infos = u
                .mechanisms
                .iter()
                .map(|(m, iterations)| {
                    CredentialInfo::default()
                        .with_mechanism(m.kafka_type())
                        .with_iterations(i32::try_from(*iterations).unwrap_or(i32::MAX))
                })
                .collect();
            (u.name, infos)
        })
        .filter(|(_, infos): &(String, Vec<CredentialInfo>)| !infos.is_empty())
        .collect();
    let named: Vec<String> = r
        .users
        .unwrap_or_default()
        .into_iter()
        .map(|u| u.name.to_string())
        .collect();
    let result =
        |user: &str| DescribeUserScramCredentialsResult::default().with_user(str_bytes(user));
    let results = if named.is_empty() {
        users
            .into_iter()
            .map(|(name, infos)| result(&name).with_credential_infos(infos))
            .collect()
    } else {
        let mut times: HashMap<&str, usize> = HashMap::new();
        for name in &named {
            *times.entry(name).or_default() += 1;
        }
        let mut seen = HashSet::new();
        named
            .iter()
            .filter(|name| seen.insert(name.as_str()))
            .map(|name| match users.get(name) {
                _ if times[name.as_str()] > 1 => result(name)
                    .with_error_code(K::DuplicateResource.code())
                    .with_error_message(Some(str_bytes("user named twice in one request"))),
                Some(infos) => result(name).with_credential_infos(infos.clone()),
                None => result(name)
                    .with_error_code(K::ResourceNotFound.code())
                    .with_error_message(Some(str_bytes(
                        "attempt to describe a user credential that does not exist",
                    ))),
            })
            .collect()
    };
    answer.with_results(results)
}

pub async fn alter(
    ctx: &Ctx,
    r: AlterUserScramCredentialsRequest,
) -> AlterUserScramCredentialsResponse {
    let mut plan = Plan::default();
    for d in &r.deletions {
        plan.delete(d.name.as_str(), d.mechanism);
    }
    for u in r.upsertions {
        let change = upsert(
            u.name.as_str(),
            u.mechanism,
            u.iterations,
            u.salt.to_vec(),
            u.salted_password.to_vec(),
        );
        plan.add(u.name.as_str(), u.mechanism, change);
    }
    if !allowed(ctx, Operation::Alter) {
        let results = plan
            .order
            .iter()
            .map(|user| {
                result(
                    user,
                    K::ClusterAuthorizationFailed.code(),
                    "Alter on the cluster is not allowed",
                )
            })
            .collect();
        return AlterUserScramCredentialsResponse::default().with_results(results);
    }
    // A deletion of a credential that does not exist is refused, as Kafka does.
    let existing: HashMap<String, Vec<ScramMechanism>> = ctx
        .engine
        .list_users()
        .into_iter()
        .map(|u| (u.name, u.mechanisms.iter().map(|(m, _)| *m).collect()))
        .collect();
    for user in plan.order.clone() {
        let Some(changes) = plan.changes.get(&user) else {
            continue;
        };
        let missing = changes.iter().any(|c| match c {
            Ok(UserChange::Delete {
                mechanism: Some(m), ..
            }) => !existing.get(&user).is_some_and(|ms| ms.contains(m)),
            _ => false,
        });
        if missing {
            plan.fail(
                &user,
                K::ResourceNotFound.code(),
                "attempt to delete a user credential that does not exist".into(),
            );
        }
    }
    let results = apply(ctx, plan).await;
    AlterUserScramCredentialsResponse::default().with_results(results)
}

/// Runs the changes of every user without an error and gathers one result per user.
async fn apply(ctx: &Ctx, plan: Plan) -> Vec<AlterUserScramCredentialsResult> {
    let mut batch = Vec::new();
    let mut owners = Vec::new();
    let mut outcome: HashMap<String, (i16, String)> = HashMap::new();
    for user in &plan.order {
        match plan.error.get(user) {
            Some(e) => {
                outcome.insert(user.clone(), e.clone());
            }
            None => {
                for change in plan.changes.get(user).into_iter().flatten().flatten() {
                    batch.push(change.clone());
                    owners.push(user.clone());
                }
            }
        }
    }
    if !batch.is_empty() {
        match ctx.engine.alter_users(batch).await {
            Ok(each) => {
                for (user, r) in owners.iter().zip(each) {
                    if let Err(e) = r {
                        outcome.entry(user.clone()).or_insert_with(|| refusal(e));
                    }
                }
            }
            Err(e) => {
                let e = errors::of(e);
                for user in &owners {
                    outcome.entry(user.clone()).or_insert_with(|| e.clone());
                }
            }
        }
    }
    plan.order
        .iter()
        .map(|user| match outcome.get(user) {
            Some((code, message)) => result(user, *code, message),
            None => result(user, errors::NONE, ""),
        })
        .collect()
}

/// The Kafka code of a change the store refused.
fn refusal(e: UserError) -> (i16, String) {
    let code = match &e {
        UserError::UnknownUser(_) | UserError::UnknownCredential { .. } => K::ResourceNotFound,
        UserError::InvalidName(_) | UserError::UnacceptableCredential(_) => {
            K::UnacceptableCredential
        }
        UserError::TooManyUsers => K::PolicyViolation,
        UserError::TooManyAccessKeys(_)
        | UserError::AccessKeyExists(_)
        | UserError::UnknownAccessKey(_)
        | UserError::InvalidAccessKey(_) => K::InvalidRequest,
        UserError::Random(_) => K::UnknownServerError,
    };
    (code.code(), e.to_string())
}

fn result(user: &str, code: i16, message: &str) -> AlterUserScramCredentialsResult {
    AlterUserScramCredentialsResult::default()
        .with_user(str_bytes(user))
        .with_error_code(code)
        .with_error_message((code != errors::NONE).then(|| str_bytes(message)))
}

/// An upsertion as a store change, or why it is refused.
fn upsert(
    name: &str,
    mechanism: i8,
    iterations: i32,
    salt: Vec<u8>,
    salted_password: Vec<u8>,
) -> Result<UserChange, Refusal> {
    let unacceptable = |m: &str| Err((K::UnacceptableCredential.code(), m.to_string()));
    let Some(mechanism) = ScramMechanism::from_kafka_type(mechanism) else {
        return Err((
            K::UnsupportedSaslMechanism.code(),
            format!("unknown SCRAM mechanism {mechanism}"),
        ));
    };
    let Ok(iterations) = u32::try_from(iterations) else {
        return unacceptable("negative iterations");
    };
    if iterations < ITERATIONS_MIN {
        return unacceptable("too few iterations (at least 4096)");
    }
    if iterations > ITERATIONS_MAX {
        return unacceptable("too many iterations (at most 16384)");
    }
    if salt.is_empty() || salted_password.is_empty() {
        return unacceptable("empty salt or salted password");
    }
    Ok(UserChange::Upsert {
        name: name.to_string(),
        mechanism,
        iterations,
        salt,
        salted_password,
    })
}

/// The request's changes grouped by user, in the order users were first named.
#[derive(Default)]
struct Plan {
    order: Vec<String>,
    changes: HashMap<String, Vec<Result<UserChange, Refusal>>>,
    /// Credentials (user, mechanism code) named so far: a second is a duplicate.
    named: HashSet<(String, i8)>,
    /// The first error of each user that has one.
    error: HashMap<String, (i16, String)>,
}

impl Plan {
    fn delete(&mut self, name: &str, mechanism: i8) {
        let change = match ScramMechanism::from_kafka_type(mechanism) {
            Some(m) => Ok(UserChange::Delete {
                name: name.to_string(),
                mechanism: Some(m),
            }),
            None => Err((
                K::UnsupportedSaslMechanism.code(),
                format!("unknown SCRAM mechanism {mechanism}"),
            )),
        };
        self.add(name, mechanism, change);
    }

    fn add(&mut self, name: &str, mechanism: i8, change: Result<UserChange, Refusal>) {
        if !self.changes.contains_key(name) {
            self.order.push(name.to_string());
        }
        if name.is_empty() {
            self.fail(
                name,
                K::UnacceptableCredential.code(),
                "empty user name".into(),
            );
        } else if !self.named.insert((name.to_string(), mechanism)) {
            self.fail(
                name,
                K::DuplicateResource.code(),
                "a credential named twice in one request".into(),
            );
        } else if let Err(e) = &change {
            self.fail(name, e.0, e.1.clone());
        }
        self.changes
            .entry(name.to_string())
            .or_default()
            .push(change);
    }

    fn fail(&mut self, name: &str, code: i16, message: String) {
        self.error
            .entry(name.to_string())
            .or_insert((code, message));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upsertion(plan: &mut Plan, name: &str, mechanism: i8, iterations: i32) {
        let change = upsert(name, mechanism, iterations, vec![1; 16], vec![2; 32]);
        plan.add(name, mechanism, change);
    }

    #[test]
    fn a_bad_change_fails_its_user_only_and_a_second_naming_is_a_duplicate() {
        let mut plan = Plan::default();
        upsertion(&mut plan, "alice", 1, 4096);
        upsertion(&mut plan, "alice", 2, 16384);
        upsertion(&mut plan, "bob", 1, 4095);
        upsertion(&mut plan, "carol", 1, 16385);
        upsertion(&mut plan, "dave", 3, 8192);
        upsertion(&mut plan, "erin", 1, 8192);
        plan.delete("erin", 1);
        plan.delete("frank", 0);
        upsertion(&mut plan, "", 1, 8192);
        assert_eq!(
            plan.order,
            ["alice", "bob", "carol", "dave", "erin", "frank", ""]
        );
        let code = |u: &str| plan.error.get(u).map(|e| e.0);
        assert_eq!(code("alice"), None);
        assert_eq!(code("bob"), Some(K::UnacceptableCredential.code()));
        assert_eq!(code("carol"), Some(K::UnacceptableCredential.code()));
        assert_eq!(code("dave"), Some(K::UnsupportedSaslMechanism.code()));
        assert_eq!(code("erin"), Some(K::DuplicateResource.code()));
        assert_eq!(code("frank"), Some(K::UnsupportedSaslMechanism.code()));
        assert_eq!(code(""), Some(K::UnacceptableCredential.code()));
        assert_eq!(plan.changes["alice"].len(), 2);
    }
}
