//! The broker's SNS signing key: every Notification and SubscriptionConfirmation it
//! sends (to HTTP endpoints, and as the envelope of non-raw queue and Kafka deliveries)
//! is signed with it, as SNS signs with AWS's key (`SignatureVersion` 1: SHA1withRSA,
//! 2: SHA256withRSA, RSASSA-PKCS1-v1_5; the string to sign is `envelope`'s).
//!
//! Where the key comes from, read once when the broker starts (before the shards, so
//! `std::fs` is fine here):
//! - `--sns-signing-key` and `--sns-signing-cert` (PEM, PKCS#8 or PKCS#1 key): the
//!   operator's, checked to be one pair; the data directory is not touched.
//! - Else the data directory's `meta/sns-signing-key.pem` and `meta/sns-signing-cert.pem`:
//!   made at the first start (RSA 2048 as SNS's, a self-signed certificate for it made
//!   with rcgen), written atomically (temp file, fsync, rename, fsync of the directory;
//!   the key readable by its owner only), and the same key after every restart. A
//!   certificate file that is missing is made again from the key.
//!
//! What is signed is the operator's choice (`--sns-signing`, `Scope`): every envelope
//! (`all`, the default, as SNS), only what goes to HTTP/HTTPS endpoints (`http`: the
//! documents SNS's verifiers check; queue and Kafka envelopes then carry no signature),
//! or nothing (`off`: no key is loaded or made). A signature costs a quarter of a
//! millisecond of CPU (below), and an enveloped fan-out signs every distinct message.
//!
//! The certificate is served by the HTTP listeners at `cert_path()`,
//! `/SimpleNotificationService-{first 16 bytes of its SHA-256, hex}.pem` (SNS's shape):
//! the path names the certificate, so a verifier that caches certificates by URL (as
//! the SDKs' validators do) never holds a stale one after the key changes.
//!
//! Both versions are signed with AWS-LC (`aws_lc_rsa`): about 0.25 ms of CPU a
//! signature, against 2.7 ms with RustCrypto's `rsa` 0.10 and 0.7 ms with ring, which
//! cannot sign SHA-1 (benches/RESULTS.md, "What one SNS message signature costs"). A key
//! AWS-LC refuses is signed with `rsa` 0.10 instead (constant-time arithmetic: the Marvin
//! timing leak of 0.9 is fixed). A signature costs more than the rest of a delivery, so
//! signing runs on the shard's blocking thread, not on the shard's executor
//! (which would stall every other task for as long), and the fan-out signs each distinct
//! string once (`Signer`'s memo): a message fanned out to many
//! subscriptions with the same Message is signed once (the string to sign leaves out the
//! UnsubscribeURL, the one per-subscription field), also when the deliveries ask for it
//! at the same time (they run concurrently: the later ones wait for the first one's
//! signature instead of each making its own). The blocking thread is the one the
//! shard's few blocking file calls use too: a burst of distinct messages to sign delays
//! those by as long.

use super::aws_lc_rsa::{Hash, RsaKey};
use peregrine_aws_wire::sns::envelope::SignatureVersion;
use rsa::pkcs1::{DecodeRsaPrivateKey, EncodeRsaPrivateKey};
use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey, LineEnding};
use rsa::sha2::{Digest, Sha256};
use rsa::{Pkcs1v15Sign, PrivateKey};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use sha1::Sha1;
use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::rc::Rc;
use std::sync::Arc;

/// Modulus size of a key the broker makes (that of SNS's certificates).
pub const KEY_BITS: usize = 2048;
/// Where the data directory keeps the key and its certificate (under `meta/`).
pub const KEY_FILE: &str = "sns-signing-key.pem";
pub const CERT_FILE: &str = "sns-signing-cert.pem";
/// The subject of a certificate the broker makes.
const CERT_COMMON_NAME: &str = "Peregrine SNS signing";
/// Signatures one `Signer` remembers; past it the memo starts again.
const MEMO_MAX: usize = 4096;
/// The topic attribute that picks the signature version.
pub const SIGNATURE_VERSION: &str = "SignatureVersion";
/// The content type the certificate is served with.
pub const CERT_CONTENT_TYPE: &str = "application/x-pem-file";

