//! The HTTP front end (`serve --http-addr`): the operator's `/metrics`, `/healthz` and
//! `/readyz`, the SQS and SNS APIs (`sqs`, `sns`), and the certificate SNS messages are
//! signed with (`GET` of its `SigningCertURL` path, `sns::signing`; open, as SNS's).
//!
//! Every shard listens on the HTTP address (SO_REUSEPORT, as for the other protocols),
//! and any shard can answer any route: the metrics of every shard are atomics and
//! snapshots the scraping shard reads without a cross-core call (`crate::metrics`).
//! That keeps one code path for the SQS API, which must run on every shard like the
//! other front ends, and no single shard pays for every scrape.
//!
//! The stack: HTTP/1.1 parsed with `httparse` under a connection loop of ours on the
//! shard's glommio `TcpStream`. Why not hyper 1.x: hyper needs an executor and timer
//! adapter for glommio and `Send`-free bodies plumbing; its HTTP/1 server would be one
//! more layer between our bounds and the socket, while what the broker serves (small
//! bounded requests, answers built in memory, keep-alive, pipelining) is a short loop
//! whose every bound is visible here. `httparse` is the parser hyper itself uses, so
//! the wire parsing is the well-fuzzed part; the loop only frames requests by
//! `Content-Length`. Chunked request bodies and `Expect: 100-continue` are not
//! supported yet (501 and 417), which SQS/SNS clients do not need.
//!
//! Bounds (per connection unless said): request head `HEAD_BYTES_MAX` and
//! `HEADERS_MAX` headers (431 over them), body `BODY_BYTES_MAX` (413), the whole
//! request within `REQUEST_TIMEOUT` of its first byte (408), `IDLE_TIMEOUT` between
//! keep-alive requests, and `CONNECTIONS_MAX` connections per shard (503 beyond).
//! A malformed request gets 400 and the connection is closed.
//!
//! Routing: a request an SQS client sends (`sqs::accepts`: a POST with `X-Amz-Target:
//! AmazonSQS.*`, a form POST, or `Action=` in the query string, on any path, since
//! query clients post to the queue's URL) goes to `sqs::serve`, unless it is a query
//! request whose `Action` is SNS's (`sns::accepts`), which goes to `sns::serve`; every
//! other request to the operator routes, exactly as before the SQS API existed (so a
//! plain `POST /metrics` is still 405). Such an AWS request is first checked by `auth`
//! (its SigV4 signature, which names the caller ACLs see) and refused there if it fails.
//!
//! Placement: a plaintext connection whose SQS request named a queue another shard owns
//! moves to that shard after the answer, once (`handoff`), so that its next requests
//! run where the queue lives instead of hopping there and back.

pub mod auth;
#[doc(hidden)]
pub mod fuzzing;
mod handoff;
pub mod sns;
pub mod sqs;

use crate::engine::Engine;
use crate::metrics::{render, Metrics};
use crate::runtime;
use crate::server::stream::{read_some, write_all, Stream};
use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// `serve --http-addr`'s default: loopback, next to the usual Prometheus exporter ports
/// and clear of the native (7070 + shards) and Kafka (9092 + 1 + shards) ports.
pub const HTTP_ADDR_DEFAULT: &str = "127.0.0.1:8080";
/// Largest request head (request line and headers).
pub const HEAD_BYTES_MAX: usize = 16 << 10;
/// Most headers in one request.
pub const HEADERS_MAX: usize = 64;
/// Largest request body (SQS's largest message is 256 KiB, base64 in a form or JSON).
pub const BODY_BYTES_MAX: usize = 1 << 20;
/// Open HTTP connections per shard; more are answered 503 and closed.
pub const CONNECTIONS_MAX: usize = 256;
/// How long a keep-alive connection may wait for its next request.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a request may take to arrive once its first byte has.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a scrape waits for every shard to refresh its rows; a shard too busy to
/// answer in time is reported with the rows it gathered for an earlier scrape.
const SCRAPE_REFRESH_WAIT: Duration = Duration::from_millis(500);
const SCRAPE_REFRESH_POLL: Duration = Duration::from_millis(5);
/// Bytes read from the socket at a time.
const READ_CHUNK_BYTES: usize = 4096;
/// The answer buffer a connection starts with: a batch answer of ten SQS messages and
/// its head fit.
const ANSWER_BYTES_TYPICAL: usize = 8 << 10;
/// Largest answer buffer a connection keeps between answers.
const ANSWER_BYTES_KEPT: usize = 64 << 10;

