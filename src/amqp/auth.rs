//! AMQP login: the SASL mechanisms offered in `connection.start` and the check of the
//! client's `start-ok` response. PLAIN and AMQPLAIN carry a name and password, checked
//! against the user store (`peregrine user add`), then the users of `--amqp-users FILE`
//! (kept for existing setups: plaintext passwords in a file the operator keeps), then
//! `guest`/`guest`, accepted from loopback only (as RabbitMQ does) and only while
//! `--require-auth` does not name the listener and the store has no `guest`. EXTERNAL (RabbitMQ's `rabbitmq_auth_mechanism_ssl`) logs in
//! as the subject of the client's verified TLS certificate, so it is offered only on a
//! TLS connection that showed one (`--tls-client-ca`).

use crate::engine::Engine;
use amq_protocol::types::{AMQPValue, FieldTable};
use peregrine_shards::security::ScramMechanism;
use std::net::IpAddr;
use std::path::Path;
use subtle::ConstantTimeEq;

/// Offered on every connection.
const PASSWORD_MECHANISMS: &str = "PLAIN AMQPLAIN";
/// Offered where the client showed a verified certificate.
const WITH_EXTERNAL: &str = "PLAIN AMQPLAIN EXTERNAL";
/// Largest users file read.
const USERS_FILE_BYTES_MAX: u64 = 1 << 20;

/// The mechanisms `connection.start` offers a client whose verified certificate names
/// `certificate` (None: no certificate, or not TLS).
pub fn mechanisms(certificate: Option<&str>) -> &'static str {
    if certificate.is_some() {
        WITH_EXTERNAL
    } else {
        PASSWORD_MECHANISMS
    }
}

/// Reads `name:password` lines (`#` starts a comment, blank lines are skipped).
pub fn load_users(path: &Path) -> Result<Vec<(String, String)>, String> {
    let what = || format!("--amqp-users {}", path.display());
    let len = std::fs::metadata(path)
        .map_err(|e| format!("{}: {e}", what()))?
        .len();
    if len > USERS_FILE_BYTES_MAX {
        return Err(format!(
            "{}: {len} bytes, more than the {USERS_FILE_BYTES_MAX} a users file may have",
            what()
        ));
    }
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", what()))?;
    let mut users = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((name, password)) = line.split_once(':') else {
            return Err(format!("{} line {}: not name:password", what(), n + 1));
        };
        if name.is_empty() {
            return Err(format!("{} line {}: empty user name", what(), n + 1));
        }
        users.push((name.to_string(), password.to_string()));
    }
    Ok(users)
}

/// What a client's `start-ok` asks for.
pub struct Login<'a> {
    pub peer: Option<IpAddr>,
    /// The subject of the client's verified TLS certificate (mTLS).
    pub certificate: Option<&'a str>,
    pub mechanism: &'a str,
    pub response: &'a [u8],
}

/// Why a login was refused; `text` goes to the client in `connection.close` (403), the
/// name tried (never the password) to the log.
#[derive(Debug, PartialEq, Eq)]
pub struct Refused {
    pub user: Option<String>,
    pub text: String,
}

impl Refused {
    fn new(user: Option<String>, text: impl Into<String>) -> Refused {
        Refused {
            user,
            text: text.into(),
        }
    }
}

/// What a `start-ok` response says: a name and password, or EXTERNAL's certificate
/// subject.
#[derive(Debug, PartialEq, Eq)]
pub enum Credentials {
    Password { name: String, password: String },
    Certificate(String),
}

/// Who logged in (the user name; the principal is `User:` and it), or why not. A name
/// the user store has is checked there (its salted hash, on the blocking pool), else
/// against `--amqp-users`, else it is `guest`/`guest` from loopback when `--require-auth`
/// does not name this listener (`required`).
pub async fn authenticate(
    engine: &Engine,
    required: bool,
    login: &Login<'_>,
) -> Result<String, Refused> {
    let (name, password) = match credentials(login)? {
        Credentials::Certificate(name) => return Ok(name),
        Credentials::Password { name, password } => (name, password),
    };
    if in_store(engine, &name) {
        return match engine.check_password(&name, &password).await {
            true => Ok(name),
            false => Err(wrong_password(login.mechanism, name)),
        };
    }
    let users = &engine.config().amqp_users;
    without_store(users, !required, login, name, &password)
}

