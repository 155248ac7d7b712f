//! Delivery to an `http://` or `https://` endpoint: one POST over the shard's own TCP
//! (TLS by rustls for https, the certificate checked against `trust`'s CAs and the URL's
//! host), its answer's status read with `httparse` from a bounded head under a timeout
//! (2xx: delivered), and the retry schedule of SNS's `DeliveryPolicy.healthyRetryPolicy`.

use crate::runtime;
use futures_lite::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use rustls::pki_types::ServerName;
use std::fmt;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

/// Longest host name in an endpoint URL (DNS's limit).
const HOST_MAX: usize = 253;

/// An `http[s]://host[:port][/path]` endpoint, split for a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    /// `https://`: the request goes over TLS.
    pub tls: bool,
    pub host: String,
    pub port: u16,
    /// Starts with `/`; the query string included.
    pub path: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlError(String);

impl fmt::Display for UrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Url {
    pub fn parse(url: &str) -> Result<Url, UrlError> {
        let err = |m: &str| Err(UrlError(m.to_string()));
        let (tls, rest, default_port) = if let Some(rest) = url.strip_prefix("http://") {
            (false, rest, 80)
        } else if let Some(rest) = url.strip_prefix("https://") {
            (true, rest, 443)
        } else {
            return err("an endpoint starts with http:// or https://");
        };
        if url.bytes().any(|b| b.is_ascii_control() || b == b' ') {
            return err("the URL holds spaces or control characters");
        }
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) if rest.as_bytes()[i] == b'?' => (&rest[..i], format!("/{}", &rest[i..])),
            Some(i) => (&rest[..i], rest[i..].to_string()),
            None => (rest, "/".to_string()),
        };
        if authority.contains('@') {
            return err("user information in the URL is not supported");
        }
        let (host, port) = match authority.rsplit_once(':') {
            Some((host, port)) if !host.ends_with(']') || host.starts_with('[') => {
                let Ok(port) = port.parse::<u16>() else {
                    return err("the port is not a number from 1 to 65535");
                };
                (host, port)
            }
            _ => (authority, default_port),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() || host.len() > HOST_MAX || port == 0 {
            return err("the URL names no host or port");
        }
        Ok(Url {
            tls,
            host: host.to_string(),
            port,
            path,
        })
    }
}

/// Whether subscriptions of `protocol` are delivered here (`http` or `https`).
pub fn is_http(protocol: &str) -> bool {
    protocol == "http" || protocol == "https"
}

/// How long one attempt may take, connection to status line (AWS waits 15 s).
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(15);
/// Most bytes of an answer read to find its status (the head, not the body).
const RESPONSE_HEAD_MAX: usize = 8 * 1024;

/// Why an attempt did not deliver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PostError {
    /// The host would not resolve, connect, take the request, or answer in time.
    Network(String),
    /// The endpoint answered a status outside 2xx.
    Status(u16),
}

impl fmt::Display for PostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PostError::Network(m) => write!(f, "{m}"),
            PostError::Status(s) => write!(f, "answered HTTP {s}"),
        }
    }
}

/// One POST of `body` to `url` with `headers`, within `timeout`: `Ok` on a 2xx answer.
/// An https URL's certificate must chain to a CA of `tls` (`trust::client_config`).
pub async fn post(
    url: &Url,
    tls: Option<&Arc<rustls::ClientConfig>>,
    headers: &[(&str, &str)],
    body: &str,
    timeout: Duration,
) -> Result<(), PostError> {
    let attempt = attempt(url, tls, headers, body);
    let late = async {
        runtime::sleep(timeout).await;
        Err(PostError::Network(format!("no answer within {timeout:?}")))
    };
    futures_lite::future::or(attempt, late).await
}

fn net(what: &str, e: std::io::Error) -> PostError {
    PostError::Network(format!("{what}: {e}"))
}

