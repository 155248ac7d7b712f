//! What each fuzz target runs: one pure decoder of ours on the fuzzer's bytes.
//!
//! The fuzz targets (`fuzz_targets/*.rs`, nightly, libFuzzer) and the corpus replay
//! that CI runs on stable (`tests/fuzz_corpora.rs`, which includes this file by path)
//! call the same functions, so a committed reproducer keeps failing until it is fixed.
//! A function here never asserts what the decoder may legitimately refuse; it asserts
//! only what must hold of anything the decoder accepts.

use amq_protocol::frame::{gen_frame, AMQPContentHeader, AMQPFrame, WriteContext};
use amq_protocol::protocol::{connection, AMQPClass};
use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::RequestKind;
use peregrine::amqp::{auth as amqp_auth, frames as amqp_frames, props as amqp_props};
use peregrine::auth::sasl::{parse_plain, ScramClient, ScramServer};
use peregrine::http::fuzzing::{self as http_fuzzing, Routed};
use peregrine::kafka::fuzzing::{binding_of, delete_filters, describe_filters};
use peregrine::kafka::{decode_request, Incoming};
use peregrine::native::frame;
use peregrine::sns::http_delivery::{RetryPolicy, Url};
use peregrine_aws_wire::sigv4::{self, AuthError, SignedRequest};
use peregrine_aws_wire::sns;
use peregrine_aws_wire::sqs::receipt::Receipt;
use peregrine_aws_wire::sqs::{self, attributes, model, Protocol, Request, Response};
use peregrine_shards::batch::{self, BatchHeader};
use peregrine_shards::catalog::Catalog;
use peregrine_shards::compression::{self, Codec};
use peregrine_shards::groups::offset_records::encode_batch;
use peregrine_shards::groups::{decode_offsets_batch, parse_offsets_file};
use peregrine_shards::log::{batch_at, decode_offsets, decode_times, scan_segment_bytes};
use peregrine_shards::queues::Replay;
use peregrine_shards::records;
use peregrine_shards::security::acls::{
    AclBinding, AclFilter, AclStore, Operation, PatternType, Permission, ResourceType,
    ANY_PRINCIPAL, WILDCARD,
};
use peregrine_shards::security::{ScramCredential, ScramMechanism};
use std::net::{IpAddr, Ipv4Addr};

/// What a target runs on one input.
pub type Target = fn(&[u8]);

/// The targets, by name: the corpus replay walks `fuzz/corpus/<name>/` with each.
pub const TARGETS: &[(&str, Target)] = &[
    ("kafka_request", kafka_request),
    ("native_frame", native_frame),
    ("record_batch", record_batch),
    ("segment_recovery", segment_recovery),
    ("index", index),
    ("queue_journal", queue_journal),
    ("catalog", catalog),
    ("group_offsets", group_offsets),
    ("decompress", decompress),
    ("sqs_json", sqs_json),
    ("sqs_query", sqs_query),
    ("sns_query", sns_query),
    ("sns_filter", sns_filter),
    ("amqp_frames", amqp_frames),
    ("amqp_headers", amqp_headers),
    ("http_request", http_request),
    ("sigv4", sigv4),
    ("sns_delivery", sns_delivery),
    ("sasl", sasl),
    ("acl_requests", acl_requests),
];

/// The largest native frame the broker accepts by default (`--max-frame-bytes`).
const NATIVE_FRAME_MAX: u32 = 64 << 20;
/// Output limit of the decompress target: small, so that bombs are cheap to find and
/// refusing them is what gets exercised.
const DECOMPRESSED_BYTES_MAX: usize = 1 << 20;
/// Index interval the recovery target rebuilds with: small, so entries are made.
const INDEX_INTERVAL_BYTES: u32 = 256;

/// A Kafka request frame without its length prefix: header and body of any API and
/// version (`decode` refuses what `apis::SUPPORTED` does not list).
pub fn kafka_request(data: &[u8]) {
    if let Ok(Incoming::Request(decoded)) = decode_request(Bytes::copy_from_slice(data)) {
        assert_eq!(decoded.header.request_api_key, decoded.api_key as i16);
    }
}

/// A native frame: the 8-byte head, then the envelope, read as a request and as a
/// response (the broker decodes the one, the client the other).
pub fn native_frame(data: &[u8]) {
    let Some((head, body)) = data.split_first_chunk::<{ frame::HEAD_LEN }>() else {
        return;
    };
    let envelope = match frame::parse_head(*head, NATIVE_FRAME_MAX) {
        Ok(h) => {
            assert!(h.envelope_len as usize <= h.body_len());
            body.get(..h.envelope_len as usize).unwrap_or(body)
        }
        Err(_) => body,
    };
    let _ = frame::decode_request(envelope);
    let _ = frame::decode_response(envelope);
}

/// Produce payloads: whole-batch validation, splitting, the record iterator with each
/// record's headers, and the transaction marker a control batch holds (read back from
/// segments at recovery).
pub fn record_batch(data: &[u8]) {
    if let Ok(parts) = batch::split(data) {
        for (range, header) in parts {
            assert_eq!(range.len(), header.total_len());
            let _ = records::EndTxnMarker::decode(&data[range]);
        }
    }
    let _ = batch::validate(data);
    if let Ok(it) = records::records(data) {
        for record in it.flatten() {
            let _ = record.headers();
        }
    }
}

