//! The message actions: SendMessage(+Batch), ReceiveMessage, DeleteMessage(+Batch) and
//! ChangeMessageVisibility(+Batch).
//!
//! A receipt handle names the queue's catalog id, the message id and the engine's
//! lease handle (`receipt::Receipt`): one of a deleted and re-created queue, of another
//! queue, or of a lease that has since ended (expired, deleted, handed out again) is
//! refused — ReceiptHandleIsInvalid for a delete, MessageNotInflight for a visibility
//! change — and never settles some other lease. Leases do not outlive a broker run (a
//! restart returns them all) while lease handles start again from 1, so the receipt's
//! queue field also carries a tag of the run (`run_tag`): a receipt from before a
//! restart is refused rather than matched to a new lease that got the same handle. Message attributes travel as the
//! engine's headers (`attributes::to_headers`), so AMQP and native consumers see them
//! and their headers reach SQS consumers as String attributes.

use super::{attributes, Ctx};
use crate::engine::{LeaseRef, PublishEntry, PublishSpec, QueueMeta, ReceiveArgs};
use bytes::Bytes;
use peregrine_aws_wire::sqs::attributes as msg_attrs;
use peregrine_aws_wire::sqs::fifo;
use peregrine_aws_wire::sqs::md5::{md5_hex, md5_of_attributes};
use peregrine_aws_wire::sqs::receipt::{self, Receipt};
use peregrine_aws_wire::sqs::{
    AttributeValue, BatchError, BatchResult, ChangeMessageVisibility, ChangeMessageVisibilityBatch,
    DeleteMessage, DeleteMessageBatch, ErrorCode, ReceiveMessage, ReceivedMessage, Response,
    SendEntry, SendMessage, SendMessageBatch, SentMessage, WireError, TRACE_HEADER_ATTRIBUTE,
};
use std::hash::BuildHasher;
use std::sync::OnceLock;

/// SQS's largest message when a queue names none (body and attributes).
const MESSAGE_BYTES_MAX: u32 = 262_144;
/// Where the run tag sits in a receipt's queue field: above any catalog id (ids count
/// declarations from 1).
const RUN_TAG_SHIFT: u32 = 40;

/// A random 24-bit tag of this broker run, in the top bits of a u64; the same on every
/// shard (one process).
fn run_tag() -> u64 {
    static TAG: OnceLock<u64> = OnceLock::new();
    *TAG.get_or_init(|| {
        let random = std::hash::RandomState::new().hash_one(0u8);
        // Never 0, so a receipt of this run never equals an untagged catalog id.
        ((random & 0xff_ffff) | 1) << RUN_TAG_SHIFT
    })
}

/// The queue field of this run's receipts for a queue: its catalog id, tagged.
fn receipt_queue(meta: &QueueMeta) -> u64 {
    debug_assert!(
        meta.id < 1 << RUN_TAG_SHIFT,
        "catalog id {} in the tag bits",
        meta.id
    );
    meta.id ^ run_tag()
}

pub async fn send(ctx: &Ctx<'_>, req: SendMessage) -> Result<Response, WireError> {
    let name = ctx.queue(&req.queue_url)?;
    let meta = ctx.meta(&name)?;
    let spec = publish_spec(&meta, &req.message)?;
    let (mut answer, entry) = prepared(req.message, spec);
    let ids = ctx
        .engine
        .publish_each(&name, vec![entry])
        .await
        .map_err(|e| ctx.engine_error(e))?;
    let id = ids
        .first()
        .copied()
        .ok_or_else(|| WireError::new(ErrorCode::InternalFailure, "the queue stored no message"))?;
    stored(&meta, &mut answer, id);
    Ok(Response::SendMessage(answer))
}

pub async fn send_batch(ctx: &Ctx<'_>, req: SendMessageBatch) -> Result<Response, WireError> {
    let name = ctx.queue(&req.queue_url)?;
    let meta = ctx.meta(&name)?;
    let mut result = BatchResult::default();
    result.successful.reserve(req.entries.len());
    let mut answers = Vec::with_capacity(req.entries.len());
    let mut entries = Vec::with_capacity(req.entries.len());
    for entry in req.entries {
        let e = match entry {
            Ok(e) => e,
            Err(failed) => {
                result.failed.push(failed);
                continue;
            }
        };
        match publish_spec(&meta, &e) {
            Ok(spec) => {
                let (answer, entry) = prepared(e, spec);
                answers.push(answer);
                entries.push(entry);
            }
            Err(err) => result.failed.push(BatchError::new(&e.id, err)),
        }
    }
    if !entries.is_empty() {
        let ids = ctx
            .engine
            .publish_each(&name, entries)
            .await
            .map_err(|e| ctx.engine_error(e))?;
        if ids.len() != answers.len() {
            return Err(WireError::new(
                ErrorCode::InternalFailure,
                format!(
                    "the queue stored {} of {} messages",
                    ids.len(),
                    answers.len()
                ),
            ));
        }
        for (mut answer, id) in answers.into_iter().zip(ids) {
            stored(&meta, &mut answer, id);
            result.successful.push(answer);
        }
    }
    Ok(Response::SendMessageBatch(result))
}

