"""Kafka transactions through confluent-kafka (Python, librdkafka inside), one case per
run, against a broker whose Kafka address and a fresh topic the caller gives:

    python confluent_cases.py HOST:PORT CASE TOPIC PARTITIONS

Cases: commit, abort, timeout, fence, offsets (see each function). The topic's partitions must be
led by at least two nodes (shards), which the script checks first. Every read goes up to
a sentinel (`end`, written by a plain producer to every partition after the case's
transactions), so no case waits for silence. Prints `ok CASE` on success; exits 3 when
confluent_kafka cannot be imported. Driven by tests/kafka_txn_clients.rs.
"""

import sys
import time
import uuid

try:
    from confluent_kafka import (
        Consumer,
        KafkaError,
        KafkaException,
        Producer,
        TopicPartition,
        OFFSET_BEGINNING,
    )
except ImportError as e:  # pragma: no cover
    print(f"confluent_kafka not importable: {e}")
    sys.exit(3)

# The longest one wait of a case takes, in seconds.
TIMEOUT = 30
SENTINEL = "end"
# The transaction timeout of the timeout case; the broker checks about every second.
SHORT_TXN_TIMEOUT_MS = 2000
# Broker and librdkafka codes that mean "fenced": _FENCED, PRODUCER_FENCED,
# INVALID_PRODUCER_EPOCH.
FENCING_CODES = {-144, 90, 47}


class Case:
    def __init__(self, bootstrap, topic, partitions):
        self.bootstrap = bootstrap
        self.topic = topic
        self.partitions = partitions
        self.errors = []

    def producer(self, txn_id=None, **extra):
        conf = {"bootstrap.servers": self.bootstrap, "acks": "all", "linger.ms": 5}
        if txn_id is not None:
            conf["transactional.id"] = txn_id
        conf.update(extra)
        return Producer(conf)

    def txn_producer(self, txn_id, **extra):
        p = self.producer(txn_id, **extra)
        p.init_transactions(TIMEOUT)
        return p

    def delivered(self, err, msg):
        if err is not None:
            self.errors.append(str(err))

    def send_each(self, p, tag, count):
        for i in range(count):
            for part in range(self.partitions):
                v = f"{tag}-{part}-{i}"
                p.produce(self.topic, key=v, value=v, partition=part,
                          on_delivery=self.delivered)

    def flush(self, p):
        left = p.flush(TIMEOUT)
        assert left == 0, f"{left} messages not delivered within {TIMEOUT}s"
        assert not self.errors, f"delivery errors: {self.errors}"

    def expected(self, tag, part, count):
        return [f"{tag}-{part}-{i}" for i in range(count)]

    def check_leaders(self):
        md = self.producer().list_topics(self.topic, timeout=TIMEOUT)
        parts = md.topics[self.topic].partitions
        assert len(parts) == self.partitions, parts
        leaders = {parts[p].leader for p in parts}
        assert len(leaders) >= 2, f"partitions on one node: {leaders}"

    def write_sentinels(self):
        p = self.producer()
        for part in range(self.partitions):
            p.produce(self.topic, value=SENTINEL, partition=part,
                      on_delivery=self.delivered)
        self.flush(p)

    def consumer(self, isolation):
        return Consumer({
            "bootstrap.servers": self.bootstrap,
            "group.id": f"reader-{uuid.uuid4()}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "isolation.level": isolation,
        })

    def read(self, isolation):
        """Each partition's values before its sentinel."""
        c = self.consumer(isolation)
        c.assign([TopicPartition(self.topic, p, OFFSET_BEGINNING)
                  for p in range(self.partitions)])
        got = {p: [] for p in range(self.partitions)}
        ended = set()
        deadline = time.monotonic() + TIMEOUT
        try:
            while len(ended) < self.partitions:
                assert time.monotonic() < deadline, \
                    f"{isolation}: sentinels of {ended} only; read {got}"
                m = c.poll(0.1)
                if m is None:
                    continue
                if m.error():
                    raise KafkaException(m.error())
                if m.partition() in ended:
                    continue
                value = m.value().decode()
                if value == SENTINEL:
                    ended.add(m.partition())
                else:
                    got[m.partition()].append(value)
        finally:
            c.close()
        return got

    def stable_and_end(self, committed, uncommitted, part):
        tp = TopicPartition(self.topic, part)
        stable = committed.get_watermark_offsets(tp, timeout=TIMEOUT, cached=False)[1]
        end = uncommitted.get_watermark_offsets(tp, timeout=TIMEOUT, cached=False)[1]
        return stable, end


def fencing(exc):
    err = exc.args[0] if exc.args else None
    if not isinstance(err, KafkaError):
        return False
    # A fatal error raised for an earlier fencing answer names it in its text.
    text = err.str().lower()
    return err.code() in FENCING_CODES or (
        err.fatal() and ("fenc" in text or "epoch" in text))


def case_commit(c):
    """A transaction over every partition commits: both isolation levels read it whole."""
    p = c.txn_producer(f"commit-{uuid.uuid4()}")
    p.begin_transaction()
    c.send_each(p, "c", 5)
    p.commit_transaction(TIMEOUT)
    c.write_sentinels()
    for isolation in ("read_committed", "read_uncommitted"):
        got = c.read(isolation)
        for part in range(c.partitions):
            assert got[part] == c.expected("c", part, 5), (isolation, part, got[part])