/// An active segment at start-up with no index: the recovery scan, then the read path's
/// walk over whatever the scan kept.
pub fn segment_recovery(data: &[u8]) {
    let (outcome, offsets, times) = scan_segment_bytes(data, 0, INDEX_INTERVAL_BYTES);
    assert!(outcome.end_position <= data.len() as u64);
    assert!(outcome.stopped.is_some() || outcome.end_position == data.len() as u64);
    assert!(offsets <= data.len() && times <= data.len() + 1);
    let kept = &data[..outcome.end_position as usize];
    let mut at = 0usize;
    while let Ok(Some(header)) = batch_at(kept, at, at as u64, kept.len() as u64) {
        let len = header.total_len();
        assert!(batch::validate(&kept[at..at + len]).is_ok(), "scan kept it");
        at += len;
    }
    assert_eq!(
        at,
        kept.len(),
        "the read path walks every batch the scan kept"
    );
}

/// Offset and time index files as recovery loads them, against a 1 MiB segment.
pub fn index(data: &[u8]) {
    let (log_size, rel_end) = (1 << 20, 1 << 32);
    if let Ok(entries) = decode_offsets(data, log_size, rel_end) {
        assert!(entries
            .windows(2)
            .all(|w| w[0].rel_offset < w[1].rel_offset));
    }
    if let Ok(entries) = decode_times(data, rel_end) {
        assert!(entries
            .windows(2)
            .all(|w| w[0].timestamp_ms < w[1].timestamp_ms));
    }
}

/// A queue journal replayed at open: batches one after another, each cut where its
/// header says (no CRC check here: the log does that, and the fuzzer gets further).
pub fn queue_journal(data: &[u8]) {
    let mut replay = Replay::default();
    let mut rest = data;
    while let Ok(header) = BatchHeader::parse(rest) {
        let len = header
            .total_len()
            .clamp(batch::BATCH_HEADER_LEN, rest.len());
        if replay.batch(&rest[..len]).is_err() {
            return;
        }
        rest = &rest[len..];
    }
    let recovered = replay.recovered();
    assert!(recovered.messages.windows(2).all(|w| w[0].0.id < w[1].0.id));
}

/// The topic catalog file read at start-up, and what the broker does with each topic.
pub fn catalog(data: &[u8]) {
    let Ok(catalog) = Catalog::decode(data) else {
        return;
    };
    for topic in catalog.topics.values() {
        for p in 0..topic.config.partitions {
            assert!(topic.owner(p, 3).is_some(), "every partition is placed");
        }
    }
}

/// Committed offsets as a shard reads them: the batches of its offsets log, each
/// decoded as replay decodes it, and an older release's per-group file (read once by
/// the upgrade). What replay accepts must encode back to the same records.
pub fn group_offsets(data: &[u8]) {
    let (_commits, valid) = parse_offsets_file(data);
    assert!(valid <= data.len());
    let mut rest = data;
    while let Ok(header) = BatchHeader::parse(rest) {
        let len = header.total_len().min(rest.len());
        if let Ok(decoded) = decode_offsets_batch(&rest[..len]) {
            let records: Vec<_> = decoded.into_iter().map(|(_, r)| r).collect();
            let again = encode_batch(&records, header.base_timestamp)
                .ok()
                .flatten()
                .map(|b| decode_offsets_batch(&b));
            match again {
                Some(Ok(back)) => {
                    let back: Vec<_> = back.into_iter().map(|(_, r)| r).collect();
                    assert_eq!(back, records, "decoded records encode back to themselves");
                }
                Some(Err(e)) => panic!("a batch we encoded does not decode: {e}"),
                None => assert!(records.is_empty(), "records encode to a batch"),
            }
        }
        if len == 0 {
            break;
        }
        rest = &rest[len..];
    }
}

/// Decompression of client batches, as ListOffsets and the native client do it. The
/// first byte picks the path: 0-3 one codec's raw stream (gzip, snappy, lz4, zstd),
/// anything else a whole batch whose header names the codec, then its records.
pub fn decompress(data: &[u8]) {
    let Some((&pick, input)) = data.split_first() else {
        return;
    };
    let codecs = [Codec::Gzip, Codec::Snappy, Codec::Lz4, Codec::Zstd];
    if let Some(&codec) = codecs.get(usize::from(pick)) {
        if let Ok(out) = compression::decompress(codec, input, DECOMPRESSED_BYTES_MAX) {
            assert!(out.len() <= DECOMPRESSED_BYTES_MAX, "over the limit");
        }
        return;
    }
    let Ok(plain) = compression::uncompressed_batch(input, DECOMPRESSED_BYTES_MAX) else {
        return;
    };
    assert!(plain.len() <= batch::BATCH_HEADER_LEN + DECOMPRESSED_BYTES_MAX);
    if let Ok(it) = records::records(&plain) {
        for record in it.flatten() {
            let _ = record.headers();
        }
    }
}

/// An SQS JSON 1.0 request: up to the first newline the `X-Amz-Target` header (none if
/// there is no newline), the rest the body.
pub fn sqs_json(data: &[u8]) {
    let (target, body) = split_line(data);
    let target = target.and_then(|t| std::str::from_utf8(t).ok());
    if let Ok(request) = sqs::decode(Protocol::Json, target, "", body) {
        sqs_request_holds(&request);
    }
}

