//! The user store: who may log in, and with which credentials.
//!
//! Lives in the catalog (`Catalog::users`), so it is durable (the CRC-framed catalog
//! file), changed only on the controller shard, and read by every shard from its
//! immutable snapshot without a cross-shard hop.
//!
//! Each user holds SCRAM credentials (RFC 5802, RFC 7677) per mechanism: salt,
//! iteration count, StoredKey and ServerKey. The password itself is never stored, and
//! neither key lets anyone log in. Password logins without SCRAM (SASL PLAIN, AMQPLAIN)
//! derive the SaltedPassword with the stored salt and compare StoredKeys in constant
//! time (`ScramCredential::verify_password`). SigV4 access keys keep their secret, since
//! SigV4 verification needs it. Debug output never shows a key, a salt or a secret.
//!
//! The crypto is RustCrypto's (hmac, sha2, pbkdf2, subtle) and salts come from the OS
//! RNG (getrandom); nothing here is hand-rolled.

use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256, Sha512};
use std::collections::BTreeMap;
use subtle::ConstantTimeEq;

/// Longest user name, in bytes.
pub const USER_NAME_MAX: usize = 256;
/// Users the store holds at most: each is a few hundred bytes in every shard's snapshot
/// and in the catalog file, written on every change.
pub const USERS_MAX: usize = 10_000;
/// Fewest PBKDF2 iterations a credential may have (RFC 7677's minimum, Kafka's too).
pub const ITERATIONS_MIN: u32 = 4096;
/// Most PBKDF2 iterations a credential may have (Kafka's maximum): each PLAIN login
/// costs this many HMACs.
pub const ITERATIONS_MAX: u32 = 16_384;
/// Iterations of a credential made from a password (`UserChange::SetPassword`) when the
/// caller has no preference.
pub const ITERATIONS_DEFAULT: u32 = 4096;
/// Bytes of a salt this broker makes.
pub const SALT_BYTES: usize = 32;
/// Longest salt accepted from a client (Kafka's AlterUserScramCredentials sends its own).
pub const SALT_BYTES_MAX: usize = 256;
/// Longest password accepted, in bytes (a bound on what a login makes the broker hash).
pub const PASSWORD_BYTES_MAX: usize = 1024;
/// SigV4 access keys one user may hold (AWS allows two; rotation needs at least that).
pub const ACCESS_KEYS_PER_USER_MAX: usize = 16;
/// Longest access key id (AWS's), made of A-Z a-z 0-9.
pub const ACCESS_KEY_ID_MAX: usize = 128;
/// Longest access key secret, in bytes.
pub const ACCESS_KEY_SECRET_MAX: usize = 256;

/// A SCRAM mechanism (RFC 5802 over SHA-256, RFC 7677, or SHA-512).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ScramMechanism {
    Sha256,
    Sha512,
}

impl ScramMechanism {
    pub const ALL: [ScramMechanism; 2] = [ScramMechanism::Sha256, ScramMechanism::Sha512];

    /// The SASL mechanism name: `SCRAM-SHA-256` or `SCRAM-SHA-512`.
    pub fn name(self) -> &'static str {
        match self {
            ScramMechanism::Sha256 => "SCRAM-SHA-256",
            ScramMechanism::Sha512 => "SCRAM-SHA-512",
        }
    }

    /// The mechanism a SASL name stands for (exact, upper case, as SASL names are).
    pub fn from_name(name: &str) -> Option<ScramMechanism> {
        ScramMechanism::ALL.into_iter().find(|m| m.name() == name)
    }

    /// Kafka's code (DescribeUserScramCredentials, AlterUserScramCredentials).
    pub fn kafka_type(self) -> i8 {
        match self {
            ScramMechanism::Sha256 => 1,
            ScramMechanism::Sha512 => 2,
        }
    }

    pub fn from_kafka_type(code: i8) -> Option<ScramMechanism> {
        ScramMechanism::ALL
            .into_iter()
            .find(|m| m.kafka_type() == code)
    }

    /// Bytes of the hash's output (and of every key).
    pub fn digest_bytes(self) -> usize {
        match self {
            ScramMechanism::Sha256 => 32,
            ScramMechanism::Sha512 => 64,
        }
    }

    /// `H(data)`.
    pub fn hash(self, data: &[u8]) -> Vec<u8> {
        match self {
            ScramMechanism::Sha256 => Sha256::digest(data).to_vec(),
            ScramMechanism::Sha512 => Sha512::digest(data).to_vec(),
        }
    }

    /// `HMAC(key, message)`.
    pub fn hmac(self, key: &[u8], message: &[u8]) -> Vec<u8> {
        match self {
            ScramMechanism::Sha256 => hmac_of::<Hmac<Sha256>>(key, message),
            ScramMechanism::Sha512 => hmac_of::<Hmac<Sha512>>(key, message),
        }
    }

    /// `Hi(password, salt, iterations)`: PBKDF2 with HMAC of this hash. Costs
    /// `iterations` HMACs; callers on a shard run it on the blocking pool when they can.
    pub fn salted_password(self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        let mut out = vec![0u8; self.digest_bytes()];
        match self {
            ScramMechanism::Sha256 => {
                pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, iterations, &mut out)
            }
            ScramMechanism::Sha512 => {
                pbkdf2::pbkdf2_hmac::<Sha512>(password, salt, iterations, &mut out)
            }
        }
        out
    }
}

