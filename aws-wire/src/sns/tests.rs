//! The SNS decoder on requests exactly as botocore 1.43.11 serializes them
//! (`testdata/sns/query/`, written by `testdata/sns/capture.py`), and the encoder's
//! answers (checked with botocore's own parser by `testdata/sns/parse_answers.py` on
//! what `write_sns_answer_samples` writes).

use std::collections::BTreeMap;

use super::*;

fn fixture(name: &str) -> Result<Request, WireError> {
    let path = format!(
        "{}/testdata/sns/query/{name}.form",
        env!("CARGO_MANIFEST_DIR")
    );
    let body = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    decode("", &body)
}

fn ok(name: &str) -> Request {
    fixture(name).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn form(body: &str) -> Result<Request, WireError> {
    decode("", body.as_bytes())
}

fn code(result: Result<Request, WireError>) -> ErrorCode {
    match result {
        Ok(r) => panic!("decoded {r:?}"),
        Err(e) => e.code,
    }
}

const T: &str = "arn:aws:sns:us-east-1:000000000000:orders";
const S: &str = "arn:aws:sns:us-east-1:000000000000:orders:6b0e4c1a-0000-4000-8000-000000000001";

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn string_attr(name: &str, data_type: &str, value: &str) -> MessageAttribute {
    MessageAttribute {
        name: name.into(),
        data_type: data_type.into(),
        value: AttributeValue::String(value.into()),
    }
}

#[test]
fn every_captured_request_decodes() {
    let dir = format!("{}/testdata/sns/query", env!("CARGO_MANIFEST_DIR"));
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).expect("fixtures") {
        let name = entry
            .expect("entry")
            .file_name()
            .into_string()
            .expect("utf-8");
        let stem = name.trim_end_matches(".form");
        let refused = ["Publish-phone", "PublishBatch-empty", "Publish"];
        let result = fixture(stem);
        assert_eq!(
            result.is_err(),
            refused.contains(&stem),
            "{stem}: {result:?}"
        );
        if let Ok(request) = result {
            assert_eq!(
                request.action().name(),
                stem.split('-').next().unwrap_or("")
            );
        }
        count += 1;
    }
    assert_eq!(count, 28);
}

#[test]
fn create_topic_with_attributes_and_tags() {
    assert_eq!(
        ok("CreateTopic"),
        Request::CreateTopic(CreateTopic {
            name: "orders".into(),
            fifo: false,
            attributes: map(&[("DisplayName", "Orders"), ("DeliveryPolicy", "{}")]),
            tags: map(&[("team", "a"), ("env", "")]),
        })
    );
    assert_eq!(
        ok("CreateTopic-plain"),
        Request::CreateTopic(CreateTopic {
            name: "orders".into(),
            fifo: false,
            attributes: BTreeMap::new(),
            tags: BTreeMap::new(),
        })
    );
    let Request::CreateTopic(fifo) = ok("CreateTopic-fifo") else {
        panic!("not CreateTopic");
    };
    assert!(fifo.fifo);
    assert_eq!(
        fifo.attributes
            .get("ContentBasedDeduplication")
            .map(String::as_str),
        Some("true")
    );
}

#[test]
fn create_topic_checks_name_fifo_and_tags() {
    let base = "Action=CreateTopic&Name=";
    assert_eq!(
        code(form(&format!("{base}a.b"))),
        ErrorCode::InvalidParameter
    );
    assert_eq!(
        code(form("Action=CreateTopic")),
        ErrorCode::InvalidParameter
    );
    // .fifo needs FifoTopic=true, and FifoTopic=true needs .fifo.
    assert_eq!(
        code(form(&format!("{base}x.fifo"))),
        ErrorCode::InvalidParameter
    );
    let fifo_attr = "&Attributes.entry.1.key=FifoTopic&Attributes.entry.1.value=true";
    assert_eq!(
        code(form(&format!("{base}x{fifo_attr}"))),
        ErrorCode::InvalidParameter
    );
    assert!(form(&format!("{base}x.fifo{fifo_attr}")).is_ok());
    let tags: String = (1..=51)
        .map(|n| format!("&Tags.member.{n}.Key=k{n}&Tags.member.{n}.Value=v"))
        .collect();
    assert_eq!(
        code(form(&format!("{base}x{tags}"))),
        ErrorCode::TagLimitExceeded
    );
    let tags: String = (1..=50)
        .map(|n| format!("&Tags.member.{n}.Key=k{n}&Tags.member.{n}.Value=v"))
        .collect();
    assert!(form(&format!("{base}x{tags}")).is_ok());
    let repeated = "&Tags.member.1.Key=k&Tags.member.2.Key=k";
    assert_eq!(
        code(form(&format!("{base}x{repeated}"))),
        ErrorCode::InvalidParameter
    );
    let repeated = "&Attributes.entry.1.key=A&Attributes.entry.2.key=A";
    assert_eq!(
        code(form(&format!("{base}x{repeated}"))),
        ErrorCode::InvalidParameter
    );
    assert_eq!(
        code(form(&format!("{base}x&DataProtectionPolicy=%7B%7D"))),
        ErrorCode::InvalidParameter
    );
}

