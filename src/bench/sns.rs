//! `peregrine bench sns` and `sns-latency`: SNS fan-out to three SQS queues on the HTTP
//! listener, as an AWS SDK program drives it.
//!
//! The run creates a topic and three queues, each subscribed with raw message delivery
//! (with `--sns-envelope`, without: each delivery is the JSON envelope, signed per the
//! broker's `--sns-signing`, and receivers take the stamp from its Message).
//! Publishers (`--senders`) post PublishBatch requests (SNS query protocol) of up to 10
//! stamped bodies; on every queue `--receivers` clients loop on ReceiveMessage (10, 1 s
//! long poll) and DeleteMessageBatch, as the `sqs` mode's receivers do (the same code).
//! The report gives the publish rate, the delivered rate of each queue and of the three
//! together, publish-to-received latency from each body's intended send time (so a
//! fixed-rate run is corrected for coordinated omission) and the PublishBatch answer
//! latency (a durable append).
//!
//! Every run checks that each queue got every published message exactly once, by the
//! stamp in the body (client, sequence number): each queue holds its own copy under its
//! own MessageId, so MessageIds cannot be compared across the topic and the queues.

use super::consumer::Progress;
use super::payload::now_ns;
use super::sqs::{
    entry_seq, run_senders, send_loop, spawn_receivers, Endpoint, IdCheck, Received, Sent,
    SqsClient,
};
use super::{paced_plans, summarize, wait_for, BenchArgs, Mode, Outcome, PacedPlan};
use serde_json::json;
use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// The queues subscribed to the topic (the figure: fan-out to three).
pub const QUEUES: usize = 3;

type Error = Box<dyn std::error::Error + Send + Sync>;

/// Posts one SNS query request (form-encoded, as botocore sends SNS's); the answer's XML,
/// or an error naming the action, the status and the broker's error document.
fn sns_call(
    client: &mut SqsClient,
    action: &str,
    params: &[(String, String)],
) -> Result<String, Error> {
    let mut body = format!("Action={action}&Version=2010-03-31");
    for (name, value) in params {
        body.push('&');
        form_encode(name, &mut body);
        body.push('=');
        form_encode(value, &mut body);
    }
    let (status, answer) = client.post(
        action,
        "content-type: application/x-www-form-urlencoded; charset=utf-8\r\n",
        body.as_bytes(),
    )?;
    let text = String::from_utf8(answer).map_err(|_| format!("{action}: answer is not UTF-8"))?;
    if status != 200 {
        return Err(format!("{action}: HTTP {status}: {text}").into());
    }
    Ok(text)
}

fn params<const N: usize>(pairs: [(&str, &str); N]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// `application/x-www-form-urlencoded`: every byte but the unreserved ones escaped.
fn form_encode(text: &str, out: &mut String) {
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
}

/// The text of each `<tag>…</tag>` element in `xml`, in order, entities decoded. Enough
/// for the answers the bench reads: elements without attributes, no CDATA.
fn xml_texts(xml: &str, tag: &str) -> Vec<String> {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    let mut texts = Vec::new();
    let mut rest = xml;
    while let Some(start) = rest.find(&open) {
        let after = &rest[start + open.len()..];
        let Some(end) = after.find(&close) else {
            break;
        };
        texts.push(
            after[..end]
                .replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&quot;", "\"")
                .replace("&apos;", "'")
                .replace("&amp;", "&"),
        );
        rest = &after[end + close.len()..];
    }
    texts
}

/// What is inside the first `<tag>…</tag>` of `xml`: empty when the element is empty
/// (`<tag/>`) or absent.
fn xml_inner<'a>(xml: &'a str, tag: &str) -> &'a str {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    xml.find(&open)
        .map(|start| &xml[start + open.len()..])
        .and_then(|after| after.find(&close).map(|end| &after[..end]))
        .unwrap_or("")
}

fn one(xml: &str, tag: &str, action: &str) -> Result<String, Error> {
    xml_texts(xml, tag)
        .into_iter()
        .next()
        .ok_or_else(|| format!("{action}: no {tag} in the answer: {xml}").into())
}

/// What the run creates, so that it is deleted whatever happens after.
#[derive(Default)]
struct Fixture {
    topic_arn: String,
    /// The subscribed queues' URLs.
    queues: Vec<String>,
}

