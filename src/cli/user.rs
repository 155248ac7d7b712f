//! `peregrine user ...`: the broker's one user store, for every protocol. The new
//! user's password is read from `--user-password-file` or the first line of stdin,
//! never from a flag; the broker keeps only its SCRAM keys (salted, iterated).
//! `add-key` makes a SigV4 access key (SQS/SNS) for a user and prints its secret once.
//! Every subcommand works on a running broker or, with `--data-dir`, on a stopped one's
//! data directory (`store`): how the first user of a `--require-auth` broker is made.

use super::auth::{read_password_file, MechanismArg};
use super::CliResult;
use crate::native::messages::{ScramMechanism, UserChange};
use clap::Subcommand;
use std::path::PathBuf;

/// Bytes of randomness in an access key id and in its secret.
const KEY_ID_RANDOM_BYTES: usize = 10;
const KEY_SECRET_RANDOM_BYTES: usize = 30;

#[derive(Subcommand, Debug)]
pub enum UserCommand {
    /// Create a user, or set a new password for one.
    Add {
        name: String,
        /// The mechanism(s) to store credentials for (repeatable; default both).
        #[arg(long, value_enum, ignore_case = true)]
        mechanism: Vec<MechanismArg>,
        /// PBKDF2 iterations (4096 to 16384; default 4096).
        #[arg(long)]
        iterations: Option<u32>,
        /// A file whose first line is the new user's password (default: stdin's).
        #[arg(long)]
        user_password_file: Option<PathBuf>,
        #[command(flatten)]
        store: super::store::StoreArgs,
    },
    /// Remove a user (or only its credential for one mechanism).
    Remove {
        name: String,
        #[arg(long, value_enum, ignore_case = true)]
        mechanism: Option<MechanismArg>,
        #[command(flatten)]
        store: super::store::StoreArgs,
    },
    /// List users, their mechanisms and access key ids.
    List {
        #[command(flatten)]
        store: super::store::StoreArgs,
    },
    /// Make a SigV4 access key for a user; its secret is printed once, here.
    AddKey {
        name: String,
        #[command(flatten)]
        store: super::store::StoreArgs,
    },
    /// Remove an access key.
    RemoveKey {
        key_id: String,
        #[command(flatten)]
        store: super::store::StoreArgs,
    },
}

pub fn run(cmd: UserCommand) -> CliResult {
    match cmd {
        UserCommand::Add {
            name,
            mechanism,
            iterations,
            user_password_file,
            store,
        } => {
            let password = match user_password_file {
                Some(path) => read_password_file(&path)?,
                None => password_from_stdin()?,
            };
            let mechanisms: Vec<ScramMechanism> = mechanism.into_iter().map(Into::into).collect();
            let mut store = store.open()?;
            store.set_password(&name, &password, &mechanisms, iterations)?;
            println!("user {name} saved{}", written_to(&store));
        }
        UserCommand::Remove {
            name,
            mechanism,
            store,
        } => {
            let change = UserChange::Delete {
                name: name.clone(),
                mechanism: mechanism.map(Into::into),
            };
            let mut store = store.open()?;
            store.alter_user(change)?;
            println!("user {name} removed{}", written_to(&store));
        }
        UserCommand::List { store } => {
            for u in store.open()?.list_users()? {
                let mechanisms: Vec<String> = u
                    .mechanisms
                    .iter()
                    .map(|(m, iterations)| format!("{}:{iterations}", mechanism_name(*m)))
                    .collect();
                println!(
                    "{}\tmechanisms={}\taccess_keys={}",
                    u.name,
                    mechanisms.join(","),
                    u.access_keys.join(",")
                );
            }
        }
        UserCommand::AddKey { name, store } => {
            let key_id = format!("PGK{}", random_text(KEY_ID_RANDOM_BYTES)?.to_uppercase());
            let secret = random_text(KEY_SECRET_RANDOM_BYTES)?;
            let change = UserChange::AddAccessKey {
                name: name.clone(),
                key_id: key_id.clone(),
                secret: secret.clone(),
            };
            let mut store = store.open()?;
            store.alter_user(change)?;
            println!(
                "access key for {name}{} (the secret is not shown again):",
                written_to(&store)
            );
            println!("aws_access_key_id = {key_id}");
            println!("aws_secret_access_key = {secret}");
        }
        UserCommand::RemoveKey { key_id, store } => {
            let change = UserChange::RemoveAccessKey {
                key_id: key_id.clone(),
            };
            let mut store = store.open()?;
            store.alter_user(change)?;
            println!("access key {key_id} removed{}", written_to(&store));
        }
    }
    Ok(())
}

/// " (in FILE)" after an offline change, "" after a broker's.
fn written_to(store: &super::store::Store) -> String {
    store
        .written_to()
        .map(|file| format!(" (in {file})"))
        .unwrap_or_default()
}

/// The SASL name of a mechanism.
pub fn mechanism_name(m: ScramMechanism) -> &'static str {
    match m {
        ScramMechanism::ScramSha256 => "SCRAM-SHA-256",
        ScramMechanism::ScramSha512 => "SCRAM-SHA-512",
    }
}

fn password_from_stdin() -> Result<String, String> {
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .map_err(|e| format!("reading the new password from stdin: {e}"))?;
    let password = line.trim_end_matches(['\r', '\n']);
    if password.is_empty() {
        return Err("no password: give it on stdin's first line or in --user-password-file".into());
    }
    Ok(password.to_string())
}

/// `bytes` bytes from the OS RNG as base32 text (letters and digits only, so a key
/// pastes anywhere).
fn random_text(bytes: usize) -> Result<String, String> {
    const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
    let raw = peregrine_shards::security::users::random_bytes(bytes)
        .map_err(|e| format!("OS random source: {e}"))?;
    // Each byte gives one character (5 of its 8 bits): plenty with 10+ bytes.
    Ok(raw
        .iter()
        .map(|b| char::from(ALPHABET[usize::from(b & 31)]))
        .collect())
}
