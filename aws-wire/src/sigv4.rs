//! Verification of AWS Signature Version 4 (the `Authorization: AWS4-HMAC-SHA256 …`
//! header every AWS SDK signs its requests with), for `serve --http-auth`.
//!
//! The signing algorithm is the `aws-sigv4` crate's (AWS's own, used by the Rust SDK),
//! not ours: from the received method, path and query, the headers the client says it
//! signed and the body, it rebuilds the canonical request and signs it with the
//! configured secret of the request's access key, at the request's own date, region
//! and service; the result is compared with the client's signature in constant time.
//! A request more than `SKEW_MAX` away from our clock is refused (replay bound), as AWS
//! does. Not served: presigned URLs (`X-Amz-Signature` in the query string), SigV2,
//! SigV4a; they are refused as unsigned.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;

use crate::xml::Xml;

/// The only algorithm served.
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// Largest difference between the request's X-Amz-Date and our clock (AWS's).
pub const SKEW_MAX: Duration = Duration::from_secs(15 * 60);

/// A received request, as the HTTP front end has it.
#[derive(Debug, Clone, Copy)]
pub struct SignedRequest<'a> {
    pub method: &'a str,
    /// The request target as sent: path and query string (`/?Action=…`).
    pub target: &'a str,
    /// Every header, names as sent (case does not matter), values raw.
    pub headers: &'a [(&'a str, &'a [u8])],
    pub body: &'a [u8],
}

/// Why a request is refused. Each has the code AWS answers and botocore knows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No Authorization header (or only a form the broker does not verify).
    #[error("Request is missing Authentication Token ({0})")]
    Missing(&'static str),
    /// An Authorization header that cannot be read.
    #[error("{0}")]
    Incomplete(String),
    /// An access key that is not configured.
    #[error("The security token included in the request is invalid.")]
    UnknownKey,
    #[error("The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method.")]
    BadSignature,
    #[error("Signature not yet current or expired: request time {request}, server time {server} (at most 15 minutes apart).")]
    Skewed { request: String, server: String },
    /// Too many failed signatures from the client's address: refused unchecked for now.
    #[error("Too many requests with a wrong signature or unknown key came from this address; try again in a minute.")]
    Throttled,
}

impl AuthError {
    /// The error code (query `<Code>`, JSON `__type` name).
    pub fn code(&self) -> &'static str {
        match self {
            AuthError::Missing(_) => "MissingAuthenticationToken",
            AuthError::Incomplete(_) => "IncompleteSignature",
            AuthError::UnknownKey => "InvalidClientTokenId",
            AuthError::BadSignature => "SignatureDoesNotMatch",
            AuthError::Skewed { .. } => "RequestTimeTooSkewed",
            AuthError::Throttled => "Throttling",
        }
    }

    pub fn status(&self) -> u16 {
        match self {
            AuthError::Incomplete(_) | AuthError::Throttled => 400,
            _ => 403,
        }
    }

    /// The query protocol's error document (SQS's and SNS's shape; `namespace` is the
    /// service's).
    pub fn query_body(&self, namespace: &str, request_id: &str) -> Vec<u8> {
        let mut x = Xml::new();
        x.open_ns("ErrorResponse", namespace)
            .open("Error")
            .leaf("Type", "Sender")
            .leaf("Code", self.code())
            .leaf("Message", &self.to_string())
            .close()
            .leaf("RequestId", request_id)
            .close();
        x.finish()
    }

    /// The JSON 1.0 protocol's error body; send `query_error_header` with it.
    pub fn json_body(&self) -> Vec<u8> {
        let body = serde_json::json!({
            "__type": format!("com.amazon.coral.service#{}", self.code()),
            "message": self.to_string(),
        });
        body.to_string().into_bytes()
    }

    /// `x-amzn-query-error`'s value, which botocore's JSON clients take the code from.
    pub fn query_error_header(&self) -> String {
        format!("{};Sender", self.code())
    }
}

/// The parts of an Authorization header.
#[derive(Debug, PartialEq, Eq)]
struct Authorization<'a> {
    access_key: &'a str,
    date: &'a str,
    region: &'a str,
    service: &'a str,
    signed_headers: Vec<&'a str>,
    signature: &'a str,
}

