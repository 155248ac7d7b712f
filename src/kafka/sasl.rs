//! SASL on one Kafka connection: SaslHandshake and SaslAuthenticate with PLAIN,
//! SCRAM-SHA-256 and SCRAM-SHA-512 against the broker's user store, the gate that keeps
//! a client of a `--require-auth` listener to the handshake until it authenticated, and
//! KIP-368 session lifetimes with re-authentication.
//!
//! The exchange runs in the connection's reader, in order, before the next frame is
//! read: the principal a success sets is the one every later request is checked with.
//! Kafka's rules, kept: a failed authentication is answered (SASL_AUTHENTICATION_FAILED
//! with the reason) and the connection closed; so is a request out of order
//! (ILLEGAL_SASL_STATE), an unknown mechanism (UNSUPPORTED_SASL_MECHANISM) and, on a
//! require-auth listener, any request but ApiVersions before authentication. A session
//! past its lifetime ends at its next request unless that starts a re-authentication,
//! and a re-authentication may not change the principal.
//!
//! After a SaslHandshake v0 (clients before KIP-152) the client sends bare SASL tokens,
//! `i32 length | token`, and gets bare tokens back (`raw_token`); a failure closes the
//! connection unanswered, as Kafka does, since such a frame has no room for an error.

use super::codec::{self, Decoded};
use super::Ctx;
use crate::auth::session::{Mechanism, SaslSession, SaslStep, MECHANISMS};
use crate::config::Listener;
use crate::engine::Engine;
use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, RequestKind, ResponseKind, SaslAuthenticateRequest, SaslAuthenticateResponse,
    SaslHandshakeRequest, SaslHandshakeResponse,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError as K;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

/// The largest frame a client that must authenticate may send before it has.
const UNAUTHENTICATED_FRAME_MAX: usize = 512 * 1024;

/// The APIs the exchange is made of: run by `Session::exchange`, never concurrently.
pub fn is_exchange(key: ApiKey) -> bool {
    matches!(key, ApiKey::SaslHandshake | ApiKey::SaslAuthenticate)
}

/// Where the exchange stands.
enum State {
    /// None under way.
    Idle,
    /// SaslHandshake chose the mechanism; SaslAuthenticate requests carry the exchange
    /// (one for PLAIN, two for SCRAM).
    /// `raw`: the handshake was v0, so the tokens come bare, outside requests.
    Exchanging {
        session: Box<SaslSession>,
        raw: bool,
    },
}

/// One connection's authentication. Owned by the connection's reader task.
pub struct Session {
    engine: Engine,
    peer: IpAddr,
    /// `--require-auth` names this listener and no verified certificate vouched for
    /// the client: nothing but the handshake is served until it authenticates.
    required: bool,
    state: State,
    /// The principal SASL authenticated (a re-authentication must keep it).
    authenticated: Option<String>,
    /// When the session ends without a re-authentication (KIP-368).
    expires: Option<Instant>,
}

/// What the reader does after an exchange request.
pub struct Exchanged {
    /// The encoded answer.
    pub answer: Option<BytesMut>,
    /// Close the connection once the answer is written: Kafka's answer to a failure.
    pub close: bool,
}

impl Session {
    /// `tls`: the connection came in on the Kafka TLS listener; `certified`: its
    /// client certificate was verified (mTLS), which counts as authenticated.
    pub fn new(engine: Engine, peer: Option<IpAddr>, tls: bool, certified: bool) -> Session {
        let listener = if tls {
            Listener::KafkaTls
        } else {
            Listener::Kafka
        };
        let required = engine.config().require_auth(listener) && !certified;
        Session {
            engine,
            peer: peer.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
            required,
            state: State::Idle,
            authenticated: None,
            expires: None,
        }
    }

    /// The largest frame to read next: Kafka's 512 KiB (`sasl.server.max.receive.size`)
    /// while a client that must authenticate has not, so that it cannot make the broker
    /// hold `--max-frame-bytes` before it proved who it is.
    pub fn frame_max(&self, max_frame: usize) -> usize {
        if self.required && self.authenticated.is_none() {
            return max_frame.min(UNAUTHENTICATED_FRAME_MAX);
        }
        max_frame
    }

