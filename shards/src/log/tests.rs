//! Storage tests: each runs a real glommio executor on a temporary directory and uses
//! real Kafka v2 batches built by the `kafka-protocol` crate.

use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

use super::*;
use crate::batch::{self, BatchError, BatchHeader};
use crate::test_support::run;

/// One v2 batch of `records` records with `value_len`-byte values tagged with `tag`.
fn batch_with(tag: u64, records: usize, value_len: usize, timestamp_ms: i64) -> BytesMut {
    let records: Vec<Record> = (0..records)
        .map(|i| Record {
            transactional: false,
            control: false,
            partition_leader_epoch: 0,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: i as i32, // offset - sequence constant keeps the records in one batch
            timestamp: timestamp_ms,
            key: Some(Bytes::from(format!("tag-{tag}-{i}"))),
            value: Some(Bytes::from(vec![(tag % 251) as u8; value_len])),
            headers: IndexMap::new(),
            delete_horizon: false,
        })
        .collect();
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    RecordBatchEncoder::encode(&mut buf, records.iter(), &options).expect("encode batch");
    buf
}

fn batch(tag: u64) -> BytesMut {
    batch_with(
        tag,
        1 + (tag % 3) as usize,
        200 + (tag % 7) as usize * 40,
        1_000 + tag as i64,
    )
}

fn config(segment_bytes: u64) -> LogConfig {
    LogConfig {
        segment_bytes,
        index_interval_bytes: 512,
        ..LogConfig::default()
    }
}

async fn open(dir: &Path, config: LogConfig) -> Rc<PartitionLog> {
    PartitionLog::open(dir.to_owned(), config, BatchCache::new(64 << 20))
        .await
        .expect("open log")
}

/// Appends batches tagged `tags` one request each; returns (tag, base offset) pairs.
fn append_tags(log: &PartitionLog, tags: std::ops::Range<u64>) -> Vec<(u64, i64)> {
    tags.map(|tag| (tag, log.append(batch(tag)).expect("append").base_offset))
        .collect()
}

/// Reads the whole log from `from` in steps of `max_bytes`; returns every batch.
async fn read_all(log: &PartitionLog, from: i64, max_bytes: usize) -> Vec<Bytes> {
    let mut out = Vec::new();
    let mut next = from;
    while next < log.end_offset() {
        let read = log.read(next, max_bytes).await.expect("read");
        assert!(
            !read.batches.is_empty(),
            "a read below the end returns at least one batch"
        );
        for b in read.batches {
            let header = batch::validate(&b).expect("valid batch");
            assert!(
                header.base_offset <= next && next <= header.last_offset()
                    || header.base_offset == next
            );
            next = header.last_offset() + 1;
            out.push(b);
        }
    }
    out
}

/// Checks that the log holds exactly the batches `expected` (tag, base offset).
async fn assert_holds(log: &PartitionLog, expected: &[(u64, i64)]) {
    let from = expected.first().map_or(log.start_offset(), |e| e.1);
    let batches = read_all(log, from, 3_000).await;
    assert_eq!(batches.len(), expected.len());
    for (bytes, (tag, base)) in batches.iter().zip(expected) {
        let mut want = batch(*tag);
        batch::set_base_offset(&mut want, *base);
        assert_eq!(&bytes[..], &want[..], "batch {tag} at offset {base}");
        let set = RecordBatchDecoder::decode(&mut bytes.clone()).expect("decodable");
        assert_eq!(set.records[0].offset, *base);
    }
}

fn tempdir() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("topic-0");
    (tmp, dir)
}

fn segment_files(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("list")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect();
    files.sort();
    files
}

#[test]
fn appends_and_reads_across_segment_rolls_and_after_reopen() {
    run(|| async {
        let (_tmp, dir) = tempdir();
        let log = open(&dir, config(8 << 10)).await;
        let mut expected = append_tags(&log, 0..150);
        // A multi-batch request gets consecutive offsets.
        let mut two = batch(150);
        two.extend_from_slice(&batch(151));
        let end_before = log.end_offset();
        let res = log.append(two).expect("append two");
        assert_eq!(res.base_offset, end_before);
        expected.push((150, res.base_offset));
        expected.push((151, res.base_offset + 1)); // batch(150) holds one record
        assert_eq!(res.last_offset + 1, log.end_offset());
        assert!(
            log.segment_count() > 5,
            "small segments roll: {}",
            log.segment_count()
        );
        assert_holds(&log, &expected).await;
        log.close().await.expect("close");

        let log = open(&dir, config(8 << 10)).await;
        assert_holds(&log, &expected).await;
        assert_eq!(log.end_offset(), res.last_offset + 1);
        expected.extend(append_tags(&log, 200..210));
        assert_eq!(
            expected[152].1,
            res.last_offset + 1,
            "appends continue after reopen"
        );
        assert_holds(&log, &expected).await;
        log.close().await.expect("close");
    });
}

/// Reads each offset once and checks the first batch returned contains it.
async fn assert_every_offset_readable(log: &PartitionLog) {
    for offset in log.start_offset()..log.end_offset() {
        let read = log.read(offset, 1).await.expect("read");
        assert_eq!(
            read.batches.len(),
            1,
            "one batch even when larger than max_bytes"
        );
        let h = BatchHeader::parse(&read.batches[0]).expect("header");
        assert!(
            h.base_offset <= offset && offset <= h.last_offset(),
            "offset {offset}"
        );
        assert_eq!(read.high_watermark, log.end_offset());
        assert_eq!(read.log_start_offset, log.start_offset());
    }
}

#[test]
fn every_offset_reads_the_batch_that_contains_it_from_memory_and_disk() {
    run(|| async {
        let (_tmp, dir) = tempdir();
        let log = open(&dir, config(16 << 10)).await;
        append_tags(&log, 0..60);
        assert_every_offset_readable(&log).await;
        log.close().await.expect("close");
        // Reopened with an empty cache: every read comes from disk.
        let log = open(&dir, config(16 << 10)).await;
        assert_every_offset_readable(&log).await;
        log.close().await.expect("close");
    });
}

/// Deterministic xorshift64, so a failing case replays from its seed.
fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

fn last_log_file(dir: &Path) -> PathBuf {
    segment_files(dir, "log").pop().expect("a segment file")
}

/// Writes 30 batches (small segments), closes, and returns the expected contents and
/// the byte range of the last batch in the last segment file.
async fn write_and_close(dir: &Path) -> (Vec<(u64, i64)>, std::ops::Range<u64>) {
    let log = open(dir, config(4 << 10)).await;
    let expected = append_tags(&log, 0..30);
    log.close().await.expect("close");
    let data = std::fs::read(last_log_file(dir)).expect("read segment");
    let parts = batch::split(&data).expect("closed segment is whole batches");
    let (range, _) = parts.last().expect("last batch").clone();
    (expected, range.start as u64..range.end as u64)
}

fn cut_file(path: &Path, len: u64, garbage: &[u8]) {
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .expect("open");
    file.set_len(len).expect("truncate");
    drop(file);
    let mut data = std::fs::read(path).expect("read");
    data.extend_from_slice(garbage);
    std::fs::write(path, data).expect("write");
}

/// Reopens after damage to the last batch: it is gone, the rest is intact, the file was
/// cut at the last good batch, and appends continue right after it.
async fn assert_recovers_without_last_batch(dir: &Path, expected: &[(u64, i64)], last_start: u64) {
    let log = open(dir, config(4 << 10)).await;
    let kept = &expected[..expected.len() - 1];
    let (_, last_base) = expected[expected.len() - 1];
    assert_eq!(
        log.end_offset(),
        last_base,
        "the damaged batch's offsets are free again"
    );
    assert_holds(&log, kept).await;
    let on_disk = std::fs::metadata(last_log_file(dir)).expect("stat").len();
    assert_eq!(on_disk, last_start, "file truncated at the last good batch");
    let appended = log.append(batch(99)).expect("append");
    assert_eq!(appended.base_offset, last_base);
    log.close().await.expect("close");
    let log = open(dir, config(4 << 10)).await;
    let mut all = kept.to_vec();
    all.push((99, last_base));
    assert_holds(&log, &all).await;
    log.close().await.expect("close");
}

#[test]
fn torn_tail_is_truncated_on_restart() {
    run(|| async {
        let mut seed = 0x5EED_u64;
        for case in 0..9 {
            let (_tmp, dir) = tempdir();
            let (expected, last) = write_and_close(&dir).await;
            let cut = last.start + 1 + xorshift(&mut seed) % (last.end - last.start - 1);
            // What a crash can leave: the file ends inside the last batch (with or
            // without noise up to its end), or the batch's sectors from one boundary on
            // were never written (zeros, the file keeps its length).
            let sector = cut.div_ceil(512) * 512;
            match case % 3 {
                0 => cut_file(&last_log_file(&dir), cut, &[]),
                1 => {
                    let room = last.end - cut - 1;
                    let noise: Vec<u8> = (0..room.min(1 + xorshift(&mut seed) % 300))
                        .map(|_| xorshift(&mut seed) as u8)
                        .collect();
                    cut_file(&last_log_file(&dir), cut, &noise);
                }
                _ if sector + 16 <= last.end => {
                    let zeros = vec![0u8; (last.end - sector) as usize + 4096];
                    cut_file(&last_log_file(&dir), sector, &zeros);
                }
                _ => cut_file(&last_log_file(&dir), cut, &[]),
            }
            assert_recovers_without_last_batch(&dir, &expected, last.start).await;
        }
    });
}