/// An SQS query request: up to the first newline the URL's query string (empty if
/// there is no newline), the rest the form body.
pub fn sqs_query(data: &[u8]) {
    let (query, body) = split_line(data);
    let query = query.map_or(Some(""), |q| std::str::from_utf8(q).ok());
    let Some(query) = query else {
        return;
    };
    if let Ok(request) = sqs::decode(Protocol::Query, None, query, body) {
        sqs_request_holds(&request);
    }
}

fn split_line(data: &[u8]) -> (Option<&[u8]>, &[u8]) {
    match data.iter().position(|&b| b == b'\n') {
        Some(at) => (Some(&data[..at]), &data[at + 1..]),
        None => (None, data),
    }
}

/// What every decoded SQS request keeps to: SQS's limits, and messages that come back
/// unchanged through both answer encodings.
fn sqs_request_holds(request: &Request) {
    let in_range = |v: Option<u32>, max: u32| v.is_none_or(|v| v <= max);
    match request {
        Request::SendMessage(r) => sqs_message_holds(&r.message),
        Request::SendMessageBatch(r) => {
            sqs_batch_holds(
                r.entries
                    .iter()
                    .map(|e| e.as_ref().map_or_else(|f| &f.id, |e| &e.id)),
            );
            let total: usize = r
                .entries
                .iter()
                .flatten()
                .map(|e| attributes::message_size(&e.body, &e.attributes))
                .sum();
            assert!(total <= model::MESSAGE_BYTES_MAX);
            r.entries.iter().flatten().for_each(sqs_message_holds);
        }
        Request::DeleteMessageBatch(r) => {
            sqs_batch_holds(
                r.entries
                    .iter()
                    .map(|e| e.as_ref().map_or_else(|f| &f.id, |e| &e.id)),
            );
        }
        Request::ChangeMessageVisibilityBatch(r) => {
            sqs_batch_holds(
                r.entries
                    .iter()
                    .map(|e| e.as_ref().map_or_else(|f| &f.id, |e| &e.id)),
            );
            for e in r.entries.iter().flatten() {
                assert!(e.visibility_timeout <= model::VISIBILITY_TIMEOUT_MAX);
            }
        }
        Request::ChangeMessageVisibility(r) => {
            assert!(r.visibility_timeout <= model::VISIBILITY_TIMEOUT_MAX);
        }
        Request::ReceiveMessage(r) => {
            assert!((1..=model::RECEIVE_MESSAGES_MAX).contains(&r.max_messages));
            assert!(in_range(
                r.visibility_timeout,
                model::VISIBILITY_TIMEOUT_MAX
            ));
            assert!(in_range(r.wait_time_seconds, model::WAIT_TIME_SECONDS_MAX));
            assert!(r.attribute_names.len() <= 2 * model::ATTRIBUTE_NAMES_MAX as usize);
        }
        Request::ListQueues(r) => {
            assert!(r
                .max_results
                .is_none_or(|m| (1..=model::LIST_QUEUES_MAX).contains(&m)));
        }
        Request::CreateQueue(r) => {
            assert!(model::check_queue_name(&r.queue_name).is_ok());
            assert!(r.attributes.len() <= model::QUEUE_ATTRIBUTES_MAX as usize);
            assert!(r.tags.len() <= model::TAGS_MAX);
        }
        Request::TagQueue(r) => {
            assert!((1..=model::TAGS_MAX).contains(&r.tags.len()));
            let tags = r.tags.iter().map(|(k, v)| (k.as_str(), Some(v.as_str())));
            assert!(model::check_tags(r.tags.len(), tags).is_ok());
        }
        Request::UntagQueue(r) => {
            assert!((1..=model::TAGS_MAX).contains(&r.tag_keys.len()));
        }
        Request::StartMessageMoveTask(r) => {
            assert!(r
                .max_per_second
                .is_none_or(|m| (1..=model::MOVE_RATE_MAX).contains(&m)));
        }
        Request::ListMessageMoveTasks(r) => {
            assert!((1..=model::MOVE_TASKS_LISTED_MAX).contains(&r.max_results));
        }
        Request::ListDeadLetterSourceQueues(r) => {
            assert!(r
                .max_results
                .is_none_or(|m| (1..=model::LIST_QUEUES_MAX).contains(&m)));
        }
        Request::SetQueueAttributes(r) => {
            assert!(r.attributes.len() <= model::QUEUE_ATTRIBUTES_MAX as usize);
        }
        Request::GetQueueAttributes(r) => {
            assert!(r.attribute_names.len() <= model::ATTRIBUTE_NAMES_MAX as usize);
        }
        Request::GetQueueUrl(_)
        | Request::DeleteQueue(_)
        | Request::PurgeQueue(_)
        | Request::DeleteMessage(_)
        | Request::ListQueueTags(_)
        | Request::CancelMessageMoveTask(_) => {}
    }
}

fn sqs_batch_holds<'a>(ids: impl ExactSizeIterator<Item = &'a String>) {
    assert!((1..=model::BATCH_ENTRIES_MAX).contains(&ids.len()));
    let mut seen = std::collections::BTreeSet::new();
    for id in ids {
        assert!(model::valid_batch_id(id), "{id:?}");
        assert!(seen.insert(id), "{id:?} twice");
    }
}