    /// Whether a request of `key` (not an exchange request) may be served now; the
    /// reason to close the connection if not.
    pub fn admits(&self, key: ApiKey) -> Result<(), String> {
        if !matches!(self.state, State::Idle) {
            return Err(format!("{key:?} in the middle of a SASL exchange"));
        }
        if self.expires.is_some_and(|at| Instant::now() >= at) {
            return Err(format!(
                "{key:?} after the SASL session expired (the client did not re-authenticate)"
            ));
        }
        if self.required && self.authenticated.is_none() && key != ApiKey::ApiVersions {
            return Err(format!(
                "{key:?} before authentication on a listener that requires it"
            ));
        }
        Ok(())
    }

    /// Runs one SaslHandshake or SaslAuthenticate and encodes its answer.
    pub async fn exchange(&mut self, ctx: &Ctx, request: Box<Decoded>) -> Exchanged {
        let (id, key, version) = (
            request.header.correlation_id,
            request.api_key,
            request.header.request_api_version,
        );
        crate::metrics::local::kafka_request(request.header.request_api_key);
        let (body, close) = match request.body {
            RequestKind::SaslHandshake(r) => {
                let (body, close) = self.handshake(&r, version);
                (ResponseKind::SaslHandshake(body), close)
            }
            RequestKind::SaslAuthenticate(r) => {
                let (body, close) = self.authenticate(ctx, r, version).await;
                (ResponseKind::SaslAuthenticate(body), close)
            }
            _ => {
                tracing::error!(api = ?key, "not a SASL exchange request");
                return Exchanged {
                    answer: None,
                    close: true,
                };
            }
        };
        match codec::encode(id, key, version, &body) {
            Ok(answer) => Exchanged {
                answer: Some(answer),
                close,
            },
            Err(e) => {
                tracing::error!("{e}");
                Exchanged {
                    answer: None,
                    close: true,
                }
            }
        }
    }

    fn handshake(
        &mut self,
        r: &SaslHandshakeRequest,
        version: i16,
    ) -> (SaslHandshakeResponse, bool) {
        let offered = MECHANISMS.iter().map(|m| StrBytes::from_static_str(m));
        let body = SaslHandshakeResponse::default().with_mechanisms(offered.collect());
        if !matches!(self.state, State::Idle) {
            return (body.with_error_code(K::IllegalSaslState.code()), true);
        }
        match Mechanism::from_name(r.mechanism.as_str()) {
            Some(m) => {
                let session = SaslSession::new(m, self.peer, "kafka");
                self.state = State::Exchanging {
                    session: Box::new(session),
                    raw: version == 0,
                };
                (body, false)
            }
            None => (
                body.with_error_code(K::UnsupportedSaslMechanism.code()),
                true,
            ),
        }
    }

    async fn authenticate(
        &mut self,
        ctx: &Ctx,
        r: SaslAuthenticateRequest,
        version: i16,
    ) -> (SaslAuthenticateResponse, bool) {
        let State::Exchanging {
            mut session,
            raw: false,
        } = std::mem::replace(&mut self.state, State::Idle)
        else {
            let message = "SaslAuthenticate before SaslHandshake".to_string();
            return refuse(K::IllegalSaslState, message);
        };
        // The session applies the failed-login limiter, and logs and counts failures.
        match session.step(&self.engine, &r.auth_bytes).await {
            Ok(SaslStep::Challenge(challenge)) => {
                self.state = State::Exchanging {
                    session,
                    raw: false,
                };
                let body = SaslAuthenticateResponse::default()
                    .with_error_message(None)
                    .with_auth_bytes(Bytes::from(challenge));
                (body, false)
            }
            Ok(SaslStep::Success { principal, message }) => {
                self.succeeded(ctx, session.mechanism(), principal, message, version)
            }
            Err(e) => {
                let message = format!(
                    "Authentication failed with SASL mechanism {}: {e}",
                    session.mechanism().name()
                );
                refuse(K::SaslAuthenticationFailed, message)
            }
        }
    }