async fn attempt(
    url: &Url,
    tls: Option<&Arc<rustls::ClientConfig>>,
    headers: &[(&str, &str)],
    body: &str,
) -> Result<(), PostError> {
    let addr = resolve(url).await?;
    let tcp = runtime::TcpStream::connect(addr)
        .await
        .map_err(|e| net("connecting", e.into()))?;
    if !url.tls {
        return exchange(tcp, url, headers, body).await;
    }
    let Some(config) = tls else {
        return Err(PostError::Network("no TLS client configuration".into()));
    };
    let name = ServerName::try_from(url.host.clone())
        .map_err(|_| PostError::Network(format!("'{}' is not a TLS server name", url.host)))?;
    let stream = futures_rustls::TlsConnector::from(config.clone())
        .connect(name, tcp)
        .await
        .map_err(|e| net("TLS handshake", e))?;
    exchange(stream, url, headers, body).await
}

/// The request and its answer's status, over a connected (plaintext or TLS) stream.
async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    url: &Url,
    headers: &[(&str, &str)],
    body: &str,
) -> Result<(), PostError> {
    let request = request_head(url, headers, body.len());
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| net("sending", e))?;
    stream
        .write_all(body.as_bytes())
        .await
        .map_err(|e| net("sending", e))?;
    stream.flush().await.map_err(|e| net("sending", e))?;
    let mut head = vec![0u8; RESPONSE_HEAD_MAX];
    let mut filled = 0;
    loop {
        let n = stream
            .read(&mut head[filled..])
            .await
            .map_err(|e| net("reading the answer", e))?;
        if n == 0 && filled == 0 {
            return Err(PostError::Network("closed without an answer".into()));
        }
        filled += n;
        match status_of(&head[..filled]) {
            Some(Ok(status)) if (200..300).contains(&status) => return Ok(()),
            Some(Ok(status)) => return Err(PostError::Status(status)),
            Some(Err(why)) => return Err(PostError::Network(why)),
            None if n == 0 || filled == head.len() => {
                return Err(PostError::Network("no status line in the answer".into()))
            }
            None => {}
        }
    }
}

/// The status of an answer whose first bytes are `head`; `None` while incomplete.
fn status_of(head: &[u8]) -> Option<Result<u16, String>> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut response = httparse::Response::new(&mut headers);
    match response.parse(head) {
        Ok(httparse::Status::Complete(_)) => response.code.map(Ok),
        // The status line is all we need; the headers may still be arriving.
        Ok(httparse::Status::Partial) => response.code.map(Ok),
        Err(e) => Some(Err(format!("a malformed answer: {e}"))),
    }
}

async fn resolve(url: &Url) -> Result<SocketAddr, PostError> {
    if let Ok(ip) = url.host.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, url.port));
    }
    // Name lookups block: they run on the shard's blocking thread.
    let (host, port) = (url.host.clone(), url.port);
    let found = runtime::blocking(move || (host.as_str(), port).to_socket_addrs()).await;
    found
        .map_err(|e| PostError::Network(format!("resolving {}: {e}", url.host)))?
        .next()
        .ok_or_else(|| PostError::Network(format!("{} has no address", url.host)))
}

fn request_head(url: &Url, headers: &[(&str, &str)], body_len: usize) -> String {
    let mut head = format!(
        "POST {} HTTP/1.1\r\nHost: {}:{}\r\nContent-Type: text/plain; charset=UTF-8\r\n\
         Content-Length: {body_len}\r\nConnection: close\r\n\
         User-Agent: Amazon Simple Notification Service Agent\r\n",
        url.path, url.host, url.port
    );
    for (name, value) in headers {
        head.push_str(name);
        head.push_str(": ");
        head.push_str(value);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    head
}

/// Most retries a policy may ask for, and the longest delay (AWS's limits).
pub const RETRIES_MAX: u32 = 100;
pub const DELAY_S_MAX: u32 = 3600;

/// How the delays of the backoff phase grow from the smallest to the largest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backoff {
    Linear,
    Arithmetic,
    Geometric,
    Exponential,
}

