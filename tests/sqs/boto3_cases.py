#!/usr/bin/env python3
"""Amazon SQS programs written with boto3, run unchanged (but for endpoint_url) against a broker.

Usage: boto3_cases.py ENDPOINT CASE [ARGS...] [--query] [--region REGION] [--account ACCOUNT]

ENDPOINT is the broker's HTTP address as a URL (`http://127.0.0.1:8080`). One function per
case (see CASES at the bottom). A case prints `ok CASE` and exits 0 when every check held; a
failed check raises AssertionError and exits 1; exit 3 means boto3 is missing.

Two wire protocols: by default the boto3 found on sys.path is used (1.43.11 from .ci/run,
which speaks SQS's JSON 1.0 protocol); `--query` puts $PEREGRINE_BOTO3_QUERY first on
sys.path (boto3/botocore 1.34.89, the last release that speaks the query protocol: forms
in, XML out). Every case checks `client.meta.service_model.protocol`, so a run proves
which wire format it used. `--region`/`--account` name what the broker was started with
(`--sqs-region`, `--sqs-account-id`; defaults us-east-1 and 000000000000).

Every wait has a deadline, names carry a per-run token, and the script carries its own
MD5OfMessageAttributes (`md5_of_attributes`, checked by the `md5_vectors` case against the
four vectors AWS's SDKs test with). tests/sqs_boto3.rs runs these against Peregrine.
"""

import hashlib
import json
import os
import struct
import sys
import threading
import time
import uuid

QUERY = "--query" in sys.argv


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
for _i, _a in enumerate(sys.argv):
    if _skip:
        _skip = False
        continue
    if _a in ("--region", "--account"):
        _skip = True
        continue
    if _a != "--query":
        ARGV.append(_a)

if QUERY:
    _query_path = os.environ.get("PEREGRINE_BOTO3_QUERY")
    if not _query_path or not os.path.isdir(_query_path):
        print("--query needs PEREGRINE_BOTO3_QUERY: a folder holding boto3==1.34.89 and "
              "botocore==1.34.89 (.ci/run installs them into target/ci-sqs-query)",
              file=sys.stderr)
        sys.exit(3)
    sys.path.insert(0, _query_path)

try:
    import boto3
    from botocore.config import Config
    from botocore.exceptions import ClientError
except ImportError:
    print("boto3 is not installed: run .ci/run (it installs boto3==1.43.11 into "
          "target/ci-venv and boto3==1.34.89 into target/ci-sqs-query) or "
          "`pip install boto3==1.43.11`", file=sys.stderr)
    sys.exit(3)

# How long any one wait may take before the case fails.
WAIT_S = 10.0
# Polling step for waits that have no event to block on.
POLL_S = 0.05
# Names carry a per-run token, so reruns against one broker never meet old queues.
RUN = uuid.uuid4().hex[:8]
PROTOCOL = "query" if QUERY else "json"


def name(case, what):
    return f"{case[:12]}-{RUN}-{what}"


def client(endpoint):
    c = boto3.client(
        "sqs", endpoint_url=endpoint, region_name=REGION,
        aws_access_key_id="test", aws_secret_access_key="test",
        config=Config(retries={"max_attempts": 1}, read_timeout=30, connect_timeout=10))
    got = c.meta.service_model.protocol
    assert got == PROTOCOL, f"boto3 {boto3.__version__} speaks {got}, wanted {PROTOCOL}"
    return c


# Error codes as botocore reports them (`Error.Code`): the query code, which JSON 1.0
# answers carry in x-amzn-query-error and the query protocol in <Code>.
QUERY_CODES = {
    "QueueDoesNotExist": "AWS.SimpleQueueService.NonExistentQueue",
    "QueueNameExists": "QueueAlreadyExists",
    "MessageNotInflight": "AWS.SimpleQueueService.MessageNotInflight",
    "EmptyBatchRequest": "AWS.SimpleQueueService.EmptyBatchRequest",
    "TooManyEntriesInBatchRequest": "AWS.SimpleQueueService.TooManyEntriesInBatchRequest",
    "BatchEntryIdsNotDistinct": "AWS.SimpleQueueService.BatchEntryIdsNotDistinct",
    "InvalidBatchEntryId": "AWS.SimpleQueueService.InvalidBatchEntryId",
    "BatchRequestTooLong": "AWS.SimpleQueueService.BatchRequestTooLong",
    "UnsupportedOperation": "AWS.SimpleQueueService.UnsupportedOperation",
}
# Shapes that are modeled exceptions in both botocore releases (client.exceptions.X).
MODELED = {"QueueDoesNotExist", "QueueNameExists", "MessageNotInflight", "EmptyBatchRequest",
           "TooManyEntriesInBatchRequest", "BatchEntryIdsNotDistinct", "InvalidBatchEntryId",
           "BatchRequestTooLong", "UnsupportedOperation", "ReceiptHandleIsInvalid",
           "InvalidAttributeName", "InvalidMessageContents", "OverLimit"}


def expect_error(c, shape, action, what):
    """action() must fail with the SQS error `shape` (e.g. QueueDoesNotExist): botocore's
    Error.Code is its query code, and where botocore models it, the exception class."""
    code = QUERY_CODES.get(shape, shape)
    try:
        action()
    except ClientError as e:
        got = e.response["Error"]["Code"]
        assert got == code, f"{what}: error {got} ({e}), wanted {code}"
        if shape in MODELED and hasattr(c.exceptions, shape):
            cls = getattr(c.exceptions, shape)
            assert isinstance(e, cls), f"{what}: {type(e).__name__}, wanted {shape}"
        return e
    raise AssertionError(f"{what}: no error, wanted {shape}")


def entry_code_is(code, shape):
    """A batch entry's Code: the shape name (as SQS sends it) or its query code."""
    return code in (shape, QUERY_CODES.get(shape, shape))


def md5_hex(data):
    return hashlib.md5(data).hexdigest()


def md5_of_attributes(attrs):
    """MD5OfMessageAttributes as AWS's SDKs compute it: sorted by name; per attribute the
    length-prefixed (u32 BE) name, DataType, a transport byte (1 string, 2 binary) and the
    length-prefixed value."""
    if not attrs:
        return None
    out = b""
    for key in sorted(attrs, key=lambda k: k.encode()):
        a = attrs[key]
        for part in (key.encode(), a["DataType"].encode()):
            out += struct.pack(">I", len(part)) + part
        if "StringValue" in a:
            value = a["StringValue"].encode()
            out += b"\x01"
        else:
            value = a["BinaryValue"]
            out += b"\x02"
        out += struct.pack(">I", len(value)) + value
    return md5_hex(out)


def queue_url(endpoint, q):
    host = endpoint.split("://", 1)[1].rstrip("/")
    return f"http://{host}/{ACCOUNT}/{q}"


def arn(q):
    return f"arn:aws:sqs:{REGION}:{ACCOUNT}:{q}"


def create(c, q, **attrs):
    attributes = {k: str(v) for k, v in attrs.items()}
    return c.create_queue(QueueName=q, Attributes=attributes)["QueueUrl"]


def counts(c, url):
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
             "ApproximateNumberOfMessagesDelayed"]
    got = c.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
    return tuple(int(got[n]) for n in names)


def wait_counts(c, url, want, what):
    deadline = time.monotonic() + WAIT_S
    while True:
        got = counts(c, url)
        if got == want:
            return
        assert time.monotonic() < deadline, f"{what}: counts {got}, wanted {want}"
        time.sleep(POLL_S)


def receive(c, url, **kw):
    kw.setdefault("WaitTimeSeconds", 0)
    return c.receive_message(QueueUrl=url, **kw).get("Messages", [])


def receive_within(c, url, want, what, timeout=WAIT_S, **kw):
    """Receives until `want` messages came (long polls of 1 s), within `timeout`."""
    got = []
    deadline = time.monotonic() + timeout
    while len(got) < want:
        assert time.monotonic() < deadline, f"{what}: {len(got)} of {want} within {timeout} s"
        kw["MaxNumberOfMessages"] = min(10, want - len(got))
        got += receive(c, url, WaitTimeSeconds=1, **kw)
    assert len(got) == want, f"{what}: {len(got)} messages, wanted {want}"
    return got


# 0. The script's own logic ----------------------------------------------------------------

def md5_vectors(_endpoint):
    """md5_of_attributes against the vectors AWS's SDKs test with (no broker needed)."""
    s = {"attribName1": {"DataType": "String", "StringValue": "attribValue 1"}}
    n = {"customNumberTypeAttrib": {"DataType": "Number.float",
                                    "StringValue": "4563442423554324324264524243.32543234"}}
    b = {"binaryAttribute": {"DataType": "Binary", "BinaryValue": b"Hello binary world!"}}
    assert md5_of_attributes(s) == "19e27d4e946b072f3f58da80d94fd778"
    assert md5_of_attributes(n) == "9fe1b90bbd9965bdf77bac517c7d2495"
    assert md5_of_attributes(b) == "31a92b15d92f8db860eda32aceb656c3"
    assert md5_of_attributes({**s, **n, **b}) == "c932db14a896c663f83c260297d594ff"
    assert md5_of_attributes({}) is None


# 1. Queues --------------------------------------------------------------------------------

def queue_lifecycle(endpoint):
    c = client(endpoint)
    q = name("lifecycle", "q")
    url = create(c, q, VisibilityTimeout=30)
    assert url == queue_url(endpoint, q), f"CreateQueue answered {url}"
    assert c.get_queue_url(QueueName=q)["QueueUrl"] == url
    assert create(c, q, VisibilityTimeout=30) == url, "CreateQueue again, same attributes"
    expect_error(c, "QueueNameExists", lambda: create(c, q, VisibilityTimeout=31),
                 "CreateQueue again with another VisibilityTimeout")
    c.delete_queue(QueueUrl=url)
    expect_error(c, "QueueDoesNotExist", lambda: c.get_queue_url(QueueName=q),
                 "GetQueueUrl after DeleteQueue")
    expect_error(c, "QueueDoesNotExist", lambda: c.delete_queue(QueueUrl=url),
                 "DeleteQueue twice")
    # A deleted name can be created again at once (no QueueDeletedRecently).
    assert create(c, q) == url
    c.delete_queue(QueueUrl=url)


