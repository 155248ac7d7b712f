//! Compressed batches from real Kafka producers: ListOffsets by timestamp finds the
//! exact record inside gzip, snappy, lz4 and zstd batches, and a compression bomb in
//! the log gets an error answer while the broker keeps serving in bounded memory.

mod common;
use bytes::Bytes;
use common::kafka_raw::RawKafka as Raw;
use common::Broker;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use peregrine_shards::batch::{self, BATCH_HEADER_LEN, LOG_OVERHEAD};
use peregrine_shards::compression::DECOMPRESSED_BYTES_MAX_DEFAULT;
use peregrine_shards::records::BatchBuilder;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(30);
const BASE_TS: i64 = 1_700_000_000_000;
/// Records per producer flush; each flush is one batch (linger holds them together).
const PER_BATCH: i64 = 10;
/// Milliseconds between consecutive records' timestamps.
const STEP_MS: i64 = 100;

/// Keeps every delivery report: Ok(offset) or the error.
#[derive(Clone, Default)]
struct Deliveries(Arc<Mutex<Vec<Result<i64, String>>>>);

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        use rdkafka::message::Message;
        let r = match result {
            Ok(m) => Ok(m.offset()),
            Err((e, _)) => Err(e.to_string()),
        };
        self.0.lock().expect("lock").push(r);
    }
}

fn config(b: &Broker) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &b.kafka_addr)
        .set("socket.timeout.ms", "10000")
        .set("message.timeout.ms", "20000");
    c
}

/// Produces two batches of `PER_BATCH` records with `codec`, timestamps `BASE_TS`,
/// `BASE_TS + STEP_MS`, ... in offset order.
fn produce_timed(b: &Broker, topic: &str, codec: &str) {
    let d = Deliveries::default();
    let p: BaseProducer<Deliveries> = config(b)
        .set("acks", "all")
        .set("compression.codec", codec)
        // Long enough that each round's records leave as one batch at flush.
        .set("linger.ms", "1000")
        .set("batch.num.messages", "1000")
        .create_with_context(d.clone())
        .expect("create producer");
    for round in 0..2 {
        for i in round * PER_BATCH..(round + 1) * PER_BATCH {
            // Compressible values, as real payloads are.
            let value = format!("{codec} record {i} {}", "payload ".repeat(20));
            let record = BaseRecord::<(), str>::to(topic)
                .payload(value.as_str())
                .timestamp(BASE_TS + i * STEP_MS);
            p.send(record).map_err(|(e, _)| e).expect("send");
        }
        p.flush(TIMEOUT).expect("flush");
    }
    let got = d.0.lock().expect("lock").clone();
    let want: Vec<Result<i64, String>> = (0..2 * PER_BATCH).map(Ok).collect();
    assert_eq!(got, want, "{codec}: delivery reports");
}

/// The stored batches of `topic` partition 0: (codec id, record count) of each; and
/// the native client reads their records back as produced.
fn stored_batches(b: &Broker, topic: &str, codec: &str) -> Vec<(u8, i32)> {
    let fetched = b
        .client()
        .fetch(topic, 0, 0, 1 << 20, 0)
        .expect("native fetch");
    let records = peregrine::client::records::decode_batches(0, fetched.batches.clone(), 3)
        .expect("native client decodes the batches");
    let got: Vec<(i64, i64)> = records.iter().map(|r| (r.offset, r.timestamp_ms)).collect();
    let want: Vec<(i64, i64)> = (3..2 * PER_BATCH)
        .map(|i| (i, BASE_TS + i * STEP_MS))
        .collect();
    assert_eq!(got, want, "{codec}: records read by the native client");
    let value = records[0].value.as_deref().unwrap_or_default();
    assert!(value.starts_with(format!("{codec} record 3 ").as_bytes()));
    batch::split(&fetched.batches)
        .expect("whole batches")
        .into_iter()
        .map(|(_, h)| (h.compression(), h.records_count))
        .collect()
}