thread_local! {
    /// Open HTTP connections on this shard.
    static OPEN: Rc<Cell<usize>> = Rc::new(Cell::new(0));
}

/// What a connection past `--max-connections` is told before it is closed.
pub fn refusal() -> Vec<u8> {
    let body = "too many HTTP connections (--max-connections)\n";
    format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Serves one HTTP connection (keep-alive) until it closes, idles out or the shard
/// stops; on this shard, or on the shard that owns the queue it uses (`handoff`).
pub async fn serve(engine: Engine, stream: Stream) {
    if !has_room() {
        let answer = Answer::fatal(503, "too many HTTP connections\n");
        let _ = write_answer(&stream, &mut Vec::new(), answer, false).await;
        return;
    }
    let Some(conn) = Connection::new(engine, &stream, false) else {
        return;
    };
    conn.serve(stream, Vec::with_capacity(READ_CHUNK_BYTES))
        .await
}

/// Whether this shard may open one more HTTP connection (`CONNECTIONS_MAX`).
fn has_room() -> bool {
    OPEN.with(|open| open.get() < CONNECTIONS_MAX)
}

/// One HTTP connection's state, on the shard that serves it.
struct Connection {
    engine: Engine,
    metrics: Arc<Metrics>,
    open: Rc<Cell<usize>>,
    /// Came in on a TLS listener: SQS queue URLs handed out say `https`.
    tls: bool,
    peer: Option<std::net::IpAddr>,
    /// The subject of the client's verified TLS certificate (mTLS).
    certificate: Option<String>,
    /// Came here from its accepting shard, or was refused by the shard it was offered
    /// to: it moves no more (`handoff`).
    moved: bool,
}

/// An answer: status, extra headers, body.
struct Answer {
    status: u16,
    content_type: &'static str,
    /// Extra headers: name and value (the SQS and SNS answers' own are moved in as
    /// they are, not rebuilt).
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
    /// Close the connection after this answer.
    close: bool,
    /// The shard that owns the queue the request named (SQS requests only).
    queue_owner: Option<u32>,
}

impl Answer {
    fn text(status: u16, body: &str) -> Answer {
        Answer {
            status,
            content_type: "text/plain; charset=utf-8",
            headers: Vec::new(),
            body: body.as_bytes().to_vec(),
            close: false,
            queue_owner: None,
        }
    }

    /// An error after which the request stream cannot be trusted: close.
    fn fatal(status: u16, body: &str) -> Answer {
        Answer {
            close: true,
            ..Answer::text(status, body)
        }
    }
}

/// A request head, parsed: where its parts lie in the connection's buffer (read with
/// `Head::text` from the head's bytes), so that parsing copies nothing.
struct Head {
    method: Span,
    /// The request target as sent: path and query string.
    path: Span,
    /// `X-Amz-Target` (AWS JSON protocols name the action there).
    target: Option<Span>,
    content_type: Option<Span>,
    /// `Host`: how the client reached us (SQS queue URLs are built from it).
    host: Option<Span>,
    /// Bytes of the head, body not included.
    len: usize,
    body_len: usize,
    keep_alive: bool,
}

/// A part of a request head: its byte range in the head, always valid UTF-8.
type Span = std::ops::Range<usize>;

impl Head {
    /// The text of `span` in `raw` (this head's bytes).
    fn text<'a>(raw: &'a [u8], span: &Span) -> &'a str {
        // `parse_head` only records UTF-8 ranges of these very bytes.
        raw.get(span.clone())
            .and_then(|b| std::str::from_utf8(b).ok())
            .unwrap_or("")
    }

    fn is_head_method(&self, raw: &[u8]) -> bool {
        Head::text(raw, &self.method) == "HEAD"
    }
}