#[test]
fn topic_and_subscription_references() {
    assert_eq!(
        ok("DeleteTopic"),
        Request::DeleteTopic(TopicRef {
            topic_arn: T.into()
        })
    );
    assert_eq!(
        ok("GetTopicAttributes"),
        Request::GetTopicAttributes(TopicRef {
            topic_arn: T.into()
        })
    );
    assert_eq!(
        ok("ListTopics"),
        Request::ListTopics(Page {
            next_token: Some("dG9rZW4".into())
        })
    );
    assert_eq!(
        ok("ListTopics-plain"),
        Request::ListTopics(Page { next_token: None })
    );
    assert_eq!(
        ok("SetTopicAttributes"),
        Request::SetTopicAttributes(SetAttribute {
            arn: T.into(),
            name: "DisplayName".into(),
            value: Some("New <&>".into()),
        })
    );
    assert_eq!(
        ok("SetTopicAttributes-novalue"),
        Request::SetTopicAttributes(SetAttribute {
            arn: T.into(),
            name: "DisplayName".into(),
            value: None,
        })
    );
    assert_eq!(
        ok("Unsubscribe"),
        Request::Unsubscribe(SubscriptionRef {
            subscription_arn: S.into()
        })
    );
    assert_eq!(
        ok("GetSubscriptionAttributes"),
        Request::GetSubscriptionAttributes(SubscriptionRef {
            subscription_arn: S.into()
        })
    );
    assert_eq!(
        ok("SetSubscriptionAttributes"),
        Request::SetSubscriptionAttributes(SetAttribute {
            arn: S.into(),
            name: "FilterPolicy".into(),
            value: Some("{\"k\": [{\"prefix\": \"a\"}]}".into()),
        })
    );
    assert_eq!(
        ok("ListSubscriptions"),
        Request::ListSubscriptions(Page {
            next_token: Some("x".into())
        })
    );
    assert_eq!(
        ok("ListSubscriptionsByTopic"),
        Request::ListSubscriptionsByTopic(ListSubscriptionsByTopic {
            topic_arn: T.into(),
            next_token: Some("x".into()),
        })
    );
    for action in [
        "DeleteTopic",
        "GetTopicAttributes",
        "ListSubscriptionsByTopic",
    ] {
        assert_eq!(
            code(form(&format!("Action={action}"))),
            ErrorCode::InvalidParameter
        );
        assert_eq!(
            code(form(&format!("Action={action}&TopicArn="))),
            ErrorCode::InvalidParameter
        );
    }
    assert_eq!(
        code(form("Action=SetTopicAttributes&TopicArn=a")),
        ErrorCode::InvalidParameter
    );
}