/// An accepted message is valid, and received back through either wire it is the same
/// body and attributes (JSON read back here; XML must carry no raw CR, which parsers
/// would turn into LF).
fn sqs_message_holds(m: &model::SendEntry) {
    assert!(attributes::check_body(&m.body).is_ok());
    assert!(attributes::validate(&m.attributes).is_ok());
    assert!(attributes::message_size(&m.body, &m.attributes) <= model::MESSAGE_BYTES_MAX);
    assert!(m
        .delay_seconds
        .is_none_or(|d| d <= model::DELAY_SECONDS_MAX));
    for id in [&m.group_id, &m.dedup_id].into_iter().flatten() {
        assert!(model::check_fifo_id("id", id).is_ok(), "{id:?}");
    }
    let headers = attributes::to_headers(&m.attributes);
    let back = attributes::from_headers(&headers, &attributes::AttributeFilter::all());
    assert_eq!(
        back, m.attributes,
        "attributes survive the engine's headers"
    );
    let received = Response::ReceiveMessage {
        messages: vec![model::ReceivedMessage {
            message_id: sqs::receipt::message_id(1, 2),
            receipt_handle: String::new(),
            md5_of_body: sqs::md5::md5_hex(m.body.as_bytes()),
            body: m.body.clone(),
            attributes: Vec::new(),
            md5_of_message_attributes: sqs::md5::md5_of_attributes(&back),
            message_attributes: back,
        }],
    };
    let xml = sqs::encode(Protocol::Query, &received, "r").body;
    assert!(!xml.contains(&b'\r'), "a raw CR in XML");
    let json = sqs::encode(Protocol::Json, &received, "r").body;
    let value: serde_json::Value = serde_json::from_slice(&json).expect("our JSON parses");
    assert_eq!(value["Messages"][0]["Body"].as_str(), Some(m.body.as_str()));
}

/// An SNS query request (as `sqs_query` splits it), then the same bytes as a stored SNS
/// record (`record::decode`: lines `name=value` up to an empty line are the headers, a
/// line without `=` a header without value, the rest the value). A decoded Publish(Batch)
/// keeps SNS's limits, and its messages come back unchanged through the stored record.
pub fn sns_query(data: &[u8]) {
    let (query, body) = split_line(data);
    if let Some(query) = query.map_or(Some(""), |q| std::str::from_utf8(q).ok()) {
        if let Ok(request) = sns::decode(query, body) {
            sns_request_holds(&request);
        }
    }
    let (head, value) = match data.windows(2).position(|w| w == b"\n\n") {
        Some(at) => (&data[..at], &data[at + 2..]),
        None => (&data[..0], data),
    };
    let headers: Vec<(&[u8], Option<&[u8]>)> = head
        .split(|&b| b == b'\n')
        .map(|line| match line.iter().position(|&b| b == b'=') {
            Some(at) => (&line[..at], Some(&line[at + 1..])),
            None => (line, None),
        })
        .collect();
    if let Ok(stored) = sns::record::decode(&headers, value) {
        sns_stored_round_trips(&stored);
    }
}

fn sns_request_holds(request: &sns::Request) {
    match request {
        sns::Request::Publish(p) => sns_entry_holds(&p.message),
        sns::Request::PublishBatch(b) => {
            assert!((1..=sns::BATCH_ENTRIES_MAX).contains(&b.entries.len()));
            let mut seen = std::collections::BTreeSet::new();
            for e in &b.entries {
                let id = e.as_ref().map_or_else(|f| &f.id, |e| &e.id);
                assert!(model::valid_batch_id(id) && seen.insert(id), "{id:?}");
            }
            b.entries.iter().flatten().for_each(sns_entry_holds);
        }
        sns::Request::CreateTopic(c) => {
            assert!(sns::check_topic_name(&c.name).is_ok());
            assert_eq!(c.fifo, c.name.ends_with(sns::FIFO_SUFFIX));
            assert!(c.tags.len() <= sns::TAGS_MAX);
        }
        sns::Request::TagResource(t) => assert!((1..=sns::TAGS_MAX).contains(&t.tags.len())),
        sns::Request::UntagResource(u) => {
            assert!((1..=sns::TAGS_MAX).contains(&u.tag_keys.len()))
        }
        _ => {}
    }
}

fn sns_entry_holds(e: &sns::PublishEntry) {
    assert!(!e.message.is_empty());
    assert!(attributes::validate(&e.attributes).is_ok());
    assert!(attributes::message_size(&e.message, &e.attributes) <= sns::MESSAGE_BYTES_MAX);
    assert!(e
        .subject
        .as_ref()
        .is_none_or(|s| s.chars().count() <= sns::SUBJECT_MAX));
    sns_stored_round_trips(&sns::record::Stored {
        message: e.message.clone(),
        subject: e.subject.clone(),
        attributes: e.attributes.clone(),
        group_id: e.group_id.clone(),
        dedup_id: e.dedup_id.clone(),
        published_ms: 1,
        structured: e.structured,
    });
    if e.structured {
        // A checked structure always yields one of its members (each shorter than the
        // object's text), never the object itself.
        let stored = sns::record::Stored {
            message: e.message.clone(),
            structured: true,
            ..Default::default()
        };
        assert!(stored.message_for("sqs").len() < e.message.len());
    }
}