fn hmac_of<M: Mac + KeyInit>(key: &[u8], message: &[u8]) -> Vec<u8> {
    // HMAC takes keys of any length (long ones are hashed), so this cannot fail.
    let Ok(mut mac) = <M as KeyInit>::new_from_slice(key) else {
        unreachable!("HMAC accepts keys of every length")
    };
    mac.update(message);
    mac.finalize().into_bytes().to_vec()
}

/// Bytes from the OS RNG (salts, nonces).
pub fn random_bytes(len: usize) -> Result<Vec<u8>, UserError> {
    let mut bytes = vec![0u8; len];
    getrandom::fill(&mut bytes)
        .map_err(|e| UserError::Random(format!("the OS random number generator failed: {e}")))?;
    Ok(bytes)
}

/// Compares two byte strings in constant time (for equal lengths).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// One user's credential for one SCRAM mechanism (RFC 5802 section 3).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScramCredential {
    #[serde(with = "base64_bytes")]
    pub salt: Vec<u8>,
    pub iterations: u32,
    /// `H(HMAC(SaltedPassword, "Client Key"))`.
    #[serde(with = "base64_bytes")]
    pub stored_key: Vec<u8>,
    /// `HMAC(SaltedPassword, "Server Key")`.
    #[serde(with = "base64_bytes")]
    pub server_key: Vec<u8>,
}

impl std::fmt::Debug for ScramCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScramCredential")
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

impl ScramCredential {
    /// The credential of a SaltedPassword (what Kafka's AlterUserScramCredentials
    /// sends), after checking the salt and the iteration count.
    pub fn from_salted_password(
        mechanism: ScramMechanism,
        salt: Vec<u8>,
        iterations: u32,
        salted_password: &[u8],
    ) -> Result<ScramCredential, UserError> {
        check_parameters(mechanism, &salt, iterations)?;
        if salted_password.len() != mechanism.digest_bytes() {
            return Err(UserError::UnacceptableCredential(format!(
                "a {} salted password is {} bytes, got {}",
                mechanism.name(),
                mechanism.digest_bytes(),
                salted_password.len()
            )));
        }
        let client_key = mechanism.hmac(salted_password, b"Client Key");
        Ok(ScramCredential {
            salt,
            iterations,
            stored_key: mechanism.hash(&client_key),
            server_key: mechanism.hmac(salted_password, b"Server Key"),
        })
    }

    /// The credential of a password with a fresh random salt. Costs `iterations` HMACs.
    pub fn from_password(
        mechanism: ScramMechanism,
        password: &str,
        iterations: u32,
    ) -> Result<ScramCredential, UserError> {
        check_password(password)?;
        let salt = random_bytes(SALT_BYTES)?;
        check_parameters(mechanism, &salt, iterations)?;
        let salted = mechanism.salted_password(password.as_bytes(), &salt, iterations);
        ScramCredential::from_salted_password(mechanism, salt, iterations, &salted)
    }

    /// Whether `password` is the one this credential was made from: derives the
    /// SaltedPassword with the stored salt and compares StoredKeys in constant time.
    /// Costs `iterations` HMACs.
    pub fn verify_password(&self, mechanism: ScramMechanism, password: &str) -> bool {
        if password.len() > PASSWORD_BYTES_MAX {
            return false;
        }
        let salted = mechanism.salted_password(password.as_bytes(), &self.salt, self.iterations);
        let client_key = mechanism.hmac(&salted, b"Client Key");
        constant_time_eq(&mechanism.hash(&client_key), &self.stored_key)
    }