/// Opens `dir` expecting the open to fail on damage at byte `position` of `path`.
async fn assert_refused(dir: &Path, path: &Path, position: u64) -> String {
    match PartitionLog::open(dir.to_owned(), config(4 << 10), BatchCache::new(1 << 20)).await {
        Err(LogError::Damaged {
            path: p,
            position: at,
            reason,
            ..
        }) => {
            assert_eq!((p.as_path(), at), (path, position), "{reason}");
            reason
        }
        Err(other) => panic!("expected Damaged, got {other}"),
        Ok(_) => panic!("a log with damaged acknowledged data opened"),
    }
}

#[test]
fn flipped_bit_in_a_written_batch_fails_the_open_naming_the_file() {
    run(|| async {
        // The base offset, the length, the magic, the CRC, the attributes, a record.
        for flip_at in [3u64, 10, 16, 19, 21, 40, 70] {
            let (_tmp, dir) = tempdir();
            let (_, last) = write_and_close(&dir).await;
            let path = last_log_file(&dir);
            let mut data = std::fs::read(&path).expect("read");
            data[(last.start + flip_at) as usize] ^= 0x01;
            std::fs::write(&path, &data).expect("write");
            assert_refused(&dir, &path, last.start).await;
            // Refused again, and nothing was cut meanwhile.
            assert_refused(&dir, &path, last.start).await;
            assert_eq!(std::fs::read(&path).expect("read"), data);
        }
        // In the middle of the active segment and in a closed one.
        let (_tmp, dir) = tempdir();
        write_and_close(&dir).await;
        let segments = segment_files(&dir, "log");
        assert!(segments.len() >= 3, "{segments:?}");
        for path in [&segments[0], &segments[segments.len() - 1]] {
            let original = std::fs::read(path).expect("read");
            let parts = batch::split(&original).expect("whole batches");
            let (range, _) = parts[parts.len() / 2].clone();
            let mut data = original.clone();
            data[range.start + 30] ^= 0x80;
            std::fs::write(path, &data).expect("write");
            let reason = assert_refused(&dir, path, range.start as u64).await;
            assert!(reason.contains("segment, offset"), "{reason}");
            std::fs::write(path, &original).expect("restore");
        }
        let log = open(&dir, config(4 << 10)).await;
        log.close().await.expect("close");
    });
}

#[test]
fn trailing_zeros_after_the_last_batch_are_trimmed_on_restart() {
    run(|| async {
        let (_tmp, dir) = tempdir();
        let (expected, last) = write_and_close(&dir).await;
        cut_file(&last_log_file(&dir), last.end, &[0u8; 10_000]);
        let log = open(&dir, config(4 << 10)).await;
        assert_holds(&log, &expected).await;
        assert_eq!(
            std::fs::metadata(last_log_file(&dir)).expect("stat").len(),
            last.end
        );
        log.close().await.expect("close");
    });
}

#[test]
fn missing_and_corrupted_indexes_are_rebuilt_on_restart() {
    run(|| async {
        let (_tmp, dir) = tempdir();
        let log = open(&dir, config(8 << 10)).await;
        let expected = append_tags(&log, 0..120);
        log.close().await.expect("close");
        let indexes = segment_files(&dir, "index");
        let times = segment_files(&dir, "timeindex");
        assert!(indexes.len() >= 4 && times.len() == indexes.len());
        // Closed segments: one index missing, one truncated mid-entry, one scrambled;
        // the active segment loses both of its indexes.
        std::fs::remove_file(&indexes[0]).expect("rm");
        let data = std::fs::read(&indexes[1]).expect("read");
        std::fs::write(&indexes[1], &data[..data.len() - 3]).expect("write");
        let n = std::fs::read(&indexes[2]).expect("read").len();
        std::fs::write(&indexes[2], vec![0xAB; n]).expect("write");
        std::fs::write(&times[2], vec![0xFF; 24]).expect("write");
        std::fs::remove_file(indexes.last().expect("active")).expect("rm");
        std::fs::remove_file(times.last().expect("active")).expect("rm");

        let log = open(&dir, config(8 << 10)).await;
        assert_holds(&log, &expected).await;
        assert_every_offset_readable(&log).await;
        let (_, base_of_50) = expected[50];
        assert_eq!(
            log.offset_for_timestamp(1_050).await.expect("lookup"),
            Some(base_of_50)
        );
        log.close().await.expect("close");
        // The rebuilt indexes were written back and validate on the next open.
        assert_eq!(segment_files(&dir, "index").len(), indexes.len());
        let log = open(&dir, config(8 << 10)).await;
        assert_every_offset_readable(&log).await;
        log.close().await.expect("close");
    });
}

#[test]
fn offset_for_timestamp_finds_the_first_batch_at_or_after_it() {
    run(|| async {
        let (_tmp, dir) = tempdir();
        let log = open(&dir, config(8 << 10)).await;
        // Timestamps 1000 + tag, except a late outlier in batch 40.
        let mut bases = Vec::new();
        for tag in 0..100u64 {
            let ts = if tag == 40 { 5_000 } else { 1_000 + tag as i64 };
            bases.push(
                log.append(batch_with(tag, 2, 300, ts))
                    .expect("append")
                    .base_offset,
            );
        }
        let lookup = |ts: i64| log.offset_for_timestamp(ts);
        assert_eq!(lookup(0).await.expect("lookup"), Some(0));
        assert_eq!(lookup(1_010).await.expect("lookup"), Some(bases[10]));
        assert_eq!(
            lookup(1_070).await.expect("lookup"),
            Some(bases[40]),
            "outlier covers 1070"
        );
        assert_eq!(lookup(5_000).await.expect("lookup"), Some(bases[40]));
        assert_eq!(lookup(5_001).await.expect("lookup"), None);
        log.close().await.expect("close");
        let log = open(&dir, config(8 << 10)).await;
        assert_eq!(
            log.offset_for_timestamp(1_099).await.expect("lookup"),
            Some(bases[40])
        );
        assert_eq!(
            log.offset_for_timestamp(1_041).await.expect("lookup"),
            Some(bases[40])
        );
        assert_eq!(
            log.offset_for_timestamp(1_020).await.expect("lookup"),
            Some(bases[20])
        );
        log.close().await.expect("close");
    });
}

#[test]
fn reading_out_of_range_is_an_error_and_reading_the_end_is_empty() {
    run(|| async {
        let (_tmp, dir) = tempdir();
        let log = open(&dir, config(8 << 10)).await;
        append_tags(&log, 0..10);
        let end = log.end_offset();
        let at_end = log.read(end, 1 << 20).await.expect("read at end");
        assert!(at_end.batches.is_empty());
        assert_eq!(at_end.high_watermark, end);
        let past = log.read(end + 1, 1 << 20).await;
        assert!(
            matches!(past, Err(LogError::OffsetOutOfRange { requested, start: 0, end: e }) if requested == end + 1 && e == end)
        );
        assert!(matches!(
            log.read(-1, 100).await,
            Err(LogError::OffsetOutOfRange { .. })
        ));
        log.close().await.expect("close");
    });
}

#[test]
fn retention_by_time_removes_only_whole_closed_segments() {
    run(|| async {
        let (_tmp, dir) = tempdir();
        let cfg = LogConfig {
            retention_ms: Some(1_000),
            ..config(8 << 10)
        };
        let log = open(&dir, cfg).await;
        // Old batches (timestamps ~1000), then new ones (~100_000).
        let old = append_tags(&log, 0..60);
        let new: Vec<(u64, i64)> = (60..120u64)
            .map(|tag| {
                (
                    tag,
                    log.append(batch_with(tag, 1, 300, 100_000))
                        .expect("append")
                        .base_offset,
                )
            })
            .collect();
        log.close().await.expect("close");
        let log = open(&dir, cfg).await;
        let segments = log.segment_count();
        let size = log.size_bytes();
        let removed = log.enforce_retention(100_500).await.expect("retention");
        assert!(
            removed > 0 && removed < segments,
            "removed {removed} of {segments}"
        );
        let start = log.start_offset();
        assert!(
            start > 0 && start <= new[0].1,
            "start {start} moves, but not past new data"
        );
        assert!(log.size_bytes() < size);
        assert_eq!(segment_files(&dir, "log").len(), segments - removed);
        let first_file = segment_files(&dir, "log")
            .into_iter()
            .next()
            .expect("a segment");
        assert!(
            first_file.ends_with(format!("{start:020}.log")),
            "segments are whole: {first_file:?}"
        );
        assert!(
            old.iter().any(|(_, base)| *base >= start),
            "the segment holding new data keeps its old batches"
        );
        assert!(matches!(
            log.read(start - 1, 100).await,
            Err(LogError::OffsetOutOfRange { .. })
        ));
        assert_every_offset_readable(&log).await;
        // Nothing is expired now: the rest stays; the active segment is never removed.
        assert_eq!(log.enforce_retention(100_500).await.expect("retention"), 0);
        assert!(log.enforce_retention(i64::MAX).await.expect("retention") >= 1);
        assert_eq!(log.segment_count(), 1);
        log.close().await.expect("close");
        let log = open(&dir, LogConfig::default()).await;
        assert_eq!(log.segment_count(), 1, "deleted segments stay deleted");
        log.close().await.expect("close");
    });
}

