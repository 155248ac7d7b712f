//! Torn tails and flipped bits in every kind of file the broker writes, through the
//! real broker: write through a real client, stop the broker, damage the file, start
//! again, and check the outcome: it recovers with every acknowledged message (a torn
//! tail is cut), or it refuses to start with a log naming the file (and the byte).
//!
//! File kinds: topic segments (`.log`), their `.index`/`.timeindex`, queue journals,
//! the consumer-group offsets log, the transaction state log (all segment logs), the
//! catalog (`meta/topics.json`), `meta/producer-ids`, a partition's `log-start-offset`
//! and `producers.json`.

mod common;

use bytes::{Bytes, BytesMut};
use common::kafka_raw::RawKafka;
use common::{run_cli, Broker, BIN};
use kafka_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use kafka_protocol::messages::{
    ApiKey, DeleteRecordsRequest, DeleteRecordsResponse, InitProducerIdRequest,
    InitProducerIdResponse, TopicName, TransactionalId,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use peregrine::embedded::{BrokerProcess, SpawnError};
use peregrine::native::messages::{CommitEntry, PublishSpec, QueueSpec};
use peregrine_shards::batch;
use std::path::{Path, PathBuf};

/// Every file under `dir` whose path satisfies `keep`, sorted.
fn files(dir: &Path, keep: &dyn Fn(&Path) -> bool) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).expect("list dir").flatten() {
            let path = entry.path();
            if path.is_dir() {
                todo.push(path);
            } else if keep(&path) {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// The segment files (`ext`: log, index, timeindex) under `sub` of the data directory.
fn segment_files(data_dir: &Path, sub: &str, ext: &str) -> Vec<PathBuf> {
    let root = data_dir.join(sub);
    files(&root, &|p| {
        p.extension().and_then(|e| e.to_str()) == Some(ext)
    })
}

/// Byte ranges of the valid batches at the start of a segment file.
fn batch_ranges(bytes: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut pos = 0;
    while let Ok(h) = batch::BatchHeader::parse(&bytes[pos..]) {
        let end = pos + h.total_len();
        if h.batch_length <= 0 || end > bytes.len() || batch::validate(&bytes[pos..end]).is_err() {
            break;
        }
        out.push((pos, end));
        pos = end;
    }
    out
}

fn flip(path: &Path, at: usize, mask: u8) {
    let mut bytes = std::fs::read(path).expect("read");
    bytes[at] ^= mask;
    std::fs::write(path, bytes).expect("write");
}

/// Starts a broker on `dir` expecting it to refuse; returns what it logged this time.
fn refused_start(dir: &Path) -> String {
    let log_path = dir.join("broker.log");
    let before = std::fs::read(&log_path).map_or(0, |b| b.len());
    let extra: Vec<String> = ["--shards", "2", "--cache-mb", "64"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    match BrokerProcess::spawn(Path::new(BIN), dir, &extra) {
        Ok(mut p) => {
            p.kill();
            panic!("the broker started on damaged acknowledged data");
        }
        Err(SpawnError::NotReady { .. }) => {}
        Err(e) => panic!("{e}"),
    }
    let log = std::fs::read(&log_path).expect("broker log");
    String::from_utf8_lossy(&log[before..]).into_owned()
}

/// Asserts that the broker refuses to start on `dir` and names `file` (and `byte`).
fn assert_refused_naming(dir: &Path, file: &Path, byte: Option<usize>) {
    let log = refused_start(dir);
    assert!(
        log.contains(&file.display().to_string()),
        "the refusal names {}:\n{log}",
        file.display()
    );
    if let Some(byte) = byte {
        assert!(
            log.contains(&format!("damaged at byte {byte}")),
            "the refusal names byte {byte}:\n{log}"
        );
    }
}

fn produce_lines(b: &Broker, topic: &str, lines: &[String]) {
    let input: String = lines.iter().map(|l| format!("{l}\n")).collect();
    run_cli(
        &[
            "produce",
            topic,
            "--partition",
            "0",
            "--acks",
            "durable",
            "--bootstrap",
            &b.addr,
        ],
        &input,
    );
}

/// Produces `batches` requests of `per_batch` lines each (one batch per request).
fn produce_batches(b: &Broker, topic: &str, batches: usize, per_batch: usize) -> Vec<String> {
    let mut all = Vec::new();
    for i in 0..batches {
        let lines: Vec<String> = (0..per_batch)
            .map(|j| format!("m{i}-{j}-{}", "x".repeat(80)))
            .collect();
        produce_lines(b, topic, &lines);
        all.extend(lines);
    }
    all
}

fn consume_from(b: &Broker, topic: &str, from: i64) -> Vec<String> {
    run_cli(
        &[
            "consume",
            topic,
            "--partition",
            "0",
            "--from",
            &from.to_string(),
            "--format",
            "%v",
            "--bootstrap",
            &b.addr,
        ],
        "",
    )
    .lines()
    .map(String::from)
    .collect()
}

fn create_topic(b: &Broker, topic: &str, segment_bytes: Option<u64>) {
    let mut args = vec!["topic", "create", topic, "--bootstrap", &b.addr];
    let seg = segment_bytes.map(|s| s.to_string());
    if let Some(seg) = &seg {
        args.extend(["--segment-bytes", seg]);
    }
    run_cli(&args, "");
}

#[test]
fn a_torn_segment_tail_is_cut_and_every_whole_batch_is_kept() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut b = Broker::start_in(tmp.path(), &[]);
    create_topic(&b, "torn", None);
    let sent = produce_batches(&b, "torn", 10, 10);
    // kill -9: the active segment keeps its preallocated zeros after the data.
    b.kill9();
    let log = segment_files(tmp.path(), "topics", "log")
        .pop()
        .expect("segment");
    let original = std::fs::read(&log).expect("read");
    let ranges = batch_ranges(&original);
    assert_eq!(ranges.len(), 10);
    let (start, end) = ranges[9];
    assert!(original.len() > end, "preallocated space follows the data");
    let sector = (start / 512 + 1) * 512;
    assert!(sector + 16 <= end, "the last batch spans a sector boundary");
    let tears: Vec<(&str, Vec<u8>)> = vec![
        (
            "file ends inside the last batch",
            original[..start + 40].to_vec(),
        ),
        ("file ends one byte short", original[..end - 1].to_vec()),
        ("sectors after a boundary never written", {
            let mut t = original.clone();
            t[sector..].fill(0);
            t
        }),
    ];
    for (what, bytes) in tears {
        std::fs::write(&log, &bytes).expect("tear");
        b.restart();
        assert_eq!(consume_from(&b, "torn", 0), sent[..90], "{what}");
        // Appends continue at the torn batch's offset.
        produce_lines(&b, "torn", &["after".to_string()]);
        assert_eq!(consume_from(&b, "torn", 90), ["after"], "{what}");
        b.kill9();
        assert_eq!(
            std::fs::read(&log).expect("read")[..start],
            original[..start],
            "{what}: the whole batches are untouched"
        );
    }
}

#[test]
fn a_flipped_bit_in_a_segment_refuses_the_start_naming_the_file_and_byte() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut b = Broker::start_in(tmp.path(), &[]);
    create_topic(&b, "flip", None);
    let sent = produce_batches(&b, "flip", 8, 10);
    b.kill9();
    let log = segment_files(tmp.path(), "topics", "log")
        .pop()
        .expect("segment");
    let original = std::fs::read(&log).expect("read");
    let ranges = batch_ranges(&original);
    assert_eq!(ranges.len(), 8);
    let (first, mid, last) = (ranges[0], ranges[4], ranges[7]);
    // (batch start, byte flipped): base offset, length, magic, CRC, attributes and a
    // record of the first batch; a record in the middle one and in the last one.
    let flips = [
        (first.0, first.0 + 7),
        (first.0, first.0 + 10),
        (first.0, first.0 + 16),
        (first.0, first.0 + 19),
        (first.0, first.0 + 22),
        (first.0, (first.0 + first.1) / 2),
        (mid.0, (mid.0 + mid.1) / 2),
        (last.0, (last.0 + last.1) / 2),
        (last.0, last.1 - 3),
    ];
    for (batch_start, at) in flips {
        std::fs::write(&log, &original).expect("restore");
        flip(&log, at, 0x08);
        assert_refused_naming(tmp.path(), &log, Some(batch_start));
        // The refusal cut nothing.
        let mut expected = original.clone();
        expected[at] ^= 0x08;
        assert!(std::fs::read(&log).expect("read") == expected, "byte {at}");
    }
    // The refusal's advice, followed: cutting the newest segment at the named byte
    // gives up that batch and what follows, knowingly, and the broker starts.
    let log_text = refused_start(tmp.path());
    let advice = format!("truncate -s {} {}", last.0, log.display());
    assert!(log_text.contains(&advice), "{advice}:\n{log_text}");
    std::fs::write(&log, &original[..last.0]).expect("cut as advised");
    b.restart();
    assert_eq!(consume_from(&b, "flip", 0), sent[..70]);
    b.kill9();
    // A flipped bit in the unwritten space after the data is no acknowledged data.
    std::fs::write(&log, &original).expect("restore");
    flip(&log, last.1 + 5000, 0x01);
    b.restart();
    assert_eq!(consume_from(&b, "flip", 0), sent);
}

#[test]
fn damage_in_a_closed_segment_refuses_and_damaged_indexes_are_rebuilt() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut b = Broker::start_in(tmp.path(), &[]);
    create_topic(&b, "closed", Some(65536));
    let sent = produce_batches(&b, "closed", 40, 60);
    assert!(b.stop());
    let logs = segment_files(tmp.path(), "topics", "log");
    assert!(logs.len() >= 3, "segments rolled: {logs:?}");
    let first = &logs[0];
    let original = std::fs::read(first).expect("read");
    let ranges = batch_ranges(&original);
    assert_eq!(
        ranges.last().map(|r| r.1),
        Some(original.len()),
        "whole batches"
    );
    let (start, end) = ranges[ranges.len() / 2];
    flip(first, (start + end) / 2, 0x20);
    assert_refused_naming(tmp.path(), first, Some(start));
    std::fs::write(first, &original).expect("restore");

    // Indexes: flipped bits, a torn tail, one emptied; none is trusted.
    let indexes = segment_files(tmp.path(), "topics", "index");
    let times = segment_files(tmp.path(), "topics", "timeindex");
    let kept: Vec<(PathBuf, Vec<u8>)> = indexes
        .iter()
        .chain(&times)
        .map(|p| (p.clone(), std::fs::read(p).expect("read index")))
        .collect();
    assert!(kept.iter().all(|(_, bytes)| bytes.len() >= 16));
    flip(&indexes[0], 5, 0x01); // a position of the first entry
    flip(&indexes[1], 9, 0x80); // a relative offset of the second entry
    flip(&times[0], 2, 0x10); // a timestamp
    let torn = &kept[2].1;
    std::fs::write(&indexes[2], &torn[..torn.len() - 3]).expect("tear index");
    std::fs::write(&times[1], b"").expect("empty time index");
    b.restart();
    assert_eq!(consume_from(&b, "closed", 0), sent);
    for from in [1, 777, 1234, 2000] {
        assert_eq!(
            consume_from(&b, "closed", from).first(),
            Some(&sent[from as usize]),
            "from {from}"
        );
    }
    for (path, bytes) in &kept {
        if path.starts_with(logs.last().expect("active").with_extension("")) {
            continue; // the active segment's index is rewritten at close only
        }
        assert!(
            std::fs::read(path).expect("read") == *bytes,
            "{} rewritten as it was",
            path.display()
        );
    }
}

