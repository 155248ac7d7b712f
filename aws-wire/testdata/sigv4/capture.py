"""Writes requests exactly as botocore signs them (no network) into OUT_DIR, for the SigV4
tests: `python capture.py OUT_DIR` (botocore 1.43.11: SQS JSON and SNS query; with
PYTHONPATH=target/ci-sqs-query, botocore 1.34.89: SQS query). Access key AKIDPEREGRINE,
secret "peregrine/secret+key". Each file: `METHOD TARGET`, the headers as sent, a blank
line, the body."""
import sys, os
import boto3, botocore

out_dir = sys.argv[1]
os.makedirs(out_dir, exist_ok=True)
current = {}

def before_send(request, **kw):
    body = request.body or b""
    if isinstance(body, str):
        body = body.encode()
    path = request.url.split("127.0.0.1:9324", 1)[1] or "/"
    lines = ["%s %s" % (request.method, path)]
    for k, v in request.headers.items():
        if isinstance(v, bytes):
            v = v.decode()
        lines.append("%s: %s" % (k, v))
    # The Host header is added by the HTTP client after signing; botocore signed it.
    lines.append("Host: 127.0.0.1:9324")
    with open(os.path.join(out_dir, current["name"] + ".http"), "wb") as f:
        f.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
    print(current["name"], lines[0])
    raise SystemExit

for service, calls in [
    ("sqs", [("create_queue", dict(QueueName="orders", Attributes={"DelaySeconds": "1"}))]),
    ("sns", [("publish", dict(TopicArn="arn:aws:sns:us-east-1:000000000000:t", Message="hé <&>"))]),
]:
    c = boto3.client(service, endpoint_url="http://127.0.0.1:9324", region_name="eu-west-3",
                     aws_access_key_id="AKIDPEREGRINE", aws_secret_access_key="peregrine/secret+key")
    c.meta.events.register("before-send", before_send)
    for method, kw in calls:
        current["name"] = "%s-%s-%s" % (service, c.meta.service_model.protocol, botocore.__version__)
        try:
            getattr(c, method)(**kw)
        except SystemExit:
            pass