    fn check(&self, mechanism: ScramMechanism) -> Result<(), UserError> {
        check_parameters(mechanism, &self.salt, self.iterations)?;
        let n = mechanism.digest_bytes();
        if self.stored_key.len() != n || self.server_key.len() != n {
            return Err(UserError::UnacceptableCredential(format!(
                "{} keys are {n} bytes",
                mechanism.name()
            )));
        }
        Ok(())
    }
}

fn check_parameters(
    mechanism: ScramMechanism,
    salt: &[u8],
    iterations: u32,
) -> Result<(), UserError> {
    if !(ITERATIONS_MIN..=ITERATIONS_MAX).contains(&iterations) {
        return Err(UserError::UnacceptableCredential(format!(
            "{} iterations must be between {ITERATIONS_MIN} and {ITERATIONS_MAX}, got {iterations}",
            mechanism.name()
        )));
    }
    if salt.is_empty() || salt.len() > SALT_BYTES_MAX {
        return Err(UserError::UnacceptableCredential(format!(
            "a salt is 1 to {SALT_BYTES_MAX} bytes, got {}",
            salt.len()
        )));
    }
    Ok(())
}

fn check_password(password: &str) -> Result<(), UserError> {
    if password.is_empty() || password.len() > PASSWORD_BYTES_MAX {
        return Err(UserError::UnacceptableCredential(format!(
            "a password is 1 to {PASSWORD_BYTES_MAX} bytes"
        )));
    }
    Ok(())
}

/// A SigV4 access key bound to a user. Debug output shows the id only.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessKey {
    pub id: String,
    pub secret: String,
}

impl std::fmt::Debug for AccessKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// One user: a name (its principal is `User:NAME`), SCRAM credentials, access keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub name: String,
    #[serde(default)]
    pub scram: BTreeMap<ScramMechanism, ScramCredential>,
    #[serde(default)]
    pub access_keys: Vec<AccessKey>,
}

impl User {
    /// Its principal, in Kafka's form.
    pub fn principal(&self) -> String {
        format!("User:{}", self.name)
    }
}

/// What `list_users` shows of a user: never a key, a salt or a secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserInfo {
    pub name: String,
    /// Each SCRAM mechanism the user has a credential for, with its iterations.
    pub mechanisms: Vec<(ScramMechanism, u32)>,
    pub access_keys: Vec<String>,
}

/// A change to the user store. Kafka's AlterUserScramCredentials sends salted passwords
/// (`Upsert`); the CLI sends passwords (`SetPassword`, a credential per mechanism).
#[derive(Clone, PartialEq, Eq)]
pub enum UserChange {
    /// Sets the user's credential for one mechanism (creating the user if need be).
    Upsert {
        name: String,
        mechanism: ScramMechanism,
        iterations: u32,
        salt: Vec<u8>,
        salted_password: Vec<u8>,
    },
    /// Sets the user's credentials for every mechanism from a password (creating the
    /// user if need be).
    SetPassword {
        name: String,
        password: String,
        iterations: u32,
    },
    /// Removes one mechanism's credential, or the whole user (`None`). A user left with
    /// no credential and no access key is removed.
    Delete {
        name: String,
        mechanism: Option<ScramMechanism>,
    },
    /// Binds a SigV4 access key to an existing user.
    AddAccessKey {
        name: String,
        id: String,
        secret: String,
    },
    RemoveAccessKey {
        id: String,
    },
    /// Credentials already derived (`UserChange::prepare`): what `SetPassword` and
    /// `Upsert` become before the controller applies them, so that PBKDF2 runs off it.
    SetCredentials {
        name: String,
        credentials: Vec<(ScramMechanism, ScramCredential)>,
    },
}

impl std::fmt::Debug for UserChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UserChange::Upsert {
                name,
                mechanism,
                iterations,
                ..
            } => write!(f, "Upsert({name}, {}, {iterations})", mechanism.name()),
            UserChange::SetPassword {
                name, iterations, ..
            } => write!(f, "SetPassword({name}, {iterations})"),
            UserChange::Delete { name, mechanism } => {
                write!(f, "Delete({name}, {:?})", mechanism.map(|m| m.name()))
            }
            UserChange::AddAccessKey { name, id, .. } => write!(f, "AddAccessKey({name}, {id})"),
            UserChange::RemoveAccessKey { id } => write!(f, "RemoveAccessKey({id})"),
            UserChange::SetCredentials { name, credentials } => {
                let names: Vec<_> = credentials.iter().map(|(m, _)| m.name()).collect();
                write!(f, "SetCredentials({name}, {names:?})")
            }
        }
    }
}

