//! Authentication of one native connection: who it is (`Requester`), the SCRAM
//! handshake that changes that (`ScramFirst`, then `ScramFinal`, handled in order by the
//! connection's read loop, since the second step needs the first's state), and the gate
//! of a listener started with `--require-auth native` (or `native-tls`): before the
//! handshake succeeded it answers every other request with `AuthenticationRequired`,
//! and closes the connection after `REFUSALS_MAX` refusals.
//!
//! A client whose TLS certificate was verified (mTLS) is authenticated from the start
//! as `User:<certificate name>`. The exchange itself is `auth::session`'s: the
//! per-address limiter of failed logins (`--login-failures-per-minute`), and a log line
//! for each failure with the peer and the user (never a password).

use super::authz::Requester;
use super::handler::Reply;
use super::messages::{ErrorCode, Request, Response, ScramMechanism};
use crate::auth::session::{principal_of, Mechanism, SaslSession, SaslStep};
use crate::config::Listener;
use crate::engine::Engine;
use crate::server::stream::Stream;
use peregrine_shards::security::acls::ANONYMOUS;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::rc::Rc;

/// Refused requests and failed handshakes one unauthenticated connection may have on a
/// listener that requires authentication; the next one closes it.
pub const REFUSALS_MAX: u32 = 3;

/// What the read loop does with a request, as far as authentication goes.
pub enum Gate {
    /// Serve it.
    Pass,
    /// Answer this instead and go on.
    Answer(Reply),
    /// Answer this, then close the connection.
    Close(Reply),
}

/// Authentication state of one connection. Owned by its read loop.
pub struct Session {
    requester: Requester,
    peer: Option<SocketAddr>,
    /// The listener serves nothing but the handshake until this is true.
    authenticated: bool,
    /// A handshake between its two steps.
    sasl: Option<SaslSession>,
    refusals: u32,
}

impl Session {
    pub fn new(engine: &Engine, stream: &Stream) -> Session {
        let listener = if stream.is_tls() {
            Listener::NativeTls
        } else {
            Listener::Native
        };
        let peer = stream.peer_addr();
        let certified = stream.principal().map(principal_of);
        Session {
            requester: Requester {
                principal: Rc::from(certified.as_deref().unwrap_or(ANONYMOUS)),
                host: peer.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |p| p.ip()),
            },
            peer,
            authenticated: certified.is_some() || !engine.config().require_auth(listener),
            sasl: None,
            refusals: 0,
        }
    }

    /// Who the connection's requests run as now.
    pub fn requester(&self) -> &Requester {
        &self.requester
    }

    /// Whether `request` may be served now; the handshake always may.
    pub fn gate(&mut self, request: &Request) -> Gate {
        if self.authenticated
            || matches!(
                request,
                Request::ScramFirst { .. } | Request::ScramFinal { .. }
            )
        {
            return Gate::Pass;
        }
        let message = "this listener requires authentication first (SCRAM: --user, and the \
                       password in --password-file or PEREGRINE_PASSWORD)";
        self.refuse(ErrorCode::AuthenticationRequired, message.to_string())
    }

    fn refuse(&mut self, code: ErrorCode, message: String) -> Gate {
        let reply = (Response::error(code, message), Vec::new());
        if self.authenticated {
            return Gate::Answer(reply);
        }
        self.refusals += 1;
        if self.refusals >= REFUSALS_MAX {
            return Gate::Close(reply);
        }
        Gate::Answer(reply)
    }

    /// SCRAM step 1: the server-first message, or a refusal (also when this address
    /// failed too many logins: `auth::session` applies the limiter first).
    pub async fn scram_first(
        &mut self,
        engine: &Engine,
        mechanism: ScramMechanism,
        client_first: &[u8],
    ) -> Gate {
        let mechanism = Mechanism::Scram(mechanism.into());
        let mut sasl = SaslSession::new(mechanism, self.requester.host, "native");
        self.sasl = None;
        match sasl.step(engine, client_first).await {
            Ok(SaslStep::Challenge(server_first)) => {
                self.sasl = Some(sasl);
                Gate::Answer((Response::ScramChallenge { server_first }, Vec::new()))
            }
            Ok(SaslStep::Success { .. }) => {
                self.failed("SCRAM ended after its first message".to_string())
            }
            Err(e) => self.failed(e.to_string()),
        }
    }

    /// SCRAM step 2: on success the connection acts as the user from now on.
    pub async fn scram_final(&mut self, engine: &Engine, client_final: &[u8]) -> Gate {
        let Some(mut sasl) = self.sasl.take() else {
            return self.failed("ScramFinal without a ScramFirst before it".to_string());
        };
        match sasl.step(engine, client_final).await {
            Ok(SaslStep::Success { principal, message }) => {
                tracing::debug!(peer = ?self.peer, %principal, "native client authenticated");
                self.requester.principal = Rc::from(principal.as_str());
                self.authenticated = true;
                self.refusals = 0;
                let answer = Response::Authenticated {
                    principal,
                    server_final: message,
                };
                Gate::Answer((answer, Vec::new()))
            }
            Ok(SaslStep::Challenge(_)) => {
                self.failed("SCRAM asked for a third message".to_string())
            }
            Err(e) => self.failed(e.to_string()),
        }
    }

    /// A failed handshake (already counted and logged by `auth::session`).
    fn failed(&mut self, why: String) -> Gate {
        self.refuse(
            ErrorCode::AuthenticationFailed,
            format!("authentication failed: {why}"),
        )
    }
}
