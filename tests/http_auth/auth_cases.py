#!/usr/bin/env python3
"""boto3 against a broker started with --http-auth: requests signed with a configured key
and secret are served, the others get the error the SDK names.

Usage: auth_cases.py ENDPOINT SERVICE KEY SECRET EXPECT [--query]

SERVICE is sqs or sns; EXPECT is `ok`, or the error code the call must raise
(InvalidClientTokenId, SignatureDoesNotMatch, ...). `--query` puts $PEREGRINE_BOTO3_QUERY
(boto3/botocore 1.34.89, SQS's query protocol) first on sys.path. Prints `ok EXPECT` and
exits 0 when every check held; exit 3 means boto3 is missing.
"""

import os
import sys
import uuid

QUERY = "--query" in sys.argv
ARGV = [a for a in sys.argv if a != "--query"]
if QUERY:
    sys.path.insert(0, os.environ.get("PEREGRINE_BOTO3_QUERY", ""))
try:
    import boto3
    import botocore
    from botocore.config import Config
    from botocore.exceptions import ClientError
except ImportError:
    print("boto3 is not installed")
    sys.exit(3)


def main():
    endpoint, service, key, secret, expect = ARGV[1:6]
    client = boto3.client(service, endpoint_url=endpoint, region_name="us-east-1",
                          aws_access_key_id=key, aws_secret_access_key=secret,
                          config=Config(retries={"max_attempts": 1}, connect_timeout=5, read_timeout=15))
    protocol = client.meta.service_model.protocol
    assert protocol == ("query" if QUERY or service == "sns" else "json"), protocol
    if service == "sqs":
        call = lambda: sqs_round_trip(client)
    else:
        call = lambda: sns_call(client)
    if expect == "ok":
        call()
    else:
        try:
            call()
        except ClientError as e:
            code = e.response["Error"]["Code"]
            assert code == expect, (code, e.response)
            status = 400 if expect == "Throttling" else 403
            assert e.response["ResponseMetadata"]["HTTPStatusCode"] == status, e.response
            modeled = getattr(client.exceptions, expect, None)
            assert modeled is None or isinstance(e, modeled), type(e)
        else:
            raise AssertionError("the call was served, expected " + expect)
    print("ok", expect, service, protocol, botocore.__version__)


def sqs_round_trip(client):
    name = "auth-" + uuid.uuid4().hex[:12]
    url = client.create_queue(QueueName=name)["QueueUrl"]
    client.send_message(QueueUrl=url, MessageBody="signed")
    got = client.receive_message(QueueUrl=url, WaitTimeSeconds=5)["Messages"]
    assert [m["Body"] for m in got] == ["signed"], got
    client.delete_queue(QueueUrl=url)


def sns_call(client):
    name = "auth-" + uuid.uuid4().hex[:12]
    arn = client.create_topic(Name=name)["TopicArn"]
    listed = [t["TopicArn"] for t in client.list_topics()["Topics"]]
    assert arn in listed, listed
    client.delete_topic(TopicArn=arn)


if __name__ == "__main__":
    main()