/// Checks `req`'s signature; `keys` gives the secret of an access key id, `now` is our
/// clock.
pub fn verify(
    req: &SignedRequest<'_>,
    keys: &dyn Fn(&str) -> Option<String>,
    now: SystemTime,
) -> Result<(), AuthError> {
    let Some(raw) = header(req, "authorization") else {
        let presigned = req.target.contains("X-Amz-Signature=");
        return Err(AuthError::Missing(if presigned {
            "presigned URLs are not supported: sign the request's headers"
        } else {
            "no Authorization header"
        }));
    };
    let text = std::str::from_utf8(raw)
        .map_err(|_| AuthError::Incomplete("The Authorization header is not UTF-8.".into()))?;
    let auth = parse_authorization(text)?;
    // aws-sigv4 panics when it signs `host` for a request with neither a Host header
    // nor an authority in its target, and on a target that is not a path (found by the
    // `sigv4` fuzz target).
    if header(req, "host").is_none() {
        return Err(AuthError::Incomplete(
            "The request has no Host header, which must be signed.".into(),
        ));
    }
    if !req.target.starts_with('/') {
        return Err(AuthError::Incomplete(
            "The request target is not a path.".into(),
        ));
    }
    let date = header(req, "x-amz-date")
        .and_then(|d| std::str::from_utf8(d).ok())
        .ok_or_else(|| {
            AuthError::Incomplete("The request must carry an X-Amz-Date header.".into())
        })?;
    let time = parse_amz_date(date).ok_or_else(|| {
        AuthError::Incomplete(format!(
            "X-Amz-Date {date:?} is not of the form 20150830T123600Z."
        ))
    })?;
    check_skew(time, now)?;
    if !date.starts_with(auth.date) {
        return Err(AuthError::BadSignature);
    }
    let secret = keys(auth.access_key).ok_or(AuthError::UnknownKey)?;
    let expected = signature(req, &auth, &secret, time)?;
    if constant_time_eq(expected.as_bytes(), auth.signature.as_bytes()) {
        Ok(())
    } else {
        Err(AuthError::BadSignature)
    }
}

fn header<'a>(req: &SignedRequest<'a>, name: &str) -> Option<&'a [u8]> {
    req.headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| *v)
}

fn parse_authorization(header: &str) -> Result<Authorization<'_>, AuthError> {
    let incomplete = |why: &str| {
        AuthError::Incomplete(format!(
            "Authorization header requires Credential, SignedHeaders and Signature ({why})."
        ))
    };
    let Some(rest) = header.trim().strip_prefix(ALGORITHM) else {
        return Err(AuthError::Missing(
            "only AWS4-HMAC-SHA256 signatures are verified",
        ));
    };
    let (mut credential, mut signed, mut signature) = (None, None, None);
    for part in rest.split(',') {
        let (key, value) = part
            .trim()
            .split_once('=')
            .ok_or_else(|| incomplete("a part is not key=value"))?;
        let slot = match key {
            "Credential" => &mut credential,
            "SignedHeaders" => &mut signed,
            "Signature" => &mut signature,
            _ => return Err(incomplete("an unknown part")),
        };
        if slot.replace(value).is_some() {
            return Err(incomplete("a part is repeated"));
        }
    }
    let (Some(credential), Some(signed), Some(signature)) = (credential, signed, signature) else {
        return Err(incomplete("a part is missing"));
    };
    let scope: Vec<&str> = credential.split('/').collect();
    let [access_key, date, region, service, "aws4_request"] = scope[..] else {
        return Err(incomplete(
            "the Credential is not KEY/DATE/REGION/SERVICE/aws4_request",
        ));
    };
    let signed_headers: Vec<&str> = signed.split(';').collect();
    if !signed_headers.contains(&"host") {
        return Err(incomplete("the Host header must be signed"));
    }
    let ok = !access_key.is_empty()
        && date.len() == 8
        && date.bytes().all(|b| b.is_ascii_digit())
        && !region.is_empty()
        && !service.is_empty()
        && signature.len() == 64
        && signature.bytes().all(|b| b.is_ascii_hexdigit());
    if !ok {
        return Err(incomplete("a part is malformed"));
    }
    Ok(Authorization {
        access_key,
        date,
        region,
        service,
        signed_headers,
        signature,
    })
}