def case_abort(c):
    """An aborted transaction is seen by read_uncommitted only; the next one commits."""
    p = c.txn_producer(f"abort-{uuid.uuid4()}")
    p.begin_transaction()
    c.send_each(p, "aborted", 4)
    c.flush(p)
    p.abort_transaction(TIMEOUT)
    p.begin_transaction()
    c.send_each(p, "kept", 3)
    p.commit_transaction(TIMEOUT)
    c.write_sentinels()
    committed = c.read("read_committed")
    uncommitted = c.read("read_uncommitted")
    for part in range(c.partitions):
        assert committed[part] == c.expected("kept", part, 3), (part, committed[part])
        both = c.expected("aborted", part, 4) + c.expected("kept", part, 3)
        assert uncommitted[part] == both, (part, uncommitted[part])


def case_timeout(c):
    """A transaction left open past transaction.timeout.ms is aborted by the broker (the
    last stable offset moves past its marker) and its producer is fenced."""
    p = c.txn_producer(f"timeout-{uuid.uuid4()}",
                       **{"transaction.timeout.ms": SHORT_TXN_TIMEOUT_MS})
    p.begin_transaction()
    c.send_each(p, "open", 4)
    c.flush(p)
    committed = c.consumer("read_committed")
    uncommitted = c.consumer("read_uncommitted")
    deadline = time.monotonic() + TIMEOUT
    for part in range(c.partitions):
        while True:
            stable, end = c.stable_and_end(committed, uncommitted, part)
            assert end >= 4, (part, end)
            if stable == end and end > 4:
                break
            assert time.monotonic() < deadline, \
                f"partition {part}: last stable offset {stable}, end {end}"
            time.sleep(0.2)
    committed.close()
    uncommitted.close()
    try:
        p.commit_transaction(TIMEOUT)
        raise AssertionError("commit after the broker aborted on timeout succeeded")
    except KafkaException as e:
        assert fencing(e), f"not a fencing error: {e}"
    later = c.producer()
    c.send_each(later, "later", 2)
    c.flush(later)
    c.write_sentinels()
    committed = c.read("read_committed")
    uncommitted = c.read("read_uncommitted")
    for part in range(c.partitions):
        assert committed[part] == c.expected("later", part, 2), (part, committed[part])
        both = c.expected("open", part, 4) + c.expected("later", part, 2)
        assert uncommitted[part] == both, (part, uncommitted[part])


def case_fence(c):
    """A second producer with the same transactional.id fences the first: the first's
    commit fails with a fencing error; only the second's transaction is read."""
    txn_id = f"fence-{uuid.uuid4()}"
    first = c.txn_producer(txn_id)
    first.begin_transaction()
    c.send_each(first, "zombie", 3)
    c.flush(first)
    second = c.txn_producer(txn_id)
    try:
        first.commit_transaction(TIMEOUT)
        raise AssertionError("the fenced producer's commit succeeded")
    except KafkaException as e:
        assert fencing(e), f"not a fencing error: {e}"
    second.begin_transaction()
    c.send_each(second, "live", 3)
    second.commit_transaction(TIMEOUT)
    c.write_sentinels()
    committed = c.read("read_committed")
    for part in range(c.partitions):
        assert committed[part] == c.expected("live", part, 3), (part, committed[part])


def case_offsets(c):
    """Offsets sent to a transaction reach the group only when it commits; an aborted
    transaction's offsets are dropped."""
    plain = c.producer()
    c.send_each(plain, "in", 2)
    c.flush(plain)
    group = f"offsets-{uuid.uuid4()}"
    consumer = Consumer({
        "bootstrap.servers": c.bootstrap,
        "group.id": group,
        "enable.auto.commit": False,
        "isolation.level": "read_committed",
    })
    parts = [TopicPartition(c.topic, p, OFFSET_BEGINNING) for p in range(c.partitions)]
    consumer.assign(parts)
    read = 0
    deadline = time.monotonic() + TIMEOUT
    while read < 2 * c.partitions:
        assert time.monotonic() < deadline, f"read {read} input records"
        m = consumer.poll(0.1)
        if m is None:
            continue
        if m.error():
            raise KafkaException(m.error())
        read += 1
    offsets = [TopicPartition(c.topic, p, 2) for p in range(c.partitions)]
    p = c.txn_producer(f"offsets-{uuid.uuid4()}")

    def committed():
        got = consumer.committed(
            [TopicPartition(c.topic, p) for p in range(c.partitions)], timeout=TIMEOUT)
        return [tp.offset for tp in got]

    p.begin_transaction()
    c.send_each(p, "dropped", 1)
    p.send_offsets_to_transaction(offsets, consumer.consumer_group_metadata(), TIMEOUT)
    c.flush(p)
    p.abort_transaction(TIMEOUT)
    assert all(o < 0 for o in committed()), f"after the abort: {committed()}"
    p.begin_transaction()
    c.send_each(p, "out", 1)
    p.send_offsets_to_transaction(offsets, consumer.consumer_group_metadata(), TIMEOUT)
    p.commit_transaction(TIMEOUT)
    assert committed() == [2] * c.partitions, f"after the commit: {committed()}"
    consumer.close()
    c.write_sentinels()
    got = c.read("read_committed")
    for part in range(c.partitions):
        want = c.expected("in", part, 2) + c.expected("out", part, 1)
        assert got[part] == want, (part, got[part])


CASES = {
    "offsets": case_offsets,
    "commit": case_commit,
    "abort": case_abort,
    "timeout": case_timeout,
    "fence": case_fence,
}


def main():
    if len(sys.argv) != 5 or sys.argv[2] not in CASES:
        print(f"usage: {sys.argv[0]} HOST:PORT CASE TOPIC PARTITIONS; cases: "
              + " ".join(CASES))
        sys.exit(2)
    bootstrap, case, topic, partitions = sys.argv[1:]
    c = Case(bootstrap, topic, int(partitions))
    c.check_leaders()
    CASES[case](c)
    print(f"ok {case}")


if __name__ == "__main__":
    main()
