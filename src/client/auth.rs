//! Authentication of a native client connection: the SCRAM handshake (RFC 5802) over
//! the `ScramFirst`/`ScramFinal` requests. The message logic is the shared
//! `auth::sasl::ScramClient`; this module only carries its messages, and checks the
//! broker's signature so that a client never takes a broker that does not know its
//! credentials for the real one.

use super::connection::Connection;
use super::{check, unexpected, ClientError};
use crate::auth::sasl::{SaslError, ScramClient};
use crate::native::messages::{Request, Response, ScramMechanism};

/// Who a client authenticates as. The password stays in memory for the connections
/// the client opens later (each authenticates on its own); it is never printed.
#[derive(Clone)]
pub struct Credentials {
    user: String,
    password: String,
    mechanism: ScramMechanism,
}

impl Credentials {
    pub fn new(user: &str, password: &str, mechanism: ScramMechanism) -> Credentials {
        Credentials {
            user: user.to_string(),
            password: password.to_string(),
            mechanism,
        }
    }

    pub fn user(&self) -> &str {
        &self.user
    }

    pub fn mechanism(&self) -> ScramMechanism {
        self.mechanism
    }
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .field("mechanism", &self.mechanism)
            .finish()
    }
}

impl Connection {
    /// Runs the SCRAM handshake on this connection (no other request may be in flight);
    /// returns the principal the broker now knows it as (`User:NAME`).
    pub fn authenticate(&mut self, credentials: &Credentials) -> Result<String, ClientError> {
        let sasl = |e: SaslError| ClientError::Protocol(format!("SCRAM: {e}"));
        let mut scram = ScramClient::new(
            credentials.mechanism.into(),
            &credentials.user,
            &credentials.password,
        )
        .map_err(sasl)?;
        let first = Request::ScramFirst {
            mechanism: credentials.mechanism,
            client_first: scram.client_first(),
        };
        let server_first = match check(self.call(first, &[])?.0)? {
            Response::ScramChallenge { server_first } => server_first,
            other => return Err(unexpected("SCRAM client-first", &other)),
        };
        let client_final = scram.server_first(&server_first).map_err(sasl)?;
        let (principal, server_final) =
            match check(self.call(Request::ScramFinal { client_final }, &[])?.0)? {
                Response::Authenticated {
                    principal,
                    server_final,
                } => (principal, server_final),
                other => return Err(unexpected("SCRAM client-final", &other)),
            };
        // The broker proves it holds the credential: a client never takes one that
        // does not for the real one.
        scram.server_final(&server_final).map_err(sasl)?;
        Ok(principal)
    }
}
