"""ACLs through confluent-kafka's AdminClient (librdkafka's CreateAcls, DescribeAcls and
DeleteAcls), for tests/kafka_acls.rs.

  python admin.py ADDR CA CERT KEY create  '[BINDING, ...]'
  python admin.py ADDR CA CERT KEY describe FILTER
  python admin.py ADDR CA CERT KEY delete  '[FILTER, ...]'
  python admin.py ADDR CA CERT KEY user    '["NAME", "PASSWORD"]'

ADDR is the broker's Kafka TLS address; CERT/KEY the client certificate whose common
name is the caller's principal (or "-" for none, over plaintext). A BINDING is a JSON
object {"type", "name", "pattern", "principal", "host", "op", "perm"} with Kafka's names
in lower case ("topic", "literal", "write", "allow"...); a FILTER is the same with any
field left out meaning "any". Prints one JSON line: {"results": [...]} where each
result is null (done), a list of bindings (described or deleted) or an error name such
as "CLUSTER_AUTHORIZATION_FAILED". `user` makes a SCRAM-SHA-256 user
(AlterUserScramCredentials). Exits 3 when confluent-kafka is missing.
"""
import json
import sys

try:
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import (
        AclBinding,
        AclBindingFilter,
        AclOperation,
        AclPermissionType,
        AdminClient,
        ResourcePatternType,
        ResourceType,
        ScramCredentialInfo,
        ScramMechanism,
        UserScramCredentialUpsertion,
    )
except ImportError:
    print("confluent-kafka is not installed (run .ci/run)")
    sys.exit(3)

TIMEOUT_S = 15
# Kafka's cluster resource is librdkafka's BROKER.
TYPES = {"cluster": "BROKER", "transactional_id": "TRANSACTIONAL_ID"}


def enum(kind, value, any_name):
    if value is None:
        return getattr(kind, any_name)
    return getattr(kind, TYPES.get(value, value).upper())


def binding(d, filter_=False):
    make = AclBindingFilter if filter_ else AclBinding
    return make(
        enum(ResourceType, d.get("type"), "ANY"),
        d.get("name"),
        enum(ResourcePatternType, d.get("pattern"), "ANY"),
        d.get("principal"),
        d.get("host"),
        enum(AclOperation, d.get("op"), "ANY"),
        enum(AclPermissionType, d.get("perm"), "ANY"),
    )


def plain(b):
    kind = b.restype.name.lower()
    return {
        "type": "cluster" if kind == "broker" else kind,
        "name": b.name,
        "pattern": b.resource_pattern_type.name.lower(),
        "principal": b.principal,
        "host": b.host,
        "op": b.operation.name.lower(),
        "perm": b.permission_type.name.lower(),
    }


def outcome(future):
    try:
        got = future.result(timeout=TIMEOUT_S)
    except KafkaException as e:
        return e.args[0].name()
    except TimeoutError:
        return "TIMED_OUT"
    if got is None:
        return None
    return sorted((plain(b) for b in got), key=lambda b: json.dumps(b, sort_keys=True))


def main():
    addr, ca, cert, key, command, arg = sys.argv[1:7]
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
    arg = json.loads(arg)
    if command == "create":
        asked = [binding(b) for b in arg]
        futures = admin.create_acls(asked, request_timeout=TIMEOUT_S)
    elif command == "describe":
        asked = [binding(arg, filter_=True)]
        futures = {asked[0]: admin.describe_acls(asked[0], request_timeout=TIMEOUT_S)}
    elif command == "user":
        name, password = arg
        info = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 4096)
        asked = [name]
        upsert = UserScramCredentialUpsertion(name, info, password.encode())
        futures = admin.alter_user_scram_credentials([upsert], request_timeout=TIMEOUT_S)
    elif command == "delete":
        asked = [binding(f, filter_=True) for f in arg]
        futures = admin.delete_acls(asked, request_timeout=TIMEOUT_S)
    else:
        sys.exit("unknown command " + command)
    print(json.dumps({"results": [outcome(futures[a]) for a in asked]}))


if __name__ == "__main__":
    main()