#[test]
fn retention_by_bytes_keeps_at_least_the_limit() {
    run(|| async {
        let (_tmp, dir) = tempdir();
        let cfg = LogConfig {
            retention_bytes: Some(20_000),
            ..config(8 << 10)
        };
        let log = open(&dir, cfg).await;
        append_tags(&log, 0..200);
        let before = log.size_bytes();
        // Segments still waiting for their write are not eligible; let the flusher finish.
        log.wait_durable(log.end_offset() - 1)
            .await
            .expect("durable");
        let removed = log.enforce_retention(0).await.expect("retention");
        assert!(removed > 0);
        assert!(
            log.size_bytes() >= 20_000,
            "kept {} bytes",
            log.size_bytes()
        );
        assert!(
            log.size_bytes() < 20_000 + (8 << 10),
            "kept no more than one extra segment"
        );
        assert!(log.size_bytes() < before);
        assert_every_offset_readable(&log).await;
        log.close().await.expect("close");
    });
}

#[test]
fn retention_set_on_an_open_log_applies_at_the_next_pass() {
    run(|| async {
        let (_tmp, dir) = tempdir();
        let log = open(&dir, config(8 << 10)).await;
        append_tags(&log, 0..200);
        log.wait_durable(log.end_offset() - 1)
            .await
            .expect("durable");
        assert_eq!(log.enforce_retention(0).await.expect("retention"), 0);
        let before = log.size_bytes();
        log.reconfigure(&LogConfig {
            retention_bytes: Some(20_000),
            ..config(8 << 10)
        });
        assert_eq!(log.config().retention_bytes, Some(20_000));
        assert!(log.enforce_retention(0).await.expect("retention") > 0);
        assert!(log.size_bytes() >= 20_000 && log.size_bytes() < before);
        // Index spacing is fixed at open; only retention and segments change live.
        log.reconfigure(&LogConfig {
            index_interval_bytes: 1,
            ..LogConfig::default()
        });
        assert_eq!(log.config().index_interval_bytes, 512);
        assert_eq!(log.config().retention_bytes, None);
        assert_every_offset_readable(&log).await;
        log.close().await.expect("close");
    });
}

#[test]
fn a_durable_wait_ends_while_appends_keep_coming() {
    run(|| async {
        let (_tmp, dir) = tempdir();
        let log = open(&dir, LogConfig::default()).await;
        // A stream of appends that never pauses: it keeps up to 64 KiB waiting for the
        // flusher, so every write the flusher finishes finds more data behind it.
        let stop = Rc::new(std::cell::Cell::new(false));
        let stream = {
            let (log, stop) = (log.clone(), stop.clone());
            glommio::spawn_local(async move {
                let mut tag = 0u64;
                while !stop.get() {
                    if log.pending_bytes() < 64 << 10 {
                        log.append(batch(tag)).expect("append");
                        tag += 1;
                    }
                    futures_lite::future::yield_now().await;
                }
                tag
            })
        };
        glommio::timer::sleep(Duration::from_millis(20)).await;
        for _ in 0..3 {
            let appended = log.append(batch(1 << 40)).expect("append");
            let durable = futures_lite::future::or(
                async { Some(log.wait_durable(appended.last_offset).await) },
                async {
                    glommio::timer::sleep(Duration::from_secs(5)).await;
                    None
                },
            )
            .await;
            assert!(
                matches!(durable, Some(Ok(()))),
                "the durable wait must not need the stream to pause"
            );
        }
        stop.set(true);
        assert!(stream.await > 0);
        log.close().await.expect("close");
    });
}

#[test]
fn closing_writes_everything_pending_while_a_durable_waiter_waits() {
    run(|| async {
        let (_tmp, dir) = tempdir();
        // More than one write's worth (8 MiB) pending when the log closes, and a
        // durable waiter, so the closing cycle runs long enough to be cut short.
        let log = open(&dir, config(64 << 20)).await;
        let mut tag = 0u64;
        while log.pending_bytes() < 20 << 20 {
            log.append(batch_with(tag, 4, 4_000, 1_000))
                .expect("append");
            tag += 1;
        }
        let end = log.end_offset();
        let waiter = {
            let log = log.clone();
            glommio::spawn_local(async move { log.wait_durable(end - 1).await })
        };
        futures_lite::future::yield_now().await;
        log.close().await.expect("close");
        waiter.await.expect("durable");
        drop(log);
        let log = open(&dir, config(64 << 20)).await;
        assert_eq!(
            log.end_offset(),
            end,
            "everything appended before close is kept"
        );
        log.close().await.expect("close");
    });
}

