"""Feeds the answers `write_answer_samples` wrote (PEREGRINE_WIRE_SAMPLES=DIR cargo test -p
peregrine-aws-wire -- --ignored write_answer_samples) to a real boto3 client, as if the
server had sent them, and checks what the client makes of them:
`python parse_answers.py DIR json` (botocore 1.43.11) or `... DIR query` (1.34.89)."""
import os, sys
import boto3, botocore
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ClientError

dir_, wire = sys.argv[1], sys.argv[2]
folder = os.path.join(dir_, wire)
c = boto3.client("sqs", endpoint_url="http://127.0.0.1:1", region_name="us-east-1",
                 aws_access_key_id="test", aws_secret_access_key="test",
                 config=botocore.config.Config(retries={"max_attempts": 1}))
assert c.meta.service_model.protocol == wire, c.meta.service_model.protocol
canned = {}

class Raw:
    def __init__(self, body): self.body = body
    def stream(self, **kw): yield self.body

def before_send(request, **kw):
    return AWSResponse(request.url, canned["status"], canned["headers"], Raw(canned["body"]))

c.meta.events.register("before-send", before_send)
Q = "http://127.0.0.1:1/000000000000/orders"
calls = {
    "CreateQueue": lambda: c.create_queue(QueueName="q"),
    "GetQueueUrl": lambda: c.get_queue_url(QueueName="q"),
    "ListQueues": lambda: c.list_queues(),
    "DeleteQueue": lambda: c.delete_queue(QueueUrl=Q),
    "PurgeQueue": lambda: c.purge_queue(QueueUrl=Q),
    "GetQueueAttributes": lambda: c.get_queue_attributes(QueueUrl=Q, AttributeNames=["All"]),
    "SetQueueAttributes": lambda: c.set_queue_attributes(QueueUrl=Q, Attributes={"DelaySeconds": "1"}),
    # The real client checks MD5s of what it sent against the answer: send what the samples hashed.
    "SendMessage": lambda: c.send_message(QueueUrl=Q, MessageBody="body", MessageAttributes=ATTRS),
    "SendMessageBatch": lambda: c.send_message_batch(QueueUrl=Q, Entries=[
        {"Id": "e1", "MessageBody": "body", "MessageAttributes": ATTRS}, {"Id": "e2", "MessageBody": "x"}]),
    "ReceiveMessage": lambda: c.receive_message(QueueUrl=Q, MessageAttributeNames=["All"]),
    "DeleteMessage": lambda: c.delete_message(QueueUrl=Q, ReceiptHandle="r"),
    "DeleteMessageBatch": lambda: c.delete_message_batch(QueueUrl=Q, Entries=[{"Id": "a", "ReceiptHandle": "r"}]),
    "ChangeMessageVisibility": lambda: c.change_message_visibility(QueueUrl=Q, ReceiptHandle="r", VisibilityTimeout=1),
    "ChangeMessageVisibilityBatch": lambda: c.change_message_visibility_batch(QueueUrl=Q, Entries=[{"Id": "a", "ReceiptHandle": "r", "VisibilityTimeout": 1}]),
    "TagQueue": lambda: c.tag_queue(QueueUrl=Q, Tags={"a": "b"}),
    "UntagQueue": lambda: c.untag_queue(QueueUrl=Q, TagKeys=["a"]),
    "ListQueueTags": lambda: c.list_queue_tags(QueueUrl=Q),
    "ListDeadLetterSourceQueues": lambda: c.list_dead_letter_source_queues(QueueUrl=Q),
    "StartMessageMoveTask": lambda: c.start_message_move_task(SourceArn="arn:aws:sqs:us-east-1:000000000000:dlq"),
    "CancelMessageMoveTask": lambda: c.cancel_message_move_task(TaskHandle="th-1"),
    "ListMessageMoveTasks": lambda: c.list_message_move_tasks(SourceArn="arn:aws:sqs:us-east-1:000000000000:dlq"),
}
ATTRS = {"attrB": {"DataType": "Binary", "BinaryValue": bytes(range(256))},
         "attrS": {"DataType": "String.custom", "StringValue": "line\r\nmore <&>\"' é 😀"}}