/// What `record::encode` writes, `record::decode` reads back as it was (attributes in
/// name order, as the decoder gives them).
fn sns_stored_round_trips(stored: &sns::record::Stored) {
    let (headers, value) = sns::record::encode(stored);
    let borrowed: Vec<(&[u8], Option<&[u8]>)> = headers
        .iter()
        .map(|(k, v)| (k.as_bytes(), Some(v.as_bytes())))
        .collect();
    match sns::record::decode(&borrowed, &value) {
        Ok(back) => {
            let mut expected = stored.clone();
            expected.attributes.sort_by(|a, b| a.name.cmp(&b.name));
            assert_eq!(back, expected);
        }
        Err(e) => panic!("a record we encoded does not decode: {e}"),
    }
}

/// A filter policy and a message: the first byte picks the scope (even: attributes,
/// odd: body), up to the next newline the policy, the rest the body. An accepted policy
/// is matched against the body and against attributes made from it.
pub fn sns_filter(data: &[u8]) {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let scope = if pick % 2 == 0 {
        sns::filter::Scope::MessageAttributes
    } else {
        sns::filter::Scope::MessageBody
    };
    let (policy, body) = split_line(rest);
    let Some(policy) = policy.and_then(|p| std::str::from_utf8(p).ok()) else {
        return;
    };
    let Ok(policy) = sns::filter::FilterPolicy::parse(policy, scope) else {
        return;
    };
    let body = String::from_utf8_lossy(body);
    let string = |name: &str, data_type: &str| sns::MessageAttribute {
        name: name.to_owned(),
        data_type: data_type.to_owned(),
        value: sns::AttributeValue::String(body.to_string()),
    };
    let attrs = [
        string("a", "String"),
        string("n", "Number"),
        string("s", sns::filter::STRING_ARRAY),
    ];
    let _ = policy.matches(&attrs, &body);
}

/// What an AMQP client sends after the protocol header: frames split off as the
/// connection's reader splits them (`frames::frame_len`, `frames::take_frame`, at the
/// largest frame_max the broker offers), methods and content headers decoded as the
/// connection and its channels decode them, a `start-ok`'s SASL response checked as the
/// handshake checks it, and a publish's properties stored as engine headers and
/// delivered back (`amqp_delivery_holds`).
pub fn amqp_frames(data: &[u8]) {
    let mut buf = BytesMut::from(data);
    loop {
        let total = match amqp_frames::frame_len(&buf, peregrine::amqp::FRAME_MAX) {
            Ok(Some(total)) if total <= buf.len() => total,
            _ => return,
        };
        assert!(total >= amqp_frames::FRAME_OVERHEAD);
        let Ok(frame) = amqp_frames::take_frame(buf.split_to(total)) else {
            return;
        };
        assert_eq!(frame.payload.len() + amqp_frames::FRAME_OVERHEAD, total);
        match frame.kind {
            amqp_frames::FRAME_METHOD => {
                let Ok(method) = amqp_frames::decode_method(&frame.payload) else {
                    continue;
                };
                if let AMQPClass::Connection(connection::AMQPMethod::StartOk(start_ok)) = method {
                    let users = [("app".to_string(), "s3cret".to_string())];
                    let loopback = Some(std::net::IpAddr::from([127, 0, 0, 1]));
                    let login = amqp_auth::Login {
                        peer: loopback,
                        certificate: None,
                        mechanism: start_ok.mechanism.as_str(),
                        response: start_ok.response.as_bytes(),
                    };
                    if let Ok(user) = amqp_auth::authenticate_without_store(&users, true, &login) {
                        assert!(user == "app" || user == "guest", "logged in as {user:?}");
                    }
                }
            }
            amqp_frames::FRAME_HEADER => {
                if let Ok(header) = amqp_frames::decode_content_header(&frame.payload) {
                    let stored = amqp_props::to_headers(&header.properties);
                    let priority = header.properties.priority().unwrap_or(0);
                    amqp_delivery_holds(&stored, priority);
                }
            }
            _ => {}
        }
    }
}

/// A stored message's engine headers as an AMQP consumer gets them: the first byte is
/// the message's priority, the rest `name=value` lines (any protocol may have written
/// them, `amqp-typed-headers` included).
pub fn amqp_headers(data: &[u8]) {
    let Some((&priority, rest)) = data.split_first() else {
        return;
    };
    let headers: Vec<(String, String)> = rest
        .split(|&b| b == b'\n')
        .map(|line| {
            let (name, value) = match line.iter().position(|&b| b == b'=') {
                Some(at) => (&line[..at], &line[at + 1..]),
                None => (line, &line[..0]),
            };
            let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
            (text(name), text(value))
        })
        .collect();
    amqp_delivery_holds(&headers, priority);
}

/// Whatever headers a stored message has, its delivery's content header encodes (the
/// broker would otherwise send body frames without one), and reads back to the same
/// bytes.
fn amqp_delivery_holds(headers: &[(String, String)], priority: u8) {
    let properties = amqp_props::from_headers(headers, priority);
    let encode = |properties| {
        let header = AMQPContentHeader {
            class_id: 60,
            body_size: 3,
            properties,
        };
        let frame = AMQPFrame::Header(1, header);
        let encoded = gen_frame(&frame)(WriteContext::from(Vec::new()));
        match encoded {
            Ok(ctx) => ctx.write,
            Err(e) => panic!("a delivery's content header does not encode: {e:?}"),
        }
    };
    let bytes = encode(properties);
    let payload = &bytes[amqp_frames::FRAME_HEAD_LEN..bytes.len() - 1];
    let back = match amqp_frames::decode_content_header(payload) {
        Ok(header) => header,
        Err(e) => panic!("a content header we encoded does not decode: {e}"),
    };
    assert_eq!(
        encode(back.properties),
        bytes,
        "a content header reads back as it was written"
    );
}