/// A login checked without the user store: `--amqp-users`, guest where `guest_allowed`,
/// EXTERNAL. What the `amqp_frames` fuzz target runs (the store needs an engine).
pub fn authenticate_without_store(
    users: &[(String, String)],
    guest_allowed: bool,
    login: &Login<'_>,
) -> Result<String, Refused> {
    match credentials(login)? {
        Credentials::Password { name, password } => {
            without_store(users, guest_allowed, login, name, &password)
        }
        Credentials::Certificate(name) => Ok(name),
    }
}

/// Whether the user store has a password for `name`.
fn in_store(engine: &Engine, name: &str) -> bool {
    [ScramMechanism::Sha256, ScramMechanism::Sha512]
        .into_iter()
        .any(|m| engine.scram_credential(name, m).is_some())
}

/// The name and password, or the certificate's subject, a response carries.
pub fn credentials(login: &Login<'_>) -> Result<Credentials, Refused> {
    let (name, password) = match login.mechanism {
        "PLAIN" => plain(login.response).map_err(|e| Refused::new(None, e))?,
        "AMQPLAIN" => amqplain(login.response).map_err(|e| Refused::new(None, e))?,
        "EXTERNAL" => return external(login).map(Credentials::Certificate),
        other => {
            let offered = mechanisms(login.certificate);
            return Err(Refused::new(
                None,
                format!("unsupported mechanism {other}; offered: {offered}"),
            ));
        }
    };
    Ok(Credentials::Password { name, password })
}

fn wrong_password(mechanism: &str, name: String) -> Refused {
    Refused::new(
        Some(name),
        format!("Login was refused using authentication mechanism {mechanism}. For details see the broker logfile."),
    )
}

/// A name the user store does not have: a `--amqp-users` user, or `guest`/`guest` from
/// loopback (RabbitMQ's default) where `guest_allowed`.
fn without_store(
    users: &[(String, String)],
    guest_allowed: bool,
    login: &Login<'_>,
    name: String,
    password: &str,
) -> Result<String, Refused> {
    if let Some((_, stored)) = users.iter().find(|(n, _)| *n == name) {
        return match bool::from(stored.as_bytes().ct_eq(password.as_bytes())) {
            true => Ok(name),
            false => Err(wrong_password(login.mechanism, name)),
        };
    }
    if guest_allowed && name == "guest" && password == "guest" {
        return if login.peer.is_some_and(|ip| ip.is_loopback()) {
            Ok(name)
        } else {
            Err(Refused::new(
                Some(name),
                "user 'guest' can only connect via localhost",
            ))
        };
    }
    Err(wrong_password(login.mechanism, name))
}

/// EXTERNAL: the certificate's subject is the user. The response is empty, or names
/// that same user (an authorization identity for someone else is refused).
fn external(login: &Login<'_>) -> Result<String, Refused> {
    let Some(subject) = login.certificate else {
        return Err(Refused::new(
            None,
            "EXTERNAL needs a verified TLS client certificate (amqps with --tls-client-ca)",
        ));
    };
    if !login.response.is_empty() && login.response != subject.as_bytes() {
        return Err(Refused::new(
            Some(String::from_utf8_lossy(login.response).into_owned()),
            format!("EXTERNAL: the certificate names '{subject}', not the user asked for"),
        ));
    }
    Ok(subject.to_string())
}

/// `authzid\0user\0password` (RFC 4616, bounded; the authzid empty or the user's).
fn plain(response: &[u8]) -> Result<(String, String), String> {
    let plain = crate::auth::sasl::parse_plain(response).map_err(|e| format!("PLAIN: {e}"))?;
    Ok((plain.user.to_string(), plain.password.to_string()))
}