impl Fixture {
    /// A topic `name` (its SignatureVersion `--sns-signature-version`) and queues
    /// `name-1`… subscribed to it, with raw delivery unless `--sns-envelope`.
    fn set_up(&mut self, admin: &mut SqsClient, name: &str, args: &BenchArgs) -> Result<(), Error> {
        let enveloped = args.sns_envelope;
        let version = args.sns_signature_version.to_string();
        let create = params([
            ("Name", name),
            ("Attributes.entry.1.key", "SignatureVersion"),
            ("Attributes.entry.1.value", version.as_str()),
        ]);
        let xml = sns_call(admin, "CreateTopic", &create)?;
        self.topic_arn = one(&xml, "TopicArn", "CreateTopic")?;
        for i in 1..=QUEUES {
            let answer = admin.call(
                "CreateQueue",
                &json!({ "QueueName": format!("{name}-{i}") }),
            )?;
            let url = answer["QueueUrl"]
                .as_str()
                .ok_or("CreateQueue: no QueueUrl")?
                .to_string();
            self.queues.push(url.clone());
            let answer = admin.call(
                "GetQueueAttributes",
                &json!({ "QueueUrl": url, "AttributeNames": ["QueueArn"] }),
            )?;
            let arn = answer["Attributes"]["QueueArn"]
                .as_str()
                .ok_or("GetQueueAttributes: no QueueArn")?;
            let xml = sns_call(
                admin,
                "Subscribe",
                &params([
                    ("TopicArn", self.topic_arn.as_str()),
                    ("Protocol", "sqs"),
                    ("Endpoint", arn),
                    ("Attributes.entry.1.key", "RawMessageDelivery"),
                    (
                        "Attributes.entry.1.value",
                        if enveloped { "false" } else { "true" },
                    ),
                    ("ReturnSubscriptionArn", "true"),
                ]),
            )?;
            one(&xml, "SubscriptionArn", "Subscribe")?;
        }
        Ok(())
    }

    fn tear_down(&self, admin: &mut SqsClient) {
        if !self.topic_arn.is_empty() {
            let request = params([("TopicArn", self.topic_arn.as_str())]);
            if let Err(e) = sns_call(admin, "DeleteTopic", &request) {
                eprintln!("could not delete the bench topic {}: {e}", self.topic_arn);
            }
        }
        for url in &self.queues {
            if let Err(e) = admin.call("DeleteQueue", &json!({ "QueueUrl": url })) {
                eprintln!("could not delete the bench queue {url}: {e}");
            }
        }
    }
}

/// One publisher: PublishBatch requests of the plan's stamped bodies to `topic_arn`.
fn publish(
    args: &BenchArgs,
    to: &Endpoint,
    topic_arn: &str,
    plan: &PacedPlan,
    out: &mut Sent,
) -> Result<(), Error> {
    let mut client = SqsClient::connect(to)?;
    send_loop(args, plan, out, |batch| {
        let mut request = Vec::with_capacity(1 + 2 * batch.len());
        request.push(("TopicArn".to_string(), topic_arn.to_string()));
        for (i, (seq, body)) in batch.iter().enumerate() {
            let member = format!("PublishBatchRequestEntries.member.{}", i + 1);
            request.push((format!("{member}.Id"), format!("m{seq}")));
            request.push((format!("{member}.Message"), body.clone()));
        }
        let xml = sns_call(&mut client, "PublishBatch", &request)?;
        let failed = xml_inner(&xml, "Failed");
        if !failed.is_empty() {
            return Err(format!("PublishBatch failed entries: {failed}").into());
        }
        let successful = xml_inner(&xml, "Successful");
        let ids = xml_texts(successful, "Id");
        let message_ids = xml_texts(successful, "MessageId");
        if ids.len() != message_ids.len() {
            return Err(format!("PublishBatch: entries without MessageId: {xml}").into());
        }
        ids.iter()
            .zip(message_ids)
            .map(|(id, message_id)| {
                let seq = entry_seq(id).ok_or("PublishBatch: an entry without its Id")?;
                Ok((seq, message_id))
            })
            .collect()
    })
}