/// A connection's bytes on the HTTP port: requests framed by the connection's own head
/// parser, routed and decoded as the connection does it (`peregrine::http::fuzzing`).
/// Framing stays within the head and body bounds; a refusal has a status the module
/// documents; decoded SQS and SNS requests keep to their limits; receipt handles that
/// decode encode back.
pub fn http_request(data: &[u8]) {
    let mut at = 0usize;
    for framed in http_fuzzing::requests(data) {
        match framed.routed {
            Routed::Refused(status) => {
                assert!(
                    [400, 408, 413, 417, 431, 501].contains(&status),
                    "refused with {status}"
                );
                return;
            }
            Routed::Sqs(_, Ok(request)) => {
                sqs_request_holds(&request);
                let receipt = match &request {
                    Request::DeleteMessage(r) => Some(&r.receipt_handle),
                    Request::ChangeMessageVisibility(r) => Some(&r.receipt_handle),
                    _ => None,
                };
                if let Some(receipt) = receipt.and_then(|r| Receipt::decode(r)) {
                    assert_eq!(Receipt::decode(&receipt.encode()), Some(receipt));
                }
            }
            Routed::Sns(Ok(request)) => sns_request_holds(&request),
            Routed::Sqs(_, Err(_)) | Routed::Sns(Err(_)) | Routed::Operator => {}
        }
        assert!(framed.head_len <= peregrine::http::HEAD_BYTES_MAX);
        assert!(framed.body_len <= peregrine::http::BODY_BYTES_MAX);
        at += framed.head_len + framed.body_len;
        assert!(at <= data.len(), "framed past the bytes received");
    }
}

/// The access key and secret the `sigv4` target verifies with (those of the botocore
/// captures in `aws-wire/testdata/sigv4`).
pub const SIGV4_KEY: &str = "AKIDPEREGRINE";
pub const SIGV4_SECRET: &str = "peregrine/secret+key";

/// A request as `--http-auth` checks it (`http::auth::refuse`): its head parsed with
/// httparse, the rest its body, verified against `SIGV4_KEY` at the request's own
/// X-Amz-Date, so the signature itself is computed and compared, not only the clock.
/// A request that verifies must stop verifying when one digit of its signature changes.
pub fn sigv4(data: &[u8]) {
    if sigv4_verifies(data) != Some(true) {
        return;
    }
    let Some(digit) = signature_digit(data) else {
        panic!("verified without a signature in its Authorization header");
    };
    let mut forged = data.to_vec();
    forged[digit] = if forged[digit] == b'0' { b'1' } else { b'0' };
    assert_eq!(
        sigv4_verifies(&forged),
        Some(false),
        "a changed signature still verifies"
    );
}

/// Where the first digit of the Authorization header's `Signature` part sits (the part
/// the verifier reads: `Signature=` may also occur inside another part's value).
fn signature_digit(data: &[u8]) -> Option<usize> {
    let mut headers = [httparse::EMPTY_HEADER; peregrine::http::HEADERS_MAX];
    let mut req = httparse::Request::new(&mut headers);
    req.parse(data).ok()?;
    let value = req
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("authorization"))?
        .value;
    // The value is a slice of `data`: its offset there.
    let start = value.as_ptr() as usize - data.as_ptr() as usize;
    let mut at = 0;
    for part in value.split(|&b| b == b',') {
        let blank = part.iter().take_while(|b| b.is_ascii_whitespace()).count();
        if part[blank..].starts_with(b"Signature=") {
            let digit = at + blank + b"Signature=".len();
            return value
                .get(digit)
                .is_some_and(u8::is_ascii_hexdigit)
                .then_some(start + digit);
        }
        at += part.len() + 1;
    }
    None
}

/// `Some(verified)` for a request with a whole head; `None` otherwise.
pub fn sigv4_verifies(data: &[u8]) -> Option<bool> {
    let mut headers = [httparse::EMPTY_HEADER; peregrine::http::HEADERS_MAX];
    let mut req = httparse::Request::new(&mut headers);
    let Ok(httparse::Status::Complete(len)) = req.parse(data) else {
        return None;
    };
    let pairs: Vec<(&str, &[u8])> = req.headers.iter().map(|h| (h.name, h.value)).collect();
    let signed = SignedRequest {
        method: req.method.unwrap_or(""),
        target: req.path.unwrap_or(""),
        headers: &pairs,
        body: &data[len..],
    };
    let now = pairs
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("x-amz-date"))
        .and_then(|(_, value)| std::str::from_utf8(value).ok())
        .and_then(sigv4::parse_amz_date)
        .unwrap_or(std::time::UNIX_EPOCH);
    let keys = |key: &str| (key == SIGV4_KEY).then(|| SIGV4_SECRET.to_string());
    match sigv4::verify(&signed, &keys, now) {
        Ok(()) => Some(true),
        Err(e) => {
            // Every refusal is one the SDKs know, with its status.
            assert!(matches!(e.status(), 400 | 403));
            assert!(
                !matches!(e, AuthError::Skewed { .. }),
                "skewed at its own date"
            );
            Some(false)
        }
    }
}

