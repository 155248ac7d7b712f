//! SASL messages, sans-IO: PLAIN (RFC 4616) and SCRAM-SHA-256/512 (RFC 5802, RFC 7677),
//! server and client side. Each front end carries these bytes in its own frames (Kafka
//! SaslAuthenticate, the native handshake, AMQP Start-Ok) and checks them against the
//! user store's credentials (`peregrine_shards::security::users`).
//!
//! Why not a crate for the message logic: of the SCRAM crates, `scram`/`scram-2` do
//! SHA-256 only (on ring); `rsasl` 2 offers SCRAM-SHA-1/256 but not SHA-512, and drives
//! I/O through its own session callbacks; `scram-rs` is not under an open source
//! licence we can take. So the message parsing and the state machine are here, and
//! every cryptographic step (HMAC, SHA-2, PBKDF2, constant-time comparison, the OS RNG)
//! is RustCrypto's, through `ScramMechanism`.
//!
//! User names are compared as sent, without SASLprep, as Kafka does; `,` and `=` in a
//! name travel escaped (`=2C`, `=3D`). Every message is bounded (`SASL_MESSAGE_BYTES_MAX`)
//! and every failure is a `SaslError` whose `server_error` is RFC 5802's `e=` value.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use peregrine_shards::security::users::{
    constant_time_eq, random_bytes, ScramCredential, ScramMechanism, ITERATIONS_MAX,
    ITERATIONS_MIN, PASSWORD_BYTES_MAX, SALT_BYTES, USER_NAME_MAX,
};

/// Longest SASL message accepted (any mechanism, either side): real ones are a few
/// hundred bytes.
pub const SASL_MESSAGE_BYTES_MAX: usize = 4096;
/// Bytes of randomness in a nonce (base64-encoded on the wire).
pub const NONCE_BYTES: usize = 24;
/// Longest client nonce accepted.
pub const CLIENT_NONCE_MAX: usize = 512;

/// RFC 5802's `server-error-value`s this server sends (section 7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerError {
    InvalidEncoding,
    ExtensionsNotSupported,
    InvalidProof,
    ChannelBindingsDontMatch,
    ChannelBindingNotSupported,
    UnknownUser,
    InvalidUsernameEncoding,
    OtherError,
}

impl ServerError {
    pub fn value(self) -> &'static str {
        match self {
            ServerError::InvalidEncoding => "invalid-encoding",
            ServerError::ExtensionsNotSupported => "extensions-not-supported",
            ServerError::InvalidProof => "invalid-proof",
            ServerError::ChannelBindingsDontMatch => "channel-bindings-dont-match",
            ServerError::ChannelBindingNotSupported => "channel-binding-not-supported",
            ServerError::UnknownUser => "unknown-user",
            ServerError::InvalidUsernameEncoding => "invalid-username-encoding",
            ServerError::OtherError => "other-error",
        }
    }
}

/// A refused SASL step: what went wrong (for the log and the client) and RFC 5802's
/// error value. `user` is the name the client gave, when it got that far.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{detail}")]
pub struct SaslError {
    pub kind: ServerError,
    pub detail: String,
    pub user: Option<String>,
}

impl SaslError {
    fn new(kind: ServerError, detail: impl Into<String>) -> SaslError {
        SaslError {
            kind,
            detail: detail.into(),
            user: None,
        }
    }

    fn encoding(detail: impl Into<String>) -> SaslError {
        SaslError::new(ServerError::InvalidEncoding, detail)
    }

    fn for_user(mut self, user: &str) -> SaslError {
        self.user = Some(user.to_string());
        self
    }

    /// RFC 5802's server-final error message, `e=VALUE`.
    pub fn server_error(&self) -> Vec<u8> {
        format!("e={}", self.kind.value()).into_bytes()
    }
}

/// The three fields of a PLAIN message. Debug output leaves the password out.
#[derive(Clone, PartialEq, Eq)]
pub struct Plain<'a> {
    /// Empty, or the user itself (acting as another user is not offered).
    pub authzid: &'a str,
    pub user: &'a str,
    pub password: &'a str,
}