/// Why reading the next request stopped.
enum Stop {
    /// Clean end: the peer closed between requests, idled out, or the shard stops.
    Quiet,
    /// Answer this, then close.
    Refuse(Answer),
}

impl Connection {
    /// `None` on a thread without metrics (not a shard).
    fn new(engine: Engine, stream: &Stream, moved: bool) -> Option<Connection> {
        let Some(metrics) = crate::metrics::local::registry() else {
            tracing::error!("HTTP connection on a thread without metrics");
            return None;
        };
        Some(Connection {
            engine,
            metrics,
            open: OPEN.with(Rc::clone),
            tls: stream.is_tls(),
            peer: stream.peer_addr().map(|a| a.ip()),
            certificate: stream.principal().map(str::to_string),
            moved,
        })
    }

    /// Serves `stream` (`buf`: bytes read from it already) until it ends here or on the
    /// shard it moves to. The caller checked `has_room`.
    async fn serve(mut self, mut stream: Stream, mut buf: Vec<u8>) {
        // Every answer is written from this one buffer (its head and body together).
        let mut out = Vec::with_capacity(ANSWER_BYTES_TYPICAL);
        loop {
            self.open.set(self.open.get() + 1);
            let move_to = self.serve_requests(&stream, &mut buf, &mut out).await;
            self.open.set(self.open.get() - 1);
            let Some(owner) = move_to else {
                return;
            };
            self.moved = true;
            match handoff::move_to(&self.engine, owner, stream, buf).await {
                handoff::Moved::Away => return,
                handoff::Moved::Back(back, rest) => (stream, buf) = (back, rest),
            }
        }
    }

    /// Answers requests until the connection ends (`None`) or should move to the shard
    /// that owns the queue its last request named (`Some(owner)`, see `handoff`).
    async fn serve_requests(
        &self,
        stream: &Stream,
        buf: &mut Vec<u8>,
        out: &mut Vec<u8>,
    ) -> Option<u32> {
        loop {
            // Pipelined requests answered here never wait: the shard's other
            // connections get their turn here.
            runtime::yield_if_needed().await;
            let head = match self.next_request(stream, buf).await {
                Ok(head) => head,
                Err(Stop::Quiet) => return None,
                Err(Stop::Refuse(answer)) => {
                    let _ = write_answer(stream, out, answer, false).await;
                    return None;
                }
            };
            let raw_head = &buf[..head.len];
            let body = &buf[head.len..head.len + head.body_len];
            let mut answer = self.route(&head, raw_head, body).await;
            answer.close |= !head.keep_alive;
            let close = answer.close;
            let queue_owner = answer.queue_owner;
            let head_only = head.is_head_method(raw_head);
            if let Err(e) = write_answer(stream, out, answer, head_only).await {
                tracing::debug!("HTTP write failed: {e}");
                return None;
            }
            buf.drain(..head.len + head.body_len);
            if close {
                return None;
            }
            if let Some(owner) = queue_owner.filter(|&owner| self.may_move_to(owner)) {
                return Some(owner);
            }
        }
    }

    /// Whether the connection should move to `owner` (see `handoff`).
    fn may_move_to(&self, owner: u32) -> bool {
        !self.moved && !self.tls && owner != self.engine.shard_id()
    }

    /// Reads until `buf` holds a whole request (head and body) and parses its head.
    async fn next_request(&self, stream: &Stream, buf: &mut Vec<u8>) -> Result<Head, Stop> {
        let mut started = (!buf.is_empty()).then(Instant::now);
        let head = loop {
            if let Some(head) = parse_head(buf)? {
                break head;
            }
            let deadline = match started {
                Some(t) => t + REQUEST_TIMEOUT,
                None => Instant::now() + IDLE_TIMEOUT,
            };
            self.read_more(stream, buf, deadline, started.is_some())
                .await?;
            started.get_or_insert_with(Instant::now);
        };
        let deadline = started.unwrap_or_else(Instant::now) + REQUEST_TIMEOUT;
        while buf.len() < head.len + head.body_len {
            self.read_more(stream, buf, deadline, true).await?;
        }
        Ok(head)
    }