#[test]
fn subscribe_and_confirm() {
    assert_eq!(
        ok("Subscribe"),
        Request::Subscribe(Subscribe {
            topic_arn: T.into(),
            protocol: "sqs".into(),
            endpoint: Some("arn:aws:sqs:us-east-1:000000000000:q1".into()),
            attributes: map(&[
                ("RawMessageDelivery", "true"),
                ("FilterPolicy", "{\"k\": [\"v\"]}")
            ]),
            return_subscription_arn: true,
        })
    );
    assert_eq!(
        ok("Subscribe-plain"),
        Request::Subscribe(Subscribe {
            topic_arn: T.into(),
            protocol: "http".into(),
            endpoint: None,
            attributes: BTreeMap::new(),
            return_subscription_arn: false,
        })
    );
    assert_eq!(
        ok("ConfirmSubscription"),
        Request::ConfirmSubscription(ConfirmSubscription {
            topic_arn: T.into(),
            token: "abcd".into(),
            authenticate_on_unsubscribe: true,
        })
    );
    let Request::ConfirmSubscription(plain) = ok("ConfirmSubscription-plain") else {
        panic!("not ConfirmSubscription");
    };
    assert!(!plain.authenticate_on_unsubscribe);
    assert_eq!(
        code(form("Action=Subscribe&TopicArn=t")),
        ErrorCode::InvalidParameter
    );
    assert_eq!(
        code(form(
            "Action=Subscribe&TopicArn=t&Protocol=sqs&ReturnSubscriptionArn=yes"
        )),
        ErrorCode::InvalidParameter
    );
    assert_eq!(
        code(form("Action=ConfirmSubscription&TopicArn=t")),
        ErrorCode::InvalidParameter
    );
}

#[test]
fn publish_with_attributes() {
    let Request::Publish(p) = ok("Publish-plain") else {
        panic!("not Publish");
    };
    assert_eq!(p.topic_arn, T);
    assert_eq!(p.message.message, "hello");
    assert_eq!(p.message.id, "");
    let Request::Publish(p) = ok("Publish-target") else {
        panic!("not Publish");
    };
    assert_eq!(p.topic_arn, T);
    // The full capture with MessageStructure removed: every attribute type.
    let body = String::from_utf8(
        std::fs::read(format!(
            "{}/testdata/sns/query/Publish.form",
            env!("CARGO_MANIFEST_DIR")
        ))
        .expect("fixture"),
    )
    .expect("utf-8")
    .replace("&MessageStructure=json", "");
    let Ok(Request::Publish(p)) = form(&body) else {
        panic!("Publish does not decode");
    };
    let e = p.message;
    assert_eq!(e.message, "body\r\n<&>\"' é 😀");
    assert_eq!(e.subject.as_deref(), Some("Hi"));
    assert_eq!(e.group_id.as_deref(), Some("g"));
    assert_eq!(e.dedup_id.as_deref(), Some("d"));
    let names: Vec<&str> = e.attributes.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["attrA", "attrB", "attrN", "attrS"]);
    assert_eq!(
        e.attributes[0],
        string_attr("attrA", "String.Array", "[\"a\", 1, true, null]")
    );
    assert_eq!(
        e.attributes[1].value,
        AttributeValue::Binary((0..=255).collect())
    );
    assert_eq!(e.attributes[2], string_attr("attrN", "Number", "-12.5e3"));
    assert_eq!(
        e.attributes[3],
        string_attr("attrS", "String", "line\r\nmore <&>\"' é 😀")
    );
}

#[test]
fn publish_refuses_what_is_not_served_or_invalid() {
    // MessageStructure=json with a Message that is not a JSON object.
    assert_eq!(code(ok_or("Publish")), ErrorCode::InvalidParameter);
    assert_eq!(code(ok_or("Publish-phone")), ErrorCode::InvalidParameter);
    let p = "Action=Publish&TopicArn=t";
    assert_eq!(code(form(p)), ErrorCode::InvalidParameter); // no message
    assert_eq!(
        code(form(&format!("{p}&Message="))),
        ErrorCode::InvalidParameter
    );
    assert_eq!(
        code(form("Action=Publish&Message=m")),
        ErrorCode::InvalidParameter
    );
    assert_eq!(
        code(form("Action=Publish&Message=m&TopicArn=a&TargetArn=b")),
        ErrorCode::InvalidParameter
    );
    let m = format!("{p}&Message=m");
    for subject in ["", "%0A", "a%0Ab", "%09", "%7F", "%C2%85"] {
        assert_eq!(
            code(form(&format!("{m}&Subject={subject}"))),
            ErrorCode::InvalidParameter,
            "{subject}"
        );
    }
    assert!(form(&format!("{m}&Subject={}", "s".repeat(100))).is_ok());
    assert!(form(&format!("{m}&Subject={}", "%C3%A9".repeat(100))).is_ok());
    assert!(form(&format!("{m}&Subject=Order+%231+%E2%80%94+shipped")).is_ok());
    assert_eq!(
        code(form(&format!("{m}&Subject={}", "s".repeat(101)))),
        ErrorCode::InvalidParameter
    );
    // 256 KiB, attributes included.
    let big = "x".repeat(MESSAGE_BYTES_MAX);
    assert!(form(&format!("{p}&Message={big}")).is_ok());
    let attr = "&MessageAttributes.entry.1.Name=a&MessageAttributes.entry.1.Value.DataType=String&MessageAttributes.entry.1.Value.StringValue=v";
    assert_eq!(
        code(form(&format!("{p}&Message={big}{attr}"))),
        ErrorCode::InvalidParameter
    );
}