/// Which envelopes the broker signs (`--sns-signing`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Scope {
    /// Every Notification and SubscriptionConfirmation, as SNS.
    #[default]
    All,
    /// Only what goes to HTTP/HTTPS subscriptions.
    Http,
    /// Nothing; no key.
    Off,
}

impl Scope {
    /// Whether what a subscription of `protocol` receives is signed.
    pub fn signs(self, protocol: &str) -> bool {
        match self {
            Scope::All => true,
            Scope::Http => crate::sns::http_delivery::is_http(protocol),
            Scope::Off => false,
        }
    }
}

/// The key and its certificate. Read-only after the start; shared by every shard.
pub struct SigningKey {
    key: PrivateKey,
    /// The same key in AWS-LC, which signs both versions; None if AWS-LC refused it.
    fast: Option<RsaKey>,
    cert_pem: String,
    cert_path: String,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the key.
        f.debug_struct("SigningKey")
            .field("cert_path", &self.cert_path)
            .finish_non_exhaustive()
    }
}

impl PartialEq for SigningKey {
    fn eq(&self, other: &SigningKey) -> bool {
        self.cert_pem == other.cert_pem
    }
}

impl Eq for SigningKey {}

impl SigningKey {
    /// The operator's pair (`given`: key file, certificate file), else the data
    /// directory's, made at the first start.
    pub fn load(
        data_dir: &Path,
        given: Option<&(std::path::PathBuf, std::path::PathBuf)>,
    ) -> Result<SigningKey, String> {
        if let Some((key, cert)) = given {
            let key_pem = read(key)?;
            let cert_pem = read(cert)?;
            return SigningKey::from_pems(&key_pem, &cert_pem)
                .map_err(|e| format!("{} and {}: {e}", key.display(), cert.display()));
        }
        let meta = data_dir.join("meta");
        std::fs::create_dir_all(&meta).map_err(|e| format!("{}: {e}", meta.display()))?;
        let (key_file, cert_file) = (meta.join(KEY_FILE), meta.join(CERT_FILE));
        let key_pem = match std::fs::read_to_string(&key_file) {
            Ok(pem) => pem,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let pem = generate_key()?;
                write_durably(&meta, KEY_FILE, &pem, 0o600)?;
                tracing::info!(file = %key_file.display(), "made the SNS signing key");
                pem
            }
            Err(e) => return Err(format!("{}: {e}", key_file.display())),
        };
        let cert_pem = match std::fs::read_to_string(&cert_file) {
            Ok(pem) => pem,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let pem = self_signed(&key_pem)?;
                write_durably(&meta, CERT_FILE, &pem, 0o644)?;
                pem
            }
            Err(e) => return Err(format!("{}: {e}", cert_file.display())),
        };
        SigningKey::from_pems(&key_pem, &cert_pem)
            .map_err(|e| format!("{} and {}: {e}", key_file.display(), cert_file.display()))
    }

    /// A key (PKCS#8 or PKCS#1 PEM) and the certificate (PEM) of its public key.
    pub fn from_pems(key_pem: &str, cert_pem: &str) -> Result<SigningKey, String> {
        let key = PrivateKey::from_pkcs8_pem(key_pem)
            .or_else(|_| PrivateKey::from_pkcs1_pem(key_pem))
            .map_err(|e| format!("not an RSA private key in PEM: {e}"))?;
        let der = CertificateDer::from_pem_slice(cert_pem.as_bytes())
            .map_err(|e| format!("not a PEM certificate: {e}"))?;
        let (_, cert) = x509_parser::parse_x509_certificate(&der)
            .map_err(|e| format!("not an X.509 certificate: {e}"))?;
        let public = key
            .to_public_key()
            .to_public_key_der()
            .map_err(|e| format!("encoding the public key: {e}"))?;
        if cert.tbs_certificate.subject_pki.raw != public.as_bytes() {
            return Err("the certificate is not of this key".into());
        }
        let fingerprint = Sha256::digest(&der[..]);
        let pkcs1 = key
            .to_pkcs1_der()
            .map_err(|e| format!("encoding the RSA key: {e}"))?;
        let fast = match RsaKey::from_pkcs1_der(pkcs1.as_bytes()) {
            Ok(fast) => Some(fast),
            Err(e) => {
                tracing::warn!("{e}: SNS messages are signed with the slower rsa crate");
                None
            }
        };
        Ok(SigningKey {
            key,
            fast,
            cert_pem: cert_pem.to_string(),
            cert_path: format!(
                "/SimpleNotificationService-{}.pem",
                hex::encode(&fingerprint[..16])
            ),
        })
    }

    /// The certificate, PEM, as served at `cert_path`.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// Where the HTTP listeners serve the certificate.
    pub fn cert_path(&self) -> &str {
        &self.cert_path
    }

    /// The RSASSA-PKCS1-v1_5 signature of `digest` (of the text to sign, with
    /// `version`'s hash), base64: AWS-LC's where it took the key, else `rsa`'s (the same
    /// bytes: PKCS#1 v1.5 is deterministic).
    fn sign_digest(&self, version: SignatureVersion, digest: &[u8]) -> Result<String, String> {
        let hash = match version {
            SignatureVersion::V1 => Hash::Sha1,
            SignatureVersion::V2 => Hash::Sha256,
        };
        let signature = match &self.fast {
            Some(fast) => fast.sign(hash, digest)?,
            None => self.sign_digest_rsa(version, digest)?,
        };
        Ok(base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            signature,
        ))
    }

    /// `rsa`'s RSASSA-PKCS1-v1_5 signature of `digest` (of `version`'s hash).
    fn sign_digest_rsa(&self, version: SignatureVersion, digest: &[u8]) -> Result<Vec<u8>, String> {
        let scheme = match version {
            SignatureVersion::V1 => Pkcs1v15Sign::new::<Sha1>(),
            SignatureVersion::V2 => Pkcs1v15Sign::new::<Sha256>(),
        };
        self.key.sign(scheme, digest).map_err(|e| e.to_string())
    }
}