/// A field table without its length prefix, holding LOGIN and PASSWORD.
fn amqplain(response: &[u8]) -> Result<(String, String), String> {
    use amq_protocol::types::parsing::parse_field_table;
    let mut framed = Vec::with_capacity(response.len() + 4);
    framed.extend_from_slice(&(response.len() as u32).to_be_bytes());
    framed.extend_from_slice(response);
    let table: FieldTable = match parse_field_table(&framed[..]) {
        Ok(([], table)) => table,
        _ => return Err("malformed AMQPLAIN response".into()),
    };
    let field = |name: &str| match table.inner().get(name) {
        Some(AMQPValue::LongString(s)) => Ok(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        Some(AMQPValue::ShortString(s)) => Ok(s.as_str().to_string()),
        _ => Err(format!("AMQPLAIN response has no {name}")),
    };
    Ok((field("LOGIN")?, field("PASSWORD")?))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOOPBACK: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST));
    const REMOTE: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::new(10, 1, 2, 3)));

    fn login(
        users: &[(String, String)],
        peer: Option<IpAddr>,
        mechanism: &str,
        response: &[u8],
    ) -> Result<String, Refused> {
        let login = Login {
            peer,
            certificate: None,
            mechanism,
            response,
        };
        authenticate_without_store(users, true, &login)
    }

    #[test]
    fn guest_is_accepted_from_loopback_only() {
        assert_eq!(
            login(&[], LOOPBACK, "PLAIN", b"\0guest\0guest"),
            Ok("guest".into())
        );
        assert!(login(&[], REMOTE, "PLAIN", b"\0guest\0guest").is_err());
        assert!(login(&[], LOOPBACK, "PLAIN", b"\0guest\0nope").is_err());
        // Not where --require-auth names the listener.
        let plain = Login {
            peer: LOOPBACK,
            certificate: None,
            mechanism: "PLAIN",
            response: b"",
        };
        let guest = without_store(&[], false, &plain, "guest".into(), "guest");
        assert!(guest.is_err());
    }

    #[test]
    fn configured_users_log_in_from_anywhere() {
        let users = vec![("app".to_string(), "s3cret".to_string())];
        assert_eq!(
            login(&users, REMOTE, "PLAIN", b"\0app\0s3cret"),
            Ok("app".into())
        );
        let refused = login(&users, REMOTE, "PLAIN", b"\0app\0wrong");
        assert_eq!(refused.map_err(|r| r.user), Err(Some("app".into())));
    }

    #[test]
    fn amqplain_reads_login_and_password() {
        use amq_protocol::types::generation::gen_field_table;
        let mut table = FieldTable::default();
        table.insert("LOGIN".into(), AMQPValue::LongString("guest".into()));
        table.insert("PASSWORD".into(), AMQPValue::LongString("guest".into()));
        let ctx = gen_field_table(&table)(amq_protocol::frame::WriteContext::from(Vec::new()))
            .expect("encodes");
        let response = &ctx.write[4..];
        assert_eq!(
            login(&[], LOOPBACK, "AMQPLAIN", response),
            Ok("guest".into())
        );
        assert!(login(&[], LOOPBACK, "AMQPLAIN", b"\x05LOGINx").is_err());
    }

    #[test]
    fn malformed_responses_are_refused() {
        assert!(login(&[], LOOPBACK, "PLAIN", b"guest").is_err());
        assert!(login(&[], LOOPBACK, "PLAIN", b"\0a\0b\0c").is_err());
        assert!(login(&[], LOOPBACK, "CRAM-MD5", b"").is_err());
    }

    #[test]
    fn external_is_the_certificate_subject_and_needs_one() {
        assert_eq!(mechanisms(None), "PLAIN AMQPLAIN");
        assert_eq!(mechanisms(Some("app")), "PLAIN AMQPLAIN EXTERNAL");
        let with_cert = |response: &'static [u8]| Login {
            peer: REMOTE,
            certificate: Some("billing"),
            mechanism: "EXTERNAL",
            response,
        };
        let subject = |name: &str| Ok(Credentials::Certificate(name.into()));
        assert_eq!(credentials(&with_cert(b"")), subject("billing"));
        assert_eq!(credentials(&with_cert(b"billing")), subject("billing"));
        assert!(credentials(&with_cert(b"admin")).is_err());
        assert!(login(&[], LOOPBACK, "EXTERNAL", b"").is_err());
    }
}
