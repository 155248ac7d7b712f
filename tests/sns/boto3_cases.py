#!/usr/bin/env python3
"""Amazon SNS programs written with boto3, run unchanged (but for endpoint_url) against a broker.

Usage: boto3_cases.py ENDPOINT CASE [ARGS...] [--region REGION] [--account ACCOUNT]

ENDPOINT is the broker's HTTP address as a URL (`http://127.0.0.1:8080`). One function per
case (see CASES at the bottom). A case prints `ok CASE` and exits 0 when every check held; a
failed check raises AssertionError and exits 1; exit 3 means boto3 is missing.

SNS has one wire protocol, the query protocol (forms in, XML out): every case checks
`client.meta.service_model.protocol`. The SQS queues the topics fan out to are read with the
same boto3 (SQS's JSON 1.0 protocol). `--region`/`--account` name what the broker was started
with (`--sqs-region`, `--sqs-account-id`; defaults us-east-1 and 000000000000).

Every wait has a deadline (`WAIT_S`) and names carry a per-run token. Where a case must show
that something did NOT arrive, it publishes a sentinel that every subscription takes after
the messages under test: the fan-out delivers a topic's messages in publish order, so once the
sentinel is in a queue, whatever was going to reach it before the sentinel has.
tests/sns_boto3.rs runs these against Peregrine.
"""

import base64
import hashlib
import http.server
import json
import re
import os
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid


def _option(flag, default):
    if flag in sys.argv:
        i = sys.argv.index(flag)
        if i + 1 < len(sys.argv):
            return sys.argv[i + 1]
    return default


REGION = _option("--region", "us-east-1")
ACCOUNT = _option("--account", "000000000000")
ARGV = []
_skip = False
for _a in sys.argv:
    if _skip:
        _skip = False
        continue
    if _a in ("--region", "--account"):
        _skip = True
        continue
    ARGV.append(_a)

try:
    import boto3
    from botocore.config import Config
    from botocore.exceptions import ClientError
except ImportError:
    print("boto3 is not installed: run .ci/run (it installs boto3==1.43.11 into "
          "target/ci-venv) or `pip install boto3==1.43.11`", file=sys.stderr)
    sys.exit(3)

# How long any one wait may take before the case fails.
WAIT_S = 10.0
# Polling step for waits that have no event to block on.
POLL_S = 0.05
RUN = uuid.uuid4().hex[:8]
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def name(case, what):
    return f"{case[:12]}-{RUN}-{what}"


def _config():
    return Config(retries={"max_attempts": 1}, read_timeout=30, connect_timeout=10)


def sns_client(endpoint):
    c = boto3.client("sns", endpoint_url=endpoint, region_name=REGION,
                     aws_access_key_id="test", aws_secret_access_key="test", config=_config())
    got = c.meta.service_model.protocol
    assert got == "query", f"boto3 {boto3.__version__} speaks {got} to SNS, wanted query"
    return c


def sqs_client(endpoint):
    return boto3.client("sqs", endpoint_url=endpoint, region_name=REGION,
                        aws_access_key_id="test", aws_secret_access_key="test",
                        config=_config())


def topic_arn(topic):
    return f"arn:aws:sns:{REGION}:{ACCOUNT}:{topic}"


def queue_arn(q):
    return f"arn:aws:sqs:{REGION}:{ACCOUNT}:{q}"


# SNS's error codes and the botocore exception class of each (client.exceptions.X).
EXCEPTIONS = {
    "NotFound": "NotFoundException",
    "InvalidParameter": "InvalidParameterException",
    "ParameterValueInvalid": "InvalidParameterValueException",
    "EmptyBatchRequest": "EmptyBatchRequestException",
    "TooManyEntriesInBatchRequest": "TooManyEntriesInBatchRequestException",
    "BatchEntryIdsNotDistinct": "BatchEntryIdsNotDistinctException",
    "InvalidBatchEntryId": "InvalidBatchEntryIdException",
    "BatchRequestTooLong": "BatchRequestTooLongException",
    "ResourceNotFound": "ResourceNotFoundException",
    "TagLimitExceeded": "TagLimitExceededException",
}


def expect_error(c, codes, action, what):
    """action() must fail with one of the SNS error `codes` (a code or a tuple of codes),
    raised as botocore's modeled exception for that code."""
    codes = (codes,) if isinstance(codes, str) else codes
    try:
        action()
    except ClientError as e:
        got = e.response["Error"]["Code"]
        assert got in codes, f"{what}: error {got} ({e}), wanted {codes}"
        cls = getattr(c.exceptions, EXCEPTIONS[got])
        assert isinstance(e, cls), f"{what}: {type(e).__name__}, wanted {EXCEPTIONS[got]}"
        return e
    raise AssertionError(f"{what}: no error, wanted {codes}")


def make_queue(sqs, q, **attrs):
    attributes = {k: str(v) for k, v in attrs.items()}
    return sqs.create_queue(QueueName=q, Attributes=attributes)["QueueUrl"]


def subscribe_queue(sns, arn, q, **attrs):
    attributes = {k: str(v) for k, v in attrs.items()}
    sub = sns.subscribe(TopicArn=arn, Protocol="sqs", Endpoint=queue_arn(q),
                        Attributes=attributes)["SubscriptionArn"]
    assert sub.startswith(arn + ":") and UUID.match(sub[len(arn) + 1:]), sub
    return sub


def receive_within(sqs, url, want, what, timeout=WAIT_S):
    """Receives (and deletes) until `want` messages came, within `timeout`."""
    got = []
    deadline = time.monotonic() + timeout
    while len(got) < want:
        assert time.monotonic() < deadline, f"{what}: {len(got)} of {want} within {timeout} s"
        got += receive_some(sqs, url, min(10, want - len(got)))
    assert len(got) == want, f"{what}: {len(got)} messages, wanted {want}"
    return got


def receive_some(sqs, url, n=10, wait_s=1):
    got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=n, WaitTimeSeconds=wait_s,
                              MessageAttributeNames=["All"]).get("Messages", [])
    for m in got:
        sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    return got


def receive_until(sqs, url, done, what):
    """Receives (and deletes) until `done(message)` holds for one; all messages received."""
    got = []
    deadline = time.monotonic() + WAIT_S
    while not any(done(m) for m in got):
        assert time.monotonic() < deadline, f"{what}: no end within {WAIT_S} s: {got}"
        got += receive_some(sqs, url)
    return got


def assert_empty(sqs, url, what):
    got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10,
                              WaitTimeSeconds=0).get("Messages", [])
    assert not got, f"{what}: {got}"


def envelope(m):
    """The Notification SNS wraps a message in (a non-raw subscription's body)."""
    body = json.loads(m["Body"])
    assert body["Type"] == "Notification", body
    return body


def check_envelope(body, arn, message_id, message, version="1"):
    assert body["MessageId"] == message_id, body
    assert body["TopicArn"] == arn, body
    assert body["Message"] == message, body
    assert TIMESTAMP.match(body["Timestamp"]), body
    assert body["SignatureVersion"] == version, body
    assert body["Signature"] and body["SigningCertURL"].endswith(".pem"), body
    assert "UnsubscribeURL" in body, body


# 1. Topics --------------------------------------------------------------------------------