BODY = "body\r\n<&>\"' é 😀"
failures = 0
for name in sorted(os.listdir(folder)):
    path = os.path.join(folder, name)
    if name.endswith(".headers"):
        continue
    body = open(path, "rb").read()
    stem, kind = name.rsplit(".", 1)
    if kind == "ok":
        action = stem.split("-", 1)[1]
        canned.update(status=200, headers={"x-amzn-RequestId": "req",
                      "Content-Type": "application/x-amz-json-1.0" if wire == "json" else "text/xml"}, body=body)
        out = calls[action]()
        out.pop("ResponseMetadata", None)
        checks = {
            "ReceiveMessage": lambda o: (not o.get("Messages")) or (
                o["Messages"][0]["Body"] == BODY
                and o["Messages"][0]["MessageAttributes"]["attrB"]["BinaryValue"] == bytes(range(256))
                and o["Messages"][0]["MessageAttributes"]["attrS"]["StringValue"] == ATTRS["attrS"]["StringValue"]
                and o["Messages"][0]["Attributes"]["ApproximateReceiveCount"] == "1"),
            "SendMessageBatch": lambda o: o["Successful"][0]["Id"] == "e1" and o["Failed"][0]["SenderFault"] is True
                and o["Failed"][0]["Code"] == "InvalidMessageContents",
            "DeleteMessageBatch": lambda o: o["Successful"] == [{"Id": "a"}] and o["Failed"][0]["Id"] == "e2",
            "ListQueues": lambda o: o == {} or (len(o["QueueUrls"]) == 2 and "NextToken" in o),
            "GetQueueAttributes": lambda o: o["Attributes"]["VisibilityTimeout"] == "30",
            "SendMessage": lambda o: o["SequenceNumber"] == "00000000000000000009"
                and len(o["MD5OfMessageSystemAttributes"]) == 32,
            "ListQueueTags": lambda o: o["Tags"] == {"team": "<&>", "env": ""},
            "ListDeadLetterSourceQueues": lambda o: o["queueUrls"] == [Q.replace("127.0.0.1:1", "127.0.0.1:1")]
                and "NextToken" in o,
            "StartMessageMoveTask": lambda o: o["TaskHandle"] == "th-1",
            "CancelMessageMoveTask": lambda o: o["ApproximateNumberOfMessagesMoved"] == 3,
            "ListMessageMoveTasks": lambda o: len(o["Results"]) == 2
                and o["Results"][0]["TaskHandle"] == "th-1" and o["Results"][0]["ApproximateNumberOfMessagesToMove"] == 5
                and o["Results"][1]["FailureReason"] == "<gone>" and "TaskHandle" not in o["Results"][1],
        }
        ok = checks.get(action, lambda o: True)(out)
        print("ok " if ok else "BAD", name, repr(out)[:160])
        failures += not ok
    else:
        headers = dict(line.split(": ", 1) for line in open(path[:-4] + ".headers").read().splitlines())
        status = int(stem.split("-")[0])
        shape = stem.split("-", 1)[1]
        headers["Content-Type"] = "application/x-amz-json-1.0" if wire == "json" else "text/xml"
        canned.update(status=status, headers=headers, body=body)
        try:
            c.list_queues()
            print("BAD", name, "no error raised"); failures += 1
        except ClientError as e:
            err = e.response["Error"]
            modeled = getattr(c.exceptions, shape, None)
            cls_ok = modeled is None or isinstance(e, modeled)
            ok = cls_ok and err.get("Message") == "msg <&>" and e.response["ResponseMetadata"]["HTTPStatusCode"] == status
            print("ok " if ok else "BAD", name, type(e).__name__, err)
            failures += not ok
print("protocol", wire, "botocore", botocore.__version__, "failures", failures)
sys.exit(1 if failures else 0)