def list_queues_by_prefix_and_page(endpoint):
    c = client(endpoint)
    prefix = f"lq{RUN}p"
    ours = [f"{prefix}-{i}" for i in (3, 0, 4, 1, 2)]
    others = [f"lq{RUN}o-{i}" for i in range(2)]
    for q in ours + others:
        create(c, q)
    want = [queue_url(endpoint, q) for q in sorted(ours)]
    got = c.list_queues(QueueNamePrefix=prefix).get("QueueUrls", [])
    assert got == want, f"prefix {prefix}: {got}"
    assert "NextToken" not in c.list_queues(QueueNamePrefix=prefix)
    pages, token = [], None
    for _ in range(5):
        kw = {"QueueNamePrefix": prefix, "MaxResults": 2}
        if token:
            kw["NextToken"] = token
        page = c.list_queues(**kw)
        pages.append((page.get("QueueUrls", []), "NextToken" in page))
        token = page.get("NextToken")
        if not token:
            break
    assert [len(p) for p, _ in pages] == [2, 2, 1], f"pages {pages}"
    assert [t for _, t in pages] == [True, True, False], f"tokens {pages}"
    assert sum((p for p, _ in pages), []) == want
    paged = []
    for page in c.get_paginator("list_queues").paginate(
            QueueNamePrefix=prefix, PaginationConfig={"PageSize": 2}):
        paged += page.get("QueueUrls", [])
    assert paged == want, f"paginator {paged}"
    nothing = c.list_queues(QueueNamePrefix=f"lq{RUN}none").get("QueueUrls", [])
    assert nothing == [], nothing
    expect_error(c, "InvalidParameterValue",
                 lambda: c.list_queues(QueueNamePrefix=prefix, MaxResults=0), "MaxResults=0")
    for q in ours + others:
        c.delete_queue(QueueUrl=queue_url(endpoint, q))


def queue_attributes_round_trip(endpoint):
    c = client(endpoint)
    q = name("attrs", "q")
    before = int(time.time())
    url = create(c, q, VisibilityTimeout=45, DelaySeconds=2, MessageRetentionPeriod=3600,
                 MaximumMessageSize=2048, ReceiveMessageWaitTimeSeconds=3)
    after = int(time.time()) + 1
    got = c.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    want = {"VisibilityTimeout": "45", "DelaySeconds": "2", "MessageRetentionPeriod": "3600",
            "MaximumMessageSize": "2048", "ReceiveMessageWaitTimeSeconds": "3",
            "QueueArn": arn(q), "ApproximateNumberOfMessages": "0",
            "ApproximateNumberOfMessagesNotVisible": "0",
            "ApproximateNumberOfMessagesDelayed": "0"}
    for k, v in want.items():
        assert got.get(k) == v, f"{k}: {got.get(k)!r}, wanted {v!r} (all: {got})"
    created = int(got["CreatedTimestamp"])
    assert before <= created <= after, f"CreatedTimestamp {created} not in [{before}, {after}]"
    assert before <= int(got["LastModifiedTimestamp"]) <= after, got
    assert "RedrivePolicy" not in got, got
    c.set_queue_attributes(QueueUrl=url, Attributes={"VisibilityTimeout": "5"})
    got = c.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert got["VisibilityTimeout"] == "5", got
    assert got["DelaySeconds"] == "2", f"SetQueueAttributes changed another attribute: {got}"
    assert int(got["LastModifiedTimestamp"]) >= created, got
    assert int(got["CreatedTimestamp"]) == created, got
    one = c.get_queue_attributes(QueueUrl=url, AttributeNames=["DelaySeconds"])["Attributes"]
    assert one == {"DelaySeconds": "2"}, one
    for attr, value in [("VisibilityTimeout", "43201"), ("DelaySeconds", "901"),
                        ("MaximumMessageSize", "1023"), ("VisibilityTimeout", "soon")]:
        expect_error(c, "InvalidAttributeValue", lambda: c.set_queue_attributes(
            QueueUrl=url, Attributes={attr: value}), f"{attr}={value}")
        expect_error(c, "InvalidAttributeValue", lambda: create(
            c, name("attrs", "bad"), **{attr: value}), f"CreateQueue {attr}={value}")
    expect_error(c, "InvalidAttributeName", lambda: c.set_queue_attributes(
        QueueUrl=url, Attributes={"Bogus": "1"}), "SetQueueAttributes Bogus")
    expect_error(c, "InvalidAttributeName", lambda: c.get_queue_attributes(
        QueueUrl=url, AttributeNames=["Bogus"]), "GetQueueAttributes Bogus")
    # Policies are not served: refused, never faked.
    expect_error(c, "InvalidAttributeName", lambda: create(
        c, name("attrs", "policy"), Policy="{}"), "CreateQueue Policy")
    got = c.get_queue_attributes(QueueUrl=url, AttributeNames=["VisibilityTimeout"])
    assert got["Attributes"] == {"VisibilityTimeout": "5"}, "a refused change applied"
    c.delete_queue(QueueUrl=url)


def approximate_counts(endpoint):
    c = client(endpoint)
    url = create(c, name("counts", "q"))
    c.send_message(QueueUrl=url, MessageBody="a")
    c.send_message(QueueUrl=url, MessageBody="b")
    c.send_message(QueueUrl=url, MessageBody="later", DelaySeconds=60)
    wait_counts(c, url, (2, 0, 1), "after 3 sends, one delayed")
    got = receive_within(c, url, 1, "one receive", MaxNumberOfMessages=1)
    assert got[0]["Body"] in ("a", "b"), got
    wait_counts(c, url, (1, 1, 1), "after one receive")
    c.delete_queue(QueueUrl=url)


# 2. Messages ------------------------------------------------------------------------------

BODY = "line one\r\nline two <&>\"' caf\u00e9 \U0001F985 \t end\r"
ATTRS = {
    "attrS": {"DataType": "String", "StringValue": "v <&>\r\n\u00e9"},
    "attrN": {"DataType": "Number", "StringValue": "-42.5e3"},
    "attrC": {"DataType": "String.custom", "StringValue": "custom label"},
    "attrB": {"DataType": "Binary", "BinaryValue": bytes(range(256))},
    "pre.one": {"DataType": "String", "StringValue": "1"},
    "pre.two": {"DataType": "Number.int", "StringValue": "2"},
}


def send_receive_delete_with_attributes_and_md5(endpoint):
    c = client(endpoint)
    url = create(c, name("md5", "q"))
    before = int(time.time() * 1000)
    sent = c.send_message(QueueUrl=url, MessageBody=BODY, MessageAttributes=ATTRS)
    after = int(time.time() * 1000) + 1
    assert sent["MD5OfMessageBody"] == md5_hex(BODY.encode()), sent
    assert sent["MD5OfMessageAttributes"] == md5_of_attributes(ATTRS), sent
    uuid.UUID(sent["MessageId"])
    m = receive_within(c, url, 1, "the message", AttributeNames=["All"],
                       MessageAttributeNames=["All"])[0]
    assert m["MessageId"] == sent["MessageId"], (m, sent)
    assert m["Body"] == BODY, f"body {m['Body']!r}, wanted {BODY!r}"
    assert m["MD5OfBody"] == md5_hex(BODY.encode()), m
    assert m["MessageAttributes"] == ATTRS, f"attributes {m['MessageAttributes']}"
    assert m["MD5OfMessageAttributes"] == md5_of_attributes(ATTRS), m
    a = m["Attributes"]
    assert before <= int(a["SentTimestamp"]) <= after, (a, before, after)
    assert a["ApproximateReceiveCount"] == "1", a
    assert a["SenderId"] == ACCOUNT, a
    # The filter: exact names and `prefix.*`; the MD5 covers what is returned.
    c.change_message_visibility(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"],
                                VisibilityTimeout=0)
    m = receive_within(c, url, 1, "the message again",
                       MessageAttributeNames=["attrS", "pre.*"])[0]
    picked = {k: v for k, v in ATTRS.items() if k == "attrS" or k.startswith("pre.")}
    assert m["MessageAttributes"] == picked, m["MessageAttributes"]
    assert m["MD5OfMessageAttributes"] == md5_of_attributes(picked), m
    assert "Attributes" not in m, f"system attributes nobody asked for: {m}"
    plain = receive(c, url)
    assert plain == [], plain
    c.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    wait_counts(c, url, (0, 0, 0), "after DeleteMessage")
    # A message without attributes has no MD5OfMessageAttributes.
    sent = c.send_message(QueueUrl=url, MessageBody="bare")
    assert "MD5OfMessageAttributes" not in sent, sent
    m = receive_within(c, url, 1, "bare", MessageAttributeNames=["All"])[0]
    assert "MD5OfMessageAttributes" not in m and "MessageAttributes" not in m, m
    c.delete_queue(QueueUrl=url)


