//! Who sent an HTTP request. SQS and SNS requests: the AWS Signature V4 check, before
//! the request is decoded or served. A request signed with a known access key (a user's
//! from the user store, whose principal is `User:<user>`, or a `--http-access-key`, whose
//! principal is `User:<key id>`) is verified, and a bad signature refused, whether or
//! not auth is required; the signer is then the caller ACLs see. With `--http-auth` or
//! `--require-auth http` (`http-tls` for the TLS listener) a request must be signed by
//! a known key; an unsigned one is let through only from a client with a verified TLS
//! certificate, which counts as authenticated (its subject is the principal). Otherwise
//! an unsigned request, or one signed with a key the broker does not know, is
//! `User:ANONYMOUS` (any key works, as local AWS stand-ins do). A refusal is answered in
//! the request's own protocol (SQS JSON, or the query protocol's XML with SQS's or SNS's
//! namespace) so the SDK raises its usual `InvalidClientTokenId` /
//! `SignatureDoesNotMatch` error.
//!
//! The signature itself is verified by `peregrine_aws_wire::sigv4` (AWS's `aws-sigv4`
//! crate). The operator routes (`/metrics`, `/healthz`, `/readyz`) are not AWS
//! requests and are never checked by SigV4.
//!
//! `--metrics-token-file`: `GET /metrics` must present the file's token as `Authorization:
//! Bearer TOKEN` (RFC 6750), compared in constant time; `/healthz` and `/readyz` stay
//! open, since load balancers probe them without credentials.

use crate::config::Listener;
use crate::engine::Engine;
use crate::http::{sqs, HEADERS_MAX};
use peregrine_aws_wire::form::Params;
use peregrine_aws_wire::sigv4::{self, AuthError, SignedRequest};
use peregrine_aws_wire::sns;
use peregrine_aws_wire::sqs::{receipt, Encoded, Protocol, QUERY_ERROR_HEADER, REQUEST_ID_HEADER};
use std::cell::{Cell, RefCell};
use std::net::IpAddr;
use std::path::Path;
use std::time::SystemTime;
use subtle::ConstantTimeEq;

/// The principal of a caller that did not authenticate.
pub const ANONYMOUS: &str = "User:ANONYMOUS";

/// Marks the request ids of refusals, so they never equal the id of a served request.
const REFUSAL_ID_BIT: u128 = 1 << 127;

thread_local! {
    /// Requests this shard has refused, for request ids.
    static REFUSED: Cell<u64> = const { Cell::new(0) };
}

/// Who sent a request: the principal ACLs check, and the address they match hosts
/// against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub principal: String,
    pub host: Option<IpAddr>,
    /// The request carried a SigV4 signature (verified where a key was found or
    /// `--http-auth` asks; an unknown key's, without it, is only carried).
    pub signed: bool,
}

/// What the connection knows of its client before any request.
pub struct Peer<'a> {
    pub addr: Option<IpAddr>,
    /// Came in on the HTTP TLS listener.
    pub tls: bool,
    /// The subject of the client's verified TLS certificate (mTLS).
    pub certificate: Option<&'a str>,
}

impl Peer<'_> {
    /// The caller of a request that did not sign: the certificate's subject, else
    /// anonymous.
    fn unsigned(&self) -> Caller {
        Caller {
            principal: self
                .certificate
                .map_or_else(|| ANONYMOUS.to_string(), |s| format!("User:{s}")),
            host: self.addr,
            signed: false,
        }
    }
}