/// Runs the SNS fan-out workload against the HTTP listener `to`.
pub fn run(args: &BenchArgs, to: &Endpoint) -> Result<Outcome, Box<dyn std::error::Error>> {
    run_checked(args, to).map_err(|e| e.to_string().into())
}

fn run_checked(args: &BenchArgs, to: &Endpoint) -> Result<Outcome, Error> {
    let name = format!("bench-sns-{}-{}", std::process::id(), crate::time::now_ms());
    let mut admin = SqsClient::connect(to)?;
    let mut fixture = Fixture::default();
    let outcome = fixture
        .set_up(&mut admin, &name, args)
        .and_then(|()| measure(args, to, &fixture));
    fixture.tear_down(&mut admin);
    outcome
}

/// One queue's share of the report.
struct QueueReport {
    check: IdCheck,
    deleted: u64,
    last_receive_ns: u64,
}

fn measure(args: &BenchArgs, to: &Endpoint, fixture: &Fixture) -> Result<Outcome, Error> {
    let producers = args.producers.max(1);
    let queues: Vec<_> = fixture
        .queues
        .iter()
        .map(|url| {
            let progress = Arc::new(Progress::default());
            let receivers = spawn_receivers(
                args.consumers.max(1),
                to,
                std::slice::from_ref(url),
                producers,
                &progress,
            );
            (progress, receivers)
        })
        .collect();
    let start = now_ns();
    let deadline_ns = args.duration.map(|d| start + (d * 1e9) as u64);
    let rate = (args.mode == Mode::SnsLatency).then_some(args.rate as f64);
    let plans = paced_plans(
        producers as u64,
        args.messages.unwrap_or(u64::MAX),
        deadline_ns,
        rate,
    );
    let targets = std::slice::from_ref(&fixture.topic_arn);
    let sent = run_senders(args, to, targets, plans, publish)?;
    let published: u64 = sent.iter().map(|s| s.ids.len() as u64).sum();
    for (progress, _) in &queues {
        wait_for(progress, published, true);
    }
    let mut received: Vec<Vec<Received>> = Vec::with_capacity(queues.len());
    for (progress, receivers) in queues {
        progress.stop.store(true, Ordering::Relaxed);
        received.push(
            receivers
                .into_iter()
                .map(|h| h.join().map_err(|_| "receiver panicked"))
                .collect::<Result<_, _>>()?,
        );
    }

    // Plans are numbered in order: a sender's index is the client id in its stamps.
    let stamps: Vec<(u32, u64)> = sent
        .iter()
        .enumerate()
        .flat_map(|(client, s)| s.ids.iter().map(move |(seq, _)| (client as u32, *seq)))
        .collect();
    let distinct_ids = sent
        .iter()
        .flat_map(|s| &s.ids)
        .map(|(_, id)| id.as_str())
        .collect::<HashSet<_>>()
        .len() as u64;
    let reports: Vec<QueueReport> = received
        .iter()
        .map(|rs| QueueReport {
            check: IdCheck::of(
                stamps.iter().copied(),
                rs.iter().flat_map(|r| r.stamps.iter().copied()),
            ),
            deleted: rs.iter().map(|r| r.stamps.len() as u64).sum(),
            last_receive_ns: rs
                .iter()
                .map(|r| r.result.last_receive_ns)
                .max()
                .unwrap_or(0),
        })
        .collect();

    let secs = |end: u64| end.saturating_sub(start).max(1) as f64 / 1e9;
    let publish_end = sent
        .iter()
        .map(|s| s.result.last_ack_ns)
        .max()
        .unwrap_or(start);
    eprintln!(
        "sns: {published} published in {:.2} s ({:.0} msgs/s), {distinct_ids} distinct MessageIds",
        secs(publish_end),
        published as f64 / secs(publish_end)
    );
    for (i, (q, url)) in reports.iter().zip(&fixture.queues).enumerate() {
        let IdCheck {
            unique_deleted,
            never_deleted,
            deleted_twice,
            unknown,
            ..
        } = q.check;
        eprintln!(
            "sns: queue {} ({url}): {} delivered in {:.2} s ({:.0} msgs/s); exactly once: {unique_deleted} of {published}, {never_deleted} missing, {deleted_twice} twice, {unknown} never published",
            i + 1,
            q.deleted,
            secs(q.last_receive_ns),
            q.deleted as f64 / secs(q.last_receive_ns),
        );
    }
    let delivered: u64 = reports.iter().map(|q| q.deleted).sum();
    let mut envelopes = [0u64; 3];
    for r in received.iter().flatten() {
        for (total, n) in envelopes.iter_mut().zip(r.envelopes) {
            *total += n;
        }
    }
    let [unsigned, v1, v2] = envelopes;
    eprintln!(
        "sns: {} of {delivered} deliveries in an SNS envelope (SignatureVersion 1: {v1}, 2: {v2}, unsigned: {unsigned})",
        v1 + v2 + unsigned
    );
    let last_receive = reports
        .iter()
        .map(|q| q.last_receive_ns)
        .max()
        .unwrap_or(start);
    eprintln!(
        "sns: {} queues: {delivered} delivered in {:.2} s ({:.0} msgs/s)",
        reports.len(),
        secs(last_receive),
        delivered as f64 / secs(last_receive)
    );

    let errors: Vec<String> = sent
        .iter()
        .filter_map(|s| s.result.error.clone())
        .chain(
            received
                .iter()
                .flatten()
                .filter_map(|r| r.result.error.clone()),
        )
        .collect();
    let mut outcome = summarize(
        args,
        start,
        sent.into_iter().map(|s| s.result).collect(),
        received.into_iter().flatten().map(|r| r.result).collect(),
    );
    if !errors.is_empty() {
        return Err(format!("SNS bench clients failed: {}", errors.join("; ")).into());
    }
    // The summary counts deliveries to all queues (summarize merged them into one set).
    let summary = &mut outcome.0;
    summary.queues = reports.len();
    summary.messages_received = delivered;
    summary.msgs_per_s = delivered as f64 / summary.duration_s;
    summary.mb_per_s = summary.msgs_per_s * args.size as f64 / 1e6;
    summary.lost = reports.iter().map(|q| q.check.never_deleted).sum();
    summary.duplicated = reports.iter().map(|q| q.check.deleted_twice).sum();
    let unknown: u64 = reports.iter().map(|q| q.check.unknown).sum();
    if summary.lost > 0 || summary.duplicated > 0 || unknown > 0 || distinct_ids != published {
        return Err(format!(
            "SNS fan-out check failed: {published} published ({distinct_ids} distinct MessageIds); over {} queues {} never delivered, {} delivered more than once, {unknown} delivered but never published",
            reports.len(),
            summary.lost,
            summary.duplicated
        )
        .into());
    }
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_values_escape_all_but_unreserved_bytes() {
        let mut out = String::new();
        form_encode("arn:aws:sns:r:1:t-1_a.b~ &=+é", &mut out);
        assert_eq!(out, "arn%3Aaws%3Asns%3Ar%3A1%3At-1_a.b~%20%26%3D%2B%C3%A9");
    }

    #[test]
    fn xml_texts_and_sections_read_what_the_broker_writes() {
        let xml = "<R><PublishBatchResult><Successful><member><Id>m0</Id><MessageId>a</MessageId></member><member><Id>m1</Id><MessageId>b&amp;c</MessageId></member></Successful><Failed/></PublishBatchResult></R>";
        let ok = xml_inner(xml, "Successful");
        assert_eq!(xml_texts(ok, "Id"), ["m0", "m1"]);
        assert_eq!(xml_texts(ok, "MessageId"), ["a", "b&c"]);
        assert_eq!(xml_inner(xml, "Failed"), "");
        let failed = "<Failed><member><Id>m1</Id></member></Failed>";
        assert_eq!(xml_inner(failed, "Failed"), "<member><Id>m1</Id></member>");
        assert!(xml_texts("<Id>unclosed", "Id").is_empty());
        assert!(one("<R/>", "TopicArn", "CreateTopic").is_err());
    }

    #[test]
    fn the_check_by_stamp_sees_a_copy_missing_or_twice_in_a_queue() {
        let published = [(0u32, 0u64), (0, 1), (1, 0)];
        let got = IdCheck::of(
            published.iter().copied(),
            [(0, 0), (1, 0), (1, 0), (2, 9)].into_iter(),
        );
        assert_eq!(
            (got.never_deleted, got.deleted_twice, got.unknown),
            (1, 1, 1)
        );
    }
}
