"""Writes each SNS request as botocore 1.43.11 serializes it (no network) into OUT_DIR, one
form per call, for the SNS decoder tests (`python capture.py OUT_DIR`, the ci-venv)."""
import sys, os
import boto3, botocore

out_dir = sys.argv[1]
os.makedirs(out_dir, exist_ok=True)
c = boto3.client("sns", endpoint_url="http://127.0.0.1:1", region_name="us-east-1",
                 aws_access_key_id="test", aws_secret_access_key="test")
current = {}

def before_send(request, **kw):
    body = request.body or b""
    if isinstance(body, str):
        body = body.encode()
    with open(os.path.join(out_dir, current["name"] + ".form"), "wb") as f:
        f.write(body)
    print(current["name"], request.method, request.url, body[:400])
    raise SystemExit  # never reaches the network

c.meta.events.register("before-send", before_send)
T = "arn:aws:sns:us-east-1:000000000000:orders"
S = T + ":6b0e4c1a-0000-4000-8000-000000000001"
attrs = {
    "attrS": {"DataType": "String", "StringValue": "line\r\nmore <&>\"' é 😀"},
    "attrN": {"DataType": "Number", "StringValue": "-12.5e3"},
    "attrB": {"DataType": "Binary", "BinaryValue": bytes(range(256))},
    "attrA": {"DataType": "String.Array", "StringValue": "[\"a\", 1, true, null]"},
}
calls = [
    ("CreateTopic", dict(Name="orders", Attributes={"DisplayName": "Orders", "DeliveryPolicy": "{}"}, Tags=[{"Key": "team", "Value": "a"}, {"Key": "env", "Value": ""}])),
    ("CreateTopic-plain", dict(Name="orders")),
    ("CreateTopic-fifo", dict(Name="orders.fifo", Attributes={"FifoTopic": "true", "ContentBasedDeduplication": "true"})),
    ("DeleteTopic", dict(TopicArn=T)),
    ("ListTopics", dict(NextToken="dG9rZW4")),
    ("ListTopics-plain", dict()),
    ("GetTopicAttributes", dict(TopicArn=T)),
    ("SetTopicAttributes", dict(TopicArn=T, AttributeName="DisplayName", AttributeValue="New <&>")),
    ("SetTopicAttributes-novalue", dict(TopicArn=T, AttributeName="DisplayName")),
    ("Subscribe", dict(TopicArn=T, Protocol="sqs", Endpoint="arn:aws:sqs:us-east-1:000000000000:q1", Attributes={"RawMessageDelivery": "true", "FilterPolicy": "{\"k\": [\"v\"]}"}, ReturnSubscriptionArn=True)),
    ("Subscribe-plain", dict(TopicArn=T, Protocol="http")),
    ("ConfirmSubscription", dict(TopicArn=T, Token="abcd", AuthenticateOnUnsubscribe="true")),
    ("ConfirmSubscription-plain", dict(TopicArn=T, Token="abcd")),
    ("Unsubscribe", dict(SubscriptionArn=S)),
    ("ListSubscriptions", dict(NextToken="x")),
    ("ListSubscriptions-plain", dict()),
    ("ListSubscriptionsByTopic", dict(TopicArn=T, NextToken="x")),
    ("GetSubscriptionAttributes", dict(SubscriptionArn=S)),
    ("SetSubscriptionAttributes", dict(SubscriptionArn=S, AttributeName="FilterPolicy", AttributeValue="{\"k\": [{\"prefix\": \"a\"}]}")),
    ("Publish", dict(TopicArn=T, Message="body\r\n<&>\"' é 😀", Subject="Hi", MessageStructure="json", MessageAttributes=attrs, MessageDeduplicationId="d", MessageGroupId="g")),
    ("Publish-plain", dict(TopicArn=T, Message="hello")),
    ("Publish-target", dict(TargetArn=T, Message="hello")),
    ("Publish-phone", dict(PhoneNumber="+15555550100", Message="hello")),
    ("PublishBatch", dict(TopicArn=T, PublishBatchRequestEntries=[
        {"Id": "a", "Message": "one", "MessageAttributes": {"k": {"DataType": "String", "StringValue": "v"}, "b": {"DataType": "Binary", "BinaryValue": b"\x00\xff"}}},
        {"Id": "b-2_", "Message": "two", "Subject": "s", "MessageGroupId": "g", "MessageDeduplicationId": "d"},
        {"Id": "c", "Message": "three", "MessageStructure": "json"}])),
    ("PublishBatch-empty", dict(TopicArn=T, PublishBatchRequestEntries=[])),
    ("TagResource", dict(ResourceArn=T, Tags=[{"Key": "a", "Value": "b"}, {"Key": "c", "Value": "d"}])),
    ("UntagResource", dict(ResourceArn=T, TagKeys=["a", "c"])),
    ("ListTagsForResource", dict(ResourceArn=T)),
]
for name, kw in calls:
    op = name.split("-")[0]
    current["name"] = name
    try:
        getattr(c, botocore.xform_name(op))(**kw)
    except SystemExit:
        pass
print("protocol", c.meta.service_model.protocol, botocore.__version__)
