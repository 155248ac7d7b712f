"""Feeds the SNS answers `write_sns_answer_samples` wrote (PEREGRINE_SNS_SAMPLES=DIR cargo test
-p peregrine-aws-wire -- --ignored write_sns_answer_samples) to a real boto3 SNS client, as if
the server had sent them, and checks what the client makes of them: `python parse_answers.py
DIR` (botocore 1.43.11)."""
import os, sys
import boto3, botocore
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ClientError

folder = sys.argv[1]
c = boto3.client("sns", endpoint_url="http://127.0.0.1:1", region_name="us-east-1",
                 aws_access_key_id="test", aws_secret_access_key="test",
                 config=botocore.config.Config(retries={"max_attempts": 1}))
canned = {}

class Raw:
    def __init__(self, body): self.body = body
    def stream(self, **kw): yield self.body

c.meta.events.register("before-send", lambda request, **kw: AWSResponse(
    request.url, canned["status"], canned["headers"], Raw(canned["body"])))
T = "arn:aws:sns:us-east-1:000000000000:orders"
S = T + ":6b0e4c1a-0000-4000-8000-000000000001"
calls = {
    "CreateTopic": lambda: c.create_topic(Name="t"),
    "DeleteTopic": lambda: c.delete_topic(TopicArn=T),
    "ListTopics": lambda: c.list_topics(),
    "GetTopicAttributes": lambda: c.get_topic_attributes(TopicArn=T),
    "SetTopicAttributes": lambda: c.set_topic_attributes(TopicArn=T, AttributeName="DisplayName", AttributeValue="x"),
    "Subscribe": lambda: c.subscribe(TopicArn=T, Protocol="sqs", Endpoint="e"),
    "ConfirmSubscription": lambda: c.confirm_subscription(TopicArn=T, Token="t"),
    "Unsubscribe": lambda: c.unsubscribe(SubscriptionArn=S),
    "ListSubscriptions": lambda: c.list_subscriptions(),
    "ListSubscriptionsByTopic": lambda: c.list_subscriptions_by_topic(TopicArn=T),
    "GetSubscriptionAttributes": lambda: c.get_subscription_attributes(SubscriptionArn=S),
    "SetSubscriptionAttributes": lambda: c.set_subscription_attributes(SubscriptionArn=S, AttributeName="RawMessageDelivery", AttributeValue="true"),
    "Publish": lambda: c.publish(TopicArn=T, Message="m"),
    "PublishBatch": lambda: c.publish_batch(TopicArn=T, PublishBatchRequestEntries=[{"Id": "a", "Message": "m"}, {"Id": "b", "Message": "m"}]),
    "TagResource": lambda: c.tag_resource(ResourceArn=T, Tags=[{"Key": "a", "Value": "b"}]),
    "UntagResource": lambda: c.untag_resource(ResourceArn=T, TagKeys=["a"]),
    "ListTagsForResource": lambda: c.list_tags_for_resource(ResourceArn=T),
}
ATTRS = {"TopicArn": T, "DisplayName": "<&> é\r\n"}
SUBS = [{"SubscriptionArn": T + ":sub%d" % n, "Owner": "000000000000", "Protocol": "sqs",
         "Endpoint": "arn:aws:sqs:us-east-1:000000000000:q%d" % n, "TopicArn": T} for n in (1, 2)]
expect = {
    "CreateTopic": {"TopicArn": T},
    "DeleteTopic": {}, "SetTopicAttributes": {}, "Unsubscribe": {}, "SetSubscriptionAttributes": {},
    "TagResource": {}, "UntagResource": {},
    "ListTopics": {"Topics": [{"TopicArn": T}, {"TopicArn": T + "2"}], "NextToken": "tok"},
    "GetTopicAttributes": {"Attributes": ATTRS},
    "GetSubscriptionAttributes": {"Attributes": ATTRS},
    "Subscribe": {"SubscriptionArn": S},
    "ConfirmSubscription": {"SubscriptionArn": S},
    "ListSubscriptions": {"Subscriptions": SUBS, "NextToken": "tok"},
    "ListSubscriptionsByTopic": {"Subscriptions": SUBS[:1]},
    "Publish": {"MessageId": "mid-", "SequenceNumber": "00000000000000000001"},
    "PublishBatch": {"Successful": [{"Id": "a", "MessageId": "mid-a"}],
                     "Failed": [{"Id": "b", "Code": "InvalidParameter", "Message": "Invalid parameter: Empty message", "SenderFault": True}]},
    "ListTagsForResource": {"Tags": [{"Key": "a", "Value": "b"}, {"Key": "c", "Value": ""}]},
}
failures = 0
for name in sorted(os.listdir(folder)):
    body = open(os.path.join(folder, name), "rb").read()
    stem, kind = name.rsplit(".", 1)
    if kind == "ok":
        canned.update(status=200, headers={"x-amzn-RequestId": "req", "Content-Type": "text/xml"}, body=body)
        out = calls[stem]()
        meta = out.pop("ResponseMetadata", {})
        ok = out == expect[stem] and meta.get("RequestId") == "req"
        print("ok " if ok else "BAD", name, repr(out)[:200])
    else:
        status, code = stem.split("-", 1)
        canned.update(status=int(status), headers={"x-amzn-RequestId": "req", "Content-Type": "text/xml"}, body=body)
        try:
            c.list_topics()
            ok = False
            print("BAD", name, "no error raised")
        except ClientError as e:
            err = e.response["Error"]
            # The exception class botocore's model gives this code, where it has one.
            modeled = {s.metadata.get("error", {}).get("code"): s.name for s in c.meta.service_model.error_shapes}.get(code)
            cls_ok = modeled is None or type(e).__name__ == modeled
            ok = (cls_ok and err["Code"] == code and err["Message"] == "msg <&>"
                  and e.response["ResponseMetadata"]["HTTPStatusCode"] == int(status)
                  and e.response["ResponseMetadata"]["RequestId"] == "req")
            print("ok " if ok else "BAD", name, type(e).__name__, err)
    failures += not ok
print("botocore", botocore.__version__, "failures", failures)
sys.exit(1 if failures else 0)