fn ok_or(name: &str) -> Result<Request, WireError> {
    fixture(name)
}

fn attrs(n: u32, data_type: &str, value: &str) -> String {
    (1..=n)
        .map(|i| {
            format!("&MessageAttributes.entry.{i}.Name=a{i}&MessageAttributes.entry.{i}.Value.DataType={data_type}&MessageAttributes.entry.{i}.Value.StringValue={value}")
        })
        .collect()
}

#[test]
fn message_attributes_follow_sns_rules() {
    let m = "Action=Publish&TopicArn=t&Message=m";
    assert!(form(&format!("{m}{}", attrs(10, "String", "v"))).is_ok());
    let bad = [
        attrs(11, "String", "v"),
        attrs(1, "Strin", "v"),
        attrs(1, "String", ""),
        attrs(1, "Number", "x1"),
        attrs(1, "String.Array", "x"),
        attrs(1, "String.Array", "%7B%7D"),
        attrs(1, "String.Array", "%5B%5B1%5D%5D"),
        attrs(1, "String.Array", "%5B%7B%7D%5D"),
        "&MessageAttributes.entry.1.Name=aws.x&MessageAttributes.entry.1.Value.DataType=String&MessageAttributes.entry.1.Value.StringValue=v".into(),
        "&MessageAttributes.entry.1.Name=b&MessageAttributes.entry.1.Value.DataType=Binary&MessageAttributes.entry.1.Value.BinaryValue=%25%25".into(),
        "&MessageAttributes.entry.1.Name=b&MessageAttributes.entry.1.Value.StringValue=v".into(),
        "&MessageAttributes.entry.1.Name=a&MessageAttributes.entry.1.Value.DataType=String&MessageAttributes.entry.1.Value.StringValue=v&MessageAttributes.entry.2.Name=a&MessageAttributes.entry.2.Value.DataType=String&MessageAttributes.entry.2.Value.StringValue=w".into(),
    ];
    for attr in bad {
        assert_eq!(
            code(form(&format!("{m}{attr}"))),
            ErrorCode::InvalidParameterValue,
            "{attr}"
        );
    }
    assert!(form(&format!(
        "{m}{}",
        attrs(1, "String.Array", "%5B%22a%22%2C1%2Cnull%5D")
    ))
    .is_ok());
    assert!(form(&format!("{m}{}", attrs(1, "Number.float", "1.5"))).is_ok());
    let missing_name = "&MessageAttributes.entry.1.Value.DataType=String";
    assert_eq!(
        code(form(&format!("{m}{missing_name}"))),
        ErrorCode::InvalidParameter
    );
}

fn batch(n: usize) -> String {
    let mut body = format!("Action=PublishBatch&TopicArn={T}");
    for i in 1..=n {
        body.push_str(&format!("&PublishBatchRequestEntries.member.{i}.Id=e{i}&PublishBatchRequestEntries.member.{i}.Message=m{i}"));
    }
    body
}