def topic_lifecycle(endpoint):
    sns = sns_client(endpoint)
    t = name("lifecycle", "t")
    arn = sns.create_topic(Name=t, Attributes={"DisplayName": "Orders"})["TopicArn"]
    assert arn == topic_arn(t), arn
    again = sns.create_topic(Name=t, Attributes={"DisplayName": "Orders"})["TopicArn"]
    assert again == arn, "CreateTopic again with the same attributes"
    got = sns.get_topic_attributes(TopicArn=arn)["Attributes"]
    assert got["TopicArn"] == arn and got["Owner"] == ACCOUNT, got
    assert got["DisplayName"] == "Orders", got
    for count in ("SubscriptionsConfirmed", "SubscriptionsPending", "SubscriptionsDeleted"):
        assert got[count] == "0", got
    assert json.loads(got["Policy"])["Statement"], got
    effective = json.loads(got["EffectiveDeliveryPolicy"])["http"]["defaultHealthyRetryPolicy"]
    assert effective["numRetries"] == 3 and effective["minDelayTarget"] == 20, got
    sns.set_topic_attributes(TopicArn=arn, AttributeName="DisplayName", AttributeValue="Shop")
    got = sns.get_topic_attributes(TopicArn=arn)["Attributes"]
    assert got["DisplayName"] == "Shop", got
    policy = {"http": {"defaultHealthyRetryPolicy": {"numRetries": 5, "minDelayTarget": 2,
                                                     "maxDelayTarget": 8}}}
    sns.set_topic_attributes(TopicArn=arn, AttributeName="DeliveryPolicy",
                             AttributeValue=json.dumps(policy))
    got = sns.get_topic_attributes(TopicArn=arn)["Attributes"]
    assert json.loads(got["DeliveryPolicy"]) == policy, got
    effective = json.loads(got["EffectiveDeliveryPolicy"])["http"]["defaultHealthyRetryPolicy"]
    assert (effective["numRetries"], effective["maxDelayTarget"]) == (5, 8), got
    expect_error(sns, "InvalidParameter", lambda: sns.set_topic_attributes(
        TopicArn=arn, AttributeName="DeliveryPolicy",
        AttributeValue=json.dumps({"http": {"defaultHealthyRetryPolicy": {"numRetries": 101}}})),
        "numRetries past SNS's 100")
    expect_error(sns, "InvalidParameter", lambda: sns.set_topic_attributes(
        TopicArn=arn, AttributeName="Policy", AttributeValue="{}"), "Policy (not honoured)")
    sns.tag_resource(ResourceArn=arn, Tags=[{"Key": "team", "Value": "shop"},
                                            {"Key": "env", "Value": "test"}])
    tags = sns.list_tags_for_resource(ResourceArn=arn)["Tags"]
    assert sorted((x["Key"], x["Value"]) for x in tags) == [("env", "test"), ("team", "shop")]
    sns.untag_resource(ResourceArn=arn, TagKeys=["env"])
    tags = sns.list_tags_for_resource(ResourceArn=arn)["Tags"]
    assert tags == [{"Key": "team", "Value": "shop"}], tags
    assert arn in all_topics(sns)
    sns.delete_topic(TopicArn=arn)
    assert arn not in all_topics(sns)
    sns.delete_topic(TopicArn=arn)  # DeleteTopic is idempotent in SNS.
    expect_error(sns, "NotFound", lambda: sns.get_topic_attributes(TopicArn=arn),
                 "GetTopicAttributes after DeleteTopic")


def all_topics(sns):
    arns, token, pages = [], None, 0
    while True:
        kw = {"NextToken": token} if token else {}
        page = sns.list_topics(**kw)
        pages += 1
        assert pages < 10_000, "ListTopics never ends"
        arns += [t["TopicArn"] for t in page.get("Topics", [])]
        token = page.get("NextToken")
        if not token:
            return arns


def list_topics_in_pages(endpoint):
    """ListTopics answers pages of 100 with a NextToken; every topic appears once."""
    sns = sns_client(endpoint)
    ours = [sns.create_topic(Name=name("pages", f"{i:03}"))["TopicArn"] for i in range(101)]
    first = sns.list_topics()
    assert len(first["Topics"]) == 100 and first.get("NextToken"), len(first["Topics"])
    arns = all_topics(sns)
    assert len(arns) == len(set(arns)), "a topic listed twice"
    assert set(ours) <= set(arns), set(ours) - set(arns)
    for arn in ours:
        sns.delete_topic(TopicArn=arn)
    assert not set(ours) & set(all_topics(sns))


# 2. Fan-out to SQS ------------------------------------------------------------------------

def order_events_fan_out(endpoint):
    """The classic order-events fan-out: one topic, three queues (one raw); one publish
    with message attributes reaches each queue once."""
    sns, sqs = sns_client(endpoint), sqs_client(endpoint)
    arn = sns.create_topic(Name=name("orders", "events"))["TopicArn"]
    queues = {what: name("orders", what) for what in ("billing", "shipping", "audit")}
    urls = {what: make_queue(sqs, q) for what, q in queues.items()}
    subs = {what: subscribe_queue(sns, arn, q, **({"RawMessageDelivery": "true"}
                                                  if what == "shipping" else {}))
            for what, q in queues.items()}
    assert subscribe_queue(sns, arn, queues["billing"]) == subs["billing"], \
        "Subscribe again: the same subscription"
    listed = sns.list_subscriptions_by_topic(TopicArn=arn)["Subscriptions"]
    assert sorted(s["SubscriptionArn"] for s in listed) == sorted(subs.values()), listed
    for s in listed:
        assert s["Protocol"] == "sqs" and s["TopicArn"] == arn and s["Owner"] == ACCOUNT, s
    got = sns.get_topic_attributes(TopicArn=arn)["Attributes"]
    assert got["SubscriptionsConfirmed"] == "3" and got["SubscriptionsPending"] == "0", got

    message = json.dumps({"order": 1042, "total": 42.5})
    attributes = {
        "event": {"DataType": "String", "StringValue": "order_placed"},
        "amount": {"DataType": "Number", "StringValue": "42.5"},
        "blob": {"DataType": "Binary", "BinaryValue": b"\x00\x01\xff"},
    }
    published = sns.publish(TopicArn=arn, Message=message, Subject="Order placed",
                            MessageAttributes=attributes)
    message_id = published["MessageId"]
    assert UUID.match(message_id), published

    raw = receive_within(sqs, urls["shipping"], 1, "the raw subscription")[0]
    assert raw["Body"] == message, raw
    assert raw["MessageAttributes"] == {
        "event": {"DataType": "String", "StringValue": "order_placed"},
        "amount": {"DataType": "Number", "StringValue": "42.5"},
        "blob": {"DataType": "Binary", "BinaryValue": b"\x00\x01\xff"},
    }, raw["MessageAttributes"]
    for what in ("billing", "audit"):
        m = receive_within(sqs, urls[what], 1, f"the {what} subscription")[0]
        body = envelope(m)
        check_envelope(body, arn, message_id, message)
        assert body["Subject"] == "Order placed", body
        assert body["MessageAttributes"] == {
            "event": {"Type": "String", "Value": "order_placed"},
            "amount": {"Type": "Number", "Value": "42.5"},
            "blob": {"Type": "Binary", "Value": base64.b64encode(b"\x00\x01\xff").decode()},
        }, body["MessageAttributes"]
        assert subs[what].split(":")[-1] in body["UnsubscribeURL"], body
        assert "MessageAttributes" not in m, "SNS puts attributes in the envelope only"
    # Once each: a second publish is the first thing each queue holds next.
    sns.publish(TopicArn=arn, Message="second")
    for what, url in urls.items():
        m = receive_within(sqs, url, 1, f"the second message in {what}")[0]
        body = m["Body"] if what == "shipping" else envelope(m)["Message"]
        assert body == "second", f"{what} got {body} again"
        assert_empty(sqs, url, f"{what} after the second message")
    sns.delete_topic(TopicArn=arn)
    for url in urls.values():
        sqs.delete_queue(QueueUrl=url)


FILTERS = {
    "exact": {"event": ["order_placed"]},
    "prefix": {"region": [{"prefix": "eu-"}]},
    "anything_but": {"event": [{"anything-but": ["order_cancelled"]}]},
    "numeric": {"amount": [{"numeric": [">=", 100, "<", 1000]}]},
    "exists": {"coupon": [{"exists": True}]},
    "payload": {"order": {"status": ["paid"]}},
}
# Each message misses the filters named; the sentinel `z` matches every filter.
MESSAGES = {
    "a": ({"event": "order_cancelled"}, {"exact", "anything_but"}),
    "b": ({"region": "us-east-1"}, {"prefix"}),
    "c": ({"amount": "1000"}, {"numeric"}),
    "d": ({"coupon": None}, {"exists"}),
    "e": ({"status": "pending"}, {"payload"}),
    "f": ({"body": "not json"}, {"payload"}),
    "z": ({}, set()),
}


