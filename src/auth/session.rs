//! One server-side SASL exchange over the engine's user store, whatever the mechanism
//! (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512): what the Kafka (SaslAuthenticate) and native
//! front ends drive, one client message per `step`. It applies the failed-login limiter
//! before any check (a limited peer is refused without a look at its password), counts
//! and logs every failure with the peer, protocol and claimed user, and hashes PLAIN
//! passwords on the blocking pool.

use super::sasl::{self, SaslError, ScramServer, ServerError};
use crate::engine::Engine;
use peregrine_shards::security::ScramMechanism;
use std::net::IpAddr;

/// The mechanisms offered, as SASL names them (Kafka's SaslHandshake lists these).
pub const MECHANISMS: [&str; 3] = ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"];

/// The principal of a user that logged in, in Kafka's form.
pub fn principal_of(user: &str) -> String {
    format!("User:{user}")
}

/// A SASL mechanism this broker offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    Plain,
    Scram(ScramMechanism),
}

impl Mechanism {
    /// The mechanism a SASL name stands for (exact, upper case).
    pub fn from_name(name: &str) -> Option<Mechanism> {
        match name {
            "PLAIN" => Some(Mechanism::Plain),
            other => ScramMechanism::from_name(other).map(Mechanism::Scram),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::Scram(m) => m.name(),
        }
    }
}

/// What a step answers the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SaslStep {
    /// The exchange goes on: send this and wait for the client's next message.
    Challenge(Vec<u8>),
    /// Logged in as `principal` (`User:NAME`); send `message` (empty for PLAIN, the
    /// server-final message for SCRAM).
    Success { principal: String, message: Vec<u8> },
}

enum Stage {
    Start,
    Scram(Box<ScramServer>),
    Done,
}

/// One login attempt on one connection. A failed step ends it: a new attempt is a new
/// session (Kafka closes the connection on a failed SaslAuthenticate anyway).
pub struct SaslSession {
    mechanism: Mechanism,
    peer: IpAddr,
    protocol: &'static str,
    stage: Stage,
}

impl SaslSession {
    /// A session for `mechanism` from `peer`, on `protocol` (named in the logs).
    pub fn new(mechanism: Mechanism, peer: IpAddr, protocol: &'static str) -> SaslSession {
        SaslSession {
            mechanism,
            peer,
            protocol,
            stage: Stage::Start,
        }
    }

    pub fn mechanism(&self) -> Mechanism {
        self.mechanism
    }

    /// Reads the client's next message and answers it.
    pub async fn step(&mut self, engine: &Engine, message: &[u8]) -> Result<SaslStep, SaslError> {
        match std::mem::replace(&mut self.stage, Stage::Done) {
            Stage::Start => {
                if !engine.login_permitted(self.peer) {
                    return Err(SaslError {
                        kind: ServerError::OtherError,
                        detail: "too many failed logins from this address: retry in a minute"
                            .into(),
                        user: None,
                    });
                }
                match self.mechanism {
                    Mechanism::Plain => self.plain(engine, message).await,
                    Mechanism::Scram(m) => self.scram_first(engine, m, message),
                }
            }
            Stage::Scram(mut server) => {
                let done = server
                    .client_final(message)
                    .map_err(|e| self.failed(engine, e))?;
                engine.login_succeeded(self.peer);
                Ok(SaslStep::Success {
                    principal: principal_of(&done.user),
                    message: done.server_final,
                })
            }
            Stage::Done => Err(SaslError {
                kind: ServerError::OtherError,
                detail: "the SASL exchange is over".into(),
                user: None,
            }),
        }
    }

    async fn plain(&mut self, engine: &Engine, message: &[u8]) -> Result<SaslStep, SaslError> {
        let plain = sasl::parse_plain(message).map_err(|e| self.failed(engine, e))?;
        if !engine.check_password(plain.user, plain.password).await {
            let e = SaslError {
                kind: ServerError::InvalidProof,
                detail: "authentication failed: invalid credentials with SASL mechanism PLAIN"
                    .into(),
                user: Some(plain.user.to_string()),
            };
            return Err(self.failed(engine, e));
        }
        engine.login_succeeded(self.peer);
        Ok(SaslStep::Success {
            principal: principal_of(plain.user),
            message: Vec::new(),
        })
    }

    fn scram_first(
        &mut self,
        engine: &Engine,
        mechanism: ScramMechanism,
        message: &[u8],
    ) -> Result<SaslStep, SaslError> {
        let mut server = ScramServer::new(mechanism);
        let first = server
            .client_first(message, |user| engine.scram_credential(user, mechanism))
            .map_err(|e| self.failed(engine, e))?;
        self.stage = Stage::Scram(Box::new(server));
        Ok(SaslStep::Challenge(first))
    }

    /// Counts and logs a failure, and hands the error back.
    fn failed(&self, engine: &Engine, e: SaslError) -> SaslError {
        let user = e.user.as_deref().unwrap_or("");
        engine.login_failed(self.peer, self.protocol, user);
        tracing::debug!(peer = %self.peer, mechanism = self.mechanism.name(), "{e}");
        e
    }
}