def send_batch_answers_each_entry(endpoint):
    c = client(endpoint)
    url = create(c, name("batch", "q"))
    entries = [
        {"Id": "good", "MessageBody": "fine", "MessageAttributes": {
            "k": {"DataType": "String", "StringValue": "v"}}},
        {"Id": "nul", "MessageBody": "bad \x00 body"},
        {"Id": "late", "MessageBody": "too late", "DelaySeconds": 901},
    ]
    got = c.send_message_batch(QueueUrl=url, Entries=entries)
    ok, failed = got.get("Successful", []), got.get("Failed", [])
    assert [s["Id"] for s in ok] == ["good"], got
    assert ok[0]["MD5OfMessageBody"] == md5_hex(b"fine"), ok
    assert ok[0]["MD5OfMessageAttributes"] == md5_of_attributes(entries[0]["MessageAttributes"])
    uuid.UUID(ok[0]["MessageId"])
    by_id = {f["Id"]: f for f in failed}
    assert sorted(by_id) == ["late", "nul"], failed
    assert all(f["SenderFault"] for f in failed), failed
    assert entry_code_is(by_id["nul"]["Code"], "InvalidMessageContents"), failed
    assert entry_code_is(by_id["late"]["Code"], "InvalidParameterValue"), failed
    m = receive_within(c, url, 1, "the good entry", MessageAttributeNames=["All"])[0]
    assert m["MessageId"] == ok[0]["MessageId"] and m["Body"] == "fine", m
    expect_error(c, "BatchEntryIdsNotDistinct", lambda: c.send_message_batch(
        QueueUrl=url, Entries=[{"Id": "a", "MessageBody": "1"}, {"Id": "a", "MessageBody": "2"}]),
        "duplicate Ids")
    expect_error(c, "TooManyEntriesInBatchRequest", lambda: c.send_message_batch(
        QueueUrl=url, Entries=[{"Id": f"e{i}", "MessageBody": "x"} for i in range(11)]),
        "11 entries")
    expect_error(c, "EmptyBatchRequest", lambda: c.send_message_batch(QueueUrl=url, Entries=[]),
                 "no entries")
    expect_error(c, "InvalidBatchEntryId", lambda: c.send_message_batch(
        QueueUrl=url, Entries=[{"Id": "not ok!", "MessageBody": "x"}]), "bad Id")
    wait_counts(c, url, (0, 1, 0), "refused batches sent nothing")
    c.delete_queue(QueueUrl=url)


