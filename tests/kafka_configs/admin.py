"""Topic configs, topic operations and group offsets through real admin clients, for
tests/kafka_configs.rs: confluent-kafka's AdminClient (librdkafka's
IncrementalAlterConfigs, AlterConfigs, DescribeConfigs and Metadata with authorized
operations) and kafka-python's KafkaAdminClient (OffsetDelete, OffsetFetch).

  python admin.py ADDR CA CERT KEY incremental '{"validate_only": B, "resources": [R, ...]}'
  python admin.py ADDR CA CERT KEY legacy      '{"validate_only": B, "resources": [R, ...]}'
  python admin.py ADDR CA CERT KEY describe    '[TOPIC, ...]'
  python admin.py ADDR CA CERT KEY topic_ops   '[TOPIC, ...]'
  python admin.py ADDR CA CERT KEY group_ops   '[GROUP, ...]'
  python admin.py ADDR CA CERT KEY delete_offsets '{"group": G, "partitions": [[T, P], ...]}'
  python admin.py ADDR CA CERT KEY offsets     '{"group": G}'

ADDR is the broker's Kafka address (TLS when CERT is a client certificate whose common
name is the caller's principal, plaintext when CERT is "-"). R is {"type": "topic" or
"broker", "name": N, "configs": [[KEY, OP, VALUE], ...]} with OP one of set, delete,
append, subtract (legacy: every config is set). Prints one JSON line {"results": [...]}:
per resource null (done) or an error name such as "INVALID_CONFIG"; per topic its
configs {KEY: VALUE} or its authorized operations (sorted names), per group the
same; for delete_offsets
{"error": NAME or null, "partitions": {"T:P": NAME or null}}; for offsets {"T:P": OFFSET}.
Exits 3 when a client library is missing.
"""
import json
import sys

try:
    from confluent_kafka import KafkaException, TopicCollection
    from confluent_kafka.admin import (
        AdminClient,
        AlterConfigOpType,
        ConfigEntry,
        ConfigResource,
        ResourceType,
    )
    from kafka import KafkaAdminClient, TopicPartition
    from kafka.errors import KafkaError, NoError
except ImportError as e:
    print("a client library is not installed (run .ci/run): %s" % e)
    sys.exit(3)

TIMEOUT_S = 15
OPS = {
    "set": AlterConfigOpType.SET,
    "delete": AlterConfigOpType.DELETE,
    "append": AlterConfigOpType.APPEND,
    "subtract": AlterConfigOpType.SUBTRACT,
}


def outcome(future):
    """None when the future succeeded, else the Kafka error's name."""
    try:
        future.result(timeout=TIMEOUT_S)
    except KafkaException as e:
        return e.args[0].name()
    except TimeoutError:
        return "TIMED_OUT"
    return None


def resource(r, incremental):
    kind = ResourceType.TOPIC if r["type"] == "topic" else ResourceType.BROKER
    if incremental:
        entries = [
            ConfigEntry(k, v, incremental_operation=OPS[op]) for k, op, v in r["configs"]
        ]
        return ConfigResource(kind, r["name"], incremental_configs=entries)
    return ConfigResource(kind, r["name"], set_config={k: v for k, _, v in r["configs"]})


def alter(admin, arg, incremental):
    asked = [resource(r, incremental) for r in arg["resources"]]
    call = admin.incremental_alter_configs if incremental else admin.alter_configs
    futures = call(asked, validate_only=arg.get("validate_only", False),
                   request_timeout=TIMEOUT_S)
    return [outcome(futures[a]) for a in asked]


def describe(admin, topics):
    asked = [ConfigResource(ResourceType.TOPIC, t) for t in topics]
    futures = admin.describe_configs(asked, request_timeout=TIMEOUT_S)
    results = []
    for a in asked:
        try:
            got = futures[a].result(timeout=TIMEOUT_S)
        except KafkaException as e:
            results.append(e.args[0].name())
            continue
        results.append({name: entry.value for name, entry in got.items()})
    return results


def op_names(ops):
    """Authorized operations as sorted names; None when the answer carried none."""
    return None if ops is None else sorted(op.name for op in ops)


def ops_of(futures, names):
    """Each named resource's authorized operations, or its error's name."""
    results = []
    for n in names:
        try:
            got = futures[n].result(timeout=TIMEOUT_S)
        except KafkaException as e:
            results.append(e.args[0].name())
            continue
        results.append(op_names(got.authorized_operations))
    return results


def topic_ops(admin, topics):
    futures = admin.describe_topics(
        TopicCollection(topics), include_authorized_operations=True, request_timeout=TIMEOUT_S
    )
    return ops_of(futures, topics)


def cluster(admin, _arg):
    """DescribeCluster with the client's authorized operations on the cluster."""
    got = admin.describe_cluster(
        include_authorized_operations=True, request_timeout=TIMEOUT_S
    ).result(timeout=TIMEOUT_S)
    return [
        {
            "cluster_id": got.cluster_id,
            "nodes": len(got.nodes),
            "controller": got.controller is not None,
            "ops": op_names(got.authorized_operations),
        }
    ]


def group_ops(admin, groups):
    futures = admin.describe_consumer_groups(
        groups, include_authorized_operations=True, request_timeout=TIMEOUT_S
    )
    return ops_of(futures, groups)


def kafka_python(addr, ca, cert, key):
    config = {"bootstrap_servers": addr, "request_timeout_ms": TIMEOUT_S * 1000}
    if cert != "-":
        config.update(
            {
                "security_protocol": "SSL",
                "ssl_cafile": ca,
                "ssl_certfile": cert,
                "ssl_keyfile": key,
            }
        )
    return KafkaAdminClient(**config)


def error_name(error):
    return None if error is NoError else error.message


def delete_offsets(admin, arg):
    partitions = [TopicPartition(t, p) for t, p in arg["partitions"]]
    try:
        got = admin.delete_group_offsets(arg["group"], partitions)
    except KafkaError as e:
        return [{"error": type(e).message, "partitions": {}}]
    named = {"%s:%d" % (tp.topic, tp.partition): error_name(e) for tp, e in got.items()}
    return [{"error": None, "partitions": named}]


def offsets(admin, arg):
    got = admin.list_group_offsets({arg["group"]: None}).get(arg["group"], {})
    return [{"%s:%d" % (tp.topic, tp.partition): m.offset for tp, m in got.items()}]


def main():
    addr, ca, cert, key, command, arg = sys.argv[1:7]
    arg = json.loads(arg)
    if command in ("delete_offsets", "offsets"):
        admin = kafka_python(addr, ca, cert, key)
        try:
            results = (delete_offsets if command == "delete_offsets" else offsets)(admin, arg)
        finally:
            admin.close()
        print(json.dumps({"results": results}))
        return
    config = {"bootstrap.servers": addr, "socket.timeout.ms": 10000}
    if cert != "-":
        config.update(
            {
                "security.protocol": "ssl",
                "ssl.ca.location": ca,
                "ssl.certificate.location": cert,
                "ssl.key.location": key,
            }
        )
    admin = AdminClient(config)
    if command == "incremental":
        results = alter(admin, arg, incremental=True)
    elif command == "legacy":
        results = alter(admin, arg, incremental=False)
    elif command == "describe":
        results = describe(admin, arg)
    elif command == "topic_ops":
        results = topic_ops(admin, arg)
    elif command == "group_ops":
        results = group_ops(admin, arg)
    elif command == "cluster":
        results = cluster(admin, arg)
    else:
        sys.exit("unknown command " + command)
    print(json.dumps({"results": results}))


if __name__ == "__main__":
    main()
