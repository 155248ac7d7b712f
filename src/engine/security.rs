//! Authentication and authorization as the front ends ask for them: the user store and
//! the ACLs (both in the catalog, `peregrine_shards::security`), read from this shard's
//! snapshot without a cross-shard hop, and changed on the controller like every other
//! catalog change (written to the catalog file, then handed to every shard).
//!
//! `principal_allowed` is the one check every front end makes before acting on a
//! request; with `--acls` off it answers yes without looking at anything. Failed logins
//! are counted per peer on this shard (`login_permitted`, `login_failed`,
//! `auth::logins`).
//! Password hashing (PBKDF2) runs on the blocking pool where it can
//! (`alter_users`, `check_password`), so a login or a user change does not hold up the
//! other clients of the shard.

use super::error::EngineError;
use super::mesh::CallClass;
use super::placement::CONTROLLER_SHARD;
use super::shard::Shard;
use super::Engine;
use peregrine_shards::security::{
    AclBinding, AclError, AclFilter, Operation, ResourceType, ScramCredential, ScramMechanism,
    UserChange, UserError, UserInfo,
};
use std::net::IpAddr;
use std::rc::Rc;

/// Changes one `alter_users` or `create_acls` call may carry (Kafka sends one request
/// for many; each is checked and applied in one catalog write).
pub const CHANGES_PER_CALL_MAX: usize = 1000;

impl From<UserError> for EngineError {
    fn from(e: UserError) -> EngineError {
        let text = e.to_string();
        match e {
            UserError::UnknownUser(_)
            | UserError::UnknownCredential { .. }
            | UserError::UnknownAccessKey(_)
            | UserError::InvalidName(_)
            | UserError::UnacceptableCredential(_)
            | UserError::InvalidAccessKey(_)
            | UserError::TooManyUsers
            | UserError::TooManyAccessKeys(_) => EngineError::InvalidRequest(text),
            UserError::AccessKeyExists(_) => EngineError::PreconditionFailed(text),
            UserError::Random(_) => EngineError::Internal(text),
        }
    }
}

impl From<AclError> for EngineError {
    fn from(e: AclError) -> EngineError {
        EngineError::InvalidRequest(e.to_string())
    }
}

impl Engine {
    // ---- authorization ----

    /// Whether `principal` (`User:NAME`, `User:ANONYMOUS` before a login) connecting
    /// from `host` may do `operation` on a resource: always with `--acls` off; for a
    /// `--super-user`; else when an ACL allows it and none denies it. Reads this
    /// shard's snapshot only; every front end calls it before acting on a request.
    pub fn principal_allowed(
        &self,
        principal: &str,
        host: IpAddr,
        operation: Operation,
        resource_type: ResourceType,
        name: &str,
    ) -> bool {
        let security = &self.config().security;
        if !security.acls || security.super_users.iter().any(|s| s == principal) {
            return true;
        }
        let allowed =
            self.shard()
                .catalog()
                .acls
                .authorize(principal, host, operation, resource_type, name);
        if !allowed {
            tracing::debug!(
                %principal, %host, ?operation, ?resource_type, resource = %name,
                "denied by the ACLs"
            );
        }
        allowed
    }

    // ---- users ----

    /// `user`'s SCRAM credential for `mechanism` (what a SCRAM server needs).
    pub fn scram_credential(
        &self,
        user: &str,
        mechanism: ScramMechanism,
    ) -> Option<ScramCredential> {
        self.shard()
            .catalog()
            .users
            .scram_credential(user, mechanism)
            .cloned()
    }

    /// Whether `password` is `user`'s (SASL PLAIN, AMQPLAIN). Runs PBKDF2 on this
    /// shard's thread (a few ms at 4096 iterations); prefer `check_password`.
    pub fn verify_password(&self, user: &str, password: &str) -> bool {
        self.shard().catalog().users.verify_password(user, password)
    }

