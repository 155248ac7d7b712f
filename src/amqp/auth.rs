//! AMQP login: SASL PLAIN and AMQPLAIN responses checked against the user store. The
//! store is `guest`/`guest`, accepted from loopback only (as RabbitMQ does), plus the
//! users of `--amqp-users FILE`. Issue 20 replaces this with one salted, hashed store
//! for every protocol.

use amq_protocol::types::{AMQPValue, FieldTable};
use std::net::IpAddr;
use std::path::Path;

pub const MECHANISMS: &str = "PLAIN AMQPLAIN";
/// Largest users file read.
const USERS_FILE_BYTES_MAX: u64 = 1 << 20;

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

/// Who logged in, or why not (the text goes to the client in connection.close).
pub fn authenticate(
    users: &[(String, String)],
    peer: Option<IpAddr>,
    mechanism: &str,
    response: &[u8],
) -> Result<String, String> {
    let (name, password) = match mechanism {
        "PLAIN" => plain(response)?,
        "AMQPLAIN" => amqplain(response)?,
        other => {
            return Err(format!(
                "unsupported mechanism {other}; use PLAIN or AMQPLAIN"
            ))
        }
    };
    let refused = || {
        format!("ACCESS_REFUSED - Login was refused using authentication mechanism {mechanism}. For details see the broker logfile.")
    };
    if let Some((_, stored)) = users.iter().find(|(n, _)| *n == name) {
        return if constant_time_eq(stored.as_bytes(), password.as_bytes()) {
            Ok(name)
        } else {
            Err(refused())
        };
    }
    if name == "guest" && password == "guest" {
        return if peer.is_some_and(|ip| ip.is_loopback()) {
            Ok(name)
        } else {
            Err("ACCESS_REFUSED - user 'guest' can only connect via localhost".into())
        };
    }
    Err(refused())
}

/// `\0user\0password` (an authorization identity before the first NUL is ignored).
fn plain(response: &[u8]) -> Result<(String, String), String> {
    let mut parts = response.split(|b| *b == 0);
    let (_authz, user, pass) = match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(a), Some(u), Some(p), None) => (a, u, p),
        _ => return Err("malformed PLAIN response".into()),
    };
    let text = |b: &[u8]| String::from_utf8(b.to_vec()).map_err(|_| "PLAIN response is not UTF-8");
    Ok((text(user)?, text(pass)?))
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

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOOPBACK: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST));
    const REMOTE: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::new(10, 1, 2, 3)));

    #[test]
    fn guest_is_accepted_from_loopback_only() {
        assert_eq!(
            authenticate(&[], LOOPBACK, "PLAIN", b"\0guest\0guest"),
            Ok("guest".into())
        );
        assert!(authenticate(&[], REMOTE, "PLAIN", b"\0guest\0guest").is_err());
        assert!(authenticate(&[], LOOPBACK, "PLAIN", b"\0guest\0nope").is_err());
    }

    #[test]
    fn configured_users_log_in_from_anywhere() {
        let users = vec![("app".to_string(), "s3cret".to_string())];
        assert_eq!(
            authenticate(&users, REMOTE, "PLAIN", b"\0app\0s3cret"),
            Ok("app".into())
        );
        assert!(authenticate(&users, REMOTE, "PLAIN", b"\0app\0wrong").is_err());
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
            authenticate(&[], LOOPBACK, "AMQPLAIN", response),
            Ok("guest".into())
        );
        assert!(authenticate(&[], LOOPBACK, "AMQPLAIN", b"\x05LOGINx").is_err());
    }

    #[test]
    fn malformed_responses_are_refused() {
        assert!(authenticate(&[], LOOPBACK, "PLAIN", b"guest").is_err());
        assert!(authenticate(&[], LOOPBACK, "PLAIN", b"\0a\0b\0c").is_err());
        assert!(authenticate(&[], LOOPBACK, "EXTERNAL", b"").is_err());
    }
}
