//! The credential flags of the native client commands: who a command authenticates as
//! (`--user`) and where its password comes from. The password is never a flag of its
//! own, so that it stays out of shell history and `ps`: it is read from
//! `--password-file`, else from the `PEREGRINE_PASSWORD` environment variable.

use crate::client::auth::Credentials;
use crate::native::messages::ScramMechanism;
use clap::{Args, ValueEnum};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The environment variable a password is read from when no `--password-file` is given.
pub const PASSWORD_ENV: &str = "PEREGRINE_PASSWORD";
/// Longest password file read: a password, not a file someone pointed at by mistake.
const PASSWORD_FILE_BYTES_MAX: u64 = 4096;

/// SCRAM mechanisms as flag values.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum MechanismArg {
    #[value(name = "SCRAM-SHA-256")]
    ScramSha256,
    #[value(name = "SCRAM-SHA-512")]
    ScramSha512,
}

impl From<MechanismArg> for ScramMechanism {
    fn from(m: MechanismArg) -> ScramMechanism {
        match m {
            MechanismArg::ScramSha256 => ScramMechanism::ScramSha256,
            MechanismArg::ScramSha512 => ScramMechanism::ScramSha512,
        }
    }
}

/// How a native client command authenticates (a broker started with
/// `--require-auth native` serves nothing before it).
#[derive(Args, Debug, Clone)]
pub struct AuthClientArgs {
    /// Authenticate as this user (SCRAM); the password comes from --password-file or
    /// the PEREGRINE_PASSWORD environment variable.
    #[arg(long)]
    pub user: Option<String>,
    /// A file whose first line is the password of --user.
    #[arg(long, requires = "user")]
    pub password_file: Option<PathBuf>,
    /// The SCRAM mechanism to authenticate with.
    #[arg(long, value_enum, default_value = "SCRAM-SHA-256", ignore_case = true)]
    pub sasl_mechanism: MechanismArg,
}

impl AuthClientArgs {
    /// The credentials to authenticate with; None without --user.
    pub fn credentials(&self) -> Result<Option<Arc<Credentials>>, String> {
        let Some(user) = &self.user else {
            return Ok(None);
        };
        let password = match &self.password_file {
            Some(path) => read_password_file(path)?,
            None => std::env::var(PASSWORD_ENV).map_err(|_| {
                format!("--user {user} needs a password: --password-file FILE or {PASSWORD_ENV}")
            })?,
        };
        let credentials = Credentials::new(user, &password, self.sasl_mechanism.into());
        Ok(Some(Arc::new(credentials)))
    }
}

/// The first line of a password file (without its line end).
pub fn read_password_file(path: &Path) -> Result<String, String> {
    use std::io::Read;
    let mut text = String::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(PASSWORD_FILE_BYTES_MAX).read_to_string(&mut text))
        .map_err(|e| format!("password file {}: {e}", path.display()))?;
    let line = text.lines().next().unwrap_or_default();
    if line.is_empty() {
        return Err(format!("password file {} is empty", path.display()));
    }
    Ok(line.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_file_gives_its_first_line_and_an_empty_one_is_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("pw");
        std::fs::write(&path, "s3cret pass\nignored\n").expect("write");
        assert_eq!(read_password_file(&path).as_deref(), Ok("s3cret pass"));
        std::fs::write(&path, "\n").expect("write");
        assert!(read_password_file(&path).is_err());
        assert!(read_password_file(&dir.path().join("missing")).is_err());
    }
}