/// `text`'s digest with `version`'s hash: what is signed, and the signature memo's key.
fn digest(version: SignatureVersion, text: &[u8]) -> Vec<u8> {
    match version {
        SignatureVersion::V1 => Sha1::digest(text).to_vec(),
        SignatureVersion::V2 => Sha256::digest(text).to_vec(),
    }
}

/// What one fan-out worker signs with: the key, what it signs, the URL its certificate
/// is served at, and the signatures it made lately. Owned by the worker's shard.
pub struct Signer {
    key: Option<Arc<SigningKey>>,
    scope: Scope,
    cert_url: String,
    /// Signature by version and digest: a signature is a function of the digest alone
    /// (PKCS#1 v1.5 is deterministic), so a hit is the signature signing would make.
    memo: RefCell<HashMap<MemoKey, Memo>>,
    /// Signatures made (not taken from the memo).
    made: std::cell::Cell<u64>,
}

/// A memo entry: a signature made, or one being made (notified when it is).
enum Memo {
    Signed(Arc<str>),
    Signing(Rc<event_listener::Event>),
}

/// A signature version and the digest of a string to sign.
type MemoKey = (SignatureVersion, Vec<u8>);

impl Signer {
    /// `key`: None with `--sns-signing off` (`scope` then signs nothing) and in
    /// configurations no `serve` start loaded (unit tests), whose signed documents carry
    /// empty signatures. `base_url`: the HTTP listener the certificate
    /// is fetched from (`http[s]://host:port`).
    pub fn new(key: Option<Arc<SigningKey>>, scope: Scope, base_url: &str) -> Signer {
        let cert_url = key
            .as_ref()
            .map_or_else(String::new, |k| format!("{base_url}{}", k.cert_path()));
        Signer {
            key,
            scope,
            cert_url,
            memo: RefCell::new(HashMap::new()),
            made: std::cell::Cell::new(0),
        }
    }