fn offset_for_time(c: &BaseConsumer, topic: &str, ts: i64) -> Offset {
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Offset(ts))
        .expect("add");
    let found = c
        .offsets_for_times(tpl, TIMEOUT)
        .expect("offsets for times");
    let p = found.find_partition(topic, 0).expect("partition");
    assert!(p.error().is_ok(), "{topic} at {ts}: {:?}", p.error());
    p.offset()
}

/// Produces with `codec` and checks ListOffsets by timestamp against each kind of
/// timestamp: before the first record, on a record mid-batch, between two records,
/// across the batch boundary, and after the last.
fn offsets_for_times_in(codec: &str, codec_id: u8) {
    let b = Broker::start();
    let topic = format!("timed-{codec}");
    b.create_topic(&topic, 1);
    produce_timed(&b, &topic, codec);
    // The cases below test the lookup inside a batch only if batches hold many records.
    assert_eq!(
        stored_batches(&b, &topic, codec),
        vec![(codec_id, PER_BATCH as i32); 2],
        "{codec}: stored batches (codec, records)"
    );
    let c: BaseConsumer = config(&b).create().expect("create consumer");
    let at = |i: i64| BASE_TS + i * STEP_MS;
    for (ts, want) in [
        (BASE_TS - 5_000, Offset::Offset(0)),
        (at(0), Offset::Offset(0)),
        (at(5), Offset::Offset(5)),
        (at(6) + STEP_MS / 2, Offset::Offset(7)),
        (at(9) + 1, Offset::Offset(10)),
        (at(13), Offset::Offset(13)),
        (at(2 * PER_BATCH - 1), Offset::Offset(2 * PER_BATCH - 1)),
        (at(2 * PER_BATCH - 1) + 1, Offset::End),
    ] {
        assert_eq!(
            offset_for_time(&c, &topic, ts),
            want,
            "{codec}: timestamp {ts} (BASE_TS + {})",
            ts - BASE_TS
        );
    }
}

#[test]
fn offsets_for_times_finds_the_exact_record_in_uncompressed_batches() {
    offsets_for_times_in("none", 0);
}

#[test]
fn offsets_for_times_finds_the_exact_record_in_gzip_batches() {
    offsets_for_times_in("gzip", 1);
}

#[test]
fn offsets_for_times_finds_the_exact_record_in_snappy_batches() {
    offsets_for_times_in("snappy", 2);
}

#[test]
fn offsets_for_times_finds_the_exact_record_in_lz4_batches() {
    offsets_for_times_in("lz4", 3);
}

#[test]
fn offsets_for_times_finds_the_exact_record_in_zstd_batches() {
    offsets_for_times_in("zstd", 4);
}

/// ListOffsets for partition 0 of `topic`: (error code, offset).
fn list_offset(raw: &mut Raw, topic: &str, timestamp: i64) -> (i16, i64) {
    let req = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(0)
                .with_timestamp(timestamp)])]);
    let resp: ListOffsetsResponse = raw.call(ApiKey::ListOffsets, 1, &req);
    let p = &resp.topics[0].partitions[0];
    (p.error_code, p.offset)
}