/// The queue's MaximumMessageSize, counting attributes as SQS does.
fn check_size(meta: &QueueMeta, e: &SendEntry) -> Result<(), WireError> {
    let max = meta.config.max_message_bytes.unwrap_or(MESSAGE_BYTES_MAX);
    let size = msg_attrs::message_size(&e.body, &e.attributes);
    if size > max as usize {
        return Err(WireError::invalid(format!(
            "One or more parameters are invalid. Reason: Message must be shorter than {max} bytes (this one is {size} with its attributes)."
        )));
    }
    Ok(())
}

/// A message's FIFO fields as the queue type allows them: a FIFO queue needs a group
/// and a deduplication id (given, or the body's hash with ContentBasedDeduplication)
/// and takes no per-message delay; a standard queue takes no deduplication id (its
/// MessageGroupId, SQS's fair queues, is kept by `publish_spec` as a header). Answers
/// the group, the engine's deduplication key and the MessageDeduplicationId.
fn fifo_fields(
    meta: &QueueMeta,
    e: &SendEntry,
) -> Result<Option<(String, String, String)>, WireError> {
    if !meta.config.fifo {
        if e.dedup_id.is_some() {
            return Err(WireError::invalid(
                "The request include parameter MessageDeduplicationId that is not valid for this queue type (deduplication is for FIFO queues).",
            ));
        }
        return Ok(None);
    }
    let group = e
        .group_id
        .clone()
        .ok_or_else(|| WireError::missing("MessageGroupId"))?;
    if let Some(delay) = e.delay_seconds {
        return Err(WireError::invalid(format!(
            "Value {delay} for parameter DelaySeconds is invalid. Reason: The request include parameter that is not valid for this queue type (a FIFO queue's delay is the queue's DelaySeconds)."
        )));
    }
    let content_based = attributes::kept(meta, attributes::CONTENT_BASED_DEDUPLICATION) == "true";
    let dedup = match (&e.dedup_id, content_based) {
        (Some(id), _) => id.clone(),
        (None, true) => fifo::content_dedup_id(&e.body),
        (None, false) => {
            return Err(WireError::invalid(
                "The queue should either have ContentBasedDeduplication enabled or MessageDeduplicationId provided explicitly",
            ))
        }
    };
    let per_group = attributes::kept(meta, attributes::DEDUPLICATION_SCOPE) == "messageGroup";
    let key = fifo::dedup_key(&dedup, &group, per_group);
    Ok(Some((group, key, dedup)))
}

/// What the engine stores of a message besides its body, once its size is checked.
fn publish_spec(meta: &QueueMeta, e: &SendEntry) -> Result<PublishSpec, WireError> {
    check_size(meta, e)?;
    let mut headers = msg_attrs::to_headers(&e.attributes);
    // AWSTraceHeader, the one system attribute, is a String (`rules` checked it).
    for a in &e.system_attributes {
        if let AttributeValue::String(trace) = &a.value {
            headers.push((msg_attrs::TRACE_HEADER.to_string(), trace.clone()));
        }
    }
    let (group_id, dedup_id) = match fifo_fields(meta, e)? {
        Some((group, key, dedup)) => {
            headers.push((fifo::DEDUP_ID_HEADER.to_string(), dedup));
            (Some(group), Some(key))
        }
        None => {
            if let Some(group) = &e.group_id {
                headers.push((fifo::GROUP_ID_HEADER.to_string(), group.clone()));
            }
            (None, None)
        }
    };
    Ok(PublishSpec {
        // None: the queue's DelaySeconds applies.
        delay_ms: e.delay_seconds.map(|s| u64::from(s) * 1000),
        headers,
        group_id,
        dedup_id,
        durable: true,
        ..PublishSpec::default()
    })
}

