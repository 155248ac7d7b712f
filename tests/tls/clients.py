"""Real Python clients over TLS against the broker (tests/tls.rs runs each case).

  python clients.py CASE HOST:PORT CA_FILE [CERT KEY]

pika over amqps (publish, then get the message back) and boto3 over https with
verify=CA_FILE (SQS create, send, receive, delete). Prints `ok CASE` on success;
exits 3 when the library is missing (the test says how to install it).
"""
import ssl
import sys
import uuid


def pika_amqps(addr, ca):
    try:
        import pika
    except ImportError:
        print("pika is not installed (run .ci/run)")
        sys.exit(3)
    host, port = addr.rsplit(":", 1)
    context = ssl.create_default_context(cafile=ca)
    params = pika.ConnectionParameters(
        host=host,
        port=int(port),
        ssl_options=pika.SSLOptions(context, server_hostname="localhost"),
        connection_attempts=1,
        # Heartbeats every second: the broker's reads race its heartbeat timer, and a
        # read dropped by the timer must lose no TLS bytes.
        heartbeat=1,
        socket_timeout=10,
        blocked_connection_timeout=10,
    )
    conn = pika.BlockingConnection(params)
    ch = conn.channel()
    queue = "tls-" + uuid.uuid4().hex[:8]
    ch.queue_declare(queue=queue)
    ch.queue_declare(queue=queue + "-idle")
    ch.confirm_delivery()
    body = b"over amqps " + queue.encode()
    ch.basic_publish(exchange="", routing_key=queue, body=body)
    conn.sleep(3)
    for i in range(50):
        ch.basic_publish(exchange="", routing_key=queue + "-idle", body=bytes(i))
        conn.sleep(0.05)
    method, _props, got = ch.basic_get(queue=queue, auto_ack=True)
    assert method is not None, "no message came back"
    assert got == body, got
    conn.close()


def boto3_https(addr, ca):
    try:
        import boto3
        from botocore.config import Config
    except ImportError:
        print("boto3 is not installed (run .ci/run)")
        sys.exit(3)
    sqs = boto3.client(
        "sqs",
        endpoint_url="https://" + addr,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
        verify=ca,
        config=Config(retries={"max_attempts": 1}, connect_timeout=10, read_timeout=10),
    )
    name = "tls-" + uuid.uuid4().hex[:8]
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    # A queue URL handed out over TLS says https (clients may send to it).
    assert url.startswith("https://"), url
    sqs.send_message(QueueUrl=url, MessageBody="over https")
    got = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=5).get("Messages", [])
    assert [m["Body"] for m in got] == ["over https"], got
    sqs.delete_message(QueueUrl=url, ReceiptHandle=got[0]["ReceiptHandle"])


def boto3_untrusted(addr, ca):
    """A client that trusts another CA must refuse the broker's certificate."""
    try:
        import boto3
        from botocore.config import Config
        from botocore.exceptions import SSLError
    except ImportError:
        print("boto3 is not installed (run .ci/run)")
        sys.exit(3)
    sqs = boto3.client(
        "sqs",
        endpoint_url="https://" + addr,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
        verify=ca,
        config=Config(retries={"max_attempts": 1}, connect_timeout=10, read_timeout=10),
    )
    try:
        sqs.list_queues()
    except SSLError as e:
        assert "CERTIFICATE_VERIFY_FAILED" in str(e), e
        return
    raise AssertionError("a certificate from an untrusted CA was accepted")


CASES = {"pika_amqps": pika_amqps, "boto3_https": boto3_https, "boto3_untrusted": boto3_untrusted}

if __name__ == "__main__":
    case, addr, ca = sys.argv[1], sys.argv[2], sys.argv[3]
    CASES[case](addr, ca)
    print("ok " + case)