def filter_policies(endpoint):
    """A filter policy per subscription (attribute scope: exact, prefix, anything-but,
    numeric range, exists; payload scope): each queue gets exactly the matching messages."""
    sns, sqs = sns_client(endpoint), sqs_client(endpoint)
    arn = sns.create_topic(Name=name("filters", "t"))["TopicArn"]
    urls, subs = {}, {}
    for f, policy in FILTERS.items():
        q = name("filters", f.replace("_", "-"))
        urls[f] = make_queue(sqs, q)
        attrs = {"RawMessageDelivery": "true"}
        if f == "payload":
            attrs["FilterPolicyScope"] = "MessageBody"
        if f == "numeric":
            # Set after Subscribe, as SetSubscriptionAttributes does.
            subs[f] = subscribe_queue(sns, arn, q, **attrs)
            sns.set_subscription_attributes(SubscriptionArn=subs[f], AttributeName="FilterPolicy",
                                            AttributeValue=json.dumps(policy))
        else:
            subs[f] = subscribe_queue(sns, arn, q, FilterPolicy=json.dumps(policy), **attrs)
    got = sns.get_subscription_attributes(SubscriptionArn=subs["payload"])["Attributes"]
    assert json.loads(got["FilterPolicy"]) == FILTERS["payload"], got
    assert got["FilterPolicyScope"] == "MessageBody", got
    got = sns.get_subscription_attributes(SubscriptionArn=subs["numeric"])["Attributes"]
    assert json.loads(got["FilterPolicy"]) == FILTERS["numeric"], got
    expect_error(sns, "InvalidParameter", lambda: sns.set_subscription_attributes(
        SubscriptionArn=subs["exact"], AttributeName="FilterPolicy", AttributeValue="{not json"),
        "a FilterPolicy that is not JSON")
    expect_error(sns, "InvalidParameter", lambda: sns.set_subscription_attributes(
        SubscriptionArn=subs["exact"], AttributeName="FilterPolicy",
        AttributeValue=json.dumps({"event": [{"numeric": ["<>", 1]}]})),
        "a FilterPolicy with a bad numeric operator")

    for key, (change, _) in MESSAGES.items():
        attrs = {"event": "order_placed", "region": "eu-west-1", "amount": "500",
                 "coupon": "SPRING"}
        status = change.get("status", "paid")
        attrs.update({k: v for k, v in change.items() if k in attrs})
        message = change.get("body") or json.dumps({"order": {"status": status}, "id": key})
        message_attributes = {
            k: {"DataType": "Number" if k == "amount" else "String", "StringValue": v}
            for k, v in attrs.items() if v is not None}
        message_attributes["id"] = {"DataType": "String", "StringValue": key}
        sns.publish(TopicArn=arn, Message=message, MessageAttributes=message_attributes)

    for f, url in urls.items():
        got = receive_until(sqs, url, lambda m: m["MessageAttributes"]["id"]["StringValue"] == "z",
                            f"filter {f}")
        ids = sorted(m["MessageAttributes"]["id"]["StringValue"] for m in got)
        want = sorted(k for k, (_, misses) in MESSAGES.items() if f not in misses)
        assert ids == want, f"filter {f} {FILTERS[f]}: got {ids}, wanted {want}"
    sns.delete_topic(TopicArn=arn)
    for url in urls.values():
        sqs.delete_queue(QueueUrl=url)


def publish_batch_answers_each_entry(endpoint):
    sns, sqs = sns_client(endpoint), sqs_client(endpoint)
    arn = sns.create_topic(Name=name("batch", "t"))["TopicArn"]
    q = name("batch", "q")
    url = make_queue(sqs, q)
    subscribe_queue(sns, arn, q, RawMessageDelivery="true")
    got = sns.publish_batch(TopicArn=arn, PublishBatchRequestEntries=[
        {"Id": "one", "Message": "m1"},
        {"Id": "bad", "Message": "m2", "Subject": "s" * 101},
        {"Id": "three", "Message": "m3",
         "MessageAttributes": {"k": {"DataType": "String", "StringValue": "v"}}},
    ])
    ok = {e["Id"]: e["MessageId"] for e in got["Successful"]}
    assert sorted(ok) == ["one", "three"], got
    assert all(UUID.match(i) for i in ok.values()) and len(set(ok.values())) == 2, got
    assert [e["Id"] for e in got["Failed"]] == ["bad"], got
    failed = got["Failed"][0]
    assert failed["SenderFault"] is True, failed
    assert failed["Code"] in ("InvalidParameter", "ParameterValueInvalid"), failed
    bodies = sorted(m["Body"] for m in receive_within(sqs, url, 2, "the batch's good entries"))
    assert bodies == ["m1", "m3"], bodies
    expect_error(sns, "TooManyEntriesInBatchRequest", lambda: sns.publish_batch(
        TopicArn=arn, PublishBatchRequestEntries=[
            {"Id": f"e{i}", "Message": "x"} for i in range(11)]), "eleven entries")
    expect_error(sns, "BatchEntryIdsNotDistinct", lambda: sns.publish_batch(
        TopicArn=arn, PublishBatchRequestEntries=[
            {"Id": "same", "Message": "x"}, {"Id": "same", "Message": "y"}]), "twice one id")
    expect_error(sns, "InvalidBatchEntryId", lambda: sns.publish_batch(
        TopicArn=arn, PublishBatchRequestEntries=[{"Id": "bad id!", "Message": "x"}]),
        "an id SNS does not allow")
    assert_empty(sqs, url, "refused batches delivered nothing")
    sns.delete_topic(TopicArn=arn)
    sqs.delete_queue(QueueUrl=url)


def fifo_topic_to_fifo_queue(endpoint):
    """A FIFO topic to a FIFO queue: group order kept, duplicates dropped (explicit and
    content-based deduplication ids)."""
    sns, sqs = sns_client(endpoint), sqs_client(endpoint)
    t = name("fifo", "t") + ".fifo"
    expect_error(sns, "InvalidParameter", lambda: sns.create_topic(Name=t),
                 "a .fifo name without FifoTopic")
    arn = sns.create_topic(Name=t, Attributes={"FifoTopic": "true"})["TopicArn"]
    q = name("fifo", "q") + ".fifo"
    url = make_queue(sqs, q, FifoQueue="true")
    subscribe_queue(sns, arn, q, RawMessageDelivery="true")
    expect_error(sns, "InvalidParameter", lambda: sns.publish(TopicArn=arn, Message="x"),
                 "a FIFO publish without MessageGroupId")
    expect_error(sns, "InvalidParameter", lambda: sns.publish(
        TopicArn=arn, Message="x", MessageGroupId="g"),
        "no MessageDeduplicationId and no ContentBasedDeduplication")
    sequence = []
    for body, dedup in (("m1", "d1"), ("m2", "d2"), ("m2 again", "d2"), ("m3", "d3")):
        got = sns.publish(TopicArn=arn, Message=body, MessageGroupId="g",
                          MessageDeduplicationId=dedup)
        assert re.match(r"^\d{20}$", got["SequenceNumber"]), got
        sequence.append(got["SequenceNumber"])
    assert sequence[2] == sequence[1], "a duplicate is answered as the original"
    assert sequence[0] < sequence[1] < sequence[3], sequence
    sns.set_topic_attributes(TopicArn=arn, AttributeName="ContentBasedDeduplication",
                             AttributeValue="true")
    for _ in range(2):
        sns.publish(TopicArn=arn, Message="same body", MessageGroupId="g")
    got = []
    deadline = time.monotonic() + WAIT_S
    while not any(m["Body"] == "same body" for m in got):
        assert time.monotonic() < deadline, f"FIFO deliveries: {got}"
        # A FIFO group hands out one message at a time: receive, delete, repeat.
        got += receive_some(sqs, url, 1)
    assert [m["Body"] for m in got] == ["m1", "m2", "m3", "same body"], got
    extra = receive_some(sqs, url, 10, wait_s=1)
    assert not extra, f"a duplicate was delivered: {extra}"
    sns.delete_topic(TopicArn=arn)
    sqs.delete_queue(QueueUrl=url)


def unsubscribe_stops_deliveries(endpoint):
    sns, sqs = sns_client(endpoint), sqs_client(endpoint)
    arn = sns.create_topic(Name=name("unsub", "t"))["TopicArn"]
    qa, qb = name("unsub", "a"), name("unsub", "b")
    ua, ub = make_queue(sqs, qa), make_queue(sqs, qb)
    sa = subscribe_queue(sns, arn, qa, RawMessageDelivery="true")
    subscribe_queue(sns, arn, qb, RawMessageDelivery="true")
    sns.publish(TopicArn=arn, Message="before")
    for url in (ua, ub):
        assert receive_within(sqs, url, 1, "before")[0]["Body"] == "before"
    sns.unsubscribe(SubscriptionArn=sa)
    expect_error(sns, "NotFound", lambda: sns.get_subscription_attributes(SubscriptionArn=sa),
                 "GetSubscriptionAttributes after Unsubscribe")
    listed = sns.list_subscriptions_by_topic(TopicArn=arn)["Subscriptions"]
    assert [s["Endpoint"] for s in listed] == [queue_arn(qb)], listed
    assert sa not in [s["SubscriptionArn"] for s in all_subscriptions(sns)]
    sns.publish(TopicArn=arn, Message="after")
    assert receive_within(sqs, ub, 1, "after, in b")[0]["Body"] == "after"
    assert_empty(sqs, ua, "a after its Unsubscribe")
    sns.delete_topic(TopicArn=arn)
    for url in (ua, ub):
        sqs.delete_queue(QueueUrl=url)