/// SNS's `healthyRetryPolicy`: after a failed attempt, `no_delay` retries at once, then
/// `min_delay_retries` after `min_delay_s`, then the backoff phase (what is left of
/// `retries` past the other phases) growing from `min_delay_s` to `max_delay_s`, then
/// `max_delay_retries` after `max_delay_s`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub retries: u32,
    pub min_delay_s: u32,
    pub max_delay_s: u32,
    pub no_delay: u32,
    pub min_delay_retries: u32,
    pub max_delay_retries: u32,
    pub backoff: Backoff,
}

impl Default for RetryPolicy {
    /// SNS's default for HTTP endpoints: 3 retries, 20 s apart.
    fn default() -> RetryPolicy {
        RetryPolicy {
            retries: 3,
            min_delay_s: 20,
            max_delay_s: 20,
            no_delay: 0,
            min_delay_retries: 0,
            max_delay_retries: 0,
            backoff: Backoff::Linear,
        }
    }
}

impl RetryPolicy {
    /// The policy of a subscription: its own `DeliveryPolicy.healthyRetryPolicy`, else
    /// the topic's `DeliveryPolicy.http.defaultHealthyRetryPolicy`, else the default.
    /// Fields missing or out of range take their default, clamped to AWS's limits.
    pub fn of(subscription: Option<&str>, topic: Option<&str>) -> RetryPolicy {
        let parse =
            |text: Option<&str>| -> Option<serde_json::Value> { serde_json::from_str(text?).ok() };
        let own = parse(subscription).and_then(|v| v.get("healthyRetryPolicy").cloned());
        let inherited =
            || parse(topic).and_then(|v| v.get("http")?.get("defaultHealthyRetryPolicy").cloned());
        match own.or_else(inherited) {
            Some(policy) => RetryPolicy::from_json(&policy),
            None => RetryPolicy::default(),
        }
    }

    fn from_json(v: &serde_json::Value) -> RetryPolicy {
        let d = RetryPolicy::default();
        let num = |key: &str, default: u32, max: u32| {
            v.get(key)
                .and_then(serde_json::Value::as_u64)
                .map_or(default, |n| n.min(u64::from(max)) as u32)
        };
        let min_delay_s = num("minDelayTarget", d.min_delay_s, DELAY_S_MAX);
        let backoff = match v.get("backoffFunction").and_then(|b| b.as_str()) {
            Some("arithmetic") => Backoff::Arithmetic,
            Some("geometric") => Backoff::Geometric,
            Some("exponential") => Backoff::Exponential,
            _ => Backoff::Linear,
        };
        RetryPolicy {
            retries: num("numRetries", d.retries, RETRIES_MAX),
            min_delay_s,
            max_delay_s: num("maxDelayTarget", d.max_delay_s, DELAY_S_MAX).max(min_delay_s),
            no_delay: num("numNoDelayRetries", 0, RETRIES_MAX),
            min_delay_retries: num("numMinDelayRetries", 0, RETRIES_MAX),
            max_delay_retries: num("numMaxDelayRetries", 0, RETRIES_MAX),
            backoff,
        }
    }

