"""Kafka SASL through Python clients, one case per run, driven by tests/kafka_sasl.rs:

    python clients.py admin BOOTSTRAP
    python clients.py kafka-python BOOTSTRAP MECHANISM USER PASSWORD TOPIC

admin: confluent-kafka's AdminClient creates SCRAM users with alter_user_scram_credentials
(alice: SCRAM-SHA-256 and SCRAM-SHA-512; bob: SCRAM-SHA-256 with 8192 iterations), reads
them back with describe_user_scram_credentials, and checks Kafka's refusals (too few
iterations, deleting or describing a credential that does not exist).
kafka-python: produces to TOPIC and reads it back with the given SASL mechanism (PLAIN or
SCRAM-SHA-256/512), then checks that a wrong password is refused.

Prints `ok CASE` on success; exits 3 when a library cannot be imported.
"""

import sys
import time
import uuid

# The longest one wait takes, in seconds.
TIMEOUT = 20


def fail(what):
    print(f"FAIL: {what}")
    sys.exit(1)


def admin(bootstrap):
    try:
        from confluent_kafka import KafkaError, KafkaException
        from confluent_kafka.admin import (
            AdminClient,
            ScramCredentialInfo,
            ScramMechanism,
            UserScramCredentialDeletion,
            UserScramCredentialUpsertion,
        )
    except ImportError as e:
        print(f"confluent_kafka not importable: {e}")
        sys.exit(3)
    client = AdminClient({"bootstrap.servers": bootstrap})

    def alter(changes):
        futures = client.alter_user_scram_credentials(changes)
        out = {}
        for user, f in futures.items():
            try:
                f.result(TIMEOUT)
                out[user] = None
            except KafkaException as e:
                out[user] = e.args[0]
        return out

    sha256, sha512 = ScramMechanism.SCRAM_SHA_256, ScramMechanism.SCRAM_SHA_512
    got = alter(
        [
            UserScramCredentialUpsertion(
                "alice", ScramCredentialInfo(sha256, 4096), b"alice-secret"
            ),
            UserScramCredentialUpsertion(
                "alice", ScramCredentialInfo(sha512, 4096), b"alice-secret"
            ),
            UserScramCredentialUpsertion(
                "bob", ScramCredentialInfo(sha256, 8192), b"bob-secret"
            ),
        ]
    )
    if got != {"alice": None, "bob": None}:
        fail(f"upsertions: {got}")

    described = client.describe_user_scram_credentials().result(TIMEOUT)
    seen = {
        user: sorted((c.mechanism, c.iterations) for c in d.scram_credential_infos)
        for user, d in described.items()
    }
    want = {
        "alice": sorted([(sha256, 4096), (sha512, 4096)]),
        "bob": [(sha256, 8192)],
    }
    if seen != want:
        fail(f"described {seen}, want {want}")

    # Refusals: nothing of the refused user changes.
    got = alter(
        [
            UserScramCredentialUpsertion(
                "carol", ScramCredentialInfo(sha256, 1000), b"carol-secret"
            ),
            UserScramCredentialDeletion("bob", sha512),
        ]
    )
    if got["carol"] is None or got["carol"].code() != KafkaError.UNACCEPTABLE_CREDENTIAL:
        fail(f"1000 iterations: {got['carol']}")
    if got["bob"] is None or got["bob"].code() != KafkaError.RESOURCE_NOT_FOUND:
        fail(f"deleting a missing credential: {got['bob']}")
    futures = client.describe_user_scram_credentials(["carol", "bob"])
    try:
        futures["carol"].result(TIMEOUT)
        fail("carol was created with 1000 iterations")
    except KafkaException as e:
        if e.args[0].code() != KafkaError.RESOURCE_NOT_FOUND:
            fail(f"describing carol: {e}")
    bob = futures["bob"].result(TIMEOUT)
    if [(c.mechanism, c.iterations) for c in bob.scram_credential_infos] != [(sha256, 8192)]:
        fail(f"bob changed: {bob}")
    print("ok admin")


def kafka_python(bootstrap, mechanism, user, password, topic):
    try:
        from kafka import KafkaConsumer, KafkaProducer
        from kafka.errors import KafkaError
    except ImportError as e:
        print(f"kafka-python not importable: {e}")
        sys.exit(3)
    common = {
        "bootstrap_servers": bootstrap,
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": mechanism,
        "sasl_plain_username": user,
        "sasl_plain_password": password,
    }
    producer = KafkaProducer(acks="all", **common)
    values = [f"{mechanism} {i} {uuid.uuid4()}".encode() for i in range(10)]
    for v in values:
        producer.send(topic, v).get(timeout=TIMEOUT)
    producer.close()
    consumer = KafkaConsumer(
        topic,
        group_id=f"g-{uuid.uuid4()}",
        auto_offset_reset="earliest",
        consumer_timeout_ms=TIMEOUT * 1000,
        **common,
    )
    got = []
    deadline = time.time() + TIMEOUT
    for m in consumer:
        got.append(m.value)
        if len(got) >= len(values) or time.time() > deadline:
            break
    consumer.close()
    if got != values:
        fail(f"read back {len(got)} of {len(values)}: {got[:3]}")

    wrong = dict(common, sasl_plain_password=password + "-wrong")
    try:
        p = KafkaProducer(request_timeout_ms=5000, max_block_ms=8000, **wrong)
        p.send(topic, b"must not arrive").get(timeout=10)
        fail("a wrong password was accepted")
    except KafkaError as e:
        print(f"wrong password refused: {type(e).__name__}: {e}")
    print(f"ok kafka-python {mechanism}")


if __name__ == "__main__":
    case = sys.argv[1] if len(sys.argv) > 1 else ""
    if case == "admin" and len(sys.argv) == 3:
        admin(sys.argv[2])
    elif case == "kafka-python" and len(sys.argv) == 7:
        kafka_python(*sys.argv[2:])
    else:
        print(__doc__)
        sys.exit(2)
