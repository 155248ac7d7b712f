//! Both decoders on requests exactly as botocore serializes them (`testdata/`, written
//! by `testdata/capture.py`: JSON by botocore 1.43.11, forms by botocore 1.34.89), and
//! every limit on both wires.

use std::collections::BTreeMap;

use super::attributes::AttributeFilter;
use super::*;

fn fixture(path: &str) -> Vec<u8> {
    let full = format!("{}/testdata/{path}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&full).unwrap_or_else(|e| panic!("{full}: {e}"))
}

/// The action a fixture's name starts with (`SendMessage-fifo` → `SendMessage`).
fn target(name: &str) -> String {
    let action = name.split('-').next().unwrap_or(name);
    format!("AmazonSQS.{action}")
}

fn json_fixture(name: &str) -> Result<Request, WireError> {
    let body = fixture(&format!("json/{name}.json"));
    decode(Protocol::Json, Some(&target(name)), "", &body)
}

fn query_fixture(name: &str) -> Result<Request, WireError> {
    decode(
        Protocol::Query,
        None,
        "",
        &fixture(&format!("query/{name}.form")),
    )
}

/// A fixture both wires decode to the same request.
fn both(name: &str) -> Request {
    let json = json_fixture(name).unwrap_or_else(|e| panic!("json {name}: {e}"));
    let query = query_fixture(name).unwrap_or_else(|e| panic!("query {name}: {e}"));
    assert_eq!(json, query, "{name}: the wires disagree");
    json
}

/// A fixture both wires refuse with `code`.
fn both_refuse(name: &str, code: ErrorCode) {
    for (wire, result) in [("json", json_fixture(name)), ("query", query_fixture(name))] {
        let e = result.expect_err(name);
        assert_eq!(e.code, code, "{wire} {name}: {e}");
    }
}

fn json(action: &str, body: &str) -> Result<Request, WireError> {
    decode(
        Protocol::Json,
        Some(&format!("AmazonSQS.{action}")),
        "",
        body.as_bytes(),
    )
}

fn form(body: &str) -> Result<Request, WireError> {
    decode(Protocol::Query, None, "", body.as_bytes())
}

const URL: &str = "http://127.0.0.1:1/000000000000/orders";
const Q: &str = "QueueUrl=http%3A%2F%2F127.0.0.1%3A1%2F000000000000%2Forders";

fn string_attr(name: &str, data_type: &str, value: &str) -> MessageAttribute {
    MessageAttribute {
        name: name.into(),
        data_type: data_type.into(),
        value: AttributeValue::String(value.into()),
    }
}

#[test]
fn create_queue_with_attributes() {
    let Request::CreateQueue(r) = both("CreateQueue") else {
        panic!("not CreateQueue")
    };
    assert_eq!(r.queue_name, "orders");
    assert_eq!(r.attributes.len(), 3);
    assert_eq!(r.attributes["VisibilityTimeout"], "45");
    assert_eq!(r.attributes["DelaySeconds"], "2");
    assert_eq!(
        r.attributes["RedrivePolicy"],
        r#"{"deadLetterTargetArn": "arn:aws:sqs:us-east-1:000000000000:dlq", "maxReceiveCount": 2}"#
    );
    assert_eq!(
        both("CreateQueue-plain"),
        Request::CreateQueue(CreateQueue {
            queue_name: "orders".into(),
            attributes: BTreeMap::new(),
            tags: BTreeMap::new(),
        })
    );
}

#[test]
fn create_queue_takes_tags_and_refuses_bad_names() {
    let Request::CreateQueue(r) = both("CreateQueue-tags") else {
        panic!("not CreateQueue")
    };
    assert_eq!(r.tags.get("team").map(String::as_str), Some("a"));
    for name in ["bad%20name%21", &"q".repeat(81), "a.b.fifo", ".fifo", ""] {
        let e = form(&format!("Action=CreateQueue&QueueName={name}")).expect_err(name);
        assert_eq!(e.code, ErrorCode::InvalidParameterValue, "{name}");
    }
    let e = json("CreateQueue", r#"{"QueueName":"bad name!"}"#).expect_err("bad name");
    assert_eq!(e.code, ErrorCode::InvalidParameterValue);
    let e = json("CreateQueue", "{}").expect_err("no name");
    assert_eq!(e.code, ErrorCode::MissingParameter);
    assert!(json("CreateQueue", r#"{"QueueName":"q","tags":{}}"#).is_ok());
}

#[test]
fn get_queue_url_and_queue_refs() {
    assert_eq!(
        both("GetQueueUrl"),
        Request::GetQueueUrl(GetQueueUrl {
            queue_name: "orders".into(),
            queue_owner_account_id: Some("000000000000".into()),
        })
    );
    let queue = QueueRef {
        queue_url: URL.into(),
    };
    assert_eq!(both("DeleteQueue"), Request::DeleteQueue(queue.clone()));
    assert_eq!(both("PurgeQueue"), Request::PurgeQueue(queue));
    let e = json("PurgeQueue", "{}").expect_err("no url");
    assert_eq!(e.code, ErrorCode::MissingParameter);
    let e = form("Action=DeleteQueue").expect_err("no url");
    assert_eq!(e.code, ErrorCode::MissingParameter);
}

#[test]
fn list_queues_with_and_without_paging() {
    assert_eq!(
        both("ListQueues"),
        Request::ListQueues(ListQueues {
            queue_name_prefix: Some("p-".into()),
            max_results: Some(2),
            next_token: Some("cC0y".into()),
        })
    );
    let none = Request::ListQueues(ListQueues {
        queue_name_prefix: None,
        max_results: None,
        next_token: None,
    });
    assert_eq!(both("ListQueues-plain"), none);
    assert_eq!(json("ListQueues", "").expect("empty body is {}"), none);
}

#[test]
fn list_queues_max_results_is_1_to_1000() {
    for bad in ["0", "1001", "-1"] {
        let e = form(&format!("Action=ListQueues&MaxResults={bad}")).expect_err(bad);
        assert_eq!(e.code, ErrorCode::InvalidParameterValue);
        let e = json("ListQueues", &format!(r#"{{"MaxResults":{bad}}}"#)).expect_err(bad);
        assert_eq!(e.code, ErrorCode::InvalidParameterValue);
    }
    assert!(form("Action=ListQueues&MaxResults=1000").is_ok());
    assert!(json("ListQueues", r#"{"MaxResults":1}"#).is_ok());
}

#[test]
fn queue_attributes_get_and_set() {
    assert_eq!(
        both("GetQueueAttributes"),
        Request::GetQueueAttributes(GetQueueAttributes {
            queue_url: URL.into(),
            attribute_names: vec!["All".into(), "VisibilityTimeout".into()],
        })
    );
    let Request::SetQueueAttributes(r) = both("SetQueueAttributes") else {
        panic!("not SetQueueAttributes")
    };
    assert_eq!(r.attributes["VisibilityTimeout"], "5");
    assert_eq!(r.attributes["MaximumMessageSize"], "2048");
    let e = form(&format!("Action=SetQueueAttributes&{Q}")).expect_err("none");
    assert_eq!(e.code, ErrorCode::MissingParameter);
    let e = form(&format!(
        "Action=SetQueueAttributes&{Q}&Attribute.1.Name=A&Attribute.1.Value=1&Attribute.2.Name=A&Attribute.2.Value=2"
    ))
    .expect_err("twice");
    assert_eq!(e.code, ErrorCode::InvalidParameterValue);
}

#[test]
fn at_most_256_attribute_names() {
    let names: Vec<String> = (1..=256)
        .map(|i| format!("AttributeName.{i}=n{i}"))
        .collect();
    let ok = format!("Action=GetQueueAttributes&{Q}&{}", names.join("&"));
    assert!(form(&ok).is_ok());
    let e = form(&format!("{ok}&AttributeName.257=x")).expect_err("257th");
    assert_eq!(e.code, ErrorCode::InvalidParameterValue);
    let e = form(&format!(
        "Action=ReceiveMessage&{Q}&MessageAttributeName.0=x"
    ))
    .expect_err("0");
    assert_eq!(e.code, ErrorCode::InvalidParameterValue);
    let list: Vec<String> = (0..257).map(|i| format!("\"n{i}\"")).collect();
    let body = format!(
        r#"{{"QueueUrl":"u","MessageAttributeNames":[{}]}}"#,
        list.join(",")
    );
    let e = json("ReceiveMessage", &body).expect_err("257 names");
    assert_eq!(e.code, ErrorCode::InvalidParameterValue);
}

#[test]
fn send_message_with_every_attribute_type() {
    let Request::SendMessage(r) = both("SendMessage") else {
        panic!("not SendMessage")
    };
    assert_eq!(r.queue_url, URL);
    let m = r.message;
    assert_eq!(m.id, "");
    assert_eq!(m.body, "body\r\n<&>\"' é 😀");
    assert_eq!(m.delay_seconds, Some(3));
    let binary = MessageAttribute {
        name: "attrB".into(),
        data_type: "Binary".into(),
        value: AttributeValue::Binary((0..=255).collect()),
    };
    assert_eq!(
        m.attributes,
        vec![
            binary,
            string_attr("attrC", "String.custom", "x"),
            string_attr(
                "attrN",
                "Number.float",
                "4563442423554324324264524243.32543234"
            ),
            string_attr("attrS", "String", "line\r\nmore <&>\"' é 😀"),
        ],
        "sorted by name"
    );
    let Request::SendMessage(plain) = both("SendMessage-plain") else {
        panic!("not SendMessage")
    };
    assert_eq!(plain.message.body, "hello");
    assert_eq!(plain.message.delay_seconds, None);
    assert!(plain.message.attributes.is_empty());
}

#[test]
fn send_message_carries_fifo_ids_and_refuses_system_attributes() {
    let Request::SendMessage(r) = both("SendMessage-fifo") else {
        panic!("not SendMessage")
    };
    assert_eq!(r.message.group_id.as_deref(), Some("g"));
    assert_eq!(r.message.dedup_id.as_deref(), Some("d"));
    let e = form(&format!(
        "Action=SendMessage&{Q}&MessageBody=x&MessageGroupId=a%20b"
    ))
    .expect_err("a space");
    assert_eq!(e.code, ErrorCode::InvalidParameterValue);
    let long = "d".repeat(FIFO_ID_MAX + 1);
    let body = format!(r#"{{"QueueUrl":"u","MessageBody":"x","MessageDeduplicationId":"{long}"}}"#);
    let e = json("SendMessage", &body).expect_err("too long");
    assert_eq!(e.code, ErrorCode::InvalidParameterValue);
    both_refuse("SendMessage-system", ErrorCode::UnsupportedOperation);
}

#[test]
fn send_message_checks_body_delay_and_size() {
    let send = |extra: &str| form(&format!("Action=SendMessage&{Q}{extra}"));
    assert_eq!(
        send("").expect_err("no body").code,
        ErrorCode::MissingParameter
    );
    assert_eq!(
        send("&MessageBody=").expect_err("empty body").code,
        ErrorCode::MissingParameter
    );
    assert_eq!(
        send("&MessageBody=a%00").expect_err("nul").code,
        ErrorCode::InvalidMessageContents
    );
    for bad in ["901", "-1", "x"] {
        let e = send(&format!("&MessageBody=a&DelaySeconds={bad}")).expect_err(bad);
        assert_eq!(e.code, ErrorCode::InvalidParameterValue, "{bad}");
    }
    assert!(send("&MessageBody=a&DelaySeconds=900").is_ok());
    // Results of big messages are compared by code only: a failure should not print them.
    let code = |r: Result<Request, WireError>| r.err().map(|e| e.code);
    let full = "b".repeat(MESSAGE_BYTES_MAX);
    assert_eq!(code(send(&format!("&MessageBody={full}"))), None);
    assert_eq!(
        code(send(&format!("&MessageBody={full}b"))),
        Some(ErrorCode::InvalidParameterValue)
    );
    // Attribute a/String/v counts 8 bytes toward the 262144.
    let attrs = "&MessageAttribute.1.Name=a&MessageAttribute.1.Value.DataType=String&MessageAttribute.1.Value.StringValue=v";
    assert_eq!(
        code(send(&format!("&MessageBody={}{attrs}", &full[8..]))),
        None
    );
    assert_eq!(
        code(send(&format!("&MessageBody={}{attrs}", &full[7..]))),
        Some(ErrorCode::InvalidParameterValue)
    );
    let e = json(
        "SendMessage",
        r#"{"QueueUrl":"u","MessageBody":"a","DelaySeconds":"3"}"#,
    )
    .expect_err("a string for an integer");
    assert_eq!(e.code, ErrorCode::Malformed);
}

#[test]
fn at_most_ten_message_attributes() {
    let attr = |i: u32| {
        format!("&MessageAttribute.{i}.Name=a{i}&MessageAttribute.{i}.Value.DataType=String&MessageAttribute.{i}.Value.StringValue=v")
    };
    let ten: String = (1..=10).map(attr).collect();
    assert!(form(&format!("Action=SendMessage&{Q}&MessageBody=b{ten}")).is_ok());
    let e = form(&format!(
        "Action=SendMessage&{Q}&MessageBody=b{ten}{}",
        attr(11)
    ))
    .expect_err("11th");
    assert_eq!(e.code, ErrorCode::InvalidParameterValue);
    let members: Vec<String> = (0..11)
        .map(|i| format!(r#""a{i}":{{"DataType":"String","StringValue":"v"}}"#))
        .collect();
    let body = format!(
        r#"{{"QueueUrl":"u","MessageBody":"b","MessageAttributes":{{{}}}}}"#,
        members.join(",")
    );
    let e = json("SendMessage", &body).expect_err("11 attributes");
    assert_eq!(e.code, ErrorCode::InvalidParameterValue);
    let e = json(
        "SendMessage",
        r#"{"QueueUrl":"u","MessageBody":"b","MessageAttributes":{"a":{"DataType":"Binary","BinaryValue":"!!"}}}"#,
    )
    .expect_err("not base64");
    assert_eq!(e.code, ErrorCode::InvalidParameterValue);
    let e = json(
        "SendMessage",
        r#"{"QueueUrl":"u","MessageBody":"b","MessageAttributes":{"a":{"StringValue":"v"}}}"#,
    )
    .expect_err("no type");
    assert_eq!(e.code, ErrorCode::InvalidParameterValue);
}

#[test]
fn send_message_batch_fails_bad_entries_alone() {
    let Request::SendMessageBatch(r) = both("SendMessageBatch") else {
        panic!("not SendMessageBatch")
    };
    assert_eq!(r.entries.len(), 3);
    let first = r.entries[0].as_ref().expect("entry a is valid");
    assert_eq!(first.id, "a");
    assert_eq!(first.body, "one");
    assert_eq!(first.attributes.len(), 2);
    assert_eq!(
        first.attributes[0].value,
        AttributeValue::Binary(vec![0, 0xff])
    );
    let second = r.entries[1].as_ref().expect_err("entry b-2_ fails");
    assert_eq!(second.id, "b-2_");
    assert!(second.sender_fault);
    assert_eq!(second.code, ErrorCode::InvalidMessageContents);
    let third = r.entries[2].as_ref().expect("entry c is valid");
    assert_eq!(third.delay_seconds, Some(0));

    let r = form(&format!(
        "Action=SendMessageBatch&{Q}&SendMessageBatchRequestEntry.1.Id=d&SendMessageBatchRequestEntry.1.MessageBody=x&SendMessageBatchRequestEntry.1.DelaySeconds=901&SendMessageBatchRequestEntry.2.Id=n&SendMessageBatchRequestEntry.2.MessageBody=x&SendMessageBatchRequestEntry.2.DelaySeconds=soon"
    ))
    .expect("the call goes on");
    let Request::SendMessageBatch(r) = r else {
        panic!("not SendMessageBatch")
    };
    for entry in &r.entries {
        let e = entry.as_ref().expect_err("fails alone");
        assert_eq!(e.code, ErrorCode::InvalidParameterValue, "{}", e.id);
    }
}

/// `count` entries of a batch action on both wires, each made by `entry(i)` (JSON
/// object members, query keys after the prefix).
fn batch_both(
    action: &str,
    prefix: &str,
    ids: &[&str],
    json_entry: impl Fn(&str) -> String,
    form_entry: impl Fn(&str) -> String,
) -> [Result<Request, WireError>; 2] {
    let entries: Vec<String> = ids.iter().map(|id| json_entry(id)).collect();
    let body = format!(r#"{{"QueueUrl":"u","Entries":[{}]}}"#, entries.join(","));
    let keys: String = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            form_entry(id)
                .split('&')
                .map(|kv| format!("&{prefix}.{}.{kv}", i + 1))
                .collect::<String>()
        })
        .collect();
    [
        json(action, &body),
        form(&format!("Action={action}&QueueUrl=u{keys}")),
    ]
}

fn every_batch(ids: &[&str]) -> Vec<Result<Request, WireError>> {
    let mut all = Vec::new();
    all.extend(batch_both(
        "SendMessageBatch",
        "SendMessageBatchRequestEntry",
        ids,
        |id| format!(r#"{{"Id":"{id}","MessageBody":"m"}}"#),
        |id| format!("Id={id}&MessageBody=m"),
    ));
    all.extend(batch_both(
        "DeleteMessageBatch",
        "DeleteMessageBatchRequestEntry",
        ids,
        |id| format!(r#"{{"Id":"{id}","ReceiptHandle":"r"}}"#),
        |id| format!("Id={id}&ReceiptHandle=r"),
    ));
    all.extend(batch_both(
        "ChangeMessageVisibilityBatch",
        "ChangeMessageVisibilityBatchRequestEntry",
        ids,
        |id| format!(r#"{{"Id":"{id}","ReceiptHandle":"r","VisibilityTimeout":5}}"#),
        |id| format!("Id={id}&ReceiptHandle=r&VisibilityTimeout=5"),
    ));
    all
}

fn assert_every_batch(ids: &[&str], code: Option<ErrorCode>) {
    for (i, result) in every_batch(ids).into_iter().enumerate() {
        match code {
            None => {
                result.unwrap_or_else(|e| panic!("batch {i} with {ids:?}: {e}"));
            }
            Some(code) => {
                let e = result.expect_err("refused");
                assert_eq!(e.code, code, "batch {i} with {ids:?}: {e}");
            }
        }
    }
}

#[test]
fn batches_hold_1_to_10_entries_with_distinct_valid_ids() {
    let ten = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];
    assert_every_batch(&ten, None);
    assert_every_batch(&[], Some(ErrorCode::EmptyBatchRequest));
    let eleven = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10"];
    assert_every_batch(&eleven, Some(ErrorCode::TooManyEntriesInBatchRequest));
    assert_every_batch(&["a", "b", "a"], Some(ErrorCode::BatchEntryIdsNotDistinct));
    assert_every_batch(&["a", "b.c"], Some(ErrorCode::InvalidBatchEntryId));
    let long = "i".repeat(BATCH_ID_MAX + 1);
    assert_every_batch(&[&long], Some(ErrorCode::InvalidBatchEntryId));
    assert_every_batch(&[""], Some(ErrorCode::InvalidBatchEntryId));
}

#[test]
fn an_empty_batch_from_the_query_wire_is_empty_not_missing() {
    // botocore's query serializer writes `Entries=[]` as a bare key.
    let e = form(&format!(
        "Action=DeleteMessageBatch&{Q}&DeleteMessageBatchRequestEntry="
    ))
    .expect_err("empty");
    assert_eq!(e.code, ErrorCode::EmptyBatchRequest);
    let e = json("SendMessageBatch", r#"{"QueueUrl":"u"}"#).expect_err("no entries");
    assert_eq!(e.code, ErrorCode::EmptyBatchRequest);
}

#[test]
fn a_batch_longer_than_256_kib_is_refused_whole() {
    let half = "b".repeat(MESSAGE_BYTES_MAX / 2);
    let body = format!(
        r#"{{"QueueUrl":"u","Entries":[{{"Id":"a","MessageBody":"{half}"}},{{"Id":"b","MessageBody":"{half}"}}]}}"#
    );
    let code = |r: Result<Request, WireError>| r.err().map(|e| e.code);
    assert_eq!(code(json("SendMessageBatch", &body)), None);
    let body = format!(
        r#"{{"QueueUrl":"u","Entries":[{{"Id":"a","MessageBody":"{half}"}},{{"Id":"b","MessageBody":"{half}x"}}]}}"#
    );
    assert_eq!(
        code(json("SendMessageBatch", &body)),
        Some(ErrorCode::BatchRequestTooLong)
    );
}

#[test]
fn receive_message_with_every_member() {
    let expect = |attribute_names: Vec<String>| {
        Request::ReceiveMessage(ReceiveMessage {
            queue_url: URL.into(),
            attribute_names,
            message_attributes: AttributeFilter::new(&["attrS".into(), "pre.*".into()]),
            max_messages: 10,
            visibility_timeout: Some(1),
            wait_time_seconds: Some(20),
            receive_request_attempt_id: Some("x".into()),
        })
    };
    // botocore 1.34.89 has no MessageSystemAttributeNames.
    assert_eq!(
        json_fixture("ReceiveMessage").expect("json"),
        expect(vec![
            "All".into(),
            "SentTimestamp".into(),
            "ApproximateReceiveCount".into()
        ])
    );
    assert_eq!(
        query_fixture("ReceiveMessage").expect("query"),
        expect(vec!["All".into()])
    );
    let Request::ReceiveMessage(plain) = both("ReceiveMessage-plain") else {
        panic!("not ReceiveMessage")
    };
    assert_eq!(plain.max_messages, 1);
    assert_eq!(plain.visibility_timeout, None);
    assert_eq!(plain.wait_time_seconds, None);
    assert_eq!(plain.receive_request_attempt_id, None);
    assert!(plain.message_attributes.is_empty());
    let r = form(&format!(
        "Action=ReceiveMessage&{Q}&MessageSystemAttributeName.1=SenderId"
    ))
    .expect("newer query SDKs");
    let Request::ReceiveMessage(r) = r else {
        panic!("not ReceiveMessage")
    };
    assert_eq!(r.attribute_names, ["SenderId"]);
}

#[test]
fn receive_message_ranges() {
    let bad = [
        ("MaxNumberOfMessages", "0"),
        ("MaxNumberOfMessages", "11"),
        ("WaitTimeSeconds", "21"),
        ("WaitTimeSeconds", "-1"),
        ("VisibilityTimeout", "43201"),
    ];
    for (key, value) in bad {
        let e = form(&format!("Action=ReceiveMessage&{Q}&{key}={value}")).expect_err(key);
        assert_eq!(e.code, ErrorCode::InvalidParameterValue, "{key}={value}");
        let e = json(
            "ReceiveMessage",
            &format!(r#"{{"QueueUrl":"u","{key}":{value}}}"#),
        )
        .expect_err(key);
        assert_eq!(e.code, ErrorCode::InvalidParameterValue, "{key}={value}");
    }
    let edges = "MaxNumberOfMessages=10&WaitTimeSeconds=0&VisibilityTimeout=43200";
    assert!(form(&format!("Action=ReceiveMessage&{Q}&{edges}")).is_ok());
}

#[test]
fn delete_and_change_visibility() {
    assert_eq!(
        both("DeleteMessage"),
        Request::DeleteMessage(DeleteMessage {
            queue_url: URL.into(),
            receipt_handle: "AQAAAAAAAAAB".into(),
        })
    );
    assert_eq!(
        both("DeleteMessageBatch"),
        Request::DeleteMessageBatch(DeleteMessageBatch {
            queue_url: URL.into(),
            entries: vec![
                Ok(DeleteEntry {
                    id: "0".into(),
                    receipt_handle: "r0".into()
                }),
                Ok(DeleteEntry {
                    id: "1".into(),
                    receipt_handle: "bogus".into()
                }),
            ],
        })
    );
    assert_eq!(
        both("ChangeMessageVisibility"),
        Request::ChangeMessageVisibility(ChangeMessageVisibility {
            queue_url: URL.into(),
            receipt_handle: "r0".into(),
            visibility_timeout: 0,
        })
    );
    assert_eq!(
        both("ChangeMessageVisibilityBatch"),
        Request::ChangeMessageVisibilityBatch(ChangeMessageVisibilityBatch {
            queue_url: URL.into(),
            entries: vec![
                Ok(VisibilityEntry {
                    id: "a".into(),
                    receipt_handle: "r0".into(),
                    visibility_timeout: 10
                }),
                Ok(VisibilityEntry {
                    id: "b".into(),
                    receipt_handle: "r1".into(),
                    visibility_timeout: 43200
                }),
            ],
        })
    );
}

#[test]
fn visibility_timeouts_are_0_to_12_hours() {
    let e = form(&format!(
        "Action=ChangeMessageVisibility&{Q}&ReceiptHandle=r&VisibilityTimeout=43201"
    ))
    .expect_err("43201");
    assert_eq!(e.code, ErrorCode::InvalidParameterValue);
    let e = form(&format!(
        "Action=ChangeMessageVisibility&{Q}&ReceiptHandle=r"
    ))
    .expect_err("no timeout");
    assert_eq!(e.code, ErrorCode::MissingParameter);
    let r = json(
        "ChangeMessageVisibilityBatch",
        r#"{"QueueUrl":"u","Entries":[{"Id":"a","ReceiptHandle":"r","VisibilityTimeout":43201},{"Id":"b","ReceiptHandle":"r","VisibilityTimeout":1}]}"#,
    )
    .expect("the call goes on");
    let Request::ChangeMessageVisibilityBatch(r) = r else {
        panic!("not a batch")
    };
    let e = r.entries[0].as_ref().expect_err("a fails");
    assert_eq!(
        (e.id.as_str(), e.code),
        ("a", ErrorCode::InvalidParameterValue)
    );
    assert!(r.entries[1].is_ok());
}

#[test]
fn tags_are_read_and_checked() {
    let Request::TagQueue(r) = both("TagQueue") else {
        panic!("not TagQueue")
    };
    assert_eq!(r.queue_url, URL);
    let want: BTreeMap<String, String> = [("team", "orders"), ("env", "")]
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .into();
    assert_eq!(r.tags, want);
    let Request::UntagQueue(r) = both("UntagQueue") else {
        panic!("not UntagQueue")
    };
    assert_eq!(r.tag_keys, ["team", "env"]);
    assert_eq!(
        both("ListQueueTags"),
        Request::ListQueueTags(QueueRef {
            queue_url: URL.into()
        })
    );
    let bad = |tags: &str| json("TagQueue", &format!(r#"{{"QueueUrl":"u","Tags":{tags}}}"#));
    for tags in [r#"{"aws:x":"v"}"#, r#"{"":"v"}"#] {
        assert_eq!(
            bad(tags).expect_err(tags).code,
            ErrorCode::InvalidParameterValue
        );
    }
    let long = format!(r#"{{"k":"{}"}}"#, "v".repeat(TAG_VALUE_MAX + 1));
    assert_eq!(
        bad(&long).expect_err("long").code,
        ErrorCode::InvalidParameterValue
    );
    let many: Vec<String> = (0..=TAGS_MAX).map(|i| format!(r#""k{i}":"v""#)).collect();
    let many = format!("{{{}}}", many.join(","));
    assert_eq!(
        bad(&many).expect_err("51").code,
        ErrorCode::InvalidParameterValue
    );
    assert_eq!(
        bad("{}").expect_err("none").code,
        ErrorCode::MissingParameter
    );
    let e = form(&format!("Action=UntagQueue&{Q}")).expect_err("no keys");
    assert_eq!(e.code, ErrorCode::MissingParameter);
}

#[test]
fn dead_letter_sources_are_listed_by_page() {
    assert_eq!(
        both("ListDeadLetterSourceQueues"),
        Request::ListDeadLetterSourceQueues(ListDeadLetterSourceQueues {
            queue_url: URL.into(),
            max_results: Some(2),
            next_token: Some("cC0y".into()),
        })
    );
    let Request::ListDeadLetterSourceQueues(plain) = both("ListDeadLetterSourceQueues-plain")
    else {
        panic!("not ListDeadLetterSourceQueues")
    };
    assert_eq!((plain.max_results, plain.next_token), (None, None));
    let e = form(&format!(
        "Action=ListDeadLetterSourceQueues&{Q}&MaxResults=1001"
    ));
    assert_eq!(e.expect_err("1001").code, ErrorCode::InvalidParameterValue);
}

#[test]
fn unknown_and_unsupported_actions() {
    both_refuse("StartMessageMoveTask", ErrorCode::UnsupportedOperation);
    let cases = [
        decode(Protocol::Json, None, "", b"{}"),
        decode(Protocol::Json, Some("AmazonSQS.Bogus"), "", b"{}"),
        decode(Protocol::Json, Some("AmazonSNS.Publish"), "", b"{}"),
        decode(Protocol::Json, Some("AmazonSQS.createqueue"), "", b"{}"),
        form("Action=Bogus"),
        form(Q),
    ];
    for result in cases {
        assert_eq!(result.expect_err("unknown").code, ErrorCode::UnknownAction);
    }
}

#[test]
fn unreadable_requests_are_malformed() {
    for body in ["{", "[]", "\"x\"", r#"{"QueueUrl":1}"#, "\u{0}"] {
        let e = json("PurgeQueue", body).expect_err(body);
        assert_eq!(e.code, ErrorCode::Malformed, "{body}");
    }
    for body in [
        "Action=ListQueues&Action=ListQueues",
        "Action=ListQueues&A=%zz",
    ] {
        let e = form(body).expect_err(body);
        assert_eq!(e.code, ErrorCode::Malformed, "{body}");
    }
    let e = decode(Protocol::Query, None, "", b"Action=ListQueues&A=\xff").expect_err("utf-8");
    assert_eq!(e.code, ErrorCode::Malformed);
}

#[test]
fn the_action_may_come_in_the_query_string() {
    let r = decode(Protocol::Query, None, "Action=PurgeQueue", Q.as_bytes()).expect("purge");
    assert_eq!(r.action(), Action::PurgeQueue);
    let e = decode(
        Protocol::Query,
        None,
        "Action=PurgeQueue",
        b"Action=PurgeQueue",
    )
    .expect_err("twice");
    assert_eq!(e.code, ErrorCode::Malformed);
}

/// One answer of every kind, with the characters that need care.
fn sample_answers() -> Vec<Response> {
    let attrs = vec![
        MessageAttribute {
            name: "attrB".into(),
            data_type: "Binary".into(),
            value: AttributeValue::Binary((0..=255).collect()),
        },
        string_attr("attrS", "String.custom", "line\r\nmore <&>\"' é 😀"),
    ];
    let sent = SentMessage {
        id: "e1".into(),
        message_id: receipt::message_id(7, 9),
        md5_of_message_body: md5::md5_hex(b"body"),
        md5_of_message_attributes: md5::md5_of_attributes(&attrs),
        sequence_number: Some(format!("{:020}", 9)),
    };
    let failed = BatchError::new(
        "e2",
        WireError::new(ErrorCode::InvalidMessageContents, "bad <body>"),
    );
    vec![
        Response::CreateQueue { queue_url: URL.into() },
        Response::GetQueueUrl { queue_url: URL.into() },
        Response::ListQueues {
            queue_urls: vec![URL.into(), format!("{URL}2")],
            next_token: Some(receipt::next_token("orders2")),
        },
        Response::ListQueues { queue_urls: vec![], next_token: None },
        Response::DeleteQueue,
        Response::PurgeQueue,
        Response::GetQueueAttributes {
            attributes: vec![
                ("VisibilityTimeout".into(), "30".into()),
                ("RedrivePolicy".into(), r#"{"deadLetterTargetArn":"arn:aws:sqs:us-east-1:000000000000:dlq","maxReceiveCount":2}"#.into()),
            ],
        },
        Response::SetQueueAttributes,
        Response::SendMessage(SentMessage { id: String::new(), ..sent.clone() }),
        Response::SendMessageBatch(BatchResult { successful: vec![sent], failed: vec![failed.clone()] }),
        Response::ReceiveMessage {
            messages: vec![ReceivedMessage {
                message_id: receipt::message_id(7, 9),
                receipt_handle: receipt::Receipt { queue_id: 7, message_id: 9, handle: 1 }.encode(),
                md5_of_body: md5::md5_hex("body\r\n<&>\"' é 😀".as_bytes()),
                body: "body\r\n<&>\"' é 😀".into(),
                attributes: vec![
                    ("SentTimestamp".into(), "1700000000000".into()),
                    ("ApproximateReceiveCount".into(), "1".into()),
                ],
                md5_of_message_attributes: md5::md5_of_attributes(&attrs),
                message_attributes: attrs,
            }],
        },
        Response::ReceiveMessage { messages: vec![] },
        Response::DeleteMessage,
        Response::DeleteMessageBatch(BatchResult { successful: vec!["a".into()], failed: vec![failed.clone()] }),
        Response::ChangeMessageVisibility,
        Response::ChangeMessageVisibilityBatch(BatchResult { successful: vec!["a".into()], failed: vec![failed] }),
        Response::TagQueue,
        Response::UntagQueue,
        Response::ListQueueTags { tags: vec![("team".into(), "<&>".into()), ("env".into(), String::new())] },
        Response::ListDeadLetterSourceQueues { queue_urls: vec![URL.into()], next_token: Some(receipt::next_token("orders")) },
    ]
}

fn text(encoded: &Encoded) -> &str {
    std::str::from_utf8(&encoded.body).expect("utf-8")
}

#[test]
fn answers_carry_status_type_and_request_id() {
    for response in sample_answers() {
        for protocol in [Protocol::Json, Protocol::Query] {
            let e = encode(protocol, &response, "req-1");
            assert_eq!(e.status, 200);
            assert_eq!(e.content_type, protocol.content_type());
            assert_eq!(e.headers, vec![(REQUEST_ID_HEADER, "req-1".to_owned())]);
        }
        let xml = encode(Protocol::Query, &response, "req-1");
        let name = response.action().name();
        assert!(text(&xml).starts_with(&format!(
            "<?xml version=\"1.0\"?><{name}Response xmlns=\"http://queue.amazonaws.com/doc/2012-11-05/\">"
        )));
        assert!(text(&xml).ends_with(&format!(
            "<ResponseMetadata><RequestId>req-1</RequestId></ResponseMetadata></{name}Response>"
        )));
        let json: serde_json::Value =
            serde_json::from_slice(&encode(Protocol::Json, &response, "r").body).expect("json");
        assert!(json.is_object());
    }
}

#[test]
fn json_answers_have_the_model_shapes() {
    let answers = sample_answers();
    let json = |i: usize| -> serde_json::Value {
        serde_json::from_slice(&encode(Protocol::Json, &answers[i], "r").body).expect("json")
    };
    assert_eq!(json(0), serde_json::json!({ "QueueUrl": URL }));
    assert_eq!(json(2)["NextToken"], receipt::next_token("orders2"));
    assert_eq!(json(3), serde_json::json!({}));
    assert_eq!(json(4), serde_json::json!({}));
    assert_eq!(json(6)["Attributes"]["VisibilityTimeout"], "30");
    let sent = json(8);
    assert_eq!(sent["MessageId"], "00000000-0000-0007-0000-000000000009");
    assert!(sent.get("Id").is_none());
    assert_eq!(sent["SequenceNumber"], "00000000000000000009");
    let batch = json(9);
    assert_eq!(batch["Successful"][0]["Id"], "e1");
    assert_eq!(
        batch["Failed"][0],
        serde_json::json!({"Id": "e2", "SenderFault": true, "Code": "InvalidMessageContents", "Message": "bad <body>"})
    );
    let m = &json(10)["Messages"][0];
    assert_eq!(m["Body"], "body\r\n<&>\"' é 😀");
    assert_eq!(m["Attributes"]["ApproximateReceiveCount"], "1");
    assert_eq!(m["MessageAttributes"]["attrS"]["DataType"], "String.custom");
    let b64 = m["MessageAttributes"]["attrB"]["BinaryValue"]
        .as_str()
        .expect("base64");
    assert!(b64.starts_with("AAECAw") && b64.ends_with("=="));
    assert_eq!(json(11), serde_json::json!({}), "no Messages when none");
}

#[test]
fn query_answers_escape_and_flatten() {
    let answers = sample_answers();
    let xml = |i: usize| {
        String::from_utf8(encode(Protocol::Query, &answers[i], "r").body).expect("utf-8")
    };
    assert!(xml(0).contains(&format!(
        "<CreateQueueResult><QueueUrl>{URL}</QueueUrl></CreateQueueResult>"
    )));
    assert!(xml(2).contains(&format!(
        "<QueueUrl>{URL}</QueueUrl><QueueUrl>{URL}2</QueueUrl><NextToken>"
    )));
    assert!(xml(4).contains("<DeleteQueueResponse xmlns=\"http://queue.amazonaws.com/doc/2012-11-05/\"><ResponseMetadata>"));
    assert!(xml(6)
        .contains("<Attribute><Name>RedrivePolicy</Name><Value>{&quot;deadLetterTargetArn&quot;"));
    let received = xml(10);
    assert!(received.contains("<Body>body&#xD;\n&lt;&amp;&gt;&quot;&apos; é 😀</Body>"));
    assert!(received
        .contains("<MessageAttribute><Name>attrS</Name><Value><StringValue>line&#xD;\nmore"));
    assert!(received
        .contains("</StringValue><DataType>String.custom</DataType></Value></MessageAttribute>"));
    assert!(received.contains("<MessageAttribute><Name>attrB</Name><Value><BinaryValue>AAECAw"));
    assert!(received
        .contains("<Attribute><Name>SentTimestamp</Name><Value>1700000000000</Value></Attribute>"));
    assert!(xml(9).contains("<SendMessageBatchResultEntry><Id>e1</Id><MessageId>"));
    assert!(xml(9).contains("<BatchResultErrorEntry><Id>e2</Id><SenderFault>true</SenderFault><Code>InvalidMessageContents</Code><Message>bad &lt;body&gt;</Message></BatchResultErrorEntry>"));
    assert!(xml(13)
        .contains("<DeleteMessageBatchResultEntry><Id>a</Id></DeleteMessageBatchResultEntry>"));
    assert!(xml(15).contains("<ChangeMessageVisibilityBatchResultEntry><Id>a</Id></ChangeMessageVisibilityBatchResultEntry>"));
}

#[test]
fn errors_on_both_wires() {
    let error = WireError::new(
        ErrorCode::QueueDoesNotExist,
        "The specified queue does not exist <q>.",
    );
    let j = encode_error(Protocol::Json, &error, "req-2");
    assert_eq!(j.status, 400);
    assert_eq!(j.content_type, "application/x-amz-json-1.0");
    assert_eq!(
        j.headers,
        vec![
            (REQUEST_ID_HEADER, "req-2".to_owned()),
            (
                QUERY_ERROR_HEADER,
                "AWS.SimpleQueueService.NonExistentQueue;Sender".to_owned()
            ),
        ]
    );
    let body: serde_json::Value = serde_json::from_slice(&j.body).expect("json");
    assert_eq!(
        body,
        serde_json::json!({"__type": "com.amazonaws.sqs#QueueDoesNotExist", "message": "The specified queue does not exist <q>."})
    );
    let q = encode_error(Protocol::Query, &error, "req-2");
    assert_eq!(q.status, 400);
    assert_eq!(q.headers, vec![(REQUEST_ID_HEADER, "req-2".to_owned())]);
    assert_eq!(
        text(&q),
        "<?xml version=\"1.0\"?><ErrorResponse xmlns=\"http://queue.amazonaws.com/doc/2012-11-05/\"><Error><Type>Sender</Type><Code>AWS.SimpleQueueService.NonExistentQueue</Code><Message>The specified queue does not exist &lt;q&gt;.</Message><Detail/></Error><RequestId>req-2</RequestId></ErrorResponse>"
    );
    let busy = encode_error(
        Protocol::Query,
        &WireError::new(ErrorCode::ServiceUnavailable, "stopping"),
        "r",
    );
    assert_eq!(busy.status, 503);
    assert!(text(&busy).contains("<Type>Receiver</Type><Code>ServiceUnavailable</Code>"));
}

/// Writes every sample answer and error to `PEREGRINE_WIRE_SAMPLES` (a directory), for
/// checking them with botocore's own parsers (`testdata/parse_answers.py`).
#[test]
#[ignore]
fn write_answer_samples() {
    let Ok(dir) = std::env::var("PEREGRINE_WIRE_SAMPLES") else {
        panic!("set PEREGRINE_WIRE_SAMPLES to a directory");
    };
    let errors = [
        ErrorCode::QueueDoesNotExist,
        ErrorCode::QueueNameExists,
        ErrorCode::ReceiptHandleIsInvalid,
        ErrorCode::InternalFailure,
    ];
    for (wire, protocol) in [("json", Protocol::Json), ("query", Protocol::Query)] {
        let out = format!("{dir}/{wire}");
        std::fs::create_dir_all(&out).expect("mkdir");
        for (i, response) in sample_answers().iter().enumerate() {
            let e = encode(protocol, response, "req");
            std::fs::write(
                format!("{out}/{i:02}-{}.ok", response.action().name()),
                &e.body,
            )
            .expect("write");
        }
        for code in errors {
            let e = encode_error(protocol, &WireError::new(code, "msg <&>"), "req");
            let headers: Vec<String> = e.headers.iter().map(|(k, v)| format!("{k}: {v}")).collect();
            std::fs::write(format!("{out}/{}-{}.err", e.status, code.shape()), &e.body)
                .expect("write");
            std::fs::write(
                format!("{out}/{}-{}.headers", e.status, code.shape()),
                headers.join("\n"),
            )
            .expect("write");
        }
    }
}

#[test]
fn a_query_posted_to_the_queue_url_takes_it_from_the_path() {
    let path = Some("/000000000000/orders");
    let r = decode_query_at(path, "", b"Action=PurgeQueue").expect("path url");
    assert_eq!(
        r,
        Request::PurgeQueue(QueueRef {
            queue_url: "/000000000000/orders".into()
        })
    );
    let r =
        decode_query_at(path, "", format!("Action=PurgeQueue&{Q}").as_bytes()).expect("form url");
    assert_eq!(
        r,
        Request::PurgeQueue(QueueRef {
            queue_url: URL.into()
        })
    );
    let e = decode_query_at(None, "", b"Action=PurgeQueue").expect_err("none");
    assert_eq!(e.code, ErrorCode::MissingParameter);
}

#[test]
fn bare_attribute_names_as_in_the_sqs_docs() {
    let r = form(&format!(
        "Action=ReceiveMessage&{Q}&AttributeName=All&MessageAttributeName=All"
    ))
    .expect("bare names");
    let Request::ReceiveMessage(r) = r else {
        panic!("not ReceiveMessage")
    };
    assert_eq!(r.attribute_names, ["All"]);
    assert_eq!(r.message_attributes, AttributeFilter::all());
    let r = form(&format!("Action=GetQueueAttributes&{Q}&AttributeName=")).expect("empty");
    let Request::GetQueueAttributes(r) = r else {
        panic!("not GetQueueAttributes")
    };
    assert!(r.attribute_names.is_empty());
}

#[test]
fn json_nulls_read_as_absent() {
    let r = json(
        "ReceiveMessage",
        r#"{"QueueUrl":"u","AttributeNames":null,"MessageAttributeNames":null,"MaxNumberOfMessages":null}"#,
    )
    .expect("nulls");
    let Request::ReceiveMessage(r) = r else {
        panic!("not ReceiveMessage")
    };
    assert!(r.attribute_names.is_empty() && r.message_attributes.is_empty());
    assert_eq!(r.max_messages, 1);
    assert!(json("CreateQueue", r#"{"QueueName":"q","Attributes":null}"#).is_ok());
    assert!(json(
        "GetQueueAttributes",
        r#"{"QueueUrl":"u","AttributeNames":null}"#
    )
    .is_ok());
}

#[test]
fn at_most_64_queue_attributes() {
    let attrs = |n: u32| -> String {
        (1..=n)
            .map(|i| format!("&Attribute.{i}.Name=A{i}&Attribute.{i}.Value=v"))
            .collect()
    };
    let max = QUEUE_ATTRIBUTES_MAX;
    assert!(form(&format!("Action=CreateQueue&QueueName=q{}", attrs(max))).is_ok());
    let e = form(&format!("Action=CreateQueue&QueueName=q{}", attrs(max + 1))).expect_err("65");
    assert_eq!(e.code, ErrorCode::InvalidParameterValue);
    let members: Vec<String> = (0..=max).map(|i| format!(r#""A{i}":"v""#)).collect();
    let body = format!(
        r#"{{"QueueUrl":"u","Attributes":{{{}}}}}"#,
        members.join(",")
    );
    let e = json("SetQueueAttributes", &body).expect_err("65");
    assert_eq!(e.code, ErrorCode::InvalidParameterValue);
}

#[test]
fn a_batch_entry_with_an_11th_attribute_fails_alone() {
    let attr = |i: u32| {
        format!("&SendMessageBatchRequestEntry.1.MessageAttribute.{i}.Name=a{i}&SendMessageBatchRequestEntry.1.MessageAttribute.{i}.Value.DataType=String&SendMessageBatchRequestEntry.1.MessageAttribute.{i}.Value.StringValue=v")
    };
    let eleven: String = (1..=11).map(attr).collect();
    let r = form(&format!(
        "Action=SendMessageBatch&{Q}&SendMessageBatchRequestEntry.1.Id=big&SendMessageBatchRequestEntry.1.MessageBody=b{eleven}&SendMessageBatchRequestEntry.2.Id=ok&SendMessageBatchRequestEntry.2.MessageBody=b"
    ))
    .expect("the call goes on");
    let Request::SendMessageBatch(r) = r else {
        panic!("not SendMessageBatch")
    };
    let e = r.entries[0].as_ref().expect_err("11 attributes");
    assert_eq!(
        (e.id.as_str(), e.code),
        ("big", ErrorCode::InvalidParameterValue)
    );
    assert!(r.entries[1].is_ok());
}

#[test]
fn data_types_are_at_most_256_bytes() {
    let label = "l".repeat(256 - "String.".len());
    let attr = |data_type: &str| {
        vec![MessageAttribute {
            name: "a".into(),
            data_type: data_type.into(),
            value: AttributeValue::String("v".into()),
        }]
    };
    assert!(attributes::validate(&attr(&format!("String.{label}"))).is_ok());
    assert!(attributes::validate(&attr(&format!("String.{label}l"))).is_err());
}