#[test]
fn concurrent_durable_appends_share_fsyncs() {
    run(|| async {
        let (_tmp, dir) = tempdir();
        let log = open(&dir, LogConfig::default()).await;
        // 200 producers, each doing 5 rounds of append + wait: later rounds arrive while
        // earlier fdatasyncs run, and must share the next one.
        let (producers, rounds) = (200u64, 5u64);
        let tasks: Vec<_> = (0..producers)
            .map(|p| {
                let log = log.clone();
                glommio::spawn_local(async move {
                    for round in 0..rounds {
                        let appended = log.append(batch(p * rounds + round)).expect("append");
                        log.wait_durable(appended.last_offset)
                            .await
                            .expect("durable");
                        assert!(log.durable_offset() > appended.last_offset);
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await;
        }
        let fsyncs = log.fsync_count();
        let appends = producers * rounds;
        assert!(
            fsyncs >= rounds && fsyncs <= appends / 20,
            "{appends} durable appends took {fsyncs} fdatasyncs"
        );
        // Acks=leader appends alone cause no fdatasync.
        append_tags(&log, 1_000..1_050);
        glommio::timer::sleep(Duration::from_millis(20)).await;
        assert_eq!(log.fsync_count(), fsyncs);
        log.close().await.expect("close");
    });
}

#[test]
fn fsync_policy_always_and_interval_sync_without_waiters() {
    run(|| async {
        for policy in [FsyncPolicy::Always, FsyncPolicy::IntervalMs(10)] {
            let (_tmp, dir) = tempdir();
            let log = open(
                &dir,
                LogConfig {
                    fsync: policy,
                    ..LogConfig::default()
                },
            )
            .await;
            append_tags(&log, 0..5);
            // Nobody waits for durability; the policy alone must get it there.
            for _ in 0..500 {
                if log.durable_offset() == log.end_offset() {
                    break;
                }
                glommio::timer::sleep(Duration::from_millis(10)).await;
            }
            assert_eq!(log.durable_offset(), log.end_offset(), "{policy:?}");
            assert!(log.fsync_count() >= 1, "{policy:?}");
            log.close().await.expect("close");
        }
    });
}

#[test]
fn small_leader_appends_linger_and_durable_waiters_or_size_end_the_linger() {
    run(|| async {
        let (_tmp, dir) = tempdir();
        // A linger far longer than the test: whatever gets written, something ended it.
        let config = LogConfig {
            write_linger: Duration::from_secs(60),
            ..LogConfig::default()
        };
        let log = open(&dir, config).await;
        let within = |limit: Duration| {
            let log = log.clone();
            async move {
                let start = std::time::Instant::now();
                while log.pending_bytes() > 0 && start.elapsed() < limit {
                    glommio::timer::sleep(Duration::from_millis(5)).await;
                }
                log.pending_bytes() == 0
            }
        };
        append_tags(&log, 0..3);
        assert!(
            !within(Duration::from_millis(100)).await,
            "small appends wait"
        );
        // A durable waiter ends the linger for everything pending.
        let last = log.append(batch(3)).expect("append").last_offset;
        log.wait_durable(last).await.expect("durable");
        assert_eq!(log.pending_bytes(), 0);
        // So does a block of data worth writing.
        append_tags(&log, 4..5);
        assert!(!within(Duration::from_millis(50)).await);
        log.append(batch_with(5, 100, 1000, 5_000)).expect("append");
        assert!(
            within(Duration::from_secs(10)).await,
            "64 KiB pending is written"
        );
        // And close.
        append_tags(&log, 6..8);
        log.close().await.expect("close");
        let log = open(&dir, config).await;
        // Records: tags 0..3 hold 1+2+3, tag 3 one, tag 4 two, the big batch 100, tags 6..8 1+2.
        assert_eq!(log.end_offset(), 6 + 1 + 2 + 100 + 3);
        log.close().await.expect("close");
    });
}

#[test]
fn delete_records_moves_the_start_removes_whole_segments_and_survives_reopen() {
    run(|| async {
        let (_tmp, dir) = tempdir();
        let log = open(&dir, config(4096)).await;
        let appended = append_tags(&log, 0..60);
        let end = log.end_offset();
        // Let the flusher write and seal segments.
        log.wait_durable(end - 1).await.expect("durable");
        let segments_before = segment_files(&dir, "log").len();
        assert!(segments_before > 3, "{segments_before} segments");
        let cut = appended[40].1;
        assert_eq!(log.delete_records_before(cut).await.expect("delete"), cut);
        assert_eq!(log.start_offset(), cut);
        assert!(matches!(
            log.read(cut - 1, 1 << 20).await,
            Err(LogError::OffsetOutOfRange { .. })
        ));
        let first = log.read(cut, 1 << 20).await.expect("read");
        assert!(!first.batches.is_empty());
        assert!(
            segment_files(&dir, "log").len() < segments_before,
            "whole segments removed"
        );
        // Below the start is a no-op; past the end is refused.
        assert_eq!(log.delete_records_before(3).await.expect("no-op"), cut);
        assert!(log.delete_records_before(end + 1).await.is_err());
        log.close().await.expect("close");
        let log = open(&dir, config(4096)).await;
        assert_eq!(log.start_offset(), cut, "the start survives a reopen");
        // Retention never moves the start back below it.
        log.enforce_retention(i64::MAX).await.expect("retention");
        assert!(log.start_offset() >= cut);
        // -1: everything up to the end.
        assert_eq!(log.delete_records_before(-1).await.expect("all"), end);
        assert_eq!(log.start_offset(), end);
        log.close().await.expect("close");
    });
}

/// Copies the partition directory while its log is open: what a kill -9 leaves on
/// disk, since O_DIRECT bypasses the page cache.
fn crash_copy(dir: &Path, to: &Path) {
    std::fs::create_dir(to).expect("mkdir");
    for entry in std::fs::read_dir(dir).expect("list") {
        let path = entry.expect("entry").path();
        std::fs::copy(&path, to.join(path.file_name().expect("name"))).expect("copy");
    }
}

#[test]
fn durably_acknowledged_data_survives_a_crash() {
    run(|| async {
        let (tmp, dir) = tempdir();
        // First session ends cleanly, so the active segment has a persisted index;
        // the second appends more and crashes: recovery resumes from that index.
        let log = open(&dir, config(64 << 10)).await;
        let mut expected = append_tags(&log, 0..70);
        log.close().await.expect("close");
        let log = open(&dir, config(64 << 10)).await;
        expected.extend(append_tags(&log, 100..200));
        log.wait_durable(log.end_offset() - 1)
            .await
            .expect("durable");
        assert!(log.pending_bytes() == 0);
        let crashed = tmp.path().join("crashed");
        crash_copy(&dir, &crashed);
        let recovered = open(&crashed, config(64 << 10)).await;
        assert_holds(&recovered, &expected).await;
        assert_eq!(recovered.end_offset(), log.end_offset());
        assert_every_offset_readable(&recovered).await;
        recovered.close().await.expect("close");
        log.close().await.expect("close");
    });
}

#[test]
fn misleading_active_index_falls_back_to_a_full_scan() {
    run(|| async {
        let (_tmp, dir) = tempdir();
        let log = open(&dir, config(64 << 10)).await;
        let expected = append_tags(&log, 0..50);
        log.close().await.expect("close");
        // Well-formed entries that point into the middle of batches.
        let index = segment_files(&dir, "index").pop().expect("index");
        let mut entries = Vec::new();
        for (rel, pos) in [(1u32, 100u32), (2, 333)] {
            entries.extend_from_slice(&rel.to_be_bytes());
            entries.extend_from_slice(&pos.to_be_bytes());
        }
        std::fs::write(&index, entries).expect("write");
        std::fs::write(
            segment_files(&dir, "timeindex").pop().expect("timeindex"),
            b"",
        )
        .expect("write");
        let log = open(&dir, config(64 << 10)).await;
        assert_holds(&log, &expected).await;
        assert_every_offset_readable(&log).await;
        log.close().await.expect("close");
    });
}

#[test]
fn cache_stays_under_budget_and_reads_fall_back_to_crc_checked_disk() {
    run(|| async {
        let (_tmp, dir) = tempdir();
        let cache = BatchCache::new(16 << 10);
        let log = PartitionLog::open(dir.clone(), config(64 << 10), cache.clone())
            .await
            .expect("open");
        let expected = append_tags(&log, 0..400);
        log.wait_durable(log.end_offset() - 1)
            .await
            .expect("durable");
        assert!(
            cache.used_bytes() <= 16 << 10,
            "cache holds {} bytes",
            cache.used_bytes()
        );
        assert!(cache.used_bytes() > 8 << 10, "the tail is cached");
        assert!(log.size_bytes() > 10 * (16 << 10));
        assert_holds(&log, &expected).await;
        assert!(cache.used_bytes() <= 16 << 10);

        // Corrupt one byte in the middle of a closed segment while the log is open:
        // reads there must fail the CRC check rather than return bad data.
        let first = segment_files(&dir, "log")
            .into_iter()
            .next()
            .expect("segment");
        let data = std::fs::read(&first).expect("read");
        let middle = data.len() / 2;
        {
            use std::os::unix::fs::FileExt;
            let file = std::fs::OpenOptions::new()
                .write(true)
                .open(&first)
                .expect("open segment");
            file.write_all_at(&[data[middle] ^ 0x10], middle as u64)
                .expect("write");
        }
        let mut corrupt = 0;
        for offset in 0..expected[expected.len() / 2].1 {
            match log.read(offset, 1).await {
                Ok(read) => assert!(batch::validate(&read.batches[0]).is_ok()),
                Err(LogError::Corrupt { position, .. }) => {
                    assert!(position <= middle as u64);
                    corrupt += 1;
                }
                Err(other) => panic!("unexpected error {other}"),
            }
        }
        assert!(corrupt >= 1, "the damaged batch is reported");
        log.close().await.expect("close");
        // And the next open finds it before serving anything.
        let refused = PartitionLog::open(dir.clone(), config(64 << 10), cache.clone()).await;
        assert!(
            matches!(&refused, Err(LogError::Damaged { path, position, .. })
                if *path == first && *position <= middle as u64),
            "{:?}",
            refused.err()
        );
    });
}

#[test]
fn a_request_with_any_bad_batch_is_rejected_whole() {
    run(|| async {
        let (_tmp, dir) = tempdir();
        let log = open(&dir, config(8 << 10)).await;
        append_tags(&log, 0..3);
        let end = log.end_offset();
        let mut bad = batch(10);
        let mut corrupt = batch(11);
        let last = corrupt.len() - 1;
        corrupt[last] ^= 0xFF;
        bad.extend_from_slice(&corrupt);
        assert!(matches!(
            log.append(bad),
            Err(LogError::InvalidBatch(BatchError::BadCrc { .. }))
        ));
        let mut partial = batch(12);
        partial.extend_from_slice(&batch(13)[..30]);
        assert!(matches!(
            log.append(partial),
            Err(LogError::InvalidBatch(_))
        ));
        assert!(matches!(
            log.append(BytesMut::new()),
            Err(LogError::InvalidBatch(_))
        ));
        assert_eq!(log.end_offset(), end, "nothing was appended");
        assert_eq!(log.append(batch(14)).expect("append").base_offset, end);
        log.close().await.expect("close");
    });
}

#[test]
fn a_batch_larger_than_a_segment_gets_a_segment_of_its_own() {
    run(|| async {
        let (_tmp, dir) = tempdir();
        let log = open(&dir, config(4 << 10)).await;
        append_tags(&log, 0..3);
        let segments = log.segment_count();
        let big = log.append(batch_with(50, 4, 3_000, 7)).expect("append big");
        assert_eq!(log.segment_count(), segments + 1);
        let after = log.append(batch(51)).expect("append");
        assert_eq!(
            log.segment_count(),
            segments + 2,
            "the next batch rolls again"
        );
        log.close().await.expect("close");
        let log = open(&dir, config(4 << 10)).await;
        let read = log.read(big.base_offset, 1).await.expect("read");
        assert_eq!(
            BatchHeader::parse(&read.batches[0])
                .expect("header")
                .base_offset,
            big.base_offset
        );
        assert!(read.batches[0].len() > 4 << 10);
        assert_eq!(log.end_offset(), after.last_offset + 1);
        log.close().await.expect("close");
    });
}

#[test]
fn closed_log_refuses_appends_and_delete_removes_the_directory() {
    run(|| async {
        let (_tmp, dir) = tempdir();
        let log = open(&dir, config(8 << 10)).await;
        append_tags(&log, 0..3);
        log.close().await.expect("close");
        log.close().await.expect("close twice is fine");
        assert!(matches!(log.append(batch(1)), Err(LogError::Closed)));
        let read = log
            .read(0, 1 << 20)
            .await
            .expect("reads still work after close");
        assert_eq!(read.batches.len(), 3);
        log.delete().await.expect("delete");
        assert!(!dir.exists());
    });
}

#[test]
fn wait_for_data_wakes_on_append_or_times_out() {
    run(|| async {
        let (_tmp, dir) = tempdir();
        let log = open(&dir, config(8 << 10)).await;
        let started = std::time::Instant::now();
        log.wait_for_data(0, Duration::from_millis(30)).await;
        assert!(
            started.elapsed() >= Duration::from_millis(30),
            "times out when nothing arrives"
        );
        let waiter = {
            let log = log.clone();
            glommio::spawn_local(async move {
                let started = std::time::Instant::now();
                log.wait_for_data(0, Duration::from_secs(10)).await;
                started.elapsed()
            })
        };
        glommio::timer::sleep(Duration::from_millis(5)).await;
        log.append(batch(1)).expect("append");
        assert!(waiter.await < Duration::from_secs(5), "woken by the append");
        // Already past: returns at once.
        log.wait_for_data(0, Duration::from_secs(10)).await;
        log.close().await.expect("close");
    });
}

#[test]
fn consumers_read_only_written_batches_and_a_long_poll_ends_the_linger() {
    run(|| async {
        let (_tmp, dir) = tempdir();
        // A linger far longer than the test: only the waiting consumer can end it.
        let config = LogConfig {
            write_linger: Duration::from_secs(60),
            ..LogConfig::default()
        };
        let log = open(&dir, config).await;
        let first = log.append(batch(1)).expect("append");
        log.wait_durable(first.last_offset).await.expect("durable");
        let written = first.last_offset + 1;
        assert_eq!(log.high_watermark(), written);
        // Pending in memory (lingering): the log's own reads see it, consumers do not.
        let second = log.append(batch(2)).expect("append");
        let end = second.last_offset + 1;
        assert_eq!(log.end_offset(), end);
        assert_eq!(log.high_watermark(), written, "nothing written yet");
        assert_eq!(log.written_stable_offset(), written);
        let all = log.read(written, 1 << 20).await.expect("read");
        assert_eq!(all.batches.len(), 1);
        let served = log.read_written(written, 1 << 20).await.expect("read");
        assert!(served.batches.is_empty(), "a pending batch was served");
        assert_eq!(served.high_watermark, written);
        let from_start = log.read_written(0, 1 << 20).await.expect("read");
        assert_eq!(from_start.batches.len(), 1, "only the written batch");
        // A consumer's long poll makes the flusher write, and the write wakes it.
        let started = std::time::Instant::now();
        log.wait_for_written(written, Duration::from_secs(30)).await;
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the long poll waited out its timeout: the linger did not end"
        );
        assert_eq!(log.high_watermark(), end);
        let served = log.read_written(written, 1 << 20).await.expect("read");
        assert_eq!(served.batches.len(), 1);
        assert_eq!(served.high_watermark, end);
        // Nothing pending: a long poll waits for its timeout.
        let started = std::time::Instant::now();
        log.wait_for_written(end, Duration::from_millis(30)).await;
        assert!(started.elapsed() >= Duration::from_millis(30));
        log.close().await.expect("close");
    });
}

#[test]
fn dropping_a_log_without_close_still_writes_pending_batches() {
    run(|| async {
        let (_tmp, dir) = tempdir();
        let log = open(&dir, config(8 << 10)).await;
        let expected = append_tags(&log, 0..40);
        let segments = log.segment_count();
        drop(log);
        // The flusher drains on its own; its last step writes the active segment's
        // time index.
        for _ in 0..500 {
            if segment_files(&dir, "timeindex").len() == segments {
                break;
            }
            glommio::timer::sleep(Duration::from_millis(10)).await;
        }
        let log = open(&dir, config(8 << 10)).await;
        assert_holds(&log, &expected).await;
        log.close().await.expect("close");
    });
}

/// One appended batch as the model remembers it.
#[derive(Clone, Copy)]
struct Modeled {
    base: i64,
    last: i64,
    records: usize,
    value_len: usize,
    timestamp_ms: i64,
    tag: u64,
    len: usize,
}

impl Modeled {
    fn bytes(&self) -> BytesMut {
        let mut b = batch_with(self.tag, self.records, self.value_len, self.timestamp_ms);
        batch::set_base_offset(&mut b, self.base);
        b
    }
}

/// Checks one read against the model: whole batches, first contains `offset`,
/// contiguous, byte-identical, within `max_bytes` unless a single batch.
fn check_read(model: &[Modeled], offset: i64, max_bytes: usize, got: &[Bytes]) {
    let first = model.iter().position(|m| m.last >= offset);
    let Some(first) = first else {
        assert!(got.is_empty(), "read at the end returns nothing");
        return;
    };
    assert!(!got.is_empty(), "offset {offset} has data");
    let total: usize = got.iter().map(Bytes::len).sum();
    assert!(
        got.len() == 1 || total <= max_bytes,
        "{total} > {max_bytes}"
    );
    for (i, bytes) in got.iter().enumerate() {
        assert_eq!(
            &bytes[..],
            &model[first + i].bytes()[..],
            "batch {} of read at {offset}",
            i
        );
    }
}

#[test]
fn random_operations_match_a_simple_model() {
    run(|| async {
        let (tmp, mut dir) = tempdir();
        let cfg = LogConfig {
            retention_bytes: Some(30_000),
            ..config(6 << 10)
        };
        let cache = BatchCache::new(12 << 10);
        let reopen = |dir: PathBuf, cache: Rc<BatchCache>| async move {
            PartitionLog::open(dir, cfg, cache).await.expect("open")
        };
        let mut log = reopen(dir.clone(), cache.clone()).await;
        let mut model: Vec<Modeled> = Vec::new();
        // PEREGRINE_TEST_SEED replays another sequence.
        let mut seed = std::env::var("PEREGRINE_TEST_SEED")
            .ok()
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap_or(0xC0FFEE)
            .max(1);
        for step in 0..600u64 {
            match xorshift(&mut seed) % 20 {
                0..=9 => {
                    let mut request = BytesMut::new();
                    let mut added = Vec::new();
                    let mut base = log.end_offset();
                    for i in 0..1 + xorshift(&mut seed) % 3 {
                        let m = Modeled {
                            base,
                            last: 0,
                            records: 1 + (xorshift(&mut seed) % 4) as usize,
                            value_len: (xorshift(&mut seed) % 1_500) as usize,
                            timestamp_ms: (xorshift(&mut seed) % 10_000) as i64,
                            tag: step * 10 + i,
                            len: 0,
                        };
                        let m = Modeled {
                            last: base + m.records as i64 - 1,
                            ..m
                        };
                        base = m.last + 1;
                        let one = batch_with(m.tag, m.records, m.value_len, m.timestamp_ms);
                        request.extend_from_slice(&one);
                        added.push(Modeled {
                            len: one.len(),
                            ..m
                        });
                    }
                    let res = log.append(request).expect("append");
                    assert_eq!(
                        (res.base_offset, res.last_offset),
                        (added[0].base, base - 1)
                    );
                    model.extend(added);
                }
                10..=13 => {
                    let (start, end) = (log.start_offset(), log.end_offset());
                    let offset = start + (xorshift(&mut seed) % (end - start + 1) as u64) as i64;
                    let max_bytes = (xorshift(&mut seed) % 8_000) as usize;
                    let read = log.read(offset, max_bytes).await.expect("read");
                    check_read(&model, offset, max_bytes, &read.batches);
                }
                14 => {
                    if log.end_offset() > 0 {
                        log.wait_durable(log.end_offset() - 1)
                            .await
                            .expect("durable");
                        assert_eq!(log.durable_offset(), log.end_offset());
                    }
                }
                15 => {
                    log.close().await.expect("close");
                    log = reopen(dir.clone(), cache.clone()).await;
                }
                16 => {
                    if log.end_offset() > 0 {
                        log.wait_durable(log.end_offset() - 1)
                            .await
                            .expect("durable");
                    }
                    let crashed = tmp.path().join(format!("crash-{step}"));
                    crash_copy(&dir, &crashed);
                    log.close().await.expect("close");
                    dir = crashed;
                    log = reopen(dir.clone(), cache.clone()).await;
                }
                17 => {
                    if log.end_offset() > 0 {
                        log.wait_durable(log.end_offset() - 1)
                            .await
                            .expect("durable");
                    }
                    let removed = log.enforce_retention(0).await.expect("retention");
                    let start = log.start_offset();
                    model.retain(|m| m.base >= start);
                    assert!(
                        model.first().is_none_or(|m| m.base == start),
                        "start is a batch boundary"
                    );
                    assert!(
                        removed == 0 || log.size_bytes() >= 30_000,
                        "retention keeps the limit"
                    );
                }
                _ => {
                    let ts = (xorshift(&mut seed) % 10_500) as i64;
                    let want = model.iter().find(|m| m.timestamp_ms >= ts).map(|m| m.base);
                    assert_eq!(
                        log.offset_for_timestamp(ts).await.expect("lookup"),
                        want,
                        "ts {ts}"
                    );
                }
            }
            assert_eq!(
                log.end_offset(),
                model.last().map_or(log.start_offset(), |m| m.last + 1)
            );
            let model_bytes: usize = model.iter().map(|m| m.len).sum();
            assert_eq!(log.size_bytes(), model_bytes as u64, "step {step}");
            assert!(cache.used_bytes() <= 12 << 10);
        }
        log.close().await.expect("close");
    });
}

/// A batch of `records` records from idempotent producer `producer_id`, sequences from
/// `base_sequence`.
fn idempotent_batch(producer_id: i64, epoch: i16, base_sequence: i32, records: i32) -> BytesMut {
    let records: Vec<Record> = (0..records)
        .map(|i| Record {
            transactional: false,
            control: false,
            partition_leader_epoch: 0,
            producer_id,
            producer_epoch: epoch,
            timestamp_type: TimestampType::Creation,
            offset: i64::from(i),
            sequence: base_sequence + i,
            timestamp: 1_000,
            key: None,
            value: Some(Bytes::from(format!(
                "p{producer_id}-s{}",
                base_sequence + i
            ))),
            headers: IndexMap::new(),
            delete_horizon: false,
        })
        .collect();
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    RecordBatchEncoder::encode(&mut buf, records.iter(), &options).expect("encode batch");
    buf
}

fn expiring_config(expiration_ms: u64) -> LogConfig {
    LogConfig {
        producer_id_expiration_ms: expiration_ms,
        ..config(1 << 20)
    }
}

#[test]
fn an_idle_producer_expires_and_its_next_batch_starts_afresh() {
    run(|| async {
        let (_tmp, dir) = tempdir();
        let log = open(&dir, expiring_config(300)).await;
        let first = log.append(idempotent_batch(7, 0, 0, 3)).expect("append");
        log.append(idempotent_batch(7, 0, 3, 2)).expect("append");
        let retry = log.append(idempotent_batch(7, 0, 0, 3)).expect("retry");
        assert!(retry.duplicate);
        assert_eq!(retry.base_offset, first.base_offset);
        assert!(matches!(
            log.append(idempotent_batch(7, 0, 9, 1)),
            Err(LogError::OutOfOrderSequence {
                expected: 5,
                got: 9,
                ..
            })
        ));
        glommio::timer::sleep(Duration::from_millis(400)).await;
        // Forgotten: a new producer to the log, so a gap is fine (Kafka's KIP-360).
        let fresh = log
            .append(idempotent_batch(7, 0, 9, 1))
            .expect("after expiry");
        assert!(!fresh.duplicate);
        // Producer 8 writes, then idles past the expiration before the log closes:
        // the snapshot leaves it out, so after the reopen its retry is new data.
        log.append(idempotent_batch(8, 0, 0, 1)).expect("append");
        glommio::timer::sleep(Duration::from_millis(400)).await;
        log.append(idempotent_batch(7, 0, 10, 1)).expect("append");
        log.close().await.expect("close");
        let log = open(&dir, expiring_config(300)).await;
        let kept = log.append(idempotent_batch(7, 0, 10, 1)).expect("retry");
        assert!(kept.duplicate, "producer 7 was live at close");
        let end = log.end_offset();
        let again = log.append(idempotent_batch(8, 0, 0, 1)).expect("append");
        assert!(
            !again.duplicate && again.base_offset == end,
            "producer 8 expired"
        );
        log.close().await.expect("close");
    });
}

#[test]
fn retention_passes_forget_expired_producers() {
    run(|| async {
        let (_tmp, dir) = tempdir();
        let log = open(&dir, expiring_config(60_000)).await;
        for producer in 0..50 {
            log.append(idempotent_batch(producer, 0, 0, 1))
                .expect("append");
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        log.enforce_retention(now).await.expect("retention");
        assert_eq!(log.inner_producer_count(), 50);
        log.enforce_retention(now + 120_000)
            .await
            .expect("retention");
        assert_eq!(log.inner_producer_count(), 0);
        log.close().await.expect("close");
        assert!(
            !dir.join(producers::SNAPSHOT_FILE).exists(),
            "no producer left to snapshot"
        );
    });
}

#[test]
fn producer_snapshots_round_trip_without_expired_producers_and_damage_is_ignored() {
    run(|| async {
        let (_tmp, dir) = tempdir();
        std::fs::create_dir_all(&dir).expect("mkdir");
        const NOW: i64 = 1_700_000_000_000;
        let header = |producer: i64| {
            BatchHeader::parse(&idempotent_batch(producer, 2, 0, 4)).expect("header")
        };
        let mut s = producers::ProducerStates::new(1_000);
        s.record(&header(9), 40, NOW);
        s.record(&header(10), 44, NOW - 5_000);
        let txns = transactions::PartitionTxns::default();
        s.save(&txns, &dir, 48, NOW).await.expect("save");
        let (loaded, _, covered) = producers::ProducerStates::load(&dir, 1_000, NOW)
            .await
            .expect("snapshot");
        assert_eq!(covered, 48);
        assert_eq!(s.expire(NOW), 1);
        assert_eq!(loaded, s, "producer 10 expired before the save");
        std::fs::write(dir.join(producers::SNAPSHOT_FILE), b"{broken").expect("write");
        assert!(producers::ProducerStates::load(&dir, 1_000, NOW)
            .await
            .is_none());
    });
}

#[test]
fn delete_records_waits_until_its_new_start_is_durable() {
    run(|| async {
        let (_tmp, dir) = tempdir();
        // Appends linger in memory: nothing is durable until someone waits for it.
        let cfg = LogConfig {
            write_linger: Duration::from_secs(30),
            ..config(1 << 20)
        };
        let log = open(&dir, cfg).await;
        append_tags(&log, 0..5);
        let end = log.end_offset();
        assert!(log.durable_offset() < end);
        assert_eq!(log.delete_records_before(-1).await.expect("delete"), end);
        assert!(log.durable_offset() >= log.start_offset());
        let recorded = std::fs::read(dir.join("log-start-offset")).expect("start recorded");
        let body = crate::checked_file::open(&recorded).expect("checked frame");
        assert!(matches!(body, crate::checked_file::Opened::Checked(_)));
        assert_eq!(
            std::str::from_utf8(body.body()).ok(),
            Some(format!("{end}\n").as_str())
        );
        log.close().await.expect("close");
        let log = open(&dir, cfg).await;
        assert_eq!(log.start_offset(), end, "the start survives a reopen");
        log.close().await.expect("close");
    });
}

/// A transactional batch of `records` records of `value_len` bytes from `producer_id`.
fn txn_batch(producer_id: i64, epoch: i16, base_sequence: i32, records: i32) -> BytesMut {
    let records: Vec<Record> = (0..records)
        .map(|i| Record {
            transactional: true,
            control: false,
            partition_leader_epoch: 0,
            producer_id,
            producer_epoch: epoch,
            timestamp_type: TimestampType::Creation,
            offset: i64::from(i),
            sequence: base_sequence + i,
            timestamp: 1_000,
            key: None,
            value: Some(Bytes::from(vec![b't'; 300])),
            headers: IndexMap::new(),
            delete_horizon: false,
        })
        .collect();
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    RecordBatchEncoder::encode(&mut buf, records.iter(), &options).expect("encode batch");
    buf
}

/// What a `read_committed` reader depends on: the stable offset and every aborted range
/// over the whole log.
fn txn_view(log: &PartitionLog) -> (i64, Vec<(i64, i64)>) {
    (
        log.last_stable_offset(),
        log.aborted_in(log.start_offset(), log.end_offset()),
    )
}

#[test]
fn commit_markers_move_the_stable_offset_as_each_transaction_closes() {
    run(|| async {
        let (_tmp, dir) = tempdir();
        let log = open(&dir, config(1 << 20)).await;
        assert_eq!(log.last_stable_offset(), 0);
        let a1 = log.append(txn_batch(1, 0, 0, 2)).expect("p1").base_offset;
        let b1 = log.append(txn_batch(2, 0, 0, 1)).expect("p2").base_offset;
        log.append(batch(7)).expect("plain data");
        log.append(txn_batch(1, 0, 2, 3)).expect("p1 again");
        assert_eq!((a1, b1), (0, 2));
        assert_eq!(log.last_stable_offset(), a1, "p1's transaction is oldest");
        let m1 = log.append_marker(1, 0, true, 5).expect("commit p1");
        assert_eq!(m1.base_offset, m1.last_offset);
        assert_eq!(
            log.last_stable_offset(),
            b1,
            "p2's transaction is still open"
        );
        let m2 = log.append_marker(2, 0, true, 5).expect("commit p2");
        assert_eq!(log.last_stable_offset(), log.end_offset());
        assert_eq!(m2.last_offset + 1, log.end_offset());
        assert!(
            log.aborted_in(0, log.end_offset()).is_empty(),
            "nothing aborted"
        );
        // The markers are in the log as control batches, read like any batch.
        let batches = read_all(&log, 0, 1 << 20).await;
        let controls: Vec<i64> = batches
            .iter()
            .map(|b| BatchHeader::parse(b).expect("header"))
            .filter(|h| h.is_control())
            .map(|h| h.base_offset)
            .collect();
        assert_eq!(controls, vec![m1.base_offset, m2.base_offset]);
        let marker = crate::records::EndTxnMarker::decode(&batches[4]).expect("decodes");
        assert_eq!(
            marker,
            Some(crate::records::EndTxnMarker {
                commit: true,
                coordinator_epoch: 5
            })
        );
        // A new transaction of p1 holds the stable offset at its first batch again.
        let a2 = log.append(txn_batch(1, 0, 5, 1)).expect("p1").base_offset;
        assert_eq!(log.last_stable_offset(), a2);
        let summaries = log.producer_summaries();
        let p: Vec<(i64, i16, i32, i64)> = summaries
            .iter()
            .map(|s| (s.producer_id, s.epoch, s.last_sequence, s.txn_start_offset))
            .collect();
        assert_eq!(p, vec![(1, 0, 5, a2), (2, 0, 0, -1)]);
        log.close().await.expect("close");
    });
}

#[test]
fn abort_markers_record_the_range_up_to_the_marker() {
    run(|| async {
        let (_tmp, dir) = tempdir();
        let log = open(&dir, config(1 << 20)).await;
        log.append(batch(1)).expect("plain");
        let first = log.append(txn_batch(3, 1, 0, 2)).expect("txn").base_offset;
        log.append(batch(2)).expect("plain");
        log.append(txn_batch(3, 1, 2, 1)).expect("txn");
        let marker = log
            .append_marker(3, 1, false, 0)
            .expect("abort")
            .base_offset;
        let after = log.append(batch(3)).expect("plain").base_offset;
        assert_eq!(log.last_stable_offset(), log.end_offset());
        assert_eq!(log.aborted_in(0, log.end_offset()), vec![(3, first)]);
        // [from, to) overlaps [first, marker] exactly when from <= marker and to > first.
        assert!(log.aborted_in(0, first).is_empty());
        assert_eq!(log.aborted_in(0, first + 1), vec![(3, first)]);
        assert_eq!(log.aborted_in(marker, marker + 1), vec![(3, first)]);
        assert!(log.aborted_in(marker + 1, log.end_offset()).is_empty());
        assert!(log.aborted_in(after, after + 1).is_empty());
        // Producer 3 aborts again: a second range; a marker with nothing open adds none.
        let second = log.append(txn_batch(3, 1, 3, 1)).expect("txn").base_offset;
        let marker2 = log
            .append_marker(3, 1, false, 0)
            .expect("abort")
            .base_offset;
        log.append_marker(3, 1, false, 0)
            .expect("a re-sent abort is written");
        assert_eq!(
            log.aborted_in(0, log.end_offset()),
            vec![(3, first), (3, second)]
        );
        assert_eq!(log.aborted_in(marker2, marker2 + 1), vec![(3, second)]);
        log.close().await.expect("close");
    });
}

#[test]
fn a_marker_from_an_older_epoch_is_fenced_and_a_newer_epoch_starts_the_sequence_over() {
    run(|| async {
        let (_tmp, dir) = tempdir();
        let log = open(&dir, config(1 << 20)).await;
        log.append(txn_batch(5, 2, 0, 3)).expect("txn");
        let end = log.end_offset();
        assert!(matches!(
            log.append_marker(5, 1, false, 0),
            Err(LogError::ProducerFenced {
                producer_id: 5,
                epoch: 1,
                current: 2
            })
        ));
        assert_eq!(log.end_offset(), end, "nothing written");
        assert_eq!(log.last_stable_offset(), 0, "still open");
        // The coordinator fences the producer: an abort at epoch 3.
        log.append_marker(5, 3, false, 0)
            .expect("abort at a newer epoch");
        assert_eq!(log.last_stable_offset(), log.end_offset());
        assert!(matches!(
            log.append(txn_batch(5, 2, 3, 1)),
            Err(LogError::ProducerFenced { current: 3, .. })
        ));
        // The next transaction at epoch 3 begins at sequence 0.
        let next = log.append(txn_batch(5, 3, 0, 1)).expect("epoch 3 from 0");
        assert!(!next.duplicate);
        assert_eq!(log.last_stable_offset(), next.base_offset);
        assert!(matches!(
            log.append(txn_batch(5, 3, 5, 1)),
            Err(LogError::OutOfOrderSequence { expected: 1, .. })
        ));
        // Clients cannot write markers or producer-less transactional batches.
        let mut control = BytesMut::from(
            &crate::records::EndTxnMarker {
                commit: true,
                coordinator_epoch: 0,
            }
            .batch(5, 3, 1_000)[..],
        );
        batch::set_base_offset(&mut control, 0);
        assert!(matches!(
            log.append(control),
            Err(LogError::InvalidBatch(_))
        ));
        assert!(matches!(
            log.append(txn_batch(-1, -1, -1, 1)),
            Err(LogError::InvalidBatch(_))
        ));
        assert_eq!(log.last_stable_offset(), next.base_offset);
        log.close().await.expect("close");
    });
}

#[test]
fn a_retried_transactional_batch_is_answered_as_a_duplicate() {
    run(|| async {
        let (_tmp, dir) = tempdir();
        let log = open(&dir, config(1 << 20)).await;
        log.append(batch(1)).expect("plain");
        let first = log.append(txn_batch(8, 0, 0, 2)).expect("txn");
        let end = log.end_offset();
        let retry = log.append(txn_batch(8, 0, 0, 2)).expect("retry");
        assert!(retry.duplicate);
        assert_eq!(
            (retry.base_offset, retry.last_offset),
            (first.base_offset, first.last_offset)
        );
        assert_eq!(log.end_offset(), end, "nothing appended");
        log.append_marker(8, 0, true, 0).expect("commit");
        // A retry after the commit (same epoch) is still recognised, and opens nothing.
        assert!(log.append(txn_batch(8, 0, 0, 2)).expect("retry").duplicate);
        assert_eq!(log.last_stable_offset(), log.end_offset());
        log.close().await.expect("close");
    });
}

#[test]
fn a_marker_wakes_long_polls() {
    run(|| async {
        let (_tmp, dir) = tempdir();
        let log = open(&dir, config(1 << 20)).await;
        log.append(txn_batch(1, 0, 0, 1)).expect("txn");
        let end = log.end_offset();
        let waiter = {
            let log = log.clone();
            glommio::spawn_local(async move {
                log.wait_for_data(end, Duration::from_secs(30)).await;
                log.last_stable_offset()
            })
        };
        // Let the waiter register before the marker comes.
        glommio::timer::sleep(Duration::from_millis(5)).await;
        let marker = log.append_marker(1, 0, true, 0).expect("commit");
        assert_eq!(marker.woke_readers, 1, "the long poll was woken");
        assert_eq!(waiter.await, end + 1, "and sees the new stable offset");
        log.close().await.expect("close");
    });
}

/// Writes transactions over many small segments: producer 1's stays open from the
/// first segment; 2 aborts twice, 3 commits, 4 aborts across a segment roll.
/// Returns the offset of producer 1's first batch.
fn write_transactions_over_segments(log: &PartitionLog) -> i64 {
    let open_first = log.append(txn_batch(1, 0, 0, 1)).expect("p1").base_offset;
    let mut seq = [0i32; 5];
    seq[1] = 1;
    for round in 0..6u64 {
        append_tags(log, round * 10..round * 10 + 10);
        for p in [2i64, 3, 4] {
            let s = &mut seq[p as usize];
            log.append(txn_batch(p, 0, *s, 2)).expect("txn");
            *s += 2;
        }
        append_tags(log, round * 10 + 100..round * 10 + 104);
        log.append_marker(2, 0, false, 1).expect("abort p2");
        log.append_marker(3, 0, true, 1).expect("commit p3");
        if round % 2 == 1 {
            log.append_marker(4, 0, false, 1).expect("abort p4");
        }
    }
    open_first
}

#[test]
fn transaction_state_survives_a_clean_restart_and_a_crash() {
    run(|| async {
        let (tmp, dir) = tempdir();
        let cfg = config(4096);
        let log = open(&dir, cfg).await;
        let open_first = write_transactions_over_segments(&log);
        let before = txn_view(&log);
        assert_eq!(before.0, open_first, "producer 1 holds the stable offset");
        assert_eq!(before.1.len(), 6 + 3, "six aborts of p2, three of p4");
        assert!(log.segment_count() > 5, "{} segments", log.segment_count());
        let summaries = log.producer_summaries();
        log.wait_durable(log.end_offset() - 1)
            .await
            .expect("durable");
        assert!(dir.join("transactional").exists(), "the flag is on disk");
        // A crash: no snapshot, and the open transaction began in an older segment.
        let crashed = tmp.path().join("crashed");
        crash_copy(&dir, &crashed);
        assert!(!crashed.join(producers::SNAPSHOT_FILE).exists());
        let recovered = open(&crashed, cfg).await;
        assert_eq!(txn_view(&recovered), before, "after a crash");
        // Sequences and epochs came back too: a retry is a duplicate, a gap refused.
        assert!(
            recovered
                .append(txn_batch(2, 0, 10, 2))
                .expect("retry")
                .duplicate
        );
        let summary_of = |s: &[ProducerSummary], p: i64| {
            s.iter()
                .find(|x| x.producer_id == p)
                .map(|x| (x.epoch, x.last_sequence, x.txn_start_offset))
        };
        let got = recovered.producer_summaries();
        for p in 1..=4 {
            assert_eq!(
                summary_of(&got, p),
                summary_of(&summaries, p),
                "producer {p}"
            );
        }
        recovered.close().await.expect("close");
        // A clean close writes the snapshot; the reopen reads it.
        log.close().await.expect("close");
        assert!(dir.join(producers::SNAPSHOT_FILE).exists());
        let log = open(&dir, cfg).await;
        assert_eq!(txn_view(&log), before, "after a clean restart");
        // The snapshot plus what follows it, after a crash of the reopened log.
        log.append_marker(1, 0, false, 2).expect("abort p1");
        let after = txn_view(&log);
        assert_eq!(after.0, log.end_offset());
        assert_eq!(after.1.first(), Some(&(1, open_first)));
        log.wait_durable(log.end_offset() - 1)
            .await
            .expect("durable");
        let crashed_again = tmp.path().join("crashed-again");
        crash_copy(&dir, &crashed_again);
        let recovered = open(&crashed_again, cfg).await;
        assert_eq!(
            txn_view(&recovered),
            after,
            "snapshot, then the log after it"
        );
        recovered.close().await.expect("close");
        // Without the flag only the active segment would be read: the test can fail.
        let no_flag = tmp.path().join("no-flag");
        crash_copy(&dir, &no_flag);
        std::fs::remove_file(no_flag.join(producers::SNAPSHOT_FILE)).expect("rm snapshot");
        std::fs::remove_file(no_flag.join("transactional")).expect("rm flag");
        let partial = open(&no_flag, cfg).await;
        assert_ne!(
            txn_view(&partial),
            after,
            "the flag is what makes this work"
        );
        partial.close().await.expect("close");
        log.close().await.expect("close");
    });
}

#[test]
fn retention_and_delete_records_drop_aborted_ranges_below_the_new_start() {
    run(|| async {
        let (_tmp, dir) = tempdir();
        let cfg = LogConfig {
            retention_ms: Some(1_000),
            ..config(4096)
        };
        let log = open(&dir, cfg).await;
        // Producer 9 aborts with a segment roll between its data and its marker.
        let first = log.append(txn_batch(9, 0, 0, 1)).expect("txn").base_offset;
        let first_segments = log.segment_count();
        append_tags(&log, 0..20);
        assert!(log.segment_count() > first_segments, "rolled");
        let marker = log
            .append_marker(9, 0, false, 0)
            .expect("abort")
            .base_offset;
        assert_eq!(log.aborted_in(0, log.end_offset()), vec![(9, first)]);
        let after_roll = log.read(marker, 1 << 20).await.expect("read marker");
        assert!(BatchHeader::parse(&after_roll.batches[0])
            .expect("header")
            .is_control());
        // Producer 10 aborts later, producer 11 stays open.
        append_tags(&log, 20..40);
        let second = log.append(txn_batch(10, 0, 0, 1)).expect("txn").base_offset;
        let marker2 = log
            .append_marker(10, 0, false, 0)
            .expect("abort")
            .base_offset;
        let open_first = log.append(txn_batch(11, 0, 0, 1)).expect("txn").base_offset;
        append_tags(&log, 40..60);
        log.wait_durable(log.end_offset() - 1)
            .await
            .expect("durable");
        // DeleteRecords past the first marker: its range goes, the second stays.
        log.delete_records_before(marker + 1).await.expect("delete");
        assert_eq!(
            log.aborted_in(log.start_offset(), log.end_offset()),
            vec![(10, second)]
        );
        assert!(
            log.aborted_in(0, marker + 1).is_empty(),
            "dropped, not just out of range"
        );
        // Retention past everything sealed: the second range goes with its segments
        // once the start passes its marker; producer 11's transaction stays open and
        // holds read_committed readers at the start.
        log.enforce_retention(i64::MAX).await.expect("retention");
        let start = log.start_offset();
        assert!(start > marker2 && start > open_first, "start {start}");
        assert!(log.aborted_in(0, log.end_offset()).is_empty());
        assert_eq!(log.last_stable_offset(), start);
        log.append_marker(11, 0, true, 0).expect("commit");
        assert_eq!(log.last_stable_offset(), log.end_offset());
        log.close().await.expect("close");
        let log = open(&dir, cfg).await;
        assert!(log.aborted_in(0, log.end_offset()).is_empty());
        assert_eq!(log.last_stable_offset(), log.end_offset());
        log.close().await.expect("close");
    });
}

/// An aborted transaction in `TxnModel`: producer, its batches, its marker's offset.
type ModeledAbort = (i64, Vec<(i64, i64)>, i64);

/// What a partition's transactions should look like, from the operations made.
#[derive(Default)]
struct TxnModel {
    /// Producer -> the (base, last) offsets of its open transaction's batches.
    open: std::collections::BTreeMap<i64, Vec<(i64, i64)>>,
    /// (producer, its batches, marker offset), in marker order.
    aborted: Vec<ModeledAbort>,
    /// Offset covered by the snapshot of the last clean close, if one was written.
    snapshot: Option<i64>,
}

impl TxnModel {
    fn last_stable_offset(&self, start: i64, end: i64) -> i64 {
        self.open
            .values()
            .map(|b| b[0].0)
            .min()
            .map_or(end, |first| first.clamp(start, end))
    }

    fn aborted_in(&self, from: i64, to: i64) -> Vec<(i64, i64)> {
        let mut out: Vec<(i64, i64)> = self
            .aborted
            .iter()
            .filter(|(_, b, marker)| to > from && *marker >= from && b[0].0 < to)
            .map(|(p, b, _)| (b[0].0, *p))
            .collect();
        out.sort_unstable();
        out.into_iter().map(|(first, p)| (p, first)).collect()
    }

    /// A crash without a usable snapshot: only batches that reach `start` are read back.
    fn forget_below(&mut self, start: i64) {
        for batches in self.open.values_mut() {
            batches.retain(|b| b.1 >= start);
        }
        self.open.retain(|_, b| !b.is_empty());
        for (_, batches, _) in &mut self.aborted {
            batches.retain(|b| b.1 >= start);
        }
        self.aborted.retain(|(_, b, _)| !b.is_empty());
    }
}

#[test]
fn random_transactions_match_a_simple_model() {
    run(|| async {
        let (tmp, mut dir) = tempdir();
        let cfg = config(4096);
        let mut log = open(&dir, cfg).await;
        let mut model = TxnModel::default();
        let mut epoch = [0i16; 4];
        let mut seq = [0i32; 4];
        let mut producers_seen = false;
        // PEREGRINE_TEST_SEED replays another sequence.
        let mut seed = std::env::var("PEREGRINE_TEST_SEED")
            .ok()
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap_or(0x7A11_5EED)
            .max(1);
        for step in 0..500u64 {
            let p = (xorshift(&mut seed) % 4) as usize;
            let pid = p as i64 + 100;
            match xorshift(&mut seed) % 20 {
                0..=6 => {
                    let n = 1 + (xorshift(&mut seed) % 3) as i32;
                    let res = log
                        .append(txn_batch(pid, epoch[p], seq[p], n))
                        .expect("txn data");
                    assert!(!res.duplicate);
                    seq[p] += n;
                    let batches = model.open.entry(pid).or_default();
                    batches.push((res.base_offset, res.last_offset));
                    producers_seen = true;
                }
                7..=8 => {
                    append_tags(&log, step..step + 1);
                }
                9..=10 => {
                    log.append_marker(pid, epoch[p], true, 0).expect("commit");
                    model.open.remove(&pid);
                    producers_seen = true;
                }
                11..=13 => {
                    // One abort in four comes from the coordinator fencing the producer.
                    if xorshift(&mut seed).is_multiple_of(4) {
                        epoch[p] += 1;
                        seq[p] = 0;
                    }
                    let marker = log.append_marker(pid, epoch[p], false, 0).expect("abort");
                    if let Some(batches) = model.open.remove(&pid) {
                        model.aborted.push((pid, batches, marker.base_offset));
                    }
                    producers_seen = true;
                }
                14 => {
                    log.close().await.expect("close");
                    if producers_seen {
                        model.snapshot = Some(log.end_offset());
                    }
                    log = open(&dir, cfg).await;
                }
                15..=16 => {
                    if log.end_offset() > 0 {
                        log.wait_durable(log.end_offset() - 1)
                            .await
                            .expect("durable");
                    }
                    let crashed = tmp.path().join(format!("crash-{step}"));
                    crash_copy(&dir, &crashed);
                    log.close().await.expect("close");
                    dir = crashed;
                    log = open(&dir, cfg).await;
                    if model.snapshot.is_none_or(|c| c < log.start_offset()) {
                        model.forget_below(log.start_offset());
                    }
                }
                _ => {
                    let (start, end) = (log.start_offset(), log.end_offset());
                    let cut = start + (xorshift(&mut seed) % (end - start + 1) as u64) as i64;
                    let start = log.delete_records_before(cut).await.expect("delete");
                    model.aborted.retain(|(_, _, marker)| *marker >= start);
                }
            }
            let (start, end) = (log.start_offset(), log.end_offset());
            assert_eq!(
                log.last_stable_offset(),
                model.last_stable_offset(start, end),
                "step {step}"
            );
            assert_eq!(
                log.aborted_in(start, end),
                model.aborted_in(start, end),
                "step {step}"
            );
            let from = start + (xorshift(&mut seed) % (end - start + 1) as u64) as i64;
            let to = from + (xorshift(&mut seed) % 40) as i64;
            assert_eq!(
                log.aborted_in(from, to),
                model.aborted_in(from, to),
                "step {step}: [{from}, {to})"
            );
        }
        log.close().await.expect("close");
    });
}

#[test]
fn a_damaged_snapshot_of_a_transactional_partition_is_rebuilt_from_the_whole_log() {
    run(|| async {
        let (_tmp, dir) = tempdir();
        let cfg = config(4096);
        let log = open(&dir, cfg).await;
        let open_first = write_transactions_over_segments(&log);
        let before = txn_view(&log);
        assert_eq!(before.0, open_first);
        log.close().await.expect("close");
        std::fs::write(dir.join(producers::SNAPSHOT_FILE), b"{\"offset\": 3, \"sta")
            .expect("damage the snapshot");
        let log = open(&dir, cfg).await;
        assert_eq!(txn_view(&log), before);
        log.close().await.expect("close");
        // A snapshot whose transaction entries make no sense (a range that ends before it
        // starts, an open transaction before the log) is kept within the log's bounds.
        let snapshot = r#"{"offset": 0, "states": {"producers": {}},
            "txns": {"ongoing": [[5, -40], [7, 1000]], "aborted": [
                {"producer_id": 6, "first_offset": 9, "last_offset": 2},
                {"producer_id": 8, "first_offset": 0, "last_offset": 500}]}}"#;
        let (_tmp2, other) = tempdir();
        std::fs::create_dir_all(&other).expect("mkdir");
        std::fs::write(other.join(producers::SNAPSHOT_FILE), snapshot).expect("write");
        let log = open(&other, cfg).await;
        assert_eq!(log.last_stable_offset(), 0, "clamped to the log start");
        assert!(
            log.aborted_in(0, 1_000).is_empty(),
            "the backwards range and the one past the snapshot are dropped"
        );
        log.append_marker(5, 0, false, 0).expect("abort");
        log.append_marker(7, 0, false, 0)
            .expect("nothing open for 7");
        assert_eq!(log.last_stable_offset(), log.end_offset());
        assert_eq!(log.aborted_in(0, log.end_offset()), vec![(5, -40)]);
        log.close().await.expect("close");
    });
}