def all_subscriptions(sns):
    subs, token, pages = [], None, 0
    while True:
        kw = {"NextToken": token} if token else {}
        page = sns.list_subscriptions(**kw)
        pages += 1
        assert pages < 10_000, "ListSubscriptions never ends"
        subs += page.get("Subscriptions", [])
        token = page.get("NextToken")
        if not token:
            return subs


def list_subscriptions_in_pages(endpoint):
    """ListSubscriptionsByTopic and ListSubscriptions answer pages of 100 with a NextToken;
    every subscription appears once."""
    sns, sqs = sns_client(endpoint), sqs_client(endpoint)
    arn = sns.create_topic(Name=name("subpages", "t"))["TopicArn"]
    queues = [name("subpages", f"{i:03}") for i in range(101)]
    urls = [make_queue(sqs, q) for q in queues]
    subs = {subscribe_queue(sns, arn, q) for q in queues}
    first = sns.list_subscriptions_by_topic(TopicArn=arn)
    assert len(first["Subscriptions"]) == 100 and first.get("NextToken"), first.keys()
    second = sns.list_subscriptions_by_topic(TopicArn=arn, NextToken=first["NextToken"])
    assert len(second["Subscriptions"]) == 1 and "NextToken" not in second, second
    listed = [s["SubscriptionArn"] for s in first["Subscriptions"] + second["Subscriptions"]]
    assert sorted(listed) == sorted(subs), "ListSubscriptionsByTopic"
    everything = [s["SubscriptionArn"] for s in all_subscriptions(sns)]
    assert len(everything) == len(set(everything)), "a subscription listed twice"
    assert subs <= set(everything), "ListSubscriptions"
    sns.delete_topic(TopicArn=arn)
    for url in urls:
        sqs.delete_queue(QueueUrl=url)


def subscription_attributes(endpoint):
    sns, sqs = sns_client(endpoint), sqs_client(endpoint)
    arn = sns.create_topic(Name=name("subattrs", "t"))["TopicArn"]
    q = name("subattrs", "q")
    url = make_queue(sqs, q)
    sub = sns.subscribe(TopicArn=arn, Protocol="sqs", Endpoint=queue_arn(q),
                        ReturnSubscriptionArn=True)["SubscriptionArn"]
    got = sns.get_subscription_attributes(SubscriptionArn=sub)["Attributes"]
    want = {"SubscriptionArn": sub, "TopicArn": arn, "Protocol": "sqs",
            "Endpoint": queue_arn(q), "Owner": ACCOUNT, "PendingConfirmation": "false",
            "ConfirmationWasAuthenticated": "true", "RawMessageDelivery": "false"}
    assert {k: got.get(k) for k in want} == want, got
    assert "FilterPolicy" not in got, got
    sns.set_subscription_attributes(SubscriptionArn=sub, AttributeName="RawMessageDelivery",
                                    AttributeValue="true")
    got = sns.get_subscription_attributes(SubscriptionArn=sub)["Attributes"]
    assert got["RawMessageDelivery"] == "true", got
    expect_error(sns, "InvalidParameter", lambda: sns.set_subscription_attributes(
        SubscriptionArn=sub, AttributeName="RawMessageDelivery", AttributeValue="maybe"),
        "RawMessageDelivery neither true nor false")
    expect_error(sns, "InvalidParameter", lambda: sns.set_subscription_attributes(
        SubscriptionArn=sub, AttributeName="Bogus", AttributeValue="x"),
        "an attribute SNS does not have")
    mine = [s for s in all_subscriptions(sns) if s["SubscriptionArn"] == sub]
    assert mine == [{"SubscriptionArn": sub, "Owner": ACCOUNT, "Protocol": "sqs",
                     "Endpoint": queue_arn(q), "TopicArn": arn}], mine
    sns.delete_topic(TopicArn=arn)
    expect_error(sns, "NotFound", lambda: sns.get_subscription_attributes(SubscriptionArn=sub),
                 "a subscription of a deleted topic")
    sqs.delete_queue(QueueUrl=url)


# 3. HTTP endpoints -------------------------------------------------------------------------