#[test]
fn publish_batch_entries_fail_alone() {
    let Request::PublishBatch(b) = ok("PublishBatch") else {
        panic!("not PublishBatch");
    };
    assert_eq!(b.topic_arn, T);
    assert_eq!(b.entries.len(), 3);
    let first = b.entries[0].as_ref().expect("valid");
    assert_eq!(first.id, "a");
    assert_eq!(first.attributes.len(), 2);
    assert_eq!(
        first.attributes[0].value,
        AttributeValue::Binary(vec![0, 255])
    );
    let second = b.entries[1].as_ref().expect("valid");
    assert_eq!(
        (second.subject.as_deref(), second.group_id.as_deref()),
        (Some("s"), Some("g"))
    );
    let third = b.entries[2].as_ref().expect_err("MessageStructure");
    assert_eq!(
        (third.id.as_str(), third.code, third.sender_fault),
        ("c", ErrorCode::InvalidParameter, true)
    );
}

#[test]
fn publish_batch_call_level_rules() {
    assert_eq!(
        code(ok_or("PublishBatch-empty")),
        ErrorCode::EmptyBatchRequest
    );
    assert!(form(&batch(10)).is_ok());
    assert_eq!(
        code(form(&batch(11))),
        ErrorCode::TooManyEntriesInBatchRequest
    );
    let dup = format!("{}&PublishBatchRequestEntries.member.2.Id=e1&PublishBatchRequestEntries.member.2.Message=x", batch(1));
    assert_eq!(code(form(&dup)), ErrorCode::BatchEntryIdsNotDistinct);
    let bad_id = format!("{}&PublishBatchRequestEntries.member.2.Id=a.b&PublishBatchRequestEntries.member.2.Message=x", batch(1));
    assert_eq!(code(form(&bad_id)), ErrorCode::InvalidBatchEntryId);
    let no_id = format!("{}&PublishBatchRequestEntries.member.2.Message=x", batch(1));
    assert_eq!(code(form(&no_id)), ErrorCode::InvalidBatchEntryId);
    // Two entries of 200 KiB: each fits, together they do not.
    let half = "x".repeat(200 * 1024);
    let long = format!("Action=PublishBatch&TopicArn=t&PublishBatchRequestEntries.member.1.Id=a&PublishBatchRequestEntries.member.1.Message={half}&PublishBatchRequestEntries.member.2.Id=b&PublishBatchRequestEntries.member.2.Message={half}");
    assert_eq!(code(form(&long)), ErrorCode::BatchRequestTooLong);
}

#[test]
fn tags_on_resources() {
    assert_eq!(
        ok("TagResource"),
        Request::TagResource(TagResource {
            resource_arn: T.into(),
            tags: map(&[("a", "b"), ("c", "d")]),
        })
    );
    assert_eq!(
        ok("UntagResource"),
        Request::UntagResource(UntagResource {
            resource_arn: T.into(),
            tag_keys: vec!["a".into(), "c".into()],
        })
    );
    assert_eq!(
        ok("ListTagsForResource"),
        Request::ListTagsForResource(ResourceRef {
            resource_arn: T.into()
        })
    );
    assert_eq!(
        code(form("Action=TagResource&ResourceArn=r")),
        ErrorCode::InvalidParameter
    );
    assert_eq!(
        code(form("Action=UntagResource&ResourceArn=r")),
        ErrorCode::InvalidParameter
    );
    let long_key = format!(
        "Action=TagResource&ResourceArn=r&Tags.member.1.Key={}",
        "k".repeat(129)
    );
    assert_eq!(code(form(&long_key)), ErrorCode::InvalidParameter);
}

#[test]
fn unknown_unserved_and_unreadable_requests() {
    assert_eq!(code(form("Version=2010-03-31")), ErrorCode::InvalidAction);
    assert_eq!(code(form("Action=Nope")), ErrorCode::InvalidAction);
    let e = form("Action=CreatePlatformEndpoint").expect_err("unserved");
    assert_eq!(e.code, ErrorCode::InvalidAction);
    assert!(e.message.contains("not supported"), "{}", e.message);
    assert_eq!(
        code(form("Action=ListTopics&Action=ListTopics")),
        ErrorCode::MalformedQueryString
    );
    assert_eq!(
        code(form("Action=ListTopics&X=%zz")),
        ErrorCode::MalformedQueryString
    );
    assert_eq!(
        code(decode("", b"Action=ListTopics&X=\xff")),
        ErrorCode::MalformedQueryString
    );
    // The action may come in the query string.
    assert_eq!(
        decode("Action=ListTopics", b""),
        Ok(Request::ListTopics(Page { next_token: None }))
    );
}