fn put_varint(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

/// A zstd frame (RFC 8878) of `prefix` then `zeros` zero bytes, built by hand: one raw
/// block, then RLE blocks of 128 KiB (4 bytes each), so a gigabyte costs 32 KiB.
fn zstd_bomb(prefix: &[u8], zeros: usize) -> Vec<u8> {
    const BLOCK_MAX: usize = 128 << 10;
    let block_header = |last: bool, kind: u32, size: usize| {
        let h = u32::from(last) | (kind << 1) | ((size as u32) << 3);
        [h as u8, (h >> 8) as u8, (h >> 16) as u8]
    };
    // Magic; descriptor 0 (no content size, no checksum, no dictionary); window
    // 2^(10 + 7) = 128 KiB.
    let mut out = vec![0x28, 0xb5, 0x2f, 0xfd, 0x00, 7 << 3];
    out.extend_from_slice(&block_header(false, 0, prefix.len()));
    out.extend_from_slice(prefix);
    let mut left = zeros;
    while left > 0 {
        let n = left.min(BLOCK_MAX);
        left -= n;
        out.extend_from_slice(&block_header(left == 0, 1, n));
        out.push(0);
    }
    out
}

/// A v2 batch of one record whose value is `value_len` zeros, zstd-compressed: a few
/// KiB on the wire, `value_len` bytes once decompressed. CRC32C correct.
fn bomb_batch(timestamp_ms: i64, value_len: usize) -> Bytes {
    // The header of a one-record batch, then the compressed records in its place.
    let mut b = BatchBuilder::new(timestamp_ms, 16);
    b.push(None, Some(b"x"), timestamp_ms, &[]);
    let mut out = b.finish().expect("one record");
    out.truncate(BATCH_HEADER_LEN);
    // Record: length, attributes, timestamp delta, offset delta, key (null), value
    // length; then the value (zeros) and a header count of 0 (a zero byte too).
    let value_len_i64 = value_len as i64;
    let mut head = Vec::new();
    put_varint(&mut head, value_len_i64);
    let body_len = 3 + 1 + head.len() as i64 + value_len_i64 + 1;
    let mut prefix = Vec::new();
    put_varint(&mut prefix, body_len);
    prefix.extend_from_slice(&[0, 0, 0]); // attributes, timestamp delta, offset delta
    put_varint(&mut prefix, -1); // null key
    prefix.extend_from_slice(&head);
    out.extend_from_slice(&zstd_bomb(&prefix, value_len + 1));
    let batch_length = (out.len() - LOG_OVERHEAD) as i32;
    out[8..12].copy_from_slice(&batch_length.to_be_bytes());
    out[21..23].copy_from_slice(&4i16.to_be_bytes()); // zstd, CreateTime
    let crc = batch::crc_of(&out);
    out[17..21].copy_from_slice(&crc.to_be_bytes());
    batch::validate(&out).expect("a valid batch on the outside");
    Bytes::from(out)
}

#[test]
fn compression_bomb_in_the_log_gets_an_error_and_the_broker_keeps_serving() {
    let mut b = Broker::start();
    b.create_topic("bombed", 1);
    let mut raw = Raw::connect(&b.kafka_addr);
    let ts = BASE_TS;
    assert_eq!(raw.produce("bombed", bomb_batch(ts, 1 << 10)), (0, 0));
    let bomb = bomb_batch(ts + 1_000, 1 << 30);
    assert!(bomb.len() < 64 << 10, "bomb of {} bytes", bomb.len());
    // Produce stores client batches as sent (see src/kafka/offsets.rs).
    assert_eq!(raw.produce("bombed", bomb), (0, 1));
    assert_eq!(
        raw.produce("bombed", bomb_batch(ts + 2_000, 1 << 10)),
        (0, 2)
    );

    let peak_mib = |b: &Broker| b.peak_rss_bytes().expect("broker VmHWM") >> 20;
    let before = peak_mib(&b);
    let too_large = ResponseError::MessageTooLarge.code();
    for _ in 0..3 {
        // The first record at or after ts + 500 is inside the bomb.
        assert_eq!(list_offset(&mut raw, "bombed", ts + 500), (too_large, -1));
    }
    // Records before and after the bomb are still found, and the broker still serves.
    assert_eq!(list_offset(&mut raw, "bombed", ts), (0, 0));
    assert_eq!(list_offset(&mut raw, "bombed", ts + 1_500), (0, 2));
    assert_eq!(list_offset(&mut raw, "bombed", -1), (0, 3));
    assert!(b.is_running(), "broker died");
    let grown_mib = peak_mib(&b).saturating_sub(before);
    // A gigabyte of output is refused after the limit (64 MiB) and read_to_end's
    // doubling; a decoder without the limit would pass 1024 MiB here.
    let bound_mib = 4 * (DECOMPRESSED_BYTES_MAX_DEFAULT >> 20) as u64;
    assert!(
        grown_mib < bound_mib,
        "peak RSS grew by {grown_mib} MiB (bound {bound_mib} MiB)"
    );
    eprintln!("peak RSS grew by {grown_mib} MiB over three refused bombs");
}