/// The caller of a request, or the answer refusing it (see the module's doc).
/// `raw_head` is the request's head as received (request line and headers).
pub fn authenticate(
    engine: &Engine,
    peer: &Peer<'_>,
    method: &str,
    raw_head: &[u8],
    body: &[u8],
) -> Result<Caller, Encoded> {
    let mut headers = [httparse::EMPTY_HEADER; HEADERS_MAX];
    let mut req = httparse::Request::new(&mut headers);
    // The connection parsed this head already; one that does not parse again is refused.
    let complete = matches!(req.parse(raw_head), Ok(httparse::Status::Complete(_)));
    let target = req.path.unwrap_or("");
    let header = |name: &str| {
        req.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .and_then(|h| std::str::from_utf8(h.value).ok())
    };
    let query = target.split_once('?').map_or("", |(_, q)| q);
    let Some(protocol) = sqs::accepts(
        method,
        header("x-amz-target"),
        header("content-type"),
        query,
    ) else {
        // Not an AWS request: the operator routes.
        return Ok(peer.unsigned());
    };
    let config = engine.config();
    let listener = Listener::of(crate::metrics::Protocol::Http, peer.tls);
    let required = config.http_auth || config.require_auth(listener);
    let signed = header("authorization").is_some();
    // Visiting a SubscribeURL confirms an SNS subscription with a plain unsigned GET: the
    // token in it is the proof, as in SNS.
    let token_proof = method == "GET" && !signed && confirms_by_token(query);
    if token_proof || (!signed && (!required || peer.certificate.is_some())) {
        return Ok(peer.unsigned());
    }
    // A peer past --login-failures-per-minute is refused without checking.
    if let Some(ip) = peer.addr.filter(|ip| !engine.login_permitted(*ip)) {
        tracing::debug!(peer = %ip, "HTTP request refused: too many failed signatures");
        return Err(refusal(
            engine,
            protocol,
            query,
            body,
            &AuthError::Throttled,
        ));
    }
    // The principal of the key the verifier looked up.
    let signer: RefCell<Option<String>> = RefCell::new(None);
    let result = if complete {
        let pairs: Vec<(&str, &[u8])> = req.headers.iter().map(|h| (h.name, h.value)).collect();
        let signed = SignedRequest {
            method,
            target,
            headers: &pairs,
            body,
        };
        let lookup = |key: &str| {
            let (principal, secret) = key_secret(engine, key)?;
            *signer.borrow_mut() = Some(principal);
            Some(secret)
        };
        sigv4::verify(&signed, &lookup, SystemTime::now())
    } else {
        Err(AuthError::Incomplete(
            "The request head could not be read.".into(),
        ))
    };
    let error = match result {
        Ok(()) => {
            let principal = signer.into_inner().unwrap_or_else(|| ANONYMOUS.to_string());
            return Ok(Caller {
                principal,
                host: peer.addr,
                signed: true,
            });
        }
        // Where auth is not required, a request whose key was not found (unknown, or the
        // header not read that far) is anyone's, as an unsigned one (AWS stand-in): it
        // gains nothing by the signature. One that names a known key must verify.
        Err(_) if !required && signer.borrow().is_none() => {
            return Ok(Caller {
                signed: true,
                ..peer.unsigned()
            })
        }
        Err(e) => e,
    };
    tracing::debug!(peer = ?peer.addr, "HTTP request refused by SigV4: {error}");
    // A wrong secret or an unknown key is a failed login (logged with the key id, which
    // is no secret); a missing or malformed signature is not a guess.
    if let (Some(ip), AuthError::BadSignature | AuthError::UnknownKey) = (peer.addr, &error) {
        engine.login_failed(ip, "http", &key_id(header("authorization")));
    }
    Err(refusal(engine, protocol, query, body, &error))
}

/// The access key id an Authorization header names (for the log), or "".
fn key_id(authorization: Option<&str>) -> String {
    authorization
        .and_then(|a| a.split("Credential=").nth(1))
        .and_then(|c| c.split('/').next())
        .unwrap_or("")
        .chars()
        .take(128)
        .collect()
}

/// The refusal of an AWS request, counted as the engine counts a refused access (so
/// refusals show in errors_total).
fn refusal(
    engine: &Engine,
    protocol: Protocol,
    query: &str,
    body: &[u8],
    error: &AuthError,
) -> Encoded {
    let refused = crate::engine::EngineError::AccessRefused(String::new());
    crate::metrics::local::error(crate::metrics::Protocol::Http, refused.metrics_index());
    answer(engine, protocol, query, body, error)
}

/// The principal and secret of an access key: a `--http-access-key` (principal
/// `User:<key id>`), else a user's key from the user store (principal `User:<user>`).
fn key_secret(engine: &Engine, key: &str) -> Option<(String, String)> {
    if let Some(secret) = engine.config().http_access_keys.secret(key) {
        return Some((format!("User:{key}"), secret.to_owned()));
    }
    let (user, secret) = engine.access_key_secret(key)?;
    Some((format!("User:{user}"), secret))
}

/// Whether a query string is an SNS ConfirmSubscription carrying a token.
fn confirms_by_token(query: &str) -> bool {
    peregrine_aws_wire::form::Params::parse(b"", query).is_ok_and(|p| {
        p.get("Action") == Some("ConfirmSubscription")
            && p.get("Token").is_some_and(|t| !t.is_empty())
    })
}