class Endpoint:
    """A local HTTP endpoint recording each POST; `/flaky` answers 500 to its first two
    Notifications, `/dead` to every one. With `tls` (certificate and key files) it is an
    https endpoint."""

    def __init__(self, tls=None):
        self.posts = []
        self.cond = threading.Condition()
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with owner.cond:
                    kind = self.headers.get("x-amz-sns-message-type")
                    headers = {k.lower(): v for k, v in self.headers.items()}
                    owner.posts.append((self.path, headers, body, time.monotonic()))
                    earlier = [p for p in owner.posts[:-1]
                               if p[0] == self.path and
                               p[1].get("x-amz-sns-message-type") == "Notification"]
                    fail = kind == "Notification" and (
                        self.path == "/dead" or self.path == "/flaky" and len(earlier) < 2)
                    owner.cond.notify_all()
                self.send_response(500 if fail else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        scheme = "http"
        if tls:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
            scheme = "https"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"{scheme}://127.0.0.1:{self.server.server_address[1]}"

    def wait(self, what, pred, n=1):
        deadline = time.monotonic() + WAIT_S
        with self.cond:
            while True:
                got = [p for p in self.posts if pred(p)]
                if len(got) >= n:
                    return got
                left = deadline - time.monotonic()
                assert left > 0, f"{what}: {len(got)} of {n} within {WAIT_S} s: {self.posts}"
                self.cond.wait(left)


def kind_is(path, kind):
    return lambda p: p[0] == path and p[1].get("x-amz-sns-message-type") == kind


def http_subscription_with_confirmation_and_retries(endpoint):
    sns = sns_client(endpoint)
    server = Endpoint()
    arn = sns.create_topic(Name=name("http", "t"))["TopicArn"]
    pending = sns.subscribe(TopicArn=arn, Protocol="http", Endpoint=server.url + "/ok")
    assert pending["SubscriptionArn"] == "pending confirmation", pending
    path, headers, body, _ = server.wait("the SubscriptionConfirmation",
                                         kind_is("/ok", "SubscriptionConfirmation"))[0]
    confirmation = json.loads(body)
    assert confirmation["Type"] == "SubscriptionConfirmation", confirmation
    assert confirmation["TopicArn"] == arn and confirmation["Token"], confirmation
    assert headers["x-amz-sns-topic-arn"] == arn, headers
    got = sns.get_topic_attributes(TopicArn=arn)["Attributes"]
    assert got["SubscriptionsPending"] == "1" and got["SubscriptionsConfirmed"] == "0", got
    listed = sns.list_subscriptions_by_topic(TopicArn=arn)["Subscriptions"]
    assert [(s["SubscriptionArn"], s["Endpoint"]) for s in listed] == [
        ("PendingConfirmation", server.url + "/ok")], listed
    # Visiting the SubscribeURL confirms, as an endpoint does with a plain GET. It names
    # the port the broker listens on (test brokers ask for port 0).
    url = urllib.parse.urlsplit(confirmation["SubscribeURL"])
    assert url.netloc == urllib.parse.urlsplit(endpoint).netloc, (url, endpoint)
    query = urllib.parse.parse_qs(url.query)
    assert query == {"Action": ["ConfirmSubscription"], "TopicArn": [arn],
                     "Token": [confirmation["Token"]]}, confirmation["SubscribeURL"]
    with urllib.request.urlopen(confirmation["SubscribeURL"], timeout=WAIT_S) as r:
        answer = r.read().decode()
    assert "<SubscriptionArn>" + arn + ":" in answer, answer
    ok_sub = re.search(r"<SubscriptionArn>([^<]+)</SubscriptionArn>", answer).group(1)
    got = sns.get_subscription_attributes(SubscriptionArn=ok_sub)["Attributes"]
    assert got["PendingConfirmation"] == "false" and got["Endpoint"] == server.url + "/ok", got

    retry = {"healthyRetryPolicy": {"numRetries": 3, "numNoDelayRetries": 0,
                                    "minDelayTarget": 1, "maxDelayTarget": 1,
                                    "numMinDelayRetries": 0, "numMaxDelayRetries": 0,
                                    "backoffFunction": "linear"}}
    sns.subscribe(TopicArn=arn, Protocol="http", Endpoint=server.url + "/flaky",
                  Attributes={"DeliveryPolicy": json.dumps(retry)})
    _, _, body, _ = server.wait("the second confirmation",
                                kind_is("/flaky", "SubscriptionConfirmation"))[0]
    token = json.loads(body)["Token"]
    flaky_sub = sns.confirm_subscription(TopicArn=arn, Token=token)["SubscriptionArn"]
    assert flaky_sub.startswith(arn + ":") and flaky_sub != ok_sub, flaky_sub
    got = sns.get_topic_attributes(TopicArn=arn)["Attributes"]
    assert got["SubscriptionsConfirmed"] == "2" and got["SubscriptionsPending"] == "0", got

    message_id = sns.publish(TopicArn=arn, Message="hello http", Subject="greeting",
                             MessageAttributes={"k": {"DataType": "String",
                                                      "StringValue": "v"}})["MessageId"]
    _, headers, body, _ = server.wait("the Notification", kind_is("/ok", "Notification"))[0]
    note = json.loads(body)
    check_envelope(note, arn, message_id, "hello http")
    assert note["Subject"] == "greeting", note
    assert note["MessageAttributes"] == {"k": {"Type": "String", "Value": "v"}}, note
    assert headers["x-amz-sns-message-id"] == message_id, headers
    assert headers["x-amz-sns-subscription-arn"] == ok_sub, headers
    assert headers["content-type"].startswith("text/plain"), headers
    attempts = server.wait("three attempts at /flaky", kind_is("/flaky", "Notification"), 3)
    assert all(json.loads(p[2])["MessageId"] == message_id for p in attempts), attempts
    gaps = [b[3] - a[3] for a, b in zip(attempts, attempts[1:])]
    assert all(g >= 0.5 for g in gaps), f"retries {gaps} s apart, wanted about 1 s"
    # The third attempt succeeded: no fourth one.
    time.sleep(1.5)
    with server.cond:
        assert len([p for p in server.posts if kind_is("/flaky", "Notification")(p)]) == 3
        assert len([p for p in server.posts if kind_is("/ok", "Notification")(p)]) == 1
    expect_error(sns, ("InvalidParameter", "NotFound"), lambda: sns.confirm_subscription(
        TopicArn=arn, Token="00" * 32), "an unknown token")
    sns.delete_topic(TopicArn=arn)
    server.server.shutdown()


def message_structure_json_sends_each_protocol_its_own(endpoint):
    """MessageStructure=json: an SQS subscription (raw or enveloped) gets the `sqs`
    member, an HTTP endpoint the `http` member, and a protocol without a member the
    `default`; a structure without `default` or not JSON is refused."""
    sns, sqs = sns_client(endpoint), sqs_client(endpoint)
    server = Endpoint()
    arn = sns.create_topic(Name=name("structured", "t"))["TopicArn"]
    raw_q, wrapped_q = name("structured", "raw"), name("structured", "wrapped")
    raw_url, wrapped_url = make_queue(sqs, raw_q), make_queue(sqs, wrapped_q)
    subscribe_queue(sns, arn, raw_q, RawMessageDelivery="true")
    subscribe_queue(sns, arn, wrapped_q)
    sns.subscribe(TopicArn=arn, Protocol="http", Endpoint=server.url + "/ok")
    _, _, body, _ = server.wait("the confirmation", kind_is("/ok", "SubscriptionConfirmation"))[0]
    sns.confirm_subscription(TopicArn=arn, Token=json.loads(body)["Token"])
    for bad, what in [('{"sqs": "no default"}', "no default"), ("not json", "not JSON"),
                      ('{"default": 7}', "a number")]:
        expect_error(sns, "InvalidParameter", lambda: sns.publish(
            TopicArn=arn, Message=bad, MessageStructure="json"), what)
    structured = json.dumps({"default": "for anyone", "sqs": "for queues",
                             "email": "for mail"})
    first = sns.publish(TopicArn=arn, Message=structured, MessageStructure="json")["MessageId"]
    only_default = json.dumps({"default": "the default", "http": "for endpoints"})
    second = sns.publish(TopicArn=arn, Message=only_default,
                         MessageStructure="json")["MessageId"]
    raw = receive_within(sqs, raw_url, 2, "raw deliveries")
    assert sorted(m["Body"] for m in raw) == ["for queues", "the default"], raw
    by_id = lambda docs: {d["MessageId"]: d for d in docs}
    wrapped = by_id(envelope(m) for m in receive_within(sqs, wrapped_url, 2, "enveloped"))
    check_envelope(wrapped[first], arn, first, "for queues")
    check_envelope(wrapped[second], arn, second, "the default")
    posts = server.wait("two notifications", kind_is("/ok", "Notification"), 2)
    notes = by_id(json.loads(p[2]) for p in posts)
    check_envelope(notes[first], arn, first, "for anyone")
    check_envelope(notes[second], arn, second, "for endpoints")
    sns.delete_topic(TopicArn=arn)
    for url in (raw_url, wrapped_url):
        sqs.delete_queue(QueueUrl=url)
    server.server.shutdown()


def authenticate_on_unsubscribe_refuses_the_unsigned_link(endpoint):
    """A subscription confirmed with AuthenticateOnUnsubscribe=true is not removed by its
    notifications' UnsubscribeURL (an unsigned GET), only by a signed Unsubscribe; one
    confirmed without it is removed by the link."""
    sns = sns_client(endpoint)
    server = Endpoint()
    arn = sns.create_topic(Name=name("unsub", "t"))["TopicArn"]
    subs = {}
    for path, guarded in (("/guarded", "true"), ("/open", None)):
        sns.subscribe(TopicArn=arn, Protocol="http", Endpoint=server.url + path)
        _, _, body, _ = server.wait("a confirmation", kind_is(path, "SubscriptionConfirmation"))[0]
        extra = {"AuthenticateOnUnsubscribe": guarded} if guarded else {}
        subs[path] = sns.confirm_subscription(
            TopicArn=arn, Token=json.loads(body)["Token"], **extra)["SubscriptionArn"]
    sns.publish(TopicArn=arn, Message="with links")
    for path in subs:
        _, _, body, _ = server.wait("a notification", kind_is(path, "Notification"))[0]
        link = json.loads(body)["UnsubscribeURL"]
        assert subs[path] in urllib.parse.unquote(link), (link, subs[path])
        try:
            with urllib.request.urlopen(link, timeout=WAIT_S) as r:
                status, answer = r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            status, answer = e.code, e.read().decode()
        if path == "/guarded":
            assert status == 403 and "AuthorizationError" in answer, (status, answer)
        else:
            assert status == 200, (status, answer)
    left = [x["SubscriptionArn"] for x in sns.list_subscriptions_by_topic(TopicArn=arn)["Subscriptions"]]
    assert left == [subs["/guarded"]], left
    sns.unsubscribe(SubscriptionArn=subs["/guarded"])  # signed: served
    assert not sns.list_subscriptions_by_topic(TopicArn=arn)["Subscriptions"]
    sns.delete_topic(TopicArn=arn)
    server.server.shutdown()


def unsubscribe_confirmation_restores_the_subscription(endpoint):
    """Unsubscribing a confirmed HTTP subscription POSTs an UnsubscribeConfirmation naming
    it; a GET of its SubscribeURL restores the subscription under the same ARN and
    notifications reach the endpoint again. Each Unsubscribe has a token of its own (an
    older one restores nothing), and a queue subscription gets no notice."""
    sns, sqs = sns_client(endpoint), sqs_client(endpoint)
    server = Endpoint()
    arn = sns.create_topic(Name=name("unsubconf", "t"))["TopicArn"]
    q = name("unsubconf", "q")
    url = make_queue(sqs, q)
    queue_sub = subscribe_queue(sns, arn, q)
    sns.subscribe(TopicArn=arn, Protocol="http", Endpoint=server.url + "/u")
    _, _, body, _ = server.wait("the confirmation", kind_is("/u", "SubscriptionConfirmation"))[0]
    sub = sns.confirm_subscription(TopicArn=arn,
                                   Token=json.loads(body)["Token"])["SubscriptionArn"]
    sns.unsubscribe(SubscriptionArn=sub)
    listed = [s["SubscriptionArn"] for s in
              sns.list_subscriptions_by_topic(TopicArn=arn)["Subscriptions"]]
    assert listed == [queue_sub], listed
    _, headers, body, _ = server.wait("the UnsubscribeConfirmation",
                                      kind_is("/u", "UnsubscribeConfirmation"))[0]
    notice = json.loads(body)
    assert notice["TopicArn"] == arn and notice["Token"], notice
    assert f"deactivate subscription {sub}." in notice["Message"], notice
    assert headers["x-amz-sns-subscription-arn"] == sub, headers
    assert headers["x-amz-sns-topic-arn"] == arn, headers
    first_token = notice["Token"]
    with urllib.request.urlopen(notice["SubscribeURL"], timeout=WAIT_S) as r:
        answer = r.read().decode()
    assert f"<SubscriptionArn>{sub}</SubscriptionArn>" in answer, answer
    got = sns.get_subscription_attributes(SubscriptionArn=sub)["Attributes"]
    assert got["PendingConfirmation"] == "false" and got["Endpoint"] == server.url + "/u", got
    message_id = sns.publish(TopicArn=arn, Message="back again")["MessageId"]
    is_it = lambda p: kind_is("/u", "Notification")(p) and \
        json.loads(p[2])["MessageId"] == message_id
    _, _, body, _ = server.wait("the Notification after the restore", is_it)[0]
    check_envelope(json.loads(body), arn, message_id, "back again")
    # A second Unsubscribe sends a new token; the first one no longer restores.
    sns.unsubscribe(SubscriptionArn=sub)
    notices = server.wait("a second notice", kind_is("/u", "UnsubscribeConfirmation"), 2)
    assert json.loads(notices[1][2])["Token"] != first_token, notices
    expect_error(sns, "InvalidParameter", lambda: sns.confirm_subscription(
        TopicArn=arn, Token=first_token), "the first Unsubscribe's token")
    sns.unsubscribe(SubscriptionArn=queue_sub)
    time.sleep(1)
    with server.cond:
        kinds = [p[1].get("x-amz-sns-message-type") for p in server.posts]
    assert kinds.count("UnsubscribeConfirmation") == 2, kinds
    sns.delete_topic(TopicArn=arn)
    sqs.delete_queue(QueueUrl=url)
    server.server.shutdown()


def http_failures_go_to_the_dead_letter_queue(endpoint):
    """A subscription's RedrivePolicy: a message whose retries are spent goes to its
    dead-letter queue, once."""
    sns, sqs = sns_client(endpoint), sqs_client(endpoint)
    server = Endpoint()
    arn = sns.create_topic(Name=name("dlq", "t"))["TopicArn"]
    q = name("dlq", "q")
    url = make_queue(sqs, q)
    expect_error(sns, "InvalidParameter", lambda: sns.subscribe(
        TopicArn=arn, Protocol="http", Endpoint=server.url + "/dead", Attributes={
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": queue_arn(q + "-missing")})}),
        "a dead-letter queue that does not exist")
    retry = {"healthyRetryPolicy": {"numRetries": 1, "minDelayTarget": 1, "maxDelayTarget": 1}}
    sub = sns.subscribe(TopicArn=arn, Protocol="http", Endpoint=server.url + "/dead",
                        ReturnSubscriptionArn=True, Attributes={
                            "DeliveryPolicy": json.dumps(retry),
                            "RedrivePolicy": json.dumps({"deadLetterTargetArn": queue_arn(q)})})
    sub = sub["SubscriptionArn"]
    got = sns.get_subscription_attributes(SubscriptionArn=sub)["Attributes"]
    assert json.loads(got["RedrivePolicy"]) == {"deadLetterTargetArn": queue_arn(q)}, got
    assert got["PendingConfirmation"] == "true", got
    _, _, body, _ = server.wait("the confirmation", kind_is("/dead", "SubscriptionConfirmation"))[0]
    sns.confirm_subscription(TopicArn=arn, Token=json.loads(body)["Token"])
    message_id = sns.publish(TopicArn=arn, Message="undeliverable")["MessageId"]
    server.wait("two attempts", kind_is("/dead", "Notification"), 2)
    dead = receive_within(sqs, url, 1, "the dead letter")[0]
    check_envelope(json.loads(dead["Body"]), arn, message_id, "undeliverable")
    extra = receive_some(sqs, url, 10, wait_s=1)
    assert not extra, f"dead-lettered twice: {extra}"
    sns.delete_topic(TopicArn=arn)
    sqs.delete_queue(QueueUrl=url)
    server.server.shutdown()


def https_subscription(endpoint, cert, key, untrusted_cert, untrusted_key):
    """An https endpoint whose certificate chains to a CA the broker trusts
    (`--sns-https-ca`) gets its confirmation and notifications over TLS; one signed by
    another CA gets nothing, and its subscription stays pending."""
    sns = sns_client(endpoint)
    server, stranger = Endpoint(tls=(cert, key)), Endpoint(tls=(untrusted_cert, untrusted_key))
    arn = sns.create_topic(Name=name("https", "t"))["TopicArn"]
    expect_error(sns, "InvalidParameter", lambda: sns.subscribe(
        TopicArn=arn, Protocol="https", Endpoint=server.url.replace("https:", "http:") + "/ok"),
        "an https subscription to an http:// URL")
    expect_error(sns, "InvalidParameter", lambda: sns.subscribe(
        TopicArn=arn, Protocol="http", Endpoint=server.url + "/ok"),
        "an http subscription to an https:// URL")
    pending = sns.subscribe(TopicArn=arn, Protocol="https", Endpoint=server.url + "/ok")
    assert pending["SubscriptionArn"] == "pending confirmation", pending
    retry = {"healthyRetryPolicy": {"numRetries": 2, "minDelayTarget": 1, "maxDelayTarget": 1}}
    sns.subscribe(TopicArn=arn, Protocol="https", Endpoint=stranger.url + "/ok",
                  Attributes={"DeliveryPolicy": json.dumps(retry)})
    _, headers, body, _ = server.wait("the SubscriptionConfirmation over TLS",
                                      kind_is("/ok", "SubscriptionConfirmation"))[0]
    confirmation = json.loads(body)
    assert confirmation["TopicArn"] == arn and headers["x-amz-sns-topic-arn"] == arn, body
    sub = sns.confirm_subscription(TopicArn=arn, Token=confirmation["Token"])["SubscriptionArn"]
    got = sns.get_subscription_attributes(SubscriptionArn=sub)["Attributes"]
    assert got["Protocol"] == "https" and got["PendingConfirmation"] == "false", got
    message_id = sns.publish(TopicArn=arn, Message="hello https")["MessageId"]
    _, headers, body, _ = server.wait("the Notification over TLS", kind_is("/ok", "Notification"))[0]
    check_envelope(json.loads(body), arn, message_id, "hello https")
    assert headers["x-amz-sns-subscription-arn"] == sub, headers
    # The untrusted endpoint's confirmation had its first try and two retries 1 s apart
    # (the trusted one's arrived meanwhile): each handshake was refused by the broker.
    time.sleep(3)
    with stranger.cond:
        assert not stranger.posts, f"a certificate of an unknown CA was accepted: {stranger.posts}"
    listed = sns.list_subscriptions_by_topic(TopicArn=arn)["Subscriptions"]
    assert sorted((s["Endpoint"], s["SubscriptionArn"] == "PendingConfirmation") for s in listed) \
        == sorted([(server.url + "/ok", False), (stranger.url + "/ok", True)]), listed
    sns.delete_topic(TopicArn=arn)
    server.server.shutdown()
    stranger.server.shutdown()


# 4. A Kafka topic as a target ------------------------------------------------------------

def kafka_subscription(endpoint, kafka_topic, kafka_addr):
    """A subscription whose endpoint is an engine topic (created by the test), read back
    with confluent-kafka."""
    from confluent_kafka import Consumer, TopicPartition
    sns = sns_client(endpoint)
    arn = sns.create_topic(Name=name("kafka", "t"))["TopicArn"]
    expect_error(sns, "InvalidParameter", lambda: sns.subscribe(
        TopicArn=arn, Protocol="kafka", Endpoint=kafka_topic + "-missing"),
        "a Kafka topic that does not exist")
    sub = sns.subscribe(TopicArn=arn, Protocol="kafka", Endpoint=kafka_topic)["SubscriptionArn"]
    assert sub.startswith(arn + ":"), sub
    message_id = sns.publish(TopicArn=arn, Message="to kafka")["MessageId"]
    consumer = Consumer({"bootstrap.servers": kafka_addr, "group.id": f"sns-{RUN}",
                         "enable.auto.commit": False})
    consumer.assign([TopicPartition(kafka_topic, 0, 0)])
    deadline = time.monotonic() + WAIT_S
    got = None
    while got is None:
        assert time.monotonic() < deadline, "nothing in the Kafka topic"
        m = consumer.poll(0.5)
        if m is not None and m.error() is None:
            got = m
    consumer.close()
    check_envelope(json.loads(got.value()), arn, message_id, "to kafka")
    sns.delete_topic(TopicArn=arn)


# 5. Durability (with tests/sns_boto3.rs, which kills and restarts the broker) --------------

def durable_setup(endpoint, prefix, n):
    """A topic `prefix` with three queues subscribed (the second raw); prints `published`
    as soon as the last of `n` messages is acknowledged (in batches of 10)."""
    sns, sqs = sns_client(endpoint), sqs_client(endpoint)
    arn = sns.create_topic(Name=prefix)["TopicArn"]
    for i, what in enumerate("abc"):
        q = f"{prefix}-{what}"
        make_queue(sqs, q)
        subscribe_queue(sns, arn, q, **({"RawMessageDelivery": "true"} if i == 1 else {}))
    n = int(n)
    for start in range(0, n, 10):
        got = sns.publish_batch(TopicArn=arn, PublishBatchRequestEntries=[
            {"Id": f"m{i}", "Message": f"m{i}"} for i in range(start, min(n, start + 10))])
        assert not got.get("Failed"), got
    print("published", flush=True)


def durable_check(endpoint, prefix, n):
    """After kill -9 and restart: each queue holds each message exactly once."""
    sqs = sqs_client(endpoint)
    n = int(n)
    for i, what in enumerate("abc"):
        url = sqs.get_queue_url(QueueName=f"{prefix}-{what}")["QueueUrl"]
        got = receive_within(sqs, url, n, f"queue {what} after the restart", timeout=3 * WAIT_S)
        bodies = [m["Body"] if i == 1 else envelope(m)["Message"] for m in got]
        assert sorted(bodies) == sorted(f"m{k}" for k in range(n)), bodies
        extra = receive_some(sqs, url, 10, wait_s=1)
        assert not extra, f"queue {what}: a message delivered twice: {extra}"


# 6. Errors --------------------------------------------------------------------------------

def errors(endpoint):
    sns, sqs = sns_client(endpoint), sqs_client(endpoint)
    missing = topic_arn(name("errors", "missing"))
    expect_error(sns, "NotFound", lambda: sns.publish(TopicArn=missing, Message="x"),
                 "Publish to a missing topic")
    expect_error(sns, "NotFound", lambda: sns.get_topic_attributes(TopicArn=missing),
                 "GetTopicAttributes of a missing topic")
    expect_error(sns, "NotFound", lambda: sns.subscribe(
        TopicArn=missing, Protocol="sqs", Endpoint=queue_arn("q")), "Subscribe to a missing topic")
    for bad in ("bad name", "x" * 257, "dot.ted"):
        expect_error(sns, "InvalidParameter", lambda: sns.create_topic(Name=bad),
                     f"CreateTopic {bad[:20]!r}")
    expect_error(sns, "InvalidParameter", lambda: sns.create_topic(
        Name=name("errors", "std"), Attributes={"FifoTopic": "true"}),
        "FifoTopic without the .fifo name")
    expect_error(sns, "InvalidParameter", lambda: sns.get_topic_attributes(TopicArn="nonsense"),
                 "a TopicArn that is no ARN")
    arn = sns.create_topic(Name=name("errors", "t"))["TopicArn"]
    q = name("errors", "q")
    url = make_queue(sqs, q)
    expect_error(sns, "InvalidParameter", lambda: sns.subscribe(
        TopicArn=arn, Protocol="email", Endpoint="a@example.com"), "protocol email")
    expect_error(sns, "InvalidParameter", lambda: sns.subscribe(
        TopicArn=arn, Protocol="sqs", Endpoint=f"arn:aws:sqs:{REGION}:999999999999:{q}"),
        "a queue of another account")
    expect_error(sns, "InvalidParameter", lambda: sns.subscribe(
        TopicArn=arn, Protocol="sqs", Endpoint=queue_arn(q + "-missing")), "a missing queue")
    expect_error(sns, "InvalidParameter", lambda: sns.subscribe(
        TopicArn=arn, Protocol="http", Endpoint="ftp://example.com/"), "an http endpoint no URL")
    expect_error(sns, "InvalidParameter", lambda: sns.subscribe(
        TopicArn=arn, Protocol="https", Endpoint="https://"), "an https endpoint with no host")
    expect_error(sns, "InvalidParameter", lambda: sns.publish(TopicArn=arn, Message=""),
                 "an empty message")
    expect_error(sns, "InvalidParameter", lambda: sns.publish(
        TopicArn=arn, Message="x", Subject="s" * 101), "a Subject of 101 characters")
    expect_error(sns, "InvalidParameter", lambda: sns.publish(
        TopicArn=arn, Message="x" * (256 * 1024 + 1)), "a message over 256 KiB")
    expect_error(sns, ("InvalidParameter", "ParameterValueInvalid"), lambda: sns.publish(
        TopicArn=arn, Message="x", MessageAttributes={
            "k": {"DataType": "Bogus", "StringValue": "v"}}), "an attribute type SNS lacks")
    expect_error(sns, ("InvalidParameter", "ParameterValueInvalid"), lambda: sns.publish(
        TopicArn=arn, Message="x", MessageAttributes={
            "n": {"DataType": "Number", "StringValue": "not a number"}}), "a bad Number")
    expect_error(sns, "InvalidParameter", lambda: sns.set_topic_attributes(
        TopicArn=arn, AttributeName="Bogus", AttributeValue="x"), "a topic attribute SNS lacks")
    expect_error(sns, "NotFound", lambda: sns.get_subscription_attributes(
        SubscriptionArn=arn + ":" + str(uuid.uuid4())), "a subscription that never was")
    expect_error(sns, "ResourceNotFound", lambda: sns.list_tags_for_resource(
        ResourceArn=missing), "the tags of a missing topic")
    sns.tag_resource(ResourceArn=arn, Tags=[{"Key": f"k{i}", "Value": "v"} for i in range(50)])
    expect_error(sns, "TagLimitExceeded", lambda: sns.tag_resource(
        ResourceArn=arn, Tags=[{"Key": "one-more", "Value": "v"}]), "a 51st tag")
    assert len(sns.list_tags_for_resource(ResourceArn=arn)["Tags"]) == 50
    sns.delete_topic(TopicArn=arn)
    sqs.delete_queue(QueueUrl=url)


def region_and_account(endpoint):
    """Topic ARNs carry --sqs-region and --sqs-account-id (run with --region, --account)."""
    sns, sqs = sns_client(endpoint), sqs_client(endpoint)
    arn = sns.create_topic(Name=name("region", "t"))["TopicArn"]
    assert arn == topic_arn(name("region", "t")), arn
    q = name("region", "q")
    url = make_queue(sqs, q)
    sub = subscribe_queue(sns, arn, q)
    assert sub.startswith(f"arn:aws:sns:{REGION}:{ACCOUNT}:"), sub
    other = arn.replace(f":{ACCOUNT}:", ":999999999999:")
    expect_error(sns, ("NotFound", "InvalidParameter"),
                 lambda: sns.publish(TopicArn=other, Message="x"), "another account's topic")
    sns.delete_topic(TopicArn=arn)
    sqs.delete_queue(QueueUrl=url)


# 7. Signatures ----------------------------------------------------------------------------

VALIDATOR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "validate.js")


def validate(messages, node_modules, ca):
    """What npm sns-validator says of each message: `valid` or `invalid: REASON`. It fetches
    each SigningCertURL over https, trusting the test CA; the host pattern admits the
    broker's address (SNS's default admits only sns.REGION.amazonaws.com)."""
    env = dict(os.environ, NODE_PATH=node_modules, NODE_EXTRA_CA_CERTS=ca)
    run = subprocess.run(["node", VALIDATOR, r"^127\.0\.0\.1:\d+$"],
                         input=json.dumps(messages), capture_output=True, text=True,
                         env=env, timeout=WAIT_S * 3)
    assert run.returncode == 0, f"node {VALIDATOR} exited {run.returncode}: {run.stderr}"
    return run.stdout.splitlines()


def signed_envelopes(endpoint, node_modules, ca):
    """Every envelope carries the broker's signature: a SubscriptionConfirmation, a
    Notification and an UnsubscribeConfirmation at an HTTP endpoint, and the Notification a
    queue holds, verify with AWS's
    validator against the certificate it fetches from SigningCertURL, for SignatureVersion 1
    (the default) and 2 (set at CreateTopic); a tampered copy does not verify. Prints the
    certificate's SHA-256 (`certificate HEX`) for a comparison across a restart."""
    sns, sqs = sns_client(endpoint), sqs_client(endpoint)
    server = Endpoint()
    certificates = set()
    for version in ("1", "2"):
        attributes = {"SignatureVersion": "2"} if version == "2" else {}
        arn = sns.create_topic(Name=name("signed", "v" + version),
                               Attributes=attributes)["TopicArn"]
        got = sns.get_topic_attributes(TopicArn=arn)["Attributes"]
        assert got["SignatureVersion"] == version, got
        path = "/signed-v" + version
        sns.subscribe(TopicArn=arn, Protocol="http", Endpoint=server.url + path)
        _, _, body, _ = server.wait("the confirmation", kind_is(path, "SubscriptionConfirmation"))[0]
        confirmation = json.loads(body)
        http_sub = sns.confirm_subscription(TopicArn=arn,
                                            Token=confirmation["Token"])["SubscriptionArn"]
        q = name("signed", "q" + version)
        url = make_queue(sqs, q)
        subscribe_queue(sns, arn, q)
        message_id = sns.publish(TopicArn=arn, Message="signed \u00e9\n\"line\"",
                                 Subject="s")["MessageId"]
        _, _, body, _ = server.wait("the Notification", kind_is(path, "Notification"))[0]
        note = json.loads(body)
        check_envelope(note, arn, message_id, "signed \u00e9\n\"line\"", version)
        queued = envelope(receive_within(sqs, url, 1, "the queued Notification")[0])
        check_envelope(queued, arn, message_id, "signed \u00e9\n\"line\"", version)
        sns.unsubscribe(SubscriptionArn=http_sub)
        _, _, body, _ = server.wait("the UnsubscribeConfirmation",
                                    kind_is(path, "UnsubscribeConfirmation"))[0]
        notice = json.loads(body)
        for doc in (confirmation, note, queued, notice):
            assert doc["SignatureVersion"] == version and doc["Signature"], doc
            assert doc["SigningCertURL"] == note["SigningCertURL"], doc
        tampered = [dict(note, Message="forged"), dict(confirmation, Token="00" * 32),
                    dict(note, SignatureVersion="1" if version == "2" else "2"),
                    dict(notice, Token="00" * 32)]
        verdicts = validate([confirmation, note, queued, notice] + tampered, node_modules, ca)
        invalid = "invalid: The message signature is invalid."
        assert verdicts == ["valid"] * 4 + [invalid] * 4, (version, verdicts)
        context = ssl.create_default_context(cafile=ca)
        with urllib.request.urlopen(note["SigningCertURL"], timeout=WAIT_S,
                                    context=context) as r:
            pem = r.read()
        assert pem.startswith(b"-----BEGIN CERTIFICATE-----"), pem
        certificates.add(hashlib.sha256(pem).hexdigest())
        sns.delete_topic(TopicArn=arn)
        sqs.delete_queue(QueueUrl=url)
    assert len(certificates) == 1, certificates
    expect_error(sns, "InvalidParameter", lambda: sns.set_topic_attributes(
        TopicArn=sns.create_topic(Name=name("signed", "bad"))["TopicArn"],
        AttributeName="SignatureVersion", AttributeValue="3"), "SignatureVersion 3")
    server.server.shutdown()
    print("certificate", certificates.pop(), flush=True)


def signing_scope(endpoint, scope, node_modules=None, ca=None):
    """`--sns-signing http`: the SubscriptionConfirmation and Notification at an HTTP
    endpoint are signed (and verify with AWS's validator), the Notification a queue holds
    has no SignatureVersion, Signature or SigningCertURL; `off`: neither is signed."""
    sns, sqs = sns_client(endpoint), sqs_client(endpoint)
    server = Endpoint()
    signature_fields = ("SignatureVersion", "Signature", "SigningCertURL")
    arn = sns.create_topic(Name=name("scope", scope))["TopicArn"]
    path = "/scope-" + scope
    sns.subscribe(TopicArn=arn, Protocol="http", Endpoint=server.url + path)
    _, _, body, _ = server.wait("the confirmation", kind_is(path, "SubscriptionConfirmation"))[0]
    confirmation = json.loads(body)
    sns.confirm_subscription(TopicArn=arn, Token=confirmation["Token"])
    q = name("scope", "q" + scope)
    url = make_queue(sqs, q)
    subscribe_queue(sns, arn, q)
    message_id = sns.publish(TopicArn=arn, Message="scoped", Subject="s")["MessageId"]
    _, _, body, _ = server.wait("the Notification", kind_is(path, "Notification"))[0]
    note = json.loads(body)
    queued = envelope(receive_within(sqs, url, 1, "the queued Notification")[0])
    for doc in (note, queued):
        assert doc["MessageId"] == message_id and doc["Message"] == "scoped", doc
        assert "UnsubscribeURL" in doc, doc
    for field in signature_fields:
        assert field not in queued, ("queue", field, queued)
    if scope == "http":
        for doc in (confirmation, note):
            assert doc["SignatureVersion"] == "1" and doc["Signature"], doc
        assert validate([confirmation, note], node_modules, ca) == ["valid"] * 2
    else:
        assert scope == "off", scope
        for doc in (confirmation, note):
            for field in signature_fields:
                assert field not in doc, (field, doc)
    sns.delete_topic(TopicArn=arn)
    sqs.delete_queue(QueueUrl=url)
    server.server.shutdown()


def signature_version_attribute(endpoint):
    """SignatureVersion is 1 unless set; SetTopicAttributes sets it (1 or 2) and an empty
    value puts back the default."""
    sns = sns_client(endpoint)
    arn = sns.create_topic(Name=name("sigversion", "t"))["TopicArn"]
    get = lambda: sns.get_topic_attributes(TopicArn=arn)["Attributes"]["SignatureVersion"]
    assert get() == "1"
    sns.set_topic_attributes(TopicArn=arn, AttributeName="SignatureVersion", AttributeValue="2")
    assert get() == "2"
    for bad in ("3", "SHA256"):
        expect_error(sns, "InvalidParameter", lambda: sns.set_topic_attributes(
            TopicArn=arn, AttributeName="SignatureVersion", AttributeValue=bad), bad)
    assert get() == "2"
    sns.set_topic_attributes(TopicArn=arn, AttributeName="SignatureVersion", AttributeValue="")
    assert get() == "1"
    sns.delete_topic(TopicArn=arn)


CASES = {f.__name__: f for f in [
    topic_lifecycle, list_topics_in_pages, order_events_fan_out, filter_policies,
    publish_batch_answers_each_entry, fifo_topic_to_fifo_queue, unsubscribe_stops_deliveries,
    list_subscriptions_in_pages, subscription_attributes,
    http_subscription_with_confirmation_and_retries, http_failures_go_to_the_dead_letter_queue,
    https_subscription, message_structure_json_sends_each_protocol_its_own,
    authenticate_on_unsubscribe_refuses_the_unsigned_link,
    unsubscribe_confirmation_restores_the_subscription, kafka_subscription, durable_setup,
    durable_check, errors, region_and_account, signed_envelopes, signature_version_attribute,
    signing_scope]}


def main():
    if len(ARGV) < 3 or ARGV[2] not in CASES:
        print(__doc__ + "\ncases: " + " ".join(CASES), file=sys.stderr)
        sys.exit(2)
    CASES[ARGV[2]](ARGV[1], *ARGV[3:])
    print(f"ok {ARGV[2]}", flush=True)


if __name__ == "__main__":
    main()