impl std::fmt::Debug for Plain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plain")
            .field("authzid", &self.authzid)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// Parses a PLAIN message, `authzid NUL user NUL password` (RFC 4616): UTF-8, a user and
/// a password within the store's bounds, an authzid empty or equal to the user.
pub fn parse_plain(message: &[u8]) -> Result<Plain<'_>, SaslError> {
    if message.len() > SASL_MESSAGE_BYTES_MAX {
        return Err(SaslError::encoding(format!(
            "a PLAIN message is at most {SASL_MESSAGE_BYTES_MAX} bytes"
        )));
    }
    let text = std::str::from_utf8(message)
        .map_err(|_| SaslError::encoding("a PLAIN message is UTF-8"))?;
    let mut fields = text.split('\0');
    let (Some(authzid), Some(user), Some(password), None) =
        (fields.next(), fields.next(), fields.next(), fields.next())
    else {
        return Err(SaslError::encoding(
            "a PLAIN message is authzid NUL user NUL password",
        ));
    };
    if user.is_empty() || user.len() > USER_NAME_MAX {
        return Err(SaslError::new(
            ServerError::InvalidUsernameEncoding,
            format!("a user name is 1 to {USER_NAME_MAX} bytes"),
        ));
    }
    if password.is_empty() || password.len() > PASSWORD_BYTES_MAX {
        return Err(
            SaslError::encoding(format!("a password is 1 to {PASSWORD_BYTES_MAX} bytes"))
                .for_user(user),
        );
    }
    if !authzid.is_empty() && authzid != user {
        return Err(SaslError::new(
            ServerError::OtherError,
            "the authorization id must be empty or the user's own",
        )
        .for_user(user));
    }
    Ok(Plain {
        authzid,
        user,
        password,
    })
}

/// A PLAIN message for `user` and `password` (clients and tests).
pub fn plain_message(user: &str, password: &str) -> Vec<u8> {
    format!("\0{user}\0{password}").into_bytes()
}

/// A name as SCRAM sends it: `=` as `=3D`, `,` as `=2C`.
pub fn escape_name(name: &str) -> String {
    name.replace('=', "=3D").replace(',', "=2C")
}

/// The name a SCRAM `saslname` stands for; any other `=` sequence is invalid.
pub fn unescape_name(escaped: &str) -> Result<String, SaslError> {
    let mut out = String::with_capacity(escaped.len());
    let mut rest = escaped;
    while let Some(at) = rest.find('=') {
        out.push_str(&rest[..at]);
        let code = rest.get(at + 1..at + 3);
        match code {
            Some("2C") => out.push(','),
            Some("3D") => out.push('='),
            _ => {
                return Err(SaslError::new(
                    ServerError::InvalidUsernameEncoding,
                    "'=' in a name must start =2C or =3D",
                ))
            }
        }
        rest = &rest[at + 3..];
    }
    out.push_str(rest);
    Ok(out)
}

/// A SCRAM message's text, bounded, UTF-8.
fn scram_text(message: &[u8]) -> Result<&str, SaslError> {
    if message.len() > SASL_MESSAGE_BYTES_MAX {
        return Err(SaslError::encoding(format!(
            "a SCRAM message is at most {SASL_MESSAGE_BYTES_MAX} bytes"
        )));
    }
    std::str::from_utf8(message).map_err(|_| SaslError::encoding("a SCRAM message is UTF-8"))
}

/// The value of attribute `name` (`name=value`).
fn attribute(field: Option<&str>, name: char) -> Result<&str, SaslError> {
    field
        .and_then(|f| f.strip_prefix(name))
        .and_then(|f| f.strip_prefix('='))
        .ok_or_else(|| SaslError::encoding(format!("expected the attribute '{name}='")))
}

/// A nonce: printable ASCII except ',' (RFC 5802), bounded.
fn check_nonce(nonce: &str) -> Result<(), SaslError> {
    let printable = nonce
        .bytes()
        .all(|b| (0x21..=0x7e).contains(&b) && b != b',');
    if nonce.is_empty() || nonce.len() > CLIENT_NONCE_MAX || !printable {
        return Err(SaslError::encoding(format!(
            "a nonce is 1 to {CLIENT_NONCE_MAX} printable characters other than ','"
        )));
    }
    Ok(())
}

