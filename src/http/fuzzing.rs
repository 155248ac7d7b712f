//! The HTTP front end's request path short of the engine, for the `http_request` fuzz
//! target (`fuzz/src/lib.rs`) and the corpus replay (`tests/fuzz_corpora.rs`): a
//! connection's bytes framed into requests by the connection's own head parser
//! (`parse_head`), each routed by the same tests `Connection::route` makes, in its
//! order, and decoded by the decoder that route runs. A child of `http` so that it
//! calls the private parser itself, not a copy.

use super::{parse_head, sns, sqs, Head, Span, Stop};
use peregrine_aws_wire::sns as sns_wire;
use peregrine_aws_wire::sqs::{self as sqs_wire, Protocol, WireError};

/// Where one request went.
#[derive(Debug)]
pub enum Routed {
    /// Refused from its head with this status; the connection closes after it.
    Refused(u16),
    Sqs(Protocol, Result<sqs_wire::Request, WireError>),
    Sns(Result<sns_wire::Request, sns_wire::WireError>),
    /// The operator routes (`/metrics`, `/healthz`, `/readyz`, or their 404 and 405).
    Operator,
}

/// One request as the connection framed it.
#[derive(Debug)]
pub struct Framed {
    /// Bytes of its head, and of its body after it (0 for a refused one).
    pub head_len: usize,
    pub body_len: usize,
    pub keep_alive: bool,
    pub routed: Routed,
}

/// The requests at the start of `stream`, in order, as one connection serves them: it
/// stops at a request not yet whole (the connection would wait for more bytes), after
/// a refused one, and after one that does not keep the connection alive.
pub fn requests(stream: &[u8]) -> Vec<Framed> {
    let mut out = Vec::new();
    let mut rest = stream;
    loop {
        let head = match parse_head(rest) {
            Ok(Some(head)) => head,
            Ok(None) => break,
            Err(Stop::Refuse(answer)) => {
                out.push(Framed {
                    head_len: 0,
                    body_len: 0,
                    keep_alive: false,
                    routed: Routed::Refused(answer.status),
                });
                break;
            }
            Err(Stop::Quiet) => break,
        };
        let Some(body) = rest.get(head.len..head.len + head.body_len) else {
            break;
        };
        let text = |span: &Span| Head::text(&rest[..head.len], span);
        let request_target = text(&head.path);
        let (path, query) = request_target
            .split_once('?')
            .unwrap_or((request_target, ""));
        let content_type = head.content_type.as_ref().map(text);
        let target = head.target.as_ref().map(text);
        let routed = match sqs::accepts(text(&head.method), target, content_type, query) {
            Some(Protocol::Query) if sns::accepts(query, body) => {
                Routed::Sns(sns_wire::decode(query, body))
            }
            Some(Protocol::Json) => Routed::Sqs(
                Protocol::Json,
                sqs_wire::decode(Protocol::Json, target, query, body),
            ),
            Some(Protocol::Query) => {
                // As `sqs::serve` reads a query request posted to a queue's URL.
                let path_queue_url = Some(path).filter(|p| !p.is_empty() && *p != "/");
                Routed::Sqs(
                    Protocol::Query,
                    sqs_wire::decode_query_at(path_queue_url, query, body),
                )
            }
            None => Routed::Operator,
        };
        out.push(Framed {
            head_len: head.len,
            body_len: head.body_len,
            keep_alive: head.keep_alive,
            routed,
        });
        if !head.keep_alive {
            break;
        }
        rest = &rest[head.len + head.body_len..];
    }
    out
}
