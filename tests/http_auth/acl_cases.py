#!/usr/bin/env python3
"""boto3 against a broker with --acls (tests/http_auth.rs runs each case): what a
caller's ACLs do not allow is refused with the service's own error and changes nothing.

Usage: acl_cases.py CASE ENDPOINT ADMIN_KEY ADMIN_SECRET KEY SECRET [--query]

ADMIN_KEY signs as a super-user; KEY as a caller with no ACL (or the ones the test set).
Cases:
  sqs_denied  ADMIN makes a queue with one message; KEY's SendMessage, ReceiveMessage,
              GetQueueAttributes, PurgeQueue, DeleteQueue and CreateQueue get
              AccessDenied (403), its ListQueues does not show the queue, and the queue
              still holds exactly the one message.
  sns_denied  ADMIN makes a topic; KEY's Publish, Subscribe and DeleteTopic get
              AuthorizationError (403), its ListTopics does not show the topic, and the
              topic is still there.
  sns_confirm ADMIN subscribes two http endpoints (served here) to a topic. KEY's signed
              ConfirmSubscription with the first token gets AuthorizationError, as does
              an unsigned one (a SubscribeURL GET) asking AuthenticateOnUnsubscribe=true;
              the subscription stays pending. The plain SubscribeURL GET confirms (the
              token is the proof), and ADMIN's signed confirmation of the second one is
              served.
  sqs_allowed KEY may Write and Read queues prefixed `acl-ok-` (the test added the ACLs):
              it sends and receives there, and is still refused on another queue.
  mtls_unsigned ENDPOINT CA CERT KEY EXPECT (other arguments): unsigned requests over
              https with a client certificate; EXPECT `ok` (served as the certificate's
              subject) or the error code.
Prints `ok CASE` when every check held; exit 3 means boto3 is missing.
"""

import http.server
import json
import os
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

WAIT_S = 10

QUERY = "--query" in sys.argv
ARGV = [a for a in sys.argv if a != "--query"]
if QUERY:
    sys.path.insert(0, os.environ.get("PEREGRINE_BOTO3_QUERY", ""))
try:
    import boto3
    from botocore.config import Config
    from botocore.exceptions import ClientError
except ImportError:
    print("boto3 is not installed")
    sys.exit(3)


def client(service, endpoint, key, secret):
    return boto3.client(service, endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id=key, aws_secret_access_key=secret,
                        config=Config(retries={"max_attempts": 1}, connect_timeout=5,
                                      read_timeout=15))


def refused(code, call, what):
    try:
        call()
    except ClientError as e:
        got = e.response["Error"]["Code"]
        assert got == code, (what, got, e.response)
        assert e.response["ResponseMetadata"]["HTTPStatusCode"] == 403, (what, e.response)
        return
    raise AssertionError(f"{what} was served, expected {code}")


def sqs_denied(admin, caller):
    name = "acl-" + uuid.uuid4().hex[:12]
    url = admin.create_queue(QueueName=name)["QueueUrl"]
    admin.send_message(QueueUrl=url, MessageBody="kept")
    calls = {
        "SendMessage": lambda: caller.send_message(QueueUrl=url, MessageBody="denied"),
        "SendMessageBatch": lambda: caller.send_message_batch(
            QueueUrl=url, Entries=[{"Id": "1", "MessageBody": "denied"}]),
        "ReceiveMessage": lambda: caller.receive_message(QueueUrl=url),
        "GetQueueAttributes": lambda: caller.get_queue_attributes(
            QueueUrl=url, AttributeNames=["All"]),
        "SetQueueAttributes": lambda: caller.set_queue_attributes(
            QueueUrl=url, Attributes={"VisibilityTimeout": "5"}),
        "GetQueueUrl": lambda: caller.get_queue_url(QueueName=name),
        "PurgeQueue": lambda: caller.purge_queue(QueueUrl=url),
        "DeleteQueue": lambda: caller.delete_queue(QueueUrl=url),
        "CreateQueue": lambda: caller.create_queue(QueueName="acl-new-" + uuid.uuid4().hex[:8]),
    }
    for what, call in calls.items():
        refused("AccessDenied", call, what)
    listed = caller.list_queues(QueueNamePrefix=name).get("QueueUrls", [])
    assert listed == [], listed
    assert url in admin.list_queues(QueueNamePrefix=name).get("QueueUrls", [])
    attrs = admin.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert attrs["ApproximateNumberOfMessages"] == "1", attrs
    assert attrs["VisibilityTimeout"] == "30", attrs
    got = admin.receive_message(QueueUrl=url, WaitTimeSeconds=2)["Messages"]
    assert [m["Body"] for m in got] == ["kept"], got
    admin.delete_queue(QueueUrl=url)


def sns_denied(admin, caller):
    name = "acl-" + uuid.uuid4().hex[:12]
    arn = admin.create_topic(Name=name)["TopicArn"]
    calls = {
        "Publish": lambda: caller.publish(TopicArn=arn, Message="denied"),
        "Subscribe": lambda: caller.subscribe(TopicArn=arn, Protocol="http",
                                              Endpoint="http://127.0.0.1:9/"),
        "GetTopicAttributes": lambda: caller.get_topic_attributes(TopicArn=arn),
        "DeleteTopic": lambda: caller.delete_topic(TopicArn=arn),
        "CreateTopic": lambda: caller.create_topic(Name="acl-new-" + uuid.uuid4().hex[:8]),
    }
    for what, call in calls.items():
        refused("AuthorizationError", call, what)
    listed = [t["TopicArn"] for t in caller.list_topics()["Topics"]]
    assert arn not in listed, listed
    admin.get_topic_attributes(TopicArn=arn)
    assert admin.list_subscriptions_by_topic(TopicArn=arn)["Subscriptions"] == []
    admin.delete_topic(TopicArn=arn)