fn new_nonce() -> Result<String, SaslError> {
    let bytes = random_bytes(NONCE_BYTES)
        .map_err(|e| SaslError::new(ServerError::OtherError, e.to_string()))?;
    Ok(BASE64.encode(bytes))
}

/// The salt shown for a user that does not exist: as long as a real one, stable for
/// the process's life, and keyed with a secret drawn at start so that nobody can tell it
/// from a real salt by computing it from the name.
fn unknown_user_salt(mechanism: ScramMechanism, user: &str) -> Vec<u8> {
    static KEY: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    let key = KEY.get_or_init(|| random_bytes(NONCE_BYTES).unwrap_or_default());
    let mut salt = mechanism.hmac(key, user.as_bytes());
    salt.truncate(SALT_BYTES);
    salt
}

fn xor(a: &[u8], b: &[u8]) -> Vec<u8> {
    a.iter().zip(b).map(|(x, y)| x ^ y).collect()
}

/// What the client-first message said.
struct ClientFirst {
    /// `n,,` or `y,,` (with `a=...` when given): echoed in the client-final's `c=`.
    gs2_header: String,
    /// Everything after the gs2 header: part of the AuthMessage.
    bare: String,
    user: String,
    nonce: String,
}

fn parse_client_first(message: &[u8]) -> Result<ClientFirst, SaslError> {
    let text = scram_text(message)?;
    // gs2-header: cbind-flag "," [authzid] ","
    let mut parts = text.splitn(3, ',');
    let (Some(flag), Some(authzid), Some(bare)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(SaslError::encoding(
            "a client-first message starts with a gs2 header",
        ));
    };
    match flag {
        "n" | "y" => {}
        f if f.starts_with("p=") => {
            return Err(SaslError::new(
                ServerError::ChannelBindingNotSupported,
                "channel binding is not offered (no -PLUS mechanism)",
            ))
        }
        _ => {
            return Err(SaslError::encoding(
                "the gs2 channel binding flag is n, y or p=",
            ))
        }
    }
    let gs2_header = format!("{flag},{authzid},");
    let mut fields = bare.split(',');
    let mut first = fields.next();
    if first.is_some_and(|f| f.starts_with("m=")) {
        return Err(SaslError::new(
            ServerError::ExtensionsNotSupported,
            "mandatory extensions are not supported",
        ));
    }
    let user = unescape_name(attribute(first.take(), 'n')?)?;
    if user.is_empty() || user.len() > USER_NAME_MAX {
        return Err(SaslError::new(
            ServerError::InvalidUsernameEncoding,
            format!("a user name is 1 to {USER_NAME_MAX} bytes"),
        ));
    }
    let nonce = attribute(fields.next(), 'r')?.to_string();
    check_nonce(&nonce)?;
    // Optional extensions follow (`name=value`); Kafka's `tokenauth` (delegation
    // tokens) is not offered.
    let extensions: Vec<&str> = fields.collect();
    let well_formed = extensions.iter().all(|f| {
        f.split_once('=')
            .is_some_and(|(k, _)| !k.is_empty() && k.bytes().all(|b| b.is_ascii_alphabetic()))
    });
    if !well_formed {
        return Err(SaslError::encoding("an extension is name=value").for_user(&user));
    }
    if extensions.contains(&"tokenauth=true") {
        return Err(SaslError::new(
            ServerError::ExtensionsNotSupported,
            "delegation tokens are not supported",
        )
        .for_user(&user));
    }
    if !authzid.is_empty() {
        let named = unescape_name(attribute(Some(authzid), 'a')?)?;
        if named != user {
            return Err(SaslError::new(
                ServerError::OtherError,
                "the authorization id must be empty or the user's own",
            )
            .for_user(&user));
        }
    }
    Ok(ClientFirst {
        gs2_header,
        bare: bare.to_string(),
        user,
        nonce,
    })
}

