//! Where `peregrine user` and `peregrine acl` make their changes: a running broker,
//! through its native port (`--bootstrap`, the default), or the data directory of a
//! stopped one (`--data-dir`), which is how the first user of a broker started with
//! `--require-auth` is made. The data directory is locked for the command's length; a
//! broker running on it holds the lock, and the command is refused.

use crate::client::Client;
use crate::native::messages::{AclBinding, AclFilter, ScramMechanism, UserChange, UserInfo};
use clap::Args;
use peregrine_shards::data_dir_lock::DataDirLock;
use peregrine_shards::security::offline::OfflineCatalog;
use peregrine_shards::security::{self as sec};
use std::error::Error;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct StoreArgs {
    /// Change the data directory of a stopped broker instead of a running one (refused
    /// while a broker runs on it): how the first user is made.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["bootstrap", "user", "tls_ca"])]
    pub data_dir: Option<PathBuf>,
    #[command(flatten)]
    pub broker: super::tls::Broker,
}

/// An open store: a connected client, or a locked data directory.
pub enum Store {
    Broker(Box<Client>),
    Offline { lock: DataDirLock, dir: PathBuf },
}

impl StoreArgs {
    pub fn open(&self) -> Result<Store, Box<dyn Error>> {
        match &self.data_dir {
            Some(dir) => Ok(Store::Offline {
                lock: DataDirLock::acquire(dir)?,
                dir: dir.clone(),
            }),
            None => Ok(Store::Broker(Box::new(self.broker.connect()?))),
        }
    }
}

/// A refused change, as the broker would have answered it.
fn refused<E: std::fmt::Display>(results: Vec<Result<(), E>>) -> Result<(), Box<dyn Error>> {
    match results.into_iter().find_map(Result::err) {
        Some(e) => Err(e.to_string().into()),
        None => Ok(()),
    }
}

impl Store {
    /// Where an offline change went, for the command's output (None: a broker).
    pub fn written_to(&self) -> Option<String> {
        match self {
            Store::Broker(_) => None,
            Store::Offline { dir, .. } => Some(
                peregrine_shards::security::offline::catalog_path(dir)
                    .display()
                    .to_string(),
            ),
        }
    }

    fn offline<T>(
        lock: &DataDirLock,
        dir: &std::path::Path,
        f: impl FnOnce(&mut OfflineCatalog<'_>) -> Result<T, Box<dyn Error>>,
    ) -> Result<T, Box<dyn Error>> {
        let mut catalog = OfflineCatalog::load(lock, dir)?;
        f(&mut catalog)
    }

    pub fn alter_user(&mut self, change: UserChange) -> Result<(), Box<dyn Error>> {
        self.alter_users(vec![change])
    }

    /// Gives `name` the credentials of `password` (PBKDF2 here, as the client does).
    pub fn set_password(
        &mut self,
        name: &str,
        password: &str,
        mechanisms: &[ScramMechanism],
        iterations: Option<u32>,
    ) -> Result<(), Box<dyn Error>> {
        let changes =
            crate::client::security::password_changes(name, password, mechanisms, iterations)?;
        self.alter_users(changes)
    }

    fn alter_users(&mut self, changes: Vec<UserChange>) -> Result<(), Box<dyn Error>> {
        match self {
            Store::Broker(client) => {
                for change in changes {
                    client.alter_user(change)?;
                }
                Ok(())
            }
            Store::Offline { lock, dir } => Store::offline(lock, dir, |c| {
                let changes = changes.into_iter().map(sec::UserChange::from).collect();
                refused(c.alter_users(changes)?)
            }),
        }
    }

    pub fn list_users(&mut self) -> Result<Vec<UserInfo>, Box<dyn Error>> {
        match self {
            Store::Broker(client) => Ok(client.list_users()?),
            Store::Offline { lock, dir } => Store::offline(lock, dir, |c| {
                Ok(c.catalog()
                    .users
                    .list()
                    .into_iter()
                    .map(Into::into)
                    .collect())
            }),
        }
    }

    pub fn create_acls(&mut self, bindings: Vec<AclBinding>) -> Result<(), Box<dyn Error>> {
        match self {
            Store::Broker(client) => Ok(client.create_acls(bindings)?),
            Store::Offline { lock, dir } => Store::offline(lock, dir, |c| {
                refused(c.create_acls(bindings.into_iter().map(Into::into).collect())?)
            }),
        }
    }

    /// Removes every binding the filters match; returns them.
    pub fn delete_acls(
        &mut self,
        filters: Vec<AclFilter>,
    ) -> Result<Vec<AclBinding>, Box<dyn Error>> {
        match self {
            Store::Broker(client) => Ok(client.delete_acls(filters)?),
            Store::Offline { lock, dir } => Store::offline(lock, dir, |c| {
                let filters: Vec<sec::AclFilter> = filters.into_iter().map(Into::into).collect();
                let mut removed: Vec<AclBinding> = Vec::new();
                for b in c.delete_acls(&filters)?.into_iter().flatten() {
                    let b = AclBinding::from(b);
                    if !removed.contains(&b) {
                        removed.push(b);
                    }
                }
                Ok(removed)
            }),
        }
    }

    pub fn describe_acls(&mut self, filter: AclFilter) -> Result<Vec<AclBinding>, Box<dyn Error>> {
        match self {
            Store::Broker(client) => Ok(client.describe_acls(filter)?),
            Store::Offline { lock, dir } => Store::offline(lock, dir, |c| {
                let filter = sec::AclFilter::from(filter);
                Ok(c.catalog()
                    .acls
                    .matching(&filter)
                    .into_iter()
                    .map(Into::into)
                    .collect())
            }),
        }
    }
}