    /// A login answered in a SaslAuthenticate response.
    fn succeeded(
        &mut self,
        ctx: &Ctx,
        mechanism: Mechanism,
        principal: String,
        reply: Vec<u8>,
        version: i16,
    ) -> (SaslAuthenticateResponse, bool) {
        let lifetime_ms = match self.log_in(ctx, mechanism, principal) {
            Ok(lifetime_ms) => lifetime_ms,
            Err(message) => return refuse(K::SaslAuthenticationFailed, message),
        };
        let mut body = SaslAuthenticateResponse::default()
            .with_error_message(None)
            .with_auth_bytes(Bytes::from(reply));
        if version >= 1 {
            // v0 cannot carry it: such a client is closed when its session ends.
            body = body.with_session_lifetime_ms(i64::try_from(lifetime_ms).unwrap_or(i64::MAX));
        }
        (body, false)
    }

    /// A login: the principal set, the session's end fixed; its lifetime in ms (0: no
    /// end), or why it is refused.
    fn log_in(
        &mut self,
        ctx: &Ctx,
        mechanism: Mechanism,
        principal: String,
    ) -> Result<u64, String> {
        if let Some(before) = &self.authenticated {
            if *before != principal {
                return Err(format!(
                    "a re-authentication may not change the principal ({before} to {principal})"
                ));
            }
        }
        let again = if self.authenticated.is_some() {
            "re-"
        } else {
            ""
        };
        tracing::debug!(
            peer = %self.peer, %principal, mechanism = mechanism.name(),
            "Kafka client {again}authenticated"
        );
        ctx.set_principal(principal.clone());
        self.authenticated = Some(principal);
        let lifetime_ms = self.engine.config().sasl_session_lifetime_ms;
        self.expires =
            (lifetime_ms > 0).then(|| Instant::now() + Duration::from_millis(lifetime_ms));
        Ok(lifetime_ms)
    }

    /// Whether the next frame is a bare SASL token (after a SaslHandshake v0).
    pub fn expects_raw_token(&self) -> bool {
        matches!(self.state, State::Exchanging { raw: true, .. })
    }

    /// Runs one bare SASL token; the answer is a bare token too (empty after a PLAIN
    /// success, as Kafka sends). A failure closes the connection without an answer.
    pub async fn raw_token(&mut self, ctx: &Ctx, token: &[u8]) -> Exchanged {
        let closed = Exchanged {
            answer: None,
            close: true,
        };
        let State::Exchanging { mut session, .. } = std::mem::replace(&mut self.state, State::Idle)
        else {
            return closed;
        };
        let reply = match session.step(&self.engine, token).await {
            Ok(SaslStep::Challenge(challenge)) => {
                self.state = State::Exchanging { session, raw: true };
                challenge
            }
            Ok(SaslStep::Success { principal, message }) => {
                match self.log_in(ctx, session.mechanism(), principal) {
                    Ok(_) => message,
                    Err(why) => {
                        tracing::warn!(peer = %self.peer, "Kafka SASL refused: {why}");
                        return closed;
                    }
                }
            }
            Err(_) => return closed,
        };
        let Ok(len) = i32::try_from(reply.len()) else {
            return closed;
        };
        let mut answer = BytesMut::with_capacity(4 + reply.len());
        answer.extend_from_slice(&len.to_be_bytes());
        answer.extend_from_slice(&reply);
        Exchanged {
            answer: Some(answer),
            close: false,
        }
    }
}

/// An error answer, after which Kafka closes the connection.
fn refuse(code: K, message: String) -> (SaslAuthenticateResponse, bool) {
    let body = SaslAuthenticateResponse::default()
        .with_error_code(code.code())
        .with_error_message(Some(StrBytes::from_string(message)));
    (body, true)
}