/// An SNS subscription's HTTP delivery settings, as Subscribe and SetSubscriptionAttributes
/// hand them over: up to the first newline the endpoint URL (`Url::parse`), the rest a
/// subscription's `DeliveryPolicy` JSON read as the retry policy (and as a topic's,
/// `RetryPolicy::of`). A parsed URL names a host, a port and a path; a policy's schedule
/// has one delay per retry, each within the policy's bounds.
pub fn sns_delivery(data: &[u8]) {
    let (url, policy) = split_line(data);
    if let Some(url) = url.and_then(|u| std::str::from_utf8(u).ok()) {
        if let Ok(parsed) = Url::parse(url) {
            assert!(!parsed.host.is_empty() && parsed.port != 0);
            assert!(parsed.path.starts_with('/'), "{parsed:?}");
        }
    }
    let Ok(policy) = std::str::from_utf8(policy) else {
        return;
    };
    for of in [
        RetryPolicy::of(Some(policy), None),
        RetryPolicy::of(None, Some(policy)),
    ] {
        let delays = of.delays();
        assert_eq!(delays.len(), of.retries as usize);
        let max = std::time::Duration::from_secs(u64::from(of.max_delay_s));
        assert!(delays.iter().all(|d| *d <= max), "{of:?}: {delays:?}");
    }
}

/// Where a `sasl` input stands for the nonce of the exchange (random on each run), so
/// that the fuzzer gets past the nonce check.
const SASL_NONCE: &[u8] = b"@NONCE@";

fn with_nonce(message: &[u8], nonce: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + nonce.len());
    let mut rest = message;
    while let Some(at) = rest.windows(SASL_NONCE.len()).position(|w| w == SASL_NONCE) {
        out.extend_from_slice(&rest[..at]);
        out.extend_from_slice(nonce.as_bytes());
        rest = &rest[at + SASL_NONCE.len()..];
    }
    out.extend_from_slice(rest);
    out
}

/// A SASL login as the broker reads it, and SCRAM answers as the native client reads
/// them. The first byte picks: 0 PLAIN (the rest is the message); 1 and 2 a SCRAM-SHA-256
/// or -512 server for user `user` (the first line is the client-first message, the rest
/// the client-final one); 3 and 4 a SCRAM client (the server-first, then the
/// server-final message). `@NONCE@` stands for the exchange's nonce. Without the
/// password no login and no server can be accepted.
pub fn sasl(data: &[u8]) {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let mechanism = if selector % 2 == 1 {
        ScramMechanism::Sha256
    } else {
        ScramMechanism::Sha512
    };
    let (first, last) = split_line(rest);
    match selector % 5 {
        0 => {
            if let Ok(plain) = parse_plain(rest) {
                assert!(!plain.user.is_empty() && !plain.password.is_empty());
                assert!(plain.authzid.is_empty() || plain.authzid == plain.user);
                assert!(!plain.user.contains('\0') && !plain.password.contains('\0'));
            }
        }
        1 | 2 => {
            let salt = b"fuzzing salt".to_vec();
            let salted = mechanism.salted_password(b"not in the input", &salt, 4096);
            let Ok(credential) =
                ScramCredential::from_salted_password(mechanism, salt, 4096, &salted)
            else {
                return;
            };
            let mut server = ScramServer::new(mechanism);
            let Ok(challenge) = server.client_first(first.unwrap_or(rest), |user| {
                (user == "user").then(|| credential.clone())
            }) else {
                return;
            };
            let challenge = String::from_utf8(challenge).expect("a server-first message is text");
            let nonce = challenge
                .strip_prefix("r=")
                .and_then(|r| r.split(',').next())
                .expect("a server-first message starts with the nonce");
            let accepted = server.client_final(&with_nonce(last, nonce));
            assert!(
                accepted.is_err(),
                "a login without the password was accepted"
            );
        }
        _ => {
            let Ok(mut client) = ScramClient::new(mechanism, "user", "pencil") else {
                return;
            };
            let hello = String::from_utf8(client.client_first()).expect("text");
            let nonce = hello.rsplit_once("r=").map_or("", |(_, n)| n).to_string();
            if client
                .server_first(&with_nonce(first.unwrap_or(rest), &nonce))
                .is_ok()
            {
                let verified = client.server_final(last);
                assert!(
                    verified.is_err(),
                    "a server without the credential was accepted"
                );
            }
        }
    }
}

/// DescribeAcls, CreateAcls and DeleteAcls.
const ACL_API_KEYS: [i16; 3] = [29, 30, 31];

/// Most bindings whose resources `acl_requests` asks `authorize` about after a request.
const ACL_QUERIES_MAX: usize = 32;

/// Kafka's ACL requests as the broker applies them, short of the engine: frames (a
/// big-endian u16 length, then a request as `kafka_request` reads it) of CreateAcls,
/// DeleteAcls and DescribeAcls change or read one `AclStore`, through the handlers' own
/// conversions. After each, the store's indexed answers (`remove_matching`, `len`, and
/// `authorize` with its per-length prefix lookups) must equal a plain scan of every
/// binding with Kafka's rules.
pub fn acl_requests(data: &[u8]) {
    acl_requests_applied(data);
}