fn published(id: &str, seq: Option<&str>) -> Published {
    Published {
        id: id.into(),
        message_id: format!("mid-{id}"),
        sequence_number: seq.map(Into::into),
    }
}

fn summary(n: u32) -> SubscriptionSummary {
    SubscriptionSummary {
        subscription_arn: format!("{T}:sub{n}"),
        owner: "000000000000".into(),
        protocol: "sqs".into(),
        endpoint: format!("arn:aws:sqs:us-east-1:000000000000:q{n}"),
        topic_arn: T.into(),
    }
}

/// One answer of every action, in `Action::ALL` order.
fn sample_answers() -> Vec<Response> {
    let attrs = vec![
        ("TopicArn".to_string(), T.to_string()),
        ("DisplayName".to_string(), "<&> é\r\n".to_string()),
    ];
    vec![
        Response::CreateTopic {
            topic_arn: T.into(),
        },
        Response::DeleteTopic,
        Response::ListTopics {
            topic_arns: vec![T.into(), format!("{T}2")],
            next_token: Some("tok".into()),
        },
        Response::GetTopicAttributes {
            attributes: attrs.clone(),
        },
        Response::SetTopicAttributes,
        Response::Subscribe {
            subscription_arn: S.into(),
        },
        Response::ConfirmSubscription {
            subscription_arn: S.into(),
        },
        Response::Unsubscribe,
        Response::ListSubscriptions {
            subscriptions: vec![summary(1), summary(2)],
            next_token: Some("tok".into()),
        },
        Response::ListSubscriptionsByTopic {
            subscriptions: vec![summary(1)],
            next_token: None,
        },
        Response::GetSubscriptionAttributes { attributes: attrs },
        Response::SetSubscriptionAttributes,
        Response::Publish(published("", Some("00000000000000000001"))),
        Response::PublishBatch(BatchResult {
            successful: vec![published("a", None)],
            failed: vec![BatchError::new("b", WireError::invalid("Empty message"))],
        }),
        Response::TagResource,
        Response::UntagResource,
        Response::ListTagsForResource {
            tags: vec![("a".into(), "b".into()), ("c".into(), "".into())],
        },
    ]
}

fn text(encoded: &Encoded) -> &str {
    std::str::from_utf8(&encoded.body).expect("utf-8")
}

#[test]
fn answers_are_sns_xml_with_request_ids() {
    let answers = sample_answers();
    assert_eq!(
        answers.iter().map(Response::action).collect::<Vec<_>>(),
        Action::ALL
    );
    for response in &answers {
        let e = encode(response, "req-1");
        assert_eq!((e.status, e.content_type), (200, "text/xml"));
        assert_eq!(e.headers, [("x-amzn-RequestId", "req-1".to_string())]);
        let name = response.action().name();
        assert!(
            text(&e).starts_with(&format!("<?xml version=\"1.0\"?><{name}Response xmlns=\"http://sns.amazonaws.com/doc/2010-03-31/\">")),
            "{}",
            text(&e)
        );
        assert!(text(&e).ends_with(&format!(
            "<ResponseMetadata><RequestId>req-1</RequestId></ResponseMetadata></{name}Response>"
        )));
    }
    let attrs = encode(&answers[3], "r");
    assert!(text(&attrs).contains("<Attributes><entry><key>TopicArn</key><value>arn:aws:sns:us-east-1:000000000000:orders</value></entry><entry><key>DisplayName</key><value>&lt;&amp;&gt; é&#xD;\n</value></entry></Attributes>"));
    let batch = encode(&answers[13], "r");
    assert!(text(&batch).contains("<Successful><member><Id>a</Id><MessageId>mid-a</MessageId></member></Successful><Failed><member><Id>b</Id><Code>InvalidParameter</Code><Message>Invalid parameter: Empty message</Message><SenderFault>true</SenderFault></member></Failed>"));
    let empty = encode(
        &Response::ListTopics {
            topic_arns: vec![],
            next_token: None,
        },
        "r",
    );
    assert!(text(&empty).contains("<ListTopicsResult><Topics></Topics></ListTopicsResult>"));
}

