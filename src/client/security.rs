//! User and ACL administration calls of the native client (`peregrine user`,
//! `peregrine acl`). The broker needs Alter on the cluster for changes and Describe on
//! it for listings when `--acls` is on.

use super::{unexpected, Client, ClientError};
use crate::native::messages::{
    AclBinding, AclFilter, Request, Response, ScramMechanism, UserChange, UserInfo,
};
use peregrine_shards::security::users::{self as store, ITERATIONS_DEFAULT, SALT_BYTES};

/// The changes that give `name` the credentials of `password` for `mechanisms` (both
/// when empty): a fresh random salt each, PBKDF2 here, so the password itself is never
/// sent. `iterations` None: the store's default.
pub fn password_changes(
    name: &str,
    password: &str,
    mechanisms: &[ScramMechanism],
    iterations: Option<u32>,
) -> Result<Vec<UserChange>, ClientError> {
    let all = [ScramMechanism::ScramSha256, ScramMechanism::ScramSha512];
    let mechanisms = if mechanisms.is_empty() {
        &all[..]
    } else {
        mechanisms
    };
    let iterations = iterations.unwrap_or(ITERATIONS_DEFAULT);
    mechanisms
        .iter()
        .map(|m| {
            let salt = store::random_bytes(SALT_BYTES)
                .map_err(|e| ClientError::Protocol(format!("salt: {e}")))?;
            let salted_password = store::ScramMechanism::from(*m).salted_password(
                password.as_bytes(),
                &salt,
                iterations,
            );
            Ok(UserChange::Upsert {
                name: name.to_string(),
                mechanism: *m,
                iterations,
                salt,
                salted_password,
            })
        })
        .collect()
}

impl Client {
    /// Creates `name` or gives it a new password, for `mechanisms` (both when empty).
    pub fn set_password(
        &mut self,
        name: &str,
        password: &str,
        mechanisms: &[ScramMechanism],
        iterations: Option<u32>,
    ) -> Result<(), ClientError> {
        for change in password_changes(name, password, mechanisms, iterations)? {
            self.alter_user(change)?;
        }
        Ok(())
    }

    /// One change to the user store.
    pub fn alter_user(&mut self, change: UserChange) -> Result<(), ClientError> {
        self.call(Request::AlterUser(change), &[]).map(|_| ())
    }

    /// Every user, with its mechanisms and access key ids (never a secret).
    pub fn list_users(&mut self) -> Result<Vec<UserInfo>, ClientError> {
        match self.call(Request::ListUsers, &[])?.0 {
            Response::Users { users } => Ok(users),
            other => Err(unexpected("list users", &other)),
        }
    }

    pub fn create_acls(&mut self, bindings: Vec<AclBinding>) -> Result<(), ClientError> {
        self.call(Request::CreateAcls { bindings }, &[]).map(|_| ())
    }

    /// Removes every binding the filters match; returns them.
    pub fn delete_acls(&mut self, filters: Vec<AclFilter>) -> Result<Vec<AclBinding>, ClientError> {
        match self.call(Request::DeleteAcls { filters }, &[])?.0 {
            Response::Acls { bindings } => Ok(bindings),
            other => Err(unexpected("delete ACLs", &other)),
        }
    }

    pub fn describe_acls(&mut self, filter: AclFilter) -> Result<Vec<AclBinding>, ClientError> {
        match self.call(Request::DescribeAcls { filter }, &[])?.0 {
            Response::Acls { bindings } => Ok(bindings),
            other => Err(unexpected("describe ACLs", &other)),
        }
    }
}
