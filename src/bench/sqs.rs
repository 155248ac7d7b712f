//! `peregrine bench sqs` and `sqs-latency`: a queue through the SQS API (JSON 1.0) on the
//! HTTP listener, as an AWS SDK program drives it.
//!
//! Senders (`--producers`, default 4) post SendMessageBatch requests of up to 10 stamped
//! bodies (`--size` bytes of text: client, sequence number and intended send time in hex,
//! then padding); receivers (`--consumers`) loop on ReceiveMessage (10 messages, 1 s long
//! poll) and delete what they got with one DeleteMessageBatch. A message counts as received
//! once its deletion is answered with success. Latencies: send to receive from the body's
//! intended send time (so a fixed-rate run is corrected for coordinated omission) and, at
//! millisecond resolution, from the broker's `SentTimestamp`; receive to delete from the
//! ReceiveMessage answer to the DeleteMessageBatch answer.
//!
//! Every run checks by MessageId that each message the broker accepted was deleted exactly
//! once, and fails otherwise.
//!
//! The client is a blocking HTTP/1.1 keep-alive connection over `TcpStream` per thread:
//! the requests are small, the answers content-length framed, and the figure then
//! measures the broker rather than a client library.

use super::consumer::{ConsumerResult, Progress};
use super::delivery::Ledger;
use super::payload::now_ns;
use super::producer::ProducerResult;
use super::report::{histogram, Percentiles};
use super::{paced_plans, summarize, wait_for, BenchArgs, Mode, Outcome, PacedPlan};
use crate::client::tls::{ClientTls, TlsReader, TlsWriter};
use hdrhistogram::Histogram;
use serde_json::{json, Value};
use std::collections::HashSet;
use std::hash::Hash;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Most entries of one SendMessageBatch / DeleteMessageBatch, and messages of one receive.
pub const BATCH_MAX: usize = 10;
/// The stamp at the start of every body: 8 + 16 + 16 hex digits.
pub const STAMP_LEN: usize = 40;
/// ReceiveMessage long poll, seconds.
const WAIT_TIME_S: u64 = 1;
/// The longest one request may wait for its answer (a long poll included).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Most bytes of an answer's head.
const HEAD_MAX: usize = 16 * 1024;
/// Most bytes of an answer's body (10 messages of at most 1 MiB each, escaped, fit).
const BODY_MAX: usize = 64 * 1024 * 1024;

type Error = Box<dyn std::error::Error + Send + Sync>;

/// The HTTP listener the clients connect to (`host:port`), over TLS when `tls` is set.
#[derive(Clone)]
pub struct Endpoint {
    pub addr: String,
    pub tls: Option<Arc<ClientTls>>,
}

impl Endpoint {
    /// An endpoint URL (`http://` or `https://`) or a bare `host:port`; `https://` needs
    /// `tls` (`--tls-ca`), and `tls` without it means HTTPS on `host:port`.
    pub fn new(endpoint: &str, tls: Option<Arc<ClientTls>>) -> Result<Endpoint, String> {
        if endpoint.starts_with("https://") && tls.is_none() {
            return Err(format!("{endpoint}: https:// needs --tls-ca"));
        }
        if endpoint.starts_with("http://") && tls.is_some() {
            return Err(format!(
                "--tls-ca with {endpoint}: the endpoint must be https://"
            ));
        }
        Ok(Endpoint {
            addr: authority(endpoint).to_string(),
            tls,
        })
    }
}

/// A connection's socket, plaintext or TLS (the native client's TLS halves, both used
/// by the one thread that owns the client).
enum Transport {
    Plain(TcpStream),
    Tls(TlsWriter, TlsReader),
}

impl Transport {
    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        match self {
            Transport::Plain(tcp) => tcp.write_all(buf),
            Transport::Tls(writer, _) => writer.write_all(buf),
        }
    }

    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Transport::Plain(tcp) => tcp.read(buf),
            Transport::Tls(_, reader) => reader.read(buf),
        }
    }
}

