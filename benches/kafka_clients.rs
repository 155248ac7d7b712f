//! Throughput through the Kafka port with a real Kafka client (librdkafka through the
//! `rdkafka` crate): produce N 100-byte messages at linger 5 ms, then consume them from
//! the beginning, for 1 and 8 partitions. The broker is the release binary started on a
//! temporary directory (2 shards). Prints one JSON line per run; medians at the end.
//!
//! `cargo bench --bench kafka_clients [-- MESSAGES RUNS ACKS NODES]` (defaults 2000000 3
//! 1 per-shard; NODES is the broker's `--kafka-nodes`).

use peregrine::embedded::BrokerProcess;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use std::time::{Duration, Instant};

const SIZE: usize = 100;

fn produce(bootstrap: &str, topic: &str, partitions: i32, messages: usize, acks: &str) -> f64 {
    let p: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "5")
        .set("acks", acks)
        .set("batch.size", "1000000")
        .set("queue.buffering.max.messages", "1000000")
        .set("queue.buffering.max.kbytes", "1048576")
        .create()
        .expect("producer");
    let value = [b'x'; SIZE];
    let start = Instant::now();
    for i in 0..messages {
        let mut record = BaseRecord::<(), [u8]>::to(topic)
            .payload(&value[..])
            .partition((i % partitions as usize) as i32);
        loop {
            match p.send(record) {
                Ok(()) => break,
                Err((_, back)) => {
                    p.poll(Duration::from_millis(1));
                    record = back;
                }
            }
        }
    }
    p.flush(Duration::from_secs(120)).expect("flush");
    messages as f64 / start.elapsed().as_secs_f64()
}

fn consume(bootstrap: &str, topic: &str, partitions: i32, messages: usize) -> f64 {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", format!("bench-{topic}"))
        .set("enable.auto.commit", "false")
        .set("fetch.max.bytes", "52428800")
        .set("max.partition.fetch.bytes", "10485760")
        .set("queued.min.messages", "1000000")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .expect("partition");
    }
    c.assign(&tpl).expect("assign");
    let start = Instant::now();
    let mut got = 0;
    while got < messages && start.elapsed() < Duration::from_secs(120) {
        if let Some(m) = c.poll(Duration::from_millis(100)) {
            m.expect("message");
            got += 1;
        }
    }
    assert_eq!(got, messages, "consumed everything");
    got as f64 / start.elapsed().as_secs_f64()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let messages: usize = args
        .first()
        .and_then(|a| a.parse().ok())
        .unwrap_or(2_000_000);
    let runs: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(3);
    let acks = args.get(2).cloned().unwrap_or_else(|| "1".into());
    let nodes = args.get(3).cloned().unwrap_or_else(|| "per-shard".into());
    let dir = tempfile::tempdir().expect("tempdir");
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_peregrine"));
    let flags = ["--shards", "2", "--kafka-nodes", &nodes].map(String::from);
    let broker = BrokerProcess::spawn(bin, dir.path(), &flags).expect("start broker");
    let native = broker.addr.clone();
    for partitions in [1, 8] {
        let (mut produced, mut consumed) = (Vec::new(), Vec::new());
        for run in 0..runs {
            let topic = format!("kafka-bench-{partitions}-{run}");
            let mut client = peregrine::client::Client::connect(&native).expect("native client");
            client
                .create_topic(peregrine::native::messages::TopicSpec {
                    name: topic.clone(),
                    partitions,
                    retention_ms: None,
                    retention_bytes: None,
                    segment_bytes: None,
                })
                .expect("create topic");
            let p = produce(&broker.kafka_addr, &topic, partitions, messages, &acks);
            let c = consume(&broker.kafka_addr, &topic, partitions, messages);
            println!(
                "{{\"nodes\":\"{nodes}\",\"partitions\":{partitions},\"run\":{run},\"messages\":{messages},\"acks\":\"{acks}\",\"produce_msgs_per_s\":{p:.0},\"consume_msgs_per_s\":{c:.0}}}"
            );
            produced.push(p);
            consumed.push(c);
        }
        println!(
            "median partitions={partitions}: produce {:.0} msgs/s, consume {:.0} msgs/s",
            median(produced),
            median(consumed)
        );
    }
}
