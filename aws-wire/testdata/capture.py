"""Writes each SQS request as botocore serializes it (no network) into OUT_DIR, one file
per call, for the decoder tests: the JSON bodies with botocore 1.43.11, the query forms
with boto3/botocore 1.34.89 (`python capture.py OUT_DIR` in a venv with that version)."""
import sys, json, os
import boto3, botocore
from botocore.awsrequest import AWSResponse

out_dir = sys.argv[1]
os.makedirs(out_dir, exist_ok=True)
c = boto3.client("sqs", endpoint_url="http://127.0.0.1:1", region_name="us-east-1",
                 aws_access_key_id="test", aws_secret_access_key="test")
proto = c.meta.service_model.protocol
current = {}

class Raw:
    def stream(self, **kw):
        yield b""

def before_send(request, **kw):
    body = request.body or b""
    if isinstance(body, str):
        body = body.encode()
    target = request.headers.get("X-Amz-Target", b"")
    if isinstance(target, bytes): target = target.decode()
    ct = request.headers.get("Content-Type", b"")
    if isinstance(ct, bytes): ct = ct.decode()
    with open(os.path.join(out_dir, current["name"]), "wb") as f:
        f.write(body)
    print(current["name"], request.method, request.url, target, ct, body[:300])
    raise SystemExit  # never reaches the network

c.meta.events.register("before-send", before_send)
Q = "http://127.0.0.1:1/000000000000/orders"
attrs = {
    "attrS": {"DataType": "String", "StringValue": "line\r\nmore <&>\"' é 😀"},
    "attrN": {"DataType": "Number.float", "StringValue": "4563442423554324324264524243.32543234"},
    "attrB": {"DataType": "Binary", "BinaryValue": bytes(range(256))},
    "attrC": {"DataType": "String.custom", "StringValue": "x"},
}
calls = [
    ("CreateQueue", dict(QueueName="orders", Attributes={"VisibilityTimeout": "45", "DelaySeconds": "2", "RedrivePolicy": json.dumps({"deadLetterTargetArn": "arn:aws:sqs:us-east-1:000000000000:dlq", "maxReceiveCount": 2})})),
    ("CreateQueue-tags", dict(QueueName="orders", tags={"team": "a"})),
    ("CreateQueue-plain", dict(QueueName="orders")),
    ("GetQueueUrl", dict(QueueName="orders", QueueOwnerAWSAccountId="000000000000")),
    ("ListQueues", dict(QueueNamePrefix="p-", MaxResults=2, NextToken="cC0y")),
    ("ListQueues-plain", dict()),
    ("DeleteQueue", dict(QueueUrl=Q)),
    ("PurgeQueue", dict(QueueUrl=Q)),
    ("GetQueueAttributes", dict(QueueUrl=Q, AttributeNames=["All", "VisibilityTimeout"])),
    ("SetQueueAttributes", dict(QueueUrl=Q, Attributes={"VisibilityTimeout": "5", "MaximumMessageSize": "2048"})),
    ("SendMessage", dict(QueueUrl=Q, MessageBody="body\r\n<&>\"' é 😀", DelaySeconds=3, MessageAttributes=attrs)),
    ("SendMessage-plain", dict(QueueUrl=Q, MessageBody="hello")),
    ("SendMessage-fifo", dict(QueueUrl=Q, MessageBody="hello", MessageGroupId="g", MessageDeduplicationId="d")),
    ("SendMessage-system", dict(QueueUrl=Q, MessageBody="hello", MessageSystemAttributes={"AWSTraceHeader": {"DataType": "String", "StringValue": "Root=1"}})),
    ("SendMessageBatch", dict(QueueUrl=Q, Entries=[
        {"Id": "a", "MessageBody": "one", "MessageAttributes": {"k": {"DataType": "String", "StringValue": "v"}, "b": {"DataType": "Binary", "BinaryValue": b"\x00\xff"}}},
        {"Id": "b-2_", "MessageBody": "two\x00", "DelaySeconds": 901},
        {"Id": "c", "MessageBody": "three", "DelaySeconds": 0}])),
    ("ReceiveMessage", dict(QueueUrl=Q, AttributeNames=["All"], MessageSystemAttributeNames=["SentTimestamp", "ApproximateReceiveCount"], MessageAttributeNames=["attrS", "pre.*"], MaxNumberOfMessages=10, VisibilityTimeout=1, WaitTimeSeconds=20, ReceiveRequestAttemptId="x")),
    ("ReceiveMessage-plain", dict(QueueUrl=Q)),
    ("DeleteMessage", dict(QueueUrl=Q, ReceiptHandle="AQAAAAAAAAAB")),
    ("DeleteMessageBatch", dict(QueueUrl=Q, Entries=[{"Id": "0", "ReceiptHandle": "r0"}, {"Id": "1", "ReceiptHandle": "bogus"}])),
    ("ChangeMessageVisibility", dict(QueueUrl=Q, ReceiptHandle="r0", VisibilityTimeout=0)),
    ("ChangeMessageVisibilityBatch", dict(QueueUrl=Q, Entries=[{"Id": "a", "ReceiptHandle": "r0", "VisibilityTimeout": 10}, {"Id": "b", "ReceiptHandle": "r1", "VisibilityTimeout": 43200}])),
    ("TagQueue", dict(QueueUrl=Q, Tags={"team": "orders", "env": ""})),
    ("UntagQueue", dict(QueueUrl=Q, TagKeys=["team", "env"])),
    ("ListQueueTags", dict(QueueUrl=Q)),
    ("ListDeadLetterSourceQueues", dict(QueueUrl=Q, MaxResults=2, NextToken="cC0y")),
    ("ListDeadLetterSourceQueues-plain", dict(QueueUrl=Q)),
    ("StartMessageMoveTask", dict(SourceArn="arn:aws:sqs:us-east-1:000000000000:dlq", DestinationArn="arn:aws:sqs:us-east-1:000000000000:orders", MaxNumberOfMessagesPerSecond=50)),
    ("StartMessageMoveTask-plain", dict(SourceArn="arn:aws:sqs:us-east-1:000000000000:dlq")),
    ("ListMessageMoveTasks", dict(SourceArn="arn:aws:sqs:us-east-1:000000000000:dlq", MaxResults=5)),
    ("CancelMessageMoveTask", dict(TaskHandle="th-1")),
    ("SendMessage-trace", dict(QueueUrl=Q, MessageBody="hello", MessageSystemAttributes={"AWSTraceHeader": {"DataType": "String", "StringValue": "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1"}})),
    ("SendMessageBatch-trace", dict(QueueUrl=Q, Entries=[{"Id": "a", "MessageBody": "one", "MessageSystemAttributes": {"AWSTraceHeader": {"DataType": "String", "StringValue": "Root=1"}}}])),
]
for name, kw in calls:
    op = name.split("-")[0]
    current["name"] = name
    method = botocore.xform_name(op)
    try:
        getattr(c, method)(**kw)
    except SystemExit:
        pass
    except botocore.exceptions.ParamValidationError as e:
        kw.pop("MessageSystemAttributeNames", None)
        try:
            getattr(c, method)(**kw)
        except SystemExit:
            pass
print("protocol", proto, botocore.__version__)