enum ServerState {
    Initial,
    /// The server-first message went out.
    Challenged {
        gs2_header: String,
        user: String,
        /// The client's nonce and ours.
        nonce: String,
        /// `client-first-bare "," server-first`: the first part of the AuthMessage.
        auth_prefix: String,
        /// `None` for an unknown user (refused at the final message, not before, so
        /// that the exchange does not tell which names exist).
        credential: Option<ScramCredential>,
    },
    Done,
}

/// The server side of one SCRAM exchange: `client_first`, then `client_final`.
pub struct ScramServer {
    mechanism: ScramMechanism,
    state: ServerState,
    /// Our half of the nonce (a fixed one in tests).
    nonce: Option<String>,
}

/// A SCRAM exchange that succeeded: who logged in, and the server-final message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScramSuccess {
    pub user: String,
    pub server_final: Vec<u8>,
}

impl ScramServer {
    pub fn new(mechanism: ScramMechanism) -> ScramServer {
        ScramServer {
            mechanism,
            state: ServerState::Initial,
            nonce: None,
        }
    }

    #[cfg(test)]
    fn with_nonce(mechanism: ScramMechanism, nonce: &str) -> ScramServer {
        ScramServer {
            nonce: Some(nonce.to_string()),
            ..ScramServer::new(mechanism)
        }
    }

    pub fn mechanism(&self) -> ScramMechanism {
        self.mechanism
    }

    /// The user named in the client-first message, once it was read.
    pub fn user(&self) -> Option<&str> {
        match &self.state {
            ServerState::Challenged { user, .. } => Some(user),
            _ => None,
        }
    }

    /// Reads the client-first message and answers the server-first one. `lookup` gives
    /// the named user's credential for this mechanism (`Engine::scram_credential`).
    pub fn client_first(
        &mut self,
        message: &[u8],
        lookup: impl FnOnce(&str) -> Option<ScramCredential>,
    ) -> Result<Vec<u8>, SaslError> {
        if !matches!(self.state, ServerState::Initial) {
            self.state = ServerState::Done;
            return Err(SaslError::new(
                ServerError::OtherError,
                "SCRAM message out of order",
            ));
        }
        self.state = ServerState::Done;
        let first = parse_client_first(message)?;
        let credential = lookup(&first.user);
        let ours = match self.nonce.take() {
            Some(nonce) => nonce,
            None => new_nonce().map_err(|e| e.for_user(&first.user))?,
        };
        let nonce = format!("{}{ours}", first.nonce);
        // An unknown user gets a salt and a count as a known one would, the same on
        // every attempt; its proof can never match.
        let (salt, iterations) = match &credential {
            Some(c) => (c.salt.clone(), c.iterations),
            None => (
                unknown_user_salt(self.mechanism, &first.user),
                ITERATIONS_MIN,
            ),
        };
        let server_first = format!("r={nonce},s={},i={iterations}", BASE64.encode(salt));
        self.state = ServerState::Challenged {
            gs2_header: first.gs2_header,
            user: first.user,
            nonce,
            auth_prefix: format!("{},{server_first}", first.bare),
            credential,
        };
        Ok(server_first.into_bytes())
    }