#[test]
fn queue_journal_torn_tail_is_cut_and_a_flipped_bit_refuses() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut b = Broker::start_in(tmp.path(), &[]);
    let mut c = b.client();
    c.declare_queue(QueueSpec {
        name: "jobs".into(),
        ..QueueSpec::default()
    })
    .expect("declare");
    let durable = PublishSpec {
        durable: true,
        ..PublishSpec::default()
    };
    for i in 0..6 {
        c.publish("jobs", durable.clone(), format!("job-{i}").as_bytes())
            .expect("publish");
    }
    drop(c);
    b.kill9();
    let journal = segment_files(tmp.path(), "queues", "log")
        .pop()
        .expect("journal");
    let original = std::fs::read(&journal).expect("read");
    let ranges = batch_ranges(&original);
    assert_eq!(ranges.len(), 6, "one journal batch per durable publish");
    let (start, end) = ranges[5];
    std::fs::write(&journal, &original[..end - 2]).expect("tear");
    b.restart();
    let mut c = b.client();
    let got: Vec<String> = c
        .receive("jobs", 100, 1000, true)
        .expect("receive")
        .iter()
        .map(|r| String::from_utf8_lossy(&r.body).into_owned())
        .collect();
    assert_eq!(got, (0..5).map(|i| format!("job-{i}")).collect::<Vec<_>>());
    drop(c);
    b.kill9();
    // The first publish's record, now settled and acknowledged: damage refuses.
    let now = std::fs::read(&journal).expect("read");
    assert_eq!(now[..start], original[..start]);
    let (first_start, first_end) = ranges[0];
    flip(&journal, (first_start + first_end) / 2, 0x02);
    assert_refused_naming(tmp.path(), &journal, Some(first_start));
}

