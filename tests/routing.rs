//! Cross-shard routing: any connection reaches any partition; a shard-aware client
//! talks to each partition's owner on its own port and so skips the hop.

mod common;
use common::Broker;
use peregrine::client::consumer::{Consumer, StartFrom};
use peregrine::client::producer::{Producer, ProducerConfig};
use peregrine::client::records::OutRecord;
use peregrine::client::{Client, Connection};
use peregrine::native::messages::{OffsetSpec, Request, Response};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

const SHARDS: u32 = 4;
const PARTITIONS: i32 = 8;
/// Longest a consumer may take to read back what the test wrote.
const READ_ALL_WITHIN: Duration = Duration::from_secs(30);

/// (partition requests served, forwarded) summed over every shard.
fn totals(b: &Broker) -> (u64, u64) {
    let mut c = b.client();
    let mut sum = (0, 0);
    for shard in 0..SHARDS {
        match c.call(Request::ShardStats { shard }, &[]).expect("stats").0 {
            Response::ShardStats {
                partition_requests,
                forwarded,
                ..
            } => {
                sum.0 += partition_requests;
                sum.1 += forwarded;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    sum
}

fn produce_all(client: &mut Client, tag: &str) {
    let mut producer = Producer::new(
        client,
        "spread",
        ProducerConfig {
            batch_records: 10,
            ..ProducerConfig::default()
        },
    )
    .expect("producer");
    for p in 0..PARTITIONS {
        for i in 0..50 {
            let record = OutRecord {
                key: None,
                value: format!("{tag}-{p}-{i}").into(),
                timestamp_ms: 0,
            };
            producer.send(Some(p), record).expect("send");
        }
    }
    producer.flush().expect("flush");
}

#[test]
fn shard_aware_client_skips_the_hop_and_routed_client_reaches_every_partition() {
    let b = Broker::start_with(&["--shards", "4"]);
    b.create_topic("spread", PARTITIONS);
    assert_eq!(b.shard_ports.len(), SHARDS as usize);
    let owners: BTreeSet<u32> = b
        .client()
        .topic("spread")
        .expect("metadata")
        .owners
        .into_iter()
        .collect();
    assert_eq!(
        owners.len(),
        SHARDS as usize,
        "partitions spread over every shard"
    );

    // Shard-aware: every request lands on its owner, nothing is forwarded.
    let before = totals(&b);
    let mut aware = b.client();
    aware.set_shard_aware(true);
    produce_all(&mut aware, "aware");
    let after = totals(&b);
    assert_eq!(after.1, before.1, "shard-aware requests were forwarded");
    assert!(
        after.0 >= before.0 + 40,
        "owners served the batches: {before:?} -> {after:?}"
    );

    // Routed through the shared port: every partition is still reachable.
    let mut routed = b.client();
    produce_all(&mut routed, "routed");
    assert!(totals(&b).1 > after.1, "routed requests crossed shards");

    // Any shard's own port serves partitions it does not own, by forwarding.
    for port in &b.shard_ports {
        let mut conn = Connection::connect(("127.0.0.1", *port)).expect("shard port");
        for p in 0..PARTITIONS {
            let request = Request::ListOffsets {
                topic: "spread".into(),
                partition: p,
                spec: OffsetSpec::Latest,
            };
            let (response, _) = conn.call(request, &[]).expect("list offsets");
            assert_eq!(
                response,
                Response::Offset { offset: 100 },
                "partition {p} via port {port}"
            );
        }
    }

    // Both consumers read everything once: routed, and shard-aware (one connection per
    // shard, answers matched per connection).
    for aware in [false, true] {
        let mut client = b.client();
        client.set_shard_aware(aware);
        let mut consumer =
            Consumer::assign(client, "spread", None, StartFrom::Earliest).expect("consumer");
        let mut seen = BTreeSet::new();
        let deadline = Instant::now() + READ_ALL_WITHIN;
        while seen.len() < (PARTITIONS * 100) as usize && Instant::now() < deadline {
            for r in consumer.poll(Duration::from_millis(200)).expect("poll") {
                let value =
                    String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into_owned();
                let partition = value.split('-').nth(1).and_then(|p| p.parse::<i32>().ok());
                assert_eq!(
                    partition,
                    Some(r.partition),
                    "{value} reported on {}",
                    r.partition
                );
                assert!(seen.insert(value), "read twice (shard-aware {aware})");
            }
        }
        assert_eq!(
            seen.len(),
            (PARTITIONS * 100) as usize,
            "read within {READ_ALL_WITHIN:?} (shard-aware {aware})"
        );
        assert!(seen.contains("aware-7-49") && seen.contains("routed-0-0"));
    }
}