#[test]
fn errors_carry_code_type_and_status() {
    let e = encode_error(
        &WireError::new(ErrorCode::NotFound, "Topic does not exist"),
        "req",
    );
    assert_eq!((e.status, e.content_type), (404, "text/xml"));
    assert_eq!(
        text(&e),
        "<?xml version=\"1.0\"?><ErrorResponse xmlns=\"http://sns.amazonaws.com/doc/2010-03-31/\"><Error><Type>Sender</Type><Code>NotFound</Code><Message>Topic does not exist</Message></Error><RequestId>req</RequestId></ErrorResponse>"
    );
    let e = encode_error(&WireError::new(ErrorCode::InternalError, "x"), "req");
    assert_eq!(e.status, 500);
    assert!(text(&e).contains("<Type>Receiver</Type><Code>InternalError</Code>"));
}

/// Writes every sample answer and some errors to `PEREGRINE_SNS_SAMPLES` (a directory)
/// for `testdata/sns/parse_answers.py`, which feeds them to botocore's parser.
#[test]
#[ignore]
fn write_sns_answer_samples() {
    let Ok(dir) = std::env::var("PEREGRINE_SNS_SAMPLES") else {
        panic!("set PEREGRINE_SNS_SAMPLES to a directory");
    };
    std::fs::create_dir_all(&dir).expect("mkdir");
    for response in sample_answers() {
        let e = encode(&response, "req");
        std::fs::write(format!("{dir}/{}.ok", response.action().name()), &e.body).expect("write");
    }
    let errors = [
        ErrorCode::NotFound,
        ErrorCode::InvalidParameter,
        ErrorCode::InvalidParameterValue,
        ErrorCode::TagLimitExceeded,
        ErrorCode::InternalError,
        ErrorCode::InvalidAction,
    ];
    for code in errors {
        let e = encode_error(&WireError::new(code, "msg <&>"), "req");
        std::fs::write(
            format!("{dir}/{}-{}.err", e.status, code.query_code()),
            &e.body,
        )
        .expect("write");
    }
}

#[test]
fn message_structure_json_is_checked_and_stored_per_protocol() {
    let publish = |message: &str, structure: &str| {
        let body = format!(
            "Action=Publish&TopicArn=t&Message={}&MessageStructure={structure}",
            message
                .bytes()
                .map(|b| format!("%{b:02X}"))
                .collect::<String>()
        );
        form(&body)
    };
    let ok = publish(r#"{"default":"d","sqs":"q"}"#, "json").expect("valid");
    let Request::Publish(p) = ok else {
        panic!("{ok:?}")
    };
    assert!(p.message.structured);
    for (bad, why) in [
        (r#"{"sqs":"q"}"#, "No default entry"),
        ("plain text", "failed to parse"),
        (r#"{"default":1}"#, "JSON string"),
        (r#"["default"]"#, "failed to parse"),
    ] {
        let e = publish(bad, "json").expect_err(bad);
        assert_eq!(e.code, ErrorCode::InvalidParameter, "{bad}");
        assert!(e.message.contains(why), "{bad}: {}", e.message);
    }
    assert_eq!(
        code(publish(r#"{"default":"d"}"#, "xml")),
        ErrorCode::InvalidParameter
    );

    // Stored and read back, each protocol gets its member or the default.
    let stored = crate::sns::record::Stored {
        message: p.message.message.clone(),
        structured: true,
        published_ms: 1,
        ..Default::default()
    };
    let (headers, value) = crate::sns::record::encode(&stored);
    let headers: Vec<(&[u8], Option<&[u8]>)> = headers
        .iter()
        .map(|(k, v)| (k.as_bytes(), Some(v.as_bytes())))
        .collect();
    let back = crate::sns::record::decode(&headers, &value).expect("decode");
    assert_eq!(back, stored);
    assert_eq!(back.message_for("sqs"), "q");
    assert_eq!(back.message_for("http"), "d");
    // An unstructured message that looks like one is sent whole.
    let plain = crate::sns::record::Stored {
        message: r#"{"sqs":"q"}"#.into(),
        structured: false,
        ..stored
    };
    assert_eq!(plain.message_for("sqs"), r#"{"sqs":"q"}"#);
}