impl UserChange {
    /// The user the change is about (`None` for `RemoveAccessKey`, found by key id).
    pub fn user(&self) -> Option<&str> {
        match self {
            UserChange::Upsert { name, .. }
            | UserChange::SetPassword { name, .. }
            | UserChange::Delete { name, .. }
            | UserChange::AddAccessKey { name, .. }
            | UserChange::SetCredentials { name, .. } => Some(name),
            UserChange::RemoveAccessKey { .. } => None,
        }
    }

    /// Derives the credentials of `SetPassword` (PBKDF2, fresh salts) and `Upsert`
    /// (its keys): slow, so the engine runs it on a blocking thread before the change
    /// goes to the controller. Other changes are returned as they are.
    pub fn prepare(self) -> Result<UserChange, UserError> {
        match self {
            UserChange::SetPassword {
                name,
                password,
                iterations,
            } => {
                check_name(&name)?;
                let credentials = ScramMechanism::ALL
                    .into_iter()
                    .map(|m| Ok((m, ScramCredential::from_password(m, &password, iterations)?)))
                    .collect::<Result<Vec<_>, UserError>>()?;
                Ok(UserChange::SetCredentials { name, credentials })
            }
            UserChange::Upsert {
                name,
                mechanism,
                iterations,
                salt,
                salted_password,
            } => {
                check_name(&name)?;
                let credential = ScramCredential::from_salted_password(
                    mechanism,
                    salt,
                    iterations,
                    &salted_password,
                )?;
                Ok(UserChange::SetCredentials {
                    name,
                    credentials: vec![(mechanism, credential)],
                })
            }
            other => Ok(other),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UserError {
    #[error("invalid user name {0:?}: use 1 to 256 bytes, no control characters")]
    InvalidName(String),
    #[error("user '{0}' does not exist")]
    UnknownUser(String),
    #[error("user '{user}' has no {mechanism} credential")]
    UnknownCredential {
        user: String,
        mechanism: &'static str,
    },
    /// A salt, an iteration count or a password out of bounds.
    #[error("unacceptable credential: {0}")]
    UnacceptableCredential(String),
    #[error("the broker holds {USERS_MAX} users already (remove one first)")]
    TooManyUsers,
    #[error("user '{0}' has {ACCESS_KEYS_PER_USER_MAX} access keys already (remove one first)")]
    TooManyAccessKeys(String),
    #[error("access key '{0}' exists already")]
    AccessKeyExists(String),
    #[error("access key '{0}' does not exist")]
    UnknownAccessKey(String),
    #[error("invalid access key: {0}")]
    InvalidAccessKey(String),
    #[error("{0}")]
    Random(String),
}

/// Every user, by name, and an index of access key ids. Immutable once shared in a
/// catalog snapshot; the controller changes a copy (`apply`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "BTreeMap<String, User>", into = "BTreeMap<String, User>")]
pub struct UserStore {
    users: BTreeMap<String, User>,
    /// Access key id → user name (each HTTP request looks its key up).
    keys: BTreeMap<String, String>,
}

impl TryFrom<BTreeMap<String, User>> for UserStore {
    type Error = UserError;

    /// Checks what was read from the catalog file as a change would have.
    fn try_from(users: BTreeMap<String, User>) -> Result<UserStore, UserError> {
        if users.len() > USERS_MAX {
            return Err(UserError::TooManyUsers);
        }
        let mut keys = BTreeMap::new();
        for (name, user) in &users {
            check_name(name)?;
            if *name != user.name {
                return Err(UserError::InvalidName(format!(
                    "user '{}' is filed as '{name}'",
                    user.name
                )));
            }
            for (mechanism, credential) in &user.scram {
                credential.check(*mechanism)?;
            }
            if user.access_keys.len() > ACCESS_KEYS_PER_USER_MAX {
                return Err(UserError::TooManyAccessKeys(name.clone()));
            }
            for key in &user.access_keys {
                check_access_key(&key.id, &key.secret)?;
                if keys.insert(key.id.clone(), name.clone()).is_some() {
                    return Err(UserError::AccessKeyExists(key.id.clone()));
                }
            }
        }
        Ok(UserStore { users, keys })
    }
}

impl From<UserStore> for BTreeMap<String, User> {
    fn from(store: UserStore) -> BTreeMap<String, User> {
        store.users
    }
}

fn check_name(name: &str) -> Result<(), UserError> {
    if name.is_empty() || name.len() > USER_NAME_MAX || name.chars().any(char::is_control) {
        return Err(UserError::InvalidName(name.to_string()));
    }
    Ok(())
}

fn check_access_key(id: &str, secret: &str) -> Result<(), UserError> {
    let id_ok = !id.is_empty()
        && id.len() <= ACCESS_KEY_ID_MAX
        && id.bytes().all(|b| b.is_ascii_alphanumeric());
    if !id_ok {
        return Err(UserError::InvalidAccessKey(format!(
            "an access key id is 1 to {ACCESS_KEY_ID_MAX} of A-Z a-z 0-9, got {id:?}"
        )));
    }
    if secret.is_empty() || secret.len() > ACCESS_KEY_SECRET_MAX {
        return Err(UserError::InvalidAccessKey(format!(
            "the secret of access key '{id}' must be 1 to {ACCESS_KEY_SECRET_MAX} bytes"
        )));
    }
    Ok(())
}

impl UserStore {
    pub fn get(&self, name: &str) -> Option<&User> {
        self.users.get(name)
    }

    pub fn len(&self) -> usize {
        self.users.len()
    }

    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    pub fn users(&self) -> impl Iterator<Item = &User> {
        self.users.values()
    }

    pub fn scram_credential(
        &self,
        name: &str,
        mechanism: ScramMechanism,
    ) -> Option<&ScramCredential> {
        self.users.get(name)?.scram.get(&mechanism)
    }

    /// Whether `password` is `name`'s: checked against its SHA-256 credential, else its
    /// SHA-512 one. False for an unknown user or one without credentials, after as much
    /// hashing as a known one costs, so that the time taken does not tell which names
    /// exist. Costs the credential's iterations in HMACs.
    pub fn verify_password(&self, name: &str, password: &str) -> bool {
        let verified = self.users.get(name).and_then(|user| {
            ScramMechanism::ALL
                .into_iter()
                .find_map(|m| user.scram.get(&m).map(|c| c.verify_password(m, password)))
        });
        verified.unwrap_or_else(|| {
            let m = ScramMechanism::Sha256;
            let salted =
                m.salted_password(password.as_bytes(), name.as_bytes(), ITERATIONS_DEFAULT);
            std::hint::black_box(salted);
            false
        })
    }

    /// The user an access key is bound to and the key's secret.
    pub fn access_key(&self, id: &str) -> Option<(&User, &AccessKey)> {
        let user = self.users.get(self.keys.get(id)?)?;
        let key = user.access_keys.iter().find(|k| k.id == id)?;
        Some((user, key))
    }

    /// Every user as `UserInfo` (no secret), by name.
    pub fn list(&self) -> Vec<UserInfo> {
        self.users
            .values()
            .map(|u| UserInfo {
                name: u.name.clone(),
                mechanisms: u.scram.iter().map(|(m, c)| (*m, c.iterations)).collect(),
                access_keys: u.access_keys.iter().map(|k| k.id.clone()).collect(),
            })
            .collect()
    }

    /// Applies one change; on an error the store is unchanged.
    pub fn apply(&mut self, change: UserChange) -> Result<(), UserError> {
        match change.prepare()? {
            UserChange::SetCredentials { name, credentials } => {
                check_name(&name)?;
                for (mechanism, credential) in &credentials {
                    credential.check(*mechanism)?;
                }
                if !self.users.contains_key(&name) && self.users.len() >= USERS_MAX {
                    return Err(UserError::TooManyUsers);
                }
                let user = self.users.entry(name.clone()).or_insert_with(|| User {
                    name,
                    scram: BTreeMap::new(),
                    access_keys: Vec::new(),
                });
                user.scram.extend(credentials);
                Ok(())
            }
            UserChange::Delete { name, mechanism } => self.delete(&name, mechanism),
            UserChange::AddAccessKey { name, id, secret } => {
                check_access_key(&id, &secret)?;
                if self.keys.contains_key(&id) {
                    return Err(UserError::AccessKeyExists(id));
                }
                let user = self
                    .users
                    .get_mut(&name)
                    .ok_or_else(|| UserError::UnknownUser(name.clone()))?;
                if user.access_keys.len() >= ACCESS_KEYS_PER_USER_MAX {
                    return Err(UserError::TooManyAccessKeys(name));
                }
                user.access_keys.push(AccessKey {
                    id: id.clone(),
                    secret,
                });
                self.keys.insert(id, name);
                Ok(())
            }
            UserChange::RemoveAccessKey { id } => {
                let name = self
                    .keys
                    .remove(&id)
                    .ok_or_else(|| UserError::UnknownAccessKey(id.clone()))?;
                if let Some(user) = self.users.get_mut(&name) {
                    user.access_keys.retain(|k| k.id != id);
                }
                self.drop_if_empty(&name);
                Ok(())
            }
            UserChange::Upsert { .. } | UserChange::SetPassword { .. } => {
                unreachable!("prepare turns these into SetCredentials")
            }
        }
    }

    fn delete(&mut self, name: &str, mechanism: Option<ScramMechanism>) -> Result<(), UserError> {
        let user = self
            .users
            .get_mut(name)
            .ok_or_else(|| UserError::UnknownUser(name.to_string()))?;
        match mechanism {
            None => {
                for key in &user.access_keys {
                    self.keys.remove(&key.id);
                }
                self.users.remove(name);
            }
            Some(m) => {
                if user.scram.remove(&m).is_none() {
                    return Err(UserError::UnknownCredential {
                        user: name.to_string(),
                        mechanism: m.name(),
                    });
                }
                self.drop_if_empty(name);
            }
        }
        Ok(())
    }

    /// A user with no way left to log in is no user.
    fn drop_if_empty(&mut self, name: &str) {
        if self
            .users
            .get(name)
            .is_some_and(|u| u.scram.is_empty() && u.access_keys.is_empty())
        {
            self.users.remove(name);
        }
    }
}

/// Bytes as standard base64 text in the catalog's JSON.
mod base64_bytes {
    use base64::Engine as _;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;

    fn b64(text: &str) -> Vec<u8> {
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .expect("base64")
    }

    /// RFC 7677 section 3: user "user", password "pencil", salt
    /// W22ZaJ0SNY7soEsUEjb6gQ==, 4096 iterations. The client proof and server
    /// signature of the example follow from these keys (checked in `auth::sasl`).
    #[test]
    fn rfc7677_keys_come_from_the_password() {
        let salt = b64("W22ZaJ0SNY7soEsUEjb6gQ==");
        let m = ScramMechanism::Sha256;
        let salted = m.salted_password(b"pencil", &salt, 4096);
        let c = ScramCredential::from_salted_password(m, salt, 4096, &salted).expect("valid");
        // ServerSignature = HMAC(ServerKey, AuthMessage), as in the RFC's example.
        let auth_message = "n=user,r=rOprNGfwEbeRWgbNEkqO,\
            r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,\
            c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
        let signature = m.hmac(&c.server_key, auth_message.as_bytes());
        assert_eq!(
            signature,
            b64("6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
        );
        assert!(c.verify_password(m, "pencil"));
        assert!(!c.verify_password(m, "pencil "));
        assert!(!c.verify_password(m, ""));
    }

    #[test]
    fn set_password_makes_both_mechanisms_and_only_the_password_verifies() {
        let mut store = UserStore::default();
        store
            .apply(UserChange::SetPassword {
                name: "alice".into(),
                password: "s3cret".into(),
                iterations: 4096,
            })
            .expect("set");
        let alice = store.get("alice").expect("alice");
        assert_eq!(alice.scram.len(), 2);
        for m in ScramMechanism::ALL {
            let c = store.scram_credential("alice", m).expect("credential");
            assert_eq!(c.salt.len(), SALT_BYTES);
            assert_eq!(c.stored_key.len(), m.digest_bytes());
            assert!(c.verify_password(m, "s3cret"));
        }
        // Two salts drawn from the RNG differ.
        let salts: Vec<_> = alice.scram.values().map(|c| c.salt.clone()).collect();
        assert_ne!(salts[0], salts[1]);
        assert!(store.verify_password("alice", "s3cret"));
        assert!(!store.verify_password("alice", "wrong"));
        assert!(!store.verify_password("bob", "s3cret"));
        // Nothing secret in what is listed or debug-printed.
        let shown = format!("{:?} {:?}", store, store.list());
        assert!(!shown.contains("s3cret"));
        let key = base64::engine::general_purpose::STANDARD.encode(&salts[0]);
        assert!(!shown.contains(&key));
    }

    #[test]
    fn credentials_out_of_bounds_are_refused_and_change_nothing() {
        let mut store = UserStore::default();
        let m = ScramMechanism::Sha512;
        let upsert = |iterations, salt: Vec<u8>, salted_len| UserChange::Upsert {
            name: "u".into(),
            mechanism: m,
            iterations,
            salt,
            salted_password: vec![7; salted_len],
        };
        for bad in [
            upsert(4095, vec![1; 16], 64),
            upsert(16_385, vec![1; 16], 64),
            upsert(4096, Vec::new(), 64),
            upsert(4096, vec![1; SALT_BYTES_MAX + 1], 64),
            upsert(4096, vec![1; 16], 32),
        ] {
            let e = store.apply(bad).expect_err("refused");
            assert!(matches!(e, UserError::UnacceptableCredential(_)), "{e}");
        }
        let bad_name = UserChange::SetPassword {
            name: "a\nb".into(),
            password: "p".into(),
            iterations: 4096,
        };
        assert!(matches!(
            store.apply(bad_name),
            Err(UserError::InvalidName(_))
        ));
        assert!(store.is_empty());
        store.apply(upsert(4096, vec![1; 16], 64)).expect("valid");
        assert_eq!(store.list()[0].mechanisms, [(m, 4096)]);
    }

    #[test]
    fn deleting_the_last_credential_removes_the_user_and_keys_are_found_by_id() {
        let mut store = UserStore::default();
        store
            .apply(UserChange::SetPassword {
                name: "svc".into(),
                password: "pw".into(),
                iterations: 4096,
            })
            .expect("set");
        let add = |id: &str| UserChange::AddAccessKey {
            name: "svc".into(),
            id: id.into(),
            secret: "shh".into(),
        };
        store.apply(add("AKIDSVC")).expect("added");
        assert_eq!(
            store.apply(add("AKIDSVC")),
            Err(UserError::AccessKeyExists("AKIDSVC".into()))
        );
        assert!(matches!(
            store.apply(add("bad-id")),
            Err(UserError::InvalidAccessKey(_))
        ));
        let (user, key) = store.access_key("AKIDSVC").expect("found");
        assert_eq!((user.name.as_str(), key.secret.as_str()), ("svc", "shh"));
        assert!(!format!("{key:?}").contains("shh"));
        for m in ScramMechanism::ALL {
            let delete = UserChange::Delete {
                name: "svc".into(),
                mechanism: Some(m),
            };
            store.apply(delete.clone()).expect("deleted");
            assert!(matches!(
                store.apply(delete),
                Err(UserError::UnknownCredential { .. })
            ));
        }
        // The access key keeps the user.
        assert!(store.get("svc").is_some());
        store
            .apply(UserChange::RemoveAccessKey {
                id: "AKIDSVC".into(),
            })
            .expect("removed");
        assert!(store.get("svc").is_none() && store.access_key("AKIDSVC").is_none());
        assert_eq!(
            store.apply(UserChange::Delete {
                name: "svc".into(),
                mechanism: None
            }),
            Err(UserError::UnknownUser("svc".into()))
        );
    }

    #[test]
    fn a_store_reads_back_from_json_and_damaged_entries_are_refused() {
        let mut store = UserStore::default();
        store
            .apply(UserChange::SetPassword {
                name: "alice".into(),
                password: "pw".into(),
                iterations: 4096,
            })
            .expect("set");
        store
            .apply(UserChange::AddAccessKey {
                name: "alice".into(),
                id: "AKID1".into(),
                secret: "s".into(),
            })
            .expect("added");
        let json = serde_json::to_value(&store).expect("encodes");
        let back: UserStore = serde_json::from_value(json.clone()).expect("decodes");
        assert_eq!(back, store);
        assert!(back.access_key("AKID1").is_some());
        let mut damaged = json;
        damaged["alice"]["scram"]["Sha256"]["iterations"] = 12.into();
        assert!(serde_json::from_value::<UserStore>(damaged).is_err());
    }
}