/// A checked entry split into its answer (all but what storing it gives: `stored`) and
/// what the engine stores, the body moved rather than copied.
fn prepared(e: SendEntry, spec: PublishSpec) -> (SentMessage, PublishEntry) {
    let answer = SentMessage {
        md5_of_message_body: md5_hex(e.body.as_bytes()),
        md5_of_message_attributes: md5_of_attributes(&e.attributes),
        md5_of_message_system_attributes: md5_of_attributes(&e.system_attributes),
        id: e.id,
        message_id: String::new(),
        sequence_number: None,
    };
    let entry = PublishEntry {
        spec,
        body: Bytes::from(e.body),
    };
    (answer, entry)
}

/// The answer's fields that the stored message's id gives.
fn stored(meta: &QueueMeta, answer: &mut SentMessage, id: u64) {
    answer.message_id = receipt::message_id(meta.id, id);
    answer.sequence_number = meta.config.fifo.then(|| fifo::sequence_number(id));
}

/// ReceiveMessage: waits WaitTimeSeconds, else the queue's ReceiveMessageWaitTimeSeconds,
/// for the first message, and answers as soon as there is one (SQS does not wait to
/// fill MaxNumberOfMessages either).
pub async fn receive(ctx: &Ctx<'_>, req: ReceiveMessage) -> Result<Response, WireError> {
    let name = ctx.queue(&req.queue_url)?;
    let meta = ctx.meta(&name)?;
    let wait_ms = match req.wait_time_seconds {
        Some(s) => s * 1000,
        None => meta.config.receive_wait_ms,
    };
    let system = SystemNames::new(&req.attribute_names);
    let args = ReceiveArgs {
        max: req.max_messages,
        wait_ms,
        auto_ack: false,
        visibility_ms: req.visibility_timeout.map(|s| u64::from(s) * 1000),
        first_receive: system.first_receive,
    };
    // ReceiveRequestAttemptId is FIFO's (SQS ignores it on standard queues).
    let got = match req.receive_request_attempt_id {
        Some(attempt) if meta.config.fifo => ctx.engine.receive_attempt(&name, args, attempt).await,
        _ => ctx.engine.receive_leasing(&name, args).await,
    }
    .map_err(|e| ctx.engine_error(e))?;
    let d = &got.messages;
    let mut messages = Vec::with_capacity(d.ids.len());
    let mut extras = d.extras.iter().peekable();
    let mut at = 0usize;
    for i in 0..d.ids.len() {
        let len = d.lens.get(i).copied().unwrap_or(0) as usize;
        let bytes = got.bodies.get(at..at + len).unwrap_or_default();
        at += len;
        let extra = match extras.peek() {
            Some(x) if x.index as usize == i => extras.next(),
            _ => None,
        };
        let headers = extra.map(|x| x.headers.as_slice());
        let body = msg_attrs::body_text(bytes);
        let message_attributes =
            msg_attrs::from_headers(headers.unwrap_or_default(), &req.message_attributes);
        let receipt = Receipt {
            queue_id: receipt_queue(&meta),
            message_id: d.ids[i],
            handle: d.handles.get(i).copied().unwrap_or(0),
        };
        messages.push(ReceivedMessage {
            message_id: receipt::message_id(meta.id, d.ids[i]),
            receipt_handle: receipt.encode(),
            md5_of_body: md5_hex(body.as_bytes()),
            body,
            attributes: system.render(
                ctx,
                Delivered {
                    sent_ms: d.published_ms.get(i),
                    count: d.deliveries.get(i),
                    group_id: extra.and_then(|x| x.group_id.as_deref()),
                    headers: headers.unwrap_or_default(),
                    sequence: meta.config.fifo.then_some(d.ids[i]),
                    first_received_ms: d.first_received_ms.get(i).copied(),
                },
            ),
            md5_of_message_attributes: md5_of_attributes(&message_attributes),
            message_attributes,
        });
    }
    Ok(Response::ReceiveMessage { messages })
}

/// The system attributes a receive asked for (unknown names are ignored, as AWS asks
/// clients to allow for names added later).
struct SystemNames {
    sender_id: bool,
    sent_timestamp: bool,
    receive_count: bool,
    group_id: bool,
    dedup_id: bool,
    sequence_number: bool,
    trace_header: bool,
    first_receive: bool,
}

/// What a receive knows of one message for its system attributes.
struct Delivered<'a> {
    sent_ms: Option<&'a i64>,
    count: Option<&'a u32>,
    group_id: Option<&'a str>,
    headers: &'a [(String, String)],
    /// FIFO queues: the message id (its SequenceNumber).
    sequence: Option<u64>,
    first_received_ms: Option<i64>,
}