#[test]
fn group_offsets_log_torn_tail_keeps_the_last_whole_commit_and_a_flip_refuses() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut b = Broker::start_in(tmp.path(), &[]);
    create_topic(&b, "orders", None);
    let mut c = b.client();
    for offset in [5, 9] {
        let entry = CommitEntry {
            topic: "orders".into(),
            partition: 0,
            offset,
        };
        c.commit("billing", "", -1, vec![entry]).expect("commit");
    }
    drop(c);
    b.kill9();
    let logs = files(&tmp.path().join("groups"), &|p| {
        p.extension().and_then(|e| e.to_str()) == Some("log")
            && std::fs::metadata(p).is_ok_and(|m| m.len() > 0)
            && std::fs::read(p).is_ok_and(|bytes| !batch_ranges(&bytes).is_empty())
    });
    assert_eq!(logs.len(), 1, "one shard's offsets log holds the group");
    let log = &logs[0];
    let original = std::fs::read(log).expect("read");
    let ranges = batch_ranges(&original);
    assert_eq!(ranges.len(), 2, "one batch per commit");
    let (start, _) = ranges[1];
    std::fs::write(log, &original[..start + 30]).expect("tear");
    b.restart();
    let committed = b.client().committed("billing", "orders").expect("fetch");
    assert_eq!(committed.iter().map(|e| e.offset).collect::<Vec<_>>(), [5]);
    b.kill9();
    flip(log, ranges[0].0 + 40, 0x04);
    assert_refused_naming(tmp.path(), log, Some(ranges[0].0));
}