    /// Appends what the peer sends next; `Stop` at its end, the deadline or shutdown.
    async fn read_more(
        &self,
        stream: &Stream,
        buf: &mut Vec<u8>,
        deadline: Instant,
        mid_request: bool,
    ) -> Result<(), Stop> {
        let mut chunk = [0u8; READ_CHUNK_BYTES];
        let wait = deadline.saturating_duration_since(Instant::now());
        let read =
            futures_lite::future::or(async { Some(read_some(stream, &mut chunk).await) }, async {
                futures_lite::future::or(runtime::sleep(wait), self.engine.shutdown().wait()).await;
                None
            })
            .await;
        match read {
            Some(Ok(n)) if n > 0 => {
                buf.extend_from_slice(&chunk[..n]);
                Ok(())
            }
            Some(Ok(_)) | Some(Err(_)) => Err(Stop::Quiet),
            None if mid_request && !self.engine.shutdown().is_triggered() => Err(Stop::Refuse(
                Answer::fatal(408, "request not received in time\n"),
            )),
            None => Err(Stop::Quiet),
        }
    }

    async fn route(&self, head: &Head, raw_head: &[u8], body: &[u8]) -> Answer {
        let peer = auth::Peer {
            addr: self.peer,
            tls: self.tls,
            certificate: self.certificate.as_deref(),
        };
        let text = |span: &Span| Head::text(raw_head, span);
        let method = text(&head.method);
        let target = head.target.as_ref().map(text);
        let caller = match auth::authenticate(&self.engine, &peer, method, raw_head, body) {
            Ok(caller) => caller,
            Err(refusal) => return sqs_answer(refusal, None),
        };
        let request_target = text(&head.path);
        let (path, query) = request_target
            .split_once('?')
            .unwrap_or((request_target, ""));
        let content_type = head.content_type.as_ref().map(text);
        if let Some(protocol) = sqs::accepts(method, target, content_type, query) {
            // SNS speaks SQS's query protocol: its requests are told apart by the Action.
            if protocol == sqs::Protocol::Query && sns::accepts(query, body) {
                let request = sns::SnsHttp {
                    query,
                    body,
                    caller: &caller,
                };
                return sqs_answer(sns::serve(&self.engine, request).await, None);
            }
            let request = sqs::SqsHttp {
                protocol,
                path,
                query,
                host: head.host.as_ref().map(text),
                tls: self.tls,
                target,
                body,
                caller: &caller,
            };
            let served = sqs::serve(&self.engine, request).await;
            return sqs_answer(served.encoded, served.queue_owner);
        }
        let signing = self.engine.config().sqs.sns_signing.as_deref();
        let certificate = signing.filter(|key| key.cert_path() == path);
        if certificate.is_none() && !matches!(path, "/metrics" | "/healthz" | "/readyz") {
            return Answer::text(404, "not found (try /metrics, /healthz or /readyz)\n");
        }
        if method != "GET" && method != "HEAD" {
            return Answer {
                headers: vec![("Allow", "GET, HEAD".to_string())],
                ..Answer::text(405, "method not allowed\n")
            };
        }
        if let Some(key) = certificate {
            return Answer {
                content_type: crate::sns::signing::CERT_CONTENT_TYPE,
                body: key.cert_pem().as_bytes().to_vec(),
                ..Answer::text(200, "")
            };
        }
        match path {
            "/healthz" => Answer::text(200, "ok\n"),
            "/readyz" if self.metrics.is_ready() => Answer::text(200, "ready\n"),
            "/readyz" => Answer::text(503, "starting\n"),
            _ if !auth::metrics_admitted(&self.engine, raw_head) => Answer {
                headers: vec![(
                    "WWW-Authenticate",
                    "Bearer realm=\"peregrine metrics\"".to_string(),
                )],
                ..Answer::text(
                    401,
                    "/metrics needs its bearer token (--metrics-token-file)\n",
                )
            },
            _ => self.scrape().await,
        }
    }