def confirmation_tokens(n):
    """A local HTTP endpoint and a function waiting for the first `n` subscription
    confirmations posted to it: {path: (token, SubscribeURL)}."""
    got = {}
    cond = threading.Condition()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
            with cond:
                if body.get("Type") == "SubscriptionConfirmation":
                    got[self.path] = (body["Token"], body["SubscribeURL"])
                    cond.notify_all()
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()

    def wait():
        deadline = time.monotonic() + WAIT_S
        with cond:
            while len(got) < n:
                left = deadline - time.monotonic()
                assert left > 0, f"{len(got)} of {n} confirmations within {WAIT_S} s"
                cond.wait(left)
            return dict(got)

    return server, f"http://127.0.0.1:{server.server_address[1]}", wait


def counts(admin, arn):
    got = admin.get_topic_attributes(TopicArn=arn)["Attributes"]
    return got["SubscriptionsConfirmed"], got["SubscriptionsPending"]


def sns_confirm(admin, caller):
    arn = admin.create_topic(Name="acl-" + uuid.uuid4().hex[:12])["TopicArn"]
    server, url, wait = confirmation_tokens(2)
    admin.subscribe(TopicArn=arn, Protocol="http", Endpoint=url + "/one")
    admin.subscribe(TopicArn=arn, Protocol="http", Endpoint=url + "/two")
    tokens = wait()
    token, subscribe_url = tokens["/one"]
    refused("AuthorizationError", lambda: caller.confirm_subscription(TopicArn=arn, Token=token),
            "a signed ConfirmSubscription without Read on the topic")
    assert counts(admin, arn) == ("0", "2"), counts(admin, arn)
    try:
        urllib.request.urlopen(subscribe_url + "&AuthenticateOnUnsubscribe=true",
                               timeout=WAIT_S)
        raise AssertionError("an unsigned AuthenticateOnUnsubscribe confirmation was served")
    except urllib.error.HTTPError as e:
        body = e.read().decode()
        assert e.code == 403 and "<Code>AuthorizationError</Code>" in body, (e.code, body)
    assert counts(admin, arn) == ("0", "2"), counts(admin, arn)
    with urllib.request.urlopen(subscribe_url, timeout=WAIT_S) as r:
        assert "<SubscriptionArn>" + arn + ":" in r.read().decode()
    assert counts(admin, arn) == ("1", "1"), counts(admin, arn)
    admin.confirm_subscription(TopicArn=arn, Token=tokens["/two"][0])
    assert counts(admin, arn) == ("2", "0"), counts(admin, arn)
    admin.delete_topic(TopicArn=arn)
    server.shutdown()


def sqs_allowed(admin, caller):
    name = "acl-ok-" + uuid.uuid4().hex[:12]
    url = admin.create_queue(QueueName=name)["QueueUrl"]
    caller.send_message(QueueUrl=url, MessageBody="allowed")
    got = caller.receive_message(QueueUrl=url, WaitTimeSeconds=5)["Messages"]
    assert [m["Body"] for m in got] == ["allowed"], got
    caller.delete_message(QueueUrl=url, ReceiptHandle=got[0]["ReceiptHandle"])
    other = admin.create_queue(QueueName="acl-no-" + uuid.uuid4().hex[:12])["QueueUrl"]
    refused("AccessDenied", lambda: caller.send_message(QueueUrl=other, MessageBody="x"),
            "SendMessage elsewhere")
    admin.delete_queue(QueueUrl=url)
    admin.delete_queue(QueueUrl=other)


def mtls_unsigned(endpoint, ca, cert, key, expect):
    """Unsigned SQS requests over https with a client certificate: served as the
    certificate's subject (EXPECT `ok`: a round trip), or refused with EXPECT."""
    from botocore import UNSIGNED
    sqs = boto3.client("sqs", endpoint_url=endpoint, region_name="us-east-1", verify=ca,
                       config=Config(signature_version=UNSIGNED, client_cert=(cert, key),
                                     retries={"max_attempts": 1}, connect_timeout=5,
                                     read_timeout=15))
    name = "mtls-" + uuid.uuid4().hex[:12]
    if expect != "ok":
        refused(expect, lambda: sqs.create_queue(QueueName=name), "CreateQueue")
        return
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="by certificate")
    got = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=5)["Messages"]
    assert [m["Body"] for m in got] == ["by certificate"], got
    sqs.delete_queue(QueueUrl=url)


def main():
    if ARGV[1] == "mtls_unsigned":
        mtls_unsigned(*ARGV[2:7])
        print("ok mtls_unsigned", ARGV[6])
        return
    case, endpoint, admin_key, admin_secret, key, secret = ARGV[1:7]
    service = "sns" if case.startswith("sns") else "sqs"
    admin = client(service, endpoint, admin_key, admin_secret)
    caller = client(service, endpoint, key, secret)
    {"sqs_denied": sqs_denied, "sns_denied": sns_denied, "sns_confirm": sns_confirm,
     "sqs_allowed": sqs_allowed}[case](
        admin, caller)
    print("ok", case, caller.meta.service_model.protocol)


if __name__ == "__main__":
    main()