impl SystemNames {
    fn new(names: &[String]) -> SystemNames {
        let has = |want: &str| names.iter().any(|n| n == "All" || n == want);
        SystemNames {
            sender_id: has("SenderId"),
            sent_timestamp: has("SentTimestamp"),
            receive_count: has("ApproximateReceiveCount"),
            group_id: has("MessageGroupId"),
            dedup_id: has("MessageDeduplicationId"),
            sequence_number: has("SequenceNumber"),
            trace_header: has(TRACE_HEADER_ATTRIBUTE),
            first_receive: has("ApproximateFirstReceiveTimestamp"),
        }
    }

    fn render(&self, ctx: &Ctx<'_>, m: Delivered<'_>) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if self.sender_id {
            out.push(("SenderId".to_string(), ctx.settings().account_id.clone()));
        }
        if let (true, Some(ms)) = (self.sent_timestamp, m.sent_ms) {
            out.push(("SentTimestamp".to_string(), ms.to_string()));
        }
        if let (true, Some(n)) = (self.receive_count, m.count) {
            out.push(("ApproximateReceiveCount".to_string(), n.to_string()));
        }
        if let (true, Some(ms)) = (self.first_receive, m.first_received_ms) {
            out.push((
                "ApproximateFirstReceiveTimestamp".to_string(),
                ms.to_string(),
            ));
        }
        let trace = m.headers.iter().find(|(k, _)| k == msg_attrs::TRACE_HEADER);
        if let (true, Some((_, value))) = (self.trace_header, trace) {
            out.push((TRACE_HEADER_ATTRIBUTE.to_string(), value.clone()));
        }
        // A standard queue's group (fair queues) is a header; a FIFO queue's the engine's.
        let fair_group = m.headers.iter().find(|(k, _)| k == fifo::GROUP_ID_HEADER);
        if let (true, None, Some((_, group))) = (self.group_id, m.sequence, fair_group) {
            out.push(("MessageGroupId".to_string(), group.clone()));
        }
        if let Some(seq) = m.sequence {
            if let (true, Some(group)) = (self.group_id, m.group_id) {
                out.push(("MessageGroupId".to_string(), group.to_string()));
            }
            let dedup = m.headers.iter().find(|(k, _)| k == fifo::DEDUP_ID_HEADER);
            if let (true, Some((_, id))) = (self.dedup_id, dedup) {
                out.push(("MessageDeduplicationId".to_string(), id.clone()));
            }
            if self.sequence_number {
                out.push(("SequenceNumber".to_string(), fifo::sequence_number(seq)));
            }
        }
        out
    }
}

/// The lease a receipt names, if it is one of this incarnation of the queue handed out
/// in this broker run.
fn lease(meta: &QueueMeta, receipt_handle: &str) -> Result<LeaseRef, WireError> {
    match Receipt::decode(receipt_handle) {
        Some(r) if r.queue_id == receipt_queue(meta) => Ok(LeaseRef {
            handle: r.handle,
            message_id: r.message_id,
        }),
        _ => Err(WireError::new(
            ErrorCode::ReceiptHandleIsInvalid,
            format!("The input receipt handle \"{receipt_handle}\" is not a valid receipt handle for this queue."),
        )),
    }
}

fn expired() -> WireError {
    WireError::new(
        ErrorCode::ReceiptHandleIsInvalid,
        "The receipt handle has expired: the message was deleted, or received again after its visibility timeout.",
    )
}

fn not_inflight() -> WireError {
    WireError::new(
        ErrorCode::MessageNotInflight,
        "The message referred to is not in flight: it was deleted, or its visibility timeout ended.",
    )
}

pub async fn delete(ctx: &Ctx<'_>, req: DeleteMessage) -> Result<Response, WireError> {
    let name = ctx.queue(&req.queue_url)?;
    let meta = ctx.meta(&name)?;
    let lease = lease(&meta, &req.receipt_handle)?;
    let done = ctx
        .engine
        .ack_leases(&name, vec![lease])
        .await
        .map_err(|e| ctx.engine_error(e))?;
    match done.first() {
        Some(true) => Ok(Response::DeleteMessage),
        _ => Err(expired()),
    }
}