    async fn scrape(&self) -> Answer {
        let generation = self.metrics.request_refresh();
        let deadline = Instant::now() + SCRAPE_REFRESH_WAIT;
        while !self.metrics.refreshed_to(generation) && Instant::now() < deadline {
            runtime::sleep(SCRAPE_REFRESH_POLL).await;
        }
        match render::page(&self.metrics) {
            Ok(page) => Answer {
                content_type: render::CONTENT_TYPE,
                body: page.into_bytes(),
                ..Answer::text(200, "")
            },
            Err(e) => Answer::text(500, &format!("rendering metrics failed: {e}\n")),
        }
    }
}

/// An SQS or SNS answer (both are `aws_wire::sqs::Encoded`) as the connection writes it.
fn sqs_answer(encoded: sqs::Encoded, queue_owner: Option<u32>) -> Answer {
    Answer {
        status: encoded.status,
        content_type: encoded.content_type,
        headers: encoded.headers,
        body: encoded.body,
        close: false,
        queue_owner,
    }
}

/// The head of the request at the start of `buf`, `None` while it is incomplete, or
/// the answer that refuses it.
fn parse_head(buf: &[u8]) -> Result<Option<Head>, Stop> {
    let mut headers = [httparse::EMPTY_HEADER; HEADERS_MAX];
    let mut req = httparse::Request::new(&mut headers);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() >= HEAD_BYTES_MAX => {
            return Err(Stop::Refuse(Answer::fatal(431, "request head too large\n")))
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(Stop::Refuse(Answer::fatal(
                431,
                "too many request headers\n",
            )))
        }
        Err(e) => {
            return Err(Stop::Refuse(Answer::fatal(
                400,
                &format!("bad request: {e}\n"),
            )))
        }
    };
    if len > HEAD_BYTES_MAX {
        return Err(Stop::Refuse(Answer::fatal(431, "request head too large\n")));
    }
    // Where a part httparse returned lies in `buf` (it borrows from it); an empty part
    // (or, never, one from elsewhere) is the empty span.
    let base = buf.as_ptr() as usize;
    let span = |part: &str| -> Span {
        let start = (part.as_ptr() as usize).wrapping_sub(base);
        match start.checked_add(part.len()) {
            Some(end) if !part.is_empty() && end <= buf.len() => start..end,
            _ => 0..0,
        }
    };
    let version = req.version.unwrap_or(0);
    let mut keep_alive = version >= 1;
    let mut body_len = 0usize;
    let (mut target, mut content_type, mut host) = (None, None, None);
    for h in req.headers.iter() {
        let value = std::str::from_utf8(h.value).unwrap_or("").trim();
        // A value that is not UTF-8 reads as empty.
        if h.name.eq_ignore_ascii_case("x-amz-target") {
            target = Some(span(value));
        } else if h.name.eq_ignore_ascii_case("content-type") {
            content_type = Some(span(value));
        } else if h.name.eq_ignore_ascii_case("host") {
            host = Some(span(value));
        } else if h.name.eq_ignore_ascii_case("content-length") {
            body_len = match value.parse::<usize>() {
                Ok(n) if n <= BODY_BYTES_MAX => n,
                Ok(_) => return Err(Stop::Refuse(Answer::fatal(413, "request body too large\n"))),
                Err(_) => return Err(Stop::Refuse(Answer::fatal(400, "bad Content-Length\n"))),
            };
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            let answer = Answer::fatal(501, "chunked request bodies are not supported\n");
            return Err(Stop::Refuse(answer));
        } else if h.name.eq_ignore_ascii_case("expect") {
            return Err(Stop::Refuse(Answer::fatal(
                417,
                "Expect is not supported\n",
            )));
        } else if h.name.eq_ignore_ascii_case("connection") {
            let value = value.to_ascii_lowercase();
            if value.split(',').any(|t| t.trim() == "close") {
                keep_alive = false;
            } else if value.split(',').any(|t| t.trim() == "keep-alive") {
                keep_alive = true;
            }
        }
    }
    Ok(Some(Head {
        method: span(req.method.unwrap_or("")),
        path: span(req.path.unwrap_or("")),
        target,
        content_type,
        host,
        len,
        body_len,
        keep_alive,
    }))
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Content Too Large",
        417 => "Expectation Failed",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

