//! The user store and the ACLs of a data directory no broker runs on: how the first
//! user of a broker that requires authentication is made (`peregrine user add NAME
//! --data-dir DIR`, `peregrine acl add ... --data-dir DIR`, and `serve --initial-user`),
//! as Kafka's `kafka-storage format --add-scram` and RabbitMQ's default user do.
//!
//! Every change goes through the same `Catalog::with_user_changes` / `with_acls` /
//! `without_acls` as the broker's controller, and is written with the catalog's atomic
//! save, so the broker reads it back as if it had made it. The caller proves it holds
//! the data directory's lock (`DataDirLock`): a running broker would overwrite the file
//! with its own catalog at its next change. Blocking file calls; not for shards.

use super::{AclBinding, AclError, AclFilter, UserChange, UserError};
use crate::catalog::{Catalog, CatalogError};
use crate::data_dir_lock::DataDirLock;
use std::path::{Path, PathBuf};

/// Where the catalog lives under a data directory (as the broker opens it).
pub fn catalog_path(data_dir: &Path) -> PathBuf {
    data_dir.join("meta").join("topics.json")
}

/// A data directory's catalog, loaded under its lock.
pub struct OfflineCatalog<'lock> {
    _lock: &'lock DataDirLock,
    path: PathBuf,
    catalog: Catalog,
}

impl<'lock> OfflineCatalog<'lock> {
    /// Loads the catalog of `data_dir` (empty if the broker never ran there), whose lock
    /// the caller holds.
    pub fn load(
        lock: &'lock DataDirLock,
        data_dir: &Path,
    ) -> Result<OfflineCatalog<'lock>, CatalogError> {
        debug_assert_eq!(lock.path().parent(), Some(data_dir));
        let path = catalog_path(data_dir);
        let catalog = Catalog::load(&path)?;
        Ok(OfflineCatalog {
            _lock: lock,
            path,
            catalog,
        })
    }

    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// The file changes are written to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Applies user changes, each on its own, and writes the catalog when one applied:
    /// the result of each. The outer error: the file could not be written (nothing
    /// changed).
    pub fn alter_users(
        &mut self,
        changes: Vec<UserChange>,
    ) -> Result<Vec<Result<(), UserError>>, CatalogError> {
        let (next, results) = self.catalog.with_user_changes(changes);
        self.replace(next)?;
        Ok(results)
    }

    /// Adds ACL bindings, each on its own (one that exists changes nothing).
    pub fn create_acls(
        &mut self,
        bindings: Vec<AclBinding>,
    ) -> Result<Vec<Result<(), AclError>>, CatalogError> {
        let (next, results) = self.catalog.with_acls(bindings);
        self.replace(next)?;
        Ok(results)
    }

    /// Removes the bindings each filter matches: those bindings, per filter.
    pub fn delete_acls(
        &mut self,
        filters: &[AclFilter],
    ) -> Result<Vec<Vec<AclBinding>>, CatalogError> {
        let (next, matched) = self.catalog.without_acls(filters);
        self.replace(next)?;
        Ok(matched)
    }

    /// Creates `name` with `password` (every mechanism, default iterations) when the
    /// store holds no user at all, as on a broker's first start: true when it did. A
    /// store with users is left alone, so a password changed since, or a user removed
    /// on purpose, is never put back.
    pub fn add_initial_user(&mut self, name: &str, password: &str) -> Result<bool, String> {
        if !self.catalog.users.is_empty() {
            return Ok(false);
        }
        let change = UserChange::SetPassword {
            name: name.to_string(),
            password: password.to_string(),
            iterations: super::users::ITERATIONS_DEFAULT,
        };
        let results = self.alter_users(vec![change]).map_err(|e| e.to_string())?;
        match results.into_iter().next() {
            Some(Ok(())) => Ok(true),
            Some(Err(e)) => Err(e.to_string()),
            None => Err("no result for the initial user".into()),
        }
    }

    /// Writes `next` (if something changed) and keeps it.
    fn replace(&mut self, next: Option<Catalog>) -> Result<(), CatalogError> {
        if let Some(next) = next {
            next.save_blocking(&self.path)?;
            self.catalog = next;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security::{Operation, PatternType, Permission, ResourceType};

    fn binding(principal: &str) -> AclBinding {
        AclBinding {
            resource_type: ResourceType::Topic,
            name: "orders".into(),
            pattern: PatternType::Literal,
            principal: principal.into(),
            host: "*".into(),
            operation: Operation::Read,
            permission: Permission::Allow,
        }
    }

    #[test]
    fn changes_are_written_and_read_back_as_the_broker_would() {
        let dir = tempfile::tempdir().expect("temp dir");
        let lock = DataDirLock::acquire(dir.path()).expect("lock");
        let mut offline = OfflineCatalog::load(&lock, dir.path()).expect("fresh");
        assert!(offline.add_initial_user("admin", "pw-1").expect("created"));
        // Only on an empty store: not again, and the password stays the first one.
        assert!(!offline.add_initial_user("admin", "pw-2").expect("ignored"));
        assert!(!offline.add_initial_user("other", "pw-2").expect("ignored"));
        let results = offline
            .create_acls(vec![binding("User:admin"), binding("nobody")])
            .expect("written");
        assert!(results[0].is_ok() && results[1].is_err(), "{results:?}");

        let reread = Catalog::load(&catalog_path(dir.path())).expect("loads");
        assert_eq!(&reread, offline.catalog());
        assert!(reread.users.verify_password("admin", "pw-1"));
        assert!(!reread.users.verify_password("admin", "pw-2"));
        assert!(reread.users.get("other").is_none());
        assert_eq!(reread.acls.bindings().count(), 1);

        let filter = AclFilter {
            resource_type: Some(ResourceType::Topic),
            name: Some("orders".into()),
            pattern: crate::security::PatternFilter::Any,
            principal: None,
            host: None,
            operation: None,
            permission: None,
        };
        let removed = offline.delete_acls(&[filter]).expect("written");
        assert_eq!(removed, vec![vec![binding("User:admin")]]);
        let reread = Catalog::load(&catalog_path(dir.path())).expect("loads");
        assert_eq!(reread.acls.bindings().count(), 0);
    }
}