pub async fn delete_batch(ctx: &Ctx<'_>, req: DeleteMessageBatch) -> Result<Response, WireError> {
    let name = ctx.queue(&req.queue_url)?;
    let meta = ctx.meta(&name)?;
    let mut result = BatchResult::default();
    let mut ids = Vec::with_capacity(req.entries.len());
    let mut leases = Vec::with_capacity(req.entries.len());
    for entry in req.entries {
        let checked = entry.and_then(|e| match lease(&meta, &e.receipt_handle) {
            Ok(l) => Ok((e.id, l)),
            Err(err) => Err(BatchError::new(&e.id, err)),
        });
        match checked {
            Ok((id, l)) => {
                ids.push(id);
                leases.push(l);
            }
            Err(failed) => result.failed.push(failed),
        }
    }
    if !leases.is_empty() {
        let done = ctx
            .engine
            .ack_leases(&name, leases)
            .await
            .map_err(|e| ctx.engine_error(e))?;
        settle_entries(&mut result, ids, &done, expired);
    }
    Ok(Response::DeleteMessageBatch(result))
}

pub async fn change_visibility(
    ctx: &Ctx<'_>,
    req: ChangeMessageVisibility,
) -> Result<Response, WireError> {
    let name = ctx.queue(&req.queue_url)?;
    let meta = ctx.meta(&name)?;
    let lease = lease(&meta, &req.receipt_handle)?;
    let timeout_ms = u64::from(req.visibility_timeout) * 1000;
    let done = ctx
        .engine
        .change_visibility(&name, vec![(lease, timeout_ms)])
        .await
        .map_err(|e| ctx.engine_error(e))?;
    match done.first() {
        Some(true) => Ok(Response::ChangeMessageVisibility),
        _ => Err(not_inflight()),
    }
}

pub async fn change_visibility_batch(
    ctx: &Ctx<'_>,
    req: ChangeMessageVisibilityBatch,
) -> Result<Response, WireError> {
    let name = ctx.queue(&req.queue_url)?;
    let meta = ctx.meta(&name)?;
    let mut result = BatchResult::default();
    let mut ids = Vec::with_capacity(req.entries.len());
    let mut changes = Vec::with_capacity(req.entries.len());
    for entry in req.entries {
        let checked = entry.and_then(|e| match lease(&meta, &e.receipt_handle) {
            Ok(l) => Ok((e.id, l, u64::from(e.visibility_timeout) * 1000)),
            Err(err) => Err(BatchError::new(&e.id, err)),
        });
        match checked {
            Ok((id, l, ms)) => {
                ids.push(id);
                changes.push((l, ms));
            }
            Err(failed) => result.failed.push(failed),
        }
    }
    if !changes.is_empty() {
        let done = ctx
            .engine
            .change_visibility(&name, changes)
            .await
            .map_err(|e| ctx.engine_error(e))?;
        settle_entries(&mut result, ids, &done, not_inflight);
    }
    Ok(Response::ChangeMessageVisibilityBatch(result))
}

/// Sorts the entries the engine was asked about by its per-entry answer.
fn settle_entries(
    result: &mut BatchResult<String>,
    ids: Vec<String>,
    done: &[bool],
    refused: fn() -> WireError,
) {
    result.successful.reserve(ids.len());
    for (i, id) in ids.into_iter().enumerate() {
        match done.get(i) {
            Some(true) => result.successful.push(id),
            _ => result.failed.push(BatchError::new(&id, refused())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::QueueConfig;

    fn meta(id: u64) -> QueueMeta {
        QueueMeta {
            name: "q".into(),
            id,
            config: QueueConfig::default(),
            created_ms: 0,
            modified_ms: 0,
            attributes: Default::default(),
            tags: Default::default(),
        }
    }

    #[test]
    fn a_receipt_names_its_queue_incarnation_and_run() {
        let receipt = |queue_id| {
            Receipt {
                queue_id,
                message_id: 9,
                handle: 1,
            }
            .encode()
        };
        let ours = receipt(receipt_queue(&meta(5)));
        let got = lease(&meta(5), &ours).ok();
        assert_eq!(got.map(|l| (l.handle, l.message_id)), Some((1, 9)));
        // Another incarnation of the queue, and the same queue in another run (another
        // tag, or none), are refused.
        let refused = |text: &str, m: &QueueMeta| lease(m, text).err().map(|e| e.code);
        let invalid = Some(ErrorCode::ReceiptHandleIsInvalid);
        assert_eq!(refused(&ours, &meta(6)), invalid);
        assert_eq!(refused(&receipt(5), &meta(5)), invalid);
        let other_run = receipt(5 ^ (run_tag() ^ (2 << RUN_TAG_SHIFT)));
        assert_eq!(refused(&other_run, &meta(5)), invalid);
        assert_eq!(refused("garbage", &meta(5)), invalid);
    }
}