/// Writes `answer` through `out`, a buffer the connection keeps (cleared here), so that
/// an answer's head and body go out in one write without an allocation of their own.
async fn write_answer(
    stream: &Stream,
    out: &mut Vec<u8>,
    answer: Answer,
    head_only: bool,
) -> std::io::Result<()> {
    use std::io::Write as _;
    let connection = if answer.close { "close" } else { "keep-alive" };
    out.clear();
    // Writing into a Vec cannot fail.
    let _ = write!(
        out,
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: {connection}\r\n",
        answer.status,
        reason(answer.status),
        answer.content_type,
        answer.body.len(),
    );
    for (name, value) in &answer.headers {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    if !head_only {
        out.extend_from_slice(&answer.body);
    }
    let written = write_all(stream, out).await;
    // A large answer (a /metrics page) does not stay pinned in the connection.
    if out.capacity() > ANSWER_BYTES_KEPT {
        *out = Vec::with_capacity(ANSWER_BYTES_TYPICAL);
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(raw: &str) -> Result<Option<Head>, u16> {
        parse_head(raw.as_bytes()).map_err(|stop| match stop {
            Stop::Refuse(a) => a.status,
            Stop::Quiet => 0,
        })
    }

    #[test]
    fn a_whole_head_is_framed_by_its_content_length() {
        let raw = "POST /q?a=b HTTP/1.1\r\nHost: h:1\r\nX-Amz-Target:  AmazonSQS.ListQueues \r\nContent-Length: 5\r\n\r\nhello";
        let head = parsed(raw).ok().flatten();
        let text = |span: &Span| Head::text(raw.as_bytes(), span).to_string();
        let head = head.map(|h| {
            let parts = (text(&h.method), text(&h.path), h.target.as_ref().map(text));
            (
                parts,
                h.host.as_ref().map(text),
                h.content_type,
                h.body_len,
                h.keep_alive,
            )
        });
        let parts = (
            "POST".into(),
            "/q?a=b".into(),
            Some("AmazonSQS.ListQueues".into()),
        );
        assert_eq!(head, Some((parts, Some("h:1".into()), None, 5, true)));
        // An empty header value reads as empty.
        let head = parsed("GET / HTTP/1.1\r\nHost:\r\n\r\n").ok().flatten();
        assert_eq!(head.and_then(|h| h.host), Some(0..0));
        assert!(matches!(
            parsed("GET /metrics HTTP/1.1\r\nHost: x\r\n"),
            Ok(None)
        ));
    }

    #[test]
    fn http_1_0_closes_unless_asked_to_keep_alive() {
        let keep = |raw: &str| parsed(raw).ok().flatten().map(|h| h.keep_alive);
        assert_eq!(keep("GET / HTTP/1.0\r\n\r\n"), Some(false));
        assert_eq!(
            keep("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"),
            Some(true)
        );
        assert_eq!(
            keep("GET / HTTP/1.1\r\nConnection: close\r\n\r\n"),
            Some(false)
        );
    }

    #[test]
    fn bad_and_oversized_requests_are_refused_with_their_status() {
        assert_eq!(parsed("GET\0 / HTTP/1.1\r\n\r\n").err(), Some(400));
        let huge = format!("GET / HTTP/1.1\r\nX: {}\r\n", "a".repeat(HEAD_BYTES_MAX));
        assert_eq!(parsed(&huge).err(), Some(431));
        let many: String = (0..=HEADERS_MAX).map(|i| format!("H{i}: v\r\n")).collect();
        assert_eq!(
            parsed(&format!("GET / HTTP/1.1\r\n{many}\r\n")).err(),
            Some(431)
        );
        let big = format!(
            "POST / HTTP/1.1\r\nContent-Length: {}\r\n\r\n",
            BODY_BYTES_MAX + 1
        );
        assert_eq!(parsed(&big).err(), Some(413));
        assert_eq!(
            parsed("POST / HTTP/1.1\r\nContent-Length: x\r\n\r\n").err(),
            Some(400)
        );
        let chunked = "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(parsed(chunked).err(), Some(501));
    }
}