    /// Signatures this signer made, memo hits left out.
    pub fn signatures_made(&self) -> u64 {
        self.made.get()
    }

    pub fn cert_url(&self) -> &str {
        &self.cert_url
    }

    /// The signature of what a subscription of `protocol` receives, whose string to
    /// sign is `text()` (not made when unsigned), or None where `--sns-signing` leaves
    /// it unsigned.
    pub async fn sign_for(
        &self,
        protocol: &str,
        version: SignatureVersion,
        text: impl FnOnce() -> String,
    ) -> Option<Arc<str>> {
        if !self.scope.signs(protocol) {
            return None;
        }
        Some(self.sign(version, &text()).await)
    }

    /// The base64 signature of `text` with `version`'s hash (empty, logged, if signing
    /// failed, which a key that loaded does not), made on the shard's blocking thread.
    pub async fn sign(&self, version: SignatureVersion, text: &str) -> Arc<str> {
        let Some(key) = self.key.clone() else {
            return Arc::from("");
        };
        let memo_key = (version, digest(version, text.as_bytes()));
        // Made, being made (wait, then look again), or ours to make.
        let made = loop {
            let listener = match self.memo.borrow().get(&memo_key) {
                Some(Memo::Signed(signature)) => return signature.clone(),
                Some(Memo::Signing(made)) => made.listen(),
                None => break Rc::new(event_listener::Event::new()),
            };
            listener.await;
        };
        {
            let mut memo = self.memo.borrow_mut();
            if memo.len() >= MEMO_MAX {
                memo.retain(|_, m| matches!(m, Memo::Signing(_)));
            }
            memo.insert(memo_key.clone(), Memo::Signing(made.clone()));
        }
        // What is signed is the digest the memo is keyed by: the text is hashed once.
        let to_sign = memo_key.1.clone();
        self.made.set(self.made.get() + 1);
        let signed = crate::runtime::blocking(move || key.sign_digest(version, &to_sign)).await;
        let signature = match signed {
            Ok(s) => {
                let signature: Arc<str> = Arc::from(s);
                let entry = Memo::Signed(signature.clone());
                self.memo.borrow_mut().insert(memo_key, entry);
                signature
            }
            Err(e) => {
                // The waiters try for themselves.
                tracing::error!("signing an SNS message: {e}");
                self.memo.borrow_mut().remove(&memo_key);
                Arc::from("")
            }
        };
        made.notify(usize::MAX);
        signature
    }
}

/// The signature version of a topic's messages (its attribute; SNS's default, 1).
pub fn version_of(topic: &crate::engine::SnsTopicMeta) -> SignatureVersion {
    topic
        .attributes
        .get(SIGNATURE_VERSION)
        .and_then(|v| SignatureVersion::from_name(v))
        .unwrap_or_default()
}

fn read(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))
}

/// A new RSA key, PKCS#8 PEM.
fn generate_key() -> Result<String, String> {
    let key = PrivateKey::new(&mut getrandom::SysRng, KEY_BITS)
        .map_err(|e| format!("making an RSA key: {e}"))?;
    let pem = key
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|e| format!("encoding the RSA key: {e}"))?;
    Ok(pem.to_string())
}

/// A self-signed certificate (PEM) for the key (PKCS#8 PEM).
fn self_signed(key_pem: &str) -> Result<String, String> {
    let err = |e: rcgen::Error| format!("making the signing certificate: {e}");
    let pair = rcgen::KeyPair::from_pkcs8_pem_and_sign_algo(key_pem, &rcgen::PKCS_RSA_SHA256)
        .map_err(err)?;
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).map_err(err)?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, CERT_COMMON_NAME);
    Ok(params.self_signed(&pair).map_err(err)?.pem())
}