fn init_producer_id(b: &Broker, transactional_id: Option<&str>) -> (i16, i64) {
    let mut k = RawKafka::connect(&b.kafka_addr);
    let req = InitProducerIdRequest::default()
        .with_transactional_id(
            transactional_id.map(|t| TransactionalId(StrBytes::from_string(t.to_string()))),
        )
        .with_transaction_timeout_ms(60_000)
        .with_producer_id((-1).into())
        .with_producer_epoch(-1);
    let resp: InitProducerIdResponse = k.call(ApiKey::InitProducerId, 4, &req);
    (resp.error_code, resp.producer_id.0)
}

#[test]
fn transaction_log_torn_tail_is_cut_and_damage_there_or_in_producer_ids_refuses() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut b = Broker::start_in(tmp.path(), &[]);
    let (code, first_id) = init_producer_id(&b, Some("payments"));
    assert_eq!(code, 0);
    assert_eq!(init_producer_id(&b, Some("audit")).0, 0);
    assert!(b.stop());
    // The transaction state log: the id's record is acknowledged state.
    let logs = files(&tmp.path().join("transactions"), &|p| {
        p.extension().and_then(|e| e.to_str()) == Some("log")
            && std::fs::read(p).is_ok_and(|bytes| !batch_ranges(&bytes).is_empty())
    });
    assert_eq!(logs.len(), 1, "{logs:?}");
    let original = std::fs::read(&logs[0]).expect("read");
    let (first_start, first_end) = batch_ranges(&original)[0];
    flip(&logs[0], (first_start + first_end) / 2, 0x01);
    assert_refused_naming(tmp.path(), &logs[0], Some(first_start));
    std::fs::write(&logs[0], &original).expect("restore");

    // The producer-id file: flipped bits anywhere and a torn tail refuse.
    let ids = tmp.path().join("meta").join("producer-ids");
    let framed = std::fs::read(&ids).expect("producer ids written");
    assert!(framed.starts_with(b"peregrine-checked crc32c="));
    for at in [0, 20, framed.len() - 3, framed.len() - 1] {
        flip(&ids, at, 0x01);
        assert_refused_naming(tmp.path(), &ids, None);
        std::fs::write(&ids, &framed).expect("restore");
    }
    std::fs::write(&ids, &framed[..framed.len() - 2]).expect("tear");
    assert_refused_naming(tmp.path(), &ids, None);
    // The bare number of older releases still reads, and ids continue above it.
    std::fs::write(&ids, b"5000\n").expect("legacy file");
    b.restart();
    let (code, next_id) = init_producer_id(&b, None);
    assert_eq!(code, 0);
    assert!(next_id >= 5000 && next_id != first_id, "{next_id}");

    // A torn tail of the transaction log loses only the record torn ("audit"'s): the
    // one before it still gives "payments" its producer id.
    b.kill9();
    let bytes = std::fs::read(&logs[0]).expect("read");
    let ranges = batch_ranges(&bytes);
    assert_eq!(ranges.len(), 2, "one record per transactional id");
    let (start, end) = ranges[1];
    std::fs::write(&logs[0], &bytes[..(start + end) / 2]).expect("tear");
    b.restart();
    let (code, again) = init_producer_id(&b, Some("payments"));
    assert_eq!((code, again), (0, first_id));
}