/// The signature the client should have sent, as `aws-sigv4` computes it.
fn signature(
    req: &SignedRequest<'_>,
    auth: &Authorization<'_>,
    secret: &str,
    time: SystemTime,
) -> Result<String, AuthError> {
    let mut headers = Vec::with_capacity(auth.signed_headers.len());
    for (name, value) in req.headers {
        if auth
            .signed_headers
            .iter()
            .any(|s| name.eq_ignore_ascii_case(s))
        {
            let value = std::str::from_utf8(value).map_err(|_| AuthError::BadSignature)?;
            headers.push((*name, value));
        }
    }
    let unsigned = header(req, "x-amz-content-sha256") == Some(b"UNSIGNED-PAYLOAD".as_slice());
    let body = if unsigned {
        SignableBody::UnsignedPayload
    } else {
        SignableBody::Bytes(req.body)
    };
    let signable = SignableRequest::new(req.method, req.target, headers.into_iter(), body)
        .map_err(|_| AuthError::BadSignature)?;
    let identity: Identity =
        Credentials::new(auth.access_key, secret, None, None, "peregrine").into();
    let mut settings = SigningSettings::default();
    // Sign exactly what the client listed (the default leaves out user-agent, which
    // some SDKs sign).
    settings.excluded_headers = None;
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(auth.region)
        .name(auth.service)
        .time(time)
        .settings(settings)
        .build()
        .map_err(|_| AuthError::BadSignature)?
        .into();
    // A panic in aws-sigv4 on an input the checks above do not foresee refuses the
    // request instead of killing the shard thread.
    let signed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| sign(signable, &params)));
    let output = match signed {
        Ok(Ok(output)) => output,
        Ok(Err(_)) | Err(_) => return Err(AuthError::BadSignature),
    };
    Ok(output.signature().to_owned())
}

fn check_skew(request: SystemTime, now: SystemTime) -> Result<(), AuthError> {
    let apart = match now.duration_since(request) {
        Ok(d) => d,
        Err(e) => e.duration(),
    };
    if apart <= SKEW_MAX {
        return Ok(());
    }
    Err(AuthError::Skewed {
        request: amz_date(request),
        server: amz_date(now),
    })
}