    /// Reads the client-final message: checks the channel binding, the nonce and the
    /// proof, and answers the server-final message (`v=` the server signature).
    pub fn client_final(&mut self, message: &[u8]) -> Result<ScramSuccess, SaslError> {
        let state = std::mem::replace(&mut self.state, ServerState::Done);
        let ServerState::Challenged {
            gs2_header,
            user,
            nonce,
            auth_prefix,
            credential,
        } = state
        else {
            return Err(SaslError::new(
                ServerError::OtherError,
                "SCRAM message out of order",
            ));
        };
        let fail = |e: SaslError| e.for_user(&user);
        let text = scram_text(message).map_err(fail)?;
        let (without_proof, proof) = text
            .rsplit_once(",p=")
            .ok_or_else(|| fail(SaslError::encoding("a client-final message ends with p=")))?;
        let mut fields = without_proof.split(',');
        let binding = attribute(fields.next(), 'c').map_err(fail)?;
        if BASE64.decode(binding).ok().as_deref() != Some(gs2_header.as_bytes()) {
            return Err(fail(SaslError::new(
                ServerError::ChannelBindingsDontMatch,
                "the channel binding is not the gs2 header sent first",
            )));
        }
        if attribute(fields.next(), 'r').map_err(fail)? != nonce {
            return Err(fail(SaslError::new(
                ServerError::InvalidProof,
                "the nonce is not the one of this exchange",
            )));
        }
        let proof = BASE64
            .decode(proof)
            .map_err(|_| fail(SaslError::encoding("the proof is not base64")))?;
        let invalid = || {
            fail(SaslError::new(
                ServerError::InvalidProof,
                format!(
                    "authentication failed: invalid credentials with SASL mechanism {}",
                    self.mechanism.name()
                ),
            ))
        };
        let Some(credential) = credential else {
            return Err(invalid());
        };
        let auth_message = format!("{auth_prefix},{without_proof}");
        let m = self.mechanism;
        let client_signature = m.hmac(&credential.stored_key, auth_message.as_bytes());
        if proof.len() != client_signature.len() {
            return Err(invalid());
        }
        let client_key = xor(&proof, &client_signature);
        if !constant_time_eq(&m.hash(&client_key), &credential.stored_key) {
            return Err(invalid());
        }
        let server_signature = m.hmac(&credential.server_key, auth_message.as_bytes());
        Ok(ScramSuccess {
            user,
            server_final: format!("v={}", BASE64.encode(server_signature)).into_bytes(),
        })
    }
}

enum ClientState {
    Initial,
    SentFirst,
    /// The client-final message went out; the server's signature is expected.
    SentFinal {
        server_signature: Vec<u8>,
    },
    Done,
}

/// The client side of one SCRAM exchange (the native client, tests): `client_first`,
/// `server_first` (answers the client-final message), `server_final`.
pub struct ScramClient {
    mechanism: ScramMechanism,
    user: String,
    password: String,
    nonce: String,
    state: ClientState,
}

impl std::fmt::Debug for ScramClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScramClient")
            .field("mechanism", &self.mechanism)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

impl ScramClient {
    pub fn new(
        mechanism: ScramMechanism,
        user: &str,
        password: &str,
    ) -> Result<ScramClient, SaslError> {
        Ok(ScramClient {
            mechanism,
            user: user.to_string(),
            password: password.to_string(),
            nonce: new_nonce()?,
            state: ClientState::Initial,
        })
    }

    #[cfg(test)]
    fn with_nonce(
        mechanism: ScramMechanism,
        user: &str,
        password: &str,
        nonce: &str,
    ) -> ScramClient {
        ScramClient {
            mechanism,
            user: user.to_string(),
            password: password.to_string(),
            nonce: nonce.to_string(),
            state: ClientState::Initial,
        }
    }

    fn bare(&self) -> String {
        format!("n={},r={}", escape_name(&self.user), self.nonce)
    }

    /// The client-first message (`n,,n=USER,r=NONCE`).
    pub fn client_first(&mut self) -> Vec<u8> {
        self.state = ClientState::SentFirst;
        format!("n,,{}", self.bare()).into_bytes()
    }