    /// The wait before each retry, in order (`retries` of them).
    pub fn delays(&self) -> Vec<Duration> {
        let secs = |s: f64| Duration::from_millis((s * 1000.0).round() as u64);
        let (min, max) = (f64::from(self.min_delay_s), f64::from(self.max_delay_s));
        let mut left = self.retries;
        let mut out = Vec::with_capacity(self.retries as usize);
        let take = |n: u32, left: &mut u32, out: &mut Vec<Duration>, d: Duration| {
            let n = n.min(*left);
            *left -= n;
            out.extend(std::iter::repeat_n(d, n as usize));
        };
        take(self.no_delay, &mut left, &mut out, Duration::ZERO);
        take(self.min_delay_retries, &mut left, &mut out, secs(min));
        let backoff = left.saturating_sub(self.max_delay_retries);
        for i in 1..=backoff {
            let t = f64::from(i) / f64::from(backoff);
            let s = match self.backoff {
                Backoff::Linear => min + (max - min) * t,
                Backoff::Arithmetic => min + (max - min) * t * t,
                Backoff::Geometric => min + (max - min) * t * t * t,
                Backoff::Exponential => min * (max / min.max(1.0)).powf(t),
            };
            out.push(secs(s.clamp(min, max)));
        }
        left -= backoff;
        out.extend(std::iter::repeat_n(secs(max), left as usize));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_policy_is_three_retries_twenty_seconds_apart() {
        let d = RetryPolicy::of(None, None).delays();
        assert_eq!(d, vec![Duration::from_secs(20); 3]);
    }

    #[test]
    fn a_policy_runs_its_phases_in_order() {
        let sub = r#"{"healthyRetryPolicy":{"numRetries":8,"numNoDelayRetries":2,
            "numMinDelayRetries":1,"numMaxDelayRetries":2,"minDelayTarget":1,
            "maxDelayTarget":4,"backoffFunction":"linear"}}"#;
        let secs: Vec<f64> = RetryPolicy::of(Some(sub), None)
            .delays()
            .iter()
            .map(Duration::as_secs_f64)
            .collect();
        // 2 at once, 1 after the minimum, 3 growing to the maximum, 2 at the maximum.
        assert_eq!(secs, [0.0, 0.0, 1.0, 2.0, 3.0, 4.0, 4.0, 4.0]);
        let exp = r#"{"healthyRetryPolicy":{"numRetries":3,"minDelayTarget":1,
            "maxDelayTarget":8,"backoffFunction":"exponential"}}"#;
        let secs: Vec<u64> = RetryPolicy::of(Some(exp), None)
            .delays()
            .iter()
            .map(Duration::as_secs)
            .collect();
        assert_eq!(secs, [2, 4, 8]);
    }

    #[test]
    fn a_topic_policy_applies_when_the_subscription_has_none_and_limits_hold() {
        let topic = r#"{"http":{"defaultHealthyRetryPolicy":{"numRetries":1000,
            "minDelayTarget":0,"maxDelayTarget":99999}}}"#;
        let p = RetryPolicy::of(Some("not json"), Some(topic));
        assert_eq!(
            (p.retries, p.min_delay_s, p.max_delay_s),
            (RETRIES_MAX, 0, DELAY_S_MAX)
        );
        assert_eq!(p.delays().len(), RETRIES_MAX as usize);
        assert!(p
            .delays()
            .iter()
            .all(|d| d.as_secs() <= u64::from(DELAY_S_MAX)));
    }

    #[test]
    fn the_status_comes_from_the_first_line_and_junk_is_an_error() {
        assert_eq!(status_of(b"HTTP/1.1 204 No Content\r\n"), Some(Ok(204)));
        assert_eq!(
            status_of(b"HTTP/1.1 500 Oops\r\nA: b\r\n\r\n"),
            Some(Ok(500))
        );
        assert_eq!(status_of(b"HTTP/1.1 2"), None);
        assert!(matches!(status_of(b"garbage\r\n\r\n"), Some(Err(_))));
    }

    #[test]
    fn urls_split_into_host_port_and_path() {
        let u = Url::parse("http://127.0.0.1:8080/hook?x=1").expect("valid");
        assert_eq!(
            (u.host.as_str(), u.port, u.path.as_str()),
            ("127.0.0.1", 8080, "/hook?x=1")
        );
        let u = Url::parse("http://example.com").expect("valid");
        assert_eq!(
            (u.host.as_str(), u.port, u.path.as_str()),
            ("example.com", 80, "/")
        );
        let u = Url::parse("http://[::1]:9/").expect("valid");
        assert_eq!((u.host.as_str(), u.port), ("::1", 9));
        let u = Url::parse("https://example.com/hook").expect("valid");
        assert_eq!((u.tls, u.port, u.path.as_str()), (true, 443, "/hook"));
        assert!(!Url::parse("http://h/").expect("valid").tls);
        for bad in [
            "ftp://h/",
            "https://",
            "http://",
            "http://h:0/",
            "http://h:x/",
            "http://u@h/",
            "http://h/a b",
        ] {
            assert!(Url::parse(bad).is_err(), "{bad}");
        }
    }
}