/// The refusal in the request's protocol.
fn answer(
    engine: &Engine,
    protocol: Protocol,
    query: &str,
    body: &[u8],
    error: &AuthError,
) -> Encoded {
    let seq = REFUSED.with(|n| {
        n.set(n.get().wrapping_add(1));
        n.get()
    });
    let request_id =
        receipt::uuid(REFUSAL_ID_BIT | (u128::from(engine.shard_id()) << 64) | u128::from(seq));
    let mut headers = vec![(REQUEST_ID_HEADER, request_id.clone())];
    let body = match protocol {
        Protocol::Json => {
            headers.push((QUERY_ERROR_HEADER, error.query_error_header()));
            error.json_body()
        }
        Protocol::Query => {
            let sns_action = Params::parse(body, query)
                .ok()
                .and_then(|p| p.get("Action").map(sns::is_sns_action))
                .unwrap_or(false);
            let namespace = if sns_action {
                sns::query::NAMESPACE
            } else {
                peregrine_aws_wire::sqs::query::NAMESPACE
            };
            error.query_body(namespace, &request_id)
        }
    };
    Encoded {
        status: error.status(),
        content_type: protocol.content_type(),
        headers,
        body,
    }
}

/// Largest `--metrics-token-file` read.
const METRICS_TOKEN_BYTES_MAX: u64 = 4096;

/// The bearer token `/metrics` asks for (`--metrics-token-file`). Debug output never
/// shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct MetricsToken(Vec<u8>);

impl MetricsToken {
    /// Reads the token: the file's one line (surrounding whitespace and the final newline
    /// are not part of it), visible ASCII only, as a bearer token is.
    pub fn load(path: &Path) -> Result<MetricsToken, String> {
        let what = || format!("--metrics-token-file {}", path.display());
        let len = std::fs::metadata(path)
            .map_err(|e| format!("{}: {e}", what()))?
            .len();
        if len > METRICS_TOKEN_BYTES_MAX {
            return Err(format!(
                "{}: {len} bytes, more than the {METRICS_TOKEN_BYTES_MAX} a token file may have",
                what()
            ));
        }
        let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", what()))?;
        let token = bytes.trim_ascii();
        if token.is_empty() {
            return Err(format!("{}: the file is empty", what()));
        }
        if !token.iter().all(u8::is_ascii_graphic) {
            return Err(format!(
                "{}: the token must be one line of visible ASCII characters",
                what()
            ));
        }
        Ok(MetricsToken(token.to_vec()))
    }

    /// Whether an `Authorization` header value presents this token (`Bearer TOKEN`, the
    /// scheme in any case).
    pub fn admits(&self, authorization: Option<&[u8]>) -> bool {
        let Some(value) = authorization else {
            return false;
        };
        let value = value.trim_ascii();
        let Some(space) = value.iter().position(|b| *b == b' ') else {
            return false;
        };
        let (scheme, presented) = value.split_at(space);
        scheme.eq_ignore_ascii_case(b"bearer") && bool::from(presented.trim_ascii().ct_eq(&self.0))
    }
}

impl std::fmt::Debug for MetricsToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MetricsToken(..)")
    }
}

/// Whether a request for `/metrics` may be answered: no token configured, or its
/// `Authorization` header presents the token. `raw_head` is the request's head.
pub fn metrics_admitted(engine: &Engine, raw_head: &[u8]) -> bool {
    let Some(token) = &engine.config().metrics_token else {
        return true;
    };
    let mut headers = [httparse::EMPTY_HEADER; HEADERS_MAX];
    let mut req = httparse::Request::new(&mut headers);
    if !matches!(req.parse(raw_head), Ok(httparse::Status::Complete(_))) {
        return false;
    }
    let authorization = req
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("authorization"))
        .map(|h| h.value);
    token.admits(authorization)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(text: &str) -> Result<MetricsToken, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let path = dir.path().join("token");
        std::fs::write(&path, text).map_err(|e| e.to_string())?;
        MetricsToken::load(&path)
    }

    #[test]
    fn a_metrics_token_is_admitted_only_as_its_bearer_token() {
        let t = token("s3cr3t-Token_1\n").expect("loads");
        assert!(t.admits(Some(b"Bearer s3cr3t-Token_1")));
        assert!(t.admits(Some(b"bearer  s3cr3t-Token_1 ")));
        assert!(!t.admits(None));
        assert!(!t.admits(Some(b"Bearer s3cr3t-Token_2")));
        assert!(!t.admits(Some(b"Bearer s3cr3t-Token_")));
        assert!(!t.admits(Some(b"Basic s3cr3t-Token_1")));
        assert!(!t.admits(Some(b"s3cr3t-Token_1")));
        assert!(!t.admits(Some(b"Bearer ")));
        assert!(!format!("{t:?}").contains("s3cr3t"));
    }

    #[test]
    fn a_token_file_must_hold_one_visible_token() {
        assert!(token("").is_err());
        assert!(token(" \n").is_err());
        assert!(token("two words").is_err());
        assert!(token("a\nb").is_err());
        assert!(token(&"x".repeat(5000)).is_err());
        let missing = MetricsToken::load(Path::new("/nonexistent/peregrine-token"));
        assert!(missing.is_err_and(|e| e.contains("--metrics-token-file")));
    }
}