    /// Reads the server-first message and answers the client-final one (with the
    /// proof). Costs the server's iteration count in HMACs, which is bounded by
    /// `ITERATIONS_MAX` so that a server cannot make the client spin.
    pub fn server_first(&mut self, message: &[u8]) -> Result<Vec<u8>, SaslError> {
        if !matches!(self.state, ClientState::SentFirst) {
            return Err(SaslError::new(
                ServerError::OtherError,
                "SCRAM message out of order",
            ));
        }
        self.state = ClientState::Done;
        let text = scram_text(message)?;
        if let Some(e) = text.strip_prefix("e=") {
            return Err(SaslError::new(
                ServerError::OtherError,
                format!("the server refused: {e}"),
            ));
        }
        let mut fields = text.split(',');
        let nonce = attribute(fields.next(), 'r')?;
        check_nonce(nonce)?;
        if !nonce.starts_with(&self.nonce) || nonce.len() == self.nonce.len() {
            return Err(SaslError::new(
                ServerError::InvalidProof,
                "the server's nonce does not extend ours",
            ));
        }
        let salt = BASE64
            .decode(attribute(fields.next(), 's')?)
            .map_err(|_| SaslError::encoding("the salt is not base64"))?;
        let iterations: u32 = attribute(fields.next(), 'i')?
            .parse()
            .map_err(|_| SaslError::encoding("the iteration count is not a number"))?;
        if !(ITERATIONS_MIN..=ITERATIONS_MAX).contains(&iterations) {
            return Err(SaslError::new(
                ServerError::OtherError,
                format!("the server asks for {iterations} iterations, outside {ITERATIONS_MIN}..={ITERATIONS_MAX}"),
            ));
        }
        let m = self.mechanism;
        let salted = m.salted_password(self.password.as_bytes(), &salt, iterations);
        let client_key = m.hmac(&salted, b"Client Key");
        let stored_key = m.hash(&client_key);
        let without_proof = format!("c={},r={nonce}", BASE64.encode("n,,"));
        let auth_message = format!("{},{text},{without_proof}", self.bare());
        let client_signature = m.hmac(&stored_key, auth_message.as_bytes());
        let proof = xor(&client_key, &client_signature);
        let server_key = m.hmac(&salted, b"Server Key");
        self.state = ClientState::SentFinal {
            server_signature: m.hmac(&server_key, auth_message.as_bytes()),
        };
        Ok(format!("{without_proof},p={}", BASE64.encode(proof)).into_bytes())
    }