    /// `verify_password` on the blocking pool, so the shard keeps serving meanwhile.
    pub async fn check_password(&self, user: &str, password: &str) -> bool {
        let catalog = self.shard().catalog();
        let (user, password) = (user.to_string(), password.to_string());
        glommio::executor()
            .spawn_blocking(move || catalog.users.verify_password(&user, &password))
            .await
    }

    /// The user a SigV4 access key is bound to, and the key's secret.
    pub fn access_key_secret(&self, key_id: &str) -> Option<(String, String)> {
        let catalog = self.shard().catalog();
        let (user, key) = catalog.users.access_key(key_id)?;
        Some((user.name.clone(), key.secret.clone()))
    }

    /// Every user, without secrets.
    pub fn list_users(&self) -> Vec<UserInfo> {
        self.shard().catalog().users.list()
    }

    /// Applies user changes, each on its own (one refused leaves the others applied),
    /// in one catalog write: the result of each. Passwords are hashed on the blocking
    /// pool first. The outer error: the catalog could not be written (nothing changed),
    /// or more than `CHANGES_PER_CALL_MAX` changes.
    pub async fn alter_users(
        &self,
        changes: Vec<UserChange>,
    ) -> Result<Vec<Result<(), UserError>>, EngineError> {
        if changes.len() > CHANGES_PER_CALL_MAX {
            return Err(EngineError::InvalidRequest(format!(
                "at most {CHANGES_PER_CALL_MAX} user changes per request, got {}",
                changes.len()
            )));
        }
        let prepared: Vec<Result<UserChange, UserError>> = glommio::executor()
            .spawn_blocking(move || changes.into_iter().map(UserChange::prepare).collect())
            .await;
        let job = move |s: Rc<Shard>| async move { alter_users_on_controller(&s, prepared).await };
        self.on_owner(CONTROLLER_SHARD, CallClass::Client, job)
            .await
    }

    // ---- failed logins ----

    /// Whether a login from `peer` may be checked now: false once it failed
    /// `--login-failures-per-minute` times within a minute, on any shard. A refused
    /// login is answered as a failed one, without looking at the password.
    pub fn login_permitted(&self, peer: IpAddr) -> bool {
        let permitted = self
            .shard()
            .logins
            .lock()
            .permitted(peer, crate::time::now_ms());
        if !permitted {
            tracing::debug!(%peer, "login refused: too many failed logins from this address");
        }
        permitted
    }

    /// Counts a failed login from `peer` and logs it (peer, protocol, user; never the
    /// password). `user` is what the client claimed, possibly nobody's name.
    pub fn login_failed(&self, peer: IpAddr, protocol: &str, user: &str) {
        let limited = self
            .shard()
            .logins
            .lock()
            .failed(peer, crate::time::now_ms());
        tracing::warn!(%peer, protocol, user, "login failed");
        if limited {
            tracing::warn!(
                %peer,
                limit = self.config().security.login_failures_per_minute,
                "too many failed logins from this address: its logins are refused for a minute"
            );
        }
    }

    /// A login from `peer` succeeded. Its failures are kept (a valid account must not
    /// reset the guessing of another's password).
    pub fn login_succeeded(&self, peer: IpAddr) {
        tracing::debug!(%peer, "login succeeded");
    }

    // ---- ACLs ----

    /// Adds ACL bindings, each on its own, in one catalog write: the result of each
    /// (adding one that exists succeeds and changes nothing).
    pub async fn create_acls(&self, bindings: Vec<AclBinding>) -> Vec<Result<(), EngineError>> {
        let count = bindings.len();
        if count > CHANGES_PER_CALL_MAX {
            let e = EngineError::InvalidRequest(format!(
                "at most {CHANGES_PER_CALL_MAX} ACLs per request, got {count}"
            ));
            return vec![Err(e); count];
        }
        let job = move |s: Rc<Shard>| async move { create_acls_on_controller(&s, bindings).await };
        match self
            .on_owner(CONTROLLER_SHARD, CallClass::Client, job)
            .await
        {
            Ok(results) => results,
            Err(e) => vec![Err(e); count],
        }
    }

