//! Delivery to an `http://` endpoint: one POST over the shard's own TCP, its answer's
//! status read with `httparse` from a bounded head under a timeout (2xx: delivered),
//! and the retry schedule of SNS's `DeliveryPolicy.healthyRetryPolicy`.

use std::fmt;

/// Longest host name in an endpoint URL (DNS's limit).
const HOST_MAX: usize = 253;

/// An `http://host[:port][/path]` endpoint, split for a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
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
        let Some(rest) = url.strip_prefix("http://") else {
            return err("an http endpoint starts with http://");
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
            _ => (authority, 80),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() || host.len() > HOST_MAX || port == 0 {
            return err("the URL names no host or port");
        }
        Ok(Url {
            host: host.to_string(),
            port,
            path,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        for bad in [
            "https://h/",
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