    /// Reads the server-final message: the server proved it knows the credential (its
    /// signature), or refused (`e=`).
    pub fn server_final(&mut self, message: &[u8]) -> Result<(), SaslError> {
        let state = std::mem::replace(&mut self.state, ClientState::Done);
        let ClientState::SentFinal { server_signature } = state else {
            return Err(SaslError::new(
                ServerError::OtherError,
                "SCRAM message out of order",
            ));
        };
        let text = scram_text(message)?;
        if let Some(e) = text.strip_prefix("e=") {
            return Err(SaslError::new(
                ServerError::OtherError,
                format!("the server refused: {e}"),
            ));
        }
        let verifier = attribute(text.split(',').next(), 'v')?;
        let got = BASE64
            .decode(verifier)
            .map_err(|_| SaslError::encoding("the server signature is not base64"))?;
        if !constant_time_eq(&got, &server_signature) {
            return Err(SaslError::new(
                ServerError::InvalidProof,
                "the server's signature is wrong: it does not hold this user's credential",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLIENT_NONCE: &str = "rOprNGfwEbeRWgbNEkqO";
    const SERVER_NONCE: &str = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";

    fn credential(m: ScramMechanism, password: &str, salt: &[u8]) -> ScramCredential {
        let salted = m.salted_password(password.as_bytes(), salt, 4096);
        ScramCredential::from_salted_password(m, salt.to_vec(), 4096, &salted).expect("valid")
    }

    fn rfc_salt() -> Vec<u8> {
        BASE64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").expect("base64")
    }

    /// RFC 7677 section 3, message for message, on both sides.
    #[test]
    fn rfc7677_exchange_for_scram_sha_256() {
        let m = ScramMechanism::Sha256;
        let stored = credential(m, "pencil", &rfc_salt());
        let mut client = ScramClient::with_nonce(m, "user", "pencil", CLIENT_NONCE);
        let mut server = ScramServer::with_nonce(m, SERVER_NONCE);
        let first = client.client_first();
        assert_eq!(first, b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
        let server_first = server
            .client_first(&first, |user| (user == "user").then(|| stored.clone()))
            .expect("known user");
        assert_eq!(
            String::from_utf8_lossy(&server_first),
            "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
        );
        let client_final = client.server_first(&server_first).expect("valid");
        assert_eq!(
            String::from_utf8_lossy(&client_final),
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
             p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        );
        let done = server.client_final(&client_final).expect("the proof holds");
        assert_eq!(done.user, "user");
        assert_eq!(
            String::from_utf8_lossy(&done.server_final),
            "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
        );
        client
            .server_final(&done.server_final)
            .expect("the server proved itself");
    }

    fn exchange(
        m: ScramMechanism,
        name: &str,
        password: &str,
        stored: Option<ScramCredential>,
    ) -> Result<ScramSuccess, SaslError> {
        let mut client = ScramClient::new(m, name, password).expect("client");
        let mut server = ScramServer::new(m);
        let first = server.client_first(&client.client_first(), |_| stored)?;
        let last = client.server_first(&first).expect("client final");
        let done = server.client_final(&last)?;
        client
            .server_final(&done.server_final)
            .expect("server verified");
        Ok(done)
    }

    #[test]
    fn both_mechanisms_accept_the_password_and_refuse_any_other() {
        for m in ScramMechanism::ALL {
            let name = "ali,ce=1";
            let stored = credential(m, "s3cret", b"some salt");
            let done = exchange(m, name, "s3cret", Some(stored.clone())).expect("logged in");
            assert_eq!(done.user, name, "{}: escaped name read back", m.name());
            let wrong = exchange(m, name, "s3cret!", Some(stored)).expect_err("refused");
            assert_eq!(wrong.kind, ServerError::InvalidProof);
            assert_eq!(wrong.user.as_deref(), Some(name));
            assert_eq!(wrong.server_error(), b"e=invalid-proof");
            // An unknown user is refused the same way, at the same step.
            let unknown = exchange(m, "nobody", "s3cret", None).expect_err("refused");
            assert_eq!(unknown.kind, ServerError::InvalidProof);
        }
    }

    #[test]
    fn an_unknown_user_is_challenged_like_a_known_one() {
        let challenge = |m: ScramMechanism, stored: Option<ScramCredential>| {
            let mut server = ScramServer::new(m);
            let first = server
                .client_first(b"n,,n=ghost,r=abc", |_| stored)
                .expect("challenged");
            let text = String::from_utf8(first).expect("text");
            let salt = text.split(",s=").nth(1).and_then(|r| r.split(',').next());
            BASE64.decode(salt.expect("a salt")).expect("base64")
        };
        for m in ScramMechanism::ALL {
            let known = ScramCredential::from_password(m, "pw", 4096).expect("valid");
            let fake = challenge(m, None);
            assert_eq!(fake.len(), challenge(m, Some(known)).len(), "{}", m.name());
            assert_eq!(fake, challenge(m, None), "the same on every attempt");
            assert_ne!(
                fake[..],
                m.hash(b"ghost")[..SALT_BYTES],
                "not computable from the name"
            );
        }
    }

    #[test]
    fn a_credential_of_the_other_mechanism_never_verifies() {
        let stored = credential(ScramMechanism::Sha512, "pw", b"salt");
        let e = exchange(ScramMechanism::Sha256, "u", "pw", Some(stored)).expect_err("refused");
        assert_eq!(e.kind, ServerError::InvalidProof);
    }

    #[test]
    fn malformed_and_replayed_messages_are_refused_with_rfc_5802_errors() {
        let m = ScramMechanism::Sha256;
        let stored = credential(m, "pencil", &rfc_salt());
        let first_of = |message: &[u8]| {
            ScramServer::new(m)
                .client_first(message, |_| Some(stored.clone()))
                .map(|_| ())
                .map_err(|e| e.kind)
        };
        use ServerError::*;
        for (message, kind) in [
            (&b"n,,n=user"[..], InvalidEncoding),
            (b"x,,n=user,r=abc", InvalidEncoding),
            (b"p=tls-unique,,n=user,r=abc", ChannelBindingNotSupported),
            (b"n,,m=ext,n=user,r=abc", ExtensionsNotSupported),
            (b"n,,n=us=er,r=abc", InvalidUsernameEncoding),
            (b"n,,n=,r=abc", InvalidUsernameEncoding),
            (b"n,,n=user,r=a,b", InvalidEncoding),
            (b"n,,n=user,r=abc,tokenauth=true", ExtensionsNotSupported),
            (b"n,a=other,n=user,r=abc", OtherError),
            (b"n,,n=user,r=\xff", InvalidEncoding),
        ] {
            assert_eq!(
                first_of(message),
                Err(kind),
                "{}",
                String::from_utf8_lossy(message)
            );
        }
        let huge = format!("n,,n=user,r={}", "a".repeat(SASL_MESSAGE_BYTES_MAX));
        assert_eq!(first_of(huge.as_bytes()), Err(InvalidEncoding));
        // Extensions other than mandatory ones are ignored, an authzid of the user kept.
        assert_eq!(first_of(b"n,a=user,n=user,r=abc,x=1"), Ok(()));

        // Client-final: a changed nonce, channel binding, or a proof of another exchange.
        let final_of = |edit: &dyn Fn(String) -> String| {
            let mut client = ScramClient::new(m, "user", "pencil").expect("client");
            let mut server = ScramServer::new(m);
            let first = server
                .client_first(&client.client_first(), |_| Some(stored.clone()))
                .expect("first");
            let last =
                String::from_utf8(client.server_first(&first).expect("final")).expect("utf8");
            server
                .client_final(edit(last).as_bytes())
                .map(|_| ())
                .map_err(|e| e.kind)
        };
        assert_eq!(final_of(&|s| s), Ok(()));
        assert_eq!(
            final_of(&|s| s.replace("c=biws", "c=eSws")),
            Err(ChannelBindingsDontMatch)
        );
        assert_eq!(
            final_of(&|s| s.replacen(",r=", ",r=x", 1)),
            Err(InvalidProof)
        );
        assert_eq!(final_of(&|s| s.replace(",p=", ",q=")), Err(InvalidEncoding));
        assert_eq!(final_of(&|s| format!("{s}A")), Err(InvalidEncoding));
        let mut server = ScramServer::new(m);
        assert_eq!(
            server
                .client_final(b"c=biws,r=x,p=AA==")
                .map_err(|e| e.kind),
            Err(OtherError)
        );
        // A server answers each message once.
        let mut client = ScramClient::new(m, "user", "pencil").expect("client");
        let first = client.client_first();
        server
            .client_first(&first, |_| Some(stored.clone()))
            .expect_err("done already");
    }

    #[test]
    fn a_client_refuses_a_server_that_does_not_know_the_credential() {
        let m = ScramMechanism::Sha512;
        let mut client = ScramClient::new(m, "u", "pw").expect("client");
        let mut server = ScramServer::new(m);
        let first = server
            .client_first(&client.client_first(), |_| {
                Some(credential(m, "pw", b"salt"))
            })
            .expect("first");
        let last = client.server_first(&first).expect("final");
        server.client_final(&last).expect("valid");
        let forged = format!("v={}", BASE64.encode([0u8; 64]));
        assert_eq!(
            client.server_final(forged.as_bytes()).map_err(|e| e.kind),
            Err(ServerError::InvalidProof)
        );
        // Nor does it spin on a server asking for a huge iteration count.
        let mut client = ScramClient::new(m, "u", "pw").expect("client");
        let first = String::from_utf8(client.client_first()).expect("utf8");
        let nonce = first.rsplit_once("r=").expect("nonce").1;
        let greedy = format!("r={nonce}xyz,s=c2FsdA==,i=100000000");
        assert!(client.server_first(greedy.as_bytes()).is_err());
    }

    #[test]
    fn plain_messages_parse_within_bounds() {
        let ok = parse_plain(b"\0alice\0pw").expect("valid");
        assert_eq!((ok.authzid, ok.user, ok.password), ("", "alice", "pw"));
        assert_eq!(
            parse_plain(&plain_message("bob", "p w"))
                .expect("valid")
                .password,
            "p w"
        );
        assert!(parse_plain(b"alice\0alice\0pw").is_ok());
        assert!(!format!("{ok:?}").contains("pw"));
        for bad in [
            &b"alice\0pw"[..],
            b"\0\0pw",
            b"\0alice\0",
            b"\0alice\0pw\0more",
            b"bob\0alice\0pw",
            b"\0al\xffice\0pw",
        ] {
            assert!(
                parse_plain(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        let long = plain_message("alice", &"x".repeat(SASL_MESSAGE_BYTES_MAX));
        assert!(parse_plain(&long).is_err());
        assert_eq!(unescape_name("a=2Cb=3Dc").expect("valid"), "a,b=c");
        assert_eq!(escape_name("a,b=c"), "a=2Cb=3Dc");
    }
}