#[test]
fn a_damaged_catalog_refuses_the_start_and_an_old_bare_one_loads() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut b = Broker::start_in(tmp.path(), &[]);
    create_topic(&b, "kept", None);
    let sent = produce_batches(&b, "kept", 1, 3);
    assert!(b.stop());
    let path = tmp.path().join("meta").join("topics.json");
    let framed = std::fs::read(&path).expect("catalog");
    let body_at = framed
        .iter()
        .position(|b| *b == b'\n')
        .expect("header line")
        + 1;
    let name_at = body_at
        + framed[body_at..]
            .windows(4)
            .position(|w| w == b"kept")
            .expect("topic name in the catalog");
    // The header, a brace, a digit-free name (flipped: still valid JSON), the end.
    for at in [0, 30, body_at, name_at + 1, framed.len() - 2] {
        flip(&path, at, 0x01);
        assert_refused_naming(tmp.path(), &path, None);
        std::fs::write(&path, &framed).expect("restore");
    }
    std::fs::write(&path, &framed[..framed.len() / 2]).expect("tear");
    assert_refused_naming(tmp.path(), &path, None);
    // The bare JSON an older release wrote.
    std::fs::write(&path, &framed[body_at..]).expect("legacy catalog");
    b.restart();
    assert_eq!(consume_from(&b, "kept", 0), sent);
    // Its next change writes the checksummed frame.
    create_topic(&b, "more", None);
    assert!(std::fs::read(&path)
        .expect("catalog")
        .starts_with(b"peregrine-checked "));
}