def receive_ten_and_delete_in_a_batch(endpoint):
    c = client(endpoint)
    url = create(c, name("ten", "q"))
    bodies = [f"m{i}" for i in range(10)]
    sent = c.send_message_batch(QueueUrl=url, Entries=[
        {"Id": f"e{i}", "MessageBody": b} for i, b in enumerate(bodies)])
    assert len(sent.get("Successful", [])) == 10 and not sent.get("Failed"), sent
    got = receive_within(c, url, 10, "ten messages", timeout=5)
    assert sorted(m["Body"] for m in got) == sorted(bodies), got
    assert len({m["MessageId"] for m in got}) == 10
    entries = [{"Id": f"d{i}", "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(got)]
    # A batch holds at most 10 entries: 11 are refused whole, nothing deleted.
    expect_error(c, "TooManyEntriesInBatchRequest", lambda: c.delete_message_batch(
        QueueUrl=url, Entries=entries + [{"Id": "bogus", "ReceiptHandle": "bogus"}]),
        "DeleteMessageBatch of 11")
    wait_counts(c, url, (0, 10, 0), "a refused batch deleted nothing")
    done = c.delete_message_batch(
        QueueUrl=url, Entries=entries[:9] + [{"Id": "bogus", "ReceiptHandle": "bogus"}])
    assert sorted(s["Id"] for s in done.get("Successful", [])) == sorted(
        f"d{i}" for i in range(9)), done
    failed = done.get("Failed", [])
    assert [f["Id"] for f in failed] == ["bogus"], done
    assert failed[0]["SenderFault"] and entry_code_is(failed[0]["Code"], "ReceiptHandleIsInvalid")
    done = c.delete_message_batch(QueueUrl=url, Entries=entries[9:])
    assert [s["Id"] for s in done.get("Successful", [])] == ["d9"] and not done.get("Failed"), done
    wait_counts(c, url, (0, 0, 0), "after deleting all ten")
    expect_error(c, "InvalidParameterValue", lambda: receive(c, url, MaxNumberOfMessages=11),
                 "MaxNumberOfMessages=11")
    expect_error(c, "InvalidParameterValue", lambda: receive(c, url, MaxNumberOfMessages=0),
                 "MaxNumberOfMessages=0")
    c.delete_queue(QueueUrl=url)


def long_poll_answers_when_a_message_arrives(endpoint):
    c = client(endpoint)
    url = create(c, name("longpoll", "q"))

    def later():
        time.sleep(1.0)
        client(endpoint).send_message(QueueUrl=url, MessageBody="woke")

    sender = threading.Thread(target=later)
    start = time.monotonic()
    sender.start()
    got = receive(c, url, WaitTimeSeconds=10)
    took = time.monotonic() - start
    sender.join(timeout=WAIT_S)
    assert [m["Body"] for m in got] == ["woke"], got
    assert 0.9 <= took < 5, f"long poll answered after {took:.2f} s"
    start = time.monotonic()
    assert receive(c, url, WaitTimeSeconds=2) == []
    took = time.monotonic() - start
    assert 1.8 <= took < 5, f"empty long poll of 2 s took {took:.2f} s"
    waiting = create(c, name("longpoll", "w"), ReceiveMessageWaitTimeSeconds=2)
    start = time.monotonic()
    got = c.receive_message(QueueUrl=waiting).get("Messages", [])
    took = time.monotonic() - start
    assert got == [] and 1.8 <= took < 5, f"queue wait of 2 s: {took:.2f} s, {got}"
    expect_error(c, "InvalidParameterValue", lambda: receive(c, url, WaitTimeSeconds=21),
                 "WaitTimeSeconds=21")
    c.delete_queue(QueueUrl=url)
    c.delete_queue(QueueUrl=waiting)


def visibility_timeout_and_stale_receipt(endpoint):
    c = client(endpoint)
    url = create(c, name("visib", "q"), VisibilityTimeout=30)
    c.send_message(QueueUrl=url, MessageBody="once")
    first = receive_within(c, url, 1, "first receive", VisibilityTimeout=2,
                           AttributeNames=["ApproximateReceiveCount"])[0]
    assert first["Attributes"]["ApproximateReceiveCount"] == "1", first
    assert receive(c, url) == [], "visible during its 2 s lease"
    time.sleep(2.5)
    second = receive_within(c, url, 1, "after the lease", AttributeNames=["All"])[0]
    assert second["MessageId"] == first["MessageId"], (first, second)
    assert second["Attributes"]["ApproximateReceiveCount"] == "2", second
    assert second["ReceiptHandle"] != first["ReceiptHandle"]
    expect_error(c, "ReceiptHandleIsInvalid", lambda: c.delete_message(
        QueueUrl=url, ReceiptHandle=first["ReceiptHandle"]), "DeleteMessage, stale receipt")
    expect_error(c, "ReceiptHandleIsInvalid", lambda: c.delete_message(
        QueueUrl=url, ReceiptHandle="garbage"), "DeleteMessage, garbage receipt")
    # A receipt of another queue is refused, never applied to this one.
    other = create(c, name("visib", "o"))
    expect_error(c, "ReceiptHandleIsInvalid", lambda: c.delete_message(
        QueueUrl=other, ReceiptHandle=second["ReceiptHandle"]), "receipt of another queue")
    c.delete_message(QueueUrl=url, ReceiptHandle=second["ReceiptHandle"])
    wait_counts(c, url, (0, 0, 0), "after the delete")
    expect_error(c, "InvalidParameterValue", lambda: receive(c, url, VisibilityTimeout=43201),
                 "VisibilityTimeout=43201")
    c.delete_queue(QueueUrl=url)
    c.delete_queue(QueueUrl=other)


def change_visibility(endpoint):
    c = client(endpoint)
    url = create(c, name("chvis", "q"), VisibilityTimeout=30)
    c.send_message(QueueUrl=url, MessageBody="a")
    c.send_message(QueueUrl=url, MessageBody="b")
    got = {m["Body"]: m for m in receive_within(c, url, 2, "two messages")}
    a, b = got["a"], got["b"]
    c.change_message_visibility(QueueUrl=url, ReceiptHandle=a["ReceiptHandle"],
                                VisibilityTimeout=0)
    start = time.monotonic()
    again = receive_within(c, url, 1, "a, visible again", AttributeNames=["All"])[0]
    # The queue's visibility is 30 s: well before that means the change applied.
    assert time.monotonic() - start < 5, "visibility 0 did not free the message at once"
    assert again["Body"] == "a" and again["Attributes"]["ApproximateReceiveCount"] == "2"
    done = c.change_message_visibility_batch(QueueUrl=url, Entries=[
        {"Id": "a", "ReceiptHandle": again["ReceiptHandle"], "VisibilityTimeout": 60},
        {"Id": "b", "ReceiptHandle": b["ReceiptHandle"], "VisibilityTimeout": 60},
        {"Id": "stale", "ReceiptHandle": a["ReceiptHandle"], "VisibilityTimeout": 60}])
    assert sorted(s["Id"] for s in done.get("Successful", [])) == ["a", "b"], done
    failed = done.get("Failed", [])
    assert [f["Id"] for f in failed] == ["stale"] and failed[0]["SenderFault"], done
    expect_error(c, "InvalidParameterValue", lambda: c.change_message_visibility(
        QueueUrl=url, ReceiptHandle=b["ReceiptHandle"], VisibilityTimeout=43201), "43201")
    c.delete_message(QueueUrl=url, ReceiptHandle=b["ReceiptHandle"])
    expect_error(c, "MessageNotInflight", lambda: c.change_message_visibility(
        QueueUrl=url, ReceiptHandle=b["ReceiptHandle"], VisibilityTimeout=10),
        "ChangeMessageVisibility of a deleted message")
    wait_counts(c, url, (0, 1, 0), "a still leased, b deleted")
    c.delete_queue(QueueUrl=url)


def delays(endpoint):
    c = client(endpoint)
    url = create(c, name("delays", "q"), DelaySeconds=1)
    start = time.monotonic()
    c.send_message(QueueUrl=url, MessageBody="queue delay")
    assert receive(c, url) == [], "received before the queue's DelaySeconds"
    m = receive_within(c, url, 1, "after the queue delay", timeout=5)[0]
    took = time.monotonic() - start
    assert m["Body"] == "queue delay" and 0.8 <= took < 4, f"{took:.2f} s: {m}"
    c.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    c.send_message(QueueUrl=url, MessageBody="no delay", DelaySeconds=0)
    # Without waiting: the queue's 1 s delay must not apply.
    got = receive(c, url)
    assert [m["Body"] for m in got] == ["no delay"], f"DelaySeconds=0 on a delayed queue: {got}"
    plain = create(c, name("delays", "p"))
    start = time.monotonic()
    c.send_message(QueueUrl=plain, MessageBody="two seconds", DelaySeconds=2)
    m = receive_within(c, plain, 1, "a 2 s message delay", timeout=6)[0]
    took = time.monotonic() - start
    assert m["Body"] == "two seconds" and 1.8 <= took < 5, f"{took:.2f} s"
    c.delete_queue(QueueUrl=url)
    c.delete_queue(QueueUrl=plain)


def redrive_to_dead_letter_queue(endpoint):
    c = client(endpoint)
    dlq_name = name("redrive", "dlq")
    dlq = create(c, dlq_name)
    policy = {"deadLetterTargetArn": arn(dlq_name), "maxReceiveCount": 2}
    src = c.create_queue(QueueName=name("redrive", "src"), Attributes={
        "VisibilityTimeout": "1", "RedrivePolicy": json.dumps(policy)})["QueueUrl"]
    got = c.get_queue_attributes(QueueUrl=src, AttributeNames=["RedrivePolicy"])["Attributes"]
    assert json.loads(got["RedrivePolicy"]) == policy, got
    attrs = {"k": {"DataType": "String", "StringValue": "v"}}
    c.send_message(QueueUrl=src, MessageBody="poison", MessageAttributes=attrs)
    for n in (1, 2):
        m = receive_within(c, src, 1, f"receive {n}", AttributeNames=["All"])[0]
        assert m["Attributes"]["ApproximateReceiveCount"] == str(n), m
        time.sleep(1.2)  # the 1 s lease lapses without a delete
    dead = receive_within(c, dlq, 1, "the message in the DLQ", MessageAttributeNames=["All"])[0]
    assert dead["Body"] == "poison", dead
    assert dead["MessageAttributes"]["k"] == attrs["k"], dead
    assert receive(c, src, WaitTimeSeconds=1) == [], "the source still hands it out"
    # A policy added later applies to the open queue.
    third_name = name("redrive", "late")
    third = create(c, third_name, VisibilityTimeout=1)
    late = {"deadLetterTargetArn": arn(dlq_name), "maxReceiveCount": "1"}
    c.set_queue_attributes(QueueUrl=third, Attributes={"RedrivePolicy": json.dumps(late)})
    got = c.get_queue_attributes(QueueUrl=third, AttributeNames=["All"])["Attributes"]
    assert json.loads(got["RedrivePolicy"]) == {**late, "maxReceiveCount": 1}, got
    c.send_message(QueueUrl=third, MessageBody="late poison")
    receive_within(c, third, 1, "the only delivery")
    time.sleep(1.2)
    dead = receive_within(c, dlq, 1, "the late policy's dead letter")[0]
    assert dead["Body"] == "late poison", dead
    for bad in [{"deadLetterTargetArn": arn(name("redrive", "nope")), "maxReceiveCount": 2},
                {"deadLetterTargetArn": "not an arn", "maxReceiveCount": 2},
                {"deadLetterTargetArn": arn(dlq_name), "maxReceiveCount": 0}]:
        expect_error(c, "InvalidParameterValue", lambda: c.set_queue_attributes(
            QueueUrl=third, Attributes={"RedrivePolicy": json.dumps(bad)}), f"policy {bad}")
    for url in (src, third, dlq):
        c.delete_queue(QueueUrl=url)


def purge(endpoint):
    c = client(endpoint)
    url = create(c, name("purge", "q"))
    c.send_message_batch(QueueUrl=url, Entries=[
        {"Id": f"e{i}", "MessageBody": f"m{i}"} for i in range(5)])
    wait_counts(c, url, (5, 0, 0), "five sent")
    c.purge_queue(QueueUrl=url)
    wait_counts(c, url, (0, 0, 0), "after PurgeQueue")
    assert receive(c, url, WaitTimeSeconds=1) == [], "a purged message was received"
    c.delete_queue(QueueUrl=url)


def missing_queue_and_bad_input(endpoint):
    c = client(endpoint)
    missing = queue_url(endpoint, name("missing", "none"))
    for what, action in [
            ("SendMessage", lambda: c.send_message(QueueUrl=missing, MessageBody="x")),
            ("ReceiveMessage", lambda: receive(c, missing)),
            ("DeleteMessage", lambda: c.delete_message(QueueUrl=missing, ReceiptHandle="x")),
            ("PurgeQueue", lambda: c.purge_queue(QueueUrl=missing)),
            ("GetQueueAttributes", lambda: c.get_queue_attributes(
                QueueUrl=missing, AttributeNames=["All"])),
            ("SetQueueAttributes", lambda: c.set_queue_attributes(
                QueueUrl=missing, Attributes={"DelaySeconds": "1"}))]:
        expect_error(c, "QueueDoesNotExist", action, f"{what} on a missing queue")
    for bad in ["bad name!", "x" * 81, "with.dot"]:
        expect_error(c, "InvalidParameterValue", lambda: c.create_queue(QueueName=bad),
                     f"CreateQueue {bad[:20]!r}")
    url = create(c, name("missing", "q"))
    expect_error(c, "InvalidParameterValue", lambda: c.send_message(
        QueueUrl=url, MessageBody="x" * 262145), "a 262145-byte body")
    # The largest message, of characters each protocol escapes to 3 times their size
    # (\u00e9 in JSON, %C3%A9 in a form), fits the broker's 1 MiB request bound.
    largest = "\u00e9" * (262144 // 2)
    sent = c.send_message(QueueUrl=url, MessageBody=largest)
    assert sent["MD5OfMessageBody"] == md5_hex(largest.encode()), sent
    m = receive_within(c, url, 1, "the largest message")[0]
    assert m["Body"] == largest, "the largest message came back changed"
    c.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    small = create(c, name("missing", "small"), MaximumMessageSize=1024)
    expect_error(c, "InvalidParameterValue", lambda: c.send_message(
        QueueUrl=small, MessageBody="x" * 1025), "past the queue's MaximumMessageSize")
    c.send_message(QueueUrl=small, MessageBody="x" * 1000)
    expect_error(c, "InvalidParameterValue", lambda: c.send_message(
        QueueUrl=url, MessageBody="x", DelaySeconds=901), "DelaySeconds=901")
    expect_error(c, "InvalidMessageContents", lambda: c.send_message(
        QueueUrl=url, MessageBody="\x01"), "a control character in the body")
    # Deduplication ids are for FIFO queues.
    expect_error(c, "InvalidParameterValue", lambda: c.send_message(
        QueueUrl=url, MessageBody="x", MessageDeduplicationId="d"), "MessageDeduplicationId")
    wait_counts(c, url, (0, 0, 0), "nothing refused was kept")
    c.delete_queue(QueueUrl=url)
    c.delete_queue(QueueUrl=small)


def fair_queue_group_ids(endpoint):
    """A standard queue takes MessageGroupId (SQS's fair queues) and returns it on receive,
    without FIFO's SequenceNumber or ordering; it is no message attribute."""
    c = client(endpoint)
    url = create(c, name("fair", "q"))
    c.send_message(QueueUrl=url, MessageBody="tenant-a", MessageGroupId="tenant-a")
    batch = c.send_message_batch(QueueUrl=url, Entries=[
        {"Id": "b", "MessageBody": "tenant-b", "MessageGroupId": "tenant-b"},
        {"Id": "n", "MessageBody": "no group"}])
    assert len(batch["Successful"]) == 2 and not batch.get("Failed"), batch
    got = receive_within(c, url, 3, "three messages", AttributeNames=["All"],
                         MessageAttributeNames=["All"])
    groups = {m["Body"]: m["Attributes"].get("MessageGroupId") for m in got}
    assert groups == {"tenant-a": "tenant-a", "tenant-b": "tenant-b", "no group": None}, got
    assert all("SequenceNumber" not in m["Attributes"] for m in got), got
    assert all("MessageAttributes" not in m for m in got), got
    c.delete_queue(QueueUrl=url)


def tags(endpoint):
    """Tags from CreateQueue and TagQueue, listed, replaced, removed; at most 50."""
    c = client(endpoint)
    q = name("tags", "q")
    url = c.create_queue(QueueName=q, tags={"team": "orders", "env": "dev"})["QueueUrl"]
    assert c.list_queue_tags(QueueUrl=url).get("Tags") == {"team": "orders", "env": "dev"}
    c.tag_queue(QueueUrl=url, Tags={"env": "prod", "cost": "", "Key with space": "v"})
    want = {"team": "orders", "env": "prod", "cost": "", "Key with space": "v"}
    assert c.list_queue_tags(QueueUrl=url)["Tags"] == want, c.list_queue_tags(QueueUrl=url)
    c.untag_queue(QueueUrl=url, TagKeys=["team", "never-set"])
    del want["team"]
    assert c.list_queue_tags(QueueUrl=url)["Tags"] == want
    c.untag_queue(QueueUrl=url, TagKeys=list(want))
    assert c.list_queue_tags(QueueUrl=url).get("Tags", {}) == {}, "all removed"
    c.tag_queue(QueueUrl=url, Tags={f"k{i}": "v" for i in range(50)})
    expect_error(c, "InvalidParameterValue", lambda: c.tag_queue(
        QueueUrl=url, Tags={"one-more": "v"}), "a 51st tag")
    assert len(c.list_queue_tags(QueueUrl=url)["Tags"]) == 50
    for bad in [{"aws:reserved": "v"}, {"k": "v" * 257}]:
        expect_error(c, "InvalidParameterValue", lambda: c.tag_queue(
            QueueUrl=url, Tags=bad), f"tags {list(bad)}")
    missing = queue_url(endpoint, name("tags", "none"))
    expect_error(c, "QueueDoesNotExist", lambda: c.list_queue_tags(QueueUrl=missing),
                 "ListQueueTags on a missing queue")
    c.delete_queue(QueueUrl=url)


def dead_letter_source_queues(endpoint):
    """ListDeadLetterSourceQueues names the queues whose RedrivePolicy targets a queue,
    by page."""
    c = client(endpoint)
    dlq_name = name("dlsources", "dlq")
    dlq = create(c, dlq_name)
    policy = json.dumps({"deadLetterTargetArn": arn(dlq_name), "maxReceiveCount": 3})
    sources = [create(c, name("dlsources", f"s{i}"), RedrivePolicy=policy) for i in range(3)]
    create(c, name("dlsources", "other"))
    got = c.list_dead_letter_source_queues(QueueUrl=dlq)
    assert sorted(got["queueUrls"]) == sorted(sources), got
    assert "NextToken" not in got, got
    first = c.list_dead_letter_source_queues(QueueUrl=dlq, MaxResults=2)
    assert len(first["queueUrls"]) == 2 and first.get("NextToken"), first
    rest = c.list_dead_letter_source_queues(QueueUrl=dlq, MaxResults=2,
                                            NextToken=first["NextToken"])
    assert sorted(first["queueUrls"] + rest["queueUrls"]) == sorted(sources), (first, rest)
    assert "NextToken" not in rest, rest
    pages = c.get_paginator("list_dead_letter_source_queues").paginate(
        QueueUrl=dlq, PaginationConfig={"PageSize": 1})
    assert sorted(u for p in pages for u in p["queueUrls"]) == sorted(sources)
    c.set_queue_attributes(QueueUrl=sources[0], Attributes={"RedrivePolicy": ""})
    got = c.list_dead_letter_source_queues(QueueUrl=dlq)["queueUrls"]
    assert sorted(got) == sorted(sources[1:]), got
    for url in sources + [dlq, queue_url(endpoint, name("dlsources", "other"))]:
        c.delete_queue(QueueUrl=url)


def redrive_allow_policy(endpoint):
    """A dead-letter queue's RedriveAllowPolicy decides which queues may name it in their
    RedrivePolicy: byQueue lists them, denyAll refuses all, allowAll (or none) takes any."""
    c = client(endpoint)
    dlq_name = name("allow", "dlq")
    ok_name, other_name = name("allow", "ok"), name("allow", "other")
    allow = {"redrivePermission": "byQueue", "sourceQueueArns": [arn(ok_name)]}
    dlq = create(c, dlq_name, RedriveAllowPolicy=json.dumps(allow))
    got = c.get_queue_attributes(QueueUrl=dlq, AttributeNames=["RedriveAllowPolicy"])
    assert json.loads(got["Attributes"]["RedriveAllowPolicy"]) == allow, got
    policy = json.dumps({"deadLetterTargetArn": arn(dlq_name), "maxReceiveCount": 2})
    ok = create(c, ok_name, RedrivePolicy=policy)
    expect_error(c, "InvalidParameterValue", lambda: create(c, other_name, RedrivePolicy=policy),
                 "a source the policy does not list")
    other = create(c, other_name)
    expect_error(c, "InvalidParameterValue", lambda: c.set_queue_attributes(
        QueueUrl=other, Attributes={"RedrivePolicy": policy}), "set on an unlisted source")
    c.set_queue_attributes(QueueUrl=dlq, Attributes={
        "RedriveAllowPolicy": json.dumps({"redrivePermission": "allowAll"})})
    c.set_queue_attributes(QueueUrl=other, Attributes={"RedrivePolicy": policy})
    c.set_queue_attributes(QueueUrl=dlq, Attributes={
        "RedriveAllowPolicy": json.dumps({"redrivePermission": "denyAll"})})
    third = name("allow", "third")
    expect_error(c, "InvalidParameterValue", lambda: create(c, third, RedrivePolicy=policy),
                 "denyAll")
    for bad in [{"redrivePermission": "byQueue"},
                {"redrivePermission": "byQueue",
                 "sourceQueueArns": [arn(f"q{i}") for i in range(11)]},
                {"redrivePermission": "sometimes"}]:
        expect_error(c, "InvalidParameterValue", lambda: c.set_queue_attributes(
            QueueUrl=dlq, Attributes={"RedriveAllowPolicy": json.dumps(bad)}), f"policy {bad}")
    c.set_queue_attributes(QueueUrl=dlq, Attributes={"RedriveAllowPolicy": ""})
    got = c.get_queue_attributes(QueueUrl=dlq, AttributeNames=["All"])["Attributes"]
    assert "RedriveAllowPolicy" not in got, got
    create(c, third, RedrivePolicy=policy)
    for url in [ok, other, queue_url(endpoint, third), dlq]:
        c.delete_queue(QueueUrl=url)


def wait_move(c, source_arn, status, what, timeout=WAIT_S):
    """Waits until the newest move task of the queue has `status`; answers it."""
    deadline = time.monotonic() + timeout
    while True:
        tasks = c.list_message_move_tasks(SourceArn=source_arn).get("Results", [])
        if tasks and tasks[0]["Status"] == status:
            return tasks[0]
        assert time.monotonic() < deadline, f"{what}: tasks {tasks}, wanted {status}"
        time.sleep(POLL_S)


def message_move_tasks(endpoint):
    """StartMessageMoveTask moves a DLQ's messages back to their source queues (or to a
    destination), at a rate; ListMessageMoveTasks and CancelMessageMoveTask follow it."""
    c = client(endpoint)
    dlq_name, src_name = name("moves", "dlq"), name("moves", "src")
    dlq = create(c, dlq_name)
    policy = json.dumps({"deadLetterTargetArn": arn(dlq_name), "maxReceiveCount": 1})
    src = create(c, src_name, VisibilityTimeout=1, RedrivePolicy=policy)
    attrs = {"k": {"DataType": "String", "StringValue": "v"}}
    for i in range(3):
        c.send_message(QueueUrl=src, MessageBody=f"m{i}", MessageAttributes=attrs)
    receive_within(c, src, 3, "each once, left to lapse")
    wait_counts(c, dlq, (3, 0, 0), "all three dead-lettered")
    handle = c.start_message_move_task(SourceArn=arn(dlq_name))["TaskHandle"]
    assert handle, "no TaskHandle"
    done = wait_move(c, arn(dlq_name), "COMPLETED", "the move back")
    assert (done["ApproximateNumberOfMessagesMoved"], done["ApproximateNumberOfMessagesToMove"]) \
        == (3, 3), done
    assert "TaskHandle" not in done, "a handle only while it runs"
    wait_counts(c, dlq, (0, 0, 0), "the DLQ emptied")
    back = receive_within(c, src, 3, "back in the source", MessageAttributeNames=["All"])
    assert sorted(m["Body"] for m in back) == ["m0", "m1", "m2"], back
    assert all(m["MessageAttributes"] == attrs for m in back), back
    for m in back:
        c.delete_message(QueueUrl=src, ReceiptHandle=m["ReceiptHandle"])
    # Refusals: not a DLQ, no such queue, no such task.
    expect_error(c, "InvalidParameterValue", lambda: c.start_message_move_task(
        SourceArn=arn(src_name)), "a source that is no dead-letter queue")
    expect_error(c, "ResourceNotFoundException", lambda: c.start_message_move_task(
        SourceArn=arn(name("moves", "none"))), "a missing source")
    expect_error(c, "ResourceNotFoundException", lambda: c.cancel_message_move_task(
        TaskHandle="bogus"), "an unknown task")
    # To a destination, one a second: running, a second start refused, cancelled.
    other = create(c, name("moves", "other"))
    c.send_message_batch(QueueUrl=dlq, Entries=[
        {"Id": f"e{i}", "MessageBody": f"d{i}"} for i in range(5)])
    wait_counts(c, dlq, (5, 0, 0), "five in the DLQ")
    handle = c.start_message_move_task(SourceArn=arn(dlq_name),
                                       DestinationArn=arn(name("moves", "other")),
                                       MaxNumberOfMessagesPerSecond=1)["TaskHandle"]
    running = c.list_message_move_tasks(SourceArn=arn(dlq_name), MaxResults=10)["Results"]
    assert running[0]["Status"] == "RUNNING" and running[0]["TaskHandle"] == handle, running
    assert running[0]["DestinationArn"] == arn(name("moves", "other")), running
    assert running[0]["MaxNumberOfMessagesPerSecond"] == 1, running
    assert len(running) == 2 and running[1]["Status"] == "COMPLETED", running
    expect_error(c, "InvalidParameterValue", lambda: c.start_message_move_task(
        SourceArn=arn(dlq_name)), "a second task while one runs")
    time.sleep(1.5)
    moved = c.cancel_message_move_task(TaskHandle=handle)["ApproximateNumberOfMessagesMoved"]
    assert 1 <= moved < 5, f"{moved} moved at one a second in 1.5 s"
    wait_move(c, arn(dlq_name), "CANCELLED", "the cancel")
    in_other, _, _ = counts(c, other)
    in_dlq, _, _ = counts(c, dlq)
    assert in_other + in_dlq == 5 and in_dlq >= 2, (in_other, in_dlq)
    # Messages that name no source queue cannot go back: the task fails and says why.
    c.start_message_move_task(SourceArn=arn(dlq_name))
    failed = wait_move(c, arn(dlq_name), "FAILED", "a move back with no source")
    assert "x-death-queue" in failed.get("FailureReason", ""), failed
    for url in (src, other, dlq):
        c.delete_queue(QueueUrl=url)


def system_attributes_and_first_receive(endpoint):
    """AWSTraceHeader travels as a message system attribute (with its MD5), and
    ApproximateFirstReceiveTimestamp stays the first receive's time on later ones."""
    c = client(endpoint)
    url = create(c, name("system", "q"))
    trace = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
    system = {"AWSTraceHeader": {"DataType": "String", "StringValue": trace}}
    sent = c.send_message(QueueUrl=url, MessageBody="traced", MessageSystemAttributes=system)
    assert sent["MD5OfMessageSystemAttributes"] == md5_of_attributes(system), sent
    batch = c.send_message_batch(QueueUrl=url, Entries=[
        {"Id": "t", "MessageBody": "traced too", "MessageSystemAttributes": system},
        {"Id": "p", "MessageBody": "plain"}])
    by_id = {e["Id"]: e for e in batch["Successful"]}
    assert by_id["t"]["MD5OfMessageSystemAttributes"] == md5_of_attributes(system), batch
    assert "MD5OfMessageSystemAttributes" not in by_id["p"], batch
    expect_error(c, "InvalidParameterValue", lambda: c.send_message(
        QueueUrl=url, MessageBody="x", MessageSystemAttributes={
            "Other": {"DataType": "String", "StringValue": "v"}}), "an unknown system attribute")
    before = int(time.time() * 1000)
    first = receive_within(c, url, 3, "three", AttributeNames=[
        "AWSTraceHeader", "ApproximateFirstReceiveTimestamp"])
    after = int(time.time() * 1000)
    for m in first:
        c.change_message_visibility(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"],
                                    VisibilityTimeout=0)
    by_body = {m["Body"]: m for m in first}
    assert by_body["traced"]["Attributes"]["AWSTraceHeader"] == trace, by_body
    assert "AWSTraceHeader" not in by_body["plain"]["Attributes"], by_body
    assert "MessageAttributes" not in by_body["traced"], "a system attribute is no message attribute"
    stamps = {b: int(m["Attributes"]["ApproximateFirstReceiveTimestamp"])
              for b, m in by_body.items()}
    assert all(before - 1000 <= t <= after + 1000 for t in stamps.values()), (before, stamps)
    time.sleep(0.05)
    again = receive_within(c, url, 3, "again", AttributeNames=["All"])
    for m in again:
        a = m["Attributes"]
        assert a["ApproximateReceiveCount"] == "2", m
        assert int(a["ApproximateFirstReceiveTimestamp"]) == stamps[m["Body"]], (m, stamps)
        c.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    c.delete_queue(QueueUrl=url)


# 2b. FIFO queues ---------------------------------------------------------------------------

def fifo_send(c, url, body, group, dedup=None, **kw):
    if dedup is not None:
        kw["MessageDeduplicationId"] = dedup
    return c.send_message(QueueUrl=url, MessageBody=body, MessageGroupId=group, **kw)


def fifo_attributes_and_rules(endpoint):
    """A FIFO queue is a `.fifo` name with FifoQueue=true (both or neither); its
    attributes read back; the FIFO send rules hold."""
    c = client(endpoint)
    q = name("fifoattr", "q") + ".fifo"
    url = c.create_queue(QueueName=q, Attributes={"FifoQueue": "true"})["QueueUrl"]
    assert url == queue_url(endpoint, q), url
    got = c.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert got["FifoQueue"] == "true", got
    assert got["ContentBasedDeduplication"] == "false", got
    assert got["DeduplicationScope"] == "queue", got
    assert got["FifoThroughputLimit"] == "perQueue", got
    assert got["QueueArn"] == arn(q), got
    assert c.create_queue(QueueName=q, Attributes={"FifoQueue": "true"})["QueueUrl"] == url
    c.set_queue_attributes(QueueUrl=url, Attributes={"ContentBasedDeduplication": "true"})
    got = c.get_queue_attributes(QueueUrl=url, AttributeNames=["ContentBasedDeduplication"])
    assert got["Attributes"] == {"ContentBasedDeduplication": "true"}, got
    standard = create(c, name("fifoattr", "std"))
    for what, action, shape in [
            ("a .fifo name without FifoQueue", lambda: c.create_queue(
                QueueName=name("fifoattr", "no") + ".fifo"), "InvalidParameterValue"),
            ("FifoQueue on a standard name", lambda: c.create_queue(
                QueueName=name("fifoattr", "no"), Attributes={"FifoQueue": "true"}),
             "InvalidParameterValue"),
            ("ContentBasedDeduplication on a standard queue", lambda: c.create_queue(
                QueueName=name("fifoattr", "no"),
                Attributes={"ContentBasedDeduplication": "true"}), "InvalidAttributeName"),
            ("FifoQueue=yes", lambda: c.create_queue(
                QueueName=name("fifoattr", "no") + ".fifo",
                Attributes={"FifoQueue": "yes"}), "InvalidAttributeValue"),
            ("FifoQueue changed later", lambda: c.set_queue_attributes(
                QueueUrl=standard, Attributes={"FifoQueue": "true"}), "InvalidAttributeName"),
            ("a per-group limit with a queue scope", lambda: c.set_queue_attributes(
                QueueUrl=url, Attributes={"FifoThroughputLimit": "perMessageGroupId"}),
             "InvalidAttributeValue"),
            ("a FIFO queue with a standard DLQ", lambda: c.set_queue_attributes(
                QueueUrl=url, Attributes={"RedrivePolicy": json.dumps({
                    "deadLetterTargetArn": arn(name("fifoattr", "std")),
                    "maxReceiveCount": 2})}), "InvalidParameterValue"),
            ("no MessageGroupId", lambda: c.send_message(QueueUrl=url, MessageBody="x"),
             "MissingParameter"),
            ("a per-message delay", lambda: fifo_send(c, url, "x", "g", DelaySeconds=1),
             "InvalidParameterValue"),
            ("a group id with a space", lambda: fifo_send(c, url, "x", "g g"),
             "InvalidParameterValue")]:
        expect_error(c, shape, action, what)
    c.set_queue_attributes(QueueUrl=url, Attributes={"ContentBasedDeduplication": "false"})
    expect_error(c, "InvalidParameterValue", lambda: fifo_send(c, url, "x", "g"),
                 "no deduplication id without ContentBasedDeduplication")
    wait_counts(c, url, (0, 0, 0), "nothing refused was kept")
    c.delete_queue(QueueUrl=url)
    c.delete_queue(QueueUrl=standard)


def fifo_queue_keeps_group_order_and_drops_duplicates(endpoint):
    """Order within each group, one group's next message only after its earlier ones are
    deleted, duplicates (explicit ids, a batch, after a delete) answered with the
    original's MessageId and SequenceNumber and never stored twice."""
    c = client(endpoint)
    q = name("fifoorder", "q") + ".fifo"
    url = c.create_queue(QueueName=q, Attributes={"FifoQueue": "true"})["QueueUrl"]
    sent = {}
    for body, group, dedup in [("a1", "a", "1"), ("b1", "b", "2"), ("a2", "a", "3"),
                               ("b2", "b", "4")]:
        sent[body] = fifo_send(c, url, body, group, dedup)
    seqs = [int(sent[b]["SequenceNumber"]) for b in ("a1", "b1", "a2", "b2")]
    assert seqs == sorted(seqs) and len(set(seqs)) == 4, seqs
    assert all(len(sent[b]["SequenceNumber"]) == 20 for b in sent), sent
    again = fifo_send(c, url, "a1 again", "a", "1")
    assert again["MessageId"] == sent["a1"]["MessageId"], (again, sent["a1"])
    assert again["SequenceNumber"] == sent["a1"]["SequenceNumber"], again
    assert again["MD5OfMessageBody"] == md5_hex(b"a1 again"), again
    batch = c.send_message_batch(QueueUrl=url, Entries=[
        {"Id": "x", "MessageBody": "b1 again", "MessageGroupId": "b",
         "MessageDeduplicationId": "2"},
        {"Id": "y", "MessageBody": "a3", "MessageGroupId": "a", "MessageDeduplicationId": "5"},
        {"Id": "z", "MessageBody": "a3 again", "MessageGroupId": "a",
         "MessageDeduplicationId": "5"},
        {"Id": "w", "MessageBody": "no group"}])
    ok = {e["Id"]: e for e in batch["Successful"]}
    assert ok["x"]["MessageId"] == sent["b1"]["MessageId"], batch
    assert ok["y"]["MessageId"] == ok["z"]["MessageId"], batch
    assert [f["Id"] for f in batch.get("Failed", [])] == ["w"], batch
    assert entry_code_is(batch["Failed"][0]["Code"], "MissingParameter"), batch
    wait_counts(c, url, (5, 0, 0), "duplicates were not stored")
    # Receive everything, deleting as we go: each group comes back in send order, and
    # while a group has a message in flight, none of its later ones is handed out.
    order = {"a": [], "b": []}
    most_of_one_group = 0
    deadline = time.monotonic() + WAIT_S
    while len(order["a"]) + len(order["b"]) < 5:
        assert time.monotonic() < deadline, f"received only {order}"
        got = receive(c, url, MaxNumberOfMessages=10, WaitTimeSeconds=1,
                      AttributeNames=["All"])
        if not got:
            continue
        held = {m["Attributes"]["MessageGroupId"] for m in got}
        groups = [m["Attributes"]["MessageGroupId"] for m in got]
        most_of_one_group = max([most_of_one_group] + [groups.count(g) for g in held])
        for m in receive(c, url, MaxNumberOfMessages=10, AttributeNames=["All"]):
            assert m["Attributes"]["MessageGroupId"] not in held, \
                f"{m['Body']} handed out while its group has one in flight"
            c.change_message_visibility(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"],
                                        VisibilityTimeout=0)
        for m in got:
            a = m["Attributes"]
            order[a["MessageGroupId"]].append(m["Body"])
            first = sent.get(m["Body"])
            if first:
                assert m["MessageId"] == first["MessageId"], m
                assert a["SequenceNumber"] == first["SequenceNumber"], m
            assert a["MessageDeduplicationId"] in "12345", m
            c.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    assert order == {"a": ["a1", "a2", "a3"], "b": ["b1", "b2"]}, order
    # As SQS, one receive may hand out several messages of one group (in order).
    assert most_of_one_group >= 2, most_of_one_group
    # The window outlives the delete: the same id is still a duplicate.
    late = fifo_send(c, url, "a1 late", "a", "1")
    assert late["MessageId"] == sent["a1"]["MessageId"], late
    assert receive(c, url, WaitTimeSeconds=1) == [], "a duplicate was stored after a delete"
    c.delete_queue(QueueUrl=url)


def fifo_content_based_and_per_group_deduplication(endpoint):
    """ContentBasedDeduplication: the body's SHA-256 is the id; DeduplicationScope
    messageGroup: the same id in two groups is two messages."""
    c = client(endpoint)
    q = name("fifocontent", "q") + ".fifo"
    url = c.create_queue(QueueName=q, Attributes={
        "FifoQueue": "true", "ContentBasedDeduplication": "true"})["QueueUrl"]
    first = fifo_send(c, url, "same", "g")
    assert fifo_send(c, url, "same", "g")["MessageId"] == first["MessageId"]
    other = fifo_send(c, url, "other", "g")
    assert other["MessageId"] != first["MessageId"], other
    explicit = fifo_send(c, url, "same", "g", dedup="mine")
    assert explicit["MessageId"] != first["MessageId"], "an explicit id wins over the body's"
    got = receive_within(c, url, 1, "the first", AttributeNames=["MessageDeduplicationId"])[0]
    assert got["Body"] == "same", got
    digest = hashlib.sha256(b"same").hexdigest()
    assert got["Attributes"] == {"MessageDeduplicationId": digest}, got
    wait_counts(c, url, (2, 1, 0), "three stored")
    c.delete_queue(QueueUrl=url)
    q = name("fifogroup", "q") + ".fifo"
    url = c.create_queue(QueueName=q, Attributes={
        "FifoQueue": "true", "DeduplicationScope": "messageGroup",
        "FifoThroughputLimit": "perMessageGroupId"})["QueueUrl"]
    got = c.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert (got["DeduplicationScope"], got["FifoThroughputLimit"]) == \
        ("messageGroup", "perMessageGroupId"), got
    one = fifo_send(c, url, "in a", "a", "d")
    two = fifo_send(c, url, "in b", "b", "d")
    assert one["MessageId"] != two["MessageId"], "per group, the same id is two messages"
    assert fifo_send(c, url, "in a again", "a", "d")["MessageId"] == one["MessageId"]
    got = receive_within(c, url, 2, "both groups", AttributeNames=["All"])
    assert sorted(m["Attributes"]["MessageDeduplicationId"] for m in got) == ["d", "d"], got
    c.delete_queue(QueueUrl=url)


def fifo_receive_request_attempt_id(endpoint):
    """A receive retried with the same ReceiveRequestAttemptId gets the same messages and
    receipts while they are in flight; once they are deleted, a new receive."""
    c = client(endpoint)
    q = name("fifoattempt", "q") + ".fifo"
    url = c.create_queue(QueueName=q, Attributes={
        "FifoQueue": "true", "ContentBasedDeduplication": "true"})["QueueUrl"]
    for body, group in [("a1", "a"), ("b1", "b"), ("a2", "a"), ("b2", "b")]:
        fifo_send(c, url, body, group)
    first = receive(c, url, MaxNumberOfMessages=10, ReceiveRequestAttemptId="try-1")
    assert first, "nothing received"
    again = receive(c, url, MaxNumberOfMessages=10, ReceiveRequestAttemptId="try-1")
    key = lambda ms: sorted((m["MessageId"], m["ReceiptHandle"]) for m in ms)
    assert key(again) == key(first), (again, first)
    other = receive(c, url, MaxNumberOfMessages=10, ReceiveRequestAttemptId="try-2")
    assert not {m["MessageId"] for m in other} & {m["MessageId"] for m in first}, other
    for m in first + other:
        c.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    rest = receive(c, url, MaxNumberOfMessages=10, WaitTimeSeconds=1,
                   ReceiveRequestAttemptId="try-1")
    got = sorted(m["Body"] for m in first + other + rest)
    assert got == ["a1", "a2", "b1", "b2"], got
    expect_error(c, "InvalidParameterValue", lambda: receive(
        c, url, ReceiveRequestAttemptId="with space"), "an attempt id with a space")
    c.delete_queue(QueueUrl=url)


# 3. Steps of the Rust tests that need the broker's other side -----------------------------

def fill(endpoint, q, n):
    """Creates queue `q` and sends n messages `m0`.. (tests/sqs_boto3.rs then reads them
    natively)."""
    c = client(endpoint)
    url = create(c, q)
    for i in range(int(n)):
        c.send_message(QueueUrl=url, MessageBody=f"m{i}")


def consume_expect(endpoint, q, n):
    """Receives n messages from `q`: `m0`.. from `fill` and one published natively with the
    header source=native and the body 0xff, which SQS shows as the text U+FFFD."""
    c = client(endpoint)
    url = c.get_queue_url(QueueName=q)["QueueUrl"]
    got = receive_within(c, url, int(n), "every message", MessageAttributeNames=["All"])
    by_body = {m["Body"]: m for m in got}
    native = by_body.pop("\ufffd", None)
    assert native is not None, f"no natively published message in {got}"
    assert native["MD5OfBody"] == md5_hex("\ufffd".encode()), native
    want = {"source": {"DataType": "String", "StringValue": "native"}}
    assert native["MessageAttributes"] == want, native
    assert native["MD5OfMessageAttributes"] == md5_of_attributes(want), native
    assert sorted(by_body) == sorted(f"m{i}" for i in range(int(n) - 1)), sorted(by_body)
    for m in got:
        c.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    wait_counts(c, url, (0, 0, 0), "after deleting every message")


def urls_and_arns(endpoint):
    """URLs and ARNs carry --sqs-account-id and --sqs-region (run with --region, --account)."""
    c = client(endpoint)
    q = name("urls", "q")
    url = create(c, q)
    assert url == queue_url(endpoint, q) and f"/{ACCOUNT}/{q}" in url, url
    got = c.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]
    assert got["QueueArn"] == arn(q), got
    other = url.replace(f"/{ACCOUNT}/", "/999999999999/")
    expect_error(c, "QueueDoesNotExist", lambda: c.send_message(
        QueueUrl=other, MessageBody="x"), "a URL with another account")
    c.send_message(QueueUrl=url, MessageBody="here")
    m = receive_within(c, url, 1, "the message", AttributeNames=["SenderId"])[0]
    assert m["Attributes"]["SenderId"] == ACCOUNT, m
    c.delete_queue(QueueUrl=url)


def persist_setup(endpoint, q, receipt_file):
    """Before a kill -9: queue `q` with VisibilityTimeout 7 and a RedrivePolicy to
    `q`-dlq (both set by SetQueueAttributes), a tag, and one message `kept`, received
    once (its receipt written to `receipt_file`) and not deleted; FIFO queue `q`.fifo
    with content-based deduplication and one message (its MessageId in
    `receipt_file`.fifo)."""
    c = client(endpoint)
    create(c, f"{q}-dlq")
    url = create(c, q)
    policy = {"deadLetterTargetArn": arn(f"{q}-dlq"), "maxReceiveCount": 3}
    c.set_queue_attributes(QueueUrl=url, Attributes={
        "VisibilityTimeout": "7", "RedrivePolicy": json.dumps(policy)})
    c.send_message(QueueUrl=url, MessageBody="kept", MessageAttributes={
        "k": {"DataType": "Number", "StringValue": "7"}})
    m = receive_within(c, url, 1, "the message before the kill")[0]
    with open(receipt_file, "w") as f:
        f.write(m["ReceiptHandle"])
    # Tags, a FIFO queue's attributes and its deduplication window are durable too.
    c.tag_queue(QueueUrl=url, Tags={"team": "orders"})
    fifo = c.create_queue(QueueName=f"{q}.fifo", Attributes={
        "FifoQueue": "true", "ContentBasedDeduplication": "true"})["QueueUrl"]
    sent = c.send_message(QueueUrl=fifo, MessageBody="once", MessageGroupId="g")
    with open(receipt_file + ".fifo", "w") as f:
        f.write(sent["MessageId"])


def persist_check(endpoint, q, receipt_file):
    """After the restart: the attributes are there; the lease did not survive, so the
    message is received again (count 2), and the receipt from before the restart is
    refused, even though the restarted queue hands out lease handles from 1 again."""
    c = client(endpoint)
    url = c.get_queue_url(QueueName=q)["QueueUrl"]
    got = c.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert got["VisibilityTimeout"] == "7", got
    policy = {"deadLetterTargetArn": arn(f"{q}-dlq"), "maxReceiveCount": 3}
    assert json.loads(got["RedrivePolicy"]) == policy, got
    m = receive_within(c, url, 1, "the message sent before the kill", AttributeNames=["All"],
                       MessageAttributeNames=["All"])[0]
    assert m["Body"] == "kept", m
    assert m["MessageAttributes"] == {"k": {"DataType": "Number", "StringValue": "7"}}, m
    assert m["Attributes"]["ApproximateReceiveCount"] == "2", m
    with open(receipt_file) as f:
        old = f.read()
    expect_error(c, "ReceiptHandleIsInvalid", lambda: c.delete_message(
        QueueUrl=url, ReceiptHandle=old), "a receipt from before the restart")
    wait_counts(c, url, (0, 1, 0), "the new lease outlived the old receipt")
    c.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    wait_counts(c, url, (0, 0, 0), "after the delete")
    assert c.list_queue_tags(QueueUrl=url)["Tags"] == {"team": "orders"}
    fifo = c.get_queue_url(QueueName=f"{q}.fifo")["QueueUrl"]
    got = c.get_queue_attributes(QueueUrl=fifo, AttributeNames=["All"])["Attributes"]
    assert (got["FifoQueue"], got["ContentBasedDeduplication"]) == ("true", "true"), got
    with open(receipt_file + ".fifo") as f:
        first_id = f.read()
    again = c.send_message(QueueUrl=fifo, MessageBody="once", MessageGroupId="g")
    assert again["MessageId"] == first_id, "the deduplication window outlived the kill"
    wait_counts(c, fifo, (1, 0, 0), "one copy after the restart")


def wait_moved(c, source_arn, n, what):
    """Waits until the newest move task of the queue runs and has moved `n`; answers it."""
    deadline = time.monotonic() + WAIT_S
    while True:
        tasks = c.list_message_move_tasks(SourceArn=source_arn).get("Results", [])
        if tasks and tasks[0]["Status"] == "RUNNING" \
                and tasks[0]["ApproximateNumberOfMessagesMoved"] >= n:
            return tasks[0]
        assert time.monotonic() < deadline, f"{what}: tasks {tasks}, wanted {n} moved"
        time.sleep(POLL_S)


def send_many(c, url, prefix, n):
    for at in range(0, n, 10):
        c.send_message_batch(QueueUrl=url, Entries=[
            {"Id": f"e{i}", "MessageBody": f"{prefix}{i}"} for i in range(at, min(n, at + 10))])


def moves_persist_setup(endpoint, q, state_file):
    """Before a kill -9: dead-letter queue `q`-dlq (the RedrivePolicy target of `q`) and
    three move tasks from it to `q`-to: one completed (a0..a2), one cancelled and one
    running at one message a second (b0..b9 between them); the running one's handle and
    ApproximateNumberOfMessagesToMove go to `state_file`."""
    c = client(endpoint)
    dlq_name, to_name = f"{q}-dlq", f"{q}-to"
    dlq = create(c, dlq_name)
    create(c, q, RedrivePolicy=json.dumps(
        {"deadLetterTargetArn": arn(dlq_name), "maxReceiveCount": 1}))
    create(c, to_name)
    source, to = arn(dlq_name), arn(to_name)
    send_many(c, dlq, "a", 3)
    wait_counts(c, dlq, (3, 0, 0), "three in the DLQ")
    c.start_message_move_task(SourceArn=source, DestinationArn=to)
    wait_move(c, source, "COMPLETED", "the first move")
    send_many(c, dlq, "b", 10)
    wait_counts(c, dlq, (10, 0, 0), "ten more in the DLQ")
    slow = {"SourceArn": source, "DestinationArn": to, "MaxNumberOfMessagesPerSecond": 1}
    handle = c.start_message_move_task(**slow)["TaskHandle"]
    wait_moved(c, source, 1, "the second move's first message")
    c.cancel_message_move_task(TaskHandle=handle)
    wait_move(c, source, "CANCELLED", "the cancel")
    handle = c.start_message_move_task(**slow)["TaskHandle"]
    task = wait_moved(c, source, 1, "the third move's first message")
    with open(state_file, "w") as f:
        json.dump({"handle": handle, "to_move": task["ApproximateNumberOfMessagesToMove"]}, f)


def moves_persist_check(endpoint, q, state_file):
    """After the restart: the three tasks are listed, newest first; the running one runs
    on under its handle to its end; every message is in `q`-to exactly once."""
    c = client(endpoint)
    with open(state_file) as f:
        state = json.load(f)
    dlq_name, to_name = f"{q}-dlq", f"{q}-to"
    source = arn(dlq_name)
    tasks = c.list_message_move_tasks(SourceArn=source, MaxResults=10).get("Results", [])
    assert [t["Status"] for t in tasks] == ["RUNNING", "CANCELLED", "COMPLETED"], tasks
    running, cancelled, completed = tasks
    assert running["TaskHandle"] == state["handle"], (running, state)
    assert running["ApproximateNumberOfMessagesToMove"] == state["to_move"], (running, state)
    assert running["MaxNumberOfMessagesPerSecond"] == 1, running
    assert running["DestinationArn"] == arn(to_name), running
    assert 1 <= cancelled["ApproximateNumberOfMessagesMoved"] < 10, cancelled
    assert (completed["ApproximateNumberOfMessagesMoved"],
            completed["ApproximateNumberOfMessagesToMove"]) == (3, 3), completed
    # At one a second, up to 9 messages to go after the restart.
    done = wait_move(c, source, "COMPLETED", "the resumed move", timeout=30)
    # The count is journaled after each batch (here one message): a kill -9 may lose one.
    moved = done["ApproximateNumberOfMessagesMoved"]
    assert state["to_move"] - 1 <= moved <= state["to_move"], (done, state)
    dlq = c.get_queue_url(QueueName=dlq_name)["QueueUrl"]
    to = c.get_queue_url(QueueName=to_name)["QueueUrl"]
    wait_counts(c, dlq, (0, 0, 0), "the DLQ emptied")
    wait_counts(c, to, (13, 0, 0), "13 moved, none twice")
    got = receive_within(c, to, 13, "every message moved")
    want = [f"a{i}" for i in range(3)] + [f"b{i}" for i in range(10)]
    assert sorted(m["Body"] for m in got) == sorted(want), got
    # A handle from before the restart cancels nothing once the task has ended.
    expect_error(c, "ResourceNotFoundException", lambda: c.cancel_message_move_task(
        TaskHandle=state["handle"]), "the handle of the ended task")


def first_receive_persist_setup(endpoint, q, state_file):
    """Before a restart: one message in `q`, received once with
    ApproximateFirstReceiveTimestamp (written to `state_file`) and not deleted."""
    c = client(endpoint)
    url = create(c, q)
    c.send_message(QueueUrl=url, MessageBody="stamped")
    m = receive_within(c, url, 1, "the message", AttributeNames=[
        "ApproximateFirstReceiveTimestamp"])[0]
    with open(state_file, "w") as f:
        f.write(m["Attributes"]["ApproximateFirstReceiveTimestamp"])


def first_receive_persist_check(endpoint, q, state_file):
    """After the restart the message is received again (its lease ended with the broker)
    and its ApproximateFirstReceiveTimestamp is still the first receive's."""
    c = client(endpoint)
    with open(state_file) as f:
        first = int(f.read())
    url = c.get_queue_url(QueueName=q)["QueueUrl"]
    m = receive_within(c, url, 1, "the message after the restart", AttributeNames=["All"])[0]
    assert m["Attributes"]["ApproximateReceiveCount"] == "2", m
    assert int(m["Attributes"]["ApproximateFirstReceiveTimestamp"]) == first, (m, first)
    c.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    wait_counts(c, url, (0, 0, 0), "after the delete")


def attempt_persist_setup(endpoint, q, state_file):
    """Before a kill -9: FIFO queue `q`.fifo with two messages of one group, received with
    ReceiveRequestAttemptId `retry-me` and not deleted (ids and receipts in `state_file`)."""
    c = client(endpoint)
    url = c.create_queue(QueueName=f"{q}.fifo", Attributes={
        "FifoQueue": "true", "ContentBasedDeduplication": "true"})["QueueUrl"]
    for body in ["g1", "g2"]:
        fifo_send(c, url, body, "g")
    got = receive(c, url, MaxNumberOfMessages=10, WaitTimeSeconds=2,
                  ReceiveRequestAttemptId="retry-me")
    assert sorted(m["Body"] for m in got) == ["g1", "g2"], got
    with open(state_file, "w") as f:
        json.dump({m["MessageId"]: m["ReceiptHandle"] for m in got}, f)


def attempt_persist_check(endpoint, q, state_file):
    """After the restart no lease is left, so the same attempt id receives afresh: the same
    messages, delivered once more, under new receipts that delete them; the old receipts
    are refused."""
    c = client(endpoint)
    with open(state_file) as f:
        before = json.load(f)
    url = c.get_queue_url(QueueName=f"{q}.fifo")["QueueUrl"]
    got = receive(c, url, MaxNumberOfMessages=10, WaitTimeSeconds=5, AttributeNames=["All"],
                  ReceiveRequestAttemptId="retry-me")
    assert sorted(m["MessageId"] for m in got) == sorted(before), (got, before)
    assert all(m["Attributes"]["ApproximateReceiveCount"] == "2" for m in got), got
    assert not {m["ReceiptHandle"] for m in got} & set(before.values()), "new receipts"
    for old in before.values():
        expect_error(c, "ReceiptHandleIsInvalid", lambda: c.delete_message(
            QueueUrl=url, ReceiptHandle=old), "a receipt from before the restart")
    for m in got:
        c.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    wait_counts(c, url, (0, 0, 0), "after the deletes")


CASES = {f.__name__: f for f in [
    md5_vectors, queue_lifecycle, list_queues_by_prefix_and_page, queue_attributes_round_trip,
    approximate_counts, send_receive_delete_with_attributes_and_md5,
    send_batch_answers_each_entry, receive_ten_and_delete_in_a_batch,
    long_poll_answers_when_a_message_arrives, visibility_timeout_and_stale_receipt,
    change_visibility, delays, redrive_to_dead_letter_queue, purge,
    missing_queue_and_bad_input, fair_queue_group_ids, tags, dead_letter_source_queues, redrive_allow_policy,
    message_move_tasks, system_attributes_and_first_receive,
    fifo_attributes_and_rules,
    fifo_queue_keeps_group_order_and_drops_duplicates,
    fifo_content_based_and_per_group_deduplication, fifo_receive_request_attempt_id, fill, consume_expect, urls_and_arns,
    persist_setup, persist_check, moves_persist_setup, moves_persist_check,
    first_receive_persist_setup, first_receive_persist_check, attempt_persist_setup,
    attempt_persist_check]}


def main():
    if len(ARGV) < 3 or ARGV[2] not in CASES:
        print(__doc__ + "\ncases: " + " ".join(CASES), file=sys.stderr)
        sys.exit(2)
    CASES[ARGV[2]](ARGV[1], *ARGV[3:])
    print(f"ok {ARGV[2]}", flush=True)


if __name__ == "__main__":
    main()