/// `acl_requests`, answering how many bindings its creations added.
pub fn acl_requests_applied(data: &[u8]) -> usize {
    let mut store = AclStore::default();
    let mut added = 0;
    let mut rest = data;
    while let Some((len, tail)) = rest.split_first_chunk::<2>() {
        let (frame, next) = tail.split_at((u16::from_be_bytes(*len) as usize).min(tail.len()));
        rest = next;
        // The other APIs are `kafka_request`'s: time goes to the ACL requests.
        let api_key = frame.first_chunk::<2>().map(|k| i16::from_be_bytes(*k));
        if !api_key.is_some_and(|k| ACL_API_KEYS.contains(&k)) {
            continue;
        }
        let Ok(Incoming::Request(decoded)) = decode_request(Bytes::copy_from_slice(frame)) else {
            continue;
        };
        let mut asked: Vec<AclFilter> = Vec::new();
        match decoded.body {
            RequestKind::CreateAcls(req) => {
                for creation in &req.creations {
                    let Ok(binding) = binding_of(creation) else {
                        continue;
                    };
                    let valid = binding.validate().is_ok();
                    let known = store.bindings().any(|b| *b == binding);
                    match store.add(binding.clone()) {
                        Ok(new) => {
                            assert!(valid, "an invalid binding was added: {binding:?}");
                            assert_eq!(new, !known, "{binding:?}");
                            added += usize::from(new);
                        }
                        Err(_) => assert!(!valid, "a valid binding was refused: {binding:?}"),
                    }
                }
            }
            // `matching` is this very scan, so a describe only names resources to ask
            // `authorize` about.
            RequestKind::DescribeAcls(req) => asked = describe_filters(&req).unwrap_or_default(),
            RequestKind::DeleteAcls(req) => {
                for f in &req.filters {
                    for filter in delete_filters(f).unwrap_or_default() {
                        let before: Vec<AclBinding> = store.bindings().cloned().collect();
                        let mut removed = store.remove_matching(&filter);
                        let mut expected: Vec<AclBinding> = before
                            .iter()
                            .filter(|b| filter.matches(b))
                            .cloned()
                            .collect();
                        removed.sort();
                        expected.sort();
                        assert_eq!(removed, expected);
                        assert!(store.bindings().all(|b| !filter.matches(b)));
                        asked.push(filter);
                    }
                }
            }
            _ => continue,
        }
        check_acl_store(&store, &asked);
    }
    added
}

/// The store's count and `authorize` against a scan of its bindings, for resources
/// named by its bindings (and one character longer and shorter, across prefix lengths) and
/// by the request's filters.
fn check_acl_store(store: &AclStore, asked: &[AclFilter]) {
    let bindings: Vec<AclBinding> = store.bindings().cloned().collect();
    assert_eq!(store.len(), bindings.len());
    let mut queries = Vec::new();
    for b in bindings.iter().take(ACL_QUERIES_MAX) {
        let host = b.host.parse().unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
        let principal = if b.principal == ANY_PRINCIPAL {
            "User:someone"
        } else {
            &b.principal
        };
        let mut longer = b.name.clone();
        longer.push('x');
        let mut shorter = b.name.clone();
        shorter.pop();
        for name in [b.name.clone(), longer, shorter] {
            queries.push((
                principal.to_string(),
                host,
                b.operation,
                b.resource_type,
                name,
            ));
        }
    }
    for f in asked {
        let (Some(rtype), Some(name)) = (f.resource_type, &f.name) else {
            continue;
        };
        let principal = f.principal.clone().unwrap_or_else(|| "User:someone".into());
        let host = f.host.as_deref().and_then(|h| h.parse().ok());
        let host = host.unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
        queries.push((
            principal,
            host,
            f.operation.unwrap_or(Operation::Read),
            rtype,
            name.clone(),
        ));
    }
    for (principal, host, op, rtype, name) in &queries {
        let plain = authorize_by_scan(&bindings, principal, *host, *op, *rtype, name);
        assert_eq!(
            store.authorize(principal, *host, *op, *rtype, name),
            plain,
            "{principal} from {host}: {op:?} on {rtype:?} {name:?}"
        );
    }
}

/// Kafka's decision, binding by binding: a deny of the operation (or All) that applies
/// wins; otherwise some allow that applies must grant it.
fn authorize_by_scan(
    bindings: &[AclBinding],
    principal: &str,
    host: IpAddr,
    op: Operation,
    rtype: ResourceType,
    name: &str,
) -> bool {
    let mut allowed = false;
    for b in bindings {
        let resource = b.resource_type == rtype
            && match b.pattern {
                PatternType::Literal => b.name == name || b.name == WILDCARD,
                PatternType::Prefixed => name.starts_with(&b.name),
            };
        let who = b.principal == principal || b.principal == ANY_PRINCIPAL;
        let from = b.host == WILDCARD
            || b.host
                .parse::<IpAddr>()
                .is_ok_and(|h| h.to_canonical() == host.to_canonical());
        if !(resource && who && from) {
            continue;
        }
        match b.permission {
            Permission::Deny if b.operation == op || b.operation == Operation::All => return false,
            Permission::Deny => {}
            Permission::Allow => allowed |= b.operation.grants(op),
        }
    }
    allowed
}