/// Writes `dir/name` so that a crash leaves the old file or the whole new one.
fn write_durably(dir: &Path, name: &str, text: &str, mode: u32) -> Result<(), String> {
    let path = dir.join(name);
    peregrine_shards::replace_file::replace(&path, text.as_bytes(), mode)
        .map_err(|e| format!("writing {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rsa::pkcs1v15::{Signature, VerifyingKey};
    use rsa::signature::Verifier as _;

    fn verifies(key: &SigningKey, version: SignatureVersion, text: &str, b64: &str) -> bool {
        let bytes = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, b64)
            .expect("base64");
        let Ok(signature) = Signature::try_from(&bytes[..]) else {
            return false;
        };
        let public = key.key.to_public_key();
        match version {
            SignatureVersion::V1 => VerifyingKey::<Sha1>::new(public)
                .verify(text.as_bytes(), &signature)
                .is_ok(),
            SignatureVersion::V2 => VerifyingKey::<Sha256>::new(public)
                .verify(text.as_bytes(), &signature)
                .is_ok(),
        }
    }

    #[test]
    fn the_key_is_made_once_kept_and_signs_both_versions() {
        let dir = tempfile::tempdir().expect("dir");
        let key = SigningKey::load(dir.path(), None).expect("made");
        let again = SigningKey::load(dir.path(), None).expect("loaded");
        assert_eq!(key, again, "the same certificate after a restart");
        assert_eq!(key.key, again.key, "and the same key");
        assert!(key.fast.is_some(), "AWS-LC takes a key the broker makes");
        assert!(key.cert_path().starts_with("/SimpleNotificationService-"));
        assert!(key.cert_path().ends_with(".pem") && key.cert_path().len() == 63);
        let mode = std::fs::metadata(dir.path().join("meta").join(KEY_FILE))
            .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o777);
        assert_eq!(mode.ok(), Some(0o600));
        // A missing certificate is made again, for the same key.
        std::fs::remove_file(dir.path().join("meta").join(CERT_FILE)).expect("rm");
        let remade = SigningKey::load(dir.path(), None).expect("remade");
        assert_eq!(remade.key, key.key);

        let key = Arc::new(key);
        let signer = Signer::new(Some(key.clone()), Scope::All, "https://127.0.0.1:1");
        assert!(signer
            .cert_url()
            .starts_with("https://127.0.0.1:1/SimpleNotificationService-"));
        // Signing runs on the blocking thread of a glommio executor; a signer belongs to
        // one shard's thread.
        let executor = glommio::LocalExecutorBuilder::default()
            .spawn(move || async move {
                let signer = Signer::new(Some(key.clone()), Scope::All, "https://127.0.0.1:1");
                for version in [SignatureVersion::V1, SignatureVersion::V2] {
                    let signature = signer.sign(version, "Message\nhi\n").await;
                    assert!(verifies(&key, version, "Message\nhi\n", &signature));
                    assert!(!verifies(&key, version, "Message\nho\n", &signature));
                    let again = signer.sign(version, "Message\nhi\n").await;
                    assert_eq!(again, signature, "memo");
                }
                // Asked for at once, one text is signed once: the others wait for it.
                let before = signer.signatures_made();
                let text = "Message\nthe same to three subscriptions\n";
                let ((a, b), c) = futures_lite::future::zip(
                    futures_lite::future::zip(
                        signer.sign(SignatureVersion::V1, text),
                        signer.sign(SignatureVersion::V1, text),
                    ),
                    signer.sign(SignatureVersion::V1, text),
                )
                .await;
                assert!(a == b && b == c && verifies(&key, SignatureVersion::V1, text, &a));
                assert_eq!(signer.signatures_made(), before + 1, "signed once");
                let v1 = signer.sign(SignatureVersion::V1, "x").await;
                assert!(!verifies(&key, SignatureVersion::V2, "x", &v1));
                // AWS-LC's version 2 signature is the one `rsa` makes.
                let v2 = signer.sign(SignatureVersion::V2, "x").await;
                let by_rsa = key
                    .sign_digest_rsa(SignatureVersion::V2, &Sha256::digest(b"x"))
                    .expect("rsa");
                let by_rsa =
                    base64::Engine::encode(&base64::engine::general_purpose::STANDARD, by_rsa);
                assert_eq!(&*v2, by_rsa.as_str());
            })
            .expect("executor");
        executor.join().expect("signed");
    }

    #[test]
    fn a_given_pair_must_match() {
        let (a, b) = (
            tempfile::tempdir().expect("a"),
            tempfile::tempdir().expect("b"),
        );
        SigningKey::load(a.path(), None).expect("a");
        SigningKey::load(b.path(), None).expect("b");
        let file = |d: &tempfile::TempDir, f: &str| d.path().join("meta").join(f);
        let mine = (file(&a, KEY_FILE), file(&a, CERT_FILE));
        let loaded = SigningKey::load(Path::new("/nonexistent"), Some(&mine)).expect("a pair");
        assert!(loaded.cert_pem().contains("BEGIN CERTIFICATE"));
        let mixed = (file(&a, KEY_FILE), file(&b, CERT_FILE));
        let e = SigningKey::load(Path::new("/nonexistent"), Some(&mixed)).err();
        assert!(e.is_some_and(|e| e.contains("not of this key")));
        let swapped = (file(&a, CERT_FILE), file(&a, KEY_FILE));
        assert!(SigningKey::load(Path::new("/nonexistent"), Some(&swapped)).is_err());
    }

    #[test]
    fn the_scope_names_what_is_signed() {
        for protocol in ["http", "https", "sqs", "kafka"] {
            assert!(Scope::All.signs(protocol));
            assert_eq!(Scope::Http.signs(protocol), protocol.starts_with("http"));
            assert!(!Scope::Off.signs(protocol));
        }
    }

    /// Not a check: what one signature costs (benches/RESULTS.md), as the broker signs
    /// (both versions with AWS-LC) and version 1 with `rsa`, the fallback, for
    /// comparison. Run with
    /// `cargo test --lib sns::signing::tests::signing_cost -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn signing_cost() {
        let dir = tempfile::tempdir().expect("dir");
        let key = SigningKey::load(dir.path(), None).expect("made");
        assert!(key.fast.is_some(), "AWS-LC takes the key");
        const N: u32 = 100;
        let time = |sign: &dyn Fn(&[u8])| {
            let started = std::time::Instant::now();
            for i in 0..N {
                sign(format!("Message\n{i}\n").as_bytes());
            }
            started.elapsed().as_micros() / u128::from(N)
        };
        for round in 1..=5 {
            let v1 = time(&|t| {
                key.sign_digest(SignatureVersion::V1, &digest(SignatureVersion::V1, t))
                    .expect("v1");
            });
            let v2 = time(&|t| {
                key.sign_digest(SignatureVersion::V2, &digest(SignatureVersion::V2, t))
                    .expect("v2");
            });
            let v1_rsa = time(&|t| {
                key.sign_digest_rsa(SignatureVersion::V1, &Sha1::digest(t))
                    .expect("v1 rsa");
            });
            println!(
                "round {round}: SignatureVersion 1 (AWS-LC) {v1} µs, 2 (AWS-LC) {v2} µs, \
                 1 (rsa) {v1_rsa} µs a signature"
            );
        }
    }

    /// PKCS#1 v1.5 is deterministic: AWS-LC's signatures are `rsa`'s, byte for byte,
    /// for both versions (and so verify as the fallback's do).
    #[test]
    fn aws_lc_signs_the_same_bytes_as_the_rsa_crate() {
        let dir = tempfile::tempdir().expect("dir");
        let key = SigningKey::load(dir.path(), None).expect("made");
        let fast = key.fast.as_ref().expect("AWS-LC takes the key");
        let text = b"Message\nhello\nMessageId\n1\n";
        let v1 = Sha1::digest(text);
        let v2 = Sha256::digest(text);
        assert_eq!(
            fast.sign(Hash::Sha1, &v1).expect("v1"),
            key.sign_digest_rsa(SignatureVersion::V1, &v1)
                .expect("v1 rsa")
        );
        assert_eq!(
            fast.sign(Hash::Sha256, &v2).expect("v2"),
            key.sign_digest_rsa(SignatureVersion::V2, &v2)
                .expect("v2 rsa")
        );
        assert!(
            fast.sign(Hash::Sha256, &v1).is_err(),
            "a digest of the wrong size"
        );
    }
}