#[test]
fn a_damaged_log_start_refuses_the_start_and_an_old_bare_one_loads() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut b = Broker::start_in(tmp.path(), &[]);
    create_topic(&b, "trimmed", None);
    let sent = produce_batches(&b, "trimmed", 4, 5);
    let mut k = RawKafka::connect(&b.kafka_addr);
    let req = DeleteRecordsRequest::default()
        .with_timeout_ms(10_000)
        .with_topics(vec![DeleteRecordsTopic::default()
            .with_name(TopicName(StrBytes::from_static_str("trimmed")))
            .with_partitions(vec![DeleteRecordsPartition::default()
                .with_partition_index(0)
                .with_offset(10)])]);
    let resp: DeleteRecordsResponse = k.call(ApiKey::DeleteRecords, 1, &req);
    assert_eq!(resp.topics[0].partitions[0].error_code, 0);
    drop(k);
    assert!(b.stop());
    let start = files(&tmp.path().join("topics"), &|p| {
        p.file_name().and_then(|n| n.to_str()) == Some("log-start-offset")
    })
    .pop()
    .expect("log start recorded");
    let framed = std::fs::read(&start).expect("read");
    assert!(framed.starts_with(b"peregrine-checked "));
    for at in [3, framed.len() - 2] {
        flip(&start, at, 0x01);
        assert_refused_naming(tmp.path(), &start, None);
        std::fs::write(&start, &framed).expect("restore");
    }
    // An older release's bare number still reads.
    std::fs::write(&start, b"10\n").expect("legacy");
    b.restart();
    assert_eq!(consume_from(&b, "trimmed", 10), sent[10..]);
    assert!(b.stop());
}

/// One uncompressed batch of `count` records from an idempotent producer.
fn idempotent_batch(producer_id: i64, first_seq: i32, count: usize) -> Bytes {
    let records: Vec<Record> = (0..count)
        .map(|i| Record {
            transactional: false,
            control: false,
            partition_leader_epoch: 0,
            producer_id,
            producer_epoch: 0,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: first_seq + i as i32,
            timestamp: 1_700_000_000_000,
            key: None,
            value: Some(Bytes::from(format!("seq-{}", first_seq + i as i32))),
            headers: Default::default(),
            delete_horizon: false,
        })
        .collect();
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    RecordBatchEncoder::encode(&mut buf, records.iter(), &options).expect("encode");
    buf.freeze()
}

#[test]
fn a_damaged_producer_snapshot_is_rebuilt_from_the_log() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut b = Broker::start_in(tmp.path(), &[]);
    create_topic(&b, "idem", None);
    let (code, pid) = init_producer_id(&b, None);
    assert_eq!(code, 0);
    let mut k = RawKafka::connect(&b.kafka_addr);
    assert_eq!(k.produce("idem", idempotent_batch(pid, 0, 2)), (0, 0));
    assert_eq!(k.produce("idem", idempotent_batch(pid, 2, 2)), (0, 2));
    drop(k);
    assert!(b.stop());
    let snapshot = files(&tmp.path().join("topics"), &|p| {
        p.file_name().and_then(|n| n.to_str()) == Some("producers.json")
    })
    .pop()
    .expect("snapshot written at clean close");
    let bytes = std::fs::read(&snapshot).expect("read");
    assert!(bytes.starts_with(b"peregrine-checked "));
    flip(&snapshot, bytes.len() / 2, 0x01);
    b.restart();
    assert!(
        b.log().contains("damaged producer snapshot"),
        "the damage is logged"
    );
    // The producer's sequences came back from the log: a retry of the last batch is
    // not appended again, and the next one follows it.
    let mut k = RawKafka::connect(&b.kafka_addr);
    k.produce("idem", idempotent_batch(pid, 2, 2));
    assert_eq!(k.produce("idem", idempotent_batch(pid, 4, 1)), (0, 4));
    assert_eq!(
        consume_from(&b, "idem", 0),
        ["seq-0", "seq-1", "seq-2", "seq-3", "seq-4"]
    );
}