/// `20150830T123600Z` as a time (public for the `sigv4` fuzz target, which verifies
/// at each request's own date).
pub fn parse_amz_date(text: &str) -> Option<SystemTime> {
    let b = text.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let num = |range: std::ops::Range<usize>| -> Option<i64> {
        let part = text.get(range)?;
        part.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    let (year, month, day) = (num(0..4)?, num(4..6)?, num(6..8)?);
    let (hour, minute, second) = (num(9..11)?, num(11..13)?, num(13..15)?);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let secs = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second;
    let secs = u64::try_from(secs).ok()?;
    UNIX_EPOCH.checked_add(Duration::from_secs(secs))
}

/// A time as X-Amz-Date writes it (for messages).
fn amz_date(time: SystemTime) -> String {
    let secs = time
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let iso = crate::sns::envelope::timestamp(secs.saturating_mul(1000));
    // 2015-08-30T12:36:00.000Z → 20150830T123600Z
    let digits: String = iso[..19]
        .chars()
        .filter(|c| c.is_ascii_digit() || *c == 'T')
        .collect();
    format!("{digits}Z")
}

/// Days from 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Equal, in time independent of where they differ (no early exit on a signature
/// prefix an attacker could grow byte by byte).
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A raw request: `METHOD TARGET [HTTP/1.1]`, `Name:value` lines, a blank line, the
    /// body (the AWS test suite's `header-signed-request.txt` and our captures).
    struct Raw {
        method: String,
        target: String,
        headers: Vec<(String, Vec<u8>)>,
        body: Vec<u8>,
    }

    impl Raw {
        fn parse(text: &str) -> Raw {
            let text = text.replace("\r\n", "\n");
            let (head, body) = text.split_once("\n\n").unwrap_or((&text, ""));
            let mut lines = head.lines();
            let first: Vec<&str> = lines.next().unwrap_or("").split(' ').collect();
            let headers = lines
                .map(|l| {
                    let (k, v) = l.split_once(':').unwrap_or((l, ""));
                    (k.to_string(), v.trim().as_bytes().to_vec())
                })
                .collect();
            Raw {
                method: first[0].to_string(),
                target: first[1].to_string(),
                headers,
                body: body.trim_end_matches('\n').as_bytes().to_vec(),
            }
        }

        fn fixture(name: &str) -> Raw {
            let path = format!("{}/testdata/sigv4/{name}.http", env!("CARGO_MANIFEST_DIR"));
            Raw::parse(&std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}")))
        }

        fn set(&mut self, name: &str, value: &str) {
            for (k, v) in &mut self.headers {
                if k.eq_ignore_ascii_case(name) {
                    *v = value.as_bytes().to_vec();
                }
            }
        }

        fn verify(&self, key: &str, secret: &str, skew: i64) -> Result<(), AuthError> {
            let headers: Vec<(&str, &[u8])> = self
                .headers
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_slice()))
                .collect();
            let req = SignedRequest {
                method: &self.method,
                target: &self.target,
                headers: &headers,
                body: &self.body,
            };
            let date = header(&req, "x-amz-date")
                .and_then(|d| std::str::from_utf8(d).ok())
                .and_then(parse_amz_date)
                .unwrap_or(UNIX_EPOCH);
            let now = if skew >= 0 {
                date + Duration::from_secs(skew as u64)
            } else {
                date - Duration::from_secs(skew.unsigned_abs())
            };
            let (key, secret) = (key.to_string(), secret.to_string());
            verify(&req, &move |k| (k == key).then(|| secret.clone()), now)
        }
    }

    const SUITE_KEY: &str = "AKIDEXAMPLE";
    const SUITE_SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

    /// From the AWS SigV4 test suite (aws-signing-test-suite/v4/*/header-signed-request.txt).
    const SUITE: &[(&str, &str)] = &[
        ("get-vanilla", "GET / HTTP/1.1\nHost:example.amazonaws.com\nX-Amz-Date:20150830T123600Z\nAuthorization:AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31\n\n"),
        ("get-vanilla-query-order-key-case", "GET /?Param2=value2&Param1=value1 HTTP/1.1\nHost:example.amazonaws.com\nX-Amz-Date:20150830T123600Z\nAuthorization:AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500\n\n"),
        ("post-header-key-case", "POST / HTTP/1.1\nHost:example.amazonaws.com\nX-Amz-Date:20150830T123600Z\nAuthorization:AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b\n\n"),
        ("post-x-www-form-urlencoded", "POST / HTTP/1.1\nContent-Type:application/x-www-form-urlencoded\nHost:example.amazonaws.com\nContent-Length:13\nX-Amz-Date:20150830T123600Z\nx-amz-content-sha256:9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e\nAuthorization:AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=content-length;content-type;host;x-amz-content-sha256;x-amz-date, Signature=d3875051da38690788ef43de4db0d8f280229d82040bfac253562e56c3f20e0b\n\nParam1=value1"),
    ];

    #[test]
    fn a_request_signing_host_without_a_host_header_is_incomplete() {
        let mut raw = Raw::parse(SUITE[0].1);
        raw.headers.retain(|(k, _)| !k.eq_ignore_ascii_case("host"));
        assert!(matches!(
            raw.verify(SUITE_KEY, SUITE_SECRET, 0),
            Err(AuthError::Incomplete(_))
        ));
    }

    #[test]
    fn a_request_whose_target_is_not_a_path_is_incomplete() {
        for target in ["'", "*", "http://example.amazonaws.com/"] {
            let mut raw = Raw::parse(SUITE[0].1);
            raw.target = target.into();
            assert!(
                matches!(
                    raw.verify(SUITE_KEY, SUITE_SECRET, 0),
                    Err(AuthError::Incomplete(_))
                ),
                "{target}"
            );
        }
    }

    #[test]
    fn the_aws_test_suite_verifies() {
        for (name, text) in SUITE {
            let raw = Raw::parse(text);
            assert_eq!(raw.verify(SUITE_KEY, SUITE_SECRET, 0), Ok(()), "{name}");
            assert_eq!(
                raw.verify(SUITE_KEY, "other", 0),
                Err(AuthError::BadSignature),
                "{name}"
            );
        }
        let mut form = Raw::parse(SUITE[3].1);
        form.body = b"Param1=value2".to_vec();
        assert_eq!(
            form.verify(SUITE_KEY, SUITE_SECRET, 0),
            Err(AuthError::BadSignature)
        );
    }

    const KEY: &str = "AKIDPEREGRINE";
    const SECRET: &str = "peregrine/secret+key";
    const CAPTURES: [&str; 4] = [
        "sqs-json-1.43.11",
        "sns-query-1.43.11",
        "sqs-query-1.34.89",
        "sns-query-1.34.89",
    ];

    #[test]
    fn requests_botocore_signed_verify_and_tampering_does_not() {
        for name in CAPTURES {
            let raw = Raw::fixture(name);
            assert_eq!(raw.verify(KEY, SECRET, 0), Ok(()), "{name}");
            assert_eq!(
                raw.verify(KEY, "peregrine/secret+kez", 0),
                Err(AuthError::BadSignature),
                "{name}"
            );
            assert_eq!(
                raw.verify("AKIDOTHER", SECRET, 0),
                Err(AuthError::UnknownKey),
                "{name}"
            );
            let mut body = Raw::fixture(name);
            body.body.push(b' ');
            assert_eq!(
                body.verify(KEY, SECRET, 0),
                Err(AuthError::BadSignature),
                "{name}"
            );
            let mut signed = Raw::fixture(name);
            signed.set("content-type", "text/plain");
            assert_eq!(
                signed.verify(KEY, SECRET, 0),
                Err(AuthError::BadSignature),
                "{name}"
            );
            let mut path = Raw::fixture(name);
            path.target = "/000000000000/orders".into();
            assert_eq!(
                path.verify(KEY, SECRET, 0),
                Err(AuthError::BadSignature),
                "{name}"
            );
            // Headers the client did not sign may change on the way.
            let mut unsigned = Raw::fixture(name);
            unsigned.set("user-agent", "proxy");
            unsigned.set("amz-sdk-request", "attempt=2");
            assert_eq!(unsigned.verify(KEY, SECRET, 0), Ok(()), "{name}");
        }
        let mut target = Raw::fixture("sqs-json-1.43.11");
        target.set("x-amz-target", "AmazonSQS.DeleteQueue");
        assert_eq!(target.verify(KEY, SECRET, 0), Err(AuthError::BadSignature));
    }

    #[test]
    fn clocks_may_differ_by_15_minutes() {
        let raw = Raw::fixture("sqs-json-1.43.11");
        for ok in [-900, -899, 0, 899, 900] {
            assert_eq!(raw.verify(KEY, SECRET, ok), Ok(()), "{ok}");
        }
        for skewed in [-901, 901, 86_400] {
            let e = raw.verify(KEY, SECRET, skewed).expect_err("skewed");
            assert_eq!(e.code(), "RequestTimeTooSkewed", "{skewed}");
        }
        // Checked before the key: an old request says nothing about keys.
        let e = raw.verify("AKIDOTHER", SECRET, 901).expect_err("skewed");
        assert_eq!(e.code(), "RequestTimeTooSkewed");
    }

    #[test]
    fn unsigned_and_unreadable_requests() {
        let mut raw = Raw::fixture("sns-query-1.43.11");
        raw.headers
            .retain(|(k, _)| !k.eq_ignore_ascii_case("authorization"));
        assert!(matches!(
            raw.verify(KEY, SECRET, 0),
            Err(AuthError::Missing(_))
        ));
        raw.target = "/?X-Amz-Signature=abc".into();
        let e = raw.verify(KEY, SECRET, 0).expect_err("presigned");
        assert!(e.to_string().contains("presigned"), "{e}");
        let good = "AWS4-HMAC-SHA256 Credential=AKIDPEREGRINE/20261203/eu-west-3/sns/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature=";
        let sig = "0".repeat(64);
        let cases = [
            (
                format!("AWS AKIDPEREGRINE:{sig}"),
                "MissingAuthenticationToken",
            ),
            (format!("{good}{}", "0".repeat(63)), "IncompleteSignature"),
            (format!("{good}{}", "g".repeat(64)), "IncompleteSignature"),
            (
                good.replace("aws4_request", "aws5_request") + &sig,
                "IncompleteSignature",
            ),
            (good.replace("host;", "") + &sig, "IncompleteSignature"),
            (
                good.replace("/20261203/", "/2026120/") + &sig,
                "IncompleteSignature",
            ),
            (
                good.replace("SignedHeaders", "Signed") + &sig,
                "IncompleteSignature",
            ),
            (
                format!("{good}{sig}, Signature={sig}"),
                "IncompleteSignature",
            ),
            ("AWS4-HMAC-SHA256".to_string(), "IncompleteSignature"),
            (format!("{good}{sig}"), "SignatureDoesNotMatch"),
            (
                good.replace("/20261203/", "/20261202/") + &sig,
                "SignatureDoesNotMatch",
            ),
        ];
        for (authorization, code) in cases {
            let mut raw = Raw::fixture("sns-query-1.43.11");
            raw.set("authorization", &authorization);
            let e = raw.verify(KEY, SECRET, 0).expect_err(&authorization);
            assert_eq!(e.code(), code, "{authorization}");
        }
        let mut no_date = Raw::fixture("sns-query-1.43.11");
        no_date
            .headers
            .retain(|(k, _)| !k.eq_ignore_ascii_case("x-amz-date"));
        assert_eq!(
            no_date.verify(KEY, SECRET, 0).map_err(|e| e.code()),
            Err("IncompleteSignature")
        );
        let mut bad_date = Raw::fixture("sns-query-1.43.11");
        bad_date.set("x-amz-date", "2026-12-03T21:47:05Z");
        assert_eq!(
            bad_date.verify(KEY, SECRET, 0).map_err(|e| e.code()),
            Err("IncompleteSignature")
        );
        let mut binary = Raw::fixture("sns-query-1.43.11");
        binary.set("content-type", "\u{fffd}");
        binary.headers[0].1 = vec![0xff];
        assert!(binary.verify(KEY, SECRET, 0).is_err());
    }

    #[test]
    fn amz_dates_read_and_write() {
        let t = parse_amz_date("20150830T123600Z").expect("valid");
        assert_eq!(
            t.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).ok(),
            Some(1_440_938_160)
        );
        assert_eq!(amz_date(t), "20150830T123600Z");
        assert_eq!(
            parse_amz_date("20000229T000000Z").map(amz_date).as_deref(),
            Some("20000229T000000Z")
        );
        for bad in [
            "",
            "20150830T123600",
            "20151330T123600Z",
            "2015083OT123600Z",
            "20150830 123600Z",
            "20150830T246000Z",
            "+0150830T123600Z",
        ] {
            assert_eq!(parse_amz_date(bad), None, "{bad}");
        }
    }

    #[test]
    fn errors_in_both_shapes() {
        let e = AuthError::BadSignature;
        assert_eq!((e.code(), e.status()), ("SignatureDoesNotMatch", 403));
        assert_eq!(AuthError::Incomplete("x".into()).status(), 400);
        let xml = String::from_utf8(e.query_body("http://ns/", "req")).expect("utf-8");
        assert!(xml.contains("<ErrorResponse xmlns=\"http://ns/\"><Error><Type>Sender</Type><Code>SignatureDoesNotMatch</Code><Message>The request signature we calculated"), "{xml}");
        assert!(xml.ends_with("<RequestId>req</RequestId></ErrorResponse>"));
        let json: serde_json::Value =
            serde_json::from_slice(&AuthError::UnknownKey.json_body()).expect("JSON");
        assert_eq!(
            json["__type"],
            "com.amazon.coral.service#InvalidClientTokenId"
        );
        assert_eq!(
            AuthError::UnknownKey.query_error_header(),
            "InvalidClientTokenId;Sender"
        );
        assert!(
            constant_time_eq(b"ab", b"ab")
                && !constant_time_eq(b"ab", b"ac")
                && !constant_time_eq(b"a", b"ab")
        );
    }
}