/// One keep-alive HTTP/1.1 connection speaking the SQS JSON 1.0 protocol.
pub struct SqsClient {
    stream: Transport,
    host: String,
    buf: Vec<u8>,
}

impl SqsClient {
    pub fn connect(to: &Endpoint) -> Result<SqsClient, Error> {
        let addr = &to.addr;
        let stream =
            TcpStream::connect(addr).map_err(|e| format!("connect to SQS at {addr}: {e}"))?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(REQUEST_TIMEOUT))?;
        stream.set_write_timeout(Some(REQUEST_TIMEOUT))?;
        let stream = match &to.tls {
            None => Transport::Plain(stream),
            Some(tls) => {
                let host = addr.rsplit_once(':').map_or(addr.as_str(), |(h, _)| h);
                let (writer, reader) = tls
                    .connect(stream, host)
                    .map_err(|e| format!("TLS to SQS at {addr}: {e}"))?;
                Transport::Tls(writer, reader)
            }
        };
        Ok(SqsClient {
            stream,
            host: addr.clone(),
            buf: Vec::with_capacity(64 * 1024),
        })
    }

    /// Posts `AmazonSQS.<action>` with `body`; the answer's JSON, or an error naming the
    /// action, the status and the broker's error body.
    pub fn call(&mut self, action: &str, body: &Value) -> Result<Value, Error> {
        let payload = serde_json::to_vec(body)?;
        let headers = format!(
            "x-amz-target: AmazonSQS.{action}\r\ncontent-type: application/x-amz-json-1.0\r\n"
        );
        let (status, body) = self.post(action, &headers, &payload)?;
        if status != 200 {
            return Err(format!(
                "{action}: HTTP {status}: {}",
                String::from_utf8_lossy(&body)
            )
            .into());
        }
        Ok(serde_json::from_slice(&body).map_err(|e| format!("{action}: answer: {e}"))?)
    }

    /// Posts `payload` to `/` with `headers` (whole `name: value\r\n` lines, framing
    /// excluded) and reads the answer: its status and body. `what` names the request in
    /// errors. The SNS bench sends its query requests through this too.
    pub fn post(
        &mut self,
        what: &str,
        headers: &str,
        payload: &[u8],
    ) -> Result<(u16, Vec<u8>), Error> {
        let mut req = format!(
            "POST / HTTP/1.1\r\nhost: {}\r\n{headers}content-length: {}\r\n\r\n",
            self.host,
            payload.len()
        )
        .into_bytes();
        req.extend_from_slice(payload);
        self.stream
            .write_all(&req)
            .map_err(|e| format!("{what}: write: {e}"))?;
        Ok(self.read_answer().map_err(|e| format!("{what}: {e}"))?)
    }

    /// Reads one content-length framed answer: its status and body.
    fn read_answer(&mut self) -> Result<(u16, Vec<u8>), Error> {
        let head_end = loop {
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                break i + 4;
            }
            if self.buf.len() > HEAD_MAX {
                return Err("answer head too long".into());
            }
            self.fill()?;
        };
        let head =
            std::str::from_utf8(&self.buf[..head_end]).map_err(|_| "answer head is not UTF-8")?;
        let mut lines = head.split("\r\n");
        let status: u16 = lines
            .next()
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|s| s.parse().ok())
            .ok_or("no status line")?;
        let mut len = None;
        for line in lines {
            if let Some((name, value)) = line.split_once(':') {
                if name.trim().eq_ignore_ascii_case("content-length") {
                    len = value.trim().parse::<usize>().ok();
                }
            }
        }
        let len = len.ok_or("answer without content-length")?;
        if len > BODY_MAX {
            return Err(format!("answer body of {len} bytes").into());
        }
        while self.buf.len() < head_end + len {
            self.fill()?;
        }
        let body = self.buf[head_end..head_end + len].to_vec();
        self.buf.drain(..head_end + len);
        Ok((status, body))
    }

    fn fill(&mut self) -> Result<(), Error> {
        let mut chunk = [0u8; 16 * 1024];
        let n = self.stream.read(&mut chunk)?;
        if n == 0 {
            return Err("connection closed by the broker".into());
        }
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(())
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// A body of `size` characters: the stamp in hex, then padding.
pub fn stamped_body(client: u32, seq: u64, sent_ns: u64, size: usize) -> String {
    let mut s = format!("{client:08x}{seq:016x}{sent_ns:016x}");
    s.extend(std::iter::repeat_n('x', size.saturating_sub(STAMP_LEN)));
    s
}

/// The (client, sequence number, intended send time) at the start of a body.
pub fn read_stamp(body: &str) -> Option<(u32, u64, u64)> {
    let hex = body.get(..STAMP_LEN)?;
    Some((
        u32::from_str_radix(&hex[..8], 16).ok()?,
        u64::from_str_radix(&hex[8..24], 16).ok()?,
        u64::from_str_radix(&hex[24..40], 16).ok()?,
    ))
}

/// The stamp of an SNS envelope's Message (what a non-raw subscription delivers), and
/// the envelope's SignatureVersion (0: unsigned).
fn enveloped_stamp(body: &str) -> Option<((u32, u64, u64), usize)> {
    let envelope: Value = serde_json::from_str(body).ok()?;
    let version = match envelope["SignatureVersion"].as_str() {
        None => 0,
        Some("1") => 1,
        Some("2") => 2,
        Some(_) => return None,
    };
    Some((read_stamp(envelope["Message"].as_str()?)?, version))
}

fn epoch_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// What a sender leaves: the usual producer result, and the (sequence number, MessageId)
/// of each message the broker accepted.
pub(super) struct Sent {
    pub result: ProducerResult,
    pub ids: Vec<(u64, String)>,
}

/// One batch to post: (sequence number, body) of each entry.
pub(super) type Batch = [(u64, String)];

/// A sender's loop, whatever the API: batches of up to `--batch` (at most 10) stamped
/// bodies, paced when the plan has a rate, each posted by `post`, which answers the
/// (sequence number, MessageId) of every entry the broker accepted. Stops at the first
/// failure: an entry refused or left unanswered is an error.
pub(super) fn send_loop(
    args: &BenchArgs,
    plan: &PacedPlan,
    out: &mut Sent,
    mut post: impl FnMut(&Batch) -> Result<Vec<(u64, String)>, Error>,
) -> Result<(), Error> {
    let gap = plan.rate.map(|r| 1e9 / r.max(1.0));
    let start = now_ns();
    out.result.first_send_ns = start;
    let mut seq = 0u64;
    while seq < plan.count && plan.deadline_ns.is_none_or(|d| now_ns() < d) {
        let n = match gap {
            Some(gap) => {
                let due_at = start + (seq as f64 * gap) as u64;
                let now = now_ns();
                if now < due_at {
                    std::thread::sleep(Duration::from_nanos(due_at - now));
                }
                ((now_ns() - start) as f64 / gap) as u64 + 1 - seq
            }
            None => args.batch as u64,
        }
        .clamp(1, args.batch.clamp(1, BATCH_MAX) as u64)
        .min(plan.count - seq);
        let batch_ns = now_ns();
        let batch: Vec<(u64, String)> = (seq..seq + n)
            .map(|s| {
                let sent_ns = gap.map_or(batch_ns, |g| start + (s as f64 * g) as u64);
                (s, stamped_body(plan.id, s, sent_ns, args.size))
            })
            .collect();
        let accepted = post(&batch)?;
        let now = now_ns();
        if accepted.len() as u64 != n {
            return Err(format!("a batch of {n} answered {} entries", accepted.len()).into());
        }
        for (s, id) in accepted {
            out.result.acked.insert(s);
            out.ids.push((s, id));
        }
        let _ = out
            .result
            .ack_ns
            .record_n(now.saturating_sub(batch_ns).max(1), n);
        out.result.last_ack_ns = now;
        seq += n;
        out.result.sent = seq;
    }
    Ok(())
}

/// The sequence number in a batch entry id (`m{seq}`) the bench gave it.
pub(super) fn entry_seq(id: &str) -> Option<u64> {
    id.strip_prefix('m').and_then(|s| s.parse().ok())
}

fn send(
    args: &BenchArgs,
    to: &Endpoint,
    url: &str,
    plan: &PacedPlan,
    out: &mut Sent,
) -> Result<(), Error> {
    let mut client = SqsClient::connect(to)?;
    send_loop(args, plan, out, |batch| {
        let entries: Vec<Value> = batch
            .iter()
            .map(|(s, body)| json!({ "Id": format!("m{s}"), "MessageBody": body }))
            .collect();
        let answer = client.call(
            "SendMessageBatch",
            &json!({ "QueueUrl": url, "Entries": entries }),
        )?;
        if let Some(failed) = answer["Failed"].as_array().filter(|f| !f.is_empty()) {
            return Err(format!("SendMessageBatch failed entries: {failed:?}").into());
        }
        let ok = answer["Successful"]
            .as_array()
            .ok_or("SendMessageBatch: no Successful")?;
        ok.iter()
            .map(|entry| {
                let s = entry["Id"]
                    .as_str()
                    .and_then(entry_seq)
                    .ok_or("SendMessageBatch: an entry without its Id")?;
                let id = entry["MessageId"]
                    .as_str()
                    .ok_or("SendMessageBatch: an entry without MessageId")?;
                Ok((s, id.to_string()))
            })
            .collect()
    })
}

/// Runs one sender thread per plan with `send` (given the endpoint's address and the
/// target: queue URL or topic ARN; plan `i` sends to `targets[i % targets.len()]`) and
/// waits for them all.
pub(super) fn run_senders(
    args: &BenchArgs,
    to: &Endpoint,
    targets: &[String],
    plans: Vec<PacedPlan>,
    send: fn(&BenchArgs, &Endpoint, &str, &PacedPlan, &mut Sent) -> Result<(), Error>,
) -> Result<Vec<Sent>, Error> {
    plans
        .into_iter()
        .enumerate()
        .map(|(i, plan)| {
            let t = targets[i % targets.len().max(1)].clone();
            let (a, args) = (to.clone(), args.clone());
            std::thread::spawn(move || {
                let mut out = Sent {
                    result: ProducerResult {
                        sent: 0,
                        acked: Default::default(),
                        ack_ns: histogram(),
                        first_send_ns: now_ns(),
                        last_ack_ns: 0,
                        error: None,
                    },
                    ids: Vec::new(),
                };
                if let Err(e) = send(&args, &a, &t, &plan, &mut out) {
                    out.result.error = Some(e.to_string());
                }
                out
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|h| h.join().map_err(|_| "sender panicked".into()))
        .collect()
}

/// What a receiver leaves: the usual consumer result, the MessageIds it deleted with the
/// (client, sequence number) stamped in each one's body, and its receive-to-delete and
/// SentTimestamp-based latencies.
pub(super) struct Received {
    pub result: ConsumerResult,
    pub ids: Vec<String>,
    pub stamps: Vec<(u32, u64)>,
    pub delete_ns: Histogram<u64>,
    pub sent_timestamp_ms: Histogram<u64>,
    /// Bodies that were SNS envelopes (a non-raw subscription's delivery), by their
    /// SignatureVersion: unsigned, 1, 2.
    pub envelopes: [u64; 3],
}

/// Starts `n` receiver threads on the queues at `urls` (receiver `i` on
/// `urls[i % urls.len()]`), counting into `progress`; each one stops the others when it
/// fails, so that none waits for what it would have deleted.
pub(super) fn spawn_receivers(
    n: usize,
    to: &Endpoint,
    urls: &[String],
    producers: usize,
    progress: &Arc<Progress>,
) -> Vec<std::thread::JoinHandle<Received>> {
    (0..n)
        .map(|i| {
            let u = urls[i % urls.len().max(1)].clone();
            let (a, p) = (to.clone(), progress.clone());
            std::thread::spawn(move || {
                let mut out = Received {
                    result: ConsumerResult {
                        ledger: Ledger::new(producers),
                        e2e_ns: histogram(),
                        first_receive_ns: 0,
                        last_receive_ns: 0,
                        error: None,
                    },
                    ids: Vec::new(),
                    stamps: Vec::new(),
                    delete_ns: histogram(),
                    sent_timestamp_ms: histogram(),
                    envelopes: [0; 3],
                };
                if let Err(e) = receive(&a, &u, &p, &mut out) {
                    out.result.error = Some(e.to_string());
                    p.stop.store(true, Ordering::Relaxed);
                }
                out
            })
        })
        .collect()
}

pub(super) fn receive(
    to: &Endpoint,
    url: &str,
    progress: &Progress,
    out: &mut Received,
) -> Result<(), Error> {
    let mut client = SqsClient::connect(to)?;
    let request = json!({
        "QueueUrl": url,
        "MaxNumberOfMessages": BATCH_MAX,
        "WaitTimeSeconds": WAIT_TIME_S,
        "MessageSystemAttributeNames": ["SentTimestamp"],
    });
    while !progress.stop.load(Ordering::Relaxed) {
        let answer = client.call("ReceiveMessage", &request)?;
        let received_ns = now_ns();
        let received_ms = epoch_ms();
        let Some(messages) = answer["Messages"].as_array().filter(|m| !m.is_empty()) else {
            continue;
        };
        let mut entries = Vec::with_capacity(messages.len());
        let mut stamps = Vec::with_capacity(messages.len());
        for (i, m) in messages.iter().enumerate() {
            let body = m["Body"].as_str().ok_or("ReceiveMessage: no Body")?;
            let stamp = match read_stamp(body) {
                Some(stamp) => stamp,
                None => {
                    let (stamp, version) =
                        enveloped_stamp(body).ok_or("ReceiveMessage: a body without the stamp")?;
                    out.envelopes[version] += 1;
                    stamp
                }
            };
            let id = m["MessageId"]
                .as_str()
                .ok_or("ReceiveMessage: no MessageId")?;
            let handle = m["ReceiptHandle"]
                .as_str()
                .ok_or("ReceiveMessage: no ReceiptHandle")?;
            if let Some(sent_ms) = m["Attributes"]["SentTimestamp"]
                .as_str()
                .and_then(|t| t.parse::<u64>().ok())
            {
                let _ = out
                    .sent_timestamp_ms
                    .record(received_ms.saturating_sub(sent_ms).max(1));
            }
            let _ = out
                .result
                .e2e_ns
                .record(received_ns.saturating_sub(stamp.2).max(1));
            entries.push(json!({ "Id": format!("d{i}"), "ReceiptHandle": handle }));
            stamps.push((stamp, id.to_string()));
        }
        let answer = client.call(
            "DeleteMessageBatch",
            &json!({ "QueueUrl": url, "Entries": entries }),
        )?;
        if let Some(failed) = answer["Failed"].as_array().filter(|f| !f.is_empty()) {
            return Err(format!("DeleteMessageBatch failed entries: {failed:?}").into());
        }
        let deleted = answer["Successful"].as_array().map_or(0, Vec::len);
        if deleted != stamps.len() {
            return Err(format!(
                "DeleteMessageBatch answered {deleted} of {} entries",
                stamps.len()
            )
            .into());
        }
        let now = now_ns();
        let _ = out
            .delete_ns
            .record_n(now.saturating_sub(received_ns).max(1), deleted as u64);
        for ((client_id, seq, _), id) in stamps {
            out.result.ledger.receive(client_id, seq);
            out.ids.push(id);
            out.stamps.push((client_id, seq));
        }
        progress
            .received
            .fetch_add(deleted as u64, Ordering::Relaxed);
        if out.result.first_receive_ns == 0 {
            out.result.first_receive_ns = now;
        }
        out.result.last_receive_ns = now;
    }
    Ok(())
}

/// The exactly-once check by message identity (the SQS modes: MessageId; the SNS modes:
/// the stamp in the body, as each queue holds its own copy under its own MessageId).
#[derive(Debug, PartialEq, Eq)]
pub(super) struct IdCheck {
    pub unique_sent: u64,
    pub unique_deleted: u64,
    /// Accepted by the broker, never deleted.
    pub never_deleted: u64,
    /// Deletions beyond the first of the same id.
    pub deleted_twice: u64,
    /// Deleted, but no sender was given the id.
    pub unknown: u64,
}

impl IdCheck {
    pub fn of<T: Hash + Eq + Copy>(
        sent: impl Iterator<Item = T>,
        deleted: impl Iterator<Item = T>,
    ) -> IdCheck {
        let sent: HashSet<T> = sent.collect();
        let mut unique: HashSet<T> = HashSet::new();
        let mut deleted_twice = 0;
        for id in deleted {
            if !unique.insert(id) {
                deleted_twice += 1;
            }
        }
        IdCheck {
            unique_sent: sent.len() as u64,
            unique_deleted: unique.len() as u64,
            never_deleted: sent.iter().filter(|id| !unique.contains(*id)).count() as u64,
            deleted_twice,
            unknown: unique.iter().filter(|id| !sent.contains(*id)).count() as u64,
        }
    }
}

/// The `http=` address in an endpoint URL or a bare `host:port`.
pub(super) fn authority(endpoint: &str) -> &str {
    let rest = endpoint
        .strip_prefix("http://")
        .or_else(|| endpoint.strip_prefix("https://"))
        .unwrap_or(endpoint)
        .trim_end_matches('/');
    rest.split('/').next().unwrap_or(rest)
}

/// Runs the SQS workload against the HTTP listener `to`.
pub fn run(args: &BenchArgs, to: &Endpoint) -> Result<Outcome, Box<dyn std::error::Error>> {
    run_checked(args, to).map_err(|e| e.to_string().into())
}

fn run_checked(args: &BenchArgs, to: &Endpoint) -> Result<Outcome, Error> {
    let run_id = format!("bench-sqs-{}-{}", std::process::id(), crate::time::now_ms());
    let mut admin = SqsClient::connect(to)?;
    // `--queues`: the senders and receivers spread over them round-robin (each queue
    // has both: `--senders` and `--receivers` are at least `--queues`).
    let mut urls = Vec::with_capacity(args.queues.max(1));
    for q in 0..args.queues.max(1) {
        let name = match args.queues {
            0 | 1 => run_id.clone(),
            _ => format!("{run_id}-{q}"),
        };
        let url = admin.call("CreateQueue", &json!({ "QueueName": name }))?["QueueUrl"]
            .as_str()
            .ok_or("CreateQueue: no QueueUrl")?
            .to_string();
        urls.push(url);
    }
    let total = args.messages.unwrap_or(u64::MAX);
    let senders = args.producers.max(1) as u64;
    let progress = Arc::new(Progress::default());
    let receivers = spawn_receivers(
        args.consumers.max(1),
        to,
        &urls,
        args.producers.max(1),
        &progress,
    );
    let start = now_ns();
    let deadline_ns = args.duration.map(|d| start + (d * 1e9) as u64);
    let rate = (args.mode == Mode::SqsLatency).then_some(args.rate as f64);
    let plans = paced_plans(senders, total, deadline_ns, rate);
    let sent = run_senders(args, to, &urls, plans, send)?;
    let expected: u64 = sent.iter().map(|s| s.ids.len() as u64).sum();
    wait_for(&progress, expected, true);
    progress.stop.store(true, Ordering::Relaxed);
    let received: Vec<Received> = receivers
        .into_iter()
        .map(|h| h.join().map_err(|_| "receiver panicked"))
        .collect::<Result<_, _>>()?;
    for url in &urls {
        if let Err(e) = admin.call("DeleteQueue", &json!({ "QueueUrl": url })) {
            eprintln!("could not delete the bench queue {url}: {e}");
        }
    }

    let mut delete_ns = histogram();
    let mut sent_timestamp_ms = histogram();
    for r in &received {
        let _ = delete_ns.add(&r.delete_ns);
        let _ = sent_timestamp_ms.add(&r.sent_timestamp_ms);
    }
    let ids = IdCheck::of(
        sent.iter().flat_map(|s| &s.ids).map(|(_, id)| id.as_str()),
        received.iter().flat_map(|r| &r.ids).map(String::as_str),
    );
    let IdCheck {
        unique_sent,
        unique_deleted,
        never_deleted,
        deleted_twice,
        unknown,
    } = ids;
    let send_end = sent
        .iter()
        .map(|s| s.result.last_ack_ns)
        .max()
        .unwrap_or(start);
    let send_s = send_end.saturating_sub(start).max(1) as f64 / 1e9;
    eprintln!(
        "sqs: {} sent in {send_s:.2} s ({:.0} msgs/s); {} deleted, unique MessageIds: {} sent, {} deleted",
        expected,
        expected as f64 / send_s,
        unique_deleted + deleted_twice,
        unique_sent,
        unique_deleted
    );
    if !sent_timestamp_ms.is_empty() {
        // Recorded in milliseconds (the attribute's resolution), not nanoseconds.
        let q = |q: f64| sent_timestamp_ms.value_at_quantile(q);
        eprintln!(
            "sqs: send to receive by SentTimestamp (ms resolution, at least 1): p50 {} p99 {} p99.9 {} max {} ms",
            q(0.5),
            q(0.99),
            q(0.999),
            sent_timestamp_ms.max()
        );
    }
    let errors: Vec<String> = sent
        .iter()
        .filter_map(|s| s.result.error.clone())
        .chain(received.iter().filter_map(|r| r.result.error.clone()))
        .collect();
    let mut outcome = summarize(
        args,
        start,
        sent.into_iter().map(|s| s.result).collect(),
        received.into_iter().map(|r| r.result).collect(),
    );
    if !errors.is_empty() {
        return Err(format!("SQS clients failed: {}", errors.join("; ")).into());
    }
    if deleted_twice > 0 || never_deleted > 0 || unknown > 0 || unique_sent != expected {
        return Err(format!(
            "SQS delivery check failed: {expected} sent ({} unique MessageIds), {never_deleted} never deleted, {deleted_twice} deleted more than once, {unknown} deleted but never sent",
            unique_sent
        )
        .into());
    }
    // The summary's second latency is the SQS acknowledgement: receive to delete.
    outcome.0.ack_us = Percentiles::of(&delete_ns);
    outcome.2 = delete_ns;
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stamped_body_has_the_size_and_reads_back() {
        let body = stamped_body(3, 1 << 40, 123_456_789, 100);
        assert_eq!(body.len(), 100);
        assert_eq!(read_stamp(&body), Some((3, 1 << 40, 123_456_789)));
        assert_eq!(read_stamp("short"), None);
        assert_eq!(read_stamp(&"z".repeat(40)), None);
    }

    #[test]
    fn the_id_check_counts_losses_repeats_and_strangers() {
        let check = |sent: &[&'static str], deleted: &[&'static str]| {
            IdCheck::of(sent.iter().copied(), deleted.iter().copied())
        };
        assert_eq!(
            check(&["a", "b"], &["b", "a"]),
            IdCheck {
                unique_sent: 2,
                unique_deleted: 2,
                never_deleted: 0,
                deleted_twice: 0,
                unknown: 0
            }
        );
        assert_eq!(
            check(&["a", "b", "c"], &["a", "a", "z"]),
            IdCheck {
                unique_sent: 3,
                unique_deleted: 2,
                never_deleted: 2,
                deleted_twice: 1,
                unknown: 1
            }
        );
    }

    #[test]
    fn the_endpoint_may_be_a_url_or_an_address() {
        assert_eq!(authority("http://127.0.0.1:9000/"), "127.0.0.1:9000");
        assert_eq!(authority("127.0.0.1:9000"), "127.0.0.1:9000");
        assert_eq!(authority("http://h:1/000000000000/q"), "h:1");
        assert_eq!(authority("https://127.0.0.1:9443"), "127.0.0.1:9443");
    }
}
