"""kafka-python against a running Peregrine: admin, a JSON producer with keys and a
consumer group from the earliest offset. Run by tests/kafka_tools.rs.

usage: kafka_python_check.py BOOTSTRAP TOPIC
"""
import json
import sys

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import NewTopic

MESSAGES = 100
USERS = 7


def main(bootstrap, topic):
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="py-admin")
    admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])
    assert topic in admin.list_topics(), "created topic is listed"

    producer = KafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        key_serializer=str.encode,
        value_serializer=lambda v: json.dumps(v).encode(),
    )
    for i in range(MESSAGES):
        producer.send(topic, key=f"user-{i % USERS}", value={"i": i, "user": i % USERS})
    producer.flush(timeout=20)
    producer.close()

    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id="py-group",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        value_deserializer=json.loads,
        consumer_timeout_ms=20000,
    )
    last = {}
    got = []
    partition_of = {}
    for m in consumer:
        key = m.key.decode()
        i = m.value["i"]
        assert m.value["user"] == int(key.split("-")[1]), m
        assert last.get(key, -1) < i, f"{key}: {i} after {last.get(key)}"
        assert partition_of.setdefault(key, m.partition) == m.partition, f"{key} moved"
        last[key] = i
        got.append(i)
        if len(got) == MESSAGES:
            break
    consumer.commit()
    consumer.close()
    assert sorted(got) == list(range(MESSAGES)), f"got {len(got)} messages"

    # kafka-python 3 renamed the group calls; accept either spelling.
    list_groups = getattr(admin, "list_groups", None) or admin.list_consumer_groups
    list_offsets = getattr(admin, "list_group_offsets", None) or admin.list_consumer_group_offsets
    listed = list_groups()
    def group_id(g):
        if isinstance(g, str):
            return g
        if isinstance(g, dict):
            return g.get("group_id") or g.get("group")
        return g[0] if isinstance(g, tuple) else getattr(g, "group_id", None)

    groups = [group_id(g) for g in listed]
    assert "py-group" in groups, listed
    offsets = list_offsets("py-group")
    # kafka-python 3 answers {group: {partition: offset}}, 2.x {partition: offset}.
    offsets = offsets.get("py-group", offsets)
    committed = [o.offset for o in offsets.values()]
    assert sum(committed) == MESSAGES, offsets
    admin.close()
    print(f"kafka-python ok: {len(got)} messages, per-key order kept, offsets committed")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