    /// Removes the bindings each filter matches, in one catalog write: the bindings
    /// removed, per filter.
    pub async fn delete_acls(
        &self,
        filters: Vec<AclFilter>,
    ) -> Vec<Result<Vec<AclBinding>, EngineError>> {
        let count = filters.len();
        if count > CHANGES_PER_CALL_MAX {
            let e = EngineError::InvalidRequest(format!(
                "at most {CHANGES_PER_CALL_MAX} ACL filters per request, got {count}"
            ));
            return vec![Err(e); count];
        }
        let job = move |s: Rc<Shard>| async move { delete_acls_on_controller(&s, filters).await };
        match self
            .on_owner(CONTROLLER_SHARD, CallClass::Client, job)
            .await
        {
            Ok(removed) => removed.into_iter().map(Ok).collect(),
            Err(e) => vec![Err(e); count],
        }
    }

    /// The bindings `filter` matches, from this shard's snapshot.
    pub fn describe_acls(&self, filter: &AclFilter) -> Vec<AclBinding> {
        self.shard().catalog().acls.matching(filter)
    }
}

async fn alter_users_on_controller(
    shard: &Rc<Shard>,
    prepared: Vec<Result<UserChange, UserError>>,
) -> Result<Vec<Result<(), UserError>>, EngineError> {
    debug_assert_eq!(shard.id, CONTROLLER_SHARD);
    let _serial = shard.admin_lock.acquire_permit(1).await;
    let catalog = shard.catalog();
    let mut results: Vec<Result<(), UserError>> = Vec::with_capacity(prepared.len());
    let mut changes = Vec::with_capacity(prepared.len());
    let mut slots = Vec::with_capacity(prepared.len());
    for (i, change) in prepared.into_iter().enumerate() {
        match change {
            Ok(change) => {
                slots.push(i);
                changes.push(change);
                results.push(Ok(()));
            }
            Err(e) => results.push(Err(e)),
        }
    }
    let described: Vec<String> = changes.iter().map(|c| format!("{c:?}")).collect();
    let (next, applied) = catalog.with_user_changes(changes);
    for (slot, result) in slots.into_iter().zip(applied) {
        results[slot] = result;
    }
    if let Some(next) = next {
        super::admin::publish(shard, next).await?;
        // Debug of a change names the user and mechanism, never a password or a key.
        tracing::info!(changes = ?described, "users changed");
    }
    Ok(results)
}

async fn create_acls_on_controller(
    shard: &Rc<Shard>,
    bindings: Vec<AclBinding>,
) -> Result<Vec<Result<(), EngineError>>, EngineError> {
    debug_assert_eq!(shard.id, CONTROLLER_SHARD);
    let _serial = shard.admin_lock.acquire_permit(1).await;
    let (next, results) = shard.catalog().with_acls(bindings);
    if let Some(next) = next {
        let count = next.acls.len();
        super::admin::publish(shard, next).await?;
        tracing::info!(acls = count, "ACLs added");
    }
    Ok(results
        .into_iter()
        .map(|r| r.map_err(EngineError::from))
        .collect())
}

async fn delete_acls_on_controller(
    shard: &Rc<Shard>,
    filters: Vec<AclFilter>,
) -> Result<Vec<Vec<AclBinding>>, EngineError> {
    debug_assert_eq!(shard.id, CONTROLLER_SHARD);
    let _serial = shard.admin_lock.acquire_permit(1).await;
    let (next, removed) = shard.catalog().without_acls(&filters);
    if let Some(next) = next {
        let count = next.acls.len();
        super::admin::publish(shard, next).await?;
        tracing::info!(acls = count, "ACLs removed");
    }
    Ok(removed)
}
